"""Entries for jacobite.operators and jacobite.nn."""

from __future__ import annotations

import math
from typing import Any

import scipy.sparse as sp
import torch

from jacobite import nn as J
from jacobite import operators as O

from . import F64, choice, entry, flag, fn, posint, seed, tensor, tol

M = torch.tensor([[2.0, 1.0], [1.0, 3.0]], dtype=F64)
D = torch.tensor([1.0, 2.0, 3.0], dtype=F64)
U = torch.tensor([[1.0], [0.5], [-1.0]], dtype=F64)
OP = O.DenseOperator(M)
Z = torch.tensor([0.5, -1.0, 2.0], dtype=F64)
ZB = torch.tensor([[0.5, -1.0, 2.0], [0.1, 0.2, 0.3]], dtype=F64)
NAN3 = torch.tensor([0.5, float("nan"), 1.0], dtype=F64)
LIN = torch.nn.Linear(3, 2).double()
MLP = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Tanh()).double()
_not_op = [(0, "abc"), (0, None), (0, 3), (0, M)]


def _jenn_fit(x: Any, y: Any, dydx: Any = None, *, mask: Any = None, weight: Any = None,
              **params: Any) -> Any:
    """JENNRegressor checks its hyper-parameters in fit: construct, then fit two steps."""
    params = {"hidden": (3,), "max_iter": 2, **params}
    return J.JENNRegressor(**params).fit(x, y, dydx, mask=mask, weight=weight)

_mat = [*tensor(0, (3,), (2, 2, 2), ()), (0, [[1.0, 2.0]])]

