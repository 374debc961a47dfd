"""Numerical kernels behind ``slogdet``/``solve``/``lstsq`` with typed errors.

These helpers work on tensors (and SciPy objects); the operator classes pick one according
to their structure and tags.

>>> import torch
>>> slogdet_from_diagonal(torch.tensor([2.0, -3.0]))
(tensor(-1.), tensor(1.7918))
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from .. import _validate
from ..config import get_memory_budget
from ..errors import ConvergenceError, NonFiniteInputError, SingularOperatorError
from . import _csr
from ._lapack import lapack, lapack_dtype, matrix_rank

if TYPE_CHECKING:  # pragma: no cover
    import scipy.sparse.linalg as spla

__all__ = [
    "check_finite_matrix",
    "divide_by_diagonal",
    "iterative_lstsq",
    "iterative_solve",
    "lapack",
    "lapack_dtype",
    "matrix_rank",
    "numerically_singular",
    "probe_diagonal",
    "slogdet_dense",
    "slogdet_from_diagonal",
    "solve_dense",
    "solve_triangular_dense",
    "splu_slogdet",
    "splu_solve",
    "to_linear_operator",
]

_SINGULAR_FIX = (
    "use op.lstsq(b) for a least-squares / minimum-norm solution, or regularise the operator "
    "(e.g. op + ScaledIdentity(1e-6, n))"
)


def eps_of(dtype: torch.dtype) -> float:
    """Machine epsilon of ``dtype`` (of its real part for a complex dtype)."""
    return torch.finfo(torch.empty((), dtype=dtype).real.dtype).eps


def check_finite_matrix(a: torch.Tensor, what: str) -> None:
    """Raise :class:`NonFiniteInputError` when the materialised matrix holds NaN or Inf.

    >>> check_finite_matrix(torch.eye(2), "slogdet")
    """
    if not _validate.all_finite(a.detach()):
        raise NonFiniteInputError(
            f"{what}: the operator's matrix contains NaN or Inf (from its entries or from the "
            f"products of its closures), so it has no determinant or solution; clean the inputs "
            f"it was built from (e.g. torch.nan_to_num) first"
        )


def numerically_singular(a: torch.Tensor, pivots: torch.Tensor) -> torch.Tensor:
    """Per matrix of ``a`` (``(..., n, n)``): whether it is numerically singular.

    ``pivots`` is the diagonal of ``a``'s LU factor. The rule is that of
    ``torch.linalg.matrix_rank``: singular when ``σ_min ≤ n · eps · σ_max``; an exact zero pivot
    always counts as singular. The pivots screen: only matrices whose smallest pivot is below
    ``sqrt(eps)`` times the largest pay for the singular values that decide.

    >>> pivots = lambda a: torch.linalg.lu_factor_ex(a)[0].diagonal()
    >>> a = torch.tensor([[1.0, 2.0], [2.0, 4.0 + 1e-9]], dtype=torch.float64)
    >>> bool(numerically_singular(a, pivots(a)))
    False
    >>> s = torch.softmax(torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64), 0)
    >>> a = torch.diag(s) - torch.outer(s, s)
    >>> bool(numerically_singular(a, pivots(a))), torch.linalg.slogdet(a).sign.item() != 0
    (True, True)
    """
    n = a.shape[-1]
    mag = pivots.detach().abs()
    out = torch.zeros(a.shape[:-2], dtype=torch.bool, device=a.device)
    if n == 0:
        return out
    eps = eps_of(a.dtype)
    small, big = mag.amin(-1), mag.amax(-1)
    out |= small == 0
    suspect = (small <= eps ** 0.5 * big) & ~out
    if bool(suspect.any()):
        s = torch.linalg.svdvals(lapack(a.detach()[suspect]))
        out[suspect] = s[..., -1] <= n * eps * s[..., 0]
    return out


def _lu(a: torch.Tensor, what: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(LU, pivots, singular)`` of ``(..., n, n)`` matrices, after a finiteness check."""
    check_finite_matrix(a, what)
    LU, piv, _ = torch.linalg.lu_factor_ex(lapack(a))  # half precision: in float32
    return LU, piv, numerically_singular(a, LU.diagonal(dim1=-2, dim2=-1))


