"""Bad arguments, bad outputs and ``has_aux``: the error cases functorch checks on jacrev and
jacfwd, answered with jacobite's typed errors.

Where torch.func raises a bare ``RuntimeError``, jacobite raises a :mod:`jacobite.errors` class
(which also subclasses the matching built-in: ``ArgnumsError`` is a ``ValueError``,
``OutputTypeError`` and ``DtypeError`` are ``TypeError``), and its message names the fix.
"""

from __future__ import annotations

import pytest
import torch

from jacobite.errors import (
    ArgnumsError,
    ArgumentTypeError,
    DtypeError,
    InvalidOptionError,
    NonFiniteInputError,
    OutputTypeError,
)

from ._common import CHUNKS, D, close, configs, jac, modes, randn

# ---------------------------------------------------------------------------------------------
# argnums

BAD_ARGNUMS = {
    "empty": ((), 1, "at least one"),
    "past_the_end": (2, 1, "out of range|only 1 positional"),
    "negative_past_the_start": (-2, 1, "out of range|only 1 positional"),
    "negative_in_tuple": ((-2,), 1, "out of range|only 1 positional"),
    "repeated": ((0, 0), 2, "same argument twice"),
    "repeated_via_negative": ((0, -2), 2, "same argument twice"),
    "float": (0.0, 1, "int"),
    "float_in_tuple": ((1, 0.0), 2, "int"),
    "string_in_tuple": (("0",), 1, "int"),
    "bool": (True, 1, "int"),
}


@pytest.mark.parametrize("mode", modes())
@pytest.mark.parametrize("case", sorted(BAD_ARGNUMS))
def test_bad_argnums(mode, case):
    argnums, nargs, match = BAD_ARGNUMS[case]
    args = [randn(3, seed=i) for i in range(nargs)]
    f = torch.sin if nargs == 1 else torch.multiply
    with pytest.raises(ArgnumsError, match=match):
        jac(f, *args, argnums=argnums, mode=mode)


@pytest.mark.parametrize("mode", modes())
def test_argnums_list_is_read_as_tuple(mode):
    """jacobite accepts a list where torch.func insists on a tuple; the result is the same."""
    x, y = randn(3), randn(3, seed=1)
    close(jac(torch.multiply, x, y, argnums=[0, 1], mode=mode),
          jac(torch.multiply, x, y, argnums=(0, 1), mode=mode))


@pytest.mark.parametrize("mode", modes())
def test_no_positional_arguments(mode):
    with pytest.raises(ArgnumsError, match="no arguments"):
        jac(lambda: torch.ones(2, dtype=D), mode=mode)


# ---------------------------------------------------------------------------------------------
# inputs


@pytest.mark.parametrize("mode", modes())
def test_argnums_naming_a_python_number(mode):
    with pytest.raises(ArgnumsError, match="not a tensor"):
        jac(lambda t, k: t * k, randn(3), 2.0, argnums=1, mode=mode)


@pytest.mark.parametrize("mode", modes())
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool], ids=str)
def test_integer_input_is_refused(mode, dtype):
    x = torch.ones(3, dtype=dtype)
    with pytest.raises(DtypeError, match=r"x\.double\(\)"):
        jac(lambda v: v * 1.0, x, mode=mode)


@pytest.mark.parametrize("mode", modes())
def test_integer_leaf_in_a_pytree_input(mode):
    with pytest.raises(DtypeError, match="leaf 1"):
        jac(lambda p: p[0] * p[1], (randn(3), torch.arange(3)), mode=mode)


@pytest.mark.parametrize("mode", modes())
def test_complex_input_is_refused(mode):
    x = torch.randn(1, dtype=torch.complex128)
    with pytest.raises(DtypeError, match="view_as_real"):
        jac(lambda v: v.conj(), x, mode=mode)


@pytest.mark.parametrize("mode", modes())
def test_non_finite_input(mode):
    x = torch.tensor([1.0, float("nan")], dtype=D)
    with pytest.raises(NonFiniteInputError, match="check_finite=False"):
        jac(torch.sin, x, mode=mode)
    close(jac(torch.sin, x, mode=mode, check_finite=False).diagonal()[:1], x[:1].cos())


# ---------------------------------------------------------------------------------------------
# outputs

NOT_TENSORS = {"none": None, "empty_tuple": (), "int": 1, "bool": True, "float": 12.2,
               "str": "abc", "list_of_numbers": [1.0, 2.0]}


@pytest.mark.parametrize("mode", modes())
@pytest.mark.parametrize("case", sorted(NOT_TENSORS))
def test_output_without_tensors(mode, case):
    with pytest.raises(OutputTypeError, match=r"; return (a tensor|torch tensors)"):
        jac(_constant(NOT_TENSORS[case]), randn(2, 3), mode=mode)


def _constant(out):
    """f returning ``out``, with a name that does not itself mention tensors."""
    return lambda _: out


