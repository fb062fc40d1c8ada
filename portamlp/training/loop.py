"""The epoch / mini-batch loop of a training run: steps, the epoch's summary, interruption.

:class:`Trainer` holds one run's loop state; :func:`portamlp.train` builds it and calls
:meth:`Trainer.run`. Inside the mini-batch loop nothing is read back to the host: costs stay
0-d device arrays, and one transfer per epoch brings back the epoch's costs, a finiteness check
of the weights and the validation values together. The work around each epoch (schedule,
early stopping, checkpoints, advice, callbacks) is done by the hooks of
:mod:`portamlp.training.hooks`. Progress goes to a tqdm bar on stderr (only on a terminal unless
``progress=True``), advice through :mod:`warnings`.
"""

from __future__ import annotations

import itertools
import signal
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .. import fast
from ..backends import memory_phase, to_numpy
from ..datasets.registry import DATASETS
from ..datasets.staging import DeviceDataset
from ..distributed import SINGLE_PROCESS, Communicator
from ..errors import DivergenceError, TrainingInterrupted, warn
from ..files.checkpoints import RunPosition, checkpoint_path, save_checkpoint
from ..files.run_records import EpochRecord
from ..nn.inputs import SparseRows
from ..nn.network import Network
from .config import TrainConfig
from .data import Splits
from .distortions import Distortions, image_side
from .dropout import Dropout
from .hooks import (
    Callbacks,
    Checkpointing,
    Collapse,
    DeadClasses,
    EpochHook,
    EpochState,
    Schedule,
    Stopping,
)
from .optimizers import apply_max_norm
from .schedules import LearningRate
from .seeds import rng_state
from .stopping import EarlyStopping, Monitor

__all__ = ["Trainer", "progress_bar", "stop_on_signals"]


def progress_bar(progress, total, epoch, epochs, initial=0):
    """A tqdm bar on stderr for one epoch's mini-batches, or None: ``progress=None`` shows it
    only on a terminal."""
    show = sys.stderr.isatty() if progress is None else bool(progress)
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=f"epoch {epoch}/{epochs}", unit="batch",
                leave=False, file=sys.stderr, dynamic_ncols=True)


@contextmanager
def stop_on_signals(enabled: bool):
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


def _host_values(vector) -> np.ndarray:
    """A device vector of per-epoch values, read back to the host in one transfer (float64)."""
    return to_numpy(vector).astype(np.float64)


