import os
import torch

# Triton kernels run on the CPU through the interpreter when there is no GPU; it must be set before they are defined.
if not torch.cuda.is_available(): os.environ.setdefault("TRITON_INTERPRET", "1")
# Buffers the kernels must fill start as NaN, so an unwritten element fails a test.
os.environ.setdefault("STE_POISON", "1")
