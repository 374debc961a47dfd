"""Safe parsing of user expressions such as ``"x**2 + y, x*y"`` into SymPy expressions.

Nothing a user writes is ever executed: no ``eval``/``exec``, no ``sympify`` or ``parse_expr`` on a
raw string. A string passes three gates before any SymPy object exists:

1. **characters**: ASCII letters, digits, ``_``, spaces and ``+ - * / ^ ( ) , .`` only — so
   strings, subscripts, lambdas (``:``), comparisons, comments and unicode look-alikes never get
   through; the length and the nesting of parentheses are bounded;
2. **tokens** (Python's :mod:`tokenize`): names that are keywords or start with ``_`` (dunders),
   attribute access ``a.b``, operators such as ``//`` or ``%``, and number forms other than plain
   decimals are refused;
3. **syntax tree** (:func:`ast.parse`, which only builds a tree): each node is translated by a
   whitelist — numbers, variable names, ``+ - * / **``, unary ``±`` and calls of the functions in
   :data:`FUNCTIONS` — into SymPy objects; every other node is refused. Powers of constants are
   size-checked before SymPy evaluates them (``9**9**9**9`` would otherwise never finish).

``^`` means power (as in ``x^2``), not Python's xor. Symbols are real (``Symbol(name,
real=True)``), so ``d|x|/dx = sign(x)``. ``E`` and ``pi`` are the constants; ``e`` is an ordinary
variable (write ``exp(x)`` or ``E**x``). Comma-separated components give a vector function.

>>> parse("x**2 + y, x*y")
(x**2 + y, x*y)
>>> parse("x^2 + sin(y)")
(x**2 + sin(y),)
"""

from __future__ import annotations

import ast
import io
import keyword
import math
import re
import string
import tokenize
from collections.abc import Sequence
from typing import Any

from ..errors import ExpressionError, UnsafeExpressionError, require

__all__ = ["CONSTANTS", "FUNCTIONS", "MAX_DEPTH", "MAX_LENGTH", "parse", "parse_components"]

#: Longest accepted expression string (characters).
MAX_LENGTH = 10_000
#: Deepest accepted nesting (parentheses, or nodes of the syntax tree / 4).
MAX_DEPTH = 64
_MAX_LITERAL_DIGITS = 400
_MAX_EXPONENT = 10_000
_MAX_BITS = 12_000  # ~3600 decimal digits: below Python's int-to-str limit (4300)

#: Whitelisted functions: name in the expression -> (SymPy attribute, accepted argument counts).
FUNCTIONS: dict[str, tuple[str, tuple[int, ...]]] = {
    **{n: (n, (1,)) for n in ("sin", "cos", "tan", "cot", "sec", "csc", "asin", "acos", "atan",
                              "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "exp", "sqrt",
                              "sign", "erf")},
    "atan2": ("atan2", (2,)),
    "log": ("log", (1, 2)),
    "ln": ("log", (1,)),
    "abs": ("Abs", (1,)),
    "Abs": ("Abs", (1,)),
}
#: Whitelisted constants: name in the expression -> SymPy attribute.
CONSTANTS: dict[str, str] = {"pi": "pi", "E": "E"}

_ALLOWED_CHARS = frozenset(string.ascii_letters + string.digits + "_ \t+-*/^().,")
_OPERATORS = frozenset({"+", "-", "*", "/", "**", "(", ")", ","})
_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_SUMS = (ast.Add, ast.Sub)
_PRODUCTS = (ast.Mult, ast.Div)


def hint() -> str:
    """The sentence every parse error ends with: what *is* allowed."""
    funcs = ", ".join(sorted(FUNCTIONS))
    return ("only arithmetic (+ - * / ** ^ and parentheses), decimal numbers, variable names "
            f"(letters, digits, _), the constants pi and E and the functions {funcs} are allowed")


def _unsafe(what: str) -> UnsafeExpressionError:
    return UnsafeExpressionError(f"{what}; {hint()}")


