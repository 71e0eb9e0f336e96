"""What the compiler makes of each kernel for a Hopper GPU, without a GPU.

Runs one forward and backward of each pattern (fixed l=128 c=32, strided l=128, dense) on the CPU with every Triton
launch captured instead of run, then compiles each captured kernel ahead of time for sm_90 with the specialization the
JIT would give it (16-byte aligned pointers, integers divisible by 16 marked so, integers equal to 1 made constants),
and counts in its PTX: Hopper warp-group matrix products (wgmma), the older warp-level ones (mma.sync), asynchronous
copies (cp.async: software-pipelined loads) and tensor-memory-accelerator copies (TMA). It also gives the shared memory.
bf16, D=64, N=--n. The code is the one the installed Triton generates; the GPU machine's Triton may differ.

With --sequence KERNEL it prints instead, for each captured launch of that kernel, its registers and spills (Triton's
own `ptxas -v` for sm_90a) and the order of the PTX's matrix
products and waits: MMA (wgmma.mma_async), C (commit_group), WAITn (wait_group n: wait until at most n groups are
outstanding), E (ex2, one exponential), cpW (a wait for asynchronous copies), B (bar.sync) and the block labels, runs
of one kind counted (MMAx8). A product whose wait comes only after the exponentials could run alongside them.

Usage: python bench/ptx_inspect.py [--n 1024] [--kinds fixed strided dense] [--sequence _attn_fwd]"""
import argparse, itertools, re


def capture_launches(kind, n, d=64):
    "The (kernel, args, constexprs, launch options) of one forward and backward of `kind`, launches not run."
    import torch
    from sparse_transformer_edu import kernels
    from sparse_transformer_edu.bench import PATTERNS
    from sparse_transformer_edu.plans import sparse_plan
    seen, real = {}, kernels.launch
    kernels.launch = lambda kernel, grid, args, consts, opts, lead=0: seen.setdefault(
        (kernel.fn.__name__, tuple(consts.items())), (kernel, args, consts, opts))
    try:
        kw = dict(PATTERNS[kind]); kw.pop("kind")
        q, k, v, do = (torch.randn(1, 2, n, d, dtype=torch.bfloat16) for _ in range(4))
        plan = sparse_plan(PATTERNS[kind]["kind"], n, 1, **kw)
        out, lse = kernels.blocksparse_forward(q, k, v, plan.fwd)
        kernels.blocksparse_backward(q, k, v, out, lse, do, plan.bwd)
    finally: kernels.launch = real
    return seen


def compile_sm90(kernel, args, consts, opts):
    "Compile one launch ahead of time for sm_90, specialized as the JIT would specialize it."
    import torch, triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    types = {torch.bfloat16: "*bf16", torch.float16: "*fp16", torch.float32: "*fp32", torch.int32: "*i32",
             torch.int64: "*i64", torch.int8: "*i8", torch.uint8: "*u8", torch.bool: "*i1"}
    names = [p.name for p in kernel.params if not p.is_constexpr]
    sig, attrs, cx = {}, {}, dict(consts)
    for i, (name, a) in enumerate(zip(names, args)):
        if isinstance(a, torch.Tensor): sig[name], attrs[(i,)] = types[a.dtype], [["tt.divisibility", 16]]
        elif isinstance(a, float): sig[name] = "fp32"
        elif a == 1: sig[name], cx[name] = "constexpr", 1
        else:
            sig[name] = "i64" if not -2**31 <= a < 2**31 else "i32"
            if a % 16 == 0: attrs[(i,)] = [["tt.divisibility", 16]]
    sig.update({k: "constexpr" for k in consts})
    return triton.compile(ASTSource(kernel, signature=sig, constexprs=cx, attrs=attrs), target=GPUTarget("cuda", 90, 32), options=opts)


