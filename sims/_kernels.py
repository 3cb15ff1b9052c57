"""Numba kernels of the stack: forward pass with a saved trace, and the batched reverse pass.

Conventions (read by sims/stack.py and sims/jacobian.py, the only callers):
- parameters come in PARAM_NAMES order: WQ, WK, WV, WO, g1, g2, W1, b1, W2, b2, g3;
- ``iflags`` = [norm, final_norm, pos, mask, window, attention, residual, mlp, act, dtype]
  (codes are indices into the tuples of sims/config.py; mask 0 causal, 1 full, 2 window);
- ``fvals`` = [attn_scale, sink_logit, sink_value_scale, branch_scale, eps];
- cotangents are laid out (n, B, width): token-major, so a range of active tokens is one
  contiguous block that reshapes to a (rows*B, width) matrix for BLAS.
Kernels fill output arrays and return a status code (0 = ok); they never raise.
Every jitted function here calls only jitted functions of this file (numba's cache).
Nothing here is ``parallel=True``: the entry points over many runs (``*_many``) and over
cotangent chunks (``backward_chunks``) take an index range and release the GIL, and
sims/_threads.py splits the work over Python threads. One serial compilation serves both
(a prange kernel would compile every callee again into its parallel region: minutes cold).
Every kernel uses ``error_model="numpy"``: a float division by zero gives inf/nan (caught by
the status checks) instead of raising. Under Numba's default ("python") each division tests
its divisor, which keeps loops from being vectorised: the GELU derivative of a 128 x 256
block took 0.78 ms that way and 0.02 ms without the test. Results are the same bits.
The float64 path (emulation code 0) is generic in the float type: every work array takes
the dtype of the kernel's inputs, and the exp picks its float32 or float64 kernel at compile
time (:func:`_exp_row`), so the same source compiles to native float32 kernels for float32
training (sims/batch.py's ``compute_dtype``). The emulated formats run on float64 arrays only.
Hot inner loops index a view with the bare loop variable (``row = M[i, k0:k1]; row[j]``),
not an offset (``M[i, k0 + j]``): Numba wraps negative indices, and for an offset it cannot
prove non-negative that check stops the loop from being vectorised (the softmax reverse's
element-wise pass over a 1024 x 128 tile: 70 us with offsets, 17 us with views; same bits).
"""

import math

import numpy as np
from numba import njit, types
from numba.extending import overload
from numba.np.linalg import _BLAS

# ----------------------------------------------------------------------------------------
# BLAS gemm on strided row-major views.
# ``np.dot`` in Numba takes contiguous arrays only, so a block of a larger matrix (the
# visible keys of a query block of A) had to be copied first, and every product allocated
# its result. Numba's own BLAS entry point (the ``numba_xxgemm`` symbol of its helper
# library, which np.dot calls too: same OpenBLAS kernel, so the same bits) takes leading
# dimensions, alpha and beta. Being a named symbol, not a pointer, it keeps kernels cacheable.
# ----------------------------------------------------------------------------------------
_XXGEMM = {types.float64: (_BLAS().numba_xxgemm(types.float64), ord("d")),
           types.float32: (_BLAS().numba_xxgemm(types.float32), ord("s"))}


def _gemm(ta, tb, alpha, A, B, beta, C):
    """C = alpha op(A) op(B) + beta C for 2-D row-major views (unit column stride, any row
    stride): op(X) = X^T when the flag is True. A, B, C share a dtype (float64 or float32).
    Only callable from jitted code (:func:`_gemm_impl` picks the BLAS routine by dtype)."""
    raise NotImplementedError("only callable from jitted code")


@overload(_gemm)
def _gemm_impl(ta, tb, alpha, A, B, beta, C):
    if C.dtype not in _XXGEMM or A.dtype != C.dtype or B.dtype != C.dtype:
        return None
    fn, kind = _XXGEMM[C.dtype]

    def impl(ta, tb, alpha, A, B, beta, C):
        m, n = C.shape
        k = A.shape[0] if ta else A.shape[1]
        if m == 0 or n == 0:
            return 0
        if k == 0:
            C *= beta
            return 0
        # a one-row view may carry any row stride; BLAS wants one >= its width
        lda = A.strides[0] // A.itemsize if A.shape[0] > 1 else A.shape[1]
        ldb = B.strides[0] // B.itemsize if B.shape[0] > 1 else B.shape[1]
        ldc = C.strides[0] // C.itemsize if m > 1 else n
        ab = np.empty(2, C.dtype)
        ab[0] = alpha
        ab[1] = beta
        # Fortran BLAS is column-major: row-major C = op(A) op(B) is C^T = op(B)^T op(A)^T
        fn(kind, ord("T") if tb else ord("N"), ord("T") if ta else ord("N"), n, m, k,
           ab[0:1].ctypes, B.ctypes, ldb, A.ctypes, lda, ab[1:2].ctypes, C.ctypes, ldc)
        return 0
    return impl

# ----------------------------------------------------------------------------------------
# Rounding to a narrower floating-point format (round to nearest, ties to even).
# code: 0 float64 (no-op), 1 float32, 2 float16, 3 bfloat16.
# ----------------------------------------------------------------------------------------


@njit(error_model="numpy", cache=True)
def _fmt(code):
    # (significand bits incl. the implicit one, minimum normal exponent, maximum exponent)
    if code == 1:
        return 24, -126, 127
    if code == 2:
        return 11, -14, 15
    return 8, -126, 127


@njit(error_model="numpy", cache=True)
def round_scalar(x, code):
    """x rounded to the format ``code`` (RNE, subnormals, overflow to +-inf)."""
    if code == 0 or x == 0.0 or not math.isfinite(x):
        return x
    p, emin, emax = _fmt(code)
    m, e = math.frexp(x)  # x = m 2^e, 0.5 <= |m| < 1, so the leading bit has exponent e - 1
    lead = e - 1
    if lead < emin:
        lead = emin  # subnormal range: a fixed quantum
    q = lead - (p - 1)
    r = math.ldexp(np.rint(math.ldexp(x, -q)), q)  # scaling by 2^-q is exact
    top = math.ldexp(2.0 - math.ldexp(1.0, 1 - p), emax)
    if abs(r) > top:
        return math.copysign(math.inf, x)
    return r


@njit(error_model="numpy", cache=True)
def round_array(a, code):
    """Round every entry of a (any shape, C-contiguous) in place."""
    if code == 0:
        return 0
    flat = a.reshape(a.size)
    for k in range(flat.size):
        flat[k] = round_scalar(flat[k], code)
    return 0


# ----------------------------------------------------------------------------------------
# Small building blocks
# ----------------------------------------------------------------------------------------


@njit(error_model="numpy", cache=True)
def _norm_rows(V, g, kind, eps, code, xh, r, U):
    """U = N(V) row-wise; saves xhat and the reciprocal std r (MODEL.md norms)."""
    n, d = V.shape
    if code == 0 and kind != 2:
        _norm_rows64(V, g, kind, eps, xh, r, U)
        return 0
    for i in range(n):
        if kind == 2:  # none
            for a in range(d):
                xh[i, a] = V[i, a]
                U[i, a] = V[i, a]
            r[i] = 1.0
            continue
        mu = 0.0
        if kind == 1:  # layer: centre first
            for a in range(d):
                mu += V[i, a]
            mu = round_scalar(mu / d, code)
        ss = 0.0
        for a in range(d):
            c = round_scalar(V[i, a] - mu, code)
            ss += c * c
        ri = round_scalar(1.0 / math.sqrt(round_scalar(ss / d, code) + eps), code)
        r[i] = ri
        for a in range(d):
            c = round_scalar(V[i, a] - mu, code)
            xh[i, a] = round_scalar(c * ri, code)
            U[i, a] = round_scalar(g[a] * xh[i, a], code)
    return 0


@njit(error_model="numpy", cache=True)
def _norm_rows64(V, g, kind, eps, xh, r, U):
    """:func:`_norm_rows` in float64 (rms or layer): the same operations in the same order
    (so the same bits), the element-wise ones in loops the compiler vectorises; the sums
    stay sequential."""
    n, d = V.shape
    for i in range(n):
        v = V[i]
        mu = 0.0
        if kind == 1:
            for a in range(d):
                mu += v[a]
            mu = mu / d
        ss = 0.0
        for a in range(d):
            c = v[a] - mu
            ss += c * c
        ri = 1.0 / math.sqrt(ss / d + eps)
        r[i] = ri
        x = xh[i]
        u = U[i]
        for a in range(d):
            x[a] = (v[a] - mu) * ri
        for a in range(d):
            u[a] = g[a] * x[a]
    return 0


