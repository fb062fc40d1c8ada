"""The IDX file format (MNIST's): parsing and writing, gzip or raw, with validation first.

An IDX file is a 4-byte magic number ``00 00 TT NN`` (``TT`` the element type, ``NN`` the number of
dimensions), ``NN`` big-endian uint32 dimension sizes, then the elements, big-endian, row-major.

The header is checked against the bytes the file can actually hold *before* anything the size of
the data is allocated, so a file claiming 10⁹ images in 1 KB fails at once with a clear message:

* a raw file must be exactly ``header + data`` bytes long;
* a gzip file must agree with the size its trailer records (ISIZE, modulo 2³²) and cannot hold more
  than ~1,032 times its compressed size (the most DEFLATE can expand), so a forged trailer is
  bounded too.

The data are then read straight into one preallocated buffer (hashed on the way when a SHA-256 is
expected), byte-swapped in place when needed, and returned without a further copy.
Every failure raises :class:`~portamlp.errors.DataFormatError` (a ``ValueError``) naming the file.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataFormatError

__all__ = ["IDX_TYPES", "read_idx", "write_idx"]

#: IDX type code -> big-endian NumPy dtype.
IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("="): code for code, dt in IDX_TYPES.items()}

#: Bound on the decompression ratio (DEFLATE's maximum is about 1032:1), to reject absurd headers.
_MAX_DEFLATE_RATIO = 1100
#: Bytes decompressed per step: large enough to be fast, small enough to bound temporaries.
_CHUNK = 4 << 20
_MAX_HEADER = 4 + 4 * 255
_GZIP_MAGIC = b"\x1f\x8b"


def _parse_header(path, head: bytes, available: int | None, where: str = "the file"):
    """Validate the magic number and dimensions; return ``(dtype, dims, header_size, n_bytes)``.

    ``available`` bounds the bytes the file can hold after decompression (None: unknown).
    """
    if len(head) == 0:
        raise DataFormatError(f"{path}: {where} is empty (0 bytes), not an IDX file")
    if len(head) < 4:
        raise DataFormatError(
            f"{path}: truncated IDX header: {where} holds {len(head)} bytes, an IDX header "
            "needs at least 4 (the magic number)"
        )
    if head[0] != 0 or head[1] != 0:
        raise DataFormatError(
            f"{path}: wrong magic number 0x{head[:4].hex()}: an IDX file starts with 00 00, "
            "then its type code and number of dimensions; is this an IDX file?"
        )
    code, ndim = head[2], head[3]
    if code not in IDX_TYPES:
        raise DataFormatError(
            f"{path}: unknown IDX type code 0x{code:02x}; valid codes are "
            + ", ".join(f"0x{c:02x} ({dt.name})" for c, dt in IDX_TYPES.items())
        )
    if ndim == 0:
        raise DataFormatError(
            f"{path}: the header declares 0 dimensions; an IDX file has 1 to 255"
        )
    header_size = 4 + 4 * ndim
    if len(head) < header_size:
        raise DataFormatError(
            f"{path}: truncated IDX header: {ndim} dimensions need a {header_size}-byte header, "
            f"{where} holds {len(head)} bytes"
        )
    dims = struct.unpack(f">{ndim}I", head[4:header_size])
    dtype = IDX_TYPES[code]
    n_bytes = dtype.itemsize
    for d in dims:
        n_bytes *= d
    if available is not None and header_size + n_bytes > available:
        if available == header_size:
            raise DataFormatError(
                f"{path}: header only: the header declares shape {dims} ({n_bytes:,} bytes of "
                "data) but no data follow it; the file is truncated"
            )
        raise DataFormatError(
            f"{path}: truncated data, or a corrupt header: the header declares shape {dims} "
            f"({n_bytes:,} bytes of data) but {where} can hold at most "
            f"{max(available - header_size, 0):,}"
        )
    return dtype, dims, header_size, n_bytes


def read_idx(path: str | os.PathLike, *, sha256: str | None = None) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw) into a host NumPy array.

    Parameters
    ----------
    path : str or path-like
        The file; gzip compression is recognised by its magic bytes, whatever the name.
    sha256 : str, optional
        Expected SHA-256 (hex) of the decompressed file, computed while it is read; a mismatch
        raises ``DataFormatError``.

    Returns
    -------
    numpy.ndarray
        Shape given by the header (e.g. ``(60000, 28, 28)``); the IDX type in native byte order
        (``uint8``, ``int8``, ``int16``, ``int32``, ``float32`` or ``float64``).

    Raises
    ------
    FileNotFoundError
        No such file (as :func:`portamlp.datasets.load` raises for a missing data set).
    DataFormatError
        (a ``ValueError``) for an empty, truncated or malformed file, or a bad gzip stream; the
        message names the file and the problem.
    """
    path = Path(path)
    try:
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such IDX file")
        if not path.is_file():
            raise DataFormatError(f"{path}: not a regular file")
        size = path.stat().st_size
        hasher = hashlib.sha256() if sha256 is not None else None
        with open(path, "rb") as f:
            if f.read(2) == _GZIP_MAGIC:
                f.seek(0)
                array = _read_gzip(path, f, size, hasher)
            else:
                f.seek(0)
                array = _read_raw(path, f, size, hasher)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot read the file ({exc})") from exc
    if hasher is not None and sha256 is not None and hasher.hexdigest() != sha256.lower():
        raise DataFormatError(
            f"{path}: SHA-256 of the decompressed file is {hasher.hexdigest()}, expected "
            f"{sha256}; the file is damaged"
        )
    return array


