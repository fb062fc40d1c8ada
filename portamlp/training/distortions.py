"""Distorted copies of the training images, drawn afresh for every mini-batch, on the device.

Each training image is resampled through a random affine map (shift, rotation, scaling of each
axis, horizontal shear, a mirror image) and an elastic distortion (Simard, Steinkraus and Platt
2003: a field of uniform random displacements in [-1, 1), smoothed by a Gaussian of width σ and
scaled by α), composed into one map and read by bilinear interpolation. Pixels that come from
outside the image read as the background (a 0 pixel after the data set's scaling).

The random numbers come from the counter-based hash dropout uses
(:func:`portamlp.training.dropout.counter_hash`): every value is a function of ``(seed, step,
row of the global mini-batch, which value)``. So one seed gives the same distorted images on
NumPy, CuPy, PyTorch and array-api-strict, a resumed run distorts as the uninterrupted one
would, and nothing crosses from the host per mini-batch. Smoothing is two products with a
``side × side`` Gaussian matrix; resampling is four ``take`` gathers from a padded copy.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from .dropout import MASK32, counter_hash, step_key

__all__ = ["DistortionSpec", "Distortions", "image_side", "gaussian_matrix"]

#: The stream of the step key (dropout's streams are the layers 0, 1, ...).
_STREAM = 1 << 20
#: Uniform numbers drawn per row before the elastic field: rotation, zoom x, zoom y, shear,
#: shift x, shift y, flip.
_PER_ROW = 7
#: The Gaussian is cut at this many σ (as scipy.ndimage.gaussian_filter's ``truncate``).
_TRUNCATE = 4.0


@dataclass(frozen=True)
class DistortionSpec:
    """How much to distort: the largest value of each random parameter (0 or False: off).

    Attributes
    ----------
    shift : float
        Pixels, in each direction, drawn uniformly from ``[-shift, shift]``.
    rotation : float
        Degrees, from ``[-rotation, rotation]``.
    zoom : float
        Scale of each axis, independently, from ``[1 - zoom, 1 + zoom]``.
    shear : float
        Degrees of horizontal shear, from ``[-shear, shear]``.
    elastic_alpha, elastic_sigma : float
        The elastic distortion's scale α (pixels; 0 turns it off) and smoothing width σ.
    flip : bool
        Mirror half of the images left to right (right for clothes, wrong for digits).
    """

    shift: float = 0.0
    rotation: float = 0.0
    zoom: float = 0.0
    shear: float = 0.0
    elastic_alpha: float = 0.0
    elastic_sigma: float = 4.0
    flip: bool = False

    @classmethod
    def from_options(cls, options: Any) -> DistortionSpec:
        """The spec held by an object with these attributes (a :class:`TrainConfig`)."""
        return cls(**{f.name: getattr(options, f.name) for f in dataclasses.fields(cls)})

    @property
    def active(self) -> bool:
        """Whether any distortion is on."""
        return bool(self.shift or self.rotation or self.zoom or self.shear
                    or self.elastic_alpha or self.flip)

    def describe(self) -> str:
        """The distortions that are on, in the options' words (``"rotation=10, flip=True"``)."""
        defaults = DistortionSpec()
        on = [f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self)
              if f.name != "elastic_sigma" and getattr(self, f.name) != getattr(defaults, f.name)]
        if self.elastic_alpha:
            on.append(f"elastic_sigma={self.elastic_sigma!r}")
        return ", ".join(on)


def image_side(n_features: int, spec: DistortionSpec | None = None) -> int:
    """The side of square images of ``n_features`` pixels; a ValueError says why other rows
    cannot be distorted."""
    side = math.isqrt(n_features)
    if side * side != n_features or side < 2:
        on = f" ({spec.describe()})" if spec is not None and spec.active else ""
        raise ValueError(f"distortions{on} need square images read row by row, but the inputs "
                         f"have {n_features} features, which is not the pixel count of a square "
                         "image; leave the distortion options at 0 for data that is not images")
    return side


