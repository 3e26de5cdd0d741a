"""The content of report.md / report.html: one function per section, each returning render blocks."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bench.config import EXPERIMENT_KEYS
from bench.report.compare import MAX_ARMS_COMPARED, MIN_SEEDS_BOOTSTRAP, crowded_strata
from bench.report.flags import CHANCE_MARGIN, CLIMB_EPOCHS
from bench.report.groups import Grouping, format_value, label
from bench.report.heatmap import Heatmaps
from bench.report.load import RunTable
from bench.report.parity import COLUMNS as PARITY_COLUMNS
from bench.report.render import Block, Code, Heading, Image, Paragraph, Table
from bench.report.stats import ALPHA, STATUSES_NOT_AVERAGED, fmt

#: The summary table's columns: cross-entropy, not the penalised loss (which summary.csv also holds).
SHOWN_METRICS = ("val_accuracy", "val_ce_loss", "accuracy", "ce_loss")


@dataclass
class ReportData:
    """Everything the report shows, computed beforehand by :func:`bench.report.build.build_report`."""

    paths: list[Path]
    table: RunTable
    grouping: Grouping
    finals: pd.DataFrame  # one row per run (its last epoch), with the label columns
    summary: pd.DataFrame
    comparisons: pd.DataFrame  # bench.report.compare.compare_arms
    differences: pd.DataFrame  # per-seed paired differences
    flags: pd.DataFrame  # bench.report.flags.arm_flags
    timing: pd.DataFrame
    curves: list[Image]
    difference_figures: list[Image]
    timing_figure: Image | None
    targets: pd.DataFrame  # bench.report.target.target_summary
    target_figures: list[Image]
    command: str
    heatmaps: Heatmaps | None = None  # only when the runs form a learning rate x regularization grid
    parity: pd.DataFrame | None = None  # only when some experiment ran on both backends
    not_at_parity: list[str] = field(default_factory=list)  # user's optimizers in the runs (parity.py)
    protocol: list[Block] = field(
        default_factory=list
    )  # a fair-comparison sweep's verdict (protocol_section)


def fmt_p(p: float) -> str:
    return "—" if math.isnan(p) else ("<0.001" if p < 0.001 else f"{p:.3f}")


def unit(metric: str) -> str:
    return f"{metric} (%)" if "accuracy" in metric else metric


def _mean_sd(row: pd.Series, metric: str) -> str:
    mean, sd = row[f"{metric}_mean"], row[f"{metric}_sd"]
    return fmt(mean, metric) if math.isnan(sd) else f"{fmt(mean, metric)} ± {fmt(sd, metric)}"


def _interval(low: float, high: float, metric: str) -> str:
    return "—" if math.isnan(low) else f"[{fmt(low, metric)}, {fmt(high, metric)}]"


def overview(data: ReportData) -> list[Block]:
    counts = data.finals["status"].value_counts()
    tally = ", ".join(f"{counts.get(s, 0)} {s}" for s in ("completed", *STATUSES_NOT_AVERAGED))
    where = ", ".join(f"`{p}`" for p in data.paths)
    runs = f"{len(data.finals)} run{'s' if len(data.finals) != 1 else ''}"
    text = (
        f"**{runs}** read from {where}: {tally}. Means, intervals and tests use the final epoch of "
        "completed runs only; runs differing in any setting but the seed are never averaged."
    )
    return [Heading("flowerbench report", 1), Paragraph(text)]


def _seeds(row: pd.Series) -> str:
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


def _signed(row: pd.Series) -> str:
    unit = "points" if "accuracy" in row["metric"] else "nats"
    return f"{row['arm_a']} − {row['arm_b']} = {fmt(row['diff'], row['metric'])} {unit}"


def _ci(row: pd.Series) -> str:
    return f"95 % CI [{fmt(row['ci_low'], row['metric'])}, {fmt(row['ci_high'], row['metric'])}]"


def pair_sentence(row: pd.Series) -> str:
    """One comparison in words, e.g. ``adamw beats sgd_l2 by 4.1 points (paired t, 5 seeds, ...).``"""
    metric, a, b = row["metric"], row["arm_a"], row["arm_b"]
    if row["test"] == "none":
        return f"{a} vs {b} is undecided: {seeds_clause(row)}."
    if row["sd_diff"] == 0:
        return f"{a} vs {b} is undecided ({_signed(row)}, {_seeds(row)}): {row['reason']}."
    if row["decision"] == "better":
        loser = b if row["better"] == a else a
        size = f"{fmt(abs(row['diff']), metric)} {'points' if 'accuracy' in metric else 'nats'}"
        verb = "beats" if "accuracy" in metric else "has lower cross-entropy than"
        return f"{row['better']} {verb} {loser} by {size} ({_seeds(row)}, {_ci(row)}, p={row['p_holm']:.2g})."
    if row["decision"] == "equivalent":
        margin = fmt(row["margin"], metric)
        return f"{a} and {b} are equivalent within ±{margin} ({_signed(row)}, {_seeds(row)}, {_ci(row)})."
    holm = f", Holm p={row['p_holm']:.2g}" if row["p_value"] < ALPHA <= row["p_holm"] else ""
    return f"{a} vs {b} is undecided ({_signed(row)}, {_seeds(row)}, {_ci(row)}{holm}): {seeds_clause(row)}."


def _loss_sentence(tests: pd.DataFrame) -> str:
    """The cross-entropy decisions in one sentence: ``adamw < sgd_l2; adam_l2 vs adamw undecided``."""
    parts = []
    for _, row in tests.iterrows():
        if row["decision"] == "better":
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


def verdict(data: ReportData) -> list[Block]:
    if data.protocol:  # a fair comparison: the protocol's tuned verdict, not all pairs of its runs
        return [Heading("Verdict"), *data.protocol]
    done = data.finals["status"] == "completed"
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


def _group_header(grouping: Grouping) -> list[str]:
    return [*grouping.stratum_label_columns, grouping.compare]


def _group_cells(row: pd.Series, grouping: Grouping, label_columns: list[str]) -> list[str]:
    """The stratum's values, then the arm's short label (its full settings are in the Settings section)."""
    strata = [format_value(row[column]) for column in grouping.stratum_label_columns]
    return [*strata, label(row, label_columns)]


def summary_section(data: ReportData) -> list[Block]:
    header = [*_group_header(data.grouping), "n"]
    for metric in SHOWN_METRICS:
        header += [f"{unit(metric)} mean ± sd", "95 % CI"]
    header += ["best epoch", *(f"n {s}" for s in STATUSES_NOT_AVERAGED), "note"]
    rows = []
    for _, row in data.summary.iterrows():
        cells = [*_group_cells(row, data.grouping, data.grouping.arm_label_columns), str(row["n_seeds"])]
        for metric in SHOWN_METRICS:
            cells += [
                _mean_sd(row, metric),
                _interval(row[f"{metric}_ci_low"], row[f"{metric}_ci_high"], metric),
            ]
        cells += [fmt(row["best_epoch_mean"], digits=1), *(str(row[f"n_{s}"]) for s in STATUSES_NOT_AVERAGED)]
        rows.append([*cells, row["note"]])
    text = (
        "Final-epoch metrics of completed runs: mean ± sample sd over seeds and the 95 % t-interval of the "
        "mean. Accuracies in percent; `ce_loss` is the cross-entropy alone, comparable across arms. The "
        "reported `loss`/`val_loss` add each arm's own L2 penalty (none for AdamW), so they are in "
        "`summary.csv` only, never compared. `best epoch` is the mean epoch of highest val_accuracy. "
        "File: `summary.csv` (fractions, not percent; one column per setting)."
    )
    return [Heading("Summary"), Paragraph(text), Table(header, rows)]


def _comparison_cells(row: pd.Series) -> list[str]:
    metric = row["metric"]
    needed = "" if pd.isna(row["seeds_needed"]) else f", ~{row['seeds_needed']:.0f} seeds"
    if isinstance(row["seeds_needed"], float) and math.isinf(row["seeds_needed"]):
        needed = ", >1000 seeds"
    return [
        row["stratum"] or "all runs",
        metric,
        f"{row['arm_a']} vs {row['arm_b']}",
        _seeds(row) if row["test"] != "none" else f"none, {row['n_a']} vs {row['n_b']} seeds",
        fmt(row["diff"], metric),
        _interval(row["ci_low"], row["ci_high"], metric),
        _interval(row["boot_ci_low"], row["boot_ci_high"], metric),
        fmt_p(row["p_holm"]),
        fmt_p(row["tost_p_holm"]),
        "—" if pd.isna(row["corr"]) else f"{row['corr']:.2f}",
        _probability(row),
        (f"{row['better']} better" if row["decision"] == "better" else row["decision"]) + needed,
    ]


def _probability(row: pd.Series) -> str:
    if pd.isna(row["p_a_better"]):
        return "—"
    if pd.isna(row["p_a_better_ci_low"]):
        return f"{row['p_a_better']:.2f}"
    return f"{row['p_a_better']:.2f} [{row['p_a_better_ci_low']:.2f}, {row['p_a_better_ci_high']:.2f}]"


def comparisons_section(data: ReportData) -> list[Block]:
    if data.comparisons.empty:
        return [Heading("Pairwise comparisons"), Paragraph("No stratum holds two arms with completed runs.")]
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
        "Files: `comparisons.csv`, `seed_differences.csv`."
    )
    return [Heading("Pairwise comparisons"), Paragraph(text), Table(header, rows), *data.difference_figures]


def best_epoch_section(data: ReportData) -> list[Block]:
    """The best epoch's val_accuracy: selected on the validation photos, so optimistic; never the headline."""
    rows = [
        [
            *_group_cells(row, data.grouping, data.grouping.arm_label_columns),
            str(row["n_seeds"]),
            _mean_sd(row, "best_val_accuracy"),
            _mean_sd(row, "val_accuracy"),
            fmt(row["best_epoch_mean"], digits=1),
        ]
        for _, row in data.summary.iterrows()
    ]
    header = [*_group_header(data.grouping), "n", "best-epoch val_accuracy (%)", "final val_accuracy (%)"]
    text = (
        "Optimistic: each run's highest val_accuracy over its epochs, chosen on the same validation photos it "
        "is measured on (no held-out choice of epoch), beside the final-epoch value the verdict uses."
    )
    return [Heading("Best epoch (optimistic)"), Paragraph(text), Table([*header, "best epoch"], rows)]


