"""The shared Jacobian test battery: one list of small float64 problems for every Jacobian path.

Each :class:`Case` is a function, a seeded recipe for its arguments, the argument positions to
differentiate and a set of ``kinds`` tags; some also carry the analytic Jacobian (``expected``)
and/or a SymPy transcription (``sympy``). Dense, sparse, symbolic, numeric and operator paths all
draw their problems from :data:`CASES` (filter with :func:`by_kind`), so a new path is tested on
the same ground as the others.

Conventions
-----------
* ``case.make_args(g)`` returns the positional-argument tuple from a seeded ``torch.Generator``;
  :meth:`Case.args` does the seeding. Everything is float64 and the points stay away from kinks
  and ties (``abs``, ``max``, ``where``), so finite differences are valid there too.
* Jacobians follow ``torch.func.jacrev``: for each output leaf (in pytree order) a pytree shaped
  like the differentiated input(s) whose leaves have shape ``out_shape + in_shape``; a tuple
  ``argnums`` gives a tuple over those arguments. :func:`flat_jacobian` turns that into the
  ``(m, n)`` matrix (outputs, then inputs, each flattened in pytree order).
* ``expected(*args)`` gives the analytic Jacobian in the same convention as ``jacrev``.
* ``sympy = (exprs, symbols)``: ``exprs`` lists one SymPy expression per *flattened* output
  entry, ``symbols`` one SymPy symbol per flattened differentiated input entry (pytree order);
  the flat Jacobian is ``Matrix(exprs).jacobian(symbols)`` evaluated at the case's point.
  ``None`` when SymPy is not installed.
* Cases tagged ``"batched"`` are per-sample problems: ``fn`` maps ONE sample to its output and
  ``make_args`` returns a *batch* (batch dimension at ``in_dims``, as in ``torch.func.vmap``).
  Use them with per-sample APIs (``batch_jacobian``); :func:`sample_args` picks out one sample.

Structural tags are added automatically: ``"tensor_in"`` (one tensor is differentiated),
``"tensor_out"`` (the output is one tensor), ``"vector_in"``/``"vector_out"`` (those are 1-D),
``"smooth"`` (no kinks near the point: every case not tagged ``"nonsmooth"``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, jacrev
from torch.utils._pytree import tree_flatten, tree_unflatten

try:  # SymPy is an optional extra; the symbolic transcriptions are skipped without it
    import sympy as sp
except ImportError:  # pragma: no cover - depends on the environment
    sp = None

__all__ = [
    "CASES",
    "DT",
    "Case",
    "assert_tree_close",
    "by_kind",
    "dense_oracle",
    "diff_inputs",
    "flat_function",
    "flat_jacobian",
    "ids",
    "sample_args",
    "sympy_jacobian",
]

DT = torch.float64
Jacobian = Any


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: usable as dict keys
class Case:
    """One Jacobian problem of the battery (see the module docstring for the conventions)."""

    name: str
    fn: Callable[..., Any]
    make_args: Callable[[torch.Generator], tuple[Any, ...]]
    argnums: int | tuple[int, ...] = 0
    kinds: frozenset[str] = field(default_factory=frozenset)
    expected: Callable[..., Jacobian] | None = None
    sympy: tuple[list[Any], tuple[Any, ...]] | None = None
    in_dims: int | tuple[int | None, ...] = 0  # only for "batched" cases

    def args(self, seed: int = 0) -> tuple[Any, ...]:
        """The argument tuple for ``seed`` (a fresh generator each time: no shared state)."""
        return self.make_args(torch.Generator().manual_seed(seed))

    def __repr__(self) -> str:  # short, for pytest ids and failure messages
        return f"Case({self.name})"


# ----------------------------------------------------------------------------- helpers


def randn(g: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(shape, generator=g, dtype=DT)


def rand(g: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.rand(shape, generator=g, dtype=DT)


def away_from_zero(g: torch.Generator, *shape: int, margin: float = 0.5) -> torch.Tensor:
    """Random signs, magnitudes in [margin, margin + 1): no kink of abs/where near the point."""
    sign = torch.where(rand(g, *shape) < 0.5, -1.0, 1.0).to(DT)
    return sign * (margin + rand(g, *shape))


def distinct(g: torch.Generator, *shape: int) -> torch.Tensor:
    """Values at least 0.8 apart (a shuffled ramp plus small noise): max/sort have no ties."""
    n = 1
    for s in shape:
        n *= s
    ramp = torch.randperm(n, generator=g).to(DT) + 0.2 * rand(g, n)
    return (ramp - n / 2).reshape(shape)


def const(*values: Any) -> Callable[[torch.Generator], tuple[Any, ...]]:
    """``make_args`` for a fixed point (the textbook examples)."""

    def make(g: torch.Generator) -> tuple[Any, ...]:
        return tuple(torch.tensor(v, dtype=DT) for v in values)

    return make


def diag_jac(d: torch.Tensor) -> torch.Tensor:
    """Jacobian of an elementwise map with derivative ``d`` (any shape): shape d.shape * 2."""
    return torch.diag(d.reshape(-1)).reshape(*d.shape, *d.shape)


def _symbols(names: str) -> tuple[Any, ...] | None:
    return None if sp is None else tuple(sp.symbols(names))


def _sym(build: Callable[[Any], tuple[list[Any], tuple[Any, ...]]], names: str):
    """Build ``(exprs, symbols)`` with ``build(symbols)``, or ``None`` without SymPy."""
    syms = _symbols(names)
    return None if syms is None else (build(syms), syms)


def _make_mlp() -> nn.Sequential:
    g = torch.Generator().manual_seed(1234)
    with torch.random.fork_rng(devices=[]):
        net = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 4), nn.Softplus(),
                            nn.Linear(4, 2)).to(DT)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(0.7 * randn(g, *p.shape))
    return net


#: The MLP the "mlp" cases use. Treat as read-only (tests check nothing modifies it).
MLP = _make_mlp()


def _mlp_params(g: torch.Generator) -> dict[str, torch.Tensor]:
    return {k: 0.7 * randn(g, *v.shape) for k, v in MLP.named_parameters()}


def _mlp_of_params(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    return functional_call(MLP, params, (x,))


# ----------------------------------------------------------------------------- functions
# Named functions (not lambdas) so failure messages and probe caches see distinct names.


def f_softplus(x):
    return F.softplus(x)


def f_abs(x):
    return torch.abs(x) * 1.5


def f_cube(x):
    return x ** 3


def f_sum(x):
    return x.sum()


def f_mean(x):
    return x.mean()


def f_prod(x):
    return x.prod()


def f_norm(x):
    return torch.linalg.vector_norm(x)


def f_norm3(x):
    return torch.linalg.vector_norm(x, ord=3)


def f_frobenius(x):
    return torch.linalg.matrix_norm(x, ord="fro")


def f_normalize(x):
    return x / torch.linalg.vector_norm(x)


def f_logsumexp(x):
    return torch.logsumexp(x, dim=-1)


def f_max(x):
    return x.max(dim=-1).values


def f_matmul_chain(x, A, B):
    return A @ torch.tanh(B @ x)


def f_matmul_2d(X, W1, W2):
    return W1 @ X @ W2


def f_softmax(x):
    return torch.softmax(x, dim=0)


def f_log_softmax(x):
    return torch.log_softmax(x, dim=-1)


def f_broadcast(v, M):
    return torch.sin(v + M) * v


def f_curve(t):
    return torch.stack([torch.cos(t), torch.sin(t), t ** 2])


def f_scalar(t):
    return t * torch.sin(t)


def f_rosenbrock(x):
    return (100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2).sum()


def f_gram(X):
    return torch.tanh(X) @ X.T


def f_dict_in(p):
    return p["a"].sum() * torch.sin(p["b"]) + p["b"] ** 2 * p["a"][0]


def f_tuple_in(xy):
    x, y = xy
    return x * torch.exp(y) + y.sum()


def f_tuple_out(x):
    return torch.sin(x), (x ** 2).sum(), torch.outer(x, x)


def f_dict_out(x):
    return {"sq": x ** 2, "row": x.sum(0), "nested": (torch.exp(x[0]),)}


def f_one_leaf_trees(p):
    return (torch.sin(p["w"]) * p["w"],)


def f_exp_product(x, y):
    return x * torch.exp(y)


def f_three_args(x, y, z):
    return x * y.sum() + torch.sin(z) * x[0]


def f_cumsum(x):
    return torch.cumsum(x, dim=0)


def f_cumsum_2d(x):
    return torch.cumsum(x, dim=1) * x


def f_index(x):
    return x[[0, 2, 2, 4]] * x[1:5]


def f_cat_stack(x):
    return torch.cat([x[:2] ** 2, torch.stack([x.sum(), x[0] * x[-1]]), x[::2]])


def f_flip_roll(x):
    return torch.roll(x, 2, dims=1) * torch.flip(x, dims=(0,)) + x.T.reshape(4, 3)


def f_where(x):
    return torch.where(x > 0, x ** 2, torch.sin(x))


def f_conv1d(x, w):
    return F.conv1d(x, w, padding=1)


def f_conv1d_both(x, w):
    return torch.tanh(F.conv1d(x, w, stride=2))


def f_ref_xy(v):
    return torch.stack([v[0] ** 2 + v[1], v[0] * v[1]])


def f_ref_xy_args(x, y):
    return torch.stack([x ** 2 + y, x * y])


def f_ref_xyz(v):
    x, y, z = v[0], v[1], v[2]
    return torch.stack([x ** 2 + y * z, torch.sin(x * y), torch.exp(x + z)])


def f_ref_square(v):
    x, y = v[0], v[1]
    return torch.stack([x ** 2 - y ** 2, 2 * x * y])


def f_polar(v):
    r, th = v[0], v[1]
    return torch.stack([r * torch.cos(th), r * torch.sin(th)])


def f_linear(A, x):
    return A @ x


def f_sample_shared(x, W):
    return torch.tanh(W @ x) + x.sum()


def f_sample_normalize(x):
    # mixes entries of the whole tensor it is given: right per sample, wrong on a batch
    return x / torch.linalg.vector_norm(x)


# ----------------------------------------------------------------------------- expected


def _exp_softmax(x):
    s = torch.softmax(x, 0)
    return torch.diag(s) - torch.outer(s, s)


def _exp_log_softmax(x):
    s = torch.softmax(x, -1)
    rows, n = x.shape
    eye = torch.eye(n, dtype=DT)
    J = torch.zeros(rows, n, rows, n, dtype=DT)
    for i in range(rows):
        J[i, :, i, :] = eye - s[i].unsqueeze(0)
    return J


def _exp_logsumexp(x):
    s = torch.softmax(x, -1)
    rows, n = x.shape
    J = torch.zeros(rows, rows, n, dtype=DT)
    for i in range(rows):
        J[i, i] = s[i]
    return J


def _exp_max(x):
    rows, n = x.shape
    J = torch.zeros(rows, rows, n, dtype=DT)
    idx = x.argmax(-1)
    for i in range(rows):
        J[i, i, idx[i]] = 1.0
    return J


def _exp_prod(x):
    return x.prod() / x


def _exp_norm(x):
    return x / torch.linalg.vector_norm(x)


def _exp_normalize(x):
    r = torch.linalg.vector_norm(x)
    u = x / r
    return (torch.eye(x.numel(), dtype=DT) - torch.outer(u, u)) / r


def _exp_matmul_2d(X, W1, W2):
    # J[i, j, k, l] = d(W1 X W2)[i, j] / dX[k, l] = W1[i, k] W2[l, j]
    return torch.einsum("ik,lj->ijkl", W1, W2)


def _exp_curve(t):
    return torch.stack([-torch.sin(t), torch.cos(t), 2 * t])


def _exp_ref_xy(v):
    x, y = v[0], v[1]
    return torch.stack([torch.stack([2 * x, torch.ones_like(x)]), torch.stack([y, x])])


def _exp_ref_xy_args(x, y):
    one = torch.ones_like(x)
    return torch.stack([2 * x, y]), torch.stack([one, x])


def _exp_ref_xyz(v):
    x, y, z = v[0], v[1], v[2]
    zero = torch.zeros_like(x)
    c = torch.cos(x * y)
    e = torch.exp(x + z)
    return torch.stack([torch.stack([2 * x, z, y]), torch.stack([y * c, x * c, zero]),
                        torch.stack([e, zero, e])])


def _exp_ref_square(v):
    x, y = v[0], v[1]
    return torch.stack([torch.stack([2 * x, -2 * y]), torch.stack([2 * y, 2 * x])])


def _exp_polar(v):
    r, th = v[0], v[1]
    return torch.stack([torch.stack([torch.cos(th), -r * torch.sin(th)]),
                        torch.stack([torch.sin(th), r * torch.cos(th)])])


def _exp_tuple_out(x):
    eye = torch.eye(x.numel(), dtype=DT)
    outer = torch.einsum("ik,j->ijk", eye, x) + torch.einsum("i,jk->ijk", x, eye)
    return torch.diag(torch.cos(x)), 2 * x, outer


def _exp_dict_out(x):
    rows, cols = x.shape
    row = torch.zeros(cols, rows, cols, dtype=DT)
    for j in range(cols):
        row[j, :, j] = 1.0
    first = torch.zeros(rows, cols, dtype=DT)
    first[0] = torch.exp(x[0])
    nested = torch.diag(first.reshape(-1)).reshape(rows, cols, rows, cols)[0]
    return {"sq": diag_jac(2 * x), "row": row, "nested": (nested,)}


# ----------------------------------------------------------------------------- the battery


def _mk(name: str, fn: Callable[..., Any], make_args: Callable[[torch.Generator], tuple],
        kinds: Iterable[str], argnums: int | tuple[int, ...] = 0, **kw: Any) -> Case:
    return Case(name, fn, make_args, argnums, frozenset(kinds), **kw)


def _elementwise(name, fn, deriv, make=None, extra=()):
    make = make or (lambda g: (randn(g, 5),))
    return _mk(name, fn, make, {"elementwise", "diagonal", *extra},
               expected=lambda x: diag_jac(deriv(x)))


_RAW: list[Case] = [
    # --- elementwise --------------------------------------------------------------------------
    _mk("sin", torch.sin, lambda g: (randn(g, 5),), {"elementwise", "diagonal"},
        expected=lambda x: diag_jac(torch.cos(x)),
        sympy=_sym(lambda s: [sp.sin(si) for si in s], "x0:5")),
    _elementwise("exp_2d", torch.exp, torch.exp, lambda g: (randn(g, 2, 3),), {"matrix"}),
    _elementwise("tanh", torch.tanh, lambda x: 1 - torch.tanh(x) ** 2),
    _elementwise("sigmoid", torch.sigmoid, lambda x: torch.sigmoid(x) * (1 - torch.sigmoid(x))),
    _elementwise("softplus", f_softplus, torch.sigmoid),
    _elementwise("abs", f_abs, lambda x: 1.5 * torch.sign(x),
                 lambda g: (away_from_zero(g, 6, margin=1.0),), {"nonsmooth"}),
    _elementwise("cube", f_cube, lambda x: 3 * x ** 2),
    # --- reductions (R^n -> R or fewer outputs) -----------------------------------------------
    _mk("sum", f_sum, lambda g: (randn(g, 2, 3),), {"reduction", "scalar_out", "matrix", "linear"},
        expected=lambda x: torch.ones_like(x)),
    _mk("mean", f_mean, lambda g: (randn(g, 4),), {"reduction", "scalar_out", "linear"},
        expected=lambda x: torch.full_like(x, 1 / x.numel())),
    _mk("prod", f_prod, lambda g: (away_from_zero(g, 4),), {"reduction", "scalar_out"},
        expected=_exp_prod),
    _mk("norm", f_norm, lambda g: (randn(g, 5),), {"reduction", "scalar_out", "norm"},
        expected=_exp_norm),
    _mk("norm3", f_norm3, lambda g: (away_from_zero(g, 4),), {"reduction", "scalar_out", "norm"}),
    _mk("frobenius", f_frobenius, lambda g: (randn(g, 3, 2),),
        {"reduction", "scalar_out", "norm", "matrix"}, expected=lambda x: x / x.norm()),
    _mk("normalize", f_normalize, lambda g: (randn(g, 4),), {"norm"}, expected=_exp_normalize),
    _mk("logsumexp", f_logsumexp, lambda g: (randn(g, 3, 4),), {"reduction", "matrix"},
        expected=_exp_logsumexp),
    _mk("max", f_max, lambda g: (distinct(g, 3, 4),), {"reduction", "matrix", "nonsmooth"},
        expected=_exp_max),
    # --- matmul chains ------------------------------------------------------------------------
    _mk("matmul_chain", f_matmul_chain, lambda g: (randn(g, 5), randn(g, 3, 4), randn(g, 4, 5)),
        {"matmul"}),
    _mk("matmul_2d", f_matmul_2d, lambda g: (randn(g, 3, 4), randn(g, 2, 3), randn(g, 4, 2)),
        {"matmul", "matrix", "linear"}, expected=_exp_matmul_2d),
    _mk("linear_map", f_linear, lambda g: (randn(g, 4, 3), randn(g, 3)), {"matmul", "linear"},
        argnums=1, expected=lambda A, x: A),
    # --- softmax family -----------------------------------------------------------------------
    _mk("softmax", f_softmax, lambda g: (randn(g, 5),), {"softmax"}, expected=_exp_softmax),
    _mk("log_softmax", f_log_softmax, lambda g: (randn(g, 2, 3),), {"softmax", "matrix"},
        expected=_exp_log_softmax),
    # --- broadcasting, shapes -----------------------------------------------------------------
    _mk("broadcast", f_broadcast, lambda g: (randn(g, 4), randn(g, 3, 4)),
        {"broadcast", "multi_argnums", "matrix"}, argnums=(0, 1)),
    _mk("curve", f_curve, lambda g: (randn(g),), {"scalar_in"}, expected=_exp_curve,
        sympy=_sym(lambda s: [sp.cos(s[0]), sp.sin(s[0]), s[0] ** 2], "t:1")),
    _mk("scalar_to_scalar", f_scalar, lambda g: (randn(g),), {"scalar_in", "scalar_out"},
        expected=lambda t: torch.sin(t) + t * torch.cos(t),
        sympy=_sym(lambda s: [s[0] * sp.sin(s[0])], "t:1")),
    _mk("rosenbrock", f_rosenbrock, lambda g: (randn(g, 4),), {"scalar_out"},
        sympy=_sym(lambda s: [sum(100 * (s[i + 1] - s[i] ** 2) ** 2 + (1 - s[i]) ** 2
                                  for i in range(3))], "x0:4")),
    _mk("gram_2d", f_gram, lambda g: (randn(g, 2, 3),), {"matrix"}),
    # --- pytrees ------------------------------------------------------------------------------
    _mk("dict_in", f_dict_in, lambda g: ({"a": randn(g, 3), "b": randn(g, 2, 2)},),
        {"pytree_in", "matrix"}),
    _mk("tuple_in", f_tuple_in, lambda g: ((randn(g, 3), randn(g, 3)),), {"pytree_in"}),
    _mk("tuple_out", f_tuple_out, lambda g: (randn(g, 3),), {"pytree_out"},
        expected=_exp_tuple_out),
    _mk("dict_out", f_dict_out, lambda g: (randn(g, 2, 3),), {"pytree_out", "matrix"},
        expected=_exp_dict_out),
    _mk("one_leaf_trees", f_one_leaf_trees, lambda g: ({"w": randn(g, 3)},),
        {"pytree_in", "pytree_out", "diagonal"},
        expected=lambda p: ({"w": diag_jac(torch.cos(p["w"]) * p["w"] + torch.sin(p["w"]))},)),
    _mk("argnums_1tuple", f_exp_product, lambda g: (randn(g, 3), randn(g, 3)),
        {"multi_argnums", "diagonal"}, argnums=(1,),
        expected=lambda x, y: (diag_jac(x * torch.exp(y)),)),
    _mk("three_args", f_three_args, lambda g: (randn(g, 3), randn(g, 2), randn(g, 3)),
        {"multi_argnums"}, argnums=(2, 0)),
    # --- cumulative, indexing, reshuffling ----------------------------------------------------
    _mk("cumsum", f_cumsum, lambda g: (randn(g, 5),), {"cumulative", "linear"},
        expected=lambda x: torch.tril(torch.ones(5, 5, dtype=DT))),
    _mk("cumsum_2d", f_cumsum_2d, lambda g: (randn(g, 2, 3),), {"cumulative", "matrix"}),
    _mk("index", f_index, lambda g: (randn(g, 5),), {"indexing"}),
    _mk("cat_stack", f_cat_stack, lambda g: (randn(g, 4),), {"indexing"}),
    _mk("flip_roll", f_flip_roll, lambda g: (randn(g, 4, 3),), {"indexing", "matrix"}),
    _mk("where", f_where, lambda g: (away_from_zero(g, 6),), {"nonsmooth", "diagonal"},
        expected=lambda x: diag_jac(torch.where(x > 0, 2 * x, torch.cos(x)))),
    # --- convolution, networks ----------------------------------------------------------------
    _mk("conv1d", f_conv1d, lambda g: (randn(g, 1, 2, 7), randn(g, 3, 2, 3)),
        {"conv", "linear", "matrix"}),
    _mk("conv1d_both", f_conv1d_both, lambda g: (randn(g, 1, 2, 7), randn(g, 2, 2, 3)),
        {"conv", "multi_argnums", "matrix"}, argnums=(0, 1)),
    _mk("mlp_input", MLP, lambda g: (randn(g, 3),), {"network"}),
    _mk("mlp_params", _mlp_of_params, lambda g: (_mlp_params(g), randn(g, 3)),
        {"network", "module", "pytree_in"}),
    # --- textbook examples --------------------------------------------------------------------
    _mk("ref_xy", f_ref_xy, const([1.0, 2.0]), {"reference"}, expected=_exp_ref_xy,
        sympy=_sym(lambda s: [s[0] ** 2 + s[1], s[0] * s[1]], "x y")),
    _mk("ref_xy_args", f_ref_xy_args, const(1.0, 2.0), {"reference", "multi_argnums", "scalar_in"},
        argnums=(0, 1), expected=_exp_ref_xy_args,
        sympy=_sym(lambda s: [s[0] ** 2 + s[1], s[0] * s[1]], "x y")),
    _mk("ref_xyz", f_ref_xyz, lambda g: (randn(g, 3),), {"reference"}, expected=_exp_ref_xyz,
        sympy=_sym(lambda s: [s[0] ** 2 + s[1] * s[2], sp.sin(s[0] * s[1]), sp.exp(s[0] + s[2])],
                   "x y z")),
    _mk("ref_square", f_ref_square, lambda g: (randn(g, 2),), {"reference"},
        expected=_exp_ref_square,
        sympy=_sym(lambda s: [s[0] ** 2 - s[1] ** 2, 2 * s[0] * s[1]], "x y")),
    _mk("polar", f_polar, lambda g: (torch.stack([1 + rand(g), 3 * randn(g)]),), {"reference"},
        expected=_exp_polar,
        sympy=_sym(lambda s: [s[0] * sp.cos(s[1]), s[0] * sp.sin(s[1])], "r theta")),
    # --- per-sample (batched) problems --------------------------------------------------------
    _mk("batched_mlp", MLP, lambda g: (randn(g, 4, 3),), {"batched", "network"}),
    _mk("batched_shared", f_sample_shared, lambda g: (randn(g, 5, 3), randn(g, 3, 3)),
        {"batched"}, in_dims=(0, None)),
    _mk("batched_scalar_out", f_logsumexp, lambda g: (randn(g, 3, 4),),
        {"batched", "scalar_out"}),
    _mk("batched_matrix", f_gram, lambda g: (randn(g, 3, 2, 3),), {"batched", "matrix"}),
    _mk("batched_scalar", f_scalar, lambda g: (randn(g, 5),), {"batched", "scalar_in",
                                                                "scalar_out"}),
    _mk("batched_dim1", f_sample_normalize, lambda g: (randn(g, 4, 3),), {"batched"}, in_dims=1),
]


def diff_inputs(case: Case, args: tuple[Any, ...]) -> Any:
    """The differentiated argument (or tuple of arguments, for a tuple ``argnums``)."""
    if isinstance(case.argnums, tuple):
        return tuple(args[i] for i in case.argnums)
    return args[case.argnums]


def sample_args(case: Case, args: tuple[Any, ...], b: int) -> tuple[Any, ...]:
    """Sample ``b`` of a batched case's arguments (shared arguments pass through)."""
    dims = case.in_dims if isinstance(case.in_dims, tuple) else (case.in_dims,) * len(args)
    return tuple(a if d is None else a.select(d, b) for a, d in zip(args, dims, strict=True))


