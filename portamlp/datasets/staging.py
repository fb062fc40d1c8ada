"""Device staging: a split put on the device once, served as mini-batches by device ``take``;
labels become one-hot targets there."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..backends import Backend, get_backend
from ..checks import check_int

__all__ = ["DeviceDataset", "one_hot"]


def one_hot(xp, labels, n_classes: int, dtype, device):
    """One-hot rows ``(n, n_classes)`` of ``dtype`` from int64 labels ``(n,)`` on ``device``,
    by comparison with ``arange`` (no indexing, the same on every library)."""
    classes = xp.arange(n_classes, dtype=labels.dtype, device=device)
    return xp.astype(xp.expand_dims(labels, axis=1) == classes, dtype)


class DeviceDataset:
    """Inputs, integer labels and one-hot targets of one split, resident on a backend's device.

    Parameters
    ----------
    x : array of shape (n, n_features), or SparseRows
        Already on ``backend``'s device, in the training dtype; or sparse rows on the host
        (:class:`portamlp.nn.inputs.SparseRows`), made dense one batch at a time.
    labels : int64 array of shape (n,)
        On the same device.
    n_classes : int
        Width of the one-hot targets (built once, on the device, in ``x``'s dtype).
    backend : Backend
    sample_weight : array of shape (n,), optional
        Per-sample weights on the same device, in ``x``'s dtype; batches then carry them as a
        column ``(batch, 1)``.
    targets : array of shape (n, k), optional
        The targets themselves (real values, or 0/1 indicators of several labels), on the same
        device in ``x``'s dtype: then ``labels`` is None and ``n_classes`` is ``k``.
    """

    def __init__(self, x, labels, n_classes: int, backend: Backend, sample_weight=None,
                 targets=None):
        rows = (labels if targets is None else targets).shape[0]
        if x.shape[0] != rows:
            raise ValueError(f"x has {x.shape[0]} rows but the labels have {rows}; they must "
                             "agree")
        check_int("n_classes", n_classes, minimum=1)
        xp = backend.xp
        self.backend = backend
        self.x = x
        #: Class indices (None when the targets are values or indicators).
        self.labels = labels
        with backend.activate():
            self.targets = targets if targets is not None else \
                one_hot(xp, labels, n_classes, x.dtype, backend.device)
            self.weights = None if sample_weight is None else \
                xp.reshape(sample_weight, (x.shape[0], 1))

    @classmethod
    def from_split(cls, name: str = "mnist", split: str = "train", *,
                   backend: str | Backend | None = None, device: Any = None,
                   dtype: str = "float32", scale=255, **kwargs) -> DeviceDataset:
        """Load a split (see :func:`portamlp.datasets.load`, flattened) and stage it once.

        Examples
        --------
        >>> data = DeviceDataset.from_split("mnist", "test", backend="numpy")
        >>> x_batch, t_batch, _ = next(data.batches(100, np.random.default_rng(0)))
        """
        from .loading import load
        from .registry import n_classes

        be = get_backend(backend, device)
        x, y = load(name, split, backend=be, dtype=dtype, scale=scale, flatten=True, **kwargs)
        return cls(x, y, n_classes(name), be)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def n_classes(self) -> int:
        """Width of the one-hot targets."""
        return int(self.targets.shape[1])

    def batches(self, batch_size: int, rng: np.random.Generator | None = None,
                shard: tuple[int, int] = (0, 1)) -> Iterator[tuple]:
        """Yield ``(x_batch, targets_batch, weights_batch or None)``.

        Shuffled by a host permutation when ``rng`` is given: the permutation crosses to the
        device once per call, and each batch is a device-side ``take`` (or a slice when not
        shuffling): no host copy and no synchronisation per batch. The last batch is smaller
        when ``batch_size`` does not divide the number of samples.

        ``shard=(rank, size)`` yields only rank ``rank``'s contiguous share of every batch (for
        data-parallel training: the shares of all ranks make up the same global batches).
        """
        check_int("batch_size", batch_size, minimum=1)
        rank, size = shard
        be, xp, n = self.backend, self.backend.xp, len(self)
        w = self.weights
        host_order = None if rng is None else rng.permutation(n)
        take_x = getattr(self.x, "rows_at", None)  # sparse rows: densified a batch at a time
        with be.activate():
            order = None if host_order is None else be.asarray(host_order)
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            m = stop - start
            lo, hi = start + rank * m // size, start + (rank + 1) * m // size
            with be.activate():  # the batch is made inside; the caller's code runs outside
                if order is None:
                    batch = (self.x[lo:hi, ...], self.targets[lo:hi, ...],
                             None if w is None else w[lo:hi, ...])
                else:
                    idx = order[lo:hi]
                    xb = xp.take(self.x, idx, axis=0) if take_x is None else \
                        take_x(host_order[lo:hi])  # type: ignore[index]
                    batch = (xb, xp.take(self.targets, idx, axis=0),
                             None if w is None else xp.take(w, idx, axis=0))
            yield batch
