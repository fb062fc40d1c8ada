"""safetensors model files: written by the official ``safetensors`` package, read header first.

They hold the tensors under the names a PyTorch ``nn.Sequential(Linear, activation, Linear,
...)`` gives them — ``"0.weight"``, ``"0.bias"``, ``"2.weight"``, ... — so
``model.load_state_dict(safetensors.torch.load_file(path))`` works, and portamlp's own fields
(``format``, ``version``, ``layers``, ``activation``, ``cost``, ``preprocessing``) in the header
metadata. A state dict saved from PyTorch without that metadata loads with
``portamlp.load(path, activation=..., cost=...)``. F32 and F64 tensors load as they are; F16
tensors (``model.half()``) load as float32, exactly; BF16 tensors are refused with a
:class:`~portamlp.ModelFormatError` (save ``model.float()`` instead).

A file is an 8-byte little-endian header length, a JSON header (each tensor's ``dtype``,
``shape`` and ``data_offsets``, and ``__metadata__``) and the tensors' bytes.
:func:`read_safetensors` reads and checks the header first — its size, every entry, offsets
that tile the data exactly — then lets the caller check names, dtypes and shapes against the
metadata (``check_header``), and only then reads tensor data: a file that is not a model is
refused before a byte of its (possibly huge) tensors is read.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .fields import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MAX_FILE_BYTES,
    check_layers_field,
    check_name,
    check_shape,
    clip,
    fail,
    parse_json,
    parse_parameters,
    preprocessing_field,
    shorten,
    sniff,
)

if TYPE_CHECKING:
    from ..nn.network import Network

__all__ = ["encode_safetensors", "read_safetensors", "to_tensors", "from_tensors",
           "check_model_header", "HeaderCheck", "MAX_HEADER_BYTES"]

#: Largest safetensors header accepted (bytes).
MAX_HEADER_BYTES = 16 << 20
#: The dtypes read: their layout in the file, and the dtype they are read as.
_FILE_DTYPES = {"F32": "<f4", "F64": "<f8", "F16": "<f2"}
_READ_DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float32}
#: The fields of a tensor's header entry.
_ENTRY_KEYS = ("dtype", "shape", "data_offsets")
#: A tensor of an ``nn.Sequential`` of ``Linear`` layers: ``"<index>.weight"``/``".bias"``.
_SEQUENTIAL_NAME = re.compile(r"(0|[1-9][0-9]{0,8})\.(weight|bias)")

#: ``check_header(entries, metadata)``, called with ``{name: (dtype, shape)}`` (dtype as the
#: header writes it, ``"F32"``) and the header's metadata before any tensor data is read.
HeaderCheck = Callable[[dict[str, tuple[str, tuple[int, ...]]], dict[str, str]], None]


def encode_safetensors(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    """The bytes of a safetensors file (through the official package)."""
    from safetensors.numpy import save as st_save

    return st_save({k: np.ascontiguousarray(v) for k, v in tensors.items()}, metadata=metadata)


def to_tensors(network: Network) -> tuple[dict, dict]:
    """Tensors named as in a PyTorch ``nn.Sequential`` of ``Linear`` layers, and metadata."""
    weights, biases = network.host_parameters()
    tensors = {}
    for l, (w, b) in enumerate(zip(weights, biases)):
        tensors[f"{2 * l}.weight"] = w
        tensors[f"{2 * l}.bias"] = b
    metadata = {"format": FORMAT_NAME, "version": str(FORMAT_VERSION),
                "layers": json.dumps(list(network.layers)), "activation": network.activation,
                "cost": network.cost}
    if network.preprocessing is not None:
        metadata["preprocessing"] = json.dumps(network.preprocessing.to_dict())
    return tensors, metadata


def read_safetensors(path: str | os.PathLike, max_bytes: int = MAX_FILE_BYTES,
                     check_header: HeaderCheck | None = None) -> tuple[dict[str, np.ndarray],
                                                                     dict[str, str]]:
    """Read a safetensors file: ``(tensors, metadata)`` on the host.

    The header is read and checked first; ``check_header(entries, metadata)``, if given, then
    checks the tensors' names, dtypes and shapes (``entries``: ``{name: (dtype, shape)}``) and
    raises to refuse the file; only then is tensor data read. Every malformed file raises
    :class:`~portamlp.ModelFormatError` naming the problem; F16 tensors come back as float32,
    other dtypes than F32, F64 and F16 are refused.
    """
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise fail(path, f"the file is {size:,} bytes, over the {max_bytes:,}-byte limit "
                         "(pass max_bytes= to allow it)")
    with open(path, "rb") as f:
        entries, metadata, data_start = _read_header(f, path, size)
        if check_header is not None:
            check_header({name: (e.dtype, e.shape) for name, e in entries.items()}, metadata)
        tensors = {name: _read_tensor(f, e, data_start, path) for name, e in entries.items()}
    return tensors, metadata


@dataclass(frozen=True)
class _Entry:
    """A tensor's header entry, checked."""

    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


