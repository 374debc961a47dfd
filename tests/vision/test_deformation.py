"""jacobian_determinant against closed forms, numpy's gradient, and dense torch.func Jacobians."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jacobite.errors import (
    ArgumentTypeError,
    DtypeError,
    InvalidOptionError,
    NonFiniteInputError,
    ShapeError,
)
from jacobite.vision import JacobianDeterminant, jacobian_determinant, plot_jacobian_determinant

DT = torch.float64


def _coords(shape: tuple[int, ...], spacing: tuple[float, ...]) -> torch.Tensor:
    """Physical coordinates ``(d, *shape)`` in (x, y[, z]) order for a grid ``shape`` (D,) H, W."""
    axes = torch.meshgrid(*[torch.arange(n, dtype=DT) for n in shape], indexing="ij")
    return torch.stack([axes[-1 - a] * spacing[a] for a in range(len(shape))])


def _affine(A: torch.Tensor, t: torch.Tensor, shape, spacing) -> torch.Tensor:
    """u(x) = (A - I) x + t sampled on the grid: (1, d, *shape)."""
    x = _coords(shape, spacing)
    d = len(shape)
    return (torch.einsum("ab,b...->a...", A - torch.eye(d, dtype=DT), x)
            + t.reshape(d, *([1] * d)))[None]


@pytest.mark.parametrize("method", ["central", "forward"])
@pytest.mark.parametrize("dims", [2, 3])
def test_affine_fields_give_det_A_on_every_sample(method, dims):
    g = torch.Generator().manual_seed(dims)
    A = torch.eye(dims, dtype=DT) + 0.3 * torch.randn(dims, dims, generator=g, dtype=DT)
    shape = (5, 6, 7)[-dims:]
    spacing = (0.7, 1.3, 2.0)[:dims]
    u = _affine(A, torch.randn(dims, generator=g, dtype=DT), shape, spacing)
    r = jacobian_determinant(u, spacing=spacing, method=method)
    want = torch.linalg.det(A)
    assert isinstance(r, JacobianDeterminant) and r.det.shape == (1, *shape)
    torch.testing.assert_close(r.det, want.expand(1, *shape), rtol=0, atol=1e-12)
    torch.testing.assert_close(r.min, want[None], rtol=0, atol=1e-12)
    torch.testing.assert_close(r.max, want[None], rtol=0, atol=1e-12)
    assert float(r.fraction_folded) == (1.0 if want <= 0 else 0.0)
    phi = u + _coords(shape, spacing)[None]
    torch.testing.assert_close(jacobian_determinant(phi, spacing=spacing, kind="map",
                                                    method=method).det, r.det)


@settings(max_examples=30, deadline=None)
@given(entries=st.lists(st.floats(-2, 2), min_size=4, max_size=4),
       sx=st.floats(0.1, 5), sy=st.floats(0.1, 5), method=st.sampled_from(["central", "forward"]))
def test_affine_property_any_matrix_and_spacing(entries, sx, sy, method):
    A = torch.tensor(entries, dtype=DT).reshape(2, 2)
    u = _affine(A, torch.tensor([0.5, -1.0], dtype=DT), (4, 5), (sx, sy))
    det = jacobian_determinant(u, spacing=(sx, sy), method=method).det
    scale = 1 + float(A.abs().max()) ** 2
    torch.testing.assert_close(det, torch.linalg.det(A).expand(1, 4, 5), rtol=0,
                               atol=1e-12 * scale)


def test_channel_order_is_x_along_width_y_along_height_z_along_depth():
    x, y = _coords((4, 6), (1.0, 1.0))
    stretch_x = torch.stack([0.5 * x, 0 * y])[None]  # u_x grows along W: det 1.5
    shear = torch.stack([0.5 * y, 0 * y])[None]  # u_x grows along H: det 1
    assert torch.allclose(jacobian_determinant(stretch_x).det, torch.tensor(1.5, dtype=DT))
    assert torch.allclose(jacobian_determinant(shear).det, torch.tensor(1.0, dtype=DT))
    # anisotropic spacing: samples 2 apart along x, u_x = x/2 in the same units
    x2, _ = _coords((4, 6), (2.0, 1.0))
    u = torch.stack([0.5 * x2, 0 * x2])[None]
    assert torch.allclose(jacobian_determinant(u, spacing=(2.0, 1.0)).det,
                          torch.tensor(1.5, dtype=DT))
    X, _, Z = _coords((4, 5, 6), (1.0, 1.0, 1.0))
    along_z = torch.stack([0 * X, 0 * X, -0.25 * Z])[None]
    along_x = torch.stack([0 * X, 0 * X, -0.25 * X])[None]
    assert torch.allclose(jacobian_determinant(along_z).det, torch.tensor(0.75, dtype=DT))
    assert torch.allclose(jacobian_determinant(along_x).det, torch.tensor(1.0, dtype=DT))


def _folding_quadratic(shape, a, c):
    """u_i = a_i (x_i - c_i)^2: det = prod(1 + 2 a_i (x_i - c_i)), exact for the stencils'
    central rule everywhere (second order, so quadratics are differentiated exactly)."""
    x = _coords(shape, (1.0,) * len(shape))
    u = torch.stack([a[i] * (x[i] - c[i]) ** 2 for i in range(len(shape))])[None]
    factors = [1 + 2 * a[i] * (x[i] - c[i]) for i in range(len(shape))]
    return u, math.prod(factors)


@pytest.mark.parametrize("dims", [2, 3])
def test_known_folding_field_fraction_folded_is_the_analytic_count(dims):
    shape = (12, 16, 20)[-dims:]
    a, c = (-0.1, 0.15, -0.07)[:dims], (6.3, 4.1, 9.2)[:dims]
    u, det = _folding_quadratic(shape, a, c)
    r = jacobian_determinant(u)
    torch.testing.assert_close(r.det[0], det, rtol=0, atol=1e-12)
    # along axis i the factor is <= 0 on a known set of integer coordinates
    neg = []
    for i in range(dims):
        n = shape[-1 - i]
        root = c[i] - 1 / (2 * a[i])  # factor changes sign here
        cnt = sum(1 for j in range(n) if (j > root if a[i] < 0 else j < root))
        neg.append(cnt / n)
    # folded where an odd number of the independent factors is negative
    odd = 0.0
    for mask in range(1 << dims):
        if bin(mask).count("1") % 2:
            odd += math.prod(neg[i] if mask >> i & 1 else 1 - neg[i] for i in range(dims))
    assert 0 < odd < 1
    assert float(r.fraction_folded) == pytest.approx(odd, abs=1e-12)
    assert float(r.min) == pytest.approx(float(det.min())) and float(r.min) < 0
    torch.testing.assert_close(r.folded[0], det <= 0)


def test_sine_fold_fraction_tends_to_the_continuous_value():
    # u = (a sin kx, a sin ky): det = (1 + ak cos kx)(1 + ak cos ky); one factor < 0 on a
    # fraction f = 1 - arccos(-1/(ak))/pi of each period, so the folded area is 2 f (1 - f).
    n, periods, ak = 240, 4, 2.0
    h = 2 * math.pi * periods / n
    k = 1.0
    x, y = _coords((n, n), (h, h))
    u = torch.stack([ak / k * torch.sin(k * x), ak / k * torch.sin(k * y)])[None]
    r = jacobian_determinant(u, spacing=h)
    f = 1 - math.acos(-1 / ak) / math.pi
    assert float(r.fraction_folded) == pytest.approx(2 * f * (1 - f), abs=4 / n)
    # and numpy's gradient (same second-order rule, edges included) gives the same map
    gx = np.gradient(u[0].numpy(), h, axis=2, edge_order=2)
    gy = np.gradient(u[0].numpy(), h, axis=1, edge_order=2)
    det = (1 + gx[0]) * (1 + gy[1]) - gy[0] * gx[1]
    np.testing.assert_allclose(r.det[0].numpy(), det, rtol=0, atol=1e-12)


def _smooth(p: torch.Tensor, a: float) -> torch.Tensor:
    """φ(p) = p + u(p), u analytic with wave numbers <= 1.3: third derivatives <= a 1.3^3."""
    if p.shape[0] == 2:
        x, y = p
        return p + a * torch.stack([torch.sin(1.1 * x + 0.7 * y),
                                    torch.cos(0.9 * x) * torch.sin(1.3 * y)])
    x, y, z = p
    return p + a * torch.stack([torch.sin(1.1 * x + 0.7 * z),
                                torch.cos(0.9 * y) * torch.sin(1.3 * z),
                                torch.sin(0.8 * x) * torch.cos(1.2 * y)])


def _oracle_error(dims: int, n: int, method: str, a: float = 0.3) -> tuple[float, float]:
    """(max |det error|, the stencil's truncation bound) against torch.func on an n^dims grid."""
    h = 4.0 / n
    shape = (n,) * dims
    pts = _coords(shape, (h,) * dims).reshape(dims, -1).T
    J = torch.func.vmap(torch.func.jacfwd(lambda p: _smooth(p, a)))(pts)
    want = torch.linalg.det(J).reshape(shape)
    phi = torch.func.vmap(lambda p: _smooth(p, a))(pts).T.reshape(dims, *shape)[None]
    got = jacobian_determinant(phi, spacing=h, kind="map", method=method).det[0]
    # per entry: the edge rule's h^2/3 max|f'''| (h^2/6 inside) or forward h/2 max|f''|, every
    # m-th directional derivative of a component being at most a 1.3^m; |J| entries <= 1 + 1.3a
    eps = h * h / 3 * a * 1.3 ** 3 if method == "central" else h / 2 * a * 1.3 ** 2
    cofactor = (1 + a * 1.3) ** (dims - 1) * math.factorial(dims - 1)
    bound = 1.1 * dims * dims * eps * cofactor  # first order in eps, 10% for the rest
    return float((got - want).abs().max()), bound


@pytest.mark.parametrize("method,order", [("central", 2), ("forward", 1)])
@pytest.mark.parametrize("dims", [2, 3])
def test_against_a_dense_torch_func_jacobian_within_the_truncation_error(dims, method, order):
    n = 24 if dims == 2 else 12
    err, bound = _oracle_error(dims, n, method)
    assert err <= bound, (err, bound)
    err2, _ = _oracle_error(dims, 2 * n, method)
    assert err / err2 == pytest.approx(2 ** order, rel=0.35)  # the stencil's order shows


@pytest.mark.parametrize("dims", [2, 3])
def test_float32_follows_float64(dims):
    g = torch.Generator().manual_seed(3)
    u = 0.4 * torch.randn(2, dims, *(6,) * dims, generator=g, dtype=DT)
    r64 = jacobian_determinant(u)
    r32 = jacobian_determinant(u.float())
    assert r32.det.dtype == torch.float32 and r32.fraction_folded.dtype == torch.float32
    torch.testing.assert_close(r32.det.double(), r64.det, rtol=0, atol=1e-5)
    assert r64.det.shape == (2, *(6,) * dims) and r64.fraction_folded.shape == (2,)
    manual = (r64.det <= 0).double().reshape(2, -1).mean(1)
    torch.testing.assert_close(r64.fraction_folded, manual)


def test_det_is_differentiable_in_the_field():
    u = 0.2 * torch.randn(1, 2, 4, 5, dtype=DT, generator=torch.Generator().manual_seed(1))
    u.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: jacobian_determinant(v).det, (u,))
    assert torch.autograd.gradcheck(lambda v: jacobian_determinant(v, method="forward").det, (u,))


