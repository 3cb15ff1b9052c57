"""Many independent runs in one call: seeds or parameter sets, in parallel (kernel threads).

Each run fills its own output slot, so results do not depend on the thread count and are
bit-identical to the one-run functions (tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _kernels
from ._threads import run_split
from ._validate import checked_cfg, real_array
from .params import PARAM_NAMES, Params, init_params
from .params import compute_dtype as _compute_dtype
from .positions import alibi_slopes, rope_tables
from .stack import _checked_params, _prescribed_or_dummy, saved_shapes, stack_input


@dataclass(frozen=True, eq=False)
class BatchTrace:
    """Results of :func:`batch_forward`: ``hidden`` (S, L+1, n, d), ``attn`` (S, L, H, n, n),
    ``output`` (S, n, d)."""

    hidden: np.ndarray
    attn: np.ndarray
    output: np.ndarray


def params_for_seeds(cfg, seeds) -> list[Params]:
    """``[init_params(cfg, s) for s in seeds]``, validated."""
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds must be a non-empty sequence of non-negative ints; got []")
    return [init_params(cfg, s) for s in seeds]


def _stack(cfg, params, X, attn):
    cfg = checked_cfg(cfg)
    if isinstance(params, Params):
        params = [params]
    params = list(params)
    if not params or not all(isinstance(p, Params) for p in params):
        raise TypeError("params must be a non-empty sequence of overmix.sims.Params "
                        "(use params_for_seeds(cfg, seeds))")
    checked = [_checked_params(cfg, p) for p in params]
    S = len(checked)
    X = real_array(X, "X")
    if X.ndim == 2:
        X = np.broadcast_to(X, (S,) + X.shape)
    if X.ndim != 3 or X.shape[0] != S or X.shape[2] != cfg.d_model or X.shape[1] < 1:
        raise ValueError(f"X must have shape (n, d_model) or (S, n, d_model) with S = {S}, "
                         f"d_model = {cfg.d_model}; got {X.shape}")
    n = X.shape[1]
    if cfg.attention == "prescribed":
        A_in = np.stack([_prescribed_or_dummy(cfg, attn, n)] * S)
    else:
        _prescribed_or_dummy(cfg, attn, n)
        A_in = np.zeros((S, 1, 1, 1, 1))
    arrays = [np.ascontiguousarray(np.stack([getattr(p, k) for p in checked])) for k in PARAM_NAMES]
    V0 = np.ascontiguousarray(np.stack([stack_input(cfg, x) for x in X]))
    cos_t, sin_t = rope_tables(cfg, n)
    iflags, fvals = cfg.kernel_flags()
    return cfg, arrays, V0, A_in, cos_t, sin_t, alibi_slopes(cfg.n_heads), iflags, fvals


def _check_status(status, cfg):
    bad = np.flatnonzero(status)
    if bad.size:
        raise FloatingPointError(f"runs {bad.tolist()} overflowed to inf/NaN in dtype={cfg.dtype!r}")


def batch_forward(cfg, params, X, attn=None) -> BatchTrace:
    """:func:`overmix.sims.forward` for S parameter sets at once (parallel over runs).

    Parameters
    ----------
    params : sequence of Params (length S)
    X : (n, d) (shared by all runs) or (S, n, d)
    attn : (L, H, n, n), shared, with attention="prescribed".
    """
    cfg, arrays, V0, A_in, cos_t, sin_t, slopes, iflags, fvals = _stack(cfg, params, X, attn)
    S, n, d = V0.shape
    L, H = cfg.n_layers, cfg.n_heads
    hidden = np.empty((S, L + 1, n, d))
    A = np.empty((S, L, H, n, n))
    out = np.empty((S, n, d))
    status = np.zeros(S, dtype=np.int64)
    run_split(_kernels.forward_many, S, *arrays, V0, A_in, cos_t, sin_t, slopes, iflags, fvals,
              hidden, A, out, status)
    _check_status(status, cfg)
    return BatchTrace(hidden=hidden, attn=A, output=out)


def batch_last_token_jacobian(cfg, params, X, *, frozen=False, attn=None) -> np.ndarray:
    """:func:`overmix.sims.last_token_jacobian` for S runs at once: (S, n, d, d)."""
    cfg, arrays, V0, A_in, cos_t, sin_t, slopes, iflags, fvals = _stack(cfg, params, X, attn)
    if cfg.dtype != "float64":
        raise ValueError(f"batch_last_token_jacobian needs cfg.dtype='float64'; got {cfg.dtype!r}")
    S, n, d = V0.shape
    J = np.zeros((S, n, d, d))
    status = np.zeros(S, dtype=np.int64)
    run_split(_kernels.jacobian_many, S, *arrays, V0, A_in, cos_t, sin_t, slopes, iflags, fvals,
              bool(frozen), J, status)
    _check_status(status, cfg)
    return J


def batch_sensitivity(cfg, params, X, *, frozen=False, attn=None, ord=2) -> np.ndarray:
    """:func:`overmix.sims.sensitivity` for S runs at once: (S, n)."""
    J = batch_last_token_jacobian(cfg, params, X, frozen=frozen, attn=attn)
    return np.linalg.norm(J, ord=ord, axis=(2, 3))


class Workspace:
    """Memory that :func:`batch_forward_saved` and :func:`batch_backward` keep between calls.

    A training loop runs the same shapes every step. Fresh arrays of that size (about 100 MB
    a step for the (2, 64, 4, 128, 32) benchmark model) are paid for in page faults (on the
    2-core machine a step took 201 ms without a Workspace and 178 ms with one, when it was
    introduced). With one Workspace passed to every call, the arrays are made once and
    reused.

    The results of a call (the :class:`SavedBatch` arrays, ``dX``) live in the workspace and
    are overwritten by the next call that uses it; a :class:`SavedBatch` whose memory was
    reused by a later forward pass is refused by :func:`batch_backward`. Copy what you keep.
    """

    def __init__(self):
        self._arrays: dict[str, tuple[object, np.ndarray]] = {}
        self._generation = 0

    def _array(self, name: str, shape: tuple, key, dtype=np.float64) -> np.ndarray:
        """The array ``name`` of this shape and dtype, made (zeroed) when missing or when the
        shape, the dtype or ``key`` (the config: arrays a config never writes must read as
        zero) changed."""
        held = self._arrays.get(name)
        if (held is None or held[0] != key or held[1].shape != shape
                or held[1].dtype != dtype):
            held = (key, np.zeros(shape, dtype))
            self._arrays[name] = held
        return held[1]


def _workspace(workspace) -> Workspace:
    if workspace is None:
        return Workspace()  # a fresh one: results own their memory
    if not isinstance(workspace, Workspace):
        raise TypeError(f"workspace must be an overmix.sims.Workspace or None; got "
                        f"{type(workspace).__name__}")
    return workspace


@dataclass(frozen=True, eq=False)
class SavedBatch:
    """Forward passes of S input sequences through one parameter set, with every
    intermediate kept for :func:`batch_backward` (made by :func:`batch_forward_saved`).

    ``output`` (S, n, d) and ``attn`` (S, L, H, n, n) are the public results (in the
    compute dtype of the call).
    """

    cfg: object
    params: Params  # in the compute dtype
    arrays: tuple
    output: np.ndarray
    workspace: Workspace
    generation: int

    @property
    def attn(self) -> np.ndarray:
        return self.arrays[7]


def batch_forward_saved(cfg, params, X, *, workspace=None,
                        compute_dtype="float64") -> SavedBatch:
    """Forward S sequences X (S, n, d) through one Params (the training use: a minibatch).

    Runs in parallel over sequences. Pair with :func:`batch_backward` for gradients. With a
    :class:`Workspace`, the results live in (and are overwritten with) its memory.

    ``compute_dtype="float32"`` runs the same kernels natively in float32 (weights, inputs,
    every intermediate and, in :func:`batch_backward`, every cotangent; BLAS in single
    precision), as frameworks train by default. It needs ``cfg.dtype == "float64"`` (the
    emulated formats of ``cfg.dtype`` round float64 arithmetic instead). Unit roundoff
    2^-24 = 6e-8 instead of 1.1e-16: over 300 random small language models, losses agreed
    with float64 to 1.6e-7 relative and gradients to 3.1e-5 (normwise) at the worst; badly
    conditioned models lose more (no norms, attention logits ~4e4: gradients 3.5e-3 off;
    tests/sims/test_train_float32.py).
    """
    cfg = checked_cfg(cfg)
    ft = _compute_dtype(compute_dtype)
    if ft != np.float64 and cfg.dtype != "float64":
        raise ValueError(f"compute_dtype={ft.name!r} needs cfg.dtype='float64' (no emulated "
                         f"rounding on top of native float32); got cfg.dtype={cfg.dtype!r}")
    if not isinstance(params, Params):
        raise TypeError(f"params must be an overmix.sims.Params; got {type(params).__name__}")
    if cfg.attention == "prescribed":
        raise ValueError("batch_forward_saved supports attention='softmax' only; got 'prescribed'")
    ws = _workspace(workspace)
    p = _checked_params(cfg, params, ft)
    X = real_array(X, "X")
    if X.ndim != 3 or X.shape[2] != cfg.d_model or X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X must have shape (S, n, d_model) = (S >= 1, n >= 1, {cfg.d_model}); got {X.shape}")
    S, n, d = X.shape
    with np.errstate(over="ignore"):  # checked next
        V0 = np.ascontiguousarray(np.stack([stack_input(cfg, x) for x in X]), dtype=ft)
    if not np.isfinite(V0).all():
        raise ValueError(f"X must be finite in compute_dtype={ft.name!r}; got entries beyond its range")
    ws._generation += 1
    arrays = tuple(ws._array(k, (S,) + sh, cfg, ft) for k, sh in saved_shapes(cfg, n).items())
    out = ws._array("out", (S, n, d), cfg, ft)
    status = np.zeros(S, dtype=np.int64)
    cos_t, sin_t, slopes, iflags, fvals = _kernel_tables(cfg, n, ft)
    run_split(_kernels.forward_saved_many, S, *p.arrays(), V0, np.zeros((1, 1, 1, 1), ft), cos_t,
              sin_t, slopes, iflags, fvals, *arrays, out, status)
    _check_status(status, cfg)
    return SavedBatch(cfg=cfg, params=p, arrays=arrays, output=out, workspace=ws,
                      generation=ws._generation)


def _kernel_tables(cfg, n, ft):
    """(cos_t, sin_t, slopes, iflags, fvals) for the kernels, the float tables (RoPE, ALiBi,
    fvals) in the compute dtype: the scalars in fvals (scale, eps, ...) then keep the
    arithmetic in that dtype."""
    cos_t, sin_t = rope_tables(cfg, n)
    iflags, fvals = cfg.kernel_flags()
    cos_t, sin_t, slopes, fvals = (np.ascontiguousarray(a, dtype=ft)
                                   for a in (cos_t, sin_t, alibi_slopes(cfg.n_heads), fvals))
    return cos_t, sin_t, slopes, iflags, fvals


# Sequences whose parameter cotangents share one accumulation slot: ceil(S / GROUPS) each, a
# function of S alone (so the bits do not depend on the thread count); at most GROUPS slots
# of memory and GROUPS units of parallel work.
GROUPS = 16


def batch_backward(saved: SavedBatch, cotangent, *, frozen=False) -> tuple[np.ndarray, Params]:
    """Reverse mode for a :class:`SavedBatch`: cotangent (S, n, d) on the outputs.

    Returns (dX (S, n, d), parameter cotangents summed over the S sequences). This is the
    gradient of sum_s <cotangent[s], Y[s]>, i.e. of a loss summed over a minibatch. dX lives
    in the workspace of ``saved`` (see :class:`Workspace`).
    """
    if not isinstance(saved, SavedBatch):
        raise TypeError(f"saved must come from batch_forward_saved; got {type(saved).__name__}")
    cfg = saved.cfg
    if cfg.dtype != "float64":
        raise ValueError(f"batch_backward needs cfg.dtype='float64'; got {cfg.dtype!r}")
    ws = saved.workspace
    if saved.generation != ws._generation:
        raise ValueError("saved was made with a Workspace that a later batch_forward_saved call "
                         "has reused; run batch_backward before the next forward pass")
    C = real_array(cotangent, "cotangent")
    if C.shape != saved.output.shape:
        raise ValueError(f"cotangent must have shape {saved.output.shape}; got {C.shape}")
    ft = saved.output.dtype
    with np.errstate(over="ignore"):  # checked next
        C = C.astype(ft, copy=False)
    if not np.isfinite(C).all():
        raise ValueError(f"cotangent must be finite in {ft}; got entries beyond its range")
    S, n, d = C.shape
    group = -(-S // GROUPS)
    n_groups = -(-S // group)
    cos_t, sin_t, _, iflags, fvals = _kernel_tables(cfg, n, ft)
    slots = [ws._array("grad_" + k, (n_groups,) + a.shape, cfg, ft)
             for k, a in zip(PARAM_NAMES, saved.params.arrays())]
    dX = ws._array("dX", (S, n, 1, d), cfg, ft)
    dX[...] = 0.0
    run_split(_kernels.backward_many, n_groups, *saved.params.arrays(), cos_t, sin_t, iflags,
              fvals, *saved.arrays, np.ascontiguousarray(C[:, :, None, :]), bool(frozen), group,
              dX, *slots)
    grads = Params(**{k: g.sum(axis=0) for k, g in zip(PARAM_NAMES, slots)})
    return dX[:, :, 0, :], grads
