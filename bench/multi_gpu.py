"""Training on several GPUs: DDP against one GPU, scaling at the Enwik8 shape, FSDP2, and resuming on another GPU count.

Every run goes through torchrun (`sparse_transformer_edu.train.torchrun_command`), one process per GPU, with NVLink
multicast kept off (`torchrun_env`). Parts, each independent of the others' success:
  a  DDP on 2 GPUs against 1 GPU at the same global batch: a small model, fp32, 20 steps; largest loss difference.
  b  Scaling at the Enwik8 shape (30 layers, d=512, 8 heads, context 12,288, fixed l=128 c=32, recomputation on,
     bf16 autocast): tokens/s on 1 GPU and on 2 (DDP), at the same batch per GPU.
  c  FSDP2 on 2 GPUs: the small model's losses against DDP's (fp32), and peak memory per GPU at the Enwik8 shape
     (torch.cuda.max_memory_allocated) against DDP's, at the same batch.
  d  A run killed mid-way (SIGKILL of rank 0 between two checkpoints) and resumed on the other GPU count:
     2 GPUs (DDP) -> 1 GPU, and 1 GPU -> 2 GPUs (FSDP2); the same step and the same losses as an uninterrupted run.
  e  FSDP2 with the model compiled in place (model.compile()), small model, fp32, against 1 GPU.

On a machine with 2 GPUs, from the repository root (no installation needed):
    PYTHONPATH=. python3 bench/multi_gpu.py --out bench/runs/multi_gpu
A dry run on the CPU (gloo, tiny shapes, the same code paths):
    python bench/multi_gpu.py --cpu --out /tmp/multi_gpu
It writes results.json and log.txt to --out and prints a summary table at the end."""
import argparse, gc, json, os, signal, subprocess, sys, tempfile, time, traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))   # the package without installing it
import torch
from sparse_transformer_edu.train import (MULTICAST_OFF, Trainer, TrainConfig, lm_batches, load_checkpoint,
                                          setup_distributed, torchrun_command, torchrun_env)
from sparse_transformer_edu.model import SparseTransformer, SparseTransformerConfig
from sparse_transformer_edu.data import stdlib_splits

STEPS, CKPT_EVERY, KILL_AT = 20, 5, 12   # the killed runs die after step 12; their last checkpoint is at step 10

def small_model(cpu):
    "The model of parts a, c, d and e: small enough for fp32, big enough for the GPU kernels."
    if cpu: return dict(n_layer=2, d_model=32, n_head=2, context=64, kind="fixed", stride=8, c=2, recompute=True)
    return dict(n_layer=4, d_model=256, n_head=4, context=512, kind="fixed", stride=32, c=8, recompute=True)

def big_model(cpu):
    "The model of parts b and c: the paper's Enwik8 shape on GPUs, a tiny stand-in on the CPU."
    if cpu: return dict(n_layer=2, d_model=64, n_head=2, context=256, kind="fixed", stride=16, c=4, recompute=True)
    return dict(n_layer=30, d_model=512, n_head=8, context=12288, kind="fixed", stride=128, c=32, attn_mode="merged",
                recompute=True)

# ---------------------------------------------------------------- worker side: runs inside torchrun's processes

def _free():
    gc.collect()
    if torch.cuda.is_available(): torch.cuda.empty_cache()

