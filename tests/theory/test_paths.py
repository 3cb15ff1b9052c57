"""Tests of overmix.theory.paths (THEORY.md A1-A4, AZ rollout, B8 counts) without sims.

Oracles are written here from the math (plain NumPy / Python ints), importing nothing from
overmix: the dense path matrix prod_l (I + sum_h w_lh A^(l,h)), integer matrix powers for
path counts, brute-force enumeration of head paths, eigenvalues for A4's rate.

Tolerances: float64 results are compared with rtol 1e-12 (sums of at most a few hundred
nonnegative terms: the relative rounding error is below n L 2^-53 ~ 1e-13); float32 inputs
are converted exactly to float64 inside path_bound, so the same oracle on the same float32
values also agrees to 1e-12.
"""

from __future__ import annotations

import itertools
import math
import tracemalloc

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from overmix.theory import (fit_log_rate, head_path_count, path_bound, path_count, rollout,
                            rollout_distance, rollout_log_rate, rollout_rate, row_tolerance)
from oracles import mask_matrix

RTOL = 1e-12


# ------------------------------------------------------------------------------------------
# oracles and builders (plain NumPy)
# ------------------------------------------------------------------------------------------
def random_attention(rng, L, H, n, mask="causal", sink=0.0):
    """Softmax of random logits over the visible keys; ``sink`` adds a logit to key 0."""
    S = rng.normal(size=(L, H, n, n)) * 2.0
    S[..., 1:, 0] += sink
    vis = mask_matrix(mask, n)
    S = np.where(vis, S, -np.inf)
    S -= S.max(-1, keepdims=True)
    A = np.exp(S)
    return A / A.sum(-1, keepdims=True)


def oracle_path_matrix(A, W, S=None, residual=True):
    L, H, n, _ = A.shape
    P = np.eye(n)
    for l in range(L):
        M = (np.eye(n) if residual else np.zeros((n, n))) + np.tensordot(W[l], A[l], axes=1)
        P = M @ P
    pref = 1.0 if S is None else float(np.prod(1.0 + np.asarray(S)))
    return pref * P


class ArrayLike:
    """Something with __array__ only (stands in for torch/JAX tensors)."""

    def __init__(self, a):
        self._a = np.asarray(a)

    def __array__(self, dtype=None, copy=None):
        return self._a if dtype is None else self._a.astype(dtype)


class FakeTensor(ArrayLike):
    """Duck-typed torch.Tensor: detach()/cpu() return itself, as torch's do on CPU."""

    def __init__(self, a):
        super().__init__(a)
        self.detached = False

    def detach(self):
        self.detached = True
        return self

    def cpu(self):
        return self

    @property
    def dtype(self):
        return self._a.dtype


masks = st.one_of(st.sampled_from(["causal", "full"]),
                  st.tuples(st.just("window"), st.integers(1, 4)))


@st.composite
def stacks(draw, max_n=9, max_h=5):
    L = draw(st.integers(1, 4))
    H = draw(st.integers(1, max_h))
    n = draw(st.integers(1, max_n))
    mask = draw(masks)
    seed = draw(st.integers(0, 2**32 - 1))
    sink = draw(st.sampled_from([0.0, 0.0, 4.0, 10.0]))
    rng = np.random.default_rng(seed)
    A = random_attention(rng, L, H, n, mask, sink)
    W = rng.uniform(0.0, 2.0, size=(L, H))
    S = rng.uniform(0.0, 1.5, size=L)
    return A, W, S, mask


# ------------------------------------------------------------------------------------------
# A1: the path matrix
# ------------------------------------------------------------------------------------------
@given(stacks(), st.sampled_from(["array", "list", "generator", "batch5", "layers_batch1"]))
def test_path_bound_is_the_weighted_path_sum(case, form):
    A, W, S, mask = case
    expected = oracle_path_matrix(A, W, S)
    if form == "array":
        attn = A
    elif form == "list":
        attn = list(A)
    elif form == "generator":
        attn = (layer for layer in A)
    elif form == "batch5":
        attn = A[:, None]
    else:
        attn = [layer[None] for layer in A]
    got = path_bound(attn, value_norms=W, mlp_lipschitz=S, mask=mask)
    np.testing.assert_allclose(got, expected[-1], rtol=RTOL, atol=0)


