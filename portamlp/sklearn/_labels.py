"""The classifier's labels: ``y`` checked as scikit-learn checks a classifier's, and encoded as
portamlp's class indices 0..k-1 against the estimator's ``classes_`` (set on a first fit,
checked on later ones). Messages speak of the caller's labels, as plain values."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.utils import assert_all_finite
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import column_or_1d

from ._arrays import host_array

__all__ = ["validate_labels", "encode_labels"]


def validate_labels(est: Any, y: Any, n_rows: int) -> np.ndarray:
    """``y`` as 1-D host labels of ``n_rows`` samples, checked as scikit-learn checks a
    classifier's."""
    if y is None:
        raise ValueError(f"{type(est).__name__} requires y to be passed, but the target y "
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
            raise ValueError(f"warm_start can only be used where `y` has the same classes as "
                             f"in the previous call to fit. Previously got "
                             f"{est.classes_.tolist()}, `y` has {found.tolist()}; set "
                             "warm_start=False to start afresh")
        if first:
            est.classes_ = found
    if len(est.classes_) < 2:
        raise ValueError(f"{type(est).__name__} needs samples of at least 2 classes in the "
                         f"data, but the data contains only one class: "
                         f"{est.classes_.tolist()[0]!r}")
    return np.searchsorted(est.classes_, y).astype(np.int64)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two label arrays are equal."""
    return a.shape == b.shape and bool(np.all(a == b))
