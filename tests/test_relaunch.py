"""A relaunch passes the launcher exactly the arguments a full launch would build, for the forward and backward of each
pattern: so its key holds everything the arguments depend on. Runs without a GPU: the direct-launch path is taken with
a launcher that records its arguments instead of running a kernel (no kernel runs, so nothing here checks results;
chapters 04 and 05 check those, on the GPU with second calls that are relaunches)."""
import pytest, torch, triton
from types import SimpleNamespace
from sparse_transformer_edu import kernels
from sparse_transformer_edu.plans import sparse_plan


LEAD = {"_attn_fwd": 6, "_attn_bwd_dq": 8, "_attn_bwd_dkdv": 8}   # the call's tensors, first among each kernel's arguments


class _Stream:
    def get_current_stream(self, device): return 7


@pytest.fixture
def recorded(monkeypatch):
    "Direct launches on the CPU, each recorded as (kernel name, grid, arguments) instead of run."
    calls = []
    class Compiled(dict):   # every specialization is 'compiled': its launcher records
        def get(self, key):
            name = key[0].fn.__name__
            lead = LEAD[name]
            return (lambda gx, gy, gz, stream, fn, meta, *rest: calls.append((name, gx, gy, rest[3:3 + lead], rest[3 + lead:])), 0, 0)
    monkeypatch.setattr(kernels, "interpreting", lambda: False)
    monkeypatch.setattr(kernels, "_compiled", Compiled())
    monkeypatch.setattr(kernels, "_bound", {})
    monkeypatch.setattr(kernels.torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(triton.runtime.driver, "_active", _Stream())
    assert kernels.layout(torch.zeros(1)) is None   # no key for CPU tensors ...
    monkeypatch.setattr(kernels, "_on_gpu", lambda t: True)   # ... unless they count as on a GPU
    assert kernels.layout(torch.zeros(1)) is not None
    return calls


def _fwd_bwd(plan, q, k, v, do):
    out, lse = kernels.blocksparse_forward(q, k, v, plan.fwd, 0.125)
    kernels.blocksparse_backward(q, k, v, out, lse, do, plan.bwd, 0.125)


def same(a, b, inputs):
    "Two recorded launch sequences agree: kernels, grids and every argument after the call's tensors; of those tensors, the inputs (q, k, v, and dO in the backward), whose addresses stay from call to call, while each call allocates its outputs anew."
    assert [(x[0], x[1], x[2], x[4]) for x in a] == [(x[0], x[1], x[2], x[4]) for x in b]
    for x, y in zip(a, b):
        fixed = 3 if x[0] == "_attn_fwd" else 4
        assert x[3][:fixed] == y[3][:fixed] == tuple(t.data_ptr() for t in inputs[:fixed])


@pytest.mark.parametrize("kind,kw", [("fixed", dict(stride=16, c=4, summary=[12, 8])), ("strided", dict(stride=16)),
                                     ("dense", dict(stride=1)), ("twice", dict(stride=1))])
def test_relaunch_matches_full_launch(recorded, kind, kw, monkeypatch):
    torch.manual_seed(0)
    plan = sparse_plan("dense" if kind == "twice" else kind, 64, 2, block=((16, 16), (16, 32)), **kw)
    if kind == "twice":   # one pass object run three times: the first run writes, the others merge or add, under other keys
        plan = SimpleNamespace(fwd=plan.fwd * 3, bwd=plan.bwd * 3)
    q, k, v, do = (torch.randn(1, 2, 64, 32, dtype=torch.float16) for _ in range(4))
    _fwd_bwd(plan, q, k, v, do)                                 # full launches, kept
    n = len(recorded)
    kept = len(kernels._bound)   # one per launch (for 'twice', the third run of a pass relaunches the second's, in each of the three kernels)
    assert n and kept == (n if kind != "twice" else n - 3)
    q2, k2, v2, do2 = (torch.randn(1, 2, 64, 32, dtype=torch.float16) for _ in range(4))
    _fwd_bwd(plan, q2, k2, v2, do2)                             # every launch a relaunch
    assert len(kernels._bound) == kept
    relaunched = recorded[n:]
    with monkeypatch.context() as m:
        m.setattr(kernels, "relaunch", lambda key, tensors: False)
        _fwd_bwd(plan, q2, k2, v2, do2)                         # the same call, every argument built again
    same(relaunched, recorded[2 * n:], (q2, k2, v2, do2))
    # another layout (keys read through a transposed view): new full launches, never the kept arguments
    kt = torch.randn(1, 64, 2, 32, dtype=torch.float16).transpose(1, 2)
    _fwd_bwd(plan, q2, kt, v2, do2)
    assert len(kernels._bound) == 2 * kept
    before = len(recorded)
    with monkeypatch.context() as m:
        m.setattr(kernels, "relaunch", lambda key, tensors: False)
        _fwd_bwd(plan, q2, kt, v2, do2)
    same(recorded[before - n:before], recorded[before:], (q2, kt, v2, do2))
    assert [x[4] for x in recorded[before:]] != [x[4] for x in relaunched]   # the strides of k differ


def test_kept_launches_do_not_keep_plans(recorded):
    "A kept launch holds its pass weakly: once the pass is gone, its entry is never relaunched, and its tables are freed."
    import gc
    from sparse_transformer_edu.plans import tile_plan_from_mask
    p = tile_plan_from_mask(torch.ones(64, 64, dtype=torch.bool).tril(), (16, 16))
    q, k, v = (torch.randn(1, 2, 64, 32, dtype=torch.float16) for _ in range(3))
    kernels.blocksparse_forward(q, k, v, (p,), 0.125)
    kernels.blocksparse_forward(q, k, v, (p,), 0.125)
    assert len(recorded) == 2 and len(kernels._bound) == 1
    (key, entry), = kernels._bound.items()
    assert entry[0]() is p and kernels.relaunch(key, (q, k, v, q, q, q))
    del p, entry; gc.collect()
    assert kernels._bound[key][0]() is None and not kernels.relaunch(key, (q, k, v, q, q, q))
    assert len(recorded) == 3
