"""Time one training iteration of the paper's Enwik8-shaped model on the GPU, per attention pattern.

30 layers, d=512, 8 heads, context 12,288, l=128 (c=32 for fixed), merged heads, recomputation on, bf16 autocast,
AdamW step included. Dense uses PyTorch SDPA (backend='sdpa'); the sparse patterns use our kernels.

Usage: python bench/model_time.py [--iters 5] [--batch 1 8]"""
import argparse, statistics, time
import torch
from sparse_transformer_edu import model as M
from sparse_transformer_edu.bench import device_line
from enwik8_shape import CASES, enwik8_config, loss_backward


def time_iteration(kind, backend, batch, iters):
    "Median ms of `iters` training iterations after two warm-up ones, the peak memory in GiB, and the last loss."
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
    return statistics.median(times), torch.cuda.max_memory_allocated() / 2**30, loss.item()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iters", type=int, default=5, help="timed iterations per case (default: %(default)s)")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="batch sizes (default: %(default)s)")
    args = ap.parse_args(argv)
    print(device_line(), flush=True)
    res = {}
    for batch in args.batch:
        for kind, backend in CASES:
            ms, gib, loss = time_iteration(kind, backend, batch, args.iters)
            res[batch, kind] = ms
            print(f"batch {batch} {kind:8s} ({backend}): {ms:8.1f} ms/iter (median of {args.iters}), "
                  f"{batch * 12288 / ms:7.0f} tokens/ms, peak {gib:.1f} GiB, loss {loss:.3f}", flush=True)
            torch.cuda.empty_cache()
    for batch in args.batch:
        for kind in ("fixed", "strided"):
            print(f"batch {batch}: speed-up of {kind} over dense SDPA: {res[batch, 'dense'] / res[batch, kind]:.2f}x")


if __name__ == "__main__": main()
