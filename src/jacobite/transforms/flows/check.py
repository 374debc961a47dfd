"""Check a normalizing flow's log|det J| against the exact one from its AD Jacobian.

:func:`check_logdet` runs a transform (torch.distributions, zuko, nflows, normflows, FrEIA, or
a callable ``x -> (y, ladj)``) on a batch, builds each sample's Jacobian of the forward map by
automatic differentiation (in float64 on a copy where the transform is an ``nn.Module``), takes
``log|det|`` with :func:`torch.linalg.slogdet` and compares. The :class:`LogDetCheck` it returns
names the likely bug when they disagree.

>>> import torch, jacobite
>>> x = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
>>> t = torch.distributions.TanhTransform()
>>> jacobite.check_logdet(t, x).ok
True
>>> def flipped(x):
...     return t(x), -t.log_abs_det_jacobian(x, t(x)).sum(1)
>>> jacobite.check_logdet(flipped, x).diagnosis
'sign flipped'
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch

from ..._modules import keeps_state
from ..._validate import all_finite, tolerance
from ...analysis.logdet import logdet
from ...errors import (
    ArgumentTypeError,
    DtypeError,
    LogDetMismatchError,
    NonFiniteInputError,
    ShapeError,
)
from ._diagnose import FIXES, diagnose
from .adapters import Forward, adapt

__all__ = ["LogDetCheck", "check_logdet"]

#: default (rtol, atol) per input dtype: rounding of the transform's own log-det dominates
_TOLERANCES = {torch.float64: (1e-7, 1e-7), torch.float32: (1e-4, 1e-3),
               torch.float16: (1e-2, 1e-1), torch.bfloat16: (3e-2, 3e-1)}


@dataclass(frozen=True)
class LogDetCheck:
    """What :func:`check_logdet` found; ``diagnosis`` names the likely bug.

    ``claimed`` are the transform's log-dets, ``exact`` log|det J| of the AD Jacobian,
    ``errors`` their absolute differences, all of shape ``(B,)``; ``worst`` the sample with the
    largest error and ``error`` that error; ``bad`` the samples outside the tolerance;
    ``parameter`` the offset c or factor s for ``"constant offset"`` / ``"scale"``.

    >>> import torch, jacobite
    >>> res = jacobite.check_logdet(torch.distributions.ExpTransform(), torch.zeros(2, 2))
    >>> res.ok, res.diagnosis
    (True, 'ok')
    """

    ok: bool
    worst: int
    error: float
    errors: torch.Tensor
    claimed: torch.Tensor
    exact: torch.Tensor
    diagnosis: str
    kind: str = "callable"
    bad: tuple[int, ...] = ()
    parameter: float | None = None
    rtol: float = 0.0
    atol: float = 0.0
    fix: str = field(default="", repr=False)

    def summary(self) -> str:
        """One paragraph: the verdict, the worst sample, the diagnosis and its fix."""
        n = self.claimed.numel()
        head = (f"log-det check ({self.kind}, {n} samples, rtol={self.rtol:g}, "
                f"atol={self.atol:g}): ")
        if self.ok:
            return head + f"ok; largest error {self.error:.3g} at sample {self.worst}"
        what = self.diagnosis
        if self.diagnosis == "constant offset" and self.parameter is not None:
            what += f" (claimed − exact ≈ {self.parameter:.6g} in every sample)"
        elif self.diagnosis == "scale" and self.parameter is not None:
            what += f" (claimed ≈ {self.parameter:.6g} × exact)"
        elif self.diagnosis == "wrong in some samples":
            shown = ", ".join(map(str, self.bad[:10])) + (", …" if len(self.bad) > 10 else "")
            what += f" (samples {shown})"
        i = self.worst
        return (head + f"{len(self.bad)} of {n} samples disagree: {what}; worst sample {i}: "
                f"claimed {float(self.claimed[i]):.6g}, exact {float(self.exact[i]):.6g}. "
                f"Likely fix: {self.fix}")

    def __str__(self) -> str:
        return self.summary()

    def raise_if_bad(self) -> None:
        """Raise :class:`~jacobite.errors.LogDetMismatchError` (message: the summary, with the
        fix) unless the check passed."""
        if not self.ok:
            raise LogDetMismatchError(self.summary())


def _double_copy(transform: Any) -> Any | None:
    """A float64 copy of an ``nn.Module`` transform, or None where that cannot be made."""
    if not isinstance(transform, torch.nn.Module):
        return None
    try:
        return copy.deepcopy(transform).to(torch.float64)
    except (RuntimeError, TypeError, copy.Error):
        return None


def _exact(fwd: Forward, x: torch.Tensor) -> torch.Tensor:
    """Per-sample log|det| of the Jacobian of ``fwd``'s output: :func:`jacobite.logdet`'s
    exact method on the samples flattened to vectors (a map that is not square raises
    :class:`~jacobite.errors.NotSquareError`, a :class:`~jacobite.errors.ShapeError`)."""
    b = x.shape[0]

    def flat(v: torch.Tensor) -> torch.Tensor:
        return fwd(v.reshape(-1, *x.shape[1:]))[0].reshape(v.shape[0], -1)

    return logdet(flat, x.detach().reshape(b, -1), method="exact").value.detach().to(torch.float64)


def _exact_any_precision(transform: Any, name: str, fwd: Forward,
                         x: torch.Tensor) -> torch.Tensor:
    """Exact log-dets in float64 where the transform runs there (a module on a float64 copy,
    anything else on float64 inputs), else at the precision of ``x``."""
    twin = _double_copy(transform)
    x64 = x.to(torch.float64)
    try:
        return _exact(adapt(twin, name)[1] if twin is not None else fwd, x64)
    except (RuntimeError, TypeError):  # float32 tensors built inside the transform
        if x.dtype == torch.float64:
            raise
    return _exact(fwd, x)


def _validate_x(x: Any) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise ArgumentTypeError(f"x must be a tensor of shape (B, ...), got "
                                f"{type(x).__name__}; e.g. torch.randn(16, 3)")
    if not x.is_floating_point():
        raise DtypeError(f"x must be a floating tensor, got {x.dtype}; convert it, e.g. "
                         "x.to(torch.float64)")
    if x.dim() < 2 or x.shape[0] == 0:
        raise ShapeError(f"x must be a non-empty batch of shape (B, ...), got "
                         f"{tuple(x.shape)}; add a batch dimension, e.g. x.unsqueeze(0)")
    if not all_finite(x):
        raise NonFiniteInputError("x contains NaN or Inf; pass finite samples")
    return x


@keeps_state
def check_logdet(transform: Any, x: torch.Tensor, *, rtol: float | None = None,
                 atol: float | None = None, kind: str = "auto") -> LogDetCheck:
    """Compare a transform's claimed log|det J| with the exact one, per sample of ``x``.

    ``transform`` is a torch.distributions or zuko transform (or a zuko ``Flow``/lazy
    transform, called without context), an nflows, normflows or FrEIA module, or a callable
    ``x -> (y, ladj)``; ``kind`` forces one adapter (``"auto"`` picks by type). Samples must be
    independent (no BatchNorm in training mode). ``rtol``/``atol`` default to values for
    ``x``'s dtype; a sample passes when ``|claimed − exact| ≤ atol + rtol·|exact|``.

    >>> import torch, jacobite
    >>> t = torch.distributions.AffineTransform(0.0, 3.0)
    >>> x = torch.randn(4, 2, dtype=torch.float64)
    >>> bad = lambda x: (t(x), t.log_abs_det_jacobian(x, t(x)).sum(1) - 1.0)
    >>> res = jacobite.check_logdet(bad, x)
    >>> res.diagnosis, round(res.parameter, 6)
    ('constant offset', -1.0)
    """
    x = _validate_x(x)
    d_rtol, d_atol = _TOLERANCES.get(x.dtype, (1e-4, 1e-3))
    rtol = d_rtol if rtol is None else tolerance(rtol, "rtol")
    atol = d_atol if atol is None else tolerance(atol, "atol")
    name, fwd = adapt(transform, kind)
    ladj = fwd(x)[1]
    claimed = ladj.detach().to(torch.float64)
    if claimed.shape != (x.shape[0],):
        raise ShapeError(f"the transform's log-det has shape {tuple(claimed.shape)} for a "
                         f"batch of {x.shape[0]}; return one value per sample, shape (B,)")

    exact = _exact_any_precision(transform, name, fwd, x)

    errors = (claimed - exact).abs()
    errors = torch.where(claimed == exact, torch.zeros_like(errors), errors)  # inf == inf
    tol = atol + rtol * exact.abs().nan_to_num(posinf=0.0)
    finite = errors.nan_to_num(nan=torch.inf)
    worst = int(finite.argmax())
    bad = tuple(int(i) for i in torch.nonzero(~(finite <= tol)).flatten())
    if bad:
        diagnosis, parameter = diagnose(claimed, exact, tol)
        if diagnosis == "ok":  # non-finite values fit no pattern
            diagnosis = "wrong"
    else:
        diagnosis, parameter = "ok", None
    return LogDetCheck(ok=not bad, worst=worst, error=float(errors[worst]), errors=errors,
                       claimed=claimed, exact=exact, diagnosis=diagnosis, kind=name, bad=bad,
                       parameter=parameter, rtol=rtol, atol=atol, fix=FIXES.get(diagnosis, ""))
