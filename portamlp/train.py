"""Training: the epoch / mini-batch loop, validation, history and callbacks.

:func:`train` takes keyword options named after the original program's parameters, validates them
into a frozen :class:`TrainConfig`, stages the data on the backend's device once, and runs
mini-batch stochastic gradient descent. Nothing is printed: progress goes to a tqdm bar on stderr
(only on a terminal unless ``progress=True``), advice goes through :mod:`warnings`.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .activations import ACTIVATIONS
from .backend import Backend, get_backend, to_numpy
from .datasets.loading import _check_scale, n_classes, scale_images
from .datasets.sources import read_split
from .datasets.staging import DeviceDataset
from .errors import DivergenceError, PortamlpWarning
from .losses import COSTS
from .network import INITS, Network, check_layers
from .optim import OPTIMIZERS, make_optimizer

__all__ = ["train", "TrainConfig", "TrainResult", "EpochRecord", "SCHEDULES"]

#: Learning-rate schedules: the rate used in each epoch (1-based) of ``epochs``.
SCHEDULES = {
    "constant": lambda rate, epoch, epochs: rate,
    # half a cosine from the full rate in the first epoch down towards 0 in the last
    "cosine": lambda rate, epoch, epochs: 0.5 * rate * (1.0 + math.cos(math.pi * (epoch - 1) / epochs)),
}


@dataclass(frozen=True)
class TrainConfig:
    """The settings of one training run (validated on construction).

    ``None`` for a length means "all that is available": for a named data set, the training split
    minus the validation rows (50,000 for MNIST), and the whole test split (10,000).
    """

    layers: tuple[int, ...] | None = None
    train_length: int | None = None
    validation_length: int | None = None
    test_length: int | None = None
    batch_size: int = 10
    epochs: int = 5
    learning_rate: float = 3.0
    learning_rate_schedule: str = "constant"
    activation: str = "sigmoid"
    cost: str = "quadratic"
    optimizer: str = "sgd"
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    init: str = "auto"
    dtype: str = "float32"
    dataset: str = "mnist"
    scale: Any = 255
    shuffle: bool = True
    seed: int | None = None

    def __post_init__(self):
        if self.layers is not None:
            object.__setattr__(self, "layers", check_layers(self.layers))
        for name in ("train_length", "validation_length", "test_length"):
            _check_int(name, getattr(self, name), minimum=0, optional=True)
        _check_int("batch_size", self.batch_size, minimum=1)
        _check_int("epochs", self.epochs, minimum=0)
        _check_number("learning_rate", self.learning_rate, positive=True)
        _check_number("momentum", self.momentum)
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum={self.momentum!r} must lie in [0, 1)")
        _check_number("weight_decay", self.weight_decay)
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay={self.weight_decay!r} must be >= 0")
        _check_choice("learning_rate_schedule", self.learning_rate_schedule, SCHEDULES)
        _check_choice("activation", self.activation, ACTIVATIONS)
        _check_choice("cost", self.cost, COSTS)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("init", self.init, INITS)
        _check_choice("dtype", self.dtype, ("float32", "float64"))
        if not isinstance(self.nesterov, bool) or not isinstance(self.shuffle, bool):
            raise TypeError("nesterov and shuffle must be True or False")
        if self.nesterov and not self.momentum:
            raise ValueError("nesterov=True needs momentum > 0 (e.g. momentum=0.9)")
        if self.optimizer == "adam" and (self.momentum or self.nesterov):
            raise ValueError("momentum and nesterov apply to optimizer='sgd'; Adam keeps its own "
                             "moment estimates")
        if not isinstance(self.dataset, str):
            raise TypeError(f"dataset must be a name such as 'mnist' or a folder, got {self.dataset!r}")
        object.__setattr__(self, "scale", _check_scale(self.scale))
        _check_int("seed", self.seed, minimum=0, optional=True)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data view (JSON-ready)."""
        d = dataclasses.asdict(self)
        d["layers"] = list(self.layers) if self.layers else None
        return d


@dataclass
class EpochRecord:
    """What one epoch measured."""

    epoch: int
    seconds: float
    train_loss: float
    validation_accuracy: float | None = None
    #: Classes the network never predicted on the validation set.
    never_predicted: list[int] = field(default_factory=list)


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    network: Network
    history: list[EpochRecord]
    test_accuracy: float | None
    config: TrainConfig
    #: True when a callback asked to stop before the last epoch.
    stopped_early: bool = False


