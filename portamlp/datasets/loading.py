"""Loading a split as arrays of a chosen backend, device and dtype, scaled as the caller asks."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ..backend import Backend, get_backend
from .sources import DATASETS, read_split

__all__ = ["load", "load_mnist", "scale_images", "host_split", "SCALES"]

#: Pixel scalings: divide by 255 (default), by 256 (the original Rust program), or standardise
#: with the training split's mean and standard deviation (after dividing by 255).
SCALES = (255, 256, "standardize")


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


@functools.lru_cache(maxsize=4)
def _train_moments(name: str, root) -> tuple[float, float]:
    images, _ = read_split(name, "train", root)
    x = images.reshape(images.shape[0], -1)
    mean = float(x.mean(dtype=np.float64)) / 255.0
    # E[x²] − mean², accumulated in float64 without a float copy of the whole set.
    sq = float(np.einsum("ij,ij->", x, x, dtype=np.float64)) / x.size / 255.0**2
    return mean, float(np.sqrt(sq - mean * mean))


def scale_images(images: np.ndarray, scale=255, dtype="float32", *, name: str = "mnist",
                 root=None) -> np.ndarray:
    """Host images (uint8, any shape) as ``dtype`` floats scaled as ``scale`` says."""
    scale = _check_scale(scale)
    np_dtype = np.dtype(dtype)
    if scale == "standardize":
        mean, std = _train_moments(name, None if root is None else str(root))
        out = np.multiply(images, np_dtype.type(1.0 / (255.0 * std)), dtype=np_dtype)
        out -= np_dtype.type(mean / std)
        return out
    return np.divide(images, np_dtype.type(scale), dtype=np_dtype)


def host_split(name: str, split: str, start: int = 0, stop: int | None = None, root=None):
    """Host ``(images, labels)`` rows ``start:stop`` of a split (uint8, read-only views)."""
    images, labels = read_split(name, split, root)
    return images[start:stop], labels[start:stop]


def load(name_or_path: str = "mnist", split: str = "train", *, backend: str | Backend | None = None,
         device: Any = None, dtype: str = "float32", flatten: bool = True, scale=255,
         start: int = 0, length: int | None = None, root=None):
    """Load one split of an MNIST-format data set onto a backend.

    Parameters
    ----------
    name_or_path : str
        ``"mnist"`` (embedded), ``"fashion-mnist"``, ``"kmnist"``, or a directory holding
        ``train-images-idx3-ubyte[.gz]`` and friends.
    split : {"train", "test"}
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

    Returns
    -------
    x : array of shape (n, 784) or (n, 28, 28)
    y : int64 array of shape (n,)
    """
    if not isinstance(name_or_path, str):
        name_or_path = str(name_or_path)
    be = get_backend(backend, device)
    stop = None if length is None else start + length
    images, labels = host_split(name_or_path, split, start, stop, root)
    if length is not None and images.shape[0] < length:
        raise ValueError(f"requested {length} rows from {start} but the {split} split of "
                         f"{name_or_path!r} has {images.shape[0] + start}")
    x = scale_images(images, scale, dtype, name=name_or_path, root=root)
    if flatten:
        x = x.reshape(x.shape[0], -1)
    return be.asarray(x), be.asarray(labels.astype(np.int64))


def load_mnist(split: str = "train", **kwargs):
    """:func:`load` for the embedded MNIST: ``x, y = load_mnist("test", backend="numpy")``."""
    return load("mnist", split, **kwargs)


def n_classes(name: str) -> int:
    return DATASETS.get(name, {}).get("classes", 10)
