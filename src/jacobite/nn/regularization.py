"""Jacobian regularisation (Hoffman, Roberts & Yaida, *Robust Learning with Jacobian
Regularization*, 2019): a loss term ``½‖J‖²_F``, averaged over the batch, that flattens the
input–output map and makes small input perturbations move the output less.

``‖J‖²_F`` is estimated by random projections: for ``v`` uniform on the unit sphere of the
output space (dimension C), ``E[vvᵀ] = I/C``, so ``C·‖vᵀJ‖²`` is an unbiased estimate, and
``vᵀJ`` is one vector–Jacobian product. The products are taken with ``create_graph=True``, so
the penalty is differentiable with respect to the parameters and trains like any loss term.

>>> import torch
>>> from jacobite.nn.regularization import jacobian_penalty
>>> model = torch.nn.Linear(3, 2)
>>> p = jacobian_penalty(model, torch.randn(5, 3), nproj=-1)   # exact: ½‖W‖²_F
>>> bool(torch.isclose(p, 0.5 * model.weight.pow(2).sum()))
True
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .. import _validate
from .._modules import keep_state
from ..dense._batch_of_one import integer_input, transformable_kernels
from ..errors import InvalidOptionError, ShapeError

__all__ = ["jacobian_penalty"]


# a training-mode BatchNorm would update its statistics a second time in the extra forward pass
_REUSE = ("pass output=model(x) from the training forward pass (x.requires_grad_() first), so "
          "the model runs once, or call model.eval() first")


def jacobian_penalty(model_or_f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                     nproj: int = 1, seed: int | None = None, *,
                     output: torch.Tensor | None = None) -> torch.Tensor:
    """``½ · mean_b ‖∂ f(x)_b / ∂ x_b‖²_F`` — the Jacobian penalty of a batch, differentiable.

    ``model_or_f`` maps a batch ``(B, *in)`` to ``(B, *out)`` (an ``nn.Module`` is called on the
    batch as in training) with samples independent: BatchNorm in training mode mixes them and
    is refused unless ``output=`` is given (then the penalty includes the cross-sample terms);
    Dropout in training mode gives the penalty of the drawn masks. Attention runs on the math
    kernel (differentiable twice). An integer ``x`` (token ids) raises
    :class:`~jacobite.errors.DtypeError`: penalise the Jacobian with respect to the embedding
    output instead. ``nproj`` random
    projections per sample (``v`` uniform on the unit sphere, scaled by the output dimension C,
    as in the paper) give an unbiased estimate at ``nproj`` extra backward passes; ``nproj=-1``
    is exact (C backward passes). ``seed`` fixes the projections (else torch's global
    generator). To reuse the training forward pass, give ``output=f(x)`` computed from an ``x``
    that requires grad.

    Typical use: ``loss = F.cross_entropy(model(x), y) + lam * jacobian_penalty(model, x)``.

    >>> import torch
    >>> f = lambda b: 3.0 * b                          # J = 3 I (4×4) per sample
    >>> jacobian_penalty(f, torch.randn(2, 4), nproj=-1).item()   # ½ · 9 · 4
    18.0
    >>> jacobian_penalty(f, torch.randn(2, 4), nproj=1, seed=0).item()  # exact here: J ∝ I
    18.0
    """
    _validate.callable_(model_or_f, "model_or_f")
    if not isinstance(x, torch.Tensor) or x.ndim == 0 or x.shape[0] == 0:
        raise ShapeError("x must be a non-empty batch (B, *input_shape); add a batch dimension "
                         "with x.unsqueeze(0)")
    integer_input(x, "x")
    if not x.dtype.is_floating_point:
        raise InvalidOptionError(f"x must be a floating-point tensor, got {x.dtype}")
    if nproj != -1 or isinstance(nproj, bool):
        nproj = _validate.positive_int(nproj, "nproj (random projections; or -1 for exact)")
    gen = _validate.generator(seed, x.device)
    with torch.enable_grad():
        if output is None:
            xg = x if x.requires_grad else x.detach().requires_grad_(True)
            with keep_state(fix=_REUSE), transformable_kernels():
                out = model_or_f(xg)
        else:
            if not x.requires_grad or output.grad_fn is None:
                raise InvalidOptionError("output= must be computed from x with x.requires_grad "
                                         "set (x.requires_grad_(); output = model(x))")
            xg, out = x, output
        if not isinstance(out, torch.Tensor) or out.ndim == 0 or out.shape[0] != x.shape[0]:
            raise ShapeError("the model must map a batch (B, *in) to a batch (B, *out); got "
                             f"{getattr(out, 'shape', type(out).__name__)} for B = "
                             f"{x.shape[0]}; for a model with several outputs pass a "
                             "function that picks one tensor, e.g. lambda b: model(b)['logits']")
        B = out.shape[0]
        flat = out.reshape(B, -1)
        C = flat.shape[1]
        if nproj == -1:
            vs = [torch.zeros_like(flat).index_fill_(1, torch.tensor([i], device=flat.device),
                                                     1.0) for i in range(C)]
            scale = 1.0
        else:
            v = torch.randn((nproj, B, C), generator=gen, device=flat.device,
                            dtype=flat.dtype)
            v = v / v.norm(dim=2, keepdim=True).clamp_min(torch.finfo(v.dtype).tiny)
            vs = list(v)
            scale = C / nproj
        total = flat.new_zeros(())
        for vi in vs:
            (g,) = torch.autograd.grad(flat, xg, grad_outputs=vi, create_graph=True,
                                       allow_unused=True)
            if g is not None:  # None: the output does not depend on x
                total = total + g.pow(2).sum()
    return 0.5 * scale * total / B
