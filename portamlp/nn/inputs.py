"""Checking the caller's arrays once, at the boundary, and putting them on a backend.

Inputs may come from NumPy, CuPy, PyTorch, array-api-strict or nested lists. Arrays already on
the target backend's device stay there (no copy when the dtype matches); others cross through
the host once. A SciPy sparse matrix stays sparse on the host (:class:`SparseRows`): only the
rows asked for at a time (a mini-batch, a chunk of a prediction) are made dense and cross to the
device, so memory holds a mini-batch's dense rows, never the dense matrix. The checks run once
per call, never per mini-batch: shape, numeric dtype, finite values (a NaN row is named, with
how many there are), and labels that are class indices. The finiteness check reads the largest
magnitude back, so that a caller can also warn about inputs that look unscaled (raw pixels
0–255, raw physical units) at no extra cost.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..backends import Backend, to_numpy
from ..errors import warn

__all__ = ["as_features", "as_labels", "as_targets", "host_numeric", "host_labels",
           "label_range", "SparseRows", "is_sparse"]


def is_sparse(x: Any) -> bool:
    """Whether ``x`` is a SciPy sparse matrix or array (told without importing SciPy)."""
    return hasattr(x, "tocsr") and hasattr(x, "nnz") and hasattr(x, "shape")


class SparseRows:
    """Samples held as a SciPy CSR matrix on the host, served as dense rows on a backend.

    ``rows[lo:hi]`` and :meth:`rows_at` make only those rows dense, in the training dtype, on the
    backend's device (one host-to-device copy of that block on a GPU); everything that reads
    inputs a block at a time (mini-batches, chunked predictions, validation) accepts it in place
    of an array. It has ``shape``, ``ndim`` and ``dtype`` like one.

    Parameters
    ----------
    matrix : SciPy sparse matrix or array, shape (n_samples, n_features)
    backend : Backend
    dtype : the backend's dtype for the dense rows
    """

    ndim = 2

    def __init__(self, matrix: Any, backend: Backend, dtype: Any):
        self.backend, self.dtype = backend, dtype
        host_dtype = np.float64 if "64" in str(dtype) else np.float32
        self.matrix = matrix.tocsr().astype(host_dtype)
        self.shape = tuple(int(s) for s in self.matrix.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def _dense(self, block: Any) -> Any:
        return self.backend.asarray(np.asarray(block.toarray()), self.dtype)

    def __getitem__(self, key: Any) -> Any:
        """Dense rows ``lo:hi`` (``rows[lo:hi]`` or ``rows[lo:hi, ...]``)."""
        if isinstance(key, tuple) and len(key) == 2 and key[1] is Ellipsis:
            key = key[0]
        if not isinstance(key, slice):
            raise TypeError("sparse rows are read in blocks: rows[lo:hi] or rows.rows_at(indices)")
        return self._dense(self.matrix[key])

    def rows_at(self, indices: np.ndarray) -> Any:
        """Dense rows at the host integer ``indices``."""
        return self._dense(self.matrix[np.asarray(indices)])

    def head(self, n: int) -> SparseRows:
        """The first ``n`` rows, still sparse."""
        return SparseRows(self.matrix[:n], self.backend, self.dtype)


def _as_sparse_rows(x: Any, backend: Backend, target: Any, n_in: int | None, what: str,
                    layers, usual, measured) -> SparseRows:
    """A SciPy sparse ``x`` checked (shape, numeric, finite) and kept sparse."""
    if isinstance(x, SparseRows):
        rows = x if x.backend.library is backend.library and x.dtype == target else \
            SparseRows(x.matrix, backend, target)
        _check_shape(rows.shape, n_in, what, layers)
        return rows
    if x.ndim != 2:
        raise ValueError(f"{what} is a sparse array of shape {x.shape}; it must be 2-D")
    _check_shape(x.shape, n_in, what, layers)
    csr = x.tocsr()
    values = np.asarray(csr.data)
    if not (np.issubdtype(values.dtype, np.number) or values.dtype == np.bool_):
        raise TypeError(f"{what} must be a numeric array, got dtype {values.dtype}")
    largest = float(np.max(np.abs(values))) if values.size else 0.0
    if not np.isfinite(largest):  # name the rows, as for dense x
        bad = np.flatnonzero(~np.isfinite(values))
        bad_rows = np.unique(np.searchsorted(csr.indptr, bad, side="right") - 1)
        raise ValueError(_non_finite_message(what, len(bad_rows), int(bad_rows[0]), x.shape[0]))
    _warn_unusual(largest, usual, what, measured)
    return SparseRows(x, backend, target)


def host_numeric(a: Any, what: str) -> np.ndarray:
    """A host copy (or view) of a numeric array from any supported library or nested lists."""
    try:
        host = np.asarray(to_numpy(a) if hasattr(a, "shape") else a)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be a numeric array, got {type(a).__name__} ({exc})") \
            from None
    if not (np.issubdtype(host.dtype, np.number) or host.dtype == np.bool_):
        raise TypeError(f"{what} must be a numeric array, got dtype {host.dtype}")
    return host


def _non_finite_message(what: str, n_bad: int, first: int, n_rows: int) -> str:
    return (f"{what} holds NaN or infinite values in {n_bad} of its {n_rows} rows (the first is "
            f"row {first}); remove or impute those rows before training or predicting")


def _check_finite_host(host: np.ndarray, what: str) -> float:
    """The largest magnitude in ``host`` (0.0 when empty); ValueError for non-finite values."""
    if not host.size:
        return 0.0
    largest = float(np.max(np.abs(host)))
    if math.isfinite(largest):
        return largest
    rows = ~np.isfinite(host.reshape(host.shape[0], -1)).all(axis=1) if host.ndim else \
        np.array([True])
    raise ValueError(_non_finite_message(what, int(rows.sum()), int(np.argmax(rows)),
                                         max(1, host.shape[0] if host.ndim else 1)))


def _check_finite_device(arr: Any, xp: Any, what: str) -> float:
    """The largest magnitude in ``arr`` (0.0 when empty), by one reduction and one host read;
    row details only when something is wrong (NaN and infinity make the maximum non-finite)."""
    if not math.prod(arr.shape):
        return 0.0
    largest = float(xp.max(xp.abs(arr)))
    if math.isfinite(largest):
        return largest
    rows = xp.logical_not(xp.all(xp.isfinite(arr), axis=1))
    n_bad = int(xp.sum(xp.astype(rows, xp.int64)))
    first = int(xp.argmax(xp.astype(rows, xp.int8)))
    raise ValueError(_non_finite_message(what, n_bad, first, arr.shape[0]))


def as_features(x: Any, backend: Backend, dtype: Any, n_in: int | None = None, *,
                what: str = "x", layers: tuple[int, ...] | None = None,
                usual: tuple[float, str] | None = None,
                measured: Callable[[float], None] | None = None) -> Any:
    """``x`` as a 2-D array ``(n_samples, n_in)`` of ``dtype`` on ``backend``'s device.

    A 1-D ``x`` of length ``n_in`` is one sample. Raises ValueError for a wrong shape or
    non-finite values, TypeError for a non-numeric array. With ``usual=(limit, advice)``, a
    value larger in magnitude than ``limit`` gives a warning that ends with ``advice``;
    ``measured`` is called with the largest magnitude.
    """
    xp = backend.xp
    target = backend.dtype(dtype)
    if is_sparse(x) or isinstance(x, SparseRows):
        return _as_sparse_rows(x, backend, target, n_in, what, layers, usual, measured)
    with backend.activate():
        if hasattr(x, "shape") and backend.same_device(x):
            if not (xp.isdtype(x.dtype, "real floating") or xp.isdtype(x.dtype, "integral")
                    or x.dtype == xp.bool):
                raise TypeError(f"{what} must be a numeric array, got dtype {x.dtype}")
            arr = x if x.dtype == target else xp.astype(x, target)
            if arr.ndim == 1 and n_in is not None and arr.shape[0] == n_in:
                arr = xp.reshape(arr, (1, n_in))
            _check_shape(arr.shape, n_in, what, layers)
            _warn_unusual(_check_finite_device(arr, xp, what), usual, what, measured)
            return arr
        host = host_numeric(x, what)
        if host.ndim == 1 and n_in is not None and host.shape[0] == n_in:
            host = host.reshape(1, n_in)
        _check_shape(host.shape, n_in, what, layers)
        _warn_unusual(_check_finite_host(host, what), usual, what, measured)
        return backend.asarray(host, target)


def _warn_unusual(largest: float, usual: tuple[float, str] | None, what: str,
                  measured: Callable[[float], None] | None) -> None:
    if measured is not None:
        measured(largest)
    if usual is not None and largest > usual[0]:
        warn(f"{what} holds values up to {largest:.4g} in magnitude: it looks unscaled; "
             f"{usual[1]}")


def _check_shape(shape, n_in, what, layers) -> None:
    if len(shape) == 2 and (n_in is None or shape[1] == n_in):
        return
    want = f"(n_samples, {n_in})" if n_in is not None else "(n_samples, n_features)"
    where = f" for a network with layers {list(layers)}" if layers else ""
    hint = ""
    if len(shape) == 3 and n_in is not None and shape[1] * shape[2] == n_in:
        hint = f"; flatten the images first: x.reshape(len(x), {n_in})"
    raise ValueError(f"{what} must have shape {want}{where}, got shape {tuple(shape)}{hint}")


def host_labels(y: Any, what: str = "y") -> np.ndarray:
    """Integer class labels on the host, as int64; floats are accepted when whole numbers."""
    try:
        host = np.asarray(to_numpy(y) if hasattr(y, "shape") else y)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be an array of integer class labels") from None
    if np.issubdtype(host.dtype, np.integer):
        return host.astype(np.int64)
    if np.issubdtype(host.dtype, np.floating):
        if host.size and not (np.isfinite(host).all() and (host == np.round(host)).all()):
            bad = float(host[~(np.isfinite(host) & (host == np.round(host)))].ravel()[0])
            raise ValueError(f"{what} must hold class indices 0, 1, 2, ...; found {bad!r}. Map "
                             "your labels to 0..k-1 (e.g. numpy.unique(y, return_inverse=True)), "
                             "or use portamlp.sklearn.MLPClassifier, which encodes any labels")
        return host.astype(np.int64)
    raise TypeError(f"{what} must hold integer class indices, got dtype {host.dtype}; map your "
                    "labels to 0..k-1, or use portamlp.sklearn.MLPClassifier, which encodes any "
                    "labels")


def as_labels(y: Any, backend: Backend, n: int | None = None, n_classes: int | None = None, *,
              what: str = "y", several: bool = False, one_class: str | None = None) -> Any:
    """Class labels ``(n_samples,)`` as int64 on ``backend``'s device, each in
    ``[0, n_classes)``. Whole-number floats (``0., 1., 2.``) are accepted. ``several``: refuse
    labels that are all one class (nothing to learn); ``one_class``: warn about them, with
    this advice."""
    xp = backend.xp
    with backend.activate():
        if hasattr(y, "shape") and backend.same_device(y) and xp.isdtype(y.dtype, "integral"):
            arr = y if y.dtype == xp.int64 else xp.astype(y, xp.int64)
            lo, hi = (int(xp.min(arr)), int(xp.max(arr))) if arr.ndim == 1 and arr.shape[0] \
                else (0, 0)
        else:
            host = host_labels(y, what)
            lo, hi = (int(host.min()), int(host.max())) if host.ndim == 1 and host.size \
                else (0, 0)
            arr = backend.asarray(host)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be 1-D (n_samples,), got shape {tuple(arr.shape)}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"got {n} samples but {arr.shape[0]} labels; they must match")
    if n_classes is not None and (lo < 0 or hi >= n_classes):
        fix = ("map your labels to 0..k-1 (e.g. numpy.unique(y, return_inverse=True)), or use "
               "portamlp.sklearn.MLPClassifier, which encodes any labels")
        if lo == 1 and hi == n_classes:
            fix = f"your labels look 1-based: pass y - 1 ({fix})"
        raise ValueError(f"{what} must hold class indices in [0, {n_classes - 1}] for "
                         f"{n_classes} output units, found values in [{lo}, {hi}]; {fix}")
    if several and lo == hi and arr.shape[0]:
        raise ValueError(f"{what} holds only class {lo}: there is nothing to learn from one "
                         "class; give training rows of at least two classes")
    if one_class is not None and lo == hi and arr.shape[0] > 1:
        warn(f"{what} holds only class {lo}: {one_class}")
    return arr


def as_targets(y: Any, backend: Backend, n: int | None, k: int, dtype: Any, *,
               what: str = "y", kind: str = "values", minimum: float | None = None,
               cost: str = "") -> Any:
    """Targets ``(n_samples, k)`` of ``dtype`` on ``backend``'s device: real values
    (``kind="values"``; a 1-D ``y`` is one column) or 0/1 indicators of ``k`` labels
    (``kind="labels"``). Checked as inputs are (numeric, finite, the shape), and against the
    smallest target the ``cost`` takes (``minimum``)."""
    if hasattr(y, "shape") and len(y.shape) == 1:
        y = backend.xp.reshape(y, (-1, 1)) if backend.same_device(y) else \
            host_numeric(y, what).reshape(-1, 1)
    elif not hasattr(y, "shape") and np.ndim(y) == 1:
        y = host_numeric(y, what).reshape(-1, 1)
    arr = as_features(y, backend, dtype, k, what=what)
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"got {n} samples but {arr.shape[0]} rows of {what}; they must match")
    if minimum is not None and arr.shape[0]:
        with backend.activate():
            smallest = float(backend.xp.min(arr))
        if smallest < minimum:
            raise ValueError(f"{what} holds {smallest:g}, but cost={cost!r} needs targets >= "
                             f"{minimum:g} (counts or rates); use cost='squared_error' for "
                             "values of any sign")
    if kind == "labels":
        xp = backend.xp
        with backend.activate():
            binary = bool(xp.all(xp.logical_or(arr == 0.0, arr == 1.0)))
        if not binary:
            raise ValueError(f"{what} must hold 0 and 1 only: one column per label, 1 where a "
                             "sample has it (sklearn.preprocessing.MultiLabelBinarizer makes "
                             "such a matrix from lists of labels)")
    return arr


def label_range(y: Any) -> tuple[int, int]:
    """``(largest label, number of distinct labels)`` of class labels (checked as by
    :func:`host_labels`); ``(1, 0)`` for no labels."""
    labels = host_labels(y)
    if not labels.size:
        return 1, 0
    return int(labels.max()), len(np.unique(labels))
