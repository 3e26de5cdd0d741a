"""Every registered backend honours :mod:`bench.backend`'s interface, checked the same way for each.

Parametrized over the registry, so a new backend is tested by registering it: the template (the base class owns
the epoch loop), a tiny epoch on tiny random data, evaluation, ``predict_logits``, a same-seed repeat, the
explicit process-wide ``setup`` and the throughput yardsticks. What each backend computes (its optimizer
semantics, parity with Keras) is tested in test_keras_backend.py, test_torch_backend.py and test_parity.py.
"""

from __future__ import annotations

import importlib
import inspect
import math

import numpy as np
import pytest

from bench import config
from bench.architecture import CNNSpec, initial_weights
from bench.backend import (
    BACKEND_NAMES,
    REGISTRY,
    BackendEntry,
    Trainer,
    build_trainer,
    load_backend,
    load_reference,
)
from bench.config import OPTIMIZER_SCHEMAS, load_option
from bench.errors import BackendUnavailableError
from tests.conftest import compose_run, l2_penalty

SIZE, BATCH, CLASSES, L2, LR, DECAY = 12, 4, 3, 1e-2, 0.05, 0.1
STEPS = 3  # 10 training images: batches of 4, 4 and a partial 2


def make_run(backend: str, seed: int = 0, dropout: float = 0.5):
    """sgd_l2 with a penalty and an inverse-time schedule, dropout on: every part of a step is exercised."""
    overrides = [
        f"backend={backend}", "backend.threads=1", "optimizer=sgd_l2", f"optimizer.lr={LR}", f"optimizer.l2={L2}",
        f"dataset.image_size={SIZE}", "model.filters=[4,4]", "model.dense_units=8", f"model.dropout={dropout}",
        "schedule=inverse_time", f"schedule.decay_rate={DECAY}", "train.epochs=2", f"train.batch_size={BATCH}",
        f"seed={seed}",
    ]  # fmt: skip
    return compose_run(*overrides)


def spec_of(run) -> CNNSpec:
    return CNNSpec.from_config(run.model, image_size=SIZE, num_classes=CLASSES)


@pytest.fixture(params=BACKEND_NAMES)
def name(request) -> str:
    """Each registered backend; skipped where its framework is not installed."""
    try:
        load_backend(request.param)
    except BackendUnavailableError as exc:
        pytest.skip(str(exc))
    return request.param


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, (16, SIZE, SIZE, 3), dtype=np.uint8)
    labels = rng.integers(0, CLASSES, 16).astype(np.int32)
    return {
        "images": images[:10],
        "labels": labels[:10],
        "val_images": images[10:],
        "val_labels": labels[10:],
    }


def batches(images: np.ndarray, labels: np.ndarray) -> list:
    return [(images[i : i + BATCH], labels[i : i + BATCH]) for i in range(0, len(labels), BATCH)]


def test_one_registry_names_the_backends():
    assert config.BACKENDS == BACKEND_NAMES == tuple(REGISTRY) == ("keras", "torch")
    for backend_name, entry in REGISTRY.items():
        assert (entry.name, entry.package) == (backend_name, f"backends.{backend_name}")


def test_unknown_backend_and_missing_framework_are_one_line_errors(tmp_path, monkeypatch):
    with pytest.raises(
        BackendUnavailableError, match=r"unknown backend 'jax'; choose one of \['keras', 'torch'\]"
    ):
        load_backend("jax")
    package = tmp_path / "fake_backend"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "trainer.py").write_text("import flowerbench_framework_not_installed\n")
    (package / "reference.py").write_text("from bench.config import NO_SUCH_NAME\n")  # a bug of our own
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(REGISTRY, "fake", BackendEntry("fake", "fake_backend", "the fake framework"))
    with pytest.raises(BackendUnavailableError) as missing:
        load_backend("fake")
    message = str(missing.value)
    assert message.startswith("backend=fake needs the fake framework, but importing it failed")
    assert 'pip install -e ".[dev]"' in message and "flowerbench[" not in message and "\n" not in message
    with pytest.raises(ImportError, match="NO_SUCH_NAME"):  # a bug is not reported as a missing framework
        load_reference("fake")


def test_implements_the_interface_and_leaves_the_loop_to_the_base(name):
    trainer_class = load_backend(name)
    assert issubclass(trainer_class, Trainer) and not trainer_class.__abstractmethods__
    for template in ("train_epoch", "evaluate", "_pass"):
        assert getattr(trainer_class, template) is getattr(Trainer, template), f"{name} overrides {template}"
    assert isinstance(inspect.getattr_static(trainer_class, "setup"), classmethod)