@njit(error_model="numpy", cache=True)
def _norm_rows_bwd(dU, g, kind, xh, r, lo, hi, dV, dg, want_dg):
    """dV[lo:hi+1] = (dN/dV)^T dU for rows lo..hi, all B cotangents (layout (n, B, d))."""
    B = dU.shape[1]
    d = dU.shape[2]
    for i in range(lo, hi + 1):
        for b in range(B):
            if kind == 2:
                for a in range(d):
                    dV[i, b, a] = dU[i, b, a]
                continue
            mg = 0.0
            mxg = 0.0
            for a in range(d):
                gy = g[a] * dU[i, b, a]
                mg += gy
                mxg += xh[i, a] * gy
            mg /= d
            mxg /= d
            if kind == 0:
                mg = 0.0  # rms has no centring term
            for a in range(d):
                gy = g[a] * dU[i, b, a]
                dV[i, b, a] = r[i] * (gy - mg - xh[i, a] * mxg)
            if want_dg:
                for a in range(d):
                    dg[a] += dU[i, b, a] * xh[i, a]
    return 0


@njit(error_model="numpy", cache=True)
def _act(u, kind):
    """psi(u), entry by entry: the emulated formats (their rounding is checked bit for bit
    against a reference) and float64 relu/tanh; the float64 GELU is :func:`_gelu_row64`."""
    if kind == 0:  # gelu, tanh form
        k = math.sqrt(2.0 / math.pi)
        return 0.5 * u * (1.0 + math.tanh(k * (u + 0.044715 * u * u * u)))
    if kind == 1:
        return u if u > 0.0 else 0.0
    return math.tanh(u)


# e^x for float64 rows, vectorisable (see _exp64_row)
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 split so that k * _LN2_HI is exact for |k| < 2^11
_LN2_LO = 1.90821492927058770002e-10
_SHIFT = 6755399441055744.0  # 1.5 * 2^52: y + _SHIFT rounds y to an integer held in the low bits
_EXP_LO = -708.0  # below: subnormal results; above _EXP_HI: overflow (libm handles both)
_EXP_HI = 709.0
_EXP64_C = tuple(1.0 / math.factorial(m) for m in range(13, 1, -1)) + (1.0, 1.0)  # 1/13!, ..., 1


@njit(error_model="numpy", cache=True)
def _horner(r, coeffs):
    """coeffs[0] r^m + ... + coeffs[m] by Horner's scheme, in the type of r and coeffs (the
    Taylor polynomials of both row exps; the loop over the tuple unrolls, and the rows'
    loops still vectorise: same bits and speed as the written-out form, measured)."""
    p = coeffs[0]
    for c in coeffs[1:]:
        p = p * r + c
    return p


@njit(error_model="numpy", cache=True)
def _exp_outside(x, out, lo, hi):
    """libm's exp (expf for float32) where x is outside (lo, hi) or NaN, after the rows'
    polynomial (kept out of :func:`_exp_poly`: a call in its loop stops it from being
    vectorised; the counting loop here vectorises)."""
    bad = 0
    for a in range(x.shape[0]):
        xa = x[a]
        bad += 0 if (xa > lo and xa < hi) else 1
    if bad:
        for a in range(x.shape[0]):
            xa = x[a]
            if not (xa > lo and xa < hi):
                out[a] = math.exp(xa)
    return 0


@njit(error_model="numpy", cache=True)
def _exp_poly(x, out, tbuf, lo, hi, log2e, shift, ln2_hi, ln2_lo, coeffs):
    """The vectorised part of both row exps: with x clamped to [lo, hi], t = x log2e + shift
    (its low bits hold k = rint(x log2 e)) into tbuf, and e^r, r = x - k ln 2 (Cody-Waite:
    ln 2 = ln2_hi + ln2_lo), into out by the Taylor polynomial ``coeffs``. The constants come
    in the row's type, so the arithmetic stays in it (same bits and speed as the loops
    written out in each exp, measured)."""
    for a in range(x.shape[0]):
        v = x[a]
        v = v if v > lo else lo
        v = v if v < hi else hi
        t = v * log2e + shift
        k = t - shift
        r = (v - k * ln2_hi) - k * ln2_lo
        out[a] = _horner(r, coeffs)
        tbuf[a] = t
    return 0


@njit(error_model="numpy", cache=True)
def _exp64_row(x, out, tbuf):
    """out = e^x for a float64 row (out and tbuf: rows of the same length, not x), within
    1 ulp of libm's exp (10 % of results differ from it by 1 ulp; measured on 1e6 points
    over [-745, 710]) and about 3x faster (1.9 vs 6.2 ns an entry), as the loops vectorise.

    x = k ln2 + r with k = rint(x log2 e) (the shifter trick: the low bits of
    t = x log2 e + 1.5 2^52 hold k), |r| <= ln2 / 2, e^r by its Taylor polynomial of degree
    13 (truncation < 5e-18 relative), and 2^k put into the exponent field by adding k << 52
    to the bits of e^r. Entries outside [-708, 709] (subnormal or overflowing results) and
    NaN go to libm."""
    _exp_poly(x, out, tbuf, _EXP_LO, _EXP_HI, _LOG2E, _SHIFT, _LN2_HI, _LN2_LO, _EXP64_C)
    n = x.shape[0]
    bits = out.view(np.int64)
    tbits = tbuf.view(np.int64)
    for a in range(n):
        bits[a] = bits[a] + (tbits[a] << 52)
    _exp_outside(x, out, _EXP_LO, _EXP_HI)
    return 0


# e^x for float32 rows (see _exp32_row): float32 constants keep the arithmetic in float32
_LOG2E32 = np.float32(_LOG2E)
_LN2_HI32 = np.float32(0.693359375)  # 355/512: k * _LN2_HI32 is exact for |k| < 2^15
_LN2_LO32 = np.float32(-2.12194440e-4)  # ln 2 - _LN2_HI32
_SHIFT32 = np.float32(12582912.0)  # 1.5 * 2^23
_EXP32_LO = np.float32(-87.0)  # e^-87.3 is float32's smallest normal; e^88.7 overflows
_EXP32_HI = np.float32(88.0)
_EXP32_C = tuple(np.float32(1.0 / math.factorial(m)) for m in range(7, -1, -1))  # 1/7!, ..., 1
_I23 = np.int32(23)


@njit(error_model="numpy", cache=True)
def _exp32_row(x, out, tbuf):
    """out = e^x for a float32 row: :func:`_exp64_row`'s method in float32 arithmetic
    (shifter 1.5 2^23, Cody-Waite split of ln 2, Taylor polynomial of degree 7: truncation
    < 1e-8 relative for |r| <= ln2 / 2, under float32's half ulp), 2^k added to the
    exponent field (bits 23..30). Within 2 ulp of e^x computed in float64 and rounded (tested)."""
    _exp_poly(x, out, tbuf, _EXP32_LO, _EXP32_HI, _LOG2E32, _SHIFT32, _LN2_HI32, _LN2_LO32,
              _EXP32_C)
    n = x.shape[0]
    bits = out.view(np.int32)
    tbits = tbuf.view(np.int32)
    for a in range(n):
        bits[a] = bits[a] + (tbits[a] << _I23)  # the low mantissa bits of t hold k
    _exp_outside(x, out, _EXP32_LO, _EXP32_HI)
    return 0


def _exp_row(x, out, tbuf):
    """out = e^x for a float64 or float32 row (Numba picks the kernel by dtype at compile
    time: :func:`_exp64_row` or :func:`_exp32_row`)."""
    raise NotImplementedError("only callable from jitted code")


@overload(_exp_row)
def _exp_row_impl(x, out, tbuf):
    if x.dtype == types.float32:
        return lambda x, out, tbuf: _exp32_row(x, out, tbuf)
    if x.dtype == types.float64:
        return lambda x, out, tbuf: _exp64_row(x, out, tbuf)
    return None


@njit(error_model="numpy", cache=True)
def _exp_shifted(s, e, tbuf):
    """In place s -= max(s); then e = e^s (:func:`_exp_row`) and return sum(e), summed in
    order: the stable core of a softmax row (entries of e lie in (0, 1], one of them 1)."""
    w = s.shape[0]
    mx = -np.inf
    for j in range(w):
        if s[j] > mx:
            mx = s[j]
    for j in range(w):
        s[j] = s[j] - mx
    _exp_row(s, e, tbuf)
    tot = 0.0
    for j in range(w):
        tot += e[j]
    return tot


@njit(error_model="numpy", cache=True)
def _branch_add64(V, B, bs, residual, out):
    """out = V + bs B (residual) or bs B, float64 (MODEL.md steps 7-8), vectorisable."""
    n, d = V.shape
    for i in range(n):
        v = V[i]
        b = B[i]
        o = out[i]
        if residual:
            for a in range(d):
                o[a] = v[a] + bs * b[a]
        else:
            for a in range(d):
                o[a] = bs * b[a]
    return 0


