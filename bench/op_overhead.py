"""The attention op on the GPU: bf16 checks, torch.compile checks, host time of one eager call, and forward and
forward+backward timings at the protocol shapes against the fastest SDPA backend; both op registrations compiled.

Usage: python bench/op_overhead.py --out DIR [--ns 4096 16384] [--model-budget SECONDS]"""
import argparse, json, os, statistics, time
import torch, torch.nn.functional as F
import torch._dynamo
from torch.nn.attention import sdpa_kernel, SDPBackend
from triton.testing import do_bench
from sparse_transformer_edu import op as OP, sparse_plan, sparse_attention
from sparse_transformer_edu.plans import attention_reference, rel_err
from sparse_transformer_edu.patterns import token_mask
from sparse_transformer_edu.bench import device_line

PATTERNS = {"fixed": dict(stride=128, c=32), "strided": dict(stride=128), "dense": {}}
SDPA = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION}

def inputs(N, B=1, H=16, D=64, seed=0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    return [torch.randn(B, H, N, D, device="cuda", dtype=torch.bfloat16, generator=g) for _ in range(4)]

def fwd_bwd(fn, q, k, v, do):
    "A step that runs fn forward and backward on fresh leaves' gradients."
    q, k, v = (t.clone().requires_grad_() for t in (q, k, v))
    def step():
        q.grad = k.grad = v.grad = None
        fn(q, k, v).backward(do)
    return step

def timed(step):
    return do_bench(step, warmup=25, rep=200, return_mode="median")

def host_ms(step, iters=30):
    "Host time of one call: the loop is not synchronized, so it measures the CPU side alone (queue far from full)."
    for _ in range(5): step()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(iters): step()
    host = (time.perf_counter() - t) / iters * 1e3
    torch.cuda.synchronize()
    return host

def sdpa_times(q, k, v, do):
    out = {}
    for name, be in SDPA.items():
        f = lambda q, k, v, be=be: F.scaled_dot_product_attention(q, k, v, is_causal=True)
        try:
            with sdpa_kernel([be]):
                out[name] = (timed(lambda: f(q, k, v)), timed(fwd_bwd(f, q, k, v, do)))
        except Exception as e:
            out[name] = (float("nan"), float("nan")); print(f"sdpa {name}: {type(e).__name__}: {str(e)[:100]}")
    return out

def chunked_reference(q, k, v, do, kind, **kw):
    "float32 output and gradients, one head at a time."
    mask = token_mask(kind, q.shape[2], device=q.device, **kw)
    outs, grads = [], []
    for h in range(q.shape[1]):
        leaves = [t[:, h:h+1].float().detach().requires_grad_() for t in (q, k, v)]
        o = attention_reference(*leaves, mask)[0]
        o.backward(do[:, h:h+1].float())
        outs.append(o.detach()); grads.append([t.grad for t in leaves])
    return torch.cat(outs, 1), [torch.cat([g[i] for g in grads], 1) for i in range(3)]

def check_bf16(log):
    errs = {}
    for N in (4096, 16384):
        for kind in ("fixed", "strided"):
            q, k, v, do = (t[:, :4] for t in inputs(N, seed=N))
            leaves = [t.clone().requires_grad_() for t in (q, k, v)]
            out = sparse_attention(*leaves, kind, **PATTERNS[kind]); out.backward(do)
            ref, rg = chunked_reference(q, k, v, do, kind, **PATTERNS[kind])
            e = max([rel_err(out, ref)] + [rel_err(a.grad, g) for a, g in zip(leaves, rg)])
            errs[f"{kind} {N}"] = e
            log(f"bf16 {kind} N={N}: max rel err {e:.2e} {'ok' if e < 1e-2 else 'FAIL'}")
    return errs

def check_compile(log):
    "Graph breaks, fullgraph and CUDA graphs for the op through both registrations."
    res = {}
    def attend(q, k, v, plan): return sparse_attention(q, k, v, plan)
    for kind in ("fixed", "strided"):
        plan = sparse_plan(kind, 4096, 16, device="cuda", **PATTERNS[kind])
        q, k, v, do = inputs(4096)
        eager = fwd_bwd(lambda q, k, v: attend(q, k, v, plan), q, k, v, do)
        for name in OP.OPS:
            OP.COMPILED_OP = name
            torch._dynamo.reset()
            gb = torch._dynamo.explain(attend)(q, k, v, plan).graph_break_count
            row = dict(graph_breaks=gb, eager_ms=timed(eager), eager_host_ms=host_ms(eager))
            for mode in ("default", "reduce-overhead"):
                f = torch.compile(attend, fullgraph=True, mode=mode)
                def call(q, k, v, f=f, mode=mode):
                    if mode == "reduce-overhead": torch.compiler.cudagraph_mark_step_begin()
                    return f(q, k, v, plan)
                for _ in range(3):   # fresh leaves: a replayed graph's outputs (gradients too) are overwritten by the next replay
                    ls = [t.clone().requires_grad_() for t in (q, k, v)]
                    out = call(*ls); out.backward(do)
                err = rel_err(out, attend(q, k, v, plan))
                st = fwd_bwd(call, q, k, v, do)
                row[mode] = dict(err=err, ms=timed(st), host_ms=host_ms(st))
            res[f"{kind} {name}"] = row
            log(f"compile {kind} via {name}: {json.dumps(row)}")
    OP.COMPILED_OP = "custom_op"
    return res

def cprofile(kind, out_dir, log):
    "Where the host time of eager forward+backward goes, by Python function."
    import cProfile, pstats, io
    q, k, v, do = inputs(4096)
    st = fwd_bwd(lambda q, k, v: sparse_attention(q, k, v, kind, **PATTERNS[kind]), q, k, v, do)
    for _ in range(5): st()
    torch.cuda.synchronize()
    pr = cProfile.Profile(); pr.enable()
    for _ in range(50): st()
    pr.disable(); torch.cuda.synchronize()
    s = io.StringIO(); pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(30)
    open(os.path.join(out_dir, f"cprofile_{kind}.txt"), "w").write(s.getvalue())
    log(f"cprofile {kind} written")

def profile(kind, out_dir, log):
    q, k, v, do = inputs(4096)
    st = fwd_bwd(lambda q, k, v: sparse_attention(q, k, v, kind, **PATTERNS[kind]), q, k, v, do)
    for _ in range(5): st()
    torch.cuda.synchronize()
    from torch.profiler import profile as prof, ProfilerActivity
    with prof(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as p:
        for _ in range(10): st()
        torch.cuda.synchronize()
    table = p.key_averages().table(sort_by="cpu_time_total", row_limit=25)
    open(os.path.join(out_dir, f"profile_{kind}.txt"), "w").write(table)
    log(f"profile {kind} written")

def speeds(ns, log):
    rows = []
    for N in ns:
        q, k, v, do = inputs(N)
        sd = sdpa_times(q, k, v, do)
        best = {p: min(sd, key=lambda n: sd[n][i]) for i, p in enumerate(("fwd", "fwd+bwd"))}
        for kind, kw in PATTERNS.items():
            f = lambda q, k, v: sparse_attention(q, k, v, kind, backend="triton", **kw)
            ref = sparse_attention(q[:, :2].float(), k[:, :2].float(), v[:, :2].float(), kind, backend="torch", **kw) if N <= 16384 else None
            out = f(q, k, v)
            err = rel_err(out[:, :2], ref) if ref is not None else float("nan")
            fb = fwd_bwd(f, q, k, v, do)
            r = dict(N=N, kind=kind, err=err, fwd=timed(lambda: f(q, k, v)), fwd_bwd=timed(fb),
                     host_fwd_bwd=host_ms(fb), host_fwd=host_ms(lambda: f(q, k, v)))
            for i, p in enumerate(("fwd", "fwd+bwd")):
                r[f"sdpa_{p}"] = (best[p], sd[best[p]][i])
            r["x_sdpa_fwd"] = r["sdpa_fwd"][1] / r["fwd"]; r["x_sdpa_fwd_bwd"] = r["sdpa_fwd+bwd"][1] / r["fwd_bwd"]
            rows.append(r)
            log(f"N={N} {kind:8s} err {err:.1e}  fwd {r['fwd']:.3f} ms ({r['x_sdpa_fwd']:.2f}x {best['fwd']})  "
                f"fwd+bwd {r['fwd_bwd']:.3f} ms ({r['x_sdpa_fwd_bwd']:.2f}x {best['fwd+bwd']})  host fwd {r['host_fwd']:.3f} fwd+bwd {r['host_fwd_bwd']:.3f} ms")
        log(f"N={N} sdpa: " + ", ".join(f"{n} {a:.3f}/{b:.3f}" for n, (a, b) in sd.items()))
    return rows

def model_ops(budget, log):
    "One Enwik8-shaped training iteration (batch 1, fixed), compiled through each op registration."
    import sys; sys.path.insert(0, os.path.dirname(__file__))
    from enwik8_shape import enwik8_config, loss_backward
    from sparse_transformer_edu import model as M
    res, t0 = {}, time.time()
    for name in OP.OPS:
        for mode in ("default", "reduce-overhead"):
            if time.time() - t0 > budget: log(f"model {name} {mode}: skipped (budget)"); continue
            OP.COMPILED_OP = name
            torch._dynamo.reset()
            model = M.SparseTransformer(enwik8_config("fixed", "triton")).cuda()
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01, fused=True)
            cm = torch.compile(model, mode=mode)
            x = torch.randint(0, 256, (1, 12289), device="cuda")
            def step():
                loss = loss_backward(cm, x); opt.step(); opt.zero_grad(set_to_none=True); return loss
            tc = time.time()
            for _ in range(3): step()
            torch.cuda.synchronize(); tc = time.time() - tc
            times = []
            for _ in range(5):
                t = time.perf_counter(); step(); torch.cuda.synchronize(); times.append((time.perf_counter() - t) * 1e3)
            res[f"{name} {mode}"] = statistics.median(times)
            log(f"model fixed batch 1 via {name} {mode}: {statistics.median(times):.1f} ms/iter (compile+warm-up {tc:.0f} s)")
            model = opt = cm = None; torch.cuda.empty_cache()
    OP.COMPILED_OP = "custom_op"
    return res

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", required=True)
    ap.add_argument("--ns", type=int, nargs="+", default=[4096, 16384])
    ap.add_argument("--model-budget", type=float, default=240)
    ap.add_argument("--skip", nargs="*", default=[], help="parts to leave out: bf16 speeds profile compile model")
    a = ap.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    logf = open(os.path.join(a.out, "log.txt"), "w")
    t0 = time.time()
    def log(s):
        s = f"[{time.time() - t0:6.1f}s] {s}"; print(s, flush=True); logf.write(s + "\n"); logf.flush()
    log(device_line())
    res = {}
    for name, fn in [("bf16", lambda: check_bf16(log)), ("speeds", lambda: speeds(a.ns, log)),
                     ("profile", lambda: [f(k, a.out, log) for k in ("fixed", "strided") for f in (profile, cprofile)]),
                     ("compile", lambda: check_compile(log)), ("model", lambda: model_ops(a.model_budget, log))]:
        if name in a.skip: continue
        try: res[name] = fn()
        except Exception as e:
            import traceback; log(f"{name} FAILED: {type(e).__name__}: {e}\n{traceback.format_exc()[-3000:]}")
        json.dump(res, open(os.path.join(a.out, "results.json"), "w"), indent=1, default=str)
    log("done")

if __name__ == "__main__": main()
