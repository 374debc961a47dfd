"""Softmax Jacobian operators and products against torch.func, mpmath and NumPy closed forms."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch
import torch.func as tf
from hypothesis import given
from hypothesis import strategies as st

from jacobite.errors import (
    DtypeError,
    JacobianTooLarge,
    NonFiniteInputError,
    ShapeError,
    SingularOperatorError,
)
from jacobite.nn import (
    BatchedSoftmaxJacobian,
    SoftmaxJacobian,
    softmax_jacobian,
    softmax_jvp,
    softmax_vjp,
)
from jacobite.operators import DiagonalPlusLowRank, verify_tags

DT = torch.float64


def _jacrev_softmax(z: torch.Tensor, dim: int = -1) -> torch.Tensor:
    n = z.numel()
    return tf.jacrev(lambda v: torch.softmax(v, dim))(z).reshape(n, n)


logit_vectors = st.lists(st.floats(-30, 30), min_size=1, max_size=9).map(
    lambda v: torch.tensor(v, dtype=DT))


@given(logit_vectors)
def test_single_vector_matches_jacrev(z: torch.Tensor) -> None:
    J = softmax_jacobian(z)
    assert isinstance(J, DiagonalPlusLowRank)
    assert J.is_symmetric() and J.is_psd()
    torch.testing.assert_close(J.to_dense(), _jacrev_softmax(z), rtol=0, atol=1e-15)


def test_tags_hold_numerically() -> None:
    z = torch.tensor([0.3, -1.2, 2.0, 0.0], dtype=DT)
    verify_tags(softmax_jacobian(z))
    verify_tags(softmax_jacobian(z.reshape(2, 2)))
    J = softmax_jacobian(z)
    assert isinstance(J, SoftmaxJacobian) and J.rank_bound == 3
    assert J.slogdet() == (0, -math.inf)  # singular, not the determinant lemma's rounding noise
    with pytest.raises(SingularOperatorError, match="lstsq"):
        J.solve(torch.ones(4, dtype=DT))
    b = J.mv(torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=DT))
    torch.testing.assert_close(J.mv(J.lstsq(b)), b)


def test_tags_need_a_softmax_output() -> None:
    s = torch.tensor([0.2, 0.3], dtype=DT)  # does not sum to one: J 1 != 0, full rank
    J = SoftmaxJacobian.from_sigma(s)
    assert J.rank_bound is None and J.is_symmetric()
    ref = torch.diag(s) - torch.outer(s, s)
    torch.testing.assert_close(J.to_dense(), ref)
    assert int(torch.linalg.matrix_rank(ref)) == 2
    assert J.slogdet()[1].item() == pytest.approx(math.log(torch.linalg.det(ref).item()))
    B = BatchedSoftmaxJacobian(torch.stack([s, s]))
    assert B.rank_bound is None and B.is_psd() and J.is_psd()  # sums <= 1: still PSD
    torch.testing.assert_close(B.to_dense(), torch.block_diag(ref, ref))
    torch.testing.assert_close(B.to_dense_blocks()[1], ref)
    verify_tags(J)
    verify_tags(B)


@given(st.lists(st.floats(-40, 40), min_size=1, max_size=8))
def test_dense_form_is_accurate_near_one_hot(logits: list[float]) -> None:
    """The materialised diagonal is sigma_i * sum_{j != i} sigma_j, so J 1 = 0 to eps * |J|,
    even where sigma_i - sigma_i**2 would cancel (sigma_i close to 1)."""
    z = torch.tensor(logits, dtype=DT)
    for J in (softmax_jacobian(z), softmax_jacobian(z[None, :])):
        D = J.to_dense()
        scale = D.abs().max().item()
        assert D.sum(1).abs().max().item() <= 4 * len(logits) * 2.0**-52 * scale
        torch.testing.assert_close(D, _jacrev_softmax(z), rtol=0, atol=1e-15)
        torch.testing.assert_close(J.diagonal(), D.diagonal(), rtol=0, atol=0)


@given(logit_vectors, st.integers(0, 2**31 - 1))
def test_vjp_and_jvp_match_torch_func(z: torch.Tensor, seed: int) -> None:
    g = torch.randn(z.shape, dtype=DT, generator=torch.Generator().manual_seed(seed))
    _, vjp_fn = tf.vjp(lambda v: torch.softmax(v, -1), z)
    _, jv = tf.jvp(lambda v: torch.softmax(v, -1), (z,), (g,))
    torch.testing.assert_close(softmax_vjp(z, g), vjp_fn(g)[0], rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(softmax_jvp(z, g), jv, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(softmax_jacobian(z).rmv(g), vjp_fn(g)[0], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(("shape", "dim"), [((4, 5), -1), ((4, 5), 0), ((2, 3, 4), 1),
                                            ((1, 6), -1)])
def test_batched_operator_matches_jacrev(shape: tuple[int, ...], dim: int) -> None:
    z = torch.randn(shape, dtype=DT, generator=torch.Generator().manual_seed(1)) * 3
    J = softmax_jacobian(z, dim)
    assert isinstance(J, BatchedSoftmaxJacobian)
    ref = _jacrev_softmax(z, dim)
    torch.testing.assert_close(J.to_dense(), ref, rtol=0, atol=1e-15)
    v = torch.randn(z.numel(), 3, dtype=DT)
    torch.testing.assert_close(J.mm(v), ref @ v, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(J.rmm(v), ref.T @ v, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(J.mv(v[:, 0]), ref @ v[:, 0], rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(J.diagonal(), ref.diagonal(), rtol=0, atol=1e-15)
    torch.testing.assert_close(J.apply(v[:, 0].reshape(shape)).reshape(-1), ref @ v[:, 0],
                               rtol=1e-12, atol=1e-14)
    groups = J.num_blocks
    assert J.rank_bound == z.numel() - groups and J.is_psd() and J.T is J
    assert int(torch.linalg.matrix_rank(ref)) == z.numel() - groups


def test_batched_blocks_are_the_per_sample_jacobians() -> None:
    z = torch.randn(5, 4, dtype=DT, generator=torch.Generator().manual_seed(2))
    J = softmax_jacobian(z)
    per_sample = tf.vmap(tf.jacrev(lambda v: torch.softmax(v, -1)))(z)
    torch.testing.assert_close(J.to_dense_blocks(), per_sample, rtol=0, atol=1e-15)
    for b in range(5):
        torch.testing.assert_close(J.block(b).to_dense(), per_sample[b], rtol=0, atol=1e-15)
    assert J.slogdet()[0] == 0  # singular: every block has 1 in its null space


def _mp_softmax(z: list[float]) -> list[mpmath.mpf]:
    with mpmath.workdps(60):
        m = max(z)
        e = [mpmath.exp(mpmath.mpf(v) - m) for v in z]
        s = mpmath.fsum(e)
        return [x / s for x in e]


def test_stable_for_huge_logits() -> None:
    zs = [1e4, -1e4, 0.0, 1e4 - 1.0, 9999.5]
    z = torch.tensor(zs, dtype=DT)
    s = _mp_softmax(zs)
    J = softmax_jacobian(z).to_dense()
    assert torch.isfinite(J).all()
    exact = torch.tensor([[float(s[i] * ((1 if i == j else 0) - s[j])) for j in range(5)]
                          for i in range(5)], dtype=DT)
    torch.testing.assert_close(J, exact, rtol=1e-12, atol=1e-300)
    g = torch.tensor([1.0, -2.0, 0.5, 3.0, -1.0], dtype=DT)
    with mpmath.workdps(60):
        dot = mpmath.fsum(si * gi for si, gi in zip(s, g.tolist(), strict=True))
        want = [float(si * (gi - dot)) for si, gi in zip(s, g.tolist(), strict=True)]
    torch.testing.assert_close(softmax_vjp(z, g), torch.tensor(want, dtype=DT), rtol=1e-12,
                               atol=1e-300)
    batch = torch.stack([z, -z])
    assert torch.isfinite(softmax_jacobian(batch).to_dense_blocks()).all()


def test_vocabulary_sized_softmax_is_lazy_and_exact() -> None:
    K = 131072
    rng = np.random.default_rng(0)
    z_np = rng.normal(scale=3.0, size=K)
    z = torch.from_numpy(z_np)
    J = softmax_jacobian(z)
    assert J.shape == (K, K) and J.U.shape == (K, 1)  # only sigma is stored
    e = np.exp(z_np - z_np.max())
    s = e / math.fsum(e)  # independent oracle: NumPy, shifted exponentials
    for i, j in [(0, 0), (5, 17), (K - 1, 3), (12345, 12345)]:
        ej = torch.zeros(K, dtype=DT)
        ej[j] = 1.0
        want = s[i] * ((i == j) - s[j])
        assert J.mv(ej)[i].item() == pytest.approx(want, rel=1e-10, abs=1e-300)
    np.testing.assert_allclose(J.diagonal().numpy(), s * (1 - s), rtol=1e-10)
    g_np = rng.normal(size=K)
    want = s * (g_np - math.fsum(s * g_np))
    g = torch.from_numpy(g_np)
    np.testing.assert_allclose(J.mv(g).numpy(), want, rtol=1e-9, atol=1e-18)
    np.testing.assert_allclose(softmax_vjp(z, g).numpy(), want, rtol=1e-9, atol=1e-18)
    assert abs(J.mv(torch.ones(K, dtype=DT))).max() < 1e-12  # J 1 = sigma (1 - sum sigma)
    with pytest.raises(JacobianTooLarge, match="memory_budget"):
        J.to_dense()


def test_vocabulary_sized_batch() -> None:
    K, B = 131072, 3
    z = torch.randn(B, K, dtype=torch.float32, generator=torch.Generator().manual_seed(3))
    J = softmax_jacobian(z)
    g = torch.randn(B, K, dtype=torch.float32)
    ref = tf.vjp(lambda v: torch.softmax(v, -1), z)[1](g)[0]
    torch.testing.assert_close(J.mv(g.reshape(-1)).reshape(B, K), ref, rtol=1e-4, atol=1e-9)
    with pytest.raises(JacobianTooLarge):
        J.to_dense_blocks()
    assert J.is_psd()


def test_bad_inputs_name_the_fix() -> None:
    with pytest.raises(DtypeError, match="float64"):
        softmax_jacobian(torch.tensor([1, 2]))
    with pytest.raises(NonFiniteInputError):
        softmax_jacobian(torch.tensor([1.0, float("inf")]))
    with pytest.raises(ShapeError, match="shape"):
        softmax_jacobian(torch.tensor(1.0))
    with pytest.raises(ShapeError, match="out of range"):
        softmax_jacobian(torch.zeros(3), dim=1)
    with pytest.raises(ShapeError, match="must match"):
        softmax_vjp(torch.zeros(3), torch.zeros(4))
    with pytest.raises(DtypeError, match="convert"):
        softmax_jvp(torch.zeros(3, dtype=DT), torch.zeros(3, dtype=torch.float32))
