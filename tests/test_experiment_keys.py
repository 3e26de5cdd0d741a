"""One policy says what is part of the experiment (bench/experiment.py); every consumer follows it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from bench import results
from bench.config import EXPERIMENT_KEYS, RunConfig, register_configs, validate
from bench.experiment import ExperimentKeys, Role, declared, flatten
from bench.report import groups
from bench.report.groups import choose_grouping
from bench.report.load import RunTable
from bench.report.parity import _pair_keys
from bench.runner import is_finished, run_experiment
from bench.search import load_settings, tuned_keys
from tests.conftest import CONF_DIR

BENCH = Path(__file__).resolve().parent.parent / "bench"


def composed(*overrides: str):
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=True)


def test_job_directory_names_leave_out_exactly_the_policys_keys():
    cfg = composed()
    exclude_keys = list(cfg.hydra.job.config.override_dirname.exclude_keys)  # ${job_name_exclusions:}
    config = OmegaConf.to_container(cfg, resolve=False)
    del config["hydra"]
    keys = flatten(config)
    assert len(exclude_keys) == len(set(exclude_keys))
    assert sorted(exclude_keys) == sorted(EXPERIMENT_KEYS.job_name_exclusions())
    # A workload's size table is an open dict (its rows' keys are the workload's, not the schema's): the table
    # is excluded by name, an override of one of its cells (workload.sizes.reduced.epochs=3) names its job.
    in_open_table = {key for key in keys if key.startswith("workload.sizes.")}
    assert "workload.sizes" in exclude_keys
    assert {key for key in keys if EXPERIMENT_KEYS.is_ignored(key)} - in_open_table <= set(exclude_keys)
    assert not {key for key in keys if not EXPERIMENT_KEYS.is_ignored(key)} & set(exclude_keys)
    assert {"dataset.path", "force", "report.margin", "logger", "logger.mlflow"} <= set(exclude_keys)
    assert "backend.threads" not in exclude_keys  # a thread sweep must keep its jobs apart


def test_job_directory_names_follow_the_declarations(tmp_path):
    """The names Hydra gives job directories leave out a location and an option, keep an experiment key."""
    cfg = composed("optimizer.lr=0.01", f"dataset.cache_dir={tmp_path}", "force=true", "report.margin=0.02")
    assert cfg.hydra.job.override_dirname == "optimizer.lr=0.01"


@dataclass
class _Extra:
    mirror: Optional[str] = declared(Role.LOCATION, default=None)
    workers: int = declared(Role.SPEED, default=1)
    depth: int = 3


@dataclass
class _ExtendedRun(RunConfig):
    """A run schema with a new section, as a new feature would add one: roles declared on its fields only."""

    extra: _Extra = field(default_factory=_Extra)
    notes: str = declared(Role.OPTION, default="")


def test_a_new_setting_declared_with_its_role_is_resumed_and_grouped_right(monkeypatch):
    keys = ExperimentKeys.from_schema(_ExtendedRun)
    assert keys.role("extra.mirror") is Role.LOCATION
    assert keys.role("extra.workers") is Role.SPEED
    assert keys.role("extra.depth") is Role.EXPERIMENT
    assert keys.role("notes") is Role.OPTION
    assert {"extra.mirror", "notes"} <= set(keys.job_name_exclusions())
    assert not {"extra.workers", "extra.depth"} & set(keys.job_name_exclusions())
    base = {"optimizer": {"lr": 0.1}, "extra": {"mirror": "/a", "workers": 1, "depth": 3}, "notes": ""}
    moved = json.loads(json.dumps(base))
    moved["extra"] |= {"mirror": "/b", "workers": 8}
    moved["notes"] = "rerun"
    assert keys.same_experiment(base, moved)  # resume skips it: only a location, a speed and an option moved
    deeper = json.loads(json.dumps(base))
    deeper["extra"]["depth"] = 4
    assert not keys.same_experiment(base, deeper)
    frame = pd.DataFrame(
        {"backend": "keras", "optimizer": "adamw", "seed": [0, 1], "extra.mirror": ["/a", "/b"],
         "extra.workers": [1, 8], "extra.depth": [3, 3], "run_dir": ["r0", "r1"], "status": "completed",
         "epoch": 1}
    )  # fmt: skip
    table = RunTable(frame=frame, settings=["extra.mirror", "extra.workers", "seed"], constants={})
    monkeypatch.setattr(groups, "EXPERIMENT_KEYS", keys)  # as if _ExtendedRun were the run schema
    grouping = choose_grouping(table)
    assert grouping.columns == ["backend", "optimizer"]  # the mirror and the workers split no arm
    assert grouping.timing_columns == ["backend", "optimizer", "extra.workers"]


@pytest.mark.parametrize(
    "key, role",
    [
        ("optimizer.lr", Role.EXPERIMENT),
        ("seed", Role.EXPERIMENT),
        ("backend.device", Role.EXPERIMENT),
        ("dataset.source", Role.EXPERIMENT),
        ("dataset.image_size", Role.EXPERIMENT),
        ("forced", Role.EXPERIMENT),  # a prefix of a name is not the option
        ("reporting.level", Role.EXPERIMENT),
        ("dataset.path", Role.LOCATION),
        ("dataset.data_dir", Role.LOCATION),
        ("dataset.cache_dir", Role.LOCATION),
        ("backend.threads", Role.SPEED),
        ("force", Role.OPTION),
        ("report.margin", Role.OPTION),
        ("++report.margin", Role.OPTION),  # as Hydra overrides may spell it
        ("report", Role.OPTION),
        ("logger.mlflow.tracking_uri", Role.OPTION),
        ("protocol.budget", Role.OPTION),
    ],
)
def test_each_key_has_one_role(key, role):
    assert EXPERIMENT_KEYS.role(key) is role
    assert EXPERIMENT_KEYS.is_experiment(key) == (role is Role.EXPERIMENT)
    assert EXPERIMENT_KEYS.is_timing_only(key) == (role is Role.SPEED)
    assert EXPERIMENT_KEYS.is_ignored(key) == (role in (Role.LOCATION, Role.OPTION))


def test_no_module_keeps_its_own_copy_of_the_policy():
    # dotted: a bare "report" is also a folder
    named = [*EXPERIMENT_KEYS.keys_with(Role.LOCATION), *EXPERIMENT_KEYS.keys_with(Role.SPEED)]
    literal = re.compile("|".join(rf"""["']{re.escape(key)}["']""" for key in named))
    copies = [
        f"{path.relative_to(BENCH.parent)}: {match.group()}"
        for path in sorted(BENCH.rglob("*.py"))
        if path.name != "config.py"  # where the roles are declared
        for match in literal.finditer(path.read_text(encoding="utf-8"))
    ]
    assert copies == []


def finished_result(config: dict, source: str = "folder", status: str = "completed") -> dict:
    return {"status": status, "config": config, "data": {"source": source}}


def test_resume_compares_experiment_keys_and_the_source_of_the_photos():
    config = {
        "optimizer": {"name": "adamw", "lr": 3e-4},
        "dataset": {"path": "/old/photos", "cache_dir": "/old/cache", "image_size": 16},
        "backend": {"name": "keras", "threads": 1},
        "seed": 0,
        "force": False,
        "report": {"margin": 0.01},
    }
    moved = json.loads(json.dumps(config))
    moved["dataset"] |= {"path": "/new/photos", "cache_dir": "/new/cache"}
    moved["backend"]["threads"] = 4
    moved |= {"force": True, "report": {"margin": 0.05}}
    assert is_finished(finished_result(config), moved, "folder")
    assert is_finished(finished_result(config, status="diverged"), moved, "folder")
    assert not is_finished(finished_result(config, status="failed"), moved, "folder")
    assert not is_finished(None, moved, "folder")
    other_lr = json.loads(json.dumps(config))
    other_lr["optimizer"]["lr"] = 1e-3
    assert not is_finished(finished_result(config), other_lr, "folder")
    # dataset.source=auto without a path reads tfds, whose split differs from the folder's
    assert not is_finished(finished_result(config), moved, "tfds")


def test_resume_skips_a_finished_job_whose_photos_moved(compose_config, tmp_path):
    cfg = compose_config()  # the tiny photos, where they are now
    run = validate(cfg)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    before_move = json.loads(json.dumps(resolved))
    before_move["dataset"]["path"] = "/where/the/photos/were"
    previous = results.RunResult(
        status=results.COMPLETED,
        backend=run.backend.name,
        optimizer=run.optimizer.name,
        seed=run.seed,
        epochs_planned=run.train.epochs,
        data=results.DataInfo(source="folder", train_images=24, val_images=6, num_classes=5, skipped_files=0),
        config=before_move,
    )
    results.write_result(tmp_path, previous)
    assert run_experiment(run, tmp_path, resolved, []) == previous.to_dict()
    assert not (tmp_path / results.METRICS_FILE).exists()  # nothing was trained


def test_report_groups_and_pairs_by_experiment_keys_only():
    runs = [
        ("keras", "adamw", 0, "/a", 1, False),
        ("keras", "adamw", 1, "/b", 2, True),
        ("torch", "adamw", 0, "/a", 1, False),
        ("torch", "sgd_l2", 0, "/b", 2, True),
    ]
    columns = ["backend", "optimizer", "seed", "dataset.path", "backend.threads", "force"]
    frame = pd.DataFrame(runs, columns=columns).assign(
        run_dir=[f"run{i}" for i in range(len(runs))],
        status="completed",
        epoch=1,
        **{"backend.device": ["gpu", "gpu", "cpu", "cpu"]},
    )
    settings = ["backend.device", "backend.threads", "dataset.path", "force", "seed"]
    table = RunTable(frame=frame, settings=settings, constants={})
    grouping = choose_grouping(table)
    assert grouping.columns == ["backend", "optimizer", "backend.device"]
    assert grouping.timing_columns == [*grouping.columns, "backend.threads"]
    assert _pair_keys(table) == ["optimizer", "seed"]  # parity pairs a GPU run with a CPU run


def write_search_job(sweep: Path, name: str, seed: int, overrides: list[str], val_accuracy: float) -> None:
    result = results.RunResult(
        status=results.COMPLETED,
        backend="keras",
        optimizer="sgd_l2",
        seed=seed,
        epochs_planned=1,
        overrides=[*overrides, f"seed={seed}"],
    )
    result.final["val_accuracy"] = val_accuracy
    (sweep / name).mkdir(parents=True)
    results.write_result(sweep / name, result)


def test_search_tells_settings_apart_by_experiment_keys_only(tmp_path):
    write_search_job(tmp_path, "a", 0, ["dataset.path=/old", "optimizer.lr=0.1"], 0.5)
    write_search_job(tmp_path, "b", 1, ["dataset.path=/new", "optimizer.lr=0.1", "force=true"], 0.7)
    write_search_job(tmp_path, "c", 0, ["dataset.path=/new", "optimizer.lr=0.2", "backend.threads=2"], 0.6)
    settings = {s.overrides["optimizer.lr"]: s for s in load_settings(tmp_path)}
    assert sorted(settings) == ["0.1", "0.2"]
    assert settings["0.1"].seeds == [0, 1] and settings["0.1"].mean == pytest.approx(0.6)
    assert settings["0.1"].overrides == {"dataset.path": "/old", "optimizer.lr": "0.1"}  # force is dropped
    assert tuned_keys(list(settings.values())) == ["optimizer.lr"]  # paths and threads are not tuned


def test_a_job_directory_name_too_long_for_the_file_system_is_cut_and_hashed():
    """Many overrides (a fair comparison on the ResNet) made a name over 255 bytes: OSError, File name too long."""
    many = [
        "optimizer.lr=0.001", "model=resnet", "model.blocks_per_stage=1", "dataset.max_per_class=30",
        "train.batch_size=16",
        "backend.threads=1", "dataset.image_size=16", "optimizer=adamw", "optimizer.weight_decay=0.00116",
        "train.epochs=2", "seed=1000", "experiment=fair_comparison", "schedule=cosine", "schedule.alpha=0.01",
    ]  # fmt: skip
    names = {composed(*many, f"model.bn_epsilon={eps}").hydra.sweep.subdir for eps in (1e-3, 2e-3)}
    again = composed(*many, "model.bn_epsilon=0.001").hydra.sweep.subdir
    assert len(names) == 2 and again in names  # unique, and the same on a rerun (resume finds it)
    for name in names:
        assert len(name.encode()) <= 255 and "+" in name
        assert name.startswith("backend.threads=1,dataset.image_size=16,")  # whole overrides, then the hash
    assert composed("optimizer.lr=0.01").hydra.sweep.subdir == "optimizer.lr=0.01"  # short names unchanged


def test_a_run_recorded_before_a_key_existed_counts_as_what_its_absence_meant(compose_config):
    """Runs finished before model= had a second option record no model.name: they trained the CNN, so a resume
    skips them (declared once, on RunConfig.model), and a ResNet job is still another experiment."""
    cnn = OmegaConf.to_container(compose_config(), resolve=True)
    before = json.loads(json.dumps(cnn))
    del before["model"]["name"]
    assert EXPERIMENT_KEYS.same_experiment(before, cnn)
    assert is_finished(finished_result(before), cnn, "folder")
    resnet = OmegaConf.to_container(compose_config("model=resnet"), resolve=True)
    assert not EXPERIMENT_KEYS.same_experiment(before, resnet)
    other = json.loads(json.dumps(before))
    other["model"]["dense_units"] = 64
    assert not EXPERIMENT_KEYS.same_experiment(other, cnn)
