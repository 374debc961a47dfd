"""Jacobian regularisation: exact mode against the dense ½‖J‖²_F, the random-projection
estimator is unbiased, and the penalty trains (its gradients match the dense oracle's)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, jacrev, vmap

from jacobite.errors import DtypeError, InvalidOptionError, ShapeError
from jacobite.nn.regularization import jacobian_penalty

D = torch.float64


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 12), nn.Tanh(), nn.Linear(12, 4)).to(D)


def _dense(model: nn.Module, x: torch.Tensor, params=None) -> torch.Tensor:
    params = dict(model.named_parameters()) if params is None else params

    def f(v):
        return functional_call(model, params, (v[None],))[0]

    J = vmap(jacrev(f))(x)
    return 0.5 * J.pow(2).sum() / x.shape[0]


def test_exact_mode_equals_the_dense_penalty():
    model, x = _model(), torch.randn(7, 5, dtype=D)
    torch.testing.assert_close(jacobian_penalty(model, x, nproj=-1), _dense(model, x))


def test_exact_mode_on_a_cnn_with_image_outputs():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.Tanh()).to(D)
    x = torch.randn(3, 2, 4, 4, dtype=D)
    torch.testing.assert_close(jacobian_penalty(model, x, nproj=-1), _dense(model, x))


def test_estimator_is_unbiased():
    model, x = _model(2), torch.randn(4, 5, dtype=D)
    truth = _dense(model, x).item()
    est = torch.stack([jacobian_penalty(model, x, nproj=1, seed=s).detach()
                       for s in range(600)])
    se = est.std().item() / math.sqrt(len(est))
    assert abs(est.mean().item() - truth) < 4 * se
    many = jacobian_penalty(model, x, nproj=200, seed=0).item()
    assert abs(many - truth) < 0.1 * truth  # more projections: closer


def test_seed_fixes_the_projections():
    model, x = _model(), torch.randn(3, 5, dtype=D)
    a, b = jacobian_penalty(model, x, seed=3), jacobian_penalty(model, x, seed=3)
    assert torch.equal(a, b)


@pytest.mark.parametrize("nproj", [-1, 3])
def test_gradients_flow_and_match_the_oracle(nproj):
    model, x = _model(3), torch.randn(6, 5, dtype=D)
    p = jacobian_penalty(model, x, nproj=nproj, seed=0)
    p.backward()
    # J does not depend on the last bias; every weight gets a gradient
    assert all(model[i].weight.grad.abs().sum() > 0 for i in (0, 2))
    if nproj == -1:
        params = {k: v.detach() for k, v in model.named_parameters()}
        ref = grad(lambda ps: _dense(model, x, ps))(params)
        for name, q in model.named_parameters():
            g = torch.zeros_like(q) if q.grad is None else q.grad
            torch.testing.assert_close(g, ref[name])


def test_reuses_the_training_forward_pass():
    model, x = _model(4), torch.randn(5, 5, dtype=D).requires_grad_(True)
    out = model(x)
    loss = out.pow(2).mean() + 0.1 * jacobian_penalty(model, x, nproj=-1, output=out)
    loss.backward()
    torch.testing.assert_close(jacobian_penalty(model, x.detach(), nproj=-1),
                               _dense(model, x.detach()))


def test_errors():
    model = _model()
    with pytest.raises(InvalidOptionError):
        jacobian_penalty(model, torch.randn(2, 5, dtype=D), nproj=0)
    with pytest.raises(ShapeError):
        jacobian_penalty(model, torch.zeros(0, 5, dtype=D))
    with pytest.raises(DtypeError, match="embedding"):
        jacobian_penalty(model, torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(InvalidOptionError):
        jacobian_penalty(model, torch.randn(2, 5, dtype=D), output=torch.zeros(2, 4, dtype=D))


def test_jacobian_penalty_seed_none_follows_torch_manual_seed() -> None:
    W = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x = torch.ones(2, 4, dtype=torch.float64)

    def penalty(seed):
        return jacobian_penalty(lambda b: torch.tanh(b @ W.T), x, nproj=1, seed=seed)

    torch.manual_seed(5)
    a = penalty(None)
    torch.manual_seed(5)
    assert torch.equal(penalty(None), a)
    assert torch.equal(penalty(9), penalty(9))
