"""``portamlp.train``: from the caller's options to a trained network.

:func:`train` is two steps: :func:`~portamlp.training.resolve.resolve_run` decides the run (its
configuration, backend, where the network comes from, checkpoints), and :func:`execute` runs
it: builds or restores the network and the optimizer, stages the data once
(:mod:`portamlp.training.data`) and runs the loop (:mod:`portamlp.training.loop`). Nothing is
printed.
"""

from __future__ import annotations

import contextvars
import functools
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, TypeVar

from ..backends import Backend, memory_phase
from ..distributed import Communicator, communicator
from ..errors import DivergenceError, TrainingInterrupted
from ..files.checkpoints import RunPosition
from ..nn.init import make_rng
from ..nn.network import Network
from .config import TrainConfig, TrainResult, options_doc
from .data import Splits, stage_splits
from .loop import Trainer
from .optimizers import Optimizer, make_optimizer
from .resolve import Run, resolve_run
from .seeds import rng_state, set_rng_state

__all__ = ["train", "execute"]

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
          validation_split: float = 0.0, batch_size: int = 10, epochs: int = 5,
          learning_rate: float = 3.0,
          learning_rate_schedule: str | Callable[[int], float] = "constant",
          warmup_epochs: int = 0, decay_factor: float = 0.1, decay_every: int = 10,
          plateau_patience: int = 3, activation: str = "sigmoid",
          cost: str = "quadratic", optimizer: str = "sgd", weight_decay: float = 0.0,
          dropout: float = 0.0, input_dropout: float = 0.0, max_norm: float | None = None,
          shift: float = 0.0, rotation: float = 0.0, zoom: float = 0.0, shear: float = 0.0,
          elastic_alpha: float = 0.0, elastic_sigma: float = 4.0, flip: bool = False,
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
          resume: Any = None, distributed: str | None = None,
          **optimizer_options: Any) -> TrainResult:
    """Train a multilayer perceptron by mini-batch stochastic gradient descent.

    With no arguments: Nielsen's classic network (784-30-10, sigmoid, quadratic cost, batch 10,
    learning rate 3.0) for 5 epochs on the embedded MNIST (50,000 training images, 10,000
    validation images from the end of the training file, the 10,000 test images).

    Parameters
    ----------
{options}
    **optimizer_options
        The optimizer's own hyper-parameters by name (``momentum=0.9`` for ``"sgd"``,
        ``beta2=0.99`` for ``"adam"``; listed above with the optimizer they belong to).

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
        The cost or the weights became NaN or infinite (names the epoch and mini-batch).
    DeviceMemoryError
        The network or the data does not fit in the device's memory (names the phase).
    TrainingInterrupted
        SIGINT (Ctrl-C) or SIGTERM: ``.network`` holds the network at its last complete epoch;
        with ``checkpoint`` set, a checkpoint at the current mini-batch was saved first.

    Examples
    --------
    Nielsen's network for two epochs on the first 5,000 training images of the embedded MNIST,
    tested on 1,000 test images:

    >>> import portamlp
    >>> result = portamlp.train(epochs=2, train_length=5000, test_length=1000, seed=0,
    ...                         progress=False)
    >>> result.network.layers
    (784, 30, 10)
    >>> [record.epoch for record in result.history]
    [1, 2]
    >>> result.test_accuracy
    0.89

    Your own data, on its own library and device (here NumPy), with a validation split:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((600, 4))
    >>> y = (x[:, 0] + x[:, 1] > 0).astype(int)            # two classes
    >>> result = portamlp.train(x=x, y=y, layers=(4, 8, 2), cost="cross_entropy",
    ...                         learning_rate=0.5, epochs=20, validation_split=0.2, seed=0,
    ...                         progress=False)
    >>> result.history[-1].validation_accuracy > 0.9
    True

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
    passed = dict(locals())
    return execute(resolve_run(passed, set(_PASSED.get(frozenset()))))


def execute(run: Run) -> TrainResult:
    """Train a resolved run (see :func:`~portamlp.training.resolve.resolve_run`)."""
    cfg, be, comm, source = run.config, run.backend, run.comm, run.data
    rng = make_rng(cfg.seed)
    with be.activate(), be.library.compute_limits(cfg.layers, cfg.batch_size, run.threads):
        net = _make_network(run, rng)
        data = stage_splits(cfg, net, source.x, source.y, source.validation_data,
                            source.test_data, source.sample_weight, source.root,
                            source.download,
                            fresh=run.network is None and run.checkpoint is None)
        with memory_phase("allocating the optimizer state", be,
                          "use smaller layers or optimizer='sgd' without momentum"):
            opt = make_optimizer(cfg.optimizer, net.parameters(), be,
                                 learning_rate=cfg.learning_rate, weight_decay=cfg.weight_decay,
                                 **cfg.optimizer_options)
        _check_monitor(cfg, data, net.targets)
        position = RunPosition(rng_state=rng_state(rng))
        trainer = Trainer(net, opt, data, cfg, rng, progress=run.progress,
                          callbacks=run.callbacks, checkpoint=run.checkpoint_dir,
                          own_data=source.own, comm=comm)
        if run.optimizer_state is not None:
            _load_optimizer_state(opt, run.optimizer_state, be)
        ckpt = run.checkpoint
        if ckpt is not None:
            ckpt.optimizer_state(opt, be)
            position = ckpt.position
            set_rng_state(rng, position.rng_state or {})
            trainer.load_state(ckpt.extra, {k: be.asarray(v.copy(), cfg.dtype)
                                            for k, v in ckpt.extra_arrays.items()})
        if comm.size > 1:
            _same_start_on_every_rank(comm, net, opt, data)
        history, stopped = trainer.run(position)
        test_accuracy = None
        if data.test is not None:
            with memory_phase("the final test", be, "use a smaller test_length"):
                test_accuracy = trainer.evaluate(data.test)[0]
    best = trainer.stopper.best_epoch if trainer.stopper is not None else None
    return TrainResult(network=net, history=history, test_accuracy=test_accuracy, config=cfg,
                       stopped_early=stopped, best_epoch=best,
                       optimizer_state={"arrays": opt.state_arrays(), "scalars": opt.scalars(),
                                        "optimizer": cfg.optimizer},
                       fast_step=trainer.fast is not None,
                       compile_seconds=getattr(trainer.fast, "compile_seconds", 0.0))


def _make_network(run: Run, rng) -> Network:
    """The network to train: given, restored from a checkpoint, or freshly initialised."""
    cfg = run.config
    if run.network is not None:
        return run.network
    if run.checkpoint is not None:
        fields = dict(run.checkpoint.network_fields)
        return Network.from_arrays(fields.pop("weights"), fields.pop("biases"),
                                   backend=run.backend, **fields)
    assert cfg.layers is not None
    return Network.initialize(cfg.layers, activation=cfg.activation, cost=cfg.cost,
                              init=cfg.init, dtype=cfg.dtype, seed=rng, backend=run.backend)


def _load_optimizer_state(opt: Optimizer, state: Any, be: Backend) -> None:
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


def _same_start_on_every_rank(comm: Communicator, net: Network, opt: Optimizer,
                              data: Splits) -> None:
    """Check that every rank stages the same data, then give every rank rank 0's parameters
    and optimizer state (one broadcast): a given network or a checkpoint read differently on
    another node cannot split the ranks."""
    xp, write = net.xp, net.backend.writes
    sizes = [None if d is None else len(d) for d in (data.train, data.validation, data.test)]
    held = data.train.labels if data.train.labels is not None else data.train.targets
    mine = (sizes, float(xp.sum(xp.astype(held, xp.float64))))
    theirs = comm.share(mine)
    if mine != theirs:
        raise ValueError(f"this rank's data (rows of train/validation/test {mine[0]}, label sum "
                         f"{mine[1]:g}) differ from rank 0's ({theirs[0]}, {theirs[1]:g}): every "
                         "rank must pass the same options and the whole data set; each takes "
                         "its share of every mini-batch itself")
    params, state = net.parameters(), opt.state_arrays()
    arrays = params + list(state.values())
    flat = comm.broadcast(xp.concat([xp.reshape(a, (-1,)) for a in arrays]))
    start, received = 0, []
    for a in arrays:
        n = math.prod(a.shape)
        received.append(write.assign(a, xp.reshape(flat[start:start + n], a.shape)))
        start += n
    params[:] = received[:len(params)]
    opt.load_state(dict(zip(state, received[len(params):])), opt.scalars())


def _check_monitor(cfg: TrainConfig, data: Splits, targets: str = "classes") -> None:
    """Early stopping and the plateau schedule watch a value that must exist."""
    watching = cfg.early_stopping or cfg.learning_rate_schedule == "plateau"
    what = "early_stopping=True" if cfg.early_stopping else "the plateau schedule"
    if watching and "accuracy" in cfg.monitor and targets == "values":
        raise ValueError(f"{what} watches monitor={cfg.monitor!r}, but a network that fits "
                         f"values (cost={cfg.cost!r}) has no accuracy: use "
                         "monitor='validation_cost' (or 'train_cost')")
    if watching and cfg.monitor.startswith("validation") and data.validation is None:
        raise ValueError(f"{what} watches monitor={cfg.monitor!r}, but there is no validation "
                         "data: set validation_length > 0 (named data sets) or pass "
                         "validation_data=(x, y), or use monitor='train_cost'")


if train.__doc__:  # the parameter list is generated from the option declarations
    train.__doc__ = train.__doc__.replace("{options}", options_doc())
