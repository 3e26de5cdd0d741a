"""``hydra/sweeper=lr_wd_grid``: Hydra's basic sweeper, with one grid per optimizer (:mod:`bench.grid`).

Everything but the list of jobs is the basic sweeper's: the launcher configured runs the jobs (basic,
``parallel``, ``slurm``), in batches of ``max_batch_size``, and each job is an ordinary run of ``python -m bench``.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from typing import Any, Optional

from hydra.core.override_parser.types import Override

from bench.errors import ConfigError
from bench.grid import as_values, grid_jobs
from hydra_plugins.flowerbench.progress_sweeper import ProgressSweeper


class LrWdGridSweeper(ProgressSweeper):
    """Args (from conf/hydra/sweeper/lr_wd_grid.yaml):
    grids: per optimizer, the fields its grid varies and their values (a list or ``"a,b,c"``).
    params: other keys swept for every optimizer (e.g. ``seed: 0,1``); the command line adds or replaces keys.
    max_batch_size: jobs handed to the launcher at once (null: all).
    """

    def __init__(
        self,
        grids: dict[str, dict[str, Any]],
        max_batch_size: Optional[int] = None,
        params: Optional[dict[str, str]] = None,
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.grids = {name: {key: as_values(v) for key, v in grid.items()} for name, grid in grids.items()}

    def split_arguments(  # type: ignore[override]  (a staticmethod in BasicSweeper, called through self)
        self, overrides: list[Override], max_batch_size: Optional[int]
    ) -> list[list[list[str]]]:
        swept: OrderedDict[str, list[str]] = OrderedDict()
        for override in overrides:  # params first, then the command line: a later value of a key wins
            key = override.get_key_element()
            if override.is_sweep_override():
                swept[key] = list(override.sweep_string_iterator())
            else:
                swept[key] = [override.get_value_element_as_str()]
        try:
            jobs = grid_jobs(self.grids, swept)
        except ConfigError as exc:  # one line, as every input error of flowerbench
            print(f"flowerbench: error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        self.plan(len(jobs))
        size = max_batch_size or len(jobs)
        return [jobs[i : i + size] for i in range(0, len(jobs), size)]
