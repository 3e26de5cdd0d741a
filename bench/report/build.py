"""Build a report folder from run directories: load → group → tables → figures → report.md/html."""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from bench.io import atomic_write_text
from bench.report.groups import DEFAULT_COMPARE, DEFAULT_GROUP_BY, add_labels, choose_grouping
from bench.report.heatmap import draw_heatmaps
from bench.report.load import PathsLike, ReportError, RunTable, as_paths, load_run_table
from bench.report.parity import backend_parity
from bench.report.plots import family, palette, plot_curves, plot_timing
from bench.report.render import Image, to_html, to_markdown
from bench.report.sections import ReportData, build_document
from bench.report.stats import compare_arms, final_epochs, steady_epochs, summarize, timing_table

DEFAULT_METRICS = ("loss", "accuracy")
REPORT_DIR = "report"


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


def draw_curves(
    frame: pd.DataFrame, families: dict[str, list[str]], hue_title: str, out_dir: Path
) -> list[Image]:
    """One figure per metric family, from completed runs only (a killed run would bend the mean)."""
    done = frame[(frame["status"] == "completed") & frame["epoch"].notna()]
    colors = palette(frame["arm"])
    images = []
    for name, metrics in families.items():
        if done[metrics].notna().any().any():
            file = f"curves_{name}.png"
            plot_curves(done, metrics, colors, hue_title, out_dir / file)
            caption = (
                f"{name} per epoch, mean over seeds of completed runs: train solid, validation dashed, "
                "band = 95 % t-interval across seeds (none with one seed)."
            )
            images.append(Image(file, caption))
    return images


def draw_timing(frame: pd.DataFrame, hue_title: str, out_dir: Path) -> Image | None:
    steady = steady_epochs(frame).dropna(subset=["train_images_per_s"])
    if steady.empty:
        return None
    plot_timing(steady, palette(frame["timing_arm"]), hue_title, out_dir / "timing.png")
    caption = "Training images/s: bar = median over runs x epochs (epoch 1 left out), error bar = IQR."
    return Image("timing.png", caption)


def write_tables(out_dir: Path, tables: dict[str, pd.DataFrame]) -> None:
    for name, table in tables.items():
        atomic_write_text(out_dir / f"{name}.csv", table.to_csv(index=False))


def regenerate_command(
    paths: Sequence[Path],
    out_dir: Path,
    metrics: Sequence[str] | None,
    group_by: Sequence[str] | None,
    compare: str | None,
) -> str:
    """The CLI call that rebuilds this report, with only the options that differ from the defaults."""
    words = ["python", "-m", "bench.report", *map(str, paths)]
    if out_dir != default_out_dir(paths):
        words += ["--out", str(out_dir)]
    if metrics and tuple(metrics) != DEFAULT_METRICS:
        words += ["--metrics", ",".join(metrics)]
    if group_by and tuple(group_by) != DEFAULT_GROUP_BY:
        words += ["--group-by", ",".join(group_by)]
    if compare and compare != DEFAULT_COMPARE:
        words += ["--compare", compare]
    return shlex.join(words)


def build_report(
    paths: PathsLike,
    out_dir: str | os.PathLike | None = None,
    metrics: Sequence[str] | None = None,
    group_by: Sequence[str] | None = None,
    compare: str | None = None,
) -> Path:
    """Write the report of every run below ``paths`` and return the report directory.

    Args:
        paths: sweep directories, run directories, or folders holding either, searched recursively.
        out_dir: where to write; default ``<first path>/report``.
        metrics: metric families to draw (``loss`` draws loss and val_loss; ``val_loss`` only that one).
        group_by: columns to group by first (default backend, optimizer); varying settings are added.
        compare: the key whose values are compared pairwise (default optimizer).

    Raises:
        ReportError: no runs under a path, or an unknown metric or column name.
    """
    paths = as_paths(paths)
    if not paths:
        raise ReportError("no path given")
    out = Path(out_dir) if out_dir is not None else default_out_dir(paths)
    table = load_run_table(paths)
    families = metric_families(metrics or DEFAULT_METRICS, table)
    grouping = choose_grouping(table, group_by, compare)
    frame = add_labels(table.frame, grouping)
    finals = final_epochs(frame)
    data = ReportData(
        paths=paths,
        table=table,
        grouping=grouping,
        finals=finals,
        summary=summarize(finals, grouping.columns),
        comparisons=compare_arms(finals, grouping.strata),
        timing=timing_table(frame, grouping.timing_columns),
        curves=draw_curves(frame, families, grouping.compare, out),
        timing_figure=draw_timing(frame, grouping.compare, out),
        command=regenerate_command(paths, out, metrics, group_by, compare),
        heatmaps=draw_heatmaps(finals, grouping, out),
        parity=backend_parity(table),
    )
    tables = {
        "runs": table.frame,
        "summary": data.summary,
        "comparisons": data.comparisons,
        "timing": data.timing,
    }
    if data.heatmaps:
        tables["heatmap"] = data.heatmaps.cells
    if not data.parity.empty:
        tables["parity"] = data.parity
    write_tables(out, tables)
    blocks = build_document(data)
    atomic_write_text(out / "report.md", to_markdown(blocks))
    atomic_write_text(out / "report.html", to_html(blocks, out, title="flowerbench report"))
    return out
