"""Optimizer and learning-rate-schedule configs translated to torch, matching Keras update for update.

Keras is the reference (docs/design.md, "Parity"). Besides choosing torch's arguments, the translation needs:

- L2: Keras adds ``l2 * sum(kernel**2)`` to the loss, so the gradient gains ``2 * l2 * kernel``; torch's
  coupled ``weight_decay`` adds ``weight_decay * w`` to the gradient, hence ``weight_decay = 2 * l2`` in a
  group of kernels only. (The trainer reports the penalty; it is never back-propagated a second time.)
- Adam's epsilon (:class:`KerasStep`, every step): Keras adds its epsilon-hat to ``sqrt(v)`` inside the
  bias-corrected step, torch adds eps to ``sqrt(v / (1 - beta_2**t))``; they agree when torch's eps is
  ``epsilon_hat / sqrt(1 - beta_2**t)``.
- SGD momentum under a schedule (:class:`KerasStep`, every step): Keras' velocity accumulates ``lr * g``,
  torch's buffer accumulates ``g`` and is multiplied by the *current* lr; rescaling the buffer by
  ``lr_{t-1} / lr_t`` keeps them equal.
- SGDW (:class:`KerasStep`, every step): torch has no SGD with decoupled decay; Keras' ``SGD(weight_decay=wd)``
  first decays every trainable variable, ``w <- w - lr_t * wd * w``, then takes the momentum step with the
  gradient of the weights before the decay. One ``_foreach_mul_`` (one fused kernel for all parameters) does
  the decay before torch's fused SGD step.

A user's optimizer (:class:`~bench.config.UserOptimizerConfig`) is the class its ``torch`` entry names, built
with ``params`` and ``lr`` and stepped under the same schedule, without these corrections: it is not claimed
to be at parity, and its L2 penalty goes through the loss (:attr:`ScheduledStep.adds_l2_gradient` is False).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import hydra.utils
import torch
from torch import nn

from bench.config import ScheduleConfig, UserOptimizerConfig
from bench.optimizers import OptimizerConfig
from bench.optimizers.adam_l2 import AdamL2Config
from bench.optimizers.adamw import AdamWConfig
from bench.optimizers.sgd_l2 import SGDL2Config
from bench.optimizers.sgdw import SGDWConfig

LrFactor = Callable[[int], float]


def lr_factor(schedule: ScheduleConfig, total_steps: int) -> LrFactor | None:
    """``lr_t / lr0`` as a function of the step t (0-based), as Keras' schedules define it; None: constant."""
    if schedule.name == "constant":
        return None
    if schedule.name == "inverse_time":  # Keras InverseTimeDecay(lr0, decay_steps=1, decay_rate)
        return lambda step: 1.0 / (1.0 + schedule.decay_rate * step)
    if schedule.name == "cosine":  # Keras CosineDecay(lr0, decay_steps=total_steps, alpha)
        alpha = schedule.alpha
        return lambda step: (
            (1 - alpha) * 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps)) + alpha
        )
    raise ValueError(f"unknown schedule {schedule.name!r}")  # unreachable: the config schema checks names


def class_path(optimizer: torch.optim.Optimizer) -> str:
    """``torch.optim.sgd.SGD``: what result.json's environment records as the class that stepped."""
    return f"{type(optimizer).__module__}.{type(optimizer).__qualname__}"


