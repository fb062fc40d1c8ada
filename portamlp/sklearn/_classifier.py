"""``MLPClassifier``: scikit-learn's estimator interface over :func:`portamlp.train`.

How scikit-learn's parameters map onto portamlp's training (the full table is in the docs):

* ``alpha`` — scikit-learn adds ``alpha·W`` to the gradient of the batch-*summed* loss and divides
  by the batch's size (its sum of sample weights), so per step the decay is ``alpha / batch``;
  portamlp's ``weight_decay`` λ adds ``λ·W`` to the batch-*mean* gradient. The estimator passes
  ``weight_decay = alpha / (batch_size · mean(sample_weight))``: the same step on every full
  mini-batch (a shorter last batch of an epoch gets ``alpha / batch_size``, not
  ``alpha / len(last batch)``).
* stopping (``tol``, ``n_iter_no_change``, ``early_stopping``, ``validation_fraction``) and the
  ``learning_rate`` schedules follow scikit-learn's rules exactly; they run in a callback after
  each epoch (:class:`_Epochs`), which may stop :func:`portamlp.train` or change the rate of the
  next epoch through a callable schedule.
"""

from __future__ import annotations

import numbers
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import assert_all_finite, check_random_state
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from ..errors import TrainingInterrupted
from ..files.models import load as load_network
from ..nn.init import init_names
from ..nn.inputs import as_features
from ..nn.network import Network
from ..training.config import EpochRecord
from ..training.train import train
from . import _persist
from ._arrays import (
    NUMPY_PLACE,
    dispatch_enabled,
    host_array,
    namespace_of,
    place_of,
    take_rows,
    to_place,
)

__all__ = ["MLPClassifier"]