@pytest.mark.parametrize("mode", modes())
def test_output_mixing_tensors_and_numbers(mode):
    with pytest.raises(OutputTypeError, match="leaf 1"):
        jac(lambda v: (v, 1.0), randn(3), mode=mode)


@pytest.mark.parametrize("mode", modes())
def test_empty_output_of_two_arguments(mode):
    with pytest.raises(OutputTypeError):
        jac(lambda a, b: (), randn(3), randn(3, seed=1), mode=mode)


@pytest.mark.parametrize("mode", modes())
def test_integer_output_is_refused(mode):
    with pytest.raises(DtypeError, match="floating-point"):
        jac(lambda v: v.argmax(), randn(3), mode=mode)
    with pytest.raises(DtypeError, match="floating-point"):
        jac(lambda v: (v, (v > 0)), randn(3), mode=mode)


@pytest.mark.parametrize("mode", modes())
def test_complex_output_is_refused(mode):
    with pytest.raises(DtypeError):
        jac(lambda v: torch.conj(v * 0.5j), randn(1), mode=mode)


@pytest.mark.parametrize("mode", modes())
def test_not_callable(mode):
    with pytest.raises(ArgumentTypeError, match="callable"):
        jac(3, randn(3), mode=mode)


# ---------------------------------------------------------------------------------------------
# has_aux


@pytest.mark.parametrize(("mode", "chunk"), configs())
def test_aux_tensor(mode, chunk):
    x = randn(3)
    J, aux = jac(lambda v: (v.clone(), v.cos()), x, has_aux=True, mode=mode, chunk=chunk)
    close(J, torch.eye(3, dtype=D))
    close(aux, x.cos())


@pytest.mark.parametrize(("mode", "chunk"), configs())
def test_aux_pytree(mode, chunk):
    x = randn(3)
    J, aux = jac(lambda v: (v.clone(), {"a": v.cos(), "b": [v.tan()]}), x, has_aux=True,
                 mode=mode, chunk=chunk)
    close(J, torch.eye(3, dtype=D))
    close(aux, {"a": x.cos(), "b": [x.tan()]})


@pytest.mark.parametrize("mode", modes())
@pytest.mark.parametrize("extra", [1, 1.0, "abc"], ids=["int", "float", "str"])
def test_aux_with_python_values_passes_through(mode, extra):
    """torch.func refuses non-tensor aux; jacobite carries such leaves through unchanged."""
    x = randn(3)
    J, aux = jac(lambda v: (v, extra), x, has_aux=True, mode=mode)
    close(J, torch.eye(3, dtype=D))
    assert aux == extra
    J, aux = jac(lambda v: (v, [v, extra]), x, has_aux=True, mode=mode)
    close(aux[0], x)
    assert aux[1] == extra


@pytest.mark.parametrize("mode", modes())
def test_aux_needs_a_pair(mode):
    x = randn(3)
    with pytest.raises(OutputTypeError, match=r"pair \(output, aux\)"):
        jac(lambda v: (v, v + 2, v + 3), x, has_aux=True, mode=mode)
    with pytest.raises(OutputTypeError, match=r"pair \(output, aux\)"):
        jac(lambda v: v, x, has_aux=True, mode=mode)


@pytest.mark.parametrize("mode", modes())
def test_aux_pair_as_list(mode):
    """A two-element list counts as ``(output, aux)`` (torch.func wants a tuple)."""
    x = randn(3)
    J, aux = jac(lambda v: [v, v.cos()], x, has_aux=True, mode=mode)
    close(J, torch.eye(3, dtype=D))
    close(aux, x.cos())


# ---------------------------------------------------------------------------------------------
# options


@pytest.mark.parametrize("mode", modes())
@pytest.mark.parametrize("chunk", [0, -2, "big"], ids=repr)
def test_chunk_size_out_of_range(mode, chunk):
    with pytest.raises(InvalidOptionError, match="chunk_size"):
        jac(torch.sin, randn(3), mode=mode, chunk=chunk)


@pytest.mark.parametrize("mode", modes())
@pytest.mark.parametrize("chunk", [True, 2.5], ids=repr)
def test_chunk_size_of_wrong_type(mode, chunk):
    with pytest.raises(ArgumentTypeError, match="chunk_size"):
        jac(torch.sin, randn(3), mode=mode, chunk=chunk)


@pytest.mark.parametrize("mode", ["fwd", "rev", "Forward", ""])
def test_bad_mode(mode):
    with pytest.raises(InvalidOptionError, match="mode"):
        jac(torch.sin, randn(3), mode=mode)


@pytest.mark.parametrize("chunk", CHUNKS, ids=str)
def test_good_chunk_sizes_are_accepted_by_every_mode(chunk):
    x = randn(4)
    for mode in ("forward", "reverse", "auto"):
        close(jac(torch.sin, x, mode=mode, chunk=chunk), torch.diagflat(x.cos()))
