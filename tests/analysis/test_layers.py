"""jacobite.analysis.layers: per-layer spectral norms on an MLP, a small CNN, a residual MLP."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

import jacobite
from jacobite.analysis.layers import (
    LayerRow,
    compare_initialisations,
    comparison_table,
    layer_report,
    plot_comparison,
)
from jacobite.errors import ArgumentTypeError, InvalidOptionError, ShapeError
from tests.nets import mlp, residual_mlp, small_cnn

F64 = torch.float64


def _norm(A: torch.Tensor) -> float:
    return float(torch.linalg.matrix_norm(A.detach(), ord=2))


def _dense_norm(f: nn.Module, x: torch.Tensor) -> float:
    J = jacobite.jacobian(f, x).detach()
    return _norm(J.reshape(f(x).numel(), x.numel()))


CASES = {
    "mlp": (lambda: mlp((6, 16, 16, 3)), (1, 6)),
    "cnn": (lambda: small_cnn(), (1, 1, 6, 6)),
    "residual": (lambda: residual_mlp(), (1, 8)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_rows_match_dense_layer_jacobians(name: str) -> None:
    make, shape = CASES[name]
    net = make()
    x = torch.randn(shape, dtype=F64, generator=torch.Generator().manual_seed(1))
    inputs: list[torch.Tensor] = []
    leaves = [m for m in net.modules() if not list(m.children())]
    hs = [m.register_forward_hook(lambda m, a, o: inputs.append(a[0].detach())) for m in leaves]
    net(x)
    for h in hs:
        h.remove()
    rep = layer_report(net, x, k=2)
    assert [r.kind for r in rep.rows] == [type(m).__name__ for m in leaves]
    cum = 1.0
    for row, mod, inp in zip(rep.rows, leaves, inputs, strict=True):
        ref = _dense_norm(mod, inp)
        assert row.spectral_norm == pytest.approx(ref, rel=1e-7, abs=1e-12)
        if isinstance(mod, nn.Linear):  # a Linear layer's norm is its weight's
            assert row.spectral_norm == pytest.approx(_norm(mod.weight), rel=1e-9)
        cum *= ref
        assert row.cumulative == pytest.approx(cum, rel=1e-6)
        assert row.in_shape == tuple(inp.shape) and row.flag == ""
        assert len(row.singular_values) == 2 and row.singular_values[0] == row.spectral_norm
    assert rep.total == pytest.approx(_dense_norm(net, x), rel=1e-7)
    assert json.loads(json.dumps(rep.to_dict()))["rows"][0]["kind"] == rep.rows[0].kind
    text = str(rep)
    assert "cumulative" in text and rep.rows[-1].name in text


def test_residual_rows_are_named_by_module_path() -> None:
    rep = layer_report(residual_mlp(blocks=2), torch.randn(1, 8, dtype=F64), total=False)
    assert [r.name for r in rep.rows][:3] == ["blocks.0.0", "blocks.0.1", "blocks.0.2"]
    assert rep.rows[-1].name == "head" and math.isnan(rep.total)


def test_shared_layer_called_twice_gets_two_rows() -> None:
    lin = nn.Linear(4, 4).double()
    net = nn.Sequential(lin, nn.Tanh(), lin)
    rep = layer_report(net, torch.randn(2, 4, dtype=F64))
    assert [r.name for r in rep.rows] == ["0", "1", "0#2"]


def test_flags_vanishing_and_exploding() -> None:
    def scaled(c: float) -> nn.Sequential:
        net = mlp((5,) * 6, act=nn.Identity)
        with torch.no_grad():
            for m in net:
                if isinstance(m, nn.Linear):
                    m.weight.copy_(c * torch.eye(5, dtype=F64))
        return net

    x = torch.ones(1, 5, dtype=F64)
    rows = layer_report(scaled(10.0), x).rows
    lin = [r for r in rows if r.kind == "Linear"]
    assert [r.flag for r in lin] == ["", "", "", "exploding", "exploding"]
    assert lin[-1].cumulative == pytest.approx(1e5)
    rows = layer_report(scaled(0.1), x).rows
    assert [r.flag for r in rows if r.kind == "Linear"][-2:] == ["vanishing", "vanishing"]


def test_rowdataclass_is_frozen() -> None:
    row = LayerRow("a", "Linear", (1, 2), (1, 3), 2.0, 2.0, "")
    with pytest.raises(AttributeError):
        row.flag = "x"  # type: ignore[misc]


def test_compare_initialisations_table_and_plot(tmp_path: object) -> None:
    make = lambda: mlp((6, 24, 24, 24, 3), act=nn.ReLU)  # noqa: E731
    x = torch.randn(1, 6, dtype=F64, generator=torch.Generator().manual_seed(2))
    reps = compare_initialisations(make, x, seed=3)
    assert list(reps) == ["xavier", "kaiming", "default"]
    torch.manual_seed(3)
    default = make()
    rep = layer_report(default, x)
    assert [r.spectral_norm for r in reps["default"].rows] == pytest.approx(
        [r.spectral_norm for r in rep.rows], rel=1e-9)
    # Kaiming (gain √2, fan-in) grows the product faster than Xavier (fan-average)
    assert reps["kaiming"].rows[-2].cumulative > reps["xavier"].rows[-2].cumulative
    table = comparison_table(reps)
    assert "xavier" in table and "kaiming" in table and "total" in table
    custom = compare_initialisations(make, x, {"zeros": lambda m: [
        nn.init.zeros_(p) for p in m.parameters(recurse=False)]})
    assert custom["zeros"].rows[0].spectral_norm == 0.0
    pytest.importorskip("matplotlib")
    fig = plot_comparison(reps)
    assert len(fig.axes[0].lines) >= 3
    fig2 = rep.plot()
    assert fig2.axes[0].get_yscale() == "log"
    fig3 = plot_comparison(reps)
    assert rep.plot(ax=fig3.axes[0]) is fig3
    with pytest.raises(InvalidOptionError, match="Axes"):
        rep.plot(ax="nope")


def test_bad_input() -> None:
    with pytest.raises(ArgumentTypeError, match="Module"):
        layer_report(lambda v: v, torch.ones(2))  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="must be a tensor"):
        layer_report(nn.Tanh(), [1.0])  # type: ignore[arg-type]
    with pytest.raises(ShapeError, match="module accepts") as info:
        layer_report(nn.Linear(3, 2), torch.ones(1, 4))
    assert isinstance(info.value.__cause__, RuntimeError)
    with pytest.raises(ArgumentTypeError, match="inits must"):
        compare_initialisations(lambda: nn.Tanh(), torch.ones(2), inits="xavier")
    with pytest.raises(ArgumentTypeError, match="LayerReport"):
        comparison_table({"a": 3})  # type: ignore[dict-item]
    with pytest.raises(InvalidOptionError, match="k must"):
        layer_report(nn.Tanh(), torch.ones(2), k=0)
    with pytest.raises(InvalidOptionError, match="initialisation"):
        compare_initialisations(lambda: nn.Tanh(), torch.ones(2), inits=("lecun",))


def test_single_leaf_module_reports_itself() -> None:
    rep = layer_report(nn.Tanh(), torch.zeros(1, 3, dtype=F64))
    assert len(rep.rows) == 1 and rep.rows[0].spectral_norm == pytest.approx(1.0)


def test_compare_initialisations_seed_none_follows_torch_manual_seed() -> None:
    def make() -> nn.Module:
        return nn.Sequential(nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 2)).double()

    x = torch.ones(1, 3, dtype=F64)

    def totals(seed):
        return [r.total for r in compare_initialisations(make, x, ("xavier",), seed).values()]

    torch.manual_seed(4)
    a = totals(None)
    torch.manual_seed(4)
    assert totals(None) == a
    assert totals(2) == totals(2)
