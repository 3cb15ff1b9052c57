"""Slow, plain-NumPy references (oracles) for the tests, written from MODEL.md only.

Nothing here imports overmix: each function restates the math of ../shared/MODEL.md so that
the package is checked against an independent implementation, never against itself.

Contents
--------
ref_forward          the whole stack of MODEL.md (every knob) in float64; complex inputs give
                     complex-step derivatives, long double inputs an extended-precision pass;
                     ``frozen_attn=A`` holds attention fixed (the frozen Jacobian's map).
ref_forward_lowp     the same with round-to-nearest-even to cfg.dtype at the op boundaries
                     sims.forward documents (see its docstring).
ref_attention_weights, ref_logits, rope_thetas, rope_rotate, alibi_slopes,
sinusoidal_table, mask_matrix
                     the pieces of MODEL.md steps 3-5.
ref_round            RNE to float32 / float16 / bfloat16 by exact bit arithmetic (ldexp + rint).
mld_round            the same through ml_dtypes / NumPy casts (double-rounds float64 -> bf16).
fd_jacobian_last(_est), fd_derivative_est
                     central differences (4th-order stencil), with a step-agreement estimate.
cs_jacobian_last, cs_grad_X, cs_param_grad
                     complex-step derivatives (no cancellation; ``extended=True`` in long double).
reference_noise, NOISE_MAX, GRAD_FLOOR
                     float64-vs-long-double disagreement of a reference derivative; the
                     size below which a gradient is "vanishing" (below any float64 floor).
conditioning, well_conditioned
                     layer-norm cancellation, logit size, ReLU kink margin of one pass: the
                     domain where two correct float64 implementations agree to 1e-12.
rel_err              max |a - b| / max |b|.

Config and params are read by attribute name (duck typing) or as dict keys, so the lead's
``StackConfig`` / ``Params`` and plain dicts both work.
"""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np

PARAM_NAMES = ("W_Q", "W_K", "W_V", "W_O", "g1", "g2", "W1", "b1", "W2", "b2", "g3")

# MODEL.md defaults, used when a (dict) config leaves a field out.
_DEFAULTS = dict(
    n_layers=6, d_model=64, n_heads=4, d_head=None, d_ff=None, norm="rms", final_norm=None,
    pos="nope", rope_base=10000.0, rope_fraction=1.0, mask="causal", attention="softmax",
    attn_scale=None, sink_logit=0.0, sink_value_scale=1.0, residual=True, branch_scale=1.0,
    mlp=True, act="gelu", weight_scale=1.0, dtype="float64", eps=1e-6,
)

# (precision p incl. the hidden bit, emin, emax) of each IEEE-style binary format.
FORMATS = {"float32": (24, -126, 127), "float16": (11, -14, 15), "bfloat16": (8, -126, 127)}
UNIT_ROUNDOFF = {"float64": 2.0**-53, "float32": 2.0**-24, "float16": 2.0**-11,
                 "bfloat16": 2.0**-8}


# --------------------------------------------------------------------------------------------
# config / params access
# --------------------------------------------------------------------------------------------
def _field(cfg, name):
    if isinstance(cfg, dict):
        v = cfg.get(name, _DEFAULTS[name])
    else:
        v = getattr(cfg, name, _DEFAULTS[name])
    return v


def resolved(cfg) -> dict:
    """Every MODEL.md field of ``cfg`` with the derived defaults filled in (MODEL.md rules)."""
    c = {k: _field(cfg, k) for k in _DEFAULTS}
    if c["d_head"] is None:
        c["d_head"] = c["d_model"] // c["n_heads"]
    if c["d_ff"] is None:
        c["d_ff"] = 4 * c["d_model"]
    if c["final_norm"] is None:
        c["final_norm"] = c["norm"]
    if c["attn_scale"] is None:
        c["attn_scale"] = 1.0 / math.sqrt(c["d_head"])
    m = c["mask"]
    if not isinstance(m, str):
        m = ("window", int(m[1]))
    c["mask"] = m
    return c


