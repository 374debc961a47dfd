"""jacobite.logdet: per-sample log|det J| against torch.linalg.slogdet of torch.func.jacrev."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import jacobite
from jacobite.analysis import LogDet, logdet
from jacobite.analysis.logdet import LogDetMethod
from jacobite.errors import (
    ArgumentTypeError,
    DtypeError,
    InvalidOptionError,
    JacobianTooLarge,
    JacobiteWarning,
    ModuleStateError,
    NonFiniteInputError,
    NotSquareError,
    ShapeError,
    UnsupportedOperationError,
)
from jacobite.operators import (
    BlockDiagonal,
    DenseOperator,
    DiagonalOperator,
    DiagonalPlusLowRank,
)
from tests.dense._functions import PlusCube

F64 = torch.float64
Map = Callable[[torch.Tensor], torch.Tensor]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _affine(D: int, seed: int) -> Map:
    """``z ↦ z Aᵀ + b`` with ``A = Q diag(s)``, ``|s|`` in [0.5, 2] (invertible, mixed signs)."""
    g = _gen(seed)
    Q = torch.linalg.qr(torch.randn(D, D, generator=g, dtype=F64)).Q
    s = (0.5 + 1.5 * torch.rand(D, generator=g, dtype=F64)) * \
        torch.where(torch.rand(D, generator=g) < 0.3, -1.0, 1.0).to(F64)
    A, b = Q * s, torch.randn(D, generator=g, dtype=F64)
    return lambda z: z @ A.T + b


def _residual(D: int, seed: int, lip: float = 0.5) -> Map:
    """``z ↦ z + tanh(z Wᵀ + c)`` with ``‖W‖₂ = lip``: ``J − I`` has norm at most ``lip``."""
    g = _gen(seed)
    W = torch.randn(D, D, generator=g, dtype=F64)
    W = W * (lip / torch.linalg.matrix_norm(W, ord=2))
    c = torch.randn(D, generator=g, dtype=F64)
    return lambda z: z + torch.tanh(z @ W.T + c)


def _reference(f: Map, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``slogdet`` of each sample's dense Jacobian by ``torch.func.jacrev``."""
    J = torch.stack([torch.func.jacrev(lambda v: f(v.unsqueeze(0))[0])(xb) for xb in x])
    sign, lad = torch.linalg.slogdet(J)
    return sign, lad


@settings(max_examples=30, deadline=None)
@given(D=st.integers(1, 6), B=st.integers(1, 5), seed=st.integers(0, 10**6),
       residual=st.booleans())