@njit(error_model="numpy", cache=True)
def _gelu_row64(u, b, y, work, ework):
    """In place u += b, then y = GELU(u) = u (1 + tanh z) / 2 for one float64 (or float32) row, with
    tanh z = 1 - 2 / (e^(2z) + 1) (exp is cheaper than tanh; absolute error ~1e-16, a
    relative error ~2e-16 of y) and e^(2z) from :func:`_exp64_row` (within 1 ulp of libm's),
    all in loops the compiler vectorises (with the float64 softmax row: the forward pass of
    one sequence at (L, d, H, n) = (2, 64, 4, 128) took 2.0 ms instead of 2.7 ms with libm's
    exp, entry by entry; the vectorised exp took it further, see benchmarks/README.md)."""
    f = u.shape[0]
    k = math.sqrt(2.0 / math.pi)
    for a in range(f):
        ua = u[a] + b[a]
        u[a] = ua
        work[a] = 2.0 * (k * (ua + 0.044715 * ua * ua * ua))
    _exp_row(work, ework, y)  # y: scratch until the last loop
    for a in range(f):
        ua = u[a]
        y[a] = 0.5 * ua * (1.0 + (1.0 - 2.0 / (ework[a] + 1.0)))
    return 0


@njit(error_model="numpy", cache=True)  # u = 0 gives inf/nan in the first loop (fixed below)
def _act_grad_row(u, y, kind, out):
    """out[a] = psi'(u[a]) for a row, given y = psi(u) from the forward pass (float64, or
    float32 when training in float32; the reverse pass runs in the same dtype).

    tanh is the costly part, and y already holds it: gelu y = u (1 + t) / 2 gives
    t = 2 y / u - 1 (absolute error ~1e-16, as |y| <= |u|), tanh y = t gives 1 - y^2. The
    activation is chosen once per row and the GELU's loop has no branches or calls, so the
    compiler vectorises it (a 128 x 256 block: 0.02 ms instead of 0.7 ms entry by entry)."""
    f = u.shape[0]
    # below tiny, y = psi(u) ~ u / 2 may be subnormal (few significant bits) and psi'(u) is
    # 1/2 to the dtype's precision: float64 1e-150, float32 1e-30 (its normals end at 1e-38)
    tiny = 1e-150 if u.itemsize == 8 else 1e-30
    if kind == 0:
        k = math.sqrt(2.0 / math.pi)
        for a in range(f):
            ua = u[a]
            t = 2.0 * y[a] / ua - 1.0
            out[a] = 0.5 * (1.0 + t) + 0.5 * ua * (1.0 - t * t) * k * (1.0 + 3.0 * 0.044715 * ua * ua)
        for a in range(f):
            if abs(u[a]) < tiny:
                # y may be subnormal (or u = 0: 0/0 above); psi'(u) = 1/2 + O(u) rounds to
                # exactly 0.5 here (tested through vjp). A call in this loop would stop the
                # loop above from being vectorised (measured 13x).
                out[a] = 0.5
    elif kind == 1:
        for a in range(f):
            out[a] = 1.0 if u[a] > 0.0 else 0.0
    else:
        for a in range(f):
            out[a] = 1.0 - y[a] * y[a]
    return 0


@njit(error_model="numpy", cache=True)
def _key_range(i, n, mask, window):
    """Keys j visible from query i: [jlo, jhi]."""
    if mask == 1:
        return 0, n - 1
    if mask == 2:
        return max(0, i - window + 1), i
    return 0, i


@njit(error_model="numpy", cache=True)
def _block_keys(i0, i1, n, mask, window):
    """[j0, j1]: the keys that some query of the block i0..i1-1 sees (the masks' visible
    ranges move right with the query: the first query's start, the last one's end)."""
    j0, _ = _key_range(i0, n, mask, window)
    _, j1 = _key_range(i1 - 1, n, mask, window)
    return j0, j1


@njit(error_model="numpy", cache=True)
def _rotate(M, cos_t, sin_t, sign, code, out):
    """Rotate pair m of row i by sign * i * theta_m (pairs (2m, 2m+1)); out may alias M."""
    n = M.shape[0]
    half = cos_t.shape[1]
    for i in range(n):
        for m in range(half):
            c = cos_t[i, m]
            s = sign * sin_t[i, m]
            x0 = M[i, 2 * m]
            x1 = M[i, 2 * m + 1]
            out[i, 2 * m] = round_scalar(x0 * c - x1 * s, code)
            out[i, 2 * m + 1] = round_scalar(x0 * s + x1 * c, code)
    return 0


@njit(error_model="numpy", cache=True)
def _rotate_cot(M, cos_t, sin_t, lo, hi):
    """In place: rows lo..hi of a (n, B, dk) cotangent multiplied by R_i^T (un-rotate)."""
    B = M.shape[1]
    half = cos_t.shape[1]
    for i in range(lo, hi + 1):
        for b in range(B):
            for m in range(half):
                c = cos_t[i, m]
                s = sin_t[i, m]
                y0 = M[i, b, 2 * m]
                y1 = M[i, b, 2 * m + 1]
                M[i, b, 2 * m] = y0 * c + y1 * s
                M[i, b, 2 * m + 1] = -y0 * s + y1 * c
    return 0


@njit(error_model="numpy", cache=True)
def _softmax_head(Qr, Kr, slope, iflags, fvals, code, A):
    """A = masked row softmax of MODEL.md step 4 logits (stable: the row max is subtracted).

    The dot products Qr Kr^T come from BLAS in query blocks that meet only the keys they
    can see; the scale, ALiBi and sink terms, the rounding and the softmax are per entry."""
    n, dk = Qr.shape
    pos, mask, window = iflags[2], iflags[3], iflags[4]
    scale, sink = fvals[0], fvals[1]
    QB = 128
    work = np.empty(n, Qr.dtype)
    for i0 in range(0, n, QB):
        i1 = min(n, i0 + QB)
        j0, j1 = _block_keys(i0, i1, n, mask, window)
        S = np.dot(Qr[i0:i1], Kr[j0:j1 + 1].T)
        for i in range(i0, i1):
            row = S[i - i0]
            jlo, jhi = _key_range(i, n, mask, window)
            if code == 0:
                _softmax_row64(row[jlo - j0:jhi + 1 - j0], i, jlo, scale, pos == 2, slope, sink,
                               A[i], work)
                continue
            mx = -np.inf
            for j in range(jlo, jhi + 1):
                s = round_scalar(scale * row[j - j0], code)
                if pos == 2:  # alibi
                    s = round_scalar(s - slope * abs(i - j), code)
                if j == 0 and i > 0 and sink != 0.0:
                    s = round_scalar(s + sink, code)
                row[j - j0] = s
                if s > mx:
                    mx = s
            tot = 0.0
            for j in range(jlo, jhi + 1):
                e = round_scalar(math.exp(round_scalar(row[j - j0] - mx, code)), code)
                row[j - j0] = e
                tot += e
            tot = round_scalar(tot, code)
            for j in range(n):
                A[i, j] = 0.0
            for j in range(jlo, jhi + 1):
                A[i, j] = round_scalar(row[j - j0] / tot, code)
    return 0


@njit(error_model="numpy", cache=True)
def _softmax_row64(s, i, jlo, scale, alibi, slope, sink, out, work):
    """Row i of the attention map in float64 from its visible raw logits s (keys jlo..,
    overwritten; work: scratch of at least the same length): the operations of the
    per-entry path of :func:`_softmax_head` in the same order, with e^x from
    :func:`_exp64_row` (within 1 ulp of libm's), in loops the compiler vectorises."""
    w = s.shape[0]
    for j in range(w):
        s[j] = scale * s[j]
    if alibi:
        for j in range(w):
            s[j] = s[j] - slope * abs(i - (jlo + j))
    if jlo == 0 and i > 0 and sink != 0.0:
        s[0] = s[0] + sink
    e = out[jlo:jlo + w]
    tot = _exp_shifted(s, e, work[:w])
    out[:jlo] = 0.0
    out[jlo + w:] = 0.0
    for j in range(w):
        e[j] = e[j] / tot
    return 0


@njit(error_model="numpy", cache=True)
def head_logits(Qr, Kr, slope, iflags, fvals, S):
    """Logits of one head from already rotated q/k rows; masked entries are -inf."""
    n, dk = Qr.shape
    pos, mask, window = iflags[2], iflags[3], iflags[4]
    scale, sink = fvals[0], fvals[1]
    for i in range(n):
        jlo, jhi = _key_range(i, n, mask, window)
        for j in range(n):
            S[i, j] = -np.inf
        for j in range(jlo, jhi + 1):
            s = 0.0
            for a in range(dk):
                s += Qr[i, a] * Kr[j, a]
            s = scale * s
            if pos == 2:
                s = s - slope * abs(i - j)
            if j == 0 and i > 0:
                s = s + sink
            S[i, j] = s
    return 0


