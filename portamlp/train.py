"""Training: the epoch / mini-batch loop, validation, history, callbacks and checkpoints.

:func:`train` validates its options into a frozen :class:`~portamlp.config.TrainConfig`, stages
the data on the backend's device once, and runs mini-batch stochastic gradient descent. Nothing
is printed: progress goes to a tqdm bar on stderr (only on a terminal unless ``progress=True``),
advice goes through :mod:`warnings`. Inside the mini-batch loop nothing is read back to the host:
losses stay 0-d device arrays, and one transfer per epoch brings back the epoch's losses, a
finiteness check of the weights and the validation figures together.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import itertools
import math
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from .backend import BACKEND_NAMES, Backend, backend_of, get_backend, library_of, memory_phase
from .checkpoint import Checkpoint, checkpoint_path, load_checkpoint, save_checkpoint
from .config import (
    DEFAULT_HIDDEN,
    DEFAULT_LAYERS,
    EpochRecord,
    RunPosition,
    TrainConfig,
    TrainResult,
    options_doc,
)
from .datasets.registry import default_validation_length, n_classes
from .datasets.scaling import Preprocessing
from .datasets.sources import read_split
from .datasets.staging import DeviceDataset
from .distributed import SINGLE_PROCESS, Communicator, communicator
from .dropout import Dropout
from .errors import DivergenceError, PortamlpWarning, TrainingInterrupted, warn
from .host import epoch_loss, fresh_seed, make_rng, rng_state, set_rng_state, summary_values
from .inputs import as_features, as_labels, host_labels, host_numeric
from .network import Network
from .optim import apply_max_norm, make_optimizer
from .schedules import LearningRate
from .stopping import EarlyStopping, higher_is_better, monitored_figure
from .threads import limit_blas_threads

__all__ = ["train"]

_CONFIG_NAMES = tuple(f.name for f in dataclasses.fields(TrainConfig))
_P = ParamSpec("_P")
_R = TypeVar("_R")
#: The keyword arguments the caller of ``train`` actually wrote (set for the call's duration).
_PASSED: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar("_PASSED")


def _record_passed(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Let ``func`` tell an option the caller wrote (``activation="sigmoid"``) from one left at
    its default: a resumed run or a given network must not be overridden by defaults, and an
    explicit conflicting value must be refused. The signature stays ``func``'s own."""
    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        token = _PASSED.set(frozenset(kwargs))
        try:
            return func(*args, **kwargs)
        finally:
            _PASSED.reset(token)
    return wrapper


#: Failures every rank of a distributed run raises at the same point (from values all ranks
#: share): they propagate; any other failure on one rank aborts them all.
_AGREED_FAILURES = (DivergenceError, TrainingInterrupted)


