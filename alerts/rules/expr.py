"""``expr`` rule conditions: a small, safe expression language over a run's latest metric values.

A rule may say ``expr: "`val/val_loss` - `train/train_loss` > 0.5"``. The text is parsed by the hand-written
tokenizer and recursive-descent parser below -- never by Python's ``eval``/``compile``/``ast`` -- so user text
can only ever mean arithmetic, comparisons and boolean logic over metric values.

Grammar, lowest precedence first::

    condition  := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | comparison
    comparison := sum (("<" | "<=" | ">" | ">=" | "==" | "!=") sum)?      -- no chaining: a < b < c is an error
    sum        := product (("+" | "-") product)*
    product    := unary (("*" | "/") unary)*
    unary      := ("-" | "+") unary | primary
    primary    := NUMBER | "inf" | "nan" | "true" | "false" | `any key` | NAME
                | ("abs" | "min" | "max") "(" condition ("," condition)* ")" | "(" condition ")"

``NUMBER`` is an int or float literal (``3``, ``0.5``, ``.5``, ``1e-3``). A metric key is either quoted in
backticks (any characters except a backtick, not empty) or a bare ``NAME`` matching
``[A-Za-z_][A-Za-z0-9_./-]*`` that does not end in ``.``, ``/`` or ``-`` and is not a keyword (``and or not abs
min max inf nan true false``). Because ``/`` and ``-`` may occur inside bare names, ``loss/2`` and ``a-b`` are
single metric keys: put spaces around operators (``loss / 2``) or quote keys in backticks. ``abs`` takes exactly
one argument, ``min``/``max`` at least two.

Types are checked at parse time: arithmetic and comparison operands must be numbers, ``and``/``or``/``not``
operands must be conditions, and the whole expression must be a condition.

Evaluation follows IEEE 754 float semantics and never raises: comparisons with NaN are false except ``!=``;
``x / 0`` is ±inf (NaN for ``0 / 0`` and ``nan / 0``); ``min``/``max`` return NaN if any argument is NaN. A
missing metric gives no verdict (``None``), except where ``and``/``or`` decide without it (Kleene logic:
``false and `x` > 1`` is ``False``).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple, NoReturn

__all__ = ["KEYWORDS", "MAX_DEPTH", "MAX_LENGTH", "Expr", "ExprError", "parse_expr"]

MAX_LENGTH = 2000
"""Longest accepted expression text, in characters."""
MAX_DEPTH = 50
"""Deepest accepted nesting: of parentheses, prefix operators and function calls while parsing, and of the
compiled evaluation tree (so a long flat chain like ``a + a + ... + a`` counts too). Bounding both keeps parsing
and evaluation far from Python's recursion limit."""

KEYWORDS = frozenset({"and", "or", "not", "abs", "min", "max", "inf", "nan", "true", "false"})
"""Words that are never bare metric keys (quote such a key in backticks: `` `min` ``)."""
_FUNCTIONS = ("abs", "min", "max")
_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne,
}
# Longest first, so "<=" is not read as "<" followed by "=".
_OPERATORS = ("<=", ">=", "==", "!=", "<", ">", "+", "-", "*", "/", "(", ")", ",")
_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
# What a malformed number runs on with ("1e", "1.2.3", "2x"), to quote all of it in the error.
_NUMBER_TAIL = re.compile(r"[A-Za-z0-9_.]*")
# A bare name may not end in "." "/" "-", so "loss- 1" is "loss" minus 1 rather than an unknown key "loss-".
_NAME = re.compile(r"[A-Za-z_](?:[A-Za-z0-9_./-]*[A-Za-z0-9_])?")
_EXPECTED_OPERAND = "expected a number, a `metric` or '('"
_EXAMPLE = "e.g. `a` > 1"

_Values = Mapping[str, float]
_NumFn = Callable[[_Values], float | None]
_CondFn = Callable[[_Values], bool | None]
Spans = Mapping[str, tuple[float, float]]
"""Per key, the least and greatest finite value it takes (over a batch of points)."""
_SpanFn = Callable[[Spans], tuple[float, float] | None]
_QuietFn = Callable[[Spans], bool]


