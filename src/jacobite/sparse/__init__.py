"""Sparse Jacobians: global sparsity detection, coloring and compressed evaluation.

Part of the *compute* layer. :func:`detect` finds the pattern of ∂f/∂x for every input by abstract
interpretation of the torch operations ``f`` runs (one registered rule per operation; conservative:
an operation without a rule counts as dense, with a warning); the colorings group columns (forward
passes) or rows (reverse passes) that can share one product; :func:`prepare` does both once and its
plan evaluates the Jacobian at any ``x`` in about ``c`` passes (``c`` colors), as a sparse operator
(differentiable by ``torch.autograd`` when ``x`` requires grad). :func:`prepare_hessian` does the
same for Hessians through a star coloring.

>>> import numpy as np, torch, jacobite.sparse as js
>>> js.column_coloring(np.eye(3)).num_colors
1
>>> js.detect(torch.sin, torch.zeros(4)).nnz
4
>>> js.prepare(torch.sin, torch.zeros(4)).jacobian(torch.zeros(4)).to_dense().diagonal().tolist()
[1.0, 1.0, 1.0, 1.0]
"""

from .coloring import (
    Bicoloring,
    Coloring,
    bicoloring,
    column_coloring,
    lower_bound,
    row_coloring,
    star_coloring,
)
from .detect import Pattern
from .detect import detect as detect
from .detect import detect_hessian as detect_hessian
from .evaluate import SparsePlan, prepare, prepare_hessian

__all__ = ["Bicoloring", "Coloring", "Pattern", "SparsePlan", "bicoloring", "column_coloring",
           "detect", "detect_hessian", "lower_bound", "prepare", "prepare_hessian",
           "row_coloring", "star_coloring"]
