"""A dK/dV kernel in Gluon for dense causal and fixed attention, the backward's other half, checked and timed before building.

The kernel measured here is now the package's (chapter 05, `_hopper_dkdv`, at 64x64, two stages, four warps); this
script keeps the checks and the timings of every configuration against the Triton dK/dV passes that chose it. The
package's Triton dK/dV kernel: a program per key tile walks the query tiles that read it and accumulates dK
and dV (S^T = K Q^T, P^T, dV += P^T dO, dP^T = V dO^T, dS^T, dK += dS^T Q). It takes about 60% of the backward
(bench/NOTES.md, "Where the backward's time goes"). `_gl_dkdv` is the same loop written in Gluon, in the manner of
chapter 04's Hopper forward: K and V copied once by TMA, Q and dO through a ring of STAGES buffers with a barrier each,
per query tile S^T and dP^T started together and waited for once, with the previous tile's two accumulating products;
the stage those read is refilled; P^T and dS^T formed in registers; dV and dK products left running. Key tiles of BN rows
(a warp group for each 64), query tiles of BM rows; the tiles that straddle the diagonal first (masked), then the rest.
dK and dV leave through K's and V's shared buffers by TMA stores. Fixed merged (l=128, c=32) takes the package's two
passes: its own blocks (causal within each block), then its summary keys, read through 5-D boxes [1, 1, BN/c, c, D] (the
last c rows of BN/c consecutive blocks, a full key tile with no row map) by the query tiles of every later block, their
dK and dV added to what the first pass wrote. Δ comes from the dQ kernel before it (bench/gluon_dq.py
writes it, as the package's first dQ pass does); here it is computed by torch for the check.

Usage:
  python bench/gluon_dkdv.py --compile   # CPU: compile each configuration for sm_90 with the installed Triton
  python bench/gluon_dkdv.py             # GPU: check dK and dV against float32 autograd, then time each configuration
                                         # against the package's dK/dV passes (dense and fixed, B=1, H=16, D=64, bf16)"""
import argparse, statistics, sys, time
import torch, triton

from sparse_transformer_edu.plans import LOG2E
from sparse_transformer_edu.kernels import _desc, _hopper_dkdv


_gl_dkdv = _hopper_dkdv   # the kernel, as chapter 05 now ships it


CONFIGS = [dict(BM=64, BN=64, STAGES=2, num_warps=4), dict(BM=64, BN=128, STAGES=2, num_warps=8),
           dict(BM=32, BN=128, STAGES=3, num_warps=8), dict(BM=64, BN=64, STAGES=3, num_warps=4)]
KINDS = {"dense": 0, "own": 1, "summary": 2}   # dense causal; fixed merged (l=128, c=32) is "own" then "summary"


