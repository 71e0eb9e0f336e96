"""A tile for each backward kernel: the dQ kernel's (queries x keys) and the dK/dV kernel's, swept apart (bf16, D=64).

Until this sweep both backward kernels of a pass shared one tile. Each setting also switches two kernel options:
`BWD_RUNS` (the dK/dV kernel counts its fully allowed query tiles instead of reading them from the table) and
`BWD_EVEN` (query tiles loaded without masks when every row exists). The dQ kernel keeps a query tile and loops over key
tiles; the dK/dV kernel keeps a key tile (its dK and dV in registers) and loops over query tiles, so each may want the
other's shape. Each setting below is a backward tile (`backward_tiles`: a dQ tile and a dK/dV tile) with the dK/dV
kernel's warps and stages; the forward keeps the package's tile. First the package's default plan is checked against
the float32 reference at a small shape (B=1, H=4, N=2,048); then at each case every setting's output and gradients are
checked against the default plan's (relative error under 1e-2), and forward plus backward is timed (median of
triton.testing.do_bench, `_bench`), each setting twice, alternating, so that a drift of the GPU shows. The package
now counts query tiles only for query tiles of at most 64 rows, so a 128-row setting with `BWD_RUNS` (0.86-0.91x as fast in
runs/2026-11-30_bwd_tiles_2337.log) is no longer in the list, and at head dim 128 it does not count either (`--switches
--head-dim 128` found counting 7-8% slower there with unmasked loads on: runs/2026-12-01_bwd_switches_d128.log), so that sweep's "runs" settings
now time the same kernels as the others.

Usage: python bench/bwd_tiles.py OUTDIR [--cases dense:1x16x16384 fixed:1x16x16384 fixed:8x8x12288] [--head-dim D]
                                  [--switches] [--rep MS] [--dry]"""
import argparse, csv, os, time
from launch_sweep import grads   # this script's folder is on the path when it runs

# (name, backward tile spec, dK/dV launch (warps, stages) or None for the package's rule, BWD_RUNS, BWD_EVEN)
SETTINGS = [("one 128x64", (128, 64), None, False, False),
            ("one 128x64 even", (128, 64), None, False, True),
            ("dkdv 32x128 w4s3 runs even", ((128, 64), (32, 128)), (4, 3), True, True),
            ("dkdv 32x128 w4s3 runs", ((128, 64), (32, 128)), (4, 3), True, False),
            ("dkdv 32x128 w4s3 even", ((128, 64), (32, 128)), (4, 3), False, True),
            ("dkdv 32x128 w4s2 runs even", ((128, 64), (32, 128)), (4, 2), True, True),
            ("dkdv 32x128 w4s4 runs even", ((128, 64), (32, 128)), (4, 4), True, True),
            ("dkdv 32x128 w8s3 runs even", ((128, 64), (32, 128)), (8, 3), True, True),
            ("dkdv 64x128 w4s3 runs even", ((128, 64), (64, 128)), (4, 3), True, True),
            ("dkdv 32x64 w4s3 runs even", ((128, 64), (32, 64)), (4, 3), True, True),
            ("dkdv 64x64 w4s3 runs even", ((128, 64), (64, 64)), (4, 3), True, True),
            ("dkdv 16x128 w4s3 runs even", ((128, 64), (16, 128)), (4, 3), True, True)]
# strided's backward tile is 64x64: its own few settings
STRIDED = [("one 64x64", (64, 64), None, False, False),
           ("one 64x64 runs even", (64, 64), None, True, True),
           ("dkdv 32x64 w4s3 runs even", ((64, 64), (32, 64)), (4, 3), True, True),
           ("dkdv 32x128 w4s3 runs even", ((64, 64), (32, 128)), (4, 3), True, True),
           ("dkdv 16x64 w4s3 runs even", ((64, 64), (16, 64)), (4, 3), True, True)]
# --switches: the package's own backward tile (None), each switch of the dK/dV kernel on and off
# --head-dim 128: the package's tiles there are 64x64 for both kernels; the dK/dV kernel's alone, unmasked loads on (at this
# head dim the package does not count query tiles)
WIDE = [("one 64x64 even", (64, 64), None, False, True),
        ("dkdv 32x64 w4s2 even", ((64, 64), (32, 64)), (4, 2), False, True),
        ("dkdv 32x64 w4s3 even", ((64, 64), (32, 64)), (4, 3), False, True),
        ("dkdv 32x128 w8s2 even", ((64, 64), (32, 128)), (8, 2), False, True),
        ("dkdv 64x64 w8s2 even", ((64, 64), (64, 64)), (8, 2), False, True),
        ("dkdv 16x64 w4s2 even", ((64, 64), (16, 64)), (4, 2), False, True)]
