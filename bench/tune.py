"""Sweep tile shape x num_warps x num_stages for each kernel on the GPU (bf16, B=1, H=16).

One launch setting is given to the forward and both backward kernels at once; each setting is timed forward alone and
forward plus backward.

Usage: python bench/tune.py OUTDIR [--n 16384] [--d 64] [--patterns fixed strided dense] [--blocks 128x64 64x64]
                            [--warps 4 8] [--stages 2 3]"""
import argparse, csv, itertools, os, time
import torch
from sparse_transformer_edu import kernels
from sparse_transformer_edu.op import sparse_attention
from sparse_transformer_edu.bench import PATTERNS, _bench, device_line

BLOCKS = ["128x64", "64x64", "128x128", "64x32"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="folder for tune.csv")
    ap.add_argument("--n", type=int, default=16384, help="sequence length (default: %(default)s)")
    ap.add_argument("--d", type=int, default=64, help="head dimension (default: %(default)s)")
    ap.add_argument("--patterns", nargs="+", default=["fixed", "strided", "dense"], choices=list(PATTERNS))
    ap.add_argument("--blocks", nargs="+", default=BLOCKS, help="tile shapes MxN (default: %(default)s)")
    ap.add_argument("--warps", nargs="+", type=int, default=[4, 8])
    ap.add_argument("--stages", nargs="+", type=int, default=[2, 3])
    args = ap.parse_args(argv)
    blocks = [tuple(int(x) for x in b.split("x")) for b in args.blocks]
    configs = list(itertools.product(args.warps, args.stages))   # (num_warps, num_stages)
    D = args.d
    os.makedirs(args.out, exist_ok=True)
    print(device_line(), flush=True)
    q, k, v, do = (torch.randn(1, 16, args.n, D, device="cuda", dtype=torch.bfloat16) for _ in range(4))
    rows, t0 = [], time.time()
    def timed(fn, bwd):
        try: return _bench(fn, q, k, v, do, bwd, warmup=10, rep=40)
        except Exception as e: print("fail", type(e).__name__, str(e)[:120], flush=True); return float("nan")
    for blk in blocks:
        for pat in args.patterns:
            kw = dict(PATTERNS[pat]); kind = kw.pop("kind")
            fn = lambda q, k, v, kind=kind, kw=kw, blk=blk: sparse_attention(q, k, v, kind, block=blk, **kw)
            for w, s in configs:
                kernels.LAUNCH.clear()
                kernels.LAUNCH[("fwd",) + blk + (D,)] = dict(num_warps=w, num_stages=s)
                ms = timed(fn, False)
                rows.append(dict(kernel="fwd", D=D, pattern=pat, block=f"{blk[0]}x{blk[1]}", warps=w, stages=s, ms=ms))
                kernels.LAUNCH[("dkdv",) + blk + (D,)] = dict(num_warps=w, num_stages=s)
                kernels.LAUNCH[("dq",) + blk + (D,)] = dict(num_warps=w, num_stages=s)
                ms2 = timed(fn, True)
                rows.append(dict(kernel="fwd+bwd", D=D, pattern=pat, block=f"{blk[0]}x{blk[1]}", warps=w, stages=s, ms=ms2))
                print(f"[{time.time()-t0:5.0f}s] {pat:8s} {blk} w{w} s{s}: fwd {ms:.3f} fwd+bwd {ms2:.3f}", flush=True)
            with open(os.path.join(args.out, "tune.csv"), "w", newline="") as f:
                wr = csv.DictWriter(f, fieldnames=list(rows[0])); wr.writeheader(); wr.writerows(rows)
    best = {}
    for r in rows:
        key = (r["kernel"], r["pattern"])
        if r["ms"] == r["ms"] and (key not in best or r["ms"] < best[key]["ms"]): best[key] = r
    for key, r in sorted(best.items()): print("BEST", key, r["block"], "w", r["warps"], "s", r["stages"], f"{r['ms']:.3f} ms")


if __name__ == "__main__": main()
