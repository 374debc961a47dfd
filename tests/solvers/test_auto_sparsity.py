"""``jac="auto"`` in the solvers: sparse where the cost model says it pays, dense elsewhere.

The PDE −Δu + u³ = 10 on a 32×32 interior grid (n = 1024, 5-point stencil, zero boundary) is
large enough for detection and sparse enough to go sparse; its solution is checked against
``jac="dense"`` and SciPy's ``root(method="krylov")`` / ``least_squares`` with
``jac_sparsity``. Small problems stay dense without detection; a large problem with a dense
pattern or a local pattern stays dense after it.
"""

from __future__ import annotations

import importlib
import warnings

import numpy as np
import pytest
import scipy.optimize as so
import torch
import torch.nn.functional as F

from jacobite.errors import InvalidOptionError, JacobiteWarning, LocalPatternWarning
from jacobite.solvers import _auto_jac, least_squares, newton_minimize, root
from tests.problems import cubic_poisson2d, laplacian_5pt

N = 32


pde = cubic_poisson2d


def energy(u: torch.Tensor) -> torch.Tensor:
    """The PDE's variational form: its gradient is h² times the residual."""
    n = round(u.numel() ** 0.5)
    h = 1.0 / (n + 1)
    z = F.pad(u.reshape(n, n), (1, 1, 1, 1))
    gx, gy = (z[1:, 1:-1] - z[:-1, 1:-1]) / h, (z[1:-1, 1:] - z[1:-1, :-1]) / h
    return 0.5 * (gx**2).sum() + 0.5 * (gy**2).sum() + (u**4).sum() / 4 - 10.0 * u.sum()


X0 = torch.zeros(N * N, dtype=torch.float64)


@pytest.fixture(scope="module")
def scipy_root() -> np.ndarray:
    res = so.root(lambda v: pde(torch.from_numpy(v)).numpy(), np.zeros(N * N),
                  method="krylov", options={"fatol": 1e-10})
    assert res.success
    return res.x


def test_root_pde_chooses_sparse_and_matches_dense_and_scipy(scipy_root):
    auto = root(pde, X0)
    dense = root(pde, X0, jac="dense")
    assert auto.success and dense.success
    assert auto.jac_mode == "sparse" and dense.jac_mode == "dense"
    assert torch.allclose(auto.x, dense.x, rtol=0, atol=1e-12)
    np.testing.assert_allclose(auto.x.numpy(), scipy_root, rtol=0, atol=1e-8)


def test_least_squares_pde_chooses_sparse_and_matches_scipy(scipy_root):
    res = least_squares(pde, X0)
    assert res.success and res.jac_mode == "sparse"
    ref = so.least_squares(lambda v: pde(torch.from_numpy(v)).numpy(), np.zeros(N * N),
                           jac_sparsity=laplacian_5pt(N), ftol=1e-14, xtol=1e-14, gtol=1e-14)
    np.testing.assert_allclose(res.x.numpy(), ref.x, rtol=0, atol=1e-8)
    np.testing.assert_allclose(res.x.numpy(), scipy_root, rtol=0, atol=1e-8)


@pytest.mark.parametrize("hessian", ["exact", "gauss-newton"])
def test_newton_minimize_pde_chooses_sparse_and_matches_root(scipy_root, hessian):
    kw = dict(f=energy) if hessian == "exact" else dict(f=None, residuals=pde)
    res = newton_minimize(x0=X0, hessian=hessian, tol=1e-6, **kw)
    dense = newton_minimize(x0=X0, hessian=hessian, tol=1e-6, jac="dense",
                            **kw)
    assert res.success and dense.success
    assert res.jac_mode == "sparse" and dense.jac_mode == "dense"
    np.testing.assert_allclose(res.x.numpy(), scipy_root, rtol=0, atol=1e-8)
    assert torch.allclose(res.x, dense.x, rtol=0, atol=1e-10)


