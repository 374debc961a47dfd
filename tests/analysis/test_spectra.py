"""jacobite.analysis.spectra against dense counterparts (svdvals, matrix_norm, slogdet)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import jacobite
from jacobite.analysis.spectra import (
    condition_number,
    frobenius_norm,
    logabsdet,
    spectral_norm,
    top_singular,
)
from jacobite.errors import (
    ArgumentTypeError,
    InvalidOptionError,
    JacobiteWarning,
    NonFiniteInputError,
    NotSquareError,
    ShapeError,
)
from jacobite.operators import (
    DenseOperator,
    DiagonalOperator,
    DiagonalPlusLowRank,
    FunctionOperator,
)
from tests.nets import conv_net, mlp

F64 = torch.float64


def _mat(m: int, n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(m, n, dtype=F64, generator=torch.Generator().manual_seed(seed))


def _fn_op(A: torch.Tensor) -> FunctionOperator:
    return FunctionOperator(tuple(A.shape), lambda v: A @ v, lambda u: A.T @ u, dtype=A.dtype)


@given(m=st.integers(1, 30), n=st.integers(1, 30), seed=st.integers(0, 10_000))
def test_top_singular_matches_svd(m: int, n: int, seed: int) -> None:
    A = _mat(m, n, seed)
    k = min(3, m, n)
    r = top_singular(A, k=k)
    S = torch.linalg.svdvals(A)
    torch.testing.assert_close(r.values, S[:k], rtol=1e-9, atol=1e-12)
    # J v = σ u, and the vectors are unit
    torch.testing.assert_close(A @ r.right.T, r.left.T * r.values, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(r.right.norm(dim=1), torch.ones(k, dtype=F64))


def test_rank_deficient_and_tall_wide() -> None:
    u, v = _mat(12, 1, 1), _mat(1, 7, 2)
    A = u @ v  # rank one
    r = top_singular(A, k=3)
    assert r.converged
    torch.testing.assert_close(r.values, torch.linalg.svdvals(A)[:3], rtol=1e-9, atol=1e-9)
    for B in (_mat(3, 40, 3), _mat(40, 3, 4)):
        r = top_singular(B, k=3)
        torch.testing.assert_close(r.values, torch.linalg.svdvals(B), rtol=1e-10, atol=0)


def test_spectral_norm_of_a_function_and_an_operator() -> None:
    net = mlp((5, 12, 12, 4))
    x = torch.randn(1, 5, dtype=F64)
    J = jacobite.jacobian(net, x).reshape(4, 5).detach()
    ref = float(torch.linalg.matrix_norm(J, ord=2))
    assert spectral_norm(net, x).item() == pytest.approx(ref, rel=1e-10)
    assert spectral_norm(jacobite.linearize(net, x)).item() == pytest.approx(ref, rel=1e-10)
    assert float(spectral_norm(DenseOperator(J))) == pytest.approx(ref, rel=1e-10)


def test_conv_net_reaches_1e6_where_power_iteration_does_not_need_to() -> None:
    net = conv_net(channels=4, dtype=F64)
    x = torch.randn(1, 3, 8, 8, dtype=F64)
    J = jacobite.jacobian(net, x).reshape(192, 192)
    s = torch.linalg.svdvals(J)
    r = top_singular(net, x, k=2)
    torch.testing.assert_close(r.values, s[:2], rtol=1e-6, atol=0)
    assert r.iterations < 192  # matrix-free: stopped well before exhausting the space


def test_float32_products_still_converge() -> None:
    net = conv_net(channels=4)
    x = torch.randn(1, 3, 6, 6)
    J = jacobite.jacobian(net, x).reshape(108, 108).detach().double()
    assert spectral_norm(net, x).item() == pytest.approx(float(torch.linalg.svdvals(J)[0]),
                                                         rel=1e-6)


def test_max_iter_warns_when_not_converged() -> None:
    A = _mat(60, 60, 5)
    with pytest.warns(JacobiteWarning, match="max_iter"):
        r = top_singular(A, max_iter=3)
    assert not r.converged and r.iterations == 3


@pytest.mark.parametrize("fn", [top_singular, spectral_norm, condition_number])
def test_maxiter_is_a_deprecated_spelling_of_max_iter(fn) -> None:
    A = _mat(8, 8, 3)
    with pytest.warns(DeprecationWarning, match="max_iter=8"):
        old = fn(A, maxiter=8, exact=False) if fn is condition_number else fn(A, maxiter=8)
    new = fn(A, max_iter=8, exact=False) if fn is condition_number else fn(A, max_iter=8)
    if fn is top_singular:
        old, new = old.values, new.values
    assert torch.equal(torch.as_tensor(old), torch.as_tensor(new))
    with pytest.raises(InvalidOptionError, match="pass only max_iter"):
        fn(A, maxiter=8, max_iter=8)


def _fn_slq(seed):
    A = _mat(300, 300, 2) + 20 * torch.eye(300, dtype=F64)
    return logabsdet(_fn_op(A), method="slq", nprobe=2, steps=5, seed=seed).value


@pytest.mark.parametrize("estimate", [
    lambda seed: frobenius_norm(_mat(6, 5, 1), nproj=3, seed=seed).value,
    _fn_slq,
    lambda seed: top_singular(lambda v: torch.sin(v) * v, torch.linspace(-1, 1, 7, dtype=F64),
                              1, seed=seed, max_iter=2).values[0].item(),
])
@pytest.mark.filterwarnings("ignore::jacobite.errors.JacobiteWarning")
def test_seed_none_follows_torch_manual_seed_and_int_repeats(estimate) -> None:
    torch.manual_seed(123)
    a = estimate(None)
    torch.manual_seed(123)
    assert estimate(None) == a
    assert estimate(5) == estimate(5)
    torch.manual_seed(7)
    b = estimate(None)
    assert b != a


@given(m=st.integers(1, 20), n=st.integers(1, 20), seed=st.integers(0, 10_000))
def test_frobenius_exact(m: int, n: int, seed: int) -> None:
    A = _mat(m, n, seed)
    e = frobenius_norm(A, nproj=-1)
    assert e.exact and e.value == pytest.approx(float(A.norm()), rel=1e-12)
    assert e.ci == (e.value, e.value)


@pytest.mark.parametrize("dist", ["rademacher", "gaussian"])
@pytest.mark.parametrize("shape", [(8, 30), (30, 8)])
def test_frobenius_estimate_and_interval(dist: str, shape: tuple[int, int]) -> None:
    A = _mat(*shape, seed=7)
    true = float(A.norm())
    e = frobenius_norm(A, nproj=400, seed=0, distribution=dist, confidence=0.999)
    assert not e.exact and e.nproj == 400
    assert e.ci[0] <= true <= e.ci[1]
    assert e.value == pytest.approx(true, rel=0.1)
    one = frobenius_norm(A, nproj=1, seed=0)
    assert one.ci == (0.0, math.inf) or one.ci[1] == math.inf


def test_frobenius_of_a_network_via_vjp_and_jvp() -> None:
    for net, x in ((mlp((4, 9, 7)), torch.randn(1, 4, dtype=F64)),
                   (mlp((9, 9, 2)), torch.randn(1, 9, dtype=F64))):
        J = jacobite.jacobian(net, x).reshape(-1, x.numel()).detach()
        assert frobenius_norm(net, x, nproj=-1).value.item() == pytest.approx(float(J.norm()),
                                                                              rel=1e-12)


def test_rademacher_estimate_is_exact_for_a_diagonal() -> None:
    d = torch.tensor([1.0, -2.0, 3.0], dtype=F64)
    e = frobenius_norm(torch.diag(d), nproj=5, seed=1)
    assert e.value == pytest.approx(float(d.norm()), rel=1e-12) and e.stderr == 0


def test_condition_number_dense_and_lanczos() -> None:
    A = _mat(30, 20, 8)
    s = torch.linalg.svdvals(A)
    ref = float(s[0] / s[-1])
    assert condition_number(A) == pytest.approx(ref, rel=1e-10)
    assert condition_number(_fn_op(A), exact=False) == pytest.approx(ref, rel=1e-6)
    assert condition_number(A.T, exact=False) == pytest.approx(ref, rel=1e-6)
    assert condition_number(torch.zeros(3, 3, dtype=F64) + torch.eye(3, dtype=F64)[0]) \
        == math.inf


def test_logabsdet_exact_from_structure() -> None:
    d = torch.tensor([2.0, -0.5, 3.0, 1.5], dtype=F64)
    u, v = _mat(4, 1, 9), _mat(4, 1, 10)
    ops = [DiagonalOperator(d), DiagonalPlusLowRank(d, u, v), DenseOperator(_mat(5, 5, 11)),
           DiagonalOperator(d) @ DiagonalPlusLowRank(d, u, v), 2.0 * DiagonalOperator(d).T]
    for op in ops:
        r = logabsdet(op)
        sign, ref = torch.linalg.slogdet(op.to_dense())
        assert r.exact and r.stderr == 0
        assert r.value == pytest.approx(float(ref), rel=1e-10) and r.sign == float(sign)
        assert r.method.endswith(".slogdet")
    big = DiagonalOperator(torch.linspace(1.0, 2.0, 1000, dtype=F64))
    assert logabsdet(big).exact
    assert not logabsdet(_fn_op(torch.eye(1000, dtype=F64)) @ big, nprobe=2, steps=5).exact


def test_logabsdet_dense_small_function() -> None:
    f = lambda v: torch.tanh(v) * 2 + 0.1 * v.roll(1)  # noqa: E731
    x = torch.randn(6, dtype=F64)
    ref = torch.linalg.slogdet(jacobite.jacobian(f, x))[1]
    r = logabsdet(f, x)
    assert r.exact and r.method == "dense" and r.value == pytest.approx(float(ref), rel=1e-10)


def test_logabsdet_slq_within_its_error_bar() -> None:
    n = 40
    Q, _ = torch.linalg.qr(_mat(n, n, 12))
    s = torch.linspace(0.5, 3.0, n, dtype=F64)
    A = Q * s  # singular values s exactly: log|det| = Σ log s
    ref = float(torch.log(s).sum())
    r = logabsdet(_fn_op(A), method="slq", nprobe=64, steps=n, seed=0)
    assert not r.exact and math.isnan(r.sign) and r.stderr > 0
    assert r.ci[0] - 2 * r.stderr <= ref <= r.ci[1] + 2 * r.stderr
    assert r.value == pytest.approx(ref, abs=6 * r.stderr + 1e-9)
    few = logabsdet(_fn_op(A), method="slq", nprobe=32, steps=12, seed=1)
    assert abs(few.value - ref) < 0.1 * abs(ref) + 6 * few.stderr


def test_errors_name_the_fix() -> None:
    A = _mat(3, 4)
    with pytest.raises(NotSquareError, match="square"):
        logabsdet(A)
    with pytest.raises(NonFiniteInputError, match="nan_to_num"):
        spectral_norm(torch.sin, torch.tensor([1.0, math.nan]))
    with pytest.raises(NonFiniteInputError):
        spectral_norm(torch.tensor([[math.inf]]))
    with pytest.raises(InvalidOptionError, match="k must be"):
        top_singular(A, k=4)
    with pytest.raises(InvalidOptionError, match="nproj"):
        frobenius_norm(A, nproj=0)
    with pytest.raises(InvalidOptionError, match="distribution"):
        frobenius_norm(A, distribution="cauchy")
    with pytest.raises(InvalidOptionError, match="tol"):
        spectral_norm(A, tol=0)
    with pytest.raises(InvalidOptionError, match="method"):
        logabsdet(torch.eye(2), method="magic")
    with pytest.raises(InvalidOptionError, match="x"):
        spectral_norm(torch.sin)
    with pytest.raises(InvalidOptionError, match="without x"):
        spectral_norm(DenseOperator(A), torch.ones(4))
    with pytest.raises(ShapeError, match="2-D"):
        spectral_norm(torch.ones(3))
    with pytest.raises(ArgumentTypeError, match="must be"):
        spectral_norm(42)


def test_no_warning_on_converged_runs() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        top_singular(_mat(20, 15), k=2)


class _OnceDifferentiable(torch.autograd.Function):
    """``x³`` with a backward that has no double backward, and an explicit JVP."""

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return x ** 3

    @staticmethod
    def setup_context(ctx: object, inputs: tuple, output: torch.Tensor) -> None:
        ctx.save_for_backward(inputs[0])  # type: ignore[attr-defined]
        ctx.save_for_forward(inputs[0])  # type: ignore[attr-defined]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: object, g: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors  # type: ignore[attr-defined]
        return 3 * x ** 2 * g

    @staticmethod
    def jvp(ctx: object, t: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors  # type: ignore[attr-defined]
        return 3 * x ** 2 * t


def test_jvp_fallback_without_double_backward() -> None:
    x = torch.tensor([1.0, -2.0, 0.5], dtype=F64)
    W = _mat(3, 3, 21)
    f = lambda v: W @ _OnceDifferentiable.apply(v)  # noqa: E731
    J = W * (3 * x ** 2)
    assert spectral_norm(f, x) == pytest.approx(float(torch.linalg.matrix_norm(J, ord=2)),
                                                rel=1e-10)


@given(n=st.integers(1, 12), seed=st.integers(0, 10_000))
def test_logabsdet_and_condition_number_match_dense(n: int, seed: int) -> None:
    A = _mat(n, n, seed) + 3 * torch.eye(n, dtype=F64)
    sign, ref = torch.linalg.slogdet(A)
    r = logabsdet(_fn_op(A))
    assert r.exact and r.value == pytest.approx(float(ref), rel=1e-9, abs=1e-12)
    assert r.sign == float(sign)
    s = torch.linalg.svdvals(A)
    assert condition_number(_fn_op(A)) == pytest.approx(float(s[0] / s[-1]), rel=1e-9)
