"""The PyTorch backend on its own: weight layout, reported loss, Keras' optimizer semantics, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.architecture import CNNSpec, initial_weights
from bench.backend import build_trainer
from bench.config import RunConfig, kernel_l2
from bench.errors import ConfigError
from tests.conftest import compose_run, l2_penalty

torch = pytest.importorskip("torch")
SIZE, BATCH = 16, 8
# Each optimizer's and schedule's values, as command-line overrides: configs are composed from conf/ as a
# run's are.
OPTIMIZERS = {
    "sgd_l2": ["optimizer.lr=1e-2", "optimizer.l2=1e-2"],
    "adam_l2": ["optimizer.lr=1e-3", "optimizer.l2=1e-2"],
    "adamw": ["optimizer.lr=1e-3", "optimizer.weight_decay=1e-1"],
    "sgdw": ["optimizer.lr=1e-2", "optimizer.weight_decay=1e-1"],
}
SCHEDULES = {"constant": [], "inverse_time": ["schedule.decay_rate=0.1"], "cosine": ["schedule.alpha=0.2"]}


def make_run(optimizer: str, *overrides: str, schedule: str = "constant", dropout: float = 0.0) -> RunConfig:
    """The test's run; ``overrides`` (e.g. ``optimizer.lr=...``, ``train.precision=bf16``) come last and win."""
    return compose_run(
        "backend=torch", "backend.threads=1", f"optimizer={optimizer}", *OPTIMIZERS[optimizer],
        f"dataset.image_size={SIZE}", "model.filters=[4,6]", "model.dense_units=8", f"model.dropout={dropout}",
        f"schedule={schedule}", *SCHEDULES[schedule], "train.epochs=2", f"train.batch_size={BATCH}", "seed=0",
        *overrides,
    )  # fmt: skip


def make_trainer(run: RunConfig, steps_per_epoch: int = 3):
    spec = CNNSpec.from_config(run.model, image_size=SIZE, num_classes=5)
    weights = initial_weights(spec, run.seed)
    return build_trainer(run, spec, steps_per_epoch, weights), spec, weights


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (20, SIZE, SIZE, 3), dtype=np.uint8), rng.integers(0, 5, 20)


@pytest.fixture(scope="module")
def batches(data) -> list[tuple[np.ndarray, np.ndarray]]:
    """20 images in batches of 8, 8 and a partial 4."""
    images, labels = data
    return [(images[i : i + BATCH], labels[i : i + BATCH]) for i in range(0, len(labels), BATCH)]


def test_weights_round_trip_unchanged():
    trainer, _, weights = make_trainer(make_run("sgd_l2"))
    for name, value in trainer.get_weights().items():
        assert value.shape == weights[name].shape and value.dtype == np.float32
        np.testing.assert_array_equal(value, weights[name])


