"""``softmax_panels``: three panels — the softmax Jacobian as a heatmap,
its diagonal ``σᵢ(1 − σᵢ)``, and the probabilities ``σ``. The Jacobian comes from AD."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .. import _validate, dense
from ..errors import ArgumentTypeError, NonFiniteInputError, ShapeError
from ._common import PathLike, new_figure, save_figure
from .heatmap import heatmap

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["softmax_panels"]


def _softmax(z: torch.Tensor) -> torch.Tensor:
    return torch.softmax(z, dim=-1)


def softmax_panels(z: Any, *, title: str | None = None, save: PathLike | None = None,
                   figsize: tuple[float, float] = (15.0, 4.0)) -> Figure:
    """Three panels for the softmax at logits ``z``:

    1. the Jacobian ``∂σᵢ/∂zⱼ = σᵢ(δᵢⱼ − σⱼ)`` (computed by :func:`jacobite.jacobian`) as a
       heatmap with a colormap centred at 0;
    2. its diagonal as bars, with the closed form ``σᵢ(1 − σᵢ)`` marked on top for comparison;
    3. the probabilities ``σ = softmax(z)`` as bars.

    Args:
        z: a 1-D tensor, array or list of logits (``K >= 1``).
        title: a title over the three panels.
        save: also write the figure to this path.
        figsize: the figure size in inches.

    >>> fig = softmax_panels([2.0, 1.0, 0.5, -0.5, 0.0])
    >>> [ax.get_title() for ax in fig.axes[:3]]
    ['Jacobian ∂σᵢ/∂zⱼ', 'Diagonal: σᵢ(1 − σᵢ)', 'Softmax probabilities σ']
    """
    try:
        zt = torch.as_tensor(z.detach() if isinstance(z, torch.Tensor) else np.asarray(z,
                                                                                     dtype=float))
    except (TypeError, ValueError) as exc:
        raise ArgumentTypeError(f"z must be a vector of logits (numbers), got "
                                f"{type(z).__name__}; e.g. z=[2.0, 1.0, 0.1]") from exc
    if not zt.dtype.is_floating_point:
        zt = zt.to(torch.float64)
    if zt.ndim != 1 or zt.numel() == 0:
        raise ShapeError(f"softmax_panels takes ONE non-empty vector of logits, got shape "
                         f"{tuple(zt.shape)}; for a batch, pass one row at a time (z[i])")
    if not _validate.all_finite(zt):
        raise NonFiniteInputError("z contains NaN or Inf; pass finite logits")
    sigma, J = dense.value_and_jacobian(_softmax, zt)
    sigma, J = sigma.detach().cpu().numpy(), J.detach().cpu().numpy()
    K = sigma.shape[0]
    idx = np.arange(K)

    fig = new_figure(figsize)
    ax_j, ax_d, ax_p = fig.subplots(1, 3)
    heatmap(J, ax=ax_j, title="Jacobian ∂σᵢ/∂zⱼ", annotate=None if K <= 8 else False,
            colorbar_label="∂σᵢ/∂zⱼ")
    ax_j.set_xlabel("input logit index j")
    ax_j.set_ylabel("output prob index i")

    ax_d.bar(idx, np.diag(J), color="steelblue", label="diagonal of J (AD)")
    ax_d.plot(idx, sigma * (1 - sigma), "k_", markersize=18, markeredgewidth=2,
              label="σᵢ(1 − σᵢ)")
    ax_d.axhline(0.0, color="black", linewidth=0.5)
    ax_d.set_title("Diagonal: σᵢ(1 − σᵢ)")
    ax_d.set_xlabel("index i")
    ax_d.set_ylabel("value")
    ax_d.legend(loc="upper right", fontsize=8)

    ax_p.bar(idx, sigma, color="coral")
    ax_p.set_title("Softmax probabilities σ")
    ax_p.set_xlabel("class")
    ax_p.set_ylabel("probability")
    ax_p.set_ylim(0.0, max(1.05 * float(sigma.max()), 1e-3))
    if K <= 30:
        for ax in (ax_d, ax_p):
            ax.set_xticks(idx)
    if title is not None:
        fig.suptitle(title)
    if save is not None:
        save_figure(fig, save)
    return fig