def test_setup_is_called_once_by_build_trainer_and_never_by_the_constructor(name, monkeypatch):
    trainer_class, calls = load_backend(name), []
    real_setup, real_init = trainer_class.setup.__func__, trainer_class.__init__

    def setup(cls, run):
        calls.append("setup")
        real_setup(cls, run)

    def init(self, *args, **kwargs):
        calls.append("init")
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(trainer_class, "setup", classmethod(setup))
    monkeypatch.setattr(trainer_class, "__init__", init)
    run = make_run(name)
    trainer = build_trainer(run, spec_of(run), STEPS)
    assert calls == ["setup", "init"] and isinstance(trainer, trainer_class)
    trainer_class(run, spec_of(run), initial_weights(spec_of(run), run.seed), STEPS)
    assert calls == ["setup", "init", "init"]


def test_tiny_epoch_evaluation_and_logits(name, data):
    run = make_run(name)
    spec = spec_of(run)
    initial = initial_weights(spec, run.seed)
    trainer = build_trainer(run, spec, STEPS)
    for key, value in trainer.get_weights().items():  # build_trainer loads the seed's weights by default
        np.testing.assert_array_equal(value, initial[key])
    assert trainer.learning_rate() == pytest.approx(LR)

    steps: list[int] = []
    train = trainer.train_epoch(batches(data["images"], data["labels"]), on_step=steps.append)
    assert steps == [4, 4, 2] and train.images == 10
    assert math.isfinite(train.loss) and train.loss > train.ce_loss > 0  # the L2 penalty is in the loss
    assert train.accuracy * 10 == pytest.approx(round(train.accuracy * 10))  # a count of 10 images
    assert trainer.learning_rate() == pytest.approx(LR / (1 + DECAY * STEPS), rel=1e-6)  # stepped per batch
    weights = trainer.get_weights()
    assert weights.keys() == initial.keys()
    for key, value in weights.items():
        assert value.shape == initial[key].shape and value.dtype == np.float32
    assert any(not np.array_equal(weights[key], initial[key]) for key in weights), "the epoch changed nothing"

    val = trainer.evaluate(batches(data["val_images"], data["val_labels"]))
    assert val.images == 6 and trainer.evaluate(batches(data["val_images"], data["val_labels"])) == val
    for key, value in trainer.get_weights().items():  # evaluation changes no weight
        np.testing.assert_array_equal(value, weights[key])
    assert val.loss == pytest.approx(val.ce_loss + l2_penalty(weights, spec, L2), rel=1e-5)

    logits = trainer.predict_logits(data["val_images"])
    assert logits.shape == (6, CLASSES) and logits.dtype == np.float32
    log_probs = logits.astype(np.float64) - np.log(np.exp(logits.astype(np.float64)).sum(1, keepdims=True))
    assert val.ce_loss == pytest.approx(-log_probs[np.arange(6), data["val_labels"]].mean(), rel=1e-5)
    assert val.accuracy == pytest.approx(np.mean(logits.argmax(1) == data["val_labels"]))

    empty = trainer.train_epoch([])  # no batch: no step, NaN means, nothing changed
    assert empty.images == 0 and math.isnan(empty.loss)
    assert trainer.learning_rate() == pytest.approx(LR / (1 + DECAY * STEPS), rel=1e-6)

    environment = trainer.environment()
    assert environment["framework"] == name and environment["precision"] == "fp32"
    assert isinstance(environment["threads"], int) and environment["threads"] >= 1


def test_same_seed_repeats_exactly_with_dropout(name, data):
    def two_epochs(seed: int):
        run = make_run(name, seed=seed)
        trainer = build_trainer(run, spec_of(run), STEPS)
        history = [trainer.train_epoch(batches(data["images"], data["labels"])) for _ in range(2)]
        history.append(trainer.evaluate(batches(data["val_images"], data["val_labels"])))
        return history, trainer.get_weights()

    (first, weights_a), (second, weights_b) = two_epochs(seed=1), two_epochs(seed=1)
    assert first == second
    for key, value in weights_a.items():
        np.testing.assert_array_equal(weights_b[key], value)
    assert two_epochs(seed=2)[0] != first  # the seed matters: the test is not vacuous


def test_every_builtin_optimizer_has_a_builder_on_every_backend(name):
    """One table per backend from optimizer to builder (backends/<name>/optim.py), covering bench/optimizers/."""
    builders = importlib.import_module(f"backends.{name}.optim").BUILDERS
    assert sorted(builders) == sorted(OPTIMIZER_SCHEMAS)
    for optimizer, schema in OPTIMIZER_SCHEMAS.items():  # and each has its YAML, typed by its schema
        assert type(load_option("optimizer", optimizer)) is schema


def test_reference_yardsticks(name, data):
    reference = load_reference(name)
    spec = spec_of(make_run(name))
    optimizer = load_option("optimizer", "sgd_l2", lr=LR)
    bare = reference.bare_loop(spec, initial_weights(spec, 0), optimizer, BATCH, "fp32")
    step_times = bare.train(data["images"], data["labels"])
    assert len(step_times) == 10 // BATCH and all(seconds > 0 for seconds in step_times)  # whole batches
    assert reference.matmul_gflops(64, "fp32") > 0
