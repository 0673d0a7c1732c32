"""``streamdet subscribe``, ``streamdet broker`` and ``streamdet curve-keys``: watch and route the wire."""

from __future__ import annotations

import argparse
import json
import sys
import time

from streamdet.errors import UserFacingError


def events_in(message) -> int:
    """Events in a message: event records, or spikes (set pixels) in spike frames."""
    if message.kind == "events":
        return message.count
    if message.kind == "spikes":
        return int(message.payload.sum())
    return 0


def add_curve_options(parser: argparse.ArgumentParser, *, binds: bool, connects: bool) -> None:
    """The CURVE options of a command that opens sockets: ``--curve-cert`` (its own ``.key_secret``
    certificate; with it every socket of the command is encrypted and authenticated), and
    ``--curve-server-key`` (the public ``.key`` of the publisher or broker it connects to) for a command
    that connects, ``--curve-clients`` (admit only the clients with a public certificate in DIR) for one
    that binds. ``streamdet curve-keys NAME`` writes a certificate pair."""
    parser.add_argument(
        "--curve-cert",
        "--curve-secret-key",
        dest="curve_cert",
        metavar="FILE",
        help="own CURVE certificate (.key_secret): encrypt and authenticate every socket (tcp://)",
    )
    if connects:
        parser.add_argument(
            "--curve-server-key",
            metavar="FILE",
            help="public CURVE certificate (.key) of the publisher or broker this connects to",
        )
    if binds:
        parser.add_argument(
            "--curve-clients",
            metavar="DIR",
            help="admit only clients whose public certificate (.key) is in DIR (default: any client "
            "that knows this process's public key)",
        )


def curve_client_keys(args: argparse.Namespace):
    """``CurveClientKeys`` of the options (see :func:`add_curve_options`), or None without CURVE."""
    from streamdet import bus

    if getattr(args, "curve_server_key", None) is not None and args.curve_cert is None:
        raise UserFacingError("--curve-server-key needs --curve-cert (this client's own certificate)")
    if args.curve_cert is None:
        return None
    if args.curve_server_key is None:
        raise UserFacingError("--curve-cert needs --curve-server-key here (the public key of the server)")
    return bus.load_client_keys(args.curve_cert, args.curve_server_key)


def curve_server_keys(args: argparse.Namespace):
    """``CurveServerKeys`` of the options (see :func:`add_curve_options`), or None without CURVE."""
    from streamdet import bus

    if getattr(args, "curve_clients", None) is not None and args.curve_cert is None:
        raise UserFacingError("--curve-clients needs --curve-cert (this server's own certificate)")
    if args.curve_cert is None:
        return None
    return bus.load_server_keys(args.curve_cert, getattr(args, "curve_clients", None))


def rates(messages: int, events: int, first_events: int, seconds: float) -> tuple[float, float]:
    """Messages/s and events/s between the first and the latest message: what arrived after the first
    (``messages - 1`` messages, ``events - first_events`` events) over ``seconds``; 0 before a second one."""
    if messages < 2 or seconds <= 0:
        return 0.0, 0.0
    return (messages - 1) / seconds, (events - first_events) / seconds


def run_subscribe(args: argparse.Namespace) -> int:
    """Print one line per message and a summary (rates, rejects, drops) at the end or on Ctrl-C."""
    from streamdet import bus
    from streamdet.wire import BOX_KINDS

    if args.count is not None and args.count < 1:
        raise UserFacingError(f"--count must be at least 1, got {args.count}")
    curve = curve_client_keys(args)
    subscriber = bus.Subscriber(
        args.endpoints, args.topic or [""], hwm=args.hwm, curve=curve, latest_only=args.latest_only
    )
    messages = events = first_events = boxes = first_boxes = 0
    first_at = last_at = None
    data_topics: set[str] = set()
    ended_topics: set[str] = set()
    interrupted = False
    timeout_ms = None if args.timeout is None else int(args.timeout * 1000)
    try:
        while args.count is None or messages < args.count:
            message = subscriber.receive(timeout_ms)
            if message is None:
                break
            last_at = time.monotonic()
            messages += 1
            events += events_in(message)
            boxes += message.count if message.kind in BOX_KINDS else 0
            if first_at is None:
                first_at, first_events, first_boxes = last_at, events, boxes
            message_rate, event_rate = rates(messages, events, first_events, last_at - first_at)
            _, box_rate = rates(messages, boxes, first_boxes, last_at - first_at)
            if not args.quiet:
                is_boxes = message.kind in BOX_KINDS
                rate = f"{box_rate:.0f} boxes/s" if is_boxes else f"{event_rate:.0f} events/s"
                print(
                    f"{message.kind:<10} {message.stream} seq={message.seq} count={message.count} "
                    f"t=[{message.t0_us},{message.t1_us}) us {message_rate:.1f} msg/s {rate}"
                    + (f" (end of {message.topic})" if message.kind == "eos" else ""),
                    flush=True,
                )
            if message.kind == "eos":
                ended_topics.add(message.topic)
                if args.until_eos and data_topics <= ended_topics:
                    break
            else:
                data_topics.add(message.topic)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        stats = subscriber.stats
        subscriber.close()
    seconds = 0.0 if first_at is None else last_at - first_at
    message_rate, event_rate = rates(messages, events, first_events, seconds)
    _, box_rate = rates(messages, boxes, first_boxes, seconds)
    summary = {
        "messages": messages,
        "events": events,
        "boxes": boxes,
        "seconds": seconds,
        "messages_per_s": message_rate,
        "events_per_s": event_rate,
        "boxes_per_s": box_rate,
        **stats.as_dict(),
    }
    if args.json:
        print(json.dumps(summary), flush=True)
    else:
        print(
            f"summary: {messages} messages, {events} events, {boxes} boxes in {seconds:.3f} s "
            f"({message_rate:.1f} msg/s, {event_rate:.0f} events/s, {box_rate:.0f} boxes/s); "
            f"rejected {stats.rejected_total}{f' {stats.rejected}' if stats.rejected else ''}; "
            f"dropped {stats.dropped}",
            flush=True,
        )
    return 130 if interrupted else 0


