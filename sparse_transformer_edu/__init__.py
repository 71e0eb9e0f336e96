__version__ = "0.1.0"
"""Block-sparse attention from the Sparse Transformer, built in the notebooks under nbs/."""
from .patterns import token_mask, block_layout
from .kernels import sparse_attention, SparseAttention, HAS_TRITON

__all__ = ['token_mask', 'block_layout', 'sparse_attention', 'SparseAttention', 'HAS_TRITON']
