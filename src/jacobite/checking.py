"""``check``: compare the automatic-differentiation Jacobian with a numeric one — a gradcheck
for whole Jacobians."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from . import _validate, numeric
from .dense._engine import Problem
from .dense._trees import substitute
from .dense.jacobian import jacobian
from .errors import JacobianMismatchError
from .numeric._steps import Method

__all__ = ["CheckResult", "check"]


@dataclass(frozen=True)
class CheckResult:
    """Outcome of :func:`check`.

    ``ok`` is true when every entry agrees within ``atol + rtol·|numeric|`` or within the numeric
    method's own error estimate (times a safety factor). ``worst`` is the ``(row, column)`` of the
    flat ``(m, n)`` Jacobian where the disagreement, relative to its tolerance, is largest.
    """

    ok: bool
    max_abs_error: float
    max_rel_error: float
    worst: tuple[int, int]
    ad_value: float
    numeric_value: float
    numeric_error: float
    ad_jacobian: torch.Tensor
    numeric_jacobian: torch.Tensor
    nfev: int
    method: Method

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        r, c = self.worst
        verdict = "OK" if self.ok else "MISMATCH"
        return (f"{verdict}: worst entry J[{r}, {c}]: AD {self.ad_value:.12g} vs numeric "
                f"{self.numeric_value:.12g} (± {self.numeric_error:.2g}); max abs error "
                f"{self.max_abs_error:.3g}, max rel error {self.max_rel_error:.3g} "
                f"({self.method}, {self.nfev} calls)")


def check(f: Callable[..., Any], *args: Any, argnums: int | tuple[int, ...] = 0,
          method: Method = "richardson", rtol: float = 1e-6, atol: float = 1e-8,
          raise_on_failure: bool = False) -> CheckResult:
    """Compare ``jacobite.jacobian(f, *args)`` with a numeric Jacobian and report the worst entry.

    The AD Jacobian is computed in float64 (inputs are promoted); the numeric one uses
    :func:`jacobite.numeric.jacobian` with ``method`` ("richardson", "central", "forward",
    "backward" or "complex"), whose steps follow the size of the inputs (``sin`` at ``1e8`` is
    checked as reliably as at ``1``). With ``raise_on_failure=True`` a mismatch raises
    :class:`~jacobite.errors.JacobianMismatchError` carrying the report.

    >>> import torch, jacobite
    >>> res = jacobite.check(lambda x: torch.sin(x) * x, torch.tensor([0.3, 1.2]))
    >>> res.ok, res.max_abs_error < 1e-8
    (True, True)
    """
    rtol, atol = _validate.tolerance(rtol, "rtol"), _validate.tolerance(atol, "atol")
    raise_on_failure = _validate.boolean(raise_on_failure, "raise_on_failure")
    _validate.choice(method, "method", numeric.METHODS)
    p = Problem.build(f, args, argnums, False, check_finite=True)
    leaves64 = tuple(t.detach().to(torch.float64) for t in p.xin.leaves)
    full = substitute(args, p.positions, p.is_tuple, p.xin.spec, leaves64)

    def promoted(*a: Any) -> Any:
        out = f(*a)
        return torch.utils._pytree.tree_map(
            lambda t: t.to(torch.float64) if isinstance(t, torch.Tensor) and t.is_floating_point()
            else t, out)

    ad = jacobian(promoted, *full, argnums=argnums, flat=True).detach()
    sizes = [t.numel() for t in leaves64]

    def flat_f(v: torch.Tensor) -> torch.Tensor:
        parts = torch.split(v, sizes)
        leaves = [q.reshape(t.shape) for q, t in zip(parts, leaves64, strict=True)]
        a = substitute(args, p.positions, p.is_tuple, p.xin.spec, leaves)
        outs, _ = torch.utils._pytree.tree_flatten(promoted(*a))
        return torch.cat([o.reshape(-1) for o in outs])

    x0 = torch.cat([t.reshape(-1) for t in leaves64])
    with torch.no_grad():
        res = numeric.jacobian(flat_f, x0, method=method)
    num = torch.as_tensor(np.asarray(res.jacobian), dtype=torch.float64).reshape(ad.shape)
    est = torch.as_tensor(np.asarray(res.error), dtype=torch.float64).reshape(ad.shape)
    diff = (ad - num).abs()
    tol = torch.maximum(atol + rtol * num.abs(), 10 * est)
    ratio = diff / tol
    k = int(torch.argmax(ratio)) if ratio.numel() else 0
    r, c = divmod(k, ad.shape[1]) if ad.numel() else (0, 0)
    rel = diff / num.abs().clamp_min(np.finfo(np.float64).tiny)
    out = CheckResult(
        ok=bool((ratio <= 1).all()),
        max_abs_error=float(diff.max()) if diff.numel() else 0.0,
        max_rel_error=float(rel.max()) if rel.numel() else 0.0,
        worst=(r, c),
        ad_value=float(ad[r, c]) if ad.numel() else 0.0,
        numeric_value=float(num[r, c]) if num.numel() else 0.0,
        numeric_error=float(est[r, c]) if est.numel() else 0.0,
        ad_jacobian=ad, numeric_jacobian=num, nfev=int(res.nfev), method=method,
    )
    if raise_on_failure and not out.ok:
        raise JacobianMismatchError(
            f"{out}; if f is not differentiable there, move the point, otherwise look for a "
            "detach(), .item() or custom autograd.Function with a wrong backward in f")
    return out
