"""Where data set files come from: the embedded MNIST, or MNIST-format files found on disk.

The embedded MNIST files are checked against their SHA-256 sums the first time each is read in a
process; parsed files are then kept, read-only, in a small in-memory cache. Other data sets are
looked up, in order, in:

1. an explicit ``root`` (``root/<name>/`` or ``root`` itself);
2. ``$PORTAMLP_DATA/<name>/``;
3. the user's cache directory (:func:`portamlp.datasets.cache_dir`), where downloads go;
4. ``/usr/share/datasets/<name>/`` (Debian's ``dataset-fashion-mnist`` installs there);

and, only when the caller passes ``download=True``, fetched from the official source into 3.
"""

from __future__ import annotations

import functools
import os
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import DataFormatError
from . import fetch as _fetch
from .idx import read_idx
from .registry import DATASETS, SPLITS, file_names
from .registry import n_classes as registry_n_classes

__all__ = [
    "DATASETS",
    "SPLITS",
    "EMBEDDED_DIR",
    "SYSTEM_DATA_DIR",
    "clear_cache",
    "embedded_sums",
    "find_files",
    "read_split",
    "register_cache",
    "search_dirs",
]

#: Folder of system-wide data sets (Debian's ``dataset-*`` packages).
SYSTEM_DATA_DIR = Path("/usr/share/datasets")

#: Folder of the MNIST files embedded in the package.
EMBEDDED_DIR = resources.files(__package__) / "mnist"


def embedded_sums() -> dict[str, str]:
    """SHA-256 sums of the embedded MNIST files (decompressed), by file stem."""
    text = (EMBEDDED_DIR / "SHA256SUMS-idx.txt").read_text()
    return {name: digest for digest, name in (line.split() for line in text.splitlines() if line)}


def search_dirs(name: str, root=None) -> list[tuple[Path, str]]:
    """Folders searched for data set ``name``, in order, each with where it comes from."""
    dirs = []
    if root is not None:
        dirs += [(Path(root) / name, "root="), (Path(root), "root=")]
    env = os.environ.get("PORTAMLP_DATA")
    if env:
        dirs.append((Path(env) / name, "$PORTAMLP_DATA"))
    dirs.append((_fetch.cache_dir() / name, "user cache; download=True puts files here"))
    dirs.append((SYSTEM_DATA_DIR / name, "system-wide, e.g. Debian packages"))
    return dirs


def _locate(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / (stem + ".gz"), directory / stem):
        if candidate.is_file():
            return candidate
    return None


def find_files(name: str, split: str, root=None, *, download: bool = False,
               progressbar: bool = True) -> tuple[Path, Path]:
    """Paths of the images and labels files of one split of a data set.

    Parameters
    ----------
    name : str
        ``"mnist"`` (embedded unless ``root`` is given), another name of :data:`DATASETS`, or a
        directory holding the files in the MNIST layout.
    split : {"train", "test"}
    root : path, optional
        Folder searched first (``root/<name>/``, then ``root`` itself).
    download : bool
        When the files are nowhere to be found, fetch them from the data set's official source
        into the user cache (verified against pinned hashes). Off by default: nothing touches
        the network unless asked.
    progressbar : bool
        Show a progress bar while downloading.

    Returns
    -------
    (images_path, labels_path)

    Raises
    ------
    FileNotFoundError
        When the files are not found (and ``download`` is False); the message lists the folders
        searched and the ways to get the data.
    DataFormatError, OSError
        When ``download`` is True and the download is corrupt, or no source can be reached.
    """
    stems = file_names(split)
    if name == "mnist" and root is None:
        return tuple(EMBEDDED_DIR / (s + ".gz") for s in stems)  # type: ignore[return-value]
    if name not in DATASETS:
        directory = Path(name)
        if not directory.is_dir():
            raise ValueError(
                f"unknown data set {name!r}: not one of {sorted(DATASETS)} and not a directory "
                "holding MNIST-format files"
            )
        a, b = (_locate(directory, s) for s in stems)
        if a is not None and b is not None:
            return a, b
        raise FileNotFoundError(
            f"the {split} files ({stems[0]}[.gz], {stems[1]}[.gz]) were not found in {directory}"
        )
    dirs = search_dirs(name, root)
    for d, _ in dirs:
        a, b = (_locate(d, s) for s in stems)
        if a is not None and b is not None:
            return a, b
    if download and DATASETS[name]["mirrors"]:
        d = _fetch.download(name, split, progressbar=progressbar)
        return d / (stems[0] + ".gz"), d / (stems[1] + ".gz")
    raise FileNotFoundError(_not_found_message(name, split, stems, dirs))


