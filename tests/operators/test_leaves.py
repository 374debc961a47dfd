"""Behaviour specific to each concrete operator."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

import jacobite.config
from jacobite.errors import InvalidOptionError, JacobianTooLarge, UnsupportedOperationError
from jacobite.operators import (
    BlockDiagonal,
    Composed,
    ConvergenceError,
    DenseOperator,
    DiagonalOperator,
    DiagonalPlusLowRank,
    FunctionOperator,
    LowRankOperator,
    ScaledIdentity,
    SingularOperatorError,
    SparseOperator,
    as_operator,
)

DT = torch.float64
g = torch.Generator().manual_seed(1)


def rnd(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=g, dtype=DT)


# ---------------------------------------------------------------- DiagonalPlusLowRank
def test_softmax_jacobian_at_131072():
    K = 131072
    s = torch.softmax(rnd(K), 0)
    J = DiagonalPlusLowRank.softmax(s)
    v = rnd(K)
    out = J.mv(v)
    idx = torch.tensor([0, 17, K // 2, K - 1])
    expected = s[idx] * v[idx] - s[idx] * (s @ v)
    torch.testing.assert_close(out[idx], expected)
    torch.testing.assert_close(J.rmv(v), out)
    torch.testing.assert_close(J.diagonal()[idx], s[idx] - s[idx] ** 2)
    assert J.mm(torch.stack([v, 2 * v], 1)).shape == (K, 2)
    assert J.is_psd() and J.T is J
    # the softmax Jacobian is singular (J @ 1 = 0)
    torch.testing.assert_close(J.mv(torch.ones(K, dtype=DT)), torch.zeros(K, dtype=DT),
                               atol=1e-15, rtol=0)
    with pytest.raises(JacobianTooLarge, match="memory_budget"):
        J.to_dense()


def test_dplr_lemma_and_woodbury():
    n, k = 7, 3
    d, U, V, C = rnd(n), rnd(n, k), rnd(n, k), rnd(k, k)
    J = DiagonalPlusLowRank(d, U, V, core=C)
    M = torch.diag(d) + U @ C @ V.T
    torch.testing.assert_close(J.to_dense(), M)
    sign, lad = J.slogdet()
    ref = torch.linalg.slogdet(M)
    assert sign == ref.sign
    torch.testing.assert_close(lad, ref.logabsdet)
    b = rnd(n, 2)
    torch.testing.assert_close(J.solve(b), torch.linalg.solve(M, b))


def test_dplr_with_zero_diagonal_falls_back_to_dense():
    d = torch.tensor([0.0, 1.0, 2.0], dtype=DT)
    U = rnd(3, 1)
    J = DiagonalPlusLowRank(d, U, core=1.0)
    M = J.to_dense()
    torch.testing.assert_close(J.slogdet()[1], torch.linalg.slogdet(M).logabsdet)
    b = rnd(3)
    torch.testing.assert_close(J.solve(b), torch.linalg.solve(M, b))


def test_dplr_1d_factors_and_core_forms():
    d, u = rnd(4), rnd(4)
    a = DiagonalPlusLowRank(d, u, core=-1.0).to_dense()
    b = DiagonalPlusLowRank(d, u[:, None], core=torch.tensor([[-1.0]], dtype=DT)).to_dense()
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, torch.diag(d) - torch.outer(u, u))


def test_dplr_is_differentiable():
    d = (rnd(4).abs() + 1).requires_grad_()
    U = rnd(4, 1)
    J = DiagonalPlusLowRank(d, U, core=0.5)
    J.logdet().backward()
    d2 = d.detach().clone().requires_grad_()
    torch.logdet(torch.diag(d2) + 0.5 * U @ U.T).backward()
    torch.testing.assert_close(d.grad, d2.grad)


# ---------------------------------------------------------------- BlockDiagonal
def test_block_diagonal_layout_and_blockwise_linalg():
    blocks = rnd(5, 3, 3)
    J = BlockDiagonal(blocks)
    M = torch.block_diag(*blocks)
    assert J.shape == (15, 15) and J.blocks is blocks and J.num_blocks == 5
    v = rnd(15)
    torch.testing.assert_close(J.mv(v), M @ v)
    torch.testing.assert_close(J.slogdet()[1], torch.linalg.slogdet(M).logabsdet)
    torch.testing.assert_close(J.solve(v), torch.linalg.solve(M, v))
    sparse = J.to_sparse()
    assert sparse.values().numel() == 45


def test_block_diagonal_rectangular():
    blocks = rnd(4, 2, 3)
    J = BlockDiagonal(blocks)
    M = torch.block_diag(*blocks)
    assert J.shape == (8, 12)
    torch.testing.assert_close(J.diagonal(), M.diagonal())
    torch.testing.assert_close(J.rmm(rnd(8, 2)).shape, torch.Size([12, 2]))


def test_sparse_results_do_not_densify():
    with jacobite.config.memory_budget("16 KiB"):
        D = DiagonalOperator(rnd(20000))
        assert D.to_sparse().values().numel() == 20000
        B = BlockDiagonal(rnd(1000, 2, 2))
        assert B.to_scipy().nnz == 4000
        S = SparseOperator(sp.eye(5000, format="csr") + sp.eye(5000, k=3, format="csr"))
        assert S.to_sparse() is S.matrix
        with pytest.raises(JacobianTooLarge, match=r"jacobite\.config\.memory_budget"):
            B.to_dense()


def test_singular_blocks_raise():
    blocks = torch.zeros(2, 2, 2, dtype=DT)
    blocks[0] = torch.eye(2)
    with pytest.raises(SingularOperatorError, match="block"):
        BlockDiagonal(blocks).solve(rnd(4))
    assert float(BlockDiagonal(blocks).slogdet()[0]) == 0


# ---------------------------------------------------------------- FunctionOperator
def test_function_operator_without_rmv():
    M = rnd(3, 2)
    F = FunctionOperator((3, 2), lambda v: M @ v, dtype=DT, name="jvp")
    torch.testing.assert_close(F.mm(torch.eye(2, dtype=DT)), M)
    for call in (lambda: F.T, lambda: F.rmv(rnd(3)), lambda: F.rmm(rnd(3, 1))):
        with pytest.raises(UnsupportedOperationError, match="pass rmv="):
            call()


def test_function_operator_vmap_fallback():
    M = rnd(3, 3)

    def mv(v):  # .item() cannot run under vmap: the loop fallback takes over
        return M @ v * (1.0 + 0.0 * v.sum().item())

    F = FunctionOperator((3, 3), mv, mv, dtype=DT)
    torch.testing.assert_close(F.mm(torch.eye(3, dtype=DT)), M)
    torch.testing.assert_close(F.to_dense(), M)


def test_function_operator_checks_closure_output():
    F = FunctionOperator((3, 2), lambda v: v, dtype=DT)
    with pytest.raises(Exception, match=r"returned \(2,\), expected shape \(3,\)"):
        F.mv(rnd(2))


def test_function_operator_iterative_solves():
    A = rnd(6, 6) / 3 + 2 * torch.eye(6, dtype=DT)
    F = FunctionOperator((6, 6), lambda v: A @ v, lambda u: A.T @ u, dtype=DT)
    b = rnd(6)
    torch.testing.assert_close(F.solve(b), torch.linalg.solve(A, b))
    torch.testing.assert_close(F.solve(b, method="dense"), torch.linalg.solve(A, b))
    P = A @ A.T
    Fp = FunctionOperator((6, 6), lambda v: P @ v, dtype=DT, tags=("psd",))
    torch.testing.assert_close(Fp.solve(b), torch.linalg.solve(P, b))
    R = rnd(8, 6)
    Fr = FunctionOperator((8, 6), lambda v: R @ v, lambda u: R.T @ u, dtype=DT)
    torch.testing.assert_close(Fr.lstsq(rnd(8)).shape, torch.Size([6]))


def test_function_operator_convergence_error():
    A = torch.diag(torch.logspace(0, 8, 40, dtype=DT)) + torch.triu(rnd(40, 40), 1)
    F = FunctionOperator((40, 40), lambda v: A @ v, dtype=DT)
    with pytest.raises(ConvergenceError, match="max_iter"):
        F.solve(rnd(40), max_iter=1)


def test_function_operator_solve_maxiter_is_deprecated():
    A = torch.diag(torch.arange(1.0, 6.0, dtype=DT))
    F = FunctionOperator((5, 5), lambda v: A @ v, dtype=DT)
    b = torch.ones(5, dtype=DT)
    with pytest.warns(DeprecationWarning, match="max_iter=50"):
        old = F.solve(b, maxiter=50)
    torch.testing.assert_close(old, F.solve(b, max_iter=50))
    torch.testing.assert_close(old, torch.linalg.solve(A, b))
    with pytest.raises(InvalidOptionError, match="pass only max_iter"):
        F.solve(b, maxiter=5, max_iter=5)
    with pytest.raises(InvalidOptionError, match="max_iter"):
        F.solve(b, max_iter=0)


def test_function_operator_respects_budget():
    F = FunctionOperator((100000, 100000), lambda v: v, lambda v: v, dtype=DT)
    with pytest.raises(JacobianTooLarge, match="memory budget"):
        F.slogdet()
    # a declared structure still gives the cheap path
    D = FunctionOperator((50, 50), lambda v: 2 * v, dtype=DT, tags=("diagonal",))
    torch.testing.assert_close(D.slogdet()[1], 50 * torch.log(torch.tensor(2.0, dtype=DT)))


# ---------------------------------------------------------------- SparseOperator
@pytest.mark.parametrize("seed", range(4))
def test_sparse_slogdet_sign_with_pivoting(seed):
    rng = np.random.default_rng(seed)
    M = sp.random(12, 12, density=0.3, random_state=rng) + sp.diags(rng.normal(size=12))
    S = SparseOperator(M)
    ref = np.linalg.slogdet(M.toarray())
    sign, lad = S.slogdet()
    assert float(sign) == ref[0]
    np.testing.assert_allclose(float(lad), ref[1])
    b = torch.from_numpy(rng.normal(size=12))
    np.testing.assert_allclose(S.solve(b).numpy(), np.linalg.solve(M.toarray(), b.numpy()))


def test_sparse_inputs_and_singular():
    dense = torch.tensor([[1.0, 0.0], [2.0, 0.0]], dtype=DT)
    for m in (dense.to_sparse(), dense.to_sparse_csr(), sp.coo_matrix(dense.numpy())):
        S = SparseOperator(m)
        torch.testing.assert_close(S.to_dense(), dense)
        assert S.slogdet()[1] == -torch.inf
        with pytest.raises(SingularOperatorError, match="lstsq"):
            S.solve(torch.ones(2, dtype=DT))
    assert SparseOperator(sp.eye(3), dtype=torch.float32).dtype == torch.float32


# ---------------------------------------------------------------- generic machinery
def test_scipy_interop():
    M = rnd(9, 6)
    lin = DenseOperator(M).as_linear_operator()
    s = spla.svds(lin, k=1, return_singular_vectors=False)
    np.testing.assert_allclose(s[0], float(torch.linalg.svdvals(M)[0]))
    A = M.T @ M + torch.eye(6, dtype=DT)
    x, info = spla.cg(DenseOperator(A).as_linear_operator(), np.ones(6), atol=1e-12)
    assert info == 0
    np.testing.assert_allclose(A.numpy() @ x, np.ones(6), atol=1e-9)
    op = as_operator(lin)
    torch.testing.assert_close(op.to_dense(), M)
    assert isinstance(as_operator(np.eye(2)), DenseOperator)


def test_logdet_det_conventions():
    D = DiagonalOperator(torch.tensor([-1.0, 2.0], dtype=DT))
    assert torch.isnan(D.logdet())
    torch.testing.assert_close(D.det(), torch.tensor(-2.0, dtype=DT))
    Z = DiagonalOperator(torch.tensor([0.0, 2.0], dtype=DT))
    assert Z.logdet() == -torch.inf and Z.det() == 0
    assert torch.logdet(Z.to_dense()) == Z.logdet()


def test_scaled_identity_and_trace():
    S = ScaledIdentity(-3.0, 5, dtype=DT)
    sign, lad = S.slogdet()
    ref = torch.linalg.slogdet(S.to_dense())
    assert sign == ref.sign
    torch.testing.assert_close(lad, ref.logabsdet)
    assert float(S.trace()) == -15.0
    assert S.to_sparse().values().numel() == 5
    with pytest.raises(SingularOperatorError):
        ScaledIdentity(0.0, 2, dtype=DT).solve(torch.ones(2, dtype=DT))


def test_composed_factors_and_repr():
    A, B, C = DenseOperator(rnd(2, 3)), DenseOperator(rnd(3, 4)), DiagonalOperator(rnd(4))
    P = A @ B @ C
    assert isinstance(P, Composed) and P.factors == (A, B, C)
    assert "Composed(shape=(2, 4)" in repr(P)
    assert "name='f'" in repr(FunctionOperator((1, 1), lambda v: v, dtype=DT, name="f"))


def test_lowrank_operator_rectangular():
    U, V = rnd(5, 2), rnd(3, 2)
    P = LowRankOperator(U, V)
    M = U @ V.T
    torch.testing.assert_close(P.to_dense(), M)
    torch.testing.assert_close(P.diagonal(), M.diagonal())
    torch.testing.assert_close(P.T.to_dense(), M.T)


def test_float32_operators():
    M = torch.randn(4, 4, generator=g) + 4 * torch.eye(4)
    A = DenseOperator(M)
    assert A.mv(torch.ones(4)).dtype == torch.float32
    torch.testing.assert_close(A.solve(torch.ones(4)), torch.linalg.solve(M, torch.ones(4)))
    F = FunctionOperator((4, 4), lambda v: M @ v, dtype=torch.float32)
    torch.testing.assert_close(F.solve(torch.ones(4)), torch.linalg.solve(M, torch.ones(4)),
                               rtol=1e-4, atol=1e-4)