def run_broker_command(args: argparse.Namespace) -> int:
    """Run the XSUB/XPUB proxy until Ctrl-C."""
    from streamdet import bus

    if args.frontend is None and not args.upstream:
        raise UserFacingError("a broker needs --frontend or at least one --upstream")
    server_keys = curve_server_keys(args)
    if args.curve_publishers is not None and server_keys is None:
        raise UserFacingError("--curve-publishers needs --curve-cert")
    upstream_keys = None
    if args.upstream_curve_cert is not None or args.upstream_server_key is not None:
        if args.upstream_curve_cert is None or args.upstream_server_key is None:
            raise UserFacingError("upstream CURVE needs --upstream-curve-cert and --upstream-server-key")
        upstream_keys = bus.load_client_keys(args.upstream_curve_cert, args.upstream_server_key)
    print(
        f"broker: publishers at {', '.join(filter(None, [args.frontend, *args.upstream]))}; "
        f"subscribers at {args.backend}",
        file=sys.stderr,
        flush=True,
    )
    bus.run_broker(
        args.frontend,
        args.backend,
        upstreams=args.upstream,
        hwm=args.hwm,
        curve=server_keys,
        upstream_curve=upstream_keys,
        publishers=args.curve_publishers,
    )
    return 0


def run_curve_keys(args: argparse.Namespace) -> int:
    """Write a CURVE certificate pair and print the paths."""
    from streamdet import bus

    public, secret = bus.write_curve_certificates(args.directory, args.name)
    print(f"public key: {public}\nsecret key: {secret}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``subscribe``, ``broker`` and ``curve-keys`` to the ``streamdet`` parser."""
    subscribe = subparsers.add_parser(
        "subscribe",
        help="print the messages on an endpoint, with rates, rejects and drops",
        description="Connect to publishers (or a broker's backend) and print one line per valid "
        "message; ends with a summary after --count messages, --timeout seconds of silence, "
        "end-of-stream (--until-eos) or Ctrl-C.",
    )
    subscribe.add_argument("endpoints", nargs="+", metavar="EP", help="endpoint(s) to connect to")
    subscribe.add_argument(
        "--topic",
        action="append",
        metavar="T",
        help="topic filter: a kind ('events') or 'kind/stream'; repeatable (default: everything)",
    )
    subscribe.add_argument("--count", type=int, metavar="N", help="stop after N messages")
    subscribe.add_argument(
        "--timeout", type=float, metavar="S", help="stop after S seconds without a message"
    )
    subscribe.add_argument(
        "--until-eos", action="store_true", help="stop once every stream seen has sent end-of-stream"
    )
    subscribe.add_argument("--hwm", type=int, default=1000, help="receive high-water mark, messages")
    subscribe.add_argument("--quiet", action="store_true", help="print the summary only")
    subscribe.add_argument(
        "--latest-only",
        action="store_true",
        help="when behind, skip to the newest message of each topic (end-of-stream is never skipped)",
    )
    subscribe.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    add_curve_options(subscribe, binds=False, connects=True)
    subscribe.set_defaults(func=run_subscribe)

    broker = subparsers.add_parser(
        "broker",
        help="XSUB/XPUB proxy where many publishers and subscribers meet",
        description="Forward messages from publishers to subscribers and subscriptions back, until "
        "Ctrl-C. Publishers either connect to --frontend (Publisher(..., connect=True)) or bind "
        "their own endpoint, given here as --upstream.",
    )
    broker.add_argument("--frontend", metavar="EP", help="endpoint to bind for publishers that connect")
    broker.add_argument("--backend", required=True, metavar="EP", help="endpoint to bind for subscribers")
    broker.add_argument(
        "--upstream", action="append", default=[], metavar="EP", help="a publisher's endpoint to connect to"
    )
    broker.add_argument("--hwm", type=int, default=1000, help="high-water mark, messages")
    broker.add_argument(
        "--curve-cert", "--curve-secret-key", dest="curve_cert", metavar="FILE",
        help="broker's CURVE certificate (.key_secret): frontend and backend encrypted",
    )
    broker.add_argument(
        "--curve-clients", "--curve-subscribers", dest="curve_clients", metavar="DIR",
        help="admit at the backend only subscribers whose public certificate is in DIR",
    )
    broker.add_argument(
        "--curve-publishers", metavar="DIR",
        help="admit at the frontend only publishers whose public certificate is in DIR (needed with "
        "--curve-clients when there is a --frontend: a subscriber's key cannot publish)",
    )
    broker.add_argument("--upstream-curve-cert", metavar="FILE", help="CURVE certificate towards upstreams")
    broker.add_argument("--upstream-server-key", metavar="FILE", help="upstreams' CURVE public certificate")
    broker.set_defaults(func=run_broker_command)

    keys = subparsers.add_parser(
        "curve-keys", help="write a ZeroMQ CURVE certificate pair (NAME.key, NAME.key_secret)"
    )
    keys.add_argument("name", help="certificate name")
    keys.add_argument("--directory", default=".", metavar="DIR", help="where to write (default: here)")
    keys.set_defaults(func=run_curve_keys)
