"""OmegaConf resolvers that fit a sweep's jobs to the machine's cores, and its job directories to the file system.

When a launcher runs several jobs at once on one machine (``hydra/launcher=parallel``, i.e. joblib), each job
must use only its share of the cores: two jobs with two threads each on two cores spend their time fighting
over them. The configs ask for the share by interpolation::

    conf/backend/keras.yaml           threads: ${threads_per_job:}
    conf/experiment/lr_wd_search_*    n_jobs: ${jobs_at_once:${oc.select:hydra.launcher.n_jobs,null}}

A job directory is named by the job's overrides (``subdir: ${job_dir_name:${hydra.job.override_dirname}}``);
a name longer than a file system allows (255 bytes) is cut and completed by a hash of the whole, so that it
stays unique and the same on every rerun.

They are registered when :mod:`bench.config` is imported, which every process that validates a config does
(the launching process and each joblib or submitit worker).
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf


def available_cores() -> int:
    """The cores this process may run on (a SLURM allocation or ``taskset`` restricts them)."""
    return len(os.sched_getaffinity(0))


def jobs_at_once(n_jobs: int | None) -> int:
    """How many jobs a launcher runs at the same time, given joblib's ``n_jobs`` (-1 = one per core)."""
    if n_jobs is None or n_jobs == 0:
        return 1
    if n_jobs > 0:
        return n_jobs
    return max(1, available_cores() + 1 + n_jobs)  # joblib's rule: -1 = all cores, -2 = all but one...


def _launcher_config() -> Any:
    """``hydra.launcher`` of the running job, or None outside a Hydra app (tests, notebooks)."""
    if not HydraConfig.initialized():
        return None
    return OmegaConf.select(HydraConfig.get(), "launcher")


def threads_per_job() -> int | None:
    """Intra-op threads for one job: its share of the cores, or None (= all cores) when it runs alone.

    - joblib (``n_jobs``): the cores divided evenly among the jobs that run at once, at least 1.
    - submitit (``cpus_per_task``): the cores reserved for the job. On SLURM the allocation already limits
      the job to them; locally it keeps concurrent jobs off each other's cores.
    - any other launcher (basic, one job at a time): None.
    """
    launcher = _launcher_config()
    if launcher is None:
        return None
    cpus_per_task = launcher.get("cpus_per_task")
    if cpus_per_task:
        return int(cpus_per_task)
    if "n_jobs" in launcher:
        return max(1, available_cores() // jobs_at_once(launcher.n_jobs))
    return None


#: The longest file name ext4, XFS, APFS and NTFS take, in bytes.
MAX_NAME_BYTES = 255


def job_dir_name(override_dirname: str) -> str:
    """``override_dirname`` itself when it fits in a file name; else as much of it as fits, whole overrides
    only, then ``+`` and 16 hex digits of its SHA-256: still unique, and the same on every rerun (resume)."""
    if len(override_dirname.encode("utf-8")) <= MAX_NAME_BYTES:
        return override_dirname
    digest = hashlib.sha256(override_dirname.encode("utf-8")).hexdigest()[:16]
    room = MAX_NAME_BYTES - len(digest) - 1
    kept = ""
    for part in override_dirname.split(","):
        candidate = f"{kept},{part}" if kept else part
        if len(candidate.encode("utf-8")) > room:
            break
        kept = candidate
    return f"{kept}+{digest}"


def register_resolvers() -> None:
    """Register the resolvers once per process (a second registration would raise)."""
    resolvers = {
        "threads_per_job": threads_per_job,
        "jobs_at_once": jobs_at_once,
        "job_dir_name": job_dir_name,
    }
    for name, function in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function)
