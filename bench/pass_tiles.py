"""Sweep the tile shape of each pass of a pattern's plan on its own, the other passes at the package's tiles (bf16).

A plan's passes share one tile shape per kernel (`default_blocks`). The strided band and its transposed stride part,
and fixed's gathered dQ pass, own-block pass and summary pass, cover different shapes of work, so each may prefer a
tile of its own. For every case (pattern, B, H, N) this script replaces one forward or backward pass at a time by the
same pass built with another tile, checks the output and gradients against the default plan's (relative error under
1e-2), and times the forward (forward passes) or forward plus backward (backward passes). It then combines the best
tile of every pass and times that plan against the default plan, alternating, `--repeats` times each. Rows are
written to pass_tiles.csv as they are measured.

--dry runs the strided case on the CPU through the Triton interpreter at N=256 with two tiles, to check the script.

Usage: python bench/pass_tiles.py OUTDIR [--cases strided:1:16:65536 strided:8:8:12288 fixed:1:16:16384 ...]
                                  [--tiles 64x64 128x64 ...] [--repeats 3] [--budget SECONDS] [--dry]"""
import argparse, csv, dataclasses, os, time
import torch
from launch_sweep import grads   # this script's folder is on the path when it runs

TILES = ["64x64", "128x64", "64x128", "128x128", "64x32", "128x32"]
CASES = ["strided:1:16:65536", "strided:8:8:12288", "fixed:1:16:65536", "fixed:8:8:12288", "fixed:1:16:16384"]


