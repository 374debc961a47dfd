"""No jacobite call changes a module as a side effect, whether it succeeds or fails.

Every public entry point that takes a module or a function runs on a model with a training-mode
BatchNorm1d (which updates its running statistics and ``num_batches_tracked`` whenever it runs),
passed directly, wrapped in another module, or closed over by a lambda or a ``def``. Afterwards
every tensor of the state dict is bitwise the same, every submodule's ``training`` flag is the
same, and no parameter's ``.grad`` appeared or changed; the call itself is refused with
:class:`~jacobite.errors.ModuleStateError` naming ``model.eval()``. In eval mode every call runs
and leaves the model as it was (``.grad`` aside where filling it is the call's purpose).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

import jacobite
from jacobite import analysis, extrema, multiobjective, numeric, solvers, sparse, transforms
from jacobite import nn as jnn
from jacobite.errors import ModuleStateError

DT = torch.float64


def _model() -> nn.Module:
    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 3)).to(DT)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=DT))
    return net.train()


X = torch.randn(5, 3, generator=torch.Generator().manual_seed(1), dtype=DT)
Y = torch.tensor([0, 1, 2, 0, 1])


def _as(kind: str, model: nn.Module) -> Any:
    """The model as the caller hands it over: directly, inside another module, or closed over."""
    if kind == "module":
        return model
    if kind == "wrapped":
        return nn.Sequential(model)
    if kind == "lambda":
        return lambda v: model(v)

    def f(v: torch.Tensor) -> torch.Tensor:
        return model(v)
    return f


def _sum(f: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda v: f(v).sum()


def _fixed(f: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """The model's output at v as data (it still runs): solvers refuse residuals that depend
    on tensors autograd tracks, such as the model's parameters."""
    return lambda v: f(v).detach()


