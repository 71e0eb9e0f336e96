"""The rows the host decides, in several fresh processes: how much they move between processes, and whether pinning helps.

Chapter 11 times each row once per process. At N=4,096 an eager forward+backward of ours is decided by the host (the
GPU waits for launches), and the same kernels have measured up to 1.9x apart in two processes on one machine. This
script starts --procs fresh processes for each setting, alternating, and each times, at B=1, H=16, D=64, bf16, with
chapter 11's step (fresh gradients, `do_bench` median with its cache clearing): our fixed and strided forward+backward
and SDPA's on cuDNN, and our strided's host time per call with the GPU's queue never full (host_queue.py's measure).
Settings: `free` (the process as started), `pinned` (the process and its threads kept to one core, --core, with
os.sched_setaffinity before torch is imported; the autograd engine's thread, which runs the backward, then shares the
main thread's core), `caller` (the process as started, with `torch.autograd.set_multithreading_enabled(False)`, so
that the backward runs on the calling thread and no work is handed between threads), `pair` (kept to two cores, --core
and the next: a thread handed work wakes on the other core), and `spin` (the same two cores, each kept busy by a
process of the lowest priority, SCHED_IDLE, that spins: a core never idles, so a woken thread preempts the spinner
at once instead of waiting for an idle virtual CPU to be woken; the guest's own idle-latency request,
/dev/cpu_dma_latency, changes nothing on machines whose kernel has no cpuidle driver, as on the H200 machines).
Each process also gives the host time of an autograd.Function that does nothing (host_queue.py's), the floor of any op.

Timed on H200 machines on 2026-12-01 (bench/NOTES.md), as SDPA's median over ours, four processes each: one core took
fixed and strided from 0.77-0.78x SDPA to 1.96-2.01x, the backward on the calling thread to 1.66-1.69x; SDPA did not move.
Later that day, on two more machines: two busy cores took 0.09-0.22 ms off each row against two idle ones, but the
do-nothing floor itself moved by up to 1.8x between processes of one setting, and on one machine no setting reached the GPU's time.

Usage: python bench/process_spread.py [--procs 4] [--core 2] [--settings free pinned caller pair spin]"""
import argparse, json, os, statistics, subprocess, sys, time

CHILD = r"""
import json, os, statistics, sys
cores, thread = [int(c) for c in sys.argv[1].split(",") if c], sys.argv[2]
if cores: os.sched_setaffinity(0, set(cores))
if thread == "spin":   # one spinner of the lowest priority on each core: it runs only while nothing else wants the core
    import atexit, subprocess
    SPIN = ("import os, sys; os.sched_setaffinity(0, {int(sys.argv[1])}); os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\n"
            "parent = os.getppid()\nwhile os.getppid() == parent: pass")   # ends with this process, even if it is killed
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN, str(c)]) for c in cores]
    atexit.register(lambda: [p.kill() for p in spinners])
import torch
if thread == "caller": torch.autograd.set_multithreading_enabled(False)   # this thread's backward runs on this thread
from triton.testing import do_bench
from host_trace import cases_4k, stepper
from host_queue import host_ms, do_nothing
(q, k, v, do), cases = cases_4k()
steps = {name: stepper(cases[name], q, k, v, do) for name in ("fixed", "strided", "sdpa cudnn")}
out = {name: do_bench(step, warmup=25, rep=100, return_mode="median") for name, step in steps.items()}
out["strided host"] = statistics.median(host_ms(steps["strided"]))
out["nothing host"] = statistics.median(host_ms(stepper(do_nothing(), q, k, v, do)))
out["cores allowed"] = len(os.sched_getaffinity(0))
print("RESULT " + json.dumps(out), flush=True)
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--procs", type=int, default=4, help="fresh processes per setting (default: %(default)s)")
    ap.add_argument("--core", type=int, default=2, help="the core of the pinned setting; pair and spin take it and the next (default: %(default)s)")
    ap.add_argument("--settings", nargs="+", choices=("free", "pinned", "caller", "pair", "spin"), default=["free", "pinned", "caller"],
                    help="the settings to alternate (default: %(default)s)")
    args = ap.parse_args(argv)
    here = os.path.dirname(os.path.abspath(__file__))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([here, os.environ.get("PYTHONPATH", "")])}
    settings = {"free": ("", "engine"), "pinned": (str(args.core), "engine"), "caller": ("", "caller"),
                "pair": (f"{args.core},{args.core + 1}", "engine"), "spin": (f"{args.core},{args.core + 1}", "spin")}
    chosen = {k: settings[k] for k in args.settings}
    rows = {k: [] for k in chosen}
    for i in range(args.procs):
        for setting, (core, thread) in chosen.items():
            t = time.perf_counter()
            r = subprocess.run([sys.executable, "-c", CHILD, core, thread], cwd=os.path.dirname(here), env=env,
                               capture_output=True, text=True, timeout=300)
            line = next((l for l in r.stdout.splitlines() if l.startswith("RESULT ")), None)
            if line is None: sys.exit(f"{setting} process {i} failed:\n{r.stderr[-3000:]}")
            res = json.loads(line[7:]); rows[setting].append(res)
            print(f"{setting:6s} {i}: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in res.items())
                  + f" ({time.perf_counter() - t:.0f} s)", flush=True)
    print("\nms, median over processes [min - max]")
    for setting, res in rows.items():
        print(f"{setting:6s} " + "; ".join(f"{k} {statistics.median(r[k] for r in res):.3f} [{min(r[k] for r in res):.3f} - {max(r[k] for r in res):.3f}]"
                                       for k in ("fixed", "strided", "sdpa cudnn", "strided host", "nothing host")))


if __name__ == "__main__": main()
