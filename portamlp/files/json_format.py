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

Reading takes memory and time bounded by what the file's layers need, whatever the file holds.
Its first bytes are looked at first: a binary file, a pickle, a PyTorch, HDF5 or safetensors
file is named at once. The top-level object is then read field by field: the small fields are
decoded (each within :data:`MAX_SMALL_FIELD_BYTES`), while ``weights`` and ``biases`` are only
scanned — numbers, brackets and commas, their numbers counted, a piece at a time — and decoded
once the layers say how many numbers they must hold: weights that cannot match the layers are
refused before any of them is decoded.
"""

from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..datasets.scaling import Preprocessing
from .fields import (
    FORMAT_NAME,
    FORMAT_VERSION,
    JSON_DECODER,
    MAX_LAYER_WIDTH,
    NUMBERS_DECODER,
    JSONRefused,
    check_dtype_field,
    check_layers_field,
    check_name,
    fail,
    field,
    json_problem,
    parse_json,
    parse_parameters,
    preprocessing_field,
    shorten,
    sniff,
)

if TYPE_CHECKING:
    from ..nn.network import Network

__all__ = ["to_document", "encode_json", "read_json", "from_document", "NumberSpan",
           "MAX_SMALL_FIELD_BYTES"]

#: A field other than ``weights`` and ``biases`` may take at most this many bytes.
MAX_SMALL_FIELD_BYTES = 8 << 20
#: The most bytes one number of the weights can take, with its comma and indentation.
_BYTES_PER_NUMBER = 128
#: ``weights``/``biases`` up to this size are decoded before their count is checked (their
#: messages then name the very matrix that is wrong).
_DECODE_FREELY = 4 << 20
#: The bytes scanned at a time, and the slack allowed beyond what the numbers need.
_CHUNK = 1 << 20
#: The fields holding numbers, and how deep their lists nest (a list of matrices of rows).
_NUMBER_FIELDS = ("weights", "biases")
_MAX_DEPTH = 3
_WHITESPACE = b" \t\n\r"
_NUMBER_LIST_BYTES = b"0123456789+-.eE[]," + _WHITESPACE
_NOT_NUMBER_LISTS = re.compile(rb"[^0-9+\-.eE\[\], \t\n\r]")


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


def read_json(path: Path, max_bytes: int) -> dict[str, Any]:
    """A JSON model file's top-level object, within the size limit, read field by field: the
    small fields decoded, ``weights`` and ``biases`` scanned into :class:`NumberSpan`
    (:func:`from_document` decodes them once the layers are known)."""
    size = path.stat().st_size
    if size > max_bytes:
        raise fail(path, f"the file is {size:,} bytes, over the {max_bytes:,}-byte limit "
                         "(pass max_bytes= to allow it)")
    with open(path, "rb") as f:
        head = f.read(4096)
        start = len(codecs.BOM_UTF8) if head.startswith(codecs.BOM_UTF8) else 0
        _refuse_non_json(head[start:], size, path)
        return _Reader(f, path, size, start).document()


def _refuse_non_json(head: bytes, size: int, path) -> None:
    """Refuse at once a file whose first bytes are no JSON object, saying what they look like."""
    if not head:
        raise fail(path, "the file is empty" if size == 0 else "the file holds no JSON")
    looks = sniff(head)
    if looks is not None:
        raise fail(path, looks)
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=len(head) == size)
    except UnicodeDecodeError as exc:
        raise fail(path, f"not a UTF-8 JSON model file: byte {exc.start:,} is not UTF-8 text; "
                         "portamlp reads its own model files, JSON and safetensors") from None
    first = text.lstrip()[:1]
    if first == "[":
        raise fail(path, "a model file holds a JSON object at the top level; this file holds "
                         "a JSON array")
    if first not in ("{", ""):
        raise fail(path, f"not a JSON model file: it starts with {shorten(text.lstrip()[:40])}, "
                         "where a model file starts with '{'")


@dataclass(frozen=True)
class NumberSpan:
    """A ``weights`` or ``biases`` field scanned but not decoded: where it lies in the file, and
    how many numbers and lists the scan counted (exact when the field is valid JSON)."""

    path: Path
    start: int
    end: int
    numbers: int
    lists: int

    @property
    def nbytes(self) -> int:
        return self.end - self.start

    def decode(self, key: str) -> Any:
        """The field's nested lists of numbers."""
        with open(self.path, "rb") as f:
            f.seek(self.start)
            raw = f.read(self.nbytes)
        if len(raw) != self.nbytes or raw.translate(None, _NUMBER_LIST_BYTES):
            raise fail(self.path, f"field {key!r} changed while the file was read")
        text = raw.decode("ascii")
        del raw
        return parse_json(text, self.path, f"field {key!r}", NUMBERS_DECODER)


