"""The report's options are defined once (bench/report/options.py): the Hydra callback, the CLI and the
regenerate command all follow ReportConfig, and importing it stays cheap (bench/config.py does)."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from bench.callbacks import ReportCallback
from bench.config import register_configs
from bench.errors import ConfigError
from bench.report.__main__ import parse_args
from bench.report.options import DEFAULT_METRICS, ReportConfig, add_arguments, cli_fields, regenerate_command
from tests.conftest import CONF_DIR


def callback_of(*overrides: str) -> ReportCallback:
    """The report callback as Hydra builds it from conf/config.yaml's hydra.callbacks.report."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides), return_hydra_config=True)
    return instantiate(cfg.hydra.callbacks.report)


def test_the_callback_gets_every_option_from_the_config() -> None:
    assert callback_of().options == ReportConfig()
    chosen = callback_of("report.margin=0.05", "report.compare=backend", "report.metrics=[loss]").options
    assert chosen == ReportConfig(margin=0.05, compare="backend", metrics=["loss"])


def test_a_bad_option_fails_when_the_callback_is_made() -> None:
    with pytest.raises(ConfigError, match="report.margin must be in"):
        ReportCallback({"margin": 2.0})


def test_the_cli_takes_every_option_but_enabled_with_its_default_in_the_help() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    flags = {action.dest: action for action in parser._actions if action.dest != "help"}
    expected = {f.name for f in dataclasses.fields(ReportConfig)} - {"enabled"}
    assert set(flags) == expected == {f.name for f in cli_fields()}
    assert flags["metrics"].help.endswith(f"(default: {','.join(DEFAULT_METRICS)})")  # it once said loss
    assert flags["margin"].help.endswith("(default: 0.01)")
    parser.format_help()  # every help text survives argparse's % formatting


def test_the_regenerate_command_parses_back_to_the_same_options(tmp_path: Path) -> None:
    paths = [tmp_path / "sweep"]
    assert (
        regenerate_command(paths, paths[0] / "report", ReportConfig()) == f"python -m bench.report {paths[0]}"
    )
    chosen = ReportConfig(metrics=["loss", "accuracy"], group_by=["backend"], compare="backend", target=0.6)
    command = regenerate_command(paths, tmp_path / "out", chosen)
    args = parse_args(shlex.split(command)[3:])
    assert args.out == str(tmp_path / "out")
    assert ReportConfig.given(**{f.name: getattr(args, f.name) for f in cli_fields()}) == chosen
    same_as_default = ReportConfig(metrics=list(DEFAULT_METRICS), compare="optimizer", margin=0.01)
    assert "--" not in regenerate_command(paths, paths[0] / "report", same_as_default)


def test_the_options_import_no_pandas_nor_matplotlib() -> None:
    code = "import sys, bench.config; print(sorted({'pandas', 'matplotlib', 'scipy'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
