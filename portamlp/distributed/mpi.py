"""The MPI communicator of data-parallel training (mpi4py), and how device buffers travel.

Imported only by ``train(distributed="mpi")`` (through :func:`portamlp.distributed.communicator`):
importing it initialises MPI. Every rank of ``MPI.COMM_WORLD`` takes part.

Device buffers
--------------
A NumPy buffer goes to MPI as it is. A CuPy (or PyTorch CUDA) buffer goes to MPI directly when
the MPI library is CUDA-aware: the current stream is synchronised first, so MPI reads finished
results. Otherwise it is staged through the host: copied to a NumPy array, reduced there and
copied back (array-api-strict and PyTorch CPU buffers take that path too). Which one applies is
decided once, in this order:

1. the environment variable ``PORTAMLP_MPI_CUDA_AWARE``: ``1`` (direct) or ``0`` (staged);
2. else ``MPIX_Query_cuda_support()`` of the MPI library (MPICH and Open MPI export it);
3. else staged through the host.

``mpiexec -n 1 python -m portamlp.distributed.mpi`` prints the MPI library, the decision and its
reason; :attr:`MPICommunicator.cuda_aware` holds it in a program.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import time
from typing import Any, NoReturn

import numpy as np
from mpi4py import MPI

from ..backends import Backend, backend_of, library_for, library_of, synchronize_gpu, to_numpy
from . import GradientExchange, abort_on_failure, local_backend

__all__ = ["MPICommunicator", "world", "cuda_awareness", "describe", "ENV_CUDA_AWARE"]

#: Environment variable that forces (``1``) or refuses (``0``) direct device buffers.
ENV_CUDA_AWARE = "PORTAMLP_MPI_CUDA_AWARE"


def cuda_awareness() -> tuple[bool, str]:
    """``(cuda_aware, reason)``: whether device buffers go to MPI directly, and why."""
    forced = os.environ.get(ENV_CUDA_AWARE, "").strip()
    if forced in ("0", "1"):
        return forced == "1", f"{ENV_CUDA_AWARE}={forced}"
    if forced:
        raise ValueError(f"{ENV_CUDA_AWARE} must be 1 (the MPI library is CUDA-aware) or 0 "
                         f"(stage device buffers through the host), got {forced!r}")
    try:
        query = ctypes.CDLL(MPI.__file__).MPIX_Query_cuda_support
    except (OSError, AttributeError):
        return False, ("the MPI library has no MPIX_Query_cuda_support(): assumed not "
                       "CUDA-aware")
    query.restype, query.argtypes = ctypes.c_int, []
    answer = int(query())
    return bool(answer), f"MPIX_Query_cuda_support() returned {answer}"


def _on_gpu(array: Any) -> bool:
    entry = library_for(array)
    return entry is not None and entry.is_gpu(entry.device_of(array))


class MPICommunicator:
    """The ranks of an MPI communicator, with the interface of
    :class:`portamlp.distributed.Communicator`.

    Attributes
    ----------
    rank, size : int
        This process's rank and the number of ranks.
    local_rank, local_size : int
        The same among the ranks of this node (shared memory): each picks its GPU from
        ``local_rank``.
    cuda_aware : bool
        Device buffers go to MPI directly (else through the host); ``cuda_aware_reason`` says
        why (see the module docstring).
    seconds, calls, bytes
        Time spent in (and waiting at) :meth:`allreduce`, including any host staging; the
        number of calls and the bytes reduced: for benchmarks.
    """

    def __init__(self, comm: Any = None):
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        node = self.comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
        node.Free()
        self.cuda_aware, self.cuda_aware_reason = cuda_awareness()
        self.seconds, self.calls, self.bytes = 0.0, 0, 0
        self._backends: dict[tuple[str, str], Backend] = {}

    @property
    def is_root(self) -> bool:
        """True on rank 0, the rank that prints and writes files."""
        return self.rank == 0

    @property
    def shard(self) -> tuple[int, int]:
        """``(rank, size)``, as :meth:`DeviceDataset.batches` takes it."""
        return (self.rank, self.size)

    def _backend(self, array: Any) -> Backend:
        key = (library_of(array), str(getattr(array, "device", "")))
        if key not in self._backends:
            self._backends[key] = backend_of(array)
        return self._backends[key]

    def _collective(self, flat: Any, call) -> Any:
        """Run ``call(buffer)`` on ``flat`` directly or staged through the host."""
        if self.size == 1:
            return flat
        if isinstance(flat, np.ndarray):
            call(flat)
            return flat
        if self.cuda_aware and _on_gpu(flat):
            synchronize_gpu(flat)
            call(flat)
            return flat
        host = np.ascontiguousarray(to_numpy(flat))
        if not host.flags.writeable:
            host = host.copy()
        call(host)
        return self._backend(flat).asarray(host)

    def allreduce(self, flat: Any) -> Any:
        """Sum the 1-D array ``flat`` over the ranks (one ``Allreduce``, in place); returns the
        summed array: ``flat`` itself, or a new array after host staging."""
        def call(buf):
            self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
            self.bytes += int(buf.nbytes)

        start = time.perf_counter()
        out = self._collective(flat, call)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return out

    def broadcast(self, flat: Any) -> Any:
        """Rank 0's values of the 1-D array ``flat`` on every rank (one ``Bcast``)."""
        return self._collective(flat, lambda buf: self.comm.Bcast(buf, root=0))

    def share(self, value: Any) -> Any:
        """Rank 0's value of a picklable object, on every rank."""
        return self.comm.bcast(value, root=0)

    def agree(self, flag: bool) -> bool:
        """True on every rank when any rank passes True."""
        return bool(self.comm.allreduce(bool(flag), op=MPI.LOR))

    def guard(self, agreed: tuple[type[BaseException], ...]
              ) -> contextlib.AbstractContextManager:
        """A context in which an exception other than the ``agreed`` types aborts every rank
        (see :func:`portamlp.distributed.abort_on_failure`)."""
        return abort_on_failure(self, agreed)

    def gradient_exchange(self, parameters: list, backend: Backend) -> GradientExchange | None:
        """The per-step reduction of gradients, cost and signals (None with one rank)."""
        return GradientExchange(self, parameters, backend) if self.size > 1 else None

    def place(self, backend: Backend) -> Backend:
        """With several ranks, a CUDA backend on GPU ``local_rank`` of this node."""
        return local_backend(backend, self.local_rank) if self.size > 1 else backend

    def abort(self, message: str) -> NoReturn:
        """Print which rank failed and why to stderr, then abort every rank (exit status 1)."""
        sys.stdout.flush()
        print(f"portamlp: rank {self.rank} of {self.size} failed: {message}; aborting all "
              f"{self.size} ranks", file=sys.stderr, flush=True)
        time.sleep(0.25)  # let mpiexec forward the message before the abort kills the ranks
        self.comm.Abort(1)
        raise SystemExit(1)  # not reached: MPI_Abort does not return

    def __repr__(self) -> str:
        return f"MPICommunicator(rank={self.rank}, size={self.size})"


_WORLD: MPICommunicator | None = None


def world() -> MPICommunicator:
    """The communicator of every rank of ``MPI.COMM_WORLD`` (made once per process)."""
    global _WORLD
    if _WORLD is None:
        _WORLD = MPICommunicator()
    return _WORLD


def describe() -> str:
    """The MPI library, the ranks and how device buffers travel, in a few lines."""
    comm = world()
    library = MPI.Get_library_version().strip().splitlines()[0]
    how = ("directly to MPI (CUDA-aware)" if comm.cuda_aware
           else "through host memory (staged)")
    return (f"MPI library: {library}\n"
            f"ranks: {comm.size} (this is rank {comm.rank}; local rank {comm.local_rank} of "
            f"{comm.local_size} on this node)\n"
            f"CuPy / PyTorch CUDA buffers go {how}: {comm.cuda_aware_reason}\n"
            f"(set {ENV_CUDA_AWARE}=1 or 0 to decide it yourself)")


if __name__ == "__main__":
    if world().is_root:
        print(describe())
