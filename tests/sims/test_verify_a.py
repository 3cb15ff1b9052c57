"""Tests of overmix.sims.verify_a: the section-A rows (A1-A10) of ``overmix check``.

Each check must be registered, run in quick mode without error or violation, and be able to
fail: feeding it a deliberately broken theory function (half a bound, a shifted closed form,
a rate off by 5%, a doubled model output) must produce violations. The broken function is
patched into the module whose global name the check looks up (``verify_a``, or ``checks_a``
for the reused random stacks).
"""

from __future__ import annotations

import dataclasses
import math

import pytest

from overmix.sims import checks_a, verify, verify_a
from verify_rows import assert_quick_row_holds, assert_section_registered, checks, plus, times

A_IDS = [f"A{k}" for k in range(1, 11)]


def test_every_section_a_result_is_registered_once_with_a_short_row():
    assert_section_registered(A_IDS, "overmix.sims.verify_a", max_statement=70,
                              duplicate="A3", kind="fact")


@pytest.mark.parametrize("cid", A_IDS)
def test_quick_check_holds_every_statement(cid):
    assert_quick_row_holds(cid)


def test_same_seed_gives_the_same_row():
    c = checks()["A5"]
    a, b = verify.run_check(c, quick=True, seed=3), verify.run_check(c, quick=True, seed=3)
    assert (a.cases, a.violations, a.max, a.median) == (b.cases, b.violations, b.max, b.median)


def _rate_power(fn):
    # a log-rate 5% too steep: outside A4's stated 1% tolerance
    def broken(*args, **kwargs):
        return math.exp(1.05 * math.log(fn(*args, **kwargs)))
    return broken


def _falls_with_heads(fn):
    def broken(n, n_layers, n_heads, *args, **kwargs):
        return fn(n, n_layers, n_heads, *args, **kwargs) - 1e-3 * n_heads
    return broken


def _doubled_output(fn):
    def broken(*args, **kwargs):
        tr = fn(*args, **kwargs)
        return dataclasses.replace(tr, output=2.0 * tr.output)
    return broken


# (id, module holding the name, function, how to break it)
BROKEN = [
    ("A1", checks_a, "path_bound", lambda f: times(f, 0.5)),
    ("A2", verify_a, "path_bound", lambda f: times(f, 1 + 1e-9)),
    ("A3", verify_a, "path_count", lambda f: plus(f, 1)),
    ("A4", verify_a, "rollout_log_rate", _rate_power),
    ("A5", checks_a, "sink_cut_bound", lambda f: times(f, 0.5)),
    ("A6", verify_a, "min_sink_mass", lambda f: times(f, 1 - 1e-6)),
    ("A7", verify_a, "sink_logit_needed", lambda f: plus(f, 1e-6)),
    ("A8", verify_a, "sink_scores", lambda f: times(f, 1 + 1e-9)),
    ("A9", verify_a, "budget_sink_fraction", _falls_with_heads),
    ("A10", verify_a, "forward", _doubled_output),
]


def test_every_a_id_has_a_broken_variant():
    assert [b[0] for b in BROKEN] == A_IDS


@pytest.mark.parametrize("cid, module, name, breaker", BROKEN, ids=[b[0] for b in BROKEN])
def test_a_broken_theory_function_is_reported_as_violations(cid, module, name, breaker,
                                                            monkeypatch):
    monkeypatch.setattr(module, name, breaker(getattr(module, name)))
    row = verify.run_check(checks()[cid], quick=True)
    assert row.error == "", row.error
    assert row.violations > 0, (cid, name, row.max)
