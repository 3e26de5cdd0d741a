"""Step timing: the statistics' definitions, FLOPs per image by hand, and ``python -m bench.throughput`` end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from bench import data as data_lib
from bench import throughput
from bench.architecture import CNNSpec
from bench.config import CONFIG_DIR, register_configs, validate
from bench.timing import StepTimer, ThroughputStats

# 16 px, 4 images a step, 1 thread (steady on a busy machine), matmuls big enough to be compute-bound.
TINY = [
    "dataset.image_size=16", "train.batch_size=4", "backend.threads=1",
    "throughput.warmup_steps=1", "throughput.timed_steps=3", "throughput.matmul_size=256",
]  # fmt: skip
STATS_FIELDS = {"images_per_s", "iqr", "min", "max", "n_steps", "aggregate_images_per_s", "median_step_s"}


def run_throughput(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-m", "bench.throughput", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_stats_of_known_step_times():
    # Batches of 10 images in 0.5, 0.25, 1 and 0.5 s: rates 20, 40, 10, 20 images/s.
    stats = ThroughputStats.from_step_times([0.5, 0.25, 1.0, 0.5], 10)
    assert stats.images_per_s == 20
    # Inclusive (numpy-style) quartiles of 10, 20, 20, 40: q1 = 10 + 0.75 * 10, q3 = 20 + 0.25 * 20.
    assert stats.iqr == pytest.approx(25 - 17.5)
    assert (stats.min, stats.max, stats.n_steps) == (10, 40, 4)
    assert stats.aggregate_images_per_s == pytest.approx(40 / 2.25)  # all images / all time
    assert stats.median_step_s == 0.5


def test_stats_take_one_image_count_per_step():
    stats = ThroughputStats.from_step_times([1.0, 1.0, 0.25], [32, 32, 8])  # a smaller last batch
    assert stats.images_per_s == stats.min == stats.max == 32
    assert stats.iqr == 0
    with pytest.raises(ValueError, match="3 step times but 2"):
        ThroughputStats.from_step_times([1.0, 1.0, 0.25], [32, 32])
    with pytest.raises(ValueError, match="no step times"):
        ThroughputStats.from_step_times([], 32)


def test_step_timer_times_the_gaps_between_steps():
    clock = iter([10.0, 10.5, 11.5, 11.75])  # made, then the end of each of three steps
    timer = StepTimer(clock=lambda: next(clock))
    for _ in range(3):
        timer(8)
    assert timer.step_times == [0.5, 1.0, 0.25]
    assert timer.images == [8, 8, 8]
    assert timer.stats().images_per_s == 16


def test_flops_per_image_by_hand():
    spec = CNNSpec(
        image_size=8, channels=3, num_classes=5, filters=(4, 6), kernel_size=3, dense_units=7, dropout=0
    )
    conv0 = 2 * (8 * 8) * (3 * 3 * 3) * 4  # 'same' padding: one 3x3x3 dot product per output pixel and filter
    conv1 = 2 * (4 * 4) * (3 * 3 * 4) * 6  # after a 2x2 max-pool
    dense = 2 * (2 * 2 * 6) * 7  # the flattened 2x2x6 map into 7 units
    logits = 2 * 7 * 5
    assert spec.forward_flops_per_image() == conv0 + conv1 + dense + logits == 21_142
    assert spec.train_flops_per_image() == 3 * 21_142


def test_synthetic_batches_have_the_dataset_classes(tmp_path):
    """The logits layer's size comes from the dataset, found without decoding: a folder's class folders."""
    for flower in ("tulips", "daisy", "roses"):
        (tmp_path / flower).mkdir()
        (tmp_path / flower / "1.jpg").write_bytes(b"never decoded")
    register_configs()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        run = validate(compose("config", [f"dataset.path={tmp_path}", "dataset.image_size=16"]))
    assert throughput.dataset_classes(run.dataset) == ["daisy", "roses", "tulips"]
    spec = throughput.synthetic_spec(run)
    assert (spec.num_classes, spec.image_size, spec.channels) == (3, 16, 3)
    images, labels = throughput.synthetic_images(60, spec, seed=0)
    assert images.shape == (60, 16, 16, 3) and images.dtype == np.uint8 and labels.dtype == np.int32
    assert set(labels.tolist()) == {0, 1, 2}


def test_tfds_classes_come_from_its_metadata_without_a_download(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    register_configs()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        run = validate(compose("config", ["dataset.source=tfds", f"dataset.data_dir={tmp_path}"]))
    names = throughput.dataset_classes(run.dataset)
    assert sorted(names) == ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
    assert sorted(names) == sorted(data_lib.TFDS_CLASSES)  # the fallback below agrees with the metadata
    assert list(tmp_path.iterdir()) == []  # nothing downloaded or prepared


def test_tfds_classes_without_tensorflow_datasets(monkeypatch, tmp_path):
    monkeypatch.setitem(
        sys.modules, "tensorflow_datasets", None
    )  # import fails, as on a torch-only GPU image
    register_configs()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        run = validate(compose("config", ["dataset.source=tfds", f"dataset.data_dir={tmp_path}"]))
    assert throughput.dataset_classes(run.dataset) == list(data_lib.TFDS_CLASSES)


@pytest.mark.parametrize("backend", ["keras", "torch"])
def test_cli_writes_throughput_json(backend, tmp_path):
    if backend == "torch":
        pytest.importorskip("torch")
    out = tmp_path / "run"
    result = run_throughput(f"backend={backend}", *TINY, f"hydra.run.dir={out}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "throughput.json").read_text())
    assert (report["backend"], report["image_size"], report["batch_size"], report["threads"]) == (
        backend,
        16,
        4,
        1,
    )
    for key in ("suite", "bare_loop"):
        assert report[key].keys() == STATS_FIELDS
        assert report[key]["n_steps"] == 3
        assert 0 < report[key]["min"] <= report[key]["images_per_s"] <= report[key]["max"]
    assert (report["bare_loop_backend"], report["bare_loop_precision"]) == (backend, "fp32")
    assert report["speedup"] == pytest.approx(
        report["suite"]["images_per_s"] / report["bare_loop"]["images_per_s"]
    )
    assert report["runner_overhead"] == pytest.approx(1 - report["speedup"])
    assert report["matmul_gflops"]["fp32"] > 0
    assert (
        report["train_flops_per_image"] == 3 * 5_866_752
    )  # the default CNN (64, 64, 128) at 16 px, 5 classes
    assert 0 < report["fraction_of_fp32_peak"] < 1.5
    assert report["environment"]["framework"] == backend
    assert "img/s median" in result.stdout


def test_cli_times_another_backends_bare_loop_beside_the_suite(tmp_path):
    """The issue-16 measurement in one command: torch bf16 against the seed blog's Keras fit in fp32."""
    pytest.importorskip("torch")
    out = tmp_path / "run"
    reference = ["throughput.reference_backend=keras", "throughput.reference_precision=fp32"]
    result = run_throughput(
        "backend=torch", "train.precision=bf16", *reference, *TINY, f"hydra.run.dir={out}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "throughput.json").read_text())
    assert (report["backend"], report["precision"]) == ("torch", "bf16")
    assert (report["bare_loop_backend"], report["bare_loop_precision"]) == ("keras", "fp32")
    assert report["bare_loop"]["n_steps"] == 3
    assert report["speedup"] == pytest.approx(
        report["suite"]["images_per_s"] / report["bare_loop"]["images_per_s"]
    )
    assert report["runner_overhead"] is None  # the loops train different things: no overhead to speak of
    assert report["environment"]["framework"] == "torch"
    assert "keras fp32 bare loop" in result.stdout and "suite / bare loop:" in result.stdout


def test_cli_bad_config_is_one_line_and_leaves_nothing(tmp_path):
    out = tmp_path / "run"
    result = run_throughput("optimizer.lr=-1", f"hydra.run.dir={out}", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "flowerbench: error: optimizer.lr must be > 0, got -1.0"
    assert not out.exists()
