"""jacobite: the Jacobian toolkit for PyTorch.

Compute a Jacobian at the speed of its structure, understand it, put it to work.

>>> import torch, jacobite
>>> f = lambda v: torch.stack([v[0] ** 2 + v[1], v[0] * v[1]])
>>> jacobite.jacobian(f, torch.tensor([1.0, 2.0], dtype=torch.float64))
tensor([[2., 1.],
        [2., 1.]], dtype=torch.float64)

Subpackages and the names below load on first use (``jacobite.sparse``, ``from jacobite import
least_squares``), so ``import jacobite`` costs little beyond ``import torch``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports

# For type checkers only; hessian, jacobian, linearize and root come from their own modules,
# as each name is also a submodule of its package.
if TYPE_CHECKING:  # pragma: no cover
    from . import (
        analysis,
        config,
        curvature,
        distributed,
        errors,
        extrema,
        kinematics,
        multiobjective,
        nn,
        numeric,
        operators,
        solvers,
        sparse,
        symbolic,
        transforms,
        vision,
        viz,
    )
    from .analysis.divergence import Divergence, divergence
    from .analysis.logdet import LogDet, logdet
    from .checking import CheckResult, check
    from .dense import (
        JacobianPlan,
        batch_jacobian,
        clear_cache,
        hvp,
        jacobian_plan,
        jvp,
        module_jacobian,
        value_and_jacobian,
        vjp,
    )
    from .dense.hessian import hessian
    from .dense.jacobian import jacobian
    from .dense.linearize import linearize
    from .solvers import (
        LeastSquaresResult,
        RootResult,
        curve_fit,
        implicit_jacobian,
        least_squares,
        solve_implicit,
    )
    from .solvers.root import root
    from .transforms.flows import LogDetCheck, check_logdet

__version__ = "0.1.0"

__all__ = [
    "CheckResult",
    "Divergence",
    "JacobianPlan",
    "LeastSquaresResult",
    "LogDet",
    "LogDetCheck",
    "RootResult",
    "__version__",
    "analysis",
    "batch_jacobian",
    "check",
    "check_logdet",
    "clear_cache",
    "config",
    "curvature",
    "curve_fit",
    "distributed",
    "divergence",
    "errors",
    "extrema",
    "hessian",
    "hvp",
    "implicit_jacobian",
    "jacobian",
    "jacobian_plan",
    "jvp",
    "kinematics",
    "least_squares",
    "linearize",
    "logdet",
    "module_jacobian",
    "multiobjective",
    "nn",
    "numeric",
    "operators",
    "root",
    "solve_implicit",
    "solvers",
    "sparse",
    "symbolic",
    "transforms",
    "value_and_jacobian",
    "vision",
    "viz",
    "vjp",
]

# where each re-exported name lives; the other names of __all__ are subpackages
_SOURCE = {
    **dict.fromkeys(("Divergence", "LogDet", "divergence", "logdet"), ".analysis"),
    **dict.fromkeys(("CheckResult", "check"), ".checking"),
    **dict.fromkeys(("JacobianPlan", "batch_jacobian", "clear_cache", "hessian", "hvp",
                     "jacobian", "jacobian_plan", "jvp", "linearize", "module_jacobian",
                     "value_and_jacobian", "vjp"), ".dense"),
    **dict.fromkeys(("LeastSquaresResult", "RootResult", "curve_fit", "implicit_jacobian",
                     "least_squares", "root", "solve_implicit"), ".solvers"),
    **dict.fromkeys(("LogDetCheck", "check_logdet"), ".transforms.flows"),
}


# a subpackage or a re-exported name loads on first use
__getattr__, __dir__ = lazy_exports(
    __name__, globals(), _SOURCE, {n for n in __all__ if n not in _SOURCE and n[0] != "_"})
