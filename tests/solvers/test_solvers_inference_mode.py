"""root and newton_minimize inside ``torch.inference_mode()``: they solve on copies of the
inference tensors (the same answers as outside it), and a function closing over an inference
tensor is refused naming the fix instead of a misleading shape error."""

from __future__ import annotations

import pytest
import scipy.optimize as so
import torch

import jacobite
from jacobite.errors import UnsupportedOperationError

F64 = torch.float64


def _system(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    return torch.stack([x[0] ** 3 + x[1] - a[0], x[0] - x[1] ** 2 + a[1]])


@pytest.mark.parametrize("method", ["hybrid", "newton"])
def test_root_in_inference_mode_matches_scipy(method: str) -> None:
    a = torch.tensor([2.0, 0.5], dtype=F64)
    ref = so.root(lambda v: [v[0] ** 3 + v[1] - 2.0, v[0] - v[1] ** 2 + 0.5], [1.0, 1.0],
                  tol=1e-14)
    with torch.inference_mode():
        res = jacobite.root(_system, torch.tensor([1.0, 1.0], dtype=F64), method=method,  # type: ignore[arg-type]
                            args=(a.clone(),))
    assert res.success
    assert torch.allclose(res.x, torch.as_tensor(ref.x, dtype=F64), atol=1e-10)
    assert not res.x.requires_grad


def test_newton_minimize_in_inference_mode_matches_scipy() -> None:
    def rosen(x: torch.Tensor) -> torch.Tensor:
        return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2

    with torch.inference_mode():
        res = jacobite.solvers.newton_minimize(rosen, torch.tensor([-1.2, 1.0], dtype=F64))
    ref = so.minimize(lambda v: (1 - v[0]) ** 2 + 100 * (v[1] - v[0] ** 2) ** 2, [-1.2, 1.0],
                      method="BFGS", options={"gtol": 1e-10})
    assert torch.allclose(res.x, torch.as_tensor(ref.x, dtype=F64), atol=1e-6)


def test_root_refuses_a_closed_over_inference_tensor() -> None:
    with torch.inference_mode():
        a = torch.tensor([2.0, 0.5], dtype=F64)
        with pytest.raises(UnsupportedOperationError, match="inference_mode"):
            jacobite.root(lambda x: torch.stack([a[0] * x[0] ** 3 + x[1] - 2,
                                                 x[0] - a[1] * x[1] ** 2 + 0.5]),
                          torch.tensor([1.0, 1.0], dtype=F64))
