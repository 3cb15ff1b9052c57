"""``overmix paper``: build paper/main.pdf from the LaTeX sources with latexmk.

Before the build it (re)writes the numbers the text quotes into ``paper/generated/`` from
``overmix.theory`` (each file carries a key: a hash of the theory sources, this file and the
mode, so an unchanged key skips the work), regenerates missing figures through the
``overmix figures`` command, and runs ``overmix check`` if its table
(``paper/generated/verification.tex``) is missing. latexmk runs in a temporary directory
inside ``paper/``; ``paper/main.pdf`` is replaced (atomically) only by a complete PDF.

Exit codes: 0 built; 1 LaTeX error, undefined reference or citation (or, with ``--strict``,
a missing number or figure); 2 no TeX installation or no paper sources.
"""

from __future__ import annotations

HELP = "build paper/main.pdf with latexmk (regenerates missing numbers, figures and tables first)"

# Debian packages that build the paper (measured: ~150 MB, about a minute to install)
TEX_PACKAGES = ("latexmk", "texlive-latex-base", "texlive-latex-recommended")

# the files of paper/generated/ that this command writes itself (verification.tex comes
# from `overmix check`, the SymPy forms from the theory modules' own writers)
_NUMBER_FILES = ("numbers_meta", "numbers_a", "numbers_c", "numbers_train")

# MEN Table 2 as printed (a source's reported values): context -> base_L
MEN_TABLE2 = (("1k", 1024, 4.3e3), ("2k", 2048, 1.6e4), ("4k", 4096, 2.7e4),
              ("8k", 8192, 8.4e4), ("16k", 16384, 3.1e5), ("32k", 32768, 6.4e5),
              ("64k", 65536, 2.1e6), ("128k", 131072, 7.8e6), ("256k", 262144, 3.6e7),
              ("512k", 524288, 6.4e7), ("1M", 1048576, 5.1e8))
QUICK_MEN_CONTEXT = 8192  # --quick scans the base grid only up to this context (~20 s)


def add_arguments(parser):
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true",
                      help="small figures and reduced scans (the default; seconds to minutes)")
    mode.add_argument("--full", action="store_true",
                      help="full-size figures and complete scans (up to ~25 minutes on 2 cores)")
    parser.add_argument("--force", action="store_true",
                        help="rewrite the generated numbers even when their key is unchanged")
    parser.add_argument("--no-figures", action="store_true",
                        help="do not regenerate missing figures (they print as placeholders)")
    parser.add_argument("--no-check", action="store_true",
                        help="do not run `overmix check` when its table is missing")
    parser.add_argument("--no-generate", action="store_true",
                        help="build from what is in paper/generated and figures/out as it is")
    parser.add_argument("--no-build", action="store_true",
                        help="only regenerate numbers, figures and tables; do not run LaTeX")
    parser.add_argument("--strict", action="store_true",
                        help="fail if any number, table or figure is still missing")
    parser.add_argument("--paper-dir", default=None, metavar="DIR",
                        help="the paper sources (default: paper/ of the source checkout)")


# ---------------------------------------------------------------------------------------------
# command
# ---------------------------------------------------------------------------------------------
def run(args) -> int:
    import sys
    from pathlib import Path

    paper = Path(args.paper_dir) if args.paper_dir else _default_paper_dir()
    if not (paper / "main.tex").is_file():
        print(f"overmix paper: error: no paper sources at {paper} (main.tex missing); run from a "
              "source checkout of overmix or pass --paper-dir", file=sys.stderr)
        return 2
    latexmk = None
    if not args.no_build:
        latexmk = find_tex()
        if latexmk is None:
            print(missing_tex_message(), file=sys.stderr)
            return 2
    quick = not args.full
    if not args.no_generate:
        _generate(paper, quick=quick, force=args.force, figures=not args.no_figures,
                  check=not args.no_check)
    if args.no_build:
        return 0
    result = build_pdf(paper, latexmk)
    for line in result.errors:
        print(line, file=sys.stderr)
    if not result.ok:
        print(f"overmix paper: build FAILED ({result.reason}); full log: {result.log_path}",
              file=sys.stderr)
        return 1
    if result.missing:
        print(f"overmix paper: {len(result.missing)} placeholder(s) in the PDF:", file=sys.stderr)
        for item in result.missing:
            print(f"  {item}", file=sys.stderr)
    print(f"overmix paper: wrote {paper / 'main.pdf'} ({result.pages} pages, "
          f"{result.seconds:.1f} s)")
    if args.strict and result.missing:
        print("overmix paper: --strict: missing numbers or figures", file=sys.stderr)
        return 1
    return 0


