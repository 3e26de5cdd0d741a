"""Tables computed from the tidy frame: final metrics per run, per-group summary, timing.

Only ``completed`` runs enter means; diverged, failed and incomplete runs are counted apart. Intervals are
95 % t-intervals across seeds (``scipy.stats.t``), which stay honest at 2-5 seeds where a bootstrap would not.
Pairwise comparisons and the verdict are in :mod:`bench.report.compare` and :mod:`bench.decide`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from bench.decide import ALPHA
from bench.report.groups import iter_groups
from bench.results import RunStatus

CONFIDENCE = 1 - ALPHA
#: Final-epoch metrics summarised per group. ``loss`` and ``val_loss`` include each arm's own L2 penalty (none
#: for AdamW): kept in summary.csv, never compared across arms; ``best_val_accuracy`` selects on validation.
SUMMARY_METRICS = (
    "val_accuracy", "val_ce_loss", "accuracy", "ce_loss", "val_loss", "loss", "best_val_accuracy",
)  # fmt: skip
STATUSES_NOT_AVERAGED = (RunStatus.DIVERGED, RunStatus.FAILED, RunStatus.PRUNED, RunStatus.INCOMPLETE)


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
    """One row per run: its last finished epoch, plus ``best_epoch`` and ``best_val_accuracy``.

    The best epoch is the one of highest val_accuracy: chosen on the validation photos, so its accuracy is an
    optimistic estimate; the headline uses the last epoch.
    """
    last = frame.sort_values(["run_dir", "epoch"]).drop_duplicates("run_dir", keep="last")
    scored = frame.dropna(subset=["val_accuracy"])
    best = scored.sort_values(["run_dir", "val_accuracy", "epoch"], ascending=[True, False, True])
    best = best.drop_duplicates("run_dir")[["run_dir", "epoch", "val_accuracy"]]
    best = best.rename(columns={"epoch": "best_epoch", "val_accuracy": "best_val_accuracy"})
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
        done = group[group["status"] == RunStatus.COMPLETED]
        row = key | {"n_seeds": len(done)}
        row |= {f"n_{status}": int((group["status"] == status).sum()) for status in STATUSES_NOT_AVERAGED}
        for metric in metrics:
            row |= describe(done[metric], metric)
        row["best_epoch_mean"] = done["best_epoch"].mean() if len(done) else math.nan
        row["epochs"] = done["epoch"].max() if len(done) else math.nan
        row["note"] = _note(len(done))
        rows.append(row)
    return pd.DataFrame(rows)


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
        completed = group[group["status"] == RunStatus.COMPLETED]
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


def expected_max(values: Sequence[float], n: int) -> tuple[float, float]:
    """Expected maximum of ``n`` trials, and its standard deviation (Dodge et al. 2019, "Show your work").

    The ``n`` trials are drawn with replacement from the observed ``values``: with them sorted ascending,
    P(max = v_(i)) = (i/N)^n - ((i-1)/N)^n.
    """
    v = np.sort(np.asarray(values, dtype=float))
    big_n = len(v)
    i = np.arange(1, big_n + 1)
    p = (i / big_n) ** n - ((i - 1) / big_n) ** n
    mean = float(np.sum(p * v))
    return mean, float(math.sqrt(max(0.0, np.sum(p * v**2) - mean**2)))
