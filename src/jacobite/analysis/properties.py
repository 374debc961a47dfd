"""A properties report for a square Jacobian: symmetry, sums, definiteness, rank, spectrum.

:func:`properties` takes a dense ``(n, n)`` tensor/array or any
:class:`~jacobite.operators.JacobianOperator` (materialised within the memory budget) and returns
a frozen :class:`JacobianProperties`. All decompositions are NumPy/SciPy's (SVD for rank, null
space and condition number, ``eigvalsh``/``eigvals`` for the spectrum, ``slogdet``), in float64.

The softmax Jacobian ``diag(σ) − σσᵀ`` is the textbook case: symmetric, zero row sums, PSD,
rank ``K − 1`` with null space spanned by ``1``, and eigenvalues in ``[0, ½]`` — every eigenvalue
lies in a Gershgorin disc ``[0, 2σᵢ(1 − σᵢ)] ⊆ [0, ½]``. A source text of the worked examples states
the bound ``¼``;
that is wrong, and ``σ = (½, ½)`` is a counterexample:

>>> import torch
>>> from jacobite.operators import DiagonalPlusLowRank
>>> p = properties(DiagonalPlusLowRank.softmax(torch.tensor([0.5, 0.5], dtype=torch.float64)))
>>> p.eigenvalues, p.rank, p.psd
((0.0, 0.5), 1, True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .. import _validate
from ..errors import (
    DtypeError,
    NonFiniteInputError,
    NotSquareError,
    ShapeError,
)
from ..operators import JacobianOperator

__all__ = ["JacobianProperties", "properties"]

Number = float | complex


def _num(x: Number) -> Any:
    """A JSON-friendly number: non-finite floats as the strings 'inf', '-inf', 'nan'."""
    if isinstance(x, complex):
        return [_num(x.real), _num(x.imag)]
    return x if math.isfinite(x) else str(x)


def _fmt(x: Number) -> str:
    if isinstance(x, complex):
        return f"{x.real:.6g}{x.imag:+.6g}j"
    return f"{x:.6g}"


def _fmt_vec(v: Sequence[Number], limit: int = 10) -> str:
    cells = [_fmt(x) for x in v[:limit]]
    return "[" + ", ".join(cells) + (", ..." if len(v) > limit else "") + "]"


@dataclass(frozen=True)
class JacobianProperties:
    """What :func:`properties` found; every field is a plain Python value.

    ``eigenvalues`` are ascending (by real part, then imaginary part); they are floats when the
    matrix is symmetric or its spectrum is real within ``tol``, else complex. ``null_space`` is an
    orthonormal basis (one tuple per basis vector, sign chosen so the largest entry is positive).
    ``psd`` means symmetric positive semidefinite (within ``tol``). ``condition_number`` and
    ``determinant`` are ``inf`` and ``0.0`` when ``rank < n`` (the computed determinant is then
    rounding noise); ``log_abs_det`` is ``-inf``.
    """

    n: int
    dtype: str
    tol: float
    symmetric: bool
    asymmetry: float
    row_sums: tuple[float, ...]
    column_sums: tuple[float, ...]
    psd: bool
    rank: int
    null_space: tuple[tuple[float, ...], ...]
    eigenvalues: tuple[Number, ...]
    singular_values: tuple[float, ...]
    condition_number: float
    determinant: float
    log_abs_det: float
    trace: float
    declared_tags: tuple[str, ...] = ()

    @property
    def nullity(self) -> int:
        """``n − rank``, the dimension of the null space."""
        return self.n - self.rank

    def to_dict(self) -> dict[str, Any]:
        """Plain lists, floats, ints, bools and strings (``json.dumps(allow_nan=False)`` works).

        Non-finite floats become ``"inf"``/``"-inf"``/``"nan"``; complex numbers ``[re, im]``.

        >>> import json, torch
        >>> d = properties(torch.eye(2)).to_dict()
        >>> d["rank"], d["eigenvalues"], json.dumps(d, allow_nan=False)[:10]
        (2, [1.0, 1.0], '{"n": 2, "')
        """
        return {
            "n": self.n, "dtype": self.dtype, "tol": _num(self.tol),
            "symmetric": self.symmetric, "asymmetry": _num(self.asymmetry),
            "row_sums": [_num(x) for x in self.row_sums],
            "column_sums": [_num(x) for x in self.column_sums],
            "psd": self.psd, "rank": self.rank, "nullity": self.nullity,
            "null_space": [[_num(x) for x in v] for v in self.null_space],
            "eigenvalues": [_num(x) for x in self.eigenvalues],
            "singular_values": [_num(x) for x in self.singular_values],
            "condition_number": _num(self.condition_number),
            "determinant": _num(self.determinant), "log_abs_det": _num(self.log_abs_det),
            "trace": _num(self.trace), "declared_tags": list(self.declared_tags),
        }

    def __str__(self) -> str:
        yes = {True: "yes", False: "no"}
        rows = [
            f"Jacobian properties ({self.n}x{self.n}, {self.dtype}, tol={self.tol:.3g})",
            f"  symmetric         {yes[self.symmetric]} (max |J - J^T| = {self.asymmetry:.3g})",
            f"  row sums          {_fmt_vec(self.row_sums)}",
            f"  column sums       {_fmt_vec(self.column_sums)}",
            f"  PSD               {yes[self.psd]}",
            f"  rank              {self.rank} (null space dimension {self.nullity})",
        ]
        rows += [f"  null space basis  {_fmt_vec(v)}" for v in self.null_space[:5]]
        rows += [
            f"  eigenvalues       {_fmt_vec(self.eigenvalues)}",
            f"  singular values   {_fmt_vec(self.singular_values)}",
            f"  condition number  {_fmt(self.condition_number)}",
            f"  determinant       {_fmt(self.determinant)}",
            f"  trace             {_fmt(self.trace)}",
        ]
        if self.declared_tags:
            rows.append(f"  declared tags     {', '.join(self.declared_tags)}")
        return "\n".join(rows)


def _matrix(J: Any) -> tuple[np.ndarray, str, tuple[str, ...]]:
    tags: tuple[str, ...] = ()
    if isinstance(J, JacobianOperator):
        if J.shape[0] != J.shape[1]:
            _not_square(J.shape)
        tags = tuple(sorted(J.tags))
        J = J.to_dense()
    if isinstance(J, torch.Tensor):
        if J.is_complex() or not J.is_floating_point():
            if J.is_complex():
                raise DtypeError("properties() analyses real Jacobians, got a complex tensor; pass "
                                 "its real and imaginary parts separately (J.real, J.imag)")
            J = J.to(torch.float64)
        name = str(J.dtype).removeprefix("torch.")
        A = J.detach().cpu().to(torch.float64).numpy()
    elif isinstance(J, np.ndarray):
        if np.iscomplexobj(J):
            raise DtypeError("properties() analyses real Jacobians, got a complex array; pass "
                             "its real and imaginary parts separately")
        name = str(J.dtype) if J.dtype.kind == "f" else "float64"
        A = np.asarray(J, dtype=np.float64)
    else:
        raise DtypeError(f"properties() takes a torch.Tensor, a NumPy array or a "
                         f"JacobianOperator, got {type(J).__name__}; convert it with "
                         f"torch.as_tensor(J, dtype=torch.float64)")
    if A.ndim != 2:
        raise ShapeError(f"properties() needs a 2-D (n, n) Jacobian, got shape {A.shape}; for a "
                         f"batch of Jacobians call it once per matrix")
    if A.shape[0] != A.shape[1]:
        _not_square(A.shape)
    if A.shape[0] == 0:
        raise ShapeError("properties() got an empty 0x0 Jacobian; pass a matrix with n >= 1")
    if not np.isfinite(A).all():
        raise NonFiniteInputError("the Jacobian contains NaN or Inf; properties() needs finite "
                                  "entries (check the point it was evaluated at)")
    return A, name, tags


def _not_square(shape: Any) -> None:
    m, n = shape
    raise NotSquareError(
        f"properties() analyses square Jacobians (symmetry, eigenvalues, determinant), got shape "
        f"({m}, {n}); for a rectangular J analyse the square J^T J (or J J^T), e.g. "
        f"properties(J.T @ J), or use its singular values (torch.linalg.svdvals(J))"
    )


_EPS = {"float16": 2.0**-10, "bfloat16": 2.0**-7, "float32": 2.0**-23}


def _eps(dtype: str) -> float:
    return _EPS.get(dtype, 2.0**-52)


def _oriented(v: np.ndarray) -> tuple[float, ...]:
    if v[np.argmax(np.abs(v))] < 0:
        v = -v
    return tuple(float(x) + 0.0 for x in v)


def _spectrum(A: np.ndarray, symmetric: bool, tol: float) -> tuple[Number, ...]:
    if symmetric:
        return tuple(float(x) for x in np.linalg.eigvalsh((A + A.T) / 2))
    ev = np.linalg.eigvals(A)
    ev = ev[np.lexsort((ev.imag, ev.real))]
    if np.all(np.abs(ev.imag) <= tol):
        return tuple(float(x) for x in ev.real)
    return tuple(complex(x) for x in ev)


def _det(sign: float, lad: float) -> float:
    return sign * (math.exp(lad) if lad < 709.0 else math.inf)  # exp overflows above ~709.78


def properties(J: Any, *, tol: float | None = None) -> JacobianProperties:
    """Report the structural and spectral properties of a square Jacobian.

    ``J`` is an ``(n, n)`` tensor, NumPy array or :class:`~jacobite.operators.JacobianOperator`
    (its tags are reported as ``declared_tags``). ``tol`` is the absolute tolerance for every
    "is zero" decision (asymmetry, negative eigenvalues, singular values for the rank); the default
    is ``n · eps · σ_max`` with ``eps`` of the input's dtype (NumPy's ``matrix_rank`` rule), which
    assumes the entries are accurate to a few ulps of ``‖J‖``. A Jacobian formed with cancellation
    needs a larger ``tol``: autograd's dense softmax Jacobian, for one, computes the diagonal as
    ``σᵢ − σᵢ²``, off by ``eps`` (not ``eps ‖J‖``) when some σᵢ is near 1, so ``J 1 = 0`` fails the
    default test (``jacobite.nn.softmax_jacobian(z).to_dense()`` is formed accurately and passes).
    A rectangular ``J`` raises :class:`~jacobite.errors.NotSquareError`.

    >>> import torch
    >>> sigma = torch.softmax(torch.tensor([2.5, 1.0, 3.0], dtype=torch.float64), 0)
    >>> p = properties(torch.diag(sigma) - torch.outer(sigma, sigma))
    >>> p.symmetric, p.psd, p.rank, [round(x, 6) for x in p.null_space[0]]
    (True, True, 2, [0.57735, 0.57735, 0.57735])
    >>> max(abs(s) for s in p.row_sums) < 1e-15, p.eigenvalues[-1] <= 0.5
    (True, True)
    """
    import scipy.linalg  # loaded on use

    A, dtype, tags = _matrix(J)
    n = A.shape[0]
    _, sv, Vh = scipy.linalg.svd(A)
    if tol is None:
        tol = n * _eps(dtype) * float(sv[0])
    tol = _validate.tolerance(tol, "tol (e.g. 1e-10, or None for the default)")
    asym = float(np.max(np.abs(A - A.T)))
    symmetric = asym <= tol
    eig = _spectrum(A, symmetric, tol)
    psd = symmetric and float(eig[0]) >= -tol  # type: ignore[arg-type]
    rank = int(np.sum(sv > tol))
    null = tuple(_oriented(v) for v in Vh[rank:])
    sign, lad = np.linalg.slogdet(A)
    singular = rank < n
    return JacobianProperties(
        n=n, dtype=dtype, tol=tol, symmetric=symmetric, asymmetry=asym,
        row_sums=tuple(float(x) for x in A.sum(1)), column_sums=tuple(float(x) for x in A.sum(0)),
        psd=psd, rank=rank, null_space=null, eigenvalues=eig,
        singular_values=tuple(float(x) for x in sv),
        condition_number=math.inf if singular else float(sv[0] / sv[-1]),
        determinant=0.0 if singular else _det(float(sign), float(lad)),
        log_abs_det=-math.inf if singular else float(lad),
        trace=float(np.trace(A)), declared_tags=tags,
    )
