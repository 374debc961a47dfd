"""Dependency rules for matrix products, exploiting the zeros of constant operands.

``out[i, j] = Σ_k A[i, k] B[k, j]`` depends on ``deps(A[i, k])`` only where ``B[k, j] ≠ 0`` when
``B`` is a constant (its value does not depend on the input), and symmetrically for ``A``;
when an operand's value depends on the input its zeros are not trusted (all-ones mask).

>>> import torch
>>> _mask(torch.tensor([[0.0, 2.0]]), trusted=True).toarray().tolist()
[[False, True]]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from jacobite.sparse._registry import Call, rule
from jacobite.sparse._rules import (
    Deps,
    Lookup,
    _broadcast_index,
    bind,
    gather_rows,
    group_matrix,
    union,
)

aten = torch.ops.aten


def _mask(t: torch.Tensor, trusted: bool) -> sp.csr_matrix:
    """Nonzero pattern of a 2-D tensor; all ones when its zeros may move with the input."""
    if trusted:
        return sp.csr_matrix(t.detach().ne(0).cpu().numpy())
    return sp.csr_matrix(np.ones(tuple(t.shape), bool))


def _bmm(a: torch.Tensor, b: torch.Tensor, da: Deps, db: Deps, ta: bool, tb: bool) -> Deps:
    """Batched product ``(B, m, k) @ (B, k, n)``; dependency rows ordered (batch, i, j).

    ``da``/``db`` are the operands' dependency matrices, ``ta``/``tb`` whether their values
    depend on the input (then their zeros are not exploited).
    """
    if da is None and db is None:
        return None
    batch, m, _ = a.shape
    n = b.shape[2]
    parts = []
    ones_a = ta or bool(a.detach().ne(0).all())
    ones_b = tb or bool(b.detach().ne(0).all())
    if da is not None and ones_b:  # no zeros to exploit: reduce over k, then broadcast over j
        red = (group_matrix((batch, m, a.shape[2]), [2]) @ da).tocsr()
        parts.append(gather_rows(red, _broadcast_index((batch, m, 1), (batch, m, n))))
        da = None
    if db is not None and ones_a:
        red = (group_matrix(tuple(b.shape), [1]) @ db).tocsr()
        parts.append(gather_rows(red, _broadcast_index((batch, 1, n), (batch, m, n))))
        db = None
    if da is not None:
        blocks = [sp.kron(sp.identity(m, dtype=bool, format="csr"),
                          _mask(b[i], not tb).T, format="csr") for i in range(batch)]
        g = sp.block_diag(blocks, format="csr") if batch > 1 else blocks[0]
        parts.append((g.astype(bool) @ da).tocsr())
    if db is not None:
        blocks = [sp.kron(_mask(a[i], not ta), sp.identity(n, dtype=bool, format="csr"),
                          format="csr") for i in range(batch)]
        g = sp.block_diag(blocks, format="csr") if batch > 1 else blocks[0]
        parts.append((g.astype(bool) @ db).tocsr())
    return union(parts)


MATMUL_OPS = {aten.mm.default, aten.bmm.default, aten.mv.default, aten.dot.default,
              aten.vdot.default, aten.addmm.default, aten.addmv.default, aten.baddbmm.default}


def matmul(func: Any, args: tuple, kwargs: dict, out: torch.Tensor, deps: Lookup,
           tainted: Callable[[Any], bool]) -> Deps:
    """mm / bmm / mv / dot and their ``add*`` forms (bias broadcast onto the product)."""
    b = bind(func, args, kwargs)
    name = func._schema.name.split("::")[-1]
    def pair(x: torch.Tensor, y: torch.Tensor) -> tuple:
        return deps(x), deps(y), tainted(x), tainted(y)

    if name in ("mm", "addmm"):
        x, y = b["mat1"] if "mat1" in b else b["self"], b["mat2"]
        prod = _bmm(x.unsqueeze(0), y.unsqueeze(0), *pair(x, y))
    elif name in ("bmm", "baddbmm"):
        x, y = (b["batch1"], b["batch2"]) if "batch1" in b else (b["self"], b["mat2"])
        prod = _bmm(x, y, *pair(x, y))
    elif name in ("mv", "addmv"):
        x, y = (b["mat"], b["vec"]) if "mat" in b else (b["self"], b["vec"])
        prod = _bmm(x.unsqueeze(0), y.reshape(1, -1, 1), *pair(x, y))
    else:  # dot (``tensor``), vdot (``other``)
        x, y = b["self"], b["tensor"] if "tensor" in b else b["other"]
        prod = _bmm(x.reshape(1, 1, -1), y.reshape(1, -1, 1), *pair(x, y))
    if name.startswith("add") or name == "baddbmm":
        bias = b["self"]
        if bias is not None and (bd := deps(bias)) is not None:
            if tuple(bias.shape) != tuple(out.shape):
                bd = gather_rows(bd, _broadcast_index(bias.shape, out.shape))
            prod = union([prod, bd])
    return prod


@rule(*MATMUL_OPS)
def matmul_rule(c: Call) -> list[Deps]:
    """mm / bmm / mv / dot and their ``add*`` forms: see :func:`matmul`."""
    return [matmul(c.func, c.args, c.kwargs, c.outs[0], c.deps, c.tainted)]
