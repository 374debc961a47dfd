"""hessian against torch.func.hessian and analytic Hessians; hvp against hessian @ v."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.func import hessian as torch_hessian
from torch.utils._pytree import tree_flatten

import jacobite
from jacobite.errors import ArgnumsError, ShapeError
from tests.battery import DT, Case, assert_tree_close, by_kind, ids

#: Scalar-valued battery cases of one tensor: R^n -> R.
SCALAR = [c for c in by_kind("scalar_out", exclude=("batched",)) if "tensor_in" in c.kinds]


def _critical(v: torch.Tensor) -> torch.Tensor:
    x, y = v[0], v[1]
    return x ** 2 + 4 * y ** 2 - 11 * x + 8 * y - 16


def _flat_hessian(H: Any, x: Any) -> torch.Tensor:
    leaves = tree_flatten(x)[0]
    blocks = tree_flatten(H)[0]
    k = len(leaves)
    rows = [torch.cat([blocks[i * k + j].reshape(a.numel(), b.numel())
                       for j, b in enumerate(leaves)], dim=1) for i, a in enumerate(leaves)]
    return torch.cat(rows, dim=0)


def test_critical_point_example() -> None:
    """f = x² + 4y² − 11x + 8y − 16: Hessian [[2, 0], [0, 8]] everywhere; (5.5, −1) is critical."""
    for point in ([0.0, 0.0], [5.5, -1.0], [-3.0, 7.25]):
        v = torch.tensor(point, dtype=DT)
        H = jacobite.hessian(_critical, v)
        assert H.tolist() == [[2.0, 0.0], [0.0, 8.0]]
        assert jacobite.hessian(_critical, v, chunk_size=1, flat=True).tolist() == \
            [[2.0, 0.0], [0.0, 8.0]]
    crit = torch.tensor([5.5, -1.0], dtype=DT)
    g = jacobite.jacobian(_critical, crit)
    assert g.tolist() == [0.0, 0.0]
    # positive definite Hessian: a minimum
    assert bool((torch.linalg.eigvalsh(jacobite.hessian(_critical, crit)) > 0).all())


@pytest.mark.parametrize("flat", [False, True])
@pytest.mark.parametrize("chunk_size", [None, 1, "auto", 3])
@pytest.mark.parametrize("case", SCALAR, ids=ids)
def test_hessian_matches_torch_func(case: Case, chunk_size: Any, flat: bool) -> None:
    args = case.args()
    H = jacobite.hessian(case.fn, *args, argnums=case.argnums, chunk_size=chunk_size, flat=flat)
    ref = torch_hessian(case.fn, argnums=case.argnums)(*args)
    x = args[case.argnums]
    if flat:
        assert H.shape == (x.numel(), x.numel())
        torch.testing.assert_close(H, ref.reshape(x.numel(), x.numel()), rtol=1e-12, atol=1e-12)
    else:
        assert H.shape == x.shape + x.shape
        torch.testing.assert_close(H, ref, rtol=1e-12, atol=1e-12)
    # A Hessian is symmetric (up to rounding) — an oracle-free check
    Hf = H.reshape(x.numel(), x.numel())
    torch.testing.assert_close(Hf, Hf.T, rtol=1e-10, atol=1e-10)


def test_hessian_rosenbrock_analytic() -> None:
    v = torch.tensor([1.0, 1.0], dtype=DT)  # the minimum of the 2-D Rosenbrock function

    def rosen(x):
        return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2

    assert jacobite.hessian(rosen, v).tolist() == [[802.0, -400.0], [-400.0, 200.0]]


def _pytree_fn(p: dict[str, torch.Tensor], y: torch.Tensor) -> torch.Tensor:
    return (p["a"] ** 2).sum() * torch.sin(p["b"]).sum() + (y * p["a"][0]).prod() + y.norm()


def _pytree_args() -> tuple[Any, ...]:
    g = torch.Generator().manual_seed(5)
    return ({"a": torch.randn(2, generator=g, dtype=DT),
             "b": torch.randn(2, 2, generator=g, dtype=DT)},
            torch.randn(3, generator=g, dtype=DT))


@pytest.mark.parametrize(("argnums", "chunk_size"), [(0, None), (1, 1), ((0, 1), "auto"),
                                                     ((1, 0), 2), ((0, 1), 1)])
def test_hessian_pytrees_and_argnums(argnums: Any, chunk_size: Any) -> None:
    args = _pytree_args()
    H = jacobite.hessian(_pytree_fn, *args, argnums=argnums, chunk_size=chunk_size)
    ref = torch_hessian(_pytree_fn, argnums=argnums)(*args)
    assert_tree_close(H, ref, what="hessian")
    Hflat = jacobite.hessian(_pytree_fn, *args, argnums=argnums, chunk_size=chunk_size,
                             flat=True)
    x = tuple(args[i] for i in argnums) if isinstance(argnums, tuple) else args[argnums]
    torch.testing.assert_close(Hflat, _flat_hessian(ref, x), rtol=1e-12, atol=1e-12)


def test_hessian_small_budget_chunks() -> None:
    g = torch.Generator().manual_seed(6)
    A = torch.randn(30, 30, generator=g, dtype=DT)
    x = torch.randn(30, generator=g, dtype=DT)

    def f(v):
        return torch.tanh(A @ v).pow(2).sum()

    H = jacobite.hessian(f, x, memory_budget=12_000)  # result 7_200 B
    torch.testing.assert_close(H, torch_hessian(f)(x), rtol=1e-12, atol=1e-12)


def test_hessian_of_vector_function_raises_shape_error() -> None:
    x = torch.tensor([1.0, 2.0], dtype=DT)
    with pytest.raises(ShapeError, match="scalar") as info:
        jacobite.hessian(lambda v: v ** 2, x)
    assert "jacobian" in str(info.value)  # names the fix
    assert isinstance(info.value, ValueError)


# ------------------------------------------------------------------------------------ hvp


@pytest.mark.parametrize("case", SCALAR, ids=ids)
def test_hvp_matches_hessian_times_v(case: Case) -> None:
    args = case.args()
    x = args[case.argnums]
    v = torch.randn(x.shape, generator=torch.Generator().manual_seed(8), dtype=DT)
    primals = args
    hv = jacobite.hvp(case.fn, primals, (v,), argnums=case.argnums)
    H = torch_hessian(case.fn, argnums=case.argnums)(*args).reshape(x.numel(), x.numel())
    assert hv.shape == x.shape
    torch.testing.assert_close(hv.reshape(-1), H @ v.reshape(-1), rtol=1e-12, atol=1e-12)


def test_hvp_critical_point_example() -> None:
    x = torch.tensor([0.3, -0.2], dtype=DT)
    v = torch.tensor([1.0, 1.0], dtype=DT)
    assert jacobite.hvp(_critical, (x,), (v,)).tolist() == [2.0, 8.0]


@pytest.mark.parametrize("argnums", [0, 1, (0, 1)])
def test_hvp_pytrees_and_argnums(argnums: Any) -> None:
    args = _pytree_args()
    g = torch.Generator().manual_seed(9)
    sel = tuple(args[i] for i in argnums) if isinstance(argnums, tuple) else (args[argnums],)
    tangents = tuple(
        {k: torch.randn(t.shape, generator=g, dtype=DT) for k, t in s.items()}
        if isinstance(s, dict) else torch.randn(s.shape, generator=g, dtype=DT) for s in sel)
    hv = jacobite.hvp(_pytree_fn, args, tangents, argnums=argnums)
    H = _flat_hessian(torch_hessian(_pytree_fn, argnums=argnums)(*args),
                      sel if isinstance(argnums, tuple) else sel[0])
    vflat = torch.cat([t.reshape(-1) for t in tree_flatten(tangents)[0]])
    hv_flat = torch.cat([t.reshape(-1) for t in tree_flatten(hv)[0]])
    torch.testing.assert_close(hv_flat, H @ vflat, rtol=1e-12, atol=1e-12)
    # structure: like the selected primals
    assert tree_flatten(hv)[1] == tree_flatten(sel if isinstance(argnums, tuple) else sel[0])[1]


def test_hvp_bad_inputs() -> None:
    x = torch.tensor([1.0, 2.0], dtype=DT)
    with pytest.raises(ShapeError, match="scalar"):
        jacobite.hvp(lambda v: v ** 2, (x,), (x,))
    with pytest.raises(ShapeError, match="tuples"):
        jacobite.hvp(_critical, x, x)
    with pytest.raises(ShapeError, match="shape"):
        jacobite.hvp(_critical, (x,), (torch.ones(3, dtype=DT),))
    with pytest.raises(ArgnumsError, match="out of range"):
        jacobite.hvp(_critical, (x,), (x,), argnums=1)
