"""A model's fields, validated the same way whatever the file format.

Every model file (portamlp's JSON, safetensors, the original program's JSON, a checkpoint's
network) comes down to layers, an activation, a cost, a dtype, optional preprocessing, and
weights and biases. Each is checked here: a malformed one raises
:class:`~portamlp.ModelFormatError` naming the file, the field and what was expected. The names
of activations and costs are the registries' (:data:`~portamlp.nn.activations.ACTIVATIONS`,
:data:`~portamlp.nn.costs.COSTS`): a registered entry is saved and loaded like the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..checks import DTYPES
from ..datasets.scaling import Preprocessing
from ..errors import ModelFormatError
from ..nn.activations import ACTIVATIONS
from ..nn.costs import COSTS

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "MAX_FILE_BYTES", "MAX_LAYER_WIDTH", "fail",
           "field", "check_layers_field", "parse_parameters", "preprocessing_field",
           "check_name", "check_dtype_field"]

#: The ``format`` and ``version`` of portamlp's model files.
FORMAT_NAME = "portamlp-mlp"
FORMAT_VERSION = 1
#: Refuse model files larger than this (bytes) unless ``max_bytes`` says otherwise.
MAX_FILE_BYTES = 2 << 30
#: Refuse layers wider than this.
MAX_LAYER_WIDTH = 1 << 20


def fail(path, message) -> ModelFormatError:
    """The error for a malformed file: ``"<path>: <message>"``."""
    return ModelFormatError(f"{path}: {message}")


def field(doc, key, path, kind):
    """``doc[key]``, which must exist and be of ``kind`` (bools are not numbers)."""
    if key not in doc:
        raise fail(path, f"missing field {key!r}")
    value = doc[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise fail(path, f"field {key!r} must be {getattr(kind, '__name__', kind)}, "
                         f"got {type(value).__name__}")
    return value


def _matrix(value, shape, path, what) -> np.ndarray:
    try:
        a = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise fail(path, f"{what} must be a nested list of numbers") from None
    if a.shape != shape:
        raise fail(path, f"{what} must have shape {shape}, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise fail(path, f"{what} holds non-finite values (NaN or infinity)")
    return a


def check_layers_field(layers, path) -> list[int]:
    """A file's ``layers`` field: a list of at least 2 sizes in [1, 2**20]."""
    if not isinstance(layers, list) or len(layers) < 2:
        raise fail(path, f"field 'layers' must be a list of at least 2 sizes, got {layers!r}")
    for s in layers:
        if isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= MAX_LAYER_WIDTH:
            raise fail(path, f"field 'layers' must hold integers in [1, {MAX_LAYER_WIDTH}], "
                             f"got {s!r}")
    return layers


def parse_parameters(doc, layers, path, transpose_ok=False) -> tuple[list, list]:
    """Weights (n_out, n_in) and biases (n_out,) from ``doc["weights"]``/``["biases"]``, checked
    against ``layers`` (shapes, finite values)."""
    weights_raw = field(doc, "weights", path, list)
    biases_raw = field(doc, "biases", path, list)
    n = len(layers) - 1
    if len(weights_raw) != n or len(biases_raw) != n:
        raise fail(path, f"layers {layers} need {n} weight matrices and {n} bias vectors, got "
                         f"{len(weights_raw)} and {len(biases_raw)}")
    weights, biases = [], []
    for i in range(n):
        shape = (layers[i + 1], layers[i])
        try:
            w = _matrix(weights_raw[i], shape, path, f"weights[{i}]")
        except ModelFormatError:
            if not transpose_ok:
                raise
            w = _matrix(weights_raw[i], shape[::-1], path, f"weights[{i}]").T
        b_raw = biases_raw[i]
        if transpose_ok and isinstance(b_raw, list) and b_raw and isinstance(b_raw[0], list):
            b_raw = [row[0] if isinstance(row, list) and len(row) == 1 else row for row in b_raw]
        biases.append(_matrix(b_raw, (layers[i + 1],), path, f"biases[{i}]"))
        weights.append(w)
    return weights, biases


def preprocessing_field(value, path) -> Preprocessing | None:
    """The ``preprocessing`` field (None when absent: files from before it existed)."""
    if value is None:
        return None
    try:
        return Preprocessing.from_dict(value)
    except ValueError as exc:
        raise fail(path, f"field 'preprocessing': {exc}") from None


def check_name(key: str, value: Any, path) -> str:
    """An activation's or a cost's name (``key`` is "activation" or "cost"), registered."""
    choices: Mapping[str, Any] = ACTIVATIONS if key == "activation" else COSTS
    if value not in choices:
        registry = "ACTIVATIONS" if key == "activation" else "COSTS"
        raise fail(path, f"unknown {key} {value!r}; the registered ones are {list(choices)}. If "
                         f"it is your own, register it before loading ({registry}.register, or "
                         "portamlp --import MODULE on the command line)")
    return value


def check_dtype_field(value: Any, path, key: str = "dtype") -> str:
    """The ``dtype`` field: ``"float32"`` or ``"float64"``."""
    if value not in DTYPES:
        raise fail(path, f"field {key!r} must be one of {list(DTYPES)}, got {value!r}")
    return value
