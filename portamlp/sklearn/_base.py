"""The estimators' shared body: :class:`BaseMLP` holds everything ``MLPClassifier`` and
``MLPRegressor`` do alike (validation of ``X``, sample weights, the stochastic and L-BFGS fits,
prediction's places, the fitted weights, pickling, model files); the two subclasses say what
their targets are (:meth:`BaseMLP._targets`), which cost trains them, and how early stopping
scores the held-out data.

How scikit-learn's parameters map onto portamlp's training:

* ``alpha`` — scikit-learn adds ``alpha·W`` to the gradient of the batch-*summed* loss and divides
  by the batch's size (its sum of sample weights), so per step the decay is ``alpha / batch``;
  portamlp's ``weight_decay`` λ adds ``λ·W`` to the batch-*mean* gradient. The estimator passes
  ``weight_decay = alpha / (batch_size · mean(sample_weight))``: the same step on every full
  mini-batch (a shorter last batch of an epoch gets ``alpha / batch_size``, not
  ``alpha / len(last batch)``). L-BFGS's one batch is the training set.
* stopping (``tol``, ``n_iter_no_change``, ``early_stopping``, ``validation_fraction``) and the
  ``learning_rate`` schedules follow scikit-learn's rules exactly; they run in a callback after
  each epoch (:class:`~._epochs.Epochs`), which may stop :func:`portamlp.train` or change the
  rate of the next epoch through a callable schedule.
* ``solver="lbfgs"`` is portamlp's ``"lbfgs"`` optimizer (:mod:`portamlp.training.lbfgs`): one
  epoch per iteration over the whole training set, ``max_iter`` iterations, ``max_fun``
  evaluations, ``tol`` as the gradient tolerance, as scikit-learn passes them to SciPy.
* sparse ``X`` (SciPy CSR/CSC) stays sparse: each mini-batch is made dense on its own
  (:class:`portamlp.nn.inputs.SparseRows`), on NumPy; on another backend each batch is also
  copied to the device.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from ..checks import check_dtype
from ..errors import DivergenceError, TrainingInterrupted
from ..nn.inputs import is_sparse
from ..nn.network import Network
from ..training.optimizers import OPTIMIZERS
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
from ._epochs import Epochs, Schedule, squared_weights
from ._params import Checked, check_parameters, hidden_layers, out_activation

__all__ = ["BaseMLP", "stochastic", "lbfgs_hidden", "store_parameters"]
#: portamlp advice that does not apply to an estimator's runs.
_QUIET = (r"after epoch \d+ the network never predicts class",
          r"after epoch \d+ the network has collapsed")
#: Rows L-BFGS evaluates at a time (its result does not depend on it; memory does).
LBFGS_CHUNK = 8192
#: Why L-BFGS stopped, as SciPy's L-BFGS-B words it (its "converged" reasons are absent).
_LBFGS_UNCONVERGED = {
    "": "STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT",
    "max_fun": "STOP: TOTAL NO. OF F,G EVALUATIONS EXCEEDS LIMIT",
    "line search": "ABNORMAL: no step satisfying the strong Wolfe conditions was found",
}


def store_parameters(est: Any, values: dict[str, Any]) -> None:
    """``__init__``'s arguments (its ``locals()``) as the estimator's attributes, unchanged,
    as scikit-learn's convention asks (no checks until ``fit``)."""
    for name, value in values.items():
        if name not in ("self", "__class__"):
            setattr(est, name, value)


def stochastic(solver: Any) -> bool:
    """Whether ``solver`` trains by mini-batches (``partial_fit``, ``loss_curve_``, early
    stopping): every registered optimizer but the full-batch ones (``"lbfgs"``)."""
    return not (isinstance(solver, str) and solver in OPTIMIZERS and
                OPTIMIZERS[solver].full_batch)


def lbfgs_hidden(est: Any) -> bool:
    """``partial_fit`` exists only for the stochastic solvers, as in scikit-learn."""
    if not stochastic(est.solver):
        raise AttributeError(f"partial_fit is only available for stochastic optimizers. "
                             f"{est.solver} is not stochastic.")
    return True


