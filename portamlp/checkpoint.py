"""Checkpoints: everything needed to continue a run exactly where it stopped, in one file.

``DIR/checkpoint.safetensors`` holds the network's parameters (``network.0.weight``, ...), the
optimizer's state buffers (``optimizer.velocity.0``, ...) and, in the header metadata, a JSON
document with the run's configuration, the position to continue from (epoch and mini-batch), the
host random generator's state at the start of that epoch, the history so far and the partial sums
of an interrupted epoch. The file is written atomically, so a crash at any instant leaves the
previous checkpoint or the new one, never a torn file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import safetensors
from .backend import Backend, to_numpy
from .errors import ModelFormatError
from .io import MAX_FILE_BYTES, atomic_write_bytes

__all__ = ["CHECKPOINT_NAME", "Checkpoint", "save_checkpoint", "load_checkpoint", "checkpoint_path"]

CHECKPOINT_NAME = "checkpoint.safetensors"
_KIND = "portamlp-checkpoint"
_VERSION = 1


@dataclass
class Checkpoint:
    """A loaded checkpoint: host parameters and optimizer buffers, and the run's state."""

    weights: list
    biases: list
    optimizer_arrays: dict[str, Any]
    state: dict[str, Any]


def checkpoint_path(directory) -> Path:
    return Path(directory) / CHECKPOINT_NAME


def save_checkpoint(directory, network, optimizer, state: dict[str, Any]) -> Path:
    """Write ``network``, ``optimizer`` and ``state`` (JSON-ready) to ``directory`` atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for l, (w, b) in enumerate(zip(network.weights, network.biases)):
        tensors[f"network.{2 * l}.weight"] = to_numpy(w)
        tensors[f"network.{2 * l}.bias"] = to_numpy(b)
    for name, array in optimizer.state_arrays().items():
        tensors[f"optimizer.{name}"] = to_numpy(array)
    document = dict(state, kind=_KIND, version=_VERSION,
                    network={"layers": list(network.layers), "activation": network.activation,
                             "cost": network.cost, "dtype": network.dtype},
                    optimizer_scalars=optimizer.scalars())
    data = safetensors.encode(tensors, {"portamlp.checkpoint": json.dumps(document)})
    path = checkpoint_path(directory)
    atomic_write_bytes(path, data, overwrite=True)
    return path


def load_checkpoint(directory) -> Checkpoint:
    """Read and validate ``directory``'s checkpoint (raises ``ModelFormatError`` if malformed)."""
    path = checkpoint_path(directory)
    if not path.is_file():
        raise FileNotFoundError(f"{directory}: no checkpoint ({CHECKPOINT_NAME}) to resume from")
    tensors, meta = safetensors.read(path, MAX_FILE_BYTES)
    try:
        state = json.loads(meta["portamlp.checkpoint"])
    except (KeyError, ValueError):
        raise ModelFormatError(f"{path}: not a portamlp checkpoint (no run state in its "
                               "metadata)") from None
    if not isinstance(state, dict) or state.get("kind") != _KIND:
        raise ModelFormatError(f"{path}: not a portamlp checkpoint")
    if state.get("version") != _VERSION:
        raise ModelFormatError(f"{path}: checkpoint version {state.get('version')} is not "
                               f"supported (this portamlp reads version {_VERSION})")
    n_layers = len(state["network"]["layers"]) - 1
    try:
        weights = [tensors[f"network.{2 * l}.weight"] for l in range(n_layers)]
        biases = [tensors[f"network.{2 * l}.bias"] for l in range(n_layers)]
    except KeyError as exc:
        raise ModelFormatError(f"{path}: missing tensor {exc.args[0]!r}") from None
    prefix = "optimizer."
    opt = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    return Checkpoint(weights, biases, opt, state)


def arrays_to_backend(arrays: dict[str, Any], backend: Backend, dtype: str) -> dict[str, Any]:
    return {k: backend.asarray(v.copy(), dtype) for k, v in arrays.items()}
