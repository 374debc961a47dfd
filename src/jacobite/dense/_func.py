"""``torch.func.vjp`` and ``jvp`` as the dense engine calls them, typed per ``has_aux``.

torch annotates both with one return type, a 2- or 3-tuple, so a checker cannot tell which a
call gives; the overloads below say it (a pair without aux, a triple with it). At run time the
names are torch's own functions, unchanged.

>>> import torch
>>> from jacobite.dense._func import vjp
>>> out, pull = vjp(torch.sin, torch.zeros(2))
>>> pull(torch.ones(2))[0].tolist()
[1.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, overload

__all__ = ["jvp", "vjp"]

if TYPE_CHECKING:
    @overload
    def vjp(func: Callable[..., Any], *primals: Any,
            has_aux: Literal[False] = False) -> tuple[Any, Callable[..., Any]]: ...
    @overload
    def vjp(func: Callable[..., Any], *primals: Any,
            has_aux: Literal[True]) -> tuple[Any, Callable[..., Any], Any]: ...
    @overload
    def vjp(func: Callable[..., Any], *primals: Any, has_aux: bool) -> tuple[Any, ...]: ...
    def vjp(func: Callable[..., Any], *primals: Any, has_aux: bool = False) -> tuple[Any, ...]:
        ...

    @overload
    def jvp(func: Callable[..., Any], primals: Any, tangents: Any, *, strict: bool = False,
            has_aux: Literal[False] = False) -> tuple[Any, Any]: ...
    @overload
    def jvp(func: Callable[..., Any], primals: Any, tangents: Any, *, strict: bool = False,
            has_aux: Literal[True]) -> tuple[Any, Any, Any]: ...
    @overload
    def jvp(func: Callable[..., Any], primals: Any, tangents: Any, *, strict: bool = False,
            has_aux: bool) -> tuple[Any, ...]: ...
    def jvp(func: Callable[..., Any], primals: Any, tangents: Any, *, strict: bool = False,
            has_aux: bool = False) -> tuple[Any, ...]:
        ...
else:
    from torch.func import jvp, vjp
