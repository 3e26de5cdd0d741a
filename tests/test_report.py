"""Tests of the analysis stage (bench.report, bench.callbacks) on hand-made run directories.

``write_run`` writes a run directory the way the runner does: the real config composed from conf/, the records
and writers of the output contract (bench/results.py), so the tests know every number the report should print.
"""

from __future__ import annotations

import copy
import functools
import logging
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from scipy import stats
from statsmodels.stats.multitest import multipletests

from bench import results
from bench.callbacks import ReportCallback
from bench.config import OPTIMIZER_SCHEMAS, register_configs
from bench.report import build_report, load_runs
from bench.report.__main__ import main
from bench.report.render import markdown_table
from tests.conftest import CONF_DIR


@functools.cache
def composed_config(optimizer: str) -> dict:
    """The resolved config of conf/config.yaml with ``optimizer``: the runner's own, not a copy of it."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"optimizer={optimizer}"])
    return OmegaConf.to_container(cfg, resolve=True)


def make_config(backend: str, optimizer: str, seed: int, epochs: int, **optimizer_overrides: Any) -> dict:
    """A resolved job config as the runner records it (conf/config.yaml after composition)."""
    config = copy.deepcopy(composed_config(optimizer))
    config["backend"] |= {"name": backend, "threads": 2, "device": "cpu"}
    config["optimizer"] |= optimizer_overrides
    # Locations: the cache differs per backend and must not split groups.
    config["dataset"] |= {"path": "/data/flower_photos", "cache_dir": f"/tmp/cache/{backend}"}
    config["train"]["epochs"] = epochs
    config["seed"] = seed
    return config


def epoch_record(epoch: int, val_accuracy: float, images_per_s: float) -> results.EpochRecord:
    """One metrics.jsonl line; the other metrics follow from val_accuracy so that tests know them."""
    return results.EpochRecord(
        epoch=epoch,
        loss=2.0 - val_accuracy,
        accuracy=val_accuracy + 0.1,
        val_loss=1.5 - val_accuracy,
        val_accuracy=val_accuracy,
        ce_loss=1.9 - val_accuracy,
        val_ce_loss=1.5 - val_accuracy,
        lr=1e-3,
        epoch_time_s=2936 / images_per_s,
        train_time_s=2900 / images_per_s,
        eval_time_s=1.0,
        train_images_per_s=images_per_s,
        step_images_per_s_median=images_per_s,
        train_images=2936,
        steps=92,
    )


def make_result(
    config: dict, status: str, records: list[results.EpochRecord], error: str | None, overrides: list[str]
) -> results.RunResult:
    """result.json of a run that ended with ``status`` after the epochs ``records``."""
    return results.RunResult(
        status=status,
        backend=config["backend"]["name"],
        optimizer=config["optimizer"]["name"],
        seed=config["seed"],
        epochs_planned=config["train"]["epochs"],
        backend_parity=config["optimizer"]["name"] in OPTIMIZER_SCHEMAS,  # as the runner: False for a user's
        diverged_epoch=len(records) if status == results.DIVERGED else None,
        error=error,
        **results.summarize(records),
        wall_time_s=100.0 + config["seed"],
        data=results.DataInfo(
            source="folder", train_images=2936, val_images=734, num_classes=5, skipped_files=0
        ),
        config=config,
        overrides=overrides,
    )


def write_run(
    root: Path,
    *,
    backend: str = "keras",
    optimizer: str = "adamw",
    seed: int = 0,
    final_val_accuracy: float = 0.6,
    epochs: int = 3,
    finished: int | None = None,
    status: str | None = results.COMPLETED,
    speeds: list[float] | None = None,
    error: str | None = None,
    **optimizer_overrides: Any,
) -> Path:
    """Write one run directory under ``root``, named by its overrides like a Hydra job.

    val_accuracy rises by 0.1 per epoch up to ``final_val_accuracy`` at the last finished epoch.

    Args:
        epochs: the planned number of epochs (``train.epochs``).
        finished: epochs written to metrics.jsonl (default: all planned).
        status: result.json's status, or None for a killed run (metrics.jsonl but no result.json).
        speeds: train images/s of each finished epoch (default 30 each).
        optimizer_overrides: optimizer settings to change, e.g. ``lr=0.01``.
    """
    finished = epochs if finished is None else finished
    overrides = [f"backend={backend}", f"optimizer={optimizer}", f"seed={seed}"]
    overrides += [f"optimizer.{key}={value}" for key, value in optimizer_overrides.items()]
    run_dir = root / ",".join(overrides)
    (run_dir / results.CONFIG_FILE).parent.mkdir(parents=True)
    config = make_config(backend, optimizer, seed, epochs, **optimizer_overrides)
    (run_dir / results.CONFIG_FILE).write_text(yaml.safe_dump(config))
    speeds = speeds or [30.0] * finished
    records = [
        epoch_record(e, final_val_accuracy - 0.1 * (finished - e), speeds[e - 1])
        for e in range(1, finished + 1)
    ]
    if status == results.DIVERGED:
        records[-1].loss, records[-1].val_loss, records[-1].val_accuracy = float("nan"), float("inf"), 0.2
    with results.MetricsWriter(run_dir) as writer:
        for record in records:
            writer.append(record)
    if status is not None:
        results.write_result(run_dir, make_result(config, status, records, error, overrides))
    return run_dir


T_975_DF2 = stats.t.ppf(0.975, 2)
SPEEDS = [5.0, 20.0, 40.0]  # epoch 1 is slow (warm-up) and must not count in timing


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A keras + torch sweep with three seeds of three optimizers on keras, and every kind of trouble."""
    root = tmp_path_factory.mktemp("sweep")
    for seed, (adamw, adam_l2, sgd) in enumerate([(0.5, 0.5, 0.3), (0.6, 0.55, 0.35), (0.7, 0.6, 0.4)]):
        write_run(root, optimizer="adamw", seed=seed, final_val_accuracy=adamw, speeds=SPEEDS)
        write_run(root, optimizer="adam_l2", seed=seed, final_val_accuracy=adam_l2)
        write_run(root, optimizer="sgd_l2", seed=seed, final_val_accuracy=sgd)
    write_run(root, optimizer="sgd_l2", seed=3, status="diverged", finished=2, error="Traceback\nloss is nan")
    killed = write_run(root, optimizer="adamw", seed=3, status=None, finished=1, final_val_accuracy=0.99)
    with open(killed / results.METRICS_FILE, "a") as handle:
        handle.write('{"epoch": 2, "loss": 0.')  # the writer died mid-line
    write_run(root, backend="torch", optimizer="adamw", seed=0, final_val_accuracy=0.62)
    write_run(root, backend="torch", optimizer="sgd_l2", seed=0, final_val_accuracy=0.41)
    return root


