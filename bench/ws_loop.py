"""Hopper warp specialization on a causal forward's loop of full tiles, against the same loop without it.

A stand-alone kernel, not the package's: K and V tiles through tensor descriptors (TMA), one loop over the fully allowed
key tiles of a query tile (the loop form Triton 3.6 can warp-specialize for sm_90; with a second loop or any tile after
the loop its NVGPUWarpSpecialization pass fails), with the key tile either counted (`col = e`) or read from a table
(`LUT`). A second kernel adds the diagonal (partly covered) tile and merges it into the output by log-sum-exp, in place.
On a GPU it checks every variant against SDPA in float32, then times each, full tiles alone and with the diagonal, at
B=1, H=16, D=64, bf16, N=16,384 and 65,536, beside cuDNN's causal forward and the package's dense forward
(medians of triton.testing.do_bench). --check runs the variants through the interpreter on the CPU (fp16, N=512)
against float64 instead.

Usage: python bench/ws_loop.py [--check]"""
import argparse, os, sys

if "--check" in sys.argv: os.environ.setdefault("TRITON_INTERPRET", "1")   # before the kernels are defined
import torch, triton, triton.language as tl


@triton.jit
def _tile(q, kd, vd, row, m_i, l_i, acc, qk_scale, offs_m, offs_n, MASK: tl.constexpr):
    "One key tile (rows `row`.. of the descriptors) folded into the running softmax."
    k = kd.load([row, 0])
    s = tl.dot(q, k.T)
    if MASK:
        s = tl.where(offs_m[:, None] >= offs_n[None, :], s, -float("inf"))
    m_new = tl.maximum(m_i, tl.max(s, 1) * qk_scale)
    p = tl.math.exp2(s * qk_scale - m_new[:, None])
    alpha = tl.math.exp2(m_i - m_new)
    l_i = l_i * alpha + tl.sum(p, 1)
    acc = acc * alpha[:, None]
    v = vd.load([row, 0])
    acc = tl.dot(p.to(v.dtype), v, acc)
    return m_new, l_i, acc


@triton.jit
def _start(Q, K, V, O, N, D: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr):
    "This program's query tile (longest rows first), its descriptors, its queries and an empty running softmax."
    pid = tl.num_programs(0) - 1 - tl.program_id(0)
    row0 = tl.program_id(1) * N
    rows = N * tl.num_programs(1)
    qd = tl.make_tensor_descriptor(Q, shape=[rows, D], strides=[D, 1], block_shape=[BM, D])
    kd = tl.make_tensor_descriptor(K, shape=[rows, D], strides=[D, 1], block_shape=[BN, D])
    vd = tl.make_tensor_descriptor(V, shape=[rows, D], strides=[D, 1], block_shape=[BN, D])
    od = tl.make_tensor_descriptor(O, shape=[rows, D], strides=[D, 1], block_shape=[BM, D])
    q = qd.load([row0 + pid * BM, 0])
    m_i = tl.full([BM], -float("inf"), tl.float32)
    l_i = tl.full([BM], 1.0, tl.float32)
    acc = tl.zeros([BM, D], tl.float32)
    return pid, row0, kd, vd, od, q, m_i, l_i, acc, pid * BM + tl.arange(0, BM)


