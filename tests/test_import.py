"""``import jacobite`` stays light: subpackages and heavy dependencies load on first use.

These check structure, not time (see ``benchmarks/bench_import.py`` for the seconds).
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

import jacobite

HEAVY = ("scipy", "sympy", "matplotlib", "rich", "torch._dynamo")
PACKAGES = ("analysis", "curvature", "dense", "extrema", "kinematics", "multiobjective", "nn",
            "numeric", "operators", "solvers", "sparse", "symbolic", "transforms", "vision", "viz")


def _loaded_after(code: str) -> set[str]:
    """Which of HEAVY a fresh interpreter has loaded after running ``code``."""
    probe = (f"{code}\nimport json, sys\n"
             f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True,
                         text=True).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_import_jacobite_loads_no_heavy_dependency() -> None:
    assert _loaded_after("import torch, jacobite") == set()


def test_first_forward_jacobian_loads_no_heavy_dependency() -> None:
    code = ("import torch, jacobite\n"
            "jacobite.jacobian(torch.sin, torch.ones(3), mode='forward')")
    assert _loaded_after(code) == set()


@pytest.mark.parametrize("package", ["analysis", "checking", "curvature", "dense", "extrema",
                                     "kinematics", "multiobjective",
                                     "nn", "numeric", "operators", "symbolic", "transforms",
                                     "vision", "viz"])
def test_importing_a_light_subpackage_loads_no_heavy_dependency(package: str) -> None:
    assert _loaded_after(f"import torch, jacobite.{package}") == set()


def test_importing_analysis_and_solvers_does_not_load_torch_dynamo() -> None:
    loaded = _loaded_after("import torch, jacobite.analysis, jacobite.solvers")
    assert "torch._dynamo" not in loaded


def test_importing_solvers_and_dense_fits_load_no_scipy_sparse() -> None:
    # scipy.sparse costs more than a small fit: it loads only for sparse Jacobians, LSMR, ...
    # (an unbounded fit, a bounded one with a robust loss, a curve_fit)
    code = ("import torch, jacobite.solvers\n"
            "t = torch.linspace(0, 4, 50, dtype=torch.float64)\n"
            "y = 2.5 * torch.exp(-1.3 * t) + 0.5\n"
            "r = jacobite.least_squares(lambda p: p[0] * torch.exp(-p[1] * t) + p[2] - y,\n"
            "                           torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64))\n"
            "assert r.success\n"
            "r = jacobite.least_squares(lambda p: p[0] * torch.exp(-p[1] * t) + p[2] - y,\n"
            "                           torch.ones(3, dtype=torch.float64), bounds=(0, 10),\n"
            "                           loss='soft_l1')\n"
            "assert r.success\n"
            "popt, _ = jacobite.curve_fit(lambda t, a, k, c: a * torch.exp(-k * t) + c, t, y,\n"
            "                            p0=[1.0, 1.0, 0.0])\n"
            "import sys\n"
            "assert 'scipy.sparse' not in sys.modules, 'scipy.sparse was imported'")
    assert "scipy" not in _loaded_after(code)


def test_cli_help_loads_neither_torch_nor_heavy_dependencies() -> None:
    code = ("import contextlib, io, sys\nfrom jacobite.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            "    main(['--help'])\n"
            "assert 'torch' not in sys.modules, 'torch was imported'")
    assert _loaded_after(code) == set()


@pytest.mark.parametrize("name", jacobite.__all__)
def test_every_top_level_name_resolves(name: str) -> None:
    assert getattr(jacobite, name) is not None
    assert name in dir(jacobite)


def test_from_import_and_subpackage_attributes() -> None:
    from jacobite import jacobian, least_squares, sparse

    assert jacobian is jacobite.dense.jacobian
    assert least_squares is jacobite.solvers.least_squares
    assert sparse.detect is jacobite.sparse.detect
    assert callable(jacobite.sparse.detect) and callable(jacobite.hessian)


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        _ = jacobite.not_a_name


@pytest.mark.parametrize("package", PACKAGES)
def test_every_name_in_each_subpackage_all_resolves(package: str) -> None:
    module = importlib.import_module(f"jacobite.{package}")
    missing = [n for n in module.__all__ if getattr(module, n, None) is None]
    assert not missing, f"jacobite.{package}.__all__ names that do not resolve: {missing}"
