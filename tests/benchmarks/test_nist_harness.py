"""The NIST StRD harness (benchmarks/nist.py, benchmarks/bench_nist.py) on generated files.

Nothing here reads ../shared/data: every data file is written to tmp_path in NIST's layout.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from benchmarks import bench_nist, nist

# ---------------------------------------------------------------------------------------------
# A writer of NIST-format files


def write_dat(path: Path, *, name: str, model_lines: list[str], table: np.ndarray,
              columns: list[str], data: np.ndarray, rss: float, level: str = "Lower",
              dof: int | None = None, n_obs: int | None = None) -> Path:
    """A file laid out as NIST's: header, model, parameter table, statistics, data block."""
    k = table.shape[0]
    n = data.shape[0] if n_obs is None else n_obs
    dof = n - k if dof is None else dof
    lines = [
        "NIST/ITL StRD",
        f"Dataset Name:  {name}           ({name}.dat)",
        "",
        "File Format:   ASCII",
        f"               Starting Values   (lines 41 to {40 + k})",
        f"               Certified Values  (lines 41 to {45 + k})",
        f"               Data              (lines 61 to {60 + data.shape[0]})",
        "",
        "Procedure:     Nonlinear Least Squares Regression",
        "",
        "Data:          1 Response  (y)",
        f"               {len(columns) - 1} Predictor (x)",
        f"               {n} Observations",
        f"               {level} Level of Difficulty",
        "               Generated Data",
        "",
        "Model:         Exponential Class",
        f"               {k} Parameters (b1 to b{k})",
        "",
        *[f"               {m}" for m in model_lines],
        "",
        "",
        "          Starting values                  Certified Values",
        "",
        "        Start 1     Start 2           Parameter     Standard Deviation",
        *[f"  b{i + 1} = {row[0]:10.4g} {row[1]:10.4g}   {row[2]: .10E}  {row[3]:.10E}"
          for i, row in enumerate(table)],
        "",
        f"Residual Sum of Squares:                    {rss:.10E}",
        f"Residual Standard Deviation:                {math.sqrt(rss / dof):.10E}",
        f"Degrees of Freedom:                         {dof:8d}",
        f"Number of Observations:                     {n:8d}",
        "",
        "",
        "Data:   " + "          ".join(columns),
        *["   " + "   ".join(f"{v:.17g}" for v in row) for row in data],
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def misra1a_file(directory: Path, name: str = "Misra1a") -> tuple[Path, np.ndarray, np.ndarray]:
    """Misra1a-shaped data: y = model at b* plus fixed noise; certified = b* refitted exactly."""
    from scipy.optimize import least_squares

    x = np.array([77.6, 114.9, 141.1, 190.8, 239.9, 289.0, 332.8, 378.4])
    b_true = np.array([240.0, 5.5e-4])
    noise = np.array([0.05, -0.08, 0.03, 0.1, -0.02, -0.07, 0.04, 0.01])
    y = b_true[0] * (1 - np.exp(-b_true[1] * x)) + noise
    fit = least_squares(lambda b: y - b[0] * (1 - np.exp(-b[1] * x)), b_true, ftol=1e-15,
                        xtol=1e-15, gtol=1e-15)
    cert = np.array([float(f"{v:.10e}") for v in fit.x])
    rss = float(np.sum((y - cert[0] * (1 - np.exp(-cert[1] * x))) ** 2))
    table = np.array([[500, 250, cert[0], 2.7], [1e-4, 5e-4, cert[1], 7.3e-6]])
    path = write_dat(directory / f"{name}.dat", name=name,
                     model_lines=["y = b1*(1-exp[-b2*x])  +  e"], table=table,
                     columns=["y", "x"], data=np.column_stack([y, x]), rss=rss)
    return path, cert, np.column_stack([y, x])


# ---------------------------------------------------------------------------------------------
# Parser


def test_parse_one_predictor(tmp_path):
    path, cert, data = misra1a_file(tmp_path)
    p = nist.parse(path)
    assert p.name == "Misra1a" and p.path == path
    assert p.x.shape == (8,) and p.y.shape == (8,) and p.x.dtype == np.float64
    np.testing.assert_array_equal(p.y, data[:, 0])
    np.testing.assert_array_equal(p.x, data[:, 1])
    np.testing.assert_array_equal(p.start1, [500, 1e-4])
    np.testing.assert_array_equal(p.start2, [250, 5e-4])
    np.testing.assert_array_equal(p.certified, cert)
    np.testing.assert_array_equal(p.certified_sd, [2.7, 7.3e-6])
    assert p.n_params == 2 and p.n_obs == 8 and p.dof == 6 and p.difficulty == "Lower"
    assert "b1*(1-exp[-b2*x])" in p.model_text
    assert p.residual_sd == pytest.approx(math.sqrt(p.certified_rss / 6), rel=1e-9)
    # the residual at the certified parameters reproduces the certified RSS
    assert nist.rss(p, p.certified) == pytest.approx(p.certified_rss, rel=1e-9)
    ok, why = nist.check_transcription(p)
    assert ok, why


def test_parse_two_predictors_with_log_response(tmp_path):
    rng = np.random.default_rng(0)
    x1 = np.repeat([1.0, 2.0, 4.0, 8.0], 3)
    x2 = np.tile([180.0, 225.0, 250.0], 4)
    b = np.array([2.59, 5.6e-9, -5.77e-2])
    eps = rng.normal(0, 0.1, x1.size)
    logy = b[0] - b[1] * x1 * np.exp(-b[2] * x2) + eps
    y = np.exp(logy)
    rss = float(np.sum(eps ** 2))
    table = np.array([[2, 2.5, b[0], 0.02], [1e-4, 5e-9, b[1], 6e-9], [-0.01, -0.05, b[2], 4e-3]])
    path = write_dat(tmp_path / "Nelson.dat", name="Nelson", level="Average",
                     model_lines=["log[y] = b1 - b2*x1 * exp[-b3*x2]  +  e"], table=table,
                     columns=["y", "x1", "x2"], data=np.column_stack([y, x1, x2]), rss=rss)
    p = nist.parse(path)
    assert p.x.shape == (12, 2) and p.difficulty == "Average"
    np.testing.assert_array_equal(p.x[:, 1], x2)
    np.testing.assert_allclose(nist.response(p), logy, rtol=1e-14)
    # Nelson's residual is log(y) - model: its RSS at b is the sum of the log-scale noise²
    assert nist.rss(p, p.certified) == pytest.approx(rss, rel=1e-8)


@pytest.mark.parametrize("damage", ["drop_param", "count", "columns", "text"])
def test_parse_rejects_damaged_files(tmp_path, damage):
    path, _, _ = misra1a_file(tmp_path)
    lines = path.read_text().splitlines()
    if damage == "drop_param":
        lines = [ln for ln in lines if not ln.lstrip().startswith("b2 =")]
    elif damage == "count":
        lines = lines[:-1]
    elif damage == "columns":
        lines[-1] += "   7.0"
    else:
        lines[-1] = "   1.0   oops"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"Misra1a\.dat"):
        nist.parse(path)


