"""sims.vjp (reverse mode through the whole stack) against complex-step derivatives of the oracle.

For an output cotangent C, the reference gradient of <C, Y> w.r.t. any input entry is
Im <C, Y(. + i h e)> / h with h = 1e-30 (oracles.cs_grad_X / cs_param_grad): no subtraction.
It is evaluated in float64 and in long double and used only where both agree to 1e-12
(oracles.reference_noise; elsewhere the gradient is cancellation-dominated, e.g. a radial
derivative through a norm, and no float64 code can be held to 1e-9), the long-double value
being the reference. Tolerance VJP_RTOL = 1e-9 relative to the largest |entry| (issue 8),
on the domain of oracles.well_conditioned. For parameters, each kind is checked along random
directions D: <dP, D> against the complex-step directional derivative (one oracle pass each),
plus one small stack with every entry of every parameter checked.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import oracles as O
import strategies as S
from overmix import sims

VJP_RTOL = 1e-9


def _frozen(cfg, p, X, frozen):
    return O.ref_forward(cfg, p, X)[1] if frozen else None


def _trusted(compute, scale=None):
    """compute(extended) in float64 and long double; assume they agree (reference_noise)."""
    r64, rext = compute(False), compute(True)
    if scale is None:
        assume(O.reference_noise(r64, rext) <= O.NOISE_MAX)
    else:
        assume(abs(r64 - rext) <= O.NOISE_MAX * scale)
    return rext


def _not_vanishing(ref, C):
    assume(np.abs(ref).max() >= O.GRAD_FLOOR * np.abs(C).max())   # see oracles.GRAD_FLOOR


@given(S.cases(), st.booleans(), st.integers(0, 2**31 - 1))
def test_vjp_on_X_matches_complex_step_of_oracle(case, frozen, seed):
    cfg, p, X = case
    assume(O.well_conditioned(cfg, p, X))
    C = np.random.default_rng(seed).standard_normal(X.shape)
    g = sims.vjp(cfg, p, X, C, frozen=frozen)
    A = _frozen(cfg, p, X, frozen)
    ref = _trusted(lambda ext: O.cs_grad_X(cfg, p, X, C, frozen_attn=A, extended=ext))
    _not_vanishing(ref, C)
    assert g.X.shape == X.shape
    assert O.rel_err(g.X, ref) <= VJP_RTOL


@given(S.cases(), st.booleans(), st.integers(0, 2**31 - 1))
def test_vjp_on_every_parameter_kind_matches_complex_step_directions(case, frozen, seed):
    # Entrywise |dP - grad| <= 1e-9 G (G: the largest |entry| of the whole VJP, X and every
    # parameter) is equivalent, over all directions D, to |<dP, D> - <grad, D>| <= 1e-9 G |D|_1.
    # G is estimated from the oracle alone: max |dX_ref| and |<grad_k, D_k>| / |D_k|_2
    # (a lower bound of |grad_k|_2, within sqrt(size) of max |grad_k|).
    cfg, p, X = case
    assume(O.well_conditioned(cfg, p, X))
    rng = np.random.default_rng(seed)
    C = rng.standard_normal(X.shape)
    g = sims.vjp(cfg, p, X, C, frozen=frozen)
    A = _frozen(cfg, p, X, frozen)
    gX = O.cs_grad_X(cfg, p, X, C, frozen_attn=A, extended=True)
    dirs, refs64, refs = {}, {}, {}
    for name in O.PARAM_NAMES:
        assert getattr(g.params, name).shape == getattr(p, name).shape, name
        D = dirs[name] = rng.standard_normal(getattr(p, name).shape)
        refs64[name] = O.cs_param_grad(cfg, p, X, C, name, frozen_attn=A, direction=D)
        refs[name] = O.cs_param_grad(cfg, p, X, C, name, frozen_attn=A, direction=D,
                                     extended=True)
    G = max([np.abs(gX).max()] + [abs(refs[k]) / np.linalg.norm(dirs[k]) for k in refs])
    _not_vanishing(G, C)
    for name in O.PARAM_NAMES:
        budget = G * np.abs(dirs[name]).sum()
        assume(abs(refs64[name] - refs[name]) <= O.NOISE_MAX * budget)   # reference is sound
        got = float(np.sum(getattr(g.params, name) * dirs[name]))
        assert abs(got - refs[name]) <= VJP_RTOL * budget, (name, got, refs[name], G)


@settings(max_examples=10)
@given(S.cases(n=st.integers(1, 4), d_model=st.integers(2, 5), n_layers=st.integers(1, 2)),
       st.booleans(), st.integers(0, 2**31 - 1))
def test_vjp_parameter_directions_match_central_differences_of_oracle(case, frozen, seed):
    # Directional central differences of t -> <C, Y(P + t D)> for each parameter kind, with
    # the stencil's own error estimate required below 1e-11 of the budget (as in
    # test_jacobian.py); budget = G |D|_1 as in the complex-step test above.
    cfg, p, X = case
    assume(O.well_conditioned(cfg, p, X))
    rng = np.random.default_rng(seed)
    C = rng.standard_normal(X.shape)
    g = sims.vjp(cfg, p, X, C, frozen=frozen)
    A = _frozen(cfg, p, X, frozen)
    P = O.param_dict(p)
    gX = O.cs_grad_X(cfg, p, X, C, frozen_attn=A, extended=True)
    for name in O.PARAM_NAMES:
        D = rng.standard_normal(P[name].shape)

        def phi(t):
            Q = dict(P)
            Q[name] = P[name] + t * D
            return float(np.sum(C * O.ref_forward(cfg, Q, X, frozen_attn=A)[2]))

        fd, est = O.fd_derivative_est(phi)
        G = max(np.abs(gX).max(), abs(fd) / np.linalg.norm(D))
        _not_vanishing(G, C)
        budget = G * np.abs(D).sum()
        assume(est <= 1e-11 * budget)
        got = float(np.sum(getattr(g.params, name) * D))
        assert abs(got - fd) <= VJP_RTOL * budget, (name, got, fd, est)


@pytest.mark.parametrize("frozen", [False, True])
@pytest.mark.parametrize("pos", S.POSITIONS)
def test_vjp_every_parameter_entry_matches_complex_step(pos, frozen):
    cfg = sims.StackConfig(n_layers=2, d_model=4, n_heads=2, d_ff=3, pos=pos, norm="layer",
                           final_norm="rms", sink_logit=0.7, sink_value_scale=0.6,
                           branch_scale=0.8, act="gelu")
    p = S.random_params(cfg, 11)
    rng = np.random.default_rng(3)
    X = rng.standard_normal((4, 4))
    C = rng.standard_normal((4, 4))
    A = _frozen(cfg, p, X, frozen)
    g = sims.vjp(cfg, p, X, C, frozen=frozen)
    for name in O.PARAM_NAMES:
        ref = O.cs_param_grad(cfg, p, X, C, name, frozen_attn=A)
        ref_ext = O.cs_param_grad(cfg, p, X, C, name, frozen_attn=A, extended=True)
        assert O.reference_noise(ref, ref_ext) <= O.NOISE_MAX, name   # a fixed, sane stack
        assert O.rel_err(getattr(g.params, name), ref_ext) <= VJP_RTOL, name


@given(S.cases(), st.integers(0, 2**31 - 1))
def test_frozen_vjp_gives_zero_query_and_key_gradients(case, seed):
    # Frozen attention does not depend on W_Q, W_K at all (MODEL.md "Derivatives").
    cfg, p, X = case
    C = np.random.default_rng(seed).standard_normal(X.shape)
    g = sims.vjp(cfg, p, X, C, frozen=True)
    assert (g.params.W_Q == 0).all() and (g.params.W_K == 0).all()


@given(S.cases(attention="prescribed"), S.attention_kinds(), st.integers(0, 2**31 - 1))
def test_vjp_with_prescribed_attention_matches_oracle_and_frozen(case, kind, seed):
    cfg, p, X = case
    A = S.prescribed_attention(cfg, X.shape[0], seed, kind)
    C = np.random.default_rng(seed).standard_normal(X.shape)
    g = sims.vjp(cfg, p, X, C, attn=A)
    gf = sims.vjp(cfg, p, X, C, attn=A, frozen=True)
    assert np.array_equal(g.X, gf.X)
    assert (g.params.W_Q == 0).all() and (g.params.W_K == 0).all()
    assume(O.well_conditioned(cfg, p, X, A))
    ref = _trusted(lambda ext: O.cs_grad_X(cfg, p, X, C, attn=A, extended=ext))
    _not_vanishing(ref, C)
    assert O.rel_err(g.X, ref) <= VJP_RTOL


@given(S.cases(), st.integers(1, 4), st.integers(0, 2**31 - 1), st.booleans())
def test_batched_cotangents_equal_one_at_a_time(case, B, seed, frozen):
    cfg, p, X = case
    assume(O.well_conditioned(cfg, p, X))
    Cs = np.random.default_rng(seed).standard_normal((B,) + X.shape)
    gb = sims.vjp(cfg, p, X, Cs, frozen=frozen)
    assert gb.X.shape == Cs.shape and len(gb.params) == B
    for b in range(B):
        g1 = sims.vjp(cfg, p, X, Cs[b], frozen=frozen)
        # the batch runs through differently shaped matmuls: same math, other summation order
        assert O.rel_err(gb.X[b], g1.X) <= 1e-12
        for name in O.PARAM_NAMES:
            assert O.rel_err(getattr(gb.params[b], name), getattr(g1.params, name)) <= 1e-12


@given(S.cases(n=st.integers(1, 5)), st.booleans())
def test_vjp_of_unit_last_row_cotangents_is_the_jacobian(case, frozen):
    # J[i][a, :] = (e_a on row n-1)^T dY/dX[i]: vjp and last_token_jacobian share the math.
    cfg, p, X = case
    n, d = X.shape
    Cs = np.zeros((d, n, d))
    Cs[np.arange(d), n - 1, np.arange(d)] = 1.0
    gX = sims.vjp(cfg, p, X, Cs, frozen=frozen, params_grad=False).X     # (d, n, d)
    J = sims.last_token_jacobian(cfg, p, X, frozen=frozen)                # (n, d, d)
    assert O.rel_err(np.transpose(gX, (1, 0, 2)), J) <= 1e-12


def test_vjp_params_grad_false_returns_none():
    cfg = sims.StackConfig(n_layers=1, d_model=4, n_heads=1)
    p = sims.init_params(cfg, 0)
    X = np.ones((3, 4))
    assert sims.vjp(cfg, p, X, np.ones((3, 4)), params_grad=False).params is None


@pytest.mark.parametrize("b", [0.0, 1e-200, -3e-160, 5e-324])
def test_gelu_reverse_pass_at_zero_and_tiny_preactivations(b):
    # W1 = 0 makes every MLP pre-activation u = b1 exactly. The reverse pass computes the
    # GELU derivative as (2 y / u - 1) from the saved activation, vectorised: u = 0 divides by
    # zero and tiny u leaves y subnormal, and these entries must come out as psi'(0) = 1/2
    # (so db1 is finite and equals the complex-step gradient), never NaN.
    cfg = sims.StackConfig(n_layers=1, d_model=4, n_heads=2, act="gelu")
    p = sims.init_params(cfg, 0)
    p = type(p)(**{**O.param_dict(p), "W1": np.zeros_like(p.W1), "b1": np.full_like(p.b1, b)})
    rng = np.random.default_rng(1)
    X, C = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    g = sims.vjp(cfg, p, X, C)
    want = O.cs_param_grad(cfg, p, X, C, "b1")
    assert np.isfinite(g.params.b1).all()
    assert O.rel_err(g.params.b1, want) <= VJP_RTOL