@given(stacks())
def test_path_bound_all_targets_is_the_whole_path_matrix(case):
    A, W, S, mask = case
    got = path_bound(iter(A), value_norms=W, mlp_lipschitz=S, all_targets=True, mask=mask)
    np.testing.assert_allclose(got, oracle_path_matrix(A, W, S), rtol=RTOL, atol=0)
    got2 = path_bound(A, value_norms=W, mlp_lipschitz=S, all_targets=True)
    np.testing.assert_allclose(got2, got, rtol=RTOL, atol=0)


@given(stacks(), st.booleans())
def test_path_bound_without_residual_drops_the_identity(case, residual):
    A, W, _, _ = case
    got = path_bound(A, value_norms=W, residual=residual)
    np.testing.assert_allclose(got, oracle_path_matrix(A, W, residual=residual)[-1],
                               rtol=RTOL, atol=0)


@given(stacks())
@example((np.ones((2, 1, 1, 1)), np.full((2, 1), 0.5), np.zeros(2), "causal"))
def test_last_token_self_entry_is_the_single_self_path(case):
    """A2's last-token identity: [prod M]_(n-1,n-1) = prod_l (1 + sum_h w A_(n-1,n-1)) (causal)."""
    A, W, _, mask = case
    if mask == "full":
        mask = "causal"
        n = A.shape[-1]
        A = A * mask_matrix("causal", n)
        A = A / A.sum(-1, keepdims=True)
    got = path_bound(A, value_norms=W, mask=mask)[-1]
    expected = np.prod(1.0 + (W * A[:, :, -1, -1]).sum(axis=1))
    assert got == pytest.approx(expected, rel=RTOL)


@given(stacks(max_n=40, max_h=9), st.sampled_from([np.float64, np.float32]))
def test_one_layer_path_matrix_is_bitwise_the_head_ordered_sum(case, dtype):
    """M = I, then + (w0 x0 + w1 x1) + (w2 x2 + w3 x3) per group of four heads, then + w x
    per remaining head, in float64 (theory/_k_paths.py's stated order): bit for bit (the
    kernel's narrow fastmath is for its row-sum check only, never for M)."""
    A, W, _, _ = case
    A = A[:1].astype(dtype)
    H, n = A.shape[1], A.shape[-1]
    x = A[0].astype(np.float64)
    w = W[0]
    M = np.eye(n)
    h = 0
    while h + 4 <= H:
        M = M + ((w[h] * x[h] + w[h + 1] * x[h + 1])
                 + (w[h + 2] * x[h + 2] + w[h + 3] * x[h + 3]))
        h += 4
    while h < H:
        M = M + w[h] * x[h]
        h += 1
    got = path_bound(A, value_norms=W[:1], all_targets=True, atol=1e-5)
    assert np.array_equal(got, M)


@given(stacks())
def test_a1_implies_the_bft_form(case):
    """M^(l) <= max(1, max_h w_lh) (I + sum_h A^(l,h)) entrywise, so A1 <= C_max^L times the
    unit-weight path sum, C_max = max_l (1 + sigma_l) max(1, max_h w_lh) (THEORY.md A1)."""
    A, W, S, _ = case
    L = A.shape[0]
    c_max = max((1 + S[l]) * max(1.0, W[l].max()) for l in range(L))
    a1 = path_bound(A, value_norms=W, mlp_lipschitz=S)
    bft = c_max**L * oracle_path_matrix(A, np.ones_like(W))[-1]
    assert (a1 <= bft * (1 + 1e-12)).all()


