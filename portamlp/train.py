"""Training: the epoch / mini-batch loop, validation, history, callbacks and checkpoints.

:func:`train` takes keyword options named after the original program's parameters, validates them
into a frozen :class:`~portamlp.config.TrainConfig`, stages the data on the backend's device once,
and runs mini-batch stochastic gradient descent. Nothing is printed: progress goes to a tqdm bar on
stderr (only on a terminal unless ``progress=True``), advice goes through :mod:`warnings`.
"""

from __future__ import annotations

import dataclasses
import itertools
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .backend import Backend, describe_bytes, get_backend, is_out_of_memory
from .checkpoint import arrays_to_backend, checkpoint_path, load_checkpoint, save_checkpoint
from .config import SCHEDULES, EpochRecord, TrainConfig, TrainResult
from .datasets.loading import n_classes, scale_images
from .datasets.sources import read_split
from .datasets.staging import DeviceDataset
from .errors import DeviceMemoryError, DivergenceError, PortamlpWarning, TrainingInterrupted
from .host import epoch_loss, fresh_seed, make_rng, never_predicted, rng_state, set_rng_state
from .network import Network
from .optim import make_optimizer
from .threads import limit_blas_threads

__all__ = ["train", "TrainConfig", "TrainResult", "EpochRecord"]


# --------------------------------------------------------------------------- data staging
def _stage_named(cfg: TrainConfig, be: Backend, root, download: bool) -> tuple:
    """Train / validation / test splits of a named data set (or folder) on the device."""
    k = n_classes(cfg.dataset)
    images, labels = read_split(cfg.dataset, "train", root, k, download=download)
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
    test_images, test_labels = read_split(cfg.dataset, "test", root, k, download=download)
    n_test = test_images.shape[0] if cfg.test_length is None else cfg.test_length
    if n_test > test_images.shape[0]:
        raise ValueError(f"test_length={n_test} exceeds the {test_images.shape[0]} test images "
                         f"of {cfg.dataset!r}")

    def stage(imgs, labs):
        if imgs.shape[0] == 0:
            return None
        x = scale_images(imgs.reshape(imgs.shape[0], -1), cfg.scale, cfg.dtype,
                         name=cfg.dataset, root=root)
        return DeviceDataset(be.asarray(x), be.asarray(labs.astype("int64")), k, be)

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
    return never_predicted(net._predict_labels(data.x), data.labels, net.layers[-1])


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


def _options_for_resume(directory, options: dict) -> tuple[dict, Any]:
    """Options of the checkpointed run; new values only for ``epochs`` (to extend the run)."""
    ckpt = load_checkpoint(directory)
    saved = dict(ckpt.state["config"])
    saved["layers"] = tuple(saved["layers"])
    for key, value in options.items():
        if key == "epochs":
            saved[key] = value
            continue
        if key in saved and (tuple(value) if key == "layers" else value) != saved[key]:
            raise ValueError(f"{key}={value!r} differs from the checkpointed run's "
                             f"{saved[key]!r}; a resumed run keeps its settings (only epochs "
                             "may change)")
    return saved, ckpt


