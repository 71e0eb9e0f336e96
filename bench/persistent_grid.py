"""Write a variant of the package whose forward kernel runs on a persistent grid, for `bench/variants.py run`.

The variant's `_attn_fwd` launches min(tiles, SMs x M) programs, and each program loops over the (query tile, batch x
head) pairs i = program, program + programs, ...: pair i takes the query tile at place i // (B*H) in the plan's
longest-first order, for batch-head i % (B*H), so the longest table rows of every head come first. The body of one
pair is the package's kernel, unchanged. The backward kernels are untouched. The variant is written from the working
tree's package into DEST/persistM (default .variants/persistM), which `bench/variants.py run` times beside the others.

With --check, the variant is imported in a fresh process under Triton's interpreter and its forward is compared with
the float64 reference for strided and fixed at n=128 (on the CPU the grid is one program per pair).

Usage: python bench/persistent_grid.py M [M ...] [--dest DIR] [--check]"""
import argparse, os, re, shutil, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LOOKUP = """    tq = tl.load(ORDER + pid)
    start = tl.load(LUT_OFF + h * lut_h + tq)
    split = tl.load(LUT_SPLIT + h * split_h + tq)
    end = tl.load(LUT_OFF + h * lut_h + tq + 1)
"""
LOOP = """    for i in range(tl.program_id(0), TILES * BH, tl.num_programs(0)):   # longest table rows first, across every head
        _fwd_one(ARGS, i // BH, i % BH, CONSTS)

_SMS = {}
def _programs(dev, tiles):
    "Programs of the persistent grid: the GPU's SM count times MULT, or fewer when there are fewer pairs."
    if dev not in _SMS: _SMS[dev] = torch.cuda.get_device_properties(dev).multi_processor_count
    return min(tiles, _SMS[dev] * MULT)

"""
ARGS = "_map_stride(plan.lut_off), _map_stride(plan.lut_split), H, plan.NQ, (D ** -0.5 if scale is None else scale) * LOG2E)"
LAUNCH = "launch(_attn_fwd, grid, args, consts, _launch_cfg(plan, D), lead=5)"
PLACE = "    slot, b, h = _program(H, HEADS_FIRST)\n"
CELL = "# %% ../nbs/04_kernel_forward.ipynb #ac42e63f"


def patched(src:str, mult:int) -> str:
    "kernels.py with the persistent forward grid of SMs x mult programs."
    start = src.index("@_jit\ndef _attn_fwd(")
    body = src.index(PLACE, start)
    lut = src.index("\n", src.index("_lut_row(ORDER", body)) + 1
    sig = src[start:body]                                        # the decorator and the signature
    if "qk_scale,\n" not in sig or src.count(ARGS) != 1 or src.count(LAUNCH) != 1 or src.count(CELL) != 1:
        raise SystemExit("kernels.py has changed: the forward kernel's signature or launch is not where this script expects")
    head = "    b = bh // H\n    h = bh % H\n" + LOOKUP   # the grid's order is this loop's: HEADS_FIRST goes unused
    one = sig.replace("def _attn_fwd(", "def _fwd_one(").replace("qk_scale,\n", "qk_scale, pid, bh,\n") + head
    params = sig[sig.index("(") + 1:sig.index("qk_scale,")] + "qk_scale"   # every argument but the constexprs
    consts = ", ".join(re.findall(r"(\w+): tl.constexpr", sig))
    loop = sig.replace("qk_scale,\n", "qk_scale, TILES, BH,\n") + LOOP.replace("ARGS", " ".join(params.split())).replace(
        "CONSTS", consts).replace("MULT", str(mult))
    src = src[:start] + one + src[lut:]
    src = src.replace(ARGS, ARGS[:-1] + ",\n            plan.TQ, B * H)")
    src = src.replace(LAUNCH, "grid = (_programs(q.device, plan.TQ * B * H), 1) if q.is_cuda else (plan.TQ * B * H, 1)\n    "
                      + LAUNCH)   # replaces the grid `_order` gave
    return src.replace(CELL, loop + CELL)


