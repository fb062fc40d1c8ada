"""The multilayer perceptron: parameters, forward pass, backpropagation and prediction.

Notation follows Nielsen's *Neural Networks and Deep Learning* (and 3Blue1Brown's series):
for layer ``l``, ``zˡ = aˡ⁻¹ Wˡᵀ + bˡ`` and ``aˡ = σ(zˡ)``; the error of the output layer is
``δᴸ`` (see :mod:`portamlp.nn.costs`) and it travels back as ``δˡ = (δˡ⁺¹ Wˡ⁺¹) ⊙ σ'(zˡ)``.
Weights have shape ``(n_out, n_in)`` as in Nielsen's ``network.py``; a mini-batch is a matrix
whose rows are samples, so one matrix product handles the whole batch.

All the maths goes through the array namespace ``xp`` of the network's backend: the same code runs
on NumPy, CuPy, PyTorch and array-api-strict. Initialisation draws on the host (NumPy), so that
one seed gives the same initial network on every backend. Every public method runs inside the
backend's device context (:meth:`portamlp.Backend.activate`).

The parameters are kept in one list, ``[W¹, b¹, W², b², ...]`` (:meth:`Network.parameters`);
``weights`` and ``biases`` are views of it. Optimizers update that list through the backend's
write-through helper (:mod:`portamlp.backends.writes`): in place where the library allows it,
by replacing its items where it does not.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar, overload

from ..backends import Backend, get_backend, memory_phase, to_numpy
from ..checks import check_dtype, check_layers
from ..datasets.scaling import Preprocessing
from ..datasets.staging import one_hot
from ..errors import warn
from .activations import Activation, get_activation
from .costs import Cost, get_cost
from .forward import class_scores, forward, layer_outputs
from .init import initial_parameters, make_rng
from .inputs import SparseRows, as_features, as_labels, as_targets, host_numeric

__all__ = ["Network", "LayerParameters", "CHUNK_ROWS", "forward", "class_scores", "layer_outputs"]

#: Rows per chunk when running the network on large inputs (bounds temporary memory).
CHUNK_ROWS = 8192

_F = TypeVar("_F", bound=Callable[..., Any])


def _on_device(method: _F) -> _F:
    """Run a method inside its network's device context."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self.backend.activate():
            return method(self, *args, **kwargs)
    return wrapper  # type: ignore[return-value]


class LayerParameters(Sequence):
    """The weights (or the biases) of every layer: a view of the network's parameter list.

    ``net.weights[l]`` reads and ``net.weights[l] = w`` replaces layer ``l``'s matrix in the
    network itself; ``list(net.weights)`` is a plain list.
    """

    def __init__(self, parameters: list, offset: int):
        self._parameters, self._offset = parameters, offset

    def __len__(self) -> int:
        return len(self._parameters) // 2

    @overload
    def __getitem__(self, index: int) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> list: ...
    def __getitem__(self, index):
        return self._parameters[self._offset::2][index]

    def __setitem__(self, index: int, value: Any) -> None:
        position = range(len(self))[index]  # negative indices and bounds, as for a list
        self._parameters[2 * position + self._offset] = value

    def __iter__(self) -> Iterator[Any]:
        return iter(self._parameters[self._offset::2])

    def __add__(self, other: Sequence) -> list:
        return list(self) + list(other)

    def __radd__(self, other: Sequence) -> list:
        return list(other) + list(self)

    def __repr__(self) -> str:
        return repr(list(self))


