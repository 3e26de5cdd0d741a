"""Find run directories and load them into one tidy DataFrame (one row per run x epoch).

A run directory is a Hydra job directory written by the runner; its files, their names and readers are those of
the output contract, :mod:`bench.results`. It is recognised by holding any of ``result.json``, ``metrics.jsonl``
or ``.hydra/config.yaml``; a run without ``result.json`` was killed (or is still running) and gets the status
``incomplete``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from bench import experiment
from bench.results import (
    CONFIG_FILE,
    FINAL_METRICS,
    METRICS_FILE,
    RESULT_FILE,
    RunStatus,
    is_run_dir,
    read_metrics,
    read_result,
)
from bench.workload import workload_name

#: Per-epoch metrics of the output contract (:class:`bench.results.EpochRecord`) that are always present as
#: columns, even when no epoch finished, and lead the metric columns.
CONTRACT_METRICS = (*FINAL_METRICS, "epoch_time_s", "train_images_per_s")
#: Per-run facts copied from result.json onto every epoch row of the run.
RUN_INFO_COLUMNS = (
    "epochs_planned", "diverged_epoch", "wall_time_s", "error", "num_classes", "backend_parity",
    "workload_target",
)  # fmt: skip
#: The config key that names a run's workload (bench/workload.py): the report's first stratum when it varies.
WORKLOAD = "workload.name"
#: Columns that say which run a row belongs to.
ID_COLUMNS = ("run_dir", "status", "backend", "optimizer", "seed")
#: Config keys that get their own short column; they are not repeated under their dotted name.
ALIASES = {"backend.name": "backend", "optimizer.name": "optimizer"}


class ReportError(Exception):
    """A problem with the user's input (bad path, unknown metric...): reported in one line, no traceback."""


class NoRunsFoundError(ReportError):
    """A path does not exist or holds no run directory."""


@dataclass
class Run:
    """One run directory as read from disk."""

    run_dir: Path
    config: dict[str, Any]  # flattened: {"optimizer.lr": 0.001, ...}
    epochs: list[dict[str, Any]]  # the rows of metrics.jsonl
    result: dict[str, Any] = field(default_factory=dict)  # result.json, empty when the run was killed

    @property
    def status(self) -> str:
        return self.result.get("status", RunStatus.INCOMPLETE)


@dataclass
class RunTable:
    """The tidy frame plus what the frame alone cannot tell: which config keys vary and the shared ones."""

    frame: pd.DataFrame  # one row per run x epoch (a run with no finished epoch has one row, epoch NaN)
    settings: list[str]  # config columns whose value differs between runs (seed included if it varies)
    constants: dict[str, Any]  # config keys with the same value in every run

    @property
    def metric_columns(self) -> list[str]:
        """The per-epoch measurements: the contract's plus any extra key of metrics.jsonl (lr, steps...)."""
        not_metrics = {*ID_COLUMNS, *self.settings, "epoch", *RUN_INFO_COLUMNS}
        return [column for column in self.frame.columns if column not in not_metrics]


def find_run_dirs(root: Path) -> list[Path]:
    """All run directories at or below ``root``, sorted; run directories are not searched further."""
    if not root.exists():
        raise NoRunsFoundError(f"no such file or directory: {root}")
    found = []
    for current, subdirs, _files in os.walk(root):
        if is_run_dir(Path(current)):
            found.append(Path(current))
            subdirs.clear()  # a job directory never holds another job
        subdirs.sort()
    if not found:
        raise NoRunsFoundError(
            f"no runs found under {root}: expected directories with {RESULT_FILE} or {METRICS_FILE}"
        )
    return found


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten a nested config to dotted keys; lists become JSON text so that they can be grouped on."""
    return {
        key: json.dumps(value) if isinstance(value, list | tuple | Mapping) else value
        for key, value in experiment.flatten(config, prefix).items()
    }


def _read_config(run_dir: Path, result: Mapping[str, Any]) -> dict[str, Any]:
    """The resolved config from result.json, else the job config Hydra saved before the run started; with
    the workload's name derived as the runner does where a run predates workloads."""
    if result.get("config"):
        return _with_workload(flatten(result["config"]))
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        return {}
    config = OmegaConf.load(path)
    try:  # resolved, to compare equal with the runs whose result.json holds the resolved config
        container = OmegaConf.to_container(config, resolve=True)
    except OmegaConfBaseException:  # ${hydra:...} outside a Hydra app, an unset ${oc.env:...}
        container = OmegaConf.to_container(config, resolve=False)
    return _with_workload(flatten(container)) if isinstance(container, dict) else {}


