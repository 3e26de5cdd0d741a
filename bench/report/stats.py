"""Tables computed from the tidy frame: final metrics per run, per-group summary, pairwise tests, timing.

Only ``completed`` runs enter means and tests; diverged, failed and incomplete runs are counted apart.
Intervals are 95 % t-intervals across seeds (Welch's for differences), which stay honest at 2-5 seeds
where a bootstrap would not.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from bench.report.groups import iter_groups

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
SUMMARY_METRICS = ("val_accuracy", "val_loss", "accuracy", "loss")
COMPARISON_METRICS = ("val_accuracy", "val_loss")
STATUSES_NOT_AVERAGED = ("diverged", "failed", "incomplete")
PAIR_COLUMNS = ["metric", "arm_a", "arm_b", "n_a", "n_b", "mean_a", "mean_b", "diff", "ci_low", "ci_high"]
PAIR_COLUMNS += ["p_value", "better", "conclusion"]


def higher_is_better(metric: str) -> bool:
    return "loss" not in metric


def finite(values: Sequence[float] | pd.Series) -> np.ndarray:
    """The values as floats without NaN and inf (a missing or diverged number is no measurement)."""
    values = np.asarray(values, dtype=float)
    return values[np.isfinite(values)]


def t_interval(values: Sequence[float] | pd.Series) -> tuple[float, float]:
    """95 % t-interval of the mean; (nan, nan) with fewer than two finite values."""
    values = finite(values)
    if len(values) < 2:
        return math.nan, math.nan
    half = stats.t.ppf(1 - ALPHA / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return values.mean() - half, values.mean() + half


def final_epochs(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per run: its last finished epoch, plus ``best_epoch`` (the epoch of highest val_accuracy)."""
    last = frame.sort_values(["run_dir", "epoch"]).drop_duplicates("run_dir", keep="last")
    scored = frame.dropna(subset=["val_accuracy"])
    best = scored.sort_values(["run_dir", "val_accuracy", "epoch"], ascending=[True, False, True])
    best = best.drop_duplicates("run_dir")[["run_dir", "epoch"]].rename(columns={"epoch": "best_epoch"})
    return last.merge(best, on="run_dir", how="left").reset_index(drop=True)


def describe(values: pd.Series, name: str) -> dict[str, float]:
    """Mean, sd and 95 % CI of one metric over seeds, as ``{name}_mean`` ... columns."""
    kept = finite(values)
    low, high = t_interval(kept)
    return {
        f"{name}_mean": kept.mean() if len(kept) else math.nan,
        f"{name}_sd": kept.std(ddof=1) if len(kept) > 1 else math.nan,
        f"{name}_ci_low": low,
        f"{name}_ci_high": high,
    }


def _note(n_seeds: int) -> str:
    if n_seeds == 0:
        return "no completed run"
    return "n=1, no CI" if n_seeds == 1 else ""


def summarize(
    finals: pd.DataFrame, columns: Sequence[str], metrics: Sequence[str] = SUMMARY_METRICS
) -> pd.DataFrame:
    """One row per group: counts by status and final-epoch statistics of the completed runs."""
    rows = []
    for key, group in iter_groups(finals, columns):
        done = group[group["status"] == "completed"]
        row = key | {"n_seeds": len(done)}
        row |= {f"n_{status}": int((group["status"] == status).sum()) for status in STATUSES_NOT_AVERAGED}
        for metric in metrics:
            row |= describe(done[metric], metric)
        row["best_epoch_mean"] = done["best_epoch"].mean() if len(done) else math.nan
        row["epochs"] = done["epoch"].max() if len(done) else math.nan
        row["note"] = _note(len(done))
        rows.append(row)
    return pd.DataFrame(rows)


