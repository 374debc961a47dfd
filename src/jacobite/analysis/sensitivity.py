"""Where is a network sensitive? Input–output Jacobians of a batch, saliency maps, and the input
directions that move the output most.

Every function takes ``model`` the way ``nn.Module`` s are called: on a *batch* ``(B, *in)``,
returning ``(B, *out)``; one sample is evaluated as a batch of one. Samples must not interact
and the model must be deterministic: a module with BatchNorm or Dropout in training mode is
refused with :class:`~jacobite.errors.ModuleStateError` (call ``model.eval()`` first). Integer
inputs (token ids) raise :class:`~jacobite.errors.DtypeError`: differentiate the embedding
output instead.

* :func:`input_jacobians` — per-sample Jacobians ``(B, *out, *in)`` through
  :func:`jacobite.batch_jacobian`, chunked under the memory budget;
* :func:`saliency` — ``|∂ output_target / ∂ x|``, shaped like ``x`` (one backward pass);
* :func:`sensitive_directions` — the top-k singular values and right (input) singular vectors
  of the Jacobian at one sample, matrix-free by default.

>>> import torch
>>> from jacobite.analysis.sensitivity import input_jacobians, saliency
>>> model = torch.nn.Linear(3, 2, bias=False)
>>> x = torch.randn(4, 3)
>>> J = input_jacobians(model, x)
>>> J.shape, bool(torch.allclose(J[0], model.weight))
(torch.Size([4, 2, 3]), True)
>>> bool(torch.allclose(saliency(model, x, target=1), model.weight[1].abs().expand(4, 3)))
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch

from .. import _validate
from .._modules import keeps_state
from ..dense import batch_jacobian
from ..dense._batch_of_one import (
    batch_of_one,
    check_per_sample,
    concatenated,
    integer_input,
    transformable_kernels,
)
from ..dense._plan import Mode
from ..errors import ArgumentTypeError, InvalidOptionError, ShapeError
from ._checks import check_batch, check_model
from .spectra import top_singular

__all__ = ["SensitiveDirections", "input_jacobians", "saliency", "sensitive_directions"]

Model = Callable[[torch.Tensor], torch.Tensor]
#: How :func:`sensitive_directions` gets J's top singular vectors: a dense SVD, Lanczos on
#: matrix-free products, or the choice by size.
DirectionsMethod = Literal["auto", "dense", "matrix-free"]


def _checks(model: Model, x: Any, name: str) -> None:
    check_model(model)
    check_per_sample(model, random=True)
    integer_input(x, name)


@keeps_state
def input_jacobians(model: Model, x_batch: torch.Tensor, *, flat: bool = False,
                    mode: Mode = "auto", memory_budget: int | str | None = None) -> torch.Tensor:
    """Per-sample input–output Jacobians ``∂ model(x)_b / ∂ x_b`` of a batch.

    Returns ``(B, *out_shape, *in_shape)`` (``(B, m, n)`` with ``flat=True``). Each sample is
    differentiated separately by :func:`jacobite.batch_jacobian` (vmapped, chunked so the working
    set stays under the memory budget), so the whole-batch Jacobian is never formed.

    >>> import torch
    >>> input_jacobians(torch.nn.Tanh(), torch.zeros(2, 3)).shape
    torch.Size([2, 3, 3])
    """
    _checks(model, x_batch, "x_batch")
    check_batch(x_batch)
    flat = _validate.boolean(flat, "flat")
    return batch_jacobian(model, x_batch, mode=mode, flat=flat, memory_budget=memory_budget,
                          batched_model=True)


def _targets(out: torch.Tensor, target: int | torch.Tensor | None) -> torch.Tensor:
    """One flat output index per sample."""
    B = out.shape[0]
    flat = out.reshape(B, -1)
    if target is None:
        return flat.argmax(dim=1)  # the predicted class (the only output of a scalar model)
    t = torch.as_tensor(target, device=out.device)
    if t.dtype.is_floating_point or t.dtype == torch.bool:
        raise InvalidOptionError(f"target must hold integer output indices, got dtype {t.dtype}")
    if t.ndim == 0:
        t = t.expand(B)
    if t.shape != (B,):
        raise ShapeError(f"target must be one index or one per sample ({B}), got shape "
                         f"{tuple(t.shape)}")
    if bool(((t < 0) | (t >= flat.shape[1])).any()):
        raise InvalidOptionError(f"target indices must lie in [0, {flat.shape[1] - 1}] (the "
                                 f"flattened output has {flat.shape[1]} entries)")
    return t.long()


@keeps_state
def saliency(model: Model, x_batch: torch.Tensor, target: int | torch.Tensor | None = None, *,
             absolute: bool = True) -> torch.Tensor:
    """Saliency maps ``|∂ output_target / ∂ x|`` (Simonyan et al., 2014), shaped like ``x_batch``.

    ``target`` is an index into each sample's (flattened) output — one for all samples, one per
    sample, or ``None`` for the predicted class (the argmax). One forward and one backward pass;
    no parameter's ``.grad`` is touched. ``absolute=False`` keeps the sign.

    >>> import torch
    >>> model = torch.nn.Linear(2, 3, bias=False)
    >>> with torch.no_grad():
    ...     _ = model.weight.copy_(torch.tensor([[1.0, -2.0], [0.0, 1.0], [3.0, 0.5]]))
    >>> saliency(model, torch.tensor([[1.0, 1.0]])).tolist()   # class 2 wins: |row 2|
    [[3.0, 0.5]]
    """
    _checks(model, x_batch, "x_batch")
    check_batch(x_batch)
    absolute = _validate.boolean(absolute, "absolute")
    if (target is not None and not isinstance(target, (int, torch.Tensor))) or isinstance(
            target, bool):
        raise ArgumentTypeError(f"target must be an int output index, a tensor of them (one "
                                f"per sample) or None, got {type(target).__name__}")
    with torch.enable_grad():
        x = x_batch.detach().requires_grad_(True)
        out = model(x)
        if not isinstance(out, torch.Tensor) or out.ndim == 0 or out.shape[0] != x.shape[0]:
            raise ShapeError("the model must map a batch (B, *in) to a batch (B, *out); got "
                             f"{getattr(out, 'shape', type(out).__name__)} for B = "
                             f"{x.shape[0]}; for a model with several outputs pass a "
                             "function that picks one tensor, e.g. lambda b: model(b)['logits']")
        t = _targets(out.detach(), target)
        picked = out.reshape(out.shape[0], -1).gather(1, t[:, None]).sum()
        (g,) = torch.autograd.grad(picked, x)
    return g.abs() if absolute else g


@dataclass(frozen=True)
class SensitiveDirections:
    """The top-k singular triplets of the input–output Jacobian ``J`` at one sample.

    ``values`` ``(k,)`` in decreasing order; ``directions`` ``(k, *in_shape)``: unit input
    perturbations (right singular vectors) with ``‖J v_i‖ = σ_i``; ``responses``
    ``(k, *out_shape)``: the unit output changes they cause (left singular vectors).
    """

    values: torch.Tensor
    directions: torch.Tensor
    responses: torch.Tensor
    method: str

    def to_dict(self) -> dict[str, Any]:
        return {"values": self.values.tolist(), "directions": self.directions.tolist(),
                "responses": self.responses.tolist(), "method": self.method}


@keeps_state
def sensitive_directions(model: Model, x: torch.Tensor, k: int = 3, *,
                         method: DirectionsMethod = "auto",
                         tol: float = 1e-10) -> SensitiveDirections:
    """The ``k`` input directions that change ``model``'s output most at the sample ``x``.

    ``x`` is ONE sample (no batch dimension); ``model`` is called on ``x.unsqueeze(0)``. The
    directions are the top right singular vectors of ``J = ∂ model / ∂ x``: a perturbation
    ``δ = ε v_1`` moves the output by ``ε σ_1``, more than any other of its size. ``method``:
    ``"matrix-free"`` (:func:`jacobite.analysis.spectra.top_singular`, JVPs/VJPs only, memory
    O(n), converged to the relative residual ``tol``), ``"dense"`` (SVD of the dense J — exact,
    for small n) or ``"auto"`` (matrix-free unless J has at most 4096 entries). Singular
    vectors are defined up to sign; the sign is fixed so that each direction's largest entry
    is positive. For a model with a tuple or dict output, ``J`` stacks the rows of every
    output and ``responses`` are ``(k, m)`` over their flattened concatenation.

    >>> import torch
    >>> W = torch.diag(torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64))
    >>> s = sensitive_directions(lambda b: b @ W.T, torch.ones(3, dtype=torch.float64), k=2)
    >>> s.values.tolist(), s.directions.tolist()
    ([3.0, 2.0], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    """
    _checks(model, x, "x")
    if not isinstance(x, torch.Tensor):
        raise ArgumentTypeError(f"x must be one sample as a tensor (without the batch "
                                f"dimension), got {type(x).__name__}")
    if x.numel() == 0:
        raise ShapeError("x must be one non-empty sample (a tensor without the batch dimension)")
    check_batch(x.unsqueeze(0), "x")
    _validate.choice(method, "method", ("auto", "dense", "matrix-free"))
    k = _validate.positive_int(k, "k")
    tol = _validate.positive_float(tol, "tol")
    f = concatenated(batch_of_one(model, (0,)))
    with torch.no_grad(), transformable_kernels():
        out_shape = tuple(f(x).shape)
    n, m = x.numel(), max(1, int(torch.Size(out_shape).numel()))
    if k > min(m, n):
        raise InvalidOptionError(f"k must be an integer in [1, {min(m, n)}] (min of the output "
                                 f"size {m} and input size {n}), got {k!r}")
    if method == "dense" or (method == "auto" and m * n <= 4096):
        J = batch_jacobian(f, x.unsqueeze(0), flat=True)[0]
        U, S, Vh = torch.linalg.svd(J, full_matrices=False)
        values, V, U = S[:k], Vh[:k], U[:, :k].T
        used = "dense"
    else:
        with transformable_kernels():
            r = top_singular(f, x, k, tol=tol)
        values, V, U = (t.to(x.dtype) for t in (r.values, r.right, r.left))
        used = "matrix-free"
    idx = V.abs().argmax(dim=1, keepdim=True)
    sign = torch.sign(V.gather(1, idx))
    sign[sign == 0] = 1
    return SensitiveDirections(values=values.detach(), method=used,
                               directions=(V * sign).reshape(k, *x.shape).detach(),
                               responses=(U * sign).reshape(k, *out_shape).detach())
