"""Many residual functions at once: ``fun`` maps ``(B, n) -> (B, m)`` problem by problem.

:class:`BatchResiduals` evaluates the residuals of ``B`` independent least-squares problems in
one call and their ``B`` Jacobians ``(B, m, n)``. Row ``b`` of ``fun(x)`` may depend on row ``b``
of ``x`` only, so the Jacobians are the diagonal blocks of the whole-batch Jacobian, and one
transform over the ``n`` columns (forward mode: a JVP whose tangent is the unit vector ``e_j`` in
every problem at once) or over the ``m`` rows (reverse mode: a VJP whose cotangent is ``e_i`` in
every problem) gives all ``B`` blocks; the ``(Bm) × (Bn)`` cross-batch Jacobian is never formed.
``mode="auto"`` takes reverse mode where ``n >= m`` or the batch is small (``B·m² <= 2^16``:
its fixed cost is the lowest), else forward mode: up to ``B·m·n = 2^21`` entries as the
derivative of ``u ↦ Jᵀu`` (two reverse passes, the second batched over the ``n`` columns),
beyond as ``torch.func`` JVPs vectorised over the columns. ``chunk_size=1`` replaces the
vectorised passes by a plain loop, for functions ``vmap`` cannot batch.

A ``fun`` that mixes problems (a mean over the batch, a matrix product across it, batch
normalisation) would make every block wrong without an error. :meth:`BatchResiduals.check` runs
one JVP at the start whose tangent moves a random half of the problems: the residuals of the
other half must not move, and those of the moved half must move as their blocks say.

>>> import torch
>>> t = torch.linspace(0, 1, 5, dtype=torch.float64)
>>> P = BatchResiduals(lambda p: p[:, :1] * torch.exp(-p[:, 1:] * t), torch.ones(4, 2))
>>> P.f(P.x0).shape, P.J(P.x0).shape
(torch.Size([4, 5]), torch.Size([4, 5, 2]))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch

from ....dense._graph import nodes
from ....errors import InvalidOptionError, OutputTypeError, ShapeError, UnsupportedOperationError
from ..._ift import CLOSED_OVER, tracked

__all__ = ["COUPLED", "BatchResiduals", "JacobianMode", "Split"]

#: The per-problem ``(args, kwargs)`` of the problems at an int64 index.
Split = Callable[[torch.Tensor], tuple[tuple[Any, ...], dict[str, Any]]]

# Measured on the exponential fit (n = 3, m = 50; 1 CPU thread): reverse mode costs about
# B·m·m multiply-adds against forward mode's B·m·n but has less fixed overhead (0.2 ms against
# 0.8 ms at B = 1); forward mode through a double backward beats torch.func's JVPs until the
# batch leaves the cache (B·m·n around 2^21).
REVERSE_MAX = 2 ** 16  #: reverse mode up to this many entries B·m·m
DUAL_MAX = 2 ** 21  #: forward mode by a double backward up to B·m·n entries

# The autograd engine itself: torch.autograd.grad first checks the cotangents' shapes through
# torch.fx's symbolic shapes, whose first use imports SymPy (about a second on a first call);
# the cotangents here are built with the right shapes, so the check is skipped where torch
# exposes the engine call (torch.autograd.grad otherwise).
_RUN = getattr(torch.autograd.graph, "_engine_run_backward", None)
_VMAP = getattr(torch._vmap_internals, "_vmap", None)


def _custom_function(out: torch.Tensor) -> bool:
    """Whether the graph of ``out`` holds a custom ``torch.autograd.Function``: its backward
    may not be differentiable (``once_differentiable``, NumPy inside), and a double backward
    through it would silently drop its part, so forward mode by a double backward is not used
    there."""
    return any(isinstance(node, torch.autograd.function.BackwardCFunction)
               for node in nodes(out))


def _vjp(out: torch.Tensor, leaf: torch.Tensor, cot: torch.Tensor, *, create: bool = False,
         retain: bool = False, batched: bool = False, unused_ok: bool = False) -> torch.Tensor:
    """The VJP of ``out`` with ``cot`` in ``leaf`` (``batched``: one per row of ``cot``, as
    ``torch.autograd.grad(..., is_grads_batched=True)``). Where the graph of ``out`` does not
    reach ``leaf``: zeros with ``unused_ok``, else a RuntimeError (as ``autograd.grad``)."""
    keep = retain or create
    if _RUN is None or _VMAP is None or type(out) is not torch.Tensor:
        (g,) = torch.autograd.grad(out, leaf, cot, retain_graph=keep, create_graph=create,
                                   allow_unused=unused_ok, is_grads_batched=batched)
    else:
        def one(c: torch.Tensor) -> Any:
            return _RUN((out,), (c,), keep, create, (leaf,), True, accumulate_grad=False)

        (g,) = _VMAP(one, 0, 0, allow_none_pass_through=True)(cot) if batched else one(cot)
    if g is None:
        if not unused_ok:
            raise RuntimeError("the differentiated tensor is not reached by the graph")
        return leaf.new_zeros((cot.shape[0], *leaf.shape) if batched else leaf.shape)
    return g

#: How the per-problem Jacobians are computed.
JacobianMode = Literal["auto", "forward", "reverse"]

COUPLED = ("fun couples the problems of the batch: the residuals of problem {b} change when "
           "only other problems' parameters move (a mean, sum, norm or matrix product over "
           "dimension 0, batch normalisation), so the per-problem Jacobians would be wrong. With "
           "batch=True, row b of fun(x) must depend on row b of x alone: reduce over the last "
           "dimension only, or solve the coupled system as one problem with batch=False")


class BatchResiduals:
    """``fun(x, *args, **kwargs)`` on ``(B, n)`` tensors, its ``(B, m, n)`` Jacobians and the
    number of calls.

    Args:
        fun: residuals of ``B`` problems, ``(B, n) -> (B, m)`` (or ``(B, *shape)``, flattened
            after the first dimension); row ``b`` depends on row ``b`` of ``x`` only.
        x0: the ``(B, n)`` start in the working dtype and device.
        jac: ``"auto"`` (AD) or ``jac(x, *args, **kwargs)`` returning ``(B, m, n)``.
        mode: ``"auto"``, ``"forward"`` or ``"reverse"`` for the AD Jacobian.
        chunk_size: ``None`` (all columns / rows in one vectorised call) or ``1`` (a loop).
        eval_dtype: the dtype ``fun`` is called in (default ``x0``'s); residuals and Jacobians
            come back in ``x0``'s dtype, the solver's.
    """

    def __init__(self, fun: Callable[..., Any], x0: torch.Tensor, jac: Any = "auto",
                 args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None, *,
                 mode: JacobianMode = "auto", chunk_size: int | None = None,
                 eval_dtype: torch.dtype | None = None) -> None:
        if x0.ndim != 2:
            raise ShapeError(f"with batch=True x0 must have shape (B, n): one row of parameters "
                             f"per problem; got {tuple(x0.shape)}")
        if not (callable(jac) or jac in ("auto", "dense")):
            raise InvalidOptionError("with batch=True jac must be 'auto', 'dense' or a callable "
                                     f"returning the (B, m, n) Jacobians; got {jac!r}")
        if mode not in ("auto", "forward", "reverse"):
            raise InvalidOptionError(f"mode must be 'auto', 'forward' or 'reverse'; got {mode!r}")
        self.fun, self.jac = fun, jac if callable(jac) else None
        self.args, self.kwargs = args, dict(kwargs or {})
        self.x0 = x0
        self.B, self.n = x0.shape
        self.dtype, self.device = x0.dtype, x0.device
        self.eval_dtype = eval_dtype or x0.dtype
        self.m: int | None = None
        self.mode: JacobianMode = mode
        self.chunk_size = chunk_size
        self.calls = 0  # evaluations of fun on the whole batch (JVPs and VJPs not counted)
        self.jac_calls = 0
        self._no_dual = False
        self._scanned: bool | None = None  # whether fun's graph holds a custom Function
        #: ``idx -> (args, kwargs)`` of the problems ``idx``, where the per-problem data come
        #: through ``args`` / ``kwargs`` and ``fun`` was checked to split with them; else None
        self.split: Split | None = None

    def rows(self, idx: torch.Tensor) -> BatchResiduals | None:
        """The problems ``idx`` (int64) as residuals of their own, with their rows of the
        per-problem data (``None`` without :attr:`split`); they keep the Jacobian mode chosen
        for the whole batch, so that every row is computed as it is there."""
        if self.split is None:
            return None
        a, kw = self.split(idx)
        part = BatchResiduals(self.fun, self.x0.index_select(0, idx), self.jac or "auto", a, kw,
                              mode=self.mode, chunk_size=self.chunk_size,
                              eval_dtype=self.eval_dtype)
        part.m, part._no_dual, part._scanned = self.m, self._no_dual, self._scanned
        split = self.split
        part.split = lambda j: split(idx.index_select(0, j))
        return part

    # -- residuals -------------------------------------------------------------------------
    def _call(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fun(x.to(self.eval_dtype), *self.args, **self.kwargs)
        if not isinstance(out, torch.Tensor):
            raise OutputTypeError(f"fun must return a tensor of residuals shaped (B, m); got "
                                  f"{type(out).__name__}")
        if out.ndim < 1 or out.shape[0] != self.B:
            raise ShapeError(f"with batch=True fun must return one row of residuals per problem, "
                             f"shape (B, m) = ({self.B}, m); got {tuple(out.shape)}")
        if not out.is_floating_point():
            out = out.to(self.dtype)
        return out.reshape(self.B, -1)

    def f(self, x: torch.Tensor) -> torch.Tensor:
        """Residuals ``(B, m)`` at ``x`` (``(B, n)``), in the working dtype. The first call runs
        with autograd on and refuses a ``fun`` that closes over a tensor autograd or
        ``torch.func`` tracks (the solutions would be silently constant in it)."""
        self.calls += 1
        first = self.m is None and torch.is_grad_enabled()
        with torch.set_grad_enabled(first):
            r = self._call(x)
        if first and tracked(r):
            raise UnsupportedOperationError(CLOSED_OVER)
        if self.m is None:
            if r.shape[1] == 0:
                raise ShapeError("fun returned no residuals; it must return at least one per "
                                 "problem")
            self.m = r.shape[1]
            if self.mode == "auto":
                small = self.B * self.m * self.m <= REVERSE_MAX
                self.mode = "reverse" if self.n >= self.m or small else "forward"
        elif r.shape[1] != self.m:
            raise ShapeError(f"fun returned {r.shape[1]} residuals per problem here but {self.m} "
                             "at x0; the number of residuals must not depend on x")
        return r.detach().to(self.dtype)

    # -- Jacobians -------------------------------------------------------------------------
    def J(self, x: torch.Tensor) -> torch.Tensor:
        """The ``B`` Jacobians ``(B, m, n)`` at ``x`` (``f`` must have been called once)."""
        self.jac_calls += 1
        if self.m is None:
            self.f(x)
        m = self.m
        assert m is not None
        if self.jac is not None:
            J = self.jac(x.to(self.eval_dtype), *self.args, **self.kwargs)
            if not isinstance(J, torch.Tensor):
                J = torch.as_tensor(J)
            if J.shape != (self.B, m, self.n):
                raise ShapeError(f"with batch=True jac must return the Jacobians of all problems, "
                                 f"shape (B, m, n) = ({self.B}, {m}, {self.n}); got "
                                 f"{tuple(J.shape)}")
            return J.detach().to(self.dtype)
        with torch.enable_grad():
            if self.mode == "forward":
                try:
                    return self._forward(x.detach())
                except (RuntimeError, NotImplementedError):  # no forward-mode formula: reverse
                    self.mode = "reverse"
            return self._reverse(x.detach(), m)

    def _units(self, k: int) -> torch.Tensor:
        """``(k, B, k)``: the unit vector ``e_i`` in every problem, for ``i < k``."""
        eye = torch.eye(k, dtype=self.dtype, device=self.device)
        return eye[:, None, :].expand(k, self.B, k)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.m if self.m is not None else 1
        if self.chunk_size != 1 and self.B * m * self.n <= DUAL_MAX and not self._no_dual:
            try:
                return self._forward_dual(x)
            except (RuntimeError, NotImplementedError):  # an operation without a double backward
                self._no_dual = True

        def column(t: torch.Tensor) -> torch.Tensor:
            return torch.func.jvp(self._call, (x,), (t,))[1]

        T = self._units(self.n)
        if self.chunk_size == 1:
            cols = torch.stack([column(T[j]) for j in range(self.n)], -1)
        else:
            cols = torch.func.vmap(column)(T).permute(1, 2, 0)
        return cols.detach().to(self.dtype).contiguous()

    def _forward_dual(self, x: torch.Tensor) -> torch.Tensor:
        """The JVPs ``J e_j`` as the derivative of the linear map ``u -> Jᵀu`` in ``u`` (one
        reverse pass, then one batched reverse pass over it): on CPU the cheapest forward mode
        while the batch stays in cache."""
        xr = x.requires_grad_(True)
        y = self._call(xr)
        if not y.requires_grad:
            return torch.zeros(self.B, y.shape[1], self.n, dtype=self.dtype, device=self.device)
        if self._scanned is None:  # the graph's kinds of operations, looked at once
            self._scanned = _custom_function(y)
        if self._scanned:
            raise RuntimeError("a custom autograd Function: no double backward")
        u = torch.zeros_like(y, requires_grad=True)
        g = _vjp(y, xr, u, create=True)
        if not g.requires_grad:  # Jᵀu does not depend on u: no graph to differentiate
            return self._reverse(x.detach(), y.shape[1])
        T = self._units(self.n).to(g.dtype)
        cols = _vjp(g, u, T, batched=True)
        return cols.permute(1, 2, 0).detach().to(self.dtype).contiguous()

    def _reverse(self, x: torch.Tensor, m: int) -> torch.Tensor:
        xr = x.requires_grad_(True)
        y = self._call(xr)
        if not y.requires_grad:  # residuals that do not depend on x
            return torch.zeros(self.B, m, self.n, dtype=self.dtype, device=self.device)
        U = self._units(m).to(y.dtype)
        if self.chunk_size == 1:
            rows = torch.stack([_vjp(y, xr, U[i], retain=True, unused_ok=True)
                                for i in range(m)], 1)
        else:
            rows = _vjp(y, xr, U, batched=True, unused_ok=True).transpose(0, 1)
        return rows.detach().to(self.dtype).contiguous()

    def _jvp(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor | None:
        """``J t`` for the whole batch: by a double backward (plain autograd, which needs none of
        ``torch.func``'s first-call machinery), else by ``torch.func.jvp``; None where neither
        applies (a custom autograd Function without a forward-mode rule)."""
        with torch.enable_grad():
            try:
                xr = x.requires_grad_(True)
                y = self._call(xr)
                if not y.requires_grad:
                    return torch.zeros_like(y).to(self.dtype)
                if not _custom_function(y):
                    u = torch.zeros_like(y, requires_grad=True)
                    g = _vjp(y, xr, u, create=True)
                    if g.requires_grad:
                        return _vjp(g, u, t.to(g.dtype)).detach().to(self.dtype)
            except (RuntimeError, NotImplementedError):  # no double backward
                pass
            try:
                return torch.func.jvp(self._call, (x.detach(),), (t,))[1].detach().to(self.dtype)
            except (RuntimeError, NotImplementedError):
                return None

    def _vjp_check(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """``Jᵀ w`` for the whole batch by one reverse pass (always available)."""
        with torch.enable_grad():
            xr = x.requires_grad_(True)
            y = self._call(xr)
            if not y.requires_grad:
                return torch.zeros_like(x)
            return _vjp(y, xr, w.to(y.dtype), unused_ok=True).detach().to(self.dtype)

    # -- the check that problems are independent -------------------------------------------
    def check(self, x: torch.Tensor, J: torch.Tensor | None = None, seed: int = 0) -> None:
        """Raise :class:`UnsupportedOperationError` where ``fun`` couples problems at ``x``.

        One JVP of ``fun`` along a random tangent on a random half of the problems: the other
        half's residuals must not move, and with the AD Jacobians ``J`` at ``x`` the moved
        half's must move by ``J_b t_b``. Where ``fun`` has no forward mode, one VJP with a
        random cotangent on half of the problems' residuals must leave the other half's
        parameters without gradient. Nothing to check for one problem."""
        if self.B == 1:  # one problem cannot be coupled to another
            return
        g = torch.Generator(device="cpu").manual_seed(seed)
        t = torch.randn(self.B, self.n, generator=g, dtype=torch.float64)
        moved = torch.rand(self.B, generator=g) < 0.5
        if self.B > 1:
            moved[0], moved[1] = True, False  # both halves non-empty
        t = (t * moved[:, None]).to(self.device, self.dtype)
        moved = moved.to(self.device)
        dy = self._jvp(x.detach(), t)
        if dy is None:  # no forward mode: one VJP along residuals of half of the problems
            w = torch.randn(self.B, J.shape[1] if J is not None else self.m or 1, generator=g,
                            dtype=torch.float64).to(self.device, self.dtype) * moved[:, None]
            dx = self._vjp_check(x.detach(), w)
            bad = torch.nonzero(dx[~moved].abs().amax(1) > 0)
            if bad.numel():
                raise UnsupportedOperationError(
                    COUPLED.format(b=int(torch.nonzero(~moved)[int(bad[0, 0])])))
            return
        still = dy[~moved].abs()
        bad = torch.nonzero(still.amax(1) > 0) if still.numel() else still.new_zeros(0, 1)
        if bad.numel():
            b = int(torch.nonzero(~moved)[int(bad[0, 0])])
            raise UnsupportedOperationError(COUPLED.format(b=b))
        if J is not None and self.jac is None:
            pred = torch.einsum("bmn,bn->bm", J, t)
            err = (dy - pred).abs().amax(1)
            size = J.abs().amax((1, 2)) * t.abs().amax(1) * self.n + dy.abs().amax(1)
            eps = torch.finfo(self.eval_dtype).eps
            off = torch.nonzero(err > 1e3 * eps * size + torch.finfo(self.dtype).tiny)
            if off.numel():
                raise UnsupportedOperationError(COUPLED.format(b=int(off[0, 0])))

