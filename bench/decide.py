"""The statistics that decide: for a pair of arms (two optimizers' final metrics, by seed), which is better, by
how much and how sure, or that they are equivalent, or that more seeds are needed.

A layer below both users of a decision: the report (bench/report/compare.py tests every pair of arms of a
stratum with it) and the fair-comparison protocol (bench/protocol/run.py decides each round with it). It knows
nothing of sweeps, strata or files: values by seed in, one row of statistics and a :class:`Decision` out.

Design (the runner makes it so): a seed fixes the initial weights and the batch order for every optimizer, so
two arms' runs with the same seed are *paired*. The comparison is paired whenever the arms share at least two
seeds (seeds only one arm has are left out of it, and counted); only otherwise Welch's unpaired test is used.

Which function computes each number:

- difference and 95 % interval, p-value: ``scipy.stats.ttest_rel`` (paired) or ``scipy.stats.ttest_ind(...,
  equal_var=False)`` (Welch), ``.confidence_interval(0.95)``;
- bootstrap interval (BCa, from ``MIN_SEEDS_BOOTSTRAP`` seeds on): ``scipy.stats.bootstrap``;
- correlation of the paired arms: ``scipy.stats.pearsonr``;
- probability of improvement P(A beats B), as rliable defines it (Agarwal et al. 2021): the Mann-Whitney
  statistic over all runs of A x all runs of B, ``scipy.stats.mannwhitneyu(a, b).statistic / (n_a n_b)``, with
  a percentile bootstrap interval that resamples each arm's runs separately (rliable's stratified bootstrap);
- equivalence within ±margin: two one-sided tests, paired ``scipy.stats.ttest_1samp`` of the differences
  against ±margin (:func:`paired_tests`, what ``statsmodels.stats.weightstats.ttost_paired`` computes) /
  ``statsmodels``' ``ttost_ind(usevar="unequal")``;
- Holm's correction across the pairs of one stratum and metric: ``statsmodels.stats.multitest.multipletests``;
- seeds needed: ``statsmodels.stats.power.TTestPower.solve_power`` (a difference) or :func:`tost_power` (an
  equivalence), at 80 % power, assuming the observed mean difference and standard deviation hold.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import Enum
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower
from statsmodels.stats.weightstats import ttost_ind, ttost_paired

ALPHA = 0.05  # every test and interval of the report and the protocol: 5 % level, 95 % intervals


class Decision(str, Enum):
    """How a pair ends. A ``str`` enum: comparisons.csv, protocol.json and protocol_decisions.csv hold the
    plain words, and a word read back from them compares equal to its member."""

    BETTER = "better"  # one arm's difference test passes (its name is in the row's ``better``)
    EQUIVALENT = "equivalent"  # two one-sided tests put the difference within ±margin
    UNDECIDED = "undecided"  # neither: more seeds would be needed

    __str__ = str.__str__  # the word itself in str() and f-strings, not "Decision.BETTER"
    __format__ = str.__format__


#: The decisions that settle a pair: a protocol stops when every pair has one of them.
DECIDED = (Decision.BETTER, Decision.EQUIVALENT)


def fmt(value: Any, metric: str = "", digits: int = 3) -> str:
    """How a number is shown in words, in a decision's reason as in the report: accuracies in percent (points)
    with one decimal, other floats with ``digits`` decimals (losses in nats), missing or infinite as —."""
    if value is None or pd.isna(value) or (isinstance(value, float) and math.isinf(value)):
        return "—"
    if "accuracy" in metric:
        return f"{100 * value:.1f}"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


#: Below this many seeds a bootstrap interval is too narrow to trust: resampling 5 values gives only 126
#: distinct resamples and estimates the spread with divisor n, so at 2-9 seeds the t-interval is the honest one.
MIN_SEEDS_BOOTSTRAP = 10
N_RESAMPLES = 9999
BOOTSTRAP_SEED = 0  # a fixed resampling seed: the same files always give the same report
POWER = 0.8
NO_SPREAD = 1e-12  # differences equal to round-off: a t statistic would divide by float noise
MAX_SEEDS = 1000  # an estimate beyond this is reported as "more than 1000"
PAIR_COLUMNS = [
    "metric", "arm_a", "arm_b", "test", "n_a", "n_b", "n_pairs", "seeds_left_out", "mean_a", "mean_b",
    "diff", "sd_diff", "ci_low", "ci_high", "p_value", "p_holm", "boot_ci_low", "boot_ci_high", "corr",
    "p_a_better", "p_a_better_ci_low", "p_a_better_ci_high", "wins_a", "margin", "tost_p", "tost_p_holm",
    "decision", "better", "seeds_needed", "reason",
]  # fmt: skip


def higher_is_better(metric: str) -> bool:
    return "loss" not in metric


def arm_values(runs: pd.DataFrame, metric: str) -> pd.Series:
    """One arm's final ``metric`` indexed by seed: completed runs with a finite value only."""
    values = runs.set_index("seed")[metric].astype(float)
    return values[np.isfinite(values)].sort_index()


