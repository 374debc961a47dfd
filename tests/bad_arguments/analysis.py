"""Entries for jacobite.analysis."""

from __future__ import annotations

import torch

from jacobite import analysis as A
from jacobite.operators import DiagonalOperator

from . import F64, budget, choice, entry, flag, fn, posint, seed, tensor, tol

M = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0], [1.0, 0.0, 4.0]], dtype=F64)
S = M + M.T  # symmetric
X = torch.tensor([0.3, -0.2, 0.5], dtype=F64)
XB = torch.tensor([[0.3, -0.2, 0.5], [0.1, 0.2, -0.4]])
Y = torch.tensor([0, 1])


def F(v: torch.Tensor) -> torch.Tensor:
    return torch.tanh(v) + v


def _narrow(v: torch.Tensor) -> torch.Tensor:
    return v[:, :2]


def _widen(v: torch.Tensor) -> torch.Tensor:
    return torch.cat([v, v[:, :1]], dim=1)


def _net() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))


torch.manual_seed(0)
NET = _net()
REPORT = A.layer_report(NET, XB)

_op = [(0, "abc"), (0, None), (0, 3), (0, torch.ones(3, dtype=F64)),
       (0, torch.tensor([[1.0, float("nan")], [0.0, 1.0]], dtype=F64)), (1, "abc"),
       (1, torch.ones(3, dtype=torch.int64))]
_sym = [(0, "abc"), (0, None), (0, 3), (0, torch.ones(3, dtype=F64)), (0, M),
        (0, torch.tensor([[1.0, float("nan")], [float("nan"), 1.0]], dtype=F64)),
        (0, torch.ones(2, 2, dtype=torch.int64))]
_batch = [(1, "abc"), (1, None), (1, torch.ones((), dtype=torch.float32)),
          (1, torch.ones(2, 3, dtype=torch.int64)),
          (1, torch.tensor([[0.5, float("nan"), 1.0]]))]
_model = [(0, 3), (0, "net"), (0, None)]

