"""Training small language models (overmix.sims.train): exact gradients, optimisers,
determinism, checkpoints, divergence and bad input.

The oracle is a plain-NumPy language model written here from MODEL.md ("A small language
model"): embedding, the stack of tests/oracles.py (``ref_forward``, which imports nothing
from overmix), unembedding and a stable cross-entropy. Gradients are checked against
4th-order central differences of that oracle.

Tolerance of the gradient check (the brief's 1e-6 relative): for a direction v,
|FD - <g, v>| <= 1e-6 ||g|| ||v||. With step h = 1e-4 the stencil's truncation error is
O(h^4 |L^(5)|) ~ 1e-16 and its rounding error ~ eps |L| / h ~ 1e-12 (|L| ~ 1), both far below
1e-6 ||g_k|| for the gradients met here; a kind whose gradient is legitimately ~0 (W_Q with
one token, W1 without MLP) is held to 1e-6 of a floor 1e-3 ||g|| (||g|| > 1e-2 assumed), so
its differences must vanish too. A wrong term of the gradient shows up at order ||g_k||.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from oracles import ref_forward
from strategies import stack_configs

from overmix.sims import StackConfig
from overmix.sims.data import bigram_backcopy_task, sample_bigram_backcopy
from overmix.sims.train import (History, LMConfig, LMParams, TrainConfig, TrainingDiverged,
                                clip_by_global_norm, init_lm, init_opt_state, load_checkpoint,
                                loss, loss_and_grad, opt_step, train)

GRAD_RTOL = 1e-6


# ------------------------------------------------------------------------------------------
# the oracle
# ------------------------------------------------------------------------------------------
def oracle_loss(stack_cfg, P, inputs, targets, weights=None):
    """Mean cross-entropy of the LM of MODEL.md, from parameter dict P (plain NumPy)."""
    S, n = inputs.shape
    w = np.ones((S, n)) if weights is None else weights
    total = 0.0
    for s in range(S):
        X = P["E"][inputs[s]]
        if "P" in P:
            X = X + P["P"][:n]
        Y = ref_forward(stack_cfg, P, X)[2]
        Wu = P["W_U"] if "W_U" in P else P["E"].T
        z = Y @ Wu
        zmax = z.max(axis=1, keepdims=True)
        lse = zmax[:, 0] + np.log(np.exp(z - zmax).sum(axis=1))
        total += (w[s] * (lse - z[np.arange(n), targets[s]])).sum()
    return total / w.sum()


def fd_directional(f, h=1e-4):
    return (-f(2 * h) + 8 * f(h) - 8 * f(-h) + f(-2 * h)) / (12 * h)


def fd_converged(f, tol):
    """fd_directional at the largest step h in (1e-4, 1e-5) whose estimate agrees with the
    one at h / 10 to within tol (else the one at 1e-6). Near a point where a norm's centred
    input is tiny (d_model = 2 and layer norm: x1 ~ x2) the loss has curvature ~ |c|^-3 and
    h = 1e-4 is too coarse: seen for E, 3.46053 at h = 1e-4, 3.4607562 at 1e-5 and 1e-6,
    reverse mode 3.4607562. Requiring two steps to agree keeps the tolerance as it is."""
    prev = fd_directional(f, 1e-4)
    for h in (1e-5, 1e-6):
        cur = fd_directional(f, h)
        if abs(cur - prev) <= tol:
            return prev
        prev = cur
    return prev


def model_md(cfg):
    """cfg with branch_scale = 1 when residual is off: MODEL.md step 7 applies no branch
    scale without a residual (Z = O), but the sims kernels (at the time of writing) do; the
    discrepancy is the core's and is reported, not hidden by a tolerance."""
    return cfg if cfg.residual else dataclasses.replace(cfg, branch_scale=1.0)


def small_lm(tied=False, max_len=0, **stack_kw):
    kw = dict(n_layers=2, d_model=8, n_heads=2)
    kw.update(stack_kw)
    return LMConfig(StackConfig(**kw), vocab_size=7, tied=tied, max_len=max_len)


# ------------------------------------------------------------------------------------------
# loss and gradients
# ------------------------------------------------------------------------------------------
@given(cfg=stack_configs(act=st.sampled_from(["gelu", "tanh"])), tied=st.booleans(),
       table=st.booleans(), weighted=st.booleans(), seed=st.integers(0, 2**16),
       n=st.integers(1, 5))
