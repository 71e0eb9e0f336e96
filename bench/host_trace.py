"""Where one eager fwd+bwd at N=4,096 spends its time (B=1, H=16, D=64, bf16; fixed, strided, SDPA on cuDNN).

Per call: the median of triton.testing.do_bench; 200 calls back to back, as host time (before the sync) and as wall time
(after it); the median of 50 synchronised calls; the kernels' time from a profile of 10 calls; and any call that
synchronises (torch.cuda.set_sync_debug_mode). The "kernels" column sums every row of the profile that has device time,
and the op that launched a kernel carries that kernel's time too, so it counts each kernel twice: the tables it writes
end with the right total ("Self CUDA time total", over 10 calls). Writes OUTDIR/table_*.txt and a Chrome trace per case.

Usage: python bench/host_trace.py OUTDIR"""
import argparse, os, time, warnings


def cases_4k():
    "q, k, v, dO at the shape above, and the functions to time: our fixed and strided, and SDPA on cuDNN."
    import torch
    from torch.nn.attention import sdpa_kernel
    from sparse_transformer_edu.op import sparse_attention
    from sparse_transformer_edu.bench import PATTERNS, sdpa_backend, sdpa_causal
    q, k, v, do = (torch.randn(1, 16, 4096, 64, device="cuda", dtype=torch.bfloat16) for _ in range(4))
    cases = {}
    for pat in ("fixed", "strided"):
        kw = dict(PATTERNS[pat]); kind = kw.pop("kind")
        cases[pat] = (lambda kind, kw: lambda q, k, v: sparse_attention(q, k, v, kind, backend="triton", **kw))(kind, kw)
    def sdpa(q, k, v):
        with sdpa_kernel(sdpa_backend("cudnn")): return sdpa_causal(q, k, v)
    cases["sdpa cudnn"] = sdpa
    return (q, k, v, do), cases

def stepper(fn, q, k, v, do):
    "`host_glue.fwd_bwd`'s step of fn on leaves of its own, warmed up 30 times."
    from host_glue import fwd_bwd   # this script's folder is on the path when it runs
    step = fwd_bwd(fn, q.detach(), k.detach(), v.detach(), do)
    for _ in range(30): step()
    return step


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="folder for the tables and traces")
    out = ap.parse_args(argv).out
    import torch
    from torch.profiler import profile, ProfilerActivity
    from sparse_transformer_edu.bench import _bench
    os.makedirs(out, exist_ok=True)
    (q, k, v, do), cases = cases_4k()
    for name, fn in cases.items():
        step = stepper(fn, q, k, v, do)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("warn")
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always"); step(); torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode(0)
        syncs = [str(x.message)[:100] for x in w if "synchroniz" in str(x.message).lower()]
        bench = _bench(fn, q, k, v, do, True)
        n = 200
        torch.cuda.synchronize(); t = time.perf_counter()
        for _ in range(n): step()
        host = (time.perf_counter() - t) / n * 1e3
        torch.cuda.synchronize(); piped = (time.perf_counter() - t) / n * 1e3
        sync = []
        for _ in range(50):
            torch.cuda.synchronize(); t = time.perf_counter(); step(); torch.cuda.synchronize(); sync.append((time.perf_counter() - t) * 1e3)
        sync.sort()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(10): step()
            torch.cuda.synchronize()
        kern = sum(e.self_device_time_total for e in prof.key_averages() if e.self_device_time_total > 0) / 10 / 1e3
        tag = name.replace(" ", "_")
        prof.export_chrome_trace(f"{out}/trace_{tag}.json")
        print(f"{name:11s} do_bench {bench:.3f} | pipelined {piped:.3f} | host {host:.3f} | synced median {sync[25]:.3f} | "
              f"kernels {kern:.3f} ms/call | syncs {len(syncs)} {syncs[:3]}", flush=True)
        with open(f"{out}/table_{tag}.txt", "w") as f: print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14), file=f)


if __name__ == "__main__": main()