def flags_section(data: ReportData) -> list[Block]:
    if data.flags.empty:
        return []
    rows = [[row.stratum or "all runs", row.arm, row.flag, row.detail] for row in data.flags.itertuples()]
    text = (
        f"`near chance`: the 95 % CI of the arm's mean final val_accuracy reaches within {100 * CHANCE_MARGIN:.0f} "
        "points of chance (1 / number of classes). `still climbing`: the seed-mean val_accuracy still rises by "
        f"at least the accuracy margin per epoch over the last {CLIMB_EPOCHS} epochs. `seeds left out`: "
        "diverged, failed or unfinished runs, in no mean or test. File: `flags.csv`."
    )
    return [Heading("Warnings"), Paragraph(text), Table(["stratum", "arm", "warning", "detail"], rows)]


def _median_cell(row: pd.Series, name: str, digits: int) -> str:
    """``3 [2, 4]``; a missing median is "not reached" (fewer than half got there), a missing bound "∞"."""
    median, low, high = (row[f"{name}_{part}"] for part in ("median", "ci_low", "ci_high"))
    if pd.isna(median):
        return "not reached"
    low_text = "—" if pd.isna(low) else f"{low:.{digits}f}"
    high_text = "∞" if pd.isna(high) else f"{high:.{digits}f}"
    return f"{median:.{digits}f} [{low_text}, {high_text}]"


