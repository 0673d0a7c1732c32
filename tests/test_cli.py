"""The command line: every command is registered by the module COMMAND_MODULES names; errors are one line."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

import pytest

from streamdet.cli import COMMAND_MODULES, build_parser
from streamdet.cli.options import dataset_root, parse_size, positive_int, resolve_split
from streamdet.errors import UserFacingError


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


def test_sizes_are_width_x_height_in_positive_pixels() -> None:
    assert parse_size("400x250") == (400, 250)
    assert parse_size(" 346X260 ") == (346, 260)
    for text in ("12x", "x5", "0x5", "-5x3", "4.5x3", "3x4x5", "346,260", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="expected WxH"):
            parse_size(text)


def test_positive_integers() -> None:
    assert positive_int("3") == 3
    for text in ("0", "-1", "1.5", "many"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected a positive integer"):
            positive_int(text)


@pytest.mark.parametrize(
    "command",
    [
        ["drive", "synthetic", "--endpoint", "ipc:///tmp/unused", "--size", "346"],
        ["info", "missing.raw", "--sensor-size", "640x"],
        ["train", "--modality", "events", "--data", "d", "--out", "o.pt", "--crop", "256"],
    ],
)
def test_every_size_option_takes_the_one_parser(command: list[str]) -> None:
    """``drive --size``, ``info --sensor-size`` and ``train --crop`` reject a malformed size while
    parsing, with the same message, before any work starts."""
    result = subprocess.run([sys.executable, "-m", "streamdet", *command], capture_output=True, text=True)
    assert result.returncode == 2
    assert "expected WxH such as 346x260" in result.stderr and "Traceback" not in result.stderr


def test_data_names_a_split_or_the_dataset_root_of_one(tmp_path) -> None:
    """``--data`` of convert and eval: a split folder, or a root holding exactly one split (the README's
    ``convert --data data/mix`` after ``dataset build --split train --out data/mix``); train: a root, or
    its train split folder."""
    for split in ("train", "val"):
        (tmp_path / "mix" / split).mkdir(parents=True)
    (tmp_path / "mix" / "train" / "annotations.json").write_text("{}")
    (tmp_path / "mix" / "notes").mkdir()
    assert resolve_split(str(tmp_path / "mix")) == str(tmp_path / "mix" / "train")
    assert resolve_split(str(tmp_path / "mix" / "train")) == str(tmp_path / "mix" / "train")
    assert dataset_root(str(tmp_path / "mix" / "train")) == str(tmp_path / "mix")
    assert dataset_root(str(tmp_path / "mix")) == str(tmp_path / "mix")
    (tmp_path / "mix" / "val" / "annotations.json").write_text("{}")
    with pytest.raises(UserFacingError, match=r"several splits \(train, val\); name one, e.g. .*mix/train"):
        resolve_split(str(tmp_path / "mix"))
    with pytest.raises(UserFacingError, match="--calibration-data .*notes: not a built split"):
        resolve_split(str(tmp_path / "mix" / "notes"), "--calibration-data")
    with pytest.raises(UserFacingError, match="nowhere: no such folder"):
        resolve_split(str(tmp_path / "nowhere"))


def test_convert_and_eval_name_the_splits_of_an_ambiguous_root(tmp_path, capsys) -> None:
    """A dataset root with two splits is refused, naming the splits (convert: before loading the model)."""
    from streamdet.cli import main

    for split in ("train", "val"):
        (tmp_path / "data" / split).mkdir(parents=True)
        (tmp_path / "data" / split / "annotations.json").write_text("{}")
    data = str(tmp_path / "data")
    out = str(tmp_path / "x.pt")
    assert main(["convert", "--model", "events-default", "--data", data, "--out", out]) == 2
    assert "several splits (train, val); name one" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()
    assert main(["eval", "--model", "events-default", "--data", data]) == 2
    assert "several splits (train, val); name one" in capsys.readouterr().err
