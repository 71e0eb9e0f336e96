"""One H200 call: bf16 checks through the notebooks' cuda cells are run separately; this times the kernels.

Usage: python bench/h200_run.py OUTDIR [sweep]"""
import os, sys, time, csv, json
import torch, triton
from sparse_transformer_edu.bench import run_benchmarks

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
print(torch.cuda.get_device_name(), "torch", torch.__version__, "triton", triton.__version__, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), flush=True)
rows = []
def save():
    with open(os.path.join(out, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()) + ["block"], extrasaction="ignore")
        w.writeheader(); w.writerows(rows)
t0 = time.time()
if "sweep" in sys.argv:
    for blk in [(128, 64), (64, 64), (128, 128), (128, 32), (64, 32)]:
        r = run_benchmarks(ns=(16384, 65536), blocks={p: blk for p in ("fixed", "strided", "dense")}, flex=False,
                           log=lambda s: print(f"[{time.time()-t0:6.1f}s] {blk} {s}", flush=True))
        rows += [dict(x, block=f"{blk[0]}x{blk[1]}") for x in r]; save()
if "protocol" in sys.argv:
    r = run_benchmarks(ns=(4096, 16384, 65536), flex=True, log=lambda s: print(f"[{time.time()-t0:6.1f}s] {s}", flush=True))
    rows += r; save()
