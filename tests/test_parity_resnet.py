"""A seed means the same experiment on both backends, on the BatchNorm ResNet too (docs/design.md, "Parity").

Same initial weights (BatchNorm gamma 1, beta 0, moving mean 0, moving variance 1), same batches: Keras and torch
must produce the same loss at every step, the same weights after every step (the BatchNorm moving statistics
included), the same evaluation-mode logits and val_loss, for sgd_l2, sgdw, adam_l2 and adamw, up to float32
round-off. The network is ``model=resnet`` shrunk (one basic block per stage, 8/16/32 channels: the stem, three
blocks, the two projection shortcuts, 8 BatchNorms), at 16 px, batch 8, 4 steps: every semantic it exercises is
the full model's.

Measured on torch 2.13 / TF 2.21 (Intel Xeon with AVX-512, 2 threads each), largest over the 4 steps:

| optimizer | loss (rel.) | weights | moving statistics | eval logits | val_loss (rel.) |
| --- | --- | --- | --- | --- | --- |
| sgd_l2 | 2.1e-7 | 1.2e-7 | <= 5.6e-7 | 3.6e-7 | 4.3e-8 |
| sgdw | 3.4e-7 | 1.8e-7 | <= 5.6e-7 | 3.0e-7 | 8.2e-8 |
| adam_l2 | 2.0e-6 | 6.1e-5 | 5.6e-7 | 1.7e-6 | 2.5e-7 |
| adamw | 8.7e-7 | 8.1e-6 | <= 5.6e-7 | 3.0e-6 | 2.4e-7 |

The round-off floor, torch against itself at 1 and 2 threads: sgd_l2 2.5e-7 / 1.2e-7 / 7.2e-7 (loss, weights,
logits), adam_l2's weights 2.9e-5, adamw's 6.9e-6. Adam's 6e-5 is one element of one kernel at its first step,
where Adam's update is ``lr * g / (|g| + eps)`` and that element's gradient is within a few round-offs of zero
(it moves 2.9e-5 between thread counts of the same backend too). So the tolerances: losses 2e-5 relative (the
CNN's), trainable weights 2e-4 absolute (3x above that Adam element), moving statistics 5e-6 absolute (9x above
their floor), evaluation-mode logits 5e-5.

A BatchNorm network is more sensitive to round-off than the CNN: pre-activations are normalised to mean 0,
right at the ReLU kink, so an input within round-off of 0 takes the other branch more often. With three blocks
per stage at 24 px (batch 12) a flip happens in the first step: torch differs from *itself* at another thread
count by 3e-4 in the stem kernel after it, and by 4e-2 in the loss after the fourth (lr 0.05). That is why the
test network is small, and why the real-photo parity sweep (README) is read against the same backend at another
thread count.

Each BatchNorm semantic that backends/torch/model.py's KerasBatchNorm2d gets right fails the tolerances when it
is flipped in the torch backend (test_each_batchnorm_mismatch_is_detected; sgd_l2, largest difference):
- torch's momentum convention (``moving * (1 - m) + batch * m`` with Keras' m = 0.99): moving statistics 1.2
  (240,000x their tolerance), eval logits 15;
- torch's default epsilon 1e-5 instead of Keras' 1e-3: loss 4.1e-3 (200x), weights 1.0e-2 (50x);
- the unbiased batch variance in the moving variance (stock ``nn.BatchNorm2d(eps=1e-3, momentum=0.01)``):
  moving statistics 2.6e-4 (52x), eval logits 1.8e-4 (3.6x), val_loss 8e-6 (under the loss tolerance: only the
  moving statistics catch it, which is why they are compared);
- evaluation with the batch statistics (a model left in training mode): eval logits 4.3, val_loss 0.18;
- training with the moving statistics (a model left in evaluation mode): loss 6.9e-2, weights 4.7e-2.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from backends.torch import model as torch_model
from bench.architecture import ResNetSpec, initial_weights, model_spec
from bench.backend import build_trainer
from bench.config import RunConfig
from tests.conftest import compose_run

pytest.importorskip("tensorflow")

SIZE, BATCH, STEPS, TRAIN, VAL = 16, 8, 4, 32, 16
LOSS_RTOL = 2e-5  # per-step training loss, val_loss
WEIGHT_ATOL = 2e-4  # trainable weights after every step, absolute (Adam's first step: see the docstring)
MOVING_ATOL = 5e-6  # BatchNorm moving mean and variance after every step, absolute (|moving| ~ 0.01-1)
LOGIT_ATOL = 5e-5  # evaluation-mode logits after training
SEED = 3
MODEL = ["model=resnet", "model.blocks_per_stage=1", "model.stage_filters=[8,16,32]"]
KERAS_ADAM = ["optimizer.beta_1=0.9", "optimizer.beta_2=0.999", "optimizer.epsilon=1e-7"]
# Large enough that 4 steps move every variable visibly, so that a wrong semantic shows: AdamW's and SGDW's decay
# is strong enough that sparing BatchNorm's gamma and beta would show.
OPTIMIZERS = {
    "sgd_l2": ["optimizer.lr=0.02", "optimizer.momentum=0.9", "optimizer.l2=1e-2"],
    "sgdw": ["optimizer.lr=0.02", "optimizer.momentum=0.9", "optimizer.weight_decay=0.5"],
    "adam_l2": ["optimizer.lr=1e-3", "optimizer.l2=1e-2", *KERAS_ADAM],
    "adamw": ["optimizer.lr=1e-3", "optimizer.weight_decay=1.0", *KERAS_ADAM],
}


@functools.cache
def make_run(backend: str, optimizer: str, threads: int = 2) -> RunConfig:
    overrides = [
        f"backend={backend}", f"backend.threads={threads}", f"optimizer={optimizer}", *OPTIMIZERS[optimizer],
        f"dataset.image_size={SIZE}", *MODEL, f"train.batch_size={BATCH}", "train.epochs=1", f"seed={SEED}",
    ]  # fmt: skip
    return compose_run(*overrides)


def spec_of(run: RunConfig) -> ResNetSpec:
    spec = model_spec(run.model, image_size=SIZE, num_classes=5)
    assert isinstance(spec, ResNetSpec)
    return spec


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    """Images whose mean colour depends on the class (learnable): 32 to train, 16 to validate."""
    rng = np.random.default_rng(7)
    n = TRAIN + VAL
    labels = rng.integers(0, 5, n)
    base = np.stack([labels * 50, 255 - labels * 40, np.full(n, 120)], -1)[:, None, None, :]
    images = np.clip(base + rng.normal(0, 40, (n, SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
    return {
        "images": images[:TRAIN],
        "labels": labels[:TRAIN],
        "val_images": images[TRAIN:],
        "val_labels": labels[TRAIN:],
    }


def train(backend: str, optimizer: str, data: dict, threads: int = 2) -> dict:
    """STEPS single steps (a shuffled order, as the runner makes it), the loss and every weight after each,
    then the evaluation-mode logits and val_loss."""
    run = make_run(backend, optimizer, threads)
    trainer = build_trainer(run, spec_of(run), STEPS)  # the seed's initial weights
    order = np.random.default_rng([run.seed, 1]).permutation(TRAIN)
    losses, weights = [], []
    for step in range(STEPS):
        batch = order[step * BATCH : (step + 1) * BATCH]
        losses.append(trainer.train_epoch([(data["images"][batch], data["labels"][batch])]).loss)
        weights.append(trainer.get_weights())
    val = trainer.evaluate([(data["val_images"], data["val_labels"])])
    return {
        "losses": losses,
        "weights": weights,
        "val_loss": val.loss,
        "logits": trainer.predict_logits(data["val_images"]),
    }


def _largest(a: dict, b: dict, moving: bool) -> float:
    """The largest absolute difference over the steps of the trainable weights, or of the moving statistics."""
    return max(
        float(np.abs(wa[name] - wb[name]).max())
        for wa, wb in zip(a["weights"], b["weights"], strict=True)
        for name in wa
        if ("/moving_" in name) == moving
    )


def differences(a: dict, b: dict) -> dict[str, float]:
    """The largest differences between two runs: losses (relative), weights and moving statistics (absolute,
    every step), evaluation-mode logits (absolute) and val_loss (relative)."""
    return {
        "loss": max(abs(x - y) / abs(x) for x, y in zip(a["losses"], b["losses"], strict=True)),
        "weights": _largest(a, b, moving=False),
        "moving": _largest(a, b, moving=True),
        "logits": float(np.abs(a["logits"] - b["logits"]).max()),
        "val_loss": abs(a["val_loss"] - b["val_loss"]) / abs(a["val_loss"]),
    }


TOLERANCE = {
    "loss": LOSS_RTOL,
    "weights": WEIGHT_ATOL,
    "moving": MOVING_ATOL,
    "logits": LOGIT_ATOL,
    "val_loss": LOSS_RTOL,
}


def within_tolerance(diff: dict[str, float]) -> bool:
    return all(diff[key] <= TOLERANCE[key] for key in TOLERANCE)


@pytest.fixture(scope="module")
def runs(data):
    """Each (backend, optimizer, threads) trained once per test session, shared by the tests below."""
    cache: dict[tuple, dict] = {}

    def get(backend: str, optimizer: str, threads: int = 2) -> dict:
        key = (backend, optimizer, threads)
        if key not in cache:
            cache[key] = train(backend, optimizer, data, threads)
        return cache[key]

    return get


def test_initial_weights_give_the_same_logits_in_both_modes(data):
    """Evaluation mode (moving statistics 0 and 1 at the start) and training mode (batch statistics)."""
    run = make_run("torch", "adamw")
    spec = spec_of(run)
    weights = initial_weights(spec, run.seed)
    assert {name.split("/")[1] for name in spec.state_names()} == {"moving_mean", "moving_variance"}
    trainers = {b: build_trainer(make_run(b, "adamw"), spec, 3, weights) for b in ("keras", "torch")}
    logits = {b: trainer.predict_logits(data["images"]) for b, trainer in trainers.items()}
    np.testing.assert_allclose(logits["torch"], logits["keras"], rtol=0, atol=1e-6)
    assert np.abs(logits["keras"]).max() > 0.05  # not trivially equal
    assert trainers["torch"].get_weights().keys() == trainers["keras"].get_weights().keys() == weights.keys()


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_same_seed_same_steps_weights_and_moving_statistics_on_both_backends(optimizer, runs):
    keras_run, torch_run = runs("keras", optimizer), runs("torch", optimizer)
    for step, (keras_loss, torch_loss) in enumerate(
        zip(keras_run["losses"], torch_run["losses"], strict=True)
    ):
        assert torch_loss == pytest.approx(keras_loss, rel=LOSS_RTOL), f"loss at step {step}"
    spec = spec_of(make_run("keras", optimizer))
    initial = initial_weights(spec, SEED)
    for step, (keras_weights, torch_weights) in enumerate(
        zip(keras_run["weights"], torch_run["weights"], strict=True)
    ):
        for name, keras_value in keras_weights.items():
            atol = MOVING_ATOL if "/moving_" in name else WEIGHT_ATOL
            np.testing.assert_allclose(
                torch_weights[name], keras_value, rtol=0, atol=atol, err_msg=f"{name} after step {step}"
            )
    final = keras_run["weights"][-1]
    for name in final:  # every variable moved, the moving statistics and BatchNorm's gamma and beta included
        assert np.abs(final[name] - initial[name]).max() > 1e-3, f"{name} barely moved: a weak test"
    assert torch_run["val_loss"] == pytest.approx(keras_run["val_loss"], rel=LOSS_RTOL)
    np.testing.assert_allclose(torch_run["logits"], keras_run["logits"], rtol=0, atol=LOGIT_ATOL)
    assert np.abs(keras_run["logits"]).max() > 0.05


@pytest.mark.parametrize("optimizer", ["sgd_l2", "adam_l2"])
def test_the_floor_is_below_the_tolerance(optimizer, runs):
    """torch at 1 and 2 threads, the round-off floor, is within the tolerances the backends are held to, and
    not far below the backends' own difference: the tolerances measure round-off, not a semantic. (TensorFlow
    fixes its thread pools at first use, so Keras' floor needs two processes: README's parity sweep.)"""
    floor = differences(runs("torch", optimizer, 2), runs("torch", optimizer, 1))
    assert within_tolerance(floor), floor
    assert floor["loss"] > 0 and floor["weights"] > 0, "identical at 1 and 2 threads: no floor measured"


# ---------------------------------------------------------------------------- BatchNorm semantics flipped


class TorchMomentum(torch_model.KerasBatchNorm2d):
    """Keras' 0.99 given to torch's convention: ``moving * 0.01 + batch * 0.99``."""

    def __init__(self, channels: int, momentum: float, epsilon: float):
        super().__init__(channels, 1.0 - momentum, epsilon)


class TorchEpsilon(torch_model.KerasBatchNorm2d):
    """torch's default epsilon, 1e-5."""

    def __init__(self, channels: int, momentum: float, epsilon: float):
        super().__init__(channels, momentum, 1e-5)


