"""Derivatives of solutions: ``x*(θ)`` defined by ``F(x*, θ) = 0``.

By the implicit function theorem, where ``∂F/∂x`` is nonsingular,

    dx*/dθ = −(∂F/∂x)⁻¹ ∂F/∂θ        (both partial Jacobians at (x*, θ)).

:func:`implicit_jacobian` forms it from exact Jacobians (:func:`jacobite.value_and_jacobian`
with ``argnums``); it is itself differentiable, ``x*`` included (the total derivative).
:func:`solve_implicit` solves ``F(x, θ) = 0`` with :func:`jacobite.root` and returns ``x*`` as a
tensor differentiable with respect to ``θ`` by ``torch.autograd`` and every ``torch.func``
transform: reverse mode solves the adjoint system ``(∂F/∂x)ᵀ λ = ḡ`` once and returns
``−(∂F/∂θ)ᵀ λ`` by one vector-Jacobian product, forward mode solves
``∂F/∂x · dx = −∂F/∂θ · dθ`` — nothing is unrolled through the solver's iterations, and
``∂F/∂θ`` is never formed. ``θ`` may be a tensor or a pytree of tensors.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any, Literal

import torch
from torch.utils._pytree import tree_flatten, tree_unflatten

from .. import _validate
from .._modules import keeps_state
from ..dense import value_and_jacobian as _value_and_jacobian
from ..dense._trees import under_vmap
from ..errors import (
    ArgumentTypeError,
    ConvergenceError,
    InvalidOptionError,
    JacobiteWarning,
    ShapeError,
)
from ._checks import first_call
from ._ift import attach
from ._ift import solve as _solve
from .root import RootResult, root

__all__ = ["implicit_jacobian", "solve_implicit"]

#: What to do when x* does not solve F(x, θ) = 0 to ``residual_tol``.
Check = Literal["warn", "raise", "off"]
_CHECKS: tuple[Check, ...] = ("warn", "raise", "off")


def _residual_check(Fval: torch.Tensor, check: Check, residual_tol: float) -> None:
    if check == "off" or under_vmap(Fval):  # under vmap no value can be read: no check
        return
    worst = float(Fval.detach().abs().max()) if Fval.numel() else 0.0
    if worst <= residual_tol:
        return
    msg = (f"x_star does not solve F(x, θ) = 0: max|F| = {worst:.3g} > residual_tol = "
           f"{residual_tol:g}; dx*/dθ is only meaningful at a solution — solve first (e.g. with "
           "jacobite.root or solve_implicit)")
    if check == "raise":
        raise ConvergenceError(msg)
    warnings.warn(msg, JacobiteWarning, stacklevel=3)


@keeps_state
def implicit_jacobian(F: Callable[[torch.Tensor, Any], torch.Tensor], x_star: torch.Tensor,
                      theta: Any, *, check: Check = "warn", residual_tol: float | None = None,
                      ) -> Any:
    """``dx*/dθ = −(∂F/∂x)⁻¹ ∂F/∂θ`` at a solution ``x*`` of ``F(x, θ) = 0``.

    Args:
        F: ``F(x, θ)``, a tensor with as many entries as ``x``.
        x_star: the solution (any shape).
        theta: a tensor or a pytree of tensors.
        check: what to do when ``max|F(x*, θ)| > residual_tol``: ``"warn"`` (a
            :class:`~jacobite.errors.JacobiteWarning`), ``"raise"``
            (:class:`~jacobite.errors.ConvergenceError`) or ``"off"``.
        residual_tol: default ``sqrt(eps)`` of the dtype (about 1.5e-8 for float64).

    Returns:
        ``x_star.shape + theta.shape`` for a tensor ``θ``; for a pytree, the same pytree with
        one such block per leaf. It is differentiable (autograd and ``torch.func``) in ``θ``
        and in ``x_star`` alike: pass an ``x_star`` that depends on ``θ`` (e.g. from
        :func:`solve_implicit`) and its derivative is the total one, ``d²x*/dθ²``. Under
        ``torch.func.vmap`` it equals a loop; the residual check is skipped there (no value
        can be read under vmap).

    Raises:
        SingularOperatorError: ``∂F/∂x`` is singular at ``x*``.
        NotSquareError / ShapeError: ``F`` has a different number of entries than ``x``.

    >>> import torch
    >>> F = lambda x, th: x ** 2 - th                 # x* = sqrt(θ), dx*/dθ = 1 / (2 sqrt(θ))
    >>> th = torch.tensor([4.0, 9.0], dtype=torch.float64)
    >>> implicit_jacobian(F, th.sqrt(), th).diagonal().tolist()
    [0.25, 0.16666666666666666]
    """
    _validate.callable_(F, "F")
    _validate.choice(check, "check", _CHECKS)
    if residual_tol is not None:
        residual_tol = _validate.tolerance(residual_tol, "residual_tol")
    if not isinstance(x_star, torch.Tensor):
        raise ArgumentTypeError(f"x_star must be a tensor (the solution x* of F(x*, θ) = 0), "
                                f"got {type(x_star).__name__}; pass e.g. solve_implicit(...)")
    x = x_star
    if x.numel() == 0:
        raise ShapeError("x_star is empty; pass the solution x* with at least one entry")
    leaves, spec = tree_flatten(theta)
    value, J = first_call(lambda xx: _value_and_jacobian(F, xx, theta, argnums=(0, 1),
                                                         flat=True), x, "F")
    n = x.numel()
    if value.numel() != n:
        from ..errors import NotSquareError

        raise NotSquareError(f"F(x, θ) has {value.numel()} entries for {n} unknowns; the "
                             "implicit function theorem needs as many equations as unknowns")
    tol = math.sqrt(torch.finfo(value.dtype).eps) if residual_tol is None else residual_tol
    _residual_check(value, check, tol)
    dx = -_solve(J[:, :n], J[:, n:])  # (n, Σ leaf sizes)
    blocks, q = [], 0
    for leaf in leaves:
        size = leaf.numel()
        blocks.append(dx[:, q:q + size].reshape((*x.shape, *leaf.shape)))
        q += size
    return tree_unflatten(blocks, spec)


@keeps_state
def solve_implicit(F: Callable[[torch.Tensor, Any], torch.Tensor], x0: Any, theta: Any,
                   **root_kwargs: Any) -> torch.Tensor:
    """Solve ``F(x, θ) = 0`` for ``x`` and return ``x*`` differentiable with respect to ``θ``.

    The forward pass is :func:`jacobite.root` from ``x0`` (``root_kwargs``: ``method``, ``jac``,
    ``xtol``, ``ftol``, ``max_nfev``, ``dtype``, ...) with ``θ`` held fixed; backward
    (``loss.backward()``, ``torch.autograd.grad``) uses the implicit function theorem with the
    Jacobian ``∂F/∂x`` the solver already has at ``x*`` (dense or sparse) and one
    vector-Jacobian product in ``θ``. Inside ``torch.func`` transforms it is just as
    differentiable: ``grad`` / ``jacrev`` (the same adjoint solve), ``jacfwd`` / ``jvp``
    (``dx = −(∂F/∂x)⁻¹ ∂F/∂θ dθ``), and higher derivatives (``create_graph=True``, nested
    transforms), which re-form the dense ``∂F/∂x`` at ``(x*, θ)`` inside the graph; forward
    over forward mode (``jacfwd(jacfwd(...))``) raises
    :class:`~jacobite.errors.UnsupportedOperationError` naming the reverse-mode compositions. Under
    ``torch.func.vmap`` over ``θ`` the root is found once per batch element (a loop).

    Raises:
        ConvergenceError: the root solve failed (its message says why).
        SingularOperatorError: in backward, ``∂F/∂x`` is singular at ``x*``.

    >>> import torch
    >>> th = torch.tensor([4.0, 9.0], dtype=torch.float64, requires_grad=True)
    >>> x = solve_implicit(lambda x, t: x ** 2 - t, torch.ones(2), th)
    >>> x.tolist()
    [2.0, 3.0]
    >>> torch.autograd.grad(x.sum(), th)[0].tolist()   # 1 / (2 sqrt(θ))
    [0.25, 0.16666666666666666]
    """
    _validate.callable_(F, "F")
    leaves, spec = tree_flatten(theta)
    if not all(isinstance(leaf, torch.Tensor) for leaf in leaves):
        raise ShapeError("theta must be a tensor or a pytree (tuple, list, dict) of tensors")
    if "args" in root_kwargs:
        raise InvalidOptionError("solve_implicit passes θ to F itself; put extra data in θ or "
                                 "close over it instead of args=")

    def run(th: Any) -> tuple[torch.Tensor, Any, RootResult]:
        res = root(lambda x: F(x, th), x0, **root_kwargs)
        if not res.success:
            raise ConvergenceError(f"solve_implicit: root did not converge ({res.message}); "
                                   "x*(θ) and its derivative are undefined there")
        return res.x, res.jac, res

    return attach(F, run, leaves, spec)[0]
