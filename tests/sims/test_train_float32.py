"""Native float32 training (``compute_dtype="float32"``): the float32 exp, gradients against
the float64 reverse pass, training runs, determinism, checkpoints and bad input.

Oracles: e^x in float64 (NumPy) for the float32 exp; the float64 path of the same functions
for losses and gradients (itself checked against a plain-NumPy model and central
differences in tests/sims/test_train.py), evaluated at the float32-rounded weights so that
only the arithmetic differs.

Tolerances (float32's unit roundoff u = 2^-24 = 6.0e-8):
- exp: 2 ulp of the float32 result from the exact value (the method's truncation is under
  1e-8 relative, 0.2 ulp; each of the ~10 float32 operations rounds once, but Horner's
  scheme damps all but the last few; measured max 1.18 ulp over 7e5 points).
- loss: 1e-5 relative (~170 u): the cross-entropy is a sum of O(n V) rounded terms
  (measured max 1.6e-7 over 300 random configs).
- gradients: 1e-3 normwise relative over all weights (~17000 u), on the float64 oracle
  tests' domain (tests/oracles.py ``well_conditioned``: layer-norm condition <= 1e2,
  attention logits <= 1e2 in size, ...), with the language model's logits <= 1e2 in size
  too. There a softmax or norm amplifies relative rounding errors by at most ~1e2 each,
  and each entry of the reverse pass accumulates O(L (n + d + d_ff)) roundings: u 1e2
  (depth) 1e2 (amplification) ~ 6e-4. Measured: max 3.1e-5 over 300 random configs. Outside
  that domain float32 is genuinely inaccurate, not wrong: an unnormed 3-layer model with
  weight_scale 2 had attention logits up to 4.5e4 and a float32 gradient 3.5e-3 off (the
  float64 gradient moved by only 3e-7 under relative weight perturbations of size u).
  A wrong or missing term of the float32 path is an O(1) error. ReLU is left out: a
  rounding can move an input across its kink, where the gradient jumps (not an error of
  either path).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import oracles as O
from strategies import stack_configs

from overmix.sims import StackConfig, Workspace, batch_backward, batch_forward_saved, init_params
from overmix.sims import _kernels
from overmix.sims.data import bigram_backcopy_task, sample_bigram_backcopy
from overmix.sims.params import compute_dtype
from overmix.sims.train import (LMConfig, TrainConfig, init_lm, load_checkpoint, loss,
                                loss_and_grad, train)

LOSS_RTOL = 1e-5
GRAD_RTOL = 1e-3


# ------------------------------------------------------------------------------------------
# the float32 exp
# ------------------------------------------------------------------------------------------
def _exp32(x):
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty_like(x)
    _kernels._exp32_row(x, out, np.empty_like(x))
    return out


def test_float32_exp_is_within_two_ulp_of_the_exact_value():
    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(-87.0, 88.0, 200001), rng.uniform(-87.0, 88.0, 100000),
                        rng.uniform(-1.0, 1.0, 100000)]).astype(np.float32)
    got = _exp32(x).astype(np.float64)
    exact = np.exp(x.astype(np.float64))
    ulp = np.spacing(exact.astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(got - exact) / ulp) <= 2.0


def test_float32_exp_outside_the_polynomial_range():
    """Beyond [-87, 88] the kernel calls libm's expf: subnormal results, 0, inf and NaN."""
    x = np.array([-np.inf, -200.0, -104.0, -90.0, -87.2, 88.5, 88.8, 100.0, np.inf, np.nan],
                 dtype=np.float32)
    got = _exp32(x)
    with np.errstate(over="ignore", under="ignore"):
        exact = np.exp(x.astype(np.float64))
        rounded = exact.astype(np.float32)
    assert np.array_equal(got[[0, 1, 2, 6, 7, 8, 9]], rounded[[0, 1, 2, 6, 7, 8, 9]], equal_nan=True)
    assert got[0] == 0.0 and got[7] == np.inf and np.isnan(got[9])
    mid = [3, 4, 5]  # subnormal, smallest normals, near overflow: within 1 ulp
    ulp = np.spacing(rounded[mid]).astype(np.float64)
    assert np.all(np.abs(got[mid] - exact[mid]) <= ulp)


