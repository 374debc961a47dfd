"""Training targets for Sobolev (Jacobian-enhanced) training: values and per-sample Jacobians.

:func:`sobolev_data` evaluates a function on a batch of inputs and returns the values ``y`` and
the per-sample Jacobians ``dydx`` that :func:`jacobite.nn.sobolev_loss` trains on: exactly by
automatic differentiation where ``f`` is written in torch, by finite differences with an
error estimate (:func:`jacobite.numeric.jacobian`) where it is a black box.
:func:`jacobite.nn.check_sobolev_data` checks data that came from elsewhere.

>>> import torch
>>> from jacobite.nn import sobolev_data
>>> x = torch.tensor([[0.0, 1.0], [2.0, 3.0]], dtype=torch.float64)
>>> d = sobolev_data(lambda v: v[:, 0] * v[:, 1], x)
>>> d.y.tolist(), d.dydx.tolist(), d.method
([0.0, 6.0], [[1.0, 0.0], [3.0, 2.0]], 'ad')
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from ... import _validate
from ..._modules import keeps_state
from ...dense import batch_jacobian
from ...dense._errors import check_module_state
from ...errors import (
    ArgumentTypeError,
    DtypeError,
    NonFiniteInputError,
    OutputTypeError,
    ShapeError,
    UnsupportedOperationError,
)
from ...numeric import METHODS
from ...numeric import jacobian as numeric_jacobian

__all__ = ["METHOD_CHOICES", "SobolevData", "sobolev_data"]

_log = logging.getLogger(__name__)

#: how :func:`sobolev_data` differentiates: ``"auto"`` (AD where autograd can follow ``f``,
#: else finite differences), ``"ad"`` (exact, torch ``f`` only), ``"numeric"`` (black box)
METHOD_CHOICES = ("auto", "ad", "numeric")
Method = Literal["auto", "ad", "numeric"]


@dataclass(frozen=True, eq=False)
class SobolevData:
    """Values and per-sample Jacobians of a batch, ready to train on (all detached).

    Attributes
    ----------
    y:
        ``f(x)``: shape ``(B, m)``, or ``(B,)`` where ``f`` gives one number per sample.
    dydx:
        ``∂y/∂x`` per sample: ``(B, m, n)``, or ``(B, n)`` where ``y`` is ``(B,)`` (``n = 1``
        where ``x`` is ``(B,)``).
    error:
        Entrywise estimate of ``|dydx − true Jacobian|`` (same shape as ``dydx``) where finite
        differences gave ``dydx``; ``None`` for exact (AD) Jacobians.
    method:
        ``"ad"`` or ``"numeric"``: how ``dydx`` was computed.

    All three arrays are torch tensors, or NumPy arrays where ``x`` was NumPy-like.

    >>> import numpy as np
    >>> d = sobolev_data(lambda v: np.sin(v), np.zeros((2, 1)), method="numeric")
    >>> d.dydx.shape, d.method, bool(d.error.max() < 1e-10)
    ((2, 1, 1), 'numeric', True)
    """

    y: Any
    dydx: Any
    error: Any
    method: str


@keeps_state
def sobolev_data(f: Callable[..., Any], x: Any, *, method: Method = "auto",
                 batched_model: bool = True, numeric_method: str = "richardson",
                 step: Any = None) -> SobolevData:
    """Values ``f(x)`` and per-sample Jacobians ``∂f/∂x`` of a batch: targets for Sobolev training.

    Parameters
    ----------
    f:
        With ``batched_model=True`` (default) ``f`` maps a batch ``(B, n)`` to ``(B, m)`` or
        ``(B,)``, one row per sample (an ``nn.Module``, a torch function, or a NumPy black box).
        With ``batched_model=False`` it maps ONE sample ``(n,)`` to ``(m,)`` or a number.
        Samples are differentiated one at a time, so ``f`` may be anything that treats them
        independently.
    x:
        The inputs, ``(B, n)`` or ``(B,)`` (``n = 1``): a tensor, or a NumPy array / list
        (computed in float64, results as NumPy arrays).
    method:
        * ``"auto"`` (default): ``"ad"`` where autograd can follow ``f``, else ``"numeric"``.
          ``f`` is first called on one sample with gradients on; a call that fails, a
          non-tensor output, an output that does not depend on ``x`` through autograd
          (``.detach()``, ``torch.no_grad()``, a NumPy round trip), and an
          :class:`~jacobite.errors.UnsupportedOperationError` from the AD Jacobian (``.item()``,
          ``.numpy()``) each send it to finite differences; the reason is logged at DEBUG on
          the logger ``jacobite.nn.sobolev.data``.
        * ``"ad"``: exact, by :func:`jacobite.batch_jacobian`; ``f`` must be torch code.
        * ``"numeric"``: :func:`jacobite.numeric.jacobian` per sample, with an error estimate;
          ``f`` may be any black box (it receives NumPy arrays where ``x`` is NumPy, tensors
          under ``torch.no_grad()`` where ``x`` is a tensor).
    batched_model:
        Whether ``f`` takes a batch (``True``, the default here: a training target is a
        function of a batch; AD passes each sample as a batch of one) or one sample
        (``False``), as in :func:`jacobite.batch_jacobian`.
    numeric_method, step:
        Passed to :func:`jacobite.numeric.jacobian` as ``method`` and ``step`` for finite
        differences; the default ``"richardson"`` is its most accurate method.

    Returns
    -------
    SobolevData
        ``y``, ``dydx``, ``error`` (``None`` for AD) and the ``method`` used.

    Raises
    ------
    ArgumentTypeError
        ``f`` is not callable, or ``x`` is not array-like.
    ShapeError
        ``x`` is not ``(B, n)`` or ``(B,)``, the batch is empty, or ``f``'s output is not
        ``(B, m)`` / ``(B,)`` (one sample: ``(m,)`` / a number).
    NonFiniteInputError
        ``x`` holds NaN or Inf.

    >>> import torch
    >>> x = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    >>> d = sobolev_data(lambda v: torch.stack([v[0] * v[1], v[0] + v[1]]), x,
    ...                  batched_model=False)
    >>> d.dydx.tolist()
    [[[2.0, 1.0], [1.0, 1.0]]]
    """
    _validate.callable_(f)
    method = _validate.choice(method, "method", METHOD_CHOICES)  # type: ignore[assignment]
    batched = _validate.boolean(batched_model, "batched_model")
    _validate.choice(numeric_method, "numeric_method", METHODS)
    batch = Batch.of(x)
    return batch.export(targets(f, batch, method, batched, numeric_method, step))


def targets(f: Callable[..., Any], batch: Batch, method: str, batched: bool,
            numeric_method: str, step: Any) -> SobolevData:
    """:func:`sobolev_data` on a checked batch, as tensors (``batch.export`` converts)."""
    check_module_state(f, per_sample=True)
    if method == "numeric":
        return batch.numeric(f, batched, numeric_method, step)
    if method == "auto":
        reason = batch.why_not_ad(f, batched)
        if reason is None:
            try:
                return batch.ad(f, batched)
            except UnsupportedOperationError as exc:
                reason = str(exc).split(";")[0]
        _log.debug("sobolev_data: %s; using finite differences (numeric_method=%r)", reason,
                   numeric_method)
        return batch.numeric(f, batched, numeric_method, step)
    return batch.ad(f, batched)


@dataclass(frozen=True)
class Batch:
    """``x`` in normal form: ``t`` a detached ``(B, n)`` tensor, ``raw`` the caller's ``x``
    (NumPy in float64 where it was NumPy-like), ``vector`` where ``x`` was ``(B,)``."""

    t: torch.Tensor
    raw: Any
    vector: bool
    numpy: bool

    @classmethod
    def of(cls, x: Any, name: str = "x") -> Batch:
        numpy = not isinstance(x, torch.Tensor)
        if not numpy and not x.is_floating_point():
            raise DtypeError(f"{name} has dtype {x.dtype}; derivatives need real floating-point "
                             f"inputs: pass {name}.double()")
        t = as_tensor(x, name)
        if t.ndim not in (1, 2):
            raise ShapeError(f"{name} must be a batch of shape (B, n) or (B,), got shape "
                             f"{tuple(t.shape)}; flatten each sample: {name}.reshape(B, -1)")
        if t.shape[0] == 0:
            raise ShapeError(f"{name} is an empty batch (B = 0); pass at least one sample")
        if not _validate.all_finite(t):
            raise NonFiniteInputError(f"{name} holds NaN or Inf; drop or fix those samples "
                                      "before computing training targets")
        raw = t.numpy() if numpy else t
        return cls(t if t.ndim == 2 else t[:, None], raw, t.ndim == 1, numpy)

    @property
    def size(self) -> int:
        return int(self.t.shape[0])

    def whole(self, tensor: bool) -> Any:
        """The batch as ``f`` sees it: the caller's form, or a tensor for AD."""
        if not tensor:
            return self.raw
        return self.t[:, 0] if self.vector else self.t

    def sample(self, i: int, tensor: bool) -> Any:
        """Sample ``i`` as ``f`` sees it: ``(n,)``, or 0-d where ``x`` was ``(B,)``."""
        return self.whole(tensor)[i]

    def values(self, f: Callable[..., Any], batched: bool, tensor: bool) -> torch.Tensor:
        """``f(x)`` as a detached tensor ``(B, m)`` or ``(B,)``, shape checked."""
        with torch.no_grad():
            if batched:
                y = output(f(self.whole(tensor)), "f(x)")
                check_output(y, self.size)
            else:
                ys = [output(f(self.sample(i, tensor)), "f(x[i])") for i in range(self.size)]
                check_sample_outputs(ys)
                y = torch.stack(ys)
        return y.detach()

    def why_not_ad(self, f: Callable[..., Any], batched: bool) -> str | None:
        """``None`` where autograd follows ``f`` on the first sample, else the reason why not."""
        leaf = self.t[:1].clone().requires_grad_(True)
        arg = (leaf if not self.vector else leaf[:, 0]) if batched else \
            (leaf[0] if not self.vector else leaf[0, 0])
        try:
            with torch.enable_grad():
                out = f(arg)
        except Exception as exc:  # any failure here means: not code autograd can follow
            return f"f fails on a tensor that requires grad ({type(exc).__name__}: {exc})"
        if not isinstance(out, torch.Tensor):
            return f"f returns {type(out).__name__}, not a tensor"
        if not (out.is_floating_point() and out.requires_grad):
            return "f's output is not connected to x by autograd"
        if torch.autograd.grad(out.sum(), leaf, allow_unused=True)[0] is None:
            return "f's output does not depend on x through autograd"
        return None

    def ad(self, f: Callable[..., Any], batched: bool) -> SobolevData:
        y = self.values(f, batched, tensor=True)
        g: Callable[..., Any] = f
        if self.vector:
            g = (lambda v: f(v[:, 0])) if batched else (lambda v: f(v[0]))
        J = batch_jacobian(g, self.t, batched_model=batched).detach()
        return SobolevData(y, J.reshape(jacobian_shape(y.shape, self.t.shape[1])), None, "ad")

    def numeric(self, f: Callable[..., Any], batched: bool, numeric_method: str,
                step: Any) -> SobolevData:
        y = self.values(f, batched, tensor=False)

        def one(s: Any) -> Any:
            if not batched:
                return f(s)
            out = f(s[None])
            return out[0]

        shape = jacobian_shape(y.shape, self.t.shape[1])[1:]
        jac, err = [], []
        for i in range(self.size):
            res = numeric_jacobian(one, self.sample(i, False), numeric_method,  # type: ignore[arg-type]
                                   step=step)
            jac.append(as_tensor(res.jacobian, "the numeric Jacobian").reshape(shape))
            err.append(as_tensor(res.error, "the error estimate").reshape(shape))
        dev = y.device
        J = torch.stack(jac).to(device=dev, dtype=y.dtype)
        return SobolevData(y, J, torch.stack(err).to(device=dev, dtype=y.dtype), "numeric")

    def export(self, d: SobolevData) -> SobolevData:
        """``d`` as the caller passed ``x``: NumPy arrays, or tensors on ``x``'s device."""
        err = d.error
        if self.numpy:
            return SobolevData(d.y.cpu().numpy(), d.dydx.cpu().numpy(),
                               None if err is None else err.cpu().numpy(), d.method)
        dev = self.t.device
        return SobolevData(d.y.to(dev), d.dydx.to(dev), None if err is None else err.to(dev),
                           d.method)


