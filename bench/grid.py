"""Per-optimizer grids in one sweep: each optimizer over its own learning rates x its own regularization.

Hydra's basic sweeper takes one cartesian product of values, but the four cells of Loshchilov & Hutter's
figure need four different grids: SGD's learning rates are ~10x Adam's, and an L2 factor, SGD's decoupled decay
and AdamW's decay live on different scales. :func:`grid_jobs` expands them, one product per optimizer, into
ordinary job overrides (``optimizer=sgdw optimizer.lr=0.01 optimizer.weight_decay=0.001 seed=0``), so job
directories are named by the values and resume works as for every sweep. The sweeper that uses it
(``hydra/sweeper=lr_wd_grid``, conf/experiment/lr_wd_grid.yaml) lives in hydra_plugins/flowerbench/, where
Hydra looks for sweepers.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence

from bench.errors import ConfigError

#: The key whose value picks the grid; a grid's keys are fields of this config group (``lr``, ``l2``).
OPTIMIZER_KEY = "optimizer"


def grid_jobs(
    grids: Mapping[str, Mapping[str, Sequence[str]]],
    swept: Mapping[str, Sequence[str]],
) -> list[list[str]]:
    """Every job's overrides: for each chosen optimizer, the product of its grid and the other swept keys.

    Args:
        grids: per optimizer name, the values of each of its fields the grid varies
            (``{"sgdw": {"lr": ["0.001", ...], "weight_decay": [...]}}``).
        swept: every other key of the sweep with its values (the sweeper's params, then the command line),
            as strings; ``optimizer`` among them chooses the optimizers (default: every one with a grid), and a
            grid key among them replaces that axis for every optimizer (``optimizer.lr=1e-3`` narrows the grid).

    Raises:
        ConfigError: an optimizer was chosen that has no grid.
    """
    names = list(swept.get(OPTIMIZER_KEY, grids))
    missing = [name for name in names if name not in grids]
    if missing:
        raise ConfigError(
            f"the lr x regularization grid has no grid for optimizer {', '.join(missing)} (it has "
            f"{', '.join(grids)}); add hydra.sweeper.grids.{missing[0]} (conf/hydra/sweeper/lr_wd_grid.yaml)"
        )
    others = {key: values for key, values in swept.items() if key != OPTIMIZER_KEY}
    jobs = []
    for name in names:
        grid = {f"{OPTIMIZER_KEY}.{field}": values for field, values in grids[name].items()}
        axes = {key: values for key, values in grid.items() if key not in others}
        axes.update(others)
        keys = list(axes)
        for values in itertools.product(*(axes[key] for key in keys)):
            settings = (f"{key}={value}" for key, value in zip(keys, values, strict=True))
            jobs.append([f"{OPTIMIZER_KEY}={name}", *settings])
    return jobs


def as_values(value: str | Iterable) -> list[str]:
    """A grid axis from its config: a list, or a comma-separated string as in Hydra's sweep syntax."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(v) for v in value]
