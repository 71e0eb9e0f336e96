"""Time one training iteration of the paper's Enwik8-shaped model with both sides under torch.compile.

30 layers, d=512, 8 heads, context 12,288, l=128 (c=32 for fixed), merged heads, recomputation on, bf16 autocast,
fused AdamW step included. Dense is PyTorch SDPA (the fastest backend it picks, cuDNN on an H200); fixed and strided
are our kernels through the registered op. Each residual block is compiled (regional compilation: the 30 blocks share
one compiled graph), or the whole model with --whole. Median of --iters iterations after three warm-up iterations.

Usage: python bench/model_compiled.py --out DIR [--batches 1 8] [--modes default reduce-overhead] [--whole]"""
import argparse, json, os, statistics, time
import torch, torch._dynamo

from enwik8_shape import CASES, enwik8_config, loss_backward
from sparse_transformer_edu import model as M, op as OP
from sparse_transformer_edu.bench import device_line

def time_case(kind, backend, batch, mode, whole, iters, compiled_op):
    OP.COMPILED_OP = compiled_op
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = M.SparseTransformer(enwik8_config(kind, backend)).cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01, fused=True)
    if mode == "eager": run = model
    elif whole: run = torch.compile(model, mode=mode)
    else:
        for b in model.blocks: b.compile(mode=mode)
        run = model
    x = torch.randint(0, 256, (batch, 12289), device="cuda")
    def step():
        if mode == "reduce-overhead": torch.compiler.cudagraph_mark_step_begin()
        loss = loss_backward(run, x); opt.step(); opt.zero_grad(set_to_none=True); return loss
    t0 = time.time()
    for _ in range(3): loss = step()
    torch.cuda.synchronize(); warm = time.time() - t0
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(iters):
        t = time.perf_counter(); loss = step(); torch.cuda.synchronize(); times.append((time.perf_counter() - t) * 1e3)
    res = dict(ms=statistics.median(times), spread=(min(times), max(times)), warm_s=warm, loss=loss.item(),
               peak_gib=torch.cuda.max_memory_allocated() / 2**30)
    model = opt = run = None; torch.cuda.empty_cache()
    return res

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--modes", nargs="+", default=["default", "reduce-overhead"])
    ap.add_argument("--kinds", nargs="+", default=[k for k, _ in CASES])
    ap.add_argument("--whole", action="store_true", help="compile the whole model instead of each block")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--op", default="custom_op", choices=list(OP.OPS))
    ap.add_argument("--budget", type=float, default=1e9, help="stop starting new cases after this many seconds")
    a = ap.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    print(device_line(), flush=True)
    t0, rows = time.time(), []
    for batch in a.batches:
        for mode in a.modes:
            if mode == "reduce-overhead" and batch > 1: continue   # CUDA graphs matter where the host is the bottleneck
            for kind, backend in CASES:
                if kind not in a.kinds: continue
                if time.time() - t0 > a.budget: print(f"skipped batch {batch} {mode} {kind}: budget", flush=True); continue
                try: r = time_case(kind, backend, batch, mode, a.whole, a.iters, a.op)
                except Exception as e: r = dict(error=f"{type(e).__name__}: {str(e)[:300]}")
                r.update(batch=batch, mode=mode, kind=kind, compile="eager" if mode == "eager" else ("whole" if a.whole else "blocks"), op=a.op)
                rows.append(r)
                print(json.dumps(r), flush=True)
                json.dump(rows, open(os.path.join(a.out, f"model_{'whole' if a.whole else 'blocks'}.json"), "w"), indent=1)
    for batch in a.batches:
        for mode in a.modes:
            d = {r["kind"]: r.get("ms") for r in rows if r["batch"] == batch and r["mode"] == mode}
            if d.get("dense"):
                print(f"batch {batch} {mode}: " + ", ".join(f"{k} {v:.1f} ms ({d['dense'] / v:.2f}x)" for k, v in d.items() if v))

if __name__ == "__main__": main()