@settings(max_examples=20)
def test_loss_matches_the_numpy_oracle(cfg, tied, table, weighted, seed, n):
    cfg = model_md(cfg)
    lm = LMConfig(cfg, vocab_size=5, tied=tied, max_len=6 if table else 0)
    p = init_lm(lm, seed)
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 5, (2, n + 1))
    w = rng.uniform(0.1, 1.0, (2, n)) if weighted else None
    got = loss(lm, p, t[:, :-1], t[:, 1:], w)
    want = oracle_loss(cfg, p.as_dict(), t[:, :-1], t[:, 1:], w)
    assert abs(got - want) <= 1e-12 * max(1.0, abs(want))


@given(cfg=stack_configs(act=st.sampled_from(["gelu", "tanh"])), tied=st.booleans(),
       table=st.booleans(), seed=st.integers(0, 2**16), n=st.integers(1, 5))
@example(cfg=StackConfig(n_layers=2, d_model=4, n_heads=2, pos="rope"), tied=False, table=True,
         seed=0, n=4)
@example(cfg=StackConfig(n_layers=1, d_model=4, n_heads=1, sink_logit=3.0, sink_value_scale=0.0),
         tied=True, table=False, seed=1, n=3)
@example(cfg=StackConfig(n_layers=1, d_model=2, n_heads=1, d_ff=1, norm="layer",
                         final_norm="layer", residual=False, mlp=False, weight_scale=0.5),
         tied=False, table=False, seed=1, n=1)  # the ill-conditioned point of fd_converged
@settings(max_examples=12)
def test_every_gradient_matches_central_differences_of_the_oracle(cfg, tied, table, seed, n):
    cfg = model_md(cfg)
    # Without a residual stream and with a zero sink value, token 0's final-norm input is
    # exactly 0, where rms/layer norm has curvature ~ eps^(-3/2) (eps = 1e-6): central
    # differences at any usable step are off by O(1) there (seen: b2, 123.369 vs 123.372),
    # so that corner is outside this test's domain (the kernels' VJP there is covered by
    # tests/sims/test_vjp.py on its conditioned domain).
    assume(cfg.residual or cfg.sink_value_scale != 0.0)
    lm = LMConfig(cfg, vocab_size=5, tied=tied, max_len=6 if table else 0)
    p = init_lm(lm, seed)
    rng = np.random.default_rng(seed + 1)
    t = rng.integers(0, 5, (2, n + 1))
    x, y = t[:, :-1], t[:, 1:]
    g = loss_and_grad(lm, p, x, y).grads.as_dict()
    base = p.as_dict()
    names = set(base)
    assert {"E"} <= names and (("P" in names) == table) and (("W_U" in names) == (not tied))
    g_all = np.sqrt(sum(np.vdot(a, a) for a in g.values()))
    assume(g_all > 1e-2)
    for k in sorted(base):
        gn = np.linalg.norm(g[k])
        # a kind whose gradient is (legitimately) ~0, e.g. W_Q with n = 1 or W1 without MLP,
        # is held to 1e-6 of a floor of 1e-3 ||g||: its differences must vanish as well
        scale = max(gn, 1e-3 * g_all)
        dirs = [rng.standard_normal(base[k].shape)] + ([g[k] / gn] if gn > 0 else [])
        for v in dirs:
            def f(h):
                q = dict(base)
                q[k] = base[k] + h * v
                return oracle_loss(cfg, q, x, y)
            tol = GRAD_RTOL * scale * np.linalg.norm(v)
            fd = fd_converged(f, tol)
            an = float(np.vdot(g[k], v))
            assert abs(fd - an) <= tol, (k, fd, an, gn)


def test_untrained_position_table_rows_get_zero_gradient():
    lm = small_lm(max_len=10)
    p = init_lm(lm, 0)
    t = np.random.default_rng(0).integers(0, 7, (3, 5))
    gP = loss_and_grad(lm, p, t[:, :-1], t[:, 1:]).grads.P
    assert (gP[4:] == 0).all() and (np.abs(gP[:4]).sum(axis=1) > 0).all()


