"""Saving and loading networks: one entry point for every model file portamlp reads.

:func:`save` writes portamlp's JSON (:mod:`.json_format`) or safetensors
(:mod:`.safetensors_format`), by the extension or ``format=``, atomically (:mod:`.writing`).
:func:`load` reads those, the original Rust program's JSON, and the network inside a training
checkpoint (:mod:`.checkpoints`). Nothing is ever unpickled: a model file is data, validated
field by field (:mod:`.fields`); a malformed one raises :class:`~portamlp.ModelFormatError`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..backends import Backend
from ..errors import ModelFormatError
from ..nn.network import Network
from . import checkpoints
from .fields import MAX_FILE_BYTES
from .json_format import encode_json, from_document, read_json, to_document
from .safetensors_format import (
    check_model_header,
    encode_safetensors,
    from_tensors,
    read_safetensors,
    to_tensors,
)
from .writing import FORMATS, atomic_write_bytes, format_of

__all__ = ["save", "load"]


def save(network: Network, path: str | os.PathLike, *, format: str | None = None,
         overwrite: bool = False) -> None:
    """Save ``network`` to ``path``, atomically.

    The format follows the extension (``.json`` or ``.safetensors``) or ``format=``. An existing
    file is replaced only with ``overwrite=True``.
    """
    path = Path(path)
    if format_of(path, format) == "safetensors":
        data = encode_safetensors(*to_tensors(network))
    else:
        data = encode_json(to_document(network))
    atomic_write_bytes(path, data, overwrite=overwrite)


def _starts_like_onnx(path: Path) -> bool:
    """Whether a file begins as an ONNX model does (protobuf field 1, the IR version)."""
    try:
        with path.open("rb") as f:
            return f.read(1) == b"\x08"
    except OSError:
        return False


def load(path: str | os.PathLike, backend: str | Backend | None = None, device: Any = None, *,
         format: str | None = None, activation: str | None = None, cost: str | None = None,
         max_bytes: int = MAX_FILE_BYTES) -> Network:
    """Load a network saved by :func:`save`, by the original Rust program, or from a checkpoint.

    Parameters
    ----------
    path : str or path-like
        A model file, or a training checkpoint (its directory or its ``checkpoint.safetensors``):
        then the network as checkpointed is loaded.
    backend, device : optional
        Where to put the parameters (see :func:`portamlp.get_backend`).
    format : {"json", "safetensors"}, optional
        Default: from the extension (anything but ``.safetensors`` is read as JSON).
    activation, cost : str, optional
        For safetensors files without portamlp's metadata (e.g. saved from PyTorch).
    max_bytes : int
        Refuse larger files (default 2 GiB).

    Raises
    ------
    ModelFormatError
        The file is not a valid model file; the message names the field and what was expected.
    FileNotFoundError
        No such file.
    IsADirectoryError
        A folder that is not a checkpoint's; the message names the model files in it.

    Examples
    --------
    >>> import portamlp
    >>> net = portamlp.Network.initialize((784, 30, 10), seed=0)
    >>> net.save("net.json", overwrite=True)
    >>> same = portamlp.load("net.json")
    >>> same.layers, same.activation, same.cost
    ((784, 30, 10), 'sigmoid', 'quadratic')
    """
    path = Path(path)
    if path.is_dir() and checkpoints.checkpoint_path(path).is_file():
        path = checkpoints.checkpoint_path(path)
    if path.is_dir():
        raise IsADirectoryError(_folder_message(path))
    if path.suffix.lower() == ".onnx" and format is None and _starts_like_onnx(path):
        raise ModelFormatError(
            f"{path}: an ONNX model. portamlp exports ONNX for other runtimes but reads its own "
            "model files (.json, .safetensors): run it with ONNX Runtime "
            "(onnxruntime.InferenceSession, see the documentation's 'Model files, PyTorch and "
            "ONNX'), or give portamlp the model file it was exported from")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    kind = format or ("safetensors" if path.suffix.lower() == ".safetensors" else "json")
    if kind == "safetensors":
        def check_header(entries, meta):  # before any tensor data is read
            if checkpoints.is_checkpoint(meta):
                checkpoints.check_header(entries, meta, path)
            else:
                check_model_header(entries, meta, path, activation, cost)

        tensors, meta = read_safetensors(path, max_bytes, check_header)
        if checkpoints.is_checkpoint(meta):
            fields = checkpoints.network_fields(tensors, meta, path)
        else:
            fields = from_tensors(tensors, meta, path, activation, cost)
    else:
        format_of(path, kind)
        if activation is not None or cost is not None:
            raise ValueError("activation= and cost= are for safetensors files without portamlp's "
                             f"metadata; {path} is JSON, which names its own")
        fields = from_document(read_json(path, max_bytes), path)
    return Network.from_arrays(fields.pop("weights"), fields.pop("biases"), backend=backend,
                               device=device, **fields)


def _folder_message(folder: Path) -> str:
    """What to pass instead of a folder that holds no checkpoint: the model files in it."""
    try:
        names = sorted(p.name for p in folder.iterdir()
                       if p.suffix.lower() in FORMATS and not p.name.endswith(".run.json")
                       and p.is_file())
    except OSError:  # a folder that cannot be listed
        names = []
    if names:
        listed = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        instead = f"pass one of the model files in it ({listed})"
    else:
        instead = (f"it holds no model file ({', '.join('*' + s for s in FORMATS)}); pass the "
                   "path of a model file")
    return (f"{folder} is a folder, not a model file: {instead}, or a checkpoint folder (one "
            f"holding {checkpoints.CHECKPOINT_NAME})")