class Network:
    """A fully connected feed-forward network.

    Build one with :meth:`Network.initialize` (random weights), :meth:`Network.from_arrays`
    (given weights) or :func:`portamlp.load` (from a file); :func:`portamlp.train` returns one.

    Attributes
    ----------
    backend : Backend
        Where the parameters live.
    weights : LayerParameters
        ``weights[l]`` has shape ``(layers[l + 1], layers[l])`` (a view of :meth:`parameters`).
    biases : LayerParameters
        ``biases[l]`` has shape ``(layers[l + 1],)`` (a view of :meth:`parameters`).
    activation : str
        Hidden-layer activation (``"sigmoid"``, ``"relu"``, ``"leaky_relu"``, ``"tanh"``).
    cost : str
        ``"quadratic"`` (output layer uses ``activation``) or ``"cross_entropy"`` (softmax output).
    preprocessing : Preprocessing or None
        How raw pixels become this network's inputs (set by :func:`portamlp.train` on a named
        data set and stored in model files); None when unknown (trained on your own arrays).
    """

    def __init__(self, weights: list, biases: list, *, activation: str = "sigmoid",
                 cost: str = "quadratic", backend: Backend,
                 preprocessing: Preprocessing | None = None):
        self.backend = backend
        self._parameters: list = [p for wb in zip(weights, biases) for p in wb]
        self._activation: Activation = get_activation(activation)
        self._cost: Cost = get_cost(cost)
        self.preprocessing = preprocessing

    # ----------------------------------------------------------------- construction
    @classmethod
    def initialize(cls, layers: Sequence[int], *, activation: str = "sigmoid",
                   cost: str = "quadratic", init: str = "auto", dtype: Any = "float32",
                   seed: Any = None, backend: str | Backend | None = None,
                   device: Any = None) -> Network:
        """A network with random initial weights, drawn on the host and moved to the backend.

        Parameters
        ----------
        layers : sequence of int
            Layer sizes, inputs first and outputs (classes, values or labels) last, e.g.
            ``(784, 30, 10)``.
        activation, cost : str
            See the class attributes.
        init : {"auto", "normal", "scaled", "glorot", "he"}
            ``"normal"``: weights and biases N(0, 1) (Nielsen's chapter 1, the original program);
            ``"scaled"``: weights N(0, 1/n_in), biases N(0, 1); ``"glorot"``: weights
            N(0, 2/(n_in + n_out)), zero biases; ``"he"``: weights N(0, 2/n_in), zero biases.
            ``"auto"`` takes the activation's own: scaled for sigmoid, He for ReLU, Glorot for
            tanh and the identity.
        dtype : {"float32", "float64"} or a dtype object (``numpy.float64``, ...)
        seed : int or numpy.random.Generator, optional
            The same seed gives the same initial network on every backend.
        backend, device : optional
            See :func:`portamlp.get_backend`.

        Examples
        --------
        >>> import portamlp
        >>> net = portamlp.Network.initialize((784, 30, 10), seed=0)
        >>> net.layers, net.activation, net.backend.name
        ((784, 30, 10), 'sigmoid', 'numpy')
        >>> x, y = portamlp.datasets.load_mnist("test")
        >>> net.evaluate(x, y)          # untrained: about one digit in ten
        0.10
        """
        layers = check_layers(layers, min_outputs=_outputs_at_least(cost))
        act = get_activation(activation)
        cost_ = get_cost(cost)
        dtype = check_dtype(dtype)
        be = get_backend(backend, device)
        be.dtype(dtype)  # refused here when the library cannot compute in it (JAX's float64)
        itemsize = 8 if dtype == "float64" else 4
        n_params = sum(a * b + b for a, b in zip(layers[:-1], layers[1:]))
        with memory_phase(f"drawing the initial weights of layers {list(layers)} "
                          f"({n_params:,} parameters) on the host", be, "use smaller layers",
                          n_params * 8, host=True):
            ws, bs = initial_parameters(layers, init, make_rng(seed), dtype, auto=act.init)
        with be.activate(), memory_phase(f"initialisation of layers {list(layers)}", be,
                                         "use smaller layers", n_params * itemsize):
            return cls([be.asarray(w) for w in ws], [be.asarray(b) for b in bs],
                       activation=act.name, cost=cost_.name, backend=be)

    @classmethod
    def from_arrays(cls, weights: Sequence[Any], biases: Sequence[Any], *,
                    activation: str = "sigmoid", cost: str = "quadratic",
                    backend: str | Backend | None = None, device: Any = None,
                    dtype: Any = None, preprocessing: Preprocessing | None = None) -> Network:
        """Build a network from given parameters (host or device arrays; they are copied).

        Parameters
        ----------
        weights : sequence of arrays of shape (n_out, n_in)
            Nielsen's layout. PyTorch's ``Linear.weight`` has it too; Keras and scikit-learn
            store ``(n_in, n_out)``: pass their transposes.
        biases : sequence of arrays of shape (n_out,)
        activation, cost : str
        backend, device : optional
            Where to put the parameters (default: see :func:`portamlp.get_backend`).
        dtype : {"float32", "float64"}, optional
            Default: float64 if the given weights are float64, else float32.
        preprocessing : Preprocessing, optional
            How raw pixels become inputs (see the class attributes).
        """
        if len(weights) != len(biases) or len(weights) == 0:
            raise ValueError(
                f"need one bias vector per weight matrix and at least one layer; got "
                f"{len(weights)} weight matrices and {len(biases)} bias vectors"
            )
        # copies: training updates parameters in place, the caller's arrays must not change
        host_w = [host_numeric(w, f"weights[{i}]").copy() for i, w in enumerate(weights)]
        host_b = [host_numeric(b, f"biases[{i}]").copy() for i, b in enumerate(biases)]
        _check_shapes(host_w, host_b)
        if dtype is None:
            dtype = "float64" if host_w[0].dtype.name == "float64" else "float32"
        dtype = check_dtype(dtype)
        check_layers([host_w[0].shape[1]] + [w.shape[0] for w in host_w],
                     min_outputs=_outputs_at_least(cost))
        be = get_backend(backend, device)
        with be.activate():
            return cls([be.asarray(w, dtype) for w in host_w],
                       [be.asarray(b, dtype) for b in host_b],
                       activation=activation, cost=cost, backend=be, preprocessing=preprocessing)

    # ------------------------------------------------------------------ properties
    @property
    def weights(self) -> LayerParameters:
        """The weight matrices, ``weights[l]`` of shape ``(layers[l + 1], layers[l])``."""
        return LayerParameters(self._parameters, 0)

    @property
    def biases(self) -> LayerParameters:
        """The bias vectors, ``biases[l]`` of shape ``(layers[l + 1],)``."""
        return LayerParameters(self._parameters, 1)

    @property
    def layers(self) -> tuple[int, ...]:
        """Layer sizes, inputs first: ``(784, 30, 10)``."""
        ws = self._parameters[0::2]
        return (int(ws[0].shape[1]),) + tuple(int(w.shape[0]) for w in ws)

    @property
    def activation(self) -> str:
        """Name of the hidden-layer activation."""
        return self._activation.name

    @property
    def cost(self) -> str:
        """Name of the cost (``"quadratic"`` or ``"cross_entropy"``)."""
        return self._cost.name

    @property
    def cost_scale(self) -> float:
        """The constant that turns :meth:`backprop`'s raw cost into the cost (½ for the
        quadratic cost, −1 for cross-entropy): training multiplies once per epoch."""
        return self._cost.value_scale

    @property
    def loss_scale(self) -> float:
        """Alias of :attr:`cost_scale` (portamlp's word is "cost")."""
        return self.cost_scale

    @property
    def dtype(self) -> str:
        """``"float32"`` or ``"float64"``."""
        return "float64" if self._parameters[0].dtype == self.backend.xp.float64 else "float32"

    @property
    def xp(self):
        """The array namespace of the network's backend."""
        return self.backend.xp

    def parameters(self) -> list:
        """The network's own list of parameters, weights and biases interleaved:
        ``[W¹, b¹, W², b², ...]``. Optimizers write into it (in place, or by replacing its items
        on libraries without in-place updates); the network reads it."""
        return self._parameters

    def __repr__(self) -> str:
        return (f"Network(layers={list(self.layers)}, activation={self.activation!r}, "
                f"cost={self.cost!r}, dtype={self.dtype!r}, backend={self.backend.name!r})")

    # --------------------------------------------------------------------- maths
    def _forward(self, x, dropout=None):
        """Forward pass keeping what backpropagation needs: every ``zˡ``, every layer's input
        (after dropout, when ``dropout(l, a)`` applies it to layer ``l``'s input) and every
        activation ``σ(zˡ)`` (before dropout, for ``σ'``)."""
        xp, f, output = self.backend.xp, self._activation.f, self._cost.output
        zs, inputs, outputs = [], [], []
        a = x
        params = self._parameters
        last = len(params) // 2 - 1
        for l in range(last + 1):
            w, b = params[2 * l], params[2 * l + 1]
            inputs.append(a if dropout is None else dropout(l, a))
            z = inputs[l] @ w.T + b
            a = output(xp, z, self._activation) if l == last else f(xp, z)
            zs.append(z)
            outputs.append(a)
        return zs, inputs, outputs

    def backprop(self, x, targets, *, sample_weight=None, with_cost: bool = True,
                 dropout: Callable[[int, Any], Any] | None = None) -> tuple[Any, list]:
        """The cost and gradients of one mini-batch, summed over its samples: the training step.

        Parameters
        ----------
        x : array of shape (n, n_in)
            On the network's device, in its dtype (no checks: this is the hot path).
        targets : array of shape (n, n_classes)
            One-hot rows, same dtype and device.
        sample_weight : array of shape (n, 1), optional
            Each sample's cost and gradient are multiplied by its weight.
        with_cost : bool
            Also compute the cost (default True).
        dropout : callable, optional
            ``dropout(l, a)`` multiplies layer ``l``'s input ``a`` by that step's dropout mask
            (see :mod:`portamlp.training.dropout`); the same call masks the gradient flowing
            back.

        Returns
        -------
        cost : 0-d array or None
            The batch-summed cost divided by :attr:`cost_scale`, still on the device.
        grads : list of arrays
            Aligned with :meth:`parameters`: ``[∂C/∂W¹, ∂C/∂b¹, ∂C/∂W², ...]``, summed over the
            batch (divide by n for the batch mean; the optimizers fold that into their step).
        """
        xp, act = self.backend.xp, self._activation
        f_prime, params = act.f_prime, self._parameters
        zs, inputs, outputs = self._forward(x, dropout)
        cost, delta = self._cost.value_and_delta(xp, zs[-1], outputs[-1], targets, act,
                                                 with_cost, sample_weight)
        n_layers = len(params) // 2
        grads: list[Any] = [None] * (2 * n_layers)
        for l in range(n_layers - 1, -1, -1):
            grads[2 * l] = delta.T @ inputs[l]
            grads[2 * l + 1] = xp.sum(delta, axis=0)
            if l:
                back = delta @ params[2 * l]
                if dropout is not None:  # a dropped unit passed nothing forward, gets nothing back
                    back = dropout(l, back)
                delta = back * f_prime(xp, zs[l - 1], outputs[l - 1])
        return cost, grads

    def _output(self, x):
        """Output activations for one chunk already on the device."""
        return forward(self.backend.xp, self._parameters, self._activation, self._cost, x)

    def feedforward(self, x):
        """Output activations ``(n, n_classes)`` for ``x`` already on the network's device and
        in its dtype (no checks), computed in chunks of :data:`CHUNK_ROWS` rows."""
        xp, n = self.backend.xp, x.shape[0]
        with self.backend.activate():
            if n <= CHUNK_ROWS and not isinstance(x, SparseRows):
                return self._output(x)
            return xp.concat([self._output(x[i:min(i + CHUNK_ROWS, n), ...])
                              for i in range(0, n, CHUNK_ROWS)])

    def outputs_and_cost(self, x, targets, sample_weight=None) -> tuple[Any, Any]:
        """Output activations ``(n, n_classes)`` and the summed cost (a 0-d array), for ``x`` and
        one-hot ``targets`` already on the device (no checks, nothing read back), in chunks."""
        with self.backend.activate():
            outputs = self.feedforward(x)
            return outputs, self._cost.value(self.backend.xp, outputs, targets, sample_weight)

    # ------------------------------------------------------------------ public API
    def _as_input(self, x: Any):
        """``x`` checked and put on this network's backend, device and dtype (with a warning
        when it holds raw pixels for a network that records how it prepared its pixels)."""
        prep, usual = self.preprocessing, None
        if prep is not None:
            usual = (2.0 * prep.largest(), f"this network was trained on {prep.describe()}: "
                     "pass network.preprocessing.apply(pixels) (or load the data with "
                     "portamlp.datasets, which prepares it)")
        return as_features(x, self.backend, self.dtype, self.layers[0], layers=self.layers,
                           usual=usual)

    def _as_labels(self, y: Any, n: int | None = None):
        return as_labels(y, self.backend, n, self.layers[-1])

    def _as_targets(self, y: Any, n: int, dtype: Any):
        """``y`` as the cost's targets ``(n, k)``: one-hot rows of class indices, or the
        values or 0/1 indicators themselves."""
        be = self.backend
        if self.targets == "classes":
            return one_hot(be.xp, self._as_labels(y, n), self.layers[-1], dtype, be.device)
        return as_targets(y, be, n, self.layers[-1], self.dtype, kind=self.targets,
                          minimum=self._cost.min_target, cost=self.cost)

    @property
    def targets(self) -> str:
        """What the cost's targets are (:attr:`portamlp.nn.costs.Cost.targets`):
        ``"classes"``, ``"values"`` (regression) or ``"labels"`` (several per sample)."""
        return self._cost.targets

    @_on_device
    def predict_proba(self, x: Any):
        """Class scores of each row, shape (n_samples, n_classes), rows summing to 1.

        With ``cost="cross_entropy"`` these are the softmax probabilities. With ``"quadratic"``
        the output layer's activations are independent units, not probabilities: each row is
        shifted up to be non-negative (only where an output is negative, as tanh's can be) and
        divided by its sum (uniform where all are equal), so that the rows sum to 1 and the
        highest stays the prediction; :meth:`feedforward` gives them raw. Inputs from another
        library are copied to the network's backend; the result lives there.
        """
        if self.targets == "values":
            raise TypeError(f"predict_proba is for classifiers; this network's cost "
                            f"{self.cost!r} fits values: predict gives them")
        return class_scores(self.backend.xp, self._cost, self.feedforward(self._as_input(x)))

    @_on_device
    def activations(self, x: Any) -> list:
        """Every layer's activations for the rows of ``x`` (shape (n_samples, n_in)): one array
        per layer after the input, ``(n_samples, layers[l])``, the hidden layers' ``σ(z)``
        then the output layer's (as :meth:`feedforward` gives it). The same forward pass as
        prediction; what the draw-a-digit page lights up and ``portamlp plot activations``
        draws. The arrays live on the network's backend."""
        x = self._as_input(x)
        if isinstance(x, SparseRows):
            x = x[0:x.shape[0], ...]  # made dense, as a prediction chunk is
        return list(layer_outputs(self.backend.xp, self._parameters, self._activation,
                                  self._cost, x))

    @_on_device
    def predict(self, x: Any):
        """Predicted class of each row of ``x`` (shape (n_samples, n_in)): the index of the
        highest output, an int64 array of shape (n_samples,). A regression network (its cost's
        targets are values) gives its outputs, shape (n_samples, k); one fitting several
        labels per sample gives 0/1 indicators (outputs above ½), int64 (n_samples, k). The
        result lives on the network's backend (inputs from another library are copied there
        first)."""
        xp = self.backend.xp
        a = self.feedforward(self._as_input(x))
        if self.targets == "values":
            return a
        if self.targets == "labels":
            return xp.astype(a > 0.5, xp.int64)
        return xp.argmax(a, axis=1)

    @_on_device
    def evaluate(self, x: Any, y: Any = None, *, split: str = "test", **load_options) -> float:
        """Fraction of rows of ``x`` whose predicted class equals the label in ``y``.

        A regression network gives the mean squared error instead (over rows and outputs, as
        scikit-learn's ``mean_squared_error``); one fitting several labels per sample, the
        fraction of rows whose every label is right (scikit-learn's subset accuracy).

        ``x`` may also name a data set (``net.evaluate("mnist")``): its ``split`` is loaded and
        prepared with the network's own :attr:`preprocessing` (÷255, with a warning, when the
        network does not know it); ``load_options`` go to :func:`portamlp.datasets.load`.
        """
        if isinstance(x, str):
            if y is not None:
                raise TypeError("evaluate(name) loads the labels itself; pass no y")
            x, y = self._load_dataset(x, split, **load_options)
        elif y is None:
            raise TypeError("evaluate(x, y) needs the labels y (or a data set name as x)")
        x = self._as_input(x)
        if x.shape[0] == 0:
            raise ValueError("cannot evaluate on 0 samples")
        xp = self.backend.xp
        if self.targets != "classes":
            t = self._as_targets(y, x.shape[0], x.dtype)
            a = self.feedforward(x)
            if self.targets == "values":
                return float(xp.mean((a - t) ** 2))
            hits = xp.all(xp.astype(a > 0.5, t.dtype) == t, axis=1)
            return int(xp.sum(xp.astype(hits, xp.int64))) / x.shape[0]
        y = self._as_labels(y, x.shape[0])
        predicted = xp.argmax(self.feedforward(x), axis=1)
        correct = xp.sum(xp.astype(predicted == y, xp.int64))
        return int(correct) / x.shape[0]

    def _load_dataset(self, name: str, split: str, **load_options):
        from ..datasets.loading import load

        preprocessing = self.preprocessing
        if preprocessing is None and "scale" not in load_options:
            warn("this network does not record how its training pixels were scaled; assuming "
                 "÷255 (pass scale=... to choose)")
        if preprocessing is not None and "scale" not in load_options:
            load_options["preprocessing"] = preprocessing
        return load(name, split, backend=self.backend, dtype=self.dtype, **load_options)

    @_on_device
    def mean_cost(self, x: Any, y: Any) -> float:
        """Mean cost over the samples (``y`` as the cost takes it: class indices, values or
        0/1 indicators)."""
        x = self._as_input(x)
        targets = self._as_targets(y, x.shape[0], x.dtype)
        _, total = self.outputs_and_cost(x, targets)
        return float(total) / x.shape[0]

    def loss(self, x: Any, y: Any) -> float:
        """Alias of :meth:`mean_cost` (portamlp's word is "cost")."""
        return self.mean_cost(x, y)

    @_on_device
    def gradients(self, x: Any, y: Any) -> tuple[list, list]:
        """Gradients ``(nabla_w, nabla_b)`` of the mean cost on the batch ``(x, y)``."""
        x = self._as_input(x)
        targets = self._as_targets(y, x.shape[0], x.dtype)
        _, grads = self.backprop(x, targets, with_cost=False)
        scale = 1.0 / x.shape[0]
        return [g * scale for g in grads[0::2]], [g * scale for g in grads[1::2]]

    # ----------------------------------------------------------------- conversions
    def to(self, backend: str | Backend | None = None, device: Any = None) -> Network:
        """A copy of this network on another backend or device (values unchanged)."""
        weights, biases = self.host_parameters()
        return Network.from_arrays(weights, biases, activation=self.activation, cost=self.cost,
                                   backend=backend, device=device, dtype=self.dtype,
                                   preprocessing=self.preprocessing)

    def copy(self) -> Network:
        """An independent copy on the same backend and device."""
        return self.to(self.backend)

    def host_parameters(self) -> tuple[list, list]:
        """Host (NumPy) copies of ``(weights, biases)``."""
        params = [to_numpy(p) for p in self._parameters]
        return params[0::2], params[1::2]

    def get_params(self) -> tuple[list, list]:
        """Deprecated name of :meth:`host_parameters` (scikit-learn's ``get_params`` means
        hyper-parameters)."""
        warnings.warn("Network.get_params() is renamed host_parameters()", DeprecationWarning,
                      stacklevel=2)
        return self.host_parameters()

    def save(self, path, *, format: str | None = None, overwrite: bool = False) -> None:
        """Save to ``path`` (JSON or safetensors; see :mod:`portamlp.files.models`). Refuses to
        replace an existing file unless ``overwrite=True``. The write is atomic."""
        from ..files.models import save  # the one lazy back-reference: a model saves itself

        save(self, path, format=format, overwrite=overwrite)

    def to_onnx(self, path, *, inputs: str = "features", overwrite: bool = False,
                check: Any = None):
        """Export as an ONNX model (see :func:`portamlp.export.export_onnx`): this network's
        own forward pass, recorded by ``ndonnx``; needs ``pip install "portamlp[onnx]"``."""
        from ..export import export_onnx  # lazy, as save: a model exports itself

        return export_onnx(self, path, inputs=inputs, overwrite=overwrite, check=check)


