"""Pictures of Jacobians (the optional ``plot`` extra: matplotlib).

Part of the *understand* layer. Every function returns a matplotlib ``Figure`` drawn on the
Agg canvas — nothing is shown and no pyplot state changes — and takes ``save=PATH`` to write
it as well (or call :func:`save_figure`). matplotlib is imported on first use, so
``import jacobite`` works without it.

* :func:`heatmap` — a Jacobian (tensor, array, sparse matrix or operator) with a diverging
  colormap centred at 0 and a colorbar;
* :func:`softmax_panels` — reference 004's three panels for the softmax Jacobian;
* :func:`deformed_grid` — the image of a regular grid under a 2-D map, coloured by ``det J``;
* :func:`spy` — the sparsity pattern of a dense or sparse Jacobian.

>>> import torch, jacobite
>>> from jacobite.viz import heatmap
>>> J = jacobite.jacobian(lambda x: torch.stack([x[0] * x[1], -x[1] ** 2]), torch.ones(2))
>>> fig = heatmap(J, title="J at (1, 1)")
>>> fig.axes[0].get_title()
'J at (1, 1)'
"""

from ._common import save_figure
from .grid import deformed_grid
from .heatmap import heatmap
from .softmax import softmax_panels
from .spy import nonzero_pattern, spy

__all__ = ["deformed_grid", "heatmap", "nonzero_pattern", "save_figure", "softmax_panels", "spy"]
