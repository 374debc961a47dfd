"""Argument checks shared by the sparse entry points, each raising a typed error naming the fix.

``f`` must be callable; a pattern a 2-D matrix of booleans or numbers; ``x`` a real floating
``torch.Tensor`` (as in the dense path) that no ``torch.func`` transform is tracing (torch's
sparse CSR tensors, which carry the result, do not work inside ``vmap``/``grad``/``jacrev``);
``f``'s outputs floating tensors.

>>> import torch
>>> check_x(torch.zeros(2), "detect").dtype
torch.float32
>>> try:
...     check_x(torch.arange(3), "detect")
... except TypeError as e:
...     print(type(e).__name__)
DtypeError
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from .. import _validate
from ..errors import (
    ArgumentTypeError,
    DtypeError,
    InvalidOptionError,
    NonFiniteInputError,
    OutputTypeError,
    ShapeError,
    UnsupportedOperationError,
)

__all__ = ["as_matrix", "check_options", "check_outputs", "check_scalar",
           "check_untraced", "check_x", "traced"]

_is_wrapped: Callable[[torch.Tensor], bool] = getattr(
    torch._C._functorch, "is_functorch_wrapped_tensor", lambda t: False)


def traced(t: Any) -> bool:
    """True when ``t`` is being traced by a ``torch.func`` transform (vmap, grad, jacrev...)."""
    return isinstance(t, torch.Tensor) and bool(_is_wrapped(t))


def check_untraced(t: Any, where: str) -> None:
    """Refuse tensors traced by a ``torch.func`` transform, naming what works instead."""
    if traced(t):
        raise UnsupportedOperationError(
            f"{where} cannot run inside torch.func transforms (vmap, grad, jacrev, ...): its "
            "result is a torch sparse CSR tensor, which they do not support. Differentiate a "
            "sparse Jacobian with torch.autograd instead (x.requires_grad_(); the result is "
            "differentiable), loop over a batch (torch.stack([plan.jacobian(x).to_dense() for "
            "x in xs])), or use the dense jacobite.jacobian(f, x), which composes with torch.func"
        )


def check_x(x: Any, where: str) -> torch.Tensor:
    """``x`` must be a real floating tensor, not traced by a ``torch.func`` transform."""
    if not isinstance(x, torch.Tensor):
        raise ArgumentTypeError(
            f"{where} needs x to be a torch.Tensor, got {type(x).__name__}; wrap it with "
            "torch.as_tensor(x, dtype=torch.float64)")
    if x.is_complex():
        raise DtypeError(f"{where} needs a real x, got a complex one ({x.dtype}); jacobite's "
                         "Jacobians are real, as in the dense path — split it into real and "
                         "imaginary parts with torch.view_as_real")
    if not x.is_floating_point():
        raise DtypeError(f"{where} needs a floating-point x, got dtype {x.dtype}, which cannot "
                         "be differentiated; convert it with x.double() (or x.float())")
    check_untraced(x, where)
    return x


def check_options(f: Any, x: Any, where: str, order: Any, orders: Sequence[str],
                  vectorize: Any) -> None:
    """The arguments ``prepare`` and ``prepare_hessian`` share, checked before any work."""
    _validate.callable_(f)
    check_x(x, where)
    _validate.choice(order, "order", orders)
    if isinstance(vectorize, str):
        if vectorize != "auto":
            raise InvalidOptionError(f"vectorize must be True, False or 'auto' (time both), "
                                     f"got {vectorize!r}")
    else:
        _validate.boolean(vectorize, "vectorize")


def check_outputs(leaves: Sequence[Any], out: Any, where: str) -> None:
    """``f`` must return a tensor or a pytree of floating (or complex) tensors."""
    if not leaves or not all(isinstance(t, torch.Tensor) for t in leaves):
        raise OutputTypeError(
            f"{where} needs f to return a tensor (or a pytree of tensors), got "
            f"{type(out).__name__}; convert Python numbers with torch.as_tensor")
    for t in leaves:
        if not (t.is_floating_point() or t.is_complex()):
            raise DtypeError(
                f"{where}: f returns a tensor of dtype {t.dtype}, which has no derivative; "
                "return a floating-point tensor (integer outputs come from rounding, argmax or "
                "comparisons)")


def check_scalar(y: Any, where: str) -> torch.Tensor:
    """A Hessian's ``f`` must return a floating tensor with one element."""
    check_outputs([y] if isinstance(y, torch.Tensor) else [], y, where)
    if y.numel() != 1:
        raise ShapeError(f"{where}: a Hessian needs f to return a scalar tensor (one element), "
                         f"got shape {tuple(y.shape)}; for a vector-valued f use "
                         "jacobite.sparse.detect(f, x) for its Jacobian")
    return y


_PATTERN_KINDS = ("a SciPy sparse matrix, a 2-D NumPy array or tensor of 0/1 (bool) entries, "
                  "or a Pattern")


def as_matrix(pattern: Any) -> Any:
    """A sparsity pattern as SciPy sparse or a 2-D NumPy array of booleans or numbers (checked:
    2-D, no NaN); accepts anything with ``to_scipy()`` and torch tensors."""
    if hasattr(pattern, "to_scipy") and not sp.issparse(pattern):
        pattern = pattern.to_scipy()
    if isinstance(pattern, torch.Tensor):
        pattern = pattern.detach().cpu().to_dense().numpy()
    if sp.issparse(pattern):
        if len(pattern.shape) == 2 and pattern.format not in ("csr", "csc", "coo"):
            pattern = sp.csr_array(pattern)  # LIL, DOK, ...: stored values as an array
        data = pattern.data
    elif pattern is None or isinstance(pattern, (str, bytes, dict, set)) or callable(pattern):
        raise ArgumentTypeError(f"a sparsity pattern must be {_PATTERN_KINDS}; got "
                                f"{type(pattern).__name__}")
    else:
        try:
            data = pattern = np.asarray(pattern)
        except (TypeError, ValueError) as exc:  # ragged nested lists, odd objects
            raise ArgumentTypeError(f"a sparsity pattern must be {_PATTERN_KINDS}; "
                                    f"{type(pattern).__name__} does not convert ({exc})") from exc
    if pattern.dtype.kind not in "biufc":
        raise ArgumentTypeError(f"a sparsity pattern holds booleans or numbers, got dtype "
                                f"{pattern.dtype}; mark nonzeros with True (or 1)")
    if len(pattern.shape) != 2:
        raise ShapeError(f"a sparsity pattern must be 2-D (m, n), got shape {pattern.shape}; "
                         "reshape it to (outputs, inputs)")
    if pattern.dtype.kind in "fc" and np.isnan(data).any():
        raise NonFiniteInputError("a sparsity pattern contains NaN; mark structural nonzeros "
                                  "with True (or 1) and the rest with False (or 0)")
    return pattern