def _check_characters(text: str) -> None:
    if len(text) > MAX_LENGTH:
        raise _unsafe(f"the expression has {len(text)} characters, more than the limit of "
                      f"{MAX_LENGTH}; split it into smaller pieces")
    for i, ch in enumerate(text):
        if ch not in _ALLOWED_CHARS:
            raise _unsafe(f"character {ch!r} (U+{ord(ch):04X}) at position {i} of {_clip(text)} "
                          "is not allowed")
    depth = 0
    for i, ch in enumerate(text):
        depth += (ch == "(") - (ch == ")")
        if depth < 0:
            raise ExpressionError(f"unbalanced ')' at position {i} of {_clip(text)}; remove it "
                                  "or add the matching '('")
        if depth > MAX_DEPTH:
            raise _unsafe(f"parentheses are nested more than {MAX_DEPTH} deep")
    if depth:
        raise ExpressionError(f"{depth} unclosed '(' in {_clip(text)}; add the matching ')'")


def _check_tokens(text: str) -> None:
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError) as exc:  # pragma: no cover - caught by the gates
        raise ExpressionError(f"cannot read {_clip(text)}: {exc}; {hint()}") from exc
    prev: tokenize.TokenInfo | None = None
    for tok in tokens:
        kind, s = tok.type, tok.string
        if kind == tokenize.NAME:
            if keyword.iskeyword(s):
                raise _unsafe(f"the keyword {s!r} is not allowed")
            if not _NAME.fullmatch(s):
                raise _unsafe(f"the name {s!r} is not allowed (names start with a letter; "
                              "names starting with '_' are refused)")
            if prev is not None and prev.type == tokenize.NUMBER:
                raise ExpressionError(f"a number is directly followed by {s!r}; write the "
                                      f"product explicitly, e.g. {prev.string}*{s}")
        elif kind == tokenize.NUMBER:
            if not _NUMBER.fullmatch(s):
                raise _unsafe(f"the number {s!r} is not allowed; write numbers in decimal, "
                              "like 2, 0.5 or 1e-3")
            if len(s) > _MAX_LITERAL_DIGITS:
                raise _unsafe(f"a number literal has {len(s)} characters, more than "
                              f"{_MAX_LITERAL_DIGITS}")
        elif kind == tokenize.OP:
            if s == ".":
                raise _unsafe("attribute access (a dot after a name or a bracket) is not "
                              "allowed")
            if s not in _OPERATORS:
                raise _unsafe(f"the operator {s!r} is not allowed")
        elif kind not in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER):
            raise _unsafe(f"{tokenize.tok_name[kind]} token {s!r} is not allowed")
        prev = tok


def _clip(text: str, n: int = 60) -> str:
    return repr(text if len(text) <= n else text[:n] + "...")