def _read_header(f, path: Path, size: int) -> tuple[dict[str, _Entry], dict[str, str], int]:
    """The tensors' entries, the metadata and where the data starts, all checked."""
    head = f.read(8)
    if len(head) < 8:
        raise fail(path, f"not a safetensors file: {size} bytes, the header length alone "
                         "takes 8 (truncated?)")
    n = int.from_bytes(head, "little")
    if n > min(size - 8, MAX_HEADER_BYTES):
        looks = sniff(head + f.read(56), "safetensors")
        raise fail(path, looks if looks else
                   f"safetensors header length {n:,} exceeds the file ({size - 8:,} bytes "
                   f"after the length) or the {MAX_HEADER_BYTES:,}-byte limit; the file is "
                   "truncated or corrupt")
    raw = f.read(n)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise fail(path, f"the safetensors header is not UTF-8 text (byte {8 + exc.start:,})") \
            from None
    header = parse_json(text, path, "the safetensors header")
    if not isinstance(header, dict):
        raise fail(path, f"the safetensors header must be a JSON object, got {shorten(header)}")
    metadata = _metadata(header.pop("__metadata__", {}), path)
    entries = {name: _entry(name, value, path) for name, value in header.items()}
    _check_offsets(entries, size - 8 - n, path)
    return entries, metadata, 8 + n


def _metadata(value: Any, path) -> dict[str, str]:
    """The header's ``__metadata__``: strings to strings."""
    if not isinstance(value, dict):
        raise fail(path, f"the header's __metadata__ must be an object, got {shorten(value)}")
    for key, v in value.items():
        if not isinstance(v, str):
            raise fail(path, f"the header's __metadata__ {shorten(key)} is {shorten(v)}, "
                             "expected a string")
    return value


def _entry(name: str, value: Any, path) -> _Entry:
    """A tensor's header entry: a dtype portamlp reads, a shape, offsets that fit both."""
    what = f"tensor {shorten(name)}"
    if not isinstance(value, dict):
        raise fail(path, f"{what}: its header entry must be an object, got {shorten(value)}")
    if set(value) != set(_ENTRY_KEYS):
        missing = [k for k in _ENTRY_KEYS if k not in value]
        raise fail(path, f"{what}: its header entry must hold exactly {list(_ENTRY_KEYS)}; "
                         + (f"missing {missing}" if missing else
                            f"unexpected {shorten(sorted(set(value) - set(_ENTRY_KEYS)))}"))
    dtype = value["dtype"]
    if not isinstance(dtype, str) or dtype not in _FILE_DTYPES:
        hint = " (save model.float() from PyTorch)" if dtype == "BF16" else ""
        named = clip(dtype, 20) if isinstance(dtype, str) else shorten(dtype)
        raise fail(path, f"{what} has dtype {named}; portamlp reads F32, F64 and F16{hint}")
    shape = value["shape"]
    if not isinstance(shape, list) or not all(_is_int(s) for s in shape):
        raise fail(path, f"{what} has shape {shorten(shape)}; expected a list of sizes")
    if any(not 0 <= s < 1 << 64 for s in shape):
        raise fail(path, f"{what} has shape {shorten(shape)}; expected sizes in [0, 2**64) "
                         "(expected usize, as the format says)")
    itemsize = np.dtype(_FILE_DTYPES[dtype]).itemsize
    nbytes = itemsize * math.prod(shape)
    if nbytes >= 1 << 64:
        raise fail(path, f"{what} has shape {shorten(shape)}, whose size overflows 64 bits")
    offsets = value["data_offsets"]
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_int, offsets))
            and 0 <= offsets[0] <= offsets[1]):
        raise fail(path, f"{what} has data_offsets {shorten(offsets)}; expected [begin, end] "
                         "with 0 <= begin <= end")
    if offsets[1] - offsets[0] != nbytes:
        raise fail(path, f"{what}: invalid shape {shorten(shape)} for its dtype {dtype} and "
                         f"its {offsets[1] - offsets[0]:,} bytes of data (data_offsets "
                         f"{offsets}); that shape takes {nbytes:,}")
    return _Entry(dtype, tuple(shape), offsets[0], offsets[1])


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_offsets(entries: dict[str, _Entry], data_size: int, path) -> None:
    """The tensors tile the data exactly: no gap, no overlap, nothing before or after."""
    end = 0
    for name, e in sorted(entries.items(), key=lambda item: (item[1].begin, item[1].end)):
        if e.begin != end:
            raise fail(path, f"tensor {shorten(name)} has invalid offsets [{e.begin}, {e.end}]: "
                             f"the tensors before it end at byte {end:,} (tensors follow one "
                             "another, without gaps or overlaps)")
        end = e.end
    if end != data_size:
        raise fail(path, f"the data is not fully covered by the tensors: they take {end:,} "
                         f"bytes, the file holds {data_size:,} after the header (truncated, or "
                         "something appended?)")


