"""Host time of one eager fwd+bwd at N=4,096 (B=1, H=16, D=64, bf16), with the GPU's queue never full.

After a sync, 10 calls are made without one and the host's time is divided by 10; the median of 20 such rounds. A
longer unsynchronised loop (as in host_trace.py) can fill the launch queue when the GPU is the slower side, and then
measures the GPU. Cases: an autograd.Function that does nothing, SDPA on cuDNN, and our fixed and strided.

Usage: python bench/host_queue.py"""
import argparse, statistics, time


def host_ms(step, rounds=20, calls=10) -> list:
    "Host milliseconds per call of step(): `calls` calls after a synchronisation, divided by `calls`, for each of `rounds` rounds."
    import torch
    per = []
    for _ in range(rounds):
        torch.cuda.synchronize(); t = time.perf_counter()
        for _ in range(calls): step()
        per.append((time.perf_counter() - t) / calls * 1e3)
    torch.cuda.synchronize()
    return per


def do_nothing():
    "An autograd.Function's apply that computes nothing (its output a view of q, its gradient dO): the host-time floor of any op."
    import torch
    class Nothing(torch.autograd.Function):
        @staticmethod
        def forward(ctx, q, k, v): return q.view_as(q)
        @staticmethod
        def backward(ctx, g): return g, None, None
    return Nothing.apply


def main(argv=None):
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)
    from host_trace import cases_4k, stepper   # this script's folder is on the path when it runs
    (q, k, v, do), ours = cases_4k()
    cases = {"do-nothing Function": do_nothing(), "sdpa cudnn": ours["sdpa cudnn"], "fixed": ours["fixed"], "strided": ours["strided"]}
    for name, fn in cases.items():
        per = host_ms(stepper(fn, q, k, v, do))
        print(f"{name:20s} host per fwd+bwd: median {statistics.median(per):.3f} ms, min {min(per):.3f}, max {max(per):.3f}", flush=True)


if __name__ == "__main__": main()
