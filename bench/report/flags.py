"""Warnings a reader needs before trusting a ranking, one row per arm and warning.

- ``near chance``: the arm's final validation accuracy is within noise of guessing (1 / number of classes):
  the 95 % t-interval of its mean reaches below chance + ``CHANCE_MARGIN`` (one seed: the value itself). A
  ranking against such an arm measures how long training ran more than the optimizer.
- ``still climbing``: the seed-mean validation accuracy still rose by at least the accuracy margin per epoch
  over the last ``CLIMB_EPOCHS`` epochs (least-squares slope, ``scipy.stats.linregress``): more epochs may
  change the ranking.
- ``seeds left out``: diverged, failed or unfinished runs of the arm, which are in no mean or test.
"""

from __future__ import annotations

import pandas as pd
from scipy import stats

from bench.report.stats import STATUSES_NOT_AVERAGED, t_interval
from bench.results import RunStatus

CHANCE_MARGIN = 0.05  # 5 accuracy points above chance still counts as "near chance"
CLIMB_EPOCHS = 3
COLUMNS = ["stratum", "arm", "flag", "detail"]


def near_chance(done: pd.DataFrame) -> str:
    """The detail of a ``near chance`` flag, or "" when the arm is clearly above chance (or chance is unknown)."""
    classes = done["num_classes"].dropna() if "num_classes" in done else pd.Series(dtype=float)
    values = done["val_accuracy"].astype(float).dropna()
    if classes.empty or values.empty:
        return ""
    chance = 1 / classes.max()
    low = values.iloc[0] if len(values) == 1 else t_interval(values)[0]
    if low > chance + CHANCE_MARGIN:
        return ""
    reach = "its value" if len(values) == 1 else "the 95 % CI of its mean reaches"
    return (
        f"final val_accuracy {100 * values.mean():.1f} % ({reach} {100 * low:.1f} %) is within "
        f"{100 * CHANCE_MARGIN:.0f} points of chance ({100 * chance:.0f} %, {classes.max():.0f} classes)"
    )


def still_climbing(curve: pd.Series, margin: float) -> str:
    """The detail of a ``still climbing`` flag for a seed-mean val_accuracy curve indexed by epoch, or ""."""
    tail = curve.dropna().sort_index().iloc[-CLIMB_EPOCHS:]
    if len(tail) < 2:
        return ""
    slope = stats.linregress(tail.index.astype(float), tail.to_numpy(dtype=float)).slope
    if not slope >= margin:
        return ""
    return (
        f"seed-mean val_accuracy still rises {100 * slope:.1f} points/epoch over epochs "
        f"{int(tail.index[0])}-{int(tail.index[-1])}: more epochs may change the ranking"
    )


def left_out(runs: pd.DataFrame) -> str:
    counts = runs["status"].value_counts()
    parts = [f"{counts[status]} {status}" for status in STATUSES_NOT_AVERAGED if counts.get(status, 0)]
    if not parts:
        return ""
    return f"{sum(counts.get(s, 0) for s in STATUSES_NOT_AVERAGED)} of {len(runs)} seeds left out ({', '.join(parts)})"


def arm_flags(frame: pd.DataFrame, finals: pd.DataFrame, margin: float) -> pd.DataFrame:
    """Every warning of every arm: one row per stratum x arm x flag (empty frame when all is well).

    Args:
        frame: the tidy per-epoch frame with ``arm`` and ``stratum`` labels.
        finals: one row per run (its last epoch), with the same labels.
        margin: the accuracy margin (fraction); a slope of that much per epoch counts as still climbing.
    """
    rows = []
    for (stratum, arm), runs in finals.groupby(["stratum", "arm"], sort=True):
        done = runs[runs["status"] == RunStatus.COMPLETED]
        epochs = frame[frame["run_dir"].isin(done["run_dir"])]
        curve = epochs.groupby("epoch")["val_accuracy"].mean() if len(epochs) else pd.Series(dtype=float)
        details = {
            "near chance": near_chance(done),
            "still climbing": still_climbing(curve, margin),
            "seeds left out": left_out(runs),
        }
        rows += [[stratum, arm, flag, detail] for flag, detail in details.items() if detail]
    return pd.DataFrame(rows, columns=COLUMNS)
