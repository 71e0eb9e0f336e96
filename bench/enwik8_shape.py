"""The paper's Enwik8 model and the attention cases the model scripts compare: dense through PyTorch SDPA,
fixed and strided through our kernels."""
from sparse_transformer_edu import model as M, train as T

CASES = [("dense", "sdpa"), ("fixed", "triton"), ("strided", "triton")]

def enwik8_config(kind, backend):
    "30 layers, d=512, 8 heads, context 12,288, l=128 (c=32 for fixed), merged heads, recomputation on."
    return M.SparseTransformerConfig(n_layer=30, d_model=512, n_head=8, context=12288, kind=kind, stride=128, c=32,
                                     attn_mode="merged", recompute=True, backend=backend)

def loss_backward(model, x):
    "Forward under bf16 autocast and backward on byte windows `x` [B, context + 1]; returns the loss."
    with T.autocast(x.device, "bf16"): loss = T.lm_loss(model(x[:, :-1]), x[:, 1:])
    loss.backward()
    return loss
