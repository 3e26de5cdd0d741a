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
from bench.protocol.halving import ALIKE_P
from bench.protocol.options import SPENDING_NAMES
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
    PROTOCOL_ERROR_RATES_CSV,
    PROTOCOL_FILE,
    PROTOCOL_TRIALS_CSV,
)


def tables(record: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """The protocol's tidy tables: every tuning run (every rung's), every confirmation run, each round's
    decisions at its level, the budget curves and the simulated error rates."""
    trials = pd.DataFrame(record["trials"])
    settings = pd.json_normalize(trials.pop("setting").tolist()).add_prefix("optimizer.")
    trials = pd.concat([trials, settings], axis=1)
    decisions = pd.DataFrame(
        [
            {"round": r["round"], "seeds": len(r["seeds"]), "alpha": r.get("alpha"), **d}
            for r in record["rounds"]
            for d in r["decisions"]
        ]
    )
    rates = pd.DataFrame(
        [
            {"pair": e["pair"], "effect": e["effect"], "sd": e["sd"], "reps": e["reps"], **d}
            for e in record.get("error_rates") or []
            for d in e["designs"]
        ]
    )
    first = trials[trials["rung"] == trials["rung"].min()] if "rung" in trials else trials
    return {
        PROTOCOL_TRIALS_CSV: trials,
        PROTOCOL_CONFIRMATION_CSV: pd.DataFrame(record["confirmation"]),
        PROTOCOL_DECISIONS_CSV: decisions,
        PROTOCOL_BUDGET_CURVES_CSV: budget_curves(first),
        PROTOCOL_ERROR_RATES_CSV: rates,
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


def _minutes(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds / 60:.1f}"


def _levels(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Each planned look's levels; a record from before alpha spending had one level for every look."""
    if record.get("levels"):
        return record["levels"]
    alpha = record["alpha_per_look"]
    return [
        {"look": k + 1, "seeds": None, "alpha": alpha, "tost_alpha": alpha}
        for k in range(record["looks_planned"])
    ]


def _near_ties(record: dict[str, Any]) -> str:
    """The sentence saying which selections rest on a near-tie, or ''."""
    tied = [(name, entry) for name, entry in record["best"].items() if entry.get("near_tie")]
    if not tied:
        return ""
    parts = []
    for name, entry in tied:
        runner = entry["runner_up"]
        photos = entry.get("ahead_photos")
        apart = "the same accuracy" if not photos else f"{abs(photos):.0f} validation photo(s) apart"
        parts.append(
            f"{name}'s setting ({_setting_text(entry['setting'])}, {fmt(entry['val_accuracy_mean'], 'val_accuracy')} "
            f"%, cross-entropy {fmt(entry['val_ce_loss_mean'], 'val_ce_loss')}) against trial {runner['trial']} "
            f"({_setting_text(runner['setting'])}, {fmt(runner['val_accuracy_mean'], 'val_accuracy')} %, "
            f"{fmt(runner['val_ce_loss_mean'], 'val_ce_loss')}): {apart}"
        )
    return (
        f"**The tuned verdict rests on a near-tie.** Validation accuracy could not tell these settings apart "
        f"(within {record.get('near_tie_photos', 1):g} validation photo(s), what float round-off of another CPU can "
        f"flip), so the lower validation cross-entropy chose: {'; '.join(parts)}. The choice is stable on any "
        f"machine, but the verdict is about the chosen setting: the other could have confirmed otherwise."
    )


def _alike_rungs(record: dict[str, Any]) -> str:
    """The sentence naming each promotion made among trials whose accuracies were alike, or ''."""
    promoting = record.get("rungs", [])[:-1] if record.get("tuner", "random") != "random" else []
    alike = []
    for r in promoting:
        for name, sep in (r.get("separation") or {}).items():
            if sep.get("alike_p") is not None and sep["alike_p"] >= ALIKE_P:
                low, high = sep["accuracy_range"]
                ce = sep.get("ce_range")
                alike.append(
                    f"{name}'s at rung {r['rung']} ({r['epochs']} epoch(s)): accuracies {100 * low:.1f}-"
                    f"{100 * high:.1f} %, chi-square p = {sep['alike_p']:.2f}"
                    + (f", cross-entropies {ce[0]:.3f}-{ce[1]:.3f}" if ce else "")
                )
    if not alike:
        return ""
    by_ce = record["halving"].get("promote_by", "val_accuracy") == "val_ce_loss"
    rested_on = "their cross-entropies alone" if by_ce else "accuracy differences that chance alone makes"
    return (
        f"**Promotions among look-alike trials.** These rungs' validation accuracies were no more different than "
        f"chance makes equal ones (a chi-square test of equal accuracy, p >= {ALIKE_P:g}): {'; '.join(alike)}. "
        f"Which trials went on rested on {rested_on}, and a setting chosen this way can be worse "
        f"than a full-length random search's: where it matters, rerun with `protocol.tuner=random` or a longer "
        f"first rung (`protocol.halving.min_epochs`)."
    )


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


PROMOTED_BY = {
    "val_ce_loss": "the lower validation cross-entropy",
    "val_accuracy": "validation accuracy, near-ties by cross-entropy",
}


def _tuning_text(record: dict[str, Any]) -> str:
    trials = f"{record['budget']} draws x {len(record['tuning_seeds'])} tuning seed(s)"
    if record.get("tuner", "random") == "random":
        return (
            f"each optimizer was tuned by random search with the same budget ({trials}, each trained in full)"
        )
    plan = ", ".join(f"{r['epochs']} epoch(s) for {max(r['trials'].values())}" for r in record["rungs"])
    # records written before promote_by existed promoted by the selection's rule
    by = PROMOTED_BY[record["halving"].get("promote_by", "val_accuracy")]
    return (
        f"each optimizer was tuned by successive halving over the same random draws ({trials}; eta "
        f"{record['halving']['eta']}: {plan}; promoted by {by}), each promoted trial continuing its previous "
        f"rung's checkpoint, the learning-rate schedule that of the full {record['epochs']} epochs"
    )


def _design_text(record: dict[str, Any]) -> str:
    levels = _levels(record)
    seeds = [level["seeds"] for level in levels]
    alphas = ", ".join(f"{level['alpha']:.3g}" for level in levels)
    name = record.get("spending_name", "Bonferroni over the looks (5 % / looks at each)")
    at = f" at {', '.join(map(str, seeds))} seeds" if None not in seeds else ""
    return (
        f"{name}: the paired test's levels at the {len(levels)} planned looks{at} are {alphas}, so that stopping "
        f"at the first decided look keeps the error rates at 5 %"
        + (
            "; calibrated by simulation for t statistics (bench/protocol/spending.py)"
            if record.get("levels")
            else ""
        )
    )


def _error_rate_rows(record: dict[str, Any]) -> list[list[str]]:
    rows = []
    for entry in record.get("error_rates") or []:
        for d in entry["designs"]:
            used = " (this protocol)" if d["design"] == record.get("spending") else ""
            rows.append([
                entry["pair"], SPENDING_NAMES.get(d["design"], d["design"]) + used,
                f"{100 * d['wrong_better']:.1f} ± {100 * d['wrong_better_se']:.1f}",
                f"{100 * d['wrong_equivalent']:.1f}",
                f"{100 * d['power']:.1f}", f"{d['expected_seeds']:.2f}", f"{d['seeds_per_decision']:.1f}",
            ])  # fmt: skip
    return rows


def _cost_rows(compute: dict[str, Any]) -> list[list[str]]:
    def row(name: str, runs: Any, images: Any, run_s: Any, elapsed_s: Any = None) -> list[str]:
        return [
            name,
            str(runs),
            "—" if images is None else f"{images:,}",
            _minutes(run_s),
            _minutes(elapsed_s),
        ]

    rows = [
        row("tuning", compute["tuning_runs"], compute.get("tuning_images"), compute.get("tuning_run_wall_time_s"),
            compute.get("tuning_elapsed_s")),
        row("confirmation", compute["confirmation_runs"], compute.get("confirmation_images"),
            compute.get("confirmation_run_wall_time_s"), compute.get("confirmation_elapsed_s")),
        row("total", compute["runs"], compute["train_images"], compute["run_wall_time_s"], compute["elapsed_s"]),
    ]  # fmt: skip
    full = compute.get("full_random_search")
    if full:
        how = "estimated" if full["estimated"] else "measured"
        rows.append(row(f"tuning by full-length random search, same draws ({how})", full["runs"],
                        full["train_images"], full["run_wall_time_s"]))  # fmt: skip
    return rows


def analyse(data: ReportInput) -> Output:
    """The verdict section, in the place of an ordinary sweep's (bench/report/analyses/verdict.py)."""
    record = data.protocol
    if not record:
        return Output()
    frames = tables(record)
    figure = plot_budget_curves(frames[PROTOCOL_BUDGET_CURVES_CSV])
    compute = record["compute"]
    intro = (
        f"This sweep is a fair comparison: {_tuning_text(record)}. Its best setting, chosen on validation "
        f"accuracy (near-ties by validation cross-entropy), was rerun on fresh seeds, the same for every optimizer "
        f"(paired), in rounds until every pair was decided or the seeds ran out. Decisions use the rules of an "
        f"ordinary report, on test accuracy (photos no tuning decision saw), margin "
        f"±{fmt(record['margin'], 'test_accuracy')} points, each look at the level of its design: "
        f"{_design_text(record)}. The pairwise comparisons of an ordinary sweep are left out: they would mix "
        f"tuning trials with confirmation runs."
    )
    spaces = [
        [name, key, f"{low:g}", f"{high:g}"]
        for name, space in record["spaces"].items()
        for key, (low, high) in space.items()
    ]
    best = []
    for name, entry in record["best"].items():
        runner = entry.get("runner_up")
        ahead = entry.get("ahead")
        photos = entry.get("ahead_photos")
        ahead_text = (
            "—"
            if ahead is None
            else f"{100 * ahead:+.1f}" + ("" if photos is None else f" ({photos:+.0f} photos)")
        )
        best.append([
            name, _setting_text(entry["setting"]), str(entry["trial"]), fmt(entry["val_accuracy_mean"], "val_accuracy"),
            fmt(entry.get("val_ce_loss_mean"), "val_ce_loss"),
            "—" if not runner else f"{runner['trial']}: {_setting_text(runner['setting'])}", ahead_text,
            "yes" if entry.get("near_tie") else "no",
        ])  # fmt: skip
    rounds, seeds_so_far = [], 0
    levels = _levels(record)
    for r in record["rounds"]:
        seeds_so_far += len(r["seeds"])
        alpha = r.get("alpha", levels[min(r["round"], len(levels)) - 1]["alpha"])
        for d in r["decisions"]:
            ci = f"[{fmt(d['ci_low'], 'test_accuracy')}, {fmt(d['ci_high'], 'test_accuracy')}]"
            rounds.append(
                [str(r["round"]), str(seeds_so_far), f"{alpha:.3g}", f"{d['arm_a']} − {d['arm_b']}",
                 fmt(d["diff"], "test_accuracy"), ci, d["decision"], d.get("better") or ""]
            )  # fmt: skip
    files = (
        f"Files: `{PROTOCOL_TRIALS_CSV}`, `{PROTOCOL_CONFIRMATION_CSV}`, `{PROTOCOL_DECISIONS_CSV}`, "
        f"`{PROTOCOL_BUDGET_CURVES_CSV}`, `{PROTOCOL_ERROR_RATES_CSV}`, and the sweep's `{PROTOCOL_FILE}`."
    )
    first_rung = record.get("rungs", [{}])[0].get("epochs")
    at_rung = (
        f" Successive halving trains every draw only for its first rung ({first_rung} epoch(s)): the curves are of "
        f"those scores, the only ones every draw has."
        if record.get("tuner", "random") != "random"
        else ""
    )
    caption = (
        "For n = 1 to the budget: the expected best mean validation accuracy of n settings drawn from the "
        "trials run (Dodge et al. 2019), ±1 sd. A curve that rises late belongs to an optimizer that is hard to "
        "tune; curves that cross mean the ranking depends on the budget." + at_rung
    )
    document: list[Block] = [
        Heading("Verdict"),
        Paragraph(intro),
        Paragraph(f"**Tuned verdict.** {_decision_sentence(record)}"),
    ]
    for warning in (_near_ties(record), _alike_rungs(record)):
        if warning:
            document.append(Paragraph(warning))
    document += [
        Heading("Search spaces (log-uniform)", level=3),
        Table(["optimizer", "key", "low", "high"], spaces),
    ]
    if record.get("tuner", "random") != "random":
        document += [
            Heading("Tuning rungs (successive halving)", level=3),
            Table(
                [
                    "rung",
                    "epochs",
                    "trials per optimizer",
                    "runs",
                    "training images",
                    "run time (min)",
                    "accuracies alike? (chi-square p)",
                ],
                [
                    [
                        str(r["rung"]),
                        str(r["epochs"]),
                        str(max(r["trials"].values())),
                        str(r["runs"]),
                        f"{r['train_images']:,}",
                        _minutes(r["run_wall_time_s"]),
                        ", ".join(
                            f"{name} {sep['alike_p']:.2f}"
                            for name, sep in (r.get("separation") or {}).items()
                            if sep.get("alike_p") is not None
                        )
                        or "—",
                    ]
                    for r in record["rungs"]
                ],
            ),  # fmt: skip
        ]
    document += [
        Heading("Best settings (by mean validation accuracy over the tuning seeds)", level=3),
        Table(
            [
                "optimizer",
                "setting",
                "trial",
                "val_accuracy (%)",
                "val_ce_loss",
                "next best (trial: setting)",
                "ahead by (points)",
                "near-tie",
            ],
            best,
        ),  # fmt: skip
        Heading("Confirmation rounds (test accuracy)", level=3),
        Table(
            ["round", "seeds", "level", "pair (A − B)", "diff (points)", "95 % CI", "decision", "better"],
            rounds,
        ),
    ]
    rates = _error_rate_rows(record)
    if rates:
        reps = record["error_rates"][0]["reps"]
        document += [
            Heading("Error rates of the design (simulated)", level=3),
            Paragraph(
                f"{reps} simulated confirmations per design and truth, with normal per-seed differences of the "
                f"spread this one measured (bench/protocol/simulate.py, the protocol's own decision code): the "
                f"rate of a wrong *better* when there is no difference (± one standard error), of a wrong "
                f"*equivalent* when the difference is twice the margin, and the power and expected seeds per arm "
                f"if the measured difference is the true one. `python -m bench.protocol.simulate` runs a larger one."
            ),
            Table(
                [
                    "pair",
                    "design",
                    "wrong better, no difference (%)",
                    "wrong equivalent, 2 × margin (%)",
                    "power, measured effect (%)",
                    "expected seeds",
                    "seeds per decision",
                ],
                rates,
            ),  # fmt: skip
        ]
    document += [
        Heading("Compute, phase by phase", level=3),
        Table(["phase", "runs", "training images", "run time (min)", "elapsed (min)"], _cost_rows(compute)),
        Paragraph(
            "Run time sums the runs' own wall times; elapsed is the protocol's clock in this invocation (a resumed "
            "protocol skips what finished). A full-length random search's cost is measured when it was the tuner, "
            "else estimated from the first rung's runs (start-up and first epoch, warm-up included) and the time of a "
            "steady epoch. " + files
        ),
        Image(BUDGET_CURVES_PNG, caption),
    ]
    return Output(document, frames, {BUDGET_CURVES_PNG: figure})
