"""Batched entry points (sims/batch.py) equal the one-run functions bit for bit.

batch_forward / batch_last_token_jacobian / batch_sensitivity run S parameter sets in
parallel (kernel threads), each run in its own slot, so they must reproduce the per-run calls
exactly (==), whatever the thread count. batch_forward_saved + batch_backward run S input
sequences through one parameter set: per-sequence results are exact, and the parameter
cotangent is the sum over sequences of the per-sequence ones (summation order may differ:
1e-12 relative to the largest entry).
"""

from __future__ import annotations

import dataclasses

import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import oracles as O
import strategies as S
from overmix import sims


def _seeds():
    return st.lists(st.integers(0, 2**31 - 1), min_size=1, max_size=4)


def _eq_trace(bt, s, tr):
    return (np.array_equal(bt.hidden[s], tr.hidden) and np.array_equal(bt.attn[s], tr.attn)
            and np.array_equal(bt.output[s], tr.output))


@given(S.cases(dtype=st.sampled_from(["float64", "float64", "float32", "bfloat16"])), _seeds())
def test_batch_forward_over_seeds_equals_per_seed_calls(case, seeds):
    cfg, _, X = case
    ps = sims.params_for_seeds(cfg, seeds)
    assert all(a == sims.init_params(cfg, s) for a, s in zip(ps, seeds))
    try:
        bt = sims.batch_forward(cfg, ps, X)
    except FloatingPointError:      # low-precision overflow: the one-run calls must agree
        with pytest.raises(FloatingPointError):
            for p in ps:
                sims.forward(cfg, p, X)
    else:
        assert bt.output.shape == (len(seeds),) + X.shape
        for s, p in enumerate(ps):
            assert _eq_trace(bt, s, sims.forward(cfg, p, X))


@given(S.cases(), _seeds(), st.data())
def test_batch_forward_with_one_X_per_run_equals_per_run_calls(case, seeds, data):
    cfg, _, X = case
    ps = [S.random_params(cfg, s) for s in seeds]
    Xs = np.stack([X] + [data.draw(S.tokens(*X.shape)) for _ in seeds[1:]])
    bt = sims.batch_forward(cfg, ps, Xs)
    for s, p in enumerate(ps):
        assert _eq_trace(bt, s, sims.forward(cfg, p, Xs[s]))


@given(S.cases(attention="prescribed"), _seeds(), S.attention_kinds())
def test_batch_forward_with_shared_prescribed_attention(case, seeds, kind):
    cfg, _, X = case
    A = S.prescribed_attention(cfg, X.shape[0], seeds[0], kind)
    ps = sims.params_for_seeds(cfg, seeds)
    bt = sims.batch_forward(cfg, ps, X, attn=A)
    for s, p in enumerate(ps):
        assert _eq_trace(bt, s, sims.forward(cfg, p, X, attn=A))


@given(S.cases(), _seeds(), st.booleans())
def test_batch_jacobian_and_sensitivity_equal_per_seed_calls(case, seeds, frozen):
    cfg, _, X = case
    ps = sims.params_for_seeds(cfg, seeds)
    J = sims.batch_last_token_jacobian(cfg, ps, X, frozen=frozen)
    s2 = sims.batch_sensitivity(cfg, ps, X, frozen=frozen)
    sf = sims.batch_sensitivity(cfg, ps, X, frozen=frozen, ord="fro")
    assert J.shape == (len(seeds), X.shape[0], cfg.d_model, cfg.d_model)
    for s, p in enumerate(ps):
        assert np.array_equal(J[s], sims.last_token_jacobian(cfg, p, X, frozen=frozen))
        assert np.array_equal(s2[s], sims.sensitivity(cfg, p, X, frozen=frozen))
        assert np.array_equal(sf[s], sims.sensitivity(cfg, p, X, frozen=frozen, ord="fro"))


