"""OmegaConf resolvers that fit a sweep's jobs to the machine's cores, and its job directories to the file system.

When a launcher runs several jobs at once on one machine (``hydra/launcher=parallel``, i.e. joblib), each job
must use only its share of the cores: two jobs with two threads each on two cores spend their time fighting
over them. The configs ask for the share by interpolation::

    conf/backend/keras.yaml           threads: ${threads_per_job:}

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


def launcher_jobs_at_once(launcher: Any) -> int:
    """How many jobs the launcher configured in ``launcher`` (``hydra.launcher``) runs at the same time: the
    batch size of a search that asks for as many trials as run at once (hydra/sweeper=lr_wd_search_*).

    joblib: ``n_jobs``; SLURM: ``array_parallelism``; local submitit: the cores // ``cpus_per_task``; Ray: the
    cores of this machine // ``ray.remote.num_cpus`` (a cluster has more: set ``hydra.sweeper.n_jobs``); the
    basic launcher: 1.
    """
    if launcher is None:
        return 1
    if "n_jobs" in launcher:
        return jobs_at_once(launcher.n_jobs)
    if launcher.get("array_parallelism"):
        return int(launcher.array_parallelism)
    per_job = launcher.get("cpus_per_task") or OmegaConf.select(launcher, "ray.remote.num_cpus")
    if per_job:
        return max(1, available_cores() // int(per_job))
    return 1


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
    - Ray (``ray.remote.num_cpus``): the CPUs Ray reserves for the job's task. Ray does not confine the task
      to them; the thread count does.
    - any other launcher (basic, one job at a time): None.
    """
    launcher = _launcher_config()
    if launcher is None:
        return None
    cpus_per_task = launcher.get("cpus_per_task") or OmegaConf.select(launcher, "ray.remote.num_cpus")
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
