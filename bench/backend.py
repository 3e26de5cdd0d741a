"""The interface every backend implements, the one registry of backends, and the one way to make a trainer.

A backend is a package ``backends.<name>`` with the same modules in each: ``model.py`` (build the model of a spec
from :mod:`bench.architecture`, the CNN or the ResNet, and load numpy weights), ``optim.py`` (translate the
optimizer and schedule configs, one factory), ``trainer.py`` (a :class:`Trainer`) and ``reference.py`` (the
yardsticks of ``python -m bench.throughput``, :class:`Reference`). :data:`bench.registry.REGISTRY` names them;
nothing is imported until a backend is asked for by name, so this module, like all of ``bench/``, imports no
framework.

Who calls what:

- :func:`build_trainer` (the runner, ``bench.throughput``, the step benchmarks, the tests) loads the class,
  calls its process-wide :meth:`Trainer.setup` once, then constructs it with the initial weights.
- The runner calls :meth:`Trainer.train_epoch` and :meth:`Trainer.evaluate`, which this base class owns: they
  iterate the batches, count images, call ``on_step`` and turn the sums into :class:`EpochMetrics`. A backend
  implements only the framework's part: :meth:`~Trainer.begin_pass`, :meth:`~Trainer.train_step`,
  :meth:`~Trainer.eval_step`, :meth:`~Trainer.read_sums`, plus :meth:`~Trainer.predict_logits`,
  :meth:`~Trainer.learning_rate`, :meth:`~Trainer.get_weights` and :meth:`~Trainer.environment`.
- The runner calls :meth:`Trainer.save_state` at the end of a run stopped early (``train.stop_epoch``) and
  :meth:`Trainer.load_state` at the start of one that continues it (``train.continue_from``, bench/checkpoint.py).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from bench.console import framework_noise_filtered
from bench.errors import BackendUnavailableError, ConfigError
from bench.registry import BACKEND_NAMES, REGISTRY, BackendEntry

if TYPE_CHECKING:
    import numpy as np

    from bench.architecture import ModelSpec, UserModelSpec
    from bench.config import RunConfig

Batch = tuple["np.ndarray", "np.ndarray"]  # (uint8 images N x H x W x C, integer labels N)
INSTALL_HINT = 'install flowerbench as README\'s "Quick start" says (pip install -e ".[dev]")'


@dataclass
class EpochMetrics:
    """Sample-weighted means over an epoch, named as in Keras' History.

    ``loss`` includes the L2 penalty (as Keras reports it); ``ce_loss`` is the cross-entropy alone. A pass
    over no batches has ``images == 0`` and NaN means.
    """

    loss: float
    accuracy: float
    ce_loss: float
    images: int


class Trainer(ABC):
    """Trains one model with one optimizer on batches the runner hands it.

    Make one with :func:`build_trainer`, which calls :meth:`setup` first. Backends implement the abstract
    methods; :meth:`train_epoch` and :meth:`evaluate` are the template and are not overridden.

    Args:
        run: the validated config (backend, optimizer, schedule, train settings, seed).
        spec: the network to build.
        initial_weights: Keras-layout numpy weights from :func:`bench.architecture.initial_weights`, or None
            for a user's model, which starts from its framework's own initialization under the run's seed.
        steps_per_epoch: batches per epoch, for schedules defined over the whole run.
    """

    @classmethod
    @abstractmethod
    def setup(cls, run: RunConfig) -> None:
        """Put the process in the state ``run`` needs: threads, RNG seeds, deterministic ops, precision
        policy, allocator, the previous job's framework state freed.

        Process-wide, so never done by the constructor: :func:`build_trainer` calls it once before each
        trainer it makes (a sweep's jobs in one process each call it again, so it must tolerate that).

        Raises:
            ConfigError: the requested device is not available.
        """

    @abstractmethod
    def __init__(
        self,
        run: RunConfig,
        spec: ModelSpec,
        initial_weights: dict[str, np.ndarray] | None,
        steps_per_epoch: int,
    ): ...

    # ------------------------------------------------------------------------------------------ template

    def train_epoch(
        self, batches: Iterable[Batch], on_step: Callable[[int], Any] | None = None
    ) -> EpochMetrics:
        """One pass over ``batches`` (one optimizer step each); ``on_step(n_images)`` after each step."""
        self.begin_pass(training=True)
        return self._pass(self.train_step, batches, on_step)

    def evaluate(self, batches: Iterable[Batch]) -> EpochMetrics:
        """Loss (penalty included) and accuracy of the current weights, no update, dropout off."""
        self.begin_pass(training=False)
        return self._pass(self.eval_step, batches, None)

    def _pass(
        self, step: Callable[[Any, Any], None], batches: Iterable[Batch], on_step: Callable[[int], Any] | None
    ) -> EpochMetrics:
        """The hot loop: per batch one step call, one count and the optional ``on_step``; the sums are read
        once, at the end (:meth:`read_sums`), so no step waits for the device."""
        n = 0
        for images, labels in batches:
            step(images, labels)
            size = len(labels)
            n += size
            if on_step is not None:
                on_step(size)
        loss_sum, ce_sum, correct = self.read_sums()
        if n == 0:
            return EpochMetrics(loss=float("nan"), accuracy=float("nan"), ce_loss=float("nan"), images=0)
        return EpochMetrics(loss=loss_sum / n, accuracy=correct / n, ce_loss=ce_sum / n, images=n)

    # ------------------------------------------------------------------------------ framework's part

    @abstractmethod
    def begin_pass(self, training: bool) -> None:
        """Zero the accumulated sums and set the model to training (dropout on) or inference mode."""

    @abstractmethod
    def train_step(self, images: np.ndarray, labels: np.ndarray) -> None:
        """One optimizer step on one batch (uint8 NHWC images, integer labels), adding the batch's sums to the
        accumulator on the device. Must not wait for the device beyond what the framework needs."""

    @abstractmethod
    def eval_step(self, images: np.ndarray, labels: np.ndarray) -> None:
        """Add one batch's sums to the accumulator, dropout off and weights unchanged."""

    @abstractmethod
    def read_sums(self) -> tuple[float, float, float]:
        """The pass's (loss x n, cross-entropy x n, correct) sums: its one device-to-host transfer."""

    @abstractmethod
    def predict_logits(self, images: np.ndarray) -> np.ndarray:
        """Float32 logits (N x classes) of uint8 images, dropout off."""

    @abstractmethod
    def learning_rate(self) -> float:
        """The learning rate the next step will use."""

    @abstractmethod
    def get_weights(self) -> dict[str, np.ndarray]:
        """Current weights in the neutral Keras layout (same names and shapes as the initial weights)."""

    @abstractmethod
    def environment(self) -> dict[str, Any]:
        """Framework versions, device, threads and precision, for result.json."""

    @abstractmethod
    def save_state(self, folder: Path) -> None:
        """Write into ``folder`` (it exists) everything the next step depends on besides the batches: the
        weights (BatchNorm statistics included), the optimizer's state and step count, the schedule's position
        and the random generators' state (dropout), so that :meth:`load_state` into a fresh trainer of the same
        run continues it exactly as if it had never stopped."""

    @abstractmethod
    def load_state(self, folder: Path) -> None:
        """Restore what :meth:`save_state` wrote, into a trainer built for the same run."""


class BareLoop(Protocol):
    """``backends.<name>.reference.BareLoop``: the model trained by a loop a user would write without
    flowerbench. Constructed as ``BareLoop(spec, weights, optimizer, batch_size, precision)``, ``optimizer``
    a built-in optimizer's config (its learning rate included)."""

    def train(self, images: np.ndarray, labels: np.ndarray) -> list[float]:
        """One pass over ``images`` in whole batches; the seconds of each step."""
        ...


@dataclass(frozen=True)
class Reference:
    """A backend's yardsticks for ``python -m bench.throughput``, from ``backends/<name>/reference.py``."""

    bare_loop: Callable[..., BareLoop]  # (spec, weights, optimizer config, batch_size, precision)
    matmul_gflops: Callable[[int, str], float | None]  # (size, "fp32" | "bf16") -> peak GFLOP/s or None


def _import(entry: BackendEntry, module: str) -> ModuleType:
    try:
        return importlib.import_module(f"{entry.package}.{module}")
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        if missing.split(".")[0] in ("bench", "backends"):
            raise  # flowerbench's own code failed to import: a bug, not a missing framework
        raise BackendUnavailableError(
            f"backend={entry.name} needs {entry.requires}, but importing it failed ({missing}); "
            f"{INSTALL_HINT} or choose another backend"
        ) from exc


def backend_entry(name: str) -> BackendEntry:
    """The registry's entry for ``name``.

    Raises:
        BackendUnavailableError: no backend has that name.
    """
    if name not in REGISTRY:
        raise BackendUnavailableError(f"unknown backend {name!r}; choose one of {list(BACKEND_NAMES)}")
    return REGISTRY[name]


def load_backend(name: str) -> type[Trainer]:
    """Import ``backends.<name>.trainer`` lazily and return its Trainer class.

    Raises:
        BackendUnavailableError: the backend is unknown or its framework is not installed.
    """
    return _import(backend_entry(name), "trainer").Trainer


def load_reference(name: str) -> Reference:
    """Import ``backends.<name>.reference`` lazily and return its yardsticks (same errors as load_backend)."""
    module = _import(backend_entry(name), "reference")
    return Reference(bare_loop=module.BareLoop, matmul_gflops=module.matmul_gflops)


def build_user_model(
    spec: UserModelSpec, backend_name: str, input_shape: tuple[int, ...], logits_shape: Callable[[Any], Any]
) -> Any:
    """A user's model from this backend's factory (:class:`bench.architecture.UserModelSpec`), checked on two
    blank images: it must give logits of one row per image and one column per class.

    Args:
        input_shape: what the factory is told, in the framework's own convention.
        logits_shape: the shape of the model's output on two blank images (the backend runs them).

    Raises:
        ConfigError: the factory fails, or its model fails on the images or gives the wrong shape.
    """
    from hydra.utils import instantiate  # lazy: only a user's model needs it

    entry = spec.factories[backend_name]
    where = f"model.{backend_name}: {entry['_target_']}"
    try:
        model = instantiate(entry, input_shape=input_shape, num_classes=spec.num_classes)
    except Exception as exc:  # whatever the user's code raises
        raise ConfigError(f"{where} failed to build a model: {_reason(exc)}") from exc
    try:
        shape = tuple(logits_shape(model))
    except Exception as exc:
        raise ConfigError(f"{where}'s model fails on images of shape {input_shape}: {_reason(exc)}") from exc
    if shape != (2, spec.num_classes):
        raise ConfigError(
            f"{where}'s model gives outputs of shape {shape} for 2 images; expected logits (2, {spec.num_classes}),"
            " one column per class"
        )
    return model


def check_l2_has_kernels(spec: ModelSpec, n_kernels: int, l2: float) -> None:
    """Refuse L2 on a user's model with no weight of two or more dimensions: the penalty would be undefined.

    Raises:
        ConfigError: ``l2 > 0`` and the model has no such weight.
    """
    if l2 > 0 and n_kernels == 0:
        raise ConfigError(
            f"optimizer.l2={l2:g}, but model {spec.name!r} has no trainable weight of two or more dimensions "
            "(the kernels L2 applies to): set optimizer.l2=0 or use a decoupled optimizer (sgdw, adamw)"
        )


def _reason(exc: BaseException) -> str:
    cause = exc.__cause__ or exc  # Hydra's instantiate wraps the factory's own error
    return str(cause).splitlines()[0] if str(cause) else type(cause).__name__


def build_trainer(
    run: RunConfig,
    spec: ModelSpec,
    steps_per_epoch: int,
    initial_weights: dict[str, np.ndarray] | None = None,
) -> Trainer:
    """The trainer of ``run.backend.name``: the class loaded, its process-wide :meth:`Trainer.setup` done,
    then constructed with ``initial_weights`` (default: the seed's,
    :func:`bench.architecture.initial_weights`).

    Raises:
        BackendUnavailableError: the backend is unknown or its framework is not installed.
        ConfigError: the backend cannot run this config (e.g. ``backend.device=gpu`` without a GPU).
    """
    from bench.architecture import has_neutral_weights  # numpy: only when a trainer is made
    from bench.architecture import initial_weights as seeded_weights

    if initial_weights is None and has_neutral_weights(spec):  # a user's model: its framework's own init
        initial_weights = seeded_weights(spec, run.seed)
    # The framework starts here (import, threads, devices): its start-up chatter is filtered (bench/console.py).
    with framework_noise_filtered():
        trainer_class = load_backend(run.backend.name)
        trainer_class.setup(run)
        return trainer_class(run, spec, initial_weights, steps_per_epoch)
