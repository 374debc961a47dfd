"""Source text 003: the Gaussian integral, polar and linear maps, optimisation, deep learning,
Newton's method, the sigmoid, and the critical-point example of Appendix A."""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from ._base import Example

FA = "x**2 + 4*y**2 - 11*x + 8*y - 16"


@functools.cache
def _gauss() -> float:
    from ...transforms import integrate

    return integrate(lambda p: torch.exp(-(p**2).sum()), "polar", epsabs=1e-13,
                     epsrel=1e-13).value


def _polar_det() -> str:
    from ...symbolic import determinant

    return str(determinant("r*cos(t), r*sin(t)", "r, t"))


def _polar_det_ad() -> float:
    from ...transforms import Polar

    return float(Polar().det_jacobian(torch.tensor([1.7, 0.4], dtype=torch.float64)))


def _substitution() -> float:
    """∫₀¹ eˣ dx through x = 2 − u (decreasing), over the region u ∈ [1, 2], with |det J|."""
    from ...transforms import Affine, integrate

    T = Affine([[-1.0]], [2.0])
    return integrate(lambda x: torch.exp(x[0]), T, [(1.0, 2.0)], epsabs=1e-13,
                     epsrel=1e-13).value


def _gn_factor() -> float:
    """Hessian of Σ rᵢ² at a zero-residual point divided by JᵀJ (the text's H ≈ JᵀJ)."""
    from ... import hessian, jacobian

    def r(p: torch.Tensor) -> torch.Tensor:
        return torch.stack([p[0] * p[1] - 2.0, p[0] + p[1] ** 2 - 5.0])

    p = torch.tensor([1.0, 2.0], dtype=torch.float64)  # r(p) = 0
    H = hessian(lambda q: (r(q) ** 2).sum(), p)
    J = jacobian(r, p)
    return float(H[0, 0] / (J.T @ J)[0, 0])


def _grad_shape() -> list[int]:
    from ...nn import backprop

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(),
                              torch.nn.Linear(4, 2)).double()
    res = backprop(net, torch.randn(3, dtype=torch.float64), torch.zeros(2, dtype=torch.float64))
    return list(res.gradients["0.weight"].shape)


def _newton() -> list[float]:
    from ...solvers import newton_minimize

    def f(v: torch.Tensor) -> torch.Tensor:
        return v[0] ** 2 + 4 * v[1] ** 2 - 11 * v[0] + 8 * v[1] - 16

    res = newton_minimize(f, [0.0, 0.0], max_iter=1)
    return res.x.tolist()


def _rank_jtj() -> int:
    """rank of JᵀJ for a scalar loss (J = ∇Lᵀ, 1 × n) — the text's Hessian approximation."""
    from ... import jacobian

    def L(v: torch.Tensor) -> torch.Tensor:
        return (v[0] ** 2 + 4 * v[1] ** 2 - 11 * v[0] + 8 * v[1] - 16).reshape(1)

    J = jacobian(L, torch.tensor([1.0, 1.0], dtype=torch.float64))
    return int(torch.linalg.matrix_rank(J.T @ J))


def _sigmoid_diag() -> np.ndarray:
    from ...nn import activation_jacobian

    z = torch.tensor([-2.0, 0.0, 1.5], dtype=torch.float64)
    return activation_jacobian("sigmoid", z).diagonal().numpy()


def _sigmoid_closed() -> np.ndarray:
    s = 1 / (1 + np.exp(-np.array([-2.0, 0.0, 1.5])))
    return s * (1 - s)


def _crit(field: str):
    def f():
        from ...extrema import critical_points

        (cp,) = critical_points(FA, "x, y")
        if field == "point":
            return [float(v) for v in cp.point.values()]
        if field == "hessian":
            return [[float(v) for v in row] for row in cp.hessian.tolist()]
        if field == "det":
            return float(np.prod(np.asarray(cp.eigenvalues)))
        if field == "kind":
            return cp.kind
        return float(cp.value)
    return f


def _grad_sym() -> list[str]:
    from ...symbolic import gradient

    return gradient(FA, "x, y").strings()


