"""Write a variant of the package whose forward issues the next key tile's scores before the current tile's softmax, for `bench/variants.py run`.

At D=64 one tile of the forward costs about as much in exponentials (one per score, on the GPU's special-function
units) as in its two matrix products, and a warp that waits on its product cannot run its softmax. In the package's
full-tile loop each tile's scores are needed at once, so the product and the softmax run one after the other. Here the
loop carries the scores one tile ahead: trip e loads key tile e+1 and starts S(e+1) = Q K(e+1)^T, then does the softmax
of S(e) and adds P(e) V(e). S(e+1) is not read until the next trip, so the compiler may leave its product running
while the softmax runs. The last trip's look-ahead repeats the row's last full tile and is thrown away: one extra
Q K^T product per row. Only the forward's full-tile loop changes; its partly covered tiles and the backward are as in
the package. The variant goes to DEST/qk-ahead (default .variants/qk-ahead).

With --check, the variant runs in a fresh process under Triton's interpreter with poisoned outputs: fixed, strided and
dense at two tile shapes each, a random mask and a length that is not a multiple of the tile, forward against float64.

Timed on an H200 on 2026-12-01 (bench/NOTES.md): Triton 3.6 waits for the look-ahead's products at once, before the
exponentials, and the forward ran at 0.46-0.49x of the package's for dense, 0.76-0.77x for fixed.

Usage: python bench/qk_ahead.py [--dest DIR] [--check]"""
from persistent_grid import GRADS_CHECK, variant_main   # this script's folder is on the path when it runs

HELPER = '''
@_jit
def _fwd_probs(s, v_tile, m_i, l_i, acc, qk_scale, FP32: tl.constexpr):
    "Fold scores `s` (unscaled, no mask) of a key tile with values `v_tile` into the running (m_i, l_i, acc)."
    m_new = tl.maximum(m_i, (tl.max(s, 1) * qk_scale).to(tl.float32))
    m_use = tl.where(m_new == float("-inf"), 0.0, m_new)
    alpha = tl.exp2(m_i - m_use)
    p = tl.exp2((s * qk_scale).to(tl.float32) - m_use[:, None])
    l_i = l_i * alpha + tl.sum(p, 1)
    acc = acc * alpha[:, None] + _mm(p.to(v_tile.dtype), v_tile, FP32)
    return m_new, l_i, acc

# %% ../nbs/04_kernel_forward.ipynb #96123cf4
@_jit
def _attn_fwd('''

LOOP_OLD = '''    for e in range(start, split):    # fully allowed tiles: no mask arithmetic
        m_i, l_i, acc = _fwd_tile(q_tile, m_i, l_i, acc, K, V, KVMAP, _tile_of(LUT_COL, e, start, first, RUNS), LUT_MASK,
                                  MASKS, e, k_base, v_base, h * kvmap_h, skn, svn, qk_scale, D, BM, BN, HAS_KVMAP, False, FP32)
'''
LOOP_NEW = '''    if start < split:    # fully allowed tiles, the scores one tile ahead
        k0, v0 = _kv_tiles(K, V, KVMAP, first, k_base, v_base, h * kvmap_h, skn, svn, D, BN, HAS_KVMAP)
        s = _mm(q_tile, tl.trans(k0), FP32)
        for e in range(start, split):
            nxt = tl.minimum(e + 1, split - 1)
            k_next, v_tile = _kv_tiles2(K, V, KVMAP, _tile_of(LUT_COL, nxt, start, first, RUNS), _tile_of(LUT_COL, e, start, first, RUNS),
                                        k_base, v_base, h * kvmap_h, skn, svn, D, BN, HAS_KVMAP)
            s_next = _mm(q_tile, tl.trans(k_next), FP32)
            m_i, l_i, acc = _fwd_probs(s, v_tile, m_i, l_i, acc, qk_scale, FP32)
            s = s_next
'''
KV2 = '''
@_jit
def _kv_tiles2(K, V, KVMAP, kcol, vcol, k_base, v_base, kvmap_base, skn, svn, D: tl.constexpr, BN: tl.constexpr,
               HAS_KVMAP: tl.constexpr):
    "The key tile of key tile `kcol` and the value tile of `vcol`."
    offs_d = tl.arange(0, D)
    krows = _rows(KVMAP, kvmap_base, kcol * BN + tl.arange(0, BN), HAS_KVMAP)
    vrows = _rows(KVMAP, kvmap_base, vcol * BN + tl.arange(0, BN), HAS_KVMAP)
    k_tile = tl.load(K + k_base + krows[:, None] * skn + offs_d[None, :])
    v_tile = tl.load(V + v_base + vrows[:, None] * svn + offs_d[None, :])
    return k_tile, v_tile

# %% ../nbs/04_kernel_forward.ipynb #899dad34'''

EDITS = [   # (old, new, count): text of kernels.py and what the variant has there
    ("\n# %% ../nbs/04_kernel_forward.ipynb #96123cf4\n@_jit\ndef _attn_fwd(", HELPER, 1),
    ("\n# %% ../nbs/04_kernel_forward.ipynb #899dad34", KV2, 1),
    (LOOP_OLD, LOOP_NEW, 1),
]

CHECK = GRADS_CHECK + """
def check(name, plan, mask, n):
    "Errors of one plan; the path word says whether any row of its forward has two or more full tiles (the look-ahead's loop)."
    errs = errors(plan, mask, n)
    ahead = any(bool((p.lut_split - p.lut_off[:, :-1] >= 2).any()) for p in plan.fwd)
    print(f"{name:28s} {'ahead' if ahead else 'short':6s} errors " + " ".join(f"{e:.1e}" for e in errs), flush=True)
    assert max(errs) < 1e-5, (name, errs)
for kind, n, kw in (("fixed", 256, dict(stride=32, c=8)), ("strided", 128, dict(stride=16)), ("dense", 128, dict(stride=1))):
    for block in ((16, 16), (32, 16)):
        check(f"{kind} {block}", sparse_plan(kind, n, 2, block=block, **kw), token_mask(kind, n, **kw), n)
g = torch.Generator().manual_seed(1)
m = torch.ones(2, 100, 100).tril().bool()
m[:, :, 40:56] &= torch.rand(2, 100, 16, generator=g) < 0.5   # partly covered tiles between full ones
m[:, 5] = False   # an empty row
m[0, :, 64:80] = False   # a key tile no query of head 0 reads
check("random holes, n=100", plan_from_mask(m, block=(32, 16)), m, 100)
"""


def main(argv=None): variant_main(__doc__, "qk-ahead", EDITS, CHECK, argv)


if __name__ == "__main__": main()
