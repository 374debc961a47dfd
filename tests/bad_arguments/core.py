"""Entries for the top level: dense Jacobians, products, the checker and the solvers."""

from __future__ import annotations

import torch

import jacobite
from jacobite import solvers
from jacobite.errors import ArgumentTypeError, DistributedError, InvalidOptionError

from . import F64, argnums, budget, choice, chunk, entry, flag, fn, posint, tensor, tol, typed

X = torch.tensor([0.3, -0.2, 0.5], dtype=F64)
V = torch.tensor([1.0, 0.5, -1.0], dtype=F64)


def F(v: torch.Tensor) -> torch.Tensor:
    return torch.sin(v) * v


def S(v: torch.Tensor) -> torch.Tensor:
    return (v**2).sum() + v.prod()


def Q(v: torch.Tensor) -> torch.Tensor:
    return (v[0] - 1) ** 2 + (v[1] - 2) ** 2 + v[2] ** 4


XB = torch.tensor([[0.3, -0.2], [0.1, 0.4]], dtype=F64)
NET = torch.nn.Linear(2, 2).double()

# a residual with its root at (1, 2), a curve y = a exp(b t)
def RES(p: torch.Tensor) -> torch.Tensor:
    return torch.stack([p[0] - 1, p[1] - 2, 0.1 * p[0] * p[1]])


def ROOT(p: torch.Tensor) -> torch.Tensor:
    return torch.stack([p[0] ** 2 - 1, p[1] - 2])


T = torch.linspace(0, 1, 6, dtype=F64)
Y = 2.0 * torch.exp(-0.5 * T)


