"""Optimizer and learning-rate-schedule configs translated to Keras (docs/design.md, "Parity").

Keras' ``weight_decay=`` argument is *decoupled* on every Keras optimizer, so it is used only for SGDW and
AdamW; the "+L2" optimizers (and a user's ``optimizer.l2``) get their penalty from kernel regularizers instead
(see model.py). A user's optimizer is the class its ``keras`` entry names, built with ``learning_rate``.
"""

from __future__ import annotations

from collections.abc import Callable

import hydra.utils
import keras

from bench.config import ScheduleConfig, UserOptimizerConfig
from bench.optimizers import OptimizerConfig
from bench.optimizers.adam_l2 import AdamL2Config
from bench.optimizers.adamw import AdamWConfig
from bench.optimizers.sgd_l2 import SGDL2Config
from bench.optimizers.sgdw import SGDWConfig


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


def _sgd_l2(optimizer: SGDL2Config, learning_rate) -> keras.optimizers.Optimizer:
    return keras.optimizers.SGD(learning_rate=learning_rate, momentum=optimizer.momentum)


def _sgdw(optimizer: SGDWConfig, learning_rate) -> keras.optimizers.Optimizer:
    # w <- w - lr * wd * w on every trainable variable, then the momentum step (keras base optimizer).
    return keras.optimizers.SGD(
        learning_rate=learning_rate, momentum=optimizer.momentum, weight_decay=optimizer.weight_decay
    )


def _adam_l2(optimizer: AdamL2Config, learning_rate) -> keras.optimizers.Optimizer:
    return keras.optimizers.Adam(
        learning_rate=learning_rate,
        beta_1=optimizer.beta_1,
        beta_2=optimizer.beta_2,
        epsilon=optimizer.epsilon,
    )


def _adamw(optimizer: AdamWConfig, learning_rate) -> keras.optimizers.Optimizer:
    # Keras' AdamW default decay is 0.004 (torch: 0.01): always pass it. Decays all trainable variables.
    return keras.optimizers.AdamW(
        learning_rate=learning_rate,
        weight_decay=optimizer.weight_decay,
        beta_1=optimizer.beta_1,
        beta_2=optimizer.beta_2,
        epsilon=optimizer.epsilon,
    )


#: Each built-in optimizer's builder (bench/optimizers/): its config and the learning rate (a number or a
#: schedule) in, a Keras optimizer out. Its L2 penalty, if any, is the model's kernel regularizer (model.py).
BUILDERS: dict[str, Callable[..., keras.optimizers.Optimizer]] = {
    "sgd_l2": _sgd_l2,
    "sgdw": _sgdw,
    "adam_l2": _adam_l2,
    "adamw": _adamw,
}


def build_user_optimizer_once(optimizer: UserOptimizerConfig) -> None:
    """Build a user's optimizer once, so that a value its class rejects fails when the config is validated,
    not in the middle of a sweep (bench/config.py)."""
    make_optimizer(optimizer, optimizer.lr)


def make_optimizer(optimizer: OptimizerConfig, learning_rate) -> keras.optimizers.Optimizer:
    """The one factory: config data in, Keras optimizer out."""
    if isinstance(optimizer, UserOptimizerConfig):
        return hydra.utils.instantiate(optimizer.keras, learning_rate=learning_rate, _convert_="all")
    return BUILDERS[optimizer.name](optimizer, learning_rate)
