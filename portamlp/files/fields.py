"""A model's fields, validated the same way whatever the file format.

Every model file (portamlp's JSON, safetensors, the original program's JSON, a checkpoint's
network) comes down to layers, an activation, a cost, a dtype, optional preprocessing, and
weights and biases. Each is checked here: a malformed one raises
:class:`~portamlp.ModelFormatError` naming the file, the field and what was expected. The names
of activations and costs are the registries' (:data:`~portamlp.nn.activations.ACTIVATIONS`,
:data:`~portamlp.nn.costs.COSTS`): a registered entry is saved and loaded like the others.

Also here, for every reader of model files: :func:`parse_json` (JSON that a model file may
hold: finite numbers only, no key twice), :func:`shorten` (a value quoted in a message, cut to
a readable length) and :func:`sniff` (what a file that is not a model file looks like).
"""

from __future__ import annotations

import json
import math
import reprlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..checks import DTYPES
from ..datasets.scaling import Preprocessing
from ..errors import ModelFormatError
from ..nn.activations import ACTIVATIONS
from ..nn.costs import COSTS

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "MAX_FILE_BYTES", "MAX_LAYER_WIDTH", "QUOTE_LIMIT",
           "fail", "field", "check_layers_field", "check_shape", "parse_parameters",
           "preprocessing_field", "check_name", "check_dtype_field", "shorten", "clip",
           "JSONRefused", "JSON_DECODER", "NUMBERS_DECODER", "parse_json", "json_problem",
           "sniff"]

#: The ``format`` and ``version`` of portamlp's model files.
FORMAT_NAME = "portamlp-mlp"
FORMAT_VERSION = 1
#: Refuse model files larger than this (bytes) unless ``max_bytes`` says otherwise.
MAX_FILE_BYTES = 2 << 30
#: Refuse layers wider than this.
MAX_LAYER_WIDTH = 1 << 20
#: A value quoted from a file in a message is cut to about this many characters.
QUOTE_LIMIT = 80


def fail(path, message) -> ModelFormatError:
    """The error for a malformed file: ``"<path>: <message>"``."""
    return ModelFormatError(f"{path}: {message}")


# ------------------------------------------------------------------- quoting file content
def clip(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was when cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters)"


class _ShortRepr(reprlib.Repr):
    """``repr`` that never builds a huge string: long strings, lists and deep nesting cut."""

    def __init__(self):
        super().__init__()
        self.maxlevel, self.maxstring, self.maxother, self.maxlong = 3, QUOTE_LIMIT, 40, 40
        self.maxlist = self.maxtuple = self.maxdict = self.maxset = 8

    def repr_int(self, x, level):
        if x.bit_length() > 1000:  # repr() itself refuses ints beyond 4,300 digits
            return f"<an integer of about {int(x.bit_length() * math.log10(2)) + 1:,} digits>"
        return super().repr_int(x, level)


_SHORT_REPR = _ShortRepr()