def _read_tensor(f, e: _Entry, data_start: int, path) -> np.ndarray:
    """One tensor's data, as float32 (F16, F32) or float64 (F64)."""
    a = np.empty(e.shape, dtype=_FILE_DTYPES[e.dtype])
    f.seek(data_start + e.begin)
    if f.readinto(a.reshape(-1).view(np.uint8)) != e.end - e.begin:
        raise fail(path, "the file ended while its tensors were read (it changed, or is "
                         "truncated)")
    return a.astype(_READ_DTYPES[e.dtype], copy=False)


# ------------------------------------------------------- names, shapes and metadata, checked
@dataclass(frozen=True)
class _Layout:
    """What a model file's names, shapes and metadata say, checked before its data is read."""

    layers: list[int]
    pairs: list[tuple[str, str]]  # the names of (weight, bias), layer by layer
    activation: str
    cost: str
    dtype: str
    preprocessing: Any


def _sequential_pairs(shapes: dict[str, tuple[int, ...]], path) -> list[tuple[str, str]]:
    """``[(weight name, bias name), ...]`` from names ``"<i>.weight"``/``"<i>.bias"`` (ASCII
    digits), ordered by ``i``."""
    layers: dict[int, dict[str, str]] = {}
    for name in shapes:
        match = _SEQUENTIAL_NAME.fullmatch(name)
        if match is None:
            hint = ""
            if name.startswith(("network.", "optimizer.")):
                hint = ("; this looks like a training checkpoint: load its directory, "
                        "portamlp.load('DIR'), or the file itself with a portamlp that reads "
                        "checkpoints")
            raise fail(path, f"unexpected tensor {shorten(name)}; expected names like "
                             "'0.weight', '0.bias', '2.weight' (an nn.Sequential of Linear "
                             f"layers){hint}")
        layers.setdefault(int(match[1]), {})[match[2]] = name
    if not layers:
        raise fail(path, "the file holds no tensors")
    pairs = []
    for i in sorted(layers):
        for kind in ("weight", "bias"):
            if kind not in layers[i]:
                raise fail(path, f"missing tensor '{i}.{kind}'")
        pairs.append((layers[i]["weight"], layers[i]["bias"]))
    return pairs


def _check_dimensions(shapes, pairs, path) -> list[int]:
    """Weights 2-D and biases 1-D; the layer sizes they give."""
    for w, b in pairs:
        if len(shapes[w]) != 2:
            raise fail(path, f"tensor {w!r} has shape {shapes[w]}; a weight is a 2-D (outputs, "
                             "inputs) matrix")
        if len(shapes[b]) != 1:
            raise fail(path, f"tensor {b!r} has shape {shapes[b]}; a bias is a 1-D (outputs,) "
                             "vector")
    return [int(shapes[pairs[0][0]][1])] + [int(shapes[w][0]) for w, _ in pairs]


