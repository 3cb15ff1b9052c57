"""Tests of overmix.theory.rope: THEORY.md C1-C5 and C9, without the simulations.

Oracles are the plain-NumPy lines of THEORY.md section C, importing nothing from overmix
(``th`` and ``rope`` from tests/oracles.py, ``B`` below and each item's "Oracle:" line).

Tolerances (float64, u = 2^-53):
- A RoPE logit is a sum of d_k products whose angles r theta_m are rounded once (relative
  error u, absolute u |r theta_m|), so two evaluations of the same logit by different
  formulas agree within TOL_ANGLE = 16 u (1 + |r|) d_k |s| |q| |k|.
- Sums of at most 256 cosines computed in a different order: 1e-12 relative to their number.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, example, given, target
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.special import sici

from overmix.theory import rope as R
from oracles import rope_rotate_at as rope_oracle, rope_thetas as th_oracle

U = 2.0**-53


# --------------------------------------------------------------------------- oracles (THEORY.md C)
def B_oracle(r, th):
    return np.cos(np.outer(np.atleast_1d(r), th)).sum(1)


def logit_oracle(q, k, r, th, s):
    q0, q1, k0, k1 = q[0::2], q[1::2], k[0::2], k[1::2]
    return s * ((q0 * k0 + q1 * k1) * np.cos(r * th) + (q0 * k1 - q1 * k0) * np.sin(r * th)).sum()


def nrm(x):
    """|x| without underflow (hypothesis draws entries like 1e-247 whose squares vanish)."""
    m = np.abs(x).max()
    return 0.0 if m == 0 else m * np.linalg.norm(x / m)


def tol_angle(r, dk, s, q, k):
    # + 1e-300: products that underflow into subnormals carry absolute error 2^-1075 each.
    return 16 * U * (1 + abs(r)) * dk * abs(s) * nrm(q) * nrm(k) + 1e-300


# --------------------------------------------------------------------------- strategies
d_heads = st.integers(1, 16).map(lambda h: 2 * h)
bases = st.floats(1.5, 1e6)
fractions = st.one_of(st.sampled_from([0.0, 0.25, 0.5, 1.0]), st.floats(0.0, 1.0))
scales = st.floats(-2.0, 2.0).filter(lambda s: abs(s) >= 1e-3)   # O(1), as attn_scale is


def vectors(dk, lo=-10.0, hi=10.0):
    return hnp.arrays(np.float64, dk, elements=st.floats(lo, hi, allow_nan=False, allow_infinity=False))


@st.composite
def qk_cases(draw):
    dk = draw(d_heads)
    return dk, draw(vectors(dk)), draw(vectors(dk)), draw(bases), draw(fractions), draw(scales)


# --------------------------------------------------------------------------- C9
@pytest.mark.parametrize("p, dk, K_ceil, K_rrw", [
    (0.5, 6, 2, 1),        # p d/2 not an integer: the conventions differ
    (0.01, 64, 1, 0),
    (0.25, 256, 32, 32),   # RRW's runs: both agree
    (0.75, 256, 96, 96),
    (0.07, 200, 7, 7),     # float hazard: a naive ceil gives 8
    (0.58, 100, 29, 28),   # float hazard: RRW's floor gives 28
    (0.0, 8, 0, 0),
    (1.0, 8, 4, 4),
])
def test_kept_pair_count_table_c9(p, dk, K_ceil, K_rrw):
    assert math.ceil(p * dk / 2 - 1e-9) == K_ceil and int(p * dk // 2) == K_rrw   # the oracle
    assert R.rope_kept_pairs(dk, p) == K_ceil
    assert R.rope_kept_pairs(dk, p, convention="rrw_floor") == K_rrw


def test_naive_ceil_hazard_is_real_c9():
    # Pin the hazard the 1e-9 guard exists for.
    assert math.ceil(0.07 * 200 / 2) == 8


@given(dk=d_heads, p=fractions, base=bases)
@example(dk=200, p=0.07, base=1e4)
@example(dk=2, p=1e-9, base=2.0)
def test_frequencies_follow_the_p_rope_definition(dk, p, base):
    th = R.rope_frequencies(dk, base, p)
    np.testing.assert_array_equal(th, th_oracle(dk, base, p))
    K = math.ceil(p * dk / 2 - 1e-9)
    assert th.shape == (dk // 2,) and (th[:K] > 0).all() and (th[K:] == 0).all()
    # THEORY.md C9 says "any p > 0 keeps theta_0"; the 1e-9 guard makes that p d_k / 2 > 1e-9
    # (p = 1e-9, d_k = 2 keeps nothing). Found by this test; documented in rope_frequencies.
    if p * dk / 2 > 1e-9:
        assert th[0] == 1.0
    else:
        assert (th == 0).all()


# --------------------------------------------------------------------------- C1
@given(case=qk_cases(), i=st.integers(0, 2000), j=st.integers(0, 2000), shift=st.integers(-500, 500))
@example(case=(2, np.array([1.0, 0.0]), np.array([0.0, 1.0]), 10.0, 1.0, 1.0), i=0, j=0, shift=0)
def test_logit_depends_only_on_relative_position(case, i, j, shift):
    dk, q, k, base, p, s = case
    th = th_oracle(dk, base, p)
    assume(i + shift >= 0 and j + shift >= 0)
    S = s * rope_oracle(q[None], [i], th)[0] @ rope_oracle(k[None], [j], th)[0]
    S_shift = s * (R.rope_rotate(q[None], th, positions=[i + shift])[0]
                   @ R.rope_rotate(k[None], th, positions=[j + shift])[0])
    tol = tol_angle(i + j + 2 * abs(shift), dk, s, q, k)
    assert abs(S_shift - S) <= tol
    assert abs(R.rope_relative_logit(q, k, i - j, th, scale=s) - logit_oracle(q, k, i - j, th, s)) <= tol
    assert abs(logit_oracle(q, k, i - j, th, s) - S) <= tol


@given(case=qk_cases(), n=st.integers(1, 40))
def test_rotation_is_an_isometry_fixing_position_zero(case, n):
    dk, q, k, base, p, _ = case
    th = th_oracle(dk, base, p)
    X = np.outer(np.linspace(-1, 1, n), q) + k
    Y = R.rope_rotate(X, th)
    np.testing.assert_allclose(Y, rope_oracle(X, np.arange(n), th), rtol=0,
                               atol=16 * U * n * (1 + np.abs(X).max()))
    np.testing.assert_allclose(np.linalg.norm(Y, axis=1), np.linalg.norm(X, axis=1),
                               rtol=8 * dk * U, atol=1e-300)
    np.testing.assert_array_equal(Y[0], X[0])     # R_0 = I exactly (cos 0 = 1, sin 0 = 0)


@given(case=qk_cases(), r=st.floats(0, 5000))
def test_position_free_pairs_add_their_plain_dot_product(case, r):
    dk, q, k, base, p, s = case
    th = th_oracle(dk, base, p)
    c = R.rope_pair_contributions(q, k, r, th, scale=s)
    free = th == 0
    np.testing.assert_array_equal(c[free], s * (q[0::2] * k[0::2] + q[1::2] * k[1::2])[free])


@given(case=qk_cases(), r=st.integers(0, 3000))
def test_half_split_pairing_gives_the_same_logits_up_to_a_permutation(case, r):
    # RRW's code and Gemma pair (m, m + d/2); one fixed permutation maps it to (2m, 2m+1).
    dk, q, k, base, p, s = case
    th = th_oracle(dk, base, p)
    h = dk // 2

    def rotate_half(x, pos):
        a = pos * th
        x1, x2 = x[:h], x[h:]
        return np.concatenate([x1 * np.cos(a) - x2 * np.sin(a), x2 * np.cos(a) + x1 * np.sin(a)])

    perm = np.empty(dk, dtype=int)
    perm[0::2], perm[1::2] = np.arange(h), np.arange(h, dk)   # interleaved index -> half index
    S_half = s * rotate_half(q, r) @ rotate_half(k, 0)
    S_ours = R.rope_relative_logit(q[perm], k[perm], r, th, scale=s)
    assert abs(S_half - S_ours) <= tol_angle(r, dk, s, q, k)


# --------------------------------------------------------------------------- B(r), C3
@given(dk=d_heads, base=bases, p=fractions,
       r=hnp.arrays(np.float64, st.integers(0, 600),
                    elements=st.one_of(st.integers(-10**6, 10**6).map(float),
                                       st.floats(-1e5, 1e5, allow_nan=False))))
@example(dk=256, base=1e4, p=1.0, r=np.arange(1000.0) * 997)
def test_cosine_sum_equals_the_plain_sum(dk, base, p, r):
    th = th_oracle(dk, base, p)
    got = R.rope_cosine_sum(r, th)
    want = B_oracle(r, th) if r.size else np.zeros(0)
    # Each angle is rounded once in both: |error| <= a few K u (1 + |r|) per term.
    tol = 8 * (dk // 2) * U * (1 + (np.abs(r).max() if r.size else 0.0)) * 4
    np.testing.assert_allclose(got, want, rtol=0, atol=tol + 1e-12)


def test_cosine_sum_is_fast_up_to_a_million():
    import time
    th = th_oracle(256)
    t0 = time.perf_counter()
    B = R.rope_cosine_sum(np.arange(10**6 + 1), th)
    elapsed = time.perf_counter() - t0
    idx = np.arange(0, 10**6 + 1, 4999)
    np.testing.assert_allclose(B[idx], B_oracle(idx, th), rtol=0, atol=1e-8)
    # The plain sum takes ~5 s here; the block product ~0.1 s (generous bound for a loaded CI box).
    assert elapsed < 3.0


@pytest.mark.parametrize("dk, first_rise, first_negative", [(64, 5, 725), (128, 11, 1707), (256, 24, 2653)])
def test_aligned_logit_is_not_monotone_and_changes_sign_table_c3(dk, first_rise, first_negative):
    th = th_oracle(dk)
    Bv = B_oracle(np.arange(20001), th)                        # THEORY.md C3 oracle
    assert np.argmax(np.diff(Bv) > 0) == first_rise and np.argmax(Bv < 0) == first_negative
    assert R.cosine_sum_first_rise(th) == first_rise
    assert R.cosine_sum_first_negative(th) == first_negative


def test_cosine_sum_minimum_d128_c3():
    th = th_oracle(128)
    Bv = B_oracle(np.arange(5001), th)
    assert round(Bv.min() / 64, 3) == -0.150 and Bv.argmin() == 4677
    got = R.rope_cosine_sum(np.arange(5001), th)
    assert got.argmin() == 4677 and abs(got.min() - Bv.min()) < 1e-10


@given(dk=d_heads, base=bases, p=fractions, r=st.integers(0, 10**5), scale=scales,
       psi_scale=st.floats(0.1, 10))
def test_aligned_logit_is_2sB_for_all_ones_and_peaks_at_zero(dk, base, p, r, scale, psi_scale):
    th = th_oracle(dk, base, p)
    psi = np.full(dk, psi_scale)
    S = R.aligned_logit(r, psi, th, scale=scale)
    want = 2 * scale * psi_scale**2 * B_oracle(r, th)[0]
    assert abs(S - want) <= 64 * U * (1 + r) * dk * abs(scale) * psi_scale**2
    S0 = R.aligned_logit(0, psi, th, scale=scale)
    assert (S0 >= S) if scale > 0 else (S0 <= S)


def test_continuum_law_of_the_local_mean_c3():
    base, dk = 1e4, 256
    th = th_oracle(dk, base)

    def cont(x):
        return (sici(x)[1] - sici(x / base)[1]) / np.log(base)

    listed = {100: 0.437, 1000: 0.188, 2000: 0.113, 3000: 0.070, 5000: 0.019}
    for r, v in listed.items():
        assert round(float(cont(r)), 3) == v
        assert abs(R.cosine_sum_continuum(r, base) - cont(r)) < 1e-14
        window = np.arange(r - 100, r + 101)
        local = B_oracle(window, th).mean() / (dk / 2)
        # The comparison that holds at every listed r: same window for both curves.
        assert abs(local - cont(window[window > 0]).mean()) < 0.02
        if r >= 1000:
            assert abs(local - cont(r)) < 0.02
    # THEORY.md's check compares with the centre value; at r = 100 (window 0..200, which holds
    # the peak at r = 0) that is 0.031 off. A finding, not a tolerance to widen.
    local100 = B_oracle(np.arange(0, 201), th).mean() / (dk / 2)
    assert 0.025 < local100 - cont(100) < 0.035


# --------------------------------------------------------------------------- C2
def _mc_logits(rng, dk, th, s, r, n, mu_q=None, mu_k=None, mix=None):
    Q = rng.standard_normal((n, dk))
    K = rng.standard_normal((n, dk))
    if mix is not None:
        K = mix * Q + np.sqrt(1 - mix**2) * K     # Cov(k, q) = mix I
    if mu_q is not None:
        Q = Q + mu_q
        K = K + mu_k
    return s * (rope_oracle(Q, np.full(n, float(r)), th) * K).sum(1)   # query at r, key at 0


@pytest.mark.parametrize("r", [0, 1, 10, 1000, 5000])
def test_gaussian_logits_do_not_decay_in_mean_or_variance(r):
    rng = np.random.default_rng(1000 + r)
    dk, n = 16, 100_000
    th = th_oracle(dk)
    s = 1 / np.sqrt(dk)
    a = _mc_logits(rng, dk, th, s, r, n)
    se = a.std() / np.sqrt(n)
    assert abs(a.mean() - R.rope_logit_mean(r, th, mu_q=np.zeros(dk), mu_k=np.zeros(dk))) < 5 * se
    var = R.rope_logit_variance(dk)
    assert var == 1.0
    assert abs(a.var() / var - 1) < 0.05

    # Means, isotropic unit covariances: E S(r) = s mu_q^T R_(-r) mu_k, Var free of r.
    mu_q, mu_k = np.linspace(-1, 1, dk), np.cos(np.arange(dk))
    b = _mc_logits(rng, dk, th, s, r, n, mu_q, mu_k)
    mean = s * (rope_oracle(mu_q[None], [r], th)[0] @ mu_k)
    v = s**2 * (dk + mu_q @ mu_q + mu_k @ mu_k)
    assert abs(b.mean() - mean) < 5 * b.std() / np.sqrt(n)
    assert abs(R.rope_logit_mean(r, th, mu_q=mu_q, mu_k=mu_k) - mean) < 1e-12
    assert abs(b.var() / v - 1) < 0.05
    assert abs(R.rope_logit_variance(dk, mu_q=mu_q, mu_k=mu_k) - v) < 1e-12


@pytest.mark.parametrize("r", [0, 10, 1000])
def test_correlated_gaussian_mean_is_the_rotated_trace(r):
    rng = np.random.default_rng(7 + r)
    dk, n, mix = 16, 100_000, 0.6
    th = th_oracle(dk)
    s = 1 / np.sqrt(dk)
    a = _mc_logits(rng, dk, th, s, r, n, mix=mix)
    # tr(R_(-r) C) with C = mix I is mix * 2 B(r).
    want = s * mix * 2 * B_oracle(r, th)[0]
    assert abs(a.mean() - want) < 5 * a.std() / np.sqrt(n)
    got = R.rope_logit_mean(r, th, mu_q=np.zeros(dk), mu_k=np.zeros(dk), cov_kq=mix * np.eye(dk))
    assert abs(got - want) < 1e-12


def test_correlated_mean_with_a_general_cross_covariance():
    rng = np.random.default_rng(3)
    dk = 6
    th = th_oracle(dk, 50.0)
    C = rng.standard_normal((dk, dk))
    mu_q, mu_k = rng.standard_normal(dk), rng.standard_normal(dk)
    for r in (0.0, 1.0, 7.5):
        Rm = np.zeros((dk, dk))                     # R_(-r) as a dense matrix (oracle)
        for m, t in enumerate(th):
            c, sn = np.cos(r * t), np.sin(r * t)
            Rm[2 * m:2 * m + 2, 2 * m:2 * m + 2] = [[c, sn], [-sn, c]]
        want = (mu_q @ Rm @ mu_k + np.trace(Rm @ C)) / np.sqrt(dk)
        assert abs(R.rope_logit_mean(r, th, mu_q=mu_q, mu_k=mu_k, cov_kq=C) - want) < 1e-12


@pytest.mark.parametrize("lag", [1, 1000])
def test_fixed_random_pair_autocovariance_is_2s2_sq2_sk2_B(lag):
    rng = np.random.default_rng(11 + lag)
    dk, n, r = 16, 100_000, 37
    th = th_oracle(dk)
    s, sq, sk = 1 / np.sqrt(dk), 1.5, 0.7
    Q, K = sq * rng.standard_normal((n, dk)), sk * rng.standard_normal((n, dk))
    a = s * (rope_oracle(Q, np.full(n, float(r)), th) * K).sum(1)
    b = s * (rope_oracle(Q, np.full(n, float(r + lag)), th) * K).sum(1)
    prod = (a - a.mean()) * (b - b.mean())
    cov, se = prod.mean(), prod.std() / np.sqrt(n)
    want = 2 * s**2 * sq**2 * sk**2 * B_oracle(lag, th)[0]
    got = R.rope_logit_autocovariance(lag, th, sigma_q=sq, sigma_k=sk)
    assert abs(got - want) < 1e-12
    # Within 5 SE; where the covariance is large this is also within 5% (THEORY.md's wording).
    assert abs(cov - want) < 5 * se
    if abs(want) > 100 * se:
        assert abs(cov / want - 1) < 0.05


# --------------------------------------------------------------------------- C4
@given(case=qk_cases(), r=st.floats(0, 1e4))
@example(case=(128, np.ones(128), np.ones(128), 1e4, 1.0, 1.0), r=5.0)
def test_logit_never_exceeds_the_abel_bound(case, r):
    dk, q, k, base, p, s = case
    th = th_oracle(dk, base, p)
    h = (q[0::2] + 1j * q[1::2]) * (k[0::2] - 1j * k[1::2])
    Sn = np.cumsum(np.exp(1j * r * th))
    bound = abs(s) * np.abs(np.diff(np.append(h, 0))).max() * np.abs(Sn).sum()
    got = R.abel_bound(q, k, r, th, scale=s)
    assert abs(got - bound) <= 1e-12 * (bound + 1e-300) * dk
    S = logit_oracle(q, k, r, th, s)
    if bound > 0:
        target(abs(S) / bound, label="|S| / Abel bound")
    assert abs(S) <= bound * (1 + 1e-12) + tol_angle(r, dk, s, q, k)


def test_relative_abel_bound_values_d128_c4():
    th = th_oracle(128)
    listed = {5: 20.85, 20: 15.24, 50: 12.63, 100: 10.23, 250: 6.55}
    for r, v in listed.items():
        rel = 2 / 128 * np.abs(np.cumsum(np.exp(1j * r * th))).sum()
        assert round(rel, 2) == v
        assert abs(R.abel_relative_bound(float(r), th) - rel) < 1e-12


@given(dk=st.integers(2, 64).map(lambda h: 2 * h), base=bases, p=st.floats(0.0, 0.99),
       r=st.floats(0, 1e5))
def test_abel_bound_does_not_decay_under_p_rope(dk, base, p, r):
    K = math.ceil(p * dk / 2 - 1e-9)
    assume(K < dk // 2)
    th = th_oracle(dk, base, p)
    floor = 2 / dk * sum(max(0, n - 2 * K) for n in range(1, dk // 2 + 1))
    assert abs(R.abel_relative_floor(dk, K) - floor) < 1e-12
    assert R.abel_relative_bound(r, th) >= floor - 1e-9 * dk
    Sn = np.abs(np.cumsum(np.exp(1j * r * th)))
    n = np.arange(1, dk // 2 + 1)
    assert (Sn[n > K] >= (n - 2 * K)[n > K] - 1e-9 * dk).all()


def test_abel_floor_is_positive_for_small_fractions():
    # p = 0.25, d_k = 64: K = 8 < 16, floor = (2/64) sum_(n=17)^(32) (n - 16) = 4.25 at every r.
    th = th_oracle(64, 1e4, 0.25)
    assert R.abel_relative_floor(64, 8) == pytest.approx(2 / 64 * sum(range(1, 17)), rel=1e-15)
    assert R.abel_relative_bound(np.array([1e3, 1e5, 1e7]), th).min() >= 4.25 - 1e-9


# --------------------------------------------------------------------------- C5
@st.composite
def peak_cases(draw):
    dk = draw(st.integers(1, 8).map(lambda h: 2 * h))
    p = draw(st.one_of(st.just(1.0), st.floats(0.05, 1.0)))
    base = draw(st.floats(2.0, 1e4))
    q = draw(vectors(dk, -3.0, 3.0))
    i = draw(st.integers(0, 120))
    r = draw(st.integers(0, i))
    return dk, p, base, q, r, i


@given(case=peak_cases(), s=st.floats(0.1, 2.0))
@example(case=(2, 1.0, 10.0, np.array([1.0, 0.0]), 3, 50), s=1.0)
def test_peaked_keys_put_the_unique_maximum_at_distance_r(case, s):
    dk, p, base, q, r, i = case
    th = th_oracle(dk, base, p)
    q0, q1 = q[0::2], q[1::2]
    w = q0**2 + q1**2
    j = np.arange(i + 1)
    S = s * (w * np.cos(np.outer(i - j - r, th))).sum(1)        # THEORY.md C5 oracle
    # Only meaningful with mass on a rotating pair, and a float-visible margin.
    others = np.delete(S, i - r)
    assume(others.size == 0 or S[i - r] - others.max() > 1e-9 * s * w.sum())
    got = R.peaked_logits(q, r, i, th, scale=s)
    np.testing.assert_allclose(got, S, rtol=0, atol=1e-12 * s * w.sum() * (1 + i))
    assert int(np.argmax(got)) == i - r
    assert (np.delete(got, i - r) < got[i - r]).all()
    # The keys are R_r q, and rotating them at their positions gives the same logits.
    k = R.peaked_keys(q, r, th)
    np.testing.assert_allclose(k, rope_oracle(q[None], [r], th)[0], rtol=0, atol=1e-12 * (1 + np.abs(q).max()))
    Sk = s * rope_oracle(np.tile(q, (i + 1, 1)), np.full(i + 1, i), th)[0] @ rope_oracle(
        np.tile(k, (i + 1, 1)), j, th).T
    np.testing.assert_allclose(Sk, S, rtol=0, atol=1e-10 * s * (1 + w.sum()) * (1 + i))
