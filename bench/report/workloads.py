"""Across workloads: how often each optimizer wins, ties or leaves a pair undecided, and a pooled aggregate.

A verdict on one workload is an anecdote (Crowded Valley: rankings change from task to task); across several,
the report says two things, never averaging runs of different workloads together:

- the **tally**: per pair of arms, in how many workloads each arm is *better*, the two are *equivalent*, or
  the pair is *undecided*, by the per-workload decisions of the verdict (bench/report/compare.py);
- the **aggregate**: the probability that a run of A beats a run of B (ties count half), averaged over the
  workloads (rliable's "average probability of improvement", Agarwal et al. 2021), with a 95 % interval from a
  bootstrap *stratified by workload*: each resample redraws the seeds within every workload (jointly for both
  arms where they share seeds, which keeps the pairing) and keeps the workloads; and the mean difference in
  points averaged the same way, with a t-interval (:func:`pooled_difference`). The intervals are about
  seed-to-seed noise on these workloads; they say nothing about workloads not run, which only more can.

Workloads are the values of ``workload.name``; the other stratum columns (a backend, say) keep groups apart,
each with its own tally. rliable itself was archived in 2025; this is the same computation on numpy/scipy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from bench.decide import BOOTSTRAP_SEED, Decision, arm_values, higher_is_better, probability_of_improvement
from bench.report.groups import determined_by, label
from bench.report.load import WORKLOAD
from bench.results import PROTOCOL_CONFIRMATION_CSV, PROTOCOL_DECISIONS_CSV, RunStatus

#: Resamples of the stratified bootstrap, and the seeds an arm needs in every workload for its interval: with
#: fewer, resampling 3 or 4 values a workload gives intervals far narrower than the noise they stand for.
N_RESAMPLES = 4000
MIN_SEEDS = 5
COLUMNS = [
    "group", "metric", "arm_a", "arm_b", "workloads", "wins_a", "wins_b", "equivalent", "undecided",
    "p_a_better", "p_a_better_ci_low", "p_a_better_ci_high", "mean_diff", "mean_diff_ci_low",
    "mean_diff_ci_high", "min_seeds",
]  # fmt: skip


def has_workloads(finals: pd.DataFrame) -> bool:
    """Whether the runs hold two workloads or more (only then is there anything across them to say)."""
    return WORKLOAD in finals and finals[WORKLOAD].nunique(dropna=True) >= 2


def group_columns(runs: pd.DataFrame, strata: Sequence[str]) -> list[str]:
    """The stratum columns that neither are nor follow from the workload (a backend; not the model's keys):
    each of their values is a group with a tally of its own."""
    return [c for c in strata if c != WORKLOAD and not determined_by(runs, c, [WORKLOAD])]


def across_workloads(
    finals: pd.DataFrame, comparisons: pd.DataFrame, strata: Sequence[str], metric: str = "val_accuracy"
) -> pd.DataFrame:
    """The tally and the pooled aggregate of every pair of arms, per group of workloads.

    Args:
        finals: one row per run (last epoch) with ``arm``, ``stratum``, ``seed``, ``status`` and ``WORKLOAD``.
        comparisons: the per-stratum tests and decisions (``compare.compare_arms``).
        strata: the grouping's stratum columns (``WORKLOAD`` among them).

    Returns:
        One row per group x pair with the columns :data:`COLUMNS`: ``workloads`` compared, the tally, and
        ``p_a_better`` / ``mean_diff`` (in the metric's unit, A - B) with their 95 % intervals (NaN where an
        arm has fewer than :data:`MIN_SEEDS` seeds in a workload).
    """
    rows = []
    done = finals[finals["status"] == RunStatus.COMPLETED]
    decided = comparisons[comparisons["metric"] == metric]
    others = group_columns(finals, strata)
    for _, runs in done.groupby(others, dropna=False, sort=True) if others else [((), done)]:
        group = label(runs.iloc[0], others) if others else ""
        tests = decided[decided["stratum"].isin(runs["stratum"].unique())]
        for arm_a, arm_b in _pairs(tests):
            rows.append(
                {"group": group, "metric": metric, "arm_a": arm_a, "arm_b": arm_b}
                | _tally(tests, arm_a, arm_b)
                | pooled(_per_workload(runs, arm_a, arm_b, metric), higher_is_better(metric))
            )
    return pd.DataFrame(rows, columns=COLUMNS)


def pair_tests(
    finals: pd.DataFrame, comparisons: pd.DataFrame, strata: Sequence[str], pair: pd.Series
) -> pd.DataFrame:
    """One row of :func:`across_workloads`'s per-workload tests, oriented A - B as that row names the arms
    (``diff`` and its interval flipped where a workload compared them the other way round)."""
    others = group_columns(finals, strata)
    tests = comparisons[comparisons["metric"] == pair["metric"]]
    if others:
        tests = tests[tests.apply(label, axis=1, columns=others) == pair["group"]]
    same = (tests["arm_a"] == pair["arm_a"]) & (tests["arm_b"] == pair["arm_b"])
    swapped = (tests["arm_a"] == pair["arm_b"]) & (tests["arm_b"] == pair["arm_a"])
    chosen = tests[same | swapped].astype({"diff": float, "ci_low": float, "ci_high": float})
    flip = swapped[same | swapped].to_numpy()
    chosen.loc[flip, ["diff", "ci_low", "ci_high"]] = -chosen.loc[
        flip, ["diff", "ci_high", "ci_low"]
    ].to_numpy()
    chosen.loc[flip, ["arm_a", "arm_b"]] = [pair["arm_a"], pair["arm_b"]]
    return chosen.sort_values(WORKLOAD, ascending=False)


def _pairs(tests: pd.DataFrame) -> list[tuple[str, str]]:
    """The pairs compared in any workload, each in the order of its first comparison."""
    seen: dict[frozenset[str], tuple[str, str]] = {}
    for a, b in zip(tests["arm_a"], tests["arm_b"], strict=True):
        seen.setdefault(frozenset((a, b)), (a, b))
    return list(seen.values())


def _tally(tests: pd.DataFrame, arm_a: str, arm_b: str) -> dict[str, int]:
    """In how many workloads A is better, B is better, they are equivalent, the pair is undecided."""
    pair = tests[
        ((tests["arm_a"] == arm_a) & (tests["arm_b"] == arm_b))
        | ((tests["arm_a"] == arm_b) & (tests["arm_b"] == arm_a))
    ]
    better = pair["decision"] == Decision.BETTER
    return {
        "workloads": len(pair),
        "wins_a": int((better & (pair["better"] == arm_a)).sum()),
        "wins_b": int((better & (pair["better"] == arm_b)).sum()),
        "equivalent": int((pair["decision"] == Decision.EQUIVALENT).sum()),
        "undecided": int((~better & (pair["decision"] != Decision.EQUIVALENT)).sum()),
    }


def _per_workload(
    runs: pd.DataFrame, arm_a: str, arm_b: str, metric: str
) -> list[tuple[pd.Series, pd.Series]]:
    """Each workload's final values of A and of B by seed, where both arms ran."""
    pairs = []
    for _, workload in runs.groupby(WORKLOAD, sort=True):
        a = arm_values(workload[workload["arm"] == arm_a], metric)
        b = arm_values(workload[workload["arm"] == arm_b], metric)
        if len(a) and len(b):
            pairs.append((a, b))
    return pairs


def pooled(
    per_workload: Sequence[tuple[pd.Series, pd.Series]], higher_better: bool = True
) -> dict[str, float]:
    """The aggregate over the workloads: average P(A beats B), with a stratified-bootstrap 95 % percentile
    interval (:data:`N_RESAMPLES`, a fixed seed: the same runs give the same numbers; from :data:`MIN_SEEDS`
    seeds an arm in every workload), and the average mean difference A - B, with a t-interval."""
    nan = math.nan
    result = {"p_a_better": nan, "p_a_better_ci_low": nan, "p_a_better_ci_high": nan, "min_seeds": 0}
    result |= {"mean_diff": nan, "mean_diff_ci_low": nan, "mean_diff_ci_high": nan}
    if not per_workload:
        return result
    sign = 1.0 if higher_better else -1.0  # P(A beats B) counts lower losses as wins
    arrays = [(a.to_numpy(float), b.to_numpy(float), _shared(a, b)) for a, b in per_workload]
    result["p_a_better"] = float(
        np.mean([probability_of_improvement(sign * a, sign * b) for a, b, _ in arrays])
    )
    result["min_seeds"] = min(min(len(a), len(b)) for a, b, _ in arrays)
    result |= pooled_difference(arrays)
    if result["min_seeds"] < MIN_SEEDS:
        return result
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    draws = np.zeros(N_RESAMPLES)
    for a, b, shared in arrays:
        a_draw, b_draw = _resample(a, b, shared, rng)
        draws += probability_of_improvement(sign * a_draw, sign * b_draw, axis=-1)
    result["p_a_better_ci_low"], result["p_a_better_ci_high"] = np.percentile(
        draws / len(arrays), [2.5, 97.5]
    )
    return result


def pooled_difference(arrays: Sequence[tuple[np.ndarray, np.ndarray, bool]]) -> dict[str, float]:
    """The mean over workloads of each one's mean difference A - B (paired by seed where the arms share their
    seeds, else Welch's), and its 95 % t-interval: the workloads' variances add (divided by their number
    squared) and the degrees of freedom are Welch-Satterthwaite's. A t-interval, not a bootstrap one, because
    with a few seeds a workload the bootstrap's is far too narrow (3 seeds: about half the t-interval)."""
    diffs, variances, dofs = [], [], []
    for a, b, shared in arrays:
        if shared:
            d = a - b
            diffs.append(d.mean())
            variances.append(d.var(ddof=1) / len(d) if len(d) > 1 else math.nan)
            dofs.append(len(d) - 1)
        else:
            va = a.var(ddof=1) / len(a) if len(a) > 1 else math.nan
            vb = b.var(ddof=1) / len(b) if len(b) > 1 else math.nan
            diffs.append(a.mean() - b.mean())
            variances.append(va + vb)
            dofs.append(
                (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)) if va + vb > 0 else 1.0
            )
    mean, total = float(np.mean(diffs)), float(np.sum(variances))
    result = {"mean_diff": mean, "mean_diff_ci_low": math.nan, "mean_diff_ci_high": math.nan}
    if not math.isfinite(total):
        return result
    if total == 0:  # no spread at all: the difference is what it is
        return result | {"mean_diff_ci_low": mean, "mean_diff_ci_high": mean}
    dof = total**2 / sum(v**2 / f for v, f in zip(variances, dofs, strict=True) if v > 0)
    half = float(stats.t.ppf(0.975, dof)) * math.sqrt(total) / len(arrays)
    return result | {"mean_diff_ci_low": mean - half, "mean_diff_ci_high": mean + half}


