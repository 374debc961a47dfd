"""Structured Jacobians of layers with respect to their input: ``diag(σ'(z)) W`` and the chain rule.

Every operator here is the Jacobian of the layer's *flattened* map ``x.reshape(-1) ↦
y.reshape(-1)``, so operators of consecutive layers compose with ``@`` (innermost on the right).
For a batch ``x`` of shape ``(B, n)`` a Linear layer's Jacobian is ``I_B ⊗ W``
(:class:`~jacobite.nn.RepeatedBlockDiagonal`, ``W`` stored once), an activation's stays one
diagonal, softmax's a :class:`~jacobite.nn.BatchedSoftmaxJacobian`.

>>> import torch
>>> from torch import nn
>>> torch.manual_seed(0)  # doctest: +ELLIPSIS
<torch._C.Generator object at ...>
>>> net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
>>> J = layer_jacobian(net, torch.randn(3, dtype=torch.float64))
>>> [type(f).__name__ for f in J.factors]
['DenseOperator', 'DiagonalOperator', 'DenseOperator']
"""

from __future__ import annotations

from typing import Any, TypeGuard

import torch
from torch import nn

from ..dense.linearize import linearize
from ..errors import DtypeError, InvalidOptionError, JacobiteError, ModuleStateError, ShapeError
from ..operators import Composed, DenseOperator, JacobianOperator, ScaledIdentity
from . import _checks as chk
from .activations import activation_jacobian, activation_spec
from .batched import RepeatedBlockDiagonal
from .softmax import softmax_jacobian

__all__ = ["layer_jacobian", "linear_layer_jacobian"]

_IDENTITY_LIKE = (nn.Identity, nn.Flatten, nn.Unflatten)


