"""PyTorch, at parity with the Keras reference: same weights, batches and optimizer semantics.

See docs/design.md, "Parity".
"""

import os

# cuBLAS is deterministic only with a fixed workspace, and reads this when CUDA initialises: set it before
# anything in this package imports torch.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