def target_section(data: ReportData) -> list[Block]:
    if data.targets.empty:
        return []
    rows = [
        [
            row["stratum"] or "all runs",
            row["arm"],
            fmt(row["target"], "accuracy"),
            f"{row['n_reached']} / {row['n_runs']}",
            _median_cell(row, "epoch", 0),
            "—" if pd.isna(row["images_median"]) else f"{row['images_median']:,.0f}",
            _median_cell(row, "train_s", 1),
        ]
        for _, row in data.targets.iterrows()
    ]
    header = ["stratum", "arm", "target val_accuracy (%)", "reached", "epochs: median [95 % CI]"]
    header += ["images seen (median)", "training s: median [95 % CI]"]
    text = (
        "How much training each arm needs to reach a validation accuracy, as AlgoPerf scores optimizers. "
        "Target: `report.target` if set, else 95 % of the best arm's mean final val_accuracy in the stratum. "
        "Per run: the first epoch at or above it, the images trained on and the training seconds until then "
        "(evaluation excluded); a run that never gets there is censored at its last epoch. Medians and "
        "intervals are Kaplan-Meier estimates (`scipy.stats.ecdf`, log-log band; ∞ = no upper bound with so "
        "few runs). Files: `time_to_target.csv`, `target_summary.csv`."
    )
    return [Heading("Time to target"), Paragraph(text), Table(header, rows), *data.target_figures]