def _default_paper_dir():
    from pathlib import Path

    import overmix

    # overmix/ sits at the repository root next to paper/ (source checkout, editable install)
    return Path(overmix.__file__).resolve().parents[1] / "paper"


# ---------------------------------------------------------------------------------------------
# TeX
# ---------------------------------------------------------------------------------------------
def find_tex():
    """Path of latexmk if latexmk, pdflatex and bibtex are all on PATH, else None."""
    import shutil

    found = {tool: shutil.which(tool) for tool in ("latexmk", "pdflatex", "bibtex")}
    return found["latexmk"] if all(found.values()) else None


def missing_tex_message() -> str:
    """What to install when no TeX is found (Debian/Ubuntu package names)."""
    import shutil

    absent = [t for t in ("latexmk", "pdflatex", "bibtex") if shutil.which(t) is None]
    return ("overmix paper: error: no TeX installation found ("
            + ", ".join(absent) + " not on PATH).\n"
            "  On Debian/Ubuntu install (about 150 MB, a minute):\n"
            "    sudo apt-get update && sudo apt-get install -y --no-install-recommends "
            + " ".join(TEX_PACKAGES) + "\n"
            "  Elsewhere: any TeX Live with latexmk, pdflatex, bibtex and the LaTeX packages "
            "listed in paper/README.md.\n"
            "  `overmix paper --no-build` still regenerates the numbers and figures.")


class BuildResult:
    """Outcome of one latexmk run (see :func:`build_pdf`)."""

    def __init__(self, ok, reason, errors, missing, pages, seconds, log_path):
        self.ok, self.reason, self.errors, self.missing = ok, reason, errors, missing
        self.pages, self.seconds, self.log_path = pages, seconds, log_path


def build_pdf(paper, latexmk) -> BuildResult:
    """Run latexmk on paper/main.tex in a temporary folder; move the PDF in if all is well.

    "All is well" means latexmk succeeded and the final log has no undefined reference or
    citation. The log of the last build is kept as paper/build.log.
    """
    import os
    import re
    import subprocess
    import tempfile
    import time
    from pathlib import Path

    paper = Path(paper)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="build-", dir=paper) as tmp:
        cmd = [latexmk, "-pdf", "-interaction=nonstopmode", "-halt-on-error",
               "-file-line-error", f"-outdir={tmp}", "main.tex"]
        proc = subprocess.run(cmd, cwd=paper, capture_output=True, text=True,
                              errors="replace", check=False)
        log_file = Path(tmp) / "main.log"
        log = log_file.read_text(errors="replace") if log_file.exists() else ""
        blg = Path(tmp) / "main.blg"
        blg_text = blg.read_text(errors="replace") if blg.exists() else ""
        log_path = paper / "build.log"
        _write_atomic(log_path, log or (proc.stdout + proc.stderr))
        seconds = time.perf_counter() - t0
        errors = [ln for ln in log.splitlines()
                  if ln.startswith("!") or re.match(r"^[^:\s]+\.tex:\d+: ", ln)]
        undefined = sorted(set(re.findall(
            r"LaTeX Warning: (Reference|Citation) `([^']+)'[^\n]*undefined", log)))
        undefined_text = [f"undefined {kind.lower()}: {key}" for kind, key in undefined]
        undefined_text += [f"bibtex: {ln.strip()}" for ln in blg_text.splitlines()
                           if ln.startswith("Warning--I didn't find")]
        # TeX wraps its log at 79 characters, also inside a long key: join the pieces
        missing = sorted({m.replace("\n", "") for m in re.findall(
            r"Package overmix Warning: (generated value or file `[^']+' missing|"
            r"figure `[^']+' missing)", log)})
        pages = re.findall(r"Output written on .*?\((\d+) pages?", log)
        pdf = Path(tmp) / "main.pdf"
        if proc.returncode != 0 or not pdf.exists():
            if not errors:
                errors = (proc.stdout + proc.stderr).strip().splitlines()[-20:]
            return BuildResult(False, f"latexmk exit code {proc.returncode}", errors, missing,
                               0, seconds, log_path)
        if undefined_text:
            return BuildResult(False, "undefined references or citations", undefined_text,
                               missing, 0, seconds, log_path)
        os.replace(pdf, paper / "main.pdf")  # same file system: atomic
    return BuildResult(True, "", [], missing, int(pages[-1]) if pages else 0, seconds, log_path)