class ExprError(ValueError):
    """An expression that cannot be parsed or type-checked.

    ``message`` says what was wrong and what was expected; ``column`` is the 1-based character position in the
    expression text where the problem is (one past the end for problems at the end). ``str()`` is ``message``.
    """

    message: str
    column: int

    def __init__(self, message: str, column: int) -> None:
        super().__init__(message)
        self.message = message
        self.column = column

    def __reduce__(self) -> tuple[type[ExprError], tuple[str, int]]:
        # The default pickling replays only ``args`` (the message) and would lose ``column``.
        return (type(self), (self.message, self.column))


class Expr:
    """A parsed, type-checked and compiled condition. Immutable; build one with :func:`parse_expr`.

    ``text`` is the source text and ``keys`` every metric key it references (even ones that short-circuiting may
    leave unread).
    """

    __slots__ = ("text", "keys", "_condition", "_comparison", "_quiet")

    text: str
    keys: frozenset[str]
    _condition: _CondFn
    _comparison: tuple[Callable[[float, float], bool], _NumFn, _NumFn] | None
    _quiet: _QuietFn | None

    def __init__(self, text: str, keys: frozenset[str], condition: _CondFn,
                 comparison: tuple[Callable[[float, float], bool], _NumFn, _NumFn] | None,
                 quiet: _QuietFn | None = None) -> None:
        """Internal: use :func:`parse_expr`. ``comparison`` is (op, left, right) when the top level is one."""
        object.__setattr__(self, "text", text)
        object.__setattr__(self, "keys", keys)
        object.__setattr__(self, "_condition", condition)
        object.__setattr__(self, "_comparison", comparison)
        object.__setattr__(self, "_quiet", quiet)

    def evaluate(self, values: Mapping[str, float]) -> bool | None:
        """Whether the condition holds for ``values`` (metric key -> latest value).

        ``None`` when a key the result depends on is missing (or not a number). Never raises.
        """
        return self._condition(values)

    def cannot_hold(self, spans: Spans) -> bool:
        """True when no values within ``spans`` make the condition hold: interval arithmetic over the
        compiled tree (``+ - * /``, ``abs``, ``min``, ``max``, comparisons, ``and``/``or``), where IEEE
        rounding is monotone, so the bounds hold for the floats computed too. False when unsure (a key
        without a span, ``not``, ``!=``, a divisor that may be 0, a bound that is not finite).
        ``evaluate`` then still answers None for a key that has no value."""
        return self._quiet is not None and self._quiet(spans)

    def describe(self, values: Mapping[str, float]) -> tuple[bool | None, float | None, float | None]:
        """``(result, value, threshold)`` for notification templates.

        When the top level is a single comparison, ``value`` is its left side and ``threshold`` its right side,
        each ``None`` if a key it needs is missing; otherwise both are ``None``. ``result`` is what
        :meth:`evaluate` returns. Never raises.
        """
        if self._comparison is None:
            return self._condition(values), None, None
        compare, left, right = self._comparison
        value, threshold = left(values), right(values)
        if value is None or threshold is None:
            return None, value, threshold
        return compare(value, threshold), value, threshold

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Expr({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expr) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"Expr is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"Expr is immutable: cannot delete {name!r}")

    # Immutable, so copies can be the object itself (the default protocol would hit __setattr__); pickling
    # re-parses the text, since closures cannot be pickled.
    def __copy__(self) -> Expr:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Expr:
        return self

    def __reduce__(self) -> tuple[Callable[[str], Expr], tuple[str]]:
        return (parse_expr, (self.text,))


def parse_expr(text: str) -> Expr:
    """Parse, type-check and compile ``text``; raise :class:`ExprError` (with a column) if it is not valid."""
    if not isinstance(text, str):
        raise ExprError(f"an expression must be a string, got {type(text).__name__}", 1)
    if len(text) > MAX_LENGTH:
        raise ExprError(f"the expression is too long ({len(text)} characters): at most {MAX_LENGTH} are allowed",
                        MAX_LENGTH + 1)
    if not text.strip():
        raise ExprError(f"the expression is empty: expected a condition, {_EXAMPLE}", 1)
    parser = _Parser(_tokenize(text))
    root = parser.parse()
    return Expr(text, frozenset(parser.keys), root.fn, root.comparison, root.quiet)


# --- tokenizer -------------------------------------------------------------------------------------------------


class _Token(NamedTuple):
    kind: str
    """num, name (bare key), key (backtick-quoted key), kw (keyword), op, end."""
    text: str
    """The key for name/key tokens, otherwise the source text."""
    column: int
    value: float = 0.0


def _describe(token: _Token) -> str:
    if token.kind == "end":
        return "end of expression"
    if token.kind == "key":
        return f"`{token.text}`"
    return f"'{token.text}'"


def _tokenize(text: str) -> Iterator[_Token]:
    # A generator, pulled by the parser one token at a time: the first problem reading left to right is the one
    # reported ("__import__('os')" is an unknown function at column 1, not a stray quote at column 12).
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        column = i + 1
        if char.isspace():
            i += 1
        elif char == "`":
            end = text.find("`", i + 1)
            if end < 0:
                raise ExprError(f"unterminated backtick quote starting at column {column}: expected a closing '`'",
                                column)
            if end == i + 1:
                raise ExprError(f"empty metric key `` at column {column}: expected a metric name between the "
                                "backticks", column)
            yield _Token("key", text[i + 1:end], column)
            i = end + 1
        elif (number := _NUMBER.match(text, i)) is not None:
            tail = _NUMBER_TAIL.match(text, number.end())
            assert tail is not None  # the pattern also matches the empty string
            if tail.end() > number.end():
                raise ExprError(f"invalid number '{text[i:tail.end()]}' at column {column}: expected digits with an "
                                "optional fraction and exponent, e.g. 3, 0.5 or 1e-3", column)
            # float() only ever sees what _NUMBER matched; huge exponents become inf rather than raising.
            yield _Token("num", number.group(), column, float(number.group()))
            i = number.end()
        elif (name := _NAME.match(text, i)) is not None:
            word = name.group()
            if word in KEYWORDS:
                yield _Token("kw", word, column)
            elif word.lower() in KEYWORDS:
                # "NaN", "Inf", "True", "AND": almost surely meant as the keyword; as a metric key it would
                # silently never be found.
                raise ExprError(f"'{word}' at column {column} is not a keyword (keywords are lowercase): expected "
                                f"'{word.lower()}', or a metric key quoted in backticks: `{word}`", column)
            else:
                yield _Token("name", word, column)
            i = name.end()
        else:
            operator_text = next((op for op in _OPERATORS if text.startswith(op, i)), None)
            if operator_text is None:
                raise ExprError(_unexpected_character(text, i), column)
            yield _Token("op", operator_text, column)
            i += len(operator_text)
    yield _Token("end", "", n + 1)


def _unexpected_character(text: str, i: int) -> str:
    char, column = text[i], i + 1
    hints = {
        "=": "expected '==' to compare for equality",
        "!": "expected '!=' or 'not'",
        "&": "expected 'and'",
        "|": "expected 'or'",
        "'": "metric keys are quoted with backticks, e.g. `val/loss`",
        '"': "metric keys are quoted with backticks, e.g. `val/loss`",
    }
    hint = hints.get(char, "expected a number, a metric key, an operator or a parenthesis")
    # repr() escapes control characters; a lone "'" quoted in "'" would be unreadable, so show it as repr does.
    shown = f"'{char}'" if char.isprintable() and char != "'" else repr(char)
    if not char.isprintable():
        shown += f" (U+{ord(char):04X})"
    return f"unexpected character {shown} at column {column}: {hint}"


# --- parser and compiler ----------------------------------------------------------------------------------------
#
# Parsing and compiling happen in one pass: each parse method returns a typed node holding the closure that
# evaluates it, so evaluation is plain closure calls with no tree walk. Closures return None for "a key is
# missing" and propagate it.


@dataclass(frozen=True, slots=True)
class _Num:
    fn: _NumFn
    column: int
    depth: int
    const: float | None = None
    """The value, when known at parse time (literals and arithmetic on them), for folding."""
    span: _SpanFn | None = None
    """The range of the value given the ranges of the keys (None: not bounded this way)."""

    def bounds(self) -> _SpanFn | None:
        if self.const is not None:
            if not math.isfinite(self.const):
                return None
            fixed = (self.const, self.const)
            return lambda spans: fixed
        return self.span


@dataclass(frozen=True, slots=True)
class _Cond:
    fn: _CondFn
    column: int
    depth: int
    comparison: tuple[Callable[[float, float], bool], _NumFn, _NumFn] | None = None
    """(op, left, right) when this node is a single comparison, for :meth:`Expr.describe`."""
    quiet: _QuietFn | None = None
    """True when the condition cannot hold for values within the given spans (:meth:`Expr.cannot_hold`)."""


_Node = _Num | _Cond


class _Parser:
    def __init__(self, tokens: Iterator[_Token]) -> None:
        self.tokens = tokens
        self.current = next(tokens)
        self.nesting = 0
        self.keys: set[str] = set()

    # helpers

    def peek(self) -> _Token:
        return self.current

    def advance(self) -> _Token:
        token = self.current
        if token.kind != "end":
            self.current = next(self.tokens)
        return token

    def at_op(self, *ops: str) -> bool:
        return self.current.kind == "op" and self.current.text in ops

    def at_kw(self, word: str) -> bool:
        return self.current.kind == "kw" and self.current.text == word

    def enter(self, column: int) -> None:
        self.nesting += 1
        if self.nesting > MAX_DEPTH:
            self.too_deep(column)

    def leave(self) -> None:
        self.nesting -= 1

    @staticmethod
    def too_deep(column: int) -> NoReturn:
        raise ExprError(f"the expression is nested too deeply at column {column}: at most {MAX_DEPTH} levels of "
                        "parentheses, operators and function calls are allowed", column)

    @staticmethod
    def depth(column: int, *children: _Node) -> int:
        depth = 1 + max((child.depth for child in children), default=0)
        if depth > MAX_DEPTH:
            _Parser.too_deep(column)
        return depth

    @staticmethod
    def number(node: _Node, what: str) -> _Num:
        if not isinstance(node, _Num):
            raise ExprError(f"{what} at column {node.column} is a condition: expected a number", node.column)
        return node

    @staticmethod
    def condition(node: _Node, what: str) -> _Cond:
        if not isinstance(node, _Cond):
            raise ExprError(f"{what} at column {node.column} is a number: expected a condition, {_EXAMPLE}",
                            node.column)
        return node

    # grammar

    def parse(self) -> _Cond:
        node = self.parse_or()
        token = self.peek()
        if token.kind != "end":
            if self.at_op(")"):
                raise ExprError(f"unexpected ')' at column {token.column}: there is no '(' to close", token.column)
            raise ExprError(f"unexpected {_describe(token)} at column {token.column}: expected an operator, 'and', "
                            "'or' or the end of the expression", token.column)
        if not isinstance(node, _Cond):
            raise ExprError(f"the expression must be a condition, {_EXAMPLE}", node.column)
        return node

    def parse_or(self) -> _Node:
        return self.parse_logical("or", self.parse_and)

    def parse_and(self) -> _Node:
        return self.parse_logical("and", self.parse_not)

    def parse_logical(self, word: str, operand: Callable[[], _Node]) -> _Node:
        first = operand()
        if not self.at_kw(word):
            return first
        # A chain "a or b or c" becomes one n-ary node: no depth cost per operand, and one loop when evaluated.
        operands = [self.condition(first, f"the left operand of '{word}'")]
        while self.at_kw(word):
            self.advance()
            operands.append(self.condition(operand(), f"the right operand of '{word}'"))
        fns = tuple(node.fn for node in operands)
        fn = _all(fns) if word == "and" else _any(fns)
        return _Cond(fn, first.column, self.depth(first.column, *operands),
                     quiet=_logical_quiet(word, [node.quiet for node in operands]))

    def parse_not(self) -> _Node:
        if not self.at_kw("not"):
            return self.parse_comparison()
        token = self.advance()
        self.enter(token.column)
        operand = self.condition(self.parse_not(), "the operand of 'not'")
        self.leave()
        return _Cond(_not(operand.fn), token.column, self.depth(token.column, operand))

    def parse_comparison(self) -> _Node:
        left = self.parse_sum()
        if not self.at_op(*_COMPARISONS):
            return left
        op = self.advance()
        left = self.number(left, f"the left operand of '{op.text}'")
        right = self.number(self.parse_sum(), f"the right operand of '{op.text}'")
        if self.at_op(*_COMPARISONS):
            second = self.peek()
            raise ExprError(f"comparisons cannot be chained ('{op.text}' at column {op.column}, then "
                            f"'{second.text}' at column {second.column}): expected 'and' between two comparisons, "
                            "e.g. `a` < `b` and `b` < `c`", second.column)
        compare = _COMPARISONS[op.text]
        return _Cond(_compare(compare, left, right), left.column, self.depth(op.column, left, right),
                     (compare, left.fn, right.fn), _comparison_quiet(op.text, left.bounds(), right.bounds()))

    def parse_sum(self) -> _Node:
        return self.parse_arithmetic(("+", "-"), self.parse_product)

    def parse_product(self) -> _Node:
        return self.parse_arithmetic(("*", "/"), self.parse_unary)

    def parse_arithmetic(self, ops: tuple[str, ...], operand: Callable[[], _Node]) -> _Node:
        node = operand()
        while self.at_op(*ops):
            op = self.advance()
            left = self.number(node, f"the left operand of '{op.text}'")
            right = self.number(operand(), f"the right operand of '{op.text}'")
            node = _arithmetic(_ARITHMETIC[op.text], left, right, self.depth(op.column, left, right))
        return node

    def parse_unary(self) -> _Node:
        if not self.at_op("-", "+"):
            return self.parse_primary()
        op = self.advance()
        self.enter(op.column)
        operand = self.number(self.parse_unary(), f"the operand of unary '{op.text}'")
        self.leave()
        if op.text == "+":
            return replace(operand, column=op.column)
        if operand.const is not None:
            value = -operand.const
            return _Num(_constant(value), op.column, 1, value)
        return _Num(_negate(operand.fn), op.column, self.depth(op.column, operand),
                    span=_unary_span(operand.bounds(), lambda low, high: (-high, -low)))

    def parse_primary(self) -> _Node:
        token = self.advance()
        if token.kind == "num":
            return _Num(_constant(token.value), token.column, 1, token.value)
        if token.kind in ("name", "key"):
            if token.kind == "name" and self.at_op("("):
                raise ExprError(f"unknown function '{token.text}' at column {token.column}: expected abs, min or "
                                "max", token.column)
            self.keys.add(token.text)
            return _Num(_lookup(token.text), token.column, 1, span=_key_span(token.text))
        if token.kind == "kw":
            if token.text in ("inf", "nan"):
                value = math.inf if token.text == "inf" else math.nan
                return _Num(_constant(value), token.column, 1, value)
            if token.text in ("true", "false"):
                return _Cond(_constant(token.text == "true"), token.column, 1)
            if token.text in _FUNCTIONS:
                return self.parse_call(token)
        if token.kind == "op" and token.text == "(":
            self.enter(token.column)
            inner = self.parse_or()
            self.leave()
            if not self.at_op(")"):
                found = self.peek()
                raise ExprError(f"unexpected {_describe(found)} at column {found.column}: expected an operator or "
                                f"')' to close the '(' at column {token.column}", found.column)
            self.advance()
            # Point later type errors at the '(' that starts the operand.
            return replace(inner, column=token.column)
        raise ExprError(f"unexpected {_describe(token)} at column {token.column}: {_EXPECTED_OPERAND}", token.column)

    def parse_call(self, name: _Token) -> _Num:
        if not self.at_op("("):
            example = f"{name.text}(`a`)" if name.text == "abs" else f"{name.text}(`a`, `b`)"
            raise ExprError(f"'{name.text}' at column {name.column} is a function: expected '(' after it, e.g. "
                            f"{example}, or quote a metric named {name.text} in backticks", name.column)
        self.advance()
        self.enter(name.column)
        args: list[_Num] = []
        if not self.at_op(")"):
            while True:
                args.append(self.number(self.parse_or(), f"argument {len(args) + 1} of {name.text}()"))
                if self.at_op(","):
                    self.advance()
                elif self.at_op(")"):
                    break
                else:
                    found = self.peek()
                    raise ExprError(f"unexpected {_describe(found)} at column {found.column}: expected an operator, "
                                    f"',' or ')' to close {name.text}( at column {name.column}", found.column)
        self.advance()
        self.leave()
        if name.text == "abs" and len(args) != 1:
            raise ExprError(f"abs() at column {name.column} takes exactly 1 argument, got {len(args)}", name.column)
        if name.text != "abs" and len(args) < 2:
            raise ExprError(f"{name.text}() at column {name.column} takes at least 2 arguments, got {len(args)}",
                            name.column)
        depth = self.depth(name.column, *args)
        if name.text == "abs":
            return _Num(_abs(args[0].fn), name.column, depth, span=_unary_span(args[0].bounds(), _abs_span))
        return _Num(_extremum(name.text == "min", [arg.fn for arg in args]), name.column, depth,
                    span=_extremum_span(name.text == "min", [arg.bounds() for arg in args]))


# --- closures -------------------------------------------------------------------------------------------------
#
# Module-level factories, so each closure captures only what it needs. None means "a key was missing".


def _constant(value: Any) -> Callable[[_Values], Any]:
    def constant(values: _Values) -> Any:
        return value

    return constant


def _coerce(value: object) -> float | None:
    """A looked-up value that is not a plain float: ints, numpy scalars etc. convert; anything else is missing."""
    if isinstance(value, str | bytes | bytearray):  # float("1.5") would "work", but a string is not a metric value
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except Exception:  # evaluate never raises: an unconvertible value (or a broken __float__) is no value
        return None


def _lookup(key: str) -> _NumFn:
    def lookup(values: _Values) -> float | None:
        value = values.get(key)
        if value is None or type(value) is float:
            return value
        return _coerce(value)

    return lookup


def _divide(a: float, b: float) -> float:
    # Python raises ZeroDivisionError where IEEE 754 gives ±inf or NaN; the sign of inf follows both signs
    # (1 / -0.0 is -inf).
    if b == 0.0:
        if a == 0.0 or a != a:
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b


# + - * on floats never raise in Python (overflow gives inf, inf - inf gives nan); only / needs a guard.
_ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": _divide,
}


