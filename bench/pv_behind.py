"""Write variants of the package whose forward adds each full tile's P V one loop trip late, for `bench/variants.py run`.

In the package's full-tile loop a trip computes S = Q K^T, waits for it, runs the softmax (one exponential per score)
and only then starts P V. On the GPU the products are issued asynchronously, but Triton 3.6 waits for Q K^T at once
and for every earlier product with it (`bench/ptx_inspect.py --sequence`), so the exponentials and the products run one
after the other. Here trip e computes S(e), then starts P(e-1) V(e-1), the previous trip's probabilities, and runs the
softmax of S(e) while that product runs: P V's result is only read at the next trip, as the package's already is. The
running sum is rescaled one trip late to match: acc(e) = acc(e-1) * alpha(e-1) + P(e-1) V(e-1), which is the package's
sum with the same factors. The loop carries P(e-1) in float32 and alpha(e-1); after the loop the last P V is added.
Partly covered tiles and the backward are as in the package.

The form matters to the compiler (`bench/ptx_inspect.py --sequence _attn_fwd`): with P(e-1) carried in float32 and cast
at the product, the loop compiles to `MMAx8 C WAIT0 MMAx16 C Ex132`, P V left running through the exponentials. Carried
already cast to bf16, the same loop waited for P V at once, and so did the transposed form O^T += V^T P^T (both read on
Triton 3.9 and not kept). Holding a second score tile costs registers (`ptxas -v` for sm_90a): at 4 warps the forward
spills 756-824 bytes a thread on Triton 3.9, against 20-40 for the package's; at 8 warps it fits, 216-218 registers and no
spills on the H200 machine's Triton 3.6.

Two variants: `pv-behind` (the package's launch settings: 4 warps for the forward at D=64) and `pv-behind-w8` (8 warps
there). They go to DEST/NAME (default .variants/NAME). With --controls, three more, to tell the overlap from its price:
`main-w8` (the package with 8 warps for that forward), `main-bn64` (the package with 128x64 forward tiles for dense and
fixed, where a score tile takes half the registers) and `pv-behind-bn64` (the late P V at those tiles and 4 warps).

With --check, the first variant runs in a fresh process under Triton's interpreter with poisoned outputs: fixed,
strided and dense at two tile shapes each, a mask with holes, an empty row and a length that is not a multiple of the
tile, forward and backward against float64.

Timed on an H200 on 2026-12-01 (bench/NOTES.md): at 8 warps dense's forward ran at 0.88-0.90x of the package's and
fixed's at 0.75-0.77x; 8 warps alone, 0.72-0.89x; at 128x64 tiles and 4 warps, 0.90-0.96x of the same tiles without it.

Usage: python bench/pv_behind.py [--dest DIR] [--check] [--controls]"""
import argparse
from pathlib import Path
from persistent_grid import ROOT, apply_edits, write_variant   # this script's folder is on the path when it runs
from qk_ahead import CHECK, LOOP_OLD   # the same check, and the same loop replaced

HELPER = '''
@_jit
def _online_probs(s, m_i, l_i, qk_scale):
    "Scores `s` (unscaled, no mask) into the running (m_i, l_i): the new max and sum, the probabilities (float32) and the factor alpha for the sum so far."
    m_new = tl.maximum(m_i, (tl.max(s, 1) * qk_scale).to(tl.float32))
    m_use = tl.where(m_new == float("-inf"), 0.0, m_new)
    alpha = tl.exp2(m_i - m_use)
    p = tl.exp2((s * qk_scale).to(tl.float32) - m_use[:, None])
    return m_new, l_i * alpha + tl.sum(p, 1), p, alpha

@_jit
def _v_tile(V, KVMAP, col, v_base, kvmap_base, svn, D: tl.constexpr, BN: tl.constexpr, HAS_KVMAP: tl.constexpr):
    "The value tile of key tile `col`."
    vrows = _rows(KVMAP, kvmap_base, col * BN + tl.arange(0, BN), HAS_KVMAP)
    return tl.load(V + v_base + vrows[:, None] * svn + tl.arange(0, D)[None, :])

@_jit
def _k_tile(K, KVMAP, col, k_base, kvmap_base, skn, D: tl.constexpr, BN: tl.constexpr, HAS_KVMAP: tl.constexpr):
    "The key tile of key tile `col`."
    krows = _rows(KVMAP, kvmap_base, col * BN + tl.arange(0, BN), HAS_KVMAP)
    return tl.load(K + k_base + krows[:, None] * skn + tl.arange(0, D)[None, :])

# %% ../nbs/04_kernel_forward.ipynb #96123cf4
@_jit
def _attn_fwd('''

