"""A causal backward with five products per tile: dQ added by the dK/dV kernel through TMA reductions, measured before building.

The package's backward runs two kernels and seven products per tile: the dK/dV kernel (scores, dP, dV, dK) and the dQ
kernel (scores, dP, dQ again). A dK/dV kernel can also form each query tile's share of dQ (dS·K) and add it to a float32
buffer: five products. Done with `tl.atomic_add` (branch `bwd-fused`), one float32 atomic per element, the backward was
3-13% slower than with the two kernels, except strided's at 64K (8% faster). Hopper can instead add a whole [BM, D] tile to global memory with one TMA reduction
(`cp.reduce.async.bulk.tensor`, Triton's `tensor_descriptor.atomic_add`), issued by one thread while the others go on.

This stand-alone dense causal backward (not the package's kernels) runs in three modes, with the same code otherwise:
`tma` (five products, dQ by TMA reductions), `atomic` (five products, dQ by element atomics) and `two` (a dQ kernel of its
own, seven products). On a GPU it prints each mode and tile setting's largest error against float32 autograd (not
enforced), then times them at B=1,
H=16, D=64, bf16, N=16,384 and 65,536, beside cuDNN's backward and the package's dense backward (medians of
triton.testing.do_bench; backward alone, from a saved forward). --check runs `atomic` and `two` through the interpreter
on the CPU (fp16, N=256; key tiles smaller, equal and larger than query tiles) against float64, and fails on an error
over 1e-2 or a NaN; the interpreter has no TMA reductions. N must be a multiple of 128.

Usage: python bench/dq_reduce.py [--check]"""
import argparse, os, sys

if "--check" in sys.argv: os.environ["TRITON_INTERPRET"] = "1"   # before the kernels are defined
import torch, triton, triton.language as tl

LOG2E = 1.4426950408889634
MODES = {"two": 0, "atomic": 1, "tma": 2}


@triton.jit
def prep(O, DO, DELTA, DQA, N, D: tl.constexpr, BM: tl.constexpr, ZERO: tl.constexpr):
    "delta = rowsum(dO * O) for BM rows, and (ZERO) the same rows of the float32 dQ buffer zeroed."
    rows = tl.program_id(1) * N + tl.program_id(0) * BM + tl.arange(0, BM)
    cols = tl.arange(0, D)
    o = tl.load(O + rows[:, None] * D + cols[None, :]).to(tl.float32)
    do = tl.load(DO + rows[:, None] * D + cols[None, :]).to(tl.float32)
    tl.store(DELTA + rows, tl.sum(o * do, 1))
    if ZERO:
        tl.store(DQA + rows[:, None] * D + cols[None, :], tl.zeros([BM, D], tl.float32))


@triton.jit
def _kv_step(k, v, dk, dv, Q, DO, LSE, DELTA, DQA, dqd, row0, m, offs_n, qk_scale, sm_scale,
             D: tl.constexpr, BM: tl.constexpr, MASK: tl.constexpr, MODE: tl.constexpr):
    "Query tile m's share of dk and dv for this key tile, and (MODE 1, 2) this key tile's share of the tile's dq."
    offs_m = m * BM + tl.arange(0, BM)
    rows = row0 + offs_m
    cols = tl.arange(0, D)
    q = tl.load(Q + rows[:, None] * D + cols[None, :])
    do = tl.load(DO + rows[:, None] * D + cols[None, :])
    lse = tl.load(LSE + rows) * 1.4426950408889634
    delta = tl.load(DELTA + rows)
    pt = tl.math.exp2(tl.dot(k, tl.trans(q)) * qk_scale - lse[None, :])          # [BN, BM]
    if MASK:
        pt = tl.where(offs_m[None, :] >= offs_n[:, None], pt, 0.0)
    dv += tl.dot(pt.to(do.dtype), do)
    dst = pt * (tl.dot(v, tl.trans(do)) - delta[None, :])
    dk += tl.dot(dst.to(q.dtype), q)
    if MODE == 1:
        dq = tl.dot(tl.trans(dst).to(k.dtype), k) * sm_scale
        tl.atomic_add(DQA + rows[:, None] * D + cols[None, :], dq, sem="relaxed")
    if MODE == 2:
        dq = tl.dot(tl.trans(dst).to(k.dtype), k) * sm_scale
        dqd.atomic_add([row0 + m * BM, 0], dq)
    return dk, dv