def as_tensor(a: Any, name: str) -> torch.Tensor:
    """``a`` as a detached tensor (NumPy-like input in float64); a typed error names the fix."""
    if isinstance(a, torch.Tensor):
        return a.detach()
    if isinstance(a, (str, bytes)) or a is None:
        raise ArgumentTypeError(f"{name} must be a tensor or an array of numbers, got "
                                f"{type(a).__name__}; pass e.g. torch.tensor(...)")
    try:
        arr = np.asarray(a)
    except Exception as exc:  # ragged lists and the like
        raise ArgumentTypeError(f"{name} must be a tensor or an array of numbers, got "
                                f"{type(a).__name__}; pass e.g. torch.tensor(...)") from exc
    if arr.dtype.kind not in "biuf":
        raise ArgumentTypeError(f"{name} must be a tensor or an array of real numbers, got "
                                f"{type(a).__name__} of dtype {arr.dtype}; pass e.g. "
                                "torch.tensor(...) with float64 entries")
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float64))


def output(out: Any, what: str) -> torch.Tensor:
    """An output of ``f`` as a detached tensor, or :class:`OutputTypeError` naming the fix."""
    if isinstance(out, torch.Tensor):
        if not (out.is_floating_point() or out.dtype in (torch.int32, torch.int64)):
            raise OutputTypeError(f"{what} has dtype {out.dtype}; f must return real numbers "
                                  "(convert with .double())")
        return out.detach() if out.is_floating_point() else out.detach().double()
    try:
        return as_tensor(out, what)
    except ArgumentTypeError as exc:
        raise OutputTypeError(f"{what} is a {type(out).__name__}; f must return a tensor or a "
                              "NumPy array of numbers") from exc


def check_output(y: torch.Tensor, batch: int) -> None:
    if y.ndim not in (1, 2) or y.shape[0] != batch:
        raise ShapeError(f"f must map a batch of {batch} samples to shape ({batch}, m) or "
                         f"({batch},), got {tuple(y.shape)}; flatten each sample's output "
                         "(reshape(B, -1)), or pass batched_model=False if f maps one sample")


def check_sample_outputs(ys: list[torch.Tensor]) -> None:
    for i, y in enumerate(ys):
        if y.ndim > 1:
            raise ShapeError(f"with batched_model=False f must map one sample to shape (m,) "
                             f"or to a number, got {tuple(y.shape)}; flatten its output "
                             "(reshape(-1))")
        if y.shape != ys[0].shape:
            raise ShapeError(f"f(x[{i}]) has shape {tuple(y.shape)} but f(x[0]) has "
                             f"{tuple(ys[0].shape)}; f must give every sample the same shape")


def jacobian_shape(y_shape: torch.Size | tuple[int, ...], n: int) -> tuple[int, ...]:
    """``(B, m, n)`` for ``y`` of shape ``(B, m)``, ``(B, n)`` for ``y`` of shape ``(B,)``."""
    return (*tuple(y_shape), n)
