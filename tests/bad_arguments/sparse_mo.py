"""Entries for jacobite.sparse and jacobite.multiobjective (aggregators are called on a
Jacobian matrix; those with constructor options are also built with bad ones)."""

from __future__ import annotations

import scipy.sparse as sp
import torch

from jacobite import multiobjective as mo
from jacobite import sparse
from jacobite.errors import ArgumentTypeError, DistributedError

from . import F64, choice, entry, fn, posint, tensor, tol, typed

X = torch.tensor([0.3, -0.2, 0.5, 0.1], dtype=F64)
PAT = sp.csr_array(sp.eye(4) + sp.eye(4, k=1))
NAN_J = torch.tensor([[1.0, float("nan")], [0.0, 1.0]])
J2 = torch.tensor([[1.0, 0.5, -1.0], [0.2, 1.0, 0.0], [0.3, -0.1, 0.4], [0.0, 0.2, 1.0]])


def F(v: torch.Tensor) -> torch.Tensor:
    return torch.cat([v[:-1] * v[1:], v[-1:] ** 2])


def S(v: torch.Tensor) -> torch.Tensor:
    return (v[:-1] * v[1:]).sum()


_pattern = [(0, "abc"), (0, None), (0, 3), (0, torch.ones(4)), (0, [["a", "b"]]),
            (0, object())]
_color = [*_pattern, *choice("order"), *posint("iterations", zero=False)]

_matrix = [(0, "abc"), (0, None), (0, 3), (0, torch.ones(3)), (0, torch.ones(2, 2, 2)),
           (0, torch.ones(2, 3, dtype=torch.int64)), (0, NAN_J), (0, torch.ones(0, 3))]


def _agg(name: str, make, *ctor_cases, args: tuple = ()) -> list:
    """An aggregator: its instance called on bad matrices, and (when it has options) its
    constructor called with bad ones."""
    out = [entry(f"{name}()", lambda m, _a=args: make(*_a)(m), J2, cases=_matrix)]
    if ctor_cases:
        out.append(entry(name, make, *args, cases=list(ctor_cases)))
    out[0].name = name if not ctor_cases else out[0].name
    return out


def _lin() -> tuple[torch.Tensor, list[torch.Tensor]]:
    w = torch.nn.Parameter(torch.ones(3))
    return torch.stack([(w**2).sum(), w.sum()]), [w]


def _gramian(losses=None, params=None, **kw):
    L, P = _lin()
    return mo.gramian(L if losses is None else losses, P if params is None else params, **kw)


def _backward(losses=None, params=None, aggregator=None, **kw):
    L, P = _lin()
    return mo.backward(L if losses is None else losses, P if params is None else params,
                       mo.UPGrad() if aggregator is None else aggregator, **kw)


#: ``process_group=``: a wrong type, and 'world' without an initialised torch.distributed
_GROUP = [typed("process_group", 3, ArgumentTypeError),
          typed("process_group", "world", DistributedError)]

_LOSS = [("losses", "abc"), ("losses", 3), ("losses", torch.ones(2)),
         ("losses", [torch.tensor(float("nan"), requires_grad=True)]), ("losses", [])]

NET = torch.nn.Linear(3, 1)
XB, YB = torch.randn(4, 3), torch.randn(4, 1)

