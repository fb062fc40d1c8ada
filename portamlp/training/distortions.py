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

from .dropout import MASK32, RowCounters, counter_hash, step_key

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
        #: the elastic noise lattice: every pixel, or every other one for σ ≥ 2 (see _smooth)
        self.stride = 2 if spec.elastic_sigma >= 2 else 1
        self.lattice = len(range(0, side, self.stride))
        #: uniform numbers per row: the affine ones, then one 32-bit hash per lattice point
        #: whose two 16-bit halves give the x and y noise of the elastic field
        self.per_row = _PER_ROW + (self.lattice ** 2 if self.elastic else 0)
        self._counters = RowCounters(xp, device, self.per_row)
        c = (side - 1) / 2.0
        pixels = xp.arange(side * side, dtype=xp.int64, device=device)
        # output pixel offsets from the centre, (1, side²)
        self._px = xp.reshape(xp.astype(pixels % side, dtype) - c, (1, -1))
        self._py = xp.reshape(xp.astype(pixels // side, dtype) - c, (1, -1))
        self._spread = self._alpha_spread = None
        if self.elastic:  # (lattice, side): √stride · G[:, ::stride], transposed
            g = gaussian_matrix(side, spec.elastic_sigma)
            spread = [[math.sqrt(self.stride) * g[i][k] for i in range(side)]
                      for k in range(0, side, self.stride)]
            self._spread = xp.asarray(spread, dtype=dtype, device=device)
            self._alpha_spread = self._spread * spec.elastic_alpha
        self._starts: Any = None
        # the clamp's bounds as 0-d arrays (no scalar conversion per call)
        self._low = xp.asarray(0.0, dtype=dtype, device=device)
        self._high = xp.asarray(float(side + 1), dtype=dtype, device=device)

    def _uniforms(self, step: int, rows: int, row_offset: int):
        """``(rows, per_row)`` hashes of this step's rows (int64 in ``[0, 2**32)``)."""
        key = (step_key(self.seed, step, _STREAM) + row_offset * self.per_row) & MASK32
        return counter_hash(self.xp, self._counters(rows), key)

    def _signed(self, hashes, bits: int = 32):
        """Uniform values in ``[-1, 1)`` from ``bits``-bit integers."""
        return self.xp.astype(hashes, self.dtype) * (2.0 / (1 << bits)) - 1.0

    def source_coordinates(self, step: int, rows: int, row_offset: int = 0):
        """``(qx, qy)``, each ``(rows, side²)``: where each output pixel reads the source image
        (pixel units, from the top-left pixel's centre)."""
        return self._coordinates(step, rows, row_offset, 0.0)

    def _coordinates(self, step: int, rows: int, row_offset: int, offset: float):
        """:meth:`source_coordinates` plus ``offset``. The affine part is one 2×3 matrix per
        row, ``src = M (out − c − shift) + c`` with ``M`` the inverse of rotate · zoom · shear
        (mirrored where flipped), so each coordinate costs two products and two sums."""
        xp, spec = self.xp, self.spec
        h = self._uniforms(step, rows, row_offset)
        u = self._signed(h[:, :_PER_ROW])  # (rows, 7) in [-1, 1)

        def column(k: int, scale: float):
            return u[:, k:k + 1] * scale

        one = xp.ones((rows, 1), dtype=self.dtype, device=self.device)
        cos, sin = one, one * 0.0
        if spec.rotation:
            angle = column(0, math.radians(spec.rotation))
            cos, sin = xp.cos(angle), xp.sin(angle)
        # rotate back: [[cos, sin], [-sin, cos]]; unzoom: divide row 0 by zx, row 1 by zy
        m00, m01, m10, m11 = cos, sin, -sin, cos
        if spec.zoom:
            zx, zy = 1.0 + column(1, spec.zoom), 1.0 + column(2, spec.zoom)
            m00, m01, m10, m11 = m00 / zx, m01 / zx, m10 / zy, m11 / zy
        if spec.shear:  # unshear: row 0 minus tan(shear) times row 1
            t = xp.tan(column(3, math.radians(spec.shear)))
            m00, m01 = m00 - t * m10, m01 - t * m11
        if spec.flip:  # mirror where the value is negative
            f = 1.0 - 2.0 * xp.astype(u[:, 6:7] < 0.0, self.dtype)
            m00, m01 = m00 * f, m01 * f
        c = (self.side - 1) / 2.0 + offset
        tx, ty = one * c, one * c
        if spec.shift:
            sx, sy = column(4, spec.shift), column(5, spec.shift)
            tx, ty = tx - m00 * sx - m01 * sy, ty - m10 * sx - m11 * sy
        px, py = self._px, self._py
        qx = m00 * px + m01 * py + tx
        qy = m10 * px + m11 * py + ty
        if self.elastic:  # α is folded into the smoothing matrix
            field = h[:, _PER_ROW:]
            qx = qx + self._smooth(self._signed(field & 0xFFFF, 16), rows)
            qy = qy + self._smooth(self._signed(field >> 16, 16), rows)
        return qx, qy

    def _smooth(self, noise, rows: int):
        """α times the Gaussian smoothing of each row's noise, flattened to ``(rows, side²)``.

        With stride 1 the noise has a value at every pixel and this is ``G fᵀ G``: two matrix
        products with the batch's rows stacked (the transpose of i.i.d. noise is as random as
        the noise; it saves a copy). With stride 2 (σ ≥ 2) the noise lives on every other
        pixel of each axis, times 2, zero between: a quarter of the random numbers, and the
        same field statistics, since a Gaussian this wide hardly tells the two apart (the
        variance at each pixel differs by under 7 % inside a 4-pixel border, under 50 % in
        the corners, where images have no ink; tested). Smoothing it is
        ``Gₛ fᵀ Gₛᵀ`` with ``Gₛ = √2 G[:, ::2]``."""
        xp, s, n = self.xp, self.side, self.lattice
        once = xp.matmul(xp.reshape(noise, (rows * n, n)), self._spread)  # f Gₛᵀ
        once = xp.permute_dims(xp.reshape(once, (rows, n, s)), (0, 2, 1))  # Gₛ fᵀ
        twice = xp.matmul(xp.reshape(once, (rows * s, n)), self._alpha_spread)
        return xp.reshape(twice, (rows, s * s))

    def apply(self, x, step: int, row_offset: int = 0):
        """The distorted ``x`` (``(rows, side²)``) for training step ``step``; ``row_offset``
        is the first row's place in the global mini-batch (several processes)."""
        xp, s = self.xp, self.side
        rows = x.shape[0]
        p = s + 3  # padded side: one background pixel before, two after
        # in padded coordinates (+1), clamped to [0, s + 1]: every corner read is in the padding
        gx, gy = self._coordinates(step, rows, row_offset, 1.0)
        gx = xp.minimum(xp.maximum(gx, self._low), self._high)
        gy = xp.minimum(xp.maximum(gy, self._low), self._high)
        x0, y0 = xp.floor(gx), xp.floor(gy)
        fx, fy = xp.reshape(gx - x0, (-1,)), xp.reshape(gy - y0, (-1,))
        corner = xp.reshape(self._corner(x0, y0, rows), (-1,))
        flat = xp.reshape(self._padded(x, rows), (-1,))
        # the other three corners: the same indices into the array shifted by 1, p, p + 1
        v00, v01 = xp.take(flat, corner), xp.take(flat[1:], corner)
        v10, v11 = xp.take(flat[p:], corner), xp.take(flat[p + 1:], corner)
        top = v00 + fx * (v01 - v00)
        out = xp.reshape(top + fy * (v10 + fx * (v11 - v10) - top), (rows, s * s))
        return out + self.fill if self.fill else out

    def _corner(self, x0, y0, rows: int):
        """``(rows, side²)`` int64: the index of each top-left corner in the flattened padded
        batch. Computed in floating point (one conversion, no integer sum) while the dtype
        holds every index exactly."""
        xp, p = self.xp, self.side + 3
        exact = 2 ** (24 if self.dtype == xp.float32 else 53)
        have = self._starts
        if have is None or have.shape[0] < rows:
            have = xp.reshape(xp.arange(rows, dtype=xp.int64, device=self.device) * (p * p),
                              (rows, 1))
            self._starts = have
        starts = have if have.shape[0] == rows else have[:rows, ...]
        if rows * p * p < exact:
            return xp.astype(y0 * float(p) + (x0 + xp.astype(starts, self.dtype)), xp.int64)
        return xp.astype(y0 * float(p) + x0, xp.int64) + starts

    def _padded(self, x, rows: int):
        """``x - fill`` as ``(rows, side + 3, side + 3)`` images with a zero border (one pixel
        before, two after)."""
        xp, s = self.xp, self.side
        img = xp.reshape(x - self.fill if self.fill else x, (rows, s, s))

        def zeros(*shape):
            return xp.zeros(shape, dtype=img.dtype, device=self.device)

        img = xp.concat([zeros(rows, s, 1), img, zeros(rows, s, 2)], axis=2)
        return xp.concat([zeros(rows, 1, s + 3), img, zeros(rows, 2, s + 3)], axis=1)
