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
from .errors import JacobianMismatchError, UnsupportedOperationError
from .numeric._steps import Method

__all__ = ["CheckResult", "check"]


#: the numeric error estimate is multiplied by this before it serves as a tolerance ...
ESTIMATE_SAFETY = 10.0
#: ... and an entry may lean on it only while it stays below this fraction of ``max |J|``
LOOSE = 1e-2


@dataclass(frozen=True)
class CheckResult:
    """Outcome of :func:`check`: OK, MISMATCH or INCONCLUSIVE.

    An entry *agrees* when it is within ``atol + rtol·|numeric|``, or within
    ``ESTIMATE_SAFETY`` times the numeric method's own error estimate while that tolerance is
    at most ``atol + LOOSE·max|J|`` (one percent of the Jacobian's largest entry). An entry
    outside both tolerances is a *mismatch*; an entry that only a looser estimate would cover
    is *inconclusive*: the numeric Jacobian is too inaccurate there (f noisy or rough at the
    point, or the method too coarse) to confirm or refute AD, so a difference of the size of
    ``J`` cannot pass. ``ok`` is true only when every entry agrees; ``inconclusive`` is true
    when none is a mismatch but some are inconclusive. ``worst`` is the ``(row, column)`` of
    the flat ``(m, n)`` Jacobian where the disagreement, relative to its tolerance, is
    largest.
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
    inconclusive: bool = False

    def __bool__(self) -> bool:
        return self.ok

    @property
    def verdict(self) -> str:
        """``"OK"``, ``"MISMATCH"`` or ``"INCONCLUSIVE"``."""
        return "OK" if self.ok else "INCONCLUSIVE" if self.inconclusive else "MISMATCH"

    def __str__(self) -> str:
        r, c = self.worst
        verdict = self.verdict
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
    :class:`~jacobite.errors.JacobianMismatchError` carrying the report (an inconclusive
    check raises it too: it vouches for nothing). See :class:`CheckResult` for the verdicts.

    ``f`` must be deterministic: it is evaluated twice at the point first, and a function
    whose two values differ (``torch.rand``, Dropout in training mode, an unseeded NumPy
    generator) is refused with :class:`~jacobite.errors.UnsupportedOperationError`, because
    its numeric Jacobian measures the draws, not a derivative.

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
        _deterministic(flat_f, x0, p)
        res = numeric.jacobian(flat_f, x0, method=method)
    num = torch.as_tensor(np.asarray(res.jacobian), dtype=torch.float64).reshape(ad.shape)
    est = torch.as_tensor(np.asarray(res.error), dtype=torch.float64).reshape(ad.shape)
    diff = (ad - num).abs()
    strict = atol + rtol * num.abs()
    size = float(torch.maximum(num.abs(), ad.abs()).max()) if num.numel() else 0.0
    loose = ESTIMATE_SAFETY * est > atol + LOOSE * size
    tol = torch.maximum(strict, ESTIMATE_SAFETY * est)
    ratio = diff / tol
    agree = (diff <= strict) | ((ratio <= 1) & ~loose)
    k = int(torch.argmax(ratio)) if ratio.numel() else 0
    r, c = divmod(k, ad.shape[1]) if ad.numel() else (0, 0)
    rel = diff / num.abs().clamp_min(np.finfo(np.float64).tiny)
    out = CheckResult(
        ok=bool(agree.all()),
        inconclusive=bool((ratio <= 1).all() and not agree.all()),
        max_abs_error=float(diff.max()) if diff.numel() else 0.0,
        max_rel_error=float(rel.max()) if rel.numel() else 0.0,
        worst=(r, c),
        ad_value=float(ad[r, c]) if ad.numel() else 0.0,
        numeric_value=float(num[r, c]) if num.numel() else 0.0,
        numeric_error=float(est[r, c]) if est.numel() else 0.0,
        ad_jacobian=ad, numeric_jacobian=num, nfev=int(res.nfev), method=method,
    )
    if raise_on_failure and out.inconclusive:
        raise JacobianMismatchError(
            f"{out}; the numeric error estimate exceeds {LOOSE:.0%} of |J|, so the check can "
            "neither confirm nor refute AD: f is noisy or rough at this point; use "
            "method='richardson' (or 'complex' for an analytic f), or move the point")
    if raise_on_failure and not out.ok:
        raise JacobianMismatchError(
            f"{out}; if f is not differentiable there, move the point, otherwise look for a "
            "detach(), .item() or custom autograd.Function with a wrong backward in f")
    return out


#: two evaluations of f at the same point may differ by this much relative to |f| (the
#: rounding of nondeterministic parallel reductions) before f counts as random
REPEAT_RTOL = 1e-8
#: evaluations compared when f draws random numbers
REPEATS_IF_RANDOM = 16


def _deterministic(flat_f: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor,
                   p: Problem) -> None:
    """Refuse an ``f`` whose values at ``x0`` differ: its numeric Jacobian would measure
    the random draws (``v + torch.rand_like(v)`` once passed with an error of 4). Two
    evaluations decide, unless f draws random numbers (the dense probe sees the draw): then up
    to ``REPEATS_IF_RANDOM``, since a few draws can coincide (Dropout on three entries repeats
    its mask one time in eight) while a generator seeded inside f always repeats."""
    try:
        random = p.probe().draws_random
    except Exception:  # the probe is only a hint
        random = False
    y1 = flat_f(x0)
    bound = REPEAT_RTOL * float(y1.abs().max()) if y1.numel() else 0.0
    gap = 0.0
    for _ in range(REPEATS_IF_RANDOM - 1 if random else 1):
        y2 = flat_f(x0)
        if y1.shape != y2.shape:
            gap = float("inf")
        else:
            gap = float((y1 - y2).abs().max()) if y1.numel() else 0.0
        if not gap <= bound:
            break
    if not gap <= bound:
        why = "draws random numbers" if random else "is not deterministic"
        raise UnsupportedOperationError(
            f"f {why}: two evaluations at the same point differ by {gap:.3g}, so a numeric "
            "Jacobian measures the draws, not a derivative; seed the generator inside f "
            "(torch.manual_seed(0) at its start, or a torch.Generator), put Dropout and other "
            "random layers in eval() mode, or pass the noise as an extra argument")
