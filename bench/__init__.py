"""flowerbench: a Hydra-configured benchmark of optimizers and regularization on tf_flowers.

This package is framework-neutral: it never imports tensorflow, keras or torch. The framework code lives in
``backends/`` and is loaded lazily by :func:`bench.backend.load_backend`.
"""

from bench import cpu as _cpu

__version__ = "0.1.0"

# FLOWERBENCH_CPU_ISA=avx2: cap torch's, oneDNN's and MKL's kernels at AVX2 before any of them loads (bench/cpu.py).
_cpu.apply_emulation()