ENTRIES = [
    entry("jacobite.sparse.detect", sparse.detect, F, X,
          cases=[*fn(0), *tensor(1, nan=False), (1, [[0.5]])]),
    entry("jacobite.sparse.detect_hessian", sparse.detect_hessian, S, X,
          cases=[*fn(0), *tensor(1, nan=False), (1, [[0.5]])]),
    entry("jacobite.sparse.prepare", sparse.prepare, F, X,
          cases=[*fn(0), *tensor(1, nan=False), *choice("mode"), *choice("order"),
                 ("pattern", "abc"), ("pattern", sp.csr_array(sp.eye(3))),
                 ("vectorize", "sometimes")]),
    entry("jacobite.sparse.prepare_hessian", sparse.prepare_hessian, S, X,
          cases=[*fn(0), *tensor(1, nan=False), *choice("order"), ("pattern", "abc"),
                 ("pattern", sp.csr_array(sp.eye(3))), ("vectorize", "sometimes")]),
    entry("jacobite.sparse.column_coloring", sparse.column_coloring, PAT, cases=_color),
    entry("jacobite.sparse.row_coloring", sparse.row_coloring, PAT, cases=_color),
    entry("jacobite.sparse.bicoloring", sparse.bicoloring, PAT, cases=_color),
    entry("jacobite.sparse.star_coloring", sparse.star_coloring, PAT,
          cases=[*_pattern, (0, sp.csr_array(sp.eye(4, 3))), *choice("order")]),
    entry("jacobite.sparse.lower_bound", sparse.lower_bound, PAT,
          cases=[*_pattern, (0, 2.5), (0, torch.ones(2, 2, 2))]),
    entry("jacobite.multiobjective.gramian", _gramian,
          cases=[*_LOSS, ("params", "abc"), ("params", [3]), ("params", []),
                 *[("chunk_size", v) for v in (0, -2, 1.5, "big")],
                 ("retain_graph", "yes")]),
    entry("jacobite.multiobjective.backward", _backward,
          cases=[*_LOSS, ("params", "abc"), ("params", [3]), ("aggregator", "upgrad"),
                 ("aggregator", 3), *[("chunk_size", v) for v in (0, -2, 1.5, "big")],
                 *_GROUP]),
    entry("jacobite.multiobjective.mtl_backward",
          lambda losses=None, features=None, **kw: mo.mtl_backward(
              *_mtl(losses, features), **kw),
          cases=[*_LOSS, ("features", "abc"), ("features", 3), ("features", []),
                 ("aggregator", "upgrad"), ("aggregator", 3), ("tasks_params", 3),
                 ("shared_params", "abc"), *_GROUP]),
    entry("jacobite.multiobjective.per_example_backward", mo.per_example_backward, NET,
          lambda mod, xi, yi: ((mod(xi) - yi) ** 2).sum(), XB, YB,
          cases=[(0, "abc"), (0, None), (0, 3), *fn(1), (2, "abc"), (2, None),
                 (2, torch.randn(5, 3)), (3, torch.randn(5, 1)), ("aggregator", "upgrad"),
                 *[("chunk_size", v) for v in (0, -2, 1.5, "big")]]),
    *_agg("jacobite.multiobjective.UPGrad", mo.UPGrad, ("pref_vector", "abc"),
          ("pref_vector", torch.ones(2, 2)), *tol("norm_eps"), *tol("reg_eps"),
          *choice("solver")),
    *_agg("jacobite.multiobjective.DualProj", mo.DualProj, ("pref_vector", "abc"),
          ("pref_vector", torch.ones(2, 2)), *tol("norm_eps"), *tol("reg_eps"),
          *choice("solver")),
    *_agg("jacobite.multiobjective.MGDA", mo.MGDA, *tol("epsilon"), *posint("max_iters"),
          *choice("solver")),
    *_agg("jacobite.multiobjective.CAGrad", mo.CAGrad, *tol(0), *tol("norm_eps"), args=(0.5,)),
    *_agg("jacobite.multiobjective.ConFIG", mo.ConFIG, ("pref_vector", "abc"),
          ("pref_vector", torch.ones(2, 2)), ("pref_vector", 3), ("pref_vector", NAN_J[0]),
          ("pref_vector", torch.ones(())), ("pref_vector", {"a": 1.0}),
          ("pref_vector", [1.0]), ("pref_vector", object())),
    *_agg("jacobite.multiobjective.Constant", mo.Constant, (0, "abc"), (0, None),
          (0, torch.ones(2, 2)), (0, NAN_J[0]), (0, [1.0, "a"]),
          (0, torch.ones(())), (0, 3), (0, object()), args=(torch.ones(4),)),
    *_agg("jacobite.multiobjective.AlignedMTL", mo.AlignedMTL, ("pref_vector", "abc"),
          ("pref_vector", torch.ones(2, 2)), ("pref_vector", NAN_J[0]),
          *choice("scale_mode"), ("scale_mode", None), ("pref_vector", 3),
          ("pref_vector", object())),
    *_agg("jacobite.multiobjective.GradDrop", mo.GradDrop, *fn("f"), ("leak", "abc"),
          ("leak", torch.ones(2, 2)), ("leak", NAN_J[0]), ("leak", 3),
          ("leak", object())),
    *_agg("jacobite.multiobjective.Krum", mo.Krum, *posint(0, zero=False), (0, None),
          *posint("n_selected"),
          args=(1,)),
    *_agg("jacobite.multiobjective.NashMTL", mo.NashMTL, *posint(0), *tol("max_norm"),
          *posint("update_weights_every"), *posint("optim_niter"), args=(4,)),
    *_agg("jacobite.multiobjective.TrimmedMean", mo.TrimmedMean, *posint(0, zero=False),
          (0, None), (0, [1]), (0, object()), (0, torch.tensor(1.5)), args=(0,)),
    *_agg("jacobite.multiobjective.IMTLG", mo.IMTLG),
    *_agg("jacobite.multiobjective.Mean", mo.Mean),
    *_agg("jacobite.multiobjective.PCGrad", mo.PCGrad),
    *_agg("jacobite.multiobjective.Random", mo.Random),
    *_agg("jacobite.multiobjective.Sum", mo.Sum),
]


def _mtl(losses, features):
    w = torch.nn.Parameter(torch.ones(3))
    feat = w * 2
    L = torch.stack([feat.sum(), (feat**2).sum()])
    return (L if losses is None else losses), (feat if features is None else features)
