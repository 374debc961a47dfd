"""The sparsity-rule registry: lookup order, registration, and rule failures that surface."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

import jacobite
import jacobite.sparse as js
from jacobite.errors import JacobiteWarning, UnsupportedOperationError
from jacobite.sparse import _registry
from jacobite.sparse._registry import RULES, Call, lookup, rule

aten = torch.ops.aten


@pytest.fixture(autouse=True)
def _private_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test edits a copy of the registry; the shared one is restored afterwards."""
    monkeypatch.setattr(_registry, "RULES", dict(RULES))


def _registered() -> dict:
    return _registry.RULES


def _dense_nonzeros(f, x: torch.Tensor) -> np.ndarray:
    j = torch.func.jacrev(lambda v: f(v).reshape(-1))(x).reshape(-1, x.numel())
    return (j.abs() > 0).numpy()


def _hessian_nonzeros(f, x: torch.Tensor) -> np.ndarray:
    return (torch.func.hessian(f)(x).reshape(x.numel(), -1).abs() > 0).numpy()


# ---- lookup and registration -----------------------------------------------------------------
def test_lookup_prefers_overload_then_packet_then_tag() -> None:
    assert lookup(aten.max.other).__name__ == "pointwise_rule"  # overload beats packet
    assert lookup(aten.max.dim).__name__ == "reduce_rule"  # packet
    assert lookup(aten.mul.Tensor).__name__ == "mul_rule"  # packet beats the pointwise tag
    assert lookup(aten.cos.default).__name__ == "pointwise_rule"  # tag
    assert lookup(aten._fft_r2c.default) is None  # nothing: the dense fallback


def test_every_registered_value_is_a_documented_function() -> None:
    for key, fn in _registered().items():
        assert callable(fn) and fn.__doc__, key


def test_registering_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="already has"):
        rule(aten.max.other)(lambda c: None)


def test_a_new_rule_is_one_decorated_function() -> None:
    f = lambda v: torch.fft.rfft(v).abs()  # noqa: E731 - no rule for the FFT by default
    x = torch.rand(5, dtype=torch.float64)
    with pytest.warns(JacobiteWarning, match="no sparsity rule for _fft_r2c"):
        assert js.detect(f, x).fallback_ops == ("_fft_r2c",)

    @rule(aten._fft_r2c.default)
    def fft_rule(c: Call) -> list:
        """Every output frequency sees every input: one dense block."""
        return [_dense_rows(c.deps(c.args[0]), c.outs[0].numel())]

    with warnings.catch_warnings():
        warnings.simplefilter("error", JacobiteWarning)
        p = js.detect(f, x)
    assert p.fallback_ops == () and p.nnz == 15


def _dense_rows(d: sp.csr_matrix, rows: int) -> sp.csr_matrix:
    every = np.asarray(d.sum(axis=0) > 0)
    return sp.csr_matrix(np.repeat(every, rows, axis=0))


# ---- a rule's own failure is a bug, not a missing rule ---------------------------------------
def _broken(c: Call) -> list:
    """A rule with a bug in it."""
    raise ZeroDivisionError("deliberate")


@pytest.mark.parametrize("entry", ["detect", "detect_hessian", "prepare", "jacobian"])
def test_a_failing_rule_surfaces_typed_and_chained(entry: str) -> None:
    _registered()[aten.sin.default] = _broken
    x = torch.rand(4, dtype=torch.float64)
    f = lambda v: torch.sin(v).sum() if entry == "detect_hessian" else torch.sin(v)  # noqa: E731
    call = {"detect": lambda: js.detect(f, x), "detect_hessian": lambda: js.detect_hessian(f, x),
            "prepare": lambda: js.prepare(f, x),
            "jacobian": lambda: jacobite.jacobian(f, x, sparse=True)}[entry]
    with warnings.catch_warnings():
        warnings.simplefilter("error", JacobiteWarning)  # no dense fallback warning either
        with pytest.raises(UnsupportedOperationError, match=r"_broken failed on aten\.sin") as ei:
            call()
    assert isinstance(ei.value.__cause__, ZeroDivisionError)
    assert "pattern=" in str(ei.value)


def test_a_rule_returning_the_wrong_number_of_matrices_surfaces() -> None:
    _registered()[aten.sin.default] = lambda c: []
    with pytest.raises(UnsupportedOperationError, match="0 dependency matrices for 1 outputs"):
        js.detect(torch.sin, torch.rand(3))


def test_a_rule_that_declines_takes_the_dense_fallback() -> None:
    def declines(c: Call) -> None:
        """Handles nothing."""
        return None

    _registered()[aten.sin.default] = declines
    with pytest.warns(JacobiteWarning, match="no sparsity rule for sin"):
        p = js.detect(torch.sin, torch.rand(3))
    assert p.nnz == 9