@pytest.fixture(scope="module")
def report(sweep: Path) -> Path:
    return build_report([sweep])


@pytest.fixture(scope="module")
def summary(report: Path) -> pd.DataFrame:
    return pd.read_csv(report / "summary.csv").set_index(["backend", "optimizer"])


def test_report_folder_has_every_file(report: Path, sweep: Path) -> None:
    assert report == sweep / "report"
    expected = ["runs.csv", "summary.csv", "comparisons.csv", "timing.csv", "report.md", "report.html"]
    expected += ["seed_differences.csv", "flags.csv", "time_to_target.csv", "target_summary.csv"]
    expected += ["curves_ce_loss.png", "curves_accuracy.png", "timing.png", "differences_val_accuracy.png"]
    expected += ["differences_val_ce_loss.png", "time_to_target.png", "performance_profile.png"]
    for name in expected:
        assert (report / name).stat().st_size > 0, name


def test_a_rebuild_leaves_no_figure_or_table_of_the_earlier_build(tmp_path: Path) -> None:
    both, one = tmp_path / "both", tmp_path / "one"
    for seed, accuracy in enumerate((0.55, 0.6, 0.62)):
        write_run(both, optimizer="adamw", seed=seed, final_val_accuracy=accuracy)
        write_run(both, optimizer="sgd_l2", seed=seed, final_val_accuracy=accuracy - 0.1)
        write_run(one, optimizer="adamw", seed=seed, final_val_accuracy=accuracy)
    out = tmp_path / "report"
    build_report([both], out)
    assert (out / "differences_val_accuracy.png").is_file()
    (out / "notes.txt").write_text("mine")
    build_report([one], out)  # a single optimizer: nothing to compare, no differences figure
    assert not (out / "differences_val_accuracy.png").exists() and (out / "curves_accuracy.png").is_file()
    assert (out / "notes.txt").read_text() == "mine"  # only the report's own kinds of file are cleared


