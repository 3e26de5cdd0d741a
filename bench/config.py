"""Structured-config schemas: every config group is validated before any work starts.

Schemas hold types and checks; values live in the YAML. The schema of a group with options in
``conf/<group>/*.yaml`` (backend, optimizer, dataset, model, schedule) has no defaults: its fields are
``MISSING`` and every option's YAML gives them all (:func:`load_option` builds one option outside Hydra).
Sections without a YAML group (train) keep their defaults here; the tools' sections are each tool's own
(report: bench/report/options.py, protocol: bench/protocol/options.py, logger: bench/tracking.py;
throughput.* belongs to ``python -m bench.throughput`` alone, bench/throughput.py). Each built-in optimizer's
schema is in its own module of bench/optimizers/. A key that is a location, a speed setting or an option says
so on its field (bench/experiment.py); every other key is part of the experiment.

OmegaConf checks types when Hydra composes the config (``optimizer.lr=abc`` fails there). Ranges are checked
by the dataclasses' ``__post_init__``, which runs when :func:`validate` turns the composed config into objects.
Each optimizer and each schedule has its own schema, so a key that does not belong to it
(``optimizer.momentum`` for adamw, ``schedule.decay_rate`` for cosine) is rejected by Hydra as well.
"""

from __future__ import annotations

import importlib
import inspect
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from hydra._internal.utils import _locate  # what instantiate uses; get_class would also log the error
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, OmegaConfBaseException

from bench.checks import require, require_at_least, require_seed
from bench.console import framework_noise_filtered
from bench.errors import ConfigError
from bench.experiment import ABSENT_MEANS, ExperimentKeys, Role, declared, flatten
from bench.optimizers import OPTIMIZER_SCHEMAS, OptimizerConfig
from bench.protocol.options import ProtocolConfig
from bench.registry import BACKEND_NAMES as BACKENDS
from bench.registry import REGISTRY
from bench.report.options import ReportConfig  # the report's own options (cheap: no pandas, no bench.config)
from bench.resolvers import register_resolvers
from bench.tracking import LoggerConfig
from bench.workload import WorkloadConfig

# conf/ uses ${threads_per_job:} and ${job_dir_name:...} (and ${job_name_exclusions:}, below); ${jobs_at_once:}
# is there for users' configs. Registered on import, so that every process that validates a config (the launching
# one, and each joblib, submitit or Ray worker) can resolve them.
register_resolvers()

# conf/hydra/launcher/ray.yaml shares its name with hydra-ray-launcher's own config, so Hydra 1.3 validates it
# against that schema and warns that this matching is deprecated. Our file is complete without the schema (it
# names the launcher's class and sets every key), so the warning has nothing for a user to do.
warnings.filterwarnings(
    "ignore", message=r"\s*'hydra/launcher/ray' is validated against ConfigStore schema", category=UserWarning
)

# An absolute path, so every entry point finds conf/ however it is started (python -m bench, the flowerbench
# script, bench.search, tests).
CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")

PRECISIONS = ("fp32", "bf16")


@dataclass
class BackendConfig:
    """Which framework trains the model, and on what."""

    name: str = MISSING
    # intra-op threads; null = all cores (or the job's share of them). Changes the speed, not the results.
    threads: Optional[int] = declared(Role.SPEED, default=MISSING)
    device: str = MISSING  # auto = the GPU when there is one, else cpu

    def __post_init__(self) -> None:
        require(self.name in BACKENDS, f"backend.name must be one of {BACKENDS}, got {self.name!r}")
        require(
            self.threads is None or self.threads >= 1, f"backend.threads must be >= 1, got {self.threads}"
        )
        require(
            self.device in ("auto", "cpu", "gpu"),
            f"backend.device must be auto, cpu or gpu, got {self.device!r}",
        )


