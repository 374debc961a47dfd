"""Source text 003: the Gaussian integral, polar and linear maps, optimisation, deep learning,
Newton's method, Jacobian-enhanced training, the sigmoid, and the critical-point example of
Appendix A."""

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


# §9.2, eq. (51): L_JENN = L_function + λ L_Jacobian

_LAM = 0.5


def _eq51_data() -> tuple[torch.nn.Linear, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A linear layer 3 → 2 (its Jacobian is W at every sample) and seeded targets, one
    partial missing (NaN)."""
    g = torch.Generator().manual_seed(51)
    lin = torch.nn.Linear(3, 2).double()
    with torch.no_grad():
        lin.weight.copy_(torch.randn(2, 3, generator=g, dtype=torch.float64))
        lin.bias.copy_(torch.randn(2, generator=g, dtype=torch.float64))
    x = torch.randn(4, 3, generator=g, dtype=torch.float64)
    y = torch.randn(4, 2, generator=g, dtype=torch.float64)
    dydx = torch.randn(4, 2, 3, generator=g, dtype=torch.float64)
    dydx[1, 0, 2] = float("nan")
    return lin, x, y, dydx


def _eq51_loss() -> float:
    from ...nn import sobolev_loss

    lin, x, y, dydx = _eq51_data()
    return float(sobolev_loss(lin, x, y, dydx, weight=_LAM).total.detach())


def _eq51_closed() -> float:
    """Mean squared error of the values plus λ times that of the known partials, in NumPy."""
    lin, x, y, dydx = _eq51_data()
    W, b = lin.weight.detach().numpy(), lin.bias.detach().numpy()
    X, Y, D = x.numpy(), y.numpy(), dydx.numpy()
    values = np.mean((X @ W.T + b - Y) ** 2)
    return float(values + _LAM * np.nanmean((W[None] - D) ** 2))


# "higher accuracy with less training data": Appendix A's f from three samples, fitted by a
# model linear in its six weights (1, x, y, x², xy, y²), with and without the partials

_TRAIN = ((0.0, 0.0), (1.0, 2.0), (-2.0, 1.0))


def _fa(v: torch.Tensor) -> torch.Tensor:
    return (v[:, 0] ** 2 + 4 * v[:, 1] ** 2 - 11 * v[:, 0] + 8 * v[:, 1] - 16)[:, None]


def _fa_jacobian(v: torch.Tensor) -> torch.Tensor:
    return torch.stack([2 * v[:, 0] - 11, 8 * v[:, 1] + 8], dim=1)[:, None, :]


def _test_points() -> torch.Tensor:
    g = torch.linspace(-3.0, 3.0, 7, dtype=torch.float64)
    return torch.cartesian_prod(g, g)


def _quadratic_features(v: torch.Tensor) -> torch.Tensor:
    x, y = v[:, 0], v[:, 1]
    return torch.stack([x, y, x * x, x * y, y * y], dim=1)


def _fit_quadratic(partials: bool) -> float:
    """Test RMS error after minimising the Sobolev loss (values only where not ``partials``)
    by L-BFGS from zero weights."""
    from ...nn import sobolev_loss

    x = torch.tensor(_TRAIN, dtype=torch.float64)
    y, dydx = _fa(x), (_fa_jacobian(x) if partials else None)
    lin = torch.nn.Linear(5, 1).double()
    torch.nn.init.zeros_(lin.weight)
    torch.nn.init.zeros_(lin.bias)

    def model(v: torch.Tensor) -> torch.Tensor:
        return lin(_quadratic_features(v))

    opt = torch.optim.LBFGS(lin.parameters(), max_iter=200, tolerance_grad=1e-13,
                            tolerance_change=0.0, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = sobolev_loss(model, x, y, dydx, weight=1.0).total
        loss.backward()
        return loss

    opt.step(closure)
    xt = _test_points()
    with torch.no_grad():
        return float(((model(xt) - _fa(xt)) ** 2).mean().sqrt())


def _fit_measured() -> list[float]:
    return [_fit_quadratic(False), _fit_quadratic(True)]


def _fit_closed() -> list[float]:
    """The same minimisers by linear least squares in NumPy (minimum norm where the values
    alone leave weights undetermined, as L-BFGS from zero finds), and their test errors."""
    X = np.array(_TRAIN)
    B = len(X)
    x, y = X[:, 0], X[:, 1]
    one, zero = np.ones(B), np.zeros(B)
    f = x**2 + 4 * y**2 - 11 * x + 8 * y - 16
    values = np.column_stack([x, y, x * x, x * y, y * y, one]) / np.sqrt(B)
    d_dx = np.column_stack([one, zero, 2 * x, y, zero, zero])
    d_dy = np.column_stack([zero, one, zero, x, 2 * y, zero])
    s = np.sqrt(1.0 / (2 * B))  # λ = 1 over the 2B partials
    out = []
    for rows, rhs in (([values], [f / np.sqrt(B)]),
                      ([values, s * d_dx, s * d_dy],
                       [f / np.sqrt(B), s * (2 * x - 11), s * (8 * y + 8)])):
        c = np.linalg.lstsq(np.vstack(rows), np.concatenate(rhs), rcond=None)[0]
        T = _test_points().numpy()
        u, v = T[:, 0], T[:, 1]
        pred = np.column_stack([u, v, u * u, u * v, v * v, np.ones(len(T))]) @ c
        truth = u**2 + 4 * v**2 - 11 * u + 8 * v - 16
        out.append(float(np.sqrt(np.mean((pred - truth) ** 2))))
    return out


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
    Example("003", "9.2 Jacobian-Enhanced Neural Networks (eq. 51)",
            "L_JENN = L_function + λ L_Jacobian, λ = 0.5, for a linear layer 3 → 2 (J = W) on "
            "4 samples, one partial missing", _eq51_loss, None, _eq51_closed,
            note="sobolev_loss's total against the mean squared error of the values plus λ "
                 "times that of the known partials, computed in NumPy",
            how="jacobite.nn.sobolev_loss(model, x, y, dydx, weight=0.5).total"),
    Example("003", "9.2 Jacobian-Enhanced Neural Networks",
            "test RMS error on a 7 × 7 grid after fitting Appendix A's f from 3 samples: "
            "values only, values + Jacobians", _fit_measured, None, _fit_closed,
            note="the same 3 samples and model (weights of 1, x, y, x², xy, y²); 3 values "
                 "leave 3 of the 6 weights free, 3 values and 6 partials fix them all: the "
                 "error falls from about 34 to rounding, as the text's 'higher accuracy with "
                 "less training data' says; checked against the least-squares minimisers "
                 "in NumPy",
            how="jacobite.nn.sobolev_loss(model, x, y, dydx) minimised with torch.optim.LBFGS"),
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
