"""sobolev_loss against a hand-written create_graph reference: values, gradients in the
parameters, masks and NaN partials, weights, reductions, projected mode's expectation,
directional targets, multi-output models, refusals and composability."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.func import functional_call, jacrev, vmap

from jacobite.errors import (
    ArgumentTypeError,
    InvalidOptionError,
    ModuleStateError,
    NonFiniteInputError,
    ShapeError,
    UnsupportedOperationError,
)
from jacobite.nn import SobolevLoss, sobolev_loss

DT = torch.float64


def _net(n: int, m: int, seed: int = 0, width: int = 12) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(n, width), torch.nn.Tanh(),
                               torch.nn.Linear(width, width), torch.nn.Tanh(),
                               torch.nn.Linear(width, m)).to(DT)


def _data(B: int, n: int, m: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, n, dtype=DT, generator=g), torch.randn(B, m, dtype=DT, generator=g),
            torch.randn(B, m, n, dtype=DT, generator=g))


def _per_sample_jac(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The oracle: torch.func.jacrev of the model on one sample, vmapped over the batch,
    differentiable in the parameters through functional_call."""
    params = dict(net.named_parameters())
    return vmap(jacrev(lambda v: functional_call(net, params, (v.unsqueeze(0),))[0]))(x)


def _reference(net, x, y, T, weight=1.0, known=None):
    """Hand-written loss: per-output create_graph gradients, mean over known entries."""
    xs = x.clone().requires_grad_(True)
    out = net(xs)
    rows = [torch.autograd.grad(out[:, i].sum(), xs, create_graph=True)[0]
            for i in range(out.shape[1])]
    J = torch.stack(rows, 1)
    if known is None:
        known = ~torch.isnan(T)
    value = ((out - y) ** 2).mean()
    sq = (J - torch.nan_to_num(T)) ** 2
    w = torch.as_tensor(weight, dtype=DT).expand_as(sq)
    jac = sq[known].mean()
    return value, jac, value + (w * sq)[known].sum() / known.sum()


def _grads(loss, net):
    return torch.autograd.grad(loss, list(net.parameters()), allow_unused=True,
                               materialize_grads=True)


@pytest.mark.parametrize("jac_mode", ["auto", "forward", "reverse"])
@pytest.mark.parametrize(("n", "m"), [(1, 1), (2, 1), (2, 3), (5, 2), (3, 3)])
def test_full_mode_matches_the_create_graph_reference(jac_mode, n, m):
    net = _net(n, m)
    x, y, T = _data(7, n, m)
    value, jac, total = _reference(net, x, y, T, weight=0.7)
    res = sobolev_loss(net, x, y, T, weight=0.7, jac_mode=jac_mode)
    assert isinstance(res, SobolevLoss)
    torch.testing.assert_close(res.value, value)
    torch.testing.assert_close(res.jacobian, jac)
    torch.testing.assert_close(res.total, total)
    for a, b in zip(_grads(res.total, net), _grads(total, net), strict=True):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(res.prediction_jacobian, _per_sample_jac(net, x))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 4), m=st.integers(1, 4), B=st.integers(1, 6), seed=st.integers(0, 99),
       lam=st.floats(0.0, 3.0))
def test_any_shape_matches_the_jacrev_oracle(n, m, B, seed, lam):
    net = _net(n, m, seed, width=6)
    x, y, T = _data(B, n, m, seed)
    res = sobolev_loss(net, x, y, T, weight=lam)
    J = _per_sample_jac(net, x)
    value = ((net(x) - y) ** 2).mean()
    jac = ((J - T) ** 2).mean()
    torch.testing.assert_close(res.total, value + lam * jac)
    for a, b in zip(_grads(res.total, net), _grads(value + lam * jac, net), strict=True):
        torch.testing.assert_close(a, b)