class BackendEntries:
    """What a user's optimizer and a user's model share: one Hydra-instantiable entry per backend (``torch:``,
    ``keras:``: a ``_target_`` plus keyword arguments), each checked the same way."""

    def entry(self, backend_name: str) -> dict[str, Any] | None:
        """The ``_target_`` and keyword arguments of this backend's class or factory; None when it has none."""
        return getattr(self, backend_name, None)

    def check_entries(self, group: str, target_is: str, reserved: dict[str, str]) -> None:
        """Every entry has a ``_target_`` and none of the ``reserved`` keys (key -> why the suite sets it)."""
        for backend_name in BACKENDS:
            entry = self.entry(backend_name)
            if entry is None:
                continue
            require("_target_" in entry, f"{group}.{backend_name} needs a _target_ ({target_is})")
            for key, why in reserved.items():
                require(key not in entry, f"{group}.{backend_name}.{key}: {why}")


@dataclass
class UserOptimizerConfig(BackendEntries, OptimizerConfig):
    """Any optimizer class a backend can import, one entry per backend, instantiated Hydra's way
    (``_target_`` plus keyword arguments; README "Add your own optimizer").

    ``lr`` is the one learning rate: the backend passes it (``lr=`` to torch, ``learning_rate=`` to Keras, as a
    schedule when there is one), so an entry must not set its own. ``l2`` is added to the loss as
    ``l2 * sum(kernel**2)`` on both backends. Such optimizers are not claimed to be at parity across backends.
    Unlike the built-in options, ``l2`` and the entries have defaults, so a user's YAML holds only what it uses.
    """

    l2: float = 0.0
    torch: Optional[dict[str, Any]] = None
    keras: Optional[dict[str, Any]] = None

    def __post_init__(self) -> None:
        super().__post_init__()
        require_at_least("optimizer.l2", self.l2, 0, strict=False)
        require(
            self.name not in OPTIMIZER_SCHEMAS,
            f"optimizer.name={self.name!r} is a built-in optimizer's name: give yours another one",
        )
        lr_is_the_suites = "set optimizer.lr instead (schedules and sweeps use it)"
        reserved = dict.fromkeys(("lr", "learning_rate"), lr_is_the_suites)
        self.check_entries("optimizer", "the class to build", reserved)


@dataclass
class DatasetConfig:
    """Where the photos come from and how they are decoded, split and cached."""

    name: str = MISSING  # names the photo cache's folder and key, and the workload (bench/workload.py)
    source: str = MISSING  # auto = folder when `path` is set, else tfds
    # The tfds dataset of the tfds source (a name tfds.load takes: cifar10, fashion_mnist, tf_flowers:3.0.1).
    tfds_name: str = MISSING
    # suite: validation (and test) split off the train split by the fractions below; published: the test split
    # is the dataset's own published test split (tfds only; still only when test_fraction > 0).
    splits: str = MISSING
    # Where the same photos live (moving them changes no result): a flower_photos folder (<root>/<class>/*.jpg),
    # tfds' data_dir (null = tfds' default, ~/tensorflow_datasets) and the decoded-photo cache.
    path: Optional[str] = declared(Role.LOCATION, default=MISSING)
    data_dir: Optional[str] = declared(Role.LOCATION, default=MISSING)
    cache_dir: str = declared(Role.LOCATION, default=MISSING)
    image_size: int = MISSING
    max_per_class: Optional[int] = MISSING  # null = every photo
    val_fraction: float = MISSING
    test_fraction: float = MISSING  # 0: the seed blog's two-way split; > 0: a held-out test split as well
    split_seed: int = MISSING

    def __post_init__(self) -> None:
        require(
            self.source in ("auto", "folder", "tfds"),
            f"dataset.source must be auto, folder or tfds, got {self.source!r}",
        )
        require(
            self.splits in ("suite", "published"),
            f"dataset.splits must be suite or published, got {self.splits!r}",
        )
        require(self.image_size >= 8, f"dataset.image_size must be >= 8, got {self.image_size}")
        require(
            self.max_per_class is None or self.max_per_class >= 2,
            f"dataset.max_per_class must be null or >= 2, got {self.max_per_class}",
        )
        require(0 < self.val_fraction < 1, f"dataset.val_fraction must be in (0, 1), got {self.val_fraction}")
        require(
            0 <= self.test_fraction < 1 and self.val_fraction + self.test_fraction < 1,
            f"dataset.test_fraction must be in [0, 1) and leave photos to train on with val_fraction="
            f"{self.val_fraction}, got {self.test_fraction}",
        )
        require_seed("dataset.split_seed", self.split_seed)