# ------------------------------------------------------------------------------------------
# optimisers
# ------------------------------------------------------------------------------------------
def test_first_adam_step_moves_each_weight_by_lr_times_sign():
    # m_hat = g, v_hat = g^2 at t = 1: w - lr g / (|g| + eps)
    tc = TrainConfig(lr=0.01, adam_eps=1e-8)
    w = {"a": np.array([1.0, -2.0, 3.0])}
    g = {"a": np.array([0.5, -1e-3, 0.0])}
    new, state = opt_step(w, g, init_opt_state(w, tc), tc, tc.lr)
    assert np.allclose(new["a"], w["a"] - 0.01 * g["a"] / (np.abs(g["a"]) + 1e-8), rtol=0, atol=1e-15)
    assert state["t"] == 1


def test_sgd_with_momentum_accumulates_gradients():
    tc = TrainConfig(optimizer="sgd", lr=0.1, betas=(0.5, 0.0))
    w = {"a": np.array([1.0])}
    g = {"a": np.array([2.0])}
    s = init_opt_state(w, tc)
    w1, s = opt_step(w, g, s, tc, tc.lr)      # m = 2
    w2, s = opt_step(w1, g, s, tc, tc.lr)     # m = 0.5 * 2 + 2 = 3
    assert w1["a"][0] == 1.0 - 0.1 * 2.0 and w2["a"][0] == w1["a"][0] - 0.1 * 3.0


def test_clipping_scales_to_the_threshold():
    g = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}
    c, norm = clip_by_global_norm(g, 1.0)
    assert norm == 5.0
    assert np.isclose(np.sqrt(sum((v ** 2).sum() for v in c.values())), 1.0, rtol=1e-15)
    same, _ = clip_by_global_norm(g, 0.0)
    assert all(np.array_equal(same[k], g[k]) for k in g)
    with pytest.raises(ValueError, match="max_norm"):
        clip_by_global_norm(g, -1.0)
    with pytest.raises(ValueError, match="lr"):
        opt_step(g, g, init_opt_state(g, TrainConfig()), TrainConfig(), 0.0)


# ------------------------------------------------------------------------------------------
# training runs
# ------------------------------------------------------------------------------------------
def bb_setup(steps=40, n=12, batch=8, **tc_kw):
    task = bigram_backcopy_task(6, 1, seed=0)
    lm = LMConfig(StackConfig(n_layers=1, d_model=8, n_heads=2), vocab_size=task.vocab_size, max_len=n)
    kw = dict(steps=steps, batch_size=batch, lr=1e-2, record_every=10, attn_steps=(0, steps))
    kw.update(tc_kw)
    tc = TrainConfig(**kw)
    data = lambda step: sample_bigram_backcopy(task, batch, n + 1, seed=1000 + step)  # noqa: E731
    ev = sample_bigram_backcopy(task, 8, n + 1, seed=1)
    return lm, tc, data, ev


def test_loss_decreases_on_a_fixed_seed():
    lm, tc, data, ev = bb_setup(steps=60)
    _, h = train(lm, tc, data, ev, seed=0)
    assert h.steps == [0, 10, 20, 30, 40, 50, 60]
    assert h.eval_loss[-1] < h.eval_loss[0] - 0.5
    assert len(h.step_loss) == 60 and len(h.sink_metric) == len(h.steps)
    assert all(0.0 <= m <= 1.0 for m in h.sink_metric)
    assert np.asarray(h.sink_scores).shape == (7, 1, 2)
    assert np.asarray(h.attn).shape == (2, 1, 2, 12, 12) and h.attn_steps == [0, 60]


def test_same_seed_same_bits():
    lm, tc, data, ev = bb_setup(steps=15)
    p1, h1 = train(lm, tc, data, ev, seed=3)
    p2, h2 = train(lm, tc, data, ev, seed=3)
    assert p1.as_dict().keys() == p2.as_dict().keys()
    assert all(np.array_equal(a, b) for a, b in zip(p1.as_dict().values(), p2.as_dict().values()))
    a1, a2 = h1.arrays(), h2.arrays()
    assert all(np.array_equal(a1[k], a2[k], equal_nan=True) for k in a1)
    p3, _ = train(lm, tc, data, ev, seed=4)
    assert not np.array_equal(p1.E, p3.E)


