"""Causal attention forwards written in Gluon, whose matrix products, their waits and their copies are placed by hand.

The package's first forward is plain Triton: the compiler decides when each matrix product is waited for. A Triton
loop that starts the next key tile's scores before the current softmax (bench/qk_ahead.py) gained nothing, because
Triton 3.6 waits for that product at once. Gluon, Triton's lower-level language, lets the kernel say where each
wait goes. This script holds the kernels that asked the question, each with TMA copies into a ring of STAGES buffers
with a barrier each for K and V:

- `_gl_attn_fwd`, dense causal, in two orders. With AHEAD, a trip starts S(j+1) = Q K(j+1)^T, runs the softmax of S(j)
  meanwhile, then waits for P(j-1) V(j-1) and starts P(j) V(j) (STAGES >= 3). Without AHEAD, it waits once for S(j)
  and P(j-1) V(j-1) together, as Triton's pipeliner orders the package's kernel (STAGES >= 2).
- `_gl_attn_fwd_ws`, the AHEAD loop with its copies issued by a warp of its own (warp specialization).
- `_gl_fixed_fwd`, fixed merged (l=128, c=32). K and V are viewed as [B*H*N/l, l, D]; a 3-D TMA box [l/c, c, D] is
  then the last c rows of l/c blocks, one key tile of summary keys read with no row map.

Timed on an H200 on 2026-12-01 (bench/NOTES.md, runs/2026-12-01_gluon_fwd_*.txt). Starting the next scores ahead and
warp specialization were slower than the package's Triton forward. The plain order with 64 query rows a program (three
programs an SM) was faster: dense 1.01-1.04x cuDNN, fixed 3.66x and 3.96x at N=16,384 and 65,536. The package took that
kernel over (chapter 04's Hopper forward); --package and --host time the package itself, with it off and on.

Usage:
  python bench/gluon_fwd.py --compile [--best]   # CPU: compile for sm_90 with the installed Triton; registers, spills
  python bench/gluon_fwd.py [--best]             # GPU: check against float32 at small shapes, then time against SDPA
                                                 # and the package's Triton kernel (B=1, H=16, D=64, bf16)
  python bench/gluon_fwd.py --best --protocol    # GPU: chapter 11's protocol, FlexAttention's fixed included
  python bench/gluon_fwd.py --package [--sizes N ...] | --host   # GPU: the package's forward, its Gluon kernel off and on
"""
import argparse, math, sys, time
import torch, triton
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.nvidia.hopper import TensorDescriptor
from triton.experimental.gluon.language.nvidia.hopper import tma, mbarrier, fence_async_shared, warpgroup_mma, warpgroup_mma_wait, warpgroup_mma_init

from sparse_transformer_edu.plans import LOG2E
from sparse_transformer_edu.kernels import _tma_load, _tma_store   # TMA copies under their names in any Triton with Gluon


@gluon.jit
def _load_kv(k_desc, v_desc, k_smem, v_smem, k_bar, v_bar, kv_row0, t, T, STAGES: gl.constexpr, BN: gl.constexpr):
    "Start the TMA copies of key and value tile t into its stage, if t < T."
    st = t % STAGES
    ok = t < T
    mbarrier.expect(k_bar.index(st), k_desc.block_type.nbytes, pred=ok)
    _tma_load(k_desc, [kv_row0 + t * BN, 0], k_bar.index(st), k_smem.index(st), pred=ok)
    mbarrier.expect(v_bar.index(st), v_desc.block_type.nbytes, pred=ok)
    _tma_load(v_desc, [kv_row0 + t * BN, 0], v_bar.index(st), v_smem.index(st), pred=ok)


@gluon.jit
def _softmax(s, m_i, l_i, qk_scale):
    "Fold raw scores s into the running row maximum and sum (base 2): (p, alpha, m_new, l_new)."
    m_new = gl.maximum(m_i, gl.max(s, axis=1) * qk_scale)
    p = gl.exp2(s * qk_scale - gl.expand_dims(m_new, 1))
    alpha = gl.exp2(m_i - m_new)
    return p, alpha, m_new, l_i * alpha + gl.sum(p, axis=1)


