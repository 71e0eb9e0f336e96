"""A replayed call passes the launchers exactly the arguments its launches would build, for the forward and backward of
each pattern: so the call's key holds everything the arguments depend on. Runs without a GPU: the direct-launch path is
taken with a launcher that records its arguments instead of running a kernel (no kernel runs, so nothing here checks
results; chapters 04 and 05 check those, on the GPU with second calls that are replays)."""
import gc, pytest, torch, triton
from types import SimpleNamespace
from sparse_transformer_edu import kernels
from sparse_transformer_edu.plans import sparse_plan, tile_plan_from_mask


LEAD = {"_attn_fwd": 5, "_attn_bwd_dq": 8, "_attn_bwd_dkdv": 8}   # the call's tensors, first among each kernel's arguments


class _Stream:
    def get_current_stream(self, device): return 7


@pytest.fixture
def recorded(monkeypatch):
    "Direct launches on the CPU, each recorded as (kernel name, grid, tensor addresses, other arguments) instead of run."
    calls = []
    class Compiled(dict):   # every specialization is 'compiled': its launcher records
        def get(self, key):
            name = key[0].fn.__name__
            lead = LEAD[name]
            return (lambda gx, gy, gz, stream, fn, meta, *rest: calls.append((name, gx, gy, rest[3:3 + lead], rest[3 + lead:])), 0, 0)
    monkeypatch.setattr(kernels, "interpreting", lambda: False)
    monkeypatch.setattr(kernels, "_compiled", Compiled())
    monkeypatch.setattr(kernels, "_calls", {})
    monkeypatch.setattr(kernels.torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(triton.runtime.driver, "_active", _Stream())
    assert kernels.layout(torch.zeros(1)) is None   # no key for CPU tensors ...
    monkeypatch.setattr(kernels, "_on_gpu", lambda t: True)   # ... unless they count as on a GPU
    assert kernels.layout(torch.zeros(1)) is not None
    return calls


def _fwd_bwd(plan, q, k, v, do):
    "One forward and backward through the kernels' wrappers; returns what they return: (out, lse, dq, dk, dv)."
    out, lse = kernels.blocksparse_forward(q, k, v, plan.fwd, 0.125)
    return (out, lse, *kernels.blocksparse_backward(q, k, v, out, lse, do, plan.bwd, 0.125))


def places(name, ins, outs):
    "The addresses a launch of kernel `name` must get for its leading tensors (None: the backward's delta, which no call returns)."
    (q, k, v, do), (out, lse, dq, dk, dv) = ins, outs
    if name == "_attn_fwd": ts = (q, k, v, out, lse)
    elif name == "_attn_bwd_dq": ts = (q, k, v, do, lse, None, dq, out)
    else: ts = (q, k, v, do, lse, None, dk, dv)
    return tuple(None if t is None else t.data_ptr() for t in ts)


def check_places(launches, ins, outs):
    "Every launch of one forward and backward got this call's inputs and outputs, and the backward one delta throughout."
    assert launches
    for name, _, _, got, _ in launches:
        assert all(want is None or want == g for want, g in zip(places(name, ins, outs), got)), name
    assert len({got[5] for name, _, _, got, _ in launches if name != "_attn_fwd"}) == 1


def same(a, b, inputs):
    "Two recorded launch sequences agree: kernels, grids and every argument after the call's tensors; of those tensors, the inputs (q, k, v, and dO in the backward), whose addresses stay from call to call, while each call allocates its outputs anew."
    assert [(x[0], x[1], x[2], x[4]) for x in a] == [(x[0], x[1], x[2], x[4]) for x in b]
    for x, y in zip(a, b):
        fixed = 3 if x[0] == "_attn_fwd" else 4
        assert x[3][:fixed] == y[3][:fixed] == tuple(t.data_ptr() for t in inputs[:fixed])


@pytest.mark.parametrize("kind,kw", [("fixed", dict(stride=16, c=4, summary=[12, 8])), ("strided", dict(stride=16)),
                                     ("dense", dict(stride=1)), ("twice", dict(stride=1))])
def test_replay_matches_full_launch(recorded, kind, kw, monkeypatch):
    torch.manual_seed(0)
    plan = sparse_plan("dense" if kind == "twice" else kind, 64, 2, block=((16, 16), (16, 32)), **kw)
    if kind == "twice":   # one pass object run three times: the first run writes, the others merge or add
        plan = SimpleNamespace(fwd=plan.fwd * 3, bwd=plan.bwd * 3)
    q, k, v, do = (torch.randn(1, 2, 64, 32, dtype=torch.float16) for _ in range(4))
    _fwd_bwd(plan, q, k, v, do)                                 # full launches, recorded
    n = len(recorded)
    assert n >= 2 and len(kernels._calls) == 2                  # one forward call and one backward call kept
    q2, k2, v2, do2 = (torch.randn(1, 2, 64, 32, dtype=torch.float16) for _ in range(4))
    outs = _fwd_bwd(plan, q2, k2, v2, do2)                      # both calls replayed
    assert len(recorded) == 2 * n and len(kernels._calls) == 2
    replayed = recorded[n:]
    check_places(replayed, (q2, k2, v2, do2), outs)             # this call's own outputs, never the recorded call's
    with monkeypatch.context() as m:
        m.setattr(kernels, "replay", lambda key, tensors: False)
        _fwd_bwd(plan, q2, k2, v2, do2)                         # the same calls, every argument built again
    same(replayed, recorded[2 * n:], (q2, k2, v2, do2))
    # another layout (keys read through a transposed view): new full launches, never the kept arguments
    kt = torch.randn(1, 64, 2, 32, dtype=torch.float16).transpose(1, 2)
    _fwd_bwd(plan, q2, kt, v2, do2)
    assert len(kernels._calls) == 4
    before = len(recorded)
    with monkeypatch.context() as m:
        m.setattr(kernels, "replay", lambda key, tensors: False)
        _fwd_bwd(plan, q2, kt, v2, do2)
    same(recorded[before - n:before], recorded[before:], (q2, kt, v2, do2))
    assert [x[4] for x in recorded[before:]] != [x[4] for x in replayed]   # the strides of k differ


def test_new_launch_settings_are_not_replayed(recorded, monkeypatch):
    "A change to LAUNCH makes the next call launch and record again, with the new settings."
    plan = sparse_plan("dense", 64, 2, stride=1, block=((16, 16), (16, 32)))
    q, k, v = (torch.randn(1, 2, 64, 32, dtype=torch.float16) for _ in range(3))
    opts, compiled = [], kernels._compiled
    class Logged:   # the compiled kernels, looked up by keys that end with (num_warps, num_stages, specialization)
        def get(self, key): opts.append(key[-3:-1]); return compiled.get(key)
    monkeypatch.setattr(kernels, "_compiled", Logged())
    kernels.blocksparse_forward(q, k, v, plan.fwd, 0.125)
    kernels.blocksparse_forward(q, k, v, plan.fwd, 0.125)
    assert len(recorded) == 2 and len(opts) == 1 and len(kernels._calls) == 1   # the second call was a replay
    saved = dict(kernels.LAUNCH)
    try:
        kernels.LAUNCH[("fwd", 16, 16, 32)] = dict(num_warps=2, num_stages=1)
        kernels.blocksparse_forward(q, k, v, plan.fwd, 0.125)
    finally:
        kernels.LAUNCH.clear(); kernels.LAUNCH.update(saved)
    assert len(recorded) == 3 and opts[-1] == (2, 1) and opts[0] != (2, 1) and len(kernels._calls) == 2


def test_a_call_with_a_scatter_is_not_recorded(recorded):
    "A backward whose key map is not injective adds through a scatter, outside any launch: it is never replayed."
    plan = sparse_plan("fixed", 64, 2, stride=16, c=4, block=((16, 16), (16, 32)))
    gathered = plan.fwd[0]
    assert not gathered.kv_injective
    q, k, v, do = (torch.randn(1, 2, 64, 32, dtype=torch.float16) for _ in range(4))
    _fwd_bwd(SimpleNamespace(fwd=plan.fwd, bwd=(gathered,)), q, k, v, do)
    assert [key[0] for key in kernels._calls] == ["fwd"]


def test_kept_calls_do_not_keep_plans(recorded):
    "A kept call holds its passes weakly: once a pass is gone, its entry is never replayed, and its tables are freed."
    p = tile_plan_from_mask(torch.ones(64, 64, dtype=torch.bool).tril(), (16, 16))
    q, k, v = (torch.randn(1, 2, 64, 32, dtype=torch.float16) for _ in range(3))
    kernels.blocksparse_forward(q, k, v, (p,), 0.125)
    kernels.blocksparse_forward(q, k, v, (p,), 0.125)
    assert len(recorded) == 2 and len(kernels._calls) == 1
    (key, entry), = kernels._calls.items()
    assert entry[0][0]() is p and kernels.replay(key, (q, k, v, q, q))
    del p, entry; gc.collect()
    assert kernels._calls[key][0][0]() is None and not kernels.replay(key, (q, k, v, q, q))
    assert len(recorded) == 3


def test_one_tensor_in_two_places(recorded):
    "A call given q as k and v is not recorded (a launch's places would be ambiguous); a record of distinct tensors replays right for it."
    plan = sparse_plan("strided", 64, 2, stride=16, block=((16, 16), (16, 32)))
    x, do = (torch.randn(1, 2, 64, 32, dtype=torch.float16) for _ in range(2))
    outs = _fwd_bwd(plan, x, x, x, do)
    n = len(recorded)
    assert len(kernels._calls) == 0
    check_places(recorded, (x, x, x, do), outs)
    q, k, v = (torch.randn(1, 2, 64, 32, dtype=torch.float16) for _ in range(3))
    outs = _fwd_bwd(plan, q, k, v, do)                          # distinct tensors: recorded
    assert len(kernels._calls) == 2
    check_places(recorded[n:], (q, k, v, do), outs)
    outs = _fwd_bwd(plan, x, x, x, do)                          # replayed, place by place
    assert len(kernels._calls) == 2 and len(recorded) == 3 * n
    check_places(recorded[2 * n:], (x, x, x, do), outs)


def test_passes_as_an_iterator(recorded):
    "The passes may come as any iterable, also one that can be read once."
    plan = sparse_plan("strided", 64, 2, stride=16, block=((16, 16), (16, 32)))
    q, k, v, do = (torch.randn(1, 2, 64, 32, dtype=torch.float16) for _ in range(4))
    for _ in range(2):   # recorded, then replayed
        before = len(recorded)
        out, lse = kernels.blocksparse_forward(q, k, v, iter(plan.fwd), 0.125)
        dq, dk, dv = kernels.blocksparse_backward(q, k, v, out, lse, do, (p for p in plan.bwd), 0.125)
        assert len(recorded) - before == len(plan.fwd) + 2 * len(plan.bwd)
        check_places(recorded[before:], (q, k, v, do), (out, lse, dq, dk, dv))


def test_the_compiled_ops_implementations_replay(recorded):
    "The op's implementations, as torch.compile's graph calls them with a living plan's tables, replay that plan's calls."
    from sparse_transformer_edu import op
    plan = sparse_plan("strided", 64, 2, stride=16, block=((16, 16), (16, 32)))
    q, k, v, do = (torch.randn(1, 2, 64, 32, dtype=torch.float16) for _ in range(4))
    for i in range(3):
        before = len(recorded)
        out, lse = op._forward_impl(q, k, v, list(plan.tables), list(plan.ints), 0.125)
        dq, dk, dv = op._backward_impl(q, k, v, out, lse, do, list(plan.tables), list(plan.ints), 0.125)
        assert len(kernels._calls) == 2   # recorded by the first call, replayed by the others
        check_places(recorded[before:], (q, k, v, do), (out, lse, dq, dk, dv))


@pytest.mark.parametrize("registration", ["custom_op", "triton_op"])
def test_both_registrations_trace(monkeypatch, registration):
    "torch.compile traces each registration of the op (triton_op runs the implementation on a trace's tensors, which have no address), forward and backward; the kernels are stand-ins."
    from sparse_transformer_edu import op
    if registration not in op.OPS: pytest.skip(f"torch {torch.__version__} has no torch.library.{registration}")
    monkeypatch.setattr(op, "blocksparse_forward", lambda q, k, v, fwd, scale: (q * 1, q.new_zeros(q.shape[:3], dtype=torch.float32)))
    monkeypatch.setattr(op, "blocksparse_backward", lambda q, k, v, out, lse, do, bwd, scale: (q * 1, k * 1, v * 1))
    plan = sparse_plan("strided", 64, 2, stride=16, block=16)
    q, k, v = (torch.randn(1, 2, 64, 32, requires_grad=True) for _ in range(3))
    def f(q, k, v): return op.OPS[registration](q, k, v, list(plan.tables), list(plan.ints), 0.125)[0]
    torch._dynamo.reset()
    torch.compile(f, backend="aot_eager", fullgraph=True)(q, k, v).sum().backward()
    assert all(t.grad is not None and torch.equal(t.grad, t.detach()) for t in (q, k, v))   # what the stand-in backward returns
