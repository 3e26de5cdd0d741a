"""AdamW: Adam with decoupled weight decay (Loshchilov & Hutter, 2019)."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from bench.checks import require_at_least
from bench.optimizers.base import AdamConfig, Cell, builtin


@builtin("adamw")
@dataclass
class AdamWConfig(AdamConfig):
    """Adam with decoupled weight decay ``w <- w - lr * weight_decay * w`` on all trainable variables."""

    weight_decay: float = MISSING

    cell = Cell("Adam", "decoupled")
    # lr * wd is the decay per step, and Adam's lr is small: its decay factors sit decades above SGDW's.
    search_space = {"lr": (1.0e-5, 1.0e-2), "weight_decay": (1.0e-3, 1.0e1)}
    grid = {"lr": [1e-4, 3e-4, 1e-3, 3e-3], "weight_decay": [1e-2, 1e-1, 1, 10]}
    rank = 40

    def __post_init__(self) -> None:
        super().__post_init__()
        require_at_least("optimizer.weight_decay", self.weight_decay, 0, strict=False)
