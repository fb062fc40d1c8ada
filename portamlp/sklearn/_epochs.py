"""scikit-learn's per-epoch rules, implemented as a portamlp training callback.

scikit-learn's ``MLPClassifier`` decides after every epoch: the loss it reports (the data term
plus its L2 term), whether the epoch improved on the best by ``tol`` (the training loss, or the
validation accuracy with ``early_stopping``), the ``"invscaling"`` and ``"adaptive"`` learning
rates of its ``"sgd"`` solver, and when to stop. :class:`Epochs` makes the same decisions as a
callback of :func:`portamlp.train` (called with each :class:`~portamlp.training.config.EpochRecord`
and the network; returning True stops the run), and its :meth:`Epochs.rate` is the callable
learning-rate schedule that gives each epoch the rate decided after the one before.
:class:`Schedule` is what carries over from one ``fit`` or ``partial_fit`` call to the next.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from ..nn.network import Network
from ..training.config import EpochRecord

if TYPE_CHECKING:
    from ._base import BaseMLP

__all__ = ["Schedule", "Epochs", "ADAPTIVE_DIVISOR", "MIN_RATE", "squared_weights"]

#: scikit-learn's adaptive schedule divides the rate by this and stops below MIN_RATE.
ADAPTIVE_DIVISOR = 5.0
MIN_RATE = 1e-6


def squared_weights(network: Network) -> float:
    """``Σ‖W‖²`` over the network's weight matrices (scikit-learn's L2 term without its
    factor), in one read from the device."""
    xp = network.xp
    with network.backend.activate():
        return float(xp.sum(xp.stack([xp.sum(w * w) for w in network.weights])))


class Schedule:
    """What scikit-learn carries from epoch to epoch and from one ``partial_fit`` to the next.

    Parameters
    ----------
    learning_rate : float
        The ``"sgd"`` solver's current learning rate (``learning_rate_init`` at the start).

    Attributes
    ----------
    learning_rate : float
    no_improvement_count : int
        Epochs in a row that did not improve by ``tol``.
    """

    def __init__(self, learning_rate: float):
        self.learning_rate = learning_rate
        self.no_improvement_count = 0


class Epochs:
    """scikit-learn's per-epoch bookkeeping, as a :func:`portamlp.train` callback.

    After each epoch: the loss (with the L2 term scikit-learn adds), the validation score, the
    no-improvement count against ``tol``, the learning-rate schedule and the decision to stop,
    all by scikit-learn's rules; the estimator's ``loss_``, ``loss_curve_``, ``t_``,
    ``best_loss_``, ``validation_scores_`` and ``best_validation_score_`` are updated as
    scikit-learn updates them. :meth:`rate` is the callable schedule that gives each epoch
    the rate decided after the one before.

    Parameters
    ----------
    est : MLPClassifier or MLPRegressor
        The estimator being fitted: its parameters are read and its fitted attributes written.
    schedule : Schedule
        The learning rate and no-improvement count, carried between calls.
    n_train : int
        Training samples in an epoch.
    batch : int
        The mini-batch size.
    mean_weight : float
        The mean sample weight of the training data (1.0 without weights).
    validation : tuple or None
        ``(x, y, sample_weight or None)`` held out for early stopping (``y`` as
        :func:`portamlp.train` takes it: class indices, values or indicators).

    Attributes
    ----------
    n_iter : int
        Epochs run so far in this call.
    best_parameters : list or None
        With early stopping, copies of the parameters of the best epoch.
    """

    def __init__(self, est: BaseMLP, schedule: Schedule, *, n_train: int, batch: int,
                 mean_weight: float, validation: tuple[Any, np.ndarray, Any] | None):
        self.est, self.schedule = est, schedule
        self.n_train = n_train
        self.n_iter = 0
        # scikit-learn's per-batch L2 term 0.5·alpha·‖W‖²/Σw(batch), summed over an epoch's
        # batches and divided by n_train
        n_batches = -(-n_train // batch)
        self.l2_scale = 0.5 * float(est.alpha) * n_batches / (n_train * mean_weight)
        self.validation = validation
        self.best_parameters: list | None = None
        #: The network being trained (seen at the first epoch's end).
        self.network: Network | None = None

    def rate(self, epoch: int) -> float:
        """The learning rate of epoch ``epoch`` (a callable ``learning_rate_schedule``)."""
        return self.schedule.learning_rate

    def __call__(self, record: EpochRecord, network: Network) -> bool:
        """Apply scikit-learn's rules after one epoch; True stops training."""
        est, schedule = self.est, self.schedule
        self.network = network
        self.n_iter += 1
        loss = record.train_cost / est._loss_divisor() + self._l2(network)  # noqa: SLF001
        est.loss_ = loss
        est.loss_curve_.append(loss)
        est.t_ += self.n_train
        if est.verbose:
            print(f"Iteration {self.n_iter}, loss = {loss:.8f}", file=sys.stdout)
        self._count(loss, record, network)
        sgd = est.solver == "sgd"
        if sgd and est.learning_rate == "invscaling":
            schedule.learning_rate = float(est.learning_rate_init) / (est.t_ + 1) ** est.power_t
        if schedule.no_improvement_count <= est.n_iter_no_change:
            return False
        if est.early_stopping:
            message = (f"Validation score did not improve more than tol={est.tol:f} for "
                       f"{est.n_iter_no_change} consecutive epochs.")
        else:
            message = (f"Training loss did not improve more than tol={est.tol:f} for "
                       f"{est.n_iter_no_change} consecutive epochs.")
        if sgd and est.learning_rate == "adaptive":
            if schedule.learning_rate > MIN_RATE:
                schedule.learning_rate /= ADAPTIVE_DIVISOR
                schedule.no_improvement_count = 0
                if est.verbose:
                    print(f"{message} Setting learning rate to {schedule.learning_rate:f}")
                return False
            message += " Learning rate too small. Stopping."
        if est.verbose:
            print(message)
        return True

    def _l2(self, network: Network) -> float:
        """scikit-learn's L2 term of the epoch's loss, from the network's weights."""
        return self.l2_scale * squared_weights(network) if self.l2_scale else 0.0

    def _count(self, loss: float, record: EpochRecord, network: Network) -> None:
        """scikit-learn's ``_update_no_improvement_count``."""
        est, schedule = self.est, self.schedule
        if not est.early_stopping:
            best_loss = np.inf if est.best_loss_ is None else est.best_loss_
            if loss > best_loss - est.tol:
                schedule.no_improvement_count += 1
            else:
                schedule.no_improvement_count = 0
            est.best_loss_ = min(best_loss, loss)
            return
        assert self.validation is not None
        score = est._stopping_score(network, record, *self.validation)  # noqa: SLF001
        if est.validation_scores_ is None:
            est.validation_scores_ = []
        est.validation_scores_.append(score)
        if est.verbose:
            print(f"Validation score: {score:f}")
        best = -np.inf if est.best_validation_score_ is None else est.best_validation_score_
        if score < best + est.tol:
            schedule.no_improvement_count += 1
        else:
            schedule.no_improvement_count = 0
        if score > best:
            est.best_validation_score_ = score
            xp = network.xp
            with network.backend.activate():
                self.best_parameters = [xp.asarray(p, copy=True) for p in network.parameters()]

    def finish(self, network: Network) -> None:
        """With early stopping, end with the best epoch's weights (as scikit-learn does)."""
        if self.est.early_stopping and self.best_parameters is not None:
            params, write = network.parameters(), network.backend.writes
            with network.backend.activate():
                for i, best in enumerate(self.best_parameters):
                    params[i] = write.assign(params[i], best)
