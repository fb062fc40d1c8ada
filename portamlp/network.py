"""The multilayer perceptron: parameters, forward pass, backpropagation and prediction.

Notation follows Nielsen's *Neural Networks and Deep Learning* (and 3Blue1Brown's series):
for layer ``l``, ``zˡ = aˡ⁻¹ Wˡᵀ + bˡ`` and ``aˡ = σ(zˡ)``; the error of the output layer is
``δᴸ`` (see :mod:`portamlp.losses`) and it travels back as ``δˡ = (δˡ⁺¹ Wˡ⁺¹) ⊙ σ'(zˡ)``.
Weights have shape ``(n_out, n_in)`` as in Nielsen's ``network.py``; a mini-batch is a matrix
whose rows are samples, so one matrix product handles the whole batch.

All the maths goes through the array namespace ``xp`` of the network's backend: the same code runs
on NumPy, CuPy, PyTorch and array-api-strict. Only initialisation touches NumPy, on the host, so
that one seed gives the same initial network on every backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .activations import Activation, get_activation
from .backend import Backend, get_backend, to_numpy
from .host import host_labels, host_numeric, initial_parameters, is_integer, make_rng
from .losses import Cost, get_cost

__all__ = ["Network", "INITS", "check_layers"]

#: Weight initialisations accepted by :meth:`Network.initialize`.
INITS = ("auto", "normal", "scaled", "glorot", "he")

#: Rows per chunk when predicting on large inputs (bounds temporary memory).
_PREDICT_CHUNK = 8192


def check_layers(layers: Any) -> tuple[int, ...]:
    """Validate a layer-size list such as ``(784, 30, 10)`` and return it as a tuple of ints."""
    if isinstance(layers, str):
        try:
            layers = [int(s) for s in layers.replace(" ", "").split(",") if s]
        except ValueError:
            raise ValueError(
                f"layers={layers!r} is not a comma-separated list of integers") from None
    try:
        sizes = tuple(layers)
    except TypeError:
        raise TypeError("layers must be a sequence of integers such as (784, 30, 10), got "
                        f"{layers!r}") from None
    if len(sizes) < 2:
        raise ValueError(
            f"layers={list(sizes)!r} needs at least 2 sizes (inputs and outputs), "
            "e.g. (784, 30, 10)"
        )
    for s in sizes:
        if not is_integer(s):
            raise TypeError(f"layer sizes must be integers, got {s!r} in layers={list(sizes)!r}")
        if s < 1:
            raise ValueError(f"layer sizes must be positive, got {s} in layers={list(sizes)!r}")
    if sizes[-1] < 2:
        raise ValueError(f"the output layer needs at least 2 classes, got layers={list(sizes)!r}")
    return tuple(int(s) for s in sizes)


class Network:
    """A fully connected feed-forward network.

    Build one with :meth:`Network.initialize` (random weights), :meth:`Network.from_arrays`
    (given weights) or :func:`portamlp.load` (from a file); :func:`portamlp.train` returns one.

    Attributes
    ----------
    backend : Backend
        Where the parameters live.
    weights : list of arrays
        ``weights[l]`` has shape ``(layers[l + 1], layers[l])``.
    biases : list of arrays
        ``biases[l]`` has shape ``(layers[l + 1],)``.
    activation : str
        Hidden-layer activation (``"sigmoid"``, ``"relu"``, ``"leaky_relu"``, ``"tanh"``).
    cost : str
        ``"quadratic"`` (output layer uses ``activation``) or ``"cross_entropy"`` (softmax output).
    """

    def __init__(self, weights: list, biases: list, *, activation: str = "sigmoid",
                 cost: str = "quadratic", backend: Backend):
        self.backend = backend
        self.weights = list(weights)
        self.biases = list(biases)
        self._activation: Activation = get_activation(activation)
        self._cost: Cost = get_cost(cost)

    # ----------------------------------------------------------------- construction
    @classmethod
    def initialize(cls, layers: Sequence[int], *, activation: str = "sigmoid",
                   cost: str = "quadratic", init: str = "auto", dtype: str = "float32",
                   seed: Any = None,
                   backend: str | Backend | None = None, device: Any = None) -> Network:
        """A network with random initial weights, drawn on the host and moved to the backend.

        Parameters
        ----------
        layers : sequence of int
            Layer sizes, inputs first and classes last, e.g. ``(784, 30, 10)``.
        activation, cost : str
            See the class attributes.
        init : {"auto", "normal", "scaled", "glorot", "he"}
            ``"normal"``: weights and biases N(0, 1) (Nielsen's chapter 1, the original program);
            ``"scaled"``: weights N(0, 1/n_in), biases N(0, 1); ``"glorot"``: weights
            N(0, 2/(n_in + n_out)), zero biases; ``"he"``: weights N(0, 2/n_in), zero biases.
            ``"auto"`` chooses normal for sigmoid, He for ReLU, Glorot for tanh.
        dtype : {"float32", "float64"}
        seed : int or numpy.random.Generator, optional
            The same seed gives the same initial network on every backend.
        backend, device : optional
            See :func:`portamlp.get_backend`.
        """
        layers = check_layers(layers)
        act = get_activation(activation)
        cost_ = get_cost(cost)
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}; choose one of {INITS}")
        be = get_backend(backend, device)
        xp_dtype = be.dtype(dtype)
        ws, bs = initial_parameters(layers, init, act.name, make_rng(seed),
                                    dtype if isinstance(dtype, str) else "float32")
        return cls([be.asarray(w, xp_dtype) for w in ws], [be.asarray(b, xp_dtype) for b in bs],
                   activation=act.name, cost=cost_.name, backend=be)

    @classmethod
    def from_arrays(cls, weights: Sequence[Any], biases: Sequence[Any], *,
                    activation: str = "sigmoid", cost: str = "quadratic",
                    backend: str | Backend | None = None, device: Any = None,
                    dtype: str | None = None) -> Network:
        """Build a network from given parameters (host or device arrays).

        Parameters
        ----------
        weights : sequence of arrays of shape (n_out, n_in)
        biases : sequence of arrays of shape (n_out,)
        activation, cost : str
        backend, device : optional
            Where to put the parameters (default: see :func:`portamlp.get_backend`).
        dtype : {"float32", "float64"}, optional
            Default: float64 if the given weights are float64, else float32.
        """
        if len(weights) != len(biases) or len(weights) == 0:
            raise ValueError(
                f"need one bias vector per weight matrix and at least one layer; got "
                f"{len(weights)} weight matrices and {len(biases)} bias vectors"
            )
        # copies: training updates parameters in place, the caller's arrays must not change
        host_w = [host_numeric(w, f"weights[{i}]").copy() for i, w in enumerate(weights)]
        host_b = [host_numeric(b, f"biases[{i}]").copy() for i, b in enumerate(biases)]
        for i, (w, b) in enumerate(zip(host_w, host_b)):
            if w.ndim != 2:
                raise ValueError(f"weights[{i}] must be 2-D (n_out, n_in), got shape {w.shape}")
            if b.shape != (w.shape[0],):
                raise ValueError(
                    f"biases[{i}] must have shape ({w.shape[0]},) to match weights[{i}] of shape "
                    f"{w.shape}, got {b.shape}"
                )
            if i and w.shape[1] != host_w[i - 1].shape[0]:
                raise ValueError(
                    f"weights[{i}] has {w.shape[1]} inputs but layer {i} has "
                    f"{host_w[i - 1].shape[0]} units (weights[{i - 1}] shape {host_w[i - 1].shape})"
                )
        if dtype is None:
            dtype = "float64" if host_w[0].dtype.name == "float64" else "float32"
        check_layers([host_w[0].shape[1]] + [w.shape[0] for w in host_w])
        be = get_backend(backend, device)
        xp_dtype = be.dtype(dtype)
        return cls([be.asarray(w, xp_dtype) for w in host_w],
                   [be.asarray(b, xp_dtype) for b in host_b],
                   activation=activation, cost=cost, backend=be)

    # ------------------------------------------------------------------ properties
    @property
    def layers(self) -> tuple[int, ...]:
        """Layer sizes, inputs first: ``(784, 30, 10)``."""
        return (int(self.weights[0].shape[1]),) + tuple(int(w.shape[0]) for w in self.weights)

    @property
    def activation(self) -> str:
        return self._activation.name

    @property
    def cost(self) -> str:
        return self._cost.name

    @property
    def dtype(self) -> str:
        """``"float32"`` or ``"float64"``."""
        return "float64" if self.weights[0].dtype == self.backend.xp.float64 else "float32"

    @property
    def xp(self):
        return self.backend.xp

    def parameters(self) -> list:
        """Weights and biases interleaved: ``[W¹, b¹, W², b², ...]`` (the optimizer's view)."""
        return [p for wb in zip(self.weights, self.biases) for p in wb]

    def __repr__(self) -> str:
        return (f"Network(layers={list(self.layers)}, activation={self.activation!r}, "
                f"cost={self.cost!r}, dtype={self.dtype!r}, backend={self.backend.name!r})")

    # --------------------------------------------------------------------- maths
    def _forward(self, x):
        """Forward pass keeping every ``z`` and activation (for backpropagation)."""
        xp, f, output = self.backend.xp, self._activation.f, self._cost.output
        zs, activations = [], [x]
        a = x
        last = len(self.weights) - 1
        for l, (w, b) in enumerate(zip(self.weights, self.biases)):
            z = a @ w.T + b
            a = output(xp, z, self._activation) if l == last else f(xp, z)
            zs.append(z)
            activations.append(a)
        return zs, activations

    def _backprop(self, x, y, *, with_loss: bool = True):
        """Gradients of the cost *summed* over the batch, and the summed cost (0-d, or None)
        divided by the cost's ``value_scale`` (the training loop multiplies once per epoch).

        ``x`` has shape (n, n_in); ``y`` is one-hot, shape (n, n_classes), same dtype and device.
        Returns ``(loss_sum, grads)`` with ``grads`` aligned with :meth:`parameters`:
        ``[∂C/∂W¹, ∂C/∂b¹, ∂C/∂W², ...]``. Divide by n for the batch mean; the optimizers fold
        that division into their step size, which saves an operation per mini-batch.
        """
        xp, act = self.backend.xp, self._activation
        f_prime, weights = act.f_prime, self.weights
        zs, activations = self._forward(x)
        loss, delta = self._cost.value_and_delta(xp, zs[-1], activations[-1], y, act, with_loss)
        n_layers = len(weights)
        grads = [None] * (2 * n_layers)
        for l in range(n_layers - 1, -1, -1):
            grads[2 * l] = delta.T @ activations[l]
            grads[2 * l + 1] = xp.sum(delta, axis=0)
            if l:
                delta = (delta @ weights[l]) * f_prime(xp, zs[l - 1], activations[l])
        return loss, grads

    def _output(self, x):
        """Output activations for a batch already on the device."""
        xp, act = self.backend.xp, self._activation
        a = x
        last = len(self.weights) - 1
        for l, (w, b) in enumerate(zip(self.weights, self.biases)):
            z = a @ w.T + b
            a = self._cost.output(xp, z, act) if l == last else act.f(xp, z)
        return a

    def _predict_labels(self, x):
        """Predicted class indices for device input, in chunks to bound memory."""
        xp = self.backend.xp
        n = x.shape[0]
        if n <= _PREDICT_CHUNK:
            return xp.argmax(self._output(x), axis=1)
        parts = [xp.argmax(self._output(x[i:i + _PREDICT_CHUNK, ...]), axis=1)
                 for i in range(0, n, _PREDICT_CHUNK)]
        return xp.concat(parts)

    # ------------------------------------------------------------------ public API
    def as_input(self, x: Any):
        """Validate ``x`` (shape (n, n_in)) and return it on this network's backend and dtype."""
        be = self.backend
        xp = be.xp
        dtype = self.weights[0].dtype
        if hasattr(x, "shape") and be.same_device(x):
            arr = x if x.dtype == dtype else xp.astype(x, dtype)
        else:
            arr = be.asarray(host_numeric(x, "x"), dtype)
        n_in = self.layers[0]
        if arr.ndim == 1 and arr.shape[0] == n_in:
            arr = xp.reshape(arr, (1, n_in))
        if arr.ndim != 2 or arr.shape[1] != n_in:
            raise ValueError(
                f"x must have shape (n_samples, {n_in}) for a network with layers "
                f"{list(self.layers)}, got shape {tuple(arr.shape)}"
            )
        return arr

    def as_labels(self, y: Any, n: int | None = None):
        """Validate integer class labels (shape (n,)) and return them on this backend as int64."""
        be = self.backend
        xp = be.xp
        if hasattr(y, "shape") and be.same_device(y):
            if not xp.isdtype(y.dtype, "integral"):
                raise TypeError(f"labels must be integer class indices, got dtype {y.dtype}")
            arr = y if y.dtype == xp.int64 else xp.astype(y, xp.int64)
            lo, hi = (int(xp.min(arr)), int(xp.max(arr))) if arr.shape[0] else (0, 0)
        else:
            host = host_labels(y)
            lo, hi = (int(host.min()), int(host.max())) if host.size else (0, 0)
            arr = be.asarray(host)
        if arr.ndim != 1:
            raise ValueError(f"labels must be 1-D (n_samples,), got shape {tuple(arr.shape)}")
        if n is not None and arr.shape[0] != n:
            raise ValueError(f"got {n} samples but {arr.shape[0]} labels; they must match")
        k = self.layers[-1]
        if lo < 0 or hi >= k:
            raise ValueError(f"labels must lie in [0, {k - 1}] for {k} output classes, "
                             f"found values in [{lo}, {hi}]")
        return arr

    def one_hot(self, labels):
        """One-hot rows (n, n_classes) in the network's dtype, from int64 labels on the device."""
        xp = self.backend.xp
        classes = xp.arange(self.layers[-1], dtype=labels.dtype, device=self.backend.device)
        return xp.astype(xp.expand_dims(labels, axis=1) == classes, self.weights[0].dtype)

    def predict_proba(self, x: Any):
        """Output activations, shape (n_samples, n_classes), on the network's backend.

        With ``cost="cross_entropy"`` these are softmax probabilities; with ``"quadratic"`` they
        are the output layer's activations (each in [0, 1] for the sigmoid, not summing to 1).
        """
        x = self.as_input(x)
        n = x.shape[0]
        if n <= _PREDICT_CHUNK:
            return self._output(x)
        return self.backend.xp.concat(
            [self._output(x[i:i + _PREDICT_CHUNK, ...]) for i in range(0, n, _PREDICT_CHUNK)]
        )

    def predict(self, x: Any):
        """Predicted class of each row of ``x`` (shape (n_samples, n_in)): the index of the
        highest output. Returns an int64 array of shape (n_samples,) on the network's backend."""
        return self._predict_labels(self.as_input(x))

    def evaluate(self, x: Any, y: Any) -> float:
        """Fraction of rows of ``x`` whose predicted class equals the label in ``y``."""
        x = self.as_input(x)
        y = self.as_labels(y, x.shape[0])
        if x.shape[0] == 0:
            raise ValueError("cannot evaluate on 0 samples")
        xp = self.backend.xp
        correct = xp.sum(xp.astype(self._predict_labels(x) == y, xp.int64))
        return int(correct) / x.shape[0]

    def loss(self, x: Any, y: Any) -> float:
        """Mean cost over the samples (labels ``y`` as class indices)."""
        x = self.as_input(x)
        y = self.as_labels(y, x.shape[0])
        total = self._cost.value(self.backend.xp, self._output(x), self.one_hot(y))
        return float(total) / x.shape[0]

    def gradients(self, x: Any, y: Any) -> tuple[list, list]:
        """Gradients ``(nabla_w, nabla_b)`` of the mean cost on the batch ``(x, y)``."""
        x = self.as_input(x)
        y = self.as_labels(y, x.shape[0])
        _, grads = self._backprop(x, self.one_hot(y), with_loss=False)
        scale = 1.0 / x.shape[0]
        return [g * scale for g in grads[0::2]], [g * scale for g in grads[1::2]]

    # ----------------------------------------------------------------- conversions
    def to(self, backend: str | Backend | None = None, device: Any = None) -> Network:
        """A copy of this network on another backend or device."""
        return Network.from_arrays(
            [to_numpy(w) for w in self.weights], [to_numpy(b) for b in self.biases],
            activation=self.activation, cost=self.cost, backend=backend, device=device,
            dtype=self.dtype,
        )

    def copy(self) -> Network:
        """An independent copy on the same backend and device."""
        return self.to(self.backend)

    def get_params(self) -> tuple[list, list]:
        """Host (NumPy) copies of ``(weights, biases)``."""
        return [to_numpy(w) for w in self.weights], [to_numpy(b) for b in self.biases]

    def save(self, path, *, format: str | None = None, overwrite: bool = False) -> None:
        """Save to ``path`` (JSON; see :mod:`portamlp.io`). Refuses to replace an existing file
        unless ``overwrite=True``. The write is atomic."""
        from .io import save

        save(self, path, format=format, overwrite=overwrite)

