"""Learning rate x regularization heatmaps (Loshchilov & Hutter 2019, Fig. 2), only when the runs form such a
grid: the panels, the ridge and the coupling sentence are computed in bench/report/heatmap.py."""

from __future__ import annotations

from bench.report.analysis import Output, ReportInput
from bench.report.heatmap import (
    EXPLANATION,
    cells_table,
    coupling_sentence,
    find_panels,
    layout,
    plot_heatmaps,
)
from bench.report.render import Heading, Image, Paragraph
from bench.results import HEATMAP_CSV, HEATMAP_PNG

CAPTION = "Final val_accuracy over learning rate x regularization; see the text above for the marks."


def analyse(data: ReportInput) -> Output:
    panels = find_panels(data.finals, data.grouping)
    if not panels:
        return Output()
    places = layout(panels)[2]
    panels = [panel for _, panel in sorted(zip(places, panels, strict=True), key=lambda pair: pair[0])]
    blocks = [Heading("Learning rate x regularization"), Paragraph(EXPLANATION)]
    blocks += [Image(HEATMAP_PNG, CAPTION), Paragraph(f"**Coupling.** {coupling_sentence(panels)}")]
    return Output(blocks, {HEATMAP_CSV: cells_table(panels)}, {HEATMAP_PNG: plot_heatmaps(panels)})
