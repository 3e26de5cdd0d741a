"""The best epoch's val_accuracy: selected on the validation photos, so optimistic; never the headline."""

from __future__ import annotations

from bench.decide import fmt
from bench.report.analysis import Output, ReportInput
from bench.report.phrases import group_cells, group_header, mean_sd
from bench.report.render import Heading, Paragraph, Table


def analyse(data: ReportInput) -> Output:
    rows = [
        [
            *group_cells(row, data.grouping, data.grouping.arm_label_columns),
            str(row["n_seeds"]),
            mean_sd(row, "best_val_accuracy"),
            mean_sd(row, "val_accuracy"),
            fmt(row["best_epoch_mean"], digits=1),
        ]
        for _, row in data.summary.iterrows()
    ]
    header = [*group_header(data.grouping), "n", "best-epoch val_accuracy (%)", "final val_accuracy (%)"]
    text = (
        "Optimistic: each run's highest val_accuracy over its epochs, chosen on the same validation photos it "
        "is measured on (no held-out choice of epoch), beside the final-epoch value the verdict uses."
    )
    return Output([Heading("Best epoch (optimistic)"), Paragraph(text), Table([*header, "best epoch"], rows)])