def test_runs_csv_is_tidy_with_varying_settings_only(report: Path) -> None:
    runs = pd.read_csv(report / "runs.csv")
    assert list(runs.columns[:5]) == ["run_dir", "status", "backend", "optimizer", "seed"]
    varying = {"optimizer.lr", "optimizer.momentum", "dataset.cache_dir"}
    assert varying | {"epoch", "val_accuracy", "train_images_per_s"} <= set(runs.columns)
    assert "model.dropout" not in runs.columns  # the same in every run
    assert len(runs) == 9 * 3 + 2 + 1 + 2 * 3  # finished epochs; the killed run's torn line is dropped
    killed = runs[runs["status"] == "incomplete"]
    assert killed["epoch"].tolist() == [1] and killed["epochs_planned"].tolist() == [3]


def test_summary_mean_sd_and_t_interval(summary: pd.DataFrame) -> None:
    adamw = summary.loc[("keras", "adamw")]
    assert adamw["n_seeds"] == 3
    assert adamw["val_accuracy_mean"] == pytest.approx(0.6)
    assert adamw["val_accuracy_sd"] == pytest.approx(0.1)
    half = T_975_DF2 * 0.1 / math.sqrt(3)
    assert adamw["val_accuracy_ci_low"] == pytest.approx(0.6 - half)
    assert adamw["val_accuracy_ci_high"] == pytest.approx(0.6 + half)
    assert adamw["val_loss_mean"] == pytest.approx(1.5 - 0.6)
    assert adamw["best_epoch_mean"] == 3
    assert "dataset.cache_dir" not in summary.columns  # differs per backend but is only a location


def test_diverged_and_incomplete_runs_are_counted_not_averaged(summary: pd.DataFrame, report: Path) -> None:
    sgd = summary.loc[("keras", "sgd_l2")]
    assert (sgd["n_seeds"], sgd["n_diverged"]) == (3, 1)
    assert sgd["val_accuracy_mean"] == pytest.approx(0.35)
    adamw = summary.loc[("keras", "adamw")]
    assert (adamw["n_seeds"], adamw["n_incomplete"]) == (3, 1)
    text = (report / "report.md").read_text()
    problems = text.split("## Runs not averaged")[1].split("##")[0]
    assert "| diverged | keras | sgd_l2 | 3 | 2 / 3 | 2 | loss is nan |" in problems
    assert "| incomplete | keras | adamw | 3 | 1 / 3 | unset | — |" in problems


def test_single_seed_has_no_interval(summary: pd.DataFrame) -> None:
    torch_adamw = summary.loc[("torch", "adamw")]
    assert torch_adamw["n_seeds"] == 1
    assert torch_adamw["val_accuracy_mean"] == pytest.approx(0.62)
    assert math.isnan(torch_adamw["val_accuracy_sd"]) and math.isnan(torch_adamw["val_accuracy_ci_low"])
    assert torch_adamw["note"] == "n=1, no CI"


