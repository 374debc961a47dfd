"""Named transforms: forward maps, AD Jacobians and determinants against closed forms and
torch.func, conventions, default regions, composition and user maps."""

from __future__ import annotations

import math

import torch
from torch.func import jacfwd, vmap

from jacobite.transforms import (
    TRANSFORMS,
    Affine,
    Cylindrical,
    Polar,
    Spherical,
    Transform,
    get_transform,
)

DT = torch.float64
INF = math.inf


def _points(n: int, k: int = 7, seed: int = 0) -> torch.Tensor:
    """Random points with r in (0.1, 3), angles in (0.1, π - 0.1), others in (-2, 2)."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(k, n, generator=g, dtype=DT)
    u[:, 0] = 0.1 + 2.9 * u[:, 0]
    if n >= 2:
        u[:, 1] = 0.1 + (math.pi - 0.2) * u[:, 1]
    if n >= 3:
        u[:, 2] = -2 + 4 * u[:, 2]
    return u


def test_polar_forward_jacobian_and_det_match_closed_forms():
    u = _points(2)
    r, t = u[:, 0], u[:, 1]
    T = Polar()
    torch.testing.assert_close(T.forward(u), torch.stack([r * t.cos(), r * t.sin()], -1))
    J_closed = torch.stack([torch.stack([t.cos(), -r * t.sin()], -1),
                            torch.stack([t.sin(), r * t.cos()], -1)], -2)
    torch.testing.assert_close(T.jacobian(u), J_closed)
    torch.testing.assert_close(T.det_jacobian(u), r)  # |det J| = r (reference 003 §3)


def test_cylindrical_det_is_r():
    u = _points(3)
    T = Cylindrical()
    torch.testing.assert_close(T.det_jacobian(u), u[:, 0])
    torch.testing.assert_close(T.forward(u)[:, 2], u[:, 2])


def test_spherical_det_is_r2_sin_theta_and_matches_torch_func():
    u = _points(3, k=11)
    T = Spherical()
    r, theta = u[:, 0], u[:, 1]
    torch.testing.assert_close(T.det_jacobian(u), r ** 2 * theta.sin())
    oracle = vmap(jacfwd(lambda v: torch.stack([
        v[0] * v[1].sin() * v[2].cos(), v[0] * v[1].sin() * v[2].sin(), v[0] * v[1].cos()])))(u)
    torch.testing.assert_close(T.jacobian(u), oracle)


def test_spherical_convention_theta_polar_phi_azimuth():
    T = Spherical()
    pts = torch.tensor([[2.0, 0.0, 1.3], [1.0, math.pi / 2, 0.0], [1.0, math.pi / 2, math.pi / 2],
                        [1.0, math.pi, 0.0]], dtype=DT)
    want = torch.tensor([[0, 0, 2.0], [1, 0, 0], [0, 1, 0], [0, 0, -1]], dtype=DT)
    torch.testing.assert_close(T.forward(pts), want, atol=1e-15, rtol=0)
    assert T.variables == ("r", "theta", "phi")


def test_default_regions_cover_the_whole_space():
    assert Polar().region == ((0, INF), (0, 2 * math.pi))
    assert Cylindrical().region == ((0, INF), (0, 2 * math.pi), (-INF, INF))
    assert Spherical().region == ((0, INF), (0, math.pi), (0, 2 * math.pi))
    assert Affine(torch.eye(3, dtype=DT)).region == ((-INF, INF),) * 3
    assert Transform(lambda u: u, 2).region == ((-INF, INF),) * 2
    assert set(TRANSFORMS) == {"polar", "cylindrical", "spherical"}


def test_region_overrides_by_name_and_with_region():
    assert Polar(region={"r": (0, 1)}).region == ((0, 1), (0, 2 * math.pi))
    T = Spherical().with_region([(0, 2), (0, 1), (0, 3)])
    assert T.region == ((0, 2), (0, 1), (0, 3))
    assert Spherical().region[0] == (0, INF)  # the original is unchanged


def test_affine_jacobian_is_A_and_det_is_det_A():
    g = torch.Generator().manual_seed(3)
    A = torch.randn(3, 3, generator=g, dtype=DT)
    b = torch.randn(3, generator=g, dtype=DT)
    T = Affine(A, b)
    u = torch.randn(5, 3, generator=g, dtype=DT)
    torch.testing.assert_close(T.forward(u), u @ A.T + b)
    torch.testing.assert_close(T.jacobian(u), A.expand(5, 3, 3))
    torch.testing.assert_close(T.det_jacobian(u), torch.linalg.det(A).expand(5))
    assert T.constant_jacobian and T.variables == ("u", "v", "w")


def test_batched_leading_dims_and_single_points():
    T = Polar()
    u = _points(2, k=6).reshape(2, 3, 2)
    assert T.forward(u).shape == (2, 3, 2)
    assert T.jacobian(u).shape == (2, 3, 2, 2)
    assert T.det_jacobian(u).shape == (2, 3)
    torch.testing.assert_close(T.det_jacobian(u[1, 2]), u[1, 2, 0])
    x, d = T.value_and_det(u[0, 0])
    torch.testing.assert_close(x, T.forward(u[0, 0]))
    torch.testing.assert_close(d, u[0, 0, 0])


def test_user_map_written_for_one_point_is_batched_with_vmap():
    # x = u, y = v + u^2 (a shear-like map with det 1); written with u[0] indexing
    T = Transform(lambda u: torch.stack([u[0], u[1] + u[0] ** 2]), variables=("s", "t"))
    u = _points(2, k=5)
    torch.testing.assert_close(T.forward(u)[:, 1], u[:, 1] + u[:, 0] ** 2)
    torch.testing.assert_close(T.det_jacobian(u), torch.ones(5, dtype=DT))
    assert T.coordinates == ("x", "y") and T.dim == 2


def test_composition_multiplies_determinants():
    A = torch.tensor([[2.0, 1.0], [0.0, 3.0]], dtype=DT)
    E = Affine(A) @ Polar(region={"r": (0, 1)})
    u = _points(2)
    torch.testing.assert_close(E.det_jacobian(u), 6.0 * u[:, 0])
    torch.testing.assert_close(E.forward(u), Polar().forward(u) @ A.T)
    assert E.region == ((0, 1), (0, 2 * math.pi)) and E.variables == ("r", "theta")
    assert not E.constant_jacobian
    assert (Affine(A) @ Affine(A)).constant_jacobian


def test_get_transform_by_name_or_instance():
    assert isinstance(get_transform("Polar"), Polar)
    T = Spherical()
    assert get_transform(T) is T


def test_half_precision_determinants_match_the_float64_ones():
    # torch has no half-precision LU: det J is factorised in float32 and rounded back
    u = torch.tensor([[2.0, 0.3], [0.5, -1.0]], dtype=DT)
    want = u[:, 0]  # det J of polar coordinates is r
    for dtype in (torch.float16, torch.bfloat16):
        got = Polar().det_jacobian(u.to(dtype))
        assert got.dtype == dtype
        torch.testing.assert_close(got.double(), want, rtol=1e-2, atol=1e-2)
        _, d = Polar().value_and_det(u[0].to(dtype))
        assert d.dtype == dtype and abs(float(d) - 2.0) < 2e-2
    v = torch.tensor([2.0, 1.0, 0.3], dtype=torch.bfloat16)
    torch.testing.assert_close(Spherical().det_jacobian(v).double(),
                               torch.tensor(4.0 * math.sin(1.0), dtype=DT), rtol=2e-2, atol=0)
