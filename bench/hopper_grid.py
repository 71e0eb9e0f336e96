"""The package's Hopper forward in its two grid orders, against its Triton forward, at the protocol's and the model's shapes.

Chapter 04's Gluon forward gives each program one query tile, and its rows are uneven: a causal row of block b reads b+1
key tiles (dense) or about b/4 + 1 (fixed). Its first grid was (tiles, heads), so programs started one head at a time,
each head's longest rows first; the Triton kernels order their grid by `heads_first`. This script times the forward of
`blocksparse_forward` (bf16, D=64) with the Triton kernel, and the Gluon kernel tiles first, heads first, and as
`heads_first` decides (GRID_ORDER "auto", which the package now uses for it too), in alternating rounds in one process
(medians of triton.testing.do_bench), each output checked against the Triton one.

Timed on an H200 on 2026-12-01 (bench/NOTES.md, runs/2026-12-01_hopper_grid.log): heads first was faster where the grid
holds few programs (fixed at B=1, H=8, N=12,288: 1.22x -> 1.34x the Triton forward) and slower where it holds many (dense
at N=65,536: 1.07x -> 0.86x).

Usage: python bench/hopper_grid.py [--rounds 3]"""
import argparse, statistics
import torch, triton
import sparse_transformer_edu.kernels as K
from sparse_transformer_edu.plans import attention_plans
from sparse_transformer_edu.bench import device_line

SHAPES = [("fixed", 1, 8, 12288), ("dense", 1, 8, 12288), ("fixed", 8, 8, 12288),
          ("fixed", 1, 16, 16384), ("dense", 1, 16, 16384), ("fixed", 1, 16, 65536), ("dense", 1, 16, 65536)]
SETTINGS = {"triton": (False, "auto"), "gluon, tiles first": (True, "tiles"), "gluon, heads first": (True, "heads"),
            "gluon, auto": (True, "auto")}   # (HOPPER_FORWARD, GRID_ORDER)

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args(argv)
    print(device_line(), flush=True)
    K.HOPPER_MIN_PAIRS = 0
    for kind, B, H, N in SHAPES:
        kw = dict(stride=128, c=32) if kind == "fixed" else dict(stride=1)
        plans = attention_plans(kind, N, H, device="cuda", **kw)
        q, k, v = torch.randn(3, B, H, N, 64, device="cuda", dtype=torch.bfloat16).unbind(0)
        times, ref = {s: [] for s in SETTINGS}, None
        for _ in range(a.rounds):
            for name, (on, order) in SETTINGS.items():
                K.HOPPER_FORWARD, K.GRID_ORDER = on, order
                out = K.blocksparse_forward(q, k, v, plans)[0]
                if ref is None: ref = out.float()
                err = ((out.float() - ref).norm() / ref.norm()).item()
                assert err < 1e-2, (kind, N, name, err)
                times[name].append(triton.testing.do_bench(lambda: K.blocksparse_forward(q, k, v, plans), warmup=50, rep=300))
        K.HOPPER_FORWARD, K.GRID_ORDER = True, "auto"
        med = {n: statistics.median(t) for n, t in times.items()}
        cells = [f"{n} {m:.4f} ms ({med['triton'] / m:.3f}x)" for n, m in med.items()]
        print(f"{kind:6s} B={B} H={H:2d} N={N:6d}: " + " | ".join(cells), flush=True)

if __name__ == "__main__": main()