def test_data_dir_env_and_select(tmp_path, monkeypatch):
    monkeypatch.setenv(nist.ENV_VAR, str(tmp_path))
    assert nist.data_dir() == tmp_path
    assert nist.data_dir(tmp_path / "other") == tmp_path / "other"
    assert not nist.available()
    misra1a_file(tmp_path)
    assert nist.available()
    assert [p.name for p in nist.load_all()] == ["Misra1a"]  # the other 26 are absent
    assert nist.select(["misra1A", "BoxBOD.dat", "Misra1a"]) == ["Misra1a", "BoxBOD"]
    assert nist.select(None) == list(nist.PROBLEMS)
    with pytest.raises(ValueError, match="unknown NIST problem"):
        nist.select(["Misra9"])


# ---------------------------------------------------------------------------------------------
# LRE


def test_lre():
    assert nist.lre([1.0, 2.0], [1.0, 2.0]) == 11.0
    assert nist.lre([1 + 1e-6], [1.0]) == pytest.approx(6.0, abs=1e-6)
    assert nist.lre([-2.0e-3 * (1 + 1e-4)], [-2.0e-3]) == pytest.approx(4.0, abs=1e-6)
    assert nist.lre([1.0, 2.0 * (1 + 1e-3)], [1.0, 2.0]) == pytest.approx(3.0, abs=1e-6)  # min
    assert nist.lre([1 + 1e-14], [1.0]) == 11.0  # capped
    assert nist.lre([50.0], [1.0]) == 0.0  # floored
    assert nist.lre([math.nan, 1.0], [1.0, 1.0]) == 0.0
    assert nist.lre([math.inf], [1.0]) == 0.0
    assert nist.lre([1.0], [1.0, 2.0]) == 0.0  # shape mismatch
    assert nist.lre(torch.tensor([1.0, 2.0], dtype=torch.float64), np.array([1.0, 2.0])) == 11.0
    # certified zero: absolute error
    assert nist.lre([1e-7], [0.0]) == pytest.approx(7.0)
    assert nist.lre([0.0], [0.0]) == 11.0
    assert nist.lre_one(1.5, 1.0, cap=15) == pytest.approx(-math.log10(0.5))


