"""Benchmark: training steps per second of the small language model of MODEL.md, overmix vs JAX.

One training step = forward, exact gradient of the mean next-token cross-entropy, global-norm
clipping and an Adam update, for (L, d, H, n, batch) = (2, 64, 4, 128, 32) by default (rms
norm, GELU MLP, d_ff = 4d, causal NoPE attention plus a learned absolute position table,
untied unembedding, vocabulary 64). overmix runs :func:`overmix.sims.train.loss_and_grad`
(Numba kernels, parallel over sequences) plus the NumPy optimiser of overmix.sims.train;
JAX runs the same model written the way a JAX user would (``jit`` of ``value_and_grad`` plus
the Adam update), from the same weights, in the same process. The two losses at the initial
weights are printed, to show both compute the same model.

Both are timed in float64 and in float32 (overmix: ``TrainConfig(compute_dtype="float32")``,
weights, activations, gradients and Adam state in float32, single-precision BLAS), and each
precision is compared like for like.

Usage: python benchmarks/bench_train.py [--layers 2] [--d 64] [--heads 4] [--n 128]
       [--batch 32] [--vocab 64] [--steps 10] [--repeats 3] [--blas-threads 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import time


def _overmix_step(cfg, tc, x, y):
    from overmix.sims import Workspace
    from overmix.sims._threads import serial_blas
    from overmix.sims.train import clip_by_global_norm, loss_and_grad, lr_at, opt_step, LMParams

    ws = Workspace()  # as overmix.sims.train.train does: memory reused by every step

    def step(pd, state, k):
        with serial_blas():  # as train() does: NumPy's BLAS threads would spin on the cores
            r = loss_and_grad(cfg, LMParams.from_dict(pd), x, y, workspace=ws,
                              compute_dtype=tc.compute_dtype)
            g, _ = clip_by_global_norm(r.grads.as_dict(), tc.clip)
            pd, state = opt_step(pd, g, state, tc, lr_at(tc, k))
        return pd, state, r.loss

    return step


def _jax_step(cfg, params, x, y, dtype, lr, clip, betas, eps):
    import math

    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    st = cfg.stack
    L, H, dk = st.n_layers, st.n_heads, st.d_head
    scale, ln_eps = st.attn_scale, st.eps
    n = x.shape[1]
    causal = jnp.asarray(__import__("numpy").tril(__import__("numpy").ones((n, n), dtype=bool)))
    kg = math.sqrt(2.0 / math.pi)
    P0 = {k: jnp.asarray(v, dtype=dtype) for k, v in params.as_dict().items()}
    xj, yj = jnp.asarray(x), jnp.asarray(y)

    def rms(u, g):
        return g * u / jnp.sqrt(jnp.mean(u * u, axis=-1, keepdims=True) + ln_eps)

    def gelu(u):
        return 0.5 * u * (1.0 + jnp.tanh(kg * (u + 0.044715 * u ** 3)))

    def stack(P, X):  # X (n, d)
        V = X
        for l in range(L):
            U = rms(V, P["g1"][l])
            Q = jnp.einsum("nd,hdk->hnk", U, P["W_Q"][l])
            K = jnp.einsum("nd,hdk->hnk", U, P["W_K"][l])
            Val = jnp.einsum("nd,hdk->hnk", U, P["W_V"][l])
            S = jnp.where(causal, scale * jnp.einsum("hik,hjk->hij", Q, K), -jnp.inf)
            A = jax.nn.softmax(S, axis=-1)
            Z = V + jnp.einsum("hnk,hkd->nd", A @ Val, P["W_O"][l])
            V = Z + gelu(rms(Z, P["g2"][l]) @ P["W1"][l] + P["b1"][l]) @ P["W2"][l] + P["b2"][l]
        return rms(V, P["g3"])

    def loss(P):
        X = P["E"][xj] + P["P"][:n]
        Y = jax.vmap(lambda u: stack(P, u))(X)
        z = Y @ P["W_U"]
        logp = jax.nn.log_softmax(z, axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, yj[..., None], axis=-1))

    b1, b2 = betas

    @jax.jit
    def step(P, m, v, t):
        val, g = jax.value_and_grad(loss)(P)
        gn = jnp.sqrt(sum(jnp.sum(a * a) for a in jax.tree_util.tree_leaves(g)))
        s = jnp.minimum(1.0, clip / gn)
        g = jax.tree_util.tree_map(lambda a: a * s, g)
        t = t + 1
        m = jax.tree_util.tree_map(lambda mm, gg: b1 * mm + (1 - b1) * gg, m, g)
        v = jax.tree_util.tree_map(lambda vv, gg: b2 * vv + (1 - b2) * gg * gg, v, g)
        P = jax.tree_util.tree_map(
            lambda p, mm, vv: p - lr * (mm / (1 - b1 ** t)) / (jnp.sqrt(vv / (1 - b2 ** t)) + eps),
            P, m, v)
        return P, m, v, t, val

    zeros = jax.tree_util.tree_map(jnp.zeros_like, P0)
    return step, P0, zeros, zeros, jnp.asarray(0, dtype=dtype)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--vocab", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3,
                    help="timed blocks of --steps steps per implementation; the fastest block "
                         "is kept (default 3: the 2-core machine's timings vary by ~20%%)")
    ap.add_argument("--blas-threads", default="1",
                    help="OPENBLAS_NUM_THREADS for the BLAS the Numba kernels call (default 1; "
                         "'default' leaves it unset)")
    args = ap.parse_args(argv)
    for name in ("steps", "repeats"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be an integer >= 1; got {getattr(args, name)}")
    if args.blas_threads != "default":
        os.environ["OPENBLAS_NUM_THREADS"] = args.blas_threads

    import numpy as np

    from overmix.sims import StackConfig
    from overmix.sims.train import LMConfig, TrainConfig, init_lm, init_opt_state

    cfg = LMConfig(StackConfig(n_layers=args.layers, d_model=args.d, n_heads=args.heads),
                   vocab_size=args.vocab, max_len=args.n)
    params = init_lm(cfg, 0)
    base = TrainConfig(lr=1e-3, clip=1.0)  # the optimiser both implementations run
    tok = np.random.default_rng(0).integers(0, args.vocab, (args.batch, args.n + 1))
    x, y = tok[:, :-1], tok[:, 1:]
    print(f"training step, (L, d, H, n, batch) = ({args.layers}, {args.d}, {args.heads}, "
          f"{args.n}, {args.batch}), vocab {args.vocab}, Adam + clipping; "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, "
          f"{os.cpu_count()} cpus")
    from overmix.sims.bench import BLAS_ENV_VARS, blas_kernels, blas_line

    print(blas_line(blas_kernels(), {k: os.environ[k] for k in BLAS_ENV_VARS if k in os.environ}))

    rows = {}
    for dt in ("float64", "float32"):
        tc = dataclasses.replace(base, compute_dtype=dt)
        step = _overmix_step(cfg, tc, x, y)
        start = params.checked(cfg, dt).as_dict()  # weights and Adam state in the dtype
        pd, state = start, init_opt_state(start, tc)
        t0 = time.perf_counter()
        pd, state, l0 = step(pd, state, 0)  # first call: loads/compiles the kernels
        first = time.perf_counter() - t0
        best, k = math.inf, 1
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            for _ in range(args.steps):
                pd, state, _ = step(pd, state, k)
                k += 1
            best = min(best, time.perf_counter() - t0)
        rows[f"overmix {dt}"] = (args.steps / best, first, l0)

    try:
        import jax  # noqa: F401
    except ModuleNotFoundError:
        print("jax not installed (pip install 'jax[cpu]'): no baseline")
        jax = None
    if jax is not None:
        import jax.numpy as jnp

        for name, dt in (("jax float64", jnp.float64), ("jax float32", jnp.float32)):
            jstep, P, m, v, t = _jax_step(cfg, params, x, y, dt, base.lr, base.clip, base.betas,
                                          base.adam_eps)
            t0 = time.perf_counter()
            P, m, v, t, val = jstep(P, m, v, t)
            val.block_until_ready()
            first = time.perf_counter() - t0
            lj = float(val)
            best = math.inf
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                for _ in range(args.steps):
                    P, m, v, t, val = jstep(P, m, v, t)
                val.block_until_ready()
                best = min(best, time.perf_counter() - t0)
            rows[name] = (args.steps / best, first, lj)
    print(f"{'':18}{'steps/s':>10}{'first step (s)':>16}{'loss at init':>22}")
    for name, (sps, first, l0) in rows.items():
        print(f"{name:18}{sps:10.3g}{first:16.3g}{l0:22.15g}")
    if "jax float64" in rows:
        for dt in ("float64", "float32"):
            r = rows[f"overmix {dt}"][0] / rows[f"jax {dt}"][0]
            print(f"overmix / jax ({dt}) steps per second: {r:.3g}"
                  + ("  (overmix faster)" if r >= 1 else "  (overmix slower)"))


if __name__ == "__main__":
    main()