def test_comparisons_are_paired_tests_within_each_backend(report: Path) -> None:
    comparisons = pd.read_csv(report / "comparisons.csv", keep_default_na=False, na_values=[""])
    # Cross-entropy, never the penalised val_loss: sgd_l2's includes its L2 term, adamw's has none.
    assert sorted(comparisons["metric"].unique()) == ["val_accuracy", "val_ce_loss"]
    accuracy = comparisons[comparisons["metric"] == "val_accuracy"].set_index(["backend", "arm_a", "arm_b"])
    assert len(accuracy) == 3 + 1  # keras: 3 pairs of optimizers; torch: 1; never across backends
    pair = accuracy.loc[("keras", "adamw", "sgd_l2")]
    # Seeds 0-2 ran on both arms: paired; sgd_l2's diverged seed 3 is in neither arm's values.
    expected = stats.ttest_rel([0.5, 0.6, 0.7], [0.3, 0.35, 0.4])
    assert (pair["test"], pair["n_pairs"], pair["seeds_left_out"]) == ("paired t", 3, 0)
    assert pair["diff"] == pytest.approx(0.25)
    assert pair["p_value"] == pytest.approx(expected.pvalue)
    assert pair["ci_low"] == pytest.approx(expected.confidence_interval(0.95).low)
    keras = accuracy.loc["keras"]
    # adam_l2 - sgd_l2 is exactly 0.2 on every seed: no spread, no test, so Holm runs over the two others
    assert keras.loc[("adam_l2", "sgd_l2"), "reason"] == "no spread across seeds: no test"
    tested = keras.dropna(subset=["p_value"])
    assert tested["p_holm"].to_numpy() == pytest.approx(multipletests(tested["p_value"], method="holm")[1])
    assert (pair["decision"], pair["better"]) == ("better", "adamw")
    assert accuracy.loc[("keras", "adam_l2", "adamw"), "decision"] == "undecided"
    single = accuracy.loc[("torch", "adamw", "sgd_l2")]
    assert (single["test"], single["decision"]) == ("none", "undecided") and math.isnan(single["p_value"])
    loss = comparisons[comparisons["metric"] == "val_ce_loss"].set_index(["backend", "arm_a", "arm_b"])
    assert loss.loc[("keras", "adamw", "sgd_l2"), "better"] == "adamw"  # lower cross-entropy wins


def test_verdict_states_decisions_in_words(report: Path) -> None:
    verdict = (report / "report.md").read_text().split("## Verdict")[1].split("\n## ")[0]
    assert "**keras.** " in verdict and "**torch.** " in verdict
    assert "adamw beats sgd_l2 by 25.0 points (paired t, 3 seeds, 95 % CI [12.6, 37.4]" in verdict
    assert "adam_l2 vs adamw is undecided (adam_l2 − adamw = -5.0 points, paired t, 3 seeds" in verdict
    assert "seeds per arm would likely decide it" in verdict
    assert "adamw vs sgd_l2 is undecided: at least 2 seeds per arm are needed for a test." in verdict
    assert "2 run(s) diverged, failed or did not finish and are left out" in verdict
    assert "sgd_l2 seeds left out" in verdict.replace("adamw, sgd_l2", "sgd_l2")


def test_time_to_target_counts_censored_runs(report: Path) -> None:
    targets = pd.read_csv(report / "target_summary.csv").set_index(["stratum", "arm"])
    # keras' best arm is adamw (mean final 0.6): target 0.57, reached at epoch 3 by seeds 1 and 2 only.
    adamw = targets.loc[("keras", "adamw")]
    assert adamw["target"] == pytest.approx(0.57)
    assert (adamw["n_runs"], adamw["n_reached"], adamw["epoch_median"]) == (3, 2, 3)
    sgd = targets.loc[("keras", "sgd_l2")]
    assert sgd["n_reached"] == 0 and math.isnan(sgd["epoch_median"])  # censored, not dropped
    assert "| keras | sgd_l2 | 57.0 | 0 / 3 | not reached |" in (report / "report.md").read_text()


def test_timing_leaves_out_epoch_one(report: Path) -> None:
    timing = pd.read_csv(report / "timing.csv").set_index(["backend", "optimizer"])
    adamw = timing.loc[("keras", "adamw")]
    assert (adamw["n_runs"], adamw["n_epochs"]) == (3, 6)  # the killed run only has its warm-up epoch
    assert adamw["train_images_per_s_median"] == pytest.approx(np.median([20, 40] * 3))
    assert (adamw["train_images_per_s_min"], adamw["train_images_per_s_max"]) == (20, 40)
    assert adamw["train_images_per_s_q25"] == pytest.approx(20)
    assert adamw["wall_time_s_mean"] == pytest.approx(101)  # 100 + seed over the completed seeds 0, 1, 2


