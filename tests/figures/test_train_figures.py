"""The training figures (fig15..fig19): registry wiring, seed averaging as drawn, and the
drawing of ``overmix train`` output. Experiments run at tiny settings (a few steps)."""

from __future__ import annotations

import matplotlib.collections as mcoll
import numpy as np
import pytest

from overmix.figures import registry, style

TRAIN = {"fig15_train_sinks": "train_sinks", "fig16_train_context": "train_context",
         "fig17_train_depth_heads": "train_depth_heads", "fig18_train_bos": "train_bos",
         "fig19_train_interventions": "train_interventions"}

TINY = {
    "sinks": dict(n_tokens=6, n_triggers=1, n=8, L=1, d=8, H=2, batch=4, steps=6, lr=1e-2),
    "context": dict(ns=[4, 8], tokens=16, steps=3, L=1, d=8, H=2, lr=1e-2),
    "depth_heads": dict(Ls=[1, 2], Hs=[1, 2], n=8, d=8, batch=4, steps=3, lr=1e-2),
    "bos": dict(rows=[["bb", "first"], ["bb", "none"], ["docs", "every"]], n=12, L=1, d=8, H=2,
                batch=4, steps=3, lr=1e-2, n_tokens=6, n_chains=2, min_len=2, max_len=4),
    "interventions": dict(n=8, L=1, d=8, H=2, batch=4, steps=3, lr=1e-2, sgd_lr=0.1,
                          sink_logit=2.0),
}


def test_training_figures_are_registered_in_paper_order_with_a8():
    names = registry.names()
    assert names[-5:] == list(TRAIN)
    for name in TRAIN:
        spec = registry.resolve([name])[0]
        assert "A8" in spec.theory_ids
    assert "A9" in registry.resolve(["fig17"])[0].theory_ids


@pytest.mark.parametrize("name", list(TRAIN))
def test_training_figure_modules_reexport_the_train_figure(name):
    from overmix.sims.train_figures import FIGURES

    mod = registry.resolve([name])[0].module()
    fig = FIGURES[TRAIN[name]]
    assert mod.CONFIG is fig.CONFIG and mod.QUICK is fig.QUICK and mod.SEED == fig.SEED
    assert mod.compute == fig.compute and callable(mod.draw)
    doc = mod.__doc__
    assert doc.startswith(f"Figure {name[3:5]}:") and "What the paper" in doc


@pytest.fixture(scope="module")
def two_seeds():
    """Every experiment at a tiny setting with two seeds, as a figure's flat data."""
    from overmix.sims.train_figures import FIGURES

    return {e: FIGURES[f"train_{e}"].compute(
        {"experiment": e, "quick": True, "setting": {**TINY[e], "seeds": 2}}, 3) for e in TINY}


def _draw(name, data):
    mod = registry.resolve([name])[0].module()
    with style.context():
        return mod.draw(data)


def _bands(ax):
    return [c for c in ax.collections if isinstance(c, mcoll.PolyCollection)]


def test_sinks_figure_plots_the_seed_mean_of_the_metric_and_loss(two_seeds):
    d = two_seeds["sinks"]
    assert d["seeds"].tolist() == [3, 4]
    fig = _draw("fig15_train_sinks", d)
    ax_b, ax_c = fig.axes[1], fig.axes[2]
    assert np.allclose(ax_b.lines[0].get_ydata(), d["sink_metric_seeds"].mean(axis=0), atol=1e-15)
    # (c): the loss above each seed's own true-process loss, averaged over seeds
    excess = d["eval_loss_seeds"] - d["bayes_loss_seeds"][:, None]
    assert np.allclose(ax_c.lines[0].get_ydata(), excess.mean(axis=0), atol=1e-15)
    assert len(_bands(ax_c)) == 1 and len(_bands(ax_b)) == 1  # two seeds: bands
    # panel (d): the active head's bars are the seed means
    bars = [p.get_height() for p in fig.axes[3].patches][:4]
    want = [d[f"active__{k}_seeds"].mean() for k in
            ("bos_mass_trigger", "bos_mass_other", "prev_mass_trigger", "prev_mass_other")]
    assert np.allclose(bars, want, atol=1e-15)


