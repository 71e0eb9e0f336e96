"""Sweep num_warps x num_stages of one kernel at a time, the others kept at the package's settings (bf16, B=1, H=16).

`tune.py` gives one launch setting to all three kernels at once; here each of the forward, dQ and dK/dV kernels is
swept alone, at the package's default tiles, and timed forward (fwd) or forward plus backward (dq, dkdv). Every
setting's output and gradients are checked against the package's default setting's (relative error under 1e-2).

Usage: python bench/launch_sweep.py OUTDIR [--cases dense:16384 fixed:16384 strided:65536] [--kernels fwd dq dkdv]
                                    [--warps 4 8] [--stages 2 3 4]"""
import argparse, csv, itertools, os, time, types
import torch


def grads(fn, q, k, v, do):
    "Output and gradients of one call."
    leaves = [t.detach().requires_grad_() for t in (q, k, v)]
    out = fn(*leaves); out.backward(do)
    return [out.detach()] + [t.grad for t in leaves]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="folder for launch_sweep.csv")
    ap.add_argument("--cases", nargs="+", default=["dense:16384", "fixed:16384", "strided:65536"], metavar="PATTERN:N")
    ap.add_argument("--kernels", nargs="+", default=["fwd", "dq", "dkdv"], choices=["fwd", "dq", "dkdv"])
    ap.add_argument("--d", type=int, default=64, help="head dimension (default: %(default)s)")
    ap.add_argument("--warps", nargs="+", type=int, default=[4, 8])
    ap.add_argument("--stages", nargs="+", type=int, default=[2, 3, 4])
    ap.add_argument("--device", default="cuda", help="cuda; cpu for a dry run through the interpreter (float16, one plain run)")
    args = ap.parse_args(argv)
    if args.device == "cpu": os.environ["TRITON_INTERPRET"] = "1"   # before the kernels are defined
    from sparse_transformer_edu import kernels
    from sparse_transformer_edu.op import sparse_attention
    from sparse_transformer_edu.plans import default_blocks, rel_err
    from sparse_transformer_edu.bench import PATTERNS, _bench, device_line
    os.makedirs(args.out, exist_ok=True)
    print(device_line(), flush=True)
    rows, t0, D = [], time.time(), args.d
    saved = dict(kernels.LAUNCH)
    for case in args.cases:
        pat, n = case.split(":"); n = int(n)
        kw = dict(PATTERNS[pat]); kind = kw.pop("kind")
        q, k, v, do = (torch.randn(1, 16, n, D, device=args.device, dtype=torch.bfloat16 if args.device == "cuda" else torch.float16) for _ in range(4))
        fn = lambda q, k, v: sparse_attention(q, k, v, kind, backend="triton", **kw)
        ref = grads(fn, q, k, v, do)
        blocks = dict(zip(("fwd", "bwd"), default_blocks(kind, D)))
        for kernel in args.kernels:
            blk = blocks["fwd" if kernel == "fwd" else "bwd"]
            default = kernels._launch_cfg(types.SimpleNamespace(BM=blk[0], BN=blk[1]), D, kernel)
            for w, s in itertools.product(args.warps, args.stages):
                kernels.LAUNCH.clear(); kernels.LAUNCH.update(saved)
                kernels.LAUNCH[(kernel, *blk, D)] = dict(num_warps=w, num_stages=s)
                try:
                    got = grads(fn, q, k, v, do)
                    err = max(rel_err(a, b) for a, b in zip(got, ref))
                    ms = _bench(fn, q, k, v, do, kernel != "fwd", warmup=10, rep=50) if err < 1e-2 else float("nan")
                except Exception as e:
                    print(f"{pat} {n} {kernel} w{w} s{s}: {type(e).__name__} {str(e)[:100]}", flush=True); err = ms = float("nan")
                is_default = default == dict(num_warps=w, num_stages=s)
                rows.append(dict(pattern=pat, N=n, D=D, kernel=kernel, block=f"{blk[0]}x{blk[1]}", warps=w, stages=s,
                                 default=is_default, ms=ms, err=err))
                print(f"[{time.time() - t0:5.0f}s] {pat:8s} N={n} {kernel:5s} {blk[0]}x{blk[1]} w{w} s{s}{' (default)' if is_default else ''}: "
                      f"{ms:.3f} ms, err {err:.1e}", flush=True)
        with open(os.path.join(args.out, "launch_sweep.csv"), "w", newline="") as f:
            wr = csv.DictWriter(f, fieldnames=list(rows[0])); wr.writeheader(); wr.writerows(rows)
    kernels.LAUNCH.clear(); kernels.LAUNCH.update(saved)
    for (pat, n, kernel), rs in itertools.groupby(rows, key=lambda r: (r["pattern"], r["N"], r["kernel"])):
        rs = [r for r in rs if r["ms"] == r["ms"]]
        if not rs: continue
        best, dflt = min(rs, key=lambda r: r["ms"]), next((r for r in rs if r["default"]), None)
        print(f"BEST {pat} N={n} {kernel}: w{best['warps']} s{best['stages']} {best['ms']:.3f} ms"
              + (f" against the default w{dflt['warps']} s{dflt['stages']} {dflt['ms']:.3f} ms ({dflt['ms'] / best['ms']:.3f}x)" if dflt else ""))


if __name__ == "__main__": main()
