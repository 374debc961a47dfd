"""Sensitivity: per-sample Jacobians, saliency and sensitive directions against dense
torch.func oracles."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import jacrev, vmap

from jacobite.analysis.sensitivity import input_jacobians, saliency, sensitive_directions
from jacobite.errors import InvalidOptionError, JacobiteError, ShapeError

D = torch.float64


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 4)).to(D)


def _cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.Tanh(), nn.Flatten(),
                         nn.Linear(3 * 5 * 5, 5)).to(D)


def _oracle(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return vmap(jacrev(lambda v: model(v[None])[0]))(x)


@pytest.mark.parametrize("make, shape", [(_mlp, (5, 6)), (_cnn, (3, 2, 5, 5))])
def test_input_jacobians_match_torch_func(make, shape):
    model = make()
    x = torch.randn(*shape, dtype=D)
    J = input_jacobians(model, x)
    ref = _oracle(model, x)
    assert J.shape == ref.shape
    torch.testing.assert_close(J, ref, rtol=1e-12, atol=1e-12)
    Jf = input_jacobians(model, x, flat=True)
    assert Jf.shape == (shape[0], ref[0].shape[0], x[0].numel())


def test_input_jacobians_chunked_under_a_tiny_budget():
    model, x = _mlp(), torch.randn(7, 6, dtype=D)
    torch.testing.assert_close(input_jacobians(model, x, memory_budget=4096), _oracle(model, x))


def test_saliency_is_the_target_row_of_the_jacobian():
    model, x = _mlp(1), torch.randn(6, 6, dtype=D)
    J = _oracle(model, x)  # (B, 4, 6)
    pred = model(x).argmax(1)
    torch.testing.assert_close(saliency(model, x), J[torch.arange(6), pred].abs())
    t = torch.tensor([0, 1, 2, 3, 0, 1])
    torch.testing.assert_close(saliency(model, x, t, absolute=False), J[torch.arange(6), t])
    torch.testing.assert_close(saliency(model, x, 2), J[:, 2].abs())
    assert all(p.grad is None for p in model.parameters())


def test_saliency_of_a_cnn_is_shaped_like_the_input():
    model, x = _cnn(), torch.randn(2, 2, 5, 5, dtype=D)
    s = saliency(model, x, target=4)
    torch.testing.assert_close(s, _oracle(model, x)[:, 4].abs())
    assert s.shape == x.shape


def test_saliency_errors():
    model, x = _mlp(), torch.randn(3, 6, dtype=D)
    with pytest.raises(InvalidOptionError):
        saliency(model, x, target=4)
    with pytest.raises(ShapeError):
        saliency(model, x, target=torch.tensor([0, 1]))
    with pytest.raises(InvalidOptionError):
        saliency(model, x, target=torch.tensor([0.5, 1.0, 2.0]))
    with pytest.raises(ShapeError):
        saliency(model, torch.zeros(0, 6, dtype=D))


@pytest.mark.parametrize("method", ["dense", "auto", "matrix-free"])
def test_sensitive_directions_are_the_top_right_singular_vectors(method):
    model, x = _cnn(2), torch.randn(2, 5, 5, dtype=D)
    J = _oracle(model, x[None])[0].reshape(5, -1)
    _, S, Vh = torch.linalg.svd(J, full_matrices=False)
    s = sensitive_directions(model, x, k=3, method=method)
    assert s.method == ("matrix-free" if method == "matrix-free" else "dense")  # J is 5 × 50
    torch.testing.assert_close(s.values, S[:3], rtol=1e-6, atol=1e-9)
    V = s.directions.reshape(3, -1)
    assert s.directions.shape == (3, 2, 5, 5) and s.responses.shape == (3, 5)
    # equal to the SVD's up to sign, and J v_i = σ_i u_i
    torch.testing.assert_close((V @ Vh[:3].T).abs(), torch.eye(3, dtype=D), atol=1e-6, rtol=0)
    torch.testing.assert_close(V @ J.T, s.values[:, None] * s.responses, atol=1e-6, rtol=1e-6)
    # the first direction moves the output more than random ones
    rnd = torch.randn(50, V.shape[1], dtype=D)
    rnd = rnd / rnd.norm(dim=1, keepdim=True)
    assert (rnd @ J.T).norm(dim=1).max() <= (J @ V[0]).norm() + 1e-12


def test_sensitive_directions_matrix_free_on_a_larger_float32_net():
    torch.manual_seed(5)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 3, 3, padding=1))
    x = torch.randn(3, 12, 12)  # J is 432 × 432: "auto" goes matrix-free
    s = sensitive_directions(model, x, k=2)
    assert s.method == "matrix-free" and s.directions.dtype == torch.float32
    J = _oracle(model.double(), x.double()[None])[0].reshape(432, 432)
    S = torch.linalg.svdvals(J)[:2]
    torch.testing.assert_close(s.values.double(), S, rtol=1e-4, atol=0)


def test_sensitive_directions_errors():
    model = _mlp()
    with pytest.raises(InvalidOptionError):
        sensitive_directions(model, torch.randn(6, dtype=D), k=5)
    with pytest.raises(InvalidOptionError):
        sensitive_directions(model, torch.randn(6, dtype=D), method="svd")
    with pytest.raises(JacobiteError):
        sensitive_directions(model, torch.zeros(0, dtype=D))
