"""Exact or iterative: the choice behind ``condition_number`` and ``logabsdet``, made by cost.

A dense factorisation (``torch.linalg.svdvals`` / an LU) is exact and, for the sizes where it
fits in memory, also the cheaper method:

* **Memory.** The dense ``J`` in float64 plus the factorisation's working copy, ``16 m n``
  bytes, must fit the memory budget (the call's ``memory_budget``, else
  :func:`jacobite.config.get_memory_budget`). Past it, only the iterative method is possible.
* **A matrix already held** (a 2-D tensor or a :class:`~jacobite.operators.DenseOperator`) costs
  nothing to form. Its factorisation costs ``O(m n min(m, n))`` flops, the order of the
  iterative method's own worst case (``min(m, n)`` Lanczos steps with reorthogonalisation to
  reach ``σ_min``; ``nprobe · steps`` Golub–Kahan steps for SLQ) at a far smaller constant, and
  it gives the exact value with its sign. So a held matrix that fits goes exact.
* **A callable f or a matrix-free operator** costs ``min(m, n)`` products (JVPs or VJPs, batched)
  to form ``J``. It goes exact when that is no more products than the iterative method would
  spend: ``2 · min(m, n, 1000)`` for the condition number (one ``J v`` and one ``Jᵀ u`` per
  Lanczos step, up to the default step limit that reaching ``σ_min`` may take),
  ``2 · nprobe · steps`` for SLQ (which always runs all its steps).

Each choice is logged at DEBUG level on the ``jacobite.analysis`` logger with its reason.

>>> import torch
>>> P = Products.build(torch.eye(300, dtype=torch.float64), None)
>>> choose_exact(P, torch.eye(300), what="logabsdet", iter_products=1280, budget=2**30)
True
>>> choose_exact(P, None, what="logabsdet", iter_products=1280, budget=2**20)
False
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from ..config import format_bytes
from ..errors import JacobianTooLarge
from ..operators import (
    Composed,
    DenseOperator,
    FunctionOperator,
    JacobianOperator,
    ScaledOperator,
    SumOperator,
    Transposed,
)
from ._lanczos import F64, Products

__all__ = ["choose_exact", "dense", "ensure_formable", "structured"]

log = logging.getLogger("jacobite.analysis")


def _held(obj: Any) -> torch.Tensor | None:
    """The matrix itself when the caller passed one (a 2-D tensor or a DenseOperator)."""
    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, DenseOperator):
        return obj.matrix
    return None


def _need(P: Products) -> int:
    return 16 * P.m * P.n  # J in float64 and the factorisation's working copy


def choose_exact(P: Products, obj: Any, *, what: str, iter_products: int, budget: int) -> bool:
    """Whether ``auto`` takes the exact dense path (the rule of the module doc), logged."""
    need, held = _need(P), _held(obj) is not None
    form = min(P.m, P.n)
    if need > budget:
        exact, why = False, (f"the dense J and its factorisation ({format_bytes(need)}) exceed "
                             f"the memory budget ({format_bytes(budget)})")
    elif held:
        exact, why = True, "J is held as a matrix and fits the memory budget"
    else:
        exact = form <= iter_products
        why = (f"forming J takes {form} products, {'at most' if exact else 'more than'} the "
               f"{iter_products} of the iterative method")
    log.debug("%s: %s (%s)", what, "exact" if exact else "iterative", why)
    return exact


def ensure_formable(P: Products, obj: Any, budget: int, what: str) -> None:
    """An explicit exact request must not form a ``J`` that alone exceeds the budget."""
    need = 8 * P.m * P.n
    if _held(obj) is None and need > budget:
        raise JacobianTooLarge(
            f"{what} with the exact method forms the dense {P.m}x{P.n} float64 Jacobian "
            f"({format_bytes(need)}), more than the memory budget of {format_bytes(budget)}; "
            f"use the iterative method, or pass a larger memory_budget "
            f"(e.g. memory_budget='{format_bytes(2 * need)}')")


def dense(P: Products, obj: Any) -> torch.Tensor:
    """``J`` as a float64 ``(m, n)`` tensor: the held matrix, or formed from ``min(m, n)``
    products; in the caller's graph when the input is tracked."""
    M = _held(obj)
    if M is not None:
        return M.to(F64) if P.tracked else M.detach().to(F64)
    if P.m < P.n:
        return P.rmm(torch.eye(P.m, dtype=F64, device=P.device), P.tracked).T
    return P.mm(torch.eye(P.n, dtype=F64, device=P.device), P.tracked)


def structured(op: JacobianOperator) -> bool:
    """Whether ``op.slogdet()`` is cheap: structure, or a matrix already held."""
    if op.is_triangular() or isinstance(op, DenseOperator):
        return True
    if isinstance(op, FunctionOperator | SumOperator):
        return False
    if isinstance(op, Composed):
        return op.A.is_square() and structured(op.A) and structured(op.B)
    if isinstance(op, Transposed):
        return structured(op.base)
    if isinstance(op, ScaledOperator):
        return structured(op.A)
    return type(op)._slogdet is not JacobianOperator._slogdet
