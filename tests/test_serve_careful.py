"""``portamlp serve`` as a careful server: what it refuses and how it bounds its clients.

Each test talks to a real server on 127.0.0.1 (port 0, in a thread) with raw sockets, so that
it can send what a browser would not (a foreign Host, a doubtful Content-Length, a body sent a
byte at a time) and see exactly what comes back: the status, the headers, whether a body
follows, whether the connection closes. Limits are given small (a 0.5 s deadline) so the file
stays fast.
"""

from __future__ import annotations

import contextlib
import io
import json
import select
import socket
import threading
import time

import pytest

import portamlp
from portamlp.cli.serve import (
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_REQUEST_TIMEOUT,
    DigitApp,
    DigitServer,
    make_server,
)
from portamlp.datasets import Preprocessing

#: The deadline of a request in these tests (seconds).
DEADLINE = 0.5


# ------------------------------------------------------------------------------------ helpers
@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("careful")
    net = portamlp.Network.initialize([784, 16, 10], activation="relu", seed=2)
    net.preprocessing = Preprocessing.from_scale("standardize")
    net.save(d / "net.json")
    return d / "net.json"


@pytest.fixture(scope="module")
def app(model):
    return DigitApp.from_model(model, seed=0)


@contextlib.contextmanager
def serving(app, host="127.0.0.1", **limits):
    """A DigitServer on ``host`` port 0, serving in a thread; its log in ``server.log``."""
    limits = {"request_timeout": DEADLINE, "idle_timeout": 3.0, **limits}
    srv = DigitServer(app, host, 0, log=io.StringIO(), **limits)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def server(app):
    with serving(app) as srv:
        yield srv


def port_of(server) -> int:
    return server.server_address[1]


