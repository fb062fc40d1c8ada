"""Turning a photo or scan of a handwritten digit into an MNIST-like 28×28 image.

The steps follow how MNIST itself was made: grayscale (a transparent image is first composited
onto white); invert when the digit is dark on a light background; crop to the ink; scale to fit
a 20×20 box keeping the aspect ratio (anti-aliased); paste into 28×28 so that the centre of mass
of the ink sits at the centre. An image with no visible ink raises :class:`BlankImageError`.
Needs Pillow (``pip install "portamlp[images]"``).

    import portamlp
    network = portamlp.load("net.json")
    pixels = portamlp.images.prepare_digit("my-digit.png")   # uint8 (28, 28), ink bright
    label = network.predict(network.preprocessing.apply(pixels.reshape(1, 784)))
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["prepare_digit", "digit_to_png", "BlankImageError", "MIN_INK_CONTRAST"]

#: An image whose ink differs from its background by less than this (0-255) holds no digit.
MIN_INK_CONTRAST = 32.0


class BlankImageError(ValueError):
    """The image holds no visible ink: there is no digit to classify."""


def _pil():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError(
            'reading image files needs Pillow: pip install "portamlp[images]"') from None
    return Image


def _to_mnist(gray: np.ndarray, source) -> np.ndarray:
    """uint8 28×28 from a 2-D float image in [0, 255] where ink is bright."""
    Image = _pil()
    if gray.max() < MIN_INK_CONTRAST:
        raise BlankImageError(f"{source}: the image is blank or nearly so (the brightest ink "
                              f"differs from the background by {gray.max():.0f} of 255)")
    ink = gray > 0.1 * gray.max()
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    crop = gray[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = crop.shape
    factor = 20.0 / max(h, w)
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    small = Image.fromarray(crop.astype(np.float32)).resize(size, Image.LANCZOS)
    small = np.clip(np.asarray(small), 0, 255)
    canvas = np.zeros((28, 28), dtype=np.float64)
    sh, sw = small.shape
    total = small.sum()
    cy, cx = ((np.indices(small.shape) * small).reshape(2, -1).sum(axis=1) / total
              if total > 0 else (sh / 2, sw / 2))
    top = int(round(14 - cy))
    left = int(round(14 - cx))
    top, left = min(max(top, 0), 28 - sh), min(max(left, 0), 28 - sw)
    canvas[top:top + sh, left:left + sw] = small
    return np.round(canvas).astype(np.uint8)


def prepare_digit(image) -> np.ndarray:
    """An MNIST-like uint8 image of shape (28, 28) from a file path or an array.

    Parameters
    ----------
    image : path or array of shape (h, w) or (h, w, channels)
        A PNG/JPEG/... file, or pixel values (0–255).

    Raises
    ------
    BlankImageError
        The image holds no visible ink (a ``ValueError``).
    ValueError
        The file is not an image Pillow can read.
    """
    Image = _pil()
    source = str(image) if isinstance(image, (str, os.PathLike)) else "the image"
    if isinstance(image, (str, os.PathLike)):
        try:
            with Image.open(image) as im:
                gray = np.asarray(_on_white(im).convert("L"), dtype=np.float64)
        except FileNotFoundError:
            raise FileNotFoundError(f"{image}: no such image file") from None
        except (OSError, Image.DecompressionBombError, SyntaxError) as exc:
            raise ValueError(f"{image}: not an image file Pillow can read ({exc})") from None
    else:
        arr = np.asarray(image, dtype=np.float64)
        if arr.ndim == 3 and arr.shape[2] in (2, 4):  # gray or RGB with alpha: onto white
            alpha = arr[..., -1:] / 255.0
            arr = arr[..., :-1] * alpha + 255.0 * (1.0 - alpha)
        if arr.ndim == 3:
            arr = arr[..., :3].mean(axis=2) if arr.shape[2] >= 3 else arr[..., 0]
        if arr.ndim != 2:
            raise ValueError(f"an image must be 2-D (or 3-D with channels), got shape {arr.shape}")
        gray = arr
    # The background is the typical border value; a light one means dark ink: invert.
    background = float(np.median(np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])))
    if background > 127:
        gray, background = 255.0 - gray, 255.0 - background
    return _to_mnist(np.clip(gray - background, 0, 255), source)


def _on_white(im):
    """A Pillow image with any transparency composited onto white (ink drawn on alpha 0 would
    otherwise turn black on black)."""
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        Image = _pil()
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba)
    return im


def digit_to_png(pixels: np.ndarray, path, *, invert: bool = True, scale: int = 4) -> None:
    """Write a 28×28 image (uint8 or floats in [0, 1]) as a PNG, dark ink on white by default."""
    Image = _pil()
    a = np.asarray(pixels, dtype=np.float64).reshape(28, 28)
    if a.max() <= 1.0:
        a = a * 255.0
    a = np.clip(a, 0, 255).astype(np.uint8)
    if invert:
        a = 255 - a
    Image.fromarray(a).resize((28 * scale, 28 * scale), Image.NEAREST).save(path)
