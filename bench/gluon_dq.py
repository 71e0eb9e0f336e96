"""A dQ kernel in Gluon, the backward's half that mirrors chapter 04's Hopper forward, checked and timed before building.

The kernel measured here is now the package's (chapter 05, `_hopper_dq`); this script keeps the checks and timings
against the Triton dQ pass that chose it. The package's Triton backward runs a dQ kernel (a program per query tile,
walking its key tiles: S = Q K^T, P, dP = dO V^T, dS, dQ += dS K) and a dK/dV kernel, both in Triton; the dQ kernels take about 40% of the backward (bench/NOTES.md,
"Where the backward's time goes"). Chapter 04's forward gained 8-18% on the H200 by moving to Gluon with 64 query rows
a program, TMA copies into a ring of two stages, and one wait per tile. `_gl_dq` is that loop with the backward's
products: per key tile it starts S and dP together, waits once for both and for the previous tile's dS K, refills the
stage that product read, forms dS, and leaves dS K running. Key tiles come from the forward's own loader
(`_hp_load`): dense causal, or fixed merged (l=128, c=32) with the summary keys through a strided box, the key order of
the package's dQ pass for fixed. Like the package's first dQ pass, it also computes Δ = rowsum(O ∘ dO) for its rows,
from O and dO copied by TMA, and writes it for the dK/dV kernel.

Usage:
  python bench/gluon_dq.py --compile   # CPU: compile both kinds for sm_90 with the installed Triton; registers, spills
  python bench/gluon_dq.py             # GPU: check dQ and Δ against float32 autograd at small shapes, then time the
                                       # kernel against the package's dQ kernel (B=1, H=16, D=64, bf16)"""
import argparse, statistics, sys, time
import torch, triton

from sparse_transformer_edu.plans import LOG2E
from sparse_transformer_edu.kernels import _desc, _hopper_dq


_gl_dq = _hopper_dq   # the kernel, as chapter 05 now ships it


CFG = dict(BM=64, STAGES=2, num_warps=4)


