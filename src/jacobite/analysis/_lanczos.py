"""Matrix-free kernels behind :mod:`jacobite.analysis.spectra`.

* :class:`Products` — one view of "something with ``J v`` and ``Jᵀ u``": a
  :class:`~jacobite.operators.JacobianOperator`, a 2-D tensor, or a callable ``f`` at a point
  ``x`` (one cached VJP; ``J v`` as the VJP of that VJP, or ``torch.func.jvp`` where an
  operation has no double backward). Vectors cross it in float64; the products run in the
  operator's dtype. Where the input is *tracked* (a matrix, point or closed-over tensor that
  autograd records or a ``torch.func`` transform wraps), ``gmv`` / ``grmv`` are the same
  products kept in the caller's graph, so that a final value can be recomputed differentiably
  from the (constant) Lanczos vectors. Under ``torch.func.vmap`` it raises a typed error.
* :func:`bidiagonalize` — Golub–Kahan–Lanczos bidiagonalisation with full (twice-applied)
  reorthogonalisation, ``A V_k = U_k B_k``, stopping when the wanted Ritz triplets converge.

>>> import torch
>>> P = Products.build(torch.diag(torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64)), None)
>>> r = bidiagonalize(P, k=1, tol=1e-12, max_iter=10, seed=0)
>>> round(float(r.values[0]), 12), r.converged
(3.0, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from .. import _validate
from .._compile import eager_under_compile
from ..dense._trees import under_vmap
from ..errors import (
    ArgumentTypeError,
    DtypeError,
    InvalidOptionError,
    NonFiniteInputError,
    ShapeError,
    UnsupportedOperationError,
)
from ..operators import JacobianOperator
from ._scale import scaled_products

__all__ = ["Bidiagonal", "Products", "bidiagonalize", "draw"]

Vec = Callable[[torch.Tensor], torch.Tensor]
F64 = torch.float64


@dataclass
class Products:
    """``(m, n)``, ``mv`` and ``rmv`` on flat float64 vectors, and the native dtype."""

    m: int
    n: int
    mv: Vec
    rmv: Vec
    dtype: torch.dtype
    device: torch.device
    square_op: JacobianOperator | None = None  # the operator itself (for structure), if any
    gmv: Vec | None = None  # J v in the caller's graph (None: the input is not tracked)
    grmv: Vec | None = None  # Jᵀ u in the caller's graph

    @property
    def tracked(self) -> bool:
        """Whether the products depend on tensors that autograd or torch.func track."""
        return self.gmv is not None

    @staticmethod
    @eager_under_compile  # reads values and probes tracking: eager under torch.compile
    def build(obj: Any, x: torch.Tensor | None) -> Products:
        """The products of an operator, a matrix, or ``f`` at ``x`` (see the module doc)."""
        for t in (obj, x):
            if isinstance(t, torch.Tensor) and under_vmap(t):
                raise UnsupportedOperationError(_NO_VMAP)
            if isinstance(t, torch.Tensor | JacobianOperator) and t.dtype.is_complex:
                raise DtypeError(_NO_COMPLEX)
        if isinstance(obj, JacobianOperator):
            if x is not None:
                raise InvalidOptionError("x is only for a callable f; an operator is already "
                                         "linear: call spectral_norm(op) without x")
            return _from_operator(obj)
        if isinstance(obj, torch.Tensor) and x is None:
            if obj.ndim != 2:
                raise ShapeError(f"a tensor must be a 2-D matrix (m, n), got shape "
                                 f"{tuple(obj.shape)}; pass a function and x for a Jacobian")
            _finite(obj.detach(), "the matrix")
            A, G = obj.detach(), obj
            graph = _validate.tracked(G)
            return Products(A.shape[0], A.shape[1], lambda v: (A @ v.to(A.dtype)).to(F64),
                            lambda u: (A.mT @ u.to(A.dtype)).to(F64), A.dtype, A.device,
                            gmv=(lambda v: (G @ v.to(G.dtype)).to(F64)) if graph else None,
                            grmv=(lambda u: (G.mT @ u.to(G.dtype)).to(F64)) if graph else None)
        if callable(obj):
            if x is None:
                raise InvalidOptionError("a callable f needs the point x (a tensor) at which "
                                         "to take its Jacobian: spectral_norm(f, x)")
            if not isinstance(x, torch.Tensor):
                raise ArgumentTypeError(f"x must be a tensor (the point at which to take the "
                                        f"Jacobian of f), got {type(x).__name__}")
            return _from_function(obj, x)
        raise ArgumentTypeError(f"f_or_operator must be a JacobianOperator, a 2-D tensor, or a "
                                f"callable f passed with x, got {type(obj).__name__}")

    def mm(self, V: torch.Tensor, graph: bool = False) -> torch.Tensor:
        """``J V`` for ``V`` ``(n, k)`` (vmapped in chunks; column by column if vmap fails);
        ``graph``: kept in the caller's graph when tracked."""
        mv = self.gmv if graph and self.gmv is not None else self.mv
        return _chunked(mv, V, self.m, self._vmap)

    def rmm(self, U: torch.Tensor, graph: bool = False) -> torch.Tensor:
        """``Jᵀ U`` for ``U`` ``(m, k)``."""
        rmv = self.grmv if graph and self.grmv is not None else self.rmv
        return _chunked(rmv, U, self.n, self._vmap)

    _vmap: list[bool] = field(default_factory=lambda: [True])


