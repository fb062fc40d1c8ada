"""portamlp's JSON model format, and the original Rust program's JSON files.

portamlp's format (``"format": "portamlp-mlp"``, ``"version": 1``)::

    {
      "format": "portamlp-mlp", "version": 1,
      "layers": [784, 30, 10], "activation": "sigmoid", "cost": "quadratic", "dtype": "float32",
      "preprocessing": {"scale": 255.0, "divisor": 255.0, "mean": 0.0, "std": 1.0},  # optional
      "weights": [ [[...], ...],  ... ],   # one (n_out, n_in) nested list per layer
      "biases":  [ [...], ... ]            # one (n_out,) list per layer
    }

Numbers are written with Python's shortest round-trip representation, so save → load is exact.
``preprocessing`` says how raw pixels become inputs; files written before it existed load with
``preprocessing=None``.

The original Rust program's files hold ``layers``, ``weights``, ``biases`` and
``activation_function.function_type`` (``"Sigmoid"`` or ``"ReLU"``); its cost was quadratic.
That program scaled pixels by 1/256, which is recorded as their preprocessing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..datasets.scaling import Preprocessing
from .fields import (
    FORMAT_NAME,
    FORMAT_VERSION,
    check_dtype_field,
    check_layers_field,
    check_name,
    fail,
    field,
    parse_parameters,
    preprocessing_field,
)

if TYPE_CHECKING:
    from ..nn.network import Network

__all__ = ["to_document", "encode_json", "read_json", "from_document"]


def to_document(network: Network) -> dict[str, Any]:
    """The JSON document for a network (plain Python data)."""
    weights, biases = network.host_parameters()
    doc: dict[str, Any] = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "layers": list(network.layers),
        "activation": network.activation,
        "cost": network.cost,
        "dtype": network.dtype,
    }
    if network.preprocessing is not None:
        doc["preprocessing"] = network.preprocessing.to_dict()
    doc["weights"] = [w.astype(np.float64).tolist() for w in weights]
    doc["biases"] = [b.astype(np.float64).tolist() for b in biases]
    return doc


def encode_json(document: dict[str, Any]) -> bytes:
    """The bytes of a JSON model file."""
    return json.dumps(document, separators=(",", ":")).encode()


def read_json(path: Path, max_bytes: int) -> Any:
    """A JSON file's document (any JSON value), within the size limit."""
    size = path.stat().st_size
    if size > max_bytes:
        raise fail(path, f"the file is {size:,} bytes, over the {max_bytes:,}-byte limit "
                         "(pass max_bytes= to allow it)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise fail(path, "not a UTF-8 JSON file") from None
    try:
        return json.loads(text, parse_constant=lambda c: math.nan)
    except json.JSONDecodeError as exc:
        raise fail(path, f"not valid JSON ({exc}); the file may be truncated") from None
    except RecursionError:  # hostile nesting: the C parser stops at the recursion limit
        raise fail(path, "JSON nested too deeply; not a model file") from None


def from_document(doc: Any, path) -> dict[str, Any]:
    """The keyword arguments of :meth:`Network.from_arrays` from a JSON document: portamlp's
    format, or the original program's."""
    if not isinstance(doc, dict):
        raise fail(path, "a model file holds a JSON object at the top level")
    if "format" in doc:
        if doc["format"] != FORMAT_NAME:
            raise fail(path, f"field 'format' is {doc['format']!r}, expected {FORMAT_NAME!r}")
        return _from_portamlp(doc, path)
    if "activation_function" in doc:
        return _from_rust(doc, path)
    raise fail(path, f"missing field 'format' (expected {FORMAT_NAME!r}); not a portamlp model "
                     "file nor one of the original program's")


def _from_portamlp(doc, path):
    version = field(doc, "version", path, int)
    if version != FORMAT_VERSION:
        raise fail(path, f"format version {version} is not supported (this portamlp reads "
                         f"version {FORMAT_VERSION}); upgrade portamlp")
    layers = check_layers_field(field(doc, "layers", path, list), path)
    activation = check_name("activation", field(doc, "activation", path, str), path)
    cost = check_name("cost", field(doc, "cost", path, str), path)
    dtype = check_dtype_field(field(doc, "dtype", path, str), path)
    weights, biases = parse_parameters(doc, layers, path)
    return dict(weights=weights, biases=biases, activation=activation, cost=cost, dtype=dtype,
                preprocessing=preprocessing_field(doc.get("preprocessing"), path))


_RUST_ACTIVATIONS = {"sigmoid": "sigmoid", "relu": "relu"}


def _from_rust(doc, path):
    layers = check_layers_field(field(doc, "layers", path, list), path)
    fn = field(doc, "activation_function", path, dict)
    kind = fn.get("function_type")
    if not isinstance(kind, str) or kind.lower() not in _RUST_ACTIVATIONS:
        raise fail(path, f"activation_function.function_type must be 'Sigmoid' or 'ReLU', "
                         f"got {kind!r}")
    weights, biases = parse_parameters(doc, layers, path, transpose_ok=True)
    return dict(weights=weights, biases=biases, activation=_RUST_ACTIVATIONS[kind.lower()],
                cost="quadratic", dtype="float64", preprocessing=Preprocessing(256.0, 256.0))