def test_the_exp_row_dispatch_picks_the_kernel_of_the_dtype():
    """The softmax core (_exp_shifted) must use the float32 kernel for float32 rows (the
    float64 one would reinterpret float32 bits as int64) and give the float64 one's bits
    for float64 rows."""
    s = np.linspace(-30.0, 3.0, 37)
    e64, t64 = np.empty_like(s), np.empty_like(s)
    e_ref, t_ref = np.empty_like(s), np.empty_like(s)
    tot64 = _kernels._exp_shifted(s.copy(), e64, t64)
    sh = s - s.max()
    _kernels._exp64_row(sh, e_ref, t_ref)
    assert np.array_equal(e64, e_ref) and tot64 == sum(e_ref)
    s32 = s.astype(np.float32)
    e32, t32 = np.empty_like(s32), np.empty_like(s32)
    _kernels._exp_shifted(s32.copy(), e32, t32)
    assert e32.dtype == np.float32
    sh32 = s32 - s32.max()  # the shift rounds in float32, as in the kernel
    np.testing.assert_allclose(e32, np.exp(sh32.astype(np.float64)), rtol=2.5e-7)  # 2 ulp


def test_float32_gelu_derivative_near_zero_is_one_half():
    """psi'(u) comes from y = psi(u) as t = 2 y / u - 1; for float32 subnormal u, y = u / 2
    has few significant bits (or rounds to 0), so below 1e-30 the kernel returns 1/2, which
    is psi'(u) = 1/2 + 0.8 u to float32 precision there."""
    u = np.array([0.0, 1e-45, -1e-44, 1e-40, -1e-38, 1e-31, 2e-30, -3e-8, 0.25, -2.0],
                 dtype=np.float32)
    y, work, ework = np.empty_like(u), np.empty_like(u), np.empty_like(u)
    v = u.copy()
    _kernels._gelu_row64(v, np.zeros_like(u), y, work, ework)
    got = np.empty_like(u)
    _kernels._act_grad_row(v, y, 0, got)
    x = u.astype(np.float64)  # psi'(u) of the tanh-form GELU, in float64
    k = np.sqrt(2.0 / np.pi)
    th = np.tanh(k * (x + 0.044715 * x ** 3))
    want = 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th ** 2) * k * (1.0 + 3.0 * 0.044715 * x ** 2)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert np.all(got[:6] == np.float32(0.5))


# ------------------------------------------------------------------------------------------
# losses and gradients against the float64 path
# ------------------------------------------------------------------------------------------
def _rel(a, b):
    return float(np.linalg.norm(np.asarray(a, np.float64) - b))


def _well_conditioned_lm(lm, p, x):
    """The float64 oracle tests' domain for every sequence's stack input, and LM logits
    within 1e2 in size (the same bound as the attention logits'), from the plain-NumPy
    oracle."""
    d = p.as_dict()
    Wu = d["W_U"] if "W_U" in d else d["E"].T
    for s in range(x.shape[0]):
        X = d["E"][x[s]] + (d["P"][:x.shape[1]] if "P" in d else 0.0)
        if not O.well_conditioned(lm.stack, p.stack, X):
            return False
        if np.abs(O.ref_forward(lm.stack, p.stack, X)[2] @ Wu).max() > 1e2:
            return False
    return True


@given(cfg=stack_configs(act=st.sampled_from(["gelu", "tanh"])), tied=st.booleans(),
       table=st.booleans(), seed=st.integers(0, 2**16), n=st.integers(1, 8))