# ---------------------------------------------------------------------------------------------
# Models against an independent NumPy transcription of NIST's model texts


def _numpy_models():
    e, pi = np.exp, np.pi

    def gauss(x, b):
        return (b[0] * e(-b[1] * x) + b[2] * e(-(x - b[3]) ** 2 / b[4] ** 2)
                + b[5] * e(-(x - b[6]) ** 2 / b[7] ** 2))

    def lanczos(x, b):
        return b[0] * e(-b[1] * x) + b[2] * e(-b[3] * x) + b[4] * e(-b[5] * x)

    def chwirut(x, b):
        return e(-b[0] * x) / (b[1] + b[2] * x)

    def cubic(x, b):
        return (b[0] + b[1] * x + b[2] * x**2 + b[3] * x**3) / (1 + b[4] * x + b[5] * x**2
                                                                 + b[6] * x**3)

    def enso(x, b):
        w = 2 * pi * x
        return (b[0] + b[1] * np.cos(w / 12) + b[2] * np.sin(w / 12) + b[4] * np.cos(w / b[3])
                + b[5] * np.sin(w / b[3]) + b[7] * np.cos(w / b[6]) + b[8] * np.sin(w / b[6]))

    def expo(x, b):
        return b[0] * (1 - e(-b[1] * x))

    return {
        "Misra1a": expo, "BoxBOD": expo, "Chwirut1": chwirut, "Chwirut2": chwirut,
        "Lanczos1": lanczos, "Lanczos2": lanczos, "Lanczos3": lanczos,
        "Gauss1": gauss, "Gauss2": gauss, "Gauss3": gauss, "Hahn1": cubic, "Thurber": cubic,
        "ENSO": enso,
        "DanWood": lambda x, b: b[0] * x ** b[1],
        "Misra1b": lambda x, b: b[0] * (1 - (1 + b[1] * x / 2) ** (-2)),
        "Kirby2": lambda x, b: (b[0] + b[1] * x + b[2] * x**2) / (1 + b[3] * x + b[4] * x**2),
        "Nelson": lambda x, b: b[0] - b[1] * x[:, 0] * e(-b[2] * x[:, 1]),
        "MGH17": lambda x, b: b[0] + b[1] * e(-x * b[3]) + b[2] * e(-x * b[4]),
        "Misra1c": lambda x, b: b[0] * (1 - (1 + 2 * b[1] * x) ** (-0.5)),
        "Misra1d": lambda x, b: b[0] * b[1] * x * (1 + b[1] * x) ** (-1),
        "Roszman1": lambda x, b: b[0] - b[1] * x - np.arctan(b[2] / (x - b[3])) / pi,
        "MGH09": lambda x, b: b[0] * (x**2 + x * b[1]) / (x**2 + x * b[2] + b[3]),
        "Rat42": lambda x, b: b[0] / (1 + e(b[1] - b[2] * x)),
        "MGH10": lambda x, b: b[0] * e(b[1] / (x + b[2])),
        "Eckerle4": lambda x, b: (b[0] / b[1]) * e(-0.5 * ((x - b[2]) / b[1]) ** 2),
        "Rat43": lambda x, b: b[0] / ((1 + e(b[1] - b[2] * x)) ** (1 / b[3])),
        "Bennett5": lambda x, b: b[0] * (b[1] + x) ** (-1 / b[2]),
    }


