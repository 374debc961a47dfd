"""Jacobian values and result structure: the cases functorch checks on jacrev and jacfwd, over
jacobite's modes and chunk sizes.

Expected values are written out where they are simple (diagonals, constants) and otherwise come
from ``torch.func.jacrev`` or ``torch.autograd.functional.jacobian`` in float64.
"""

from __future__ import annotations

import pytest
import torch
from torch.autograd.functional import jacobian as autograd_jacobian
from torch.func import jacrev

import jacobite

from ._common import D, close, configs, diag, jac, rand, randn

pytestmark = pytest.mark.parametrize(("mode", "chunk"), configs())


def test_elementwise_vector(mode, chunk):
    x = randn(3)
    close(jac(torch.sin, x, mode=mode, chunk=chunk), diag(x.cos()))


def test_elementwise_matrix_keeps_shapes(mode, chunk):
    x = randn(2, 3)
    J = jac(torch.sin, x, mode=mode, chunk=chunk)
    close(J, diag(x.reshape(-1).cos()).reshape(2, 3, 2, 3))


@pytest.mark.filterwarnings("ignore:There is a performance drop")
def test_gather_with_repeated_index(mode, chunk):
    x = rand(5)
    idx = torch.ones(3, dtype=torch.long)
    J = jac(lambda v: torch.take(v, idx), x, mode=mode, chunk=chunk)
    expected = torch.zeros(3, 5, dtype=D)
    expected[:, 1] = 1
    close(J, expected)
    close(J, autograd_jacobian(lambda v: torch.take(v, idx), x))


def test_output_of_other_size_and_rank(mode, chunk):
    x = randn(2, 4)
    J = jac(lambda v: v[0, 1:].unsqueeze(-1), x, mode=mode, chunk=chunk)
    expected = torch.zeros(3, 1, 2, 4, dtype=D)
    for i in range(3):
        expected[i, 0, 0, i + 1] = 1
    close(J, expected)


def test_second_argument(mode, chunk):
    x, y = randn(3), randn(3, seed=1)
    close(jac(torch.multiply, x, y, argnums=1, mode=mode, chunk=chunk), diag(x))


def test_argnums_defaults_to_first(mode, chunk):
    x, y = randn(3), randn(3, seed=1)
    J = jac(lambda a, b: 2 * a + 3 * b, x, y, mode=mode, chunk=chunk)
    close(J, diag(torch.full_like(x, 2)))


def test_argnums_tuple_gives_tuple(mode, chunk):
    x, y = randn(3), randn(3, seed=1)
    close(jac(torch.multiply, x, y, argnums=(0, 1), mode=mode, chunk=chunk), (diag(y), diag(x)))
    close(jac(torch.multiply, x, y, argnums=(0,), mode=mode, chunk=chunk), (diag(y),))


def test_negative_and_reordered_argnums(mode, chunk):
    x, y = randn(3), randn(3, seed=1)
    close(jac(torch.multiply, x, y, argnums=-1, mode=mode, chunk=chunk), diag(x))
    close(jac(torch.multiply, x, y, argnums=-2, mode=mode, chunk=chunk), diag(y))
    close(jac(torch.multiply, x, y, argnums=(-2, -1), mode=mode, chunk=chunk), (diag(y), diag(x)))
    close(jac(torch.multiply, x, y, argnums=(1, 0), mode=mode, chunk=chunk), (diag(x), diag(y)))


def _two_linear(x, y):
    return 2 * x + 3 * y, 4 * x + 5 * y


def _const_diag(value: float) -> torch.Tensor:
    return diag(torch.full((3,), value, dtype=D))


def test_two_outputs_two_arguments(mode, chunk):
    x, y = randn(3), randn(3, seed=1)
    J = jac(_two_linear, x, y, argnums=(0, 1), mode=mode, chunk=chunk)
    close(J, ((_const_diag(2), _const_diag(3)), (_const_diag(4), _const_diag(5))))


