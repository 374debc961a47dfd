"""Source text 004: the softmax Jacobian, its properties, PyTorch code, the VJP, cross-entropy."""

from __future__ import annotations

import numpy as np
import torch

from ._base import Example

Z3 = [2.0, 1.0, 0.5]
Z4 = [2.0, 1.0, 0.5, -0.5]
G = [0.1, -0.3, 0.2]


def _s(z: list[float]) -> np.ndarray:
    e = np.exp(np.array(z) - max(z))
    return e / e.sum()


def _Jc(z: list[float]) -> np.ndarray:
    s = _s(z)
    return np.diag(s) - np.outer(s, s)


def _op(z: list[float]):
    from ...nn import softmax_jacobian

    return softmax_jacobian(torch.tensor(z, dtype=torch.float64))


def _props(z: list[float]):
    from ...analysis import properties

    return properties(_op(z))


def _lmax(z: list[float]) -> float:
    return float(max(_props(z).eigenvalues))


HOW = "jacobite softmax 2.0 1.0 0.5 -0.5 --target 0"

EXAMPLES = [
    Example("004", "The Complete Jacobian Matrix", "diag(σ) − σσᵀ at z = [2, 1, 0.5]",
            lambda: _op(Z3).to_dense().numpy(), None, lambda: _Jc(Z3),
            how="jacobite.nn.softmax_jacobian(z).to_dense()"),
    Example("004", "Property 1: Symmetry", "J = Jᵀ", lambda: float(_props(Z4).symmetric), 1.0,
            lambda: 1.0, decimals=0, how=HOW),
    Example("004", "Property 2: Row/Column Sums Equal Zero", "row sums",
            lambda: np.array(_props(Z4).row_sums), [0, 0, 0, 0], lambda: _Jc(Z4).sum(axis=1),
            decimals=6, how=HOW),
    Example("004", "Property 3: Positive Semi-Definiteness", "smallest eigenvalue ≥ 0",
            lambda: float(_props(Z4).psd), 1.0, lambda: 1.0, decimals=0, how=HOW),
    Example("004", "Property 4: Rank Deficiency", "rank (K = 4)", lambda: _props(Z4).rank, 3,
            lambda: int(np.linalg.matrix_rank(_Jc(Z4))), decimals=0, how=HOW),
    Example("004", "Property 5: Eigenvalue Structure", "largest eigenvalue at σ = (½, ½)",
            lambda: _lmax([0.0, 0.0]), 0.25, lambda: 0.5, decimals=2, text_ok=False,
            note="the bound ¼ is wrong: σ = (½, ½) gives J = [[¼, −¼], [−¼, ¼]] with eigenvalues "
                 "0 and ½; the sharp bound is ½ (¼ bounds the diagonal entries σᵢ(1 − σᵢ))",
            claim="at most ¼, reached at σᵢ = ½",
            how="jacobite softmax 0 0"),
    Example("004", "Property 5: Eigenvalue Structure", "largest eigenvalue at the source "
            "text's own z = [2, 1, 0.5, −0.5] (≤ ¼ claimed)", lambda: _lmax(Z4), 0.25,
            lambda: float(np.linalg.eigvalsh(_Jc(Z4)).max()), decimals=2, text_ok=False,
            note="the source text's own example input breaks its bound: 0.352136 > ¼",
            claim="at most ¼", how=HOW),
    Example("004", "PyTorch Implementation", "σ at z = [2, 1, 0.5] (printed with .round(4))",
            lambda: np.array(__import__("jacobite").nn.softmax_example(Z3, 0).sigma), None,
            lambda: _s(Z3), how="jacobite softmax 2.0 1.0 0.5"),
    Example("004", "Efficient VJP Computation", "σ ⊙ (g − ⟨g, σ⟩) for g = [0.1, −0.3, 0.2]",
            lambda: __import__("jacobite").nn.softmax_vjp(
                torch.tensor(Z3, dtype=torch.float64), torch.tensor(G, dtype=torch.float64)
            ).numpy(), None, lambda: _Jc(Z3) @ np.array(G),
            how="jacobite.nn.softmax_vjp(z, g)"),
    Example("004", "Connection to Gradient of Cross-Entropy Loss", "∂L/∂z = σ − y (y = class 0)",
            lambda: __import__("jacobite").nn.cross_entropy_gradient(
                torch.tensor(Z3, dtype=torch.float64), 0).numpy(), None,
            lambda: _s(Z3) - np.array([1.0, 0.0, 0.0]),
            how="jacobite.nn.cross_entropy_gradient(z, target)"),
]
