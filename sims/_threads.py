"""One BLAS thread inside parallel kernels.

The Numba kernels call BLAS (``np.dot``) from inside ``prange`` loops. OpenBLAS would start
its own threads in every one of those calls, so on a machine with c cores a parallel kernel
would run about c * c threads, and the products slow down instead of speeding up. While a
parallel kernel runs, :func:`serial_blas` caps BLAS at one thread (the parallelism is then
Numba's, over independent runs or cotangent chunks); with one Numba thread it changes nothing,
so a serial call keeps BLAS's own threads.
"""

from __future__ import annotations

import contextlib
import functools

import numba


@functools.lru_cache(maxsize=1)
def _controller():
    # the BLAS that numba's np.dot calls is scipy's: make sure it is loaded before looking
    import scipy.linalg.cython_blas  # noqa: F401
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def serial_blas():
    """Context manager: BLAS limited to one thread while Numba runs more than one."""
    if numba.get_num_threads() <= 1:
        return contextlib.nullcontext()
    return _controller().limit(limits=1, user_api="blas")
