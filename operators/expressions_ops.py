"""The run-time pieces of compiled expressions: nodes, operators and the functions.

A compiled sub-expression is a :class:`Node`: its static type and a closure ``fn(ctx)``.
Builders here combine child nodes into a parent node, fold constants, and pick the
cheapest closure the types allow (no ``None`` check when nothing can be null, no
``try`` when nothing can have the wrong kind). The compiler (``expressions_compiler``)
does the parsing and the type rules of the syntax; this module also holds the whitelisted
functions, whose type rules are here beside their implementations.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, NoReturn, Protocol

from operators.expressions_types import BOOL, DECIMAL, INT, NONE, NUMBER, STR, Kind, Type

Fn = Callable[[Any], Any]


@dataclass(slots=True)
class Node:
    """A compiled sub-expression: static type and closure (and value when constant)."""

    type: Type
    fn: Fn
    const: bool = False
    value: Any = None
    path: str | None = None  # "state.loss_streak" when one attrgetter reads it from ctx
    # A scaled Decimal field (money): the closure reading the raw int, and the scale.
    unscaled: tuple[Fn, int] | None = None


def scaled(raw: Node, scale: int) -> Node:
    """A ``Decimal`` read as an integer count of ``10**-scale`` units (``Field.scale``)."""
    f = raw.fn
    exponent = -scale
    fn: Fn
    if raw.type.nullable:

        def fn(ctx: Any) -> Any:
            units = f(ctx)
            return None if units is None else Decimal(units).scaleb(exponent)

    else:
        fn = lambda ctx: Decimal(f(ctx)).scaleb(exponent)  # noqa: E731
    return Node(raw.type, fn, unscaled=(f, scale))


def constant(value: Any) -> Node:
    """A constant node."""
    if value is None:
        kind = NONE
    elif isinstance(value, bool):
        kind = BOOL
    elif isinstance(value, int):
        kind = INT
    elif isinstance(value, Decimal):
        kind = DECIMAL
    else:
        kind = STR
    return Node(kind, lambda ctx: value, True, value)


def strict_bool(node: Node) -> Callable[[Any], bool]:
    """The node's closure as a strict true/false: ``None`` and non-booleans are false."""
    fn = node.fn
    if node.type.kinds == Kind.BOOL and not node.type.dynamic:
        return fn
    return lambda ctx: fn(ctx) is True


class Checker(Protocol):
    """What function builders need from the compiler: its type rules and errors."""

    def fail(self, message: str, node: ast.AST | None, *, hint: str | None = None) -> NoReturn:
        """Raise an error pointing at ``node``."""

    def require(self, tree: ast.expr, node: Node, allowed: Kind, what: str) -> None:
        """The node's non-null kinds must be among ``allowed``."""


# -- arithmetic ----------------------------------------------------------------------


def _as_number(value: Any) -> Any:
    kind = type(value)
    if kind is int or kind is Decimal:
        return value
    if kind is float:  # a custom attribute: read exactly as written
        return Decimal(repr(value))
    return None


def divide(x: Any, y: Any) -> Any:
    """Exact decimal division; ``None`` when dividing by zero."""
    if not y:
        return None
    return (x if type(x) is Decimal else Decimal(x)) / y


def _dynamic(impl: Callable[[Any, Any], Any], x: Any, y: Any) -> Any:
    x, y = _as_number(x), _as_number(y)
    if x is None or y is None:
        return None
    try:
        return impl(x, y)
    except ArithmeticError:
        return None


ARITHMETIC: Final[dict[type[ast.operator], tuple[str, Callable[[Any, Any], Any]]]] = {
    ast.Add: ("+", operator.add),
    ast.Sub: ("-", operator.sub),
    ast.Mult: ("*", operator.mul),
    ast.Div: ("/", divide),
}


def arithmetic(op: type[ast.operator], left: Node, right: Node) -> Node:
    """``left op right`` for number nodes (the caller checked the kinds)."""
    impl = ARITHMETIC[op][1]
    lk, rk = left.type, right.type
    dynamic = lk.dynamic or rk.dynamic
    nullable = lk.nullable or rk.nullable or (op is ast.Div and not right.const)
    if op is ast.Div:
        kinds = Kind.DECIMAL
    elif dynamic:
        kinds = NUMBER
    elif lk.kinds & NUMBER == Kind.INT and rk.kinds & NUMBER == Kind.INT:
        kinds = Kind.INT
    else:
        kinds = (lk.kinds | rk.kinds) & NUMBER
    result = Type(kinds | Kind.NONE if nullable or dynamic else kinds)
    lf, rf = left.fn, right.fn
    fn: Fn
    if dynamic:
        fn = lambda ctx: _dynamic(impl, lf(ctx), rf(ctx))  # noqa: E731
    elif lk.nullable or rk.nullable:

        def fn(ctx: Any) -> Any:
            x = lf(ctx)
            if x is None:
                return None
            y = rf(ctx)
            return None if y is None else impl(x, y)

    elif right.const:
        value = right.value
        fn = lambda ctx: impl(lf(ctx), value)  # noqa: E731
    else:
        fn = lambda ctx: impl(lf(ctx), rf(ctx))  # noqa: E731
    return fold(Node(result, fn), (left, right))


