"""Inverted dropout with masks from a counter-based generator written in Array API integer maths.

The mask of a mini-batch is a function of ``(seed, step, layer, element index)``: a 32-bit hash
of ``element index + key``, where the key mixes seed, step and layer on the host (Python
integers, once per step). The hash is two rounds of xor-shift-multiply, computed in int64 on
values below 2**32 with a multiplier below 2**31, so no operation ever overflows: every library
gives the same bits, and one seed gives the same masks on NumPy, CuPy, PyTorch and
array-api-strict. Nothing crosses from the host per mini-batch, and the same arithmetic runs
inside a captured CUDA graph, where cuRAND cannot.

A unit is kept when its hash is below ``keep * 2**32``; kept activations are divided by ``keep``
("inverted" dropout), so prediction and evaluation use the full network unchanged.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Dropout", "RowCounters", "step_key", "counter_hash", "MASK32"]

MASK32 = 0xFFFFFFFF
#: The multiplier of each hash round (below 2**31, so products of 32-bit values fit in int64).
_MULTIPLIER = 0x45D9F3B


def _mix(value: int) -> int:
    """A 32-bit integer hash of a Python integer (the same rounds as :func:`counter_hash`)."""
    value &= MASK32
    for _ in range(2):
        value = ((value ^ (value >> 16)) * _MULTIPLIER) & MASK32
    return value ^ (value >> 16)


def step_key(seed: int, step: int, layer: int) -> int:
    """The 32-bit key of one layer's mask at one training step."""
    return _mix(_mix(_mix(seed & MASK32) ^ (seed >> 32) ^ step) + 0x9E3779B9 * (layer + 1))


def counter_hash(xp: Any, index, key: int):
    """``hash(index + key)`` elementwise: int64 values in ``[0, 2**32)``."""
    h = (index + key) & MASK32
    h = ((h ^ (h >> 16)) * _MULTIPLIER) & MASK32
    h = ((h ^ (h >> 16)) * _MULTIPLIER) & MASK32
    return h ^ (h >> 16)


class RowCounters:
    """``(rows, width)`` int64 counters ``row * width + column`` on a device, made once for the
    largest batch seen and sliced for smaller ones (the last mini-batch of an epoch)."""

    def __init__(self, xp: Any, device: Any, width: int):
        self.xp, self.device, self.width = xp, device, width
        self._have: Any = None

    def __call__(self, rows: int):
        have = self._have
        if have is None or have.shape[0] < rows:
            xp = self.xp
            have = xp.reshape(xp.arange(rows * self.width, dtype=xp.int64, device=self.device),
                              (rows, self.width))
            self._have = have
        return have if have.shape[0] == rows else have[:rows, ...]


class Dropout:
    """Masks for the inputs of each layer of a network during training.

    Parameters
    ----------
    xp, device
        The namespace and device of the network.
    layers : tuple of int
        The network's layer sizes; layer ``l``'s input has ``layers[l]`` units.
    rate, input_rate : float
        Probability of dropping a hidden unit / an input unit (0 disables it).
    seed : int
        With the step number, determines every mask.
    dtype
        The network's floating dtype (masks hold 0 or ``1 / keep``).
    """

    def __init__(self, xp: Any, device: Any, layers: tuple[int, ...], rate: float,
                 input_rate: float, seed: int, dtype: Any):
        self.xp, self.device, self.dtype, self.seed = xp, device, dtype, seed
        self.rates = [input_rate] + [rate] * (len(layers) - 2)  # the input of each layer
        self.widths = list(layers[:-1])
        self._counters = [RowCounters(xp, device, width) for width in self.widths]

    def mask(self, step: int, layer: int, rows: int, row_offset: int = 0):
        """Layer ``layer``'s input mask at ``step`` for ``rows`` rows starting at row
        ``row_offset`` of the global mini-batch (0 or ``1 / keep``), or None without dropout."""
        rate = self.rates[layer]
        if rate <= 0:
            return None
        xp = self.xp
        keep = 1.0 - rate
        key = (step_key(self.seed, step, layer) + row_offset * self.widths[layer]) & MASK32
        h = counter_hash(xp, self._counters[layer](rows), key)
        threshold = int(keep * (MASK32 + 1))
        return xp.astype(h < threshold, self.dtype) * (1.0 / keep)

    def for_step(self, step: int, rows: int, row_offset: int = 0):
        """The ``dropout(l, a)`` callable of :meth:`portamlp.Network.backprop` for one step: it
        multiplies by each layer's mask, computed once and reused on the way back."""
        masks: dict[int, Any] = {}

        def apply(layer: int, a):
            if layer not in masks:
                masks[layer] = self.mask(step, layer, rows, row_offset)
            m = masks[layer]
            return a if m is None else a * m

        return apply
