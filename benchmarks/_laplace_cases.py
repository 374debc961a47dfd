"""The Laplace benchmark's problems and scores: a seeded synthetic 10-class problem and the MLP
trained on it (the MAP), negative log-likelihood and expected calibration error, and the
laplace-torch adapter (its Laplace with the same structure, the prior precision by its own
evidence optimisation, the probit predictive)."""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass

import torch
from torch import nn

#: jacobite structure -> laplace-torch (subset_of_weights, hessian_structure)
PEER_CHUNK = 100
PEER_STRUCTURE = {"last_layer": ("last_layer", "kron"), "kron": ("all", "kron"),
                  "diag": ("all", "diag")}


@dataclass
class Problem:
    model: nn.Module
    X: torch.Tensor
    y: torch.Tensor
    Xt: torch.Tensor
    yt: torch.Tensor
    label: str


def classifier(quick: bool = False, seed: int = 0) -> Problem:
    """Ten overlapping Gaussian classes in 20 dimensions, an MLP 20-64-64-10 (Tanh) trained to
    its MAP by full-batch Adam (500 steps, weight decay 3e-3), float32."""
    g = torch.Generator().manual_seed(seed)
    d, classes = 20, 10
    n, nt = (200, 200) if quick else (500, 2000)
    means = 0.7 * torch.randn(classes, d, generator=g)

    def draw(m: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, classes, (m,), generator=g)
        return means[y] + torch.randn(m, d, generator=g), y

    X, y = draw(n)
    Xt, yt = draw(nt)
    torch.manual_seed(seed)
    width = 16 if quick else 64
    model = nn.Sequential(nn.Linear(d, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(),
                          nn.Linear(width, classes))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=3e-3)
    for _ in range(30 if quick else 500):
        opt.zero_grad()
        nn.functional.cross_entropy(model(X), y).backward()
        opt.step()
    model.eval()
    P = sum(p.numel() for p in model.parameters())
    label = (f"MLP {d}-{width}-{width}-{classes} (Tanh, {P:,} parameters, float32) trained "
             f"on {n} samples of 10 Gaussian classes, scored on {nt}")
    return Problem(model, X, y, Xt, yt, label)


def nll(probs: torch.Tensor, y: torch.Tensor) -> float:
    """Mean negative log-likelihood of the labels."""
    return float(-probs.clamp_min(1e-12).log().gather(1, y[:, None]).mean())


def ece(probs: torch.Tensor, y: torch.Tensor, bins: int = 15) -> float:
    """Expected calibration error: ``Σ_b |B_b|/n · |accuracy(B_b) − confidence(B_b)|`` over
    ``bins`` equal-width bins of the top-class confidence (a bin holds ``(lo, hi]``)."""
    conf, pred = probs.max(dim=1)
    correct = (pred == y).to(probs.dtype)
    edges = torch.linspace(0, 1, bins + 1, dtype=probs.dtype)
    total = 0.0
    for lo, hi in itertools.pairwise(edges):
        inside = (conf > lo) & (conf <= hi)
        if bool(inside.any()):
            total += float(inside.float().mean()) * abs(float(correct[inside].mean())
                                                         - float(conf[inside].mean()))
    return total


def peer_predict(problem: Problem, structure: str) -> torch.Tensor:
    """laplace-torch: fit, the prior precision by its marginal-likelihood optimisation, the
    probit predictive on the test inputs."""
    from laplace import Laplace
    from torch.utils.data import DataLoader, TensorDataset

    subset, hessian = PEER_STRUCTURE[structure]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        la = Laplace(problem.model, "classification", subset_of_weights=subset,
                     hessian_structure=hessian)
        la.fit(DataLoader(TensorDataset(problem.X, problem.y), batch_size=len(problem.X)))
        la.optimize_prior_precision(pred_type="glm", method="marglik")
        # in chunks: its Jacobians of a whole batch grow with the batch size squared
        parts = [la(x, pred_type="glm", link_approx="probit") for x in problem.Xt.split(PEER_CHUNK)]
        return torch.cat([p.detach() for p in parts if isinstance(p, torch.Tensor)])