def small_run(spec, run):
    "Train the small model for STEPS steps in fp32 (or resume it), checkpointing every CKPT_EVERY steps."
    torch.backends.cuda.matmul.allow_tf32 = False   # fp32 means fp32: the comparison is at 1e-5
    torch.backends.cudnn.allow_tf32 = False
    mcfg = SparseTransformerConfig(**small_model(spec["cpu"]), **({"backend": run["backend"]} if "backend" in run else {}))
    torch.manual_seed(0)
    model = SparseTransformer(mcfg)
    if run.get("compile"): model.compile()
    cfg = TrainConfig(steps=STEPS, batch_size=spec["small_batch"], lr=1e-3, warmup=5, eval_every=10, eval_batches=2,
                      precision="fp32", ckpt_path=run["ckpt"], ckpt_every=CKPT_EVERY, progress=False)
    t = Trainer(model, cfg, lm_batches(stdlib_splits(1_000_000), mcfg.context), shard=run.get("shard", False))
    if run.get("resume"): t.resume(run["ckpt"])
    def crash(t):
        print(f"[{run['name']}] step {t.step} loss {t.history['loss'][-1]:.6f}", flush=True) if t.rank == 0 else None
        if t.step == run.get("kill_at") and t.rank == 0: os.kill(os.getpid(), signal.SIGKILL)
    t0 = time.perf_counter()
    t.fit(callback=crash)
    if t.rank == 0: print(f"[{run['name']}] done: {t.world} process(es), sharded {t.sharded}, {time.perf_counter() - t0:.1f} s", flush=True)
    del t, model; _free()

def speed_run(spec, variant, world, rank, device):
    "Time training steps of the big model at `batch_per_gpu` sequences per process; peak memory of every process."
    import torch.distributed as dist
    mcfg = SparseTransformerConfig(**big_model(spec["cpu"]))
    B = spec["batch_per_gpu"] * world
    cuda = device.type == "cuda"
    if cuda: torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
    at_start = torch.cuda.memory_allocated() / 2**30 if cuda else None   # should be ~0: the previous variant is freed
    torch.manual_seed(0)
    cfg = TrainConfig(steps=10**6, batch_size=B, lr=6e-4, warmup=10, precision="bf16", eval_every=0, progress=False)
    t = Trainer(SparseTransformer(mcfg), cfg, lm_batches(stdlib_splits(), mcfg.context), shard=variant == "fsdp")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    losses = [t.train_step() for _ in range(spec["warmup_iters"])]
    sync(); t0 = time.perf_counter()
    losses += [t.train_step() for _ in range(spec["iters"])]
    sync(); dt = time.perf_counter() - t0
    mem = (torch.cuda.max_memory_allocated() / 2**30, at_start) if cuda else (None, None)
    mems = [None] * world
    if world > 1: dist.all_gather_object(mems, mem)
    else: mems = [mem]
    peaks, starts = [m[0] for m in mems], [m[1] for m in mems]
    res = {"variant": variant, "world": world, "batch_per_gpu": spec["batch_per_gpu"], "global_batch": B,
           "context": mcfg.context, "iters": spec["iters"], "ms_per_iter": dt / spec["iters"] * 1e3,
           "tokens_per_s": B * mcfg.context * spec["iters"] / dt, "peak_gib": peaks, "allocated_at_start_gib": starts,
           "losses": losses,
           "params_m": t.model.num_params() / 1e6 if hasattr(t.model, "num_params") else None}
    if rank == 0: print(f"[speed {variant} x{world}] {json.dumps({k: v for k, v in res.items() if k != 'losses'})}", flush=True)
    del t; _free()
    return res

def worker(spec_path):
    spec = json.loads(Path(spec_path).read_text())
    rank, world, device = setup_distributed()
    if rank == 0: print(f"[worker] {spec['job']}: {world} process(es) on {device}", flush=True)
    if spec["job"] == "small":
        for run in spec["runs"]: small_run(spec, run)
    elif spec["job"] == "speed":
        out = [speed_run(spec, v, world, rank, device) for v in spec["variants"]]
        if rank == 0: Path(spec["result"]).write_text(json.dumps(out))
    import torch.distributed as dist
    if dist.is_initialized(): dist.barrier(); dist.destroy_process_group()

# ---------------------------------------------------------------- driver side

