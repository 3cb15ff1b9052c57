"""Drawing the training figures (fig15..fig19) in the paper style.

The compute side is :mod:`overmix.sims.train_figures` (it runs
:mod:`overmix.sims.experiments`); these functions take its flat dict of arrays, or an
experiment dict as ``overmix train`` writes it (:func:`draw_experiment`). Quantities
averaged over seeds are drawn as the mean with a band (or error bars) from the smallest to
the largest seed; with one seed the band is empty.
"""

from __future__ import annotations

import json

import matplotlib.ticker as mticker
import matplotlib.transforms as mtransforms
import numpy as np

from overmix.figures import style
from overmix.sims.experiments import uniform_attention_baselines

SINK_LABEL = r"Sink$_{0.3}$"


def _plain() -> mticker.Formatter:
    """Tick labels 0, 0.5, 1 rather than 0.0, 0.5, 1.0 (a new formatter for every axis)."""
    return mticker.FuncFormatter(lambda v, _: f"{v:g}")


def _seeds(d: dict) -> int:
    return int(np.asarray(d["seeds"]).size) if "seeds" in d else 1


def _over_seeds(d: dict, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, min, max) over seeds of ``key`` (the ``<key>_seeds`` array when present)."""
    if f"{key}_seeds" in d:
        per = np.asarray(d[f"{key}_seeds"], dtype=np.float64)
        return per.mean(axis=0), per.min(axis=0), per.max(axis=0)
    v = np.asarray(d[key], dtype=np.float64)
    return v, v, v


def _band(ax, x, d, key, i, label, **kw):
    """Plot the seed mean of ``key`` against ``x`` with a min-max band in series ``i``'s style."""
    mean, lo, hi = _over_seeds(d, key)
    s = {**style.series(i), **kw}
    ax.plot(x, mean, label=label, **s)
    if (hi > lo).any():
        ax.fill_between(x, lo, hi, color=s["color"], alpha=0.18, lw=0)
    return mean


def _top(values, least: float) -> float:
    """Upper y limit for values in [0, 1]: a little above their largest, at least ``least``."""
    return float(min(1.0, max(least, 1.15 * float(np.max(values)))))


def _seed_note(d: dict) -> str:
    k = _seeds(d)
    return f"{k} seeds: mean, range" if k > 1 else "one seed"


def _errbar(ax, y, d, key, i, label, *, offset=0.0, filled=True, rows=None):
    """Horizontal dot plot: seed means of ``key`` at rows ``y`` with min-max error bars."""
    mean, lo, hi = _over_seeds(d, key)
    if rows is not None:
        mean, lo, hi = mean[rows], lo[rows], hi[rows]
    s = style.series(i)
    ax.errorbar(mean, y + offset, xerr=np.vstack([mean - lo, hi - mean]), fmt=s["marker"],
                color=s["color"], mfc=s["color"] if filled else "white", ms=4, capsize=1.5,
                elinewidth=0.8, lw=0, label=label)


