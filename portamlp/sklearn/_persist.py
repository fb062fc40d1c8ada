"""Keeping a fitted estimator: pickling (joblib) and portamlp's safe model files.

Pickle: a :class:`~portamlp.Network` holds its backend's array namespace (a module, which
pickle refuses), so the estimator pickles its network as host arrays plus the backend's name and
device, and rebuilds it there on unpickling (on NumPy, with a warning, when that backend is not
usable on the unpickling machine). The optimizer's state travels the same way.

Model files: :meth:`MLPClassifier.save` (and ``MLPRegressor.save``) writes one portamlp model
file (``.safetensors`` or ``.json``) whose network :func:`portamlp.load` reads as usual; the
estimator's parameters and fitted facts (classes, feature names, curves) ride along as JSON, in
the safetensors header's metadata under the key ``"portamlp.sklearn"`` or in the JSON document
under ``"sklearn"``. Nothing is ever unpickled from a model file. :func:`save_estimator` and
:func:`load_estimator`
are the bodies of :meth:`MLPClassifier.save` and :meth:`MLPClassifier.load`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from ..backends import Backend, to_numpy
from ..checks import check_dtype
from ..errors import ModelFormatError, PortamlpWarning, warn
from ..files.fields import MAX_FILE_BYTES
from ..files.json_format import to_document
from ..files.models import load as load_network
from ..files.safetensors_format import encode_safetensors, read_safetensors, to_tensors
from ..files.writing import atomic_write_bytes, check_save_path, format_of
from ..nn.network import Network
from ._arrays import backend_for_place, device_spec
from ._params import out_activation

if TYPE_CHECKING:
    from ._base import BaseMLP

    _Estimator = TypeVar("_Estimator", bound=BaseMLP)

__all__ = ["network_state", "network_from_state", "optimizer_state_to_host", "encode_classes",
           "decode_classes", "estimator_document", "save_estimator", "load_estimator",
           "write_model", "read_estimator_document", "METADATA_KEY", "DOCUMENT_KEY",
           "FORMAT_NAME", "FORMAT_NAMES", "FORMAT_VERSION"]

#: Where the estimator's document sits in a safetensors header / a JSON model file.
METADATA_KEY = "portamlp.sklearn"
DOCUMENT_KEY = "sklearn"
FORMAT_NAME = "portamlp-sklearn-mlpclassifier"
#: Each estimator's document format (the classifier's kept its first name).
FORMAT_NAMES = {"MLPClassifier": FORMAT_NAME, "MLPRegressor": "portamlp-sklearn-mlpregressor"}
FORMAT_VERSION = 1


# ----------------------------------------------------------------------------- pickling
def network_state(network: Network) -> dict[str, Any]:
    """A picklable description of ``network``: host arrays and where it lived."""
    weights, biases = network.host_parameters()
    return {"weights": [np.array(w) for w in weights], "biases": [np.array(b) for b in biases],
            "activation": network.activation, "cost": network.cost, "dtype": network.dtype,
            "backend": network.backend.name, "device": device_spec(network.backend)}


def _usable_backend(name: str, device: Any) -> Backend:
    """The backend a network lived on, or NumPy (with a warning) when it is not usable here."""
    try:
        return backend_for_place((name, device))
    except (ValueError, RuntimeError, ImportError) as exc:
        reason = " ".join(str(exc).split())
    warn(PortamlpWarning(f"the estimator's network lived on {name} {device!r}, which is not "
                         f"usable here ({reason}); it is loaded on NumPy instead"))
    return backend_for_place(("numpy", None))


def network_from_state(state: dict[str, Any]) -> Network:
    """The network described by :func:`network_state`, on its backend where usable here."""
    be = _usable_backend(state["backend"], state["device"])
    return Network.from_arrays(state["weights"], state["biases"], activation=state["activation"],
                               cost=state["cost"], dtype=state["dtype"], backend=be)


def optimizer_state_to_host(state: dict[str, Any] | None) -> dict[str, Any] | None:
    """An optimizer state (``portamlp.train``'s) with its arrays copied to the host."""
    if state is None:
        return None
    return {**state, "arrays": {k: np.array(to_numpy(v)) for k, v in state["arrays"].items()}}


# ------------------------------------------------------------------------------ classes
def encode_classes(classes: np.ndarray) -> dict[str, Any]:
    """``classes_`` as JSON data that :func:`decode_classes` turns back into the same array."""
    values = classes.tolist()
    kind = classes.dtype.kind
    if kind in "iub":
        return {"kind": "int" if kind != "b" else "bool", "dtype": classes.dtype.str,
                "values": values}
    if kind == "f":
        return {"kind": "float", "dtype": classes.dtype.str, "values": values}
    if kind == "U":
        return {"kind": "str", "dtype": classes.dtype.str, "values": values}
    if kind == "O" and all(isinstance(v, str) for v in values):
        return {"kind": "object-str", "values": values}
    if kind == "O" and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                           for v in values):
        return {"kind": "object-number", "values": values}
    raise TypeError(f"classes_ of dtype {classes.dtype} holding {type(values[0]).__name__} "
                    "values cannot be written to a model file (only numbers and strings can); "
                    "save the estimator with joblib instead, or encode the labels as strings")