SWITCHES = [("default, runs even", None, None, True, True), ("default, even", None, None, False, True),
            ("default, runs", None, None, True, False), ("default, neither", None, None, False, False)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="folder for bwd_tiles.csv")
    ap.add_argument("--cases", nargs="+", default=["dense:1x16x16384", "dense:1x16x65536", "fixed:1x16x16384",
                                                   "fixed:1x16x65536", "fixed:8x8x12288", "strided:1x16x16384", "strided:1x16x65536"], metavar="PATTERN:BxHxN")
    ap.add_argument("--head-dim", type=int, default=64, help="D of the cases (the default-plan check keeps 64)")
    ap.add_argument("--rep", type=float, default=100, help="ms of do_bench's timed loop (default: %(default)s); a call over half of it is timed once")
    ap.add_argument("--switches", action="store_true", help="only the package's default backward tile, with BWD_RUNS and BWD_EVEN each on and off")
    ap.add_argument("--dry", action="store_true", help="through the interpreter on the CPU (fp16, N=512, B=1, H=2), one plain run each")
    args = ap.parse_args(argv)
    def settings(pat):
        if args.switches: return SWITCHES
        return WIDE if args.head_dim >= 128 else STRIDED if pat == "strided" else SETTINGS
    if args.dry: os.environ["TRITON_INTERPRET"] = "1"   # before the kernels are defined
    import torch
    from sparse_transformer_edu import kernels
    from sparse_transformer_edu.op import sparse_attention
    from sparse_transformer_edu.plans import backward_tiles, default_blocks, rel_err, sparse_plan
    from sparse_transformer_edu.bench import PATTERNS, _bench, device_line
    dev, dtype = ("cpu", torch.float16) if args.dry else ("cuda", torch.bfloat16)
    cases = ["dense:1x2x512", "fixed:1x2x512", "strided:1x2x512"] if args.dry else args.cases
    print(device_line() if not args.dry else "dry run, interpreter", flush=True)
    os.makedirs(args.out, exist_ok=True)
    saved, rows, t0 = dict(kernels.LAUNCH), [], time.time()
    for pat in ("dense", "fixed"):   # the default plan against float32, so that the settings' reference is right
        kw = dict(PATTERNS[pat]); kind = kw.pop("kind")
        q, k, v, do = (torch.randn(1, 4, 256 if args.dry else 2048, 64, device=dev, dtype=dtype) for _ in range(4))
        got = grads(lambda q, k, v: sparse_attention(q, k, v, kind, backend="triton", **kw), q, k, v, do)
        want = grads(lambda q, k, v: sparse_attention(q.float(), k.float(), v.float(), kind, backend="torch", **kw), q, k, v, do.float())
        errs = [rel_err(a.float(), b) for a, b in zip(got, want)]
        print(f"{pat} default plan against float32: output and gradients within {max(errs):.1e}", flush=True)
        if max(errs) > 1e-2: raise SystemExit(f"{pat}: the default plan misses the float32 reference: {errs}")
    for case in cases:
        pat, shape = case.split(":"); B, H, N = map(int, shape.split("x"))
        kw = dict(PATTERNS[pat]); kind = kw.pop("kind")
        D = args.head_dim
        q, k, v, do = (torch.randn(B, H, N, D, device=dev, dtype=dtype) for _ in range(4))
        ref = grads(lambda q, k, v: sparse_attention(q, k, v, kind, backend="triton", **kw), q, k, v, do)
        fwd_tile, own = default_blocks(kind, D)
        for rep in range(1 if args.dry else 2):
            for name, spec, launch, runs, even in settings(pat):
                spec = own if spec is None else spec
                kernels.BWD_RUNS, kernels.BWD_EVEN = runs, even
                kernels.LAUNCH.clear(); kernels.LAUNCH.update(saved)   # a new settings version: no call recorded before is replayed
                if launch: kernels.LAUNCH[("dkdv", *backward_tiles(spec)[1], D)] = dict(num_warps=launch[0], num_stages=launch[1])
                if backward_tiles(spec)[0] == (128, 128): kernels.LAUNCH[("dq", 128, 128, D)] = dict(num_warps=8, num_stages=3)
                plan = sparse_plan(kind, N, H, block=(fwd_tile, spec), device=dev, **kw)
                fn = lambda q, k, v: sparse_attention(q, k, v, plan, backend="triton")
                try:
                    err = max(rel_err(a, b) for a, b in zip(grads(fn, q, k, v, do), ref))
                    ms = _bench(fn, q, k, v, do, True, warmup=10, rep=args.rep) if err < 1e-2 else float("nan")
                except Exception as e:
                    print(f"{case} {name}: {type(e).__name__} {str(e)[:120]}", flush=True); err = ms = float("nan")
                rows.append(dict(case=case, setting=name, repeat=rep, ms=ms, err=err))
                print(f"[{time.time() - t0:5.0f}s] {case:18s} {name:34s} fwd+bwd {ms:8.3f} ms  err {err:.1e}", flush=True)
    kernels.LAUNCH.clear(); kernels.LAUNCH.update(saved)
    with open(os.path.join(args.out, "bwd_tiles.csv"), "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(rows[0])); wr.writeheader(); wr.writerows(rows)
    for case in cases:
        mine = [r for r in rows if r["case"] == case]
        sets = settings(case.split(":")[0])
        base = min(r["ms"] for r in mine if r["setting"] == sets[0][0])
        for name, *_ in sets:
            ms = [r["ms"] for r in mine if r["setting"] == name]
            print(f"SUMMARY {case:18s} {name:34s} best {min(ms):8.3f} ms  first / this {base / min(ms):.3f}")
    if args.dry and any(r["err"] != r["err"] or r["err"] >= 1e-2 for r in rows): raise SystemExit("a setting missed the package's gradients")


if __name__ == "__main__": main()
