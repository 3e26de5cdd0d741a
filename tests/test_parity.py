"""A seed means the same experiment on both backends (docs/design.md, "Parity").

Same initial weights, same batches, dropout 0: Keras and torch must then produce the same logits, the same
per-epoch metrics and the same final weights, up to float32 round-off, for every optimizer and schedule.

Tolerances, measured on torch 2.13 / TF 2.21 over the 9 sgd_l2/adam_l2/adamw x schedule cases (2 epochs, 6 steps):
- logits of the initial weights: 1.3e-7 absolute (|logits| <= 0.5);
- losses: <= 4.2e-7 relative, weights: <= 3.2e-6 absolute, except in adam_l2/inverse_time, where at the
  last step weights 8e-7 apart give conv gradients 6e-3 apart (a max-pool or ReLU input within round-off of
  its kink takes the other branch on one backend), which Adam's normalised step turns into 1.8e-5 in the
  weights and 4.7e-6 in val_loss. That is the floor; the tolerances below are ~3x above it.
sgdw (added later, same data, 3 schedules): losses <= 1.0e-7 relative, weights <= 1.2e-7 absolute.
Every semantic mismatch that backends/torch/optim.py corrects fails them by 36x to 8,000x (eps not rescaled:
1.8e-3 in the weights; momentum not rescaled under a schedule: 3e-2; weight_decay = l2 instead of 2*l2: 2e-2;
AdamW sparing biases: 4e-3; schedule off by one step: 5e-3; dense rows not permuted: 0.4; SGDW decaying after
the SGD step instead of before: 6e-2).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from bench.architecture import CNNSpec, initial_weights
from bench.backend import build_trainer
from bench.config import RunConfig
from tests.conftest import compose_run

pytest.importorskip("torch")
pytest.importorskip("tensorflow")

SIZE, BATCH, EPOCHS = 16, 8, 2
LOGIT_ATOL = 1e-6  # the same initial weights through both forward passes
LOSS_RTOL = 2e-5  # per-epoch loss, ce_loss and val_loss
WEIGHT_ATOL = 5e-5  # final weights (|w| ~ 0.01-0.5), absolute: round-off does not scale with |w| under Adam
# Learning rates large enough that training moves the weights visibly in 6 steps, so that a wrong semantic
# shows; the inverse-time decay halves the lr by step 2, so the momentum rescale matters; AdamW's decay is
# strong enough that sparing the (zero-initialised) biases shows. Command-line overrides: the configs are
# composed from conf/ as a run's are.
KERAS_ADAM = ["optimizer.beta_1=0.9", "optimizer.beta_2=0.999", "optimizer.epsilon=1e-7"]
OPTIMIZERS = {
    "sgd_l2": ["optimizer.lr=0.05", "optimizer.momentum=0.9", "optimizer.l2=1e-2"],
    "sgdw": ["optimizer.lr=0.05", "optimizer.momentum=0.9", "optimizer.weight_decay=0.5"],
    "adam_l2": ["optimizer.lr=3e-3", "optimizer.l2=1e-2", *KERAS_ADAM],
    "adamw": ["optimizer.lr=3e-3", "optimizer.weight_decay=1.0", *KERAS_ADAM],
}
SCHEDULES = {
    "constant": [],
    "inverse_time": ["schedule.decay_rate=0.5"],
    "cosine": ["schedule.alpha=0.1"],
}


@functools.cache
def make_run(backend: str, optimizer: str, schedule: str) -> RunConfig:
    overrides = [
        f"backend={backend}", "backend.threads=2", f"optimizer={optimizer}", *OPTIMIZERS[optimizer],
        f"dataset.image_size={SIZE}", "model.filters=[8,8]", "model.dense_units=16", "model.dropout=0",
        f"schedule={schedule}", *SCHEDULES[schedule], f"train.epochs={EPOCHS}", f"train.batch_size={BATCH}",
        "seed=3",
    ]  # fmt: skip
    return compose_run(*overrides)


def spec_of(run: RunConfig) -> CNNSpec:
    return CNNSpec.from_config(run.model, image_size=SIZE, num_classes=5)


def batches(images: np.ndarray, labels: np.ndarray, order: np.ndarray) -> list:
    return [(images[order[i : i + BATCH]], labels[order[i : i + BATCH]]) for i in range(0, len(order), BATCH)]


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    """Images whose mean colour depends on the class (learnable), 20 to train (last batch partial), 12 to
    validate."""
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 5, 32)
    base = np.stack([labels * 50, 255 - labels * 40, np.full(32, 120)], -1)[:, None, None, :]
    images = np.clip(base + rng.normal(0, 40, (32, SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
    return {
        "images": images[:20],
        "labels": labels[:20],
        "val_images": images[20:],
        "val_labels": labels[20:],
    }


def train(
    backend: str, optimizer: str, schedule: str, data: dict
) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Both epochs of one run, batch order from a numpy Generator as the runner makes it."""
    run = make_run(backend, optimizer, schedule)
    spec = spec_of(run)
    steps = -(-len(data["labels"]) // BATCH)
    trainer = build_trainer(run, spec, steps)  # the seed's initial weights
    history = []
    for epoch in range(1, EPOCHS + 1):
        order = np.random.default_rng([run.seed, epoch]).permutation(len(data["labels"]))
        fit = trainer.train_epoch(batches(data["images"], data["labels"], order))
        val = trainer.evaluate(batches(data["val_images"], data["val_labels"], np.arange(12)))
        history.append(
            {"loss": fit.loss, "ce_loss": fit.ce_loss, "accuracy": fit.accuracy, "val_loss": val.loss}
        )
    return history, trainer.get_weights()


@pytest.fixture(scope="module")
def runs(data):
    """Each (backend, optimizer, schedule) trained once per test session, shared by the tests below."""
    cache: dict[tuple[str, str, str], tuple] = {}

    def get(backend: str, optimizer: str, schedule: str):
        key = (backend, optimizer, schedule)
        if key not in cache:
            cache[key] = train(backend, optimizer, schedule, data)
        return cache[key]

    return get


def test_initial_weights_give_the_same_logits(data):
    run = make_run("torch", "adamw", "constant")
    spec = spec_of(run)
    weights = initial_weights(spec, run.seed)
    logits = {
        backend: build_trainer(make_run(backend, "adamw", "constant"), spec, 3, weights).predict_logits(
            data["images"]
        )
        for backend in ("keras", "torch")
    }
    np.testing.assert_allclose(logits["torch"], logits["keras"], rtol=0, atol=LOGIT_ATOL)
    assert np.abs(logits["keras"]).max() > 0.05  # not trivially equal


@pytest.mark.parametrize("schedule", list(SCHEDULES))
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_same_seed_same_curve_and_weights_on_both_backends(optimizer, schedule, runs):
    (keras_history, keras_weights), (torch_history, torch_weights) = (
        runs("keras", optimizer, schedule),
        runs("torch", optimizer, schedule),
    )
    for keras_epoch, torch_epoch in zip(keras_history, torch_history, strict=True):
        assert torch_epoch["accuracy"] == keras_epoch["accuracy"]
        for key in ("loss", "ce_loss", "val_loss"):
            assert torch_epoch[key] == pytest.approx(keras_epoch[key], rel=LOSS_RTOL), key
    initial = initial_weights(spec_of(make_run("torch", optimizer, schedule)), 3)
    for name, keras_value in keras_weights.items():
        assert np.abs(keras_value - initial[name]).max() > 1e-3, f"{name} barely trained: a weak test"
        np.testing.assert_allclose(torch_weights[name], keras_value, rtol=0, atol=WEIGHT_ATOL, err_msg=name)


@pytest.mark.parametrize("backend", ["keras", "torch"])
def test_same_seed_same_backend_is_identical(backend, runs, data):
    first_history, first_weights = runs(backend, "sgd_l2", "inverse_time")
    second_history, second_weights = train(backend, "sgd_l2", "inverse_time", data)
    assert second_history == first_history
    for name, value in first_weights.items():
        np.testing.assert_array_equal(second_weights[name], value)
