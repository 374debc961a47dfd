"""Bad input to the curvature operators raises a typed error that names the fix."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from jacobite.curvature import ggn, hessian, jacobian
from jacobite.errors import (
    ArgnumsError,
    ArgumentTypeError,
    DtypeError,
    InvalidOptionError,
    ModuleStateError,
    NonFiniteInputError,
    ShapeError,
)

F64 = torch.float64


def _mlp(*mods: nn.Module) -> nn.Module:
    return nn.Sequential(nn.Linear(3, 4), *mods, nn.Linear(4, 2)).double()


X, Y = torch.randn(5, 3, dtype=F64), torch.randint(0, 2, (5,))
CE = nn.CrossEntropyLoss()


@pytest.mark.parametrize("build", [lambda m: ggn(m, CE, (X, Y)),
                                   lambda m: hessian(m, CE, (X, Y)), lambda m: jacobian(m, X)],
                         ids=["ggn", "hessian", "jacobian"])
@pytest.mark.parametrize("layer", [lambda: nn.BatchNorm1d(4), lambda: nn.Dropout(0.2)],
                         ids=["bn", "dropout"])
def test_training_mode_batchnorm_and_dropout_name_model_eval(build, layer):
    model = _mlp(layer())
    with pytest.raises(ModuleStateError, match=r"model\.eval\(\)"):
        build(model)
    model.eval()
    assert build(model).shape[1] == sum(p.numel() for p in model.parameters())


def test_bad_model_loss_and_cache():
    with pytest.raises(ArgumentTypeError, match=r"nn\.Module"):
        ggn(lambda x: x, CE, (X, Y))
    with pytest.raises(ArgumentTypeError, match="callable"):
        ggn(_mlp(), "cross_entropy", (X, Y))
    with pytest.raises(InvalidOptionError, match="reduction='mean'"):
        ggn(_mlp(), nn.CrossEntropyLoss(reduction="none"), (X, Y))
    with pytest.raises(ShapeError, match="scalar"):
        hessian(_mlp(), lambda o, t: (o - 1) ** 2, (X, Y))
    with pytest.raises(ArgumentTypeError, match="cache"):
        ggn(_mlp(), CE, (X, Y), cache="yes")


def test_bad_data():
    model = _mlp()
    with pytest.raises(ArgumentTypeError, match="list of batches"):
        ggn(model, CE, iter([(X, Y)]))
    with pytest.raises(ArgumentTypeError, match=r"\(X, y\)"):
        ggn(model, CE, X)
    with pytest.raises(ArgumentTypeError, match=r"\(X, y\)"):
        ggn(model, CE, [(X, Y, Y)])
    with pytest.raises(ArgumentTypeError, match="tensor"):
        ggn(model, CE, ("abc", Y))
    with pytest.raises(ShapeError, match="at least one batch"):
        ggn(model, CE, [])
    with pytest.raises(DtypeError, match=r"X\.to\(torch\.float64\)"):
        jacobian(model, X.float())
    with pytest.raises(NonFiniteInputError, match="nan_to_num"):
        jacobian(model, torch.full((2, 3), torch.nan, dtype=F64))
    with pytest.raises(ShapeError, match="leave empty batches out"):
        jacobian(model, torch.zeros(0, 3, dtype=F64))
    with pytest.raises(ShapeError, match=r"reshape\(1, -1\)"):
        jacobian(model, torch.tensor(1.0, dtype=F64))
    with pytest.raises(ArgumentTypeError, match="data must be"):
        jacobian(model, 3)


def test_bad_params():
    model = _mlp()
    with pytest.raises(ArgnumsError, match="choose from"):
        ggn(model, CE, (X, Y), params=["nope"])
    with pytest.raises(ArgumentTypeError, match="names"):
        ggn(model, CE, (X, Y), params="0.weight")
    with pytest.raises(ArgumentTypeError, match="names"):
        ggn(model, CE, (X, Y), params=[0])
    with pytest.raises(ArgnumsError, match="params="):
        ggn(model, CE, (X, Y), params=[])


def test_vectors_of_the_wrong_length_or_dtype():
    G = ggn(_mlp(), CE, (X, Y))
    with pytest.raises(ShapeError):
        G.mv(torch.ones(3, dtype=F64))
    with pytest.raises(DtypeError):
        G.mv(torch.ones(G.shape[1], dtype=torch.float32))


def test_data_on_another_device_names_the_move():
    model = _mlp()
    with pytest.raises(InvalidOptionError, match=r"\.to\('cpu'\)"):
        jacobian(model, X.to("meta"))
    with pytest.raises(InvalidOptionError, match=r"targets y"):
        ggn(model, CE, (X, Y.to("meta")))