#: scikit-learn's activation names -> portamlp's (leaky_relu is portamlp's own).
ACTIVATIONS = {"relu": "relu", "logistic": "sigmoid", "tanh": "tanh", "leaky_relu": "leaky_relu"}
SOLVERS = ("sgd", "adam")
LEARNING_RATES = ("constant", "invscaling", "adaptive")
COSTS = ("cross_entropy", "quadratic")
#: sklearn's adaptive schedule divides the rate by this and stops below MIN_RATE.
ADAPTIVE_DIVISOR = 5.0
MIN_RATE = 1e-6
#: portamlp advice that does not apply to an estimator's runs.
_QUIET = (r"train_length=\d+ is not a multiple of batch_size",
          r"after epoch \d+ the network never predicts class")


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """Multi-layer perceptron classifier trained by portamlp, with scikit-learn's interface.

    A drop-in for :class:`sklearn.neural_network.MLPClassifier` with the ``"sgd"`` and
    ``"adam"`` solvers: the same parameters with the same meanings and defaults, the same
    stopping rules and fitted attributes. Training runs on portamlp's backends: NumPy by
    default, or, under ``sklearn.set_config(array_api_dispatch=True)``, the library and device
    of ``X`` (CuPy, PyTorch, array-api-strict); ``backend=``/``device=`` choose explicitly.

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default=(100,)
        Units of each hidden layer (``()`` for none: a softmax regression).
    activation : {"relu", "logistic", "tanh", "leaky_relu"}, default="relu"
        Hidden-layer activation. scikit-learn's ``"identity"`` is not available (portamlp has no
        linear hidden layer).
    solver : {"adam", "sgd"}, default="adam"
        ``"lbfgs"`` is not available: portamlp trains by mini-batch gradient descent.
    alpha : float, default=1e-4
        Strength of the L2 penalty, as in scikit-learn: it becomes portamlp's
        ``weight_decay = alpha / (batch_size * mean(sample_weight))``.
    batch_size : int or "auto", default="auto"
        ``"auto"`` is ``min(200, n_samples)``; larger sizes are clipped (with a warning).
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        Schedule of the ``"sgd"`` solver (ignored by Adam): ``"invscaling"`` sets the rate to
        ``learning_rate_init / (t + 1) ** power_t`` after each epoch, ``t`` the samples seen;
        ``"adaptive"`` divides it by 5 when ``n_iter_no_change`` epochs do not improve by
        ``tol`` (stopping once it is below 1e-6).
    learning_rate_init : float, default=0.001
    power_t : float, default=0.5
        Exponent of ``"invscaling"``.
    max_iter : int, default=200
        Epochs (passes over the training data).
    shuffle : bool, default=True
        Shuffle the samples every epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights, the order of the samples, the validation split and dropout.
    tol : float, default=1e-4
        Improvement of the training loss (or, with early stopping, of the validation score)
        that counts.
    verbose : bool, default=False
        Print the loss (and validation score) of every epoch, as scikit-learn does.
    warm_start : bool, default=False
        ``fit`` continues the fitted network (with a fresh optimizer, as in scikit-learn).
    momentum : float, default=0.9
        SGD momentum, in [0, 1).
    nesterovs_momentum : bool, default=True
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data (stratified) and stop when its
        accuracy has not improved by ``tol`` for more than ``n_iter_no_change`` epochs, ending
        with the best epoch's weights.
    validation_fraction : float, default=0.1
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        Adam's decay rates and ε (portamlp's ``beta1``, ``beta2``, ``epsilon``); ignored by
        the ``"sgd"`` solver.
    n_iter_no_change : int, default=10
    max_fun : int, default=15000
        Only for scikit-learn's ``"lbfgs"`` solver; accepted and unused.
    cost : {"cross_entropy", "quadratic"}, default="cross_entropy"
        portamlp's option: ``"cross_entropy"`` is scikit-learn's log-loss on a softmax output.
    init : {"glorot", "he", "scaled", "normal", "auto"}, default="glorot"
        portamlp's initialisation; Glorot has scikit-learn's scale for ReLU and tanh.
    dtype : {"float32", "float64"} or None, default=None
        Floating type of the network and data; None follows ``X`` as scikit-learn does
        (float32 stays float32, anything else becomes float64).
    backend : {"numpy", "cupy", "torch", "array_api_strict"} or None, default=None
        Where to train; None: where ``X`` lives (NumPy unless array API dispatch is on).
    device : str, int or None, default=None
        The backend's device ("cuda:1", 1, "cpu", an array-api-strict device name).
    dropout, input_dropout : float, default=0.0
        portamlp's dropout of hidden and input units during training.
    max_norm : float or None, default=None
        portamlp's max-norm constraint on each unit's incoming weights.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The labels, sorted (any type: strings, ints not 0..k-1, ...).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` had column names (a DataFrame).
    network_ : portamlp.Network
        The trained network; output unit ``i`` is ``classes_[i]``.
    coefs_, intercepts_ : list of ndarray
        NumPy copies of the weights in scikit-learn's ``(n_in, n_out)`` layout and the biases.
        A binary problem has two output units (a softmax), not scikit-learn's one logistic unit.
    loss_ : float
        The last epoch's training loss, with scikit-learn's L2 term.
    loss_curve_ : list of float
    validation_scores_ : list of float or None
        Accuracy on the held-out data after each epoch (early stopping only).
    best_validation_score_ : float or None
    best_loss_ : float or None
        The lowest training loss (without early stopping).
    n_iter_ : int
        Epochs run by the last ``fit`` (1 after ``partial_fit``).
    t_ : int
        Training samples seen, over all calls.
    n_layers_, n_outputs_ : int
    out_activation_ : str
        ``"softmax"`` (or the hidden activation with the quadratic cost).
    """

    # fitted attributes (set by fit, never by __init__)
    network_: Network
    classes_: np.ndarray
    n_features_in_: int
    feature_names_in_: np.ndarray
    loss_: float
    loss_curve_: list[float]
    validation_scores_: list[float] | None
    best_validation_score_: float | None
    best_loss_: float | None
    n_iter_: int
    t_: int
    n_layers_: int
    n_outputs_: int
    out_activation_: str

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 cost="cross_entropy", init="glorot", dtype=None, backend=None, device=None,
                 dropout=0.0, input_dropout=0.0, max_norm=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.cost = cost
        self.init = init
        self.dtype = dtype
        self.backend = backend
        self.device = device
        self.dropout = dropout
        self.input_dropout = input_dropout
        self.max_norm = max_norm

    # ------------------------------------------------------------------------ scikit-learn
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        tags.input_tags.allow_nan = False
        tags.array_api_support = True
        tags.classifier_tags.multi_label = False
        tags.target_tags.single_output = True
        tags.target_tags.multi_output = False
        return tags

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "network_")

    # ----------------------------------------------------------------------------- fitting
    def fit(self, X, y, sample_weight=None):
        """Train on ``X`` (n_samples, n_features) and labels ``y`` (any type).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Dense data (sparse matrices are refused: convert with ``.toarray()``).
        y : array-like of shape (n_samples,)
            Class labels: strings, integers, ...
        sample_weight : array-like of shape (n_samples,), optional
            Weighs each sample's loss (and gradient); non-negative, not all zero.

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over ``(X, y)``, continuing the same network and optimizer state.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), optional
        classes : array-like of shape (n_classes,), optional
            All the labels there will ever be: required on the first call, optional after
            (then they must be the same).

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def _fit(self, X, y, sample_weight, *, incremental: bool, classes=None):
        settings = self._settings(incremental)
        fitted = hasattr(self, "network_")
        first = not fitted or (not incremental and not self.warm_start)
        if incremental and not fitted and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit "
                             "(all the labels there will be, e.g. classes=numpy.unique(y))")
        X = self._validate_X(X, reset=first)
        y_host = self._validate_y(y, X)
        n = X.shape[0]
        codes = self._encode_fit_labels(y_host, first, incremental, classes)
        weights = self._sample_weight(sample_weight, n)
        if first:
            self._initialize(X)
        seed = int(self._random_state.randint(np.iinfo(np.int32).max))

        if self.early_stopping and not incremental:
            train_rows, val_rows = self._split(codes)
            X_train, y_train = take_rows(X, train_rows), codes[train_rows]
            X_val, y_val = take_rows(X, val_rows), codes[val_rows]
            w_train = None if weights is None else weights[train_rows]
            w_val = None if weights is None else weights[val_rows]
        else:
            X_train, y_train, w_train = X, codes, weights
            X_val = y_val = w_val = None
        n_train = X_train.shape[0]
        batch = self._batch_size(n_train)
        mean_weight = 1.0 if w_train is None else float(w_train.mean())

        if not incremental:  # fit makes a fresh optimizer, at the initial rate
            self._schedule.learning_rate = float(self.learning_rate_init)
        validation = None if X_val is None else (X_val, y_val, w_val)
        epochs = _Epochs(self, self._schedule, n_train=n_train, batch=batch,
                         mean_weight=mean_weight, validation=validation)
        options = dict(
            x=X_train, y=y_train, sample_weight=w_train, epochs=1 if incremental else
            self.max_iter, batch_size=batch, learning_rate=float(self.learning_rate_init),
            learning_rate_schedule=epochs.rate if settings["scheduled"] else "constant",
            optimizer=self.solver, **settings["hyper_parameters"],
            weight_decay=float(self.alpha) / (batch * mean_weight),
            shuffle=bool(self.shuffle), seed=seed, dropout=self.dropout,
            input_dropout=self.input_dropout, max_norm=self.max_norm, callbacks=[epochs],
            progress=False)
        if X_val is not None:
            options["validation_data"] = (X_val, y_val)
        if first:
            options.update(layers=self._layers(X.shape[1]), activation=settings["activation"],
                           cost=self.cost, init=self.init, dtype=self._dtype_name(X),
                           backend=self.backend, device=self.device)
        else:
            wanted = self._layers(X.shape[1])
            if wanted != self.network_.layers:
                raise ValueError(f"the fitted network has layers {list(self.network_.layers)}, "
                                 f"but the parameters now ask for {list(wanted)}; "
                                 "warm_start and partial_fit continue the same network: set "
                                 "warm_start=False (or clone the estimator) to start afresh")
            options["network"] = self.network_
            if incremental:  # continue the moments (train copies them onto the device)
                options["optimizer_state"] = getattr(self, "_optimizer_state", None)

        network, optimizer_state, stopped = self._train(options)
        epochs.finish(network)
        self.network_ = network
        self._optimizer_state = optimizer_state
        self._fit_place = place_of(X)
        self.n_iter_ = epochs.n_iter
        self.n_layers_ = len(network.layers)
        self.n_outputs_ = int(network.layers[-1])
        self.out_activation_ = "softmax" if network.cost == "cross_entropy" else \
            {v: k for k, v in ACTIVATIONS.items()}[network.activation]
        if not incremental and not stopped and self.n_iter_ == self.max_iter:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached "
                          "and the optimization hasn't converged yet.", ConvergenceWarning,
                          stacklevel=3)
        return self

    def _train(self, options: dict) -> tuple[Network, dict | None, bool]:
        """:func:`portamlp.train` with its advice for interactive runs silenced; Ctrl-C keeps
        the network of the last complete epoch, as scikit-learn keeps its weights."""
        with warnings.catch_warnings():
            for message in _QUIET:
                warnings.filterwarnings("ignore", message=message)
            try:
                result = train(**options)
            except TrainingInterrupted as exc:
                if exc.network is None or not exc.history:
                    raise
                warnings.warn("Training interrupted by user.", stacklevel=4)
                return exc.network, None, True
        return result.network, result.optimizer_state, result.stopped_early

    # -- the pieces of fit
    def _settings(self, incremental: bool) -> dict[str, Any]:
        """Check the parameters (scikit-learn validates in fit, not in __init__)."""
        if self.solver == "lbfgs":
            raise ValueError("solver='lbfgs' is not available in portamlp, which trains by "
                             "mini-batch gradient descent; use solver='adam' (the default) or "
                             "'sgd', or sklearn.neural_network.MLPClassifier for L-BFGS")
        _choice("solver", self.solver, SOLVERS)
        if self.activation == "identity":
            raise ValueError("activation='identity' is not available: portamlp has no linear "
                             "hidden layer; use 'relu', 'logistic' or 'tanh', or "
                             "hidden_layer_sizes=() for a linear (softmax) model")
        _choice("activation", self.activation, tuple(ACTIVATIONS))
        _choice("learning_rate", self.learning_rate, LEARNING_RATES)
        _choice("cost", self.cost, COSTS)
        _choice("init", self.init, init_names())
        if self.dtype is not None:
            _choice("dtype", _dtype_name(self.dtype), ("float32", "float64"))
        self._layers(1)  # checks hidden_layer_sizes
        _number("alpha", self.alpha, low=0.0)
        _number("learning_rate_init", self.learning_rate_init, low=0.0, low_open=True)
        _number("power_t", self.power_t, low=0.0)
        _integer("max_iter", self.max_iter, low=1)
        _integer("n_iter_no_change", self.n_iter_no_change, low=1)
        _integer("max_fun", self.max_fun, low=1)
        _number("tol", self.tol, low=0.0)
        _number("momentum", self.momentum, low=0.0, high=1.0, high_open=True)
        _number("validation_fraction", self.validation_fraction, low=0.0, high=1.0,
                low_open=True, high_open=True)
        if not (self.batch_size == "auto" or _is_int(self.batch_size)):
            raise ValueError(f"batch_size must be 'auto' or an int >= 1, got "
                             f"{self.batch_size!r}")
        if self.batch_size != "auto":
            _integer("batch_size", self.batch_size, low=1)
        for name in ("shuffle", "warm_start", "nesterovs_momentum", "early_stopping"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        _number("beta_1", self.beta_1, low=0.0, high=1.0, high_open=True)
        _number("beta_2", self.beta_2, low=0.0, high=1.0, high_open=True)
        _number("epsilon", self.epsilon, low=0.0, low_open=True)
        if self.random_state is not None and not (_is_int(self.random_state) or isinstance(
                self.random_state, np.random.RandomState)):
            raise ValueError(f"random_state must be None, an int or a numpy.random.RandomState,"
                             f" got {self.random_state!r}")
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True: it sees one "
                             "batch of data at a time; set early_stopping=False")
        sgd = self.solver == "sgd"
        if sgd:
            momentum = float(self.momentum)
            hyper = {"momentum": momentum,
                     "nesterov": bool(self.nesterovs_momentum) and momentum > 0}
        else:
            hyper = {"beta1": float(self.beta_1), "beta2": float(self.beta_2),
                     "epsilon": float(self.epsilon)}
        return {"activation": ACTIVATIONS[self.activation], "hyper_parameters": hyper,
                "scheduled": sgd and self.learning_rate != "constant"}

    def _layers(self, n_features: int) -> tuple[int, ...]:
        sizes = self.hidden_layer_sizes
        if _is_int(sizes):
            sizes = (sizes,)
        try:
            sizes = tuple(sizes)
        except TypeError:
            raise ValueError(f"hidden_layer_sizes must be an int or a sequence of ints such as "
                             f"(100,) or (256, 128), got {self.hidden_layer_sizes!r}") from None
        if not all(_is_int(s) and s >= 1 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must hold positive ints, got "
                             f"{self.hidden_layer_sizes!r}")
        k = len(self.classes_) if hasattr(self, "classes_") else 2
        return (int(n_features), *(int(s) for s in sizes), k)

    def _validate_X(self, X, *, reset: bool):
        xp = namespace_of(X)
        if self.dtype is not None:
            dtype: Any = getattr(xp, _dtype_name(self.dtype))
        else:
            dtype = [xp.float64, xp.float32]
        return validate_data(self, X, reset=reset, accept_sparse=False, dtype=dtype,
                             ensure_min_samples=1)

    def _validate_y(self, y, X) -> np.ndarray:
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y "
                             "is None.")
        y = host_array(y)
        if y.dtype.kind == "f":
            assert_all_finite(y, input_name="y")
        kind = type_of_target(y, input_name="y")
        if kind in ("multilabel-indicator", "multiclass-multioutput"):
            raise ValueError(f"y is {kind} (shape {y.shape}); portamlp's MLPClassifier has one "
                             "softmax output and predicts one class per sample. Pass 1-D labels, "
                             "or use sklearn.multioutput.MultiOutputClassifier around it")
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"Found input variables with inconsistent numbers of samples: "
                             f"[{X.shape[0]}, {y.shape[0]}]")
        return y

    def _encode_fit_labels(self, y: np.ndarray, first: bool, incremental: bool,
                           classes) -> np.ndarray:
        """Class indices 0..k-1 of ``y``, setting or checking ``classes_``."""
        if incremental:
            if classes is not None:
                wanted = np.unique(host_array(classes))
                if hasattr(self, "classes_") and not first and not _same(wanted, self.classes_):
                    raise ValueError(f"classes={wanted.tolist()} is not the same as on the "
                                     "first call to partial_fit, which gave "
                                     f"{self.classes_.tolist()}")
                if first:
                    self.classes_ = wanted
            unseen = np.setdiff1d(y, self.classes_)
            if unseen.size:
                raise ValueError(f"y holds labels {unseen.tolist()} that are not in classes_ = "
                                 f"{self.classes_.tolist()}; pass every label in classes= on "
                                 "the first call to partial_fit")
        else:
            found = np.unique(y)
            if not first and not _same(found, self.classes_):
                raise ValueError(f"warm_start can only be used where `y` has the same classes as "
                                 f"in the previous call to fit. Previously got "
                                 f"{self.classes_.tolist()}, `y` has {found.tolist()}; set "
                                 "warm_start=False to start afresh")
            if first:
                self.classes_ = found
        if len(self.classes_) < 2:
            raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes in the "
                             f"data, but the data contains only one class: "
                             f"{self.classes_[0]!r}")
        return np.searchsorted(self.classes_, y).astype(np.int64)

    def _sample_weight(self, sample_weight, n: int) -> np.ndarray | None:
        if sample_weight is None:
            return None
        if isinstance(sample_weight, numbers.Number):
            w = np.full(n, float(sample_weight))  # type: ignore[arg-type]
        else:
            w = np.array(host_array(sample_weight), dtype=np.float64)  # a copy: never the
            if w.ndim != 1 or w.shape[0] != n:                          # caller's array
                raise ValueError(f"sample_weight.shape == {w.shape}, expected ({n},)!")
        if not np.isfinite(w).all():
            raise ValueError("sample_weight holds NaN or infinite values; they must be finite")
        if (w < 0).any():
            raise ValueError("sample_weight holds negative values; each sample's weight must be "
                             ">= 0")
        if not w.sum() > 0:
            raise ValueError("Sample weights must contain at least one non-zero number.")
        return w

    def _initialize(self, X) -> None:
        """A fresh start: the random state and scikit-learn's bookkeeping."""
        self._random_state = check_random_state(self.random_state)
        self.loss_curve_ = []
        self.t_ = 0
        self._schedule = _Schedule(float(self.learning_rate_init))
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
            self.best_loss_ = np.inf
        for name in ("network_", "_optimizer_state"):
            self.__dict__.pop(name, None)

    def _split(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = np.arange(codes.shape[0])
        train_rows, val_rows = train_test_split(rows, random_state=self._random_state,
                                                test_size=self.validation_fraction,
                                                stratify=codes)
        if val_rows.shape[0] < 2:
            raise ValueError("The validation set is too small. Increase 'validation_fraction' "
                             "or the size of your dataset.")
        return np.sort(train_rows), np.sort(val_rows)

    def _batch_size(self, n: int) -> int:
        if self.batch_size == "auto":
            return min(200, n)
        if self.batch_size > n:
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going "
                          "to be clipped", stacklevel=4)
        return int(min(max(self.batch_size, 1), n))

    def _dtype_name(self, X) -> str:
        xp = namespace_of(X)
        return "float64" if X.dtype == xp.float64 else "float32"

    # ----------------------------------------------------------------------- prediction
    def _prepared(self, X, method: str):
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        place = place_of(X)
        if dispatch_enabled() and place != self._fit_place:
            raise ValueError(
                f"Inputs passed to {type(self).__name__}.{method}() must use the same namespace "
                f"and the same device as those passed to fit(). fit() had {self._fit_place[0]} "
                f"arrays on {self._fit_place[1] or 'the host'}, {method}() got {place[0]} "
                f"arrays on {place[1] or 'the host'}; move X there, or fit again on this data")
        return X, place

    def predict_proba(self, X):
        """Probability of each class, shape (n_samples, n_classes), columns in ``classes_``
        order; rows sum to 1. Returned in ``X``'s library and device."""
        X, place = self._prepared(X, "predict_proba")
        return to_place(self.network_.predict_proba(X), place)

    def predict_log_proba(self, X):
        """The logarithm of :meth:`predict_proba`."""
        X, place = self._prepared(X, "predict_log_proba")
        proba = self.network_.predict_proba(X)
        with self.network_.backend.activate():
            return to_place(self.network_.xp.log(proba), place)

    def predict(self, X):
        """The most probable class of each sample (labels from ``classes_``), in ``X``'s
        library and device when the labels are numbers, else a NumPy array."""
        X, place = self._prepared(X, "predict")
        codes = self.network_.predict(X)
        if place == NUMPY_PLACE or self.classes_.dtype.kind not in "iufb":
            return self.classes_[to_place(codes, NUMPY_PLACE)]
        codes = to_place(codes, place)
        classes = to_place(self.classes_, place)
        xp = namespace_of(codes)
        return xp.take(classes, codes, axis=0)

    # ----------------------------------------------------------------- fitted attributes
    @property
    def coefs_(self) -> list[np.ndarray]:
        """Weight matrices in scikit-learn's ``(n_in, n_out)`` layout (NumPy copies)."""
        check_is_fitted(self)
        return [np.array(w.T) for w in self.network_.host_parameters()[0]]

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """Bias vectors (NumPy copies)."""
        check_is_fitted(self)
        return [np.array(b) for b in self.network_.host_parameters()[1]]

    # -------------------------------------------------------------------------- pickling
    def __getstate__(self):
        state = dict(super().__getstate__())
        if "network_" in state:
            state["network_"] = _persist.network_state(state["network_"])
        if state.get("_optimizer_state") is not None:  # device arrays travel as host arrays
            state["_optimizer_state"] = _persist.optimizer_state_to_host(
                state["_optimizer_state"])
        return state

    def __setstate__(self, state):
        if isinstance(state.get("network_"), dict):
            state = dict(state)
            state["network_"] = _persist.network_from_state(state["network_"])
        super().__setstate__(state)

    # ------------------------------------------------------------------- model files
    def save(self, path, *, format: str | None = None, overwrite: bool = False) -> None:
        """Save to one portamlp model file (``.safetensors`` or ``.json``), no pickle.

        The network is stored as :meth:`portamlp.Network.save` stores it (so
        :func:`portamlp.load` reads it too); the parameters, ``classes_``, feature names and
        curves ride along as JSON. The optimizer's moments are not kept: after
        :meth:`load`, ``partial_fit`` starts with fresh ones.

        Parameters
        ----------
        path : str or path-like
        format : {"safetensors", "json"}, optional
            Default: from the extension.
        overwrite : bool, default=False
            Replace an existing file.
        """
        check_is_fitted(self)
        params = {k: _plain_param(k, v) for k, v in self.get_params().items()}
        fitted = {"n_features_in_": int(self.n_features_in_), "n_iter_": int(self.n_iter_),
                  "t_": int(self.t_), "loss_curve_": [float(v) for v in self.loss_curve_],
                  "loss_": _float_or_none(getattr(self, "loss_", None)),
                  "best_loss_": _float_or_none(self.best_loss_),
                  "best_validation_score_": _float_or_none(self.best_validation_score_),
                  "validation_scores_": None if self.validation_scores_ is None else
                  [float(v) for v in self.validation_scores_]}
        if hasattr(self, "feature_names_in_"):
            fitted["feature_names_in_"] = [str(v) for v in self.feature_names_in_]
        document = {"format": _persist.FORMAT_NAME, "version": _persist.FORMAT_VERSION,
                    "params": params, "classes": _persist.encode_classes(self.classes_),
                    "fitted": fitted}
        _persist.write_model(self.network_, document, path, format=format, overwrite=overwrite)

    @classmethod
    def load(cls, path, *, backend=None, device=None, format: str | None = None
             ) -> MLPClassifier:
        """An estimator saved by :meth:`save`, its network on ``backend``/``device`` (default:
        NumPy, or the saved ``backend`` parameter).

        Raises
        ------
        ModelFormatError
            The file is not a saved MLPClassifier; the message says what is wrong.
        """
        document = _persist.read_estimator_document(path, format)
        params = dict(document.get("params") or {})
        if isinstance(params.get("hidden_layer_sizes"), list):
            params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
        known = cls().get_params()
        estimator = cls(**{k: v for k, v in params.items() if k in known})
        fitted = document.get("fitted") or {}
        estimator.classes_ = _persist.decode_classes(document.get("classes"), path)
        network = load_network(path, backend=backend if backend is not None else
                               params.get("backend"), device=device if device is not None else
                               params.get("device"), format=format)
        if network.layers[-1] != len(estimator.classes_):
            raise _persist.ModelFormatError(
                f"{path}: the network has {network.layers[-1]} outputs for "
                f"{len(estimator.classes_)} classes")
        estimator.network_ = network
        estimator.n_features_in_ = int(fitted.get("n_features_in_", network.layers[0]))
        if "feature_names_in_" in fitted:
            estimator.feature_names_in_ = np.asarray(fitted["feature_names_in_"], dtype=object)
        estimator._random_state = check_random_state(estimator.random_state)
        estimator._schedule = _Schedule(float(estimator.learning_rate_init))
        estimator._fit_place = NUMPY_PLACE if network.backend.name == "numpy" else \
            (network.backend.name, _persist.device_spec(network.backend))
        for key in ("n_iter_", "t_", "loss_curve_", "loss_", "best_loss_",
                    "best_validation_score_", "validation_scores_"):
            setattr(estimator, key, fitted.get(key))
        estimator.n_iter_ = int(estimator.n_iter_ or 0)
        estimator.t_ = int(estimator.t_ or 0)
        estimator.loss_curve_ = list(estimator.loss_curve_ or [])
        estimator.n_layers_ = len(network.layers)
        estimator.n_outputs_ = int(network.layers[-1])
        estimator.out_activation_ = "softmax" if network.cost == "cross_entropy" else \
            {v: k for k, v in ACTIVATIONS.items()}[network.activation]
        return estimator


