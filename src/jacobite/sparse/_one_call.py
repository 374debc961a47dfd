"""``jacobite.jacobian(..., sparse=True)`` and ``jacobite.hessian(..., sparse=True)``: one call.

Detects, colors and evaluates afresh on every call (see :func:`one_call`); the dense path hands
over to it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .. import _validate
from ..errors import ArgnumsError, InvalidOptionError
from ..operators import SparseOperator
from ._inputs import check_x
from ._select import MODES
from .evaluate import prepare, prepare_hessian

__all__ = ["one_call"]


def one_call(f: Callable[..., Any], args: tuple[Any, ...], argnums: Any, mode: Any,
             has_aux: Any, check_finite: Any, hessian: bool = False, *,
             chunk_size: Any = "auto", flat: Any = False,
             memory_budget: Any = None) -> SparseOperator:
    """``jacobite.jacobian(..., sparse=True)`` / ``jacobite.hessian(..., sparse=True)``.

    Validates every argument the way the dense path does (``f`` callable, ``argnums`` by
    :func:`jacobite._validate.argnums`, then one tensor argument), detects and colors afresh on
    every call (a cached plan could silently go stale when ``f``'s constants change; keep a
    :func:`prepare` plan to evaluate repeatedly). ``chunk_size`` and ``memory_budget`` are
    checked but change nothing (the compressed products, one per color, are few), and the
    result is always the flat ``(m, n)`` matrix, whatever ``flat``. The result is
    differentiable by ``torch.autograd`` when ``x`` requires grad.

    >>> import torch
    >>> one_call(torch.sin, (torch.zeros(3),), 0, "auto", False, True).to_scipy().nnz
    3
    """
    what = "hessian" if hessian else "jacobian"
    _validate.callable_(f)
    pos = _validate.argnums(argnums, len(args))
    if len(pos) != 1 or isinstance(argnums, (tuple, list)):
        raise ArgnumsError(f"{what}(..., sparse=True) differentiates one tensor argument; pass "
                           f"an int argnums such as argnums=0, got {argnums!r} (for several, "
                           "concatenate them into one tensor or leave sparse=False)")
    x = args[pos[0]]
    if not isinstance(x, torch.Tensor):
        raise ArgnumsError(f"the argument at argnums={argnums} is a {type(x).__name__}, not a "
                           "tensor; wrap it with torch.tensor(..., dtype=torch.float64) or pick "
                           "another argnums")
    check_x(x, f"{what}(..., sparse=True)")
    _validate.choice(mode, "mode", ("auto",) if hessian else MODES)
    if _validate.boolean(has_aux, "has_aux"):
        raise InvalidOptionError(f"{what}(..., sparse=True) does not support has_aux; call "
                                 "jacobite.sparse.prepare(f, x) and keep the aux yourself")
    check_finite = _validate.boolean(check_finite, "check_finite")
    _validate.chunk_size(chunk_size)
    _validate.boolean(flat, "flat")
    _validate.memory_budget(memory_budget)
    i = pos[0]

    def g(u: torch.Tensor) -> Any:
        return f(*args[:i], u, *args[i + 1:])

    if hessian:  # one evaluation: no timing of strategies
        return prepare_hessian(g, x, vectorize=False).jacobian(x, check_finite=check_finite)
    return prepare(g, x, mode=mode, vectorize=False).jacobian(x, check_finite=check_finite)
