"""The one interface every backend implements, and the one place a backend is chosen.

A backend is a package ``backends.<name>`` with the same modules in each: ``model.py`` (build the CNN from a
:class:`~bench.architecture.CNNSpec` and load numpy weights), ``optim.py`` (translate the optimizer and
schedule configs, one factory), and ``trainer.py`` (a :class:`Trainer`). The runner only talks to
:class:`Trainer`; it never imports a framework.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.architecture import CNNSpec
from bench.config import RunConfig
from bench.errors import BackendUnavailableError

# The frameworks each backend needs, to name them in the error when one is missing.
_REQUIREMENTS = {"keras": "tensorflow and keras", "torch": "torch"}

Batch = tuple[np.ndarray, np.ndarray]  # (uint8 images N x H x W x C, int32 labels N)


@dataclass
class EpochMetrics:
    """Sample-weighted means over an epoch, named as in Keras' History.

    ``loss`` includes the L2 penalty (as Keras reports it); ``ce_loss`` is the cross-entropy alone.
    """

    loss: float
    accuracy: float
    ce_loss: float
    images: int


class Trainer(ABC):
    """Trains one model with one optimizer on batches the runner hands it.

    Args:
        run: the validated config (backend, optimizer, schedule, train settings, seed).
        spec: the network to build.
        initial_weights: Keras-layout numpy weights from :func:`bench.architecture.initial_weights`.
        steps_per_epoch: batches per epoch, for schedules defined over the whole run.
    """

    @abstractmethod
    def __init__(
        self, run: RunConfig, spec: CNNSpec, initial_weights: dict[str, np.ndarray], steps_per_epoch: int
    ): ...

    @abstractmethod
    def train_epoch(
        self, batches: Iterable[Batch], on_step: Callable[[int], Any] | None = None
    ) -> EpochMetrics:
        """One pass over ``batches`` (one optimizer step each); ``on_step(n_images)`` after each step.

        Implementations must not synchronise with the device per step beyond what the framework needs.
        """

    @abstractmethod
    def evaluate(self, batches: Iterable[Batch]) -> EpochMetrics:
        """Loss (penalty included) and accuracy of the current weights, no update, dropout off."""

    @abstractmethod
    def learning_rate(self) -> float:
        """The learning rate the next step will use."""

    @abstractmethod
    def get_weights(self) -> dict[str, np.ndarray]:
        """Current weights in the neutral Keras layout (same names and shapes as the initial weights)."""

    @abstractmethod
    def environment(self) -> dict[str, Any]:
        """Framework versions, device, threads and precision, for result.json."""


def load_backend(name: str) -> type[Trainer]:
    """Import ``backends.<name>.trainer`` lazily and return its Trainer class.

    Raises:
        BackendUnavailableError: the backend is unknown or its framework is not installed.
    """
    if name not in _REQUIREMENTS:
        raise BackendUnavailableError(f"unknown backend {name!r}; choose one of {sorted(_REQUIREMENTS)}")
    try:
        module = importlib.import_module(f"backends.{name}.trainer")
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        raise BackendUnavailableError(
            f"backend={name} needs {_REQUIREMENTS[name]}, but importing it failed ({missing}); "
            f"install it (pip install 'flowerbench[{name}]') or choose another backend"
        ) from exc
    return module.Trainer