def _with_workload(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with ``workload.name``: recorded, or (before workloads) derived from its dataset and model,
    the CNN being the only model there was before ``model.name``."""
    if WORKLOAD not in config:
        model = config.get("model.name", "flowers_cnn")
        config[WORKLOAD] = workload_name(config.get("dataset.name", "tf_flowers"), model)
    return config


def read_run(run_dir: Path) -> Run:
    result = read_result(run_dir) or {}  # none, or not the runner's (it writes atomically): a killed run
    return Run(
        run_dir=run_dir, config=_read_config(run_dir, result), epochs=read_metrics(run_dir), result=result
    )


PathsLike = str | os.PathLike | Iterable[str | os.PathLike]


def as_paths(paths: PathsLike) -> list[Path]:
    """One path or several, as a list (a lone string is a path, not letters to iterate)."""
    if isinstance(paths, str | os.PathLike):
        return [Path(paths)]
    return [Path(path) for path in paths]


def read_runs(paths: PathsLike) -> list[Run]:
    """Read every run below each path; a directory reachable from two paths is read once."""
    run_dirs: dict[Path, None] = {}  # a dict keeps the order and drops duplicates
    for path in as_paths(paths):
        run_dirs.update(dict.fromkeys(find_run_dirs(Path(path))))
    return [read_run(run_dir) for run_dir in run_dirs]


def _comparable(value: Any) -> str:
    """A text form in which equal settings compare equal (1e-3 == 0.001) and a missing key is a value too."""
    return json.dumps(value, sort_keys=True, default=str)


def split_settings(runs: list[Run]) -> tuple[list[str], dict[str, Any]]:
    """Split all config keys into the ones that vary between runs and the ones every run shares."""
    keys = sorted({key for run in runs for key in run.config} - set(ALIASES))
    varying, constants = [], {}
    for key in keys:
        values = {_comparable(run.config.get(key)) for run in runs}
        if len(values) > 1:
            varying.append(key)
        else:
            constants[key] = runs[0].config.get(key)
    return varying, constants


def _identity(run: Run) -> dict[str, Any]:
    """The columns every row starts with: where the run is, how it ended, and what it is."""
    return {
        "run_dir": str(run.run_dir),
        "status": run.status,
        "backend": run.result.get("backend") or run.config.get("backend.name", "unknown"),
        "optimizer": run.result.get("optimizer") or run.config.get("optimizer.name", "unknown"),
        "seed": run.result.get("seed", run.config.get("seed")),
    }


def run_rows(run: Run, settings: list[str]) -> list[dict[str, Any]]:
    """The run's rows of the tidy frame: one per finished epoch, or a single one with no epoch."""
    head = _identity(run) | {key: run.config.get(key) for key in settings if key != "seed"}
    info = {key: run.result.get(key) for key in RUN_INFO_COLUMNS}
    info["epochs_planned"] = run.result.get("epochs_planned", run.config.get("train.epochs"))
    info["num_classes"] = (run.result.get("data") or {}).get("num_classes")  # for the chance level
    info["backend_parity"] = run.result.get("backend_parity", True)  # False: a user's optimizer or model
    info["workload_target"] = run.config.get("workload.target")  # time-to-target's, unless report.target
    epochs = run.epochs or [{"epoch": None}]
    return [head | epoch | info for epoch in epochs]


def tidy_frame(runs: list[Run], settings: list[str]) -> pd.DataFrame:
    rows = [row for run in runs for row in run_rows(run, settings)]
    frame = pd.DataFrame(rows)
    leading = [*ID_COLUMNS, *(key for key in settings if key != "seed")]
    trailing = list(RUN_INFO_COLUMNS)
    extra_metrics = [c for c in frame.columns if c not in {*leading, *trailing, "epoch", *CONTRACT_METRICS}]
    frame = frame.reindex(columns=[*leading, "epoch", *CONTRACT_METRICS, *extra_metrics, *trailing])
    return frame.sort_values(["run_dir", "epoch"], kind="stable", ignore_index=True)


def load_run_table(paths: PathsLike) -> RunTable:
    """Read the runs below ``paths`` into a :class:`RunTable`.

    Raises:
        NoRunsFoundError: a path does not exist or holds no run directory.
    """
    runs = read_runs(paths)
    settings, constants = split_settings(runs)
    return RunTable(frame=tidy_frame(runs, settings), settings=settings, constants=constants)


def load_runs(paths: PathsLike) -> pd.DataFrame:
    """The tidy frame of all runs below ``paths``: one row per run x finished epoch.

    Columns: ``run_dir``, ``status`` (completed, diverged, failed or incomplete), ``backend``, ``optimizer``,
    ``seed``, every config key that differs between runs (dotted, e.g. ``optimizer.lr``), ``epoch``, the
    metrics of metrics.jsonl, then ``epochs_planned``, ``diverged_epoch``, ``wall_time_s``, ``error`` and
    ``num_classes`` from result.json (``epochs_planned`` falls back to ``train.epochs`` for a killed run). A
    run that finished no epoch has one row with an empty ``epoch``.
    """
    return load_run_table(paths).frame