def test_exact_and_auto_match_dense_slogdet(D: int, B: int, seed: int, residual: bool) -> None:
    f = _residual(D, seed) if residual else _affine(D, seed)
    x = torch.randn(B, D, generator=_gen(seed + 1), dtype=F64)
    sign, lad = _reference(f, x)
    for method in ("exact", "auto"):
        r = logdet(f, x, method=method)
        assert isinstance(r, LogDet) and r.method == "exact" and r.stderr is None
        assert r.value.shape == r.sign.shape == (B,)
        torch.testing.assert_close(r.value, lad, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(r.sign, sign)


@settings(max_examples=10, deadline=None)
@given(D=st.integers(1, 6), seed=st.integers(0, 10**6))
def test_hutchpp_with_a_full_sketch_is_exact(D: int, seed: int) -> None:
    f = _residual(D, seed, lip=0.3)
    x = torch.randn(3, D, generator=_gen(seed), dtype=F64)
    r = logdet(f, x, method="hutch++", nprobe=3 * D, terms=60)
    torch.testing.assert_close(r.value, _reference(f, x)[1], rtol=1e-9, atol=1e-10)
    assert r.stderr is not None and torch.equal(r.stderr, torch.zeros(3, dtype=F64))
    assert torch.isnan(r.sign).all()


def test_batch_false_gives_scalars() -> None:
    f = _residual(4, 0)
    x = torch.randn(4, dtype=F64)
    ref = _reference(f, x.unsqueeze(0))[1][0]
    for method in ("exact", "hutchinson", "hutch++", "slq"):
        r = logdet(lambda v: f(v.unsqueeze(0))[0], x, batch=False, method=method, terms=40)
        assert r.value.shape == r.sign.shape == ()
        assert (r.stderr is None) == (method == "exact")
        assert r.stderr is None or r.stderr.shape == ()
        assert abs(float(r.value) - float(ref)) < (1e-12 if method == "exact" else 1.0)


def _dense_ops() -> list[tuple[object, torch.Tensor]]:
    g = _gen(3)
    d = torch.tensor([2.0, -0.5, 3.0, 1.5], dtype=F64)
    L = torch.tril(torch.randn(4, 4, generator=g, dtype=F64)) + 3 * torch.eye(4, dtype=F64)
    U = torch.randn(4, 2, generator=g, dtype=F64)
    V = torch.randn(4, 2, generator=g, dtype=F64)
    dplr = DiagonalPlusLowRank(d, U, V)
    tri = DenseOperator(L, tags="lower_triangular")
    return [(DiagonalOperator(d), torch.diag(d)), (tri, L), (dplr, dplr.to_dense()),
            (tri @ dplr, L @ dplr.to_dense())]


@pytest.mark.parametrize("k", range(4))
def test_structured_operators_match_dense(k: int) -> None:
    op, M = _dense_ops()[k]
    sign, lad = torch.linalg.slogdet(M)
    for method in ("structured", "auto"):
        r = logdet(op, method=method)
        assert r.method == "structured" and r.stderr is None and r.value.shape == ()
        torch.testing.assert_close(r.value, lad, rtol=1e-12, atol=1e-12)
        assert float(r.sign) == float(sign)


def test_structured_batches_block_diagonal_and_lists() -> None:
    blocks = torch.randn(5, 3, 3, generator=_gen(4), dtype=F64)
    sign, lad = torch.linalg.slogdet(blocks)
    r = logdet(BlockDiagonal(blocks))
    torch.testing.assert_close(r.value, lad)
    torch.testing.assert_close(r.sign, sign)
    whole = logdet(BlockDiagonal(blocks), batch=False)  # one Jacobian: the whole batch's
    torch.testing.assert_close(whole.value, lad.sum())
    ops = [DenseOperator(b) for b in blocks]
    torch.testing.assert_close(logdet(ops).value, lad)
    # f returning per-sample operators
    r = logdet(lambda z: [DiagonalOperator(1 + z_b.square()) for z_b in z], blocks[:, 0],
               method="structured")
    torch.testing.assert_close(r.value, torch.log1p(blocks[:, 0].square()).sum(1))


@pytest.mark.parametrize("method", ["hutchinson", "hutch++", "slq"])
def test_estimators_are_unbiased_with_honest_stderr(method: LogDetMethod) -> None:
    D, B = 6, 3
    f = _residual(D, 7, lip=0.5) if method != "slq" else _affine(D, 7)
    x = torch.randn(B, D, generator=_gen(8), dtype=F64)
    lad = _reference(f, x)[1]
    runs = [logdet(f, x, method=method, nprobe=10, seed=s, terms=40) for s in range(30)]
    vals = torch.stack([r.value for r in runs])
    ses = torch.stack([r.stderr for r in runs if r.stderr is not None])
    assert all(r.method == method for r in runs)
    spread = vals.std(dim=0)
    mean_err = (vals.mean(dim=0) - lad).abs()
    assert bool((mean_err <= 4 * spread / math.sqrt(30) + 1e-8).all()), (mean_err, spread)
    # the reported stderr describes the spread over seeds (within a factor of 2.5)
    ratio = ses.mean(dim=0) / spread.clamp_min(1e-300)
    assert bool(((ratio > 0.4) & (ratio < 2.5)).all()), ratio


def test_seeds_reproduce_and_none_uses_the_global_generator() -> None:
    f, x = _residual(5, 1), torch.randn(2, 5, generator=_gen(2), dtype=F64)
    for method in ("hutchinson", "hutch++", "slq"):
        a, b = logdet(f, x, method=method, seed=3), logdet(f, x, method=method, seed=3)
        assert torch.equal(a.value, b.value)
        torch.manual_seed(11)
        c = logdet(f, x, method=method, seed=None, nprobe=4)
        torch.manual_seed(11)
        d = logdet(f, x, method=method, seed=None, nprobe=4)
        assert torch.equal(c.value, d.value)


def test_auto_takes_slq_past_the_budget() -> None:
    f, x = _affine(6, 2), torch.randn(4, 6, generator=_gen(1), dtype=F64)
    r = logdet(f, x, memory_budget=2 * 4 * 36 * 8 - 1, nprobe=4)
    assert r.method == "slq" and r.stderr is not None and r.stderr.shape == (4,)
    assert logdet(f, x, memory_budget=2 * 4 * 36 * 8).method == "exact"


def test_exact_gradient_in_x_matches_dense_reference() -> None:
    f = _residual(4, 5, lip=0.8)
    x = torch.randn(3, 4, generator=_gen(6), dtype=F64)
    xr = x.clone().requires_grad_()
    g = torch.autograd.grad(logdet(f, xr, method="exact").value.sum(), xr)[0]
    xr2 = x.clone().requires_grad_()
    g_ref = torch.autograd.grad(_reference(f, xr2)[1].sum(), xr2)[0]
    torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-12)
    g_func = torch.func.grad(lambda z: logdet(f, z, method="exact").value.sum())(x)
    torch.testing.assert_close(g_func, g_ref, rtol=1e-10, atol=1e-12)


