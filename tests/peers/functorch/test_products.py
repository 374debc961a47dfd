"""``jacobite.jvp``, ``jacobite.vjp`` and ``jacobite.linearize``: the cases functorch checks on
``jvp``, ``vjp`` and ``linearize``.

jvp and vjp keep torch.func's calling conventions; linearize differs on purpose: it returns a
matrix-free ``(m, n)`` operator acting on flat vectors (inputs and outputs flattened in pytree
order), so torch.func's pytree tangents are flattened before the comparison.
Oracle: ``torch.func`` (float64).
"""

from __future__ import annotations

import pytest
import torch
import torch.autograd.forward_ad as fwAD
from torch.func import grad, jvp, vjp, vmap
from torch.utils._pytree import tree_flatten

import jacobite
from jacobite.errors import ArgnumsError, DtypeError, OutputTypeError, ShapeError

from ._common import D, close, randn


def _tangent_pair(*shape):
    return randn(*shape), randn(*shape, seed=1)


# ---------------------------------------------------------------------------------------------
# jvp


def test_jvp_elementwise():
    x, t = _tangent_pair(2, 3)
    out = jacobite.jvp(torch.sin, (x,), (t,))
    assert isinstance(out, tuple)
    close(out, (x.sin(), x.cos() * t))


def test_jvp_two_inputs():
    x, tx = _tangent_pair(2, 3)
    y, ty = randn(2, 3, seed=2), randn(2, 3, seed=3)
    close(jacobite.jvp(torch.mul, (x, y), (tx, ty)), (x * y, y * tx + x * ty))


def test_jvp_pytree_inputs():
    one = torch.tensor(1.0, dtype=D)
    f = lambda a, b, c: a[0] + 2 * a[1] + 3 * b + 4 * c  # noqa: E731
    close(jacobite.jvp(f, ((one, one), one, one), ((one, one), one, one)), (10 * one, 10 * one))


def test_jvp_unrelated_input_and_output():
    x, tx = _tangent_pair(2, 3)
    y, ty = randn(2, 3, seed=2), randn(2, 3, seed=3)
    close(jacobite.jvp(lambda a, b: a, (x, y), (tx, ty)), (x, tx))
    close(jacobite.jvp(lambda a: y, (x,), (tx,)), (y, torch.zeros_like(y)))


def test_jvp_several_outputs():
    x, t = _tangent_pair(2, 3)
    close(jacobite.jvp(lambda v: (v.sin(), v.cos()), (x,), (t,)),
          ((x.sin(), x.cos()), (x.cos() * t, -x.sin() * t)))
    y, ty = randn(2, 3, seed=2), randn(2, 3, seed=3)
    f = lambda a, b: (2 * a + 3 * b, 4 * a + 5 * b)  # noqa: E731
    close(jacobite.jvp(f, (x, y), (t, ty)), (f(x, y), f(t, ty)))


def test_jvp_constant_made_inside_f():
    x = randn(10, 10)
    f = lambda v: v + v.new_tensor(0.5)  # noqa: E731
    close(jacobite.jvp(f, (x,), (torch.zeros_like(x),)), (f(x), torch.zeros_like(x)))


def test_jvp_output_pytrees():
    x, t = _tangent_pair(2, 3)
    out = jacobite.jvp(lambda v: [v, v.sum()], (x,), (t,))
    close(out, jvp(lambda v: [v, v.sum()], (x,), (t,)))

    def composite(v):
        s = v.sum()
        return [(s, {"a": v, "out": [v, s]})]

    close(jacobite.jvp(composite, (x,), (t,)), jvp(composite, (x,), (t,)))


