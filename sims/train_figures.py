"""The training experiments in the figures registry's format (compute side only).

:data:`FIGURES` maps a figure name to a :class:`TrainFigure` with the figures registry's
attributes ``CONFIG`` (full), ``QUICK`` (CI-sized), ``SEED`` and ``compute(cfg, seed,
runner=None)``: it runs the experiment of :mod:`overmix.sims.experiments` named in
``cfg["experiment"]`` with the setting in ``cfg["setting"]`` and returns a flat dict of
arrays (:func:`flatten`). The drawing lives in ``overmix.figures._train`` (figures import
sims, never the other way round); :func:`load_experiment` reads ``overmix train`` output
back for it.

Figures (``overmix figures`` names in brackets):

- ``train_sinks`` [fig15_train_sinks]: sink emergence on Bigram-Backcopy.
- ``train_context`` [fig16_train_context]: context-length sweep at equal tokens per step.
- ``train_depth_heads`` [fig17_train_depth_heads]: layers x heads sweep.
- ``train_bos`` [fig18_train_bos]: BOS at position 0 or not, in training and evaluation.
- ``train_interventions`` [fig19_train_interventions]: Adam vs SGD and built-in sinks.
"""

from __future__ import annotations

import json
import os

import numpy as np

from .experiments import EXPERIMENTS, _jsonable_setting, experiment_setting

def flatten(data: dict) -> dict[str, np.ndarray]:
    """An experiment dict as a flat dict of identifier-named arrays (the figures cache's
    format): arrays and lists as arrays ("/" in names becomes "__"), scalars as 0-d arrays,
    strings as unicode arrays, ``config`` as its JSON text, and ``runs`` as ``run_<key>``
    arrays over runs (numbers missing from a run are NaN; nested dicts and per-run arrays of
    different shapes are left out: the experiment's tables hold them). Arrays of a flat dict
    pass through unchanged."""
    if not isinstance(data, dict):
        raise TypeError(f"data must be a dict; got {type(data).__name__}")
    out = {}
    for k, v in data.items():
        key = k.replace("/", "__").replace(" ", "_")
        if isinstance(v, np.ndarray) and v.dtype.kind in "biufU":
            out[key] = v
        elif k == "runs":
            keys = []
            for r in v:
                keys += [q for q in r if q not in keys]
            for q in keys:
                vals = [r.get(q) for r in v]
                if any(isinstance(x, dict) for x in vals):
                    continue
                if all(isinstance(x, str) for x in vals):
                    out[f"run_{q}"] = np.array(vals)
                elif all(isinstance(x, (list, tuple, np.ndarray)) for x in vals):
                    arrs = [np.asarray(x, dtype=np.float64) for x in vals]
                    if all(a.shape == arrs[0].shape for a in arrs):  # ragged ones are left out
                        out[f"run_{q}"] = np.array(arrs)
                else:
                    out[f"run_{q}"] = np.array([np.nan if x is None else float(x) for x in vals])
        elif k == "config" or isinstance(v, dict):
            out[key] = np.array(json.dumps(v, sort_keys=True, default=str))
        elif isinstance(v, str):
            out[key] = np.array(v)
        elif v is None:
            out[key] = np.array(np.nan)
        else:
            out[key] = np.asarray(v)
    return out


class TrainFigure:
    """One training figure in the figures registry's format: ``CONFIG``, ``QUICK``, ``SEED``,
    ``compute(cfg, seed, runner=None) -> dict of arrays``.

    ``CONFIG`` is ``{"experiment": name, "quick": False, "setting": <full setting>}``;
    ``QUICK`` is the quick setting with ``quick_overrides`` applied (CI-sized: a few seconds
    of training; always one seed). ``runner`` is accepted for the registry's signature;
    the training runs are sequential (the kernels use both cores).
    """

    def __init__(self, experiment: str, quick_overrides: dict | None = None):
        if experiment not in EXPERIMENTS:
            raise ValueError(f"experiment must be one of {sorted(EXPERIMENTS)}; got {experiment!r}")
        self.experiment = experiment
        full = experiment_setting(experiment, quick=False)
        quick = experiment_setting(experiment, quick=True, setting=quick_overrides)
        if quick["seeds"] != 1:
            raise ValueError(f"quick_overrides must keep one seed (CI time); got seeds={quick['seeds']}")
        self.CONFIG = {"experiment": experiment, "quick": False, "setting": _jsonable_setting(full)}
        self.QUICK = {"experiment": experiment, "quick": True, "setting": _jsonable_setting(quick)}
        self.SEED = 0

    def compute(self, cfg: dict, seed: int, runner=None) -> dict[str, np.ndarray]:
        """Run the experiment named in ``cfg`` with ``cfg["setting"]`` and return the
        :func:`flatten` of its dict. Arrays with non-finite entries (the gradient norm,
        which is NaN at the last recorded step) are left out; ``left_out`` names them."""
        if not isinstance(cfg, dict) or cfg.get("experiment") not in EXPERIMENTS:
            raise ValueError(f"cfg must be a dict with 'experiment' in {sorted(EXPERIMENTS)}; got {cfg!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative int; got {seed!r}")
        data = EXPERIMENTS[cfg["experiment"]](quick=bool(cfg.get("quick", False)), seed=int(seed),
                                              setting=cfg.get("setting"))
        flat = flatten(data)
        bad = sorted(k for k, v in flat.items() if v.dtype.kind == "f" and not np.isfinite(v).all())
        out = {k: v for k, v in flat.items() if k not in bad}
        out["left_out"] = np.array(bad, dtype=str) if bad else np.zeros(0, dtype="<U1")
        return out


def load_experiment(out_dir, name: str) -> dict:
    """Read ``out_dir/name.json`` and ``out_dir/name.npz`` (as written by
    :func:`overmix.sims.experiments.save_experiment`) back into one dict."""
    if name not in EXPERIMENTS:
        raise ValueError(f"name must be one of {sorted(EXPERIMENTS)}; got {name!r}")
    with open(os.path.join(out_dir, f"{name}.json")) as f:
        data = json.load(f)
    with np.load(os.path.join(out_dir, f"{name}.npz"), allow_pickle=False) as z:
        data.update({k: z[k] for k in z.files})
    return data


# CI-sized settings of the figures (QUICK): one seed, a few seconds of training each
_QUICK = {
    "sinks": {"steps": 300},
    "context": {"ns": [16, 32, 64], "tokens": 256, "steps": 150},
    "depth_heads": {"Ls": [1, 2], "Hs": [1, 4], "steps": 120},
    "bos": {"rows": [["bb", "first"], ["bb", "none"], ["docs", "first"], ["docs", "none"],
                     ["docs", "every"]], "steps": 100},
    "interventions": {"steps": 100},
}

FIGURES = {f"train_{name}": TrainFigure(name, _QUICK[name]) for name in EXPERIMENTS}
