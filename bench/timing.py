"""How flowerbench times training: one definition of "images per second" for runs, throughput and benchmarks.

Two numbers come out of the same step times, and every tool names them the same way:

- ``images_per_s``: the median over steps of ``images_in_step / step_time``. Robust to the odd slow step (a
  neighbour's process, a page-fault burst), so it is the number to compare between backends or commits.
- ``aggregate_images_per_s``: all images / all time, what an epoch's ``train_images_per_s`` in metrics.jsonl
  is (slow steps count fully there, as they do in a user's wall time).

Framework-free on purpose: a step is timed by the host clock between the ``on_step`` callbacks a
:class:`~bench.backend.Trainer` makes, which on CPU return once the step has been computed.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any


class Stopwatch:
    """Wall time of a ``with`` block: ``with Stopwatch() as watch: ...`` then ``watch.seconds``."""

    def __enter__(self) -> Stopwatch:
        self.seconds = 0.0
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.seconds = time.perf_counter() - self._started


class StepTimer:
    """An ``on_step(n_images)`` callback that records the time since the previous step, or since it was made
    or (re)started: ``trainer.train_epoch(batches, on_step=StepTimer())``.

    Args:
        clock: seconds from an arbitrary origin; tests pass a fake one.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.step_times: list[float] = []
        self.images: list[int] = []
        self.start()

    def start(self) -> StepTimer:
        self._last = self.clock()
        return self

    def __call__(self, n_images: int) -> None:
        now = self.clock()
        self.step_times.append(now - self._last)
        self.images.append(n_images)
        self._last = now

    def stats(self) -> ThroughputStats:
        return ThroughputStats.from_step_times(self.step_times, self.images)


def time_calls(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``fn``, after ``warmup`` untimed calls (first-call costs:
    kernel selection, page faults, lazy initialisation). ``fn`` must return only once its work is done."""
    for _ in range(warmup):
        fn()
    seconds = []
    for _ in range(repeats):
        with Stopwatch() as watch:
            fn()
        seconds.append(watch.seconds)
    return seconds


def images_per_second(images: int, seconds: float) -> float:
    """``images / seconds``; the aggregate rate (metrics.jsonl's ``train_images_per_s``)."""
    return images / seconds if seconds > 0 else float("nan")


@dataclass(frozen=True)
class ThroughputStats:
    """Per-step throughput summary; every rate is in images per second."""

    images_per_s: float  # median of the per-step rates
    iqr: float  # interquartile range of the per-step rates (q3 - q1)
    min: float
    max: float
    n_steps: int
    aggregate_images_per_s: float  # all images / all time
    median_step_s: float

    @classmethod
    def from_step_times(
        cls, step_times: Sequence[float], images_per_step: int | Sequence[int]
    ) -> ThroughputStats:
        """Summarise step times; ``images_per_step`` is one batch size for all steps, or one per step."""
        if not step_times:
            raise ValueError("no step times to summarise")
        images = (
            [images_per_step] * len(step_times) if isinstance(images_per_step, int) else list(images_per_step)
        )
        if len(images) != len(step_times):
            raise ValueError(f"{len(step_times)} step times but {len(images)} image counts")
        rates = [n / t for n, t in zip(images, step_times, strict=True)]
        # "inclusive" quartiles interpolate between the observed rates (numpy's default); with 2 steps the
        # IQR is half their spread, and with 1 step there is no spread at all.
        q1, _, q3 = statistics.quantiles(rates, n=4, method="inclusive") if len(rates) > 1 else rates * 3
        return cls(
            images_per_s=statistics.median(rates),
            iqr=q3 - q1,
            min=min(rates),
            max=max(rates),
            n_steps=len(rates),
            aggregate_images_per_s=images_per_second(sum(images), sum(step_times)),
            median_step_s=statistics.median(step_times),
        )

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)
