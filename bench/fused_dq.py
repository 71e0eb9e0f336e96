"""Write a variant of the package whose backward adds dQ inside the dK/dV kernel, for passes with short key columns.

The package's backward runs two kernels per pass: dK/dV (a program per key tile, walking its query tiles) and dQ (a
program per query tile, walking its key tiles), which recomputes the scores and dP the first already had: seven matrix
products per tile. The dK/dV kernel can instead form dS·K, a query tile's share of dQ from this key tile, and add it to
a float32 buffer with relaxed atomic adds: five products per tile, plus a kernel for Δ = rowsum(dO·O) before it (the
dQ kernel computed Δ before) and a cast of the buffer at the end. Measured on 2026-11-30 on every pass, with one tile
for both backward kernels (bench/NOTES.md, "Backward: dQ inside the dK/dV kernel"), that was 3–13% slower for dense
and fixed and 8% faster for strided at 65,536, where a key tile meets only a few query tiles.

This variant fuses a backward call only when every pass that computes dK and dV stores its keys one-to-one and has
at most STE_FUSE_MAX (default 16) table entries per key tile on average, and each dQ-only pass has a dK/dV-only twin
(the same pass at the other kernel's tile), which then stands for both. At the protocol's shapes that is strided (its
two passes at the dK/dV kernel's 32x64 tile); fixed and dense stay as they are. A fused call is not recorded for
replay. The variant goes to DEST/fused-dq (default .variants/fused-dq). Timed on an H200 on 2026-12-01: 9–10% slower
for strided at 65,536 (bench/NOTES.md).

With --check, the variant runs in a fresh process under Triton's interpreter with poisoned outputs, forward and
backward against float64, and says which path each call took: strided at three tile settings (one with a dK/dV tile
of its own), strided at a length that is not a multiple of the tile, dense at 256 and a random mask with empty rows (all
fused), and fixed (not).

Usage: python bench/fused_dq.py [--dest DIR] [--check]"""
from persistent_grid import GRADS_CHECK, variant_main   # this script's folder is on the path when it runs

FUSED = '''
FUSE_MAX = float(os.environ.get("STE_FUSE_MAX", "16"))   # table entries per key tile, on average, up to which a call fuses dQ
fused_calls = [0]

def _twins(a, b) -> bool:
    "Whether passes a (dQ only) and b (dK/dV only) are one pass at two tiles: the same virtual rows and keys, mapped alike."
    return (a.NQ, a.NK, a.qmap is None, a.kvmap is None) == (b.NQ, b.NK, b.qmap is None, b.kvmap is None)

def fusable(passes) -> bool:
    "Whether a backward call adds dQ inside its dK/dV kernels: every pass that computes dK and dV stores its keys one-to-one and has short key columns, and the dQ-only passes and the dK/dV-only ones pair up in order as twins."
    kv = [p for p in passes if p.role & 2]
    dq_only, kv_only = [p for p in passes if p.role == 1], [p for p in passes if p.role == 2]
    return (all(p.kv_injective and p.nnz <= FUSE_MAX * p.HL * p.TK for p in kv) and len(dq_only) == len(kv_only)
            and all(_twins(a, b) for a, b in zip(dq_only, kv_only)))

@_jit
def _bwd_delta(O, DO, DELTA, sob, soh, son, sdb, sdh, sdn, slb, slh, H, N, D: tl.constexpr, BM: tl.constexpr):
    "Δ = rowsum(dO·O) of BM rows."
    t, bh = tl.program_id(0), tl.program_id(1)
    b, h = bh // H, bh % H
    rows = t * BM + tl.arange(0, BM)
    ok = rows < N
    offs_d = tl.arange(0, D)
    o = tl.load(O + b * sob + h * soh + rows[:, None] * son + offs_d[None, :], mask=ok[:, None], other=0.0)
    do = tl.load(DO + b * sdb + h * sdh + rows[:, None] * sdn + offs_d[None, :], mask=ok[:, None], other=0.0)
    tl.store(DELTA + b * slb + h * slh + rows, tl.sum(o.to(tl.float32) * do.to(tl.float32), 1), mask=ok)

def _backward_fused(q, k, v, out, lse, do, passes, scale):
    "Gradients with dQ added by the dK/dV kernels into a float32 buffer (see `fusable`)."
    B, H, N, D = q.shape
    fused_calls[0] += 1
    delta = _empty((B, H, N), torch.float32, q.device)
    launch(_bwd_delta, (triton.cdiv(N, 64), B * H), (out, do, delta, *_strides(out, do, delta), H, N), dict(D=D, BM=64), dict(num_warps=4))
    dq = torch.zeros(q.shape, dtype=torch.float32, device=q.device)
    kv = [p for p in passes if p.role & 2]   # a dQ-only pass covers what these cover, at the dQ kernel's tile: not run
    covered = kv[0].NK == N
    dk, dv = (_empty(t.shape, k.dtype, q.device) if covered else torch.zeros(t.shape, dtype=k.dtype, device=q.device) for t in (k, v))
    for i, plan in enumerate(kv):
        _launch_dkdv(plan, (q, k, v, do, lse, delta, dk, dv, dq), i == 0 and covered, scale, _launch_cfg(plan, D, "dkdv"), fuse=True)
    return dq.to(q.dtype), dk, dv

'''