class _Stop(Exception):
    pass


def test_resume_from_checkpoint_repeats_the_trajectory_bit_for_bit(tmp_path):
    lm, tc, data, ev = bb_setup(steps=30)
    ref_p, ref_h = train(lm, tc, data, ev, seed=1)
    ck = tmp_path / "run.npz"

    def stop_at_25(done, total):
        if done == 25:
            raise _Stop

    with pytest.raises(_Stop):
        train(lm, tc, data, ev, seed=1, checkpoint=ck, checkpoint_every=10, progress=stop_at_25)
    assert load_checkpoint(ck)["step"] == 20
    p, h = train(lm, tc, data, ev, seed=1, checkpoint=ck, checkpoint_every=10, resume=True)
    assert all(np.array_equal(a, b) for a, b in zip(p.as_dict().values(), ref_p.as_dict().values()))
    a, b = h.arrays(), ref_h.arrays()
    assert all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)
    assert load_checkpoint(ck)["step"] == 30
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]  # atomic writes left nothing


def test_resume_refuses_a_checkpoint_of_another_config(tmp_path):
    lm, tc, data, ev = bb_setup(steps=3)
    ck = tmp_path / "run.npz"
    train(lm, tc, data, ev, checkpoint=ck)
    with pytest.raises(ValueError, match="another config"):
        train(lm, dataclasses.replace(tc, lr=0.5), data, ev, checkpoint=ck, resume=True)


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path):
    # plain SGD with an absurd learning rate: finite after one step, overflowing soon after
    lm, tc, data, ev = bb_setup(steps=50, optimizer="sgd", lr=1e12, clip=0.0, betas=(0.0, 0.0))
    ck = tmp_path / "run.npz"
    with pytest.raises(TrainingDiverged, match=r"diverged at step \d+.*lr=1e\+12") as info:
        train(lm, tc, data, ev, checkpoint=ck, checkpoint_every=1)
    assert isinstance(info.value.history, History)
    good = load_checkpoint(ck)
    assert 1 <= good["step"] < 50
    assert all(np.isfinite(v).all() for v in good["params"].as_dict().values())
    assert str(ck) in str(info.value)


# ------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make, name", [
    (lambda: LMConfig(StackConfig(n_layers=1, d_model=4, n_heads=1), vocab_size=1), "vocab_size"),
    (lambda: LMConfig(StackConfig(n_layers=1, d_model=4, n_heads=1), vocab_size=4, max_len=-1), "max_len"),
    (lambda: TrainConfig(lr=0.0), "lr"),
    (lambda: TrainConfig(lr=-1e-3), "lr"),
    (lambda: TrainConfig(optimizer="adagrad"), "optimizer"),
    (lambda: TrainConfig(betas=(0.9, 1.0)), "betas"),
    (lambda: TrainConfig(clip=-1.0), "clip"),
    (lambda: TrainConfig(steps=5, attn_steps=(6,)), "attn_steps"),
    (lambda: TrainConfig(sink_eps=1.0), "sink_eps"),
    (lambda: TrainConfig(steps=0), "steps"),
])
def test_bad_configs_raise_naming_the_field(make, name):
    with pytest.raises(ValueError, match=name):
        make()


def test_vocabulary_too_small_for_the_task_is_refused():
    task = bigram_backcopy_task(6, 1, seed=0)
    lm = LMConfig(StackConfig(n_layers=1, d_model=8, n_heads=2), vocab_size=task.vocab_size - 1)
    t = sample_bigram_backcopy(task, 2, 6, seed=0)
    with pytest.raises(ValueError, match="vocab_size"):
        train(lm, TrainConfig(steps=1, batch_size=2), lambda s: t, t)


def test_contexts_shorter_than_two_tokens_are_refused():
    lm, tc, data, ev = bb_setup(steps=1)
    with pytest.raises(ValueError, match="eval_tokens.*n >= 2"):
        train(lm, tc, data, ev[:, :1])
    with pytest.raises(ValueError, match=r"data\(step\)"):
        train(lm, tc, lambda s: data(s)[:, :1], ev)


