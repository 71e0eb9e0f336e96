"""A dK/dV kernel in Gluon for dense causal and fixed attention, the backward's other half, checked and timed before building.

The package's dK/dV kernel is Triton's: a program per key tile walks the query tiles that read it and accumulates dK
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
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import mbarrier, fence_async_shared, tma, warpgroup_mma, warpgroup_mma_wait, warpgroup_mma_init

from sparse_transformer_edu.plans import LOG2E
from sparse_transformer_edu.kernels import _desc, _tma_load, _tma_store


@gluon.jit
def _load_q(q_desc, do_desc, q_smem, do_smem, q_bar, do_bar, b, h, qt0, t, T, BM: gl.constexpr, STAGES: gl.constexpr):
    "Start the copies of query tile qt0 + t (Q and dO) into its stage, if t < T."
    st, ok = t % STAGES, t < T
    mbarrier.expect(q_bar.index(st), q_desc.block_type.nbytes, pred=ok)
    _tma_load(q_desc, [b, h, (qt0 + t) * BM, 0], q_bar.index(st), q_smem.index(st), pred=ok)
    mbarrier.expect(do_bar.index(st), do_desc.block_type.nbytes, pred=ok)
    _tma_load(do_desc, [b, h, (qt0 + t) * BM, 0], do_bar.index(st), do_smem.index(st), pred=ok)


@gluon.jit
def _dkdv_step(k, v, q_smem, do_smem, q_bar, do_bar, descs, b, h, qt0, t, T_next, key0, dk, dv, LSE, DELTA, lbase, qk_scale,
               MASK: gl.constexpr, BM: gl.constexpr, BN: gl.constexpr, D: gl.constexpr, L: gl.constexpr, C: gl.constexpr,
               STAGES: gl.constexpr, s_layout: gl.constexpr, o_layout: gl.constexpr):
    """Query tile qt0 + t's share of dK and dV: S^T and dP^T, one wait, the refill (of T_next tiles: 0 at t = 0, whose stages
    were filled before the loop), the mask (0: none; 1: causal, query i >= key key0 + r; 2: summary keys, read from the
    next block on, key row r of block key0 + r // C), P^T and dS^T, then both products left running."""
    st = t % STAGES
    qrows = (qt0 + t) * BM + gl.arange(0, BM, layout=gl.SliceLayout(0, s_layout))
    lse2 = gl.load(LSE + lbase + qrows) * 1.4426950408889634
    delta = gl.load(DELTA + lbase + qrows)
    zeros = gl.zeros([BN, BM], gl.float32, s_layout)
    q = q_smem.index(st).reshape([BM, D])
    do = do_smem.index(st).reshape([BM, D])
    mbarrier.wait(q_bar.index(st), (t // STAGES) & 1)
    st_ = warpgroup_mma(k, q.permute((1, 0)), zeros, use_acc=False, is_async=True)
    mbarrier.wait(do_bar.index(st), (t // STAGES) & 1)
    dpt = warpgroup_mma(v, do.permute((1, 0)), zeros, use_acc=False, is_async=True)
    st_, dpt, dk, dv = warpgroup_mma_wait(0, deps=(st_, dpt, dk, dv))
    _load_q(descs[0], descs[1], q_smem, do_smem, q_bar, do_bar, b, h, qt0, t - 1 + STAGES, T_next, BM, STAGES)
    r = gl.arange(0, BN, layout=gl.SliceLayout(1, s_layout))
    if MASK == 1:
        st_ = gl.where(gl.expand_dims(qrows, 0) >= gl.expand_dims(key0 + r, 1), st_, float("-inf"))
    if MASK == 2:
        st_ = gl.where(gl.expand_dims(qrows // L, 0) > gl.expand_dims(key0 + r // C, 1), st_, float("-inf"))
    pt = gl.exp2(st_ * qk_scale - gl.expand_dims(lse2, 0))
    dst = pt * (dpt - gl.expand_dims(delta, 0))
    op: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=o_layout, k_width=2)
    dv = warpgroup_mma(gl.convert_layout(pt.to(do.dtype), op), do, dv, is_async=True)
    dk = warpgroup_mma(gl.convert_layout(dst.to(q.dtype), op), q, dk, is_async=True)
    return dk, dv


@gluon.jit
def _gl_dkdv(q_desc, k_desc, v_desc, do_desc, dk_desc, dv_desc, LSE, DELTA, H, N, qk_scale, sm_scale,
             KIND: gl.constexpr, BM: gl.constexpr, BN: gl.constexpr, D: gl.constexpr, L: gl.constexpr, C: gl.constexpr,
             STAGES: gl.constexpr, HEADS_FIRST: gl.constexpr, num_warps: gl.constexpr):
    """dK and dV of one key tile of BN rows: KIND 0 dense causal; 1 fixed's own block (causal within blocks of L); 2 fixed's
    summary keys (the last C rows of BN/C consecutive blocks, through 5-D boxes), added to what pass 1 wrote. Key tile 0,
    the longest walk, first."""
    if HEADS_FIRST:
        bh, kt = gl.program_id(0), gl.program_id(1)
    else:
        kt, bh = gl.program_id(0), gl.program_id(1)
    b, h = bh // H, bh % H
    if KIND == 2:
        G: gl.constexpr = BN // C
        key0 = kt * G                        # for the mask: the block of the tile's first summary row
        qt0 = (key0 + 1) * L // BM           # queries from the next block on
        T = N // BM - qt0
        NMASK: gl.constexpr = (G - 1) * L // BM   # query tiles in blocks that only some of these keys precede
    else:
        key0 = kt * BN
        qt0 = key0 // BM                     # the first query tile that reads these keys
        if KIND == 1:
            T = (key0 // L + 1) * (L // BM) - qt0   # to the end of the keys' block
        else:
            T = N // BM - qt0
        NMASK: gl.constexpr = BN // BM       # query tiles that straddle the diagonal
    s_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, BM, 16])
    o_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, D, 16])
    k_smem = gl.allocate_shared_memory(k_desc.dtype, k_desc.block_type.shape, k_desc.layout)
    v_smem = gl.allocate_shared_memory(v_desc.dtype, v_desc.block_type.shape, v_desc.layout)
    q_smem = gl.allocate_shared_memory(q_desc.dtype, [STAGES] + q_desc.block_type.shape, q_desc.layout)
    do_smem = gl.allocate_shared_memory(do_desc.dtype, [STAGES] + do_desc.block_type.shape, do_desc.layout)
    kv_bar = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    q_bar = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    do_bar = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    mbarrier.init(kv_bar, count=1)
    for i in gl.static_range(STAGES):
        mbarrier.init(q_bar.index(i), count=1)
        mbarrier.init(do_bar.index(i), count=1)
    if KIND == 2:
        at = [b, h, kt * G, L - C, 0]        # 5-D boxes [1, 1, G, C, D] over [B, H, N/L, L, D]: the summary rows
    else:
        at = [b, h, key0, 0]
    mbarrier.expect(kv_bar, k_desc.block_type.nbytes + v_desc.block_type.nbytes)
    _tma_load(k_desc, at, kv_bar, k_smem)
    _tma_load(v_desc, at, kv_bar, v_smem)
    descs = (q_desc, do_desc)
    for t in gl.static_range(STAGES):
        _load_q(q_desc, do_desc, q_smem, do_smem, q_bar, do_bar, b, h, qt0, t, T, BM, STAGES)
    dk = warpgroup_mma_init(gl.zeros([BN, D], gl.float32, o_layout))
    dv = warpgroup_mma_init(gl.zeros([BN, D], gl.float32, o_layout))
    mbarrier.wait(kv_bar, 0)
    k, v = k_smem.reshape([BN, D]), v_smem.reshape([BN, D])
    args = (k, v, q_smem, do_smem, q_bar, do_bar, descs, b, h, qt0)
    MASK: gl.constexpr = 2 if KIND == 2 else 1
    for t in range(0, gl.where(T < NMASK, T, NMASK)):
        dk, dv = _dkdv_step(*args, t, T * (t > 0).to(gl.int32), key0, dk, dv, LSE, DELTA, bh * N, qk_scale, MASK,
                            BM, BN, D, L, C, STAGES, s_layout, o_layout)
    for t in range(NMASK, T):
        dk, dv = _dkdv_step(*args, t, T, key0, dk, dv, LSE, DELTA, bh * N, qk_scale, 0, BM, BN, D, L, C, STAGES, s_layout, o_layout)
    dk, dv = warpgroup_mma_wait(0, deps=(dk, dv))
    dk = dk * sm_scale
    if KIND == 2:   # K's and V's buffers are free (every product that read them is done): bring in pass 1's dK and dV there
        mbarrier.expect(kv_bar, dk_desc.block_type.nbytes + dv_desc.block_type.nbytes)
        _tma_load(dk_desc, at, kv_bar, k_smem)
        _tma_load(dv_desc, at, kv_bar, v_smem)
        mbarrier.wait(kv_bar, 1)
        dk += k.load(o_layout).to(gl.float32)
        dv += v.load(o_layout).to(gl.float32)
    mbarrier.invalidate(kv_bar)
    for i in gl.static_range(STAGES):
        mbarrier.invalidate(q_bar.index(i))
        mbarrier.invalidate(do_bar.index(i))
    k.store(dk.to(dk_desc.dtype))
    v.store(dv.to(dv_desc.dtype))
    fence_async_shared()
    _tma_store(dk_desc, at, k_smem)
    _tma_store(dv_desc, at, v_smem)
    tma.store_wait(pendings=0)


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