@pytest.mark.parametrize("bad,kw,err", [
    (torch.zeros(2, 5, 5, dtype=DT), {}, ShapeError),
    (torch.zeros(1, 3, 5, 5, dtype=DT), {}, ShapeError),
    (torch.zeros(1, 2, 5, 5, 5, dtype=DT), {}, ShapeError),
    (torch.zeros(1, 2, 2, 5, dtype=DT), {}, ShapeError),
    (torch.zeros(1, 2, 1, 5, dtype=DT), {"method": "forward"}, ShapeError),
    (torch.zeros(1, 2, 5, 5, dtype=torch.int64), {}, DtypeError),
    (torch.full((1, 2, 5, 5), math.nan, dtype=DT), {}, NonFiniteInputError),
    ("field", {}, ArgumentTypeError),
    (torch.zeros(1, 2, 5, 5, dtype=DT), {"spacing": (1.0, 1.0, 1.0)}, ShapeError),
    (torch.zeros(1, 2, 5, 5, dtype=DT), {"spacing": -1.0}, InvalidOptionError),
    (torch.zeros(1, 2, 5, 5, dtype=DT), {"spacing": "1"}, ArgumentTypeError),
    (torch.zeros(1, 2, 5, 5, dtype=DT), {"kind": "flow"}, InvalidOptionError),
    (torch.zeros(1, 2, 5, 5, dtype=DT), {"method": "backward"}, InvalidOptionError),
])
def test_typed_errors(bad, kw, err):
    with pytest.raises(err):
        jacobian_determinant(bad, **kw)


