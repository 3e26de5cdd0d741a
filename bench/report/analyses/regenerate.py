"""How to regenerate: the command that rebuilds this folder, with the options that differ from the defaults."""

from __future__ import annotations

from bench.report.analysis import Output, ReportInput
from bench.report.options import regenerate_command
from bench.report.render import Code, Heading, Paragraph
from bench.results import RUNS_CSV


def analyse(data: ReportInput) -> Output:
    text = (
        "This folder is rebuilt by the command below (also run at the end of each Hydra multirun by "
        f"`bench.callbacks.ReportCallback`). `{RUNS_CSV}` holds the tidy data behind every table and figure."
    )
    command = regenerate_command(data.paths, data.out_dir, data.options)
    return Output([Heading("How to regenerate"), Paragraph(text), Code(command)])