EXAMPLES = [
    Example("003", "2.2.6 Final Result", "I² = ∬ e^−(x²+y²) dx dy via polar coordinates",
            _gauss, math.pi, lambda: math.pi,
            how='jacobite integrate "exp(-(x**2 + y**2))" --transform polar'),
    Example("003", "2.2.6 Final Result", "I = ∫ e^−x² dx = √I²", lambda: math.sqrt(_gauss()),
            math.sqrt(math.pi), lambda: math.sqrt(math.pi),
            how='jacobite integrate "exp(-(x**2 + y**2))" --transform polar'),
    Example("003", "3.2.3 Calculating the Determinant", "det ∂(x, y)/∂(r, θ) for polar",
            _polar_det, "r", lambda: "r",
            how='jacobite jacobian "r*cos(t), r*sin(t)" --vars r,t'),
    Example("003", "3.2.4 Result", "|det J| at (r, θ) = (1.7, 0.4) by AD", _polar_det_ad, 1.7,
            lambda: 1.7, how="jacobite.transforms.Polar().det_jacobian(u)"),
    Example("003", "4 Analogy to Single-Variable Calculus (eq. 31)",
            "∫₀¹ eˣ dx with the decreasing substitution x = 2 − u",
            _substitution, 1 - math.e, lambda: math.e - 1, text_ok=False,
            note="eq. (31) pairs |g′(u)| with oriented limits g⁻¹(a), g⁻¹(b), which run from 2 "
                 "down to 1 for the decreasing g(u) = 2 − u. Use g′(u) with oriented limits, or "
                 "|g′(u)| over the unoriented region (as jacobite does)",
            claim="1 − e ≈ −1.71828 (its eq. (31) applied as written)",
            how="jacobite.transforms.integrate(f, Affine([[-1]], [2]), [(1, 2)])"),
    Example("003", "5.2 Computing the Jacobian", "J_T of T(x) = A x is A",
            lambda: __import__("jacobite").jacobian(
                lambda v: torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64) @ v,
                torch.zeros(2, dtype=torch.float64)).numpy(),
            [[1, 2], [3, 4]], lambda: [[1.0, 2.0], [3.0, 4.0]],
            how="jacobite.jacobian(lambda x: A @ x, x)"),
    Example("003", "7.3 Nonlinear Least Squares (eq. 43)",
            "Hessian of Σ fᵢ² over JᵀJ at a zero residual", _gn_factor, 1.0, lambda: 2.0,
            decimals=0, text_ok=False,
            note="for Σ fᵢ² (no ½) the Hessian at a zero residual is 2JᵀJ, not JᵀJ; the "
                 "Gauss–Newton step is unchanged because the gradient 2Jᵀf carries the same 2",
            claim="H ≈ JᵀJ, a ratio of 1",
            how="jacobite.hessian(lambda p: (r(p) ** 2).sum(), p)"),
    Example("003", "8.2.3 Propagation (eq. 46)", "shape of ∇_W L for the first layer "
            "(Linear 3→4) of a 3→4→2 network", _grad_shape, [2, 3], lambda: [4, 3], decimals=0,
            text_ok=False,
            note="J⁽ᴸ⁾⋯J⁽¹⁾ is the input-to-output Jacobian (2 × 3 here), not a weight gradient, "
                 "which has the weight's shape; backpropagation applies the transposed layer "
                 "Jacobians to ∇L from the output backwards",
            claim="∇_W L = J⁽²⁾J⁽¹⁾, shape [2, 3]",
            how="jacobite.nn.backprop(model, x, target)"),
    Example("003", "9.1 Newton's Method (eq. 50)", "one Newton step from (0, 0) on f of "
            "Appendix A", _newton, None, lambda: [5.5, -1.0],
            how="jacobite.solvers.newton_minimize(f, [0, 0])"),
    Example("003", "9.1 Newton's Method (eq. 49)", "rank of JᵀJ for a scalar loss (n = 2)",
            _rank_jtj, 2, lambda: 1, decimals=0, text_ok=False,
            note="H ≈ JᵀJ is the Gauss–Newton approximation for least squares, J the residual "
                 "Jacobian; for a scalar loss J = ∇Lᵀ is 1 × n, so JᵀJ = ∇L∇Lᵀ has rank 1 and "
                 "eq. (50) cannot invert it",
            claim="an invertible H ≈ JᵀJ, rank 2",
            how="jacobite.jacobian(L, x)"),
    Example("003", "10.2 The Diagonal Jacobian", "diag of J_σ = σ(z)(1 − σ(z)), z = (−2, 0, 1.5)",
            _sigmoid_diag, None, _sigmoid_closed,
            how="jacobite.nn.activation_jacobian('sigmoid', z)"),
    Example("003", "A.2 Gradient Calculation", "∇f", _grad_sym, ["2*x - 11", "8*y + 8"],
            lambda: ["2*x - 11", "8*y + 8"], how="jacobite.symbolic.gradient(f)"),
    Example("003", "A.3 Finding Critical Points", "the critical point", _crit("point"),
            [5.5, -1.0], lambda: [5.5, -1.0], how=f'jacobite extrema "{FA}"'),
    Example("003", "A.4 The Hessian Matrix", "H", _crit("hessian"), [[2, 0], [0, 8]],
            lambda: [[2.0, 0.0], [0.0, 8.0]], how=f'jacobite extrema "{FA}"'),
    Example("003", "A.5 Determining the Extrema", "det H", _crit("det"), 16, lambda: 16.0,
            how=f'jacobite extrema "{FA}"'),
    Example("003", "A.5 Determining the Extrema", "kind", _crit("kind"), "minimum",
            lambda: "minimum", how=f'jacobite extrema "{FA}"'),
    Example("003", "A.5 Determining the Extrema", "f(11/2, −1)", _crit("value"), -201 / 4,
            lambda: -50.25, how=f'jacobite extrema "{FA}"'),
]
