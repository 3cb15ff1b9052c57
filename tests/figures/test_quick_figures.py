"""Every registered figure, built with its QUICK config: files, sane data, theory present.

The per-figure checks compare the simulated side of each figure with its theory side, or
with an oracle written here from THEORY.md (NumPy only, nothing imported from overmix).
Tolerances: quantities that are equal by a theorem (A2 and A5 equality cases, C3 logits,
B11 for uniform attention) are compared at 1e-9 relative: they come out of a few dozen
float64 operations on O(1) numbers (~1e-14), and 1e-9 still catches any wrong term. Bounds
are checked with a 1e-12 relative slack for the rounding of both sides.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from overmix.figures import registry

NAMES = [s.name for s in registry.FIGURES]
EQ_RTOL = 1e-9
BOUND_SLACK = 1e-12


def _rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.abs(a - b) / np.maximum(np.abs(b), 1e-300)


@pytest.mark.parametrize("name", NAMES)
def test_every_figure_writes_its_four_files(quick_out, name):
    out, results = quick_out
    for ext in ("pdf", "png", "npz", "json"):
        f = out / f"{name}.{ext}"
        assert f.is_file() and f.stat().st_size > 0, f"{f} missing or empty"
    assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"
    assert not results[name].cached
    assert not list(out.glob(".*.tmp")), "temporary files left behind"


@pytest.mark.parametrize("name", NAMES)
def test_every_figure_has_finite_data_and_metadata(quick_data, name):
    arrays, meta = quick_data[name]
    assert arrays, f"{name}: no arrays"
    for key, arr in arrays.items():
        if arr.dtype.kind == "f":
            assert np.isfinite(arr).all(), f"{name}[{key}] has non-finite values"
    for key in ("config", "seed", "version", "git_revision", "runtime_s", "key", "quick",
                "theory_ids", "caption"):
        assert key in meta, f"{name}.json lacks {key!r}"
    assert meta["quick"] is True
    assert {k: list(v.shape) for k, v in arrays.items()} == meta["arrays"]


def test_registry_ids_are_theory_ids():
    for spec in registry.FIGURES:
        assert spec.theory_ids, spec.name
        for tid in spec.theory_ids:
            assert tid[0] in "ABC" and tid[1:].isdigit(), (spec.name, tid)


# ------------------------------------------------------------------------------------------
# per-figure checks: the theory side is present and agrees with the simulated side
# ------------------------------------------------------------------------------------------
def _get(quick_data, name):
    return quick_data[name][0]


def test_fig01_nope_distance_falls_with_n(quick_data):
    d = _get(quick_data, "fig01_collapse")
    labels = list(d["labels"])
    assert d["dist"].shape == (len(labels), d["dist"].shape[1], d["ns"].size)
    assert (np.diff(d["ns"]) > 0).all() and (d["dist"] >= 0).all()
    nope = np.median(d["dist"][labels.index("NoPE")], axis=0)
    assert nope[-1] < nope[0]  # B3: the gap closes with n for NoPE


def test_fig02_tv_never_exceeds_b2_bound_and_b4_is_exact(quick_data):
    d = _get(quick_data, "fig02_softmax_tv")
    assert d["tv"].shape == d["bound"].shape == (d["tv"].shape[0], 2, d["ns"].size)
    assert (d["tv"] <= d["bound"] * (1 + BOUND_SLACK)).all()
    c = float(d["c"])
    assert np.allclose(d["alt_tv"], 2 * math.tanh(abs(c) / 2), rtol=EQ_RTOL, atol=0)


def test_fig03_gaps_and_thresholds_are_sane(quick_data):
    d = _get(quick_data, "fig03_precision")
    assert d["gap"].shape == d["size"].shape == (d["dtypes"].size, d["ns"].size)
    assert (d["gap"] >= 0).all() and (d["size"] > 0).all()
    assert d["thr"].shape == (d["thr_L"].size, d["thr_d"].size)
    assert ((d["thr"] == 0) | ((d["thr"] >= 2) & (d["thr"] <= d["thr_nmax"]))).all()
    assert list(d["unit"]) == [{"float64": 2.0**-53, "float32": 2.0**-24, "float16": 2.0**-11,
                                "bfloat16": 2.0**-8}[str(t)] for t in d["dtypes"]]


def test_fig04_path_counts_match_a3_and_bound_grows_with_depth(quick_data):
    d = _get(quick_data, "fig04_oversquashing")
    m = d["counted"].shape[1]
    for k, L in enumerate(d["count_layers"]):
        oracle = [math.comb(m - 1 - i + L - 1, L - 1) for i in range(m)]  # A3
        assert d["count_theory"][k].tolist() == oracle
        assert d["counted"][k].tolist() == oracle
    # M = I + A >= I entrywise, so the path sum never falls with depth
    assert (np.diff(d["log_bound"], axis=1) >= -1e-12).all()


def test_fig05_frozen_jacobian_never_exceeds_path_bound(quick_data):
    d = _get(quick_data, "fig05_tightness")
    labels = list(d["labels"])
    r = d["ratio"]
    for lab in ("frozen", "frozen, with MLP"):
        assert (r[labels.index(lab)] <= 1 + BOUND_SLACK).all()
    # A2: aligned weights, no MLP: the frozen Jacobian equals the bound
    assert (_rel(r[labels.index("frozen, A2 equality case")], 1.0) < EQ_RTOL).all()


def test_fig06_spread_is_causal(quick_data):
    d = _get(quick_data, "fig06_spread")
    p = int(d["perturbed"])
    assert (d["heat"][:, :, :p] == 0).all()  # nothing moves left of the perturbed token
    assert (d["heat"][:, 0, p] > 0).all()
    assert d["top"].shape == (d["lambdas"].size, d["b_grid"].size, d["top"].shape[-1])


def test_fig07_content_sensitivity_below_a5_and_equal_for_aligned(quick_data):
    d = _get(quick_data, "fig07_sink_sensitivity")
    meas, bound = d["measured"], d["bound"]
    assert (_rel(meas[0], bound[0]) < EQ_RTOL).all()          # aligned: A1 and A5 equalities
    assert (meas[1] <= bound[1] * (1 + BOUND_SLACK)).all()    # random weights: A5 bound
    # A5 for aligned weights in closed form: prod_l (1 + H w (1 - gamma)), w = 1
    for j, (L, H) in enumerate(d["shapes"]):
        oracle = (1 + H * (1 - d["gammas"])) ** L
        assert (_rel(bound[0, j], oracle) < EQ_RTOL).all()


def test_fig08_self_fraction_and_sink_logit_match_a6_a7(quick_data):
    d = _get(quick_data, "fig08_sink_scaling")
    for k, (n, L) in enumerate(d["sf_cases"]):
        c = 1.0 - d["sf_gammas"]  # w = 1
        oracle = ((1 + c / (n - 1)) / (1 + c)) ** L  # A6
        assert (_rel(d["sf_measured"][k], oracle) < EQ_RTOL).all()
    for k, g in enumerate(d["lg_gammas"]):
        oracle = np.log(g * d["lg_ts"] / (1 - g))  # A7
        assert np.allclose(d["lg_sim"][k], oracle, rtol=1e-9, atol=1e-9)
    assert ((d["gs"] >= 0) & (d["gs"] <= 1)).all()
    assert (np.diff(d["gs"], axis=0) >= 0).all()  # deeper stacks need more sink


def test_fig09_simulated_budget_matches_a9(quick_data):
    d = _get(quick_data, "fig09_budget")
    assert np.array_equal(d["sim"], d["sim_theory"])
    assert ((d["llama"] >= 0) & (d["llama"] <= 1)).all()
    assert (d["llama"][:, 1] <= d["llama"][:, 0] + 1e-12).all()  # free allocation needs no more
    assert np.array_equal(d["bft"], np.array([45.97, 73.49, 78.29]) / 100)


def test_fig10_local_exponents_are_3_9_and_1(quick_data):
    d = _get(quick_data, "fig10_rank_collapse")
    expected = {(1, 0): 3.0, (2, 0): 9.0, (1, 1): 1.0}  # B9: 3^L without skip, 1 with one
    for (L, skip), fit in zip(d["cases"], d["fit"]):
        tol = 0.05 if L == 1 else 0.5
        assert abs(fit[0] - expected[(int(L), int(skip))]) < tol, (L, skip, fit[0])
    assert d["ratio"].shape[:1] == (d["labels"].size,)


def test_fig11_equilibrium_angle_and_wpb_bound(quick_data):
    d = _get(quick_data, "fig11_masks")
    a, c = float(d["eq_a"]), float(d["eq_c"])
    theta = math.acos(a / ((1 - a) * (c - 1)))  # B12
    assert abs(float(d["theta_star"]) - theta) < 1e-12
    assert abs(d["angle"][0, -1] - theta) < 1e-3  # with LayerNorm the angle settles there
    w = d["wpb"]
    for row in (0, 2, 4):
        assert (w[row] <= w[row + 1] * (1 + BOUND_SLACK)).all()  # B11 bounds
    assert (_rel(w[2], w[3]) < EQ_RTOL).all()  # uniform attention: B11 is tight


def test_fig12_gap_never_exceeds_sqrt2_mu_and_is_tight_at_n2(quick_data):
    d = _get(quick_data, "fig12_rank_vs_repr")
    P, Q = d["points"], d["pairs"]
    assert (P[:, 1] <= P[:, 2] * (1 + BOUND_SLACK)).all()
    assert np.allclose(P[:, 2], math.sqrt(2) * P[:, 0], rtol=1e-12, atol=0)
    assert (_rel(Q[:, 1], Q[:, 2]) < EQ_RTOL).all()
    assert d["converse"][1] == 0.0 and d["converse"][0] > 0.5


def test_fig13a_gaussian_logits_do_not_decay_and_aligned_logits_follow_b(quick_data):
    d = _get(quick_data, "fig13a_rope_decay")
    dk, base = int(d["d_head"]), float(d["base"])
    pairs = 200  # QUICK pairs (4 chunks of 50)
    assert (np.abs(d["S_mean"]) < 5 * d["S_std"] / math.sqrt(pairs)).all()
    assert (np.abs(d["S_std"] - 1.0) < 0.25).all()  # C2: variance 1 at every r
    th = base ** (-2 * np.arange(dk // 2) / dk)
    r = np.arange(d["B_sim"].size)
    oracle = np.cos(np.outer(r, th)).sum(1) / (dk / 2)  # C3: logit / (s d_k) = B(r)/(d_k/2)
    assert np.allclose(d["B_sim"], oracle, rtol=0, atol=1e-9)
    assert int(d["first_rise"]) == 11 and int(d["first_negative"]) == 1707  # C3 table, d_k = 128
    rr = d["rr"]
    assert (np.abs(d["B_sim"][rr]) <= d["abel_full"] * (1 + BOUND_SLACK)).all()  # C4


def test_fig13b_strengths_suffice_and_prope_keeps_semantic_head(quick_data):
    d = _get(quick_data, "fig13b_rope_heads")
    assert (d["strength_sim"] <= d["strength"] * (1 + 1e-6)).all()  # C7 strength suffices
    assert (d["att"][1] >= d["bound"] * (1 - BOUND_SLACK)).all()     # C10 (b) for p-RoPE
    far = d["rs"] > 2 * d["flip_c10"]
    if far.any():
        assert (d["att"][0][far] < d["bound"]).all()                  # C8: RoPE loses it
    for k, dk in enumerate(d["d_heads"]):
        th = d["bases"] ** (-(dk - 2) / dk)
        assert np.array_equal(d["flips"][k], np.ceil(np.pi / (2 * th)))


def test_fig13c_men_gap_extension_maps_and_counts(quick_data):
    d = _get(quick_data, "fig13c_rope_context")
    dk, base = int(d["mc_dk"]), 10000.0
    th = base ** (-2 * np.arange(dk // 2) / dk)
    oracle = 2 * np.cos(np.outer(d["mc_r"], th)).sum(1)  # 2 sigma^2 B(r), sigma = 1
    assert (np.abs(d["mc_mean"] - oracle) <= 4 * d["mc_se"]).all()
    s = float(d["ex_scale"])
    pi, ntk, yarn = d["maps"]
    assert np.allclose(pi, 1 / s, rtol=1e-12)
    assert abs(ntk[0] - 1) < 1e-12 and abs(ntk[-1] - 1 / s) < 1e-12
    assert ((yarn >= 1 / s - 1e-12) & (yarn <= 1 + 1e-12)).all()
    assert (d["crit"] > 0).all() and (d["crit"][:, 0] <= d["crit"][:, 1]).all()
    dks = int(d["st_dk"])
    for k, (b, p) in enumerate(zip(d["variant_base"], d["variant_p"])):
        thv = b ** (-2 * np.arange(dks // 2) / dks)
        thv[math.ceil(p * dks / 2 - 1e-9):] = 0.0
        oracle = [(N * thv <= np.pi / 2).sum() for N in d["Ns_pts"]]
        assert d["count_direct"][k].tolist() == oracle


def test_fig14_inner_products_follow_the_ode(quick_data):
    d = _get(quick_data, "fig14_sphere")
    lo, mean, hi = d["ortho"][:, 0], d["ortho"][:, 1], d["ortho"][:, 2]
    assert np.allclose(lo, hi, rtol=0, atol=1e-12)  # orthogonal start: all pairs equal
    for k in range(d["betas"].size):
        ode = np.interp(d["t"], d["t_fine"], d["ode"][k])
        assert np.abs(mean[k] - ode).max() < 0.02  # Euler, dt = 0.01: first-order error
    slopes = [np.polyfit(np.log(d["dts"]), np.log(e), 1)[0] for e in d["err"]]
    assert 0.8 < slopes[0] < 1.2 and 3.5 < slopes[1] < 4.5


# ------------------------------------------------------------------------------------------
# the training figures (small language models; quick = one seed, a few hundred steps)
# ------------------------------------------------------------------------------------------
def _setting(quick_data, name):
    return quick_data[name][1]["config"]["setting"]


def test_fig15_sink_metric_per_step_and_the_active_head(quick_data):
    d = _get(quick_data, "fig15_train_sinks")
    R = d["steps"].size
    assert d["sink_metric"].shape == d["loss"].shape == (R,)
    assert ((d["sink_metric"] >= 0) & (d["sink_metric"] <= 1)).all()
    c = _setting(quick_data, "fig15_train_sinks")
    assert d["sink_scores"].shape == (R, c["L"], c["H"]) and d["steps"][-1] == c["steps"]
    # Sink_eps is a fraction of the 32 evaluation prompts x L x H heads
    counts = d["sink_metric"] * 32 * c["L"] * c["H"]
    assert np.allclose(counts, np.round(counts), atol=1e-9)
    assert d["left_out"].tolist() == ["grad_norm"]  # NaN at the last step, not drawn
    assert float(d["bayes_loss"]) < d["eval_loss"][-1] < d["eval_loss"][0]
    # the active head has the largest rise of previous-token weight on triggers
    rise = d["active__prev_mass_trigger"] - d["active__prev_mass_other"]
    assert rise >= d["others__prev_mass_trigger"] - d["others__prev_mass_other"] - 1e-12
    assert d["seeds"].tolist() == [0]


def test_fig16_context_sweep_and_uniform_baselines(quick_data):
    d = _get(quick_data, "fig16_train_context")
    ns = _setting(quick_data, "fig16_train_context")["ns"]
    assert d["n"].tolist() == ns
    for key in ("final_sink_metric", "bos_mass"):
        assert d[key].shape == (len(ns),) and ((d[key] >= 0) & (d[key] <= 1)).all()
    for k, n in enumerate(ns):
        T = min(64, n)
        assert abs(d["uniform_sink_score"][k] - sum(1 / t for t in range(1, T + 1)) / T) < 1e-12
        assert abs(d["uniform_bos_mass"][k] - sum(1 / (i + 1) for i in range(1, n)) / (n - 1)) < 1e-12


def test_fig17_sink_grid_is_a_fraction_of_prompts_and_heads(quick_data):
    d = _get(quick_data, "fig17_train_depth_heads")
    c = _setting(quick_data, "fig17_train_depth_heads")
    assert d["Ls"].tolist() == c["Ls"] and d["Hs"].tolist() == c["Hs"]
    assert d["sink_grid"].shape == d["bos_grid"].shape == (len(c["Ls"]), len(c["Hs"]))
    for a, L in enumerate(c["Ls"]):
        for b, H in enumerate(c["Hs"]):
            count = d["sink_grid"][a, b] * 32 * L * H
            assert abs(count - round(count)) < 1e-9, (L, H)


def test_fig18_bos_tables(quick_data):
    d = _get(quick_data, "fig18_train_bos")
    rows = _setting(quick_data, "fig18_train_bos")["rows"]
    assert d["train_modes"].tolist() == [f"{k}: {m}" for k, m in rows]
    assert d["eval_modes"].tolist() == ["with BOS", "without BOS"]
    for key in ("sink_table", "bos_mass_table", "loss_table"):
        assert d[key].shape == (len(rows), 2)
    assert ((d["sink_table"] >= 0) & (d["sink_table"] <= 1)).all() and (d["loss_table"] > 0).all()


def test_fig19_interventions_remove_only_the_built_in_logit(quick_data):
    d = _get(quick_data, "fig19_train_interventions")
    knob = d["has_sink_logit"]
    assert knob.tolist() == [False, False, True, False, True]
    assert np.array_equal(d["sink_metric_without_knob"][~knob], d["final_sink_metric"][~knob])
    assert (d["final_loss"] > float(d["bayes_loss"])).all()


def test_paper_reads_every_training_number_from_the_figures_data(quick_out, quick_data):
    from overmix.commands import paper as paper_cmd

    out, _ = quick_out
    vals = paper_cmd.numbers_train(out)
    assert set(vals) == set(paper_cmd.TRAIN_KEYS)
    assert vals["train-mode"] == "quick"
    sinks = _get(quick_data, "fig15_train_sinks")
    assert vals["train-sinks-metric-final"] == f"{sinks['sink_metric'][-1]:.2f}"
    assert vals["train-sinks-steps"] == str(sinks["steps"][-1])
    ctx = _get(quick_data, "fig16_train_context")
    assert vals["train-ctx-ns"] == ", ".join(str(n) for n in ctx["n"])
    assert vals["train-ctx-metric-list"] == ", ".join(f"{m:.2f}" for m in ctx["final_sink_metric"])
    bos = _get(quick_data, "fig18_train_bos")
    assert vals["train-bos-bb-first-without"] == f"{bos['sink_table'][0, 1]:.2f}"
    # a folder without the figures gives no training numbers (placeholders in the paper)
    assert paper_cmd.numbers_train(out / "absent") == {}
