"""How fast fixed's forward would be with its summary keys copied next to the natural ones, read without a row map.

Fixed's forward pass reads its virtual keys (the n natural ones, then every block's summary cells) through a row map,
so each key tile costs a load of its row indices before the gathered load of its keys; counting the tiles (chapter 04)
cannot remove that. This measures the alternative before building it: K and V concatenated with a copy of their summary
rows, [B, H, n + n/l*c, D], and the same predicate planned over that buffer without a map, so the forward kernel runs
its counted, contiguous path. It times, at bf16, D=64, the package's fixed forward; the same forward on a prepared
copy (the kernel alone); the copy alone (torch.cat of K and V with their summary rows); and both together. Outputs are
compared with the package's before anything is timed. --check runs the comparison through the interpreter on the CPU
(fp16, n=512, l=128, c=32), without timing.

Usage: python bench/compact_summary.py [--shapes 1x16x16384 1x16x65536 8x8x12288] [--check]"""
import argparse, os, sys

if "--check" in sys.argv: os.environ.setdefault("TRITON_INTERPRET", "1")   # before the kernels are defined
import torch


def setup(B, H, n, dtype, dev, stride=128, c=32):
    "Inputs, the package's fixed plan, and the plan and copy function of the concatenated layout."
    from sparse_transformer_edu import kernels
    from sparse_transformer_edu.plans import build_tile_plan, default_blocks, gathered_predicate, sparse_plan, summary_rows
    q, k, v = (torch.randn(B, H, n, 64, device=dev, dtype=dtype) for _ in range(3))
    plan = sparse_plan("fixed", n, 1, stride=stride, c=c, device=dev)
    rows = summary_rows(n, stride, c, stride - c, dev)
    cat_plan = build_tile_plan(gathered_predicate(n, stride, c), 1, n, n + rows.numel(), default_blocks("fixed")[0], dev)
    def with_copy(q, k, v):
        kc, vc = torch.cat([k, k[:, :, rows]], 2), torch.cat([v, v[:, :, rows]], 2)
        return kernels.blocksparse_forward(q, kc, vc, (cat_plan,))[0]
    return q, k, v, plan, cat_plan, rows, with_copy


def compare(B, H, n, dtype, dev):
    "Relative difference between the package's fixed forward and the concatenated layout's."
    from sparse_transformer_edu import kernels
    from sparse_transformer_edu.plans import rel_err
    q, k, v, plan, cat_plan, rows, with_copy = setup(B, H, n, dtype, dev)
    a = kernels.blocksparse_forward(q, k, v, plan.fwd)[0]
    b = with_copy(q, k, v)
    return rel_err(b, a), cat_plan.runs, plan.fwd[0].kvmap is not None and cat_plan.kvmap is None


def bench(shapes):
    from triton.testing import do_bench
    from sparse_transformer_edu import kernels
    from sparse_transformer_edu.bench import device_line
    print(device_line(), flush=True)
    for shape in shapes:
        B, H, n = map(int, shape.split("x"))
        err, runs, mapless = compare(B, H, n, torch.bfloat16, "cuda")
        q, k, v, plan, cat_plan, rows, with_copy = setup(B, H, n, torch.bfloat16, "cuda")
        kc, vc = torch.cat([k, k[:, :, rows]], 2), torch.cat([v, v[:, :, rows]], 2)
        t = {"package fixed fwd": lambda: kernels.blocksparse_forward(q, k, v, plan.fwd),
             "concatenated, kernel alone": lambda: kernels.blocksparse_forward(q, kc, vc, (cat_plan,)),
             "copy alone": lambda: (torch.cat([k, k[:, :, rows]], 2), torch.cat([v, v[:, :, rows]], 2)),
             "copy + kernel": lambda: with_copy(q, k, v)}
        ms = {name: do_bench(f, return_mode="median") for name, f in t.items()}
        print(f"{shape}: rel diff to the package {err:.1e}, runs {runs}, no map {mapless}; " +
              "; ".join(f"{name} {m:.3f} ms" for name, m in ms.items()) +
              f"; package / (copy + kernel) {ms['package fixed fwd'] / ms['copy + kernel']:.3f}", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", nargs="+", default=["1x16x16384", "1x16x65536", "8x8x12288"], metavar="BxHxN")
    ap.add_argument("--check", action="store_true", help="compare through the interpreter on the CPU, no timing")
    a = ap.parse_args(argv)
    if a.check:
        err, runs, mapless = compare(1, 2, 512, torch.float16, "cpu")
        print(f"rel diff to the package {err:.1e}, runs {runs}, no map {mapless}")
        if not (err < 2e-3 and runs and mapless): sys.exit("the concatenated layout does not compute fixed's forward")
    elif torch.cuda.is_available(): bench(a.shapes)
    else: sys.exit("needs a CUDA GPU (or --check, through the interpreter)")


if __name__ == "__main__": main()
