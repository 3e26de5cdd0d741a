"""Build a report folder from run directories: load -> group -> each analysis of the report (its tables,
figures and blocks; bench/report/analyses/) -> report.md and report.html."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from bench.errors import ConfigError
from bench.io import atomic_write_text
from bench.report.analyses import ANALYSES
from bench.report.analysis import ReportInput
from bench.report.groups import choose_grouping
from bench.report.load import WORKLOAD as WORKLOAD_COLUMN
from bench.report.load import PathsLike, ReportError, RunTable, as_paths, load_run_table
from bench.report.options import DEFAULT_METRICS, ReportConfig
from bench.report.plots import family, save_figure
from bench.report.render import Block, Heading, Image, Paragraph, Table, to_html, to_markdown
from bench.results import (
    ACROSS_WORKLOADS_CSV,
    ACROSS_WORKLOADS_PNG,
    PROTOCOL_FILE,
    REPORT_DIR,
    REPORT_HTML,
    REPORT_MARKDOWN,
)


def default_out_dir(paths: Sequence[Path]) -> Path:
    """``<first path>/report``: inside the sweep (or run) directory the report describes."""
    return paths[0] / REPORT_DIR


def metric_families(requested: Iterable[str], table: RunTable) -> dict[str, list[str]]:
    """Map each requested name to the metrics of its figure: ``loss`` → loss and val_loss, ``val_loss`` alone.

    Raises:
        ReportError: a name is not a column of metrics.jsonl.
    """
    available = table.metric_columns
    families: dict[str, list[str]] = {}
    for name in requested:
        wanted = [name] if name.startswith("val_") else [name, f"val_{name}"]
        present = [metric for metric in wanted if metric in available]
        if not present:
            raise ReportError(f"unknown metric {name!r}: choose from {', '.join(available)}")
        members = families.setdefault(family(name), [])
        members += [metric for metric in present if metric not in members]
    return families


def clear_previous_report(out_dir: Path) -> None:
    """Remove the figures and tables of an earlier build of this report, so that a rebuild that no longer draws
    one (fewer arms, another option) leaves no stale file beside the new report. Only in a folder that holds
    a report.md, and only its .png and .csv files: a report folder is the report's own."""
    if not (out_dir / REPORT_MARKDOWN).is_file():
        return
    for stale in [*out_dir.glob("*.png"), *out_dir.glob("*.csv")]:
        stale.unlink(missing_ok=True)


def build_report(paths: PathsLike, out_dir: str | os.PathLike | None = None, **options: Any) -> Path:
    """Write the report of every run below ``paths`` and return the report directory.

    Args:
        paths: sweep directories, run directories, or folders holding either, searched recursively.
        out_dir: where to write; default ``<first path>/report``.
        options: fields of :class:`bench.report.options.ReportConfig` (``metrics``, ``group_by``, ``compare``,
            ``margin``, ``loss_margin``, ``target``); one not given, or None, takes its default.

    Raises:
        ReportError: no runs under a path, an unknown metric or column name, or an option out of range.
    """
    paths = as_paths(paths)
    if not paths:
        raise ReportError("no path given")
    out = Path(out_dir) if out_dir is not None else default_out_dir(paths)
    try:
        chosen = ReportConfig.given(**options)
    except ConfigError as error:
        raise ReportError(str(error)) from None
    table = load_run_table(paths)
    families = metric_families(chosen.metrics or DEFAULT_METRICS, table)
    clear_previous_report(out)
    grouping = choose_grouping(table, chosen.group_by, chosen.compare)
    data = ReportInput(paths, out, chosen, table, grouping, families)
    blocks: list[Block] = []
    for analysis in ANALYSES:
        output = analysis.analyse(data)
        for name, figure in output.figures.items():  # saved (and closed) at once: few figures open at a time
            save_figure(figure, out / name)
        for name, frame in output.tables.items():
            atomic_write_text(out / name, frame.to_csv(index=False))
        blocks += output.blocks
    atomic_write_text(out / REPORT_MARKDOWN, to_markdown(blocks))
    atomic_write_text(out / REPORT_HTML, to_html(blocks, out, title="flowerbench report"))
    return out


