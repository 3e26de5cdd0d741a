"""flowerbench's Optuna search (hydra_plugins/flowerbench/optuna_sweeper.py): tiny searches in a subprocess, as a
user runs them, read back through Optuna's own storage; the search space, samplers and pruners as configured.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser

from bench import pruning, results
from bench.config import register_configs
from bench.search import load_settings, summary
from tests.conftest import CONF_DIR, crash_seed_1_env, run_cli

optuna = pytest.importorskip("optuna", reason="needs the `scale` extra")

from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from hydra_plugins.flowerbench.optuna_sweeper import distribution  # noqa: E402

TINY_ONE_EPOCH = ["dataset.image_size=16", "train.batch_size=8", "train.epochs=1"]
ADAMW = "hydra/sweeper=lr_wd_search_adamw"


def search_args(photos: Path, root: Path, *extra: str, epochs: int = 1) -> list[str]:
    return [
        "-m", ADAMW, "dataset.image_size=16", "train.batch_size=8", f"train.epochs={epochs}",
        f"dataset.path={photos}", f"dataset.cache_dir={root / 'cache'}", f"hydra.sweep.dir={root / 'sweep'}",
        *extra,
    ]  # fmt: skip


def trials_on_disk(sweep: Path) -> list[dict]:
    return [results.read_result(path.parent) for path in results.result_files(sweep)]


def load_study(sweep: Path):
    storage = pruning.open_storage(pruning.default_storage(sweep))
    return optuna.load_study(study_name="flowerbench", storage=storage)


def test_a_search_records_every_trial_in_its_study_and_ranks_them(tiny_photos, tmp_path):
    args = search_args(tiny_photos, tmp_path, "hydra.sweeper.n_trials=3")
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = tmp_path / "sweep"
    trials = trials_on_disk(sweep)
    assert len(trials) == 3 and {t["optimizer"] for t in trials} == {"adamw"}
    assert len({t["config"]["optimizer"]["weight_decay"] for t in trials}) == 3  # three sampled settings
    verdict = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert verdict["best_value"] == max(t["final"]["val_accuracy"] for t in trials)
    assert set(verdict["best_params"]) == {"optimizer.lr", "optimizer.weight_decay"}
    assert verdict["trials"]["complete"] == 3

    study = load_study(sweep)  # the study, in the sweep folder, holds what the jobs' files say
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    by_decay = {t["config"]["optimizer"]["weight_decay"]: t for t in trials}
    for trial in study.trials:
        run = by_decay[trial.params["optimizer.weight_decay"]]
        assert trial.value == run["final"]["val_accuracy"] and trial.intermediate_values == {1: trial.value}

    text = summary(sweep, n_seeds=3)
    assert "3 settings, 3 runs (0 failed)" in text and "varied: optimizer.lr, optimizer.weight_decay" in text
    commands = [line.strip() for line in text.splitlines() if line.strip().startswith("python -m bench -m")]
    assert len(commands) == 2 and all("seed=1000,1001,1002" in c for c in commands)  # fresh, as a protocol's
    assert "optimizer.weight_decay=0.001" in commands[1]  # the defaults, next to the best setting
    assert (sweep / "report" / "report.md").exists()

    before = {path: path.read_bytes() for path in results.result_files(sweep)}
    rerun = run_cli(*args, cwd=tmp_path)  # the study is complete: nothing runs, nothing changes
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "3 of 3 trials held, 0 to run" in rerun.stdout + rerun.stderr
    assert {path: path.read_bytes() for path in before} == before

    more = run_cli(*args[:-1], "hydra.sweeper.n_trials=4", cwd=tmp_path)  # a bigger budget extends it
    assert more.returncode == 0, more.stderr[-3000:]
    assert len(trials_on_disk(sweep)) == 4 and len(load_study(sweep).trials) == 4
    assert {path: path.read_bytes() for path in before} == before


def test_a_rerun_asks_failed_and_cut_short_trials_again(tiny_photos, tmp_path):
    """With the QMC sampler, whose sequence continues from the study."""
    args = search_args(
        tiny_photos, tmp_path, "hydra/sweeper/sampler=qmc", "hydra.sweeper.n_trials=2", "seed=1"
    )
    first = run_cli(*args, cwd=tmp_path, env=crash_seed_1_env(tmp_path))
    assert first.returncode == 1, first.stderr[-3000:]  # failed trials: the search goes on, then exits 1
    assert "2 run(s) failed" in first.stderr and "QMCSampler" in first.stdout
    sweep = tmp_path / "sweep"
    assert [t.state for t in load_study(sweep).trials] == [TrialState.FAIL] * 2
    failed = {t["config"]["optimizer"]["lr"] for t in trials_on_disk(sweep)}

    # A sweep killed while a trial ran leaves it RUNNING in the study.
    study = load_study(sweep)
    cut = study.ask({"optimizer.lr": FloatDistribution(3e-5, 3e-3, log=True),
                     "optimizer.weight_decay": FloatDistribution(1e-4, 1.0, log=True)})  # fmt: skip
    cut_lr = cut.params["optimizer.lr"]

    rerun = run_cli(*args[:-1], "seed=1", "hydra.sweeper.n_trials=3", cwd=tmp_path)  # the crash is fixed
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    runs = trials_on_disk(sweep)
    assert {r["status"] for r in runs} == {"completed"}
    assert {r["config"]["optimizer"]["lr"] for r in runs} == failed | {cut_lr}  # the same settings, again
    states = [t.state for t in load_study(sweep).trials]
    assert states.count(TrialState.COMPLETE) == 3 and states.count(TrialState.FAIL) == 3


def test_a_pruned_trial_stops_keeps_its_epochs_and_is_pruned_in_the_study(tiny_photos, tmp_path):
    """The job reports each epoch to the study and asks its pruner: a threshold above any accuracy prunes every
    trial after its first epoch, in the job's own process (joblib workers here)."""
    args = search_args(
        tiny_photos, tmp_path, "hydra.sweeper.n_trials=2", "hydra/sweeper/pruner=threshold",
        "hydra.sweeper.pruner.lower=1.1", "hydra.sweeper.pruner.n_warmup_steps=1", "hydra/launcher=parallel",
        epochs=2,
    )  # fmt: skip
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]  # pruning is not failing
    assert "2 at a time" in result.stdout  # the preset's 2 joblib workers: one batch
    sweep = tmp_path / "sweep"
    runs = trials_on_disk(sweep)
    assert [r["status"] for r in runs] == ["pruned", "pruned"] and {r["epochs_planned"] for r in runs} == {2}
    for path in results.result_files(sweep):
        assert [row["epoch"] for row in results.read_metrics(path.parent)] == [1]
    study = load_study(sweep)
    assert [t.state for t in study.trials] == [TrialState.PRUNED] * 2
    assert all(list(t.intermediate_values) == [1] for t in study.trials)
    assert [(s.n_pruned, s.n_failed, s.scores) for s in load_settings(sweep)] == [(1, 0, [])] * 2
    with pytest.raises(ValueError, match=r"\(2 pruned, 0 failed\)"):  # no final score to rank
        summary(sweep)
    assert "pruned" in (sweep / "report" / "report.md").read_text()  # listed among the runs not averaged