def decode_classes(doc: Any, path: Any) -> np.ndarray:
    """``classes_`` back from :func:`encode_classes`'s data; ModelFormatError if malformed."""
    try:
        kind, values = doc["kind"], doc["values"]
        if not isinstance(values, list) or not values:
            raise ValueError("no values")
        if kind in ("object-str", "object-number"):
            out = np.empty(len(values), dtype=object)
            out[:] = values
            return out
        return np.asarray(values, dtype=np.dtype(doc["dtype"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFormatError(f"{path}: the estimator's 'classes' entry is malformed ({exc})") \
            from None


# ------------------------------------------------------------------------ the estimator
#: The fitted attributes a model file keeps besides classes_, network_ and feature names.
_FITTED_KEYS = ("n_iter_", "t_", "loss_curve_", "loss_", "best_loss_", "best_validation_score_",
                "validation_scores_")


def estimator_document(est: BaseMLP) -> dict[str, Any]:
    """The JSON document a model file keeps of a fitted estimator besides its network.

    Parameters
    ----------
    est : MLPClassifier or MLPRegressor
        A fitted estimator.

    Returns
    -------
    dict
        Its parameters (plain data), ``classes_`` (:func:`encode_classes`) and fitted facts.
    """
    params = {k: _plain_param(k, v) for k, v in est.get_params().items()}
    fitted: dict[str, Any] = {
        "n_features_in_": int(est.n_features_in_), "n_iter_": int(est.n_iter_),
        "t_": int(est.t_), "loss_": _float_or_none(getattr(est, "loss_", None))}
    if hasattr(est, "loss_curve_"):  # the stochastic solvers' curves and bests
        scores = est.validation_scores_
        fitted.update({
            "loss_curve_": [float(v) for v in est.loss_curve_],
            "best_loss_": _float_or_none(est.best_loss_),
            "best_validation_score_": _float_or_none(est.best_validation_score_),
            "validation_scores_": None if scores is None else [float(v) for v in scores]})
    if hasattr(est, "feature_names_in_"):
        fitted["feature_names_in_"] = [str(v) for v in est.feature_names_in_]
    if hasattr(est, "_label_kind"):
        fitted["label_kind"] = est._label_kind  # noqa: SLF001
    document = {"format": FORMAT_NAMES[_estimator_name(type(est))], "version": FORMAT_VERSION,
                "params": params, "fitted": fitted}
    if hasattr(est, "classes_"):
        document["classes"] = encode_classes(est.classes_)
    return document


def _estimator_name(cls: type) -> str:
    """The portamlp estimator ``cls`` is, or derives from."""
    return next(k.__name__ for k in cls.__mro__ if k.__name__ in FORMAT_NAMES)


def save_estimator(est: BaseMLP, path: str | os.PathLike, *, format: str | None = None,
                   overwrite: bool = False) -> Path:
    """Write a fitted estimator to one model file (the body of :meth:`MLPClassifier.save`).

    Parameters
    ----------
    est : MLPClassifier or MLPRegressor
        A fitted estimator.
    path : str or path-like
    format : {"safetensors", "json"}, optional
        Default: from the extension.
    overwrite : bool, default=False

    Returns
    -------
    Path
        The file written.
    """
    return write_model(est.network_, estimator_document(est), path, format=format,
                       overwrite=overwrite)


def load_estimator(cls: type[_Estimator], path: str | os.PathLike, *, backend: Any = None,
                   device: Any = None, format: str | None = None) -> _Estimator:
    """An estimator of class ``cls`` rebuilt from a file written by :func:`save_estimator`.

    Its parameters, ``classes_``, ``network_`` and the other fitted attributes are set from
    the file; the state that only a running fit needs (random state, learning-rate schedule)
    is the estimator's to start (:meth:`MLPClassifier.load` does).

    Parameters
    ----------
    cls : type
        ``MLPClassifier`` or a subclass.
    path : str or path-like
    backend, device : optional
        Where to put the network; default: the saved ``backend``/``device`` parameters
        (NumPy when they are None).
    format : {"safetensors", "json"}, optional
        Default: from the extension.

    Raises
    ------
    ModelFormatError
        The file is not a saved MLPClassifier; the message says what is wrong.
    """
    document = read_estimator_document(path, format, _estimator_name(cls))
    params = dict(document.get("params") or {})
    if isinstance(params.get("hidden_layer_sizes"), list):
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    known = cls().get_params()
    estimator = cls(**{k: v for k, v in params.items() if k in known})
    fitted = document.get("fitted") or {}
    network = load_network(path, backend=backend if backend is not None else
                           params.get("backend"), device=device if device is not None else
                           params.get("device"), format=format)
    if "classes" in document:
        estimator.classes_ = decode_classes(document.get("classes"), path)
        estimator._label_kind = str(fitted.get("label_kind", "multiclass"))
    else:
        estimator._n_targets = int(network.layers[-1])
    if network.layers[-1] != estimator._n_outputs():
        raise ModelFormatError(f"{path}: the network has {network.layers[-1]} outputs for "
                               f"{estimator._n_outputs()} targets")
    estimator.network_ = network
    estimator.n_features_in_ = int(fitted.get("n_features_in_", network.layers[0]))
    if "feature_names_in_" in fitted:
        estimator.feature_names_in_ = np.asarray(fitted["feature_names_in_"], dtype=object)
    for key in _FITTED_KEYS:
        if key in fitted:
            setattr(estimator, key, fitted[key])
    estimator.n_iter_ = int(fitted.get("n_iter_") or 0)
    estimator.t_ = int(fitted.get("t_") or 0)
    if "loss_curve_" in fitted:
        estimator.loss_curve_ = list(fitted["loss_curve_"] or [])
    estimator.n_layers_ = len(network.layers)
    estimator.n_outputs_ = int(network.layers[-1])
    estimator.out_activation_ = out_activation(network)
    return estimator


def _float_or_none(value: Any) -> float | None:
    """``float(value)``, None kept."""
    return None if value is None else float(value)


def _plain_param(name: str, value: Any) -> Any:
    """A parameter as JSON data for a model file (a RandomState instance is not kept)."""
    if isinstance(value, tuple):
        return [_plain_param(name, v) for v in value]
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool, list)):
        return value
    if name == "backend" and hasattr(value, "name"):
        return value.name
    if name == "dtype":
        try:
            return check_dtype(value)
        except (TypeError, ValueError):
            return str(value)
    if name == "device":
        return str(value)
    return None  # a RandomState instance: the loaded estimator draws afresh


# ---------------------------------------------------------------------------- model files
def write_model(network: Network, document: dict[str, Any], path: str | os.PathLike, *,
                format: str | None = None, overwrite: bool = False) -> Path:
    """Write ``network`` with the estimator's ``document`` to one model file, atomically."""
    path = check_save_path(path, format, overwrite=overwrite)
    text = json.dumps(document)
    if format_of(path, format) == "safetensors":
        tensors, metadata = to_tensors(network)
        metadata[METADATA_KEY] = text
        data = encode_safetensors(tensors, metadata)
    else:
        doc = to_document(network)
        doc[DOCUMENT_KEY] = json.loads(text)
        data = json.dumps(doc, separators=(",", ":")).encode()
    atomic_write_bytes(path, data, overwrite=overwrite)
    return path


def read_estimator_document(path: str | os.PathLike, format: str | None = None,
                            estimator: str = "MLPClassifier",
                            max_bytes: int = MAX_FILE_BYTES) -> dict[str, Any]:
    """The ``estimator``'s document in a model file written by :func:`write_model`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    kind = format or ("safetensors" if path.suffix.lower() == ".safetensors" else "json")
    if kind == "safetensors":
        _, metadata = read_safetensors(path, max_bytes)
        if METADATA_KEY not in metadata:
            raise ModelFormatError(f"{path}: a portamlp model file, but not a saved "
                                   f"{estimator} (no estimator parameters in its metadata); load "
                                   "the network with portamlp.load")
        try:
            document = json.loads(metadata[METADATA_KEY])
        except ValueError:
            raise ModelFormatError(f"{path}: the estimator's metadata is not valid JSON") \
                from None
    else:
        size = path.stat().st_size
        if size > max_bytes:
            raise ModelFormatError(f"{path}: the file is {size:,} bytes, over the "
                                   f"{max_bytes:,}-byte limit (pass max_bytes= to allow it)")
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise ModelFormatError(f"{path}: not a valid JSON model file ({exc})") from None
        if not isinstance(doc, dict) or DOCUMENT_KEY not in doc:
            raise ModelFormatError(f"{path}: not a saved {estimator} (no {DOCUMENT_KEY!r} "
                                   "entry); load a plain network with portamlp.load")
        document = doc[DOCUMENT_KEY]
    if not isinstance(document, dict):
        raise ModelFormatError(f"{path}: the estimator's entry is not a document")
    saved = next((name for name, f in FORMAT_NAMES.items() if f == document.get("format")), None)
    if saved is None:
        raise ModelFormatError(f"{path}: the estimator's entry is not a "
                               f"{FORMAT_NAMES[estimator]!r} document")
    if saved != estimator:
        raise ModelFormatError(f"{path}: a saved {saved}, not an {estimator}; load it with "
                               f"{saved}.load")
    if document.get("version") != FORMAT_VERSION:
        raise ModelFormatError(f"{path}: estimator format version {document.get('version')!r} "
                               f"is not supported (this portamlp reads {FORMAT_VERSION}); "
                               "upgrade portamlp")
    return document
