"""Saving and loading networks: the documented JSON format, and the original Rust program's.

portamlp's JSON format (``"format": "portamlp-mlp"``, ``"version": 1``)::

    {
      "format": "portamlp-mlp", "version": 1,
      "layers": [784, 30, 10], "activation": "sigmoid", "cost": "quadratic", "dtype": "float32",
      "weights": [ [[...], ...],  ... ],   # one (n_out, n_in) nested list per layer
      "biases":  [ [...], ... ]            # one (n_out,) list per layer
    }

Numbers are written with Python's shortest round-trip representation, so save → load is exact.

The original Rust program's files are also read: they hold ``layers``, ``weights``, ``biases`` and
``activation_function.function_type`` (``"Sigmoid"`` or ``"ReLU"``); its cost was quadratic.
That program scaled pixels by 1/256: evaluate its networks on data loaded with ``scale=256``.

Every file is written atomically (temporary file in the same folder, flushed, fsynced, then
``os.replace``d), and an existing file is only replaced with ``overwrite=True``. Everything read is
validated; a malformed file raises :class:`~portamlp.ModelFormatError` naming the field.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .activations import ACTIVATIONS
from .backend import Backend
from .errors import ModelFormatError
from .losses import COSTS

__all__ = ["save", "load", "atomic_write_bytes", "FORMAT_NAME", "FORMAT_VERSION"]

FORMAT_NAME = "portamlp-mlp"
FORMAT_VERSION = 1
#: Refuse model files larger than this (bytes) unless ``max_bytes`` says otherwise.
MAX_FILE_BYTES = 2 << 30
#: Refuse layers wider than this.
MAX_LAYER_WIDTH = 1 << 20


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, overwrite: bool = False) -> None:
    """Write ``data`` to ``path`` atomically: a reader sees the old file or the new one, whole."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it")
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def _format_of(path: Path, format: str | None) -> str:
    if format is not None:
        if format != "json":
            raise ValueError(f"format={format!r} is not supported; use 'json'")
        return format
    if path.suffix.lower() != ".json":
        raise ValueError(f"cannot tell the format of {path} from its extension; name it *.json "
                         "or pass format='json'")
    return "json"


def to_document(network) -> dict[str, Any]:
    """The JSON document for a network (plain Python data)."""
    weights, biases = network.get_params()
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "layers": list(network.layers),
        "activation": network.activation,
        "cost": network.cost,
        "dtype": network.dtype,
        "weights": [w.astype(np.float64).tolist() for w in weights],
        "biases": [b.astype(np.float64).tolist() for b in biases],
    }


def save(network, path: str | os.PathLike, *, format: str | None = None,
         overwrite: bool = False) -> None:
    """Save ``network`` to ``path`` (format from the extension: ``.json``), atomically."""
    path = Path(path)
    _format_of(path, format)
    data = json.dumps(to_document(network), separators=(",", ":")).encode()
    atomic_write_bytes(path, data, overwrite=overwrite)


# ---------------------------------------------------------------------------- loading
def _fail(path, message) -> ModelFormatError:
    return ModelFormatError(f"{path}: {message}")


