"""Checks for the arguments every package shares, each raising a typed error that names the fix.

One function per kind of argument: callables, argnums, chunk sizes, memory budgets, tolerances,
iteration limits, seeds, dtypes, devices and choices from a fixed set. Each returns the value in
its normal form (``max_iter(None)`` stays ``None``, ``chunk_size("auto")`` stays ``"auto"``) so a
caller writes ``tol = _validate.tolerance(tol, "tol")`` and moves on. The meaning of each option
is fixed package-wide in ``docs/conventions.md``.

>>> from jacobite import _validate
>>> _validate.positive_int(3, "k"), _validate.chunk_size("auto"), _validate.tolerance(0, "atol")
(3, 'auto', 0.0)
>>> try:
...     _validate.positive_int(0, "k")
... except ValueError as e:
...     print(type(e).__name__)
InvalidOptionError
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, TypeVar

import torch

from .config import get_memory_budget, parse_bytes
from .errors import ArgnumsError, ArgumentTypeError, DtypeError, InvalidOptionError

__all__ = [
    "ChunkSize",
    "all_finite",
    "argnums",
    "boolean",
    "callable_",
    "choice",
    "chunk_size",
    "device",
    "floating_dtype",
    "generator",
    "max_iter",
    "memory_budget",
    "nonnegative_int",
    "positive_float",
    "positive_int",
    "relative_tolerance",
    "renamed",
    "seed",
    "tolerance",
    "tracked",
    "transform_levels",
    "under_vmap",
]

T = TypeVar("T")

#: The ``chunk_size=`` vocabulary: ``"auto"`` (as many vectors per call as the memory budget
#: allows), ``None`` (all at once) or an int ≥ 1 (``1``: a plain loop).
ChunkSize = int | Literal["auto"] | None


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def under_vmap(t: torch.Tensor) -> bool:
    """True when ``t`` is batched by an enclosing ``torch.func.vmap`` (at any level of nesting):
    its values cannot be read into Python there."""
    functorch = torch._C._functorch
    while functorch.is_functorch_wrapped_tensor(t):
        if functorch.is_batchedtensor(t):
            return True
        t = functorch.get_unwrapped(t)
    return False


def transform_levels(kind: str) -> int:
    """How many ``torch.func`` transforms of ``kind`` (``"vmap"``, ``"jvp"``, ``"grad"``) are
    active around the current call: their interpreter levels on torch's stack.

    >>> import torch
    >>> transform_levels("vmap")
    0
    >>> int(torch.func.vmap(lambda x: x.new_tensor(transform_levels("vmap")))(torch.ones(2))[0])
    1
    """
    functorch = torch._C._functorch
    key = getattr(functorch.TransformType, kind.capitalize())
    return sum(1 for level in functorch.get_interpreter_stack() or [] if level.key() == key)


def tracked(t: Any) -> bool:
    """True when ``t`` is a tensor that autograd records or a ``torch.func`` transform wraps:
    a result computed from it must stay differentiable (built out of place, never detached)."""
    if not isinstance(t, torch.Tensor):
        return False
    return (t.requires_grad and torch.is_grad_enabled()) or \
        torch._C._functorch.is_functorch_wrapped_tensor(t)


def all_finite(t: torch.Tensor) -> bool:
    """True when every entry of ``t`` is finite: one reduction (a NaN or Inf entry always makes
    the sum non-finite), the exact elementwise check only when the sum is not finite. A tensor on
    the ``meta`` device has no values to check and passes, and so does a tensor batched by an
    enclosing ``torch.func.vmap``: its values cannot be read there, and a non-finite entry then
    simply propagates into that sample's result."""
    if t.numel() == 0 or t.is_meta or under_vmap(t):
        return True
    if math.isfinite(float(t.sum().abs() if t.is_complex() else t.sum())):
        return True
    return bool(torch.isfinite(t).all())


def callable_(f: Any, name: str = "f") -> Callable[..., Any]:
    """``f`` must be callable (a function, a lambda, an ``nn.Module``)."""
    if not callable(f):
        raise ArgumentTypeError(
            f"{name} must be a callable (a function, a lambda or an nn.Module) that maps tensors "
            f"to tensors, got {type(f).__name__}; pass the function itself, not its value"
        )
    return f


