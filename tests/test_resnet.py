"""``model=resnet``: its description (bench/architecture.py), its config, and its runs through the CLI on both
backends, with the report's Backend parity table (backend parity step by step: tests/test_parity_resnet.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError

from bench.architecture import ConvSpec, ResNetSpec, initial_weights, model_spec
from bench.config import ConfigError, ResNetConfig, load_option, validate
from bench.report import build_report
from bench.report.load import load_run_table
from bench.report.parity import backend_parity
from tests.conftest import TINY, run_cli
from tests.test_throughput import TINY as THROUGHPUT_TINY
from tests.test_throughput import run_throughput


def resnet(image_size: int = 64, **values) -> ResNetSpec:
    spec = model_spec(load_option("model", "resnet", **values), image_size, num_classes=5)
    assert isinstance(spec, ResNetSpec)
    return spec


def test_the_default_is_resnet_20_with_the_published_size():
    """He et al.'s CIFAR ResNet-20 (0.27 M parameters); 1x1 projection shortcuts where the width changes."""
    spec = resnet()
    convs = spec.convs()
    assert len([c for c in convs if c.kernel_size == 3]) + 1 == 20  # 19 3x3 convs + the dense layer
    assert [c.name for c in convs if c.kernel_size == 1] == [
        "stage2_block1_shortcut_conv",
        "stage3_block1_shortcut_conv",
    ]
    assert spec.parameter_count() == 272_149
    assert spec.feature_size == 16  # 64 -> 64 -> 32 -> 16
    assert len(spec.state_names()) == 2 * 21  # moving mean and variance of 21 BatchNorms
    assert spec.kernel_names()[-1] == "logits/kernel" and len(spec.kernel_names()) == 22


def test_flops_per_image_by_hand():
    """Stem, one block per stage (stride 2 and a projection on stages 2, 3), the dense layer, at 8 px."""
    spec = resnet(8, stage_filters=[2, 4, 8], blocks_per_stage=1)
    stem = 2 * 8 * 8 * 9 * 3 * 2
    stage1 = 2 * (2 * 8 * 8 * 9 * 2 * 2)
    stage2 = 2 * 4 * 4 * 9 * 2 * 4 + 2 * 4 * 4 * 9 * 4 * 4 + 2 * 4 * 4 * 1 * 2 * 4
    stage3 = 2 * 2 * 2 * 9 * 4 * 8 + 2 * 2 * 2 * 9 * 8 * 8 + 2 * 2 * 2 * 1 * 4 * 8
    logits = 2 * 8 * 5
    assert spec.forward_flops_per_image() == stem + stage1 + stage2 + stage3 + logits
    assert spec.train_flops_per_image() == 3 * spec.forward_flops_per_image()


@pytest.mark.parametrize(
    "in_size, kernel, stride, padding, out_size",
    [(64, 3, 1, (1, 1), 64), (64, 3, 2, (0, 1), 32), (63, 3, 2, (1, 1), 32), (64, 1, 2, (0, 0), 32)],
)
def test_same_padding_is_tensorflows(in_size, kernel, stride, padding, out_size):
    conv = ConvSpec("c", 1, 1, kernel, stride, in_size)
    assert (conv.padding, conv.out_size) == (padding, out_size)


def test_initial_weights_are_keras_initializers():
    spec = resnet(16, blocks_per_stage=1)
    weights = initial_weights(spec, seed=0)
    assert list(weights) == list(spec.weight_shapes())
    for name, value in weights.items():
        assert value.shape == spec.weight_shapes()[name] and value.dtype == np.float32
        variable = name.split("/")[1]
        if variable == "kernel":
            fan = (
                np.prod(value.shape[:-2]) * (value.shape[-2] + value.shape[-1])
                if value.ndim == 4
                else sum(value.shape)
            )
            assert 0 < np.abs(value).max() <= np.sqrt(6 / fan)
        else:
            expected = 1.0 if variable in ("gamma", "moving_variance") else 0.0
            assert np.all(value == expected), name
    np.testing.assert_array_equal(initial_weights(spec, 0)["stem_conv/kernel"], weights["stem_conv/kernel"])
    assert not np.array_equal(initial_weights(spec, 1)["stem_conv/kernel"], weights["stem_conv/kernel"])


