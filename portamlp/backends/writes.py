"""Writing into arrays: in place where the library allows it, a new array where it does not.

The standard allows libraries whose arrays cannot be changed (JAX), so every update portamlp
makes — an optimizer's step, max-norm, restoring early stopping's best weights, a broadcast of
rank 0's parameters — goes through a :class:`Writer`, the idea of array-api-extra's ``at`` and
Keras's ``assign``. Each method returns the array that now holds the result, and the caller
keeps *that* array::

    write = backend.writes
    params[i] = write.subtract(params[i], delta)

On a library with in-place updates (NumPy, CuPy, PyTorch, array-api-strict) the returned array
is the one given, changed in place, so buffers keep their identity and, on a GPU, their
addresses (CuPy's CUDA graphs replay fixed addresses). Elsewhere it is a new array, and the
old one is unchanged.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Writer", "InPlace", "NewArrays", "IN_PLACE", "NEW_ARRAYS", "writer"]


class Writer:
    """The write-through helper (see the module docstring); two implementations."""

    in_place: bool

    def assign(self, target: Any, value: Any) -> Any:
        """``target[...] = value``."""
        raise NotImplementedError

    def add(self, target: Any, value: Any) -> Any:
        """``target + value``."""
        raise NotImplementedError

    def subtract(self, target: Any, value: Any) -> Any:
        """``target - value``."""
        raise NotImplementedError

    def multiply(self, target: Any, value: Any) -> Any:
        """``target * value``."""
        raise NotImplementedError


class InPlace(Writer):
    """Updates written into the given array, which is returned."""

    in_place = True

    def assign(self, target, value):
        target[...] = value
        return target

    def add(self, target, value):
        target += value
        return target

    def subtract(self, target, value):
        target -= value
        return target

    def multiply(self, target, value):
        target *= value
        return target


class NewArrays(Writer):
    """Updates returned as new arrays of the target's dtype; the given array is unchanged."""

    in_place = False

    def assign(self, target, value):
        from array_api_compat import array_namespace

        xp = array_namespace(target)
        return xp.astype(xp.asarray(value), target.dtype, copy=True)

    def add(self, target, value):
        return target + value

    def subtract(self, target, value):
        return target - value

    def multiply(self, target, value):
        return target * value


IN_PLACE = InPlace()
NEW_ARRAYS = NewArrays()


def writer(in_place: bool) -> Writer:
    """The writer for a library with (True) or without (False) in-place updates."""
    return IN_PLACE if in_place else NEW_ARRAYS