# ---------------------------------------------------------------------------------------------
# generated numbers, figures and the verification table
# ---------------------------------------------------------------------------------------------
def _generate(paper, *, quick, force, figures, check):
    import sys

    gen = paper / "generated"
    gen.mkdir(exist_ok=True)
    key = _sources_key(quick)
    for stem, make in (("numbers_meta", lambda: numbers_meta(quick)),
                       ("numbers_a", numbers_a),
                       ("numbers_c", lambda: numbers_c(quick))):
        path = gen / f"{stem}.tex"
        # numbers_c holds the slow scans (MEN's table); the other files take milliseconds
        if stem == "numbers_c" and not force and _file_key(path) == key:
            continue
        print(f"overmix paper: writing {path}")
        try:
            values = make()
        except Exception as err:  # report and go on: the paper prints placeholders
            print(f"overmix paper: could not compute {stem}: {type(err).__name__}: {err}",
                  file=sys.stderr)
            continue
        _write_atomic(path, _gendefs(values, key))
    for name, writer in (("SymPy forms of section A", _write_forms_a),
                         ("SymPy forms of section B", _write_forms_b)):
        try:
            writer(gen)
        except Exception as err:
            print(f"overmix paper: could not write the {name}: {type(err).__name__}: {err}",
                  file=sys.stderr)
    if figures:
        _make_missing_figures(paper, quick)
    # the training section quotes the data of the training figures as they are now
    # (full or quick); reading five small files takes milliseconds, so it is always rewritten
    try:
        values = numbers_train(paper.parent / "figures" / "out")
    except Exception as err:  # report and go on: the paper prints placeholders
        print(f"overmix paper: could not read the training figures' data: "
              f"{type(err).__name__}: {err}", file=sys.stderr)
    else:
        _write_atomic(gen / "numbers_train.tex", _gendefs(values, key))
    if check and not (gen / "verification.tex").exists():
        _run_check(gen, quick)


def _sources_key(quick) -> str:
    """Hash of the theory sources, this file and the mode: the cache key of the numbers."""
    import hashlib
    from pathlib import Path

    import overmix.theory

    h = hashlib.sha256()
    files = sorted(Path(overmix.theory.__file__).parent.glob("*.py")) + [Path(__file__)]
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    h.update(b"quick" if quick else b"full")
    return h.hexdigest()[:16]


def _file_key(path):
    try:
        with open(path, encoding="utf-8") as f:
            f.readline()
            second = f.readline()
    except OSError:
        return None
    return second.split("key:", 1)[1].strip() if "key:" in second else None


def _gendefs(values: dict, key: str) -> str:
    lines = ["% generated by `overmix paper` (overmix/commands/paper.py); do not edit",
             f"% key: {key}"]
    lines += [f"\\gendef{{{k}}}{{{v}}}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def _write_atomic(path, text: str) -> None:
    from overmix.theory._io import write_text_atomic

    write_text_atomic(path, text)

def _math(s: str) -> str:
    return f"\\ensuremath{{{s}}}"


def _sci(x: float, digits: int = 2, *, always: bool = False) -> str:
    """x as TeX: 1.13\\times10^{-2}; plain decimals between 1e-3 and 1e5 unless ``always``."""
    import math

    import numpy as np

    if x == 0 or (not always and 1e-3 <= abs(x) < 1e5):
        # digits + 1 significant digits, never in exponent notation (5623.4 -> 5620)
        return _math(np.format_float_positional(x, precision=digits + 1, unique=False,
                                                fractional=False, trim="-"))
    e = math.floor(math.log10(abs(x)))
    m = x / 10 ** e
    if round(m, digits) >= 10:
        m, e = m / 10, e + 1
    return _math(f"{m:.{digits}f}\\times10^{{{e}}}")


def _signed(x: float, digits: int = 2) -> str:
    return _math(f"{x:+.{digits}f}")


def _int(x) -> str:
    return "--" if x is None else str(int(x))


def numbers_meta(quick: bool) -> dict:
    """Version, git revision and mode of this build."""
    import subprocess
    from pathlib import Path

    import overmix

    out = {"gen-version": overmix.__version__}
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, cwd=Path(overmix.__file__).parent, check=False)
        if rev.returncode == 0 and rev.stdout.strip():
            out["gen-revision"] = rev.stdout.strip()
    except OSError:  # no git: the revision is simply not printed
        pass
    if quick:
        out["gen-quick"] = "1"
    return out