class Driver:
    def __init__(self, args):
        self.args, self.t0 = args, time.perf_counter()
        self.out = Path(args.out); self.out.mkdir(parents=True, exist_ok=True)
        self.work = Path(args.work or tempfile.mkdtemp(prefix="multi_gpu_"))
        self.log = open(self.out / "log.txt", "a")
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
                    "PYTHONUNBUFFERED": "1"}
        for k, v in MULTICAST_OFF.items(): self.env.setdefault(k, v)   # NVLink multicast stays off everywhere
        if args.cpu: self.env.update(CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")   # one thread per process, for any count
        self.results = {"args": vars(args), "parts": {}}

    def say(self, *a):
        line = " ".join(str(x) for x in a)
        print(line, flush=True); self.log.write(line + "\n"); self.log.flush()

    def elapsed(self): return time.perf_counter() - self.t0

    def launch(self, nproc, spec, timeout):
        "Run the worker in `nproc` processes under torchrun; its output goes to the log. Returns the exit code."
        if self.elapsed() > self.args.budget:
            raise TimeoutError(f"skipped: {self.elapsed():.0f} s spent of a {self.args.budget:.0f} s budget")
        path = self.work / f"spec{len(list(self.work.glob('spec*.json')))}.json"
        path.write_text(json.dumps({"cpu": self.args.cpu, "small_batch": self.args.small_batch,
                                    "batch_per_gpu": self.args.batch_per_gpu, "warmup_iters": self.args.warmup_iters,
                                    "iters": self.args.iters, **spec}))
        cmd = torchrun_command(nproc, [__file__, "worker", path], module=None)
        self.say(f"\n$ {' '.join(map(str, cmd))}   [{spec['job']}: {[r['name'] for r in spec.get('runs', [])] or spec.get('variants')}]")
        t = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=torchrun_env(nproc, self.env), cwd=ROOT)
        try: rc = p.wait(timeout=min(timeout, max(30, self.args.budget + 60 - self.elapsed())))
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGTERM)   # torchrun stops its workers on SIGTERM
            try: p.wait(30)
            except subprocess.TimeoutExpired: p.kill(); p.wait()
            rc = "timeout"
        self.log.flush()
        self.say(f"  exit {rc} after {time.perf_counter() - t:.1f} s (total {self.elapsed():.0f} s)")
        return rc

    def small(self, nproc, runs, timeout=240):
        for r in runs: r["ckpt"] = str(self.work / f"{r['name']}.pt")
        return self.launch(nproc, {"job": "small", "runs": runs}, timeout)

    def ck(self, name):
        return load_checkpoint(self.work / f"{name}.pt")

    def part(self, key, title, fn):
        "Run one part; record its result or its error, so that one failure does not lose the others."
        self.say(f"\n=== part {key}: {title}")
        t = time.perf_counter()
        try: res = fn()
        except Exception as e:
            res = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-3000:]}
            self.say(f"  part {key} failed: {res['error']}")
        res["seconds"] = time.perf_counter() - t
        self.results["parts"][key] = res
        self.save()
        return res

    def save(self):
        self.results["total_seconds"] = self.elapsed()
        (self.out / "results.json").write_text(json.dumps(self.results, indent=1, default=str))

def max_gap(a, b):
    if len(a) != len(b): raise ValueError(f"histories of different lengths {len(a)} and {len(b)}")
    return max(abs(x - y) for x, y in zip(a, b))