def test_parity_pairs_each_experiment_run_on_both_backends(report: Path) -> None:
    parity = pd.read_csv(report / "parity.csv").set_index("optimizer")
    assert sorted(parity.index) == ["adamw", "sgd_l2"]  # adam_l2 ran on keras only: nothing to pair
    adamw = parity.loc["adamw"]  # keras ends at val_accuracy 0.5, torch at 0.62, 0.12 apart every epoch
    assert (adamw["seed"], adamw["epochs"], adamw["dropout"]) == (0, 3, 0.2)
    # loss = 2.0 - val_accuracy and val_loss = 1.5 - val_accuracy: relative to keras' smallest value
    assert adamw["loss_max_rel_diff"] == pytest.approx(0.12 / 1.5)
    assert adamw["val_loss_max_rel_diff"] == pytest.approx(0.12 / 1.0)
    assert adamw["val_accuracy_max_abs_diff"] == pytest.approx(0.12)
    assert "## Backend parity" in (report / "report.md").read_text()


def test_no_parity_table_without_both_backends(tmp_path: Path) -> None:
    for seed, accuracy in enumerate((0.55, 0.6)):
        write_run(tmp_path, optimizer="adamw", seed=seed, final_val_accuracy=accuracy)
        write_run(tmp_path, optimizer="sgd_l2", seed=seed, final_val_accuracy=accuracy - 0.1)
    out = build_report([tmp_path])
    assert not (out / "parity.csv").exists()
    assert "Backend parity" not in (out / "report.md").read_text()


def test_a_users_optimizer_is_not_paired_across_backends(tmp_path: Path) -> None:
    """Each backend ran its own NAdam class: not a parity check, and the report says why it is missing."""
    for backend in ("keras", "torch"):
        write_run(tmp_path, backend=backend, optimizer="nadam", final_val_accuracy=0.5)
        write_run(tmp_path, backend=backend, optimizer="adamw", final_val_accuracy=0.6)
    out = build_report([tmp_path])
    assert list(pd.read_csv(out / "parity.csv")["optimizer"]) == ["adamw"]
    assert "Not at parity by design: nadam" in (out / "report.md").read_text()
    assert set(pd.read_csv(out / "runs.csv")["backend_parity"]) == {False, True}  # nadam, adamw


def test_html_is_self_contained(report: Path) -> None:
    html = (report / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == len(list(report.glob("*.png")))
    assert 'src="curves' not in html and "<table>" in html
    markdown = (report / "report.md").read_text()
    assert "](curves_accuracy.png)" in markdown and "](timing.png)" in markdown


def test_two_learning_rates_are_never_averaged(tmp_path: Path) -> None:
    for seed in range(2):
        write_run(tmp_path, optimizer="adamw", seed=seed, lr=3e-4, final_val_accuracy=0.6 + 0.01 * seed)
        write_run(tmp_path, optimizer="adamw", seed=seed, lr=1e-2, final_val_accuracy=0.3 + 0.02 * seed)
    # model.dropout is shared by all runs: asking to group by it splits nothing and is no error
    out = build_report(tmp_path, tmp_path / "out", group_by=["backend", "optimizer.lr", "model.dropout"])
    summary = pd.read_csv(out / "summary.csv").set_index("optimizer.lr")
    assert summary["n_seeds"].to_dict() == {3e-4: 2, 1e-2: 2}
    assert summary.loc[3e-4, "val_accuracy_mean"] == pytest.approx(0.605)
    assert "adamw, lr=0.0003 beats adamw, lr=0.01 by 29.5 points" in (out / "report.md").read_text()


def test_several_paths_are_merged(tmp_path: Path) -> None:
    keras_sweep, torch_sweep = tmp_path / "day1", tmp_path / "day2"
    for seed in range(2):
        write_run(keras_sweep, backend="keras", seed=seed, final_val_accuracy=0.6)
        write_run(torch_sweep, backend="torch", seed=seed, final_val_accuracy=0.5)
    assert main([str(keras_sweep), str(torch_sweep), "--metrics", "val_accuracy"]) == 0
    summary = pd.read_csv(keras_sweep / "report" / "summary.csv")
    means = summary.set_index("backend")["val_accuracy_mean"]
    assert means.to_dict() == pytest.approx({"keras": 0.6, "torch": 0.5})
    assert sorted(load_runs([keras_sweep, torch_sweep])["backend"].unique()) == ["keras", "torch"]


def test_one_run_of_one_epoch(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, epochs=1, final_val_accuracy=0.4)
    out = build_report(run_dir)
    assert out == run_dir / "report"
    summary = pd.read_csv(out / "summary.csv")
    assert summary.loc[0, "val_accuracy_mean"] == pytest.approx(0.4)
    assert summary.loc[0, "note"] == "n=1, no CI"
    timing = pd.read_csv(out / "timing.csv")
    assert timing.loc[0, "n_epochs"] == 1  # a one-epoch run keeps its only epoch
    assert (out / "curves_ce_loss.png").exists() and (out / "timing.png").exists()


def test_sweep_in_progress_lists_runs_without_averaging(tmp_path: Path) -> None:
    write_run(tmp_path, seed=0, status=None, finished=1)  # killed, or still running
    started = write_run(tmp_path, seed=1, status=None, finished=0)
    (started / results.METRICS_FILE).unlink()  # only .hydra/config.yaml so far
    out = build_report(tmp_path)
    summary = pd.read_csv(out / "summary.csv")
    assert summary.loc[0, ["n_seeds", "n_incomplete"]].tolist() == [0, 2]
    assert summary.loc[0, "note"] == "no completed run"
    assert "No run has completed yet" in (out / "report.md").read_text()
    assert not list(out.glob("*.png"))  # nothing finished to draw: no curves, no steady epoch


@pytest.mark.parametrize("subdir", ["missing", ""], ids=["no such path", "empty directory"])
def test_cli_fails_in_one_line_without_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture, subdir: str
) -> None:
    assert main([str(tmp_path / subdir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("python -m bench.report: error: no")


def test_cli_rejects_unknown_names(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    write_run(tmp_path)
    assert main([str(tmp_path), "--metrics", "top5"]) == 2
    assert "unknown metric 'top5'" in capsys.readouterr().err
    assert main([str(tmp_path), "--group-by", "backend,optimiser.lr"]) == 2
    assert "unknown column 'optimiser.lr'" in capsys.readouterr().err


def test_callback_builds_the_sweep_report(tmp_path: Path) -> None:
    for optimizer in ("adamw", "sgd_l2"):
        write_run(tmp_path / "sweep", optimizer=optimizer)
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "sweep")}}})
    ReportCallback({"metrics": ["val_accuracy"], "margin": 0.05}).on_multirun_end(config)
    report = tmp_path / "sweep" / "report"
    assert (report / "curves_accuracy.png").exists() and not (report / "curves_ce_loss.png").exists()
    assert "--margin 0.05" in (report / "report.md").read_text()  # the options reach the report
    assert len(pd.read_csv(report / "summary.csv")) == 2


