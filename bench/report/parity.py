"""Backend parity: the same experiment on Keras and on torch, compared epoch by epoch (docs/design.md, "Parity").

A seed means the same experiment on both backends: same initial weights, same batches in the same order, the
same optimizer semantics. Two completed runs that share every setting (seed included) but the backend should
then trace the same curves, up to float round-off, when dropout is off; with dropout on, their masks come from
different random generators and only the seed-averaged results are comparable. This table shows how close
they came, so a reader can see the guarantee hold (or not) on their own sweep.
"""

from __future__ import annotations

import pandas as pd

from bench.config import EXPERIMENT_KEYS
from bench.report.load import RunTable
from bench.results import RunStatus

#: Not the list of backends (that is bench.backend.REGISTRY): the pair parity checks, Keras defining the
#: semantics (docs/design.md, "Parity") and torch checked against it.
REFERENCE, CHECKED = "keras", "torch"
#: Experiment keys that parity does not pair on. ``backend`` is what parity compares. ``backend.device`` is
#: part of the experiment everywhere else (bench/experiment.py: a GPU run is kept apart from a CPU run), but
#: parity leaves it out on purpose: it asks whether the two backends trace the same curves from the same
#: numbers, and a Keras run on the GPU next to a torch run on the CPU is that same experiment; the round-off
#: a device adds is part of what the table measures.
NOT_PAIRED = ("backend", "backend.device")
#: Losses are compared relative to Keras' value; accuracies as absolute differences (fractions of photos).
RELATIVE_METRICS = ("loss", "val_loss")
ABSOLUTE_METRICS = ("accuracy", "val_accuracy")
COLUMNS = [
    "epochs",
    *(f"{m}_max_rel_diff" for m in RELATIVE_METRICS),
    *(f"{m}_max_abs_diff" for m in ABSOLUTE_METRICS),
]


def _pair_keys(table: RunTable) -> list[str]:
    """What must be equal for two runs to be the same experiment: every varying experiment key
    (bench/experiment.py: not paths, thread counts or options) except the backend and its device."""
    varying = [key for key in table.settings if EXPERIMENT_KEYS.is_experiment(key) and key not in NOT_PAIRED]
    return list(dict.fromkeys(["optimizer", "seed", *varying]))


def dropout_of(table: RunTable, frame: pd.DataFrame) -> pd.Series:
    """``model.dropout`` of each row: its own column when it varies, else the value all runs share; 0 for a
    model without dropout (``model=resnet``), whose backends are comparable step by step as they are."""
    if "model.dropout" in frame.columns:
        return frame["model.dropout"].fillna(0.0)
    return pd.Series(table.constants.get("model.dropout", 0.0), index=frame.index)


def not_at_parity(table: RunTable) -> list[str]:
    """The optimizers whose runs say they are not at parity (a user's, each backend running its own class)."""
    frame = table.frame
    if "backend_parity" not in frame.columns:
        return []
    return sorted(frame.loc[frame["backend_parity"].eq(False), "optimizer"].astype(str).unique())


def backend_parity(table: RunTable) -> pd.DataFrame:
    """One row per experiment run on both backends: the largest per-epoch difference of each metric.

    Empty when no experiment was run, to completion, on both backends. A user's optimizer is left out: its
    backends run different classes, so their difference is not a parity check (:func:`not_at_parity`).
    """
    frame = table.frame
    done = frame[(frame["status"] == RunStatus.COMPLETED) & frame["epoch"].notna()]
    done = done[~done["optimizer"].isin(not_at_parity(table))]
    keys = _pair_keys(table)
    if {REFERENCE, CHECKED} - set(done["backend"]) or not set(keys) <= set(done.columns):
        return pd.DataFrame(columns=[*keys, "dropout", *COLUMNS])
    done = done.assign(dropout=dropout_of(table, done))
    keras, torch = (done[done["backend"] == name] for name in (REFERENCE, CHECKED))
    pairs = keras.merge(torch, on=[*keys, "dropout", "epoch"], suffixes=("_keras", "_torch"))
    for metric in RELATIVE_METRICS:
        reference = pairs[f"{metric}_keras"].abs()
        pairs[f"{metric}_max_rel_diff"] = (
            pairs[f"{metric}_torch"] - pairs[f"{metric}_keras"]
        ).abs() / reference
    for metric in ABSOLUTE_METRICS:
        pairs[f"{metric}_max_abs_diff"] = (pairs[f"{metric}_torch"] - pairs[f"{metric}_keras"]).abs()
    aggregations = {"epochs": ("epoch", "count")}
    aggregations |= {column: (column, "max") for column in COLUMNS[1:]}
    grouped = pairs.groupby([*keys, "dropout"], dropna=False, sort=True)
    return grouped.agg(**aggregations).reset_index()