def numbers_a() -> dict:
    """Values quoted in section A: the gamma* table (A6), sink logits (A7), budget model (A9)."""
    from overmix.theory import (budget_sink_fraction, min_sink_mass, min_sink_mass_limit,
                                sink_logit_needed)

    out = {}
    tau, w = 0.5, 1.0
    ns, Ls = (64, 1024, 16384, 131072), (8, 32, 80)
    out["a6-tau"], out["a6-w"] = f"{tau:g}", f"{w:g}"
    for a, n in enumerate(ns, 1):
        out[f"a6-n{a}"] = str(n)
    for b, L in enumerate(Ls, 1):
        out[f"a6-L{b}"] = str(L)
        for a, n in enumerate(ns, 1):
            out[f"a6-g-{b}-{a}"] = f"{min_sink_mass(n, L, tau, w):.4f}"
        out[f"a6-g-{b}-inf"] = f"{min_sink_mass_limit(L, tau, w):.4f}"
    gamma = 0.9
    out["a7-gamma"] = f"{gamma:g}"
    for a, t in enumerate((128, 8192, 131072), 1):
        out[f"a7-t{a}"] = str(t)
        out[f"a7-b{a}"] = f"{sink_logit_needed(gamma, t):.2f}"
    n, tau9 = 64, 0.5
    out["a9-n"], out["a9-tau"] = str(n), f"{tau9:g}"
    for name, L, H in (("8b", 32, 32), ("70b", 80, 64), ("405b", 126, 128)):
        frac = budget_sink_fraction(n, L, H, tau9, 1.0 / H, allocation="free")
        out[f"a9-{name}"] = f"{100 * frac:.1f}\\%"
    return out


# ---------------------------------------------------------------------------------------------
# the training section: values read from the training figures' data (figures/out/NAME.npz)
# ---------------------------------------------------------------------------------------------
_BOS_ROWS = {"bb: first": "bb-first", "bb: none": "bb-none", "docs: first": "docs-first",
             "docs: none": "docs-none", "docs: every": "docs-every"}
_VARIANTS = ("adam", "sgd", "logit", "value", "both")

# every key numbers_train writes when all five training figures are built
TRAIN_KEYS = (
    "train-mode",
    *(f"train-{f}-seeds" for f in ("sinks", "ctx", "dh", "bos", "int")),
    *(f"train-sinks-{k}" for k in (
        "L", "H", "n", "steps", "metric-init", "metric-final", "metric-min", "metric-max",
        "half-step", "loss-final", "bayes", "act-prev-trig", "act-prev-trig-min",
        "act-prev-other", "act-bos-trig", "act-bos-other", "oth-bos-other", "oth-prev-trig",
        "value-ratio", "value-ratio-min", "value-ratio-max", "residual-ratio",
        "residual-ratio-max", "act-bos-other-min", "act-bos-other-max", "ubos")),
    *(f"train-ctx-{k}" for k in (
        "ns", "tokens", "steps", "metric-list", "metric-first", "metric-last", "n-first",
        "n-last", "ualpha-first", "bos-list", "ubos-list", "ratio-list", "ratio-first",
        "ratio-last")),
    *(f"train-dh-{k}" for k in ("Hs", "Ls", "table", "L1", "steps", "range", "L1-H1-max")),
    *(f"train-bos-{r}-{m}" for r in _BOS_ROWS.values() for m in
      ("with", "without", "loss-with", "loss-without", "range-with", "range-without",
       "mass-with", "mass-without")),
    "train-bos-ubos",
    *(f"train-int-{v}-{k}" for v in _VARIANTS for k in ("metric", "min", "max", "loss")),
    "train-int-logit-removed", "train-int-both-removed", "train-int-b", "train-int-bayes",
    "train-int-excess-max", "train-int-logit-mass", "train-int-logit-mass-removed",
    "train-int-adam-mass",
)