def _not_found_message(name: str, split: str, stems, dirs) -> str:
    searched = "\n  ".join(f"{d}  ({why})" for d, why in dirs)
    if not os.environ.get("PORTAMLP_DATA"):
        searched += "\n  ($PORTAMLP_DATA is not set)"
    entry = DATASETS[name]
    ways = [
        f"1. pass root=DIR, a folder holding the files (or a {name}/ subfolder of it);",
        f"2. set PORTAMLP_DATA=DIR, a folder with a {name}/ subfolder holding them;",
    ]
    if entry["mirrors"]:
        third = (f"3. download them: pass download=True to fetch them from "
                 f"{entry['mirrors'][0]} into {_fetch.cache_dir() / name}, verified against "
                 "pinned hashes")
        if entry.get("debian"):
            third += f"; or install them system-wide: sudo apt-get install {entry['debian']}"
        ways.append(third + ".")
    elif entry.get("debian"):
        ways.append(f"3. install them system-wide: sudo apt-get install {entry['debian']}.")
    elif name == "mnist":
        ways.append("3. omit root= to use the MNIST embedded in portamlp.")
    return (
        f"the {split} files of data set {name!r} ({stems[0]}[.gz], {stems[1]}[.gz]) were not "
        f"found. Searched, in order:\n  {searched}\nTo get them:\n  " + "\n  ".join(ways)
    )


@functools.lru_cache(maxsize=8)
def _read_cached(path_str: str, sha256: str | None, embedded: bool, stamp) -> np.ndarray:
    """Parse (and verify) a file once per process; ``stamp`` changes when the file does."""
    try:
        array = read_idx(path_str, sha256=sha256)
    except DataFormatError as exc:
        if embedded:
            raise DataFormatError(
                f"{exc}. The portamlp installation is damaged: reinstall it "
                "(pip install --force-reinstall portamlp)"
            ) from None
        raise
    array.flags.writeable = False
    return array


def _read(path, sha256: str | None, embedded: bool) -> np.ndarray:
    try:
        st = os.stat(path)
        stamp = (st.st_size, st.st_mtime_ns)
    except OSError:
        stamp = None  # read_idx reports the missing file
    return _read_cached(str(path), sha256, embedded, stamp)


def read_split(name: str, split: str, root=None, n_classes: int | None = None, *,
               download: bool = False, progressbar: bool = True):
    """Host arrays ``(images, labels)`` of one split, validated and read-only.

    Parameters
    ----------
    name, split, root, download, progressbar
        As for :func:`find_files`.
    n_classes : int, optional
        Labels must lie in ``[0, n_classes)``; default: the data set's number of classes (10).

    Returns
    -------
    images : numpy.ndarray of shape (n, 28, 28)
        The file's dtype (uint8 for MNIST-format data sets).
    labels : numpy.ndarray of shape (n,)
        Integer class indices (uint8 in the files).

    Raises
    ------
    DataFormatError
        When a file is malformed, the two files disagree on the count, or a label is out of
        range; for the embedded MNIST, also when a SHA-256 does not match (damaged installation).
    """
    images_path, labels_path = find_files(name, split, root, download=download,
                                          progressbar=progressbar)
    embedded = name == "mnist" and root is None
    sums = embedded_sums() if embedded else {}
    stems = file_names(split)
    images = _read(images_path, sums.get(stems[0]), embedded)
    labels = _read(labels_path, sums.get(stems[1]), embedded)
    _check_split(images, labels, images_path, labels_path,
                 registry_n_classes(name) if n_classes is None else n_classes)
    return images, labels


def _check_split(images, labels, images_path, labels_path, n_classes: int) -> None:
    """The two files of a split must agree on the count, and labels must be class indices."""
    if labels.ndim != 1:
        raise DataFormatError(f"{labels_path}: a labels file must be 1-D, got shape {labels.shape}")
    if images.ndim < 2:
        raise DataFormatError(f"{images_path}: an images file must have at least 2 dimensions, "
                              f"got shape {images.shape}")
    if images.shape[0] != labels.shape[0]:
        raise DataFormatError(
            f"count mismatch: {images_path} holds {images.shape[0]} images but {labels_path} "
            f"holds {labels.shape[0]} labels; the two files of a split must agree"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataFormatError(f"{labels_path}: labels must be integers, got {labels.dtype}")
    if labels.size:
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= n_classes:
            bad = low if low < 0 else high
            raise DataFormatError(
                f"{labels_path}: label {bad} is out of range: labels must lie in "
                f"[0, {n_classes - 1}] (found [{low}, {high}])"
            )


_CACHE_CLEARERS = [_read_cached.cache_clear]


def register_cache(clear) -> None:
    """Add a function that empties one of this package's in-memory caches (see
    :func:`clear_cache`)."""
    _CACHE_CLEARERS.append(clear)


def clear_cache() -> None:
    """Forget the parsed data kept in memory (files are re-read and re-verified next time)."""
    for clear in _CACHE_CLEARERS:
        clear()