@gluon.jit
def _gl_attn_fwd(q_desc, k_desc, v_desc, o_desc, LSE, N, qk_scale, BM: gl.constexpr, BN: gl.constexpr, D: gl.constexpr,
                 STAGES: gl.constexpr, AHEAD: gl.constexpr, num_warps: gl.constexpr):
    n_m = N // BM
    start_m = n_m - 1 - gl.program_id(0)          # longest rows first
    bh = gl.program_id(1)
    row0 = bh * N + start_m * BM                  # rows of the [B*H*N, D] views
    kv_row0 = bh * N
    T = gl.cdiv((start_m + 1) * BM, BN)           # key tiles of this row tile; the last one holds the diagonal

    s_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, BN, 16])
    o_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, D, 16])
    p_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=o_layout, k_width=2)

    q_smem = gl.allocate_shared_memory(q_desc.dtype, [BM, D], q_desc.layout)
    k_smem = gl.allocate_shared_memory(k_desc.dtype, [STAGES, BN, D], k_desc.layout)
    v_smem = gl.allocate_shared_memory(v_desc.dtype, [STAGES, BN, D], v_desc.layout)
    q_bar = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    k_bar = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    v_bar = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    mbarrier.init(q_bar, count=1)
    for i in gl.static_range(STAGES):
        mbarrier.init(k_bar.index(i), count=1)
        mbarrier.init(v_bar.index(i), count=1)

    mbarrier.expect(q_bar, q_desc.block_type.nbytes)
    _tma_load(q_desc, [row0, 0], q_bar, q_smem)
    for t in gl.static_range(STAGES):
        _load_kv(k_desc, v_desc, k_smem, v_smem, k_bar, v_bar, kv_row0, t, T, STAGES, BN)

    zero_s = gl.zeros([BM, BN], gl.float32, s_layout)
    acc = warpgroup_mma_init(gl.zeros([BM, D], gl.float32, o_layout))   # carried through the loop as a product in flight
    m_i = gl.full([BM], float("-inf"), gl.float32, gl.SliceLayout(1, s_layout))
    l_i = gl.zeros([BM], gl.float32, gl.SliceLayout(1, s_layout))

    mbarrier.wait(q_bar, 0)
    if AHEAD:
        mbarrier.wait(k_bar.index(0), 0)
        s = warpgroup_mma(q_smem, k_smem.index(0).permute((1, 0)), zero_s, use_acc=False, is_async=True)
        s = warpgroup_mma_wait(0, deps=(s,))

    for j in range(0, T - 1):                     # every key tile but the last is wholly below the diagonal
        st = j % STAGES
        if AHEAD:
            nxt = j + 1
            mbarrier.wait(k_bar.index(nxt % STAGES), (nxt // STAGES) & 1)
            s_next = warpgroup_mma(q_smem, k_smem.index(nxt % STAGES).permute((1, 0)), zero_s, use_acc=False, is_async=True)
            p, alpha, m_i, l_i = _softmax(s, m_i, l_i, qk_scale)
            p = gl.convert_layout(p.to(v_desc.dtype), p_layout)
            acc = warpgroup_mma_wait(1, deps=(acc,))  # P(j-1) V(j-1) is done: its stage is free
            _load_kv(k_desc, v_desc, k_smem, v_smem, k_bar, v_bar, kv_row0, j - 1 + STAGES, T * (j > 0).to(gl.int32), STAGES, BN)
        else:                                     # the order Triton's pipeliner gives: P(j-1) V(j-1) runs into S(j)
            mbarrier.wait(k_bar.index(st), (j // STAGES) & 1)
            s = warpgroup_mma(q_smem, k_smem.index(st).permute((1, 0)), zero_s, use_acc=False, is_async=True)
            s, acc = warpgroup_mma_wait(0, deps=(s, acc))
            _load_kv(k_desc, v_desc, k_smem, v_smem, k_bar, v_bar, kv_row0, j - 1 + STAGES, T * (j > 0).to(gl.int32), STAGES, BN)
            p, alpha, m_i, l_i = _softmax(s, m_i, l_i, qk_scale)
            p = gl.convert_layout(p.to(v_desc.dtype), p_layout)
        acc = acc * gl.expand_dims(gl.convert_layout(alpha, gl.SliceLayout(1, o_layout)), 1)
        mbarrier.wait(v_bar.index(st), (j // STAGES) & 1)
        acc = warpgroup_mma(p, v_smem.index(st), acc, is_async=True)
        if AHEAD:
            s = warpgroup_mma_wait(1, deps=(s_next,))

    j = T - 1                                     # the diagonal tile
    st = j % STAGES
    if not AHEAD:
        mbarrier.wait(k_bar.index(st), (j // STAGES) & 1)
        s = warpgroup_mma(q_smem, k_smem.index(st).permute((1, 0)), zero_s, use_acc=False, is_async=True)
        s = warpgroup_mma_wait(0, deps=(s,))
    offs_m = start_m * BM + gl.arange(0, BM, layout=gl.SliceLayout(1, s_layout))
    offs_n = j * BN + gl.arange(0, BN, layout=gl.SliceLayout(0, s_layout))
    s = gl.where(gl.expand_dims(offs_m, 1) >= gl.expand_dims(offs_n, 0), s, float("-inf"))
    p, alpha, m_i, l_i = _softmax(s, m_i, l_i, qk_scale)
    p = gl.convert_layout(p.to(v_desc.dtype), p_layout)
    acc = warpgroup_mma_wait(0, deps=(acc,))
    acc = acc * gl.expand_dims(gl.convert_layout(alpha, gl.SliceLayout(1, o_layout)), 1)
    mbarrier.wait(v_bar.index(st), (j // STAGES) & 1)
    acc = warpgroup_mma(p, v_smem.index(st), acc, is_async=True)
    acc = warpgroup_mma_wait(0, deps=(acc,))

    mbarrier.invalidate(q_bar)
    for i in gl.static_range(STAGES):
        mbarrier.invalidate(k_bar.index(i))
        mbarrier.invalidate(v_bar.index(i))
    l_o = gl.convert_layout(l_i, gl.SliceLayout(1, o_layout))
    out = acc / gl.expand_dims(l_o, 1)
    q_smem.store(out.to(o_desc.dtype))            # Q's buffer is free: every product that read it is done
    fence_async_shared()
    _tma_store(o_desc, [row0, 0], q_smem)
    lse = (m_i + gl.log2(l_i)) * 0.6931471805599453   # natural log, as SDPA and the package keep it
    gl.store(LSE + bh * N + offs_m, lse)
    tma.store_wait(pendings=0)


@gluon.jit
def _ws_loads(q_desc, k_desc, v_desc, q_smem, k_smem, v_smem, q_bar, k_ready, v_ready, k_empty, v_empty,
              row0, kv_row0, T, BN: gl.constexpr, STAGES: gl.constexpr):
    "The loading warp: Q once, then each key tile's K and V as soon as the products that read its stage are done."
    mbarrier.expect(q_bar, q_desc.block_type.nbytes)
    _tma_load(q_desc, [row0, 0], q_bar, q_smem)
    for t in range(T):
        st = t % STAGES
        ph = ((t // STAGES) & 1) ^ 1              # the phase that ends the stage's previous use
        mbarrier.wait(k_empty.index(st), ph, pred=t >= STAGES)
        mbarrier.expect(k_ready.index(st), k_desc.block_type.nbytes)
        _tma_load(k_desc, [kv_row0 + t * BN, 0], k_ready.index(st), k_smem.index(st))
        mbarrier.wait(v_empty.index(st), ph, pred=t >= STAGES)
        mbarrier.expect(v_ready.index(st), v_desc.block_type.nbytes)
        _tma_load(v_desc, [kv_row0 + t * BN, 0], v_ready.index(st), v_smem.index(st))


@gluon.jit
def _ws_compute(q_smem, k_smem, v_smem, q_bar, k_ready, v_ready, k_empty, v_empty, T, start_m, qk_scale,
                BM: gl.constexpr, BN: gl.constexpr, D: gl.constexpr, STAGES: gl.constexpr, num_warps: gl.constexpr):
    "The computing warps: the loop of `_gl_attn_fwd`, releasing each stage to the loading warp instead of refilling it."
    s_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, BN, 16])
    o_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, D, 16])
    p_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=o_layout, k_width=2)
    zero_s = gl.zeros([BM, BN], gl.float32, s_layout)
    acc = warpgroup_mma_init(gl.zeros([BM, D], gl.float32, o_layout))
    m_i = gl.full([BM], float("-inf"), gl.float32, gl.SliceLayout(1, s_layout))
    l_i = gl.zeros([BM], gl.float32, gl.SliceLayout(1, s_layout))
    mbarrier.wait(q_bar, 0)
    mbarrier.wait(k_ready.index(0), 0)
    s = warpgroup_mma(q_smem, k_smem.index(0).permute((1, 0)), zero_s, use_acc=False, is_async=True)
    s = warpgroup_mma_wait(0, deps=(s,))
    mbarrier.arrive(k_empty.index(0))
    for j in range(0, T - 1):
        nxt = j + 1
        mbarrier.wait(k_ready.index(nxt % STAGES), (nxt // STAGES) & 1)
        s_next = warpgroup_mma(q_smem, k_smem.index(nxt % STAGES).permute((1, 0)), zero_s, use_acc=False, is_async=True)
        p, alpha, m_i, l_i = _softmax(s, m_i, l_i, qk_scale)
        p = gl.convert_layout(p.to(v_smem.dtype), p_layout)
        acc = warpgroup_mma_wait(1, deps=(acc,))
        mbarrier.arrive(v_empty.index((j + STAGES - 1) % STAGES), pred=j > 0)   # V(j-1) is read
        acc = acc * gl.expand_dims(gl.convert_layout(alpha, gl.SliceLayout(1, o_layout)), 1)
        st = j % STAGES
        mbarrier.wait(v_ready.index(st), (j // STAGES) & 1)
        acc = warpgroup_mma(p, v_smem.index(st), acc, is_async=True)
        s = warpgroup_mma_wait(1, deps=(s_next,))
        mbarrier.arrive(k_empty.index(nxt % STAGES))                            # K(j+1) is read
    j = T - 1
    offs_m = start_m * BM + gl.arange(0, BM, layout=gl.SliceLayout(1, s_layout))
    offs_n = j * BN + gl.arange(0, BN, layout=gl.SliceLayout(0, s_layout))
    s = gl.where(gl.expand_dims(offs_m, 1) >= gl.expand_dims(offs_n, 0), s, float("-inf"))
    p, alpha, m_i, l_i = _softmax(s, m_i, l_i, qk_scale)
    p = gl.convert_layout(p.to(v_smem.dtype), p_layout)
    acc = warpgroup_mma_wait(0, deps=(acc,))
    acc = acc * gl.expand_dims(gl.convert_layout(alpha, gl.SliceLayout(1, o_layout)), 1)
    st = j % STAGES
    mbarrier.wait(v_ready.index(st), (j // STAGES) & 1)
    acc = warpgroup_mma(p, v_smem.index(st), acc, is_async=True)
    acc = warpgroup_mma_wait(0, deps=(acc,))
    l_o = gl.convert_layout(l_i, gl.SliceLayout(1, o_layout))
    return acc / gl.expand_dims(l_o, 1), (m_i + gl.log2(l_i)) * 0.6931471805599453


@gluon.jit
def _gl_attn_fwd_ws(q_desc, k_desc, v_desc, o_desc, LSE, N, qk_scale,
                    BM: gl.constexpr, BN: gl.constexpr, D: gl.constexpr, STAGES: gl.constexpr, num_warps: gl.constexpr):
    "`_gl_attn_fwd` with its copies issued by one warp of their own (warp specialization)."
    n_m = N // BM
    start_m = n_m - 1 - gl.program_id(0)
    bh = gl.program_id(1)
    row0 = bh * N + start_m * BM
    T = gl.cdiv((start_m + 1) * BM, BN)
    q_smem = gl.allocate_shared_memory(q_desc.dtype, [BM, D], q_desc.layout)
    k_smem = gl.allocate_shared_memory(k_desc.dtype, [STAGES, BN, D], k_desc.layout)
    v_smem = gl.allocate_shared_memory(v_desc.dtype, [STAGES, BN, D], v_desc.layout)
    q_bar = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    k_ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    v_ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    k_empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    v_empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    mbarrier.init(q_bar, count=1)
    for i in gl.static_range(STAGES):
        for b in gl.static_range(4):
            mbarrier.init((k_ready, v_ready, k_empty, v_empty)[b].index(i), count=1)
    out, lse = gl.warp_specialize([
        (_ws_compute, (q_smem, k_smem, v_smem, q_bar, k_ready, v_ready, k_empty, v_empty, T, start_m, qk_scale, BM, BN, D, STAGES, num_warps)),
        (_ws_loads, (q_desc, k_desc, v_desc, q_smem, k_smem, v_smem, q_bar, k_ready, v_ready, k_empty, v_empty, row0, bh * N, T, BN, STAGES)),
    ], [1], [24])
    q_smem.store(out.to(o_desc.dtype))
    fence_async_shared()
    _tma_store(o_desc, [row0, 0], q_smem)
    offs_m = start_m * BM + gl.arange(0, BM, layout=lse.type.layout)
    gl.store(LSE + bh * N + offs_m, lse)
    tma.store_wait(pendings=0)


@gluon.jit
def _load_fixed(k3_desc, v3_desc, k_desc, v_desc, k_smem, v_smem, k_bar, v_bar, blk0, local_row, t, T,
                STAGES: gl.constexpr, L: gl.constexpr, C: gl.constexpr, D: gl.constexpr):
    """Start the copies of fixed's tile t into its stage, if t < T: a summary tile (the last C rows of each of L/C blocks)
    through the 3-D descriptors, the last tile (the query tile's own block) through the 2-D ones."""
    st = t % STAGES
    ok = t < T
    summ = t < T - 1
    G: gl.constexpr = L // C                      # blocks whose summary rows fill one tile of L keys
    k3 = k_smem.index(st).reshape([G, C, D])
    v3 = v_smem.index(st).reshape([G, C, D])
    mbarrier.expect(k_bar.index(st), k_desc.block_type.nbytes, pred=ok)
    _tma_load(k3_desc, [blk0 + t * G, L - C, 0], k_bar.index(st), k3, pred=ok & summ)
    _tma_load(k_desc, [local_row, 0], k_bar.index(st), k_smem.index(st), pred=ok & (t >= T - 1))
    mbarrier.expect(v_bar.index(st), v_desc.block_type.nbytes, pred=ok)
    _tma_load(v3_desc, [blk0 + t * G, L - C, 0], v_bar.index(st), v3, pred=ok & summ)
    _tma_load(v_desc, [local_row, 0], v_bar.index(st), v_smem.index(st), pred=ok & (t >= T - 1))


@gluon.jit
def _fixed_step(q_smem, k_smem, v_smem, k_bar, v_bar, descs, blk0, local_row, t, T, b, start_m, acc, m_i, l_i, zero_s,
                qk_scale, MASK: gl.constexpr, BM: gl.constexpr, L: gl.constexpr, C: gl.constexpr, D: gl.constexpr,
                STAGES: gl.constexpr, s_layout: gl.constexpr, o_layout: gl.constexpr, p_layout: gl.constexpr):
    """One key tile t of fixed's row: S = Q K^T (waiting for the previous P V too), refill the stage freed, the mask
    (MASK 0: none, 1: summary blocks from b on, 2: causal in the query's own block), the softmax, then P V started."""
    st = t % STAGES
    mbarrier.wait(k_bar.index(st), (t // STAGES) & 1)
    s = warpgroup_mma(q_smem, k_smem.index(st).permute((1, 0)), zero_s, use_acc=False, is_async=True)
    s, acc = warpgroup_mma_wait(0, deps=(s, acc))
    _load_fixed(descs[0], descs[1], descs[2], descs[3], k_smem, v_smem, k_bar, v_bar, blk0, local_row, t - 1 + STAGES,
                T * (t > 0).to(gl.int32), STAGES, L, C, D)
    cols = gl.arange(0, L, layout=gl.SliceLayout(0, s_layout))
    if MASK == 1:
        s = gl.where(gl.expand_dims(cols // C < b - t * (L // C), 0), s, float("-inf"))
    if MASK == 2:
        rows = start_m * BM - b * L + gl.arange(0, BM, layout=gl.SliceLayout(1, s_layout))
        s = gl.where(gl.expand_dims(rows, 1) >= gl.expand_dims(cols, 0), s, float("-inf"))
    p, alpha, m_i, l_i = _softmax(s, m_i, l_i, qk_scale)
    p = gl.convert_layout(p.to(v_smem.dtype), p_layout)
    acc = acc * gl.expand_dims(gl.convert_layout(alpha, gl.SliceLayout(1, o_layout)), 1)
    mbarrier.wait(v_bar.index(st), (t // STAGES) & 1)
    return warpgroup_mma(p, v_smem.index(st), acc, is_async=True), m_i, l_i


@gluon.jit
def _gl_fixed_fwd(q_desc, k_desc, v_desc, k3_desc, v3_desc, o_desc, LSE, N, qk_scale, BM: gl.constexpr, L: gl.constexpr,
                  C: gl.constexpr, D: gl.constexpr, STAGES: gl.constexpr, num_warps: gl.constexpr):
    """Fixed attention (block L, its last C columns the summary, merged): a query tile of block b reads the summary rows
    of blocks 0..b-1, L/C blocks to a key tile, straight from K and V through a strided 3-D box, then its own block."""
    start_m = N // BM - 1 - gl.program_id(0)      # longest rows first
    bh = gl.program_id(1)
    row0 = bh * N + start_m * BM
    b = start_m * BM // L                         # the query tile's block
    G: gl.constexpr = L // C
    T = gl.cdiv(b, G) + 1                         # summary tiles, then the block itself
    blk0 = bh * (N // L)
    local_row = bh * N + b * L

    s_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, L, 16])
    o_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, D, 16])
    p_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=o_layout, k_width=2)
    q_smem = gl.allocate_shared_memory(q_desc.dtype, [BM, D], q_desc.layout)
    k_smem = gl.allocate_shared_memory(k_desc.dtype, [STAGES, L, D], k_desc.layout)
    v_smem = gl.allocate_shared_memory(v_desc.dtype, [STAGES, L, D], v_desc.layout)
    q_bar = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    k_bar = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    v_bar = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    mbarrier.init(q_bar, count=1)
    for i in gl.static_range(STAGES):
        mbarrier.init(k_bar.index(i), count=1)
        mbarrier.init(v_bar.index(i), count=1)
    mbarrier.expect(q_bar, q_desc.block_type.nbytes)
    _tma_load(q_desc, [row0, 0], q_bar, q_smem)
    for t in gl.static_range(STAGES):
        _load_fixed(k3_desc, v3_desc, k_desc, v_desc, k_smem, v_smem, k_bar, v_bar, blk0, local_row, t, T, STAGES, L, C, D)

    zero_s = gl.zeros([BM, L], gl.float32, s_layout)
    acc = warpgroup_mma_init(gl.zeros([BM, D], gl.float32, o_layout))
    m_i = gl.full([BM], float("-inf"), gl.float32, gl.SliceLayout(1, s_layout))
    l_i = gl.zeros([BM], gl.float32, gl.SliceLayout(1, s_layout))
    mbarrier.wait(q_bar, 0)
    descs = (k3_desc, v3_desc, k_desc, v_desc)
    for t in range(0, b // G):                    # summary tiles of G whole blocks before b: no mask
        acc, m_i, l_i = _fixed_step(q_smem, k_smem, v_smem, k_bar, v_bar, descs, blk0, local_row, t, T, b, start_m,
                                    acc, m_i, l_i, zero_s, qk_scale, 0, BM, L, C, D, STAGES, s_layout, o_layout, p_layout)
    if b % G:                                     # the last summary tile holds blocks from b on: masked
        acc, m_i, l_i = _fixed_step(q_smem, k_smem, v_smem, k_bar, v_bar, descs, blk0, local_row, T - 2, T, b, start_m,
                                    acc, m_i, l_i, zero_s, qk_scale, 1, BM, L, C, D, STAGES, s_layout, o_layout, p_layout)
    acc, m_i, l_i = _fixed_step(q_smem, k_smem, v_smem, k_bar, v_bar, descs, blk0, local_row, T - 1, T, b, start_m,
                                acc, m_i, l_i, zero_s, qk_scale, 2, BM, L, C, D, STAGES, s_layout, o_layout, p_layout)
    acc = warpgroup_mma_wait(0, deps=(acc,))

    mbarrier.invalidate(q_bar)
    for i in gl.static_range(STAGES):
        mbarrier.invalidate(k_bar.index(i))
        mbarrier.invalidate(v_bar.index(i))
    out = acc / gl.expand_dims(gl.convert_layout(l_i, gl.SliceLayout(1, o_layout)), 1)
    q_smem.store(out.to(o_desc.dtype))
    fence_async_shared()
    _tma_store(o_desc, [row0, 0], q_smem)
    offs_m = start_m * BM + gl.arange(0, BM, layout=gl.SliceLayout(1, s_layout))
    gl.store(LSE + bh * N + offs_m, (m_i + gl.log2(l_i)) * 0.6931471805599453)
    tma.store_wait(pendings=0)


def fixed_descriptors(k, v, L, C):
    "3-D TMA descriptors over K and V viewed as [B*H*N/L, L, D], each box the last C rows of L/C consecutive blocks."
    D = k.shape[-1]
    dt = gl.bfloat16 if k.dtype == torch.bfloat16 else gl.float16
    box = [L // C, C, D]
    lay = gl.NVMMASharedLayout.get_default_for(box, dt)
    return tuple(TensorDescriptor.from_tensor(t.reshape(-1, L, D), box, lay) for t in (k, v))


def gluon_fixed(q, k, v, L=128, C=32, scale=None, BM=64, STAGES=2, num_warps=4, out=None, lse=None):
    "Fixed attention (merged, summary the last C of each block of L) of contiguous [B, H, N, D] bf16/fp16 tensors: (out, lse)."
    B, H, N, D = q.shape
    if N % L or L % BM or L % C: raise ValueError(f"N={N} must be a multiple of L={L}, L of BM={BM} and of C={C}")
    q, k, v = (t.contiguous() for t in (q, k, v))
    out = torch.empty_like(q) if out is None else out
    lse = torch.empty(B, H, N, device=q.device, dtype=torch.float32) if lse is None else lse
    scale = 1 / math.sqrt(D) if scale is None else scale
    qd, kd, vd, od = descriptors(q, k, v, out, BM, L)
    _gl_fixed_fwd[(N // BM, B * H)](qd, kd, vd, *fixed_descriptors(k, v, L, C), od, lse, N, scale * LOG2E,
                                    BM=BM, L=L, C=C, D=D, STAGES=STAGES, num_warps=num_warps)
    return out, lse


def descriptors(q, k, v, out, BM, BN):
    "TMA descriptors over the [B*H*N, D] views of q, k, v and out."
    D = q.shape[-1]
    dt = gl.bfloat16 if q.dtype == torch.bfloat16 else gl.float16
    lq, lk = (gl.NVMMASharedLayout.get_default_for([b, D], dt) for b in (BM, BN))
    flat = lambda t: t.reshape(-1, D)
    return (TensorDescriptor.from_tensor(flat(q), [BM, D], lq), TensorDescriptor.from_tensor(flat(k), [BN, D], lk),
            TensorDescriptor.from_tensor(flat(v), [BN, D], lk), TensorDescriptor.from_tensor(flat(out), [BM, D], lq))


def gluon_attention(q, k, v, scale=None, BM=128, BN=128, STAGES=3, num_warps=8, AHEAD=True, WS=False, out=None, lse=None):
    "Dense causal attention of contiguous [B, H, N, D] bf16/fp16 tensors: (out, lse)."
    B, H, N, D = q.shape
    if N % BN or N % BM or BN % BM: raise ValueError(f"N={N} must be a multiple of BN={BN}, and BN of BM={BM}")
    if STAGES < 2 + (AHEAD and not WS): raise ValueError("with AHEAD and no WS a stage is refilled two trips before it is read: STAGES >= 3; else >= 2")
    if WS and not AHEAD: raise ValueError("the warp-specialized kernel always starts the next scores ahead")
    q, k, v = (t.contiguous() for t in (q, k, v))
    out = torch.empty_like(q) if out is None else out
    lse = torch.empty(B, H, N, device=q.device, dtype=torch.float32) if lse is None else lse
    scale = 1 / math.sqrt(D) if scale is None else scale
    (_gl_attn_fwd_ws if WS else _gl_attn_fwd)[(N // BM, B * H)](*descriptors(q, k, v, out, BM, BN), lse, N, scale * LOG2E,
                                   BM=BM, BN=BN, D=D, STAGES=STAGES, num_warps=num_warps, **({} if WS else dict(AHEAD=AHEAD)))
    return out, lse


CONFIGS = ([dict(BM=BM, BN=128, STAGES=s, num_warps=4, AHEAD=False) for BM in (128, 64) for s in (2, 3)]
           + [dict(BM=64, BN=BN, STAGES=s, num_warps=4) for BN in (128, 64) for s in (3, 4)] + [dict(BM=128, BN=128, STAGES=4, num_warps=8)]
           + [dict(BM=BM, BN=BN, STAGES=s, num_warps=w, WS=True) for BM, BN, w in ((64, 128, 4), (64, 64, 4), (128, 128, 8)) for s in (2, 3)])


FIXED_CONFIGS = [dict(fixed=True, BM=BM, STAGES=s, num_warps=4) for BM in (64, 128) for s in (2, 3)]
BEST = [dict(BM=64, BN=128, STAGES=2, num_warps=4, AHEAD=False), dict(BM=128, BN=128, STAGES=2, num_warps=4, AHEAD=False)] + FIXED_CONFIGS


def compile_sm90(cfg, N=4096, D=64):
    "Compile one configuration (of `CONFIGS`, or of `FIXED_CONFIGS` with 'fixed') for sm_90 without a GPU: the compiled kernel."
    from triton.backends.compiler import GPUTarget
    from triton.experimental.gluon._runtime import GluonASTSource
    from triton.runtime.jit import mangle_type
    q = torch.empty(1, 1, N, D, dtype=torch.bfloat16)
    cx = dict(BM=cfg["BM"], D=D, STAGES=cfg["STAGES"], num_warps=cfg["num_warps"])
    if cfg.get("fixed"):
        kernel, names, descs = _gl_fixed_fwd, ("q_desc", "k_desc", "v_desc", "k3_desc", "v3_desc", "o_desc"), None
        qd, kd, vd, od = descriptors(q, q, q, q, cfg["BM"], 128)
        descs = (qd, kd, vd, *fixed_descriptors(q, q, 128, 32), od)
        cx.update(L=128, C=32)
    else:
        kernel = _gl_attn_fwd_ws if cfg.get("WS") else _gl_attn_fwd
        names, descs = ("q_desc", "k_desc", "v_desc", "o_desc"), descriptors(q, q, q, q, cfg["BM"], cfg["BN"])
        cx.update(BN=cfg["BN"])
        if not cfg.get("WS"): cx["AHEAD"] = cfg.get("AHEAD", True)
    sig = {name: mangle_type(d) for name, d in zip(names, descs)}
    sig.update(LSE="*fp32", N="i32", qk_scale="fp32", **{k: "constexpr" for k in cx})
    src = GluonASTSource(kernel, signature=sig, constexprs=cx, attrs={(len(names),): [["tt.divisibility", 16]]})
    return triton.compile(src, target=GPUTarget("cuda", 90, 32), options=dict(num_warps=cfg["num_warps"]))


def reference(q, k, v, mask):
    "float32 attention under a boolean [N, N] mask, and its natural-log log-sum-exp."
    s = (q.float() @ k.float().transpose(-1, -2)) / math.sqrt(q.shape[-1])
    s = s.masked_fill(~mask, float("-inf"))
    return torch.softmax(s, -1) @ v.float(), torch.logsumexp(s, -1)


def _name(cfg): return "gluon " + "/".join(f"{k}{v}" for k, v in cfg.items() if k != "fixed")


def _run(cfg, q, k, v, **kw):
    "The Gluon kernel `cfg` names, on (q, k, v): (out, lse)."
    c = {k_: v_ for k_, v_ in cfg.items() if k_ != "fixed"}
    return gluon_fixed(q, k, v, **c, **kw) if cfg.get("fixed") else gluon_attention(q, k, v, **c, **kw)


def check(cfgs):
    "Each configuration against float32 on fresh random inputs, outputs poisoned first: dense causal, or fixed l=128 c=32."
    from sparse_transformer_edu.patterns import token_mask
    for cfg in cfgs:
        for B, H, N in ((1, 2, 128), (2, 3, 1024), (1, 4, 4096)):
            q, k, v = (torch.randn(B, H, N, 64, device="cuda", dtype=torch.bfloat16) for _ in range(3))
            out, lse = _run(cfg, q, k, v, out=torch.full_like(q, float("nan")), lse=torch.full((B, H, N), float("nan"), device="cuda"))
            mask = token_mask("fixed", N, stride=128, c=32, device="cuda") if cfg.get("fixed") else token_mask("dense", N, stride=1, device="cuda")
            ro, rl = reference(q, k, v, mask)
            err = ((out.float() - ro).norm() / ro.norm()).item()
            lerr = (lse - rl).abs().max().item()
            ok = err < 1e-2 and lerr < 1e-2 and torch.isfinite(out).all().item() and torch.isfinite(lse).all().item()
            print(f"check {cfg} B={B} H={H} N={N}: rel err {err:.2e}, lse max err {lerr:.2e} {'ok' if ok else 'FAIL'}", flush=True)
            if not ok: raise SystemExit(f"check failed for {cfg}")


def _median(ts): return sorted(ts)[len(ts) // 2]


def bench(cfgs, rounds=3, kinds=("dense", "fixed")):
    """Median ms of each forward at B=1, H=16, D=64, bf16, N=16,384 and 65,536, rounds interleaved, each against SDPA's
    fastest backend (dense causal) in the same process: SDPA, the package's Triton kernel at its default forward tile and
    at 64x128, and the Gluon configurations of each kind."""
    from triton.testing import do_bench
    from torch.nn.attention import sdpa_kernel, SDPBackend
    import torch.nn.functional as F
    from sparse_transformer_edu import sparse_attention
    from sparse_transformer_edu.plans import default_blocks
    for N in (16384, 65536):
        g = torch.Generator(device="cuda").manual_seed(N)
        q, k, v = (torch.randn(1, 16, N, 64, device="cuda", dtype=torch.bfloat16, generator=g) for _ in range(3))
        def sdpa(backend):
            def run():
                with sdpa_kernel(backend): return F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return run
        impls = {"sdpa cudnn": ("dense", sdpa(SDPBackend.CUDNN_ATTENTION)), "sdpa flash": ("dense", sdpa(SDPBackend.FLASH_ATTENTION))}
        for kind in kinds:
            kw = dict(stride=128, c=32) if kind == "fixed" else {}
            bwd = default_blocks(kind)[1]
            for tile in (default_blocks(kind)[0], (64, 128)):
                impls[f"ours {kind} (triton {tile[0]}x{tile[1]})"] = (kind, (lambda kind, kw, blk: lambda: sparse_attention(
                    q, k, v, kind, backend="triton", block=blk, **kw))(kind, kw, (tile, bwd)))
        for cfg in cfgs:
            kind = "fixed" if cfg.get("fixed") else "dense"
            if kind in kinds: impls[_name(cfg)] = (kind, (lambda c: lambda: _run(c, q, k, v))(cfg))
        refs = {"dense": F.scaled_dot_product_attention(q, k, v, is_causal=True).float()}
        if "fixed" in kinds: refs["fixed"] = sparse_attention(q, k, v, "fixed", stride=128, c=32, backend="triton").float()
        times = {name: [] for name in impls}
        with torch.no_grad():
            for name, (kind, fn) in impls.items():   # compile, and compare with SDPA's output (fixed: the package's)
                o = fn(); o = o[0] if isinstance(o, tuple) else o
                err = ((o.float() - refs[kind]).norm() / refs[kind].norm()).item()
                print(f"N={N} {name}: rel diff from {'SDPA' if kind == 'dense' else 'the package'} {err:.2e}", flush=True)
                if err > 2e-2: raise SystemExit(f"{name} disagrees at N={N}")
            for r in range(rounds):
                for name, (kind, fn) in impls.items(): times[name].append(do_bench(fn, warmup=25, rep=100, return_mode="median"))
        base = min(("sdpa cudnn", "sdpa flash"), key=lambda n: _median(times[n]))
        base_ms = _median(times[base])
        print(f"\nN={N}, B=1, H=16, D=64, bf16, forward; baseline {base} (median {base_ms:.4f} ms)")
        for name, ts in times.items():
            print(f"  {name:48s} median {_median(ts):8.4f} ms  rounds {' '.join(f'{t:.4f}' for t in ts)}  {base_ms / _median(ts):.3f}x SDPA", flush=True)


def protocol(Ns=(16384, 65536)):
    """Chapter 11's protocol for the forward (`sparse_transformer_edu.bench.ShapeRun`: every output checked against
    float32 first, then do_bench's median): SDPA's fastest backend, the package's dense and fixed, FlexAttention's fixed
    at its fastest tile, and the Gluon dense and fixed kernels (the first configuration of BEST and of FIXED_CONFIGS)."""
    from sparse_transformer_edu.bench import ShapeRun
    for N in Ns:
        r = ShapeRun(1, 64, N)
        r.sdpa(passes=("fwd",))
        r.ours(patterns=("dense", "fixed"), passes=("fwd",))
        r.flex_fixed(passes=("fwd",))
        for cfg in (BEST[0], FIXED_CONFIGS[0]):
            pat = "fixed" if cfg.get("fixed") else "dense"
            r.add("fwd", _name(cfg), pat, r.measure((lambda c: lambda q, k, v: _run(c, q, k, v)[0])(cfg), False, pat))
        sdpa = min(x["ms"] for x in r.rows if x["impl"].startswith("SDPA"))
        flex = min((x["ms"] for x in r.rows if x["impl"] == "flex fixed"), default=float("nan"))
        print(f"\nprotocol N={N}, B=1, H=16, D=64, bf16, forward (SDPA {sdpa:.4f} ms, Flex fixed {flex:.4f} ms)")
        for x in r.rows:
            vs_flex = f"{flex / x['ms']:.2f}x Flex" if x["pattern"] == "fixed" else ""
            print(f"  {x['impl']:44s} {x['config']:14s} {x['ms']:8.4f} ms  err {x['err']:.1e}  {sdpa / x['ms']:.3f}x SDPA  {vs_flex}", flush=True)


def package(Ns=(4096, 16384, 65536)):
    """The package's own dense and fixed through chapter 11's protocol, forward and forward plus backward, with its Hopper
    forward off (the Triton kernel) and on, in one process against SDPA's fastest backend."""
    import sparse_transformer_edu.kernels as K
    from sparse_transformer_edu.bench import ShapeRun
    for N in Ns:
        r = ShapeRun(1, 64, N)
        r.sdpa()
        for on in (False, True):
            K.HOPPER_FORWARD, first = on, len(r.rows)
            r.ours(patterns=("dense", "fixed"))
            for x in r.rows[first:]: x["impl"] += " (Gluon forward)" if on else " (Triton forward)"
        K.HOPPER_FORWARD = True
        print(f"\npackage N={N}, B=1, H=16, D=64, bf16")
        for ps in ("fwd", "fwd+bwd"):
            sdpa = min(x["ms"] for x in r.rows if x["impl"].startswith("SDPA") and x["pass_"] == ps)
            for x in (x for x in r.rows if x["pass_"] == ps):
                print(f"  {ps:8s} {x['impl']:36s} {x['config']:10s} {x['ms']:8.4f} ms  err {x['err']:.1e}  grads {x['grad_err']:.1e}  "
                      f"{sdpa / x['ms']:.3f}x SDPA", flush=True)


def host(N=4096, calls=300):
    """Host time per forward call (the loop's time without waiting for the GPU, then do_bench's median with it) of the
    package's dense and fixed at B=1, H=16, D=64, bf16: the Triton forward, the Gluon forward launched straight to its
    compiled launcher, and the Gluon forward through Triton's launcher; then where the last one's host time goes (cProfile)."""
    import cProfile, pstats
    from triton.testing import do_bench
    import sparse_transformer_edu.kernels as K
    from sparse_transformer_edu.plans import sparse_plan
    q, k, v = (torch.randn(1, 16, N, 64, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    for kind, kw in (("dense", {}), ("fixed", dict(stride=128, c=32))):
        plan = sparse_plan(kind, N, 1, device=q.device, **kw)
        run = lambda: K.blocksparse_forward(q, k, v, plan.fwd)
        ref = None
        for name, hopper, direct in (("Triton forward", False, True), ("Gluon, direct", True, True), ("Gluon, through Triton", True, False)):
            K.HOPPER_FORWARD, K.DIRECT_LAUNCH = hopper, direct
            out = run()[0]; torch.cuda.synchronize()
            ref = out if ref is None else ref
            t = time.perf_counter()
            for _ in range(calls): run()
            host_us = (time.perf_counter() - t) / calls * 1e6
            torch.cuda.synchronize()
            ms = do_bench(run, warmup=25, rep=100, return_mode="median")
            print(f"host N={N} {kind:6s} {name:22s} host {host_us:6.1f} us/call, do_bench {ms * 1e3:7.1f} us, "
                  f"rel diff from the Triton forward {((out.float() - ref.float()).norm() / ref.float().norm()).item():.1e}", flush=True)
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(calls): run()
        prof.disable(); torch.cuda.synchronize()
        pstats.Stats(prof).sort_stats("tottime").print_stats(10)
        K.HOPPER_FORWARD, K.DIRECT_LAUNCH = True, True


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--compile", action="store_true", help="compile each configuration for sm_90 on the CPU and report")
    ap.add_argument("--kinds", nargs="+", default=["dense", "fixed"], choices=["dense", "fixed"], help="which kernels to check and time")
    ap.add_argument("--best", action="store_true", help="only the configurations kept after the first runs (BEST)")
    ap.add_argument("--protocol", action="store_true", help="after the checks, only chapter 11's protocol run (with FlexAttention)")
    ap.add_argument("--package", action="store_true", help="only the package's dense and fixed, its Hopper forward off and on (no checks here)")
    ap.add_argument("--host", action="store_true", help="only the host time of the package's forward calls at N=4,096 (no checks here)")
    ap.add_argument("--sizes", nargs="+", type=int, default=[4096, 16384, 65536], help="sequence lengths of --package")
    a = ap.parse_args(argv)
    cfgs = [c for c in (BEST if a.best else CONFIGS + FIXED_CONFIGS) if ("fixed" if c.get("fixed") else "dense") in a.kinds]
    if a.compile:
        from ptxas_regs import gluon_report   # this script's folder is on the path when it runs
        for cfg in cfgs:
            t = time.perf_counter()
            try: c = compile_sm90(cfg)
            except Exception as e: print(f"{cfg}: fails: {type(e).__name__}: {str(e)[:2000]}"); continue
            print(f"{cfg}: {gluon_report(c)} ({time.perf_counter() - t:.1f} s)")
        return
    if not torch.cuda.is_available(): sys.exit("needs a GPU (or --compile)")
    print(torch.cuda.get_device_name(), "torch", torch.__version__, "triton", triton.__version__, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    if a.host: return host()
    if a.package: return package(a.sizes)
    check(cfgs)
    if a.protocol: protocol()
    else: bench(cfgs, kinds=a.kinds)


if __name__ == "__main__": main()