def test_plot_draws_the_deformed_grid_coloured_by_det():
    pytest.importorskip("matplotlib")
    u, _ = _folding_quadratic((12, 16), (-0.1, 0.15), (6.3, 4.1))
    fig = plot_jacobian_determinant(torch.cat([u, 0 * u]), step=3)
    ax, bar = fig.axes
    assert bar.get_ylabel() == "det J" and ax.yaxis_inverted()
    folded = float(jacobian_determinant(u).fraction_folded)
    assert f"{folded:.2%}" in ax.get_title()
    from matplotlib.contour import ContourSet

    assert any(isinstance(c, ContourSet) for c in ax.collections)  # det J = 0 outlined
    ref = plot_jacobian_determinant(u, domain="reference").axes[0]
    x, y = _coords((12, 16), (1.0, 1.0))
    corners = ref.collections[0].get_coordinates()  # the colour mesh sits on the reference grid
    np.testing.assert_allclose(corners[..., 0], x.numpy())
    np.testing.assert_allclose(corners[..., 1], y.numpy())
    with pytest.raises(ShapeError):
        plot_jacobian_determinant(torch.zeros(1, 3, 4, 4, 4, dtype=DT))
    with pytest.raises(InvalidOptionError):
        plot_jacobian_determinant(u, domain="moving")
    with pytest.raises(InvalidOptionError):
        plot_jacobian_determinant(u, index=1)
