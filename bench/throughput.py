"""``python -m bench.throughput``: how fast the suite trains, next to a bare loop and the machine's matmul peak.

The same Hydra app and config as ``python -m bench``, so every override works the same way::

    python -m bench.throughput                                          # Keras, SGD+L2, 180 px, batch 32, fp32
    python -m bench.throughput backend=torch optimizer=adamw train.precision=bf16 throughput.timed_steps=20
    python -m bench.throughput hydra.run.dir=outputs/throughput/torch-bf16

In one process it times (1) the suite's own ``Trainer.train_epoch`` on the runner's batches, step by step,
(2) a bare training loop (a backend's :class:`~bench.backend.Reference`: what a user would write without
flowerbench) on the same images, taking turns with (1), and (3) the suite backend's matmul peak in fp32 and
bf16. The bare loop is the suite's own backend at its precision unless ``throughput.reference_backend`` /
``throughput.reference_precision`` name another: the seed blog's Keras ``fit`` in fp32 beside a torch bf16
suite is ``backend=torch train.precision=bf16 throughput.reference_backend=keras
throughput.reference_precision=fp32``, and ``speedup`` (suite / bare loop) is then one measurement.
Warm-up steps (``throughput.warmup_steps``: tracing, first-touch allocations) are discarded;
``throughput.timed_steps`` are timed on each side. The images are random uint8 pixels of
``dataset.image_size``: decoding is not what is timed, and pixel values do not change the cost of a dense CNN
step, so no photo is decoded. The number of classes (the logits layer's size) is the dataset's, read as the
runner would find it but without decoding: the photo folder's class folders, or tfds' metadata.

Prints a table and writes ``throughput.json`` in the Hydra run directory (``hydra.run.dir``, by default
``outputs/runs/<date>/<time>``). Its rates are defined in :mod:`bench.timing`.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import hydra
import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from bench import cpu, results
from bench import data as data_lib
from bench.architecture import ModelSpec, initial_weights, model_spec
from bench.backend import BareLoop, Trainer, build_trainer, load_backend, load_reference
from bench.checks import require
from bench.config import (
    CONFIG_DIR,
    OPTIMIZER_SCHEMAS,
    PRECISIONS,
    DatasetConfig,
    RunConfig,
    UserModelConfig,
    is_builtin,
    register_configs,
    validate,
)
from bench.console import framework_noise_filtered
from bench.errors import ConfigError, DataError
from bench.experiment import Role, declared
from bench.io import atomic_write_json
from bench.preflight import one_line_errors
from bench.registry import BACKEND_NAMES as BACKENDS
from bench.timing import StepTimer, ThroughputStats


@dataclass
class ThroughputConfig:
    """``python -m bench.throughput``: steps discarded as warm-up, then steps timed one by one."""

    warmup_steps: int = 3
    timed_steps: int = 10
    matmul_size: int = 2048  # side of the square matrices timed for the machine's matmul peak
    # The bare loop timed beside the suite: that backend's (null: the suite's own) at that precision (null: the
    # suite's train.precision). E.g. reference_backend=keras reference_precision=fp32: Keras `fit` in fp32,
    # the seed blog's setup, so that "torch bf16 is N x the seed's speed" is one measurement.
    reference_backend: Optional[str] = None
    reference_precision: Optional[str] = None

    def __post_init__(self) -> None:
        require(self.warmup_steps >= 1, f"throughput.warmup_steps must be >= 1, got {self.warmup_steps}")
        require(self.timed_steps >= 2, f"throughput.timed_steps must be >= 2, got {self.timed_steps}")
        require(self.matmul_size >= 64, f"throughput.matmul_size must be >= 64, got {self.matmul_size}")
        require(
            self.reference_backend in (None, *BACKENDS),
            f"throughput.reference_backend must be null or one of {BACKENDS}, got {self.reference_backend!r}",
        )
        require(
            self.reference_precision in (None, *PRECISIONS),
            f"throughput.reference_precision must be null or one of {PRECISIONS}, "
            f"got {self.reference_precision!r}",
        )


@dataclass
class ThroughputRunConfig(RunConfig):
    """This app's config: a run's, which it times, plus its own settings (``python -m bench`` has none of
    them, so result.json never records them)."""

    throughput: ThroughputConfig = declared(Role.OPTION, default_factory=ThroughputConfig)


register_configs(root=ThroughputRunConfig)
THROUGHPUT_FILE = "throughput.json"
MATMUL_DTYPES = ("fp32", "bf16")
# The suite and the bare loop take turns of this many timed steps, so that a neighbour's load on a shared
# machine slows both alike instead of whichever happened to run at the time.
ROUND_STEPS = 5


def dataset_classes(dataset: DatasetConfig) -> list[str]:
    """The dataset's class names without decoding a photo: the folder's class folders when the config names a
    folder (as the runner lists them), else tfds' metadata (no download, no TensorFlow import), or tf_flowers'
    published labels where tensorflow-datasets is not installed.

    Raises:
        DataError: the folder is missing or malformed.
    """
    if data_lib.resolve_source(dataset) == "folder":
        return data_lib.list_folder(Path(dataset.path).expanduser(), dataset)[2]
    try:
        import tensorflow_datasets as tfds  # lazy: only the tfds source needs it
    except ImportError:  # e.g. a GPU image with torch alone: timing needs only how many classes there are
        if dataset.tfds_name == data_lib.TFDS_NAME:
            return list(data_lib.TFDS_CLASSES)
        raise DataError(
            f"dataset.tfds_name={dataset.tfds_name} needs tensorflow-datasets for its classes"
        ) from None
    info = tfds.builder(dataset.tfds_name, data_dir=dataset.data_dir).info
    return list(info.features[data_lib.label_key(info, dataset.tfds_name)].names)


def synthetic_spec(run: RunConfig) -> ModelSpec:
    """The network ``run`` trains: its model, image size and the dataset's number of classes."""
    return model_spec(run.model, run.dataset.image_size, len(dataset_classes(run.dataset)))


