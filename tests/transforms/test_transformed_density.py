"""TransformedDensity: integrates to one, agrees with torch's TransformedDistribution and with
zuko's flows, log-det exact by AD or structured, inverse given / from the Transform / by root."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import (
    AffineTransform,
    ExpTransform,
    MultivariateNormal,
    Normal,
    TransformedDistribution,
)

from jacobite.errors import ArgumentTypeError, ConvergenceError, ShapeError
from jacobite.transforms import Planar, Radial, Sylvester, TransformedDensity, integrate

F64 = torch.float64


def _normal(D: int) -> MultivariateNormal:
    return MultivariateNormal(torch.zeros(D, dtype=F64), torch.eye(D, dtype=F64))


def _affine(D: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(D)
    A = torch.eye(D, dtype=F64) + 0.3 * torch.randn(D, D, generator=g, dtype=F64)
    return A, 0.2 * torch.randn(D, generator=g, dtype=F64)


def _smooth(x: torch.Tensor) -> torch.Tensor:
    """A smooth bijection with no closed-form inverse: x + 0.5 tanh(M x) with ‖M‖ < 2."""
    M = torch.tensor([[0.6, 0.3, 0.0], [-0.2, 0.5, 0.4], [0.1, 0.0, 0.7]], dtype=x.dtype)
    D = x.shape[-1]
    return x + 0.5 * torch.tanh(x @ M[:D, :D].mT) * torch.tensor([1.0, -0.5, 0.8])[:D]


def _total(q: TransformedDensity, D: int, epsrel: float) -> float:
    """∫ p_Y over the ball of radius 10 (polar / spherical coordinates): the images of the
    Gaussian's mass leave out far less than the tolerance."""
    res = integrate(lambda y: torch.exp(q.log_prob(y[None]))[0],
                    "polar" if D == 2 else "spherical", {"r": (0, 10)}, epsabs=1e-9,
                    epsrel=epsrel)
    return res.value


def _densities(D: int) -> dict[str, TransformedDensity]:
    A, b = _affine(D)
    Ainv = torch.linalg.inv(A)
    planar = Planar(D, torch.full((D,), 1.2, dtype=F64), torch.full((D,), 0.9, dtype=F64),
                    torch.tensor(0.3, dtype=F64), dtype=F64)
    return {
        "affine": TransformedDensity(_normal(D), lambda x: x @ A.mT + b,
                                     inverse=lambda y: (y - b) @ Ainv.mT),
        "planar": TransformedDensity(_normal(D), planar),
        "radial": TransformedDensity(_normal(D), Radial(D, torch.full((D,), 0.5, dtype=F64),
                                                        torch.tensor(0.2, dtype=F64),
                                                        torch.tensor(1.0, dtype=F64),
                                                        dtype=F64)),
        "smooth": TransformedDensity(_normal(D), _smooth),  # inverted by Newton / root
    }


@pytest.mark.parametrize("kind", ["affine", "planar", "radial", "smooth"])
@pytest.mark.parametrize("D", [2, 3])
def test_integrates_to_one(kind: str, D: int) -> None:
    q = _densities(D)[kind]
    # radial's map has a kink at z0 (r = ‖z − z0‖), which slows the quadrature's convergence
    epsrel = (1e-7 if kind != "radial" else 1e-6) if D == 2 else 1e-5
    assert abs(_total(q, D, epsrel) - 1) < 10 * epsrel