def gaussian_matrix(side: int, sigma: float):
    """``(side, side)`` host matrix ``G`` with ``G @ f`` the Gaussian smoothing of each column of
    ``f`` (zero outside the image, the kernel cut at 4σ and summing to 1), as a nested list."""
    radius = int(_TRUNCATE * sigma + 0.5)
    kernel = [math.exp(-0.5 * (k / sigma) ** 2) for k in range(-radius, radius + 1)]
    total = sum(kernel)
    return [[kernel[j - i + radius] / total if abs(i - j) <= radius else 0.0
             for j in range(side)] for i in range(side)]


class Distortions:
    """Distorts mini-batches of ``side × side`` images, flattened row by row.

    Parameters
    ----------
    xp, device
        The namespace and device of the images.
    side : int
        The images' side in pixels.
    spec : DistortionSpec
    seed : int
        With the step number and the row, determines every distortion.
    dtype
        The images' floating dtype.
    fill : float
        What a pixel outside the image reads as (the background).
    """

    def __init__(self, xp: Any, device: Any, side: int, spec: DistortionSpec, seed: int,
                 dtype: Any, fill: float = 0.0):
        self.xp, self.device, self.side, self.spec = xp, device, side, spec
        self.seed, self.dtype, self.fill = seed, dtype, float(fill)
        self.elastic = spec.elastic_alpha > 0
        #: uniform numbers per row: the affine ones, then one 32-bit hash per pixel whose two
        #: 16-bit halves give the x and y displacements of the elastic field
        self.per_row = _PER_ROW + (side * side if self.elastic else 0)
        self._counters: Any = None
        c = (side - 1) / 2.0
        pixels = xp.arange(side * side, dtype=xp.int64, device=device)
        # output pixel offsets from the centre, (1, side²)
        self._px = xp.reshape(xp.astype(pixels % side, dtype) - c, (1, -1))
        self._py = xp.reshape(xp.astype(pixels // side, dtype) - c, (1, -1))
        self._gaussian = xp.asarray(gaussian_matrix(side, spec.elastic_sigma), dtype=dtype,
                                    device=device) if self.elastic else None

    def _uniforms(self, step: int, rows: int, row_offset: int):
        """``(rows, per_row)`` hashes of this step's rows (int64 in ``[0, 2**32)``)."""
        xp = self.xp
        have = self._counters
        if have is None or have.shape[0] < rows:
            have = xp.reshape(xp.arange(rows * self.per_row, dtype=xp.int64, device=self.device),
                              (rows, self.per_row))
            self._counters = have
        counters = have if have.shape[0] == rows else have[:rows, ...]
        key = (step_key(self.seed, step, _STREAM) + row_offset * self.per_row) & MASK32
        return counter_hash(xp, counters, key)

    def _signed(self, hashes, bits: int = 32):
        """Uniform values in ``[-1, 1)`` from ``bits``-bit integers."""
        return self.xp.astype(hashes, self.dtype) * (2.0 / (1 << bits)) - 1.0

    def source_coordinates(self, step: int, rows: int, row_offset: int = 0):
        """``(qx, qy)``, each ``(rows, side²)``: where each output pixel reads the source image
        (pixel units, from the top-left pixel's centre)."""
        xp, spec = self.xp, self.spec
        h = self._uniforms(step, rows, row_offset)
        u = self._signed(h[:, :_PER_ROW])  # (rows, 7) in [-1, 1)

        def column(k: int, scale: float):
            return u[:, k:k + 1] * scale

        a, b = self._px, self._py  # (1, side²) until a per-row parameter enters
        if spec.shift:
            a, b = a - column(4, spec.shift), b - column(5, spec.shift)
        # the inverse of rotate · zoom · shear: rotate back, unzoom, unshear
        if spec.rotation:
            angle = column(0, math.radians(spec.rotation))
            cos, sin = xp.cos(angle), xp.sin(angle)
            a, b = cos * a + sin * b, cos * b - sin * a
        if spec.zoom:
            a, b = a / (1.0 + column(1, spec.zoom)), b / (1.0 + column(2, spec.zoom))
        if spec.shear:
            a = a - xp.tan(column(3, math.radians(spec.shear))) * b
        if spec.flip:  # mirror where the value is negative
            a = a * (1.0 - 2.0 * xp.astype(u[:, 6:7] < 0.0, self.dtype))
        c = (self.side - 1) / 2.0
        shape = (rows, self.side * self.side)  # (one coordinate may not depend on the row)
        qx, qy = xp.broadcast_to(a + c, shape), xp.broadcast_to(b + c, shape)
        if self.elastic:
            field = h[:, _PER_ROW:]
            dx = self._smooth(self._signed(field & 0xFFFF, 16), rows)
            dy = self._smooth(self._signed(field >> 16, 16), rows)
            qx = qx + dx * spec.elastic_alpha
            qy = qy + dy * spec.elastic_alpha
        return qx, qy

    def _smooth(self, field, rows: int):
        """The Gaussian smoothing ``G fᵀ G`` of each row's ``side × side`` field, flattened:
        two matrix products with the whole batch's rows stacked. (The transpose of an i.i.d.
        field is as random as the field; it saves a copy.)"""
        xp, s, g = self.xp, self.side, self._gaussian
        once = xp.matmul(xp.reshape(field, (rows * s, s)), g)  # f G (G is symmetric)
        once = xp.permute_dims(xp.reshape(once, (rows, s, s)), (0, 2, 1))
        twice = xp.matmul(xp.reshape(once, (rows * s, s)), g)  # (f G)ᵀ G = G fᵀ G
        return xp.reshape(twice, (rows, s * s))

    def apply(self, x, step: int, row_offset: int = 0):
        """The distorted ``x`` (``(rows, side²)``) for training step ``step``; ``row_offset``
        is the first row's place in the global mini-batch (several processes)."""
        xp, s = self.xp, self.side
        rows = x.shape[0]
        qx, qy = self.source_coordinates(step, rows, row_offset)
        p = s + 3  # padded side: one background pixel before, two after
        # clamped into [-1, s], then +1 into padded coordinates: every corner is in the padding
        gx = xp.minimum(xp.maximum(qx, -1.0), float(s)) + 1.0
        gy = xp.minimum(xp.maximum(qy, -1.0), float(s)) + 1.0
        x0, y0 = xp.floor(gx), xp.floor(gy)
        fx, fy = gx - x0, gy - y0
        base = xp.reshape(xp.arange(rows, dtype=xp.int64, device=self.device) * (p * p),
                          (rows, 1))
        corner = xp.reshape(xp.astype(y0 * p + x0, xp.int64) + base, (-1,))
        flat = xp.reshape(self._padded(x, rows), (-1,))
        v00, v01 = xp.take(flat, corner), xp.take(flat, corner + 1)
        v10, v11 = xp.take(flat, corner + p), xp.take(flat, corner + (p + 1))
        fx, fy = xp.reshape(fx, (-1,)), xp.reshape(fy, (-1,))
        top = v00 + fx * (v01 - v00)
        out = top + fy * (v10 + fx * (v11 - v10) - top)
        return xp.reshape(out, (rows, s * s)) + self.fill

    def _padded(self, x, rows: int):
        """``x - fill`` as ``(rows, side + 3, side + 3)`` images with a zero border (one pixel
        before, two after)."""
        xp, s = self.xp, self.side
        img = xp.reshape(x - self.fill, (rows, s, s))

        def zeros(*shape):
            return xp.zeros(shape, dtype=img.dtype, device=self.device)

        img = xp.concat([zeros(rows, s, 1), img, zeros(rows, s, 2)], axis=2)
        return xp.concat([zeros(rows, 1, s + 3), img, zeros(rows, 2, s + 3)], axis=1)