def _budget(layers: Any, key: str) -> tuple[int, int, int] | None:
    """What ``layers`` allow field ``key`` (weights or biases): ``(numbers, most lists, most
    bytes)``; None when ``layers`` are not valid (their own check says why)."""
    if not isinstance(layers, list) or len(layers) < 2 or not all(
            isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= MAX_LAYER_WIDTH
            for s in layers):
        return None
    pairs = list(zip(layers[:-1], layers[1:]))
    if key == "weights":
        numbers = sum(n_in * n_out for n_in, n_out in pairs)
        lists = 1 + len(pairs) + sum(max(n_in, n_out) for n_in, n_out in pairs)
    else:  # a bias may be a column, [[b], [b], ...], in the original program's files
        numbers = sum(n_out for _, n_out in pairs)
        lists = 1 + len(pairs) + numbers
    return numbers, lists, numbers * _BYTES_PER_NUMBER + _CHUNK


def _too_many(key: str, what: str, layers: Any, budget: tuple[int, int, int]) -> str:
    return (f"field {key!r} {what}, more than layers {shorten(layers)} allow ({budget[0]:,} "
            f"numbers); the {key} do not match the layers")


class _Reader:
    """A JSON model file read forward from a position, a piece at a time."""

    def __init__(self, f, path: Path, size: int, pos: int):
        self.f, self.path, self.size, self.pos = f, path, size, pos

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes from the position (which stays)."""
        self.f.seek(self.pos)
        return self.f.read(n)

    def peek(self) -> bytes:
        """The next byte that is not whitespace (the position moves to it); b"" at the end."""
        while True:
            chunk = self.read(1 << 16)
            rest = chunk.lstrip(_WHITESPACE)
            self.pos += len(chunk) - len(rest)
            if rest or not chunk:
                return rest[:1]

    def expect(self, char: bytes, what: str) -> None:
        """Step over ``char``, the next byte that is not whitespace."""
        found = self.peek()
        if found != char:
            raise self.unexpected(what, found)
        self.pos += 1

    def unexpected(self, what: str, found: bytes):
        if not found:
            return fail(self.path, f"the file ends where {what} should be; it is truncated")
        excerpt = self.read(24).decode("utf-8", "replace")
        return fail(self.path, f"expected {what} at byte {self.pos:,}, found {shorten(excerpt)}")

    def document(self) -> dict[str, Any]:
        """The top-level object, field by field."""
        self.expect(b"{", "a JSON object")
        doc: dict[str, Any] = {}
        closed = self.peek() == b"}"
        while not closed:
            found = self.peek()
            if found != b'"':
                raise self.unexpected("a field name in double quotes", found)
            key = self.value("a field name")
            if key in doc:
                raise fail(self.path, f"field {shorten(key)} appears twice")
            self.expect(b":", f"':' after field {shorten(key)}")
            if key in _NUMBER_FIELDS and self.peek() == b"[":
                doc[key] = self.numbers(key, doc.get("layers"))
            else:
                doc[key] = self.value(f"field {shorten(key)}")
            closed = self.peek() == b"}"
            if not closed:
                self.expect(b",", f"',' or '}}' after field {shorten(key)}")
        self.pos += 1
        if self.peek():
            raise fail(self.path, f"unexpected data after the JSON object, at byte {self.pos:,}")
        return doc

    def value(self, what: str) -> Any:
        """The next JSON value, decoded: at most :data:`MAX_SMALL_FIELD_BYTES`."""
        if not self.peek():
            raise self.unexpected(what, b"")
        n = 1 << 16
        while True:
            raw = self.read(n)
            at_end = self.pos + len(raw) >= self.size
            try:
                text = codecs.getincrementaldecoder("utf-8")().decode(raw, final=at_end)
            except UnicodeDecodeError as exc:
                raise fail(self.path, f"{what} is not UTF-8 text (byte {self.pos + exc.start:,})"
                           ) from None
            try:
                value, end = JSON_DECODER.raw_decode(text)
                if end < len(text) or at_end:  # else a number may go on past the piece read
                    self.pos += len(text[:end].encode())
                    return value
            except json.JSONDecodeError as exc:
                cut_short = exc.pos >= len(text) - 4096 or exc.msg.startswith("Unterminated")
                if at_end or not cut_short:
                    truncated = "; the file is truncated" if at_end and cut_short else ""
                    raise fail(self.path, f"{what} {json_problem(exc)}{truncated}") from None
            except (JSONRefused, RecursionError) as exc:
                raise fail(self.path, f"{what} {json_problem(exc)}") from None
            if n >= MAX_SMALL_FIELD_BYTES:
                raise fail(self.path, f"{what} takes more than {MAX_SMALL_FIELD_BYTES:,} bytes "
                                      "(or is not valid JSON); only 'weights' and 'biases' may "
                                      "be that large")
            n = min(4 * n, MAX_SMALL_FIELD_BYTES)

    def numbers(self, key: str, layers: Any) -> NumberSpan:
        """Scan the lists of numbers of field ``key`` (weights or biases) without decoding
        them: only numbers, brackets and commas, nested at most 3 deep, within what ``layers``
        (when already read and valid) allow."""
        budget = _budget(layers, key)
        start, depth, commas, lists, empties, last = self.pos, 0, 0, 0, 0, b""
        while True:
            chunk = self.read(_CHUNK)
            if not chunk:
                raise fail(self.path, f"the file ends inside field {key!r}; it is truncated")
            a = np.frombuffer(chunk, np.uint8)
            brackets = np.flatnonzero((a == ord("[")) | (a == ord("]")))
            depths = np.cumsum(np.where(a[brackets] == ord("["), 1, -1)) + depth
            closing = np.flatnonzero(depths == 0)[:1]
            if closing.size:
                brackets, depths = brackets[:closing[0] + 1], depths[:closing[0] + 1]
            part = chunk[:int(brackets[-1]) + 1] if closing.size else chunk
            if depths.size and int(depths.max()) > _MAX_DEPTH:
                at = self.pos + int(brackets[np.argmax(depths > _MAX_DEPTH)])
                raise fail(self.path, f"field {key!r} is nested more than {_MAX_DEPTH} deep (at "
                                      f"byte {at:,}); {key} are lists of matrices of rows of "
                                      "numbers")
            if part.translate(None, _NUMBER_LIST_BYTES):
                at = self.pos + _NOT_NUMBER_LISTS.search(part).start()  # type: ignore[union-attr]
                raise fail(self.path, self.not_a_number(key, start, at))
            commas += part.count(b",")
            lists += part.count(b"[")
            compact = part.translate(None, _WHITESPACE)
            empties += compact.count(b"[]") + (last == b"[" and compact[:1] == b"]")
            last = compact[-1:] or last
            self.pos += len(part)
            depth = int(depths[-1]) if depths.size else depth
            if budget is not None and self.pos - start > budget[2]:
                raise fail(self.path, _too_many(key, f"takes more than {budget[2]:,} bytes",
                                                layers, budget))
            if closing.size:
                return NumberSpan(self.path, start, self.pos, commas - empties + 1, lists)

    def not_a_number(self, key: str, start: int, at: int) -> str:
        """The message for something other than a number at byte ``at`` of field ``key``
        (which starts at byte ``start``): which entry holds it, and what it is."""
        self.pos, index, depth = start, 0, 0
        while self.pos < at:  # count the commas between the entries, up to ``at``
            a = np.frombuffer(self.read(min(_CHUNK, at - self.pos)), np.uint8)
            depths = np.cumsum((a == ord("[")).astype(np.int8) - (a == ord("]")),
                               dtype=np.int32) + depth
            index += int(np.count_nonzero((a == ord(",")) & (depths == 1)))
            depth, self.pos = int(depths[-1]), self.pos + len(a)
        excerpt = self.read(40)
        token = re.match(rb"[^,\] \t\n\r]*", excerpt)[0] or excerpt[:1]  # type: ignore[index]
        text = token.decode("utf-8", "replace")
        for constant in ("NaN", "Infinity"):
            if text.startswith(constant):
                return (f"{key}[{index}] holds {constant}, a non-finite value; model files "
                        "hold finite numbers")
        return f"{key}[{index}] must be a nested list of numbers; found {shorten(text)}"


def _decode_numbers(doc: dict[str, Any], layers: list[int], path) -> None:
    """Decode the scanned ``weights`` and ``biases`` of ``doc``, in place, once what the scan
    counted agrees with ``layers`` (small fields are decoded at once: their own checks name
    the very matrix that is wrong)."""
    for key in _NUMBER_FIELDS:
        span = doc.get(key)
        if not isinstance(span, NumberSpan):
            continue
        budget = _budget(layers, key)
        if budget is not None and span.nbytes > _DECODE_FREELY:
            if span.nbytes > budget[2]:
                raise fail(path, _too_many(key, f"takes {span.nbytes:,} bytes", layers, budget))
            if span.numbers != budget[0] or span.lists > budget[1]:
                raise fail(path, f"field {key!r} holds {span.numbers:,} numbers in "
                                 f"{span.lists:,} lists; layers {shorten(layers)} need "
                                 f"{budget[0]:,} numbers")
        doc[key] = span.decode(key)


def from_document(doc: Any, path) -> dict[str, Any]:
    """The keyword arguments of :meth:`Network.from_arrays` from a JSON document: portamlp's
    format, or the original program's."""
    if not isinstance(doc, dict):
        raise fail(path, "a model file holds a JSON object at the top level")
    if "format" in doc:
        if doc["format"] != FORMAT_NAME:
            raise fail(path, f"field 'format' is {shorten(doc['format'])}, expected "
                             f"{FORMAT_NAME!r}")
        return _from_portamlp(doc, path)
    if "activation_function" in doc:
        return _from_rust(doc, path)
    raise fail(path, f"missing field 'format' (expected {FORMAT_NAME!r}); not a portamlp model "
                     "file nor one of the original program's")


