"""Adapter between a black-box ``f`` (NumPy or torch) and the float64 numerics.

The difference schemes work on a flat float64 vector ``x`` of length ``n`` and flat float64
outputs of length ``m``. :class:`Problem` validates the user's input, evaluates ``f`` at
perturbed points (in the user's world: NumPy arrays or tensors of ``x``'s dtype and device),
counts the calls, and wraps the final arrays back into the user's world.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .. import _validate
from ..errors import (
    ArgumentTypeError,
    DtypeError,
    JacobiteWarning,
    NonFiniteInputError,
    OutputTypeError,
    ShapeError,
    UnsupportedOperationError,
)

__all__ = ["Problem"]

_COMPLEX_OF = {torch.float32: torch.complex64, torch.float64: torch.complex128}


def _flat_index(k: int, shape: tuple[int, ...]) -> tuple[int, ...] | int:
    return tuple(int(i) for i in np.unravel_index(k, shape)) if shape else k


class Problem:
    """``f``, the point ``x`` and the bookkeeping shared by every method.

    >>> import numpy as np
    >>> p = Problem(np.sin, [0.0, 1.0], (), None, method="central")
    >>> p.n, p.m, p.nfev, p.out_shape
    (2, 2, 1, (2,))
    """

    dtype: torch.dtype
    device: torch.device | None

    def __init__(self, f: Callable[..., Any], x: Any, args: tuple, kwargs: dict | None,
                 *, method: str) -> None:
        self.f = _validate.callable_(f, "f")
        if not isinstance(args, (tuple, list)):
            raise ArgumentTypeError(f"args must be a tuple of extra positional arguments for "
                                    f"f, got {type(args).__name__}; e.g. args=(2.0,)")
        if kwargs is not None and not isinstance(kwargs, dict):
            raise ArgumentTypeError(f"kwargs must be a dict of keyword arguments for f, got "
                                    f"{type(kwargs).__name__}; e.g. kwargs={{'scale': 2.0}}")
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        self.nfev = 0
        if isinstance(x, torch.Tensor):
            self._init_torch(x, method)
        else:
            self._init_numpy(x)
        if not np.all(np.isfinite(self.x)):
            bad = _flat_index(int(np.flatnonzero(~np.isfinite(self.x))[0]), self.in_shape)
            raise NonFiniteInputError(
                f"x contains NaN or Inf (first at index {bad}); a Jacobian needs a finite point: "
                "replace the non-finite entries of x"
            )
        if self.backend == "torch" and method != "complex" and self.dtype != torch.float64:
            e = self.in_eps
            warnings.warn(
                f"finite differences in {self.dtype} lose most digits (about {e ** 0.5:.0e} "
                f"relative for method='forward', {e ** (2 / 3):.0e} for 'central'); "
                "pass x.double() for float64 accuracy",
                JacobiteWarning,
                stacklevel=3,
            )
        self.n = self.x.size
        self.f0, self.out_shape, self.out_eps, self.out_torch_dtype = self._base_evaluation()
        self.m = self.f0.size
        self.eps = max(self.in_eps, self.out_eps)

    # ------------------------------------------------------------------ inputs
    def _init_torch(self, x: torch.Tensor, method: str) -> None:
        self.backend = "torch"
        if x.is_complex():
            raise DtypeError(
                f"x is a complex tensor ({x.dtype}); jacobite.numeric differentiates real inputs: "
                "pass the real and imaginary parts as one real tensor, "
                "e.g. torch.view_as_real(x)"
            )
        if not x.is_floating_point():
            raise DtypeError(
                f"x has dtype {x.dtype}, which cannot be differentiated; "
                "convert it to floating point first, e.g. x.double()"
            )
        if x.device.type == "meta":
            raise UnsupportedOperationError(
                "x is a meta tensor, which has a shape but no values; finite differences need "
                "values: pass x on a real device (e.g. torch.zeros_like(x, device='cpu')), or "
                "use jacobite.jacobian(f, x), which works out shapes on meta tensors"
            )
        self.dtype = x.dtype
        self.device = x.device
        self.in_shape = tuple(x.shape)
        self.in_eps = float(torch.finfo(x.dtype).eps)
        self.x = x.detach().to("cpu", torch.float64).reshape(-1).numpy().copy()

    def _init_numpy(self, x: Any) -> None:
        self.backend = "numpy"
        try:
            arr = np.asarray(x)
        except Exception as exc:  # ragged lists and the like
            raise DtypeError(
                f"cannot read x ({type(x).__name__}) as a numeric array: {exc}; "
                "pass a NumPy array, a list of numbers or a float"
            ) from exc
        if arr.dtype.kind == "c":
            raise DtypeError(
                "x is complex; jacobite.numeric differentiates real inputs: pass the real and "
                "imaginary parts as one real array, e.g. np.concatenate([x.real, x.imag])"
            )
        if arr.dtype.kind not in "iuf":
            raise DtypeError(
                f"x has dtype {arr.dtype}, which is not a real number type; "
                "pass real numbers, e.g. np.asarray(x, dtype=float)"
            )
        self.dtype = torch.float64  # the trial points' precision (NumPy float64)
        self.device = None
        self.in_shape = tuple(arr.shape)
        self.in_eps = float(np.finfo(np.float64).eps)
        self.x = arr.astype(np.float64).reshape(-1).copy()

    # ----------------------------------------------------------- evaluation
    def _wrap_point(self, flat: np.ndarray) -> Any:
        if self.backend == "torch":
            t = torch.from_numpy(np.array(flat).reshape(self.in_shape))
            dt = self.dtype if not np.iscomplexobj(flat) else _COMPLEX_OF[self.dtype]
            return t.to(device=self.device, dtype=dt)
        return np.array(flat).reshape(self.in_shape)

    def _call(self, point: Any) -> Any:
        self.nfev += 1
        if self.backend == "torch":
            with torch.no_grad():
                return self.f(point, *self.args, **self.kwargs)
        return self.f(point, *self.args, **self.kwargs)

    @staticmethod
    def _to_numpy(out: Any) -> tuple[np.ndarray, float, torch.dtype | None]:
        """Output as a NumPy array, the machine epsilon of its precision, and its torch dtype."""
        tdt = None
        if isinstance(out, torch.Tensor):
            tdt = out.dtype
            if out.dtype == torch.bool:
                arr = out.detach().cpu().numpy()
            elif out.is_complex():
                arr = out.detach().to("cpu", torch.complex128).numpy()
            elif out.is_floating_point():
                arr = out.detach().to("cpu", torch.float64).numpy()
            else:
                arr = out.detach().cpu().numpy()
            eps = float(torch.finfo(out.dtype).eps) if (
                out.is_floating_point() or out.is_complex()) else 0.0
            return arr, eps, tdt
        try:
            arr = np.asarray(out)
        except Exception as exc:
            raise OutputTypeError(
                f"f returned {type(out).__name__}, which cannot be read as a numeric array "
                f"({exc}); make f return one NumPy array, tensor or float"
            ) from exc
        eps = float(np.finfo(arr.dtype).eps) if arr.dtype.kind in "fc" else 0.0
        return arr, eps, tdt

    def _base_evaluation(self) -> tuple[np.ndarray, tuple[int, ...], float,
                                        torch.dtype | None]:
        out = self._call(self._wrap_point(self.x))
        arr, eps, tdt = self._to_numpy(out)
        if arr.dtype.kind == "c":
            raise OutputTypeError(
                "f(x) is complex; jacobite.numeric differentiates real-valued functions: "
                "return the real and imaginary parts as one real array, e.g. "
                "np.concatenate([y.real, y.imag]) or torch.view_as_real(y)"
            )
        if arr.dtype.kind not in "iuf":
            raise OutputTypeError(
                f"f returned {type(out).__name__} with dtype {arr.dtype}, which is not numeric; "
                "make f return one real NumPy array, tensor or float (for several outputs, "
                "concatenate them)"
            )
        f0 = arr.astype(np.float64).reshape(-1)
        if not np.all(np.isfinite(f0)):
            shape = tuple(arr.shape)
            bad = _flat_index(int(np.flatnonzero(~np.isfinite(f0))[0]), shape)
            raise NonFiniteInputError(
                f"f is not finite at x: f(x) contains NaN or Inf (first at output index {bad}); "
                "evaluate the Jacobian at a point inside f's domain"
            )
        return f0, tuple(arr.shape), eps, tdt

    def actual_points(self, points: np.ndarray) -> np.ndarray:
        """Round float64 trial points to what ``f`` will really receive (x's dtype)."""
        if self.backend == "torch" and self.dtype != torch.float64:
            return torch.from_numpy(points).to(self.dtype).to(torch.float64).numpy()
        return points

    def evaluate(self, flat: np.ndarray) -> np.ndarray:
        """``f`` at a flat real point (already rounded by :meth:`actual_points`), flat float64."""
        out = self._call(self._wrap_point(flat))
        if type(out) is np.ndarray and out.dtype == np.float64:  # fast path
            arr = out
        else:
            arr = self._to_numpy(out)[0]
            if arr.dtype.kind not in "iuf":
                raise OutputTypeError(
                    f"f returned dtype {arr.dtype} at a perturbed point but real numbers at x; "
                    "make f return real numbers everywhere"
                )
        if arr.shape != self.out_shape:
            self._check_shape(arr)
        return np.asarray(arr, dtype=np.float64).reshape(-1)

    def evaluate_complex(self, flat: np.ndarray) -> np.ndarray:
        """``f`` at a complex point for the complex step; raises if ``f`` is not analytic."""
        hint = ("f is not complex-analytic (or not written for complex inputs), so the complex "
                "step cannot be used; use method='richardson' instead")
        try:
            out = self._call(self._wrap_point(flat))
        except Exception as exc:
            raise UnsupportedOperationError(f"f raised on a complex input: {exc!r}; {hint}") \
                from exc
        try:
            arr, _, _ = self._to_numpy(out)
        except OutputTypeError as exc:
            raise UnsupportedOperationError(f"{exc}; {hint}") from exc
        if arr.dtype.kind != "c":
            raise UnsupportedOperationError(
                f"f returned real values ({arr.dtype}) for a complex input; {hint}"
            )
        self._check_shape(arr)
        return arr.astype(np.complex128).reshape(-1)

    def _check_shape(self, arr: np.ndarray) -> None:
        if tuple(arr.shape) != self.out_shape:
            raise ShapeError(
                f"f returned shape {tuple(arr.shape)} at a perturbed point but {self.out_shape} "
                "at x; f must return the same shape for every input"
            )

    # --------------------------------------------------------------- output
    def wrap(self, mat: np.ndarray) -> Any:
        """An ``(m, n)`` float64 matrix as ``out_shape + in_shape`` in the user's world."""
        arr = np.asarray(mat, dtype=np.float64).reshape(self.out_shape + self.in_shape)
        if self.backend == "torch":
            dtype = self.dtype
            if self.out_torch_dtype is not None and self.out_torch_dtype.is_floating_point:
                dtype = torch.promote_types(self.dtype, self.out_torch_dtype)
            return torch.from_numpy(arr.copy()).to(device=self.device, dtype=dtype)
        return arr
