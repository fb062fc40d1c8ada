"""Device staging: a split put on the device once, served as mini-batches by device ``take``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..backend import Backend, get_backend

__all__ = ["DeviceDataset"]


class DeviceDataset:
    """Inputs, integer labels and one-hot targets of one split, resident on a backend's device.

    Parameters
    ----------
    x : array of shape (n, n_features)
        Already on ``backend``'s device, in the training dtype.
    labels : int64 array of shape (n,)
        On the same device.
    n_classes : int
        Width of the one-hot targets (built once, on the device, in ``x``'s dtype).
    backend : Backend
    """

    def __init__(self, x, labels, n_classes: int, backend: Backend):
        if x.shape[0] != labels.shape[0]:
            raise ValueError(f"x has {x.shape[0]} rows but labels has {labels.shape[0]}; "
                             "they must agree")
        if (isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer))
                or n_classes < 1):
            raise ValueError(f"n_classes={n_classes!r} must be a positive integer")
        xp = backend.xp
        self.backend = backend
        self.x = x
        self.labels = labels
        classes = xp.arange(n_classes, dtype=labels.dtype, device=backend.device)
        self.targets = xp.astype(xp.expand_dims(labels, axis=1) == classes, x.dtype)

    @classmethod
    def from_split(cls, name: str = "mnist", split: str = "train", *,
                   backend: str | Backend | None = None, device: Any = None,
                   dtype: str = "float32", scale=255, **kwargs) -> DeviceDataset:
        """Load a split (see :func:`portamlp.datasets.load`, flattened) and stage it once.

        Examples
        --------
        >>> data = DeviceDataset.from_split("mnist", "test", backend="numpy")
        >>> x_batch, t_batch = next(data.batches(100, np.random.default_rng(0)))
        """
        from .loading import load, n_classes

        be = get_backend(backend, device)
        x, y = load(name, split, backend=be, dtype=dtype, scale=scale, flatten=True, **kwargs)
        return cls(x, y, n_classes(name), be)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def batches(self, batch_size: int, rng: np.random.Generator | None = None) -> Iterator[tuple]:
        """Yield ``(x_batch, targets_batch)``; shuffled by a host permutation when ``rng`` is given.

        The permutation crosses to the device once per call; each batch is a device-side ``take``
        (or a slice when not shuffling): no host copy and no synchronisation per batch. The last
        batch is smaller when ``batch_size`` does not divide the number of samples.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r} must be a positive integer")
        xp, n = self.backend.xp, len(self)
        if rng is None:
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                yield self.x[start:stop, ...], self.targets[start:stop, ...]
            return
        order = self.backend.asarray(rng.permutation(n))
        x, t = self.x, self.targets
        for start in range(0, n, batch_size):
            idx = order[start:min(start + batch_size, n)]
            yield xp.take(x, idx, axis=0), xp.take(t, idx, axis=0)