def _arithmetic(op: Callable[[float, float], float], left: _Num, right: _Num, depth: int) -> _Num:
    if left.const is not None and right.const is not None:
        value = op(left.const, right.const)
        return _Num(_constant(value), left.column, 1, value)
    lfn, rfn = left.fn, right.fn
    if right.const is not None:
        # Common shape "`x` * 100": skip the call to the constant's closure.
        c = right.const

        def arithmetic_const(values: _Values) -> float | None:
            a = lfn(values)
            return None if a is None else op(a, c)

        return _Num(arithmetic_const, left.column, depth, span=_arithmetic_span(op, left.bounds(), right.bounds()))

    def arithmetic(values: _Values) -> float | None:
        a = lfn(values)
        if a is None:
            return None
        b = rfn(values)
        if b is None:
            return None
        return op(a, b)

    return _Num(arithmetic, left.column, depth, span=_arithmetic_span(op, left.bounds(), right.bounds()))


def _negate(fn: _NumFn) -> _NumFn:
    def negate(values: _Values) -> float | None:
        a = fn(values)
        return None if a is None else -a

    return negate


def _abs(fn: _NumFn) -> _NumFn:
    def absolute(values: _Values) -> float | None:
        a = fn(values)
        return None if a is None else abs(a)

    return absolute