def _check_int(name, value, *, minimum, optional=False):
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}={value!r} must be >= {minimum}")


def _check_number(name, value, positive=False):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or (positive and value <= 0):
        raise ValueError(f"{name}={value!r} must be a finite number" + (" > 0" if positive else ""))


def _check_choice(name, value, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {sorted(choices)}")


# --------------------------------------------------------------------------- data staging
def _stage_named(cfg: TrainConfig, be: Backend, root) -> tuple:
    """Train / validation / test splits of a named data set (or folder) on the device."""
    k = n_classes(cfg.dataset)
    images, labels = read_split(cfg.dataset, "train", root, k)
    n_file = images.shape[0]
    n_val = min(10_000, n_file // 6) if cfg.validation_length is None else cfg.validation_length
    n_train = n_file - n_val if cfg.train_length is None else cfg.train_length
    if n_train + n_val > n_file:
        raise ValueError(
            f"train_length={n_train} + validation_length={n_val} exceed the {n_file} images of "
            f"the {cfg.dataset!r} training file (validation rows are taken from its end)"
        )
    if n_train == 0:
        raise ValueError("train_length must be >= 1")
    test_images, test_labels = read_split(cfg.dataset, "test", root, k)
    n_test = test_images.shape[0] if cfg.test_length is None else cfg.test_length
    if n_test > test_images.shape[0]:
        raise ValueError(f"test_length={n_test} exceeds the {test_images.shape[0]} test images "
                         f"of {cfg.dataset!r}")

    def stage(imgs, labs):
        if imgs.shape[0] == 0:
            return None
        x = scale_images(imgs.reshape(imgs.shape[0], -1), cfg.scale, cfg.dtype,
                         name=cfg.dataset, root=root)
        return DeviceDataset(be.asarray(x), be.asarray(labs.astype(np.int64)), k, be)

    return (stage(images[:n_train], labels[:n_train]),
            stage(images[n_file - n_val:], labels[n_file - n_val:]),
            stage(test_images[:n_test], test_labels[:n_test]))


def _stage_arrays(net: Network, x, y, limit, what) -> DeviceDataset | None:
    """The caller's own arrays, checked and moved to the network's backend."""
    if x is None:
        return None
    xs = net.as_input(x)
    ys = net.as_labels(y, xs.shape[0])
    if limit is not None:
        if limit > xs.shape[0]:
            raise ValueError(f"{what}_length={limit} exceeds the {xs.shape[0]} samples given")
        xs, ys = xs[:limit, ...], ys[:limit]
    if xs.shape[0] == 0:
        return None
    return DeviceDataset(xs, ys, net.layers[-1], net.backend)


def _pair(data, what):
    if data is None:
        return None, None
    try:
        x, y = data
    except (TypeError, ValueError):
        raise TypeError(f"{what}_data must be a pair (x, y) of arrays") from None
    return x, y


# ----------------------------------------------------------------------------- the loop
def _accuracy_and_missing(net: Network, data: DeviceDataset) -> tuple[float, list[int]]:
    """Accuracy on a staged split, and the classes never predicted (one sync)."""
    predicted = to_numpy(net._predict_labels(data.x))
    truth = to_numpy(data.labels)
    counts = np.bincount(predicted, minlength=net.layers[-1])
    return float(np.mean(predicted == truth)), [int(c) for c in np.flatnonzero(counts == 0)]


def _progress_bar(progress, total, epoch, epochs):
    show = sys.stderr.isatty() if progress is None else bool(progress)
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"epoch {epoch}/{epochs}", unit="batch", leave=False,
                file=sys.stderr, dynamic_ncols=True)


def train(*, x=None, y=None, validation_data=None, test_data=None, network: Network | None = None,
          backend: str | Backend | None = None, device: Any = None, root=None,
          progress: bool | None = None, callbacks: Sequence[Callable] = (),
          **options) -> TrainResult:
    """Train a multilayer perceptron by mini-batch stochastic gradient descent.

    With no arguments: Nielsen's classic network (784-30-10, sigmoid, quadratic cost, batch 10,
    learning rate 3.0) for 5 epochs on the embedded MNIST (50,000 training images, 10,000
    validation images from the end of the training file, the 10,000 test images).

    Parameters
    ----------
    layers : sequence of int, optional
        Layer sizes, e.g. ``(784, 30, 10)`` (default), or the given ``network``'s.
    train_length, validation_length, test_length : int, optional
        Rows used from each split (default: all; see :class:`TrainConfig`).
    batch_size : int
        Mini-batch size (default 10). When it does not divide ``train_length`` a warning is
        issued and the last, smaller batch is still used.
    epochs : int
        Passes over the training data (default 5).
    learning_rate : float
        Step size η (default 3.0, for the quadratic cost; try 0.05 with cross-entropy + momentum).
    learning_rate_schedule : {"constant", "cosine"}
        ``"cosine"`` lowers the rate each epoch along half a cosine, from ``learning_rate`` in
        the first epoch towards 0 in the last (default ``"constant"``).
    activation : {"sigmoid", "relu", "leaky_relu", "tanh"}
    cost : {"quadratic", "cross_entropy"}
    optimizer : {"sgd", "adam"}
    momentum : float in [0, 1); nesterov : bool
        SGD momentum (default 0: plain SGD).
    weight_decay : float
        L2 penalty λ: adds ``λ·W`` to each weight gradient (default 0).
    init : {"auto", "normal", "scaled", "glorot", "he"}
        See :meth:`Network.initialize`.
    dtype : {"float32", "float64"}
    dataset : str
        ``"mnist"`` (embedded, default), ``"fashion-mnist"``, ``"kmnist"`` or a folder of
        MNIST-format files. Ignored when ``x`` is given.
    scale : {255, 256, "standardize"}
        Pixel scaling for named data sets (default: divide by 255).
    shuffle : bool
        Shuffle the training rows every epoch (default True).
    seed : int, optional
        Seeds initial weights and shuffling (host RNG): the same seed gives the same run on
        every backend. Default: fresh entropy, recorded in ``result.config.seed``.
    x, y : arrays, optional
        Your own training data instead of a data set: ``x`` of shape (n, layers[0]) (NumPy or
        any supported library; moved to the backend), ``y`` integer class indices of shape (n,).
    validation_data, test_data : pair of arrays, optional
        ``(x, y)`` to validate on after each epoch / test on at the end (with ``x`` given).
    network : Network, optional
        Continue training this network (its layers, activation and cost win; it is updated in
        place on its own backend).
    backend, device : optional
        See :func:`portamlp.get_backend`.
    root : path, optional
        Folder to search first for named data sets.
    progress : bool, optional
        Show a per-epoch progress bar on stderr (default: only when stderr is a terminal).
    callbacks : sequence of callables
        Each is called as ``callback(record, network)`` after every epoch, with an
        :class:`EpochRecord`; returning ``True`` stops training.

    Returns
    -------
    TrainResult
        ``.network``, ``.history`` (one :class:`EpochRecord` per epoch), ``.test_accuracy``
        (float, or None without test data) and ``.config``.
    """
    if network is not None:
        if not isinstance(network, Network):
            raise TypeError(f"network must be a portamlp.Network, got {type(network).__name__}")
        for key, value in (("activation", network.activation), ("cost", network.cost),
                           ("dtype", network.dtype)):
            if options.get(key, value) != value:
                raise ValueError(f"{key}={options[key]!r} differs from the given network's "
                                 f"{value!r}; leave it out to continue training that network")
            options[key] = value
        if options.get("layers") is not None and tuple(options["layers"]) != network.layers:
            raise ValueError(f"layers={list(options['layers'])} differ from the given network's "
                             f"{list(network.layers)}")
        options["layers"] = network.layers
    unknown = set(options) - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        raise TypeError(f"train() got unknown option(s) {sorted(unknown)}; valid options are "
                        f"{sorted(f.name for f in dataclasses.fields(TrainConfig))}")
    if options.get("seed") is None:
        options["seed"] = int(np.random.SeedSequence().entropy % (2**63))
    cfg = TrainConfig(**options)
    if cfg.layers is None:
        cfg = dataclasses.replace(cfg, layers=(784, 30, 10))
    callbacks = list(callbacks)
    for cb in callbacks:
        if not callable(cb):
            raise TypeError(f"callbacks must be callables, got {cb!r}")
    if (x is None) != (y is None):
        raise ValueError("pass both x and y (your own data), or neither (a named data set)")
    if x is None and (validation_data is not None or test_data is not None):
        raise ValueError("validation_data and test_data go with your own x and y")

    rng = np.random.default_rng(cfg.seed)
    if network is None:
        be = get_backend(backend, device)
        net = Network.initialize(cfg.layers, activation=cfg.activation, cost=cfg.cost,
                                 init=cfg.init, dtype=cfg.dtype, seed=rng, backend=be)
    else:
        if backend is not None or device is not None:
            raise ValueError("a given network trains on its own backend; use network.to(...) "
                             "first to move it")
        net = network
        be = net.backend

    if x is None:
        train_set, val_set, test_set = _stage_named(cfg, be, root)
        n_features = train_set.x.shape[1]
        if n_features != cfg.layers[0]:
            raise ValueError(f"layers={list(cfg.layers)} expect {cfg.layers[0]} inputs but "
                             f"{cfg.dataset!r} images have {n_features} pixels")
    else:
        train_set = _stage_arrays(net, x, y, cfg.train_length, "train")
        if train_set is None:
            raise ValueError("the training data is empty")
        val_set = _stage_arrays(net, *_pair(validation_data, "validation"), cfg.validation_length,
                                "validation")
        test_set = _stage_arrays(net, *_pair(test_data, "test"), cfg.test_length, "test")
        if cfg.dataset != "mnist":
            warnings.warn("dataset is ignored when x and y are given", PortamlpWarning, 2)
    n_train = len(train_set)
    if n_train % cfg.batch_size:
        warnings.warn(
            f"train_length={n_train} is not a multiple of batch_size={cfg.batch_size}; the last "
            f"mini-batch of each epoch has {n_train % cfg.batch_size} samples", PortamlpWarning, 2)

    opt = make_optimizer(cfg.optimizer, net.parameters(), be.xp, learning_rate=cfg.learning_rate,
                         momentum=cfg.momentum, nesterov=cfg.nesterov,
                         weight_decay=cfg.weight_decay)
    history, stopped = _loop(net, opt, train_set, val_set, cfg, rng, progress, callbacks)
    test_accuracy = None
    if test_set is not None:
        test_accuracy, _ = _accuracy_and_missing(net, test_set)
    return TrainResult(network=net, history=history, test_accuracy=test_accuracy, config=cfg,
                       stopped_early=stopped)


def _loop(net, opt, train_set, val_set, cfg, rng, progress, callbacks):
    """Run the epochs; return ``(history, stopped_early)``."""
    xp = net.backend.xp
    n_train = len(train_set)
    n_batches = -(-n_train // cfg.batch_size)
    backprop, step = net._backprop, opt.step
    history: list[EpochRecord] = []
    warned: list[int] = []
    schedule = SCHEDULES[cfg.learning_rate_schedule]
    for epoch in range(1, cfg.epochs + 1):
        opt.learning_rate = schedule(cfg.learning_rate, epoch, cfg.epochs)
        bar = _progress_bar(progress, n_batches, epoch, cfg.epochs)
        every = max(1, n_batches // 100)
        start = time.perf_counter()
        losses = []
        for i, (xb, tb) in enumerate(train_set.batches(cfg.batch_size, rng if cfg.shuffle else None)):
            loss, grads = backprop(xb, tb)
            losses.append(loss)
            step(grads)
            if bar is not None and (i + 1) % every == 0:
                bar.update(every)
        train_loss = float(xp.sum(xp.stack(losses))) / n_train  # one sync per epoch
        if not math.isfinite(train_loss):
            if bar is not None:
                bar.close()
            raise DivergenceError(
                f"training diverged in epoch {epoch}: the training loss is {train_loss}; lower "
                f"the learning rate (learning_rate={cfg.learning_rate})"
            )
        record = EpochRecord(epoch=epoch, seconds=0.0, train_loss=train_loss)
        if val_set is not None:
            record.validation_accuracy, record.never_predicted = _accuracy_and_missing(net, val_set)
        record.seconds = time.perf_counter() - start
        if bar is not None:
            bar.close()
        history.append(record)
        if record.never_predicted and record.never_predicted != warned:
            warned = record.never_predicted
            warnings.warn(
                f"after epoch {epoch} the network never predicts class(es) {warned} on the "
                "validation set (saturated outputs); try init='scaled' or cost='cross_entropy'",
                PortamlpWarning, 3)
        stop = [cb(record, net) for cb in callbacks]  # every callback sees every epoch
        if any(stop):
            return history, True
    return history, False