def test_nan_partials_and_masks_are_left_out_and_send_no_nan_into_gradients():
    net = _net(3, 2)
    x, y, T = _data(6, 3, 2)
    Tn = T.clone()
    Tn[0, 1, 2] = float("nan")
    Tn[3, :, 0] = float("nan")
    known = ~torch.isnan(Tn)
    _, jac, total = _reference(net, x, y, Tn, known=known)
    res = sobolev_loss(net, x, y, Tn)
    torch.testing.assert_close(res.jacobian, jac)
    grads = _grads(res.total, net)
    assert all(bool(torch.isfinite(g).all()) for g in grads)
    for a, b in zip(grads, _grads(total, net), strict=True):
        torch.testing.assert_close(a, b)
    # the same through mask= on complete targets (mask and NaN combine)
    res2 = sobolev_loss(net, x, y, T, mask=known)
    torch.testing.assert_close(res2.total, total)
    # a mask broadcast over outputs: input 1 unknown everywhere
    mk = torch.tensor([True, False, True])
    _, jac3, _ = _reference(net, x, y, T, known=mk.expand_as(T))
    torch.testing.assert_close(sobolev_loss(net, x, y, T, mask=mk).jacobian, jac3)


def test_all_partials_missing_gives_a_zero_jacobian_term():
    net = _net(2, 1)
    x, y, T = _data(4, 2, 1)
    res = sobolev_loss(net, x, y, torch.full_like(T, float("nan")))
    assert res.jacobian.item() == 0.0
    torch.testing.assert_close(res.total, ((net(x) - y) ** 2).mean())


def test_per_entry_weights_polish_single_partials():
    net = _net(2, 2)
    x, y, T = _data(5, 2, 2)
    w = torch.tensor([[1.0, 0.0], [2.0, 0.5]], dtype=DT)  # (m, n), broadcast over the batch
    _, _, total = _reference(net, x, y, T, weight=w)
    res = sobolev_loss(net, x, y, T, weight=w)
    torch.testing.assert_close(res.total, total)
    _, jac, _ = _reference(net, x, y, T)
    torch.testing.assert_close(res.jacobian, jac)  # reported unweighted


def test_reductions():
    net = _net(2, 3)
    x, y, T = _data(5, 2, 3)
    J = _per_sample_jac(net, x)
    out = net(x)
    none = sobolev_loss(net, x, y, T, reduction="none", weight=2.0)
    torch.testing.assert_close(none.value, ((out - y) ** 2).mean(1))
    torch.testing.assert_close(none.jacobian, ((J - T) ** 2).mean((1, 2)))
    torch.testing.assert_close(none.total, none.value + 2.0 * none.jacobian)
    total = sobolev_loss(net, x, y, T, reduction="sum")
    torch.testing.assert_close(total.value, ((out - y) ** 2).sum())
    torch.testing.assert_close(total.jacobian, ((J - T) ** 2).sum())
    mean = sobolev_loss(net, x, y, T)
    torch.testing.assert_close(mean.total, none.value.mean() + none.jacobian.mean())


def test_one_dimensional_inputs_and_outputs():
    inner = _net(1, 1)

    def net(b):
        return inner(b.unsqueeze(1)).squeeze(1)

    x = torch.linspace(-2, 2, 9, dtype=DT)
    y, dydx = x * torch.sin(x), torch.sin(x) + x * torch.cos(x)
    res = sobolev_loss(net, x, y, dydx)
    xs = x.clone().requires_grad_(True)
    out = net(xs)
    (g,) = torch.autograd.grad(out.sum(), xs, create_graph=True)
    torch.testing.assert_close(res.total, ((out - y) ** 2).mean() + ((g - dydx) ** 2).mean())
    assert res.prediction_jacobian.shape == (9, 1, 1)


def test_values_only():
    net = _net(3, 2)
    x, y, _ = _data(4, 3, 2)
    res = sobolev_loss(net, x, y)
    torch.testing.assert_close(res.total, ((net(x) - y) ** 2).mean())
    assert res.jacobian.item() == 0.0 and res.prediction_jacobian is None


