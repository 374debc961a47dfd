"""Hostile values for jacobite.sparse and ``jacobian(..., sparse=True)``: non-finite, empty,
0-d, low-precision and integer inputs, functions that ignore their input or hide a no_grad
region, plans fed the wrong shape, and degenerate sparsity patterns for the colorings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.func import jacrev

import jacobite
import jacobite.sparse as js
from jacobite.errors import (
    DtypeError,
    JacobianTooLarge,
    LocalPatternWarning,
    NonFiniteInputError,
    ShapeError,
    UnsupportedOperationError,
)

from ._probe import assert_close, refuses, within

F64 = torch.float64
pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")


def tridiag(v: torch.Tensor) -> torch.Tensor:
    return torch.cat([v[:1], v[1:] * v[:-1], v[-1:] ** 2])


@pytest.mark.parametrize("mode", ["auto", "forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("x", [
    torch.tensor([1e150, -1e-150, 2.0, 5e-324], dtype=F64),
    torch.arange(8, dtype=F64).reshape(2, 4).t().reshape(-1)[::2],
], ids=["extreme-magnitudes", "strided"])
def test_sparse_jacobians_match_jacrev(mode, x):
    with within():
        J = jacobite.jacobian(tridiag, x, sparse=True, mode=mode)
    assert_close(J.to_dense(), jacrev(tridiag)(x.contiguous()), rtol=1e-14, atol=0)


@pytest.mark.parametrize("mode", ["auto", "reverse", "forward", "bidirectional"])
def test_an_expanded_input_matches_jacrev(mode):
    x = torch.tensor([0.5], dtype=F64).expand(4)
    with within():
        J = jacobite.jacobian(tridiag, x, sparse=True, mode=mode)
    assert_close(J.to_dense(), jacrev(tridiag)(x.contiguous()), rtol=1e-14, atol=0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("call", [
    lambda x: jacobite.jacobian(torch.sin, x, sparse=True),
    lambda x: js.prepare(torch.sin, torch.zeros(2, dtype=F64)).jacobian(x),
    lambda x: jacobite.hessian(lambda v: (v ** 3).sum(), x, sparse=True),
], ids=["jacobian", "plan", "hessian"])
def test_nonfinite_points_are_refused_naming_check_finite(call, bad):
    with refuses(NonFiniteInputError, "check_finite=False"):
        call(torch.tensor([1.0, bad], dtype=F64))


def test_an_empty_input_gives_an_empty_operator():
    with within():
        J = jacobite.jacobian(torch.sin, torch.zeros(0, dtype=F64), sparse=True)
    assert J.shape == (0, 0)


def test_detect_of_an_empty_input_has_no_entries():
    with within():
        assert js.detect(torch.sin, torch.zeros(0)).nnz == 0


def test_detect_of_a_zero_dim_input_has_one_entry():
    with within():
        assert js.detect(torch.sin, torch.tensor(1.0)).nnz == 1


def test_a_function_that_ignores_its_input_has_an_empty_pattern():
    with within():
        assert js.detect(lambda v: torch.ones(3), torch.zeros(4)).nnz == 0
        J = jacobite.jacobian(lambda v: torch.ones(3, dtype=F64), torch.zeros(4, dtype=F64),
                              sparse=True)
    assert J.shape == (3, 4) and bool((J.to_dense() == 0).all())


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float16, 2e-3), (torch.bfloat16, 2e-2),
                                            (torch.float32, 1e-6)])
def test_low_precision_inputs_keep_their_dtype(dtype, tol):
    x = torch.tensor([0.25, -0.5, 1.0], dtype=dtype)
    with within():
        J = jacobite.jacobian(torch.sin, x, sparse=True).to_dense()
    assert J.dtype == dtype
    assert_close(J, torch.diag(torch.cos(x.double())), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool])
def test_integer_inputs_are_refused_naming_the_conversion(dtype):
    with refuses(DtypeError, "x.double()"):
        js.detect(torch.sin, torch.ones(2, dtype=dtype))


@pytest.mark.parametrize("call", [
    lambda x: jacobite.jacobian(torch.sin, x, sparse=True),
    lambda x: js.prepare(torch.sin, x),
    lambda x: js.detect(torch.sin, x),
    lambda x: js.prepare(torch.sin, torch.zeros(2, dtype=F64)).jacobian(x),
], ids=["jacobian", "prepare", "detect", "plan"])
def test_complex_inputs_are_refused_as_in_the_dense_path(call):
    x = torch.ones(2, dtype=torch.complex128)
    with refuses(DtypeError, "torch.view_as_real"):
        jacobite.jacobian(torch.sin, x)
    with refuses(DtypeError, "torch.view_as_real"):
        call(x)


@pytest.mark.parametrize("mode", ["auto", "forward", "reverse", "bidirectional"])
def test_a_numpy_escape_is_refused_as_in_the_dense_path(mode):
    f = lambda v: torch.from_numpy(v.numpy()) * v  # noqa: E731
    x = torch.ones(3, dtype=F64)
    with refuses(UnsupportedOperationError, "jacobite.numeric.jacobian"):
        jacobite.jacobian(f, x)
    with pytest.warns(LocalPatternWarning), \
            refuses(UnsupportedOperationError, "jacobite.numeric.jacobian"):
        jacobite.jacobian(f, x, sparse=True, mode=mode)


def test_a_detached_factor_is_a_constant_as_in_the_dense_path():
    x = torch.tensor([1.0, 2.0, 3.0], dtype=F64)
    f = lambda v: v * v.sum().detach()  # noqa: E731
    with within():
        J = jacobite.jacobian(f, x, sparse=True).to_dense()
    assert_close(J, jacobite.jacobian(f, x))


def test_a_plan_fed_a_point_of_another_shape_is_refused_naming_prepare():
    plan = js.prepare(torch.sin, torch.zeros(4, dtype=F64))
    with refuses(ShapeError, "jacobite.sparse.prepare(f, x)"):
        plan.jacobian(torch.zeros(5, dtype=F64))


def test_a_sparse_hessian_of_a_vector_function_is_refused_naming_detect():
    with refuses(ShapeError, "jacobite.sparse.detect(f, x)"):
        jacobite.hessian(torch.sin, torch.ones(3), sparse=True)


def test_a_huge_diagonal_stays_sparse():
    n = 200_000
    x = torch.linspace(-1, 1, n, dtype=F64)
    with within(10.0):
        J = js.prepare(torch.sin, x).jacobian(x)
    assert J.shape == (n, n) and J.to_scipy().nnz == n
    assert_close(J.diagonal()[:3], torch.cos(x[:3]))
    with refuses(JacobianTooLarge, "memory budget", seconds=3.0):
        J.to_dense()  # 298 GiB: refused before anything is allocated


# ---- colorings of degenerate patterns ----------------------------------------------------------

@pytest.mark.parametrize(("pattern", "colors"), [
    (np.zeros((0, 0), dtype=bool), 0), (np.eye(5, dtype=bool), 1),
    (np.ones((5, 5), dtype=bool), 5), (np.ones((1, 7), dtype=bool), 7),
    (np.ones((7, 1), dtype=bool), 1), (np.array([[0.5, 0.0], [0.0, 2.0]]), 1),
], ids=["empty", "identity", "dense", "1xN", "Nx1", "weighted"])
def test_column_colorings_of_degenerate_patterns_are_optimal(pattern, colors):
    with within():
        c = js.column_coloring(pattern)
    assert c.num_colors == colors


def test_a_non_matrix_pattern_is_refused_naming_the_layout():
    with refuses(ShapeError, "(outputs, inputs)"):
        js.column_coloring(np.ones(3))


def test_a_nan_pattern_is_refused_naming_true_and_false():
    with refuses(NonFiniteInputError, "True"):
        js.column_coloring(np.array([[np.nan]]))


def test_a_star_coloring_of_a_non_square_pattern_is_refused_naming_column_coloring():
    with refuses(ShapeError, "column_coloring"):
        js.star_coloring(np.ones((2, 3), dtype=bool))
