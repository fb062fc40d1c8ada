"""``portamlp serve MODEL``: a local web page to draw a digit and watch the network read it.

The page sends the canvas's pixels as they are; the server prepares them with
:func:`portamlp.images.prepare_digit`, the very function ``portamlp predict`` applies to
photos, and answers with the probabilities and the 28×28 image the network saw. The page's
files (HTML, JavaScript and CSS in ``portamlp/cli/static/``) are package data: no CDN, web
fonts or analytics, so the page works offline.

Four modules, each on top of the one before:

- :mod:`.app`, the application, with no transport: :class:`DigitApp` (the network, its
  preprocessing, the embedded MNIST test set, the page's files), :class:`RequestError` and
  :func:`decode_image` (the predict request's body → an image).
- :mod:`.guards`, what the server refuses before routing: Host headers of other servers (DNS
  rebinding, 421), body lengths that cannot be trusted (400, 411, 501), requests slower than
  their deadline (408), and :func:`is_loopback`.
- :mod:`.web`, the HTTP layer (the standard library's ``http.server``, one thread per
  connection, up to a limit): the handler and its routes, :class:`DigitServer`,
  :func:`make_server`, :class:`ListenError`, the headers and content types, the default
  address and limits.
- :mod:`.command`, the command line: :func:`add_parser`, :func:`cmd_serve` (printing the URL,
  stopping on Ctrl+C or SIGTERM).

Endpoints::

    GET  /                the page (its script and style sheet under /static/)
    GET  /api/model       the model: name, layers, activation, cost, test accuracy
    POST /api/predict     {"width", "height", "channels", "pixels": base64 bytes} → answer
                          (with "activations": true, every layer's activations too)
    GET  /api/test-digit  a random MNIST test image (or ?index=N), its prediction and label
                          (&activations=1: every layer's activations too)
    GET  /api/weights     ?layer=L&unit=J: the weights into one unit; ?layer=L: a whole layer
                          of 256 units or fewer

HEAD works wherever GET does (the same headers, no body). Errors are JSON ``{"error": ...}``:
400 malformed, 404, 405 (with Allow), 408 too slow, 411/501 chunked or other transfer coding,
413 too large, 415 not JSON, 421 another Host, 503 too many connections (Retry-After).

The server reads the model and its run record, the package's own assets and the embedded MNIST
test set, and nothing else. Neither the library core nor ``import portamlp`` imports this
package. The names below are imported from their module on first use, so that importing this
package or :mod:`.app` does not import ``http.server``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import MAX_SIDE, MIN_SIDE, DigitApp, RequestError, decode_image
    from .command import add_parser, cmd_serve
    from .web import (
        DEFAULT_HOST,
        DEFAULT_IDLE_TIMEOUT,
        DEFAULT_MAX_CONNECTIONS,
        DEFAULT_PORT,
        DEFAULT_REQUEST_TIMEOUT,
        MAX_BODY_BYTES,
        DigitServer,
        ListenError,
        is_loopback,
        make_server,
    )

__all__ = ["add_parser", "cmd_serve", "make_server", "DigitApp", "DigitServer", "RequestError",
           "ListenError", "decode_image", "is_loopback", "DEFAULT_HOST", "DEFAULT_PORT",
           "MAX_BODY_BYTES", "MIN_SIDE", "MAX_SIDE", "DEFAULT_MAX_CONNECTIONS",
           "DEFAULT_REQUEST_TIMEOUT", "DEFAULT_IDLE_TIMEOUT"]

#: Public name → the module of this package that defines it.
_HOMES = {
    "DigitApp": "app", "RequestError": "app", "decode_image": "app", "MIN_SIDE": "app",
    "MAX_SIDE": "app",
    "DigitServer": "web", "ListenError": "web", "make_server": "web", "is_loopback": "web",
    "DEFAULT_HOST": "web", "DEFAULT_PORT": "web", "MAX_BODY_BYTES": "web",
    "DEFAULT_MAX_CONNECTIONS": "web", "DEFAULT_REQUEST_TIMEOUT": "web",
    "DEFAULT_IDLE_TIMEOUT": "web",
    "add_parser": "command", "cmd_serve": "command",
}


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use (PEP 562)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # next time, found without this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
