"""A job's side of flowerbench's Optuna search (``hydra/sweeper=lr_wd_search_<optimizer>``): the study's storage,
and the pruning hook that reports each epoch's val_accuracy to the trial and stops the run when the study's
pruner says so.

The sweeper (hydra_plugins/flowerbench/optuna_sweeper.py) asks the study for a trial and hands it to the job
through the environment: ``hydra.job.env_set.FLOWERBENCH_OPTUNA_TRIAL`` holds the storage URL, the study's
name, the trial's id and the pruner's config. Hydra sets it around the job wherever the launcher runs it (in
the sweeper's process, a joblib worker, a submitit or Ray worker), so a job reports back whenever its process
can open the storage: a SQLite file the job's machine sees, an RDB server, or a journal file on a shared file
system. A job that cannot is never pruned and says so in one warning line; its curve still reaches the study
afterwards, from metrics.jsonl (the sweeper copies it).

Plain Python, cheap to import: optuna is imported only by a job that is a trial.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bench.results import EpochRecord

log = logging.getLogger(__name__)

TRIAL_ENV = "FLOWERBENCH_OPTUNA_TRIAL"
#: What is reported each epoch, and what the search maximizes at the end (bench/tuning.py's metric).
PRUNING_METRIC = "val_accuracy"
#: The study's file in the sweep folder when ``hydra.sweeper.storage`` is null.
DEFAULT_STORAGE_FILE = "optuna.db"
#: A storage URL of this scheme is Optuna's journal file (``journal:///shared/sweeps/search.log``): appends and
#: a lock file, made for NFS, where SQLite's locks are unreliable (a SLURM cluster's shared file system).
JOURNAL_SCHEME = "journal://"
#: Seconds a writer waits for SQLite's lock: jobs that run side by side report epochs to the same file.
SQLITE_TIMEOUT_S = 60

EpochHook = Callable[[EpochRecord], bool]


def default_storage(sweep_dir: Path) -> str:
    """The SQLite file of a sweep's study: in the sweep folder, so that a rerun of the sweep finds it."""
    return f"sqlite:///{(sweep_dir / DEFAULT_STORAGE_FILE).resolve()}"


def open_storage(url: str) -> Any:
    """Optuna's storage for ``url``: an RDB URL (``sqlite:///...``, ``postgresql://...``, ``mysql://...``) or
    ``journal:///path/to/file.log``."""
    import optuna

    if url.startswith(JOURNAL_SCHEME):
        from optuna.storages.journal import JournalFileBackend

        path = Path(url.removeprefix(JOURNAL_SCHEME))
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    engine = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}} if url.startswith("sqlite") else {}
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.RDBStorage(url, engine_kwargs=engine)


def trial_link(storage: str, study_name: str, trial_id: int, pruner: Mapping[str, Any] | None) -> str:
    """The value of :data:`TRIAL_ENV` for one trial (``pruner``: its ``_target_`` config, None for none): JSON in
    URL-safe base64, which a Hydra override carries whatever the storage URL holds (quotes, ``${``, ``=``)."""
    text = json.dumps({"storage": storage, "study": study_name, "trial_id": trial_id, "pruner": pruner})
    return base64.urlsafe_b64encode(text.encode()).decode()


def read_link(link: str) -> dict[str, Any]:
    """The fields of a :func:`trial_link`."""
    return json.loads(base64.urlsafe_b64decode(link.encode()))


class TrialReporter:
    """Reports each epoch's val_accuracy to one trial; says whether the study's pruner stops it.

    A failure to report (the storage gone, a lock held too long) costs one warning and switches pruning off for
    the rest of the run, as a tracker's does (bench/tracking.py): the run itself never depends on the study.
    """

    def __init__(self, storage: str, study: str, trial_id: int, pruner: Mapping[str, Any] | None) -> None:
        import optuna
        from hydra.utils import instantiate

        chosen = instantiate(dict(pruner)) if pruner else optuna.pruners.NopPruner()
        self.study = optuna.load_study(
            study_name=study,
            storage=open_storage(storage),
            pruner=chosen,
            sampler=optuna.samplers.RandomSampler(),  # never samples here; the default TPE costs an import
        )
        self.trial = optuna.trial.Trial(self.study, trial_id)
        self.active = True

    def __call__(self, record: EpochRecord) -> bool:
        value = getattr(record, PRUNING_METRIC)
        if not self.active or value is None or not math.isfinite(value):
            return False
        try:
            self.trial.report(float(value), record.epoch)
            return bool(self.trial.should_prune())
        except Exception as exc:  # the study is a helper of the run, never its master
            log.warning(
                "search trial: cannot report epoch %d to the study (%s); not pruned", record.epoch, exc
            )
            self.active = False
            return False


def epoch_hook() -> EpochHook | None:
    """The pruning hook of this job if it is a trial of flowerbench's Optuna search, else None."""
    link = os.environ.get(TRIAL_ENV)
    if not link:
        return None
    try:
        return TrialReporter(**read_link(link))
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        log.warning(
            "search trial: cannot open the study (%s); this run reports no epochs and is not pruned", reason
        )
        return None
