"""The benchmark (overmix.sims.bench): its baselines, FLOP count, CLI and a tiny smoke run.

No timing is asserted anywhere: times depend on the machine and its load.

Tolerance: the baselines must match overmix's Jacobian within 1e-9 relative to its largest
entry (the issue's Jacobian tolerance). Both sides are float64 reverse modes of the same
few dozen operations that differ only in summation order and blocking, so they agree to
~1e-15 on O(1) inputs; 1e-9 catches any wrong term while leaving room for conditioning.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from overmix import cli
from overmix.sims import StackConfig, init_params, last_token_jacobian
from overmix.sims import _bench_numpy, bench

RTOL = 1e-9
TINY = bench.BenchSize("tiny", 2, 12, 8, 2)


def rel_err(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def tiny_case(L, n, d, H, pos, seed):
    cfg = StackConfig(n_layers=L, d_model=d, n_heads=H, pos=pos)
    X = np.random.default_rng(seed).standard_normal((n, d))
    return cfg, init_params(cfg, seed), X


# ---------------------------------------------------------------------------------------
# baselines compute overmix's Jacobian
# ---------------------------------------------------------------------------------------
@settings(max_examples=15)
@given(L=st.integers(1, 3), n=st.integers(1, 9), d=st.sampled_from([4, 8]),
       H=st.sampled_from([1, 2]), pos=st.sampled_from(["rope", "nope"]),
       seed=st.integers(0, 2**16))
@example(L=1, n=1, d=4, H=1, pos="rope", seed=0)  # one token: only the top layer's row
@example(L=3, n=9, d=8, H=2, pos="rope", seed=1)
def test_numpy_baseline_jacobian_equals_overmix(L, n, d, H, pos, seed):
    cfg, p, X = tiny_case(L, n, d, H, pos, seed)
    J = _bench_numpy.last_token_jacobian(cfg, p, X)
    assert J.shape == (n, d, d)
    assert rel_err(J, last_token_jacobian(cfg, p, X)) <= RTOL


def test_numpy_baseline_blocks_the_causal_softmax_backward_exactly():
    # more query rows than one block (_QBLOCK = 128): the block edges must not lose terms
    cfg, p, X = tiny_case(2, 150, 4, 1, "rope", 3)
    assert rel_err(_bench_numpy.last_token_jacobian(cfg, p, X),
                   last_token_jacobian(cfg, p, X)) <= RTOL


def test_numpy_baseline_forward_equals_overmix():
    from overmix.sims import forward

    cfg, p, X = tiny_case(2, 7, 8, 2, "rope", 5)
    assert rel_err(_bench_numpy.forward(cfg, p, X), forward(cfg, p, X).output) <= 1e-12


@pytest.mark.parametrize("field,value", [("norm", "layer"), ("mask", "full"), ("pos", "alibi"),
                                         ("sink_logit", 2.0), ("act", "relu")])
def test_numpy_baseline_rejects_other_models_naming_the_field(field, value):
    cfg = dataclasses.replace(StackConfig(n_layers=1, d_model=4, n_heads=1), **{field: value})
    with pytest.raises(ValueError, match=field):
        _bench_numpy.check_supported(cfg)


def test_jax_baseline_jacobian_equals_overmix():
    pytest.importorskip("jax")
    from overmix.sims import _bench_jax

    cfg, p, X = tiny_case(2, 7, 8, 2, "rope", 2)
    fwd, jac = _bench_jax.build(cfg, p, 7)
    assert rel_err(jac(X), last_token_jacobian(cfg, p, X)) <= RTOL


def test_torch_baseline_jacobian_equals_overmix():
    pytest.importorskip("torch")
    from overmix.sims import _bench_torch

    cfg, p, X = tiny_case(2, 7, 8, 2, "rope", 2)
    fwd, jac = _bench_torch.build(cfg, p, 7)
    assert rel_err(jac(X), last_token_jacobian(cfg, p, X)) <= RTOL


# ---------------------------------------------------------------------------------------
# FLOP count
# ---------------------------------------------------------------------------------------
def enumerated_flops(L, n, d, H, dk, f):
    """Reverse-mode matmul FLOPs by walking the passes with explicit sets of rows and
    (query, key) pairs: 2 FLOPs per multiply-add of each product (rows x inner x cols)."""
    D, B = H * dk, d
    causal_pairs = lambda rows: sum(i + 1 for i in rows)  # noqa: E731  keys 0..i of query i
    mm = lambda r, k, c: 2 * r * k * c  # noqa: E731
    every = range(n)
    fwd = 0
    for _ in range(L):
        fwd += 3 * H * mm(n, d, dk)                    # q, k, v of every head
        fwd += H * 2 * causal_pairs(every) * dk        # logits over visible pairs
        fwd += H * 2 * causal_pairs(every) * dk        # A @ V over visible pairs
        fwd += H * mm(n, dk, d)                        # W_O
        fwd += mm(n, d, f) + mm(n, f, d)               # MLP
    bwd = 0
    active = [n - 1]                                    # the cotangent sits on row n-1
    for _ in range(L):
        m, pairs = len(active), causal_pairs(active)
        bwd += mm(m * B, d, f) + mm(m * B, f, d)       # MLP back
        bwd += H * mm(m * B, d, dk)                    # W_O back
        bwd += 4 * H * 2 * pairs * B * dk              # dVal, dA, dQ, dK
        keys = sorted({j for i in active for j in range(i + 1)})
        bwd += 2 * H * mm(len(keys) * B, dk, d)        # through W_V and W_K (all keys)
        bwd += H * mm(m * B, dk, d)                    # through W_Q (active queries)
        active = keys
    return fwd, bwd


def test_flop_count_on_a_hand_counted_stack():
    # L=2, n=2, d=2, H=1, d_head=2, d_ff=3; B=2 cotangents, P=3 causal pairs.
    # forward per layer: qkv 3*2*2*2*2=48, logits+AV 2*(2*3*2)=24, W_O 2*2*2*2=16,
    #   MLP 2*(2*2*2*3)=48 -> 136; two layers 272.
    # top layer (row 1 only, its 2 keys): MLP 2*(2*2*2*3)=48, W_O 2*2*2*2=16,
    #   dVal/dA/dQ/dK 4*(2*2*2*2)=64, W_V+W_K back 2*(2*4*2*2)=64, W_Q back 2*2*2*2=16 -> 208
    # layer below (rows 0,1; 3 pairs): MLP 2*(2*4*2*3)=96, W_O 2*4*2*2=32,
    #   attention 4*(2*3*2*2)=96, W_V+W_K 2*(2*4*2*2)=64, W_Q 2*4*2*2=32 -> 320
    c = bench.reverse_mode_flops(2, 2, 2, 1, d_ff=3)
    assert (c.forward, c.backward_top, c.backward_below, c.total) == (272, 208, 320, 800)


@given(L=st.integers(1, 4), n=st.integers(1, 12), H=st.integers(1, 3), dk=st.integers(1, 4),
       f=st.integers(1, 9), dmul=st.integers(1, 3))
def test_flop_count_matches_an_enumeration_of_the_reverse_pass(L, n, H, dk, f, dmul):
    d = dmul * H
    c = bench.reverse_mode_flops(L, n, d, H, d_head=dk, d_ff=f)
    assert (c.forward, c.backward) == enumerated_flops(L, n, d, H, dk, f)


def test_flop_count_of_the_benchmark_sizes_is_the_issues_estimate():
    # issue 8: "about 19 and 264 GFLOP"
    small = bench.reverse_mode_flops(8, 256, 64, 4).total / 1e9
    large = bench.reverse_mode_flops(12, 1024, 64, 8).total / 1e9
    assert round(small) == 19 and round(large) == 264


@pytest.mark.parametrize("kwargs,name", [
    (dict(n_layers=0, n=4, d_model=4, n_heads=1), "n_layers"),
    (dict(n_layers=1, n=0, d_model=4, n_heads=1), "n"),
    (dict(n_layers=1, n=4, d_model=5, n_heads=2), "d_model"),
    (dict(n_layers=1, n=4, d_model=4, n_heads=1, d_ff=0), "d_ff"),
    (dict(n_layers=1, n=4, d_model=4, n_heads=1, d_head=True), "d_head"),
])
def test_flop_count_rejects_bad_sizes_naming_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        bench.reverse_mode_flops(**kwargs)


# ---------------------------------------------------------------------------------------
# argument checks
# ---------------------------------------------------------------------------------------
def test_bad_arguments_raise_naming_the_argument():
    with pytest.raises(ValueError, match="sizes"):
        bench.resolve_sizes("huge")
    with pytest.raises(ValueError, match="size"):
        bench.matmul_rate(size=0)
    with pytest.raises(ValueError, match="repeats"):
        bench.matmul_rate(size=8, repeats=0)
    with pytest.raises(ValueError, match="clock"):
        bench.matmul_rate(size=8, clock="sundial")
    with pytest.raises(ValueError, match="threads"):
        bench.thread_env(0)
    with pytest.raises(ValueError, match="impl"):
        bench.measure("matlab", TINY)
    with pytest.raises(TypeError, match="size"):
        bench.measure("numpy", "tiny")
    with pytest.raises(ValueError, match="repeats"):
        bench.measure("numpy", TINY, repeats=0)
    with pytest.raises(ValueError, match="n_heads"):
        bench.BenchSize("x", 1, 4, 4, 0)


def test_resolve_sizes_names_the_issue_stacks():
    small, large = bench.resolve_sizes("all")
    assert (small.n_layers, small.n, small.d_model, small.n_heads) == (8, 256, 64, 4)
    assert (large.n_layers, large.n, large.d_model, large.n_heads) == (12, 1024, 64, 8)
    cfg = large.config()
    assert (cfg.d_ff, cfg.norm, cfg.pos, cfg.mask, cfg.mlp, cfg.dtype) == \
        (256, "rms", "rope", "causal", True, "float64")


# ---------------------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------------------
def test_overmix_bench_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for opt in ("--size", "--repeats", "--no-jax", "--json", "--threads"):
        assert opt in out


def test_overmix_bench_rejects_zero_repeats(capsys):
    assert cli.main(["bench", "--repeats", "0"]) == 2
    assert "--repeats" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------
# verification and a tiny run (fresh processes; no timing asserted)
# ---------------------------------------------------------------------------------------
def test_a_baseline_with_a_different_jacobian_is_reported_and_not_timed(tmp_path):
    cfg, p, X = bench.bench_case(TINY)
    wrong = last_token_jacobian(cfg, p, X) * (1 + 1e-6)
    np.save(tmp_path / "wrong.npy", wrong)
    m = bench.measure("numpy", TINY, repeats=1, reference=tmp_path / "wrong.npy")
    assert m.error is not None and "differs" in m.error
    assert m.jacobian_s is None and 5e-7 < m.rel_err < 2e-6


def _check_smoke(result, impls, tmp_path):
    (sr,) = result.sizes
    assert list(sr.measurements) == impls
    for impl, m in sr.measurements.items():
        assert m.error is None, m.error
        assert m.jacobian_s > 0 and m.forward_s > 0 and m.peak_rss_mib > 0
        assert m.jacobian_cpu_s > 0 and m.jacobian_first_s > 0
        if impl != "overmix":
            assert m.rel_err <= RTOL
    assert result.matmul_gflops > 0 and result.matmul_gflops_cpu > 0
    text = bench.format_report(result)
    for impl in impls:
        assert impl in text
    assert "reverse-mode FLOPs" in text
    assert "BLAS kernels: " + "; ".join(bench.blas_kernels()) in text
    path = tmp_path / "out.json"
    bench.write_json(result, path)
    assert os.listdir(tmp_path) == ["out.json"]  # the temp file was renamed, none left over
    data = json.loads(path.read_text())
    row = data["sizes"][0]
    assert row["flops"]["total"] == sr.flops.total
    assert row["measurements"]["overmix"]["jacobian_gflops"] > 0


def test_benchmark_smoke_run_without_jax(tmp_path):
    result = bench.run_benchmark([TINY], repeats=1, jax=False, torch=False, compile=False,
                                 matmul_size=64)
    _check_smoke(result, ["overmix", "numpy"], tmp_path)


def test_benchmark_smoke_run_with_jax(tmp_path):
    pytest.importorskip("jax")
    result = bench.run_benchmark([TINY], repeats=1, jax=True, torch=False, compile=False,
                                 matmul_size=64, threads=1)
    _check_smoke(result, ["overmix", "numpy", "jax"], tmp_path)


def test_blas_kernels_names_each_loaded_blas_and_its_kernel_set():
    """The report names the kernel set of every BLAS loaded (SciPy's, which numba calls, and
    NumPy's): it moves every time in the benchmark, so a reader must see it."""
    from threadpoolctl import threadpool_info

    got = bench.blas_kernels()
    libs = [lib for lib in threadpool_info() if lib.get("user_api") == "blas"]
    assert len(got) == len(libs) >= 1
    for entry, lib in zip(got, libs):
        assert entry.endswith(": " + str(lib.get("architecture", "?")))
        assert str(lib.get("version")) in entry
    info = bench.machine_info()
    assert info["blas_kernels"] == got
    assert info["blas_env"] == {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
                                if k in os.environ}


def test_blas_line_names_the_kernels_and_the_variables_that_forced_them():
    assert bench.blas_line(["libx 1.0: Haswell", "liby 2.0: Haswell"], {}) == \
        "BLAS kernels: libx 1.0: Haswell; liby 2.0: Haswell"
    assert bench.blas_line(["libx 1.0: Haswell"], {"OPENBLAS_CORETYPE": "Haswell",
                                                   "OPENBLAS_L2_SIZE": "512"}) == \
        "BLAS kernels: libx 1.0: Haswell (set by OPENBLAS_CORETYPE=Haswell, OPENBLAS_L2_SIZE=512)"
    assert bench.blas_line([], None) == "BLAS kernels: unknown"
