"""Closed-form loss gradients against torch.autograd of torch.nn.functional."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from jacobite.errors import DtypeError, InvalidOptionError, ShapeError
from jacobite.nn import cross_entropy_gradient, cross_entropy_loss, mse_gradient, one_hot_target

DT = torch.float64


def _autograd(loss, z: torch.Tensor, *args, **kw) -> tuple[torch.Tensor, torch.Tensor]:
    z = z.clone().requires_grad_(True)
    value = loss(z, *args, **kw)
    (g,) = torch.autograd.grad(value, z)
    return value.detach(), g


@given(st.integers(2, 7), st.integers(0, 2**31 - 1), st.sampled_from(["sum", "mean"]))
def test_cross_entropy_gradient_batch(K: int, seed: int, reduction: str) -> None:
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(4, K, dtype=DT, generator=gen) * 5
    t = torch.randint(0, K, (4,), generator=gen)
    value, ref = _autograd(F.cross_entropy, z, t, reduction=reduction)
    torch.testing.assert_close(cross_entropy_gradient(z, t, reduction=reduction), ref,
                               rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(cross_entropy_loss(z, t, reduction=reduction), value,
                               rtol=1e-12, atol=1e-15)


def test_cross_entropy_gradient_single_vector_is_sigma_minus_y() -> None:
    z = torch.tensor([2.5, 1.0, 3.0], dtype=DT)
    _, ref = _autograd(F.cross_entropy, z, torch.tensor(0))
    got = cross_entropy_gradient(z, 0)
    torch.testing.assert_close(got, ref, rtol=1e-13, atol=1e-16)
    torch.testing.assert_close(got, torch.softmax(z, 0) - torch.tensor([1.0, 0, 0], dtype=DT))


def test_cross_entropy_with_probability_targets() -> None:
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(3, 5, dtype=DT, generator=gen)
    y = torch.softmax(torch.randn(3, 5, dtype=DT, generator=gen), -1)
    _, ref = _autograd(F.cross_entropy, z, y)
    torch.testing.assert_close(cross_entropy_gradient(z, y, reduction="mean"), ref, rtol=1e-12,
                               atol=1e-15)
    y2 = y * 2.0  # not normalised: the gradient is (sum y) sigma - y
    _, ref2 = _autograd(F.cross_entropy, z, y2, reduction="sum")
    torch.testing.assert_close(cross_entropy_gradient(z, y2), ref2, rtol=1e-12, atol=1e-15)


def test_cross_entropy_gradient_huge_logits() -> None:
    z = torch.tensor([[1e4, -1e4, 0.0], [-5e3, 5e3, 5e3]], dtype=DT)
    t = torch.tensor([1, 2])
    value, ref = _autograd(F.cross_entropy, z, t, reduction="sum")
    got = cross_entropy_gradient(z, t)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(cross_entropy_loss(z, t), value)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_mse_gradient(reduction: str) -> None:
    gen = torch.Generator().manual_seed(1)
    y, t = torch.randn(3, 4, dtype=DT, generator=gen), torch.randn(3, 4, dtype=DT, generator=gen)
    _, ref = _autograd(F.mse_loss, y, t, reduction=reduction)
    torch.testing.assert_close(mse_gradient(y, t, reduction=reduction), ref, rtol=1e-13,
                               atol=1e-16)


def test_bad_targets_name_the_fix() -> None:
    z = torch.zeros(2, 3, dtype=DT)
    with pytest.raises(InvalidOptionError, match="indices 0 to 2"):
        cross_entropy_gradient(z, torch.tensor([0, 3]))
    with pytest.raises(ShapeError, match="one class index per sample"):
        cross_entropy_gradient(z, torch.tensor([0, 1, 2]))
    with pytest.raises(ShapeError, match="must match"):
        cross_entropy_gradient(z, torch.zeros(2, 4, dtype=DT))
    with pytest.raises(DtypeError, match="class index"):
        cross_entropy_gradient(z, "cat")
    with pytest.raises(InvalidOptionError, match="'sum', 'mean'"):
        cross_entropy_gradient(z, torch.tensor([0, 1]), reduction="none")
    with pytest.raises(ShapeError, match="classes last"):
        one_hot_target(0, torch.zeros(2, 2, 2))
    with pytest.raises(ShapeError):
        mse_gradient(torch.zeros(2), torch.zeros(3))


@pytest.mark.parametrize("z", [torch.zeros(0), torch.zeros(2, 0)], ids=["vector", "batch"])
def test_logits_without_classes_are_a_shape_error(z: torch.Tensor) -> None:
    # there is no class index to name, so "out of range, use indices 0 to -1" misled
    for call in (lambda: cross_entropy_gradient(z, 0 if z.ndim == 1 else torch.zeros(2).long()),
                 lambda: one_hot_target(0, z)):
        with pytest.raises(ShapeError, match="at least one logit") as info:
            call()
        assert type(info.value) is ShapeError
