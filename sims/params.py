"""Params: the weights of the stack (MODEL.md, "Shapes and names"), and their initialisation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ._validate import real_array
from .config import StackConfig

# Arithmetic dtypes of the kernels: float64, and float32 for native float32 training
# (StackConfig.dtype's "float32" is something else: float64 arithmetic rounded to float32).
COMPUTE_DTYPES = ("float64", "float32")


def compute_dtype(value) -> np.dtype:
    """``value`` ("float64"/"float32", or that NumPy dtype or scalar type) as a NumPy dtype;
    ValueError otherwise."""
    dt = None
    if isinstance(value, str):  # the names only (np.dtype would also take codes like "f")
        dt = np.dtype(value) if value in COMPUTE_DTYPES else None
    elif isinstance(value, (np.dtype, type)):  # np.dtype(None) would be float64: not taken
        try:
            dt = np.dtype(value)
        except TypeError:
            pass
    if dt is None or dt.name not in COMPUTE_DTYPES:
        raise ValueError(f"compute_dtype must be one of {COMPUTE_DTYPES}; got {value!r}")
    return dt


def checked_array(a, name: str, shape: tuple, dtype) -> np.ndarray:
    """One weight array validated: array-like, real, of ``shape``, finite, returned as a
    C-contiguous copy in ``dtype`` (a copy even when ``a`` has the dtype already: callers
    may round it in place) that is finite too. Errors name ``name``."""
    a = real_array(a, name)  # real, numeric, finite (float64)
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape} for this config; got {a.shape}")
    with np.errstate(over="ignore"):  # checked next
        a = np.array(a, dtype=dtype, order="C", copy=True)
    if not np.isfinite(a).all():  # finite in float64 may overflow in float32
        raise ValueError(f"{name} must be finite in {dtype}; got entries beyond its range")
    return a


PARAM_NAMES = ("W_Q", "W_K", "W_V", "W_O", "g1", "g2", "W1", "b1", "W2", "b2", "g3")


def param_shapes(cfg: StackConfig) -> dict[str, tuple[int, ...]]:
    """Shape of every parameter for ``cfg`` (MODEL.md table)."""
    L, H, d, dk, f = cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.d_head, cfg.d_ff
    return {
        "W_Q": (L, H, d, dk), "W_K": (L, H, d, dk), "W_V": (L, H, d, dk), "W_O": (L, H, dk, d),
        "g1": (L, d), "g2": (L, d), "W1": (L, d, f), "b1": (L, f), "W2": (L, f, d),
        "b2": (L, d), "g3": (d,),
    }


@dataclass(frozen=True, eq=False)
class Params:
    """All weights of a stack, float64 C-contiguous arrays (shapes: :func:`param_shapes`).

    Build with :func:`init_params`; vary with ``dataclasses.replace(params, W_O=...)``.
    The same class holds parameter cotangents returned by :func:`overmix.sims.vjp`.
    """

    W_Q: np.ndarray
    W_K: np.ndarray
    W_V: np.ndarray
    W_O: np.ndarray
    g1: np.ndarray
    g2: np.ndarray
    W1: np.ndarray
    b1: np.ndarray
    W2: np.ndarray
    b2: np.ndarray
    g3: np.ndarray

    def arrays(self) -> tuple[np.ndarray, ...]:
        """The arrays in kernel order (``PARAM_NAMES``)."""
        return tuple(getattr(self, k) for k in PARAM_NAMES)

    def as_dict(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in PARAM_NAMES}

    def checked(self, cfg: StackConfig, dtype="float64") -> "Params":
        """Validated copy for ``cfg``: shapes match, real, finite, C-contiguous, in ``dtype``
        ("float64", or "float32" for native float32 training, see
        :func:`overmix.sims.batch_forward_saved`)."""
        dtype = compute_dtype(dtype)
        shapes = param_shapes(cfg)
        out = {k: checked_array(getattr(self, k), f"params.{k}", shapes[k], dtype)
               for k in PARAM_NAMES}
        return Params(**out)

    def __eq__(self, other):
        if not isinstance(other, Params):
            return NotImplemented
        return all(np.array_equal(getattr(self, k), getattr(other, k)) for k in PARAM_NAMES)


def _rng(seed) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int or a numpy Generator; got {seed!r}")
    return np.random.default_rng(int(seed))


def init_params(cfg: StackConfig, seed: int | np.random.Generator = 0) -> Params:
    """Draw parameters: weights i.i.d. N(0, weight_scale^2 / fan_in), gains 1, biases 0.

    Draw order (fixed, so the same seed gives the same bits): W_Q, W_K, W_V, W_O, W1, W2.
    fan_in is d for W_Q, W_K, W_V, W1; d_head for W_O; d_ff for W2.

    Examples
    --------
    >>> from overmix.sims import StackConfig
    >>> p = init_params(StackConfig(n_layers=2, d_model=8, n_heads=2), seed=1)
    >>> p.W_Q.shape, float(p.g3.sum())
    ((2, 2, 8, 4), 8.0)
    >>> init_params(StackConfig(n_layers=2, d_model=8, n_heads=2), seed=1) == p
    True
    """
    if not isinstance(cfg, StackConfig):
        raise TypeError(f"cfg must be a StackConfig; got {type(cfg).__name__}")
    rng = _rng(seed)
    shapes = param_shapes(cfg)
    s = cfg.weight_scale
    fan_in = {"W_Q": cfg.d_model, "W_K": cfg.d_model, "W_V": cfg.d_model, "W_O": cfg.d_head,
              "W1": cfg.d_model, "W2": cfg.d_ff}
    out = {}
    for k in ("W_Q", "W_K", "W_V", "W_O", "W1", "W2"):
        out[k] = rng.standard_normal(shapes[k]) * (s / np.sqrt(fan_in[k]))
    for k in ("g1", "g2", "g3"):
        out[k] = np.ones(shapes[k])
    for k in ("b1", "b2"):
        out[k] = np.zeros(shapes[k])
    return Params(**out)


def zeros_like_params(cfg: StackConfig) -> Params:
    """Params of zeros (used to accumulate cotangents)."""
    return Params(**{k: np.zeros(v) for k, v in param_shapes(cfg).items()})
