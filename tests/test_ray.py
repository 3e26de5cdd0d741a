"""``hydra/launcher=ray`` (Hydra's Ray launcher) on a local Ray that the test starts, as a user starts a cluster's
head (``ray start --head``): the jobs run in Ray's worker processes and write the same files, a rerun resumes
the sweep, the report is built, and a search's trials report their epochs to the study from Ray's workers.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import results
from tests.conftest import CRASH_SEED_1, run_cli

ray = pytest.importorskip("ray", reason="needs the `ray` extra")
pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason="needs the `ray` extra")

# Seed 1 crashes while the flag file named by FLOWERBENCH_TEST_CRASH exists: Ray's workers inherit the head's
# environment, so the crash is switched off by removing the file, not by changing the environment.
CRASH_WHILE_FLAGGED = f"""
import os
if os.path.exists(os.environ.get("FLOWERBENCH_TEST_CRASH", "/nonexistent")):
{"".join("    " + line + chr(10) for line in CRASH_SEED_1.strip().splitlines())}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A Ray head on this machine with 2 CPUs, stopped with the test module; yields (address, crash flag)."""
    root = tmp_path_factory.mktemp("ray")
    hooks = root / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(CRASH_WHILE_FLAGGED)
    flag = root / "crash-seed-1"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(hooks), os.environ.get("PYTHONPATH")])),
        "FLOWERBENCH_TEST_CRASH": str(flag),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "RAY_USAGE_STATS_ENABLED": "0",
        # A head on 127.0.0.1 for this test alone: no token, so that a token of another Ray in ~/.ray does not
        # decide whether the test's clients may connect.
        "RAY_AUTH_MODE": "disabled",
    }
    port = free_port()
    temp_dir = Path("/tmp") / f"ray-fb-{os.getpid()}"  # short: Ray's socket paths must fit in 107 bytes
    ray_cli = shutil.which("ray", path=os.path.dirname(sys.executable)) or "ray"
    command = [
        ray_cli, "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
        "--num-cpus=2", "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats",
        f"--temp-dir={temp_dir}",
    ]  # fmt: skip
    head = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            if head.poll() is not None:
                pytest.skip(f"Ray cannot start here: {head.stdout.read()[-2000:]}")
            check = subprocess.run(
                [ray_cli, "status", f"--address={address}"],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            if check.returncode == 0:
                break
            time.sleep(1)
        else:
            pytest.skip("Ray's head did not answer within 90 s")
        yield address, flag, env
    finally:
        stop_process_group(head)
        shutil.rmtree(temp_dir, ignore_errors=True)


def stop_process_group(leader: subprocess.Popen, grace_s: float = 5.0) -> None:
    """End the processes of the session ``leader`` started (the head and the Ray processes it spawned, which
    can outlive it), and no others: SIGTERM, then SIGKILL to those still there after ``grace_s``."""
    group = leader.pid  # start_new_session: the session's and the group's id
    os.killpg(group, signal.SIGTERM)
    deadline = time.time() + grace_s
    while time.time() < deadline:
        leader.poll()
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            break
        time.sleep(0.5)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
    leader.wait()


def ray_args(photos: Path, root: Path, address: str, *extra: str) -> list[str]:
    return [
        "-m", "dataset.image_size=16", "train.batch_size=8", "train.epochs=1", f"dataset.path={photos}",
        f"dataset.cache_dir={root / 'cache'}", f"hydra.sweep.dir={root / 'sweep'}", *extra,
        "hydra/launcher=ray", f"hydra.launcher.ray.init.address={address}",
        "hydra.launcher.ray.remote.memory=200000000",  # tiny jobs: 2 at once whatever this machine's memory
    ]  # fmt: skip


def test_a_ray_sweep_writes_the_output_contract_reports_failures_and_resumes(ray_head, tiny_photos, tmp_path):
    address, flag, env = ray_head
    flag.touch()
    args = ray_args(tiny_photos, tmp_path, address, "seed=0,1")
    first = run_cli(*args, cwd=tmp_path, env=env)
    assert first.returncode == 1, first.stderr[-3000:]
    assert "1 run(s) failed" in first.stderr and "seed=1" in first.stderr.splitlines()[-1]
    sweep = tmp_path / "sweep"
    runs = {r["seed"]: r for r in (results.read_result(p.parent) for p in results.result_files(sweep))}
    assert (runs[0]["status"], runs[1]["status"]) == ("completed", "failed")
    assert runs[0]["config"]["backend"]["threads"] == runs[0]["environment"]["threads"] == 1  # ray num_cpus
    [job0] = sweep.glob("*seed=0*")
    assert [row["epoch"] for row in results.read_metrics(job0)] == [1]
    assert (sweep / "report" / "report.md").exists()
    assert (first.stdout + first.stderr).count("report written to") == 1  # once, in the launching process

    before = (job0 / results.RESULT_FILE).read_bytes()
    flag.unlink()
    rerun = run_cli(*args, cwd=tmp_path, env=env)  # the crash is gone: the failed job is retried
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert (job0 / results.RESULT_FILE).read_bytes() == before  # the finished one was skipped
    runs = [results.read_result(p.parent) for p in results.result_files(sweep)]
    assert sorted(r["status"] for r in runs) == ["completed", "completed"]


def test_a_search_on_ray_prunes_from_the_workers(ray_head, tiny_photos, tmp_path):
    optuna = pytest.importorskip("optuna", reason="needs the `scale` extra")
    from bench import pruning

    address, _, env = ray_head
    args = ray_args(
        tiny_photos, tmp_path, address, "hydra/sweeper=lr_wd_search_adamw", "hydra.sweeper.n_trials=2",
        "train.epochs=2", "hydra/sweeper/pruner=threshold", "hydra.sweeper.pruner.lower=1.1",
        "hydra.sweeper.pruner.n_warmup_steps=1",
    )  # fmt: skip
    result = run_cli(*args, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = tmp_path / "sweep"
    runs = [results.read_result(p.parent) for p in results.result_files(sweep)]
    assert [r["status"] for r in runs] == ["pruned", "pruned"]
    study = optuna.load_study(
        study_name="flowerbench", storage=pruning.open_storage(pruning.default_storage(sweep))
    )
    assert [t.state.name for t in study.trials] == ["PRUNED", "PRUNED"]
