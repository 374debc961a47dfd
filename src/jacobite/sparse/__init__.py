"""Sparse Jacobians: coloring of sparsity patterns (detection and evaluation to follow).

>>> import numpy as np, jacobite.sparse as js
>>> js.column_coloring(np.eye(3)).num_colors
1
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

__all__ = ["Bicoloring", "Coloring", "bicoloring", "column_coloring", "lower_bound",
           "row_coloring", "star_coloring"]
