"""Decide which runs may be averaged together, what is compared with what, and how groups are labelled.

Rule: runs are averaged only when they agree on every setting except the seed. So every config key that
varies between runs becomes a grouping column, on top of the ones the user asks for with ``--group-by``,
except for the keys that are not part of the experiment (bench/experiment.py): locations and options are
ignored, and speed settings (``backend.threads``) group timing only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from bench.config import EXPERIMENT_KEYS
from bench.report.load import ALIASES, WORKLOAD, ReportError, RunTable
from bench.report.options import DEFAULT_COMPARE, DEFAULT_GROUP_BY


@dataclass(frozen=True)
class Grouping:
    """Which columns group, compare and label the runs.

    Attributes:
        compare: the key whose values are compared (``optimizer``).
        columns: runs in one group agree on all of these; results are never averaged across them.
        arms: the part of ``columns`` being compared: the compared key (the optimizer) and the settings
            that come with it (``optimizer.lr``, or a schedule used only with one optimizer).
        strata: ``columns`` minus ``arms``: arms are compared only within one value of these (a backend).
        timing_columns: ``columns`` plus the timing-only keys that vary (``backend.threads``).
        arm_label_columns: the fewest arm columns that still tell the arms apart, for legends.
        timing_label_columns: the same for timing groups.
        stratum_label_columns: the same for strata, for panel titles.
    """

    compare: str
    columns: list[str]
    arms: list[str]
    strata: list[str]
    timing_columns: list[str]
    arm_label_columns: list[str]
    timing_label_columns: list[str]
    stratum_label_columns: list[str]


def determined_by(runs: pd.DataFrame, target: str, keys: Sequence[str]) -> bool:
    """Whether ``target`` takes a single value for each combination of ``keys`` (one row per run)."""
    if not keys:
        return runs[target].nunique(dropna=False) <= 1
    return bool((runs.groupby(list(keys), dropna=False)[target].nunique(dropna=False) <= 1).all())


def informative(runs: pd.DataFrame, columns: Sequence[str], keep: Sequence[str]) -> list[str]:
    """Drop, from the last one back, columns whose value follows from the others (except ``keep``)."""
    kept = list(columns)
    for column in reversed(columns):
        others = [c for c in kept if c != column]
        if column not in keep and others and determined_by(runs, column, others):
            kept.remove(column)
    return kept


def _checked(keys: Sequence[str], table: RunTable) -> list[str]:
    """``keys`` with aliases resolved and shared settings left out, since those split no group.

    Raises:
        ReportError: a key is no setting of any run.
    """
    available = list(dict.fromkeys(["backend", "optimizer", "seed", *table.settings]))
    checked = []
    for key in (ALIASES.get(key, key) for key in keys):
        if key not in available and key not in table.constants:
            raise ReportError(
                f"unknown column {key!r}: choose from {', '.join(available)} or a shared setting"
            )
        if key in available:
            checked.append(key)
    return checked


def choose_grouping(
    table: RunTable, group_by: Sequence[str] | None = None, compare: str | None = None
) -> Grouping:
    """Pick the grouping columns of the runs in ``table``.

    Args:
        table: the loaded runs.
        group_by: columns to group by first (default backend, optimizer); any config key.
        compare: the key whose values are compared pairwise within each stratum (default optimizer).

    Raises:
        ReportError: an unknown key, or a ``compare`` key that all runs share.
    """
    runs = table.frame.drop_duplicates("run_dir")
    group_by = _checked(group_by or DEFAULT_GROUP_BY, table)
    compare = ALIASES.get(compare or DEFAULT_COMPARE, compare or DEFAULT_COMPARE)
    if not _checked([compare], table):
        raise ReportError(f"every run has the same {compare}: nothing to compare")
    settings = table.settings
    auto = [k for k in settings if k != "seed" and EXPERIMENT_KEYS.is_experiment(k)]
    # Runs of different workloads are never averaged or compared: the workload leads every stratum's label.
    workloads = [WORKLOAD] if WORKLOAD in settings else []
    group_by = [*workloads, *group_by]
    columns = list(dict.fromkeys([*group_by, compare, *auto]))

    def goes_with_compared(key: str) -> bool:
        return (
            key == compare
            or key.startswith(f"{compare}.")
            or (key in auto and key not in group_by and determined_by(runs, key, [compare]))
        )

    arms = [compare, *(c for c in columns if c != compare and goes_with_compared(c))]  # "adamw, lr=.."
    strata = [c for c in columns if c not in arms]
    timing_extra = [k for k in settings if EXPERIMENT_KEYS.is_timing_only(k)]
    arm_labels = informative(runs, arms, keep=[compare])
    return Grouping(
        compare=compare,
        columns=columns,
        arms=arms,
        strata=strata,
        timing_columns=columns + timing_extra,
        arm_label_columns=arm_labels,
        timing_label_columns=arm_labels + timing_extra,
        stratum_label_columns=informative(runs, strata, keep=group_by),
    )


def format_value(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "unset"
    return f"{value:g}" if isinstance(value, float) else str(value)


def label(row: pd.Series | dict[str, Any], columns: Sequence[str]) -> str:
    """A short name such as ``adamw, lr=0.001``: backend and optimizer bare, their sub-keys without prefix."""
    parts = []
    for column in columns:
        value = format_value(row[column])
        if column in ("backend", "optimizer", WORKLOAD):
            parts.append(value)
        else:
            head, _, tail = column.partition(".")
            parts.append(f"{tail if head in ('backend', 'optimizer') else column}={value}")
    return ", ".join(parts)


def add_labels(frame: pd.DataFrame, grouping: Grouping) -> pd.DataFrame:
    """Add text columns ``arm``, ``stratum`` and ``timing_arm`` used by plots, comparisons and the report."""
    return frame.assign(
        arm=frame.apply(label, axis=1, columns=grouping.arm_label_columns),
        stratum=frame.apply(label, axis=1, columns=grouping.stratum_label_columns),
        timing_arm=frame.apply(label, axis=1, columns=grouping.timing_label_columns),
    )


def iter_groups(frame: pd.DataFrame, columns: Sequence[str]) -> Iterator[tuple[dict[str, Any], pd.DataFrame]]:
    """Like ``groupby``, but keeps missing values as a group, accepts no columns, and yields dict keys."""
    if not columns:
        yield {}, frame
        return
    for key, group in frame.groupby(list(columns), dropna=False, sort=True):
        yield dict(zip(columns, key, strict=True)), group
