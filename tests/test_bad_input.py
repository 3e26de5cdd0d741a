"""The ways a run used to end in a traceback or mislead, each now one clear line or a run that loses nothing:
a folder of one class, splits left empty, seeds the frameworks refuse, an optimizer value its class rejects, a
full disk before and during a run, bf16 on a CPU that would emulate it, SIGTERM in a fair comparison, log lines
over the progress bar, and a result.json that did not say which CPU made its numbers."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import pty
import re
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from bench import cpu, data, preflight, results
from bench.config import validate
from bench.errors import ConfigError, DataError, DiskFullError
from bench.runner import run_experiment
from tests.conftest import make_photo_tree


def test_a_folder_of_one_class_is_refused(tmp_path, compose_config):
    make_photo_tree(tmp_path / "all")
    for extra in ("dandelion", "roses", "sunflowers", "tulips"):
        shutil.rmtree(tmp_path / "all" / extra)
    run = validate(compose_config(f"dataset.path={tmp_path / 'all'}"))
    with pytest.raises(DataError, match="holds one class folder \\(daisy\\): a classifier needs two classes"):
        data.load_dataset(run.dataset)


@pytest.mark.parametrize(
    "overrides, empty",
    [
        (["dataset.val_fraction=0.99"], "train on"),
        (["dataset.val_fraction=0.01"], "validate on"),  # 30 photos: 1 % rounds to none
        (["dataset.val_fraction=0.2", "dataset.test_fraction=0.01"], "test on"),
    ],
)
def test_a_split_left_empty_is_refused_before_any_photo_is_decoded(
    compose_config, monkeypatch, overrides, empty
):
    run = validate(compose_config(*overrides))
    monkeypatch.setattr(
        data, "decode_files", lambda *a, **k: pytest.fail("decoded before the split was checked")
    )
    with pytest.raises(DataError, match=f"leave no photo to {empty} out of 30"):
        data.load_dataset(run.dataset)


@pytest.mark.parametrize("key", ["seed", "dataset.split_seed", "protocol.sampler_seed"])
def test_a_seed_the_frameworks_refuse_is_one_line(compose_config, key):
    with pytest.raises(ConfigError, match=re.escape(f"{key} must be in [0, 2**32 - 1] = [0, 4294967295]")):
        validate(compose_config(f"{key}={2**40}"))
    validate(compose_config(f"{key}={2**32 - 1}"))  # the largest seed is fine


def test_confirmation_seeds_must_stay_in_range(compose_config):
    with pytest.raises(ConfigError, match="the last confirmation seed"):
        validate(compose_config(f"protocol.first_confirmation_seed={2**32 - 3}", "protocol.max_seeds=9"))


def test_a_value_the_optimizer_class_rejects_fails_before_any_run(compose_config):
    pytest.importorskip("torch")
    with pytest.raises(
        ConfigError, match=r"optimizer.torch: torch.optim.NAdam refused its arguments: Invalid beta"
    ):
        validate(compose_config("optimizer=nadam", "backend=torch", "optimizer.torch.betas=[2.0,3.0]"))


def test_a_full_output_disk_is_refused_before_hydra_writes(tmp_path, monkeypatch):
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=4096))
    reason = preflight.unwritable_reason(tmp_path / "sweep")
    assert reason == f"no space left under {tmp_path}: 4 KiB free"


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_disk_that_fills_during_a_run_stops_it_in_one_line_with_valid_files(
    compose_config, tmp_path, monkeypatch
):
    cfg = compose_config("train.epochs=3")
    run, resolved = (
        validate(cfg),
        json.loads(json.dumps(__import__("omegaconf").OmegaConf.to_container(cfg, resolve=True))),
    )
    real_append, calls = results.MetricsWriter.append, []

    def append_then_fill(self, record):
        calls.append(record.epoch)
        if len(calls) == 2:  # the disk fills while the second epoch's line is written: half of it lands
            self._file.write(json.dumps(record.to_dict())[:20])
            self._file.flush()
            _disk_full()
        real_append(self, record)

    monkeypatch.setattr(results.MetricsWriter, "append", append_then_fill)
    with pytest.raises(DiskFullError, match=f"no space left under {tmp_path}.*after 1 finished epoch"):
        run_experiment(run, tmp_path, resolved, [])
    assert [row["epoch"] for row in results.read_metrics(tmp_path)] == [1]  # the torn line is left out
    assert not (tmp_path / results.RESULT_FILE).exists()


def test_a_disk_that_fills_as_result_json_is_written_leaves_no_half_file(
    compose_config, tmp_path, monkeypatch
):
    cfg = compose_config()
    run = validate(cfg)
    resolved = __import__("omegaconf").OmegaConf.to_container(cfg, resolve=True)
    monkeypatch.setattr(os, "fsync", lambda fd: _disk_full() if os.fstat(fd).st_size > 1000 else None)
    with pytest.raises(DiskFullError, match="to write result.json"):
        run_experiment(run, tmp_path, resolved, [])
    assert not (tmp_path / results.RESULT_FILE).exists() and not list(tmp_path.glob(".result.json.*"))


@pytest.mark.parametrize("backend", ["keras", "torch"])
def test_bf16_on_a_cpu_without_native_bf16_is_refused_unless_allowed(compose_config, monkeypatch, backend):
    pytest.importorskip("torch" if backend == "torch" else "tensorflow")
    from bench.backend import load_backend

    monkeypatch.setattr(cpu, "flags", lambda: frozenset({"avx2", "fma"}))  # an AMD Zen 3
    run = validate(compose_config(f"backend={backend}", "train.precision=bf16", "backend.device=cpu"))
    with pytest.raises(ConfigError, match="would be emulated.*train.allow_emulated_bf16=true"):
        load_backend(backend).setup(run)
    run.train.allow_emulated_bf16 = True
    load_backend(backend).setup(run)
    monkeypatch.setattr(cpu, "flags", lambda: frozenset({"avx2", "avx512f", "avx512_bf16"}))  # a Zen 4
    cpu.check_bf16("bf16", on_cpu=True, allow_emulated=False)
    cpu.check_bf16("bf16", on_cpu=False, allow_emulated=False)  # a GPU is not asked


def test_result_json_names_the_cpu_and_its_instruction_sets(compose_config, tmp_path):
    cfg = compose_config("train.epochs=1")
    resolved = __import__("omegaconf").OmegaConf.to_container(cfg, resolve=True)
    environment = run_experiment(validate(cfg), tmp_path, resolved, [])["environment"]
    assert environment["cpu"] == cpu.model_name() and environment["cpu"] not in ("x86_64", "aarch64", "")
    if cpu.flags() is not None:
        assert isinstance(environment["cpu_instruction_sets"], list)
        assert environment["cpu_native_bf16"] == bool(cpu.flags() & cpu.NATIVE_BF16_FLAGS)


def _cli(tiny_photos: Path, root: Path, *extra: str) -> list[str]:
    multirun = ["-m"] if "-m" in extra else []  # Hydra takes the flag before the overrides
    extra = tuple(arg for arg in extra if arg != "-m")
    return [sys.executable, "-m", "bench", *multirun, "dataset.image_size=16", "train.batch_size=8",
            f"dataset.path={tiny_photos}", f"dataset.cache_dir={root / 'cache'}", *extra]  # fmt: skip


def test_sigterm_between_the_jobs_of_a_fair_comparison_exits_130(tiny_photos, tmp_path):
    args = _cli(tiny_photos, tmp_path, "-m", "experiment=fair_comparison", "optimizer=sgd_l2,adamw",
                "protocol.budget=40", "train.epochs=1", f"hydra.sweep.dir={tmp_path / 'sweep'}")  # fmt: skip
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(
        args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 240
    while len(results.result_files(tmp_path / "sweep")) < 2:
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1][-2000:]
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-2000:]
    assert "interrupted (SIGTERM)" in stderr and "rerun the same command" in stderr


def test_log_lines_go_above_the_progress_bar_on_a_terminal(tiny_photos, tmp_path):
    """On a terminal (a pseudo-terminal here) each epoch's log line starts a line of its own: tqdm clears the
    bar, writes the line, then redraws the bar, instead of the line landing after the bar's text."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 130, 0, 0))  # a 130-column terminal
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    args = _cli(tiny_photos, tmp_path, "backend=torch", "train.epochs=3", f"hydra.run.dir={tmp_path / 'run'}")
    process = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=follower, stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the pty closes when the process ends
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert process.wait(timeout=240) == 0
    screen = b"".join(chunks).decode("utf-8", "replace")
    epoch_lines = re.findall(
        r"(.{0,40})\[\d{4}-[^\]]*\]\[[^\]]*\]\[INFO\] - torch sgd_l2 seed=0 epoch (\d)/3", screen
    )
    assert [epoch for _, epoch in epoch_lines] == ["1", "2", "3"], screen[-3000:]
    for before, _ in epoch_lines:  # the log line starts a line (after the bar was cleared), never after "]"
        assert before == "" or before.endswith(("\n", "\r", "\x1b[A")), repr(before)