@dataclass
class ModelConfig:
    """Fields shared by every built-in model; each model's own schema adds its architecture
    (``conf/model/<name>.yaml``; the framework-neutral description is bench/architecture.py)."""

    name: str = MISSING


@dataclass
class CNNConfig(ModelConfig):
    """The seed blog's CNN: two conv blocks (conv, max-pool, ReLU, dropout), then two dense layers."""

    filters: list[int] = MISSING
    kernel_size: int = MISSING
    dense_units: int = MISSING
    dropout: float = MISSING

    def __post_init__(self) -> None:
        require(0 <= self.dropout < 1, f"model.dropout must be in [0, 1), got {self.dropout}")
        require(
            len(self.filters) >= 1 and min(self.filters) >= 1,
            "model.filters must be a non-empty list of positive ints",
        )
        require(
            self.kernel_size >= 1 and self.dense_units >= 1,
            "model.kernel_size and model.dense_units must be >= 1",
        )


@dataclass
class ResNetConfig(ModelConfig):
    """A post-activation ResNet with BatchNorm (He et al. 2016's CIFAR family): a 3x3 stem, stages of basic
    blocks (the first of each stage after the first halves the size), global average pooling, dense logits."""

    stage_filters: list[int] = MISSING
    blocks_per_stage: int = MISSING
    # Keras' BatchNormalization momentum (moving = moving * momentum + batch * (1 - momentum)) and epsilon, on
    # both backends; torch's nn.BatchNorm2d calls 1 - momentum its momentum.
    bn_momentum: float = MISSING
    bn_epsilon: float = MISSING

    def __post_init__(self) -> None:
        require(0 <= self.bn_momentum < 1, f"model.bn_momentum must be in [0, 1), got {self.bn_momentum}")
        require_at_least("model.bn_epsilon", self.bn_epsilon, 0, strict=True)
        require(
            len(self.stage_filters) >= 1 and min(self.stage_filters) >= 1,
            "model.stage_filters must be a non-empty list of positive ints",
        )
        require(
            self.blocks_per_stage >= 1, f"model.blocks_per_stage must be >= 1, got {self.blocks_per_stage}"
        )


#: The built-in models: each name's schema (conf/model/<name>.yaml).
MODEL_SCHEMAS = {"flowers_cnn": CNNConfig, "resnet": ResNetConfig}
#: What every backend passes a user's model factory itself: its entry must not set them.
MODEL_FACTORY_ARGUMENTS = ("input_shape", "num_classes")


@dataclass
class UserModelConfig(BackendEntries, ModelConfig):
    """A model of your own, as optimizers can be brought: one factory per backend, instantiated Hydra's way
    (``_target_`` plus keyword arguments; README "Your own model"), called with ``input_shape`` (each
    framework's convention: Keras (height, width, channels), torch (channels, height, width)) and
    ``num_classes``, returning logits. Each backend builds its own, from its framework's initialization under
    the run's seed: not at parity (``backend_parity: false`` in result.json). L2 (sgd_l2, adam_l2) goes on
    every trainable weight of two or more dimensions (bench.architecture.is_kernel)."""

    torch: Optional[dict[str, Any]] = None
    keras: Optional[dict[str, Any]] = None

    def __post_init__(self) -> None:
        require(
            self.name not in MODEL_SCHEMAS,
            f"model.name={self.name!r} is a built-in model's name: give yours another one",
        )
        passed = "the backend passes it from the data"
        self.check_entries("model", "the factory to call", dict.fromkeys(MODEL_FACTORY_ARGUMENTS, passed))


@dataclass
class ScheduleConfig:
    """Fields shared by every learning-rate schedule (stepped once per batch); each schedule's own schema adds
    its parameters."""

    name: str = MISSING