EDITS = [   # (old, new, count): text of kernels.py and what the variant has there
    ("""               qmap_base, sqn, sdn, NQ, qk_scale, D: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr,
               HAS_QMAP: tl.constexpr, MASKED: tl.constexpr, FP32: tl.constexpr, EVEN: tl.constexpr):""",
     """               qmap_base, sqn, sdn, NQ, qk_scale, DQ, dq_base, sqn2, sm_scale, D: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr,
               HAS_QMAP: tl.constexpr, MASKED: tl.constexpr, FP32: tl.constexpr, EVEN: tl.constexpr, FUSE_DQ: tl.constexpr):""", 1),
    ("""    dk += _mm(dst.to(q_tile.dtype), q_tile, FP32)
    return dk, dv""",
     """    dk += _mm(dst.to(q_tile.dtype), q_tile, FP32)
    if FUSE_DQ:   # this key tile's share of the query tile's dQ, added in float32
        dq = _mm(tl.trans(dst).to(k_tile.dtype), k_tile, FP32) * sm_scale
        dq_ptrs = DQ + dq_base + qrows[:, None] * sqn2 + tl.arange(0, D)[None, :]
        if EVEN:
            tl.atomic_add(dq_ptrs, dq, sem="relaxed")
        else:
            tl.atomic_add(dq_ptrs, dq, mask=row_ok[:, None], sem="relaxed")
    return dk, dv""", 1),
    ("def _attn_bwd_dkdv(Q, K, V, DO, LSE, DELTA, DK, DV, QMAP,", "def _attn_bwd_dkdv(Q, K, V, DO, LSE, DELTA, DK, DV, DQ, QMAP,", 1),
    ("sdb, sdh, sdn, slb, slh, skb2, skh2, skn2,", "sdb, sdh, sdn, slb, slh, skb2, skh2, skn2, sqb2, sqh2, sqn2,", 1),
    ("                   EVEN: tl.constexpr, RUNS: tl.constexpr, HEADS_FIRST: tl.constexpr):",
     "                   EVEN: tl.constexpr, RUNS: tl.constexpr, HEADS_FIRST: tl.constexpr, FUSE_DQ: tl.constexpr):", 1),
    ("NQ, qk_scale, D, BM, BN, HAS_QMAP, False, FP32, EVEN)",
     "NQ, qk_scale, DQ, b * sqb2 + h * sqh2, sqn2, sm_scale, D, BM, BN, HAS_QMAP, False, FP32, EVEN, FUSE_DQ)", 1),
    ("NQ, qk_scale, D, BM, BN, HAS_QMAP, True, FP32, EVEN)",
     "NQ, qk_scale, DQ, b * sqb2 + h * sqh2, sqn2, sm_scale, D, BM, BN, HAS_QMAP, True, FP32, EVEN, FUSE_DQ)", 1),
    ("def _launch_dkdv(plan, call, first, scale, cfg):\n    \"The same for a pass's dK/dV kernel.\"\n    q, k, v, do, lse, delta, dk, dv = call",
     "def _launch_dkdv(plan, call, first, scale, cfg, fuse=False):\n    \"The same for a pass's dK/dV kernel.\"\n    q, k, v, do, lse, delta, dk, dv, dq = call", 1),
    ("*_strides(q, k, v, do, lse, dk), _map_stride(qmap)", "*_strides(q, k, v, do, lse, dk, dq), _map_stride(qmap)", 1),
    ("                HEADS_FIRST=first_h), cfg,\n           lead=len(call))\n\ndef backward_pass(",
     "                HEADS_FIRST=first_h, FUSE_DQ=fuse), cfg,\n           lead=len(call))\n\ndef backward_pass(", 1),
    ("_launch_dkdv(plan, (q, k, v, do, lse, delta, dk_v, dv_v), first_kv,", "_launch_dkdv(plan, (q, k, v, do, lse, delta, dk_v, dv_v, dk_v), first_kv,", 1),
    ("    passes = tuple(passes)\n    q, k, v, do = _row_major(q), _row_major(k), _row_major(v), _row_major(do)\n    B, H, N, D = q.shape\n",
     "    passes = tuple(passes)\n    q, k, v, do = _row_major(q), _row_major(k), _row_major(v), _row_major(do)\n    B, H, N, D = q.shape\n"
     "    if fusable(passes): return _backward_fused(q, k, v, out, lse, do, passes, scale)\n", 1),
    ("# %% ../nbs/05_kernel_backward.ipynb #d206cc2f\n", "# %% ../nbs/05_kernel_backward.ipynb #d206cc2f\n" + FUSED.lstrip("\n"), 1),
]


CHECK = GRADS_CHECK + """
def check(name, plan, mask, n, fused):
    before = K.fused_calls[0]
    errs = errors(plan, mask, n)
    took = K.fused_calls[0] > before
    print(f"{name:28s} {'fused' if took else 'two kernels':11s} errors " + " ".join(f"{e:.1e}" for e in errs))
    assert max(errs) < 1e-5, (name, errs)
    assert took == fused, (name, took)
for block in ((16, 16), ((32, 16), (16, 32)), ((32, 32), ((32, 32), (16, 32)))):
    check(f"strided {block}", sparse_plan("strided", 128, 2, block=block, stride=16), token_mask("strided", 128, stride=16), 128, True)
check("strided, n=120, 16x16 tiles", sparse_plan("strided", 120, 2, stride=8, block=16), token_mask("strided", 120, stride=8), 120, True)
check("fixed (16, 16)", sparse_plan("fixed", 128, 2, block=16, stride=32, c=8), token_mask("fixed", 128, stride=32, c=8), 128, False)
check("dense (16, 16)", sparse_plan("dense", 256, 2, block=16, stride=1), token_mask("dense", 256, stride=1), 256, True)
rnd = torch.rand(2, 96, 96) < 0.2
rnd[:, 5], rnd[:, :, 48:64] = False, False   # an empty row, and a whole key tile no row reads, in both heads
check("random mask, two heads", plan_from_mask(rnd, block=16), rnd, 96, True)
"""


def main(argv=None): variant_main(__doc__, "fused-dq", EDITS, CHECK, argv)


if __name__ == "__main__": main()
