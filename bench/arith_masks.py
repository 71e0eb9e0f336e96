"""Write a variant of the package whose kernels compute band-shaped tile masks instead of loading them, for `bench/variants.py run`.

A partly covered tile applies its stored mask: a [BM, BN] int8 block read through a block of pointers, compared with
zero and selected, a few integer operations per score on top of the online softmax's own. Every mask of the built-in
patterns (whole tiles, n a multiple of the tile) is a band: keep[r, c] exactly when lo <= a*r - c < hi, with a = 1 (a
diagonal or a band edge: r - c against the tile's offset) or a = 0 (a range of columns, as in fixed's last summary
tile). Such a mask costs one subtraction and one unsigned comparison per score: (a*r - lo) - c, taken as unsigned, is
below hi - lo.

The variant changes three places: the forward's tile and the backward's two probability tiles take their keep mask from
`_tile_keep`, which reads (a, lo, hi) when its mask argument holds int32 bands and the stored block when it holds int8
masks (Triton compiles one or the other from the pointer's type); and the three launchers pass `_mask_arg(plan)`, the
pass's masks as bands when every one of them is a band (found once per pass and cached), else its int8 masks. A replayed
call reuses its recorded arguments, so the host pays nothing per call. The variant goes to DEST/arith-masks (default
.variants/arith-masks).

With --check, the variant runs in a fresh process under Triton's interpreter with poisoned outputs: fixed, strided and
dense at two tile shapes each (bands), a random mask and a length that is not a multiple of the tile (stored masks),
forward and backward against float64, and says which path each plan took.

Timed on an H200 on 2026-12-01: strided's forward 10-12% slower, its forward plus backward 0-2%, no fixed or dense row
beyond 1% (bench/NOTES.md).

Usage: python bench/arith_masks.py [--dest DIR] [--check]"""
from persistent_grid import GRADS_CHECK, variant_main   # this script's folder is on the path when it runs

HELPERS = '''
@_jit
def _tile_keep(MASKS, mid, BM: tl.constexpr, BN: tl.constexpr, TRANS: tl.constexpr):
    "Tile mask `mid` as booleans, [BM, BN] ([BN, BM] when TRANS): from int32 bands (a, lo, hi), keep where lo <= a*r - c < hi; else the stored int8 block."
    rows, cols = tl.arange(0, BM), tl.arange(0, BN)
    if MASKS.dtype.element_ty == tl.int32:
        a = tl.load(MASKS + 3 * mid)
        lo = tl.load(MASKS + 3 * mid + 1)
        width = (tl.load(MASKS + 3 * mid + 2) - lo).to(tl.uint32, bitcast=True)
        if TRANS:
            keep = ((a * rows[None, :] - lo) - cols[:, None]).to(tl.uint32, bitcast=True) < width
        else:
            keep = ((a * rows[:, None] - lo) - cols[None, :]).to(tl.uint32, bitcast=True) < width
    else:
        if TRANS:
            keep = tl.load(MASKS + mid * (BM * BN) + cols[:, None] + rows[None, :] * BN) != 0
        else:
            keep = tl.load(MASKS + mid * (BM * BN) + rows[:, None] * BN + cols[None, :]) != 0
    return keep

'''

