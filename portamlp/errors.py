"""The library's own exception and warning types."""

from __future__ import annotations

__all__ = ["DataFormatError", "ModelFormatError", "DivergenceError", "DeviceMemoryError",
           "TrainingInterrupted", "PortamlpWarning"]


class DataFormatError(ValueError):
    """A data file (IDX, gzip) is malformed, truncated or inconsistent; the message names it."""


class ModelFormatError(ValueError):
    """A model file is malformed: the message names the file, the field and what was expected."""


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss or weight; lower the learning rate."""


class DeviceMemoryError(MemoryError):
    """The network or the data does not fit in the device's memory; the message says what was
    being allocated and how big it was."""


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped a checkpointed run; ``.checkpoint`` is where to resume from."""

    def __init__(self, message: str, *, checkpoint=None, signum: int | None = None):
        super().__init__(message)
        self.checkpoint = checkpoint
        self.signum = signum


class PortamlpWarning(UserWarning):
    """Advice from portamlp about a run (e.g. an output class that is never predicted)."""