def test_resnet_config_and_its_checks(compose_config):
    run = validate(compose_config("model=resnet"))
    assert isinstance(run.model, ResNetConfig)
    assert (run.model.stage_filters, run.model.blocks_per_stage) == ([16, 32, 64], 3)
    assert (run.model.bn_momentum, run.model.bn_epsilon) == (0.99, 1e-3)  # Keras' BatchNormalization defaults
    with pytest.raises((ConfigCompositionException, ConfigKeyError)):
        compose_config("model=resnet", "model.dropout=0")  # the CNN's key: the ResNet has no dropout
    with pytest.raises(ConfigError, match="model.name='resnet' does not match the model chosen"):
        validate(compose_config("model=flowers_cnn", "model.name=resnet"))
    with pytest.raises(ConfigError, match=r"^model.bn_momentum must be in \[0, 1\), got 1.0$"):
        validate(compose_config("model=resnet", "model.bn_momentum=1.0"))
    # The spec says how small an image can be: each stage after the first halves it.
    with pytest.raises(ConfigError, match="too small for 6 ResNet stages .5 halve it.: use at least 32"):
        validate(compose_config("model=resnet", "model.stage_filters=[1,1,1,1,1,1]", "dataset.image_size=16"))


SMALL = ["model=resnet", "model.blocks_per_stage=1", "model.stage_filters=[4,8,16]"]


@pytest.fixture(scope="module")
def parity_sweep(tiny_photos, tmp_path_factory):
    """The README's parity sweep on tiny photos: both backends, sgd_l2 and adamw, one seed, and the report."""
    root = tmp_path_factory.mktemp("resnet")
    args = [
        "-m",
        "backend=keras,torch",
        "optimizer=sgd_l2,adamw",
        "seed=0",
        *SMALL,
        *TINY,
        "backend.threads=1",
    ]
    args += [
        f"dataset.path={tiny_photos}",
        f"dataset.cache_dir={root / 'cache'}",
        f"hydra.sweep.dir={root / 's'}",
    ]
    result = run_cli(*args, cwd=root, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "s"


def test_resnet_runs_on_both_backends_and_the_report_shows_their_parity(parity_sweep):
    results = [json.loads(p.read_text()) for p in sorted(parity_sweep.glob("*/result.json"))]
    assert [(r["backend"], r["optimizer"], r["status"]) for r in results] == [
        (b, o, "completed") for b in ("keras", "torch") for o in ("adamw", "sgd_l2")
    ]
    assert {r["config"]["model"]["name"] for r in results} == {"resnet"}
    assert {r["environment"].get("pool_relu_dropout") for r in results if r["backend"] == "torch"} == {None}
    parity = backend_parity(load_run_table(parity_sweep))
    assert sorted(parity["optimizer"]) == ["adamw", "sgd_l2"] and set(parity["epochs"]) == {2}
    assert set(parity["dropout"]) == {0.0}  # no dropout in the ResNet: comparable step by step
    assert (parity["loss_max_rel_diff"] < 1e-4).all() and (parity["val_loss_max_rel_diff"] < 1e-4).all(), (
        parity
    )
    assert (parity["val_accuracy_max_abs_diff"] == 0).all()
    report = (parity_sweep / "report" / "report.md").read_text()
    assert "## Backend parity" in report


def test_the_report_rebuilds_on_resnet_runs(parity_sweep, tmp_path):
    build_report([parity_sweep], tmp_path / "rebuilt")
    assert "Backend parity" in (tmp_path / "rebuilt" / "report.md").read_text()


@pytest.mark.parametrize("backend", ["keras", "torch"])
def test_throughput_times_the_resnet_on_both_backends(backend, tmp_path):
    """``python -m bench.throughput model=resnet``: the suite and its bare loop (stock BatchNorm layers)."""
    out = tmp_path / "run"
    result = run_throughput(
        f"backend={backend}", *SMALL, *THROUGHPUT_TINY, f"hydra.run.dir={out}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "throughput.json").read_text())
    assert (
        report["train_flops_per_image"]
        == resnet(16, blocks_per_stage=1, stage_filters=[4, 8, 16]).train_flops_per_image()
    )
    for key in ("suite", "bare_loop"):
        assert report[key]["n_steps"] == 3 and report[key]["images_per_s"] > 0


def test_every_model_schema_has_a_spec():
    from bench.architecture import SPECS
    from bench.config import MODEL_SCHEMAS

    assert SPECS.keys() == MODEL_SCHEMAS.keys()
