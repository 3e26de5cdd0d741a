"""Adam + L2: the coupled regularization Loshchilov & Hutter show generalizing worse."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from bench.checks import require_at_least
from bench.optimizers.base import AdamConfig, Cell, builtin


@builtin("adam_l2")
@dataclass
class AdamL2Config(AdamConfig):
    """Adam with an L2 penalty on kernels in the loss (coupled with the adaptive step)."""

    l2: float = MISSING

    cell = Cell("Adam", "L2")
    # Adam's learning rates are ~10x below SGD's.
    search_space = {"lr": (1.0e-5, 1.0e-2), "l2": (1.0e-6, 1.0e-2)}
    grid = {"lr": [1e-4, 3e-4, 1e-3, 3e-3], "l2": [1e-5, 1e-4, 1e-3, 1e-2]}
    rank = 30

    def __post_init__(self) -> None:
        super().__post_init__()
        require_at_least("optimizer.l2", self.l2, 0, strict=False)