def train(*, x=None, y=None, validation_data=None, test_data=None, network: Network | None = None,
          backend: str | Backend | None = None, device: Any = None, root=None,
          progress: bool | None = None, callbacks: Sequence[Callable] = (),
          checkpoint=None, resume=None, download: bool = False, **options) -> TrainResult:
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
    threads : int, optional
        BLAS threads while training on the NumPy backend. Default: one for small matrix
        products (they gain nothing from more), else as many as there are idle cores.
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
    download : bool
        Download a named data set (Fashion-MNIST, KMNIST) from its official source when it is
        not found locally; files are checked against pinned hashes and cached.
    progress : bool, optional
        Show a per-epoch progress bar on stderr (default: only when stderr is a terminal).
    callbacks : sequence of callables
        Each is called as ``callback(record, network)`` after every epoch, with an
        :class:`EpochRecord`; returning ``True`` stops training.
    checkpoint : path, optional
        Directory where a checkpoint (network, optimizer state, random state, epoch, history) is
        written atomically at the end of every epoch. While it is set, SIGINT (Ctrl-C) and SIGTERM
        save a checkpoint at the current mini-batch and raise :class:`TrainingInterrupted`.
    resume : path, optional
        Continue the run checkpointed in this directory, exactly where it stopped (same
        settings; ``epochs`` may be raised to extend it). Your own ``x``/``y`` must be passed
        again. Checkpoints keep going to the same directory unless ``checkpoint`` says otherwise.

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
        The network or the data does not fit in the device's memory.
    TrainingInterrupted
        SIGINT/SIGTERM arrived while ``checkpoint`` was set; the checkpoint was saved.
    """
    ckpt = None
    if resume is not None:
        if network is not None:
            raise ValueError("pass either network= or resume=, not both")
        options, ckpt = _options_for_resume(resume, options)
        checkpoint = resume if checkpoint is None else checkpoint
    elif checkpoint is not None and checkpoint_path(checkpoint).exists():
        raise FileExistsError(f"{checkpoint} already holds a checkpoint; pass resume="
                              f"{str(checkpoint)!r} to continue that run, or choose another "
                              "directory")
    if network is not None:
        _adopt_network_options(network, options)
    unknown = set(options) - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        raise TypeError(f"train() got unknown option(s) {sorted(unknown)}; valid options are "
                        f"{sorted(f.name for f in dataclasses.fields(TrainConfig))}")
    if options.get("seed") is None:
        options["seed"] = fresh_seed()
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

    rng = make_rng(cfg.seed)
    net = _make_network(cfg, network, ckpt, backend, device, rng)
    be = net.backend
    train_set, val_set, test_set = _stage(cfg, net, x, y, validation_data, test_data, root,
                                          download)
    n_train = len(train_set)
    if n_train % cfg.batch_size:
        warnings.warn(
            f"train_length={n_train} is not a multiple of batch_size={cfg.batch_size}; the last "
            f"mini-batch of each epoch has {n_train % cfg.batch_size} samples", PortamlpWarning, 2)

    opt = make_optimizer(cfg.optimizer, net.parameters(), be.xp, learning_rate=cfg.learning_rate,
                         momentum=cfg.momentum, nesterov=cfg.nesterov,
                         weight_decay=cfg.weight_decay)
    position = {"epoch": 1, "batch": 0, "history": [], "loss_sum": 0.0, "seconds": 0.0}
    if ckpt is not None:
        opt.load_state(arrays_to_backend(ckpt.optimizer_arrays, be, cfg.dtype),
                       ckpt.state["optimizer_scalars"])
        set_rng_state(rng, ckpt.state["rng_state"])
        position = {k: ckpt.state[k] for k in position}
    run = _Run(net, opt, train_set, val_set, cfg, rng, progress, callbacks,
               None if checkpoint is None else Path(checkpoint), own_data=x is not None)
    try:
        with limit_blas_threads(be.name, cfg.layers, cfg.batch_size, cfg.threads):
            history, stopped = run.epochs(position)
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        itemsize = 8 if cfg.dtype == "float64" else 4
        per_step = 3 * cfg.batch_size * sum(cfg.layers) * itemsize  # z, a and δ of every layer
        raise DeviceMemoryError(
            f"out of memory during a training step on {be.name} {be.device}: a mini-batch of "
            f"{cfg.batch_size} through layers {list(cfg.layers)} needs about "
            f"{describe_bytes(per_step)} of activations and gradients besides the parameters; "
            "use a smaller batch_size or smaller layers") from exc
    test_accuracy = None
    if test_set is not None:
        test_accuracy, _ = _accuracy_and_missing(net, test_set)
    return TrainResult(network=net, history=history, test_accuracy=test_accuracy, config=cfg,
                       stopped_early=stopped)


def _adopt_network_options(network: Network, options: dict) -> None:
    """A given network's layers, activation, cost and dtype win (conflicts are errors)."""
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


