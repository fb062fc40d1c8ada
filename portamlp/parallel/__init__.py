"""Parallel training and inference: the MPI side of data-parallel training, and Dask inference.

Data-parallel training
----------------------
``train(..., distributed="mpi")`` under ``mpiexec -n N`` trains one network on N processes
("ranks"). The trainer sees the ranks only through a communicator, the small interface
:class:`portamlp.train.Communicator` (re-exported here), whose one-rank implementation
(:data:`SINGLE_PROCESS`) lives with the trainer and does nothing. The MPI implementation is
:class:`portamlp.parallel.mpi.MPICommunicator`; the trainer finds it by name
(:func:`communicator`), so neither this package nor mpi4py is imported by ``import portamlp``.

This module holds what an implementation with several ranks shares: :class:`GradientExchange`,
which packs each step's gradients, loss and one signal slot per rank into one flat buffer and sums
it with a single ``allreduce``; :func:`abort_on_failure`, the guard that stops every rank when one
fails alone; and :func:`local_backend`, which gives each rank of a node its own GPU.

Dask inference
--------------
:func:`predict_dask` and :func:`predict_proba_dask` (in :mod:`portamlp.parallel.dask_inference`,
imported on first use) turn a Dask array of inputs into a lazy Dask array of predictions.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..backend import Backend, get_backend
from ..train import SINGLE_PROCESS, Communicator, SingleProcess, communicator

__all__ = ["Communicator", "SingleProcess", "SINGLE_PROCESS", "communicator",
           "GradientExchange", "abort_on_failure", "local_backend", "predict_dask",
           "predict_proba_dask"]


def local_backend(backend: Backend, local_rank: int) -> Backend:
    """``backend`` moved to GPU ``local_rank % n_gpus`` for a CUDA backend (CuPy, or PyTorch on
    CUDA); any other backend unchanged. Each rank of a node then uses its own GPU."""
    if backend.name == "cupy":
        import cupy

        return get_backend("cupy", local_rank % cupy.cuda.runtime.getDeviceCount())
    if backend.name == "torch" and str(backend.device).startswith("cuda"):
        import torch

        return get_backend("torch", f"cuda:{local_rank % torch.cuda.device_count()}")
    return backend


@contextlib.contextmanager
def abort_on_failure(comm: Communicator, agreed: tuple[type[BaseException], ...] = ()
                     ) -> Iterator[None]:
    """Abort every rank when an exception leaves the block on one of them.

    Exceptions of the ``agreed`` types are raised by every rank at the same point (they come
    from values all ranks share) and propagate normally; any other one would leave the other
    ranks waiting in their next collective call, so :meth:`Communicator.abort` stops them all,
    naming this rank and the exception (after printing its traceback). Nothing happens with one
    rank.
    """
    if comm.size == 1:
        yield
        return
    try:
        yield
    except agreed:
        raise
    except BaseException as exc:
        import traceback

        traceback.print_exc()
        comm.abort(f"{type(exc).__name__}: {exc}")


class GradientExchange:
    """Sum each step's gradients and loss over the ranks with one allreduce of one buffer.

    The buffer is ``[grad_0.ravel(), grad_1.ravel(), ..., loss, signal_0, ..., signal_{N-1}]``:
    slot ``signal_r`` holds the number of a signal (SIGINT, SIGTERM) rank ``r`` received, so
    that every rank learns of it at the same step and all stop together.

    Parameters
    ----------
    comm : Communicator
    parameters : list of arrays
        The network's parameters (their shapes and dtype lay out the buffer).
    backend : Backend
        The network's backend.
    """

    def __init__(self, comm: Communicator, parameters: list, backend: Backend):
        self.comm, self.backend, self.xp = comm, backend, backend.xp
        self.shapes = [tuple(p.shape) for p in parameters]
        self.sizes = [math.prod(s) for s in self.shapes]
        self.total = sum(self.sizes)
        self.dtype = parameters[0].dtype
        with backend.activate():
            self._quiet = self.xp.zeros(comm.size, dtype=self.dtype, device=backend.device)

    def _signals(self, signum: int | None):
        if signum is None:
            return self._quiet
        host = np.zeros(self.comm.size)
        host[self.comm.rank] = signum
        return self.backend.asarray(host, self.dtype)

    @staticmethod
    def _first_signal(values) -> tuple[int, int] | None:
        """``(rank, signum)`` of the lowest rank that received a signal, or None."""
        for rank, value in enumerate(np.asarray(values, dtype=np.float64)):
            if value:
                return rank, int(value)
        return None

    def reduce(self, loss, grads: list, signum: int | None = None
               ) -> tuple[Any, list, tuple[int, int] | None]:
        """The loss and gradients summed over all ranks, and ``(rank, signum)`` when a rank
        received a signal (passed by that rank as ``signum``), else None."""
        xp = self.xp
        with self.backend.activate():
            parts = [xp.reshape(g, (-1,)) for g in grads]
            parts.append(xp.reshape(xp.astype(loss, self.dtype), (1,)))
            parts.append(self._signals(signum))
            flat = self.comm.allreduce(xp.concat(parts))
            out, start = [], 0
            for shape, n in zip(self.shapes, self.sizes):
                out.append(xp.reshape(flat[start:start + n], shape))
                start += n
            signals = self.backend.to_numpy(flat[self.total + 1:])
            # A copy: a view would keep the whole buffer alive with the epoch's list of losses.
            loss = xp.asarray(flat[self.total], copy=True)
            return loss, out, self._first_signal(signals)

    def agree_signal(self, signum: int | None) -> tuple[int, int] | None:
        """Outside a step: ``(rank, signum)`` of a signal received by any rank, or None."""
        with self.backend.activate():
            flat = self.comm.allreduce(self.xp.concat([self._signals(signum)]))
            return self._first_signal(self.backend.to_numpy(flat))


def predict_dask(network, images):
    """Predicted classes of a Dask array of inputs, as a lazy Dask array chunked like its rows.

    See :func:`portamlp.parallel.dask_inference.predict_dask` (needs ``portamlp[dask]``).
    """
    from .dask_inference import predict_dask as predict

    return predict(network, images)


def predict_proba_dask(network, images):
    """Class scores of a Dask array of inputs, as a lazy Dask array ``(n, n_classes)``.

    See :func:`portamlp.parallel.dask_inference.predict_proba_dask` (needs ``portamlp[dask]``).
    """
    from .dask_inference import predict_proba_dask as predict_proba

    return predict_proba(network, images)