LOOP_NEW = '''    if start < split:    # fully allowed tiles: P V one trip late, so that it runs while the next softmax does
        s = _mm(q_tile, tl.trans(_k_tile(K, KVMAP, first, k_base, h * kvmap_h, skn, D, BN, HAS_KVMAP)), FP32)
        m_i, l_i, p_prev, alpha_prev = _online_probs(s, m_i, l_i, qk_scale)
        for e in range(start + 1, split):
            s = _mm(q_tile, tl.trans(_k_tile(K, KVMAP, _tile_of(LUT_COL, e, start, first, RUNS), k_base, h * kvmap_h, skn, D, BN, HAS_KVMAP)), FP32)
            v_prev = _v_tile(V, KVMAP, _tile_of(LUT_COL, e - 1, start, first, RUNS), v_base, h * kvmap_h, svn, D, BN, HAS_KVMAP)
            acc = acc * alpha_prev[:, None] + _mm(p_prev.to(v_prev.dtype), v_prev, FP32)
            m_i, l_i, p_prev, alpha_prev = _online_probs(s, m_i, l_i, qk_scale)
        v_last = _v_tile(V, KVMAP, _tile_of(LUT_COL, split - 1, start, first, RUNS), v_base, h * kvmap_h, svn, D, BN, HAS_KVMAP)
        acc = acc * alpha_prev[:, None] + _mm(p_prev.to(v_last.dtype), v_last, FP32)
'''

EDITS = [   # (old, new, count): text of kernels.py and what the variant has there
    ("\n# %% ../nbs/04_kernel_forward.ipynb #96123cf4\n@_jit\ndef _attn_fwd(", HELPER, 1),
    (LOOP_OLD, LOOP_NEW, 1),
]
BN64 = ('DEFAULT_BLOCKS = {"fwd": {"dense": (128, 128), "fixed": (128, 128),', 'DEFAULT_BLOCKS = {"fwd": {"dense": (128, 64), "fixed": (128, 64),', 1)
W8 = ('LAUNCH = Settings({("fwd", 128, 64, 128): dict(num_warps=4, num_stages=2),',
      'LAUNCH = Settings({("fwd", 128, 64, 128): dict(num_warps=4, num_stages=2), ("fwd", 128, 128, 64): dict(num_warps=8, num_stages=3),', 1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dest", default=str(ROOT / ".variants"), help="where the variants go (default: %(default)s)")
    ap.add_argument("--check", action="store_true", help="compare the first variant with float64 through the interpreter on the CPU")
    ap.add_argument("--controls", action="store_true", help="also write main-w8, main-bn64 and pv-behind-bn64")
    args = ap.parse_args(argv)
    src = (ROOT / "sparse_transformer_edu" / "kernels.py").read_text()
    write_variant(Path(args.dest) / "pv-behind", apply_edits(src, EDITS), CHECK if args.check else None, STE_POISON="1")
    write_variant(Path(args.dest) / "pv-behind-w8", apply_edits(src, EDITS + [W8]))
    if not args.controls: return
    write_variant(Path(args.dest) / "main-w8", apply_edits(src, [W8]))
    plans = (ROOT / "sparse_transformer_edu" / "plans.py").read_text()
    for name, edits in (("main-bn64", []), ("pv-behind-bn64", EDITS)):
        dest = Path(args.dest) / name
        write_variant(dest, apply_edits(src, edits))
        (dest / "sparse_transformer_edu" / "plans.py").write_text(apply_edits(plans, [BN64]))


if __name__ == "__main__": main()
