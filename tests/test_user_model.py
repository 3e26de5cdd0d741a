"""Models a user brings: one factory per backend in a config file (README, "Your own model").

The user's package is written by the test (a small conv net, once per framework) and reached through
PYTHONPATH and ``hydra.searchpath``, as a user's own package would be; the data is a folder of the user's own
images with class names of its own (``dataset=folder``).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bench import data as data_lib
from bench.architecture import UserModelSpec, model_spec
from bench.backend import build_trainer
from bench.config import UserModelConfig, _locate_entry
from bench.errors import ConfigError
from tests.conftest import compose_run, make_photo_tree, run_cli

TORCH_NET = '''
import torch
from torch import nn


def small_net(input_shape, num_classes, width=8):
    """conv -> BatchNorm -> ReLU -> global pool -> dense logits, for (channels, height, width) images."""
    channels = input_shape[0]
    return nn.Sequential(
        nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes),
    )


class Prior(nn.Module):
    """Logits that ignore the image: one bias per class, no weight of two dimensions."""

    def __init__(self, input_shape, num_classes):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(num_classes))

    def forward(self, x):
        return self.bias.expand(x.shape[0], -1)


def wrong_width(input_shape, num_classes):
    return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes + 1))
'''
KERAS_NET = '''
import keras


def small_net(input_shape, num_classes, width=8, kernel_regularizer=None):
    """The same net as my_models.torch_net.small_net, for (height, width, channels) images."""
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(width, 3, padding="same", kernel_regularizer=kernel_regularizer)(inputs)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes)(x))


def own_l2(input_shape, num_classes):
    return small_net(input_shape, num_classes, kernel_regularizer=keras.regularizers.L2(1e-4))
'''
NET_YAML = """
name: small_net
torch: {_target_: my_models.torch_net.small_net, width: 8}
keras: {_target_: my_models.keras_net.small_net, width: 8}
"""
TINY = ["dataset.image_size=16", "train.batch_size=8", "train.epochs=2"]


@pytest.fixture(scope="module")
def user_package(tmp_path_factory) -> dict[str, str]:
    """my_models (one module per framework) on sys.path and PYTHONPATH, and conf_user/model/small_net.yaml."""
    root = tmp_path_factory.mktemp("user")
    package = root / "src" / "my_models"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "torch_net.py").write_text(textwrap.dedent(TORCH_NET))
    (package / "keras_net.py").write_text(textwrap.dedent(KERAS_NET))
    conf = root / "conf_user" / "model"
    conf.mkdir(parents=True)
    (conf / "small_net.yaml").write_text(NET_YAML)  # no defaults line: the schema is applied on validation
    return {"PYTHONPATH": str(root / "src"), "searchpath": f"hydra.searchpath=[file://{root / 'conf_user'}]"}


@pytest.fixture(scope="module")
def own_photos(tmp_path_factory) -> Path:
    """A user's folder: three classes under names of its own."""
    root = make_photo_tree(tmp_path_factory.mktemp("own") / "photos", per_class=8)
    for old, new in [("daisy", "ash"), ("roses", "birch"), ("tulips", "cedar")]:
        (root / old).rename(root / new)
    for left_out in ("dandelion", "sunflowers"):
        for file in (root / left_out).iterdir():
            file.unlink()
        (root / left_out).rmdir()
    return root


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_a_users_model_trains_on_a_users_photos_from_its_config_file_alone(
    backend, user_package, own_photos, tmp_path
):
    out = tmp_path / "run"
    result = run_cli(
        "model=small_net", f"backend={backend}", "optimizer=sgd_l2", "dataset=folder", "dataset.name=trees",
        f"dataset.path={own_photos}", f"dataset.cache_dir={tmp_path / 'cache'}", *TINY, f"hydra.run.dir={out}",
        user_package["searchpath"], cwd=tmp_path, env={"PYTHONPATH": user_package["PYTHONPATH"]},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    saved = json.loads((out / "result.json").read_text())
    assert saved["status"] == "completed" and saved["workload"] == "trees/small_net"
    assert saved["backend_parity"] is False  # each backend built its own model
    assert saved["data"]["num_classes"] == 3 and saved["data"]["source"] == "folder"
    assert saved["final"]["loss"] > saved["final"]["ce_loss"]  # sgd_l2's penalty on the user's kernels


def _run_with(model: UserModelConfig, backend: str, *overrides: str):
    run = compose_run(f"backend={backend}", "backend.threads=1", *TINY, *overrides)
    run.model = model
    return run


def _net(**entries) -> UserModelConfig:
    return UserModelConfig(name="small_net", **entries)


BOTH = {
    "torch": {"_target_": "my_models.torch_net.small_net"},
    "keras": {"_target_": "my_models.keras_net.small_net"},
}


@pytest.fixture
def on_path(user_package, monkeypatch):
    monkeypatch.syspath_prepend(user_package["PYTHONPATH"])


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_l2_on_a_users_model_is_on_its_weights_of_two_or_more_dimensions(backend, on_path):
    """The reported loss minus the cross-entropy is l2 * sum(w**2) over the conv and dense kernels alone (not
    the biases or BatchNorm's gamma and beta), and the same seed builds the same model."""
    run = _run_with(_net(**BOTH), backend, "optimizer=sgd_l2", "optimizer.l2=0.01")
    spec = model_spec(run.model, image_size=16, num_classes=3)
    assert isinstance(spec, UserModelSpec)
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (8, 16, 16, 3), dtype=np.uint8), rng.integers(0, 3, 8)
    trainer = build_trainer(run, spec, steps_per_epoch=1)
    weights = trainer.get_weights()
    metrics = trainer.evaluate([(images, labels)])
    kernels = [w for w in weights.values() if w.ndim >= 2]
    assert len(kernels) == 2  # the conv kernel and the dense kernel
    expected = 0.01 * sum(float(np.sum(k.astype(np.float64) ** 2)) for k in kernels)
    assert metrics.loss - metrics.ce_loss == pytest.approx(expected, rel=1e-4)
    again = build_trainer(run, spec, steps_per_epoch=1).get_weights()
    for name, value in weights.items():
        np.testing.assert_array_equal(again[name], value, err_msg=name)


