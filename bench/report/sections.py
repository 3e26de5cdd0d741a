"""The content of report.md / report.html: one function per section, each returning render blocks."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bench.report.groups import TIMING_ONLY_KEYS, Grouping, format_value, is_ignored, label
from bench.report.heatmap import Heatmaps
from bench.report.load import RunTable
from bench.report.parity import COLUMNS as PARITY_COLUMNS
from bench.report.render import Block, Code, Heading, Image, Paragraph, Table
from bench.report.stats import COMPARISON_METRICS, STATUSES_NOT_AVERAGED, SUMMARY_METRICS


@dataclass
class ReportData:
    """Everything the report shows, computed beforehand by :func:`bench.report.build.build_report`."""

    paths: list[Path]
    table: RunTable
    grouping: Grouping
    finals: pd.DataFrame  # one row per run (its last epoch), with the label columns
    summary: pd.DataFrame
    comparisons: pd.DataFrame
    timing: pd.DataFrame
    curves: list[Image]
    timing_figure: Image | None
    command: str
    heatmaps: Heatmaps | None = None  # only when the runs form a learning rate x regularization grid
    parity: pd.DataFrame | None = None  # only when some experiment ran on both backends


def fmt(value: Any, metric: str = "", digits: int = 3) -> str:
    """Accuracies in percent with one decimal, other floats with ``digits`` decimals, missing as —."""
    if value is None or pd.isna(value):
        return "—"
    if "accuracy" in metric:
        return f"{100 * value:.1f}"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def fmt_p(p: float) -> str:
    return "—" if math.isnan(p) else ("<0.001" if p < 0.001 else f"{p:.3f}")


def p_clause(p: float) -> str:
    """``p=0.012``, ``p<0.001`` or ``no test`` (fewer than two seeds on a side)."""
    return "no test" if math.isnan(p) else ("p<0.001" if p < 0.001 else f"p={p:.3f}")


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


def _leader_first(row: pd.Series) -> tuple[str, str, int, int, float, float, float]:
    """The pair ordered by mean val_accuracy: leader, trailer, their n, and leader - trailer in points."""
    diff, low, high = (100 * row[key] for key in ("diff", "ci_low", "ci_high"))
    if diff >= 0 or math.isnan(diff):
        return row["arm_a"], row["arm_b"], row["n_a"], row["n_b"], diff, low, high
    return row["arm_b"], row["arm_a"], row["n_b"], row["n_a"], -diff, -high, -low


def _verdict_sentence(row: pd.Series) -> str:
    """One comparison of val_accuracy in words, e.g. ``On keras, adamw beats sgd_l2 by 4.1 points ...``."""
    leader, trailer, n_leader, n_trailer, diff, low, high = _leader_first(row)
    where = f"On {row['stratum']}, " if row["stratum"] else ""
    ci = "no CI" if math.isnan(low) else f"95 % CI [{low:.1f}, {high:.1f}]"
    if row["better"]:
        return (
            f"{where}{leader} beats {trailer} by {diff:.1f} points of val_accuracy "
            f"({ci}, {p_clause(row['p_value'])}, n={n_leader} vs {n_trailer})."
        )
    return (
        f"{where}{leader} and {trailer} cannot be told apart with {n_leader} vs {n_trailer} seeds "
        f"({leader} ahead by {diff:.1f} points, {ci}, {p_clause(row['p_value'])})."
    )


def verdict(data: ReportData) -> list[Block]:
    done = data.finals["status"] == "completed"
    tests = data.comparisons[data.comparisons["metric"] == "val_accuracy"]
    if not done.any():
        text = "No run has completed yet, so there is nothing to compare; see the runs not averaged below."
    elif tests.empty:
        text = f"Each stratum has completed runs of a single {data.grouping.compare}: nothing to compare."
    else:
        sentences = " ".join(_verdict_sentence(row) for _, row in tests.iterrows())
        text = (
            "Final validation accuracy, Welch's t-test at the 5 % level, one test per pair, not corrected "
            f"for multiple comparisons. {sentences}"
        )
    if excluded := int((~done).sum()):
        text += f" {excluded} run(s) diverged, failed or did not finish and are left out (listed below)."
    return [Heading("Verdict"), Paragraph(text)]


def _group_header(grouping: Grouping) -> list[str]:
    return [*grouping.stratum_label_columns, grouping.compare]


def _group_cells(row: pd.Series, grouping: Grouping, label_columns: list[str]) -> list[str]:
    """The stratum's values, then the arm's short label (its full settings are in the Settings section)."""
    strata = [format_value(row[column]) for column in grouping.stratum_label_columns]
    return [*strata, label(row, label_columns)]


def summary_section(data: ReportData) -> list[Block]:
    header = [*_group_header(data.grouping), "n"]
    for metric in SUMMARY_METRICS:
        header += [f"{unit(metric)} mean ± sd", "95 % CI"]
    header += ["best epoch", *(f"n {s}" for s in STATUSES_NOT_AVERAGED), "note"]
    rows = []
    for _, row in data.summary.iterrows():
        cells = [*_group_cells(row, data.grouping, data.grouping.arm_label_columns), str(row["n_seeds"])]
        for metric in SUMMARY_METRICS:
            cells += [
                _mean_sd(row, metric),
                _interval(row[f"{metric}_ci_low"], row[f"{metric}_ci_high"], metric),
            ]
        cells += [fmt(row["best_epoch_mean"], digits=1), *(str(row[f"n_{s}"]) for s in STATUSES_NOT_AVERAGED)]
        rows.append([*cells, row["note"]])
    text = (
        "Final-epoch metrics of completed runs: mean ± sample sd over seeds and the 95 % t-interval of the "
        "mean. Accuracies in percent; losses include the L2 penalty. `best epoch` is the mean epoch of "
        "highest val_accuracy. File: `summary.csv` (fractions, not percent; one column per setting)."
    )
    return [Heading("Summary"), Paragraph(text), Table(header, rows)]


def _comparison_cells(row: pd.Series) -> list[str]:
    metric = row["metric"]
    return [
        row["stratum"] or "all runs",
        unit(metric),
        f"{row['arm_a']} vs {row['arm_b']}",
        f"{row['n_a']} vs {row['n_b']}",
        fmt(row["diff"], metric),
        _interval(row["ci_low"], row["ci_high"], metric),
        fmt_p(row["p_value"]),
        row["conclusion"],
    ]


def comparisons_section(data: ReportData) -> list[Block]:
    if data.comparisons.empty:
        return [Heading("Pairwise comparisons"), Paragraph("No stratum holds two arms with completed runs.")]
    header = ["stratum", "metric", "A vs B", "n", "A - B", "95 % CI", "p", "conclusion"]
    rows = [_comparison_cells(row) for _, row in data.comparisons.iterrows()]
    text = (
        f"Difference of mean final {' and '.join(COMPARISON_METRICS)} between two arms of one stratum, with "
        "Welch's 95 % CI and p-value. A pair is `not distinguishable` when either side has fewer than 2 "
        "seeds, p ≥ 0.05 or the CI contains 0. Higher accuracy and lower loss are better. "
        "File: `comparisons.csv`."
    )
    return [Heading("Pairwise comparisons"), Paragraph(text), Table(header, rows)]


def curves_section(data: ReportData) -> list[Block]:
    if not data.curves:
        return [Heading("Learning curves"), Paragraph("No completed run has a finished epoch to draw.")]
    return [Heading("Learning curves"), *data.curves]


def heatmap_section(data: ReportData) -> list[Block]:
    return data.heatmaps.blocks if data.heatmaps else []


def parity_section(data: ReportData) -> list[Block]:
    if data.parity is None or data.parity.empty:
        return []
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
    return [Heading("Backend parity"), Paragraph(text), Table(header, rows)]


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
    if is_ignored(key):
        return "ignored (a location, or a report option)"
    if key in TIMING_ONLY_KEYS:
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
    summary_section,
    comparisons_section,
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
