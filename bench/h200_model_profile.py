"""Where one training iteration of the Enwik8-shaped model spends its time, per attention pattern: wall time,
GPU-busy time, and the kernels that take it."""
import time, torch
from torch.profiler import profile, ProfilerActivity
from sparse_transformer_edu import model as M
from enwik8_shape import CASES, enwik8_config, loss_backward

for kind, backend in CASES:
    model = M.SparseTransformer(enwik8_config(kind, backend)).cuda()
    x = torch.randint(0, 256, (1, 12289), device="cuda")
    step = lambda: loss_backward(model, x)
    for _ in range(3): step()
    torch.cuda.synchronize(); t = time.perf_counter()
    for _ in range(5): step()
    torch.cuda.synchronize(); wall = (time.perf_counter() - t) / 5 * 1e3
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(2): step()
        torch.cuda.synchronize()
    ev = prof.key_averages()
    busy = sum(getattr(e, "self_device_time_total", getattr(e, "self_cuda_time_total", 0)) for e in ev) / 2e3
    print(f"== {kind} ({backend}): wall {wall:.1f} ms/iter (fwd+bwd, no optimizer), GPU busy {busy:.1f} ms/iter", flush=True)
    print(ev.table(sort_by="self_cuda_time_total", row_limit=14, max_name_column_width=50), flush=True)
    print(ev.table(sort_by="self_cpu_time_total", row_limit=8, max_name_column_width=50), flush=True)
    del model; torch.cuda.empty_cache()
