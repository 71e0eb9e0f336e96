"""Sweep the kernels' tile shapes on the H200 (our kernels only, no FlexAttention); results.csv gains a `block` column.
The protocol run itself is `python -m sparse_transformer_edu.bench --out OUTDIR`.

Usage: python bench/h200_run.py OUTDIR"""
import os, sys, time, csv
from sparse_transformer_edu.bench import run_benchmarks, device_line

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
print(device_line(), flush=True)
rows = []
def save():
    with open(os.path.join(out, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()) + ["block"], extrasaction="ignore")
        w.writeheader(); w.writerows(rows)
t0 = time.time()
for blk in [(128, 64), (64, 64), (128, 128), (128, 32), (64, 32)]:
    r = run_benchmarks(ns=(16384, 65536), blocks={p: blk for p in ("fixed", "strided", "dense")}, flex=False,
                       log=lambda s: print(f"[{time.time()-t0:6.1f}s] {blk} {s}", flush=True))
    rows += [dict(x, block=f"{blk[0]}x{blk[1]}") for x in r]; save()
