"""dQ from M tables shared by every chunk of a Jacobian's cotangents (sims/_kernels.py).

With B cotangents and B > d_head, the query cotangent dQr_i = s (M_i dO_i - r_i (A Kr)_i)
reads M_i = sum_j A_ij Kr_j Vc_j^T from tables computed once per reverse pass
(``m_tables``), instead of forming dS Kr per cotangent. These tests reach what the
hypothesis cases cannot (their d_model <= 8 never makes more than one chunk of 16):
several chunks, d_head above the chunk size (so that without tables dQ goes through dS),
and tables whose unused rows hold NaN.
"""

from __future__ import annotations

import numpy as np
import pytest

import oracles as O
from overmix import sims
from overmix.sims import _kernels
from overmix.sims.jacobian import _m_tables
from overmix.sims.positions import rope_tables
from overmix.sims.stack import run_forward

JAC_RTOL = 1e-9  # as tests/sims/test_jacobian.py (issue 8)
# tables against dS Kr: the same sums in another order, in a well-conditioned case;
# float64 rounding of a depth-2 stack is ~1e-15 relative, 1e-12 leaves room and still
# catches any wrong row or factor (those are O(1))
SAME_MATH_RTOL = 1e-12


def _case(mask, d=40, H=4, n=14, L=2, seed=3):
    cfg = sims.StackConfig(n_layers=L, d_model=d, n_heads=H, pos="rope", mask=mask,
                           sink_value_scale=0.5, sink_logit=0.3)
    p = sims.init_params(cfg, seed)
    X = np.random.default_rng(seed).standard_normal((n, d))
    return cfg, p, X


def _chunks(cfg, p, X, T):
    """dX of the last-token Jacobian's unit cotangents, every chunk, with tables T."""
    pp, s = run_forward(cfg, p, X)
    n, d = X.shape
    C = np.zeros((n, d, d))
    C[n - 1] = np.eye(d)
    cos_t, sin_t = rope_tables(cfg, n)
    iflags, fvals = cfg.kernel_flags()
    dX = np.zeros_like(C)
    _kernels.backward_chunks(*pp.arrays(), cos_t, sin_t, iflags, fvals, *s.arrays(), C, False,
                             T, dX, 0, int(_kernels.n_chunks(d)))
    return dX, s, C


@pytest.mark.parametrize("mask", ["causal", ("window", 4), "full"])
def test_jacobian_with_tables_over_several_chunks_matches_oracle(mask):
    cfg, p, X = _case(mask)  # d = 40: chunks of 16, 16, 8; d_head 10 < 40: tables
    assert _kernels.n_chunks(cfg.d_model) == 3
    assert _kernels.use_m_tables(cfg.d_model, X.shape[0], cfg.n_layers, cfg.n_heads,
                                 cfg.d_model // cfg.n_heads, True, 8)
    assert O.well_conditioned(cfg, p, X)
    J = sims.last_token_jacobian(cfg, p, X)
    Jref = O.cs_jacobian_last(lambda Z: O.ref_forward(cfg, p, Z)[2][-1], X)
    assert O.rel_err(J, Jref) <= JAC_RTOL


@pytest.mark.parametrize("mask", ["causal", ("window", 3)])
def test_tables_give_what_ds_k_gives(mask):
    # d_head 24 > 16 = a chunk's cotangents: without tables dQ = dS Kr; with them, via M
    cfg, p, X = _case(mask, d=48, H=2, n=12)
    none = np.zeros((1, 1, 1, 1))
    ref, s, C = _chunks(cfg, p, X, none)
    iflags, fvals = cfg.kernel_flags()
    T = _m_tables(s, C, False, iflags, fvals)
    assert T.shape == (cfg.n_layers, cfg.n_heads, X.shape[0], 24 * 24 + 24)
    got, _, _ = _chunks(cfg, p, X, T)
    assert not np.array_equal(got, ref)  # really another path
    assert O.rel_err(got, ref) <= SAME_MATH_RTOL


def test_rows_outside_the_query_spans_are_never_read():
    # d_head 10 < 16 = a chunk: without tables each chunk computes the same M rows itself
    # (same blocks, same products; not always the same bits: OpenBLAS's one-row products
    # round according to the alignment of their operands). A NaN read would spread.
    cfg, p, X = _case(("window", 3), n=16, L=3)
    n, L, H, dk = X.shape[0], cfg.n_layers, cfg.n_heads, cfg.d_model // cfg.n_heads
    ref, s, C = _chunks(cfg, p, X, np.zeros((1, 1, 1, 1)))
    iflags, fvals = cfg.kernel_flags()
    spans = _kernels.query_spans(C, L, iflags[3], iflags[4])
    assert spans.tolist() == [[11, 15], [13, 15], [15, 15]]
    T = np.full((L, H, n, dk * dk + dk), np.nan)
    _kernels.m_tables(s.Kr, s.Val, s.A, iflags, fvals, spans, T, 0, L * H)
    for l in range(L):
        lo, hi = spans[l]
        assert np.isnan(T[l, :, :lo]).all() and np.isnan(T[l, :, hi + 1:]).all()
        assert np.isfinite(T[l, :, lo:hi + 1]).all()
    got, _, _ = _chunks(cfg, p, X, T)
    assert np.isfinite(got).all()
    assert O.rel_err(got, ref) <= SAME_MATH_RTOL


def test_query_spans_follow_the_mask_layer_by_layer():
    n, d, L = 20, 3, 3
    C = np.zeros((n, 2, d))
    C[19, 1, 0] = 1.0
    causal, full, window = 0, 1, 2
    assert _kernels.query_spans(C, L, window, 4).tolist() == [[13, 19], [16, 19], [19, 19]]
    assert _kernels.query_spans(C, L, causal, 0).tolist() == [[0, 19], [0, 19], [19, 19]]
    C2 = np.zeros((n, 2, d))
    C2[5, 0, 2] = 1.0
    C2[7, 1, 1] = -2.0
    # full attention: every key, and the rows that carry a cotangent stay in the span
    assert _kernels.query_spans(C2, L, full, 0).tolist() == [[0, 19], [0, 19], [5, 7]]
    assert _kernels.query_spans(np.zeros((n, 2, d)), L, causal, 0).tolist() == [[n, -1]] * L


def test_tables_are_used_only_where_they_pay_and_fit():
    n, L, H, dk = 1024, 12, 8, 8
    assert _kernels.use_m_tables(64, n, L, H, dk, True, 8)       # benchmark's large size
    assert not _kernels.use_m_tables(64, n, L, H, dk, False, 8)  # frozen or prescribed
    assert not _kernels.use_m_tables(dk, n, L, H, dk, True, 8)   # B <= d_head: dS Kr is cheaper
    # L H n (dk^2 + dk) 8 bytes = 12 * 8 * 4096 * 4160 * 8 = 13 GB > M_TABLE_BYTES
    assert not _kernels.use_m_tables(128, 4096, L, H, 64, True, 8)
    budget = _kernels.M_TABLE_BYTES
    rows = budget // (L * H * (dk * dk + dk) * 8)
    assert _kernels.use_m_tables(64, rows, L, H, dk, True, 8)
    assert not _kernels.use_m_tables(64, rows + 1, L, H, dk, True, 8)
