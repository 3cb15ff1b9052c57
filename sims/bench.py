"""Benchmark: forward pass and last-token Jacobian of overmix against NumPy, JAX and torch.

What is measured (issue 8, "Performance"): for the stacks (L, n, d, H) = (8, 256, 64, 4)
("small") and (12, 1024, 64, 8) ("large"), with d_ff = 4d, rms norm, RoPE, causal mask,
GELU MLP, float64, the time of

- ``overmix.sims.forward`` and ``overmix.sims.last_token_jacobian`` (live attention),
- a careful NumPy reverse mode of the same model (:mod:`overmix.sims._bench_numpy`),
- JAX ``jit(jacrev)`` of the same model (:mod:`overmix.sims._bench_jax`, optional extra),
- ``torch.func.jacrev`` (:mod:`overmix.sims._bench_torch`) when torch happens to be installed.

Every measurement runs in a fresh Python process (so that its peak resident memory, read
from ``resource.getrusage(...).ru_maxrss``, belongs to it alone: tracemalloc does not see
Numba's or XLA's allocations). Before a baseline is timed, its Jacobian is checked against
overmix's (``max|J - J_overmix| / max|J_overmix| <= 1e-9``); a baseline that computes
something else is reported as failed and not timed. Times are the minimum over repeats;
the first call (JIT compilation, or loading Numba's cache) is reported separately.

The reverse-mode FLOP count (:func:`reverse_mode_flops`) and the machine's measured
float64 matmul rate (:func:`matmul_rate`) turn times into achieved GFLOP/s and a fraction
of what the machine's BLAS reaches on a large square product.

Library code returns data; ``overmix bench`` and ``benchmarks/bench_jacobian.py`` print
:func:`format_report`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np

from .config import StackConfig
from .params import init_params

VERIFY_RTOL = 1e-9  # the issue's Jacobian tolerance; measured agreement is ~1e-15
IMPLS = ("overmix", "numpy", "jax", "torch")


# ---------------------------------------------------------------------------------------
# sizes and inputs
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchSize:
    """One benchmark stack: L layers, n tokens, width d, H heads (d_ff = 4d, RoPE, rms, causal)."""

    name: str
    n_layers: int
    n: int
    d_model: int
    n_heads: int

    def __post_init__(self):
        for key in ("n_layers", "n", "d_model", "n_heads"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{key} must be an int >= 1; got {v!r}")
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty str; got {self.name!r}")

    def config(self):
        """The StackConfig of this size (every other knob at the MODEL.md default)."""
        return StackConfig(n_layers=self.n_layers, d_model=self.d_model, n_heads=self.n_heads,
                           pos="rope", norm="rms", mask="causal", mlp=True, act="gelu",
                           dtype="float64")


SIZES = {
    "small": BenchSize("small", 8, 256, 64, 4),
    "large": BenchSize("large", 12, 1024, 64, 8),
}


def resolve_sizes(sizes) -> tuple[BenchSize, ...]:
    """``"small" | "large" | "all"``, a BenchSize, or a sequence of them -> tuple of BenchSize."""
    if isinstance(sizes, (str, BenchSize)):
        sizes = [sizes]
    out = []
    for s in sizes:
        if isinstance(s, BenchSize):
            out.append(s)
        elif s == "all":
            out.extend(SIZES.values())
        elif s in SIZES:
            out.append(SIZES[s])
        else:
            raise ValueError(f"sizes must name 'small', 'large' or 'all' (or be BenchSize); got {s!r}")
    if not out:
        raise ValueError("sizes must not be empty")
    return tuple(out)


def bench_case(size: BenchSize, seed: int = 0):
    """(cfg, params, X) of a benchmark size: weights from ``init_params(cfg, seed)`` and
    X ~ N(0, 1) from ``default_rng(seed + 1)``."""
    cfg = size.config()
    X = np.random.default_rng(seed + 1).standard_normal((size.n, size.d_model))
    return cfg, init_params(cfg, seed), X


# ---------------------------------------------------------------------------------------
# FLOP count
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FlopCount:
    """Matmul FLOPs (2 per multiply-add) of a forward pass and a last-token reverse pass."""

    forward: int
    backward_top: int
    backward_below: int

    @property
    def backward(self) -> int:
        return self.backward_top + self.backward_below

    @property
    def total(self) -> int:
        return self.forward + self.backward


def reverse_mode_flops(n_layers, n, d_model, n_heads, *, d_head=None, d_ff=None) -> FlopCount:
    """FLOPs of the last-token Jacobian by reverse mode: forward once, d cotangents back.

    Counts the matrix products only, 2 FLOPs per multiply-add; elementwise work (norms,
    softmax, RoPE, GELU) is left out. With D = H d_k (total head width), B = d cotangents,
    f = d_ff and P = n(n+1)/2 causal (query, key) pairs:

    - forward, per layer: QKV 6 n d D, logits 2 P D, A V 2 P D, W_O 2 n D d, MLP 4 n d f;
    - backward, per layer with m active query rows that see P_a (query, key) pairs, all n
      rows active as keys: MLP 4 m B d f, W_O 2 m B d D, the four attention products
      (dVal = A^T dO, dA = dO Val^T, dQ = dS K, dK = dS^T Q) 2 P_a B D each, back through
      W_V and W_K on all n rows 4 n B d D, through W_Q on the m rows 2 m B d D.
      The top layer has m = 1, P_a = n (only row n-1 carries a cotangent); every layer
      below has m = n, P_a = P (the causal past of token n-1 is every token).

    For the benchmark sizes this gives 19.37 GFLOP (small) and 263.9 GFLOP (large), the
    "about 19 and 264" of issue 8.

    Parameters
    ----------
    n_layers, n, d_model, n_heads : int
        L, n, d, H.
    d_head, d_ff : int, optional
        Default d/H and 4d.

    Returns
    -------
    FlopCount
        ``forward``, ``backward_top`` (layer L-1), ``backward_below`` (layers 0..L-2);
        ``.backward`` and ``.total`` add them up.

    Examples
    --------
    >>> c = reverse_mode_flops(8, 256, 64, 4)
    >>> round(c.total / 1e9, 2)
    19.37
    >>> c.total == c.forward + c.backward_top + c.backward_below
    True
    """
    vals = {}
    for key, v in (("n_layers", n_layers), ("n", n), ("d_model", d_model), ("n_heads", n_heads)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{key} must be an int >= 1; got {v!r}")
        vals[key] = int(v)
    L, n, d, H = vals["n_layers"], vals["n"], vals["d_model"], vals["n_heads"]
    if d_head is None:
        if d % H:
            raise ValueError(f"d_model must be divisible by n_heads when d_head is not given; "
                             f"got d_model={d}, n_heads={H}")
        d_head = d // H
    if d_ff is None:
        d_ff = 4 * d
    for key, v in (("d_head", d_head), ("d_ff", d_ff)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{key} must be an int >= 1; got {v!r}")
    D, f, B = H * int(d_head), int(d_ff), d
    P = n * (n + 1) // 2

    def backward_layer(m, pairs):
        return (4 * m * B * d * f + 2 * m * B * d * D + 8 * pairs * B * D
                + 4 * n * B * d * D + 2 * m * B * d * D)

    fwd = L * (6 * n * d * D + 4 * P * D + 2 * n * D * d + 4 * n * d * f)
    return FlopCount(forward=fwd, backward_top=backward_layer(1, n),
                     backward_below=(L - 1) * backward_layer(n, P))


# ---------------------------------------------------------------------------------------
# machine
# ---------------------------------------------------------------------------------------
def matmul_rate(size: int = 2048, repeats: int = 5, *, clock: str = "wall") -> float:
    """The machine's float64 matmul rate in GFLOP/s: best of ``repeats`` (size x size) @
    (size x size) products with NumPy's BLAS (2 size^3 FLOPs each), after one warm-up.

    ``clock="wall"`` divides by elapsed time; ``clock="cpu"`` by the process's CPU time
    (with one BLAS thread: the time of one core, whatever else the machine is running)."""
    if clock not in ("wall", "cpu"):
        raise ValueError(f"clock must be 'wall' or 'cpu'; got {clock!r}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be an int >= 1; got {size!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise ValueError(f"repeats must be an int >= 1; got {repeats!r}")
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, size, size))
    c = np.empty((size, size))
    np.matmul(a, b, out=c)
    now = time.perf_counter if clock == "wall" else time.process_time
    best = math.inf
    for _ in range(repeats):
        t = now()
        np.matmul(a, b, out=c)
        best = min(best, now() - t)
    return 2.0 * size ** 3 / best / 1e9


def thread_env(threads) -> dict:
    """Environment variables that cap BLAS, OpenMP and Numba at ``threads`` threads ({} for
    None: the machine's defaults). Applied to every measurement process, and to the process
    that measures the matmul rate, so that rate and times are comparable. XLA (JAX) has no
    thread-count variable: for ``threads=1`` its Eigen matmuls are made single-threaded
    (``--xla_cpu_multi_thread_eigen=false``), otherwise it keeps its defaults."""
    if threads is None:
        return {}
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"threads must be None or an int >= 1; got {threads!r}")
    t = str(int(threads))
    env = {k: t for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                          "NUMBA_NUM_THREADS")}
    if threads == 1:  # XLA's CPU client: single-threaded Eigen matmuls (best effort)
        env["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()
    return env


def matmul_rate_fresh(size: int = 2048, repeats: int = 5, *, env=None,
                      timeout=None) -> tuple[float, float]:
    """(wall, cpu) :func:`matmul_rate` measured in a fresh process with extra environment
    ``env`` (e.g. :func:`thread_env`), so that it sees the thread settings of the
    measurements."""
    code = ("import sys, json; from overmix.sims.bench import matmul_rate; "
            "a = (int(sys.argv[1]), int(sys.argv[2])); "
            "json.dump([matmul_rate(*a), matmul_rate(*a, clock='cpu')], sys.stdout)")
    proc = subprocess.run([sys.executable, "-c", code, str(int(size)), str(int(repeats))],
                          env=dict(os.environ, **(env or {})), capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"matmul rate process failed (exit code {proc.returncode}): "
                           f"{proc.stderr.strip()[-500:]}")
    wall, cpu = json.loads(proc.stdout)
    return float(wall), float(cpu)


def blas_kernels() -> list[str]:
    """The BLAS libraries loaded in this process and the kernel set each runs, e.g.
    ``["libscipy_openblas64_ 0.3.31: SkylakeX"]``.

    overmix's kernels call BLAS through SciPy (numba's np.dot) and the NumPy baseline through
    NumPy; both are OpenBLAS builds that pick their kernels at load time from the CPU, or from
    ``OPENBLAS_CORETYPE``. The choice moves every time in the benchmark (on a Zen 5 CPU the
    AVX2 "Haswell" kernels reach ~53 GFLOP/s a core, the AVX-512 "SkylakeX" ones ~86), so the
    report names it."""
    import scipy.linalg.cython_blas  # noqa: F401  (loads SciPy's BLAS, the one numba calls)
    from threadpoolctl import threadpool_info

    out = []
    for lib in threadpool_info():
        if lib.get("user_api") != "blas":
            continue
        name = os.path.basename(lib.get("filepath", "?")).split("-")[0].removesuffix(".so")
        out.append(f"{name} {lib.get('version')}: {lib.get('architecture', '?')}")
    return out


# environment variables that override OpenBLAS's choice of kernels (set in some sandboxes)
BLAS_ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def blas_line(kernels, env) -> str:
    """One report line from :func:`blas_kernels` and the set BLAS_ENV_VARS ``env`` (dict),
    e.g. ``BLAS kernels: libscipy_openblas 0.3.30: Haswell (set by OPENBLAS_CORETYPE=Haswell)``
    (``overmix bench`` and benchmarks/bench_train.py print it)."""
    line = "BLAS kernels: " + ("; ".join(kernels) or "unknown")
    if env:
        line += f" (set by {', '.join(f'{k}={v}' for k, v in env.items())})"
    return line


def machine_info() -> dict:
    """CPU model, core count, memory, library versions and BLAS of this machine."""
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "cpu": platform.processor() or "unknown"}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal"):
                    info["mem_total_gib"] = round(int(line.split()[1]) / 2 ** 20, 1)
    except OSError:
        pass
    import numba

    info["numpy"] = np.__version__
    info["numba"] = numba.__version__
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["blas"] = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # noqa: BLE001  (informational only; layout differs across numpy versions)
        info["blas"] = "unknown"
    info["blas_kernels"] = blas_kernels()
    info["blas_env"] = {k: os.environ[k] for k in BLAS_ENV_VARS if k in os.environ}
    for mod in ("jax", "torch"):
        if importlib.util.find_spec(mod) is not None:
            try:
                info[mod] = importlib.import_module(mod).__version__
            except Exception as err:  # noqa: BLE001  (a broken optional install is reported)
                info[mod] = f"import failed: {err}"
    info["threads_env"] = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                      "NUMBA_NUM_THREADS", "XLA_FLAGS")
                           if k in os.environ}
    if hasattr(os, "getloadavg"):
        info["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    return info


def mem_available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo, or None where it cannot be read."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def dense_jacrev_bytes(size: BenchSize) -> int:
    """Rough memory of a dense ``jacrev`` (JAX, torch): a few (B, H, n, n) float64 tensors
    live at once (the d cotangents batched through the dense attention maps), plus 1 GiB.
    Used only to skip a baseline that would not fit."""
    return 3 * size.d_model * size.n_heads * size.n ** 2 * 8 + 2 ** 30


# ---------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Measurement:
    """One implementation at one size, measured in its own process (seconds, MiB).

    ``forward_s``/``jacobian_s``: minimum over repeats after the first call;
    ``*_first_s``: the first call (compilation or cache load included); ``*_cpu_s``: the
    minimum process CPU time of the same calls (the single-core time when every library
    runs one thread; a sum over threads otherwise); ``peak_rss_mib``:
    the process's peak resident memory (ru_maxrss) after the Jacobian; ``setup_rss_mib``:
    its resident memory after imports and inputs, before the first call;
    ``rel_err``: max|J - J_overmix| / max|J_overmix| (None for overmix itself);
    ``error``: why it was not timed (failed check, skipped, crashed), else None.
    """

    impl: str
    size: str
    forward_s: float | None = None
    forward_first_s: float | None = None
    jacobian_s: float | None = None
    jacobian_first_s: float | None = None
    forward_cpu_s: float | None = None
    jacobian_cpu_s: float | None = None
    forward_first_cpu_s: float | None = None
    jacobian_first_cpu_s: float | None = None
    import_s: float | None = None
    setup_rss_mib: float | None = None
    peak_rss_forward_mib: float | None = None
    peak_rss_mib: float | None = None
    rel_err: float | None = None
    repeats: int = 0
    error: str | None = None


@dataclass(frozen=True)
class SizeResult:
    """All measurements at one size, with its FLOP count."""

    size: BenchSize
    flops: FlopCount
    measurements: dict = field(default_factory=dict)  # impl -> Measurement


@dataclass(frozen=True)
class CompileTimes:
    """overmix's first calls in fresh processes, with an empty and then a warm Numba cache.

    ``cold``/``warm``: Measurements whose ``import_s``, ``forward_first_s`` and
    ``jacobian_first_s`` are the user-visible start-up costs; ``forward_s``/``jacobian_s``
    are the steady-state times of the same process, so first - steady is the compile (or
    cache-load) cost.
    """

    size: str
    cold: Measurement
    warm: Measurement


@dataclass(frozen=True)
class BenchResult:
    """Everything one benchmark run measured (see :func:`run_benchmark`)."""

    machine: dict
    matmul_gflops: float
    matmul_gflops_cpu: float
    matmul_size: int
    repeats: int
    threads: int | None
    sizes: tuple
    compile: CompileTimes | None
    started: str
    wall_s: float

    def to_dict(self) -> dict:
        """Plain JSON-ready dict, with the derived GFLOP/s and speedups added."""
        out = {"machine": self.machine, "matmul_gflops": self.matmul_gflops,
               "matmul_gflops_cpu": self.matmul_gflops_cpu, "matmul_size": self.matmul_size,
               "repeats": self.repeats, "threads": self.threads,
               "started": self.started, "wall_s": self.wall_s, "sizes": []}
        for sr in self.sizes:
            ms = {}
            for impl, m in sr.measurements.items():
                row = dataclasses.asdict(m)
                row.update(derived(sr, m, self.matmul_gflops, self.matmul_gflops_cpu))
                ms[impl] = row
            out["sizes"].append({
                **dataclasses.asdict(sr.size),
                "d_ff": 4 * sr.size.d_model,
                "flops": {"forward": sr.flops.forward, "backward_top": sr.flops.backward_top,
                          "backward_below": sr.flops.backward_below, "total": sr.flops.total},
                "measurements": ms,
            })
        out["compile"] = None if self.compile is None else {
            "size": self.compile.size, "cold": dataclasses.asdict(self.compile.cold),
            "warm": dataclasses.asdict(self.compile.warm)}
        return out


def derived(sr: SizeResult, m: Measurement, matmul_gflops: float,
            matmul_gflops_cpu: float | None = None) -> dict:
    """Achieved GFLOP/s of the Jacobian (over the reverse-mode count), its fraction of the
    matmul rate, and overmix's speedup over ``m`` (t_m / t_overmix), where measured; the
    ``*_cpu`` entries do the same with CPU times and the CPU-time matmul rate."""
    out = {}
    ref = sr.measurements.get("overmix")
    for suffix, t_jac, t_fwd, rate, t_ref in (
            ("", m.jacobian_s, m.forward_s, matmul_gflops, ref and ref.jacobian_s),
            ("_cpu", m.jacobian_cpu_s, m.forward_cpu_s, matmul_gflops_cpu,
             ref and ref.jacobian_cpu_s)):
        gf = sr.flops.total / t_jac / 1e9 if t_jac else None
        out["jacobian_gflops" + suffix] = gf
        out["fraction_of_matmul" + suffix] = gf / rate if gf and rate else None
        out["forward_gflops" + suffix] = sr.flops.forward / t_fwd / 1e9 if t_fwd else None
        out["overmix_speedup" + suffix] = t_jac / t_ref if t_jac and t_ref else None
    return out


# ---------------------------------------------------------------------------------------
# one measurement = one fresh process
# ---------------------------------------------------------------------------------------
def _peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _current_rss_mib() -> float:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return _peak_rss_mib()


def _timed(fn, *args):
    """(result, wall seconds, process CPU seconds) of one call."""
    t, c = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, time.perf_counter() - t, time.process_time() - c


def _best(fn, X, repeats):
    """Minimum wall and minimum CPU time over ``repeats`` calls."""
    runs = [_timed(fn, X)[1:] for _ in range(repeats)]
    return min(r[0] for r in runs), min(r[1] for r in runs)


def _worker(spec_path: str, t0: float) -> None:
    """Entry point of a measurement process (see :func:`measure`); writes its result JSON.

    ``t0`` is ``time.perf_counter()`` read before ``import overmix``, so ``import_s`` covers
    importing overmix and the implementation's library.
    """
    with open(spec_path) as fh:
        spec = json.load(fh)
    impl = spec["impl"]
    size = BenchSize(**spec["size"])
    res = {"impl": impl, "size": size.name, "repeats": spec["repeats"]}
    if impl == "overmix":
        from . import jacobian as om_jac
        from . import stack as om_stack
    elif impl == "jax":
        import jax  # noqa: F401  (import cost measured here, not in the first call)
    elif impl == "torch":
        import torch  # noqa: F401
    res["import_s"] = time.perf_counter() - t0
    cfg, params, X = bench_case(size, spec["seed"])
    if impl == "overmix":
        fwd = lambda X: om_stack.forward(cfg, params, X).output  # noqa: E731
        jac = lambda X: om_jac.last_token_jacobian(cfg, params, X)  # noqa: E731
    elif impl == "numpy":
        from . import _bench_numpy as nb

        fwd = lambda X: nb.forward(cfg, params, X)  # noqa: E731
        jac = lambda X: nb.last_token_jacobian(cfg, params, X)  # noqa: E731
    elif impl == "jax":
        from . import _bench_jax

        fwd, jac = _bench_jax.build(cfg, params, size.n)
    elif impl == "torch":
        from . import _bench_torch

        fwd, jac = _bench_torch.build(cfg, params, size.n)
    else:
        raise ValueError(f"impl must be one of {IMPLS}; got {impl!r}")
    res["setup_rss_mib"] = _current_rss_mib()

    _, res["forward_first_s"], res["forward_first_cpu_s"] = _timed(fwd, X)
    res["forward_s"], res["forward_cpu_s"] = _best(fwd, X, spec["repeats"])
    res["peak_rss_forward_mib"] = _peak_rss_mib()

    J, res["jacobian_first_s"], res["jacobian_first_cpu_s"] = _timed(jac, X)
    if spec.get("reference"):
        ref = np.load(spec["reference"])
        err = float(np.abs(J - ref).max() / np.abs(ref).max()) if J.shape == ref.shape else math.inf
        res["rel_err"] = err
        if not err <= VERIFY_RTOL:
            res["error"] = (f"Jacobian differs from overmix's: max rel err {err:.3g} > {VERIFY_RTOL:g} "
                            f"(shapes {J.shape} vs {ref.shape}); not timed")
    if res.get("error") is None:
        res["jacobian_s"], res["jacobian_cpu_s"] = _best(jac, X, spec["repeats"])
    res["peak_rss_mib"] = _peak_rss_mib()
    if spec.get("save_jacobian"):
        np.save(spec["save_jacobian"], J)
    tmp = spec["result"] + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(res, fh)
    os.replace(tmp, spec["result"])


def measure(impl: str, size: BenchSize, *, repeats: int = 3, seed: int = 0, reference=None,
            save_jacobian=None, env=None, timeout=None) -> Measurement:
    """Measure one implementation at one size in a fresh Python process.

    Parameters
    ----------
    impl : {"overmix", "numpy", "jax", "torch"}
    size : BenchSize
    repeats : int
        Timed calls after the first one (the minimum is kept).
    reference : path, optional
        ``.npy`` of overmix's Jacobian: the first call's Jacobian is checked against it
        (relative error <= 1e-9) before timing.
    save_jacobian : path, optional
        Where to save this implementation's Jacobian (``.npy``).
    env : dict, optional
        Extra environment variables of the process (e.g. NUMBA_CACHE_DIR).
    timeout : float, optional
        Seconds before the process is killed (reported as an error).

    Returns
    -------
    Measurement
        With ``error`` set (and no times) when the process failed.
    """
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}; got {impl!r}")
    if not isinstance(size, BenchSize):
        raise TypeError(f"size must be a BenchSize; got {type(size).__name__}")
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise ValueError(f"repeats must be an int >= 1; got {repeats!r}")
    with tempfile.TemporaryDirectory(prefix="overmix-bench-") as tmp:
        spec = {"impl": impl, "size": dataclasses.asdict(size), "repeats": int(repeats),
                "seed": int(seed), "reference": None if reference is None else str(reference),
                "save_jacobian": None if save_jacobian is None else str(save_jacobian),
                "result": os.path.join(tmp, "result.json")}
        spec_path = os.path.join(tmp, "spec.json")
        with open(spec_path, "w") as fh:
            json.dump(spec, fh)
        code = ("import time; t0 = time.perf_counter(); import sys; "
                "from overmix.sims.bench import _worker; _worker(sys.argv[1], t0)")
        proc_env = dict(os.environ, **(env or {}))
        try:
            proc = subprocess.run([sys.executable, "-c", code, spec_path], env=proc_env,
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return Measurement(impl=impl, size=size.name, repeats=repeats,
                               error=f"timed out after {timeout} s")
        if proc.returncode != 0 or not os.path.exists(spec["result"]):
            tail = (proc.stderr or "").strip().splitlines()[-3:]
            why = (f"killed by signal {-proc.returncode} (out of memory?)" if proc.returncode < 0
                   else f"exit code {proc.returncode}")
            return Measurement(impl=impl, size=size.name, repeats=repeats,
                               error=f"process failed: {why}: {' | '.join(tail)}")
        with open(spec["result"]) as fh:
            return Measurement(**json.load(fh))


def compile_times(size: BenchSize | str = "small", *, env=None, timeout=None) -> CompileTimes:
    """overmix's first-call times in two fresh processes sharing a new, empty Numba cache
    directory (NUMBA_CACHE_DIR): the first compiles every kernel, the second loads them."""
    (size,) = resolve_sizes(size)
    with tempfile.TemporaryDirectory(prefix="overmix-numba-cache-") as cache:
        env = dict(env or {}, NUMBA_CACHE_DIR=cache)
        cold = measure("overmix", size, repeats=1, env=env, timeout=timeout)
        warm = measure("overmix", size, repeats=1, env=env, timeout=timeout)
    return CompileTimes(size=size.name, cold=cold, warm=warm)


# ---------------------------------------------------------------------------------------
# the whole benchmark
# ---------------------------------------------------------------------------------------
def run_benchmark(sizes="all", *, repeats: int = 3, jax: bool = True, torch="auto",
                  compile: bool = True, matmul_size: int = 2048, seed: int = 0,
                  threads=None, timeout=None, progress=None) -> BenchResult:
    """Run the benchmark of issue 8 and return every number it measured.

    Parameters
    ----------
    sizes : "small" | "large" | "all" | BenchSize | sequence of them
    repeats : int
        Timed calls per measurement after the first call (minimum kept).
    jax : bool
        Include the JAX ``jit(jacrev)`` baseline (needs the ``bench`` extra).
    torch : bool or "auto"
        Include ``torch.func.jacrev``; "auto": when torch is importable.
    compile : bool
        Also measure overmix's first-call compile time, empty vs warm Numba cache.
    matmul_size : int
        Side of the square matmul that measures the machine's float64 rate.
    threads : int, optional
        Cap every measurement process (and the matmul-rate process) at this many BLAS /
        OpenMP / Numba / XLA threads; None keeps the machine's defaults. On a machine shared
        with other jobs, 1 avoids multi-threaded BLAS waiting on descheduled threads.
    progress : callable(str), optional
        Called with a short message before each step (the CLI prints them).

    Returns
    -------
    BenchResult
        ``to_dict()`` adds GFLOP/s, fractions of the matmul rate and speedups.

    Notes
    -----
    A dense ``jacrev`` baseline is skipped (reported, not run) when
    :func:`dense_jacrev_bytes` exceeds the memory available, so a large run cannot push a
    shared machine into swapping or the OOM killer.
    """
    say = progress or (lambda msg: None)
    sizes = resolve_sizes(sizes)
    env = thread_env(threads)
    if torch == "auto":
        torch = importlib.util.find_spec("torch") is not None
    if jax and importlib.util.find_spec("jax") is None:
        raise ModuleNotFoundError("jax=True needs jax: pip install 'overmix[bench]' "
                                  "(or pass jax=False / --no-jax)")
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    t_start = time.perf_counter()
    machine = machine_info()
    say(f"measuring the float64 matmul rate ({matmul_size}^3)")
    rate, rate_cpu = matmul_rate_fresh(matmul_size, env=env, timeout=timeout)
    results = []
    with tempfile.TemporaryDirectory(prefix="overmix-bench-ref-") as tmp:
        for size in sizes:
            sr = SizeResult(size=size, flops=reverse_mode_flops(size.n_layers, size.n,
                                                                size.d_model, size.n_heads))
            ref = os.path.join(tmp, f"J_{size.name}.npy")
            say(f"[{size.name}] overmix")
            m = measure("overmix", size, repeats=repeats, seed=seed, save_jacobian=ref,
                        env=env, timeout=timeout)
            sr.measurements["overmix"] = m
            if m.error is not None:
                results.append(sr)
                continue
            impls = ["numpy"] + (["jax"] if jax else []) + (["torch"] if torch else [])
            for impl in impls:
                if impl in ("jax", "torch"):
                    need, have = dense_jacrev_bytes(size), mem_available_bytes()
                    if have is not None and need > have:
                        sr.measurements[impl] = Measurement(
                            impl=impl, size=size.name, repeats=repeats,
                            error=f"skipped: needs about {need / 2**30:.1f} GiB, "
                                  f"{have / 2**30:.1f} GiB available")
                        continue
                say(f"[{size.name}] {impl}")
                sr.measurements[impl] = measure(impl, size, repeats=repeats, seed=seed,
                                                reference=ref, env=env, timeout=timeout)
            results.append(sr)
    ct = None
    if compile:
        say("overmix first-call compile time: empty vs warm Numba cache")
        ct = compile_times(sizes[0], env=env, timeout=timeout)
    # measured again at the end and the faster kept: a shared machine's momentary slowdown
    # must not lower the rate and so inflate every fraction of it (seen once on the project's
    # machine: 94 GFLOP/s at the start of a run, where the same product gives ~178 alone)
    say("measuring the float64 matmul rate again")
    rate2, rate_cpu2 = matmul_rate_fresh(matmul_size, env=env, timeout=timeout)
    rate, rate_cpu = max(rate, rate2), max(rate_cpu, rate_cpu2)
    if hasattr(os, "getloadavg"):
        machine["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    return BenchResult(machine=machine, matmul_gflops=rate, matmul_gflops_cpu=rate_cpu,
                       matmul_size=matmul_size,
                       repeats=repeats, threads=threads, sizes=tuple(results), compile=ct,
                       started=started, wall_s=time.perf_counter() - t_start)


# ---------------------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------------------
def _f(x, spec):
    return "-" if x is None else format(x, spec)


def _t(x, width=8):
    """Seconds with 3 significant digits, right-aligned."""
    return f"{'-' if x is None else format(x, '.3g'):>{width}}"


def _pct(x):
    return f"{'-' if x is None else format(100 * x, '.1f') + '%':>8}"


def _speed(x):
    return f"{'-' if x is None else format(x, '.2f') + 'x':>8}"


def format_report(result: BenchResult) -> str:
    """The benchmark as plain-text tables (what ``overmix bench`` prints)."""
    mi = result.machine
    lines = [
        f"machine: {mi.get('cpu')}, {mi.get('cpu_count')} cores, {mi.get('mem_total_gib')} GiB; "
        f"python {mi.get('python')}, numpy {mi.get('numpy')} ({mi.get('blas')}), "
        f"numba {mi.get('numba')}" + "".join(f", {k} {mi[k]}" for k in ("jax", "torch") if k in mi),
        blas_line(mi.get("blas_kernels", []), mi.get("blas_env")),
        f"threads: {'machine default' if result.threads is None else result.threads}; load average "
        f"(1, 5, 15 min) at start {mi.get('loadavg', '?')}, at end {mi.get('loadavg_end', '?')}",
        f"float64 matmul rate: {result.matmul_gflops:.1f} GFLOP/s wall, "
        f"{result.matmul_gflops_cpu:.1f} GFLOP/s per CPU second "
        f"(best of 5 {result.matmul_size}x{result.matmul_size} products at the start and 5 at the "
        "end)",
        f"times: min of {result.repeats} calls after the first; '1st' = first call in a fresh "
        "process (compile or cache load); peak = process max RSS; speedup = t_impl / t_overmix",
    ]
    hdr = (f"{'impl':<8} {'fwd s':>8} {'fwd 1st':>8} {'jac s':>8} {'jac 1st':>8} {'GFLOP/s':>8} "
           f"{'%matmul':>8} {'speedup':>8} {'peak MiB':>9} {'rel err':>8}")
    hdr_cpu = (f"{'impl':<8} {'fwd cpu':>8} {'jac cpu':>8} {'GFLOP/s':>8} {'%matmul':>8} "
               f"{'speedup':>8}")
    for sr in result.sizes:
        s, fc = sr.size, sr.flops
        lines += ["", f"[{s.name}] L={s.n_layers} n={s.n} d={s.d_model} H={s.n_heads} "
                      f"(d_ff={4 * s.d_model}, rms, RoPE, causal, GELU, float64)",
                  f"reverse-mode FLOPs: {fc.total / 1e9:.2f} G = forward {fc.forward / 1e9:.2f} G "
                  f"+ backward {fc.backward / 1e9:.2f} G (top layer {fc.backward_top / 1e9:.2f} G)",
                  "wall-clock time:", hdr, "-" * len(hdr)]
        cpu_rows = []
        for impl, m in sr.measurements.items():
            dv = derived(sr, m, result.matmul_gflops, result.matmul_gflops_cpu)
            if m.error is not None and m.jacobian_s is None and m.forward_s is None:
                lines.append(f"{impl:<8} {m.error}")
                continue
            speed = f"{'':>8}" if impl == "overmix" else _speed(dv["overmix_speedup"])
            lines.append(
                f"{impl:<8} {_t(m.forward_s)} {_t(m.forward_first_s)} "
                f"{_t(m.jacobian_s)} {_t(m.jacobian_first_s)} "
                f"{_f(dv['jacobian_gflops'], '8.1f'):>8} {_pct(dv['fraction_of_matmul'])} {speed} "
                f"{_f(m.peak_rss_mib, '9.0f'):>9} {_f(m.rel_err, '8.1e'):>8}")
            if m.error is not None:
                lines.append(f"{'':<8} {m.error}")
            speed = f"{'':>8}" if impl == "overmix" else _speed(dv["overmix_speedup_cpu"])
            cpu_rows.append(
                f"{impl:<8} {_t(m.forward_cpu_s)} {_t(m.jacobian_cpu_s)} "
                f"{_f(dv['jacobian_gflops_cpu'], '8.1f'):>8} "
                f"{_pct(dv['fraction_of_matmul_cpu'])} {speed}")
        lines += ["process CPU time (= one core's time when every library runs one thread, "
                  "see --threads; a sum over threads otherwise):", hdr_cpu, "-" * len(hdr_cpu)]
        lines += cpu_rows
    ct = result.compile
    if ct is not None:
        lines += ["", f"overmix start-up at size {ct.size} (fresh processes, NUMBA_CACHE_DIR = "
                      "a new empty directory):"]
        for name, m in (("empty cache", ct.cold), ("warm cache", ct.warm)):
            if m.error is not None:
                lines.append(f"  {name:<12} {m.error}")
                continue
            lines.append(
                f"  {name:<12} import {m.import_s:.2f} s, first forward {m.forward_first_s:.2f} s "
                f"(CPU {m.forward_first_cpu_s:.2f} s; steady {m.forward_s:.3g} s), first Jacobian "
                f"{m.jacobian_first_s:.2f} s (CPU {m.jacobian_first_cpu_s:.2f} s; steady "
                f"{m.jacobian_s:.3g} s)")
    lines.append(f"\nwall time {result.wall_s:.0f} s")
    return "\n".join(lines)


def write_json(result: BenchResult, path) -> None:
    """Write ``result.to_dict()`` to ``path`` atomically (temp file in the same folder, then
    rename), so a reader never sees a half-written file."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".bench-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(result.to_dict(), fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