def _extremum(smallest: bool, fns: Sequence[_NumFn]) -> _NumFn:
    # Python's min/max answer depends on argument order when a NaN is present; propagate NaN instead (like
    # numpy.minimum), so "min(`a`, `b`)" with a NaN metric is NaN and compares false.
    pick = min if smallest else max
    if len(fns) == 2:
        first, second = fns

        def extremum2(values: _Values) -> float | None:
            a = first(values)
            if a is None:
                return None
            b = second(values)
            if b is None:
                return None
            if a != a or b != b:
                return math.nan
            return pick(a, b)

        return extremum2
    all_fns = tuple(fns)

    def extremum(values: _Values) -> float | None:
        found: list[float] = []
        for fn in all_fns:
            value = fn(values)
            if value is None:  # like arithmetic, a missing operand means no value, even next to a NaN
                return None
            found.append(value)
        if any(value != value for value in found):
            return math.nan
        return pick(found)

    return extremum


def _compare(compare: Callable[[float, float], bool], left: _Num, right: _Num) -> _CondFn:
    # Python float comparisons already follow IEEE 754: any comparison with NaN is False, except != (True).
    lfn, rfn = left.fn, right.fn
    if right.const is not None:
        # The usual shape "<expression> > 0.5": skip the call to the threshold's closure.
        c = right.const

        def compare_const(values: _Values) -> bool | None:
            a = lfn(values)
            return None if a is None else compare(a, c)

        return compare_const

    def comparison(values: _Values) -> bool | None:
        a = lfn(values)
        if a is None:
            return None
        b = rfn(values)
        if b is None:
            return None
        return compare(a, b)

    return comparison