def curves_section(data: ReportData) -> list[Block]:
    if not data.curves:
        return [Heading("Learning curves"), Paragraph("No completed run has a finished epoch to draw.")]
    return [Heading("Learning curves"), *data.curves]


def heatmap_section(data: ReportData) -> list[Block]:
    return data.heatmaps.blocks if data.heatmaps else []


def _not_at_parity_note(data: ReportData) -> list[Block]:
    if not data.not_at_parity:
        return []
    text = (
        f"Not at parity by design: {', '.join(data.not_at_parity)} (a user's optimizer: each backend runs "
        "its own framework's class, so runs on keras and torch are different experiments; result.json says "
        "`backend_parity: false`). Compare such an optimizer within one backend."
    )
    return [Paragraph(text)]


def parity_section(data: ReportData) -> list[Block]:
    if data.parity is None or data.parity.empty:
        note = _not_at_parity_note(data)
        return [Heading("Backend parity"), *note] if note else []
    keys = [column for column in data.parity.columns if column not in (*PARITY_COLUMNS, "dropout")]
    by_optimizer = data.parity.groupby("optimizer")
    # Hyperparameters that come with the optimizer (beta_1 is unset for SGD) would only repeat the optimizer's
    # name; keep the keys that vary within one optimizer (parity.csv has them all).
    keys = [
        k for k in keys if k in ("optimizer", "seed") or by_optimizer[k].nunique(dropna=False).gt(1).any()
    ]
    header = [*keys, "dropout", "epochs", "loss: max rel. diff", "val_loss: max rel. diff"]
    header += ["accuracy: max abs. diff", "val_accuracy: max abs. diff"]
    rows = [
        [*(format_value(row[key]) for key in [*keys, "dropout", "epochs"])]
        + [f"{row[column]:.1e}" for column in PARITY_COLUMNS[1:]]
        for _, row in data.parity.iterrows()
    ]
    text = (
        "Each row is one experiment (same settings, same seed) run on both backends: the largest difference "
        "between keras and torch over its epochs (loss relative to keras' value; accuracy as a fraction of the "
        "photos). Both start from the same weights and see the same batches, with the same optimizer "
        "semantics. With dropout 0 they agree to float32 round-off, which compounds slowly over steps; with "
        "dropout > 0 each framework draws its own masks, and only seed averages are comparable. "
        "File: `parity.csv`."
    )
    return [Heading("Backend parity"), Paragraph(text), Table(header, rows), *_not_at_parity_note(data)]


def _timing_cells(row: pd.Series, grouping: Grouping) -> list[str]:
    speed = {q: fmt(row[f"train_images_per_s_{q}"], digits=1) for q in ("median", "q25", "q75", "min", "max")}
    return [
        *_group_cells(row, grouping, grouping.timing_label_columns),
        str(row["n_runs"]),
        str(row["n_epochs"]),
        speed["median"],
        f"{speed['q25']}-{speed['q75']}",
        f"{speed['min']}-{speed['max']}",
        fmt(row["epoch_time_s_median"], digits=1),
        fmt(row["wall_time_s_mean"], digits=1),
    ]


def timing_section(data: ReportData) -> list[Block]:
    header = [*_group_header(data.grouping), "runs", "epochs", "images/s median", "IQR", "min-max"]
    header += ["epoch time (s) median", "wall time (s) mean"]
    rows = [_timing_cells(row, data.grouping) for _, row in data.timing.iterrows()]
    text = (
        "Training throughput over the finished epochs of every run (any status), leaving out epoch 1, "
        "which includes warm-up and graph tracing, unless the run was planned with a single epoch. "
        "IQR = 25th-75th percentile. Wall time is averaged over completed runs. File: `timing.csv`."
    )
    figure = [data.timing_figure] if data.timing_figure else []
    return [Heading("Timing"), Paragraph(text), Table(header, rows), *figure]


