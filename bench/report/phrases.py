"""How the report writes numbers, pairs and groups, in its tables and sentences (shared by its analyses)."""

from __future__ import annotations

import math

import pandas as pd

from bench.decide import ALPHA, Decision, fmt
from bench.report.groups import Grouping, format_value, label


def fmt_p(p: float) -> str:
    return "—" if math.isnan(p) else ("<0.001" if p < 0.001 else f"{p:.3f}")


def unit(metric: str) -> str:
    return f"{metric} (%)" if "accuracy" in metric else metric


def mean_sd(row: pd.Series, metric: str) -> str:
    mean, sd = row[f"{metric}_mean"], row[f"{metric}_sd"]
    return fmt(mean, metric) if math.isnan(sd) else f"{fmt(mean, metric)} ± {fmt(sd, metric)}"


def interval(low: float, high: float, metric: str) -> str:
    return "—" if math.isnan(low) else f"[{fmt(low, metric)}, {fmt(high, metric)}]"


def seeds_text(row: pd.Series) -> str:
    if row["test"] == "paired t":
        left = f", {int(row['seeds_left_out'])} unmatched left out" if row["seeds_left_out"] else ""
        return f"paired t, {int(row['n_pairs'])} seeds{left}"
    return f"{row['test']}, {int(row['n_a'])} vs {int(row['n_b'])} seeds"


def seeds_clause(row: pd.Series) -> str:
    """``~24 seeds per arm would likely decide it (21 more; an estimate)`` for an undecided pair."""
    needed, have = row["seeds_needed"], int(row["n_pairs"] or min(row["n_a"], row["n_b"]))
    if pd.isna(needed):
        return "at least 2 seeds per arm are needed for a test"
    if math.isinf(needed):
        return "more than 1000 seeds per arm would be needed at this spread (an estimate)"
    return f"~{int(needed)} seeds per arm would likely decide it ({max(int(needed) - have, 1)} more; an estimate)"


def signed(row: pd.Series) -> str:
    unit = "points" if "accuracy" in row["metric"] else "nats"
    return f"{row['arm_a']} − {row['arm_b']} = {fmt(row['diff'], row['metric'])} {unit}"


def ci_text(row: pd.Series, reversed_: bool = False) -> str:
    """The 95 % interval of ``arm_a − arm_b``, or of ``arm_b − arm_a`` when ``reversed_``: always of the
    difference the sentence states."""
    low, high = (-row["ci_high"], -row["ci_low"]) if reversed_ else (row["ci_low"], row["ci_high"])
    return f"95 % CI [{fmt(low, row['metric'])}, {fmt(high, row['metric'])}]"


def pair_sentence(row: pd.Series) -> str:
    """One comparison in words, e.g. ``adamw beats sgd_l2 by 4.1 points (paired t, 5 seeds, ...).``"""
    metric, a, b = row["metric"], row["arm_a"], row["arm_b"]
    if row["test"] == "none":
        return f"{a} vs {b} is undecided: {seeds_clause(row)}."
    if row["sd_diff"] == 0:
        return f"{a} vs {b} is undecided ({signed(row)}, {seeds_text(row)}): {row['reason']}."
    if row["decision"] == Decision.BETTER:
        loser = b if row["better"] == a else a
        size = f"{fmt(abs(row['diff']), metric)} {'points' if 'accuracy' in metric else 'nats'}"
        verb = "beats" if "accuracy" in metric else "has lower cross-entropy than"
        # The sentence states winner − loser in accuracy, loser − winner in cross-entropy (both positive): its
        # interval is that difference's, not always arm_a − arm_b's.
        stated_is_b_minus_a = (row["better"] == b) == ("accuracy" in metric)
        ci = ci_text(row, reversed_=stated_is_b_minus_a)
        return f"{row['better']} {verb} {loser} by {size} ({seeds_text(row)}, {ci}, p={row['p_holm']:.2g})."
    if row["decision"] == Decision.EQUIVALENT:
        margin = fmt(row["margin"], metric)
        return (
            f"{a} and {b} are equivalent within ±{margin} ({signed(row)}, {seeds_text(row)}, {ci_text(row)})."
        )
    holm = f", Holm p={row['p_holm']:.2g}" if row["p_value"] < ALPHA <= row["p_holm"] else ""
    return f"{a} vs {b} is undecided ({signed(row)}, {seeds_text(row)}, {ci_text(row)}{holm}): {seeds_clause(row)}."


def group_header(grouping: Grouping) -> list[str]:
    return [*grouping.stratum_label_columns, grouping.compare]


def group_cells(row: pd.Series, grouping: Grouping, label_columns: list[str]) -> list[str]:
    """The stratum's values, then the arm's short label (its full settings are in the Settings section)."""
    strata = [format_value(row[column]) for column in grouping.stratum_label_columns]
    return [*strata, label(row, label_columns)]