@njit(error_model="numpy", cache=True)
def rotate_rows(M, cos_t, sin_t, out):
    """out = rows of M rotated by RoPE (row i by i * theta_m), float64."""
    return _rotate(M, cos_t, sin_t, 1.0, 0, out)


# ----------------------------------------------------------------------------------------
# Forward
# ----------------------------------------------------------------------------------------


@njit(error_model="numpy", cache=True)
def _qkv_weights(WQ, WK, WV, l):
    """(d, 3 H dk): the columns [W_Q^(l,h) for h] + [W_K^(l,h)] + [W_V^(l,h)], so that one
    product gives every head's q, k and v."""
    H, d, dk = WQ.shape[1], WQ.shape[2], WQ.shape[3]
    W = np.empty((d, 3 * H * dk), WQ.dtype)
    for h in range(H):
        for c in range(d):
            for a in range(dk):
                W[c, h * dk + a] = WQ[l, h, c, a]
                W[c, (H + h) * dk + a] = WK[l, h, c, a]
                W[c, (2 * H + h) * dk + a] = WV[l, h, c, a]
    return W


@njit(error_model="numpy", cache=True)
def _head_forward(l, h, qkv, A_in, cos_t, sin_t, slopes, iflags, fvals, Qr, Kr, Val, A, Oh):
    """One head of layer l from the (already rounded) projections qkv (n, 3 H dk): rotated
    q and k, values, the attention map and the head output A Vc (MODEL.md steps 3-6)."""
    H, dk = Qr.shape[1], Qr.shape[3]
    pos, attention, code = iflags[2], iflags[5], iflags[9]
    c0 = fvals[2]
    q = np.ascontiguousarray(qkv[:, h * dk:(h + 1) * dk])
    k = np.ascontiguousarray(qkv[:, (H + h) * dk:(H + h + 1) * dk])
    v = np.ascontiguousarray(qkv[:, (2 * H + h) * dk:(2 * H + h + 1) * dk])
    if pos == 1:
        _rotate(q, cos_t, sin_t, 1.0, code, Qr[l, h])
        _rotate(k, cos_t, sin_t, 1.0, code, Kr[l, h])
    else:
        Qr[l, h] = q
        Kr[l, h] = k
    Val[l, h] = v
    if attention == 1:
        A[l, h] = A_in[l, h]
    else:
        _softmax_head(Qr[l, h], Kr[l, h], slopes[h], iflags, fvals, code, A[l, h])
    for a in range(dk):
        v[0, a] = round_scalar(c0 * v[0, a], code)  # the sink value scale (MODEL.md step 5)
    if code != 0:  # emulated formats: one product over every key, as tests/oracles.py sums
        oh = np.dot(A[l, h], v)
        round_array(oh, code)
        Oh[l, h] = oh
        return 0
    # query blocks meet only the keys they see: the masked triangle is skipped (large
    # benchmark: 0.25 -> 0.19 s for the heads of the forward pass)
    n = v.shape[0]
    mask, window = iflags[3], iflags[4]
    for i0 in range(0, n, 128):
        i1 = min(n, i0 + 128)
        j0, j1 = _block_keys(i0, i1, n, mask, window)
        _gemm(False, False, 1.0, A[l, h, i0:i1, j0:j1 + 1], v[j0:j1 + 1], 0.0, Oh[l, h, i0:i1])
    return 0


@njit(error_model="numpy", cache=True, nogil=True)
def forward(WQ, WK, WV, WO, g1, g2, W1, b1, W2, b2, g3, X, A_in, cos_t, sin_t, slopes,
            iflags, fvals,
            hidden, xh1, r1, U1, Qr, Kr, Val, A, Oh, Z, xh2, r2, U2, Hpre, Hact, xh3, r3, out):
    """Forward pass of MODEL.md, saving everything the reverse pass needs.

    X is the stack input (sinusoidal table already added and rounded by the caller).
    A_in (L, H, n, n) is read only with attention="prescribed".
    Each layer is :func:`attn_in`, :func:`heads_forward` over every head, :func:`layer_out`;
    sims/stack.py calls the same three with the heads on threads (same bits).
    """
    L, H, d, dk = WQ.shape
    n = X.shape[0]
    hidden[0] = X
    qkv = np.empty((n, 3 * H * dk), X.dtype)
    for l in range(L):
        attn_in(WQ, WK, WV, g1, l, iflags, fvals, hidden, xh1, r1, U1, qkv)
        heads_forward(l, qkv, A_in, cos_t, sin_t, slopes, iflags, fvals, Qr, Kr, Val, A, Oh, 0, H)
        layer_out(WO, g2, W1, b1, W2, b2, l, iflags, fvals, hidden, Oh, Z, xh2, r2, U2, Hpre,
                  Hact)
    return forward_end(g3, iflags, fvals, hidden, xh3, r3, out)


@njit(error_model="numpy", cache=True)
def attn_in(WQ, WK, WV, g1, l, iflags, fvals, hidden, xh1, r1, U1, qkv):
    """Layer l up to the projections: U1 = N1(hidden[l]), qkv = U1 [W_Q | W_K | W_V] of
    every head (rounded), into ``qkv`` (n, 3 H dk)."""
    norm, code, eps = iflags[0], iflags[9], fvals[4]
    _norm_rows(hidden[l], g1[l], norm, eps, code, xh1[l], r1[l], U1[l])
    np.dot(U1[l], _qkv_weights(WQ, WK, WV, l), qkv)
    round_array(qkv, code)
    return 0


@njit(error_model="numpy", cache=True, nogil=True)
def heads_forward(l, qkv, A_in, cos_t, sin_t, slopes, iflags, fvals, Qr, Kr, Val, A, Oh, h0, h1):
    """Heads h0..h1-1 of layer l (:func:`_head_forward`); heads are independent."""
    for h in range(h0, h1):
        _head_forward(l, h, qkv, A_in, cos_t, sin_t, slopes, iflags, fvals, Qr, Kr, Val, A, Oh)
    return 0


@njit(error_model="numpy", cache=True)
def layer_out(WO, g2, W1, b1, W2, b2, l, iflags, fvals, hidden, Oh, Z, xh2, r2, U2, Hpre, Hact):
    """Layer l after its heads: Z = V + bs sum_h Oh_h W_O^(l,h), then the MLP block into
    hidden[l + 1] (MODEL.md steps 6-8)."""
    H, n, dk = Oh.shape[1], Oh.shape[2], Oh.shape[3]
    d = WO.shape[3]
    f = W1.shape[2]
    norm, residual, mlp, act, code = iflags[0], iflags[6], iflags[7], iflags[8], iflags[9]
    eps = fvals[4]
    bs = fvals[3] if residual else 1.0  # MODEL.md steps 7-8: the branch scale multiplies branches only
    V = hidden[l]
    Ocat = np.empty((n, H * dk), V.dtype)
    for h in range(H):
        Ocat[:, h * dk:(h + 1) * dk] = Oh[l, h]
    O = np.dot(Ocat, WO[l].reshape((H * dk, d)))  # sum over heads of oh W_O^(l,h)
    round_array(O, code)
    if code == 0:
        _branch_add64(V, O, bs, residual, Z[l])
    else:
        for i in range(n):
            for a in range(d):
                o = round_scalar(bs * O[i, a], code)
                Z[l, i, a] = round_scalar(V[i, a] + o, code) if residual else o
    if not mlp:
        hidden[l + 1] = Z[l]
        return 0
    ework = np.empty(f, V.dtype)
    ework2 = np.empty(f, V.dtype)
    _norm_rows(Z[l], g2[l], norm, eps, code, xh2[l], r2[l], U2[l])
    hp = np.dot(U2[l], W1[l])
    for i in range(n):
        if code == 0 and act == 0:
            _gelu_row64(hp[i], b1[l], Hact[l, i], ework, ework2)
            continue
        for a in range(f):
            hp[i, a] = round_scalar(hp[i, a] + b1[l, a], code)
            Hact[l, i, a] = round_scalar(_act(hp[i, a], act), code)
    Hpre[l] = hp
    M = np.dot(Hact[l], W2[l])
    if code == 0:
        for i in range(n):
            m = M[i]
            for a in range(d):
                m[a] = m[a] + b2[l, a]
        _branch_add64(Z[l], M, bs, residual, hidden[l + 1])
    else:
        for i in range(n):
            for a in range(d):
                mo = round_scalar(bs * round_scalar(M[i, a] + b2[l, a], code), code)
                hidden[l + 1, i, a] = round_scalar(Z[l, i, a] + mo, code) if residual else mo
    return 0


@njit(error_model="numpy", cache=True)
def forward_end(g3, iflags, fvals, hidden, xh3, r3, out):
    """out = N3(hidden[L]); status 1 if it is not finite (possible below float64)."""
    L = hidden.shape[0] - 1
    n, d = out.shape
    _norm_rows(hidden[L], g3, iflags[1], fvals[4], iflags[9], xh3, r3, out)
    for i in range(n):
        for a in range(d):
            if not math.isfinite(out[i, a]):
                return 1  # overflow (possible below float64): the caller reports it
    return 0