BAD_JVP_CALLS = {
    "primals_not_tuple": (lambda x, t: (x, (t,)), ShapeError, "tuples"),
    "tangents_not_tuple": (lambda x, t: ((x,), t), ShapeError, "tuples"),
    "tangents_as_list": (lambda x, t: ((x,), [t]), ShapeError, "tuples"),
    "more_tangents": (lambda x, t: ((x,), (t, t)), ShapeError, "one tangent per primal"),
    "more_tangents_2": (lambda x, t: ((x, x), (t, t, t)), ShapeError, "one tangent per primal"),
    "number_primal": (lambda x, t: ((1.0,), (t,)), ArgnumsError, "not a tensor"),
    "number_tangent": (lambda x, t: ((x,), (1.0,)), ShapeError, "tangent 0"),
    "tangent_of_other_shape": (lambda x, t: ((x,), (t[0],)), ShapeError, "tangent 0"),
    "no_primals": (lambda x, t: ((), ()), ArgnumsError, "no tensors"),
    "nested_empty": (lambda x, t: (((),), ((),)), ArgnumsError, "no tensors"),
    "other_structure": (lambda x, t: (((x, x), x), (x, x)), ShapeError, "tangent"),
    "integer_primal": (lambda x, t: ((torch.arange(3),), (torch.arange(3),)), DtypeError,
                       "cannot be differentiated"),
}


@pytest.mark.parametrize("case", sorted(BAD_JVP_CALLS))
def test_jvp_bad_primals_or_tangents(case):
    make, error, match = BAD_JVP_CALLS[case]
    x, t = _tangent_pair(2, 3)
    primals, tangents = make(x, t)
    with pytest.raises(error, match=match):
        jacobite.jvp(torch.sin, primals, tangents)


@pytest.mark.parametrize("output", [
    pytest.param(None, id="none"),
    pytest.param((), id="empty_tuple"),
    pytest.param(1, id="int"), pytest.param(True, id="bool"), pytest.param(12.2, id="float"),
    pytest.param("abc", id="str")])
@pytest.mark.parametrize("api", ["jvp", "vjp"])
def test_output_without_tensors(api, output):
    x, t = _tangent_pair(2, 3)
    with pytest.raises(OutputTypeError):
        if api == "jvp":
            jacobite.jvp(lambda _: output, (x,), (t,))
        else:
            jacobite.vjp(lambda _: output, x)


def test_jvp_aux():
    x, t = _tangent_pair(3)
    out, tangent, aux = jacobite.jvp(lambda v: (v.sin(), v.cos()), (x,), (t,), has_aux=True)
    close((out, tangent, aux), (x.sin(), t * x.cos(), x.cos()))
    out, tangent, aux = jacobite.jvp(lambda v: (v.sin(), {"a": v.cos(), "b": [v.tan()]}),
                                     (x,), (t,), has_aux=True)
    close(aux, {"a": x.cos(), "b": [x.tan()]})
    close(tangent, t * x.cos())


@pytest.mark.parametrize("api", ["jvp", "vjp"])
@pytest.mark.parametrize("f", [lambda v: [v, v], lambda v: (v, v + 2, v + 3)],
                         ids=["list", "triple"])
def test_aux_needs_a_pair(api, f):
    x, t = _tangent_pair(3)
    with pytest.raises(OutputTypeError, match=r"pair \(output, aux\)"):
        if api == "jvp":
            jacobite.jvp(f, (x,), (t,), has_aux=True)
        else:
            jacobite.vjp(f, x, has_aux=True)


@pytest.mark.parametrize("api", ["jvp", "vjp"])
@pytest.mark.parametrize("extra", [1, 1.0, "abc"], ids=["int", "float", "str"])
def test_aux_with_python_values(api, extra):
    x, t = _tangent_pair(3)
    try:
        if api == "jvp":
            aux = jacobite.jvp(lambda v: (v, [v, extra]), (x,), (t,), has_aux=True)[2]
        else:
            aux = jacobite.vjp(lambda v: (v, [v, extra]), x, has_aux=True)[2]
    except OutputTypeError:
        return
    close(aux[0], x)
    assert aux[1] == extra


def _minus_frozen_square(v):
    with fwAD._set_fwd_grad_enabled(False):
        shift = v ** 2
    return v ** 2 - shift


