"""Experiment trackers: each run's config, per-epoch metrics, status and result.json, where users already look
(``logger=tensorboard``, ``logger=mlflow``, or both: ``'logger=[tensorboard,mlflow]'``; README "Experiment
trackers").

A tracker holds a copy, never the record: result.json and metrics.jsonl are written first and decide
everything (resume, the report). So a tracker that fails, a server down or a bad URI, costs one warning line
and is switched off for the rest of the run; the run goes on. Both trackers are optional packages (the
``track`` extra), imported only when chosen.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Protocol

from bench.console import framework_noise_filtered
from bench.results import RunStatus

log = logging.getLogger(__name__)


@dataclass
class TensorBoardLoggerConfig:
    subdir: str = "tensorboard"  # event files go to <job dir>/<subdir>


@dataclass
class MlflowLoggerConfig:
    tracking_uri: str = "sqlite:///outputs/mlflow.db"
    experiment_name: Optional[str] = None  # null: the sweep directory, or "flowerbench runs" for a single run


@dataclass
class LoggerConfig:
    """Experiment trackers (conf/logger/): none by default, one, or several (``logger=[tensorboard,mlflow]``).
    A tracker never decides a run's fate: result.json stays the record."""

    tensorboard: Optional[TensorBoardLoggerConfig] = None
    mlflow: Optional[MlflowLoggerConfig] = None


SINGLE_RUNS_EXPERIMENT = "flowerbench runs"
STATUS_OF = {
    RunStatus.COMPLETED: "FINISHED",
    RunStatus.DIVERGED: "FAILED",
    RunStatus.FAILED: "FAILED",
    RunStatus.PRUNED: "KILLED",  # stopped early on purpose, by a search's pruner
    RunStatus.INTERRUPTED: "KILLED",
}


@dataclass
class RunInfo:
    """What a tracker needs to know about the run it follows."""

    run_dir: Path
    name: str  # the job directory's name (its overrides in a sweep)
    params: dict[str, Any]  # the flattened resolved config (MLflow's params)
    settings: dict[str, Any]  # its experiment keys only (bench/experiment.py): TensorBoard's HParams
    tags: dict[str, str]  # backend, optimizer, seed
    sweep_dir: Path | None  # None for a single run


class Tracker(Protocol):
    def start(self, run: RunInfo) -> None: ...
    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None: ...
    def finish(self, status: str, result_file: Path | None) -> None: ...


def _numeric(metrics: dict[str, Any]) -> dict[str, float]:
    return {
        key: float(value)
        for key, value in metrics.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    }


class TensorBoardTracker:
    """Event files in ``<job dir>/<subdir>``: scalars per epoch, and the run's settings for the HParams view
    (``tensorboard --logdir <sweep dir>`` lists every job as a run)."""

    def __init__(self, config: TensorBoardLoggerConfig):
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self.config, self.Event, self.Summary, self.EventFileWriter = config, Event, Summary, EventFileWriter
        self.writer = None

    def _write(self, summary: Any, step: int = 0) -> None:
        self.writer.add_event(self.Event(summary=summary, step=step, wall_time=time.time()))

    def start(self, run: RunInfo) -> None:
        from tensorboard.plugins.hparams import summary_v2

        self.writer = self.EventFileWriter(str(run.run_dir / self.config.subdir))
        hparams = {key: _hparam_value(value) for key, value in run.settings.items()}
        self._write(summary_v2.hparams_pb(hparams, trial_id=run.name, start_time_secs=time.time()))

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        values = [self.Summary.Value(tag=key, simple_value=value) for key, value in metrics.items()]
        self._write(self.Summary(value=values), step=epoch)
        self.writer.flush()

    def finish(self, status: str, result_file: Path | None) -> None:
        """The HParams session's end and status (built from tensorboard's own protos: its v1 helper would
        build TensorFlow's when TensorFlow is installed, which this writer does not take)."""
        from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

        code = (
            api_pb2.Status.STATUS_SUCCESS if status == RunStatus.COMPLETED else api_pb2.Status.STATUS_FAILURE
        )
        end = plugin_data_pb2.SessionEndInfo(status=code, end_time_secs=int(time.time()))
        data = plugin_data_pb2.HParamsPluginData(session_end_info=end, version=metadata.PLUGIN_DATA_VERSION)
        value = self.Summary.Value(
            tag=metadata.SESSION_END_INFO_TAG, metadata=metadata.create_summary_metadata(data)
        )
        self._write(self.Summary(value=[value]))
        self.writer.close()