def test_small_problem_stays_dense_without_detection(monkeypatch):
    import jacobite.sparse as js

    def no_detect(*a, **k):  # pragma: no cover - must not run
        raise AssertionError("detection ran for a small problem")

    monkeypatch.setattr(js, "detect", no_detect)
    F_ = lambda v: torch.stack([10 * (v[1] - v[0] ** 2), 1 - v[0]])  # noqa: E731
    assert root(F_, [-1.2, 1.0]).jac_mode == "dense"
    assert least_squares(F_, [-1.2, 1.0]).jac_mode == "dense"
    res = newton_minimize(lambda v: (F_(v) ** 2).sum(), [-1.2, 1.0])
    assert res.success and res.jac_mode == "dense"
    np.testing.assert_allclose(res.x.numpy(), [1.0, 1.0], atol=1e-8)


def test_large_dense_pattern_stays_dense():
    n = 1000
    g = torch.Generator().manual_seed(0)
    A = torch.randn(n, n, generator=g, dtype=torch.float64) / n ** 0.5 + 3 * torch.eye(
        n, dtype=torch.float64)
    b = torch.randn(n, generator=g, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # detection's own warnings are kept back
        res = root(lambda x: A @ x + x ** 3 - b, torch.zeros(n, dtype=torch.float64))
    assert res.success and res.jac_mode == "dense"
    np.testing.assert_allclose((A @ res.x + res.x ** 3 - b).numpy(), 0, atol=1e-10)



def test_dense_pattern_is_caught_by_the_probe_before_detection(monkeypatch):
    import jacobite.sparse as js

    def no_detect(*a, **k):  # pragma: no cover - must not run
        raise AssertionError("detection ran for a clearly dense pattern")

    monkeypatch.setattr(js, "detect", no_detect)
    monkeypatch.setattr(js, "detect_hessian", no_detect)
    n = 1200
    A = torch.randn(n, n, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x = torch.zeros(n, dtype=torch.float64)
    choice = _auto_jac.choose(lambda v: A @ torch.sin(v), x, n)
    assert choice.mode == "dense" and "sampled rows are 100% nonzero" in choice.reason
    choice = _auto_jac.choose(lambda v: (A @ torch.sin(v)).square().sum(), x, n, hessian=True)
    assert choice.mode == "dense" and "sampled columns are 100% nonzero" in choice.reason


def test_sparse_probe_defers_to_detection():
    """A probe that sees zeros at x0 (cos(0) · 0 here) never decides sparse by itself."""
    n = 1200
    A = torch.randn(n, n, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    x = torch.zeros(n, dtype=torch.float64)
    assert _auto_jac._probe_density(lambda v: A @ (v * torch.sin(v)), x, n, False) == 0.0
    choice = _auto_jac.choose(lambda v: A @ (v * torch.sin(v)), x, n)
    assert choice.mode == "dense" and "the detected pattern is 100% nonzero" in choice.reason


def test_local_pattern_falls_back_to_dense_without_its_warning():
    def branchy(u: torch.Tensor) -> torch.Tensor:
        return pde(u) * (2.0 if float(u.sum()) > 0 else 1.0)  # a value read into Python

    with warnings.catch_warnings():
        warnings.simplefilter("error", LocalPatternWarning)
        choice = _auto_jac.choose(branchy, X0, N * N)
    assert choice.mode == "dense" and "local" in choice.reason


def test_failed_detection_falls_back_to_dense(monkeypatch):
    import jacobite.sparse as js
    from jacobite.errors import UnsupportedOperationError

    def broken(*a, **k):
        raise UnsupportedOperationError("no rule could follow this op")

    monkeypatch.setattr(js, "detect", broken)
    res = root(pde, X0)
    assert res.success and res.jac_mode == "dense"
    assert "detection failed" in _auto_jac.choose(pde, X0, N * N).reason


def test_explicit_modes_are_reported():
    F_ = lambda v: v ** 2 - 2  # noqa: E731
    assert root(F_, [1.0], jac="sparse").jac_mode == "sparse"
    assert root(F_, [1.0], jac=lambda v: torch.diag(2 * v)).jac_mode == "callable"
    assert least_squares(F_, [1.0], jac="dense").jac_mode == "dense"
    assert least_squares(F_, [1.0], jac="sparse").jac_mode == "sparse"
    assert newton_minimize(lambda v: (F_(v) ** 2).sum(), [1.0], jac="sparse").jac_mode == \
        "sparse"
    with pytest.raises(InvalidOptionError, match="'dense'"):
        root(F_, [1.0], jac="fast")
    with pytest.raises(InvalidOptionError, match="'dense'"):
        newton_minimize(lambda v: (F_(v) ** 2).sum(), [1.0], jac="fast")


def test_verbose_prints_the_choice_and_progress(capsys):
    root(pde, X0, verbose=1)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("root: jac='auto' chose sparse") and "colors" in out[0]
    assert out[-1].startswith("root (hybrid): converged")
    root(pde, X0, verbose=2)
    assert len(capsys.readouterr().out.splitlines()) > 10  # one line per iteration
    least_squares(pde, X0, verbose=1)
    assert capsys.readouterr().out.startswith("least_squares: jac='auto' chose sparse")
    newton_minimize(energy, X0, tol=1e-6, verbose=2)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("newton_minimize: jac='auto' chose sparse") and len(out) > 3


def test_verbose_1_shows_progress_of_a_long_solve(capsys, monkeypatch):
    root_module = importlib.import_module("jacobite.solvers.root")
    monkeypatch.setattr(root_module, "PROGRESS_SECONDS", 0.0)  # every line is "long enough"
    res = root(pde, X0, verbose=1)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) >= res.nit + 2


def _slow_warnings(call) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return [w for w in caught if issubclass(w.category, JacobiteWarning)
            and "dense" in str(w.message)]


def test_slow_dense_warns_once_per_solve(monkeypatch):
    monkeypatch.setattr(_auto_jac, "SLOW_SECONDS", 0.0)  # every dense solve counts as slow
    monkeypatch.setattr(_auto_jac, "SPARSE_HELPS", 0)  # even a 2-column one
    F_ = lambda v: torch.stack([10 * (v[1] - v[0] ** 2), 1 - v[0]])  # noqa: E731
    with pytest.warns(JacobiteWarning):
        assert root(F_, [-1.2, 1.0], jac="dense").njev > 3  # many dense Jacobians, one warning
    for call in (lambda: root(F_, [-1.2, 1.0], jac="dense"),
                 lambda: least_squares(F_, [-1.2, 1.0], jac="dense"),
                 lambda: newton_minimize(lambda v: (F_(v) ** 2).sum(), [-1.2, 1.0])):
        caught = _slow_warnings(call)
        assert len(caught) == 1 and "jac='sparse'" in str(caught[0].message)
    assert _slow_warnings(lambda: root(F_, [-1.2, 1.0], jac="sparse")) == []


def test_slow_dense_estimate():
    # a 10⁴-column dense Jacobian costs (2/3) 10¹² flops to factor: far over the threshold
    with pytest.warns(JacobiteWarning, match="10000-column"):
        _auto_jac.slow_dense_warning(0.0, 10_000, "root")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _auto_jac.slow_dense_warning(0.01, 100, "root")  # a small one stays quiet
        # a slow first Jacobian of a tiny map (one-time imports) is no reason to go sparse
        _auto_jac.slow_dense_warning(30.0, 2, "newton_minimize")


@pytest.mark.parametrize("seed", range(6))
def test_sparse_newton_direction_matches_dense(seed):
    import scipy.sparse as sp

    from jacobite.solvers._sparse_newton import newton_direction
    from jacobite.solvers.newton import _newton_direction

    rng = np.random.default_rng(seed)
    A = sp.random(60, 60, density=0.05, random_state=rng).toarray()
    H = A + A.T + np.diag(rng.uniform(-2.0, 4.0, 60))  # symmetric, often indefinite
    g = rng.standard_normal(60)
    p, tau = newton_direction(sp.csr_matrix(H), g)
    p_ref, tau_ref = _newton_direction(torch.from_numpy(H), torch.from_numpy(g))
    assert tau == pytest.approx(tau_ref, rel=1e-12)
    np.testing.assert_allclose(p, p_ref.numpy(), rtol=1e-9, atol=1e-12)
    assert np.linalg.eigvalsh(H + tau * np.eye(60)).min() > 0
