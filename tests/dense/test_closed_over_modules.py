"""Modules closed over by f: a module that would change itself is refused and left as it was;
the documented way to batch statistics (functional_call on copied buffers) gives the Jacobian."""

from __future__ import annotations

import copy
import threading

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.func import functional_call, jacrev

import jacobite
from jacobite._modules import keep_state
from jacobite.errors import ModuleStateError

DT = torch.float64
X = torch.randn(5, 3, generator=torch.Generator().manual_seed(3), dtype=DT)


def _net() -> nn.Module:
    g = torch.Generator().manual_seed(4)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 2)).to(DT)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=DT))
    return net.train()


def _state(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _same(net: nn.Module, before: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


@pytest.mark.parametrize("mode", ["auto", "forward", "reverse"])
@pytest.mark.parametrize("api", ["jacobian", "batch_jacobian", "jacobian_plan", "linearize"])
def test_closed_over_training_batchnorm_is_refused_and_unchanged(api: str, mode: str) -> None:
    net = _net()
    before = _state(net)
    kwargs = {} if api == "linearize" else {"mode": mode}
    with pytest.raises(ModuleStateError, match=r"model\.eval\(\)") as info:
        getattr(jacobite, api)(lambda v: net(v).sum(-1), X, **kwargs)
    assert "BatchNorm1d" in str(info.value) and "functional_call" in str(info.value)
    assert _same(net, before)
    assert int(net[1].num_batches_tracked) == 0 and net.training and net[1].training


def test_refused_again_after_the_probe_is_cached() -> None:
    net = _net()
    f = lambda v: net(v).sum(-1)  # noqa: E731
    net.eval()
    jacobite.jacobian(f, X)  # probe and express lane cached in eval mode
    net.train()
    before = _state(net)
    for mode in ("forward", "reverse"):
        with pytest.raises(ModuleStateError):
            jacobite.jacobian(f, X, mode=mode)
        assert _same(net, before)


def test_functional_call_on_copied_buffers_gives_the_batch_statistics_jacobian() -> None:
    net = _net()
    before = _state(net)

    def f(v: torch.Tensor) -> torch.Tensor:
        buffers = {k: b.clone() for k, b in net.named_buffers()}
        return functional_call(net, buffers, (v,)).sum(-1)

    J = jacobite.jacobian(f, X, mode="reverse")
    assert _same(net, before)
    # the oracle: torch.func on a fresh copy of the model (its own buffers may change)
    twin = _net()
    ref = jacrev(lambda v: functional_call(twin, {k: b.clone() for k, b in
                                                  twin.named_buffers()}, (v,)).sum(-1))(X)
    torch.testing.assert_close(J, ref, rtol=1e-12, atol=1e-12)
    # batch statistics: samples interact, unlike the running-statistics Jacobian
    assert bool((J[0, 1:] != 0).any())


class _Counter(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("calls", torch.zeros((), dtype=DT))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            self.calls += 1
        return x * 2


def test_closed_over_counter_buffer_is_restored_and_refused() -> None:
    counter = _Counter()
    with pytest.raises(ModuleStateError, match="calls"):
        jacobite.jacobian(lambda v: counter(v), X[0], mode="reverse")
    assert float(counter.calls) == 0.0


def test_training_flag_flipped_inside_f_is_put_back() -> None:
    lin = nn.Linear(3, 3).to(DT).eval()

    def f(v: torch.Tensor) -> torch.Tensor:
        y = lin(v)
        lin.train()  # after its first call: the flag it had is on record
        return y

    J = jacobite.jacobian(f, X[0], mode="reverse")
    torch.testing.assert_close(J, lin.weight.detach())
    assert not lin.training


def test_grad_filled_by_a_backward_inside_f_is_put_back() -> None:
    lin = nn.Linear(3, 3).to(DT)

    def f(v: torch.Tensor) -> torch.Tensor:
        lin(v.detach()).sum().backward()  # runs in the plain probe; no transform can follow it
        return lin(v)

    with pytest.raises(RuntimeError, match="backward"):
        jacobite.jacobian(f, X[0], mode="reverse")
    assert lin.weight.grad is None and lin.bias.grad is None


def test_eval_mode_batchnorm_closed_over_is_untouched_and_correct() -> None:
    net = _net().eval()
    before = _state(net)
    J = jacobite.jacobian(lambda v: net(v), X, mode="forward")
    torch.testing.assert_close(J, jacrev(net)(X), rtol=1e-12, atol=1e-12)
    assert _same(net, before)


def test_other_threads_modules_are_not_watched() -> None:
    outside = nn.BatchNorm1d(3).to(DT)
    done = threading.Event()
    go = threading.Event()

    def other() -> None:
        go.wait()
        outside(X)  # another thread trains: its update is its own business
        done.set()

    t = threading.Thread(target=other)
    t.start()
    with keep_state():
        go.set()
        done.wait(10)
    t.join()
    assert int(outside.num_batches_tracked) == 1


def test_keep_state_restores_on_an_exception_and_chains_it() -> None:
    bn = nn.BatchNorm1d(3).to(DT)
    with pytest.raises(ModuleStateError) as info, keep_state():
        bn(X)
        raise ValueError("boom")
    assert isinstance(info.value.__cause__, ValueError)
    assert int(bn.num_batches_tracked) == 0 and float(bn.running_var.sum()) == 3.0


def test_under_an_enclosing_vmap_the_model_is_watched_too() -> None:
    net = _net().eval()
    xs = torch.stack([X, 2 * X])
    J = torch.vmap(lambda x: jacobite.jacobian(lambda v: net(v), x))(xs)
    torch.testing.assert_close(J, torch.stack([jacrev(net)(x) for x in xs]))
    net.train()
    before = _state(net)
    with pytest.raises(ModuleStateError):
        torch.vmap(lambda x: jacobite.jacobian(lambda v: net(v), x))(xs)
    assert _same(net, before)


def test_a_compiled_closure_is_refused_and_unchanged() -> None:
    net = _net()
    before = _state(net)
    compiled = torch.compile(lambda v: net(v), backend="eager")
    with pytest.raises(ModuleStateError):
        jacobite.jacobian(compiled, X)
    assert _same(net, before)


class _Reassigns(nn.Module):
    """Writes its state out of place: the buffer attribute gets a new tensor each call."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("calls", torch.zeros((), dtype=DT))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls = self.calls.detach() + 1
        if not hasattr(self, "seen"):
            self.register_buffer("seen", torch.ones((), dtype=DT))
        return x * 2


@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_a_buffer_assigned_anew_inside_f_is_put_back_and_refused(mode: str) -> None:
    mod = _Reassigns()
    original = mod.calls
    with pytest.raises(ModuleStateError, match="assigned anew"):
        jacobite.jacobian(lambda v: mod(v), X[0], mode=mode)
    assert mod.calls is original and float(original) == 0.0
    assert "seen" not in mod._buffers and list(mod.state_dict()) == ["calls"]


@settings(max_examples=30, deadline=None)
@given(momentum=st.sampled_from([None, 0.1, 0.9]), affine=st.booleans(), track=st.booleans(),
       train=st.booleans(), mode=st.sampled_from(["forward", "reverse"]),
       chunk=st.sampled_from(["auto", 1, 4]))
def test_refused_exactly_when_the_statistics_would_move_and_never_changed(
        momentum: float | None, affine: bool, track: bool, train: bool, mode: str,
        chunk: int | str) -> None:
    g = torch.Generator().manual_seed(5)
    net = nn.Sequential(nn.Linear(3, 4),
                        nn.BatchNorm1d(4, momentum=momentum, affine=affine,
                                       track_running_stats=track),
                        nn.Tanh(), nn.Linear(4, 2)).to(DT)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=DT))
    net.train(train)
    twin = copy.deepcopy(net)  # the oracle runs on a copy: torch.func may change it
    before = _state(net)
    try:
        J = jacobite.jacobian(lambda v: net(v), X, mode=mode, chunk_size=chunk)
    except ModuleStateError:
        assert train and track
    else:
        assert not (train and track)
        torch.testing.assert_close(J, jacrev(twin)(X), rtol=1e-10, atol=1e-10)
    assert _same(net, before)
    assert all(m.training == train for m in net.modules())
