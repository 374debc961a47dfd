"""least_squares and curve_fit inside ``torch.inference_mode()``: they solve (autograd runs on
copies of the inference tensors) and agree with SciPy; the results are not differentiable; a
function that closes over an inference tensor is refused with the fix named."""

from __future__ import annotations

from typing import cast

import numpy as np
import pytest
import scipy.optimize as so
import torch

import jacobite
from jacobite.errors import UnsupportedOperationError
from jacobite.solvers.lsq import BatchLeastSquaresResult
from jacobite.solvers.lsq.least_squares import Method

F64 = torch.float64
T_NP = np.linspace(0.0, 2.0, 30)
Y_NP = 2.5 * np.exp(-1.3 * T_NP) + 0.3 + 0.01 * np.sin(7 * T_NP)
X0 = [1.0, 1.0, 0.0]


def _model(p: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return p[0] * torch.exp(-p[1] * t) + p[2] - y


def _scipy() -> np.ndarray:
    def jac(p: np.ndarray) -> np.ndarray:
        e = np.exp(-p[1] * T_NP)
        return np.stack([e, -p[0] * T_NP * e, np.ones_like(T_NP)], axis=1)

    r = so.least_squares(lambda p: p[0] * np.exp(-p[1] * T_NP) + p[2] - Y_NP, X0, jac=jac,
                         method="lm", xtol=1e-15, ftol=1e-15, gtol=1e-15)
    return np.asarray(r.x)


@pytest.mark.parametrize("method", ["lm", "trf", "dogbox", "gauss-newton"])
def test_least_squares_solves_in_inference_mode(method: Method) -> None:
    with torch.inference_mode():
        t, y = torch.as_tensor(T_NP), torch.as_tensor(Y_NP)
        x0 = torch.tensor(X0, dtype=F64)
        res = jacobite.least_squares(_model, x0, method=method, args=(t, y))
    assert res.success and res.status > 0
    np.testing.assert_allclose(res.x.numpy(), _scipy(), rtol=1e-8)  # dogbox stops at 1.5e-9
    assert not res.x.requires_grad
    outside = jacobite.least_squares(_model, torch.tensor(X0, dtype=F64), method=method,
                                     args=(torch.as_tensor(T_NP), torch.as_tensor(Y_NP)))
    assert res.x.tolist() == outside.x.tolist() and res.status == outside.status


def test_a_batch_solves_in_inference_mode() -> None:
    # autograd records nothing under inference mode: the batched Jacobians were zero there and
    # every problem "converged" (gtol) at its start
    with torch.inference_mode():
        t, y = torch.as_tensor(T_NP), torch.as_tensor(Y_NP)
        res = cast(BatchLeastSquaresResult, jacobite.least_squares(
            lambda p, t, y: p[:, :1] * torch.exp(-p[:, 1:2] * t) + p[:, 2:3] - y,
            torch.tensor([X0, [2.0, 1.0, 0.5]], dtype=F64), batch=True, args=(t, y)))
    assert res.success.all()
    np.testing.assert_allclose(res.x.numpy(), np.stack([_scipy()] * 2), rtol=1e-9, atol=1e-12)
    assert float(res.jac.abs().amax()) > 0.1


def test_curve_fit_solves_in_inference_mode() -> None:
    def f(x: torch.Tensor, a: torch.Tensor, k: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return a * torch.exp(-k * x) + c

    want, want_cov = so.curve_fit(lambda x, a, k, c: a * np.exp(-k * x) + c, T_NP, Y_NP, p0=X0,
                                  xtol=1e-15, ftol=1e-15, gtol=1e-15)
    with torch.inference_mode():
        t, y = torch.as_tensor(T_NP), torch.as_tensor(Y_NP)
        popt, pcov = jacobite.curve_fit(f, t, y, p0=torch.tensor(X0, dtype=F64))
        bopt, _ = jacobite.curve_fit(f, t, y.repeat(3, 1), p0=X0, batch=True)
    np.testing.assert_allclose(popt, want, rtol=1e-9)
    np.testing.assert_allclose(pcov, want_cov, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(bopt), np.stack([want] * 3), rtol=1e-9)


def test_the_solution_is_not_differentiable_in_inference_mode() -> None:
    t = torch.as_tensor(T_NP)
    s = torch.tensor(1.3, dtype=F64, requires_grad=True)

    def fun(p: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return p[0] * torch.exp(-p[1] * t) + p[2] - 2.5 * torch.exp(-s * t)

    outside = jacobite.least_squares(fun, torch.tensor(X0, dtype=F64), args=(s,))
    with torch.inference_mode():
        inside = jacobite.least_squares(fun, torch.tensor(X0, dtype=F64), args=(s,))
    assert outside.x.requires_grad and not inside.x.requires_grad
    torch.testing.assert_close(inside.x, outside.x.detach(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("inside", [True, False], ids=["in_inference_mode", "outside"])
def test_a_closure_over_an_inference_tensor_is_refused(inside: bool) -> None:
    with torch.inference_mode():
        t, y = torch.as_tensor(T_NP).clone(), torch.as_tensor(Y_NP).clone()
    mode = torch.inference_mode(inside)
    with mode, pytest.raises(UnsupportedOperationError, match=r"inference_mode.*clone"):
        jacobite.least_squares(lambda p: _model(p, t, y), torch.tensor(X0, dtype=F64))
