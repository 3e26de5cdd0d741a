"""Structured-config schemas: every config group is validated before any work starts.

OmegaConf checks types when Hydra composes the config (``optimizer.lr=abc`` fails there). Ranges are checked
by the dataclasses' ``__post_init__``, which runs when :func:`validate` turns the composed config into objects.
Each optimizer has its own schema, so a key that does not belong to it (``optimizer.momentum`` for adamw) is
rejected by Hydra as well.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from bench.errors import ConfigError
from bench.resolvers import register_resolvers

# conf/ uses ${threads_per_job:} and ${jobs_at_once:}: registered on import, so that every process that
# validates a config (the launching one, and each joblib or submitit worker) can resolve them.
register_resolvers()

# An absolute path, so every entry point finds conf/ however it is started (python -m bench, the flowerbench
# script, bench.search, tests).
CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")
BACKENDS = ("keras", "torch")
PRECISIONS = ("fp32", "bf16")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


@dataclass
class BackendConfig:
    """Which framework trains the model, and on what."""

    name: str = MISSING
    threads: Optional[int] = (
        None  # intra-op threads; null = all cores of this machine (or of the job's share)
    )
    device: str = "auto"  # auto = the GPU when there is one, else cpu

    def __post_init__(self) -> None:
        _require(self.name in BACKENDS, f"backend.name must be one of {BACKENDS}, got {self.name!r}")
        _require(
            self.threads is None or self.threads >= 1, f"backend.threads must be >= 1, got {self.threads}"
        )
        _require(
            self.device in ("auto", "cpu", "gpu"),
            f"backend.device must be auto, cpu or gpu, got {self.device!r}",
        )


@dataclass
class OptimizerConfig:
    """Fields shared by every optimizer; each optimizer's own schema adds its hyperparameters."""

    name: str = MISSING
    lr: float = MISSING

    def __post_init__(self) -> None:
        _require(self.lr > 0, f"optimizer.lr must be > 0, got {self.lr}")


@dataclass
class SGDL2Config(OptimizerConfig):
    """SGD with momentum; L2 penalty ``l2 * sum(kernel**2)`` added to the loss (kernels only)."""

    momentum: float = 0.9
    l2: float = 1e-3

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(0 <= self.momentum < 1, f"optimizer.momentum must be in [0, 1), got {self.momentum}")
        _require(self.l2 >= 0, f"optimizer.l2 must be >= 0, got {self.l2}")


@dataclass
class AdamConfig(OptimizerConfig):
    """Adam moments; ``epsilon`` is Keras' epsilon-hat (inside the bias-corrected step)."""

    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-7

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("beta_1", "beta_2"):
            value = getattr(self, key)
            _require(0 <= value < 1, f"optimizer.{key} must be in [0, 1), got {value}")
        _require(self.epsilon > 0, f"optimizer.epsilon must be > 0, got {self.epsilon}")


@dataclass
class AdamL2Config(AdamConfig):
    """Adam with an L2 penalty on kernels in the loss (coupled with the adaptive step)."""

    l2: float = 1e-3

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(self.l2 >= 0, f"optimizer.l2 must be >= 0, got {self.l2}")


@dataclass
class AdamWConfig(AdamConfig):
    """Adam with decoupled weight decay ``w <- w - lr * weight_decay * w`` on all trainable variables."""

    weight_decay: float = 1e-3

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(self.weight_decay >= 0, f"optimizer.weight_decay must be >= 0, got {self.weight_decay}")


