"""The column norms of a sparse Jacobian, the one helper every sparse step rule (trf,
Gauss–Newton, sparse Levenberg–Marquardt) scales by, against NumPy's norms at extreme sizes."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from jacobite.solvers.lsq.engine.sparse import sparse_col_norms
from jacobite.solvers.lsq.engine.steps import gauss_newton, reflective, sparse_lm


@pytest.mark.parametrize("size", [1e-200, 1.0, 1e200])
def test_sparse_column_norms_neither_overflow_nor_underflow(size):
    A = np.array([[3.0 * size, 1.0, 0.0], [4.0 * size, 0.0, 0.0], [0.0, 2.0, 0.0]])
    got = sparse_col_norms(sp.csr_matrix(A))[0].numpy()
    want = np.array([5.0 * size, np.hypot(1.0, 2.0), 0.0])  # 5·size: |(3, 4)|·size
    np.testing.assert_allclose(got, want, rtol=1e-15)
    # the scaled norm (NumPy's, on the column over its largest entry) agrees too
    np.testing.assert_allclose(got[0], np.linalg.norm(A[:, 0] / size) * size, rtol=1e-15)


def test_every_sparse_step_rule_scales_by_the_same_norms():
    assert reflective.sparse_col_norms is sparse_col_norms
    assert gauss_newton.sparse_col_norms is sparse_col_norms
    assert sparse_lm.sparse_col_norms is sparse_col_norms
