"""The data of a training run: training, validation and test splits staged on the device.

A named data set (or a folder of MNIST-format files) is read on the host, prepared with the
run's :class:`~portamlp.datasets.Preprocessing` (recorded in the network) and moved to the
device once; the caller's own arrays are checked once (shape, finite values, labels) and moved
there. Both become :class:`~portamlp.datasets.DeviceDataset` objects.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ..backends import memory_phase
from ..datasets.registry import default_validation_length, n_classes
from ..datasets.scaling import Preprocessing
from ..datasets.sources import read_split
from ..datasets.staging import DeviceDataset
from ..nn.costs import get_cost
from ..nn.inputs import SparseRows, as_features, as_labels, as_targets, host_numeric
from ..nn.network import Network
from .advice import UNSCALED
from .config import TrainConfig

__all__ = ["Splits", "stage_splits", "stage_named", "stage_arrays"]

#: What own training inputs larger than :data:`~.advice.UNSCALED` are told.
_USUAL = (UNSCALED, "networks train best on inputs of about unit size: divide pixels by 255, or "
          "standardise each column ((x - x.mean(axis=0)) / x.std(axis=0), or scikit-learn's "
          "StandardScaler)")


@dataclasses.dataclass
class Splits:
    """The training, validation and test data of a run, on the network's device."""

    train: DeviceDataset
    validation: DeviceDataset | None
    test: DeviceDataset | None
    #: The largest magnitude in your own training inputs (None for a named data set).
    largest_input: float | None = None


def stage_splits(cfg: TrainConfig, net: Network, x: Any, y: Any, validation_data: Any,
                 test_data: Any, sample_weight: Any, root: Any, download: bool, *,
                 fresh: bool = True) -> Splits:
    """Put the training, validation and test data on the network's device. A ``fresh``
    network (not given, not resumed) refuses training labels of one class: it would learn
    nothing (continuing a network on a batch of one class is fine)."""
    be = net.backend
    with memory_phase("staging the data", be,
                      "use a smaller train_length / validation_length / test_length"):
        if x is None:
            return stage_named(cfg, net, root, download)
        if cfg.validation_split:
            x, y, sample_weight, validation_data = _split_off_validation(
                cfg.validation_split, x, y, sample_weight, validation_data)
        largest: list[float] = []
        train = stage_arrays(net, x, y, cfg.train_length, "train", sample_weight, fresh,
                             measured=largest.append)
        if train is None:
            if cfg.train_length == 0:
                raise ValueError("train_length=0 leaves no training rows; use train_length >= 1, "
                                 "or leave it out to train on all of x")
            raise ValueError("x has no rows: the training data is empty")
        xv, yv = _pair(validation_data, "validation")
        xt, yt = _pair(test_data, "test")
        return Splits(train,
                      stage_arrays(net, xv, yv, cfg.validation_length, "validation",
                                   split=bool(cfg.validation_split)),
                      stage_arrays(net, xt, yt, cfg.test_length, "test"),
                      largest_input=largest[0] if largest else None)


def stage_named(cfg: TrainConfig, net: Network, root, download: bool) -> Splits:
    """Train / validation / test splits of a named data set (or folder) on the device."""
    if net.targets != "classes":
        raise ValueError(f"cost={net.cost!r} fits {net.targets}, but {cfg.dataset!r} holds "
                         "classes: use cost='quadratic' or 'cross_entropy', or pass your own x "
                         "and y")
    k = n_classes(cfg.dataset)
    if net.layers[-1] != k:
        raise ValueError(f"the last layer must have {k} units: {cfg.dataset} has {k} classes "
                         f"(got layers={list(net.layers)})")
    images, labels = read_split(cfg.dataset, "train", root, k, download=download)
    n_file = images.shape[0]
    n_val = default_validation_length(n_file) if cfg.validation_length is None \
        else cfg.validation_length
    n_train = n_file - n_val if cfg.train_length is None else cfg.train_length
    if n_train + n_val > n_file:
        raise ValueError(
            f"train_length={n_train} + validation_length={n_val} exceed the {n_file} images of "
            f"the {cfg.dataset!r} training file (validation rows are taken from its end)")
    if n_train == 0:
        raise ValueError("train_length must be >= 1")
    n_features = images[0].size
    if n_features != net.layers[0]:
        raise ValueError(f"the first layer must have {n_features} units: {cfg.dataset} images "
                         f"have {n_features} pixels (got layers={list(net.layers)})")
    if cfg.test_length == 0:  # the test files are not even read
        test_images, test_labels, n_test = images[:0], labels[:0], 0
    else:
        test_images, test_labels = read_split(cfg.dataset, "test", root, k, download=download)
        n_test = test_images.shape[0] if cfg.test_length is None else cfg.test_length
        if n_test > test_images.shape[0]:
            raise ValueError(f"test_length={n_test} exceeds the {test_images.shape[0]} test "
                             f"images of {cfg.dataset!r}")
    prep = Preprocessing.from_scale(cfg.scale, cfg.dataset, root, download)
    net.preprocessing = prep
    be = net.backend

    def stage(imgs, labs):
        if imgs.shape[0] == 0:
            return None
        xs = prep.apply(imgs.reshape(imgs.shape[0], -1), cfg.dtype)
        return DeviceDataset(be.asarray(xs), be.asarray(labs.astype("int64")), k, be)

    return Splits(stage(images[:n_train], labels[:n_train]),
                   stage(images[n_file - n_val:], labels[n_file - n_val:]),
                   stage(test_images[:n_test], test_labels[:n_test]))


