"""The real config composes, every group option loads, and bad values fail before any work starts."""

from __future__ import annotations

import math

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from bench.config import (
    GROUP_SCHEMAS,
    ConstantScheduleConfig,
    CosineScheduleConfig,
    InverseTimeScheduleConfig,
    load_option,
    register_configs,
    validate,
)
from bench.errors import ConfigError
from bench.optimizers.adam_l2 import AdamL2Config
from bench.optimizers.adamw import AdamWConfig
from bench.optimizers.sgd_l2 import SGDL2Config
from tests.conftest import CONF_DIR, run_cli

# Every value of `python -m bench --cfg job --resolve` with no overrides (as of the seed blog), except the
# locations of the photos and the cache, which the tests set.
SEED_BLOG_CONFIG = {
    "backend": {"name": "keras", "threads": None, "device": "auto"},
    "optimizer": {"name": "sgd_l2", "lr": 1e-3, "momentum": 0.9, "l2": 1e-3},
    "dataset": {
        "name": "tf_flowers",
        "source": "auto",
        "tfds_name": "tf_flowers:3.0.1",
        "splits": "suite",
        "data_dir": None,
        "image_size": 180,
        "max_per_class": None,
        "val_fraction": 0.2,
        "test_fraction": 0.0,
        "split_seed": 123,
    },
    "model": {
        "name": "flowers_cnn",
        "filters": [64, 64],
        "kernel_size": 3,
        "dense_units": 128,
        "dropout": 0.2,
    },
    "schedule": {"name": "constant"},
    # The default workload (conf/workload/flowers_cnn.yaml): the rows of its size table are its own and the
    # size experiment=suite runs; the full one is what the keys above and below hold.
    "workload": {
        "name": "tf_flowers/flowers_cnn",
        "size": "full",
        "sizes": {
            "full": {"image_size": 180, "max_per_class": None, "epochs": 7, "batch_size": 32, "target": None},
            "reduced": {
                "image_size": 64,
                "max_per_class": 200,
                "epochs": 5,
                "batch_size": 32,
                "target": None,
            },
        },
        "target": None,
    },
    "train": {
        "epochs": 7,
        "batch_size": 32,
        "precision": "fp32",
        "allow_emulated_bf16": False,
        "stop_epoch": None,
        "continue_from": None,
    },  # fmt: skip
    "seed": 0,
    "force": False,
    "report": {
        "enabled": True,
        "metrics": None,
        "group_by": None,
        "compare": None,
        "margin": 0.01,
        "loss_margin": 0.02,
        "target": None,
    },
    "protocol": {
        "budget": 16,
        "tuner": "successive_halving",
        "halving": {"eta": 3, "min_epochs": 1, "promote_by": "val_ce_loss", "keep_checkpoints": False},
        "near_tie_photos": 1.0,
        "tuning_seeds": [0],
        "seeds_per_round": 3,
        "max_seeds": 9,
        "first_confirmation_seed": 1000,
        "sampler_seed": 0,
        "spending": "pocock",
        "simulation_reps": 2000,
        "spaces": {},
    },
    "logger": {"tensorboard": None, "mlflow": None},
}


def test_defaults_are_the_seed_blog(compose_config):
    cfg = compose_config(shrink=False)
    run = validate(cfg)
    assert (run.backend.name, run.optimizer.name) == ("keras", "sgd_l2")
    assert isinstance(run.optimizer, SGDL2Config) and isinstance(run.schedule, ConstantScheduleConfig)
    assert (run.optimizer.lr, run.optimizer.momentum, run.optimizer.l2) == (1e-3, 0.9, 1e-3)
    assert (run.dataset.image_size, run.train.batch_size, run.train.epochs) == (180, 32, 7)
    assert (run.model.filters, run.model.dense_units, run.model.dropout) == ([64, 64], 128, 0.2)
    assert (run.dataset.split_seed, run.dataset.val_fraction, run.seed) == (123, 0.2, 0)
    # Every value --cfg job prints, keys and order included: the values moved from the schemas into the YAML.
    composed = OmegaConf.to_container(cfg, resolve=True)
    for location in ("path", "cache_dir"):
        del composed["dataset"][location]
    assert composed == SEED_BLOG_CONFIG
    assert list(composed) == list(SEED_BLOG_CONFIG)
    assert {group: list(composed[group]) for group in GROUP_SCHEMAS} == {
        group: list(SEED_BLOG_CONFIG[group]) for group in GROUP_SCHEMAS
    }