def tile(s): return tuple(int(x) for x in s.split("x"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="folder for pass_tiles.csv")
    ap.add_argument("--cases", nargs="+", default=CASES, metavar="PATTERN:B:H:N")
    ap.add_argument("--tiles", nargs="+", default=TILES, metavar="ROWSxCOLS")
    ap.add_argument("--repeats", type=int, default=3, help="alternating timings of the combined plan against the default (default: %(default)s)")
    ap.add_argument("--budget", type=float, default=float("inf"), help="seconds; no new case starts after them")
    ap.add_argument("--check-n", type=int, default=2048, help="length at which the package's plan is checked against float32 first (default: %(default)s)")
    ap.add_argument("--dry", action="store_true", help="CPU, interpreter, strided at N=256, two tiles")
    args = ap.parse_args(argv)
    if args.dry: os.environ["TRITON_INTERPRET"] = "1"   # before the kernels are defined
    from sparse_transformer_edu.op import sparse_attention
    from sparse_transformer_edu.plans import sparse_plan, attention_plans, rel_err
    from sparse_transformer_edu.bench import PATTERNS, _bench, _tile, device_line, reference_output, reference_grads
    os.makedirs(args.out, exist_ok=True)
    dev, dtype, D = ("cpu", torch.float32, 32) if args.dry else ("cuda", torch.bfloat16, 64)
    cases, tiles = (["strided:1:2:256"], ["32x32", "32x16"]) if args.dry else (args.cases, args.tiles)
    print(device_line() if not args.dry else "cpu, interpreter", flush=True)
    rows, t0, path = [], time.time(), os.path.join(args.out, "pass_tiles.csv")

    def record(**row):
        rows.append(row)
        with open(path, "w", newline="") as f:
            wr = csv.DictWriter(f, fieldnames=list(rows[0])); wr.writeheader(); wr.writerows(rows)

    for case in cases:
        if time.time() - t0 > args.budget: print(f"budget spent: {case} not run", flush=True); continue
        pat, B, H, n = case.split(":"); B, H, n = int(B), int(H), int(n)
        kw = dict(PATTERNS[pat]); kind = kw.pop("kind")
        if args.dry: kw["stride"] = 16
        default_plan = sparse_plan(kind, n, 1, device=dev, head_dim=D, **kw)
        base = {"fwd": default_plan.fwd, "bwd": default_plan.bwd}
        # the package's passes, under their tile where they share one (a backward with a tile for each kernel does not)
        built = {(kn, (ps[0].BM, ps[0].BN)): ps for kn, ps in base.items() if len({(p.BM, p.BN) for p in ps}) == 1}
        def passes(kernel, blk):
            if (kernel, blk) not in built:
                s = time.time(); built[kernel, blk] = attention_plans(kind, n, 1, block=blk, device=dev, kernel=kernel, **kw)
                print(f"[{time.time() - t0:5.0f}s] {case} {kernel} passes at {_tile(blk)} built in {time.time() - s:.1f} s", flush=True)
            return built[kernel, blk]
        def same_pass(kernel, blk, i):
            """Pass i of the package's plan built at tile blk: the same pass of the pattern, with the same role (a plan
            whose backward kernels have tiles of their own holds each pass once per kernel, a plan with one tile once)."""
            p = base[kernel][i]; rank = [j for j, x in enumerate(base[kernel]) if x.role == p.role].index(i)
            return dataclasses.replace([x for x in passes(kernel, blk) if x.role & p.role][rank], role=p.role)
        plan_of = lambda f, b: dataclasses.replace(default_plan, fwd=tuple(f), bwd=tuple(b), name=f"{kind} per-pass tiles")
        torch.manual_seed(0)
        q, k, v, do = (torch.randn(B, H, n, D, device=dev, dtype=dtype) for _ in range(4))
        run = lambda plan: (lambda q, k, v: sparse_attention(q, k, v, plan, backend="triton"))
        want = grads(run(default_plan), q, k, v, do)
        # the package's own plan at a short length against the float32 reference
        small = min(n, args.check_n)
        xs = [torch.randn(1, H, small, D, device=dev, dtype=dtype) for _ in range(4)]
        got = grads(run(sparse_plan(kind, small, 1, device=dev, head_dim=D, **kw)), *xs)
        ref = [reference_output(*xs[:3], kind, heads=H, **kw)] + reference_grads(*xs, kind, heads=H, **kw)
        err = max(rel_err(a, w) for a, w in zip(got, ref))
        print(f"{case}: the package's plan at N={small} against float32: {err:.1e}", flush=True)
        if not err < 1e-2: raise SystemExit(f"{case}: the package's plan at N={small} is off the float32 reference by {err:.1e}")
        best = {}
        for kernel in ("fwd", "bwd"):
            for i in range(len(base[kernel])):
                timed, own = [], _tile((base[kernel][i].BM, base[kernel][i].BN))
                for t in ([own] if own not in tiles else []) + tiles:
                    swap = list(base[kernel]); swap[i] = same_pass(kernel, tile(t), i)
                    f, b = (swap, base["bwd"]) if kernel == "fwd" else (base["fwd"], swap)
                    fn = run(plan_of(f, b))
                    try:
                        err = max(rel_err(a, w) for a, w in zip(grads(fn, q, k, v, do), want))
                        ms = _bench(fn, q, k, v, do, kernel == "bwd", warmup=10, rep=100) if err < 1e-2 else float("nan")
                    except Exception as e:
                        print(f"{case} {kernel} pass {i} {t}: fails, {type(e).__name__}: {str(e)[:150]}", flush=True)
                        err = ms = float("nan")
                    is_default = t == own
                    record(case=case, kernel=kernel, pass_index=i, tile=t, default=is_default, ms=ms, rel_err_vs_default=err)
                    print(f"[{time.time() - t0:5.0f}s] {case} {kernel} pass {i} {t}{' (default)' if is_default else ''}: "
                          f"{'fwd' if kernel == 'fwd' else 'fwd+bwd'} {ms:.3f} ms, err {err:.1e}", flush=True)
                    if ms == ms: timed.append((ms, t))
                if timed: best[(kernel, i)] = min(timed)[1]
        pick = lambda kn: [same_pass(kn, tile(best[kn, i]), i) if (kn, i) in best else p for i, p in enumerate(base[kn])]
        combined = plan_of(pick("fwd"), pick("bwd"))
        err = max(rel_err(a, w) for a, w in zip(grads(run(combined), q, k, v, do), want))
        names = " ".join(f"{kn}{i}={best.get((kn, i), '-')}" for kn, i in sorted(best))
        if not err < 1e-2:   # each swap passed alone; their combination must too
            print(f"{case}: the combined plan ({names}) is off the package's by {err:.1e}: not timed", flush=True); continue
        for r in range(args.repeats):
            for label, plan in (("default", default_plan), ("combined", combined)):
                for bwd in (False, True):
                    ms = _bench(run(plan), q, k, v, do, bwd, warmup=10, rep=100)
                    record(case=case, kernel=f"{label} {'fwd+bwd' if bwd else 'fwd'}", pass_index=r, tile=names if label == "combined" else "default",
                           default=label == "default", ms=ms, rel_err_vs_default=err if label == "combined" else 0.0)
                    print(f"[{time.time() - t0:5.0f}s] {case} {label} ({names if label == 'combined' else 'package tiles'}) "
                          f"{'fwd+bwd' if bwd else 'fwd'}: {ms:.3f} ms{f', err {err:.1e}' if label == 'combined' else ''}", flush=True)
        del q, k, v, do, want


if __name__ == "__main__": main()
