"""PyTorch, at parity with the Keras reference: same weights, batches and optimizer semantics.

See docs/design.md, "Parity".
"""

import os

# cuBLAS is deterministic only with a fixed workspace, and reads this when CUDA initialises: set it before
# anything in this package imports torch.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
# Transparent huge pages for torch's CPU tensors of 2 MB and more (c10's own switch, read when torch first
# allocates; no effect where the kernel's THP is "never"; a variable already set wins). A CNN step at 180 px
# allocates ~0.9 GB of fresh activations and gradients: with 4 kB pages, 1.8 M page faults in 8 steps of
# backends.torch.profile, with 2 MB pages 0.1 M, and 9 % less CPU time (README "Throughput").
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
