"""flowerbench: a Hydra-configured benchmark of optimizers and regularization on tf_flowers.

This package is framework-neutral: it never imports tensorflow, keras or torch. The framework code lives in
``backends/`` and is loaded lazily by :func:`bench.backend.load_backend`.
"""

import os as _os

from bench import cpu as _cpu

__version__ = "0.1.0"

# FLOWERBENCH_CPU_ISA=avx2: cap torch's, oneDNN's and MKL's kernels at AVX2 before any of them loads (bench/cpu.py).
_cpu.apply_emulation()
# Transparent huge pages for torch's CPU tensors of 2 MB and more (c10's own switch, read when torch first
# allocates; no effect where the kernel's THP is "never"; a variable already set wins). A CNN step at 180 px
# allocates ~0.9 GB of fresh activations and gradients: with 4 kB pages, 1.8 M page faults in 8 steps of
# backends.torch.profile, with 2 MB pages 0.1 M, and 9 % less CPU time (README "Throughput").
_os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