class _Schedule:
    """What scikit-learn carries from epoch to epoch and from one ``partial_fit`` to the next:
    the SGD learning rate and the count of epochs without improvement."""

    def __init__(self, learning_rate: float):
        self.learning_rate = learning_rate
        self.no_improvement_count = 0


class _Epochs:
    """scikit-learn's per-epoch bookkeeping, as a :func:`portamlp.train` callback.

    After each epoch: the loss (with the L2 term scikit-learn adds), the validation score, the
    no-improvement count against ``tol``, the learning-rate schedule and the decision to stop,
    all by scikit-learn's rules. :meth:`rate` is the callable schedule that gives each epoch
    the rate decided after the one before.
    """

    def __init__(self, est: MLPClassifier, schedule: _Schedule, *, n_train: int, batch: int,
                 mean_weight: float, validation):
        self.est, self.schedule = est, schedule
        self.n_train = n_train
        self.n_iter = 0
        # scikit-learn's per-batch L2 term 0.5·alpha·‖W‖²/Σw(batch), summed over an epoch's
        # batches and divided by n_train
        n_batches = -(-n_train // batch)
        self.l2_scale = 0.5 * float(est.alpha) * n_batches / (n_train * mean_weight)
        self.validation = validation
        self.weighted_validation = validation is not None and validation[2] is not None
        self.best_parameters: list | None = None
        self._xv = None

    def rate(self, epoch: int) -> float:
        return self.schedule.learning_rate

    def __call__(self, record: EpochRecord, network: Network) -> bool:
        est, schedule = self.est, self.schedule
        self.n_iter += 1
        loss = record.train_cost + self._l2(network)
        est.loss_ = loss
        est.loss_curve_.append(loss)
        est.t_ += self.n_train
        if est.verbose:
            print(f"Iteration {self.n_iter}, loss = {loss:.8f}", file=sys.stdout)
        self._count(loss, record, network)
        sgd = est.solver == "sgd"
        if sgd and est.learning_rate == "invscaling":
            schedule.learning_rate = float(est.learning_rate_init) / (est.t_ + 1) ** est.power_t
        if schedule.no_improvement_count <= est.n_iter_no_change:
            return False
        if est.early_stopping:
            message = (f"Validation score did not improve more than tol={est.tol:f} for "
                       f"{est.n_iter_no_change} consecutive epochs.")
        else:
            message = (f"Training loss did not improve more than tol={est.tol:f} for "
                       f"{est.n_iter_no_change} consecutive epochs.")
        if sgd and est.learning_rate == "adaptive":
            if schedule.learning_rate > MIN_RATE:
                schedule.learning_rate /= ADAPTIVE_DIVISOR
                schedule.no_improvement_count = 0
                if est.verbose:
                    print(f"{message} Setting learning rate to {schedule.learning_rate:f}")
                return False
            message += " Learning rate too small. Stopping."
        if est.verbose:
            print(message)
        return True

    def _l2(self, network: Network) -> float:
        if not self.l2_scale:
            return 0.0
        xp = network.xp
        with network.backend.activate():
            total = xp.sum(xp.stack([xp.sum(w * w) for w in network.weights]))
            return self.l2_scale * float(total)

    def _count(self, loss: float, record: EpochRecord, network: Network) -> None:
        """scikit-learn's ``_update_no_improvement_count``."""
        est, schedule = self.est, self.schedule
        if not est.early_stopping:
            best_loss = np.inf if est.best_loss_ is None else est.best_loss_
            if loss > best_loss - est.tol:
                schedule.no_improvement_count += 1
            else:
                schedule.no_improvement_count = 0
            est.best_loss_ = min(best_loss, loss)
            return
        score = self._validation_score(record, network)
        if est.validation_scores_ is None:
            est.validation_scores_ = []
        est.validation_scores_.append(score)
        if est.verbose:
            print(f"Validation score: {score:f}")
        best = -np.inf if est.best_validation_score_ is None else est.best_validation_score_
        if score < best + est.tol:
            schedule.no_improvement_count += 1
        else:
            schedule.no_improvement_count = 0
        if score > best:
            est.best_validation_score_ = score
            xp = network.xp
            with network.backend.activate():
                self.best_parameters = [xp.asarray(p, copy=True) for p in network.parameters()]

    def _validation_score(self, record: EpochRecord, network: Network) -> float:
        if not self.weighted_validation:
            return float(record.validation_accuracy or 0.0)
        x, y, w = self.validation
        if self._xv is None:  # staged once on the network's device
            self._xv = as_features(x, network.backend, network.dtype, network.layers[0])
        predicted = to_place(network.predict(self._xv), NUMPY_PLACE)
        if not w.sum() > 0:
            return float(np.mean(predicted == y))
        return float(np.average(predicted == y, weights=w))

    def finish(self, network: Network) -> None:
        """With early stopping, end with the best epoch's weights (as scikit-learn does)."""
        if self.est.early_stopping and self.best_parameters is not None:
            params, write = network.parameters(), network.backend.writes
            with network.backend.activate():
                for i, best in enumerate(self.best_parameters):
                    params[i] = write.assign(params[i], best)


# ------------------------------------------------------------------------------ helpers
def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _choice(name: str, value: Any, choices: Sequence[str]) -> None:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def _number(name: str, value: Any, *, low: float | None = None, high: float | None = None,
            low_open: bool = False, high_open: bool = False) -> None:
    ok = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) and \
        bool(np.isfinite(float(value)))
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        span = f"{left}{low if low is not None else '-inf'}, {high if high is not None else 'inf'}"
        raise ValueError(f"{name} must be a number in {span}{right}, got {value!r}")


def _integer(name: str, value: Any, *, low: int) -> None:
    if not _is_int(value) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


def _dtype_name(dtype: Any) -> str:
    """"float32" for "float32", numpy.float32 or numpy.dtype("float32")."""
    return dtype if isinstance(dtype, str) else getattr(dtype, "__name__", str(dtype))


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.all(a == b))


def _float_or_none(value: Any) -> float | None:
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
        return _dtype_name(value)
    if name == "device":
        return str(value)
    return None  # a RandomState instance: the loaded estimator draws afresh