@triton.jit
def bwd_kv(Q, K, V, DO, LSE, DELTA, DK, DV, DQA, N, qk_scale, sm_scale,
           D: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, MODE: tl.constexpr):
    "dK, dV of key tile pid (longest first); the query tiles on the diagonal masked, then the rest."
    pid = tl.program_id(0)   # key tile 0 reads every query tile: it goes first
    row0 = tl.program_id(1) * N
    offs_n = pid * BN + tl.arange(0, BN)
    cols = tl.arange(0, D)
    k = tl.load(K + (row0 + offs_n)[:, None] * D + cols[None, :])
    v = tl.load(V + (row0 + offs_n)[:, None] * D + cols[None, :])
    dqd = DQA
    if MODE == 2:
        dqd = tl.make_tensor_descriptor(DQA, shape=[N * tl.num_programs(1), D], strides=[D, 1], block_shape=[BM, D])
    dk = tl.zeros([BN, D], tl.float32)
    dv = tl.zeros([BN, D], tl.float32)
    lo = pid * BN // BM
    mid = ((pid + 1) * BN + BM - 1) // BM   # query tiles from here on see every key of this tile
    for m in range(lo, mid):
        dk, dv = _kv_step(k, v, dk, dv, Q, DO, LSE, DELTA, DQA, dqd, row0, m, offs_n, qk_scale, sm_scale, D, BM, True, MODE)
    for m in range(mid, N // BM):
        dk, dv = _kv_step(k, v, dk, dv, Q, DO, LSE, DELTA, DQA, dqd, row0, m, offs_n, qk_scale, sm_scale, D, BM, False, MODE)
    tl.store(DK + (row0 + offs_n)[:, None] * D + cols[None, :], (dk * sm_scale).to(DK.dtype.element_ty))
    tl.store(DV + (row0 + offs_n)[:, None] * D + cols[None, :], dv.to(DV.dtype.element_ty))


@triton.jit
def _q_step(q, do, lse, delta, dq, K, V, row0, n, offs_m, qk_scale, D: tl.constexpr, BN: tl.constexpr, MASK: tl.constexpr):
    "Key tile n's share of the query tile's dq: the scores and dP again, then dS·K."
    offs_n = n * BN + tl.arange(0, BN)
    cols = tl.arange(0, D)
    k = tl.load(K + (row0 + offs_n)[:, None] * D + cols[None, :])
    v = tl.load(V + (row0 + offs_n)[:, None] * D + cols[None, :])
    p = tl.math.exp2(tl.dot(q, tl.trans(k)) * qk_scale - lse[:, None])
    if MASK:
        p = tl.where(offs_m[:, None] >= offs_n[None, :], p, 0.0)
    ds = p * (tl.dot(do, tl.trans(v)) - delta[:, None])
    return tl.dot(ds.to(k.dtype), k, dq)


@triton.jit
def bwd_q(Q, K, V, DO, LSE, DELTA, DQ, N, qk_scale, sm_scale, D: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr):
    "dQ of query tile pid (longest first): its full key tiles, then the diagonal ones masked."
    pid = tl.num_programs(0) - 1 - tl.program_id(0)
    row0 = tl.program_id(1) * N
    offs_m = pid * BM + tl.arange(0, BM)
    cols = tl.arange(0, D)
    q = tl.load(Q + (row0 + offs_m)[:, None] * D + cols[None, :])
    do = tl.load(DO + (row0 + offs_m)[:, None] * D + cols[None, :])
    lse = tl.load(LSE + row0 + offs_m) * 1.4426950408889634
    delta = tl.load(DELTA + row0 + offs_m)
    dq = tl.zeros([BM, D], tl.float32)
    full = pid * BM // BN
    for n in range(0, full):
        dq = _q_step(q, do, lse, delta, dq, K, V, row0, n, offs_m, qk_scale, D, BN, False)
    for n in range(full, ((pid + 1) * BM + BN - 1) // BN):
        dq = _q_step(q, do, lse, delta, dq, K, V, row0, n, offs_m, qk_scale, D, BN, True)
    tl.store(DQ + (row0 + offs_m)[:, None] * D + cols[None, :], (dq * sm_scale).to(DQ.dtype.element_ty))


def backward(q, k, v, o, lse, do, mode, cfg):
    "dq, dk, dv of causal attention from its output and natural-log `lse`; `cfg`: (BN, BM, warps, stages) of bwd_kv."
    B, H, N, D = q.shape
    if N % 128: raise ValueError(f"N={N} is not a multiple of 128, which the dQ kernel's and the prep kernel's tiles need")
    BN, BM, warps, stages = cfg
    sm_scale = D ** -0.5
    fused = MODES[mode] > 0
    delta = torch.empty(B, H, N, device=q.device, dtype=torch.float32)
    dq = torch.empty(q.shape, device=q.device, dtype=torch.float32 if fused else q.dtype)
    dk, dv = torch.empty_like(k), torch.empty_like(v)
    prep[(N // 64, B * H)](o, do, delta, dq, N, D=D, BM=64, ZERO=fused, num_warps=4, num_stages=1)
    bwd_kv[(N // BN, B * H)](q, k, v, do, lse, delta, dk, dv, dq, N, sm_scale * LOG2E, sm_scale, D=D, BM=BM, BN=BN,
                             MODE=MODES[mode], num_warps=warps, num_stages=stages)
    if not fused:
        bwd_q[(N // 128, B * H)](q, k, v, do, lse, delta, dq, N, sm_scale * LOG2E, sm_scale, D=D, BM=128, BN=64,
                                 num_warps=4, num_stages=3)
    return dq.to(q.dtype), dk, dv


CONFIGS = {"two": [(64, 128, 4, 3), (128, 64, 8, 3)],
           "atomic": [(64, 128, 4, 3), (128, 64, 8, 3), (128, 64, 4, 2)],
           "tma": [(64, 128, 4, 3), (64, 128, 8, 3), (128, 64, 8, 3), (128, 64, 4, 2), (128, 32, 4, 3), (64, 64, 4, 3)]}


def reference(q, k, v, do, dtype):
    "Output, natural-log lse and gradients of causal attention computed in `dtype` (the package's `attention_reference`)."
    from sparse_transformer_edu.plans import attention_reference
    q, k, v = (t.detach().to(dtype).requires_grad_() for t in (q, k, v))
    n = q.shape[2]
    o, lse = attention_reference(q, k, v, torch.ones(n, n, dtype=torch.bool, device=q.device).tril(), dtype=dtype)
    o.backward(do.to(dtype))
    return o, lse, q.grad, k.grad, v.grad

def check(dev, dtype, shape, ref_dtype, modes):
    "Largest error of each mode and setting against the reference in `ref_dtype`, on fresh random inputs."
    q, k, v, do = (torch.randn(*shape, device=dev, dtype=dtype) for _ in range(4))
    o, lse, *grads = reference(q, k, v, do, ref_dtype)
    errs = {}
    for mode in modes:
        for cfg in CONFIGS[mode] if dev == "cuda" else [(64, 64, 4, 1), (32, 64, 4, 1), (128, 64, 4, 1)]:
            got = backward(q, k, v, o.to(dtype).contiguous(), lse.float().contiguous(), do, mode, cfg)
            errs[(mode, cfg)] = max((g.to(ref_dtype) - r).abs().nan_to_num(float("inf")).max().item() for g, r in zip(got, grads))
            print(f"check {mode:6s} {cfg} max error {errs[(mode, cfg)]:.2e}", flush=True)
    return errs


def bench():
    from triton.testing import do_bench
    from torch.nn.attention import sdpa_kernel, SDPBackend
    from sparse_transformer_edu import kernels
    from sparse_transformer_edu.bench import device_line
    from sparse_transformer_edu.plans import sparse_plan
    print(device_line(), flush=True)
    triton.set_allocator(lambda size, align, stream: torch.empty(size, dtype=torch.int8, device="cuda"))
    check("cuda", torch.bfloat16, (2, 4, 2048, 64), torch.float32, MODES)
    for N in (16384, 65536):
        q, k, v, do = (torch.randn(1, 16, N, 64, device="cuda", dtype=torch.bfloat16) for _ in range(4))
        plan = sparse_plan("dense", N, 16, device="cuda")
        o, lse = kernels.blocksparse_forward(q, k, v, plan.fwd)
        res = {}
        qg, kg, vg = (t.clone().requires_grad_() for t in (q, k, v))
        with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
            oc = torch.nn.functional.scaled_dot_product_attention(qg, kg, vg, is_causal=True)
            res["cudnn bwd"] = do_bench(lambda: torch.autograd.grad(oc, (qg, kg, vg), do, retain_graph=True), return_mode="median")
        res["package dense bwd"] = do_bench(lambda: kernels.blocksparse_backward(q, k, v, o, lse, do, plan.bwd), return_mode="median")
        ref = kernels.blocksparse_backward(q, k, v, o, lse, do, plan.bwd)
        for mode in MODES:
            for cfg in CONFIGS[mode]:
                got = backward(q, k, v, o, lse, do, mode, cfg)
                err = max((g.float() - r.float()).abs().max().item() for g, r in zip(got, ref))
                res[f"{mode} {cfg}"] = do_bench(lambda: backward(q, k, v, o, lse, do, mode, cfg), return_mode="median")
                print(f"N={N} {mode} {cfg} against the package's gradients: {err:.2e}", flush=True)
        flops = 5 * 2 * 16 * 64 * N * N / 2   # the five products cuDNN computes
        for key, ms in res.items():
            print(f"N={N} {key:28s} {ms:8.3f} ms  {flops / ms / 1e9:6.0f} TFLOP/s (5 products)  x cuDNN {res['cudnn bwd'] / ms:.3f}"
                  f"  x package {res['package dense bwd'] / ms:.3f}", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="check `atomic` and `two` through the interpreter on the CPU, no timing")
    a = ap.parse_args(argv)
    if a.check:
        errs = check("cpu", torch.float16, (1, 2, 256, 64), torch.float64, ["two", "atomic"])
        if not all(e <= 1e-2 for e in errs.values()): sys.exit(f"a mode is wrong: {errs}")
    elif torch.cuda.is_available(): bench()
    else: sys.exit("needs a CUDA GPU (or --check, through the interpreter)")


if __name__ == "__main__": main()