def design(a: pd.Series, b: pd.Series) -> str:
    """``paired`` when the arms share at least two seeds, else ``welch`` (``none`` below two runs an arm)."""
    if len(a.index.intersection(b.index)) >= 2:
        return "paired"
    return "welch" if min(len(a), len(b)) >= 2 else "none"


def difference_test(a: np.ndarray, b: np.ndarray, paired: bool) -> dict[str, float]:
    """Mean of a - b (paired: the per-seed differences), its 95 % t-interval and two-sided p-value."""
    test = stats.ttest_rel(a, b) if paired else stats.ttest_ind(a, b, equal_var=False)
    ci = test.confidence_interval(1 - ALPHA)
    sd = np.std(a - b, ddof=1) if paired else math.sqrt(np.var(a, ddof=1) + np.var(b, ddof=1))
    return {"ci_low": ci.low, "ci_high": ci.high, "p_value": test.pvalue, "sd_diff": sd}


def paired_tests(a: np.ndarray, b: np.ndarray, margin: float) -> dict[str, np.ndarray]:
    """The paired design's tests on the last axis: one pair (1-D arrays, :func:`test_pair`) or many replicates
    of one (2-D, the error-rate simulation, bench/protocol/simulate.py), the same code for both.

    The mean difference's 95 % t-interval and two-sided p-value (``scipy.stats.ttest_rel``), the spread of the
    differences, and the equivalence p-value: two one-sided t-tests of the differences against -margin and
    +margin (``scipy.stats.ttest_1samp``), the larger p-value, as ``statsmodels``' ``ttost_paired`` computes it.
    """
    test = stats.ttest_rel(a, b, axis=-1)
    ci = test.confidence_interval(1 - ALPHA)
    differences = a - b
    above = stats.ttest_1samp(differences, -margin, axis=-1, alternative="greater").pvalue
    below = stats.ttest_1samp(differences, margin, axis=-1, alternative="less").pvalue
    return {
        "ci_low": ci.low,
        "ci_high": ci.high,
        "p_value": test.pvalue,
        "sd_diff": np.std(differences, ddof=1, axis=-1),
        "tost_p": np.maximum(above, below),
    }


def bootstrap_interval(a: np.ndarray, b: np.ndarray, paired: bool) -> tuple[float, float]:
    """BCa 95 % interval of the mean difference, or (nan, nan) below ``MIN_SEEDS_BOOTSTRAP`` seeds an arm."""
    if min(len(a), len(b)) < MIN_SEEDS_BOOTSTRAP:
        return math.nan, math.nan
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    if paired:
        result = stats.bootstrap((a - b,), np.mean, n_resamples=N_RESAMPLES, rng=rng)
    else:
        result = stats.bootstrap((a, b), mean_difference, n_resamples=N_RESAMPLES, rng=rng)
    return result.confidence_interval.low, result.confidence_interval.high


