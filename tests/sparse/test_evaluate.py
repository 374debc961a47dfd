"""Compressed evaluation (prepare / plan.jacobian / sparse=True) against dense torch.func."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import jacobite
import jacobite.sparse as js
from jacobite.errors import (
    ArgnumsError,
    InvalidOptionError,
    JacobiteWarning,
    NonFiniteInputError,
    ShapeError,
)
from jacobite.operators import SparseOperator
from tests.battery import CASES, Case, dense_oracle, diff_inputs, flat_jacobian, ids
from tests.problems import bratu1d, brusselator, brusselator2d, program_function, programs

DT = torch.float64
MODES = ("auto", "forward", "reverse", "bidirectional")


@pytest.fixture(autouse=True, scope="module")
def _float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _dense(f, x: torch.Tensor) -> torch.Tensor:
    return torch.func.jacrev(lambda v: f(v).reshape(-1))(x).reshape(-1, x.numel())


def _quiet(fn, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", JacobiteWarning)
        return fn(*a, **k)


# ---- the shared battery: every one-tensor case, every mode ---------------------------------
SINGLE = [c for c in CASES if "tensor_in" in c.kinds and "batched" not in c.kinds
          and isinstance(c.argnums, int)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", SINGLE, ids=ids)
def test_battery_sparse_equals_dense(case: Case, mode: str) -> None:
    args = case.args()
    out = case.fn(*args)
    ref = flat_jacobian(dense_oracle(case, args), out, diff_inputs(case, args)).detach()
    J = _quiet(jacobite.jacobian, case.fn, *args, argnums=case.argnums, mode=mode, sparse=True)
    assert isinstance(J, SparseOperator)
    torch.testing.assert_close(J.to_dense(), ref, rtol=1e-12, atol=1e-12)  # no nonzero missed


SCALAR = [c for c in SINGLE if "scalar_out" in c.kinds and "smooth" in c.kinds]


@pytest.mark.parametrize("case", SCALAR, ids=ids)
def test_battery_sparse_hessian(case: Case) -> None:
    args = case.args()
    pos = case.argnums
    x = args[pos]

    def g(u):
        return case.fn(*args[:pos], u, *args[pos + 1:]).reshape(())

    ref = torch.func.hessian(g)(x).reshape(x.numel(), x.numel())
    H = _quiet(jacobite.hessian, case.fn, *args, argnums=pos, sparse=True)
    torch.testing.assert_close(H.to_dense(), ref, rtol=1e-10, atol=1e-10)


# ---- the problems ------------------------------------------------------------------
def test_bratu_colors_modes_and_values() -> None:
    x = torch.rand(200, dtype=DT)
    y = torch.rand(200, dtype=DT, generator=torch.Generator().manual_seed(3))
    ref = _dense(bratu1d, y)
    for mode in MODES:
        plan = js.prepare(bratu1d, x, mode=mode)
        assert plan.colors == 3 and not plan.local and plan.pattern.nnz == 3 * 200 - 2
        J = plan.jacobian(y)  # prepared at x, evaluated elsewhere
        torch.testing.assert_close(J.to_dense(), ref, rtol=1e-13, atol=1e-9)


def test_brusselator_plan() -> None:
    N = 10
    x = torch.rand(2 * N * N, dtype=DT)
    plan = js.prepare(brusselator2d, x, order="best")  # "fast" (the default) gives 11 at N=10
    assert (plan.pattern != sp.csr_array(brusselator(N))).nnz == 0  # exactly the stencil
    assert plan.colors <= 10
    y = torch.rand(2 * N * N, dtype=DT)
    value, J = plan.value_and_jacobian(y)
    torch.testing.assert_close(value, brusselator2d(y))
    torch.testing.assert_close(J.to_dense(), _dense(brusselator2d, y), rtol=1e-12, atol=1e-8)


@pytest.mark.parametrize("vectorize", [False, True])
def test_plan_reused_at_other_points(vectorize: bool) -> None:
    f = lambda u: torch.cat([u[1:] * u[:-1], u.sum(0, keepdim=True) ** 2])  # noqa: E731
    x = torch.rand(30, dtype=DT)
    plan = js.prepare(f, x, vectorize=vectorize)
    for seed in range(3):
        y = torch.randn(30, dtype=DT, generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(plan.jacobian(y).to_dense(), _dense(f, y))


def test_arrowhead_bicoloring_in_auto_mode() -> None:
    n = 60
    f = lambda u: torch.cat([u.sum(0, keepdim=True), u[1:] * u[0]])  # noqa: E731
    x = torch.rand(n, dtype=DT)
    plan = js.prepare(f, x)
    assert plan.mode == "bidirectional" and plan.colors <= 3
    torch.testing.assert_close(plan.jacobian(x).to_dense(), _dense(f, x))


def test_matrix_input_pytree_output_and_wide_jacobian() -> None:
    f = lambda a: {"r": a.sum(1), "c": (a ** 2).sum(0)}  # noqa: E731
    x = torch.rand(5, 4, dtype=DT)
    J = jacobite.jacobian(f, x, sparse=True)
    ref = torch.cat([_dense(lambda a: f(a)["r"], x), _dense(lambda a: f(a)["c"], x)])
    torch.testing.assert_close(J.to_dense(), ref)  # leaves in pytree (insertion) order
    scalar = js.prepare(lambda a: (a ** 3).sum(), x)
    assert scalar.mode == "reverse" and scalar.colors == 1


def test_operator_family_and_formats() -> None:
    x = torch.rand(50, dtype=DT) * 0.1
    J = js.prepare(bratu1d, x).jacobian(x)
    D = _dense(bratu1d, x)
    v = torch.rand(50, dtype=DT)
    torch.testing.assert_close(J.mv(v), D @ v)
    torch.testing.assert_close(J.rmv(v), D.T @ v)
    torch.testing.assert_close(J.T.to_dense(), D.T)
    torch.testing.assert_close((J @ J).to_dense(), D @ D)
    torch.testing.assert_close(J.solve(v), torch.linalg.solve(D, v))
    assert J.to_torch().layout == torch.sparse_csr
    csr = J.to_scipy()
    assert sp.issparse(csr) and csr.format == "csr" and csr.nnz == 3 * 50 - 2
    np.testing.assert_allclose(csr.toarray(), D.numpy())


def test_spy_accepts_plans_and_patterns(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from jacobite.viz import spy

    plan = js.prepare(bratu1d, torch.zeros(20, dtype=DT))
    want = {(i, j) for i in range(20) for j in range(20) if abs(i - j) <= 1}  # tridiagonal
    for obj in (plan, js.detect(bratu1d, torch.zeros(20, dtype=DT)), plan.jacobian(
            torch.zeros(20, dtype=DT))):
        (line,) = spy(obj).axes[0].lines  # one marker per drawn nonzero
        drawn = {(round(float(r)), round(float(c)))
                 for c, r in zip(line.get_xdata(), line.get_ydata(), strict=True)}
        assert drawn == want


def test_hessian_plan_star_coloring() -> None:
    n = 40
    f = lambda u: ((u[1:] - u[:-1]) ** 2 * u[1:]).sum() + torch.exp(u).sum()  # noqa: E731
    x = torch.rand(n, dtype=DT)
    for vectorize in (False, True):
        plan = js.prepare_hessian(f, x, vectorize=vectorize)
        assert plan.colors == 3 and plan.mode == "hessian"
        torch.testing.assert_close(plan.jacobian(x).to_dense(), torch.func.hessian(f)(x))


def test_given_pattern_skips_detection_and_is_checked() -> None:
    x = torch.rand(10, dtype=DT)
    plan = js.prepare(torch.sin, x, pattern=sp.eye(10))
    torch.testing.assert_close(plan.jacobian(x).to_dense(), torch.diag(torch.cos(x)))
    with pytest.raises(ShapeError, match="pattern"):
        js.prepare(torch.sin, x, pattern=sp.eye(9))


def test_bad_input() -> None:
    x = torch.rand(6, dtype=DT)
    plan = js.prepare(torch.sin, x)
    with pytest.raises(ShapeError, match="prepare"):
        plan.jacobian(torch.rand(7, dtype=DT))
    with pytest.raises(NonFiniteInputError, match="check_finite"):
        plan.jacobian(torch.tensor([float("nan")] * 6, dtype=DT))
    with pytest.raises(InvalidOptionError, match="mode"):
        js.prepare(torch.sin, x, mode="sideways")
    with pytest.raises(InvalidOptionError, match="has_aux"):
        jacobite.jacobian(lambda u: (u, 1), x, has_aux=True, sparse=True)
    with pytest.raises(ArgnumsError, match="one tensor argument"):
        jacobite.jacobian(lambda u, w: u * w, x, x, argnums=(0, 1), sparse=True)
    with pytest.raises(ShapeError, match="scalar"):
        jacobite.hessian(torch.sin, x, sparse=True)


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")  # f's own float()
def test_local_pattern_is_flagged() -> None:
    f = lambda u: u * u if float(u.sum()) > 0 else u  # noqa: E731
    with pytest.warns(JacobiteWarning, match="only near"):
        plan = js.prepare(f, torch.ones(3, dtype=DT))
    assert plan.local


# ---- fuzzer: decompressed values equal dense jacrev at fresh points -------------------------
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(), st.sampled_from(MODES))
def test_fuzz_decompressed_values(program, mode) -> None:
    f = program_function(program)
    x = torch.rand(12)
    plan = js.prepare(f, x, mode=mode)
    y = torch.randn(12, generator=torch.Generator().manual_seed(len(program)))
    ref = _dense(f, y)
    fwd = torch.func.jacfwd(lambda v: f(v).reshape(-1))(y).reshape(ref.shape)
    # torch's own forward and reverse modes disagree on ill-posed ops (index_put with
    # duplicate targets): nothing to compare against there
    assume(torch.allclose(ref, fwd, rtol=1e-12, atol=1e-12))
    J = plan.jacobian(y).to_dense()
    torch.testing.assert_close(J, ref, rtol=1e-10, atol=1e-10)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_fuzz_hessian_patterns_and_values(program) -> None:
    f = program_function(program)
    w = torch.linspace(0.5, 1.5, 12).reshape(4, 3)
    h = lambda v: (torch.tanh(f(v)) * w).sum()  # noqa: E731
    x = torch.rand(12)
    plan = _quiet(js.prepare_hessian, h, x)
    # a local pattern (indices chosen by values, e.g. topk's backward) only holds at x
    y = x if plan.local else torch.rand(12) + 0.1
    H = torch.func.hessian(h)(y)
    assume(torch.allclose(H, torch.func.jacrev(torch.func.jacrev(h))(y), rtol=1e-12,
                          atol=1e-12))  # torch's modes agree (not so for duplicate index_put)
    torch.testing.assert_close(plan.jacobian(y).to_dense(), H, rtol=1e-9, atol=1e-9)
