"""The classifier's labels: ``y`` checked as scikit-learn checks a classifier's, and encoded as
portamlp's class indices 0..k-1 against the estimator's ``classes_`` (set on a first fit,
checked on later ones), or, for an indicator matrix of several labels per sample, as 0/1
targets with ``classes_ = 0..n_labels-1``. Messages speak of the caller's labels, as plain
values."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.utils import assert_all_finite
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import column_or_1d

from ._arrays import host_array

__all__ = ["validate_labels", "encode_labels", "encode_multilabel"]


def validate_labels(est: Any, y: Any, n_rows: int) -> np.ndarray:
    """``y`` as 1-D host labels of ``n_rows`` samples (or a 2-D 0/1 indicator matrix of several
    labels per sample), checked as scikit-learn checks a classifier's."""
    if y is None:
        raise ValueError(f"{type(est).__name__} requires y to be passed, but the target y "
                         "is None.")
    y = host_array(y)
    if y.dtype.kind == "f":
        assert_all_finite(y, input_name="y")
    kind = type_of_target(y, input_name="y")
    if kind == "multiclass-multioutput":
        raise ValueError(f"y is {kind} (shape {y.shape}): several outputs of several classes "
                         "each; MLPClassifier takes one label per sample or a 0/1 indicator "
                         "matrix of several labels (multilabel). Use "
                         "sklearn.multioutput.MultiOutputClassifier around it")
    if kind == "multilabel-indicator":
        if y.shape[0] != n_rows:
            raise ValueError(f"Found input variables with inconsistent numbers of samples: "
                             f"[{n_rows}, {y.shape[0]}]")
        return np.asarray(y)
    y = column_or_1d(y, warn=True)
    check_classification_targets(y)
    if y.shape[0] != n_rows:
        raise ValueError(f"Found input variables with inconsistent numbers of samples: "
                         f"[{n_rows}, {y.shape[0]}]")
    return y


def encode_labels(est: Any, y: np.ndarray, first: bool, incremental: bool,
                  classes: Any) -> np.ndarray:
    """Class indices 0..k-1 of ``y``, setting (a first fit) or checking ``est.classes_``;
    ``classes`` is ``partial_fit``'s argument."""
    if incremental:
        if classes is not None:
            wanted = np.unique(host_array(classes))
            if hasattr(est, "classes_") and not first and not _same(wanted, est.classes_):
                raise ValueError(f"classes={wanted.tolist()} is not the same as on the "
                                 "first call to partial_fit, which gave "
                                 f"{est.classes_.tolist()}")
            if first:
                est.classes_ = wanted
        unseen = np.setdiff1d(y, est.classes_)
        if unseen.size:
            raise ValueError(f"y holds labels {unseen.tolist()} that are not in classes_ = "
                             f"{est.classes_.tolist()}; pass every label in classes= on "
                             "the first call to partial_fit")
    else:
        found = np.unique(y)
        if not first and not _same(found, est.classes_):
            # scikit-learn's words (and its array print), then what to do
            raise ValueError(f"warm_start can only be used where `y` has the same classes as "
                             f"in the previous call to fit. Previously got {est.classes_}, "
                             f"`y` has {found}; set warm_start=False to start afresh")
        if first:
            est.classes_ = found
    _same_kind(est, "multiclass", first)
    return np.searchsorted(est.classes_, y).astype(np.int64)


def encode_multilabel(est: Any, y: np.ndarray, first: bool, classes: Any) -> np.ndarray:
    """0/1 targets of an indicator ``y`` (n, n_labels), setting (a first fit) or checking
    ``est.classes_ = 0..n_labels-1``; ``classes`` is ``partial_fit``'s argument."""
    labels = np.arange(y.shape[1])
    if classes is not None and not _same(np.unique(host_array(classes)), labels):
        raise ValueError(f"classes={np.unique(host_array(classes)).tolist()} does not match "
                         f"the {y.shape[1]} columns of the indicator matrix y; pass "
                         f"classes={labels.tolist()}")
    if first:
        est.classes_ = labels
    elif not _same(labels, est.classes_):
        raise ValueError(f"y has {y.shape[1]} label columns, but the fitted classifier has "
                         f"{len(est.classes_)}; set warm_start=False to start afresh")
    _same_kind(est, "multilabel-indicator", first)
    return (y != 0).astype(np.int64)


def _same_kind(est: Any, kind: str, first: bool) -> None:
    """Remember (a first fit) or check whether ``y`` is multilabel."""
    fitted = getattr(est, "_label_kind", "multiclass")
    if first:
        est._label_kind = kind  # noqa: SLF001 (the estimator's private fact, with classes_)
    elif fitted != kind:
        raise ValueError(f"y is {kind}, but the classifier was fitted on {fitted} y; set "
                         "warm_start=False to start afresh")


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two label arrays are equal."""
    return a.shape == b.shape and bool(np.all(a == b))