def ptx_counts(ptx:str) -> dict:
    "How many of each kind of matrix product and copy the PTX holds."
    return {"wgmma": len(re.findall(r"\bwgmma\.mma_async", ptx)), "mma.sync": len(re.findall(r"\bmma\.sync", ptx)),
            "cp.async": len(re.findall(r"\bcp\.async\.c[ag]\.", ptx)), "tma": len(re.findall(r"\bcp\.async\.bulk\.tensor", ptx))}


def ptx_sequence(ptx:str) -> str:
    "The order of matrix products, their commits and waits, exponentials, copy waits, barriers and block labels in `ptx`, runs counted."
    kinds = ((r"^\$L__BB\w+:", None), (r"\bwgmma\.mma_async", "MMA"), (r"\bwgmma\.commit_group", "C"),
             (r"\bwgmma\.wait_group\.sync\.aligned\s+(\d+)", "WAIT"), (r"^ex2\.", "E"),
             (r"\bcp\.async\.(bulk\.)?wait", "cpW"), (r"\bbar\.sync", "B"))
    seq = []
    for line in ptx.splitlines():
        l = line.strip()
        for pat, name in kinds:
            m = re.search(pat, l)
            if m:
                seq.append(l.split(":")[0] if name is None else name + (m.group(1) if name == "WAIT" else ""))
                break
    runs = ((s, len(list(g))) for s, g in itertools.groupby(seq))
    return " ".join(s if n == 1 else f"{s}x{n}" for s, n in runs)


def compiled(kinds, n, only=None):
    "(pattern, kernel name, constexprs, launch options, compiled kernel) of each launch captured for `kinds`, or of kernel `only`."
    for kind in kinds:
        for (name, _), (kernel, a, consts, opts) in capture_launches(kind, n).items():
            if only is None or name == only: yield kind, name, consts, opts, compile_sm90(kernel, a, consts, opts)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1024, help="sequence length of the captured calls (default: %(default)s)")
    ap.add_argument("--kinds", nargs="+", default=["fixed", "strided", "dense"], help="patterns (default: %(default)s)")
    ap.add_argument("--sequence", metavar="KERNEL", help="print the order of products, waits and exponentials in KERNEL's PTX instead")
    args = ap.parse_args(argv)
    import os
    os.environ.pop("TRITON_INTERPRET", None)   # the kernels must be JIT functions, not interpreted ones
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    import triton
    print(f"triton {triton.__version__}, target sm_90, bf16, D=64, N={args.n}")
    if args.sequence:
        from ptxas_regs import ptxas_stats   # this script's folder is on the path when it runs
        for kind, name, consts, opts, c in compiled(args.kinds, args.n, args.sequence):
            regs, st, ld = ptxas_stats(c.asm["ptx"])
            print(f"{kind} {name} {consts} {opts} shared {c.metadata.shared} bytes, {regs} registers, spills {st}/{ld} bytes stored/loaded\n"
                  f"{ptx_sequence(c.asm['ptx'])}", flush=True)
        return
    print(f"{'pattern':8s} {'kernel':16s} {'maps':>5s} {'tile':>7s} {'warps':>5s} {'stages':>6s} {'shared':>7s} {'wgmma':>6s} {'mma.sync':>8s} {'cp.async':>8s} {'tma':>4s}")
    for kind, name, consts, opts, c in compiled(args.kinds, args.n):
        n = ptx_counts(c.asm["ptx"])
        tile = f"{consts['BM']}x{consts['BN']}" if "BN" in consts else str(consts.get("BM", ""))
        maps = "q" * bool(consts.get("HAS_QMAP")) + "k" * bool(consts.get("HAS_KVMAP")) or "-"
        print(f"{kind:8s} {name:16s} {maps:>5s} {tile:>7s} {opts.get('num_warps', 4):>5} {opts.get('num_stages', '-'):>6} {c.metadata.shared:>7} "
              f"{n['wgmma']:>6} {n['mma.sync']:>8} {n['cp.async']:>8} {n['tma']:>4}", flush=True)


if __name__ == "__main__": main()
