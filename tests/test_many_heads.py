"""More batches × heads than a grid's second axis holds (65,535), on a GPU: every kernel's grid then puts them first
(chapter 04's `heads_first`, and the Hopper kernels' own rule). Forward and backward of each kind, with the Hopper
kernels on and off, against float32 on the first and the last batches × heads. Skipped without a CUDA GPU."""
import pytest, torch
from sparse_transformer_edu import kernels as K
from sparse_transformer_edu.op import sparse_attention
from sparse_transformer_edu.patterns import token_mask
from sparse_transformer_edu.plans import attention_reference, rel_err

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
B, H, N, D = 4100, 16, 256, 64   # B·H = 65,600


@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator(device="cuda").manual_seed(0)
    return [torch.randn(B, H, N, D, device="cuda", dtype=torch.bfloat16, generator=g) for _ in range(4)]


@pytest.mark.parametrize("hopper", [True, False])
@pytest.mark.parametrize("kind,kw", [("dense", {}), ("fixed", dict(stride=128, c=32)), ("strided", dict(stride=16))])
def test_many_heads(inputs, kind, kw, hopper, monkeypatch):
    q, k, v, do = inputs
    monkeypatch.setattr(K, "HOPPER_FORWARD", hopper); monkeypatch.setattr(K, "HOPPER_BACKWARD", hopper)
    ran = []   # which Gluon kernels ran
    for name in ("hopper_forward", "hopper_backward"):
        monkeypatch.setattr(K, name, lambda *a, f=getattr(K, name), name=name, **kw: ran.append(name) or f(*a, **kw))
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    out = sparse_attention(*leaves, kind, backend="triton", **kw)
    out.backward(do)
    rows = torch.cat([torch.arange(8), torch.arange(B * H - 8, B * H)]).cuda()   # the grid's first and last programs' heads
    pick = lambda t: t.reshape(B * H, N, D)[rows][None]                        # [1, 16, N, D]
    refs = [pick(t).float().requires_grad_() for t in (q, k, v)]
    ref = attention_reference(*refs, token_mask(kind, N, device="cuda", **{"stride": 1, **kw}))[0]
    ref.backward(pick(do).float())
    errs = [rel_err(pick(out.detach()), ref)] + [rel_err(pick(a.grad), r.grad) for a, r in zip(leaves, refs)]
    assert max(errs) < 1e-2, (kind, hopper, errs)
    for t in (out, *(a.grad for a in leaves)): assert torch.isfinite(t).all()   # every head written
    hp = hopper and kind != "strided" and torch.cuda.get_device_capability()[0] == 9 and K.HAS_GLUON
    assert ran == (["hopper_forward", "hopper_backward"] if hp else []), ran
