"""Device staging: a split put on the device once, served as mini-batches by device-side ``take``."""

from __future__ import annotations

from typing import Iterator

import numpy as np

from ..backend import Backend

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
    backend : Backend
    """

    def __init__(self, x, labels, n_classes: int, backend: Backend):
        xp = backend.xp
        self.backend = backend
        self.x = x
        self.labels = labels
        classes = xp.arange(n_classes, dtype=labels.dtype, device=backend.device)
        self.targets = xp.astype(xp.expand_dims(labels, axis=1) == classes, x.dtype)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def batches(self, batch_size: int, rng: np.random.Generator | None = None) -> Iterator[tuple]:
        """Yield ``(x_batch, targets_batch)``; shuffled by a host permutation when ``rng`` is given.

        The permutation crosses to the device once per call; each batch is a device-side ``take``
        (or a slice when not shuffling): no host copy and no synchronisation per batch. The last
        batch is smaller when ``batch_size`` does not divide the number of samples.
        """
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