def _field(doc, key, path, kind):
    if key not in doc:
        raise _fail(path, f"missing field {key!r}")
    value = doc[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise _fail(path, f"field {key!r} must be {getattr(kind, '__name__', kind)}, "
                          f"got {type(value).__name__}")
    return value


def _matrix(value, shape, path, what) -> np.ndarray:
    try:
        a = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise _fail(path, f"{what} must be a nested list of numbers") from None
    if a.shape != shape:
        raise _fail(path, f"{what} must have shape {shape}, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise _fail(path, f"{what} holds non-finite values (NaN or infinity)")
    return a


def _check_layers_field(layers, path) -> list[int]:
    if not isinstance(layers, list) or len(layers) < 2:
        raise _fail(path, f"field 'layers' must be a list of at least 2 sizes, got {layers!r}")
    for s in layers:
        if isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= MAX_LAYER_WIDTH:
            raise _fail(path, f"field 'layers' must hold integers in [1, {MAX_LAYER_WIDTH}], "
                              f"got {s!r}")
    return layers


def _parse_parameters(doc, layers, path, transpose_ok=False):
    weights_raw = _field(doc, "weights", path, list)
    biases_raw = _field(doc, "biases", path, list)
    n = len(layers) - 1
    if len(weights_raw) != n or len(biases_raw) != n:
        raise _fail(path, f"layers {layers} need {n} weight matrices and {n} bias vectors, got "
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


def _from_portamlp(doc, path):
    version = _field(doc, "version", path, int)
    if version != FORMAT_VERSION:
        raise _fail(path, f"format version {version} is not supported (this portamlp reads "
                          f"version {FORMAT_VERSION}); upgrade portamlp")
    layers = _check_layers_field(_field(doc, "layers", path, list), path)
    activation = _field(doc, "activation", path, str)
    if activation not in ACTIVATIONS:
        raise _fail(path, f"unknown activation {activation!r}; expected one of {sorted(ACTIVATIONS)}")
    cost = _field(doc, "cost", path, str)
    if cost not in COSTS:
        raise _fail(path, f"unknown cost {cost!r}; expected one of {sorted(COSTS)}")
    dtype = _field(doc, "dtype", path, str)
    if dtype not in ("float32", "float64"):
        raise _fail(path, f"field 'dtype' must be 'float32' or 'float64', got {dtype!r}")
    weights, biases = _parse_parameters(doc, layers, path)
    return weights, biases, activation, cost, dtype


_RUST_ACTIVATIONS = {"sigmoid": "sigmoid", "relu": "relu"}


def _from_rust(doc, path):
    layers = _check_layers_field(_field(doc, "layers", path, list), path)
    fn = _field(doc, "activation_function", path, dict)
    kind = fn.get("function_type")
    if not isinstance(kind, str) or kind.lower() not in _RUST_ACTIVATIONS:
        raise _fail(path, f"activation_function.function_type must be 'Sigmoid' or 'ReLU', "
                          f"got {kind!r}")
    weights, biases = _parse_parameters(doc, layers, path, transpose_ok=True)
    return weights, biases, _RUST_ACTIVATIONS[kind.lower()], "quadratic", "float64"


def load(path: str | os.PathLike, backend: str | Backend | None = None, device: Any = None, *,
         format: str | None = None, max_bytes: int = MAX_FILE_BYTES):
    """Load a network saved by :func:`save` (or by the original Rust program).

    Parameters
    ----------
    path : str or path-like
    backend, device : optional
        Where to put the parameters (see :func:`portamlp.get_backend`).
    max_bytes : int
        Refuse larger files (default 2 GiB).

    Raises
    ------
    ModelFormatError
        The file is not a valid model file; the message names the field and what was expected.
    FileNotFoundError
        No such file.
    """
    from .network import Network

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    size = path.stat().st_size
    if size > max_bytes:
        raise _fail(path, f"the file is {size:,} bytes, over the {max_bytes:,}-byte limit "
                          "(pass max_bytes= to allow it)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise _fail(path, "not a UTF-8 JSON file") from None
    try:
        doc = json.loads(text, parse_constant=lambda c: math.nan)
    except json.JSONDecodeError as exc:
        raise _fail(path, f"not valid JSON ({exc}); the file may be truncated") from None
    except RecursionError:  # hostile nesting: the C parser stops at the recursion limit
        raise _fail(path, "JSON nested too deeply; not a model file") from None
    if not isinstance(doc, dict):
        raise _fail(path, "a model file holds a JSON object at the top level")
    if "format" in doc:
        if doc["format"] != FORMAT_NAME:
            raise _fail(path, f"field 'format' is {doc['format']!r}, expected {FORMAT_NAME!r}")
        weights, biases, activation, cost, dtype = _from_portamlp(doc, path)
    elif "activation_function" in doc:
        weights, biases, activation, cost, dtype = _from_rust(doc, path)
    else:
        raise _fail(path, f"missing field 'format' (expected {FORMAT_NAME!r}); not a portamlp "
                          "model file nor one of the original program's")
    return Network.from_arrays(weights, biases, activation=activation, cost=cost,
                               backend=backend, device=device, dtype=dtype)
