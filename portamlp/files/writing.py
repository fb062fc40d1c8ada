"""Writing files safely: atomic writes, and checking a save path before any work.

Every file portamlp writes (model files, checkpoints, run records) goes through
:func:`atomic_write_bytes`: a temporary file in the same folder, flushed and fsynced, then
``os.replace``d, so a reader (or a crash) sees the old file or the new one, whole. An existing
file is replaced only with ``overwrite=True``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..checks import check_choice

__all__ = ["FORMATS", "atomic_write_bytes", "check_save_path", "format_of"]

#: Model file extensions and their formats.
FORMATS = {".json": "json", ".safetensors": "safetensors"}


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, overwrite: bool = False) -> None:
    """Write ``data`` to ``path`` atomically: a reader sees the old file or the new one, whole."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it")
    directory = path.parent if str(path.parent) else Path(".")
    mode = _file_mode(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, mode)  # mkstemp makes 0600; a saved model is shared like any file
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


def _file_mode(path: Path) -> int:
    """The permissions a new file gets here (0666 less the umask), or the replaced file's."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        pass
    try:  # Linux says the umask without changing it
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o644


def format_of(path: Path, format: str | None = None) -> str:
    """The format to write ``path`` in: ``format`` if given, else from the extension."""
    if format is not None:
        return check_choice("format", format, sorted(set(FORMATS.values())))
    if path.suffix.lower() not in FORMATS:
        raise ValueError(f"cannot tell the format of {path} from its extension; name it *.json "
                         "or *.safetensors, or pass format='json' or format='safetensors'")
    return FORMATS[path.suffix.lower()]


def check_save_path(path: str | os.PathLike, format: str | None = None, *,
                    overwrite: bool = False) -> Path:
    """Check, before any work, that a model can be saved to ``path``: a known format, no
    existing file (unless ``overwrite``), and a writable folder (created if missing)."""
    path = Path(path)
    format_of(path, format)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory; give a file name such as "
                                f"{path / 'model.json'}")
    folder = path.parent if str(path.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    if not os.access(folder, os.W_OK):
        raise PermissionError(f"cannot write to {folder}: permission denied")
    return path
