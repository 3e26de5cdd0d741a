"""Scale-out on the existing engines: the joblib and submitit launchers (Ray: tests/test_ray.py; the Optuna
search: tests/test_optuna_search.py).

Each launcher test is one tiny sweep in a subprocess, as a user runs it (the launchers start their own worker
processes, so nothing can be checked in-process). Unit tests cover the objective, the failure scan, the
thread share and the jobs a launcher runs at once.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig

from bench import results
from bench.config import register_configs
from bench.failures import failed_runs
from bench.resolvers import jobs_at_once, launcher_jobs_at_once, threads_per_job
from bench.search import objective
from tests.conftest import CONF_DIR, crash_seed_1_env, run_cli

pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="needs the `scale` extra")
pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="needs the `scale` extra")

TINY_ONE_EPOCH = ["dataset.image_size=16", "train.batch_size=8", "train.epochs=1"]


def sweep_args(photos: Path, root: Path, *extra: str) -> list[str]:
    paths = [
        f"dataset.path={photos}",
        f"dataset.cache_dir={root / 'cache'}",
        f"hydra.sweep.dir={root / 'sweep'}",
    ]
    return ["-m", *TINY_ONE_EPOCH, *paths, *extra]


def results_by_seed(sweep: Path) -> dict[int, dict]:
    """result.json of each job, by seed."""
    found = (results.read_result(path.parent) for path in results.result_files(sweep))
    return {result["seed"]: result for result in found}


def test_joblib_sweep_shares_cores_reports_failures_and_resumes(tiny_photos, tmp_path):
    args = sweep_args(tiny_photos, tmp_path, "seed=0,1", "hydra/launcher=parallel")  # the launcher last
    first = run_cli(*args, cwd=tmp_path, env=crash_seed_1_env(tmp_path))
    assert first.returncode == 1, first.stderr[-3000:]
    assert "1 run(s) failed" in first.stderr and "seed=1" in first.stderr.splitlines()[-1]
    runs = results_by_seed(tmp_path / "sweep")
    assert (runs[0]["status"], runs[1]["status"]) == ("completed", "failed")
    share = max(1, len(os.sched_getaffinity(0)) // 2)  # the preset runs 2 jobs at once
    assert runs[0]["config"]["backend"]["threads"] == runs[0]["environment"]["threads"] == share
    assert (first.stdout + first.stderr).count("report written to") == 1  # once, in the launching process
    assert (tmp_path / "sweep" / "report" / "summary.csv").exists()

    [job0] = (tmp_path / "sweep").glob("*seed=0*")
    before = (job0 / results.RESULT_FILE).read_bytes()
    rerun = run_cli(*args, cwd=tmp_path)  # the crash is gone: the failed job is retried, the other skipped
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert (job0 / results.RESULT_FILE).read_bytes() == before
    assert results_by_seed(tmp_path / "sweep")[1]["status"] == "completed"
    finished = {job: (job / results.RESULT_FILE).read_bytes() for job in (tmp_path / "sweep").glob("*seed=*")}

    basic = run_cli(*args[:-1], "report.enabled=false", cwd=tmp_path)  # the same sweep, default launcher
    assert basic.returncode == 0, basic.stderr[-3000:]
    assert {job: (job / results.RESULT_FILE).read_bytes() for job in finished} == finished  # all skipped


def test_submitit_local_sweep_writes_the_output_contract(tiny_photos, tmp_path):
    args = sweep_args(tiny_photos, tmp_path, "seed=0,1", "hydra/launcher=submitit_local")
    result = run_cli(*args, "hydra.launcher.cpus_per_task=1", "hydra.launcher.timeout_min=5", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = results_by_seed(tmp_path / "sweep")
    assert sorted(runs) == [0, 1] and {r["status"] for r in runs.values()} == {"completed"}
    for job in (tmp_path / "sweep").glob("*seed=*"):
        assert [row["epoch"] for row in results.read_metrics(job)] == [1]
    assert runs[0]["config"]["backend"]["threads"] == 1  # cpus_per_task
    assert any((tmp_path / "sweep" / ".submitit").rglob("*_log.out"))  # each job ran as its own process
    assert (tmp_path / "sweep" / "report" / "report.md").exists()


def write_result(directory: Path, status: str, seed: int = 0) -> Path:
    directory.mkdir(parents=True)
    result = results.RunResult(status=status, backend="keras", optimizer="adamw", seed=seed, epochs_planned=1)
    results.write_result(directory, result)
    return directory


def test_failed_runs_scans_only_failures_written_since_the_sweep_started(tmp_path):
    old = write_result(tmp_path / "old_failure", results.FAILED)
    # from an earlier command in the same directory
    os.utime(old / results.RESULT_FILE, (time.time() - 3600,) * 2)
    write_result(tmp_path / "done", results.COMPLETED)
    new = write_result(tmp_path / "nested" / "new_failure", results.FAILED)
    assert failed_runs(tmp_path, since=time.time() - 60) == [str(new)]
    assert failed_runs(tmp_path) == [str(new), str(old)]


@pytest.mark.parametrize(
    "status, val_accuracy, expected",
    [
        ("completed", 0.61, 0.61),
        ("diverged", 0.2, 0.0),
        ("completed", float("nan"), 0.0),
        ("failed", None, None),
    ],
)
def test_objective_is_never_nan(status, val_accuracy, expected):
    assert objective({"status": status, "final": {"val_accuracy": val_accuracy}}) == expected


def launcher_threads(*overrides: str) -> int | None:
    """backend.threads of the config composed with ``overrides``, as a job of that launcher resolves it."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        config = compose("config", list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(config)  # what Hydra does in every job process
    try:
        return config.backend.threads
    finally:
        HydraConfig.instance().cfg = None


def test_each_parallel_job_gets_its_share_of_the_cores():
    cores = len(os.sched_getaffinity(0))
    assert jobs_at_once(None) == 1 and jobs_at_once(3) == 3 and jobs_at_once(-1) == cores
    assert threads_per_job() is None  # outside a Hydra app (tests, notebooks): all cores
    assert launcher_threads() is None  # the basic launcher runs one job at a time: all cores
    assert launcher_threads("hydra/launcher=parallel", "hydra.launcher.n_jobs=1") == cores
    assert launcher_threads("hydra/launcher=parallel", f"hydra.launcher.n_jobs={2 * cores}") == 1
    assert launcher_threads("hydra/launcher=slurm", "hydra.launcher.cpus_per_task=3") == 3
    assert launcher_threads("hydra/launcher=ray", "hydra.launcher.ray.remote.num_cpus=3") == 3


def launcher(*overrides: str):
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", list(overrides), return_hydra_config=True).hydra.launcher


def test_a_search_asks_for_as_many_trials_as_the_launcher_runs_at_once():
    cores = len(os.sched_getaffinity(0))
    assert launcher_jobs_at_once(launcher()) == 1  # the basic launcher
    assert launcher_jobs_at_once(launcher("hydra/launcher=parallel", "hydra.launcher.n_jobs=3")) == 3
    assert launcher_jobs_at_once(launcher("hydra/launcher=slurm")) == 64  # array_parallelism
    local = launcher("hydra/launcher=submitit_local", "hydra.launcher.cpus_per_task=1")
    assert launcher_jobs_at_once(local) == cores
    assert launcher_jobs_at_once(launcher("hydra/launcher=ray")) == cores  # num_cpus 1
