"""``MLPClassifier``: scikit-learn's estimator interface over :func:`portamlp.train`.

This module owns the estimator's surface: its parameters, ``fit`` / ``partial_fit``, the
predictions, the fitted attributes and the pickling hooks. The parameters' checks and names are
in :mod:`._params`, the labels' checks and encoding in :mod:`._labels`, scikit-learn's
per-epoch rules in :mod:`._epochs`, model files and pickled state in :mod:`._persist`, where
arrays live in :mod:`._arrays`.

How scikit-learn's parameters map onto portamlp's training (the full table is in the docs):

* ``alpha`` — scikit-learn adds ``alpha·W`` to the gradient of the batch-*summed* loss and divides
  by the batch's size (its sum of sample weights), so per step the decay is ``alpha / batch``;
  portamlp's ``weight_decay`` λ adds ``λ·W`` to the batch-*mean* gradient. The estimator passes
  ``weight_decay = alpha / (batch_size · mean(sample_weight))``: the same step on every full
  mini-batch (a shorter last batch of an epoch gets ``alpha / batch_size``, not
  ``alpha / len(last batch)``).
* stopping (``tol``, ``n_iter_no_change``, ``early_stopping``, ``validation_fraction``) and the
  ``learning_rate`` schedules follow scikit-learn's rules exactly; they run in a callback after
  each epoch (:class:`~._epochs.Epochs`), which may stop :func:`portamlp.train` or change the
  rate of the next epoch through a callable schedule.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from ..checks import check_dtype
from ..errors import TrainingInterrupted
from ..nn.network import Network
from ..training.train import train
from . import _persist
from ._arrays import (
    NUMPY_PLACE,
    device_spec,
    dispatch_enabled,
    host_array,
    namespace_of,
    place_of,
    take_rows,
    to_place,
)
from ._epochs import Epochs, Schedule
from ._labels import encode_labels, validate_labels
from ._params import check_parameters, hidden_layers, out_activation

__all__ = ["MLPClassifier"]

#: Pickles written before the per-epoch rules moved to ``_epochs`` name the class here.
_Schedule = Schedule
#: portamlp advice that does not apply to an estimator's runs.
_QUIET = (r"after epoch \d+ the network never predicts class",
          r"after epoch \d+ the network has collapsed")


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """Multi-layer perceptron classifier trained by portamlp, with scikit-learn's interface.

    A drop-in for :class:`sklearn.neural_network.MLPClassifier` with the ``"sgd"`` and
    ``"adam"`` solvers (and any other optimizer registered in portamlp): the same parameters
    with the same meanings and defaults, the same stopping rules and fitted attributes.
    Training runs on portamlp's backends: NumPy by default, or, under
    ``sklearn.set_config(array_api_dispatch=True)``, the library and device of ``X`` (CuPy,
    PyTorch, array-api-strict); ``backend=``/``device=`` choose explicitly.

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default=(100,)
        Units of each hidden layer (``()`` for none: a softmax regression).
    activation : {"relu", "logistic", "tanh", "leaky_relu"} or a registered name, default="relu"
        Hidden-layer activation: any entry of :data:`portamlp.nn.activations.ACTIVATIONS`, by
        scikit-learn's name where it has one (``"logistic"`` is portamlp's ``"sigmoid"``).
        ``"identity"`` gives linear hidden units.
    solver : {"adam", "sgd"} or a registered name, default="adam"
        Any optimizer of :data:`portamlp.training.optimizers.OPTIMIZERS`. ``"sgd"`` takes
        ``momentum`` and ``nesterovs_momentum``, ``"adam"`` takes ``beta_1``, ``beta_2`` and
        ``epsilon``; any other trains with the hyper-parameters' declared defaults.
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
    cost : {"cross_entropy", "quadratic"} or a registered name, default="cross_entropy"
        portamlp's option, any entry of :data:`portamlp.nn.costs.COSTS`: ``"cross_entropy"``
        is scikit-learn's log-loss on a softmax output.
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
        ``"softmax"`` (or the hidden activation, by its ``activation`` name, with another
        cost).

    Raises
    ------
    portamlp.checks.InvalidParameterError
        From ``fit`` / ``partial_fit``, for an invalid parameter: both a ``ValueError`` and a
        ``TypeError``, as scikit-learn's own ``InvalidParameterError``.
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
        """The body of fit and partial_fit."""
        checked = check_parameters(self, incremental)
        fitted = hasattr(self, "network_")
        first = not fitted or (not incremental and not self.warm_start)
        if incremental and not fitted and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit "
                             "(all the labels there will be, e.g. classes=numpy.unique(y))")
        X = self._validate_X(X, reset=first)
        y_host = validate_labels(self, y, X.shape[0])
        n = X.shape[0]
        codes = encode_labels(self, y_host, first, incremental, classes)
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
        epochs = Epochs(self, self._schedule, n_train=n_train, batch=batch,
                        mean_weight=mean_weight, validation=validation)
        options = dict(
            x=X_train, y=y_train, sample_weight=w_train, epochs=1 if incremental else
            self.max_iter, batch_size=batch, learning_rate=float(self.learning_rate_init),
            learning_rate_schedule=epochs.rate if checked.scheduled else "constant",
            optimizer=self.solver, **checked.hyper_parameters,
            weight_decay=float(self.alpha) / (batch * mean_weight),
            shuffle=bool(self.shuffle), seed=seed, dropout=self.dropout,
            input_dropout=self.input_dropout, max_norm=self.max_norm, callbacks=[epochs],
            progress=False)
        if X_val is not None:
            options["validation_data"] = (X_val, y_val)
        if first:
            options.update(layers=self._layers(X.shape[1]), activation=checked.activation,
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
        self.out_activation_ = out_activation(network)
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
    def _layers(self, n_features: int) -> tuple[int, ...]:
        """The network's layer sizes for ``n_features`` inputs and the classes (2 before any)."""
        k = len(self.classes_) if hasattr(self, "classes_") else 2
        return (int(n_features), *hidden_layers(self.hidden_layer_sizes), k)

    def _validate_X(self, X, *, reset: bool):
        """scikit-learn's validation of ``X``, in ``dtype`` (or float64/float32)."""
        xp = namespace_of(X)
        if self.dtype is not None:
            dtype: Any = getattr(xp, check_dtype(self.dtype))
        else:
            dtype = [xp.float64, xp.float32]
        return validate_data(self, X, reset=reset, accept_sparse=False, dtype=dtype,
                             ensure_min_samples=1)

    def _sample_weight(self, sample_weight, n: int) -> np.ndarray | None:
        """``sample_weight`` as a checked host float64 copy (None kept)."""
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
        self._schedule = Schedule(float(self.learning_rate_init))
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
        """Training and validation rows for early stopping (stratified, as scikit-learn)."""
        rows = np.arange(codes.shape[0])
        # stratified by the caller's labels (the same strata as the codes), so that an error
        # about too few members names them, not portamlp's class indices
        train_rows, val_rows = train_test_split(rows, random_state=self._random_state,
                                                test_size=self.validation_fraction,
                                                stratify=self.classes_[codes])
        if val_rows.shape[0] < 2:
            raise ValueError("The validation set is too small. Increase 'validation_fraction' "
                             "or the size of your dataset.")
        return np.sort(train_rows), np.sort(val_rows)

    def _batch_size(self, n: int) -> int:
        """The mini-batch size for ``n`` training samples, as scikit-learn clips it."""
        if self.batch_size == "auto":
            return min(200, n)
        if self.batch_size > n:
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going "
                          "to be clipped", stacklevel=4)
        return int(min(max(self.batch_size, 1), n))

    def _dtype_name(self, X) -> str:
        """The network's dtype for validated data ``X``."""
        xp = namespace_of(X)
        return "float64" if X.dtype == xp.float64 else "float32"

    # ----------------------------------------------------------------------- prediction
    def _prepared(self, X, method: str):
        """``X`` validated for prediction, and the place to return results to."""
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
        """The state to pickle: the network and optimizer state as host arrays."""
        state = dict(super().__getstate__())
        if "network_" in state:
            state["network_"] = _persist.network_state(state["network_"])
        if state.get("_optimizer_state") is not None:  # device arrays travel as host arrays
            state["_optimizer_state"] = _persist.optimizer_state_to_host(
                state["_optimizer_state"])
        return state

    def __setstate__(self, state):
        """Unpickle, rebuilding the network on its backend (NumPy where it is missing)."""
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
        _persist.save_estimator(self, path, format=format, overwrite=overwrite)

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
        estimator: MLPClassifier = _persist.load_estimator(cls, path, backend=backend,
                                                           device=device, format=format)
        estimator._resume()
        return estimator

    def _resume(self) -> None:
        """The state a fit started from a model file needs: a fresh random state, the initial
        learning rate, and the network's place as the place of fit."""
        self._random_state = check_random_state(self.random_state)
        self._schedule = Schedule(float(self.learning_rate_init))
        backend = self.network_.backend
        self._fit_place = NUMPY_PLACE if backend.name == "numpy" else \
            (backend.name, device_spec(backend))

