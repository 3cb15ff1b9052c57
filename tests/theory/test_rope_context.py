"""Tests of overmix.theory.rope_context: THEORY.md C11-C15, without the simulations.

Oracles are THEORY.md's plain-NumPy lines, written here, importing nothing from overmix.
Tolerances: as in test_rope.py, a logit term evaluated by two formulas differs by at most
16 u (1 + |r|) |s| |q| |k| per pair (u = 2^-53: one rounding of the angle r theta).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, example, given, target
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from overmix.theory import rope_context as C
from oracles import rope_rotate_at as rope_oracle, rope_thetas as th_oracle

U = 2.0**-53


d_heads = st.integers(1, 16).map(lambda h: 2 * h)
bases = st.floats(1.5, 1e6)
fractions = st.one_of(st.sampled_from([0.0, 0.25, 0.5, 1.0]), st.floats(0.0, 1.0))


def vectors(dk, lo=-10.0, hi=10.0):
    return hnp.arrays(np.float64, dk, elements=st.floats(lo, hi))


@st.composite
def qk_cases(draw):
    dk = draw(d_heads)
    return (dk, draw(vectors(dk)), draw(vectors(dk)), draw(bases), draw(fractions),
            draw(st.floats(-2, 2).filter(lambda s: abs(s) >= 1e-3)))


# --------------------------------------------------------------------------- C11
@given(case=qk_cases(), r=st.floats(0, 1e5))
def test_channel_drift_never_exceeds_min_2_rtheta(case, r):
    dk, q, k, base, p, s = case
    th = th_oracle(dk, base, p)
    q0, q1, k0, k1 = q[0::2], q[1::2], k[0::2], k[1::2]

    def c(x):                                                   # THEORY.md C11 oracle
        return s * ((q0 * k0 + q1 * k1) * np.cos(x * th) + (q0 * k1 - q1 * k0) * np.sin(x * th))

    drift = np.abs(c(r) - c(0.0))
    amp = abs(s) * np.hypot(q0, q1) * np.hypot(k0, k1)
    bound = amp * np.minimum(2, r * th)
    np.testing.assert_allclose(C.channel_drift_bound(q, k, r, th, scale=s), bound, rtol=1e-14, atol=0)
    np.testing.assert_allclose(C.channel_drift(q, k, r, th, scale=s), drift, rtol=0,
                               atol=16 * U * (1 + r) * amp.max() + 1e-300)
    slack = 16 * U * (1 + r) * amp
    pos = bound > 0
    if pos.any():
        target(float((drift[pos] / bound[pos]).max()), label="drift / bound")
    assert (drift <= bound + slack).all()


def test_stable_pair_count_matches_a_direct_count_on_a_grid():
    mismatched_formula = []
    for dk in (2, 4, 8, 16, 32, 64, 128, 256):
        for base in (2.0, 10.0, 500.0, 1e4, 5e5, 1e6, 1e8):
            th_full = base ** (-2 * np.arange(dk // 2) / dk)
            for N in (1, 2, 10, 100, 1000, 4096, 8192, 131072, 10**6):
                for tau in (0.1, 0.5, 1.0, math.pi / 2, math.pi):
                    count = int((N * th_full <= tau).sum())       # THEORY.md C11 oracle
                    printed = max(0, dk // 2 - math.ceil((dk / 2) * math.log(N / tau) / math.log(base)))
                    assert C.stable_pair_count(dk, base, N, tau=tau) == count
                    if printed != count:
                        mismatched_formula.append((dk, base, N, tau))
    # The printed closed form is exact except when N < tau, where it exceeds d_k/2 (it
    # counts pairs m < 0); the function clips. A finding about the statement.
    assert mismatched_formula and all(N < tau for _, _, N, tau in mismatched_formula)


@pytest.mark.parametrize("dk, base, N, pairs", [(128, 1e4, 8192, 4), (128, 1e4, 131072, 0),
                                                (128, 5e5, 131072, 8), (256, 1e4, 8192, 9)])
def test_stable_pair_count_table_c11(dk, base, N, pairs):
    th_full = base ** (-2 * np.arange(dk // 2) / dk)
    assert int((N * th_full <= np.pi / 2).sum()) == pairs
    assert C.stable_pair_count(dk, base, N) == pairs
    if dk == 256:
        assert np.flatnonzero(N * th_full <= np.pi / 2)[0] == 119


def test_p_rope_position_free_pairs_always_count():
    # d_k = 128, base 1e4, N = 131072: no rotating pair is stable; p = 0.5 adds 32 free pairs.
    assert C.stable_pair_count(128, 1e4, 131072, fraction=0.5) == 32
    assert C.stable_pair_count(128, 1e4, 8192, fraction=1.0) == 4


def test_gemma_and_rotation_numbers_c11():
    th256 = th_oracle(256)
    assert round(th256[118] * 1e4, 2) == 2.05        # RRW's g_119 (1-based) = 2.05e-4
    assert round(8000 * th256[118], 2) == 1.64
    assert round(128000 / (2 * np.pi * 1e4), 2) == 2.04
    assert round(128000 * th_oracle(128)[-1] / (2 * np.pi), 2) == 2.35


# --------------------------------------------------------------------------- C12
def feasible_oracle(b, L):
    return np.cos(np.outer(np.arange(L + 1), b ** (-2 * np.arange(64) / 128))).sum(1).min() >= 0


@pytest.mark.parametrize("base, L, sign", [(1.2e4, 2048, -1), (1.6e4, 2048, +1), (8.4e4, 8192, +1),
                                           (1e5, 8192, -1), (2e5, 8192, +1)])
def test_men_feasibility_signs_c12(base, L, sign):
    assert feasible_oracle(base, L) == (sign > 0)
    assert C.men_feasible(base, L) == (sign > 0)


def test_men_feasible_set_is_not_an_interval_c12():
    mins = [C.men_min_cosine_sum(b, 8192) for b in (8.4e4, 1e5, 2e5)]
    assert [round(m, 2) for m in mins] == [0.92, -0.79, 2.48]
    want = [np.cos(np.outer(np.arange(8193), b ** (-2 * np.arange(64) / 128))).sum(1).min()
            for b in (8.4e4, 1e5, 2e5)]
    np.testing.assert_allclose(mins, want, rtol=0, atol=1e-10)


def test_men_16k_table_entry_is_infeasible_c12():
    m = np.cos(np.outer(np.arange(16385), 3.1e5 ** (-2 * np.arange(64) / 128))).sum(1).min()
    assert round(m, 2) == -1.86
    assert not C.men_feasible(3.1e5, 16384)
    assert C.MEN_TABLE2_BASE[16384] == 3.1e5


def _oracle_scan(L, grid):
    first = next((b for b in grid if feasible_oracle(b, L)), None)
    start = None
    for b in grid[::-1]:
        if not feasible_oracle(b, L):
            break
        start = b
    return first, start


@pytest.mark.parametrize("L", [1024, 2048])
def test_men_critical_base_reports_both_numbers_on_the_grid(L):
    grid = np.logspace(3, 6, 3 * 40 + 1)
    res = C.men_critical_base(L, grid=grid)
    first, start = _oracle_scan(L, grid)
    assert res.first_feasible == first and res.all_feasible_from == start
    assert first <= start


@pytest.mark.parametrize("L, first, start", [
    (1024, 5.62e3, 6.03e3), (2048, 1.38e4, 2.29e4),
    pytest.param(4096, 2.88e4, 5.62e4, marks=pytest.mark.slow),
    pytest.param(8192, 9.12e4, 1.82e5, marks=pytest.mark.slow)])
def test_men_critical_base_default_grid_regression_c12(L, first, start):
    # Our reproduction on the default grid (100 per decade on [1e2, 1e10]); Table 2 of MEN is
    # compared in the ratio report, never asserted as a fit. The first feasible base is
    # checked against the oracle: feasible there, infeasible at every grid point below.
    grid = np.logspace(2, 10, 801)
    np.testing.assert_array_equal(C.men_base_grid(), grid)
    res = C.men_critical_base(L)
    assert f"{res.first_feasible:.3g}" == f"{first:.3g}"
    assert f"{res.all_feasible_from:.3g}" == f"{start:.3g}"
    k = int(np.searchsorted(grid, res.first_feasible))
    assert feasible_oracle(grid[k], L)
    below = grid[:k][grid[:k] > 0.3 * grid[k]]          # the oracle over the nearest 50 below
    assert not any(feasible_oracle(b, L) for b in below)
    kk = int(np.searchsorted(grid, res.all_feasible_from))
    assert not feasible_oracle(grid[kk - 1], L) and feasible_oracle(grid[kk], L)


@pytest.mark.parametrize("r", [0, 3, 50, 1000])
def test_men_theorem1_gap_is_2sigma2_B(r):
    # q: i.i.d. components N(mu, sigma^2); k an independent copy; k* = q + eps.
    rng = np.random.default_rng(40 + r)
    dk, n, mu, sigma = 16, 200_000, 0.7, 1.3
    th = th_oracle(dk)
    q = mu + sigma * rng.standard_normal((n, dk))
    k = mu + sigma * rng.standard_normal((n, dk))
    ks = q + 0.5 * rng.standard_normal((n, dk))
    Rq = rope_oracle(q, np.full(n, float(r)), th)
    diff = (Rq * ks).sum(1) - (Rq * k).sum(1)
    want = 2 * sigma**2 * np.cos(r * th).sum()
    assert abs(diff.mean() - want) < 3 * diff.std() / np.sqrt(n)
    assert C.men_similarity_gap(r, th, sigma=sigma) == pytest.approx(want, rel=1e-12, abs=1e-12)
    sig = np.linspace(0.5, 2, dk)
    want_pc = ((sig[0::2] ** 2 + sig[1::2] ** 2) * np.cos(r * th)).sum()
    assert C.men_similarity_gap(r, th, sigma=sig) == pytest.approx(want_pc, rel=1e-12, abs=1e-12)


# --------------------------------------------------------------------------- C13
@given(dk=d_heads, base=bases, s=st.floats(1, 64), L=st.floats(16, 1e6))
@example(dk=128, base=1e4, s=8.0, L=4096.0)
@example(dk=2, base=1e4, s=4.0, L=4096.0)
def test_extension_maps_match_their_definitions(dk, base, s, L):
    th = th_oracle(dk, base)
    m = np.arange(dk // 2)
    pi = C.extend_frequencies(th, method="pi", scale=s)
    np.testing.assert_allclose(pi, th / s, rtol=1e-15)
    ntk = C.extend_frequencies(th, method="ntk", scale=s)
    if dk > 2:
        np.testing.assert_allclose(ntk, th * s ** (-2 * m / (dk - 2)), rtol=1e-13)   # oracle
        # base' = base s^(d/(d-2)) gives the same map.
        np.testing.assert_allclose(ntk, (base * s ** (dk / (dk - 2))) ** (-2 * m / dk), rtol=1e-12)
        assert ntk[-1] == pytest.approx(th[-1] / s, rel=1e-12)
    assert ntk[0] == th[0] == 1.0
    g = np.clip((L * th / (2 * np.pi) - 1) / 31, 0, 1)
    yarn = C.extend_frequencies(th, method="yarn", scale=s, original_context=L)
    np.testing.assert_allclose(yarn, (1 - g) * th / s + g * th, rtol=1e-14)
    np.testing.assert_allclose(C.yarn_ramp(th, L), g, rtol=0, atol=1e-15)


@given(dk=d_heads, base=bases, L=st.floats(16, 1e6), p=fractions)
def test_unit_scale_is_the_identity_for_every_method(dk, base, L, p):
    th = th_oracle(dk, base, p)
    for method in ("pi", "ntk", "yarn"):
        np.testing.assert_array_equal(C.extend_frequencies(th, method=method, scale=1.0,
                                                           original_context=L), th)
    assert C.yarn_attention_temperature(1.0) == 1.0


@given(n=st.integers(1, 30), s=st.floats(1, 16), dk=d_heads, base=bases)
def test_pi_rotation_equals_rotation_at_positions_over_s(n, s, dk, base):
    th = th_oracle(dk, base)
    X = np.cos(np.arange(n * dk, dtype=float)).reshape(n, dk)
    a = rope_oracle(X, np.arange(n) / s, th)
    b = rope_oracle(X, np.arange(n), C.extend_frequencies(th, method="pi", scale=s))
    np.testing.assert_allclose(a, b, rtol=0, atol=16 * U * n * dk)


def test_yarn_ramp_counts_c13():
    th = th_oracle(128)
    g = np.clip((4096 * th / (2 * np.pi) - 1) / 31, 0, 1)
    counts = (int((g == 1).sum()), int((g == 0).sum()), int(((g > 0) & (g < 1)).sum()))
    assert counts == (21, 18, 25)
    gg = C.yarn_ramp(th, 4096)
    assert (int((gg == 1).sum()), int((gg == 0).sum()), int(((gg > 0) & (gg < 1)).sum())) == counts
    ext = C.extend_frequencies(th, method="yarn", scale=8, original_context=4096)
    assert int((ext == th).sum()) == 21 and int(np.isclose(ext, th / 8, rtol=1e-15).sum()) == 18


@pytest.mark.parametrize("dk, base, L, s", [(128, 1e4, 4096, 8.0), (64, 5e5, 2048, 4.0), (128, 1e6, 8192, 16.0)])
def test_yarn_index_ramp_is_the_reference_codes(dk, base, L, s):
    # Reference-code logic, written from its description: a linear ramp in the pair index
    # between floor(m(beta)) and ceil(m(alpha)), m(rho) = d ln(L / (2 pi rho)) / (2 ln base).
    th = th_oracle(dk, base)

    def dim(rho):
        return dk * math.log(L / (rho * 2 * math.pi)) / (2 * math.log(base))

    lo, hi = max(math.floor(dim(32)), 0), min(math.ceil(dim(1)), dk - 1)
    mask = 1 - np.clip((np.arange(dk // 2) - lo) / (hi - lo), 0, 1)
    want = th / s * (1 - mask) + th * mask
    got = C.extend_frequencies(th, method="yarn", scale=s, original_context=L, ramp="index")
    np.testing.assert_allclose(got, want, rtol=1e-13)
    # The two ramps differ: the paper's is linear in r_m, the code's in m.
    assert not np.allclose(C.yarn_ramp(th, L), C.yarn_ramp(th, L, ramp="index"))


@given(s=st.floats(1, 1e3))
def test_yarn_temperature_is_0p1_ln_s_plus_1_squared(s):
    t = C.yarn_attention_temperature(s)
    assert 1 / t == pytest.approx((0.1 * np.log(s) + 1) ** 2, rel=1e-14)
    assert C.dynamic_scale(int(4096 * s), 4096) == pytest.approx(max(1.0, int(4096 * s) / 4096))


# --------------------------------------------------------------------------- C14
@given(dk=d_heads, base=bases, x=st.floats(-1e3, 1e3),
       h=st.data())
@example(dk=8, base=1e4, x=0.5, h=None)
def test_corrected_interpolation_bound_holds(dk, base, x, h):
    th = th_oracle(dk, base)
    if h is None:
        hv = np.ones(dk // 2, dtype=complex)
    else:
        re = h.draw(hnp.arrays(np.float64, dk // 2, elements=st.floats(-5, 5)))
        im = h.draw(hnp.arrays(np.float64, dk // 2, elements=st.floats(-5, 5)))
        hv = re + 1j * im
    x1 = np.floor(x)

    def a(t):
        return np.real((hv * np.exp(1j * t * th)).sum())

    lam = x - x1
    gap = abs(a(x) - ((1 - lam) * a(x1) + lam * a(x1 + 1)))           # THEORY.md C14 oracle
    bound = np.abs(hv).max() * (th**2).sum() * lam * (1 - lam) / 2
    assert C.interpolation_gap(hv, x, th) == pytest.approx(gap, rel=1e-9, abs=1e-12 * (1 + abs(x)))
    assert C.interpolation_bound(hv, x, th) == pytest.approx(bound, rel=1e-14, abs=1e-300)
    if bound > 0:
        target(gap / bound, label="gap / corrected bound")
    # Slack: the three evaluations of a round their angles (u |x| theta each, times sum|h|).
    assert gap <= bound + 64 * U * (1 + abs(x)) * np.abs(hv).sum()


def test_pinned_counterexample_violates_the_printed_bound_c14():
    th = th_oracle(8)
    h = np.ones(4)

    def a(t):
        return np.real((h * np.exp(1j * t * th)).sum())

    gap = abs(a(0.5) - (a(0.0) + a(1.0)) / 2)
    printed = 8 * 1 * 0.25 / (8 * np.log(1e4))
    corrected = (th**2).sum() * 0.25 / 2
    assert (round(gap, 4), round(printed, 4), round(corrected, 4)) == (0.1087, 0.0271, 0.1263)
    ce = C.pi_bound_counterexample()
    assert ce.gap == pytest.approx(gap, rel=1e-12)
    assert ce.printed_bound == pytest.approx(printed, rel=1e-12)
    assert ce.corrected_bound == pytest.approx(corrected, rel=1e-12)
    assert ce.printed_bound < ce.gap <= ce.corrected_bound
    assert C.pi_printed_interpolation_bound(h, 0.5, 8, 1e4) == pytest.approx(printed, rel=1e-14)


@pytest.mark.parametrize("dk, factor", [(128, 1.15), (8, 4.65)])
def test_printed_constant_is_too_small_c14(dk, factor):
    th = th_oracle(dk)
    ratio = ((th**2).sum() / 2) / (dk / (8 * np.log(1e4)))
    assert round(ratio, 2) == factor


@given(dk=st.integers(1, 200).map(lambda h: 2 * h), base=st.floats(1.0001, 1e8))
def test_sum_of_squared_frequencies_closed_form(dk, base):
    th = base ** (-2 * np.arange(dk // 2) / dk)
    closed = C.sum_squared_frequencies(dk, base)
    assert closed == pytest.approx((th**2).sum(), rel=1e-11)
    assert closed == pytest.approx((1 - base**-2) / (1 - base ** (-4 / dk)), rel=1e-9)


# --------------------------------------------------------------------------- C15
@given(case=qk_cases(), r=st.floats(-1e4, 1e4))
def test_pair_contribution_never_exceeds_cauchy_schwarz(case, r):
    dk, q, k, base, p, s = case
    th = th_oracle(dk, base, p)
    q0, q1, k0, k1 = q[0::2], q[1::2], k[0::2], k[1::2]
    c = s * ((q0 * k0 + q1 * k1) * np.cos(r * th) + (q0 * k1 - q1 * k0) * np.sin(r * th))
    pb = abs(s) * np.hypot(q0, q1) * np.hypot(k0, k1)
    np.testing.assert_allclose(C.pair_contribution_bound(q, k, scale=s), pb, rtol=1e-14, atol=0)
    slack = 16 * U * (1 + abs(r)) * pb + 1e-300
    assert (np.abs(c) <= pb + slack).all()
    assert abs(c.sum()) <= C.logit_bound(q, k, scale=s) + slack.sum()
    if pb.max() > 0:
        target(float((np.abs(c) / np.where(pb > 0, pb, np.inf)).max()), label="|c_m| / bound")


@given(dk=d_heads, base=bases, n=st.integers(1, 30), c=st.floats(0.1, 10), m=st.integers(0, 15))
def test_diagonal_head_usage_is_supported_on_psi_and_reaches_the_bound(dk, base, n, c, m):
    th = th_oracle(dk, base)
    assume(m < dk // 2)
    psi = np.zeros(dk)
    psi[2 * m], psi[2 * m + 1] = 0.6, 0.8
    Q = np.tile(c * psi, (n, 1))
    u = np.sqrt(Q[:, 0::2] ** 2 + Q[:, 1::2] ** 2).mean(0)              # THEORY.md C15 oracle
    got = C.frequency_usage(Q)
    np.testing.assert_allclose(got, u, rtol=1e-15, atol=0)
    assert (got[np.arange(dk // 2) != m] == 0).all() and got[m] == pytest.approx(c, rel=1e-15)
    ratio = C.logit_bound_ratio(Q, Q, th, scale=1 / np.sqrt(dk))
    np.testing.assert_allclose(ratio.diagonal(), 1.0, rtol=0, atol=1e-14)   # S_ii = bound


def test_frequency_usage_reads_model_shaped_low_precision_arrays():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(5)
    X = rng.standard_normal((2, 3, 6000, 64))           # (L, H, n, d): several blocks of rows
    for dt in (np.float64, np.float32, ml_dtypes.bfloat16):
        Xd = X.astype(dt)
        Y = Xd.astype(np.float64)
        u = np.sqrt(Y[..., 0::2] ** 2 + Y[..., 1::2] ** 2).reshape(-1, 32).mean(0)
        np.testing.assert_allclose(C.frequency_usage(Xd), u, rtol=1e-6 if dt != np.float64 else 1e-12)
    # Random Gaussian rows: a flat profile within sampling error (mean of chi_2 = sqrt(pi/2)).
    u = C.frequency_usage(X)
    se = np.sqrt(2 - np.pi / 2) / np.sqrt(X.size // 64)
    assert np.abs(u - np.sqrt(np.pi / 2)).max() < 5 * se
