"""Every pair of arms of a stratum, on each comparable metric: the tests' numbers, and the per-seed
differences behind the paired ones (compare.py, bench/decide.py)."""

from __future__ import annotations

import math

import pandas as pd

from bench.decide import ALPHA, MIN_SEEDS_BOOTSTRAP, Decision, fmt
from bench.report.analysis import Output, ReportInput
from bench.report.compare import seed_differences
from bench.report.phrases import fmt_p, interval, seeds_text
from bench.report.plots import plot_paired_differences
from bench.report.render import Heading, Image, Paragraph, Table
from bench.results import COMPARISONS_CSV, SEED_DIFFERENCES_CSV, differences_png

FIGURE_CAPTION = (
    "Final {metric}, A − B: one dot per seed (paired comparisons), black = mean with its 95 % "
    "interval (paired t, or Welch where the seeds differ), grey band = ±margin, the decision on the right."
)


def analyse(data: ReportInput) -> Output:
    differences = seed_differences(data.finals, data.grouping.strata)
    output = Output(tables={COMPARISONS_CSV: data.comparisons, SEED_DIFFERENCES_CSV: differences})
    if data.comparisons.empty:
        output.blocks = [
            Heading("Pairwise comparisons"),
            Paragraph("No stratum holds two arms with completed runs."),
        ]
        return output
    header = ["stratum", "metric", "A vs B", "test", "A − B", "95 % CI", "bootstrap CI", "p (Holm)"]
    header += ["TOST p (Holm)", "r", "P(A beats B)", "decision"]
    rows = [_comparison_cells(row) for _, row in data.comparisons.iterrows()]
    text = (
        "Differences of final val_accuracy (points) and validation cross-entropy (nats) between two arms of one "
        "stratum. `test`: paired t on the seeds both arms ran (`scipy.stats.ttest_rel`), Welch's t where they "
        "share fewer than two (`scipy.stats.ttest_ind`, unequal variances). `95 % CI`: that test's interval of "
        f"the mean difference. `bootstrap CI`: BCa (`scipy.stats.bootstrap`), given from {MIN_SEEDS_BOOTSTRAP} "
        "seeds an arm on: with fewer, resamples of so few values give a spread too narrow to trust. "
        "`p (Holm)`: the difference test, Holm-adjusted across the pairs of the stratum (`statsmodels`). "
        f"`TOST p`: equivalence within ±margin, two one-sided tests (`statsmodels ttost_paired/ttost_ind`). "
        "`r`: Pearson correlation of the paired arms over seeds (how much of a seed's luck both share; a "
        "high r is where pairing gains). `P(A beats B)`: probability that a run of A scores better than a run "
        "of B, rliable's probability of improvement (Mann-Whitney U / n_A n_B), with a percentile bootstrap "
        f"interval from {MIN_SEEDS_BOOTSTRAP} seeds an arm on. Decisions at the {100 * ALPHA:.0f} % level; "
        "`~N seeds` (undecided only): seeds per arm for an 80 % chance of a decision at level 5 % / k for k "
        "pairs (Holm's strictest step) if the observed mean difference and spread hold, an estimate "
        "(`statsmodels TTestPower`, or the TOST power where the difference is inside the margin). "
        f"Files: `{COMPARISONS_CSV}`, `{SEED_DIFFERENCES_CSV}`."
    )
    output.blocks = [Heading("Pairwise comparisons"), Paragraph(text), Table(header, rows)]
    for metric in dict.fromkeys(data.comparisons["metric"]):  # one paired-differences figure per metric
        file = differences_png(metric)
        output.figures[file] = plot_paired_differences(differences, data.comparisons, metric)
        output.blocks.append(Image(file, FIGURE_CAPTION.format(metric=metric)))
    return output


def _comparison_cells(row: pd.Series) -> list[str]:
    metric = row["metric"]
    needed = "" if pd.isna(row["seeds_needed"]) else f", ~{row['seeds_needed']:.0f} seeds"
    if isinstance(row["seeds_needed"], float) and math.isinf(row["seeds_needed"]):
        needed = ", >1000 seeds"
    return [
        row["stratum"] or "all runs",
        metric,
        f"{row['arm_a']} vs {row['arm_b']}",
        seeds_text(row) if row["test"] != "none" else f"none, {row['n_a']} vs {row['n_b']} seeds",
        fmt(row["diff"], metric),
        interval(row["ci_low"], row["ci_high"], metric),
        interval(row["boot_ci_low"], row["boot_ci_high"], metric),
        fmt_p(row["p_holm"]),
        fmt_p(row["tost_p_holm"]),
        "—" if pd.isna(row["corr"]) else f"{row['corr']:.2f}",
        _probability(row),
        (f"{row['better']} better" if row["decision"] == Decision.BETTER else row["decision"]) + needed,
    ]


def _probability(row: pd.Series) -> str:
    if pd.isna(row["p_a_better"]):
        return "—"
    if pd.isna(row["p_a_better_ci_low"]):
        return f"{row['p_a_better']:.2f}"
    return f"{row['p_a_better']:.2f} [{row['p_a_better_ci_low']:.2f}, {row['p_a_better_ci_high']:.2f}]"