def _cost_sum(values) -> tuple[float, int | None]:
    """Sum of an epoch's per-batch costs (host values) in float64, and the index of the first
    non-finite one (None if all are finite)."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    if finite.all():
        return float(values.sum()), None
    first = int(np.argmin(finite))
    return float(values[first]), first


class Trainer:
    """One training run's loop state (a class only to keep the loop's pieces small).

    With several ranks (``comm``), each computes the gradients of its share of every global
    mini-batch, :class:`~portamlp.distributed.GradientExchange` sums them (and the cost, and any
    signal received) with one allreduce, and every rank takes the same step. Validation and the
    final test are split across the ranks too; their sums are reduced, so every rank sees the
    same values and takes the same early-stopping and schedule decisions.
    """

    def __init__(self, net: Network, opt, data: Splits, cfg: TrainConfig, rng, *, progress,
                 callbacks: list[Callable], checkpoint: Path | None, own_data: bool,
                 comm: Communicator = SINGLE_PROCESS):
        self.net, self.opt, self.cfg, self.rng = net, opt, cfg, rng
        self.data, self.comm = data, comm
        self.exchange = comm.gradient_exchange(net.parameters(), net.backend)
        self.validation = self._share(data.validation)  # this rank's rows of it
        self.signalled_rank: int | None = None
        self.progress = progress
        self.checkpoint, self.own_data = checkpoint, own_data
        self.n_batches = -(-len(data.train) // cfg.batch_size)
        self.history: list[EpochRecord] = []
        #: Set when a full-batch optimizer has finished (converged or out of evaluations).
        self.finished = False
        self.snapshot = self._copy_parameters()  # the network at its last complete epoch
        self.monitor = Monitor(cfg.monitor, cfg.min_delta)
        self.stopper = EarlyStopping(self.monitor, cfg.patience, cfg.restore_best) \
            if cfg.early_stopping else None
        self.hooks = self._hooks(callbacks)
        self.dropout = None
        if cfg.dropout or cfg.input_dropout:
            be = net.backend
            self.dropout = Dropout(be.xp, be.device, net.layers, cfg.dropout, cfg.input_dropout,
                                   cfg.seed or 0, net.parameters()[0].dtype)
        self.distortions = self._distortions()
        reasons = fast.blockers(net, opt, cfg, sample_weight=data.train.weights is not None,
                                processes=comm.size,
                                sparse=isinstance(data.train.x, SparseRows))
        #: the fast step of the network's backend (see portamlp.fast), or None: the portable one
        self.fast = fast.new_fast_epoch(net, opt, data.train, cfg) \
            if fast.wanted(cfg.fast_path, reasons) else None

    def _distortions(self) -> Distortions | None:
        """The distortions of the training images, or None; refuses rows that are not square
        images. The background is a 0 pixel after the data set's scaling, or the smallest
        value of your own x (read once)."""
        spec, net, x = self.cfg.distortions, self.net, self.data.train.x
        if not spec.active:
            return None
        if isinstance(x, SparseRows):
            raise ValueError(f"distortions ({spec.describe()}) need dense images; x is sparse: "
                             "pass it dense (x.toarray()) or leave the distortion options at 0")
        side = image_side(net.layers[0], spec)
        if spec.flip and not self.own_data and DATASETS.get(self.cfg.dataset, {}).get("symbols"):
            warn(f"flip=True mirrors half of the {self.cfg.dataset} training images, but a "
                 "mirrored character is not one of its classes (a mirrored 2 is no digit): "
                 "leave flip out for written symbols; it is meant for images such as clothes")
        if self.own_data or net.preprocessing is None:
            fill = float(to_numpy(net.xp.min(x)))
        else:
            fill = float(net.preprocessing.apply(np.zeros(1, dtype=np.uint8), "float64")[0])
        be = net.backend
        return Distortions(be.xp, be.device, side, spec, self.cfg.seed or 0,
                           net.parameters()[0].dtype, fill)

    def _hooks(self, callbacks: list[Callable]) -> list[EpochHook]:
        """The work around each epoch, in the order it is done (see :mod:`.hooks`)."""
        hooks: list[EpochHook] = [Schedule(LearningRate(self.cfg), self.opt)]
        if self.stopper is not None:
            hooks.append(Stopping(self.stopper, self._copy))
        if self.checkpoint is not None:
            hooks.append(Checkpointing(self._save))
        hooks.append(Collapse(self.cfg, self.net.layers, self.data.largest_input))
        hooks.append(DeadClasses(self.cfg, self.net.layers))
        if callbacks:
            hooks.append(Callbacks(callbacks))
        return hooks

    def load_state(self, extra: dict[str, Any], arrays: dict[str, Any]) -> None:
        """Restore the hooks' state (schedule, early stopping) from a checkpoint; state of a
        hook this run does not have is refused (a damaged checkpoint)."""
        unknown = sorted(set(extra) - {h.name for h in self.hooks if h.name is not None})
        if unknown:
            raise ValueError(f"the checkpoint holds the state of {unknown}, which this run does "
                             "not have; the checkpoint is damaged or of another run")
        for hook in self.hooks:
            if hook.name is not None:
                hook.load_state(extra.get(hook.name, {}), arrays)

    # -- the epochs
    def run(self, position: RunPosition) -> tuple[list[EpochRecord], bool]:
        """Run from ``position`` to the last epoch; return ``(history, stopped_early)``."""
        cfg = self.cfg
        self.history = list(position.history)
        stopped = False
        # Several ranks must stop at the same step: they always hear signals this way.
        with stop_on_signals(self.checkpoint is not None or self.comm.size > 1) as received:
            try:
                for epoch in range(position.epoch, cfg.epochs + 1):
                    for hook in self.hooks:
                        hook.before_epoch(epoch)
                    record = self._epoch(epoch, position, received)
                    self.history.append(record)
                    self.snapshot = self._copy_parameters()
                    position = RunPosition(epoch + 1, 0, 0.0, 0.0, self.history,
                                           rng_state(self.rng))
                    state = EpochState(epoch, epoch == cfg.epochs, record, self.net,
                                       self.monitor, position)
                    state.stop = self.finished  # a full-batch optimizer has converged
                    for hook in self.hooks:
                        hook.after_epoch(state)
                    signalled = self._agreed_signal(received[0])
                    if signalled is not None:  # a signal after the epoch's last mini-batch
                        self._interrupt(epoch + 1, 0, signalled,
                                        saved=self.checkpoint is not None)
                    if self.comm.agree(state.stop):
                        stopped = epoch < cfg.epochs
                        break
            except KeyboardInterrupt as exc:
                if isinstance(exc, TrainingInterrupted) and exc.network is not None:
                    raise
                raise self._interrupted(None, getattr(exc, "signum", None)) from None
        for hook in self.hooks:
            hook.at_end(self.net)
        return self.history, stopped

    def _agreed_signal(self, signum) -> tuple[int, int] | None:
        """``(rank, signum)`` of a signal received by any rank (asking them all), or None."""
        if self.exchange is not None:
            return self.exchange.agree_signal(signum)
        return None if signum is None else (0, signum)

    def _epoch(self, epoch: int, position: RunPosition, received) -> EpochRecord:
        cfg, net = self.cfg, self.net
        first_batch = position.batch if epoch == position.epoch else 0
        carried = (position.cost_sum, position.seconds) if first_batch else (0.0, 0.0)
        state_at_start = rng_state(self.rng)  # resuming replays this epoch's permutation
        bar = progress_bar(self.progress, self.n_batches, epoch, cfg.epochs, first_batch)
        start = time.perf_counter()
        steps = self._portable_epoch if self.fast is None else self._fast_epoch
        if self.opt.full_batch:
            steps = self._full_batch_epoch
        try:
            with memory_phase("a training step", net.backend, self._step_advice(),
                              self._step_bytes()):
                costs = steps(epoch, first_batch, received, bar, carried, start, state_at_start)
        finally:
            if bar is not None:
                bar.close()
        total, validation = self._epoch_summary(epoch, first_batch, costs)
        record = EpochRecord(epoch=epoch, seconds=0.0,
                             train_cost=(carried[0] + total) / len(self.data.train),
                             learning_rate=self.opt.learning_rate)
        if validation is not None:
            (record.validation_accuracy, record.validation_cost, record.never_predicted,
             record.predicted_counts, record.label_counts) = validation
        record.seconds = carried[1] + time.perf_counter() - start
        return record

    def _portable_epoch(self, epoch, first_batch, received, bar, carried, start,
                        state_at_start) -> list:
        """The epoch's steps by the portable Array-API step; returns their raw costs (0-d
        device arrays)."""
        cfg, net = self.cfg, self.net
        every = max(1, self.n_batches // 100)
        backprop, step, dropout = net.backprop, self.opt.step, self.dropout
        distortions = self.distortions
        max_norm, exchange, params = cfg.max_norm, self.exchange, net.parameters()
        library = net.backend.library
        settle = library.settle if library.lazy else None  # Dask: one step's graph at most
        rank, size = self.comm.shard
        first_step = (epoch - 1) * self.n_batches
        n_rows = len(self.data.train)
        batches = self.data.train.batches(cfg.batch_size, self.rng if cfg.shuffle else None,
                                          shard=(rank, size))
        if first_batch:  # resuming mid-epoch: same permutation, skip the batches already done
            batches = itertools.islice(batches, first_batch, None)
        costs: list[Any] = []
        for i, (xb, tb, wb) in enumerate(batches, start=first_batch):
            rows = min(cfg.batch_size, n_rows - i * cfg.batch_size)  # all ranks' rows
            masks = None if dropout is None else \
                dropout.for_step(first_step + i, xb.shape[0], rank * rows // size)
            if distortions is not None:
                xb = distortions.apply(xb, first_step + i, rank * rows // size)
            cost, grads = backprop(xb, tb, sample_weight=wb, dropout=masks)
            if exchange is None:
                signalled = None if received[0] is None else (0, received[0])
            else:  # the sums over all ranks' shares: the global batch's
                cost, grads, signalled = exchange.reduce(cost, grads, received[0])
            if settle is not None:
                cost, *grads = settle([cost, *grads])
            costs.append(cost)
            step(grads, 1.0 / rows)
            if max_norm is not None:
                apply_max_norm(net.backend, params, max_norm)
            if settle is not None:
                self._settle_state(settle)
            if bar is not None and (i + 1) % every == 0:
                bar.update(every)
            if signalled is not None:
                self._stop_at_step(epoch, i + 1, signalled, costs, carried, start,
                                   state_at_start)
        return costs

    def _full_batch_epoch(self, epoch, first_batch, received, bar, carried, start,
                          state_at_start) -> list:
        """One iteration of a full-batch optimizer (L-BFGS): each evaluation of the cost and
        gradient sums them over every mini-batch of the training set (all ranks' shares), so
        ``batch_size`` bounds the memory without changing the result. Returns the cost at the
        new parameters (raw, as the portable step's costs are). A signal is answered after
        the iteration."""
        net, xp = self.net, self.net.xp
        data, exchange, rank_size = self.data.train, self.exchange, self.comm.shard
        batch_size = self.cfg.batch_size

        def evaluate():
            if bar is not None:  # the bar shows each evaluation's pass over the data
                bar.reset()
            cost, total = None, None
            for xb, tb, wb in data.batches(batch_size, None, shard=rank_size):
                c, grads = net.backprop(xb, tb, sample_weight=wb)
                cost = c if cost is None else cost + c
                total = grads if total is None else [t + g for t, g in zip(total, grads)]
                if bar is not None:
                    bar.update(1)
            assert cost is not None and total is not None
            if exchange is not None:
                cost, total, _ = exchange.reduce(cost, total, None)
            return cost * net.cost_scale, total

        raw, self.finished = self.opt.iterate(evaluate, 1.0 / len(data))
        return [xp.asarray(raw / net.cost_scale, dtype=net.parameters()[0].dtype,
                           device=net.backend.device)]

    def _settle_state(self, settle) -> None:
        """The parameters and the optimizer's state computed and stored (a lazy library)."""
        params, state = self.net.parameters(), self.opt.state_arrays()
        params[:] = settle(params)
        if state:
            self.opt.load_state(dict(zip(state, settle(list(state.values())))),
                                self.opt.scalars())

    def _stop_at_step(self, epoch, next_batch, signalled, costs, carried, start,
                      state_at_start):
        """Stop for a signal after step ``next_batch`` (a checkpoint first, when saving)."""
        saved = self.checkpoint is not None
        if saved:
            seconds = carried[1] + time.perf_counter() - start
            self._save_interrupted(epoch, next_batch, costs, carried[0], seconds,
                                   state_at_start)
        self._interrupt(epoch, next_batch, signalled, saved=saved)

    def _fast_epoch(self, epoch, first_batch, received, bar, carried, start, state_at_start):
        """The epoch's steps by the fast step (:mod:`portamlp.fast`); returns the vector of
        their raw costs. A signal stops it after the group of steps under way."""
        assert self.fast is not None
        n_rows = len(self.data.train)
        # the permutation the portable step draws (DeviceDataset.batches), from the same rng
        order = self.rng.permutation(n_rows) if self.cfg.shuffle else np.arange(n_rows)
        done = first_batch
        for done in self.fast.run(order, first_batch):
            if bar is not None:
                bar.update(done - bar.n)
            if received[0] is not None:
                self._stop_at_step(epoch, done, (0, received[0]),
                                   self.fast.cost_vector(first_batch, done), carried, start,
                                   state_at_start)
        return self.fast.cost_vector(first_batch, done)

    def _cost_vector(self, costs):
        """The epoch's per-step raw costs as one device vector (a list of 0-d arrays from the
        portable step, already a vector from the fast one), or None when there are none."""
        if isinstance(costs, list):
            return self.net.xp.stack(costs) if costs else None
        return costs

    def _step_bytes(self) -> float:
        itemsize = 8 if self.cfg.dtype == "float64" else 4
        return 3.0 * self.cfg.batch_size * sum(self.net.layers) * itemsize

    def _step_advice(self) -> str:
        return (f"a mini-batch of {self.cfg.batch_size} through layers {list(self.net.layers)} "
                "needs that for activations and gradients besides the parameters; use a "
                "smaller batch_size or smaller layers")

    # -- per-epoch values, in one transfer
    def _share(self, data: DeviceDataset | None) -> DeviceDataset | None:
        """This rank's contiguous rows of a validation or test split (all of it alone)."""
        if data is None or self.comm.size == 1:
            return data
        rank, size = self.comm.shard
        lo, hi = rank * len(data) // size, (rank + 1) * len(data) // size
        if data.labels is None:  # values or indicators: the targets themselves
            return DeviceDataset(data.x[lo:hi, ...], None, data.n_classes, data.backend,
                                 targets=data.targets[lo:hi, ...])
        return DeviceDataset(data.x[lo:hi, ...], data.labels[lo:hi], data.n_classes,
                             data.backend)

    def _validation_sums(self, share: DeviceDataset):
        """:meth:`_validation_vector` of this rank's share, summed over the ranks."""
        return self.comm.allreduce(self._validation_vector(share))

    def _validation_vector(self, data: DeviceDataset):
        """Device vector ``[correct, cost_sum, count of each predicted class..., count of each
        label...]`` for classes; ``[rows whose every label is right, cost_sum]`` for several
        labels; ``[0, cost_sum]`` for values."""
        net, xp = self.net, self.net.xp
        outputs, cost = net.outputs_and_cost(data.x, data.targets)
        if data.labels is None:
            dtype = outputs.dtype
            right = xp.zeros((), dtype=dtype, device=net.backend.device)
            if net.targets == "labels":
                hits = xp.astype(outputs > 0.5, dtype) == data.targets
                right = xp.sum(xp.astype(xp.all(hits, axis=1), dtype))
            return xp.stack([right, xp.astype(cost, dtype)])
        predicted = xp.argmax(outputs, axis=1)
        dtype = outputs.dtype
        correct = xp.sum(xp.astype(predicted == data.labels, dtype))
        classes = xp.arange(data.n_classes, dtype=predicted.dtype, device=net.backend.device)
        counts = xp.sum(xp.astype(xp.expand_dims(predicted, axis=1) == classes, dtype), axis=0)
        truth = xp.sum(xp.astype(xp.expand_dims(data.labels, axis=1) == classes, dtype), axis=0)
        return xp.concat([xp.stack([correct, xp.astype(cost, dtype)]), counts, truth])

    def evaluate(self, data: DeviceDataset) -> tuple:
        """Accuracy, mean cost, the classes never predicted, and the counts of each predicted
        class and of each label on a staged split (one transfer)."""
        share = self.validation if data is self.data.validation else self._share(data)
        assert share is not None
        with self.net.backend.activate():
            values = _host_values(self._validation_sums(share))
        return self._validation_values(values, len(data))

    def _validation_values(self, values, n: int) -> tuple:
        if self.net.targets != "classes":  # no classes to count; values have no accuracy
            accuracy = float(values[0]) / n if self.net.targets == "labels" else None
            return accuracy, float(values[1]) / n, [], [], []
        k = (len(values) - 2) // 2
        counts = [int(round(float(c))) for c in values[2:2 + k]]
        labels = [int(round(float(c))) for c in values[2 + k:2 + 2 * k]]
        missing = [c for c in range(k) if counts[c] == 0]
        return float(values[0]) / n, float(values[1]) / n, missing, counts, labels

    def _epoch_summary(self, epoch: int, first_batch: int, costs: list):
        """The epoch's summed cost and validation values, from one device-to-host transfer;
        raises DivergenceError for a non-finite cost or weight."""
        xp, net = self.net.xp, self.net
        parts = []
        vector = self._cost_vector(costs)
        if vector is not None:
            parts.append(vector)
        params = net.parameters()
        finite = [xp.astype(xp.all(xp.isfinite(p)), params[0].dtype) for p in params]
        parts.append(xp.stack(finite))
        val = self.data.validation
        if val is not None:
            assert self.validation is not None
            with memory_phase("validation", net.backend, "use a smaller validation_length"):
                parts.append(xp.astype(self._validation_sums(self.validation), parts[0].dtype))
        values = _host_values(xp.concat(parts))
        n_costs, n_params = (0 if vector is None else int(vector.shape[0])), len(finite)
        total, bad = _cost_sum(values[:n_costs])
        if bad is not None:
            raise DivergenceError(
                f"training diverged in epoch {epoch}, mini-batch {first_batch + bad + 1} of "
                f"{self.n_batches}: the cost became {total}; lower the learning rate "
                f"(learning_rate={self.cfg.learning_rate})")
        if not values[n_costs:n_costs + n_params].all():
            raise DivergenceError(
                f"training diverged in epoch {epoch}: the weights hold NaN or infinity; lower "
                f"the learning rate (learning_rate={self.cfg.learning_rate})")
        validation = None
        if val is not None:
            validation = self._validation_values(values[n_costs + n_params:], len(val))
        return total * net.cost_scale, validation

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

    def _save_interrupted(self, epoch, next_batch, costs, carried_cost, seconds, rng_at_start):
        """A checkpoint at the current mini-batch (after checking nothing diverged)."""
        vector = self._cost_vector(costs)
        xp = self.net.xp
        total, bad = _cost_sum(_host_values(vector) if vector is not None else [])
        if bad is not None:
            raise DivergenceError(f"training diverged in epoch {epoch}; no checkpoint written")
        for p in self.net.parameters():
            if not bool(xp.all(xp.isfinite(p))):
                raise DivergenceError(f"training diverged in epoch {epoch}: the weights hold NaN "
                                      "or infinity; no checkpoint written")
        self._save(RunPosition(epoch, next_batch, carried_cost + total * self.net.cost_scale,
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
        extra = {h.name: h.state() for h in self.hooks if h.name is not None}
        arrays = {k: a for h in self.hooks for k, a in h.arrays().items()}
        return save_checkpoint(self.checkpoint, self.net, self.opt, self.cfg.to_dict(),
                               position, own_data=self.own_data, extra=extra,
                               extra_arrays=arrays)