def fold(node: Node, children: Sequence[Node]) -> Node:
    """The node as a constant when all its children are (everything here is pure)."""
    if children and all(child.const for child in children):
        return constant(node.fn(None))
    return node


# -- functions -----------------------------------------------------------------------


def apply(impl: Callable[..., Any], args: Sequence[Node], result: Type, guard: bool) -> Node:
    """``impl(*values)``, ``None`` if any value is; ``guard``: a wrong kind gives ``None``."""
    guard = guard or any(arg.type.dynamic for arg in args)
    nullable = guard or any(arg.type.nullable for arg in args)
    kind = result.or_none() if nullable else result
    fn: Fn
    if len(args) == 1:
        f = args[0].fn
        if guard:

            def fn(ctx: Any) -> Any:
                value = f(ctx)
                if value is None:
                    return None
                try:
                    return impl(value)
                except (TypeError, ValueError, ArithmeticError):
                    return None

        elif nullable:

            def fn(ctx: Any) -> Any:
                value = f(ctx)
                return None if value is None else impl(value)

        else:
            fn = lambda ctx: impl(f(ctx))  # noqa: E731
    else:
        fns = tuple(arg.fn for arg in args)

        def fn(ctx: Any) -> Any:
            values = [g(ctx) for g in fns]
            if any(value is None for value in values):
                return None
            if not guard:
                return impl(*values)
            try:
                return impl(*values)
            except (TypeError, ValueError, ArithmeticError):
                return None

    return fold(Node(kind, fn), args)


def _seconds(unit: int) -> Callable[[Checker, ast.Call, list[Node]], Node]:
    def build(checker: Checker, call: ast.Call, args: list[Node]) -> Node:
        checker.require(call.args[0], args[0], NUMBER, f"{_name(call)}()")
        if args[0].type.dynamic:
            return apply(lambda n: int(_as_number(n) * unit), args, INT, guard=True)
        return apply(lambda n: int(n * unit), args, INT, guard=False)

    return build


def _abs(checker: Checker, call: ast.Call, args: list[Node]) -> Node:
    checker.require(call.args[0], args[0], NUMBER, "abs()")
    return apply(abs, args, Type(args[0].type.kinds & NUMBER or NUMBER), guard=False)


def _lower(checker: Checker, call: ast.Call, args: list[Node]) -> Node:
    checker.require(call.args[0], args[0], Kind.STR, "lower()")
    values = args[0].type.values
    result = Type(Kind.STR, values=None if values is None else frozenset(map(str.lower, values)))
    return apply(str.lower, args, result, guard=False)


def _len(checker: Checker, call: ast.Call, args: list[Node]) -> Node:
    checker.require(call.args[0], args[0], Kind.STR, "len()")
    return apply(len, args, INT, guard=False)


def _extreme(impl: Callable[..., Any]) -> Callable[[Checker, ast.Call, list[Node]], Node]:
    def build(checker: Checker, call: ast.Call, args: list[Node]) -> Node:
        name = f"{_name(call)}()"
        families = Kind(0)
        for tree, arg in zip(call.args, args, strict=True):
            checker.require(tree, arg, NUMBER | Kind.STR, name)
            families |= Kind(0) if arg.type.dynamic else arg.type.family
        if families not in (NUMBER, Kind.STR, Kind(0)):
            checker.fail(f"{name} needs all numbers or all strings", call)
        kinds = Kind(0)
        for arg in args:
            kinds |= arg.type.kinds & (NUMBER | Kind.STR)
        return apply(impl, args, Type(kinds or NUMBER | Kind.STR), guard=False)

    return build


