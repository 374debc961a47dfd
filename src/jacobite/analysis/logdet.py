"""Per-sample ``log|det J_f(x_b)|`` of a square map: the density term of a change of variables.

:func:`logdet` takes ``f`` mapping a batch ``(B, D) → (B, D)`` with samples independent
(``batch=True``) or one point ``(D,) → (D,)`` (``batch=False``), or a structured
:class:`~jacobite.operators.JacobianOperator`, and returns a :class:`LogDet`.

Methods:

* ``"exact"`` — per-sample Jacobians and ``torch.linalg.slogdet``: one forward pass and ``D``
  VJPs of the whole batch, vmapped over the basis in chunks under the memory budget (the
  samples are independent, so ``eᵢ`` given to every sample yields row ``i`` of each ``J``),
  one at a time where the backward pass does not batch; plain autograd on one recorded pass
  where ``f`` runs autograd itself (zuko's NAF), which ``torch.func`` refuses.
  Differentiable in ``x`` and in what ``f`` closes over (autograd and ``torch.func``); where
  nothing there requires grad the products are not recorded (the value then has no
  ``grad_fn``).
* ``"structured"`` — the operator's own ``slogdet`` (diagonal, triangular, the determinant
  lemma of :class:`~jacobite.operators.DiagonalPlusLowRank`, blockwise, a composition as a
  sum of log-dets). One operator is one Jacobian (shape ``()``); a
  :class:`~jacobite.operators.BlockDiagonal` with ``batch=True`` gives one value per block,
  and a list of operators one per operator. A callable ``f`` with ``x`` may return either.
* ``"slq"`` — stochastic Lanczos quadrature of ``½ tr log(JᵀJ)`` (the estimate of
  :func:`jacobite.analysis.logabsdet`, batched over samples and probes); not differentiable
  (a tracked input raises). Any invertible ``J``; no sign.
* ``"hutchinson"`` / ``"hutch++"`` — ``tr log J = D log c + tr log(J/c)``, the second
  term from the power series of ``log(I + (J/c − I))`` truncated after ``terms`` terms, with
  ``c`` per sample from a few Arnoldi steps on ``Jᵀ`` (see :mod:`jacobite.analysis._logdet_est`
  for the choice and the error bound): for ``J`` whose eigenvalues have positive real parts
  within a modest spread, as in residual flows or scaled maps; a
  :class:`~jacobite.errors.JacobiteWarning` when the series has not settled (an indefinite or
  nearly singular ``J``). Differentiable as the estimator with fixed probes.
* ``"auto"`` — structured for operators; for ``f``, exact when the ``B·D²`` Jacobian entries
  and their factorisation (twice the entries' bytes) fit ``memory_budget``, else SLQ.

Estimates have ``sign`` ``nan`` and a per-sample ``stderr`` from the probes' spread; exact
values have ``stderr`` ``None``. ``seed``: an int gives the same probes on every call,
``None`` draws from torch's global generator.

>>> import torch, jacobite
>>> A = torch.tensor([[2.0, 1.0], [0.0, -3.0]], dtype=torch.float64)
>>> r = jacobite.logdet(lambda z: z @ A.T, torch.ones(4, 2, dtype=torch.float64))
>>> r.method, r.value.shape, round(float(r.value[0]), 12), float(r.sign[0])
('exact', torch.Size([4]), 1.791759469228, -1.0)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from .. import _validate, config
from .._modules import keeps_state
from ..dense import _rows
from ..dense._errors import check_module_state
from ..dense._saved import chunk
from ..errors import (
    ArgumentTypeError,
    DtypeError,
    InvalidOptionError,
    JacobianTooLarge,
    NonFiniteInputError,
    NotSquareError,
    ShapeError,
    UnsupportedOperationError,
)
from ..operators import BlockDiagonal, JacobianOperator
from ..operators.linalg import slogdet_dense
from . import _logdet_est as est

__all__ = ["LogDet", "LogDetMethod", "logdet"]

#: How :func:`logdet` computes ``log|det J|``.
LogDetMethod = Literal["auto", "exact", "structured", "hutchinson", "hutch++", "slq"]
_METHODS = ("auto", "exact", "structured", "hutchinson", "hutch++", "slq")


@dataclass(frozen=True)
class LogDet:
    """``log|det J|`` per sample: ``value``, ``sign`` (``±1``, ``0`` if singular, ``nan`` for an
    estimate) and ``stderr`` (``None`` when exact), each ``(B,)`` (``()`` for one point or one
    operator); ``method`` is the method used (``"auto"`` resolved); ``dof`` the degrees of
    freedom of ``stderr`` (the probes behind its spread, less one; ``None`` when exact): for
    an interval use a Student t quantile with ``dof``, as few probes make one stderr rough."""

    value: torch.Tensor
    sign: torch.Tensor
    stderr: torch.Tensor | None
    method: str
    dof: int | None = None


def _ops(obj: Any) -> list[JacobianOperator] | None:
    if isinstance(obj, JacobianOperator):
        return [obj]
    if isinstance(obj, Sequence) and not isinstance(obj, str) and obj and \
            all(isinstance(o, JacobianOperator) for o in obj):
        return list(obj)
    return None


def _structured(obj: Any, batch: bool, budget: int) -> LogDet:
    ops = _ops(obj)
    if ops is None:
        raise ArgumentTypeError(
            f"method='structured' needs a JacobianOperator, a list of them, or f returning one, "
            f"got {type(obj).__name__}; pass method='exact' for a plain function")
    with config.memory_budget(budget):
        if len(ops) == 1 and not isinstance(obj, Sequence):
            op = ops[0]
            if batch and isinstance(op, BlockDiagonal) and op.blocks.shape[1] == \
                    op.blocks.shape[2] and op.rank_bound is None:
                sign, lad = slogdet_dense(op.blocks)
            else:
                sign, lad = op.slogdet()
        else:
            pairs = [o.slogdet() for o in ops]
            sign = torch.stack([p[0] for p in pairs])
            lad = torch.stack([p[1] for p in pairs])
    return LogDet(lad, sign.to(lad.dtype), None, "structured")


def _point(x: Any, batch: bool) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise ArgumentTypeError(f"x must be a tensor (the point at which to take log|det J|), "
                                f"got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise DtypeError(f"x must be a floating-point tensor, got {x.dtype}; convert it, e.g. "
                         f"x.double()")
    want = 2 if batch else 1
    if x.ndim != want:
        hint = ("pass a batch of shape (B, D), or batch=False for one point (D,)" if batch else
                "pass one point of shape (D,), or batch=True for a batch (B, D)")
        raise ShapeError(f"x has shape {tuple(x.shape)}; {hint}")
    if 0 in x.shape:
        raise ShapeError(f"x has shape {tuple(x.shape)} with no entries; pass at least one "
                         f"sample of at least one coordinate")
    if not _validate.all_finite(x.detach()):
        raise NonFiniteInputError("x contains NaN or Inf; log|det J| needs a finite point")
    return x


def _exact(f: Callable[[torch.Tensor], torch.Tensor], X: torch.Tensor,
           budget: int) -> LogDet:
    """``slogdet`` of the per-sample Jacobians ``(B, D, D)``: one forward pass and its ``D``
    VJPs of the whole batch (the samples are independent, so the basis vector ``eᵢ`` given to
    every sample yields row ``i`` of each ``J``), vmapped over the basis in chunks under
    ``budget`` (one at a time where the backward pass does not batch), recorded for autograd
    only where something they depend on requires grad."""
    from ..config import format_bytes

    B, D = X.shape
    row = B * D * X.element_size()  # one VJP's result
    if D * row > budget:
        raise JacobianTooLarge(f"the {B} per-sample {D}x{D} Jacobians take "
                               f"{format_bytes(D * row)}, more than the memory budget of "
                               f"{format_bytes(budget)}; pass method='slq' or a larger "
                               f"memory_budget")
    def square(out: object) -> torch.Tensor:
        if not isinstance(out, torch.Tensor) or out.shape != X.shape:
            got = tuple(out.shape[1:]) if isinstance(out, torch.Tensor) else type(out).__name__
            raise NotSquareError(f"logdet needs a square map of each sample (D,) -> (D,), got "
                                 f"an output of shape {got} for D = {D}; log|det| exists only "
                                 f"for square Jacobians (see jacobite.analysis.top_singular)")
        return out

    step = chunk(D, 4 * row, budget)  # the rows, the backward's batched work, slack
    out, rows = _rows.pulled(f, X, step, square)
    eye = torch.eye(D, dtype=out.dtype, device=out.device)
    J = rows(eye[:, None, :].expand(D, B, D)).movedim(0, 1)
    sign, lad = torch.linalg.slogdet(J)
    return LogDet(lad, sign, None, "exact")


@keeps_state
def logdet(f: Any, x: torch.Tensor | None = None, *, batch: bool = True,
           method: LogDetMethod = "auto", nprobe: int = 16, seed: int | None = 0,
           memory_budget: int | str | None = None, terms: int = 20,
           steps: int = 40) -> LogDet:
    """Per-sample ``log|det J_f(x_b)|`` (see the module doc for the methods).

    ``nprobe`` probes per sample for the estimators; ``terms`` truncates the log series
    (Hutchinson, Hutch++); ``steps`` bounds the Lanczos steps per SLQ probe. The estimators
    split the batch into chunks of samples whose working set (``nprobe · D`` float64 vectors
    per sample, times ``steps + 4`` or ``terms + 4``) fits ``memory_budget``; the probes are
    drawn for the whole batch first, so the budget never changes the result.

    >>> import torch, jacobite
    >>> from jacobite.operators import DiagonalOperator
    >>> r = jacobite.logdet(DiagonalOperator(torch.tensor([2.0, -0.5], dtype=torch.float64)))
    >>> round(float(r.value), 12), float(r.sign), r.method
    (0.0, -1.0, 'structured')
    >>> r = jacobite.logdet(torch.tanh, torch.zeros(3, dtype=torch.float64), batch=False)
    >>> float(r.value), r.value.shape
    (0.0, torch.Size([]))
    """
    _validate.choice(method, "method", _METHODS)
    batch = _validate.boolean(batch, "batch")
    nprobe = _validate.positive_int(nprobe, "nprobe")
    terms = _validate.positive_int(terms, "terms")
    steps = _validate.positive_int(steps, "steps")
    seed = _validate.seed(seed)
    budget = _validate.memory_budget(memory_budget)
    if _ops(f) is not None:
        if x is not None:
            raise InvalidOptionError("x is only for a callable f; an operator already is the "
                                     "Jacobian: call logdet(op) without x")
        if method not in ("auto", "structured"):
            raise InvalidOptionError(f"an operator's log|det| comes from its structure: pass "
                                     f"method='structured' or 'auto', got {method!r}")
        return _structured(f, batch, budget)
    _validate.callable_(f, "f")
    check_module_state(f, per_sample=True)  # BatchNorm in training mode mixes the samples
    if x is None:
        raise InvalidOptionError("a callable f needs the point x: logdet(f, x) with x of shape "
                                 "(B, D), or (D,) with batch=False")
    X = _point(x, batch)
    if method == "structured":
        return _structured(f(X), batch, budget)
    fb = f if batch else (lambda z: f(z[0]).unsqueeze(0))
    X = X if batch else X.unsqueeze(0)
    r = _resolve(fb, X, method, nprobe, seed, budget, terms, steps)
    if batch:
        return r
    return LogDet(r.value[0], r.sign[0], None if r.stderr is None else r.stderr[0], r.method,
                  r.dof)


def _resolve(fb: Callable[[torch.Tensor], torch.Tensor], X: torch.Tensor, method: str,
             nprobe: int, seed: int | None, budget: int, terms: int, steps: int) -> LogDet:
    if method == "auto":
        B, D = X.shape
        fits = 2 * B * D * D * X.element_size() <= budget
        method = "exact" if fits else "slq"
    if method == "exact":
        return _exact(fb, X, budget)
    gen = _validate.generator(seed)
    if method == "slq" and _validate.tracked(X):
        raise UnsupportedOperationError(
            "the stochastic Lanczos quadrature estimate is not differentiable, and x is "
            "tracked by autograd or torch.func; pass method='exact' (differentiable), "
            "'hutchinson' or 'hutch++' (differentiable as estimators), or detach x")
    Z = est.probes(nprobe, X, gen)  # all probes first: the chunking never changes them
    B, D = X.shape
    held = min(steps, D) + 4 if method == "slq" else terms + 4  # stacks of (P, ·, D) kept
    step = max(1, budget // (8 * nprobe * D * held))
    parts = []
    for i in range(0, B, step):
        if method == "slq":
            parts.append(est.slq(fb, X[i: i + step], Z[:, i: i + step], steps=steps))
        else:
            parts.append(est.series(fb, X[i: i + step], Z[:, i: i + step], terms=terms,
                                    plus=method == "hutch++"))
    value = torch.cat([p[0] for p in parts])
    se = torch.cat([p[1] for p in parts])
    return LogDet(value, torch.full_like(value.detach(), float("nan")), se, method,
                  est.dof(method, nprobe, D))