def test_other_bad_training_input_names_the_argument():
    lm, tc, data, ev = bb_setup(steps=1)
    with pytest.raises(ValueError, match="dtype"):
        train(dataclasses.replace(lm, stack=dataclasses.replace(lm.stack, dtype="float32")), tc, data, ev)
    with pytest.raises(ValueError, match="max_len"):
        train(dataclasses.replace(lm, max_len=4), tc, data, ev)
    with pytest.raises(ValueError, match="batch_size"):
        train(lm, tc, lambda s: data(s)[:3], ev)
    with pytest.raises(TypeError, match="inputs"):
        loss(lm, init_lm(lm), np.zeros((1, 3)), np.zeros((1, 3), dtype=int))
    with pytest.raises(ValueError, match="targets"):
        loss(lm, init_lm(lm), np.zeros((1, 3), dtype=int), np.zeros((1, 2), dtype=int))
    with pytest.raises(ValueError, match="weights"):
        loss(lm, init_lm(lm), np.zeros((1, 3), dtype=int), np.zeros((1, 3), dtype=int),
             np.zeros((1, 3)))
    with pytest.raises(TypeError, match="data"):
        train(lm, tc, "tokens", ev)
    p = init_lm(lm)
    with pytest.raises(ValueError, match="params.W_U"):
        LMParams(stack=p.stack, E=p.E, P=p.P, W_U=None).checked(lm)


# ------------------------------------------------------------------------------------------
# experiments, the output contract, the command and the figures (tiny settings)
# ------------------------------------------------------------------------------------------
TINY = {
    "SINKS": dict(n_tokens=6, n_triggers=1, n=8, L=1, d=8, H=2, batch=4, steps=6, lr=1e-2, seeds=1),
    "CONTEXT": dict(ns=(4, 8), tokens=16, steps=3, L=1, d=8, H=2, lr=1e-2, seeds=1),
    "DEPTH_HEADS": dict(Ls=(1,), Hs=(1, 2), n=8, d=8, batch=4, steps=3, lr=1e-2, seeds=1),
    "BOS": dict(rows=(("bb", "first"), ("bb", "none"), ("docs", "every")), n=12, L=1, d=8,
                H=2, batch=4, steps=3, lr=1e-2, n_tokens=6, n_chains=2, min_len=2, max_len=4,
                seeds=1),
    "INTERVENTIONS": dict(n=8, L=1, d=8, H=2, batch=4, steps=3, lr=1e-2, sgd_lr=0.1,
                          sink_logit=2.0, seeds=1),
}


@pytest.fixture
def tiny_experiments(monkeypatch):
    from overmix.sims import experiments

    for table, setting in TINY.items():
        monkeypatch.setitem(getattr(experiments, table), "quick", setting)
    return experiments


def check_contract(data):
    steps = data["steps"]
    assert steps and all(isinstance(s, int) for s in steps) and steps == sorted(steps)
    assert len(data["loss"]) == len(steps) == len(data["sink_metric"])
    assert all(0.0 <= m <= 1.0 for m in data["sink_metric"])
    assert "config" in data and "seed" in data


def test_train_command_writes_the_output_contract(tiny_experiments, tmp_path, monkeypatch, capsys):
    import json

    from overmix.cli import main
    from overmix.sims.train_figures import load_experiment

    monkeypatch.setenv("OPENBLAS_NUM_THREADS", os.environ.get("OPENBLAS_NUM_THREADS", "1"))
    rc = main(["train", "sinks", "--quick", "--out", str(tmp_path), "--seed", "2", "--no-progress"])
    assert rc == 0
    with open(tmp_path / "sinks.json") as f:
        meta = json.load(f)
    check_contract(meta)
    assert meta["seed"] == 2 and meta["seeds"] == [2]
    assert meta["sink_eps"] == 0.3 and meta["sink_T"] == 64
    data = load_experiment(tmp_path, "sinks")
    assert data["sink_scores"].shape == (len(meta["steps"]), 1, 2)
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]
    assert "sink metric" in capsys.readouterr().out


def test_train_command_trains_in_float32_when_asked(tiny_experiments, tmp_path, monkeypatch):
    import json

    from overmix.cli import main

    monkeypatch.setenv("OPENBLAS_NUM_THREADS", os.environ.get("OPENBLAS_NUM_THREADS", "1"))
    rc = main(["train", "interventions", "--quick", "--out", str(tmp_path), "--no-progress",
               "--compute-dtype", "float32"])
    assert rc == 0
    with open(tmp_path / "interventions.json") as f:
        meta = json.load(f)
    check_contract(meta)
    assert meta["config"]["sweep"]["compute_dtype"] == "float32"