def test_projected_mode_uses_its_directions_exactly():
    net = _net(4, 3)
    x, y, T = _data(6, 4, 3)
    res = sobolev_loss(net, x, y, T, mode="projected", k=3, seed=5)
    v = res.directions
    assert v is not None and v.shape == (6, 3, 4)
    J = _per_sample_jac(net, x)
    diff = torch.einsum("bmn,bkn->bmk", J - T, v)
    torch.testing.assert_close(res.jacobian, (diff ** 2).sum() / (3 * 6 * 3 * 4))
    again = sobolev_loss(net, x, y, T, mode="projected", k=3, seed=5)
    torch.testing.assert_close(again.total, res.total)
    rev = sobolev_loss(net, x, y, T, mode="projected", k=3, seed=5, jac_mode="reverse")
    torch.testing.assert_close(rev.total, res.total)
    for a, b in zip(_grads(rev.total, net), _grads(res.total, net), strict=True):
        torch.testing.assert_close(a, b)


def test_projected_mode_is_unbiased_for_the_full_loss():
    net = _net(3, 2)
    x, y, T = _data(5, 3, 2)
    full = sobolev_loss(net, x, y, T).jacobian.detach()
    est = torch.stack([sobolev_loss(net, x, y, T, mode="projected", k=4, seed=s).jacobian
                       .detach() for s in range(600)])
    # the mean of 600 estimates lies within 4 standard errors of the full-mode term
    assert abs(est.mean() - full) < 4 * est.std() / 600 ** 0.5
    # and the gradients average to the full-mode gradient
    g_full = torch.cat([g.flatten() for g in _grads(sobolev_loss(net, x, y, T).jacobian, net)])
    gs = torch.stack([torch.cat([g.flatten() for g in _grads(
        sobolev_loss(net, x, y, T, mode="projected", k=4, seed=s).jacobian, net)])
        for s in range(300)])
    se = gs.std(0) / 300 ** 0.5
    assert bool(((gs.mean(0) - g_full).abs() < 5 * se + 1e-12).all())


def test_precomputed_directional_derivatives():
    net = _net(4, 2)
    x, y, T = _data(5, 4, 2)
    V = torch.randn(3, 4, dtype=DT)
    res = sobolev_loss(net, x, y, mode="projected", directional=(V, T @ V.T))
    ref = sobolev_loss(net, x, y, T, mode="projected", directional=None, k=3, seed=0)
    J = _per_sample_jac(net, x)
    diff = (J - T) @ V.T
    torch.testing.assert_close(res.jacobian, (diff ** 2).sum() / (3 * 5 * 2 * 4))
    assert ref.directions is not None
    # per-sample directions (B, k, n) as well
    Vb = torch.randn(5, 2, 4, dtype=DT)
    res_b = sobolev_loss(net, x, y, mode="projected",
                         directional=(Vb, torch.einsum("bmn,bkn->bmk", T, Vb)))
    diff_b = torch.einsum("bmn,bkn->bmk", J - T, Vb)
    torch.testing.assert_close(res_b.jacobian, (diff_b ** 2).sum() / (2 * 5 * 2 * 4))


def test_dropout_uses_reverse_mode_and_forward_mode_refuses():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Dropout(0.5),
                              torch.nn.Linear(8, 5)).to(DT)
    x, y, T = _data(4, 2, 5)
    res = sobolev_loss(net, x, y, T)  # n < m would pick forward; dropout forces reverse
    assert torch.isfinite(res.total)
    with pytest.raises(ModuleStateError, match="eval"):
        sobolev_loss(net, x, y, T, jac_mode="forward")