def descriptors(q, k, v, do, dk, dv, cfg, kind, L=128, C=32):
    "The kernel's six TMA descriptors: K, V, dK and dV as 5-D summary boxes for kind 'summary'."
    B, H, N, D = q.shape
    BM, BN = cfg["BM"], cfg["BN"]
    if kind == "summary":
        rows = lambda t: _desc(t, [1, 1, BN // C, C, D], [B, H, N // L, L, D], [t.stride(0), t.stride(1), L * t.stride(2), t.stride(2), 1])
    else:
        rows = lambda t: _desc(t, [1, 1, BN, D])
    return _desc(q, [1, 1, BM, D]), rows(k), rows(v), _desc(do, [1, 1, BM, D]), rows(dk), rows(dv)


def key_tiles(N, cfg, kind, L=128, C=32) -> int:
    "Programs per head: key tiles of BN rows, or for 'summary' the tiles of BN/C blocks' summary rows that a later block reads."
    if kind != "summary": return N // cfg["BN"]
    G = cfg["BN"] // C
    return -(-(N // L - 1) // G)


def gluon_dkdv(q, k, v, do, lse, delta, cfg, kind="dense", scale=None, first=False, dk=None, dv=None, L=128, C=32):
    """(dK, dV) through `_gl_dkdv` with configuration `cfg`, every tensor contiguous, D=64: dense causal, fixed's own blocks,
    or fixed's summary keys added into `dk` and `dv` (which the 'own' pass wrote)."""
    B, H, N, D = q.shape
    assert D == 64 and N % L == 0 and N % cfg["BN"] == 0 and q.dtype in (torch.bfloat16, torch.float16) and B * H <= 65535, (q.shape, q.dtype)
    assert (dk is not None) == (kind == "summary"), "the summary pass adds into the dk and dv of the own-block pass, and only it"
    if dk is None: dk, dv = torch.full_like(k, float("nan")), torch.full_like(v, float("nan"))
    sm_scale = D ** -0.5 if scale is None else scale
    tiles = key_tiles(N, cfg, kind, L, C)
    grid = (B * H, tiles) if first else (tiles, B * H)
    _gl_dkdv[grid](*descriptors(q, k, v, do, dk, dv, cfg, kind, L, C), lse, delta, H, N, sm_scale * LOG2E, sm_scale,
                   KIND=KINDS[kind], D=D, L=L, C=C, HEADS_FIRST=first, **cfg)
    return dk, dv


def gluon_fixed_dkdv(q, k, v, do, lse, delta, cfg, first=False):
    "fixed merged attention's dK and dV: its own blocks, then its summary keys added in place."
    dk, dv = gluon_dkdv(q, k, v, do, lse, delta, cfg, "own", first=first)
    return gluon_dkdv(q, k, v, do, lse, delta, cfg, "summary", first=first, dk=dk, dv=dv)


def compile_sm90(cfg, kind="dense", N=1024, H=2, D=64):
    "Compile one configuration and kind for sm_90 without a GPU: the compiled kernel."
    from triton.backends.compiler import GPUTarget
    from triton.experimental.gluon._runtime import GluonASTSource
    from triton.runtime.jit import mangle_type
    t = torch.empty(1, H, N, D, dtype=torch.bfloat16)
    names = ("q_desc", "k_desc", "v_desc", "do_desc", "dk_desc", "dv_desc")
    cx = dict(KIND=KINDS[kind], D=D, L=128, C=32, HEADS_FIRST=False, **cfg)
    sig = {name: mangle_type(d) for name, d in zip(names, descriptors(t, t, t, t, t, t, cfg, kind))}
    sig.update(LSE="*fp32", DELTA="*fp32", H="i32", N="i32", qk_scale="fp32", sm_scale="fp32", **{k: "constexpr" for k in cx})
    return triton.compile(GluonASTSource(_gl_dkdv, signature=sig, constexprs=cx, attrs={}),
                          target=GPUTarget("cuda", 90, 32), options=dict(num_warps=cfg["num_warps"]))


def check(cfgs):
    """dK and dV against float32 autograd on fresh random inputs, dense and fixed, every configuration, both grid orders:
    the worst error of any head, and for fixed also of the summary rows alone (the last 32 of each block). N=768 (six
    blocks) makes the last summary tile at 128 keys reach past the tensor."""
    from gluon_dq import head_err, inputs, reference_grads   # this script's folder is on the path when it runs
    for kind in ("dense", "fixed"):
        for B, H, N in ((1, 2, 256), (2, 3, 768), (1, 3, 1024), (1, 4, 4096)):
            q, k, v, do, out, lse, delta = inputs(kind, B, H, N)
            summ = torch.arange(N, device="cuda") % 128 >= 96
            _, want_dk, want_dv = reference_grads(kind, q, k, v, do)
            for cfg in cfgs:
                for first in (False, True):
                    dk, dv = (gluon_fixed_dkdv(q, k, v, do, lse, delta, cfg, first) if kind == "fixed"
                              else gluon_dkdv(q, k, v, do, lse, delta, cfg, first=first))
                    errs = [head_err(a, r) for a, r in ((dk, want_dk), (dv, want_dv))]
                    if kind == "fixed": errs += [head_err(a[:, :, summ], r[:, :, summ]) for a, r in ((dk, want_dk), (dv, want_dv))]
                    ok = max(errs) < 1e-2 and torch.isfinite(dk).all().item() and torch.isfinite(dv).all().item()
                    print(f"check {kind} {cfg} B={B} H={H} N={N} heads first {first}: dk, dv (summary rows) rel err "
                          f"{', '.join(f'{e:.2e}' for e in errs)} "
                          f"{'ok' if ok else 'FAIL'}", flush=True)
                    if not ok: raise SystemExit("check failed")


def bench(cfgs, Ns=(16384, 65536), rounds=3):
    "Each configuration against the package's dK/dV passes (its tiles, its grid orders), alternating, medians of do_bench."
    import sparse_transformer_edu.kernels as K
    from sparse_transformer_edu.plans import attention_plans
    from gluon_dq import PATTERN, inputs   # this script's folder is on the path when it runs
    for N in Ns:
        for kind in ("dense", "fixed"):
            q, k, v, do, out, lse, delta = inputs(kind, 1, 16, N)
            plans = [p for p in attention_plans(kind, N, 16, device="cuda", kernel="bwd", **PATTERN[kind]) if p.role & 2]
            dq, dk0, dv0 = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
            def package():
                for i, p in enumerate(plans): K.backward_pass(q, k, v, out, do, lse, delta, p, dq, dk0, dv0, first_q=False, first_kv=i == 0)
            runs = {"package dK/dV (Triton)": package}
            for cfg in cfgs:
                for first in (False, True):
                    name = f"Gluon {cfg['BM']}x{cfg['BN']} s{cfg['STAGES']} w{cfg['num_warps']}{' heads first' if first else ''}"
                    runs[name] = (lambda c=cfg, f=first: gluon_fixed_dkdv(q, k, v, do, lse, delta, c, f)) if kind == "fixed" else \
                                 (lambda c=cfg, f=first: gluon_dkdv(q, k, v, do, lse, delta, c, first=f))
            for run in runs.values(): run()
            times = {name: [] for name in runs}
            for _ in range(rounds):
                for name, run in runs.items(): times[name].append(triton.testing.do_bench(run, warmup=50, rep=300))
            med = {name: statistics.median(ts) for name, ts in times.items()}
            for name, m in med.items():
                print(f"{kind:6s} N={N:6d} {name:40s} {m:8.4f} ms  {med['package dK/dV (Triton)'] / m:.3f}x", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--compile", action="store_true", help="compile each configuration for sm_90 on the CPU and report")
    a = ap.parse_args(argv)
    if a.compile:
        from ptxas_regs import gluon_report   # this script's folder is on the path when it runs
        for kind in KINDS:
            for cfg in CONFIGS:
                t = time.perf_counter()
                try: c = compile_sm90(cfg, kind)
                except Exception as e: print(f"{kind} {cfg}: fails: {type(e).__name__}: {str(e)[:2000]}"); continue
                print(f"{kind} {cfg}: {gluon_report(c)} ({time.perf_counter() - t:.1f} s)")
        return
    if not torch.cuda.is_available(): sys.exit("needs a GPU (or --compile)")
    print(torch.cuda.get_device_name(), "torch", torch.__version__, "triton", triton.__version__, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    check(CONFIGS)
    bench(CONFIGS)


if __name__ == "__main__": main()
