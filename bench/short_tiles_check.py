"Tiles with a side under 16 (plan_from_mask with 16x8, 8x16 and 32x16 tiles) against float64 on the GPU, in fp32, fp16 and bf16. Usage: python bench/short_tiles_check.py"
import torch
from sparse_transformer_edu.op import sparse_attention
from sparse_transformer_edu.plans import plan_from_mask, attention_reference, rel_err
torch.manual_seed(0)
for dtype, tol in ((torch.float32, 1e-5), (torch.float16, 1e-3), (torch.bfloat16, 1e-2)):
    for N, H, block in ((33, 4, (16, 8)), (40, 2, (8, 16)), (64, 2, (32, 16))):
        m = torch.rand(H, N, N) < 0.3; m[:, :3] = False
        q, k, v, do = (torch.randn(1, H, N, 32, device="cuda").to(dtype) for _ in range(4))
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        out = sparse_attention(*leaves, plan_from_mask(m, block), backend="triton"); out.backward(do)
        refs = [t.double().requires_grad_() for t in (q, k, v)]
        ref = attention_reference(*refs, m.cuda(), dtype=torch.float64)[0]; ref.backward(do.double())
        errs = [rel_err(out, ref)] + [rel_err(a.grad, r.grad) for a, r in zip(leaves, refs)]
        print(f"{str(dtype):15s} N={N} H={H} block={block}: errors {' '.join(f'{e:.1e}' for e in errs)} {'ok' if max(errs) < tol else 'FAIL'}", flush=True)