def _short_dirs(run_dirs: pd.Series) -> pd.Series:
    """Run directories relative to their common parent: the Hydra override names, mostly."""
    absolute = run_dirs.map(lambda d: str(Path(d).resolve()))
    base = os.path.commonpath(list(absolute))
    return absolute.map(lambda d: Path(d).name if d == base else os.path.relpath(d, base))


def _last_line(error: Any) -> str:
    """The exception line of a traceback, cut to 200 characters."""
    return error.strip().splitlines()[-1][:200] if isinstance(error, str) and error.strip() else "—"


def problems_section(data: ReportData) -> list[Block]:
    names = _short_dirs(data.finals["run_dir"])
    bad = data.finals[data.finals["status"] != "completed"]
    if bad.empty:
        return [Heading("Runs not averaged"), Paragraph("None: every run completed.")]
    header = [
        "run",
        "status",
        "backend",
        "optimizer",
        "seed",
        "epochs done / planned",
        "diverged at",
        "error",
    ]
    rows = [
        [
            names[index],
            row["status"],
            row["backend"],
            row["optimizer"],
            format_value(row["seed"]),
            f"{0 if pd.isna(row['epoch']) else int(row['epoch'])} / {format_value(row['epochs_planned'])}",
            format_value(row["diverged_epoch"]),
            _last_line(row["error"]),
        ]
        for index, row in bad.iterrows()
    ]
    text = "Diverged, failed and incomplete (killed or still running) runs, never part of a mean."
    return [Heading("Runs not averaged"), Paragraph(text), Table(header, rows)]


def _role(key: str, grouping: Grouping) -> str:
    if key == "seed":
        return "averaged over"
    if EXPERIMENT_KEYS.is_ignored(key):
        return "ignored (a location, or a report option)"
    if EXPERIMENT_KEYS.is_timing_only(key):
        return "grouped in timing only"
    return "compared" if key in grouping.arms else "grouped"


def arms_table(data: ReportData) -> list[Block]:
    """What each compared arm is: its label and every setting that comes with it (unset ones left out)."""
    columns = [c for c in data.grouping.arms if c != data.grouping.compare]
    if not columns:
        return []
    rows = []
    for _, row in data.finals.drop_duplicates("arm").sort_values("arm").iterrows():
        settings = [f"{column}={format_value(row[column])}" for column in columns if not pd.isna(row[column])]
        rows.append([row["arm"], ", ".join(settings)])
    text = f"What each compared {data.grouping.compare} is (the settings that go with it):"
    return [Paragraph(text), Table([data.grouping.compare, "settings"], rows)]


def settings_section(data: ReportData) -> list[Block]:
    runs = data.table.frame.drop_duplicates("run_dir")
    varying = [name for name in ("backend", "optimizer") if runs[name].nunique() > 1] + data.table.settings
    rows = [
        [key, ", ".join(sorted({format_value(v) for v in runs[key]})), _role(key, data.grouping)]
        for key in varying
    ]
    blocks: list[Block] = [Heading("Settings")]
    if rows:
        blocks += [Paragraph("Settings that differ between runs, and what the report does with them:")]
        blocks += [Table(["setting", "values", "role"], rows)]
    else:
        blocks += [Paragraph("All runs share every setting.")]
    blocks += arms_table(data)
    shared = [[key, format_value(value)] for key, value in data.table.constants.items()]
    if shared:
        blocks += [Paragraph("Settings shared by every run:"), Table(["setting", "value"], shared)]
    return blocks


def regenerate_section(data: ReportData) -> list[Block]:
    text = (
        "This folder is rebuilt by the command below (also run at the end of each Hydra multirun by "
        "`bench.callbacks.ReportCallback`). `runs.csv` holds the tidy data behind every table and figure."
    )
    return [Heading("How to regenerate"), Paragraph(text), Code(data.command)]


SECTIONS = (
    overview,
    verdict,
    flags_section,
    summary_section,
    comparisons_section,
    best_epoch_section,
    target_section,
    curves_section,
    heatmap_section,
    parity_section,
    timing_section,
    problems_section,
    settings_section,
    regenerate_section,
)


def build_document(data: ReportData) -> list[Block]:
    return [block for section in SECTIONS for block in section(data)]