def descriptors(q, k, v, out, do, dq, fixed, L=128, C=32):
    "The kernel's eight TMA descriptors, through the package's descriptor cache."
    B, H, N, D = q.shape
    rows = [1, 1, CFG["BM"], D]
    kd, vd = _desc(k, [1, 1, L, D]), _desc(v, [1, 1, L, D])
    ksd, vsd = kd, vd
    if fixed:
        ksd, vsd = (_desc(t, [1, 1, L // C, C, D], [B, H, N // L, L, D], [t.stride(0), t.stride(1), L * t.stride(2), t.stride(2), 1])
                    for t in (k, v))
    return _desc(q, rows), kd, vd, ksd, vsd, _desc(do, rows), _desc(out, rows), _desc(dq, rows)


def gluon_dq(q, k, v, out, do, lse, fixed, scale=None, first=False, L=128, C=32):
    "(dQ, Δ) of dense causal or fixed merged attention through `_gl_dq`; q, k, v, out, do contiguous [B, H, N, 64]."
    B, H, N, D = q.shape
    assert D == 64 and N % L == 0 and q.dtype in (torch.bfloat16, torch.float16) and B * H <= 65535, (q.shape, q.dtype)
    dq = torch.full_like(q, float("nan"))
    delta = torch.full((B, H, N), float("nan"), device=q.device)
    sm_scale = D ** -0.5 if scale is None else scale
    grid = (B * H, N // CFG["BM"]) if first else (N // CFG["BM"], B * H)
    _gl_dq[grid](*descriptors(q, k, v, out, do, dq, fixed, L, C), lse, delta, H, N, sm_scale * LOG2E, sm_scale,
                 FIXED=fixed, L=L, C=C, D=D, HEADS_FIRST=first, **CFG)
    return dq, delta


def compile_sm90(fixed, N=1024, H=2, D=64):
    "Compile the kernel for sm_90 without a GPU: the compiled kernel."
    from triton.backends.compiler import GPUTarget
    from triton.experimental.gluon._runtime import GluonASTSource
    from triton.runtime.jit import mangle_type
    t = torch.empty(1, H, N, D, dtype=torch.bfloat16)
    names = ("q_desc", "k_desc", "v_desc", "ks_desc", "vs_desc", "do_desc", "o_desc", "dq_desc")
    cx = dict(FIXED=fixed, L=128, C=32, D=D, HEADS_FIRST=False, **CFG)
    sig = {name: mangle_type(d) for name, d in zip(names, descriptors(t, t, t, t, t, t, fixed))}
    sig.update(LSE="*fp32", DELTA="*fp32", H="i32", N="i32", qk_scale="fp32", sm_scale="fp32", **{k: "constexpr" for k in cx})
    return triton.compile(GluonASTSource(_gl_dq, signature=sig, constexprs=cx, attrs={}),
                          target=GPUTarget("cuda", 90, 32), options=dict(num_warps=CFG["num_warps"]))


PATTERN = {"dense": dict(stride=1), "fixed": dict(stride=128, c=32)}   # the package's settings of each kind here


def inputs(kind, B, H, N):
    "Fresh bf16 q, k, v, dO, the package's forward (out, lse) and Δ, for 'dense' or 'fixed'."
    from sparse_transformer_edu.kernels import blocksparse_forward
    from sparse_transformer_edu.plans import attention_plans
    q, k, v, do = (torch.randn(B, H, N, 64, device="cuda", dtype=torch.bfloat16) for _ in range(4))
    out, lse = blocksparse_forward(q, k, v, attention_plans(kind, N, H, device="cuda", **PATTERN[kind]))
    return q, k, v, do, out, lse, (out.float() * do.float()).sum(-1)


def reference_grads(kind, q, k, v, do) -> tuple:
    "dQ, dK and dV by float32 autograd under the pattern's mask."
    from sparse_transformer_edu.patterns import token_mask
    qf, kf, vf = (t.float().requires_grad_() for t in (q, k, v))
    mask = token_mask(kind, q.shape[2], device="cuda", **PATTERN[kind])
    s = (qf @ kf.transpose(-1, -2) / 8.0).masked_fill(~mask, float("-inf"))
    (torch.softmax(s, -1) @ vf).backward(do.float())
    return qf.grad, kf.grad, vf.grad


def head_err(x, ref) -> float:
    "The largest relative error (Frobenius norm) of any one batch and head."
    return ((x.float() - ref).flatten(2).norm(dim=-1) / ref.flatten(2).norm(dim=-1)).max().item()


def check():
    """dQ and Δ against float32 autograd on fresh random inputs (the forward from the package), both kinds and grid orders;
    the error is the worst of each head's. N=768 (six blocks) makes fixed's last summary box reach past the tensor."""
    for fixed in (False, True):
        for B, H, N in ((1, 2, 128), (2, 3, 768), (1, 3, 1024), (1, 4, 4096)):
            q, k, v, do, out, lse, want_delta = inputs("fixed" if fixed else "dense", B, H, N)
            want_dq = reference_grads("fixed" if fixed else "dense", q, k, v, do)[0]
            for first in (False, True):
                dq, delta = gluon_dq(q, k, v, out, do, lse, fixed, first=first)
                err = head_err(dq, want_dq)
                derr = ((delta - want_delta).abs().max() / want_delta.abs().max()).item()
                ok = err < 1e-2 and derr < 1e-3 and torch.isfinite(dq).all().item()
                print(f"check {'fixed' if fixed else 'dense'} B={B} H={H} N={N} heads first {first}: dq rel err {err:.2e}, "
                      f"delta {derr:.1e} {'ok' if ok else 'FAIL'}", flush=True)
                if not ok: raise SystemExit("check failed")


def bench(Ns=(16384, 65536), rounds=3):
    "The Gluon dQ kernel against the package's dQ kernel (the same pass: dQ and Δ), alternating, medians of do_bench."
    import sparse_transformer_edu.kernels as K
    from sparse_transformer_edu.plans import attention_plans
    for N in Ns:
        for fixed in (False, True):
            kind = "fixed" if fixed else "dense"
            q, k, v, do, out, lse, _ = inputs(kind, 1, 16, N)
            (plan,) = [p for p in attention_plans(kind, N, 16, device="cuda", kernel="bwd", **PATTERN[kind]) if p.role == 1]
            dq0, dk, dv, delta0 = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v), torch.empty_like(lse)
            pkg = lambda: K.backward_pass(q, k, v, out, do, lse, delta0, plan, dq0, dk, dv, first_q=True, first_kv=False)
            first = K.heads_first(plan, 16)
            ours = lambda: gluon_dq(q, k, v, out, do, lse, fixed, first=first)
            pkg(); dq1, delta1 = ours()
            err = ((dq1.float() - dq0.float()).norm() / dq0.float().norm()).item()
            times = {"package dQ (Triton)": [], "Gluon dQ": []}
            for _ in range(rounds):
                times["package dQ (Triton)"].append(triton.testing.do_bench(pkg, warmup=50, rep=300))
                times["Gluon dQ"].append(triton.testing.do_bench(ours, warmup=50, rep=300))
            med = {n: statistics.median(t) for n, t in times.items()}
            base = med["package dQ (Triton)"]
            print(f"{kind:6s} N={N:6d} heads first {first}: " + " | ".join(f"{n} {m:.4f} ms ({base / m:.3f}x)" for n, m in med.items())
                  + f"; dq apart {err:.1e}", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--compile", action="store_true", help="compile both kinds for sm_90 on the CPU and report")
    a = ap.parse_args(argv)
    if a.compile:
        from ptxas_regs import gluon_report   # this script's folder is on the path when it runs
        for fixed in (False, True):
            t = time.perf_counter()
            print(f"{'fixed' if fixed else 'dense'}: {gluon_report(compile_sm90(fixed))} ({time.perf_counter() - t:.1f} s)")
        return
    if not torch.cuda.is_available(): sys.exit("needs a GPU (or --compile)")
    print(torch.cuda.get_device_name(), "torch", torch.__version__, "triton", triton.__version__, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    check()
    bench()


if __name__ == "__main__": main()
