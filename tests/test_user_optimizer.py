"""Optimizers a user brings: a config file with a ``_target_`` per backend is all it takes (README, "Add your
own optimizer").

The user's package here is written by the test (sign descent, ``w <- w - lr * sign(g)``, one class per
framework) and reached through PYTHONPATH and ``hydra.searchpath``, as a user's own package would be.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from bench.architecture import CNNSpec, initial_weights
from bench.backend import build_trainer
from bench.config import UserOptimizerConfig, validate
from bench.errors import ConfigError
from tests.conftest import TINY, compose_run, run_cli

TORCH_SIGN = '''
import torch


class SignSGD(torch.optim.Optimizer):
    """w <- w - lr * sign(g)."""

    def __init__(self, params, lr=1e-3):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(torch.sign(p.grad), alpha=-group["lr"])
'''
KERAS_SIGN = '''
import keras


class SignSGD(keras.optimizers.Optimizer):
    """w <- w - lr * sign(g)."""

    def __init__(self, learning_rate=1e-3, name="sign_sgd", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        lr = keras.ops.cast(learning_rate, variable.dtype)
        self.assign_sub(variable, keras.ops.multiply(keras.ops.sign(gradient), lr))
'''
SIGN_YAML = """
name: sign_sgd
lr: 1.0e-3
l2: 1.0e-3
torch: {_target_: my_optim.torch_sign.SignSGD}
keras: {_target_: my_optim.keras_sign.SignSGD}
"""


@pytest.fixture
def user_package(tmp_path: Path) -> dict[str, str]:
    """my_optim (one module per framework) on PYTHONPATH, and conf_user/optimizer/sign_sgd.yaml."""
    package = tmp_path / "src" / "my_optim"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "torch_sign.py").write_text(textwrap.dedent(TORCH_SIGN))
    (package / "keras_sign.py").write_text(textwrap.dedent(KERAS_SIGN))
    conf = tmp_path / "conf_user" / "optimizer"
    conf.mkdir(parents=True)
    (conf / "sign_sgd.yaml").write_text(SIGN_YAML)  # no defaults line: the schema is applied on validation
    return {
        "PYTHONPATH": str(tmp_path / "src"),
        "searchpath": f"hydra.searchpath=[file://{tmp_path / 'conf_user'}]",
    }


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_a_users_optimizer_trains_on_each_backend_from_its_config_file_alone(
    backend, user_package, tiny_photos, tmp_path
):
    out = tmp_path / "run"
    result = run_cli(
        "optimizer=sign_sgd", f"backend={backend}", "schedule=cosine", user_package["searchpath"],
        f"dataset.path={tiny_photos}", f"dataset.cache_dir={tmp_path / 'cache'}", *TINY, f"hydra.run.dir={out}",
        cwd=tmp_path, env={"PYTHONPATH": user_package["PYTHONPATH"]},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    saved = json.loads((out / "result.json").read_text())
    assert saved["status"] == "completed" and saved["optimizer"] == "sign_sgd"
    assert saved["backend_parity"] is False  # each backend ran its own class
    assert saved["environment"]["optimizer_class"] == f"my_optim.{backend}_sign.SignSGD"
    assert (
        saved["final"]["loss"] > saved["final"]["ce_loss"]
    )  # optimizer.l2 = 1e-3: the penalty is in the loss
    lrs = [json.loads(line)["lr"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert lrs[-1] < lrs[0] < 1e-3  # the cosine schedule drives the user's optimizer too


PLAIN_SGD_YAML = """
name: plain_sgd
lr: 0.1
l2: 0.05
torch: {_target_: torch.optim.SGD}
keras: {_target_: keras.optimizers.SGD}
"""


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_l2_reaches_a_users_optimizer_through_the_loss(backend, tmp_path):
    """The stock SGD class as a user's optimizer, with optimizer.l2: the same step as the built-in sgd_l2
    (momentum 0), whose L2 each backend applies its own way (torch: coupled weight_decay = 2 * l2)."""
    (tmp_path / "optimizer").mkdir()
    (tmp_path / "optimizer" / "plain_sgd.yaml").write_text(PLAIN_SGD_YAML)
    common = [f"backend={backend}", "backend.threads=1", "dataset.image_size=12", "model.filters=[4,4]",
              "model.dense_units=8", "model.dropout=0", "seed=0", f"hydra.searchpath=[file://{tmp_path}]"]  # fmt: skip
    builtin = compose_run(
        *common, "optimizer=sgd_l2", "optimizer.lr=0.1", "optimizer.momentum=0", "optimizer.l2=0.05"
    )
    users = compose_run(*common, "optimizer=plain_sgd")
    assert isinstance(users.optimizer, UserOptimizerConfig)
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (8, 12, 12, 3), dtype=np.uint8), rng.integers(0, 5, 8)
    spec = CNNSpec.from_config(builtin.model, image_size=12, num_classes=5)
    initial = initial_weights(spec, 0)
    weights = []
    for run in (builtin, users):
        trainer = build_trainer(run, spec, steps_per_epoch=2, initial_weights=initial)
        trainer.train_epoch([(images, labels), (images, labels)])
        weights.append(trainer.get_weights())
    for name, value in weights[0].items():
        assert np.abs(value - initial[name]).max() > 1e-4, name
        np.testing.assert_allclose(weights[1][name], value, rtol=0, atol=1e-6, err_msg=name)


def test_an_optimizer_one_backend_lacks_is_one_clear_error():
    """conf/optimizer/lion.yaml has a keras entry only (torch 2.13 has no Lion)."""
    assert (
        compose_run("optimizer=lion", "backend=keras").optimizer.keras["_target_"] == "keras.optimizers.Lion"
    )
    with pytest.raises(ConfigError, match=r"'lion' has no torch entry \(it has: keras\).*backend=keras"):
        compose_run("optimizer=lion", "backend=torch")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["optimizer.torch._target_=torch.optim.NAdamm"], "cannot be imported: Are you sure that 'NAdamm'"),
        (["optimizer.torch._target_=NAdam"], "must be a dotted path to a class"),
        (["+optimizer.torch.betass=[0.9,0.99]"], "NAdam does not take these arguments"),
        (["+optimizer.torch.lr=0.1"], "set optimizer.lr instead"),
        (["optimizer.name=adamw"], "is a built-in optimizer's name"),
    ],
)
def test_a_bad_entry_fails_in_one_line_before_any_run_starts(overrides, message, tmp_path):
    out = tmp_path / "run"
    result = run_cli(
        "optimizer=nadam", "backend=torch", *overrides, *TINY, f"hydra.run.dir={out}", cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("flowerbench: error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.stderr and not out.exists()


def test_a_users_yaml_without_the_schema_still_rejects_unknown_keys(compose_config):
    """A user's YAML need not name the schema (defaults line): validation applies it, unknown keys included."""
    cfg = compose_config("optimizer=nadam")
    plain = OmegaConf.to_container(cfg.optimizer)
    plain["momentun"] = 0.9
    OmegaConf.set_struct(cfg, False)
    cfg.optimizer = OmegaConf.create(plain)  # untyped, as a YAML without the defaults line composes
    with pytest.raises(ConfigError, match="optimizer=nadam: Key 'momentun' not in 'UserOptimizerConfig'"):
        validate(cfg)
