"""The application behind ``portamlp serve``: what the drawing page asks for, with no transport.

This module owns :class:`DigitApp` (a network, how its inputs are made, the embedded MNIST test
set, and the page's files), the requests' errors (:class:`RequestError`, each with the HTTP
status it is answered with) and :func:`decode_image`, which turns the JSON body of a predict
request into an image. It knows nothing of sockets or ``http.server`` (:mod:`.web` carries it
over HTTP): a test, a benchmark or another transport can call it directly.

The page's files (HTML, JavaScript and CSS) are package data in ``portamlp/cli/static/``; they
are read once, when the application is made, so that an incomplete installation is reported at
start and not at the first request.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import json
import math
import random
import threading
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import numpy as np

__all__ = ["DigitApp", "RequestError", "decode_image", "PAGE_FILES", "MIN_SIDE", "MAX_SIDE",
           "MAX_LAYER_UNITS", "query_int", "query_flag", "activations_asked"]

#: Smallest and largest width or height of an image sent to /api/predict (400 outside).
MIN_SIDE, MAX_SIDE = 8, 1024
#: The page's files, in the ``static/`` folder of :mod:`portamlp.cli` (package data).
PAGE_FILES = ("index.html", "app.js", "network.js", "style.css")
#: The most units of a layer /api/weights sends at once (the page's weight-image grid).
MAX_LAYER_UNITS = 256
#: The package whose ``static/`` folder holds the page's files.
_STATIC_PACKAGE = "portamlp.cli"


class RequestError(Exception):
    """A bad request: answered with ``status`` and ``{"error": message}``; the server goes on.

    Parameters
    ----------
    status : int
        The HTTP status (4xx).
    message : str
        One line naming the problem and the fix.
    drain : int
        Bytes of unread body to throw away after answering (then the connection closes).
    """

    def __init__(self, status: int, message: str, *, drain: int = 0):
        super().__init__(message)
        self.status = status
        self.message = message
        self.drain = drain


class DigitApp:
    """What the page talks to: a network, how its inputs are made, and the embedded MNIST test set.

    Parameters
    ----------
    network : portamlp.Network
        784 inputs and 10 classes.
    preprocessing : portamlp.datasets.Preprocessing
        How 0–255 pixels become the network's inputs.
    name : str
        The model's name, shown on the page.
    test_accuracy : float, optional
        From the model's run record.
    seed : int, optional
        Seed of the random choice of test digits.

    Raises
    ------
    ValueError
        When the network does not have 784 inputs and 10 classes.
    ImportError
        When Pillow, which prepares the drawings, is not installed.
    FileNotFoundError
        When one of the page's files is missing from the installation.
    """

    def __init__(self, network, preprocessing, *, name: str = "network",
                 test_accuracy: float | None = None, seed: int | None = None):
        from ...datasets import read_split

        _check_layers(network, name)
        _check_pillow()
        self.network = network
        self.preprocessing = preprocessing
        self.name = name
        self.test_accuracy = test_accuracy
        self._lock = threading.Lock()  # one forward pass at a time, whatever the backend
        self._random = random.Random(seed)
        self._images, self._labels = read_split("mnist", "test")
        self._files = {file: _read_page_file(file) for file in PAGE_FILES}

    @classmethod
    def from_model(cls, model, *, backend: str | None = None, device: Any = None,
                   scale: Any = None, seed: int | None = None) -> DigitApp:
        """Load a saved network and its run record; inputs are prepared as ``portamlp predict``
        prepares them.

        Parameters
        ----------
        model : str or path-like
            A saved network: ``.json``, ``.safetensors`` or a checkpoint directory.
        backend : str, optional
            The backend to run on (default: auto).
        device : optional
            The backend's device, e.g. ``"cuda:1"``.
        scale : optional
            Pixel scaling (255, 256 or ``"standardize"``); default: the model's own.
        seed : int, optional
            Seed of the random choice of test digits.

        Returns
        -------
        DigitApp
            Named after the model's file, with the test accuracy of its run record (None
            without one). A model trained on another data set than MNIST is warned about.
        """
        import portamlp

        from ...errors import warn
        from ...files.run_records import read_run_record
        from ..tools import preprocessing_for

        model = Path(model)
        net = portamlp.load(model, backend=backend, device=device)
        _check_layers(net, model)
        record = read_run_record(model)
        dataset = record.get("options", {}).get("dataset") if isinstance(
            record.get("options"), dict) else None
        if dataset not in (None, "mnist"):
            warn(f"{model} was trained on {dataset!r}; this page classifies handwritten digits "
                 "and its test digits come from MNIST")
        prep = preprocessing_for(model, net, "mnist", scale)
        accuracy = record.get("test_accuracy")
        if isinstance(accuracy, bool) or not isinstance(accuracy, (int, float)) \
                or not math.isfinite(accuracy):
            accuracy = None
        return cls(net, prep, name=model.name, test_accuracy=accuracy, seed=seed)

    def model_info(self) -> dict[str, Any]:
        """The loaded model, for the page's heading.

        Returns
        -------
        dict
            ``name``, ``layers``, ``activation``, ``cost``, ``dtype``, ``backend``,
            ``parameters`` (weights and biases), ``scale`` and ``test_accuracy`` (or None).
        """
        net = self.network
        return {
            "name": self.name,
            "layers": list(net.layers),
            "activation": net.activation,
            "cost": net.cost,
            "dtype": net.dtype,
            "backend": net.backend.name,
            "parameters": sum(a * b + b for a, b in zip(net.layers[:-1], net.layers[1:])),
            "scale": self.preprocessing.scale,
            "test_accuracy": self.test_accuracy,
        }

    def layer_activations(self, digit: np.ndarray) -> list[list[float]]:
        """Every layer's activations for one prepared image (:meth:`portamlp.Network.
        activations`, the forward pass of prediction): one list per layer after the input,
        hidden layers first, the output layer last."""
        from ...backends import to_numpy

        x = self.preprocessing.apply(digit.reshape(1, 784), self.network.dtype)
        with self._lock:
            layers = self.network.activations(x)
        return [[float(v) for v in np.asarray(to_numpy(a))[0]] for a in layers]

    def weights(self, layer: int, unit: int | None = None) -> dict[str, Any]:
        """The weights into one unit of a layer, or into every unit of a small layer.

        Parameters
        ----------
        layer : int
            1 for the weights into the first hidden layer (from the 784 pixels), up to the
            number of weight layers (into the output layer).
        unit : int, optional
            Which unit of that layer; None: all of them (:data:`MAX_LAYER_UNITS` at most).

        Returns
        -------
        dict
            ``{"layer", "unit", "inputs", "weights", "bias"}`` for one unit (``weights``: its
            ``inputs`` incoming weights); ``{"layer", "units", "inputs", "weights",
            "biases"}`` for a whole layer (``weights``: one list per unit).

        Raises
        ------
        RequestError
            (400) for a layer or unit out of range, or a whole layer over the limit.
        """
        from ...backends import to_numpy

        net = self.network
        n = len(net.layers) - 1
        if not 1 <= layer <= n:
            into = "the first hidden layer" if n > 1 else "the output layer"
            raise RequestError(400, f"layer {layer} is out of range: the network has weight "
                                    f"layers 1 to {n} (1 = from the pixels into {into})")
        with self._lock:
            w = np.asarray(to_numpy(net.weights[layer - 1]), dtype=np.float64)
            b = np.asarray(to_numpy(net.biases[layer - 1]), dtype=np.float64)
        units, inputs = w.shape
        if unit is None:
            if units > MAX_LAYER_UNITS:
                raise RequestError(400, f"layer {layer} has {units} units; the whole layer is "
                                        f"sent for {MAX_LAYER_UNITS} or fewer: ask for one "
                                        f"with unit=J (0 to {units - 1})")
            return {"layer": layer, "units": units, "inputs": inputs,
                    "weights": w.tolist(), "biases": b.tolist()}
        if not 0 <= unit < units:
            raise RequestError(400, f"unit {unit} is out of range: layer {layer} has {units} "
                                    f"units (0 to {units - 1})")
        return {"layer": layer, "unit": unit, "inputs": inputs, "weights": w[unit].tolist(),
                "bias": float(b[unit])}

    def probabilities(self, digit: np.ndarray) -> np.ndarray:
        """Class probabilities of one prepared image.

        Parameters
        ----------
        digit : numpy.ndarray
            A 28×28 (or 784) uint8 image, as :func:`portamlp.images.prepare_digit` makes.

        Returns
        -------
        numpy.ndarray
            The ten probabilities, shape (10,), on the host.
        """
        from ...backends import to_numpy

        x = self.preprocessing.apply(digit.reshape(1, 784), self.network.dtype)
        with self._lock:
            return np.asarray(to_numpy(self.network.predict_proba(x)))[0]

    def predict(self, image: np.ndarray, *, activations: bool = False) -> dict[str, Any]:
        """The answer for a drawn image.

        Parameters
        ----------
        image : numpy.ndarray
            Any size, ``(height, width)`` or ``(height, width, channels)`` with 1–4 channels of
            0–255 values (as :func:`decode_image` returns).
        activations : bool
            Also answer every layer's activations (``"activations"``, see
            :meth:`layer_activations`).

        Returns
        -------
        dict
            ``{"prediction", "probabilities", "input"}``, ``input`` being the 784 pixels the
            network saw (and ``"activations"`` when asked); for an image without ink,
            ``{"prediction": None, "error": "no digit found", "detail"}`` instead of a guess.
        """
        from ...images import BlankImageError, prepare_digit

        try:
            digit = prepare_digit(image)
        except BlankImageError as exc:
            detail = str(exc).removeprefix("the image: ")
            return {"prediction": None, "error": "no digit found", "detail": detail}
        return self._answer(digit, activations)

    def test_digit(self, index: int | None = None, *,
                   activations: bool = False) -> dict[str, Any]:
        """A test image of the embedded MNIST, with the network's answer and its true label.

        Parameters
        ----------
        index : int, optional
            Which test image (default: a random one).
        activations : bool
            Also answer every layer's activations.

        Returns
        -------
        dict
            ``{"index", "label", "correct", "prediction", "probabilities", "input"}``.

        Raises
        ------
        RequestError
            (400) when ``index`` is out of range.
        """
        n = len(self._labels)
        if index is None:
            index = self._random.randrange(n)
        elif not 0 <= index < n:
            raise RequestError(400, f"index {index} is out of range: the MNIST test set has {n} "
                                    f"images (0 to {n - 1})")
        answer = self._answer(np.asarray(self._images[index]), activations)
        label = int(self._labels[index])
        return {"index": index, "label": label, "correct": answer["prediction"] == label,
                **answer}

    def _answer(self, digit: np.ndarray, activations: bool = False) -> dict[str, Any]:
        proba = self.probabilities(digit)
        answer = {"prediction": int(np.argmax(proba)),
                  "probabilities": [float(p) for p in proba],
                  "input": digit.reshape(-1).tolist()}
        if activations:
            answer["activations"] = self.layer_activations(digit)
        return answer

    def page_file(self, name: str) -> bytes | None:
        """The bytes of one of the page's files.

        Parameters
        ----------
        name : str
            A name of :data:`PAGE_FILES`, e.g. ``"app.js"``.

        Returns
        -------
        bytes or None
            None for a name that is not one of the page's files.
        """
        return self._files.get(name)


def _check_layers(network, name) -> None:
    if (network.layers[0], network.layers[-1]) != (784, 10):
        raise ValueError(
            f"{name}: the page needs a network with 784 inputs (28×28 images) and 10 classes "
            f"(digits); this one has layers {list(network.layers)}")


def _check_pillow() -> None:
    """prepare_digit scales drawings with Pillow: say so at start, not at every request."""
    try:
        import PIL  # noqa: F401
    except ImportError:
        raise ImportError('portamlp serve prepares drawings with Pillow: pip install '
                          '"portamlp[serve]" (or "portamlp[images]")') from None


def _read_page_file(name: str) -> bytes:
    try:
        return (resources.files(_STATIC_PACKAGE) / "static" / name).read_bytes()
    except OSError:
        raise FileNotFoundError(
            f"the page's file portamlp/cli/static/{name} is missing: the installation is "
            "incomplete, reinstall portamlp (pip install --force-reinstall portamlp)") from None


def _query_value(query: str, name: str) -> str | None:
    """The one value of ``name`` in a URL query (None when absent); 400 when it is given twice."""
    values = parse_qs(query, keep_blank_values=True).get(name)
    if not values:
        return None
    if len(values) > 1:
        raise RequestError(400, f"{name} is given {len(values)} times; give it once")
    return values[0]


def query_int(query: str, name: str) -> int | None:
    """The integer ``name`` of a URL query, None when absent; 400 otherwise."""
    value = _query_value(query, name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise RequestError(400, f"{name} must be an integer, got {value!r}") from None


def query_flag(query: str, name: str) -> bool:
    """Whether the URL query asks for ``name`` (``name=1`` or ``name=true``); 400 for another
    value, an empty one included."""
    value = _query_value(query, name)
    if value is None:
        return False
    if value.lower() not in ("1", "true", "0", "false"):
        raise RequestError(400, f"{name} must be 1, true, 0 or false, got {value!r}")
    return value.lower() in ("1", "true")


#: The fields of a predict request's body.
PREDICT_FIELDS = ("width", "height", "channels", "pixels", "activations")


def activations_asked(payload: Any) -> bool:
    """The predict request's optional ``"activations"`` (a JSON boolean); 400 for a field that
    is not one of :data:`PREDICT_FIELDS` (a misspelt one would be ignored otherwise)."""
    if not isinstance(payload, dict):
        return False
    for key in payload:
        if key not in PREDICT_FIELDS:
            close = difflib.get_close_matches(str(key), PREDICT_FIELDS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise RequestError(400, f"unknown field {key!r}{hint}; the body's fields are "
                                    f"{list(PREDICT_FIELDS)}")
    value = payload.get("activations", False)
    if not isinstance(value, bool):
        raise RequestError(400, f"'activations' must be true or false, got "
                                f"{json.dumps(value)}")
    return value


def decode_image(payload: Any) -> np.ndarray:
    """The image of a /api/predict request.

    Parameters
    ----------
    payload : Any
        The request's decoded JSON: ``{"width": W, "height": H, "channels": C, "pixels":
        base64}``, the pixels being ``H × W × C`` bytes in row-major order (a canvas's RGBA
        data has C = 4, the default). W and H are :data:`MIN_SIDE` to :data:`MAX_SIDE`.

    Returns
    -------
    numpy.ndarray
        uint8, ``(height, width)`` for one channel, else ``(height, width, channels)``.

    Raises
    ------
    RequestError
        (400) for anything missing or malformed, naming the field.
    """
    if not isinstance(payload, dict):
        raise RequestError(400, "the body must be a JSON object {\"width\", \"height\", "
                                "\"channels\", \"pixels\"}")
    sizes = {}
    for key, low, high in (("width", MIN_SIDE, MAX_SIDE), ("height", MIN_SIDE, MAX_SIDE),
                           ("channels", 1, 4)):
        value = payload.get(key, 4 if key == "channels" else None)
        if isinstance(value, bool) or not isinstance(value, int):
            raise RequestError(400, f"wrong image size: {key!r} must be an integer, got "
                                    f"{value!r}")
        if not low <= value <= high:
            raise RequestError(400, f"wrong image size: {key!r} must be {low} to {high}, got "
                                    f"{value}")
        sizes[key] = value
    pixels = payload.get("pixels")
    if not isinstance(pixels, str):
        raise RequestError(400, "'pixels' must be a base64 string of height × width × channels "
                                "bytes")
    try:
        raw = base64.b64decode(pixels, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(400, "'pixels' is not valid base64") from None
    w, h, c = sizes["width"], sizes["height"], sizes["channels"]
    if len(raw) != w * h * c:
        raise RequestError(400, f"wrong image size: 'pixels' holds {len(raw)} bytes but "
                                f"{h} × {w} × {c} = {h * w * c} were announced")
    image = np.frombuffer(raw, dtype=np.uint8).reshape(h, w, c)
    return image[:, :, 0] if c == 1 else image
