"""The `gpu` preset as a new user meets it: `ste train` with no flags on one GPU, then one `ste sample`.

Runs `ste train --out OUT/gpu_preset.pt --no-progress` (every setting from the preset the machine picks: `gpu` with a
CUDA GPU; without a progress bar the command prints one line per evaluation), then `ste sample --prompt 'def ' --seed 0`
once, and writes OUT/gpu_preset.log and OUT/gpu_preset.json: validation bits/byte, wall time, steps, parameters, the
resolved settings, the sample, the card, torch and triton versions and the date. The log is written line by line and the
JSON after each stage, so a run that is cut short leaves what it reached. The whole script stays within --budget seconds
(9.5 minutes): training that has not finished when only --sample-reserve seconds are left is interrupted, and the sample
is drawn from the last checkpoint.

--dry runs the same two commands on the CPU with a tiny model (`--preset gpu` and small overrides), to check the script.

Usage: PYTHONPATH=. python bench/gpu_preset.py OUT [--dry] [--budget 570]"""
import argparse, json, os, queue, re, shlex, signal, subprocess, sys, threading, time
from pathlib import Path

DRY = ["--preset", "gpu", "--steps", "3", "--max-bytes", "50000", "--n-layer", "1", "--d-model", "32", "--n-head", "2",
       "--context", "64", "--stride", "8", "--c", "2", "--batch-size", "4", "--eval-every", "2", "--eval-batches", "2",
       "--precision", "fp32", "--no-compile", "--time-limit", "60"]


def ste(*args):
    "The command line of `ste` run by this Python, whichever way the package is installed."
    return [sys.executable, "-m", "sparse_transformer_edu.cli", *args]


class Run:
    "The results so far: a log written line by line and a JSON rewritten after each stage."
    def __init__(self, out:Path):
        out.mkdir(parents=True, exist_ok=True)
        self.json_path, self.t0, self.result = out / "gpu_preset.json", time.perf_counter(), {}
        self.log = open(out / "gpu_preset.log", "a", buffering=1)

    def say(self, text:str):
        "Log a line, stamped with the seconds since the start, and echo it."
        line = f"[{time.perf_counter() - self.t0:6.1f} s] {text}"
        self.log.write(line + "\n"); print(line, flush=True)

    def save(self, **kw):
        "Add `kw` to the results and rewrite the JSON."
        self.result.update(kw, total_s=round(time.perf_counter() - self.t0, 1))
        tmp = self.json_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.result, indent=1)); os.replace(tmp, self.json_path)


def stream(run:Run, cmd:list, deadline:float) -> tuple[int, list]:
    "Run `cmd`, logging its output as it comes; interrupt it (SIGINT, then SIGKILL 15 s later) at `deadline`. Returns (code, lines)."
    run.say("$ " + shlex.join(cmd))
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines, q = [], queue.Queue()
    def pump():   # a thread reads the pipe, so that the loop below can watch the clock
        for line in p.stdout: q.put(line)
        q.put(None)
    threading.Thread(target=pump, daemon=True).start()
    stopped = False
    while True:
        try: line = q.get(timeout=1.0)
        except queue.Empty: line = ""
        if line is None: break
        if line: lines.append(line.rstrip("\n")); run.say(lines[-1])
        if time.perf_counter() > deadline:
            if not stopped: run.say("deadline reached: interrupting"); p.send_signal(signal.SIGINT); stopped = True; deadline += 15
            else: p.kill()
    return p.wait(), lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="folder for gpu_preset.json, gpu_preset.log and the checkpoint")
    ap.add_argument("--dry", action="store_true", help="a tiny run on the CPU, to check the script")
    ap.add_argument("--budget", type=float, default=570.0, help="seconds the whole script may take (default: %(default)s)")
    ap.add_argument("--sample-reserve", type=float, default=45.0, help="seconds kept for the sample (default: %(default)s)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    run = Run(out)   # the budget counts from here
    import torch     # after parsing, so that --help is quick
    ckpt = out / "gpu_preset.pt"
    cuda = torch.cuda.is_available()
    if not cuda and not args.dry: sys.exit("no CUDA GPU found: this script measures the gpu preset on a GPU (use --dry to check it on the CPU)")
    try: import triton; triton_version = triton.__version__
    except ImportError: triton_version = None
    run.save(dry=args.dry, date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
             device=torch.cuda.get_device_name() if cuda else "cpu", torch=torch.__version__, triton=triton_version,
             python=sys.version.split()[0], status="training")
    start = time.perf_counter()
    code, lines = stream(run, ste("train", "--out", str(ckpt), "--no-progress", *(DRY if args.dry else [])),
                         run.t0 + args.budget - args.sample_reserve)
    train_s = time.perf_counter() - start
    settings = next((l for l in lines if l.startswith("preset ")), None)
    final = next((l for l in reversed(lines) if l.startswith("valid ")), None)
    res = dict(train_exit=code, train_wall_s=round(train_s, 1), settings_line=settings, final_line=final,
               evals=[dict(step=int(m[1].replace(",", "")), bits=float(m[2]))
                      for m in (re.match(r"step ([\d,]+) of [\d,]+: valid ([\d.]+)", l) for l in lines) if m])
    if ckpt.exists():
        from sparse_transformer_edu.train import load_checkpoint
        from sparse_transformer_edu.cli import load_model
        ck = load_checkpoint(ckpt)
        res.update(steps=ck["step"], valid_bits=ck["meta"].get("valid_bits"), unigram_bits=ck["meta"].get("unigram_bits"),
                   preset=ck["meta"].get("preset"), model_config=ck["model_config"], train_config=ck["train_config"],
                   params=load_model(ckpt, "cpu").num_params(), checkpoint_evals=ck["evals"])
        if res["valid_bits"] is None and ck["evals"]: res["valid_bits"] = ck["evals"][-1]["bits"]   # an interrupted run's last one
    run.save(**res, status="sampling" if ckpt.exists() else "no checkpoint")
    if not ckpt.exists(): run.say("no checkpoint: nothing to sample"); return 1
    cmd = ste("sample", "--checkpoint", str(ckpt), "--prompt", "def ", "--seed", "0")
    run.say("$ " + shlex.join(cmd))
    try: r = subprocess.run(cmd, capture_output=True, text=True, timeout=max(1.0, run.t0 + args.budget - time.perf_counter()))
    except subprocess.TimeoutExpired: r = subprocess.CompletedProcess(cmd, "timeout", "", "the sample ran out of time")
    for line in (r.stdout + r.stderr).splitlines(): run.say(line)
    ok = r.returncode == 0
    run.save(sample=r.stdout if ok else None, sample_exit=r.returncode, status="done" if ok else "sample failed")
    run.say(f"valid {res.get('valid_bits')} bits/byte after {res.get('steps')} steps; training {train_s:.0f} s; "
            f"total {time.perf_counter() - run.t0:.0f} s")
    return 0


if __name__ == "__main__": sys.exit(main())
