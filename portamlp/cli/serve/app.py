"""``portamlp serve MODEL``: a local web page to draw a digit and watch the network read it.

This module owns the web application: the HTTP server (the standard library's ``http.server``,
one thread per request), its JSON endpoints, and the page's assets (HTML, JavaScript and CSS in
``portamlp/cli/static/``, shipped as package data: no CDN, web fonts or analytics, so the page
works offline). The page sends the canvas's pixels as they are; the server prepares them with
:func:`portamlp.cli.images.prepare_digit`, the very function ``portamlp predict`` applies to
photos, and answers with the probabilities and the 28×28 image the network saw.

Endpoints::

    GET  /                the page (its script and style sheet under /static/)
    GET  /api/model       the model: name, layers, activation, cost, test accuracy
    POST /api/predict     {"width", "height", "channels", "pixels": base64 bytes} → answer
    GET  /api/test-digit  a random MNIST test image (or ?index=N), its prediction and label

The server reads the model and its run record, the package's own assets and the embedded MNIST
test set, and nothing else. Neither the library core nor ``import portamlp`` imports this module.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import ipaddress
import json
import math
import random
import signal
import socket
import socketserver
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

__all__ = ["add_parser", "cmd_serve", "make_server", "DigitApp", "DigitServer", "RequestError",
           "ListenError", "decode_image", "is_loopback", "DEFAULT_HOST", "DEFAULT_PORT",
           "MAX_BODY_BYTES", "MIN_SIDE", "MAX_SIDE"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
#: Largest request body accepted (413 above): a 512×512 RGBA canvas, base64-encoded, fits.
MAX_BODY_BYTES = 2 * 1024 * 1024
#: Smallest and largest width or height of an image sent to /api/predict (400 outside).
MIN_SIDE, MAX_SIDE = 8, 1024
#: An oversized body is read and thrown away up to this many bytes before the connection closes,
#: so that the client, still sending, gets to read the 413 answer.
_DRAIN_LIMIT = 64 * 1024 * 1024

_JSON = "application/json"
#: URL → (file in portamlp/cli/static, content type).
_ASSETS = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/style.css": ("style.css", "text/css; charset=utf-8"),
}
_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Only this server's own files: the page can load nothing from elsewhere.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
}

EPILOG = """examples:
  portamlp train --save net.json && portamlp serve net.json
  portamlp serve net.json --port 0                 any free port (the URL is printed)
  portamlp serve net.json --host 0.0.0.0           reachable from other machines (warned)

