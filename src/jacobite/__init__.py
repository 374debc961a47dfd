"""jacobite: the Jacobian toolkit for PyTorch.

Compute a Jacobian at the speed of its structure, understand it, put it to work.

>>> import torch, jacobite
>>> f = lambda v: torch.stack([v[0] ** 2 + v[1], v[0] * v[1]])
>>> jacobite.jacobian(f, torch.tensor([1.0, 2.0], dtype=torch.float64))
tensor([[2., 1.],
        [2., 1.]], dtype=torch.float64)
"""

from . import (
    analysis,
    config,
    errors,
    extrema,
    multiobjective,
    nn,
    numeric,
    operators,
    solvers,
    sparse,
    symbolic,
    transforms,
    viz,
)
from .checking import CheckResult, check
from .dense import (
    JacobianPlan,
    batch_jacobian,
    clear_cache,
    hessian,
    hvp,
    jacobian,
    jacobian_plan,
    jvp,
    linearize,
    module_jacobian,
    value_and_jacobian,
    vjp,
)
from .solvers import (
    LeastSquaresResult,
    RootResult,
    curve_fit,
    implicit_jacobian,
    least_squares,
    root,
    solve_implicit,
)

__version__ = "0.1.0"

__all__ = [
    "CheckResult",
    "JacobianPlan",
    "LeastSquaresResult",
    "RootResult",
    "__version__",
    "analysis",
    "batch_jacobian",
    "check",
    "clear_cache",
    "config",
    "curve_fit",
    "errors",
    "extrema",
    "hessian",
    "hvp",
    "implicit_jacobian",
    "jacobian",
    "jacobian_plan",
    "jvp",
    "least_squares",
    "linearize",
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
    "viz",
    "vjp",
]
