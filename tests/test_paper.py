"""The paper (paper/) and the ``overmix paper`` command.

Fast checks read the LaTeX sources as text: every reference has a label, every citation a
bib entry, every THEORY.md result a statement, every generated value a writer. The build
tests need latexmk and are marked slow (skipped without TeX).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from overmix import cli
from overmix.commands import paper as paper_cmd

PAPER = Path(__file__).resolve().parents[1] / "paper"

# THEORY.md's ids (the oracle: written here from THEORY.md, not read from the code)
THEORY_IDS = ([f"A{k}" for k in range(1, 11)] + [f"B{k}" for k in range(1, 14)]
              + [f"C{k}" for k in range(1, 16)])
# THEORY.md's sources and their arXiv ids
ARXIV = {"BFT": "2504.02732", "TNG": "2406.04267", "RRW": "2410.06205", "DCL": "2103.03404",
         "WAM": "2405.18781", "WPB": "2502.01951", "GSM": "2410.10781", "AZ": "2005.00928",
         "GLPR": "2312.10794", "RoF": "2104.09864", "MEN": "2405.14591", "PI": "2306.15595",
         "YARN": "2309.00071"}
# other sources the paper cites (not THEORY.md's), with their arXiv ids
OTHER_SOURCES = {"GUO": "2410.13835"}
TAGS = {"paper", "recon", "ours", "standard"}

needs_tex = pytest.mark.skipif(paper_cmd.find_tex() is None,
                               reason="latexmk/pdflatex/bibtex not installed")


# ---------------------------------------------------------------------------------------------
# reading the sources
# ---------------------------------------------------------------------------------------------
def _sources() -> dict[str, str]:
    files = [PAPER / "main.tex", *sorted((PAPER / "sections").glob("*.tex"))]
    # drop comments (an unescaped % to the end of the line) so commented-out text is ignored
    return {f.name: re.sub(r"(?<!\\)%.*", "", f.read_text(encoding="utf-8")) for f in files}


def _group(text: str, pos: int) -> tuple[str, int]:
    """The brace group starting at text[pos] == '{' and the index after it."""
    assert text[pos] == "{", text[pos:pos + 30]
    depth = 0
    for k in range(pos, len(text)):
        if text[k] == "{" and text[k - 1] != "\\":
            depth += 1
        elif text[k] == "}" and text[k - 1] != "\\":
            depth -= 1
            if depth == 0:
                return text[pos + 1:k], k + 1
    raise AssertionError(f"unbalanced braces after: {text[pos:pos + 60]!r}")


def _command_args(text: str, command: str, n: int) -> list[list[str]]:
    """The first n brace arguments of every use of \\command (optional [..] args skipped)."""
    out = []
    for m in re.finditer(r"\\" + command + r"(?![A-Za-z@])", text):
        pos, args = m.end(), []
        while len(args) < n:
            while pos < len(text) and text[pos] in " \n":
                pos += 1
            if pos < len(text) and text[pos] == "[":
                pos = text.index("]", pos) + 1
                continue
            if pos >= len(text) or text[pos] != "{":
                break
            arg, pos = _group(text, pos)
            args.append(arg)
        if len(args) == n:
            out.append(args)
    return out


def _labels(src: dict[str, str]) -> set[str]:
    labels = set()
    for text in src.values():
        labels.update(a[0] for a in _command_args(text, "label", 1) if "#" not in a[0])
        labels.update(f"res:{a[0]}" for a in _command_args(text, r"begin\{result\}", 1))
        labels.update(a[2] for a in _command_args(text, "ovfig", 3))
    return labels


def _bib_keys() -> dict[str, str]:
    text = (PAPER / "refs.bib").read_text(encoding="utf-8")
    entries = {}
    for m in re.finditer(r"@\w+\{([^,\s]+),", text):
        body, _ = _group(text, text.index("{", m.start()))
        entries[m.group(1)] = body
    return entries


# ---------------------------------------------------------------------------------------------
# static checks
# ---------------------------------------------------------------------------------------------
def test_every_reference_points_to_a_label():
    src = _sources()
    labels = _labels(src)
    refs = set()
    for text in src.values():
        for cmd in ("ref", "eqref", "pageref", "autoref"):
            refs.update(a[0] for a in _command_args(text, cmd, 1) if "#" not in a[0])
    assert refs, "the paper references nothing: the parser is broken"
    assert refs <= labels, f"references without a label: {sorted(refs - labels)}"


def test_labels_are_unique():
    src = _sources()
    seen = []
    for text in src.values():
        seen += [a[0] for a in _command_args(text, "label", 1) if "#" not in a[0]]
        seen += [f"res:{a[0]}" for a in _command_args(text, r"begin\{result\}", 1)]
        seen += [a[2] for a in _command_args(text, "ovfig", 3)]
    dupes = sorted({x for x in seen if seen.count(x) > 1})
    assert not dupes, f"labels defined twice: {dupes}"


def test_every_citation_is_in_refs_bib():
    keys = set(_bib_keys())
    cited = set()
    for text in _sources().values():
        for m in re.finditer(r"\\cite[a-z]*\*?\s*(?:\[[^\]]*\]\s*){0,2}\{([^}]*)\}", text):
            cited.update(k.strip() for k in m.group(1).split(","))
    assert cited, "the paper cites nothing: the parser is broken"
    assert cited <= keys, f"cited but not in refs.bib: {sorted(cited - keys)}"


def test_refs_bib_holds_every_theory_source_with_its_arxiv_id():
    entries = _bib_keys()
    sources = {**ARXIV, **OTHER_SOURCES}
    assert set(entries) == set(sources), (set(entries) ^ set(sources))
    for key, arxiv_id in sources.items():
        body = entries[key]
        assert re.search(r"eprint\s*=\s*\{" + re.escape(arxiv_id) + r"\}", body), key
        assert f"arXiv:{arxiv_id}" in body, key
        for field in ("author", "title", "year"):
            assert re.search(field + r"\s*=", body), f"{key} has no {field}"


def test_every_theory_result_is_stated_once_with_a_tag():
    stated = []
    for text in _sources().values():
        for ident, tag, _title in _command_args(text, r"begin\{result\}", 3):
            stated.append(ident)
            assert re.search(r"\b(" + "|".join(TAGS) + r")\b", tag), (
                f"{ident}: tag {tag!r} names none of {sorted(TAGS)}")
    missing = [i for i in THEORY_IDS if i not in stated]
    assert not missing, f"THEORY.md results with no statement in the paper: {missing}"
    assert sorted(stated) == sorted(set(stated)), "a result is stated twice"
    assert set(stated) <= set(THEORY_IDS), set(stated) - set(THEORY_IDS)


# [ours] parts that are a convention or a restatement, with nothing to prove
NO_PROOF_NEEDED = {"C9": "p-RoPE counting convention", "C13": "frequency maps as functions"}


def test_every_ours_result_has_a_proof():
    # each result tagged ours (alone or in part) is followed by a proof before the next result
    missing = []
    for text in _sources().values():
        blocks = re.split(r"\\begin\{result\}", text)[1:]
        for block in blocks:
            (ident, tag, _), = _command_args("\\begin{result}" + block, r"begin\{result\}", 3)
            if ("ours" in tag and "\\begin{proof}" not in block
                    and ident not in NO_PROOF_NEEDED):
                missing.append(ident)
    assert not missing, f"[ours] results without a proof: {missing}"


def test_every_generated_value_the_text_uses_has_a_writer_fast():
    used = set()
    for text in _sources().values():
        used.update(a[0] for a in _command_args(text, "gen", 1) if "#" not in a[0])
        used.update(a[0] for a in _command_args(text, "genifthen", 1) if "#" not in a[0])
    written = (set(paper_cmd.numbers_a()) | set(paper_cmd.numbers_meta(quick=True))
               | set(paper_cmd.TRAIN_KEYS))  # read from the training figures' data
    # written elsewhere: section C's numbers (checked by the slow test below) and the
    # optional summary of `overmix check`
    rest = {k for k in used - written if not k.startswith(("c", "check-"))}
    assert not rest, f"\\gen keys nobody writes: {sorted(rest)}"


@pytest.mark.slow
def test_every_section_c_value_the_text_uses_is_written():
    used = set()
    for text in _sources().values():
        used.update(a[0] for a in _command_args(text, "gen", 1) if a[0].startswith("c")
                    and not a[0].startswith("check-"))
    written = paper_cmd.numbers_c(quick=True)
    assert used <= set(written), f"\\gen keys of section C nobody writes: {sorted(used - set(written))}"
    # the quick scan marks the rows it skipped instead of leaving them out
    assert written["c12-quick"] and written["c12-first-1M"] == "--"
    assert written["c12-first-1k"] != "--"


def test_every_generated_formula_file_is_written(tmp_path):
    names = set()
    for text in _sources().values():
        for cmd in ("genmath", "geninput"):
            names.update(a[0] for a in _command_args(text, cmd, 1) if "#" not in a[0])
    paper_cmd._write_forms_a(tmp_path)
    paper_cmd._write_forms_b(tmp_path)
    written = {p.stem for p in tmp_path.glob("*.tex")}
    assert names - {"verification"} <= written, sorted(names - written)


def test_every_registered_figure_is_in_the_paper():
    registry = pytest.importorskip("overmix.figures.registry")
    included = set(paper_cmd.figure_names(PAPER))
    missing = [n for n in registry.names() if n not in included]
    assert not missing, f"registered figures the paper does not include: {missing}"


def test_figure_names_are_read_from_ovfig_calls(tmp_path):
    (tmp_path / "sections").mkdir()
    (tmp_path / "main.tex").write_text("\\ovfig{figA}{cap {nested}}{fig:a}\n")
    (tmp_path / "sections" / "s.tex").write_text("\\newcommand{\\ovfig}[3]{}\\ovfig{figB}{c}{l}"
                                                 "\\ovfig{figA}{again}{fig:a2}\n"
                                                 "% \\ovfig{NAME}{a comment includes nothing}{x}\n"
                                                 "50\\% \\ovfig{figC}{after an escaped percent}{c}\n")
    assert paper_cmd.figure_names(tmp_path) == ["figA", "figB", "figC"]


# ---------------------------------------------------------------------------------------------
# the command without TeX
# ---------------------------------------------------------------------------------------------
def test_paper_without_tex_says_what_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no latexmk, no pdflatex
    code = cli.main(["paper", "--no-generate"])
    err = capsys.readouterr().err
    assert code == 2
    assert "no TeX installation found" in err
    assert "apt-get install" in err
    for pkg in ("latexmk", "texlive-latex-base", "texlive-latex-recommended"):
        assert pkg in err
    assert "Traceback" not in err


def test_paper_without_sources_names_the_folder(tmp_path, capsys):
    code = cli.main(["paper", "--no-generate", "--paper-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert str(tmp_path) in err and "main.tex" in err


def test_quick_and_full_are_exclusive(capsys):
    with pytest.raises(SystemExit):
        cli.main(["paper", "--quick", "--full"])
    assert "not allowed with" in capsys.readouterr().err


def test_gendefs_carry_the_key_that_skips_recomputation(tmp_path):
    path = tmp_path / "numbers_x.tex"
    paper_cmd._write_atomic(path, paper_cmd._gendefs({"a-b": "1.5", "c": "\\ensuremath{x}"},
                                                     "abc123"))
    text = path.read_text()
    assert "\\gendef{a-b}{1.5}" in text and "\\gendef{c}{\\ensuremath{x}}" in text
    assert paper_cmd._file_key(path) == "abc123"
    assert paper_cmd._file_key(tmp_path / "absent.tex") is None


# ---------------------------------------------------------------------------------------------
# builds (need TeX)
# ---------------------------------------------------------------------------------------------
def _copy_paper(tmp_path, *, generated=True) -> Path:
    dst = tmp_path / "paper"
    shutil.copytree(PAPER, dst, ignore=shutil.ignore_patterns(
        "main.pdf", "build.log", "build-*", *(() if generated else ("generated",))))
    return dst


@needs_tex
@pytest.mark.slow
def test_build_succeeds_with_no_undefined_references(tmp_path, capsys):
    paper = _copy_paper(tmp_path, generated=False)
    code = cli.main(["paper", "--quick", "--no-figures", "--no-check",
                     "--paper-dir", str(paper)])
    out, err = capsys.readouterr()
    assert code == 0, err
    pdf = paper / "main.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    log = (paper / "build.log").read_text(errors="replace")
    assert not re.search(r"(Reference|Citation) `[^']+' on page \d+ undefined", log)
    assert "There were undefined references" not in log
    # the numbers were generated: no placeholder but the figures and the check table, and the
    # training numbers, which are read from the training figures' data (--no-figures)
    # (TeX wraps its log at 79 characters, also inside a long key)
    missing = [k.replace("\n", "") for k in
               re.findall(r"generated value or file `([^']+)' missing", log)]
    assert set(missing) <= {"verification"} | set(paper_cmd.TRAIN_KEYS), missing
    assert (paper / "generated" / "numbers_train.tex").exists()
    assert not list(paper.glob("build-*")), "the temporary build folder was left behind"


@needs_tex
@pytest.mark.slow
def test_failed_build_keeps_the_old_pdf_and_names_the_reference(tmp_path, capsys):
    paper = _copy_paper(tmp_path)
    (paper / "main.pdf").write_bytes(b"%PDF-old")
    intro = paper / "sections" / "intro.tex"
    intro.write_text(intro.read_text() + "\nSee Section~\\ref{sec:does-not-exist}.\n")
    code = cli.main(["paper", "--no-generate", "--paper-dir", str(paper)])
    err = capsys.readouterr().err
    assert code == 1
    assert "undefined reference: sec:does-not-exist" in err
    assert (paper / "main.pdf").read_bytes() == b"%PDF-old"


@needs_tex
@pytest.mark.slow
def test_missing_numbers_print_placeholders_and_strict_fails(tmp_path, capsys):
    paper = _copy_paper(tmp_path, generated=False)
    code = cli.main(["paper", "--no-generate", "--paper-dir", str(paper)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "placeholder" in err and "c3-rise-128" in err
    code = cli.main(["paper", "--no-generate", "--strict", "--paper-dir", str(paper)])
    assert code == 1
