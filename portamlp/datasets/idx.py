"""The IDX file format (MNIST's): parsing and writing, gzip or raw, with validation first.

An IDX file is a 4-byte magic number ``00 00 TT NN`` (``TT`` the element type, ``NN`` the number of
dimensions), ``NN`` big-endian uint32 dimension sizes, then the elements, big-endian, row-major.
The header is checked against the bytes actually present *before* anything the size of the data is
allocated, so a file claiming 10⁹ images in 1 KB fails fast with a clear message.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataFormatError

__all__ = ["read_idx", "write_idx", "IDX_TYPES"]

#: IDX type code -> big-endian NumPy dtype.
IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("="): code for code, dt in IDX_TYPES.items()}

#: Largest decompression ratio DEFLATE can reach (about 1032:1), used to reject absurd headers.
_MAX_DEFLATE_RATIO = 1100
_CHUNK = 1 << 20


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _parse_header(path, head: bytes, available: int | None):
    """Validate the magic number and dimensions; return ``(dtype, dims, header_size, n_bytes)``.

    ``available`` is the number of bytes the file can hold after decompression (None: unknown).
    """
    if len(head) == 0:
        raise DataFormatError(f"{path}: the file is empty, not an IDX file")
    if len(head) < 4:
        raise DataFormatError(f"{path}: truncated IDX header ({len(head)} bytes, need at least 4)")
    if head[0] != 0 or head[1] != 0:
        raise DataFormatError(
            f"{path}: wrong magic number {head[:4].hex()} (an IDX file starts with 00 00); "
            "is this an IDX file?"
        )
    code, ndim = head[2], head[3]
    if code not in IDX_TYPES:
        raise DataFormatError(
            f"{path}: unknown IDX type code 0x{code:02x}; valid codes are "
            + ", ".join(f"0x{c:02x}" for c in IDX_TYPES)
        )
    if ndim == 0:
        raise DataFormatError(f"{path}: the header declares 0 dimensions")
    header_size = 4 + 4 * ndim
    if len(head) < header_size:
        raise DataFormatError(
            f"{path}: truncated IDX header: {ndim} dimensions need {header_size} bytes, "
            f"the file has {len(head)}"
        )
    dims = struct.unpack(f">{ndim}I", head[4:header_size])
    dtype = IDX_TYPES[code]
    n_bytes = dtype.itemsize
    for d in dims:
        n_bytes *= d
    if available is not None and header_size + n_bytes > available:
        raise DataFormatError(
            f"{path}: the header declares shape {dims} ({n_bytes:,} bytes of data) but the file "
            f"can hold at most {max(available - header_size, 0):,}; the file is truncated or "
            "its header is corrupt"
        )
    return dtype, dims, header_size, n_bytes


def _read_exact(path, stream, n_bytes: int) -> bytes:
    """Read exactly ``n_bytes`` from ``stream`` in chunks, then make sure nothing follows."""
    buf = bytearray()
    while len(buf) < n_bytes:
        chunk = stream.read(min(_CHUNK, n_bytes - len(buf)))
        if not chunk:
            raise DataFormatError(
                f"{path}: truncated data: the header declares {n_bytes:,} bytes of data, "
                f"the file holds {len(buf):,}"
            )
        buf += chunk
    if stream.read(1):
        raise DataFormatError(
            f"{path}: the file holds more data than its header declares ({n_bytes:,} bytes); "
            "the header dimensions do not match the size"
        )
    return bytes(buf)


def read_idx(path: str | os.PathLike, *, sha256: str | None = None) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw) into a host NumPy array.

    Parameters
    ----------
    path : str or path-like
    sha256 : str, optional
        Expected SHA-256 (hex) of the decompressed file; a mismatch raises ``DataFormatError``.

    Returns
    -------
    numpy.ndarray
        Shape given by the header; dtype in native byte order (uint8 for MNIST).

    Raises
    ------
    DataFormatError
        (a ``ValueError``) for a missing, empty, truncated or malformed file, naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file")
    size = path.stat().st_size
    try:
        if _is_gzip(path):
            return _read_gzip(path, size, sha256)
        with open(path, "rb") as f:
            head = f.read(4 + 4 * 255)
            dtype, dims, header_size, n_bytes = _parse_header(path, head, size)
            if header_size + n_bytes != size:
                raise DataFormatError(
                    f"{path}: the header declares shape {dims} ({n_bytes:,} bytes of data) but the "
                    f"file has {size - header_size:,}; the dimensions do not match the size"
                )
            f.seek(header_size)
            data = _read_exact(path, f, n_bytes)
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot read the file ({exc})") from exc
    _check_sha256(path, head[:header_size], data, sha256)
    return _to_array(data, dtype, dims)


def _check_sha256(path, header: bytes, data: bytes, expected: str | None) -> None:
    if expected is None:
        return
    h = hashlib.sha256(header)
    h.update(data)
    if h.hexdigest() != expected.lower():
        raise DataFormatError(
            f"{path}: SHA-256 of the decompressed data is {h.hexdigest()}, expected {expected}; "
            "the file is damaged"
        )


def _read_gzip(path: Path, size: int, sha256: str | None) -> np.ndarray:
    # The gzip trailer's last 4 bytes hold the decompressed size modulo 2**32.
    with open(path, "rb") as f:
        f.seek(max(size - 4, 0))
        isize = struct.unpack("<I", f.read(4))[0] if size >= 18 else None
    available = size * _MAX_DEFLATE_RATIO
    try:
        with gzip.open(path, "rb") as g:
            head = g.read(4)
            if len(head) == 4 and head[0] == 0 and head[1] == 0:
                head += g.read(4 * head[3])
            dtype, dims, header_size, n_bytes = _parse_header(path, head, available)
            if isize is not None and (header_size + n_bytes) % (1 << 32) != isize:
                raise DataFormatError(
                    f"{path}: the header declares shape {dims} ({header_size + n_bytes:,} bytes "
                    f"in all) but the gzip stream records {isize:,} bytes; the dimensions do not "
                    "match the size, or the file is truncated"
                )
            data = _read_exact(path, g, n_bytes)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataFormatError(f"{path}: bad or truncated gzip stream ({exc})") from exc
    _check_sha256(path, head[:header_size], data, sha256)
    return _to_array(data, dtype, dims)


def _to_array(data: bytes, dtype: np.dtype, dims) -> np.ndarray:
    a = np.frombuffer(data, dtype=dtype).reshape(dims)
    native = dtype.newbyteorder("=")
    return a.astype(native) if dtype.itemsize > 1 else a.view(native)


def write_idx(path: str | os.PathLike, array: np.ndarray, *, compress: bool | None = None) -> None:
    """Write ``array`` as an IDX file (gzip when ``compress`` or the name ends in ``.gz``)."""
    array = np.asarray(array)
    key = array.dtype.newbyteorder("=")
    if key not in _CODES:
        raise ValueError(f"IDX cannot store dtype {array.dtype}; use one of "
                         f"{sorted(str(d) for d in _CODES)}")
    if array.ndim < 1 or array.ndim > 255:
        raise ValueError(f"IDX stores 1 to 255 dimensions, got {array.ndim}")
    code = _CODES[key]
    payload = io.BytesIO()
    payload.write(bytes([0, 0, code, array.ndim]))
    payload.write(struct.pack(f">{array.ndim}I", *array.shape))
    payload.write(np.ascontiguousarray(array, dtype=IDX_TYPES[code]).tobytes())
    path = Path(path)
    if compress is None:
        compress = path.suffix == ".gz"
    data = gzip.compress(payload.getvalue(), mtime=0) if compress else payload.getvalue()
    path.write_bytes(data)