def _read_figure(out, name):
    """(arrays, metadata) of figures/out/NAME.npz + NAME.json, or None if either is missing."""
    import json

    import numpy as np

    npz, meta = out / f"{name}.npz", out / f"{name}.json"
    if not (npz.exists() and meta.exists()):
        return None
    with np.load(npz, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return arrays, json.loads(meta.read_text(encoding="utf-8"))


def _per_seed(d, key):
    """(S, ...) per-seed values of ``key`` (``key_seeds`` when the data has it)."""
    import numpy as np

    return np.asarray(d[f"{key}_seeds"] if f"{key}_seeds" in d else np.asarray(d[key])[None],
                      dtype=float)


def _f2(x) -> str:
    return f"{float(x):.2f}"


def _list(xs, fmt=_f2) -> str:
    return ", ".join(fmt(x) for x in xs)


def numbers_train(figures_out) -> dict:
    """Values quoted in the training section, from the data of the training figures
    (fig15..fig19) in ``figures_out`` as ``overmix figures`` wrote them (full or quick).

    A figure whose NAME.npz / NAME.json is missing contributes no keys (the text prints red
    placeholders). Seed-averaged values are the means over the figure's seeds, with the
    smallest and largest seed as ``-min`` / ``-max`` or ``-range``. Keys: :data:`TRAIN_KEYS`.
    """
    from pathlib import Path

    import numpy as np

    from overmix.sims.experiments import uniform_attention_baselines

    out = Path(figures_out)
    vals, modes = {}, []

    def seeds(d):
        return int(np.asarray(d["seeds"]).size) if "seeds" in d else 1

    fig = _read_figure(out, "fig15_train_sinks")
    if fig is not None:
        d, meta = fig
        modes.append(meta["quick"])
        c = meta["config"]["setting"]
        m = _per_seed(d, "sink_metric")  # (S, R)
        mean, steps = m.mean(axis=0), np.asarray(d["steps"])
        half = int(steps[np.argmax(mean >= 0.5 * mean[-1])]) if mean[-1] > 0 else 0
        vals.update({"train-sinks-seeds": str(seeds(d)), "train-sinks-L": str(c["L"]),
                     "train-sinks-H": str(c["H"]), "train-sinks-n": str(c["n"]),
                     "train-sinks-steps": str(int(steps[-1])),
                     "train-sinks-metric-init": _f2(mean[0]),
                     "train-sinks-metric-final": _f2(mean[-1]),
                     "train-sinks-metric-min": _f2(m[:, -1].min()),
                     "train-sinks-metric-max": _f2(m[:, -1].max()),
                     "train-sinks-half-step": str(half),
                     "train-sinks-loss-final": _f2(_per_seed(d, "eval_loss")[:, -1].mean()),
                     "train-sinks-bayes": _f2(_per_seed(d, "bayes_loss").mean())})
        for key, src in (("act-prev-trig", "active__prev_mass_trigger"),
                         ("act-prev-other", "active__prev_mass_other"),
                         ("act-bos-trig", "active__bos_mass_trigger"),
                         ("act-bos-other", "active__bos_mass_other"),
                         ("oth-bos-other", "others__bos_mass_other"),
                         ("oth-prev-trig", "others__prev_mass_trigger")):
            vals[f"train-sinks-{key}"] = _f2(_per_seed(d, src).mean())
        vals["train-sinks-act-prev-trig-min"] = _f2(_per_seed(d, "active__prev_mass_trigger").min())
        bo = _per_seed(d, "active__bos_mass_other")
        vals["train-sinks-act-bos-other-min"] = _f2(bo.min())
        vals["train-sinks-act-bos-other-max"] = _f2(bo.max())
        # what uniform causal attention puts on position 0, queries 1..n-1
        vals["train-sinks-ubos"] = f"{uniform_attention_baselines(int(c['n']))[1]:.3f}"
        v = _per_seed(d, "active__value_ratio")
        vals.update({"train-sinks-value-ratio": _f2(v.mean()), "train-sinks-value-ratio-min": _f2(v.min()),
                     "train-sinks-value-ratio-max": _f2(v.max())})
        r = _per_seed(d, "residual_ratio")
        vals.update({"train-sinks-residual-ratio": _f2(r.mean()),
                     "train-sinks-residual-ratio-max": _f2(r.max())})

    fig = _read_figure(out, "fig16_train_context")
    if fig is not None:
        d, meta = fig
        modes.append(meta["quick"])
        c = meta["config"]["setting"]
        ns = [int(n) for n in d["n"]]
        metric = _per_seed(d, "final_sink_metric").mean(axis=0)
        bos = _per_seed(d, "bos_mass").mean(axis=0)
        ubos = np.asarray(d["uniform_bos_mass"], dtype=float)
        ratio = bos / ubos
        vals.update({"train-ctx-seeds": str(seeds(d)), "train-ctx-ns": ", ".join(map(str, ns)),
                     "train-ctx-tokens": str(c["tokens"]), "train-ctx-steps": str(c["steps"]),
                     "train-ctx-metric-list": _list(metric),
                     "train-ctx-metric-first": _f2(metric[0]), "train-ctx-metric-last": _f2(metric[-1]),
                     "train-ctx-n-first": str(ns[0]), "train-ctx-n-last": str(ns[-1]),
                     "train-ctx-ualpha-first": _f2(d["uniform_sink_score"][0]),
                     "train-ctx-bos-list": _list(bos, lambda x: f"{x:.3f}"),
                     "train-ctx-ubos-list": _list(ubos, lambda x: f"{x:.3f}"),
                     "train-ctx-ratio-list": _list(ratio, lambda x: f"{x:.1f}"),
                     "train-ctx-ratio-first": f"{ratio[0]:.1f}", "train-ctx-ratio-last": f"{ratio[-1]:.1f}"})

    fig = _read_figure(out, "fig17_train_depth_heads")
    if fig is not None:
        d, meta = fig
        modes.append(meta["quick"])
        g = _per_seed(d, "sink_grid")  # (S, len(Ls), len(Hs))
        mean = g.mean(axis=0)
        Ls, Hs = [int(x) for x in d["Ls"]], [int(x) for x in d["Hs"]]
        rows = [f"$L={L}$: {_list(mean[a])}" for a, L in enumerate(Ls)]
        vals.update({"train-dh-seeds": str(seeds(d)), "train-dh-Hs": ", ".join(map(str, Hs)),
                     "train-dh-Ls": ", ".join(map(str, Ls)), "train-dh-table": "; ".join(rows),
                     "train-dh-steps": str(meta["config"]["setting"]["steps"]),
                     "train-dh-range": _f2((g.max(axis=0) - g.min(axis=0)).max())})
        if 1 in Ls:
            vals["train-dh-L1"] = _list(mean[Ls.index(1)])
            if 1 in Hs:  # one layer, one head: the largest value over seeds
                vals["train-dh-L1-H1-max"] = _f2(g[:, Ls.index(1), Hs.index(1)].max())

    fig = _read_figure(out, "fig18_train_bos")
    if fig is not None:
        d, meta = fig
        modes.append(meta["quick"])
        vals["train-bos-seeds"] = str(seeds(d))
        sink, lss = _per_seed(d, "sink_table"), _per_seed(d, "loss_table")  # (S, rows, 2)
        mass = _per_seed(d, "bos_mass_table")
        n = int(meta["config"]["setting"]["n"])
        vals["train-bos-ubos"] = f"{uniform_attention_baselines(n)[1]:.3f}"
        for a, mode in enumerate(str(m) for m in d["train_modes"]):
            row = _BOS_ROWS.get(mode)
            if row is None:
                continue
            for b, tag in enumerate(("with", "without")):
                vals[f"train-bos-{row}-{tag}"] = _f2(sink[:, a, b].mean())
                vals[f"train-bos-{row}-loss-{tag}"] = _f2(lss[:, a, b].mean())
                vals[f"train-bos-{row}-mass-{tag}"] = f"{mass[:, a, b].mean():.3f}"
                vals[f"train-bos-{row}-range-{tag}"] = (f"{sink[:, a, b].min():.2f}--"
                                                        f"{sink[:, a, b].max():.2f}")

    fig = _read_figure(out, "fig19_train_interventions")
    if fig is not None:
        d, meta = fig
        modes.append(meta["quick"])
        vals["train-int-seeds"] = str(seeds(d))
        m, rem = _per_seed(d, "final_sink_metric"), _per_seed(d, "sink_metric_without_knob")
        lss = _per_seed(d, "final_loss")
        for k, v in enumerate(_VARIANTS[:m.shape[1]]):
            vals.update({f"train-int-{v}-metric": _f2(m[:, k].mean()),
                         f"train-int-{v}-min": _f2(m[:, k].min()),
                         f"train-int-{v}-max": _f2(m[:, k].max()),
                         f"train-int-{v}-loss": _f2(lss[:, k].mean())})
        knob = np.asarray(d["has_sink_logit"], dtype=bool)
        for k, v in enumerate(_VARIANTS[:m.shape[1]]):
            if knob[k]:
                vals[f"train-int-{v}-removed"] = _f2(rem[:, k].mean())
        excess = lss - _per_seed(d, "bayes_loss").reshape(-1, 1)
        vals["train-int-excess-max"] = _f2(excess.mean(axis=0).max())
        mass, mass_rem = _per_seed(d, "bos_mass"), _per_seed(d, "bos_mass_without_knob")
        vals["train-int-adam-mass"] = _f2(mass[:, 0].mean())
        vals["train-int-logit-mass"] = _f2(mass[:, 2].mean())
        vals["train-int-logit-mass-removed"] = _f2(mass_rem[:, 2].mean())
        vals["train-int-b"] = f"{meta['config']['setting']['sink_logit']:g}"
        vals["train-int-bayes"] = _f2(_per_seed(d, "bayes_loss").mean())

    if modes:
        vals["train-mode"] = "quick" if any(modes) else "full"
    unknown = sorted(set(vals) - set(TRAIN_KEYS))
    if unknown:
        raise RuntimeError(f"numbers_train wrote keys missing from TRAIN_KEYS: {unknown}")
    return vals


def numbers_c(quick: bool) -> dict:
    """Values quoted in section C (RoPE), from overmix.theory's RoPE modules."""
    import math

    import numpy as np

    from overmix.theory import rope, rope_context, rope_heads

    out = {}
    # C3: the cosine sum B(r)
    for dk in (64, 128, 256):
        th = rope.rope_frequencies(dk)
        out[f"c3-rise-{dk}"] = _int(rope.cosine_sum_first_rise(th))
        out[f"c3-neg-{dk}"] = _int(rope.cosine_sum_first_negative(th))
    Bv = np.asarray(rope.rope_cosine_sum(np.arange(5001), rope.rope_frequencies(128)))
    out["c3-min"] = _math(f"{Bv.min() / 64:.3f}")
    out["c3-argmin"] = str(int(Bv.argmin()))
    for r in (100, 1000, 2000, 3000, 5000):
        out[f"c3-cont-{r}"] = f"{float(rope.cosine_sum_continuum(r)):.3f}"
    # C4: RoFormer's relative bound and the p-RoPE floor
    th128 = rope.rope_frequencies(128)
    for r in (5, 20, 50, 100, 250):
        out[f"c4-{r}"] = f"{float(rope.abel_relative_bound(r, th128)):.2f}"
    out["c4-floor-16"] = f"{rope.abel_relative_floor(128, 16):.2f}"
    # C7: margins of positional heads and the sufficient strength
    one, w1 = np.array([1.0]), np.array([1.0])
    band, wb = rope.rope_frequencies(64)[:8], np.full(8, 1.0 / 8)
    for N in (20, 100, 1000):
        out[f"c7-one-{N}"] = _sci(rope_heads.positional_head_margin(N, one, weights=w1))
        out[f"c7-band-{N}"] = _sci(rope_heads.positional_head_margin(N, band, weights=wb))
    eps = 0.01
    out["c7-eps"] = f"{eps:g}"
    out["c7-a-one"] = _sci(rope_heads.positional_head_strength(1000, eps, one, weights=w1))
    out["c7-a-band"] = _sci(rope_heads.positional_head_strength(1000, eps, band, weights=wb))
    # C8: where the lowest pair turns negative; min cos over a context
    for dk, base, key in ((64, 1e4, "64"), (128, 1e4, "128"), (256, 1e4, "256"),
                          (128, 5e5, "128-5e5")):
        theta = rope.rope_frequencies(dk, base)[-1]
        out[f"c8-{key}"] = _int(rope_heads.first_negative_distance(theta))
    out["c8-min-100"] = _math(f"{rope_heads.rotating_pair_min_cosine(1.0, 100):.4f}")
    # C9: kept pairs, ours (ceil) and RRW's floor, and a naive float ceiling
    for p, dk in ((0.25, 256), (0.75, 256), (0.5, 6), (0.01, 64), (0.07, 200), (0.58, 100)):
        out[f"c9-ceil-{p:g}-{dk}"] = str(rope.rope_kept_pairs(dk, p))
        out[f"c9-floor-{p:g}-{dk}"] = str(rope.rope_kept_pairs(dk, p, convention="rrw_floor"))
    out["c9-naive-0.07-200"] = str(math.ceil(0.07 * 200 / 2))
    # C11: stable pairs and rotations at 128k
    for dk, base, N, key in ((128, 1e4, 8192, "128-1e4-8192"), (128, 1e4, 131072, "128-1e4-131072"),
                             (128, 5e5, 131072, "128-5e5-131072"), (256, 1e4, 8192, "256-1e4-8192")):
        out[f"c11-{key}"] = str(rope_context.stable_pair_count(dk, base, N))
    out["c11-rot-approx"] = f"{128000 / (2 * math.pi * 1e4):.2f}"
    out["c11-rot-exact"] = f"{128000 * th128[-1] / (2 * math.pi):.2f}"
    # C12: MEN's criterion
    for base, L in ((8.4e4, 8192), (1e5, 8192), (2e5, 8192), (1.2e4, 2048), (1.6e4, 2048)):
        out[f"c12-sign-{base:.0f}-{L}"] = _signed(rope_context.men_min_cosine_sum(base, L))
    grid = np.asarray(rope_context.men_base_grid())
    per_decade = round(1.0 / math.log10(grid[1] / grid[0]))
    lo, hi = (round(math.log10(x), 6) for x in (grid[0], grid[-1]))
    out["c12-grid"] = (f"{per_decade} bases per decade from "
                       f"{_math(f'10^{{{lo:g}}}')} to {_math(f'10^{{{hi:g}}}')}")
    for label, L, base in MEN_TABLE2:
        out[f"c12-minb-{label}"] = _signed(rope_context.men_min_cosine_sum(base, L))
        if quick and L > QUICK_MEN_CONTEXT:
            out[f"c12-first-{label}"] = out[f"c12-all-{label}"] = "--"
            continue
        crit = rope_context.men_critical_base(L)
        out[f"c12-first-{label}"] = ("--" if crit.first_feasible is None
                                     else _sci(crit.first_feasible, 1, always=True))
        out[f"c12-all-{label}"] = ("--" if crit.all_feasible_from is None
                                   else _sci(crit.all_feasible_from, 1, always=True))
    if quick:
        out["c12-quick"] = "8k"
    # C13: YaRN's ramp at d_k = 128, base 1e4, L = 4096
    g = np.asarray(rope_context.yarn_ramp(th128, 4096))
    out["c13-kept"] = str(int((g == 1).sum()))
    out["c13-scaled"] = str(int((g == 0).sum()))
    out["c13-ramp"] = str(int(((g > 0) & (g < 1)).sum()))
    # C14: PI's printed constant against the corrected one, and the pinned counterexample
    for dk in (128, 8):
        ratio = 4 * math.log(1e4) * rope_context.sum_squared_frequencies(dk, 1e4) / dk
        out[f"c14-ratio-{dk}"] = f"{ratio:.2f}"
    cx = rope_context.pi_bound_counterexample()
    out["c14-gap"] = f"{cx.gap:.4f}"
    out["c14-printed"] = f"{cx.printed_bound:.4f}"
    out["c14-corrected"] = f"{cx.corrected_bound:.4f}"
    return out


def _write_forms_a(gen) -> None:
    from overmix.theory import symbolic_sinks

    symbolic_sinks.write_latex(gen)


def _write_forms_b(gen) -> None:
    from overmix.theory import symbolic_collapse

    forms = symbolic_collapse.latex_b()
    header = "% generated by `overmix paper` from overmix.theory.symbolic_collapse.latex_b()\n"
    for stem, key in (("b1_drop", "B1"), ("b3_bound", "B3"), ("b4_tv", "B4"),
                      ("b13_rhs", "B13"), ("b13_beta0", "B13-beta0")):
        _write_atomic(gen / f"{stem}.tex", header + forms[key] + "\n")


def figure_names(paper) -> list[str]:
    """The figure names the paper includes with \\ovfig{NAME}{...}, in order of appearance."""
    import re

    names = []
    for tex in [paper / "main.tex", *sorted((paper / "sections").glob("*.tex"))]:
        # TeX comments (from an unescaped % to the end of the line) include nothing
        text = re.sub(r"(?<!\\)%.*", "", tex.read_text(encoding="utf-8"))
        for name in re.findall(r"\\ovfig\{([^}]+)\}", text):
            if name not in names:
                names.append(name)
    return names


def _make_missing_figures(paper, quick) -> None:
    import sys

    out = paper.parent / "figures" / "out"
    missing = [n for n in figure_names(paper) if not (out / f"{n}.pdf").exists()]
    if not missing:
        return
    try:
        from overmix.commands import figures as figures_cmd
        from overmix.figures import registry
    except ImportError as err:
        print(f"overmix paper: `overmix figures` is not available ({err}); "
              f"{len(missing)} figure(s) will print as placeholders", file=sys.stderr)
        return
    known = set(registry.names())
    todo = [n for n in missing if n in known]
    unknown = [n for n in missing if n not in known]
    if unknown:
        print("overmix paper: not registered with `overmix figures` yet (placeholders): "
              + ", ".join(unknown), file=sys.stderr)
    if not todo:
        return
    argv = [*todo, "--out", str(out)] + (["--quick"] if quick else [])
    args = _parse_for(figures_cmd, "overmix figures", argv)
    if args is None:
        return
    print(f"overmix paper: making {len(todo)} missing figure(s): overmix figures "
          + " ".join(argv))
    code = figures_cmd.run(args)
    if code:
        print(f"overmix paper: `overmix figures` exited with {code}; missing figures print "
              "as placeholders", file=sys.stderr)


def _parse_for(module, prog, argv):
    """Parse argv with another command's own arguments; None (and a message) if it refuses."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog=prog)
    module.add_arguments(parser)
    try:
        return parser.parse_args(argv)
    except SystemExit:  # argparse already printed why
        print(f"overmix paper: could not call `{prog} {' '.join(argv)}`; skipped",
              file=sys.stderr)
        return None


def _run_check(gen, quick) -> None:
    import sys

    try:
        from overmix.commands import check as check_cmd
    except ImportError as err:
        print(f"overmix paper: `overmix check` is not available ({err}); the verification "
              "table prints as a placeholder", file=sys.stderr)
        return
    argv = ["--quick"] if quick else []
    args = _parse_for(check_cmd, "overmix check", argv)
    if args is None:
        return
    print("overmix paper: running overmix check " + " ".join(argv))
    code = check_cmd.run(args)
    if code:
        print(f"overmix paper: `overmix check` exited with {code} (violations are reported in "
              "the table)", file=sys.stderr)
    if not (gen / "verification.tex").exists():
        print(f"overmix paper: `overmix check` did not write {gen / 'verification.tex'}; the "
              "verification table prints as a placeholder", file=sys.stderr)