@dataclass
class ConstantScheduleConfig(ScheduleConfig):
    """lr0 at every step."""


@dataclass
class InverseTimeScheduleConfig(ScheduleConfig):
    """lr0 / (1 + decay_rate * step)."""

    decay_rate: float = MISSING

    def __post_init__(self) -> None:
        require_at_least("schedule.decay_rate", self.decay_rate, 0, strict=False)


@dataclass
class CosineScheduleConfig(ScheduleConfig):
    """Keras ``CosineDecay`` over the whole run, from lr0 down to ``alpha * lr0``."""

    alpha: float = MISSING

    def __post_init__(self) -> None:
        require(0 <= self.alpha <= 1, f"schedule.alpha must be in [0, 1], got {self.alpha}")


@dataclass
class TrainConfig:
    epochs: int = 7
    batch_size: int = 32
    precision: str = "fp32"  # fp32, or bf16 mixed precision (weights and optimizer stay fp32)
    # bf16 on a CPU without native bf16 instructions is refused (emulated, ~400x slower: bench/cpu.py) unless set.
    allow_emulated_bf16: bool = declared(Role.OPTION, default=False)
    # Train epochs 1..stop_epoch of a run planned for `epochs` and stop there (null: all of them). The run is the
    # first part of the full-length one: the lr schedule spans `epochs`, the test split is evaluated only after
    # the last of them, and the run leaves a checkpoint (bench/checkpoint.py) that a longer run can continue.
    stop_epoch: Optional[int] = None
    # The run directory of this experiment stopped at an earlier epoch: start from its checkpoint instead of
    # training those epochs again. Continuing reproduces training straight through (tests/test_checkpoint.py),
    # so where the first epochs were trained is a location, not a setting.
    continue_from: Optional[str] = declared(Role.LOCATION, default=None)

    def __post_init__(self) -> None:
        require(self.epochs >= 1, f"train.epochs must be >= 1, got {self.epochs}")
        require(
            self.stop_epoch is None or 1 <= self.stop_epoch <= self.epochs,
            f"train.stop_epoch must be in [1, train.epochs={self.epochs}] (or null), got {self.stop_epoch}",
        )
        require(self.batch_size >= 1, f"train.batch_size must be >= 1, got {self.batch_size}")
        require(
            self.precision in PRECISIONS,
            f"train.precision must be one of {PRECISIONS}, got {self.precision!r}",
        )

    @property
    def last_epoch(self) -> int:
        """The epoch this run stops after: ``stop_epoch``, or ``epochs`` when it runs the whole length."""
        return self.epochs if self.stop_epoch is None else self.stop_epoch