def test_two_outputs_one_argument(mode, chunk):
    x, y = randn(3), randn(3, seed=1)
    close(jac(_two_linear, x, y, argnums=0, mode=mode, chunk=chunk),
          (_const_diag(2), _const_diag(4)))
    close(jac(_two_linear, x, y, argnums=(0,), mode=mode, chunk=chunk),
          ((_const_diag(2),), (_const_diag(4),)))


def test_dict_output(mode, chunk):
    x, y = randn(3), randn(3, seed=1)
    J = jac(lambda a, b: {"left": 2 * a + 3 * b, "right": 4 * a + 5 * b}, x, y,
            argnums=(0, 1), mode=mode, chunk=chunk)
    close(J, {"left": (_const_diag(2), _const_diag(3)),
              "right": (_const_diag(4), _const_diag(5))})


def _nested_args():
    x = randn()
    return (x, x), x, x


def _scalar(v: float) -> torch.Tensor:
    return torch.tensor(v, dtype=D)


def test_nested_tuple_inputs(mode, chunk):
    def f(a, b, c):
        return a[0] + a[1] * 2 + b * 3 + c * 4

    args = _nested_args()
    one, two, three, four = (_scalar(v) for v in (1, 2, 3, 4))
    close(jac(f, *args, argnums=(0, 1, 2), mode=mode, chunk=chunk), ((one, two), three, four))
    close(jac(f, *args, argnums=(0,), mode=mode, chunk=chunk), ((one, two),))
    close(jac(f, *args, mode=mode, chunk=chunk), (one, two))


def test_nested_inputs_and_outputs(mode, chunk):
    def f(a, b, c):
        return a[0] + a[1] * 2, {"foo": b * 3 + c * 4}

    args = _nested_args()
    one, two, three, zero = _scalar(1), _scalar(2), _scalar(3), _scalar(0)
    close(jac(f, *args, mode=mode, chunk=chunk), ((one, two), {"foo": (zero, zero)}))
    close(jac(f, *args, argnums=(0,), mode=mode, chunk=chunk),
          (((one, two),), {"foo": ((zero, zero),)}))
    close(jac(f, *args, argnums=(0, 1), mode=mode, chunk=chunk),
          (((one, two), zero), {"foo": ((zero, zero), three)}))


def test_dict_in_dict_out(mode, chunk):
    x = randn(3)
    J = jac(lambda d: {"c": d["a"].sin(), "d": d["b"].cos()}, {"a": x, "b": x},
            mode=mode, chunk=chunk)
    zeros = torch.zeros(3, 3, dtype=D)
    close(J, {"c": {"a": diag(x.cos()), "b": zeros}, "d": {"a": zeros, "b": diag(-x.sin())}})


def test_list_dict_and_composite_outputs(mode, chunk):
    x = randn(2, 3)
    J = jac(lambda v: [v, v.sum()], x, mode=mode, chunk=chunk)
    assert isinstance(J, list) and len(J) == 2
    close(J, jacrev(lambda v: [v, v.sum()])(x))
    J = jac(lambda v: {"x": v, "xsum": v.sum()}, x, mode=mode, chunk=chunk)
    assert isinstance(J, dict) and set(J) == {"x", "xsum"}

    def composite(v):
        s = v.sum()
        return [(s, {"a": v, "out": [v, s]})]

    J = jac(composite, x, mode=mode, chunk=chunk)
    assert isinstance(J, list) and isinstance(J[0], tuple) and isinstance(J[0][1], dict)
    close(J, jacrev(composite)(x))


def test_scalar_in_and_out(mode, chunk):
    x = randn()
    J = jac(lambda v: v, x, mode=mode, chunk=chunk)
    assert J.dim() == 0
    close(J, torch.ones((), dtype=D))
    x1 = randn(1)
    J = jac(lambda v: v, x1, mode=mode, chunk=chunk)
    assert J.shape == (1, 1)
    close(J, torch.ones(1, 1, dtype=D))


def test_unrelated_argument_gives_zeros(mode, chunk):
    x, y = randn(2, 3), randn(2, 3, seed=1)
    J = jac(lambda a, b: a, x, y, argnums=(0, 1), mode=mode, chunk=chunk)
    close(J, (torch.eye(6, dtype=D).view(2, 3, 2, 3), torch.zeros(2, 3, 2, 3, dtype=D)))