@pytest.mark.parametrize(
    "option, schema, values",
    [
        ("sgd_l2", SGDL2Config, {"lr": 1e-3, "momentum": 0.9, "l2": 1e-3}),
        ("adam_l2", AdamL2Config, {"lr": 3e-4, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7, "l2": 1e-3}),
        (
            "adamw",
            AdamWConfig,
            {"lr": 3e-4, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7, "weight_decay": 1e-3},
        ),
    ],
)
def test_optimizer_options_carry_the_blog_hyperparameters(compose_config, option, schema, values):
    run = validate(compose_config(f"optimizer={option}"))
    assert isinstance(run.optimizer, schema) and run.optimizer.name == option
    assert vars(run.optimizer) == {"name": option, **values}  # every value, and no other key


@pytest.mark.parametrize("option", ["keras", "torch"])
def test_backend_options(compose_config, option):
    backend = validate(compose_config(f"backend={option}")).backend
    # threads: null (all cores) outside a parallel launcher, which shares the cores out through the resolver
    assert (backend.name, backend.threads, backend.device) == (option, None, "auto")
    assert validate(compose_config(f"backend={option}", "backend.threads=1")).backend.threads == 1


@pytest.mark.parametrize(
    "option, schema, values",
    [
        ("constant", ConstantScheduleConfig, {}),
        ("inverse_time", InverseTimeScheduleConfig, {"decay_rate": 1e-3}),
        ("cosine", CosineScheduleConfig, {"alpha": 0.0}),
    ],
)
def test_schedule_options(compose_config, option, schema, values):
    schedule = validate(compose_config(f"schedule={option}")).schedule
    assert isinstance(schedule, schema) and vars(schedule) == {"name": option, **values}


@pytest.mark.parametrize(
    "overrides",
    [
        ("schedule=cosine", "schedule.decay_rate=0.5"),
        ("schedule=inverse_time", "schedule.alpha=0.1"),
        ("schedule.alpha=0.1",),  # the default schedule, constant, has no parameter
    ],
)
def test_a_key_of_another_schedule_is_rejected(compose_config, overrides):
    with pytest.raises((ConfigCompositionException, ConfigKeyError)):
        compose_config(*overrides)


def test_a_schedule_name_that_contradicts_the_option_is_rejected(compose_config):
    with pytest.raises(ConfigError, match="schedule.name='cosine' does not match the schedule chosen"):
        validate(compose_config("schedule.name=cosine"))


@pytest.mark.parametrize(
    "option, key",
    [
        ("optimizer=sgd_l2", "optimizer.lr"),
        ("optimizer=sgd_l2", "optimizer.momentum"),
        ("optimizer=sgd_l2", "optimizer.l2"),
        ("optimizer=adam_l2", "optimizer.beta_1"),
        ("optimizer=adam_l2", "optimizer.beta_2"),
        ("optimizer=adam_l2", "optimizer.epsilon"),
        ("optimizer=adam_l2", "optimizer.l2"),
        ("optimizer=adamw", "optimizer.weight_decay"),
        ("schedule=inverse_time", "schedule.decay_rate"),
        ("schedule=cosine", "schedule.alpha"),
        ("model=flowers_cnn", "model.dropout"),
        ("dataset=tf_flowers", "dataset.val_fraction"),
    ],
)
@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
def test_non_finite_hyperparameters_are_rejected(compose_config, option, key, value):
    with pytest.raises(ConfigError, match=rf"^{key} must be .*, got {value}$"):
        validate(compose_config(option, f"{key}={value}"))