@dataclass
class RunConfig:
    """The whole experiment. Group nodes are typed by their own schemas (see conf/<group>/*.yaml)."""

    backend: BackendConfig = MISSING
    optimizer: Any = MISSING  # one of OPTIMIZER_SCHEMAS' classes or UserOptimizerConfig (the optimizer group)
    # Recorded configs from before any dataset but tf_flowers ran tf_flowers' own version, on the suite's split.
    dataset: DatasetConfig = field(
        default=MISSING, metadata={ABSENT_MEANS: {"tfds_name": "tf_flowers:3.0.1", "splits": "suite"}}
    )
    # One of MODEL_SCHEMAS' classes (the model group). Runs recorded before there was a second model have no
    # model.name: they trained the CNN, so a resume still finds them finished.
    model: Any = field(default=MISSING, metadata={ABSENT_MEANS: {"name": "flowers_cnn"}})
    schedule: Any = MISSING  # ConstantScheduleConfig | InverseTimeScheduleConfig | CosineScheduleConfig
    # The problem: conf/workload/ presets the dataset, model and train keys (bench/workload.py). Runs recorded
    # before there were workloads ran their workload's own size.
    workload: WorkloadConfig = field(
        default_factory=WorkloadConfig, metadata={ABSENT_MEANS: {"size": "full"}}
    )
    # Runs recorded before train.stop_epoch existed trained every epoch.
    train: TrainConfig = field(default_factory=TrainConfig, metadata={ABSENT_MEANS: {"stop_epoch": None}})
    seed: int = 0
    # Rerun a job even when its result.json says it already finished with these settings.
    force: bool = declared(Role.OPTION, default=False)
    # The tools of many runs: their settings live with their code and are part of no run.
    report: ReportConfig = declared(Role.OPTION, default_factory=ReportConfig)  # the analysis stage
    # experiment=fair_comparison's tune-then-confirm (bench/protocol/)
    protocol: ProtocolConfig = declared(Role.OPTION, default_factory=ProtocolConfig)
    # The trackers that get a copy of the run's metrics (bench/tracking.py); result.json stays the record.
    logger: LoggerConfig = declared(Role.OPTION, default_factory=LoggerConfig)

    def __post_init__(self) -> None:
        require_seed("seed", self.seed)
        from bench.architecture import spec_class  # lazy: numpy, only when a config is validated

        self.model = _as_user_option("model", self.model, MODEL_SCHEMAS, UserModelConfig)
        if not isinstance(self.model, UserModelConfig):
            _check_option("model", self.model, MODEL_SCHEMAS)  # before asking the spec its name names
        minimum, why = spec_class(self.model).min_image_size(self.model)
        require(
            self.dataset.image_size >= minimum,
            f"dataset.image_size={self.dataset.image_size} is too small for {why}: use at least {minimum}",
        )


def kernel_l2(optimizer: OptimizerConfig) -> float:
    """The L2 factor on conv and dense kernels: ``optimizer.l2`` for sgd_l2, adam_l2 and a user's optimizer,
    0 for sgdw and adamw (whose decay is decoupled and lives in the optimizer)."""
    return getattr(optimizer, "l2", 0.0)


def is_builtin(optimizer: OptimizerConfig) -> bool:
    """One of the optimizers whose two backends compute the same updates (docs/design.md, "Parity")."""
    return not isinstance(optimizer, UserOptimizerConfig)


def at_parity(run: RunConfig) -> bool:
    """Whether both backends compute the same run: a built-in optimizer on a built-in model."""
    return is_builtin(run.optimizer) and not isinstance(run.model, UserModelConfig)


#: Where each built-in optimizer sits in Loshchilov & Hutter's 2 x 2: (family, regularization), from its module.
LOSHCHILOV_HUTTER_CELLS = {
    name: (schema.cell.family, schema.cell.regularization) for name, schema in OPTIMIZER_SCHEMAS.items()
}
SCHEDULE_SCHEMAS = {
    "constant": ConstantScheduleConfig,
    "inverse_time": InverseTimeScheduleConfig,
    "cosine": CosineScheduleConfig,
}
#: The schema of each group with options in conf/<group>/: one for all its options, or one per option.
GROUP_SCHEMAS: dict[str, Any] = {
    "backend": BackendConfig,
    "optimizer": OPTIMIZER_SCHEMAS,
    "dataset": DatasetConfig,
    "model": MODEL_SCHEMAS,
    "schedule": SCHEDULE_SCHEMAS,
}


def register_configs(root: type[RunConfig] = RunConfig) -> None:
    """Put the schemas in Hydra's ConfigStore; each group's YAML names its schema in its defaults list.

    ``root`` is the schema of the whole config (conf/config.yaml's ``run_schema``): a run's, or that of an app
    which adds its own settings to a run's (``python -m bench.throughput``). Schemas are stored outside the
    groups (``/schema_dataset``, ``/schema_optimizer_sgd_l2``, ...) so that ``--help`` lists only the options
    users choose from.
    """
    cs = ConfigStore.instance()
    cs.store(name="run_schema", node=root)
    # Each built-in optimizer's defaults for the protocol and the grid, from its module (bench/optimizers/):
    # conf/experiment/fair_comparison.yaml puts them at protocol.spaces, conf/hydra/sweeper/lr_wd_grid.yaml
    # at hydra.sweeper.grids, where the command line can change any of them.
    spaces = {name: {k: list(v) for k, v in s.search_space.items()} for name, s in OPTIMIZER_SCHEMAS.items()}
    cs.store(name="builtin_search_spaces", node=spaces)
    cs.store(name="builtin_grids", node={name: dict(s.grid) for name, s in OPTIMIZER_SCHEMAS.items()})
    cs.store(name="schema_optimizer_user", node=UserOptimizerConfig)
    cs.store(name="schema_model_user", node=UserModelConfig)
    for group, schemas in GROUP_SCHEMAS.items():
        if isinstance(schemas, dict):
            for option, schema in schemas.items():
                cs.store(name=f"schema_{group}_{option}", node=schema)
        else:
            cs.store(name=f"schema_{group}", node=schemas)


