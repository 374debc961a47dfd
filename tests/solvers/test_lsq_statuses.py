"""least_squares statuses: each code has one meaning, SciPy's where SciPy has one.

−2 is SciPy's "stopped by the callback"; a Gauss–Newton line search that finds no decrease is
jacobite's own −9, single and batched. The status table of docs/solvers.md lists every code the
engine knows, with its message's meaning.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import cast

import numpy as np
import pytest
import scipy.optimize as so
import torch

import jacobite
from jacobite.solvers.lsq import BatchLeastSquaresResult
from jacobite.solvers.lsq.engine import status as st
from jacobite.solvers.lsq.least_squares import Method

F64 = torch.float64
T = np.linspace(0.0, 3.0, 20)
Y = 2.0 * np.exp(-0.7 * T) + 0.1
DOCS = Path(__file__).resolve().parents[2] / "docs" / "solvers.md"


def _decay(p: torch.Tensor) -> torch.Tensor:
    t, y = torch.as_tensor(T), torch.as_tensor(Y)
    return p[0] * torch.exp(-p[1] * t) + p[2] - y


def _flat_then_falling(x: torch.Tensor) -> torch.Tensor:
    # cost 2 on (-1, 2), falling below -1: from x = 2 every Gauss–Newton step length lands on
    # the flat part, so the Armijo search finds no decrease
    return torch.where(x >= 2, x, torch.where(x > -1, 2.0 + 0 * x, x + 3))


def test_status_codes_are_distinct() -> None:
    codes = [st.MAX_NFEV, st.GTOL, st.FTOL, st.XTOL, st.BOTH, st.CALLBACK, st.NONFINITE_JAC,
             st.KINK, st.SADDLE, st.PLATEAU, st.RANGE, st.STALL, st.LINE_SEARCH]
    assert len(set(codes)) == len(codes) == len(st.MESSAGES)
    assert set(codes) == set(st.MESSAGES)
    assert st.CALLBACK == -2 and st.LINE_SEARCH == -9


@pytest.mark.parametrize("method", ["lm", "trf", "dogbox", "gauss-newton"])
def test_a_callback_stop_is_minus_2_with_scipys_meaning(method: Method) -> None:
    def halt(x: object) -> None:
        raise StopIteration

    res = jacobite.least_squares(_decay, torch.tensor([1.0, 1.0, 0.0], dtype=F64),
                                 method=method, callback=halt)
    want = so.least_squares(lambda p: p[0] * np.exp(-p[1] * T) + p[2] - Y, [1.0, 1.0, 0.0],
                            method="trf", callback=halt)
    assert res.status == want.status == -2 and not res.success
    assert res.message == st.MESSAGES[st.CALLBACK] and "callback" in res.message
    assert res.nit == 1


def test_a_failed_gauss_newton_line_search_is_minus_9() -> None:
    res = jacobite.least_squares(_flat_then_falling, torch.tensor([2.0], dtype=F64),
                                 method="gauss-newton")
    assert res.status == st.LINE_SEARCH == -9 and not res.success
    assert res.message == st.MESSAGES[-9] and "line search" in res.message
    assert res.x.tolist() == [2.0]  # the start: no point with a lower cost was found


def test_a_failed_batched_line_search_is_minus_9() -> None:
    # the first problem starts where the search fails; the second below -1, where it converges
    x0 = torch.tensor([[2.0], [-2.0]], dtype=F64)
    res = cast(BatchLeastSquaresResult, jacobite.least_squares(
        _flat_then_falling, x0, method="gauss-newton", batch=True))
    assert int(res.status[0]) == -9 and not bool(res.success[0])
    assert res.message[0] == st.MESSAGES[-9]
    assert int(res.status[1]) > 0 and float(res.x[1, 0]) == pytest.approx(-3.0, abs=1e-12)


def test_the_docs_status_table_lists_every_code() -> None:
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("### Statuses", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (−?\d+) \|", section, flags=re.MULTILINE)
    assert sorted(int(r.replace("−", "-")) for r in rows) == sorted(st.MESSAGES)
