"""Build a report folder from run directories: load → group → tables → figures → report.md/html."""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from bench.config import ReportConfig
from bench.errors import ConfigError
from bench.io import atomic_write_text
from bench.report import protocol_section
from bench.report.compare import compare_arms, seed_differences
from bench.report.flags import arm_flags
from bench.report.groups import DEFAULT_COMPARE, DEFAULT_GROUP_BY, add_labels, choose_grouping
from bench.report.heatmap import draw_heatmaps
from bench.report.load import PathsLike, ReportError, RunTable, as_paths, load_run_table
from bench.report.parity import backend_parity, not_at_parity
from bench.report.plots import family, palette, plot_curves, plot_paired_differences, plot_timing, save_figure
from bench.report.render import Image, to_html, to_markdown
from bench.report.sections import ReportData, build_document
from bench.report.stats import final_epochs, steady_epochs, summarize, timing_table
from bench.report.target import performance_profile, target_summary, time_to_target
from bench.report.target_figures import plot_performance_profile, plot_time_to_target

#: Figures drawn by default: accuracy, and cross-entropy (comparable across arms, unlike the penalised loss).
DEFAULT_METRICS = ("accuracy", "ce_loss")
DEFAULTS = ReportConfig()  # margins and target: one definition, shared with the Hydra config
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
            save_figure(plot_curves(done, metrics, colors, hue_title), out_dir / file)
            caption = (
                f"{name} per epoch, mean over seeds of completed runs: train solid, validation dashed, "
                "band = 95 % t-interval across seeds (none with one seed)."
            )
            if name == "loss":
                caption += " The loss includes each arm's own L2 penalty: compare arms on ce_loss instead."
            images.append(Image(file, caption))
    return images


def draw_differences(differences: pd.DataFrame, comparisons: pd.DataFrame, out_dir: Path) -> list[Image]:
    """One paired-differences figure per comparable metric that has a comparison."""
    images = []
    for metric in dict.fromkeys(comparisons["metric"]):
        file = f"differences_{metric}.png"
        save_figure(plot_paired_differences(differences, comparisons, metric), out_dir / file)
        caption = (
            f"Final {metric}, A − B: one dot per seed (paired comparisons), black = mean with its 95 % "
            "interval (paired t, or Welch where the seeds differ), grey band = ±margin, the decision on the right."
        )
        images.append(Image(file, caption))
    return images


def draw_targets(
    times: pd.DataFrame, summary: pd.DataFrame, profile: pd.DataFrame, colors: dict, out_dir: Path
) -> list[Image]:
    """The time-to-target curves, and the performance profile when there are two strata or more."""
    if times.empty:
        return []
    save_figure(plot_time_to_target(times, summary, colors), out_dir / "time_to_target.png")
    caption = (
        "Fraction of each arm's runs that reached the target val_accuracy, against cumulative training time "
        "(Kaplan-Meier, so runs that never reached it count as censored, open dots)."
    )
    images = [Image("time_to_target.png", caption)]
    if not profile.empty:
        save_figure(plot_performance_profile(profile, colors), out_dir / "performance_profile.png")
        caption = (
            "Performance profile (Dolan & Moré, as AlgoPerf): for each arm, the fraction of strata where its "
            "median training time to the target is within τ times the fastest arm's."
        )
        images.append(Image("performance_profile.png", caption))
    return images


def draw_timing(frame: pd.DataFrame, hue_title: str, out_dir: Path) -> Image | None:
    steady = steady_epochs(frame).dropna(subset=["train_images_per_s"])
    if steady.empty:
        return None
    save_figure(plot_timing(steady, palette(frame["timing_arm"]), hue_title), out_dir / "timing.png")
    caption = "Training images/s: bar = median over runs x epochs (epoch 1 left out), error bar = IQR."
    return Image("timing.png", caption)


def clear_previous_report(out_dir: Path) -> None:
    """Remove the figures and tables of an earlier build of this report, so that a rebuild that no longer draws
    one (fewer arms, another option) leaves no stale file beside the new report. Only in a folder that holds
    a report.md, and only its .png and .csv files: a report folder is the report's own."""
    if not (out_dir / "report.md").is_file():
        return
    for stale in [*out_dir.glob("*.png"), *out_dir.glob("*.csv")]:
        stale.unlink(missing_ok=True)


def write_tables(out_dir: Path, tables: dict[str, pd.DataFrame]) -> None:
    for name, table in tables.items():
        atomic_write_text(out_dir / f"{name}.csv", table.to_csv(index=False))