def _shared(a: pd.Series, b: pd.Series) -> bool:
    """Whether A and B ran exactly the same seeds in this workload (then they are resampled together)."""
    return len(a) == len(b) and set(a.index) == set(b.index)


def _resample(
    a: np.ndarray, b: np.ndarray, shared: bool, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """N_RESAMPLES redraws of one workload's seeds (rows): the same seeds for both arms when they share them."""
    picks_a = rng.integers(0, len(a), (N_RESAMPLES, len(a)))
    picks_b = picks_a if shared else rng.integers(0, len(b), (N_RESAMPLES, len(b)))
    return a[picks_a], b[picks_b]


def tuned_verdicts(reports: Mapping[str, Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tuned verdicts of a fair comparison per workload (one report folder each, by workload name) as
    :func:`across_workloads` takes them: the confirmation runs (finals) and the last round's decisions.

    A workload's verdict is its protocol's: test accuracy of each optimizer's tuned setting on the fresh
    confirmation seeds, decided with the protocol's own error control.
    """
    finals, decisions = [], []
    for name, folder in reports.items():
        confirmation = pd.read_csv(folder / PROTOCOL_CONFIRMATION_CSV)
        rounds = pd.read_csv(folder / PROTOCOL_DECISIONS_CSV)
        labels = {"stratum": name, WORKLOAD: name}
        finals.append(confirmation.rename(columns={"optimizer": "arm"}).assign(**labels))
        decisions.append(rounds[rounds["round"] == rounds["round"].max()].assign(**labels))
    return pd.concat(finals, ignore_index=True), pd.concat(decisions, ignore_index=True)