MASK_ARG = '''
_bands = {}   # id of a pass's int8 masks -> (a weak reference to them, what `_mask_arg` gives for them)

def _as_bands(masks):
    "[n, 3] int32 (a, lo, hi) with masks[i] == (lo <= a*r - c < hi) for every mask, or None where one is not a band."
    n, BM, BN = masks.shape
    keep = masks != 0
    rows = torch.arange(BM, device=masks.device)[:, None]
    cols = torch.arange(BN, device=masks.device)[None, :]
    out = torch.zeros(n, 3, dtype=torch.int32, device=masks.device)
    done = torch.zeros(n, dtype=torch.bool, device=masks.device)
    for a in (1, 0):
        val = (a * rows - cols).expand(n, BM, BN)
        lo = torch.where(keep, val, BM + BN).flatten(1).amin(1)
        hi = torch.where(keep, val, -BM - BN).flatten(1).amax(1) + 1
        fits = ((val >= lo[:, None, None]) & (val < hi[:, None, None]) == keep).flatten(1).all(1) & ~done
        out[fits] = torch.stack([torch.full_like(lo, a), lo, hi], 1)[fits].int()
        done |= fits
    return out if bool(done.all()) else None

def _mask_arg(plan):
    "The masks argument of a pass's kernels: its masks as bands when each one is a band, else the stored int8 masks."
    hit = _bands.get(id(plan.masks))
    if hit is None or hit[0]() is not plan.masks:
        bands = _as_bands(plan.masks)
        hit = _bands[id(plan.masks)] = (weakref.ref(plan.masks), plan.masks if bands is None else bands)
    return hit[1]

'''

EDITS = [   # (old, new, count): text of kernels.py and what the variant has there
    ("""        mid = tl.load(LUT_MASK + e)
        keep = tl.load(MASKS + mid * (BM * BN) + tl.arange(0, BM)[:, None] * BN + tl.arange(0, BN)[None, :])
        s = tl.where(keep != 0, s, float("-inf"))""",
     """        mid = tl.load(LUT_MASK + e)
        s = tl.where(_tile_keep(MASKS, mid, BM, BN, False), s, float("-inf"))""", 1),
    ("""        keep = tl.load(MASKS + mid * (BM * BN) + tl.arange(0, BM)[:, None] * BN + tl.arange(0, BN)[None, :])
        p = tl.where(keep != 0, p, 0.0)""",
     """        p = tl.where(_tile_keep(MASKS, mid, BM, BN, False), p, 0.0)""", 1),
    ("""        keep = tl.load(MASKS + mid * (BM * BN) + tl.arange(0, BN)[:, None] + tl.arange(0, BM)[None, :] * BN)
        pt = tl.where(keep != 0, pt, 0.0)""",
     """        pt = tl.where(_tile_keep(MASKS, mid, BM, BN, True), pt, 0.0)""", 1),
    ("plan.lut_mask, plan.masks,", "plan.lut_mask, _mask_arg(plan),", 2),
    ("plan.t_mask, plan.masks,", "plan.t_mask, _mask_arg(plan),", 1),
    ("@_jit\ndef _fwd_tile(", HELPERS.lstrip("\n") + "@_jit\ndef _fwd_tile(", 1),
    ("def forward_pass(", MASK_ARG.lstrip("\n") + "def forward_pass(", 1),
]


CHECK = GRADS_CHECK + """
def check(name, plan, mask, n):
    errs = errors(plan, mask, n)
    paths = {('bands' if K._mask_arg(p).dtype == torch.int32 else 'stored') for p in (*plan.fwd, *plan.bwd)}
    print(f"{name:28s} {'/'.join(sorted(paths)):13s} errors " + " ".join(f"{e:.1e}" for e in errs))
    assert max(errs) < 1e-5, (name, errs)
    return paths
got = set()
for kind, kw in (("fixed", dict(stride=32, c=8)), ("strided", dict(stride=16)), ("dense", dict(stride=1))):
    for block in ((16, 16), ((32, 16), (16, 32))):
        got |= check(f"{kind} {block}", sparse_plan(kind, 128, 2, block=block, **kw), token_mask(kind, 128, **kw), 128)
rnd = torch.rand(2, 96, 96) < 0.3
got |= check("random mask, two heads", plan_from_mask(rnd, block=16), rnd, 96)
got |= check("strided, n=120, 16x16 tiles", sparse_plan("strided", 120, 2, stride=8, block=16), token_mask("strided", 120, stride=8), 120)
assert got == {'bands', 'stored'}, got
"""


def main(argv=None): variant_main(__doc__, "arith-masks", EDITS, CHECK, argv)


if __name__ == "__main__": main()
