"""Every operator method against the dense oracle, on random operator trees (float64)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jacobite.operators import SingularOperatorError, verify_tags

from .strategies import DT, any_operator, square_operator, structured_operator

# At least this many examples whatever the profile (tests/conftest.py); more under "dev" or
# "thorough" (HYPOTHESIS_PROFILE).
_N = settings.default.max_examples
SETTINGS = settings(max_examples=max(50, _N), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def close(a: torch.Tensor, b: torch.Tensor, scale: float = 1.0) -> None:
    tol = 1e-9 * max(1.0, scale)
    torch.testing.assert_close(a, b, rtol=1e-8, atol=tol)


def scale_of(M: torch.Tensor) -> float:
    return float(M.abs().max()) if M.numel() else 1.0


@SETTINGS
@given(any_operator(), st.integers(1, 3), st.integers(0, 2**31 - 1))
def test_products_match_dense(pair, k, seed):
    op, M = pair
    m, n = M.shape
    assert op.shape == (m, n) and op.dtype == DT
    g = torch.Generator().manual_seed(seed)
    v, u = torch.randn(n, generator=g, dtype=DT), torch.randn(m, generator=g, dtype=DT)
    V, U = torch.randn(n, k, generator=g, dtype=DT), torch.randn(m, k, generator=g, dtype=DT)
    s = scale_of(M) * 10
    close(op.mv(v), M @ v, s)
    close(op.rmv(u), M.T @ u, s)
    close(op.mm(V), M @ V, s)
    close(op.rmm(U), M.T @ U, s)
    close(op @ v, M @ v, s)
    close(op @ V, M @ V, s)
    close(u @ op, u @ M, s)
    close(U.T @ op, U.T @ M, s)


@SETTINGS
@given(any_operator())
def test_materialisation_matches_dense(pair):
    op, M = pair
    s = scale_of(M)
    close(op.to_dense(), M, s)
    close(op.diagonal(), M.diagonal(), s)
    sparse = op.to_sparse()
    assert sparse.layout == torch.sparse_csr
    close(sparse.to_dense(), M, s)
    np.testing.assert_allclose(op.to_scipy().toarray(), M.numpy(), atol=1e-9 * max(1, s))
    lin = op.as_linear_operator()
    x = np.arange(M.shape[1], dtype=np.float64)
    y = np.arange(M.shape[0], dtype=np.float64)
    np.testing.assert_allclose(lin.matvec(x), M.numpy() @ x, atol=1e-8 * max(1, s), rtol=1e-8)
    np.testing.assert_allclose(lin.rmatvec(y), M.numpy().T @ y, atol=1e-8 * max(1, s), rtol=1e-8)


@SETTINGS
@given(any_operator())
def test_transpose(pair):
    op, M = pair
    t = op.T
    assert t.shape == (M.shape[1], M.shape[0])
    assert t.T is op
    close(t.to_dense(), M.T, scale_of(M))
    assert t.rank_bound == op.rank_bound
    swapped = {"lower_triangular": "upper_triangular", "upper_triangular": "lower_triangular"}
    assert t.tags == frozenset(swapped.get(tag, tag) for tag in op.tags)


def _amax(x: torch.Tensor) -> float:
    return float(x.abs().max()) if x.numel() else 0.0


def _check_tag_claims(op, M: torch.Tensor) -> None:
    """Every tag is a promise: check each on the oracle matrix with an explicit tolerance."""
    tol = 1e-9 * max(1.0, scale_of(M)) * max(M.shape)
    tags = op.tags
    if tags - {"low_rank"}:
        assert M.shape[0] == M.shape[1]
    if "symmetric" in tags:
        assert torch.allclose(M, M.T, atol=tol, rtol=0)
    if "psd" in tags:
        assert float(torch.linalg.eigvalsh((M + M.T) / 2).min()) >= -tol
    if "lower_triangular" in tags:
        assert _amax(M.triu(1)) <= tol
    if "upper_triangular" in tags:
        assert _amax(M.tril(-1)) <= tol
    if "diagonal" in tags:
        assert _amax(M - torch.diag(M.diagonal())) <= tol
    if "scaled_identity" in tags:
        d = M.diagonal()
        assert float((d - d[0]).abs().max()) <= tol
    if "identity" in tags:
        assert torch.allclose(M, torch.eye(M.shape[0], dtype=DT), atol=tol, rtol=0)
    if "low_rank" in tags:
        assert op.rank_bound is not None and op.rank_bound < min(M.shape)
        assert int(torch.linalg.matrix_rank(M)) <= op.rank_bound
    else:
        assert op.rank_bound is None


@settings(max_examples=max(80, _N), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.one_of(structured_operator(), square_operator(depth=2), any_operator(depth=3)))
def test_tag_claims_hold_numerically(pair):
    op, M = pair
    _check_tag_claims(op, M)
    _check_tag_claims(op.T, M.T)
    verify_tags(op, atol=1e-8 * max(1.0, scale_of(M)) * max(M.shape))


def _cond(M: torch.Tensor) -> float:
    s = torch.linalg.svdvals(M)
    return float(s.max() / s.min()) if float(s.min()) > 0 else float("inf")


@SETTINGS
@given(st.one_of(square_operator(), structured_operator(depth=2)))
def test_slogdet_matches_dense(pair):
    op, M = pair
    sign, lad = op.slogdet()
    ref_sign, ref_lad = torch.linalg.slogdet(M)
    if float(sign) == 0:
        # the operator proved singularity: the matrix must be numerically singular
        assert _cond(M) > 1e8
        assert float(lad) == -float("inf")
        assert float(op.logdet()) == -float("inf")
        return
    if _cond(M) > 1e8:
        return
    assert float(sign) == float(ref_sign)
    assert abs(float(lad) - float(ref_lad)) <= 1e-7 * max(1.0, abs(float(ref_lad)))
    logdet = op.logdet()
    if float(sign) > 0:
        assert abs(float(logdet) - float(ref_lad)) <= 1e-7 * max(1.0, abs(float(ref_lad)))
    else:
        assert torch.isnan(logdet)
    close(op.det(), torch.linalg.det(M), scale=float(torch.linalg.det(M).abs()) * 1e2)


@SETTINGS
@given(st.one_of(square_operator(), structured_operator(depth=2)), st.integers(0, 2**31 - 1))
def test_solve_matches_dense(pair, seed):
    op, M = pair
    n = M.shape[0]
    g = torch.Generator().manual_seed(seed)
    b, B = torch.randn(n, generator=g, dtype=DT), torch.randn(n, 2, generator=g, dtype=DT)
    cond = _cond(M)
    if cond > 1e7:
        if op.rank_bound is not None:
            with pytest.raises(SingularOperatorError, match="lstsq"):
                op.solve(b)
        return
    x, X = op.solve(b), op.solve(B)
    assert x.shape == (n,) and X.shape == (n, 2)
    for got, rhs in ((x, b), (X, B)):
        ref = torch.linalg.solve(M, rhs)
        atol = 1e-9 * cond * max(1.0, float(ref.abs().max()))
        torch.testing.assert_close(got, ref, rtol=0, atol=atol)


@settings(max_examples=max(25, _N), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_operator(depth=1), st.integers(0, 2**31 - 1))
def test_lstsq_matches_pinv(pair, seed):
    op, M = pair
    g = torch.Generator().manual_seed(seed)
    b = torch.randn(M.shape[0], generator=g, dtype=DT)
    s = torch.linalg.svdvals(M)
    if float(s.min()) <= 1e-6 * float(s.max()):
        return
    ref = torch.linalg.pinv(M) @ b
    atol = 1e-7 * float(s.max() / s.min()) * max(1.0, float(ref.abs().max()))
    torch.testing.assert_close(op.lstsq(b), ref, rtol=0, atol=atol)