def test_train_command_averages_over_seeds(tiny_experiments, tmp_path, monkeypatch, capsys):
    import json

    from overmix.cli import main

    monkeypatch.setenv("OPENBLAS_NUM_THREADS", os.environ.get("OPENBLAS_NUM_THREADS", "1"))
    rc = main(["train", "context", "--quick", "--out", str(tmp_path), "--seed", "3", "--seeds", "2",
               "--no-progress"])
    assert rc == 0
    meta = json.loads((tmp_path / "context.json").read_text())
    check_contract(meta)  # the contract holds one value per recorded step: the seed mean
    assert meta["seed"] == 3 and meta["seeds"] == [3, 4]
    with np.load(tmp_path / "context.npz") as z:
        per = z["sink_metric_seeds"]
        assert per.shape == (2, len(meta["steps"]))
        assert np.allclose(per.mean(axis=0), meta["sink_metric"], rtol=0, atol=1e-15)
        assert np.allclose(z["loss_seeds"].mean(axis=0), meta["loss"], rtol=0, atol=1e-12)
    assert "means over seeds 3..4" in capsys.readouterr().out


@pytest.mark.parametrize("bad", ["0", "-1"])
def test_train_command_refuses_bad_seeds(bad, tmp_path, capsys):
    from overmix.cli import main

    assert main(["train", "sinks", "--quick", "--out", str(tmp_path), "--seeds", bad]) == 2
    assert "--seeds must be an int >= 1" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["context", "depth_heads", "bos", "interventions"])
def test_every_experiment_returns_the_contract(tiny_experiments, name):
    data = tiny_experiments.run_experiment(name, quick=True, seed=1)
    check_contract(data)
    assert len(data["runs"]) >= 2
    assert data["seeds"] == [1]


# what each experiment averages over seeds, and the shape of one seed's value
SEED_SHAPES = {
    "sinks": {"bayes_loss": (), "active/prev_mass_trigger": (), "residual_ratio": ()},
    "context": {"final_sink_metric": (2,), "bos_mass": (2,), "final_loss": (2,)},
    "depth_heads": {"sink_grid": (1, 2), "bos_grid": (1, 2), "loss_grid": (1, 2)},
    "bos": {"sink_table": (3, 2), "loss_table": (3, 2), "bayes_loss_bb": (2,)},
    "interventions": {"final_sink_metric": (5,), "sink_metric_without_knob": (5,)},
}


@pytest.mark.parametrize("name", sorted(SEED_SHAPES))
def test_seeds_give_per_seed_arrays_whose_mean_is_reported(tiny_experiments, name):
    two = tiny_experiments.run_experiment(name, quick=True, seed=5, seeds=2)
    check_contract(two)
    assert two["seeds"] == [5, 6] and two["seed"] == 5
    assert two["config"][("task" if name == "sinks" else "sweep")]["seeds"] == 2
    # each seed's row is the run of that seed alone, bit for bit
    alone = [tiny_experiments.run_experiment(name, quick=True, seed=s) for s in (5, 6)]
    R = len(two["steps"])
    for key in ("loss", "eval_loss", "sink_metric"):
        per = two[f"{key}_seeds"]
        assert per.shape == (2, R)
        for k in range(2):
            assert per[k].tolist() == list(alone[k][key]), (key, k)
        assert np.allclose(two[key], per.mean(axis=0), rtol=0, atol=1e-15)
    for key, shape in SEED_SHAPES[name].items():
        per = two[f"{key}_seeds"]
        assert per.shape == (2, *shape), key
        for k in range(2):
            assert np.array_equal(per[k], np.asarray(alone[k][key]), equal_nan=True), (key, k)
        assert np.allclose(np.asarray(two[key]), per.mean(axis=0), rtol=0, atol=1e-15), key
    # the two seeds train on different data: their curves differ
    assert two["loss_seeds"][0].tolist() != two["loss_seeds"][1].tolist()
    # per-model records are the first seed's
    if "runs" in two:
        assert [r["loss"] for r in two["runs"]] == [r["loss"] for r in alone[0]["runs"]]


