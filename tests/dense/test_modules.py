"""module_jacobian against torch.func.functional_call + jacrev; module state rules."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn
from torch.func import functional_call, jacrev

import jacobite
from jacobite.errors import ArgnumsError, ModuleStateError

DT = torch.float64


def _init(module: nn.Module, seed: int) -> nn.Module:
    """Deterministic float64 parameters and buffers (no global RNG)."""
    g = torch.Generator().manual_seed(seed)
    module = module.to(DT)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.6 * torch.randn(p.shape, generator=g, dtype=DT))
        for name, b in module.named_buffers():
            if b.is_floating_point():
                b.copy_(torch.rand(b.shape, generator=g, dtype=DT) + (0.5 if "var" in name else 0))
    return module


def _mlp() -> tuple[nn.Module, torch.Tensor]:
    with torch.random.fork_rng(devices=[]):
        net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    x = torch.randn(3, generator=torch.Generator().manual_seed(20), dtype=DT)
    return _init(net, 21), x


def _conv() -> tuple[nn.Module, torch.Tensor]:
    with torch.random.fork_rng(devices=[]):
        net = nn.Sequential(nn.Conv1d(2, 3, 3), nn.Tanh(), nn.Flatten(), nn.Linear(18, 2))
    x = torch.randn(1, 2, 8, generator=torch.Generator().manual_seed(22), dtype=DT)
    return _init(net, 23), x


def _bn() -> tuple[nn.Module, torch.Tensor]:
    with torch.random.fork_rng(devices=[]):
        net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 2))
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(24), dtype=DT)
    return _init(net, 25).eval(), x


MODELS = {"mlp": _mlp, "conv": _conv, "batchnorm_eval": _bn}


def _oracle(module: nn.Module, x: torch.Tensor, names: list[str] | None = None) -> dict:
    params = {k: v.detach() for k, v in module.named_parameters()}
    names = list(params) if names is None else names
    rest = {k: v for k, v in params.items() if k not in names}

    def run(p):
        return functional_call(module, ({**p, **rest}, dict(module.named_buffers())), (x,))

    return jacrev(run)({k: params[k] for k in names})


def _snapshot(module: nn.Module) -> dict[str, Any]:
    return {
        "state": {k: v.detach().clone() for k, v in module.state_dict().items()},
        "training": [m.training for m in module.modules()],
        "requires_grad": [p.requires_grad for p in module.parameters()],
    }


def _assert_unchanged(module: nn.Module, snap: dict[str, Any]) -> None:
    now = module.state_dict()
    assert set(now) == set(snap["state"])
    for k, v in snap["state"].items():
        assert torch.equal(now[k], v), f"{k} was modified"
    assert [m.training for m in module.modules()] == snap["training"]
    assert [p.requires_grad for p in module.parameters()] == snap["requires_grad"]
    assert all(p.grad is None for p in module.parameters())


def _flat(J: dict, names: list[str], m: int) -> torch.Tensor:
    return torch.cat([J[k].reshape(m, -1) for k in names], dim=1)


@pytest.mark.parametrize("mode", ["auto", "forward", "reverse"])
@pytest.mark.parametrize("model", list(MODELS))
def test_module_jacobian_dict_and_flat(model: str, mode: str) -> None:
    module, x = MODELS[model]()
    snap = _snapshot(module)
    ref = _oracle(module, x)
    J = jacobite.module_jacobian(module, x, mode=mode)
    assert isinstance(J, dict) and list(J) == list(ref)
    for k in ref:
        assert J[k].shape == ref[k].shape
        torch.testing.assert_close(J[k], ref[k], rtol=1e-12, atol=1e-12)
    value, F = jacobite.module_jacobian(module, x, mode=mode, flat=True, chunk_size=3,
                                        return_value=True)
    with torch.no_grad():
        torch.testing.assert_close(value, module(x), rtol=1e-14, atol=1e-14)
    m = value.numel()
    names = [k for k, _ in module.named_parameters()]
    assert F.shape == (m, sum(p.numel() for p in module.parameters()))
    torch.testing.assert_close(F, _flat(ref, names, m), rtol=1e-12, atol=1e-12)
    _assert_unchanged(module, snap)


@pytest.mark.parametrize("flat", [False, True])
def test_params_subset(flat: bool) -> None:
    module, x = _mlp()
    snap = _snapshot(module)
    names = ["2.bias", "0.weight"]
    ref = _oracle(module, x, names)
    J = jacobite.module_jacobian(module, x, params=names, flat=flat)
    if flat:
        # columns follow module.named_parameters() (documented), whatever order params= lists
        canonical = [k for k, _ in module.named_parameters() if k in names]
        torch.testing.assert_close(J, _flat(ref, canonical, 2), rtol=1e-12, atol=1e-12)
    else:
        assert set(J) == set(names)
        for k in names:
            torch.testing.assert_close(J[k], ref[k], rtol=1e-12, atol=1e-12)
    _assert_unchanged(module, snap)


def test_frozen_parameters_are_left_out_by_default() -> None:
    module, x = _mlp()
    module[0].weight.requires_grad_(False)
    snap = _snapshot(module)
    J = jacobite.module_jacobian(module, x)
    assert set(J) == {"0.bias", "2.weight", "2.bias"}
    ref = _oracle(module, x, ["0.bias", "2.weight", "2.bias"])
    for k in J:
        torch.testing.assert_close(J[k], ref[k], rtol=1e-12, atol=1e-12)
    _assert_unchanged(module, snap)
    # ... but can be asked for by name
    J = jacobite.module_jacobian(module, x, params=["0.weight"])
    torch.testing.assert_close(J["0.weight"], _oracle(module, x, ["0.weight"])["0.weight"],
                               rtol=1e-12, atol=1e-12)


def test_batchnorm_eval_uses_running_statistics() -> None:
    module, x = _bn()
    bn = module[1]
    # the Jacobian of the last output w.r.t. the BatchNorm bias, by hand: running stats are
    # constants, so d out / d beta = W2 * tanh'(.) — compare against the oracle and check that
    # samples do not interact (block structure: sample i's output ignores sample j's input).
    J = jacobite.module_jacobian(module, x, params=["1.bias"])["1.bias"]
    torch.testing.assert_close(J, _oracle(module, x, ["1.bias"])["1.bias"], rtol=1e-12, atol=1e-12)
    Jx = jacobite.jacobian(lambda inp: module(inp), x)
    for i in range(x.shape[0]):
        for j in range(x.shape[0]):
            if i != j:
                assert bool((Jx[i, :, j, :] == 0).all())
    assert not bn.training


def test_batchnorm_train_mode_raises() -> None:
    module, x = _bn()
    module.train()
    snap = _snapshot(module)
    with pytest.raises(ModuleStateError, match=r"eval\(\)") as info:
        jacobite.module_jacobian(module, x)
    assert "BatchNorm1d" in str(info.value)
    assert isinstance(info.value, RuntimeError)
    _assert_unchanged(module, snap)


def test_batchnorm_train_without_running_stats_is_fine() -> None:
    with torch.random.fork_rng(devices=[]):
        net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, track_running_stats=False),
                            nn.Linear(4, 1))
    module = _init(net, 26).train()
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(27), dtype=DT)
    J = jacobite.module_jacobian(module, x)
    ref = _oracle(module, x)
    for k in ref:
        torch.testing.assert_close(J[k], ref[k], rtol=1e-12, atol=1e-12)


class _Counter(nn.Module):
    """Mutates a buffer in forward: its output depends on how often it ran."""

    def __init__(self, inplace: str) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 2)
        self.register_buffer("calls", torch.zeros(1))
        self.inplace = inplace

    def forward(self, x):
        if self.inplace == "add_":
            self.calls.add_(1)
        elif self.inplace == "iadd":
            self.calls += 1
        else:
            self.calls[0] = self.calls[0] + 1
        return self.lin(x) * (1 + 0 * self.calls)


@pytest.mark.parametrize("mode", ["forward", "reverse"])
@pytest.mark.parametrize("inplace", ["add_", "iadd", "setitem"])
def test_module_mutating_a_buffer_raises(inplace: str, mode: str) -> None:
    with torch.random.fork_rng(devices=[]):
        module = _init(_Counter(inplace), 28)
    x = torch.randn(3, generator=torch.Generator().manual_seed(29), dtype=DT)
    snap = _snapshot(module)
    before = module.calls.item()  # _init filled the buffer with a random value
    with pytest.raises(ModuleStateError, match=r"eval\(\)|self\.training"):
        jacobite.module_jacobian(module, x, mode=mode)
    _assert_unchanged(module, snap)
    assert module.calls.item() == before


def test_bad_module_arguments() -> None:
    module, x = _mlp()
    with pytest.raises(ArgnumsError, match=r"jacobite\.jacobian"):
        jacobite.module_jacobian(lambda v: v, x)
    with pytest.raises(ArgnumsError, match="choose from"):
        jacobite.module_jacobian(module, x, params=["nope"])
    for p in module.parameters():
        p.requires_grad_(False)
    with pytest.raises(ArgnumsError, match="requires_grad"):
        jacobite.module_jacobian(module, x)


def test_module_with_two_inputs() -> None:
    class Bilinear(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.zeros(3))

        def forward(self, a, b):
            return torch.tanh(self.w * a) * b

    with torch.random.fork_rng(devices=[]):
        module = _init(Bilinear(), 30)
    g = torch.Generator().manual_seed(31)
    a, b = torch.randn(3, generator=g, dtype=DT), torch.randn(3, generator=g, dtype=DT)
    J = jacobite.module_jacobian(module, a, b)
    ref = jacrev(lambda p: functional_call(module, p, (a, b)))({"w": module.w.detach()})
    torch.testing.assert_close(J["w"], ref["w"], rtol=1e-12, atol=1e-12)
    w = module.w.detach()
    torch.testing.assert_close(J["w"], torch.diag((1 - torch.tanh(w * a) ** 2) * a * b),
                               rtol=1e-12, atol=1e-12)