def test_registry_is_complete():
    assert len(nist.PROBLEMS) == 27 == len(set(nist.PROBLEMS))
    assert set(nist.MODELS) == set(nist.PROBLEMS) == set(nist.N_PARAMS) == set(_numpy_models())
    with pytest.raises(ValueError, match="no model"):
        nist.model("Misra9")


@pytest.mark.parametrize("name", nist.PROBLEMS)
def test_model_matches_numpy(name):
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    k, samples = nist.N_PARAMS[name], 16
    x = rng.uniform(2.0, 4.0, size=(20, 2) if name == "Nelson" else 20)
    B = rng.uniform(0.5, 1.5, size=(samples, k))
    expected = _numpy_models()[name](x, B.T[:, :, None])  # b[i] has shape (samples, 1)
    f = nist.MODELS[name]
    got = torch.vmap(lambda b: f(torch.as_tensor(x), b))(torch.as_tensor(B))
    assert got.dtype == torch.float64 and got.shape == (samples, 20)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=0)


# ---------------------------------------------------------------------------------------------
# The benchmark on generated data


def test_bench_skips_without_data(tmp_path):
    sec = bench_nist.run(data_dir=str(tmp_path / "absent"))
    assert sec.rows[0][0].startswith("skipped: NIST StRD data not found at")


def _fake_jacobite(fun, x0):
    """A stand-in for jacobite.least_squares: SciPy with the exact Jacobian."""
    from scipy.optimize import least_squares

    jr = torch.func.jacrev(fun)
    res = least_squares(lambda b: fun(torch.as_tensor(b)).numpy(), x0.numpy(),
                        jac=lambda b: jr(torch.as_tensor(b)).numpy(), xtol=1e-14)
    return SimpleNamespace(x=torch.as_tensor(res.x), nfev=res.nfev, njev=res.njev,
                           success=res.success)


def _broken_jacobite(fun, x0):
    raise RuntimeError("solver exploded")


def test_bench_runs_on_generated_data(tmp_path, monkeypatch):
    misra1a_file(tmp_path)
    monkeypatch.setattr(bench_nist, "jacobite_solver", lambda: (_fake_jacobite, None))
    sec = bench_nist.run(data_dir=str(tmp_path))  # only Misra1a is present
    runs = [r for r in sec.rows if r[0] == "Misra1a"]
    assert [r[2] for r in runs] == [1, 2]
    for r in runs:
        assert float(r[6].split()[0]) >= 6 and float(r[7]) >= 6  # (b) and (c)
    text = sec.to_markdown()
    assert "Target jacobite LRE ≥ 6 on 2/2 runs: met" in text
    assert "Model check" in text and "Missing data files" in text


def test_bench_guards_failures_and_missing_solver(tmp_path, monkeypatch):
    misra1a_file(tmp_path)
    monkeypatch.setattr(bench_nist, "jacobite_solver", lambda: (_broken_jacobite, None))
    sec = bench_nist.run(data_dir=str(tmp_path), only=["Misra1a"])
    assert sec.rows[0][7] == "0.0 [1]"
    assert any("RuntimeError: solver exploded" in n for n in sec.notes)
    assert any("Target jacobite LRE ≥ 6 on 2/2 runs: MISSED" in n for n in sec.notes)

    monkeypatch.setattr(bench_nist, "jacobite_solver", lambda: (None, "not available (test)"))
    sec = bench_nist.run(data_dir=str(tmp_path), only=["Misra1a"])
    assert sec.rows[0][7] == "n/a"
    assert any("not available (test)" in n for n in sec.notes)