def test_ceil_mode_pooling_declines_soundly() -> None:
    f = lambda v: F.max_pool2d(v.reshape(1, 1, 4, 6), 3, ceil_mode=True)  # noqa: E731
    x = torch.rand(24, dtype=torch.float64)
    with pytest.warns(JacobiteWarning, match="max_pool2d_with_indices"):
        p = js.detect(f, x)
    assert not (_dense_nonzeros(f, x) & ~p.to_scipy().toarray()).any()


# ---- rules for calls with uncommon arguments (reduce=, unfold, vdot) ------------------------
@pytest.mark.filterwarnings("ignore:The reduce argument of torch.scatter")
def test_scatter_with_reduce_keeps_every_dependency() -> None:
    idx = torch.tensor([[0], [2], [1], [5]])
    x = torch.rand(24, dtype=torch.float64)
    mult = lambda v: v.reshape(4, 6).scatter(1, idx, 2.0, reduce="multiply")  # noqa: E731
    p = js.detect(mult, x)
    np.testing.assert_array_equal(p.to_scipy().toarray(), np.eye(24, dtype=bool))
    add = lambda v: v.reshape(4, 6).scatter(1, idx, v[:4].reshape(4, 1), reduce="add")  # noqa: E731
    dense = js.detect(add, x).to_scipy().toarray()
    expect = np.eye(24, dtype=bool)
    for row, col in enumerate(idx.reshape(-1).tolist()):
        expect[row * 6 + col, row] = True  # out[row, col] += v[row]
    np.testing.assert_array_equal(dense, expect)


@pytest.mark.filterwarnings("ignore:There is a performance drop")  # torch.func.hessian's
@pytest.mark.parametrize(("size", "step"), [(3, 1), (4, 2), (2, 3)])
def test_unfold_backward_is_exact(size: int, step: int) -> None:
    # each window's product: the Hessian couples exactly the elements sharing a window
    f = lambda v: v[:9].unfold(0, size, step).prod(-1).sum() + v.pow(3).sum()  # noqa: E731
    x = torch.rand(12, dtype=torch.float64) + 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error", JacobiteWarning)
        p = js.detect_hessian(f, x)
    np.testing.assert_array_equal(p.to_scipy().toarray(), _hessian_nonzeros(f, x))


def test_vdot_has_a_rule() -> None:
    w = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)
    f = lambda v: torch.vdot(v, w).reshape(1)  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("error", JacobiteWarning)
        p = js.detect(f, torch.rand(3, dtype=torch.float64))
    assert p.to_scipy().toarray().tolist() == [[False, True, True]]


# ---- rules read constants on any device ------------------------------------------------------
def _device_program(dev: str):
    w = torch.tensor([[0.0, 1.0, 2.0], [3.0, 0.0, 0.0]], dtype=torch.float64, device=dev)
    k = torch.tensor([[[1.0, 0.0, 1.0]]], dtype=torch.float64, device=dev)
    idx = torch.tensor([0, 0, 2], device=dev)

    def f(v: torch.Tensor) -> torch.Tensor:
        a = v[:6].reshape(2, 3) * w  # the zeros of a constant factor
        b = w @ v[:3]  # of a constant matrix
        c = F.conv1d(v.reshape(1, 1, 6), k).reshape(-1)  # of a constant kernel
        d = v.index_select(0, idx)  # positions held on the device
        e = torch.zeros(3, dtype=v.dtype, device=v.device).scatter_add(0, idx, v[3:])
        g = torch.zeros(4, dtype=v.dtype, device=v.device).index_put(
            (idx,), v[:3], accumulate=True)
        return torch.cat([a.reshape(-1), b, c, d, e, g])

    return f


@pytest.mark.cuda
def test_constants_on_the_gpu_give_the_cpu_pattern() -> None:
    x = torch.rand(6, dtype=torch.float64)
    cpu = js.detect(_device_program("cpu"), x)
    with warnings.catch_warnings():
        warnings.simplefilter("error", JacobiteWarning)
        gpu = js.detect(_device_program("cuda"), x.cuda())
    assert (cpu.to_scipy() != gpu.to_scipy()).nnz == 0 and gpu.fallback_ops == ()


def test_device_program_pattern_is_exact_on_the_cpu() -> None:
    f, x = _device_program("cpu"), torch.rand(6, dtype=torch.float64) + 0.1
    with warnings.catch_warnings():
        warnings.simplefilter("error", JacobiteWarning)
        p = js.detect(f, x)
    np.testing.assert_array_equal(p.to_scipy().toarray(), _dense_nonzeros(f, x))