@pytest.mark.parametrize(
    ("backend", "entry", "l2", "message"),
    [
        ("torch", "my_models.torch_net.Prior", 0.01, "has no trainable weight of two or more dimensions"),
        ("keras", "my_models.keras_net.own_l2", 0.01, "regularizes .*kernel itself"),
        ("torch", "my_models.torch_net.wrong_width", 0.0, r"outputs of shape \(2, 4\) .* logits \(2, 3\)"),
        ("torch", "my_models.torch_net.no_such_net", 0.0, "cannot be imported"),
    ],
)  # fmt: skip
def test_a_users_model_that_cannot_work_is_one_clear_error(backend, entry, l2, message, on_path):
    run = _run_with(_net(**{backend: {"_target_": entry}}), backend, "optimizer=sgd_l2", f"optimizer.l2={l2}")
    with pytest.raises(ConfigError, match=message):
        _locate_entry("model", run.model, backend)  # what validation does (import, arguments)
        build_trainer(run, model_spec(run.model, image_size=16, num_classes=3), steps_per_epoch=1)


def test_a_users_model_without_this_backends_entry_fails_before_any_run(user_package, own_photos, tmp_path):
    out = tmp_path / "run"
    result = run_cli(
        "model=small_net", "~model.keras", "backend=keras", "dataset=folder", f"dataset.path={own_photos}",
        *TINY, f"hydra.run.dir={out}", user_package["searchpath"], cwd=tmp_path,
        env={"PYTHONPATH": user_package["PYTHONPATH"]},
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "flowerbench: error: model 'small_net' has no keras entry (it has: torch)" in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()


def test_the_data_a_users_model_is_given(own_photos, tmp_path):
    data = data_lib.load_dataset(
        compose_run(
            "dataset=folder", f"dataset.path={own_photos}", f"dataset.cache_dir={tmp_path}", *TINY
        ).dataset
    )
    assert data.class_names == ["ash", "birch", "cedar"]