def shorten(value: Any, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)`` for a message, cut to about ``limit`` characters however big ``value``
    is (a 150 MB string is quoted by its start and its length)."""
    text = _SHORT_REPR.repr(value)
    if isinstance(value, str) and len(value) > limit:
        return f"{text} ({len(value):,} characters)"
    return clip(text, limit)


# --------------------------------------------------------------------- JSON in model files
class JSONRefused(ValueError):
    """JSON that no model file may hold: NaN or Infinity, a number beyond float64, a key given
    twice in one object."""


def _parse_int(text: str) -> int:
    if len(text) > 310:  # 10**309 is beyond float64, and int() refuses 4,301 digits
        raise JSONRefused(f"an integer of {len(text):,} digits ({text[:12]}…), too large for a "
                          "float64 (a non-finite value)")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JSONRefused(f"the number {clip(text, 40)}, too large for a float64 (a non-finite "
                          "value)")
    return value


def _parse_constant(name: str) -> float:
    raise JSONRefused(f"{name}, a non-finite value; model files hold finite numbers")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise JSONRefused(f"the key {shorten(key)} twice in one object")
            seen.add(key)
    return out


#: The decoder of every JSON text in a model file: finite numbers only, no key twice.
JSON_DECODER = json.JSONDecoder(parse_int=_parse_int, parse_float=_parse_float,
                                parse_constant=_parse_constant, object_pairs_hook=_unique_keys)
#: The decoder of weights already scanned (nested lists of numbers, nothing else): floats are
#: read by the C fast path; one beyond float64 becomes infinity, refused with the other
#: non-finite values.
NUMBERS_DECODER = json.JSONDecoder(parse_int=_parse_int, parse_constant=_parse_constant)


def json_problem(exc: BaseException) -> str:
    """What is wrong with a JSON text, from what :data:`JSON_DECODER` raised."""
    if isinstance(exc, JSONRefused):
        return f"holds {exc}"
    if isinstance(exc, RecursionError):
        return "is nested too deeply (not a model file's JSON)"
    return f"is invalid JSON ({clip(str(exc))})"


def parse_json(text: str, path, what: str, decoder: json.JSONDecoder = JSON_DECODER) -> Any:
    """A JSON text of a model file (``what`` names it in messages); ModelFormatError for
    invalid JSON, hostile nesting, NaN, Infinity and numbers beyond float64."""
    try:
        return decoder.decode(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and JSONRefused included
        raise fail(path, f"{what} {json_problem(exc)}") from None


# ---------------------------------------------------------------- what a file looks like
_PYTORCH_HINT = ("; from PyTorch, save the state dict of an nn.Sequential of Linear layers with "
                 "safetensors.torch.save_file(model.state_dict(), 'net.safetensors') and load "
                 "that with portamlp.load('net.safetensors', activation=..., cost=...)")
_MAGIC = (  # (first bytes, what the file looks like, advice)
    (b"PK\x03\x04", "a zip archive (a PyTorch .pt/.pth file, a Keras .keras or a NumPy .npz file)",
     _PYTORCH_HINT),
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file (a Keras .h5 model)",
     "; write each Dense layer's kernel, transposed, and bias to a safetensors file under the "
     "names '0.weight', '0.bias', '2.weight', ... and load that"),
    (b"\x93NUMPY", "a NumPy .npy array", ""),
    (b"\x1f\x8b", "a gzip-compressed file", "; decompress it first"),
    (b"\xff\xfe", "UTF-16 text (a byte-order mark)", "; save it as UTF-8"),
    (b"\xfe\xff", "UTF-16 text (a byte-order mark)", "; save it as UTF-8"),
)


def sniff(head: bytes, expected: str = "UTF-8 JSON") -> str | None:
    """What the file whose first bytes are ``head`` looks like, and what to do instead, when it
    is plainly not of the ``expected`` kind, "UTF-8 JSON" or "safetensors" (None when it may
    be)."""
    what = advice = None
    for magic, kind, hint in _MAGIC:
        if head.startswith(magic):
            what, advice = kind, hint
            break
    else:
        if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
            what = "a pickle (a joblib file, or a PyTorch file of the old format)"
            advice = ("; portamlp never unpickles a file (unpickling runs its code): load it "
                      "with the program that wrote it, or" + _PYTORCH_HINT[1:])
        elif expected == "safetensors":
            pass  # its first 8 bytes, a length, hold NUL bytes
        elif len(head) >= 10 and head[8:10] == b'{"' and \
                int.from_bytes(head[:8], "little") < (1 << 32):
            what = "a safetensors file"
            advice = "; name it *.safetensors, or pass format='safetensors'"
        elif b"\x00" in head:
            what, advice = "binary data (it holds NUL bytes)", ""
    if what is None:
        return None
    return (f"not a {expected} model file: it looks like {what}. portamlp reads its own model "
            f"files, JSON and safetensors (written by portamlp.save or Network.save){advice}")


def field(doc, key, path, kind):
    """``doc[key]``, which must exist and be of ``kind`` (bools are not numbers)."""
    if key not in doc:
        raise fail(path, f"missing field {key!r}")
    value = doc[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise fail(path, f"field {key!r} must be {getattr(kind, '__name__', kind)}, "
                         f"got {type(value).__name__}")
    return value


def check_shape(shape: tuple[int, ...], expected: tuple[int, ...], path, what: str) -> None:
    """A weight's or a bias's shape (from the data, or from a file's header) is ``expected``."""
    if tuple(shape) != expected:
        raise fail(path, f"{what} must have shape {expected}, got {tuple(shape)}")


def _matrix(value, shape, path, what, dtype="float64") -> np.ndarray:
    """``value`` (a float array, or nested lists of JSON numbers) checked: its shape, real
    numbers only (no booleans, no strings), all finite, and finite as ``dtype`` too."""
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        a = value
    else:
        try:
            a = np.array(value)
            if a.dtype.kind not in "iufO":  # booleans, strings: not numbers
                raise TypeError(a.dtype)
            a = a.astype(np.float64, copy=False)
        except (TypeError, ValueError):
            raise fail(path, f"{what} must be a nested list of numbers") from None
        except OverflowError:  # an integer beyond float64
            raise fail(path, f"{what} holds non-finite values (a number beyond float64)") \
                from None
    check_shape(a.shape, shape, path, what)
    if not np.all(np.isfinite(a)):
        raise fail(path, f"{what} holds non-finite values (NaN or infinity)")
    largest = float(np.max(np.abs(a), initial=0.0))
    if largest > float(np.finfo(dtype).max):
        raise fail(path, f"{what} holds {largest:g}, beyond the range of {dtype} (the file's "
                         "dtype): a non-finite value once loaded")
    return a


def check_layers_field(layers, path, key: str = "field 'layers'") -> list[int]:
    """A file's ``layers`` field: a list of at least 2 sizes in [1, 2**20]."""
    if not isinstance(layers, list) or len(layers) < 2:
        raise fail(path, f"{key} must be a list of at least 2 sizes, got {shorten(layers)}")
    for s in layers:
        if isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= MAX_LAYER_WIDTH:
            raise fail(path, f"{key} must hold integers in [1, {MAX_LAYER_WIDTH}], "
                             f"got {shorten(s)}")
    return layers


def parse_parameters(doc, layers, path, transpose_ok=False,
                     dtype: str = "float64") -> tuple[list, list]:
    """Weights (n_out, n_in) and biases (n_out,) from ``doc["weights"]``/``["biases"]``, checked
    against ``layers`` (shapes; values finite, and within ``dtype``'s range)."""
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
            w = _matrix(weights_raw[i], shape, path, f"weights[{i}]", dtype)
        except ModelFormatError:
            if not transpose_ok:
                raise
            w = _matrix(weights_raw[i], shape[::-1], path, f"weights[{i}]", dtype).T
        b_raw = biases_raw[i]
        if transpose_ok and isinstance(b_raw, list) and b_raw and isinstance(b_raw[0], list):
            b_raw = [row[0] if isinstance(row, list) and len(row) == 1 else row for row in b_raw]
        biases.append(_matrix(b_raw, (layers[i + 1],), path, f"biases[{i}]", dtype))
        weights.append(w)
    return weights, biases


def preprocessing_field(value, path) -> Preprocessing | None:
    """The ``preprocessing`` field (None when absent: files from before it existed)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise fail(path, f"field 'preprocessing' must be an object, got {shorten(value)}")
    try:
        return Preprocessing.from_dict(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise fail(path, f"field 'preprocessing': {clip(str(exc))}") from None


def check_name(key: str, value: Any, path) -> str:
    """An activation's or a cost's name (``key`` is "activation" or "cost"), registered."""
    choices: Mapping[str, Any] = ACTIVATIONS if key == "activation" else COSTS
    if not isinstance(value, str) or value not in choices:
        registry = "ACTIVATIONS" if key == "activation" else "COSTS"
        raise fail(path, f"unknown {key} {shorten(value)}; the registered ones are "
                         f"{list(choices)}. Own ones: register it before loading "
                         f"({registry}.register, or portamlp --import MODULE)")
    return value


def check_dtype_field(value: Any, path, key: str = "dtype") -> str:
    """The ``dtype`` field: ``"float32"`` or ``"float64"``."""
    if not isinstance(value, str) or value not in DTYPES:
        raise fail(path, f"field {key!r} must be one of {list(DTYPES)}, got {shorten(value)}")
    return value
