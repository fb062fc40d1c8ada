"""Downloading MNIST-format data sets from their official sources, verified before they are kept.

Only ever called when the caller asks (``download=True``). Each file is fetched with ``pooch``
(progress bar, pinned MD5 or SHA-256) into a private temporary folder inside the destination,
parsed as IDX, and only then moved into place with an atomic rename: a corrupt, truncated or
interrupted download never lands in the cache under its real name. Mirrors are tried in order.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ..errors import DataFormatError
from .idx import read_idx
from .registry import DATASETS, SPLITS, file_names

__all__ = ["cache_dir", "download"]


def cache_dir() -> Path:
    """The folder downloaded data sets are kept in: the user's cache directory for ``portamlp``.

    ``platformdirs.user_cache_dir("portamlp")`` (e.g. ``~/.cache/portamlp`` on Linux); without
    platformdirs, ``$XDG_CACHE_HOME/portamlp`` or ``~/.cache/portamlp``.
    """
    try:
        import platformdirs
    except ImportError:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return Path(base) / "portamlp"
    return Path(platformdirs.user_cache_dir("portamlp"))


def _import_pooch():
    try:
        import pooch
    except ImportError:
        raise ImportError("downloading data sets needs pooch: pip install pooch") from None
    return pooch


def download(name: str, split: str | None = None, *, dest: str | os.PathLike | None = None,
             mirrors: list[str] | None = None, progressbar: bool = True) -> Path:
    """Download the files of a named data set from its official source, verified, into ``dest``.

    Parameters
    ----------
    name : {"fashion-mnist", "kmnist"}
        A data set of :data:`DATASETS` with download mirrors (MNIST itself is embedded).
    split : {"train", "test"}, optional
        Only the two files of this split; both splits by default.
    dest : path, optional
        Folder to put the ``.gz`` files in; default ``cache_dir() / name``. Files already there
        are kept as they are.
    mirrors : list of str, optional
        Base URLs to try in order, instead of the data set's official ones.
    progressbar : bool
        Show a progress bar (tqdm) while downloading.

    Returns
    -------
    pathlib.Path
        The folder holding the files.

    Raises
    ------
    DataFormatError
        When a downloaded file does not match its pinned hash or is not a valid IDX file
        (nothing is kept).
    OSError
        When no mirror could be reached.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; the ones that can be downloaded are "
                         f"{sorted(n for n, e in DATASETS.items() if e['mirrors'])}")
    entry = DATASETS[name]
    mirrors = list(entry["mirrors"] if mirrors is None else mirrors)
    if not mirrors:
        raise ValueError(f"data set {name!r} has no download source (MNIST is embedded in "
                         "portamlp: nothing to download)")
    stems = file_names(split) if split is not None else tuple(s for p in SPLITS.values() for s in p)
    dest = Path(cache_dir() / name if dest is None else dest)
    missing = [s + ".gz" for s in stems if not (dest / (s + ".gz")).is_file()]
    if not missing:
        return dest
    for fname in missing:
        if not entry["hashes"].get(fname):
            raise ValueError(f"no pinned hash for {fname} of data set {name!r}; refusing to "
                             "download an unverifiable file")
    pooch = _import_pooch()
    created = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".download-", dir=dest))
    try:
        for fname in missing:
            staged = _fetch(pooch, fname, entry["hashes"][fname], mirrors, staging, progressbar)
            os.replace(staged, dest / fname)  # atomic: the file appears whole or not at all
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created and not any(dest.iterdir()):
            dest.rmdir()
    return dest


def _fetch(pooch, fname: str, known_hash: str, mirrors: list[str], staging: Path,
           progressbar: bool) -> Path:
    """Fetch ``fname`` from the first mirror that serves it intact; return the staged path."""
    corrupt, unreachable = [], []
    for base in mirrors:
        url = base if base.endswith(fname) else base.rstrip("/") + "/" + fname
        try:
            staged = Path(pooch.retrieve(url, known_hash=known_hash, fname=fname, path=staging,
                                         progressbar=progressbar))
            read_idx(staged)  # the hash matched: make sure it is also a sound IDX file
            return staged
        except ValueError as exc:  # pooch's hash mismatch, or DataFormatError
            corrupt.append(f"{url}: {exc}")
        except OSError as exc:  # requests' errors derive from OSError
            unreachable.append(f"{url}: {exc}")
        for leftover in staging.iterdir():
            leftover.unlink()
    if corrupt:
        raise DataFormatError(
            f"the download of {fname} is corrupt or truncated (expected {known_hash}); nothing "
            "was kept. Tried:\n  " + "\n  ".join(corrupt + unreachable)
        )
    raise OSError(
        f"could not download {fname}; tried:\n  " + "\n  ".join(unreachable)
        + "\nCheck the network connection, or get the files another way (root=, PORTAMLP_DATA)"
    )
