"""Saving and loading networks: JSON, safetensors, and the original Rust program's JSON.

portamlp's JSON format (``"format": "portamlp-mlp"``, ``"version": 1``)::

    {
      "format": "portamlp-mlp", "version": 1,
      "layers": [784, 30, 10], "activation": "sigmoid", "cost": "quadratic", "dtype": "float32",
      "preprocessing": {"scale": 255.0, "divisor": 255.0, "mean": 0.0, "std": 1.0},  # optional
      "weights": [ [[...], ...],  ... ],   # one (n_out, n_in) nested list per layer
      "biases":  [ [...], ... ]            # one (n_out,) list per layer
    }

Numbers are written with Python's shortest round-trip representation, so save → load is exact.
``preprocessing`` says how raw pixels become inputs; files written before it existed load with
``preprocessing=None``.

safetensors files (``.safetensors``) are read and written by the official ``safetensors``
package. They hold the tensors under the names a PyTorch ``nn.Sequential(Linear, activation,
Linear, ...)`` gives them — ``"0.weight"``, ``"0.bias"``, ``"2.weight"``, ... — so
``model.load_state_dict(safetensors.torch.load_file(path))`` works, and portamlp's own fields
(``format``, ``version``, ``layers``, ``activation``, ``cost``, ``preprocessing``) in the header
metadata. A state dict saved from PyTorch without that metadata loads with
``portamlp.load(path, activation=..., cost=...)``. F32 and F64 tensors load as they are; F16
tensors (``model.half()``) load as float32, exactly; BF16 tensors are refused with a
:class:`~portamlp.ModelFormatError` (save ``model.float()`` instead).

The original Rust program's files are also read: they hold ``layers``, ``weights``, ``biases`` and
``activation_function.function_type`` (``"Sigmoid"`` or ``"ReLU"``); its cost was quadratic.
That program scaled pixels by 1/256, which is recorded as their preprocessing.

Every file is written atomically (temporary file in the same folder, flushed, fsynced, then
``os.replace``d), and an existing file is only replaced with ``overwrite=True``. Everything read is
validated; a malformed file raises :class:`~portamlp.ModelFormatError` naming the field.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..backends import Backend
from ..checks import DTYPES, check_choice
from ..datasets.scaling import Preprocessing
from ..errors import ModelFormatError
from ..nn.activations import ACTIVATIONS
from ..nn.costs import COSTS
from ..nn.network import Network

__all__ = ["save", "load", "atomic_write_bytes", "check_save_path", "read_safetensors",
           "encode_safetensors", "FORMAT_NAME", "FORMAT_VERSION", "FORMATS", "MAX_FILE_BYTES",
           "CHECKPOINT_NAME", "CHECKPOINT_KEY"]

FORMAT_NAME = "portamlp-mlp"
FORMAT_VERSION = 1
#: Model file extensions and their formats.
FORMATS = {".json": "json", ".safetensors": "safetensors"}
#: Refuse model files larger than this (bytes) unless ``max_bytes`` says otherwise.
MAX_FILE_BYTES = 2 << 30
#: Refuse layers wider than this.
MAX_LAYER_WIDTH = 1 << 20
#: Largest safetensors header accepted (bytes).
MAX_HEADER_BYTES = 16 << 20
#: A checkpoint directory's file, and the metadata key holding its run state (see
#: :mod:`portamlp.checkpoint`).
CHECKPOINT_NAME = "checkpoint.safetensors"
CHECKPOINT_KEY = "portamlp.checkpoint"
_READ_DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float32}


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


def to_document(network: Network) -> dict[str, Any]:
    """The JSON document for a network (plain Python data)."""
    weights, biases = network.host_parameters()
    doc: dict[str, Any] = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "layers": list(network.layers),
        "activation": network.activation,
        "cost": network.cost,
        "dtype": network.dtype,
    }
    if network.preprocessing is not None:
        doc["preprocessing"] = network.preprocessing.to_dict()
    doc["weights"] = [w.astype(np.float64).tolist() for w in weights]
    doc["biases"] = [b.astype(np.float64).tolist() for b in biases]
    return doc


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
        data = json.dumps(to_document(network), separators=(",", ":")).encode()
    atomic_write_bytes(path, data, overwrite=overwrite)


# ---------------------------------------------------------------------------- loading
def _fail(path, message) -> ModelFormatError:
    return ModelFormatError(f"{path}: {message}")


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
        raise _fail(path, f"the file is {size:,} bytes, over the {max_bytes:,}-byte limit "
                          "(pass max_bytes= to allow it)")
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8:
        raise _fail(path, f"not a safetensors file: {size} bytes, the header length alone "
                          "takes 8 (truncated?)")
    n = int.from_bytes(head, "little")
    if n > min(size - 8, MAX_HEADER_BYTES):
        raise _fail(path, f"safetensors header length {n:,} exceeds the file ({size - 8:,} "
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
                    raise _fail(path, f"tensor {name!r} has dtype {dtype}; portamlp reads F32, "
                                      f"F64 and F16{hint}")
                tensors[name] = np.asarray(f.get_tensor(name), dtype=_READ_DTYPES[dtype])
    except ModelFormatError:
        raise
    except Exception as exc:  # SafetensorError, and anything a hostile header provokes
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise _fail(path, f"not a valid safetensors file ({message})") from None
    return tensors, dict(metadata)


def _field(doc, key, path, kind):
    if key not in doc:
        raise _fail(path, f"missing field {key!r}")
    value = doc[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise _fail(path, f"field {key!r} must be {getattr(kind, '__name__', kind)}, "
                          f"got {type(value).__name__}")
    return value


def _matrix(value, shape, path, what) -> np.ndarray:
    try:
        a = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise _fail(path, f"{what} must be a nested list of numbers") from None
    if a.shape != shape:
        raise _fail(path, f"{what} must have shape {shape}, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise _fail(path, f"{what} holds non-finite values (NaN or infinity)")
    return a


def check_layers_field(layers, path) -> list[int]:
    """A file's ``layers`` field: a list of at least 2 sizes in [1, 2**20]."""
    if not isinstance(layers, list) or len(layers) < 2:
        raise _fail(path, f"field 'layers' must be a list of at least 2 sizes, got {layers!r}")
    for s in layers:
        if isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= MAX_LAYER_WIDTH:
            raise _fail(path, f"field 'layers' must hold integers in [1, {MAX_LAYER_WIDTH}], "
                              f"got {s!r}")
    return layers


