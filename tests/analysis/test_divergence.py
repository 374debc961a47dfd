"""jacobite.divergence: tr J_f per sample against the trace of torch.func.jacrev."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

import jacobite
from jacobite.analysis import Divergence, divergence
from jacobite.errors import (
    ArgumentTypeError,
    DtypeError,
    InvalidOptionError,
    NotSquareError,
    ShapeError,
    UnsupportedOperationError,
)
from tests.dense._functions import ReadingCube

F64 = torch.float64
Field = Callable[[torch.Tensor], torch.Tensor]
ESTIMATORS = ("hutchinson", "hutch++", "xtrace")


def _field(D: int, seed: int, hidden: int = 5) -> Field:
    """A tanh MLP field plus a quadratic term, maps (B, D) → (B, D) sample by sample."""
    g = torch.Generator().manual_seed(seed)
    W1 = torch.randn(hidden, D, generator=g, dtype=F64)
    b = torch.randn(hidden, generator=g, dtype=F64)
    W2 = torch.randn(D, hidden, generator=g, dtype=F64)
    a = torch.randn(D, generator=g, dtype=F64)
    return lambda x: torch.tanh(x @ W1.T + b) @ W2.T + a * x ** 2


def _reference(f: Field, x: torch.Tensor) -> torch.Tensor:
    """The trace of each sample's Jacobian by torch.func.jacrev on one point at a time."""
    one = lambda v: f(v.unsqueeze(0)).squeeze(0)  # noqa: E731
    return torch.stack([torch.trace(torch.func.jacrev(one)(xi)) for xi in x])


def _low_rank_field(D: int = 48, rank: int = 6) -> Field:
    """A CNF-like field: a narrow tanh MLP (Jacobian rank ≤ ``rank``) plus a small dense part."""
    g = torch.Generator().manual_seed(3)
    W1 = torch.randn(rank, D, generator=g, dtype=F64) / D ** 0.5
    W2 = torch.randn(D, rank, generator=g, dtype=F64)
    small = 0.05 * torch.randn(D, D, generator=g, dtype=F64) / D ** 0.5
    return lambda x: torch.tanh(x @ W1.T) @ W2.T + torch.tanh(x) @ small.T


@settings(max_examples=25, deadline=None)
@given(D=st.integers(1, 7), B=st.integers(1, 4), seed=st.integers(0, 2**16),
       mode=st.sampled_from(["auto", "forward", "reverse"]))
@example(D=2, B=1, seed=0, mode="forward")  # one sample: the repeated batch overlaps in memory
def test_exact_matches_the_trace_of_jacrev(D: int, B: int, seed: int, mode: str) -> None:
    f = _field(D, seed)
    x = torch.randn(B, D, generator=torch.Generator().manual_seed(seed + 1), dtype=F64)
    d = divergence(f, x, jac_mode=mode)  # type: ignore[arg-type]
    assert isinstance(d, Divergence)
    assert d.method == "exact" and d.stderr is None and d.nprobe is None
    torch.testing.assert_close(d.value, _reference(f, x), rtol=1e-12, atol=1e-12)


def test_exact_is_the_same_in_chunks_under_a_small_memory_budget() -> None:
    f, x = _field(9, 0), torch.randn(5, 9, dtype=F64)
    with jacobite.config.memory_budget(1):
        small = divergence(f, x).value
    torch.testing.assert_close(small, _reference(f, x), rtol=1e-12, atol=1e-12)


def test_a_module_is_measured_once_for_its_chunk_size() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 4))
    calls = []
    net.register_forward_hook(lambda *_: calls.append(1))
    x = torch.randn(3, 4)
    first = divergence(net, x).value
    assert len(calls) == 2  # the one-sample measuring pass, then the batch
    torch.testing.assert_close(divergence(net, x).value, first)
    assert len(calls) == 3


