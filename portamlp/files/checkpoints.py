"""Checkpoints: everything needed to continue a run exactly where it stopped, in one file.

``DIR/checkpoint.safetensors`` holds the network's parameters (``network.0.weight``, ...), the
optimizer's state buffers (``optimizer.velocity.0``, ...) and, in the header metadata, a JSON
document with the run's configuration, its :class:`~portamlp.config.RunPosition` (epoch and
mini-batch to continue from, the host random generator's state at the start of that epoch, the
history so far and the partial sums of an interrupted epoch) and the state of the schedule and
of early stopping. The file is written atomically, so a crash at any instant leaves the previous
checkpoint or the new one, never a torn file. Everything read is validated: a malformed
checkpoint raises :class:`~portamlp.ModelFormatError` naming the file and the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..backends import Backend, to_numpy
from ..errors import ModelFormatError
from ..nn.network import Network
from ..training.config import RunPosition
from .models import (
    CHECKPOINT_KEY,
    CHECKPOINT_NAME,
    MAX_FILE_BYTES,
    atomic_write_bytes,
    checkpoint_document,
    checkpoint_network_fields,
    encode_safetensors,
    read_safetensors,
)

__all__ = ["CHECKPOINT_NAME", "Checkpoint", "save_checkpoint", "load_checkpoint",
           "checkpoint_path"]

_KIND = "portamlp-checkpoint"
_VERSION = 1


@dataclass
class Checkpoint:
    """A loaded, validated checkpoint (host arrays)."""

    path: Path
    #: Keyword arguments of :meth:`Network.from_arrays` (weights, biases, activation, ...).
    network_fields: dict[str, Any]
    optimizer_arrays: dict[str, np.ndarray]
    optimizer_scalars: dict[str, Any]
    config: dict[str, Any]
    position: RunPosition
    #: True when the run trained on the caller's own arrays (they must be passed again).
    own_data: bool
    #: Further state of the run (learning-rate schedule, early stopping).
    extra: dict[str, Any] = field(default_factory=dict)
    #: Further arrays of the run (the best parameters kept by early stopping), by name.
    extra_arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def network(self, backend: str | Backend | None = None, device: Any = None) -> Network:
        """The checkpointed network on a backend."""
        fields = dict(self.network_fields)
        return Network.from_arrays(fields.pop("weights"), fields.pop("biases"), backend=backend,
                                   device=device, **fields)

    def optimizer_state(self, optimizer, backend: Backend) -> None:
        """Load the optimizer's buffers and scalars into ``optimizer``, after checking that they
        are the ones it has (names, shapes)."""
        expected = optimizer.state_arrays()
        if set(expected) != set(self.optimizer_arrays):
            raise ModelFormatError(
                f"{self.path}: the optimizer state holds {sorted(self.optimizer_arrays)}, but "
                f"this run's optimizer needs {sorted(expected)}")
        for name, array in expected.items():
            if tuple(array.shape) != self.optimizer_arrays[name].shape:
                raise ModelFormatError(
                    f"{self.path}: optimizer tensor {name!r} has shape "
                    f"{self.optimizer_arrays[name].shape}, expected {tuple(array.shape)}")
        dtype = self.network_fields["dtype"]
        optimizer.load_state({k: backend.asarray(v.copy(), dtype)
                              for k, v in self.optimizer_arrays.items()}, self.optimizer_scalars)


def checkpoint_path(directory) -> Path:
    """The checkpoint file of a directory."""
    return Path(directory) / CHECKPOINT_NAME


def save_checkpoint(directory, network: Network, optimizer, config: dict[str, Any],
                    position: RunPosition, *, own_data: bool,
                    extra: dict[str, Any] | None = None,
                    extra_arrays: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint of the run to ``directory`` atomically; return the file's path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for l, (w, b) in enumerate(zip(network.weights, network.biases)):
        tensors[f"network.{2 * l}.weight"] = to_numpy(w)
        tensors[f"network.{2 * l}.bias"] = to_numpy(b)
    for name, array in optimizer.state_arrays().items():
        tensors[f"optimizer.{name}"] = to_numpy(array)
    for name, array in (extra_arrays or {}).items():
        tensors[f"state.{name}"] = to_numpy(array)
    preprocessing = network.preprocessing.to_dict() if network.preprocessing else None
    document = {
        "kind": _KIND, "version": _VERSION, "config": config, "position": position.to_dict(),
        "own_data": own_data, "extra": extra or {},
        "network": {"layers": list(network.layers), "activation": network.activation,
                    "cost": network.cost, "dtype": network.dtype,
                    "preprocessing": preprocessing},
        "optimizer_scalars": optimizer.scalars(),
    }
    data = encode_safetensors(tensors, {CHECKPOINT_KEY: json.dumps(document)})
    path = checkpoint_path(directory)
    atomic_write_bytes(path, data, overwrite=True)
    return path


def load_checkpoint(location) -> Checkpoint:
    """Read and validate a checkpoint (its directory or its file).

    Raises
    ------
    FileNotFoundError
        No checkpoint there.
    ModelFormatError
        The checkpoint is malformed; the message names the file and the field.
    """
    location = Path(location)
    path = location if location.is_file() else checkpoint_path(location)
    if not path.is_file():
        raise FileNotFoundError(f"{location}: no checkpoint ({CHECKPOINT_NAME}) to resume from")
    tensors, meta = read_safetensors(path, MAX_FILE_BYTES)
    doc = checkpoint_document(meta, path)
    if doc.get("kind") != _KIND:
        raise ModelFormatError(f"{path}: not a portamlp checkpoint (field 'kind' is "
                               f"{doc.get('kind')!r})")
    if doc.get("version") != _VERSION:
        raise ModelFormatError(f"{path}: checkpoint version {doc.get('version')} is not "
                               f"supported (this portamlp reads version {_VERSION})")
    fields = checkpoint_network_fields(tensors, meta, path)
    if "position" not in doc and "epoch" in doc:  # the first layout kept these at the top level
        doc["position"] = {k: doc.get(k) for k in ("epoch", "batch", "loss_sum", "seconds",
                                                   "history", "rng_state")}
    doc.setdefault("extra", {})
    for key, kind in (("config", dict), ("position", dict), ("own_data", bool),
                      ("optimizer_scalars", dict), ("extra", dict)):
        if not isinstance(doc.get(key), kind):
            raise ModelFormatError(f"{path}: checkpoint field {key!r} must be "
                                   f"{kind.__name__}, got {doc.get(key)!r}")
    try:
        position = RunPosition.from_dict(doc["position"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFormatError(f"{path}: checkpoint field 'position' is malformed ({exc})") \
            from None
    prefix = "optimizer."
    opt = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    for name, array in opt.items():
        if not np.all(np.isfinite(array)):
            raise ModelFormatError(f"{path}: optimizer tensor {name!r} holds NaN or infinity")
    state = {k[len("state."):]: v for k, v in tensors.items() if k.startswith("state.")}
    unexpected = [k for k in tensors if not k.startswith(("network.", prefix, "state."))]
    if unexpected:
        raise ModelFormatError(f"{path}: unexpected tensors {unexpected} in a checkpoint")
    return Checkpoint(path, fields, opt, doc["optimizer_scalars"], doc["config"], position,
                      doc["own_data"], doc["extra"], state)