def _not(fn: _CondFn) -> _CondFn:
    def negation(values: _Values) -> bool | None:
        a = fn(values)
        return None if a is None else not a

    return negation


def _all(fns: tuple[_CondFn, ...]) -> _CondFn:
    # Kleene logic: one false operand decides, whatever is missing; stop at the first.
    def conjunction(values: _Values) -> bool | None:
        unknown = False
        for fn in fns:
            result = fn(values)
            if result is False:
                return False
            if result is None:
                unknown = True
        return None if unknown else True

    return conjunction


def _any(fns: tuple[_CondFn, ...]) -> _CondFn:
    # Kleene logic: one true operand decides, whatever is missing; stop at the first.
    def disjunction(values: _Values) -> bool | None:
        unknown = False
        for fn in fns:
            result = fn(values)
            if result is True:
                return True
            if result is None:
                unknown = True
        return None if unknown else False

    return disjunction


# --- ranges: interval arithmetic for Expr.cannot_hold ------------------------------------------------------------
# Each span function maps the keys' ranges to the node's range, or None when it cannot bound it. Bounds are
# computed with the same float operations as the values, and IEEE 754 rounding is monotone, so every value
# computed from keys within their ranges lies within the bounds computed.


def _finite(low: float, high: float) -> tuple[float, float] | None:
    return (low, high) if math.isfinite(low) and math.isfinite(high) else None


