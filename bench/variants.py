"""Time the kernels of several git revisions under the same protocol, in one GPU run.

`prepare` (here, in the checkout) writes each revision's `sparse_transformer_edu/` into .variants/NAME (git archive; the
folder is ignored, so name it in the GPU call's carry). `run` (on the GPU machine) runs chapter 11's benchmark once per
variant, each in its own process with that variant first on the path, writes OUT/NAME/results.csv, and prints one table:
median ms per pattern, pass and shape, and each variant's ratio to the first. The current working tree can take part
as the variant `.`.

Usage: python bench/variants.py prepare REV [REV ...]
       python bench/variants.py run OUT [--shapes 1x64x16384 1x64x65536] [--patterns fixed strided dense] [--flex]"""
import argparse, csv, os, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOME = ROOT / ".variants"


def prepare(revs):
    "Write each revision's package into .variants/NAME (NAME: the revision with '/' as '-')."
    HOME.mkdir(exist_ok=True)
    for rev in revs:
        dest = HOME / rev.replace("/", "-")
        dest.mkdir(exist_ok=True)
        tar = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "sparse_transformer_edu"], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=tar, check=True)
        print(f"{rev} -> {dest.relative_to(ROOT)}")


def variant_dirs():
    "'.' (the working tree) and every prepared variant, in name order."
    return [(".", ROOT)] + sorted((p.name, p) for p in HOME.glob("*") if (p / "sparse_transformer_edu").is_dir())


def read_medians(path):
    "{(pattern, pass, B, D, N): ms} of our kernels' rows in a results.csv."
    out = {}
    with open(path) as f:
        for r in csv.DictReader(f):
            if r["impl"].startswith("ours"):
                out[(r["impl"], r["pass_"], f"B={r['B']}", f"D={r['D']}", f"N={r['N']}")] = float(r["ms"])
    return out


def run(out, shapes, patterns, flex):
    out = Path(out).resolve(); out.mkdir(parents=True, exist_ok=True)
    results = {}
    for name, path in variant_dirs():
        dest = out / name.replace(".", "worktree")
        cmd = [sys.executable, "-m", "sparse_transformer_edu.bench", "--out", str(dest), "--shapes", *shapes, "--patterns", *patterns]
        if not flex: cmd.append("--no-flex")
        # run from the variant's folder: `python -m` puts the working directory first on the path
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(path), os.environ.get("PYTHONPATH", "")])}
        pkg = subprocess.run([sys.executable, "-c", "import sparse_transformer_edu as s; print(s.__file__)"], cwd=path, env=env,
                             capture_output=True, text=True).stdout.strip()
        print(f"== {name} ({pkg}): {' '.join(cmd[1:])}", flush=True)
        r = subprocess.run(cmd, env=env, cwd=path)
        if r.returncode == 0 and (dest / "results.csv").exists(): results[name] = read_medians(dest / "results.csv")
        else: print(f"{name}: failed with exit code {r.returncode}", flush=True)
    if not results: sys.exit("no variant finished")
    names, first = list(results), next(iter(results.values()))
    print("\n" + " | ".join(["row"] + [f"{n} ms (x first)" for n in names]))
    for key in first:
        cells = [f"{results[n][key]:.3f} ({first[key] / results[n][key]:.2f}x)" if key in results[n] else "-" for n in names]
        print(" | ".join([" ".join(key)] + cells))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="write the packages of git revisions into .variants/")
    p.add_argument("revs", nargs="+")
    r = sub.add_parser("run", help="benchmark the working tree and every prepared variant (needs a CUDA GPU)")
    r.add_argument("out")
    r.add_argument("--shapes", nargs="+", default=["1x64x16384", "1x64x65536"], metavar="BxDxN")
    r.add_argument("--patterns", nargs="+", default=["fixed", "strided", "dense"])
    r.add_argument("--flex", action="store_true", help="time FlexAttention too (slow: it compiles per shape)")
    a = ap.parse_args(argv)
    if a.cmd == "prepare": prepare(a.revs)
    else: run(a.out, a.shapes, a.patterns, a.flex)


if __name__ == "__main__": main()