def boolean(value: Any, name: str) -> bool:
    """A flag: ``True`` or ``False`` (also NumPy and torch booleans), nothing else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.dtype == torch.bool:
        return bool(value)
    if type(value).__name__ == "bool_":
        return bool(value)
    raise ArgumentTypeError(f"{name} must be True or False, got {value!r}")


def positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """An integer ≥ ``minimum`` (default 1); bools and floats are refused."""
    if not _is_int(value):
        raise ArgumentTypeError(
            f"{name} must be an int ≥ {minimum}, got {value!r} of type {type(value).__name__}"
        )
    if value < minimum:
        raise InvalidOptionError(f"{name} must be an int ≥ {minimum}, got {value}")
    return int(value)


def nonnegative_int(value: Any, name: str) -> int:
    """An integer ≥ 0."""
    return positive_int(value, name, minimum=0)


def max_iter(value: Any, name: str = "max_iter") -> int | None:
    """An iteration limit: ``None`` (the method's own default) or an int ≥ 1."""
    return None if value is None else positive_int(value, name)


def chunk_size(value: Any, name: str = "chunk_size") -> ChunkSize:
    """``"auto"`` (as many vectors per call as the memory budget allows), ``None`` (all at once)
    or an int ≥ 1 (``1`` is a plain Python loop, no ``vmap``)."""
    if value is None:
        return None
    if isinstance(value, str) and value == "auto":
        return "auto"
    if isinstance(value, str):
        raise InvalidOptionError(
            f"{name} must be 'auto', None or an int ≥ 1, got {value!r}"
        )
    if not _is_int(value):
        raise ArgumentTypeError(
            f"{name} must be 'auto' (fit the memory budget), None (all at once) or an int ≥ 1 "
            f"(1 = a plain loop), got {value!r} of type {type(value).__name__}"
        )
    if value < 1:
        raise InvalidOptionError(
            f"{name} must be 'auto' (fit the memory budget), None (all at once) or an int ≥ 1 "
            f"(1 = a plain loop), got {value}"
        )
    return int(value)


def memory_budget(value: Any) -> int:
    """A memory budget in bytes: ``None`` (the thread's budget, see :mod:`jacobite.config`), a
    positive finite number of bytes, or a string such as ``"512 MiB"``."""
    return get_memory_budget() if value is None else parse_bytes(value)


def tolerance(value: Any, name: str, *, positive: bool = False) -> float:
    """A finite real tolerance ≥ 0 (> 0 with ``positive=True``)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v < 0 or (positive and v == 0):
        rel = "> 0" if positive else "≥ 0"
        raise InvalidOptionError(f"{name} must be a finite number {rel}, got {value!r}")
    return v


def positive_float(value: Any, name: str) -> float:
    """A finite real number > 0 (a step, a radius, a scale)."""
    return tolerance(value, name, positive=True)


def relative_tolerance(value: Any, name: str, *, example: str) -> float:
    """A finite real number in ``(0, 1)``: a relative residual at which an iteration stops.
    ``example`` is the value the message suggests (the caller's default).

    >>> relative_tolerance(1e-8, "tol", example="1e-8")
    1e-08
    """
    v = positive_float(value, name)
    if v >= 1:
        raise InvalidOptionError(f"{name} must be a number in (0, 1), got {v!r}; "
                                 f"e.g. {name}={example}")
    return v


def choice(value: Any, name: str, options: Iterable[str]) -> str:
    """One of a fixed set of strings; the message lists them."""
    opts = tuple(options)
    if not isinstance(value, str) or value not in opts:
        raise InvalidOptionError(f"{name} must be one of {opts}, got {value!r}")
    return value


def seed(value: Any, name: str = "seed") -> int | None:
    """``None`` (draw from torch's global generator, so ``torch.manual_seed`` controls it) or an
    int ≥ 0 (a private generator seeded with it: the same numbers on every call)."""
    return None if value is None else nonnegative_int(value, name)


def generator(value: Any, device: torch.device | str | None = None,
              name: str = "seed") -> torch.Generator | None:
    """The generator for a ``seed=`` option: ``None`` for torch's global one, else a fresh
    generator on ``device`` seeded with the int."""
    s = seed(value, name)
    if s is None:
        return None
    g = torch.Generator(device=device if device is not None else "cpu")
    g.manual_seed(s)
    return g


def floating_dtype(value: Any, name: str = "dtype") -> torch.dtype:
    """A floating-point (or complex) torch dtype."""
    if not isinstance(value, torch.dtype):
        raise ArgumentTypeError(
            f"{name} must be a torch dtype such as torch.float64, got {value!r}"
        )
    if not (value.is_floating_point or value.is_complex):
        raise DtypeError(
            f"{name} must be a floating-point dtype (torch.float32 or torch.float64), got {value}"
        )
    return value


def device(value: Any, name: str = "device") -> torch.device:
    """A torch device, or a string naming one (``"cpu"``, ``"cuda:0"``)."""
    if isinstance(value, torch.device):
        return value
    if isinstance(value, str):
        try:
            return torch.device(value)
        except RuntimeError as exc:
            raise InvalidOptionError(
                f"{name} {value!r} is not a device; write e.g. 'cpu' or 'cuda:0'"
            ) from exc
    raise ArgumentTypeError(f"{name} must be a torch.device or a string like 'cpu', got {value!r}")


def argnums(value: Any, nargs: int) -> tuple[int, ...]:
    """Normalise ``argnums`` (an int or a non-empty tuple of distinct ints, negative counting from
    the end) against ``nargs`` positional arguments; returns non-negative positions."""
    single = _is_int(value)
    if not single and not (isinstance(value, (tuple, list)) and len(value) > 0
                           and all(_is_int(a) for a in value)):
        empty = isinstance(value, (tuple, list)) and len(value) == 0
        raise ArgnumsError(
            f"argnums must be an int or a non-empty tuple of ints, got {value!r}"
            f"{' (empty: name at least one position)' if empty else ''}; e.g. argnums=0 or "
            "argnums=(0, 1)"
        )
    raw: Sequence[int] = (value,) if single else tuple(value)
    out = []
    for a in raw:
        if not -nargs <= a < nargs:
            raise ArgnumsError(
                f"argnums={value!r} is out of range: it names argument {a}, but only {nargs} "
                f"positional argument(s) were given; pick positions in 0..{max(nargs - 1, 0)}"
            )
        out.append(int(a) % nargs)
    if len(set(out)) != len(out):
        raise ArgnumsError(f"argnums={value!r} names the same argument twice; list each once")
    return tuple(out)


def renamed(old_name: str, old_value: Any, new_name: str, new_value: T, *,
            default: Any = None) -> T:
    """Accept a deprecated spelling of an option for one release.

    ``old_value`` is what the caller passed under the old name (``default`` when absent). Passing
    both names is an error; passing the old one warns and returns its value.
    """
    if old_value is default:
        return new_value
    if new_value is not default:
        raise InvalidOptionError(
            f"{old_name}= is the old spelling of {new_name}=; pass only {new_name}="
        )
    warnings.warn(
        f"{old_name}= is deprecated and will be removed in the next release; write "
        f"{new_name}={old_value!r}",
        DeprecationWarning,
        stacklevel=3,
    )
    return old_value