def welch(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Welch's test of mean(a) - mean(b): the difference, its 95 % CI and the p-value (NaN if n < 2)."""
    diff = a.mean() - b.mean() if len(a) and len(b) else math.nan
    if len(a) < 2 or len(b) < 2:
        return {"diff": diff, "ci_low": math.nan, "ci_high": math.nan, "p_value": math.nan}
    test = stats.ttest_ind(a, b, equal_var=False)
    ci = test.confidence_interval(CONFIDENCE)
    return {"diff": diff, "ci_low": ci.low, "ci_high": ci.high, "p_value": test.pvalue}


def compare_pair(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray, metric: str) -> dict[str, Any]:
    """One row of comparisons.csv: sizes, means, Welch's test and which arm, if any, is better."""
    test = welch(a, b)
    separated = test["p_value"] < ALPHA and not test["ci_low"] <= 0 <= test["ci_high"]  # False for NaN
    better = ""
    if separated:
        better = name_a if (test["diff"] > 0) == higher_is_better(metric) else name_b
    means = {"mean_a": a.mean() if len(a) else math.nan, "mean_b": b.mean() if len(b) else math.nan}
    return (
        {"metric": metric, "arm_a": name_a, "arm_b": name_b, "n_a": len(a), "n_b": len(b)}
        | means
        | test
        | {"better": better, "conclusion": f"{better} better" if better else "not distinguishable"}
    )


def compare_arms(
    finals: pd.DataFrame, strata: Sequence[str], metrics: Sequence[str] = COMPARISON_METRICS
) -> pd.DataFrame:
    """Welch-test every pair of arms (column ``arm``) within each stratum, on the final metrics.

    ``diff`` is mean_a - mean_b; ``better`` names the better arm (higher accuracy, lower loss) when
    p < 0.05 and the CI excludes 0, and is empty otherwise (``not distinguishable``, also when n < 2).
    """
    done = finals[finals["status"] == "completed"]
    rows = []
    for key, stratum in iter_groups(done, strata):
        arms = dict(list(stratum.groupby("arm")))
        for (a, b), metric in itertools.product(itertools.combinations(sorted(arms), 2), metrics):
            pair = compare_pair(a, finite(arms[a][metric]), b, finite(arms[b][metric]), metric)
            rows.append({"stratum": stratum["stratum"].iloc[0]} | key | pair)
    return pd.DataFrame(rows, columns=["stratum", *strata, *PAIR_COLUMNS])  # the header even with no pair


def steady_epochs(frame: pd.DataFrame) -> pd.DataFrame:
    """Finished epochs without epoch 1 (warm-up, graph tracing), unless the run was planned with one epoch."""
    finished = frame.dropna(subset=["epoch"])
    last = finished.groupby("run_dir")["epoch"].transform("max")
    planned = finished["epochs_planned"].astype(float).fillna(last)
    return finished[(finished["epoch"] > 1) | (planned == 1)]


def timing_table(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Throughput per group over runs x steady epochs (any status: a diverged epoch takes as long).

    The spread of train images/s is given as quartiles (IQR) and min-max over those epochs; the wall time
    is averaged over completed runs only, since an early stop shortens it.
    """
    runs = frame.drop_duplicates("run_dir")
    steady = steady_epochs(frame)
    rows = []
    for key, group in iter_groups(runs, columns):
        epochs = steady[steady["run_dir"].isin(group["run_dir"])]
        speed = epochs["train_images_per_s"].astype(float)
        completed = group[group["status"] == "completed"]
        rows.append(
            key
            | {
                "n_runs": epochs["run_dir"].nunique(),
                "n_epochs": len(epochs),
                "train_images_per_s_median": speed.median(),
                "train_images_per_s_q25": speed.quantile(0.25),
                "train_images_per_s_q75": speed.quantile(0.75),
                "train_images_per_s_min": speed.min(),
                "train_images_per_s_max": speed.max(),
                "epoch_time_s_median": epochs["epoch_time_s"].astype(float).median(),
                "wall_time_s_mean": completed["wall_time_s"].astype(float).mean(),
                "n_completed": len(completed),
            }
        )
    return pd.DataFrame(rows)