ENTRIES = [
    entry("jacobite.operators.DenseOperator", O.DenseOperator, M,
          cases=[*_mat, ("tags", ("no-such-tag",)), ("tags", 3), *posint("rank_bound", zero=False),
                 ("check_tags", "yes")]),
    entry("jacobite.operators.BlockDiagonal", O.BlockDiagonal, M.expand(2, 2, 2).clone(),
          cases=[*tensor(0, (3,), (2, 3)), ("tags", ("no-such-tag",)), ("tags", 3),
                 *posint("rank_bound", zero=False)]),
    entry("jacobite.operators.KroneckerOperator", O.KroneckerOperator, M, M,
          cases=[*tensor(0, (3,), (2, 2, 2)), *tensor(1, (3,), ()), (1, M.float()),
                 ("shift", -1.0), ("shift", "abc"), ("shift", float("nan")), ("psd", "yes"),
                 ("shift", float("inf"))]),
    entry("jacobite.operators.KroneckerIdentity", O.KroneckerIdentity, M, 2,
          cases=[*tensor(0, (3,), (2, 2, 2)), *posint(1)]),
    entry("jacobite.operators.DiagonalOperator", O.DiagonalOperator, D,
          cases=[*tensor(0, (2, 2), ()), (0, [1.0, 2.0])]),
    entry("jacobite.operators.LowRankOperator", O.LowRankOperator, U,
          cases=[*tensor(0, (2, 2, 2)), (1, torch.ones(3, 2, dtype=F64)), (1, "abc"),
                 ("core", "abc"), ("core", torch.ones(3, 3, dtype=F64))]),
    entry("jacobite.operators.DiagonalPlusLowRank", O.DiagonalPlusLowRank, D, U,
          cases=[*tensor(0, (2,), (3, 3)), (1, torch.ones(2, 1, dtype=F64)), (1, "abc"),
                 (1, None), (2, torch.ones(3, 2, dtype=F64)), ("core", "abc")]),
    entry("jacobite.operators.FunctionOperator", O.FunctionOperator, (2, 2),
          lambda v: M @ v, dtype=F64,
          cases=[(0, (2,)), (0, (-1, 2)), (0, (2.5, 2)), (0, "2x2"), (0, None), *fn(1),
                 ("rmv", 3), ("dtype", "float64"), ("dtype", torch.int64), ("device", 3),
                 ("tags", ("no-such-tag",)), *posint("rank_bound", zero=False)]),
    entry("jacobite.operators.ScaledIdentity", O.ScaledIdentity, 2.0, 3,
          cases=[(0, "abc"), (0, None), (0, float("nan")), *posint(1, zero=False),
                 ("dtype", "float64"), ("dtype", torch.int64), ("device", 3)]),
    entry("jacobite.operators.ScaledOperator", O.ScaledOperator, 2.0, OP,
          cases=[(0, "abc"), (0, None), (0, float("nan")), (0, torch.ones(2, dtype=F64)),
                 (1, 3), (1, "abc"), (1, None), (1, M)]),
    entry("jacobite.operators.SparseOperator", O.SparseOperator, sp.eye(3, format="csr"),
          cases=[(0, "abc"), (0, None), (0, 3), (0, torch.ones(3, dtype=F64)),
                 (0, sp.csr_matrix(([float("nan")], ([0], [0])), shape=(2, 2))),
                 ("dtype", "float64"), ("dtype", torch.int64), ("device", 3),
                 ("tags", ("no-such-tag",)), *posint("rank_bound", zero=False)]),
    entry("jacobite.operators.SumOperator", O.SumOperator, OP, OP,
          cases=[*_not_op, (1, "abc"), (1, None), (1, M), (1, O.DiagonalOperator(D))]),
    entry("jacobite.operators.Composed", O.Composed, OP, OP,
          cases=[*_not_op, (1, "abc"), (1, None), (1, M), (1, O.DiagonalOperator(D))]),
    entry("jacobite.operators.Transposed", O.Transposed, OP,
          cases=[*_not_op, (0, [1.0]), (0, 2.5), (0, sp.eye(2)), (0, object())]),
    entry("jacobite.operators.as_operator", O.as_operator, M,
          cases=[*tensor(0, (2, 2, 2), ()), (0, [[1.0, float("nan")]]), (0, lambda v: v),
                 ("dtype", "float64"), ("dtype", torch.int64)]),
    entry("jacobite.operators.infer_tags", O.infer_tags, M,
          cases=[*tensor(0, (3,), ()), *tol("atol")]),
    entry("jacobite.operators.verify_tags", O.verify_tags, OP,
          cases=[*_not_op, (0, [1.0]), (0, 2.5), (0, object()), *tol("atol")]),
    # ---- nn
    entry("jacobite.nn.activation_spec", J.activation_spec, "leaky_relu",
          cases=[(0, "no-such-activation"), (0, 3), (0, None), (0, object()),
                 ("negative_slope", "big"), ("negative_slope", float("nan")),
                 ("no_such_param", 1.0), (0, torch.nn.Linear(2, 2))]),
    entry("jacobite.nn.activation_derivative", J.activation_derivative, "tanh", Z,
          cases=[(0, "no-such-activation"), (0, 3), (0, None), *tensor(1),
                 ("no_such_param", 1.0)]),
    entry("jacobite.nn.activation_jacobian", J.activation_jacobian, "sigmoid", Z,
          cases=[(0, "no-such-activation"), (0, 3), (0, None), *tensor(1), (1, [[Z]]),
                 ("no_such_param", 1.0)]),
    entry("jacobite.nn.softmax_jacobian", J.softmax_jacobian, Z,
          cases=[*tensor(0, ()), ("dim", 5), ("dim", -4), ("dim", 2.5), ("dim", True),
                 ("dim", "last"), ("dim", None)]),
    entry("jacobite.nn.softmax_jvp", J.softmax_jvp, Z, Z,
          cases=[*tensor(0, ()), (1, "abc"), (1, None), (1, torch.ones(4, dtype=F64)),
                 ("dim", 5), ("dim", 1.5), ("dim", None)]),
    entry("jacobite.nn.softmax_vjp", J.softmax_vjp, Z, Z,
          cases=[*tensor(0, ()), (1, "abc"), (1, None), (1, torch.ones(4, dtype=F64)),
                 ("dim", 5), ("dim", 1.5), ("dim", None)]),
    entry("jacobite.nn.SoftmaxJacobian", J.SoftmaxJacobian, D, U,
          cases=[*tensor(0, (2,), (3, 3)), (1, torch.ones(2, 1, dtype=F64)), (1, "abc"),
                 (1, None)]),
    entry("jacobite.nn.BatchedSoftmaxJacobian", J.BatchedSoftmaxJacobian,
          torch.softmax(ZB, -1),
          cases=[*tensor(0, ()), ("dim", 5), ("dim", 1.5), ("dim", "last")]),
    entry("jacobite.nn.RepeatedBlockDiagonal", J.RepeatedBlockDiagonal, OP, 3,
          cases=[*_not_op, *posint(1)]),
    entry("jacobite.nn.linear_layer_jacobian", J.linear_layer_jacobian, LIN, Z,
          cases=[(0, "abc"), (0, None), (0, torch.ones(3, dtype=F64)), *tensor(1, (4,), ()),
                 ("activation", "no-such-activation"), ("activation", 3),
                 ("bias", torch.ones(5, dtype=F64))]),
    entry("jacobite.nn.layer_jacobian", J.layer_jacobian, LIN, Z,
          cases=[(0, "abc"), (0, None), (0, 3), (0, torch.nn.Conv3d(1, 1, 1)),
                 *tensor(1, (4,), ())]),
    entry("jacobite.nn.backprop", J.backprop, MLP, ZB, torch.zeros(2, 2, dtype=F64),
          cases=[(0, "abc"), (0, None), (0, 3), *tensor(1, (2, 5)), (2, "abc"),
                 (2, torch.zeros(3, 3, dtype=F64)), (3, "no-such-loss"), (3, 3),
                 *choice("reduction")]),
    entry("jacobite.nn.mse_gradient", J.mse_gradient, Z, Z,
          cases=[*tensor(0, ()), (1, "abc"), (1, None), (1, torch.ones(4, dtype=F64)),
                 (1, NAN3), *choice("reduction")]),
    entry("jacobite.nn.cross_entropy_loss", J.cross_entropy_loss, Z, 1,
          cases=[*tensor(0, ()), (1, 5), (1, -1), (1, "cat"), (1, 1.5), (1, None),
                 *choice("reduction")]),
    entry("jacobite.nn.cross_entropy_gradient", J.cross_entropy_gradient, Z, 1,
          cases=[*tensor(0, ()), (1, 5), (1, -1), (1, "cat"), (1, 1.5), (1, None),
                 *choice("reduction")]),
    entry("jacobite.nn.one_hot_target", J.one_hot_target, 1, Z,
          cases=[(0, 5), (0, -4), (0, "cat"), (0, 1.5), (0, None), *tensor(1, ())]),
    entry("jacobite.nn.softmax_example", J.softmax_example,
          cases=[("z", "abc"), ("z", ()), ("z", (1.0, float("nan"))), ("z", None),
                 ("target", 5), ("target", -4), ("target", 1.5), ("target", "0"),
                 ("labels", ("a",)), ("labels", 3)]),
    entry("jacobite.nn.jacobian_penalty", J.jacobian_penalty, MLP, ZB,
          cases=[*fn(0), *tensor(1, ()), ("nproj", 0), ("nproj", -2), ("nproj", 2.5),
                 ("seed", -1), ("seed", "0"), ("output", "abc")]),
    entry("jacobite.nn.sobolev_loss", J.sobolev_loss, MLP, ZB, torch.zeros(2, 2, dtype=F64),
          torch.zeros(2, 2, 3, dtype=F64),
          cases=[*fn(0), *tensor(1, (2, 3, 1), ()), *tensor(2, (3,), (2, 3)),
                 *tensor(3, (2, 3), (2, 3, 2), none=False), ("weight", -1.0), ("weight", "abc"),
                 ("weight", float("nan")), ("weight", torch.ones(5, dtype=F64)),
                 ("mask", "abc"), ("mask", torch.ones(5, dtype=torch.bool)), *choice("mode"),
                 *choice("reduction"), *choice("jac_mode"), ("k", 3), ("directional", "abc"),
                 *seed("seed")]),
    entry("jacobite.nn.JENNRegressor", _jenn_fit, ZB, torch.zeros(2, 1, dtype=F64),
          torch.zeros(2, 1, 3, dtype=F64),
          cases=[*tensor(0, (2, 3, 1)), *tensor(1, (3, 1), (2, 1, 1), nan=False),
                 (2, "abc"), (2, torch.ones(2, 3, dtype=F64) * math.inf),
                 (2, torch.ones(2, 2, 2, dtype=F64)), ("mask", "abc"),
                 ("mask", torch.ones(5, dtype=torch.bool)), ("weight", -1.0),
                 ("weight", torch.ones(5, dtype=F64)), *choice("optimizer"),
                 *choice("activation"), *choice("jac_mode"), *posint("max_iter"),
                 *posint("n_iter_no_change"), *tol("tol"), *tol("alpha"), *seed("seed"),
                 *flag("normalize"), *flag("early_stopping"), ("hidden", "20"),
                 ("hidden", (3, 0)), ("lr", 0.0), ("lr", "big"), ("batch_size", 8),
                 ("validation_fraction", 1.5), ("module", "net"), ("dtype", torch.int64),
                 ("device", 3), ("progress", "yes")]),
    entry("jacobite.nn.sobolev_data", J.sobolev_data, torch.sin, ZB,
          cases=[*fn(0), *tensor(1, (2, 3, 1), ()), *choice("method"), *flag("batched_model"),
                 *choice("numeric_method")]),
    entry("jacobite.nn.check_sobolev_data", J.check_sobolev_data, torch.sin, ZB, torch.sin(ZB),
          torch.diag_embed(torch.cos(ZB)),
          cases=[*fn(0), *tensor(1, (2, 3, 1), ()), (2, "abc"), (2, None), (2, ZB[:1]),
                 (3, "abc"), (3, None), (3, ZB), (3, torch.ones(2, 3, 4, dtype=F64)),
                 *tol("rtol"), *tol("atol"), *choice("method"), *flag("batched_model")]),
]
