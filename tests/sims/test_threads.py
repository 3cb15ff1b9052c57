"""sims/_threads.py: the split of kernel work over threads."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from overmix.sims._threads import ranges, run_split


@pytest.mark.parametrize("total,parts", [(1, 1), (1, 4), (7, 2), (8, 2), (5, 5), (3, 8), (100, 3)])
def test_ranges_cover_everything_once_in_order_and_balanced(total, parts):
    rs = ranges(total, parts)
    assert len(rs) == min(total, parts)
    assert [i for a, b in rs for i in range(a, b)] == list(range(total))
    sizes = [b - a for a, b in rs]
    assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1


def _fill(out, start, stop):
    for i in range(start, stop):
        out[i] = i * i


def _fail(out, start, stop):
    if start > 0:
        raise RuntimeError(f"range starting at {start}")
    out[start:stop] = 1.0


@pytest.mark.parametrize("threads", [1, 2])
def test_run_split_fills_every_item_whatever_the_thread_count(threads):
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        out = np.full(11, -1.0)
        run_split(_fill, 11, out)
        assert np.array_equal(out, np.arange(11.0) ** 2)
    finally:
        numba.set_num_threads(before)


def test_run_split_reraises_a_kernel_error():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs 2 threads to split")
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(2)
        with pytest.raises(RuntimeError, match="range starting at"):
            run_split(_fail, 10, np.zeros(10))
    finally:
        numba.set_num_threads(before)
