"""The built-in optimizers, one module each: everything flowerbench knows of one lives in its file.

A module here holds one schema (a dataclass subclassing :class:`~bench.optimizers.base.OptimizerConfig`,
registered with :func:`~bench.optimizers.base.builtin`): its hyperparameters and their checks, its cell in
Loshchilov & Hutter's 2 x 2, the search space ``experiment=fair_comparison`` tunes it over and the grid of
``experiment=lr_wd_grid``. Its values are in ``conf/optimizer/<name>.yaml``; each backend translates it with one
builder (``BUILDERS`` in ``backends/<backend>/optim.py``; tests/test_backend_conformance.py checks that every
built-in optimizer has one on every backend). Adding a built-in optimizer is: a module here, its YAML, one
builder per backend, its tests. The modules are found by listing this package, so no list names them.
"""

from __future__ import annotations

import importlib
import pkgutil

from bench.optimizers.base import BUILTIN_OPTIMIZERS, Cell, OptimizerConfig, builtin

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

#: Name -> schema of every built-in optimizer, in the order figures and tables list them (each one's ``rank``).
OPTIMIZER_SCHEMAS: dict[str, type[OptimizerConfig]] = dict(
    sorted(BUILTIN_OPTIMIZERS.items(), key=lambda item: item[1].rank)
)

__all__ = ["OPTIMIZER_SCHEMAS", "Cell", "OptimizerConfig", "builtin"]
