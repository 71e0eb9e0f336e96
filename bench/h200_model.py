"""Time one training iteration of the paper's Enwik8-shaped model on the GPU, per attention pattern.

30 layers, d=512, 8 heads, context 12,288, l=128 (c=32 for fixed), merged heads, recomputation on, bf16 autocast,
AdamW step included; batch sizes from the command line (default 1 and 8). Dense uses PyTorch SDPA (backend='sdpa'); the sparse patterns use our kernels."""
import statistics, sys, time, torch
from sparse_transformer_edu import model as M
from sparse_transformer_edu.bench import device_line
from enwik8_shape import CASES, enwik8_config, loss_backward

print(device_line(), flush=True)
iters = int(sys.argv[1]) if len(sys.argv) > 1 else 5
batches = [int(b) for b in sys.argv[2:]] or [1, 8]
res = {}
for batch, (kind, backend) in [(b, case) for b in batches for case in CASES]:
    model = M.SparseTransformer(enwik8_config(kind, backend)).cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    x = torch.randint(0, 256, (batch, 12289), device="cuda")
    def step():
        loss = loss_backward(model, x)
        opt.step(); opt.zero_grad(set_to_none=True)
        return loss
    for _ in range(2): step()
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(iters):
        t = time.perf_counter(); loss = step(); torch.cuda.synchronize(); times.append((time.perf_counter() - t) * 1e3)
    ms = statistics.median(times)
    res[batch, kind] = ms
    print(f"batch {batch} {kind:8s} ({backend}): {ms:8.1f} ms/iter (median of {iters}), {batch * 12288 / ms:7.0f} tokens/ms, peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB, loss {loss.item():.3f}", flush=True)
    del model, opt
    torch.cuda.empty_cache()
for batch in batches:
    for kind in ("fixed", "strided"): print(f"batch {batch}: speed-up of {kind} over dense SDPA: {res[batch, 'dense'] / res[batch, kind]:.2f}x")