class _Builder:
    """Translate a whitelisted syntax tree into SymPy objects, node by node."""

    def __init__(self, sp: Any, text: str) -> None:
        self.sp = sp
        self.text = text

    def build(self, node: ast.AST, depth: int = 0) -> Any:
        if depth > 4 * MAX_DEPTH:
            raise _unsafe(f"the expression is nested more than {4 * MAX_DEPTH} operations deep")
        sp = self.sp
        if isinstance(node, ast.Constant):
            v = node.value
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise _unsafe(f"the constant {v!r} is not allowed")
            if isinstance(v, float) and not math.isfinite(v):
                raise ExpressionError(f"a number in {_clip(self.text)} overflows float64; use a "
                                      "smaller number")
            return sp.Integer(v) if isinstance(v, int) else sp.Float(v)
        if isinstance(node, ast.Name):
            if node.id in CONSTANTS:
                return getattr(sp, CONSTANTS[node.id])
            if node.id in FUNCTIONS:
                raise ExpressionError(f"{node.id!r} is a function; call it, like {node.id}(x)")
            return sp.Symbol(node.id, real=True)
        if isinstance(node, ast.BinOp) and isinstance(node.op, _SUMS + _PRODUCTS):
            return self._chain(node, depth)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            return self._power(self.build(node.left, depth + 1), self.build(node.right, depth + 1))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
            arg = self.build(node.operand, depth + 1)
            return -arg if isinstance(node.op, ast.USub) else arg
        if isinstance(node, ast.Call):
            return self._call(node, depth)
        raise _unsafe(f"{_describe(node)} is not allowed")

    def _chain(self, node: ast.BinOp, depth: int) -> Any:
        """``a + b - c + ...`` or ``a * b / c ...``: flattened, so long sums need no recursion."""
        family = _SUMS if isinstance(node.op, _SUMS) else _PRODUCTS
        rights: list[tuple[ast.operator, ast.expr]] = []
        cur: ast.expr = node
        while isinstance(cur, ast.BinOp) and isinstance(cur.op, family):
            rights.append((cur.op, cur.right))
            cur = cur.left
        parts = [self.build(cur, depth + 1)]
        for op, right in reversed(rights):
            term = self.build(right, depth + 1)
            if isinstance(op, ast.Sub):
                term = -term
            elif isinstance(op, ast.Div):
                if term.is_zero:
                    raise ExpressionError(f"division by zero in {_clip(self.text)}")
                term = self.sp.Pow(term, -1)
            parts.append(term)
        return self.sp.Add(*parts) if family is _SUMS else self.sp.Mul(*parts)

    def _call(self, node: ast.Call, depth: int) -> Any:
        if not isinstance(node.func, ast.Name):
            raise _unsafe("only calls of named functions, like sin(x), are allowed")
        name = node.func.id
        if name not in FUNCTIONS:
            raise _unsafe(f"the function {name!r} is not allowed")
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            raise _unsafe(f"{name}() takes plain positional arguments only")
        attr, arities = FUNCTIONS[name]
        if len(node.args) not in arities:
            want = " or ".join(str(a) for a in arities)
            raise ExpressionError(f"{name}() takes {want} argument(s), got {len(node.args)}")
        args = [self.build(a, depth + 1) for a in node.args]
        return getattr(self.sp, attr)(*args)

    def _power(self, base: Any, exp: Any) -> Any:
        sp = self.sp
        if base.is_number and exp.is_number and exp.is_Rational and not (
                base.is_zero or base == 1 or base == -1):
            if abs(exp) > _MAX_EXPONENT:
                raise _unsafe(f"the constant power with exponent {exp} is too large (limit "
                              f"{_MAX_EXPONENT})")
            if base.is_Rational:
                bits = max(int(base.p).bit_length(), int(base.q).bit_length())
                if bits * abs(exp) > _MAX_BITS:
                    raise _unsafe("a constant power in the expression has more than about "
                                  f"{int(_MAX_BITS * 0.30103)} digits")
        if base.is_zero and exp.is_number and exp.is_negative:
            raise ExpressionError(f"0 to a negative power in {_clip(self.text)} (division by "
                                  "zero)")
        return sp.Pow(base, exp)


def _describe(node: ast.AST) -> str:
    names = {ast.Attribute: "attribute access", ast.Subscript: "indexing", ast.Lambda: "lambda",
             ast.IfExp: "a conditional expression", ast.Compare: "a comparison",
             ast.BoolOp: "and/or", ast.Tuple: "a nested tuple", ast.List: "a list"}
    for t, text in names.items():
        if isinstance(node, t):
            return text
    if isinstance(node, ast.BinOp):
        return f"the operator {type(node.op).__name__}"
    return f"a {type(node).__name__} node"


def _parse_string(sp: Any, text: str) -> tuple[list[Any], bool]:
    _check_characters(text)
    text = text.strip().replace("^", "**")
    if not text:
        raise ExpressionError("the expression is empty; give at least one, like 'x**2 + y'")
    _check_tokens(text)
    try:
        tree = ast.parse(text, mode="eval")
    except (RecursionError, MemoryError) as exc:
        raise _unsafe("the expression is too deeply nested or too long for Python's parser; "
                      "split it into several expressions") from exc
    except (SyntaxError, ValueError) as exc:
        msg = exc.msg if isinstance(exc, SyntaxError) else str(exc)
        raise ExpressionError(f"cannot parse {_clip(text)}: {msg}; {hint()}") from exc
    body = tree.body
    parts = body.elts if isinstance(body, ast.Tuple) else [body]
    builder = _Builder(sp, text)
    try:
        return [builder.build(p) for p in parts], isinstance(body, ast.Tuple)
    except RecursionError as exc:  # pragma: no cover - bounded by MAX_DEPTH
        raise _unsafe("the expression is nested too deeply") from exc


