"""Pixel preprocessing: how raw pixels (0 to 255) become a network's inputs.

A :class:`Preprocessing` is ``x = (pixels / divisor − mean) / std``. It is built from the
``scale`` option (255, 256 or ``"standardize"``) and stored with a trained network, so that
``evaluate`` and ``predict`` later prepare pixels exactly as training did.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..checks import check_dtype
from . import sources
from .sources import read_split

__all__ = ["SCALES", "Preprocessing", "check_scale", "scale_images", "train_moments"]

#: Pixel scalings: divide by 255 (default), by 256 (the original Rust program), or standardise
#: with the training split's mean and standard deviation (after dividing by 255).
SCALES = (255, 256, "standardize")


def check_scale(scale: Any) -> float | str:
    """``255``, ``256`` (as floats) or ``"standardize"``; a ValueError names the valid ones."""
    if isinstance(scale, str):
        if scale.lower() in ("standardize", "standardise"):
            return "standardize"
        try:
            scale = float(scale)
        except ValueError:
            raise ValueError(f"scale={scale!r} is not valid; choose one of {list(SCALES)}") \
                from None
    if isinstance(scale, bool) or not isinstance(scale, (int, float, np.number)) \
            or scale not in (255, 256):
        raise ValueError(f"scale={scale!r} is not valid; choose one of {list(SCALES)}")
    return float(scale)


@functools.lru_cache(maxsize=4)
def train_moments(name: str, root: str | None = None,
                  download: bool = False) -> tuple[float, float]:
    """Mean and standard deviation of a data set's training-file pixels, after dividing by 255.

    Exact, from a histogram of the 256 pixel values built in chunks (no float copy of the set);
    kept in memory (:func:`portamlp.datasets.clear_cache` forgets it).
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


sources.register_cache(train_moments.cache_clear)


@dataclass(frozen=True)
class Preprocessing:
    """``x = (pixels / divisor − mean) / std``, and the ``scale`` option it came from.

    Attributes
    ----------
    scale : {255.0, 256.0, "standardize"}
    divisor, mean, std : float
    """

    scale: float | str = 255.0
    divisor: float = 255.0
    mean: float = 0.0
    std: float = 1.0

    @classmethod
    def from_scale(cls, scale: Any = 255, dataset: str = "mnist", root=None,
                   download: bool = False) -> Preprocessing:
        """The preprocessing that ``scale`` means for ``dataset`` (its training moments for
        ``"standardize"``)."""
        scale = check_scale(scale)
        if scale == "standardize":
            mean, std = train_moments(dataset, None if root is None else str(root), download)
            return cls("standardize", 255.0, mean, std)
        return cls(scale, float(scale))

    def apply(self, images: np.ndarray, dtype: Any = "float32") -> np.ndarray:
        """Host pixels of any shape as ``dtype`` floats, in one allocation."""
        np_dtype = np.dtype(check_dtype(dtype))
        if self.mean == 0.0 and self.std == 1.0:
            return np.divide(images, np_dtype.type(self.divisor), dtype=np_dtype)
        out = np.multiply(images, np_dtype.type(1.0 / (self.divisor * self.std)), dtype=np_dtype)
        out -= np_dtype.type(self.mean / self.std)
        return out

    def largest(self) -> float:
        """The largest magnitude a prepared pixel (0 to 255) can have."""
        return max(abs((0.0 / self.divisor - self.mean) / self.std),
                   abs((255.0 / self.divisor - self.mean) / self.std))

    def describe(self) -> str:
        """How pixels are prepared, in words (``"pixels ÷255"``)."""
        if self.scale == "standardize":
            return (f"standardised pixels ((pixels / {self.divisor:g} - {self.mean:.4g}) / "
                    f"{self.std:.4g})")
        return f"pixels ÷{self.divisor:g}"

    def to_dict(self) -> dict[str, Any]:
        """Plain data for model files: ``{"scale", "divisor", "mean", "std"}``."""
        return {"scale": self.scale, "divisor": self.divisor, "mean": self.mean, "std": self.std}

    @classmethod
    def from_dict(cls, data: Any) -> Preprocessing:
        """The inverse of :meth:`to_dict`; raises ValueError for anything malformed."""
        if not isinstance(data, dict) or "scale" not in data:
            raise ValueError(f"preprocessing must be an object with a 'scale', got {data!r}")
        scale = check_scale(data["scale"])
        values = {}
        for key, default in (("divisor", 255.0 if scale == "standardize" else scale),
                             ("mean", 0.0), ("std", 1.0)):
            v = data.get(key, default)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
                raise ValueError(f"preprocessing field {key!r} must be a finite number, got {v!r}")
            values[key] = float(v)
        if values["divisor"] <= 0 or values["std"] <= 0:
            raise ValueError("preprocessing 'divisor' and 'std' must be > 0")
        return cls(scale, values["divisor"], values["mean"], values["std"])


def scale_images(images: np.ndarray, scale: Any = 255, dtype: Any = "float32", *,
                 name: str = "mnist", root=None, download: bool = False) -> np.ndarray:
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
    return Preprocessing.from_scale(scale, name, root, download).apply(images, dtype)