@pytest.mark.parametrize("D", [2, 3])
def test_numerical_inverse_and_ad_logdet_match_jacrev(D: int) -> None:
    by_root = TransformedDensity(_normal(D), _smooth)
    y = _smooth(torch.randn(7, D, dtype=F64, generator=torch.Generator().manual_seed(1)) * 2)
    x = by_root.invert(y)
    torch.testing.assert_close(_smooth(x), y, rtol=1e-12, atol=1e-12)
    # the log-det by AD against slogdet of torch.func.jacrev, sample by sample
    J = torch.stack([torch.func.jacrev(lambda v: _smooth(v[None])[0])(xi) for xi in x])
    expected = _normal(D).log_prob(x) - torch.linalg.slogdet(J)[1]
    torch.testing.assert_close(by_root.log_prob(y), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("transforms", [
    [AffineTransform(torch.tensor([0.5, -1.0], dtype=F64), torch.tensor([2.0, 0.5], dtype=F64),
                     event_dim=1)],
    [ExpTransform()],
])
def test_agrees_with_torch_transformed_distribution(transforms: list) -> None:
    base = _normal(2)
    ref = TransformedDistribution(base, transforms)
    T = transforms[0]
    q = TransformedDensity(base, T)
    y = ref.sample((16,))
    torch.testing.assert_close(q.log_prob(y), ref.log_prob(y))
    # a plain function, its log-det by AD, and the given inverse
    f = TransformedDensity(base, lambda x: T(x), inverse=lambda y: T.inv(y))
    torch.testing.assert_close(f.log_prob(y), ref.log_prob(y))


@pytest.mark.parametrize("layer", [
    Planar(3, dtype=F64), Radial(3, dtype=F64), Sylvester(3, 2, dtype=F64)])
def test_layers_agree_with_torch_and_with_the_ad_logdet(layer: torch.nn.Module) -> None:
    torch.manual_seed(4)
    base = _normal(3)
    y = TransformedDistribution(base, [layer]).sample((9,))
    ref = TransformedDistribution(base, [layer]).log_prob(y)
    torch.testing.assert_close(TransformedDensity(base, layer).log_prob(y), ref)
    by_ad = TransformedDensity(base, lambda x: layer(x), inverse=lambda v: layer.inv(v))
    torch.testing.assert_close(by_ad.log_prob(y), ref, rtol=1e-10, atol=1e-10)


def test_rsample_is_differentiable_through_the_transform() -> None:
    torch.manual_seed(0)
    layer = Planar(2, dtype=F64)
    q = TransformedDensity(_normal(2), layer)
    y = q.rsample((5,))
    assert y.shape == (5, 2) and y.requires_grad
    (g,) = torch.autograd.grad(y.sum(), [layer.u])
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    s = q.sample((4, 3))
    assert s.shape == (4, 3, 2) and not s.requires_grad
    assert q.log_prob(s).shape == (4, 3)


def test_log_prob_trains_a_transform_with_a_given_inverse() -> None:
    scale = torch.tensor([1.0, 1.0], dtype=F64, requires_grad=True)
    q = TransformedDensity(_normal(2), lambda x: x * scale, inverse=lambda y: y / scale)
    data = torch.randn(400, 2, dtype=F64, generator=torch.Generator().manual_seed(3)) * 3
    (g,) = torch.autograd.grad(-q.log_prob(data).mean(), [scale])
    # d/ds of the Gaussian NLL: 1/s - mean(y²)/s³ at s = 1
    expected = 1 - (data ** 2).mean(0)
    torch.testing.assert_close(g, expected)


def test_agrees_with_a_zuko_flow() -> None:
    zuko = pytest.importorskip("zuko")
    torch.manual_seed(0)
    flow = zuko.flows.MAF(3, transforms=2, hidden_features=[16]).to(F64)
    dist = flow()
    y = dist.sample((8,))
    # a zuko flow's transform maps data to noise: the generative map is its inverse
    q = TransformedDensity(dist.base, dist.transform.inv)
    torch.testing.assert_close(q.log_prob(y), dist.log_prob(y))


def test_layer_inside_a_zuko_flow() -> None:
    zuko = pytest.importorskip("zuko")
    layer = Planar(2, dtype=F64)
    base = zuko.lazy.UnconditionalDistribution(
        zuko.distributions.DiagNormal, torch.zeros(2, dtype=F64), torch.ones(2, dtype=F64),
        buffer=True)
    # zuko's transforms map data to noise: the layer's inverse there is the layer here
    flow = zuko.lazy.Flow([zuko.lazy.UnconditionalTransform(lambda t: t.inv, layer)], base)
    assert any(p is layer.u for p in flow.parameters())  # the layer trains with the flow
    y = flow().sample((6,))
    ref = TransformedDistribution(_normal(2), [layer]).log_prob(y)
    torch.testing.assert_close(flow().log_prob(y), ref)
    torch.testing.assert_close(TransformedDensity(_normal(2), layer).log_prob(y), ref)
    (g,) = torch.autograd.grad(-flow().log_prob(y).mean(), [layer.w])
    assert torch.isfinite(g).all() and g.abs().sum() > 0


def test_bad_arguments_name_the_fix() -> None:
    with pytest.raises(ArgumentTypeError, match="Distribution"):
        TransformedDensity("normal", torch.sin)  # type: ignore[arg-type]
    with pytest.raises(ShapeError, match="Independent"):
        TransformedDensity(Normal(0.0, 1.0), torch.sin)
    with pytest.raises(ArgumentTypeError):
        TransformedDensity(_normal(2), 3)  # type: ignore[arg-type]
    q = TransformedDensity(_normal(2), lambda x: x.sum(-1))
    with pytest.raises(ShapeError, match="batch"):
        q.sample((3,))
    with pytest.raises(ShapeError, match=r"\(\.\.\., 2\)"):
        TransformedDensity(_normal(2), torch.sinh).log_prob(torch.ones(3))
    not_invertible = TransformedDensity(_normal(2), lambda x: x ** 2 + 1)
    with pytest.raises(ConvergenceError, match="inverse="):
        not_invertible.log_prob(torch.tensor([[-1.0, -1.0]], dtype=F64))
    assert math.isfinite(float(TransformedDensity(_normal(2), torch.sinh).log_prob(
        torch.ones(2, dtype=F64))))


def test_numerical_inverse_is_differentiable_in_what_the_map_closes_over() -> None:
    # T(x) = x + s tanh(x), elementwise: dx/ds = -tanh(x) / (1 + s sech²(x)), dx/dy = 1 / (...)
    s = torch.tensor(0.7, dtype=F64, requires_grad=True)
    q = TransformedDensity(_normal(2), lambda x: x + s * torch.tanh(x))
    y = torch.tensor([[0.3, -2.0], [1.5, 0.1]], dtype=F64, requires_grad=True)
    x = q.invert(y)
    gs, gy = torch.autograd.grad(x.sum(), [s, y])
    xd = x.detach()
    slope = 1 + 0.7 / torch.cosh(xd) ** 2
    torch.testing.assert_close(gs, (-torch.tanh(xd) / slope).sum())
    torch.testing.assert_close(gy, 1 / slope)


def test_samples_newton_leaves_go_to_root() -> None:
    from jacobite.transforms.flows._invert import invert

    y = _smooth(torch.randn(3, 2, dtype=F64, generator=torch.Generator().manual_seed(5)))
    x = invert(_smooth, y, max_iter=0)  # no Newton step: every sample solved by jacobite.root
    torch.testing.assert_close(_smooth(x), y, rtol=1e-12, atol=1e-12)


def test_under_vmap_an_unsolved_sample_is_nan_not_a_wrong_number() -> None:
    from jacobite.transforms.flows._invert import invert

    def square(x: torch.Tensor) -> torch.Tensor:  # no preimage of y < 1
        return x ** 2 + 1

    ys = torch.tensor([[[2.0, 5.0]], [[0.0, 2.0]]], dtype=F64)
    xs = torch.vmap(lambda yi: invert(square, yi))(ys)
    torch.testing.assert_close(square(xs[0]), ys[0])
    assert bool(torch.isnan(xs[1]).all())


class _Counting(torch.nn.Module):
    """x + 0.5 tanh(x) that counts its calls in a buffer (assigned anew, not in place, which
    torch.func refuses on its own): a module changing its own state."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls = self.calls + 1
        return x + 0.5 * torch.tanh(x)


def test_numerical_inverse_and_exact_logdet_refuse_a_module_that_changes_itself() -> None:
    from jacobite.errors import ModuleStateError

    T = _Counting()
    q = TransformedDensity(_normal(2), T)
    y = torch.tensor([[0.3, -0.2]], dtype=F64)
    with pytest.raises(ModuleStateError):
        q.log_prob(y)
    assert int(T.calls) == 0  # put back as it was
    with pytest.raises(ModuleStateError):
        q.log_abs_det_jacobian(y)
    assert int(T.calls) == 0


def test_sampling_and_a_given_inverse_call_the_module_once_unguarded() -> None:
    T = _Counting()
    q = TransformedDensity(_normal(2), T, inverse=lambda v: v)  # a (wrong) inverse, for counting
    q.rsample((4,))
    q.sample((4,))
    q.invert(torch.zeros(1, 2, dtype=F64))
    assert int(T.calls) == 2  # as TransformedDistribution would


def test_exact_logdet_of_a_callable_matches_slogdet_of_jacrev() -> None:
    x = torch.randn(5, 3, dtype=F64, generator=torch.Generator().manual_seed(3))
    q = TransformedDensity(_normal(3), _smooth)
    J = torch.func.vmap(torch.func.jacrev(lambda v: _smooth(v[None])[0]))(x)
    torch.testing.assert_close(q.log_abs_det_jacobian(x), torch.linalg.slogdet(J)[1])
