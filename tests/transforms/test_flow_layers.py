"""Planar, radial and Sylvester layers: log-det against the dense slogdet of torch.func.jacrev,
the structured operators against the batched formula, inverses, constraints, training."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import MultivariateNormal, TransformedDistribution

from jacobite.transforms.flows import Planar, Radial, Sylvester

F64 = torch.float64


def _dense_logdet(layer: torch.nn.Module, z: torch.Tensor) -> torch.Tensor:
    J = torch.vmap(torch.func.jacrev(layer._call))(z)
    sign, lad = torch.linalg.slogdet(J)
    assert bool((sign > 0).all())  # every layer keeps its orientation
    return lad


def _raw(seed: int, shape: tuple[int, ...], scale: float) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=F64) * scale


def _layer(kind: str, D: int, seed: int, scale: float) -> torch.nn.Module:
    if kind == "planar":
        return Planar(D, _raw(seed, (D,), scale), _raw(seed + 1, (D,), scale),
                      _raw(seed + 2, (), scale), dtype=F64)
    if kind == "radial":
        return Radial(D, _raw(seed, (D,), 1.0), _raw(seed + 1, (), scale),
                      _raw(seed + 2, (), scale), dtype=F64)
    M = 1 + seed % D
    return Sylvester(D, M, _raw(seed, (D, M), 1.0), _raw(seed + 1, (M, M), scale),
                     _raw(seed + 2, (M, M), scale), _raw(seed + 3, (M,), scale), dtype=F64)


KINDS = ["planar", "radial", "sylvester"]
params = dict(D=st.integers(1, 6), seed=st.integers(0, 10_000),
              scale=st.sampled_from([0.1, 1.0, 3.0, 10.0]))


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=40, deadline=None)
@given(**params)
def test_logdet_matches_dense_slogdet(kind: str, D: int, seed: int, scale: float) -> None:
    layer = _layer(kind, D, seed, scale)
    z = _raw(seed + 7, (5, D), 2.0)
    got = layer.log_abs_det_jacobian(z, layer(z))
    torch.testing.assert_close(got, _dense_logdet(layer, z), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=25, deadline=None)
@given(**params)
def test_operator_slogdet_equals_batched_formula(kind: str, D: int, seed: int,
                                                 scale: float) -> None:
    layer = _layer(kind, D, seed, scale)
    z = _raw(seed + 7, (4, D), 2.0)
    batched = layer.log_abs_det_jacobian(z, None)
    for i in range(z.shape[0]):
        op = layer.jacobian_operator(z[i])
        sign, lad = op.slogdet()
        assert sign.item() == 1.0
        torch.testing.assert_close(lad, batched[i], rtol=1e-9, atol=1e-9)
        J = torch.func.jacrev(layer._call)(z[i])
        torch.testing.assert_close(op.to_dense(), J, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=40, deadline=None)
@given(**params)
def test_inverse_round_trip(kind: str, D: int, seed: int, scale: float) -> None:
    layer = _layer(kind, D, seed, scale)
    z = _raw(seed + 7, (6, D), 3.0)
    with torch.no_grad():
        torch.testing.assert_close(layer.inv(layer(z)), z, rtol=1e-8, atol=1e-8)
        y = _raw(seed + 9, (6, D), 3.0)
        torch.testing.assert_close(layer(layer.inv(y)), y, rtol=1e-8, atol=1e-8)


@settings(max_examples=60, deadline=None)
@given(D=st.integers(1, 6), seed=st.integers(0, 10_000),
       scale=st.sampled_from([1.0, 10.0, 100.0]))
def test_constraints_hold_for_any_raw_values(D: int, seed: int, scale: float) -> None:
    p = _layer("planar", D, seed, scale)
    assert bool(p.w_dot_u_hat >= -1)  # > -1 but where softplus underflows
    if float((p.w @ p.u).detach()) > -30:
        assert bool(p.w_dot_u_hat > -1)
    if float((p.w @ p.w).detach()) > 0:  # the reparametrised u hits the value it promises
        torch.testing.assert_close(p.w @ p.u_hat, p.w_dot_u_hat, rtol=1e-6, atol=1e-6 * scale**2)
    r = _layer("radial", D, seed, scale)
    assert bool(r.alpha > 0) and bool(r.beta >= -r.alpha)
    s = _layer("sylvester", D, seed, scale)
    assert bool((torch.diagonal(s.R) * torch.diagonal(s.R_tilde) >= -1).all())
    z = _raw(seed + 7, (5, D), 2.0)
    for layer in (p, r, s):  # orientation kept: a finite log-det at generic points
        assert bool(torch.isfinite(layer.log_abs_det_jacobian(z, None)).all())
    torch.testing.assert_close(s.Q.mT @ s.Q, torch.eye(s.m, dtype=F64), rtol=0, atol=1e-12)
    assert torch.equal(s.R, torch.triu(s.R)) and torch.equal(s.R_tilde, torch.triu(s.R_tilde))


@pytest.mark.parametrize("kind", KINDS)
def test_inverse_is_differentiable_in_the_parameters(kind: str) -> None:
    layer = _layer(kind, 3, 11, 1.0)
    y = _raw(5, (4, 3), 1.5)
    weights = _raw(6, (4, 3), 1.0)

    def loss() -> torch.Tensor:
        return (layer.inv(y) * weights).sum()

    params = list(layer.parameters())
    grads = torch.autograd.grad(loss(), params)
    eps = 1e-6
    with torch.no_grad():
        for p, g in zip(params, grads, strict=True):
            flat = p.view(-1)
            for j in range(flat.numel()):
                flat[j] += eps
                up = loss()
                flat[j] -= 2 * eps
                dn = loss()
                flat[j] += eps
                torch.testing.assert_close(g.reshape(-1)[j], (up - dn) / (2 * eps),
                                           rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_trains_by_maximum_likelihood_in_torch_distributions(kind: str) -> None:
    torch.manual_seed(0)
    layer = _layer(kind, 2, 3, 0.5)
    base = MultivariateNormal(torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64))
    q = TransformedDistribution(base, [layer])
    data = torch.randn(256, 2, dtype=F64) * torch.tensor([2.0, 0.5], dtype=F64) + 1.0
    opt = torch.optim.Adam(layer.parameters(), lr=0.05)
    first = float(-q.log_prob(data).mean())
    for _ in range(60):
        opt.zero_grad()
        nll = -q.log_prob(data).mean()
        nll.backward()
        opt.step()
    assert float(-q.log_prob(data).mean()) < first - 0.05
    y = q.sample((8,))  # sampling and the density agree with the layer's own pieces
    x = layer.inv(y)
    torch.testing.assert_close(q.log_prob(y), base.log_prob(x)
                               - layer.log_abs_det_jacobian(x, y))


def test_planar_with_w_zero_is_a_translation() -> None:
    # w = 0: f(z) = z + u tanh(b), J = I; wᵀû is 0, not the −1 + softplus(0) of the w ≠ 0 case
    p = Planar(3, torch.zeros(3, dtype=F64), torch.tensor([1.0, -2.0, 0.5], dtype=F64),
               torch.tensor(0.5, dtype=F64), dtype=F64)
    z = _raw(3, (4, 3), 1.0)
    torch.testing.assert_close(p(z), z + torch.tensor([1.0, -2.0, 0.5], dtype=F64)
                               * torch.tanh(torch.tensor(0.5, dtype=F64)))
    torch.testing.assert_close(p.inv(p(z)), z)
    torch.testing.assert_close(p.log_abs_det_jacobian(z, None), torch.zeros(4, dtype=F64))
    torch.testing.assert_close(p.log_abs_det_jacobian(z, None), _dense_logdet(p, z))