def slogdet_dense(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sign, log|det|)`` of ``(..., n, n)`` matrices by LU, ``(0, -inf)`` where singular.

    Unlike ``torch.linalg.slogdet``, a numerically singular matrix (see
    :func:`numerically_singular`) gives sign ``0`` rather than the sign and size of a rounding
    error. Differentiable in ``a`` (through the LU factor) where it is not singular. Half
    precision is factorised in float32; the results come back in ``a``'s dtype.

    >>> slogdet_dense(torch.tensor([[2.0, 1.0], [4.0, 2.0]]))
    (tensor(0.), tensor(-inf))
    >>> slogdet_dense(torch.tensor([[0.0, 2.0], [1.0, 0.0]]))
    (tensor(-1.), tensor(0.6931))
    """
    n, dt = a.shape[-1], a.dtype
    if n == 0:
        check_finite_matrix(a, "slogdet")
        sign0, lad0 = torch.linalg.slogdet(lapack(a))
        return sign0.to(dt), lad0.to(torch.empty((), dtype=dt).real.dtype)
    LU, piv, singular = _lu(a, "slogdet")  # singular by the rounding of a's own dtype
    u = LU.diagonal(dim1=-2, dim2=-1)
    swaps = (piv != torch.arange(1, n + 1, device=piv.device, dtype=piv.dtype)).sum(-1)
    parity = (1 - 2 * (swaps % 2)).to(LU.dtype)
    mag = u.abs()
    if a.is_complex():
        sign = (u / torch.where(mag == 0, 1, mag)).prod(-1) * parity
    else:
        sign = torch.sign(u).prod(-1) * parity
    lad = mag.log().sum(-1)
    real = torch.empty((), dtype=dt).real.dtype
    return (torch.where(singular, torch.zeros_like(sign), sign).to(dt),
            torch.where(singular, torch.full_like(lad, -torch.inf), lad).to(real))


def slogdet_from_diagonal(d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sign, log|det|)`` of a diagonal or triangular matrix with diagonal ``d``.

    >>> slogdet_from_diagonal(torch.tensor([1.0, 0.0]))
    (tensor(0.), tensor(-inf))
    """
    check_finite_matrix(d, "slogdet")
    if d.is_complex():
        mag = d.abs()
        sign = torch.where(mag == 0, torch.zeros_like(d), d / torch.where(mag == 0, 1, mag)).prod()
        return sign, mag.log().sum()
    return torch.sign(d).prod(), d.abs().log().sum()


def _raise_if_zero(d: torch.Tensor, what: str) -> None:
    check_finite_matrix(d, "solve")
    if d.numel() and bool((d == 0).any()):
        idx = int(torch.nonzero(d == 0)[0, 0])
        raise SingularOperatorError(
            f"cannot solve: the {what} has a zero at position {idx}, so the operator is "
            f"singular; {_SINGULAR_FIX}"
        )


