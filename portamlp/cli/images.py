"""Earlier home of :mod:`portamlp.images` (photos of digits); the same functions."""

from ..images import MIN_INK_CONTRAST, BlankImageError, digit_to_png, prepare_digit

__all__ = ["prepare_digit", "digit_to_png", "BlankImageError", "MIN_INK_CONTRAST"]
