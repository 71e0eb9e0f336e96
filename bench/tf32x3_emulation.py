"""How close three TF32 products come to float32 in attention, emulated on the CPU (no GPU needed).

The tensor cores read float32 inputs as TF32 (10 explicit mantissa bits, the rest dropped). `tl.dot(...,
input_precision="tf32x3")` splits each input into a TF32 head and a TF32 tail and adds three products (head·head,
head·tail, tail·head) in float32. This script emulates one, three and no such splits for causal attention (scores and
output products) at each head dimension, and prints each one's relative error against float64, the measure the tests use.
It is an emulation: the GPU adds up in another order, so its errors differ in detail, not in size.

Usage: python bench/tf32x3_emulation.py [--n 128] [--seed 0]"""
import argparse


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=128, help="sequence length (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    import torch
    torch.manual_seed(args.seed)
    tf32 = lambda x: (x.view(torch.int32) & ~0x1FFF).view(torch.float32)   # keep 10 explicit mantissa bits
    def three(a, b):
        ah, bh = tf32(a), tf32(b)
        al, bl = tf32(a - ah), tf32(b - bh)
        return (ah @ bl + al @ bh) + ah @ bh
    products = {"float32": lambda a, b: a @ b, "tf32x3": three, "tf32": lambda a, b: tf32(a) @ tf32(b)}
    def attention(q, k, v, mm):
        s = mm(q, k.transpose(-1, -2)) * q.shape[-1] ** -0.5
        s = s.masked_fill(~torch.ones(args.n, args.n, dtype=torch.bool).tril(), float("-inf"))
        return mm(torch.softmax(s, -1), v)
    print(f"relative error against float64, causal attention, 2 heads, n={args.n}")
    print("D     " + "  ".join(f"{k:>8s}" for k in products))
    for D in (32, 64, 128):
        q, k, v = (torch.randn(2, args.n, D) for _ in range(3))
        ref = attention(q.double(), k.double(), v.double(), lambda a, b: a @ b)
        errs = [((attention(q, k, v, mm).double() - ref).norm() / ref.norm()).item() for mm in products.values()]
        print(f"{D:<5d} " + "  ".join(f"{e:8.1e}" for e in errs))


if __name__ == "__main__": main()
