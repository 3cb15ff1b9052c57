"""Training experiments in which attention sinks emerge (issue 7), each a function returning data.

Every experiment trains small language models (:mod:`overmix.sims.train`) on synthetic data
(:mod:`overmix.sims.data`) and returns a dict that :func:`save_experiment` writes as
``EXPERIMENT.json`` (scalars and short lists) and ``EXPERIMENT.npz`` (arrays). Each has a
``quick`` setting (seconds to a couple of minutes on 2 cores) and a full one (a dict in the
table named after the experiment, e.g. :data:`SINKS`, plus :data:`COMMON_SETTING`);
``setting=`` overrides any of its entries (unknown keys raise ValueError), e.g.
``setting={"compute_dtype": "float32"}`` trains natively in float32.

The dict always holds ``steps`` (recorded steps), ``loss`` and ``sink_metric`` (one value per
recorded step; the sink metric is GSM's Sink_eps of THEORY.md A8 with eps = 0.3 and
T = min(64, n) on a fixed evaluation batch), ``config`` and ``seed``. For experiments with
several runs (sweeps), ``loss`` and ``sink_metric`` are the means over the runs at each
recorded step, and ``runs`` lists each run's own curves and final measurements.

Seeds: the setting's ``seeds`` entry (1 in the quick settings, 3 or 5 in the full ones) repeats
the whole experiment with the seeds ``seed, seed + 1, ..., seed + seeds - 1`` (task,
evaluation batch, initialisation and data stream all change with the seed). The dict then
holds ``seeds`` (that list); ``loss``, ``eval_loss``, ``sink_metric`` and the experiment's
summary quantities (listed in :data:`SEED_AVERAGED`) are means over the seeds, each with a
``<key>_seeds`` array whose first axis is the seed (so ``data[k] == data[k + "_seeds"].mean(0)``).
Entries that describe single models (``runs``, per-head curves, attention maps) are the
first seed's; :data:`SEED_STACKED` entries are also stacked over seeds but not averaged
(head identities differ between seeds).

Experiments (``EXPERIMENTS``):

- ``sinks``: sink emergence on Bigram-Backcopy (Guo et al. 2024, arXiv 2410.13835): the sink
  score of every head over training; active vs dormant heads (attention to BOS and to the
  previous token on trigger vs non-trigger queries); value norm of BOS against the other
  tokens (Guo et al.'s "value-state drain") and residual norm (their "residual-state peak").
- ``context``: context-length sweep at equal tokens per step (BFT Fig. 5 analogue).
- ``depth_heads``: sink metric against layers L and heads H (BFT Table 1's direction; A9).
- ``bos``: BOS fixed at position 0 during training or absent (Bigram-Backcopy; in the full
  setting also packed documents), evaluated with and without BOS (BFT Table 2 analogue).
- ``interventions``: Adam vs SGD; built-in sinks (sink_logit, sink_value_scale): is a
  learned sink still needed?
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import tempfile
import time
from typing import Callable

import numpy as np

from .batch import batch_forward_saved
from .config import StackConfig
from .data import (bigram_backcopy_task, packed_documents_task, sample_bigram_backcopy,
                   sample_packed_documents)
from .params import compute_dtype
from .train import (LMConfig, LMParams, TrainConfig, _checked_tokens, _embed, atomic_savez, init_lm,
                    loss, train)

SINK_EPS = 0.3
SINK_T = 64


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------
def _check_seeds(seeds) -> int:
    """``seeds`` as an int >= 1 (ValueError naming the argument otherwise)."""
    if isinstance(seeds, bool) or not isinstance(seeds, (int, np.integer)) or seeds < 1:
        raise ValueError(f"seeds must be an int >= 1 (the number of training seeds); got {seeds!r}")
    return int(seeds)


def experiment_setting(name: str, *, quick: bool = False, setting: dict | None = None) -> dict:
    """The setting of experiment ``name``: its quick or full table entry with ``setting``'s
    entries replacing the table's.

    Sequences become tuples (as in the tables, so JSON lists are accepted), ints stay ints
    and real-valued entries become floats; a key the table does not have, or a value of the
    wrong kind, raises ValueError / TypeError naming it. ``seeds`` must be an int >= 1.

    Examples
    --------
    >>> experiment_setting("sinks", quick=True, setting={"steps": 10, "seeds": 2})["steps"]
    10
    """
    if name not in _TABLES:
        raise ValueError(f"name must be one of {sorted(_TABLES)}; got {name!r}")
    base = {**_TABLES[name]["quick" if quick else "full"], **COMMON_SETTING}
    if setting is None:
        setting = {}
    if not isinstance(setting, dict):
        raise TypeError(f"setting must be a dict of overrides or None; got {type(setting).__name__}")
    unknown = sorted(set(setting) - set(base))
    if unknown:
        raise ValueError(f"setting has key(s) {unknown} that experiment {name!r} does not know; "
                         f"allowed: {sorted(base)}")
    c = dict(base)
    for key, value in setting.items():
        ref = base[key]
        if key == "seeds":
            value = _check_seeds(value)
        elif key == "compute_dtype":
            try:
                value = compute_dtype(value).name
            except ValueError as err:
                raise ValueError(f"setting['compute_dtype']: {err}") from None
        elif isinstance(ref, tuple):
            if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
                raise TypeError(f"setting[{key!r}] must be a list or tuple like {list(ref)!r}; "
                                f"got {value!r}")
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
            if not value:
                raise ValueError(f"setting[{key!r}] must not be empty")
        elif isinstance(ref, int):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"setting[{key!r}] must be an int; got {value!r}")
            value = int(value)
        elif isinstance(ref, float):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise TypeError(f"setting[{key!r}] must be a real number; got {value!r}")
            value = float(value)
        c[key] = value
    c["seeds"] = _check_seeds(c["seeds"])
    return c


def _jsonable_setting(c: dict) -> dict:
    """A setting with tuples as lists (for ``config`` in the output)."""
    return {k: [list(x) if isinstance(x, tuple) else x for x in v] if isinstance(v, tuple) else v
            for k, v in c.items()}


def _over_seeds(one, c: dict, seed: int, progress, steps_per_seed: int, averaged=(),
                stacked=()) -> dict:
    """Run ``one(c, seed_k, prog)`` for seed_k = seed .. seed + c["seeds"] - 1 and combine.

    The first seed's dict is the base; ``loss``, ``eval_loss``, ``sink_metric`` and the keys
    in ``averaged`` become means over the seeds (same type as before: list, array or float)
    with ``<key>_seeds`` arrays (seed first); keys in ``stacked`` get ``<key>_seeds`` only.
    """
    seeds = [seed + k for k in range(c["seeds"])]
    prog = _Progress(steps_per_seed * len(seeds), progress)
    results = [one(c, s, prog) for s in seeds]
    out = dict(results[0])
    out["seed"], out["seeds"] = seed, seeds
    steps = results[0]["steps"]
    if any(r["steps"] != steps for r in results):
        raise RuntimeError("seeds recorded different steps; cannot average their curves")
    for key in ("loss", "eval_loss", "sink_metric", *averaged):
        per = np.array([np.asarray(r[key], dtype=np.float64) for r in results])
        mean = per.mean(axis=0)
        first = results[0][key]
        out[key] = (mean.tolist() if isinstance(first, list)
                    else mean if isinstance(first, np.ndarray) else float(mean))
        out[f"{key}_seeds"] = per
    for key in stacked:
        out[f"{key}_seeds"] = np.array([np.asarray(r[key]) for r in results])
    return out


def _seed(*keys) -> int:
    """A 32-bit seed derived from integer keys (independent streams for data, eval, init)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])


