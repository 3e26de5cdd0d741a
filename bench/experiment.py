"""What is part of the experiment: the one policy every consumer of config keys follows.

A config key (dotted, as ``optimizer.lr``) has one of four roles:

- **experiment**: changes what a run computes (``optimizer.lr``, ``dataset.image_size``, ``seed``...). Runs
  are the same experiment only when these agree: resume skips a finished job only then, the report never
  averages across them, parity pairs runs by them, a search tells its settings apart by them.
- **location**: where the same data lives (``dataset.path``, ``dataset.data_dir``, ``dataset.cache_dir``).
  Moving the photos or the cache changes no result.
- **speed**: changes how fast a run goes, not its results (``backend.threads``): the report groups its timing
  by it, nothing else does.
- **option**: not part of any run (``force``, ``report.*``, ``throughput.*``, ``protocol.*``, ``logger.*``): how
  to rerun, report, time, track or run a protocol of runs.

Locations and options are also left out of job directory names (conf/config.yaml's
``hydra.job.config.override_dirname.exclude_keys``, which tests/test_experiment_keys.py checks against
:meth:`ExperimentKeys.job_name_exclusions`): paths would put slashes in names, and ``force=true`` must land in
the job directory it replaces.

Plain Python, cheap to import: the runner, the report and the search all use it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


class Role(enum.Enum):
    EXPERIMENT = "experiment"
    LOCATION = "location"
    SPEED = "speed"
    OPTION = "option"


@dataclass(frozen=True)
class ExperimentKeys:
    """Classifies dotted config keys; every key not named here is part of the experiment.

    Attributes:
        locations: keys that say where the same data lives.
        speed: keys that change the speed of a run, not its results.
        options: keys, or whole sections (every key below them), that are not part of a run.
    """

    locations: tuple[str, ...] = ("dataset.path", "dataset.data_dir", "dataset.cache_dir")
    speed: tuple[str, ...] = ("backend.threads",)
    options: tuple[str, ...] = ("force", "report", "throughput", "protocol", "logger")
    option_groups: tuple[str, ...] = ("logger",)  # config groups of options: ``logger=mlflow`` names no job

    def role(self, key: str) -> Role:
        """The role of a dotted config key (an override's key may carry Hydra's ``+``, ``++`` or ``~``)."""
        key = key.lstrip("+~")
        if key in self.locations:
            return Role.LOCATION
        if key in self.speed:
            return Role.SPEED
        if any(key == option or key.startswith(f"{option}.") for option in self.options):
            return Role.OPTION
        return Role.EXPERIMENT

    def is_experiment(self, key: str) -> bool:
        """Whether runs that differ in ``key`` are different experiments."""
        return self.role(key) is Role.EXPERIMENT

    def is_timing_only(self, key: str) -> bool:
        """Whether ``key`` splits groups of timing measurements only."""
        return self.role(key) is Role.SPEED

    def is_ignored(self, key: str) -> bool:
        """Whether ``key`` never keeps runs apart, not even for timing: a location or an option."""
        return self.role(key) in (Role.LOCATION, Role.OPTION)

    def experiment_settings(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The experiment keys of a nested config (as result.json's ``config``), flattened to dotted keys."""
        return {key: value for key, value in flatten(config).items() if self.is_experiment(key)}

    def same_experiment(self, a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
        """Whether two nested configs agree on every experiment key (resume: is a finished job this one?)."""
        return self.experiment_settings(a) == self.experiment_settings(b)

    def job_name_exclusions(self, keys: Iterable[str]) -> list[str]:
        """Of the dotted config ``keys``, those left out of job directory names: the locations and options,
        and the option groups (a tracker chosen on the command line must not rename the job)."""
        return [key for key in keys if self.is_ignored(key)] + list(self.option_groups)


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config with dotted keys (``{"optimizer": {"lr": 1e-3}}`` -> ``{"optimizer.lr": 1e-3}``); an
    empty mapping, a list or any other value is a leaf."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


#: The policy. Resume (bench/runner.py), job directory names (conf/config.yaml), the report's grouping and
#: parity (bench/report/groups.py, parity.py) and the search (bench/search.py) all follow it.
EXPERIMENT_KEYS = ExperimentKeys()