def test_a_diverged_trial_scores_zero_for_the_study(tiny_photos, tmp_path):
    """With the random sampler, and a value from the command line replacing the preset's range."""
    lr = "optimizer.lr=choice(1e6)"  # the only learning rate Optuna may pick: it diverges
    args = search_args(tiny_photos, tmp_path, "hydra/sweeper/sampler=random", "hydra.sweeper.n_trials=1", lr)
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "RandomSampler" in result.stdout
    [trial] = trials_on_disk(tmp_path / "sweep")
    assert trial["status"] == "diverged"
    verdict = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    assert verdict["best_value"] == 0.0  # bench.search.objective, not the diverged run's last accuracy


def sweeper_config(*overrides: str, search: str = ADAMW):
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", [search, *overrides], return_hydra_config=True).hydra.sweeper


def test_the_searches_keep_their_command_lines_and_choose_samplers_and_pruners():
    config = sweeper_config()
    assert config.params.optimizer == "adamw" and "interval" in config.params["optimizer.weight_decay"]
    assert config._target_.endswith("OptunaSearchSweeper") and config.n_trials == 20
    assert config.sampler._target_ == "optuna.samplers.TPESampler" and config.sampler.seed == 0
    assert config.pruner._target_ == "optuna.pruners.MedianPruner"
    assert sweeper_config("hydra/sweeper/sampler=qmc").sampler._target_ == "optuna.samplers.QMCSampler"
    assert sweeper_config("hydra/sweeper/sampler=random").sampler._target_ == "optuna.samplers.RandomSampler"
    assert sweeper_config("hydra/sweeper/pruner=none").pruner._target_ == "optuna.pruners.NopPruner"
    hyperband = sweeper_config("hydra/sweeper/pruner=hyperband", "train.epochs=5").pruner
    assert hyperband.max_resource == 5  # the epochs are its budget
    for optimizer, regularization in (("sgd_l2", "l2"), ("adam_l2", "l2")):
        params = sweeper_config(search=f"hydra/sweeper=lr_wd_search_{optimizer}").params
        assert params.optimizer == optimizer and set(params) == {
            "optimizer",
            "optimizer.lr",
            f"optimizer.{regularization}",
        }


