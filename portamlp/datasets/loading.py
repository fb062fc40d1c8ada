"""Loading a split as arrays of a chosen backend, device and dtype, scaled as the caller asks.

Everything before the final move runs on the host with NumPy: the uint8 pixels are scaled into
one freshly allocated float array (no float64 detour), then moved to the device once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backends import Backend, get_backend, memory_phase
from ..checks import check_choice, check_dtype, check_int
from .registry import default_validation_length
from .scaling import Preprocessing
from .sources import read_split

__all__ = ["LOAD_SPLITS", "host_split", "load", "load_mnist"]

#: Splits :func:`load` accepts; "validation" is the end of the training file.
LOAD_SPLITS = ("train", "validation", "test")


def host_split(name: str, split: str, start: int = 0, stop: int | None = None, root=None, *,
               validation_length: int | None = None, download: bool = False):
    """Host ``(images, labels)`` rows ``start:stop`` of a split (uint8, read-only views).

    ``split="validation"`` is the last ``validation_length`` rows of the training file (default
    :func:`~portamlp.datasets.registry.default_validation_length`, as training uses);
    ``split="train"`` excludes them only when ``validation_length`` is given.
    """
    check_choice("split", split, LOAD_SPLITS)
    validation_length = check_int("validation_length", validation_length, minimum=0,
                                  optional=True)
    file_split = "test" if split == "test" else "train"
    images, labels = read_split(name, file_split, root, download=download)
    if split != "test" and (split == "validation" or validation_length is not None):
        n = images.shape[0]
        v = default_validation_length(n) if validation_length is None else validation_length
        if v > n:
            raise ValueError(f"validation_length={v} exceeds the {n} rows of the training file "
                             f"of {name!r}")
        rows = slice(n - v, n) if split == "validation" else slice(0, n - v)
        images, labels = images[rows], labels[rows]
    return images[start:stop], labels[start:stop]


def load(name_or_path: str = "mnist", split: str = "train", *, backend: str | Backend | None = None,
         device: Any = None, dtype: Any = "float32", flatten: bool = True, scale: Any = 255,
         start: int = 0, length: int | None = None, root=None, download: bool = False,
         validation_length: int | None = None, preprocessing: Preprocessing | None = None):
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
        Dtype of the images (a dtype object such as ``numpy.float64`` works too).
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
    preprocessing : Preprocessing, optional
        A network's own preprocessing (``network.preprocessing``); overrides ``scale``.

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
    dtype = check_dtype(dtype)
    if preprocessing is None:
        preprocessing = Preprocessing.from_scale(scale, name_or_path, root, download)
    start = check_int("start", start, minimum=0) or 0
    length = check_int("length", length, minimum=0, optional=True)
    be = get_backend(backend, device)
    stop = None if length is None else start + length
    images, labels = host_split(name_or_path, split, start, stop, root,
                                validation_length=validation_length, download=download)
    if length is not None and images.shape[0] < length:
        raise ValueError(f"requested {length} rows from {start} but the {split} split of "
                         f"{name_or_path!r} has {images.shape[0] + start}")
    x = preprocessing.apply(images, dtype)
    if flatten:
        x = x.reshape(x.shape[0], -1)
    with memory_phase(f"staging the {split} split of {name_or_path!r}", be, needs=x.nbytes):
        return be.asarray(x), be.asarray(labels.astype(np.int64))


def load_mnist(split: str = "train", **kwargs):
    """:func:`load` for the embedded MNIST: ``x, y = load_mnist("test", backend="numpy")``.

    Examples
    --------
    >>> from portamlp.datasets import load_mnist
    >>> x, y = load_mnist("test")
    >>> x.shape, x.dtype, float(x.max())
    ((10000, 784), dtype('float32'), 1.0)
    >>> y[:5]
    array([7, 2, 1, 0, 4])
    """
    return load("mnist", split, **kwargs)
