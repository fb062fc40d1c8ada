"""What the HTTP layer of ``portamlp serve`` refuses before a request reaches the application.

This module owns three checks and the one address test they share:

- :class:`HostPolicy`: which ``Host`` headers (or absolute request targets) the server answers.
  A web page elsewhere can make a browser send requests to ``127.0.0.1`` by pointing a name it
  controls there (DNS rebinding); such requests carry that name as ``Host``, and are refused.
- :func:`body_length`: the one ``Content-Length`` of a request, or why its length cannot be
  trusted (two lengths, a length Python's ``int`` reads but HTTP does not, a transfer coding).
- :class:`DeadlineReader`: a socket reader whose reads all end by one deadline, so that a
  request sent a byte at a time (a slowloris) is cut off when its time is up, not kept alive
  by each byte; between requests it waits at most an idle timeout.
- :func:`is_loopback`, whether an address is only reachable from this machine.

Nothing here knows ``http.server``: the checks take strings or a socket, and raise
:class:`~.app.RequestError` (with the status to answer) or :exc:`TimeoutError`.
"""

from __future__ import annotations

import io
import ipaddress
import math
import re
import socket
import time
from collections.abc import Iterable
from typing import Any

from .app import RequestError

__all__ = ["HostPolicy", "host_names", "body_length", "DeadlineReader", "is_loopback",
           "is_address", "check_limits"]

#: ``host[:port]`` of a Host header: a name or IPv4 address, or an IPv6 address in brackets.
_AUTHORITY = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9._-]+))"
                        r"(?::(?P<port>[0-9]{1,5}))?")
#: A host name or address given to serve under (``--allow-host``): no scheme, port or path.
_NAME = re.compile(r"[A-Za-z0-9._:-]+")
#: Addresses that listen on every interface of the machine.
_WILDCARDS = ("", "0.0.0.0", "::")
#: Digits of a Content-Length past which it is simply "too large" (int() refuses 4,300).
_MAX_LENGTH_DIGITS = 18


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


def host_names(names: Iterable[str]) -> frozenset[str]:
    """Host names to serve under, checked and written as :class:`HostPolicy` compares them.

    Parameters
    ----------
    names : iterable of str
        Names or addresses, e.g. ``"pad.example.org"``, ``"192.168.1.5"``, ``"[fe80::1]"``.

    Returns
    -------
    frozenset of str
        Lower case, IPv6 addresses without brackets.

    Raises
    ------
    ValueError
        For a name with a scheme, port, path or space, quoting it.
    """
    found = set()
    for name in names:
        host = name.strip("[]") if isinstance(name, str) else ""
        if not _NAME.fullmatch(host) or ":" in host and not _is_ipv6(host):
            raise ValueError(f"allowed host {name!r} is not a host name: give a name or address "
                             "such as pad.example.org or 192.168.1.5 (no scheme, port or path)")
        found.add(host.lower())
    return frozenset(found)


def _is_ipv6(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).version == 6
    except ValueError:
        return False


class HostPolicy:
    """Which ``Host`` values the server answers.

    Answered: ``localhost`` and loopback addresses (``127.0.0.1``, ``[::1]``) with the port the
    server listens on (no port: only on port 80); the address it is bound to, with that port;
    for a server bound to every interface (``0.0.0.0``, ``::``), any IP address with that port
    (a DNS rebinding needs a name, so an address is safe); and the names of ``allowed``, with
    any port or none (the names the server is reached under, perhaps through a proxy). Any
    other name is refused with 421 (Misdirected Request).

    Parameters
    ----------
    address : str
        The address the server is bound to.
    port : int
        The port it listens on.
    allowed : iterable of str
        Further names to answer, as :func:`host_names` accepts them.
    """

    def __init__(self, address: str, port: int, allowed: Iterable[str] = ()):
        self.port = port
        self.allowed = host_names(allowed)
        self.wildcard = address in _WILDCARDS
        self.address: ipaddress.IPv4Address | ipaddress.IPv6Address | None
        try:
            self.address = ipaddress.ip_address(address.split("%")[0])
        except ValueError:
            self.address = None

    def check(self, values: list[str] | None, version: str, target_authority: str = "") -> None:
        """Refuse a request whose Host is not this server.

        Parameters
        ----------
        values : list of str or None
            The request's Host headers (None or empty: none).
        version : str
            The request's HTTP version, e.g. ``"HTTP/1.1"`` (before 1.1, Host is optional).
        target_authority : str
            The ``host[:port]`` of an absolute request target (``GET http://host/...``), which
            stands in for Host; empty for the usual ``GET /path``.

        Raises
        ------
        RequestError
            400 without a Host on HTTP/1.1, with several or a malformed one; 421 for a Host
            that names another server or port, naming it and ``--allow-host``.
        """
        values = values or []
        if len(values) > 1:
            raise RequestError(400, f"{len(values)} Host headers: send exactly one")
        if not values and version >= "HTTP/1.1" and not target_authority:
            raise RequestError(400, f"an {version} request needs a Host header")
        for authority in filter(None, (target_authority, *values[:1])):
            self._check_one(authority)
            if target_authority:  # an absolute target's authority wins over Host (RFC 9112)
                break

    def _check_one(self, authority: str) -> None:
        match = _AUTHORITY.fullmatch(authority)
        if match is None:
            raise RequestError(400, f"malformed Host {authority!r}: give host or host:port")
        host = (match["v6"] or match["name"]).lower()
        port = int(match["port"]) if match["port"] else None
        if host in self.allowed:
            return
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if address is None and host != "localhost":  # a name could point anywhere (rebinding)
            raise RequestError(421, f"Host {authority!r} is not this server: it answers "
                                    f"localhost, 127.0.0.1 and [::1] (and names given with "
                                    f"--allow-host, e.g. --allow-host {host})")
        if match["v6"] and (address is None or address.version != 6):
            raise RequestError(400, f"malformed Host {authority!r}: only IPv6 goes in brackets")
        if (port or 80) != self.port:
            raise RequestError(421, f"Host {authority!r} names port {port or 80}; this server "
                                    f"listens on port {self.port}")
        if address is None or address.is_loopback or self.wildcard or address == self.address:
            return  # localhost, or an address of this server
        raise RequestError(421, f"Host {authority!r} is not this server's address")

