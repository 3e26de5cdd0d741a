"""A workload: the problem an optimizer is asked to solve, as one swappable part of the experiment.

A workload is a dataset, a model, the training length and batch size, and the validation accuracy that
time-to-target measures against (AlgoPerf's notion). The built-in ones are the options of ``conf/workload/``
(``workload=flowers_cnn``, the seed blog's and the default; ``workload=flowers_resnet``); a user's own is one
more YAML there, or the same keys set on the command line. Each workload defines its sizes by name
(``workload.size=full``, its own; ``reduced``, what ``experiment=suite`` runs on 2 cores), and its dataset,
model and train keys read the chosen row of that table.

Its name is derived, ``<dataset.name>/<model.name>``, so that it can never disagree with what ran: a run of
``model=resnet`` under the default preset is labelled ``tf_flowers/resnet``, not ``flowers_cnn``. The report
gives a verdict per workload and never averages across them; across workloads it counts wins, ties and
undecided pairs (bench/report/analyses/workloads.py).

Plain Python, cheap to import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from bench.checks import require
from bench.experiment import Role, declared

#: The size every workload has: its own definition (the values its YAML gives without the table).
FULL = "full"


@dataclass
class WorkloadConfig:
    """Which problem the run belongs to (the dataset, model and train keys say what it is)."""

    # <dataset.name>/<model.name>: a label of keys recorded in their own right, so it keeps no runs apart itself.
    name: str = declared(Role.OPTION, default="${dataset.name}/${model.name}")
    # Which row of `sizes` the dataset, model and train keys read (full: the workload's own definition).
    size: str = FULL
    # size -> the values it sets (image_size, max_per_class, epochs, batch_size, target, ...). What a row sets
    # is recorded under dataset.*, model.* and train.*; the table itself is the preset's, not a run's.
    sizes: dict[str, Any] = declared(Role.OPTION, default_factory=dict)
    # The val_accuracy time-to-target measures against (report.target replaces it; null: 95 % of the best
    # arm's mean final val_accuracy, per stratum). An analysis setting: it changes no run.
    target: Optional[float] = declared(Role.OPTION, default=None)

    def __post_init__(self) -> None:
        require(
            self.size in self.sizes or (not self.sizes and self.size == FULL),
            f"workload.size={self.size!r}: this workload defines "
            + (f"the sizes {sorted(self.sizes)}" if self.sizes else "no sizes (it has only its own, full)"),
        )
        require(
            self.target is None or 0 < self.target <= 1,
            f"workload.target must be null or a val_accuracy in (0, 1], got {self.target}",
        )


def workload_name(dataset_name: str, model_name: str) -> str:
    """The label of a workload, as :class:`WorkloadConfig` derives it."""
    return f"{dataset_name}/{model_name}"