def _make_network(cfg, network, ckpt, backend, device, rng) -> Network:
    """The network to train: given, restored from a checkpoint, or freshly initialised."""
    if network is not None:
        if backend is not None or device is not None:
            raise ValueError("a given network trains on its own backend; use network.to(...) "
                             "first to move it")
        return network
    be = get_backend(backend, device)
    n_params = sum(a * b + b for a, b in zip(cfg.layers[:-1], cfg.layers[1:]))
    try:
        if ckpt is not None:
            return Network.from_arrays(ckpt.weights, ckpt.biases, activation=cfg.activation,
                                       cost=cfg.cost, backend=be, dtype=cfg.dtype)
        return Network.initialize(cfg.layers, activation=cfg.activation, cost=cfg.cost,
                                  init=cfg.init, dtype=cfg.dtype, seed=rng, backend=be)
    except Exception as exc:
        if is_out_of_memory(exc):
            itemsize = 8 if cfg.dtype == "float64" else 4
            raise DeviceMemoryError(
                f"out of memory allocating the network's {n_params:,} parameters for layers "
                f"{list(cfg.layers)} ({describe_bytes(n_params * itemsize)} as {cfg.dtype}, "
                f"more while drawing them) on {be.name} {be.device}; use smaller layers"
            ) from exc
        raise


def _stage(cfg, net, x, y, validation_data, test_data, root, download):
    """Put the training, validation and test data on the network's device."""
    try:
        if x is None:
            train_set, val_set, test_set = _stage_named(cfg, net.backend, root, download)
            n_features = train_set.x.shape[1]
            if n_features != cfg.layers[0]:
                raise ValueError(f"layers={list(cfg.layers)} expect {cfg.layers[0]} inputs but "
                                 f"{cfg.dataset!r} images have {n_features} pixels")
            return train_set, val_set, test_set
        train_set = _stage_arrays(net, x, y, cfg.train_length, "train")
        if train_set is None:
            raise ValueError("the training data is empty")
        val_set = _stage_arrays(net, *_pair(validation_data, "validation"),
                                cfg.validation_length, "validation")
        test_set = _stage_arrays(net, *_pair(test_data, "test"), cfg.test_length, "test")
        if cfg.dataset != "mnist":
            warnings.warn("dataset is ignored when x and y are given", PortamlpWarning, 3)
        return train_set, val_set, test_set
    except Exception as exc:
        if is_out_of_memory(exc):
            raise DeviceMemoryError(
                f"out of memory staging the data set on {net.backend.name} {net.backend.device}"
                f" ({exc}); use a smaller train_length / validation_length / test_length"
            ) from exc
        raise