_EXT = (np.dtype(np.longdouble), np.dtype(np.clongdouble))


def _keep(a):
    """float64 unless complex or extended (complex step / extended-precision references)."""
    a = np.asarray(a)
    return a if (np.iscomplexobj(a) or a.dtype in _EXT) else a.astype(np.float64)


def param_dict(params) -> dict:
    """Params as a dict of arrays (complex / long double kept: see :func:`ref_forward`)."""
    get = params.get if isinstance(params, dict) else (lambda k: getattr(params, k))
    return {k: _keep(get(k)) for k in PARAM_NAMES}


# --------------------------------------------------------------------------------------------
# rounding references
# --------------------------------------------------------------------------------------------
def ref_round(x, dtype: str) -> np.ndarray:
    """Round float64 values to ``dtype`` with round-to-nearest, ties-to-even; float64 out.

    Exact bit arithmetic, independent of any cast routine: for finite x with leading-bit
    exponent e, the quantum is q = 2^(max(e, emin) - (p - 1)) (subnormals share emin's
    quantum); x / q is an exact float64, ``np.rint`` rounds it half-to-even exactly, and
    the result r*q overflows to +-inf when it exceeds the largest finite value. Signs of
    zero are kept (rint(-0.3) = -0.0). NaN stays NaN, +-inf stays +-inf.
    """
    x = np.asarray(x, dtype=np.float64)
    if dtype == "float64":
        return x.copy()
    p, emin, emax = FORMATS[dtype]
    out = x.copy()
    fin = np.isfinite(x) & (x != 0)
    xf = x[fin]
    _, E = np.frexp(xf)                       # xf = m * 2^E, 0.5 <= |m| < 1: leading bit 2^(E-1)
    qe = np.maximum(E - 1, emin) - (p - 1)
    r = np.rint(np.ldexp(xf, -qe))            # exact scaling by a power of two, then RNE
    y = np.ldexp(r, qe)
    maxfinite = (2.0 - 2.0 ** (1 - p)) * 2.0**emax
    y = np.where(np.abs(y) > maxfinite, np.copysign(np.inf, y), y)
    out[fin] = y
    return out


_ML = {"float32": np.float32, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16}


def mld_round(x, dtype: str) -> np.ndarray:
    """The brief's reference: ``x.astype(fmt).astype(float64)`` through ml_dtypes / NumPy.

    Caveat (observed with ml_dtypes 0.6.0): ml_dtypes casts float64 -> bfloat16 through
    float32 (double rounding), so for float64 inputs with bits beyond float32 it can differ
    from a single round-to-nearest-even (1 + 2^-8 + 2^-40 -> 1.0 instead of 1 + 2^-7). On
    float32-representable inputs it is a correct RNE, and NumPy's float64 -> float32 /
    float16 casts round once; tests/sims/test_precision.py checks ref_round against both.
    """
    x = np.asarray(x, dtype=np.float64)
    if dtype == "float64":
        return x.copy()
    return x.astype(_ML[dtype]).astype(np.float64)


# --------------------------------------------------------------------------------------------
# model pieces (complex-safe: complex inputs give complex-step derivatives)
# --------------------------------------------------------------------------------------------
def _norm(kind, U, g, eps):
    if kind == "none":
        return U                               # MODEL.md: "none" is the identity (no gain)
    if kind == "rms":
        return g * U / np.sqrt(np.mean(U * U, axis=-1, keepdims=True) + eps)
    if kind == "layer":
        C = U - np.mean(U, axis=-1, keepdims=True)
        return g * C / np.sqrt(np.mean(C * C, axis=-1, keepdims=True) + eps)
    raise ValueError(f"unknown norm {kind!r}")


def _act(kind, u):
    if kind == "gelu":
        return 0.5 * u * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (u + 0.044715 * u**3)))
    if kind == "relu":
        return np.where(np.real(u) > 0, u, 0.0 * u)
    if kind == "tanh":
        return np.tanh(u)
    raise ValueError(f"unknown act {kind!r}")


