"""Operations torch itself differentiates wrongly or not at all under its transforms.

``torch.cdist``'s direct kernel (``p != 2``, or few points) has no forward-mode derivative, and
its vectorised backward returns wrong values; jacobite's dense Jacobians take it one VJP at a time
in reverse mode. The oracle is ``torch.autograd.functional.jacobian``, which loops over rows
without ``vmap``.
"""

from __future__ import annotations

import pytest
import torch

import jacobite
from jacobite.errors import UnsupportedOperationError


def _cdist_f(points: torch.Tensor, p: float):
    return lambda v: torch.cdist(v.reshape(-1, 2), points, p=p).ravel()


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
@pytest.mark.parametrize("mode", ["auto", "reverse"])
@pytest.mark.parametrize("chunk_size", ["auto", None, 1, 4])
@pytest.mark.parametrize("n_points", [3, 20])
def test_cdist_jacobian_matches_the_row_by_row_oracle(p, mode, chunk_size, n_points) -> None:
    g = torch.Generator().manual_seed(n_points)
    points = torch.randn(n_points, 2, dtype=torch.float64, generator=g)
    f = _cdist_f(points, p)
    x = torch.randn(2 * 10, dtype=torch.float64, generator=g)
    ref = torch.autograd.functional.jacobian(f, x)
    J = jacobite.jacobian(f, x, mode=mode, chunk_size=chunk_size)
    torch.testing.assert_close(J, ref, rtol=1e-12, atol=1e-12)


def test_cdist_auto_picks_reverse_and_says_why() -> None:
    points = torch.randn(20, 2, dtype=torch.float64)
    f = _cdist_f(points, 2.0)
    x = torch.randn(20, dtype=torch.float64)  # m = 200 outputs would favour forward mode
    plan = jacobite.jacobian_plan(f, x)
    assert plan.mode == "reverse" and plan.chunk_size == 1
    assert "forward-mode derivative" in plan.reason


def test_cdist_forward_mode_is_refused_naming_reverse() -> None:
    points = torch.randn(3, 2, dtype=torch.float64)
    with pytest.raises(UnsupportedOperationError, match="mode='reverse'"):
        jacobite.jacobian(_cdist_f(points, 2.0), torch.randn(8, dtype=torch.float64),
                          mode="forward")


def test_cdist_hessian_is_refused_naming_the_fix() -> None:
    points = torch.randn(3, 2, dtype=torch.float64)
    f = _cdist_f(points, 2.0)
    with pytest.raises(UnsupportedOperationError, match="use_mm_for_euclid_dist"):
        jacobite.hessian(lambda v: f(v).pow(2).sum(), torch.randn(8, dtype=torch.float64))


def test_cdist_batch_jacobian_matches_a_loop() -> None:
    points = torch.randn(3, 2, dtype=torch.float64)
    f = _cdist_f(points, 2.0)
    X = torch.randn(4, 8, dtype=torch.float64)
    ref = torch.stack([torch.autograd.functional.jacobian(f, x) for x in X])
    torch.testing.assert_close(jacobite.batch_jacobian(f, X), ref, rtol=1e-12, atol=1e-12)
