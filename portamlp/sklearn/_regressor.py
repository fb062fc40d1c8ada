"""``MLPRegressor``: scikit-learn's regressor interface over :func:`portamlp.train`.

A regressor's targets are real values, one column per output (``y`` of shape (n,) is one
output, and predictions come back 1-D then); its network ends in the output of its ``loss``
(an entry of :data:`portamlp.nn.costs.COSTS` whose targets are values: ``"squared_error"``, an
identity output, or ``"poisson"``, an exponential one). Early stopping watches R² on the
held-out data. Everything else a fit does is :class:`~._base.BaseMLP`'s.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.metrics import r2_score
from sklearn.utils import assert_all_finite
from sklearn.utils.metaestimators import available_if

from ..checks import check_choice
from ..nn.network import Network
from ._arrays import NUMPY_PLACE, host_array, namespace_of, to_place
from ._base import BaseMLP, lbfgs_hidden, store_parameters
from ._docs import ATTRIBUTES_DOC, PARAMETERS_DOC
from ._params import cost_names, invalid_parameter

__all__ = ["MLPRegressor"]


class MLPRegressor(RegressorMixin, BaseMLP):
    """Multi-layer perceptron regressor trained by portamlp, with scikit-learn's interface.

    A drop-in for :class:`sklearn.neural_network.MLPRegressor`: the same parameters with the
    same meanings and defaults, the same solvers (``"adam"``, ``"sgd"``, ``"lbfgs"``), stopping
    rules and fitted attributes; one output or several (``y`` of shape (n, n_outputs)).
    ``score`` is R². ``X`` may be dense or a SciPy sparse matrix. Training runs on portamlp's
    backends, as :class:`MLPClassifier`'s does.

    Parameters
    ----------
    loss : {"squared_error", "poisson"} or a registered name, default="squared_error"
        Any entry of :data:`portamlp.nn.costs.COSTS` whose targets are values:
        ``"squared_error"`` (half the squared error, an identity output) or ``"poisson"`` (half
        the Poisson deviance, an exponential output; ``y`` must be >= 0).{parameters}

    Attributes
    ----------
    network_ : portamlp.Network
        The trained network; output unit ``i`` is column ``i`` of ``y``.
    validation_scores_ : list of float or None
        R² on the held-out data after each epoch (early stopping only).
    best_validation_score_ : float or None
    out_activation_ : str
        ``"identity"`` (squared error) or ``"exp"`` (Poisson).{attributes}

    Notes
    -----
    scikit-learn reports the squared error's loss averaged over the outputs as well as the
    samples (its gradient is not); ``loss_`` and ``loss_curve_`` follow it, so they equal
    scikit-learn's for the same weights.
    """

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 init="glorot", dtype=None, backend=None, device=None, dropout=0.0,
                 input_dropout=0.0, max_norm=None,
                 distortions=None):
        store_parameters(self, locals())

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    # ------------------------------------------------------------------------ the targets
    def _check_own_parameters(self) -> None:
        with invalid_parameter():
            check_choice("loss", self.loss, cost_names("values"))

    def _targets(self, y, n_rows: int, first: bool, incremental: bool, classes):
        """``y`` as a host float64 matrix (n, n_outputs); no strata (the split is random)."""
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y "
                             "is None.")
        values = np.asarray(host_array(y))
        try:  # numbers of any dtype (object arrays of numbers included)
            values = values.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"Unknown label type: y must hold numbers for a regressor, got "
                             f"dtype {values.dtype}") from None
        assert_all_finite(values, input_name="y")
        if values.ndim == 1:
            values = values.reshape(-1, 1)
        if values.ndim != 2 or values.shape[0] != n_rows or values.shape[1] == 0:
            raise ValueError(f"y must have shape ({n_rows},) or ({n_rows}, n_outputs) with "
                             f"n_outputs >= 1, got {values.shape}")
        if self.loss == "poisson" and (values < 0).any():
            raise ValueError("loss='poisson' needs y >= 0 (counts or rates); y holds negative "
                             "values")
        if not first and values.shape[1] != self.n_outputs_:
            raise ValueError(f"y has {values.shape[1]} outputs, but the fitted regressor has "
                             f"{self.n_outputs_}; set warm_start=False to start afresh")
        self._n_targets = values.shape[1]
        return values, None

    def _n_outputs(self) -> int:
        return int(getattr(self, "_n_targets", 1))

    def _cost_name(self) -> str:
        return str(self.loss)

    def _loss_divisor(self) -> float:
        return float(self._n_outputs()) if self.loss == "squared_error" else 1.0

    def _stopping_score(self, network: Network, record, x, y, w) -> float:
        """R² of the held-out data (weighted by the held-out sample weights, if any)."""
        predicted = to_place(network.predict(x), NUMPY_PLACE)
        if not np.isfinite(predicted).all():
            return float("nan")
        return float(r2_score(y, predicted, sample_weight=w))

    # ----------------------------------------------------------------------------- fitting
    @available_if(lbfgs_hidden)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over ``(X, y)``, continuing the same network and optimizer state (the
        stochastic solvers only, as in scikit-learn).

        Parameters
        ----------
        X : array-like or SciPy sparse matrix of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, incremental=True)

    # ----------------------------------------------------------------------- prediction
    def predict(self, X):
        """The predicted values, shape (n_samples,) for one output, else (n_samples,
        n_outputs); in ``X``'s library and device."""
        values = self._outputs(X, "predict")
        if values.shape[1] == 1:
            return namespace_of(values).reshape(values, (-1,))
        return values


MLPRegressor.__doc__ = (MLPRegressor.__doc__ or "").replace("{parameters}", PARAMETERS_DOC) \
    .replace("{attributes}", ATTRIBUTES_DOC)