def run_all(args):
    d = Driver(args)
    n = 2
    d.results["device"] = (f"{torch.cuda.device_count()} x {torch.cuda.get_device_name()}" if torch.cuda.is_available() and not args.cpu
                           else "CPU (gloo)")
    try:
        import triton; tv = triton.__version__
    except ImportError: tv = None
    d.results.update(torch=torch.__version__, triton=tv, date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                     small_model=small_model(args.cpu), big_model=big_model(args.cpu), steps=STEPS, kill_at=KILL_AT,
                     ckpt_every=CKPT_EVERY)
    d.say(f"{d.results['device']}, torch {torch.__version__}, triton {tv}, {d.results['date']}; work dir {d.work}")
    if not args.cpu:
        try: d.say(subprocess.run(["nvidia-smi", "topo", "-m"], capture_output=True, text=True, timeout=30).stdout)
        except Exception as e: d.say(f"nvidia-smi topo -m: {e}")
        if torch.cuda.device_count() < n: d.say(f"only {torch.cuda.device_count()} GPU(s): the 2-GPU parts will fail")
    parts = set(args.parts.split(","))
    ref = {}

    def part_a():
        rc1 = d.small(1, [{"name": "one"}])
        rc2 = d.small(n, [{"name": "ddp"}, {"name": "fsdp", "shard": True}])
        one = d.ck("one")
        ref["one"] = one["history"]["loss"]
        ddp = d.ck("ddp")
        res = {"exit": [rc1, rc2], "loss_one": one["history"]["loss"], "loss_ddp": ddp["history"]["loss"],
               "max_abs_loss_diff": max_gap(one["history"]["loss"], ddp["history"]["loss"]),
               "max_abs_eval_bits_diff": max_gap([e["bits"] for e in one["evals"]], [e["bits"] for e in ddp["evals"]]),
               "worlds": [one["world"], ddp["world"]], "steps": [one["step"], ddp["step"]]}
        res["pass"] = res["max_abs_loss_diff"] <= 1e-5 and res["steps"] == [STEPS, STEPS]
        d.say(f"  a: max |loss(1 GPU) - loss(2 GPUs DDP)| over {STEPS} steps = {res['max_abs_loss_diff']:.2e}")
        return res

    def part_b():
        r1 = d.work / "speed1.json"; r2 = d.work / "speed2.json"
        d.launch(1, {"job": "speed", "variants": ["plain"], "result": str(r1)}, timeout=300)
        d.launch(n, {"job": "speed", "variants": ["ddp", "fsdp"], "result": str(r2)}, timeout=360)
        one = json.loads(r1.read_text())[0]
        ref["speed"] = {"plain": one}
        res = {"one_gpu": one}
        if r2.exists():
            ddp, fsdp = json.loads(r2.read_text())
            ref["speed"].update(ddp=ddp, fsdp=fsdp)
            res.update(two_gpu_ddp=ddp, speedup_ddp=ddp["tokens_per_s"] / one["tokens_per_s"],
                       speedup_fsdp=fsdp["tokens_per_s"] / one["tokens_per_s"])
            res["pass"] = res["speedup_ddp"] >= 1.85
            d.say(f"  b: tokens/s 1 GPU {one['tokens_per_s']:.0f}, 2 GPUs DDP {ddp['tokens_per_s']:.0f} "
                  f"({res['speedup_ddp']:.3f}x), FSDP2 {fsdp['tokens_per_s']:.0f} ({res['speedup_fsdp']:.3f}x)")
        return res

    def part_c():
        res = {}
        ddp, fsdp = d.ck("ddp"), d.ck("fsdp")   # written in part a
        res["max_abs_loss_diff_fsdp_ddp"] = max_gap(ddp["history"]["loss"], fsdp["history"]["loss"])
        if "one" in ref: res["max_abs_loss_diff_fsdp_one"] = max_gap(ref["one"], fsdp["history"]["loss"])
        res["max_abs_weight_diff_fsdp_ddp"] = max((ddp["model"][k] - fsdp["model"][k]).abs().max().item() for k in ddp["model"])
        res["same_checkpoint_keys"] = sorted(ddp["model"]) == sorted(fsdp["model"]) and \
            ddp["optimizer"]["param_groups"] == fsdp["optimizer"]["param_groups"]
        sp = ref.get("speed", {})
        if "ddp" in sp and "fsdp" in sp:
            res["peak_gib_ddp"], res["peak_gib_fsdp"] = sp["ddp"]["peak_gib"], sp["fsdp"]["peak_gib"]
            res["peak_gib_one"] = sp["plain"]["peak_gib"]
            res["big_model_bf16_max_abs_loss_diff_fsdp_ddp"] = max_gap(sp["ddp"]["losses"], sp["fsdp"]["losses"])
            lower = None if res["peak_gib_ddp"][0] is None else max(res["peak_gib_fsdp"]) < min(res["peak_gib_ddp"])
            res["fsdp_lower_peak"] = lower
        res["pass"] = res["max_abs_loss_diff_fsdp_ddp"] <= 1e-5 and res.get("fsdp_lower_peak") is not False
        d.say(f"  c: max |loss(FSDP2) - loss(DDP)| = {res['max_abs_loss_diff_fsdp_ddp']:.2e}; peak GiB DDP "
              f"{res.get('peak_gib_ddp')} FSDP2 {res.get('peak_gib_fsdp')}")
        return res

    def part_d():
        res = {}
        if "one" not in ref: d.small(1, [{"name": "one"}]); ref["one"] = d.ck("one")["history"]["loss"]
        for name, first, then in (("2to1", (n, {}), (1, {})), ("1to2", (1, {}), (n, {"shard": True}))):
            rc_kill = d.small(first[0], [{"name": name, "kill_at": KILL_AT, **first[1]}])
            at_kill = d.ck(name)["step"]
            rc_resume = d.small(then[0], [{"name": name, "resume": True, **then[1]}])
            c = d.ck(name)
            r = {"exit_killed": rc_kill, "exit_resumed": rc_resume, "checkpoint_step_at_kill": at_kill,
                 "final_step": c["step"], "world_after": c["world"], "loss": c["history"]["loss"],
                 "max_abs_loss_diff_vs_uninterrupted_1gpu": max_gap(ref["one"], c["history"]["loss"])}
            r["pass"] = (rc_kill not in (0, "timeout") and at_kill == KILL_AT // CKPT_EVERY * CKPT_EVERY and c["step"] == STEPS
                         and r["max_abs_loss_diff_vs_uninterrupted_1gpu"] <= 1e-5)
            res[name] = r
            d.say(f"  d {name}: killed after step {KILL_AT} (exit {rc_kill}), resumed from step {at_kill} to {c['step']}, "
                  f"max |loss - uninterrupted 1 GPU| = {r['max_abs_loss_diff_vs_uninterrupted_1gpu']:.2e}")
        res["pass"] = all(r["pass"] for r in res.values() if isinstance(r, dict))
        return res

    def part_e():
        res, name = {}, "fsdp_compiled"
        res["exit"] = d.small(n, [{"name": name, "shard": True, "compile": True}], timeout=300)
        if res["exit"] != 0:   # the model's own backend did not compile: try the attention in PyTorch
            name = "fsdp_compiled_torch_attention"
            res["exit_torch_attention"] = d.small(n, [{"name": name, "shard": True, "compile": True, "backend": "torch"}], timeout=300)
        c = d.ck(name)
        res.update(run=name, loss=c["history"]["loss"])
        if "one" in ref: res["max_abs_loss_diff_vs_1gpu"] = max_gap(ref["one"], c["history"]["loss"])
        res["pass"] = c["step"] == STEPS and res.get("max_abs_loss_diff_vs_1gpu", 1) <= 1e-5
        d.say(f"  e: compiled FSDP2, max |loss - 1 GPU| = {res.get('max_abs_loss_diff_vs_1gpu')}")
        return res

    for key, title, fn in (("a", "DDP on 2 GPUs against 1 GPU, same global batch, fp32", part_a),
                           ("b", "tokens/s at the Enwik8 shape, 1 GPU against 2", part_b),
                           ("c", "FSDP2 against DDP: losses and peak memory per GPU", part_c),
                           ("d", "kill and resume on the other GPU count", part_d),
                           ("e", "FSDP2 with the model compiled", part_e)):
        if key in parts: d.part(key, title, fn)
    summary(d)
    return d.results