@given(S.cases(), st.integers(1, 4), st.integers(0, 2**31 - 1), st.booleans())
def test_batch_backward_equals_per_sequence_vjp(case, B, seed, frozen):
    cfg, p, X = case
    rng = np.random.default_rng(seed)
    Xs = np.concatenate([X[None], rng.uniform(-3, 3, (B - 1,) + X.shape)])
    Cs = rng.standard_normal(Xs.shape)
    saved = sims.batch_forward_saved(cfg, p, Xs)
    dX, dP = sims.batch_backward(saved, Cs, frozen=frozen)
    assert dX.shape == Xs.shape
    total = {k: 0.0 for k in O.PARAM_NAMES}
    for b in range(B):
        tr = sims.forward(cfg, p, Xs[b])
        assert np.array_equal(saved.output[b], tr.output)
        assert np.array_equal(saved.attn[b], tr.attn)
        g = sims.vjp(cfg, p, Xs[b], Cs[b], frozen=frozen)
        assert O.rel_err(dX[b], g.X) <= 1e-12
        for k in O.PARAM_NAMES:
            total[k] = total[k] + getattr(g.params, k)
    for k in O.PARAM_NAMES:
        assert O.rel_err(getattr(dP, k), total[k]) <= 1e-12, k


def test_batch_results_do_not_depend_on_the_thread_count():
    cfg = sims.StackConfig(n_layers=2, d_model=8, n_heads=2, pos="rope", sink_logit=1.0)
    ps = sims.params_for_seeds(cfg, range(6))
    X = np.random.default_rng(0).standard_normal((7, 8))
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = (sims.batch_forward(cfg, ps, X).output, sims.batch_last_token_jacobian(cfg, ps, X))
        numba.set_num_threads(max(2, before) if numba.config.NUMBA_NUM_THREADS >= 2 else 1)
        many = (sims.batch_forward(cfg, ps, X).output, sims.batch_last_token_jacobian(cfg, ps, X))
    finally:
        numba.set_num_threads(before)
    assert all(np.array_equal(a, b) for a, b in zip(one, many))


def test_batch_bad_input_names_the_argument():
    cfg = sims.StackConfig(n_layers=1, d_model=4, n_heads=1)
    ps = sims.params_for_seeds(cfg, [0, 1])
    with pytest.raises(ValueError, match=r"\bX\b"):
        sims.batch_forward(cfg, ps, np.ones((3, 3, 4)))        # 3 runs of X for 2 params
    with pytest.raises(ValueError, match=r"\bX\b"):
        sims.batch_forward(cfg, ps, np.full((3, 4), np.nan))
    with pytest.raises((ValueError, TypeError), match="params"):
        sims.batch_forward(cfg, [], np.ones((3, 4)))
    with pytest.raises((ValueError, TypeError), match="seed"):
        sims.params_for_seeds(cfg, [-1])
    wrong = dataclasses.replace(ps[1], W_Q=np.ones((1, 1, 4, 3)))
    with pytest.raises(ValueError, match="W_Q"):
        sims.batch_forward(cfg, [ps[0], wrong], np.ones((3, 4)))


# ---- Workspace: memory reused between calls (the training loop) ----