ENTRIES = [
    entry("jacobite.analysis.top_singular", A.top_singular, M,
          cases=[*_op, *posint("k", huge=True), *tol("tol"), ("tol", 2.0),
                 *posint("max_iter"), *seed("seed")]),
    entry("jacobite.analysis.spectral_norm", A.spectral_norm, F, X,
          cases=[*_op, (0, DiagonalOperator(X)), *tol("tol"), *posint("max_iter"),
                 *seed("seed")]),
    entry("jacobite.analysis.condition_number", A.condition_number, M,
          cases=[*_op, *tol("tol"), *posint("max_iter"), *seed("seed"), *flag("exact"),
                 *budget("memory_budget")]),
    entry("jacobite.analysis.frobenius_norm", A.frobenius_norm, M,
          cases=[*_op, ("nproj", 0), ("nproj", -2), ("nproj", 2.5), ("nproj", "4"),
                 *seed("seed"), *choice("distribution"), ("confidence", 1.5),
                 ("confidence", float("nan"))]),
    entry("jacobite.analysis.logabsdet", A.logabsdet, M,
          cases=[*_op, (0, torch.ones(2, 3, dtype=F64)), *choice("method"), *posint("nprobe"),
                 *posint("steps"), *seed("seed"), ("confidence", 0.0),
                 *budget("memory_budget")]),
    entry("jacobite.analysis.eigenvalues", A.eigenvalues, S, 2,
          cases=[*_sym, *posint(1, huge=True), *choice("which"), *tol("tol"), ("tol", 2.0),
                 *posint("max_matvecs"), *posint("basis"), *seed("seed"),
                 *flag("assume_symmetric")]),
    entry("jacobite.analysis.spectral_density", A.spectral_density, S,
          cases=[*_sym, *posint("probes"), *posint("steps"), *seed("seed"),
                 *flag("assume_symmetric")]),
    entry("jacobite.divergence", A.divergence, F, XB,
          cases=[*fn(0), *tensor(1, (3,), (), (2, 3, 1)), (0, _narrow), *flag("batch"),
                 *choice("method"), *posint("nprobe"), *seed("seed"), *choice("jac_mode")]),
    entry("jacobite.logdet", A.logdet, F, XB,
          cases=[*fn(0), *tensor(1, (3,), (), (2, 3, 1), (0, 3)), (0, _widen), *flag("batch"),
                 *choice("method"), *posint("nprobe"), *seed("seed"), *budget("memory_budget"),
                 *posint("terms"), *posint("steps")]),
    entry("jacobite.analysis.properties", A.properties, M,
          cases=[*tensor(0, (2, 3), (3,), ()), *tol("tol")]),
    entry("jacobite.analysis.sensitive_directions", A.sensitive_directions, F, X,
          cases=[*fn(0), *tensor(1), *posint("k", huge=True), *choice("method"), *tol("tol")]),
    entry("jacobite.analysis.input_gradient", A.input_gradient, NET, XB, Y,
          cases=[*_model, *_batch, (2, "abc"), (2, torch.tensor([0, 1, 1])), ("loss", 3)]),
    entry("jacobite.analysis.fgsm", A.fgsm, NET, XB, Y, 0.1,
          cases=[*_model, *_batch, (2, None), *tol(3), ("clamp", (1.0, 0.0))]),
    entry("jacobite.analysis.pgd", A.pgd, NET, XB, Y, 0.1,
          cases=[*_model, *_batch, (2, None), *tol(3), *posint("steps"), *seed("seed"),
                 *choice("norm"), *tol("alpha"), *flag("random_start")]),
    entry("jacobite.analysis.accuracy", A.accuracy, NET, XB, Y,
          cases=[*_model, *_batch, (2, "abc"), (2, torch.tensor([0, 1, 1]))]),
    entry("jacobite.analysis.accuracy_vs_eps", A.accuracy_vs_eps, NET, XB, Y, [0.0, 0.1],
          cases=[*_model, *_batch, (3, "abc"), (3, [0.1, float("nan")]), (3, [-1.0]),
                 *choice("attack")]),
    entry("jacobite.analysis.saliency", A.saliency, NET, XB,
          cases=[*_model, *_batch, ("target", 9), ("target", "cat"), ("target", 1.5),
                 *flag("absolute")]),
    entry("jacobite.analysis.input_jacobians", A.input_jacobians, NET, XB,
          cases=[*_model, *_batch, *choice("mode"), *flag("flat"), ("memory_budget", "lots")]),
    entry("jacobite.analysis.layer_report", A.layer_report, NET, XB,
          cases=[*_model, *_batch, *posint("k"), *tol("tol"), *flag("total")]),
    entry("jacobite.analysis.compare_initialisations", A.compare_initialisations, _net, XB,
          ("default",),
          cases=[*_model, *_batch, (2, ("no-such-init",)), (2, 3), (2, "xavier"),
                 *seed(3), *posint("k")]),
    entry("jacobite.analysis.comparison_table", A.comparison_table, {"a": REPORT},
          cases=[(0, None), (0, 3), (0, "abc"), (0, {"a": 3}), (0, {3: REPORT}), (0, {}),
                 (0, [REPORT]), (0, {"a": None})]),
    entry("jacobite.analysis.plot_comparison", A.plot_comparison, {"a": REPORT},
          cases=[(0, None), (0, 3), (0, "abc"), (0, {"a": 3}), (0, {}), (0, [REPORT]),
                 (0, {"a": None}), ("ax", "axes")]),
    entry("jacobite.analysis.plot_accuracy_vs_eps", A.plot_accuracy_vs_eps,
          {"m": [(0.0, 0.9), (0.1, 0.5)]},
          cases=[(0, None), (0, 3), (0, {"m": []}), (0, {"m": [(0.0,)]}),
                 (0, {"m": [("a", "b")]}), (0, {"m": 3}), ("ax", "axes"), ("save", 3),
                 (0, {"m": [(0.0, float("nan"))]})]),
]