def _structural_kinds(case: Case) -> frozenset[str]:
    args = case.args()
    if "batched" in case.kinds:
        args = sample_args(case, args, 0)
    kinds = set(case.kinds)
    x = diff_inputs(case, args)
    out = case.fn(*args)
    if isinstance(x, torch.Tensor):
        kinds.add("tensor_in")
        if x.ndim == 1:
            kinds.add("vector_in")
    if isinstance(out, torch.Tensor):
        kinds.add("tensor_out")
        if out.ndim == 1:
            kinds.add("vector_out")
    if "nonsmooth" not in kinds:
        kinds.add("smooth")
    if case.sympy is not None:
        kinds.add("symbolic")
    if case.expected is not None:
        kinds.add("analytic")
    return frozenset(kinds)


#: Every case of the battery (at least 30 plain cases plus the per-sample ones).
CASES: tuple[Case, ...] = tuple(replace(c, kinds=_structural_kinds(c)) for c in _RAW)
del _RAW

assert len({c.name for c in CASES}) == len(CASES), "case names must be unique"


def by_kind(kind: str, *, exclude: Iterable[str] = ()) -> list[Case]:
    """Cases tagged ``kind`` (``"all"`` for every case), minus those tagged in ``exclude``.

    ``by_kind("all", exclude=("batched",))`` is the plain (whole-function) battery.
    """
    bad = set(exclude)
    return [c for c in CASES if (kind == "all" or kind in c.kinds) and not bad & c.kinds]