def test_dense_layer_reads_the_feature_map_in_keras_hwc_order(data):
    """torch flattens CHW; the loaded dense kernel must give what Keras' HWC Flatten @ kernel gives."""
    trainer, _, weights = make_trainer(make_run("sgd_l2"))
    x = torch.from_numpy(data[0]).permute(0, 3, 1, 2).float() / 255.0
    with torch.no_grad():
        features = trainer.model[:-3](x)  # through Flatten: CHW order
        keras_order = trainer.model[:-4](x).permute(0, 2, 3, 1).reshape(len(x), -1).numpy()
        dense = trainer.model.dense(features).numpy()
    expected = keras_order @ weights["dense/kernel"] + weights["dense/bias"]
    np.testing.assert_allclose(dense, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("optimizer", ["sgd_l2", "sgdw", "adam_l2", "adamw"])
def test_reported_loss_is_cross_entropy_plus_l2_on_kernels(optimizer, batches):
    trainer, spec, weights = make_trainer(make_run(optimizer))
    penalty = l2_penalty(weights, spec, kernel_l2(trainer.run.optimizer))
    val = trainer.evaluate(batches)
    assert val.loss == pytest.approx(val.ce_loss + penalty, rel=1e-6)
    train = trainer.train_epoch(batches[:1])  # one step: the penalty of the weights before the update
    assert train.loss == pytest.approx(train.ce_loss + penalty, rel=1e-6)
    assert train.images == BATCH and 0 <= train.accuracy <= 1
    if optimizer in ("sgdw", "adamw"):  # decoupled decay is in the optimizer, never in the loss
        assert val.loss == val.ce_loss and train.loss == train.ce_loss


def test_metrics_are_sample_weighted_and_keep_the_partial_batch(data, batches):
    images, labels = data
    trainer, _, _ = make_trainer(make_run("adamw"))
    metrics = trainer.evaluate(batches)
    logits = trainer.predict_logits(images).astype(np.float64)
    log_probs = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    assert metrics.images == 20
    assert metrics.ce_loss == pytest.approx(-log_probs[np.arange(20), labels].mean(), rel=1e-6)
    assert metrics.accuracy == pytest.approx(np.mean(logits.argmax(1) == labels))


def _bias_after_one_step(optimizer: str, values: list[str], batches) -> np.ndarray:
    trainer, _, _ = make_trainer(make_run(optimizer, *values))
    with torch.no_grad():
        trainer.model.logits.bias.fill_(1.0)
    trainer.train_epoch(batches[:1])
    return trainer.get_weights()["logits/bias"]


def test_adamw_decays_biases_too_and_adam_l2_does_not(batches):
    lr, decay = 1e-3, 1e-1
    decayed = _bias_after_one_step(
        "adamw", [f"optimizer.lr={lr}", f"optimizer.weight_decay={decay}"], batches
    )
    plain = _bias_after_one_step("adamw", [f"optimizer.lr={lr}", "optimizer.weight_decay=0"], batches)
    np.testing.assert_allclose(plain - decayed, lr * decay * 1.0, rtol=1e-3)  # w <- w - lr * wd * w
    with_l2 = _bias_after_one_step("adam_l2", [f"optimizer.lr={lr}", "optimizer.l2=1e-1"], batches)
    without = _bias_after_one_step("adam_l2", [f"optimizer.lr={lr}", "optimizer.l2=0"], batches)
    np.testing.assert_array_equal(with_l2, without)  # the L2 penalty is on kernels only


def _one_parameter_stepper(optimizer: str, values: list[str], schedule: str, total_steps: int):
    from backends.torch import optim

    decay = ["schedule.decay_rate=0.5"] if schedule == "inverse_time" else []
    run = compose_run(f"optimizer={optimizer}", *values, f"schedule={schedule}", *decay)
    weight = torch.nn.Parameter(torch.tensor([0.5, -0.3, 2e-7], dtype=torch.float64))
    stepper = optim.make_optimizer(run.optimizer, run.schedule, total_steps, kernels=[weight], biases=[])
    return run.optimizer, weight, stepper


GRADIENTS = [np.array([0.1, -0.2, 1e-7]), np.array([0.3, 0.1, -3e-7]), np.array([-0.2, 0.05, 2e-7])] * 2


def test_sgd_momentum_keeps_keras_velocity_under_a_schedule():
    """Keras: v <- m*v - lr_t*(g + 2*l2*w); w <- w + v (lr_t changes every step here)."""
    values = ["optimizer.lr=0.1", "optimizer.momentum=0.9", "optimizer.l2=0.05"]
    _, weight, stepper = _one_parameter_stepper("sgd_l2", values, "inverse_time", len(GRADIENTS))
    w, v = weight.detach().numpy().copy(), 0.0
    for t, g in enumerate(GRADIENTS):
        weight.grad = torch.from_numpy(g.copy())
        stepper.step()
        v = 0.9 * v - 0.1 / (1 + 0.5 * t) * (g + 2 * 0.05 * w)
        w = w + v
    np.testing.assert_allclose(weight.detach().numpy(), w, rtol=1e-12)


@pytest.mark.parametrize("name", ["adam_l2", "adamw"])
def test_adam_uses_keras_epsilon_hat_inside_the_bias_corrected_step(name):
    """Keras: lr_t' = lr_t*sqrt(1-b2^t)/(1-b1^t); w <- w - lr_t' * m / (sqrt(v) + eps_hat). The third
    coordinate's gradients are ~eps, where torch's own eps convention would change the step by far more."""
    values = ["optimizer.lr=0.01", "optimizer.epsilon=1e-6", "optimizer.beta_1=0.9", "optimizer.beta_2=0.999"]
    config, weight, stepper = _one_parameter_stepper(name, values, "constant", len(GRADIENTS))
    decay = getattr(config, "weight_decay", 0.0)
    w, m, v = weight.detach().numpy().copy(), 0.0, 0.0
    for t, g in enumerate(GRADIENTS, start=1):
        weight.grad = torch.from_numpy(g.copy())
        stepper.step()
        g = g + 2 * getattr(config, "l2", 0.0) * w
        w = w - 0.01 * decay * w
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
        w = w - 0.01 * math.sqrt(1 - 0.999**t) / (1 - 0.9**t) * m / (np.sqrt(v) + 1e-6)
    np.testing.assert_allclose(weight.detach().numpy(), w, rtol=1e-10)


def test_schedules_follow_keras_per_batch(batches):
    from backends.torch.optim import lr_factor

    trainer, _, _ = make_trainer(make_run("sgd_l2", schedule="inverse_time"))
    assert trainer.learning_rate() == pytest.approx(1e-2)
    trainer.train_epoch(batches)  # 3 steps
    assert trainer.learning_rate() == pytest.approx(1e-2 / (1 + 0.1 * 3))
    cosine = lr_factor(compose_run("schedule=cosine", "schedule.alpha=0.2").schedule, total_steps=10)
    assert [cosine(0), cosine(5), cosine(10), cosine(12)] == pytest.approx([1.0, 0.6, 0.2, 0.2])
    assert lr_factor(compose_run("schedule=constant").schedule, total_steps=10) is None


def test_same_seed_same_metrics_and_weights_even_with_dropout(batches):
    def two_epochs():
        trainer, _, _ = make_trainer(make_run("adam_l2", dropout=0.5))
        history = [trainer.train_epoch(batches) for _ in range(2)]
        return history, trainer.get_weights()

    (first, weights_a), (second, weights_b) = two_epochs(), two_epochs()
    assert first == second
    for name in weights_a:
        np.testing.assert_array_equal(weights_a[name], weights_b[name])


def test_bf16_trains_with_float32_weights(batches):
    fp32, _, _ = make_trainer(make_run("adamw"))
    bf16, _, _ = make_trainer(make_run("adamw", "train.precision=bf16"))
    reference, history = fp32.train_epoch(batches), [bf16.train_epoch(batches) for _ in range(2)]
    assert all(math.isfinite(m.loss) for m in history)
    assert history[0].loss == pytest.approx(reference.loss, rel=0.02)  # bf16 keeps ~3 significant digits
    assert all(w.dtype == np.float32 for w in bf16.get_weights().values())
    assert bf16.environment()["precision"] == "bf16"


def test_environment_and_device_choice():
    trainer, _, _ = make_trainer(make_run("sgd_l2"))
    env = trainer.environment()
    assert env["framework"] == "torch" and env["torch_version"] == torch.__version__
    assert env["threads"] == 1 and env["memory_format"] == "channels_last" and env["deterministic"] is True
    if not torch.cuda.is_available():
        assert env["device"] == "cpu"
        with pytest.raises(ConfigError, match="backend.device=gpu"):
            make_trainer(make_run("sgd_l2", "backend.device=gpu"))
