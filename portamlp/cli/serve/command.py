"""The ``portamlp serve`` command: its options, its examples, and running the server.

This module owns the subcommand's parser (:func:`add_parser`, with the examples of
:data:`EPILOG`) and :func:`cmd_serve`, which makes the server (:func:`.web.make_server`),
prints where the page is, serves until Ctrl+C or SIGTERM and closes the server; a host or port
that cannot be used is a one-line usage error.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import threading
from pathlib import Path

from .web import (
    DEFAULT_HOST,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_PORT,
    DEFAULT_REQUEST_TIMEOUT,
    ListenError,
    make_server,
)

__all__ = ["add_parser", "cmd_serve", "EPILOG"]

EPILOG = """examples:
  portamlp train --save net.json && portamlp serve net.json
  portamlp serve net.json --port 0                 any free port (the URL is printed)
  portamlp serve net.json --host 0.0.0.0           reachable from other machines (warned)
  portamlp serve net.json --host 0.0.0.0 --allow-host pad.example.org
                                                   also answer requests for that name

Only requests for this server are answered: Host localhost, 127.0.0.1 or [::1] with its port
(and the address it listens on, any address for 0.0.0.0, and the --allow-host names); other
Hosts get 421, so that a web page elsewhere cannot reach it by DNS rebinding. Over
--max-connections, a connection gets 503 (Retry-After: 1); a request slower than
--request-timeout in all gets 408; an idle connection closes after --idle-timeout.

The page: a canvas to draw a digit on (mouse, finger or pen), the predicted digit and all ten
probabilities as you draw, the 28×28 image the network sees (prepared as `portamlp predict`
prepares photos), and a "test digit" button for a random MNIST test image. Ctrl+C stops it.
"""


def add_parser(sub) -> None:
    """Add ``serve`` to the subcommands.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The subcommands of the ``portamlp`` parser.
    """
    from ..common import add_common

    p = sub.add_parser("serve", help="a local web page: draw a digit, see the prediction",
                       description="Start a local web page where you draw a digit and watch "
                                   "the network classify it: every layer's neurons light up "
                                   "as you draw, with a neuron's strongest connections and, "
                                   "for the first layer, its weights as an image. The page's "
                                   "JSON API (/api/model, /api/predict, /api/test-digit, "
                                   "/api/weights) is described in the documentation, "
                                   "docs/guide/web-page.md.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="a saved network (.json, .safetensors, or a "
                                            "checkpoint directory)")
    p.add_argument("--host", default=DEFAULT_HOST,
                   help=f"address to listen on (default: {DEFAULT_HOST}, this machine only; "
                        "another address is warned about)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"port to listen on; 0 picks any free one (default: {DEFAULT_PORT})")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="a host name the page is reached under (behind a proxy, or with --host "
                        "0.0.0.0), answered on any port; repeatable (default: only this "
                        "machine's loopback names and the address listened on)")
    p.add_argument("--max-connections", type=_whole_number, default=DEFAULT_MAX_CONNECTIONS,
                   metavar="N", help="connections served at once; more are answered 503 "
                                     f"(default: {DEFAULT_MAX_CONNECTIONS})")
    p.add_argument("--request-timeout", type=_seconds, default=DEFAULT_REQUEST_TIMEOUT,
                   metavar="SECONDS", help="time a request has for its line, headers and body "
                                           f"in all, else 408 (default: "
                                           f"{DEFAULT_REQUEST_TIMEOUT:g})")
    p.add_argument("--idle-timeout", type=_seconds, default=DEFAULT_IDLE_TIMEOUT,
                   metavar="SECONDS", help="time a connection may wait for its next request "
                                           f"before it is closed (default: "
                                           f"{DEFAULT_IDLE_TIMEOUT:g})")
    p.add_argument("--scale", help="pixel scaling: 255, 256 or standardize (default: the "
                                   "model's own, recorded when it was trained)")
    p.add_argument("--backend", help="backend to run on (default: auto)")
    p.add_argument("--device", help="device of the backend, e.g. cuda:1")
    add_common(p)
    p.set_defaults(handler=cmd_serve)


def _whole_number(text: str) -> int:
    """--max-connections: a whole number ≥ 1."""
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number ≥ 1")
    return int(text)


def _seconds(text: str) -> float:
    """A timeout: a number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds > 0")
    return value


def _stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt


def cmd_serve(args) -> int:
    """Run ``portamlp serve``: serve the page until Ctrl+C or SIGTERM.

    Prints the page's URL (with ``--json``, ``{"url", "model"}`` on one line) before serving.
    SIGTERM stops it as Ctrl+C does, when it runs in the main thread.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed options of :func:`add_parser`.

    Returns
    -------
    int
        0, once stopped.

    Raises
    ------
    portamlp.cli.common.CLIError
        For a port out of range, or a host and port it cannot listen on.
    ValueError
        For an ``--allow-host`` that is not a host name (a usage error for ``portamlp``).
    """
    from ..common import CLIError

    if not 0 <= args.port <= 65535:
        raise CLIError(f"--port {args.port} is not a port: give 1 to 65535, or 0 for any free one")
    try:
        server = make_server(args.model, args.host, args.port, backend=args.backend,
                             device=args.device, scale=args.scale,
                             log=None if args.quiet else sys.stderr,
                             max_connections=args.max_connections,
                             request_timeout=args.request_timeout,
                             idle_timeout=args.idle_timeout, allowed_hosts=args.allow_host)
    except ListenError as exc:
        raise CLIError(exc.strerror) from None  # the --host or --port given is unusable
    info = server.app.model_info()
    if args.json:
        print(json.dumps({"url": server.url, "model": info}), flush=True)
    else:
        layers = "-".join(map(str, info["layers"]))
        print(f"serving {args.model} ({layers}, {info['activation']}) at {server.url}",
              flush=True)
        if not args.quiet:
            print("press Ctrl+C to stop", flush=True)
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm) if in_main else None
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        if not args.quiet and not args.json:
            print("stopped")
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
        server.server_close()
    return 0
