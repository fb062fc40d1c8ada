"""Training one network on several processes: the communicator the trainer talks to.

``train(..., distributed="mpi")`` under ``mpiexec -n N`` trains one network on N processes
("ranks") by synchronous data parallelism: every rank computes the gradients of its share of each
global mini-batch, one allreduce sums them, every rank applies the same update. The trainer sees
the ranks only through a :class:`Communicator`; :data:`SINGLE_PROCESS` is the one-rank
implementation (every operation trivial), :class:`portamlp.distributed.mpi.MPICommunicator` the
MPI one (mpi4py), imported only when asked for.

This package also holds what an implementation with several ranks shares:
:class:`GradientExchange`, which packs each step's gradients, cost and one signal slot per rank
into one flat buffer and sums it with a single ``allreduce``; :func:`abort_on_failure`, the
guard that stops every rank when one fails alone; and :func:`local_backend`, which gives each
rank of a node its own GPU.

Inference on Dask arrays is here too: :func:`predict_dask` and :func:`predict_proba_dask` turn a
Dask array of inputs into a lazy Dask array of predictions, one task per chunk of rows
(:mod:`portamlp.distributed.dask_inference`, imported on first use; ``pip install
"portamlp[dask]"``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any, NoReturn, Protocol

import numpy as np

from ..backends import Backend, get_backend

__all__ = ["Communicator", "SingleProcess", "SINGLE_PROCESS", "COMMUNICATORS", "communicator",
           "GradientExchange", "abort_on_failure", "local_backend", "predict_dask",
           "predict_proba_dask"]


def predict_dask(network, images):
    """Predicted classes of a Dask array of inputs, as a lazy Dask array chunked like its rows.

    See :func:`portamlp.distributed.dask_inference.predict_dask` (needs ``portamlp[dask]``).
    """
    from .dask_inference import predict_dask as predict

    return predict(network, images)


def predict_proba_dask(network, images):
    """Class scores of a Dask array of inputs, as a lazy Dask array ``(n, n_classes)``.

    See :func:`portamlp.distributed.dask_inference.predict_proba_dask` (needs
    ``portamlp[dask]``).
    """
    from .dask_inference import predict_proba_dask as predict_proba

    return predict_proba(network, images)


class Communicator(Protocol):
    """What the trainer needs from the processes ("ranks") that train one network together.

    ``rank``, ``size``, ``local_rank`` and ``local_size`` place this process among all ranks
    and among those of its node; ``is_root`` is rank 0 (the one that writes); ``shard`` is
    ``(rank, size)``. ``share(value)`` gives every rank rank 0's picklable value; ``agree(flag)``
    is True on every rank when any rank passes True; ``allreduce(flat)`` sums a 1-D array over
    the ranks (returning the sums; in place where the memory allows) and ``broadcast(flat)``
    gives every rank rank 0's values; ``abort(message)`` stops every rank, naming this one.
    ``guard(agreed)`` is a context in which an exception other than the ``agreed`` types (which
    every rank raises together) aborts all ranks; ``gradient_exchange(parameters, backend)``
    sums each step's gradients, cost and signals in one allreduce (None for one rank);
    ``place(backend)`` moves a GPU backend to this rank's GPU. :class:`SingleProcess` is the
    one-rank implementation; :mod:`portamlp.distributed.mpi` has the MPI one.
    """

    rank: int
    size: int
    local_rank: int
    local_size: int

    @property
    def is_root(self) -> bool: ...

    @property
    def shard(self) -> tuple[int, int]: ...

    def allreduce(self, flat: Any) -> Any: ...

    def broadcast(self, flat: Any) -> Any: ...

    def share(self, value: Any) -> Any: ...

    def agree(self, flag: bool) -> bool: ...

    def abort(self, message: str) -> NoReturn: ...

    def guard(self, agreed: tuple[type[BaseException], ...]
              ) -> contextlib.AbstractContextManager: ...

    def gradient_exchange(self, parameters: list, backend: Backend) -> Any: ...

    def place(self, backend: Backend) -> Backend: ...


class SingleProcess:
    """The :class:`Communicator` of an ordinary run: one rank; every operation is trivial."""

    rank, size, local_rank, local_size = 0, 1, 0, 1
    is_root = True
    shard = (0, 1)

    def allreduce(self, flat: Any) -> Any:
        return flat

    def broadcast(self, flat: Any) -> Any:
        return flat

    def share(self, value: Any) -> Any:
        return value

    def agree(self, flag: bool) -> bool:
        return bool(flag)

    def abort(self, message: str) -> NoReturn:
        raise RuntimeError(message)

    def guard(self, agreed: tuple[type[BaseException], ...]
              ) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def gradient_exchange(self, parameters: list, backend: Backend) -> None:
        return None

    def place(self, backend: Backend) -> Backend:
        return backend

    def __repr__(self) -> str:
        return "SingleProcess()"


#: The communicator of ``distributed=None``.
SINGLE_PROCESS = SingleProcess()
#: The values of ``train(distributed=...)`` besides None.
COMMUNICATORS = ("mpi",)
_INSTALL = ('pip install "portamlp[mpi]" (the mpich and mpi4py wheels), then launch with '
            'mpiexec -n N')


def communicator(distributed: str | None) -> Communicator:
    """The communicator of ``train(distributed=...)``: :data:`SINGLE_PROCESS` for None; for
    ``"mpi"``, every rank of ``mpiexec -n N`` (:mod:`portamlp.distributed.mpi`, imported now)."""
    if distributed is None:
        return SINGLE_PROCESS
    if distributed not in COMMUNICATORS:
        raise ValueError(f"distributed must be None (one process) or one of "
                         f"{list(COMMUNICATORS)}, got {distributed!r}; 'mpi' trains on the "
                         "ranks of mpiexec -n N")
    try:
        from . import mpi
    except ImportError as exc:
        raise ImportError(f"distributed={distributed!r} needs what is missing here ({exc}): "
                          f"{_INSTALL}") from exc
    return mpi.world()


def local_backend(backend: Backend, local_rank: int) -> Backend:
    """``backend`` moved to GPU ``local_rank % n_gpus`` when it runs on a CUDA device (CuPy,
    or PyTorch on CUDA); any other backend unchanged. Each rank of a node then uses its own
    GPU."""
    library = backend.library
    if not library.is_gpu(backend.device):
        return backend
    return get_backend(library, local_rank % library.gpu_count())


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
    """Sum each step's gradients and cost over the ranks with one allreduce of one buffer.

    The buffer is ``[grad_0.ravel(), grad_1.ravel(), ..., cost, signal_0, ..., signal_{N-1}]``:
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

    def reduce(self, cost, grads: list, signum: int | None = None
               ) -> tuple[Any, list, tuple[int, int] | None]:
        """The cost and gradients summed over all ranks, and ``(rank, signum)`` when a rank
        received a signal (passed by that rank as ``signum``), else None."""
        xp = self.xp
        with self.backend.activate():
            parts = [xp.reshape(g, (-1,)) for g in grads]
            parts.append(xp.reshape(xp.astype(cost, self.dtype), (1,)))
            parts.append(self._signals(signum))
            flat = self.comm.allreduce(xp.concat(parts))
            out, start = [], 0
            for shape, n in zip(self.shapes, self.sizes):
                out.append(xp.reshape(flat[start:start + n], shape))
                start += n
            signals = self.backend.to_numpy(flat[self.total + 1:])
            # A copy: a view would keep the whole buffer alive with the epoch's list of costs.
            cost = xp.asarray(flat[self.total], copy=True)
            return cost, out, self._first_signal(signals)

    def agree_signal(self, signum: int | None) -> tuple[int, int] | None:
        """Outside a step: ``(rank, signum)`` of a signal received by any rank, or None."""
        with self.backend.activate():
            flat = self.comm.allreduce(self.xp.concat([self._signals(signum)]))
            return self._first_signal(self.backend.to_numpy(flat))
