"""Sweep tile shape x num_warps x num_stages for each kernel on the GPU (bf16, B=1, H=16, D=64).

Usage: python bench/tune.py OUTDIR [--n 16384]"""
import argparse, csv, itertools, os, time
import torch
from sparse_transformer_edu import kernels
from sparse_transformer_edu.op import sparse_attention
from sparse_transformer_edu.bench import PATTERNS, _bench, device_line

BLOCKS = [(128, 64), (64, 64), (128, 128), (64, 32)]
CONFIGS = list(itertools.product((4, 8), (2, 3)))   # (num_warps, num_stages)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="folder for tune.csv")
    ap.add_argument("--n", type=int, default=16384, help="sequence length (default: %(default)s)")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    print(device_line(), flush=True)
    q, k, v, do = (torch.randn(1, 16, args.n, 64, device="cuda", dtype=torch.bfloat16) for _ in range(4))
    rows, t0 = [], time.time()
    def timed(fn, bwd):
        try: return _bench(fn, q, k, v, do, bwd, warmup=10, rep=40)
        except Exception as e: print("fail", type(e).__name__, str(e)[:120], flush=True); return float("nan")
    for blk in BLOCKS:
        for pat in ("fixed", "strided", "dense"):
            kw = dict(PATTERNS[pat]); kind = kw.pop("kind")
            fn = lambda q, k, v, kind=kind, kw=kw, blk=blk: sparse_attention(q, k, v, kind, block=blk, **kw)
            for w, s in CONFIGS:
                kernels.LAUNCH.clear()
                kernels.LAUNCH[("fwd",) + blk + (64,)] = dict(num_warps=w, num_stages=s)
                ms = timed(fn, False)
                rows.append(dict(kernel="fwd", pattern=pat, block=f"{blk[0]}x{blk[1]}", warps=w, stages=s, ms=ms))
                kernels.LAUNCH[("dkdv",) + blk + (64,)] = dict(num_warps=w, num_stages=s)
                kernels.LAUNCH[("dq",) + blk + (64,)] = dict(num_warps=w, num_stages=s)
                ms2 = timed(fn, True)
                rows.append(dict(kernel="fwd+bwd", pattern=pat, block=f"{blk[0]}x{blk[1]}", warps=w, stages=s, ms=ms2))
                print(f"[{time.time()-t0:5.0f}s] {pat:8s} {blk} w{w} s{s}: fwd {ms:.3f} fwd+bwd {ms2:.3f}", flush=True)
            with open(os.path.join(args.out, "tune.csv"), "w", newline="") as f:
                wr = csv.DictWriter(f, fieldnames=list(rows[0])); wr.writeheader(); wr.writerows(rows)
    best = {}
    for r in rows:
        key = (r["kernel"], r["pattern"])
        if r["ms"] == r["ms"] and (key not in best or r["ms"] < best[key]["ms"]): best[key] = r
    for key, r in sorted(best.items()): print("BEST", key, r["block"], "w", r["warps"], "s", r["stages"], f"{r['ms']:.3f} ms")


if __name__ == "__main__": main()
