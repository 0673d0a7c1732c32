"""Transport over real ZeroMQ sockets (ipc:// and tcp://127.0.0.1) and real CLI processes: start order,
subscriber counting, topic filters, drops versus lossless delivery, a receiver fed over 1,000 bad
messages, the subscribe() iterator, CURVE, and the broker and subscribe commands."""

from __future__ import annotations

import _thread
import collections
import json
import logging
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import zmq

from streamdet import bus, wire
from streamdet.errors import UserFacingError
from streamdet.events import EVENT_DTYPE

SENSOR = (640, 480)


def ipc_endpoint() -> str:
    return f"ipc:///tmp/streamdet-test-bus-{uuid.uuid4().hex[:12]}"


def tcp_endpoint() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


def endpoint(transport: str) -> str:
    return ipc_endpoint() if transport == "ipc" else tcp_endpoint()


def make_events(count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    events = np.empty(count, dtype=EVENT_DTYPE)
    events["x"] = rng.integers(0, SENSOR[0], count)
    events["y"] = rng.integers(0, SENSOR[1], count)
    events["t"] = np.sort(rng.integers(0, 1_000_000, count))
    events["p"] = rng.integers(0, 2, count).astype(bool)
    return events


def receive_all(subscriber: bus.Subscriber, idle_ms: int = 300) -> list[wire.Message]:
    """Messages until ``idle_ms`` pass without one."""
    received = []
    while (message := subscriber.receive(idle_ms)) is not None:
        received.append(message)
    return received


@pytest.mark.parametrize("transport", ["ipc", "tcp"])
@pytest.mark.parametrize("subscriber_first", [True, False], ids=["subscriber-first", "publisher-first"])
def test_every_message_arrives_in_order_whichever_side_starts_first(
    transport: str, subscriber_first: bool
) -> None:
    address = endpoint(transport)
    sent_events = [make_events(500 + index, seed=index) for index in range(20)]
    subscriber = bus.Subscriber(address, ["events/cam0"]) if subscriber_first else None
    with bus.Publisher(address) as publisher:
        if subscriber is None:
            time.sleep(0.05)
            subscriber = bus.Subscriber(address, ["events/cam0"])
        assert publisher.wait_for_subscribers(1, timeout_s=5)
        stamped = [publisher.send(wire.events_message("cam0", events, SENSOR)) for events in sent_events]
        stamped.append(publisher.send(wire.eos_message("cam0", "events", SENSOR)))
        with subscriber:
            received = receive_all(subscriber)
    assert [message.seq for message in stamped] == list(range(21))
    assert [message.seq for message in received] == list(range(21))
    for events, message in zip(sent_events, received, strict=False):
        assert np.array_equal(message.payload, events)
    assert received[-1].kind == "eos" and received[-1].topic == "events/cam0"
    assert subscriber.stats.received == 21 and subscriber.stats.dropped == 0 and not subscriber.stats.rejected


def test_publisher_counts_subscribers_as_they_come_and_go() -> None:
    address = ipc_endpoint()
    with bus.Publisher(address) as publisher:
        started = time.monotonic()
        assert not publisher.wait_for_subscribers(1, timeout_s=0.2)
        assert 0.2 <= time.monotonic() - started < 1.0
        first = bus.Subscriber(address, ["events/a", "events/b", "detections"])
        second = bus.Subscriber([address], ["events/a"])
        assert publisher.wait_for_subscribers(2, timeout_s=5)
        assert publisher.subscriber_count == 2
        assert not publisher.wait_for_subscribers(3, timeout_s=0.1)
        second.close()
        deadline = time.monotonic() + 5
        while publisher.subscriber_count != 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert publisher.subscriber_count == 1
        first.close()


def test_exact_topics_do_not_match_longer_stream_names() -> None:
    address = ipc_endpoint()
    rows = np.array([[0, 0, 4, 4, 0.5, 0]], dtype=np.float32)
    with bus.Publisher(address) as publisher, bus.Subscriber(address, ["events/cam1", "detections"]) as sub:
        assert publisher.wait_for_subscribers(1, timeout_s=5)
        publisher.send(wire.events_message("cam1", make_events(10), SENSOR))
        publisher.send(wire.events_message("cam10", make_events(10), SENSOR))
        publisher.send(wire.spikes_message("cam1", np.zeros((2, 4, 8), dtype=bool), 0, 50))
        publisher.send(wire.detections_message("cam10", rows, ["boat"], SENSOR, 0, 50_000, latency_ms=1.0))
        received = receive_all(sub)
    assert [message.topic for message in received] == ["events/cam1", "detections/cam10"]
    assert sub.stats.ignored == 1 and sub.stats.received == 2


def test_slow_subscriber_loses_messages_and_counts_the_gaps() -> None:
    address = ipc_endpoint()
    events = make_events(100_000)
    with bus.Publisher(address, hwm=4) as publisher, bus.Subscriber(address, ["events"], hwm=4) as sub:
        assert publisher.wait_for_subscribers(1, timeout_s=5)
        started = time.monotonic()
        for _ in range(200):
            publisher.send(wire.events_message("cam0", events, SENSOR))
        sending_s = time.monotonic() - started
        received = receive_all(sub)
        # One more message once the queues have drained: on a loaded machine the whole tail of the
        # burst may be lost, and a gap only shows when a later message arrives.
        publisher.send(wire.events_message("cam0", make_events(10), SENSOR))
        received += receive_all(sub)
    last_seq = received[-1].seq
    assert last_seq == 200
    assert len(received) < 201 and sub.stats.dropped > 0
    assert len(received) + sub.stats.dropped == last_seq + 1
    assert sub.stats.dropped_by_topic == {"events/cam0": sub.stats.dropped}
    assert sending_s < 5.0


def test_lossless_publisher_waits_for_a_slow_subscriber() -> None:
    address = ipc_endpoint()
    events = make_events(100_000)
    publisher = bus.Publisher(address, hwm=2, lossless=True)
    subscriber = bus.Subscriber(address, ["events/cam0"], hwm=2)
    assert publisher.wait_for_subscribers(1, timeout_s=5)

    def send_all() -> None:
        for _ in range(30):
            publisher.send(wire.events_message("cam0", events, SENSOR))

    sender = threading.Thread(target=send_all)
    sender.start()
    time.sleep(0.5)
    blocked = sender.is_alive()
    received = [subscriber.receive(5000) for _ in range(30)]
    sender.join()
    assert subscriber.receive(100) is None
    publisher.close()
    subscriber.close()
    assert blocked
    assert [message.seq for message in received] == list(range(30))
    assert subscriber.stats.dropped == 0


def malformed_messages(rng: random.Random, count: int) -> list[list[bytes]]:
    """Bad messages of the kinds a receiver must survive, then random corruptions of good ones."""
    good = wire.events_message("cam0", make_events(300), SENSOR).with_seq(0)
    topic, header, payload = (bytes(frame) for frame in wire.pack(good))
    fields = json.loads(header)
    spikes = [
        bytes(frame) for frame in wire.pack(wire.spikes_message("cam0", np.ones((2, 8, 8), bool), 0, 50))
    ]
    boxes = [
        bytes(frame)
        for frame in wire.pack(
            wire.detections_message("cam0", np.ones((3, 6), np.float32), ["a", "b"], SENSOR, 0, 1)
        )
    ]

    def with_fields(**changes) -> bytes:
        return json.dumps({**fields, **changes}).encode()

    templates = [
        lambda: [topic, with_fields(v=rng.choice([0, 2, 99, "1", None])), payload],
        lambda: [topic, header, payload[: rng.randrange(len(payload))]],
        lambda: [
            topic,
            with_fields(dtype=rng.choice(["<f4", "int16", "", "x:<i4,y:<i4,t:<i8,p:?"])),
            payload,
        ],
        lambda: [topic, bytes(rng.randrange(256) for _ in range(rng.randint(1, 60))), payload],
        lambda: [topic, b"{" + header, payload],
        lambda: [topic, with_fields(count=rng.choice([10**9, 10**12, 2**62])), payload],
        lambda: [spikes[0], spikes[1].replace(b'"count":2', b'"count":100000000'), spikes[2]],
        lambda: [topic, with_fields(sensor=[rng.choice([0, -5, 10**6]), 480]), payload],
        lambda: [topic, header],
        lambda: [boxes[0], boxes[1], boxes[2][:-4]],
    ]
    messages = [rng.choice(templates)() for _ in range(count // 2)]
    originals = [[topic, header, payload], spikes, boxes]
    while len(messages) < count:
        frames = list(rng.choice(originals))
        index = rng.randrange(3)
        data = bytearray(frames[index])
        for _ in range(rng.randint(1, 3)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        frames[index] = bytes(data)
        messages.append(frames)
    return messages


@pytest.mark.parametrize("transport", ["ipc", "tcp"])
def test_receiver_survives_and_counts_over_a_thousand_malformed_messages(
    transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    address = endpoint(transport)
    rng = random.Random(7)
    bad = malformed_messages(rng, 1200)
    expected: collections.Counter[str] = collections.Counter()
    passes = 0
    for frames in bad:
        try:
            wire.unpack(frames)
            passes += 1
        except wire.WireError as error:
            expected[error.reason] += 1
    assert sum(expected.values()) >= 1000 and len(expected) >= 8
    good = [
        [
            bytes(frame)
            for frame in wire.pack(wire.events_message("cam0", make_events(50, i), SENSOR).with_seq(i))
        ]
        for i in range(len(bad) // 20)
    ]
    context = zmq.Context()
    context.setsockopt(zmq.LINGER, 0)  # never hang on garbage collection
    raw = context.socket(zmq.XPUB)
    raw.setsockopt(zmq.SNDHWM, 0)
    raw.bind(address)
    caplog.set_level(logging.WARNING, logger="streamdet.bus")
    try:
        with bus.Subscriber(address, [""], hwm=0) as subscriber:
            raw.recv()
            for index, frames in enumerate(bad):
                raw.send_multipart(frames)
                if index % 20 == 0:
                    raw.send_multipart(good[index // 20])
            raw.send_multipart(as_frames(wire.eos_message("cam0", "events", SENSOR).with_seq(len(good))))
            received = []
            while (message := subscriber.receive(5000)) is not None:
                received.append(message)
                if message.kind == "eos":
                    break
    finally:
        raw.close(linger=0)
        context.term()
    assert received[-1].kind == "eos"
    assert subscriber.stats.rejected == dict(expected)
    assert subscriber.stats.received == len(good) + passes + 1
    warnings = [record for record in caplog.records if record.name == "streamdet.bus"]
    assert 0 < len(warnings) <= 4 * len(expected)


def as_frames(message: wire.Message) -> list[bytes]:
    return [bytes(frame) for frame in wire.pack(message)]


def test_subscribe_iterator_ends_when_every_stream_has_ended() -> None:
    address = ipc_endpoint()
    collected: list[wire.Message] = []
    with bus.Publisher(address) as publisher:
        consumer = threading.Thread(target=lambda: collected.extend(bus.subscribe(address, "events", 10_000)))
        consumer.start()
        assert publisher.wait_for_subscribers(1, timeout_s=5)
        for stream in ("cam0", "cam1", "cam0"):
            publisher.send(wire.events_message(stream, make_events(20), SENSOR))
        publisher.send(wire.eos_message("cam0", "events", SENSOR))
        publisher.send(wire.events_message("cam1", make_events(20), SENSOR))
        publisher.send(wire.eos_message("cam1", "events", SENSOR))
        consumer.join(timeout=10)
    assert not consumer.is_alive()
    assert [(message.stream, message.seq) for message in collected] == [
        ("cam0", 0),
        ("cam1", 0),
        ("cam0", 1),
        ("cam1", 1),
    ]


def test_curve_admits_only_clients_with_the_right_keys(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An admitted client receives; a client with an unknown key and one without CURVE receive nothing,
    and both sides log it: the publisher the refused key, the refused client that it was refused."""
    caplog.set_level(logging.WARNING, logger="streamdet.bus")
    address = tcp_endpoint()
    clients = tmp_path / "clients"
    server_public_file, server_secret_file = bus.write_curve_certificates(tmp_path / "server", "broker")
    _, admitted_secret_file = bus.write_curve_certificates(clients, "viewer")
    server = bus.load_server_keys(server_secret_file, str(clients))
    admitted = bus.load_client_keys(admitted_secret_file, server_public_file)
    stranger = bus.CurveClientKeys(server.public_key, *bus.curve_keypair())
    with (
        bus.Publisher(address, curve=server) as publisher,
        bus.Subscriber(address, curve=admitted) as good,
        bus.Subscriber(address, curve=stranger) as bad,
        bus.Subscriber(address) as plain,
    ):
        assert publisher.wait_for_subscribers(1, timeout_s=5)
        assert not publisher.wait_for_subscribers(2, timeout_s=0.3)
        publisher.send(wire.events_message("cam0", make_events(10), SENSOR))
        assert good.receive(2000).count == 10
        assert bad.receive(100) is None and plain.receive(100) is None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "refused this client" not in caplog.text:
            bad.receive(100)
    stranger_key = zmq.utils.z85.encode(zmq.utils.z85.decode(stranger.public_key)).decode()
    assert f"CURVE: refused client key {stranger_key}" in caplog.text
    assert "the server refused this client's CURVE key" in caplog.text


def blocked_signals(native_thread_id: int) -> set[int]:
    """The signals a thread of this process blocks, from ``/proc/self/task/<id>/status``."""
    status = Path(f"/proc/self/task/{native_thread_id}/status").read_text()
    mask = int(next(line for line in status.splitlines() if line.startswith("SigBlk:")).split()[1], 16)
    return {number for number in range(1, 65) if mask >> (number - 1) & 1}


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads thread signal masks from /proc")
def test_the_authenticator_thread_leaves_ctrl_c_to_the_main_thread(tmp_path: Path) -> None:
    """A CURVE publisher's (or broker's) ZAP thread blocks SIGINT and SIGTERM, so the kernel never hands
    them to it while the main thread sleeps in libzmq (a broker once went on after Ctrl-C so); the main
    thread's own mask is as it was."""
    _, server_secret_file = bus.write_curve_certificates(tmp_path / "server", "broker")
    bus.write_curve_certificates(tmp_path / "clients", "viewer")
    server = bus.load_server_keys(server_secret_file, str(tmp_path / "clients"))
    main_before = blocked_signals(threading.get_native_id())
    with bus.Publisher(tcp_endpoint(), curve=server) as publisher:
        zap_thread = publisher._authenticator.thread
        assert {signal.SIGINT, signal.SIGTERM} <= blocked_signals(zap_thread.native_id)
        assert blocked_signals(threading.get_native_id()) == main_before
        assert signal.SIGINT not in main_before


def test_bad_endpoints_are_user_facing_errors() -> None:
    address = tcp_endpoint()
    with bus.Publisher(address):
        with pytest.raises(UserFacingError, match="cannot bind"):
            bus.Publisher(address)
    with pytest.raises(UserFacingError, match="cannot connect"):
        bus.Subscriber("nowhere://cam")
    with pytest.raises(UserFacingError, match="frontend"):
        bus.run_broker(None, ipc_endpoint())


def streamdet(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "streamdet", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.timeout(60)
def test_broker_stops_on_a_ctrl_c_that_wakes_no_system_call() -> None:
    """The broker routes a message, then gets a Ctrl-C that interrupts no system call (as one does that
    arrives while libzmq forwards rather than waits; ``_thread.interrupt_main`` only notes it): it
    stops. (With the proxy in the calling thread it slept on in C until the test's timeout.)"""
    frontend, backend = ipc_endpoint(), ipc_endpoint()
    outcome: dict[str, object] = {}

    def send_one_then_press_ctrl_c() -> None:
        with (
            bus.Publisher(frontend, connect=True, linger_ms=0) as publisher,
            bus.Subscriber(backend, ["events"]) as subscriber,
        ):
            publisher.wait_for_subscribers(1, timeout_s=30)
            publisher.send(wire.events_message("cam0", make_events(20), SENSOR))
            outcome["received"] = subscriber.receive(10_000)
        outcome["pressed_at"] = time.monotonic()
        _thread.interrupt_main()

    sender = threading.Thread(target=send_one_then_press_ctrl_c, daemon=True)
    sender.start()
    with pytest.raises(KeyboardInterrupt):
        bus.run_broker(frontend, backend)
    stopped_after_s = time.monotonic() - outcome["pressed_at"]
    sender.join()
    assert outcome["received"] is not None and outcome["received"].count == 20
    assert stopped_after_s < 5.0  # generous for a busy machine: it takes one INTERRUPT_CHECK_MS


def test_broker_and_subscribe_commands_route_count_and_stop_cleanly(tmp_path: Path) -> None:
    """A CURVE broker (frontend and backend) between a driver-style publisher that binds, a publisher
    that connects, and a raw socket sending a bad message; a CURVE `subscribe` process and an
    in-process subscriber behind it; Ctrl-C ends both commands with a summary / no traceback."""
    frontend, backend, upstream, bad_upstream = (ipc_endpoint() for _ in range(4))
    broker_public, broker_secret = bus.write_curve_certificates(tmp_path / "keys", "broker")
    _, viewer_secret = bus.write_curve_certificates(tmp_path / "clients", "viewer")
    _, camera_secret = bus.write_curve_certificates(tmp_path / "publishers", "camera")
    broker = streamdet(
        "broker", "--frontend", frontend, "--backend", backend, "--upstream", upstream,
        "--upstream", bad_upstream, "--curve-cert", str(broker_secret),
        "--curve-clients", str(tmp_path / "clients"), "--curve-publishers", str(tmp_path / "publishers"),
    )  # fmt: skip
    watcher = streamdet(
        "subscribe", backend, "--topic", "events/cam0", "--json",
        "--curve-cert", str(viewer_secret), "--curve-server-key", str(broker_public),
    )  # fmt: skip
    client_keys = bus.load_client_keys(viewer_secret, broker_public)
    bound = bus.Publisher(upstream)
    connecting = bus.Publisher(
        frontend, connect=True, curve=bus.load_client_keys(camera_secret, broker_public)
    )
    forger = bus.Publisher(frontend, connect=True, curve=client_keys)  # a subscriber's key
    raw_context = zmq.Context()
    raw_context.setsockopt(zmq.LINGER, 0)  # never hang on garbage collection
    raw = raw_context.socket(zmq.XPUB)
    try:
        raw.bind(bad_upstream)
        with (
            bus.Subscriber(backend, ["events"], curve=client_keys) as direct,
            bus.Subscriber(backend, ["events"]) as plain,
        ):
            assert bound.wait_for_subscribers(2, timeout_s=60)
            assert connecting.wait_for_subscribers(2, timeout_s=10)
            raw.recv()
            for _ in range(3):
                bound.send(wire.events_message("cam0", make_events(100), SENSOR))
            connecting.send(wire.events_message("cam1", make_events(7), SENSOR))
            for _ in range(30):
                forger.send(wire.events_message("cam9", make_events(5), SENSOR))
            raw.send_multipart([b"events/cam0", b'{"v": 7}', b""])
            time.sleep(0.3)
            bound.send(wire.eos_message("cam0", "events", SENSOR))
            received = receive_all(direct, idle_ms=1000)
            assert plain.receive(0) is None and plain.stats.received == 0
            lines = [watcher.stdout.readline() for _ in range(4)]
            watcher.send_signal(signal.SIGINT)
            output, errors = watcher.communicate(timeout=10)
        bound.close()
        connecting.close()
        forger.close()
        raw.close(linger=0)
        raw_context.term()
        broker.send_signal(signal.SIGINT)
        _, broker_errors = broker.communicate(timeout=30)  # generous: the suite may share a busy machine
    finally:
        bound.close()
        connecting.close()
        forger.close()
        if not raw_context.closed:
            raw.close(linger=0)
            raw_context.term()
        for process in (broker, watcher):
            if process.poll() is None:
                process.kill()
    assert sorted((message.stream, message.kind) for message in received) == [
        ("cam0", "eos"),
        ("cam0", "events"),
        ("cam0", "events"),
        ("cam0", "events"),
        ("cam1", "events"),
    ]
    assert direct.stats.rejected == {"bad-version": 1}
    assert watcher.returncode == 130, errors
    assert [line.split()[:3] for line in lines] == [
        ["events", "cam0", "seq=0"],
        ["events", "cam0", "seq=1"],
        ["events", "cam0", "seq=2"],
        ["eos", "cam0", "seq=3"],
    ]
    assert "events/s" in lines[0] and "end of events/cam0" in lines[3]
    summary = json.loads(output.splitlines()[-1])
    assert summary["messages"] == 4 and summary["events"] == 300
    assert summary["rejected"] == {"bad-version": 1} and summary["dropped"] == 0
    assert broker.returncode == 130 and "Traceback" not in broker_errors
    assert "CURVE: refused client key" in broker_errors and "to publish" in broker_errors


def test_a_publisher_joining_a_broker_hears_every_topic_before_any_subscriber() -> None:
    """A broker replays the subscriptions it holds to a publisher that connects later, in byte order:
    every topic must come before the hellos, so that a subscriber counted by ``wait_for_subscribers``
    is one the publisher already sends to. (Hellos first, a busy machine could deliver them in one read
    and the topics in the next: the first message after the wait was filtered out and lost.)"""
    frontend, backend = ipc_endpoint(), ipc_endpoint()
    broker = streamdet("broker", "--frontend", frontend, "--backend", backend)
    context = zmq.Context()
    context.setsockopt(zmq.LINGER, 0)
    listener = context.socket(zmq.XPUB)
    listener.setsockopt(zmq.XPUB_VERBOSE, 1)
    try:
        with (
            bus.Subscriber(backend, ["events"]) as cars,
            bus.Subscriber(backend, ["detections/cam0"]) as boats,
        ):
            with bus.Publisher(frontend, connect=True) as first:
                assert first.wait_for_subscribers(2, timeout_s=60)  # the broker holds both now
            listener.connect(frontend)
            notices = []
            while listener.poll(1000, zmq.POLLIN):
                notices.append(listener.recv())
            with bus.Publisher(frontend, connect=True) as late:
                assert late.wait_for_subscribers(2, timeout_s=30)
                late.send(wire.events_message("cam0", make_events(5), SENSOR))
                boat = np.array([[0, 0, 4, 4, 0.9, 0]])
                late.send(wire.detections_message("cam0", boat, ["boat"], SENSOR, 0, 1))
                received = [cars.receive(10_000), boats.receive(10_000)]
                assert [message.kind for message in received if message] == ["events", "detections"]
    finally:
        listener.close()
        context.term()
        broker.send_signal(signal.SIGINT)
        try:
            broker.communicate(timeout=30)
        finally:
            if broker.poll() is None:
                broker.kill()
    hellos = [at for at, notice in enumerate(notices) if notice[1:].startswith(bus.HELLO_PREFIX)]
    topics = [notice for notice in notices if not notice[1:].startswith(bus.HELLO_PREFIX)]
    assert sorted(topics) == [b"\x01detections/cam0", b"\x01events/"] and len(hellos) == 2
    assert hellos == [len(notices) - 2, len(notices) - 1], notices


def test_a_kept_ctrl_c_is_raised_by_the_next_receive_and_send_once() -> None:
    """What ``keep_swallowed_interrupt`` keeps (a Ctrl-C dropped in a finalizer) comes out of the next
    ``receive`` (also one that waits forever) and ``send``, once each; other exceptions go on to the
    default hook."""
    address = ipc_endpoint()
    pressed = type("Unraisable", (), {"exc_type": KeyboardInterrupt})()
    try:
        with bus.Publisher(address, linger_ms=0) as publisher, bus.Subscriber(address) as subscriber:
            bus.keep_swallowed_interrupt(pressed)
            with pytest.raises(KeyboardInterrupt):
                subscriber.receive(0)
            assert subscriber.receive(0) is None
            threading.Timer(0.3, bus.keep_swallowed_interrupt, (pressed,)).start()
            started = time.monotonic()
            with pytest.raises(KeyboardInterrupt):
                subscriber.receive()  # no message comes: only the kept Ctrl-C ends the wait
            assert time.monotonic() - started < 10  # without the check it waits for ever
            bus.keep_swallowed_interrupt(pressed)
            with pytest.raises(KeyboardInterrupt):
                publisher.send(wire.events_message("cam0", make_events(5), SENSOR))
            publisher.send(wire.events_message("cam0", make_events(5), SENSOR))
    finally:
        bus._swallowed_interrupt = False


# A Ctrl-C that lands in a finalizer, as one landing in pyzmq's Frame.__dealloc__ does (which cannot be
# made to happen on cue): raised in a timer thread's finalizer, Python prints and drops it.
_CTRL_C_IN_A_FINALIZER = """
import sys, threading
from streamdet.cli import main
class PressedWhileFreed:
    def __del__(self):
        raise KeyboardInterrupt
threading.Timer(0.5, PressedWhileFreed).start()
sys.exit(main(["subscribe", sys.argv[1]]))
"""


def test_subscribe_stops_on_a_ctrl_c_dropped_in_a_finalizer() -> None:
    """``streamdet subscribe`` waiting on an endpoint where nothing is published (a real process): a
    Ctrl-C raised in a finalizer, where Python can only drop it, still ends it with its summary and
    exit code 130 (a detector on a busy stream once went on after Ctrl-C this way)."""
    process = subprocess.Popen(
        [sys.executable, "-c", _CTRL_C_IN_A_FINALIZER, ipc_endpoint()],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        output, errors = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, errors
    assert output.startswith("summary: 0 messages"), output
    assert "Traceback" not in errors, errors


def raw_xpub(address: str) -> tuple[zmq.Context, zmq.Socket]:
    """A plain pyzmq XPUB socket bound to ``address``, for sending hand-numbered wire frames."""
    context = zmq.Context()
    context.setsockopt(zmq.LINGER, 0)
    sender = context.socket(zmq.XPUB)
    sender.bind(address)
    return context, sender


def test_sequence_jumps_are_not_drops_and_a_stray_end_of_stream_is_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """seq 0, 1, then 2**62 (a forged or restarted numbering): 0 dropped, one jump; a gap of 3 is 3
    dropped; an end-of-stream numbered at or below the data it would end is refused, the next one in
    sequence ends the stream."""
    caplog.set_level(logging.WARNING, logger="streamdet.bus")
    address = ipc_endpoint()
    context, sender = raw_xpub(address)
    try:
        with bus.Subscriber(address, ["events/cam0"]) as subscriber:
            assert sender.poll(10_000)
            events = make_events(5)
            numbers = [0, 1, 1 << 62, (1 << 62) + 4]
            for seq in numbers:
                sender.send_multipart(wire.pack(wire.events_message("cam0", events, SENSOR).with_seq(seq)))
            for seq in (3, (1 << 62) + 4, (1 << 62) + 5):
                sender.send_multipart(wire.pack(wire.eos_message("cam0", "events", SENSOR).with_seq(seq)))
            received = receive_all(subscriber)
    finally:
        sender.close(linger=0)
        context.term()
    assert [message.seq for message in received] == [*numbers, (1 << 62) + 5]
    assert received[-1].kind == "eos"
    assert subscriber.stats.dropped == 3 and subscriber.stats.sequence_jumps == 1
    assert subscriber.stats.rejected == {"eos-out-of-sequence": 2}
    assert "not counted as drops" in caplog.text and "ignored an end-of-stream" in caplog.text


def test_latest_only_hands_out_the_newest_per_topic_and_every_end_of_stream() -> None:
    """A subscriber that was away while 50 packets of two streams queued up gets, per stream, the newest
    packet and then the end-of-stream; the skipped 96 are counted. Every message carries its send time,
    so the subscriber knows how stale what it reads is."""
    address = ipc_endpoint()
    with bus.Publisher(address) as publisher, bus.Subscriber(address, latest_only=True) as subscriber:
        assert publisher.wait_for_subscribers(1, timeout_s=10)
        for index in range(50):
            for stream in ("cam0", "cam1"):
                publisher.send(wire.events_message(stream, make_events(10, seed=index), SENSOR))
        publisher.send(wire.eos_message("cam0", "events", SENSOR))
        time.sleep(0.5)
        received = receive_all(subscriber)
    assert [(message.stream, message.kind, message.seq) for message in received] == [
        ("cam0", "events", 49),
        ("cam1", "events", 49),
        ("cam0", "eos", 50),
    ]
    assert subscriber.stats.conflated == 98 and subscriber.stats.dropped == 0
    assert all(isinstance(message.extra["sent_us"], int) for message in received)
    assert 0 <= subscriber.stats.last_age_ms < 60_000 and subscriber.stats.max_age_ms >= 300


def test_a_second_publisher_on_a_live_ipc_path_is_refused_and_a_stale_one_is_reused(tmp_path: Path) -> None:
    """ZeroMQ binds an ipc path over a live one without a word (the first publisher silently loses its
    subscribers); ours refuses as tcp does. A socket file nobody listens on (a killed process's) is
    taken over."""
    address = f"ipc://{tmp_path}/cam"
    with bus.Publisher(address):
        with pytest.raises(UserFacingError, match="Address already in use"):
            bus.Publisher(address)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(tmp_path / "stale"))
    stale.close()  # the file stays, nobody listens
    with bus.Publisher(f"ipc://{tmp_path}/stale") as publisher, bus.Subscriber(publisher.endpoint) as sub:
        assert publisher.wait_for_subscribers(1, timeout_s=10)
        publisher.send(wire.events_message("cam0", make_events(3), SENSOR))
        assert sub.receive(5000).count == 3
    with pytest.raises(UserFacingError, match=r"Invalid argument.*an endpoint is tcp://HOST:PORT, ipc://PATH"):
        bus.Publisher("tcp://nohost")


def test_subscribe_counts_boxes_for_detections() -> None:
    """``streamdet subscribe`` on detections shows a box rate (it showed "0 events/s")."""
    address = ipc_endpoint()
    rows = np.array([[1, 2, 30, 40, 0.9, 0], [5, 6, 20, 30, 0.8, 1]], dtype=np.float32)
    with bus.Publisher(address) as publisher:
        watcher = streamdet("subscribe", address, "--count", "3", "--json")
        try:
            assert publisher.wait_for_subscribers(1, timeout_s=60)
            for index in range(3):
                message = wire.detections_message("cam0", rows, ["boat", "buoy"], SENSOR, index, index + 1)
                publisher.send(message)
                time.sleep(0.05)
            output, errors = watcher.communicate(timeout=60)
        finally:
            if watcher.poll() is None:
                watcher.kill()
    lines = output.splitlines()
    assert all("boxes/s" in line and "events/s" not in line for line in lines[:3]), lines
    assert float(lines[2].split()[-2]) > 0
    summary = json.loads(lines[-1])
    assert summary["boxes"] == 6 and summary["boxes_per_s"] > 0 and summary["events"] == 0


@pytest.mark.parametrize(
    ("command", "options", "message"),
    [
        (["detect", "--input", "tcp://127.0.0.1:1", "--output", "tcp://127.0.0.1:2"],
         ["--curve-server-key", "KEY"], "--curve-server-key needs --curve-cert"),
        (["detect", "--input", "tcp://127.0.0.1:1", "--output", "tcp://127.0.0.1:2"],
         ["--curve-cert", "CERT"], "--curve-cert needs --curve-server-key"),
        (["view", "tcp://127.0.0.1:1"], ["--curve-cert", "CERT"], "--curve-cert needs --curve-server-key"),
        (["drive", "synthetic", "--preset", "maritime", "--endpoint", "tcp://127.0.0.1:1"],
         ["--curve-clients", "DIR"], "--curve-clients needs --curve-cert"),
        (["replay", "FILE", "--endpoint", "tcp://127.0.0.1:1"], ["--curve-cert", "missing.key_secret"],
         "missing.key_secret: not a ZeroMQ CURVE certificate"),
    ],
)  # fmt: skip
def test_every_socket_command_takes_the_curve_options(command, options, message, capsys) -> None:
    """The CURVE options of detect, view, drive and replay are checked before anything else runs."""
    from streamdet.cli import build_parser

    args = build_parser(command[0]).parse_args([*command, *options])
    with pytest.raises(UserFacingError, match=message):
        args.func(args)
