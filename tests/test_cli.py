"""The command line: every command is registered by the module COMMAND_MODULES names; errors are one line."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

from streamdet.cli import COMMAND_MODULES, build_parser


def _commands(parser: argparse.ArgumentParser) -> set[str]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return set(actions[0].choices)


def test_command_table_matches_the_modules_that_register_them() -> None:
    assert _commands(build_parser()) == set(COMMAND_MODULES)
    for command, module_name in COMMAND_MODULES.items():
        parser = argparse.ArgumentParser()
        importlib.import_module(f"streamdet.cli.{module_name}").register(parser.add_subparsers())
        assert command in _commands(parser), f"{command} is not registered by streamdet.cli.{module_name}"


def test_one_command_parser_holds_only_its_module() -> None:
    assert _commands(build_parser("info")) == {c for c, m in COMMAND_MODULES.items() if m == "files"}


def test_user_error_is_one_line_without_traceback(tmp_path) -> None:
    missing = tmp_path / "missing.raw"
    result = subprocess.run(
        [sys.executable, "-m", "streamdet", "info", str(missing), "--json"], capture_output=True, text=True
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(missing) in lines[0] and "Traceback" not in result.stderr
