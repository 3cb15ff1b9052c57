"""Tests of overmix.sims.verify_c: the section-C rows (C1-C15) of ``overmix check``.

Each check must be registered, run in quick mode without error or violation, and be able to
fail: feeding it a deliberately broken theory function (half a bound, a shifted closed form,
the wrong convention) must produce violations. The broken function is patched into the module
whose global name the check looks up (``verify_c``, or ``checks_c`` for the reused cases).
"""

from __future__ import annotations

import pytest

from overmix.sims import checks_c, verify, verify_c
from verify_rows import assert_quick_row_holds, assert_section_registered, checks, plus, times

C_IDS = [f"C{k}" for k in range(1, 16)]


def test_every_section_c_result_is_registered_once_with_a_short_row():
    assert_section_registered(C_IDS, "overmix.sims.verify_c", max_statement=60,
                              duplicate="C4", kind="bound")


@pytest.mark.parametrize("cid", C_IDS)
def test_quick_check_holds_every_statement(cid):
    assert_quick_row_holds(cid, note=True)


def test_same_seed_gives_the_same_row():
    c = checks()["C5"]
    a, b = verify.run_check(c, quick=True, seed=3), verify.run_check(c, quick=True, seed=3)
    assert (a.cases, a.violations, a.max, a.median, a.note) == (b.cases, b.violations, b.max,
                                                                b.median, b.note)


def _floor_convention(fn):
    def broken(d_head, fraction=1.0, *, convention="ceil"):
        return fn(d_head, fraction, convention="rrw_floor" if convention == "ceil" else "ceil")
    return broken


def _negated(fn):
    def broken(*args, **kwargs):
        return not fn(*args, **kwargs)
    return broken


# (id, module holding the name, theory function, how to break it)
BROKEN = [
    ("C1", verify_c, "rope_relative_logit", lambda f: times(f, 1 + 1e-9)),
    ("C2", verify_c, "rope_logit_variance", lambda f: times(f, 0.5)),
    ("C3", verify_c, "aligned_logit", lambda f: times(f, 1.01)),
    ("C4", verify_c, "abel_bound", lambda f: times(f, 0.5)),
    ("C5", verify_c, "peaked_logits", lambda f: times(f, 1.01)),
    ("C6", verify_c, "nope_duplicate_weight", lambda f: plus(f, 1e-9)),
    ("C7", checks_c, "positional_head_strength", lambda f: times(f, 0.5)),
    ("C8", verify_c, "first_negative_distance", lambda f: plus(f, 1.0)),
    ("C9", verify_c, "rope_kept_pairs", _floor_convention),
    ("C10", verify_c, "semantic_head_lower_bound", lambda f: times(f, 2.0)),
    ("C11", verify_c, "channel_drift_bound", lambda f: times(f, 0.5)),
    ("C12", verify_c, "men_feasible", _negated),
    ("C13", verify_c, "extend_frequencies", lambda f: times(f, 1 + 1e-9)),
    ("C14", verify_c, "interpolation_bound", lambda f: times(f, 0.5)),
    ("C15", verify_c, "pair_contribution_bound", lambda f: times(f, 0.5)),
]


def test_every_c_id_has_a_broken_variant():
    assert [b[0] for b in BROKEN] == C_IDS


@pytest.mark.parametrize("cid, module, name, breaker", BROKEN, ids=[b[0] for b in BROKEN])
def test_a_broken_theory_function_is_reported_as_violations(cid, module, name, breaker,
                                                            monkeypatch):
    monkeypatch.setattr(module, name, breaker(getattr(module, name)))
    row = verify.run_check(checks()[cid], quick=True)
    assert row.error == "", row.error
    assert row.violations > 0, (cid, name, row.max)
