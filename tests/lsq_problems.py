"""Battery of nonlinear least-squares problems with known answers, shared by the least-squares
tests.

Each :class:`LsqProblem` has residuals in torch, a start, optional bounds and its answer: a
closed form (``x_star`` given) or, for non-zero-residual problems, the oracle
:func:`oracle` — SciPy's ``least_squares`` with the exact Jacobian (``torch.func.jacfwd``) and
tolerances 1e-15 — which the tests compare against.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.optimize
import torch

DT = torch.float64


@dataclass(frozen=True)
class LsqProblem:
    name: str
    fun: Callable[[torch.Tensor], torch.Tensor]
    x0: tuple[float, ...]
    x_star: tuple[float, ...] | None = None  # closed-form minimiser (None: use the oracle)
    cost_star: float | None = None  # closed-form minimum cost
    bounds: tuple[object, object] = (-np.inf, np.inf)
    methods: tuple[str, ...] = ("lm", "trf", "gauss-newton")
    tags: frozenset[str] = field(default_factory=frozenset)
    rtol: float = 1e-8  # agreement asked of x with the answer


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(a, dtype=DT)


def rosenbrock(x: torch.Tensor) -> torch.Tensor:
    return torch.stack([10 * (x[1] - x[0] ** 2), 1 - x[0]])


def powell_singular(x: torch.Tensor) -> torch.Tensor:
    return torch.stack([x[0] + 10 * x[1], 5 ** 0.5 * (x[2] - x[3]), (x[1] - 2 * x[2]) ** 2,
                        10 ** 0.5 * (x[0] - x[3]) ** 2])


def brown_badly_scaled(x: torch.Tensor) -> torch.Tensor:
    return torch.stack([x[0] - 1e6, x[1] - 2e-6, x[0] * x[1] - 2])


def freudenstein_roth(x: torch.Tensor) -> torch.Tensor:  # non-zero residual local minimum
    return torch.stack([-13 + x[0] + ((5 - x[1]) * x[1] - 2) * x[1],
                        -29 + x[0] + ((x[1] + 1) * x[1] - 14) * x[1]])


def product_rank_deficient(x: torch.Tensor) -> torch.Tensor:
    """Only x0·x1 is determined (its best value 2.25): J has rank 1 everywhere."""
    p = x[0] * x[1]
    return torch.stack([p - 2.0, p - 2.5])


_RNG = np.random.default_rng(20260522)
EXP_T = np.linspace(0.0, 4.0, 40)
EXP_Y = 2.5 * np.exp(-1.3 * EXP_T) + 0.4 + 0.01 * _RNG.standard_normal(EXP_T.size)


def exp_decay(x: torch.Tensor) -> torch.Tensor:
    """Three-parameter exponential decay on generated noisy data."""
    t = _t(EXP_T)
    return x[0] * torch.exp(-x[1] * t) + x[2] - _t(EXP_Y)


MISRA_X = np.linspace(70.0, 800.0, 14)
MISRA_Y = 238.9 * (1 - np.exp(-5.5e-4 * MISRA_X)) * (1 + 0.002 * _RNG.standard_normal(14))


def misra_like(x: torch.Tensor) -> torch.Tensor:
    """NIST Misra1a's model on generated data (badly scaled parameters: 240 and 5.5e-4)."""
    return _t(MISRA_Y) - x[0] * (1 - torch.exp(-x[1] * _t(MISRA_X)))


# Kowalik & Osborne's data (Moré, Garbow & Hillstrom 1981, problem 15; NIST MGH09).
KO_Y = np.array([1.957e-1, 1.947e-1, 1.735e-1, 1.600e-1, 8.44e-2, 6.27e-2, 4.56e-2, 3.42e-2,
                 3.23e-2, 2.35e-2, 2.46e-2])
KO_U = np.array([4.0, 2.0, 1.0, 0.5, 0.25, 0.167, 0.125, 0.1, 0.0833, 0.0714, 0.0625])
KO_STAR = (0.19280693458, 0.19128232873, 0.12305650693, 0.13606233068)


