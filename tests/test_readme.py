"""The README's Python snippet, run as a user would: a real subscriber process on a real publisher."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from streamdet import bus, wire

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_python_snippet() -> str:
    """The first ```python block of README.md."""
    match = re.search(r"```python\n(.*?)```", README.read_text(), re.S)
    assert match, "README.md has no python block"
    return match.group(1)


def test_the_readme_snippet_prints_every_published_box_with_its_class_name(tmp_path: Path) -> None:
    endpoint = f"ipc://{tmp_path}/det.sock"
    code = readme_python_snippet()
    assert "ipc:///tmp/det.sock" in code
    code = code.replace("ipc:///tmp/det.sock", endpoint)
    rows = np.array([[10, 20, 50, 60, 0.91, 2], [100, 40, 130, 120, 0.55, 3]], dtype=np.float32)
    names = ("boat", "buoy", "car", "pedestrian")
    with bus.Publisher(endpoint) as publisher:
        child = subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            assert publisher.wait_for_subscribers(1, timeout_s=60), child.stderr
            time.sleep(0.2)
            publisher.send(wire.detections_message("street", rows, names, (1280, 720), 0, 50_000))
            publisher.send(wire.eos_message("street", "detections", (1280, 720), 50_000))
            out, err = child.communicate(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
    assert child.returncode == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 2, out
    assert lines[0].startswith("street 50000 car 0.91 10.0 20.0 50.0 60.0"), lines
    assert lines[1].startswith("street 50000 pedestrian 0.55"), lines