class BaseMLP(BaseEstimator):
    """What both estimators share (not for direct use). Subclasses define ``__init__`` with
    their parameters and the hooks :meth:`_targets`, :meth:`_cost_name`,
    :meth:`_stopping_score` and, where they differ, :meth:`_loss_divisor`."""

    # fitted attributes (set by fit, never by __init__)
    network_: Network
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

    # ------------------------------------------------------------------------ scikit-learn
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.allow_nan = False
        tags.array_api_support = True
        return tags

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "network_")

    # ------------------------------------------------------------------ subclass hooks
    def _targets(self, y, n_rows: int, first: bool, incremental: bool,
                 classes) -> tuple[np.ndarray, np.ndarray | None]:
        """``y`` checked and encoded for :func:`portamlp.train`, and the strata of the early
        stopping split (None: not stratified). Sets the fitted facts about the targets."""
        raise NotImplementedError

    def _n_outputs(self) -> int:
        """Output units of the network for the targets seen."""
        raise NotImplementedError

    def _cost_name(self) -> str:
        """The portamlp cost that trains the network."""
        raise NotImplementedError

    def _stopping_score(self, network: Network, record, x, y, w) -> float:
        """The held-out score early stopping watches (higher is better)."""
        raise NotImplementedError

    def _loss_divisor(self) -> float:
        """portamlp's mean cost divided by this is scikit-learn's loss (1: the same)."""
        return 1.0

    def _check_own_parameters(self) -> None:
        """Checks of the subclass's own parameters (InvalidParameterError)."""

    # ----------------------------------------------------------------------------- fitting
    def fit(self, X, y, sample_weight=None):
        """Train on ``X`` (n_samples, n_features) and targets ``y``.

        Parameters
        ----------
        X : array-like or SciPy sparse matrix of shape (n_samples, n_features)
            Sparse rows are made dense one mini-batch at a time.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), optional
            Weighs each sample's loss (and gradient); non-negative, not all zero.

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def _fit(self, X, y, sample_weight, *, incremental: bool, classes=None):
        """The body of fit and partial_fit."""
        checked = check_parameters(self, incremental)
        self._check_own_parameters()
        fitted = hasattr(self, "network_")
        first = not fitted or (not incremental and not self.warm_start)
        if incremental and not fitted and classes is None and self._needs_classes():
            raise ValueError("classes must be passed on the first call to partial_fit "
                             "(all the labels there will be, e.g. classes=numpy.unique(y))")
        X = self._validate_X(X, reset=first)
        if checked.distortions and math.isqrt(X.shape[1]) ** 2 != X.shape[1]:
            raise ValueError(f"distortions={self.distortions!r} need square images read row "
                             f"by row, but X has {X.shape[1]} features, which is not the pixel "
                             "count of a square image; use distortions=None for data that is "
                             "not images")
        n = X.shape[0]
        targets, strata = self._targets(y, n, first, incremental, classes)
        weights = self._sample_weight(sample_weight, n)
        if first:
            self._initialize()
            if self.init == "glorot":  # drawn first, as scikit-learn draws them
                self._initial = self._sklearn_network(X, checked)
        seed = int(self._random_state.randint(np.iinfo(np.int32).max))
        if not stochastic(self.solver):
            self._fit_lbfgs(X, targets, weights, first, checked, seed)
        else:
            self._fit_stochastic(X, targets, weights, strata, first, incremental, checked,
                                 seed)
        self._fit_place = place_of(X)
        return self

    def _needs_classes(self) -> bool:
        return False

    def _options(self, X, first: bool, checked: Checked) -> dict[str, Any]:
        """:func:`portamlp.train`'s options that say which network to train."""
        if first and self.__dict__.get("_initial") is not None:
            return dict(network=self.__dict__.pop("_initial"))
        if first:
            return dict(layers=self._layers(X.shape[1]), activation=checked.activation,
                        cost=self._cost_name(), init=self.init, dtype=self._dtype_name(X),
                        backend=self.backend, device=self.device)
        wanted = self._layers(X.shape[1])
        if wanted != self.network_.layers:
            raise ValueError(f"the fitted network has layers {list(self.network_.layers)}, "
                             f"but the parameters now ask for {list(wanted)}; "
                             "warm_start and partial_fit continue the same network: set "
                             "warm_start=False (or clone the estimator) to start afresh")
        return dict(network=self.network_)

    def _sklearn_network(self, X, checked: Checked) -> Network:
        """scikit-learn's initial network: Glorot-uniform weights and biases in
        ``±sqrt(factor / (fan_in + fan_out))`` (factor 2 for the logistic activation, else 6),
        drawn layer by layer from the estimator's RandomState in scikit-learn's order, so that
        a ``random_state`` gives scikit-learn's initial weights."""
        layers, rs = self._layers(X.shape[1]), self._random_state
        factor = 2.0 if checked.activation == "sigmoid" else 6.0
        weights, biases = [], []
        for fan_in, fan_out in zip(layers[:-1], layers[1:]):
            bound = np.sqrt(factor / (fan_in + fan_out))
            weights.append(rs.uniform(-bound, bound, (fan_in, fan_out)).T)
            biases.append(rs.uniform(-bound, bound, fan_out))
        place = place_of(X)
        backend = self.backend if self.backend is not None else place[0]
        device = self.device if self.device is not None or self.backend is not None \
            else place[1]
        return Network.from_arrays(weights, biases, activation=checked.activation,
                                   cost=self._cost_name(), backend=backend, device=device,
                                   dtype=self._dtype_name(X))

    def _fit_stochastic(self, X, targets, weights, strata, first: bool, incremental: bool,
                        checked: Checked, seed: int) -> None:
        """Mini-batch training by scikit-learn's per-epoch rules."""
        if self.early_stopping and not incremental:
            train_rows, val_rows = self._split(n=X.shape[0], strata=strata)
            X_train, y_train = take_rows(X, train_rows), targets[train_rows]
            X_val, y_val = take_rows(X, val_rows), targets[val_rows]
            w_train = None if weights is None else weights[train_rows]
            w_val = None if weights is None else weights[val_rows]
        else:
            X_train, y_train, w_train = X, targets, weights
            X_val = y_val = w_val = None
        n_train = X_train.shape[0]
        batch = self._batch_size(n_train)
        mean_weight = 1.0 if w_train is None else float(w_train.mean())
        if not hasattr(self, "loss_curve_"):  # warm start after an L-BFGS fit
            self._stochastic_bookkeeping()
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
            progress=False, **checked.distortions, **self._options(X, first, checked))
        if X_val is not None:
            options["validation_data"] = (X_val, y_val)
        if not first and incremental:  # continue the moments (train copies them onto the device)
            options["optimizer_state"] = getattr(self, "_optimizer_state", None)
        network, optimizer_state, stopped = self._train(options, epochs)
        epochs.finish(network)
        self._fitted(network, optimizer_state)
        self.n_iter_ = epochs.n_iter
        if not incremental and not stopped and self.n_iter_ == self.max_iter:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached "
                          "and the optimization hasn't converged yet.", ConvergenceWarning,
                          stacklevel=4)

    def _fit_lbfgs(self, X, targets, weights, first: bool, checked: Checked,
                   seed: int) -> None:
        """Full-batch L-BFGS, as scikit-learn's ``solver="lbfgs"``: ``max_iter`` iterations,
        ``max_fun`` evaluations, ``tol`` the gradient tolerance."""
        n = X.shape[0]
        mean_weight = 1.0 if weights is None else float(weights.mean())
        decay = float(self.alpha) / (n * mean_weight)
        options = dict(x=X, y=targets, sample_weight=weights, epochs=int(self.max_iter),
                       batch_size=min(n, LBFGS_CHUNK), optimizer="lbfgs",
                       max_fun=int(self.max_fun), gtol=float(self.tol), weight_decay=decay,
                       seed=seed, progress=False, dropout=self.dropout,
                       input_dropout=self.input_dropout, max_norm=self.max_norm,
                       callbacks=[self._lbfgs_verbose] if self.verbose else [],
                       **checked.distortions,
                       **self._options(X, first, checked))
        network, state, _ = self._train(options)
        self._fitted(network, None)
        scalars = (state or {}).get("scalars", {})
        self.n_iter_ = int(scalars.get("t", 0))  # t_ stays: scikit-learn counts samples
        data = getattr(self, "_lbfgs_cost", None)
        self.loss_ = (float(data) / self._loss_divisor() if data is not None else np.nan) \
            + 0.5 * decay * squared_weights(network)
        reason = scalars.get("reason", "")
        if self.n_iter_ >= self.max_iter and reason != "max_fun":
            reason = ""  # the iteration limit counts first, as in SciPy's driver
        if reason in _LBFGS_UNCONVERGED:
            warnings.warn(f"lbfgs failed to converge after {self.n_iter_} iteration(s) "
                          f"({_LBFGS_UNCONVERGED[reason]}). Increase "
                          + (f"max_fun (now {self.max_fun})" if reason == "max_fun" else
                             f"max_iter (now {self.max_iter})")
                          + ", or scale the data (sklearn.preprocessing.StandardScaler).",
                          ConvergenceWarning,
                          stacklevel=4)

    def _lbfgs_verbose(self, record, network) -> bool:
        """``verbose``: each L-BFGS iteration's loss (SciPy prints nothing here; portamlp
        shows its progress as for the other solvers)."""
        print(f"Iteration {record.epoch}, loss = {record.train_cost:.8f}")
        return False

    def _fitted(self, network: Network, optimizer_state) -> None:
        """The fitted attributes every fit sets."""
        self.network_ = network
        self._optimizer_state = optimizer_state
        self.n_layers_ = len(network.layers)
        self.n_outputs_ = int(network.layers[-1])
        self.out_activation_ = out_activation(network)

    def _train(self, options: dict, epochs: Epochs | None = None
               ) -> tuple[Network, dict | None, bool]:
        """:func:`portamlp.train` with its advice for interactive runs silenced; Ctrl-C keeps
        the network of the last complete epoch, as scikit-learn keeps its weights. Weights
        that became NaN or infinite are scikit-learn's ValueError, unless early stopping has a
        best epoch to go back to (then the diverged epoch scores NaN, as in scikit-learn)."""
        self._lbfgs_cost = None
        with warnings.catch_warnings():
            for message in _QUIET:
                warnings.filterwarnings("ignore", message=message)
            try:
                result = train(**options)
            except DivergenceError as exc:
                if epochs is None or epochs.network is None or epochs.best_parameters is None:
                    raise ValueError("Solver produced non-finite parameter weights. The input "
                                     "data may contain large values and need to be "
                                     f"preprocessed. ({exc})") from exc
                if self.validation_scores_ is not None:
                    self.validation_scores_.append(float("nan"))
                return epochs.network, None, True
            except TrainingInterrupted as exc:
                if exc.network is None or not exc.history:
                    raise
                warnings.warn("Training interrupted by user.", stacklevel=5)
                self._lbfgs_cost = exc.history[-1].train_cost
                return exc.network, None, True
        if result.history:
            self._lbfgs_cost = result.history[-1].train_cost
        return result.network, result.optimizer_state, result.stopped_early

    # -- the pieces of fit
    def _layers(self, n_features: int) -> tuple[int, ...]:
        """The network's layer sizes for ``n_features`` inputs."""
        return (int(n_features), *hidden_layers(self.hidden_layer_sizes), self._n_outputs())

    def _validate_X(self, X, *, reset: bool, y=None):
        """scikit-learn's validation of ``X``, in ``dtype`` (or float64/float32); SciPy sparse
        matrices (CSR/CSC) are kept, on NumPy."""
        xp = namespace_of(X)
        if self.dtype is not None:
            dtype: Any = getattr(xp, check_dtype(self.dtype))
        else:
            dtype = [xp.float64, xp.float32]
        return validate_data(self, X, reset=reset, accept_sparse=["csr", "csc"], dtype=dtype,
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

    def _initialize(self) -> None:
        """A fresh start: the random state and scikit-learn's bookkeeping."""
        self._random_state = check_random_state(self.random_state)
        self.t_ = 0
        self._schedule = Schedule(float(self.learning_rate_init))
        for name in ("network_", "_optimizer_state", "loss_curve_", "best_loss_",
                     "validation_scores_", "best_validation_score_"):
            self.__dict__.pop(name, None)
        if stochastic(self.solver):
            self._stochastic_bookkeeping()

    def _stochastic_bookkeeping(self) -> None:
        """The curves and bests scikit-learn keeps for its stochastic solvers only."""
        self.loss_curve_ = []
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
            self.best_loss_ = np.inf

    def _split(self, n: int, strata) -> tuple[np.ndarray, np.ndarray]:
        """Training and validation rows for early stopping (stratified by ``strata`` when
        given, as scikit-learn does for one-label classification)."""
        rows = np.arange(n)
        train_rows, val_rows = train_test_split(rows, random_state=self._random_state,
                                                test_size=self.validation_fraction,
                                                stratify=strata)
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
                          "to be clipped", stacklevel=5)
        return int(min(max(self.batch_size, 1), n))

    def _dtype_name(self, X) -> str:
        """The network's dtype for validated data ``X``."""
        if is_sparse(X):
            return "float64" if X.dtype == np.float64 else "float32"
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

    def _outputs(self, X, method: str):
        """The network's outputs for ``X`` (probabilities, values), in ``X``'s place."""
        X, place = self._prepared(X, method)
        return to_place(self.network_.predict_proba(X) if self.network_.targets != "values"
                        else self.network_.predict(X), place)

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
        :func:`portamlp.load` reads it too); the parameters, the classes, feature names and
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
    def load(cls, path, *, backend=None, device=None, format: str | None = None):
        """An estimator saved by :meth:`save`, its network on ``backend``/``device`` (default:
        NumPy, or the saved ``backend`` parameter).

        Raises
        ------
        ModelFormatError
            The file is not a saved estimator of this class; the message says what is wrong.
        """
        estimator = _persist.load_estimator(cls, path, backend=backend, device=device,
                                            format=format)
        estimator._resume()  # noqa: SLF001 (the same class's own state)
        return estimator

    def _resume(self) -> None:
        """The state a fit started from a model file needs: a fresh random state, the initial
        learning rate, and the network's place as the place of fit."""
        self._random_state = check_random_state(self.random_state)
        self._schedule = Schedule(float(self.learning_rate_init))
        backend = self.network_.backend
        self._fit_place = NUMPY_PLACE if backend.name == "numpy" else \
            (backend.name, device_spec(backend))