def divide_by_diagonal(d: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Solve ``diag(d) x = b`` for ``b`` of shape ``(n, k)``.

    >>> divide_by_diagonal(torch.tensor([2.0, 4.0]), torch.ones(2, 1)).flatten()
    tensor([0.5000, 0.2500])
    """
    _raise_if_zero(d, "diagonal")
    return b / d[:, None]


def solve_triangular_dense(a: torch.Tensor, b: torch.Tensor, *, upper: bool) -> torch.Tensor:
    """Triangular solve with a check for zero pivots (torch would silently return inf)."""
    _raise_if_zero(a.diagonal(), "diagonal of the triangular matrix")
    out = torch.promote_types(a.dtype, b.dtype)
    return torch.linalg.solve_triangular(lapack(a), lapack(b), upper=upper).to(out)


def solve_dense(a: torch.Tensor, b: torch.Tensor, what: str = "matrix") -> torch.Tensor:
    """Solve ``a x = b`` by LU (``a`` of shape ``(..., n, n)``, ``b`` ``(..., n, k)``).

    A numerically singular ``a`` (see :func:`numerically_singular`) raises
    :class:`SingularOperatorError` instead of returning rounding noise blown up by ``1/eps``;
    NaN or Inf in ``a`` raise :class:`NonFiniteInputError`.

    >>> solve_dense(torch.tensor([[2.0, 0.0], [0.0, 4.0]]), torch.ones(2, 1)).flatten()
    tensor([0.5000, 0.2500])
    """
    LU, piv, singular = _lu(a, "solve")
    if bool(singular.any()):
        where = ""
        if singular.ndim:
            where = f" (block {int(torch.nonzero(singular.reshape(-1))[0, 0])})"
        raise SingularOperatorError(
            f"cannot solve: the {what}{where} is singular (its smallest singular value is at "
            f"most n·eps times its largest, the torch.linalg.matrix_rank rule); {_SINGULAR_FIX}"
        )
    out = torch.promote_types(a.dtype, b.dtype)
    return torch.linalg.lu_solve(LU, piv, b.to(LU.dtype)).to(out)


def _tol_kw() -> str:
    import scipy.sparse.linalg as spla

    return "rtol" if "rtol" in inspect.signature(spla.gmres).parameters else "tol"


#: SciPy's Krylov solvers that :func:`iterative_solve` runs.
IterativeMethod = Literal["gmres", "cg"]


def default_rtol(dtype: torch.dtype) -> float:
    """1e-10 in double, 1e-5 in single and ``10 eps`` in half precision (the products' rounding).

    >>> default_rtol(torch.float64), default_rtol(torch.float16)
    (1e-10, 0.009765625)
    """
    if dtype in (torch.float64, torch.complex128):
        return 1e-10
    return 1e-5 if dtype in (torch.float32, torch.complex64) else 10 * eps_of(dtype)


def iterative_solve(
    op: Any, b: torch.Tensor, *, method: IterativeMethod = "gmres", rtol: float | None = None,
    atol: float = 0.0, max_iter: int | None = None,
) -> torch.Tensor:
    """Solve ``op x = b`` column by column with SciPy's GMRES or CG (``b`` of shape (n, k)).

    ``max_iter`` bounds the iterations per column (SciPy's default when ``None``)."""
    _validate.choice(method, "method", ("gmres", "cg"))
    rtol = default_rtol(op.dtype) if rtol is None else _validate.positive_float(rtol, "rtol")
    atol = _validate.tolerance(atol, "atol")
    max_iter = _validate.max_iter(max_iter)
    import scipy.sparse.linalg as spla

    lin = op.as_linear_operator()
    n = op.shape[0]
    b_np = lapack(b.detach().cpu()).numpy()
    cols = []
    for j in range(b_np.shape[1]):
        rhs = b_np[:, j]
        kw: dict[str, Any] = {_tol_kw(): rtol, "atol": atol, "maxiter": max_iter}
        if method == "gmres":
            x, info = spla.gmres(lin, rhs, restart=min(max(n, 1), 50), **kw)
        else:
            x, info = spla.cg(lin, rhs, **kw)
        resid = float(np.linalg.norm(lin.matvec(x) - rhs))
        bound = 100 * max(rtol * float(np.linalg.norm(rhs)), atol)
        if info != 0 or not np.isfinite(resid) or resid > bound:
            raise ConvergenceError(
                f"{method} did not converge (info={info}, residual {resid:.3g} for a right-hand "
                f"side of norm {float(np.linalg.norm(rhs)):.3g}); pass a larger max_iter or a "
                f"looser rtol, or materialise the operator (DenseOperator(op.to_dense())) and "
                f"solve directly if it is small or ill-conditioned"
            )
        cols.append(x)
    out = np.stack(cols, axis=1) if cols else np.zeros((n, 0), dtype=b_np.dtype)
    return torch.from_numpy(np.ascontiguousarray(out)).to(dtype=op.dtype, device=b.device)


def iterative_lstsq(
    op: Any, b: torch.Tensor, *, rtol: float | None = None, max_iter: int | None = None
) -> torch.Tensor:
    """Least-squares ``argmin ||op x - b||`` column by column with SciPy's LSMR."""
    rtol = default_rtol(op.dtype) if rtol is None else _validate.positive_float(rtol, "rtol")
    max_iter = _validate.max_iter(max_iter)
    import scipy.sparse.linalg as spla

    lin = op.as_linear_operator()
    b_np = lapack(b.detach().cpu()).numpy()
    cols = []
    for j in range(b_np.shape[1]):
        result = spla.lsmr(lin, b_np[:, j], atol=rtol, btol=rtol, maxiter=max_iter)
        if result[1] == 7:
            raise ConvergenceError(
                "lsmr reached its iteration limit; pass a larger max_iter or a looser rtol"
            )
        cols.append(result[0])
    out = np.stack(cols, axis=1) if cols else np.zeros((op.shape[1], 0), dtype=b_np.dtype)
    return torch.from_numpy(np.ascontiguousarray(out)).to(dtype=op.dtype, device=b.device)


def _perm_parity(perm: np.ndarray) -> int:
    """+1 for an even permutation, -1 for an odd one (cycle decomposition, O(n))."""
    seen = np.zeros(len(perm), dtype=bool)
    swaps = 0
    for start in range(len(perm)):
        if seen[start]:
            continue
        length, j = 0, start
        while not seen[j]:
            seen[j] = True
            j = perm[j]
            length += 1
        swaps += length - 1
    return -1 if swaps % 2 else 1


def _splu(matrix: Any) -> Any:
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    return spla.splu(sp.csc_matrix(matrix))


def _splu_singular(matrix: Any, lu: Any) -> bool:
    """The :func:`numerically_singular` rule for a sparse LU: the pivots screen, and the singular
    values of the dense matrix decide when it fits the memory budget (else the pivots do, with
    the threshold ``n · eps`` relative to the largest pivot)."""
    u = np.abs(lu.U.diagonal())
    n = matrix.shape[0]
    if n == 0:
        return False
    eps = float(np.finfo(u.dtype).eps)
    small, big = float(u.min()), float(u.max())
    if small == 0:
        return True
    if small > eps ** 0.5 * big:
        return False
    if n * n * matrix.dtype.itemsize <= get_memory_budget():
        s = np.linalg.svd(matrix.toarray(), compute_uv=False)
        return bool(s[-1] <= n * eps * s[0])
    return small <= n * eps * big


def splu_slogdet(matrix: Any) -> tuple[complex | float, float]:
    """``(sign, log|det|)`` of a square scipy sparse matrix via a sparse LU factorisation;
    ``(0, -inf)`` when it is numerically singular."""
    try:
        lu = _splu(matrix)
    except RuntimeError:  # "Factor is exactly singular"
        return 0.0, -np.inf
    if _splu_singular(matrix, lu):
        return 0.0, -np.inf
    u = lu.U.diagonal()
    mag = np.abs(u)
    sign = np.prod(u / mag) * _perm_parity(lu.perm_r) * _perm_parity(lu.perm_c)
    return sign, float(np.log(mag).sum())


def splu_solve(matrix: Any, b: np.ndarray) -> np.ndarray:
    """Solve with a sparse LU factorisation; singular matrices raise a typed error."""
    try:
        lu = _splu(matrix)
    except RuntimeError as exc:
        raise SingularOperatorError(
            f"cannot solve: the sparse matrix is singular ({exc}); {_SINGULAR_FIX}"
        ) from exc
    if _splu_singular(matrix, lu):
        raise SingularOperatorError(
            f"cannot solve: the sparse matrix is numerically singular (a pivot of its LU "
            f"factor is at rounding level); {_SINGULAR_FIX}"
        )
    return lu.solve(np.ascontiguousarray(b))


def probe_diagonal(op: Any, budget: int) -> torch.Tensor:
    """Main diagonal of a matrix-free operator: products with chunks of unit vectors.

    Costs ``min(m, n)`` columns of products in total; each chunk stays well inside ``budget``.
    """
    m, n = op.shape
    p = min(m, n)
    dev = op.device
    itemsize = torch.empty((), dtype=op.dtype).element_size()
    chunk = max(1, min(p, budget // (4 * itemsize * max(m + n, 1))))
    out = torch.zeros(p, dtype=op.dtype, device=dev)
    for s in range(0, p, chunk):
        idx = torch.arange(s, min(p, s + chunk), device=dev)
        cols = torch.arange(len(idx), device=dev)
        E = torch.zeros(n, len(idx), dtype=op.dtype, device=dev)
        E[idx, cols] = 1
        out[idx] = op._mm(E)[idx, cols]
    return out


def to_linear_operator(op: Any) -> spla.LinearOperator:
    """Wrap an operator as a SciPy ``LinearOperator`` (``rmatvec`` = conjugate transpose)."""
    import scipy.sparse.linalg as spla

    wide = lapack_dtype(op.dtype)  # NumPy has no bfloat16; SciPy's solvers no float16
    np_dtype = _csr.numpy_dtype(wide)
    cplx = op.dtype.is_complex

    def to_t(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(x, dtype=np_dtype)).to(op.device, op.dtype)

    def to_np(t: torch.Tensor) -> np.ndarray:
        return t.detach().cpu().to(wide).numpy()

    def matvec(x: np.ndarray) -> np.ndarray:
        return to_np(op._mv(to_t(np.reshape(x, -1))))

    def rmatvec(x: np.ndarray) -> np.ndarray:
        t = to_t(np.reshape(x, -1))
        return to_np(op._rmv(t.conj()).conj() if cplx else op._rmv(t))

    def rmatmat(x: np.ndarray) -> np.ndarray:
        t = to_t(x)
        return to_np(op._rmm(t.conj()).conj() if cplx else op._rmm(t))

    return spla.LinearOperator(op.shape, dtype=np_dtype, matvec=matvec, rmatvec=rmatvec,
                               matmat=lambda x: to_np(op._mm(to_t(x))), rmatmat=rmatmat)
