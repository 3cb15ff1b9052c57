"""The kernels' strided BLAS product (sims/_kernels.py ``_gemm``) against NumPy.

``_gemm(ta, tb, alpha, A, B, beta, C)`` sets C = alpha op(A) op(B) + beta C on row-major
views with any row stride. Checked on blocks cut out of larger arrays (the way the kernels
call it), both transposition flags, one-row and empty operands, float64 and float32.
Tolerance: the same products summed in another order, k <= 40 terms of size ~1: a few ulps
of the result (float64 1e-13, float32 1e-5 relative to the largest entry).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from numba import njit

from overmix.sims._kernels import _gemm

TOL = {np.float64: 1e-13, np.float32: 1e-5}


@njit(cache=False)
def _call(ta, tb, alpha, A, B, beta, C, r0, r1, c0, c1):
    # C's block [r0:r1, c0:c1] is the output: a strided view, like dVc[j0:j1] in the kernels
    return _gemm(ta, tb, alpha, A, B, beta, C[r0:r1, c0:c1])


def _block(rng, shape, dtype, pad=(3, 5)):
    """A view of shape ``shape`` inside a larger array (row stride > width)."""
    big = rng.standard_normal((shape[0] + pad[0], shape[1] + pad[1])).astype(dtype)
    return big[1:1 + shape[0], 2:2 + shape[1]]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("ta,tb", list(itertools.product([False, True], repeat=2)))
@pytest.mark.parametrize("m,k,n", [(7, 5, 9), (1, 40, 6), (6, 1, 1), (1, 1, 1), (33, 17, 2)])
def test_gemm_matches_numpy_on_strided_views(dtype, ta, tb, m, k, n):
    rng = np.random.default_rng(m * 100 + k * 10 + n)
    A = _block(rng, (k, m) if ta else (m, k), dtype)
    B = _block(rng, (n, k) if tb else (k, n), dtype)
    C = rng.standard_normal((m + 4, n + 3)).astype(dtype)
    want = C.copy()
    opA, opB = (A.T if ta else A), (B.T if tb else B)
    want[2:2 + m, 1:1 + n] = 0.5 * (opA @ opB) + 2.0 * want[2:2 + m, 1:1 + n]
    _call(ta, tb, 0.5, A, B, 2.0, C, 2, 2 + m, 1, 1 + n)
    assert C.dtype == dtype
    scale = np.abs(want).max()
    assert np.abs(C - want).max() <= TOL[dtype] * scale
    # outside the block nothing moved
    outside = np.ones(C.shape, bool)
    outside[2:2 + m, 1:1 + n] = False
    assert np.array_equal(C[outside], want[outside])


def test_gemm_with_nothing_to_sum_scales_c_by_beta():
    A = np.zeros((3, 0))
    B = np.zeros((0, 4))
    C = np.arange(20.0).reshape(4, 5)
    _call(False, False, 1.0, A, B, 0.5, C, 0, 3, 0, 4)
    want = np.arange(20.0).reshape(4, 5)
    want[:3, :4] *= 0.5
    assert np.array_equal(C, want)
    C2 = C.copy()
    _call(False, False, 1.0, np.zeros((0, 2)), np.zeros((2, 4)), 0.0, C2, 0, 0, 0, 4)
    assert np.array_equal(C2, C)  # an empty output block: untouched