def MODEL(t: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a * torch.exp(b * t)


def IMPL(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    return x - 0.5 * torch.tanh(x) - theta


P0 = torch.tensor([0.5, 1.5], dtype=F64)
TH = torch.tensor([0.2, -0.1], dtype=F64)
XS = solvers.solve_implicit(IMPL, torch.zeros(2, dtype=F64), TH)

_jac_cases = [*fn(0), *tensor(1), *argnums(), *choice("mode"), *chunk("chunk_size"),
              *budget("memory_budget"), *flag("flat"), *flag("check_finite")]

#: ``process_group=`` shares a batch of problems: without ``batch=True`` it is refused
_UNBATCHED_GROUP = [typed("process_group", 3, InvalidOptionError),
                    typed("process_group", "world", InvalidOptionError)]

ENTRIES = [
    entry("jacobite.jacobian", jacobite.jacobian, F, X,
          cases=[*_jac_cases, *flag("has_aux"), *flag("sparse"),
                 typed("process_group", 3, ArgumentTypeError),
                 typed("process_group", "world", DistributedError),
                 typed("gather", 0, InvalidOptionError)]),
    entry("jacobite.value_and_jacobian", jacobite.value_and_jacobian, F, X,
          cases=[*_jac_cases, *flag("has_aux")]),
    entry("jacobite.jacobian_plan", jacobite.jacobian_plan, F, X,
          cases=[*fn(0), *tensor(1, nan=False), *argnums(), *choice("mode"),
                 *chunk("chunk_size"), *budget("memory_budget"), *flag("has_aux")]),
    entry("jacobite.batch_jacobian", jacobite.batch_jacobian, F, XB,
          cases=[*fn(0), *tensor(1, (), (0, 2)), *argnums(), *choice("mode"),
                 *chunk("chunk_size"), *budget("memory_budget"), *flag("flat"),
                 ("in_dims", 4), ("in_dims", "0")]),
    entry("jacobite.hessian", jacobite.hessian, S, X,
          cases=[*fn(0), *tensor(1), *argnums(), *chunk("chunk_size"),
                 *budget("memory_budget"), *flag("flat"), *flag("sparse")]),
    entry("jacobite.jvp", jacobite.jvp, F, (X,), (V,),
          cases=[*fn(0), (1, "abc"), (1, None), (1, (torch.ones(3, dtype=torch.int64),)),
                 (1, (torch.tensor([1.0, float("nan"), 0.0], dtype=F64),)),
                 (2, "abc"), (2, (torch.ones(4, dtype=F64),)), (2, (V, V)), *flag("has_aux")]),
    entry("jacobite.vjp", jacobite.vjp, F, X,
          cases=[*fn(0), *tensor(1), *flag("has_aux"), *flag("check_finite")]),
    entry("jacobite.hvp", jacobite.hvp, S, (X,), (V,),
          cases=[*fn(0), (1, "abc"), (1, None), (1, (torch.ones(3, dtype=torch.int64),)),
                 (1, (torch.tensor([1.0, float("nan"), 0.0], dtype=F64),)),
                 (2, "abc"), (2, (torch.ones(4, dtype=F64),)), *argnums(),
                 *flag("check_finite")]),
    entry("jacobite.linearize", jacobite.linearize, F, X,
          cases=[*fn(0), *tensor(1), *argnums(), *flag("check_finite")]),
    entry("jacobite.module_jacobian", jacobite.module_jacobian, NET, XB,
          # the inputs go to the module as they are: for one it cannot take (a string, a
          # wrong shape) the module's own error stands; a NaN input is jacobite's to refuse
          cases=[(0, 3), (0, "net"), (0, None),
                 (1, torch.tensor([[0.5, float("nan")], [0.0, 1.0]], dtype=F64)), ("params", 3),
                 ("params", ["no.such.param"]), *choice("mode"), *chunk("chunk_size"),
                 *budget("memory_budget"), *flag("flat"), *flag("return_value")]),
    entry("jacobite.check", jacobite.check, F, X,
          cases=[*fn(0), *tensor(1), *argnums(), *choice("method"), *tol("rtol"),
                 *tol("atol"), *flag("raise_on_failure")]),
    entry("jacobite.least_squares", jacobite.least_squares, RES, P0,
          cases=[*fn(0), *tensor(1, (), (0,), ints=False), (1, [[1.0, 2.0]]),
                 *choice("method"), *choice("loss"), *tol("ftol"), *tol("xtol"),
                 *tol("gtol"), *tol("f_scale"), *posint("max_nfev"),
                 ("bounds", (torch.zeros(3, dtype=F64), 5.0)),
                 ("bounds", (3.0, 1.0)), ("bounds", "wide"), ("jac", 5), ("jac", "4-point"),
                 ("x_scale", "big"), ("x_scale", torch.ones(5, dtype=F64)),
                 ("verbose", "loud"), (1, [1.0 + 1.0j, 2.0]), ("diff_step", "small"),
                 ("diff_step", 0.0), ("jac_sparsity", torch.ones(2, 2)),
                 ("tr_solver", "best"), ("tr_options", {"tol": 1e-10}), ("callback", 5),
                 ("workers", 0), ("args", (1, 2)), *_UNBATCHED_GROUP]),
    entry("jacobite.root", jacobite.root, ROOT, P0,
          cases=[*fn(0), *tensor(1, (), (0,), (3,), ints=False), (1, [[1.0, 2.0]]),
                 *choice("method"), *tol("xtol"), *tol("ftol"), *posint("max_nfev"),
                 ("jac", 5), ("jac", "4-point"), ("verbose", "loud")]),
    entry("jacobite.curve_fit", jacobite.curve_fit, MODEL, T, Y, P0,
          cases=[*fn(0), *tensor(1, none=False, ints=False), *tensor(2, (4,), none=False),
                 (3, "abc"), (3, torch.ones(3, dtype=F64)), (3, torch.ones((), dtype=F64)),
                 (3, torch.tensor([1.0, float("nan")], dtype=F64)),
                 ("sigma", torch.ones(4, dtype=F64)), ("sigma", -torch.ones(6, dtype=F64)),
                 ("bounds", (torch.zeros(3, dtype=F64), 5.0)), ("bounds", "wide"),
                 *choice("method"), *flag("absolute_sigma"), *flag("full_output"),
                 *flag("check_finite"), *choice("nan_policy"), ("jac", 5), ("jac", "4-point"),
                 ("args", (1,)), ("factor", 10.0), ("diag", -1.0), ("diag", "big"),
                 *_UNBATCHED_GROUP]),
    entry("jacobite.implicit_jacobian", jacobite.implicit_jacobian, IMPL, XS, TH,
          cases=[*fn(0), *tensor(1, (3,), (), none=True), (2, "abc"), (2, None),
                 (2, torch.tensor([1.0, float("nan")], dtype=F64)),
                 *choice("check"), *tol("residual_tol")]),
    entry("jacobite.solve_implicit", jacobite.solve_implicit, IMPL,
          torch.zeros(2, dtype=F64), TH,
          cases=[*fn(0), *tensor(1, (3,), (), ints=False), (2, "abc"), (2, None),
                 (2, torch.tensor([1.0, float("nan")], dtype=F64)), *choice("method"),
                 *tol("xtol")]),
    entry("jacobite.solvers.newton_minimize", solvers.newton_minimize, Q, V,
          cases=[(0, 3), (0, "sin"), *tensor(1, (), (0,), (2,), ints=False),
                 *choice("hessian"), *tol("tol"), *posint("max_iter", zero=False),
                 *tol("c1"), ("c1", 1.5), *flag("line_search"), ("residuals", 3)]),
]
