"""Sparsity detection: soundness against torch.func.jacrev, exact patterns, warnings, errors."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import HealthCheck, given, settings

from jacobite.errors import ArgumentTypeError, DtypeError, JacobiteWarning
from jacobite.sparse.detect import Pattern, detect
from tests.problems import program_function, programs


@pytest.fixture(autouse=True, scope="module")
def _float64():
    """Double precision for this module only (jacrev's nonzeros are then exact enough)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _dense_nonzeros(f, x: torch.Tensor, points: int = 3, seed: int = 0) -> np.ndarray:
    """Union of |J| > 0 over several random points near x's shape."""
    g = torch.Generator().manual_seed(seed)
    acc = None
    for _ in range(points):
        xi = torch.randn(x.shape, generator=g, dtype=x.dtype)
        j = torch.func.jacrev(lambda v: f(v).reshape(-1))(xi).reshape(-1, x.numel())
        nz = (j.abs() > 0).numpy()
        acc = nz if acc is None else acc | nz
    return acc


def check_sound(f, x: torch.Tensor, points: int = 3) -> tuple[Pattern, int]:
    """Assert zero false negatives; return the pattern and the number of false positives."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", JacobiteWarning)
        p = detect(f, x)
    nz = _dense_nonzeros(f, x, points)
    pat = p.to_scipy().toarray()
    assert pat.shape == nz.shape
    missing = nz & ~pat
    assert not missing.any(), f"false negatives at {np.argwhere(missing)[:5].tolist()}"
    return p, int((pat & ~nz).sum())


def bratu_cat(u: torch.Tensor, lam: float = 1.0) -> torch.Tensor:
    n = u.numel()
    z = u.new_zeros(1)
    up = torch.cat([u[1:], z])
    um = torch.cat([z, u[:-1]])
    return (um - 2 * u + up) * (n + 1) ** 2 + lam * torch.exp(u)


def bratu_roll(u: torch.Tensor, lam: float = 1.0) -> torch.Tensor:
    n = u.numel()
    mask = torch.ones(n)
    mask[0] = 0.0
    up = torch.roll(u, -1) * torch.roll(mask, -1).flip(0).flip(0)
    um = torch.roll(u, 1) * mask
    last = torch.ones(n)
    last[-1] = 0.0
    return (um - 2 * u + up * last) * (n + 1) ** 2 + lam * torch.exp(u)


def _tridiag(n: int) -> np.ndarray:
    return (sp.diags([1.0, 1.0, 1.0], [-1, 0, 1], shape=(n, n)).toarray() != 0)


# ---- exact patterns ------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [torch.sin, torch.exp, torch.tanh, torch.sigmoid, torch.relu,
                                torch.abs, lambda v: v * v + 2.0 / (1 + v ** 2)])
def test_elementwise_is_diagonal(fn) -> None:
    p = detect(fn, torch.randn(7))
    assert (p.to_scipy().toarray() == np.eye(7, dtype=bool)).all()
    assert not p.local and p.fallback_ops == ()


@pytest.mark.parametrize("fn", [bratu_cat, bratu_roll])
def test_bratu_tridiagonal(fn) -> None:
    n = 9
    p, fp = check_sound(fn, torch.rand(n))
    assert (p.to_scipy().toarray() == _tridiag(n)).all()
    assert fp == 0


def test_laplacian_slicing() -> None:
    def lap(u):
        inner = u[:-2] - 2 * u[1:-1] + u[2:]
        return torch.cat([u[:1], inner, u[-1:]])

    p, _ = check_sound(lap, torch.rand(8))
    expect = _tridiag(8)
    expect[0, 1] = expect[-1, -2] = False
    assert (p.to_scipy().toarray() == expect).all()


def test_fixed_sparse_weight() -> None:
    w = torch.tensor([[1.0, 0.0, 0.0, 2.0], [0.0, 0.0, 3.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    p, fp = check_sound(lambda v: torch.tanh(w @ v), torch.rand(4))
    assert (p.to_scipy().toarray() == (w != 0).numpy()).all() and fp == 0
    p2, fp2 = check_sound(lambda v: torch.nn.functional.linear(v.reshape(2, 4), w), torch.rand(8))
    assert fp2 == 0 and p2.nnz == 6
    p3, fp3 = check_sound(lambda v: v.reshape(1, 4) @ w.T, torch.rand(4))
    assert fp3 == 0 and p3.nnz == 3


def test_both_operands_depend() -> None:
    p, _ = check_sound(lambda v: v.reshape(2, 2) @ v.reshape(2, 2), torch.rand(4))
    assert p.shape == (4, 4)
    p, fp = check_sound(lambda v: v.reshape(3, 2) @ torch.ones(2, 2), torch.rand(6))
    assert fp == 0 and p.nnz == 12


@pytest.mark.parametrize("fn", [
    lambda v: torch.zeros(3).scatter(0, torch.tensor([0, 0, 2]), v[:3]),
    lambda v: torch.zeros(3).index_put((torch.tensor([0, 1, 2]),), v[:3]),
    lambda v: torch.zeros(3, 2).index_copy(0, torch.tensor([0, 0]), v[:4].reshape(2, 2)),
])
def test_overwriting_scatters_keep_every_source(fn) -> None:
    p, fp = check_sound(fn, torch.rand(6))
    assert fp == 0 and not p.fallback_ops


def test_softmax_dense_block_and_sum_dense_row() -> None:
    p = detect(lambda v: torch.softmax(v.reshape(3, 4), dim=1), torch.rand(12))
    assert (p.to_scipy().toarray() == np.kron(np.eye(3), np.ones((4, 4))).astype(bool)).all()
    s = detect(lambda v: v.sum(), torch.rand(5))
    assert s.shape == (1, 5) and s.nnz == 5
    r = detect(lambda v: v.reshape(2, 3).sum(0), torch.rand(6))
    assert (r.to_scipy().toarray() == np.array([[1, 0, 0, 1, 0, 0], [0, 1, 0, 0, 1, 0],
                                                 [0, 0, 1, 0, 0, 1]], bool)).all()


def test_cumsum_is_lower_triangular() -> None:
    p, fp = check_sound(lambda v: torch.cumsum(v, 0), torch.rand(5))
    assert (p.to_scipy().toarray() == np.tri(5, dtype=bool)).all() and fp == 0


@pytest.mark.parametrize("fn", [
    lambda v: v.reshape(3, 4).t().reshape(-1),
    lambda v: v.reshape(3, 4)[:, 1:3] * 2,
    lambda v: torch.flip(v, [0]) + v,
    lambda v: torch.stack([v, v.exp()]),
    lambda v: v[torch.tensor([3, 1, 1])],
    lambda v: torch.gather(v.reshape(3, 4), 1, torch.tensor([[0, 0], [3, 1], [2, 2]])),
    lambda v: torch.index_select(v.reshape(3, 4), 0, torch.tensor([2, 0])),
    lambda v: torch.nn.functional.pad(v.reshape(3, 4), (1, 2)),
    lambda v: torch.where(v > 0, v.sin(), v.cos() * 3),
    lambda v: v.reshape(3, 4).unsqueeze(0).expand(2, 3, 4).squeeze(0),
    lambda v: torch.clamp(v, -0.5, 0.5) + v.detach(),
    lambda v: v.reshape(3, 4).amax(1) + v.reshape(3, 4).logsumexp(1),
    lambda v: torch.linalg.vector_norm(v.reshape(3, 4), dim=0),
    lambda v: torch.log_softmax(v.reshape(3, 4), 0).prod(),
    lambda v: torch.einsum("ij,jk->ik", v.reshape(3, 4), torch.eye(4)[:, :2]),
    lambda v: v.reshape(3, 4).mean(dim=(0, 1), keepdim=True) * v,
    lambda v: torch.sort(v)[0],
])
def test_sound_on_shape_and_reduction_ops(fn) -> None:
    p, _ = check_sound(fn, torch.rand(12))
    assert not p.fallback_ops, p.fallback_ops


def test_inplace_writes_through_views() -> None:
    def f(u):
        out = torch.zeros(u.numel())
        out[1:-1] = u[:-2] - 2 * u[1:-1] + u[2:]
        out[0] = u[0]
        return out

    p, fp = check_sound(f, torch.rand(6))
    assert fp == 0 and p.nnz == 3 * 4 + 1


_F = torch.nn.functional
_W2 = torch.randn(4, 2, 3, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
_W2[0, 0] = 0.0
_W2[1, :, 1, 1] = 0.0


@pytest.mark.parametrize("fn", [
    lambda v: _F.conv1d(v[:6].reshape(1, 1, 6), torch.tensor([[[1.0, -2.0, 1.0]]]), padding=1),
    lambda v: _F.conv1d(v[:6].reshape(2, 1, 3), torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]]),
                        bias=torch.ones(2)),
    lambda v: _F.conv1d(v[:6].reshape(1, 2, 3), torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]]),
                        groups=2),
    lambda v: _F.conv2d(v.reshape(1, 4, 3, 3)[:, :2], _W2, padding=1, stride=2),
    lambda v: _F.conv2d(v.reshape(1, 4, 3, 3), _W2[:, :1], groups=4, padding=1),
    lambda v: _F.conv2d(v.reshape(1, 1, 6, 6), v.reshape(1, 1, 6, 6)[:, :, :2, :2], bias=v[:1],
                        dilation=2),
    lambda v: _F.conv1d(v.reshape(1, 1, 36), torch.tensor([[[1.0, -2.0, 1.0]]]), padding="same"),
    lambda v: torch.zeros(3).scatter_add(0, torch.tensor([0, 2, 0, 1]), v[:4]),
    lambda v: v[:3].index_add(0, torch.tensor([2, 2]), v[4:6]),
    lambda v: v[:6].reshape(2, 3).scatter_add(1, torch.tensor([[0, 0], [2, 1]]),
                                              v[:4].reshape(2, 2)),
    lambda v: torch.zeros(4).scatter(0, torch.tensor([3, 1]), v[:2]),
    lambda v: _F.pad(v.reshape(4, 9), (2, 1), mode="reflect"),
    lambda v: _F.pad(v.reshape(1, 4, 9), (1, 1), mode="circular"),
    lambda v: _F.pad(v.reshape(1, 4, 9), (1, 2), mode="replicate"),
])
def test_conv_scatter_pad_exact(fn) -> None:
    p, fp = check_sound(fn, torch.rand(36))
    assert fp == 0 and not p.fallback_ops and not p.local


@pytest.mark.parametrize("fn", [
    lambda v: _F.layer_norm(v.reshape(4, 9), (9,)),
    lambda v: _F.layer_norm(v.reshape(4, 9), (9,), weight=v[:9], bias=torch.ones(9)),
    lambda v: _F.avg_pool1d(v.reshape(1, 2, 18), 2),
    lambda v: _F.max_pool1d(v.reshape(1, 1, 36), 3, 2, padding=1),
    lambda v: _F.avg_pool2d(v.reshape(4, 3, 3), 2, 1, padding=1),
    lambda v: _F.max_pool2d(v.reshape(1, 4, 3, 3), 2, 1, padding=1),
])
def test_pool_and_layer_norm_sound_without_fallback(fn) -> None:
    p, _ = check_sound(fn, torch.rand(36))
    assert not p.fallback_ops and not p.local


def test_conv_exploits_kernel_zeros() -> None:
    k = torch.tensor([[[1.0, 0.0, 1.0]]])
    p = detect(lambda v: _F.conv1d(v.reshape(1, 1, 5), k), torch.rand(5))
    assert p.to_scipy().toarray().astype(int).tolist() == [[1, 0, 1, 0, 0], [0, 1, 0, 1, 0],
                                                           [0, 0, 1, 0, 1]]


def brusselator(y: torch.Tensor, size: int = 6) -> torch.Tensor:
    u, v = y.reshape(2, size, size)

    def lap(a):
        return (torch.roll(a, 1, 0) + torch.roll(a, -1, 0) + torch.roll(a, 1, 1)
                + torch.roll(a, -1, 1) - 4 * a) * size ** 2

    fu = 1.0 + u * u * v - 4.4 * u + 10.0 * lap(u)
    fv = 3.4 * u - u * u * v + 10.0 * lap(v)
    return torch.stack([fu, fv]).reshape(-1)


def test_brusselator_pattern() -> None:
    p, fp = check_sound(brusselator, torch.rand(72))
    assert fp == 0
    rows = np.diff(p.to_scipy().indptr)
    assert rows.max() == 6 and p.nnz == 36 * 6 + 36 * 6


def test_matrix_input_and_pytree_output() -> None:
    def f(m):
        return {"rows": m.sum(1), "diag": torch.diagonal(m[:, :3]) ** 2}

    x = torch.rand(3, 4)
    p = detect(f, x)
    j = torch.func.jacrev(lambda v: torch.cat([t.reshape(-1) for t in
                                               torch.utils._pytree.tree_flatten(f(v))[0]]))(x)
    nz = (j.reshape(p.shape[0], -1).abs() > 0).numpy()
    assert p.shape == (6, 12) and (p.to_scipy().toarray() == nz).all()


def test_inplace_ops_on_views_of_constants() -> None:
    def f(u):
        buf = torch.zeros(2, 4)
        buf[0].add_(u)
        buf[:, 1] *= 0.0
        buf.t()[2].mul_(u[0])
        return buf

    p, fp = check_sound(f, torch.rand(4))
    assert fp == 1  # buf[1, 2] = 0 * u[0]: structurally present, numerically zero
    assert p.to_scipy()[[1, 5]].nnz == 0  # buf[:, 1] was zeroed


def test_inplace_mul_of_constant_by_zero_valued_input() -> None:
    def f(u):
        c = torch.ones(3)
        c.mul_(u)  # c now holds u's values, zeros included; they must not prune deps
        return c

    p = detect(f, torch.tensor([0.0, 1.0, 0.0]))
    assert (p.to_scipy().toarray() == np.eye(3, dtype=bool)).all()


def test_integer_constants_written_into_float_tensors() -> None:
    def f(u):
        buf = u * 1.0
        buf[1:3] = torch.tensor([7, 8])
        return torch.cat([buf, torch.tensor([1, 2])])

    p, fp = check_sound(f, torch.rand(4))
    assert fp == 0 and not p.fallback_ops and p.nnz == 2


# ---- fallback, local, errors ---------------------------------------------------------------
def test_fallback_warns_and_is_conservative() -> None:
    f = lambda v: torch.fft.fft(v).real  # noqa: E731 - no rule for fft
    with pytest.warns(JacobiteWarning, match="no sparsity rule"):
        p = detect(f, torch.rand(5))
    assert p.fallback_ops and p.nnz == 25
    check_sound(f, torch.rand(5))


def test_item_marks_local() -> None:
    def f(v):
        return v * 2 if v.sum().item() > 0 else v

    with pytest.warns(JacobiteWarning, match="valid only near"):
        p = detect(f, torch.rand(4))
    assert p.local and not p.fallback_ops


def test_value_dependent_index_marks_local() -> None:
    with pytest.warns(JacobiteWarning, match="indices depend"):
        p = detect(lambda v: v[v.argsort()], torch.rand(4))
    assert p.local
    with pytest.warns(JacobiteWarning, match="valid only near"):
        assert detect(lambda v: v[v.argmax()].reshape(1), torch.rand(4)).local
    with pytest.warns(JacobiteWarning, match="valid only near"):
        assert detect(lambda v: v[v.detach() > 0.5], torch.rand(6)).local


@pytest.mark.parametrize("fn", [
    lambda v: v[torch.nonzero(v > 0.5).squeeze(1)],
    lambda v: torch.masked_select(v, v > 0.5),
    lambda v: v * 2 if bool(v.sum() > 0) else v,
])
def test_data_dependent_shapes_and_branches_mark_local(fn) -> None:
    with pytest.warns(JacobiteWarning, match="valid only near"):
        assert detect(fn, torch.rand(6)).local


def test_integer_results_reshaped_are_not_value_indexing() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", JacobiteWarning)
        p = detect(lambda v: v * v.argsort().reshape(2, 2).t().reshape(-1), torch.rand(4))
    assert not p.local


@pytest.mark.parametrize("accumulate", [False, True])
def test_index_put_with_duplicates_is_exact(accumulate) -> None:
    def f(v):
        base = v[3:] * 2.0
        return base.index_put((torch.tensor([0, 0, 2]),), v[:3], accumulate=accumulate)

    p, fp = check_sound(f, torch.rand(6))
    assert fp == 0 and not p.fallback_ops
    mask = torch.tensor([[True, False], [False, True], [True, True]])
    p2, fp2 = check_sound(lambda v: v[:6].reshape(3, 2).index_put((mask,), v[6:]), torch.rand(10))
    assert fp2 == 0 and not p2.fallback_ops


def test_constant_function_has_empty_pattern() -> None:
    p = detect(lambda v: torch.ones(3), torch.rand(4))
    assert p.shape == (3, 4) and p.nnz == 0


def test_bad_input() -> None:
    with pytest.raises(ArgumentTypeError, match=r"torch\.as_tensor"):
        detect(torch.sin, [1.0, 2.0])  # type: ignore[arg-type]
    with pytest.raises(DtypeError):
        detect(torch.sin, torch.arange(3))


def test_bratu_speed() -> None:
    x = torch.rand(100_000)
    detect(bratu_cat, torch.rand(10))
    t = time.perf_counter()
    p = detect(bratu_cat, x)
    elapsed = time.perf_counter() - t
    assert p.nnz == 3 * 100_000 - 2
    assert elapsed < 1.0  # target 0.1 s; loose here for slow CI machines


# ---- fuzzer --------------------------------------------------------------------------------
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_fuzz_random_programs_are_sound(program) -> None:
    p, _ = check_sound(program_function(program), torch.rand(12), points=2)
    assert not p.fallback_ops, p.fallback_ops


def test_masked_fill_with_a_value_dependent_mask_keeps_every_element() -> None:
    """At another x, the mask (computed from x) may keep any element: all stay dependent."""
    f = lambda a: a.masked_fill(a > 0.5, 0.0) + a[0]  # noqa: E731
    p = detect(f, torch.tensor([0.1, 0.9, 0.2]))
    assert not p.local
    expect = np.eye(3, dtype=bool)
    expect[:, 0] = True
    np.testing.assert_array_equal(p.to_scipy().toarray(), expect)


# ---- the shared battery: sound on every one-tensor case; false positives counted -----------
def _battery_single():
    from tests.battery import CASES

    return [c for c in CASES if "tensor_in" in c.kinds and "batched" not in c.kinds
            and isinstance(c.argnums, int)]


@pytest.mark.parametrize("case", _battery_single(), ids=lambda c: c.name)
def test_battery_patterns_are_sound(case, record_property) -> None:
    args = case.args()
    pos = case.argnums

    def f(u):
        out = case.fn(*args[:pos], u, *args[pos + 1:])
        leaves = torch.utils._pytree.tree_flatten(out)[0]
        return torch.cat([t.reshape(-1) for t in leaves])

    p, false_pos = check_sound(f, args[pos].detach())
    record_property("false_positives", false_pos)  # reported in the junit XML
    record_property("pattern_nnz", p.nnz)
