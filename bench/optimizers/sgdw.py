"""SGDW: SGD with decoupled weight decay, completing Loshchilov & Hutter's 2 x 2."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from bench.checks import require_at_least
from bench.optimizers.base import Cell, MomentumConfig, builtin


@builtin("sgdw")
@dataclass
class SGDWConfig(MomentumConfig):
    """SGD with momentum and decoupled weight decay: ``w <- w - lr * weight_decay * w`` on all trainable
    variables, then the momentum step (Keras ``SGD(weight_decay=...)``)."""

    weight_decay: float = MISSING

    cell = Cell("SGD", "decoupled")
    # Decoupled decay w <- w - lr*wd*w sits higher than an L2 factor: Keras decays lr * wd per step.
    search_space = {"lr": (1.0e-4, 1.0e-1), "weight_decay": (1.0e-5, 1.0e-1)}
    grid = {"lr": [1e-3, 3e-3, 1e-2, 3e-2], "weight_decay": [1e-4, 1e-3, 1e-2, 1e-1]}
    rank = 20

    def __post_init__(self) -> None:
        super().__post_init__()
        require_at_least("optimizer.weight_decay", self.weight_decay, 0, strict=False)