def test_context_figure_plots_the_seed_mean_with_a_band_and_uniform_attention(two_seeds):
    d = two_seeds["context"]
    fig = _draw("fig16_train_context", d)
    a, b = fig.axes[:2]
    assert np.allclose(a.lines[0].get_ydata(), d["final_sink_metric_seeds"].mean(axis=0), atol=1e-15)
    assert np.allclose(b.lines[0].get_ydata(), d["bos_mass_seeds"].mean(axis=0), atol=1e-15)
    ns = np.array([4, 8])
    assert np.allclose(b.lines[1].get_ydata(), [sum(1 / k for k in range(2, n + 1)) / (n - 1)
                                                for n in ns], rtol=1e-12)
    assert b.get_yscale() == "log" and a.get_xscale() == "log"


def test_depth_heads_figure_plots_one_seed_mean_line_per_depth(two_seeds):
    d = two_seeds["depth_heads"]
    fig = _draw("fig17_train_depth_heads", d)
    mean = d["sink_grid_seeds"].mean(axis=0)
    lines = fig.axes[0].lines
    assert len(lines) == 2
    for i in range(2):
        assert np.allclose(lines[i].get_ydata(), mean[i], atol=1e-15)
        assert np.allclose(lines[i].get_xdata(), [1, 2])


@pytest.mark.parametrize("exp, name, key", [("bos", "fig18_train_bos", "sink_table"),
                                            ("interventions", "fig19_train_interventions",
                                             "final_sink_metric")])
def test_dot_plots_show_seed_means_with_min_max_error_bars(two_seeds, exp, name, key):
    d = two_seeds[exp]
    fig = _draw(name, d)
    per = d[f"{key}_seeds"]
    first = per[..., 0] if per.ndim == 3 else per  # bos: the "evaluated with BOS" column
    marker, _, (bars,) = fig.axes[0].containers[0]  # the first errorbar: data, caps, bars
    assert np.allclose(marker.get_xdata(), first.mean(axis=0), atol=1e-15)
    # error bar ends: min and max over seeds
    segs = bars.get_segments()
    assert len(segs) == first.shape[1]
    assert np.allclose([s[:, 0].min() for s in segs], first.min(axis=0), atol=1e-12)
    assert np.allclose([s[:, 0].max() for s in segs], first.max(axis=0), atol=1e-12)


def test_interventions_without_a_built_in_logit_have_nothing_to_remove(two_seeds):
    d = two_seeds["interventions"]
    knob = d["has_sink_logit"]
    assert knob.tolist() == [False, False, True, False, True]
    assert np.array_equal(d["sink_metric_without_knob_seeds"][:, ~knob],
                          d["final_sink_metric_seeds"][:, ~knob])
    fig = _draw("fig19_train_interventions", d)
    excess = d["final_loss_seeds"] - d["bayes_loss_seeds"][:, None]  # each task's own floor
    assert np.allclose(fig.axes[1].containers[0][0].get_xdata(), excess.mean(axis=0), atol=1e-15)
    removed = fig.axes[0].containers[1][0]  # open markers: only the variants with a built-in logit
    assert np.allclose(removed.get_xdata(), d["sink_metric_without_knob_seeds"][:, knob].mean(axis=0),
                       atol=1e-15)


@pytest.mark.parametrize("exp", sorted(TINY))
def test_train_command_output_draws(exp, tmp_path):
    from overmix.figures._train import draw_experiment
    from overmix.sims.experiments import run_experiment
    from overmix.sims.train_figures import load_experiment

    run_experiment(exp, quick=True, seed=0, setting=TINY[exp], out_dir=tmp_path)
    data = load_experiment(tmp_path, exp)
    with style.context():
        fig = draw_experiment(data)
    assert fig.axes and all(ax.has_data() or not ax.axison for ax in fig.axes)


def test_draw_experiment_rejects_what_is_not_an_experiment():
    from overmix.figures._train import draw_experiment
    from overmix.sims.train_figures import load_experiment

    with pytest.raises(TypeError, match="data must be a dict"):
        draw_experiment([1, 2])
    with pytest.raises(ValueError, match="'experiment' in"):
        draw_experiment({"experiment": "nope", "steps": [0]})
    with pytest.raises(ValueError, match="name must be one of"):
        load_experiment(".", "nope")