def test_batch_false_takes_one_point() -> None:
    f = _field(4, 1)
    one = lambda v: f(v.unsqueeze(0)).squeeze(0)  # noqa: E731
    x = torch.randn(4, dtype=F64)
    for method in ("exact", *ESTIMATORS):
        for mode in ("forward", "reverse"):
            d = divergence(one, x, batch=False, method=method,  # type: ignore[arg-type]
                           nprobe=8, jac_mode=mode)
            assert d.value.shape == ()
            if method == "exact":
                torch.testing.assert_close(d.value, _reference(f, x[None])[0])
            else:
                assert d.stderr is not None and d.stderr.shape == ()


def test_gradient_in_x_matches_the_nested_reference() -> None:
    f = _field(5, 2)
    x = torch.randn(3, 5, dtype=F64, requires_grad=True)
    (g,) = torch.autograd.grad(divergence(f, x).value.sum(), x)
    one = lambda v: f(v.unsqueeze(0)).squeeze(0)  # noqa: E731
    ref = torch.func.vmap(torch.func.grad(lambda v: torch.trace(torch.func.jacrev(one)(v))))(
        x.detach())
    torch.testing.assert_close(g, ref, rtol=1e-10, atol=1e-12)
    # and under torch.func.grad
    fg = torch.func.grad(lambda v: divergence(f, v, jac_mode="reverse").value.sum())(x.detach())
    torch.testing.assert_close(fg, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_second_derivative_in_x_matches_the_nested_reference(mode: str) -> None:
    f = _field(4, 9)
    x = torch.randn(2, 4, dtype=F64, requires_grad=True)
    div = divergence(f, x, jac_mode=mode).value.sum()  # type: ignore[arg-type]
    (g,) = torch.autograd.grad(div, x, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), x)
    one = lambda v: f(v.unsqueeze(0)).squeeze(0)  # noqa: E731
    tr = lambda v: torch.trace(torch.func.jacrev(one)(v))  # noqa: E731
    ref = torch.stack([torch.func.grad(lambda v: torch.func.grad(tr)(v).sum())(xi)
                       for xi in x.detach()])
    torch.testing.assert_close(h, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_gradient_in_module_parameters_matches_the_nested_reference(mode: str) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 4))
    net = net.double()
    x = torch.randn(3, 4, dtype=F64)
    loss = divergence(net, x, jac_mode=mode).value.pow(2).sum()  # type: ignore[arg-type]
    grads = torch.autograd.grad(loss, list(net.parameters()), allow_unused=True,
                                materialize_grads=True)  # the last bias leaves tr J alone
    params = {k: v.detach() for k, v in net.named_parameters()}

    def ref_loss(p: dict[str, torch.Tensor]) -> torch.Tensor:
        one = lambda v: torch.func.functional_call(net, p, (v,))  # noqa: E731
        traces = torch.stack([torch.trace(torch.func.jacrev(one)(xi)) for xi in x])
        return traces.pow(2).sum()

    ref = torch.func.grad(ref_loss)(params)
    for (name, _), g in zip(net.named_parameters(), grads, strict=True):
        torch.testing.assert_close(g, ref[name], rtol=1e-10, atol=1e-12)


def test_estimator_gradient_with_fixed_probes_is_the_estimate_s_gradient() -> None:
    f = _field(6, 4)
    x = torch.randn(2, 6, dtype=F64, requires_grad=True)
    d = divergence(f, x, method="hutchinson", nprobe=6, seed=3)
    (g,) = torch.autograd.grad(d.value.sum(), x)
    eps = 1e-6
    dx = torch.zeros_like(x)
    dx[0, 2] = eps
    plus = divergence(f, (x + dx).detach(), method="hutchinson", nprobe=6, seed=3).value.sum()
    minus = divergence(f, (x - dx).detach(), method="hutchinson", nprobe=6, seed=3).value.sum()
    assert abs(float(g[0, 2]) - float(plus - minus) / (2 * eps)) < 1e-6