def test_sinks_stack_per_head_scores_over_seeds_without_averaging(tiny_experiments):
    two = tiny_experiments.run_experiment("sinks", quick=True, seed=0, seeds=2)
    sc = two["sink_scores_seeds"]
    assert sc.shape == (2, len(two["steps"]), 1, 2)
    assert np.array_equal(sc[0], two["sink_scores"])  # the top-level curves are the first seed's
    assert two["active_head_seeds"].shape == (2,)


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2", None, 2.0])
def test_bad_seeds_raise_value_error_naming_seeds(bad):
    from overmix.sims.experiments import experiment_setting, run_experiment

    with pytest.raises(ValueError, match="seeds must be an int >= 1"):
        experiment_setting("sinks", quick=True, setting={"seeds": bad})
    if bad is not None:  # None means "the setting's default" for run_experiment
        with pytest.raises(ValueError, match="seeds"):
            run_experiment("sinks", quick=True, seeds=bad)


def test_setting_overrides_are_checked_by_name():
    from overmix.sims.experiments import CONTEXT, experiment_setting

    c = experiment_setting("context", quick=True, setting={"ns": [8, 16], "lr": 1, "seeds": 2})
    assert c["ns"] == (8, 16) and c["lr"] == 1.0 and isinstance(c["lr"], float) and c["seeds"] == 2
    assert c.pop("compute_dtype") == "float64"  # the entry every setting has
    assert {k: v for k, v in c.items() if k not in ("ns", "lr", "seeds")} == {
        k: v for k, v in CONTEXT["quick"].items() if k not in ("ns", "lr", "seeds")}
    c = experiment_setting("context", setting={"compute_dtype": np.float32})
    assert c["compute_dtype"] == "float32"
    with pytest.raises(ValueError, match=r"setting\['compute_dtype'\]: compute_dtype must be one of"):
        experiment_setting("context", setting={"compute_dtype": "float16"})
    with pytest.raises(ValueError, match=r"'nn'.*allowed"):
        experiment_setting("context", setting={"nn": [8]})
    with pytest.raises(TypeError, match=r"setting\['steps'\] must be an int"):
        experiment_setting("context", setting={"steps": 10.0})
    with pytest.raises(TypeError, match=r"setting\['ns'\] must be a list"):
        experiment_setting("context", setting={"ns": 16})
    with pytest.raises(ValueError, match=r"setting\['ns'\] must not be empty"):
        experiment_setting("context", setting={"ns": []})
    with pytest.raises(TypeError, match="setting must be a dict"):
        experiment_setting("context", setting=[("steps", 1)])
    with pytest.raises(ValueError, match="name must be one of"):
        experiment_setting("nope")


def test_bos_rows_are_checked_before_training(tiny_experiments):
    with pytest.raises(ValueError, match=r"setting\['rows'\]\[1\].*'docs'"):
        tiny_experiments.run_experiment("bos", quick=True, setting={"rows": [["bb", "first"],
                                                                            ["bb", "every"]]})


def test_run_experiment_rejects_unknown_names_and_seeds():
    from overmix.sims.experiments import run_experiment

    with pytest.raises(ValueError, match="name"):
        run_experiment("nope")
    with pytest.raises(ValueError, match="seed"):
        run_experiment("sinks", seed=-1)
    with pytest.raises(TypeError, match="setting must be a dict"):
        run_experiment("sinks", setting="steps=3")