def stage_arrays(net: Network, x: Any, y: Any, limit: int | None, what: str,
                 sample_weight: Any = None, several: bool = False, *,
                 measured: Callable[[float], None] | None = None,
                 split: bool = False) -> DeviceDataset | None:
    """The caller's own arrays, checked once and moved to the network's backend (training
    labels of one class refused when ``several``; validation labels of one class warned about,
    saying to shuffle when they came from ``validation_split``)."""
    if x is None:
        return None
    be = net.backend
    name = "x" if what == "train" else f"{what}_data x"
    xs = as_features(x, be, net.dtype, net.layers[0], what=name, layers=net.layers,
                     usual=_USUAL if what == "train" else None, measured=measured)
    ys, targets = None, None
    y_name = "y" if what == "train" else f"{what}_data y"
    if net.targets != "classes":  # values or 0/1 indicators: the targets themselves
        targets = as_targets(y, be, xs.shape[0], net.layers[-1], net.dtype, what=y_name,
                             kind=net.targets, minimum=get_cost(net.cost).min_target,
                             cost=net.cost)
    else:
        one_class = None
        if what == "validation":
            fix = ("the last rows of x, which validation_split takes, are all of one class: "
                   "shuffle x and y together first") if split else "give rows of several classes"
            one_class = f"it cannot show how the network does across classes; {fix}"
        ys = as_labels(y, be, xs.shape[0], net.layers[-1], what=y_name, several=several,
                       one_class=one_class)
    weights = None
    if sample_weight is not None:
        weights = _sample_weights(sample_weight, xs.shape[0])
    if limit is not None:
        if limit > xs.shape[0]:
            raise ValueError(f"{what}_length={limit} exceeds the {xs.shape[0]} samples given")
        xs = xs.head(limit) if isinstance(xs, SparseRows) else xs[:limit, ...]
        ys = None if ys is None else ys[:limit]
        targets = None if targets is None else targets[:limit, ...]
        weights = None if weights is None else weights[:limit]
    if xs.shape[0] == 0:
        return None
    if weights is not None:
        weights = be.asarray(weights / weights.mean(), net.dtype)
    return DeviceDataset(xs, ys, net.layers[-1], be, sample_weight=weights, targets=targets)


def _split_off_validation(fraction: float, x, y, sample_weight, validation_data):
    """The last ``fraction`` of the rows of ``x`` and ``y`` as validation data (Keras's rule:
    ``int(n * (1 - fraction))`` rows train), sliced where they live."""
    if validation_data is not None:
        raise ValueError("pass either validation_data or validation_split, not both")
    n = int(x.shape[0]) if hasattr(x, "shape") else len(x)
    cut = int(n * (1.0 - fraction))
    if cut < 1 or cut >= n:
        raise ValueError(f"validation_split={fraction} of {n} rows leaves {cut} to train on and "
                         f"{n - cut} to validate; both need at least one row")
    weights = None if sample_weight is None else sample_weight[:cut]
    return x[:cut], y[:cut], weights, (x[cut:], y[cut:])


def _sample_weights(sample_weight, n: int):
    w = host_numeric(sample_weight, "sample_weight").astype("float64").reshape(-1)
    if w.shape[0] != n:
        raise ValueError(f"sample_weight has {w.shape[0]} values for {n} samples; they must "
                         "match")
    if not (w >= 0).all() or not (w < float("inf")).all():
        raise ValueError("sample_weight must hold finite values >= 0")
    if not w.sum() > 0:
        raise ValueError("sample_weight must not be all zeros")
    return w


def _pair(data, what):
    if data is None:
        return None, None
    try:
        x, y = data
    except (TypeError, ValueError):
        raise TypeError(f"{what}_data must be a pair (x, y) of arrays") from None
    return x, y