def workload_protocols(path: Path) -> list[Path]:
    """The folders below a sweep that each hold a fair comparison of one workload (``<sweep>/<workload>/``
    with its protocol.json), when the sweep holds no protocol of its own: a fair comparison of several
    workloads (hydra_plugins/flowerbench/fair_comparison_sweeper.py)."""
    if (path / PROTOCOL_FILE).is_file():
        return []
    return sorted(found.parent for found in path.glob(f"*/{PROTOCOL_FILE}"))


def build_workload_protocol_reports(sweep_dir: Path, **options: Any) -> Path:
    """The report of a fair comparison of several workloads: each workload's own, in ``<workload>/report``,
    then ``<sweep>/report`` across them (the tally of the tuned verdicts and the pooled aggregate, on test
    accuracy of the confirmation seeds). Returns the latter.

    Raises:
        ReportError: as :func:`build_report`.
    """
    from bench.report.analyses.workloads import interval_cell  # lazy: pandas' figures only here
    from bench.report.workload_figures import plot_across_workloads
    from bench.report.workloads import across_workloads, pair_tests, tuned_verdicts

    reports = {folder.name: build_report([folder], **options) for folder in workload_protocols(sweep_dir)}
    finals, decisions = tuned_verdicts(reports)
    metric = "test_accuracy"
    across = across_workloads(finals, decisions, [WORKLOAD_COLUMN], metric)
    out = sweep_dir / REPORT_DIR
    clear_previous_report(out)
    atomic_write_text(out / ACROSS_WORKLOADS_CSV, across.to_csv(index=False))
    rows = [
        [f"{row['arm_a']} vs {row['arm_b']}", str(row["workloads"]), str(row["wins_a"]), str(row["wins_b"]),
         str(row["equivalent"]), str(row["undecided"]),
         interval_cell(row["p_a_better"], row["p_a_better_ci_low"], row["p_a_better_ci_high"], "{:.2f}"),
         interval_cell(row["mean_diff"], row["mean_diff_ci_low"], row["mean_diff_ci_high"], None)]
        for _, row in across.iterrows()
    ]  # fmt: skip
    links = ", ".join(f"[{name}]({Path('..') / name / REPORT_DIR / REPORT_MARKDOWN})" for name in reports)
    text = (
        f"A fair comparison per workload, each tuned on its own: {links}. Across them, per pair, the tally of "
        "their tuned verdicts (test accuracy of each optimizer's best setting on the fresh confirmation seeds, "
        "with each protocol's own error control) and the pooled aggregate over the same confirmation runs, as "
        f"in an ordinary sweep's *Across workloads* section. File: `{ACROSS_WORKLOADS_CSV}`."
    )
    header = ["A vs B", "workloads", "A better", "B better", "equivalent", "undecided"]
    header += ["P(A beats B) [95 % CI]", "mean A − B, points [95 % CI]"]
    blocks: list[Block] = [
        Heading("Fair comparison across workloads", 1),
        Paragraph(text),
        Table(header, rows),
    ]
    if not across.empty:
        panels = [
            (pair, pair_tests(finals, decisions, [WORKLOAD_COLUMN], pair)) for _, pair in across.iterrows()
        ]
        save_figure(plot_across_workloads(panels), out / ACROSS_WORKLOADS_PNG)
        blocks.append(
            Image(ACROSS_WORKLOADS_PNG, "Each workload's tuned A − B on test accuracy with its interval.")
        )
    atomic_write_text(out / REPORT_MARKDOWN, to_markdown(blocks))
    atomic_write_text(out / REPORT_HTML, to_html(blocks, out, title="flowerbench report across workloads"))
    return out
