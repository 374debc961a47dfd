"""Every public function of jacobite.sparse refuses bad arguments with a typed error naming the
fix: at least eight kinds of bad argument each."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch.func import vmap

import jacobite
import jacobite.sparse as js
from jacobite.errors import (
    ArgnumsError,
    ArgumentTypeError,
    DtypeError,
    InvalidOptionError,
    JacobiteError,
    NonFiniteInputError,
    OutputTypeError,
    ShapeError,
    UnsupportedOperationError,
)
from jacobite.sparse.evaluate import one_call

DT = torch.float64
X = torch.linspace(0.1, 0.6, 6, dtype=DT)
P = np.eye(4) + np.eye(4, k=1)  # a good pattern

# fix phrases, shared by the cases below
CALLABLE = (ArgumentTypeError, "pass the function itself")
TENSOR = (ArgumentTypeError, r"torch\.as_tensor\(x, dtype=torch\.float64\)")
FLOAT = (DtypeError, r"x\.double\(\)")
OUTPUT = (OutputTypeError, r"torch\.as_tensor")
INT_OUT = (DtypeError, "return a floating-point tensor")
TRACED = (UnsupportedOperationError, r"jacobite\.jacobian\(f, x\)")
PAT_TYPE = (ArgumentTypeError, "SciPy sparse matrix, a 2-D NumPy array")
PAT_DTYPE = (ArgumentTypeError, r"mark nonzeros with True \(or 1\)")
PAT_2D = (ShapeError, r"reshape it to \(outputs, inputs\)")
PAT_NAN = (NonFiniteInputError, r"nonzeros with True \(or 1\)")
ORDER = (InvalidOptionError, "order must be one of .*'natural'")
ITER_TYPE = (ArgumentTypeError, "iterations must be an int ≥ 0")
ITER_VALUE = (InvalidOptionError, "iterations must be an int ≥ 0")
VECTORIZE = (InvalidOptionError, "True, False or 'auto'")
VECTORIZE_TYPE = (ArgumentTypeError, "vectorize must be True or False")
MODE = (InvalidOptionError, "mode must be one of .*'forward'")


def _in_vmap(fn: Callable[[torch.Tensor], Any]) -> Callable[[], Any]:
    return lambda: vmap(fn)(torch.stack([X, X]))


def _x_cases(fn: Callable[[Any], Any]) -> list:
    """Bad ``x`` for a function of ``x`` alone."""
    return [
        ("x list", lambda: fn([0.1, 0.2]), *TENSOR),
        ("x float", lambda: fn(0.5), *TENSOR),
        ("x ndarray", lambda: fn(np.ones(3)), *TENSOR),
        ("x None", lambda: fn(None), *TENSOR),
        ("x int64", lambda: fn(torch.arange(3)), *FLOAT),
        ("x bool", lambda: fn(torch.ones(3, dtype=torch.bool)), *FLOAT),
        ("x traced by vmap", _in_vmap(fn), *TRACED),
    ]


def _f_cases(fn: Callable[..., Any]) -> list:
    """Bad ``f`` for a function of ``(f, x)``."""
    return [
        ("f int", lambda: fn(3, X), *CALLABLE),
        ("f str", lambda: fn("sin", X), *CALLABLE),
        ("f None", lambda: fn(None, X), *CALLABLE),
        ("f a tensor (its value)", lambda: fn(torch.sin(X), X), *CALLABLE),
    ]


def _pattern_cases(fn: Callable[[Any], Any]) -> list:
    return [
        ("pattern None", lambda: fn(None), *PAT_TYPE),
        ("pattern str", lambda: fn("eye"), *PAT_TYPE),
        ("pattern dict", lambda: fn({0: 1}), *PAT_TYPE),
        ("pattern ragged", lambda: fn([[1, 0], [1]]), *PAT_TYPE),
        ("pattern of strings", lambda: fn(np.array([["a", "b"]])), *PAT_DTYPE),
        ("pattern of objects", lambda: fn(np.array([[object()]])), *PAT_DTYPE),
        ("pattern 1-D", lambda: fn(np.ones(3)), *PAT_2D),
        ("pattern 3-D", lambda: fn(np.ones((2, 2, 2))), *PAT_2D),
        ("pattern 0-D", lambda: fn(1.0), *PAT_2D),
        ("pattern NaN", lambda: fn(np.array([[1.0, np.nan]])), *PAT_NAN),
        ("sparse pattern NaN", lambda: fn(sp.csr_array(np.array([[1.0, np.nan]]))), *PAT_NAN),
    ]


def _coloring_cases(fn: Callable[..., Any]) -> list:
    return [
        *_pattern_cases(fn),
        ("order unknown", lambda: fn(P, order="random"), *ORDER),
        ("order int", lambda: fn(P, order=1), *ORDER),
        ("order None", lambda: fn(P, order=None), *ORDER),
        ("iterations negative", lambda: fn(P, iterations=-1), *ITER_VALUE),
        ("iterations float", lambda: fn(P, iterations=1.5), *ITER_TYPE),
        ("iterations bool", lambda: fn(P, iterations=True), *ITER_TYPE),
        ("iterations str", lambda: fn(P, iterations="3"), *ITER_TYPE),
    ]


def _prepare_options(fn: Callable[..., Any], f: Callable[..., Any], n: int) -> list:
    return [
        ("order unknown", lambda: fn(f, X, order="slowest"), *ORDER),
        ("vectorize str", lambda: fn(f, X, vectorize="yes"), *VECTORIZE),
        ("vectorize int", lambda: fn(f, X, vectorize=1), *VECTORIZE_TYPE),
        ("vectorize None", lambda: fn(f, X, vectorize=None), *VECTORIZE_TYPE),
        ("pattern wrong shape", lambda: fn(f, X, pattern=np.eye(9)),
         ShapeError, "pattern=None to detect it"),
        ("pattern str", lambda: fn(f, X, pattern="banded"), *PAT_TYPE),
        ("pattern NaN", lambda: fn(f, X, pattern=np.full((n, 6), np.nan)), *PAT_NAN),
        ("pattern 1-D", lambda: fn(f, X, pattern=np.ones(6)), *PAT_2D),
    ]


def _plan_cases(method: str) -> list:
    plan = js.prepare(torch.sin, X)
    fn = getattr(plan, method)
    return [
        *_x_cases(fn),
        ("x wrong shape", lambda: fn(torch.zeros(7, dtype=DT)), ShapeError,
         r"jacobite\.sparse\.prepare\(f, x\) for the new shape"),
        ("x NaN", lambda: fn(torch.full((6,), float("nan"), dtype=DT)), NonFiniteInputError,
         "check_finite=False"),
        ("x inf", lambda: fn(torch.full((6,), float("inf"), dtype=DT)), NonFiniteInputError,
         r"torch\.nan_to_num"),
        ("check_finite str", lambda: fn(X, check_finite="yes"), ArgumentTypeError,
         "check_finite must be True or False"),
        ("check_finite None", lambda: fn(X, check_finite=None), ArgumentTypeError,
         "check_finite must be True or False"),
    ]


def _one_call_cases(hessian: bool) -> list:
    entry = jacobite.hessian if hessian else jacobite.jacobian
    f = (lambda u, w: (u * w).sum()) if hessian else (lambda u, w: u * w)

    def call(*args: Any, **kw: Any) -> Any:
        return one_call(f, args, kw.pop("argnums", 0), kw.pop("mode", "auto"), False, True,
                        hessian, **kw)

    return [
        ("f int", lambda: entry(3, X, sparse=True), *CALLABLE),
        ("argnums tuple of two", lambda: entry(f, X, X, argnums=(0, 1), sparse=True),
         ArgnumsError, "argnums"),
        ("argnums out of range", lambda: call(X, X, argnums=5), ArgnumsError,
         r"pick positions in 0\.\.1"),
        ("argnums float", lambda: call(X, X, argnums=1.0), ArgnumsError, "e.g. argnums=0"),
        ("argnums bool", lambda: call(X, X, argnums=True), ArgnumsError, "e.g. argnums=0"),
        ("argnums empty", lambda: call(X, X, argnums=()), ArgnumsError, "e.g. argnums=0"),
        ("argnums twice", lambda: call(X, X, argnums=(1, -1)), ArgnumsError, "list each once"),
        ("argnums a pair", lambda: call(X, X, argnums=(0, 1)), ArgnumsError,
         "pass an int argnums such as argnums=0"),
        ("x list at argnums", lambda: entry(f, [0.1], X, sparse=True), ArgnumsError,
         r"wrap it with torch\.tensor"),
        ("x int64", lambda: entry(f, torch.arange(6), X, sparse=True), *FLOAT),
        ("x NaN", lambda: entry(f, X * float("nan"), X, sparse=True), NonFiniteInputError,
         "check_finite=False"),
        ("x traced", _in_vmap(lambda u: entry(f, u, u, sparse=True).to_dense()), *TRACED),
        ("check_finite str", lambda: entry(f, X, X, check_finite="no", sparse=True),
         ArgumentTypeError, "check_finite must be True or False"),
        ("mode unknown", lambda: call(X, X, mode="sideways"), InvalidOptionError,
         "mode must be one of"),
        ("chunk_size zero", lambda: call(X, X, chunk_size=0), InvalidOptionError,
         "an int ≥ 1"),
        ("chunk_size float", lambda: call(X, X, chunk_size=1.5), ArgumentTypeError,
         "an int ≥ 1"),
        ("flat str", lambda: call(X, X, flat="yes"), ArgumentTypeError, "True or False"),
        ("memory_budget negative", lambda: call(X, X, memory_budget=-1), InvalidOptionError,
         "'1 GiB'"),
    ] + ([] if hessian else [
        ("has_aux", lambda: entry(f, X, X, has_aux=True, sparse=True), InvalidOptionError,
         r"jacobite\.sparse\.prepare\(f, x\)"),
        ("mode unknown (public)", lambda: entry(f, X, X, mode="sideways", sparse=True), *MODE),
    ])


CASES: dict[str, list] = {
    "detect": _f_cases(js.detect) + _x_cases(lambda x: js.detect(torch.sin, x)) + [
        ("f returns a float", lambda: js.detect(lambda u: 1.0, X), *OUTPUT),
        ("f returns a list of str", lambda: js.detect(lambda u: ["a"], X), *OUTPUT),
        ("f returns int64", lambda: js.detect(lambda u: u.argsort(), X), *INT_OUT),
        ("f returns bool", lambda: js.detect(lambda u: u > 0, X), *INT_OUT),
    ],
    "detect_hessian": _f_cases(js.detect_hessian)
    + _x_cases(lambda x: js.detect_hessian(lambda u: u.sum(), x)) + [
        ("f vector-valued", lambda: js.detect_hessian(torch.sin, X), ShapeError,
         r"detect\(f, x\) for its Jacobian"),
        ("f returns a tuple", lambda: js.detect_hessian(lambda u: (u.sum(),), X), *OUTPUT),
        ("f returns int64", lambda: js.detect_hessian(lambda u: u.argmax(), X), *INT_OUT),
    ],
    "prepare": _f_cases(js.prepare) + _x_cases(lambda x: js.prepare(torch.sin, x))
    + _prepare_options(js.prepare, torch.sin, 6) + [
        ("mode unknown", lambda: js.prepare(torch.sin, X, mode="sideways"), *MODE),
        ("mode int", lambda: js.prepare(torch.sin, X, mode=0), *MODE),
    ],
    "prepare_hessian": _f_cases(js.prepare_hessian)
    + _x_cases(lambda x: js.prepare_hessian(lambda u: u.pow(3).sum(), x))
    + _prepare_options(js.prepare_hessian, lambda u: u.pow(3).sum(), 6) + [
        ("f vector-valued", lambda: js.prepare_hessian(torch.sin, X), ShapeError, "Jacobian"),
    ],
    "column_coloring": _coloring_cases(js.column_coloring),
    "row_coloring": _coloring_cases(js.row_coloring),
    "bicoloring": _coloring_cases(js.bicoloring),
    "star_coloring": [c for c in _coloring_cases(js.star_coloring) if "iterations" not in c[0]]
    + [("not square", lambda: js.star_coloring(np.ones((2, 3))), ShapeError, "column_coloring")],
    "lower_bound": _pattern_cases(js.lower_bound),
    "SparsePlan.jacobian": _plan_cases("jacobian"),
    "SparsePlan.value_and_jacobian": _plan_cases("value_and_jacobian"),
    "jacobian(sparse=True)": _one_call_cases(hessian=False),
    "hessian(sparse=True)": _one_call_cases(hessian=True),
}

FLAT = [(name, *case) for name, cases in CASES.items() for case in cases]


def test_every_public_function_has_eight_kinds_of_bad_argument() -> None:
    public = {n for n in js.__all__ if inspect.isfunction(getattr(js, n))}
    assert public <= set(CASES), public - set(CASES)
    for name, cases in CASES.items():
        assert len({c[0] for c in cases}) >= 8, name


@pytest.mark.filterwarnings("ignore::jacobite.errors.JacobiteWarning")
@pytest.mark.parametrize(("fn", "label", "thunk", "error", "fix"), FLAT,
                         ids=[f"{c[0]}-{c[1]}" for c in FLAT])
def test_bad_argument_raises_a_typed_error_naming_the_fix(
        fn: str, label: str, thunk: Callable[[], Any], error: type, fix: str) -> None:
    with pytest.raises(JacobiteError) as info:
        thunk()
    assert isinstance(info.value, error), (type(info.value), info.value)
    assert re.search(fix, str(info.value)), str(info.value)