def rope_thetas(d_head, base=10000.0, fraction=1.0):
    """theta_m = base^(-2m/d_k), m = 0..d_k/2-1; theta_m = 0 for m >= K = ceil(p d_k/2 - 1e-9)."""
    th = base ** (-2.0 * np.arange(d_head // 2) / d_head)
    K = math.ceil(fraction * d_head / 2 - 1e-9)
    th[K:] = 0.0
    return th


def rope_rotate_at(X, pos, th):
    """Rotate pair (2m, 2m+1) of row i by angle pos[i]*theta_m (counter-clockwise)."""
    a = np.outer(pos, th)
    c, s = np.cos(a), np.sin(a)
    out = X.copy()
    out[:, 0::2] = X[:, 0::2] * c - X[:, 1::2] * s
    out[:, 1::2] = X[:, 0::2] * s + X[:, 1::2] * c
    return out


def rope_rotate(Y, th):
    """Rotate pair (2m, 2m+1) of row i by angle i*theta_m (counter-clockwise)."""
    return rope_rotate_at(Y, np.arange(Y.shape[0], dtype=np.float64), th)


def sinusoidal_table(n, d):
    """P[p, 2i] = sin(p / 10000^(2i/d)), P[p, 2i+1] = cos(p / 10000^(2i/d))."""
    P = np.zeros((n, d))
    pos = np.arange(n, dtype=np.float64)
    for c in range(d):
        ang = pos / 10000.0 ** (2 * (c // 2) / d)
        P[:, c] = np.sin(ang) if c % 2 == 0 else np.cos(ang)
    return P


def mask_matrix(mask, n):
    """Boolean (n, n): True where key j is visible from query i."""
    i = np.arange(n)[:, None]
    j = np.arange(n)[None, :]
    if mask == "full":
        return np.ones((n, n), dtype=bool)
    if mask == "causal":
        return j <= i
    w = mask[1]
    return (j <= i) & (j > i - w)


def alibi_slopes(H):
    return 2.0 ** (-8.0 * (np.arange(H) + 1) / H)


def _softmax_rows(S, M):
    """Row softmax over visible entries; stable (subtract the real row max of visible logits)."""
    big = np.where(M, np.real(S), -np.inf).max(axis=1, keepdims=True)
    E = np.where(M, np.exp(np.where(M, S - big, 0.0)), 0.0)   # masked: exp(0), then dropped
    return E / E.sum(axis=1, keepdims=True)


def ref_logits(c, Q, K, h):
    """Logits of MODEL.md step 4 for one head (before masking): (n, n)."""
    n = Q.shape[0]
    if c["pos"] == "rope":
        th = rope_thetas(c["d_head"], c["rope_base"], c["rope_fraction"])
        Q, K = rope_rotate(Q, th), rope_rotate(K, th)
    S = c["attn_scale"] * (Q @ K.T)
    if c["pos"] == "alibi":
        r = np.abs(np.arange(n)[:, None] - np.arange(n)[None, :])
        S = S - alibi_slopes(c["n_heads"])[h] * r
    if n > 1:
        S = S.copy()
        S[1:, 0] = S[1:, 0] + c["sink_logit"]
    return S


def ref_attention_weights(cfg, Q, K, head=0):
    """Softmax of :func:`ref_logits` over the mask: (n, n), zero where masked."""
    c = resolved(cfg)
    Q = np.asarray(Q, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    return _softmax_rows(ref_logits(c, Q, K, head), mask_matrix(c["mask"], Q.shape[0]))


# --------------------------------------------------------------------------------------------
# the whole stack
# --------------------------------------------------------------------------------------------
def ref_forward(cfg, params, X, attn=None, *, frozen_attn=None, record=None):
    """The stack of MODEL.md in plain NumPy: returns (hidden (L+1,n,d), attn (L,H,n,n), Y (n,d)).

    Parameters
    ----------
    cfg : StackConfig-like or dict
        Read by field name; missing dict fields take MODEL.md's defaults.
    params : Params-like or dict
        W_Q, W_K, W_V (L,H,d,dk), W_O (L,H,dk,d), g1, g2 (L,d), W1 (L,d,dff), b1 (L,dff),
        W2 (L,dff,d), b2 (L,d), g3 (d,).
    X : (n, d)
        Token inputs. Complex X or params give complex-step derivatives (ReLU uses the sign
        of the real part). If X or a parameter is long double (np.longdouble /
        np.clongdouble) the whole pass runs in extended precision (constants, RoPE and
        sinusoidal tables stay the float64 values), an estimate of float64 rounding.
    attn : (L, H, n, n), optional
        The maps for ``attention="prescribed"``.
    frozen_attn : (L, H, n, n), optional
        If given, used instead of the softmax (or the prescribed maps): attention held fixed,
        so finite differences of this map are the frozen Jacobian of MODEL.md.
    record : dict, optional
        Filled with internals: "preact" (list of (n, dff)) MLP pre-activations, "norm_in"
        (list of (kind, (n, d) input rows)) of every norm in the order applied, "logits"
        (list of (n, n), masked entries 0) of every softmax head.

    Notes
    -----
    ``cfg.dtype`` other than float64 is not emulated here; see :func:`ref_forward_lowp`.
    """
    c = resolved(cfg)
    P = param_dict(params)
    X = _keep(X)
    arrs = [X, *P.values()]
    cplx = any(np.iscomplexobj(a) for a in arrs)
    ext = any(a.dtype in _EXT for a in arrs)
    dt = {(False, False): np.float64, (True, False): np.complex128,
          (False, True): np.longdouble, (True, True): np.clongdouble}[(cplx, ext)]
    X = X.astype(dt)
    P = {k: a.astype(dt) for k, a in P.items()}
    n, d = X.shape
    L, H = c["n_layers"], c["n_heads"]
    M = mask_matrix(c["mask"], n)
    cv = np.ones(n)
    cv[0] = c["sink_value_scale"]

    V = X + sinusoidal_table(n, d) if c["pos"] == "sinusoidal" else X
    hidden = np.zeros((L + 1, n, d), dtype=dt)
    A_all = np.zeros((L, H, n, n))
    hidden[0] = V
    if record is not None:
        record["preact"] = []
        record["norm_in"] = []
    for l in range(L):
        U = _norm(c["norm"], V, P["g1"][l], c["eps"])
        if record is not None:
            record["norm_in"].append((c["norm"], np.real(V)))
        O = np.zeros((n, d), dtype=dt)
        for h in range(H):
            Q = U @ P["W_Q"][l, h]
            K = U @ P["W_K"][l, h]
            Val = U @ P["W_V"][l, h]
            if frozen_attn is not None:
                A = np.asarray(frozen_attn[l, h], dtype=np.float64).astype(dt)
            elif c["attention"] == "prescribed":
                A = np.asarray(attn[l, h], dtype=np.float64).astype(dt)
            else:
                Sl = ref_logits(c, Q, K, h)
                if record is not None:
                    record.setdefault("logits", []).append(np.real(np.where(M, Sl, 0.0)))
                A = _softmax_rows(Sl, M)
            A_all[l, h] = np.real(A)
            O = O + A @ (cv[:, None] * Val) @ P["W_O"][l, h]
        Z = V + c["branch_scale"] * O if c["residual"] else O
        if c["mlp"]:
            U2 = _norm(c["norm"], Z, P["g2"][l], c["eps"])
            if record is not None:
                record["norm_in"].append((c["norm"], np.real(Z)))
            pre = U2 @ P["W1"][l] + P["b1"][l]
            if record is not None:
                record["preact"].append(np.real(pre))
            psi = _act(c["act"], pre) @ P["W2"][l] + P["b2"][l]
            Vn = Z + c["branch_scale"] * psi if c["residual"] else psi
        else:
            Vn = Z
        V = Vn
        hidden[l + 1] = V
    if record is not None:
        record["norm_in"].append((c["final_norm"], np.real(V)))
    Y = _norm(c["final_norm"], V, P["g3"], c["eps"])
    return hidden, A_all, Y


# --------------------------------------------------------------------------------------------
# derivatives of the oracle
# --------------------------------------------------------------------------------------------
def fd_jacobian_last(f, X, h=1e-3):
    """Central finite differences (4th-order stencil) of f: (n, d) -> (d,).

    J[i, a, b] = d f(X)_a / d X[i, b] ~ (-f(+2h) + 8 f(+h) - 8 f(-h) + f(-2h)) / (12 h).
    Truncation error O(h^4 f^(5)), rounding error ~ 1.5 eps |f| / h.
    """
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    out = None
    for i in range(n):
        for b in range(d):
            vals = []
            for s in (2, 1, -1, -2):
                Xp = X.copy()
                Xp[i, b] += s * h
                vals.append(np.asarray(f(Xp), dtype=np.float64))
            col = (-vals[0] + 8 * vals[1] - 8 * vals[2] + vals[3]) / (12 * h)
            if out is None:
                out = np.zeros((n, col.shape[0], d))
            out[i, :, b] = col
    return out


def fd_jacobian_last_est(f, X, steps=(3e-3, 1e-3, 3e-4, 1e-4, 3e-5)):
    """Central differences with an error estimate: (J, est), both from the 4th-order stencil.

    Successive steps shrink by ~3, so the O(h^4) truncation error drops ~80x per step while
    the rounding error (~eps |f| / h) grows ~3x; the pair of successive estimates that
    agree best is taken, J is the one at the smaller step of that pair, and est = max |J_h -
    J_h'| over the pair (an upper estimate of J's own error while truncation dominates).
    """
    Js = [fd_jacobian_last(f, X, h) for h in steps]
    diffs = [np.max(np.abs(Js[k + 1] - Js[k])) for k in range(len(Js) - 1)]
    k = int(np.argmin(diffs))
    return Js[k + 1], float(diffs[k])


def fd_derivative_est(phi, steps=(3e-3, 1e-3, 3e-4, 1e-4, 3e-5)):
    """Central-difference derivative of a scalar phi(t) at t = 0, with an error estimate.

    Same 4th-order stencil and step selection as :func:`fd_jacobian_last_est`: returns
    (value at the better step of the best-agreeing pair, |difference| of that pair).
    """
    vals = [(-phi(2 * h) + 8 * phi(h) - 8 * phi(-h) + phi(-2 * h)) / (12 * h) for h in steps]
    diffs = [abs(vals[k + 1] - vals[k]) for k in range(len(vals) - 1)]
    k = int(np.argmin(diffs))
    return float(vals[k + 1]), float(diffs[k])


CS_STEP = 1e-30


def _cdt(extended):
    return np.clongdouble if extended else np.complex128


def cs_jacobian_last(f, X, h=CS_STEP, *, extended=False):
    """Complex-step derivatives of an analytic f: (n, d) -> (d,): J[i, :, b] = Im f(X + i h e_ib)/h.

    No subtraction, so no cancellation: exact to a few ulps of the derivative for any h
    small enough that h^2 times the third derivative is negligible (h = 1e-30).
    ``extended=True`` evaluates in np.clongdouble (unit roundoff 2^-64 on x86): compared
    with the float64 result it measures the float64 rounding of the derivative itself
    (:func:`reference_noise`).
    """
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    out = None
    for i in range(n):
        for b in range(d):
            Xc = X.astype(_cdt(extended))
            Xc[i, b] += 1j * h
            col = (np.imag(np.asarray(f(Xc))) / h).astype(np.float64)
            if out is None:
                out = np.zeros((n, col.shape[0], d))
            out[i, :, b] = col
    return out


def cs_grad_X(cfg, params, X, cot, *, frozen_attn=None, attn=None, h=CS_STEP, extended=False):
    """Complex-step gradient of <cot, Y(X)> w.r.t. X: (n, d) (a reference VJP)."""
    X = np.asarray(X, dtype=np.float64)
    g = np.zeros_like(X)
    for idx in np.ndindex(*X.shape):
        Xc = X.astype(_cdt(extended))
        Xc[idx] += 1j * h
        Y = ref_forward(cfg, params, Xc, attn, frozen_attn=frozen_attn)[2]
        g[idx] = float(np.sum(cot * np.imag(Y)) / h)
    return g


def cs_param_grad(cfg, params, X, cot, name, *, frozen_attn=None, attn=None, h=CS_STEP,
                  direction=None, extended=False):
    """Complex-step gradient of <cot, Y(params)> w.r.t. params[name].

    With ``direction`` (same shape as the parameter) returns only the directional derivative
    <grad, direction> (one forward pass); otherwise the full gradient, entry by entry.
    """
    P = param_dict(params)
    base = P[name]

    def dval(delta):
        Q = dict(P)
        Q[name] = base.astype(_cdt(extended)) + 1j * h * delta
        Y = ref_forward(cfg, Q, X, attn, frozen_attn=frozen_attn)[2]
        return float(np.sum(cot * np.imag(Y)) / h)

    if direction is not None:
        return dval(np.asarray(direction, dtype=np.float64))
    g = np.zeros(base.shape)
    for idx in np.ndindex(*base.shape):
        e = np.zeros(base.shape)
        e[idx] = 1.0
        g[idx] = dval(e)
    return g


def reference_noise(ref64, ref_ext):
    """max |ref64 - ref_ext| / max |ref_ext|: float64 rounding error of a reference derivative.

    A derivative whose float64 evaluation is off by more than ~1e-12 relative is
    cancellation-dominated (e.g. the radial derivative of a norm, which only eps makes
    non-zero): any float64 implementation, the one under test included, can miss it by
    ~1e3 times more, so a 1e-9 comparison there measures rounding, not correctness.
    Tests assume reference_noise <= 1e-12 (NOISE_MAX).
    """
    return rel_err(ref64, ref_ext)


NOISE_MAX = 1e-12

# A derivative whose largest entry is below GRAD_FLOOR * max|cotangent| is "vanishing": e.g.
# without residual stream every path runs through saturated tanh / GELU units. Standard
# reverse modes (JAX, PyTorch, sims) compute tanh' as 1 - tanh^2, exact only to ~1e-16
# absolutely (tanh rounds to +-1 for |z| > 19), so such gradients are below the float64
# floor of any implementation; relative comparisons there measure that floor, not the code.
# Tests assume max|reference| >= GRAD_FLOOR * max|cotangent| (1e-6: an absolute error of
# ~1e-16 * Lipschitz factors ~1e-15 is then still <= 1e-9 relative).
GRAD_FLOOR = 1e-6


def conditioning(cfg, params, X, attn=None) -> dict:
    """How far two correct float64 implementations of the stack can disagree, from one pass.

    Returns a dict:

    "kappa" : largest relative condition number of a layer norm. A layer norm maps rows
        u_i to g (u_i - mean u_i) / s_i, s_i = sqrt(var(u_i) + eps). Rounding u in float64
        (~1e-16 |u_i|) survives the centring, so output entries move by ~1e-16 |u_i|/s_i,
        while errors are measured relative to the largest output ~ max_i |u_i - mean|/s_i:
        kappa = max_i (|u|_inf / s_i) / max_i (|u_i - mean u_i|_inf / s_i), with the whole
        array's |u|_inf (a row near 0 by cancellation carries errors of the terms that
        cancelled), except for exactly constant rows (their own |u_i|_inf).
        (rms and "none" do not cancel: 1.) Constant rows with small eps, or rows whose
        spread is tiny next to their mean, are genuinely ill-conditioned.
    "max_logit" : largest |logit| of a softmax head; the softmax's relative condition number
        is ~max|S| (a rounding of S by ~1e-16 |S| moves the weights by that, relatively).
    "relu_margin" : smallest non-zero |pre-activation| of a ReLU MLP relative to the largest
        (inf without ReLU). A pre-activation that close to 0 may land on the other side of
        the kink in the other implementation, where the derivative jumps. Exact zeros count
        too (margin 0): at a pre-activation of exactly 0 the map has no derivative (a b1
        perturbation crosses the kink, and central differences see slope 1/2).
    """
    c = resolved(cfg)
    rec = {}
    ref_forward(cfg, params, X, attn, record=rec)
    kappa = 1.0
    for kind, U in rec["norm_in"]:
        if kind == "layer":
            C = U - U.mean(axis=1, keepdims=True)
            s = np.sqrt(U.var(axis=1) + c["eps"])
            # A row's rounding errors are ~1e-16 of the terms summed into it, not of the row
            # itself: a row that came out near 0 by cancellation (attention mixes every
            # row's values into it) carries errors ~1e-16 max|U|. So rows are measured
            # against the array's largest entry, except rows exactly constant (their
            # centring gives exact zeros in any implementation). Seen: a final-norm row of
            # size 1e-6 (s ~ eps^(1/2) = 1e-3) with kappa 2 by the row's own size, and
            # outputs 1.6e-12 apart.
            live = np.abs(C).max(axis=1) > 0
            scale = float(np.abs(U).max())
            num = (np.where(live, scale, np.abs(U).max(axis=1)) / s).max()
            den = (np.abs(C).max(axis=1) / s).max()
            kappa = max(kappa, float(num / den) if den > 0 else (np.inf if num > 0 else 1.0))
    max_logit = max((float(np.abs(S).max()) for S in rec.get("logits", [])), default=0.0)
    margin = np.inf
    if c["mlp"] and c["act"] == "relu":
        pre = np.abs(np.concatenate([a.ravel() for a in rec["preact"]]))
        margin = float(pre.min() / pre.max()) if pre.size and pre.max() > 0 else 0.0
    # "shrink": how much the signal shrinks from the largest hidden state to the last one.
    # Rounding errors are ~1e-16 of the largest state they pass through, so relative to a
    # last state `shrink` times smaller they grow by that factor (e.g. no residual stream,
    # a zero sink value and cancelling values: measured 3e-12 relative at shrink 1.3e3).
    hidden, _, _ = ref_forward(cfg, params, X, attn)
    last = float(np.abs(hidden[-1]).max())
    shrink = float(np.abs(hidden).max() / last) if last > 0 else np.inf
    return {"kappa": kappa, "max_logit": max_logit, "relu_margin": margin, "shrink": shrink}


def well_conditioned(cfg, params, X, attn=None, *, kappa=1e2, max_logit=1e2,
                     relu_margin=1e-8, shrink=1e2) -> bool:
    """True when :func:`conditioning` is within the given limits (the tests' domain).

    With kappa <= 1e2 and |S| <= 1e2, float64 rounding differences between two correct
    implementations stay ~1e-16 * 1e2 * (depth) << 1e-12 in values and << 1e-9 in
    derivatives; relu_margin >= 1e-8 keeps every ReLU on the same side of its kink.
    """
    k = conditioning(cfg, params, X, attn)
    return (k["kappa"] <= kappa and k["max_logit"] <= max_logit
            and k["relu_margin"] >= relu_margin and k["shrink"] <= shrink)


def rel_err(a, b):
    """max |a - b| / max |b| (relative to the largest entry of the reference b; 0 if both 0)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = np.max(np.abs(b)) if b.size else 0.0
    diff = np.max(np.abs(a - b)) if b.size else 0.0
    if scale == 0.0:
        return float(diff)
    return float(diff / scale)


# --------------------------------------------------------------------------------------------
# low-precision emulation
# --------------------------------------------------------------------------------------------
def _norm_lowp(kind, U, g, eps, R):
    """A norm with every documented intermediate rounded by R (see :func:`ref_forward_lowp`)."""
    if kind == "none":
        return U
    if kind == "layer":
        mu = R(U.mean(axis=-1, keepdims=True))
        C = R(U - mu)
    else:
        C = U
    ms = R(np.mean(C * C, axis=-1, keepdims=True))
    r = R(1.0 / np.sqrt(ms + eps))
    xh = R(C * r)
    return R(g * xh)


def ref_forward_lowp(cfg, params, X, attn=None, *, rnd=ref_round):
    """The stack of MODEL.md with round-to-nearest-even to ``cfg.dtype`` at op boundaries.

    Boundaries (the ones sims.forward documents; each value is computed in float64 from
    already-rounded inputs and then rounded once, matmuls and row sums accumulating in
    float64): the stack input X (+ P); in each norm the mean, the centred entries, the mean
    square, the reciprocal root 1/sqrt(ms + eps), x-hat and the gained output; Q, K, V;
    each RoPE-rotated entry; each logit after scaling (s * <q, k>, one rounding), after the
    ALiBi bias, after the sink logit; the max-subtracted logit, its exponential, the row
    sum, each weight; the sink-scaled value row; each head's A Vc; the attention output
    sum_h (A Vc)_h W_O^h (one matmul, one rounding); the branch-scaled output and the
    residual sum; the MLP pre-activation U W1 + b1, the activation, act W2 + b2, its branch
    scaling and the residual sum. Parameters and prescribed maps are stored in the
    format: each is rounded once before use (the RoPE cos/sin tables stay float64).

    Returns (hidden, attn, output) like :func:`ref_forward`.
    """
    c = resolved(cfg)
    dt = c["dtype"]
    R = lambda a: rnd(a, dt)  # noqa: E731
    P = {k: R(np.asarray(v, dtype=np.float64)) for k, v in param_dict(params).items()}
    if attn is not None:
        attn = R(np.asarray(attn, dtype=np.float64))
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    L, H = c["n_layers"], c["n_heads"]
    M = mask_matrix(c["mask"], n)
    V = R(X + sinusoidal_table(n, d) if c["pos"] == "sinusoidal" else X)
    hidden = np.zeros((L + 1, n, d))
    A_all = np.zeros((L, H, n, n))
    hidden[0] = V
    th = rope_thetas(c["d_head"], c["rope_base"], c["rope_fraction"]) if c["pos"] == "rope" else None
    for l in range(L):
        U = _norm_lowp(c["norm"], V, P["g1"][l], c["eps"], R)
        AV = []
        for h in range(H):
            Q = R(U @ P["W_Q"][l, h])
            K = R(U @ P["W_K"][l, h])
            Val = R(U @ P["W_V"][l, h])
            if c["attention"] == "prescribed":
                A = np.asarray(attn[l, h], dtype=np.float64)
            else:
                if th is not None:
                    Q, K = R(rope_rotate(Q, th)), R(rope_rotate(K, th))
                S = R(c["attn_scale"] * (Q @ K.T))
                if c["pos"] == "alibi":
                    r = np.abs(np.arange(n)[:, None] - np.arange(n)[None, :])
                    S = R(S - alibi_slopes(H)[h] * r)
                if n > 1:
                    S[1:, 0] = R(S[1:, 0] + c["sink_logit"])
                big = np.where(M, S, -np.inf).max(axis=1, keepdims=True)
                Sh = R(np.where(M, S - big, 0.0))
                E = np.where(M, R(np.exp(Sh)), 0.0)
                tot = R(E.sum(axis=1, keepdims=True))
                A = R(E / tot)
            A_all[l, h] = A
            Vc = Val.copy()
            Vc[0] = R(c["sink_value_scale"] * Vc[0])
            AV.append(R(A @ Vc))
        O = R(sum(AV[h] @ P["W_O"][l, h] for h in range(H)))
        Z = R(V + R(c["branch_scale"] * O)) if c["residual"] else O
        if c["mlp"]:
            U2 = _norm_lowp(c["norm"], Z, P["g2"][l], c["eps"], R)
            pre = R(U2 @ P["W1"][l] + P["b1"][l])
            a = R(_act(c["act"], pre))
            psi = R(a @ P["W2"][l] + P["b2"][l])
            V = R(Z + R(c["branch_scale"] * psi)) if c["residual"] else psi
        else:
            V = Z
        hidden[l + 1] = V
    Y = _norm_lowp(c["final_norm"], V, P["g3"], c["eps"], R)
    return hidden, A_all, Y
