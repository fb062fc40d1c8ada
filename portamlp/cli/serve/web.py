"""The HTTP layer of ``portamlp serve``: the application of :mod:`.app` over the standard
library's ``http.server``.

This module owns the server (:class:`DigitServer`, one thread per connection up to a limit,
and :func:`make_server`, which loads a model into it), the request handler (routing URLs to the
application or to the page's files, HEAD as GET without the body, reading bodies within
:data:`MAX_BODY_BYTES`, answering every error as JSON without stopping the server), the headers
sent with every answer and the content types, and the defaults: the address
(:data:`DEFAULT_HOST`, :data:`DEFAULT_PORT`) and the limits (:data:`DEFAULT_MAX_CONNECTIONS`,
:data:`DEFAULT_REQUEST_TIMEOUT`, :data:`DEFAULT_IDLE_TIMEOUT`). What it refuses before routing
(foreign Host headers, untrustworthy body lengths, slow requests) is checked by :mod:`.guards`.
"""

from __future__ import annotations

import collections
import io
import json
import socket
import socketserver
import sys
import threading
import time
import traceback
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO, Any
from urllib.parse import urlsplit

from .app import (
    MAX_SIDE,
    DigitApp,
    RequestError,
    activations_asked,
    decode_image,
    query_flag,
    query_int,
)
from .guards import (
    DeadlineReader,
    HostPolicy,
    body_length,
    check_limits,
    host_names,
    is_address,
    is_loopback,
)

__all__ = ["DigitServer", "ListenError", "make_server", "is_loopback", "DEFAULT_HOST",
           "DEFAULT_PORT", "MAX_BODY_BYTES", "DEFAULT_MAX_CONNECTIONS",
           "DEFAULT_REQUEST_TIMEOUT", "DEFAULT_IDLE_TIMEOUT"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
#: Connections served at once (one thread each); the next ones are answered 503 and closed.
DEFAULT_MAX_CONNECTIONS = 64
#: Seconds a request has, from its first byte, for its request line, headers and body (408 after).
DEFAULT_REQUEST_TIMEOUT = 10.0
#: Seconds a connection may wait for its next request (or its first) before it is closed.
DEFAULT_IDLE_TIMEOUT = 5.0
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
    "/static/network.js": ("network.js", "text/javascript; charset=utf-8"),
    "/static/style.css": ("style.css", "text/css; charset=utf-8"),
}
#: The application's endpoints: URL → the method it takes (HEAD goes with GET).
_ROUTES = {"/api/model": "GET", "/api/predict": "POST", "/api/test-digit": "GET",
           "/api/weights": "GET"}
