"""The library's own exception and warning types, and how portamlp warns."""

from __future__ import annotations

import inspect
import os
import warnings
from typing import Any

__all__ = ["DataFormatError", "ModelFormatError", "DivergenceError", "DeviceMemoryError",
           "TrainingInterrupted", "PortamlpWarning", "warn", "render_options"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class DataFormatError(ValueError):
    """A data file (IDX, gzip) is malformed, truncated or inconsistent; the message names it."""


class ModelFormatError(ValueError):
    """A model file is malformed: the message names the file, the field and what was expected."""


class DivergenceError(RuntimeError):
    """Training produced a non-finite cost or weight; lower the learning rate."""


class DeviceMemoryError(MemoryError):
    """The network or the data does not fit in the device's memory; the message names the phase
    (initialisation, staging, optimizer state, training step, validation, final test), what was
    being allocated and how big it was."""

    def __init__(self, message: str, *, phase: str | None = None):
        super().__init__(message)
        self.phase = phase


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT (Ctrl-C) or SIGTERM stopped training; nothing trained so far is lost.

    Attributes
    ----------
    network : Network or None
        The network as it was at the end of the last complete epoch (the initial network when
        the first epoch did not complete).
    epochs_done : int
        Epochs completed (the number of entries in ``history``).
    history : list of EpochRecord
    checkpoint : path or None
        With ``train(checkpoint=DIR)``, the directory holding a checkpoint at the very mini-batch
        the signal arrived: ``train(resume=DIR)`` continues exactly from there.
    signum : int or None
        The signal received (None for a KeyboardInterrupt raised by Python itself).
    """

    def __init__(self, message: str, *, checkpoint=None, signum: int | None = None,
                 network=None, history=None):
        super().__init__(message)
        self.checkpoint = checkpoint
        self.signum = signum
        self.network = network
        self.history = list(history or [])
        self.epochs_done = len(self.history)


def render_options(options: dict[str, Any], style: str = "python") -> str:
    """Alternatives written for Python (``init='scaled'``) or the command line (``--init
    scaled``), joined by "or"."""
    if style == "cli":
        parts = [f"--{k.replace('_', '-')} {v}" for k, v in options.items()]
    else:
        parts = [f"{k}={v!r}" for k, v in options.items()]
    return " or ".join(parts)


class PortamlpWarning(UserWarning):
    """Advice from portamlp about a run (e.g. an output class that is never predicted).

    When the advice names options to try, ``options`` holds them and the message's
    ``{options}`` placeholder is filled in Python syntax; :meth:`render` writes it for the
    command line instead.
    """

    def __init__(self, message: str, *, options: dict[str, Any] | None = None):
        self.template = message
        self.options = dict(options or {})
        super().__init__(self.render())

    def render(self, style: str = "python") -> str:
        if "{options}" not in self.template:
            return self.template
        return self.template.replace("{options}", render_options(self.options, style))


def _caller_stacklevel() -> int:
    """The stacklevel of the first frame outside the portamlp package (seen from ``warn``)."""
    frame = inspect.currentframe()
    level = 0
    try:
        while frame is not None:
            filename = os.path.abspath(frame.f_code.co_filename)
            if level and not filename.startswith(_PACKAGE_DIR + os.sep):
                return level
            frame = frame.f_back
            level += 1
        return 2
    finally:
        del frame


def warn(message: str | Warning, category: type[Warning] = PortamlpWarning) -> None:
    """Issue a warning attributed to the caller's own line (the first frame outside portamlp)."""
    warnings.warn(message, category, stacklevel=_caller_stacklevel())
