"""Jacobians with respect to an ``nn.Module``'s parameters, through ``functional_call``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from .._modules import keeps_state
from .._validate import ChunkSize
from ..errors import (
    ArgnumsError,
    ArgumentTypeError,
    ModuleStateError,
    NonFiniteInputError,
    UnsupportedOperationError,
)
from ._batch_of_one import batch_of_one, wants_batch
from ._errors import check_module_state
from ._plan import Mode
from ._trees import all_finite
from .jacobian import _flags, value_and_jacobian

__all__ = ["module_jacobian"]


def _iter(value: Any) -> list[Any]:
    try:
        return list(value)
    except TypeError:
        return [None]  # not iterable: reported as a wrong type by the caller


@keeps_state
def module_jacobian(module: nn.Module, *inputs: Any, params: Iterable[str] | None = None,
                    mode: Mode = "auto", chunk_size: ChunkSize = "auto",
                    flat: bool = False, memory_budget: int | str | None = None,
                    return_value: bool = False, batched_model: bool = False) -> Any:
    """The Jacobian of ``module(*inputs)`` with respect to its parameters.

    Returns a dict ``name -> tensor`` of shape ``output shape + parameter shape`` or, with
    ``flat=True``, one ``(m, P)`` matrix whose columns follow ``module.named_parameters()``.
    ``params`` restricts the set (default: every parameter with ``requires_grad``). Buffers (e.g.
    BatchNorm's running statistics) are held fixed; a module that would update them in place
    (BatchNorm in training mode) raises :class:`~jacobite.errors.ModuleStateError`, and any
    other in-place change of a buffer during the forward pass is detected and refused too. The
    module itself is never modified. With ``return_value=True`` the result is ``(output, J)``.
    ``inputs`` are passed as given (a batch, for a module that expects one); with
    ``batched_model=True`` they are ONE sample, passed as a batch of one (``x.unsqueeze(0)``),
    and dimension 0 is removed from the outputs, so ``J`` has the shape of one sample's output.
    Integer inputs (token ids for ``nn.Embedding``) are fine: only parameters are differentiated.

    >>> import torch, jacobite
    >>> lin = torch.nn.Linear(3, 2).double()
    >>> J = jacobite.module_jacobian(lin, torch.ones(3, dtype=torch.float64))
    >>> J["weight"].shape, J["bias"].tolist()
    (torch.Size([2, 2, 3]), [[1.0, 0.0], [0.0, 1.0]])
    """
    if not isinstance(module, nn.Module):
        raise ArgnumsError(f"module_jacobian needs an nn.Module, got {type(module).__name__}; "
                           "for a plain function use jacobite.jacobian")
    check_module_state(module)
    batched_model = wants_batch(module, batched_model)
    _flags(flat=flat, return_value=return_value)
    for i, t in enumerate(inputs):
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not all_finite(t):
            raise NonFiniteInputError(
                f"input {i} to the module contains NaN or Inf; a Jacobian there is meaningless — "
                "clean the input (torch.nan_to_num)")
    named = dict(module.named_parameters())
    if params is None:
        chosen = {k: v for k, v in named.items() if v.requires_grad}
    else:
        if isinstance(params, str) or not all(isinstance(k, str) for k in _iter(params)):
            raise ArgumentTypeError(
                f"params must be an iterable of parameter names such as ['0.weight'], got "
                f"{params!r}; choose from {list(named)}")
        wanted = list(params)
        missing = [k for k in wanted if k not in named]
        if missing:
            raise ArgnumsError(f"module has no parameter(s) {missing}; choose from {list(named)}")
        chosen = {k: v for k, v in named.items() if k in set(wanted)}  # named_parameters order
    if not chosen:
        raise ArgnumsError("no parameters to differentiate: the module has none with "
                           "requires_grad=True (or params= selected none)")
    # Not detached: J stays differentiable with respect to every parameter (the chosen ones and
    # the others), for Jacobian penalties and training on Jacobians.
    frozen: dict[str, torch.Tensor] = {k: v for k, v in named.items() if k not in chosen}
    buffers = {k: b.clone() for k, b in module.named_buffers()}
    versions = {k: b._version for k, b in buffers.items()}

    def call(p: dict[str, torch.Tensor], *xs: Any) -> Any:
        return functional_call(module, (p, frozen, buffers), xs, strict=False)

    call.__qualname__ = type(module).__name__
    # parameters are not batched; each input gets a batch of one
    run = batch_of_one(call, (None,) + (0,) * len(inputs)) if batched_model else call

    try:
        value, J = value_and_jacobian(run, dict(chosen), *inputs,
                                      mode=mode, chunk_size=chunk_size, flat=flat,
                                      memory_budget=memory_budget)
    except UnsupportedOperationError as exc:
        if "captured" in str(exc) or "in place" in str(exc):
            raise ModuleStateError(
                f"{type(module).__name__}'s forward pass changes a buffer or other captured "
                "tensor in place (e.g. a running statistic or a counter), so its output depends "
                "on how often it runs; put the module in eval() mode or make the update "
                "conditional on self.training") from exc
        raise
    changed = [k for k, b in buffers.items() if b._version != versions[k]]
    if changed:
        raise ModuleStateError(
            f"the forward pass changed buffer(s) {changed} in place, so the module's output "
            "depends on how often it runs; put the module in eval() mode or make the update "
            "conditional on self.training"
        )
    return (value, J) if return_value else J
