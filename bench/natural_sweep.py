"""Sweep the tile shape and launch settings of the fixed pattern's backward passes on the GPU.

The fixed backward computes dQ over the gathered key order, and dK, dV from the own block in natural order and the
summary keys gathered into tiles of their own (chapter 05). This script times fixed merged fwd+bwd (bf16, B=1, H=16,
D=64) with the backward tile (all three backward passes) and the backward kernels' num_warps/num_stages varied, the
forward unchanged, checks each configuration's gradients against the default plan's, and writes natural_sweep.csv.
(Before the summary keys had tiles of their own, this script varied the natural-order dK/dV pass alone; its run of
2026-11-30 is in bench/runs.) At 65,536 it times only the best --top configurations from the first length.

--dry runs two configurations on the CPU through the Triton interpreter at N=256, to check the script.

Usage: python bench/natural_sweep.py OUTDIR [--n 16384 65536] [--top 4] [--dry]"""
import argparse, csv, itertools, os, time
import torch
from sparse_transformer_edu import kernels
from sparse_transformer_edu.plans import DEFAULT_BLOCKS, sparse_plan, rel_err
from sparse_transformer_edu.op import sparse_attention
from sparse_transformer_edu.bench import PATTERNS, _bench, device_line

TILES = [(128, 64), (64, 64), (128, 32), (64, 32), (128, 128)]
CONFIGS = list(itertools.product((4, 8), (2, 3)))   # (num_warps, num_stages)
L, C = PATTERNS["fixed"]["stride"], PATTERNS["fixed"]["c"]


def natural_plan(n, tile, device, stride=L, c=C):
    "The fixed plan with the default forward tile and backward tile `tile`."
    return sparse_plan("fixed", n, 1, stride=stride, c=c, block=(DEFAULT_BLOCKS["fwd"]["fixed"], tile), device=device)


def grads(plan, q, k, v, do):
    leaves = [t.detach().requires_grad_() for t in (q, k, v)]
    sparse_attention(*leaves, plan, backend="triton").backward(do)
    return [t.grad.float() for t in leaves]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="folder for natural_sweep.csv")
    ap.add_argument("--n", type=int, nargs="+", default=[16384, 65536], help="sequence lengths (default: %(default)s)")
    ap.add_argument("--top", type=int, default=4, help="configurations timed at the later lengths (default: %(default)s)")
    ap.add_argument("--dry", action="store_true", help="CPU, interpreter, N=256, two configurations")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    dev, dtype = ("cpu", torch.float32) if args.dry else ("cuda", torch.bfloat16)
    ns, H, stride, c = ([256], 2, 32, 8) if args.dry else (args.n, 16, L, C)
    tiles, configs = ([(32, 8), (32, 16)], [(4, 2)]) if args.dry else (TILES, CONFIGS)
    print(device_line() if not args.dry else "cpu", flush=True)
    rows, t0, best = [], time.time(), None
    for n in ns:
        torch.manual_seed(0)
        q, k, v, do = (torch.randn(1, H, n, 64 if not args.dry else 32, device=dev, dtype=dtype) for _ in range(4))
        want = grads(sparse_plan("fixed", n, 1, stride=stride, c=c, device=dev), q, k, v, do)
        cands = [(t, w, s) for t in tiles for w, s in configs] if best is None else best
        for tile, w, s in cands:
            plan = natural_plan(n, tile, dev, stride, c)
            for kern in ("dkdv", "dq"): kernels.LAUNCH[(kern,) + tile + (q.shape[-1],)] = dict(num_warps=w, num_stages=s)
            try:
                err = max(rel_err(a, b) for a, b in zip(grads(plan, q, k, v, do), want))
                ms = _bench(lambda q, k, v: sparse_attention(q, k, v, plan, backend="triton"), q, k, v, do, True, warmup=10, rep=50)
            except Exception as e:
                print(f"{n} {tile} w{w} s{s}: fails, {type(e).__name__}: {str(e)[:150]}", flush=True)
                err, ms = float("nan"), float("nan")
            finally:
                for kern in ("dkdv", "dq"): kernels.LAUNCH.pop((kern,) + tile + (q.shape[-1],), None)
            rows.append(dict(n=n, tile=f"{tile[0]}x{tile[1]}", warps=w, stages=s, ms=ms, grad_rel_err_vs_default=err))
            print(f"[{time.time()-t0:5.0f}s] N={n} backward tile {tile} w{w} s{s}: fwd+bwd {ms:.3f} ms, grads vs default {err:.1e}", flush=True)
            with open(os.path.join(args.out, "natural_sweep.csv"), "w", newline="") as f:
                wr = csv.DictWriter(f, fieldnames=list(rows[0])); wr.writeheader(); wr.writerows(rows)
        ok = sorted((r for r in rows if r["n"] == n and r["ms"] == r["ms"] and r["grad_rel_err_vs_default"] < 1e-2), key=lambda r: r["ms"])
        if best is None:
            best = [(tuple(int(x) for x in r["tile"].split("x")), r["warps"], r["stages"]) for r in ok[:args.top]]
        print(f"N={n} best: " + ", ".join(f"{r['tile']} w{r['warps']} s{r['stages']} {r['ms']:.3f} ms" for r in ok[:args.top]), flush=True)


if __name__ == "__main__": main()