def _weights(layer_or_W: Any, bias: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    if isinstance(layer_or_W, nn.Linear):
        if bias is not None:
            raise ShapeError("bias= is only for a weight matrix; an nn.Linear brings its own "
                             "bias: drop bias= (or pass layer.weight with bias=...)")
        return layer_or_W.weight, layer_or_W.bias
    if isinstance(layer_or_W, torch.Tensor):
        W = chk.float_tensor(layer_or_W, "W")
        if W.ndim != 2:
            raise ShapeError(f"W must be a 2-D (out, in) weight matrix, got shape {tuple(W.shape)}")
        if bias is not None:
            bias = chk.float_tensor(bias, "bias")
            if tuple(bias.shape) != (W.shape[0],):
                raise ShapeError(f"bias must have shape ({W.shape[0]},) for W of shape "
                                 f"{tuple(W.shape)}, got {tuple(bias.shape)}")
        return W, bias
    raise DtypeError(
        f"linear_layer_jacobian needs an nn.Linear or a weight matrix W, got "
        f"{type(layer_or_W).__name__}; for other modules use jacobite.nn.layer_jacobian"
    )


def _linear(layer_or_W: Any, x: Any, activation: Any, bias: Any) -> tuple[JacobianOperator,
                                                                        torch.Tensor, str]:
    W, b = _weights(layer_or_W, bias)
    x = chk.float_tensor(x, "x", min_ndim=1)
    m, n = W.shape
    if x.shape[-1] != n:
        raise ShapeError(f"x has {x.shape[-1]} features in its last dimension but W has {n} "
                         f"columns (W is {m}x{n}); pass x of shape ({n},) or (B, {n})")
    chk.same_dtype(W, x, "the weights", "x")
    z = x @ W.mT if b is None else x @ W.mT + b
    Wop = DenseOperator(W)
    if x.ndim == 1:
        lin: JacobianOperator = Wop
        structure = f"dense W ({m}x{n})"
    else:
        lin = RepeatedBlockDiagonal(Wop, x.numel() // n)
        structure = f"I_B ⊗ W: dense W ({m}x{n}) shared by {x.numel() // n} samples"
    if activation is None:
        return lin, z, structure
    name, params = activation_spec(activation)
    return (Composed(activation_jacobian(name, z, **params), lin), z,
            f"diag({name}'(z)) W with W {m}x{n}")


def linear_layer_jacobian(layer_or_W: nn.Linear | torch.Tensor, x: torch.Tensor,
                          activation: Any = None, *, bias: torch.Tensor | None = None
                          ) -> JacobianOperator:
    """Jacobian of ``y = σ(W x + b)`` w.r.t. ``x``: ``Composed(diag(σ'(z)), W)``, ``z = W x + b``.

    ``layer_or_W`` is an ``nn.Linear`` or a weight matrix (with optional ``bias=``); ``activation``
    is ``None`` (then the Jacobian is just ``W``, a :class:`~jacobite.operators.DenseOperator`) or
    anything :func:`~jacobite.nn.activation_jacobian` accepts. ``x`` of shape ``(n,)`` gives an
    ``(m, n)`` operator; a batch ``(B, n)`` gives the ``(B m, B n)`` Jacobian of the flattened map,
    ``diag(σ'(Z)) (I_B ⊗ W)``, with ``W`` stored once.

    >>> import torch
    >>> W = torch.tensor([[1.0, 2.0], [0.0, 1.0]], dtype=torch.float64)
    >>> J = linear_layer_jacobian(W, torch.zeros(2, dtype=torch.float64), "sigmoid")
    >>> type(J).__name__, J.to_dense().tolist()
    ('Composed', [[0.25, 0.5], [0.0, 0.25]])
    """
    return _linear(layer_or_W, x, activation, bias)[0]


def _softmax_dim(module: nn.Softmax, ndim: int) -> int:
    if module.dim is not None:
        return module.dim
    return 0 if ndim in (0, 1, 3) else 1  # torch's legacy implicit-dim rule


def _is_dropout(module: nn.Module) -> TypeGuard[nn.modules.dropout._DropoutNd]:
    return isinstance(module, nn.modules.dropout._DropoutNd)


def layer_step(module: nn.Module, x: torch.Tensor) -> tuple[JacobianOperator, torch.Tensor, str]:
    """``(Jacobian operator, output, structure description)`` of one layer at ``x`` (internal)."""
    if isinstance(module, nn.Sequential):
        ops: list[JacobianOperator] = []
        y = x
        for child in module:
            op, y, _ = layer_step(child, y)
            ops.append(op)
        if not ops:
            return ScaledIdentity.identity(x.numel(), dtype=x.dtype, device=x.device), x, "identity"
        J = ops[0]
        for op in ops[1:]:
            J = Composed(op, J)
        return J, y, f"composition of {len(ops)} layer Jacobians (chain rule)"
    if isinstance(module, nn.Linear):
        return _linear(module, x, None, None)
    if isinstance(module, nn.Softmax):
        d = _softmax_dim(module, x.ndim)
        y = torch.softmax(x, d)
        kind = "diag(σ) − σσᵀ" if x.ndim == 1 else "blockwise diag(σ) − σσᵀ per softmax group"
        return softmax_jacobian(x, d), y, kind
    if _is_dropout(module) and module.training and module.p > 0:
        raise ModuleStateError(
            f"{type(module).__name__} is in training mode, so its Jacobian is a random mask; "
            f"call model.eval() first (dropout is then the identity)"
        )
    if isinstance(module, _IDENTITY_LIKE) or _is_dropout(module):
        y = module(x)
        return ScaledIdentity.identity(x.numel(), dtype=x.dtype, device=x.device), y, "identity"
    try:
        name, params = activation_spec(module)
    except InvalidOptionError:  # not an elementwise activation we know: generic, matrix-free
        name = None
    if name is not None:
        y = module(x)
        return activation_jacobian(name, x, **params), y, f"diagonal: diag({name}'(z))"
    if isinstance(module, nn.modules.batchnorm._NormBase) and module.training:
        raise ModuleStateError(
            f"{type(module).__name__} is in training mode and updates its running statistics on "
            f"every forward pass; call model.eval() first"
        )
    op = linearize(module, x)
    return op, op.value, f"matrix-free (jacobite.linearize of {type(module).__name__})"


def layer_jacobian(module: nn.Module, x: torch.Tensor) -> JacobianOperator:
    """The Jacobian of ``module`` at input ``x`` as a structured operator (flattened in and out).

    Recognises ``nn.Linear`` (dense ``W``, or ``I_B ⊗ W`` for a batch), the elementwise
    activations of :func:`~jacobite.nn.activation_jacobian` (diagonal), ``nn.Softmax``
    (``diag(σ) − σσᵀ``), identity-like layers (``Identity``, ``Flatten``, ``Unflatten``, dropout
    in eval mode) and ``nn.Sequential`` (the layers' operators composed, innermost on the right:
    ``J = J_L ⋯ J_1``); anything else falls back to :func:`jacobite.linearize` (matrix-free,
    one forward pass). Dropout or BatchNorm in training mode raise
    :class:`~jacobite.errors.ModuleStateError` (call ``model.eval()``).

    >>> import torch
    >>> x = torch.tensor([[0.0, 0.0], [1.0, -1.0]], dtype=torch.float64)
    >>> J = layer_jacobian(torch.nn.Softmax(dim=-1), x)
    >>> J.shape, J.block(0).to_dense().tolist()
    ((4, 4), [[0.25, -0.25], [-0.25, 0.25]])
    """
    if not isinstance(module, nn.Module):
        raise DtypeError(f"layer_jacobian needs an nn.Module, got {type(module).__name__}; for a "
                         f"function use jacobite.linearize(f, x)")
    x = chk.float_tensor(x, "x")
    try:
        return layer_step(module, x)[0]
    except (IndexError, RuntimeError, TypeError, ValueError) as exc:
        if isinstance(exc, JacobiteError):
            raise
        raise ShapeError(f"module(x) failed with {type(exc).__name__}: {exc}; pass an x of the "
                         f"shape and dtype the module accepts (e.g. x.to(module's dtype))"
                         ) from exc