class UnbiasedMovingVariance(nn.BatchNorm2d):
    """Stock ``nn.BatchNorm2d`` with Keras' momentum and epsilon translated: its moving variance blends the
    unbiased batch variance."""

    def __init__(self, channels: int, momentum: float, epsilon: float):
        super().__init__(channels, eps=epsilon, momentum=1.0 - momentum)


class BatchStatisticsInEvaluation(torch_model.KerasBatchNorm2d):
    """Evaluation normalises with the batch's statistics, as a model left in training mode would."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return super().forward(x)
        return F.batch_norm(x, None, None, self.weight, self.bias, training=True, eps=self.epsilon)


class MovingStatisticsInTraining(torch_model.KerasBatchNorm2d):
    """Training normalises with the moving statistics, as a model left in evaluation mode would."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, training=False, eps=self.epsilon
        )


MISMATCHES = {
    "torch momentum convention": TorchMomentum,
    "torch epsilon 1e-5": TorchEpsilon,
    "unbiased moving variance": UnbiasedMovingVariance,
    "batch statistics in evaluation": BatchStatisticsInEvaluation,
    "moving statistics in training": MovingStatisticsInTraining,
}


@pytest.mark.parametrize("mismatch", list(MISMATCHES))
def test_each_batchnorm_mismatch_is_detected(mismatch, runs, data, monkeypatch):
    """The torch backend with one BatchNorm semantic flipped fails the parity tolerances."""
    monkeypatch.setattr(torch_model, "KerasBatchNorm2d", MISMATCHES[mismatch])
    flipped = train("torch", "sgd_l2", data)
    diff = differences(runs("keras", "sgd_l2"), flipped)
    assert not within_tolerance(diff), diff
    assert max(diff[key] / TOLERANCE[key] for key in TOLERANCE) > 10, diff  # far outside, not at the edge
