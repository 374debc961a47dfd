"""Dense references for the Laplace tests, built from the definitions with torch.func on a
tiny model: the Gauss–Newton matrix of the summed negative log-likelihood, its K-FAC and
last-layer Kronecker blocks from per-sample Jacobians and loss Hessians, the posterior
precision, the functional variance and the Laplace evidence."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ._oracle import dense_jacobian, flat_model

F64 = torch.float64


def mlp(classes: int = 3) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, classes)).to(F64)


def data(kind: str, n: int = 7, classes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    X = torch.randn(n, 4, dtype=F64)
    y = torch.randn(n, classes, dtype=F64) if kind == "mse" else torch.randint(0, classes, (n,))
    return X, y


def nll(kind: str, out: torch.Tensor, y: torch.Tensor, sigma: float) -> torch.Tensor:
    """The summed negative log-likelihood without its constant."""
    if kind == "ce":
        return F.cross_entropy(out, y, reduction="sum")
    return ((out - y) ** 2).sum() / (2 * sigma**2)


def sample_hessians(kind: str, out: torch.Tensor, y: torch.Tensor, sigma: float
                    ) -> torch.Tensor:
    """``(N, C, C)``: each sample's NLL Hessian in its output, by torch.func.hessian."""
    return torch.stack([torch.func.hessian(lambda o, n=n: nll(kind, o[None], y[n:n + 1], sigma))(
        out[n]) for n in range(out.shape[0])])


def names(model: nn.Module, structure: str) -> list[str]:
    return ["2.weight", "2.bias"] if structure == "last_layer" else \
        [k for k, _ in model.named_parameters()]


def layout(d_out: int, d_in: int) -> torch.Tensor:
    """For each index of the parameter layout [W row-major, b], its index in vec_row([W | b])."""
    o, i = torch.meshgrid(torch.arange(d_out), torch.arange(d_in), indexing="ij")
    return torch.cat([(o * (d_in + 1) + i).reshape(-1), torch.arange(d_out) * (d_in + 1) + d_in])


def _kron_block(B: torch.Tensor, H: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``(Σ_n B_nᵀ H_n B_n) ⊗ ((1/N) Σ_n ã_n ã_nᵀ)`` in the parameter layout."""
    G = torch.einsum("nci,ncd,ndj->ij", B, H, B)
    at = torch.cat([a, torch.ones(a.shape[0], 1, dtype=a.dtype)], dim=1)
    A = at.T @ at / a.shape[0]
    K = (G[:, None, :, None] * A[None, :, None, :]).reshape(G.shape[0] * A.shape[0], -1)
    idx = layout(B.shape[2], a.shape[1])
    return K[idx][:, idx]


def curvature(model: nn.Sequential, kind: str, structure: str, X: torch.Tensor,
              y: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """The dense ``(P, P)`` curvature (before temperature) the structure approximates."""
    out = model(X).detach()
    H = sample_hessians(kind, out, y, sigma)
    if structure in ("full", "diag"):
        J = dense_jacobian(model, X).reshape(X.shape[0], out.shape[1], -1)
        G = torch.einsum("nci,ncd,ndj->ij", J, H, J)
        return torch.diag(G.diagonal()) if structure == "diag" else G
    h = torch.tanh(model[0](X)).detach()
    eye = torch.eye(out.shape[1], dtype=F64).expand(X.shape[0], -1, -1)
    if structure == "last_layer":
        return _kron_block(eye, H, h)
    # K-FAC: B_n = ∂z_n / ∂(layer output), by torch.func per sample
    head = nn.Sequential(model[1], model[2])
    B0 = torch.stack([torch.func.jacrev(head)(model[0](X[n]).detach()) for n in range(len(X))])
    return torch.block_diag(_kron_block(B0, H, X), _kron_block(eye, H, h))


def precision(model: nn.Sequential, kind: str, structure: str, X: torch.Tensor,
              y: torch.Tensor, delta: torch.Tensor, T: float = 1.0,
              sigma: float = 1.0) -> torch.Tensor:
    """``Λ = G / T + diag(δ per parameter)``; ``delta`` per layer (``0``, ``2``)."""
    G = curvature(model, kind, structure, X, y, sigma) / T
    sizes = [p.numel() for k, p in model.named_parameters() if k in names(model, structure)]
    if structure == "last_layer":
        d = torch.full((sum(sizes),), float(delta[0]), dtype=F64)
    else:
        d = torch.cat([torch.full((s,), float(delta[i // 2]), dtype=F64)
                       for i, s in enumerate(sizes)])
    return G + torch.diag(d)


def functional_variance(model: nn.Module, structure: str, X: torch.Tensor,
                        Lam: torch.Tensor) -> torch.Tensor:
    J = dense_jacobian(model, X, names(model, structure)).reshape(X.shape[0], -1, Lam.shape[0])
    return J @ torch.linalg.solve(Lam, J.transpose(1, 2))


def evidence(model: nn.Module, kind: str, structure: str, X: torch.Tensor, y: torch.Tensor,
             Lam: torch.Tensor, delta_per_param: torch.Tensor, T: float = 1.0,
             sigma: float = 1.0) -> torch.Tensor:
    theta, _ = flat_model(model, names(model, structure))
    out = model(X).detach()
    loglik = -nll(kind, out, y, sigma) / T
    if kind == "mse":
        loglik = loglik - out.numel() * math.log(sigma * math.sqrt(2 * math.pi))
    return (loglik - 0.5 * (delta_per_param * theta**2).sum()
            + 0.5 * delta_per_param.log().sum() - 0.5 * torch.linalg.slogdet(Lam)[1])
