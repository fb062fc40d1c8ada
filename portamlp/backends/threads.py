"""How many BLAS threads a CPU training run uses.

Small matrices gain nothing from a second BLAS thread (at batch 10 the thread hand-off costs more
than the arithmetic it shares), and when another process already keeps a core busy, a
multi-threaded BLAS waits on the preempted thread at every product — a run can become tens of
times slower. So by default portamlp uses one thread for small products and, for large ones, as
many threads as there are idle cores (read from ``/proc/stat`` over 50 ms on Linux). An explicit
``threads=`` wins. The limit applies only while ``train`` runs (threadpoolctl), and only to the
NumPy backend (its entry's ``compute_limits``): the caller's process-wide settings are restored
afterwards.
"""

from __future__ import annotations

import contextlib
import os
import time

__all__ = ["blas_threads", "limit_blas_threads", "SMALL_PRODUCT_FLOPS"]

#: Below this many multiply-adds in the largest matrix product of a step, use one thread.
SMALL_PRODUCT_FLOPS = 1_000_000


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _cpu_times():
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return idle, sum(values[:8])


def idle_cores(sample_seconds: float = 0.05) -> float | None:
    """Cores not used by *other* processes over a short sample (None where unknown).

    This process's own CPU time is subtracted: BLAS worker threads keep spinning for a while
    after a product, and they would otherwise look like a competing process.
    """
    try:
        idle0, total0 = _cpu_times()
        own0, wall0 = _own_cpu(), time.perf_counter()
        time.sleep(sample_seconds)
        idle1, total1 = _cpu_times()
        own1, wall1 = _own_cpu(), time.perf_counter()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    cpus = os.cpu_count() or 1
    busy = cpus * (1.0 - (idle1 - idle0) / (total1 - total0))
    own = (own1 - own0) / (wall1 - wall0)
    return min(float(cpus), max(0.0, cpus - max(0.0, busy - own)))


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def blas_threads(layers, batch_size: int, threads: int | None = None) -> int:
    """The number of BLAS threads to train ``layers`` at ``batch_size`` with (see module doc)."""
    if threads is not None:
        return threads
    largest = max(a * b for a, b in zip(layers[:-1], layers[1:]))
    cores = _cores()
    if batch_size * largest < SMALL_PRODUCT_FLOPS or cores == 1:
        return 1
    idle = idle_cores()
    if idle is None:
        return cores
    return max(1, min(cores, int(idle + 0.5)))


@contextlib.contextmanager
def limit_blas_threads(layers, batch_size: int, threads: int | None):
    """Cap BLAS threads for the duration of a NumPy training run."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional at run time: without it, BLAS keeps its own setting
        yield None
        return
    n = blas_threads(layers, batch_size, threads)
    with threadpool_limits(limits=n, user_api="blas"):
        yield n
