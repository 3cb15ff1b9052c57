"""Small language models around the stack of MODEL.md, trained on CPU (MODEL.md, "A small
language model").

Token ids t (length n) are embedded as X = E[t] (+ P[:n], an optional learned absolute
position table), the stack runs as in MODEL.md, and the next-token logits are Y W_U with
W_U a (d, V) matrix or E^T when tied. The loss is the mean cross-entropy of token i+1 given
tokens 0..i over the trained positions.

Gradients are exact reverse mode: the cotangent on Y from the loss in NumPy, then
:func:`overmix.sims.batch_backward` through the same Numba kernels as the forward pass
(parallel over the sequences of a minibatch), then the embedding gradient from dX. The
optimisers (SGD with momentum, Adam/AdamW) and global-norm clipping are written out here.
A run is deterministic for a seed: data batches are a pure function of (seed, step), and
every reduction has a fixed order, so a resumed run repeats the uninterrupted one bit for
bit.

Only ``dtype="float64"`` stacks can be trained: the reverse pass of the emulated
low-precision forward is not defined (its derivative is zero almost everywhere), and
:func:`overmix.sims.batch_backward` refuses it. Training itself runs in float64 or, with
``TrainConfig(compute_dtype="float32")``, natively in float32 (weights, activations,
gradients and optimiser state in float32, single-precision BLAS), as frameworks train.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import _kernels
from ._threads import serial_blas
from .batch import Workspace, batch_backward, batch_forward_saved
from .config import StackConfig
from .params import PARAM_NAMES, Params, checked_array, compute_dtype as _compute_dtype, init_params

OPTIMIZERS = ("adam", "sgd")
EXTRA_NAMES = ("E", "P", "W_U")


# ------------------------------------------------------------------------------------------
# configuration
# ------------------------------------------------------------------------------------------
def _int(name, value, lo):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int >= {lo}; got {value!r} ({type(value).__name__})")
    if value < lo:
        raise ValueError(f"{name} must be an int >= {lo}; got {value!r}")
    return int(value)


def _real(name, value, *, lo=-math.inf, hi=math.inf, lo_open=False, hi_open=False, allowed=""):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number; got {value!r} ({type(value).__name__})")
    v = float(value)
    bad = (not math.isfinite(v) or v < lo or v > hi or (lo_open and v == lo)
           or (hi_open and v == hi))
    if bad:
        raise ValueError(f"{name} must be {allowed or 'finite'}; got {value!r}")
    return v


@dataclass(frozen=True)
class LMConfig:
    """A small language model: the stack of MODEL.md plus embedding and unembedding.

    Parameters
    ----------
    stack : StackConfig
        The stack (``dtype`` must be "float64" for training).
    vocab_size : int >= 2
        V: token ids are 0..V-1.
    tied : bool
        Logits Y E^T (tied) instead of Y W_U with its own (d, V) matrix.
    max_len : int >= 0
        Rows of the learned absolute position table P (max_len, d); 0 means no table.
        Contexts longer than max_len are then refused.

    Examples
    --------
    >>> from overmix.sims import StackConfig
    >>> cfg = LMConfig(StackConfig(n_layers=1, d_model=8, n_heads=2), vocab_size=5)
    >>> LMConfig.from_json(cfg.to_json()) == cfg
    True
    """

    stack: StackConfig
    vocab_size: int
    tied: bool = False
    max_len: int = 0

    def __post_init__(self):
        if not isinstance(self.stack, StackConfig):
            raise TypeError(f"stack must be an overmix.sims.StackConfig; got {type(self.stack).__name__}")
        if self.stack.attention != "softmax":
            raise ValueError(f"stack.attention must be 'softmax' for a language model; got {self.stack.attention!r}")
        object.__setattr__(self, "vocab_size", _int("vocab_size", self.vocab_size, 2))
        if not isinstance(self.tied, (bool, np.bool_)):
            raise TypeError(f"tied must be a bool; got {self.tied!r}")
        object.__setattr__(self, "tied", bool(self.tied))
        object.__setattr__(self, "max_len", _int("max_len", self.max_len, 0))

    def to_dict(self) -> dict:
        return {"stack": self.stack.to_dict(), "vocab_size": self.vocab_size,
                "tied": self.tied, "max_len": self.max_len}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> "LMConfig":
        if not isinstance(data, dict):
            raise TypeError(f"data must be a dict; got {type(data).__name__}")
        unknown = sorted(set(data) - {"stack", "vocab_size", "tied", "max_len"})
        if unknown:
            raise ValueError(f"unknown LMConfig field(s) {unknown}")
        d = dict(data)
        d["stack"] = StackConfig.from_dict(d["stack"])
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> "LMConfig":
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True)
class TrainConfig:
    """How to train: optimiser, batch, schedule, what to record.

    Parameters
    ----------
    steps : int >= 1
    batch_size : int >= 1
        Sequences per step (each of the data's context length).
    optimizer : {"adam", "sgd"}
    lr : float > 0
        Peak learning rate (reached after ``warmup`` steps of linear ramp).
    betas : (float, float) in [0, 1)
        Adam's moment decays; ``betas[0]`` is also SGD's momentum (0 = plain SGD).
    adam_eps : float > 0
    weight_decay : float >= 0
        Decoupled (AdamW-style): w <- w - lr * weight_decay * w, on every parameter.
    clip : float >= 0
        Global-norm gradient clipping threshold; 0 turns clipping off.
    warmup : int >= 0
    record_every : int >= 1
        Evaluate the history (loss, sink scores) every this many steps (and at the last).
    attn_steps : tuple of int
        Steps at which the mean attention maps over the evaluation batch are kept.
    sink_eps : float in (0, 1)
        Threshold of the sink metric (THEORY.md A8; GSM's default 0.3).
    sink_T : int >= 1
        Queries averaged by the sink score; min(sink_T, n) is used (GSM: 64).
    compute_dtype : {"float64", "float32"}
        Arithmetic and storage dtype of the training step: float32 keeps the weights, every
        activation and gradient, and the optimiser state in float32 (the metrics are
        computed in float64 from the float32 attention maps).
    """

    steps: int = 200
    batch_size: int = 16
    optimizer: str = "adam"
    lr: float = 3e-3
    betas: tuple = (0.9, 0.99)
    adam_eps: float = 1e-8
    weight_decay: float = 0.0
    clip: float = 1.0
    warmup: int = 0
    record_every: int = 10
    attn_steps: tuple = ()
    sink_eps: float = 0.3
    sink_T: int = 64
    compute_dtype: str = "float64"

    def __post_init__(self):
        put = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  (frozen dataclass)
        put("steps", _int("steps", self.steps, 1))
        put("batch_size", _int("batch_size", self.batch_size, 1))
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}; got {self.optimizer!r}")
        put("lr", _real("lr", self.lr, lo=0.0, lo_open=True, allowed="a finite number > 0 (the learning rate)"))
        b = tuple(self.betas) if isinstance(self.betas, (list, tuple)) else None
        if b is None or len(b) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2); got {self.betas!r}")
        put("betas", tuple(_real(f"betas[{i}]", v, lo=0.0, hi=1.0, hi_open=True, allowed="in [0, 1)")
                           for i, v in enumerate(b)))
        put("adam_eps", _real("adam_eps", self.adam_eps, lo=0.0, lo_open=True, allowed="finite and > 0"))
        put("weight_decay", _real("weight_decay", self.weight_decay, lo=0.0, allowed="finite and >= 0"))
        put("clip", _real("clip", self.clip, lo=0.0, allowed="finite and >= 0 (0 = no clipping)"))
        put("warmup", _int("warmup", self.warmup, 0))
        put("record_every", _int("record_every", self.record_every, 1))
        steps = tuple(_int("attn_steps[]", s, 0) for s in self.attn_steps)
        bad = [s for s in steps if s > self.steps]
        if bad:
            raise ValueError(f"attn_steps must be in [0, steps] = [0, {self.steps}]; got {bad}")
        put("attn_steps", tuple(sorted(set(steps))))
        put("sink_eps", _real("sink_eps", self.sink_eps, lo=0.0, hi=1.0, lo_open=True, hi_open=True,
                              allowed="in (0, 1)"))
        put("sink_T", _int("sink_T", self.sink_T, 1))
        put("compute_dtype", _compute_dtype(self.compute_dtype).name)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        d["attn_steps"] = list(self.attn_steps)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        d = dict(data)
        d["betas"] = tuple(d.get("betas", (0.9, 0.99)))
        d["attn_steps"] = tuple(d.get("attn_steps", ()))
        return cls(**d)

    def record_steps(self) -> list[int]:
        """Steps at which the history is evaluated: 0, record_every, ..., and ``steps``."""
        return sorted(set(range(0, self.steps, self.record_every)) | {self.steps})


# ------------------------------------------------------------------------------------------
# parameters
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class LMParams:
    """Weights of a small language model.

    Attributes
    ----------
    stack : Params
    E : (V, d)
        Token embedding (also the unembedding, transposed, when tied).
    P : (max_len, d) or None
        Learned absolute position table (added to E[t]).
    W_U : (d, V) or None
        Unembedding (None when tied).
    """

    stack: Params
    E: np.ndarray
    P: np.ndarray | None = None
    W_U: np.ndarray | None = None

    def as_dict(self) -> dict[str, np.ndarray]:
        """Every array by name (stack names, then E, P, W_U when present)."""
        out = self.stack.as_dict()
        for k in EXTRA_NAMES:
            v = getattr(self, k)
            if v is not None:
                out[k] = v
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "LMParams":
        stack = Params(**{k: d[k] for k in PARAM_NAMES})
        return cls(stack=stack, E=d["E"], P=d.get("P"), W_U=d.get("W_U"))

    def checked(self, cfg: LMConfig, dtype="float64") -> "LMParams":
        """Validated copy: shapes for ``cfg``, finite, in ``dtype`` ("float64"/"float32")."""
        if not isinstance(self.stack, Params):
            raise TypeError(f"params.stack must be an overmix.sims.Params; got {type(self.stack).__name__}")
        dtype = _compute_dtype(dtype)
        stack = self.stack.checked(cfg.stack, dtype)
        V, d = cfg.vocab_size, cfg.stack.d_model
        want = {"E": (V, d), "P": (cfg.max_len, d) if cfg.max_len else None,
                "W_U": None if cfg.tied else (d, V)}
        out = {}
        for k, shape in want.items():
            a = getattr(self, k)
            if shape is None:
                if a is not None:
                    raise ValueError(f"params.{k} must be None for this config "
                                     f"(tied={cfg.tied}, max_len={cfg.max_len})")
                out[k] = None
                continue
            if a is None:
                raise ValueError(f"params.{k} must be an array of shape {shape}; got None")
            out[k] = checked_array(a, f"params.{k}", shape, dtype)
        return LMParams(stack=stack, **out)


def init_lm(cfg: LMConfig, seed: int = 0) -> LMParams:
    """Draw LM weights: the stack by :func:`overmix.sims.init_params`, then E, P and W_U
    i.i.d. N(0, 1/d), all from ``numpy.random.default_rng(seed)`` (same seed, same bits).

    Examples
    --------
    >>> from overmix.sims import StackConfig
    >>> cfg = LMConfig(StackConfig(n_layers=1, d_model=8, n_heads=2), vocab_size=5, max_len=4)
    >>> p = init_lm(cfg, 0)
    >>> p.E.shape, p.P.shape, p.W_U.shape
    ((5, 8), (4, 8), (8, 5))
    """
    if not isinstance(cfg, LMConfig):
        raise TypeError(f"cfg must be an LMConfig; got {type(cfg).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int; got {seed!r}")
    rng = np.random.default_rng(int(seed))
    stack = init_params(cfg.stack, rng)
    d, V = cfg.stack.d_model, cfg.vocab_size
    s = 1.0 / math.sqrt(d)
    E = rng.standard_normal((V, d)) * s
    P = rng.standard_normal((cfg.max_len, d)) * s if cfg.max_len else None
    W_U = None if cfg.tied else rng.standard_normal((d, V)) * s
    return LMParams(stack=stack, E=E, P=P, W_U=W_U)


# ------------------------------------------------------------------------------------------
# loss and gradients
# ------------------------------------------------------------------------------------------
def _checked_tokens(cfg, inputs, targets, weights):
    x = np.asarray(inputs)
    if x.dtype.kind not in "iu":
        raise TypeError(f"inputs must be an integer array of token ids; got dtype {x.dtype}")
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"inputs must have shape (S, n) with S >= 1; got {x.shape}")
    S, n = x.shape
    if n < 1:
        raise ValueError(f"inputs must have n >= 1 tokens per sequence; got shape {x.shape}")
    if x.min() < 0 or x.max() >= cfg.vocab_size:
        raise ValueError(f"inputs must be token ids in [0, vocab_size) = [0, {cfg.vocab_size}); "
                         f"got range [{x.min()}, {x.max()}]")
    if cfg.max_len and n > cfg.max_len:
        raise ValueError(f"inputs have n = {n} tokens, more than the position table's "
                         f"max_len = {cfg.max_len}")
    y = np.asarray(targets)
    if y.dtype.kind not in "iu":
        raise TypeError(f"targets must be an integer array of token ids; got dtype {y.dtype}")
    if y.shape != x.shape:
        raise ValueError(f"targets must have the shape of inputs {x.shape}; got {y.shape}")
    if y.min() < 0 or y.max() >= cfg.vocab_size:
        raise ValueError(f"targets must be token ids in [0, {cfg.vocab_size}); got range "
                         f"[{y.min()}, {y.max()}]")
    if weights is None:
        w = np.ones((S, n))
    else:
        w = np.asarray(weights)
        if np.iscomplexobj(w) or w.dtype.kind not in "biuf":
            raise TypeError(f"weights must be real; got dtype {w.dtype}")
        w = w.astype(np.float64)
        if w.shape != x.shape:
            raise ValueError(f"weights must have the shape of inputs {x.shape}; got {w.shape}")
        if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ValueError("weights must be finite, >= 0 and not all 0 (they select the trained positions)")
    return x.astype(np.int64), y.astype(np.int64), w


def _embed(cfg, p, x):
    X = p.E[x]
    if p.P is not None:
        X = X + p.P[: x.shape[1]]
    return X


def _unembedding(p):
    return p.E.T if p.W_U is None else p.W_U


@dataclass(frozen=True, eq=False)
class LossGrad:
    """Result of :func:`loss_and_grad`: ``loss`` (float), ``grads`` (LMParams of gradients),
    ``attn`` (S, L, H, n, n) attention maps of the forward pass."""

    loss: float
    grads: LMParams
    attn: np.ndarray


def loss(cfg: LMConfig, params: LMParams, inputs, targets, weights=None, *,
         compute_dtype="float64") -> float:
    r"""Mean next-token cross-entropy (nats) of ``targets`` given ``inputs``.

    .. math:: \mathcal L = \frac{\sum_{s,i} w_{si}\,(\log\sum_v e^{z_{siv}} - z_{s,i,y_{si}})}{\sum_{s,i} w_{si}},
       \quad z_{si} = Y_{si} W_U

    Parameters
    ----------
    cfg : LMConfig
    params : LMParams
    inputs, targets : (S, n) int
        Usually ``tokens[:, :-1]`` and ``tokens[:, 1:]``.
    weights : (S, n), optional
        Non-negative weights of the positions (default all 1).
    compute_dtype : {"float64", "float32"}
        Arithmetic of the forward pass (see :class:`TrainConfig`); params are cast to it.
    """
    with serial_blas():
        return _forward_loss(cfg, params, inputs, targets, weights, None, compute_dtype)[0]


def _forward_loss(cfg, params, inputs, targets, weights, workspace=None, compute_dtype="float64"):
    # Callers hold serial_blas(): NumPy's own products here (logits, dW_U) must not wake
    # its BLAS threads, which keep spinning after each call and take the cores from the
    # kernel threads (measured: 123-133 ms a benchmark step with them, 74-91 ms without).
    if not isinstance(cfg, LMConfig):
        raise TypeError(f"cfg must be an LMConfig; got {type(cfg).__name__}")
    if not isinstance(params, LMParams):
        raise TypeError(f"params must be an LMParams; got {type(params).__name__}")
    ft = _compute_dtype(compute_dtype)
    p = params.checked(cfg, ft)
    x, y, w = _checked_tokens(cfg, inputs, targets, weights)
    saved = batch_forward_saved(cfg.stack, p.stack, _embed(cfg, p, x), workspace=workspace,
                                compute_dtype=ft)
    z = (saved.output @ _unembedding(p)).reshape(-1, cfg.vocab_size)
    wn = (w / w.sum()).reshape(-1).astype(ft)
    dz = np.empty_like(z)  # the cotangent on the logits, for loss_and_grad
    value = _kernels.lm_head(z, y.reshape(-1), wn, dz, np.empty((2, cfg.vocab_size), ft))
    return float(value), (p, x, saved, dz)


def loss_and_grad(cfg: LMConfig, params: LMParams, inputs, targets, weights=None, *,
                  workspace: Workspace | None = None, compute_dtype="float64") -> LossGrad:
    """The loss of :func:`loss` and its exact gradient with respect to every weight.

    The cotangent on the logits is w (softmax(z) - onehot(y)) / sum(w); it flows back to Y
    (times W_U^T), through the stack by :func:`overmix.sims.batch_backward` (exact reverse
    mode through the forward kernels, summed over sequences), and into E by scattering dX
    over the token ids (plus the unembedding's share when tied) and into P by summing dX
    over sequences.

    A training loop passes one :class:`overmix.sims.Workspace` to every call, so the
    forward pass's saved arrays are made once (``attn`` of the result then lives in the
    workspace and is overwritten by the next call with it).

    With ``compute_dtype="float32"`` the whole step runs in float32 (params are cast to it)
    and the gradients are float32 arrays.

    Returns
    -------
    LossGrad

    Examples
    --------
    >>> from overmix.sims import StackConfig
    >>> cfg = LMConfig(StackConfig(n_layers=1, d_model=8, n_heads=2), vocab_size=5)
    >>> p = init_lm(cfg, 0)
    >>> x = np.array([[0, 1, 2, 3]])
    >>> r = loss_and_grad(cfg, p, x[:, :-1], x[:, 1:])
    >>> bool(abs(r.loss - loss(cfg, p, x[:, :-1], x[:, 1:])) == 0), r.grads.E.shape
    (True, (5, 8))
    """
    with serial_blas():  # see _forward_loss
        return _loss_and_grad(cfg, params, inputs, targets, weights, workspace, compute_dtype)


def _loss_and_grad(cfg, params, inputs, targets, weights, workspace, compute_dtype):
    value, (p, x, saved, dz) = _forward_loss(cfg, params, inputs, targets, weights, workspace,
                                             compute_dtype)
    S, n = x.shape
    V, d = cfg.vocab_size, cfg.stack.d_model
    Wu = _unembedding(p)
    dY = (dz @ Wu.T).reshape(S, n, d)
    dWu = saved.output.reshape(-1, d).T @ dz  # (d, V); one BLAS product (einsum: 4 ms of a ~100 ms benchmark step)
    dX, gstack = batch_backward(saved, dY)
    dE = np.zeros((V, d), dz.dtype)
    _kernels.scatter_rows(x.reshape(-1), np.ascontiguousarray(dX.reshape(-1, d)), dE)  # fixed order
    if p.W_U is None:
        dE += dWu.T
        gWu = None
    else:
        gWu = dWu
    gP = None
    if p.P is not None:
        gP = np.zeros_like(p.P)
        gP[:n] = dX.sum(axis=0)
    grads = LMParams(stack=gstack, E=dE, P=gP, W_U=gWu)
    return LossGrad(loss=value, grads=grads, attn=saved.attn)


# ------------------------------------------------------------------------------------------
# optimisers
# ------------------------------------------------------------------------------------------
def global_norm(arrays: dict) -> float:
    """sqrt of the sum of squares of every entry of every array (fixed key order)."""
    return float(math.sqrt(sum(float(np.vdot(a, a)) for _, a in sorted(arrays.items()))))


def clip_by_global_norm(grads: dict, max_norm: float) -> tuple[dict, float]:
    """Scale every gradient by min(1, max_norm / ||g||) (||g|| the global norm); max_norm = 0
    turns clipping off. Returns (clipped grads, the norm before clipping)."""
    max_norm = _real("max_norm", max_norm, lo=0.0, allowed="finite and >= 0 (0 = no clipping)")
    g = global_norm(grads)
    if max_norm > 0 and g > max_norm:
        s = max_norm / g
        return {k: v * s for k, v in grads.items()}, g
    return dict(grads), g


def init_opt_state(params: dict, tc: TrainConfig) -> dict:
    """Zero optimiser state: Adam's moments m, v (or SGD's momentum buffer m) and t = 0."""
    state = {"t": 0, "m": {k: np.zeros_like(v) for k, v in params.items()}}
    if tc.optimizer == "adam":
        state["v"] = {k: np.zeros_like(v) for k, v in params.items()}
    return state


def lr_at(tc: TrainConfig, step: int) -> float:
    """Learning rate at (0-based) ``step``: linear warmup to ``lr`` over ``warmup`` steps."""
    if tc.warmup and step < tc.warmup:
        return tc.lr * (step + 1) / tc.warmup
    return tc.lr


def opt_step(params: dict, grads: dict, state: dict, tc: TrainConfig, lr: float) -> tuple[dict, dict]:
    """One optimiser update (new dicts; inputs untouched).

    Adam (Kingma & Ba 2015, with bias correction): m = b1 m + (1-b1) g, v = b2 v + (1-b2) g^2,
    w -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps).
    SGD with momentum b1: m = b1 m + g, w -= lr * m (b1 = 0: plain SGD).
    Weight decay (decoupled): w -= lr * weight_decay * w before the update.
    """
    if set(params) != set(grads) or set(params) != set(state["m"]):
        raise ValueError(f"params, grads and state['m'] must have the same keys; got "
                         f"{sorted(params)}, {sorted(grads)}, {sorted(state['m'])}")
    lr = _real("lr", lr, lo=0.0, lo_open=True, allowed="a finite number > 0 (the learning rate)")
    b1, b2 = tc.betas
    t = state["t"] + 1
    new_p, m_new = {}, {}
    v_new = {} if tc.optimizer == "adam" else None
    for k in params:
        w, g = params[k], grads[k]
        if tc.weight_decay:
            w = w - lr * tc.weight_decay * w
        if tc.optimizer == "adam":
            m = b1 * state["m"][k] + (1.0 - b1) * g
            v = b2 * state["v"][k] + (1.0 - b2) * (g * g)
            mhat = m / (1.0 - b1 ** t)
            vhat = v / (1.0 - b2 ** t)
            new_p[k] = w - lr * mhat / (np.sqrt(vhat) + tc.adam_eps)
            m_new[k], v_new[k] = m, v
        else:
            m = b1 * state["m"][k] + g
            new_p[k] = w - lr * m
            m_new[k] = m
    out = {"t": t, "m": m_new}
    if v_new is not None:
        out["v"] = v_new
    return new_p, out


# ------------------------------------------------------------------------------------------
# history, checkpoints
# ------------------------------------------------------------------------------------------
@dataclass
class History:
    """What a run records.

    Attributes
    ----------
    steps : list of int
        Recorded steps (0 = before any update).
    loss : list of float
        Training-batch loss at each recorded step (the batch of that step, before its update;
        at the last step, the evaluation loss).
    eval_loss : list of float
        Loss on the fixed evaluation batch.
    sink_metric : list of float
        GSM's Sink_eps (THEORY.md A8) on the evaluation batch: fraction of (prompt, head)
        pairs whose sink score exceeds eps, T = min(sink_T, n).
    sink_scores : list of (L, H) arrays
        Sink score alpha^(l,h) per head, averaged over the evaluation prompts.
    grad_norm : list of float
        Global gradient norm (before clipping) at each recorded step (nan at the last).
    step_loss : list of float
        Training loss at every step.
    attn_steps : list of int, attn : list of (L, H, n, n)
        Mean attention maps over the evaluation batch at ``TrainConfig.attn_steps``.
    """

    steps: list = field(default_factory=list)
    loss: list = field(default_factory=list)
    eval_loss: list = field(default_factory=list)
    sink_metric: list = field(default_factory=list)
    sink_scores: list = field(default_factory=list)
    grad_norm: list = field(default_factory=list)
    step_loss: list = field(default_factory=list)
    attn_steps: list = field(default_factory=list)
    attn: list = field(default_factory=list)

    def arrays(self) -> dict[str, np.ndarray]:
        """Every field as an array (attn: (A, L, H, n, n), empty if none kept)."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name in ("steps", "attn_steps"):
                out[f.name] = np.asarray(v, dtype=np.int64)
            elif f.name in ("sink_scores", "attn"):
                out[f.name] = np.asarray(v, dtype=np.float64) if v else np.zeros((0,))
            else:
                out[f.name] = np.asarray(v, dtype=np.float64)
        return out

    @classmethod
    def from_arrays(cls, d: dict) -> "History":
        h = cls()
        for f in dataclasses.fields(cls):
            a = np.asarray(d[f.name])
            if f.name in ("sink_scores", "attn"):
                setattr(h, f.name, [np.array(x) for x in a] if a.ndim > 1 else [])
            elif f.name in ("steps", "attn_steps"):
                setattr(h, f.name, [int(x) for x in a])
            else:
                setattr(h, f.name, [float(x) for x in a])
        return h


