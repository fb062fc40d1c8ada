"""ONNX export: the network's own forward pass, recorded as an ONNX graph by ``ndonnx``.

``ndonnx`` implements the Array API with arrays that stand for ONNX values: running
:func:`portamlp.nn.network.forward` — the function :meth:`Network.predict` runs — on an
``ndonnx`` placeholder and the weights as ``ndonnx`` constants records the forward pass as a
graph, with no second implementation to keep in step. The graph has a dynamic batch dimension,
takes the network's features (or raw pixels, with the network's recorded preprocessing inside
the graph) and gives the outputs and, for classifiers, the label. ONNX Runtime (C++, C#, Java,
JavaScript, phones, inference servers) runs it.

Needs the ``onnx`` extra (``pip install "portamlp[onnx]"``: ndonnx, onnx, onnxruntime);
``import portamlp`` never imports them.
"""

from __future__ import annotations

import importlib
import json
import os
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _package_version
from pathlib import Path
from typing import Any

import numpy as np

from .backends import to_numpy
from .checks import check_choice
from .datasets.scaling import Preprocessing
from .files.writing import atomic_write_bytes, check_writable_folder
from .nn.activations import get_activation
from .nn.costs import get_cost
from .nn.forward import class_scores, forward
from .nn.network import Network

__all__ = ["export_onnx", "check_onnx", "read_onnx_metadata", "INPUTS", "METADATA_KEY"]

#: What the graph takes: the network's features, raw pixels as rows ``(n, n_in)``, or raw
#: images ``(n, h, w)`` with ``h·w = n_in`` (square images).
INPUTS = ("features", "pixels", "images")
#: The metadata entry that marks a portamlp export (its value: portamlp's version).
METADATA_KEY = "portamlp"
_INSTALL = 'pip install "portamlp[onnx]" (ndonnx, onnx and onnxruntime)'


def _portamlp_version() -> str:
    try:
        return _package_version("portamlp")
    except PackageNotFoundError:  # a source tree without installation
        return "0.0.0+unknown"


def _module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ImportError(f"ONNX export needs {name}: {_INSTALL}") from exc


def _pixel_scale(network: Network, inputs: str) -> Preprocessing | None:
    if inputs == "features":
        return None
    if network.preprocessing is None:
        raise ValueError(f"inputs={inputs!r} puts the network's pixel preprocessing in the "
                         "graph, but this network does not record one (it was not trained on "
                         "a named image data set); export inputs='features'")
    return network.preprocessing


def build_graph(network: Network, inputs: str = "features") -> Any:
    """The ONNX ``ModelProto`` of ``network`` (see :func:`export_onnx`)."""
    ndx = _module("ndonnx")
    check_choice("inputs", inputs, INPUTS)
    prep = _pixel_scale(network, inputs)
    dtype = ndx.float64 if network.dtype == "float64" else ndx.float32
    n_in = int(network.layers[0])
    if inputs == "images":
        side = int(round(n_in ** 0.5))
        if side * side != n_in:
            raise ValueError(f"inputs='images' needs square images; the network takes {n_in} "
                             "features: export inputs='pixels' (rows of n_in pixels)")
        x = ndx.argument(shape=("N", side, side), dtype=dtype)
        rows = ndx.reshape(x, (-1, n_in))
    else:
        x = rows = ndx.argument(shape=("N", n_in), dtype=dtype)
    if prep is not None:  # (pixels / divisor − mean) / std
        scale = np.asarray(1.0 / (prep.divisor * prep.std), dtype=network.dtype)
        shift = np.asarray(prep.mean / prep.std, dtype=network.dtype)
        rows = rows * ndx.asarray(scale) - ndx.asarray(shift)
    weights, biases = network.host_parameters()  # any backend: from its host copy
    parameters = [ndx.asarray(np.ascontiguousarray(p, dtype=network.dtype))
                  for pair in zip(weights, biases) for p in pair]
    outputs = forward(ndx, parameters, get_activation(network.activation),
                      get_cost(network.cost), rows)
    if network.targets != "values":  # the probabilities predict_proba gives
        outputs = class_scores(ndx, get_cost(network.cost), outputs)
    named = {"outputs": outputs}
    if network.targets == "classes":
        named["label"] = ndx.argmax(outputs, axis=1)
    elif network.targets == "labels":
        named["label"] = ndx.astype(outputs > 0.5, ndx.int64)
    model = ndx.build({inputs: x}, named)
    version = _portamlp_version()
    facts = {METADATA_KEY: version, "layers": ",".join(map(str, network.layers)),
             "activation": network.activation, "cost": network.cost, "targets": network.targets,
             "dtype": network.dtype, "inputs": inputs,
             # how raw pixels become the features (in the graph unless inputs="features"),
             # in words and exactly
             "preprocessing": "none recorded" if network.preprocessing is None else
             network.preprocessing.describe(),
             "preprocessing_json": json.dumps(None if network.preprocessing is None else
                                              network.preprocessing.to_dict()),
             "preprocessing_in_graph": "yes" if prep is not None else "no",
             "opset": max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
                          default=0)}
    for key, value in facts.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)
    model.producer_name, model.producer_version = "portamlp", version
    return model