# ----------------------------------------------------------------------------------------
# Reverse pass
# ----------------------------------------------------------------------------------------


@njit(error_model="numpy", cache=True)
def _attn_live_bwd(Qr, Kr, Vc, A, Oh, dOh, scale, mask, window, lo, hi, T, have_T, dQ, dKb):
    """Softmax part of one head's reverse pass, for all B cotangents at once.

    With dA_ij = dO_i . Vc_j and r_i = dO_i . O_i (= sum_j A_ij dA_ij, as O_i = sum_j A_ij Vc_j),
    the softmax VJP is dS_ij = s A_ij (dA_ij - r_i); then dQr_i = sum_j dS_ij Kr_j and
    dKr_j = sum_i dS_ij Qr_i. Accumulates dQ (n, B, dk) and dKb (B, n, dk) for query rows
    lo..hi.

    With more cotangents than head dimensions (B > dk, a Jacobian) dQ never forms dS:
    dQr_i = s (M_i dO_i - r_i (A Kr)_i) with the (dk x dk) matrix M_i = sum_j A_ij Kr_j Vc_j^T,
    which does not depend on the cotangent, so one product A [Kr (x) Vc | Kr] serves all B
    cotangents (n^2 dk^2 work instead of n^2 B dk). With ``have_T`` its rows come ready in T
    (:func:`m_tables`, computed once for every chunk of a Jacobian's cotangents); without,
    they are computed here when B > dk. Otherwise (training: B = 1) dQ = dS Kr.
    dK needs dS: query rows go in blocks of QB and keys in tiles of KB, the B cotangents of a
    block are the rows of one matrix (dS = dO Vc^T is one product), a block meets only the
    keys it can see, and dK is kept (B, n, dk) so that each tile lands in contiguous rows.
    """
    n, dk = Qr.shape
    B = dOh.shape[1]
    R = np.empty((n, B), dOh.dtype)
    for i in range(lo, hi + 1):
        for b in range(B):
            ri = 0.0
            for a in range(dk):
                ri += dOh[i, b, a] * Oh[i, a]
            R[i, b] = ri
    via_m = have_T or B > dk
    if via_m:
        if not have_T:
            T = np.empty((n, dk * dk + dk), dOh.dtype)
            _m_rows(Kr, Vc, A, mask, window, lo, hi, T)
        _dq_via_m(T, dOh, R, scale, lo, hi, dQ)
    # ---- dK (and dQ when not via_m) through dS, in tiles of QB queries x KB keys: with many
    # cotangents a tile of dS (QB B x KB) stays in cache between its three passes (measured
    # at d_head 8, B 32, two threads: 33 ms per head instead of 44; at d_head 16, B 16, 16
    # queries instead of 32: a 16-cotangent chunk of the small benchmark 5 % faster, while
    # d_head 8 lost 2-7 % with 16); one cotangent (training) wants larger blocks
    QB = (16 if dk >= 16 else 32) if B > 8 else 128
    KB = 128 if B > 8 else n
    dSbuf = np.empty(QB * B * min(KB, n), dOh.dtype)  # one tile of dS, then of G
    Gbuf = np.empty(B * min(KB, n) * dk, dOh.dtype)
    for i0 in range(lo, hi + 1, QB):
        i1 = min(hi + 1, i0 + QB)
        mq = i1 - i0
        j0, jend = _block_keys(i0, i1, n, mask, window)
        dO2 = dOh[i0:i1].reshape((mq * B, dk))
        for k0 in range(j0, jend + 1, KB):
            k1 = min(jend + 1, k0 + KB)
            w = k1 - k0
            dS = dSbuf[:mq * B * w].reshape((mq * B, w))
            _gemm(False, True, 1.0, dO2, Vc[k0:k1], 0.0, dS)  # dA, rows (query, cotangent)
            for i in range(mq):
                arow = A[i0 + i, k0:k1]
                for b in range(B):
                    rb = R[i0 + i, b]
                    srow = dS[i * B + b]
                    for j in range(w):
                        srow[j] = scale * arow[j] * (srow[j] - rb)
            if not via_m:
                dQ[i0:i1] += np.dot(dS, Kr[k0:k1]).reshape((mq, B, dk))
            # dKr_j^(b) = sum_i dS[(i, b), j] Qr_i: contract the query index of all B at once
            G2 = Gbuf[:B * w * dk].reshape((B * w, dk))
            _gemm(True, False, 1.0, dS.reshape((mq, B * w)), Qr[i0:i1], 0.0, G2)
            G = G2.reshape((B, w, dk))
            for b in range(B):
                dst = dKb[b, k0:k1]
                src = G[b]
                for j in range(w):
                    for a in range(dk):
                        dst[j, a] += src[j, a]
    return 0


@njit(error_model="numpy", cache=True)
def _sink_scaled(Val, c0):
    """A copy of a head's values with row 0 scaled by the sink value scale c0 (MODEL.md
    step 5: the values the forward pass multiplied by A)."""
    vc = Val.copy()
    for a in range(vc.shape[1]):
        vc[0, a] *= c0
    return vc


@njit(error_model="numpy", cache=True)
def _m_rows(Kr, Vc, A, mask, window, lo, hi, T):
    """T[i] = [M_i | (A Kr)_i] = A_i P for query rows i = lo..hi (see _attn_live_bwd), with
    P[j] = [Vc_j (x) Kr_j (c-major), Kr_j], in query blocks that meet only the keys they see."""
    n, dk = Kr.shape
    W = dk * dk + dk
    jbot, jtop = _block_keys(lo, hi + 1, n, mask, window)
    P = np.empty((n, W), Kr.dtype)
    for j in range(jbot, jtop + 1):
        for c in range(dk):
            for a in range(dk):
                P[j, c * dk + a] = Vc[j, c] * Kr[j, a]
        for a in range(dk):
            P[j, dk * dk + a] = Kr[j, a]
    MB = 128
    for i0 in range(lo, hi + 1, MB):
        i1 = min(hi + 1, i0 + MB)
        j0, j1 = _block_keys(i0, i1, n, mask, window)
        _gemm(False, False, 1.0, A[i0:i1, j0:j1 + 1], P[j0:j1 + 1], 0.0, T[i0:i1])
    return 0


@njit(error_model="numpy", cache=True)
def _dq_via_m(T, dOh, R, scale, lo, hi, dQ):
    """dQ[i] += s (M_i dO_i - r_i (A Kr)_i) for rows lo..hi, [M_i | (A Kr)_i] = T[i].

    The B cotangents of a row are summed side by side (c outer, b inner): independent sums
    overlap in the pipeline (one cotangent at a time waits on each add: 0.74 -> 0.54 ms for
    1024 rows, d_head 16, B 16). Each entry's operations and order are unchanged."""
    B, dk = dOh.shape[1], dOh.shape[2]
    acc = np.empty((B, dk), dOh.dtype)
    for i in range(lo, hi + 1):
        mi = T[i]
        ak = mi[dk * dk:]
        g = dOh[i]
        for b in range(B):
            rb = R[i, b]
            ab = acc[b]
            for a in range(dk):
                ab[a] = -rb * ak[a]
        for c in range(dk):
            mc = mi[c * dk:(c + 1) * dk]
            for b in range(B):
                gc = g[b, c]
                ab = acc[b]
                for a in range(dk):
                    ab[a] += mc[a] * gc
        q = dQ[i]
        for b in range(B):
            qb = q[b]
            ab = acc[b]
            for a in range(dk):
                qb[a] += scale * ab[a]
    return 0


@njit(error_model="numpy", cache=True)
def _key_span(lo, hi, n, mask, window):
    """(klo, khi): the keys that query rows lo..hi see, widened to contain lo..hi (the rows
    that carry a cotangent one layer down: the residual path keeps lo..hi)."""
    if mask == 1:
        klo, khi = 0, n - 1
    elif mask == 2:
        klo, khi = max(0, lo - window + 1), hi
    else:
        klo, khi = 0, hi
    return min(klo, lo), max(khi, hi)


@njit(error_model="numpy", cache=True)
def _active_rows(dOut):
    """(lo, hi): the first and last rows where the cotangents dOut (n, B, d) are not all
    zero; (n, -1) when every entry is zero."""
    n, B, d = dOut.shape
    lo = n
    hi = -1
    for i in range(n):
        for b in range(B):
            for a in range(d):
                if dOut[i, b, a] != 0.0:
                    if i < lo:
                        lo = i
                    hi = i
    return lo, hi