def _params(f: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """A residual in parameters p with the model inside (the model at fixed data X)."""
    return lambda p: (_fixed(f)(X) * p).sum(-1) - 1.0


def _penalty(f: Any) -> Any:
    return jnn.jacobian_penalty(f, X, seed=0)


def _per_example(f: Any) -> Any:
    return multiobjective.per_example_backward(
        f, lambda mod, xi, yi: nn.functional.cross_entropy(mod(xi), yi), X, Y)


def _gramian(f: Any) -> Any:
    if isinstance(f, nn.Module):
        return multiobjective.gramian(
            lambda p: torch.func.functional_call(f, p, (X,)).sum(-1),
            {k: v.detach() for k, v in f.named_parameters()})
    return multiobjective.gramian(lambda w: (f(X) * w).sum(-1), torch.ones(3, dtype=DT))


def _grid(f: Any) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from jacobite.viz import deformed_grid

    try:
        return deformed_grid(lambda p: p + 0 * f(X).sum(), n=3, refine=1)
    finally:
        plt.close("all")


CALLS: dict[str, Callable[[Any], Any]] = {
    "jacobian": lambda f: jacobite.jacobian(f, X),
    "jacobian_forward": lambda f: jacobite.jacobian(f, X, mode="forward"),
    "jacobian_chunked": lambda f: jacobite.jacobian(f, X, chunk_size=2),
    "jacobian_sparse": lambda f: jacobite.jacobian(f, X, sparse=True),
    "value_and_jacobian": lambda f: jacobite.value_and_jacobian(f, X),
    "jacobian_plan": lambda f: jacobite.jacobian_plan(f, X),
    "batch_jacobian": lambda f: jacobite.batch_jacobian(f, X, batched_model=True),
    "hessian": lambda f: jacobite.hessian(_sum(f), X),
    "jvp": lambda f: jacobite.jvp(f, (X,), (torch.ones_like(X),)),
    "vjp": lambda f: jacobite.vjp(f, X)[1](torch.ones(5, 3, dtype=DT)),
    "hvp": lambda f: jacobite.hvp(_sum(f), (X,), (torch.ones_like(X),)),
    "linearize": lambda f: jacobite.linearize(f, X).mv(torch.ones(15, dtype=DT)),
    "check": lambda f: jacobite.check(f, X),
    "spectral_norm": lambda f: analysis.spectral_norm(f, X),
    "condition_number": lambda f: analysis.condition_number(f, X),
    "top_singular": lambda f: analysis.top_singular(f, X),
    "frobenius_norm": lambda f: analysis.frobenius_norm(f, X, seed=0),
    "logabsdet": lambda f: analysis.logabsdet(f, X),
    "logdet": lambda f: analysis.logdet(f, X),
    "logdet_slq": lambda f: analysis.logdet(f, X, method="slq", nprobe=2),
    "divergence": lambda f: analysis.divergence(f, X),
    "divergence_xtrace": lambda f: analysis.divergence(f, X, method="xtrace", nprobe=4),
    "input_jacobians": lambda f: analysis.input_jacobians(f, X),
    "saliency": lambda f: analysis.saliency(f, X),
    "sensitive_directions": lambda f: analysis.sensitive_directions(f, X[0]),
    "input_gradient": lambda f: analysis.input_gradient(f, X, Y),
    "fgsm": lambda f: analysis.fgsm(f, X, Y, 0.1),
    "pgd": lambda f: analysis.pgd(f, X, Y, 0.1, steps=2, seed=0),
    "accuracy": lambda f: analysis.accuracy(f, X, Y),
    "accuracy_vs_eps": lambda f: analysis.accuracy_vs_eps(f, X, Y, [0.0, 0.1], attack="fgsm"),
    "layer_report": lambda f: analysis.layer_report(f, X),
    "layer_jacobian": lambda f: jnn.layer_jacobian(f, X),
    "jacobian_penalty": _penalty,
    "backprop": lambda f: jnn.backprop(f, X, torch.zeros(5, 3, dtype=DT)),
    "gramian": _gramian,
    "per_example_backward": _per_example,
    "least_squares": lambda f: solvers.least_squares(_params(f), torch.ones(3, dtype=DT)),
    "root": lambda f: solvers.root(lambda p: (_fixed(f)(X)[:3] * p).sum(-1) - 1.0,
                                   torch.ones(3, dtype=DT)),
    "curve_fit": lambda f: solvers.curve_fit(lambda x, a, b: (_fixed(f)(x) * a).sum(-1) + b, X,
                                             torch.zeros(5, dtype=DT), p0=[1.0, 0.0]),
    "newton_minimize": lambda f: solvers.newton_minimize(
        lambda p: ((f(X) * p).sum(-1) ** 2).sum(), torch.ones(3, dtype=DT), max_iter=3),
    "implicit_jacobian": lambda f: solvers.implicit_jacobian(
        lambda x, t: x - f(t).sum(-1), torch.zeros(5, dtype=DT), X, check="off"),
    "solve_implicit": lambda f: solvers.solve_implicit(
        lambda x, t: x - _fixed(f)(X).sum(-1) * t, torch.zeros(5, dtype=DT),
        torch.ones((), dtype=DT)),
    "numeric_jacobian": lambda f: numeric.jacobian(f, X),
    "critical_points": lambda f: extrema.critical_points(
        lambda v: (_fixed(f)(X)[0] * v).sum() + (v ** 2).sum(), method="newton",
        x0=torch.zeros(3, dtype=DT)),
    "integrate": lambda f: transforms.integrate(lambda p: _fixed(f)(X).sum() * 0 + p[..., 0],
                                                "polar", region=[(0, 1), (0, 1)]),
    "sparse_detect": lambda f: sparse.detect(f, X),
    "sparse_detect_hessian": lambda f: sparse.detect_hessian(_sum(f), X),
    "sparse_prepare": lambda f: sparse.prepare(f, X),
    "deformed_grid": lambda f: _grid(f),
    "sparse_prepare_hessian": lambda f: sparse.prepare_hessian(_sum(f), X),
}
MODULE_ONLY = {"layer_report", "layer_jacobian", "backprop", "per_example_backward"}
FILLS_GRAD = {"per_example_backward"}  # filling .grad is its purpose


def _snapshot(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, bool], dict[str, Any]]:
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    flags = {k: m.training for k, m in model.named_modules()}
    grads = {k: None if p.grad is None else p.grad.clone() for k, p in model.named_parameters()}
    return state, flags, grads


