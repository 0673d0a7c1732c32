"""Start a graph of processes from a launch file, prefix their logs, restart crashed ones, stop them all.

A launch file is TOML::

    [launch]                      # optional
    stop_timeout_s = 5.0          # SIGINT, then this long, then SIGKILL
    backoff_initial_s = 0.5       # first restart delay
    backoff_max_s = 10.0          # restart delays double up to this

    [[process]]
    name = "detector"
    cmd = ["streamdet", "detect", "--input", "ipc:///tmp/sd-events", "--output", "ipc:///tmp/sd-dets"]
    restart = "on-failure"        # "on-failure" (default), "always" or "never"
    env = { OMP_NUM_THREADS = "1" }
    start_delay_s = 0.0           # wait this long after the launch before the first start
    standby = false               # keep a loaded spare process ready (see below)

A leading ``streamdet`` in ``cmd`` runs ``python -m streamdet`` with the launcher's own interpreter, so a
launch file works from a virtual environment that is not activated. Every line a process writes (stdout
and stderr) is printed as ``[name] line``. Restart delay after the ``n``-th consecutive failure:
``min(backoff_initial_s * 2 ** (n - 1), backoff_max_s)`` seconds; a process that ran longer than
``backoff_max_s`` starts the count again. Ctrl-C (SIGINT) or SIGTERM stops every process: SIGINT to
each (our CLIs end cleanly on it), then SIGKILL to those still running after ``stop_timeout_s``.

Hot standby (``standby = true``, for ``streamdet detect``): a cold start pays for importing torch and
torchvision and loading the model (seconds of CPU on a small machine), so the launcher also keeps a
spare instance running with ``STREAMDET_STANDBY=1`` in its environment. The spare loads and warms up
everything, opens no socket, prints :data:`STANDBY_READY` and waits. When the active process exits and
is to be restarted, a ready spare is promoted at once with SIGUSR1 (it then binds and subscribes as a
fresh start would) and a new spare is started after the back-off delay; without a ready spare the
process is cold-started after the back-off delay as usual.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamdet.errors import FileFormatError

RESTART_POLICIES = ("on-failure", "always", "never")
STANDBY_ENV = "STREAMDET_STANDBY"
"""Environment variable set to ``"1"`` in a hot-standby process."""
STANDBY_READY = "streamdet: standby ready"
"""Line a hot-standby process prints once it can be promoted with SIGUSR1."""


@dataclass(frozen=True)
class ProcessSpec:
    """One process of a launch graph (see the module docstring for the fields)."""

    name: str
    cmd: tuple[str, ...]
    restart: str = "on-failure"
    env: tuple[tuple[str, str], ...] = ()
    start_delay_s: float = 0.0
    standby: bool = False


@dataclass(frozen=True)
class LaunchSpec:
    """A launch graph: its processes and the stop / restart timing, seconds."""

    processes: tuple[ProcessSpec, ...]
    stop_timeout_s: float = 5.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 10.0


def backoff_delay_s(failures: int, initial_s: float, max_s: float) -> float:
    """Delay before restarting after the ``failures``-th consecutive failure (``failures >= 1``):
    ``min(initial_s * 2 ** (failures - 1), max_s)`` seconds."""
    return min(initial_s * 2 ** max(failures - 1, 0), max_s)


def parse_launch(document: dict[str, Any], source: object) -> LaunchSpec:
    """Validate a parsed launch file; FileFormatError naming ``source``, the field and the value."""
    settings = document.get("launch", {})
    if not isinstance(settings, dict):
        raise FileFormatError(source, "[launch] must be a table")
    unknown = sorted(set(settings) - {"stop_timeout_s", "backoff_initial_s", "backoff_max_s"})
    if unknown:
        raise FileFormatError(source, f"unknown [launch] key(s) {unknown}")
    entries = document.get("process")
    if not isinstance(entries, list) or not entries:
        raise FileFormatError(source, "no [[process]] entries")
    processes = []
    for index, entry in enumerate(entries):
        where = f"process #{index + 1}"
        unknown = sorted(set(entry) - {"name", "cmd", "restart", "env", "start_delay_s", "standby"})
        if unknown:
            raise FileFormatError(source, f"{where}: unknown key(s) {unknown}")
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise FileFormatError(source, f"{where}: 'name' must be a non-empty string, got {name!r}")
        cmd = entry.get("cmd")
        if not isinstance(cmd, list) or not cmd or not all(isinstance(arg, str) for arg in cmd):
            raise FileFormatError(source, f"process {name!r}: 'cmd' must be a list of strings, got {cmd!r}")
        restart = entry.get("restart", "on-failure")
        if restart not in RESTART_POLICIES:
            raise FileFormatError(
                source, f"process {name!r}: 'restart' must be one of {RESTART_POLICIES}, got {restart!r}"
            )
        env = entry.get("env", {})
        if not isinstance(env, dict):
            raise FileFormatError(source, f"process {name!r}: 'env' must be a table, got {env!r}")
        standby = entry.get("standby", False)
        if not isinstance(standby, bool):
            raise FileFormatError(
                source, f"process {name!r}: 'standby' must be true or false, got {standby!r}"
            )
        delay = entry.get("start_delay_s", 0.0)
        if not isinstance(delay, int | float) or delay < 0:
            raise FileFormatError(source, f"process {name!r}: 'start_delay_s' must be >= 0, got {delay!r}")
        processes.append(
            ProcessSpec(
                name=name,
                cmd=tuple(cmd),
                restart=restart,
                env=tuple((str(k), str(v)) for k, v in env.items()),
                start_delay_s=float(delay),
                standby=standby,
            )
        )
    names = [p.name for p in processes]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise FileFormatError(source, f"duplicate process name(s) {duplicates}")
    timing = {}
    for key in ("stop_timeout_s", "backoff_initial_s", "backoff_max_s"):
        if key in settings:
            value = settings[key]
            if not isinstance(value, int | float) or value <= 0:
                raise FileFormatError(source, f"[launch] {key} must be a positive number, got {value!r}")
            timing[key] = float(value)
    return LaunchSpec(processes=tuple(processes), **timing)


def load_launch_file(path: str | Path) -> LaunchSpec:
    """Read and validate a TOML launch file."""
    path = Path(path)
    try:
        document = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise FileFormatError(path, "no such file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise FileFormatError(path, f"not valid TOML: {error}") from None
    return parse_launch(document, path)


def resolve_command(cmd: tuple[str, ...]) -> list[str]:
    """``cmd`` with a leading ``streamdet`` replaced by ``<this python> -m streamdet``."""
    if cmd[0] == "streamdet":
        return [sys.executable, "-m", "streamdet", *cmd[1:]]
    return list(cmd)


@dataclass
class _Child:
    spec: ProcessSpec
    process: subprocess.Popen | None = None
    started_s: float = 0.0
    failures: int = 0
    restarts: int = 0
    next_start_s: float = 0.0
    finished: bool = False
    reader: threading.Thread | None = None
    exit_codes: list[int] = field(default_factory=list)
    spare: subprocess.Popen | None = None
    spare_reader: threading.Thread | None = None
    spare_ready: threading.Event = field(default_factory=threading.Event)
    next_spare_s: float = 0.0


class Launcher:
    """Runs a :class:`LaunchSpec`: starts, watches, restarts and stops its processes.

    Args:
        spec: the graph.
        write: called with each prefixed output line (default: print to stdout).
        log: called with the launcher's own lines (starts, exits, restarts; default: stderr).
    """

    def __init__(
        self,
        spec: LaunchSpec,
        write: Callable[[str], None] | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.spec = spec
        self.write = write or (lambda line: print(line, flush=True))
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.children = {p.name: _Child(p) for p in spec.processes}
        self._lock = threading.Lock()
        self._stop_lock = threading.Lock()
        self._stopping = threading.Event()
        self.interrupted = False
        """True once SIGINT / SIGTERM stopped :meth:`run`."""

    def _spawn(self, spec: ProcessSpec, standby: bool) -> subprocess.Popen:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **dict(spec.env)}
        if standby:
            env[STANDBY_ENV] = "1"
        return subprocess.Popen(
            resolve_command(spec.cmd),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )

    def _start(self, child: _Child) -> None:
        child.process = self._spawn(child.spec, standby=False)
        child.started_s = time.monotonic()
        child.reader = threading.Thread(
            target=self._forward, args=(child.spec.name, child.process, None), daemon=True
        )
        child.reader.start()
        self.log(f"[launch] started {child.spec.name} (pid {child.process.pid})")

    def _start_spare(self, child: _Child) -> None:
        child.spare_ready = threading.Event()
        child.spare = self._spawn(child.spec, standby=True)
        child.spare_reader = threading.Thread(
            target=self._forward, args=(child.spec.name, child.spare, child.spare_ready), daemon=True
        )
        child.spare_reader.start()
        self.log(f"[launch] started a standby {child.spec.name} (pid {child.spare.pid})")

    def _promote(self, child: _Child, now: float) -> bool:
        """Make the ready spare the active process (SIGUSR1); False when there is none."""
        spare = child.spare
        if spare is None or spare.poll() is not None or not child.spare_ready.is_set():
            return False
        spare.send_signal(signal.SIGUSR1)
        child.process, child.reader = spare, child.spare_reader
        child.spare, child.spare_reader = None, None
        child.started_s = now
        self.log(f"[launch] promoted the standby {child.spec.name} (pid {spare.pid})")
        return True

    def _forward(self, name: str, process: subprocess.Popen, ready: threading.Event | None) -> None:
        assert process.stdout is not None
        for raw in iter(process.stdout.readline, b""):
            line = raw.decode(errors="replace").rstrip("\r\n")
            if ready is not None and line == STANDBY_READY:
                ready.set()
                continue
            for part in line.split("\r"):
                if part:
                    with self._lock:
                        self.write(f"[{name}] {part}")
        process.stdout.close()

    def pid(self, name: str) -> int | None:
        """Process id of ``name``'s current process, or None when it is not running."""
        child = self.children[name]
        if child.process is None or child.process.poll() is not None:
            return None
        return child.process.pid

    def poll(self) -> bool:
        """Start due processes and handle exits; returns False once nothing runs or will run again."""
        if self._stopping.is_set():
            return False
        now = time.monotonic()
        alive = False
        for child in self.children.values():
            if child.finished:
                continue
            alive = True
            if child.spec.standby and now >= child.next_spare_s:
                if child.spare is None or child.spare.poll() is not None:
                    self._start_spare(child)
            if child.process is None:
                if now >= child.next_start_s:
                    self._start(child)
                continue
            code = child.process.poll()
            if code is None:
                continue
            if child.reader is not None:
                child.reader.join(timeout=1.0)
            child.exit_codes.append(code)
            ran_s = now - child.started_s
            child.process = None
            failed = code != 0
            policy = child.spec.restart
            if policy == "never" or (policy == "on-failure" and not failed):
                child.finished = True
                self.log(f"[launch] {child.spec.name} exited with code {code}")
                continue
            child.failures = 1 if ran_s > self.spec.backoff_max_s else child.failures + 1
            delay = backoff_delay_s(child.failures, self.spec.backoff_initial_s, self.spec.backoff_max_s)
            child.restarts += 1
            if self._promote(child, now):
                child.next_spare_s = now + delay
                self.log(f"[launch] {child.spec.name} exited with code {code}; standby took over")
                continue
            child.next_start_s = now + delay
            self.log(f"[launch] {child.spec.name} exited with code {code}; restarting in {delay:.1f} s")
        return alive

    def run(self, seconds: float | None = None, poll_s: float = 0.05) -> dict[str, list[int]]:
        """Run until every process has finished for good, ``seconds`` have passed, or SIGINT / SIGTERM
        (SIGTERM only when run from the main thread); then stop everything. Returns each process's exit
        codes in order."""
        start = time.monotonic()
        for child in self.children.values():
            child.next_start_s = start + child.spec.start_delay_s
        in_main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _raise_interrupt) if in_main_thread else None
        try:
            while True:
                with self._stop_lock:
                    if not self.poll():
                        break
                if seconds is not None and time.monotonic() - start >= seconds:
                    break
                time.sleep(poll_s)
        except KeyboardInterrupt:
            self.interrupted = True
            self.log("[launch] interrupted; stopping all processes")
        finally:
            self.stop()
            if in_main_thread:
                signal.signal(signal.SIGTERM, previous)
        return {name: list(child.exit_codes) for name, child in self.children.items()}

    def stop(self) -> None:
        """SIGINT to every running process, wait up to ``stop_timeout_s``, SIGKILL the stragglers.
        Safe to call from another thread than :meth:`run`'s; nothing is restarted afterwards."""
        self._stopping.set()
        with self._stop_lock:
            self._stop_all()

    def _stop_all(self) -> None:
        for child in self.children.values():
            if child.spare is not None:
                _signal_group(child.spare, signal.SIGKILL)
                child.spare.wait()
                child.spare = None
        running = [c for c in self.children.values() if c.process is not None and c.process.poll() is None]
        for child in running:
            _signal_group(child.process, signal.SIGINT)
        deadline = time.monotonic() + self.spec.stop_timeout_s
        for child in running:
            try:
                child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.log(
                    f"[launch] {child.spec.name} did not stop in {self.spec.stop_timeout_s} s; killing it"
                )
                _signal_group(child.process, signal.SIGKILL)
                child.process.wait()
        for child in self.children.values():
            if child.process is not None:
                child.exit_codes.append(child.process.returncode)
                if child.reader is not None:
                    child.reader.join(timeout=1.0)
                child.process = None
            child.finished = True


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    """Send ``signum`` to the process group that ``process`` leads (it and any children it started)."""
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def standby_until_promoted(prepare: Callable[[], None]) -> None:
    """In a hot-standby process (``STREAMDET_STANDBY=1``): run ``prepare`` (load and warm up), print
    :data:`STANDBY_READY` and block until SIGUSR1; elsewhere return at once without calling it."""
    if os.environ.get(STANDBY_ENV) != "1":
        return
    promoted = threading.Event()
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: promoted.set())
    try:
        prepare()
        print(STANDBY_READY, flush=True)
        while not promoted.wait(0.05):
            pass
    finally:
        signal.signal(signal.SIGUSR1, previous)
