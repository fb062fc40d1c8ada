"""``portamlp.train``: from the caller's options to a trained network.

:func:`train` resolves its options (a resumed run's, a given network's, defaults) into a frozen
:class:`~portamlp.config.TrainConfig`, chooses the backend (the data's own, unless told), builds
or restores the network and the optimizer, stages the data once (:mod:`portamlp.splits`) and runs
the loop (:mod:`portamlp.loop`). Nothing is printed.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import math
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from ..backends import Backend, backend_of, get_backend, library_for, memory_phase
from ..distributed import Communicator, communicator
from ..errors import DivergenceError, TrainingInterrupted, warn
from ..files.checkpoints import Checkpoint, checkpoint_path, load_checkpoint
from ..nn.init import fresh_seed, make_rng, rng_state, set_rng_state
from ..nn.inputs import host_numeric, label_range
from ..nn.network import Network
from .config import (
    DEFAULT_HIDDEN,
    DEFAULT_LAYERS,
    RunPosition,
    TrainConfig,
    TrainResult,
    options_doc,
)
from .data import Splits, stage_splits
from .loop import Trainer
from .optimizers import make_optimizer

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
          seed: int | None = None, threads: int | None = None, fast_path: str = "auto",
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
    with be.activate(), be.library.compute_limits(cfg.layers, cfg.batch_size, threads):
        net = _make_network(cfg, network, ckpt, be, rng)
        data = stage_splits(cfg, net, x, y, validation_data, test_data, sample_weight, root,
                            download)
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
        run = Trainer(net, opt, data, cfg, rng, progress=progress if comm.is_root else False,
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
                                        "optimizer": cfg.optimizer},
                       fast_step=run.fast is not None)


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


def _same_start_on_every_rank(comm: Communicator, net: Network, opt, data: Splits) -> None:
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


def _check_monitor(cfg: TrainConfig, data: Splits) -> None:
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
                from ..checks import check_dtype

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
    library = None if x is None else library_for(x)
    if library is not None:
        return backend_of(x) if device is None else get_backend(library, device)
    return get_backend(None, device)


def _infer_layers(x, y, be: Backend) -> tuple[int, ...]:
    """``(n_features, DEFAULT_HIDDEN, n_classes)`` for your own data, ``n_classes`` the largest
    label + 1 (labels are checked first: strings get the message that says how to map them)."""
    shape = getattr(x, "shape", None)
    if shape is None:
        shape = host_numeric(x, "x").shape
    if len(shape) != 2:
        raise ValueError(f"x must have shape (n_samples, n_features), got shape {tuple(shape)}; "
                         "or pass layers= explicitly")
    top, distinct = label_range(y)
    if top + 1 > max(2, distinct):
        warn(f"y holds {distinct} distinct labels but the largest is {top}: the network gets "
             f"{top + 1} output units, one per index 0..{top}; map your labels to "
             f"0..{distinct - 1} (numpy.unique(y, return_inverse=True)) or pass layers=")
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