def test_output_independent_of_input(mode, chunk):
    y = randn(2, 3, seed=1)
    J = jac(lambda v: y, randn(2, 3), mode=mode, chunk=chunk)
    close(J, torch.zeros(2, 3, 2, 3, dtype=D))


def test_non_tensor_positional_argument(mode, chunk):
    t = randn(3, 3)
    J = jac(lambda a, k: a + k, t, 3, mode=mode, chunk=chunk)
    close(J, autograd_jacobian(lambda a: a + 3, t))


def test_default_keyword_argument(mode, chunk):
    def f(x, y, z=3.0):
        return x * y * z

    x, y = randn(3), randn(3, seed=1)
    close(jac(f, x, y, mode=mode, chunk=chunk), diag(3 * y))


# The same functions as functorch's comparisons with torch.autograd.functional.jacobian: f takes
# its arguments as one tuple, so inputs are a pytree and outputs a tuple of per-input tuples.
REFERENCE = {
    "power": (lambda x: 3 * x ** 2, [(2, 3, 5)]),
    "two_inputs": (lambda x, y: (x.cos() * x) @ y.sin(), [(2, 3), (3, 5)]),
    "three_outputs": (lambda x, y: ((x * x) @ y, x @ (x.sum(1) * y), y.sum()), [(5, 3), (3, 5)]),
    "repeated_outputs": (lambda x, y: (x, y, x, y), [(2,), (3,)]),
    "scalar_outputs": (lambda x, y: (x.sum(), y.sum(), x * y), [(3,), (3,)]),
    "scalar_input": (lambda x: torch.stack([x, x, x]), [()]),
    "scalar_and_vector": (lambda x, y: (y.sum(), x * y), [(), (1,)]),
    "to_device": (lambda x, y: (x * y, (x * y).to(device="cpu")), [(3,), (3,)]),
}


@pytest.mark.parametrize("case", sorted(REFERENCE))
def test_against_autograd_functional(mode, chunk, case):
    f, shapes = REFERENCE[case]
    inputs = tuple(randn(*s, seed=i) for i, s in enumerate(shapes))
    J = jac(lambda args: f(*args), inputs, mode=mode, chunk=chunk)
    close(J, autograd_jacobian(f, inputs))


def test_empty_input(mode, chunk):
    x = randn(0)
    J = jac(lambda v: v.sum().expand(2), x, mode=mode, chunk=chunk)
    close(J, torch.zeros(2, 0, dtype=D))


def test_empty_output(mode, chunk):
    x = randn(3)
    close(jac(lambda v: v[:0], x, mode=mode, chunk=chunk), torch.zeros(0, 3, dtype=D))


def test_empty_leaf_among_others(mode, chunk):
    a, b = randn(0, 2), randn(3, seed=1)
    f = lambda p, q: (p.sum() + q.sin(), p * 2)  # noqa: E731
    J = jac(f, a, b, argnums=(0, 1), mode=mode, chunk=chunk)
    close(J, jacrev(f, argnums=(0, 1))(a, b))


def test_value_and_jacobian(mode, chunk):
    x, y = randn(3), randn(3, seed=1)
    value, J = jacobite.value_and_jacobian(_two_linear, x, y, argnums=(0, 1), mode=mode,
                                           chunk_size=chunk)
    close(value, _two_linear(x, y))
    close(J, jacrev(_two_linear, argnums=(0, 1))(x, y))


def test_value_and_jacobian_with_aux(mode, chunk):
    x = randn(2, 3)
    f = lambda v: ({"s": v.sin(), "t": v.sum()}, [v.cos(), "tag"])  # noqa: E731
    value, J, aux = jacobite.value_and_jacobian(f, x, has_aux=True, mode=mode, chunk_size=chunk)
    close(value, f(x)[0])
    close(J, jacrev(lambda v: f(v)[0])(x))
    close(aux[0], x.cos())
    assert aux[1] == "tag"