def test_defaults_are_unit_weights_and_no_mlp():
    rng = np.random.default_rng(1)
    A = random_attention(rng, 3, 2, 6)
    np.testing.assert_allclose(path_bound(A), oracle_path_matrix(A, np.ones((3, 2)))[-1],
                               rtol=RTOL)
    np.testing.assert_allclose(path_bound(A, value_norms=0.5, mlp_lipschitz=0.25),
                               oracle_path_matrix(A, np.full((3, 2), 0.5), [0.25] * 3)[-1],
                               rtol=RTOL)


@pytest.mark.parametrize("n", [129, 300])
def test_triangular_blocked_product_matches_dense_product(n):
    """n above the recursion leaf: the block-triangular product, and a causal->full switch."""
    rng = np.random.default_rng(n)
    A = random_attention(rng, 3, 2, n, "causal")
    W = rng.uniform(0, 1, (3, 2))
    np.testing.assert_allclose(path_bound(iter(A), value_norms=W), oracle_path_matrix(A, W)[-1],
                               rtol=1e-11)
    B = np.concatenate([A, random_attention(rng, 1, 2, n, "full")])
    W2 = np.vstack([W, [1.0, 1.0]])
    np.testing.assert_allclose(path_bound(iter(B), value_norms=W2, all_targets=True),
                               oracle_path_matrix(B, W2), rtol=1e-11)


def test_float32_int_fortran_and_array_like_inputs_give_the_float64_answer():
    rng = np.random.default_rng(2)
    A = random_attention(rng, 2, 3, 7).astype(np.float32)
    A64 = A.astype(np.float64)               # the exact values path_bound sees
    W = rng.uniform(0, 1, (2, 3))
    expected = oracle_path_matrix(A64, W)[-1]
    for attn in (A, np.asfortranarray(A), ArrayLike(A), [np.asfortranarray(x) for x in A]):
        np.testing.assert_allclose(path_bound(attn, value_norms=W), expected, rtol=RTOL)
    t = FakeTensor(A)
    np.testing.assert_allclose(path_bound(t, value_norms=W), expected, rtol=RTOL)
    assert path_bound(t).dtype == np.float64
    onehot = np.zeros((2, 1, 3, 3), dtype=np.int64)
    onehot[:, :, np.arange(3), 0] = 1
    assert path_bound(onehot).tolist() == [3.0, 0.0, 1.0]       # rows -> token 0 each layer
    assert path_bound(list(onehot)).dtype == np.float64


def test_one_token_and_one_hot_attention():
    assert path_bound(np.ones((3, 2, 1, 1)), value_norms=[[1, 2]] * 3).tolist() == [64.0]
    # previous-token heads: the only path from i to n-1 moves one step per layer or stays
    n, L = 5, 3
    prev = np.zeros((n, n))
    prev[0, 0] = 1.0
    prev[np.arange(1, n), np.arange(n - 1)] = 1.0
    got = path_bound(np.broadcast_to(prev, (L, 1, n, n)))
    expected = [0.0, math.comb(3, 3), math.comb(3, 2), math.comb(3, 1), math.comb(3, 0)]
    assert got.tolist() == expected


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_path_bound_streams_one_layer_at_a_time(dtype):
    """Own allocations stay O(H n^2): the documented buffer (at most twice one layer's bytes)
    plus a few n x n float64 products; never L H n^2 (here 40 layers)."""
    L, H, n = 40, 4, 96
    pool = [random_attention(np.random.default_rng(k), 1, H, n)[0].astype(dtype)
            for k in range(3)]
    layer_bytes = pool[0].nbytes

    def layers():
        for l in range(L):
            yield pool[l % 3]

    path_bound(layers())                     # warm-up (JIT, caches) outside the trace
    path_bound(layers(), all_targets=True)
    for all_targets in (False, True):
        tracemalloc.start()
        path_bound(layers(), all_targets=all_targets)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < 2 * layer_bytes + 8 * n * n * 8
        assert 2 * layer_bytes + 8 * n * n * 8 < L * layer_bytes / 4