def _key_span(key: str) -> _SpanFn:
    return lambda spans: spans.get(key)


def _unary_span(inner: _SpanFn | None, map_bounds: Callable[[float, float], tuple[float, float]]) -> _SpanFn | None:
    if inner is None:
        return None

    def span(spans: Spans) -> tuple[float, float] | None:
        found = inner(spans)
        return None if found is None else map_bounds(*found)

    return span


def _abs_span(low: float, high: float) -> tuple[float, float]:
    if low >= 0:
        return low, high
    if high <= 0:
        return -high, -low
    return 0.0, max(-low, high)


def _extremum_span(smallest: bool, inners: list[_SpanFn | None]) -> _SpanFn | None:
    if any(inner is None for inner in inners):
        return None
    pick = min if smallest else max
    fns = [inner for inner in inners if inner is not None]

    def span(spans: Spans) -> tuple[float, float] | None:
        found = [fn(spans) for fn in fns]
        if any(bounds is None for bounds in found):
            return None
        lows, highs = zip(*found, strict=True)
        return pick(lows), pick(highs)

    return span


def _arithmetic_span(op: Callable[[float, float], float], left: _SpanFn | None,
                     right: _SpanFn | None) -> _SpanFn | None:
    if left is None or right is None:
        return None

    def span(spans: Spans) -> tuple[float, float] | None:
        a, b = left(spans), right(spans)
        if a is None or b is None:
            return None
        if op is operator.add:
            return _finite(a[0] + b[0], a[1] + b[1])
        if op is operator.sub:
            return _finite(a[0] - b[1], a[1] - b[0])
        if op is _divide and b[0] <= 0.0 <= b[1]:
            return None  # the divisor may be 0 (or change sign): unbounded
        corners = [op(x, y) for x in a for y in b]
        return _finite(min(corners), max(corners))

    return span


def _comparison_quiet(op: str, left: _SpanFn | None, right: _SpanFn | None) -> _QuietFn | None:
    if left is None or right is None or op == "!=":
        return None

    def quiet(spans: Spans) -> bool:
        a, b = left(spans), right(spans)
        if a is None or b is None:
            return False
        if op == ">":
            return a[1] <= b[0]
        if op == ">=":
            return a[1] < b[0]
        if op == "<":
            return a[0] >= b[1]
        if op == "<=":
            return a[0] > b[1]
        return a[1] < b[0] or a[0] > b[1]  # "=="

    return quiet


def _logical_quiet(word: str, operands: list[_QuietFn | None]) -> _QuietFn | None:
    """``and`` cannot hold when one operand cannot; ``or`` when none can."""
    known = [fn for fn in operands if fn is not None]
    if word == "and":
        return (lambda spans: any(fn(spans) for fn in known)) if known else None
    if len(known) < len(operands):
        return None
    return lambda spans: all(fn(spans) for fn in known)