def parse_parameters(doc, layers, path, transpose_ok=False) -> tuple[list, list]:
    """Weights (n_out, n_in) and biases (n_out,) from ``doc["weights"]``/``["biases"]``, checked
    against ``layers`` (shapes, finite values)."""
    weights_raw = _field(doc, "weights", path, list)
    biases_raw = _field(doc, "biases", path, list)
    n = len(layers) - 1
    if len(weights_raw) != n or len(biases_raw) != n:
        raise _fail(path, f"layers {layers} need {n} weight matrices and {n} bias vectors, got "
                          f"{len(weights_raw)} and {len(biases_raw)}")
    weights, biases = [], []
    for i in range(n):
        shape = (layers[i + 1], layers[i])
        try:
            w = _matrix(weights_raw[i], shape, path, f"weights[{i}]")
        except ModelFormatError:
            if not transpose_ok:
                raise
            w = _matrix(weights_raw[i], shape[::-1], path, f"weights[{i}]").T
        b_raw = biases_raw[i]
        if transpose_ok and isinstance(b_raw, list) and b_raw and isinstance(b_raw[0], list):
            b_raw = [row[0] if isinstance(row, list) and len(row) == 1 else row for row in b_raw]
        biases.append(_matrix(b_raw, (layers[i + 1],), path, f"biases[{i}]"))
        weights.append(w)
    return weights, biases


def _preprocessing(value, path) -> Preprocessing | None:
    if value is None:
        return None
    try:
        return Preprocessing.from_dict(value)
    except ValueError as exc:
        raise _fail(path, f"field 'preprocessing': {exc}") from None


