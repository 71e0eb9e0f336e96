"""Registers, spills and a few instruction counts of the backward kernels for a Hopper GPU, without a GPU.

Compiles the package's backward kernels (captured from one forward and backward at N=1,024, as `ptx_inspect.py` does)
and the stand-alone dK/dV kernel of `dq_reduce.py` (seven-product mode) ahead of time for sm_90, runs Triton's own
`ptxas -v` on each PTX, and prints the registers per thread, the spill stores and loads (bytes), the shared memory, and
counts in the PTX of warp-group products, shared-memory loads, barriers and waits for asynchronous copies. Static
counts only: which of them costs time is for a GPU run to say. --root takes the package from another checkout (a
worktree of a branch, say); the installed Triton decides the code, and the GPU machine's may differ.

Usage: python bench/ptxas_regs.py [--root DIR] [--kinds dense fixed] [--standalone 128x64x8x3 64x128x4x3]"""
import argparse, os, re, subprocess, sys, tempfile

COUNTS = {"wgmma": r"wgmma\.mma_async", "ld.shared": r"\bld\.shared", "bar.sync": r"\b(?:bar|barrier)\.sync",
          "cp.async.wait": r"cp\.async\.wait_group"}


def ptxas_stats(ptx:str) -> tuple:
    "(registers, spill store bytes, spill load bytes) from `ptxas -v` for sm_90a."
    from triton.backends.nvidia import compiler
    ptxas = compiler.get_ptxas(90).path   # the ptxas Triton itself uses for sm_90
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "k.ptx")
        with open(src, "w") as f: f.write(ptx)
        r = subprocess.run([ptxas, "-v", "--gpu-name", "sm_90a", src, "-o", os.path.join(d, "k.cubin")], capture_output=True, text=True)
        if r.returncode: raise RuntimeError(f"{ptxas} failed: {r.stderr[-1000:]}")
        err = r.stderr
    regs = re.search(r"Used (\d+) registers", err)
    spill = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", err)
    return int(regs.group(1)), *(map(int, spill.groups()) if spill else (0, 0))


def gluon_report(compiled) -> str:
    "Registers, spills, shared memory and warp-group products and waits of a Gluon kernel compiled for sm_90."
    ptx = compiled.asm["ptx"]
    regs, st, ld = ptxas_stats(ptx)
    return (f"regs {regs}, spill stores/loads {st}/{ld} B, shared {compiled.metadata.shared} B, "
            f"wgmma {ptx.count('wgmma.mma_async')}, waits {ptx.count('wgmma.wait_group')}")


def line(what, compiled, warps, stages) -> str:
    ptx = compiled.asm["ptx"]
    regs, st, ld = ptxas_stats(ptx)
    counts = " ".join(f"{k} {len(re.findall(v, ptx)):3d}" for k, v in COUNTS.items())
    return f"{what:44s} w{warps} s{stages}  regs {regs:3d}  spill {st:3d}/{ld:3d} B  shared {compiled.metadata.shared:6d}  {counts}"


def standalone(spec):
    "The stand-alone dK/dV kernel of dq_reduce.py at 'KEYSxQUERIESxWARPSxSTAGES', compiled for sm_90 as `compile_sm90` compiles a launch."
    import torch
    import dq_reduce
    from ptx_inspect import compile_sm90
    BN, BM, w, s = map(int, spec.split("x"))
    bf16, f32 = (lambda: torch.empty(16, dtype=torch.bfloat16)), (lambda: torch.empty(16, dtype=torch.float32))
    args = (bf16(), bf16(), bf16(), bf16(), f32(), f32(), bf16(), bf16(), f32(), 1024, 0.18, 0.125)   # Q K V DO LSE DELTA DK DV DQA N scales
    return compile_sm90(dq_reduce.bwd_kv, args, dict(D=64, BM=BM, BN=BN, MODE=0), dict(num_warps=w, num_stages=s)), w, s

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=None, help="a checkout whose sparse_transformer_edu to compile (default: this one)")
    ap.add_argument("--kinds", nargs="+", default=["dense", "fixed"], help="patterns (default: %(default)s)")
    ap.add_argument("--standalone", nargs="*", default=["128x64x8x3", "64x128x4x3"], metavar="KEYSxQUERIESxWARPSxSTAGES",
                    help="settings of dq_reduce.py's dK/dV kernel (default: %(default)s)")
    args = ap.parse_args(argv)
    os.environ.pop("TRITON_INTERPRET", None)   # the kernels must be JIT functions, not interpreted ones
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    if args.root: sys.path.insert(0, os.path.abspath(args.root))
    import triton
    from ptx_inspect import capture_launches, compile_sm90
    import sparse_transformer_edu
    print(f"triton {triton.__version__}, sm_90, bf16, D=64; package from {os.path.dirname(sparse_transformer_edu.__file__)}")
    for kind in args.kinds:
        for (name, _), (kernel, a, consts, opts) in capture_launches(kind, 1024).items():
            if "bwd" not in name: continue
            maps = "q" * bool(consts.get("HAS_QMAP")) + "k" * bool(consts.get("HAS_KVMAP")) or "-"
            what = f"package {kind} {name} {consts['BM']}x{consts['BN']} maps {maps}"
            print(line(what, compile_sm90(kernel, a, consts, opts), opts.get("num_warps", 4), opts.get("num_stages", 3)), flush=True)
    for spec in args.standalone:
        k, w, s = standalone(spec)
        BN, BM = spec.split("x")[:2]
        print(line(f"stand-alone dK/dV, {BN} keys x {BM} queries", k, w, s), flush=True)


if __name__ == "__main__": main()