def test_exact_gradient_in_module_parameters() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Tanh(), torch.nn.Linear(3, 3))
    net = net.double()
    x = torch.randn(4, 3, dtype=F64)
    grads = torch.autograd.grad(logdet(net, x, method="exact").value.sum(), list(net.parameters()),
                                materialize_grads=True)  # the last bias leaves J unchanged
    ref = torch.autograd.grad(_reference(net, x)[1].sum(), list(net.parameters()),
                              materialize_grads=True)
    for a, b in zip(grads, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)
    params = dict(net.named_parameters())
    fg = torch.func.grad(lambda p: logdet(lambda z: torch.func.functional_call(net, p, (z,)),
                                          x, method="exact").value.sum())(params)
    for name, b in zip(params, ref, strict=True):
        torch.testing.assert_close(fg[name], b, rtol=1e-9, atol=1e-11)


def test_series_estimators_differentiate_as_estimators() -> None:
    f = _residual(3, 9, lip=0.4)
    x = torch.randn(2, 3, generator=_gen(1), dtype=F64).requires_grad_()
    g = torch.autograd.grad(logdet(f, x, method="hutch++", nprobe=9, terms=60).value.sum(), x)[0]
    g_ref = torch.autograd.grad(_reference(f, x)[1].sum(), x)[0]
    torch.testing.assert_close(g, g_ref, rtol=1e-7, atol=1e-9)  # a full sketch is exact


def test_divergent_or_slow_series_warns() -> None:
    x = torch.zeros(1, 2, dtype=F64)
    indefinite = torch.tensor([3.0, -1.0], dtype=F64)  # no scale c puts λ = −1 in the disc
    with pytest.warns(JacobiteWarning, match="diverges") as record:
        logdet(lambda z: z * indefinite, x, method="hutchinson", nprobe=2)
    assert record[0].filename == __file__  # reported at the caller's line
    spread = torch.tensor([0.05, 1.95], dtype=F64)  # best c = 1 leaves |λ/c − 1| = 0.95
    with pytest.warns(JacobiteWarning, match="raise terms"):  # 0.95^20 ≈ 0.36 of the probe
        logdet(lambda z: z * spread, x, method="hutch++", nprobe=2)
    with warnings.catch_warnings():  # far from I but rescaled: 3.5 I / c = 0.88 I
        warnings.simplefilter("error")
        r = logdet(lambda z: 3.5 * z, x, method="hutchinson", nprobe=2)
    torch.testing.assert_close(r.value, torch.full((1,), 2 * math.log(3.5), dtype=F64))


def test_errors_name_the_fix() -> None:
    x = torch.randn(2, 3, dtype=F64)
    with pytest.raises(NotSquareError, match="square"):
        logdet(lambda z: torch.cat([z, z[:, :1]], dim=1), x)
    with pytest.raises(NotSquareError, match="square"):
        logdet(lambda z: z[:, :2], x, method="hutchinson")
    with pytest.raises(ShapeError, match="batch=False"):
        logdet(torch.tanh, torch.ones(3, dtype=F64))
    with pytest.raises(ShapeError, match="batch=True"):
        logdet(torch.tanh, x, batch=False)
    with pytest.raises(InvalidOptionError, match="'exact'"):
        logdet(torch.tanh, x, method="lu")  # type: ignore[arg-type]
    with pytest.raises(DtypeError, match="double"):
        logdet(torch.tanh, torch.ones(2, 3, dtype=torch.int64))
    with pytest.raises(NonFiniteInputError):
        logdet(torch.tanh, torch.full((1, 2), math.nan, dtype=F64))
    with pytest.raises(InvalidOptionError, match="without x"):
        logdet(DiagonalOperator(torch.ones(2, dtype=F64)), x)
    with pytest.raises(InvalidOptionError, match="structured"):
        logdet(DiagonalOperator(torch.ones(2, dtype=F64)), method="slq")
    with pytest.raises(ArgumentTypeError, match="exact"):
        logdet(torch.tanh, x, method="structured")
    with pytest.raises(InvalidOptionError, match="needs the point x"):
        logdet(torch.tanh)
    with pytest.raises(UnsupportedOperationError, match="exact"):
        logdet(torch.tanh, x.clone().requires_grad_(), method="slq")
    with pytest.raises(JacobianTooLarge):
        logdet(torch.tanh, x, method="exact", memory_budget=16)