class _Progress:
    """Maps each run's (done, total) onto the experiment's global count."""

    def __init__(self, total, callback):
        self.total, self.callback, self.offset = total, callback, 0

    def run(self, steps):
        off = self.offset
        self.offset += steps
        if self.callback is None:
            return None
        return lambda done, _total: self.callback(off + done, self.total)


def _lm(task_vocab, n, *, L, d, H, pos_table=True, **stack_kw) -> LMConfig:
    stack = StackConfig(n_layers=L, d_model=d, n_heads=H, **stack_kw)
    return LMConfig(stack=stack, vocab_size=task_vocab, tied=False, max_len=n if pos_table else 0)


def _bb_data(task, batch, n, seed, bos=True):
    return lambda step: sample_bigram_backcopy(task, batch, n + 1, seed=_seed(seed, 1, step), bos=bos)


def _docs_data(task, batch, n, seed, bos):
    return lambda step: sample_packed_documents(task, batch, n + 1, seed=_seed(seed, 1, step), bos=bos)[0]


def _train_cfg(c, steps, batch, lr, *, optimizer="adam", record=None, attn_steps=(), **kw):
    """The TrainConfig of one run of setting ``c`` (which gives its compute dtype)."""
    record = record or max(1, steps // 20)
    return TrainConfig(steps=steps, batch_size=batch, optimizer=optimizer, lr=lr,
                       record_every=record, attn_steps=tuple(attn_steps), sink_eps=SINK_EPS,
                       sink_T=SINK_T, compute_dtype=c["compute_dtype"], **kw)


def _curves(history) -> dict:
    return {"steps": list(history.steps), "loss": list(history.loss),
            "eval_loss": list(history.eval_loss), "sink_metric": list(history.sink_metric)}


def head_statistics(cfg: LMConfig, params: LMParams, tokens, *, trigger=None) -> dict:
    """Per-head diagnostics of a trained model on ``tokens`` (S, n) (model inputs).

    Returns arrays of shape (L, H) unless noted:

    - ``bos_mass``: mean attention on position 0 over queries i >= 1;
    - ``sink_score``: GSM's alpha (THEORY.md A8), T = min(64, n), averaged over sequences;
    - ``value_norm_first`` / ``value_norm_rest``: mean ||c_j Val_j W_O|| of position 0 and
      of positions j >= 1 (c_0 = sink_value_scale; Guo et al.'s value-state drain when the
      first is much smaller);
    - ``residual_norm`` (L+1, 2): mean hidden-state norm of position 0 and of j >= 1
      (residual-state peak when the first is much larger);
    - with ``trigger`` (S, n) bool: ``bos_mass_trigger`` / ``bos_mass_other`` and
      ``prev_mass_trigger`` / ``prev_mass_other``: attention on BOS and on the previous token
      from trigger and non-trigger queries i >= 2 (Guo et al.'s active vs dormant heads).
    """
    from overmix.theory import sink_scores

    p = params.checked(cfg)
    x = _checked_tokens(cfg, tokens, tokens, None)[0]
    saved = batch_forward_saved(cfg.stack, p.stack, _embed(cfg, p, x))
    A = saved.attn  # (S, L, H, n, n)
    S, L, H, n, _ = A.shape
    out = {"bos_mass": A[:, :, :, 1:, 0].mean(axis=(0, 3)) if n > 1 else np.zeros((L, H)),
           "sink_score": sink_scores(A, T=min(SINK_T, n)).mean(axis=0)}
    val = saved.arrays[6]  # Val (S, L, H, n, dk): value rows before the sink scaling c_j
    if val.shape != (S, L, H, n, cfg.stack.d_head):
        raise RuntimeError(f"unexpected layout of the saved forward pass: Val has shape {val.shape}")
    VO = np.einsum("slhnk,lhkd->slhnd", val, p.stack.W_O)
    norms = np.linalg.norm(VO, axis=-1)
    norms[..., 0] *= abs(cfg.stack.sink_value_scale)
    out["value_norm_first"] = norms[..., 0].mean(axis=0)
    out["value_norm_rest"] = norms[..., 1:].mean(axis=(0, 3)) if n > 1 else np.zeros((L, H))
    hid = np.linalg.norm(saved.arrays[0], axis=-1)  # (S, L+1, n)
    out["residual_norm"] = np.stack([hid[:, :, 0].mean(axis=0), hid[:, :, 1:].mean(axis=(0, 2))], axis=1)
    if trigger is not None and n > 2:
        t = np.asarray(trigger, dtype=bool)
        q = np.zeros((S, n), dtype=bool)
        q[:, 2:] = True
        trig, other = q & t, q & ~t
        prev = np.zeros((S, L, H, n))
        prev[..., 1:] = A[..., np.arange(1, n), np.arange(n - 1)]
        for name, mask in (("trigger", trig), ("other", other)):
            w = mask[:, None, None, :].astype(np.float64)
            cnt = max(mask.sum(), 1)
            out[f"bos_mass_{name}"] = (A[..., 0] * w).sum(axis=(0, 3)) / cnt
            out[f"prev_mass_{name}"] = (prev * w).sum(axis=(0, 3)) / cnt
    return out


def _final_sink(cfg, params, tokens):
    from overmix.theory import sink_metric

    p = params.checked(cfg)
    x = _checked_tokens(cfg, tokens, tokens, None)[0]
    A = batch_forward_saved(cfg.stack, p.stack, _embed(cfg, p, x)).attn
    n = A.shape[-1]
    return (sink_metric(A, eps=SINK_EPS, T=min(SINK_T, n)),
            float(A[:, :, :, 1:, 0].mean()) if n > 1 else 1.0)


def _mean_curves(runs) -> dict:
    steps = runs[0]["steps"]
    if any(r["steps"] != steps for r in runs):
        raise RuntimeError("runs recorded different steps; cannot average their curves")
    return {"steps": steps,
            "loss": np.mean([r["loss"] for r in runs], axis=0).tolist(),
            "eval_loss": np.mean([r["eval_loss"] for r in runs], axis=0).tolist(),
            "sink_metric": np.mean([r["sink_metric"] for r in runs], axis=0).tolist()}


# ------------------------------------------------------------------------------------------
# the experiments
# ------------------------------------------------------------------------------------------
SINKS = {
    "quick": dict(n_tokens=16, n_triggers=3, n=32, L=2, d=32, H=2, batch=16, steps=600, lr=1e-2,
                  seeds=1),
    "full": dict(n_tokens=16, n_triggers=3, n=64, L=2, d=32, H=2, batch=16, steps=1500, lr=1e-2,
                 seeds=5),
}

_HEAD_MASSES = ("bos_mass_trigger", "bos_mass_other", "prev_mass_trigger", "prev_mass_other")


def active_head_summary(stats: dict) -> dict:
    """Guo et al.'s active/dormant head in a trained model, from :func:`head_statistics`.

    The *active* head is the one whose previous-token weight rises most on trigger queries
    (largest ``prev_mass_trigger - prev_mass_other``); returns its index ``l * H + h``
    (``active_head``), its four attention masses (``active/<mass>``), the mean of the
    same masses over the other heads (``others/<mass>``; NaN with one head), its
    ``value_ratio`` ||value of position 0|| / mean ||value of j >= 1|| (Guo et al.'s
    value-state drain when << 1) and ``residual_ratio``, the largest ratio of the hidden
    norm of position 0 to that of j >= 1 over layers 1..L (their residual-state peak when >> 1).
    """
    if not isinstance(stats, dict) or any(q not in stats for q in _HEAD_MASSES):
        got = sorted(stats) if isinstance(stats, dict) else repr(stats)
        raise ValueError(f"stats must be head_statistics(..., trigger=...) output with "
                         f"{list(_HEAD_MASSES)}; got keys {got}")
    diff = np.asarray(stats["prev_mass_trigger"]) - np.asarray(stats["prev_mass_other"])
    k = int(np.argmax(diff))
    others = np.arange(diff.size) != k
    out = {"active_head": k}
    for q in _HEAD_MASSES:
        v = np.asarray(stats[q], dtype=np.float64).ravel()
        out[f"active/{q}"] = float(v[k])
        out[f"others/{q}"] = float(v[others].mean()) if others.any() else float("nan")
    first = np.asarray(stats["value_norm_first"], dtype=np.float64).ravel()[k]
    rest = np.asarray(stats["value_norm_rest"], dtype=np.float64).ravel()[k]
    out["active/value_ratio"] = float(first / rest) if rest > 0 else float("nan")
    res = np.asarray(stats["residual_norm"], dtype=np.float64)
    out["residual_ratio"] = float(np.max(res[1:, 0] / np.maximum(res[1:, 1], 1e-300)))
    return out


def _sinks_one(c, seed, prog) -> dict:
    task = bigram_backcopy_task(c["n_tokens"], c["n_triggers"], seed=_seed(seed, 0))
    n = c["n"]
    cfg = _lm(task.vocab_size, n, L=c["L"], d=c["d"], H=c["H"])
    steps = c["steps"]
    tc = _train_cfg(c, steps, c["batch"], c["lr"], attn_steps=(0, steps // 8, steps // 2, steps))
    ev = sample_bigram_backcopy(task, 32, n + 1, seed=_seed(seed, 2))
    p0 = init_lm(cfg, _seed(seed, 3))
    params, h = train(cfg, tc, _bb_data(task, c["batch"], n, seed), ev, params=p0,
                      progress=prog.run(steps))
    trig = task.is_trigger[ev[:, :-1]]
    out = {"experiment": "sinks", "seed": seed,
           "config": {"lm": cfg.to_dict(), "train": tc.to_dict(), "task": _jsonable_setting(c)},
           **_curves(h),
           "sink_scores": np.asarray(h.sink_scores), "grad_norm": np.asarray(h.grad_norm),
           "step_loss": np.asarray(h.step_loss),
           "attn_steps": np.asarray(h.attn_steps), "attn": np.asarray(h.attn),
           "triggers": task.triggers, "bayes_loss": _bb_bayes_loss(task, ev)}
    for tag, pp in (("initial", p0), ("final", params)):
        stats = head_statistics(cfg, pp, ev[:, :-1], trigger=trig)
        for k, v in stats.items():
            out[f"heads_{tag}/{k}"] = v
    out.update(active_head_summary(stats))  # of the final model
    return out


def sink_emergence(*, quick: bool = False, seed: int = 0, setting: dict | None = None,
                   progress: Callable[[int, int], None] | None = None) -> dict:
    """Sink emergence on Bigram-Backcopy: every head's sink score over training, and the
    active/dormant split, value drain and residual peak of the trained model.

    The model follows Guo et al.'s BB setup in miniature: learned absolute position table,
    untied unembedding, pre-norm (rms), GELU MLP, Adam. Returns a dict (see module doc) with
    ``sink_scores`` (R, L, H), ``attn`` (A, L, H, n, n) mean maps at a few steps, and
    ``heads_initial`` / ``heads_final`` (:func:`head_statistics` before and after training)
    of the first seed; averaged over seeds: ``bayes_loss`` (loss floor of the true process)
    and :func:`active_head_summary` of each seed's trained model (``active/*``,
    ``others/*``, ``residual_ratio``); ``sink_scores_seeds`` (S, R, L, H) and
    ``active_head_seeds`` stacked.
    """
    c = experiment_setting("sinks", quick=quick, setting=setting)
    out = _over_seeds(_sinks_one, c, seed, progress, c["steps"],
                      averaged=SEED_AVERAGED["sinks"], stacked=SEED_STACKED["sinks"])
    out["quick"] = quick
    return out


def _bb_bayes_loss(task, tokens) -> float:
    """Cross-entropy of the true process on ``tokens`` (S, n+1): the loss floor."""
    x, y = tokens[:, :-1], tokens[:, 1:]
    P = task.transition
    logp = np.zeros(x.shape)
    ordinary = (x < task.bos) & ~task.is_trigger[np.minimum(x, task.bos)]
    logp[ordinary] = np.log(P[x[ordinary], y[ordinary]])
    first = x == task.bos
    logp[first] = np.log(task.first[y[first]])
    return float(-logp.mean())


def uniform_attention_baselines(n: int, T: int | None = None) -> tuple[float, float]:
    """What uniform causal attention (query i spreads 1/(i+1) over tokens 0..i) scores on
    the two sink measures: GSM's sink score alpha = H_T / T (THEORY.md A8; H_T the harmonic
    number, T = min(64, n) by default) and the mean attention on position 0 over queries
    i = 1..n-1, (H_n - 1) / (n - 1).

    Examples
    --------
    >>> [round(v, 4) for v in uniform_attention_baselines(2)]
    [0.75, 0.5]
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be an int >= 2; got {n!r}")
    T = min(SINK_T, int(n)) if T is None else T
    if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or not 1 <= T <= n:
        raise ValueError(f"T must be an int in [1, n={n}]; got {T!r}")
    alpha = sum(1.0 / (t + 1) for t in range(int(T))) / T
    bos = sum(1.0 / (i + 1) for i in range(1, int(n))) / (n - 1)
    return float(alpha), float(bos)


CONTEXT = {
    "quick": dict(ns=(16, 32, 64, 128), tokens=512, steps=300, L=2, d=32, H=2, lr=1e-2, seeds=1),
    "full": dict(ns=(16, 32, 64, 128, 256, 512), tokens=1024, steps=800, L=2, d=32, H=4, lr=5e-3,
                 seeds=3),
}


def _context_one(c, seed, prog) -> dict:
    task = bigram_backcopy_task(16, 3, seed=_seed(seed, 0))
    runs = []
    for n in c["ns"]:
        batch = max(1, c["tokens"] // n)
        # RoPE and no position table: the model has the same parameters at every n
        cfg = _lm(task.vocab_size, n, L=c["L"], d=c["d"], H=c["H"], pos_table=False, pos="rope")
        tc = _train_cfg(c, c["steps"], batch, c["lr"])
        ev = sample_bigram_backcopy(task, max(4, min(32, 2048 // n)), n + 1, seed=_seed(seed, 2, n))
        params, h = train(cfg, tc, _bb_data(task, batch, n, _seed(seed, n)), ev,
                          seed=_seed(seed, 3), progress=prog.run(c["steps"]))
        metric, bos = _final_sink(cfg, params, ev[:, :-1])
        alpha_u, bos_u = uniform_attention_baselines(n)
        runs.append({"label": f"n={n}", "n": n, "batch": batch, **_curves(h),
                     "final_sink_metric": metric, "bos_mass": bos,
                     "uniform_sink_score": alpha_u, "uniform_bos_mass": bos_u,
                     "final_loss": h.eval_loss[-1],
                     "final_sink_scores": np.asarray(h.sink_scores[-1]).tolist(),
                     "bayes_loss": _bb_bayes_loss(task, ev)})
    col = lambda key: np.array([r[key] for r in runs], dtype=np.float64)  # noqa: E731
    return {"experiment": "context", "seed": seed,
            "config": {"sweep": _jsonable_setting(c), "lm": cfg.to_dict()},
            **_mean_curves(runs),
            "runs": runs, "n": np.array(c["ns"]),
            **{k: col(k) for k in ("final_sink_metric", "bos_mass", "final_loss", "bayes_loss",
                                   "uniform_sink_score", "uniform_bos_mass")}}


def context_sweep(*, quick: bool = False, seed: int = 0, setting: dict | None = None,
                  progress: Callable[[int, int], None] | None = None) -> dict:
    """Final sink metric against the training context length n at equal tokens per step
    (batch = tokens / n), on Bigram-Backcopy (BFT Fig. 5 analogue), with RoPE (as BFT's
    models) and no position table, so every n trains the same parameters.

    Besides the sink metric (T = min(64, n), so short contexts average fewer queries), each
    run reports ``bos_mass`` (mean attention on position 0 over all queries i >= 1) and
    what uniform causal attention scores on both (:func:`uniform_attention_baselines`:
    ``uniform_sink_score`` = H_T / T, which the metric's eps must beat to mean anything at
    small n, and ``uniform_bos_mass``). Arrays over n (averaged over seeds, with
    ``<key>_seeds``): ``final_sink_metric``, ``bos_mass``, ``final_loss``, ``bayes_loss``.
    """
    c = experiment_setting("context", quick=quick, setting=setting)
    out = _over_seeds(_context_one, c, seed, progress, c["steps"] * len(c["ns"]),
                      averaged=SEED_AVERAGED["context"])
    out["quick"] = quick
    return out


DEPTH_HEADS = {
    "quick": dict(Ls=(1, 2), Hs=(1, 2, 4), n=32, d=32, batch=16, steps=300, lr=1e-2, seeds=1),
    "full": dict(Ls=(1, 2, 3), Hs=(1, 2, 4, 8), n=32, d=32, batch=16, steps=600, lr=1e-2,
                 seeds=3),
}


def _depth_heads_one(c, seed, prog) -> dict:
    task = bigram_backcopy_task(16, 3, seed=_seed(seed, 0))
    n = c["n"]
    ev = sample_bigram_backcopy(task, 32, n + 1, seed=_seed(seed, 2))
    runs = []
    grid = np.zeros((len(c["Ls"]), len(c["Hs"])))
    lgrid, bgrid = np.zeros_like(grid), np.zeros_like(grid)
    for a, L in enumerate(c["Ls"]):
        for b, H in enumerate(c["Hs"]):
            cfg = _lm(task.vocab_size, n, L=L, d=c["d"], H=H)
            tc = _train_cfg(c, c["steps"], c["batch"], c["lr"])
            params, h = train(cfg, tc, _bb_data(task, c["batch"], n, seed), ev,
                              seed=_seed(seed, 3), progress=prog.run(c["steps"]))
            metric, bos = _final_sink(cfg, params, ev[:, :-1])
            grid[a, b], lgrid[a, b], bgrid[a, b] = metric, h.eval_loss[-1], bos
            runs.append({"label": f"L={L}, H={H}", "L": L, "H": H, **_curves(h),
                         "final_sink_metric": metric, "bos_mass": bos,
                         "final_sink_scores": np.asarray(h.sink_scores[-1]).tolist()})
    return {"experiment": "depth_heads", "seed": seed,
            "config": {"sweep": _jsonable_setting(c)},
            **_mean_curves(runs),
            "runs": runs, "Ls": np.array(c["Ls"]), "Hs": np.array(c["Hs"]),
            "sink_grid": grid, "loss_grid": lgrid, "bos_grid": bgrid,
            "bayes_loss": _bb_bayes_loss(task, ev)}


def depth_heads_sweep(*, quick: bool = False, seed: int = 0, setting: dict | None = None,
                      progress: Callable[[int, int], None] | None = None) -> dict:
    """Final sink metric for every (L, H) on Bigram-Backcopy at fixed width d (d_head = d/H):
    the direction of BFT Table 1 (bigger models, more sink heads) and of the budget model A9.

    Returns ``sink_grid``, ``loss_grid`` and ``bos_grid`` (mean attention on position 0),
    each (len(Ls), len(Hs)) and averaged over seeds (``<key>_seeds``: (S, len(Ls),
    len(Hs))), besides the first seed's per-run records.
    """
    c = experiment_setting("depth_heads", quick=quick, setting=setting)
    out = _over_seeds(_depth_heads_one, c, seed, progress,
                      c["steps"] * len(c["Ls"]) * len(c["Hs"]), averaged=SEED_AVERAGED["depth_heads"])
    out["quick"] = quick
    return out


BOS = {
    "quick": dict(rows=(("bb", "first"), ("bb", "none")), n=32, L=2, d=32, H=2, batch=16,
                  steps=400, lr=1e-2, n_tokens=16, n_chains=4, min_len=8, max_len=24, seeds=1),
    "full": dict(rows=(("bb", "first"), ("bb", "none"), ("docs", "first"), ("docs", "none"),
                       ("docs", "every")),
                 n=64, L=2, d=32, H=4, batch=16, steps=1000, lr=5e-3, n_tokens=16, n_chains=4,
                 min_len=8, max_len=32, seeds=3),
}


def _check_bos_rows(rows) -> None:
    allowed = {"bb": ("first", "none"), "docs": ("first", "none", "every")}
    for a, row in enumerate(rows):
        if (not isinstance(row, tuple) or len(row) != 2 or row[0] not in allowed
                or row[1] not in allowed[row[0]]):
            raise ValueError(f"setting['rows'][{a}] must be a (task, BOS mode) pair with task "
                             f"'bb' (modes 'first', 'none') or 'docs' (modes 'first', 'none', "
                             f"'every'); got {row!r}")


def _bos_one(c, seed, prog) -> dict:
    n = c["n"]
    bb = bigram_backcopy_task(c["n_tokens"], 3, seed=_seed(seed, 0))
    docs = packed_documents_task(c["n_tokens"], c["n_chains"], min_len=c["min_len"],
                                 max_len=c["max_len"], seed=_seed(seed, 0))
    evals = {
        "bb": {"with BOS": sample_bigram_backcopy(bb, 32, n + 1, seed=_seed(seed, 2)),
               "without BOS": sample_bigram_backcopy(bb, 32, n + 1, seed=_seed(seed, 2), bos=False)},
        "docs": {"with BOS": sample_packed_documents(docs, 32, n + 1, seed=_seed(seed, 2), bos="first")[0],
                 "without BOS": sample_packed_documents(docs, 32, n + 1, seed=_seed(seed, 2), bos="none")[0]},
    }
    rows = c["rows"]
    runs = []
    sink = np.zeros((len(rows), 2))
    bos_mass = np.zeros_like(sink)
    lss = np.zeros_like(sink)
    for a, (kind, mode) in enumerate(rows):
        task = bb if kind == "bb" else docs
        cfg = _lm(task.vocab_size, n, L=c["L"], d=c["d"], H=c["H"])
        data = (_bb_data(bb, c["batch"], n, seed, bos=mode == "first") if kind == "bb"
                else _docs_data(docs, c["batch"], n, seed, mode))
        tc = _train_cfg(c, c["steps"], c["batch"], c["lr"])
        params, h = train(cfg, tc, data, evals[kind]["with BOS" if mode != "none" else "without BOS"],
                          seed=_seed(seed, 3), progress=prog.run(c["steps"]))
        row = {"label": f"{kind}: train BOS {mode}", "task": kind, "train_bos": mode, **_curves(h)}
        for b, (name, ev) in enumerate(evals[kind].items()):
            sink[a, b], bos_mass[a, b] = _final_sink(cfg, params, ev[:, :-1])
            lss[a, b] = loss(cfg, params, ev[:, :-1], ev[:, 1:])
            row[f"eval {name}"] = {"sink_metric": sink[a, b], "bos_mass": bos_mass[a, b],
                                   "loss": lss[a, b]}
        runs.append(row)
    return {"experiment": "bos", "seed": seed,
            "config": {"sweep": _jsonable_setting(c), "lm": cfg.to_dict()},
            **_mean_curves(runs),
            "runs": runs,
            "train_modes": np.array([f"{k}: {m}" for k, m in rows]),
            "eval_modes": np.array(["with BOS", "without BOS"]), "sink_table": sink,
            "bos_mass_table": bos_mass, "loss_table": lss,
            "bayes_loss_bb": np.array([_bb_bayes_loss(bb, ev) for ev in evals["bb"].values()])}


def bos_experiment(*, quick: bool = False, seed: int = 0, setting: dict | None = None,
                   progress: Callable[[int, int], None] | None = None) -> dict:
    """BOS fixed at position 0 during training or absent, evaluated with and without BOS (BFT
    Table 2 analogue: does the model that always saw BOS lose its sink without it?).

    Rows (task, training BOS mode): ``bb`` is Bigram-Backcopy with BOS at position 0
    (``first``) or none (``none``: position 0 holds an ordinary token); ``docs`` (full only)
    is packed documents (:func:`overmix.sims.data.sample_packed_documents`) with BOS at
    position 0 only, nowhere, or before every document (``every``). Every model is evaluated
    on contexts of its task with BOS at position 0 and without any BOS.

    Returns ``sink_table``, ``bos_mass_table`` (mean attention on position 0) and
    ``loss_table``, of shape (rows, 2): columns = (eval with BOS, eval without BOS), averaged
    over seeds (``<key>_seeds``: (S, rows, 2)), and ``bayes_loss_bb`` (2,), the loss floor
    of Bigram-Backcopy on the two evaluation batches.
    """
    c = experiment_setting("bos", quick=quick, setting=setting)
    _check_bos_rows(c["rows"])
    out = _over_seeds(_bos_one, c, seed, progress, c["steps"] * len(c["rows"]),
                      averaged=SEED_AVERAGED["bos"])
    out["quick"] = quick
    return out


INTERVENTIONS = {
    "quick": dict(n=32, L=2, d=32, H=2, batch=16, steps=300, lr=1e-2, sgd_lr=0.3, sink_logit=4.0,
                  seeds=1),
    "full": dict(n=32, L=2, d=32, H=4, batch=16, steps=1000, lr=1e-2, sgd_lr=0.3, sink_logit=4.0,
                 seeds=3),
}


def _interventions_one(c, seed, prog) -> dict:
    task = bigram_backcopy_task(16, 3, seed=_seed(seed, 0))
    n = c["n"]
    ev = sample_bigram_backcopy(task, 32, n + 1, seed=_seed(seed, 2))
    b = c["sink_logit"]
    runs = []
    for label, knobs, opt in _variants(b):
        cfg = _lm(task.vocab_size, n, L=c["L"], d=c["d"], H=c["H"], **knobs)
        lr = c["sgd_lr"] if opt == "sgd" else c["lr"]
        tc = _train_cfg(c, c["steps"], c["batch"], lr, optimizer=opt,
                        betas=(0.9, 0.99) if opt == "adam" else (0.9, 0.0))
        params, h = train(cfg, tc, _bb_data(task, c["batch"], n, seed), ev,
                          seed=_seed(seed, 3), progress=prog.run(c["steps"]))
        metric, bos = _final_sink(cfg, params, ev[:, :-1])
        row = {"label": label, "optimizer": opt, "knobs": knobs, **_curves(h),
               "final_sink_metric": metric, "bos_mass": bos, "final_loss": h.eval_loss[-1]}
        # with no built-in logit to remove, "removed" is the model as trained
        row["sink_metric_without_knob"], row["bos_mass_without_knob"] = metric, bos
        if "sink_logit" in knobs:
            bare = dataclasses.replace(cfg, stack=dataclasses.replace(cfg.stack, sink_logit=0.0))
            row["sink_metric_without_knob"], row["bos_mass_without_knob"] = _final_sink(
                bare, params, ev[:, :-1])
        runs.append(row)
    col = lambda key: np.array([r[key] for r in runs], dtype=np.float64)  # noqa: E731
    return {"experiment": "interventions", "seed": seed, "config": {"sweep": _jsonable_setting(c)},
            **_mean_curves(runs),
            "runs": runs, "variant": np.array([r["label"] for r in runs]),
            "has_sink_logit": np.array(["sink_logit" in r["knobs"] for r in runs]),
            **{k: col(k) for k in ("final_sink_metric", "final_loss", "bos_mass",
                                   "sink_metric_without_knob", "bos_mass_without_knob")},
            "bayes_loss": _bb_bayes_loss(task, ev)}


def _variants(b):
    return [("adam", {}, "adam"), ("sgd", {}, "sgd"), (f"sink_logit={b:g}", {"sink_logit": b}, "adam"),
            ("sink_value=0", {"sink_value_scale": 0.0}, "adam"),
            (f"sink_logit={b:g}, sink_value=0", {"sink_logit": b, "sink_value_scale": 0.0}, "adam")]


def interventions(*, quick: bool = False, seed: int = 0, setting: dict | None = None,
                  progress: Callable[[int, int], None] | None = None) -> dict:
    """Adam vs SGD, and built-in sinks, on Bigram-Backcopy.

    Variants: ``adam`` (baseline), ``sgd`` (momentum 0.9), ``sink_logit=b`` (every query
    gets +b on token 0), ``sink_value=0`` (token 0's value is zeroed: an attended sink is an
    exact no-op), and both. For the sink-logit variants the trained weights are also
    evaluated with the knob removed (``sink_metric_without_knob``; equal to the metric as
    trained for the other variants, which have nothing to remove): if the model learned its
    own sink the metric stays high, if it leaned on the built-in one it drops. Arrays over
    variants (averaged over seeds, with ``<key>_seeds``): ``final_sink_metric``,
    ``final_loss``, ``bos_mass``, ``sink_metric_without_knob``, ``bos_mass_without_knob``.
    """
    c = experiment_setting("interventions", quick=quick, setting=setting)
    out = _over_seeds(_interventions_one, c, seed, progress, c["steps"] * len(_variants(0.0)),
                      averaged=SEED_AVERAGED["interventions"])
    out["quick"] = quick
    return out


# entries every experiment's setting has: the arithmetic of training ("float32": native
# float32; the full context sweep ran 1.35x faster than in float64 on the 2-core machine,
# the benchmark model's step 1.8x)
COMMON_SETTING = {"compute_dtype": "float64"}

_TABLES = {"sinks": SINKS, "context": CONTEXT, "depth_heads": DEPTH_HEADS, "bos": BOS,
           "interventions": INTERVENTIONS}

# summary quantities that are averaged over seeds (each also kept per seed as <key>_seeds)
SEED_AVERAGED = {
    "sinks": ("bayes_loss", *(f"{who}/{q}" for who in ("active", "others") for q in _HEAD_MASSES),
              "active/value_ratio", "residual_ratio"),
    "context": ("final_sink_metric", "bos_mass", "final_loss", "bayes_loss"),
    "depth_heads": ("sink_grid", "loss_grid", "bos_grid", "bayes_loss"),
    "bos": ("sink_table", "bos_mass_table", "loss_table", "bayes_loss_bb"),
    "interventions": ("final_sink_metric", "final_loss", "bos_mass", "sink_metric_without_knob",
                      "bos_mass_without_knob", "bayes_loss"),
}
# per-model quantities stacked over seeds but not averaged (head identities differ by seed)
SEED_STACKED = {"sinks": ("sink_scores", "active_head")}

EXPERIMENTS = {
    "sinks": sink_emergence,
    "context": context_sweep,
    "depth_heads": depth_heads_sweep,
    "bos": bos_experiment,
    "interventions": interventions,
}


# ------------------------------------------------------------------------------------------
# output
# ------------------------------------------------------------------------------------------
def _jsonable(v):
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return f if math.isfinite(f) else None  # JSON has no NaN: null
    return v


def _git_revision() -> str | None:
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                           cwd=os.path.dirname(os.path.abspath(__file__)))
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() or None


def save_experiment(name: str, data: dict, out_dir, *, runtime_s: float | None = None) -> tuple[str, str]:
    """Write ``out_dir/name.json`` (every non-array entry, plus run metadata) and
    ``out_dir/name.npz`` (every array entry, keys as in ``data``), each atomically
    (temporary file in the same folder, then ``os.replace``). Returns the two paths."""
    if not isinstance(data, dict):
        raise TypeError(f"data must be a dict; got {type(data).__name__}")
    for key in ("steps", "loss", "sink_metric", "config", "seed"):
        if key not in data:
            raise ValueError(f"data must hold {key!r} (the output contract); it has {sorted(data)}")
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    arrays = {k: v for k, v in data.items() if isinstance(v, np.ndarray)}
    meta = {k: _jsonable(v) for k, v in data.items() if not isinstance(v, np.ndarray)}
    meta["sink_eps"], meta["sink_T"] = SINK_EPS, SINK_T
    meta["arrays"] = sorted(arrays)
    meta["git_revision"] = _git_revision()
    if runtime_s is not None:
        meta["runtime_s"] = float(runtime_s)
    jpath = os.path.join(out_dir, f"{name}.json")
    npath = os.path.join(out_dir, f"{name}.npz")
    atomic_savez(npath, **arrays)
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(meta, f, indent=1, sort_keys=True)
        os.replace(tmp, jpath)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return jpath, npath


def run_experiment(name: str, *, quick: bool = False, seed: int = 0, seeds: int | None = None,
                   setting: dict | None = None, out_dir=None,
                   progress: Callable[[int, int], None] | None = None) -> dict:
    """Run ``EXPERIMENTS[name]`` and, with ``out_dir``, save it (:func:`save_experiment`).

    ``seeds`` (an int >= 1) replaces the setting's number of seeds (quick: 1, full: 3 or 5);
    ``setting`` overrides other entries of the setting (:func:`experiment_setting`).
    """
    if name not in EXPERIMENTS:
        raise ValueError(f"name must be one of {sorted(EXPERIMENTS)}; got {name!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int; got {seed!r}")
    if setting is not None and not isinstance(setting, dict):
        raise TypeError(f"setting must be a dict of overrides or None; got {type(setting).__name__}")
    setting = dict(setting or {})
    if seeds is not None:
        setting["seeds"] = _check_seeds(seeds)
    t0 = time.perf_counter()
    data = EXPERIMENTS[name](quick=quick, seed=int(seed), setting=setting, progress=progress)
    data["runtime_s"] = time.perf_counter() - t0
    if out_dir is not None:
        save_experiment(name, data, out_dir, runtime_s=data["runtime_s"])
    return data
