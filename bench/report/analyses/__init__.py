"""The report, as the list of its analyses, in the order of the page.

Each module here has ``analyse(data: ReportInput) -> Output`` (bench/report/analysis.py): its tables, figures
and blocks, computed from the tidy frame of the runs. An analysis with nothing to say (a heatmap without a
grid, a fair comparison's verdict in an ordinary sweep) returns an empty Output. Adding one to the report is
a module here and its entry below.
"""

from bench.report.analyses import (
    best_epoch,
    comparisons,
    curves,
    fair_comparison,
    heatmap,
    overview,
    parity,
    problems,
    regenerate,
    settings,
    summary,
    time_to_target,
    timing,
    verdict,
    warnings,
    workloads,
)

ANALYSES = (
    overview,  # title, runs read (runs.csv)
    fair_comparison,  # the tuned verdict of a fair comparison, in the verdict's place
    verdict,  # every pair of arms in words (an ordinary sweep)
    workloads,  # wins, ties and undecided pairs across workloads, and a pooled aggregate
    warnings,  # near chance, still climbing, seeds left out
    summary,  # final-epoch metrics per group
    comparisons,  # the tests behind the verdict, paired differences per seed
    best_epoch,  # the optimistic best epoch
    time_to_target,
    curves,
    heatmap,  # learning rate x regularization, for a grid
    parity,  # keras vs torch, experiment by experiment
    timing,
    problems,  # runs not averaged
    settings,
    regenerate,
)