class TrainingDiverged(FloatingPointError):
    """Raised when the loss or a gradient is not finite. ``.history`` holds the record up to
    the last good step; the checkpoint file (if any) still holds the last good checkpoint."""

    def __init__(self, message, history):
        super().__init__(message)
        self.history = history


def atomic_savez(path, **arrays) -> None:
    """``numpy.savez`` to a temporary file in the same folder, then ``os.replace``: readers
    see the old file or the new one, never half of one."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _save_checkpoint(path, cfg, tc, seed, step, params, state, history):
    arrays = {f"param/{k}": v for k, v in params.items()}
    arrays.update({f"opt_m/{k}": v for k, v in state["m"].items()})
    if "v" in state:
        arrays.update({f"opt_v/{k}": v for k, v in state["v"].items()})
    arrays.update({f"history/{k}": v for k, v in history.arrays().items()})
    arrays["opt_t"] = np.int64(state["t"])
    arrays["step"] = np.int64(step)
    arrays["seed"] = np.int64(seed)
    arrays["lm_config"] = np.array(cfg.to_json())
    arrays["train_config"] = np.array(tc.to_json())
    atomic_savez(path, **arrays)


def load_checkpoint(path) -> dict:
    """Read a checkpoint written by :func:`train`: dict with ``cfg`` (LMConfig), ``train``
    (TrainConfig), ``seed``, ``step``, ``params`` (LMParams), ``opt_state``, ``history``."""
    with np.load(os.fspath(path), allow_pickle=False) as z:
        keys = list(z.keys())
        get = lambda prefix: {k[len(prefix):]: z[k] for k in keys if k.startswith(prefix)}  # noqa: E731
        params = get("param/")
        state = {"t": int(z["opt_t"]), "m": get("opt_m/")}
        v = get("opt_v/")
        if v:
            state["v"] = v
        return {
            "cfg": LMConfig.from_json(str(z["lm_config"])),
            "train": TrainConfig.from_dict(json.loads(str(z["train_config"]))),
            "seed": int(z["seed"]),
            "step": int(z["step"]),
            "params": LMParams.from_dict(params),
            "opt_state": state,
            "history": History.from_arrays(get("history/")),
        }


# ------------------------------------------------------------------------------------------
# the training loop
# ------------------------------------------------------------------------------------------
def _sink_stats(attn, tc):
    # imported here: theory is a sibling package; sims -> theory is the allowed direction
    from overmix.theory import sink_metric, sink_scores

    n = attn.shape[-1]
    T = min(tc.sink_T, n)
    return (sink_metric(attn, eps=tc.sink_eps, T=T),
            sink_scores(attn, T=T).mean(axis=0))


def _split(tokens, name):
    """(S, n+1) tokens -> inputs, targets (or a (tokens, weights) pair)."""
    weights = None
    if isinstance(tokens, tuple):
        tokens, weights = tokens
        weights = np.asarray(weights)[:, 1:]
    t = np.asarray(tokens)
    if t.ndim != 2 or t.shape[1] < 2:
        raise ValueError(f"{name} must give tokens of shape (S, n+1) with n >= 1 (n >= 2 tokens "
                         f"per sequence); got shape {t.shape}")
    return t[:, :-1], t[:, 1:], weights


def train(cfg: LMConfig, tc: TrainConfig, data: Callable[[int], np.ndarray], eval_tokens, *,
          seed: int = 0, params: LMParams | None = None, checkpoint=None,
          checkpoint_every: int = 0, resume: bool = False,
          progress: Callable[[int, int], None] | None = None) -> tuple[LMParams, History]:
    """Train a small language model and record the emergence of attention sinks.

    Parameters
    ----------
    cfg : LMConfig
    tc : TrainConfig
    data : callable step -> tokens (batch_size, n+1) int, or (tokens, weights)
        Must be a pure function of ``step`` (e.g. a generator seeded by (seed, step)), so
        that a resumed run sees the same batches. Inputs are ``tokens[:, :-1]``, targets
        ``tokens[:, 1:]``; weights (same shape as tokens) select trained targets.
    eval_tokens : (E, n+1) int, or (tokens, weights)
        Fixed evaluation batch: eval loss, sink metric and attention maps are measured on it.
    seed : int
        Seed of the initial weights (ignored with ``params`` or on resume).
    params : LMParams, optional
        Start from these weights instead of :func:`init_lm`.
    checkpoint : path, optional
        Where to write checkpoints (.npz, atomically) every ``checkpoint_every`` steps and at
        the end.
    resume : bool
        Continue from ``checkpoint`` if it exists; its configs must equal ``cfg`` and ``tc``.
    progress : callable (done, total), optional
        Called after every step.

    Returns
    -------
    (LMParams, History)
        The weights are in ``tc.compute_dtype``.

    Raises
    ------
    TrainingDiverged
        If the loss or a gradient becomes NaN or inf (message names the step and the
        learning rate); the checkpoint file keeps the last good checkpoint.
    """
    if not isinstance(cfg, LMConfig):
        raise TypeError(f"cfg must be an LMConfig; got {type(cfg).__name__}")
    if not isinstance(tc, TrainConfig):
        raise TypeError(f"tc must be a TrainConfig; got {type(tc).__name__}")
    if cfg.stack.dtype != "float64":
        raise ValueError(f"cfg.stack.dtype must be 'float64' to train (the reverse pass of the "
                         f"emulated low-precision forward is not defined); got {cfg.stack.dtype!r}")
    if not callable(data):
        raise TypeError(f"data must be a callable step -> tokens; got {type(data).__name__}")
    checkpoint_every = _int("checkpoint_every", checkpoint_every, 0)
    ex, ey, ew = _split(eval_tokens, "eval_tokens")
    ex, ey, ew = _checked_tokens(cfg, ex, ey, ew)

    start = 0
    if resume and checkpoint is not None and os.path.exists(checkpoint):
        ck = load_checkpoint(checkpoint)
        if ck["cfg"] != cfg or ck["train"] != tc:
            raise ValueError(f"checkpoint {os.fspath(checkpoint)!r} was written for another config; "
                             "pass the same LMConfig and TrainConfig, or resume=False")
        p = ck["params"].checked(cfg, tc.compute_dtype)
        state, history, start, seed = ck["opt_state"], ck["history"], ck["step"], ck["seed"]
    else:
        p = (init_lm(cfg, seed) if params is None else params).checked(cfg, tc.compute_dtype)
        history = History()
        state = init_opt_state(p.as_dict(), tc)
    pd = p.as_dict()
    record = set(tc.record_steps())
    attn_keep = set(tc.attn_steps)
    train_ws, eval_ws = Workspace(), Workspace()  # memory reused by every step

    def evaluate(step, batch_loss, gnorm, params_dict):
        lp = LMParams.from_dict(params_dict)
        with serial_blas():
            ev_loss, (_, _, saved, _) = _forward_loss(cfg, lp, ex, ey, ew, eval_ws,
                                                      tc.compute_dtype)
        metric, scores = _sink_stats(saved.attn, tc)
        history.steps.append(step)
        history.loss.append(ev_loss if batch_loss is None else batch_loss)
        history.eval_loss.append(ev_loss)
        history.sink_metric.append(metric)
        history.sink_scores.append(scores)
        history.grad_norm.append(gnorm)
        if step in attn_keep:
            history.attn_steps.append(step)
            history.attn.append(saved.attn.mean(axis=0))

    def diverged(step, what):
        return TrainingDiverged(
            f"training diverged at step {step}: {what} (optimizer={tc.optimizer!r}, "
            f"lr={tc.lr:g}); lower the learning rate or clip gradients. History kept up to "
            f"step {history.steps[-1] if history.steps else 0}"
            + (f"; last good checkpoint: {os.fspath(checkpoint)!r}" if checkpoint else ""),
            history)

    # one BLAS thread for NumPy's products too (see _forward_loss; the clipping's vdot and
    # the optimiser run here)
    with serial_blas():
        for step in range(start, tc.steps):
            x, y, w = _split(data(step), "data(step)")
            x, y, w = _checked_tokens(cfg, x, y, w)
            if x.shape[0] != tc.batch_size:
                raise ValueError(f"data(step) must give batch_size = {tc.batch_size} sequences; "
                                 f"got {x.shape[0]}")
            try:
                r = loss_and_grad(cfg, LMParams.from_dict(pd), x, y, w, workspace=train_ws,
                                  compute_dtype=tc.compute_dtype)
            except FloatingPointError as err:
                raise diverged(step, f"the forward pass overflowed ({err})") from err
            g = r.grads.as_dict()
            if not math.isfinite(r.loss):
                raise diverged(step, f"loss = {r.loss}")
            g, gnorm = clip_by_global_norm(g, tc.clip)
            if not math.isfinite(gnorm):
                raise diverged(step, f"gradient norm = {gnorm}")
            history.step_loss.append(r.loss)
            if step in record:
                evaluate(step, r.loss, gnorm, pd)
            new_pd, state = opt_step(pd, g, state, tc, lr_at(tc, step))
            if not all(np.isfinite(v).all() for v in new_pd.values()):
                raise diverged(step, "the update made a weight NaN or inf")
            pd = new_pd
            done = step + 1
            if checkpoint is not None and checkpoint_every and done % checkpoint_every == 0 and done < tc.steps:
                _save_checkpoint(checkpoint, cfg, tc, seed, done, pd, state, history)
            if progress is not None:
                progress(done, tc.steps)
    if tc.steps in record and (not history.steps or history.steps[-1] != tc.steps):
        evaluate(tc.steps, None, float("nan"), pd)
    if checkpoint is not None:
        _save_checkpoint(checkpoint, cfg, tc, seed, tc.steps, pd, state, history)
    return LMParams.from_dict(pd), history
