"""The verdict of a fair-comparison sweep (``experiment=fair_comparison``): the protocol's own record,
``protocol.json`` (bench/protocol.py), in words, tables and one figure; nothing for any other sweep.

Its verdict replaces the pairwise one of an ordinary sweep: the generic comparison would mix tuning trials,
selected on the same validation photos, with the confirmation runs. The tuned verdict is on the held-out test
split, from the confirmation seeds alone.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from bench.decide import fmt
from bench.report.analysis import Output, ReportInput
from bench.report.phrases import pair_sentence
from bench.report.plots import palette, tight_layout
from bench.report.render import Block, Heading, Image, Paragraph, Table
from bench.report.stats import expected_max
from bench.results import (
    BUDGET_CURVES_PNG,
    PROTOCOL_BUDGET_CURVES_CSV,
    PROTOCOL_CONFIRMATION_CSV,
    PROTOCOL_DECISIONS_CSV,
    PROTOCOL_FILE,
    PROTOCOL_TRIALS_CSV,
)


def tables(record: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """The protocol's tidy tables: every tuning trial, every confirmation run, each round's decisions, and
    the budget curves."""
    trials = pd.DataFrame(record["trials"])
    settings = pd.json_normalize(trials.pop("setting").tolist()).add_prefix("optimizer.")
    trials = pd.concat([trials, settings], axis=1)
    decisions = pd.DataFrame(
        [
            {"round": r["round"], "seeds": len(r["seeds"]), **d}
            for r in record["rounds"]
            for d in r["decisions"]
        ]
    )
    return {
        PROTOCOL_TRIALS_CSV: trials,
        PROTOCOL_CONFIRMATION_CSV: pd.DataFrame(record["confirmation"]),
        PROTOCOL_DECISIONS_CSV: decisions,
        PROTOCOL_BUDGET_CURVES_CSV: budget_curves(trials),
    }


def budget_curves(trials: pd.DataFrame) -> pd.DataFrame:
    """Expected best validation accuracy of n trials, n = 1..budget, per optimizer, with its spread.

    A setting's value is its mean ``score`` (val_accuracy, 0 if diverged) over the tuning seeds, as
    selection uses it.
    """
    rows = []
    settings = trials.groupby(["optimizer", "trial"], sort=True)["score"].mean()
    for optimizer, values in settings.groupby(level="optimizer", sort=False):
        for n in range(1, len(values) + 1):
            mean, sd = expected_max(values.to_numpy(), n)
            rows.append({"optimizer": optimizer, "trials": n, "expected_best": mean, "sd": sd})
    return pd.DataFrame(rows, columns=["optimizer", "trials", "expected_best", "sd"])


def plot_budget_curves(curves: pd.DataFrame) -> plt.Figure:
    """Expected best validation accuracy against the number of random-search trials, ±1 sd band."""
    colors = palette(curves["optimizer"])
    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    for optimizer, rows in curves.groupby("optimizer", sort=True):
        mean, sd = 100 * rows["expected_best"], 100 * rows["sd"]
        ax.plot(rows["trials"], mean, marker="o", color=colors[optimizer], label=optimizer)
        ax.fill_between(rows["trials"], mean - sd, mean + sd, color=colors[optimizer], alpha=0.2)
    ax.set(xlabel="random-search trials (budget)", ylabel="expected best val_accuracy (%)")
    ax.set_title(
        "Expected best validation accuracy vs tuning budget\n(Dodge et al. 2019; band: ±1 sd)", fontsize=10
    )
    ax.legend(title="optimizer", frameon=False)
    ax.grid(alpha=0.3)
    tight_layout(fig)
    return fig


def _setting_text(setting: dict[str, float]) -> str:
    return ", ".join(f"{key}={value:g}" for key, value in setting.items())


def _decision_sentence(record: dict[str, Any]) -> str:
    last = record["rounds"][-1]
    rows = [pd.Series(decision) for decision in last["decisions"]]
    sentences = " ".join(pair_sentence(row) for row in rows)
    used, rounds = record["seeds_used"], len(record["rounds"])
    if record["stopped"] == "decided":
        how = f"Every pair was decided after {used} confirmation seeds per optimizer ({rounds} round(s))."
    else:
        how = (
            f"Stopped at protocol.max_seeds={used} seeds per optimizer ({rounds} rounds) with a pair still "
            "undecided: more seeds would be needed (the estimate below) to decide it at this margin."
        )
    return f"{how} On the held-out test split: {sentences}"


def analyse(data: ReportInput) -> Output:
    """The verdict section, in the place of an ordinary sweep's (bench/report/analyses/verdict.py)."""
    record = data.protocol
    if not record:
        return Output()
    frames = tables(record)
    figure = plot_budget_curves(frames[PROTOCOL_BUDGET_CURVES_CSV])
    compute = record["compute"]
    intro = (
        f"This sweep is a fair comparison: each optimizer was tuned by random search with the same budget "
        f"({record['budget']} settings x {len(record['tuning_seeds'])} tuning seed(s)), its best setting chosen "
        f"on validation accuracy, then rerun on fresh seeds, the same for every optimizer (paired), in rounds "
        f"until every pair was decided or the seeds ran out. Decisions use the rules of an ordinary report, on "
        f"test accuracy (photos no tuning decision saw), margin ±{fmt(record['margin'], 'test_accuracy')} "
        f"points, each look at level {record['alpha_per_look']:.3g} (5 % over {record['looks_planned']} planned "
        f"looks, so that stopping early does not inflate the error rates). The pairwise comparisons of an "
        f"ordinary sweep are left out: they would mix tuning trials with confirmation runs."
    )
    spaces = [
        [name, key, f"{low:g}", f"{high:g}"]
        for name, space in record["spaces"].items()
        for key, (low, high) in space.items()
    ]
    best = [
        [
            name,
            _setting_text(entry["setting"]),
            str(entry["trial"]),
            fmt(entry["val_accuracy_mean"], "val_accuracy"),
        ]
        for name, entry in record["best"].items()
    ]
    rounds, seeds_so_far = [], 0
    for r in record["rounds"]:
        seeds_so_far += len(r["seeds"])
        for d in r["decisions"]:
            ci = f"[{fmt(d['ci_low'], 'test_accuracy')}, {fmt(d['ci_high'], 'test_accuracy')}]"
            rounds.append(
                [str(r["round"]), str(seeds_so_far), f"{d['arm_a']} − {d['arm_b']}", fmt(d["diff"], "test_accuracy"),
                 ci, d["decision"], d.get("better") or ""]
            )  # fmt: skip
    cost = (
        f"Compute: {compute['runs']} runs ({compute['tuning_runs']} tuning, {compute['confirmation_runs']} "
        f"confirmation), {compute['train_images']:,} training images, {compute['run_wall_time_s'] / 60:.1f} "
        f"min of run time, {compute['elapsed_s'] / 60:.1f} min from the first run to the last. Files: "
        f"`{PROTOCOL_TRIALS_CSV}`, `{PROTOCOL_CONFIRMATION_CSV}`, `{PROTOCOL_DECISIONS_CSV}`, "
        f"`{PROTOCOL_BUDGET_CURVES_CSV}`, and the sweep's `{PROTOCOL_FILE}`."
    )
    caption = (
        "For n = 1 to the budget: the expected best mean validation accuracy of n settings drawn from the "
        "trials run (Dodge et al. 2019), ±1 sd. A curve that rises late belongs to an optimizer that is hard to "
        "tune; curves that cross mean the ranking depends on the budget."
    )
    document: list[Block] = [
        Heading("Verdict"),
        Paragraph(intro),
        Paragraph(f"**Tuned verdict.** {_decision_sentence(record)}"),
        Heading("Search spaces (log-uniform)", level=3),
        Table(["optimizer", "key", "low", "high"], spaces),
        Heading("Best settings (by mean validation accuracy over the tuning seeds)", level=3),
        Table(["optimizer", "setting", "trial", "val_accuracy (%)"], best),
        Heading("Confirmation rounds (test accuracy)", level=3),
        Table(["round", "seeds", "pair (A − B)", "diff (points)", "95 % CI", "decision", "better"], rounds),
        Image(BUDGET_CURVES_PNG, caption),
        Paragraph(cost),
    ]
    return Output(document, frames, {BUDGET_CURVES_PNG: figure})