def _coalesce(checker: Checker, call: ast.Call, args: list[Node]) -> Node:
    scalars = NUMBER | Kind.STR | Kind.BOOL
    common = scalars
    for tree, arg in zip(call.args, args, strict=True):
        checker.require(tree, arg, scalars | Kind.NONE, "coalesce()")
        if not arg.type.dynamic and arg.type.family:
            common &= arg.type.family
            if not common:
                checker.fail("coalesce() needs arguments of one type", tree)
    kept: list[Node] = []
    for arg in args:
        if arg.const and arg.value is None:
            continue
        kept.append(arg)
        if not arg.type.nullable:  # later arguments are never reached
            break
    if not kept:
        return constant(None)
    if len(kept) == 1:
        return kept[0]
    kinds, values, dynamic = Kind(0), set[str](), False
    for arg in kept:
        kinds |= arg.type.kinds & ~Kind.NONE
        dynamic = dynamic or arg.type.dynamic
        if arg.type.values is not None:
            values |= arg.type.values
    if kept[-1].type.nullable:
        kinds |= Kind.NONE
    exact = all(arg.type.values is not None for arg in kept if Kind.STR in arg.type.kinds)
    result = Type(kinds, dynamic, frozenset(values) if exact and kinds & Kind.STR else None)
    fns = tuple(arg.fn for arg in kept)

    def fn(ctx: Any) -> Any:
        for f in fns:
            value = f(ctx)
            if value is not None:
                return value
        return None

    return Node(result, fn)


def _name(call: ast.Call) -> str:
    return call.func.id if isinstance(call.func, ast.Name) else "?"


Builder = Callable[[Checker, ast.Call, list[Node]], Node]
# name -> (fewest arguments, most arguments or None for any, builder)
FUNCTIONS: Final[dict[str, tuple[int, int | None, Builder]]] = {
    "abs": (1, 1, _abs),
    "coalesce": (2, None, _coalesce),
    "days": (1, 1, _seconds(86_400)),
    "hours": (1, 1, _seconds(3_600)),
    "len": (1, 1, _len),
    "lower": (1, 1, _lower),
    "max": (2, None, _extreme(max)),
    "min": (2, None, _extreme(min)),
    "minutes": (1, 1, _seconds(60)),
}


# -- true/false ----------------------------------------------------------------------


def connective(parts: Sequence[Node], is_and: bool) -> Node:
    """``a and b and ...`` (or ``or``), short-circuit, with constant operands folded."""
    fns: list[Callable[[Any], bool]] = []
    for part in parts:
        if not part.const:
            fns.append(strict_bool(part))
        elif (part.value is True) != is_and:  # false in an and, true in an or
            return constant(not is_and)
    if not fns:
        return constant(is_and)
    if len(fns) == 1:
        return Node(BOOL, fns[0])
    if len(fns) == 2:
        a, b = fns
        return Node(BOOL, (lambda c: a(c) and b(c)) if is_and else (lambda c: a(c) or b(c)))
    steps = tuple(fns)

    def all_or_any(ctx: Any) -> bool:
        for fn in steps:
            if fn(ctx) is not is_and:
                return not is_and
        return is_and

    return Node(BOOL, all_or_any)


def negation(operand: Node) -> Node:
    """``not x``: true unless ``x`` is true."""
    if operand.const:
        return constant(operand.value is not True)
    fn = strict_bool(operand)
    return Node(BOOL, lambda ctx: not fn(ctx))


# -- comparisons ---------------------------------------------------------------------

COMPARE: Final[dict[type[ast.cmpop], tuple[str, Callable[[Any, Any], Any]]]] = {
    ast.Eq: ("==", operator.eq),
    ast.NotEq: ("!=", operator.ne),
    ast.Lt: ("<", operator.lt),
    ast.LtE: ("<=", operator.le),
    ast.Gt: (">", operator.gt),
    ast.GtE: (">=", operator.ge),
}
_EQUALITY: Final = (ast.Eq, ast.NotEq)
_FLIPPED: Final[dict[type[ast.cmpop], type[ast.cmpop]]] = {
    ast.Eq: ast.Eq,
    ast.NotEq: ast.NotEq,
    ast.Lt: ast.Gt,
    ast.LtE: ast.GtE,
    ast.Gt: ast.Lt,
    ast.GtE: ast.LtE,
}
# The hot path: values that cannot be null or of the wrong kind, compared in one closure.
_AGAINST_CONSTANT: Final[dict[type[ast.cmpop], Callable[[Fn, Any], Fn]]] = {
    ast.Eq: lambda f, c: lambda ctx: f(ctx) == c,
    ast.NotEq: lambda f, c: lambda ctx: f(ctx) != c,
    ast.Lt: lambda f, c: lambda ctx: f(ctx) < c,
    ast.LtE: lambda f, c: lambda ctx: f(ctx) <= c,
    ast.Gt: lambda f, c: lambda ctx: f(ctx) > c,
    ast.GtE: lambda f, c: lambda ctx: f(ctx) >= c,
}
_AGAINST_VALUE: Final[dict[type[ast.cmpop], Callable[[Fn, Fn], Fn]]] = {
    ast.Eq: lambda f, g: lambda ctx: f(ctx) == g(ctx),
    ast.NotEq: lambda f, g: lambda ctx: f(ctx) != g(ctx),
    ast.Lt: lambda f, g: lambda ctx: f(ctx) < g(ctx),
    ast.LtE: lambda f, g: lambda ctx: f(ctx) <= g(ctx),
    ast.Gt: lambda f, g: lambda ctx: f(ctx) > g(ctx),
    ast.GtE: lambda f, g: lambda ctx: f(ctx) >= g(ctx),
}


