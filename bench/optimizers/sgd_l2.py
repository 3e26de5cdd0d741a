"""SGD + L2: the seed blog's baseline."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from bench.checks import require_at_least
from bench.optimizers.base import Cell, MomentumConfig, builtin


@builtin("sgd_l2")
@dataclass
class SGDL2Config(MomentumConfig):
    """SGD with momentum; L2 penalty ``l2 * sum(kernel**2)`` added to the loss (kernels only)."""

    l2: float = MISSING

    cell = Cell("SGD", "L2")
    # Two decades of learning rate around the blog's and three of L2 around its 1e-3.
    search_space = {"lr": (1.0e-4, 1.0e-1), "l2": (1.0e-6, 1.0e-2)}
    # An L2 factor enters SGD's step through its momentum (~2*l2/(1-momentum) = 20*l2 per unit lr).
    grid = {"lr": [1e-3, 3e-3, 1e-2, 3e-2], "l2": [1e-5, 1e-4, 1e-3, 1e-2]}
    rank = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        require_at_least("optimizer.l2", self.l2, 0, strict=False)
