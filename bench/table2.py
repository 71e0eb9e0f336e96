"""Bits/byte per attention pattern after the same wall time: the project's version of the paper's Table 2.

The paper's Enwik8-shaped model (30 layers, d=512, 8 heads, context 12,288, l=128, c=32 for fixed, merged heads,
recomputation on) is trained from scratch on the whole embedded standard-library corpus, once per pattern, for the same
number of seconds of training. Dense uses PyTorch SDPA (backend='sdpa'); fixed and strided use our Triton kernels through
the registered op. Both sides are compiled the same way: each residual block with `torch.compile` (the 30 blocks share
one compiled graph). The first steps (compilation) and the evaluations are not counted. The learning-rate schedule
(linear warm-up, cosine decay) is sized to each pattern's own step count, estimated from its measured time per step.

Each pattern writes OUT/table2_<kind>_s<seed>.json, rewritten after every evaluation, so that a run cut short keeps
its curve; patterns can run in separate processes (or machines) and be read together afterwards.

--dry trains a tiny model on the CPU for a few seconds, to check the script.

Usage: python bench/table2.py SECONDS OUT [--kinds dense fixed strided] [--batch 4] [--seed 0] [--evals 10] [--dry]"""
import argparse, json, os, time
import torch
import triton
from sparse_transformer_edu import data as D, model as M, train as T
from enwik8_shape import CASES, enwik8_config

LR, WARMUP = 6e-4, 50   # the same for every pattern


def dry_config(kind, backend):
    "A tiny model of the same layout, for checking the script on the CPU."
    return M.SparseTransformerConfig(n_layer=2, d_model=32, n_head=2, context=64, kind=kind, stride=8, c=2,
                                     attn_mode="merged", recompute=True, backend="torch" if backend == "triton" else backend)


def sync_time(dev):
    if dev == "cuda": torch.cuda.synchronize()
    return time.perf_counter()


def train_for(kind, backend, budget, batch, splits, seed=0, evals=10, dry=False, save=None, warm_steps=3, time_steps=5):
    "Train one pattern for `budget` seconds of training time; its curve of validation bits/byte and its timings."
    dev = "cpu" if dry else "cuda"
    torch.manual_seed(seed)
    cfg = (dry_config if dry else enwik8_config)(kind, backend)
    tcfg = T.TrainConfig(steps=10**6, batch_size=batch, lr=LR, warmup=WARMUP, min_lr_ratio=0.1,
                         precision="fp32" if dry else "bf16", eval_every=0, eval_batches=8, progress=False, seed=seed)
    model = M.SparseTransformer(cfg)
    if not dry:
        for b in model.blocks: b.compile()   # regional compilation, the same for every pattern
    tr = T.Trainer(model, tcfg, T.lm_batches(splits, cfg.context), device=dev)
    t_start = time.perf_counter()
    for _ in range(warm_steps): tr.train_step()          # compilation and autotuning: not counted
    tr.evaluate("valid", 1)                               # compiles the evaluation graphs: not counted either
    warm_s = time.perf_counter() - t_start
    t0 = sync_time(dev)
    for _ in range(time_steps): tr.train_step()
    per_step = (sync_time(dev) - t0) / time_steps
    total = warm_steps + time_steps + max(1, int((budget - time_steps * per_step) / per_step))
    tr.cfg.steps = total
    tr.sched.lr_lambdas[0].total = total                   # cosine decay ends with this pattern's budget
    trained, curve = time_steps * per_step, []
    res = {"kind": kind, "backend": cfg.backend, "seed": seed, "batch": batch, "budget_s": budget, "lr": LR, "warmup": WARMUP,
           "warm_s": warm_s, "ms_per_step_first": per_step * 1e3, "planned_steps": total,
           "params": model.num_params(), "curve": curve}
    marks = [budget * (i + 1) / evals for i in range(evals)]
    def record(loss):
        ev = tr.evaluate("valid")
        curve.append({"seconds": trained, "step": tr.step, "train_bits": loss / T.LN2, "valid_bits": ev["bits"]})
        res.update(steps=tr.step, seconds=trained, valid_bits=ev["bits"], ms_per_step=trained / (tr.step - warm_steps) * 1e3)
        if dev == "cuda": res["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
        print(kind, curve[-1], flush=True)
        if save: save(res)
    loss = float("nan")
    while trained < budget:   # past the estimate, the schedule stays at its floor
        t0 = time.perf_counter()
        loss = tr.train_step()   # returns a Python float: the step has finished on the device
        trained += sync_time(dev) - t0
        if marks and trained >= marks[0]:
            while marks and trained >= marks[0]: marks.pop(0)
            record(loss)
    if not curve or curve[-1]["step"] != tr.step: record(loss)
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("seconds", type=float, help="training time per pattern")
    ap.add_argument("out", help="folder for the JSON files")
    ap.add_argument("--kinds", nargs="+", default=[k for k, _ in CASES], choices=[k for k, _ in CASES], help="patterns to train, in order")
    ap.add_argument("--batch", type=int, default=4, help="sequences per step (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the weights, the data order and dropout (default: %(default)s)")
    ap.add_argument("--evals", type=int, default=10, help="evaluations spread over the training time (default: %(default)s)")
    ap.add_argument("--dry", action="store_true", help="a tiny model on the CPU with 1 MB of corpus, to check the script")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    splits = D.stdlib_splits(1_000_000 if args.dry else 64_000_000)   # 64 MB: the whole corpus
    head = {"device": "cpu" if args.dry else torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "corpus_bytes": {k: len(v) for k, v in splits.items()},
            "unigram_bits": D.unigram_cross_entropy(splits["train"], splits["valid"])}
    print(head, flush=True)
    for kind in args.kinds:
        path = os.path.join(args.out, f"table2_{kind}_s{args.seed}.json")
        def save(res):   # written whole, then renamed: a run cut short leaves the last complete file
            with open(path + ".tmp", "w") as f: json.dump({**head, **res}, f, indent=1)
            os.replace(path + ".tmp", path)
        res = train_for(kind, dict(CASES)[kind], args.seconds, args.batch, splits, args.seed, args.evals, args.dry, save)
        save(res)
        print(kind, {k: v for k, v in res.items() if k != "curve"}, flush=True)
        if not args.dry: torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()


if __name__ == "__main__": main()
