"""The sparsity-rule registry: which function propagates dependencies through which aten op.

A *rule* receives one :class:`Call` (the op, its real arguments and outputs, and lookups for the
dependency matrices and the taint of tensors) and returns the dependency matrices of the op's
outputs, or ``None`` when this particular call is outside what it handles. Rules are registered
with the :func:`rule` decorator under an op overload (``aten.max.other``), an overload packet
(``aten.max``) or a :class:`torch.Tag` (``torch.Tag.pointwise``); :func:`lookup` prefers the
overload, then the packet, then the op's tags.

An op with no rule, or whose rule returns ``None``, gets the tracker's conservative dense
dependency (with a warning). An exception raised *inside* a rule is a bug in that rule, not a
missing rule: :func:`apply` re-raises it as :class:`~jacobite.errors.UnsupportedOperationError`
naming the op and the rule, chained to the original.

>>> import torch
>>> from jacobite.sparse import detect  # loads every rule
>>> lookup(torch.ops.aten.sin.default).__name__
'pointwise_rule'
>>> lookup(torch.ops.aten.max.other).__name__, lookup(torch.ops.aten.max.dim).__name__
('pointwise_rule', 'reduce_rule')
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar

import scipy.sparse as sp

from ..errors import UnsupportedOperationError

__all__ = ["RULES", "Call", "Deps", "Rule", "apply", "lookup", "rule"]

#: An operand's dependency pattern (rows: its entries, columns: the inputs); None when it does
#: not depend on the inputs. (SciPy ships no types, so checkers read the matrix as Any.)
Deps: TypeAlias = sp.csr_matrix | None


@dataclass(frozen=True)
class Call:
    """One aten call as a rule sees it.

    ``outs`` are the flattened outputs, ``deps(t)`` the dependency matrix of a tensor (``None``:
    a constant), ``tainted(t)`` whether its *value* depends on the input, ``n`` the number of
    input elements, ``keep_detached`` whether ``detach`` keeps dependencies (gradient tracing).
    """

    func: Any
    args: tuple
    kwargs: dict
    outs: list
    deps: Callable[[Any], Deps]
    tainted: Callable[[Any], bool]
    n: int
    keep_detached: bool = False

    @property
    def packet(self) -> Any:
        """The op's overload packet (``aten.mul`` for ``aten.mul.Tensor``)."""
        return self.func.overloadpacket

    @property
    def name(self) -> str:
        """The op's schema name without namespace (``"mul"``, ``"max_pool2d_with_indices"``)."""
        return str(self.func._schema.name.split("::")[-1])


Rule = Callable[[Call], list[Deps] | None]
RuleT = TypeVar("RuleT", bound=Rule)

#: op overload, overload packet or torch.Tag -> rule
RULES: dict[Hashable, Rule] = {}


def rule(*ops: Hashable) -> Callable[[RuleT], RuleT]:
    """Register the decorated function as the rule of every op in ``ops``.

    Each key may be registered once; a second registration raises ``ValueError`` (rules are
    meant to be unambiguous: override a packet's rule for one overload by registering that
    overload).
    """

    def register(fn: RuleT) -> RuleT:
        for op in ops:
            old = RULES.get(op)
            if old is not None and old is not fn:
                raise ValueError(f"{op} already has the sparsity rule {old.__name__}")
            RULES[op] = fn
        return fn

    return register


def lookup(func: Any) -> Rule | None:
    """The rule for an op overload: its own, its packet's, then its tags' (``None``: none)."""
    found = RULES.get(func)
    if found is None:
        found = RULES.get(func.overloadpacket)
    if found is None:
        for tag in func.tags:
            if (found := RULES.get(tag)) is not None:
                break
    return found


def apply(fn: Rule, call: Call) -> list[Deps] | None:
    """Run a rule; an exception inside it (or a result of the wrong length) surfaces as a typed
    error naming the op and the rule, chained to the original."""
    try:
        res = fn(call)
        if res is not None and len(res) != len(call.outs):
            raise ValueError(f"it returned {len(res)} dependency matrices for "
                             f"{len(call.outs)} outputs")
    except Exception as exc:
        raise UnsupportedOperationError(
            f"the sparsity rule {fn.__name__} failed on {call.func} ({type(exc).__name__}: "
            f"{exc}); this is a bug in jacobite.sparse, please report it with the function. "
            "Meanwhile pass pattern= to jacobite.sparse.prepare, or use the dense "
            "jacobite.jacobian(f, x)"
        ) from exc
    return res
