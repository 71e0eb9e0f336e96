"""Sweep the kernels' tile shapes on the GPU (our kernels only, no FlexAttention); results.csv gains a `block` column.
The protocol run itself is `python -m sparse_transformer_edu.bench --out OUTDIR`.

Usage: python bench/tile_sweep.py OUTDIR"""
import argparse, csv, os, time
from sparse_transformer_edu.bench import run_benchmarks, device_line

BLOCKS = [(128, 64), (64, 64), (128, 128), (128, 32), (64, 32)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="folder for results.csv")
    ap.add_argument("--n", type=int, nargs="+", default=[16384, 65536], help="sequence lengths (default: %(default)s)")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    print(device_line(), flush=True)
    rows, t0 = [], time.time()
    for blk in BLOCKS:
        r = run_benchmarks(ns=tuple(args.n), blocks={p: blk for p in ("fixed", "strided", "dense")}, flex=False,
                           log=lambda s: print(f"[{time.time()-t0:6.1f}s] {blk} {s}", flush=True))
        rows += [dict(x, block=f"{blk[0]}x{blk[1]}") for x in r]
        with open(os.path.join(args.out, "results.csv"), "w", newline="") as f:   # after every shape: a partial sweep survives
            w = csv.DictWriter(f, fieldnames=list(rows[0].keys()), extrasaction="ignore")
            w.writeheader(); w.writerows(rows)


if __name__ == "__main__": main()
