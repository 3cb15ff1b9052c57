"""One forward pass with each layer's heads on threads (sims/stack.py) equals the serial
kernel bit for bit, and so does everything built on it (Jacobians, batched runs).

From ``stack.THREADED_FORWARD_MIN_N`` tokens on, ``run_forward`` calls the forward kernel's
three layer pieces itself and hands the heads to threads; ``batch_forward`` runs the
serial kernel, one run per thread. Both compute each head with the same code, so the
results must be identical (==), in float64 and in the emulated formats.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

from overmix import sims
from overmix.sims import stack


def _threads(k):
    return min(k, numba.config.NUMBA_NUM_THREADS)


@pytest.mark.parametrize("kw", [
    dict(pos="rope", sink_logit=1.0, sink_value_scale=0.5),
    dict(pos="alibi", mask=("window", 9), norm="layer", act="relu"),
    dict(pos="nope", mask="full", mlp=False, dtype="bfloat16"),
    dict(pos="rope", dtype="float16", residual=False, branch_scale=0.5),
])
def test_threaded_heads_equal_the_serial_kernel(kw):
    n = stack.THREADED_FORWARD_MIN_N + 3
    cfg = sims.StackConfig(n_layers=2, d_model=12, n_heads=3, **kw)
    p = sims.init_params(cfg, 4)
    X = np.random.default_rng(4).standard_normal((n, 12))
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(_threads(3))
        threaded = sims.forward(cfg, p, X)
        numba.set_num_threads(1)  # one thread: run_forward calls the serial kernel
        serial = sims.forward(cfg, p, X)
    finally:
        numba.set_num_threads(before)
    # the batched entry point always runs the serial kernel (one run per thread)
    batched = sims.batch_forward(cfg, [p], X)
    for a, b in [(threaded.hidden, serial.hidden), (threaded.attn, serial.attn),
                 (threaded.output, serial.output), (threaded.output, batched.output[0]),
                 (threaded.attn, batched.attn[0])]:
        assert np.array_equal(a, b)


def test_threaded_jacobian_equals_the_batched_one():
    n = stack.THREADED_FORWARD_MIN_N + 1
    cfg = sims.StackConfig(n_layers=2, d_model=24, n_heads=4, pos="rope")  # 2 chunks, tables
    p = sims.init_params(cfg, 2)
    X = np.random.default_rng(2).standard_normal((n, 24))
    J = sims.last_token_jacobian(cfg, p, X)
    Jb = sims.batch_last_token_jacobian(cfg, [p], X)[0]
    assert np.array_equal(J, Jb)


def test_threaded_forward_raises_on_overflow_like_the_serial_one():
    n = stack.THREADED_FORWARD_MIN_N
    cfg = sims.StackConfig(n_layers=1, d_model=4, n_heads=2, dtype="float16")
    p = sims.init_params(cfg, 0)
    X = np.full((n, 4), 6e4)
    X[:, ::2] = -6e4
    with pytest.raises(FloatingPointError, match="overflow"):
        sims.forward(cfg, p, X * 1e3)
