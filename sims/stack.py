"""The forward pass of the idealised stack (MODEL.md "One layer"), and its trace."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _kernels
from ._threads import n_threads, run_split, serial_blas
from ._validate import checked_attn, checked_cfg, checked_tokens
from .config import DTYPES, StackConfig
from .params import Params
from .positions import alibi_slopes, rope_tables, sinusoidal_table


@dataclass(frozen=True, eq=False)
class Trace:
    """Result of :func:`forward`.

    Attributes
    ----------
    hidden : (L+1, n, d)
        hidden[0] is the stack input V^0 (X, plus the sinusoidal table if pos="sinusoidal");
        hidden[l+1] is the output of layer l, before the final norm.
    attn : (L, H, n, n)
        Attention maps A^(l,h) (row-stochastic, zero where masked).
    output : (n, d)
        Y = N3(V^L).
    """

    hidden: np.ndarray
    attn: np.ndarray
    output: np.ndarray


def saved_shapes(cfg: StackConfig, n: int) -> dict[str, tuple[int, ...]]:
    """Shapes of the saved forward trace of one sequence of n tokens, in the kernels'
    argument order (what :class:`_Saved` holds, without ``out``). sims/_kernels.py's
    ``_trace_buffers`` spells the same shapes inside Numba, which cannot call this."""
    L, H, d, dk, f = cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.d_head, cfg.d_ff
    return {"hidden": (L + 1, n, d), "xh1": (L, n, d), "r1": (L, n), "U1": (L, n, d),
            "Qr": (L, H, n, dk), "Kr": (L, H, n, dk), "Val": (L, H, n, dk), "A": (L, H, n, n),
            "Oh": (L, H, n, dk), "Z": (L, n, d), "xh2": (L, n, d), "r2": (L, n),
            "U2": (L, n, d), "Hpre": (L, n, f), "Hact": (L, n, f), "xh3": (n, d), "r3": (n,)}


# written only by the MLP block: a stack without one reads them, so they start at zero
_MLP_SAVED = ("xh2", "r2", "U2", "Hpre", "Hact")


@dataclass(frozen=True, eq=False)
class _Saved:
    """Everything the reverse pass reads (kernel argument order after the parameters)."""

    hidden: np.ndarray
    xh1: np.ndarray
    r1: np.ndarray
    U1: np.ndarray
    Qr: np.ndarray
    Kr: np.ndarray
    Val: np.ndarray
    A: np.ndarray
    Oh: np.ndarray
    Z: np.ndarray
    xh2: np.ndarray
    r2: np.ndarray
    U2: np.ndarray
    Hpre: np.ndarray
    Hact: np.ndarray
    xh3: np.ndarray
    r3: np.ndarray
    out: np.ndarray

    def arrays(self):
        return (self.hidden, self.xh1, self.r1, self.U1, self.Qr, self.Kr, self.Val, self.A,
                self.Oh, self.Z, self.xh2, self.r2, self.U2, self.Hpre, self.Hact, self.xh3,
                self.r3)


def _checked_params(cfg: StackConfig, params, compute_dtype="float64") -> Params:
    """Validated params (copies) in ``compute_dtype``, stored in cfg.dtype: below float64
    each weight, gain and bias is rounded once to the format, as a model held in that format
    would be."""
    if not isinstance(params, Params):
        raise TypeError(f"params must be an overmix.sims.Params; got {type(params).__name__}")
    p = params.checked(cfg, compute_dtype)
    code = DTYPES.index(cfg.dtype)
    if code:
        for a in p.arrays():  # checked() returns copies: rounding in place is safe
            _kernels.round_array(a, code)
    return p


def stack_input(cfg: StackConfig, X: np.ndarray) -> np.ndarray:
    """V^0: X plus the sinusoidal table when pos="sinusoidal", rounded to cfg.dtype."""
    V0 = X + sinusoidal_table(*X.shape) if cfg.pos == "sinusoidal" else X.copy()
    _kernels.round_array(V0, DTYPES.index(cfg.dtype))
    return V0


def _prescribed_or_dummy(cfg: StackConfig, attn, n: int) -> np.ndarray:
    if cfg.attention == "prescribed":
        if attn is None:
            raise ValueError("attn is required with attention='prescribed': pass (L, H, n, n) row-stochastic maps")
        A = checked_attn(cfg, attn, n).copy()
        _kernels.round_array(A, DTYPES.index(cfg.dtype))  # maps stored in the format too
        return A
    if attn is not None:
        raise ValueError("attn must be None unless cfg.attention='prescribed' (softmax attention is computed)")
    return np.zeros((1, 1, 1, 1))


# From this many tokens on, one forward pass runs the heads of each layer on threads (a
# layer's heads are independent). Measured, (L, d, H) = (4, 64, 4), two threads: n = 64
# 1.41 ms threaded vs 1.02 ms serial (three kernel calls and a thread hand-off per layer),
# n = 128 1.92 vs 2.00 ms, n = 256 3.94 vs 4.68 ms; the large benchmark 0.14 vs 0.23 s.
THREADED_FORWARD_MIN_N = 128


def _forward_heads_threaded(p, s, X, A_in, cos_t, sin_t, slopes, iflags, fvals) -> int:
    """``_kernels.forward`` layer by layer, heads on threads (the same kernels: same bits)."""
    WQ, WK, WV, WO, g1, g2, W1, b1, W2, b2, g3 = p.arrays()
    L, H, _, dk = WQ.shape
    s.hidden[0] = X
    qkv = np.empty((X.shape[0], 3 * H * dk))
    with serial_blas():
        for l in range(L):
            _kernels.attn_in(WQ, WK, WV, g1, l, iflags, fvals, s.hidden, s.xh1, s.r1, s.U1, qkv)
            run_split(_kernels.heads_forward, H, l, qkv, A_in, cos_t, sin_t, slopes, iflags,
                      fvals, s.Qr, s.Kr, s.Val, s.A, s.Oh)
            _kernels.layer_out(WO, g2, W1, b1, W2, b2, l, iflags, fvals, s.hidden, s.Oh, s.Z,
                               s.xh2, s.r2, s.U2, s.Hpre, s.Hact)
        return int(_kernels.forward_end(g3, iflags, fvals, s.hidden, s.xh3, s.r3, s.out))


def run_forward(cfg: StackConfig, params, X, attn=None) -> tuple[Params, _Saved]:
    """Validated forward pass that keeps every intermediate (used by forward and vjp)."""
    cfg = checked_cfg(cfg)
    p = _checked_params(cfg, params)
    X = checked_tokens(X, "X", d_model=cfg.d_model)
    n, d = X.shape
    A_in = _prescribed_or_dummy(cfg, attn, n)
    cos_t, sin_t = rope_tables(cfg, n)
    iflags, fvals = cfg.kernel_flags()
    s = _Saved(**{k: (np.zeros if k in _MLP_SAVED else np.empty)(sh)
                  for k, sh in saved_shapes(cfg, n).items()}, out=np.empty((n, d)))
    args = (stack_input(cfg, X), A_in, cos_t, sin_t, alibi_slopes(cfg.n_heads), iflags, fvals)
    if cfg.n_heads > 1 and n >= THREADED_FORWARD_MIN_N and n_threads() > 1:
        status = _forward_heads_threaded(p, s, *args)
    else:
        with serial_blas():
            status = _kernels.forward(*p.arrays(), *args, *s.arrays(), s.out)
    if status != 0:
        raise FloatingPointError(
            f"forward: the output overflowed to inf/NaN in dtype={cfg.dtype!r} "
            "(values beyond the format's range); scale the inputs or weights down")
    return p, s


def forward(cfg: StackConfig, params: Params, X, attn=None) -> Trace:
    """Run the stack of MODEL.md on tokens X.

    Parameters
    ----------
    cfg : StackConfig
    params : Params
        From :func:`init_params` (shapes of MODEL.md).
    X : (n, d_model) array_like
        Input rows (token 0 is the first token); any real dtype/order, finite.
    attn : (L, H, n, n) array_like, optional
        Required with ``cfg.attention == "prescribed"``: row-stochastic (within 1e-10), exactly
        zero where the mask hides a key. Must be None otherwise.

    Returns
    -------
    Trace
        ``hidden`` (L+1, n, d), ``attn`` (L, H, n, n), ``output`` (n, d).

    Notes
    -----
    Softmax is computed stably (row max subtracted). Below float64 (``cfg.dtype``), results are
    rounded to the format (round to nearest even) at these op boundaries: the stack input;
    in each norm the mean, the centred entries, the mean square, the reciprocal root, x-hat and
    the gained output; Q, K, V (each matmul output), each RoPE-rotated entry; each logit after
    scaling, after the ALiBi bias and after the sink logit; the max-subtracted logit, its
    exponential, the row sum, each attention weight; the sink-scaled value row; each head's
    A Vc; the attention output (sum over heads of the head outputs times W_O, one matmul);
    the branch-scaled output and the residual sum; the MLP pre-activation (matmul plus bias),
    the activation, the MLP output (matmul plus bias), its branch scaling and the residual
    sum. Matmuls and row sums accumulate in float64 and are rounded once, like wide
    accumulators. The parameters and prescribed maps are stored in the format (rounded
    once on entry); the RoPE cos/sin tables stay float64. An overflow of the output raises
    FloatingPointError.

    Examples
    --------
    >>> import numpy as np
    >>> from overmix.sims import StackConfig, init_params
    >>> cfg = StackConfig(n_layers=2, d_model=8, n_heads=2)
    >>> tr = forward(cfg, init_params(cfg, 0), np.ones((5, 8)))
    >>> tr.hidden.shape, tr.attn.shape, bool(np.allclose(tr.attn.sum(-1), 1))
    ((3, 5, 8), (2, 2, 5, 5), True)
    """
    _, s = run_forward(cfg, params, X, attn)
    return Trace(hidden=s.hidden, attn=s.A, output=s.out)
