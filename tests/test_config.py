"""The real config composes, every group option loads, and bad values fail before any work starts."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError, ValidationError

from bench.config import AdamL2Config, AdamWConfig, SGDL2Config, register_configs, validate
from bench.errors import ConfigError
from tests.conftest import CONF_DIR, run_cli


def test_defaults_are_the_seed_blog(compose_config):
    run = validate(compose_config(shrink=False))
    assert (run.backend.name, run.optimizer.name) == ("keras", "sgd_l2")
    assert isinstance(run.optimizer, SGDL2Config)
    assert (run.optimizer.lr, run.optimizer.momentum, run.optimizer.l2) == (1e-3, 0.9, 1e-3)
    assert (run.dataset.image_size, run.train.batch_size, run.train.epochs) == (180, 32, 7)
    assert (run.model.filters, run.model.dense_units, run.model.dropout) == ([64, 64], 128, 0.2)
    assert (run.dataset.split_seed, run.dataset.val_fraction, run.seed) == (123, 0.2, 0)


@pytest.mark.parametrize(
    "option, schema, values",
    [
        ("sgd_l2", SGDL2Config, {"lr": 1e-3, "l2": 1e-3}),
        ("adam_l2", AdamL2Config, {"lr": 3e-4, "l2": 1e-3, "epsilon": 1e-7}),
        ("adamw", AdamWConfig, {"lr": 3e-4, "weight_decay": 1e-3, "epsilon": 1e-7}),
    ],
)
def test_optimizer_options_carry_the_blog_hyperparameters(compose_config, option, schema, values):
    run = validate(compose_config(f"optimizer={option}"))
    assert isinstance(run.optimizer, schema) and run.optimizer.name == option
    for key, value in values.items():
        assert getattr(run.optimizer, key) == value


@pytest.mark.parametrize("option", ["keras", "torch"])
def test_backend_options(compose_config, option):
    assert validate(compose_config(f"backend={option}", "backend.threads=1")).backend.name == option


@pytest.mark.parametrize("option", ["constant", "inverse_time", "cosine"])
def test_schedule_options(compose_config, option):
    assert validate(compose_config(f"schedule={option}")).schedule.name == option


def test_experiment_presets(compose_config):
    quick = validate(compose_config("experiment=quick", shrink=False))
    assert (quick.dataset.image_size, quick.dataset.max_per_class, quick.train.epochs) == (64, 100, 3)
    blog = validate(compose_config("experiment=seed_blog", shrink=False))
    assert (blog.dataset.image_size, blog.train.epochs, blog.model.dropout, blog.dataset.max_per_class) == (
        180,
        7,
        0.2,
        None,
    )


@pytest.mark.parametrize(
    "override, message",
    [
        ("optimizer.lr=0", "optimizer.lr must be > 0"),
        ("optimizer.lr=-1e-3", "optimizer.lr must be > 0"),
        ("model.dropout=1.0", "model.dropout must be in [0, 1)"),
        ("dataset.image_size=4", "dataset.image_size must be >= 8"),
        ("train.epochs=0", "train.epochs must be >= 1"),
        ("train.precision=fp16", "train.precision must be one of"),
        ("optimizer.momentum=1.5", "optimizer.momentum must be in [0, 1)"),
        ("report.margin=1.5", "report.margin must be in (0, 1)"),
        ("report.target=0", "report.target must be null or a val_accuracy in (0, 1]"),
    ],
)
def test_out_of_range_values_are_rejected(compose_config, override, message):
    with pytest.raises(
        ConfigError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")
    ):
        validate(compose_config(override))


def test_report_options_reach_the_report_callback(tiny_photos, cache_dir):
    register_configs()
    overrides = [f"dataset.path={tiny_photos}", "report.margin=0.03", "report.target=0.5"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    callback = cfg.hydra.callbacks.report
    assert (callback.margin, callback.loss_margin, callback.target) == (0.03, 0.02, 0.5)
    assert "report.margin" in cfg.hydra.job.config.override_dirname.exclude_keys  # not part of job names


@pytest.mark.parametrize("override", ["optimizer.lr=fast", "train.epochs=2.5", "dataset.image_size=big"])
def test_wrong_types_are_rejected_at_composition(compose_config, override):
    with pytest.raises((ConfigCompositionException, ValidationError)):
        compose_config(override)


def test_a_key_of_another_optimizer_is_rejected(compose_config):
    with pytest.raises((ConfigCompositionException, ConfigKeyError)):
        compose_config("optimizer=adamw", "optimizer.momentum=0.9")


def test_cli_rejects_bad_input_in_one_line_and_writes_nothing(tmp_path, tiny_photos):
    out, empty = tmp_path / "run", tmp_path / "empty"
    empty.mkdir()
    for args, expected in [
        (["optimizer=rmsprop"], "Could not find 'optimizer/rmsprop'"),
        (["optimizer.lr=-1"], "flowerbench: error: optimizer.lr must be > 0, got -1.0"),
        (["dataset.path=/does/not/exist"], "flowerbench: error: photo folder /does/not/exist does not exist"),
        ([f"dataset.path={empty}"], "holds no class folders"),
        (["model.filters=[4,4,4,4,4]"], "too small for 5 conv blocks"),
        (
            [f"hydra.run.dir={tiny_photos / 'daisy' / 'daisy_000.jpg' / 'run'}"],
            "cannot write the output directory",
        ),
    ]:
        run_dir = [] if any(a.startswith("hydra.run.dir") for a in args) else [f"hydra.run.dir={out}"]
        result = run_cli(*args, *run_dir, "dataset.image_size=16", cwd=tmp_path)
        assert result.returncode != 0, result.stderr
        assert expected in result.stderr
        assert "Traceback" not in result.stderr
        assert not out.exists(), f"{args} left {list(out.iterdir())}"


def test_cli_help_lists_groups_and_cfg_job_prints_config(tmp_path):
    help_text = run_cli("--help", cwd=tmp_path).stdout
    for group in (
        "backend: keras, torch",
        "optimizer: adam_l2, adamw, sgd_l2",
        "experiment: lr_wd_grid_adam_l2, lr_wd_grid_adamw, lr_wd_grid_sgd_l2, quick, seed_blog",
    ):
        assert group in help_text
    job = run_cli("--cfg", "job", "optimizer=adamw", cwd=tmp_path)
    assert job.returncode == 0 and "weight_decay: 0.001" in job.stdout
