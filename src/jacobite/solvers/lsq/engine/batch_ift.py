"""Derivatives of a batch of least-squares solutions by the implicit function theorem.

Each solution ``x_b*(θ)`` satisfies ``G_b(x_b, θ) = ∇ₓ ½‖r_b(x_b, θ)‖² = 0``. The problems are
independent, so ``∂G/∂x`` is block diagonal: one ``n × n`` Hessian ``H_b`` per problem (the full
Hessian of ``½‖r_b‖²``, not its Gauss–Newton part). Reverse mode solves ``H_bᵀ λ_b = x̄_b`` for
every problem at once and pulls ``−λ`` back through ``G`` in ``θ`` (one VJP for the batch);
forward mode pushes ``dθ`` through ``G`` (one JVP) and solves ``H_b dx_b = −(∂G/∂θ dθ)_b``. The
Hessians come from one forward-over-reverse pass vectorised over the ``n`` columns, never the
``(Bn) × (Bn)`` matrix. When the backward itself is differentiated (``create_graph=True``,
``torch.func.hessian``) the Hessians are rebuilt inside the graph at the rule's own output, so
second derivatives are exact.

>>> import torch
>>> from jacobite.solvers.lsq import least_squares
>>> th = torch.tensor([[1.0], [2.0]], dtype=torch.float64, requires_grad=True)
>>> res = least_squares(lambda x, t: torch.cat([x - t, 2 * x - 3 * t], 1), torch.zeros(2, 1),
...                     batch=True, args=(th,))
>>> torch.autograd.grad(res.x.sum(), th)[0].flatten().tolist()  # x* = 7θ/5
[1.4, 1.4]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch.utils._pytree import TreeSpec

from ....errors import ConvergenceError, SingularOperatorError, UnsupportedOperationError
from ..._ift import replaced, tracked

__all__ = ["differentiable"]


class _Box:
    """What the rule needs besides tensors: the cost gradient ``G``, the solve and its result."""

    def __init__(self, fun: Callable[..., Any], leaves: list[Any], spec: TreeSpec,
                 pos: list[int], run: Callable[[list[torch.Tensor]], Any]) -> None:
        self.fun, self.leaves, self.spec, self.pos, self.run = fun, leaves, spec, pos, run
        self.result: Any = None
        self.grad_on = torch.is_grad_enabled()

    def G(self, x: torch.Tensor, th: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """``(B, n)``: the gradient of each problem's ``½‖r_b‖²`` in its own ``x_b``."""
        a, kw = replaced(self.leaves, self.spec, self.pos, th)

        def total(u: torch.Tensor) -> torch.Tensor:
            return 0.5 * self.fun(u, *a, **kw).square().sum()

        return torch.func.grad(total)(x)

    def hessians(self, x: torch.Tensor, th: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """``(B, n, n)``: ``H_b = ∂G_b/∂x_b`` for every problem (forward over reverse)."""
        B, n = x.shape
        T = torch.eye(n, dtype=x.dtype, device=x.device)[:, None, :].expand(n, B, n)

        def column(t: torch.Tensor) -> torch.Tensor:
            return torch.func.jvp(lambda u: self.G(u, th), (x,), (t,))[1]

        return torch.func.vmap(column)(T).permute(1, 2, 0)

    def failed(self) -> Exception | None:
        res = self.result
        if not bool(res.success.all()):
            b = int(torch.nonzero(~res.success)[0, 0])
            return ConvergenceError(
                f"least_squares(batch=True) did not converge for {int((~res.success).sum())} "
                f"problems (first: problem {b}, {res.message[b]}): their x*(θ) has no "
                "derivative there; solve those problems again from better starts")
        if bool((res.active_mask != 0).any()):
            return UnsupportedOperationError(
                "a bound is active at a solution of the batch, where x*(θ) is not "
                "differentiable by the implicit function theorem; drop the bounds, or fix the "
                "active variables")
        return None


def _solve(H: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """``H_b⁻¹ rhs_b`` per problem; a singular ``H_b`` raises SingularOperatorError."""
    if not (tracked(H) or tracked(rhs)):
        s = torch.linalg.svdvals(H.detach())
        n = H.shape[-1]
        bad = ~(s[:, -1] > 10 * n * torch.finfo(H.dtype).eps * s[:, 0])
        if bool(bad.any()):
            b = int(torch.nonzero(bad)[0, 0])
            raise SingularOperatorError(
                f"the Hessian of problem {b}'s cost is singular at its solution: x*(θ) is not "
                "a differentiable function of θ there (the data do not determine every "
                "parameter); fix or remove the undetermined parameters")
    return torch.linalg.solve(H, rhs.to(H.dtype)[..., None])[..., 0]


class _BatchImplicit(torch.autograd.Function):
    """``x*(θ)`` of every problem: forward by the solver, derivatives by the theorem."""

    @staticmethod
    def forward(box: _Box, *th: torch.Tensor) -> torch.Tensor:
        with torch.set_grad_enabled(box.grad_on):
            box.result = box.run([t.detach() for t in th])
        return box.result.x.detach().clone()

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        box, *th = inputs
        ctx.box = box
        ctx.save_for_backward(output, *th)
        ctx.save_for_forward(output, *th)

    @staticmethod
    def backward(ctx: Any, gx: torch.Tensor) -> tuple[Any, ...]:
        x, *th = ctx.saved_tensors
        box: _Box = ctx.box
        exc = box.failed()
        if exc is not None:
            raise exc
        higher = torch.is_grad_enabled() or any(tracked(t) for t in (gx, x, *th))
        if not higher:
            x, th = x.detach(), [t.detach() for t in th]
        H = box.hessians(x, tuple(th))
        lam = _solve(H.mT, gx)
        pull = torch.func.vjp(lambda *tv: box.G(x, tv), *th)[1]
        grads = pull(-lam.to(x.dtype))
        return (None, *(g if ctx.needs_input_grad[i + 1] else None
                        for i, g in enumerate(grads)))

    @staticmethod
    def jvp(ctx: Any, _box_t: Any, *tangents: torch.Tensor | None) -> torch.Tensor:
        x, *th = ctx.saved_tensors
        box: _Box = ctx.box
        exc = box.failed()
        if exc is not None:
            raise exc
        tangents = tuple(torch.zeros_like(t) if d is None else d
                         for d, t in zip(tangents, th, strict=True))
        u = torch.func.jvp(lambda *tv: box.G(x, tv), tuple(th), tangents)[1]
        return -_solve(box.hessians(x, tuple(th)), u)

    @staticmethod
    def vmap(info: Any, in_dims: tuple[Any, ...], box: _Box, *th: torch.Tensor) -> Any:
        raise UnsupportedOperationError(
            "least_squares(batch=True) cannot run under torch.func.vmap; it is batched already: "
            "stack the problems into x0 of shape (B, n) and their data into args")


def differentiable(solve_batch: Callable[..., Any], fun: Callable[..., Any], x0: Any,
                   leaves: list[Any], spec: TreeSpec, pos: list[int],
                   opts: dict[str, Any]) -> Any:
    """The batch's result with ``x`` differentiable in the tracked tensors among ``leaves``
    (at positions ``pos`` of the flattened ``(args, kwargs)``)."""
    if opts.get("loss", "linear") != "linear":
        raise UnsupportedOperationError(
            f"least_squares(batch=True) with loss={opts['loss']!r} is not differentiable in "
            "args; use loss='linear', or jacobite.solve_implicit on the stationarity condition "
            "of each problem")

    def run(th: list[torch.Tensor]) -> Any:
        a, kw = replaced(leaves, spec, pos, th)
        return solve_batch(fun, x0, args=tuple(a), kwargs=kw, **opts)

    box = _Box(fun, leaves, spec, pos, run)
    xs = _BatchImplicit.apply(box, *[leaves[i] for i in pos])
    return dataclasses.replace(box.result, x=xs)