def _minibatch(cfg, S_, n, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((S_, n, cfg.d_model)), rng.standard_normal((S_, n, cfg.d_model))


def _fwd_bwd(cfg, p, X, C, ws):
    """(every saved array and the output, dX, parameter cotangents), copied out of ws."""
    saved = sims.batch_forward_saved(cfg, p, X, workspace=ws)
    arrays = [a.copy() for a in saved.arrays + (saved.output,)]
    dX, dP = sims.batch_backward(saved, C)
    return arrays + [dX.copy()], dP


def _same(got, want):
    return all(np.array_equal(a, b) for a, b in zip(got[0], want[0])) and got[1] == want[1]


def test_workspace_results_equal_fresh_memory_bit_for_bit():
    # the second call through the workspace reads buffers full of the first call's values:
    # any buffer the kernels read before writing would show up as a difference
    # (a window mask and cotangents on the last row only: the reverse pass never touches the
    # early rows of dX, which must read as zero)
    cfg = sims.StackConfig(n_layers=2, d_model=8, n_heads=2, pos="rope", sink_logit=0.5,
                           mask=("window", 2))
    p = sims.init_params(cfg, 3)
    ws = sims.Workspace()
    _fwd_bwd(cfg, p, *_minibatch(cfg, 5, 7, 1), ws)
    X, C = _minibatch(cfg, 5, 7, 2)
    C[:, :-1] = 0.0
    assert _same(_fwd_bwd(cfg, p, X, C, ws), _fwd_bwd(cfg, p, X, C, None))


def test_workspace_follows_a_change_of_config():
    # same shapes, MLP switched off: the saved MLP arrays, which the new config never
    # writes, must read as zero (as with fresh memory), not keep the old config's values
    on = sims.StackConfig(n_layers=1, d_model=8, n_heads=2)
    off = dataclasses.replace(on, mlp=False)
    ws = sims.Workspace()
    X, C = _minibatch(on, 3, 5, 0)
    _fwd_bwd(on, sims.init_params(on, 0), X, C, ws)
    p = sims.init_params(off, 1)
    assert _same(_fwd_bwd(off, p, X, C, ws), _fwd_bwd(off, p, X, C, None))


def test_workspace_refuses_a_saved_batch_it_has_overwritten():
    cfg = sims.StackConfig(n_layers=1, d_model=4, n_heads=1)
    p = sims.init_params(cfg, 0)
    ws = sims.Workspace()
    X, C = _minibatch(cfg, 2, 3, 0)
    old = sims.batch_forward_saved(cfg, p, X, workspace=ws)
    sims.batch_forward_saved(cfg, p, X + 1.0, workspace=ws)
    with pytest.raises(ValueError, match="Workspace"):
        sims.batch_backward(old, C)
    with pytest.raises(TypeError, match="workspace"):
        sims.batch_forward_saved(cfg, p, X, workspace={})


def test_batch_backward_does_not_depend_on_the_thread_count():
    # parameter cotangents are summed in fixed groups of sequences, not per thread
    cfg = sims.StackConfig(n_layers=2, d_model=8, n_heads=2, pos="rope")
    p = sims.init_params(cfg, 0)
    X, C = _minibatch(cfg, 37, 6, 4)  # 37 sequences: groups of 3, the last one short
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = _fwd_bwd(cfg, p, X, C, None)
        numba.set_num_threads(max(2, before) if numba.config.NUMBA_NUM_THREADS >= 2 else 1)
        many = _fwd_bwd(cfg, p, X, C, None)
    finally:
        numba.set_num_threads(before)
    assert _same(one, many)


def test_saved_trace_shapes_agree_with_the_kernels_own_buffers():
    """The saved trace is spelled twice: stack.saved_shapes (Python: single and batched
    forward passes) and _kernels._trace_buffers (inside Numba, for the many-run entry
    points). Both must give the same shapes, and zero the same (MLP-only) arrays."""
    from overmix.sims import _kernels
    from overmix.sims.stack import _MLP_SAVED, saved_shapes

    cfg = sims.StackConfig(n_layers=3, d_model=12, n_heads=2, d_ff=20)
    n = 7
    shapes = saved_shapes(cfg, n)
    kernel_names = [k for k in shapes if k not in ("hidden", "A")]
    bufs = _kernels._trace_buffers(cfg.n_layers, cfg.n_heads, n, cfg.d_model, cfg.d_head,
                                   cfg.d_ff)
    assert [b.shape for b in bufs] == [shapes[k] for k in kernel_names]
    for k, b in zip(kernel_names, bufs):
        if k in _MLP_SAVED:
            assert not b.any(), k
    assert shapes["hidden"] == (cfg.n_layers + 1, n, cfg.d_model)
    assert shapes["A"] == (cfg.n_layers, cfg.n_heads, n, n)
