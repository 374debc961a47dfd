"""Source text 002: F(x, y) = [x² + y, xy], linear approximation, special cases, exercises."""

from __future__ import annotations

import numpy as np
import torch

from ._base import Example

F = "x**2 + y, x*y"


def _sym(exprs: str, variables: str | None = None):
    def f():
        from ...symbolic import jacobian

        return jacobian(exprs, variables).strings()
    return f


def _sympy_jacobian(build, names: str):
    """Independent oracle: SymPy's own Matrix.jacobian of expressions built from symbols."""
    def f():
        import sympy

        syms = sympy.symbols(names, real=True)
        M = sympy.Matrix(build(sympy, *syms)).jacobian(syms)
        return [[str(e) for e in M.row(i)] for i in range(M.rows)]
    return f


def _ad_at(x: float, y: float):
    def f():
        from ... import jacobian

        return jacobian(lambda v: torch.stack([v[0] ** 2 + v[1], v[0] * v[1]]),
                        torch.tensor([x, y], dtype=torch.float64)).numpy()
    return f


def _linear_approx():
    from ...symbolic import linear_approximation

    return [str(e) for e in linear_approximation(F, {"x": 1, "y": 2})]


def _plan_mode() -> str:
    from ... import jacobian_plan

    W = torch.ones(1000, 2, dtype=torch.float64)
    return jacobian_plan(lambda v: torch.tanh(W @ v), torch.zeros(2, dtype=torch.float64)).mode


def _det_ex2():
    from ...symbolic import determinant

    return str(determinant("x**2 - y**2, 2*x*y", "x, y"))


def _layer():
    from ...nn import linear_layer_jacobian

    W = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]], dtype=torch.float64)
    b = torch.tensor([0.1, -0.2], dtype=torch.float64)
    x = torch.tensor([0.3, -0.6, 0.9], dtype=torch.float64)
    return linear_layer_jacobian(W, x, "sigmoid", bias=b).to_dense().numpy()


def _layer_closed():
    W = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])
    z = W @ np.array([0.3, -0.6, 0.9]) + np.array([0.1, -0.2])
    s = 1 / (1 + np.exp(-z))
    return np.diag(s * (1 - s)) @ W


A = [[2.0, -1.0, 0.5], [0.0, 3.0, 1.0]]

EXAMPLES = [
    Example("002", "3. A Detailed Example", "J of F(x, y) = [x² + y, xy]", _sym(F),
            [["2*x", "1"], ["y", "x"]], _sympy_jacobian(lambda sp, x, y: [x**2 + y, x * y], "x y"),
            how='jacobite jacobian "x**2 + y, x*y"'),
    Example("002", "3. Interpreting the Jacobian at Specific Points", "J_F(1, 2)", _ad_at(1, 2),
            [[2, 1], [2, 1]], lambda: [[2.0, 1.0], [2.0, 1.0]],
            note="det J_F(1, 2) = 2·1² − 2 = 0: F is singular there (the source text does not say)",
            how='jacobite jacobian "x**2 + y, x*y" --at x=1,y=2'),
    Example("002", "3. Interpreting the Jacobian at Specific Points", "J_F(0, 1)", _ad_at(0, 1),
            [[0, 1], [1, 0]], lambda: [[0.0, 1.0], [1.0, 0.0]],
            how='jacobite jacobian "x**2 + y, x*y" --at x=0,y=1'),
    Example("002", "4. The Jacobian as a Linear Approximation", "F(1, 2) + J_F(1, 2)(x − 1, y − 2)",
            _linear_approx, None, lambda: ["2*x + y - 1", "2*x + y - 2"],
            how='jacobite.symbolic.linear_approximation("x**2 + y, x*y", {"x": 1, "y": 2})'),
    Example("002", "6. Special Cases", "J of a linear map F(x) = A x is A",
            lambda: __import__("jacobite").jacobian(
                lambda v: torch.tensor(A, dtype=torch.float64) @ v,
                torch.zeros(3, dtype=torch.float64)).numpy(), None, lambda: A,
            note="the source text calls this the 'Identity Jacobian'; it is the matrix A itself",
            how="jacobite.jacobian(lambda x: A @ x, x)"),
    Example("002", "9. Computational Aspects",
            "mode for few inputs, many outputs (n = 2, m = 1000)",
            _plan_mode, "reverse", lambda: "forward", text_ok=False,
            note="the source text swaps the two modes: forward mode builds one column per JVP, "
                 "so it suits few inputs; reverse mode builds one row per VJP, so it suits few "
                 "outputs",
            how="jacobite.jacobian_plan(f, x).mode"),
    Example("002", "10. Exercises 1", "J of [x² + yz, sin(xy), e^(x+z)]",
            _sym("x**2 + y*z, sin(x*y), exp(x + z)", "x, y, z"), None,
            _sympy_jacobian(lambda sp, x, y, z: [x**2 + y * z, sp.sin(x * y), sp.exp(x + z)],
                            "x y z"),
            how='jacobite jacobian "x**2 + y*z, sin(x*y), exp(x + z)" --vars x,y,z'),
    Example("002", "10. Exercises 2", "det J of [x² − y², 2xy]", _det_ex2, None,
            lambda: "4*(x**2 + y**2)",
            how='jacobite jacobian "x**2 - y**2, 2*x*y"'),
    Example("002", "10. Exercises 4", "J of σ(W x + b) = diag(σ'(z)) W (sigmoid)", _layer, None,
            _layer_closed, how="jacobite.nn.linear_layer_jacobian(W, x, 'sigmoid', bias=b)"),
]
