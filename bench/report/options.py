"""The report's options, defined once: each field of :class:`ReportConfig` carries its default, its help and
whether ``python -m bench.report`` takes it (as ``--name-with-dashes``).

Everything that handles the options derives from this class: Hydra's ``report.*`` (its schema, registered by
bench/config.py), the Hydra callback that builds the report when a multirun ends (bench/callbacks.py, given
the whole ``report`` node by conf/config.yaml), the CLI's arguments (bench/report/__main__.py,
:func:`add_arguments`) and the command that rebuilds a report (:func:`regenerate_command`). A new option is
one field here.

Cheap to import, and below bench/config.py (which imports it): no pandas, no matplotlib, no bench.config.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from bench.checks import require, require_at_least
from bench.results import REPORT_DIR

#: Figures drawn by default: accuracy, and cross-entropy (comparable across arms, unlike the penalised loss).
DEFAULT_METRICS = ("accuracy", "ce_loss")
DEFAULT_GROUP_BY = ("backend", "optimizer")
DEFAULT_COMPARE = "optimizer"


def names(text: str) -> list[str]:
    """A comma-separated list on the command line: ``backend,optimizer.lr``."""
    return [name.strip() for name in text.split(",") if name.strip()]


def option(
    default: Any,
    help: str,
    *,
    cli: Callable[[str], Any] | None = None,
    metavar: str | None = None,
    unset: Any = None,
) -> Any:
    """A field of :class:`ReportConfig`.

    Args:
        default: the value when none is given (Hydra and CLI alike).
        help: what it means, for ``--help`` (the default is added to it).
        cli: how ``python -m bench.report`` parses it from its text; None: not a CLI option.
        metavar: the CLI's placeholder.
        unset: what a default of None stands for (``metrics: null`` draws ``DEFAULT_METRICS``), so that
            the help can say it and the regenerate command leaves it out.
    """
    metadata = {"help": help, "cli": cli, "metavar": metavar, "unset": unset}
    return field(default=default, metadata=metadata)


@dataclass
class ReportConfig:
    """The analysis stage run when a multirun ends (``report.*``); ``python -m bench.report`` takes the same
    options.

    The margins say what difference matters in practice: two arms whose difference is shown to lie within
    ±margin are called equivalent (two one-sided tests). They are set before looking at any result.
    """

    enabled: bool = option(True, "build the report when a multirun ends")
    metrics: Optional[list[str]] = option(
        None,
        "metrics to plot, one figure per family: 'loss' draws loss and val_loss, 'val_loss' only that",
        cli=names,
        metavar="M1,M2",
        unset=list(DEFAULT_METRICS),
    )
    group_by: Optional[list[str]] = option(
        None,
        "columns to group by first, e.g. backend,optimizer.lr; every other setting that varies is added "
        "automatically",
        cli=names,
        metavar="K1,K2",
        unset=list(DEFAULT_GROUP_BY),
    )
    compare: Optional[str] = option(
        None,
        "the setting whose values are compared pairwise within each group",
        cli=str,
        metavar="KEY",
        unset=DEFAULT_COMPARE,
    )
    margin: float = option(
        0.01,
        "validation-accuracy difference that matters, as a fraction (0.01 = one point): within it two arms "
        "can be shown equivalent",
        cli=float,
    )
    loss_margin: float = option(
        0.02, "the same for validation cross-entropy, in nats (about 2 % of the seed blog's ~1.1)", cli=float
    )
    target: Optional[float] = option(
        None,
        "val_accuracy of time-to-target",
        cli=float,
        unset="95 % of the best arm's mean final val_accuracy",
    )

    def __post_init__(self) -> None:
        require(
            0 < self.margin < 1, f"report.margin must be in (0, 1) (accuracy fraction), got {self.margin}"
        )
        require_at_least("report.loss_margin", self.loss_margin, 0, strict=True)
        require(
            self.target is None or 0 < self.target <= 1,
            f"report.target must be null or a val_accuracy in (0, 1], got {self.target}",
        )

    @classmethod
    def given(cls, **values: Any) -> ReportConfig:
        """The options with those not given (None) at their defaults, checked; as the CLI and
        :func:`bench.report.build_report` take them.

        Raises:
            bench.errors.ConfigError: an option out of range.
        """
        return cls(**{name: value for name, value in values.items() if value is not None})


def cli_fields() -> list[dataclasses.Field]:
    """The options ``python -m bench.report`` takes, in the order of the class."""
    return [f for f in dataclasses.fields(ReportConfig) if f.metadata["cli"] is not None]


def flag(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def _text(value: Any) -> str:
    """An option's value as the CLI spells it: lists comma-separated, numbers in their shortest form."""
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One argument per CLI option, its help ending with its default; an option not given stays None."""
    for f in cli_fields():
        default = f.metadata["unset"] if f.default is None else f.default
        text = f"{f.metadata['help']} (default: {_text(default)})".replace("%", "%%")  # argparse formats help
        parser.add_argument(flag(f.name), type=f.metadata["cli"], metavar=f.metadata["metavar"], help=text)


def _is_default(f: dataclasses.Field, value: Any) -> bool:
    def effective(v: Any) -> Any:  # None, or an empty list, is the default
        return f.metadata["unset"] if v is None or (isinstance(v, list | tuple) and not v) else v

    return effective(value) == effective(f.default)


def regenerate_command(paths: Sequence[Path], out_dir: Path, options: ReportConfig) -> str:
    """The CLI call that rebuilds this report, with only the options that differ from the defaults."""
    words = ["python", "-m", "bench.report", *map(str, paths)]
    if out_dir != paths[0] / REPORT_DIR:
        words += ["--out", str(out_dir)]
    for f in cli_fields():
        value = getattr(options, f.name)
        if not _is_default(f, value):
            words += [flag(f.name), _text(value)]
    return shlex.join(words)
