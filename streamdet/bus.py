"""The transport: publishers and validating subscribers of ``streamdet.wire`` messages over ZeroMQ.

- ``Publisher`` binds (or, behind a broker, connects) an XPUB socket. It stamps a sequence number per
  topic (from 0) and by default never blocks: when a subscriber's queue (``hwm`` messages) is full,
  that subscriber misses messages, which it sees as gaps in the sequence numbers. ``lossless=True``
  sets ``ZMQ_XPUB_NODROP``: ``send`` blocks instead until every subscriber has room (replay -> record).
- ``Subscriber`` connects a SUB socket to one or more endpoints (before or after the publishers bind;
  ZeroMQ reconnects), validates every message with ``wire.unpack`` and counts, in ``stats``, the
  messages received, the rejects by reason (logged, at most once per second per reason) and the
  messages dropped upstream (sequence gaps, per topic). A bad message is never fatal.
- Each ``Subscriber`` also subscribes to a topic of its own, ``HELLO_PREFIX + <random id>``, that no
  publisher sends on; through the XPUB socket a publisher sees these ids arrive and leave, which is how
  ``Publisher.wait_for_subscribers`` counts subscribers, through a broker as well.
- ``run_broker`` is an XSUB/XPUB proxy where many publishers and subscribers meet.
- ``tcp://`` links can be encrypted and authenticated with ZeroMQ CURVE (``CurveServerKeys`` on the
  binding side, ``CurveClientKeys`` on the connecting side).

Ctrl-C: pyzmq checks for signals in every call, also while it frees a received or sent frame
(``Frame.__dealloc__``), where Python cannot raise: a Ctrl-C landing there would be printed and dropped,
and the process would go on. ``keep_swallowed_interrupt`` (the command line's ``sys.unraisablehook``)
remembers it, and the next ``Publisher.send`` or ``Subscriber.receive`` raises it.

Topic filters: ``""`` is everything, a kind (``"events"`` or ``"events/"``) is every stream of that
kind, ``"<kind>/<stream>"`` is exactly that stream (``events/cam1`` does not match ``events/cam10``).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import math
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from streamdet import wire
from streamdet.errors import UserFacingError

LOG = logging.getLogger(__name__)

HELLO_PREFIX = b"\xffstreamdet-hello/"
"""Topic prefix of the per-subscriber presence subscription (never published on: no UTF-8 topic starts
with the byte 0xff). A broker tells a publisher that connects to it about the subscriptions it holds
in byte order, so this prefix makes every subscriber's topics arrive before its hello: a publisher that
counts a subscriber is already sending it what it asked for. (With a prefix that sorts first, a busy
machine could deliver the hellos in one read and the topics in the next, and ``wait_for_subscribers``
returned while the first messages were still filtered out.)"""

DEFAULT_HWM = 1000
"""Default high-water mark: messages queued per peer before a publisher drops (or blocks if lossless)."""

REJECT_LOG_INTERVAL_S = 1.0

MAX_SEQUENCE_GAP = 1_000_000
"""A sequence gap larger than this is not counted as drops (no queue of ``hwm`` messages loses a
million in a row): it is a publisher that restarted with another numbering or a forged number, counted
in ``stats.sequence_jumps`` and logged."""

MAX_TRACKED_TOPICS = 4096
"""Topics whose sequence numbers a subscriber remembers; beyond, the least recently seen is forgotten
(a flood of new stream names cannot grow a subscriber's memory)."""

STALE_AFTER_S = 2.0
"""A subscriber warns (throttled) when messages arrive later than this after they were sent."""

CONFLATE_DRAIN_MAX = 10_000
"""Messages a "latest only" subscriber reads per turn at most before handing out the newest."""

INTERRUPT_CHECK_MS = 100
"""A receive that waits looks at least this often (milliseconds) for a Ctrl-C kept from a finalizer."""

_swallowed_interrupt = False
"""A ``KeyboardInterrupt`` was raised where Python had to drop it; ``raise_swallowed_interrupt`` raises it."""


def keep_swallowed_interrupt(unraisable: object) -> None:
    """``sys.unraisablehook`` that keeps a Ctrl-C raised in a finalizer for the next send or receive.

    pyzmq 27's ``_check_rc`` calls ``PyErr_CheckSignals`` in every call, also in ``Frame.__dealloc__``:
    a SIGINT arriving while a frame is freed raises its ``KeyboardInterrupt`` there, Python prints and
    drops it, and a detector on a busy stream ignored Ctrl-C this way. The interrupt cannot be raised
    again from here (it would land in this hook and be dropped too), so it is only remembered, by an
    assignment, which checks no signal. Other exceptions go to the default hook."""
    global _swallowed_interrupt
    if getattr(unraisable, "exc_type", None) is KeyboardInterrupt:
        _swallowed_interrupt = True
    else:
        sys.__unraisablehook__(unraisable)


def raise_swallowed_interrupt() -> None:
    """Raise the ``KeyboardInterrupt`` that ``keep_swallowed_interrupt`` kept, once; else nothing."""
    global _swallowed_interrupt
    if _swallowed_interrupt:
        _swallowed_interrupt = False
        raise KeyboardInterrupt


@dataclass(frozen=True)
class CurveServerKeys:
    """CURVE keys of a binding socket (publisher, broker): its Z85 key pair and, optionally, a directory
    of client public-key certificates; when given, only those clients may connect (ZAP authentication),
    otherwise any client that knows ``public_key`` may (encryption only)."""

    public_key: bytes
    secret_key: bytes
    authorized_clients: str | None = None


@dataclass(frozen=True)
class CurveClientKeys:
    """CURVE keys of a connecting socket: the server's Z85 public key and the client's own key pair."""

    server_public_key: bytes
    public_key: bytes
    secret_key: bytes


def curve_keypair() -> tuple[bytes, bytes]:
    """A new Z85 ``(public_key, secret_key)`` pair."""
    import zmq

    return zmq.curve_keypair()


def write_curve_certificates(directory: str | Path, name: str) -> tuple[Path, Path]:
    """Write a new key pair as ZeroMQ certificates ``<name>.key`` (public) and ``<name>.key_secret``
    into ``directory``; returns both paths."""
    import zmq.auth

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    public, secret = zmq.auth.create_certificates(str(directory), name)
    return Path(public), Path(secret)


def _load_certificate(path: str | Path, need_secret: bool) -> tuple[bytes, bytes | None]:
    import zmq.auth

    try:
        public, secret = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as error:
        raise UserFacingError(f"{path}: not a ZeroMQ CURVE certificate ({error})") from error
    if need_secret and secret is None:
        raise UserFacingError(f"{path}: certificate has no secret key (use the .key_secret file)")
    return public, secret


def load_server_keys(
    secret_certificate: str | Path, authorized_clients: str | None = None
) -> CurveServerKeys:
    """``CurveServerKeys`` from a ``.key_secret`` certificate file."""
    public, secret = _load_certificate(secret_certificate, need_secret=True)
    if authorized_clients is not None and not Path(authorized_clients).is_dir():
        raise UserFacingError(f"{authorized_clients}: not a directory of client certificates")
    return CurveServerKeys(public, secret, authorized_clients)


def load_client_keys(secret_certificate: str | Path, server_certificate: str | Path) -> CurveClientKeys:
    """``CurveClientKeys`` from the client's ``.key_secret`` file and the server's public ``.key`` file."""
    public, secret = _load_certificate(secret_certificate, need_secret=True)
    server_public, _ = _load_certificate(server_certificate, need_secret=False)
    return CurveClientKeys(server_public, public, secret)


def _apply_server_curve(socket, keys: CurveServerKeys) -> None:
    socket.curve_secretkey = keys.secret_key
    socket.curve_publickey = keys.public_key
    socket.curve_server = True


def _apply_client_curve(socket, keys: CurveClientKeys) -> None:
    socket.curve_serverkey = keys.server_public_key
    socket.curve_publickey = keys.public_key
    socket.curve_secretkey = keys.secret_key


def _apply_curve(socket, keys: CurveServerKeys | CurveClientKeys) -> None:
    """Server or client CURVE on ``socket``, by the kind of ``keys``."""
    if isinstance(keys, CurveServerKeys):
        _apply_server_curve(socket, keys)
    else:
        _apply_client_curve(socket, keys)


@contextlib.contextmanager
def _stop_signals_blocked() -> Iterator[None]:
    """Block SIGINT and SIGTERM in the calling thread for the block (threads started in it inherit the
    mask and keep them blocked), then restore the mask."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


AUTH_LOG_INTERVAL_S = 10.0
"""Refused CURVE clients are logged at most this often (seconds) per client and place, with a count."""

PUBLISHERS_DOMAIN = "publishers"
SUBSCRIBERS_DOMAIN = "subscribers"
"""ZAP domains of a broker's frontend (publishers) and backend (subscribers): each admits its own
directory of client certificates, so a key admitted to subscribe cannot publish."""


class ThrottledWarnings:
    """Warnings on logger ``streamdet.bus``, at most once per ``interval_s`` per key, each line with the
    count of the same warning since the last one."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._last_at: dict[object, float] = {}
        self._unlogged: dict[object, int] = {}

    def warn(self, key: object, text: str) -> None:
        now = time.monotonic()
        self._unlogged[key] = self._unlogged.get(key, 0) + 1
        if now - self._last_at.get(key, -math.inf) >= self.interval_s:
            count = self._unlogged.pop(key)
            self._last_at[key] = now
            LOG.warning("%s%s", text, f" ({count} times since the last such line)" if count > 1 else "")


def _authenticator_class():
    from zmq.auth.thread import ThreadAuthenticator
    from zmq.utils import z85

    class LoggingAuthenticator(ThreadAuthenticator):
        """pyzmq's ZAP authenticator, logging every refused CURVE client (throttled) as a warning."""

        def __init__(self, context) -> None:
            super().__init__(context, log=LOG)
            self.refusals = ThrottledWarnings(AUTH_LOG_INTERVAL_S)
            self._address = ""

        async def handle_zap_message(self, msg: list[bytes]) -> None:
            self._address = msg[3].decode("utf-8", "replace") if len(msg) > 3 else ""
            await super().handle_zap_message(msg)

        async def _authenticate_curve(self, domain: str, client_key: bytes) -> tuple[bool, bytes]:
            allowed, reason = await super()._authenticate_curve(domain, client_key)
            if not allowed:
                key = z85.encode(client_key).decode()
                place = {PUBLISHERS_DOMAIN: "to publish", SUBSCRIBERS_DOMAIN: "to subscribe"}.get(
                    domain, "to connect"
                )
                self.refusals.warn(
                    (domain, key),
                    f"CURVE: refused client key {key} from {self._address or 'an unknown address'} "
                    f"{place} ({reason.decode('utf-8', 'replace').lower()})",
                )
            return allowed, reason

    return LoggingAuthenticator


def _start_authenticator(context, domains: dict[str, str]):
    """A ZAP authenticator thread admitting, per ZAP domain, the client certificates in that directory
    (``"*"``: sockets without a domain), logging refusals; None when ``domains`` is empty."""
    if not domains:
        return None
    authenticator = _authenticator_class()(context)
    # The thread starts with Ctrl-C and SIGTERM blocked, so the kernel hands them to the main thread:
    # one delivered to this thread would leave the main thread asleep in libzmq (the broker's
    # zmq.proxy), the signal noted but never acted on.
    with _stop_signals_blocked():
        authenticator.start()
    for domain, location in domains.items():
        authenticator.configure_curve(domain=domain, location=location)
    return authenticator


def _server_domains(keys: CurveServerKeys | CurveClientKeys | None) -> dict[str, str]:
    if isinstance(keys, CurveServerKeys) and keys.authorized_clients is not None:
        return {"*": keys.authorized_clients}
    return {}


class HandshakeWatch:
    """Logs the failed security handshakes of one socket (ZeroMQ's socket monitor), throttled: on a
    client, a server that refused its key or spoke another mechanism; on a server, clients with the
    wrong server key or without CURVE. :meth:`check` reads what is pending without waiting."""

    def __init__(self, socket, who: str, *, server: bool) -> None:
        import zmq

        events = zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
        if not server:
            events |= zmq.EVENT_HANDSHAKE_FAILED_AUTH
        self.who = who
        self._socket = socket
        self._monitor = socket.get_monitor_socket(events)
        self._warnings = ThrottledWarnings(AUTH_LOG_INTERVAL_S)
        self.failures = 0

    def check(self) -> None:
        import zmq
        from zmq.utils.monitor import recv_monitor_message

        while self._monitor is not None:
            try:
                event = recv_monitor_message(self._monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            self.failures += 1
            peer = event.get("endpoint", b"")
            peer = peer.decode("utf-8", "replace") if isinstance(peer, bytes) else str(peer)
            kind = {
                zmq.EVENT_HANDSHAKE_FAILED_AUTH: "the server refused this client's CURVE key",
                zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "security handshake failed (wrong server key, "
                "or one side without CURVE)",
            }.get(event["event"], "security handshake failed")
            self._warnings.warn((event["event"], peer), f"{self.who} {peer}: {kind}")

    def close(self) -> None:
        if self._monitor is None:
            return
        self._socket.disable_monitor()
        self._monitor.close(linger=0)
        self._monitor = None


ENDPOINT_FORMS = "tcp://HOST:PORT, ipc://PATH or inproc://NAME"


def _ipc_in_use(endpoint: str) -> bool:
    """True when ``ipc://PATH`` is a socket another process listens on. ZeroMQ binds over it without a
    word (it removes the file), silently taking the endpoint from the first publisher; a file nobody
    listens on (left by a killed process) is free."""
    import socket

    path = endpoint[len("ipc://") :]
    if not path or path.startswith("@") or not os.path.exists(path):
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


def _attach(socket, endpoint: str, bind: bool) -> None:
    """Bind or connect ``socket``; a bad or busy endpoint is a UserFacingError that says which forms
    an endpoint takes."""
    import zmq

    if bind and endpoint.startswith("ipc://") and _ipc_in_use(endpoint):
        raise UserFacingError(f"{endpoint}: cannot bind (Address already in use: a process listens there)")
    try:
        if bind:
            socket.bind(endpoint)
        else:
            socket.connect(endpoint)
    except zmq.ZMQError as error:
        raise UserFacingError(
            f"{endpoint}: cannot {'bind' if bind else 'connect'} ({error}; an endpoint is {ENDPOINT_FORMS})"
        ) from error


class Publisher:
    """Publishes ``wire.Message`` objects on an XPUB socket bound to ``endpoint`` (connected to it with
    ``connect=True``, e.g. a broker's frontend).

    Args:
        endpoint: ``ipc://path``, ``tcp://host:port`` or ``inproc://name`` (with a shared ``context``).
        hwm: messages queued per subscriber before dropping (or blocking, if lossless).
        lossless: block in ``send`` instead of dropping when a subscriber's queue is full.
        curve: CURVE keys (tcp across hosts): server keys when binding, or client keys when connecting
            to a broker whose frontend has server keys.
        linger_ms: how long ``close`` keeps trying to deliver queued messages, milliseconds.
        connect: connect instead of binding.
        context: a ``zmq.Context`` to share; by default the publisher owns one and ends it on close.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        hwm: int = DEFAULT_HWM,
        lossless: bool = False,
        curve: CurveServerKeys | CurveClientKeys | None = None,
        linger_ms: int = 2000,
        connect: bool = False,
        context=None,
    ) -> None:
        import zmq

        self.endpoint = endpoint
        self.lossless = lossless
        self._own_context = context is None
        self._context = zmq.Context() if context is None else context
        self._authenticator = _start_authenticator(self._context, _server_domains(curve))
        self._socket = self._context.socket(zmq.XPUB)
        self._socket.setsockopt(zmq.SNDHWM, hwm)
        self._socket.setsockopt(zmq.LINGER, linger_ms)
        self._socket.setsockopt(zmq.XPUB_VERBOSE, 1)
        if lossless:
            self._socket.setsockopt(zmq.XPUB_NODROP, 1)
        if curve is not None:
            _apply_curve(self._socket, curve)
        self._handshakes = (
            HandshakeWatch(self._socket, f"publisher {endpoint}:", server=not connect)
            if curve is not None
            else None
        )
        self._handshakes_checked_at = -math.inf
        self._next_seq: dict[str, int] = {}
        self._subscriber_ids: set[bytes] = set()
        self.sent = 0
        try:
            _attach(self._socket, endpoint, bind=not connect)
        except UserFacingError:
            self.close()
            raise

    def send(self, message: wire.Message) -> wire.Message:
        """Stamp ``message`` with the next sequence number of its topic and the wall-clock time it is
        sent (``extra["sent_us"]``, microseconds since the Unix epoch), send it, return the stamped
        message. Event and box arrays are sent without a copy: do not change them afterwards."""
        raise_swallowed_interrupt()
        if self._handshakes is not None and time.monotonic() - self._handshakes_checked_at > 0.1:
            self._handshakes_checked_at = time.monotonic()
            self._handshakes.check()
        topic = message.topic
        stamped = dataclasses.replace(
            message,
            seq=self._next_seq.get(topic, 0),
            extra={**message.extra, "sent_us": time.time_ns() // 1000},
        )
        # The number is used up before sending: a Ctrl-C raised by pyzmq after the frames went out
        # must not make the next message (the end-of-stream) repeat it.
        self._next_seq[topic] = stamped.seq + 1
        self._socket.send_multipart(wire.pack(stamped), copy=False)
        self.sent += 1
        return stamped

    def _read_subscriptions(self, timeout_ms: int) -> None:
        """Apply the (un)subscription messages waiting on the XPUB socket, waiting up to ``timeout_ms``."""
        import zmq

        if self._handshakes is not None:
            self._handshakes.check()
        while self._socket.poll(timeout_ms, zmq.POLLIN):
            timeout_ms = 0
            notice = self._socket.recv()
            topic = notice[1:]
            if topic.startswith(HELLO_PREFIX):
                if notice[:1] == b"\x01":
                    self._subscriber_ids.add(topic)
                else:
                    self._subscriber_ids.discard(topic)

    @property
    def subscriber_count(self) -> int:
        """Streamdet subscribers connected now (directly or through a broker)."""
        self._read_subscriptions(0)
        return len(self._subscriber_ids)

    def wait_for_subscribers(self, count: int = 1, timeout_s: float = 5.0) -> bool:
        """Wait until at least ``count`` subscribers are connected; False after ``timeout_s`` seconds."""
        deadline = time.monotonic() + timeout_s
        self._read_subscriptions(0)
        while len(self._subscriber_ids) < count:
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                self._read_subscriptions(0)
                return len(self._subscriber_ids) >= count
            self._read_subscriptions(min(math.ceil(remaining_s * 1000), 100))
        return True

    def close(self) -> None:
        """Close the socket, delivering what is queued for up to ``linger_ms``."""
        if self._socket is None:
            return
        if self._handshakes is not None:
            self._handshakes.close()
        self._socket.close()
        self._socket = None
        if self._authenticator is not None:
            self._authenticator.stop()
        if self._own_context:
            self._context.term()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@dataclass
class ReceiveStats:
    """What a subscriber saw: ``received`` valid messages, ``rejected`` invalid ones by reason (also
    ``eos-out-of-sequence``: an end-of-stream whose ``seq`` does not continue its topic's), ``dropped``
    messages missing from sequence gaps (total and ``dropped_by_topic``), ``sequence_jumps`` gaps too
    large to be drops (``MAX_SEQUENCE_GAP``), ``ignored`` valid messages outside the exact topics asked
    for, ``conflated`` messages a "latest only" subscriber skipped for a newer one of the same topic, and
    ``last_age_ms`` / ``max_age_ms``: how long after it was sent the latest message arrived, and the
    longest such delay (publisher's ``sent_us`` stamp to arrival; the hosts' clocks must agree)."""

    received: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    dropped: int = 0
    dropped_by_topic: dict[str, int] = field(default_factory=dict)
    ignored: int = 0
    sequence_jumps: int = 0
    conflated: int = 0
    last_age_ms: float | None = None
    max_age_ms: float | None = None

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def as_dict(self) -> dict:
        """JSON-ready counters."""
        return {
            "received": self.received,
            "rejected": dict(self.rejected),
            "dropped": self.dropped,
            "dropped_by_topic": dict(self.dropped_by_topic),
            "ignored": self.ignored,
            "sequence_jumps": self.sequence_jumps,
            "conflated": self.conflated,
            "last_age_ms": self.last_age_ms,
            "max_age_ms": self.max_age_ms,
        }


class RejectLog:
    """Logs rejects at most once per ``interval_s`` per reason, with the count since the last line."""

    def __init__(self, interval_s: float = REJECT_LOG_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._last_at: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}

    def record(self, error: wire.WireError) -> None:
        now = time.monotonic()
        self._unlogged[error.reason] = self._unlogged.get(error.reason, 0) + 1
        if now - self._last_at.get(error.reason, -float("inf")) >= self.interval_s:
            count = self._unlogged.pop(error.reason)
            self._last_at[error.reason] = now
            LOG.warning("rejected %d message(s) (%s), latest: %s", count, error.reason, error)


def topic_filters(topics: Sequence[str]) -> tuple[list[bytes], set[str]]:
    """ZeroMQ prefix filters for ``topics`` and the set of exact ``"<kind>/<stream>"`` topics among
    them. A bare kind becomes ``"<kind>/"``; ``""`` is everything."""
    prefixes: list[bytes] = []
    exact: set[str] = set()
    for topic in topics:
        if topic and "/" not in topic:
            topic += "/"
        if topic and not topic.endswith("/"):
            exact.add(topic)
        prefixes.append(topic.encode("ascii"))
    return prefixes, exact


class Subscriber:
    """Receives validated ``wire.Message`` objects from one or more endpoints.

    Args:
        endpoints: endpoint(s) of publishers or of a broker's backend, connected (any start order).
        topics: topic filters (see the module docstring).
        hwm: messages queued before ZeroMQ drops (counted here as sequence gaps).
        curve: CURVE client keys, for publishers with CURVE server keys.
        context: a ``zmq.Context`` to share; by default the subscriber owns one.
        latest_only: "latest only" (conflated) delivery for a subscriber that cannot keep up (a
            viewer): each receive reads everything waiting and hands out, per topic, only the newest data
            message (end-of-stream messages are never skipped); the skipped ones are counted in
            ``stats.conflated``. ZeroMQ's own ``ZMQ_CONFLATE`` cannot be used: it breaks multipart
            messages.
    """

    def __init__(
        self,
        endpoints: str | Sequence[str],
        topics: Sequence[str] = ("",),
        *,
        hwm: int = DEFAULT_HWM,
        curve: CurveClientKeys | None = None,
        context=None,
        latest_only: bool = False,
    ) -> None:
        import zmq

        self.endpoints = [endpoints] if isinstance(endpoints, str) else list(endpoints)
        self.latest_only = latest_only
        self._pending: collections.deque[wire.Message] = collections.deque()
        self._warnings = ThrottledWarnings(AUTH_LOG_INTERVAL_S)
        self.stats = ReceiveStats()
        self._own_context = context is None
        self._context = zmq.Context() if context is None else context
        self._socket = self._context.socket(zmq.SUB)
        self._socket.setsockopt(zmq.RCVHWM, hwm)
        self._socket.setsockopt(zmq.LINGER, 0)
        if curve is not None:
            _apply_client_curve(self._socket, curve)
        self._handshakes = HandshakeWatch(self._socket, "subscriber", server=False) if curve else None
        prefixes, self._exact_topics = topic_filters(topics)
        self._prefix_topics = tuple(p.decode() for p in prefixes if p.decode() not in self._exact_topics)
        for prefix in prefixes:
            self._socket.setsockopt(zmq.SUBSCRIBE, prefix)
        self._socket.setsockopt(zmq.SUBSCRIBE, HELLO_PREFIX + uuid.uuid4().hex.encode())
        self._last_seq: dict[str, int] = {}
        self._reject_log = RejectLog()
        try:
            for endpoint in self.endpoints:
                _attach(self._socket, endpoint, bind=False)
        except UserFacingError:
            self.close()
            raise

    def _wanted(self, topic: bytes) -> bool:
        if not self._exact_topics:
            return True
        text = topic.decode("ascii", errors="replace")
        return text in self._exact_topics or text.startswith(self._prefix_topics)

    def accept(self, frames: Sequence[object]) -> wire.Message | None:
        """Validate and count one received multipart message; the message, or None if it was rejected
        or is outside the exact topics asked for."""
        if frames and not self._wanted(bytes(getattr(frames[0], "bytes", frames[0]))):
            self.stats.ignored += 1
            return None
        try:
            message = wire.unpack(frames)
        except wire.WireError as error:
            self.stats.rejected[error.reason] = self.stats.rejected.get(error.reason, 0) + 1
            self._reject_log.record(error)
            return None
        if message.seq >= 0:
            topic = message.topic
            previous = self._last_seq.pop(topic, None)
            if message.kind == "eos" and previous is not None and message.seq <= previous:
                self._last_seq[topic] = previous
                reason = "eos-out-of-sequence"
                self.stats.rejected[reason] = self.stats.rejected.get(reason, 0) + 1
                self._warnings.warn(
                    reason,
                    f"ignored an end-of-stream on {topic} with seq {message.seq} after seq {previous}: "
                    "not from the publisher of that data (which numbers on from its last message)",
                )
                return None
            if previous is not None and message.seq > previous + 1:
                gap = message.seq - previous - 1
                if gap > MAX_SEQUENCE_GAP:
                    self.stats.sequence_jumps += 1
                    self._warnings.warn(
                        ("jump", topic),
                        f"sequence of {topic} jumped from {previous} to {message.seq}: a restarted or "
                        "forged publisher, not counted as drops",
                    )
                else:
                    self.stats.dropped += gap
                    self._count_topic_drops(topic, gap)
            self._last_seq[topic] = message.seq
            if len(self._last_seq) > MAX_TRACKED_TOPICS:
                del self._last_seq[next(iter(self._last_seq))]
        self.stats.received += 1
        self._note_age(message)
        return message

    def _count_topic_drops(self, topic: str, gap: int) -> None:
        by_topic = self.stats.dropped_by_topic
        by_topic[topic] = by_topic.pop(topic, 0) + gap
        if len(by_topic) > MAX_TRACKED_TOPICS:
            del by_topic[next(iter(by_topic))]

    def _note_age(self, message: wire.Message) -> None:
        sent_us = message.extra.get("sent_us")
        if sent_us is None:
            return
        age_ms = (time.time_ns() // 1000 - sent_us) / 1000
        self.stats.last_age_ms = age_ms
        if self.stats.max_age_ms is None or age_ms > self.stats.max_age_ms:
            self.stats.max_age_ms = age_ms
        if age_ms > STALE_AFTER_S * 1000:
            self._warnings.warn(
                "stale",
                f"{message.topic} arrives {age_ms / 1000:.1f} s after it was sent: this subscriber is "
                "behind (queued messages); latest_only / --latest-only delivers only the newest",
            )

    def receive(self, timeout_ms: int | None = None) -> wire.Message | None:
        """The next valid message, or None when none arrived within ``timeout_ms`` (None: wait forever).
        Invalid messages are counted in ``stats.rejected``, logged and skipped. With ``latest_only``,
        the newest per topic of what is waiting (see the class docstring)."""
        if not self.latest_only:
            return self._receive_one(timeout_ms)
        if not self._pending:
            first = self._receive_one(timeout_ms)
            if first is None:
                return None
            waiting = [first]
            while len(waiting) < CONFLATE_DRAIN_MAX and (message := self._receive_one(0)) is not None:
                waiting.append(message)
            self._pending.extend(self._newest_per_topic(waiting))
        return self._pending.popleft()

    def _newest_per_topic(self, messages: list[wire.Message]) -> list[wire.Message]:
        """``messages`` without the data messages followed by a newer one of their topic (before that
        topic's next end-of-stream), in arrival order; counts the skipped ones in ``stats.conflated``."""
        newest: dict[str, int] = {}
        keep = [True] * len(messages)
        for index, message in enumerate(messages):
            topic = message.topic
            if message.kind == "eos":
                newest.pop(topic, None)
                continue
            if topic in newest:
                keep[newest[topic]] = False
                self.stats.conflated += 1
            newest[topic] = index
        return [message for message, kept in zip(messages, keep, strict=True) if kept]

    def _receive_one(self, timeout_ms: int | None) -> wire.Message | None:
        import zmq

        deadline = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000
        while True:
            raise_swallowed_interrupt()
            try:
                frames = self._socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                # Wait in slices, so that a Ctrl-C kept by keep_swallowed_interrupt is raised in time.
                remaining_ms = None
                if deadline is not None:
                    remaining_ms = max(0, math.ceil((deadline - time.monotonic()) * 1000))
                if self._handshakes is not None:
                    self._handshakes.check()
                if remaining_ms is None or remaining_ms > INTERRUPT_CHECK_MS:
                    self._socket.poll(INTERRUPT_CHECK_MS, zmq.POLLIN)
                elif not self._socket.poll(remaining_ms, zmq.POLLIN):
                    return None
                continue
            message = self.accept(frames)
            if message is not None:
                return message

    def __iter__(self) -> Iterator[wire.Message]:
        """Every valid message, forever (until the caller stops or Ctrl-C)."""
        while True:
            message = self.receive()
            if message is not None:
                yield message

    def close(self) -> None:
        if self._socket is None:
            return
        if self._handshakes is not None:
            self._handshakes.close()
        self._socket.close(linger=0)
        self._socket = None
        if self._own_context:
            self._context.term()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def subscribe(
    endpoint: str | Sequence[str], topic: str = "", timeout_ms: int | None = None
) -> Iterator[wire.Message]:
    """Yield the data messages of ``topic`` from ``endpoint``; stop once every topic that sent data has
    sent end-of-stream (or at the first end-of-stream if none did), or after ``timeout_ms`` without a
    valid message. End-of-stream messages themselves are not yielded."""
    with Subscriber(endpoint, [topic]) as subscriber:
        data_topics: set[str] = set()
        ended_topics: set[str] = set()
        while True:
            message = subscriber.receive(timeout_ms)
            if message is None:
                return
            if message.kind == "eos":
                ended_topics.add(message.topic)
                if data_topics <= ended_topics:
                    return
                continue
            data_topics.add(message.topic)
            yield message


def run_broker(
    frontend: str | None,
    backend: str,
    *,
    upstreams: Sequence[str] = (),
    hwm: int = DEFAULT_HWM,
    curve: CurveServerKeys | None = None,
    upstream_curve: CurveClientKeys | None = None,
    publishers: str | None = None,
) -> None:
    """Forward every message from publishers to subscribers, and subscriptions back, until interrupted.

    An XSUB socket binds ``frontend`` (publishers connect to it with ``Publisher(..., connect=True)``)
    and connects to each of ``upstreams`` (publishers that bind, e.g. the drivers); an XPUB socket binds
    ``backend`` for subscribers. ``curve`` secures the bound sockets (publishers connecting to the
    frontend then need ``CurveClientKeys``), ``upstream_curve`` the upstream connections (plain
    without it). ZeroMQ copies socket options when it binds or connects, so one XSUB socket can be a
    CURVE server on the frontend and a client, or plain, towards the upstreams. The broker drops for a
    subscriber whose queue (``hwm``) is full: lossless delivery is end to end only.

    Authorisation (CURVE): ``curve.authorized_clients`` is the directory of the subscribers' public
    certificates, admitted at the backend only; ``publishers`` that of the publishers, admitted at the
    frontend only (ZAP domains ``subscribers`` and ``publishers``), so a subscriber's key cannot
    publish. With neither, any client that knows the broker's public key gets in (encryption only).
    Refused keys, and handshakes that fail (wrong server key, no CURVE), are logged as warnings.

    libzmq's proxy forwards in a thread of its own, stopped through a control socket; the calling
    thread waits in Python, looking every ``INTERRUPT_CHECK_MS``. (With the proxy in the main thread, a
    Ctrl-C arriving while it forwarded, outside its wait, was noted but never acted on: it went back
    to sleep in C.)
    """
    import zmq

    if frontend is None and not upstreams:
        raise UserFacingError("a broker needs a frontend to bind or upstream publishers to connect to")
    if publishers is not None and curve is None:
        raise UserFacingError("admitting publishers by certificate needs the broker's CURVE keys")
    domains = {}
    if curve is not None and curve.authorized_clients is not None:
        domains[SUBSCRIBERS_DOMAIN] = curve.authorized_clients
    if publishers is not None:
        if not Path(publishers).is_dir():
            raise UserFacingError(f"{publishers}: not a directory of publisher certificates")
        domains[PUBLISHERS_DOMAIN] = publishers
    if frontend is not None and len(domains) == 1:
        raise UserFacingError(
            "a CURVE broker with a frontend admits subscribers and publishers separately: give both "
            "the subscribers' and the publishers' certificate directories, or neither"
        )
    context = zmq.Context()
    authenticator = _start_authenticator(context, domains)
    xsub = context.socket(zmq.XSUB)
    xpub = context.socket(zmq.XPUB)
    control_endpoint = f"inproc://streamdet-broker-control-{uuid.uuid4().hex}"
    control = context.socket(zmq.PAIR)
    control.bind(control_endpoint)
    steering = context.socket(zmq.PAIR)
    steering.connect(control_endpoint)
    proxy = None
    watches: list[HandshakeWatch] = []
    try:
        for socket in (xsub, xpub, control, steering):
            socket.setsockopt(zmq.SNDHWM, hwm)
            socket.setsockopt(zmq.RCVHWM, hwm)
            socket.setsockopt(zmq.LINGER, 0)
        xpub.setsockopt(zmq.XPUB_VERBOSE, 1)
        if domains:
            xpub.zap_domain = SUBSCRIBERS_DOMAIN.encode()
            xsub.zap_domain = PUBLISHERS_DOMAIN.encode()
        if curve is not None:
            _apply_server_curve(xpub, curve)
            watches.append(HandshakeWatch(xpub, f"broker backend {backend}: client", server=True))
        if frontend is not None:
            if curve is not None:
                _apply_server_curve(xsub, curve)
                watches.append(HandshakeWatch(xsub, f"broker frontend {frontend}: client", server=True))
            _attach(xsub, frontend, bind=True)
        if upstream_curve is not None:
            _apply_client_curve(xsub, upstream_curve)
        elif curve is not None:
            xsub.curve_server = False
        for upstream in upstreams:
            _attach(xsub, upstream, bind=False)
        _attach(xpub, backend, bind=True)
        proxy = _ProxyThread(xsub, xpub, control)
        with _stop_signals_blocked():
            proxy.start()
        while proxy.is_alive():
            proxy.join(INTERRUPT_CHECK_MS / 1000)
            for watch in watches:
                watch.check()
    finally:
        if proxy is not None and proxy.is_alive():
            steering.send(b"TERMINATE")
            proxy.join()
        for watch in watches:
            watch.close()
        for socket in (xsub, xpub, control, steering):
            socket.close()
        if authenticator is not None:
            authenticator.stop()
        context.term()
    if proxy.error is not None:
        raise proxy.error


class _ProxyThread(threading.Thread):
    """``zmq.proxy_steerable(frontend, backend, control=control)`` in a daemon thread, which ends when
    ``control`` receives ``TERMINATE``; an error it raised is kept in ``error``."""

    def __init__(self, frontend, backend, control) -> None:
        super().__init__(name="streamdet-broker-proxy", daemon=True)
        self._sockets = (frontend, backend, control)
        self.error: BaseException | None = None

    def run(self) -> None:
        import zmq

        frontend, backend, control = self._sockets
        try:
            zmq.proxy_steerable(frontend, backend, control=control)
        except Exception as error:  # noqa: BLE001 - handed to the thread that waits
            self.error = error