@pytest.mark.parametrize("method", ESTIMATORS)
def test_estimators_are_unbiased_and_their_stderr_is_calibrated(method: str) -> None:
    f = _field(8, 5, hidden=8)
    x = torch.randn(2, 8, dtype=F64, generator=torch.Generator().manual_seed(0))
    exact = divergence(f, x).value
    runs = [divergence(f, x, method=method, nprobe=8, seed=s) for s in range(300)]  # type: ignore[arg-type]
    vals = torch.stack([r.value for r in runs])
    errs = torch.stack([r.stderr for r in runs if r.stderr is not None])
    spread = vals.std(0)
    # the mean of 300 independent estimates lies within a few of its standard errors
    assert ((vals.mean(0) - exact).abs() <= 4 * spread / 300 ** 0.5 + 1e-12).all()
    # the reported stderr matches the spread over seeds within a factor of two
    ratio = errs.pow(2).mean(0).sqrt() / spread
    assert ((ratio > 0.5) & (ratio < 2.0)).all(), ratio


def test_hutch_pp_and_xtrace_beat_hutchinson_at_equal_products_on_a_low_rank_field() -> None:
    f = _low_rank_field()
    x = torch.randn(3, 48, dtype=F64, generator=torch.Generator().manual_seed(1))
    var = {}
    with torch.no_grad():
        for method in ESTIMATORS:
            runs = [divergence(f, x, method=method, nprobe=24, seed=s)  # type: ignore[arg-type]
                    for s in range(100)]
            assert all(r.nprobe == 24 for r in runs)
            var[method] = torch.stack([r.value for r in runs]).var(0)
    assert (var["hutchinson"] > 3 * var["hutch++"]).all(), var
    assert (var["hutchinson"] > 3 * var["xtrace"]).all(), var


