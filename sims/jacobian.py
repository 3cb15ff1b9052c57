"""Exact reverse mode through the stack: VJPs, the last-token Jacobian, sensitivities.

One reverse pass (``_kernels.backward``) serves everything: a batch of output cotangents
flows down together so that each step is matrix-matrix work, and only the rows that can
carry a non-zero cotangent are touched (the causal past of the active rows; the top layer
of a last-token Jacobian needs one row).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _kernels
from ._threads import run_split, serial_blas
from ._validate import checked_cfg, checked_tokens, real_array
from .params import Params, zeros_like_params
from .positions import rope_tables
from .stack import forward, run_forward


@dataclass(frozen=True, eq=False)
class VJP:
    """Cotangents returned by :func:`vjp`.

    Attributes
    ----------
    X : (n, d) or (B, n, d)
        Cotangent on the input X (one per output cotangent).
    params : Params, or list of Params, or None
        Cotangents on every parameter (a list with one Params per cotangent for a batch);
        None when ``params_grad=False``.
    """

    X: np.ndarray
    params: Params | list | None


def _require_float64(cfg, what):
    if cfg.dtype != "float64":
        raise ValueError(
            f"{what} needs cfg.dtype='float64'; got dtype={cfg.dtype!r} (derivatives of the "
            "rounded forward pass are zero almost everywhere; differentiate the float64 model)")


def _m_tables(s, cot3, frozen, iflags, fvals):
    """The M tables (``_kernels.m_tables``) that every chunk of cotangents reads for dQ,
    computed once, heads in parallel; a placeholder when the reverse pass goes without."""
    L, H, _, dk = s.Qr.shape
    T, spans = _kernels.m_table_buffer(cot3, L, H, dk, iflags, bool(frozen))
    run_split(_kernels.m_tables, L * H, s.Kr, s.Val, s.A, iflags, fvals, spans, T)
    return T


def _backward(cfg, p, s, cot3, frozen, want_params):
    """Run the kernel for cotangents (n, B, d); returns dX (n, B, d) and Params or None."""
    n = cot3.shape[0]
    cos_t, sin_t = rope_tables(cfg, n)
    iflags, fvals = cfg.kernel_flags()
    dX = np.zeros_like(cot3)
    if not want_params:  # chunks of cotangents in parallel (bits independent of the threads)
        T = _m_tables(s, cot3, frozen, iflags, fvals)
        run_split(_kernels.backward_chunks, int(_kernels.n_chunks(cot3.shape[1])), *p.arrays(),
                  cos_t, sin_t, iflags, fvals, *s.arrays(), cot3, bool(frozen), T, dX)
        return dX, None
    g = zeros_like_params(cfg)
    with serial_blas():
        _kernels.backward(*p.arrays(), cos_t, sin_t, iflags, fvals, *s.arrays(), cot3,
                          bool(frozen), True, np.zeros((1, 1, 1, 1)), dX, *g.arrays())
    return dX, g


def vjp(cfg, params, X, cotangent, *, frozen=False, attn=None, params_grad=True) -> VJP:
    """Vector-Jacobian product of the whole stack, Y = stack(X): cotangents on X and parameters.

    For an output cotangent C (same shape as Y), returns dX = (dY/dX)^T C and, for every
    parameter P, dP = (dY/dP)^T C, by exact reverse mode (no finite differences).

    Parameters
    ----------
    cfg, params, X, attn :
        As in :func:`overmix.sims.forward`. ``cfg.dtype`` must be "float64".
    cotangent : (n, d) or (B, n, d) array_like
        One output cotangent, or a batch of B of them (they flow down together).
    frozen : bool
        If True, the attention maps are held at their forward values and treated as
        constants (MODEL.md "Derivatives"); with attention="prescribed" both agree.
    params_grad : bool
        Also return parameter cotangents (for a batch: one Params per cotangent).

    Returns
    -------
    VJP
        ``.X`` with the shape of ``cotangent``, ``.params`` (Params, list, or None).

    Examples
    --------
    >>> import numpy as np
    >>> from overmix.sims import StackConfig, init_params
    >>> cfg = StackConfig(n_layers=1, d_model=4, n_heads=2, d_ff=8)
    >>> p, X = init_params(cfg, 0), np.random.default_rng(0).standard_normal((3, 4))
    >>> C = np.random.default_rng(1).standard_normal((3, 4))
    >>> g = vjp(cfg, p, X, C)
    >>> h = 1e-6; E = np.zeros((3, 4)); E[1, 2] = h
    >>> fd = ((forward(cfg, p, X + E).output - forward(cfg, p, X - E).output) * C).sum() / (2 * h)
    >>> bool(abs(fd - g.X[1, 2]) < 1e-7)
    True
    """
    _require_float64(cfg, "vjp")
    p, s = run_forward(cfg, params, X, attn)
    n, d = s.out.shape
    C = real_array(cotangent, "cotangent")
    single = C.ndim == 2
    if C.shape[-2:] != (n, d) or C.ndim not in (2, 3):
        raise ValueError(f"cotangent must have shape (n, d) = {(n, d)} or (B, n, d); got {C.shape}")
    C3 = np.ascontiguousarray((C[None] if single else C).transpose(1, 0, 2))  # (n, B, d)
    if not params_grad:
        dX, _ = _backward(cfg, p, s, C3, frozen, False)
        out = dX.transpose(1, 0, 2)
        return VJP(X=np.ascontiguousarray(out[0] if single else out), params=None)
    dXs, grads = [], []
    for b in range(C3.shape[1]):  # parameter cotangents are per output cotangent: one pass each
        dX, g = _backward(cfg, p, s, np.ascontiguousarray(C3[:, b:b + 1]), frozen, True)
        dXs.append(dX[:, 0])
        grads.append(g)
    dX = np.stack(dXs)
    return VJP(X=dX[0] if single else dX, params=grads[0] if single else grads)


def last_token_jacobian(cfg, params, X, *, frozen=False, attn=None) -> np.ndarray:
    """J[i] = d Y[n-1] / d X[i], shape (n, d, d) (rows: output coords, columns: input coords).

    Exact reverse mode: the d unit cotangents on Y[n-1] flow down as one batch through the
    causal past of token n-1 (MODEL.md "Derivatives"). J[i] is exactly 0 for tokens outside
    that past (e.g. beyond L windows). ``frozen=True`` holds the attention maps constant.

    Examples
    --------
    >>> import numpy as np
    >>> from overmix.sims import StackConfig, init_params
    >>> cfg = StackConfig(n_layers=2, d_model=4, n_heads=1, mask=("window", 1), mlp=False)
    >>> J = last_token_jacobian(cfg, init_params(cfg, 0), np.eye(5, 4))
    >>> bool((J[:4] == 0).all()), J.shape
    (True, (5, 4, 4))
    """
    _require_float64(cfg, "last_token_jacobian")
    p, s = run_forward(cfg, params, X, attn)
    n, d = s.out.shape
    C3 = np.zeros((n, d, d))
    C3[n - 1] = np.eye(d)  # cotangent b is e_b on row n-1
    dX, _ = _backward(cfg, p, s, C3, frozen, False)
    return dX  # (n, B=d, d): dX[i, b, :] = d Y[n-1, b] / d X[i] = J[i][b, :]


def sensitivity(cfg, params, X, *, frozen=False, attn=None, ord=2) -> np.ndarray:
    """s_i = ||J[i]||, the sensitivity of the last token to token i, shape (n,).

    ``ord`` is passed to ``numpy.linalg.norm`` for matrices: 2 (spectral, default), "fro",
    1, inf, ... See :func:`last_token_jacobian`.
    """
    allowed = (2, -2, 1, -1, np.inf, -np.inf, "fro", "nuc")
    if ord not in allowed:
        raise ValueError(f"ord must be one of {allowed}; got {ord!r}")
    J = last_token_jacobian(cfg, params, X, frozen=frozen, attn=attn)
    return np.linalg.norm(J, ord=ord, axis=(1, 2))


def perturbation_spread(cfg, params, X, X2, *, attn=None) -> np.ndarray:
    """||hidden_l[i](X2) - hidden_l[i](X)||_2 for every layer l = 0..L and token i: (L+1, n).

    The analogue of the perturbation heatmaps of BFT (Fig. 2): perturb one token of X to get
    X2 and watch the difference spread through the layers (causal: only to later tokens).
    """
    cfg = checked_cfg(cfg)
    X = checked_tokens(X, "X", d_model=cfg.d_model)
    X2 = checked_tokens(X2, "X2", d_model=cfg.d_model)
    if X.shape != X2.shape:
        raise ValueError(f"X2 must have the shape of X {X.shape}; got {X2.shape}")
    A = forward(cfg, params, X, attn).hidden
    B = forward(cfg, params, X2, attn).hidden
    return np.linalg.norm(B - A, axis=-1)