@njit(error_model="numpy", cache=True)
def query_spans(dOut, L, mask, window):
    """(L, 2): the query rows [lo, hi] that carry a cotangent in each layer of the reverse
    pass of dOut (n, B, d) (:func:`backward`'s ranges); (n, -1) rows when dOut is zero."""
    n = dOut.shape[0]
    spans = np.empty((L, 2), np.int64)
    lo, hi = _active_rows(dOut)
    for l in range(L - 1, -1, -1):
        spans[l, 0] = lo
        spans[l, 1] = hi
        if hi >= 0:
            lo, hi = _key_span(lo, hi, n, mask, window)
    return spans


# The M tables of every head (L H n (d_k^2 + d_k) numbers) are kept for a whole Jacobian
# when they fit in this many bytes (large benchmark: 57 MB); beyond it each chunk recomputes
# the rows it needs (same values).
M_TABLE_BYTES = 512 * 2 ** 20


@njit(error_model="numpy", cache=True)
def use_m_tables(B, n, L, H, dk, live, itemsize):
    """Whether a reverse pass of B cotangents computes dQ from M tables shared by all its
    chunks: live softmax attention, more cotangents than head dimensions (then the tables
    cost less than forming dS K per cotangent), and within M_TABLE_BYTES."""
    return live and B > dk and L * H * n * (dk * dk + dk) * itemsize <= M_TABLE_BYTES


@njit(error_model="numpy", cache=True)
def _has_tables(T, L, dk):
    """Whether T holds M tables for L layers of heads of width dk (not the placeholder)."""
    return T.shape[0] == L and T.shape[3] == dk * dk + dk  # the placeholder has width 1


@njit(error_model="numpy", cache=True)
def m_table_buffer(dOut, L, H, dk, iflags, frozen):
    """(T, spans) for a reverse pass of the cotangents dOut (n, B, d): when it uses M tables
    (:func:`use_m_tables`), an unfilled (L, H, n, d_k^2 + d_k) array and the layers' query
    spans (:func:`query_spans`) for :func:`m_tables`; otherwise a (1, 1, 1, 1) placeholder,
    which m_tables leaves alone and :func:`backward` reads as "no tables"."""
    n, B = dOut.shape[0], dOut.shape[1]
    if use_m_tables(B, n, L, H, dk, iflags[5] == 0 and not frozen, dOut.itemsize):
        return (np.empty((L, H, n, dk * dk + dk), dOut.dtype),
                query_spans(dOut, L, iflags[3], iflags[4]))
    return np.zeros((1, 1, 1, 1), dOut.dtype), np.zeros((L, 2), np.int64)


@njit(error_model="numpy", cache=True, nogil=True)
def m_tables(Kr, Val, A, iflags, fvals, spans, T, t0, t1):
    """T[l, h] (n, d_k^2 + d_k): the rows of :func:`_m_rows` for the query span of layer l
    (``spans``, :func:`query_spans`; other rows are left unset), for the heads t = t0..t1-1
    in the order t = l H + h. Values as the reverse pass would compute them itself; nothing
    to do for the placeholder of :func:`m_table_buffer`."""
    L, H, _, dk = Kr.shape
    if not _has_tables(T, L, dk):
        return 0
    mask, window = iflags[3], iflags[4]
    c0 = fvals[2]
    for t in range(t0, t1):
        l, h = t // H, t % H
        if spans[l, 1] < 0:
            continue
        _m_rows(Kr[l, h], _sink_scaled(Val[l, h], c0), A[l, h], mask, window, spans[l, 0],
                spans[l, 1], T[l, h])
    return 0


@njit(error_model="numpy", cache=True)
def _rows2d(M, lo, hi):
    """Rows lo..hi of a (n, B, w) array as a ((hi-lo+1)*B, w) matrix view."""
    return M[lo:hi + 1].reshape(((hi - lo + 1) * M.shape[1], M.shape[2]))


@njit(error_model="numpy", cache=True)
def _values_bwd(A, dOh, lo, hi, mask, window, dVc):
    """dVc += A[lo:hi+1]^T dOh[lo:hi+1] over the visible keys only, in query blocks.

    A block of queries [i0, i1) meets only keys in [key_lo(i0), key_hi(i1-1)], so each block
    is one product with that part of A, accumulated in place: the masked triangle is skipped."""
    n = A.shape[0]
    B, dk = dOh.shape[1], dOh.shape[2]
    dV2 = dVc.reshape((n, B * dk))
    QB = 64  # 128 computes more of the masked triangle (small benchmark chunk: 4 % slower)
    for i0 in range(lo, hi + 1, QB):
        i1 = min(hi + 1, i0 + QB)
        j0, j1 = _block_keys(i0, i1, n, mask, window)
        j1 += 1
        _gemm(True, False, 1.0, A[i0:i1, j0:j1], dOh[i0:i1].reshape((i1 - i0, B * dk)), 1.0,
              dV2[j0:j1])
    return 0


@njit(error_model="numpy", cache=True)
def _stack_weights(WQ, WK, WV, l):
    """(3 H dk, d): rows [W_Q^(l,h)^T for h] + [W_K^(l,h)^T] + [W_V^(l,h)^T], so that one
    product maps the concatenated q/k/v cotangents of every head back to U1."""
    H, d, dk = WQ.shape[1], WQ.shape[2], WQ.shape[3]
    W = np.empty((3 * H * dk, d), WQ.dtype)
    for h in range(H):
        for a in range(dk):
            for c in range(d):
                W[h * dk + a, c] = WQ[l, h, c, a]
                W[(H + h) * dk + a, c] = WK[l, h, c, a]
                W[(2 * H + h) * dk + a, c] = WV[l, h, c, a]
    return W


