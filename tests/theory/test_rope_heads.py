"""Tests of overmix.theory.rope_heads: THEORY.md C6, C7, C8, C10, without the simulations.

Oracles are THEORY.md's plain-NumPy lines, written here or in tests/oracles.py (``th``),
importing nothing from overmix.
Tolerances: attention weights are softmaxes of at most a few hundred terms whose logits carry
angle rounding u |r theta| (u = 2^-53); 1e-12 absolute covers them for the strengths used
(a <= 1e4: a * u * n * |r theta| < 1e-12 * ... checked case by case below).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, example, given, target
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from overmix.theory import rope as R
from overmix.theory import rope_heads as H
from oracles import rope_thetas as th_oracle


def softmax(a):
    e = np.exp(a - a.max())
    return e / e.sum()


def diag_oracle(i, th, w, a):
    return 1 / np.exp(-a * (w * (1 - np.cos(np.outer(np.arange(i + 1), th)))).sum(1)).sum()


def prev_oracle(i, th, w, a):
    return 1 / np.exp(-a * (w * (1 - np.cos(np.outer(np.arange(i + 1) - 1, th)))).sum(1)).sum()


# --------------------------------------------------------------------------- C6
@given(l0=st.floats(-50, 50), l=st.floats(-50, 50))
@example(l0=-800.0, l=0.0)        # huge margin: the weight rounds to exactly 0.5
@example(l0=800.0, l=0.0)
def test_nope_head_puts_at_most_half_on_a_repeated_token(l0, l):
    a = np.array([l0, l, l])
    al = softmax(a)                 # THEORY.md C6 oracle (query 2 of [x0, x, x])
    got = H.nope_duplicate_weight(l0, l)
    assert al[1] == al[2]
    assert abs(got - al[2]) <= 1e-15
    assert got <= 0.5


# --------------------------------------------------------------------------- C7
@st.composite
def head_cases(draw):
    dk = draw(st.integers(1, 16).map(lambda h: 2 * h))
    p = draw(st.one_of(st.just(1.0), st.floats(0.05, 1.0)))
    base = draw(st.floats(2.0, 1e5))
    th = th_oracle(dk, base, p)
    K = int((th > 0).sum())
    assume(K >= 1)
    w = draw(hnp.arrays(np.float64, dk // 2, elements=st.floats(0, 1)))
    assume(w[:K].sum() > 0.05)
    w = w / w.sum()                 # |psi| = 1
    return th, w


@given(case=head_cases(), n=st.integers(1, 60), a=st.floats(0, 200))
def test_diagonal_and_previous_token_heads_match_closed_forms(case, n, a):
    th, w = case
    A = H.diagonal_head_attention(n, th, weights=w, strength=a)
    P = H.previous_token_head_attention(n, th, weights=w, strength=a)
    for i in range(n):
        assert abs(A[i, i] - diag_oracle(i, th, w, a)) <= 1e-12
        if i >= 1:
            assert abs(P[i, i - 1] - prev_oracle(i, th, w, a)) <= 1e-12
    for M in (A, P):
        np.testing.assert_allclose(M.sum(1), 1.0, rtol=0, atol=1e-13)
        assert (np.triu(M, 1) == 0).all()           # exact zeros above the diagonal


@given(case=head_cases(), N=st.integers(1, 150), eps=st.floats(1e-6, 0.5))
def test_sufficient_strength_gives_one_minus_eps_up_to_N(case, N, eps):
    th, w = case
    r = np.arange(1, N + 1)
    delta = (w * (1 - np.cos(np.outer(r, th)))).sum(1).min()
    assume(delta > 1e-6)
    assert abs(H.positional_head_margin(N, th, weights=w) - delta) <= 1e-12 + 1e-9 * delta
    a = H.positional_head_strength(N, eps, th, weights=w)
    assert a == pytest.approx(math.log(N * (1 - eps) / eps) / delta, rel=1e-9)
    A = H.diagonal_head_attention(N + 1, th, weights=w, strength=a)
    P = H.previous_token_head_attention(N + 1, th, weights=w, strength=a)
    worst = min(A.diagonal().min(), P.diagonal(-1).min() if N >= 1 else 1.0)
    target((1 - worst) / eps, label="(1 - min A) / eps")
    assert worst >= 1 - eps - 1e-12


@pytest.mark.parametrize("N, one_pair, top8", [(20, 1.13e-2, 0.134), (100, 1.57e-4, 0.134),
                                               (1000, 1.8e-9, 0.134)])
def test_margin_values_c7(N, one_pair, top8):
    r = np.arange(1, N + 1)
    d1 = (1 - np.cos(r * 1.0)).min()
    th = th_oracle(64)[:8]
    d8 = ((1 - np.cos(np.outer(r, th))) / 8).sum(1)
    assert float(f"{d1:.3g}" if N < 1000 else f"{d1:.2g}") == one_pair
    assert round(d8.min(), 3) == top8 and d8.argmin() == 0          # minimum at r = 1
    got1 = H.positional_head_margin(N, [1.0], weights=[1.0])
    # 1 - cos loses ~1e-16 absolute; our sin^2 form is exact to rounding: compare relatively.
    assert abs(got1 - d1) <= 1e-15 + 1e-6 * d1
    w = np.r_[np.full(8, 1 / 8), np.zeros(24)]
    assert abs(H.positional_head_margin(N, th_oracle(64), weights=w) - d8.min()) <= 1e-14


def test_near_returns_of_one_pair_c7():
    # The drop of delta_N for one pair comes from r = 44 and r = 710 (near multiples of 2 pi).
    r = np.arange(1, 1001)
    f = 1 - np.cos(r * 1.0)
    assert r[f[:100].argmin()] == 44 and r[f.argmin()] == 710


def test_margin_of_a_long_context_is_tiny_but_positive():
    # N = 1e6, one pair: the fast path plus exact refinement against a direct sin^2 scan.
    N = 10**6
    r = np.arange(1, N + 1, dtype=np.float64)
    direct = (2 * np.sin(r / 2) ** 2).min()
    got = H.positional_head_margin(N, [1.0], weights=[1.0])
    assert 0 < got and abs(got - direct) <= 1e-9 * direct


# --------------------------------------------------------------------------- C8
@pytest.mark.parametrize("dk, base, r", [(64, 1e4, 11780), (128, 1e4, 13603), (256, 1e4, 14618),
                                         (128, 5e5, 639799)])
def test_first_negative_distance_of_the_lowest_pair_c8(dk, base, r):
    g = th_oracle(dk, base)[-1]
    assert int(np.ceil(np.pi / (2 * g))) == r
    assert H.first_negative_distance(g) == r
    assert np.cos(r * g) < 0 <= np.cos((r - 1) * g)


@given(g=st.floats(1e-6, math.pi))
@example(g=math.pi / 2)
@example(g=math.pi)
def test_aligned_pair_turns_negative_at_ceil_pi_over_2theta(g):
    r = H.first_negative_distance(g)
    assert r == int(np.ceil(np.pi / (2 * g))) or (np.cos(np.ceil(np.pi / (2 * g)) * g) >= 0)
    assert np.cos(r * g) < 0
    assert r == 1 or np.cos((r - 1) * g) >= 0


@given(phi=st.floats(-math.pi, math.pi))
def test_rotating_pair_minimum_tends_to_minus_one(phi):
    g = 1.0
    mins = []
    for N in (10, 100, 1000, 10000):
        want = np.cos(phi - np.arange(1, N + 1) * g).min()           # THEORY.md C8 oracle
        got = H.rotating_pair_min_cosine(g, N, phase=phi)
        assert abs(got - want) <= 1e-12
        mins.append(got)
    assert all(b <= a for a, b in zip(mins, mins[1:]))
    assert mins[-1] < -0.9999


@given(a=hnp.arrays(np.float64, st.integers(2, 30), elements=st.floats(-30, 30)))
def test_softmax_entry_above_half_holds_the_largest_logit(a):
    # RRW Lemma A.3, the step of C8's argument.
    al = softmax(a)
    big = np.flatnonzero(al > 0.5)
    for j in big:
        assert a[j] == a.max()


# --------------------------------------------------------------------------- C10
@given(S=hnp.arrays(np.float64, st.integers(1, 50), elements=st.floats(-40, 40)),
       t=st.integers(0, 49))
def test_semantic_target_weight_is_at_least_the_margin_bound(S, t):
    assume(t < S.size)
    n = S.size
    others = np.delete(S, t)
    Delta = S[t] - others.max() if n > 1 else 0.0
    bound = 1 / (1 + (n - 1) * np.exp(-Delta))                       # THEORY.md C10 oracle
    got = H.semantic_head_lower_bound(n, Delta)
    assert abs(got - bound) <= 1e-15
    if bound > 0:
        target(bound / softmax(S)[t], label="bound / A_target")
    assert softmax(S)[t] >= bound * (1 - 1e-12)


@given(dk=st.integers(2, 16).map(lambda h: 2 * h), p=st.sampled_from([0.25, 0.5, 0.75]),
       base=st.floats(2, 1e5), r=st.integers(0, 10**4), s=st.floats(0.1, 2))
def test_position_free_pairs_give_the_same_logit_at_every_distance(dk, p, base, r, s):
    th = th_oracle(dk, base, p)
    K = math.ceil(p * dk / 2 - 1e-9)
    rng = np.random.default_rng(r)
    q, k = np.zeros(dk), np.zeros(dk)
    q[2 * K:], k[2 * K:] = rng.standard_normal(dk - 2 * K), rng.standard_normal(dk - 2 * K)
    S_sem = s * (q[2 * K:] @ k[2 * K:])                              # THEORY.md C10 oracle
    assert H.semantic_logit(q, k, th, scale=s) == pytest.approx(S_sem, rel=1e-14, abs=1e-300)
    # The same value at every r (only the summation order differs from the oracle).
    assert R.rope_relative_logit(q, k, r, th, scale=s) == pytest.approx(S_sem, rel=1e-13, abs=1e-13)
    assert R.rope_relative_logit(q, k, r, th, scale=s) == R.rope_relative_logit(q, k, 0, th, scale=s)
