"""``MLPClassifier``: scikit-learn's classifier interface over :func:`portamlp.train`.

This module says what a classifier's targets are: one label per sample (a softmax output over
``classes_``), several labels per sample (an indicator matrix ``y``: one logistic output per
label, the binary cross-entropy cost), or one class only (a constant model). Everything else a
fit does is :class:`~._base.BaseMLP`'s; the labels' checks and encoding are in :mod:`._labels`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.utils.metaestimators import available_if

from ..checks import check_choice
from ..nn.network import Network
from ._arrays import NUMPY_PLACE, namespace_of, to_place
from ._base import BaseMLP, lbfgs_hidden, store_parameters
from ._docs import ATTRIBUTES_DOC, PARAMETERS_DOC
from ._epochs import Schedule
from ._labels import encode_labels, encode_multilabel, validate_labels
from ._params import cost_names, invalid_parameter

__all__ = ["MLPClassifier"]

#: Pickles written before the per-epoch rules moved to ``_epochs`` name the class here.
_Schedule = Schedule


class MLPClassifier(ClassifierMixin, BaseMLP):
    """Multi-layer perceptron classifier trained by portamlp, with scikit-learn's interface.

    A drop-in for :class:`sklearn.neural_network.MLPClassifier`: the same parameters with the
    same meanings and defaults, the same solvers (``"adam"``, ``"sgd"``, ``"lbfgs"``), stopping
    rules and fitted attributes. ``y`` holds one label per sample (any type), or is an
    indicator matrix of several labels per sample (multilabel: one logistic output per label).
    ``X`` may be dense or a SciPy sparse matrix. Training runs on portamlp's backends: NumPy
    by default, or, under ``sklearn.set_config(array_api_dispatch=True)``, the library and
    device of ``X`` (CuPy, PyTorch, array-api-strict); ``backend=``/``device=`` choose
    explicitly.

    Parameters
    ----------{parameters}
    cost : {"cross_entropy", "quadratic"} or a registered name, default="cross_entropy"
        portamlp's option, any entry of :data:`portamlp.nn.costs.COSTS` whose targets are
        classes: ``"cross_entropy"`` is scikit-learn's log-loss on a softmax output.
        Multilabel ``y`` always trains with the binary cross-entropy.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The labels, sorted (any type: strings, ints not 0..k-1, ...); ``0..n_labels-1`` for
        multilabel ``y``.
    network_ : portamlp.Network
        The trained network; output unit ``i`` is ``classes_[i]``. A binary problem has two
        output units (a softmax), not scikit-learn's one logistic unit.
    validation_scores_ : list of float or None
        Accuracy on the held-out data after each epoch (early stopping only).
    best_validation_score_ : float or None
    out_activation_ : str
        ``"softmax"``, ``"logistic"`` (multilabel, or one class), or the hidden activation
        (by its ``activation`` name) with the quadratic cost.{attributes}
    """

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 cost="cross_entropy", init="glorot", dtype=None, backend=None, device=None,
                 dropout=0.0, input_dropout=0.0, max_norm=None,
                 distortions=None):
        store_parameters(self, locals())

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    # ------------------------------------------------------------------------ the targets
    def _check_own_parameters(self) -> None:
        with invalid_parameter():
            check_choice("cost", self.cost, cost_names("classes"))

    def _needs_classes(self) -> bool:
        return True

    def _targets(self, y, n_rows: int, first: bool, incremental: bool, classes):
        """Class indices (or 0/1 indicators for multilabel ``y`` or one class), and the strata
        of the early-stopping split (the labels; none for multilabel)."""
        y = validate_labels(self, y, n_rows)
        if y.ndim == 2:
            return encode_multilabel(self, y, first, classes), None
        codes = encode_labels(self, y, first, incremental, classes)
        if len(self.classes_) == 1:  # a constant model, quietly (as scikit-learn's)
            return np.ones((n_rows, 1), dtype=np.int64), None
        return codes, y

    @property
    def _multilabel(self) -> bool:
        return bool(getattr(self, "_label_kind", "") == "multilabel-indicator")

    def _n_outputs(self) -> int:
        if not hasattr(self, "classes_"):
            return 2
        k = len(self.classes_)
        return k if k > 1 else 1

    def _cost_name(self) -> str:
        if self._multilabel or len(self.classes_) == 1:
            return "binary_cross_entropy"
        return str(self.cost)

    def _stopping_score(self, network: Network, record, x, y, w) -> float:
        """The held-out accuracy (subset accuracy for multilabel), weighted by the held-out
        sample weights, if any."""
        if w is None and record.validation_accuracy is not None:
            return float(record.validation_accuracy)
        predicted = to_place(network.predict(x), NUMPY_PLACE)
        hits = predicted == y if predicted.ndim == 1 else np.all(predicted == y, axis=1)
        if w is None or not w.sum() > 0:
            return float(np.mean(hits))
        return float(np.average(hits, weights=w))

    # ----------------------------------------------------------------------------- fitting
    @available_if(lbfgs_hidden)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over ``(X, y)``, continuing the same network and optimizer state (the
        stochastic solvers only, as in scikit-learn).

        Parameters
        ----------
        X : array-like or SciPy sparse matrix of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
        sample_weight : array-like of shape (n_samples,), optional
        classes : array-like of shape (n_classes,), optional
            All the labels there will ever be: required on the first call, optional after
            (then they must be the same).

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    # ----------------------------------------------------------------------- prediction
    def predict_proba(self, X):
        """Probability of each class, shape (n_samples, n_classes), columns in ``classes_``
        order; rows sum to 1. Multilabel: each label's own probability. One class: ones.
        Returned in ``X``'s library and device."""
        return self._proba(X, "predict_proba")

    def predict_log_proba(self, X):
        """The logarithm of :meth:`predict_proba`."""
        proba = self._proba(X, "predict_log_proba")
        return namespace_of(proba).log(proba)

    def _proba(self, X, method: str):
        proba = self._outputs(X, method)
        return namespace_of(proba).ones_like(proba) if len(self.classes_) == 1 else proba

    def predict(self, X):
        """The most probable class of each sample (labels from ``classes_``); for multilabel
        ``y``, the 0/1 indicator of each label. In ``X``'s library and device when the labels
        are numbers, else a NumPy array."""
        X, place = self._prepared(X, "predict")
        if self._multilabel:
            return to_place(self.network_.predict(X), place)
        if len(self.classes_) == 1:
            codes: Any = np.zeros(X.shape[0], dtype=np.int64)
        else:
            codes = self.network_.predict(X)
        if place == NUMPY_PLACE or self.classes_.dtype.kind not in "iufb":
            return self.classes_[to_place(codes, NUMPY_PLACE)]
        codes = to_place(codes, place)
        classes = to_place(self.classes_, place)
        xp = namespace_of(codes)
        return xp.take(classes, codes, axis=0)


MLPClassifier.__doc__ = (MLPClassifier.__doc__ or "").replace("{parameters}", PARAMETERS_DOC) \
    .replace("{attributes}", ATTRIBUTES_DOC)