def test_training_batchnorm_is_refused_naming_eval():
    net = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.BatchNorm1d(4),
                              torch.nn.Linear(4, 1)).to(DT)
    x, y, T = _data(4, 2, 1)
    with pytest.raises(ModuleStateError, match=r"eval\(\)"):
        sobolev_loss(net, x, y, T)
    with pytest.raises(ModuleStateError):
        sobolev_loss(lambda b: net(b), x, y, T)
    net.eval()
    assert torch.isfinite(sobolev_loss(net, x, y, T).total)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"y": torch.zeros(3, 1, dtype=DT)}, ShapeError, "y has shape"),
    ({"dydx": torch.zeros(4, 1, 3, dtype=DT)}, ShapeError, r"\(4, 1, 2\)"),
    ({"dydx": torch.full((4, 1, 2), float("inf"), dtype=DT)}, NonFiniteInputError, "NaN"),
    ({"y": torch.full((4, 1), float("nan"), dtype=DT)}, NonFiniteInputError, "drop"),
    ({"weight": -1.0}, InvalidOptionError, "≥ 0"),
    ({"weight": "big"}, ArgumentTypeError, "weight"),
    ({"mode": "diagonal"}, InvalidOptionError, "mode"),
    ({"reduction": "max"}, InvalidOptionError, "reduction"),
    ({"jac_mode": "sideways"}, InvalidOptionError, "jac_mode"),
    ({"k": 3}, InvalidOptionError, "projected"),
    ({"mode": "projected", "k": 0}, InvalidOptionError, "k"),
    ({"mode": "projected", "mask": torch.ones(2, dtype=torch.bool)}, InvalidOptionError,
     "mode='full'"),
    ({"dydx": None, "mask": torch.ones(2, dtype=torch.bool)}, InvalidOptionError, "dydx"),
    ({"mode": "projected", "directional": (torch.ones(2), torch.ones(4, 1, 1))},
     InvalidOptionError, "not both"),
    ({"mode": "projected", "dydx": None}, ArgumentTypeError, "directional"),
])
def test_bad_input_raises_a_typed_error_naming_the_fix(kwargs, error, match):
    net = _net(2, 1)
    args = {"y": torch.zeros(4, 1, dtype=DT), "dydx": torch.zeros(4, 1, 2, dtype=DT)}
    args.update({k: kwargs.pop(k) for k in ("y", "dydx") if k in kwargs})
    with pytest.raises(error, match=match):
        sobolev_loss(net, torch.zeros(4, 2, dtype=DT), args["y"], args["dydx"], **kwargs)


def test_projected_mode_refuses_missing_partials():
    net = _net(2, 1)
    x, y, T = _data(4, 2, 1)
    T[0, 0, 0] = float("nan")
    with pytest.raises(InvalidOptionError, match="mode='full'"):
        sobolev_loss(net, x, y, T, mode="projected")


def test_a_model_that_drops_the_batch_is_refused():
    x, y, T = _data(4, 2, 1)
    with pytest.raises(ShapeError, match="batch"):
        sobolev_loss(lambda b: b.sum(), x, y, T)
    with pytest.raises(ShapeError, match="outputs"):
        sobolev_loss(lambda b: b, x, y, T)  # 2 outputs, y has 1


def test_differentiable_in_x_to_second_order():
    W = torch.randn(3, 2, dtype=DT)

    def f(b):
        return torch.tanh(b @ W.T)

    x, y, T = _data(4, 2, 3)
    xs = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(sobolev_loss(f, xs, y, T).total, xs)

    def ref(v):
        J = vmap(jacrev(f))(v.unsqueeze(1)).reshape(4, 3, 2)
        return ((f(v) - y) ** 2).mean() + ((J - T) ** 2).mean()

    torch.testing.assert_close(g, torch.func.grad(ref)(x))
    # torch.func.grad over the loss gives the same
    torch.testing.assert_close(torch.func.grad(lambda v: sobolev_loss(f, v, y, T).total)(x), g)


def test_under_vmap_a_typed_error_names_one_call_on_the_whole_batch():
    x, y, T = _data(4, 2, 1)
    with pytest.raises(UnsupportedOperationError, match="concatenate"):
        vmap(lambda v: sobolev_loss(lambda b: b[:, :1], v, y, T).total)(x.expand(2, 4, 2))


@pytest.mark.parametrize("backend", ["eager", "inductor"])
@pytest.mark.parametrize("mode", ["full", "projected"])
def test_compiled_gives_the_same_value(backend, mode):
    torch._dynamo.reset()
    net = _net(2, 3)
    x, y, T = _data(5, 2, 3)
    kw = {"mode": mode, "seed": 0} if mode == "projected" else {}
    for jac_mode in ("forward", "reverse"):
        compiled = torch.compile(lambda v, jm=jac_mode: sobolev_loss(net, v, y, T, jac_mode=jm,
                                                                      **kw).total,
                                 backend=backend)
        torch.testing.assert_close(compiled(x), sobolev_loss(net, x, y, T, jac_mode=jac_mode,
                                                             **kw).total)


