"""FGSM and PGD from the input gradient of the loss, the robustness curve and its plot."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from jacobite.analysis.adversarial import (
    accuracy,
    accuracy_vs_eps,
    fgsm,
    input_gradient,
    pgd,
    plot_accuracy_vs_eps,
)
from jacobite.errors import InvalidOptionError, ShapeError

D = torch.float64


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 3)).to(D)
    x = torch.randn(32, 5, dtype=D)
    y = torch.randint(3, (32,))
    return model, x, y


def test_fgsm_is_eps_times_sign_of_the_gradient():
    model, x, y = _setup()
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(model(xg), y), xg)
    adv = fgsm(model, x, y, eps=0.03)
    assert torch.equal(adv, x + 0.03 * g.sign())
    assert all(p.grad is None for p in model.parameters())
    clamped = fgsm(model, x, y, eps=0.5, clamp=(-0.2, 0.2))
    assert clamped.min() >= -0.2 and clamped.max() <= 0.2


def test_fgsm_on_a_linear_model_matches_the_closed_form():
    # loss(x) = mean_b (w·x_b)·s_b: linear, so FGSM's increase is exactly ε·‖∇ₓ loss‖₁
    torch.manual_seed(1)
    w = torch.randn(4, dtype=D)
    x, s = torch.randn(10, 4, dtype=D), torch.randn(10, dtype=D)

    def loss(out, target):
        return (out[:, 0] * target).mean()

    def model(b):
        return (b @ w)[:, None]

    eps = 0.1
    before = loss(model(x), s)
    after = loss(model(fgsm(model, x, s, eps, loss=loss)), s)
    closed = eps * (s.abs()[:, None] * w.abs()).sum() / 10  # ε‖∇ₓ loss‖₁
    torch.testing.assert_close(after - before, closed, rtol=1e-12, atol=1e-14)
    _, g = input_gradient(model, x, s, loss)
    torch.testing.assert_close(g, s[:, None] * w / 10)


@pytest.mark.parametrize("norm", ["inf", "2"])
def test_pgd_stays_in_the_ball_and_raises_the_loss(norm):
    model, x, y = _setup(2)
    eps = 0.3
    adv = pgd(model, x, y, eps=eps, alpha=0.1, steps=10, seed=0, norm=norm)
    d = (adv - x).flatten(1)
    size = d.abs().max(1).values if norm == "inf" else d.norm(dim=1)
    assert bool((size <= eps + 1e-12).all())
    clean = F.cross_entropy(model(x), y)
    assert F.cross_entropy(model(adv), y) > clean
    if norm == "inf":  # ten steps do at least as well as one
        assert F.cross_entropy(model(adv), y) >= F.cross_entropy(model(fgsm(model, x, y, eps)), y)
    again = pgd(model, x, y, eps=eps, alpha=0.1, steps=10, seed=0, norm=norm)
    assert torch.equal(adv, again)  # seeded random start


def test_pgd_without_random_start_and_with_clamp():
    model, x, y = _setup(3)
    adv = pgd(model, x, y, eps=0.2, steps=3, random_start=False, clamp=(-1.0, 1.0))
    assert adv.min() >= -1 and adv.max() <= 1
    assert bool(((adv - x.clamp(-1, 1)).abs() <= 0.2 + 1e-12).all())


def test_accuracy_vs_eps_decreases_and_starts_clean():
    model, x, y = _setup(4)
    curve = accuracy_vs_eps(model, x, y, [0.0, 0.1, 0.5, 2.0], attack="pgd", seed=0)
    assert [e for e, _ in curve] == [0.0, 0.1, 0.5, 2.0]
    assert curve[0][1] == accuracy(model, x, y)
    accs = [a for _, a in curve]
    assert accs[-1] <= accs[0] and accs[-1] < 0.2
    f = accuracy_vs_eps(model, x, y, [0.0, 0.5], attack="fgsm")
    assert f[1][1] <= f[0][1]


def test_errors():
    model, x, y = _setup()
    with pytest.raises(InvalidOptionError):
        fgsm(model, x, y, eps=-1.0)
    with pytest.raises(ShapeError):
        fgsm(model, x, y[:3], eps=0.1)
    with pytest.raises(InvalidOptionError):
        pgd(model, x, y, eps=0.1, norm="1")
    with pytest.raises(InvalidOptionError):
        pgd(model, x, y, eps=0.1, steps=0)
    with pytest.raises(InvalidOptionError):
        accuracy_vs_eps(model, x, y, [0.1], attack="cw")
    with pytest.raises(InvalidOptionError):
        fgsm(model, x, y, eps=0.1, clamp=(1.0, 0.0))


def test_plot(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "acc.png"
    fig = plot_accuracy_vs_eps({"a": [(0.0, 1.0), (0.1, 0.5)], "b": [(0.0, 0.9), (0.1, 0.7)]},
                               save=str(path))
    assert len(fig.axes[0].lines) == 2 and path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ShapeError):
        plot_accuracy_vs_eps({"a": []})


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits_robustness.py"


def test_digits_example_regularisation_helps_under_pgd():
    pytest.importorskip("sklearn")
    spec = importlib.util.spec_from_file_location("digits_robustness_example", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.run(epochs=6, lr=1e-2, lam=0.05, seed=0, eps_list=(0.0,), steps=5, plot=None)
    plain, reg = res["plain"], res["jacobian-regularised"]
    assert plain["clean"] > 0.9 and abs(reg["clean"] - plain["clean"]) < 0.05
    assert reg["pgd"] >= plain["pgd"] + 0.1  # seeded: 0.34 → 0.69 with 10 steps
    assert reg["frobenius2"] < plain["frobenius2"] / 10


def test_pgd_seed_none_follows_torch_manual_seed_and_int_repeats() -> None:
    model = torch.nn.Linear(4, 3).double()
    x, y = torch.zeros(5, 4, dtype=torch.float64), torch.zeros(5, dtype=torch.long)

    def attack(seed):
        return pgd(model, x, y, eps=0.3, steps=1, alpha=0.0, seed=seed)

    torch.manual_seed(3)
    a = attack(None)
    torch.manual_seed(3)
    torch.testing.assert_close(attack(None), a, rtol=0, atol=0)
    torch.testing.assert_close(attack(11), attack(11), rtol=0, atol=0)
    assert not torch.equal(attack(11), attack(12))
    assert (a - x).abs().max() <= 0.3
