"""The Keras backend: L2 through kernel regularizers, decoupled decay only for AdamW, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from bench.architecture import CNNSpec, initial_weights
from bench.backend import build_trainer
from bench.config import RunConfig, kernel_l2
from tests.conftest import compose_run, l2_penalty

pytest.importorskip("tensorflow")
# Each optimizer's values, as command-line overrides: the configs are composed from conf/ as a run's are.
OPTIMIZERS = {
    "sgd_l2": ["optimizer.lr=1e-2", "optimizer.l2=1e-2"],
    "adam_l2": ["optimizer.lr=1e-3", "optimizer.l2=1e-2"],
    "adamw": ["optimizer.lr=1e-3", "optimizer.weight_decay=1e-1"],
    "sgdw": ["optimizer.lr=1e-2", "optimizer.weight_decay=1e-1"],
}


def make_run(optimizer: str, schedule: str = "constant", seed: int = 0) -> RunConfig:
    return compose_run(
        "backend=keras", "backend.threads=1", f"optimizer={optimizer}", *OPTIMIZERS[optimizer],
        "dataset.image_size=12", "model.filters=[4,4]", "model.dense_units=8", "model.dropout=0",
        f"schedule={schedule}", *(["schedule.decay_rate=0.1"] if schedule == "inverse_time" else []),
        "train.epochs=2", "train.batch_size=8", f"seed={seed}",
    )  # fmt: skip


@pytest.fixture(scope="module")
def batches():
    rng = np.random.default_rng(1)
    images, labels = rng.integers(0, 256, (20, 12, 12, 3), dtype=np.uint8), rng.integers(0, 5, 20)
    return [(images[i : i + 8], labels[i : i + 8]) for i in range(0, 20, 8)]


def make_trainer(run: RunConfig):
    spec = CNNSpec.from_config(run.model, image_size=12, num_classes=5)
    weights = initial_weights(spec, run.seed)
    return build_trainer(run, spec, steps_per_epoch=3, initial_weights=weights), spec, weights


@pytest.mark.parametrize("optimizer", ["sgd_l2", "sgdw", "adam_l2", "adamw"])
def test_reported_loss_is_cross_entropy_plus_l2_on_kernels(optimizer, batches):
    trainer, spec, weights = make_trainer(make_run(optimizer))
    metrics = trainer.evaluate(batches)
    expected_penalty = l2_penalty(weights, spec, kernel_l2(trainer.run.optimizer))
    assert metrics.loss == pytest.approx(metrics.ce_loss + expected_penalty, rel=1e-6)
    assert metrics.images == 20 and 0 <= metrics.accuracy <= 1
    if optimizer in ("sgdw", "adamw"):  # decoupled decay is in the optimizer, never in the loss
        assert metrics.loss == pytest.approx(metrics.ce_loss)


def test_weight_decay_argument_is_used_only_by_the_decoupled_optimizers():
    from backends.keras import optim

    decoupled = ("sgdw", "adamw")
    for name in OPTIMIZERS:
        config = make_run(name).optimizer
        keras_optimizer = optim.make_optimizer(config, config.lr)
        assert (keras_optimizer.weight_decay is not None) == (name in decoupled), name
        assert kernel_l2(config) == (0.0 if name in decoupled else 1e-2)
    for name in decoupled:
        assert optim.make_optimizer(make_run(name).optimizer, 1e-3).weight_decay == pytest.approx(1e-1)


def test_adamw_decays_biases_and_adam_l2_does_not_touch_zero_gradient_biases(batches):
    """With lr tiny the Adam step is ~lr; AdamW additionally shrinks every variable by lr*wd, biases included."""
    trainer, _, _ = make_trainer(make_run("adamw"))
    trainer.model.get_layer("logits").bias.assign(np.ones(5, np.float32))
    before = trainer.get_weights()["logits/bias"].copy()
    trainer.train_epoch(batches[:1])
    after = trainer.get_weights()["logits/bias"]
    adam_step = 1e-3  # |Adam's first update| = lr for every coordinate with a gradient
    assert np.all(np.abs(after - (before * (1 - 1e-3 * 1e-1))) <= adam_step * 1.001)
    assert not np.allclose(after, before)


def test_inverse_time_schedule_is_stepped_per_batch(batches):
    trainer, _, _ = make_trainer(make_run("sgd_l2", schedule="inverse_time"))
    assert trainer.learning_rate() == pytest.approx(1e-2)
    trainer.train_epoch(batches)  # 3 steps
    assert trainer.learning_rate() == pytest.approx(1e-2 / (1 + 0.1 * 3), rel=1e-6)


def test_same_seed_same_metrics_and_weights(batches):
    def two_epochs():
        trainer, _, _ = make_trainer(make_run("adam_l2"))
        history = [trainer.train_epoch(batches) for _ in range(2)]
        return history, trainer.get_weights()

    (first, weights_a), (second, weights_b) = two_epochs(), two_epochs()
    assert first == second
    for name in weights_a:
        np.testing.assert_array_equal(weights_a[name], weights_b[name])


def test_initial_weights_load_unchanged():
    trainer, _, weights = make_trainer(make_run("sgd_l2"))
    for name, value in trainer.get_weights().items():
        np.testing.assert_array_equal(value, weights[name])