def summary(d):
    P = d.results["parts"]
    def get(k, *path):
        v = P.get(k, {})
        for p in path: v = v.get(p) if isinstance(v, dict) else None
        return v
    fmt = lambda v, f: "-" if v is None else format(v, f)
    rows = [("a", "max |loss 1 GPU - 2 GPUs DDP|, fp32", fmt(get("a", "max_abs_loss_diff"), ".2e"), "<= 1e-5", get("a", "pass")),
            ("b", "tokens/s 2 GPUs DDP / 1 GPU", fmt(get("b", "speedup_ddp"), ".3f"), ">= 1.85", get("b", "pass")),
            ("b", "tokens/s 2 GPUs FSDP2 / 1 GPU", fmt(get("b", "speedup_fsdp"), ".3f"), "", None),
            ("c", "max |loss FSDP2 - DDP|, fp32", fmt(get("c", "max_abs_loss_diff_fsdp_ddp"), ".2e"), "<= 1e-5", get("c", "pass")),
            ("c", "peak GiB per GPU, DDP", str(get("c", "peak_gib_ddp")), "", None),
            ("c", "peak GiB per GPU, FSDP2", str(get("c", "peak_gib_fsdp")), "lower", get("c", "fsdp_lower_peak")),
            ("d", "2 GPUs -> 1: max |loss - uninterrupted|", fmt(get("d", "2to1", "max_abs_loss_diff_vs_uninterrupted_1gpu"), ".2e"), "<= 1e-5", get("d", "2to1", "pass")),
            ("d", "1 GPU -> 2 (FSDP2): max |loss - uninterrupted|", fmt(get("d", "1to2", "max_abs_loss_diff_vs_uninterrupted_1gpu"), ".2e"), "<= 1e-5", get("d", "1to2", "pass")),
            ("e", "compiled FSDP2: max |loss - 1 GPU|", fmt(get("e", "max_abs_loss_diff_vs_1gpu"), ".2e"), "<= 1e-5", get("e", "pass"))]
    d.say(f"\n{d.results['device']}, torch {d.results['torch']}, {d.results['date']}, {d.elapsed():.0f} s in all")
    d.say(f"{'part':4} {'measure':48} {'value':>22} {'target':>8}  result")
    for k, m, v, tgt, ok in rows:
        err = " (error: " + P[k]["error"][:60] + ")" if "error" in P.get(k, {}) else ""
        d.say(f"{k:4} {m:48} {v:>22} {tgt:>8}  {'-' if ok is None else 'pass' if ok else 'FAIL'}{err}")
    d.save()

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder for results.json and log.txt")
    ap.add_argument("--work", default=None, help="folder for checkpoints (default: a new temporary folder)")
    ap.add_argument("--cpu", action="store_true", help="dry run on the CPU: gloo, tiny shapes")
    ap.add_argument("--parts", default="a,b,c,d,e", help="which parts to run (default: %(default)s)")
    ap.add_argument("--batch-per-gpu", type=int, default=None, help="part b's batch per process (default: 32 on GPUs, 2 on the CPU)")
    ap.add_argument("--small-batch", type=int, default=8, help="global batch of the small runs (default: %(default)s)")
    ap.add_argument("--warmup-iters", type=int, default=2, help="part b's untimed iterations (default: %(default)s)")
    ap.add_argument("--iters", type=int, default=6, help="part b's timed iterations (default: %(default)s)")
    ap.add_argument("--budget", type=float, default=390, help="start no run after this many seconds (default: %(default)s)")
    ap.add_argument("argv", nargs="*", help=argparse.SUPPRESS)
    if argv is None: argv = sys.argv[1:]
    if argv[:1] == ["worker"]: return worker(argv[1])
    args = ap.parse_args(argv)
    if args.batch_per_gpu is None: args.batch_per_gpu = 2 if args.cpu else 32
    if args.cpu: args.small_batch = min(args.small_batch, 4)
    run_all(args)
    return 0

if __name__ == "__main__":
    sys.exit(main())
