"""Experiment trackers (bench/tracking.py), read back with the trackers' own readers: MLflow's client, its UI's
server and TensorBoard's event-file reader. A tiny sweep logs to both; an unreachable server costs one warning
line."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import TINY, run_cli

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("tensorboard")

from mlflow.tracking import MlflowClient  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.plugins.hparams import plugin_data_pb2  # noqa: E402


@pytest.fixture(scope="module")
def tracked_sweep(tiny_photos, tmp_path_factory) -> Path:
    """Two runs of two epochs, logged to TensorBoard and to MLflow's local store at once."""
    root = tmp_path_factory.mktemp("tracked")
    result = run_cli(
        "-m", "logger=[tensorboard,mlflow]", "optimizer=sgd_l2,adamw", f"dataset.path={tiny_photos}",
        f"dataset.cache_dir={root / 'cache'}", *TINY, f"hydra.sweep.dir={root / 'sweep'}", "report.enabled=false",
        cwd=root,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "logger" not in result.stderr.lower().replace("logger=", "")  # no tracker warning
    return root


def test_mlflow_has_one_run_per_job_with_params_metrics_status_and_result(tracked_sweep: Path) -> None:
    client = MlflowClient(f"sqlite:///{tracked_sweep / 'outputs' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(str(tracked_sweep / "sweep"))  # one experiment per sweep
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(run.data.params["optimizer.name"] for run in runs) == ["adamw", "sgd_l2"]
    for run in runs:
        assert run.info.status == "FINISHED" and run.data.tags["status"] == "completed"
        assert run.data.params["train.epochs"] == "2" and run.data.params["seed"] == "0"
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        assert [m.step for m in history] == [1, 2]
        assert run.info.run_name in {
            job.name for job in (tracked_sweep / "sweep").iterdir()
        }  # the job's name
        assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["result.json"]


def test_tensorboard_has_scalars_per_epoch_and_the_hparams_of_each_run(tracked_sweep: Path) -> None:
    jobs = sorted((tracked_sweep / "sweep").glob("*/tensorboard"))
    assert len(jobs) == 2
    seen = set()
    for log_dir in jobs:
        events = EventAccumulator(str(log_dir))
        events.Reload()
        rows = [json.loads(line) for line in (log_dir.parent / "metrics.jsonl").read_text().splitlines()]
        scalars = events.Scalars("val_accuracy")
        assert [s.step for s in scalars] == [1, 2]
        assert [s.value for s in scalars] == pytest.approx([row["val_accuracy"] for row in rows])
        content = events.PluginTagToContent("hparams")
        start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
        end = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_end_info"])
        seen.add(start.session_start_info.hparams["optimizer.name"].string_value)
        assert start.session_start_info.hparams["seed"].number_value == 0
        assert end.session_end_info.status == 1  # STATUS_SUCCESS
    assert seen == {"sgd_l2", "adamw"}


def test_an_unreachable_tracking_server_costs_one_warning_not_the_run(tiny_photos, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run_cli(
        "logger=mlflow", "logger.mlflow.tracking_uri=http://127.0.0.1:9", f"dataset.path={tiny_photos}",
        f"dataset.cache_dir={tmp_path / 'cache'}", *TINY, f"hydra.run.dir={out}", cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "result.json").read_text())["status"] == "completed"
    warnings = [line for line in (result.stdout + result.stderr).splitlines() if "logger mlflow" in line]
    assert len(warnings) == 1 and "off for this run" in warnings[0], warnings


def test_mlflow_ui_runs_from_the_same_environment_and_lists_the_sweep(tracked_sweep: Path) -> None:
    """`mlflow ui`, MLflow's server, installed with flowerbench (the `track` extra), serves the sweep's runs."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = f"sqlite:///{tracked_sweep / 'outputs' / 'mlflow.db'}"
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    log_file = (tracked_sweep / "mlflow-ui.log").open("w")
    server = subprocess.Popen(
        [str(mlflow_cli), "ui", "--backend-store-uri", store, "--host", "127.0.0.1", "--port", str(port)],
        cwd=tracked_sweep, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/api/2.0/mlflow"
    try:
        experiments = None
        deadline = time.time() + 120
        while time.time() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(
                    f"{base}/experiments/search?max_results=100", timeout=5
                ) as answer:
                    experiments = json.load(answer)["experiments"]
                break
            except OSError:
                time.sleep(1)
        assert experiments is not None, (tracked_sweep / "mlflow-ui.log").read_text()[-3000:]
        [sweep] = [e for e in experiments if e["name"] == str(tracked_sweep / "sweep")]
        query = json.dumps({"experiment_ids": [sweep["experiment_id"]]}).encode()
        request = urllib.request.Request(
            f"{base}/runs/search", data=query, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            runs = json.load(answer)["runs"]
        assert sorted(r["info"]["run_name"] for r in runs) == sorted(
            job.name
            for job in (tracked_sweep / "sweep").iterdir()
            if job.is_dir() and "optimizer=" in job.name
        )
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # its own session: the server and the workers it started
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log_file.close()
