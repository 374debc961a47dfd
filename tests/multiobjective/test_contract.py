"""The aggregator contract beyond values: validated options (on construction and on assignment),
the autograd contract (exact gradients or a typed error, never a partial gradient), torch.func
transforms, and the package's option vocabulary (chunk_size, max_iter)."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.func import jacrev, vmap

from jacobite.errors import (
    ArgumentTypeError,
    InvalidOptionError,
    JacobiteError,
    ShapeError,
    UnsupportedOperationError,
)
from jacobite.multiobjective._params import resolve_chunk, row_chunk
from jacobite.multiobjective.aggregators import (
    IMTLG,
    MGDA,
    AlignedMTL,
    CAGrad,
    ConFIG,
    Constant,
    DualProj,
    GradDrop,
    Krum,
    Mean,
    NashMTL,
    PCGrad,
    Random,
    Sum,
    TrimmedMean,
    UPGrad,
)
from jacobite.multiobjective.backward import backward, mtl_backward, per_example_backward
from jacobite.multiobjective.gramian import gramian

DT = torch.float64

# (aggregator, attribute, a value its check refuses, the error type)
BAD_ASSIGNMENTS = [
    (lambda: TrimmedMean(2), "trim_number", -1, InvalidOptionError),
    (lambda: TrimmedMean(2), "trim_number", 1.5, ArgumentTypeError),
    (lambda: Krum(1), "n_byzantine", -1, InvalidOptionError),
    (lambda: Krum(1), "n_selected", 0, InvalidOptionError),
    (UPGrad, "reg_eps", -1.0, InvalidOptionError),
    (UPGrad, "norm_eps", float("nan"), InvalidOptionError),
    (UPGrad, "solver", "cvx", InvalidOptionError),
    (UPGrad, "pref_vector", torch.ones(2, 2), ShapeError),
    (DualProj, "reg_eps", -1.0, InvalidOptionError),
    (DualProj, "solver", "cvx", InvalidOptionError),
    (MGDA, "epsilon", 0.0, InvalidOptionError),
    (MGDA, "max_iter", 0, InvalidOptionError),
    (MGDA, "solver", "fw", InvalidOptionError),
    (lambda: CAGrad(0.5), "c", -1.0, InvalidOptionError),
    (lambda: CAGrad(0.5), "norm_eps", "x", ArgumentTypeError),
    (AlignedMTL, "scale_mode", "max", InvalidOptionError),
    (AlignedMTL, "pref_vector", torch.ones(()), ShapeError),
    (ConFIG, "pref_vector", torch.tensor([float("nan")]), JacobiteError),
    (lambda: Constant(torch.ones(2)), "weights_", torch.ones(2, 2), ShapeError),
    (lambda: Constant(torch.ones(2)), "weights_", None, ShapeError),
    (GradDrop, "f", 3, ArgumentTypeError),
    (GradDrop, "leak", torch.ones(1, 1), ShapeError),
    (lambda: NashMTL(2), "n_tasks", 0, InvalidOptionError),
    (lambda: NashMTL(2), "max_norm", -1.0, InvalidOptionError),
    (lambda: NashMTL(2), "update_weights_every", 0, InvalidOptionError),
    (lambda: NashMTL(2), "optim_niter", True, ArgumentTypeError),
]


@pytest.mark.parametrize(("make", "attr", "value", "error"), BAD_ASSIGNMENTS)
def test_assignment_is_validated_like_construction(make, attr, value, error) -> None:
    agg = make()
    before = getattr(agg, attr)
    with pytest.raises(error):
        setattr(agg, attr, value)
    assert getattr(agg, attr) is before  # unchanged after a refused assignment


def test_valid_assignment_takes_effect() -> None:
    J = torch.tensor([[1.0], [2.0], [3.0], [100.0], [-50.0]], dtype=DT)
    agg = TrimmedMean(2)
    agg.trim_number = 1
    assert repr(agg) == "TrimmedMean(trim_number=1)"
    torch.testing.assert_close(agg(J), torch.tensor([2.0], dtype=DT))
    nash = NashMTL(2, max_norm=0.0)
    nash.n_tasks = 3  # its state follows the new number of tasks
    assert nash.weights(torch.eye(3, dtype=DT)).shape == (3,)


def test_mgda_max_iters_is_a_deprecated_spelling() -> None:
    with pytest.warns(DeprecationWarning, match="max_iter=7"):
        agg = MGDA(max_iters=7)
    assert agg.max_iter == 7
    assert repr(MGDA()) == "MGDA(epsilon=0.001, max_iter=100, solver='exact')"
    with pytest.raises(InvalidOptionError, match="only max_iter"):
        MGDA(max_iter=5, max_iters=7)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MGDA(0.001, 50)  # positional max_iter: no warning


# ---------------------------------------------------------------------------------------------
# autograd

DIFFERENTIABLE = {
    "Mean": Mean, "Sum": Sum, "Constant": lambda: Constant(torch.tensor([0.3, -1.0, 2.0])),
    "Random": Random, "Krum": lambda: Krum(0), "PCGrad": PCGrad, "IMTLG": IMTLG,
    "AlignedMTL": AlignedMTL, "ConFIG": ConFIG, "GradDrop": GradDrop,
    "TrimmedMean": lambda: TrimmedMean(1),
}
SOLVER_BASED = {"UPGrad": UPGrad, "DualProj": DualProj, "MGDA": MGDA,
                "CAGrad": lambda: CAGrad(0.5), "NashMTL": lambda: NashMTL(3)}


def _jacobian() -> torch.Tensor:
    g = torch.Generator().manual_seed(11)
    return torch.randn(3, 5, generator=g, dtype=DT) * torch.tensor([[1.0], [2.0], [0.5]], dtype=DT)


def _seeded(agg):
    def f(J: torch.Tensor) -> torch.Tensor:
        torch.manual_seed(0)  # the same draws (Random, PCGrad, GradDrop) at every call
        return agg(J)
    return f


@pytest.mark.parametrize("name", sorted(DIFFERENTIABLE))
def test_differentiable_aggregators_have_exact_gradients(name: str) -> None:
    agg = DIFFERENTIABLE[name]()
    assert agg.differentiable
    f = _seeded(agg)
    J = _jacobian()
    ref = jacrev(f)(J)  # (n, m, n): torch.func's derivative of the whole aggregation
    Jr = J.clone().requires_grad_()
    out = f(Jr)
    rows = [torch.autograd.grad(out[i], Jr, retain_graph=True)[0] for i in range(out.shape[0])]
    torch.testing.assert_close(torch.stack(rows), ref, rtol=0, atol=1e-10)
    # and an independent oracle: central differences
    eps = 1e-6
    fd = torch.zeros_like(ref)
    for k in range(J.numel()):
        e = torch.zeros_like(J).view(-1)
        e[k] = eps
        e = e.view_as(J)
        fd.view(ref.shape[0], -1)[:, k] = (f(J + e) - f(J - e)) / (2 * eps)
    torch.testing.assert_close(ref, fd, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(SOLVER_BASED))
def test_solver_based_aggregators_refuse_a_partial_gradient(name: str) -> None:
    agg = SOLVER_BASED[name]()
    assert not agg.differentiable
    J = _jacobian().requires_grad_()
    out = agg(J)
    torch.testing.assert_close(out, agg(J.detach()))  # the value is unchanged
    assert out.requires_grad
    with pytest.raises(UnsupportedOperationError, match=rf"{name} is not differentiable"):
        (out.sum() + J.sum()).backward()  # also when mixed with other, differentiable terms
    G = J @ J.T
    with pytest.raises(UnsupportedOperationError, match=r"J\.detach"):
        torch.autograd.grad(agg.weights(G).sum(), J)
    with pytest.raises(UnsupportedOperationError, match="not differentiable"):
        jacrev(agg)(J.detach())


@pytest.mark.parametrize("name", sorted(DIFFERENTIABLE) + sorted(SOLVER_BASED))
def test_vmap_is_refused_with_the_loop_as_alternative(name: str) -> None:
    agg = {**DIFFERENTIABLE, **SOLVER_BASED}[name]()
    Js = torch.stack([_jacobian(), 2 * _jacobian()])
    with pytest.raises(UnsupportedOperationError, match=r"torch\.stack\(\[agg\(J_i\)"):
        vmap(agg)(Js)
    if hasattr(agg, "weights"):
        with pytest.raises(UnsupportedOperationError, match="vmap"):
            vmap(agg.weights)(Js @ Js.mT)
    loop = torch.stack([_seeded(agg)(J) for J in Js])  # the alternative works
    assert loop.shape == (2, 5)


# ---------------------------------------------------------------------------------------------
# chunk_size: "auto" (fit the budget), None (all at once), an int ≥ 1

def test_chunk_size_vocabulary() -> None:
    assert resolve_chunk("auto") == "auto" and resolve_chunk(None) is None
    assert row_chunk(10, 8, None) == 10 and row_chunk(10, 8, 3) == 3 and row_chunk(2, 8, 5) == 2
    assert 1 <= row_chunk(10, 8, "auto") <= 10
    for bad, error in ((0, InvalidOptionError), ("all", InvalidOptionError),
                       (2.0, ArgumentTypeError), (True, ArgumentTypeError)):
        with pytest.raises(error):
            resolve_chunk(bad)


@pytest.mark.parametrize("chunk_size", ["auto", None, 1, 2])
def test_chunk_size_gives_the_same_update(chunk_size) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3))
    x = torch.randn(5, 4)

    def losses() -> torch.Tensor:
        return model(x).pow(2).mean(0)

    ref_G = gramian(losses(), list(model.parameters()), chunk_size=None)
    G = gramian(losses(), list(model.parameters()), chunk_size=chunk_size)
    torch.testing.assert_close(G, ref_G)
    w = backward(losses(), list(model.parameters()), UPGrad(), chunk_size=chunk_size)
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    w_ref = backward(losses(), list(model.parameters()), UPGrad(), chunk_size=None)
    torch.testing.assert_close(w, w_ref)
    for g, p in zip(grads, model.parameters(), strict=True):
        torch.testing.assert_close(g, p.grad)
    model.zero_grad()


def test_backward_signatures_default_to_auto() -> None:
    import inspect
    for fn in (backward, mtl_backward, per_example_backward, gramian):
        assert inspect.signature(fn).parameters["chunk_size"].default == "auto", fn.__name__


def test_bad_arguments_raise_typed_errors_naming_the_fix() -> None:
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    losses = torch.stack([w.sum(), (w ** 2).sum()])
    for bad in ("upgrad", 3):
        with pytest.raises(ArgumentTypeError, match=r"UPGrad\(\)"):
            backward(losses, [w], bad)
        with pytest.raises(ArgumentTypeError, match=r"UPGrad\(\)"):
            mtl_backward(losses, w * 1.0, bad)
    with pytest.raises(ArgumentTypeError, match="retain_graph"):
        gramian(losses, [w], retain_graph="yes")
    with pytest.raises(ArgumentTypeError, match="features"):
        mtl_backward(losses, 3)
    with pytest.raises(ArgumentTypeError, match="tasks_params"):
        mtl_backward(losses, w * 1.0, tasks_params=3)
    for bad in ("abc", None, 3):
        with pytest.raises(ArgumentTypeError, match=r"torch\.Tensor"):
            UPGrad()(bad)
    with pytest.raises(JacobiteError, match="pass finite numbers"):
        UPGrad(pref_vector=torch.tensor([float("nan"), 1.0]))
    model = torch.nn.Linear(2, 1)
    with pytest.raises(ArgumentTypeError, match="loss_fn"):
        per_example_backward(model, "sin", torch.ones(3, 2))
    with pytest.raises(ShapeError, match="same first dimension"):
        per_example_backward(model, lambda f, x, y: f(x).sum(), torch.ones(3, 2),
                             torch.ones(4, 1))