The page: a canvas to draw a digit on (mouse, finger or pen), the predicted digit and all ten
probabilities as you draw, the 28×28 image the network sees (prepared as `portamlp predict`
prepares photos), and a "test digit" button for a random MNIST test image. Ctrl+C stops it.
"""


class RequestError(Exception):
    """A bad request: answered with ``status`` and ``{"error": message}``; the server goes on.

    Parameters
    ----------
    status : int
        The HTTP status (4xx).
    message : str
        One line naming the problem and the fix.
    drain : int
        Bytes of unread body to throw away after answering (then the connection closes).
    """

    def __init__(self, status: int, message: str, *, drain: int = 0):
        super().__init__(message)
        self.status = status
        self.message = message
        self.drain = drain


# ------------------------------------------------------------------------------ the application
class DigitApp:
    """What the page talks to: a network, how its inputs are made, and the embedded MNIST test set.

    Parameters
    ----------
    network : portamlp.Network
        784 inputs and 10 classes.
    preprocessing : portamlp.datasets.Preprocessing
        How 0–255 pixels become the network's inputs.
    name : str
        The model's name, shown on the page.
    test_accuracy : float, optional
        From the model's run record.
    seed : int, optional
        Seed of the random choice of test digits.
    """

    def __init__(self, network, preprocessing, *, name: str = "network",
                 test_accuracy: float | None = None, seed: int | None = None):
        from ..datasets import read_split

        _check_layers(network, name)
        _check_pillow()
        self.network = network
        self.preprocessing = preprocessing
        self.name = name
        self.test_accuracy = test_accuracy
        self._lock = threading.Lock()  # one forward pass at a time, whatever the backend
        self._random = random.Random(seed)
        self._images, self._labels = read_split("mnist", "test")
        self._assets = {url: (_read_asset(file), ctype) for url, (file, ctype) in _ASSETS.items()}

    @classmethod
    def from_model(cls, model, *, backend: str | None = None, device: Any = None,
                   scale: Any = None, seed: int | None = None) -> DigitApp:
        """Load a saved network (``.json``, ``.safetensors`` or a checkpoint directory) and its
        run record; the inputs are prepared as ``portamlp predict`` prepares them."""
        import portamlp

        from ..errors import warn
        from ..files.run_records import read_run_record
        from .tools import preprocessing_for

        model = Path(model)
        net = portamlp.load(model, backend=backend, device=device)
        _check_layers(net, model)
        record = read_run_record(model)
        dataset = record.get("options", {}).get("dataset") if isinstance(
            record.get("options"), dict) else None
        if dataset not in (None, "mnist"):
            warn(f"{model} was trained on {dataset!r}; this page classifies handwritten digits "
                 "and its test digits come from MNIST")
        prep = preprocessing_for(model, net, "mnist", scale)
        accuracy = record.get("test_accuracy")
        if isinstance(accuracy, bool) or not isinstance(accuracy, (int, float)) \
                or not math.isfinite(accuracy):
            accuracy = None
        return cls(net, prep, name=model.name, test_accuracy=accuracy, seed=seed)

    def model_info(self) -> dict[str, Any]:
        """The loaded model, for the page's heading."""
        net = self.network
        return {
            "name": self.name,
            "layers": list(net.layers),
            "activation": net.activation,
            "cost": net.cost,
            "dtype": net.dtype,
            "backend": net.backend.name,
            "parameters": sum(a * b + b for a, b in zip(net.layers[:-1], net.layers[1:])),
            "scale": self.preprocessing.scale,
            "test_accuracy": self.test_accuracy,
        }

    def probabilities(self, digit: np.ndarray) -> np.ndarray:
        """Class probabilities (10,) of one prepared 28×28 uint8 image, as a NumPy array."""
        from ..backends import to_numpy

        x = self.preprocessing.apply(digit.reshape(1, 784), self.network.dtype)
        with self._lock:
            return np.asarray(to_numpy(self.network.predict_proba(x)))[0]

    def predict(self, image: np.ndarray) -> dict[str, Any]:
        """The answer for a drawn image (any size, 1–4 channels of 0–255 values).

        ``{"prediction", "probabilities", "input"}``, ``input`` being the 784 pixels the network
        saw; for an image without ink, ``{"prediction": None, "error": "no digit found",
        "detail"}`` instead of a guess.
        """
        from .images import BlankImageError, prepare_digit

        try:
            digit = prepare_digit(image)
        except BlankImageError as exc:
            detail = str(exc).removeprefix("the image: ")
            return {"prediction": None, "error": "no digit found", "detail": detail}
        return self._answer(digit)

    def test_digit(self, index: int | None = None) -> dict[str, Any]:
        """A test image of the embedded MNIST (random unless ``index``), with its true label."""
        n = len(self._labels)
        if index is None:
            index = self._random.randrange(n)
        elif not 0 <= index < n:
            raise RequestError(400, f"index {index} is out of range: the MNIST test set has {n} "
                                    f"images (0 to {n - 1})")
        answer = self._answer(np.asarray(self._images[index]))
        label = int(self._labels[index])
        return {"index": index, "label": label, "correct": answer["prediction"] == label,
                **answer}

    def _answer(self, digit: np.ndarray) -> dict[str, Any]:
        proba = self.probabilities(digit)
        return {"prediction": int(np.argmax(proba)),
                "probabilities": [float(p) for p in proba],
                "input": digit.reshape(-1).tolist()}

    def asset(self, path: str) -> tuple[bytes, str] | None:
        """The bytes and content type of one of the page's files, or None."""
        return self._assets.get(path)


def _check_layers(network, name) -> None:
    if (network.layers[0], network.layers[-1]) != (784, 10):
        raise ValueError(
            f"{name}: the page needs a network with 784 inputs (28×28 images) and 10 classes "
            f"(digits); this one has layers {list(network.layers)}")