@triton.jit
def full_fwd(Q, K, V, O, LSE, LUT, N, qk_scale, D: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr,
             WS: tl.constexpr, USE_LUT: tl.constexpr):
    "Query tile pid against its fully allowed key tiles 0 .. pid*BM/BN - 1, in one loop; writes O and LSE (base 2)."
    pid, row0, kd, vd, od, q, m_i, l_i, acc, offs_m = _start(Q, K, V, O, N, D, BM, BN)
    for e in tl.range(0, (pid * BM) // BN, warp_specialize=WS):
        if USE_LUT:
            col = tl.load(LUT + e)
        else:
            col = e
        m_i, l_i, acc = _tile(q, kd, vd, row0 + col * BN, m_i, l_i, acc, qk_scale, offs_m, offs_m, False)
    od.store([row0 + pid * BM, 0], (acc / l_i[:, None]).to(od.dtype))
    tl.store(LSE + row0 + offs_m, m_i + tl.math.log2(l_i))


@triton.jit
def diag_merge(Q, K, V, O, LSE, N, qk_scale, D: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr):
    "The partly covered tiles of query tile pid, merged into O and LSE in place."
    pid, row0, kd, vd, od, q, m_i, l_i, acc, offs_m = _start(Q, K, V, O, N, D, BM, BN)
    for e in tl.range((pid * BM) // BN, (pid + 1) * BM // BN):
        m_i, l_i, acc = _tile(q, kd, vd, row0 + e * BN, m_i, l_i, acc, qk_scale, offs_m, e * BN + tl.arange(0, BN), True)
    lse_new = m_i + tl.math.log2(l_i)
    lse_old = tl.load(LSE + row0 + offs_m)
    o_old = od.load([row0 + pid * BM, 0]).to(tl.float32)
    mx = tl.maximum(lse_old, lse_new)
    a = tl.math.exp2(lse_old - mx)
    b = tl.math.exp2(lse_new - mx)
    o = (o_old * a[:, None] + (acc / l_i[:, None]) * b[:, None]) / (a + b)[:, None]
    od.store([row0 + pid * BM, 0], o.to(od.dtype))
    tl.store(LSE + row0 + offs_m, mx + tl.math.log2(a + b))


def run(q, k, v, ws, warps, stages, BM=128, BN=128, lut=False, diag=True):
    "Causal attention of [B, H, N, D] inputs (full tiles, then the diagonal when `diag`)."
    B, H, N, D = q.shape
    o = torch.empty_like(q)
    lse = torch.empty(B, H, N, device=q.device, dtype=torch.float32)
    scale = D ** -0.5 * 1.4426950408889634
    table = torch.arange(N // BN, device=q.device, dtype=torch.int32)
    grid = (N // BM, B * H)
    full_fwd[grid](q, k, v, o, lse, table, N, scale, D=D, BM=BM, BN=BN, WS=ws, USE_LUT=lut, num_warps=warps, num_stages=stages)
    if diag: diag_merge[grid](q, k, v, o, lse, N, scale, D=D, BM=BM, BN=BN, num_warps=4, num_stages=2)
    return o


CONFIGS = [(False, 4, 3, 128, 128), (True, 4, 2, 128, 128), (True, 4, 3, 128, 128), (True, 4, 4, 128, 128),
           (False, 8, 3, 128, 128), (True, 4, 3, 128, 64), (False, 4, 3, 128, 64)]   # (warp-specialized, warps, stages, BM, BN)


def name(c, lut): return f"{'ws' if c[0] else 'plain'} w{c[1]} s{c[2]} {c[3]}x{c[4]}{' lut' if lut else ''}"


def check(dev, dtype, shape, ref_dtype, configs):
    "Largest error of every variant against SDPA in `ref_dtype`, on fresh random inputs."
    q, k, v = (torch.randn(*shape, device=dev, dtype=dtype) for _ in range(3))
    ref = torch.nn.functional.scaled_dot_product_attention(q.to(ref_dtype), k.to(ref_dtype), v.to(ref_dtype), is_causal=True)
    errs = {}
    for c in configs:
        for lut in (False, True):
            errs[name(c, lut)] = (run(q, k, v, *c, lut=lut).to(ref_dtype) - ref).abs().max().item()
            print(f"check {name(c, lut):24s} max error {errs[name(c, lut)]:.2e}", flush=True)
    return errs


def bench():
    from triton.testing import do_bench
    from torch.nn.attention import sdpa_kernel, SDPBackend
    from sparse_transformer_edu import kernels
    from sparse_transformer_edu.bench import device_line
    from sparse_transformer_edu.plans import sparse_plan
    print(device_line(), flush=True)
    triton.set_allocator(lambda size, align, stream: torch.empty(size, dtype=torch.int8, device="cuda"))
    check("cuda", torch.bfloat16, (2, 4, 2048, 64), torch.float32, CONFIGS)
    for N in (16384, 65536):
        q, k, v = (torch.randn(1, 16, N, 64, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        flops = 2 * 2 * 16 * 64 * N * N / 2
        res = {}
        with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
            res["cudnn"] = do_bench(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True), return_mode="median")
        plan = sparse_plan("dense", N, 16, device="cuda")
        res["package dense"] = do_bench(lambda: kernels.blocksparse_forward(q, k, v, plan.fwd), return_mode="median")
        for c in CONFIGS:
            for lut in (False, True):
                res[name(c, lut) + " full only"] = do_bench(lambda: run(q, k, v, *c, lut=lut, diag=False), return_mode="median")
                res[name(c, lut) + " +diag"] = do_bench(lambda: run(q, k, v, *c, lut=lut), return_mode="median")
        for key, ms in res.items():
            print(f"N={N} {key:40s} {ms:8.3f} ms  {flops / ms / 1e9:6.0f} TFLOP/s  x cuDNN {res['cudnn'] / ms:.3f}", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="check the variants through the interpreter on the CPU, no timing")
    a = ap.parse_args(argv)
    if a.check:
        errs = check("cpu", torch.float16, (1, 2, 512, 64), torch.float64, CONFIGS[:1] + CONFIGS[-2:-1])
        if max(errs.values()) > 1e-2: sys.exit(f"a variant is wrong: {errs}")
    elif torch.cuda.is_available(): bench()
    else: sys.exit("needs a CUDA GPU (or --check, through the interpreter)")


if __name__ == "__main__": main()