def request(server, method="GET", path="/api/model", headers=None, body=b"",
            host: str | None = "", version="HTTP/1.1") -> bytes:
    """The bytes of one request; ``host=""`` is this server's own ``127.0.0.1:port``, None
    sends no Host."""
    lines = [f"{method} {path} {version}"]
    if host is not None:
        lines.append(f"Host: {host or f'127.0.0.1:{port_of(server)}'}")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()] if isinstance(headers, dict) \
        else list(headers or [])
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def exchange(server, data: bytes, timeout: float = 2.0) -> bytes:
    """Send ``data``, read until the server closes; socket.timeout (a failure) if it does not
    close within ``timeout`` seconds of quiet."""
    with socket.create_connection(server.server_address[:2], timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def parse(data: bytes, heads: int = 0) -> list[tuple[int, dict[str, str], bytes]]:
    """The answers in ``data``: (status, headers in lower case, body); the first ``heads`` are
    answers to HEAD (no body). Fails on trailing bytes that are no answer."""
    answers = []
    while data:
        head, sep, data = data.partition(b"\r\n\r\n")
        assert sep, f"an incomplete answer: {head!r}"
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        length = 0 if len(answers) < heads else int(headers["content-length"])
        answers.append((int(status_line.split()[1]), headers, data[:length]))
        data = data[length:]
    return answers


def one_answer(server, data: bytes, **kw) -> tuple[int, dict[str, str], dict]:
    """The only answer to ``data`` (the server must then close), its body as JSON."""
    answers = parse(exchange(server, data, **kw))
    assert len(answers) == 1, answers
    status, headers, body = answers[0]
    return status, headers, json.loads(body) if body else {}


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes ``sock`` within ``seconds`` (what it sent before is read)."""
    end = time.monotonic() + seconds
    sock.settimeout(0.05)
    while time.monotonic() < end:
        try:
            if sock.recv(65536) == b"":
                return True
        except TimeoutError:
            pass
        except ConnectionResetError:
            return True
    return False


def wait_until(condition, seconds: float = 3.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


# ------------------------------------------------------------------------------------- Host
FOREIGN_HOSTS = ["evil.example", "evil.example:{port}", "localhost.evil.example:{port}",
                 "127.0.0.1.nip.io:{port}", "localhost:{other}", "127.0.0.1:{other}",
                 "127.0.0.1", "[::1]:{other}"]


@pytest.mark.parametrize("host", FOREIGN_HOSTS)
def test_a_host_of_another_server_is_refused_421(server, host):
    """DNS rebinding: a page of evil.example pointed at 127.0.0.1 sends Host: evil.example."""
    port = port_of(server)
    host = host.format(port=port, other=port + 1 if port < 65535 else 1)
    got = parse(exchange(server, request(server, host=host, headers={"Connection": "close"})))
    assert [status for status, _, _ in got] == [421]
    assert host in json.loads(got[0][2])["error"]


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LocalHost:{port}",
                                  "[::1]:{port}"])
def test_the_server_s_own_loopback_names_are_answered(server, host):
    data = request(server, host=host.format(port=port_of(server)),
                   headers={"Connection": "close"})
    assert parse(exchange(server, data))[0][0] == 200


def test_a_foreign_name_names_the_flag_that_allows_it(server):
    status, _, answer = one_answer(server, request(server, host="pad.example.org",
                                                   headers={"Connection": "close"}))
    assert status == 421 and "--allow-host pad.example.org" in answer["error"]


@pytest.mark.parametrize("case", ["none", "two", "malformed", "bad port", "ipv4 in brackets"])
def test_a_missing_repeated_or_malformed_host_is_400(server, case):
    own = f"127.0.0.1:{port_of(server)}"
    data = {"none": request(server, host=None),
            "two": request(server, headers=[f"Host: {own}"]),
            "malformed": request(server, host="a b"),
            "bad port": request(server, host="localhost:80a"),
            "ipv4 in brackets": request(server, host=f"[127.0.0.1]:{port_of(server)}")}[case]
    data = data.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)
    status, _, answer = one_answer(server, data)
    assert status == 400 and "Host" in answer["error"]


def test_http_1_0_without_host_is_answered(server):
    status, _, answer = one_answer(server, request(server, host=None, version="HTTP/1.0"))
    assert status == 200 and answer["layers"] == [784, 16, 10]


def test_an_absolute_target_s_host_is_checked_too(server):
    port = port_of(server)
    evil = request(server, path=f"http://evil.example:{port}/api/model",
                   headers={"Connection": "close"})
    assert one_answer(server, evil)[0] == 421
    own = request(server, path=f"http://localhost:{port}/api/model",
                  headers={"Connection": "close"})
    assert one_answer(server, own)[0] == 200


def test_allowed_hosts_and_a_wildcard_address(app):
    with serving(app, allowed_hosts=["pad.example.org"]) as srv:
        for host, status in (("pad.example.org", 200), ("PAD.example.org:8443", 200),
                             ("evil.example", 421)):
            data = request(srv, host=host, headers={"Connection": "close"})
            assert one_answer(srv, data)[0] == status, host
    with serving(app, host="0.0.0.0") as srv:  # noqa: S104 - reached through 127.0.0.1 here
        port = port_of(srv)
        for host, status in ((f"192.0.2.7:{port}", 200), (f"[2001:db8::1]:{port}", 200),
                             (f"192.0.2.7:{port + 1}", 421), (f"evil.example:{port}", 421)):
            data = request(srv, host=host, headers={"Connection": "close"})
            assert one_answer(srv, data)[0] == status, host


@pytest.mark.parametrize("name", ["http://pad.example.org", "pad.example.org:8080",
                                  "pad.example.org/", "two words", ""])
def test_an_allowed_host_must_be_a_host_name(app, name):
    with pytest.raises(ValueError, match="is not a host name"):
        DigitServer(app, port=0, allowed_hosts=[name])


# -------------------------------------------------------------------------- body framing
BAD_LENGTHS = {"plus": ["+2"], "underscore": ["0_2"], "negative": ["-1"], "hex": ["0x2"],
               "a list": ["2, 2"], "vertical tab": ["\x0b2"], "non-ASCII digit": ["\xb2"],
               "two equal": ["2", "2"], "two different": ["2", "3"], "empty": [""]}


@pytest.mark.parametrize("method, path", [("POST", "/api/predict"), ("GET", "/api/model")])
@pytest.mark.parametrize("case", BAD_LENGTHS, ids=list(BAD_LENGTHS))
def test_a_doubtful_content_length_is_400_and_closes(server, case, method, path):
    """int() reads "+2", "0_2", "\\x0b2"; a proxy may read a list or the other header: where
    the body ends is unknown, so the connection closes (a second request is never read)."""
    headers = [f"Content-Length: {value}" for value in BAD_LENGTHS[case]]
    data = request(server, method, path, ["Content-Type: application/json", *headers], b"{}")
    data += request(server)  # pipelined: must not be answered
    status, headers, answer = one_answer(server, data)
    assert status == 400 and "Content-Length" in answer["error"]
    assert headers["connection"] == "close"


@pytest.mark.parametrize("coding, status", [("chunked", 411), ("gzip, chunked", 411),
                                            ("gzip", 501)])
@pytest.mark.parametrize("method, path", [("POST", "/api/predict"), ("GET", "/api/model")])
def test_a_transfer_coding_is_refused_and_closes(server, coding, status, method, path):
    data = request(server, method, path, ["Content-Type: application/json",
                                          f"Transfer-Encoding: {coding}"], b"2\r\n{}\r\n0\r\n\r\n")
    got, headers, answer = one_answer(server, data + request(server))
    assert got == status and "Content-Length" in answer["error"]
    assert headers["connection"] == "close"


def test_a_sound_content_length_keeps_the_connection(server):
    """Leading zeros and white space around the value are HTTP's own; two requests are
    answered on one connection."""
    body = b'{"width": 8}'
    first = request(server, "POST", "/api/predict", ["Content-Type: application/json",
                                                     f"Content-Length: 00{len(body)} "], body)
    second = request(server, headers={"Connection": "close"})
    got = parse(exchange(server, first + second))
    assert [status for status, _, _ in got] == [400, 200]  # a wrong image; then the model
    assert "wrong image size" in json.loads(got[0][2])["error"]


# ------------------------------------------------------------------------------------ HEAD
@pytest.mark.parametrize("path", ["/", "/static/app.js", "/api/model"])
def test_head_has_the_headers_of_get_and_no_body(server, path):
    """HEAD then GET on one connection: the GET's answer comes right after HEAD's headers."""
    data = request(server, "HEAD", path) + request(server, "GET", path,
                                                   {"Connection": "close"})
    (s1, h1, b1), (s2, h2, b2) = parse(exchange(server, data), heads=1)
    assert (s1, s2) == (200, 200) and b1 == b"" and len(b2) > 100
    assert h1["content-length"] == h2["content-length"] == str(len(b2))
    h1.pop("date"), h2.pop("date"), h2.pop("connection")
    assert h1 == h2


def test_head_on_a_post_route_is_405_with_allow_and_no_body(server):
    data = request(server, "HEAD", "/api/predict") + request(server, headers={"Connection":
                                                                              "close"})
    (s1, h1, b1), (s2, _, _) = parse(exchange(server, data), heads=1)
    assert (s1, s2) == (405, 200) and b1 == b"" and h1["allow"] == "POST"
    assert int(h1["content-length"]) > 0  # the error's length, not sent


# ------------------------------------------------------------------------------- deadlines
def test_a_half_sent_body_is_408_and_closes_without_a_traceback(app):
    with serving(app) as srv:
        data = request(srv, "POST", "/api/predict", ["Content-Type: application/json",
                                                     "Content-Length: 10"], b"{}")
        start = time.monotonic()
        status, headers, answer = one_answer(srv, data)
        elapsed = time.monotonic() - start
        assert status == 408 and headers["connection"] == "close"
        assert "2 of 10 bytes" in answer["error"]
        assert DEADLINE * 0.8 < elapsed < DEADLINE + 1.5
        log = srv.log.getvalue()
        assert " 408 " in log and "Traceback" not in log and "500" not in log


def test_a_slowloris_is_cut_off_by_the_request_s_deadline(server):
    """One header byte every 0.1 s: each read gets its byte, but the whole request must
    arrive within DEADLINE, not within DEADLINE of each byte."""
    with socket.create_connection(server.server_address[:2], timeout=5) as s:
        s.sendall(b"GET /api/model HTTP/1.1\r\n")
        start = time.monotonic()
        answer = b""
        try:
            for byte in b"X-Slow: " + b"a" * 200:
                if select.select([s], [], [], 0.1)[0]:
                    break  # the server answered
                s.send(bytes([byte]))
            else:
                pytest.fail("the server kept reading a request sent a byte at a time")
            while chunk := s.recv(65536):
                answer += chunk
        except (BrokenPipeError, ConnectionResetError):
            pass
        elapsed = time.monotonic() - start
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert elapsed < DEADLINE + 1.0, elapsed


def test_the_deadline_is_per_request_not_per_connection(server):
    """Requests DEADLINE / 2 apart on one connection, for more than the deadline in all."""
    with socket.create_connection(server.server_address[:2], timeout=5) as s:
        for _ in range(4):
            s.sendall(request(server))
            status, _, _ = parse(_read_one(s))[0]
            assert status == 200
            time.sleep(DEADLINE / 2)


def _read_one(s: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))
    while len(rest) < length:
        rest += s.recv(65536)
    return head + b"\r\n\r\n" + rest


def test_idle_connections_are_closed(app):
    with serving(app, idle_timeout=0.3) as srv:
        silent = socket.create_connection(srv.server_address[:2])
        used = socket.create_connection(srv.server_address[:2])
        with silent, used:
            used.sendall(request(srv))  # keep-alive, then nothing more
            assert parse(_read_one(used))[0][0] == 200
            assert closed_within(silent, 2.0) and closed_within(used, 2.0)
        assert wait_until(lambda: srv.open_connections == 0)


# ----------------------------------------------------------------------- connection limit
def test_connections_over_the_limit_get_503_and_no_thread(app):
    cap = 3
    with serving(app, max_connections=cap) as srv:
        threads_before = threading.active_count()
        idle = [socket.create_connection(srv.server_address[:2]) for _ in range(cap)]
        try:
            assert wait_until(lambda: srv.open_connections == cap)
            for _ in range(20):
                status, headers, answer = one_answer(srv, request(srv))
                assert status == 503 and headers["retry-after"] == "1"
                assert headers["connection"] == "close"
                assert f"at most {cap} connections" in answer["error"]
            assert threading.active_count() - threads_before <= cap
            assert srv.open_connections == cap
        finally:
            for s in idle:
                s.close()
        assert wait_until(lambda: srv.open_connections == 0)
        assert one_answer(srv, request(srv, headers={"Connection": "close"}))[0] == 200
        assert "refused a connection" in srv.log.getvalue()


def test_idle_connections_give_their_place_back(app):
    with serving(app, max_connections=2, idle_timeout=0.3) as srv:
        idle = [socket.create_connection(srv.server_address[:2]) for _ in range(2)]
        with idle[0], idle[1]:
            assert wait_until(lambda: srv.open_connections == 2)
            assert one_answer(srv, request(srv))[0] == 503
            assert wait_until(lambda: srv.open_connections == 0)  # closed by the server
            assert one_answer(srv, request(srv, headers={"Connection": "close"}))[0] == 200


# ------------------------------------------------------------------------------ the limits
def test_the_limits_have_defaults_and_are_checked(app):
    assert (DEFAULT_MAX_CONNECTIONS, DEFAULT_REQUEST_TIMEOUT, DEFAULT_IDLE_TIMEOUT) == (
        64, 10.0, 5.0)
    srv = DigitServer(app, port=0)
    assert (srv.max_connections, srv.request_timeout, srv.idle_timeout) == (64, 10.0, 5.0)
    srv.server_close()
    for bad in ({"max_connections": 0}, {"max_connections": 2.5},
                {"max_connections": True}, {"request_timeout": 0},
                {"request_timeout": float("nan")}, {"idle_timeout": -1},
                {"idle_timeout": "5"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            DigitServer(app, port=0, **bad)


def test_make_server_passes_the_limits(model):
    srv = make_server(model, port=0, max_connections=7, request_timeout=1.5, idle_timeout=2,
                      allowed_hosts=["pad.example.org"])
    srv.server_close()
    assert (srv.max_connections, srv.request_timeout, srv.idle_timeout) == (7, 1.5, 2.0)
    assert "pad.example.org" in srv.hosts.allowed


@pytest.mark.parametrize("flags, words", [
    (["--max-connections", "0"], "not a whole number"),
    (["--max-connections", "+3"], "not a whole number"),
    (["--request-timeout", "0"], "not a number of seconds"),
    (["--idle-timeout", "nan"], "not a number of seconds"),
    (["--allow-host", "http://x.org"], "is not a host name")])
def test_bad_limit_flags_are_usage_errors(model, flags, words, capsys):
    from portamlp.cli import main

    try:
        status = main(["serve", str(model), "--port", "0", *flags])
    except SystemExit as exc:  # argparse's own usage error
        status = exc.code
    assert status == 2
    err = capsys.readouterr().err
    assert "error:" in err and words in err and "Traceback" not in err
