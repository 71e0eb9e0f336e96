"""Plans with a tile side under 16 (16x8, 8x16; and 32x16, whose products are all at least 16 long, as a control) from
random masks, forward and backward against float64, in fp32, fp16 and bf16.

On a GPU these products are shorter than the tensor cores take, so the kernels sum them one outer product at a time.
Prints one line per case, its four relative errors (output, dq, dk, dv) and 'ok' or 'FAIL'; exits 1 on any FAIL.

Usage: python bench/short_tiles_check.py [--device cuda]"""
import argparse, os, sys
import torch

CASES = ((33, 4, (16, 8)), (40, 2, (8, 16)), (64, 2, (32, 16)))   # (N, heads, tiles)
TOLS = {torch.float32: 1e-5, torch.float16: 1e-3, torch.bfloat16: 1e-2}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda; cpu runs through the Triton interpreter, without bf16 (default: %(default)s)")
    args = ap.parse_args(argv)
    if args.device == "cpu": os.environ["TRITON_INTERPRET"] = "1"   # before the kernels are defined
    from sparse_transformer_edu.op import sparse_attention
    from sparse_transformer_edu.plans import plan_from_mask, attention_reference, rel_err
    torch.manual_seed(0)
    failed = False
    for dtype, tol in TOLS.items():
        if args.device == "cpu" and dtype == torch.bfloat16: continue   # the interpreter's bf16 arithmetic is not reliable
        for N, H, block in CASES:
            m = torch.rand(H, N, N) < 0.3; m[:, :3] = False
            q, k, v, do = (torch.randn(1, H, N, 32, device=args.device).to(dtype) for _ in range(4))
            leaves = [t.clone().requires_grad_() for t in (q, k, v)]
            out = sparse_attention(*leaves, plan_from_mask(m, block), backend="triton"); out.backward(do)
            refs = [t.double().requires_grad_() for t in (q, k, v)]
            ref = attention_reference(*refs, m.to(args.device), dtype=torch.float64)[0]; ref.backward(do.double())
            errs = [rel_err(out, ref)] + [rel_err(a.grad, r.grad) for a, r in zip(leaves, refs)]
            ok = max(errs) < tol
            failed |= not ok
            print(f"{str(dtype):15s} N={N} H={H} block={block}: errors {' '.join(f'{e:.1e}' for e in errs)} {'ok' if ok else 'FAIL'}", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__": main()