def ids(cases: Case | Iterable[Case]) -> str | list[str]:
    """Test ids: the case name (for one case, e.g. as pytest's ``ids=`` callable) or names."""
    if isinstance(cases, Case):
        return cases.name
    return [c.name for c in cases]


# ----------------------------------------------------------------------------- oracles


def dense_oracle(case: Case, args: tuple[Any, ...]) -> Jacobian:
    """``torch.func.jacrev`` at ``args``: the reference Jacobian in the structured convention."""
    return jacrev(case.fn, argnums=case.argnums)(*args)


def flat_jacobian(J: Jacobian, out: Any, x: Any) -> torch.Tensor:
    """The ``(m, n)`` matrix of a structured Jacobian ``J`` of output ``out`` w.r.t. ``x``.

    Rows follow the leaves of ``out`` and columns the leaves of ``x``, each in pytree order.
    """
    out_leaves = tree_flatten(out)[0]
    in_leaves = tree_flatten(x)[0]
    blocks = tree_flatten(J)[0]
    assert len(blocks) == len(out_leaves) * len(in_leaves), "J does not match out and x"
    rows = []
    for k, o in enumerate(out_leaves):
        row = [blocks[k * len(in_leaves) + j].reshape(o.numel(), t.numel())
               for j, t in enumerate(in_leaves)]
        rows.append(torch.cat(row, dim=1))
    return torch.cat(rows, dim=0)


