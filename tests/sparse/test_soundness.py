"""Sparse soundness where f hides derivatives from its own operations.

Custom autograd Functions, values read into Python, ``torch.no_grad`` regions, ops without a
forward-mode derivative and in-place writes through views: the pattern never misses a nonzero of
the dense Jacobian (``torch.autograd.functional.jacobian``, reverse mode, the oracle), every mode
gives that Jacobian or a typed error naming ``mode="reverse"``, and a local plan warns wherever it
is used away from its preparation point.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import jacobite
import jacobite.sparse as js
from jacobite.errors import JacobiteWarning, LocalPatternWarning, UnsupportedOperationError

DT = torch.float64


def dense(f, x: torch.Tensor) -> torch.Tensor:
    """The oracle: reverse-mode dense Jacobian, (m, n)."""
    return torch.autograd.functional.jacobian(lambda v: f(v).reshape(-1), x).reshape(-1, x.numel())


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", JacobiteWarning)
        return fn(*args, **kwargs)


class RoundSTE(torch.autograd.Function):
    """Straight-through rounding: forward rounds, backward passes the gradient unchanged."""

    @staticmethod
    def forward(ctx, v):
        return v.round()

    @staticmethod
    def backward(ctx, g):
        return g


class NumpySin(torch.autograd.Function):
    """sin computed in NumPy; its derivative from backward."""

    @staticmethod
    def forward(ctx, v):
        ctx.save_for_backward(v)
        return torch.from_numpy(np.sin(v.detach().numpy()))

    @staticmethod
    def backward(ctx, g):
        (v,) = ctx.saved_tensors
        return g * torch.cos(v)


X = torch.tensor([0.3, -1.2, 0.7, 2.1, -0.4], dtype=DT)


# ---- custom autograd Functions -----------------------------------------------------------
def test_straight_through_function_is_not_zero() -> None:
    f = lambda v: RoundSTE.apply(v)  # noqa: E731
    with pytest.warns(JacobiteWarning, match="RoundSTE.*pattern="):
        J = jacobite.jacobian(f, X, sparse=True).to_dense()
    torch.testing.assert_close(J, dense(f, X))
    assert torch.equal(J, torch.eye(5, dtype=DT))


def test_numpy_function_pattern_holds_its_derivative() -> None:
    f = lambda v: NumpySin.apply(v) * 2.0  # noqa: E731
    p = quiet(js.detect, f, X)
    assert p.custom_functions == ("NumpySin",) and not p.local
    assert p.to_scipy().toarray().all()  # conservative: every output on every input
    plan = quiet(js.prepare, f, X)
    y = torch.randn(5, dtype=DT)
    torch.testing.assert_close(plan.jacobian(y).to_dense(), torch.diag(2 * torch.cos(y)))


def test_custom_function_hessian_pattern_holds() -> None:
    f = lambda v: (NumpySin.apply(v) * v).sum()  # noqa: E731
    H = quiet(jacobite.hessian, f, X, sparse=True).to_dense()
    torch.testing.assert_close(H, torch.autograd.functional.hessian(f, X))


def test_hessian_forward_over_reverse_of_old_style_function_names_the_fix() -> None:
    f = lambda v: (NumpySin.apply(v) * v).sum()  # noqa: E731
    plan = quiet(js.prepare_hessian, f, X)  # timed: the vmapped strategy fails and is dropped
    assert not plan.vectorize
    with pytest.raises(UnsupportedOperationError, match="vectorize=False"):
        quiet(js.prepare_hessian, f, X, vectorize=True).jacobian(X)


# ---- values leaving torch ----------------------------------------------------------------
def _mask_tolist(v):
    return v * torch.tensor([1.0 if a > 0 else 0.0 for a in v.tolist()], dtype=v.dtype)


ESCAPES = {
    "tolist": _mask_tolist,
    "numpy": lambda v: v * torch.from_numpy((v.detach().numpy() > 0).astype(np.float64)),
    "asarray": lambda v: v * torch.as_tensor(np.asarray(v.detach()) > 0, dtype=v.dtype),
    "item": lambda v: v * 2 if v[0].item() > 0 else v * 3,
    "float": lambda v: v * 2 if float(v[1]) > 0 else v.sin(),
    "int": lambda v: v * int(v[3]),
    "bool": lambda v: v.exp() if bool(v[0] > 0) else v,
}


@pytest.mark.parametrize("name", sorted(ESCAPES))
def test_values_leaving_torch_make_the_pattern_local(name) -> None:
    f = ESCAPES[name]
    with pytest.warns(LocalPatternWarning, match="valid only near"):
        assert js.detect(f, X).local


def test_local_plan_warns_at_every_other_point() -> None:
    with pytest.warns(LocalPatternWarning):
        plan = js.prepare(_mask_tolist, X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LocalPatternWarning)
        J0 = plan.jacobian(X.clone()).to_dense()  # the preparation point: exact, no warning
    torch.testing.assert_close(J0, dense(_mask_tolist, X))
    for _ in range(2):  # every evaluation elsewhere warns, not only the first
        with pytest.warns(LocalPatternWarning, match="local"):
            plan.jacobian(-X)
    assert plan.local


def test_global_plan_never_warns() -> None:
    plan = js.prepare(torch.sin, X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LocalPatternWarning)
        torch.testing.assert_close(plan.jacobian(-X).to_dense(), torch.diag(torch.cos(-X)))


# ---- torch.no_grad and .detach(): one Jacobian in every mode -----------------------------
def _no_grad_scale(v):
    with torch.no_grad():
        s = v.sum()
    return v * s


def _no_grad_inplace(v):
    y = v * 2
    with torch.no_grad():
        y.mul_(3)  # autograd does not see it: d y / d v stays 2
    return y + v[0]


def _no_grad_view_inplace(v):
    y = v * v
    with torch.no_grad():
        y[1:].mul_(v[:-1])  # a view made with gradients off, written there: y's graph is unchanged
    return y


@pytest.mark.parametrize("f", [_no_grad_scale, _no_grad_inplace, _no_grad_view_inplace])
def test_no_grad_regions_are_constants_in_every_mode(f) -> None:
    ref = dense(f, X)
    p = js.detect(f, X)
    assert p.needs_reverse
    assert not (ref.numpy() != 0)[~p.to_scipy().toarray()].any()
    for mode in ("auto", "reverse"):
        J = jacobite.jacobian(f, X, sparse=True, mode=mode).to_dense()
        torch.testing.assert_close(J, ref)
    for mode in ("forward", "bidirectional"):
        with pytest.raises(UnsupportedOperationError, match="mode='reverse'"):
            jacobite.jacobian(f, X, sparse=True, mode=mode)
        with pytest.raises(UnsupportedOperationError, match="mode='reverse'"):
            js.prepare(f, X, mode=mode, pattern=np.ones((5, 5)))


def test_no_grad_regions_are_constants_in_hessians() -> None:
    def h(v):
        with torch.no_grad():
            s = v.sum()
        return (v ** 3 * s).sum() + (v[1:] * v[:-1]).sum()

    ref = torch.autograd.functional.hessian(h, X)
    torch.testing.assert_close(jacobite.hessian(h, X, sparse=True).to_dense(), ref)
    for pattern in (None, np.ones((5, 5))):
        plan = js.prepare_hessian(h, X, pattern=pattern)
        assert not plan.vectorize
        torch.testing.assert_close(plan.jacobian(-X).to_dense(),
                                   torch.autograd.functional.hessian(h, -X))
        with pytest.raises(UnsupportedOperationError, match="vectorize=False"):
            js.prepare_hessian(h, X, pattern=pattern, vectorize=True)


@pytest.mark.parametrize("mode", ["auto", "forward", "reverse", "bidirectional"])
def test_detach_is_a_constant_in_every_mode(mode) -> None:
    f = lambda v: v * v.sum().detach() + v.detach()[[1, 2, 3, 4, 0]]  # noqa: E731
    J = jacobite.jacobian(f, X, sparse=True, mode=mode).to_dense()
    torch.testing.assert_close(J, dense(f, X))


# ---- ops without forward-mode AD --------------------------------------------------------
POINTS = torch.tensor([[0.0, 1.0], [2.0, -1.0], [0.5, 0.5]], dtype=DT)


def _cdist(v):
    return torch.cdist(v.reshape(-1, 2), POINTS).ravel()


def test_op_without_forward_ad_falls_back_to_reverse() -> None:
    x = torch.tensor([0.3, -1.2, 0.7, 2.1], dtype=DT)
    J = quiet(jacobite.jacobian, _cdist, x, sparse=True).to_dense()
    torch.testing.assert_close(J, dense(_cdist, x))
    for mode in ("auto", "reverse"):
        plan = quiet(js.prepare, _cdist, x, mode=mode, vectorize=False)
        assert plan.mode == "reverse"
        torch.testing.assert_close(plan.jacobian(-x).to_dense(), dense(_cdist, -x))
    for mode in ("forward", "bidirectional"):
        with pytest.raises(UnsupportedOperationError, match="mode='reverse'"):
            quiet(jacobite.jacobian, _cdist, x, sparse=True, mode=mode)


def test_timed_strategies_keep_only_values_the_engine_confirms() -> None:
    """torch batches cdist's backward wrongly under vmap; the timed choice drops that."""
    x = torch.tensor([0.3, -1.2, 0.7, 2.1], dtype=DT)
    for mode in ("auto", "reverse"):
        plan = quiet(js.prepare, _cdist, x, mode=mode, vectorize="auto")
        assert not plan.vectorize
        torch.testing.assert_close(plan.jacobian(-x).to_dense(), dense(_cdist, -x))


# ---- in-place writes through views -------------------------------------------------------
def _inplace_views(v):
    y = v.clone()
    y[1:] += v[:-1]
    y.view(-1)[0] *= 2
    y[::2][:2].mul_(y[1::2].exp())
    return y


def test_inplace_writes_through_views_keep_every_nonzero() -> None:
    p = js.detect(_inplace_views, X)
    for pt in (X, -X, torch.randn(5, dtype=DT)):
        nz = dense(_inplace_views, pt).numpy() != 0
        assert not (nz & ~p.to_scipy().toarray()).any()
        J = jacobite.jacobian(_inplace_views, pt, sparse=True).to_dense()
        torch.testing.assert_close(J, dense(_inplace_views, pt))