def test_hutch_pp_is_exact_when_the_sketch_holds_the_range() -> None:
    W = torch.randn(6, 2, dtype=F64) @ torch.randn(2, 6, dtype=F64)  # rank 2
    x = torch.randn(4, 6, dtype=F64)
    d = divergence(lambda v: v @ W.T, x, method="hutch++", nprobe=7, seed=0)
    torch.testing.assert_close(d.value, torch.trace(W).expand(4), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("method", ESTIMATORS)
def test_an_int_seed_draws_the_same_probes_and_none_follows_the_global_generator(
        method: str) -> None:
    f, x = _field(5, 6), torch.randn(3, 5, dtype=F64)
    a = divergence(f, x, method=method, nprobe=6, seed=7)  # type: ignore[arg-type]
    b = divergence(f, x, method=method, nprobe=6, seed=7)  # type: ignore[arg-type]
    assert torch.equal(a.value, b.value)
    torch.manual_seed(11)
    c = divergence(f, x, method=method, nprobe=6, seed=None)  # type: ignore[arg-type]
    torch.manual_seed(11)
    e = divergence(f, x, method=method, nprobe=6, seed=None)  # type: ignore[arg-type]
    assert torch.equal(c.value, e.value)


@pytest.mark.parametrize("method", ["exact", *ESTIMATORS])
@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_under_vmap_it_equals_a_loop(method: str, mode: str) -> None:
    f = _field(4, 8)
    X = torch.randn(3, 2, 4, dtype=F64)

    def div(xb: torch.Tensor) -> torch.Tensor:
        return divergence(f, xb, method=method, nprobe=4, jac_mode=mode).value  # type: ignore[arg-type]

    # an int seed draws the same probes in every call, so randomness="same" is a loop's
    looped = torch.stack([div(xb) for xb in X])
    torch.testing.assert_close(torch.func.vmap(div, randomness="same")(X), looped)


def test_reverse_mode_loops_where_the_backward_pass_does_not_batch() -> None:
    x = torch.randn(3, 4, dtype=F64)
    d = divergence(lambda v: ReadingCube.apply(v), x, jac_mode="reverse")
    torch.testing.assert_close(d.value, (3 * x ** 2).sum(1))


class _OldStyle(torch.autograd.Function):
    """x³ written the old way: forward takes ctx (torch.func cannot run it)."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors  # type: ignore[attr-defined]
        return 3 * x ** 2 * grad


def test_an_old_style_autograd_function_raises_a_typed_error_naming_setup_context() -> None:
    with pytest.raises(UnsupportedOperationError, match="setup_context"):
        divergence(lambda v: _OldStyle.apply(v), torch.randn(2, 3))


def test_dtype_and_top_level_export() -> None:
    x = torch.randn(2, 3)
    d = jacobite.divergence(torch.sin, x)
    assert d.value.dtype == torch.float32
    torch.testing.assert_close(d.value, torch.cos(x).sum(1))


def test_bad_arguments_raise_typed_errors_that_name_the_fix() -> None:
    x = torch.randn(2, 3, dtype=F64)
    with pytest.raises(NotSquareError, match="same shape"):
        divergence(lambda v: v[:, :2], x)
    with pytest.raises(ShapeError, match="batch=False"):
        divergence(torch.sin, x[0])
    with pytest.raises(ShapeError, match="batch=True"):
        divergence(torch.sin, x, batch=False)
    with pytest.raises(ShapeError, match="at least one coordinate"):
        divergence(torch.sin, torch.ones(2, 0))
    with pytest.raises(InvalidOptionError, match="nprobe must be an int ≥ 4"):
        divergence(torch.sin, x, method="hutch++", nprobe=3)
    with pytest.raises(InvalidOptionError, match="one of"):
        divergence(torch.sin, x, method="lanczos")  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="callable"):
        divergence(3, x)  # type: ignore[arg-type]
    with pytest.raises(DtypeError, match="float"):
        divergence(torch.sin, torch.ones(2, 3, dtype=torch.int64))


def test_matches_zuko_s_exact_cnf_trace() -> None:
    zuko = pytest.importorskip("zuko")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(),
                              torch.nn.Linear(16, 3)).double()
    dt = 1e-3
    ffj = zuko.transforms.FreeFormJacobianTransform(
        lambda t, v: net(v), 0.0, dt, tuple(net.parameters()), atol=1e-12, rtol=1e-12,
        exact=True)
    x = torch.randn(4, 3, dtype=F64)
    with torch.no_grad():
        y, ladj = ffj.call_and_ladj(x)
    # zuko integrates the exact trace along the flow; over a short step the trapezoid rule on
    # the divergence at both ends agrees to O(dt³)
    trap = dt * (divergence(net, x).value + divergence(net, y).value) / 2
    torch.testing.assert_close(ladj, trap, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("method", ["exact", "hutchinson"])
def test_the_products_are_recorded_only_where_something_requires_grad(
        method: Literal["exact", "hutchinson"]) -> None:
    torch.manual_seed(4)
    net = torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3))
    net = net.double().requires_grad_(False)
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(5), dtype=F64)
    frozen = divergence(net, x, method=method, nprobe=4)  # nothing requires grad: no graph
    assert frozen.value.grad_fn is None
    if method == "exact":
        torch.testing.assert_close(frozen.value, _reference(net, x), rtol=0, atol=1e-12)
    net.requires_grad_(True)
    trained = divergence(net, x, method=method, nprobe=4)
    assert trained.value.grad_fn is not None
    torch.testing.assert_close(trained.value.detach(), frozen.value, rtol=0, atol=1e-14)
    w = net[0].weight
    assert isinstance(w, torch.Tensor)
    (g,) = torch.autograd.grad(trained.value.sum(), w)
    if method == "exact":
        (g_ref,) = torch.autograd.grad(_reference(net, x).sum(), w)
        torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-12)


def _self_differentiating(z: torch.Tensor) -> torch.Tensor:
    """``z ↦ z + z²`` with the square computed as a gradient (autograd inside ``f``, which
    ``torch.func`` transforms refuse)."""
    with torch.enable_grad():
        zc = z.clone().requires_grad_()
        (g,) = torch.autograd.grad((zc ** 3).sum(), zc, create_graph=True)
    return z + g / 3


def test_reverse_mode_takes_plain_autograd_where_f_runs_autograd_itself() -> None:
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(6), dtype=F64)
    with pytest.raises(RuntimeError, match="functorch transform"):
        torch.func.vjp(_self_differentiating, x)
    d = divergence(_self_differentiating, x)
    assert d.value.grad_fn is None
    torch.testing.assert_close(d.value, (1 + 2 * x).sum(1), rtol=0, atol=1e-12)
    xr = x.clone().requires_grad_()
    (g,) = torch.autograd.grad(divergence(_self_differentiating, xr).value.sum(), xr)
    torch.testing.assert_close(g, torch.full_like(x, 2.0), rtol=0, atol=1e-12)
