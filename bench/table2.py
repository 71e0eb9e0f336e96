"""Bits/byte per attention pattern after the same wall time: the project's version of the paper's Table 2.

The paper's Enwik8-shaped model (30 layers, d=512, 8 heads, context 12,288, l=128, c=32 for fixed, merged heads,
recomputation on) is trained from scratch on the embedded standard-library corpus, once per pattern, for the same
number of seconds of training. Dense uses PyTorch SDPA (backend='sdpa'); fixed and strided use our Triton kernels.
The first steps (kernel compilation) and the evaluations are not counted. The learning-rate schedule (linear warm-up,
cosine decay) is sized to each pattern's own step count, estimated from its measured time per step.

Usage: python bench/table2.py SECONDS OUT_JSON [--batch 4]"""
import argparse, json, time
import torch
import triton
from sparse_transformer_edu import data as D, model as M, train as T
from enwik8_shape import CASES, enwik8_config


def sync_time():
    torch.cuda.synchronize(); return time.perf_counter()


def train_for(kind, backend, budget, batch, splits, warm_steps=3, time_steps=5, eval_points=3):
    "Train one pattern for `budget` seconds of training time; its curve of validation bits/byte and its timings."
    torch.manual_seed(0)
    cfg = enwik8_config(kind, backend)
    tcfg = T.TrainConfig(steps=10**6, batch_size=batch, lr=6e-4, warmup=30, min_lr_ratio=0.1, precision="bf16",
                         eval_every=0, eval_batches=8, progress=False, seed=0)
    tr = T.Trainer(M.SparseTransformer(cfg), tcfg, T.lm_batches(splits, cfg.context), device="cuda")
    for _ in range(warm_steps): tr.train_step()          # compilation and autotuning: not counted
    t0 = sync_time()
    for _ in range(time_steps): tr.train_step()
    per_step = (sync_time() - t0) / time_steps
    total = warm_steps + time_steps + int((budget - time_steps * per_step) / per_step)
    tr.cfg.steps = total
    tr.sched.lr_lambdas[0].total = total                   # cosine decay ends with this pattern's budget
    trained, curve = time_steps * per_step, []
    marks = [budget * (i + 1) / eval_points for i in range(eval_points)]
    while trained < budget:   # past the estimate, the schedule stays at its floor
        t0 = time.perf_counter()
        loss = tr.train_step()
        trained += sync_time() - t0
        if marks and trained >= marks[0]:
            marks.pop(0)
            ev = tr.evaluate("valid")
            curve.append({"seconds": trained, "step": tr.step, "train_bits": loss / T.LN2, "valid_bits": ev["bits"]})
            print(kind, curve[-1], flush=True)
    if not curve or curve[-1]["step"] != tr.step:
        ev = tr.evaluate("valid")
        curve.append({"seconds": trained, "step": tr.step, "train_bits": loss / T.LN2, "valid_bits": ev["bits"]})
    return {"backend": backend, "ms_per_step": per_step * 1e3, "steps": tr.step, "seconds": trained,
            "valid_bits": curve[-1]["valid_bits"], "curve": curve, "peak_gib": torch.cuda.max_memory_allocated() / 2**30}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("seconds", type=float, help="training time per pattern")
    ap.add_argument("out", help="JSON file for the results")
    ap.add_argument("--batch", type=int, default=4, help="sequences of 12,288 bytes per step (default: %(default)s)")
    args = ap.parse_args(argv)
    budget, out, batch = args.seconds, args.out, args.batch
    splits = D.stdlib_splits()
    baseline = D.unigram_cross_entropy(splits["train"], splits["valid"])
    result = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__,
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "budget_s": budget, "batch": batch,
              "corpus_bytes": {k: len(v) for k, v in splits.items()}, "unigram_bits": baseline, "runs": {}}
    print(result, flush=True)
    for kind, backend in CASES:
        result["runs"][kind] = train_for(kind, backend, budget, batch, splits)
        print(kind, {k: v for k, v in result["runs"][kind].items() if k != "curve"}, flush=True)
        json.dump(result, open(out, "w"), indent=1)
        torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()


if __name__ == "__main__": main()
