"""Safe parsing: what is accepted, and an injection battery proving nothing user-written runs."""

from __future__ import annotations

import builtins
import string
from contextlib import contextmanager
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

sp = pytest.importorskip("sympy")

from jacobite.errors import JacobiteError  # noqa: E402
from jacobite.symbolic import ExpressionError, UnsafeExpressionError, parse  # noqa: E402
from jacobite.symbolic.parse import MAX_DEPTH, MAX_LENGTH, parse_components  # noqa: E402

x, y, z = sp.symbols("x y z", real=True)


@contextmanager
def nothing_evaluated():
    """Fail loudly if anything calls eval/exec or SymPy's string parsers while parsing."""

    def boom(*a, **k):
        raise AssertionError(f"eval/exec/sympify-on-a-string was called with {a[:1]!r}")

    real_sympify = sp.sympify

    def guarded_sympify(a, *args, **kw):
        if isinstance(a, str):
            boom(a)
        return real_sympify(a, *args, **kw)

    with mock.patch.object(builtins, "eval", boom), mock.patch.object(builtins, "exec", boom), \
            mock.patch("sympy.parsing.sympy_parser.parse_expr", boom), \
            mock.patch.object(sp, "sympify", guarded_sympify), \
            mock.patch.object(sp, "parse_expr", boom):
        yield


# ----------------------------------------------------------------------------- accepted input


@pytest.mark.parametrize(("text", "expected"), [
    ("x**2 + y, x*y", (x**2 + y, x * y)),
    ("x^2 + y", (x**2 + y,)),  # ^ is power
    ("2^3^2", (sp.Integer(512),)),  # right-associative, like **
    ("x^-1", (1 / x,)),
    ("x**2 + y*z, sin(x*y), exp(x + z)", (x**2 + y * z, sp.sin(x * y), sp.exp(x + z))),
    ("r*cos(theta)", (sp.Symbol("r", real=True) * sp.cos(sp.Symbol("theta", real=True)),)),
    ("E**x + pi", (sp.exp(x) + sp.pi,)),
    ("abs(x) + Abs(y) + sign(z)", (sp.Abs(x) + sp.Abs(y) + sp.sign(z),)),
    ("log(x, 2) + ln(y)", (sp.log(x) / sp.log(2) + sp.log(y),)),
    ("atan2(y, x)", (sp.atan2(y, x),)),
    ("  x - y + z - 2*w  ", (x - y + z - 2 * sp.Symbol("w", real=True),)),
    ("x/y/z*2", (2 * x / (y * z),)),
    ("1.5e-3*x + .5", (sp.Float("1.5e-3") * x + sp.Float(0.5),)),
    ("((x))", (x,)),
    ("x,", (x,)),
])
def test_accepted(text, expected):
    with nothing_evaluated():
        got = parse(text)
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert sp.simplify(g - e) == 0, (g, e)


def test_symbols_are_real_and_components_are_flagged():
    (e,) = parse("x")
    assert e.is_real
    assert sp.diff(parse("abs(x)")[0], x) == sp.sign(x)
    assert parse_components("atan2(y, x)")[1] is False
    assert parse_components("x, y")[1] is True
    assert parse_components(["x"])[1] is True


def test_lists_sympy_and_numbers():
    assert parse(["x**2 + y", "x*y"]) == (x**2 + y, x * y)
    assert parse(sp.Matrix([[x, y], [z, 1]])) == (x, y, z, 1)
    assert parse(x * y) == (x * y,)
    assert parse([x, "y", 2, 0.5]) == (x, y, 2, sp.Float(0.5))
    with pytest.raises(ExpressionError, match="one component per list item"):
        parse(["x, y"])
    with pytest.raises(ExpressionError, match="cannot use"):
        parse([object()])
    with pytest.raises(ExpressionError, match="cannot parse a"):
        parse(b"x")


def test_long_flat_sums_parse():
    text = "+".join(f"x{i}**2" for i in range(500))
    assert len(parse(text)[0].args) == 500
    assert parse("*".join(["x"] * 300)) == (x**300,)


@pytest.mark.parametrize(("text", "match"), [
    ("", "empty"),
    ("   ", "empty"),
    ("2x", r"2\*x"),
    ("x y", "cannot parse"),
    ("x +", "cannot parse"),
    ("(x", "unclosed"),
    ("x)", "unbalanced"),
    ("1/0", "division by zero"),
    ("x/(y - y)", "division by zero"),
    ("0**-1", "division by zero"),
    ("log(0)", "undefined"),
    ("1e999", "overflows"),
    ("sin", "is a function"),
    ("sin(x, y)", "takes 1"),
    ("log(x, 2, 3)", "takes 1 or 2"),
])
def test_malformed_input_raises_typed_error(text, match):
    with nothing_evaluated(), pytest.raises(ExpressionError, match=match):
        parse(text)


def test_empty_sequence():
    with pytest.raises(ExpressionError, match="no expressions"):
        parse([])


# ----------------------------------------------------------------------------- injection battery