_NO_VMAP = ("spectra cannot run under torch.func.vmap (Lanczos reads values into Python); for a "
            "batch, form the Jacobians with jacobite.batch_jacobian(f, X) and use torch.linalg "
            "on them (matrix_norm(J, 2), svdvals, matrix_norm(J, 'fro'), slogdet), or loop over "
            "the batch in Python")


_NO_COMPLEX = ("spectra run in real float64 and would drop the imaginary part of a complex J; "
               "use torch.linalg.svdvals / slogdet on the dense J, or the real form "
               "[[J.real, -J.imag], [J.imag, J.real]], whose singular values are J's, each twice")


@eager_under_compile
def draw(size: int, gen: torch.Generator | None, kind: str = "gaussian") -> torch.Tensor:
    """``size`` float64 random numbers (``"gaussian"`` or ``"rademacher"`` ±1) on the CPU, drawn
    outside any enclosing ``torch.func`` transform: a start vector or probe is a constant, and
    ``jacfwd``'s vmap would otherwise refuse the random operation."""
    with torch._C._DisableFuncTorch():
        if kind == "rademacher":
            return torch.randint(0, 2, (size,), generator=gen).to(F64).mul_(2).sub_(1)
        return torch.randn(size, dtype=F64, generator=gen)


def _chunked(fn: Vec, M: torch.Tensor, rows: int, ok: list[bool]) -> torch.Tensor:
    """``fn`` on each column of ``M``, vmapped over chunks of at most ~32 MiB of results."""
    step = max(1, (32 << 20) // (8 * max(rows, M.shape[0], 1)))
    parts = []
    for j in range(0, M.shape[1], step):
        blk = M[:, j: j + step]
        if ok[0]:
            try:
                parts.append(torch.func.vmap(fn, in_dims=1, out_dims=1)(blk))
                continue
            except Exception:  # some closures do not vmap: loop instead
                ok[0] = False
        parts.append(torch.stack([fn(blk[:, i]) for i in range(blk.shape[1])], dim=1))
    return torch.cat(parts, dim=1) if parts else M.new_zeros((rows, 0))


def _finite(t: torch.Tensor, what: str) -> None:
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        raise NonFiniteInputError(f"{what} contains NaN or Inf; spectra are only defined at "
                                  f"finite points: clean the input (torch.nan_to_num) first")


def _from_operator(op: JacobianOperator) -> Products:
    m, n = op.shape
    dt = op.dtype
    def mv(v: torch.Tensor) -> torch.Tensor:
        return op.mv(v.to(dt)).detach().to(F64)

    def rmv(u: torch.Tensor) -> torch.Tensor:
        return op.rmv(u.to(dt)).detach().to(F64)

    def gmv(v: torch.Tensor) -> torch.Tensor:
        return op.mv(v.to(dt)).to(F64)

    def grmv(u: torch.Tensor) -> torch.Tensor:
        return op.rmv(u.to(dt)).to(F64)

    # does the operator hold tracked tensors? one product with a zero vector tells
    probe = op.rmv(torch.zeros(m, dtype=dt, device=op.device)) if torch.is_grad_enabled() \
        else None
    if isinstance(probe, torch.Tensor) and under_vmap(probe):
        raise UnsupportedOperationError(_NO_VMAP)
    graph = _validate.tracked(probe)
    return Products(m, n, mv, rmv, dt, op.device, op, gmv if graph else None,
                    grmv if graph else None)


def _from_function(f: Callable[[torch.Tensor], Any], x: torch.Tensor) -> Products:
    if not (x.is_floating_point() or x.is_complex()):
        raise InvalidOptionError(f"x must be a floating tensor to differentiate at, got dtype "
                                 f"{x.dtype}; convert it with x.float()")
    x0 = x
    x = x.detach()
    _finite(x, "x")
    out, vjp_fn = torch.func.vjp(f, x)[:2]  # torch types vjp as a 2- or 3-tuple (has_aux)
    if not isinstance(out, torch.Tensor):
        raise ShapeError(f"f must return one tensor, got {type(out).__name__}; wrap it to "
                         f"return torch.cat of the flattened outputs")
    if out.is_complex():
        raise DtypeError(_NO_COMPLEX)
    if under_vmap(out):  # f closes over a batched tensor
        raise UnsupportedOperationError(_NO_VMAP)
    _finite(out.detach(), "f(x)")
    oshape, odt = out.shape, out.dtype
    state: dict[str, Any] = {}

    def rmv(u: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return vjp_fn(u.to(odt).reshape(oshape))[0].detach().reshape(-1).to(F64)

    def jvp(t: torch.Tensor) -> torch.Tensor | None:
        try:
            with torch.no_grad():
                return torch.func.jvp(f, (x,), (t,))[1].detach().reshape(-1).to(F64)
        except RuntimeError:  # no forward-mode rule
            return None

    def dvjp(t: torch.Tensor) -> torch.Tensor | None:
        try:
            if "dvjp" not in state:
                zero = torch.zeros(oshape, dtype=odt, device=out.device)
                state["dvjp"] = torch.func.vjp(lambda w: vjp_fn(w)[0], zero)[1]
            with torch.no_grad():
                return state["dvjp"](t)[0].detach().reshape(-1).to(F64)
        except RuntimeError:  # no double backward
            return None

    def mv(v: torch.Tensor) -> torch.Tensor:
        """``J v`` by the double-VJP trick (the VJP of the cached VJP, usually far cheaper than
        ``torch.func.jvp``). The first call checks it against a JVP — a backward marked
        once-differentiable gives a silently wrong double VJP — and keeps the JVP if they
        differ or the double VJP fails."""
        t = v.to(x.dtype).reshape(x.shape)
        if state.get("use") == "dvjp":
            return dvjp(t)  # type: ignore[return-value]
        if state.get("use") == "jvp":
            return jvp(t)  # type: ignore[return-value]
        a, b = jvp(t), dvjp(t)
        if a is None and b is None:
            raise UnsupportedOperationError(
                "f has neither a forward-mode rule nor a double backward, so J v is not "
                "available; pass jacobite.linearize(f, x) or an operator with mv instead")
        if a is None or b is None:
            state["use"] = "jvp" if b is None else "dvjp"
            return a if b is None else b  # type: ignore[return-value]
        tol = math.sqrt(torch.finfo(x.dtype).eps) * float(a.norm())
        state["use"] = "dvjp" if float((a - b).norm()) <= tol else "jvp"
        return a

    gstate: dict[str, Any] = {}

    def grmv(u: torch.Tensor) -> torch.Tensor:
        if "vjp" not in gstate:  # one forward pass at the caller's (undetached) x
            gstate["vjp"] = torch.func.vjp(f, x0)[1]
        return gstate["vjp"](u.to(odt).reshape(oshape))[0].reshape(-1).to(F64)

    def gmv(v: torch.Tensor) -> torch.Tensor:
        return torch.func.jvp(f, (x0,), (v.to(x.dtype).reshape(x.shape),))[1].reshape(-1).to(F64)

    graph = _validate.tracked(x0) or _validate.tracked(out)
    return Products(out.numel(), x.numel(), mv, rmv, torch.promote_types(x.dtype, odt),
                    x.device, None, gmv if graph else None, grmv if graph else None)


@dataclass
class Bidiagonal:
    """Ritz triplets after ``iterations`` Golub–Kahan steps (values decreasing, float64).

    ``B`` is the ``(j, j)`` bidiagonal; ``U``/``V`` its ``(m, j)``/``(n, j)`` bases;
    ``Y``/``X`` the left/right singular vectors of ``B``; ``residuals[i]`` bounds
    ``‖Jᵀ u_i − σ_i v_i‖`` (``J v_i = σ_i u_i`` holds exactly in exact arithmetic).
    """

    values: np.ndarray
    residuals: np.ndarray
    B: np.ndarray
    U: torch.Tensor
    V: torch.Tensor
    Y: np.ndarray
    X: np.ndarray
    iterations: int
    converged: bool

    def right(self, idx: np.ndarray) -> torch.Tensor:
        return (self.V @ torch.as_tensor(self.X[:, idx], device=self.V.device)).T

    def left(self, idx: np.ndarray) -> torch.Tensor:
        return (self.U @ torch.as_tensor(self.Y[:, idx], device=self.U.device)).T


def _orth(w: torch.Tensor, Q: torch.Tensor) -> torch.Tensor:
    """``w`` minus its projection on the orthonormal columns of ``Q`` (applied twice)."""
    if Q.shape[1] == 0:
        return w
    for _ in range(2):
        w = w - Q @ (Q.T @ w)
    return w


def _fresh(size: int, Q: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor | None:
    """A random unit vector orthogonal to ``Q`` (``None`` once ``Q`` spans everything)."""
    if Q.shape[1] >= size:
        return None
    w = _orth(draw(size, gen).to(Q.device), Q)
    return w / w.norm()


def bidiagonalize(P: Products, *, k: int, tol: float, max_iter: int, seed: int | None = 0,
                  which: Literal["top", "both"] = "top", start: torch.Tensor | None = None,
                  stop: bool = True) -> Bidiagonal:
    """Run Golub–Kahan–Lanczos on ``P`` until the ``k`` wanted Ritz triplets converge.

    ``which``: ``"top"`` (largest values) or ``"both"`` (largest and smallest). A triplet is
    converged when its residual is at most ``max(tol, 50 eps) · σ_1`` (``eps`` of the native
    dtype); the value itself is then accurate to about ``residual² / gap``. ``start`` is the
    first right vector (random otherwise); ``stop=False`` runs all ``max_iter`` steps. ``seed``
    ``None`` draws from torch's global generator, an int from a private one seeded with it.
    The steps run on ``J · 2^-e`` (``e`` from the first product, see
    :mod:`jacobite.analysis._scale`) so that a ``J`` of size ``1e±300`` neither overflows nor
    underflows; values, residuals and ``B`` are returned for ``J`` itself.
    """
    m, n, dev = P.m, P.n, P.device
    steps = min(max_iter, m, n)
    gen = _validate.generator(seed)
    floor = max(float(tol), 50 * torch.finfo(P.dtype).eps if P.dtype.is_floating_point else 0)
    U = torch.zeros(m, steps, dtype=F64, device=dev)
    V = torch.zeros(n, steps + 1, dtype=F64, device=dev)
    alpha: list[float] = []
    beta: list[float] = []
    v = (draw(n, gen).to(dev) if start is None
         else start.to(F64).reshape(-1).clone())
    V[:, 0] = v / v.norm()
    mv, rmv, e, p0 = scaled_products(P.mv, P.rmv, V[:, 0], P.dtype)  # J·2^-e stays in range
    scale, res = 0.0, None
    for j in range(steps):
        p = p0 if j == 0 else mv(V[:, j])
        if j:
            p = p - beta[-1] * U[:, j - 1]
        p = _orth(p, U[:, :j])
        a = float(p.norm())
        scale = max(scale, a)
        if a <= 1e3 * np.finfo(np.float64).eps * scale:
            q = _fresh(m, U[:, :j], gen)
            a, p = 0.0, (q if q is not None else torch.zeros_like(p))
        else:
            p = p / a
        U[:, j], alpha = p, [*alpha, a]
        r = rmv(U[:, j]) - a * V[:, j]
        r = _orth(r, V[:, : j + 1])
        b = float(r.norm())
        scale = max(scale, b)
        if b <= 1e3 * np.finfo(np.float64).eps * scale:
            q = _fresh(n, V[:, : j + 1], gen)
            b, r = 0.0, (q if q is not None else torch.zeros_like(r))
        else:
            r = r / b
        V[:, j + 1], beta = r, [*beta, b]
        if not stop or (j >= 50 and j % 5 and j + 1 < steps):
            continue  # Ritz values are O(j³): every step early on, then every 5th
        res = _ritz(alpha, beta)
        if j + 1 >= k and _done(res, k, floor, which):
            return _pack(res, U[:, : j + 1], V[:, : j + 1], j + 1, True, e, min(m, n))
    if res is None or len(res[2]) != len(alpha):
        res = _ritz(alpha, beta)
    exact = steps == min(m, n)
    if exact and m < n and beta[-1] > 0:  # U spans R^m: one more column, alpha = 0, u = 0
        U = torch.cat([U, torch.zeros_like(U[:, :1])], dim=1)
        res = _ritz([*alpha, 0.0], [*beta, 0.0])
        steps += 1
    return _pack(res, U[:, :steps], V[:, :steps], steps, exact or _done(res, k, floor, which),
                 e, min(m, n))


def _ritz(alpha: list[float], beta: list[float]) -> tuple[np.ndarray, ...]:
    j = len(alpha)
    B = np.diag(np.asarray(alpha)) + np.diag(np.asarray(beta[: j - 1]), 1)
    Yb, S, Xh = np.linalg.svd(B)
    return B, Yb, S, Xh.T, np.abs(beta[-1] * Yb[-1, :])


def _done(res: tuple[np.ndarray, ...], k: int, floor: float, which: Literal["top", "both"],
          ) -> bool:
    _, _, S, _, r = res
    lim = floor * max(float(S[0]), np.finfo(np.float64).tiny)
    if not bool(np.all(r[:k] <= lim)):
        return False
    return which == "top" or bool(r[-1] <= lim)


def _pack(res: tuple[np.ndarray, ...], U: torch.Tensor, V: torch.Tensor, its: int,
          ok: bool, e: int, keep: int | None = None) -> Bidiagonal:
    B, Y, S, X, r = res
    B, S, r = np.ldexp(B, e), np.ldexp(S, e), np.ldexp(r, e)  # from J·2^-e back to J
    if keep is not None and len(S) > keep:  # drop the spurious trailing zero
        Y, S, X, r = Y[:, :keep], S[:keep], X[:, :keep], r[:keep]
    return Bidiagonal(values=S, residuals=r, B=B, U=U, V=V, Y=Y, X=X, iterations=its,
                      converged=ok)