def _assert_unchanged(model: nn.Module, snap: Any, grads_too: bool = True) -> None:
    state, flags, grads = snap
    now = model.state_dict()
    assert now.keys() == state.keys()
    for k, v in state.items():
        assert now[k].dtype == v.dtype and torch.equal(now[k], v), f"{k} changed"
    assert {k: m.training for k, m in model.named_modules()} == flags
    if grads_too:
        for k, p in model.named_parameters():
            if grads[k] is None:
                assert p.grad is None, f"{k}.grad appeared"
            else:
                assert p.grad is not None and torch.equal(p.grad, grads[k]), f"{k}.grad changed"


KINDS = ("module", "wrapped", "lambda", "def")
CASES = [(name, kind) for name in sorted(CALLS) for kind in KINDS
         if not (name in MODULE_ONLY and kind in ("lambda", "def"))]


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_training_batchnorm_is_refused_and_the_model_left_unchanged(name: str, kind: str) -> None:
    model = _model()
    snap = _snapshot(model)
    with pytest.raises(ModuleStateError, match=r"eval\(\)"):
        CALLS[name](_as(kind, model))
    _assert_unchanged(model, snap)


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_eval_mode_model_runs_and_is_left_unchanged(name: str, kind: str) -> None:
    model = _model().eval()
    snap = _snapshot(model)
    CALLS[name](_as(kind, model))
    _assert_unchanged(model, snap, grads_too=name not in FILLS_GRAD)


@pytest.mark.parametrize("method", ["jacobian", "value_and_jacobian"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_sparse_plan_evaluated_in_training_mode_is_refused(kind: str, method: str) -> None:
    model = _model().eval()
    plan = sparse.prepare(_as(kind, model), X, vectorize=False)
    model.train()
    snap = _snapshot(model)
    with pytest.raises(ModuleStateError, match=r"eval\(\)"):
        getattr(plan, method)(X)
    _assert_unchanged(model, snap)


OPERATORS: dict[str, Callable[[nn.Module, nn.Module], Any]] = {
    "ggn": lambda m, loss: jacobite.curvature.ggn(m, loss, (X, Y)),
    "ggn_cached": lambda m, loss: jacobite.curvature.ggn(m, loss, (X, Y), cache=True),
    "fisher_empirical": lambda m, loss: jacobite.curvature.fisher(m, loss, (X, Y),
                                                                  kind="empirical"),
    "hessian": lambda m, loss: jacobite.curvature.hessian(m, loss, (X, Y)),
}


@pytest.mark.parametrize("analyse", ["eigenvalues", "spectral_density"])
@pytest.mark.parametrize("op", sorted(OPERATORS))
def test_analysis_of_a_curvature_operator_reads_no_non_leaf_grad(op: str, analyse: str) -> None:
    """The operators swap non-leaf tensors (dual numbers, differentiable copies) into the
    module for a product; the guard reads ``.grad`` of leaves only, so torch's warning about a
    non-leaf ``.grad`` never appears, and the leaves' own ``.grad`` stay as they were."""
    model = _model().eval()
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.5)
    snap = _snapshot(model)
    G = OPERATORS[op](model, nn.CrossEntropyLoss())
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        if analyse == "eigenvalues":
            top = analysis.eigenvalues(G, k=2)
            dense = torch.linalg.eigvalsh(G.to_dense())
            torch.testing.assert_close(top.values, dense.flip(0)[:2], rtol=1e-6, atol=1e-8)
        else:
            analysis.spectral_density(G, probes=2, steps=5)
    _assert_unchanged(model, snap, grads_too=True)
