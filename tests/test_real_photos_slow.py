"""Slow: the real tf_flowers photos, trained end to end (``python -m pytest -m slow``; ~2 min on 2 cores).

The fast suite only shows that training runs; this shows that it learns the real task. AdamW at the quick
preset's size (64 px, 100 photos per class, 3 epochs) reached val_accuracy 0.51-0.53 on both backends here,
against 0.2 for chance on 5 balanced classes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow
CHANCE = 0.2


@pytest.fixture(scope="module")
def sweep(real_photos, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("real")
    args = ["-m", "backend=keras,torch", "optimizer=adamw", "seed=0", "experiment=quick"]
    args += [f"dataset.path={real_photos}", f"dataset.cache_dir={root / 'cache'}"]
    result = run_cli(*args, f"hydra.sweep.dir={root / 'sweep'}", cwd=root, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "sweep"


def test_both_backends_learn_the_real_photos(sweep):
    results = [json.loads(path.read_text()) for path in sweep.glob("*/result.json")]
    assert sorted(r["backend"] for r in results) == ["keras", "torch"]
    for result in results:
        assert result["status"] == "completed"
        expected = {"source": "folder", "train_images": 400, "val_images": 100, "num_classes": 5}
        assert result["data"] == expected | {"skipped_files": 0, "test_images": 0}  # no test split by default
        assert result["final"]["val_accuracy"] > CHANCE + 0.15, result["backend"]


def test_the_report_compares_the_backends_on_the_same_photos(sweep):
    report = (sweep / "report" / "report.md").read_text()
    assert "## Summary" in report and "## Backend parity" in report
    assert (sweep / "report" / "summary.csv").exists() and (sweep / "report" / "curves_accuracy.png").exists()
