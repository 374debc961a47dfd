"""Dense Jacobians on torch.func: forward, reverse or auto mode, chunked under a memory budget.

Part of the *compute* layer. Everything here is built on ``torch.func`` (``vjp``, ``jvp``,
``vmap``, ``grad``, ``functional_call``); jacobite does no differentiation of its own.
"""

from ._plan import JacobianPlan
from ._probe import PROBES as _PROBES
from ._sharded import JacobianBlock
from .batched import batch_jacobian
from .hessian import hessian
from .jacobian import _EXPRESS, jacobian, jacobian_plan, value_and_jacobian
from .linearize import linearize
from .modules import module_jacobian
from .products import hvp, jvp, vjp

__all__ = [
    "JacobianBlock",
    "JacobianPlan",
    "batch_jacobian",
    "clear_cache",
    "hessian",
    "hvp",
    "jacobian",
    "jacobian_plan",
    "jvp",
    "linearize",
    "module_jacobian",
    "value_and_jacobian",
    "vjp",
]


def clear_cache() -> None:
    """Forget every cached probe and plan (output sizes, working memory, the chosen mode) of the
    functions seen so far, including the fast lane's, e.g. after a function changed behaviour."""
    _PROBES.clear()
    _EXPRESS.clear()