def override(text: str):
    return OverridesParser.create().parse_overrides([text])[0]


def test_sweep_overrides_become_optuna_distributions():
    assert distribution(override("a=tag(log, interval(1e-4, 1e-1))")) == FloatDistribution(
        1e-4, 1e-1, log=True
    )
    assert distribution(override("a=interval(0, 1)")) == FloatDistribution(0.0, 1.0)
    assert distribution(override("a=interval(1, 8)")) == FloatDistribution(1.0, 8.0)  # as Hydra reads it
    assert distribution(override("a=tag(int, interval(1, 8))")) == IntDistribution(1, 8)
    assert distribution(override("a=tag(int, log, interval(1, 8))")) == IntDistribution(1, 8, log=True)
    assert distribution(override("a=choice(1e-3, 1e-2)")) == CategoricalDistribution([1e-3, 1e-2])
    assert distribution(override("a=range(1, 10, 2)")) == IntDistribution(1, 9, step=2)  # stop left out
    assert distribution(override("a=range(0.1, 0.5, 0.1)")) == FloatDistribution(0.1, 0.4, step=0.1)


def epoch(number: int, val_accuracy: float) -> results.EpochRecord:
    fields = dict.fromkeys(results.EpochRecord.__dataclass_fields__, 0.0)
    return results.EpochRecord(
        **(fields | {"epoch": number, "val_accuracy": val_accuracy, "train_images": 1})
    )


@pytest.mark.parametrize("scheme", ["sqlite", "journal"])
def test_a_job_reports_its_epochs_through_the_storage_and_asks_the_pruner(tmp_path, monkeypatch, scheme):
    """What a trial's job does (bench/pruning.py), with the study in SQLite or in Optuna's journal file."""
    url = pruning.default_storage(tmp_path) if scheme == "sqlite" else f"journal://{tmp_path / 'search.log'}"
    study = optuna.create_study(storage=pruning.open_storage(url), study_name="s", direction="maximize")
    trial = study.ask({"x": FloatDistribution(0, 1)})
    threshold = {"_target_": "optuna.pruners.ThresholdPruner", "lower": 0.5, "n_warmup_steps": 2}
    monkeypatch.setenv(pruning.TRIAL_ENV, pruning.trial_link(url, "s", trial._trial_id, threshold))
    hook = pruning.epoch_hook()
    assert hook(epoch(1, 0.3)) is False  # below the threshold, but still warming up
    assert hook(epoch(2, 0.4)) is True
    reloaded = optuna.load_study(study_name="s", storage=pruning.open_storage(url))
    assert reloaded.trials[0].intermediate_values == {1: 0.3, 2: 0.4}

    monkeypatch.setenv(pruning.TRIAL_ENV, "")  # any other job (conf/config.yaml sets it empty)
    assert pruning.epoch_hook() is None


def test_a_job_that_cannot_reach_the_study_trains_on_with_one_warning(tmp_path, monkeypatch, caplog):
    link = pruning.trial_link(f"sqlite:///{tmp_path / 'missing.db'}", "nope", 1, None)
    monkeypatch.setenv(pruning.TRIAL_ENV, link)
    assert pruning.epoch_hook() is None
    assert [r.getMessage() for r in caplog.records if "not pruned" in r.getMessage()]
