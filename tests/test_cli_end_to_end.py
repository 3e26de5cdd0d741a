"""``python -m bench`` as a user runs it: a tiny multirun writes the output contract; reruns resume."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest

from bench import cpu, results
from bench.report import build_report
from tests.conftest import CLASSES, TINY, run_cli

# Every line has these; the test split's metrics only the last line of a run with a test split.
METRIC_FIELDS = [
    f.name for f in dataclasses.fields(results.EpochRecord) if f.name not in results.TEST_METRICS
]
RESULT_FIELDS = [field.name for field in dataclasses.fields(results.RunResult)]
DATA_FIELDS = [field.name for field in dataclasses.fields(results.DataInfo)]
README = Path(__file__).resolve().parent.parent / "README.md"


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
        rows = results.read_metrics(job)
        assert [row["epoch"] for row in rows] == [1, 2]
        for row in rows:
            assert list(row) == METRIC_FIELDS
            assert all(math.isfinite(row[key]) for key in METRIC_FIELDS)
            assert row["loss"] >= row["ce_loss"]  # the reported loss includes any L2 penalty
        result = results.read_result(job)
        assert list(result) == RESULT_FIELDS
        assert result["status"] == "completed" and result["epochs_completed"] == 2
        assert result["final"]["val_accuracy"] == rows[-1]["val_accuracy"]
        assert result["backend"] == "keras" and f"optimizer={result['optimizer']}," in job.name
        assert result["environment"]["framework"] == "keras" and result["environment"]["tensorflow_version"]
        assert result["config"]["dataset"]["image_size"] == 16


def test_seeds_differ_and_the_penalty_is_only_in_l2_runs(sweep):
    found = [results.read_result(p) for p in job_dirs(sweep)]
    final = {(r["optimizer"], r["seed"]): r["final"] for r in found}
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


def documented_fields() -> tuple[list[str], list[str]]:
    """The names README's "Output files" section gives the fields of metrics.jsonl and of result.json, in order."""
    section = README.read_text(encoding="utf-8").split("## Output files")[1].split("\n## ")[0]
    metrics, result = section.split("**`result.json`**")
    metric_names = [
        name
        for line in metrics.splitlines()
        if line.startswith("| `")
        for name in re.findall(r"`(\w+)`", line.split("|")[1])
    ]
    result_names = re.findall(r"`(\w+)`", result.split("Read them with anything")[0])
    return metric_names, result_names


def test_a_real_runs_files_hold_exactly_the_fields_readme_documents(sweep):
    metric_names, result_names = documented_fields()
    assert metric_names == METRIC_FIELDS + list(results.TEST_METRICS)
    statuses = {results.COMPLETED, results.DIVERGED, results.FAILED, results.PRUNED}
    cpu_fields = set(cpu.description())  # environment's cpu, cpu_instruction_sets, cpu_native_bf16
    nested = {*results.FINAL_METRICS, *results.TEST_METRICS, *results.BEST_KEYS, *DATA_FIELDS, *cpu_fields}
    assert cpu_fields <= set(result_names)
    assert [name for name in result_names if name in RESULT_FIELDS] == RESULT_FIELDS
    assert set(result_names) <= {*RESULT_FIELDS, *statuses, *nested}
    assert {"num_classes", "skipped_files"} <= set(result_names)
    for job in job_dirs(sweep):
        assert (job / results.CONFIG_FILE).is_file()
        rows = results.read_metrics(job)
        assert all(list(row) == METRIC_FIELDS for row in rows)  # no test split in this sweep
        records = [results.EpochRecord(**row) for row in rows]
        assert all(isinstance(r.epoch, int) and isinstance(r.steps, int) for r in records)
        result = results.read_result(job)
        assert [name for name in result_names if name in result] == list(result) == RESULT_FIELDS
        assert result["status"] in statuses
        assert cpu_fields <= set(result["environment"])
        assert list(result["final"]) == list(results.FINAL_METRICS)
        assert list(result["best"]) == list(results.BEST_KEYS)
        data = results.DataInfo(**result["data"])
        assert (data.source, data.num_classes, data.skipped_files) == ("folder", len(CLASSES), 0)
        assert data.train_images + data.val_images == 6 * len(CLASSES)  # conftest's tiny tree
        rebuilt = results.RunResult(**(result | {"data": data}))
        assert json.loads(json.dumps(rebuilt.to_dict())) == result  # the layout is the dataclasses'
        assert result["final"] == {key: rows[-1][key] for key in results.FINAL_METRICS}
        assert result["epochs_completed"] == len(rows) == result["epochs_planned"]


def test_the_console_of_a_sweep_reads_cleanly(tiny_photos, tmp_path):
    """No framework start-up lines that look like errors, a progress line per job, the verdict at the end."""
    sweep = tmp_path / "sweep"
    result = run_cli(
        "-m", "optimizer=sgd_l2,adamw", "seed=0,1", f"dataset.path={tiny_photos}",
        f"dataset.cache_dir={tmp_path / 'cache'}", *TINY, f"hydra.sweep.dir={sweep}", cwd=tmp_path,
        env={"TF_CPP_MIN_LOG_LEVEL": "0"},  # TensorFlow as chatty as it gets: the filter must do the work
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    console = result.stdout + result.stderr
    for noise in ("E0000", "I0000", "failed call to cuInit", "All log messages before absl", "retracing"):
        assert noise not in console, noise
    progress = [line.split("] - ")[-1] for line in console.splitlines() if "] - sweep: " in line]
    assert (
        progress[0].startswith("sweep: 1/4 jobs (1 completed); ETA ")
        and progress[-1] == "sweep: 4/4 jobs (4 completed)"
    )
    assert "Verdict (final val_accuracy):" in result.stdout and "adamw vs sgd_l2" in result.stdout
    assert f"Full report: {sweep / 'report' / 'report.html'}" in result.stdout