def test_active_head_is_the_one_whose_previous_token_weight_rises_on_triggers():
    from overmix.sims.experiments import active_head_summary

    L, H = 2, 3
    stats = {"prev_mass_trigger": np.full((L, H), 0.5), "prev_mass_other": np.full((L, H), 0.4),
             "bos_mass_trigger": np.arange(6.0).reshape(L, H) / 10,
             "bos_mass_other": np.arange(6.0).reshape(L, H) / 20,
             "value_norm_first": np.full((L, H), 2.0), "value_norm_rest": np.full((L, H), 4.0),
             "residual_norm": np.array([[1.0, 1.0], [3.0, 1.0], [2.0, 4.0]])}
    stats["prev_mass_trigger"][1, 1] = 0.95  # largest rise (0.55): head (1, 1), flat index 4
    stats["prev_mass_other"][0, 2] = 0.0     # rise 0.5: the second largest
    stats["prev_mass_trigger"][0, 0] = 0.97  # the largest weight on triggers, but a small
    stats["prev_mass_other"][0, 0] = 0.9     # rise (0.07): not the active head
    s = active_head_summary(stats)
    assert s["active_head"] == 4
    assert s["active/prev_mass_trigger"] == 0.95 and s["active/bos_mass_trigger"] == 0.4
    assert s["others/bos_mass_other"] == pytest.approx((0 + 1 + 2 + 3 + 5) / 20 / 5)
    assert s["active/value_ratio"] == 0.5
    assert s["residual_ratio"] == 3.0  # max over layers 1..L of first / rest: 3/1 and 2/4
    with pytest.raises(ValueError, match="stats must be head_statistics"):
        active_head_summary({"bos_mass": np.zeros((1, 1))})


@pytest.mark.parametrize("n", [2, 3, 16, 100])
def test_uniform_attention_baselines_match_uniform_maps(n):
    from overmix.sims.experiments import uniform_attention_baselines
    from overmix.theory import sink_scores

    A = np.tril(np.ones((n, n)))
    A /= A.sum(axis=1, keepdims=True)  # query i spreads 1/(i+1) over 0..i
    T = min(64, n)
    alpha, bos = uniform_attention_baselines(n)
    assert alpha == pytest.approx(float(sink_scores(A[None, None], T=T)[0, 0]), rel=1e-12)
    assert alpha == pytest.approx(sum(1 / k for k in range(1, T + 1)) / T, rel=1e-12)
    assert bos == pytest.approx(A[1:, 0].mean(), rel=1e-12)
    with pytest.raises(ValueError, match="n must be an int >= 2"):
        uniform_attention_baselines(1)
    with pytest.raises(ValueError, match="T must be an int in"):
        uniform_attention_baselines(n, T=n + 1)


def test_training_figures_compute_flat_arrays_for_the_figures_cache(tiny_experiments):
    from overmix.sims.train_figures import FIGURES

    fig = FIGURES["train_depth_heads"]
    cfg = {**fig.QUICK, "setting": {**TINY["DEPTH_HEADS"], "Ls": [1], "Hs": [1, 2], "seeds": 2}}
    data = fig.compute(cfg, 0)
    for k, v in data.items():
        assert k.isidentifier() and isinstance(v, np.ndarray) and v.dtype.kind in "biufU", k
    assert data["sink_grid"].shape == (1, 2) and data["run_final_sink_metric"].shape == (2,)
    assert data["sink_grid_seeds"].shape == (2, 1, 2)
    assert data["seeds"].tolist() == [0, 1]
    assert np.allclose(data["sink_grid"], data["sink_grid_seeds"].mean(axis=0), rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="seed"):
        fig.compute(fig.QUICK, -1)
    with pytest.raises(ValueError, match="experiment"):
        fig.compute({"experiment": "nope"}, 0)


def test_training_figure_quick_configs_are_single_seed_and_full_ones_average():
    from overmix.sims.experiments import EXPERIMENTS
    from overmix.sims.train_figures import FIGURES, TrainFigure

    assert sorted(FIGURES) == sorted(f"train_{e}" for e in EXPERIMENTS)
    for fig in FIGURES.values():
        assert fig.QUICK["setting"]["seeds"] == 1 and fig.QUICK["quick"] is True
        assert fig.CONFIG["setting"]["seeds"] >= 3 and fig.CONFIG["quick"] is False
    with pytest.raises(ValueError, match="one seed"):
        TrainFigure("sinks", {"seeds": 2})
    with pytest.raises(ValueError, match="experiment must be one of"):
        TrainFigure("nope")


def test_training_figures_leave_out_non_finite_arrays_and_name_them(tiny_experiments):
    from overmix.sims.train_figures import FIGURES

    fig = FIGURES["train_sinks"]
    data = fig.compute({**fig.QUICK, "setting": TINY["SINKS"]}, 0)
    assert data["left_out"].tolist() == ["grad_norm"]  # NaN at the last recorded step
    assert "grad_norm" not in data
    for v in data.values():
        assert v.dtype.kind != "f" or np.isfinite(v).all()
