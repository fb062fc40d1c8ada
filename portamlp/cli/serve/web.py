"""The HTTP layer of ``portamlp serve``: the application of :mod:`.app` over the standard
library's ``http.server``.

This module owns the server (:class:`DigitServer`, one thread per request, and
:func:`make_server`, which loads a model into it), the request handler (routing URLs to the
application or to the page's files, reading bodies within :data:`MAX_BODY_BYTES`, answering
every error as JSON without stopping the server), the headers sent with every answer and the
content types, the default address (:data:`DEFAULT_HOST`, :data:`DEFAULT_PORT`), and
:func:`is_loopback`, which decides whether the address is warned about.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import socketserver
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO, Any
from urllib.parse import SplitResult, parse_qs, urlsplit

from .app import MAX_SIDE, DigitApp, RequestError, decode_image

__all__ = ["DigitServer", "ListenError", "make_server", "is_loopback", "DEFAULT_HOST",
           "DEFAULT_PORT", "MAX_BODY_BYTES"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
#: Largest request body accepted (413 above): a 512×512 RGBA canvas, base64-encoded, fits.
MAX_BODY_BYTES = 2 * 1024 * 1024
#: An oversized body is read and thrown away up to this many bytes before the connection closes,
#: so that the client, still sending, gets to read the 413 answer.
_DRAIN_LIMIT = 64 * 1024 * 1024

_JSON = "application/json"
#: URL → (one of the page's files, :data:`.app.PAGE_FILES`; content type).
_ASSETS = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/style.css": ("style.css", "text/css; charset=utf-8"),
}
#: The application's endpoints: URL → the method it takes.
_ROUTES = {"/api/model": "GET", "/api/predict": "POST", "/api/test-digit": "GET"}
_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Only this server's own files: the page can load nothing from elsewhere.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
}


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

    def _route(self, method: str, url: SplitResult) -> tuple[int, bytes, str]:
        app = self.server.app
        expected = _ROUTES.get(url.path, "GET" if url.path in _ASSETS else None)
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
        file, ctype = _ASSETS[url.path]
        data = app.page_file(file)
        if data is None:  # an application without the page's files
            raise RequestError(404, f"no such page: {url.path} (the page is at /)")
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
        The application the requests go to.
    host : str
        Address to listen on (an IPv6 address works too).
    port : int
        Port to listen on; 0 picks any free one.
    log : file, optional
        Where failed requests are logged, one line each (default: nowhere).

    Raises
    ------
    ListenError
        When it cannot listen there (the port is in use, the address is not this machine's...).
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
        """Log one line (``portamlp serve: text``) to ``log``, if there is one.

        Parameters
        ----------
        text : str
            The line; trailing white space is dropped.
        """
        if self.log is not None:
            with self._log_lock:
                print(f"portamlp serve: {text.rstrip()}", file=self.log, flush=True)

    def handle_error(self, request, client_address):
        """An exception outside any handler (a connection reset...): log it, keep serving."""
        exc = sys.exc_info()[1]
        self.log_line(f"{client_address[0]}: {type(exc).__name__}: {exc}")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is only reachable from this machine.

    Parameters
    ----------
    host : str
        An IPv4 or IPv6 address, or a host name.

    Returns
    -------
    bool
        True for 127.0.0.0/8, ::1 and ``localhost``; False for any other address and any other
        host name (it may resolve to any address).
    """
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

    Parameters
    ----------
    model : str or path-like
        A saved network (``.json``, ``.safetensors`` or a checkpoint directory), loaded with
        :meth:`DigitApp.from_model <portamlp.cli.serve.app.DigitApp.from_model>`.
    host : str
        Address to listen on.
    port : int
        Port to listen on; 0 picks any free one (see :attr:`DigitServer.url`).
    backend, device, scale, seed
        Passed to :meth:`~portamlp.cli.serve.app.DigitApp.from_model`.
    log : file, optional
        Where failed requests are logged (default: nowhere).

    Returns
    -------
    DigitServer

    Raises
    ------
    ListenError
        When it cannot listen on ``host`` and ``port``.

    Warns
    -----
    portamlp.PortamlpWarning
        When ``host`` is not a loopback address: anyone who can reach the machine can then use
        the page.
    """
    from ...errors import warn

    app = DigitApp.from_model(model, backend=backend, device=device, scale=scale, seed=seed)
    server = DigitServer(app, host, port, log=log)
    if not is_loopback(host):
        warn(f"serving on {host} port {server.server_address[1]}: anyone who can reach this "
             "machine can use the page (there is no authentication); the default host "
             f"{DEFAULT_HOST} keeps it to this machine")
    return server