class ScheduledStep:
    """A torch optimizer and its per-batch learning-rate schedule (Keras' schedules, :func:`lr_factor`).

    Args:
        optimizer: the torch optimizer.
        factor: ``lr_t / lr0`` per step, or None for a constant lr.
    """

    #: Whether the optimizer itself adds the L2 penalty's gradient (as coupled weight_decay); when it does
    #: not, the trainer adds the penalty to the loss it back-propagates.
    adds_l2_gradient = False

    def __init__(self, optimizer: torch.optim.Optimizer, factor: LrFactor | None):
        self.optimizer = optimizer
        self.scheduler = None if factor is None else torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        self.steps = 0
        self._previous_lr = self.learning_rate()

    def learning_rate(self) -> float:
        """The lr the next step will use."""
        return self.optimizer.param_groups[0]["lr"]

    def step(self) -> None:
        """Apply the gradients already in ``.grad`` (one batch), then advance the schedule."""
        self._before_step()
        self.optimizer.step()
        self._previous_lr = self.learning_rate()
        if self.scheduler is not None:
            self.scheduler.step()
        self.steps += 1

    def _before_step(self) -> None:
        """Nothing for a user's optimizer: it steps as its authors wrote it."""

    def state_dict(self) -> dict[str, Any]:
        """What the next step depends on: the optimizer's state (momentum or moments, Adam's step, each group's
        lr), the schedule's position, the steps taken and the lr of the last one (the momentum rescaling)."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "steps": self.steps,
            "previous_lr": self._previous_lr,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.steps, self._previous_lr = state["steps"], state["previous_lr"]


class KerasStep(ScheduledStep):
    """A built-in optimizer, stepped so that each update equals Keras' update.

    Args:
        optimizer: the torch optimizer, built by :func:`make_optimizer`.
        factor: ``lr_t / lr0`` per step, or None for a constant lr.
        epsilon_hat: Keras' Adam epsilon, or None for SGD.
        beta_2: Adam's second-moment decay (ignored for SGD).
        decoupled_decay: SGDW's weight decay, applied to every parameter before each step; 0 for none.
    """

    adds_l2_gradient = True  # weight_decay = 2 * l2 on the kernels' group (see _l2_groups)

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        factor: LrFactor | None,
        epsilon_hat: float | None = None,
        beta_2: float = 0.0,
        decoupled_decay: float = 0.0,
    ):
        super().__init__(optimizer, factor)
        self.epsilon_hat, self.beta_2 = epsilon_hat, beta_2
        self.decoupled_decay = decoupled_decay
        self._all_params = [p for group in optimizer.param_groups for p in group["params"]]

    def _before_step(self) -> None:
        if self.epsilon_hat is not None:
            self._set_adam_epsilon()
        elif self.scheduler is not None:
            self._rescale_momentum()
        if self.decoupled_decay:
            self._decay_weights()

    def _set_adam_epsilon(self) -> None:
        """torch's eps for the step about to be taken (t = steps + 1), equal to Keras' epsilon-hat."""
        eps = self.epsilon_hat / math.sqrt(1.0 - self.beta_2 ** (self.steps + 1))
        for group in self.optimizer.param_groups:
            group["eps"] = eps

    def _rescale_momentum(self) -> None:
        """Keep ``-lr * buffer`` equal to Keras' velocity although torch is about to use a new lr.

        After step t-1, Keras' velocity is ``-lr_{t-1} * buffer``; step t multiplies the buffer by lr_t.
        """
        lr = self.learning_rate()
        if lr == self._previous_lr or lr == 0.0:  # nothing to do, or not representable (a cosine's very end)
            return
        buffers = [
            state["momentum_buffer"] for state in self.optimizer.state.values() if "momentum_buffer" in state
        ]
        for buffer in buffers:  # none before the first step
            buffer.mul_(self._previous_lr / lr)

    @torch.no_grad()
    def _decay_weights(self) -> None:
        """Keras' ``w <- w - lr_t * wd * w`` on every parameter, with this step's lr, before the SGD step."""
        torch._foreach_mul_(self._all_params, 1.0 - self.learning_rate() * self.decoupled_decay)


def _l2_groups(l2: float, kernels: list[nn.Parameter], biases: list[nn.Parameter]) -> list[dict[str, Any]]:
    """Keras' L2 on kernels only, as torch's coupled weight decay ``2 * l2`` (the module docstring)."""
    return [{"params": kernels, "weight_decay": 2 * l2}, {"params": biases, "weight_decay": 0.0}]


# fused=True: one kernel per step for all parameters (CPU and CUDA); the dense kernel alone has 16.6 M weights
# at 180 px. weight_decay is always set per group, so torch's defaults (e.g. AdamW's 0.01) never apply.


def _sgd_l2(optimizer: SGDL2Config, factor: LrFactor | None, kernels, biases) -> KerasStep:
    groups = _l2_groups(optimizer.l2, kernels, biases)
    sgd = torch.optim.SGD(groups, lr=optimizer.lr, momentum=optimizer.momentum, fused=True)
    return KerasStep(sgd, factor)


def _sgdw(optimizer: SGDWConfig, factor: LrFactor | None, kernels, biases) -> KerasStep:
    # torch has no SGDW: KerasStep decays every parameter before torch's plain SGD step (weight_decay 0).
    groups = [{"params": kernels + biases, "weight_decay": 0.0}]
    sgd = torch.optim.SGD(groups, lr=optimizer.lr, momentum=optimizer.momentum, fused=True)
    return KerasStep(sgd, factor, decoupled_decay=optimizer.weight_decay)


def _adam_l2(optimizer: AdamL2Config, factor: LrFactor | None, kernels, biases) -> KerasStep:
    groups = _l2_groups(optimizer.l2, kernels, biases)
    adam = torch.optim.Adam(
        groups, lr=optimizer.lr, betas=(optimizer.beta_1, optimizer.beta_2), eps=optimizer.epsilon, fused=True
    )
    return KerasStep(adam, factor, epsilon_hat=optimizer.epsilon, beta_2=optimizer.beta_2)


def _adamw(optimizer: AdamWConfig, factor: LrFactor | None, kernels, biases) -> KerasStep:
    # Decays every parameter, biases and BatchNorm's gamma and beta too, as Keras' AdamW does (BatchNorm's moving
    # statistics are buffers, not parameters: never decayed).
    groups = [{"params": kernels + biases, "weight_decay": optimizer.weight_decay}]
    adamw = torch.optim.AdamW(
        groups, lr=optimizer.lr, betas=(optimizer.beta_1, optimizer.beta_2), eps=optimizer.epsilon, fused=True
    )
    return KerasStep(adamw, factor, epsilon_hat=optimizer.epsilon, beta_2=optimizer.beta_2)


#: Each built-in optimizer's builder (bench/optimizers/): its config, the lr factor of the schedule, the
#: kernels (which carry the L2 penalty) and the other parameters in, a stepper with Keras' semantics out.
BUILDERS: dict[str, Callable[..., KerasStep]] = {
    "sgd_l2": _sgd_l2,
    "sgdw": _sgdw,
    "adam_l2": _adam_l2,
    "adamw": _adamw,
}


def _user_optimizer(optimizer: UserOptimizerConfig, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    return hydra.utils.instantiate(optimizer.torch, params=params, lr=optimizer.lr, _convert_="all")


def build_user_optimizer_once(optimizer: UserOptimizerConfig) -> None:
    """Build a user's optimizer on a throwaway parameter, so that a value its class rejects fails when the
    config is validated, not in the middle of a sweep (bench/config.py)."""
    _user_optimizer(optimizer, [nn.Parameter(torch.zeros(1))])


def make_optimizer(
    optimizer: OptimizerConfig,
    schedule: ScheduleConfig,
    total_steps: int,
    kernels: list[nn.Parameter],
    biases: list[nn.Parameter],
) -> ScheduledStep:
    """The one factory: optimizer and schedule configs in, a stepper with Keras' semantics out (a user's
    optimizer: its own semantics, under the same schedule).

    Args:
        total_steps: batches in the whole run, over which a cosine schedule decays.
        kernels: conv and dense kernels (they carry the L2 penalty).
        biases: the other trainable parameters (biases; BatchNorm gamma and beta).
    """
    factor = lr_factor(schedule, total_steps)
    if isinstance(optimizer, UserOptimizerConfig):
        return ScheduledStep(_user_optimizer(optimizer, kernels + biases), factor)
    return BUILDERS[optimizer.name](optimizer, factor, kernels, biases)
