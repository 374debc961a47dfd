"""Entries for jacobite.curvature (Gauss–Newton, Hessian and Jacobian operators of a network,
the exact Gauss–Newton diagonal, the Fisher, K-FAC)."""

from __future__ import annotations

import torch
from torch import nn

from jacobite import curvature as C
from jacobite.errors import (
    ArgnumsError,
    ArgumentTypeError,
    DistributedError,
    DtypeError,
    InvalidOptionError,
    ModuleStateError,
    NonFiniteInputError,
    ShapeError,
    UnsupportedOperationError,
)

from . import F64, choice, entry, flag, fn, posint, seed, typed

MODEL = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
X = torch.randn(5, 3, dtype=F64)
Y = torch.randint(0, 2, (5,))
CE = nn.CrossEntropyLoss()
_BN = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).double()  # left in training mode


POST = C.laplace(MODEL, CE, (X, Y), structure="kron", prior_precision=1.0)
POST_LL = C.laplace(MODEL, CE, (X, Y), prior_precision=1.0)


def _model_cases(slot: int) -> list:
    return [typed(slot, lambda x: x, ArgumentTypeError), typed(slot, None, ArgumentTypeError),
            typed(slot, "mlp", ArgumentTypeError), typed(slot, _BN, ModuleStateError),
            typed(slot, nn.Linear(3, 2), DtypeError)]  # float32 model, float64 data


def _data_cases(slot: int, *, targets: bool) -> list:
    out = [typed(slot, 3, ArgumentTypeError), typed(slot, None, ArgumentTypeError),
           typed(slot, iter([(X, Y)]), ArgumentTypeError), typed(slot, [], ShapeError),
           typed(slot, (X.float(), Y), DtypeError),
           typed(slot, (torch.full((2, 3), torch.nan, dtype=F64), Y[:2]), NonFiniteInputError),
           typed(slot, ("abc", Y), ArgumentTypeError)]
    if targets:
        out += [typed(slot, X, ArgumentTypeError), typed(slot, (X, "abc"), ArgumentTypeError)]
    return out


def _params_cases(slot: str) -> list:
    return [typed(slot, "0.weight", ArgumentTypeError), typed(slot, [0], ArgumentTypeError),
            typed(slot, ["nope"], ArgnumsError), typed(slot, [], ArgnumsError),
            typed(slot, 3, ArgumentTypeError)]


def _group_cases() -> list:
    """``process_group=``: a wrong type, and 'world' without an initialised torch.distributed."""
    return [typed("process_group", 3, ArgumentTypeError),
            typed("process_group", "world", DistributedError)]


def _loss_cases(slot: int, closed_form: bool = False) -> list:
    # a callable without a closed form: not a scalar for ggn, no square root for the diagonal
    return [*fn(slot), typed(slot, nn.CrossEntropyLoss(reduction="none"), InvalidOptionError),
            typed(slot, lambda o, t: o, UnsupportedOperationError if closed_form else ShapeError)]