# ------------------------------------------------------------------------------------------
# A1 input checks: each message names the argument
# ------------------------------------------------------------------------------------------
def _good(L=2, H=2, n=4, mask="causal"):
    return random_attention(np.random.default_rng(0), L, H, n, mask)


@pytest.mark.parametrize("make, kwargs, exc, words", [
    (lambda: _good()[0], {}, ValueError, ["attn", "(L, H, n, n)", "(2, 4, 4)"]),
    (lambda: _good()[:, :, :3], {}, ValueError, ["attn[", "(H, n, n)", "(2, 3, 4)"]),
    (lambda: np.ones((2, 2, 1, 3, 3)) / 3, {}, ValueError, ["attn", "(L, 1, H, n, n)"]),
    (lambda: [], {}, ValueError, ["attn", "at least one layer"]),
    (lambda: iter([]), {}, ValueError, ["attn", "at least one layer"]),
    (lambda: "attn", {}, TypeError, ["attn"]),
    (lambda: 3.0, {}, TypeError, ["attn"]),
    (lambda: [_good()[0], _good(n=5)[0]], {}, ValueError, ["attn[0]", "like layer 1"]),
    (lambda: iter([_good()[0], _good(n=5)[0]]), {}, ValueError, ["attn[1]", "like layer 0"]),
    (lambda: _good().astype(complex), {}, TypeError, ["attn[", "complex"]),
    (lambda: np.where(np.arange(4) == 0, np.nan, _good()), {}, ValueError,
     ["attn", "finite", "nan", "head 0, row 0, column 0"]),
    (lambda: _good() * np.array([1.5, 1, 1, 1])[:, None], {}, ValueError,
     ["attn rows", "sum to 1", "1e-06", "head 0, row 0 sums to 1.5"]),
    (lambda: _good() - 0.5 * (np.arange(4) == 3)[:, None] * _good(), {}, ValueError,
     ["attn rows"]),
    (lambda: np.full((1, 1, 2, 2), [[1.5, -0.5], [0.5, 0.5]]), {}, ValueError,
     ["attn", "non-negative", "-0.5", "column 1"]),
    (lambda: _good(mask="full"), {"mask": "causal"}, ValueError,
     ["attn", "mask='causal'", "head 0, row 0, column 1"]),
    (lambda: _good(mask="causal"), {"mask": ("window", 2)}, ValueError,
     ["attn", "mask=('window', 2)", "row 2, column 0"]),
    (lambda: _good(), {"mask": "sideways"}, ValueError, ["mask", "sideways", "causal"]),
    (lambda: _good(), {"mask": ("window", 0)}, ValueError, ["mask", "window"]),
    (lambda: _good(), {"value_norms": np.ones((2, 3))}, ValueError,
     ["value_norms", "(2, 2)", "(2, 3)"]),
    (lambda: _good(), {"value_norms": np.ones((3, 2))}, ValueError, ["value_norms", "3 layers"]),
    (lambda: _good(L=3), {"value_norms": np.ones((2, 2))}, ValueError, ["value_norms", "layer 2"]),
    (lambda: _good(), {"value_norms": -np.ones((2, 2))}, ValueError,
     ["value_norms", "non-negative"]),
    (lambda: _good(), {"value_norms": np.full((2, 2), np.inf)}, ValueError,
     ["value_norms", "finite"]),
    (lambda: _good(), {"value_norms": np.ones(2)}, ValueError, ["value_norms", "dimensions"]),
    (lambda: _good(), {"mlp_lipschitz": [1.0]}, ValueError, ["mlp_lipschitz", "1 layers"]),
    (lambda: _good(), {"mlp_lipschitz": [1.0, -1.0]}, ValueError,
     ["mlp_lipschitz", "non-negative"]),
    (lambda: _good(), {"mlp_lipschitz": [1.0, np.nan]}, ValueError, ["mlp_lipschitz", "finite"]),
    (lambda: _good(), {"atol": -1.0}, ValueError, ["atol", "-1.0"]),
])
def test_path_bound_rejects_bad_input_naming_the_argument(make, kwargs, exc, words):
    with pytest.raises(exc) as info:
        path_bound(make(), **kwargs)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_float32_rows_use_the_looser_stated_tolerance():
    n = 1024
    tol32 = 1e-6 + n * 2.0**-24
    assert row_tolerance(n, np.float32) == pytest.approx(tol32, rel=1e-15)
    assert row_tolerance(n, "float64") == 1e-6
    A = np.zeros((1, 1, n, n))
    A[..., 0] = 1.0 + 0.5 * tol32                 # every row sums to 1 + tol32/2
    path_bound(A.astype(np.float32))              # accepted in float32
    with pytest.raises(ValueError, match="attn rows must sum to 1 within 1e-06"):
        path_bound(A)                             # the same rows in float64: rejected
    with pytest.raises(ValueError, match="within 1e-07"):
        path_bound(A.astype(np.float32), atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_sum_verdict_near_the_tolerance_is_the_float64_verdict(dtype):
    """Rows a hair inside / outside atol: the fast check defers to the exact float64 sum."""
    n = 256
    tol = row_tolerance(n, dtype)
    for shift, ok in ((-1, True), (1, False)):
        A = np.zeros((1, 2, n, n), dtype=dtype)
        A[..., 0] = 1.0
        # the representable value nearest 1 + tol, then one or two ulps inside / outside
        x = dtype(1.0 + tol)
        for _ in range(2):
            x = np.nextafter(x, dtype(np.inf) if shift > 0 else dtype(0))
        A[0, 1, 7, 0] = x
        exact_ok = abs(float(x) - 1.0) <= tol
        assert exact_ok == ok
        if ok:
            path_bound(A)
        else:
            with pytest.raises(ValueError, match="head 1, row 7 sums to"):
                path_bound(A)


def test_negative_zero_is_zero_for_signs_and_masks():
    A = np.tril(np.ones((4, 4))) / np.arange(1, 5)[:, None]
    A = np.where(A == 0, -0.0, A)[None, None]
    assert np.signbit(A).any()
    np.testing.assert_array_equal(path_bound(A, mask="causal"), path_bound(np.abs(A)))


# ------------------------------------------------------------------------------------------
# A3 path counts, B8 head-path counts
# ------------------------------------------------------------------------------------------
@given(st.integers(1, 12), st.integers(0, 11), st.integers(0, 6))
@example(1, 0, 0)
@example(60, 0, 40)
def test_path_count_is_the_power_of_the_all_ones_causal_matrix(n, i, L):
    if i >= n:
        i = n - 1
    T = [[1 if s <= r else 0 for s in range(n)] for r in range(n)]
    P = [[int(r == s) for s in range(n)] for r in range(n)]          # exact Python ints
    for _ in range(L):
        P = [[sum(T[r][k] * P[k][s] for k in range(n)) for s in range(n)] for r in range(n)]
    got = path_count(n, i, L)
    assert type(got) is int and got == P[n - 1][i]


def test_path_count_is_exact_beyond_float_range():
    assert path_count(2000, 0, 200) == math.comb(1999 + 199, 199)
    assert path_count(5000, 0, 400) > 2**2000


@given(st.integers(0, 5), st.integers(1, 3), st.integers(0, 7))
def test_head_path_count_matches_enumeration(L, H, k):
    # every layer: skip (None) or one of H heads
    brute = sum(1 for p in itertools.product([None, *range(H)], repeat=L)
                if sum(x is not None for x in p) == k)
    got = head_path_count(L, H, k)
    assert type(got) is int and got == brute
    assert sum(head_path_count(L, H, j) for j in range(L + 1)) == (H + 1) ** L


@pytest.mark.parametrize("call, exc, words", [
    (lambda: path_count(0, 0, 1), ValueError, ["n", "0"]),
    (lambda: path_count(3, 3, 1), ValueError, ["i", "[0, 2]", "3"]),
    (lambda: path_count(3, -1, 1), ValueError, ["i", "-1"]),
    (lambda: path_count(3, 0, -1), ValueError, ["n_layers", "-1"]),
    (lambda: path_count(3.0, 0, 1), TypeError, ["n", "float"]),
    (lambda: path_count(3, True, 1), TypeError, ["i", "bool"]),
    (lambda: head_path_count(2, 0, 1), ValueError, ["n_heads", "0"]),
    (lambda: head_path_count(2, 1, -1), ValueError, ["k", "-1"]),
    (lambda: head_path_count(2.5, 1, 1), TypeError, ["n_layers"]),
])
def test_counts_reject_bad_input_naming_the_argument(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    for word in words:
        assert word in str(info.value)


# ------------------------------------------------------------------------------------------
# AZ rollout and its link to A1
# ------------------------------------------------------------------------------------------
def oracle_rollout(A):
    L, H, n, _ = A.shape
    P = np.eye(n)
    for l in range(L):
        R = 0.5 * (A[l].mean(0) + np.eye(n))
        R = R / R.sum(1, keepdims=True)
        P = R @ P
    return P


@given(stacks())
def test_rollout_is_AZs_product(case):
    A, _, _, _ = case
    got = rollout((x for x in A))
    np.testing.assert_allclose(got, oracle_rollout(A), rtol=RTOL, atol=1e-300)
    np.testing.assert_allclose(got.sum(1), 1.0, rtol=1e-13)


@given(stacks())
def test_rollout_equals_scaled_path_matrix_with_weights_one_over_H(case):
    A, _, _, _ = case
    L, H = A.shape[:2]
    M = path_bound(A, value_norms=np.full((L, H), 1.0 / H), all_targets=True)
    np.testing.assert_allclose(rollout(A), M / 2.0**L, rtol=1e-12, atol=1e-300)


def test_rollout_differs_from_path_matrix_with_other_weights_or_an_mlp():
    A = random_attention(np.random.default_rng(3), 3, 2, 5)
    R = rollout(A)
    M = path_bound(A, all_targets=True)                          # w = 1, not 1/H
    assert not np.allclose(R, M / M.sum(1, keepdims=True))
    M2 = path_bound(A, value_norms=0.5, mlp_lipschitz=1.0, all_targets=True)
    assert not np.allclose(R, M2 / 2.0**3)


# ------------------------------------------------------------------------------------------
# A4: the rollout limit and its rate
# ------------------------------------------------------------------------------------------
def random_lambda(rng, n, diag=None):
    Lam = np.tril(rng.uniform(0.05, 1.0, (n, n)))
    Lam[0] = 0.0
    Lam[0, 0] = 1.0
    if diag is not None:                 # set Lambda_ii, spread the rest over j < i
        for i in range(1, n):
            off = Lam[i, :i] / Lam[i, :i].sum()
            Lam[i, :i] = (1.0 - diag[i - 1]) * off
            Lam[i, i] = diag[i - 1]
    return Lam / Lam.sum(1, keepdims=True)


@given(st.integers(1, 8), st.integers(0, 2**32 - 1))
def test_rollout_rate_is_the_second_eigenvalue(n, seed):
    Lam = random_lambda(np.random.default_rng(seed), n)
    R = (Lam + np.eye(n)) / 2
    ev = np.sort(np.abs(np.linalg.eigvals(R)))[::-1]
    expected = ev[1] if n > 1 else 0.0                       # ev[0] = 1 (token 0)
    assert rollout_rate(Lam) == pytest.approx(expected, rel=1e-12)


@given(st.integers(2, 7), st.integers(0, 2**32 - 1))
def test_rollout_converges_to_first_token(n, seed):
    Lam = random_lambda(np.random.default_rng(seed), n)
    R = (Lam + np.eye(n)) / 2
    P = np.linalg.matrix_power(R, 400)
    limit = np.zeros((n, n))
    limit[:, 0] = 1.0
    rho = rollout_rate(Lam)
    # ||R^L - limit|| <= C L^(n-2) rho^L; at L = 400 this is tiny unless rho is close to 1
    assert np.abs(P - limit).max() <= max(1e-12, 400.0 ** (n - 2) * rho**400 * 1e3)
    d = rollout_distance(Lam, 60)
    assert (np.diff(d) <= 1e-15).all()                       # never moves away
    np.testing.assert_allclose(d[-1], np.abs(np.linalg.matrix_power(R, 60) - limit).max(),
                               rtol=1e-9, atol=1e-15)


def test_fitted_log_rate_matches_rho_with_distinct_diagonals():
    Lam = random_lambda(np.random.default_rng(4), 5, diag=[0.1, 0.3, 0.5, 0.2])
    rho = rollout_rate(Lam)
    assert rho == pytest.approx(0.75)
    assert rollout_log_rate(Lam, 200) == pytest.approx(rho, rel=1e-8)


def test_fitted_log_rate_converges_slowly_when_diagonals_repeat():
    """Repeated (or nearly repeated) diagonals add L^(m-1): the fit is above rho, and only
    approaches it like (m-1)/L; a near-repeat behaves the same until L ~ 1/(1 - rho_2/rho)."""
    rng = np.random.default_rng(5)
    for diag in ([0.5, 0.5, 0.5], [0.5, 0.5 - 1e-4, 0.1]):
        Lam = random_lambda(rng, 4, diag=diag)
        rho = rollout_rate(Lam)
        errs = [rollout_log_rate(Lam, L) / rho - 1.0 for L in (50, 200, 800)]
        assert all(e > 0 for e in errs)
        assert errs[0] > errs[1] > errs[2]
        assert errs[2] < 2 * 2 * math.log(2) / 800 * 2       # ~ (m-1) 2 ln2 / L, m <= 3


def test_fit_log_rate_recovers_a_pure_exponential_and_checks_input():
    L = np.arange(10, 30)
    assert fit_log_rate(2.0 * 0.6**L, L) == pytest.approx(0.6, rel=1e-12)
    with pytest.raises(ValueError, match="distances"):
        fit_log_rate([1.0, 0.0, 0.5])
    with pytest.raises(ValueError, match="tail"):
        fit_log_rate([1.0, 0.5], tail=0.0)
    with pytest.raises(ValueError, match="layers"):
        fit_log_rate([1.0, 0.5], [1.0])


@pytest.mark.parametrize("Lam, words", [
    (np.array([[1.0, 0.0], [0.0, 1.0]]), ["Lam", "Lambda_ii < 1", "Lambda[1, 1]"]),
    (np.array([[0.5, 0.5], [0.5, 0.5]]), ["Lam", "causal", "row 0, column 1"]),
    (np.array([[1.0, 0.0], [0.5, 0.6]]), ["Lam", "sum to 1", "row 1"]),
    (np.ones((2, 3)), ["Lam", "square"]),
    (np.array([[1.0, 0.0], [1.5, -0.5]]), ["Lam", "non-negative"]),
])
def test_rollout_rate_rejects_lambda_outside_a4_naming_it(Lam, words):
    with pytest.raises(ValueError) as info:
        rollout_rate(Lam)
    for word in words:
        assert word in str(info.value)
    with pytest.raises(ValueError):
        rollout_distance(Lam, 3)


def test_rollout_distance_checks_n_layers():
    with pytest.raises(ValueError, match="n_layers"):
        rollout_distance(np.eye(1), 0)
