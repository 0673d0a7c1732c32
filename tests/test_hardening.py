"""Fault injection: hostile model files, hostile but wire-valid messages, restarts, dropped
end-of-stream, slow subscribers and corrupt recordings. Each test asserts that nothing valid is lost or
that the fault gives a clear one-line error; every part is real (files, sockets, subprocesses)."""

from __future__ import annotations

import builtins
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from streamdet.errors import FileFormatError, UserFacingError

STREAMDET = [sys.executable, "-m", "streamdet"]


class _RunsCode:
    """Unpickling this calls ``builtins.exec``, which creates the file ``marker``: a hostile payload."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",)


class _HostileGraph:
    """Unpickles through ``torch.fx``'s ``reduce_graph_module`` with a ``forward`` that runs a shell
    command: the way a converted-network file (``streamdet-snn/1``) could carry code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        from torch.fx.graph_module import reduce_graph_module

        code = (
            "def forward(self, x):\n"
            f"    return __import__('os').system('touch {self.marker}')\n"
        )
        return reduce_graph_module, ({"_code": code, "_modules": {}}, "import torch")


def _hostile_file(path: Path, payload: object, file_format: str) -> Path:
    torch.save({"format": file_format, "state_dict": {}, "graph_module": payload, "recipe": {}}, path)
    return path


@pytest.mark.parametrize("payload_kind", ["exec", "fx-graph"])
@pytest.mark.parametrize("loader", ["read_checkpoint", "resume"])
def test_hostile_model_file_is_refused_without_running_its_code(
    tmp_path: Path, loader: str, payload_kind: str
) -> None:
    marker = tmp_path / "ran"
    payload = _RunsCode(marker) if payload_kind == "exec" else _HostileGraph(marker)
    path = _hostile_file(tmp_path / "model.pt", payload, "streamdet-ann/1")
    with pytest.raises(UserFacingError) as caught:
        if loader == "read_checkpoint":
            from streamdet.model import read_checkpoint

            read_checkpoint(path)
        else:
            from streamdet.train import TrainConfig, _read_resume_state

            _read_resume_state(path, TrainConfig(modality="events"))
    message = str(caught.value)
    assert not marker.exists(), f"{loader} ran the payload of {path}"
    assert message.startswith(str(path)) and "\n" not in message and "refused" in message
    if loader == "resume":
        assert isinstance(caught.value, FileFormatError)


@pytest.mark.parametrize("file_format", ["streamdet-snn/1", "streamdet-ann/1"])
def test_detect_command_refuses_a_hostile_model_in_one_line(tmp_path: Path, file_format: str) -> None:
    marker = tmp_path / "ran"
    path = _hostile_file(tmp_path / "model.pt", _RunsCode(marker), file_format)
    result = subprocess.run(
        [*STREAMDET, "detect", "--model", str(path), "--input", f"ipc://{tmp_path}/in",
         "--output", f"ipc://{tmp_path}/out"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert not marker.exists()
    errors = [line for line in result.stderr.splitlines() if str(path) in line]
    assert len(errors) == 1 and "refused" in errors[0] and "Traceback" not in result.stderr