def _on_every_rank(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """With several ranks: abort them all when one fails alone, and let only rank 0 warn.
    With one, ``func`` runs as it is."""
    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        comm = communicator(kwargs.get("distributed"))  # type: ignore[arg-type]
        if comm.is_root:
            with comm.guard(_AGREED_FAILURES):
                return func(*args, **kwargs)
        with comm.guard(_AGREED_FAILURES), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return func(*args, **kwargs)
    return wrapper


@_record_passed
@_on_every_rank
def train(*, layers: Sequence[int] | str | None = None, train_length: int | None = None,
          validation_length: int | None = None, test_length: int | None = None,
          batch_size: int = 10, epochs: int = 5, learning_rate: float = 3.0,
          learning_rate_schedule: str | Callable[[int], float] = "constant",
          warmup_epochs: int = 0, decay_factor: float = 0.1, decay_every: int = 10,
          plateau_patience: int = 3, activation: str = "sigmoid",
          cost: str = "quadratic", optimizer: str = "sgd", momentum: float = 0.0,
          nesterov: bool = False, weight_decay: float = 0.0, dropout: float = 0.0,
          input_dropout: float = 0.0, max_norm: float | None = None,
          early_stopping: bool = False, monitor: str = "validation_accuracy",
          patience: int = 10, min_delta: float = 0.0, restore_best: bool = True,
          init: str = "auto",
          dtype: Any = "float32", dataset: str = "mnist", scale: Any = 255, shuffle: bool = True,
          seed: int | None = None, threads: int | None = None,
          x: Any = None, y: Any = None, validation_data: tuple | None = None,
          test_data: tuple | None = None, sample_weight: Any = None,
          network: Network | None = None, optimizer_state: dict | None = None,
          backend: str | Backend | None = None,
          device: Any = None, root: Any = None, download: bool = False,
          progress: bool | None = None,
          callbacks: Sequence[Callable] | Callable = (), checkpoint: Any = None,
          resume: Any = None, distributed: str | None = None) -> TrainResult:
    """Train a multilayer perceptron by mini-batch stochastic gradient descent.

    With no arguments: Nielsen's classic network (784-30-10, sigmoid, quadratic cost, batch 10,
    learning rate 3.0) for 5 epochs on the embedded MNIST (50,000 training images, 10,000
    validation images from the end of the training file, the 10,000 test images).

    Parameters
    ----------
{options}

    Returns
    -------
    TrainResult
        ``.network``, ``.history`` (one :class:`EpochRecord` per epoch), ``.test_accuracy``
        (float, or None without test data) and ``.config``.

    Raises
    ------
    ValueError, TypeError
        A bad option; the message names it and what is valid.
    DivergenceError
        The loss or the weights became NaN or infinite (names the epoch and mini-batch).
    DeviceMemoryError
        The network or the data does not fit in the device's memory (names the phase).
    TrainingInterrupted
        SIGINT (Ctrl-C) or SIGTERM: ``.network`` holds the network at its last complete epoch;
        with ``checkpoint`` set, a checkpoint at the current mini-batch was saved first.

    Notes
    -----
    The data trains where it lives: arrays from PyTorch or CuPy train on that library and
    device unless ``backend=`` says otherwise. Callbacks are called as
    ``callback(record, network)`` after every epoch; returning ``True`` (and nothing else)
    stops training. With ``sample_weight``, the weights are scaled to mean 1 over the training
    rows, so the learning rate keeps its meaning.

    With ``distributed="mpi"``, launched as ``mpiexec -n N``, every rank takes its share of
    each global mini-batch and the summed gradients give every rank the same update: the run of
    one process, to round-off. Every rank passes the same options and data and returns the same
    result; only rank 0 shows progress, warns and writes checkpoints. See
    :mod:`portamlp.distributed`.
    """
    passed = locals()
    settings = {name: passed[name] for name in _CONFIG_NAMES}
    comm = communicator(distributed)
    given = set(_PASSED.get(frozenset())) & set(_CONFIG_NAMES)
    callbacks = _callbacks(callbacks)
    if (x is None) != (y is None):
        raise ValueError("pass both x and y (your own data), or neither (a named data set)")
    if x is None and (validation_data is not None or test_data is not None
                      or sample_weight is not None):
        raise ValueError("validation_data, test_data and sample_weight go with your own x and y")

    ckpt = None
    if resume is not None:
        if network is not None:
            raise ValueError("pass either network= or resume=, not both")
        settings, ckpt = _settings_for_resume(resume, settings, given, own_data=x is not None)
        checkpoint = resume if checkpoint is None else checkpoint
    elif checkpoint is not None and checkpoint_path(checkpoint).exists():
        raise FileExistsError(f"{checkpoint} already holds a checkpoint; pass resume="
                              f"{str(checkpoint)!r} to continue that run, or choose another "
                              "directory")
    if network is not None:
        _adopt_network_settings(network, settings, given)
    elif optimizer_state is not None:
        raise ValueError("optimizer_state continues the training of a given network: pass "
                         "network= too")
    be = _choose_backend(backend, device, network, x)
    if device is None and network is None:
        be = comm.place(be)  # with several ranks, each on its node's GPU local_rank
    if settings["seed"] is None:
        settings["seed"] = comm.share(fresh_seed())
    if settings["layers"] is None:
        settings["layers"] = DEFAULT_LAYERS if x is None else _infer_layers(x, y, be)
    cfg = TrainConfig(**settings)
    if x is not None:
        for name in ("dataset", "scale"):
            if name in given:
                warn(f"{name}={settings[name]!r} is ignored: it applies to named data sets, and "
                     "your own x is used as given")

    if cfg.batch_size < comm.size:
        raise ValueError(f"batch_size={cfg.batch_size} is smaller than the {comm.size} ranks: "
                         "each rank needs rows of every mini-batch; use batch_size >= "
                         f"{comm.size} or fewer ranks")
    rng = make_rng(cfg.seed)
    threads = cfg.threads
    if threads is None and comm.size > 1:  # the ranks of a node share its cores
        threads = max(1, (os.cpu_count() or 1) // comm.local_size)
    with be.activate(), limit_blas_threads(be.name, cfg.layers, cfg.batch_size, threads):
        net = _make_network(cfg, network, ckpt, be, rng)
        data = _stage(cfg, net, x, y, validation_data, test_data, sample_weight, root, download)
        if len(data.train) % cfg.batch_size:
            warn(f"train_length={len(data.train)} is not a multiple of batch_size="
                 f"{cfg.batch_size}; the last mini-batch of each epoch has "
                 f"{len(data.train) % cfg.batch_size} samples")
        with memory_phase("allocating the optimizer state", be,
                          "use smaller layers or optimizer='sgd' without momentum"):
            opt = make_optimizer(cfg.optimizer, net.parameters(), be.xp,
                                 learning_rate=cfg.learning_rate, momentum=cfg.momentum,
                                 nesterov=cfg.nesterov, weight_decay=cfg.weight_decay)
        _check_monitor(cfg, data)
        position = RunPosition(rng_state=rng_state(rng))
        run = _Trainer(net, opt, data, cfg, rng, progress=progress if comm.is_root else False,
                       callbacks=callbacks,
                       checkpoint=None if checkpoint is None else Path(checkpoint),
                       own_data=x is not None, comm=comm)
        if optimizer_state is not None:
            _load_optimizer_state(opt, optimizer_state, be)
        if ckpt is not None:
            ckpt.optimizer_state(opt, be)
            position = ckpt.position
            set_rng_state(rng, position.rng_state or {})
            run.load_state(ckpt.extra, {k: be.asarray(v.copy(), cfg.dtype)
                                        for k, v in ckpt.extra_arrays.items()})
        if comm.size > 1:
            _same_start_on_every_rank(comm, net, opt, data)
        history, stopped = run.run(position)
        test_accuracy = None
        if data.test is not None:
            with memory_phase("the final test", be, "use a smaller test_length"):
                test_accuracy = run.evaluate(data.test)[0]
    best = run.stopper.best_epoch if run.stopper is not None else None
    return TrainResult(network=net, history=history, test_accuracy=test_accuracy, config=cfg,
                       stopped_early=stopped, best_epoch=best,
                       optimizer_state={"arrays": opt.state_arrays(), "scalars": opt.scalars(),
                                        "optimizer": cfg.optimizer})


def _load_optimizer_state(opt, state: Any, be: Backend) -> None:
    """A previous result's optimizer state, checked against this run's optimizer."""
    if not isinstance(state, dict) or not {"arrays", "scalars", "optimizer"} <= set(state):
        raise TypeError("optimizer_state must be a TrainResult's optimizer_state")
    expected = opt.state_arrays()
    arrays = state["arrays"]
    if set(arrays) != set(expected) or any(tuple(arrays[k].shape) != tuple(v.shape)
                                           for k, v in expected.items()):
        raise ValueError(f"optimizer_state is the state of optimizer={state['optimizer']!r} "
                         "for another network or optimizer; pass the one returned with this "
                         "network, for the same optimizer and momentum")
    with be.activate():
        xp = be.xp
        opt.load_state({k: xp.asarray(v, copy=True) if be.same_device(v)
                        else be.asarray(be.to_numpy(v)) for k, v in arrays.items()},
                       dict(state["scalars"]))


def _same_start_on_every_rank(comm: Communicator, net: Network, opt, data: _Splits) -> None:
    """Check that every rank stages the same data, then give every rank rank 0's parameters
    and optimizer state (one broadcast): a given network or a checkpoint read differently on
    another node cannot split the ranks."""
    xp = net.xp
    sizes = [None if d is None else len(d) for d in (data.train, data.validation, data.test)]
    mine = (sizes, float(xp.sum(xp.astype(data.train.labels, xp.float64))))
    theirs = comm.share(mine)
    if mine != theirs:
        raise ValueError(f"this rank's data (rows of train/validation/test {mine[0]}, label sum "
                         f"{mine[1]:g}) differ from rank 0's ({theirs[0]}, {theirs[1]:g}): every "
                         "rank must pass the same options and the whole data set; each takes "
                         "its share of every mini-batch itself")
    arrays = net.parameters() + list(opt.state_arrays().values())
    flat = comm.broadcast(xp.concat([xp.reshape(a, (-1,)) for a in arrays]))
    start = 0
    for a in arrays:
        n = math.prod(a.shape)
        a[...] = xp.reshape(flat[start:start + n], a.shape)
        start += n


def _check_monitor(cfg: TrainConfig, data: _Splits) -> None:
    """Early stopping and the plateau schedule watch a figure that must exist."""
    watching = cfg.early_stopping or cfg.learning_rate_schedule == "plateau"
    if watching and cfg.monitor.startswith("validation") and data.validation is None:
        what = "early_stopping=True" if cfg.early_stopping else "the plateau schedule"
        raise ValueError(f"{what} watches monitor={cfg.monitor!r}, but there is no validation "
                         "data: set validation_length > 0 (named data sets) or pass "
                         "validation_data=(x, y), or use monitor='train_loss'")


if train.__doc__:  # the parameter list is generated from the option declarations
    train.__doc__ = train.__doc__.replace("{options}", options_doc())


def _callbacks(callbacks) -> list[Callable]:
    if callable(callbacks):
        return [callbacks]
    try:
        items = list(callbacks)
    except TypeError:
        raise TypeError(f"callbacks must be a callable or a list of callables, got "
                        f"{callbacks!r}") from None
    for cb in items:
        if not callable(cb):
            raise TypeError(f"callbacks must be callables, got {cb!r}")
    return items


# ------------------------------------------------------------------- choosing what to train
def _settings_for_resume(directory, settings: dict, given: set,
                         own_data: bool) -> tuple[dict, Checkpoint]:
    """The checkpointed run's settings; a new value only for ``epochs`` (to extend the run)."""
    ckpt = load_checkpoint(directory)
    saved = {k: v for k, v in ckpt.config.items() if k in _CONFIG_NAMES}
    if isinstance(saved.get("layers"), list):
        saved["layers"] = tuple(saved["layers"])
    schedule = saved.get("learning_rate_schedule", "")
    if isinstance(schedule, str) and schedule.startswith("callable:"):
        if not callable(settings["learning_rate_schedule"]):
            raise ValueError(f"the run checkpointed in {directory} used a callable "
                             f"learning_rate_schedule ({schedule[9:]}); pass it again to "
                             "resume")
        saved["learning_rate_schedule"] = settings["learning_rate_schedule"]
        given = given - {"learning_rate_schedule"}
    for key in given - {"epochs"}:
        value = settings[key]
        if key in saved and (tuple(value) if key == "layers" else value) != saved[key]:
            raise ValueError(f"{key}={value!r} differs from the checkpointed run's "
                             f"{saved[key]!r}; a resumed run keeps its settings (only epochs "
                             "may change)")
    if ckpt.own_data and not own_data:
        raise ValueError(f"the run checkpointed in {directory} trained on your own arrays: pass "
                         "the same x= and y= (and validation_data=, test_data=) again to resume "
                         "it")
    if own_data and not ckpt.own_data:
        raise ValueError(f"the run checkpointed in {directory} trained on the "
                         f"{saved.get('dataset', 'mnist')!r} data set; resume it without x and y")
    done = ckpt.position.epoch - 1
    if "epochs" in given and settings["epochs"] != saved.get("epochs"):
        if settings["epochs"] <= done:
            warn(f"the checkpointed run has already done {done} epoch(s); epochs="
                 f"{settings['epochs']} trains no further (pass a larger epochs to extend it)")
        elif saved.get("learning_rate_schedule") == "cosine":
            warn(f"epochs changes from {saved.get('epochs')} to {settings['epochs']} under the "
                 f"{saved['learning_rate_schedule']!r} schedule: the remaining epochs follow the "
                 f"schedule over {settings['epochs']} epochs (the first {done} followed it over "
                 f"{saved.get('epochs')})")
        saved["epochs"] = settings["epochs"]
    elif saved.get("epochs", 0) <= done:
        warn(f"the checkpointed run has already done all its {done} epoch(s); pass a larger "
             "epochs to extend it")
    return {**settings, **saved}, ckpt


def _adopt_network_settings(network: Network, settings: dict, given: set) -> None:
    """A given network's layers, activation, cost and dtype win (conflicts are errors)."""
    if not isinstance(network, Network):
        raise TypeError(f"network must be a portamlp.Network, got {type(network).__name__}")
    own = {"activation": network.activation, "cost": network.cost, "dtype": network.dtype,
           "layers": network.layers}
    for key, value in own.items():
        mine = settings[key]
        if key in given and mine is not None:
            mine = tuple(mine) if key == "layers" and not isinstance(mine, str) else mine
            if key == "dtype":
                from .checks import check_dtype

                mine = check_dtype(mine)
            if mine != value:
                raise ValueError(f"{key}={settings[key]!r} differs from the given network's "
                                 f"{value!r}; leave it out to continue training that network")
        settings[key] = value
    if network.preprocessing is not None and "scale" not in given:
        settings["scale"] = network.preprocessing.scale


def _choose_backend(backend, device, network: Network | None, x) -> Backend:
    """Explicit ``backend=`` wins; else the given network's; else ``x``'s library and device
    (scikit-learn's rule: the computation follows the data); else the default."""
    if network is not None:
        if backend is None and device is None:
            return network.backend
        wanted = get_backend(backend if backend is not None else network.backend.name, device)
        if wanted.name != network.backend.name or wanted.device != network.backend.device:
            raise ValueError(f"the given network lives on {network.backend.name} "
                             f"{network.backend.device}, not {wanted.name} {wanted.device}; "
                             "move it first with network.to(backend, device)")
        return network.backend
    if backend is not None:
        return get_backend(backend, device)
    if x is not None and library_of(x) in BACKEND_NAMES:
        return backend_of(x) if device is None else get_backend(library_of(x), device)
    return get_backend(None, device)


def _infer_layers(x, y, be: Backend) -> tuple[int, ...]:
    """``(n_features, DEFAULT_HIDDEN, n_classes)`` for your own data."""
    shape = getattr(x, "shape", None)
    if shape is None:
        shape = host_numeric(x, "x").shape
    if len(shape) != 2:
        raise ValueError(f"x must have shape (n_samples, n_features), got shape {tuple(shape)}; "
                         "or pass layers= explicitly")
    if hasattr(y, "shape") and be.same_device(y):
        top = int(be.xp.max(y)) if y.shape[0] else 1
    else:
        labels = host_labels(y)
        top = int(labels.max()) if labels.size else 1
    return (int(shape[1]), DEFAULT_HIDDEN, max(2, top + 1))


def _make_network(cfg: TrainConfig, network, ckpt: Checkpoint | None, be: Backend,
                  rng) -> Network:
    """The network to train: given, restored from a checkpoint, or freshly initialised."""
    if network is not None:
        return network
    if ckpt is not None:
        fields = dict(ckpt.network_fields)
        return Network.from_arrays(fields.pop("weights"), fields.pop("biases"), backend=be,
                                   **fields)
    assert cfg.layers is not None
    return Network.initialize(cfg.layers, activation=cfg.activation, cost=cfg.cost,
                              init=cfg.init, dtype=cfg.dtype, seed=rng, backend=be)


# --------------------------------------------------------------------------- data staging
@dataclasses.dataclass
class _Splits:
    train: DeviceDataset
    validation: DeviceDataset | None
    test: DeviceDataset | None


def _stage(cfg, net, x, y, validation_data, test_data, sample_weight, root, download) -> _Splits:
    """Put the training, validation and test data on the network's device."""
    be = net.backend
    with memory_phase("staging the data", be,
                      "use a smaller train_length / validation_length / test_length"):
        if x is None:
            return _stage_named(cfg, net, root, download)
        train = _stage_arrays(net, x, y, cfg.train_length, "train", sample_weight)
        if train is None:
            raise ValueError("the training data is empty")
        xv, yv = _pair(validation_data, "validation")
        xt, yt = _pair(test_data, "test")
        return _Splits(train,
                       _stage_arrays(net, xv, yv, cfg.validation_length, "validation"),
                       _stage_arrays(net, xt, yt, cfg.test_length, "test"))


def _stage_named(cfg: TrainConfig, net: Network, root, download: bool) -> _Splits:
    """Train / validation / test splits of a named data set (or folder) on the device."""
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

    return _Splits(stage(images[:n_train], labels[:n_train]),
                   stage(images[n_file - n_val:], labels[n_file - n_val:]),
                   stage(test_images[:n_test], test_labels[:n_test]))


def _stage_arrays(net: Network, x: Any, y: Any, limit: int | None, what: str,
                  sample_weight: Any = None) -> DeviceDataset | None:
    """The caller's own arrays, checked once and moved to the network's backend."""
    if x is None:
        return None
    be = net.backend
    name = "x" if what == "train" else f"{what}_data x"
    xs = as_features(x, be, net.dtype, net.layers[0], what=name, layers=net.layers)
    ys = as_labels(y, be, xs.shape[0], net.layers[-1],
                   what="y" if what == "train" else f"{what}_data y")
    weights = None
    if sample_weight is not None:
        weights = _sample_weights(sample_weight, xs.shape[0])
    if limit is not None:
        if limit > xs.shape[0]:
            raise ValueError(f"{what}_length={limit} exceeds the {xs.shape[0]} samples given")
        xs, ys = xs[:limit, ...], ys[:limit]
        weights = None if weights is None else weights[:limit]
    if xs.shape[0] == 0:
        return None
    if weights is not None:
        weights = be.asarray(weights / weights.mean(), net.dtype)
    return DeviceDataset(xs, ys, net.layers[-1], be, sample_weight=weights)


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


# ----------------------------------------------------------------------------- the loop
def _progress_bar(progress, total, epoch, epochs, initial=0):
    show = sys.stderr.isatty() if progress is None else bool(progress)
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=f"epoch {epoch}/{epochs}", unit="batch",
                leave=False, file=sys.stderr, dynamic_ncols=True)


@contextmanager
def _stop_on_signals(enabled: bool):
    """While training with checkpoints, turn SIGINT/SIGTERM into a request to stop cleanly.

    Yields a one-element list holding the signal number received (or None). The previous
    handlers come back afterwards; nothing changes outside the main thread or when disabled.
    """
    received: list[Any] = [None]
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum, frame):
        received[0] = signum

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class _Trainer:
    """One training run's loop state (a class only to keep the loop's pieces small).

    With several ranks (``comm``), each computes the gradients of its share of every global
    mini-batch, :class:`~portamlp.distributed.GradientExchange` sums them (and the loss, and any
    signal received) with one allreduce, and every rank takes the same step. Validation and the
    final test are split across the ranks too; their sums are reduced, so every rank sees the
    same figures and takes the same early-stopping and schedule decisions.
    """

    def __init__(self, net: Network, opt, data: _Splits, cfg: TrainConfig, rng, *, progress,
                 callbacks: list[Callable], checkpoint: Path | None, own_data: bool,
                 comm: Communicator = SINGLE_PROCESS):
        self.net, self.opt, self.cfg, self.rng = net, opt, cfg, rng
        self.data, self.comm = data, comm
        self.exchange = comm.gradient_exchange(net.parameters(), net.backend)
        self.validation = self._share(data.validation)  # this rank's rows of it
        self.signalled_rank: int | None = None
        self.progress, self.callbacks = progress, callbacks
        self.checkpoint, self.own_data = checkpoint, own_data
        self.n_batches = -(-len(data.train) // cfg.batch_size)
        self.history: list[EpochRecord] = []
        self.snapshot = self._copy_parameters()  # the network at its last complete epoch
        self.rates = LearningRate(cfg)
        self.stopper = EarlyStopping(cfg.monitor, cfg.patience, cfg.min_delta,
                                     cfg.restore_best) if cfg.early_stopping else None
        self.dropout = None
        if cfg.dropout or cfg.input_dropout:
            be = net.backend
            self.dropout = Dropout(be.xp, be.device, net.layers, cfg.dropout, cfg.input_dropout,
                                   cfg.seed or 0, net.weights[0].dtype)

    def load_state(self, extra: dict[str, Any], arrays: dict[str, Any]) -> None:
        """Restore the schedule's and early stopping's state from a checkpoint."""
        self.rates.load_state(extra.get("schedule", {}))
        if self.stopper is not None:
            n = len(self.net.parameters())
            best = [arrays[f"best.{i}"] for i in range(n)] if "best.0" in arrays else None
            self.stopper.load_state(extra.get("early_stopping", {}), best)

    # -- the epochs
    def run(self, position: RunPosition) -> tuple[list[EpochRecord], bool]:
        """Run from ``position`` to the last epoch; return ``(history, stopped_early)``."""
        cfg = self.cfg
        self.history = list(position.history)
        warned: list[int] = []
        stopped = False
        # Several ranks must stop at the same step: they always hear signals this way.
        with _stop_on_signals(self.checkpoint is not None or self.comm.size > 1) as received:
            try:
                for epoch in range(position.epoch, cfg.epochs + 1):
                    self.opt.learning_rate = self.rates.rate(epoch)
                    record = self._epoch(epoch, position, received)
                    position = RunPosition(rng_state=rng_state(self.rng))
                    self.history.append(record)
                    stop = self._watch(epoch, record)
                    self.snapshot = self._copy_parameters()
                    if self.checkpoint is not None:
                        self._save(RunPosition(epoch + 1, 0, 0.0, 0.0, self.history,
                                               rng_state(self.rng)))
                    if record.never_predicted and record.never_predicted != warned:
                        warned = record.never_predicted
                        warn(PortamlpWarning(
                            f"after epoch {epoch} the network never predicts class(es) {warned} "
                            "on the validation set (saturated outputs); try {options}",
                            options={"init": "scaled", "cost": "cross_entropy"}))
                    asked = [cb(record, self.net) for cb in self.callbacks]  # every one runs
                    signalled = self._agreed_signal(received[0])
                    if signalled is not None:  # a signal after the epoch's last mini-batch
                        self._interrupt(epoch + 1, 0, signalled,
                                        saved=self.checkpoint is not None)
                    if self.comm.agree(stop or any(a is True for a in asked)):
                        stopped = epoch < cfg.epochs
                        break
            except KeyboardInterrupt as exc:
                if isinstance(exc, TrainingInterrupted) and exc.network is not None:
                    raise
                raise self._interrupted(None, getattr(exc, "signum", None)) from None
        if self.stopper is not None:
            self.stopper.restore(self.net.parameters())
        return self.history, stopped

    def _agreed_signal(self, signum) -> tuple[int, int] | None:
        """``(rank, signum)`` of a signal received by any rank (asking them all), or None."""
        if self.exchange is not None:
            return self.exchange.agree_signal(signum)
        return None if signum is None else (0, signum)

    def _watch(self, epoch: int, record: EpochRecord) -> bool:
        """Feed the epoch's monitored figure to the schedule and to early stopping; True to
        stop."""
        if self.rates.schedule != "plateau" and self.stopper is None:
            return False
        monitor = self.cfg.monitor
        figure = monitored_figure(record, monitor)
        self.rates.observe(figure, higher_is_better(monitor))
        if self.stopper is None:
            return False
        return self.stopper.update(epoch, record, self.net.parameters(), self._copy)

    def _epoch(self, epoch: int, position: RunPosition, received) -> EpochRecord:
        cfg, net = self.cfg, self.net
        first_batch = position.batch if epoch == position.epoch else 0
        carried_loss = position.loss_sum if first_batch else 0.0
        carried_seconds = position.seconds if first_batch else 0.0
        state_at_start = rng_state(self.rng)  # resuming replays this epoch's permutation
        bar = _progress_bar(self.progress, self.n_batches, epoch, cfg.epochs, first_batch)
        every = max(1, self.n_batches // 100)
        backprop, step, dropout = net.backprop, self.opt.step, self.dropout
        max_norm, xp, exchange = cfg.max_norm, net.xp, self.exchange
        rank, size = self.comm.shard
        first_step = (epoch - 1) * self.n_batches
        n_rows = len(self.data.train)
        start = time.perf_counter()
        losses: list[Any] = []
        batches = self.data.train.batches(cfg.batch_size, self.rng if cfg.shuffle else None,
                                          shard=(rank, size))
        if first_batch:  # resuming mid-epoch: same permutation, skip the batches already done
            batches = itertools.islice(batches, first_batch, None)
        try:
            with memory_phase("a training step", net.backend, self._step_advice(),
                              self._step_bytes()):
                for i, (xb, tb, wb) in enumerate(batches, start=first_batch):
                    rows = min(cfg.batch_size, n_rows - i * cfg.batch_size)  # all ranks' rows
                    masks = None if dropout is None else \
                        dropout.for_step(first_step + i, xb.shape[0], rank * rows // size)
                    loss, grads = backprop(xb, tb, sample_weight=wb, dropout=masks)
                    if exchange is None:
                        signalled = None if received[0] is None else (0, received[0])
                    else:  # the sums over all ranks' shares: the global batch's
                        loss, grads, signalled = exchange.reduce(loss, grads, received[0])
                    losses.append(loss)
                    step(grads, 1.0 / rows)
                    if max_norm is not None:
                        apply_max_norm(xp, net.weights, max_norm)
                    if bar is not None and (i + 1) % every == 0:
                        bar.update(every)
                    if signalled is not None:
                        saved = self.checkpoint is not None
                        if saved:
                            seconds = carried_seconds + time.perf_counter() - start
                            self._save_interrupted(epoch, i + 1, losses, carried_loss, seconds,
                                                   state_at_start)
                        self._interrupt(epoch, i + 1, signalled, saved=saved)
        finally:
            if bar is not None:
                bar.close()
        total, validation = self._epoch_summary(epoch, first_batch, losses)
        record = EpochRecord(epoch=epoch, seconds=0.0,
                             train_loss=(carried_loss + total) / len(self.data.train),
                             learning_rate=self.opt.learning_rate)
        if validation is not None:
            (record.validation_accuracy, record.validation_loss,
             record.never_predicted) = validation
        record.seconds = carried_seconds + time.perf_counter() - start
        return record

    def _step_bytes(self) -> float:
        itemsize = 8 if self.cfg.dtype == "float64" else 4
        return 3.0 * self.cfg.batch_size * sum(self.net.layers) * itemsize

    def _step_advice(self) -> str:
        return (f"a mini-batch of {self.cfg.batch_size} through layers {list(self.net.layers)} "
                "needs that for activations and gradients besides the parameters; use a "
                "smaller batch_size or smaller layers")

    # -- per-epoch figures, in one transfer
    def _share(self, data: DeviceDataset | None) -> DeviceDataset | None:
        """This rank's contiguous rows of a validation or test split (all of it alone)."""
        if data is None or self.comm.size == 1:
            return data
        rank, size = self.comm.shard
        lo, hi = rank * len(data) // size, (rank + 1) * len(data) // size
        return DeviceDataset(data.x[lo:hi, ...], data.labels[lo:hi], data.n_classes,
                             data.backend)

    def _validation_sums(self, share: DeviceDataset):
        """:meth:`_validation_vector` of this rank's share, summed over the ranks."""
        return self.comm.allreduce(self._validation_vector(share))

    def _validation_vector(self, data: DeviceDataset):
        """Device vector ``[correct, loss_sum, count of each predicted class...]``."""
        net, xp = self.net, self.net.xp
        outputs, loss = net.outputs_and_loss(data.x, data.targets)
        predicted = xp.argmax(outputs, axis=1)
        dtype = outputs.dtype
        correct = xp.sum(xp.astype(predicted == data.labels, dtype))
        classes = xp.arange(data.n_classes, dtype=predicted.dtype, device=net.backend.device)
        counts = xp.sum(xp.astype(xp.expand_dims(predicted, axis=1) == classes, dtype), axis=0)
        return xp.concat([xp.stack([correct, xp.astype(loss, dtype)]), counts])

    def evaluate(self, data: DeviceDataset) -> tuple[float, float, list[int]]:
        """Accuracy, mean loss and the classes never predicted on a staged split (one
        transfer)."""
        share = self.validation if data is self.data.validation else self._share(data)
        assert share is not None
        with self.net.backend.activate():
            values = summary_values(self._validation_sums(share))
        return self._validation_figures(values, len(data))

    def _validation_figures(self, values, n: int) -> tuple[float, float, list[int]]:
        counts = values[2:]
        missing = [int(c) for c in range(len(counts)) if counts[c] == 0]
        return float(values[0]) / n, float(values[1]) / n, missing

    def _epoch_summary(self, epoch: int, first_batch: int, losses: list):
        """The epoch's summed loss and validation figures, from one device-to-host transfer;
        raises DivergenceError for a non-finite loss or weight."""
        xp, net = self.net.xp, self.net
        parts = []
        if losses:
            parts.append(xp.stack(losses))
        finite = [xp.astype(xp.all(xp.isfinite(p)), losses[0].dtype if losses else
                            net.weights[0].dtype) for p in net.parameters()]
        parts.append(xp.stack(finite))
        val = self.data.validation
        if val is not None:
            assert self.validation is not None
            with memory_phase("validation", net.backend, "use a smaller validation_length"):
                parts.append(xp.astype(self._validation_sums(self.validation), parts[0].dtype))
        values = summary_values(xp.concat(parts))
        n_losses, n_params = len(losses), len(finite)
        total, bad = epoch_loss(values[:n_losses])
        if bad is not None:
            raise DivergenceError(
                f"training diverged in epoch {epoch}, mini-batch {first_batch + bad + 1} of "
                f"{self.n_batches}: the loss became {total}; lower the learning rate "
                f"(learning_rate={self.cfg.learning_rate})")
        if not values[n_losses:n_losses + n_params].all():
            raise DivergenceError(
                f"training diverged in epoch {epoch}: the weights hold NaN or infinity; lower "
                f"the learning rate (learning_rate={self.cfg.learning_rate})")
        validation = None
        if val is not None:
            validation = self._validation_figures(values[n_losses + n_params:], len(val))
        return total * net.loss_scale, validation

    # -- interruption and checkpoints
    def _copy(self, arrays: list) -> list:
        """Device copies (no host transfer)."""
        xp = self.net.xp
        return [xp.asarray(p, copy=True) for p in arrays]

    def _copy_parameters(self) -> list:
        return self._copy(self.net.parameters())

    def _snapshot_network(self) -> Network:
        net = self.net
        return Network(self.snapshot[0::2], self.snapshot[1::2], activation=net.activation,
                       cost=net.cost, backend=net.backend, preprocessing=net.preprocessing)

    def _save_interrupted(self, epoch, next_batch, losses, carried_loss, seconds, rng_at_start):
        """A checkpoint at the current mini-batch (after checking nothing diverged)."""
        xp = self.net.xp
        total, bad = epoch_loss(summary_values(xp.stack(losses)) if losses else [])
        if bad is not None:
            raise DivergenceError(f"training diverged in epoch {epoch}; no checkpoint written")
        for p in self.net.parameters():
            if not bool(xp.all(xp.isfinite(p))):
                raise DivergenceError(f"training diverged in epoch {epoch}: the weights hold NaN "
                                      "or infinity; no checkpoint written")
        self._save(RunPosition(epoch, next_batch, carried_loss + total * self.net.loss_scale,
                               seconds, self.history, rng_at_start))

    def _interrupted(self, epoch_batch: tuple | None, signum) -> TrainingInterrupted:
        done = len(self.history)
        by = "" if self.signalled_rank is None else \
            f" on rank {self.signalled_rank} of {self.comm.size}"
        where = "before the first epoch completed" if not done else f"after epoch {done}"
        if self.checkpoint is not None and epoch_batch is not None:
            how = "train(resume=...)" if not self.own_data else "train(x=..., y=..., resume=...)"
            epoch, batch = epoch_batch
            place = (f"in epoch {epoch} after mini-batch {batch} of {self.n_batches}" if batch
                     else f"after epoch {epoch - 1}")
            message = (f"training stopped by {signal.Signals(signum).name}{by} {place}; "
                       f"checkpoint saved to {checkpoint_path(self.checkpoint)}. Resume with "
                       f"{how.replace('...', repr(str(self.checkpoint)))} or `portamlp train "
                       f"--resume {self.checkpoint}`")
        else:
            name = signal.Signals(signum).name if signum else "KeyboardInterrupt"
            message = (f"training stopped by {name}{by} {where}; the exception's .network holds "
                       f"the network as it was {where.replace('after', 'at the end of')}"
                       if done else f"training stopped by {name}{by} {where}; nothing to keep")
        return TrainingInterrupted(message, checkpoint=self.checkpoint, signum=signum,
                                   network=self._snapshot_network(), history=self.history)

    def _interrupt(self, epoch: int, next_batch: int, signalled: tuple[int, int], saved: bool):
        """Stop for the signal ``signalled = (rank, signum)``."""
        rank, signum = signalled
        self.signalled_rank = rank if self.comm.size > 1 else None
        raise self._interrupted((epoch, next_batch) if saved else None, signum)

    def _save(self, position: RunPosition) -> Path:
        """Write the checkpoint (rank 0 only: the other ranks hold the same state)."""
        assert self.checkpoint is not None
        if not self.comm.is_root:
            return checkpoint_path(self.checkpoint)
        extra: dict[str, Any] = {"schedule": self.rates.state()}
        arrays = {}
        if self.stopper is not None:
            extra["early_stopping"] = self.stopper.state()
            for i, a in enumerate(self.stopper.best_parameters or []):
                arrays[f"best.{i}"] = a
        return save_checkpoint(self.checkpoint, self.net, self.opt, self.cfg.to_dict(),
                               position, own_data=self.own_data, extra=extra,
                               extra_arrays=arrays)
