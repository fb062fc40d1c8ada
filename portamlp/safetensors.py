"""A small reader and writer of the safetensors format, with validation of everything read.

Layout: an 8-byte little-endian header length ``N``; ``N`` bytes of JSON mapping each tensor name
to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets relative to the data section)
plus an optional ``"__metadata__"`` mapping of strings to strings; then the tensors' raw
little-endian, row-major bytes, packed without holes. No code is ever executed on load.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .errors import ModelFormatError

__all__ = ["encode", "decode", "read", "DTYPES"]

#: safetensors dtype name -> little-endian NumPy dtype (the ones portamlp reads and writes).
DTYPES = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8"), "I64": np.dtype("<i8"),
          "U32": np.dtype("<u4"), "U8": np.dtype("u1")}
_NAMES = {dt.newbyteorder("="): name for name, dt in DTYPES.items()}
#: Largest header accepted (bytes): a hostile file cannot make the parser read gigabytes of JSON.
MAX_HEADER_BYTES = 16 << 20


def encode(tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> bytes:
    """The bytes of a safetensors file holding ``tensors`` (NumPy arrays) and ``metadata``."""
    header: dict = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    chunks, offset = [], 0
    for name, array in tensors.items():
        array = np.asarray(array)
        key = array.dtype.newbyteorder("=")
        if key not in _NAMES:
            raise ValueError(f"cannot store tensor {name!r} of dtype {array.dtype} in safetensors")
        data = np.ascontiguousarray(array, dtype=DTYPES[_NAMES[key]]).tobytes()
        header[name] = {"dtype": _NAMES[key], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # align the data section to 8 bytes
    return len(text).to_bytes(8, "little") + text + b"".join(chunks)


def _fail(source, message):
    return ModelFormatError(f"{source}: {message}")


def decode(data: bytes, source: str = "<bytes>") -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Parse and validate safetensors bytes; return ``(tensors, metadata)`` as host arrays."""
    if len(data) < 8:
        raise _fail(source, f"not a safetensors file: {len(data)} bytes, the header length alone "
                            "takes 8 (truncated?)")
    n = int.from_bytes(data[:8], "little")
    if n > min(len(data) - 8, MAX_HEADER_BYTES):
        raise _fail(source, f"safetensors header length {n:,} exceeds the file "
                            f"({len(data) - 8:,} bytes after the length) or the "
                            f"{MAX_HEADER_BYTES:,}-byte limit; the file is truncated or corrupt")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise _fail(source, f"safetensors header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise _fail(source, "safetensors header must be a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise _fail(source, "safetensors '__metadata__' must map strings to strings")
    body = memoryview(data)[8 + n:]
    spans, tensors = [], {}
    for name, info in header.items():
        if not isinstance(info, dict):
            raise _fail(source, f"tensor {name!r}: entry must be an object")
        dtype_name, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype_name not in DTYPES:
            raise _fail(source, f"tensor {name!r}: dtype {dtype_name!r} is not supported; "
                                f"expected one of {sorted(DTYPES)}")
        if (not isinstance(shape, list) or len(shape) > 8
                or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                           for s in shape)):
            raise _fail(source, f"tensor {name!r}: shape must be a list of non-negative "
                                f"integers, got {shape!r}")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= len(body)):
            raise _fail(source, f"tensor {name!r}: data_offsets {offsets!r} must be "
                                f"[begin, end] within the {len(body):,}-byte data section")
        dtype = DTYPES[dtype_name]
        expected = dtype.itemsize * int(np.prod(shape, dtype=np.int64)) if shape else dtype.itemsize
        if offsets[1] - offsets[0] != expected:
            raise _fail(source, f"tensor {name!r}: shape {shape} of {dtype_name} needs "
                                f"{expected:,} bytes, data_offsets span "
                                f"{offsets[1] - offsets[0]:,}")
        spans.append((offsets[0], offsets[1], name))
        tensors[name] = np.frombuffer(body[offsets[0]:offsets[1]], dtype=dtype).reshape(shape)
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            raise _fail(source, f"tensor {name!r}: data overlaps another tensor or leaves a gap "
                                f"(starts at {begin}, expected {position})")
        position = end
    if position != len(body):
        raise _fail(source, f"{len(body) - position:,} bytes after the last tensor; the file is "
                            "corrupt")
    return {k: v.astype(v.dtype.newbyteorder("=")) for k, v in tensors.items()}, metadata


def read(path: str | os.PathLike, max_bytes: int) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read and validate a safetensors file no larger than ``max_bytes``."""
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise _fail(path, f"the file is {size:,} bytes, over the {max_bytes:,}-byte limit "
                          "(pass max_bytes= to allow it)")
    return decode(path.read_bytes(), str(path))