class _Run:
    """One training run's loop state (a class only to keep the loop's pieces small)."""

    def __init__(self, net, opt, train_set, val_set, cfg, rng, progress, callbacks,
                 checkpoint: Path | None, own_data: bool):
        self.net, self.opt, self.cfg, self.rng = net, opt, cfg, rng
        self.train_set, self.val_set = train_set, val_set
        self.progress, self.callbacks = progress, callbacks
        self.checkpoint, self.own_data = checkpoint, own_data
        self.n_batches = -(-len(train_set) // cfg.batch_size)

    def epochs(self, position: dict) -> tuple[list[EpochRecord], bool]:
        """Run from ``position`` to the last epoch; return ``(history, stopped_early)``."""
        cfg = self.cfg
        history = [h if isinstance(h, EpochRecord) else EpochRecord(**h)
                   for h in position["history"]]
        batch, loss_sum, seconds = position["batch"], position["loss_sum"], position["seconds"]
        warned: list[int] = []
        schedule = SCHEDULES[cfg.learning_rate_schedule]
        with _stop_on_signals(self.checkpoint is not None) as received:
            for epoch in range(position["epoch"], cfg.epochs + 1):
                self.opt.learning_rate = schedule(cfg.learning_rate, epoch, cfg.epochs)
                record = self._epoch(epoch, batch, loss_sum, seconds, received, history)
                batch, loss_sum, seconds = 0, 0.0, 0.0
                history.append(record)
                if self.checkpoint is not None:
                    self._save(epoch + 1, 0, 0.0, 0.0, history)
                if record.never_predicted and record.never_predicted != warned:
                    warned = record.never_predicted
                    warnings.warn(
                        f"after epoch {epoch} the network never predicts class(es) {warned} on "
                        "the validation set (saturated outputs); try init='scaled' or "
                        "cost='cross_entropy'", PortamlpWarning, 4)
                stop = [cb(record, self.net) for cb in self.callbacks]  # every callback runs
                if any(stop):
                    return history, True
        return history, False

    def _epoch(self, epoch, first_batch, loss_sum, seconds, received, history) -> EpochRecord:
        cfg, net, xp = self.cfg, self.net, self.net.backend.xp
        state_at_start = rng_state(self.rng)  # resuming replays this epoch's permutation
        bar = _progress_bar(self.progress, self.n_batches, epoch, cfg.epochs, first_batch)
        every = max(1, self.n_batches // 100)
        backprop, step = net._backprop, self.opt.step
        start = time.perf_counter()
        losses = []
        batches = self.train_set.batches(cfg.batch_size, self.rng if cfg.shuffle else None)
        if first_batch:  # resuming mid-epoch: same permutation, skip the batches already done
            batches = itertools.islice(batches, first_batch, None)
        try:
            for i, (xb, tb) in enumerate(batches, start=first_batch):
                loss, grads = backprop(xb, tb)
                losses.append(loss)
                step(grads, 1.0 / xb.shape[0])
                if bar is not None and (i + 1) % every == 0:
                    bar.update(every)
                if received[0] is not None:
                    self._interrupt(epoch, i + 1, losses, loss_sum, state_at_start,
                                    seconds + time.perf_counter() - start, history, received[0])
        finally:
            if bar is not None:
                bar.close()
        total, bad = epoch_loss(xp, losses)  # one host transfer per epoch
        total *= net._cost.value_scale
        if bad is not None:
            raise DivergenceError(
                f"training diverged in epoch {epoch}, mini-batch {first_batch + bad + 1} of "
                f"{self.n_batches}: the loss became {total}; lower the learning rate "
                f"(learning_rate={cfg.learning_rate})")
        self._check_weights(epoch)
        record = EpochRecord(epoch=epoch, seconds=0.0,
                             train_loss=(loss_sum + total) / len(self.train_set))
        if self.val_set is not None:
            record.validation_accuracy, record.never_predicted = _accuracy_and_missing(
                net, self.val_set)
        record.seconds = seconds + time.perf_counter() - start
        return record

    def _check_weights(self, epoch):
        xp = self.net.backend.xp
        for p in self.net.parameters():
            if not bool(xp.all(xp.isfinite(p))):
                raise DivergenceError(
                    f"training diverged in epoch {epoch}: the weights hold NaN or infinity; lower "
                    f"the learning rate (learning_rate={self.cfg.learning_rate})")

    def _interrupt(self, epoch, next_batch, losses, loss_sum, rng_at_start, seconds, history,
                   signum):
        """Save a checkpoint at the current mini-batch, then stop with a message."""
        total, bad = epoch_loss(self.net.backend.xp, losses)
        total *= self.net._cost.value_scale
        if bad is not None:
            raise DivergenceError(f"training diverged in epoch {epoch}; no checkpoint written")
        self._check_weights(epoch)
        path = self._save(epoch, next_batch, loss_sum + total, seconds, history,
                          rng=rng_at_start)
        how = "train(resume=...)" if not self.own_data else "train(x=..., y=..., resume=...)"
        name = signal.Signals(signum).name
        raise TrainingInterrupted(
            f"training stopped by {name} in epoch {epoch} after mini-batch {next_batch} of "
            f"{self.n_batches}; checkpoint saved to {path}. Resume with "
            f"{how.replace('...', repr(str(self.checkpoint)))} or "
            f"`portamlp train --resume {self.checkpoint}`", checkpoint=self.checkpoint,
            signum=signum)

    def _save(self, epoch, batch, loss_sum, seconds, history, rng=None):
        state = {"config": self.cfg.to_dict(), "epoch": epoch, "batch": batch,
                 "loss_sum": loss_sum, "seconds": seconds,
                 "history": [dataclasses.asdict(h) for h in history],
                 "rng_state": rng if rng is not None else rng_state(self.rng),
                 "own_data": self.own_data}
        return save_checkpoint(self.checkpoint, self.net, self.opt, state)