def synthetic_images(n: int, spec: ModelSpec, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random uint8 images shaped for ``spec`` (N x H x W x C) and int32 labels of its classes."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, spec.image_size, spec.image_size, spec.channels), dtype=np.uint8)
    return images, rng.integers(0, spec.num_classes, n, dtype=np.int32)


def time_both(
    run: RunConfig, trainer: Trainer, bare: BareLoop, images: np.ndarray, labels: np.ndarray
) -> dict[str, Any]:
    """Per-step stats of the suite's Trainer and of the bare loop (``Reference.bare_loop``),
    which take turns of ``ROUND_STEPS`` steps.

    The suite trains on the runner's batches (an epoch's shuffled gathers), the bare loop on contiguous slices
    of the same images. Each first trains ``warmup_steps`` untimed steps (tracing, first-touch allocations).
    The first step of a turn also carries that side's per-epoch start (fit's data iterator, the Trainer's
    metric reset): a few percent of one step in five, which the median ignores.
    """
    batch, warmup = run.train.batch_size, run.throughput.warmup_steps
    order = data_lib.epoch_order(run.seed, 1, len(labels))
    batches = data_lib.iterate_batches(images, labels, batch, order)
    trainer.train_epoch(itertools.islice(batches, warmup))
    bare.train(images[: warmup * batch], labels[: warmup * batch])
    suite_timer, bare_times = StepTimer(), []
    end = warmup + run.throughput.timed_steps
    for first in range(warmup, end, ROUND_STEPS):
        steps = min(ROUND_STEPS, end - first)
        trainer.train_epoch(itertools.islice(batches, steps), on_step=suite_timer.start())
        turn = slice(first * batch, (first + steps) * batch)
        bare_times += bare.train(images[turn], labels[turn])
    return {"suite": suite_timer.stats(), "bare_loop": ThroughputStats.from_step_times(bare_times, batch)}


def reference_run(run: RunConfig) -> RunConfig:
    """``run`` as the bare loop runs it: ``throughput.reference_backend`` and ``reference_precision``, where set."""
    backend = run.throughput.reference_backend or run.backend.name
    precision = run.throughput.reference_precision or run.train.precision
    return dataclasses.replace(
        run,
        backend=dataclasses.replace(run.backend, name=backend),
        train=dataclasses.replace(run.train, precision=precision),
    )


def build_bare_loop(
    run: RunConfig, bare: RunConfig, spec: ModelSpec, weights: dict[str, np.ndarray]
) -> BareLoop:
    """The bare loop that ``bare`` (:func:`reference_run` of ``run``) names. Another backend's framework gets its
    own process set-up first (threads, seeds, determinism), as when it is timed beside its own suite."""
    if bare.backend.name != run.backend.name:
        with framework_noise_filtered():
            load_backend(bare.backend.name).setup(bare)
    return load_reference(bare.backend.name).bare_loop(
        spec, weights, run.optimizer, run.train.batch_size, bare.train.precision
    )


def measure(run: RunConfig) -> dict[str, Any]:
    """Everything ``throughput.json`` holds, for one configuration."""
    if not is_builtin(run.optimizer):
        raise ConfigError(
            f"python -m bench.throughput times the built-in optimizers ({', '.join(OPTIMIZER_SCHEMAS)}) against "
            f"a plain loop of the same; {run.optimizer.name} is a user's optimizer: time it with python -m bench"
        )
    if isinstance(run.model, UserModelConfig):
        raise ConfigError(
            f"python -m bench.throughput times the built-in models against a plain loop of the same; "
            f"{run.model.name} is a user's model: time it with python -m bench (its runs' timing.csv)"
        )
    spec = synthetic_spec(run)
    weights = initial_weights(spec, run.seed)
    n_steps = run.throughput.warmup_steps + run.throughput.timed_steps
    images, labels = synthetic_images(n_steps * run.train.batch_size, spec, run.seed)
    trainer = build_trainer(run, spec, n_steps, weights)  # first: its setup sets threads and seeds
    bare_run = reference_run(run)
    bare = build_bare_loop(run, bare_run, spec, weights)
    timed = time_both(run, trainer, bare, images, labels)
    suite, bare_loop = timed["suite"], timed["bare_loop"]
    reference = load_reference(run.backend.name)  # the suite's framework: its matmul peaks
    # Under an emulated AVX2 CPU (FLOWERBENCH_CPU_ISA), TensorFlow's bf16 matmul crashes (oneDNN capped at AVX2
    # has no bf16 kernel for it): bf16's peak is not timed there.
    dtypes = [d for d in MATMUL_DTYPES if d == "fp32" or not cpu.emulated_isa()]
    peaks = {
        d: reference.matmul_gflops(run.throughput.matmul_size, d) if d in dtypes else None
        for d in MATMUL_DTYPES
    }
    same_loop = (bare_run.backend.name, bare_run.train.precision) == (run.backend.name, run.train.precision)
    flops = spec.train_flops_per_image()
    achieved = suite.images_per_s * flops / 1e9
    environment = trainer.environment()
    return {
        "backend": run.backend.name,
        "optimizer": run.optimizer.name,
        "precision": run.train.precision,
        "image_size": spec.image_size,
        "batch_size": run.train.batch_size,
        "threads": environment.get("threads"),
        "warmup_steps": run.throughput.warmup_steps,
        "suite": suite.as_dict(),
        "bare_loop": bare_loop.as_dict(),
        "bare_loop_backend": bare_run.backend.name,
        "bare_loop_precision": bare_run.train.precision,
        "speedup": suite.images_per_s / bare_loop.images_per_s,
        # What flowerbench's machinery costs: only where the bare loop trains what the suite trains.
        "runner_overhead": 1 - suite.images_per_s / bare_loop.images_per_s if same_loop else None,
        "matmul_size": run.throughput.matmul_size,
        "matmul_gflops": peaks,
        "train_flops_per_image": flops,
        "achieved_gflops": achieved,
        "fraction_of_fp32_peak": achieved / peaks["fp32"] if peaks["fp32"] else None,
        "environment": results.environment(environment),
    }


def format_table(result: dict[str, Any]) -> str:
    """The human-readable summary printed at the end."""
    rows = [
        f"{result['backend']} {result['optimizer']} {result['precision']}, {result['image_size']} px, "
        f"batch {result['batch_size']}, {result['threads']} threads",
        f"{'':<24}{'img/s median':>13}{'IQR':>8}{'min':>8}{'max':>8}{'steps':>7}",
    ]
    bare_label = f"{result['bare_loop_backend']} {result['bare_loop_precision']} bare loop"
    for label, key in (("suite Trainer", "suite"), (bare_label, "bare_loop")):
        s = result[key]
        rows.append(
            f"{label:<24}{s['images_per_s']:>13.1f}{s['iqr']:>8.1f}{s['min']:>8.1f}{s['max']:>8.1f}{s['n_steps']:>7}"
        )
    peaks = ", ".join(f"{k} {v:.0f}" if v else f"{k} n/a" for k, v in result["matmul_gflops"].items())
    fraction = result["fraction_of_fp32_peak"]
    overhead = result["runner_overhead"]
    rows += [
        f"suite / bare loop: {result['speedup']:.2f}x"
        + (f"; runner overhead {overhead:.1%} (1 - suite / bare loop)" if overhead is not None else ""),
        f"matmul peak GFLOP/s ({result['matmul_size']}^2): {peaks}",
        f"model: {result['train_flops_per_image'] / 1e9:.3f} GFLOP per training image -> suite at "
        f"{result['achieved_gflops']:.1f} GFLOP/s"
        + (f" = {fraction:.1%} of the fp32 peak" if fraction else ""),
    ]
    return "\n".join(rows)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def app(cfg: DictConfig) -> None:
    """Validate, measure, write throughput.json; bad input ends in one line on stderr, as in ``python -m bench``."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    with one_line_errors(run_dir):
        result = measure(validate(cfg))
    atomic_write_json(run_dir / THROUGHPUT_FILE, result)
    print(format_table(result))
    print(f"wrote {run_dir / THROUGHPUT_FILE}")


if __name__ == "__main__":
    app()
