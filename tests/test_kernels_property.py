"""Property test: the Triton kernels (interpreted on the CPU) equal the float64 reference, forward and backward,
over random kinds, parts, lengths, strides, summary widths, per-head summaries and tile shapes."""
import torch
import pytest
from hypothesis import example, given, settings, strategies as st, HealthCheck
from sparse_transformer_edu.op import sparse_attention, blocksparse_attention
from sparse_transformer_edu.kernels import HAS_TRITON
from sparse_transformer_edu.patterns import token_mask
from sparse_transformer_edu.plans import attention_reference, tile_plan_from_mask as plan_from_mask

pytestmark = pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
DEV = "cuda" if torch.cuda.is_available() else "cpu"

def rel_err(a, b):
    "Relative error; a gradient that is exactly zero in the reference (a row that sees only itself) is compared to an RMS of 0.1 per element."
    return ((a.double() - b.double()).norm() / b.double().norm().clamp(min=0.1 * b.numel() ** 0.5)).item()

def check(out_fn, mask, B, H, N, D, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    q, k, v, do = (torch.randn(B, H, N, D, generator=g).to(dtype).to(DEV) for _ in range(4))
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    out = out_fn(*leaves)
    out.backward(do)
    refs = [t.detach().double().cpu().requires_grad_() for t in (q, k, v)]
    ref = attention_reference(*refs, mask.cpu(), dtype=torch.float64)[0]
    ref.backward(do.double().cpu())
    tol = 1e-5 if dtype == torch.float32 else 1e-3
    assert torch.isfinite(out).all() and all(torch.isfinite(t.grad).all() for t in leaves)
    errs = [rel_err(out.cpu(), ref)] + [rel_err(a.grad.cpu(), r.grad) for a, r in zip(leaves, refs)]
    assert max(errs) < tol, errs

patterns = st.sampled_from([("dense", None), ("local", None), ("strided", None), ("strided", 1), ("strided", 2),
                            ("fixed", None), ("fixed", 1), ("fixed", 2), ("fixed", "distinct"), ("strided", "multihead")])

@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pat=patterns, stride=st.sampled_from([4, 8, 16, 32]), blocks=st.integers(1, 4),
       c_frac=st.sampled_from([1, 2, 4]),
       # one tile for every kernel, the package's defaults (None), or a forward tile and a (dQ, dK/dV) pair
       block=st.sampled_from([(32, 16), (16, 32), (32, 32), (64, 64), None, ((32, 32), ((32, 16), (16, 32))),
                              ((64, 64), ((64, 32), (32, 64)))]),
       H=st.integers(1, 2), dtype=st.sampled_from([torch.float32, torch.float16]), seed=st.integers(0, 2**31 - 1))
@example(pat=("strided", None), stride=16, blocks=4, c_frac=1, block=((32, 32), ((32, 16), (16, 32))), H=2, dtype=torch.float32, seed=0)
@example(pat=("fixed", "distinct"), stride=32, blocks=3, c_frac=4, block=None, H=2, dtype=torch.float16, seed=1)
def test_patterns_match_reference(pat, stride, blocks, c_frac, block, H, dtype, seed):
    kind, part = pat
    N = stride * blocks
    c = max(1, stride // c_frac) if kind == "fixed" else None
    summary = None
    if part == "distinct": part, summary = None, [stride - c * (1 + h % (stride // c)) for h in range(H)]
    if part == "multihead": part = [1 + h % 2 for h in range(H)]
    parts = part if isinstance(part, list) else [part] * H
    sums = summary or [None] * H
    mask = torch.stack([token_mask(kind, N, stride=stride if kind != "dense" else stride, c=c, part=p, summary=s)
                        for p, s in zip(parts, sums)])
    fn = lambda q, k, v: sparse_attention(q, k, v, kind, stride=stride, c=c, part=part, summary=summary,
                                          backend="triton", block=block)
    check(fn, mask, 1, H, N, 32, dtype, seed)

@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(T=st.integers(1, 3), block=st.sampled_from([(16, 16), (32, 16), (16, 32)]), H=st.integers(1, 2),
       density=st.floats(0.05, 0.9), token_level=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_random_layouts_match_reference(T, block, H, density, token_level, seed):
    g = torch.Generator().manual_seed(seed)
    N = T * 32
    if token_level:   # an arbitrary token mask: every tile partly covered
        mask = torch.rand(H, N, N, generator=g) < density
    else:             # a random tile layout, each listed tile fully allowed
        lay = torch.rand(H, N // block[0], N // block[1], generator=g) < density
        mask = lay.repeat_interleave(block[0], 1).repeat_interleave(block[1], 2)
    fn = lambda q, k, v: blocksparse_attention(q, k, v, [plan_from_mask(mask.to(DEV), block)])
    check(fn, mask, 1, H, N, 32, torch.float32, seed)
