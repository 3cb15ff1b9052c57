"""sims.forward against the plain-NumPy oracle of MODEL.md (tests/oracles.py).

Tolerance: 1e-12 relative to the largest entry of each compared array. The forward pass is
a few dozen float64 operations deep on O(1) values, so two correct implementations that
only differ in summation order agree to ~100 ulps (~2e-14); 1e-12 leaves room for the
amplification of softmax and norms while still catching any wrong term or constant.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

import oracles as O
import strategies as S
from overmix import sims

FWD_RTOL = 1e-12


def _check_against_oracle(cfg, p, X, attn=None):
    """Compare forward with the oracle; call inside @given tests (uses assume)."""
    assume(O.well_conditioned(cfg, p, X, attn))   # see oracles.conditioning
    tr = sims.forward(cfg, p, X, attn=attn)
    hid, A, Y = O.ref_forward(cfg, p, X, attn)
    assert tr.hidden.shape == hid.shape and tr.attn.shape == A.shape and tr.output.shape == Y.shape
    errs = (O.rel_err(tr.hidden, hid), O.rel_err(tr.attn, A), O.rel_err(tr.output, Y))
    assert max(errs) <= FWD_RTOL, f"rel errors (hidden, attn, output) = {errs}"
    return tr


# ---------------------------------------------------------------------------------------
# the oracle itself (its own consistency; nothing from overmix involved)
# ---------------------------------------------------------------------------------------
@given(S.cases())
def test_oracle_attention_rows_are_stochastic_and_masked(case):
    cfg, p, X = case
    _, A, _ = O.ref_forward(cfg, p, X)
    M = O.mask_matrix(O.resolved(cfg)["mask"], X.shape[0])
    assert np.abs(A.sum(-1) - 1.0).max() <= 1e-14
    assert (A[..., ~M] == 0).all() and (A >= 0).all()


@given(st.integers(1, 12), st.sampled_from([2, 4, 8]), st.floats(2.0, 1e5),
       st.floats(0.0, 1.0), st.integers(0, 2**31 - 1))
def test_oracle_rope_preserves_norms_and_depends_on_offset_only(n, dk, base, frac, seed):
    rng = np.random.default_rng(seed)
    Q, K = rng.standard_normal((2, n, dk))
    th = O.rope_thetas(dk, base, frac)
    Qr, Kr = O.rope_rotate(Q, th), O.rope_rotate(K, th)
    np.testing.assert_allclose(np.linalg.norm(Qr, axis=1), np.linalg.norm(Q, axis=1), rtol=1e-13)
    assert np.array_equal(Qr[0], Q[0])        # R_0 = I: token 0 is not rotated
    # shifting every position by 3 leaves <R_i q, R_j k> unchanged (THEORY.md C1)
    pad = np.zeros((3, dk))
    S1 = Qr @ Kr.T
    S2 = O.rope_rotate(np.vstack([pad, Q]), th)[3:] @ O.rope_rotate(np.vstack([pad, K]), th)[3:].T
    np.testing.assert_allclose(S2, S1, rtol=0, atol=1e-12 * max(1.0, np.abs(S1).max()))
    K_count = int(np.ceil(frac * dk / 2 - 1e-9))
    assert (th[K_count:] == 0).all() and (th[:K_count] > 0).all()


def test_oracle_sink_logit_gives_the_model_md_mass():
    # MODEL.md "Sinks": all other logits 0, query t puts e^b / (e^b + t) on token 0.
    b, n = 1.7, 6
    cfg = dict(n_layers=1, d_model=2, n_heads=1, sink_logit=b, attn_scale=0.0)
    A = O.ref_attention_weights(cfg, np.ones((n, 2)), np.ones((n, 2)))
    t = np.arange(1, n)
    np.testing.assert_allclose(A[1:, 0], np.exp(b) / (np.exp(b) + t), rtol=1e-14)
    assert A[0, 0] == 1.0


def test_oracle_alibi_slopes_and_sinusoidal_table():
    np.testing.assert_array_equal(O.alibi_slopes(8), 2.0 ** -np.arange(1, 9))
    P = O.sinusoidal_table(4, 4)
    np.testing.assert_allclose(P[:, 0], np.sin(np.arange(4)), rtol=1e-15)
    np.testing.assert_allclose(P[:, 3], np.cos(np.arange(4) / 100.0), rtol=1e-15)


# ---------------------------------------------------------------------------------------
# sims.forward == oracle
# ---------------------------------------------------------------------------------------
@given(S.cases())
@example((sims.StackConfig(n_layers=1, d_model=2, n_heads=1), None, np.zeros((1, 2))))
@example((sims.StackConfig(n_layers=2, d_model=4, n_heads=2, pos="rope", rope_fraction=0.5,
                           sink_logit=3.0, sink_value_scale=0.0), None, np.ones((5, 4))))
def test_forward_matches_oracle(case):
    cfg, p, X = case
    p = sims.init_params(cfg, 3) if p is None else p
    _check_against_oracle(cfg, p, X)


@pytest.mark.parametrize("pos", S.POSITIONS)
@pytest.mark.parametrize("norm", S.NORMS)
@given(data=st.data())
def test_forward_matches_oracle_for_every_norm_and_position(pos, norm, data):
    cfg, p, X = data.draw(S.cases(pos=pos, norm=norm, n=st.integers(2, 7)))
    _check_against_oracle(cfg, p, X)


@given(S.cases(attention="prescribed"), S.attention_kinds(), st.integers(0, 2**31 - 1))
def test_forward_with_prescribed_attention_uses_the_given_maps(case, kind, seed):
    cfg, p, X = case
    A = S.prescribed_attention(cfg, X.shape[0], seed, kind)
    tr = _check_against_oracle(cfg, p, X, attn=A)
    assert np.array_equal(tr.attn, A)


@given(S.cases(mask=st.tuples(st.just("window"), st.integers(1, 3)), n=st.integers(2, 7)))
def test_window_mask_attention_is_exactly_zero_outside_the_window(case):
    cfg, p, X = case
    tr = sims.forward(cfg, p, X)
    M = O.mask_matrix(cfg.mask, X.shape[0])
    assert (tr.attn[..., ~M] == 0).all()


@given(S.cases(mask="full", pos="nope", sink_logit=0.0, sink_value_scale=1.0,
               n=st.integers(2, 7)), st.randoms(use_true_random=False))
def test_full_mask_nope_map_is_permutation_equivariant(case, rnd):
    # With no positions, no mask and no sink, token identity is only the row index: Y(PX) = P Y(X).
    cfg, p, X = case
    perm = list(range(X.shape[0]))
    rnd.shuffle(perm)
    Y = sims.forward(cfg, p, X).output
    Yp = sims.forward(cfg, p, X[perm]).output
    assert O.rel_err(Yp, Y[perm]) <= FWD_RTOL


@given(S.cases(pos="sinusoidal"))
def test_sinusoidal_encoding_is_added_once_before_layer_0(case):
    cfg, p, X = case
    tr = sims.forward(cfg, p, X)
    want = X + O.sinusoidal_table(*X.shape)
    assert O.rel_err(tr.hidden[0], want) <= FWD_RTOL


@given(S.cases(pos=st.sampled_from(["nope", "rope", "alibi"])))
def test_hidden_0_is_the_input_without_sinusoidal(case):
    cfg, p, X = case
    assert np.array_equal(sims.forward(cfg, p, X).hidden[0], X)


@given(S.cases(sink_value_scale=0.0, sink_logit=st.floats(30.0, 60.0), mask="causal",
               residual=True, mlp=False, n=st.integers(2, 6)))
def test_attended_sink_with_zero_value_is_a_no_op(case):
    # MODEL.md "Sinks": lambda = 0 and all mass on token 0 -> each head adds ~0 for i > 0.
    cfg, p, X = case
    tr = sims.forward(cfg, p, X)
    gamma = tr.attn[:, :, 1:, 0]
    assume(gamma.min() > 1 - 1e-9)
    # layer update of rows i > 0 is at most (1 - gamma) * (value sizes): tiny
    step = np.abs(tr.hidden[1:, 1:] - tr.hidden[:-1, 1:]).max()
    assert step <= 1e-6 * max(1.0, np.abs(tr.hidden).max())


def test_forward_examples_from_model_md_defaults():
    cfg = sims.StackConfig()
    assert (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_ff) == (6, 64, 4, 16, 256)
    p = sims.init_params(cfg, 0)
    X = np.random.default_rng(0).standard_normal((9, 64))
    tr = sims.forward(cfg, p, X)
    hid, A, Y = O.ref_forward(cfg, p, X)
    errs = (O.rel_err(tr.hidden, hid), O.rel_err(tr.attn, A), O.rel_err(tr.output, Y))
    assert max(errs) <= FWD_RTOL, errs


@pytest.mark.parametrize("name", ["attention_logits", "attention_weights"])
def test_attention_logits_and_weights_match_oracle(name):
    if not hasattr(sims, name):
        pytest.skip(f"overmix.sims.{name} not provided (preamble API)")
    rng = np.random.default_rng(5)
    for pos in S.POSITIONS:
        for mask in ("causal", "full", ("window", 2)):
            cfg = sims.StackConfig(n_layers=1, d_model=8, n_heads=2, pos=pos, mask=mask,
                                   sink_logit=1.3, rope_fraction=0.5)
            Q, K = rng.standard_normal((2, 6, cfg.d_head))
            c = O.resolved(cfg)
            for h in range(2):
                got = getattr(sims, name)(cfg, Q, K, head=h)
                Sref = O.ref_logits(c, Q, K, h)
                M = O.mask_matrix(c["mask"], 6)
                if name == "attention_logits":
                    assert np.all(got[~M] == -np.inf)
                    assert O.rel_err(got[M], Sref[M]) <= FWD_RTOL
                else:
                    assert O.rel_err(got, O.ref_attention_weights(cfg, Q, K, h)) <= FWD_RTOL


def test_forward_is_deterministic_and_does_not_modify_inputs():
    cfg = sims.StackConfig(n_layers=2, d_model=8, n_heads=2, pos="rope")
    p = sims.init_params(cfg, 1)
    X = np.random.default_rng(2).standard_normal((5, 8))
    X0 = X.copy()
    W0 = p.W_Q.copy()
    a, b = sims.forward(cfg, p, X), sims.forward(cfg, p, X)
    assert np.array_equal(a.output, b.output) and np.array_equal(a.hidden, b.hidden)
    assert np.array_equal(X, X0) and np.array_equal(p.W_Q, W0)


@pytest.mark.parametrize("mlp", [False, True])
@pytest.mark.parametrize("branch_scale", [0.0, 0.5, 1.0])
def test_branch_scale_only_scales_residual_branches(mlp, branch_scale):
    # MODEL.md steps 7-8: Z = V + b O if residual, else Z = O; V' = psi(N2(Z)) without
    # residual. So with residual=False the output must not depend on branch_scale.
    cfg = sims.StackConfig(n_layers=2, d_model=4, n_heads=1, residual=False, mlp=mlp,
                           branch_scale=branch_scale)
    p = sims.init_params(cfg, 0)
    X = np.random.default_rng(0).standard_normal((4, 4))
    tr = sims.forward(cfg, p, X)
    hid, A, Y = O.ref_forward(cfg, p, X)
    errs = (O.rel_err(tr.hidden, hid), O.rel_err(tr.attn, A), O.rel_err(tr.output, Y))
    assert max(errs) <= FWD_RTOL, errs


def test_replace_changes_only_the_named_knob():
    cfg = sims.StackConfig(n_layers=1, d_model=4, n_heads=1)
    p = sims.init_params(cfg, 0)
    X = np.random.default_rng(0).standard_normal((4, 4))
    cfg2 = dataclasses.replace(cfg, sink_logit=2.0)
    assert cfg2.sink_logit == 2.0 and cfg2.n_layers == 1 and cfg.sink_logit == 0.0
    tr = sims.forward(cfg2, p, X)
    assert O.rel_err(tr.output, O.ref_forward(cfg2, p, X)[2]) <= FWD_RTOL


def test_vectorised_exp_is_within_one_ulp_of_libm():
    # the float64 softmax and GELU take e^x from sims._kernels._exp64_row (a polynomial
    # that vectorises); libm's exp is the reference, and out-of-range entries, inf and NaN
    # must come out exactly as libm gives them
    import math

    from overmix.sims import _kernels

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-40.0, 40.0, 20000), rng.uniform(-745.5, 709.9, 5000),
                        [0.0, -0.0, 1e-300, -708.0, -707.9999, 708.9999, 709.0, -745.2, -746.0,
                         709.8, 710.0, np.inf, -np.inf, np.nan, 0.5 * math.log(2.0)]])
    out = np.empty_like(x)
    _kernels._exp64_row(x, out, np.empty_like(x))
    def libm(v):
        try:
            return math.exp(v)
        except OverflowError:
            return math.inf

    ref = np.array([libm(v) for v in x])
    assert np.array_equal(np.isnan(out), np.isnan(x))
    fin = np.isfinite(ref) & (ref > 0)
    ulps = np.abs(out[fin] - ref[fin]) / np.spacing(ref[fin])
    assert ulps.max() <= 1.0
    assert np.array_equal(out[~fin & ~np.isnan(x)], ref[~fin & ~np.isnan(x)])