def load_option(group: str, option: str, **values: Any) -> Any:
    """One group option as its schema's object, without composing a whole experiment (notebooks, tests).

    The values are those of ``conf/<group>/<option>.yaml`` (interpolations resolved), with ``values`` replacing
    some of them, checked as the command line is: ``load_option("optimizer", "adamw", lr=1e-3)``.

    Raises:
        ConfigError: no such option, a key its schema lacks, a value of the wrong type or out of range.
    """
    schemas = GROUP_SCHEMAS.get(group)
    schema = schemas.get(option) if isinstance(schemas, dict) else schemas
    path = Path(CONFIG_DIR) / group / f"{option}.yaml"
    if schema is None or not path.is_file():
        raise ConfigError(f"no config option {group}={option} (see python -m bench --help)")
    node = OmegaConf.load(path)
    node.pop("defaults", None)  # it names the schema, which is merged first here as Hydra does
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), node, values))
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{group}={option}: {str(exc).splitlines()[0]}") from exc


def _check_option(group: str, node: Any, schemas: dict[str, type]) -> None:
    """The object of a group chosen per option (optimizer, schedule) has the schema its name stands for."""
    name = getattr(node, "name", None)
    if name not in schemas:
        raise ConfigError(f"{group} must be one of {sorted(schemas)}, got {name!r}")
    if not isinstance(node, schemas[name]):  # e.g. schedule=constant schedule.name=cosine
        raise ConfigError(f"{group}.name={name!r} does not match the {group} chosen: use {group}={name}")


def validate(cfg: DictConfig) -> RunConfig:
    """Check ranges of the composed config (types were checked by Hydra) and return it as objects.

    Raises:
        ConfigError: with a one-line message naming the offending key.
    """
    # ??? in a YAML: a value only the user can give (read unresolved: another key may interpolate it)
    unresolved = flatten(OmegaConf.to_container(cfg, resolve=False, throw_on_missing=False))
    missing = [key for key, value in unresolved.items() if value == "???"]
    if missing:
        raise ConfigError(f"{missing[0]} is required: set it on the command line ({missing[0]}=...)")
    sizes = OmegaConf.select(cfg, "workload.sizes", default=None)
    size = OmegaConf.select(cfg, "workload.size", default=None)
    if sizes and size not in sizes:  # before the keys that read workload.sizes[size] are resolved
        raise ConfigError(f"workload.size={size!r}: this workload defines the sizes {sorted(sizes)}")
    try:
        run = OmegaConf.to_object(cfg)
    except InterpolationResolutionError as exc:  # e.g. a user's workload whose table lacks a key it reads
        raise ConfigError(f"{exc.full_key}: {str(exc).splitlines()[0]}") from exc
    if not isinstance(run, RunConfig):  # composed without the schema (e.g. in a notebook)
        raise ConfigError("config was not composed with the flowerbench schema (conf/config.yaml)")
    run.optimizer = _as_user_option("optimizer", run.optimizer, OPTIMIZER_SCHEMAS, UserOptimizerConfig)
    if isinstance(run.optimizer, UserOptimizerConfig):
        _check_user_optimizer(run.optimizer, run.backend.name)
    else:
        _check_option("optimizer", run.optimizer, OPTIMIZER_SCHEMAS)
    if isinstance(run.model, UserModelConfig):
        _locate_entry("model", run.model, run.backend.name)
    _check_option("schedule", run.schedule, SCHEDULE_SCHEMAS)
    return run