def _read_raw(path: Path, f, size: int, hasher) -> np.ndarray:
    head = f.read(_MAX_HEADER)
    dtype, dims, header_size, n_bytes = _parse_header(path, head, size)
    if header_size + n_bytes != size:
        raise DataFormatError(
            f"{path}: the file holds {size - header_size:,} bytes of data but its header "
            f"declares shape {dims} ({n_bytes:,} bytes); the dimensions do not match the size"
        )
    if hasher is not None:
        hasher.update(head[:header_size])
    f.seek(header_size)
    buf = np.empty(n_bytes, dtype=np.uint8)
    view = memoryview(buf)  # type: ignore[arg-type]
    filled = 0
    while filled < n_bytes:
        got = f.readinto(view[filled:])
        if not got:
            raise DataFormatError(f"{path}: truncated data: the file shrank while being read")
        filled += got
    if hasher is not None:
        hasher.update(view)
    return _as_array(path, buf, dtype, dims)


def _gzip_isize(f, size: int) -> int | None:
    """The decompressed size modulo 2**32 that a gzip trailer records (None if too short)."""
    if size < 18:
        return None
    f.seek(size - 4)
    isize = struct.unpack("<I", f.read(4))[0]
    f.seek(0)
    return isize


def _read_gzip(path: Path, f, size: int, hasher) -> np.ndarray:
    isize = _gzip_isize(f, size)
    where = "the decompressed stream"
    try:
        with gzip.GzipFile(fileobj=f, mode="rb") as g:
            head = g.read(4)
            if len(head) == 4 and head[0] == 0 and head[1] == 0:
                head += g.read(4 * head[3])
            dtype, dims, header_size, n_bytes = _parse_header(
                path, head, size * _MAX_DEFLATE_RATIO, where)
            total = header_size + n_bytes
            if isize is not None and total % (1 << 32) != isize:
                _isize_mismatch(path, dims, header_size, n_bytes, isize)
            if hasher is not None:
                hasher.update(head[:header_size])
            buf = np.empty(n_bytes, dtype=np.uint8)
            view = memoryview(buf)  # type: ignore[arg-type]
            filled = 0
            while filled < n_bytes:
                got = g.readinto(view[filled:filled + _CHUNK])
                if not got:
                    raise DataFormatError(
                        f"{path}: truncated data: the header declares {n_bytes:,} bytes of "
                        f"data, the gzip stream holds {filled:,}"
                    )
                if hasher is not None:
                    hasher.update(view[filled:filled + got])
                filled += got
            if g.read(1):
                raise DataFormatError(
                    f"{path}: the gzip stream holds more data than the header declares (shape "
                    f"{dims}, {n_bytes:,} bytes); the dimensions do not match the size"
                )
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataFormatError(
            f"{path}: bad or truncated gzip stream ({exc}); the file is damaged, download or "
            "copy it again"
        ) from exc
    return _as_array(path, buf, dtype, dims)


def _isize_mismatch(path, dims, header_size: int, n_bytes: int, isize: int):
    """Raise the error for a header that disagrees with the gzip trailer's recorded size."""
    if isize == header_size and n_bytes:
        raise DataFormatError(
            f"{path}: header only: the header declares shape {dims} ({n_bytes:,} bytes of "
            "data) but the gzip stream holds only the header; the file is truncated"
        )
    raise DataFormatError(
        f"{path}: the header declares shape {dims} ({header_size + n_bytes:,} bytes with the "
        f"header) but the gzip trailer records {isize:,} bytes (modulo 2**32); the dimensions do "
        "not match the size, or the file is truncated"
    )


def _as_array(path, buf: np.ndarray, dtype: np.dtype, dims) -> np.ndarray:
    """View the raw big-endian bytes as a native-order array of shape ``dims``, in place."""
    native = dtype.newbyteorder("=")
    array = buf.view(dtype)
    if not dtype.isnative and dtype.itemsize > 1:
        array.byteswap(inplace=True)
    try:
        return array.view(native).reshape(dims)
    except ValueError as exc:  # zero-size arrays whose other dimensions overflow
        raise DataFormatError(f"{path}: the header declares an impossible shape {dims} "
                              f"({exc})") from None


def write_idx(path: str | os.PathLike, array, *, compress: bool | None = None) -> None:
    """Write an array as an IDX file.

    Parameters
    ----------
    path : str or path-like
    array : array_like
        1 to 255 dimensions; dtype uint8, int8, int16, int32, float32 or float64 (the types IDX
        can store).
    compress : bool, optional
        gzip the file; by default, when the name ends in ``.gz``.

    Raises
    ------
    ValueError
        For a dtype or number of dimensions that IDX cannot store.
    """
    array = np.asarray(array)
    key = array.dtype.newbyteorder("=")
    if key not in _CODES:
        raise ValueError(f"IDX cannot store dtype {array.dtype}; use one of "
                         f"{sorted(str(d) for d in _CODES)}")
    if array.ndim < 1 or array.ndim > 255:
        raise ValueError(f"IDX stores 1 to 255 dimensions, got an array of shape {array.shape}")
    code = _CODES[key]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=IDX_TYPES[code]).tobytes()
    path = Path(path)
    if compress is None:
        compress = path.suffix == ".gz"
    path.write_bytes(gzip.compress(payload, mtime=0) if compress else payload)
