"""Linear algebra of one root-finding step: the Newton step, Powell's dogleg, line searches.

A Jacobian is held as a :class:`DenseSystem` (a torch matrix, LU solves) or a
:class:`SparseSystem` (a SciPy sparse matrix, SuperLU solves with an LSMR fallback; never
densified). Both offer the same few operations, so :mod:`jacobite.solvers.root` runs one
iteration for either. Vectors are flat torch tensors throughout.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np
import torch

from ..errors import ShapeError

__all__ = ["DenseSystem", "SparseSystem", "System", "as_system", "backtrack", "dogleg"]

_SVD_CHECK_MAX_N = 256  # condition check by singular values only for small dense systems


class System(Protocol):
    """What the iteration needs of a Jacobian ``J``."""

    def mv(self, p: torch.Tensor) -> torch.Tensor: ...  # J p

    def rmv(self, r: torch.Tensor) -> torch.Tensor: ...  # Jᵀ r

    def colnorms(self) -> torch.Tensor: ...

    def newton(self, F: torch.Tensor, D: torch.Tensor) -> tuple[torch.Tensor, bool]: ...

    def export(self) -> Any: ...

    def finite(self) -> bool: ...

    def zero(self) -> bool: ...  # J = 0


class DenseSystem:
    """A dense ``(n, n)`` Jacobian as a torch tensor."""

    def __init__(self, J: torch.Tensor) -> None:
        self.J = J

    def mv(self, p: torch.Tensor) -> torch.Tensor:
        return self.J @ p

    def rmv(self, r: torch.Tensor) -> torch.Tensor:
        return self.J.T @ r

    def colnorms(self) -> torch.Tensor:
        return torch.linalg.vector_norm(self.J, dim=0)

    def newton(self, F: torch.Tensor, D: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """``(p, regularised)``: ``J p = −F`` by LU; where ``J D⁻¹`` is singular to working
        precision, its SVD with the singular values raised to ``10 n eps σ_max`` instead (as
        MINPACK raises a zero diagonal of R): a long step along the near-null directions, which
        the trust region or line search cuts, still a descent direction for ``½‖F‖²``. (The
        minimum-norm least-squares step would drop those directions and stall in valleys such
        as Brown's almost-linear function.)"""
        n = self.J.shape[0]
        p, info = torch.linalg.solve_ex(self.J, -F)
        ok = int(info) == 0 and bool(torch.isfinite(p).all())
        Js = self.J / D
        if ok and n <= _SVD_CHECK_MAX_N:
            s = torch.linalg.svdvals(Js)
            ok = bool(s[-1] > 10 * n * torch.finfo(F.dtype).eps * s[0])
        if ok:
            return p, False
        rtol = 10 * n * torch.finfo(F.dtype).eps
        U, s, Vh = torch.linalg.svd(Js)
        if not float(s[0]) > 0:  # J = 0: no direction is known
            return torch.zeros_like(F), True
        s = torch.clamp(s, min=rtol * float(s[0]))
        return -(Vh.T @ ((U.T @ F) / s)) / D, True

    def export(self) -> torch.Tensor:
        return self.J

    def finite(self) -> bool:
        return bool(torch.isfinite(self.J).all())

    def zero(self) -> bool:
        return not bool(self.J.any())


class SparseSystem:
    """A sparse ``(n, n)`` Jacobian as a SciPy sparse matrix (CSR kept, CSC for SuperLU)."""

    def __init__(self, J: Any, like: torch.Tensor) -> None:
        import scipy.sparse as sp

        self.J = sp.csr_array(J, dtype=np.float64)
        self.like = like

    def _t(self, a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a), dtype=self.like.dtype, device=self.like.device)

    @staticmethod
    def _np(v: torch.Tensor) -> np.ndarray:
        return v.detach().cpu().to(torch.float64).numpy()

    def mv(self, p: torch.Tensor) -> torch.Tensor:
        return self._t(self.J @ self._np(p))

    def rmv(self, r: torch.Tensor) -> torch.Tensor:
        return self._t(self.J.T @ self._np(r))

    def colnorms(self) -> torch.Tensor:
        return self._t(np.sqrt(np.asarray(self.J.multiply(self.J).sum(axis=0)).ravel()))

    def newton(self, F: torch.Tensor, D: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """``J p = −F`` by SuperLU; a singular ``J`` gets LSMR's least-squares step of the
        column-scaled system."""
        import scipy.sparse as sp
        import scipy.sparse.linalg as spla

        rhs = -self._np(F)
        try:
            with np.errstate(all="ignore"):
                p = spla.splu(self.J.tocsc()).solve(rhs)
            if np.all(np.isfinite(p)):
                return self._t(p), False
        except RuntimeError:  # "Factor is exactly singular"
            pass
        d = self._np(D)
        Js = self.J @ sp.diags_array(1.0 / d)
        y = spla.lsmr(Js, rhs, atol=1e-14, btol=1e-14, maxiter=10 * max(self.J.shape))[0]
        return self._t(y / d), True

    def export(self) -> Any:
        return self.J

    def finite(self) -> bool:
        return bool(np.all(np.isfinite(self.J.data)))

    def zero(self) -> bool:
        return not bool(np.any(self.J.data))


def as_system(J: Any, v: torch.Tensor) -> System:
    """Wrap what a Jacobian source returned: a SciPy sparse matrix or torch sparse tensor
    (kept sparse), else anything ``torch.as_tensor`` takes with ``n²`` entries (dense)."""
    n = v.numel()
    if isinstance(J, torch.Tensor) and J.layout != torch.strided:
        import scipy.sparse as sp

        Jc = J.to_sparse_coo().coalesce().cpu()
        i = Jc.indices().numpy()
        J = sp.csr_array((Jc.values().double().numpy(), (i[0], i[1])), shape=Jc.shape)
    if hasattr(J, "tocsr"):  # a SciPy sparse matrix
        if tuple(J.shape) != (n, n):
            raise ShapeError(f"jac returned a {J.shape} matrix; expected ({n}, {n})")
        return SparseSystem(J, v)
    J = torch.as_tensor(J, dtype=v.dtype, device=v.device)
    if J.numel() != n * n:
        raise ShapeError(f"jac returned shape {tuple(J.shape)}; expected ({n}, {n}) entries")
    return DenseSystem(J.reshape(n, n))


def dogleg(sys: System, F: torch.Tensor, D: torch.Tensor, pN: torch.Tensor,
           delta: float) -> tuple[torch.Tensor, bool]:
    """Powell's dogleg step in the scaled variables ``D x`` (MINPACK ``dogleg``).

    Returns ``(p, full)``: the Gauss–Newton step ``pN`` itself when ``‖D pN‖ <= delta``
    (``full``), else the point where the path Cauchy point → ``pN`` leaves the trust region, or
    the scaled steepest-descent step of length ``delta`` when even the Cauchy point lies outside.
    """
    sN = D * pN
    if float(torch.linalg.vector_norm(sN)) <= delta:
        return pN, True
    g = sys.rmv(F) / D  # gradient of ½‖F‖² in the scaled variables
    gnorm = float(torch.linalg.vector_norm(g))
    if gnorm == 0.0:  # a stationary point: only the (capped) Newton direction is left
        return pN * (delta / float(torch.linalg.vector_norm(sN))), False
    u = g / gnorm
    Ju = float(torch.linalg.vector_norm(sys.mv(u / D)))
    sgnorm = gnorm / (Ju * Ju) if Ju > 0 else math.inf  # length of the Cauchy step
    if sgnorm >= delta:
        return -(delta * u) / D, False
    c = -sgnorm * u
    d = sN - c
    a = float(d @ d)
    b = 2.0 * float(c @ d)
    cc = float(c @ c) - delta * delta  # < 0: the Cauchy point is inside
    disc = math.sqrt(max(b * b - 4.0 * a * cc, 0.0))
    tau = (-b + disc) / (2.0 * a) if b <= 0 else -2.0 * cc / (b + disc)
    return (c + tau * d) / D, False


def backtrack(t: float, phi_t: float, t_prev: float, phi_prev: float, phi0: float,
              slope: float) -> float:
    """Next step length of a safeguarded backtracking line search (Dennis & Schnabel A6.3.1):
    quadratic interpolation on the first backtrack, cubic afterwards, kept in ``[0.1 t, 0.5 t]``;
    a non-finite ``φ(t)`` divides ``t`` by 10."""
    if not math.isfinite(phi_t):
        return 0.1 * t
    if t_prev <= 0 or not math.isfinite(phi_prev):
        den = 2.0 * (phi_t - phi0 - slope * t)
        new = -slope * t * t / den if den > 0 else 0.5 * t
    else:
        r1 = (phi_t - phi0 - t * slope) / (t * t)
        r2 = (phi_prev - phi0 - t_prev * slope) / (t_prev * t_prev)
        a = (r1 - r2) / (t - t_prev)
        b = (-t_prev * r1 + t * r2) / (t - t_prev)
        if a == 0.0:
            new = -slope / (2.0 * b) if b != 0 else 0.5 * t
        else:
            disc = b * b - 3.0 * a * slope
            if disc < 0:
                new = 0.5 * t
            elif b <= 0:
                new = (-b + math.sqrt(disc)) / (3.0 * a)
            else:
                new = -slope / (b + math.sqrt(disc))
    if not math.isfinite(new):
        new = 0.5 * t
    return min(max(new, 0.1 * t), 0.5 * t)
