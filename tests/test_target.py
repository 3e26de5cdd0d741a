"""Tests of the time-to-target tables and figures (bench.report.target) on frames with known answers."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from bench.report.groups import add_labels, choose_grouping
from bench.report.load import load_run_table
from bench.report.stats import final_epochs
from bench.report.target import (
    PROFILE_COLUMNS,
    SUMMARY_COLUMNS,
    TIMES_COLUMNS,
    default_targets,
    median_time,
    performance_profile,
    target_summary,
    time_to_target,
)
from bench.report.target_figures import plot_performance_profile, plot_time_to_target
from tests.test_report import write_run


def run_rows(
    run_dir: str,
    accuracies: list[float],
    *,
    arm: str = "adamw",
    stratum: str = "",
    seed: int = 0,
    status: str = "completed",
    seconds: list[float] | None = None,
    images: int = 100,
) -> list[dict]:
    """Tidy rows of one run: epoch e has val_accuracy accuracies[e-1] and trains seconds[e-1] s."""
    seconds = seconds or [10.0] * len(accuracies)
    return [
        {
            "run_dir": run_dir,
            "status": status,
            "seed": seed,
            "arm": arm,
            "stratum": stratum,
            "epoch": epoch,
            "val_accuracy": accuracy,
            "train_time_s": train_s,
            "epoch_time_s": train_s + 1.0,  # evaluation takes 1 s: must not count
            "train_images": images,
            "epochs_planned": len(accuracies),
        }
        for epoch, (accuracy, train_s) in enumerate(zip(accuracies, seconds, strict=True), start=1)
    ]


def tidy(*runs: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([row for run in runs for row in run])


def times_of(*runs: tuple[str, float, bool], stratum: str = "", target: float = 0.5) -> pd.DataFrame:
    """A time_to_target-shaped frame from (arm, train_s, reached); epoch = train_s / 10, 100 images/epoch."""
    rows = [
        {"stratum": stratum, "arm": arm, "seed": i, "run_dir": f"{stratum}/{arm}/{i}", "target": target}
        | {"reached": reached, "epoch": train_s / 10, "images": train_s * 10, "train_s": train_s}
        for i, (arm, train_s, reached) in enumerate(runs)
    ]
    return pd.DataFrame(rows, columns=TIMES_COLUMNS)


def test_default_target_is_95_percent_of_best_arm_mean_per_stratum() -> None:
    finals = pd.DataFrame(
        {
            "stratum": ["keras"] * 5 + ["torch"],
            "arm": ["adamw", "adamw", "sgd", "sgd", "sgd", "adamw"],
            "status": ["completed"] * 4 + ["diverged", "completed"],
            "val_accuracy": [0.6, 0.8, 0.5, 0.5, 0.99, 0.4],  # the diverged 0.99 must not count
        }
    )
    targets = default_targets(finals)
    assert targets.name == "target"
    assert targets.to_dict() == pytest.approx({"keras": 0.95 * 0.7, "torch": 0.95 * 0.4})


def test_time_to_target_first_epoch_cumulative_images_and_train_seconds() -> None:
    frame = tidy(run_rows("a", [0.3, 0.55, 0.5, 0.7], seconds=[10.0, 20.0, 30.0, 40.0], images=100))
    times = time_to_target(frame, target=0.5)
    assert list(times.columns) == TIMES_COLUMNS
    row = times.iloc[0]
    assert bool(row["reached"]) and row["target"] == 0.5
    # First epoch at or above 0.5 is epoch 2 (not the later exact 0.5 or the best epoch 4).
    assert (row["epoch"], row["images"], row["train_s"]) == (2, 200, 30.0)


def test_time_to_target_falls_back_to_epoch_time_and_skips_unfinished_runs() -> None:
    frame = tidy(
        run_rows("a", [0.3, 0.6], seconds=[10.0, 20.0]),
        run_rows("b", [0.9], status="diverged"),
        run_rows("c", [0.9], status="incomplete"),
    ).drop(columns="train_time_s")  # an old metrics.jsonl without train_time_s
    times = time_to_target(frame, target=0.5)
    assert times["run_dir"].tolist() == ["a"]
    assert times["train_s"].iloc[0] == 11.0 + 21.0


def test_censored_run_keeps_its_last_epoch_and_reached_false() -> None:
    frame = tidy(run_rows("slow", [0.1, 0.2, 0.3], seconds=[10.0, 20.0, 30.0]))
    row = time_to_target(frame, target=0.5).iloc[0]
    assert not row["reached"]
    assert (row["epoch"], row["images"], row["train_s"]) == (3, 300, 60.0)


def test_default_target_used_per_stratum_in_time_to_target() -> None:
    frame = tidy(
        run_rows("k1", [0.5, 1.0], stratum="keras", arm="adamw"),
        run_rows("k2", [0.2, 0.4], stratum="keras", arm="sgd"),
        run_rows("t1", [0.3, 0.2], stratum="torch", arm="adamw"),
    )
    times = time_to_target(frame).set_index("run_dir")
    assert times.loc["k1", "target"] == pytest.approx(0.95)
    assert times.loc["t1", "target"] == pytest.approx(0.19)
    assert times.loc["k1", "epoch"] == 2 and times.loc["k2", "reached"] == False  # noqa: E712
    assert times.loc["t1", "epoch"] == 1  # reached at epoch 1 though its last epoch is lower


def test_median_with_all_reached_is_the_ordinary_median_of_an_odd_count() -> None:
    seconds = [50.0, 10.0, 40.0, 20.0, 30.0]
    median, low, high = median_time(seconds, [True] * 5)
    assert median == np.median(seconds) == 30.0
    assert low <= median and (math.isnan(high) or high >= median)
    summary = target_summary(times_of(*(("adamw", s, True) for s in seconds)))
    assert list(summary.columns) == SUMMARY_COLUMNS
    row = summary.iloc[0]
    assert (row["train_s_median"], row["epoch_median"], row["images_median"]) == (30.0, 3.0, 300.0)


def test_median_ci_brackets_the_median_with_many_runs() -> None:
    seconds = np.arange(1.0, 22.0)  # 21 runs, all reached
    median, low, high = median_time(seconds, [True] * 21)
    assert median == 11.0
    assert low < median < high  # the band is narrow enough here to bound both sides


def test_median_with_half_censored_uses_kaplan_meier() -> None:
    # Reached at 10 and 20 s; two runs stopped at 30 and 40 s without reaching. KM: sf(10) = 3/4,
    # sf(20) = 1/2, so the median is 20 s (dropping the censored runs would give 15 s).
    times = times_of(
        ("adamw", 10.0, True), ("adamw", 20.0, True), ("adamw", 30.0, False), ("adamw", 40.0, False)
    )
    row = target_summary(times).iloc[0]
    assert row["train_s_median"] == 20.0
    assert (row["n_runs"], row["n_reached"], row["fraction_reached"]) == (4, 2, 0.5)
    assert math.isnan(row["train_s_ci_high"])  # the band never drops to 0.5: upper limit unbounded


def test_median_not_reached_when_fewer_than_half_reach() -> None:
    times = times_of(("sgd", 10.0, True), ("sgd", 30.0, False), ("sgd", 40.0, False))
    row = target_summary(times).iloc[0]
    assert row["fraction_reached"] == pytest.approx(1 / 3)
    assert math.isnan(row["train_s_median"]) and math.isnan(row["epoch_median"])


def test_single_run_median_is_its_time_or_nan() -> None:
    summary = target_summary(times_of(("adamw", 25.0, True), ("sgd", 25.0, False))).set_index("arm")
    assert summary.loc["adamw", "train_s_median"] == 25.0
    assert math.isnan(summary.loc["sgd", "train_s_median"])
    assert summary["n_runs"].tolist() == [1, 1]


def profile_summary() -> pd.DataFrame:
    """Medians: keras a=10, b=20, c not reached; torch a=30, b=15, c=45; 'none' where no arm reached."""
    medians = {"keras": [10.0, 20.0, math.nan], "torch": [30.0, 15.0, 45.0], "none": [math.nan] * 3}
    rows = [
        {"stratum": stratum, "arm": arm, "train_s_median": value}
        for stratum, values in medians.items()
        for arm, value in zip("abc", values, strict=True)
    ]
    return pd.DataFrame(rows)


def test_performance_profile_with_two_strata_and_known_ratios() -> None:
    # Ratios: a = (1, 2), b = (2, 1), c = (inf, 3); stratum 'none' is left out.
    taus = [1.0, 1.5, 2.0, 3.0, 4.0]
    profile = performance_profile(profile_summary(), taus=taus)
    assert list(profile.columns) == PROFILE_COLUMNS
    rho = profile.pivot(index="arm", columns="tau", values="rho")
    assert rho.loc["a"].tolist() == [0.5, 0.5, 1.0, 1.0, 1.0]
    assert rho.loc["b"].tolist() == [0.5, 0.5, 1.0, 1.0, 1.0]
    assert rho.loc["c"].tolist() == [0.0, 0.0, 0.0, 0.5, 0.5]  # never reached in keras: never 1


def test_performance_profile_default_grid() -> None:
    profile = performance_profile(profile_summary())
    taus = profile["tau"].unique()
    assert taus.min() == 1.0 and taus.max() == pytest.approx(3.0 * 1.1)
    assert {2.0, 3.0} <= set(taus)  # every ratio is a grid point, so steps fall where they should
    at_tau = profile[profile["tau"] == 1.0].set_index("arm")["rho"]
    assert at_tau.to_dict() == {"a": 0.5, "b": 0.5, "c": 0.0}


def test_performance_profile_empty_with_one_stratum() -> None:
    summary = profile_summary()
    profile = performance_profile(summary[summary["stratum"] != "torch"])  # keras + all-NaN 'none'
    assert profile.empty and list(profile.columns) == PROFILE_COLUMNS


def test_time_to_target_on_written_runs(tmp_path: Path) -> None:
    # val_accuracy rises by 0.1 per epoch to the final value; default target 0.95 x 0.6 = 0.57.
    for seed, (adamw, sgd) in enumerate([(0.5, 0.3), (0.6, 0.35), (0.7, 0.4)]):
        write_run(tmp_path, optimizer="adamw", seed=seed, final_val_accuracy=adamw)
        write_run(tmp_path, optimizer="sgd_l2", seed=seed, final_val_accuracy=sgd)
    write_run(tmp_path, optimizer="adamw", seed=3, status="diverged", finished=2)
    table = load_run_table(tmp_path)
    frame = add_labels(table.frame, choose_grouping(table))
    times = time_to_target(frame).set_index(["arm", "seed"])
    assert len(times) == 6 and times["target"].iloc[0] == pytest.approx(0.57)
    assert times.loc[("adamw", 2), ["epoch", "images"]].tolist() == [2, 2 * 2936]
    assert times.loc[("adamw", 2), "train_s"] == pytest.approx(2 * 2900 / 30)
    assert not times.loc[("adamw", 0), "reached"] and times.loc[("adamw", 0), "epoch"] == 3
    summary = target_summary(times.reset_index()).set_index("arm")
    assert summary.loc["adamw", "epoch_median"] == 3  # sf(2) = 2/3, sf(3) = 1/3
    assert summary.loc["adamw", "images_median"] == 3 * 2936
    assert summary.loc["sgd_l2", "fraction_reached"] == 0
    assert math.isnan(summary.loc["sgd_l2", "epoch_median"])
    assert final_epochs(frame)["status"].eq("completed").sum() == 6  # the diverged run stays out


def test_time_to_target_figure_has_one_panel_per_stratum() -> None:
    times = pd.concat(
        [
            times_of(("a", 10.0, True), ("a", 30.0, False), ("b", 20.0, True), stratum="keras"),
            times_of(("a", 15.0, True), ("b", 25.0, True), stratum="torch"),
        ]
    )
    colors = {"a": "tab:blue", "b": "tab:orange"}
    fig = plot_time_to_target(times, target_summary(times), colors)
    try:
        assert isinstance(fig, Figure) and len(fig.axes) == 2
        assert fig.axes[0].get_title() == "keras: target 50.0 % val_accuracy"
        assert len(fig.axes[0].lines) == 3  # two arm curves and the 0.5 guide
    finally:
        plt.close(fig)
    single = times_of(("a", 10.0, True))
    fig = plot_time_to_target(single, target_summary(single), colors)
    try:
        assert len(fig.axes) == 1 and fig.axes[0].get_title().startswith("all runs")
    finally:
        plt.close(fig)


def test_performance_profile_figure_is_log_scaled() -> None:
    fig = plot_performance_profile(performance_profile(profile_summary()), {"a": "C0", "b": "C1", "c": "C2"})
    try:
        assert isinstance(fig, Figure) and len(fig.axes) == 1
        assert fig.axes[0].get_xscale() == "log" and len(fig.axes[0].lines) == 3
    finally:
        plt.close(fig)
    fig = plot_performance_profile(pd.DataFrame(columns=PROFILE_COLUMNS), {})
    try:
        assert len(fig.axes) == 1 and not fig.axes[0].lines
    finally:
        plt.close(fig)