def _check_pillow() -> None:
    """prepare_digit scales drawings with Pillow: say so at start, not at every request."""
    try:
        import PIL  # noqa: F401
    except ImportError:
        raise ImportError('portamlp serve prepares drawings with Pillow: pip install '
                          '"portamlp[serve]" (or "portamlp[images]")') from None


def _read_asset(name: str) -> bytes:
    try:
        return (resources.files(__package__) / "static" / name).read_bytes()
    except OSError:
        raise FileNotFoundError(
            f"the page's file portamlp/cli/static/{name} is missing: the installation is "
            "incomplete, reinstall portamlp (pip install --force-reinstall portamlp)") from None


def decode_image(payload: Any) -> np.ndarray:
    """The image of a /api/predict request: ``(height, width)`` or ``(height, width, channels)``.

    ``payload`` is ``{"width": W, "height": H, "channels": C, "pixels": base64}``, the pixels
    being ``H × W × C`` bytes in row-major order (a canvas's RGBA data has C = 4).

    Raises
    ------
    RequestError
        (400) for anything missing or malformed, naming the field.
    """
    if not isinstance(payload, dict):
        raise RequestError(400, "the body must be a JSON object {\"width\", \"height\", "
                                "\"channels\", \"pixels\"}")
    sizes = {}
    for key, low, high in (("width", MIN_SIDE, MAX_SIDE), ("height", MIN_SIDE, MAX_SIDE),
                           ("channels", 1, 4)):
        value = payload.get(key, 4 if key == "channels" else None)
        if isinstance(value, bool) or not isinstance(value, int):
            raise RequestError(400, f"wrong image size: {key!r} must be an integer, got "
                                    f"{value!r}")
        if not low <= value <= high:
            raise RequestError(400, f"wrong image size: {key!r} must be {low} to {high}, got "
                                    f"{value}")
        sizes[key] = value
    pixels = payload.get("pixels")
    if not isinstance(pixels, str):
        raise RequestError(400, "'pixels' must be a base64 string of height × width × channels "
                                "bytes")
    try:
        raw = base64.b64decode(pixels, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(400, "'pixels' is not valid base64") from None
    w, h, c = sizes["width"], sizes["height"], sizes["channels"]
    if len(raw) != w * h * c:
        raise RequestError(400, f"wrong image size: 'pixels' holds {len(raw)} bytes but "
                                f"{h} × {w} × {c} = {h * w * c} were announced")
    image = np.frombuffer(raw, dtype=np.uint8).reshape(h, w, c)
    return image[:, :, 0] if c == 1 else image


# ----------------------------------------------------------------------------------- the server
class ListenError(OSError):
    """The server cannot listen on the host and port asked for (in use, not this machine's...)."""


class _Handler(BaseHTTPRequestHandler):
    """One request: route it, answer JSON or a page file, never let an error stop the server."""

    server: DigitServer
    protocol_version = "HTTP/1.1"
    server_version = "portamlp"
    timeout = 30  # seconds a connection may sit idle or half-sent
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK would hold the body back some 40 ms.
    disable_nagle_algorithm = True

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PUT(self):
        self._handle("PUT")

    def do_DELETE(self):
        self._handle("DELETE")

    def do_PATCH(self):
        self._handle("PATCH")

    def _handle(self, method: str) -> None:
        drain = 0
        self.body_read = False
        try:
            status, body, ctype = self._route(method, urlsplit(self.path))
        except RequestError as exc:
            status, body, ctype = exc.status, _json_bytes({"error": exc.message}), _JSON
            drain = exc.drain
            if exc.status in (411, 413):
                self.close_connection = True
        except Exception as exc:  # a bug: answer 500 and log it, keep serving
            self.server.log_line(f"error answering {method} {self.path}:\n"
                                 + traceback.format_exc())
            status = 500
            body = _json_bytes({"error": f"internal error: {type(exc).__name__}: {exc}"})
            ctype = _JSON
            self.close_connection = True
        if not self.body_read and self.headers.get("Content-Length", "0") != "0":
            self.close_connection = True  # an unread body would be taken for the next request
        self._send(status, body, ctype)
        if drain:
            self._drain(drain)

    def _route(self, method: str, url) -> tuple[int, bytes, str]:
        app = self.server.app
        routes = {"/api/model": "GET", "/api/predict": "POST", "/api/test-digit": "GET"}
        expected = routes.get(url.path, "GET" if app.asset(url.path) else None)
        if expected is None:
            raise RequestError(404, f"no such page: {url.path} (the page is at /)")
        if method != expected:
            raise RequestError(405, f"{url.path} takes {expected}, not {method}")
        if url.path == "/api/model":
            return 200, _json_bytes(app.model_info()), _JSON
        if url.path == "/api/predict":
            image = decode_image(self._read_json())
            return 200, _json_bytes(app.predict(image)), _JSON
        if url.path == "/api/test-digit":
            return 200, _json_bytes(app.test_digit(_index(url.query))), _JSON
        data, ctype = app.asset(url.path)  # type: ignore[misc]
        return 200, data, ctype

    def _read_json(self) -> Any:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise RequestError(411, "send the body with a Content-Length, not chunked")
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            raise RequestError(411, "a Content-Length header is required")
        try:
            length = int(length_text)
            if length < 0:
                raise ValueError
        except ValueError:
            raise RequestError(400, f"bad Content-Length {length_text!r}") from None
        if length > MAX_BODY_BYTES:
            raise RequestError(413, f"the body is {length:,} bytes; the limit is "
                                    f"{MAX_BODY_BYTES:,} (send at most a "
                                    f"{MAX_SIDE}×{MAX_SIDE} gray or 512×512 RGBA image)",
                               drain=length)
        body = self.rfile.read(length)
        self.body_read = True
        if len(body) < length:
            self.close_connection = True
            raise RequestError(400, f"the body ended after {len(body)} of {length} bytes")
        ctype = self.headers.get("Content-Type", "")
        if ctype.split(";")[0].strip().lower() != _JSON:
            raise RequestError(415, f"send JSON with Content-Type: {_JSON}, not "
                                    f"{ctype or 'no content type'}")
        try:
            return json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise RequestError(400, f"malformed JSON: {exc}") from None

    def handle_expect_100(self):
        """A client that asks before sending (``Expect: 100-continue``) learns of an oversized
        body before sending it."""
        try:
            too_big = int(self.headers.get("Content-Length", "0")) > MAX_BODY_BYTES
        except ValueError:
            too_big = False  # reported once the request is read
        if too_big:
            self.close_connection = True
            self._send(413, _json_bytes({"error": f"the body is larger than the limit of "
                                                  f"{MAX_BODY_BYTES:,} bytes"}), _JSON)
            return False
        return super().handle_expect_100()

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for key, value in _HEADERS.items():
                self.send_header(key, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client went away
            self.close_connection = True

    def _drain(self, length: int) -> None:
        """Read and discard an unread body (bounded), so the client can read our answer."""
        self.close_connection = True
        left = min(length, _DRAIN_LIMIT)
        try:
            self.connection.settimeout(5)
            while left > 0:
                chunk = self.rfile.read(min(left, 1 << 16))
                if not chunk:
                    break
                left -= len(chunk)
        except OSError:
            pass

    def send_error(self, code, message=None, explain=None):
        """http.server's own errors (a malformed request line, ...), as JSON like ours."""
        self.close_connection = True
        if getattr(self, "request_version", "") == "HTTP/0.9":  # unparsable: answer in 1.0
            self.request_version = "HTTP/1.0"
        text = message or self.responses.get(code, ("error",))[0]
        self._send(int(code), _json_bytes({"error": text}), _JSON)

    def log_request(self, code="-", size="-"):
        try:
            failed = int(code) >= 400
        except (TypeError, ValueError):
            failed = True
        if failed:  # answered requests are not logged, only failures
            super().log_request(code, size)

    def log_message(self, format, *args):
        self.server.log_line(f"{self.address_string()} {format % args}")


def _index(query: str) -> int | None:
    values = parse_qs(query).get("index")
    if not values:
        return None
    try:
        return int(values[-1])
    except ValueError:
        raise RequestError(400, f"index must be an integer, got {values[-1]!r}") from None


def _json_bytes(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


class DigitServer(ThreadingHTTPServer):
    """The page's HTTP server: one thread per request, on ``host``:``port`` (0: any free port).

    Parameters
    ----------
    app : DigitApp
    host : str
        Address to listen on (an IPv6 address works too).
    port : int
    log : file, optional
        Where failed requests are logged, one line each (default: nowhere).
    """

    daemon_threads = True
    block_on_close = False
    # Connections waiting to be accepted (socketserver's default of 5 resets a burst of clients).
    request_queue_size = 128

    def __init__(self, app: DigitApp, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *,
                 log: IO[str] | None = None):
        self.app = app
        self.log = log
        self._log_lock = threading.Lock()
        if ":" in host:
            self.address_family = socket.AF_INET6
        try:
            super().__init__((host, port), _Handler)
        except OSError as exc:
            hint = " (it is in use: pass --port 0 for any free port)" if port else ""
            raise ListenError(exc.errno, f"cannot listen on {host} port {port}: "
                                         f"{exc.strerror}{hint}") from None

    def server_bind(self):
        # http.server looks up the host's fully qualified name here, which can hang offline.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    @property
    def url(self) -> str:
        """The page's address (for a wildcard host, this machine's loopback address)."""
        address, port = self.server_address[:2]
        host = address.decode() if isinstance(address, bytes) else str(address)
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1" if host == "0.0.0.0" else "::1"
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

    def log_line(self, text: str) -> None:
        if self.log is not None:
            with self._log_lock:
                print(f"portamlp serve: {text.rstrip()}", file=self.log, flush=True)

    def handle_error(self, request, client_address):
        """An exception outside any handler (a connection reset...): log it, keep serving."""
        exc = sys.exc_info()[1]
        self.log_line(f"{client_address[0]}: {type(exc).__name__}: {exc}")


def is_loopback(host: str) -> bool:
    """True when ``host`` is only reachable from this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any address


def make_server(model, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *,
                backend: str | None = None, device: Any = None, scale: Any = None,
                seed: int | None = None, log: IO[str] | None = None) -> DigitServer:
    """A server for ``model``, listening but not yet serving (call ``serve_forever()``).

    Warns (:class:`portamlp.PortamlpWarning`) when ``host`` is not a loopback address: anyone
    who can reach the machine can then use the page.
    """
    from ..errors import warn

    app = DigitApp.from_model(model, backend=backend, device=device, scale=scale, seed=seed)
    server = DigitServer(app, host, port, log=log)
    if not is_loopback(host):
        warn(f"serving on {host} port {server.server_address[1]}: anyone who can reach this "
             "machine can use the page (there is no authentication); the default host "
             f"{DEFAULT_HOST} keeps it to this machine")
    return server


# ---------------------------------------------------------------------------- the command line
def add_parser(sub) -> None:
    """Add ``serve`` to the subcommands."""
    from .common import add_common

    p = sub.add_parser("serve", help="a local web page: draw a digit, see the prediction",
                       description="Start a local web page where you draw a digit and watch "
                                   "the network classify it.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="a saved network (.json, .safetensors, or a "
                                            "checkpoint directory)")
    p.add_argument("--host", default=DEFAULT_HOST,
                   help=f"address to listen on (default: {DEFAULT_HOST}, this machine only; "
                        "another address is warned about)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"port to listen on; 0 picks any free one (default: {DEFAULT_PORT})")
    p.add_argument("--scale", help="pixel scaling: 255, 256 or standardize (default: the "
                                   "model's own, recorded when it was trained)")
    p.add_argument("--backend", help="backend to run on (default: auto)")
    p.add_argument("--device", help="device of the backend, e.g. cuda:1")
    add_common(p)
    p.set_defaults(handler=cmd_serve)


def _stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt


def cmd_serve(args) -> int:
    from .common import CLIError

    if not 0 <= args.port <= 65535:
        raise CLIError(f"--port {args.port} is not a port: give 1 to 65535, or 0 for any free one")
    try:
        server = make_server(args.model, args.host, args.port, backend=args.backend,
                             device=args.device, scale=args.scale,
                             log=None if args.quiet else sys.stderr)
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