def test_trains_a_network_on_values_and_partials():
    """A few hundred Adam steps on Rosenbrock's values and gradients: both errors fall."""
    torch.manual_seed(0)
    net = _net(2, 1, width=16)
    x = torch.rand(20, 2, dtype=DT) * 2 - 1
    a, b = x[:, 0], x[:, 1]
    y = ((1 - a) ** 2 + (b - a ** 2) ** 2).unsqueeze(1)
    dydx = torch.stack([-2 * (1 - a) - 4 * a * (b - a ** 2), 2 * (b - a ** 2)], 1)[:, None]
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    first = sobolev_loss(net, x, y, dydx)
    for _ in range(300):
        opt.zero_grad()
        sobolev_loss(net, x, y, dydx).backward()
        opt.step()
    last = sobolev_loss(net, x, y, dydx)
    assert last.value < 0.05 * first.value and last.jacobian < 0.05 * first.jacobian


@pytest.mark.cuda
def test_cuda_matches_cpu():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    net = _net(3, 2)
    x, y, T = _data(6, 3, 2)
    T[1, 0, 1] = float("nan")
    cpu = sobolev_loss(net, x, y, T, weight=0.3)
    gc = _grads(cpu.total, net)
    net_c = net.cuda()
    gpu = sobolev_loss(net_c, x.cuda(), y.cuda(), T.cuda(), weight=0.3)
    torch.testing.assert_close(gpu.total.cpu(), cpu.total)
    for a, b in zip(_grads(gpu.total, net_c), gc, strict=True):
        torch.testing.assert_close(a.cpu(), b)
    proj = sobolev_loss(net_c, x.cuda(), y.cuda(), torch.nan_to_num(T).cuda(), mode="projected",
                        k=2, seed=0)
    assert proj.directions is not None and proj.directions.device.type == "cuda"


@pytest.mark.parametrize(("mode", "jac_mode"), [("full", "forward"), ("full", "reverse"),
                                                ("projected", "forward"),
                                                ("projected", "reverse")])
def test_a_small_memory_budget_chunks_the_products_without_changing_the_result(mode, jac_mode):
    from jacobite import config
    from jacobite.nn.sobolev import _memory

    net = _net(3, 4)
    x, y, T = _data(6, 3, 4)
    kw = {"mode": mode, "jac_mode": jac_mode}
    if mode == "projected":
        kw.update(k=3, seed=2)
    whole = sobolev_loss(net, x, y, T, **kw)
    per_row = _memory.row_bytes(net, x, net)
    with config.memory_budget(per_row * 6 * 3):  # one product per pass
        assert _memory.chunk(4, 3 * per_row * 6) == 1
        chunked = sobolev_loss(net, x, y, T, **kw)
    torch.testing.assert_close(chunked.total, whole.total)
    for a, b in zip(_grads(chunked.total, net), _grads(whole.total, net), strict=True):
        torch.testing.assert_close(a, b)
    assert _memory.chunk(4, 10) == 4  # the default budget holds them all


def test_targets_changed_in_place_between_calls_are_seen():
    """The last call's validated targets are reused only for the same, unchanged tensors."""
    net = _net(2, 1)
    x, y, T = _data(5, 2, 1)
    first = sobolev_loss(net, x, y, T).total.detach()
    T.mul_(2.0)
    y.add_(1.0)
    _, _, ref = _reference(net, x, y, T)
    torch.testing.assert_close(sobolev_loss(net, x, y, T).total, ref)
    assert not torch.equal(first, ref.detach())
    T[0, 0, 0] = float("nan")  # an in-place NaN is a missing partial from now on
    _, jac, _ = _reference(net, x, y, T)
    torch.testing.assert_close(sobolev_loss(net, x, y, T).jacobian, jac)
    x[0, 0] = float("inf")
    with pytest.raises(NonFiniteInputError):
        sobolev_loss(net, x, y, T)


def test_a_module_changed_after_a_call_is_seen():
    net = _net(2, 1)
    x, y, T = _data(4, 2, 1)
    sobolev_loss(net, x, y, T)
    net.insert(2, torch.nn.BatchNorm1d(12).to(DT))  # added after the first call
    with pytest.raises(ModuleStateError, match="BatchNorm"):
        sobolev_loss(net, x, y, T)