def _from_portamlp(doc, path):
    version = _field(doc, "version", path, int)
    if version != FORMAT_VERSION:
        raise _fail(path, f"format version {version} is not supported (this portamlp reads "
                          f"version {FORMAT_VERSION}); upgrade portamlp")
    layers = check_layers_field(_field(doc, "layers", path, list), path)
    activation = _field(doc, "activation", path, str)
    if activation not in ACTIVATIONS:
        raise _fail(path, f"unknown activation {activation!r}; expected one of "
                          f"{sorted(ACTIVATIONS)}")
    cost = _field(doc, "cost", path, str)
    if cost not in COSTS:
        raise _fail(path, f"unknown cost {cost!r}; expected one of {sorted(COSTS)}")
    dtype = _field(doc, "dtype", path, str)
    if dtype not in DTYPES:
        raise _fail(path, f"field 'dtype' must be 'float32' or 'float64', got {dtype!r}")
    weights, biases = parse_parameters(doc, layers, path)
    return dict(weights=weights, biases=biases, activation=activation, cost=cost, dtype=dtype,
                preprocessing=_preprocessing(doc.get("preprocessing"), path))


_RUST_ACTIVATIONS = {"sigmoid": "sigmoid", "relu": "relu"}


def _from_rust(doc, path):
    layers = check_layers_field(_field(doc, "layers", path, list), path)
    fn = _field(doc, "activation_function", path, dict)
    kind = fn.get("function_type")
    if not isinstance(kind, str) or kind.lower() not in _RUST_ACTIVATIONS:
        raise _fail(path, f"activation_function.function_type must be 'Sigmoid' or 'ReLU', "
                          f"got {kind!r}")
    weights, biases = parse_parameters(doc, layers, path, transpose_ok=True)
    return dict(weights=weights, biases=biases, activation=_RUST_ACTIVATIONS[kind.lower()],
                cost="quadratic", dtype="float64", preprocessing=Preprocessing(256.0, 256.0))


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
            raise _fail(path, f"unexpected tensor {name!r}; expected names like '0.weight', "
                              f"'0.bias', '2.weight' (an nn.Sequential of Linear layers){hint}")
        indices.setdefault(int(stem), set()).add(kind)
    if not indices:
        raise _fail(path, "the file holds no tensors")
    pairs = []
    for i in sorted(indices):
        if indices[i] != {"weight", "bias"}:
            missing = ({"weight", "bias"} - indices[i]).pop()
            raise _fail(path, f"missing tensor '{i}.{missing}'")
        pairs.append((tensors[f"{i}.weight"], tensors[f"{i}.bias"]))
    return pairs


def _from_safetensors(tensors, meta, path, activation, cost):
    if meta.get("format", FORMAT_NAME) != FORMAT_NAME:
        raise _fail(path, f"metadata 'format' is {meta['format']!r}, expected {FORMAT_NAME!r}")
    if "version" in meta and meta["version"] != str(FORMAT_VERSION):
        raise _fail(path, f"format version {meta['version']} is not supported (this portamlp "
                          f"reads version {FORMAT_VERSION}); upgrade portamlp")
    pairs = _sequential_pairs(tensors, path)
    layers = [int(pairs[0][0].shape[1])] if pairs[0][0].ndim == 2 else []
    layers += [int(w.shape[0]) for w, _ in pairs]
    if "layers" in meta:
        try:
            declared = json.loads(meta["layers"])
        except ValueError:
            raise _fail(path, f"metadata 'layers' is not a JSON list: {meta['layers']!r}") from None
        if declared != layers:
            raise _fail(path, f"metadata 'layers' {declared} does not match the tensors' shapes "
                              f"(which give {layers})")
    check_layers_field(layers, path)
    resolved = {}
    for key, given, choices in (("activation", activation, ACTIVATIONS), ("cost", cost, COSTS)):
        stored = meta.get(key)
        if stored is not None and given is not None and stored != given:
            raise ValueError(f"{path}: the file says {key}={stored!r} but {key}={given!r} was "
                             "passed; leave it out")
        value = stored or given
        if value is None:
            raise _fail(path, f"metadata {key!r} is missing; pass {key}=... to portamlp.load "
                              f"(one of {sorted(choices)})")
        if value not in choices:
            raise _fail(path, f"unknown {key} {value!r}; expected one of {sorted(choices)}")
        resolved[key] = value
    dtypes = {w.dtype for pair in pairs for w in pair}
    if len(dtypes) != 1:
        raise _fail(path, f"tensors must all have one dtype, got {sorted(map(str, dtypes))}")
    preprocessing = None
    if "preprocessing" in meta:
        try:
            preprocessing = _preprocessing(json.loads(meta["preprocessing"]), path)
        except ValueError:
            raise _fail(path, "metadata 'preprocessing' is not valid JSON") from None
    doc = {"weights": [w for w, _ in pairs], "biases": [b for _, b in pairs]}
    weights, biases = parse_parameters(doc, layers, path)
    return dict(weights=weights, biases=biases, activation=resolved["activation"],
                cost=resolved["cost"], dtype=dtypes.pop().name, preprocessing=preprocessing)


