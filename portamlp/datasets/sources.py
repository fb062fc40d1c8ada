"""Where data set files come from: the embedded MNIST, or MNIST-format files found on disk.

The embedded MNIST files are checked against their SHA-256 sums the first time each is read in a
process (parsed files are then kept, read-only, in a small in-memory cache). Other data sets are looked up, in order, in: an explicit ``root``; ``$PORTAMLP_DATA/<name>``;
the user's cache directory; ``/usr/share/datasets/<name>`` (Debian's ``dataset-fashion-mnist``).
"""

from __future__ import annotations

import functools
import os
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import DataFormatError
from .idx import read_idx

__all__ = ["DATASETS", "SPLITS", "split_files", "find_files", "read_split", "clear_cache"]

#: File stems of each split in the MNIST layout (``.gz`` or raw).
SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

#: Named data sets in the MNIST layout: number of classes and a credit line.
DATASETS = {
    "mnist": {"classes": 10, "credit": "MNIST, Yann LeCun, Corinna Cortes and Christopher J.C. "
              "Burges (CC BY-SA 3.0)"},
    "fashion-mnist": {"classes": 10, "credit": "Fashion-MNIST, Zalando Research (MIT licence)"},
    "kmnist": {"classes": 10, "credit": "Kuzushiji-MNIST, CODH (CC BY-SA 4.0)"},
}

_EMBEDDED = resources.files(__package__) / "mnist"


def _embedded_sums() -> dict[str, str]:
    text = (_EMBEDDED / "SHA256SUMS-idx.txt").read_text()
    return {name: digest for digest, name in (line.split() for line in text.splitlines() if line)}


def _candidate_dirs(name: str, root) -> list[Path]:
    dirs = []
    if root is not None:
        dirs += [Path(root) / name, Path(root)]
    env = os.environ.get("PORTAMLP_DATA")
    if env:
        dirs.append(Path(env) / name)
    dirs.append(_cache_dir() / name)
    dirs.append(Path("/usr/share/datasets") / name)
    return dirs


def _cache_dir() -> Path:
    try:
        import platformdirs

        return Path(platformdirs.user_cache_dir("portamlp"))
    except ImportError:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return Path(base) / "portamlp"


def _locate(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / (stem + ".gz"), directory / stem):
        if candidate.is_file():
            return candidate
    return None


def find_files(name: str, split: str, root=None) -> tuple[Path, Path]:
    """Paths of the images and labels files of ``split`` for the data set ``name``.

    ``name`` is a known data set name or a directory in the MNIST layout.
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not valid; choose one of {list(SPLITS)}")
    stems = SPLITS[split]
    if name == "mnist" and root is None:
        return tuple(_EMBEDDED / (s + ".gz") for s in stems)  # type: ignore[return-value]
    if name not in DATASETS:
        directory = Path(name)
        if not directory.is_dir():
            raise ValueError(
                f"unknown data set {name!r}: not one of {sorted(DATASETS)} and not a directory "
                "holding MNIST-format files"
            )
        dirs = [directory]
    else:
        dirs = _candidate_dirs(name, root)
    for d in dirs:
        found = [_locate(d, s) for s in stems]
        if all(found):
            return found[0], found[1]
    searched = "\n  ".join(str(d) for d in dirs)
    raise FileNotFoundError(
        f"the {split} files of data set {name!r} ({stems[0]}[.gz], {stems[1]}[.gz]) were not "
        f"found. Searched:\n  {searched}\nTo get them: pass root=DIR pointing at a folder that "
        f"holds them; or set PORTAMLP_DATA to a folder with a {name}/ subfolder; or install "
        f"them system-wide (Debian: apt-get install dataset-{name})"
    )


@functools.lru_cache(maxsize=8)
def _read_cached(path_str: str, sha256: str | None) -> np.ndarray:
    try:
        array = read_idx(path_str, sha256=sha256)
    except DataFormatError as exc:
        if sha256 is not None and "SHA-256" in str(exc):
            raise DataFormatError(
                f"{exc}. The portamlp installation is damaged: reinstall it "
                "(pip install --force-reinstall portamlp)"
            ) from None
        raise
    array.flags.writeable = False
    return array


def read_split(name: str, split: str, root=None, n_classes: int | None = None):
    """Host arrays ``(images, labels)`` of one split, validated and read-only.

    Images keep the file's shape (n, 28, 28) and dtype (uint8); labels are uint8 class indices.
    """
    images_path, labels_path = find_files(name, split, root)
    sums = _embedded_sums() if name == "mnist" and root is None else {}
    images = _read_cached(str(images_path), sums.get(SPLITS[split][0]))
    labels = _read_cached(str(labels_path), sums.get(SPLITS[split][1]))
    if labels.ndim != 1:
        raise DataFormatError(f"{labels_path}: a labels file must be 1-D, got shape {labels.shape}")
    if images.ndim < 2:
        raise DataFormatError(f"{images_path}: an images file must have at least 2 dimensions, "
                              f"got shape {images.shape}")
    if images.shape[0] != labels.shape[0]:
        raise DataFormatError(
            f"{images_path} holds {images.shape[0]} images but {labels_path} holds "
            f"{labels.shape[0]} labels; the two files of a split must agree"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataFormatError(f"{labels_path}: labels must be integers, got {labels.dtype}")
    if n_classes is None:
        n_classes = DATASETS.get(name, {}).get("classes", 10)
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
        raise DataFormatError(
            f"{labels_path}: labels must lie in [0, {n_classes - 1}], found values in "
            f"[{int(labels.min())}, {int(labels.max())}]"
        )
    return images, labels


def clear_cache() -> None:
    """Forget the parsed data kept in memory (files are re-read and re-verified next time)."""
    _read_cached.cache_clear()
