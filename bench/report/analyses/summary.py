"""Final-epoch metrics per group: mean ± sd and the 95 % t-interval over seeds (stats.summarize)."""

from __future__ import annotations

from bench.decide import fmt
from bench.report.analysis import Output, ReportInput
from bench.report.phrases import group_cells, group_header, interval, mean_sd, unit
from bench.report.render import Heading, Paragraph, Table
from bench.report.stats import STATUSES_NOT_AVERAGED
from bench.results import SUMMARY_CSV

#: The summary table's columns: cross-entropy, not the penalised loss (which summary.csv also holds).
SHOWN_METRICS = ("val_accuracy", "val_ce_loss", "accuracy", "ce_loss")


def analyse(data: ReportInput) -> Output:
    header = [*group_header(data.grouping), "n"]
    for metric in SHOWN_METRICS:
        header += [f"{unit(metric)} mean ± sd", "95 % CI"]
    header += ["best epoch", *(f"n {s}" for s in STATUSES_NOT_AVERAGED), "note"]
    rows = []
    for _, row in data.summary.iterrows():
        cells = [*group_cells(row, data.grouping, data.grouping.arm_label_columns), str(row["n_seeds"])]
        for metric in SHOWN_METRICS:
            cells += [
                mean_sd(row, metric),
                interval(row[f"{metric}_ci_low"], row[f"{metric}_ci_high"], metric),
            ]
        cells += [fmt(row["best_epoch_mean"], digits=1), *(str(row[f"n_{s}"]) for s in STATUSES_NOT_AVERAGED)]
        rows.append([*cells, row["note"]])
    text = (
        "Final-epoch metrics of completed runs: mean ± sample sd over seeds and the 95 % t-interval of the "
        "mean. Accuracies in percent; `ce_loss` is the cross-entropy alone, comparable across arms. The "
        "reported `loss`/`val_loss` add each arm's own L2 penalty (none for AdamW), so they are in "
        "`summary.csv` only, never compared. `best epoch` is the mean epoch of highest val_accuracy. "
        f"File: `{SUMMARY_CSV}` (fractions, not percent; one column per setting)."
    )
    return Output([Heading("Summary"), Paragraph(text), Table(header, rows)], {SUMMARY_CSV: data.summary})