def _check_result(sp: Any, expr: Any, source: Any) -> Any:
    if expr.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
        raise ExpressionError(f"{_clip(str(source))} is undefined (it contains {expr}); check "
                              "for a division by zero or log(0)")
    for atom in expr.atoms(sp.Rational):
        if max(int(atom.p).bit_length(), int(atom.q).bit_length()) > _MAX_BITS:
            raise _unsafe("a number in the expression has more than about "
                          f"{int(_MAX_BITS * 0.30103)} digits")
    return expr


def _number(sp: Any, v: int | float) -> Any:
    return sp.Float(v) if isinstance(v, float) else sp.Integer(v)


def parse(exprs: Any) -> tuple[Any, ...]:
    """Parse expressions safely into a tuple of SymPy expressions (one per component).

    Args:
        exprs: a string of comma-separated components (``"x**2 + y, x*y"``), a sequence whose
            items are strings (one component each) or SymPy expressions, a SymPy expression, a
            SymPy matrix (entries in row-major order) or a number.

    Raises:
        UnsafeExpressionError: the string contains anything outside the whitelist (see the module
            docstring); nothing of it is executed.
        ExpressionError: the string is empty, malformed or undefined (``1/0``).

    >>> parse(["x**2 + y", "x*y"])
    (x**2 + y, x*y)
    >>> parse("exp(x + z), atan2(y, x)")
    (exp(x + z), atan2(y, x))
    """
    return parse_components(exprs)[0]


def parse_components(exprs: Any) -> tuple[tuple[Any, ...], bool]:
    """``(parse(exprs), is_vector)``: ``is_vector`` is False for ONE expression given on its own
    (a string without top-level commas, a SymPy expression, a number) — a scalar function.

    >>> parse_components("atan2(y, x)"), parse_components("x, y")
    (((atan2(y, x),), False), ((x, y), True))
    """
    sp = require("sympy", "symbolic")
    vector = True
    if isinstance(exprs, str):
        out, vector = _parse_string(sp, exprs)
        source: list[Any] = [exprs] * len(out)
    elif isinstance(exprs, sp.MatrixBase):
        out = list(exprs)
        source = out
    elif isinstance(exprs, sp.Basic):
        out, source, vector = [exprs], [exprs], False
    elif isinstance(exprs, (int, float)) and not isinstance(exprs, bool):
        out, vector = [_number(sp, exprs)], False
        source = out
    elif isinstance(exprs, Sequence) and not isinstance(exprs, (bytes, bytearray)):
        out, source = [], []
        for item in exprs:
            if isinstance(item, str):
                got, _ = _parse_string(sp, item)
                if len(got) != 1:
                    raise ExpressionError(
                        f"the list item {_clip(item)} has {len(got)} comma-separated components; "
                        "give one component per list item, or one comma-separated string")
                out.extend(got)
                source.append(item)
            elif isinstance(item, sp.Basic) and not isinstance(item, sp.MatrixBase):
                out.append(item)
                source.append(item)
            elif isinstance(item, (int, float)) and not isinstance(item, bool):
                out.append(_number(sp, item))
                source.append(item)
            else:
                raise ExpressionError(f"cannot use {type(item).__name__} {item!r} as an "
                                      "expression; give strings like 'x**2 + y' or SymPy "
                                      "expressions")
    else:
        raise ExpressionError(f"cannot parse a {type(exprs).__name__}; give a string like "
                              "'x**2 + y, x*y', a list of strings or SymPy expressions")
    if not out:
        raise ExpressionError("no expressions given; pass at least one, like 'x**2 + y'")
    for i, e in enumerate(out):
        if not isinstance(e, sp.Expr):
            raise ExpressionError(f"component {i} ({type(e).__name__}) is not a scalar "
                                  "expression; give arithmetic expressions only")
        _check_result(sp, e, source[i])
    return tuple(out), vector