@settings(max_examples=25)
def test_float32_loss_and_gradients_match_float64_at_the_same_weights(cfg, tied, table, seed, n):
    lm = LMConfig(cfg, vocab_size=5, tied=tied, max_len=9 if table else 0)
    p = init_lm(lm, seed).checked(lm, "float32")  # the weights float32 can hold
    t = np.random.default_rng(seed + 1).integers(0, 5, (2, n + 1))
    x, y = t[:, :-1], t[:, 1:]
    assume(_well_conditioned_lm(lm, p.checked(lm), x))
    r32 = loss_and_grad(lm, p, x, y, compute_dtype="float32")
    r64 = loss_and_grad(lm, p, x, y)  # p cast up exactly
    g32, g64 = r32.grads.as_dict(), r64.grads.as_dict()
    assert g32.keys() == g64.keys()
    assert all(g.dtype == np.float32 for g in g32.values()) and r32.attn.dtype == np.float32
    assert abs(r32.loss - r64.loss) <= LOSS_RTOL * abs(r64.loss)
    g_all = np.sqrt(sum(np.vdot(g, g) for g in g64.values()))
    assume(g_all > 1e-6)
    err = np.sqrt(sum(_rel(g32[k], g64[k]) ** 2 for k in g64))
    assert err <= GRAD_RTOL * g_all, (err / g_all, {k: _rel(g32[k], g64[k]) for k in g64})


def test_float32_really_computes_in_float32():
    """The float32 path must differ from float64 by roundings of size u, not agree to
    float64 precision (which would mean float64 arithmetic with a cast at the end)."""
    lm = LMConfig(StackConfig(n_layers=2, d_model=16, n_heads=2, pos="rope"), vocab_size=11)
    p = init_lm(lm, 0).checked(lm, "float32")
    t = np.random.default_rng(0).integers(0, 11, (3, 13))
    r32 = loss_and_grad(lm, p, t[:, :-1], t[:, 1:], compute_dtype="float32")
    r64 = loss_and_grad(lm, p, t[:, :-1], t[:, 1:])
    g32, g64 = r32.grads.stack.W_Q, r64.grads.stack.W_Q
    rel = np.linalg.norm(g32 - g64) / np.linalg.norm(g64)
    assert 1e-9 < rel < GRAD_RTOL
    assert loss(lm, p, t[:, :-1], t[:, 1:], compute_dtype="float32") == r32.loss


def test_batch_backward_keeps_the_forward_passes_dtype():
    cfg = StackConfig(n_layers=2, d_model=8, n_heads=2, pos="alibi")
    p = init_params(cfg, 1)
    X = np.random.default_rng(1).standard_normal((3, 6, 8))
    ws = Workspace()
    s32 = batch_forward_saved(cfg, p, X, workspace=ws, compute_dtype="float32")
    assert s32.output.dtype == np.float32 and s32.attn.dtype == np.float32
    np.testing.assert_allclose(s32.attn.sum(-1), 1.0, rtol=1e-6)
    C = np.random.default_rng(2).standard_normal(X.shape)
    dX32, g32 = batch_backward(s32, C)
    assert dX32.dtype == np.float32 and g32.W1.dtype == np.float32
    s64 = batch_forward_saved(cfg, p, X, workspace=ws)  # same workspace: arrays remade in float64
    assert s64.output.dtype == np.float64
    dX64, g64 = batch_backward(s64, C)
    assert dX64.dtype == np.float64
    assert _rel(dX32, dX64) <= GRAD_RTOL * np.linalg.norm(dX64)


# ------------------------------------------------------------------------------------------
# training runs
# ------------------------------------------------------------------------------------------
def _setup(steps, dtype, **kw):
    task = bigram_backcopy_task(6, 1, seed=0)
    n = 12
    lm = LMConfig(StackConfig(n_layers=1, d_model=8, n_heads=2), vocab_size=task.vocab_size, max_len=n)
    tc = TrainConfig(steps=steps, batch_size=8, lr=1e-2, record_every=10, compute_dtype=dtype, **kw)
    data = lambda step: sample_bigram_backcopy(task, 8, n + 1, seed=1000 + step)  # noqa: E731
    ev = sample_bigram_backcopy(task, 8, n + 1, seed=1)
    return lm, tc, data, ev


