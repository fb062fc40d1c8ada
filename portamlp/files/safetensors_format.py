"""safetensors model files, read and written by the official ``safetensors`` package.

They hold the tensors under the names a PyTorch ``nn.Sequential(Linear, activation, Linear,
...)`` gives them — ``"0.weight"``, ``"0.bias"``, ``"2.weight"``, ... — so
``model.load_state_dict(safetensors.torch.load_file(path))`` works, and portamlp's own fields
(``format``, ``version``, ``layers``, ``activation``, ``cost``, ``preprocessing``) in the header
metadata. A state dict saved from PyTorch without that metadata loads with
``portamlp.load(path, activation=..., cost=...)``. F32 and F64 tensors load as they are; F16
tensors (``model.half()``) load as float32, exactly; BF16 tensors are refused with a
:class:`~portamlp.ModelFormatError` (save ``model.float()`` instead).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ModelFormatError
from .fields import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MAX_FILE_BYTES,
    check_layers_field,
    check_name,
    fail,
    parse_parameters,
    preprocessing_field,
)

if TYPE_CHECKING:
    from ..nn.network import Network

__all__ = ["encode_safetensors", "read_safetensors", "to_tensors", "from_tensors",
           "MAX_HEADER_BYTES"]

#: Largest safetensors header accepted (bytes).
MAX_HEADER_BYTES = 16 << 20
_READ_DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float32}


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


def read_safetensors(path: str | os.PathLike,
                     max_bytes: int = MAX_FILE_BYTES) -> tuple[dict[str, np.ndarray],
                                                               dict[str, str]]:
    """Read a safetensors file with the official package: ``(tensors, metadata)`` on the host.

    Every malformed file raises :class:`~portamlp.ModelFormatError` naming the problem; F16
    tensors come back as float32, BF16 and integer tensors are refused.
    """
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise fail(path, f"the file is {size:,} bytes, over the {max_bytes:,}-byte limit "
                         "(pass max_bytes= to allow it)")
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8:
        raise fail(path, f"not a safetensors file: {size} bytes, the header length alone "
                         "takes 8 (truncated?)")
    n = int.from_bytes(head, "little")
    if n > min(size - 8, MAX_HEADER_BYTES):
        raise fail(path, f"safetensors header length {n:,} exceeds the file ({size - 8:,} "
                         f"bytes after the length) or the {MAX_HEADER_BYTES:,}-byte limit; the "
                         "file is truncated or corrupt")
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="np") as f:
            metadata = f.metadata() or {}
            tensors = {}
            for name in f.keys():
                dtype = f.get_slice(name).get_dtype()
                if dtype not in _READ_DTYPES:
                    hint = " (save model.float() from PyTorch)" if dtype == "BF16" else ""
                    raise fail(path, f"tensor {name!r} has dtype {dtype}; portamlp reads F32, "
                                     f"F64 and F16{hint}")
                tensors[name] = np.asarray(f.get_tensor(name), dtype=_READ_DTYPES[dtype])
    except ModelFormatError:
        raise
    except Exception as exc:  # SafetensorError, and anything a hostile header provokes
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise fail(path, f"not a valid safetensors file ({message})") from None
    return tensors, dict(metadata)


def _sequential_pairs(tensors, path):
    """``[(weight, bias), ...]`` from names ``"<i>.weight"`` / ``"<i>.bias"``, ordered by ``i``."""
    indices: dict[int, set] = {}
    for name in tensors:
        stem, _, kind = name.rpartition(".")
        if kind not in ("weight", "bias") or not stem.isdigit():
            hint = ""
            if name.startswith(("network.", "optimizer.")):
                hint = ("; this looks like a training checkpoint: load its directory, "
                        "portamlp.load('DIR'), or the file itself with a portamlp that reads "
                        "checkpoints")
            raise fail(path, f"unexpected tensor {name!r}; expected names like '0.weight', "
                             f"'0.bias', '2.weight' (an nn.Sequential of Linear layers){hint}")
        indices.setdefault(int(stem), set()).add(kind)
    if not indices:
        raise fail(path, "the file holds no tensors")
    pairs = []
    for i in sorted(indices):
        if indices[i] != {"weight", "bias"}:
            missing = ({"weight", "bias"} - indices[i]).pop()
            raise fail(path, f"missing tensor '{i}.{missing}'")
        pairs.append((tensors[f"{i}.weight"], tensors[f"{i}.bias"]))
    return pairs


def from_tensors(tensors: dict[str, np.ndarray], meta: dict[str, str], path,
                 activation: str | None = None, cost: str | None = None) -> dict[str, Any]:
    """The keyword arguments of :meth:`Network.from_arrays` from a safetensors file's tensors
    and metadata (``activation``/``cost`` for files without portamlp's metadata)."""
    if meta.get("format", FORMAT_NAME) != FORMAT_NAME:
        raise fail(path, f"metadata 'format' is {meta['format']!r}, expected {FORMAT_NAME!r}")
    if "version" in meta and meta["version"] != str(FORMAT_VERSION):
        raise fail(path, f"format version {meta['version']} is not supported (this portamlp "
                         f"reads version {FORMAT_VERSION}); upgrade portamlp")
    pairs = _sequential_pairs(tensors, path)
    layers = [int(pairs[0][0].shape[1])] if pairs[0][0].ndim == 2 else []
    layers += [int(w.shape[0]) for w, _ in pairs]
    if "layers" in meta:
        try:
            declared = json.loads(meta["layers"])
        except ValueError:
            raise fail(path, f"metadata 'layers' is not a JSON list: {meta['layers']!r}") from None
        if declared != layers:
            raise fail(path, f"metadata 'layers' {declared} does not match the tensors' shapes "
                             f"(which give {layers})")
    check_layers_field(layers, path)
    resolved = {}
    for key, given in (("activation", activation), ("cost", cost)):
        stored = meta.get(key)
        if stored is not None and given is not None and stored != given:
            raise ValueError(f"{path}: the file says {key}={stored!r} but {key}={given!r} was "
                             "passed; leave it out")
        value = stored or given
        if value is None:
            from ..nn.activations import ACTIVATIONS
            from ..nn.costs import COSTS

            choices = ACTIVATIONS if key == "activation" else COSTS
            raise fail(path, f"metadata {key!r} is missing; pass {key}=... to portamlp.load "
                             f"(one of {list(choices)})")
        resolved[key] = check_name(key, value, path)
    dtypes = {w.dtype for pair in pairs for w in pair}
    if len(dtypes) != 1:
        raise fail(path, f"tensors must all have one dtype, got {sorted(map(str, dtypes))}")
    preprocessing = None
    if "preprocessing" in meta:
        try:
            raw = json.loads(meta["preprocessing"])
        except ValueError:
            raise fail(path, "metadata 'preprocessing' is not valid JSON") from None
        preprocessing = preprocessing_field(raw, path)
    doc = {"weights": [w for w, _ in pairs], "biases": [b for _, b in pairs]}
    weights, biases = parse_parameters(doc, layers, path)
    return dict(weights=weights, biases=biases, activation=resolved["activation"],
                cost=resolved["cost"], dtype=dtypes.pop().name, preprocessing=preprocessing)