def mean_difference(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(a, axis=axis) - np.mean(b, axis=axis)


def probability_of_improvement(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    """P(a run of A scores higher than a run of B), ties counting half: rliable's definition."""
    return stats.mannwhitneyu(a, b, axis=axis).statistic / (a.shape[axis] * b.shape[axis])


def improvement(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """P(A beats B) with its percentile bootstrap interval (from ``MIN_SEEDS_BOOTSTRAP`` runs an arm on)."""
    point = float(probability_of_improvement(a, b))
    low = high = math.nan
    if min(len(a), len(b)) >= MIN_SEEDS_BOOTSTRAP:
        rng = np.random.default_rng(BOOTSTRAP_SEED)
        result = stats.bootstrap(
            (a, b), probability_of_improvement, n_resamples=N_RESAMPLES, method="percentile", rng=rng
        )
        low, high = result.confidence_interval.low, result.confidence_interval.high
    return {"p_a_better": point, "p_a_better_ci_low": low, "p_a_better_ci_high": high}


def tost_p(a: np.ndarray, b: np.ndarray, margin: float, paired: bool) -> float:
    """p-value of equivalence, |mean difference| < margin, by two one-sided t-tests (the larger of the two)."""
    if paired:
        return float(ttost_paired(a, b, -margin, margin)[0])
    return float(ttost_ind(a, b, -margin, margin, usevar="unequal")[0])


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson's r of the paired arms' values over seeds (how much of a seed's luck both arms share)."""
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(stats.pearsonr(a, b).statistic)


def tost_power(n: int, diff: float, sd: float, margin: float, alpha: float = ALPHA) -> float:
    """Approximate power of two one-sided t-tests with n seeds when the true difference is ``diff``.

    Each one-sided statistic is non-central t with n - 1 degrees of freedom and non-centrality
    (margin ± diff) / (sd / sqrt(n)); power ≈ 1 - P(T1 ≤ t_crit) - P(T2 ≤ t_crit), the usual approximation,
    tight when the power is high.
    """
    df, scale = n - 1, sd / math.sqrt(n)
    critical = stats.t.ppf(1 - alpha, df)
    miss = sum(stats.nct.cdf(critical, df, (margin + sign * diff) / scale) for sign in (1, -1))
    return max(0.0, 1.0 - miss)


def seeds_needed(diff: float, sd: float, margin: float, alpha: float = ALPHA) -> float:
    """Seeds per arm for 80 % power, if the observed mean difference and sd held (an estimate).

    A difference at least as large as the margin is a question of "which is better": the paired t-test's
    sample size (``TTestPower``). A smaller one is a question of equivalence: the smallest n at which
    :func:`tost_power` reaches 80 %. ``alpha`` is the level the test must pass: ALPHA / k for k pairs,
    Holm's strictest step. Returns inf beyond ``MAX_SEEDS``, nan without a spread to go on.
    """
    if not (math.isfinite(sd) and sd > 0 and math.isfinite(diff)):
        return math.nan
    if abs(diff) >= margin:
        n = TTestPower().solve_power(effect_size=abs(diff) / sd, alpha=alpha, power=POWER)
        return float(math.ceil(n)) if math.isfinite(n) and n <= MAX_SEEDS else math.inf
    for n in range(2, MAX_SEEDS + 1):
        if tost_power(n, diff, sd, margin, alpha) >= POWER:
            return float(n)
    return math.inf


def test_pair(a: pd.Series, b: pd.Series, metric: str, margin: float) -> dict[str, Any]:
    """Every statistic of one pair and metric; the decision is taken later, after Holm's correction."""
    kind = design(a, b)
    row: dict[str, Any] = {"metric": metric, "n_a": len(a), "n_b": len(b), "margin": margin}
    row |= {"mean_a": a.mean() if len(a) else math.nan, "mean_b": b.mean() if len(b) else math.nan}
    row["diff"] = row["mean_a"] - row["mean_b"]
    sign = 1.0 if higher_is_better(metric) else -1.0  # P(A beats B) counts lower losses as wins
    row |= improvement(sign * a.to_numpy(), sign * b.to_numpy()) if len(a) and len(b) else {}
    if kind == "none":
        return row | {"test": "none", "n_pairs": 0, "seeds_left_out": 0}
    paired = kind == "paired"
    if paired:
        shared = a.index.intersection(b.index)
        row["seeds_left_out"] = len(a) + len(b) - 2 * len(shared)
        a, b = a[shared], b[shared]
        row |= {"diff": (a - b).mean(), "wins_a": int((sign * (a - b) > 0).sum()), "n_pairs": len(shared)}
        row["corr"] = correlation(a.to_numpy(), b.to_numpy())
    else:
        row |= {"n_pairs": 0, "seeds_left_out": 0}
    x, y = a.to_numpy(), b.to_numpy()
    row["test"] = "paired t" if paired else "Welch t"
    if np.ptp(x - y if paired else np.concatenate([x, y])) <= NO_SPREAD:
        return row | {"sd_diff": 0.0}  # no spread at all: nothing to test with (decide() says so)
    if paired:
        row |= {key: float(value) for key, value in paired_tests(x, y, margin).items()}
    else:
        row |= difference_test(x, y, paired) | {"tost_p": tost_p(x, y, margin, paired)}
    row["boot_ci_low"], row["boot_ci_high"] = bootstrap_interval(x, y, paired)
    return row


def holm(p_values: pd.Series) -> pd.Series:
    """Holm-adjusted p-values over the finite entries (NaN stays NaN)."""
    adjusted = p_values.astype(float).copy()
    finite = adjusted.notna()
    if finite.any():
        adjusted[finite] = multipletests(adjusted[finite], alpha=ALPHA, method="holm")[1]
    return adjusted


def decide(
    row: Mapping[str, Any],
    n_tests: int = 1,
    alpha: float = ALPHA,
    tost_alpha: float | None = None,
    estimate: bool = True,
) -> dict[str, Any]:
    """better (which arm) / equivalent / undecided, the reason in words, and seeds needed when undecided.

    ``n_tests`` is the number of pairs Holm corrects over, for the seeds-needed estimate; ``alpha`` the level
    the (Holm-adjusted) difference test's p-value must pass, ``tost_alpha`` the equivalence test's (default:
    ``alpha``): ALPHA, or a look's own levels where a protocol looks at its data more than once
    (bench/protocol/spending.py). ``estimate=False`` skips the seeds-needed estimate (NaN), which no decision
    reads.
    """
    tost_alpha = alpha if tost_alpha is None else tost_alpha
    metric, margin = row["metric"], row["margin"]
    if row["test"] == "none" or row["sd_diff"] == 0:
        reason = "fewer than 2 seeds in an arm" if row["test"] == "none" else "no spread across seeds"
        return {
            "decision": Decision.UNDECIDED,
            "better": "",
            "seeds_needed": math.nan,
            "reason": f"{reason}: no test",
        }
    ci = f"95 % CI [{fmt(row['ci_low'], metric)}, {fmt(row['ci_high'], metric)}]"
    holm_note = "" if row["p_holm"] == row["p_value"] else f", Holm-adjusted p={row['p_holm']:.3g}"
    if row["tost_p_holm"] < tost_alpha:
        reason = f"within ±{fmt(margin, metric)} by TOST (p={row['tost_p_holm']:.3g}); {ci}"
        return {"decision": Decision.EQUIVALENT, "better": "", "seeds_needed": math.nan, "reason": reason}
    if row["p_holm"] < alpha:
        a_wins = (row["diff"] > 0) == higher_is_better(metric)
        winner = row["arm_a"] if a_wins else row["arm_b"]
        reason = f"{row['test']} p={row['p_value']:.3g}{holm_note}; {ci}"
        return {"decision": Decision.BETTER, "better": winner, "seeds_needed": math.nan, "reason": reason}
    needed = seeds_needed(row["diff"], row["sd_diff"], margin, alpha / n_tests) if estimate else math.nan
    if row["p_value"] < alpha:  # significant alone, not once corrected for the other pairs
        reason = f"{ci}, but {row['test']} p={row['p_value']:.3g}{holm_note} over {n_tests} pairs"
    else:
        reason = f"{ci} holds 0 and reaches past ±{fmt(margin, metric)}{holm_note}"
    return {"decision": Decision.UNDECIDED, "better": "", "seeds_needed": needed, "reason": reason}


def adjust_and_decide(
    family: pd.DataFrame, alpha: float = ALPHA, tost_alpha: float | None = None
) -> pd.DataFrame:
    """Holm across the pairs of one stratum and metric, for the difference and the equivalence tests; the
    levels as :func:`decide` takes them."""
    family = family.assign(p_holm=holm(family["p_value"]), tost_p_holm=holm(family["tost_p"]))
    n_tests = max(1, int(family["p_value"].notna().sum()))
    return pd.DataFrame([row | decide(row, n_tests, alpha, tost_alpha) for row in family.to_dict("records")])
