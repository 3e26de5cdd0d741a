"""What every optimizer schema shares, and the registry the built-in ones put themselves in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from omegaconf import MISSING

from bench.checks import require_at_least, require_fraction


@dataclass(frozen=True)
class Cell:
    """Where an optimizer sits in Loshchilov & Hutter's 2 x 2 (their Fig. 2): its family (a row of the
    lr x regularization figure) and its regularization, ``"L2"`` (coupled) or ``"decoupled"`` (a column)."""

    family: str
    regularization: str


@dataclass
class OptimizerConfig:
    """Fields shared by every optimizer; each optimizer's own schema adds its hyperparameters.

    A built-in optimizer's schema also says, as class attributes (not config keys):

    - ``cell``: its :class:`Cell` in the lr x regularization figure;
    - ``search_space``: field -> (low, high), sampled log-uniformly by ``experiment=fair_comparison``;
    - ``grid``: field -> values, the axes of ``experiment=lr_wd_grid``;
    - ``rank``: where figures and tables list it.
    """

    name: str = MISSING
    lr: float = MISSING

    cell: ClassVar[Cell | None] = None
    search_space: ClassVar[dict[str, tuple[float, float]]] = {}
    grid: ClassVar[dict[str, list[float]]] = {}
    rank: ClassVar[float] = float("inf")

    def __post_init__(self) -> None:
        require_at_least("optimizer.lr", self.lr, 0, strict=True)


@dataclass
class MomentumConfig(OptimizerConfig):
    """SGD's heavy-ball momentum (dampening 0)."""

    momentum: float = MISSING

    def __post_init__(self) -> None:
        super().__post_init__()
        require_fraction("optimizer.momentum", self.momentum)


@dataclass
class AdamConfig(OptimizerConfig):
    """Adam moments; ``epsilon`` is Keras' epsilon-hat (inside the bias-corrected step)."""

    beta_1: float = MISSING
    beta_2: float = MISSING
    epsilon: float = MISSING

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("beta_1", "beta_2"):
            require_fraction(f"optimizer.{key}", getattr(self, key))
        require_at_least("optimizer.epsilon", self.epsilon, 0, strict=True)


#: Every built-in optimizer's schema by name, filled by :func:`builtin` as the modules of the package load.
BUILTIN_OPTIMIZERS: dict[str, type[OptimizerConfig]] = {}


def builtin(name: str) -> Callable[[type[OptimizerConfig]], type[OptimizerConfig]]:
    """Register a schema as the built-in optimizer ``name`` (``conf/optimizer/<name>.yaml``)."""

    def register(schema: type[OptimizerConfig]) -> type[OptimizerConfig]:
        if name in BUILTIN_OPTIMIZERS:
            raise ValueError(f"two built-in optimizers are named {name!r}")
        BUILTIN_OPTIMIZERS[name] = schema
        return schema

    return register
