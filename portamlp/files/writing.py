"""Writing files safely: atomic writes, and checking a save path before any work.

Every file portamlp writes (model files, checkpoints, run records) goes through
:func:`atomic_write_bytes`: a temporary file in the same folder, flushed and fsynced, then put
in place, so a reader (or a crash) sees the old file or the new one, whole. An existing file is
replaced only with ``overwrite=True`` (``os.replace``); without it the temporary file is
*linked* into place, which fails if anything — a file, a folder, even a dangling symbolic
link — took the name in the meantime: of two processes saving to one path, one wins and the
other is told. A failure names the path and the reason.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from ..checks import check_choice

__all__ = ["FORMATS", "TEMPORARY_SUFFIX", "atomic_write_bytes", "check_save_path",
           "check_writable_folder", "format_of", "exists", "temporary_files"]

#: The ending of the temporary files a write makes beside its target (``.<name>.XXXX.tmp``).
TEMPORARY_SUFFIX = ".tmp"


def exists(path: str | os.PathLike) -> bool:
    """Whether anything is at ``path``: a file, a folder, or a symbolic link, even a dangling
    one (``Path.exists`` follows links and says False for those)."""
    return os.path.lexists(path)


def temporary_files(path: str | os.PathLike) -> list[Path]:
    """The temporary files that writes of ``path`` leave beside it when killed mid-write."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    return sorted(folder.glob(f".{path.name}.*{TEMPORARY_SUFFIX}"))

#: Model file extensions and their formats.
FORMATS = {".json": "json", ".safetensors": "safetensors"}


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, overwrite: bool = False) -> None:
    """Write ``data`` to ``path`` atomically: a reader sees the old file or the new one, whole.

    Raises
    ------
    FileExistsError
        Something is at ``path`` and ``overwrite`` is False (checked again at the very moment
        the file is put in place).
    OSError
        The write failed (a full disk, a folder that cannot be written, ...): the message names
        ``path`` and the reason, and nothing is left behind.
    """
    path = Path(path)
    if exists(path) and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it")
    directory = path.parent if str(path.parent) else Path(".")
    mode = _file_mode(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX,
                                   dir=directory)
    except OSError as exc:
        raise _named(exc, path) from exc
    try:
        os.fchmod(fd, mode)  # mkstemp makes 0600; a saved model is shared like any file
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_into_place(tmp, path)
    except FileExistsError:
        raise FileExistsError(f"{path} already exists (another writer took the name first); "
                              "pass overwrite=True to replace it") from None
    except OSError as exc:
        raise _named(exc, path) from exc
    finally:
        try:
            os.unlink(tmp)  # after os.replace or a link, the name is already in place
        except FileNotFoundError:
            pass
    try:  # make the rename itself durable
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def _link_into_place(tmp: str, path: Path) -> None:
    """Put ``tmp`` at ``path`` only if nothing is there: ``os.link`` fails atomically when the
    name is taken. Where a file system has no hard links, the check and the rename are two
    steps (a narrow race, said here rather than hidden)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV,
                             errno.ENOSYS):
            raise
        if exists(path):
            raise FileExistsError(str(path)) from None
        os.replace(tmp, path)


def _named(exc: OSError, path: Path, what: str = "write") -> OSError:
    """``exc`` as an error of the same kind (and errno) whose message names ``path`` and the
    reason: ``cannot write net.json: No space left on device``."""
    named = type(exc)(f"cannot {what} {path}: {exc.strerror or exc}")
    named.errno = exc.errno
    return named


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
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory; give a file name such as "
                                f"{path / 'model.json'}")
    if exists(path) and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it")
    folder = path.parent if str(path.parent) else Path(".")
    check_writable_folder(folder)
    return path


def check_writable_folder(folder: str | os.PathLike) -> Path:
    """Make ``folder`` (and its parents) if missing, and check that a file can be written in
    it, by writing and removing one: a read-only folder, a file in the way or ``/proc`` is
    found before any work, not at the first save."""
    folder = Path(folder)
    for parent in (folder, *folder.parents):
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"cannot write in {folder}: {parent} is a file, not a "
                                         "folder")
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".portamlp-probe.", suffix=TEMPORARY_SUFFIX,
                                     dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise _named(exc, folder, "write in") from None
    return folder