def test_callback_warns_instead_of_raising(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "empty")}}})
    with caplog.at_level(logging.WARNING):
        ReportCallback().on_multirun_end(config)
    assert "report: not built (NoRunsFoundError: no such file or directory" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        ReportCallback({"enabled": False}).on_multirun_end(config)  # disabled: not even a look
    assert caplog.records == [] and not (tmp_path / "empty").exists()


def test_markdown_table_escapes_pipes() -> None:
    assert markdown_table(["a", "b"], [["x|y", "1\n2"]]) == "| a | b |\n| --- | --- |\n| x\\|y | 1 2 |"


def test_an_analysis_is_one_entry_of_the_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What bench/report/analyses/ promises: an analysis's tables, figures and blocks reach the folder and
    the page with no other edit than its entry in ANALYSES."""
    import matplotlib.pyplot as plt

    from bench.report import build
    from bench.report.analysis import Output, ReportInput
    from bench.report.render import Heading, Image

    def analyse(data: ReportInput) -> Output:
        figure, ax = plt.subplots()
        ax.plot(data.finals["seed"], data.finals["val_accuracy"])
        blocks = [Heading("Extra"), Image("extra.png", "val_accuracy by seed")]
        return Output(blocks, {"extra.csv": data.finals[["run_dir", "val_accuracy"]]}, {"extra.png": figure})

    monkeypatch.setattr(build, "ANALYSES", (*build.ANALYSES, SimpleNamespace(analyse=analyse)))
    write_run(tmp_path)
    report = build_report([tmp_path])
    assert len(pd.read_csv(report / "extra.csv")) == 1 and (report / "extra.png").stat().st_size > 0
    assert (
        (report / "report.md")
        .read_text()
        .endswith("![val_accuracy by seed](extra.png)\n\n*val_accuracy by seed*\n")
    )
    assert '<h2 id="extra">Extra</h2>' in (report / "report.html").read_text()