def _layout(shapes: dict[str, tuple[int, ...]], dtypes: set[str], meta: dict[str, str], path,
            activation: str | None, cost: str | None) -> _Layout:
    """Check a model file's tensor names, shapes and dtypes (as read) against its metadata."""
    if meta.get("format", FORMAT_NAME) != FORMAT_NAME:
        raise fail(path, f"metadata 'format' is {shorten(meta['format'])}, expected "
                         f"{FORMAT_NAME!r}")
    if "version" in meta and meta["version"] != str(FORMAT_VERSION):
        raise fail(path, f"format version {shorten(meta['version'])} is not supported (this "
                         f"portamlp reads version {FORMAT_VERSION}); upgrade portamlp")
    pairs = _sequential_pairs(shapes, path)
    layers = _check_dimensions(shapes, pairs, path)
    if "layers" in meta:
        declared = parse_json(meta["layers"], path, "metadata 'layers'")
        check_layers_field(declared, path, "metadata 'layers'")
        if declared != layers:
            raise fail(path, f"metadata 'layers' {shorten(declared)} does not match the "
                             f"tensors' shapes (which give {shorten(layers)})")
    check_layers_field(layers, path)
    for l, (w, b) in enumerate(pairs):
        check_shape(shapes[w], (layers[l + 1], layers[l]), path, f"weights[{l}] ({w!r})")
        check_shape(shapes[b], (layers[l + 1],), path, f"biases[{l}] ({b!r})")
    resolved = {}
    for key, given in (("activation", activation), ("cost", cost)):
        stored = meta.get(key)
        if stored is not None and given is not None and stored != given:
            raise ValueError(f"{path}: the file says {key}={shorten(stored)} but {key}={given!r} "
                             "was passed; leave it out")
        value = stored or given
        if value is None:
            from ..nn.activations import ACTIVATIONS
            from ..nn.costs import COSTS

            choices = ACTIVATIONS if key == "activation" else COSTS
            raise fail(path, f"metadata {key!r} is missing; pass {key}=... to portamlp.load "
                             f"(one of {list(choices)})")
        resolved[key] = check_name(key, value, path)
    if len(dtypes) != 1:
        raise fail(path, f"tensors must all have one dtype, got {sorted(dtypes)}")
    preprocessing = None
    if "preprocessing" in meta:
        raw = parse_json(meta["preprocessing"], path, "metadata 'preprocessing'")
        preprocessing = preprocessing_field(raw, path)
    return _Layout(layers, pairs, resolved["activation"], resolved["cost"], dtypes.pop(),
                   preprocessing)


def check_model_header(entries: dict[str, tuple[str, tuple[int, ...]]], meta: dict[str, str],
                       path, activation: str | None = None, cost: str | None = None) -> None:
    """A :data:`HeaderCheck` for a model file: names, dtypes and shapes agree with each other
    and with the metadata (``activation``/``cost`` for files without portamlp's)."""
    shapes = {name: shape for name, (_, shape) in entries.items()}
    dtypes = {np.dtype(_READ_DTYPES[dtype]).name for dtype, _ in entries.values()}
    _layout(shapes, dtypes, meta, path, activation, cost)


def from_tensors(tensors: dict[str, np.ndarray], meta: dict[str, str], path,
                 activation: str | None = None, cost: str | None = None) -> dict[str, Any]:
    """The keyword arguments of :meth:`Network.from_arrays` from a safetensors file's tensors
    and metadata (``activation``/``cost`` for files without portamlp's metadata)."""
    shapes = {name: tuple(a.shape) for name, a in tensors.items()}
    layout = _layout(shapes, {a.dtype.name for a in tensors.values()}, meta, path, activation,
                     cost)
    doc = {"weights": [tensors[w] for w, _ in layout.pairs],
           "biases": [tensors[b] for _, b in layout.pairs]}
    weights, biases = parse_parameters(doc, layout.layers, path)
    return dict(weights=weights, biases=biases, activation=layout.activation, cost=layout.cost,
                dtype=layout.dtype, preprocessing=layout.preprocessing)
