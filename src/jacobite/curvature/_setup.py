"""What every curvature operator shares: the model checked, its parameters as one flat vector,
the data as a re-iterable sequence of batches, and the model as a function of the parameters.

The parameter vector stacks the chosen parameters in ``model.named_parameters()`` order, each
flattened row-major (``p.reshape(-1)``). A batch is ``(X, y)`` (or ``X`` alone for the
Jacobian); ``data`` is one batch given as a tuple, or an iterable of batches that can be
iterated again for every product (a list, a ``DataLoader``).

>>> import torch
>>> model = torch.nn.Linear(3, 2)
>>> ps = Params.of(model, None)
>>> ps.names, ps.size
(('weight', 'bias'), 8)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from ..errors import (
    ArgnumsError,
    ArgumentTypeError,
    DtypeError,
    InvalidOptionError,
    ModuleStateError,
    NonFiniteInputError,
    ShapeError,
)

__all__ = ["Data", "Params", "check_model", "forward", "hooked_forward"]

Batch = tuple[Any, Any]


def check_model(model: Any) -> nn.Module:
    """An ``nn.Module`` whose forward pass is a fixed function of its parameters: no BatchNorm
    or dropout in training mode."""
    if not isinstance(model, nn.Module):
        raise ArgumentTypeError(
            f"model must be a torch.nn.Module, got {type(model).__name__}; wrap a function of "
            "parameters in an nn.Module with nn.Parameter attributes")
    for name, sub in model.named_modules():
        where = f"{name or type(model).__name__} ({type(sub).__name__})"
        if isinstance(sub, nn.modules.batchnorm._NormBase) and sub.training:
            raise ModuleStateError(
                f"{where} is in training mode, where it normalises with the statistics of each "
                "batch and updates its running statistics, so the curvature would change the "
                "model and mix the samples; call model.eval() first")
        if isinstance(sub, nn.modules.dropout._DropoutNd) and sub.training and sub.p > 0:
            raise ModuleStateError(
                f"{where} is in training mode and draws a new mask on every forward pass, so "
                "every product would see a different model; call model.eval() first")
    return model


@dataclass(frozen=True)
class Params:
    """The parameters differentiated: names, the tensors (detached), and the flat layout."""

    names: tuple[str, ...]
    values: tuple[torch.Tensor, ...]
    frozen: dict[str, torch.Tensor]

    @staticmethod
    def of(model: nn.Module, params: Iterable[str] | None) -> Params:
        named = dict(model.named_parameters())
        if params is None:
            chosen = [k for k, v in named.items() if v.requires_grad]
        else:
            if isinstance(params, (str, bytes)) or not isinstance(params, Iterable):
                raise ArgumentTypeError(
                    f"params must be an iterable of parameter names such as ['0.weight'], got "
                    f"{params!r}; choose from {list(named)}")
            wanted = list(params)
            bad = [k for k in wanted if not isinstance(k, str)]
            if bad:
                raise ArgumentTypeError(
                    f"params must hold parameter names (str), got {bad[0]!r}; choose from "
                    f"{list(named)}")
            missing = [k for k in wanted if k not in named]
            if missing:
                raise ArgnumsError(
                    f"the model has no parameter(s) {missing}; choose from {list(named)}")
            chosen = [k for k in named if k in set(wanted)]  # named_parameters order
        if not chosen:
            raise ArgnumsError("no parameters to differentiate: the model has none with "
                               "requires_grad=True (or params= selected none); pass params="
                               f"[names] from {list(named)}")
        values = tuple(named[k].detach() for k in chosen)
        dtypes = {v.dtype for v in values}
        if len(dtypes) > 1 or not values[0].is_floating_point():
            raise DtypeError(
                f"the parameters must share one floating dtype, got {sorted(map(str, dtypes))}; "
                "call model.to(torch.float32) (or float64) first")
        frozen = {k: v.detach() for k, v in named.items() if k not in set(chosen)}
        return Params(tuple(chosen), values, frozen)

    @property
    def size(self) -> int:
        return sum(v.numel() for v in self.values)

    @property
    def dtype(self) -> torch.dtype:
        return self.values[0].dtype

    @property
    def device(self) -> torch.device:
        return self.values[0].device

    def primals(self) -> dict[str, torch.Tensor]:
        return dict(zip(self.names, self.values, strict=True))

    def split(self, v: torch.Tensor) -> dict[str, torch.Tensor]:
        """A flat ``(P,)`` vector as a dict of parameter-shaped views."""
        parts = torch.split(v, [p.numel() for p in self.values])
        return {k: t.view(p.shape) for k, t, p in zip(self.names, parts, self.values,
                                                      strict=True)}

    def flat(self, tree: dict[str, torch.Tensor]) -> torch.Tensor:
        """A dict of parameter-shaped tensors as one flat ``(P,)`` vector."""
        return torch.cat([tree[k].reshape(-1) for k in self.names])


def forward(model: nn.Module, ps: Params, p: dict[str, torch.Tensor], X: Any) -> torch.Tensor:
    """``model(X)`` with the chosen parameters replaced by ``p`` (the others held fixed)."""
    out = functional_call(model, (p, ps.frozen), (X,), strict=False)
    if not isinstance(out, torch.Tensor):
        raise ShapeError(f"the model must return one tensor, got {type(out).__name__}; wrap it "
                         "so that forward returns the output tensor (e.g. the logits)")
    return out


def hooked_forward(model: nn.Module, ps: Params, X: Any,
                   hooks: Mapping[nn.Module, Callable[[Any, torch.Tensor], torch.Tensor | None]],
                   leaves: bool = True) -> torch.Tensor:
    """``model(X)`` differentiable in fresh leaves of the chosen parameters (with ``leaves``;
    else the parameters need no gradient), each module of ``hooks`` handing its positional
    inputs and output to its callback on every call (a tensor returned replaces the output)."""
    handles = [mod.register_forward_hook(lambda m, args, out, f=f: f(args, out))
               for mod, f in hooks.items()]
    try:
        with torch.enable_grad():
            p = {k: v.detach().requires_grad_(leaves) for k, v in ps.primals().items()}
            return forward(model, ps, p, X)
    finally:
        for h in handles:
            h.remove()


class Data:
    """The batches: one ``(X, y)`` tuple, or an iterable of them that can be iterated again."""

    def __init__(self, data: Any, *, targets: bool, dtype: torch.dtype,
                 device: torch.device | None = None) -> None:
        self._targets = targets
        self._dtype = dtype
        self._device = device
        if isinstance(data, torch.Tensor) and not targets:
            self._one: list[Batch] | None = [self._batch(data)]
        elif isinstance(data, tuple):
            self._one = [self._batch(data)]
        else:
            self._one = None
            if not isinstance(data, Iterable) or isinstance(data, (str, bytes, dict)):
                raise ArgumentTypeError(self._what(data))
            if iter(data) is data:
                raise ArgumentTypeError(
                    "data is an iterator, which is used up after one pass, but every product "
                    "iterates over the data again; pass a list of batches or a DataLoader "
                    "(e.g. list(batches))")
        self._data = data

    def _what(self, got: Any) -> str:
        one = "a tuple (X, y)" if self._targets else "a tensor X or a tuple (X, y)"
        return (f"data must be one batch, {one}, or an iterable of batches (a list, a "
                f"DataLoader), got {type(got).__name__}; e.g. data=(X, y)")

    def _batch(self, b: Any) -> Batch:
        if isinstance(b, torch.Tensor) and not self._targets:
            X, y = b, None
        elif isinstance(b, (tuple, list)) and len(b) == 2:
            X, y = b
        else:
            raise ArgumentTypeError(self._what(b))
        if not isinstance(X, torch.Tensor):
            raise ArgumentTypeError(f"the inputs X of a batch must be a tensor, got "
                                    f"{type(X).__name__}; pass batches (X, y) of tensors")
        if self._targets and not isinstance(y, torch.Tensor):
            raise ArgumentTypeError(f"the targets y of a batch must be a tensor, got "
                                    f"{type(y).__name__}; pass batches (X, y) of tensors")
        if X.ndim == 0:
            raise ShapeError("a batch needs inputs X of shape (n, ...) with n >= 1, got a "
                             "0-d tensor; add the batch dimension (X.reshape(1, -1))")
        if X.shape[0] == 0:
            raise ShapeError(f"a batch needs inputs X of shape (n, ...) with n >= 1, got shape "
                             f"{tuple(X.shape)}; leave empty batches out of data (under a "
                             f"process group every rank needs at least one sample)")
        for name, t in (("inputs X", X), ("targets y", y)):
            if self._device is not None and isinstance(t, torch.Tensor) \
                    and t.device != self._device:
                raise InvalidOptionError(
                    f"the {name} are on {t.device} but the model's parameters on "
                    f"{self._device}; move them with .to({str(self._device)!r})")
        if X.is_floating_point():
            if X.dtype != self._dtype:
                raise DtypeError(f"the inputs have dtype {X.dtype} but the model's parameters "
                                 f"{self._dtype}; convert them with X.to({self._dtype})")
            if not bool(torch.isfinite(X).all()):
                raise NonFiniteInputError("the inputs X contain NaN or Inf; clean the data "
                                          "(torch.nan_to_num) or drop those samples")
        elif X.is_complex():
            raise DtypeError(f"complex inputs are not supported; pass real inputs of dtype "
                             f"{self._dtype}")
        if isinstance(y, torch.Tensor) and y.is_floating_point() \
                and not bool(torch.isfinite(y).all()):
            raise NonFiniteInputError("the targets y contain NaN or Inf; clean the data or drop "
                                      "those samples")
        return X, y

    def __iter__(self) -> Iterator[Batch]:
        if self._one is not None:
            yield from self._one
            return
        empty = True
        for b in self._data:
            empty = False
            yield self._batch(b)
        if empty:
            raise ShapeError("data holds no batches; pass at least one batch (X, y)")
