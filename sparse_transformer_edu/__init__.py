__version__ = "0.1.0"
"""Block-sparse attention from the Sparse Transformer, built in the notebooks under nbs/."""
from .patterns import token_mask, block_layout
from .plans import SparsePlan, sparse_plan, plan_from_mask, plan_from_predicate
from .op import sparse_attention, SparseAttention
from .kernels import HAS_TRITON

__all__ = ['token_mask', 'block_layout', 'SparsePlan', 'sparse_plan', 'plan_from_mask', 'plan_from_predicate',
           'sparse_attention', 'SparseAttention', 'HAS_TRITON']
