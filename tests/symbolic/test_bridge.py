"""SymPy -> torch: lambdified symbolic Jacobians agree with jacobite's AD, on the shared battery,
on every whitelisted function and on random polynomials."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

sp = pytest.importorskip("sympy")

import jacobite  # noqa: E402
from jacobite.errors import ShapeError  # noqa: E402
from jacobite.symbolic import ExpressionError, jacobian, parse, to_torch  # noqa: E402
from jacobite.symbolic.parse import FUNCTIONS  # noqa: E402
from tests.battery import by_kind, diff_inputs, flat_function, ids, sympy_jacobian  # noqa: E402

DT = torch.float64
SYMBOLIC = by_kind("symbolic")


def test_battery_has_symbolic_cases():
    assert len(SYMBOLIC) >= 5


@pytest.mark.parametrize("case", SYMBOLIC, ids=ids)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_battery_symbolic_equals_ad(case, seed):
    exprs, syms = case.sympy
    args = case.args(seed)
    g, v0 = flat_function(case, args)
    J_ad = jacobite.jacobian(g, v0)
    if J_ad.ndim < 2:  # scalar in or out: the flat (m, n) matrix
        J_ad = J_ad.reshape(-1, v0.numel())
    J = jacobian(list(exprs), list(syms))
    # exact Jacobian evaluated at the point, its lambdified torch version, and AD all agree
    torch.testing.assert_close(J.at(v0), J_ad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(J.to_torch()(v0), J_ad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(J.at(v0), sympy_jacobian(case, args), rtol=1e-12, atol=1e-12)
    # AD through the lambdified function F equals the symbolic Jacobian
    F = to_torch(list(exprs), list(syms))
    torch.testing.assert_close(F(v0).reshape(-1), g(v0).reshape(-1), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(jacobite.jacobian(F, v0).reshape(J_ad.shape), J_ad,
                               rtol=1e-10, atol=1e-12)
    assert diff_inputs(case, args) is not None


# Every whitelisted function, at a point inside its real domain (x=0.3, y=0.6).
FUNCTION_CASES = {
    "sin": "sin(x*y)", "cos": "cos(x + y)", "tan": "tan(x - y)", "cot": "cot(x + y)",
    "sec": "sec(x*y)", "csc": "csc(x + y)", "asin": "asin(x*y)", "acos": "acos(x - y)",
    "atan": "atan(x/y)", "sinh": "sinh(x*y)", "cosh": "cosh(x - y)", "tanh": "tanh(x + y)",
    "asinh": "asinh(x*y)", "acosh": "acosh(1 + x + y)", "atanh": "atanh(x*y)",
    "exp": "exp(x*y)", "sqrt": "sqrt(x + y)", "sign": "sign(x - y)*x", "erf": "erf(x*y)",
    "atan2": "atan2(y, x)", "log": "log(x*y) + log(x + y, 2)", "ln": "ln(x + y)",
    "abs": "abs(x - y)*y", "Abs": "Abs(x*y - 1)",
}


def test_every_whitelisted_function_is_covered():
    assert set(FUNCTION_CASES) == set(FUNCTIONS)


@pytest.mark.parametrize("name", sorted(FUNCTION_CASES))
def test_whitelisted_function_to_torch(name):
    text = FUNCTION_CASES[name] + ", x**2*y"
    p = torch.tensor([0.3, 0.6], dtype=DT)
    F = to_torch(text)
    values = [float(e.evalf(30, subs={s: float(v) for s, v in
                                      zip(sorted(e.free_symbols, key=str), p, strict=False)}))
              for e in parse(text)]
    torch.testing.assert_close(F(p), torch.tensor(values, dtype=DT), rtol=1e-12, atol=1e-14)
    J = jacobian(text)
    torch.testing.assert_close(jacobite.jacobian(F, p), J.at(p), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(J.to_torch()(p), J.at(p), rtol=1e-10, atol=1e-12)


def test_batches_constants_and_shapes():
    F = to_torch("x**2 + y, 3, x*y")
    X = torch.randn(4, 5, 2, dtype=DT)
    out = F(X)
    assert out.shape == (4, 5, 3)
    assert (out[..., 1] == 3).all()
    J = jacobite.jacobian(F, torch.tensor([1.0, 2.0], dtype=DT))
    assert J.tolist() == [[2.0, 1.0], [0.0, 0.0], [2.0, 1.0]]
    s = to_torch("x*y")  # one expression: a scalar per point
    assert s(torch.tensor([2.0, 3.0], dtype=DT)).shape == ()
    assert to_torch("atan2(y, x)")(torch.ones(2, dtype=DT)).shape == ()
    assert to_torch("x,")(torch.ones(1, dtype=DT)).shape == (1,)
    M = to_torch(sp.Matrix([[sp.Symbol("x"), 1], [2, sp.Symbol("x") ** 2]]))
    assert M(torch.tensor([3.0], dtype=DT)).tolist() == [[3.0, 1.0], [2.0, 9.0]]
    g = jacobian("x**2 + y**2").to_torch()
    assert g(torch.tensor([1.0, 2.0], dtype=DT)).tolist() == [[2.0, 4.0]]
    assert "TorchFunction" in repr(F)
    # float32 in, float32 out
    assert F(torch.ones(2)).dtype == torch.float32


def test_vmap_and_batch_jacobian():
    F = to_torch("sin(x)*y, x - y**3")
    X = torch.randn(6, 2, dtype=DT)
    J = jacobite.batch_jacobian(F, X)
    Js = jacobian("sin(x)*y, x - y**3")
    for i in range(6):
        torch.testing.assert_close(J[i], Js.at(X[i]))


def test_sign_and_abs_are_differentiated_almost_everywhere():
    Hs = jacobian("abs(x)*x").to_torch()  # d/dx = 2|x|; J of J contains DiracDelta -> 0
    p = torch.tensor([-0.7], dtype=DT)
    torch.testing.assert_close(Hs(p), torch.tensor([[1.4]], dtype=DT))
    H = jacobian(list(jacobian("sign(x)*x**2").matrix), "x")
    assert H.matrix.has(sp.DiracDelta)
    torch.testing.assert_close(H.to_torch()(p), torch.tensor([[-2.0]], dtype=DT))


def test_bridge_errors():
    F = to_torch("x**2 + y, x*y")
    with pytest.raises(ShapeError, match="last dimension"):
        F(torch.ones(3, dtype=DT))
    with pytest.raises(ShapeError, match="one tensor"):
        F(torch.tensor(1.0))
    with pytest.raises(ExpressionError, match="still depend on a"):
        jacobian("a*x", "x").to_torch()
    with pytest.raises(ExpressionError, match="still depend on a"):
        to_torch("a*x", "x")


# ----------------------------------------------------------------------------- hypothesis

_terms = st.tuples(st.integers(-4, 4), st.integers(0, 3), st.integers(0, 3), st.integers(0, 2))


def _poly(terms) -> str:
    return " + ".join(f"({c})*x**{a}*y**{b}*z**{d}" for c, a, b, d in terms) or "0"


@settings(max_examples=10)  # each example differentiates, lambdifies and substitutes: ~0.3 s
@given(st.lists(st.lists(_terms, min_size=1, max_size=4), min_size=1, max_size=3),
       st.sampled_from(["", "sin", "exp", "tanh"]),
       st.lists(st.floats(-1.5, 1.5), min_size=3, max_size=3))
def test_random_polynomials_symbolic_equals_ad(polys, wrap, point):
    comps = [f"{wrap}({_poly(t)})" if wrap else _poly(t) for t in polys]
    text = ", ".join(comps)
    J = jacobian(text, "x, y, z")
    F = to_torch(text, "x, y, z")
    p = torch.tensor(point, dtype=DT)
    J_ad = jacobite.jacobian(F, p).reshape(len(comps), 3)
    torch.testing.assert_close(J.to_torch()(p), J_ad, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(J.at(p), J_ad, rtol=1e-9, atol=1e-9)