def test_top_level_exports() -> None:
    assert jacobite.logdet is logdet and jacobite.LogDet is LogDet
    assert "logdet" in jacobite.__all__ and "LogDet" in jacobite.analysis.__all__


def test_slq_is_exact_where_the_krylov_space_closes_early() -> None:
    # J = diag(2, 2, 0.5, 0.5, 0.5) per sample: every probe's Krylov space has dimension 2,
    # so the later Lanczos steps of each lane must add nothing
    d = torch.tensor([2.0, 2.0, 0.5, 0.5, 0.5], dtype=F64)
    x = torch.randn(3, 5, generator=_gen(0), dtype=F64)
    r = logdet(lambda z: z * d, x, method="slq", nprobe=6)
    assert r.stderr is not None
    want = torch.full((3,), float(torch.log(d).sum()), dtype=F64)
    torch.testing.assert_close(r.value, want, rtol=0, atol=1e-12)
    torch.testing.assert_close(r.stderr, torch.zeros(3, dtype=F64), rtol=0, atol=1e-12)


def test_slq_without_a_forward_mode_rule() -> None:
    x = torch.randn(2, 4, generator=_gen(5), dtype=F64)
    r = logdet(PlusCube.apply, x, method="slq", nprobe=4)
    torch.testing.assert_close(r.value, torch.log1p(x * x).sum(1), rtol=0, atol=1e-10)


def test_exact_without_a_vmap_rule_uses_whole_batch_vjps() -> None:
    x = torch.randn(3, 4, generator=_gen(6), dtype=F64).requires_grad_()
    r = logdet(PlusCube.apply, x, method="exact")
    want = torch.log1p(x * x).sum(1)
    torch.testing.assert_close(r.value, want, rtol=0, atol=1e-12)
    g, g_ref = (torch.autograd.grad(v.sum(), x)[0] for v in (r.value, want))
    torch.testing.assert_close(g, g_ref, rtol=1e-12, atol=1e-12)
    with pytest.raises(JacobianTooLarge, match="memory_budget"):
        logdet(PlusCube.apply, x.detach(), method="exact", memory_budget=100)


@pytest.mark.parametrize("method", ["hutchinson", "hutch++", "slq"])
def test_the_budget_splits_the_batch_without_changing_the_estimate(method: LogDetMethod,
                                                                   ) -> None:
    f, x = _residual(4, 3), torch.randn(5, 4, generator=_gen(3), dtype=F64)
    whole = logdet(f, x, method=method, nprobe=6, terms=10, steps=4)
    per_sample = 8 * 6 * 4 * 14
    for budget in (per_sample, 2 * per_sample + 1):  # chunks of 1 and of 2 samples
        part = logdet(f, x, method=method, nprobe=6, terms=10, steps=4, memory_budget=budget)
        assert part.stderr is not None and whole.stderr is not None
        torch.testing.assert_close(part.value, whole.value, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(part.stderr, whole.stderr, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", ["exact", "hutchinson", "slq"])
def test_batchnorm_in_training_mode_is_refused(method: LogDetMethod) -> None:
    net = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3)).double()
    x = torch.randn(4, 3, dtype=F64)
    with pytest.raises(ModuleStateError, match=r"eval\(\)"):
        logdet(net, x, method=method)
    r = logdet(net.eval(), x, method="exact")
    torch.testing.assert_close(r.value, _reference(net, x)[1])


def test_exact_whole_batch_rows_in_chunks_match_per_sample_jacobians() -> None:
    g = _gen(8)
    W1, W2 = torch.randn(5, 6, generator=g, dtype=F64), torch.randn(6, 5, generator=g, dtype=F64)

    def f(z: torch.Tensor) -> torch.Tensor:
        return z + 0.3 * torch.tanh(z @ W1.T) @ W2.T

    x = torch.randn(3, 6, generator=_gen(9), dtype=F64)
    J = torch.func.vmap(torch.func.jacrev(lambda v: f(v.unsqueeze(0))[0]))(x)
    sign, want = torch.linalg.slogdet(J)
    for budget in (4 * 3 * 6 * 8 * 2, None):  # two basis rows per chunk, then one chunk
        r = logdet(f, x, method="exact", memory_budget=budget)
        torch.testing.assert_close(r.value, want, rtol=0, atol=1e-12)
        torch.testing.assert_close(r.sign, sign)