def export_onnx(network: Network, path: str | os.PathLike, *, inputs: str = "features",
                overwrite: bool = False, check: Any = None) -> Path:
    """Write ``network`` as an ONNX model, atomically.

    Parameters
    ----------
    network : Network
        On any backend (a CuPy or PyTorch network exports from its host copy: the same graph).
    path : str or path-like
        The ``.onnx`` file; an existing one is replaced only with ``overwrite=True``.
    inputs : {"features", "pixels", "images"}
        What the graph takes (input name the same): the network's features ``(N, n_in)``; or
        raw pixels 0–255 as rows ``(N, n_in)`` or images ``(N, 28, 28)``, prepared inside the
        graph as the network records (÷255, ÷256 or standardisation). Float, in the network's
        dtype.
    overwrite : bool
    check : array, optional
        Inputs (as the graph takes them) to run through ONNX Runtime and compare with
        :meth:`Network.predict` / ``predict_proba`` (:func:`check_onnx`) before the file is
        written.

    Returns
    -------
    Path
        The file written. Its outputs: ``"outputs"`` (class probabilities, or the values), and
        ``"label"`` for classifiers (int64). Its metadata: ``portamlp`` (the version), layers,
        activation, cost, targets, dtype, inputs, preprocessing and the ONNX opset.
    """
    path = Path(path)
    if path.suffix.lower() != ".onnx":
        raise ValueError(f"{path}: an ONNX export is a .onnx file")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True (--force on the "
                              "command line) to replace it")
    check_writable_folder(path.parent)
    model = build_graph(network, inputs)
    _module("onnx").checker.check_model(model)
    data = model.SerializeToString()
    if check is not None:
        check_onnx(data, network, check, inputs)
    atomic_write_bytes(path, data, overwrite=overwrite)
    return path


def _prepared(network: Network, x: np.ndarray, inputs: str) -> np.ndarray:
    """What :meth:`Network.predict` takes for graph inputs ``x``."""
    rows = x.reshape(len(x), -1)
    prep = _pixel_scale(network, inputs)
    return rows if prep is None else prep.apply(rows, network.dtype)


def check_onnx(model: Any, network: Network, x: Any, inputs: str = "features",
               atol: float = 1e-5) -> dict[str, float]:
    """Run ``model`` (bytes or a path) on ``x`` with ONNX Runtime and compare with ``network``.

    Raises AssertionError when a label differs from :meth:`Network.predict` or an output differs
    by more than ``atol``; returns ``{"rows", "largest_difference"}``.
    """
    ort = _module("onnxruntime")
    session = ort.InferenceSession(model if isinstance(model, bytes) else str(model),
                                   providers=["CPUExecutionProvider"])
    x = np.asarray(x, dtype=network.dtype)
    n_in = int(network.layers[0])
    side = int(round(n_in ** 0.5))
    wanted = (side, side) if inputs == "images" else (n_in,)
    if x.ndim != len(wanted) + 1 or tuple(x.shape[1:]) != wanted:
        raise ValueError(f"check inputs of shape {x.shape}; the graph takes {inputs} of shape "
                         f"(N, {', '.join(map(str, wanted))})")
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {inputs: x})))
    rows = _prepared(network, x, inputs)
    if network.targets == "values":
        expected = to_numpy(network.predict(rows))
    else:
        expected = to_numpy(network.predict_proba(rows))
    difference = float(np.max(np.abs(got["outputs"] - expected))) if len(x) else 0.0
    if not difference <= atol:
        raise AssertionError(f"ONNX Runtime's outputs differ from portamlp's by {difference:.3g} "
                             f"(more than {atol:g})")
    if "label" in got:
        labels = to_numpy(network.predict(rows))
        wrong = int(np.sum(np.any((got["label"] != labels).reshape(len(x), -1), axis=1)))
        if wrong:
            raise AssertionError(f"ONNX Runtime's labels differ from Network.predict on {wrong} "
                                 f"of {len(x)} rows")
    return {"rows": float(len(x)), "largest_difference": difference}


def read_onnx_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata of a ``.onnx`` file; ValueError when portamlp did not export it."""
    onnx = _module("onnx")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - any parse failure means "not an ONNX model"
        raise ValueError(f"{path}: not an ONNX model ({type(exc).__name__})") from None
    meta = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY not in meta:
        raise ValueError(f"{path}: an ONNX model, but not one portamlp exported (no "
                         f"{METADATA_KEY!r} metadata entry); portamlp reads its own exports")
    return meta