@pytest.mark.parametrize(
    "group, option",
    [
        (group, option)
        for group, schemas in GROUP_SCHEMAS.items()
        if isinstance(schemas, dict)
        for option in schemas
    ]
    + [("backend", "keras"), ("backend", "torch"), ("dataset", "tf_flowers"), ("model", "flowers_cnn")],
)
def test_load_option_gives_the_values_hydra_composes(compose_config, group, option):
    composed = getattr(validate(compose_config(f"{group}={option}", shrink=False)), group)
    loaded = load_option(
        group,
        option,
        **({"path": composed.path, "cache_dir": composed.cache_dir} if group == "dataset" else {}),
    )
    assert loaded == composed


def test_load_option_checks_values_as_the_command_line_does():
    assert load_option("optimizer", "adamw", lr=1e-3).lr == 1e-3
    assert math.isclose(load_option("schedule", "inverse_time", decay_rate=0.5).decay_rate, 0.5)
    for option, values, message in [
        ("cosine", {"decay_rate": 0.5}, "schedule=cosine: Key 'decay_rate' not in 'CosineScheduleConfig'"),
        (
            "inverse_time",
            {"decay_rate": "fast"},
            "schedule=inverse_time: Value 'fast' of type 'str' could not be converted to Float",
        ),
        ("inverse_time", {"decay_rate": math.inf}, "schedule.decay_rate must be finite and >= 0, got inf"),
        ("linear", {}, "no config option schedule=linear"),
    ]:
        with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
            load_option("schedule", option, **values)


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


@pytest.mark.parametrize(
    "override, message",
    [
        ("throughput.reference_backend=jax", "throughput.reference_backend must be null or one of"),
        ("throughput.reference_precision=fp16", "throughput.reference_precision must be null or one of"),
    ],
)
def test_throughputs_own_settings_are_checked_by_its_app(tiny_photos, override, message):
    """``throughput.*`` belongs to ``python -m bench.throughput`` (its schema is in bench/throughput.py): that app
    checks it, and a training run has no such section."""
    from bench.throughput import ThroughputRunConfig  # registers this app's root schema

    try:
        register_configs(root=ThroughputRunConfig)
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name="config", overrides=[f"dataset.path={tiny_photos}", override])
        with pytest.raises(ConfigError, match=message):
            validate(cfg)
    finally:
        register_configs()  # the training app's schema again, for the tests that follow
    # Hydra: no such key in a run's config
    with (
        initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"),
        pytest.raises(Exception, match="throughput"),
    ):
        compose(config_name="config", overrides=[f"dataset.path={tiny_photos}", override])


def test_report_options_reach_the_report_callback(tiny_photos, cache_dir):
    register_configs()
    overrides = [f"dataset.path={tiny_photos}", "report.margin=0.03", "report.target=0.5"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    options = cfg.hydra.callbacks.report.options  # the whole report node (tests/test_report_options.py)
    assert (options.margin, options.loss_margin, options.target) == (0.03, 0.02, 0.5)
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
        (["optimizer=adagrad"], "Could not find 'optimizer/adagrad'"),
        (["optimizer.lr=-1"], "flowerbench: error: optimizer.lr must be > 0, got -1.0"),
        (["optimizer.lr=inf"], "flowerbench: error: optimizer.lr must be finite and > 0, got inf"),
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
        "optimizer: adam_l2, adamw, lion, nadam, rmsprop, sgd_l2, sgdw",
        "experiment: fair_comparison, lr_wd_grid, quick, seed_blog",
    ):
        assert group in help_text
    job = run_cli("--cfg", "job", "optimizer=adamw", cwd=tmp_path)
    assert job.returncode == 0 and "weight_decay: 0.001" in job.stdout