def _from_portamlp(doc, path):
    version = field(doc, "version", path, int)
    if version != FORMAT_VERSION:
        raise fail(path, f"format version {shorten(version)} is not supported (this portamlp "
                         f"reads version {FORMAT_VERSION}); upgrade portamlp")
    layers = check_layers_field(field(doc, "layers", path, list), path)
    activation = check_name("activation", field(doc, "activation", path, str), path)
    cost = check_name("cost", field(doc, "cost", path, str), path)
    dtype = check_dtype_field(field(doc, "dtype", path, str), path)
    preprocessing = preprocessing_field(doc.get("preprocessing"), path)
    _decode_numbers(doc, layers, path)  # the small fields are checked: now the big ones
    weights, biases = parse_parameters(doc, layers, path, dtype=dtype)
    return dict(weights=weights, biases=biases, activation=activation, cost=cost, dtype=dtype,
                preprocessing=preprocessing)


_RUST_ACTIVATIONS = {"sigmoid": "sigmoid", "relu": "relu"}


def _from_rust(doc, path):
    layers = check_layers_field(field(doc, "layers", path, list), path)
    fn = field(doc, "activation_function", path, dict)
    kind = fn.get("function_type")
    if not isinstance(kind, str) or kind.lower() not in _RUST_ACTIVATIONS:
        raise fail(path, f"activation_function.function_type must be 'Sigmoid' or 'ReLU', "
                         f"got {shorten(kind)}")
    _decode_numbers(doc, layers, path)
    weights, biases = parse_parameters(doc, layers, path, transpose_ok=True)
    return dict(weights=weights, biases=biases, activation=_RUST_ACTIVATIONS[kind.lower()],
                cost="quadratic", dtype="float64", preprocessing=Preprocessing(256.0, 256.0))
