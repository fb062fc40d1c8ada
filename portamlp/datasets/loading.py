"""Loading a split as arrays of a chosen backend, device and dtype, scaled as the caller asks.

Everything before the final move runs on the host with NumPy: the uint8 pixels are scaled into
one freshly allocated float array (no float64 detour), then moved to the device once.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ..backend import Backend, get_backend
from . import sources
from .registry import DATASETS
from .sources import read_split

__all__ = ["SCALES", "host_split", "load", "load_mnist", "n_classes", "scale_images"]

#: Pixel scalings: divide by 255 (default), by 256 (the original Rust program), or standardise
#: with the training split's mean and standard deviation (after dividing by 255).
SCALES = (255, 256, "standardize")
_DTYPES = ("float32", "float64")
#: Splits :func:`load` accepts; "validation" is the end of the training file.
LOAD_SPLITS = ("train", "validation", "test")


def _check_scale(scale) -> Any:
    if isinstance(scale, str):
        if scale.lower() in ("standardize", "standardise"):
            return "standardize"
        try:
            scale = float(scale)
        except ValueError:
            raise ValueError(f"scale={scale!r} is not valid; choose one of {SCALES}") from None
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or scale not in (255, 256):
        raise ValueError(f"scale={scale!r} is not valid; choose one of {SCALES}")
    return float(scale)


def _check_dtype(dtype) -> np.dtype:
    try:
        name = dtype if isinstance(dtype, str) else np.dtype(dtype).name
    except TypeError:
        name = None
    if name not in _DTYPES:
        raise ValueError(f"dtype={dtype!r} is not supported; use one of {_DTYPES}")
    return np.dtype(name)


@functools.lru_cache(maxsize=4)
def _train_moments(name: str, root, download: bool = False) -> tuple[float, float]:
    """Mean and standard deviation of the training file's pixels, after dividing by 255.

    Exact, from a histogram of the 256 pixel values built in chunks (no float copy of the set).
    """
    images, _ = read_split(name, "train", root, download=download)
    flat = images.reshape(-1)
    if flat.dtype != np.uint8:
        x = flat.astype(np.float64) / 255.0
        return float(x.mean()), float(x.std())
    counts = np.zeros(256, dtype=np.int64)
    step = 1 << 22
    for start in range(0, flat.size, step):
        counts += np.bincount(flat[start:start + step], minlength=256)
    values = np.arange(256, dtype=np.float64) / 255.0
    n = counts.sum()
    mean = float(counts @ values) / n
    var = float(counts @ (values - mean) ** 2) / n
    return mean, float(np.sqrt(var))


sources._CACHE_CLEARERS.append(_train_moments.cache_clear)


def scale_images(images: np.ndarray, scale=255, dtype="float32", *, name: str = "mnist",
                 root=None, download: bool = False) -> np.ndarray:
    """Host pixels as floats, scaled as ``scale`` says, in one allocation.

    Parameters
    ----------
    images : numpy.ndarray of any shape, e.g. (n, 28, 28) or (n, 784)
        Pixels (uint8, 0 to 255).
    scale : {255, 256, "standardize"}
        Divide by 255 (default) or 256 (the original Rust program), or standardise with the
        mean and standard deviation of the training file of data set ``name``.
    dtype : {"float32", "float64"}
    name, root, download
        The data set whose training moments ``"standardize"`` uses (see :func:`load`).

    Returns
    -------
    numpy.ndarray
        Same shape as ``images``, dtype ``dtype``.
    """
    scale = _check_scale(scale)
    np_dtype = _check_dtype(dtype)
    if scale == "standardize":
        mean, std = _train_moments(name, None if root is None else str(root), download)
        out = np.multiply(images, np_dtype.type(1.0 / (255.0 * std)), dtype=np_dtype)
        out -= np_dtype.type(mean / std)
        return out
    return np.divide(images, np_dtype.type(scale), dtype=np_dtype)


def _check_rows(value, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{what}={value!r} must be a non-negative integer")
    return int(value)


def host_split(name: str, split: str, start: int = 0, stop: int | None = None, root=None, *,
               validation_length: int | None = None, download: bool = False):
    """Host ``(images, labels)`` rows ``start:stop`` of a split (uint8, read-only views).

    ``split="validation"`` is the last ``validation_length`` rows of the training file (default
    ``min(10_000, n // 6)``, as training uses); ``split="train"`` excludes them only when
    ``validation_length`` is given.
    """
    if split not in LOAD_SPLITS:
        raise ValueError(f"split={split!r} is not valid; choose one of {list(LOAD_SPLITS)}")
    validation_length = _check_rows(validation_length, "validation_length")
    file_split = "test" if split == "test" else "train"
    images, labels = read_split(name, file_split, root, download=download)
    if split != "test" and (split == "validation" or validation_length is not None):
        n = images.shape[0]
        v = min(10_000, n // 6) if validation_length is None else validation_length
        if v > n:
            raise ValueError(f"validation_length={v} exceeds the {n} rows of the training file "
                             f"of {name!r}")
        rows = slice(n - v, n) if split == "validation" else slice(0, n - v)
        images, labels = images[rows], labels[rows]
    return images[start:stop], labels[start:stop]


def load(name_or_path: str = "mnist", split: str = "train", *, backend: str | Backend | None = None,
         device: Any = None, dtype: str = "float32", flatten: bool = True, scale=255,
         start: int = 0, length: int | None = None, root=None, download: bool = False,
         validation_length: int | None = None):
    """Load one split of an MNIST-format data set onto a backend.

    Parameters
    ----------
    name_or_path : str or path
        ``"mnist"`` (embedded), ``"fashion-mnist"``, ``"kmnist"``, or a directory holding
        ``train-images-idx3-ubyte[.gz]`` and friends.
    split : {"train", "test", "validation"}
        ``"validation"`` is taken from the end of the training file (see ``validation_length``).
    backend, device : optional
        Where to put the arrays (see :func:`portamlp.get_backend`).
    dtype : {"float32", "float64"}
        Dtype of the images.
    flatten : bool
        Images as (n, 784) when True (default), (n, 28, 28) otherwise.
    scale : {255, 256, "standardize"}
        Divide pixels by 255 (default) or 256 (as the original Rust program did), or standardise
        them with the training split's mean and standard deviation.
    start, length : int
        Take rows ``start : start + length`` of the split (default: all).
    root : path, optional
        Folder to look in first for named data sets.
    download : bool
        Fetch a named data set from its official source when it is not found locally (verified
        against pinned hashes, kept in the user cache). Off by default.
    validation_length : int, optional
        Rows at the end of the training file that form the validation split (default for
        ``split="validation"``: ``min(10_000, n // 6)``); when given, ``split="train"`` leaves
        them out.

    Returns
    -------
    x : array of shape (n, 784) or (n, 28, 28)
        ``dtype`` floats on the backend's device.
    y : int64 array of shape (n,)
        Class indices, on the same device.

    Raises
    ------
    FileNotFoundError
        When a named data set is not found (the message says where it looked and how to get it).
    DataFormatError
        When a file is malformed or inconsistent.
    """
    if not isinstance(name_or_path, str):
        name_or_path = str(name_or_path)
    scale = _check_scale(scale)
    _check_dtype(dtype)
    start = _check_rows(start, "start") or 0
    length = _check_rows(length, "length")
    be = get_backend(backend, device)
    stop = None if length is None else start + length
    images, labels = host_split(name_or_path, split, start, stop, root,
                                validation_length=validation_length, download=download)
    if length is not None and images.shape[0] < length:
        raise ValueError(f"requested {length} rows from {start} but the {split} split of "
                         f"{name_or_path!r} has {images.shape[0] + start}")
    x = scale_images(images, scale, dtype, name=name_or_path, root=root, download=download)
    if flatten:
        x = x.reshape(x.shape[0], -1)
    return be.asarray(x), be.asarray(labels.astype(np.int64))


def load_mnist(split: str = "train", **kwargs):
    """:func:`load` for the embedded MNIST: ``x, y = load_mnist("test", backend="numpy")``."""
    return load("mnist", split, **kwargs)


def n_classes(name: str) -> int:
    """Number of classes of a named data set (10 for a folder of MNIST-format files)."""
    return DATASETS.get(name, {}).get("classes", 10)
