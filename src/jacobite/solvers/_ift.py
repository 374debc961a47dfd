"""The implicit function theorem as an autograd rule: ``x*(θ)`` with ``G(x*, θ) = 0``.

:func:`attach` returns a solution computed by any solver as a tensor that autograd and every
``torch.func`` transform differentiate through ``G``:

* reverse mode (``backward``, ``torch.func.grad`` / ``jacrev``): one adjoint solve
  ``(∂G/∂x)ᵀ λ = ḡ`` and one vector-Jacobian product ``−(∂G/∂θ)ᵀ λ``;
* forward mode (``torch.func.jvp`` / ``jacfwd``): ``dx = −(∂G/∂x)⁻¹ (∂G/∂θ dθ)``;
* higher orders: when the backward itself is differentiated (``create_graph=True``, nested
  ``torch.func``), ``∂G/∂x`` is recomputed at ``(x*, θ)`` inside the graph, and ``x*`` there is
  the rule's own output, so the second derivative is the exact one — except forward over
  forward mode, which torch cannot nest through a custom rule: a typed error names the
  reverse-mode compositions instead of a silently zero derivative;
* ``torch.func.vmap``: the solve runs once per batch element (a loop), where allowed.

:func:`solve` is the linear solve behind it (dense tensor or SciPy sparse ``∂G/∂x``), which
raises :class:`~jacobite.errors.SingularOperatorError` where the theorem does not apply.

>>> import torch
>>> th = torch.tensor([4.0, 9.0], dtype=torch.float64, requires_grad=True)
>>> x, _ = attach(lambda x, t: x ** 2 - t[0], lambda t: (t[0].sqrt(), None, None), [th], None)
>>> torch.autograd.grad(x.sum(), th)[0].tolist()
[0.25, 0.16666666666666666]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils._pytree import TreeSpec, tree_unflatten

from .. import _validate
from .._compile import eager_under_compile
from ..dense._trees import under_vmap
from ..errors import SingularOperatorError, UnsupportedOperationError

__all__ = ["CLOSED_OVER", "NO_VMAP", "attach", "inexact", "replaced", "solve", "tracked"]

CLOSED_OVER = ("fun depends on a tensor that autograd or a torch.func transform tracks but that "
               "is not one of its parameters (args= of root / least_squares, θ of "
               "solve_implicit), so the solution would be silently constant in it; pass that "
               "tensor there (x is then differentiable in it by the implicit function theorem), "
               "or call under torch.no_grad() when no derivative is wanted")
NO_VMAP = ("{name} cannot run under torch.func.vmap (its iterations read values into Python): "
           "loop over the batch in Python instead, e.g. torch.stack([{name}(fun, x0, "
           "args=(t,)).x for t in batch]){alt}")

_SVD_CHECK_MAX_N = 512  # larger systems rely on LU's pivots
_SINGULAR = ("∂F/∂x is singular at x*: the solution is not a differentiable function of θ there "
             "(a turning point or a non-isolated root); the implicit function theorem needs "
             "∂F/∂x invertible")


# a value-level question: eager under torch.compile
tracked = eager_under_compile(_validate.tracked)


def inexact(leaves: Sequence[Any]) -> list[int]:
    """The positions of the floating or complex tensors among ``leaves``: those a derivative
    can be taken in (integer tensors and other values ride along as constants)."""
    return [i for i, a in enumerate(leaves)
            if isinstance(a, torch.Tensor) and (a.is_floating_point() or a.is_complex())]


def replaced(leaves: Sequence[Any], spec: TreeSpec, pos: Sequence[int],
             th: Sequence[torch.Tensor]) -> Any:
    """The pytree ``(leaves, spec)`` with the leaves at ``pos`` replaced by ``th``."""
    full = list(leaves)
    for i, t in zip(pos, th, strict=True):
        full[i] = t
    return tree_unflatten(full, spec)


def solve(J: Any, B: torch.Tensor, *, transpose: bool = False) -> torch.Tensor:
    """``J⁻¹ B`` (or ``J⁻ᵀ B``) for a dense tensor or SciPy sparse ``J``; a singular ``J``
    raises :class:`SingularOperatorError`. Differentiable (and vmap-safe) for a dense ``J``."""
    if isinstance(J, torch.Tensor):
        A = J.mT if transpose else J
        n = A.shape[-1]
        B = B.to(A.dtype)
        if under_vmap(A) or under_vmap(B):  # no values can be read: solve, NaN flows through
            return torch.linalg.solve(A, B)
        if n <= _SVD_CHECK_MAX_N:
            s = torch.linalg.svdvals(A.detach())
            if not bool(s[-1] > 10 * n * torch.finfo(A.dtype).eps * s[0]):
                raise SingularOperatorError(f"{_SINGULAR} (σ_min/σ_max = "
                                            f"{float(s[-1] / s[0]):.2g})")
        X, info = torch.linalg.solve_ex(A, B)
        if int(info) != 0 or not bool(torch.isfinite(X.detach()).all()):
            raise SingularOperatorError(_SINGULAR)
        return X
    import numpy as np
    import scipy.sparse.linalg as spla

    if tracked(B):
        raise UnsupportedOperationError(
            "a sparse ∂F/∂x cannot be differentiated twice or under torch.func transforms; "
            "use a dense Jacobian (jac='dense') or jacobite.implicit_jacobian")
    As = (J.T if transpose else J).tocsc()
    try:
        lu = spla.splu(As)
    except RuntimeError as exc:
        raise SingularOperatorError(_SINGULAR) from exc
    X = lu.solve(B.detach().cpu().double().numpy())
    if not np.all(np.isfinite(X)):
        raise SingularOperatorError(_SINGULAR)
    return torch.as_tensor(X, dtype=B.dtype, device=B.device)


class _Box:
    """What the rule needs besides tensors: ``G``, the solver and the last solve's result."""

    def __init__(self, G: Callable[[torch.Tensor, Any], torch.Tensor],
                 run: Callable[[Any], tuple[torch.Tensor, Any, Any]], spec: TreeSpec | None,
                 loop_ok: bool, failed: Callable[[Any], Exception | None], name: str) -> None:
        self.G, self.run, self.spec, self.loop_ok, self.failed = G, run, spec, loop_ok, failed
        self.name = name
        self.jac: Any = None
        self.grad_on = torch.is_grad_enabled()
        self.result: Any = None

    def theta(self, leaves: Sequence[torch.Tensor]) -> Any:
        return list(leaves) if self.spec is None else tree_unflatten(list(leaves), self.spec)

    def g_flat(self, x: torch.Tensor, leaves: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.G(x, self.theta(leaves)).reshape(-1)


def _jac_x(box: _Box, x: torch.Tensor, leaves: Sequence[torch.Tensor]) -> torch.Tensor:
    """``∂G/∂x`` at ``(x, θ)`` as an ``(n, n)`` tensor, differentiable in both."""
    J = torch.func.jacrev(lambda xx: box.g_flat(xx, leaves))(x)
    return J.reshape(x.numel(), x.numel())


class _Implicit(torch.autograd.Function):
    """``x*(θ)``: forward by the box's solver, derivatives by the implicit function theorem."""

    @staticmethod
    def forward(box: _Box, *leaves: torch.Tensor) -> torch.Tensor:
        with torch.set_grad_enabled(box.grad_on):  # so the solver sees what fun closes over
            x, box.jac, box.result = box.run(box.theta([leaf.detach() for leaf in leaves]))
        return x.detach().clone()

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        box, *leaves = inputs
        ctx.box, ctx.jac, ctx.result = box, box.jac, box.result
        ctx.save_for_backward(output, *leaves)
        ctx.save_for_forward(output, *leaves)

    @staticmethod
    def backward(ctx: Any, gx: torch.Tensor) -> tuple[Any, ...]:
        x, *leaves = ctx.saved_tensors
        box: _Box = ctx.box
        _ok_ctx(ctx)
        higher = torch.is_grad_enabled() or any(tracked(t) for t in (gx, x, *leaves))
        if not higher:
            x, leaves = x.detach(), [leaf.detach() for leaf in leaves]
        J = _jac_x(box, x, leaves) if higher or ctx.jac is None else ctx.jac
        lam = solve(J, gx.reshape(-1).to(x.dtype), transpose=True)
        # torch types vjp as a 2- or 3-tuple (has_aux)
        out, vjp_fn = torch.func.vjp(lambda *lv: box.g_flat(x, lv), *leaves)[:2]
        grads = vjp_fn(-lam.to(out.dtype))
        return (None, *(g.to(leaf.dtype) if ctx.needs_input_grad[i + 1] else None
                        for i, (g, leaf) in enumerate(zip(grads, leaves, strict=True))))

    @staticmethod
    def jvp(ctx: Any, _box_t: Any, *tangents: torch.Tensor | None) -> torch.Tensor:
        x, *leaves = ctx.saved_tensors
        box: _Box = ctx.box
        _ok_ctx(ctx)
        _refuse_forward_over_forward()
        tangents = tuple(torch.zeros_like(leaf) if t is None else t
                         for t, leaf in zip(tangents, leaves, strict=True))
        u = torch.func.jvp(lambda *lv: box.g_flat(x, lv), tuple(leaves), tangents)[1]
        higher = any(tracked(t) for t in (x, *leaves))  # an outer transform differentiates dx
        J = ctx.jac if isinstance(ctx.jac, torch.Tensor) and not higher else \
            _jac_x(box, x, leaves)
        return -solve(J, u.to(x.dtype)).reshape(x.shape)

    @staticmethod
    def vmap(info: Any, in_dims: tuple[Any, ...], box: _Box,
             *leaves: torch.Tensor) -> tuple[torch.Tensor, int]:
        if not box.loop_ok:
            raise UnsupportedOperationError(NO_VMAP.format(name=box.name, alt=""))
        outs = []
        for i in range(info.batch_size):
            lv = [leaf if d is None else leaf.select(d, i)
                  for leaf, d in zip(leaves, in_dims[1:], strict=True)]
            outs.append(_Implicit.apply(box, *lv))
        return torch.stack(outs), 0


def _refuse_forward_over_forward() -> None:
    """torch runs a custom jvp rule blind to an enclosing forward-mode level, which would then
    see a silently zero derivative: refuse that nesting instead."""
    if _validate.transform_levels("jvp") > 1:
        raise UnsupportedOperationError(
            "forward mode over forward mode (jacfwd of jacfwd, jvp of jvp) of a solution is "
            "not supported: torch would silently drop the outer derivative; use reverse mode "
            "for one of the two (jacfwd(jacrev(f)), jacrev(jacfwd(f)) or torch.func.hessian)")


def _ok_ctx(ctx: Any) -> None:
    exc = ctx.box.failed(ctx.result)
    if exc is not None:
        raise exc


@eager_under_compile  # the solver reads values into Python: eager under torch.compile
def attach(G: Callable[[torch.Tensor, Any], torch.Tensor],
           run: Callable[[Any], tuple[torch.Tensor, Any, Any]], leaves: Sequence[torch.Tensor],
           spec: TreeSpec | None, *, loop_ok: bool = True,
           failed: Callable[[Any], Exception | None] = lambda _: None,
           name: str = "root") -> tuple[torch.Tensor, Any]:
    """``(x*, result)`` from ``run(θ)`` (θ detached), ``x*`` differentiable in ``leaves``
    through ``G(x*, θ) = 0``.

    ``run(θ)`` returns ``(x*, ∂G/∂x or None, result)``; ``θ`` is
    ``tree_unflatten(leaves, spec)`` (the list of leaves when ``spec`` is None).
    ``failed(result)`` is the error that a derivative of this solve raises (None when it has
    one: a failed or constrained solve has none). ``loop_ok=False`` makes
    ``vmap`` raise a typed error naming a loop over calls of ``name``.
    """
    box = _Box(G, run, spec, loop_ok, failed, name)
    return _Implicit.apply(box, *leaves), box.result