@dataclass
class DatasetConfig:
    """Where the photos come from and how they are decoded, split and cached."""

    name: str = "tf_flowers"
    source: str = "auto"  # auto = folder when `path` is set, else tfds
    path: Optional[str] = None  # a flower_photos folder (<root>/<class>/*.jpg)
    data_dir: Optional[str] = None  # tfds data_dir (null = tfds' default, ~/tensorflow_datasets)
    cache_dir: str = "~/.cache/flowerbench"
    image_size: int = 180
    max_per_class: Optional[int] = None
    val_fraction: float = 0.2
    split_seed: int = 123

    def __post_init__(self) -> None:
        _require(
            self.source in ("auto", "folder", "tfds"),
            f"dataset.source must be auto, folder or tfds, got {self.source!r}",
        )
        _require(self.image_size >= 8, f"dataset.image_size must be >= 8, got {self.image_size}")
        _require(
            self.max_per_class is None or self.max_per_class >= 2,
            f"dataset.max_per_class must be null or >= 2, got {self.max_per_class}",
        )
        _require(
            0 < self.val_fraction < 1, f"dataset.val_fraction must be in (0, 1), got {self.val_fraction}"
        )


@dataclass
class ModelConfig:
    """The seed blog's CNN: two conv blocks (conv, max-pool, ReLU, dropout), then two dense layers."""

    name: str = "flowers_cnn"
    filters: list[int] = field(default_factory=lambda: [64, 64])
    kernel_size: int = 3
    dense_units: int = 128
    dropout: float = 0.2

    def __post_init__(self) -> None:
        _require(0 <= self.dropout < 1, f"model.dropout must be in [0, 1), got {self.dropout}")
        _require(
            len(self.filters) >= 1 and min(self.filters) >= 1,
            "model.filters must be a non-empty list of positive ints",
        )
        _require(
            self.kernel_size >= 1 and self.dense_units >= 1,
            "model.kernel_size and model.dense_units must be >= 1",
        )


@dataclass
class ScheduleConfig:
    """Learning-rate schedule, stepped once per batch.

    constant: lr0. inverse_time: lr0 / (1 + decay_rate * step). cosine: Keras ``CosineDecay`` over the whole
    run down to ``alpha * lr0``.
    """

    name: str = "constant"
    decay_rate: float = 0.0
    alpha: float = 0.0

    def __post_init__(self) -> None:
        names = ("constant", "inverse_time", "cosine")
        _require(self.name in names, f"schedule.name must be one of {names}, got {self.name!r}")
        _require(self.decay_rate >= 0, f"schedule.decay_rate must be >= 0, got {self.decay_rate}")
        _require(0 <= self.alpha <= 1, f"schedule.alpha must be in [0, 1], got {self.alpha}")


@dataclass
class TrainConfig:
    epochs: int = 7
    batch_size: int = 32
    precision: str = "fp32"  # fp32, or bf16 mixed precision (weights and optimizer stay fp32)

    def __post_init__(self) -> None:
        _require(self.epochs >= 1, f"train.epochs must be >= 1, got {self.epochs}")
        _require(self.batch_size >= 1, f"train.batch_size must be >= 1, got {self.batch_size}")
        _require(
            self.precision in PRECISIONS,
            f"train.precision must be one of {PRECISIONS}, got {self.precision!r}",
        )


@dataclass
class ThroughputConfig:
    """``python -m bench.throughput``: steps discarded as warm-up, then steps timed one by one."""

    warmup_steps: int = 3
    timed_steps: int = 10
    matmul_size: int = 2048  # side of the square matrices timed for the machine's matmul peak

    def __post_init__(self) -> None:
        _require(self.warmup_steps >= 1, f"throughput.warmup_steps must be >= 1, got {self.warmup_steps}")
        _require(self.timed_steps >= 2, f"throughput.timed_steps must be >= 2, got {self.timed_steps}")
        _require(self.matmul_size >= 64, f"throughput.matmul_size must be >= 64, got {self.matmul_size}")


