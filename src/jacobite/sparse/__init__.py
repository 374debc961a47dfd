"""Sparse Jacobians: global sparsity detection and coloring (compressed evaluation to follow).

Part of the *compute* layer. :func:`detect` finds the pattern of ∂f/∂x for every input by
abstract interpretation of the torch operations ``f`` runs (conservative: an operation without a
rule counts as dense, with a warning); the colorings group columns (forward passes) or rows
(reverse passes) that can share one product.

>>> import numpy as np, torch, jacobite.sparse as js
>>> js.column_coloring(np.eye(3)).num_colors
1
>>> js.detect(torch.sin, torch.zeros(4)).nnz
4
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

__all__ = ["Bicoloring", "Coloring", "Pattern", "bicoloring", "column_coloring", "detect",
           "lower_bound", "row_coloring", "star_coloring"]