@njit(error_model="numpy", cache=True)
def backward(WQ, WK, WV, WO, g1, g2, W1, b1, W2, b2, g3, cos_t, sin_t, iflags, fvals,
             hidden, xh1, r1, U1, Qr, Kr, Val, A, Oh, Z, xh2, r2, U2, Hpre, Hact, xh3, r3,
             dOut, frozen, want_params, T,
             dX, dWQ, dWK, dWV, dWO, dg1, dg2, dW1, db1, dW2, db2, dg3):
    """Reverse pass for B output cotangents dOut (n, B, d): fills dX (n, B, d).

    T: the M tables of :func:`m_tables` (L, H, n, d_k^2 + d_k), or a (1, 1, 1, 1) placeholder
    when there are none.

    With ``frozen`` the attention maps are constants (no path through the softmax).
    With ``want_params`` (B must be 1) the parameter cotangents are accumulated too.
    Only the rows where the cotangent can be non-zero are touched: the active range starts
    at the rows where dOut is non-zero and widens, layer by layer, to the keys those rows see.
    Work arrays are allocated once per call and reused by every layer and head (fresh large
    allocations per layer cost more in page faults than the arithmetic they hold).
    """
    L, H, d, dk = WQ.shape
    n = dOut.shape[0]
    B = dOut.shape[1]
    f = W1.shape[2]
    Hd = H * dk
    norm, fnorm, pos, mask, window = iflags[0], iflags[1], iflags[2], iflags[3], iflags[4]
    attention, residual, mlp, act = iflags[5], iflags[6], iflags[7], iflags[8]
    scale, c0 = fvals[0], fvals[2]
    bs = fvals[3] if residual else 1.0  # as in forward
    live = attention == 0 and not frozen

    lo, hi = _active_rows(dOut)
    have_T = _has_tables(T, L, dk)
    if hi < 0:
        return 0  # zero cotangent: dX stays zero
    # work arrays, reused: rows outside the active range are never read
    ft = dOut.dtype  # float64, or float32 (training in float32)
    dV = np.zeros((n, B, d), ft)
    dZ = np.empty((n, B, d), ft)
    dU = np.empty((n, B, d), ft)
    TB = max(1, 256 // B)  # tokens per MLP block (about 256 rows of B cotangents)
    dHp = np.empty((TB * B, f), ft)
    dOall = np.empty((n, B, Hd), ft)
    dOh = np.empty((n, B, dk), ft)
    dVc = np.empty((n, B, dk), ft)
    dQ = np.empty((n, B, dk), ft)
    dK = np.empty((n, B, dk), ft)
    dKb = np.empty((B, n, dk), ft)  # _attn_live_bwd's key-cotangent layout
    dQKV = np.empty((n, B, 3 * Hd), ft)
    gact = np.empty(f, ft)
    _norm_rows_bwd(dOut, g3, fnorm, xh3, r3, lo, hi, dV, dg3, want_params)

    for l in range(L - 1, -1, -1):
        m = hi - lo + 1
        # ---- MLP block: V' = Z + bs * psi(N2(Z)) ----
        if mlp:
            # dM = bs dV: formed for the parameter cotangents; otherwise bs rides on the
            # product (alpha), which saves a copy of the active rows
            dM = _rows2d(dV, lo, hi)
            alpha = bs
            if want_params:
                dM = dM.copy()
                dM *= bs  # in place: keeps the dtype (a float64 scalar would widen float32)
                alpha = 1.0
            for t0 in range(lo, hi + 1, TB):  # token blocks: dH of a block stays in cache
                t1 = min(hi + 1, t0 + TB)
                q0, q1 = (t0 - lo) * B, (t1 - lo) * B
                dH = dHp[:q1 - q0]
                _gemm(False, True, alpha, dM[q0:q1], W2[l], 0.0, dH)
                for i in range(t0, t1):
                    _act_grad_row(Hpre[l, i], Hact[l, i], act, gact)
                    for b in range(B):
                        row = (i - t0) * B + b
                        for a in range(f):
                            dH[row, a] *= gact[a]
                np.dot(dH, W1[l].T, _rows2d(dU, t0, t1 - 1))
                if want_params:  # B == 1: the rows of dH are tokens
                    dW1[l] += np.dot(U2[l, t0:t1].T, dH)
                    for row in range(q1 - q0):
                        for a in range(f):
                            db1[l, a] += dH[row, a]
            if want_params:
                dW2[l] += np.dot(Hact[l, lo:hi + 1].T, dM)
                for i in range(m):
                    for a in range(d):
                        db2[l, a] += dM[i, a]
            _norm_rows_bwd(dU, g2[l], norm, xh2[l], r2[l], lo, hi, dZ, dg2[l], want_params)
            if residual:
                dZ[lo:hi + 1] += dV[lo:hi + 1]
        else:
            dZ[lo:hi + 1] = dV[lo:hi + 1]

        # ---- attention block: Z = V + bs * sum_h A Vc W_O ----
        klo, khi = _key_span(lo, hi, n, mask, window)
        dO2 = _rows2d(dZ, lo, hi).copy()  # (m*B, d)
        dO2 *= bs
        # every head's dO at once: W_O^(l) is (H, dk, d) = (H dk, d) contiguous
        np.dot(dO2, WO[l].reshape((Hd, d)).T, _rows2d(dOall, lo, hi))
        if want_params:
            dWOl = np.dot(Oh[l].transpose(1, 0, 2)[lo:hi + 1].copy().reshape((m, Hd)).T, dO2)
            for h in range(H):
                for a in range(dk):
                    for c in range(d):
                        dWO[l, h, a, c] += dWOl[h * dk + a, c]
        dQKV[klo:khi + 1] = 0.0
        for h in range(H):
            for i in range(lo, hi + 1):
                for b in range(B):
                    src = dOall[i, b, h * dk:(h + 1) * dk]
                    dst = dOh[i, b]
                    for a in range(dk):
                        dst[a] = src[a]
            # values: dVc = A^T dOh, every cotangent in one product per query block
            dVc[klo:khi + 1] = 0.0
            _values_bwd(A[l, h], dOh, lo, hi, mask, window, dVc)
            for b in range(B):
                for a in range(dk):
                    dVc[0, b, a] *= c0
            if live:
                dQ[klo:khi + 1] = 0.0
                dKb[:, klo:khi + 1] = 0.0
                _attn_live_bwd(Qr[l, h], Kr[l, h], _sink_scaled(Val[l, h], c0), A[l, h], Oh[l, h], dOh, scale, mask,
                               window, lo, hi, T[l, h] if have_T else T[0, 0], have_T, dQ, dKb)
                for i in range(klo, khi + 1):
                    for b in range(B):
                        for a in range(dk):
                            dK[i, b, a] = dKb[b, i, a]
                if pos == 1:
                    _rotate_cot(dQ, cos_t, sin_t, lo, hi)
                    _rotate_cot(dK, cos_t, sin_t, klo, khi)
                for i in range(klo, khi + 1):
                    for b in range(B):
                        row = dQKV[i, b]
                        q = row[h * dk:(h + 1) * dk]
                        k = row[(H + h) * dk:(H + h + 1) * dk]
                        dq = dQ[i, b]
                        dk_ = dK[i, b]
                        for a in range(dk):
                            q[a] = dq[a]
                            k[a] = dk_[a]
            for i in range(klo, khi + 1):
                for b in range(B):
                    v = dQKV[i, b, (2 * H + h) * dk:(2 * H + h + 1) * dk]
                    dv = dVc[i, b]
                    for a in range(dk):
                        v[a] = dv[a]
        # back to the normed input U1: one product for every head and q/k/v
        np.dot(_rows2d(dQKV, klo, khi), _stack_weights(WQ, WK, WV, l), _rows2d(dU, klo, khi))
        if want_params:
            G = np.dot(U1[l, klo:khi + 1].T, _rows2d(dQKV, klo, khi))  # (d, 3 H dk)
            for h in range(H):
                for c in range(d):
                    gq = G[c, h * dk:(h + 1) * dk]
                    gk = G[c, (H + h) * dk:(H + h + 1) * dk]
                    gv = G[c, (2 * H + h) * dk:(2 * H + h + 1) * dk]
                    wq, wk, wv = dWQ[l, h, c], dWK[l, h, c], dWV[l, h, c]
                    for a in range(dk):
                        wq[a] += gq[a]
                        wk[a] += gk[a]
                        wv[a] += gv[a]
        _norm_rows_bwd(dU, g1[l], norm, xh1[l], r1[l], klo, khi, dV, dg1[l], want_params)
        if residual:
            dV[lo:hi + 1] += dZ[lo:hi + 1]
        lo, hi = klo, khi
    dX[lo:hi + 1] = dV[lo:hi + 1]
    return 0


@njit(error_model="numpy", cache=True)
def _trace_buffers(L, H, n, d, dk, f):
    """Work arrays of one forward trace (kernel order, without hidden, A and out):
    xh1, r1, U1, Qr, Kr, Val, Oh, Z, xh2, r2, U2, Hpre, Hact, xh3, r3. The MLP ones are
    zeroed: they stay zero (and are read as such) when the stack has no MLP. The Python
    spelling of these shapes is stack.saved_shapes; a test keeps the two equal."""
    return (np.empty((L, n, d)), np.empty((L, n)), np.empty((L, n, d)),
            np.empty((L, H, n, dk)), np.empty((L, H, n, dk)), np.empty((L, H, n, dk)),
            np.empty((L, H, n, dk)), np.empty((L, n, d)), np.zeros((L, n, d)), np.zeros((L, n)),
            np.zeros((L, n, d)), np.zeros((L, n, f)), np.zeros((L, n, f)), np.empty((n, d)),
            np.empty(n))


@njit(error_model="numpy", cache=True, nogil=True)
def forward_many(WQ, WK, WV, WO, g1, g2, W1, b1, W2, b2, g3, X, A_in, cos_t, sin_t, slopes,
                 iflags, fvals, hidden, attn, out, status, s0, s1):
    """Independent forward passes s = s0..s1-1 (params and inputs stacked on axis 0)."""
    L, H, d, dk = WQ.shape[1:]
    n = X.shape[1]
    f = W1.shape[3]
    for s in range(s0, s1):
        xh1, r1, U1, Qr, Kr, Val, Oh, Z, xh2, r2, U2, Hpre, Hact, xh3, r3 = _trace_buffers(
            L, H, n, d, dk, f)
        status[s] = forward(WQ[s], WK[s], WV[s], WO[s], g1[s], g2[s], W1[s], b1[s], W2[s],
                            b2[s], g3[s], X[s], A_in[s], cos_t, sin_t, slopes, iflags, fvals,
                            hidden[s], xh1, r1, U1, Qr, Kr, Val, attn[s], Oh, Z, xh2, r2, U2,
                            Hpre, Hact, xh3, r3, out[s])
    return 0


@njit(error_model="numpy", cache=True, nogil=True)
def jacobian_many(WQ, WK, WV, WO, g1, g2, W1, b1, W2, b2, g3, X, A_in, cos_t, sin_t, slopes,
                  iflags, fvals, frozen, J, status, s0, s1):
    """Last-token Jacobians of independent runs s = s0..s1-1 (stacked on axis 0)."""
    L, H, d, dk = WQ.shape[1:]
    n = X.shape[1]
    f = W1.shape[3]
    for s in range(s0, s1):
        hidden = np.empty((L + 1, n, d))
        A = np.empty((L, H, n, n))
        out = np.empty((n, d))
        xh1, r1, U1, Qr, Kr, Val, Oh, Z, xh2, r2, U2, Hpre, Hact, xh3, r3 = _trace_buffers(
            L, H, n, d, dk, f)
        st = forward(WQ[s], WK[s], WV[s], WO[s], g1[s], g2[s], W1[s], b1[s], W2[s], b2[s], g3[s],
                     X[s], A_in[s], cos_t, sin_t, slopes, iflags, fvals, hidden, xh1, r1, U1,
                     Qr, Kr, Val, A, Oh, Z, xh2, r2, U2, Hpre, Hact, xh3, r3, out)
        status[s] = st
        if st != 0:
            continue
        C = np.zeros((n, d, d))
        for b in range(d):
            C[n - 1, b, b] = 1.0
        # the M tables and chunks of sims/jacobian.py's Jacobian, so that the bits agree
        T, spans = m_table_buffer(C, L, H, dk, iflags, frozen)
        m_tables(Kr, Val, A, iflags, fvals, spans, T, 0, L * H)
        for c in range(n_chunks(d)):
            _backward_chunk(WQ[s], WK[s], WV[s], WO[s], g1[s], g2[s], W1[s], b1[s], W2[s], b2[s],
                            g3[s], cos_t, sin_t, iflags, fvals, hidden, xh1, r1, U1, Qr, Kr, Val,
                            A, Oh, Z, xh2, r2, U2, Hpre, Hact, xh3, r3, C, frozen, T, c, J[s])
    return 0


# Cotangents per reverse pass when a batch of them (a Jacobian) is split into chunks. A fixed
# size, not the thread count, so that results do not depend on the number of threads. 16
# rather than 32: the reverse pass of the benchmark's Jacobians (d = 64, two threads) took
# 7 % less time (small 238 -> 221 ms, large 3.39 -> 3.13 s, OpenBLAS's AVX-512 kernels;
# within noise with its AVX2 ones; why was not measured); 8 was no better than 32.
CHUNK = 16


@njit(error_model="numpy", cache=True)
def n_chunks(B):
    return (B + CHUNK - 1) // CHUNK


@njit(error_model="numpy", cache=True)
def _backward_chunk(WQ, WK, WV, WO, g1, g2, W1, b1, W2, b2, g3, cos_t, sin_t, iflags, fvals,
                    hidden, xh1, r1, U1, Qr, Kr, Val, A, Oh, Z, xh2, r2, U2, Hpre, Hact, xh3, r3,
                    dOut, frozen, T, c, dX):
    """dX[:, chunk c] from dOut[:, chunk c] (no parameter cotangents; T as in backward)."""
    n, B, d = dOut.shape
    b0 = c * CHUNK
    b1_ = min(B, b0 + CHUNK)
    C = np.ascontiguousarray(dOut[:, b0:b1_])
    out = np.zeros((n, b1_ - b0, d))
    # parameter cotangents are not wanted: tiny placeholders keep one specialisation
    z4 = np.zeros((1, 1, 1, 1))
    z2 = np.zeros((1, 1))
    z3 = np.zeros((1, 1, 1))
    z1 = np.zeros(1)
    backward(WQ, WK, WV, WO, g1, g2, W1, b1, W2, b2, g3, cos_t, sin_t, iflags, fvals, hidden,
             xh1, r1, U1, Qr, Kr, Val, A, Oh, Z, xh2, r2, U2, Hpre, Hact, xh3, r3, C, frozen,
             False, T, out, z4, z4, z4, z4, z2, z2, z3, z2, z3, z2, z1)
    dX[:, b0:b1_] = out
    return 0


@njit(error_model="numpy", cache=True, nogil=True)
def backward_chunks(WQ, WK, WV, WO, g1, g2, W1, b1, W2, b2, g3, cos_t, sin_t, iflags, fvals,
                    hidden, xh1, r1, U1, Qr, Kr, Val, A, Oh, Z, xh2, r2, U2, Hpre, Hact, xh3, r3,
                    dOut, frozen, T, dX, c0, c1):
    """The reverse pass of :func:`backward` without parameter cotangents, for the chunks
    c0..c1-1 (CHUNK cotangents each) of the B cotangents dOut (n, B, d); T: the M tables
    of :func:`m_tables` shared by every chunk, or a (1, 1, 1, 1) placeholder."""
    for c in range(c0, c1):
        _backward_chunk(WQ, WK, WV, WO, g1, g2, W1, b1, W2, b2, g3, cos_t, sin_t, iflags, fvals,
                        hidden, xh1, r1, U1, Qr, Kr, Val, A, Oh, Z, xh2, r2, U2, Hpre, Hact, xh3,
                        r3, dOut, frozen, T, c, dX)
    return 0


@njit(error_model="numpy", cache=True, nogil=True)
def forward_saved_many(WQ, WK, WV, WO, g1, g2, W1, b1, W2, b2, g3, X, A_in, cos_t, sin_t, slopes,
                       iflags, fvals, hidden, xh1, r1, U1, Qr, Kr, Val, A, Oh, Z, xh2, r2, U2,
                       Hpre, Hact, xh3, r3, out, status, s0, s1):
    """Forward passes of inputs s = s0..s1-1 through ONE parameter set, keeping every
    intermediate (stacked on axis 0) for :func:`backward_many`."""
    for s in range(s0, s1):
        status[s] = forward(WQ, WK, WV, WO, g1, g2, W1, b1, W2, b2, g3, X[s], A_in, cos_t, sin_t,
                            slopes, iflags, fvals, hidden[s], xh1[s], r1[s], U1[s], Qr[s], Kr[s],
                            Val[s], A[s], Oh[s], Z[s], xh2[s], r2[s], U2[s], Hpre[s], Hact[s],
                            xh3[s], r3[s], out[s])
    return 0


@njit(error_model="numpy", cache=True, nogil=True)
def backward_many(WQ, WK, WV, WO, g1, g2, W1, b1, W2, b2, g3, cos_t, sin_t, iflags, fvals,
                  hidden, xh1, r1, U1, Qr, Kr, Val, A, Oh, Z, xh2, r2, U2, Hpre, Hact, xh3, r3,
                  dOut, frozen, group, dX, dWQ, dWK, dWV, dWO, dg1, dg2, dW1, db1, dW2, db2, dg3,
                  c0, c1):
    """Reverse passes of the runs of :func:`forward_saved_many`, in groups c = c0..c1-1 of
    ``group`` consecutive runs; run s has one cotangent dOut[s] (n, 1, d) and writes dX[s].
    The parameter cotangents of group c are summed, run after run, into slot [c] (zeroed
    here): a fixed grouping, so the bits do not depend on how groups are spread on threads."""
    S = dOut.shape[0]
    T = np.zeros((1, 1, 1, 1), dOut.dtype)  # one cotangent a run: no M tables
    for c in range(c0, c1):
        dWQ[c] = 0.0
        dWK[c] = 0.0
        dWV[c] = 0.0
        dWO[c] = 0.0
        dg1[c] = 0.0
        dg2[c] = 0.0
        dW1[c] = 0.0
        db1[c] = 0.0
        dW2[c] = 0.0
        db2[c] = 0.0
        dg3[c] = 0.0
        for s in range(c * group, min(S, (c + 1) * group)):
            backward(WQ, WK, WV, WO, g1, g2, W1, b1, W2, b2, g3, cos_t, sin_t, iflags, fvals,
                     hidden[s], xh1[s], r1[s], U1[s], Qr[s], Kr[s], Val[s], A[s], Oh[s], Z[s],
                     xh2[s], r2[s], U2[s], Hpre[s], Hact[s], xh3[s], r3[s], dOut[s], frozen, True,
                     T, dX[s], dWQ[c], dWK[c], dWV[c], dWO[c], dg1[c], dg2[c], dW1[c], db1[c],
                     dW2[c], db2[c], dg3[c])
    return 0


# ----------------------------------------------------------------------------------------
# Language-model head (sims/train.py): next-token cross-entropy and its logit cotangent
# ----------------------------------------------------------------------------------------


@njit(error_model="numpy", cache=True)
def lm_head(z, y, wn, dz, work):
    """Weighted cross-entropy over rows t of the logits z (T, V) with targets y (T,) and
    weights wn (T,) (already divided by their sum): returns sum_t wn_t (lse_t - z_t[y_t])
    and fills dz = wn_t (softmax(z_t) - onehot(y_t)), the cotangent on z. One pass a row
    (stable: the row max is subtracted before e^x), in place of six NumPy passes over
    (T, V) arrays (they cost ~10 ms of a ~80 ms benchmark step). work: (2, V) scratch."""
    T, V = z.shape
    total = 0.0
    for t in range(T):
        sh = work[0]
        sh[:] = z[t]
        e = dz[t]
        tot = _exp_shifted(sh, e, work[1])
        yt = y[t]
        total += wn[t] * (math.log(tot) - sh[yt])
        for v in range(V):
            e[v] = wn[t] * (e[v] / tot)
        e[yt] -= wn[t]
    return total


@njit(error_model="numpy", cache=True)
def scatter_rows(idx, rows, out):
    """out[idx[t]] += rows[t] for t = 0, 1, ... in order (np.add.at's order: same bits)."""
    for t in range(idx.shape[0]):
        o = out[idx[t]]
        r = rows[t]
        for a in range(r.shape[0]):
            o[a] += r[a]
    return 0

