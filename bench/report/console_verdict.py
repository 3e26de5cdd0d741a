"""The verdict as a plain-text table, printed when a sweep ends (bench/callbacks.py) beside the report's path."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from bench.decide import MAX_SEEDS, Decision, fmt
from bench.results import ACROSS_WORKLOADS_CSV, COMPARISONS_CSV, PROTOCOL_DECISIONS_CSV, REPORT_HTML

HEADER = ["stratum", "A vs B", "A − B (points)", "95 % CI", "seeds", "decision"]


def _rows(tests: pd.DataFrame) -> list[list[str]]:
    rows = []
    for _, t in tests.iterrows():
        metric = t["metric"]
        decision = f"better: {t['better']}" if t["decision"] == Decision.BETTER else str(t["decision"])
        needed = t.get("seeds_needed")
        if t["decision"] == Decision.UNDECIDED and pd.notna(needed):
            # inf: the estimate passed MAX_SEEDS (a difference too small for its spread), as the report says
            decision += (
                f" (~{int(needed)} seeds/arm)" if math.isfinite(needed) else f" (>{MAX_SEEDS} seeds/arm)"
            )
        seeds = int(t["n_pairs"]) if t.get("test") == "paired t" else f"{int(t['n_a'])}+{int(t['n_b'])}"
        ci = f"[{fmt(t['ci_low'], metric)}, {fmt(t['ci_high'], metric)}]" if pd.notna(t["ci_low"]) else "—"
        stratum = t.get("stratum")
        rows.append([
            str(stratum) if isinstance(stratum, str) and stratum else "all", f"{t['arm_a']} vs {t['arm_b']}",
            fmt(t["diff"], metric), ci, str(seeds), decision,
        ])  # fmt: skip
    return rows


def plain_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
             for line in [header, *rows]]  # fmt: skip
    return "\n".join(lines)


def verdict_text(report_dir: Path) -> str:
    """The accuracy verdict of the report in ``report_dir``: the tuned one of a fair comparison, else every
    pair of the last-epoch comparisons; then where the full report is."""
    protocol = report_dir / PROTOCOL_DECISIONS_CSV
    if protocol.is_file():
        decisions = pd.read_csv(protocol)
        tests = decisions[decisions["round"] == decisions["round"].max()]
        title = "Tuned verdict (test accuracy, confirmation seeds):"
    else:
        comparisons = pd.read_csv(report_dir / COMPARISONS_CSV)
        tests = comparisons[comparisons["metric"] == "val_accuracy"]
        title = "Verdict (final val_accuracy):"
    body = (
        plain_table(HEADER, _rows(tests))
        if not tests.empty
        else "no pair compared (see the report's verdict)"
    )
    return f"{title}\n{body}{_across_workloads(report_dir)}\nFull report: {report_dir / REPORT_HTML}"


ACROSS_HEADER = [
    "group",
    "A vs B",
    "workloads",
    "A better",
    "B better",
    "equivalent",
    "undecided",
    "P(A beats B)",
]


def workload_protocols_text(workload_reports: list[Path], across_dir: Path) -> str:
    """A fair comparison of several workloads: each workload's tuned verdict, then the tally across them."""
    parts = [f"{folder.parent.name}: {verdict_text(folder)}" for folder in workload_reports]
    return (
        "\n\n".join(parts) + f"{_across_workloads(across_dir)}\nAcross workloads: {across_dir / REPORT_HTML}"
    )


def _across_workloads(report_dir: Path) -> str:
    """The tally across workloads (bench/report/workloads.py), when the sweep had more than one."""
    path = report_dir / ACROSS_WORKLOADS_CSV
    across = pd.read_csv(path) if path.is_file() and path.stat().st_size else pd.DataFrame()
    if across.empty:
        return ""
    rows = [
        [
            row["group"] if isinstance(row["group"], str) else "all", f"{row['arm_a']} vs {row['arm_b']}",
            str(row["workloads"]), str(row["wins_a"]), str(row["wins_b"]), str(row["equivalent"]),
            str(row["undecided"]), f"{row['p_a_better']:.2f}",
        ]
        for _, row in across.iterrows()
    ]  # fmt: skip
    return f"\nAcross workloads:\n{plain_table(ACROSS_HEADER, rows)}"