def _hparam_value(value: Any) -> bool | float | str:
    """TensorBoard's HParams take booleans, numbers and strings."""
    if isinstance(value, bool | int | float) and not (isinstance(value, float) and math.isnan(value)):
        return value
    return "null" if value is None else str(value)


class MlflowTracker:
    """One MLflow run per job, in one experiment per sweep: params, per-epoch metrics, a status tag, and
    result.json as an artifact."""

    def __init__(self, config: MlflowLoggerConfig):
        # A server that does not answer should cost seconds, not MLflow's minutes of retries.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        for name in ("mlflow", "alembic"):  # their INFO lines (database migrations) are not the run's
            logging.getLogger(name).setLevel(logging.WARNING)
        from mlflow.tracking import MlflowClient

        uri = config.tracking_uri
        self.artifacts = None  # the server's own artifact store, for a tracking server
        if uri.startswith("sqlite:///"):  # a local store: its artifacts beside it, not in ./mlruns
            database = Path(uri.removeprefix("sqlite:///")).resolve()
            database.parent.mkdir(parents=True, exist_ok=True)
            self.artifacts = (database.parent / "mlflow-artifacts").as_uri()
        self.config, self.client, self.run_id = config, MlflowClient(uri), None

    def _experiment_id(self, run: RunInfo) -> str:
        name = self.config.experiment_name or (
            str(run.sweep_dir) if run.sweep_dir else SINGLE_RUNS_EXPERIMENT
        )
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        try:
            # one folder per experiment, named by a digest: a sweep's name is a path
            digest = hashlib.sha1(name.encode()).hexdigest()[:12]
            location = f"{self.artifacts}/{digest}" if self.artifacts else None
            return self.client.create_experiment(name, artifact_location=location)
        except Exception:  # another job of the sweep created it first
            return self.client.get_experiment_by_name(name).experiment_id

    def start(self, run: RunInfo) -> None:
        from mlflow.entities import Param

        self.run_id = self.client.create_run(
            self._experiment_id(run), run_name=run.name, tags=run.tags
        ).info.run_id
        params = [Param(key, str(value)[:6000]) for key, value in run.params.items()]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[start : start + 100])

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        entries = [Metric(key, value, now, epoch) for key, value in metrics.items()]
        self.client.log_batch(self.run_id, metrics=entries)

    def finish(self, status: str, result_file: Path | None) -> None:
        self.client.set_tag(self.run_id, "status", status)
        if result_file is not None and result_file.is_file():
            self.client.log_artifact(self.run_id, str(result_file))
        self.client.set_terminated(self.run_id, STATUS_OF.get(status, "FAILED"))


class Trackers:
    """The chosen trackers, called together; one that fails is reported once and dropped."""

    def __init__(self, trackers: dict[str, Tracker]):
        self.trackers = trackers

    def _each(self, method: str, *args: Any) -> None:
        for name, tracker in list(self.trackers.items()):
            try:
                getattr(tracker, method)(*args)
            except Exception as exc:  # a tracker must never cost the run
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                log.warning("logger %s failed and is off for this run (%s): %s", name, method, reason[:300])
                del self.trackers[name]

    def start(self, run: RunInfo) -> None:
        with (
            framework_noise_filtered()
        ):  # TensorBoard's HParams protos import TensorFlow where it is installed
            self._each("start", run)

    def log_epoch(self, epoch: int, metrics: dict[str, Any]) -> None:
        self._each("log_epoch", epoch, _numeric(metrics))

    def finish(self, status: str, result_file: Path | None = None) -> None:
        self._each("finish", status, result_file)


TRACKERS = {"tensorboard": TensorBoardTracker, "mlflow": MlflowTracker}


def open_trackers(config: LoggerConfig) -> Trackers:
    """The trackers ``config`` chooses (none by default); one that cannot even be set up is a warning."""
    chosen: dict[str, Tracker] = {}
    for name, make in TRACKERS.items():
        settings = getattr(config, name)
        if settings is None:
            continue
        try:
            chosen[name] = make(settings)
        except ImportError as exc:
            log.warning(
                "logger %s needs the track extra (pip install -e '.[track]'): %s; not logging", name, exc
            )
        except Exception as exc:
            log.warning("logger %s could not start (%s); not logging", name, str(exc).splitlines()[0][:300])
    return Trackers(chosen)
