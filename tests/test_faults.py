"""Sweeps survive faults: interrupts lose only the running epoch, reruns resume, failures are recorded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import results
from tests.conftest import crash_seed_1_env, run_cli

EPOCHS = 40  # long enough (a few seconds per job) to interrupt a job in the middle


def sweep_args(photos: Path, root: Path, *extra: str) -> list[str]:
    return [
        "-m", "seed=0,1,2", "dataset.image_size=16", "train.batch_size=8", f"train.epochs={EPOCHS}",
        f"dataset.path={photos}", f"dataset.cache_dir={root / 'cache'}", f"hydra.sweep.dir={root / 'sweep'}",
        "report.enabled=false", *extra,
    ]  # fmt: skip


def job(root: Path, seed: int) -> Path:
    return root / "sweep" / f"dataset.image_size=16,seed={seed},train.batch_size=8,train.epochs={EPOCHS}"


def epochs_in(run_dir: Path) -> list[int]:
    return [row["epoch"] for row in results.read_metrics(run_dir)]


def contract_bytes(run_dir: Path) -> dict[str, bytes]:
    return {name: (run_dir / name).read_bytes() for name in (results.METRICS_FILE, results.RESULT_FILE)}


def interrupt_second_job(root: Path, photos: Path, sig: signal.Signals) -> subprocess.CompletedProcess:
    """Start the 3-job sweep; once job 0 finished and job 1 wrote an epoch, send ``sig``."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    args = [sys.executable, "-m", "bench", *sweep_args(photos, root)]
    process = subprocess.Popen(
        args, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 240
    while not ((job(root, 0) / results.RESULT_FILE).exists() and len(epochs_in(job(root, 1))) >= 2):
        assert process.poll() is None and time.monotonic() < deadline, (
            "sweep ended before it could be interrupted"
        )
        time.sleep(0.02)
    process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=60)
    return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_interrupted_sweep_resumes_only_what_is_missing(tiny_photos, tmp_path, sig):
    interrupted = interrupt_second_job(tmp_path, tiny_photos, sig)
    assert interrupted.returncode != 0
    if sig == signal.SIGTERM:  # a clean stop says where the sweep is and how to finish it
        assert "interrupted (SIGTERM)" in interrupted.stderr
        assert f"hydra.sweep.dir={tmp_path / 'sweep'}" in interrupted.stderr
    finished = contract_bytes(job(tmp_path, 0))
    partial = epochs_in(job(tmp_path, 1))
    assert 2 <= len(partial) < EPOCHS and partial == list(range(1, len(partial) + 1))
    assert not (job(tmp_path, 1) / results.RESULT_FILE).exists()

    rerun = run_cli(*sweep_args(tiny_photos, tmp_path), cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert contract_bytes(job(tmp_path, 0)) == finished  # the finished job was skipped, its files untouched
    for seed in (1, 2):
        assert epochs_in(job(tmp_path, seed)) == list(range(1, EPOCHS + 1))  # restarted cleanly, no mixing
        assert results.read_result(job(tmp_path, seed))["status"] == results.COMPLETED


def test_force_reruns_finished_jobs_in_place(tiny_photos, tmp_path):
    args = [
        "dataset.image_size=16",
        "train.epochs=1",
        f"dataset.path={tiny_photos}",
        f"hydra.run.dir={tmp_path}/run",
    ]
    args.append(f"dataset.cache_dir={tmp_path / 'cache'}")
    assert run_cli(*args, cwd=tmp_path).returncode == 0
    first = results.read_result(tmp_path / "run")
    assert run_cli(*args, cwd=tmp_path).returncode == 0
    assert results.read_result(tmp_path / "run")["started_at"] == first["started_at"]
    assert run_cli(*args, "force=true", cwd=tmp_path).returncode == 0
    forced = results.read_result(tmp_path / "run")
    assert (
        forced["wall_time_s"] != first["wall_time_s"] and forced["final"] == first["final"]
    )  # deterministic


def test_divergence_ends_the_run_and_the_sweep_goes_on(tiny_photos, tmp_path):
    args = [
        "-m",
        "optimizer.lr=1e6,1e-3",
        "dataset.image_size=16",
        "train.epochs=3",
        f"dataset.path={tiny_photos}",
    ]
    args += [f"dataset.cache_dir={tmp_path / 'cache'}", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    runs = {}
    for result_file in results.result_files(tmp_path / "sweep"):
        run = results.read_result(result_file.parent)
        runs[run["config"]["optimizer"]["lr"]] = run | {"epochs": epochs_in(result_file.parent)}
    assert (runs[1e-3]["status"], runs[1e-3]["epochs"]) == ("completed", [1, 2, 3])
    diverged = runs[1e6]
    assert diverged["status"] == "diverged" and diverged["diverged_epoch"] == len(diverged["epochs"]) < 3
    report = (tmp_path / "sweep" / "report" / "report.md").read_text()
    assert "diverged" in report


def test_a_failed_job_is_recorded_the_sweep_goes_on_and_the_exit_code_says_so(tiny_photos, tmp_path):
    args = ["-m", "seed=0,1,2", "dataset.image_size=16", "train.epochs=1", f"dataset.path={tiny_photos}"]
    args += [f"dataset.cache_dir={tmp_path / 'cache'}", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    result = run_cli(*args, cwd=tmp_path, env=crash_seed_1_env(tmp_path))
    assert result.returncode == 1, result.stderr[-3000:]
    assert "1 run(s) failed" in result.stderr and "seed=1" in result.stderr.splitlines()[-1]
    runs = {}
    for result_file in results.result_files(tmp_path / "sweep"):
        run = results.read_result(result_file.parent)
        runs[run["seed"]] = run
    assert [runs[seed]["status"] for seed in (0, 1, 2)] == ["completed", "failed", "completed"]
    assert runs[1]["error"] == "RuntimeError: simulated crash in seed 1"
    assert (tmp_path / "sweep" / "report" / "summary.csv").exists()  # the report is built from the rest


MISSING_FRAMEWORK = """
import sys
sys.modules[sys.argv.pop(1)] = None  # as if the framework were not installed
from bench.__main__ import main
sys.argv = ["bench", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("backend, module", [("torch", "torch"), ("keras", "tensorflow")])
def test_a_missing_framework_is_a_one_line_error(tiny_photos, tmp_path, backend, module):
    args = [
        f"backend={backend}",
        "dataset.image_size=16",
        f"dataset.path={tiny_photos}",
        f"hydra.run.dir={tmp_path}/r",
    ]
    result = subprocess.run(
        [sys.executable, "-c", MISSING_FRAMEWORK, module, *args, f"dataset.cache_dir={tmp_path}/cache"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip().splitlines() == [result.stderr.strip().splitlines()[-1]]
        and f"backend={backend} needs" in result.stderr
    )
    assert not (tmp_path / "r").exists()


def test_an_unknown_backend_or_optimizer_is_rejected(tmp_path):
    for override, group in [("backend=jax", "backend"), ("optimizer=adagrad", "optimizer")]:
        result = run_cli(override, f"hydra.run.dir={tmp_path}/r", cwd=tmp_path)
        assert result.returncode != 0 and f"Could not find '{group}/" in result.stderr
        assert "Traceback" not in result.stderr and not (tmp_path / "r").exists()