VecFn = Callable[[torch.Tensor], torch.Tensor]


def flat_function(case: Case, args: tuple[Any, ...]) -> tuple[VecFn, torch.Tensor]:
    """``(g, v0)``: ``g`` maps the flat vector of differentiated inputs to the flat output.

    For black-box (numeric) differentiators: ``jacobian(g)(v0) == flat_jacobian(J, out, x)``.
    """
    x = diff_inputs(case, args)
    leaves, spec = tree_flatten(x)
    sizes = [t.numel() for t in leaves]
    v0 = torch.cat([t.reshape(-1) for t in leaves])

    def g(v: torch.Tensor) -> torch.Tensor:
        parts = [p.reshape(t.shape) for p, t in zip(torch.split(v, sizes), leaves, strict=True)]
        tree = tree_unflatten(parts, spec)
        new = list(args)
        if isinstance(case.argnums, tuple):
            for i, sub in zip(case.argnums, tree, strict=True):
                new[i] = sub
        else:
            new[case.argnums] = tree
        out = case.fn(*new)
        return torch.cat([t.reshape(-1) for t in tree_flatten(out)[0]])

    return g, v0


def sympy_jacobian(case: Case, args: tuple[Any, ...]) -> torch.Tensor:
    """The flat ``(m, n)`` Jacobian from the case's SymPy transcription, evaluated at ``args``."""
    assert case.sympy is not None and sp is not None
    exprs, syms = case.sympy
    v = torch.cat([t.reshape(-1) for t in tree_flatten(diff_inputs(case, args))[0]])
    assert len(syms) == v.numel(), "one symbol per flattened input entry"
    J = sp.Matrix(exprs).jacobian(sp.Matrix(syms))
    point = dict(zip(syms, (float(t) for t in v), strict=True))
    values = [[float(J[i, j].evalf(30, subs=point)) for j in range(J.shape[1])]
              for i in range(J.shape[0])]
    return torch.tensor(values, dtype=DT)


def assert_tree_close(actual: Any, expected: Any, *, rtol: float = 1e-12, atol: float = 1e-12,
                      what: str = "") -> None:
    """Same pytree structure, and every leaf has the same shape and dtype and is close."""
    a_leaves, a_spec = tree_flatten(actual)
    e_leaves, e_spec = tree_flatten(expected)
    assert a_spec == e_spec, f"{what}: structure {a_spec} != expected {e_spec}"
    for i, (a, e) in enumerate(zip(a_leaves, e_leaves, strict=True)):
        assert isinstance(a, torch.Tensor), f"{what}: leaf {i} is a {type(a).__name__}"
        assert a.shape == e.shape, f"{what}: leaf {i} has shape {tuple(a.shape)}, " \
                                   f"expected {tuple(e.shape)}"
        assert a.dtype == e.dtype, f"{what}: leaf {i} has dtype {a.dtype}, expected {e.dtype}"
        torch.testing.assert_close(a.detach(), e.detach(), rtol=rtol, atol=atol,
                                   msg=lambda m, i=i: f"{what}: leaf {i}: {m}")