@dataclass
class ReportConfig:
    """The analysis stage run when a multirun ends; ``python -m bench.report`` takes the same options.

    The margins say what difference matters in practice: two arms whose difference is shown to lie within
    ±margin are called equivalent (two one-sided tests). They are set before looking at any result.
    """

    enabled: bool = True
    metrics: Optional[list[str]] = (
        None  # figure families; null = accuracy and ce_loss (e.g. [accuracy, loss])
    )
    margin: float = 0.01  # accuracy margin, a fraction: 0.01 = 1 point of validation accuracy
    loss_margin: float = 0.02  # cross-entropy margin in nats (about 2 % of the seed blog's ~1.1)
    target: Optional[float] = (
        None  # val_accuracy target of time-to-target; null = 95 % of the best arm's mean
    )

    def __post_init__(self) -> None:
        _require(
            0 < self.margin < 1, f"report.margin must be in (0, 1) (accuracy fraction), got {self.margin}"
        )
        _require(self.loss_margin > 0, f"report.loss_margin must be > 0 (nats), got {self.loss_margin}")
        _require(
            self.target is None or 0 < self.target <= 1,
            f"report.target must be null or a val_accuracy in (0, 1], got {self.target}",
        )


@dataclass
class RunConfig:
    """The whole experiment. Group nodes are typed by their own schemas (see conf/<group>/*.yaml)."""

    backend: BackendConfig = MISSING
    optimizer: Any = MISSING  # SGDL2Config | AdamL2Config | AdamWConfig, chosen by the optimizer group
    dataset: DatasetConfig = MISSING
    model: ModelConfig = MISSING
    schedule: ScheduleConfig = MISSING
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0
    force: bool = False  # rerun a job even when its result.json says it already finished with these settings
    report: ReportConfig = field(default_factory=ReportConfig)
    throughput: ThroughputConfig = field(default_factory=ThroughputConfig)

    def __post_init__(self) -> None:
        _require(self.seed >= 0, f"seed must be >= 0, got {self.seed}")
        blocks = len(self.model.filters)
        _require(
            self.dataset.image_size >= 2**blocks,
            f"dataset.image_size={self.dataset.image_size} is too small for {blocks} conv blocks "
            f"(each halves it): use at least {2**blocks}",
        )


def kernel_l2(optimizer: OptimizerConfig) -> float:
    """The L2 factor on conv and dense kernels: ``optimizer.l2`` for sgd_l2 and adam_l2, 0 for AdamW (whose
    decay is decoupled and lives in the optimizer)."""
    return getattr(optimizer, "l2", 0.0)


OPTIMIZER_SCHEMAS = {"sgd_l2": SGDL2Config, "adam_l2": AdamL2Config, "adamw": AdamWConfig}


def register_configs() -> None:
    """Put the schemas in Hydra's ConfigStore; each group's YAML names its schema in its defaults list.

    Schemas are stored outside the groups (``/schema_optimizer_sgd_l2``, ...) so that ``--help`` lists only
    the options users choose from.
    """
    cs = ConfigStore.instance()
    cs.store(name="run_schema", node=RunConfig)
    cs.store(name="schema_backend", node=BackendConfig)
    for name, schema in OPTIMIZER_SCHEMAS.items():
        cs.store(name=f"schema_optimizer_{name}", node=schema)
    cs.store(name="schema_dataset", node=DatasetConfig)
    cs.store(name="schema_model", node=ModelConfig)
    cs.store(name="schema_schedule", node=ScheduleConfig)


def validate(cfg: DictConfig) -> RunConfig:
    """Check ranges of the composed config (types were checked by Hydra) and return it as objects.

    Raises:
        ConfigError: with a one-line message naming the offending key.
    """
    run = OmegaConf.to_object(cfg)
    if not isinstance(run, RunConfig):  # composed without the schema (e.g. in a notebook)
        raise ConfigError("config was not composed with the flowerbench schema (conf/config.yaml)")
    schema = OPTIMIZER_SCHEMAS.get(getattr(run.optimizer, "name", None))
    if schema is None or not isinstance(run.optimizer, schema):
        raise ConfigError(
            f"optimizer must be one of {sorted(OPTIMIZER_SCHEMAS)}, got {cfg.optimizer.get('name')!r}"
        )
    return run