CHECK = """
import torch
from sparse_transformer_edu.kernels import blocksparse_forward
from sparse_transformer_edu.plans import sparse_plan, attention_reference, rel_err
from sparse_transformer_edu.patterns import token_mask
torch.manual_seed(0)
for kind, kw in (("strided", dict(stride=16)), ("fixed", dict(stride=16, c=4))):
    plan = sparse_plan(kind, 128, 2, block=(32, 32), **kw)
    q, k, v = (torch.randn(1, 2, 128, 32) for _ in range(3))
    err = rel_err(blocksparse_forward(q, k, v, plan.fwd)[0], attention_reference(q, k, v, token_mask(kind, 128, **kw), dtype=torch.float64)[0])
    print(kind, f"{err:.1e}")
    assert err < 1e-5, (kind, err)
"""


def apply_edits(src:str, edits) -> str:
    "`src` with each (old, new, count) of `edits` done, after checking that `old` occurs exactly `count` times."
    for old, new, count in edits:
        if src.count(old) != count:
            raise SystemExit(f"kernels.py has changed: expected {count} of {old.splitlines()[0].strip()!r}, found {src.count(old)}")
        src = src.replace(old, new)
    return src

GRADS_CHECK = """
import torch
import sparse_transformer_edu.kernels as K
from sparse_transformer_edu.plans import sparse_plan, plan_from_mask, attention_reference, rel_err
from sparse_transformer_edu.patterns import token_mask
torch.manual_seed(0)
def errors(plan, mask, n):
    "Relative errors of a variant's output and gradients (q, k, v) against float64: fp32, B=2, H=2, D=32, fresh inputs."
    q, k, v, do = (torch.randn(2, 2, n, 32, dtype=torch.float32) for _ in range(4))
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    out, lse = K.blocksparse_forward(*leaves, plan.fwd)
    grads = K.blocksparse_backward(*leaves, out, lse, do, plan.bwd)
    ref = [t.double().requires_grad_() for t in (q, k, v)]
    want = attention_reference(*ref, mask, dtype=torch.float64)[0]
    want.backward(do.double())
    return [rel_err(out, want)] + [rel_err(g, r.grad) for g, r in zip(grads, ref)]
"""   # the start of a variant's check: `errors` runs one plan forward and backward

def write_variant(dest:Path, kernels_src:str, check:str|None=None, **env):
    "Copy the working tree's package to DEST with `kernels_src` as its kernels.py; with `check`, run that code on it under the interpreter (extra environment `env`), which must succeed."
    if dest.exists(): shutil.rmtree(dest)
    shutil.copytree(ROOT / "sparse_transformer_edu", dest / "sparse_transformer_edu", ignore=shutil.ignore_patterns("__pycache__"))
    (dest / "sparse_transformer_edu" / "kernels.py").write_text(kernels_src)
    print(f"wrote {dest}", flush=True)
    if check is None: return
    r = subprocess.run([sys.executable, "-c", check], cwd=dest, capture_output=True, text=True,
                       env={**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(dest), **env})
    print(r.stdout, end="", flush=True)
    if r.returncode: raise SystemExit(f"{r.stderr[-3000:]}{dest.name}: the variant does not match the reference")

def variant_main(doc:str, name:str, edits, check:str, argv=None):
    "The command line of a script that writes one variant: kernels.py with `edits` done, to --dest/NAME; with --check, `check` runs on it under the interpreter with poisoned outputs."
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--dest", default=str(ROOT / ".variants"), help="where the variant goes (default: %(default)s)")
    ap.add_argument("--check", action="store_true", help="compare the variant with float64 through the interpreter on the CPU")
    args = ap.parse_args(argv)
    src = (ROOT / "sparse_transformer_edu" / "kernels.py").read_text()
    write_variant(Path(args.dest) / name, apply_edits(src, edits), check if args.check else None, STE_POISON="1")

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mult", type=int, nargs="+", help="programs per SM of each variant")
    ap.add_argument("--dest", default=str(ROOT / ".variants"), help="where the variants go (default: %(default)s)")
    ap.add_argument("--check", action="store_true", help="compare each variant's forward with the reference on the CPU")
    args = ap.parse_args(argv)
    src = (ROOT / "sparse_transformer_edu" / "kernels.py").read_text()
    for m in args.mult:
        if m < 1: raise SystemExit(f"mult must be at least 1, got {m}")
        write_variant(Path(args.dest) / f"persist{m}", patched(src, m), CHECK if args.check else None)


if __name__ == "__main__": main()
