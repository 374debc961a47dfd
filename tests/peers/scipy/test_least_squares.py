"""SciPy's ``scipy/optimize/tests/test_least_squares.py``, collected from the installed SciPy and
run with :func:`jacobite.least_squares` in place of SciPy's (through :mod:`._adapter`).

The test functions are SciPy's own objects: their globals are the SciPy module's, whose
``least_squares`` an autouse fixture swaps for the adapter during each test. The tests that do
not pass are listed, each with its reason, in :data:`._differences.DIFFERENCES` (and in
``docs/solvers.md``, "Differences from SciPy"); they are strict expected failures, so a test
that starts passing must leave the list. :data:`._differences.PENDING` names the tests that
wait for a step rule jacobite does not have yet.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from scipy.optimize.tests import test_least_squares as upstream

from . import _adapter
from ._differences import DIFFERENCES, PENDING

TestDogbox = upstream.TestDogbox
TestTRF = upstream.TestTRF
TestLM = upstream.TestLM
test_basic = upstream.test_basic
test_callback = upstream.test_callback
test_small_tolerances_for_lm = upstream.test_small_tolerances_for_lm
test_fp32_gh12991 = upstream.test_fp32_gh12991
test_gh_18793_and_19351 = upstream.test_gh_18793_and_19351
test_gh_19103 = upstream.test_gh_19103


@pytest.fixture(autouse=True)
def _jacobite(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
              ) -> Iterator[None]:
    monkeypatch.setattr(upstream, "least_squares", _adapter.least_squares)
    key = request.node.nodeid.split("::", 1)[1]
    reason = DIFFERENCES.get(key) or PENDING.get(key)
    if reason:
        request.node.add_marker(pytest.mark.xfail(strict=True, reason=reason))
    yield


def test_every_difference_is_documented() -> None:
    """Each listed SciPy test is named in docs/solvers.md's least_squares differences, and the
    page's counts are this list's."""
    from pathlib import Path

    page = (Path(__file__).parents[3] / "docs" / "solvers.md").read_text()
    section = page.split("### least_squares", 1)[1].split("\n### ", 1)[0]
    for key in DIFFERENCES:
        assert key.rsplit("::", 1)[-1] in section, key
    assert f"{len(DIFFERENCES)} are the differences below" in section
