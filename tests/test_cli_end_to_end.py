"""``python -m bench`` as a user runs it: a tiny multirun writes the output contract; reruns resume."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from bench.report import build_report
from tests.conftest import TINY, run_cli

METRIC_FIELDS = {
    "epoch", "loss", "accuracy", "val_loss", "val_accuracy", "ce_loss", "val_ce_loss",
    "epoch_time_s", "train_images_per_s",
}  # fmt: skip
RESULT_FIELDS = {
    "status", "backend", "optimizer", "seed", "final", "best", "wall_time_s",
    "train_images_per_s_median", "environment", "config", "epochs_completed",
}  # fmt: skip


@pytest.fixture(scope="module")
def sweep(tiny_photos, tmp_path_factory) -> Path:
    """2 optimizers x 2 seeds on tiny photos, 2 epochs each."""
    root = tmp_path_factory.mktemp("sweep")
    args = ["-m", "optimizer=sgd_l2,adamw", "seed=0,1", *TINY, f"dataset.path={tiny_photos}"]
    args += [
        f"dataset.cache_dir={root / 'cache'}",
        f"hydra.sweep.dir={root / 'sweep'}",
        "report.enabled=false",
    ]
    result = run_cli(*args, cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "sweep"


def job_dirs(sweep: Path) -> list[Path]:
    return sorted(p for p in sweep.iterdir() if (p / ".hydra").is_dir())


def test_multirun_writes_one_job_dir_per_override_set(sweep):
    names = [p.name for p in job_dirs(sweep)]
    # Hydra's override_dirname: every override but paths, sorted by key, so reruns find the same directory.
    expected = "dataset.image_size=16,optimizer={},seed={},train.batch_size=8,train.epochs=2"
    assert names == [expected.format(o, s) for o in ("adamw", "sgd_l2") for s in (0, 1)]


def test_each_job_writes_the_output_contract(sweep):
    for job in job_dirs(sweep):
        rows = [json.loads(line) for line in (job / "metrics.jsonl").read_text().splitlines()]
        assert [row["epoch"] for row in rows] == [1, 2]
        for row in rows:
            assert row.keys() >= METRIC_FIELDS
            assert all(math.isfinite(row[key]) for key in METRIC_FIELDS)
            assert row["loss"] >= row["ce_loss"]  # the reported loss includes any L2 penalty
        result = json.loads((job / "result.json").read_text())
        assert result.keys() >= RESULT_FIELDS
        assert result["status"] == "completed" and result["epochs_completed"] == 2
        assert result["final"]["val_accuracy"] == rows[-1]["val_accuracy"]
        assert result["backend"] == "keras" and f"optimizer={result['optimizer']}," in job.name
        assert result["environment"]["framework"] == "keras" and result["environment"]["tensorflow_version"]
        assert result["config"]["dataset"]["image_size"] == 16


def test_seeds_differ_and_the_penalty_is_only_in_l2_runs(sweep):
    results = [json.loads((p / "result.json").read_text()) for p in job_dirs(sweep)]
    final = {(r["optimizer"], r["seed"]): r["final"] for r in results}
    assert final["sgd_l2", 0] != final["sgd_l2", 1]
    adamw = final["adamw", 0]
    assert adamw["loss"] == pytest.approx(adamw["ce_loss"])
    sgd = final["sgd_l2", 0]
    assert sgd["loss"] > sgd["ce_loss"] + 1e-4


def test_report_of_a_real_sweep_pairs_seeds_and_decides(sweep, tmp_path):
    out = build_report(sweep, tmp_path / "report", margin=0.05)
    comparisons = pd.read_csv(out / "comparisons.csv", keep_default_na=False, na_values=[""])
    assert sorted(comparisons["metric"]) == ["val_accuracy", "val_ce_loss"]  # never the penalised val_loss
    assert set(comparisons["test"]) == {"paired t"} and set(comparisons["n_pairs"]) == {2}
    assert set(comparisons["decision"]) <= {"better", "equivalent", "undecided"}
    differences = pd.read_csv(out / "seed_differences.csv")
    assert sorted(differences["seed"]) == [0, 0, 1, 1]
    verdict = (out / "report.md").read_text().split("## Verdict")[1].split("\n## ")[0]
    assert "adamw" in verdict and "sgd_l2" in verdict and "±5.0 accuracy points" in verdict
    assert (out / "differences_val_accuracy.png").stat().st_size > 0
    assert (out / "time_to_target.png").stat().st_size > 0
