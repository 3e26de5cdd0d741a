"""Optimizer and learning-rate-schedule configs translated to Keras (docs/design.md, "Parity").

Keras' ``weight_decay=`` argument is *decoupled* on every Keras optimizer, so it is used only for AdamW; the
"+L2" optimizers get their penalty from kernel regularizers instead (see model.py).
"""

from __future__ import annotations

import keras

from bench.config import (
    AdamL2Config,
    AdamWConfig,
    OptimizerConfig,
    ScheduleConfig,
    SGDL2Config,
    kernel_l2,  # noqa: F401 (kept importable here: this module's name for it predates bench.config's)
)


def make_schedule(
    schedule: ScheduleConfig, lr: float, total_steps: int
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """A per-batch schedule: the lr of step t (0-based) is schedule(t)."""
    if schedule.name == "constant":
        return lr
    if schedule.name == "inverse_time":
        # Keras 3 ignores the legacy `decay=` argument; this is what it used to mean.
        return keras.optimizers.schedules.InverseTimeDecay(lr, decay_steps=1, decay_rate=schedule.decay_rate)
    if schedule.name == "cosine":
        return keras.optimizers.schedules.CosineDecay(lr, decay_steps=total_steps, alpha=schedule.alpha)
    raise ValueError(f"unknown schedule {schedule.name!r}")  # unreachable: the config schema checks names


def make_optimizer(optimizer: OptimizerConfig, learning_rate) -> keras.optimizers.Optimizer:
    """The one factory: config data in, Keras optimizer out."""
    if isinstance(optimizer, SGDL2Config):
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=optimizer.momentum)
    if isinstance(optimizer, AdamWConfig):
        # Keras' AdamW default decay is 0.004 (torch: 0.01): always pass it. Decays all trainable variables.
        return keras.optimizers.AdamW(
            learning_rate=learning_rate,
            weight_decay=optimizer.weight_decay,
            beta_1=optimizer.beta_1,
            beta_2=optimizer.beta_2,
            epsilon=optimizer.epsilon,
        )
    if isinstance(optimizer, AdamL2Config):
        return keras.optimizers.Adam(
            learning_rate=learning_rate,
            beta_1=optimizer.beta_1,
            beta_2=optimizer.beta_2,
            epsilon=optimizer.epsilon,
        )
    raise ValueError(f"unknown optimizer {optimizer.name!r}")  # unreachable: the config schema checks names
