"""The verdict of an ordinary sweep: per stratum, every pair of arms in words (tests in compare.py)."""

from __future__ import annotations

import math

import pandas as pd

from bench.decide import Decision, fmt
from bench.report.analysis import Output, ReportInput
from bench.report.compare import MAX_ARMS_COMPARED, crowded_strata
from bench.report.phrases import pair_sentence
from bench.report.render import Block, Heading, Paragraph
from bench.results import RunStatus


def analyse(data: ReportInput) -> Output:
    if data.protocol:  # a fair comparison: the protocol's tuned verdict takes this place (fair_comparison.py)
        return Output()
    return Output(verdict(data))


def verdict(data: ReportInput) -> list[Block]:
    done = data.finals["status"] == RunStatus.COMPLETED
    blocks: list[Block] = [Heading("Verdict")]
    if not done.any():
        text = "No run has completed yet, so there is nothing to compare; see the runs not averaged below."
        return [*blocks, Paragraph(text)]
    crowded = crowded_strata(data.finals, data.grouping.strata)
    if data.comparisons.empty:
        text = f"Each stratum has completed runs of a single {data.grouping.compare}: nothing to compare."
        return [*blocks, Paragraph(_crowded_sentence(crowded) if crowded else text + _excluded(done))]
    margins = data.comparisons.groupby("metric")["margin"].first()
    method = (
        "Final-epoch values of completed runs. A seed fixes the initial weights and the batch order, so arms "
        "are compared seed by seed (paired t-test) wherever they share seeds, by Welch's test otherwise. Each "
        "pair ends in one of four answers: one arm **better** (95 % interval of the difference excludes 0, "
        "Holm-adjusted across the pairs of a stratum), **equivalent** (two one-sided tests show the difference "
        f"is within ±{fmt(margins.get('val_accuracy', math.nan), 'val_accuracy')} accuracy points, "
        f"±{fmt(margins.get('val_ce_loss', math.nan), 'val_ce_loss')} nats of cross-entropy), or "
        "**undecided**, with an estimate of the seeds that would decide it."
    )
    blocks.append(Paragraph(method + _excluded(done)))
    for stratum, tests in data.comparisons.groupby("stratum", sort=False):
        blocks.append(_stratum_verdict(stratum, tests, data.flags[data.flags["stratum"] == stratum]))
    if crowded:
        blocks.append(Paragraph(_crowded_sentence(crowded)))
    return blocks


def _loss_sentence(tests: pd.DataFrame) -> str:
    """The cross-entropy decisions in one sentence: ``adamw < sgd_l2; adam_l2 vs adamw undecided``."""
    parts = []
    for _, row in tests.iterrows():
        if row["decision"] == Decision.BETTER:
            loser = row["arm_b"] if row["better"] == row["arm_a"] else row["arm_a"]
            parts.append(f"{row['better']} lower than {loser} ({fmt(abs(row['diff']), row['metric'])} nats)")
        else:
            parts.append(f"{row['arm_a']} vs {row['arm_b']} {row['decision']}")
    return f" Validation cross-entropy: {'; '.join(parts)}." if parts else ""


def _flag_sentence(flags: pd.DataFrame) -> str:
    """``Warnings: sgd_l2 near chance; adamw, sgd_l2 still climbing.`` (details in the Warnings section)."""
    if flags.empty:
        return ""
    parts = [f"{', '.join(group['arm'])} {flag}" for flag, group in flags.groupby("flag", sort=False)]
    return f" Warnings (see below): {'; '.join(parts)}."


def _stratum_verdict(name: str, tests: pd.DataFrame, flags: pd.DataFrame) -> Paragraph:
    accuracy = " ".join(pair_sentence(row) for _, row in tests[tests["metric"] == "val_accuracy"].iterrows())
    text = f"**{name or 'All runs'}.** {accuracy}{_loss_sentence(tests[tests['metric'] == 'val_ce_loss'])}"
    return Paragraph(text + _flag_sentence(flags))


def _crowded_sentence(crowded: dict[str, int]) -> str:
    listed = ", ".join(f"{name or 'all runs'} ({n} arms)" for name, n in crowded.items())
    return (
        f"Not compared pair by pair: {listed}. Beyond {MAX_ARMS_COMPARED} arms (such as the cells of an lr x "
        "regularization grid) the pairs are too many for a verdict: Holm's correction across them leaves "
        "nothing decided, and picking the best cells from the same runs would flatter them. A grid's answer is "
        "the heatmap section; to compare a few settings, run (or report) just those."
    )


def _excluded(done: pd.Series) -> str:
    excluded = int((~done).sum())
    return (
        f" {excluded} run(s) diverged, failed or did not finish and are left out (listed below)."
        if excluded
        else ""
    )
