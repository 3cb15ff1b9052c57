"""Shared pieces of the tests of ``overmix check``'s rows (tests/sims/test_verify_*.py):
the registry lookup, the registration and quick-run assertions, and the wrappers that break a
theory function on purpose (a check must be able to fail)."""

from __future__ import annotations

import numpy as np
import pytest

from overmix.sims import verify


def checks() -> dict:
    """Every registered check by id."""
    return {c.id: c for c in verify.all_checks()}


def assert_section_registered(ids, module, *, max_statement, duplicate, kind):
    """The section's ids are registered exactly once each, from ``module``, with a short
    statement, a source, a known kind and a float-slack rtol; registering ``duplicate`` again
    raises."""
    found = checks()
    prefix = ids[0][0]
    assert sorted((k for k in found if k.startswith(prefix)), key=lambda k: int(k[1:])) == ids
    for cid in ids:
        c = found[cid]
        assert c.fn.__module__ == module
        assert 0 < len(c.statement) <= max_statement and c.source
        assert c.kind in verify.KINDS and c.rtol >= 0
        # rtol is float slack, never room for a statement: far below any allowed deviation.
        assert c.rtol <= 1e-8
    with pytest.raises(ValueError, match=duplicate):
        verify.register(duplicate, "again", "x", kind=kind, rtol=0.0)(lambda quick, rng: None)


def assert_quick_row_holds(cid, *, note=False):
    """The quick run of ``cid`` has cases, no error and no violation (and a note if asked)."""
    row = verify.run_check(checks()[cid], quick=True)
    assert row.error == "", row.error
    assert row.cases > 0 and row.violations == 0, (row.max, row.note)
    assert np.isfinite(row.max)
    if note:
        assert row.note


def times(fn, factor):
    """fn with its result multiplied by ``factor``."""
    def broken(*args, **kwargs):
        return fn(*args, **kwargs) * factor
    return broken


def plus(fn, delta):
    """fn with ``delta`` added to its result."""
    def broken(*args, **kwargs):
        return fn(*args, **kwargs) + delta
    return broken
