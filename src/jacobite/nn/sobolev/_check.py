"""Check supplied training data ``(x, y, dydx)`` against the function that should have made it.

:func:`check_sobolev_data` recomputes ``f(x)`` and, by finite differences with an error
estimate, ``∂f/∂x`` per sample; a sample is flagged where ``y`` or ``dydx`` disagrees beyond the
tolerance, and each flagged sample is diagnosed (flipped sign, constant factor, transpose,
exchanged columns or rows). :meth:`DataCheck.raise_if_bad` turns the findings into an
:class:`~jacobite.errors.InconsistentDataError` that names the fix.

>>> import torch
>>> from jacobite.nn import check_sobolev_data
>>> x = torch.linspace(0, 1, 4, dtype=torch.float64)[:, None]
>>> y, dydx = torch.sin(x), torch.cos(x)[:, :, None]
>>> check_sobolev_data(torch.sin, x, y, dydx).ok
True
>>> check_sobolev_data(torch.sin, x, y, -dydx).diagnosis
{0: 'sign', 1: 'sign', 2: 'sign', 3: 'sign'}
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ... import _validate
from ..._modules import keeps_state
from ...errors import InconsistentDataError, ShapeError
from ...numeric import METHODS
from ._diagnose import Diagnosis, diagnose_many
from .data import METHOD_CHOICES, Batch, Method, SobolevData, as_tensor, targets

__all__ = ["DataCheck", "Finding", "check_sobolev_data"]

#: a difference counts only beyond this many times the finite differences' error estimate
ERROR_FACTOR = 10.0

_FIX = {
    "value": "recompute y = f(x) for them, or check that y and x list the samples in the same "
             "order",
    "zeros": "mark unknown partials as NaN (missing) instead of 0, or recompute them",
    "sign": "negate them (dydx[i] = -dydx[i]; pass -dydx if every sample is affected)",
    "transposed": "transpose them (dydx[i] = dydx[i].T; pass dydx.transpose(-1, -2) if every "
                  "sample is affected): dydx[i, j, k] must be ∂y_j/∂x_k",
    "scaled": "divide them by the factor shown (the unit of x or y differs between the values "
              "and the derivatives)",
    "swapped_columns": "reorder the columns (inputs) with the index list shown: "
                       "dydx[i] = dydx[i][:, order]",
    "swapped_rows": "reorder the rows (outputs) with the index list shown: "
                    "dydx[i] = dydx[i][order, :]",
    "shuffled": "the rows of the data are not in the order of x (matches shown): reorder them "
                "so that row i belongs to x[i]",
    "mismatch": "recompute dydx for them (the check's .reference.dydx holds ∂f/∂x), or pass "
                "larger rtol/atol if the derivatives are known to be only that accurate",
}


@dataclass(frozen=True)
class Finding:
    """One problem with one sample: ``what`` is ``"y"`` or ``"dydx"``, ``kind`` one of
    ``"value"`` (for ``y``), ``"shuffled"`` (either), ``"zeros"``, ``"sign"``, ``"scaled"``,
    ``"transposed"``, ``"swapped_columns"``, ``"swapped_rows"``, ``"mismatch"``; ``error`` the
    worst absolute difference in it."""

    index: int
    what: str
    kind: str
    detail: str
    error: float


@dataclass(frozen=True, eq=False)
class DataCheck:
    """The verdict of :func:`check_sobolev_data`.

    Attributes
    ----------
    ok:
        ``True`` when every sample agrees with ``f``.
    bad:
        The indices of the flagged samples (a sorted ``int64`` tensor).
    findings:
        One :class:`Finding` per problem (a sample may have one for ``y`` and one for ``dydx``).
    max_error:
        The largest ``|dydx − ∂f/∂x|`` over all known partials (after undoing a transposed
        ``(B, n, m)`` layout).
    max_value_error:
        The largest ``|y − f(x)|``.
    ratio:
        Per sample, the worst difference divided by what is allowed (above 1: flagged; a
        ``dydx`` laid out ``(B, n, m)`` flags every sample, whatever its ratio).
    method:
        How the reference ``∂f/∂x`` was computed (``"numeric"`` or ``"ad"``).
    reference:
        The reference itself, a :class:`~jacobite.nn.SobolevData` of tensors: ``f(x)``,
        ``∂f/∂x`` and its error estimate (to replace the flagged samples with).

    >>> import torch
    >>> x = torch.tensor([[0.5], [1.0]], dtype=torch.float64)
    >>> res = check_sobolev_data(torch.exp, x, torch.exp(x), torch.exp(x)[:, :, None] * 2)
    >>> res.ok, res.bad.tolist(), res.diagnosis[0]
    (False, [0, 1], 'scaled')
    """

    ok: bool
    bad: torch.Tensor
    findings: tuple[Finding, ...]
    max_error: float
    max_value_error: float
    ratio: torch.Tensor
    method: str
    rtol: float
    atol: float
    reference: SobolevData

    @property
    def diagnosis(self) -> dict[int, str]:
        """Sample index → kind of problem (``"value+sign"`` where ``y`` and ``dydx`` both
        disagree)."""
        out: dict[int, str] = {}
        for f in self.findings:
            out[f.index] = f"{out[f.index]}+{f.kind}" if f.index in out else f.kind
        return dict(sorted(out.items()))

    def summary(self, limit: int = 10) -> str:
        """A readable report: one line per kind of problem, with the samples and the fix."""
        n = int(self.ratio.numel())
        tol = f"rtol={self.rtol:g}, atol={self.atol:g}"
        head = (f"max |dydx − ∂f/∂x| = {self.max_error:.3g}, "
                f"max |y − f(x)| = {self.max_value_error:.3g}")
        if self.ok:
            return f"all {n} samples agree with f ({tol}; {head})"
        lines = [f"{self.bad.numel()} of {n} samples disagree with f ({tol}; {head}):"]
        kinds: dict[str, list[Finding]] = {}
        for f in self.findings:
            kinds.setdefault(f.kind, []).append(f)
        for kind, group in kinds.items():
            idx = [f.index for f in group]
            shown = ", ".join(map(str, idx[:limit])) + (", ..." if len(idx) > limit else "")
            details = sorted({f.detail for f in group})
            detail = details[0] if len(details) == 1 else f"{details[0]}; ..."
            fix = "; then ".join(_FIX[k] for k in kind.split("+"))
            lines.append(f"  {kind} in {len(idx)} sample(s) [{shown}]: {detail}; {fix}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def raise_if_bad(self) -> DataCheck:
        """Raise :class:`~jacobite.errors.InconsistentDataError` (its message: the summary and
        the fixes) unless every sample agrees; returns the check itself otherwise.

        >>> import torch
        >>> x = torch.ones(2, 1, dtype=torch.float64)
        >>> res = check_sobolev_data(torch.sin, x, torch.sin(x), torch.cos(x)[:, :, None])
        >>> res.raise_if_bad().ok
        True
        """
        if not self.ok:
            raise InconsistentDataError(self.summary())
        return self


def _like(a: Any, ref: torch.Tensor, name: str, shape: str) -> torch.Tensor:
    """``a`` as a tensor shaped like ``ref`` where only size-1 dimensions differ."""
    t = as_tensor(a, name)
    core = [s for s in t.shape[1:] if s != 1]
    want = [s for s in ref.shape[1:] if s != 1]
    if t.ndim == 0 or t.shape[0] != ref.shape[0] or core != want:
        raise ShapeError(f"{name} must have shape {shape}, got {tuple(t.shape)}; pass one row "
                         f"per sample of x, laid out like the expected shape")
    return t.to(device=ref.device, dtype=ref.dtype).reshape(ref.shape)


@keeps_state
def check_sobolev_data(f: Callable[..., Any], x: Any, y: Any, dydx: Any, *, rtol: float = 1e-5,
                       atol: float = 1e-8, method: Method = "numeric", batched_model: bool = True,
                       numeric_method: str = "richardson") -> DataCheck:
    """Flag the samples whose supplied ``y`` or ``dydx`` disagree with ``f``, and say why.

    ``f``, ``x`` and ``batched_model`` are as in :func:`jacobite.nn.sobolev_data`; ``y``
    ``(B, m)`` or ``(B,)`` and ``dydx`` ``(B, m, n)`` (``(B, n)`` for ``(B,)`` y; size-1
    dimensions may be left out) are the data to check; NaN entries of ``dydx`` are missing
    partials and skipped. A ``dydx`` of shape ``(B, n, m)`` (with ``m ≠ n``) is read as
    transposed and every sample is flagged as such.

    The reference is ``f(x)`` and, with ``method="numeric"`` (default), finite differences
    with an error estimate ``e`` (:func:`jacobite.numeric.jacobian`, ``numeric_method``); an
    entry disagrees where ``|dydx − ∂f/∂x| > atol + rtol |∂f/∂x| + 10 e``, a value where
    ``|y − f(x)| > atol + rtol |f(x)|``. ``method="ad"`` or ``"auto"`` takes the exact AD
    Jacobian where ``f`` is torch code.

    Each flagged sample is diagnosed: ``"value"`` (``y`` is wrong), ``"zeros"`` (``dydx`` all
    zero: missing partials written as 0, not NaN), ``"sign"`` (``dydx ≈ −J``),
    ``"scaled"`` (``dydx ≈ c J``, e.g. ``c = π/180``: degrees against radians),
    ``"transposed"`` (``dydx ≈ Jᵀ``), ``"swapped_columns"`` / ``"swapped_rows"`` (inputs or
    outputs out of order), ``"shuffled"`` (``y[i]`` or ``dydx[i]`` belongs to another sample
    ``x[j]``) or ``"mismatch"`` (none of these).

    Finite differences cost tens of calls of ``f`` (on one sample each) per sample;
    ``method="ad"`` is much faster where ``f`` is torch code.

    >>> import torch
    >>> x = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
    >>> f = lambda v: torch.stack([v[:, 0] * v[:, 1], v[:, 0] + 2 * v[:, 1]], dim=1)
    >>> J = torch.tensor([[[2.0, 1.0], [1.0, 2.0]], [[4.0, 3.0], [1.0, 2.0]]], dtype=torch.float64)
    >>> bad = J.clone()
    >>> bad[1, 0, 0] = 5.0
    >>> res = check_sobolev_data(f, x, f(x), bad)
    >>> res.bad.tolist(), res.diagnosis
    ([1], {1: 'mismatch'})
    >>> res = check_sobolev_data(f, x, f(x), J.transpose(-1, -2))
    >>> res.diagnosis
    {1: 'transposed'}
    """
    _validate.callable_(f)
    rtol = _validate.tolerance(rtol, "rtol")
    atol = _validate.tolerance(atol, "atol")
    _validate.choice(method, "method", METHOD_CHOICES)
    batched = _validate.boolean(batched_model, "batched_model")
    _validate.choice(numeric_method, "numeric_method", METHODS)
    batch = Batch.of(x)
    ref = targets(f, batch, method, batched, numeric_method, None)
    B = batch.size
    yr = ref.y.reshape(B, -1)
    m, n = yr.shape[1], batch.t.shape[1]
    J = ref.dydx.reshape(B, m, n)
    E = torch.zeros_like(J) if ref.error is None else ref.error.reshape(B, m, n)
    ys = _like(y, yr, "y", f"{tuple(ref.y.shape)} like f(x)")
    D, transposed = _supplied(dydx, J, tuple(ref.dydx.shape))
    T = atol + rtol * J.abs() + ERROR_FACTOR * E
    known = ~torch.isnan(D)
    gap = torch.where(known, (D - J).abs(), 0).nan_to_num(nan=math.inf)
    dratio = (gap / T.clamp_min(torch.finfo(T.dtype).tiny)).amax(dim=(1, 2))
    dratio = torch.where((gap <= T).flatten(1).all(1), dratio.clamp_max(1.0), dratio)
    vgap = (ys - yr).abs().nan_to_num(nan=math.inf)
    vtol = atol + rtol * yr.abs()
    vratio = (vgap / vtol.clamp_min(torch.finfo(T.dtype).tiny)).amax(dim=1)
    vratio = torch.where((vgap <= vtol).all(1), vratio.clamp_max(1.0), vratio)
    vbad = ~(vgap <= vtol).all(1)
    dmis = ~(gap <= T).flatten(1).all(1)
    dbad = torch.ones_like(vbad) if transposed else dmis
    flagged = int((vbad | dbad).sum())
    which = dmis.nonzero().flatten()
    diags = dict(zip(which.tolist(), diagnose_many(D[which], J[which], T[which], known[which]),
                     strict=True))
    findings: list[Finding] = []
    v_l, d_l = vbad.tolist(), dbad.tolist()
    vworst, dworst = vgap.amax(1).tolist(), gap.flatten(1).amax(1).tolist()
    for i in (vbad | dbad).nonzero().flatten().tolist():
        if v_l[i]:
            j = _other_sample(ys[i], yr, vtol, i, flagged=flagged, missing=False)
            findings.append(Finding(i, "y", "value" if j is None else "shuffled",
                                    "y differs from f(x)" if j is None
                                    else f"y[{i}] ≈ f(x[{j}])", vworst[i]))
        if d_l[i]:
            finding = _dydx_finding(i, diags.get(i), dworst[i], transposed)
            j = _other_sample(D[i], J, T, i, flagged=flagged, missing=True) \
                if finding.kind == "mismatch" else None
            if j is not None:
                finding = Finding(i, "dydx", "shuffled", f"dydx[{i}] ≈ ∂f/∂x at x[{j}]",
                                  finding.error)
            findings.append(finding)
    bad = sorted({fi.index for fi in findings})
    return DataCheck(ok=not bad, bad=torch.tensor(bad, dtype=torch.int64),
                     findings=tuple(findings), max_error=float(gap.max()),
                     max_value_error=float(vgap.max()), ratio=torch.maximum(dratio, vratio).cpu(),
                     method=ref.method, rtol=rtol, atol=atol, reference=ref)


def _supplied(dydx: Any, J: torch.Tensor, shape: tuple[int, ...]) -> tuple[torch.Tensor, bool]:
    """The supplied Jacobians as ``(B, m, n)``, and whether they came as ``(B, n, m)``."""
    B, m, n = J.shape
    t = as_tensor(dydx, "dydx")
    if m > 1 and n > 1 and m != n and t.ndim == 3 and tuple(t.shape) == (B, n, m):
        return t.to(device=J.device, dtype=J.dtype).transpose(-1, -2), True
    layout = "(B, m, n): dydx[i, j, k] = ∂y_j/∂x_k" if len(shape) == 3 else \
        "(B, n): dydx[i, k] = ∂y/∂x_k"
    return _like(t, J, "dydx", f"{shape} {layout} at sample i"), False


#: the search for the sample a misplaced row belongs to compares it with every sample: done
#: while (flagged samples) x (entries of the batch) stays below this
SHUFFLE_SEARCH = 10**8


def _other_sample(v: torch.Tensor, ref: torch.Tensor, tol: torch.Tensor, i: int, *,
                  flagged: int, missing: bool) -> int | None:
    """A sample ``j ≠ i`` whose reference ``ref[j]`` matches ``v`` (NaN entries of ``v`` skipped
    where they mean ``missing``): the rows of the data are out of order."""
    known = ~torch.isnan(v) if missing else torch.ones_like(v, dtype=torch.bool)
    if flagged * ref.numel() > SHUFFLE_SEARCH or not bool(known.any()):
        return None
    hit = (((v - ref).abs() <= tol) | ~known).flatten(1).all(1)
    hit[i] = False
    js = hit.nonzero()
    return int(js[0]) if js.numel() else None


def _dydx_finding(i: int, d: Diagnosis | None, error: float, transposed: bool) -> Finding:
    """The finding for sample ``i``'s ``dydx``: ``d`` is ``None`` where it agrees once the
    transposed ``(B, n, m)`` layout is undone."""
    if d is None:
        return Finding(i, "dydx", "transposed", "dydx has shape (B, n, m) and holds (∂f/∂x)ᵀ",
                       error)
    detail = d.detail if d.order is None else f"{d.detail}, order = {list(d.order)}"
    kind = f"transposed+{d.kind}" if transposed else d.kind
    return Finding(i, "dydx", kind, detail, error)
