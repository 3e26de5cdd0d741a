"""flowerbench: a Hydra-configured benchmark of optimizers and regularization on tf_flowers.

This package is framework-neutral: it never imports tensorflow, keras or torch. The framework code lives in
``backends/`` and is loaded lazily by :func:`bench.backend.load_backend`.
"""

__version__ = "0.1.0"