# ------------------------------------------------------------------------------------------
# fig15: sink emergence
# ------------------------------------------------------------------------------------------
def draw_sinks(d: dict):
    """(a) sink score of every head over training (first seed), (b) the sink metric and
    (c) the evaluation loss above that of the true process (seed mean and range), (d) the active head's and
    the other heads' attention on BOS and on the previous token, trigger vs other queries."""
    fig, axes = style.new_figure("text", aspect=0.95, ncols=4,
                                 gridspec_kw={"width_ratios": (1.0, 1.0, 1.0, 1.2)})
    steps = np.asarray(d["steps"], dtype=float)
    sc = np.asarray(d["sink_scores"])  # (R, L, H), first seed
    _, L, H = sc.shape
    ax = axes[0]
    for j, (l, h) in enumerate((l, h) for l in range(L) for h in range(H)):
        ax.plot(steps, sc[:, l, h], label=f"({l}, {h})", markevery=max(1, len(steps) // 6),
                **style.series(j))
    ax.axhline(0.3, **style.theory_kw(lw=0.7, ls=":"))
    ax.text(steps[0], 0.31, r"$\varepsilon=0.3$", ha="left", va="bottom", fontsize=6.5,
            color=style.THEORY_COLOR)
    ax.set_ylim(0, _top(sc / 0.6, 0.5))  # headroom for the legend
    ax.set_xlabel("training step")
    ax.set_ylabel(r"sink score $\alpha^{(\ell,h)}$")
    ax.legend(title=r"head $(\ell, h)$", loc="upper left", ncol=2, title_fontsize=6.5)
    first = int(np.asarray(d["seeds"]).ravel()[0]) if "seeds" in d else int(d["seed"])
    style.panel_label(ax, f"(a) every head, seed {first}")

    ax = axes[1]
    _band(ax, steps, d, "sink_metric", 0, SINK_LABEL, marker=None)
    ax.set_ylim(0, _top(_over_seeds(d, "sink_metric")[2], 0.3))
    ax.set_xlabel("training step")
    ax.set_ylabel(SINK_LABEL + " (fraction of sink heads)")
    style.panel_label(ax, f"(b) {SINK_LABEL}")
    ax.text(0.03, 0.97, _seed_note(d), transform=ax.transAxes, ha="left", va="top", fontsize=6)

    ax = axes[2]
    loss = np.asarray(d.get("eval_loss_seeds", np.asarray(d["eval_loss"])[None]), dtype=float)
    floor = np.asarray(d.get("bayes_loss_seeds", np.atleast_1d(d.get("bayes_loss", 0.0))), dtype=float)
    excess = loss - floor.reshape(-1, 1)
    s = {**style.series(1), "marker": None, "linestyle": "-"}
    ax.plot(steps, excess.mean(axis=0), **s)
    if excess.shape[0] > 1:
        ax.fill_between(steps, excess.min(axis=0), excess.max(axis=0), color=s["color"], alpha=0.18, lw=0)
    if (excess > 0).all():
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(_plain())
    ax.set_xlabel("training step")
    ax.set_ylabel("excess loss (nats)" if "bayes_loss" in d else "loss (nats)")
    style.panel_label(ax, "(c) loss $-$ true process" if "bayes_loss" in d else "(c) loss")

    ax = axes[3]
    keys = ["bos_mass_trigger", "bos_mass_other", "prev_mass_trigger", "prev_mass_other"]
    x = np.array([0.0, 1.0, 2.6, 3.6])
    w = 0.38
    for j, (who, lab) in enumerate((("active", "active head"), ("others", "other heads"))):
        if f"{who}__{keys[0]}" not in d:
            continue
        stats = [_over_seeds(d, f"{who}__{k}") for k in keys]
        mean = np.array([s[0] for s in stats])
        err = np.array([[s[0] - s[1], s[2] - s[0]] for s in stats]).T
        kw = style.series(j)
        ax.bar(x + (j - 0.5) * w, mean, w, yerr=err, color=kw["color"], alpha=1.0 if j == 0 else 0.45,
               label=lab, error_kw={"elinewidth": 0.7, "capsize": 1.5}, lw=0)
    ax.set_xticks(x, ["trig.", "other"] * 2, fontsize=6.5)
    below = mtransforms.blended_transform_factory(ax.transData, ax.transAxes)
    for xc, text in ((0.5, "on BOS"), (3.1, "on prev. token")):
        ax.text(xc, -0.14, text, ha="center", va="top", fontsize=7, transform=below)
    ax.set_ylim(0, 1.22)
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.set_ylabel("attention weight")
    ax.legend(loc="upper center", ncol=2, handlelength=1.2, columnspacing=0.8)
    style.panel_label(ax, "(d) active vs dormant")
    return fig


# ------------------------------------------------------------------------------------------
# fig16: context length
# ------------------------------------------------------------------------------------------
def draw_context(d: dict):
    """(a) final sink metric and (b) mean attention on position 0 against the training
    context length, with what uniform causal attention gives."""
    fig, axes = style.new_figure("column", aspect=1.0, ncols=2)
    n = np.asarray(d["n"] if "n" in d else d["run_n"], dtype=float)
    ax = axes[0]
    _band(ax, n, d, "final_sink_metric", 0, "trained")
    ax.set_xscale("log", base=2)
    ax.set_ylim(-0.02, 1)
    ax.set_xlabel("context length $n$")
    ax.set_ylabel(SINK_LABEL + r", $T=\min(64,n)$")
    ax.text(0.97, 0.97, _seed_note(d), transform=ax.transAxes, ha="right", va="top", fontsize=6)
    style.panel_label(ax, f"(a) {SINK_LABEL}")

    ax = axes[1]
    _band(ax, n, d, "bos_mass", 0, "trained")
    if "uniform_bos_mass" in d:
        ax.plot(n, np.asarray(d["uniform_bos_mass"]), **style.theory_kw(label="uniform"))
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(mticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(_plain())
    ax.yaxis.set_minor_formatter(mticker.NullFormatter())
    ax.set_xlabel("context length $n$")
    ax.set_ylabel("mean attention on position 0")
    ax.legend(loc="lower left")
    style.panel_label(ax, "(b) weight on BOS")
    for a in axes:
        a.set_xticks(n, [f"{v:g}" for v in n], fontsize=6)
        a.tick_params(axis="x", which="minor", bottom=False)
    return fig


# ------------------------------------------------------------------------------------------
# fig17: depth and heads
# ------------------------------------------------------------------------------------------
def draw_depth_heads(d: dict):
    """(a) final sink metric and (b) mean attention on position 0 against the number of
    heads, one line per depth."""
    fig, axes = style.new_figure("column", aspect=1.0, ncols=2)
    Ls, Hs = np.asarray(d["Ls"]), np.asarray(d["Hs"], dtype=float)
    for a, (key, ylab, title) in enumerate((("sink_grid", SINK_LABEL, f"(a) {SINK_LABEL}"),
                                            ("bos_grid", "mean attention on position 0",
                                             "(b) weight on BOS"))):
        ax = axes[a]
        if key not in d:
            ax.set_axis_off()
            continue
        mean, lo, hi = _over_seeds(d, key)
        for i, L in enumerate(Ls):
            s = style.series(i)
            ax.plot(Hs, mean[i], label=f"$L={int(L)}$", **s)
            if (hi[i] > lo[i]).any():
                ax.fill_between(Hs, lo[i], hi[i], color=s["color"], alpha=0.15, lw=0)
        ax.set_xscale("log", base=2)
        ax.set_xticks(Hs, [f"{int(h)}" for h in Hs])
        ax.tick_params(axis="x", which="minor", bottom=False)
        ax.set_xlabel("heads per layer $H$")
        ax.set_ylabel(ylab)
        ax.set_ylim(-0.02, 1)
        style.panel_label(ax, title)
    axes[0].legend(loc="upper left", title=_seed_note(d), title_fontsize=6)
    axes[1].set_ylim(-0.02, _top(_over_seeds(d, "bos_grid")[2], 0.5) if "bos_grid" in d else 1)
    return fig


# ------------------------------------------------------------------------------------------
# fig18: BOS
# ------------------------------------------------------------------------------------------
_BOS_ROW = {"bb: first": "BB, BOS at 0", "bb: none": "BB, no BOS", "docs: first": "docs, BOS at 0",
            "docs: none": "docs, no BOS", "docs: every": "docs, BOS per doc"}


def draw_bos(d: dict):
    """(a) Sink metric and (b) mean attention on position 0 of each training mode (rows),
    evaluated with and without BOS; (b) also shows what uniform causal attention gives."""
    modes = [str(m) for m in np.asarray(d["train_modes"]).ravel()]
    fig, axes = style.new_figure("column", aspect=0.45 + 0.14 * len(modes), ncols=2, sharey=True)
    y = np.arange(len(modes))[::-1].astype(float)
    evals = [str(m) for m in np.asarray(d["eval_modes"]).ravel()]
    for a, (key, xlab) in enumerate((("sink_table", SINK_LABEL),
                                     ("bos_mass_table", "on position 0"))):
        ax = axes[a]
        mean, lo, hi = _over_seeds(d, key)
        for j, e in enumerate(evals):
            s = style.series(j)
            ax.errorbar(mean[:, j], y + (0.12 - 0.24 * j), xerr=np.vstack([mean[:, j] - lo[:, j],
                                                                           hi[:, j] - mean[:, j]]),
                        fmt=s["marker"], color=s["color"], mfc=s["color"] if j == 0 else "white",
                        ms=3.5, capsize=1.5, elinewidth=0.8, lw=0, label=f"evaluated {e}")
        ax.set_xlabel(xlab)
        ax.grid(axis="y", lw=0.3, color="0.85")
    n = _context_length(d)
    if n is not None:
        axes[1].axvline(uniform_attention_baselines(n)[1],
                        **style.theory_kw(label="uniform attention"))
    axes[0].set_xlim(-0.02, _top(_over_seeds(d, "sink_table")[2], 0.3))
    axes[1].set_xlim(left=0)
    axes[0].set_yticks(y, [_BOS_ROW.get(m, m) for m in modes])
    axes[0].set_ylim(y.min() - 0.6, y.max() + 0.6)
    axes[0].set_ylabel("trained on")
    style.panel_label(axes[0], f"(a) {SINK_LABEL}")
    style.panel_label(axes[1], "(b) attention")
    h0, l0 = axes[0].get_legend_handles_labels()
    h1, l1 = axes[1].get_legend_handles_labels()
    for a in axes:
        a.xaxis.set_major_formatter(_plain())
    extra = [(h, lab) for h, lab in zip(h1, l1) if lab not in l0]
    fig.legend(h0 + [h for h, _ in extra], l0 + [lab for _, lab in extra],
               loc="outside lower center", ncol=2, columnspacing=1.0, handlelength=1.8)
    return fig


def _context_length(d: dict):
    """The training context length n stored in the experiment's config (None if absent)."""
    if "config" not in d:
        return None
    cfg = json.loads(str(np.asarray(d["config"])))
    n = cfg.get("sweep", cfg.get("task", {})).get("n")
    return int(n) if n is not None else None


# ------------------------------------------------------------------------------------------
# fig19: interventions
# ------------------------------------------------------------------------------------------
def _variant_label(v: str) -> str:
    if v == "adam":
        return "Adam"
    if v == "sgd":
        return "SGD, momentum"
    v = v.replace("sink_logit=", "sink logit $b=").replace(", sink_value=0", "$, value 0")
    v = v.replace("sink_value=0", "sink value 0")
    if v.count("$") == 1:
        v += "$"
    return v


def draw_interventions(d: dict):
    """Sink metric (as trained, and with the built-in sink logit removed) and final loss
    above that of the true process, for each variant (Adam, SGD, built-in sinks)."""
    variants = [str(v) for v in np.asarray(d["variant"] if "variant" in d else d["run_label"]).ravel()]
    fig, axes = style.new_figure("column", aspect=0.45 + 0.14 * len(variants), ncols=2,
                                 sharey=True)
    y = np.arange(len(variants))[::-1].astype(float)
    ax = axes[0]
    _errbar(ax, y, d, "final_sink_metric", 0, "as trained", offset=0.12)
    knob = np.asarray(d.get("has_sink_logit", np.zeros(len(variants), bool)), dtype=bool)
    if knob.any() and "sink_metric_without_knob" in d:
        _errbar(ax, y[knob], d, "sink_metric_without_knob", 2, "built-in logit removed",
                offset=-0.12, filled=False, rows=knob)
    ax.set_xlim(-0.03, 1.03)
    ax.set_xlabel(SINK_LABEL)
    ax.set_yticks(y, [_variant_label(v) for v in variants])
    ax.set_ylim(y.min() - 0.6, y.max() + 0.6)
    style.panel_label(ax, f"(a) {SINK_LABEL}")
    ax = axes[1]
    loss = np.asarray(d.get("final_loss_seeds", np.asarray(d["final_loss"])[None]), dtype=float)
    floor = np.asarray(d.get("bayes_loss_seeds", np.atleast_1d(d.get("bayes_loss", 0.0))),
                       dtype=float)
    excess = loss - floor.reshape(-1, 1)  # each seed's task has its own loss floor
    mean = excess.mean(axis=0)
    s = style.series(1)
    ax.errorbar(mean, y, xerr=np.vstack([mean - excess.min(axis=0), excess.max(axis=0) - mean]),
                fmt=s["marker"], color=s["color"], ms=4, capsize=1.5, elinewidth=0.8, lw=0,
                label="final loss")
    ax.set_xlim(left=0)
    ax.set_xlabel("nats")
    style.panel_label(ax, "(b) excess loss" if "bayes_loss" in d else "(b) loss")
    for a in axes:
        a.grid(axis="y", lw=0.3, color="0.85")
    for a in axes:
        a.xaxis.set_major_formatter(_plain())
    h0, l0 = axes[0].get_legend_handles_labels()
    fig.legend(h0, l0, loc="outside lower center", ncol=2)
    return fig


DRAW = {"sinks": draw_sinks, "context": draw_context, "depth_heads": draw_depth_heads,
        "bos": draw_bos, "interventions": draw_interventions}


def draw_experiment(data: dict):
    """Draw the figure of ``data["experiment"]``: a figure's flat data, or an experiment
    dict as ``overmix train`` writes it (:func:`overmix.sims.train_figures.load_experiment`)."""
    from overmix.sims.train_figures import flatten

    if not isinstance(data, dict):
        raise TypeError(f"data must be a dict; got {type(data).__name__}")
    flat = flatten(data)
    name = str(flat["experiment"]) if "experiment" in flat else None
    if name not in DRAW:
        raise ValueError(f"data must be an experiment dict with 'experiment' in {sorted(DRAW)}; "
                         f"got {name!r}")
    return DRAW[name](flat)


def figure_parts(name: str, draw_fn):
    """(CONFIG, QUICK, SEED, compute, draw) for the figure module of training figure ``name``
    (a key of ``overmix.sims.train_figures.FIGURES``): the compute side from sims, the
    drawing from here."""
    from overmix.sims.train_figures import FIGURES

    if name not in FIGURES:
        raise ValueError(f"name must be one of {sorted(FIGURES)}; got {name!r}")
    fig = FIGURES[name]
    return fig.CONFIG, fig.QUICK, fig.SEED, fig.compute, draw_fn
