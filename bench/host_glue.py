"""The host time of one eager forward+backward outside the kernel launches, measured anywhere (no GPU needed).

Every Triton launch is replaced by a counter, and no call is recorded or replayed (chapter 04), so what is left is the
Python and PyTorch work around the kernels on the long path: the op's checks, the plan lookup, the autograd function,
the argument building, the buffer allocations and the casts. On a GPU the same work runs
on the host, plus the launches themselves. fp16 inputs, B=1, H=16, D=64, the fixed (l=128, c=32) and strided (l=128)
patterns at --n. The casts from float32 scratch buffers are real copies on the CPU (on a GPU they are asynchronous
kernels), so the time is also given without them.

Two floors follow: a do-nothing autograd Function that only allocates the same outputs (what any op written in Python
pays), and SDPA's eager fwd+bwd (with --device cuda: its host time and its synchronised time).

On the CPU a third figure fakes a GPU's direct launch path: the tensors count as on a GPU and every compiled launcher
records instead of running, so the op takes the path it takes on a GPU (a replay, or arguments built and passed to the
launcher) up to the launcher itself.

With --profile (on a GPU), one cProfile of --iters real fwd+bwd calls per pattern is printed, by own time.

Usage: python bench/host_glue.py [--n 4096] [--iters 300] [--device cuda] [--profile]"""
import argparse, cProfile, os, pstats, time


def timed(step, iters, cuda, sync=False, reset=lambda: None):
    "Seconds per call of step(): 20 warm-up calls, reset(), then iters calls, each followed by a synchronisation when sync."
    import torch
    for _ in range(20): step()
    if cuda: torch.cuda.synchronize()
    reset()
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
        if sync: torch.cuda.synchronize()
    return (time.perf_counter() - t0) / iters


def fwd_bwd(fn, q, k, v, do):
    "A step that runs fn's forward and backward on q, k, v with fresh gradients."
    leaves = [t.requires_grad_() for t in (q, k, v)]
    def step():
        for t in leaves: t.grad = None
        fn(*leaves).backward(do)
    return step


def fake_direct(kernels, op):
    "Patch the package so that CPU tensors take the direct launch path with recording launchers; returns (calls, undo)."
    import torch, triton
    calls = [0]
    class Compiled(dict):   # every specialization counts as compiled; its launcher only counts
        def get(self, key): return (lambda *a: calls.__setitem__(0, calls[0] + 1), 0, 0)
    class Stream:
        def get_current_stream(self, device): return 0
    patches = [(kernels, "interpreting", lambda: False), (kernels, "_on_gpu", lambda t: True), (kernels, "_compiled", Compiled()),
               (kernels, "_calls", {}), (op, "interpreting", lambda: True), (torch.cuda, "current_device", lambda: 0),
               (triton.runtime.driver, "_active", Stream())]
    saved = [(o, name, getattr(o, name)) for o, name, _ in patches]
    for o, name, value in patches: setattr(o, name, value)
    return calls, lambda: [setattr(o, name, value) for o, name, value in saved]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=4096, help="sequence length (default: %(default)s)")
    ap.add_argument("--iters", type=int, default=300, help="timed iterations (default: %(default)s)")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the tensors live (default: %(default)s)")
    ap.add_argument("--profile", action="store_true", help="print a cProfile of the real calls (with --device cuda)")
    args = ap.parse_args(argv)
    if args.device == "cpu": os.environ.setdefault("TRITON_INTERPRET", "1")   # never run, but the triton path must be allowed
    import torch
    from sparse_transformer_edu import kernels, op
    from sparse_transformer_edu.plans import sparse_plan
    from sparse_transformer_edu.bench import PATTERNS
    cuda = args.device == "cuda"
    inputs = lambda: (torch.randn(1, 16, args.n, 64, dtype=torch.float16, device=args.device) for _ in range(4))
    launches, real = [0], kernels.launch
    def counted(kernel, grid, *a, **kw): launches[0] += 1
    casts = [0.0]
    to = torch.Tensor.to
    def timed_to(self, *a, **kw):
        t0 = time.perf_counter(); r = to(self, *a, **kw); casts[0] += time.perf_counter() - t0; return r
    def reset(): launches[0], casts[0] = 0, 0.0
    torch.Tensor.to = timed_to
    for kind in ("fixed", "strided"):
        kw = {k: v for k, v in PATTERNS[kind].items() if k != "kind"}
        plan = sparse_plan(kind, args.n, 1, device=args.device, **kw)
        step = fwd_bwd(lambda q, k, v: op.sparse_attention(q, k, v, plan, backend="triton"), *inputs())
        kernels.launch, layout = counted, kernels.layout
        kernels.layout = lambda *ts: None   # no call is recorded or replayed: every argument is built, every launch counted
        glue = timed(step, args.iters, cuda, reset=reset)
        kernels.layout = layout
        line = (f"{kind}: {glue * 1e3:.3f} ms per fwd+bwd with launches stubbed, {(glue - casts[0] / args.iters) * 1e3:.3f} ms "
                f"without the casts; {launches[0] / args.iters:.0f} launches")
        kernels.launch = real
        if not cuda:
            calls, undo = fake_direct(kernels, op)
            try:
                direct = timed(step, args.iters, cuda, reset=lambda: calls.__setitem__(0, 0))
                line += f"; {direct * 1e3:.3f} ms on the direct path faked up to the launcher ({calls[0] / args.iters:.0f} launcher calls)"
            finally: undo()
        if cuda:   # 50 unsynchronised calls: the launch queue never fills
            host, whole = timed(step, 50, cuda), timed(step, args.iters, cuda, sync=True)
            line += f"; with real launches {host * 1e3:.3f} ms on the host, {whole * 1e3:.3f} ms synchronised"
        print(line, flush=True)
        if args.profile and cuda:
            prof = cProfile.Profile(); prof.enable()
            for _ in range(args.iters): step()
            prof.disable(); torch.cuda.synchronize()
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    torch.Tensor.to = to

    class Nothing(torch.autograd.Function):
        "Allocates what the op allocates (the output and a log-sum-exp, then three gradients) and computes nothing."
        @staticmethod
        def forward(ctx, q, k, v):
            ctx.save_for_backward(q, k, v, torch.empty(q.shape[:3], device=q.device))
            return torch.empty_like(q)
        @staticmethod
        def backward(ctx, do):
            q, k, v, _ = ctx.saved_tensors
            return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    sdpa = lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    for name, fn in (("do-nothing autograd Function", Nothing.apply), ("SDPA", sdpa)):
        if name == "SDPA" and not cuda: continue
        step = fwd_bwd(fn, *inputs())
        line = f"{name}: {timed(step, 50 if name == 'SDPA' else args.iters, cuda) * 1e3:.3f} ms per fwd+bwd on the host"
        if cuda: line += f", {timed(step, args.iters, cuda, sync=True) * 1e3:.3f} ms synchronised"
        print(line, flush=True)


if __name__ == "__main__": main()