def test_float32_training_learns_and_tracks_the_float64_run():
    lm, tc32, data, ev = _setup(60, "float32")
    p32, h32 = train(lm, tc32, data, ev, seed=0)
    p64, h64 = train(lm, dataclasses.replace(tc32, compute_dtype="float64"), data, ev, seed=0)
    assert all(v.dtype == np.float32 for v in p32.as_dict().values())
    assert h32.eval_loss[-1] < h32.eval_loss[0] - 0.5
    # same initial weights (up to float32 rounding) and data: the evaluation losses agree
    # (measured max |difference| 1.1e-7 over the 7 recorded steps); the bound 1e-4 leaves
    # room for rounding differences to grow over training (the loss falls by 1.4)
    assert np.max(np.abs(np.array(h32.eval_loss) - h64.eval_loss)) < 1e-4
    assert all(np.isfinite(h32.sink_metric))


def test_float32_training_is_deterministic_and_resumes_bit_for_bit(tmp_path):
    lm, tc, data, ev = _setup(25, "float32")
    ref_p, ref_h = train(lm, tc, data, ev, seed=2)
    again_p, _ = train(lm, tc, data, ev, seed=2)
    assert all(np.array_equal(a, b) for a, b in zip(ref_p.as_dict().values(), again_p.as_dict().values()))
    ck = tmp_path / "run.npz"

    class Stop(Exception):
        pass

    def stop_at_15(done, total):
        if done == 15:
            raise Stop

    with pytest.raises(Stop):
        train(lm, tc, data, ev, seed=2, checkpoint=ck, checkpoint_every=10, progress=stop_at_15)
    saved = load_checkpoint(ck)
    assert saved["step"] == 10 and saved["train"].compute_dtype == "float32"
    assert saved["params"].E.dtype == np.float32 and saved["opt_state"]["v"]["E"].dtype == np.float32
    p, h = train(lm, tc, data, ev, seed=2, checkpoint=ck, checkpoint_every=10, resume=True)
    assert all(np.array_equal(a, b) for a, b in zip(p.as_dict().values(), ref_p.as_dict().values()))
    a, b = h.arrays(), ref_h.arrays()
    assert all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)


def test_train_config_round_trips_compute_dtype_and_old_configs_default_to_float64():
    tc = TrainConfig(compute_dtype="float32")
    assert TrainConfig.from_dict(tc.to_dict()) == tc
    old = tc.to_dict()
    del old["compute_dtype"]  # a checkpoint written before the field existed
    assert TrainConfig.from_dict(old).compute_dtype == "float64"
    assert TrainConfig(compute_dtype=np.float32).compute_dtype == "float32"


# ------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["float16", "bfloat16", "int32", None, 3, "f", "f8", np.float16, int])
def test_bad_compute_dtypes_are_refused_naming_the_argument(bad):
    with pytest.raises(ValueError, match="compute_dtype"):
        compute_dtype(bad)
    with pytest.raises(ValueError, match="compute_dtype"):
        TrainConfig(compute_dtype=bad)


def test_float32_refuses_emulated_formats_and_values_beyond_its_range():
    cfg = StackConfig(n_layers=1, d_model=4, n_heads=1)
    p = init_params(cfg, 0)
    X = np.ones((1, 3, 4))
    with pytest.raises(ValueError, match="compute_dtype='float32' needs cfg.dtype='float64'"):
        batch_forward_saved(dataclasses.replace(cfg, dtype="bfloat16"), p, X, compute_dtype="float32")
    with pytest.raises(ValueError, match="X must be finite in compute_dtype='float32'"):
        batch_forward_saved(cfg, p, X * 1e39, compute_dtype="float32")
    big = dataclasses.replace(p, W1=p.W1 * 1e39)
    with pytest.raises(ValueError, match="params.W1 must be finite in float32"):
        batch_forward_saved(cfg, big, X, compute_dtype="float32")
    lm = LMConfig(cfg, vocab_size=3)
    lp = init_lm(lm, 0)
    lp = dataclasses.replace(lp, E=lp.E * 1e39)
    with pytest.raises(ValueError, match="params.E must be finite in float32"):
        loss(lm, lp, np.zeros((1, 2), int), np.zeros((1, 2), int), compute_dtype="float32")
