"""The model of :func:`curve_fit` as the solver sees it: written in torch (exact Jacobians) or in
NumPy (Jacobians by finite differences), with its last evaluation remembered.

:class:`Model` calls ``f(xdata, *p0)`` once with parameters that autograd tracks. A tensor that
depends on them makes a torch model: ``xdata`` is passed as a float64 tensor, each parameter as
a 0-d tensor, and the solver differentiates it exactly. Where that call fails, gives anything
else (NumPy functions turn tensors into arrays and refuse tracked ones), or reads a parameter's
value into Python on the way (``math.exp(a)``, ``a.item()``: AD would not see it), ``f`` is a
NumPy model:
it is called with NumPy in (``xdata`` as a float64 array, each parameter a NumPy float, complex
for a complex step) and gives NumPy out, and :func:`least_squares` differentiates the residuals
by the difference scheme :func:`curve_fit` names (:mod:`._fd`).

Each of ``f`` and a user ``jac`` remembers its last plain (untracked, real) evaluation, so
neither is called twice in a row at the same parameters.

>>> import numpy as np, torch
>>> m = Model(lambda x, a, b: a * np.exp(b * x), np.array([0.0, 1.0]), np.array([2.0, 0.5]))
>>> m.kind, m.shape, m(torch.tensor([1.0, 0.0], dtype=torch.float64)).tolist()
('numpy', (2,), [1.0, 1.0])
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

from ..._validate import tracked
from ...errors import OutputTypeError, ShapeError
from .._scipy import issparse

__all__ = ["NUMERIC", "Model", "as_array"]

#: The finite-difference schemes for NumPy models (SciPy's names).
NUMERIC = ("2-point", "3-point", "cs")
_CALL_ERRORS = (AttributeError, IndexError, RuntimeError, TypeError, ValueError)


def _failed(exc: Exception, n: int) -> ShapeError:
    return ShapeError(f"f(xdata, *p) failed with {type(exc).__name__}: {exc}; check that p0 has "
                      f"one entry per model parameter ({n} given) and that xdata is what f "
                      "expects")


def as_array(out: Any, what: str) -> np.ndarray:
    """``out`` as a float64 array (complex128 where it is complex: a complex step)."""
    if isinstance(out, torch.Tensor):
        out = out.detach().cpu()
        return out.to(torch.complex128 if out.is_complex() else torch.float64).numpy()
    if issparse(out):
        return np.asarray(out.toarray(), dtype=np.float64)
    try:
        a = np.asarray(out)
        return a.astype(np.complex128 if np.iscomplexobj(a) else np.float64)
    except (TypeError, ValueError) as exc:
        raise OutputTypeError(f"{what} must return an array of numbers, got "
                              f"{type(out).__name__}") from exc


class _Escapes(TorchFunctionMode):
    """Notes whether a value that depends on the parameters leaves torch as a Python or NumPy
    number (``float(a)``, ``math.exp(a)``, ``a.item()``, ``np.exp(a)``): AD cannot follow it, so
    such a model is differentiated by differences instead."""

    _READS = frozenset({"__float__", "__int__", "__index__", "__complex__", "item", "tolist",
                        "numpy", "__array__"})

    def __init__(self) -> None:
        super().__init__()
        self.escaped = False

    def __torch_function__(self, func: Any, types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        if getattr(func, "__name__", "") in self._READS and args and \
                isinstance(args[0], torch.Tensor) and args[0].requires_grad:
            self.escaped = True
        return func(*args, **(kwargs or {}))


class Model:
    """``f(xdata, *p)`` on a flat float64 parameter vector, torch or NumPy (see the module doc).

    ``shape`` is the shape of ``f``'s output at ``p0``; ``kind`` is ``"torch"`` or ``"numpy"``.
    """

    def __init__(self, f: Callable[..., Any], xdata: Any, p0: np.ndarray) -> None:
        self.f, self.n = f, p0.size
        self.x_np = xdata
        self.x_t = torch.as_tensor(xdata) if isinstance(xdata, np.ndarray) else xdata
        self._last: tuple[Any, Any] | None = None
        self._last_jac: tuple[Any, Any] | None = None
        pt = torch.tensor(p0, dtype=torch.float64, requires_grad=True)
        spy = _Escapes()
        try:
            with torch.enable_grad(), spy, warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Converting a tensor with requires_grad=True")
                out = f(self.x_t, *pt.unbind())
            torch_error: Exception | None = None
        except _CALL_ERRORS as exc:
            out, torch_error = None, exc
        self.kind: Literal["torch", "numpy"] = "torch"
        if isinstance(out, torch.Tensor) and out.requires_grad and not spy.escaped:
            value = out.detach()
        else:
            try:
                value = torch.as_tensor(as_array(f(self.x_np, *p0.copy()), "f"))
                self.kind = "numpy"
            except _CALL_ERRORS as exc:
                if isinstance(out, torch.Tensor):  # torch only: AD sees what it can
                    value = out.detach()
                else:
                    raise _failed(torch_error or exc, self.n) from exc
        self.shape = tuple(value.shape)
        self._last = (torch.as_tensor(p0).clone(), value.to(torch.float64))

    # -- evaluations --------------------------------------------------------------------------
    def __call__(self, p: torch.Tensor) -> torch.Tensor:
        """``f(xdata, *p)`` as a float64 tensor (differentiable in ``p`` for a torch model)."""
        plain = not tracked(p) and not p.is_complex()  # complex: a complex-step probe
        if plain and self._last is not None and torch.equal(self._last[0], p):
            return self._last[1]
        try:
            if self.kind == "torch":
                out = self.f(self.x_t, *p.unbind())
                if not isinstance(out, torch.Tensor):
                    out = torch.as_tensor(as_array(out, "f"))
            else:
                out = torch.as_tensor(as_array(self.f(self.x_np, *p.detach().numpy()), "f"))
        except _CALL_ERRORS as exc:
            raise _failed(exc, self.n) from exc
        if out.dtype not in (torch.float64, torch.complex128):
            out = out.to(torch.complex128 if out.is_complex() else torch.float64)
        if plain:
            self._last = (p.detach().clone(), out.detach())
        return out

    def user_jacobian(self, jac: Callable[..., Any], p: torch.Tensor,
                      transposed: bool = False) -> np.ndarray:
        """``jac(xdata, *p)`` (torch or NumPy arguments, as ``f`` takes them) as an ``m × n``
        float64 array (``transposed``: ``jac`` gives it ``n × m``)."""
        if self._last_jac is not None and torch.equal(self._last_jac[0], p):
            return self._last_jac[1]
        args = p.unbind() if self.kind == "torch" else tuple(p.detach().numpy())
        J = as_array(jac(self.x_t if self.kind == "torch" else self.x_np, *args), "jac")
        m = int(np.prod(self.shape))
        if J.size != m * self.n:
            raise ShapeError(f"jac returned {J.size} values; expected an ({m}, {self.n}) "
                             "matrix: one row per model output, one column per parameter")
        J = J.reshape(self.n, m).T if transposed else J.reshape(m, self.n)
        self._last_jac = (p.detach().clone(), J)
        return J