PAYLOADS = [
    "__import__('os').system('touch {p}')",
    '__import__("os").system("touch {p}")',
    "__import__",
    "__builtins__",
    "open('{p}', 'w')",
    "open({p})",
    "exec(\"open('{p}','w')\")",
    "eval(\"open('{p}','w')\")",
    "compile('1', 'f', 'eval')",
    "globals()",
    "locals()",
    "vars()",
    "getattr(x, '__class__')",
    "().__class__.__bases__[0].__subclasses__()",
    "x.__class__",
    "x._y",
    "_x",
    "x.real",
    "(x).real",
    "1 .real",
    "lambda: open('{p}', 'w')",
    "(lambda: 1)()",
    "lambda x: x",
    "[x for x in ()]",
    "(x for x in ())",
    "{x: 1}",
    "{x}",
    "[x]",
    "x[0]",
    "x if y else z",
    "x == 1",
    "x < y",
    "x and y",
    "not x",
    "x | y",
    "x & y",
    "~x",
    "x @ y",
    "x % 2",
    "x // 2",
    "x := 1",
    "x; import os",
    "import os",
    "x\nimport os",
    "x\\\n+ 1",
    "x # comment",
    "'str'",
    '"str"',
    "f'{{x}}'",
    "b'x'",
    "`x`",
    "$x",
    "x!",
    "?x",
    "None",
    "True + x",
    "yield x",
    "await x",
    "0x1F",
    "1_000",
    "1j",
    "0b101",
    "Symbol('x')",
    "Integer(1)",
    "Function('f')(x)",
    "sympify('x')",
    "parse_expr('x')",
    "factorial(x)",
    "foo(x)",
    "sin(x=1)",
    "sin(*x)",
    "pi(x)",
    # unicode tricks: look-alikes, NFKC folds, invisible and control characters
    "ｅｘｅｃ('1')",  # fullwidth letters (NFKC -> exec)
    "𝐞𝐱𝐞𝐜('1')",  # mathematical bold (NFKC -> exec)
    "sіn(x)",  # Cyrillic і
    "x²",
    "ℯ**x",
    "x\u200b+ 1",  # zero-width space
    "x\u202e+1",  # right-to-left override
    "x\x00",
    "x\t\x0b+1",
    "\ufeffx",
    # resource exhaustion
    "9**9**9**9",
    "(10**1000)**1000",
    "2**100000",
    "x+" * (MAX_LENGTH // 2 + 1) + "x",
    "(" * (MAX_DEPTH + 1) + "x" + ")" * (MAX_DEPTH + 1),
    "-" * 5000 + "x",
    "x**" * 300 + "x",
    "1" * 500,
]


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda s: repr(s[:30]))
def test_injection_is_refused_before_anything_runs(payload, tmp_path):
    sentinel = tmp_path / "pwned"
    text = payload.replace("{p}", str(sentinel))
    builtins_before = set(vars(builtins))
    with nothing_evaluated(), pytest.raises(ExpressionError) as info:
        parse(text)
    assert not sentinel.exists()
    assert set(vars(builtins)) == builtins_before
    assert "allowed" in str(info.value) or "write" in str(info.value) or \
        "cannot parse" in str(info.value) or "is a function" in str(info.value)


@pytest.mark.parametrize("payload", ["__import__('os')", "x.y", "lambda: 1", "x if y else z",
                                     "'s'", "x[0]", "ｅｘｅｃ", "9**9**9**9"])
def test_unsafe_input_names_the_fix(payload):
    with pytest.raises(UnsafeExpressionError, match=r"only arithmetic .* sin, sinh"):
        parse(payload)


def test_errors_are_value_errors_and_jacobite_errors():
    with pytest.raises(ValueError):
        parse("__import__")
    with pytest.raises(JacobiteError):
        parse("x.y")


ALPHABET = string.printable + "ｅ𝐞²ℯіπ√∑\u200b\x00"


@given(st.text(alphabet=ALPHABET, max_size=40))
def test_fuzz_only_typed_errors_and_nothing_runs(text):
    with nothing_evaluated():
        try:
            out = parse(text)
        except ExpressionError:
            return
    assert out and all(isinstance(e, sp.Expr) for e in out)


@given(st.lists(st.sampled_from(["x", "y", "2", "0.5", "+", "-", "*", "/", "**", "^", "(", ")",
                                 ",", "sin(", "exp(", "log(", "pi", " "]), max_size=25))
def test_fuzz_grammar_soup(tokens):
    text = "".join(tokens)
    with nothing_evaluated():
        try:
            out = parse(text)
        except ExpressionError:
            return
    assert all(isinstance(e, sp.Expr) for e in out)


@pytest.mark.parametrize("name", ["exec", "eval", "open", "torch", "os", "sympy", "Symbol"])
def test_bare_names_are_only_symbols(name):
    """A name never resolves to a Python object: it is a plain (real) SymPy symbol."""
    with nothing_evaluated():
        (e,) = parse(f"{name} + 1")
    assert e == sp.Symbol(name, real=True) + 1
