"""Checkpoints: everything needed to continue a run exactly where it stopped, in one file.

This module is the checkpoint format. ``DIR/checkpoint.safetensors`` holds the network's
parameters (``network.0.weight``, ...), the optimizer's state buffers
(``optimizer.velocity.0``, ...), further arrays of the run (``state.best.0``, ...: the best
parameters early stopping keeps) and, in the header metadata under ``"portamlp.checkpoint"``, a
JSON document::

    {"kind": "portamlp-checkpoint", "version": 1,
     "config": {...},              # the run's configuration (TrainConfig.to_dict())
     "position": {...},            # RunPosition: epoch and mini-batch to continue from, the
                                   # host generator's state, the history, partial sums
     "own_data": false,            # trained on the caller's own arrays
     "extra": {...},               # the state of the epoch hooks (schedule, early stopping)
     "network": {"layers", "activation", "cost", "dtype", "preprocessing"},
     "optimizer_scalars": {...}}

and, under ``"portamlp.checksum"``, the SHA-256 of that document and of every tensor (name,
dtype, shape and bytes, in name order): a flipped bit anywhere in the file is found when it is
read. Version 1 (portamlp 0.2.0) had no checksum and is still read. Unknown keys are refused.

The file is written atomically, so a crash at any instant leaves the previous checkpoint or the
new one, never a torn file. Everything read is validated: a malformed checkpoint raises
:class:`~portamlp.ModelFormatError` naming the file and the field.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..backends import Backend, to_numpy
from ..checks import check_float, check_int
from .fields import MAX_FILE_BYTES, check_dtype_field, fail, shorten
from .run_records import EpochRecord
from .safetensors_format import (
    check_model_header,
    encode_safetensors,
    from_tensors,
    read_safetensors,
)
from .writing import atomic_write_bytes

if TYPE_CHECKING:
    from ..nn.network import Network

__all__ = ["CHECKPOINT_NAME", "CHECKPOINT_KEY", "RunPosition", "Checkpoint", "save_checkpoint",
           "load_checkpoint", "checkpoint_path", "is_checkpoint", "network_fields",
           "check_header"]

#: A checkpoint directory's file.
CHECKPOINT_NAME = "checkpoint.safetensors"
#: The metadata key holding the run's state.
CHECKPOINT_KEY = "portamlp.checkpoint"
#: The metadata key holding the SHA-256 of the run's state and tensors.
CHECKSUM_KEY = "portamlp.checksum"
_KIND = "portamlp-checkpoint"
_VERSION = 2
#: The keys of the run-state document, and of its ``network`` and ``position`` entries.
_DOCUMENT_KEYS = {"kind", "version", "config", "position", "own_data", "extra", "network",
                  "optimizer_scalars"}
_NETWORK_KEYS = {"layers", "activation", "cost", "dtype", "preprocessing"}
_POSITION_KEYS = {"epoch", "batch", "cost_sum", "loss_sum", "seconds", "history", "rng_state"}
#: The prefixes of a checkpoint's tensor names.
_TENSOR_PREFIXES = ("network.", "optimizer.", "state.")


def checksum(document: str, tensors: dict[str, np.ndarray]) -> str:
    """SHA-256 (hex) of a checkpoint's run-state document and its tensors: name, dtype,
    shape and bytes of each, in name order."""
    digest = hashlib.sha256(document.encode())
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        digest.update(f"\0{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


@dataclass
class RunPosition:
    """Where a run stands: what a checkpoint needs to continue it exactly.

    ``epoch`` is the epoch to run next (1-based) and ``batch`` the mini-batch within it to start
    from (0 at an epoch boundary); ``cost_sum`` and ``seconds`` are the partial sums of an
    interrupted epoch; ``rng_state`` is the host generator's state at the start of ``epoch``
    (resuming replays that epoch's permutation).
    """

    epoch: int = 1
    batch: int = 0
    cost_sum: float = 0.0
    seconds: float = 0.0
    history: list[EpochRecord] = field(default_factory=list)
    rng_state: dict | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain (JSON-ready) data."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunPosition:
        """The inverse of :meth:`to_dict`; raises KeyError/TypeError/ValueError if malformed.
        (Checkpoints written before portamlp said "cost" hold ``loss_sum``.)"""
        history = [EpochRecord.from_dict(h) for h in data["history"]]
        cost_sum = data["cost_sum"] if "cost_sum" in data else data["loss_sum"]
        position = cls(epoch=check_int("epoch", data["epoch"], minimum=1),
                       batch=check_int("batch", data["batch"], minimum=0),
                       cost_sum=check_float("cost_sum", cost_sum),
                       seconds=check_float("seconds", data["seconds"], minimum=0.0),
                       history=history, rng_state=data["rng_state"])
        if not isinstance(position.rng_state, dict):
            raise TypeError(f"rng_state must be an object, got {position.rng_state!r}")
        return position


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
    #: Further state of the run (the epoch hooks': learning-rate schedule, early stopping).
    extra: dict[str, Any] = field(default_factory=dict)
    #: Further arrays of the run (the best parameters kept by early stopping), by name.
    extra_arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def optimizer_state(self, optimizer, backend: Backend) -> None:
        """Load the optimizer's buffers and scalars into ``optimizer``, after checking that they
        are the ones it has (names, shapes)."""
        expected = optimizer.state_arrays()
        if set(expected) != set(self.optimizer_arrays):
            raise fail(self.path, f"the optimizer state holds {sorted(self.optimizer_arrays)}, "
                                  f"but this run's optimizer needs {sorted(expected)}")
        for name, array in expected.items():
            if tuple(array.shape) != self.optimizer_arrays[name].shape:
                raise fail(self.path, f"optimizer tensor {name!r} has shape "
                                      f"{self.optimizer_arrays[name].shape}, expected "
                                      f"{tuple(array.shape)}")
        dtype = self.network_fields["dtype"]
        optimizer.load_state({k: backend.asarray(v.copy(), dtype)
                              for k, v in self.optimizer_arrays.items()}, self.optimizer_scalars)


def checkpoint_path(directory) -> Path:
    """The checkpoint file of a directory."""
    return Path(directory) / CHECKPOINT_NAME


def is_checkpoint(meta: dict[str, str]) -> bool:
    """Whether a safetensors file's metadata is a checkpoint's."""
    return CHECKPOINT_KEY in meta


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
    text = json.dumps(document)
    data = encode_safetensors(tensors, {CHECKPOINT_KEY: text,
                                        CHECKSUM_KEY: checksum(text, tensors)})
    path = checkpoint_path(directory)
    atomic_write_bytes(path, data, overwrite=True)
    return path


def _document(meta: dict[str, str], path) -> dict[str, Any]:
    """The run-state document in a checkpoint's metadata."""
    try:
        doc = json.loads(meta[CHECKPOINT_KEY])
    except (KeyError, ValueError):
        raise fail(path, "not a portamlp checkpoint (no run state in its metadata)") from None
    except RecursionError:
        raise fail(path, "the checkpoint's run state is nested too deeply") from None
    if not isinstance(doc, dict):
        raise fail(path, "not a portamlp checkpoint (its run state is not an object)")
    return doc


def _network_meta(doc: dict[str, Any], path) -> dict[str, str]:
    """The run state's ``network`` entry as a model file's metadata (strings)."""
    net = doc.get("network")
    if not isinstance(net, dict):
        raise fail(path, "checkpoint field 'network' is missing or not an object")
    for key in ("activation", "cost"):
        if not isinstance(net.get(key), str):
            raise fail(path, f"checkpoint field 'network.{key}' must be a string, got "
                             f"{shorten(net.get(key))}")
    try:
        net_meta = {"layers": json.dumps(net.get("layers")), "activation": net["activation"],
                    "cost": net["cost"]}
        if net.get("preprocessing") is not None:
            net_meta["preprocessing"] = json.dumps(net["preprocessing"])
    except (ValueError, RecursionError):
        raise fail(path, "checkpoint field 'network' is nested too deeply") from None
    return net_meta


def _network_tensors(tensors: dict[str, Any]) -> dict[str, Any]:
    """The network's tensors (or header entries) of a checkpoint, named as in a model file."""
    prefix = "network."
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def check_header(entries: dict[str, tuple[str, tuple[int, ...]]], meta: dict[str, str],
                 path) -> None:
    """A checkpoint file's header check (see :func:`read_safetensors`): the network's tensor
    names, dtypes and shapes agree with its run state, and no tensor is of another kind; before
    any tensor data is read."""
    unexpected = [k for k in entries if not k.startswith(_TENSOR_PREFIXES)]
    if unexpected:
        raise fail(path, f"unexpected tensors {shorten(unexpected)} in a checkpoint")
    check_model_header(_network_tensors(entries), _network_meta(_document(meta, path), path),
                       path)


def network_fields(tensors: dict[str, np.ndarray], meta: dict[str, str],
                   path) -> dict[str, Any]:
    """The network inside a checkpoint file: tensors ``network.<i>.weight``/``.bias`` and the
    ``network`` entry of its run state, validated like a model file."""
    doc = _document(meta, path)
    fields = from_tensors(_network_tensors(tensors), _network_meta(doc, path), path)
    fields["dtype"] = check_dtype_field(doc["network"].get("dtype", fields["dtype"]), path,
                                        "network.dtype")
    return fields


def _known_keys(entry: dict, known: set[str], prefix: str, path) -> None:
    unknown = sorted(set(entry) - known)
    if unknown:
        raise fail(path, f"unknown checkpoint field(s) {[prefix + k for k in unknown]}; this "
                         f"portamlp knows {sorted(prefix + k for k in known)}")


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
    tensors, meta = read_safetensors(path, MAX_FILE_BYTES,
                                     lambda entries, meta: check_header(entries, meta, path))
    doc = _document(meta, path)
    if doc.get("kind") != _KIND:
        raise fail(path, f"not a portamlp checkpoint (field 'kind' is {doc.get('kind')!r})")
    if doc.get("version") not in (1, _VERSION):
        raise fail(path, f"checkpoint version {doc.get('version')!r} is not supported (this "
                         f"portamlp reads versions 1 and {_VERSION})")
    if doc["version"] >= 2:
        stored = meta.get(CHECKSUM_KEY)
        if stored is None:
            raise fail(path, "the checkpoint has no checksum: it is damaged")
        if stored != checksum(meta[CHECKPOINT_KEY], tensors):
            raise fail(path, "the checkpoint is damaged: its SHA-256 checksum does not match "
                             "its contents (a changed byte, a file cut short or put together "
                             "from two); resume from another copy, or start the run again")
    unknown = sorted(set(meta) - {CHECKPOINT_KEY, CHECKSUM_KEY})
    if unknown:
        raise fail(path, f"unexpected metadata {unknown} in a checkpoint")
    _known_keys(doc, _DOCUMENT_KEYS, "", path)
    if isinstance(doc.get("network"), dict):
        _known_keys(doc["network"], _NETWORK_KEYS, "network.", path)
    if isinstance(doc.get("position"), dict):
        _known_keys(doc["position"], _POSITION_KEYS, "position.", path)
    fields = network_fields(tensors, meta, path)
    if "position" not in doc and "epoch" in doc:  # the first layout kept these at the top level
        doc["position"] = {k: doc.get(k) for k in ("epoch", "batch", "loss_sum", "seconds",
                                                   "history", "rng_state")}
    doc.setdefault("extra", {})
    for key, kind in (("config", dict), ("position", dict), ("own_data", bool),
                      ("optimizer_scalars", dict), ("extra", dict)):
        if not isinstance(doc.get(key), kind):
            raise fail(path, f"checkpoint field {key!r} must be {kind.__name__}, got "
                             f"{doc.get(key)!r}")
    try:
        position = RunPosition.from_dict(doc["position"])
    except (KeyError, TypeError, ValueError) as exc:
        raise fail(path, f"checkpoint field 'position' is malformed ({exc})") from None
    prefix = "optimizer."
    opt = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    for name, array in opt.items():
        if not np.all(np.isfinite(array)):
            raise fail(path, f"optimizer tensor {name!r} holds NaN or infinity")
    state = {k[len("state."):]: v for k, v in tensors.items() if k.startswith("state.")}
    unexpected = [k for k in tensors if not k.startswith(_TENSOR_PREFIXES)]
    if unexpected:
        raise fail(path, f"unexpected tensors {shorten(unexpected)} in a checkpoint")
    return Checkpoint(path, fields, opt, doc["optimizer_scalars"], doc["config"], position,
                      doc["own_data"], doc["extra"], state)
