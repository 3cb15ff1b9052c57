"""Parallel runs of the Numba kernels on Python threads, with one BLAS thread each.

The kernels' entry points over many independent items (runs, sequences, cotangent chunks)
take an index range [start, stop) and release the GIL (``nogil=True``), so
:func:`run_split` can hand contiguous ranges to a pool of threads. Each item is computed the
same way whichever range it falls in, so results do not depend on the number of threads.

The kernels call BLAS (``np.dot``) on matrices of a few hundred rows. OpenBLAS would start
its own threads in every call: with c kernel threads that makes about c * c threads, and even
alone its threads cost more than they bring on such products (measured on 2 cores: the
large benchmark's forward pass took 1.48 s with two BLAS threads and 0.91 s with one). So
while a kernel runs, BLAS is capped at one thread (:func:`serial_blas`) and overmix's
parallelism is its own.

The number of threads is Numba's (``NUMBA_NUM_THREADS``, ``numba.set_num_threads``), so one
setting controls all of overmix's parallelism.
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor

import numba


def n_threads() -> int:
    """Threads overmix runs its kernels on (Numba's setting)."""
    return max(1, int(numba.get_num_threads()))


@functools.lru_cache(maxsize=1)
def _controller():
    # the BLAS that numba's np.dot calls is scipy's: make sure it is loaded before looking
    import scipy.linalg.cython_blas  # noqa: F401
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def serial_blas():
    """Context manager: the BLAS that the kernels call limited to one thread."""
    return _controller().limit(limits=1, user_api="blas")


@functools.lru_cache(maxsize=None)
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="overmix")


def ranges(total: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous, nearly equal ranges covering range(total) (empty ones dropped)."""
    parts = max(1, min(parts, total))
    q, r = divmod(total, parts)
    out, start = [], 0
    for k in range(parts):
        stop = start + q + (1 if k < r else 0)
        out.append((start, stop))
        start = stop
    return out


def run_split(kernel, total: int, *args) -> None:
    """Call ``kernel(*args, start, stop)`` on ranges covering range(total), in parallel.

    With one thread (or one item) the kernel runs once in the calling thread. A kernel's
    exception is re-raised here.
    """
    parts = min(n_threads(), total)
    with serial_blas():
        if parts <= 1:
            kernel(*args, 0, total)
            return
        futures = [_pool(parts).submit(kernel, *args, a, b) for a, b in ranges(total, parts)]
        for fut in futures:
            fut.result()
