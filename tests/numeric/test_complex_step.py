"""The complex step: machine precision for analytic f, a typed error otherwise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jacobite.errors import DtypeError, UnsupportedOperationError
from jacobite.numeric import jacobian

from ._zoo import CASES

EPS = np.finfo(np.float64).eps


@pytest.mark.parametrize("case", [c for c in CASES if c.analytic], ids=lambda c: c.name)
def test_complex_step_is_machine_precise(case):
    J = case.jac(case.x)
    res = jacobian(case.f_np, case.x, "complex")
    scale = np.maximum(np.abs(J), np.abs(J).max() * 1e-3)
    assert float((np.abs(res.jacobian - J) / scale).max()) <= 4e-15
    assert bool((np.abs(res.jacobian - J) <= 10 * res.error + EPS * np.abs(J).max()).all())


def test_complex_step_matches_jacrev_in_torch():
    f = lambda v: torch.exp(torch.sin(v)) * v ** 2  # noqa: E731
    x = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)
    res = jacobian(f, x, "complex")
    oracle = torch.func.jacrev(f)(x)
    assert res.jacobian.dtype == torch.float64
    torch.testing.assert_close(res.jacobian, oracle, rtol=4e-15, atol=1e-15)


def test_complex_step_float32_tensor():
    x = torch.tensor([0.5, 1.5])
    res = jacobian(torch.sin, x, "complex")
    assert res.jacobian.dtype == torch.float32
    torch.testing.assert_close(res.jacobian, torch.diag(torch.cos(x)), rtol=1e-6, atol=1e-7)


def test_real_output_for_complex_input_is_rejected():
    with pytest.raises(UnsupportedOperationError, match="richardson"):
        jacobian(lambda v: np.abs(v) ** 2, np.array([1.0, 2.0]), "complex")


def test_raising_on_complex_input_is_rejected():
    def f(v):
        if np.iscomplexobj(v):
            raise TypeError("real inputs only")
        return np.exp(v)

    with pytest.raises(UnsupportedOperationError, match="not complex-analytic"):
        jacobian(f, np.array([1.0]), "complex")
    with pytest.raises(UnsupportedOperationError, match="richardson"):
        jacobian(torch.relu, torch.ones(2, dtype=torch.float64), "complex")


def test_real_part_drift_is_detected():
    # f mixes in |z|, which changes Re f(x + ih) noticeably for a large step
    def f(v):
        return v * np.abs(v)

    with pytest.raises(UnsupportedOperationError):
        jacobian(f, np.array([2.0]), "complex", step=1e-2)


def test_complex_step_needs_single_or_double_precision():
    with pytest.raises(DtypeError, match="double"):
        jacobian(torch.sin, torch.ones(2, dtype=torch.float16), "complex")


def test_a_non_analytic_function_that_keeps_its_real_part_is_refused() -> None:
    """``v·conj(v)`` keeps Re f(x + ih) = f(x) to rounding, so only the real-difference check
    catches that its complex step (0) is not its derivative (2v)."""
    import jacobite

    with pytest.raises(UnsupportedOperationError, match="richardson"):
        jacobite.numeric.jacobian(lambda v: v * np.conj(v), np.array([1.0, 2.0]), method="complex")


@pytest.mark.parametrize("x", [1e5, 1e8])
def test_the_complex_step_stays_exact_at_large_arguments(x: float) -> None:
    import jacobite

    r = jacobite.numeric.jacobian(np.sin, np.array([x]), method="complex")
    assert abs(float(np.ravel(r.jacobian)[0]) - np.cos(x)) <= 1e-12


def test_float32_complex_step_at_a_large_argument_is_not_refused() -> None:
    # the analyticity check's real difference now uses the points float32 really holds
    x = torch.tensor([1e5])
    res = jacobian(torch.sin, x, "complex")
    exact = np.cos(float(x[0]))
    assert abs(float(res.jacobian[0]) - exact) <= 10 * float(res.error[0]) + 1e-6


def test_non_analytic_f_is_still_refused_at_large_arguments() -> None:
    with pytest.raises(UnsupportedOperationError, match="richardson"):
        jacobian(lambda v: v * np.conj(v), np.array([1e5, -3e8]), "complex")


def test_cancellation_inside_f_shows_in_the_estimate() -> None:
    # sin(v) + v at 1e5: Im f(x + ih) = h (cos(x) + 1) loses digits to cancellation, as much as
    # eps relative to the terms (about 1), not to the small result (6.4e-4)
    x = np.array([1e5])
    res = jacobian(lambda v: np.sin(v) + v, x, "complex")
    true = abs(float(res.jacobian[0, 0]) - (np.cos(1e5) + 1.0))
    assert true <= 10 * float(res.error[0, 0])
    assert float(res.error[0, 0]) < 1e-14


@pytest.mark.parametrize("x", [0.0, 1e-300])
def test_a_branch_point_is_refused_not_returned_as_a_huge_number(x):
    # sqrt has an infinite derivative at 0; Im sqrt(i h) / h = 1 / sqrt(2 h) is 1.3e51 at the
    # default step, a number that is no derivative
    with pytest.raises(UnsupportedOperationError, match="method='forward'"):
        jacobian(torch.sqrt, torch.tensor([x], dtype=torch.float64), "complex")


@pytest.mark.parametrize(("f", "df", "x"), [
    (torch.sqrt, lambda v: 0.5 / np.sqrt(v), 1e-10),
    (torch.log, lambda v: 1 / v, 1e-20),
    (lambda v: v ** 3 / 3, lambda v: v * v, 0.0),
])
def test_close_to_a_singularity_the_complex_step_stays_exact(f, df, x):
    res = jacobian(f, torch.tensor([x], dtype=torch.float64), "complex")
    np.testing.assert_allclose(res.jacobian.numpy(), [[df(x)]], rtol=1e-14, atol=1e-200)
