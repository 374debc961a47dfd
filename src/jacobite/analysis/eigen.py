"""Extreme eigenvalues of a symmetric operator (a curvature matrix, a Hessian, a covariance)
without forming it: thick-restart Lanczos with full reorthogonalisation.

:func:`eigenvalues` takes any square :class:`~jacobite.operators.JacobianOperator` tagged
``symmetric`` (``jacobite.curvature.ggn``, ``hessian``, ``fisher``, ``A.T @ A`` …), a symmetric
2-D tensor, or an untagged operator with ``assume_symmetric=True``, and returns an
:class:`Eigenpairs`: values, unit eigenvectors, residual norms ``‖A v − λ v‖`` (absolute and
relative to the largest ``|λ|`` seen), the number of products used and a convergence status.

The products run in the operator's dtype (a float32 GGN stays float32); the Lanczos vectors,
the projected matrix and every Rayleigh–Ritz step are float64. One product per Lanczos step
and no product after convergence: a pair's residual comes from the Lanczos relation.

>>> import torch
>>> from jacobite.analysis import eigenvalues
>>> A = torch.diag(torch.tensor([5.0, -1.0, 2.0, 0.5], dtype=torch.float64))
>>> r = eigenvalues(A, k=2)
>>> r.values.tolist(), r.converged
([5.0, 2.0], True)
>>> eigenvalues(A, k=1, which="smallest").values.tolist()
[-1.0]
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .. import _validate
from .._compile import eager_under_compile
from .._modules import keeps_state
from ..errors import InvalidOptionError, JacobiteWarning
from ._lanczos import F64
from ._lanczos_sym import Which, symmetric_products, thick_restart

__all__ = ["Eigenpairs", "eigenvalues"]

_WHICH = ("largest", "smallest", "magnitude", "both_ends")


@dataclass(frozen=True)
class Eigenpairs:
    """The wanted eigenpairs of a symmetric operator (float64, on its device).

    ``values`` ``(k,)`` in the order asked for (``"largest"``: decreasing; ``"smallest"``:
    increasing; ``"magnitude"``: decreasing ``|λ|``; ``"both_ends"``: the largest and the
    smallest alternately); ``vectors`` ``(n, k)`` unit eigenvectors as columns;
    ``residuals`` ``‖A v_i − λ_i v_i‖`` and ``relative_residuals`` the same over the largest
    ``|λ|`` of the final Lanczos projection (a lower bound on ``‖A‖₂``). ``matvecs`` counts the
    operator's products, ``restarts`` the thick restarts. ``converged`` says every pair met the
    tolerance (or the basis spanned the whole space); ``message`` says what happened.
    Values and vectors are constants (not differentiable).
    """

    values: torch.Tensor
    vectors: torch.Tensor
    residuals: torch.Tensor
    relative_residuals: torch.Tensor
    matvecs: int
    restarts: int
    converged: bool
    message: str


@keeps_state
def eigenvalues(operator: Any, k: int = 6, *, which: Which = "largest", tol: float = 1e-8,
                max_matvecs: int | None = None, basis: int | None = None,
                seed: int | None = 0, assume_symmetric: bool = False) -> Eigenpairs:
    """The ``k`` extreme eigenpairs of a symmetric ``(n, n)`` operator by thick-restart Lanczos.

    Args:
        operator: a ``JacobianOperator`` tagged ``symmetric`` (``ggn``, ``hessian``,
            ``fisher``, ``DiagonalPlusLowRank`` with a symmetric core …), a symmetric 2-D
            tensor (checked entry by entry) or an operator known to be symmetric with
            ``assume_symmetric=True``. Anything else raises
            :class:`~jacobite.errors.UnsupportedOperationError` naming these fixes.
        k: how many eigenpairs, at most ``n``.
        which: ``"largest"`` (algebraic), ``"smallest"``, ``"magnitude"`` (largest ``|λ|``)
            or ``"both_ends"`` (``⌈k/2⌉`` largest and ``⌊k/2⌋`` smallest).
        tol: a pair has converged when ``‖A v − λ v‖ ≤ tol · max|λ|`` (floored at 50 ulps of
            the operator's dtype, about 6e-6 for float32); its eigenvalue is then accurate to
            about ``tol² max|λ|² / gap``.
        max_matvecs: the most products to spend (default ``max(300, 20 k)``); stopping short
            of convergence warns (:class:`~jacobite.errors.JacobiteWarning`) and returns
            ``converged=False``.
        basis: the most Lanczos vectors held (default ``max(2k + 20, 40)``, at most ``n``);
            memory is ``8 n (basis + 1)`` bytes. A full basis restarts from the Ritz vectors
            nearest the wanted end. A basis below ``2k`` restarts often (many more products)
            and can, rarely, settle on a pair short of the wanted end, as ARPACK can with a
            small ``ncv``.
        seed: the random start vector: an int gives the same vector on every call, ``None``
            draws from torch's global generator.
        assume_symmetric: take an operator without the ``symmetric`` tag as symmetric.

    An exactly repeated eigenvalue (a diagonal with equal entries, ``I`` plus a low-rank term)
    makes the Krylov space close early; Lanczos then goes on from a fresh random vector
    orthogonal to it and accepts the pairs only once a further closure leaves them unchanged,
    so each copy among the wanted ``k`` is found. Without such a closure one start vector is
    used, as in ARPACK.

    >>> import torch
    >>> from jacobite.curvature import ggn
    >>> from jacobite.analysis import eigenvalues
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(),
    ...                             torch.nn.Linear(8, 3)).double()
    >>> X, y = torch.randn(32, 4, dtype=torch.float64), torch.randint(0, 3, (32,))
    >>> G = ggn(model, torch.nn.CrossEntropyLoss(), (X, y))
    >>> r = eigenvalues(G, k=3, tol=1e-10)
    >>> exact = torch.linalg.eigvalsh(G.to_dense()).flip(0)[:3]
    >>> r.converged, bool(torch.allclose(r.values, exact, rtol=1e-9))
    (True, True)
    """
    k = _validate.positive_int(k, "k")
    _validate.choice(which, "which", _WHICH)
    tol = _validate.relative_tolerance(tol, "tol", example="1e-8")
    max_matvecs = _validate.max_iter(max_matvecs, "max_matvecs")
    if basis is not None:
        basis = _validate.positive_int(basis, "basis")
    seed = _validate.seed(seed)
    assume_symmetric = _validate.boolean(assume_symmetric, "assume_symmetric")
    out = _run(operator, k, which, tol, max_matvecs, basis, seed, assume_symmetric)
    if not out.converged:
        warnings.warn(f"eigenvalues: {out.message}", JacobiteWarning, stacklevel=2)
    return out


@eager_under_compile  # Lanczos reads values into Python: eagerly under torch.compile
def _run(obj: Any, k: int, which: Which, tol: float, max_matvecs: int | None,
         basis: int | None, seed: int | None, assume_symmetric: bool) -> Eigenpairs:
    P = symmetric_products(obj, assume_symmetric)
    n = P.n
    if k > n:
        raise InvalidOptionError(f"k must be at most n = {n} (the operator is {n} × {n}), "
                                 f"got {k}")
    if max_matvecs is None:
        max_matvecs = max(300, 20 * k)
    elif max_matvecs < k:
        raise InvalidOptionError(f"max_matvecs must be at least k = {k} (one product per "
                                 f"Lanczos vector), got {max_matvecs}")
    if basis is None:
        basis = max(2 * k + 20, 40)
    elif basis < min(n, k + 2):
        raise InvalidOptionError(f"basis must be at least k + 2 = {k + 2} (the wanted vectors, "
                                 f"one to extend them and one to restart with), got {basis}")
    r = thick_restart(P, k=k, which=which, tol=tol, max_matvecs=max_matvecs, basis=basis,
                      gen=_validate.generator(seed))
    rel = r.residuals / r.scale if r.scale > 0 else np.zeros_like(r.residuals)
    if r.converged:
        msg = f"converged: {k} pairs in {r.matvecs} products"
    else:
        msg = (f"not converged after {r.matvecs} products (worst relative residual "
               f"{float(rel.max()):.1e} > {max(tol, 50 * torch.finfo(P.dtype).eps):.1e}); "
               f"raise max_matvecs or loosen tol")
    dev = P.device
    return Eigenpairs(
        values=torch.as_tensor(r.values.copy(), dtype=F64, device=dev),
        vectors=r.vectors, residuals=torch.as_tensor(r.residuals.copy(), dtype=F64, device=dev),
        relative_residuals=torch.as_tensor(rel.copy(), dtype=F64, device=dev),
        matvecs=r.matvecs, restarts=r.restarts, converged=r.converged, message=msg)
