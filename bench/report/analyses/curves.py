"""Learning curves: one figure per metric family, seed-averaged, from completed runs only (plots.py)."""

from __future__ import annotations

from bench.report.analysis import Output, ReportInput
from bench.report.plots import palette, plot_curves
from bench.report.render import Heading, Image, Paragraph
from bench.results import RunStatus, curves_png


def analyse(data: ReportInput) -> Output:
    done = data.frame[
        (data.frame["status"] == RunStatus.COMPLETED) & data.frame["epoch"].notna()
    ]  # a killed run
    colors = palette(data.frame["arm"])  # would bend the mean
    output = Output()
    for name, metrics in data.families.items():
        if done[metrics].notna().any().any():
            file = curves_png(name)
            output.figures[file] = plot_curves(done, metrics, colors, data.grouping.compare)
            caption = (
                f"{name} per epoch, mean over seeds of completed runs: train solid, validation dashed, "
                "band = 95 % t-interval across seeds (none with one seed)."
            )
            if name == "loss":
                caption += " The loss includes each arm's own L2 penalty: compare arms on ce_loss instead."
            output.blocks.append(Image(file, caption))
    if not output.blocks:
        output.blocks = [Paragraph("No completed run has a finished epoch to draw.")]
    output.blocks.insert(0, Heading("Learning curves"))
    return output