def _as_user_option(group: str, node: Any, builtins: dict[str, type], schema: type) -> Any:
    """A user's optimizer or model YAML without ``defaults: [/schema_<group>_user@_here_]`` comes as a plain
    dict: checked against the user schema here, so an unknown key is still one line."""
    if not isinstance(node, dict) or node.get("name") in builtins:
        return node
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), node))
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{group}={node.get('name')}: {str(exc).splitlines()[0]}") from exc


def _locate_entry(group: str, option: Any, backend_name: str) -> Any:
    """The callable of this backend's entry of a user's optimizer or model, and its arguments checked against
    its signature: a missing entry, a typo in the path or in a keyword fails here, before any run starts."""
    entry = option.entry(backend_name)
    if entry is None:
        others = [name for name in BACKENDS if option.entry(name) is not None]
        instead = f" or use backend={others[0]}" if others else ""
        raise ConfigError(
            f"{group} {option.name!r} has no {backend_name} entry (it has: {', '.join(others) or 'none'}); "
            f"add {group}.{backend_name}: {{_target_: ...}} to its YAML{instead}"
        )
    target = entry["_target_"]
    try:
        with framework_noise_filtered():  # e.g. keras.optimizers.Nadam starts TensorFlow
            located = _locate(str(target)) if "." in str(target) else None
    except (ImportError, ValueError, AttributeError) as exc:
        reason = str(exc).splitlines()[-1] if str(exc) else type(exc).__name__  # "Are you sure that ...?"
        raise ConfigError(f"{group}.{backend_name}._target_={target!r} cannot be imported: {reason}") from exc
    if located is None or not callable(located):
        raise ConfigError(
            f"{group}.{backend_name}._target_={target!r} must be a dotted path to a class or function "
            f"(e.g. {'torch.optim.NAdam, keras.optimizers.Nadam' if group == 'optimizer' else 'my_pkg.make_net'})"
        )
    arguments = {key: value for key, value in entry.items() if not key.startswith("_")}
    if group == "model":
        arguments |= dict.fromkeys(MODEL_FACTORY_ARGUMENTS)
    try:  # a misspelt keyword fails here rather than when the trainer builds it
        inspect.signature(located).bind_partial(**arguments)
    except TypeError as exc:
        raise ConfigError(f"{group}.{backend_name}: {target} does not take these arguments: {exc}") from exc
    except ValueError:  # no signature to read (some builtins): the callable checks its arguments itself
        pass
    return located


def _check_user_optimizer(optimizer: UserOptimizerConfig, backend_name: str) -> None:
    """This backend has an entry, its ``_target_`` imports and takes its arguments."""
    _locate_entry("optimizer", optimizer, backend_name)
    target = optimizer.entry(backend_name)["_target_"]
    # A value the class rejects (torch's NAdam(betas=(2.0, 3.0))) fails here too: the backend builds it once on
    # a throwaway parameter. Imported by name: the backend's optim module imports this one.
    optim = importlib.import_module(f"{REGISTRY[backend_name].package}.optim")
    try:
        with framework_noise_filtered():
            optim.build_user_optimizer_once(optimizer)
    except Exception as exc:  # whatever the class raises on its arguments
        cause = exc.__cause__ or exc  # Hydra's instantiate wraps the class's own error
        reason = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        raise ConfigError(f"optimizer.{backend_name}: {target} refused its arguments: {reason}") from exc


#: Each key's role, read off the schema's declarations (bench/experiment.py): resume, job names, the report's
#: grouping and parity, and the search all follow it.
EXPERIMENT_KEYS = ExperimentKeys.from_schema(RunConfig)
if not OmegaConf.has_resolver("job_name_exclusions"):
    # conf/config.yaml: hydra.job.config.override_dirname.exclude_keys, the keys left out of job directory names
    OmegaConf.register_new_resolver("job_name_exclusions", EXPERIMENT_KEYS.job_name_exclusions)