def checkpoint_document(meta: dict[str, str], path) -> dict[str, Any]:
    """The run-state document in a checkpoint's metadata (see :mod:`portamlp.checkpoint`)."""
    try:
        doc = json.loads(meta[CHECKPOINT_KEY])
    except (KeyError, ValueError):
        raise _fail(path, "not a portamlp checkpoint (no run state in its metadata)") from None
    if not isinstance(doc, dict):
        raise _fail(path, "not a portamlp checkpoint (its run state is not an object)")
    return doc


def checkpoint_network_fields(tensors: dict[str, np.ndarray], meta: dict[str, str],
                              path) -> dict[str, Any]:
    """The network inside a checkpoint file: tensors ``network.<i>.weight``/``.bias`` and the
    ``network`` entry of its run state, validated like a model file."""
    doc = checkpoint_document(meta, path)
    net = doc.get("network")
    if not isinstance(net, dict):
        raise _fail(path, "checkpoint field 'network' is missing or not an object")
    prefix = "network."
    own = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    net_meta = {"layers": json.dumps(net.get("layers"))}
    for key in ("activation", "cost"):
        if not isinstance(net.get(key), str):
            raise _fail(path, f"checkpoint field 'network.{key}' must be a string, got "
                              f"{net.get(key)!r}")
        net_meta[key] = net[key]
    if net.get("preprocessing") is not None:
        net_meta["preprocessing"] = json.dumps(net["preprocessing"])
    fields = _from_safetensors(own, net_meta, path, None, None)
    dtype = net.get("dtype", fields["dtype"])
    if dtype not in DTYPES:
        raise _fail(path, f"checkpoint field 'network.dtype' must be one of {list(DTYPES)}, got "
                          f"{dtype!r}")
    fields["dtype"] = dtype
    return fields


def _read_json(path: Path, max_bytes: int) -> Any:
    size = path.stat().st_size
    if size > max_bytes:
        raise _fail(path, f"the file is {size:,} bytes, over the {max_bytes:,}-byte limit "
                          "(pass max_bytes= to allow it)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise _fail(path, "not a UTF-8 JSON file") from None
    try:
        return json.loads(text, parse_constant=lambda c: math.nan)
    except json.JSONDecodeError as exc:
        raise _fail(path, f"not valid JSON ({exc}); the file may be truncated") from None
    except RecursionError:  # hostile nesting: the C parser stops at the recursion limit
        raise _fail(path, "JSON nested too deeply; not a model file") from None


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
    """
    path = Path(path)
    if path.is_dir() and (path / CHECKPOINT_NAME).is_file():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    kind = format or ("safetensors" if path.suffix.lower() == ".safetensors" else "json")
    if kind == "safetensors":
        tensors, meta = read_safetensors(path, max_bytes)
        if CHECKPOINT_KEY in meta:
            fields = checkpoint_network_fields(tensors, meta, path)
        else:
            fields = _from_safetensors(tensors, meta, path, activation, cost)
    else:
        format_of(path, kind)
        if activation is not None or cost is not None:
            raise ValueError("activation= and cost= are for safetensors files without portamlp's "
                             f"metadata; {path} is JSON, which names its own")
        doc = _read_json(path, max_bytes)
        if not isinstance(doc, dict):
            raise _fail(path, "a model file holds a JSON object at the top level")
        if "format" in doc:
            if doc["format"] != FORMAT_NAME:
                raise _fail(path, f"field 'format' is {doc['format']!r}, expected "
                                  f"{FORMAT_NAME!r}")
            fields = _from_portamlp(doc, path)
        elif "activation_function" in doc:
            fields = _from_rust(doc, path)
        else:
            raise _fail(path, f"missing field 'format' (expected {FORMAT_NAME!r}); not a portamlp "
                              "model file nor one of the original program's")
    return Network.from_arrays(fields.pop("weights"), fields.pop("biases"), backend=backend,
                               device=device, **fields)