def _check_shapes(host_w: list, host_b: list) -> None:
    """Weights (n_out, n_in) and biases (n_out,), chained; hints for other layouts."""
    for i, (w, b) in enumerate(zip(host_w, host_b)):
        if w.ndim != 2:
            raise ValueError(f"weights[{i}] must be 2-D (n_out, n_in), got shape {w.shape}")
        if b.ndim == 2 and 1 in b.shape and b.size == w.shape[0]:
            raise ValueError(
                f"biases[{i}] has shape {b.shape}; portamlp expects ({w.shape[0]},), a flat "
                f"vector (Nielsen's network.py stores columns): pass biases[{i}].reshape(-1)")
        if b.shape != (w.shape[0],):
            hint = ""
            if b.shape == (w.shape[1],):
                hint = (f"; weights[{i}] looks transposed: portamlp stores (n_out, n_in), "
                        f"Keras and scikit-learn (n_in, n_out): pass weights[{i}].T")
            raise ValueError(f"biases[{i}] must have shape ({w.shape[0]},) to match weights[{i}]"
                             f" of shape {w.shape}, got {b.shape}{hint}")
        if i and w.shape[1] != host_w[i - 1].shape[0]:
            hint = ""
            if w.shape[0] == host_w[i - 1].shape[0]:
                hint = (" (weights look transposed: portamlp stores (n_out, n_in), Keras and "
                        "scikit-learn (n_in, n_out): pass each weights[i].T)")
            raise ValueError(
                f"weights[{i}] has {w.shape[1]} inputs but layer {i} has "
                f"{host_w[i - 1].shape[0]} units (weights[{i - 1}] shape {host_w[i - 1].shape})"
                f"{hint}")


def _outputs_at_least(cost: str | Cost) -> int:
    """Output units a network of ``cost`` needs: 2 to tell classes apart, else 1."""
    return 2 if get_cost(cost).targets == "classes" else 1
