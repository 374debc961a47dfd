"""`jacobite inspect FILE.py:FACTORY --input-shape …`: the layer report of a user's model on
an MLP, a small CNN and a residual MLP written to files; one-line errors with exit status 2."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch

from . import run

FACTORIES = textwrap.dedent("""
    import torch
    from torch import nn


    def make_mlp():
        return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3)).double()


    def make_cnn():
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),
                             nn.Conv2d(4, 4, 3, padding=1), nn.Tanh(),
                             nn.Flatten(), nn.Linear(4 * 6 * 6, 3))


    class Res(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList(
                nn.Sequential(nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 8)) for _ in range(2))
            self.head = nn.Linear(8, 3)

        def forward(self, x):
            for b in self.blocks:
                x = x + b(x)
            return self.head(x)


    def make_residual():
        return Res().double()


    def make_tiny():
        m = nn.Sequential(*[nn.Linear(4, 4, bias=False) for _ in range(6)])
        for layer in m:
            nn.init.eye_(layer.weight)
            layer.weight.data *= 1e-2
        return m


    def not_a_model():
        return 3


    def broken():
        raise RuntimeError("no weights here")
""")


@pytest.fixture
def models(tmp_path):
    path = tmp_path / "models.py"
    path.write_text(FACTORIES)
    return path


@pytest.mark.parametrize("factory, shape, kinds", [
    ("make_mlp", "6", ["Linear", "Tanh", "Linear"]),
    ("make_cnn", "1,6,6", ["Conv2d", "ReLU", "Conv2d", "Tanh", "Flatten", "Linear"]),
    ("make_residual", "8", ["Linear", "Tanh", "Linear"] * 2 + ["Linear"]),
])
def test_json_report_on_three_architectures(models, factory, shape, kinds, capsys):
    # --tol 1e-6: tanh's diagonal Jacobian has clustered values that Lanczos resolves slowly
    code, out, err = run(capsys, "inspect", f"{models}:{factory}", "--input-shape", shape,
                         "--tol", "1e-6", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert [r["kind"] for r in data["rows"]] == kinds
    assert data["input_shape"] == [1, *map(int, shape.split(","))]
    assert data["output_shape"] == [1, 3]
    norms = [r["spectral_norm"] for r in data["rows"]]
    assert all(n > 0 for n in norms)
    cum = 1.0
    for r, n in zip(data["rows"], norms, strict=True):
        cum *= n
        assert r["cumulative"] == pytest.approx(cum, rel=1e-12)
    # the whole network's norm against the dense Jacobian of the same seeded model
    import importlib.util

    spec = importlib.util.spec_from_file_location("m", models)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    torch.manual_seed(0)
    model = getattr(mod, factory)().eval()
    dtype = next(model.parameters()).dtype
    x = torch.randn((1, *map(int, shape.split(","))), generator=torch.Generator().manual_seed(0),
                    dtype=dtype)
    J = torch.autograd.functional.jacobian(model, x).reshape(3, -1)
    tol = 1e-8 if dtype == torch.float64 else 1e-4
    assert data["total"] == pytest.approx(float(torch.linalg.matrix_norm(J, ord=2)), rel=tol)
    if kinds[0] == "Linear" and dtype == torch.float64:  # a Linear layer's norm is σ_max(W)
        w = (model[0].weight if factory == "make_mlp" else model.blocks[0][0].weight).detach()
        assert norms[0] == pytest.approx(float(torch.linalg.matrix_norm(w, ord=2)), rel=1e-9)


def test_human_table_batch_seed_and_flags(models, capsys):
    code, out, _ = run(capsys, "inspect", f"{models}:make_tiny", "--input-shape", "4",
                       "--batch", "2", "--seed", "3")
    assert code == 0
    assert "vanishing" in out and "whole network" in out and "Linear" in out
    code, out, _ = run(capsys, "inspect", f"{models}:make_tiny", "--input-shape", "4", "--json")
    data = json.loads(out)
    assert data["flags"] == ["vanishing"]
    assert data["rows"][-1]["cumulative"] == pytest.approx(1e-12, rel=1e-4)
    a = run(capsys, "inspect", f"{models}:make_residual", "--input-shape", "8", "--json")[1]
    b = run(capsys, "inspect", f"{models}:make_residual", "--input-shape", "8", "--json")[1]
    assert json.loads(a)["total"] == json.loads(b)["total"]  # seeded weights and input


def test_plot(models, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "layers.png"
    code, out, err = run(capsys, "inspect", f"{models}:make_mlp", "--input-shape", "6",
                         "--plot", str(png), "--json")
    assert code == 0, err
    assert json.loads(out)["plot"] == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5_000


@pytest.mark.parametrize("target, shape, needle", [
    ("{dir}/missing.py:make_mlp", "6", "no such file"),
    ("{models}:nope", "6", "no function 'nope'"),
    ("{models}", "6", "FILE.py:FACTORY"),
    ("{models}:make_mlp", "6,x", "input-shape"),
    ("{models}:make_mlp", "0", "input-shape"),
    ("{models}:make_mlp", "5", "failed on an input of shape"),
    ("{models}:not_a_model", "6", "not a torch.nn.Module"),
    ("{models}:broken", "6", "no weights here"),
    ("{bad}:f", "6", "importing"),
])
def test_errors_are_one_line(models, tmp_path, capsys, target, shape, needle):
    bad = tmp_path / "bad.py"
    bad.write_text("import this_module_does_not_exist\n")
    target = target.format(dir=tmp_path, models=models, bad=bad)
    code, out, err = run(capsys, "inspect", target, "--input-shape", shape)
    lines = err.strip().splitlines()
    assert code == 2 and out == ""
    assert len(lines) == 1 and lines[0].startswith("jacobite: error:") and needle in lines[0]


def test_bad_batch_and_missing_shape(models, capsys):
    code, _, err = run(capsys, "inspect", f"{models}:make_mlp", "--input-shape", "6",
                       "--batch", "0")
    assert code == 2 and "--batch" in err
    code, _, err = run(capsys, "inspect", f"{models}:make_mlp")
    assert code == 2 and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "inspect", f"{models}:make_mlp", "--input-shape", "6",
                       "--tol", "2")
    assert code == 2 and "tol" in err and len(err.strip().splitlines()) == 1
    code, out, _ = run(capsys, "inspect", f"{models}:make_mlp", "--input-shape", "6",
                       "--tol", "1e-4", "--k", "2", "--json")
    assert code == 0 and all(len(r["singular_values"]) == 2 for r in json.loads(out)["rows"])
