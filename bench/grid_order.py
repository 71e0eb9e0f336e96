"""The kernels' grid order: heads along the first axis (B*H, tiles) against tiles first (tiles, B*H), bf16.

A GPU starts a grid's programs about in the order of their linear index, the first axis fastest. Each pass's table
order puts a head's longest rows first; with the tiles along the first axis that holds within each head only, and the
last head's longest rows start near the end of the run. `kernels.GRID_ORDER` switches all three kernels: "heads",
"tiles", or "auto" (heads first for the passes whose longest program is a large share of one slot's work).
For each case the orders' outputs and gradients must be identical (each program does the same arithmetic in either
order), and the default order's must be within 1e-2 of the float32 reference at a small shape first. Then forward
and forward plus backward are timed (median of triton.testing.do_bench, `_bench`), the orders alternating, three
rounds; the summary gives each order's best round and its speed-up over tiles first.

Usage: python bench/grid_order.py OUTDIR [--cases fixed:1x16x16384 dense:1x16x16384:128 ...] [--orders heads tiles]
                                  [--rounds 3] [--rep MS] [--dry]"""
import argparse, csv, os, time
from launch_sweep import grads   # this script's folder is on the path when it runs

CASES = ["dense:1x16x16384", "dense:1x16x65536", "fixed:1x16x16384", "fixed:1x16x65536", "strided:1x16x16384",
         "strided:1x16x65536", "fixed:8x8x12288", "strided:8x8x12288", "dense:8x8x12288", "dense:4x16x16384",
         "fixed:4x16x16384", "dense:1x16x16384:128", "fixed:1x16x16384:128", "fixed:1x16x4096", "strided:1x16x4096"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="folder for grid_order.csv")
    ap.add_argument("--cases", nargs="+", default=CASES, metavar="PATTERN:BxHxN[:D]")
    ap.add_argument("--orders", nargs="+", default=["heads", "tiles"], choices=["heads", "tiles", "auto"])
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (default: %(default)s)")
    ap.add_argument("--rep", type=float, default=200, help="ms of do_bench's timed loop (default: %(default)s)")
    ap.add_argument("--dry", action="store_true", help="through the interpreter on the CPU (fp16, small shapes), one plain run each")
    args = ap.parse_args(argv)
    if args.dry: os.environ["TRITON_INTERPRET"] = "1"   # before the kernels are defined
    import torch
    from sparse_transformer_edu import kernels
    from sparse_transformer_edu.op import sparse_attention
    from sparse_transformer_edu.plans import rel_err
    from sparse_transformer_edu.bench import PATTERNS, _bench, device_line
    dev, dtype = ("cpu", torch.float16) if args.dry else ("cuda", torch.bfloat16)
    cases = ["dense:2x2x256", "fixed:1x2x512:32", "strided:2x3x512"] if args.dry else args.cases
    print("dry run, interpreter" if args.dry else device_line(), flush=True)
    os.makedirs(args.out, exist_ok=True)
    saved, rows, t0 = kernels.GRID_ORDER, [], time.time()
    orders = list(dict.fromkeys([*args.orders, "tiles"]))   # tiles first is the baseline
    try:
        for pat in ("dense", "fixed", "strided"):   # the default order against float32
            kw = dict(PATTERNS[pat]); kind = kw.pop("kind")
            q, k, v, do = (torch.randn(2, 3, 256 if args.dry else 2048, 64, device=dev, dtype=dtype) for _ in range(4))
            got = grads(lambda q, k, v: sparse_attention(q, k, v, kind, backend="triton", **kw), q, k, v, do)
            want = grads(lambda q, k, v: sparse_attention(q.float(), k.float(), v.float(), kind, backend="torch", **kw), q, k, v, do.float())
            err = max(rel_err(a.float(), b) for a, b in zip(got, want))
            print(f"{pat} default order against float32: output and gradients within {err:.1e}", flush=True)
            if err > 1e-2: raise SystemExit(f"{pat}: the default order misses the float32 reference ({err:.1e})")
        for case in cases:
            pat, shape, *d = case.split(":"); B, H, N = map(int, shape.split("x")); D = int(d[0]) if d else 64
            kw = dict(PATTERNS[pat]); kind = kw.pop("kind")
            q, k, v, do = (torch.randn(B, H, N, D, device=dev, dtype=dtype) for _ in range(4))
            fn = lambda q, k, v: sparse_attention(q, k, v, kind, backend="triton", **kw)
            res = {}
            for order in orders:
                kernels.GRID_ORDER = order
                res[order] = grads(fn, q, k, v, do)
            diff = max((a - b).abs().max().item() for o in orders for a, b in zip(res[o], res["tiles"]))
            same = diff == 0
            if not same: print(f"{case}: the orders differ, max abs {diff:.2e}", flush=True)
            for rnd in range(1 if args.dry else args.rounds):
                for order in orders:
                    kernels.GRID_ORDER = order
                    for bwd in (False, True):
                        ms = _bench(fn, q, k, v, do, bwd, warmup=10, rep=args.rep)
                        rows.append(dict(case=case, order=order, bwd=bwd, round=rnd, ms=ms, same=same))
                        print(f"[{time.time() - t0:5.0f}s] {case:22s} {order:5s} "
                              f"{'fwd+bwd' if bwd else 'fwd':7s} {ms:9.3f} ms", flush=True)
    finally: kernels.GRID_ORDER = saved
    with open(os.path.join(args.out, "grid_order.csv"), "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(rows[0])); wr.writeheader(); wr.writerows(rows)
    for case in cases:
        for bwd in (False, True):
            best = {o: min(r["ms"] for r in rows if r["case"] == case and r["bwd"] == bwd and r["order"] == o) for o in orders}
            print(f"SUMMARY {case:22s} {'fwd+bwd' if bwd else 'fwd':7s} " + "  ".join(
                f"{o} {best[o]:9.3f} ms ({best['tiles'] / best[o]:.3f})" for o in orders))
    if not all(r["same"] for r in rows): raise SystemExit("the grid orders gave different results")


if __name__ == "__main__": main()