def regenerate_command(
    paths: Sequence[Path],
    out_dir: Path,
    metrics: Sequence[str] | None,
    group_by: Sequence[str] | None,
    compare: str | None,
    options: ReportConfig,
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
    for name in ("margin", "loss_margin", "target"):
        if getattr(options, name) != getattr(DEFAULTS, name):
            words += [f"--{name.replace('_', '-')}", f"{getattr(options, name):g}"]
    return shlex.join(words)


def report_options(margin: float | None, loss_margin: float | None, target: float | None) -> ReportConfig:
    """The statistical options, defaults filled in and checked.

    Raises:
        ReportError: a margin or target out of range.
    """
    try:
        return ReportConfig(
            margin=DEFAULTS.margin if margin is None else margin,
            loss_margin=DEFAULTS.loss_margin if loss_margin is None else loss_margin,
            target=target,
        )
    except ConfigError as error:
        raise ReportError(str(error)) from None


def build_report(
    paths: PathsLike,
    out_dir: str | os.PathLike | None = None,
    metrics: Sequence[str] | None = None,
    group_by: Sequence[str] | None = None,
    compare: str | None = None,
    margin: float | None = None,
    loss_margin: float | None = None,
    target: float | None = None,
) -> Path:
    """Write the report of every run below ``paths`` and return the report directory.

    Args:
        paths: sweep directories, run directories, or folders holding either, searched recursively.
        out_dir: where to write; default ``<first path>/report``.
        metrics: metric families to draw (``loss`` draws loss and val_loss; ``val_loss`` only that one).
        group_by: columns to group by first (default backend, optimizer); varying settings are added.
        compare: the key whose values are compared pairwise (default optimizer).
        margin: the validation-accuracy difference that matters (fraction; default 0.01 = 1 point).
        loss_margin: the cross-entropy difference that matters (nats; default 0.02).
        target: the val_accuracy of time-to-target (default: 95 % of the best arm's mean final one).

    Raises:
        ReportError: no runs under a path, an unknown metric or column name, or an option out of range.
    """
    paths = as_paths(paths)
    if not paths:
        raise ReportError("no path given")
    out = Path(out_dir) if out_dir is not None else default_out_dir(paths)
    options = report_options(margin, loss_margin, target)
    table = load_run_table(paths)
    families = metric_families(metrics or DEFAULT_METRICS, table)
    clear_previous_report(out)
    grouping = choose_grouping(table, group_by, compare)
    frame = add_labels(table.frame, grouping)
    finals = final_epochs(frame)
    margins = {"val_accuracy": options.margin, "val_ce_loss": options.loss_margin}
    comparisons = compare_arms(finals, grouping.strata, margins)
    differences = seed_differences(finals, grouping.strata)
    times = time_to_target(frame, options.target)
    targets = target_summary(times)
    profile = performance_profile(targets)
    protocol_record = protocol_section.load_record(paths)
    protocol_blocks, protocol_tables = (
        protocol_section.blocks(protocol_record, out) if protocol_record else ([], {})
    )
    data = ReportData(
        paths=paths,
        table=table,
        grouping=grouping,
        finals=finals,
        summary=summarize(finals, grouping.columns),
        comparisons=comparisons,
        differences=differences,
        flags=arm_flags(frame, finals, options.margin),
        timing=timing_table(frame, grouping.timing_columns),
        curves=draw_curves(frame, families, grouping.compare, out),
        difference_figures=draw_differences(differences, comparisons, out),
        timing_figure=draw_timing(frame, grouping.compare, out),
        targets=targets,
        target_figures=draw_targets(times, targets, profile, palette(frame["arm"]), out),
        command=regenerate_command(paths, out, metrics, group_by, compare, options),
        heatmaps=draw_heatmaps(finals, grouping, out),
        parity=backend_parity(table),
        not_at_parity=not_at_parity(table),
        protocol=protocol_blocks,
    )
    tables = {
        "runs": table.frame,
        "summary": data.summary,
        "comparisons": data.comparisons,
        "seed_differences": data.differences,
        "flags": data.flags,
        "timing": data.timing,
        "time_to_target": times,
        "target_summary": targets,
    }
    if not profile.empty:
        tables["performance_profile"] = profile
    if data.heatmaps:
        tables["heatmap"] = data.heatmaps.cells
    if not data.parity.empty:
        tables["parity"] = data.parity
    tables |= protocol_tables
    write_tables(out, tables)
    blocks = build_document(data)
    atomic_write_text(out / "report.md", to_markdown(blocks))
    atomic_write_text(out / "report.html", to_html(blocks, out, title="flowerbench report"))
    return out