def _predicate(op: type[ast.cmpop], nullable: bool, guard: bool) -> Callable[[Any, Any], bool]:
    """``(x, y) -> bool``; an ordering is false with ``None`` (guarded: with wrong kinds)."""
    impl = COMPARE[op][1]
    if op in _EQUALITY or not (nullable or guard):
        return impl
    if not guard:
        return lambda x, y: x is not None and y is not None and impl(x, y)

    def holds(x: Any, y: Any) -> bool:
        if x is None or y is None:
            return False
        try:
            return bool(impl(x, y))
        except TypeError:
            return False

    return holds


def comparison(op: type[ast.cmpop], left: Node, right: Node, guard: bool) -> Node:
    """``left op right`` as the cheapest closure the types allow."""
    if left.const and not right.const:
        op, left, right = _FLIPPED[op], right, left
    nullable = left.type.nullable or right.type.nullable
    lf, rf = left.fn, right.fn
    if left.unscaled is not None and right.const and type(right.value) in (int, Decimal):
        # Money against a constant: compare the raw integer units, rescale the constant.
        lf, scale = left.unscaled
        rescaled = Decimal(right.value).scaleb(scale)
        exact = rescaled == rescaled.to_integral_value()
        right = constant(int(rescaled) if exact else rescaled)
    if op in _EQUALITY or not (guard or nullable):
        if right.const:
            return fold(Node(BOOL, _AGAINST_CONSTANT[op](lf, right.value)), [left])
        return Node(BOOL, _AGAINST_VALUE[op](lf, rf))
    holds = _predicate(op, nullable, guard)
    if right.const:
        value = right.value
        return Node(BOOL, lambda ctx: holds(lf(ctx), value))
    return Node(BOOL, lambda ctx: holds(lf(ctx), rf(ctx)))


def chain(ops: Sequence[type[ast.cmpop]], nodes: Sequence[Node], guards: Sequence[bool]) -> Node:
    """``a < b <= c``: each operand evaluated once, stopping at the first false step."""
    first = nodes[0].fn
    steps = tuple(
        (
            _predicate(op, nodes[i].type.nullable or nodes[i + 1].type.nullable, guards[i]),
            nodes[i + 1].fn,
        )
        for i, op in enumerate(ops)
    )

    def holds(ctx: Any) -> bool:
        x = first(ctx)
        for step, right in steps:
            y = right(ctx)
            if not step(x, y):
                return False
            x = y
        return True

    return fold(Node(BOOL, holds), nodes)


def membership(left: Node, items: Sequence[Node], negate: bool) -> Node:
    """``x in (a, b, ...)``: one frozenset lookup when the items are constants."""
    f = left.fn
    fn: Callable[[Any], bool]
    if all(item.const for item in items):
        values = frozenset(item.value for item in items)
        if left.type.dynamic:  # an unhashable value (a list) is in no set

            def fn(ctx: Any) -> bool:
                try:
                    return (f(ctx) in values) is not negate
                except TypeError:
                    return negate

        elif negate:
            fn = lambda ctx: f(ctx) not in values  # noqa: E731
        else:
            fn = lambda ctx: f(ctx) in values  # noqa: E731
    else:
        fns = tuple(item.fn for item in items)

        def fn(ctx: Any) -> bool:
            value = f(ctx)
            return any(value == g(ctx) for g in fns) is not negate

    return fold(Node(BOOL, fn), [left, *items])


def is_null(operand: Node, negate: bool) -> Node:
    """``x is null`` / ``x is not null``."""
    f = operand.fn
    fn = (lambda ctx: f(ctx) is not None) if negate else (lambda ctx: f(ctx) is None)
    return fold(Node(BOOL, fn), [operand])