def test_jvp_forward_grad_switched_off_outside():
    x = randn()
    with fwAD._set_fwd_grad_enabled(False):
        _, y = jacobite.jvp(torch.sin, (x,), (torch.ones_like(x),))
    close(y, x.cos())


def test_jvp_forward_grad_switched_off_inside():
    x = randn()
    one = torch.ones_like(x)
    close(jacobite.jvp(_minus_frozen_square, (x,), (one,))[1], 2 * x)
    inner = lambda v: jacobite.jvp(_minus_frozen_square, (v,), (one,))[1]  # noqa: E731
    close(jacobite.jvp(inner, (x,), (one,))[1], 2 * one)
    with fwAD._set_fwd_grad_enabled(True):
        close(jacobite.jvp(_minus_frozen_square, (x,), (one,))[1], 2 * x)


def test_jvp_under_nested_vmap():
    dummy = torch.ones(4, 1, dtype=D)
    x = randn(4, 2)
    tangent = randn(2, seed=1)

    def push(_, v):
        return jacobite.jvp(torch.cov, (v,), (tangent,))

    got = vmap(vmap(push, (0, None)))(dummy, x)
    expected = vmap(vmap(lambda _, v: jvp(torch.cov, (v,), (tangent,)), (0, None)))(dummy, x)
    close(got, expected)


# ---------------------------------------------------------------------------------------------
# vjp


def test_vjp_elementwise_and_reuse():
    x = randn()
    out, fn = jacobite.vjp(torch.sin, x)
    close(out, x.sin())
    for seed in (1, 2):
        v = randn(seed=seed)
        close(fn(v), (v * x.cos(),))


def test_vjp_unrelated():
    x, y, one = torch.tensor(1.0, dtype=D), torch.tensor(2.0, dtype=D), torch.tensor(1.0, dtype=D)
    close(jacobite.vjp(lambda a: y, x)[1](one), (torch.zeros_like(x),))
    w = torch.tensor(3.0, dtype=D)
    _, fn = jacobite.vjp(lambda a, b: (y, y, b), w, x)
    close(fn((one, one, one)), (torch.zeros_like(w), torch.ones_like(x)))


def test_vjp_pytrees():
    x, v = randn(), randn(seed=1)
    out, fn = jacobite.vjp(lambda a: a[0] * a[1][0], (x, (x, x)))
    close(out, x * x)
    close(fn(v), ((x * v, (x * v, torch.zeros_like(x))),))
    v1, v2, v3 = randn(seed=2), randn(seed=3), randn(seed=4)
    (g,) = jacobite.vjp(lambda a: (a, (a, a)), x)[1]((v1, (v2, v3)))
    close(g, v1 + v2 + v3)
    out, fn = jacobite.vjp(lambda a: {"x": a, "s": a.sum()}, randn(2, 3))
    close(fn({"x": torch.ones(2, 3, dtype=D), "s": torch.tensor(1.0, dtype=D)}),
          (2 * torch.ones(2, 3, dtype=D),))


def test_vjp_cotangent_of_wrong_structure():
    x = randn()
    _, fn = jacobite.vjp(lambda a: (a, (a, a)), x)
    with pytest.raises(ShapeError):
        fn(((x, (x, x)),))


def test_vjp_aux():
    x, v = randn(3), randn(3, seed=1)
    out, fn, aux = jacobite.vjp(lambda a: (a.sin(), {"a": a.cos(), "b": [a.tan()]}), x,
                                has_aux=True)
    close((out, aux), (x.sin(), {"a": x.cos(), "b": [x.tan()]}))
    close(fn(v), (v * x.cos(),))


def test_vjp_bad_primals():
    with pytest.raises(DtypeError):
        jacobite.vjp(lambda a: a * 1.0, torch.arange(3))
    with pytest.raises(ArgnumsError):
        jacobite.vjp(torch.sin, 1.0)