def kowalik_osborne(b: torch.Tensor) -> torch.Tensor:
    u = _t(KO_U)
    return _t(KO_Y) - b[0] * (u ** 2 + u * b[1]) / (u ** 2 + u * b[2] + b[3])


OUT_T = np.linspace(0.0, 10.0, 30)
OUT_Y = 1.0 + 0.5 * OUT_T + 0.05 * np.sin(7 * OUT_T)
OUT_Y[[3, 11, 20, 27]] += np.array([8.0, -6.0, 10.0, -9.0])  # gross outliers


def line_with_outliers(x: torch.Tensor) -> torch.Tensor:
    return x[0] + x[1] * _t(OUT_T) - _t(OUT_Y)


PROBLEMS: tuple[LsqProblem, ...] = (
    LsqProblem("rosenbrock", rosenbrock, (-1.2, 1.0), x_star=(1.0, 1.0), cost_star=0.0,
               tags=frozenset({"zero"})),
    LsqProblem("powell_singular", powell_singular, (3.0, -1.0, 0.0, 1.0),
               x_star=(0.0, 0.0, 0.0, 0.0), cost_star=0.0, tags=frozenset({"zero", "singular"}),
               rtol=0.0),
    LsqProblem("brown_badly_scaled", brown_badly_scaled, (1.0, 1.0), x_star=(1e6, 2e-6),
               cost_star=0.0, methods=("lm", "trf"), tags=frozenset({"zero", "scaled"})),
    LsqProblem("freudenstein_roth", freudenstein_roth, (0.5, -2.0),
               x_star=(11.412779, -0.8968053), cost_star=0.5 * 48.98425368, rtol=1e-6,
               methods=("lm", "trf"), tags=frozenset({"nonzero"})),
    LsqProblem("product_rank_deficient", product_rank_deficient, (1.0, 1.0), cost_star=0.0625,
               tags=frozenset({"rank"})),
    LsqProblem("exp_decay", exp_decay, (1.0, 1.0, 0.0), tags=frozenset({"nonzero"})),
    LsqProblem("misra_like", misra_like, (500.0, 1e-4), tags=frozenset({"nonzero", "scaled"})),
    LsqProblem("kowalik_osborne", kowalik_osborne, (0.25, 0.39, 0.415, 0.39),
               x_star=KO_STAR, cost_star=0.5 * 3.0750560385e-04, rtol=1e-7,
               methods=("lm", "trf"), tags=frozenset({"nonzero", "nist"})),
    LsqProblem("rosenbrock_bounded", rosenbrock, (-1.2, 1.0), bounds=(-2.0, [0.5, 2.0]),
               methods=("trf",), tags=frozenset({"bounds"})),
    LsqProblem("exp_decay_bounded", exp_decay, (1.0, 2.0, 0.1), bounds=([0, 1.5, 0], np.inf),
               methods=("trf",), tags=frozenset({"bounds"})),
)

BY_NAME = {p.name: p for p in PROBLEMS}


def oracle(p: LsqProblem, loss: str = "linear", f_scale: float = 1.0) -> np.ndarray:
    """SciPy's trf with the exact Jacobian and tolerances 1e-15 (max_nfev generous)."""
    jf = torch.func.jacfwd(p.fun)
    res = scipy.optimize.least_squares(
        lambda b: p.fun(_t(b)).numpy(), np.asarray(p.x0, dtype=float),
        jac=lambda b: jf(_t(b)).numpy(), method="trf", bounds=p.bounds, loss=loss,
        f_scale=f_scale, ftol=1e-15, xtol=1e-15, gtol=1e-15, max_nfev=5000)
    return res.x


def answer(p: LsqProblem) -> np.ndarray:
    """The known minimiser, else the oracle's."""
    return np.asarray(p.x_star) if p.x_star is not None else oracle(p)