#: Seconds a refused connection is kept half-closed, so the client reads the 503 before the close.
_LINGER_SECONDS = 1.0
#: Refused connections kept so at most (older ones are closed at once).
_LINGER_MAX = 256
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
    """One connection's requests: route each, answer JSON or a page file, never let an error
    stop the server; each request must arrive within the server's ``request_timeout``."""

    server: DigitServer
    protocol_version = "HTTP/1.1"
    server_version = "portamlp"
    timeout = None  # reads time out by the DeadlineReader; writes, in _send
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK would hold the body back some 40 ms.
    disable_nagle_algorithm = True

    def setup(self):
        super().setup()
        self.rfile.close()  # http.server's reader, replaced by one that keeps the deadline
        self.reader = DeadlineReader(self.connection, self.server.idle_timeout)
        self.rfile = io.BufferedReader(self.reader)

    def handle_one_request(self):
        """Wait up to ``idle_timeout`` for a request, then read and answer it (as
        http.server's, but a request that runs out of time is answered 408)."""
        self.reader.stop()
        try:
            if not self.rfile.peek(1):  # the client closed the connection
                self.close_connection = True
                return
        except OSError:  # idle too long (TimeoutError), or reset: close without a word
            self.close_connection = True
            return
        self.reader.start(self.server.request_timeout)
        self.requestline, self.request_version, self.command = "", "HTTP/1.1", ""
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if len(self.raw_requestline) > 65536:
                self.send_error(414, "the request line is longer than 65,536 bytes")
                return
            if not self.raw_requestline or not self.parse_request():
                self.close_connection = True  # parse_request has answered its errors
                return
            method = getattr(self, f"do_{self.command}", None)
            if method is None:
                self.send_error(501, f"method {self.command!r} is not supported (GET, HEAD "
                                     "and POST are)")
                return
            method()
            self.wfile.flush()
        except TimeoutError:  # the request line or headers came too slowly
            self.send_error(408, self._late_message())

    def _late_message(self) -> str:
        return (f"the request did not arrive in time: a request has "
                f"{self.server.request_timeout:g} s for its line, headers and body")

    def do_GET(self):
        self._handle("GET")

    def do_HEAD(self):
        self._handle("HEAD")

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
        self.body_length = 0
        headers = {}
        path = ""
        try:
            path, query = self._check_request()
            status, body, ctype = self._route(method, path, query)
        except RequestError as exc:
            status, body, ctype = exc.status, _json_bytes({"error": exc.message}), _JSON
            drain = exc.drain
            if exc.status in (408, 411, 413, 501):
                self.close_connection = True
            if exc.status == 405:
                headers["Allow"] = "POST" if _ROUTES.get(path) == "POST" else "GET, HEAD"
        except Exception as exc:  # a bug: answer 500 and log it, keep serving
            self.server.log_line(f"error answering {method} {self.path}:\n"
                                 + traceback.format_exc())
            status = 500
            body = _json_bytes({"error": f"internal error: {type(exc).__name__}: {exc}"})
            ctype = _JSON
            self.close_connection = True
        if not self.body_read and self.body_length:
            self.close_connection = True  # an unread body would be taken for the next request
        self._send(status, body, ctype, headers)
        if drain:
            self._drain(drain)

    def _check_request(self) -> tuple[str, str]:
        """The request's path and query, once its length and Host are known to be sound
        (:mod:`.guards`); a length that cannot be trusted closes the connection."""
        try:
            self.body_length = body_length(self.headers.get_all("Content-Length"),
                                           self.headers.get_all("Transfer-Encoding"))
        except RequestError:
            self.close_connection = True  # where this request ends is unknown
            raise
        target, authority = self.path, ""
        if target.startswith("/"):  # the usual form: /path?query
            path, _, query = target.partition("?")
        elif target[:8].lower().startswith(("http://", "https://")):  # as sent to a proxy
            url = urlsplit(target)
            path, query, authority = url.path or "/", url.query, url.netloc
            if not authority:
                raise RequestError(400, f"bad request target {target!r}: no host")
        else:
            raise RequestError(400, f"bad request target {target!r}: give a path such as /")
        self.server.hosts.check(self.headers.get_all("Host"), self.request_version, authority)
        return path, query

    def _route(self, method: str, path: str, query: str) -> tuple[int, bytes, str]:
        app = self.server.app
        expected = _ROUTES.get(path, "GET" if path in _ASSETS else None)
        if expected is None:
            raise RequestError(404, f"no such page: {path} (the page is at /)")
        if method != expected and not (method == "HEAD" and expected == "GET"):
            raise RequestError(405, f"{path} takes {expected}, not {method}")
        if path == "/api/model":
            return 200, _json_bytes(app.model_info()), _JSON
        if path == "/api/predict":
            payload = self._read_json()
            image, asked = decode_image(payload), activations_asked(payload)
            return 200, _json_bytes(app.predict(image, activations=asked)), _JSON
        if path == "/api/test-digit":
            answer = app.test_digit(query_int(query, "index"),
                                    activations=query_flag(query, "activations"))
            return 200, _json_bytes(answer), _JSON
        if path == "/api/weights":
            layer = query_int(query, "layer")
            if layer is None:
                raise RequestError(400, "say which layer: /api/weights?layer=1 (the weights into "
                                        "the first hidden layer), and unit=J for one unit")
            return 200, _json_bytes(app.weights(layer, query_int(query, "unit"))), _JSON
        file, ctype = _ASSETS[path]
        data = app.page_file(file)
        if data is None:  # an application without the page's files
            raise RequestError(404, f"no such page: {path} (the page is at /)")
        return 200, data, ctype

    def _read_json(self) -> Any:
        if self.headers.get("Content-Length") is None:
            raise RequestError(411, "a Content-Length header is required")
        length = self.body_length  # checked by _check_request
        if length > MAX_BODY_BYTES:
            raise RequestError(413, f"the body is {length:,} bytes; the limit is "
                                    f"{MAX_BODY_BYTES:,} (send at most a "
                                    f"{MAX_SIDE}×{MAX_SIDE} gray or 512×512 RGBA image)",
                               drain=length)
        body = self._read_body(length)
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

    def _read_body(self, length: int) -> bytes:
        """``length`` bytes of body, or fewer if the client closed; 408 if its time runs out."""
        body = bytearray()
        try:
            while len(body) < length:
                chunk = self.rfile.read1(min(length - len(body), 1 << 16))
                if not chunk:
                    break
                body += chunk
        except TimeoutError:
            self.body_read = True  # what came is consumed; the connection closes (408)
            raise RequestError(408, f"the body did not arrive in time: {len(body):,} of "
                                    f"{length:,} bytes came within "
                                    f"{self.server.request_timeout:g} s, the time a whole "
                                    "request has") from None
        return bytes(body)

    def handle_expect_100(self):
        """A client that asks before sending (``Expect: 100-continue``) learns of a refused
        request (an oversized body, a foreign Host...) before sending its body."""
        try:
            self._check_request()
            if self.body_length > MAX_BODY_BYTES:
                raise RequestError(413, f"the body is larger than the limit of "
                                        f"{MAX_BODY_BYTES:,} bytes")
        except RequestError as exc:
            self.close_connection = True
            self._send(exc.status, _json_bytes({"error": exc.message}), _JSON)
            return False
        return super().handle_expect_100()

    def _send(self, status: int, body: bytes, ctype: str,
              headers: dict[str, str] | None = None) -> None:
        """Answer: the status, the headers (Content-Length that of ``body``, even for HEAD),
        and the body, except for HEAD."""
        try:
            self.connection.settimeout(self.server.request_timeout)  # for writing
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for key, value in {**_HEADERS, **(headers or {})}.items():
                self.send_header(key, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:  # the client went away, or reads too slowly
            self.close_connection = True

    def _drain(self, length: int) -> None:
        """Read and discard an unread body (bounded in bytes and in time), so the client can
        read our answer."""
        self.close_connection = True
        left = min(length, _DRAIN_LIMIT)
        try:
            self.reader.start(self.server.request_timeout)
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


def _json_bytes(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


class DigitServer(ThreadingHTTPServer):
    """The page's HTTP server on ``host``:``port`` (0: any free port): one thread per connection,
    at most ``max_connections`` of them.

    A connection over the limit is answered 503 with ``Retry-After: 1`` and closed at once (it
    does not wait for a free thread). A request has ``request_timeout`` seconds from its first
    byte for its line, headers and body, in all (408 and the connection closes after that);
    a connection waiting for its next request is closed after ``idle_timeout`` seconds. Requests
    whose Host is not this server are answered 421 (see :class:`.guards.HostPolicy`).

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
    max_connections : int
        Connections served at once (default :data:`DEFAULT_MAX_CONNECTIONS`).
    request_timeout : float
        Seconds for a whole request (default :data:`DEFAULT_REQUEST_TIMEOUT`).
    idle_timeout : float
        Seconds a connection may wait between requests (default :data:`DEFAULT_IDLE_TIMEOUT`).
    allowed_hosts : iterable of str
        Host names to answer besides this machine's loopback names and the bound address, with
        any port (the names the page is reached under, e.g. behind a proxy).

    Raises
    ------
    ValueError
        For a limit that is not a positive number, or an allowed host that is not a host name.
    ListenError
        When it cannot listen there (the port is in use, the address is not this machine's...).
    """

    daemon_threads = True
    block_on_close = False
    # Connections waiting to be accepted (socketserver's default of 5 resets a burst of clients).
    request_queue_size = 128

    def __init__(self, app: DigitApp, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *,
                 log: IO[str] | None = None, max_connections: int = DEFAULT_MAX_CONNECTIONS,
                 request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
                 idle_timeout: float = DEFAULT_IDLE_TIMEOUT, allowed_hosts: Iterable[str] = ()):
        check_limits(max_connections, request_timeout, idle_timeout)
        allowed = host_names(allowed_hosts)
        self.app = app
        self.log = log
        self.max_connections = max_connections
        self.request_timeout = float(request_timeout)
        self.idle_timeout = float(idle_timeout)
        self._log_lock = threading.Lock()
        self._open = 0  # connections being served
        self._open_lock = threading.Lock()
        self._lingering: collections.deque = collections.deque()  # (close time, socket)
        if ":" in host:
            self.address_family = socket.AF_INET6
        try:
            super().__init__((host, port), _Handler)
        except OSError as exc:
            hint = " (it is in use: pass --port 0 for any free port)" if port else ""
            raise ListenError(exc.errno, f"cannot listen on {host} port {port}: "
                                         f"{exc.strerror}{hint}") from None
        # A host name given to listen on is a name the page is reached under.
        named = host and not is_loopback(host) and not is_address(host)
        self.hosts = HostPolicy(str(self.server_address[0]), self.server_address[1],
                                allowed | host_names([host]) if named else allowed)
        busy = _json_bytes({"error": f"the server is busy: it serves at most {max_connections} "
                                     "connections at once; try again in a second"})
        self._busy_answer = (
            "HTTP/1.1 503 Service Unavailable\r\nServer: portamlp\r\n"
            f"Content-Type: {_JSON}\r\nContent-Length: {len(busy)}\r\nRetry-After: 1\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in _HEADERS.items())
            + "Connection: close\r\n\r\n").encode("latin-1") + busy

    @property
    def open_connections(self) -> int:
        """How many connections are being served now (at most ``max_connections``)."""
        return self._open

    def process_request(self, request, client_address):
        """Serve the connection in a thread of its own, or answer 503 when all are taken."""
        with self._open_lock:
            full = self._open >= self.max_connections
            if not full:
                self._open += 1
        if full:
            self._refuse(request, client_address)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread started: its place is free again
            self._release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release()

    def _release(self) -> None:
        with self._open_lock:
            self._open -= 1

    def _refuse(self, request, client_address) -> None:
        """Answer 503 without a thread, and close the connection a little later: closed at
        once, a request the client has sent meanwhile would reset it before it reads the 503."""
        self.log_line(f"{client_address[0]}: refused a connection (503): the limit of "
                      f"{self.max_connections} open connections is reached")
        try:
            request.setblocking(False)
            request.send(self._busy_answer)  # a new connection's buffer holds it whole
            request.shutdown(socket.SHUT_WR)
        except OSError:
            request.close()
            return
        self._lingering.append((time.monotonic() + _LINGER_SECONDS, request))
        while len(self._lingering) > _LINGER_MAX:
            _close_refused(self._lingering.popleft()[1])

    def service_actions(self):
        """Between requests, in the serving loop: close the refused connections whose time
        is up."""
        super().service_actions()
        now = time.monotonic()
        while self._lingering and self._lingering[0][0] <= now:
            _close_refused(self._lingering.popleft()[1])

    def server_close(self):
        super().server_close()
        while self._lingering:
            _close_refused(self._lingering.popleft()[1])

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


def _close_refused(sock: socket.socket) -> None:
    """Read what a refused client sent (so the close does not reset it), then close."""
    try:
        while sock.recv(1 << 16):
            pass
    except OSError:  # nothing more to read now, or the client is gone
        pass
    sock.close()


def make_server(model, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *,
                backend: str | None = None, device: Any = None, scale: Any = None,
                seed: int | None = None, log: IO[str] | None = None,
                max_connections: int = DEFAULT_MAX_CONNECTIONS,
                request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
                idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
                allowed_hosts: Iterable[str] = ()) -> DigitServer:
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
    max_connections, request_timeout, idle_timeout, allowed_hosts
        The server's limits and the host names it answers besides its own: see
        :class:`DigitServer`.

    Returns
    -------
    DigitServer

    Raises
    ------
    ValueError
        For a limit or allowed host that :class:`DigitServer` refuses.
    ListenError
        When it cannot listen on ``host`` and ``port``.

    Warns
    -----
    portamlp.PortamlpWarning
        When ``host`` is not a loopback address: anyone who can reach the machine can then use
        the page.
    """
    from ...errors import warn

    check_limits(max_connections, request_timeout, idle_timeout)  # before loading the model
    allowed_hosts = host_names(allowed_hosts)
    app = DigitApp.from_model(model, backend=backend, device=device, scale=scale, seed=seed)
    server = DigitServer(app, host, port, log=log, max_connections=max_connections,
                         request_timeout=request_timeout, idle_timeout=idle_timeout,
                         allowed_hosts=allowed_hosts)
    if not is_loopback(host):
        warn(f"serving on {host} port {server.server_address[1]}: anyone who can reach this "
             "machine can use the page (there is no authentication); the default host "
             f"{DEFAULT_HOST} keeps it to this machine")
    return server
