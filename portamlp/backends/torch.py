"""The PyTorch backend entry: tensors on the CPU or a CUDA device."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from .base import Library, namespace_with, parse_device

__all__ = ["PyTorch", "LIBRARY"]


@functools.cache
def _namespace() -> Any:
    """``array_api_compat.torch`` with ``take`` as one ``index_select``.

    The compat ``take`` wraps the indices in a ``where`` for negative values: three extra kernel
    launches per call, two calls per mini-batch. portamlp's indices are never negative.
    """
    import torch

    def take(x, indices, /, *, axis=None):
        return torch.index_select(x, 0 if axis is None else axis, indices)

    return namespace_with("array_api_compat.torch", _namespace.__doc__ or "", {"take": take})


class PyTorch(Library):
    """PyTorch tensors, on the CPU or a CUDA device."""

    name = module = "torch"
    install = "pip install torch"
    distributions = ("torch",)
    order = 2
    out_of_memory_errors = ("OutOfMemoryError",)

    def namespace(self) -> Any:
        return _namespace()

    def probe(self) -> str | None:
        try:
            self.native()
        except ImportError as exc:
            return f"{exc.name or 'torch'} is not installed"
        return super().probe()

    def to_host(self, array: Any) -> np.ndarray:
        return array.detach().cpu().numpy()

    def device_of(self, array: Any) -> Any:
        return array.device

    def resolve_device(self, xp: Any, device: Any) -> Any:
        torch = self.native()
        if device is None:
            dev = torch.device("cpu")
        elif isinstance(device, torch.device):
            dev = device
        else:
            kind, index = parse_device(device)
            dev = torch.device(kind) if index is None else torch.device(kind, index)
        try:
            if dev.type == "cuda" and dev.index is None:  # arrays report "cuda:0", not "cuda"
                dev = torch.device("cuda", torch.cuda.current_device())
            torch.empty(0, device=dev)  # fails now, with a clear message, if it is unusable
        except (RuntimeError, AssertionError, TypeError) as exc:
            raise ValueError(f"device={device!r} is not usable with torch: {exc}") from None
        return dev

    def device_spec(self, device: Any) -> Any:
        return str(device)

    def synchronize(self, device: Any) -> None:
        if device.type == "cuda":
            self.native().cuda.current_stream(device).synchronize()

    def is_gpu(self, device: Any) -> bool:
        return getattr(device, "type", None) == "cuda"

    def gpu_count(self) -> int:
        return int(self.native().cuda.device_count())


LIBRARY = PyTorch()
