"""The library's own exception and warning types."""

from __future__ import annotations

__all__ = ["DataFormatError", "ModelFormatError", "DivergenceError", "PortamlpWarning"]


class DataFormatError(ValueError):
    """A data file (IDX, gzip) is malformed, truncated or inconsistent; the message names it."""


class ModelFormatError(ValueError):
    """A model file is malformed: the message names the file, the field and what was expected."""


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss or weight; lower the learning rate."""


class PortamlpWarning(UserWarning):
    """Advice from portamlp about a run (e.g. an output class that is never predicted)."""