def test_vjp_compositions_with_grad():
    x, y = randn(), randn(seed=1)
    _, fn = jacobite.vjp(torch.sin, x)
    close(grad(lambda u: fn(u)[0])(y), x.cos())
    _, fn = jacobite.vjp(grad(torch.sin), x)
    close(fn(y)[0], -y * x.sin())
    _, fn = jacobite.vjp(grad(lambda a: -torch.cos(a)), x)
    close(grad(lambda u: fn(u)[0])(y), x.cos())
    xs = randn(3)
    got = grad(lambda a: jacobite.vjp(torch.sin, a)[1](a)[0].sum())(xs)
    close(got, grad(lambda a: (a * a.cos()).sum())(xs))


def test_vjp_compositions_with_vmap():
    x = randn(3)
    close(vmap(lambda a: jacobite.vjp(torch.sin, a)[1](a))(x), vjp(torch.sin, x)[1](x))
    _, fn = jacobite.vjp(torch.sin, x)
    xs = randn(5, 3, seed=1)
    close(vmap(lambda u: fn(u)[0])(xs), torch.stack([fn(u)[0] for u in xs]))
    out, fn = jacobite.vjp(vmap(torch.sin), x)
    close((out, fn(xs[0])[0]), (x.sin(), x.cos() * xs[0]))


def test_vjp_of_vjp():
    x = randn(3)
    _, fn = jacobite.vjp(torch.sin, x)
    out, fn2 = jacobite.vjp(lambda a: fn(a)[0], x)
    close(out, x * x.cos())
    close(fn2(x)[0], vjp(lambda a: vjp(torch.sin, x)[1](a)[0], x)[1](x)[0])


# ---------------------------------------------------------------------------------------------
# linearize


def _flat(tree) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tree_flatten(tree)[0]])


@pytest.mark.parametrize("f", [lambda v: v.cos(), lambda v: (v.cos(), v.sum())],
                         ids=["tensor", "tuple"])
def test_linearize_matches_jvp(f):
    x, t = _tangent_pair(3, 1)
    op = jacobite.linearize(f, x)
    value, tangent = jvp(f, (x,), (t,))
    close(op.value, value)
    close(op.mv(t.reshape(-1)), _flat(tangent))


def test_linearize_batched_products():
    f = lambda v: (v.cos(), v.sum())  # noqa: E731
    x = randn(3, 1)
    ts = randn(4, 3, 1, seed=1)
    op = jacobite.linearize(f, x)
    expected = torch.stack([_flat(jvp(f, (x,), (t,))[1]) for t in ts])
    close(vmap(op.mv)(ts.reshape(4, 3)), expected)
    close(op.mm(ts.reshape(4, 3).T), expected.T)


def test_linearize_of_function_using_grad():
    z = torch.ones(3, dtype=D)
    f = lambda v: grad(lambda u: z @ u.sin())(v)  # noqa: E731
    x, t = _tangent_pair(3)
    close(jacobite.linearize(f, x).mv(t), jvp(f, (x,), (t,))[1])


def test_linearize_nested_pytrees():
    def f(arg):
        x, (y, z) = arg["x"], arg["yz"]
        return {"a": x.sum(), "b": {"c": y + z, "d": (x * z, y.exp())}}

    p = {"x": randn(3, 1), "yz": (randn(3, 1, seed=1), randn(3, 1, seed=2))}
    t = {"x": randn(3, 1, seed=3), "yz": (randn(3, 1, seed=4), randn(3, 1, seed=5))}
    op = jacobite.linearize(f, p)
    value, tangent = jvp(f, (p,), (t,))
    close(op.value, value)
    close(op.mv(_flat(t)), _flat(tangent))
    u = randn(op.shape[0], seed=6)
    close(u @ op.mv(_flat(t)), op.rmv(u) @ _flat(t))  # rmv is the transpose


def test_linearize_bad_vectors():
    op = jacobite.linearize(torch.sin, randn(3, 1))
    with pytest.raises(ShapeError):
        op.mv(randn(4))
    with pytest.raises(ShapeError):
        op.mv(randn(3, 1))
    with pytest.raises(DtypeError):
        op.mv(torch.ones(3, dtype=torch.float32))
