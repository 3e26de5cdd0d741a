"""Backend parity: each experiment run on both backends, and how far keras and torch ended apart (parity.py)."""

from __future__ import annotations

from bench.report.analysis import Output, ReportInput
from bench.report.groups import format_value
from bench.report.parity import COLUMNS as PARITY_COLUMNS
from bench.report.parity import backend_parity, not_at_parity
from bench.report.render import Block, Heading, Paragraph, Table
from bench.results import PARITY_CSV


def analyse(data: ReportInput) -> Output:
    parity = backend_parity(data.table)
    note = _not_at_parity_note(not_at_parity(data.table))
    if parity.empty:
        return Output([Heading("Backend parity"), *note] if note else [])
    keys = [column for column in parity.columns if column not in (*PARITY_COLUMNS, "dropout")]
    by_optimizer = parity.groupby("optimizer")
    # Hyperparameters that come with the optimizer (beta_1 is unset for SGD) would only repeat the optimizer's
    # name; keep the keys that vary within one optimizer (parity.csv has them all).
    keys = [
        k for k in keys if k in ("optimizer", "seed") or by_optimizer[k].nunique(dropna=False).gt(1).any()
    ]
    header = [*keys, "dropout", "epochs", "loss: max rel. diff", "val_loss: max rel. diff"]
    header += ["accuracy: max abs. diff", "val_accuracy: max abs. diff"]
    rows = [
        [*(format_value(row[key]) for key in [*keys, "dropout", "epochs"])]
        + [f"{row[column]:.1e}" for column in PARITY_COLUMNS[1:]]
        for _, row in parity.iterrows()
    ]
    text = (
        "Each row is one experiment (same settings, same seed) run on both backends: the largest difference "
        "between keras and torch over its epochs (loss relative to keras' value; accuracy as a fraction of the "
        "photos). Both start from the same weights and see the same batches, with the same optimizer "
        "semantics. With dropout 0 they agree to float32 round-off, which compounds slowly over steps; with "
        "dropout > 0 each framework draws its own masks, and only seed averages are comparable. "
        f"File: `{PARITY_CSV}`."
    )
    return Output(
        [Heading("Backend parity"), Paragraph(text), Table(header, rows), *note], {PARITY_CSV: parity}
    )


def _not_at_parity_note(optimizers: list[str]) -> list[Block]:
    if not optimizers:
        return []
    text = (
        f"Not at parity by design: {', '.join(optimizers)} (a user's optimizer: each backend runs "
        "its own framework's class, so runs on keras and torch are different experiments; result.json says "
        "`backend_parity: false`). Compare such an optimizer within one backend."
    )
    return [Paragraph(text)]
