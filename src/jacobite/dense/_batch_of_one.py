"""Models that expect a batch dimension, evaluated one sample at a time as a batch of one.

An ``nn.Module`` is written for a batch ``(B, *in)``: ``BatchNorm1d`` refuses a 1-D input,
``nn.Flatten`` flattens from dimension 1, an LSTM with ``batch_first=True`` reads dimension 0
as the batch. The per-sample entry points (:func:`jacobite.batch_jacobian`, the sensitivity
tools, ``spectral_norm(..., batched_model=True)``) differentiate ONE sample, so they call such
a model on that sample with a batch dimension of size one added (``x.unsqueeze(d)`` where
``in_dims`` puts the batch, under ``vmap`` where several samples are vectorised) and remove
dimension 0 from every output tensor. The option is ``batched_model``: ``True`` for this,
``False`` for a function of one sample, ``None`` (the default where there is one) for
"``True`` exactly when ``f`` is an ``nn.Module``".

Attention (``scaled_dot_product_attention``, inside ``nn.MultiheadAttention`` and the
Transformer layers) runs on PyTorch's fused kernels by default, which have no forward-mode
rule and no ``vmap`` rule on the CPU; :func:`transformable_kernels` selects the plain
(math) kernel, which every ``torch.func`` transform supports, for the duration of a call.

Layers that mix the samples of a batch (BatchNorm in training mode) have no per-sample
Jacobian, and layers that draw random numbers (Dropout in training mode) give an estimate
that changes with every product, so the matrix-free tools refuse both with
:class:`~jacobite.errors.ModuleStateError` naming ``model.eval()``.

>>> import torch
>>> bn = torch.nn.BatchNorm1d(2).eval()
>>> one = batch_of_one(bn, (0,))
>>> one(torch.ones(2)).shape
torch.Size([2])
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils._pytree import tree_flatten, tree_map

from .. import _validate
from ..errors import (
    ArgumentTypeError,
    DtypeError,
    InvalidOptionError,
    JacobiteError,
    ModuleStateError,
    ShapeError,
)

__all__ = ["at_sample", "batch_of_one", "check_per_sample", "concatenated", "integer_input",
           "transformable_kernels", "wants_batch"]


def wants_batch(f: Any, batched_model: Any) -> bool:
    """Resolve ``batched_model``: ``None`` means "``f`` is an ``nn.Module``"."""
    if batched_model is None:
        return isinstance(f, nn.Module)
    if not isinstance(batched_model, bool):
        raise ArgumentTypeError(
            f"batched_model must be True (f expects a batch: each sample is passed as a batch "
            f"of one), False (f maps one sample) or None (True for an nn.Module), got "
            f"{batched_model!r}")
    return batched_model


def _drop(leaf: Any, name: str) -> Any:
    if not isinstance(leaf, torch.Tensor):
        return leaf
    if leaf.ndim == 0 or leaf.shape[0] != 1:
        raise ShapeError(
            f"{name} was called on a batch of one sample but returned an output of shape "
            f"{tuple(leaf.shape)}, whose dimension 0 is not that batch of one; every output "
            "must keep the batch dimension first (batch_first=True for RNNs and attention), or "
            "pass batched_model=False if the function maps one sample")
    return leaf[0]


def batch_of_one(f: Callable[..., Any], dims: tuple[int | None, ...]) -> Callable[..., Any]:
    """``f`` as a map of ONE sample: each argument whose entry in ``dims`` is an int gets a
    batch dimension of size one there; dimension 0 is removed from every output tensor."""
    name = getattr(f, "__qualname__", None) or type(f).__name__

    def add(a: Any, d: int | None) -> Any:
        if d is None:
            return a
        return tree_map(lambda t: t.unsqueeze(d) if isinstance(t, torch.Tensor) else t, a)

    def one(*args: Any) -> Any:
        out = f(*(add(a, d) for a, d in zip(args, dims, strict=True)))
        return tree_map(lambda t: _drop(t, name), out)

    one.__qualname__ = name
    return one


_MIXING = (nn.modules.batchnorm._BatchNorm, nn.SyncBatchNorm)
_RANDOM = (nn.modules.dropout._DropoutNd, nn.AlphaDropout, nn.FeatureAlphaDropout)


def check_per_sample(f: Any, *, random: bool) -> None:
    """Refuse a module with a training-mode layer that mixes samples (BatchNorm) or, with
    ``random=True``, draws random numbers (Dropout): ModuleStateError naming the fix."""
    if not isinstance(f, nn.Module):
        return
    for name, sub in f.named_modules():
        if not sub.training:
            continue
        where = f"{name or type(f).__name__} ({type(sub).__name__})"
        if isinstance(sub, _MIXING):
            raise ModuleStateError(
                f"{where} is in training mode, where it normalises with the statistics of the "
                "whole batch, so one sample's output depends on the others and per-sample "
                "Jacobians do not exist; call model.eval() first (the running statistics)")
        if random and isinstance(sub, _RANDOM) and sub.p > 0:
            raise ModuleStateError(
                f"{where} is in training mode and draws a new random mask on every call, so "
                "the Jacobian would change between the products this method combines; call "
                "model.eval() first, or use jacobite.batch_jacobian, which draws one mask per "
                "sample")


def integer_input(args: Any, name: str) -> None:
    """Refuse integer or bool inputs (token ids) with a DtypeError that names the fix."""
    for leaf in tree_flatten(args)[0]:
        if isinstance(leaf, torch.Tensor) and not (leaf.is_floating_point() or leaf.is_complex()):
            raise DtypeError(
                f"{name} has dtype {leaf.dtype}, which has no derivative (token ids, class "
                "indices); for a model that starts with nn.Embedding, differentiate with respect "
                "to the embedding output (split the model: head(embedding(tokens))) or with "
                "respect to the parameters (jacobite.module_jacobian); for real-valued data "
                "convert it with x.float()")


@contextlib.contextmanager
def transformable_kernels() -> Iterator[None]:
    """Attention on the math kernel (differentiable in both modes, batchable by vmap)."""
    with sdpa_kernel([SDPBackend.MATH]):
        yield


def concatenated(f: Callable[..., Any]) -> Callable[..., Any]:
    """``f`` with a pytree output (tuple, dict) flattened into one vector: the Jacobian's rows
    are those of every output, in ``tree_flatten`` order. A tensor output is left as it is."""
    def cat(*args: Any) -> Any:
        out = f(*args)
        if isinstance(out, torch.Tensor):
            return out
        leaves = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        if not leaves:
            return out  # reported by the caller as a non-tensor output
        return torch.cat([t.reshape(-1) for t in leaves])

    cat.__qualname__ = getattr(f, "__qualname__", None) or type(f).__name__
    return cat


def at_sample(f: Any, x: Any, batched_model: Any, entry: str) -> Any:
    """The model of a matrix-free tool evaluated at ``x``: refused in a training mode that
    mixes samples or draws randomness, wrapped as a batch of one (outputs concatenated) with
    ``batched_model=True``; a module that fails on ``x`` as given names that option."""
    check_per_sample(f, random=True)
    if callable(f) and x is not None:
        integer_input(x, "x")
    if _validate.boolean(batched_model, "batched_model"):
        if x is None or not callable(f):
            raise InvalidOptionError(f"batched_model=True needs a callable model and its sample "
                                     f"x: {entry}(model, x, batched_model=True)")
        return concatenated(batch_of_one(f, (0,)))
    if isinstance(f, nn.Module) and x is not None:
        try:
            with torch.no_grad(), transformable_kernels():
                f(x)
        except JacobiteError:
            raise
        except (IndexError, RuntimeError, ValueError) as exc:
            raise ShapeError(f"{type(f).__name__}(x) failed with {type(exc).__name__}: {exc}; "
                             "if x is one sample of a model that expects a batch, pass "
                             "batched_model=True (or x.unsqueeze(0))") from exc
    return f
