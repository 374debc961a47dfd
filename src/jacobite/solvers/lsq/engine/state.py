"""The state of a batch of least-squares problems, one row per problem.

Every tensor has the batch first: ``B`` problems of ``n`` unknowns and ``m`` residuals each
(``B = 1`` for a single problem). The solver loop (:mod:`.loop`) advances only the problems whose
``status`` is :data:`~.status.RUNNING`; a problem that stopped keeps its row unchanged.

========== =========== ==========================================================
field      shape       meaning
========== =========== ==========================================================
``x``      (B, n)      the current iterate
``f``      (B, m)      residuals at ``x``
``J``      (B, m, n)   Jacobian at ``x`` (a SciPy sparse ``m × n`` matrix when B = 1
                       and the Jacobian is sparse)
``cost``   (B,)        ``½ Σ ρ(f²)`` at ``x`` (``½‖f‖²`` for the linear loss)
``g``      (B, n)      gradient of the cost, ``J̃ᵀ f̃`` (robust loss: Triggs' model)
``D``      (B, n)      variable scaling (``x_scale="jac"``: running max of column norms)
``delta``  (B,)        trust-region radius (in the scaled variables ``D x``)
``lam``    (B,)        Levenberg–Marquardt damping of the last step (0: Gauss–Newton)
``status`` (B,) int64  :data:`~.status.RUNNING` or a final status (see :mod:`.status`)
``nit``    (B,) int64  accepted steps
``nfev``   (B,) int64  residual evaluations spent on this problem
``njev``   (B,) int64  Jacobian evaluations spent on this problem
``extra``  dict        per-problem tensors (B, ...) a step rule or globalisation keeps
                       between iterations (factorisations, bounds, counters); the loop
                       never reads them, only splits them by rows with the state
                       (:meth:`State.rows`)
========== =========== ==========================================================

>>> import torch
>>> s = State.start(torch.zeros(2, 3, dtype=torch.float64), torch.ones(2, 5, dtype=torch.float64),
...                 torch.ones(2, 5, 3, dtype=torch.float64))
>>> s.cost.tolist(), s.running.tolist(), s.B, s.n, s.m
([2.5, 2.5], [True, True], 2, 3, 5)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from .status import RUNNING

__all__ = ["LossFn", "State"]

#: A robust loss on batched residuals: ``rho(f)`` for ``f`` of shape (B, m) returns a (3, B, m)
#: tensor of ``ρ(f²), ρ'(f²), ρ''(f²)`` with ``f_scale`` applied (SciPy's convention, batched).
LossFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class State:
    """One row per problem; see the module doc for the fields."""

    x: torch.Tensor
    f: torch.Tensor
    J: Any
    cost: torch.Tensor
    g: torch.Tensor
    D: torch.Tensor
    delta: torch.Tensor
    lam: torch.Tensor
    status: torch.Tensor
    nit: torch.Tensor
    nfev: torch.Tensor
    njev: torch.Tensor
    loss: LossFn | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def start(cls, x: torch.Tensor, f: torch.Tensor, J: Any, loss: LossFn | None = None,
              nfev: int = 1, njev: int = 1) -> State:
        """A state at ``x`` with residuals ``f`` and Jacobian ``J`` already evaluated (counted
        as ``nfev`` / ``njev`` evaluations); every problem RUNNING, ``D = 1``, radius and
        damping 0 (the globalisation sets its first radius)."""
        B, n = x.shape
        zeros = x.new_zeros(B)

        def count(v: int) -> torch.Tensor:
            return torch.full((B,), v, dtype=torch.int64, device=x.device)

        return cls(x=x, f=f, J=J, cost=cost_of(f, loss), g=x.new_zeros(B, n),
                   D=x.new_ones(B, n), delta=zeros, lam=zeros.clone(), status=count(RUNNING),
                   nit=count(0), nfev=count(nfev), njev=count(njev), loss=loss)

    @property
    def B(self) -> int:
        """Number of problems."""
        return int(self.x.shape[0])

    @property
    def n(self) -> int:
        """Unknowns per problem."""
        return int(self.x.shape[1])

    @property
    def m(self) -> int:
        """Residuals per problem."""
        return int(self.f.shape[1])

    @property
    def running(self) -> torch.Tensor:
        """(B,) bool: the problems still iterating."""
        return self.status == RUNNING

    def rows(self, idx: torch.Tensor) -> State | None:
        """The state of the problems ``idx`` (an int64 index), ``extra`` included; ``None``
        where a field is not a tensor with one row per problem (a SciPy sparse ``J``, an
        ``extra`` entry of another kind) or a robust loss holds per-problem scales: such a
        state is not split.

        >>> s = State.start(torch.zeros(3, 1, dtype=torch.float64),
        ...                 torch.arange(3.0, dtype=torch.float64)[:, None],
        ...                 torch.ones(3, 1, 1, dtype=torch.float64))
        >>> s.rows(torch.tensor([2])).cost.tolist()
        [2.0]
        """
        B = self.B
        if self.loss is not None:
            return None

        def one(v: Any) -> Any:
            if isinstance(v, torch.Tensor) and v.dim() >= 1 and v.shape[0] == B:
                return v.index_select(0, idx)
            if isinstance(v, tuple):
                parts = tuple(one(u) for u in v)
                return None if any(u is None for u in parts) else parts
            return None

        fields = {k: one(getattr(self, k)) for k in _ROWS}
        extra = {k: one(v) for k, v in self.extra.items()}
        if any(v is None for v in (*fields.values(), *extra.values())):
            return None
        return State(**fields, extra=extra)

    def put_rows(self, idx: torch.Tensor, part: State) -> None:
        """Write the rows of ``part`` (from :meth:`rows`) back as the problems ``idx``; ``extra``
        keeps the entries it had (only the fields are written back)."""
        for k in _ROWS:
            setattr(self, k, getattr(self, k).index_copy(0, idx, getattr(part, k)))


_ROWS = ("x", "f", "J", "cost", "g", "D", "delta", "lam", "status", "nit", "nfev", "njev")


def cost_of(f: torch.Tensor, loss: LossFn | None) -> torch.Tensor:
    """``½ Σ ρ(f²)`` per problem for residuals ``f`` of shape (B, m); ``½‖f‖²`` when ``loss`` is
    ``None``.

    >>> cost_of(torch.tensor([[3.0, 4.0]]), None).tolist()
    [12.5]
    """
    if loss is None:
        return 0.5 * (f * f).sum(-1)
    return 0.5 * loss(f)[0].sum(-1)
