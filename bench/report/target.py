"""Time to target (AlgoPerf-style): how much training each arm needs to reach a validation accuracy.

A run that never reaches the target is not a failure to leave out but a right-censored time: it says
"more than this much training". Medians therefore come from the Kaplan-Meier estimate of the time to
target, which uses the censored runs instead of dropping them (dropping them flatters the slow arms).
Only ``completed`` runs count: a diverged or killed run's stopping time is no statement about the target.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from bench.report.stats import CONFIDENCE, final_epochs
from bench.results import RunStatus

#: The default target is this fraction of the best arm's mean final val_accuracy, per stratum.
TARGET_FRACTION = 0.95
TIMES_COLUMNS = ["stratum", "arm", "seed", "run_dir", "target", "reached", "epoch", "images", "train_s"]
SUMMARY_COLUMNS = ["stratum", "arm", "target", "n_runs", "n_reached", "fraction_reached"]
SUMMARY_COLUMNS += ["epoch_median", "epoch_ci_low", "epoch_ci_high", "images_median"]
SUMMARY_COLUMNS += ["train_s_median", "train_s_ci_low", "train_s_ci_high"]
PROFILE_COLUMNS = ["arm", "tau", "rho"]
#: Survival probabilities are products of fractions: 0.5 may come out as 0.5000000000000001.
_TOLERANCE = 1e-9


def default_targets(finals: pd.DataFrame) -> pd.Series:
    """The target of each stratum: its workload's (``workload.target``, recorded by its runs), else 95 % of
    the best arm's mean final val_accuracy.

    Args:
        finals: one row per run (see :func:`bench.report.stats.final_epochs`) with ``stratum``, ``arm``,
            ``status`` and ``val_accuracy``.

    Returns:
        The target val_accuracy (fraction), indexed by stratum, named ``target``; strata without a
        completed run are absent.
    """
    done = finals[finals["status"] == RunStatus.COMPLETED]
    means = done.groupby(["stratum", "arm"])["val_accuracy"].mean()
    # Relative to the best arm, so the target is reachable by construction and the same for every arm.
    relative = means.groupby(level="stratum").max() * TARGET_FRACTION
    if "workload_target" not in done:
        return relative.rename("target")
    declared = pd.to_numeric(done["workload_target"], errors="coerce").groupby(done["stratum"]).first()
    return declared.reindex(relative.index).fillna(relative).rename("target")


def _numbers(run: pd.DataFrame, column: str) -> pd.Series:
    """A column as floats, all NaN when old files lack it."""
    if column not in run:
        return pd.Series(math.nan, index=run.index)
    return run[column].astype(float)


def _train_seconds(run: pd.DataFrame) -> pd.Series:
    """Seconds of training per epoch; old files have only the epoch time, which includes evaluation."""
    return _numbers(run, "train_time_s").fillna(_numbers(run, "epoch_time_s"))


def _run_time(run: pd.DataFrame, target: float) -> dict[str, object]:
    """Whether one run reached ``target`` and the epoch, images and seconds it took (or ran, if not)."""
    run = run.dropna(subset=["epoch"]).sort_values("epoch")
    if run.empty:  # completed without a finished epoch: nothing measured
        return {"reached": False, "epoch": math.nan, "images": math.nan, "train_s": math.nan}
    images = _numbers(run, "train_images").cumsum().to_numpy()
    seconds = _train_seconds(run).cumsum().to_numpy()
    hits = np.flatnonzero(run["val_accuracy"].astype(float).to_numpy() >= target)
    # A run that never reaches the target is censored at its last epoch: "not reached by then".
    i = int(hits[0]) if len(hits) else len(run) - 1
    epoch = float(run["epoch"].iloc[i])
    return {"reached": bool(len(hits)), "epoch": epoch, "images": images[i], "train_s": seconds[i]}


def time_to_target(frame: pd.DataFrame, target: float | None = None) -> pd.DataFrame:
    """The time each completed run took to first reach the target val_accuracy.

    Args:
        frame: the tidy frame (one row per run x epoch) with the ``arm`` and ``stratum`` labels.
        target: an absolute val_accuracy (fraction) for every stratum (``report.target``), or None for
            :func:`default_targets` per stratum (the workload's target, else a relative one).

    Returns:
        One row per completed run with columns ``stratum, arm, seed, run_dir, target, reached, epoch,
        images, train_s``: the first epoch with val_accuracy >= target, and the training images and
        training seconds summed up to and including it. A run that never reaches the target has
        ``reached`` False and the values of its last epoch (its censoring time).
    """
    done = frame[frame["status"] == RunStatus.COMPLETED]
    targets = default_targets(final_epochs(done)) if target is None else None
    rows = []
    for run_dir, run in done.groupby("run_dir", sort=True):
        first = run.iloc[0]
        goal = float(target) if targets is None else float(targets.get(first["stratum"], math.nan))
        head = {"stratum": first["stratum"], "arm": first["arm"], "seed": first["seed"], "run_dir": run_dir}
        rows.append(head | {"target": goal} | _run_time(run, goal))
    times = pd.DataFrame(rows, columns=TIMES_COLUMNS)
    return times.sort_values(["stratum", "arm", "seed"], kind="stable", ignore_index=True)


def kaplan_meier(time: Sequence[float] | pd.Series, reached: Sequence[bool] | pd.Series) -> Any:
    """The Kaplan-Meier fit of right-censored times, or None when no time is finite.

    Args:
        time: the time to target of each run, or its censoring time when it did not reach the target.
        reached: whether each run reached the target (False: censored).

    Returns:
        :func:`scipy.stats.ecdf`'s result (an ``ECDFResult``, a class scipy does not export publicly);
        ``.sf`` is the estimated fraction of runs not yet at the target.
    """
    time = np.asarray(time, dtype=float)
    reached = np.asarray(reached, dtype=bool)
    kept = np.isfinite(time)
    if not kept.any():
        return None
    data = stats.CensoredData(uncensored=time[kept & reached], right=time[kept & ~reached])
    return stats.ecdf(data)


def _first_at_or_below_half(times: np.ndarray, curve: np.ndarray) -> float:
    """The first time a survival curve is <= 0.5; NaN (never) also where the curve is undefined."""
    hits = np.flatnonzero(curve <= 0.5 + _TOLERANCE)  # NaN compares False
    return float(times[hits[0]]) if len(hits) else math.nan


def median_time(
    time: Sequence[float] | pd.Series, reached: Sequence[bool] | pd.Series
) -> tuple[float, float, float]:
    """Kaplan-Meier median of right-censored times and its 95 % interval.

    The median is the smallest observed time at which the survival function is <= 0.5. Its interval is
    the Brookmeyer-Crowley-style inversion of the pointwise 95 % band of the survival function
    ("log-log", exponential Greenwood): the lower limit is the first time the band's lower curve is
    <= 0.5, the upper limit the first time its upper curve is. NaN means "not reached": no median when
    fewer than half of the runs reach the target, no upper limit when the band never drops to 0.5.

    Returns:
        ``(median, ci_low, ci_high)``.
    """
    fit = kaplan_meier(time, reached)
    if fit is None:
        return math.nan, math.nan, math.nan
    sf = fit.sf
    with warnings.catch_warnings():  # scipy warns where log-log is undefined (sf = 1 or 0); handled below
        warnings.simplefilter("ignore", RuntimeWarning)
        band = sf.confidence_interval(CONFIDENCE, method="log-log")
    # Where every run has reached the target (sf = 0) the band's lower curve is 0, not undefined; the
    # upper curve stays undefined there, which leaves the upper limit unbounded (as R's survfit does).
    low = np.where(sf.probabilities <= 0, 0.0, band.low.probabilities)
    median = _first_at_or_below_half(sf.quantiles, sf.probabilities)
    ci_low = _first_at_or_below_half(sf.quantiles, low)
    return median, ci_low, _first_at_or_below_half(sf.quantiles, band.high.probabilities)


def _arm_summary(runs: pd.DataFrame) -> dict[str, float]:
    """The counts and Kaplan-Meier medians of one stratum x arm."""
    reached = runs["reached"].to_numpy(dtype=bool)
    epoch, epoch_low, epoch_high = median_time(runs["epoch"], reached)
    seconds, seconds_low, seconds_high = median_time(runs["train_s"], reached)
    # Images follow from epochs (a fixed training set per epoch), so read them off the epoch median.
    images_per_epoch = (runs["images"].astype(float) / runs["epoch"].astype(float)).median()
    return {
        "target": runs["target"].iloc[0],
        "n_runs": len(runs),
        "n_reached": int(reached.sum()),
        "fraction_reached": reached.mean(),
        "epoch_median": epoch,
        "epoch_ci_low": epoch_low,
        "epoch_ci_high": epoch_high,
        "images_median": epoch * images_per_epoch,
        "train_s_median": seconds,
        "train_s_ci_low": seconds_low,
        "train_s_ci_high": seconds_high,
    }


def target_summary(times: pd.DataFrame) -> pd.DataFrame:
    """Per stratum x arm: how many runs reached the target and the median time to it.

    Args:
        times: the output of :func:`time_to_target`.

    Returns:
        One row per stratum x arm with columns ``stratum, arm, target, n_runs, n_reached,
        fraction_reached, epoch_median, epoch_ci_low, epoch_ci_high, images_median, train_s_median,
        train_s_ci_low, train_s_ci_high``. Medians and 95 % intervals are those of :func:`median_time`;
        ``images_median`` is the epoch median times the arm's median images per epoch.
    """
    rows = [
        {"stratum": stratum, "arm": arm} | _arm_summary(runs)
        for (stratum, arm), runs in times.groupby(["stratum", "arm"], sort=True)
    ]
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def _ratios(summary: pd.DataFrame) -> pd.DataFrame:
    """Arm x stratum table of median training time / the stratum's best; inf = not reached or not run."""
    medians = summary.pivot(index="arm", columns="stratum", values="train_s_median").astype(float)
    best = medians.min()  # NaN when no arm of the stratum reached the target
    kept = best.index[best.notna() & (best > 0)]
    return (medians[kept] / best[kept]).fillna(math.inf)


def _tau_grid(ratios: pd.DataFrame) -> np.ndarray:
    """Log-spaced taus from 1 past the largest finite ratio, plus every ratio so each step is exact."""
    finite = ratios.to_numpy()[np.isfinite(ratios.to_numpy())]
    top = max(2.0, finite.max() * 1.1 if finite.size else 2.0)
    return np.unique(np.concatenate([[1.0], np.geomspace(1.0, top, 200), finite]))


def performance_profile(summary: pd.DataFrame, taus: Sequence[float] | None = None) -> pd.DataFrame:
    """Dolan & Moré performance profile of the median training time to target, across strata.

    In each stratum every arm gets the ratio r = its ``train_s_median`` / the smallest of that stratum
    (inf when it never reached the target or has no run there; arms are matched by their ``arm`` label).
    A stratum where no arm reached the target is left out. rho(tau) is the fraction of the kept strata
    with r <= tau: rho(1) is how often the arm was fastest, and how fast rho rises shows how far behind
    it is elsewhere. This is the AlgoPerf way to aggregate over workloads.

    Args:
        summary: the output of :func:`target_summary`.
        taus: the taus to evaluate; default a log-spaced grid from 1 to 1.1 x the largest finite ratio
            (at least 2), with 1 and every ratio included.

    Returns:
        Tidy rows ``arm, tau, rho``; empty (with those columns) with fewer than two kept strata, where a
        profile says nothing a single ranking does not.
    """
    ratios = _ratios(summary)
    if ratios.shape[1] < 2:
        return pd.DataFrame(columns=PROFILE_COLUMNS)
    grid = _tau_grid(ratios) if taus is None else np.asarray(sorted(set(taus)), dtype=float)
    rows = [
        {"arm": arm, "tau": tau, "rho": float((ratios.loc[arm] <= tau).mean())}
        for arm in ratios.index
        for tau in grid
    ]
    return pd.DataFrame(rows, columns=PROFILE_COLUMNS)