ENTRIES = [
    entry("jacobite.curvature.ggn", C.ggn, MODEL, CE, (X, Y),
          cases=[*_model_cases(0), *_loss_cases(1), *_data_cases(2, targets=True),
                 *_params_cases("params"), *_group_cases(), *flag("cache")]),
    entry("jacobite.curvature.hessian", C.hessian, MODEL, CE, (X, Y),
          cases=[*_model_cases(0), *_loss_cases(1), *_data_cases(2, targets=True),
                 *_params_cases("params"), *_group_cases()]),
    entry("jacobite.curvature.ggn_diagonal", C.ggn_diagonal, MODEL, CE, (X, Y),
          cases=[*_model_cases(0), *_loss_cases(1, closed_form=True),
                 typed(1, nn.HuberLoss(), UnsupportedOperationError),
                 *_data_cases(2, targets=True), *_params_cases("params"), *_group_cases()]),
    entry("jacobite.curvature.diagonal_estimate", C.diagonal_estimate, MODEL, CE, (X, Y),
          cases=[*_model_cases(0), *_loss_cases(1, closed_form=True),
                 typed(1, nn.HuberLoss(), UnsupportedOperationError),
                 *_data_cases(2, targets=True), *_params_cases("params"), *choice("method"),
                 typed("nprobe", 1, InvalidOptionError), typed("nprobe", 2.5, ArgumentTypeError),
                 typed("nprobe", True, ArgumentTypeError), *seed("seed")]),
    entry("jacobite.curvature.jacobian", C.jacobian, MODEL, X,
          cases=[*_model_cases(0), *_data_cases(1, targets=False), *_params_cases("params"),
                 *_group_cases()]),
    entry("jacobite.curvature.fisher", C.fisher, MODEL, CE, (X, Y),
          cases=[*_model_cases(0), *_loss_cases(1, closed_form=True),
                 typed(1, nn.HuberLoss(), UnsupportedOperationError),
                 *_data_cases(2, targets=True), *_params_cases("params"), *_group_cases(),
                 *flag("cache"),
                 *choice("kind"), *seed("seed"), typed("samples", 0, InvalidOptionError),
                 typed("samples", 1.5, ArgumentTypeError)]),
    entry("jacobite.curvature.kfac", C.kfac, MODEL, CE, (X, Y),
          cases=[*_model_cases(0), *_loss_cases(1, closed_form=True),
                 typed(1, nn.HuberLoss(), UnsupportedOperationError),
                 *_data_cases(2, targets=True), *_params_cases("params"), *_group_cases(),
                 *choice("kind"),
                 typed("kind", "exact", InvalidOptionError), *seed("seed"),
                 typed("samples", 0, InvalidOptionError), typed("damping", -1.0,
                                                                InvalidOptionError),
                 typed("damping", "big", ArgumentTypeError),
                 typed(2, (X, torch.full((5,), -100)), ShapeError)]),
    entry("jacobite.curvature.laplace", C.laplace, MODEL, CE, (X, Y),
          cases=[*_model_cases(0), *_loss_cases(1, closed_form=True),
                 typed(1, nn.HuberLoss(), UnsupportedOperationError),
                 typed(1, nn.CrossEntropyLoss(label_smoothing=0.1), UnsupportedOperationError),
                 typed(2, (X, torch.full((5, 2), 0.5, dtype=F64)), UnsupportedOperationError),
                 *_data_cases(2, targets=True), *choice("structure"),
                 typed("prior_precision", -1.0, InvalidOptionError),
                 typed("prior_precision", "big", ArgumentTypeError),
                 typed("prior_precision", float("nan"), NonFiniteInputError),
                 typed("prior_precision", torch.ones(5, dtype=F64), ShapeError),
                 typed("temperature", 0.0, InvalidOptionError),
                 typed("temperature", "hot", ArgumentTypeError),
                 typed("sigma_noise", -1.0, InvalidOptionError)]),
    entry("jacobite.curvature.Laplace.predictive", POST.predictive, X,
          cases=[*_data_cases(0, targets=False)[:6], *choice("link"),
                 typed("samples", 0, InvalidOptionError), *seed("seed"), *flag("diagonal")]),
    entry("jacobite.curvature.Laplace.functional_variance", POST.functional_variance, X,
          cases=[*_data_cases(0, targets=False)[:6], *flag("diagonal")]),
    entry("jacobite.curvature.Laplace.sample", POST.sample, 4,
          cases=[*posint(0), *seed("seed")]),
    entry("jacobite.curvature.Laplace.last_layer_jacobian", POST_LL.last_layer_jacobian, X,
          cases=[*_data_cases(0, targets=False)[:6], typed(0, "abc", ArgumentTypeError),
                 typed(0, {"x": X}, ArgumentTypeError)]),
    entry("jacobite.curvature.Laplace.log_marginal_likelihood",
          POST.log_marginal_likelihood, 1.0,
          cases=[typed(0, -1.0, InvalidOptionError), typed(0, "big", ArgumentTypeError),
                 typed(0, float("inf"), NonFiniteInputError),
                 typed(0, torch.ones(3, dtype=F64), ShapeError), typed(0, 0.0, InvalidOptionError),
                 typed(0, True, ArgumentTypeError), typed(0, float("nan"), NonFiniteInputError),
                 typed(0, torch.tensor([1.0, -1.0], dtype=F64), InvalidOptionError),
                 typed(0, [1.0, 2.0], ArgumentTypeError)]),
]
