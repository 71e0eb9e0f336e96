"""Where one training iteration of the Enwik8-shaped model spends its time, per attention pattern: wall time,
GPU-busy time, and the kernels that take it.

Usage: python bench/model_profile.py [--batch 1]"""
import argparse, time
import torch
from torch.profiler import profile, ProfilerActivity
from sparse_transformer_edu import model as M
from enwik8_shape import CASES, enwik8_config, loss_backward


def profile_case(kind, backend, batch):
    "Print the wall time, the GPU-busy time and the kernel tables of forward+backward for one case."
    model = M.SparseTransformer(enwik8_config(kind, backend)).cuda()
    x = torch.randint(0, 256, (batch, 12289), device="cuda")
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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=1, help="batch size (default: %(default)s)")
    args = ap.parse_args(argv)
    for kind, backend in CASES:
        profile_case(kind, backend, args.batch)
        torch.cuda.empty_cache()


if __name__ == "__main__": main()
