"""Launcher: launch-file validation, log prefixes, restart with back-off, clean stop on SIGINT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from streamdet.errors import FileFormatError
from streamdet.launcher import Launcher, LaunchSpec, ProcessSpec, backoff_delay_s, load_launch_file

LAUNCH_DIR = Path(__file__).resolve().parent.parent / "launch"


def python_process(name: str, code: str, restart: str = "on-failure") -> ProcessSpec:
    return ProcessSpec(name=name, cmd=(sys.executable, "-c", textwrap.dedent(code)), restart=restart)


def test_backoff_doubles_up_to_the_maximum():
    assert [backoff_delay_s(n, 0.5, 10.0) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[[process]\nname = 1", "not valid TOML"),
        ("[launch]\nstop_timeout_s = 1", "no [[process]] entries"),
        ('[[process]]\nname = "a"\ncmd = "streamdet detect"', "'cmd' must be a list of strings"),
        ('[[process]]\nname = "a"\ncmd = ["x"]\nrestart = "sometimes"', "'restart' must be one of"),
        ('[[process]]\nname = "a"\ncmd = ["x"]\n[[process]]\nname = "a"\ncmd = ["y"]', "duplicate"),
        ('[[process]]\nname = "a"\ncmd = ["x"]\nrestrat = "never"', "unknown key(s) ['restrat']"),
    ],
)
def test_bad_launch_files_are_refused_with_the_reason(tmp_path, text, reason):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(FileFormatError) as error:
        load_launch_file(path)
    assert reason in str(error.value) and str(path) in str(error.value)


def test_shipped_launch_files_are_valid():
    """Every shipped graph loads, runs a detector, and every streamdet command in it parses with the
    streamdet CLI (an option misspelt, or one a command no longer has, fails here, not in a user's run)."""
    from streamdet.cli import build_parser

    files = sorted(LAUNCH_DIR.glob("*.toml"))
    assert len(files) >= 6
    for path in files:
        spec = load_launch_file(path)
        assert any("detect" in process.cmd for process in spec.processes), path.name
        for process in spec.processes:
            if process.cmd[0] == "streamdet":
                arguments = list(process.cmd[1:])
                try:
                    build_parser(arguments[0]).parse_args(arguments)
                except SystemExit:
                    pytest.fail(f"{path.name} {process.name}: streamdet {' '.join(arguments)} does not parse")


def test_shipped_launch_files_bind_loopback_only():
    """Every tcp:// endpoint in the examples is on 127.0.0.1: none opens a port to other hosts."""
    for path in sorted(LAUNCH_DIR.glob("*.toml")):
        for process in load_launch_file(path).processes:
            for argument in process.cmd:
                if argument.startswith("tcp://"):
                    assert argument.startswith("tcp://127.0.0.1:"), f"{path.name} {process.name}: {argument}"


def test_prefixes_output_and_restarts_with_backoff():
    lines: list[str] = []
    events: list[str] = []
    spec = LaunchSpec(
        processes=(
            python_process("talker", "print('hello'); import sys; print('to stderr', file=sys.stderr)"),
            python_process("crasher", "import time; print('up', time.monotonic()); raise SystemExit(3)"),
            python_process("once", "raise SystemExit(4)", restart="never"),
        ),
        backoff_initial_s=0.2,
        backoff_max_s=0.8,
    )
    launcher = Launcher(spec, write=lines.append, log=events.append)
    codes = launcher.run(seconds=2.6)
    assert "[talker] hello" in lines and "[talker] to stderr" in lines
    assert codes["talker"] == [0] and codes["once"] == [4]
    starts = [float(line.split()[2]) for line in lines if line.startswith("[crasher] up")]
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert len(starts) >= 4 and set(codes["crasher"][: len(starts) - 1]) == {3}
    # the last start may still be running when the run ends, and then the launcher stops it (SIGINT)
    assert codes["crasher"][len(starts) - 1] in (3, -signal.SIGINT)
    for gap, delay in zip(gaps, [0.2, 0.4, 0.8, 0.8], strict=False):
        assert delay <= gap < delay + 0.5
    assert any("crasher exited with code 3; restarting in 0.4 s" in e for e in events)


def test_always_restarts_a_process_that_ends_cleanly():
    lines: list[str] = []
    ticker = python_process("tick", "print('tick')", restart="always")
    spec = LaunchSpec(processes=(ticker,), backoff_initial_s=0.1)
    # 3 s leave room for three interpreter start-ups on a loaded machine (0.1 s back-off between them).
    codes = Launcher(spec, write=lines.append, log=lambda line: None).run(seconds=3.0)
    assert lines.count("[tick] tick") >= 3 and set(codes["tick"]) == {0}


def test_sigint_stops_every_process_cleanly_and_kills_stragglers(tmp_path):
    launch_file = tmp_path / "graph.toml"
    graceful = (
        "import time\ntry:\n    print('ready', flush=True); time.sleep(60)\n"
        "except KeyboardInterrupt:\n    print('clean exit', flush=True)"
    )
    stubborn = (
        "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "print('ready', flush=True)\ntime.sleep(60)"
    )
    launch_file.write_text(
        "[launch]\nstop_timeout_s = 1.0\n"
        f"[[process]]\nname = 'graceful'\ncmd = [{sys.executable!r}, '-c', {graceful!r}]\n"
        f"[[process]]\nname = 'stubborn'\ncmd = [{sys.executable!r}, '-c', {stubborn!r}]\n"
    )
    launcher = subprocess.Popen(
        [sys.executable, "-m", "streamdet", "launch", str(launch_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ready = 0
    deadline = time.monotonic() + 60
    while ready < 2 and time.monotonic() < deadline:
        line = launcher.stdout.readline()
        ready += line.endswith("ready\n")
    assert ready == 2
    started = time.monotonic()
    launcher.send_signal(signal.SIGINT)
    stdout, stderr = launcher.communicate(timeout=30)
    assert time.monotonic() - started < 5
    assert "[graceful] clean exit" in stdout
    assert "stubborn did not stop in 1.0 s; killing it" in stderr
    pids = [line.split("pid ")[1].rstrip(")") for line in stderr.splitlines() if "started" in line]
    assert len(pids) == 2
    for pid in pids:
        status = Path(f"/proc/{pid}/status")
        assert not status.exists() or "zombie" in status.read_text().lower()


def test_killed_detector_is_restarted_and_resumes_publishing_within_5_s(tmp_path):
    """replay (looping) -> detector (with a hot standby) under the launcher; SIGKILL the detector: the
    launcher promotes the standby and detections flow again within 5 s of the kill."""
    import threading

    from test_detector import DT_US, TINY_SENSOR, random_events, tiny_spiking_detector

    from streamdet import bus
    from streamdet.formats import write_events
    from streamdet.loading import save_snn

    save_snn(tiny_spiking_detector(), tmp_path / "tiny.pt")
    write_events(tmp_path / "events.npy", random_events(20_000, 2_000_000, seed=1), TINY_SENSOR)
    events_endpoint = f"ipc://{tmp_path}/events"
    detections_endpoint = f"ipc://{tmp_path}/detections"
    streamdet = (sys.executable, "-m", "streamdet")
    spec = LaunchSpec(
        processes=(
            ProcessSpec("replay", (*streamdet, "replay", str(tmp_path / "events.npy"), "--loop", "--endpoint",
                                   events_endpoint, "--stream", "cam"), restart="always"),
            ProcessSpec("detector", (*streamdet, "detect", "--input", events_endpoint, "--output",
                                     detections_endpoint, "--model", str(tmp_path / "tiny.pt"), "--dt-us",
                                     str(DT_US), "--window-steps", "4", "--publish-every", "5",
                                     "--threads", "1"),
                        standby=True),
        ),
        backoff_initial_s=0.5,
        stop_timeout_s=5.0,
    )  # fmt: skip
    events: list[str] = []
    launcher = Launcher(spec, write=events.append, log=events.append)
    runner = threading.Thread(target=launcher.run, kwargs={"seconds": 300}, daemon=True)
    subscriber = bus.Subscriber(detections_endpoint, topics=("detections/",))
    runner.start()
    try:
        latest = subscriber.receive(timeout_ms=180_000)
        assert latest is not None and latest.kind == "detections"
        deadline = time.monotonic() + 120
        while not launcher.children["detector"].spare_ready.is_set() and time.monotonic() < deadline:
            latest = subscriber.receive(timeout_ms=100) or latest
        # The promoted process numbers its messages from 0 and the subscriber may miss its first few while
        # it reconnects; with the old process past seq 100, a new message can never pass for the old
        # process's next one (which failed once under load with the old process at a low seq).
        while latest.seq < 100:
            latest = subscriber.receive(timeout_ms=10_000) or latest
        old_pid = launcher.pid("detector")
        os.kill(old_pid, signal.SIGKILL)
        killed_at = time.monotonic()
        resumed = None
        seqs_after_kill: list[int] = []
        while time.monotonic() - killed_at < 30:
            message = subscriber.receive(timeout_ms=500)
            if message is None:
                continue
            seqs_after_kill.append(message.seq)
            if message.seq != latest.seq + 1:  # a new process numbers from 0 (we may join it a few later)
                resumed = time.monotonic() - killed_at
                break
            latest = message
        assert launcher.pid("detector") not in (None, old_pid)
        assert any("detector exited with code -9; standby took over" in line for line in events)
        assert resumed is not None and resumed < 5.0, (
            f"resumed after {resumed} s; old detector's last seq {latest.seq}; "
            f"seqs received after the kill {seqs_after_kill[:20]} ({len(seqs_after_kill)}); {events[-12:]}"
        )
    finally:
        subscriber.close()
        launcher.stop()
        runner.join(timeout=30)
