"""What is part of the experiment: each config key's role, declared once where the key is defined.

A config key (dotted, as ``optimizer.lr``) has one of four roles:

- **experiment**: changes what a run computes (``optimizer.lr``, ``dataset.image_size``, ``seed``...). Runs
  are the same experiment only when these agree: resume skips a finished job only then, the report never
  averages across them, parity pairs runs by them, a search tells its settings apart by them.
- **location**: where the same data lives (``dataset.path``, ``dataset.data_dir``, ``dataset.cache_dir``).
  Moving the photos or the cache changes no result.
- **speed**: changes how fast a run goes, not its results (``backend.threads``): the report groups its timing
  by it, nothing else does.
- **option**: not part of any run (``force``, ``report.*``, ``protocol.*``, ``logger.*``): how to rerun,
  report, track or run a protocol of runs.

A schema declares a key's role on its dataclass field, ``path: Optional[str] = declared(Role.LOCATION)``; a
section field declares it for every key below it (``report: ReportConfig = declared(Role.OPTION, ...)``).
Every other key is part of the experiment. :meth:`ExperimentKeys.from_schema` reads the declarations off the
composed config's schema (``bench.config.EXPERIMENT_KEYS``), and everything that needs the roles derives them
from there: resume (bench/runner.py), job directory names (conf/config.yaml's
``hydra.job.config.override_dirname.exclude_keys`` is ``${job_name_exclusions:}``), the report's grouping and
parity, the search. Locations and options are left out of job directory names: paths would put slashes in
names, and ``force=true`` must land in the job directory it replaces.

Plain Python, cheap to import, below every schema.
"""

from __future__ import annotations

import dataclasses
import enum
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ROLE = "role"  # the dataclass field metadata key that holds a declared role
#: The field metadata key of a section's keys added after runs were recorded: key below the field -> the value
#: that a recorded config without the key ran with (``model.name``: every model was the CNN before).
ABSENT_MEANS = "absent_means"


class Role(enum.Enum):
    EXPERIMENT = "experiment"
    LOCATION = "location"
    SPEED = "speed"
    OPTION = "option"


def declared(role: Role, **field_arguments: Any) -> Any:
    """A dataclass field whose key (and every key below it) has ``role``; ``field_arguments`` as
    :func:`dataclasses.field` takes them (``default=``, ``default_factory=``)."""
    return dataclasses.field(metadata={ROLE: role}, **field_arguments)


def _section_schema(annotation: Any) -> type | None:
    """The dataclass a field's type names (``Optional[X]`` included), or None for a leaf or an ``Any`` group."""
    candidates = typing.get_args(annotation) or (annotation,)
    schemas = [c for c in candidates if dataclasses.is_dataclass(c)]
    return schemas[0] if schemas else None


def declared_roles(schema: type, prefix: str = "") -> dict[str, Role]:
    """Every key of ``schema`` (a dataclass, nested sections included) whose role was declared: dotted key ->
    role. A section's declaration covers its keys, so they are not listed again."""
    roles: dict[str, Role] = {}
    hints = typing.get_type_hints(schema)
    for item in dataclasses.fields(schema):
        key = f"{prefix}{item.name}"
        if ROLE in item.metadata:
            roles[key] = item.metadata[ROLE]
            continue
        section = _section_schema(hints[item.name])
        if section is not None:
            roles |= declared_roles(section, f"{key}.")
    return roles


def absent_meanings(schema: type, prefix: str = "") -> dict[str, Any]:
    """Every dotted key of ``schema`` declared with the value its absence from a recorded config means."""
    meanings: dict[str, Any] = {}
    hints = typing.get_type_hints(schema)
    for item in dataclasses.fields(schema):
        key = f"{prefix}{item.name}"
        meanings |= {f"{key}.{below}": value for below, value in item.metadata.get(ABSENT_MEANS, {}).items()}
        section = _section_schema(hints[item.name])
        if section is not None:
            meanings |= absent_meanings(section, f"{key}.")
    return meanings


def schema_keys(schema: type, prefix: str = "") -> list[str]:
    """Every dotted key of ``schema``: each field, and below a section field each of its keys."""
    keys: list[str] = []
    hints = typing.get_type_hints(schema)
    for item in dataclasses.fields(schema):
        key = f"{prefix}{item.name}"
        keys.append(key)
        section = _section_schema(hints[item.name])
        if section is not None:
            keys += schema_keys(section, f"{key}.")
    return keys


@dataclass(frozen=True)
class ExperimentKeys:
    """Classifies dotted config keys by their declared roles; a key below none of them is part of the
    experiment.

    Attributes:
        declared: dotted key (a leaf or a whole section) -> its role.
    """

    declared: Mapping[str, Role]
    all_keys: tuple[str, ...] = ()  # every key of the schema, sections and leaves
    absent_means: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # see ABSENT_MEANS

    @classmethod
    def from_schema(cls, schema: type) -> ExperimentKeys:
        """The roles declared on ``schema``'s fields and, recursively, its sections' (:func:`declared`)."""
        return cls(declared_roles(schema), tuple(schema_keys(schema)), absent_meanings(schema))

    def role(self, key: str) -> Role:
        """The role of a dotted config key (an override's key may carry Hydra's ``+``, ``++`` or ``~``): that
        of the key itself or of the nearest section above it that declares one."""
        parts = key.lstrip("+~").split(".")
        for end in range(len(parts), 0, -1):
            role = self.declared.get(".".join(parts[:end]))
            if role is not None:
                return role
        return Role.EXPERIMENT

    def keys_with(self, role: Role) -> list[str]:
        """The keys and sections declared with ``role``."""
        return [key for key, declared_role in self.declared.items() if declared_role is role]

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

    def same_experiment(self, recorded: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
        """Whether two nested configs agree on every experiment key (resume: is a finished job this one?). A
        key that ``recorded`` predates counts as the value its absence means (:data:`ABSENT_MEANS`)."""
        return self._completed(recorded) == self._completed(current)

    def _completed(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The experiment settings of ``config``, a key it lacks (added later, or a whole section added later:
        ``workload``) counted as the value its absence means."""
        return self.absent_means | self.experiment_settings(config)

    def job_name_exclusions(self) -> list[str]:
        """The keys left out of job directory names: every key at or below a location or an option, sections
        by their own name too (``logger=mlflow`` chooses a config group of options: a tracker chosen on the
        command line must not rename the job)."""
        return [key for key in self.all_keys if self.is_ignored(key)]


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
