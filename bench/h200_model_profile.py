"""Where one training iteration of the Enwik8-shaped model spends its time, per attention pattern: wall time,
GPU-busy time, and the kernels that take it."""
import time, torch
import torch.nn.functional as F
from torch.profiler import profile, ProfilerActivity
from sparse_transformer_edu import model as M

for kind, backend in [("dense", "sdpa"), ("fixed", "triton"), ("strided", "triton")]:
    cfg = M.SparseTransformerConfig(n_layer=30, d_model=512, n_head=8, context=12288, kind=kind, stride=128,
                                    c=32, attn_mode="merged", recompute=True, backend=backend)
    model = M.SparseTransformer(cfg).cuda()
    x = torch.randint(0, 256, (1, 12289), device="cuda")
    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16): logits = model(x[:, :-1])
        F.cross_entropy(logits.float().view(-1, 256), x[:, 1:].reshape(-1)).backward()
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
