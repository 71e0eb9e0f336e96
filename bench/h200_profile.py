"""Profile one fwd+bwd step of each pattern on the GPU: where the time goes, kernel by kernel."""
import torch
from torch.profiler import profile, ProfilerActivity
from sparse_transformer_edu.op import sparse_attention
from sparse_transformer_edu.bench import PATTERNS
for N in (4096, 16384):
    for pat in ("strided", "fixed"):
        kw = dict(PATTERNS[pat]); kind = kw.pop("kind")
        q, k, v, do = (torch.randn(1, 16, N, 64, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(4))
        for _ in range(3): sparse_attention(q, k, v, kind, **kw).backward(do)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(5): sparse_attention(q, k, v, kind, **kw).backward(do)
            torch.cuda.synchronize()
        print(f"== {pat} N={N}")
        print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=12, max_name_column_width=40))