def body_length(lengths: list[str] | None, codings: list[str] | None) -> int:
    """The length of a request's body, from its Content-Length and Transfer-Encoding headers.

    Parameters
    ----------
    lengths : list of str or None
        The values of its Content-Length headers.
    codings : list of str or None
        The values of its Transfer-Encoding headers.

    Returns
    -------
    int
        The number of bytes of the body (0 without Content-Length); a length of more than
        18 digits is returned as 10**18, larger than any limit.

    Raises
    ------
    RequestError
        411 for a chunked body, 501 for another transfer coding, 400 for several
        Content-Length headers (even equal ones) or one that is not only ASCII digits (``+2``,
        ``0_2``, ``-1``, ``0x2``, ``2, 2``: each of which Python's ``int`` reads, or a client
        and this server could read differently). After any of them, the request's end is
        unknown: the connection must close.
    """
    if codings:
        if any("chunked" in value.lower() for value in codings):
            raise RequestError(411, "send the body with a Content-Length, not "
                                    "Transfer-Encoding: chunked")
        raise RequestError(501, f"Transfer-Encoding {', '.join(codings)!r} is not supported: "
                                "send the body with a Content-Length")
    if not lengths:
        return 0
    if len(lengths) > 1:
        raise RequestError(400, f"{len(lengths)} Content-Length headers "
                                f"({', '.join(map(repr, lengths))}): send exactly one")
    text = lengths[0].strip(" \t")  # the optional white space around any header's value
    if not (text.isascii() and text.isdigit()):
        raise RequestError(400, f"bad Content-Length {lengths[0]!r}: give the body's length "
                                "in bytes, as digits only")
    if len(text.lstrip("0")) > _MAX_LENGTH_DIGITS:
        return 10 ** _MAX_LENGTH_DIGITS
    return int(text)


class DeadlineReader(io.RawIOBase):
    """A socket's bytes, each read ending by one deadline (wrap it in :class:`io.BufferedReader`).

    While a request is read (after :meth:`start`), every read waits at most until the request's
    deadline, however many reads the request takes: one byte every few seconds does not keep it
    alive. Between requests (after :meth:`stop`, the initial state), a read waits at most
    ``idle_timeout`` seconds. A read past either raises :exc:`TimeoutError`.

    Parameters
    ----------
    sock : socket.socket
        The connection.
    idle_timeout : float
        Seconds a read may wait between requests.
    """

    def __init__(self, sock: socket.socket, idle_timeout: float):
        super().__init__()
        self._sock = sock
        self.idle_timeout = idle_timeout
        self.deadline: float | None = None

    def start(self, seconds: float) -> None:
        """Give what is read from now on ``seconds`` in all (a request: its line, headers, body).

        Parameters
        ----------
        seconds : float
            The time allowed, from now.
        """
        self.deadline = time.monotonic() + seconds

    def stop(self) -> None:
        """Between requests: each read waits at most ``idle_timeout``."""
        self.deadline = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.deadline is None:
            timeout = self.idle_timeout
        else:
            timeout = self.deadline - time.monotonic()
            if timeout <= 0:
                raise TimeoutError("the request's time is up")
        self._sock.settimeout(timeout)
        return self._sock.recv_into(buffer)


def check_limits(max_connections: Any, request_timeout: Any, idle_timeout: Any) -> None:
    """ValueError for a limit of :class:`DigitServer` that is not a positive number."""
    if isinstance(max_connections, bool) or not isinstance(max_connections, int) \
            or max_connections < 1:
        raise ValueError(f"max_connections must be a whole number ≥ 1, got "
                         f"{max_connections!r}")
    for name, value in (("request_timeout", request_timeout), ("idle_timeout", idle_timeout)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a number of seconds > 0, got {value!r}")


def is_address(host: str) -> bool:
    """Whether ``host`` is an IP address (v4 or v6, with an optional zone), not a name."""
    try:
        ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    return True
