"""Campaign and gamification conditions: a small, safe, typed expression language.

CRM managers write conditions in YAML, for example::

    state.loss_streak >= 5 and state.favourite_category == "slots"
    state.lifecycle in ("at_risk", "lapsed") and attributes.vip == true

A condition is parsed with :mod:`ast`, checked against a whitelist and a
:class:`~operators.expressions_types.Schema` once, at load, and compiled into nested
Python closures: evaluating it is a handful of function calls, never an interpreter loop,
and never ``eval``/``exec``. Anything the whitelist does not name (calls to other
functions, subscripts, lambdas, comprehensions, private or dunder attributes, walrus,
f-strings...) is an :class:`ExpressionError` at load, as is a type error: an unknown field
(with a "did you mean"), a string compared with a number, arithmetic on strings, a
condition that is not true/false, an impossible enum value (``== "sltos"``).

Syntax: literals (``5``, ``1.5`` read as an exact ``Decimal``, ``"text"``,
``true``/``false``/``null`` and ``True``/``False``/``None``), the schema's roots and their
fields (``state.deposit_count``), comparisons (chains too: ``1 <= x < 10``), ``and``,
``or``, ``not``, ``in``/``not in`` a literal list or tuple, ``is null``/``is not null``,
``+ - * /``, parentheses, and the functions ``days(n)``/``hours(n)``/``minutes(n)``
(seconds, as an int), ``abs``, ``min``, ``max``, ``lower(s)``, ``len(s)`` and
``coalesce(a, b, ...)``.

Semantics, chosen so a rule never crashes the job on a new or odd player:

* ``None`` (a missing value: no favourite category before the first bet, a missing
  custom attribute) never raises. An ordering comparison with ``None`` is false, both
  ways (``x < 5`` and ``x >= 5`` are both false when ``x`` is null). ``==`` and ``!=``
  follow Python: ``null == null`` is true, ``null != "slots"`` is true. Arithmetic and
  functions on ``None`` give ``None`` (``coalesce`` picks the first non-null argument).
  In a true/false position (``and``, ``or``, ``not``, the condition itself) ``None``
  counts as false: only ``true`` is true.
* ``/`` is exact decimal division and always yields a ``Decimal``; dividing by zero
  yields ``None`` (``state.deposit_total / state.deposit_count > 50`` is false for a
  player with no deposits); dividing by a literal zero is a load-time error.
* Dynamic values (``ANY``: custom attributes) are typed at run time: a value of the wrong
  kind behaves like ``None`` (a float attribute is read as an exact ``Decimal`` in
  arithmetic; comparing a string attribute with a number is false, not an error).

Speed: a chain of plain fields is read by one C-level ``attrgetter``
(``ctx.state.loss_streak``), a comparison with a constant is one closure, ``and``/``or``
short-circuit, ``x in ("a", "b")`` is a lookup in a frozenset built at load, and constant
sub-expressions are folded at load (``days(7)`` is 604800). ``bench/expressions.py``
measures it.

The pieces: ``expressions_types`` (schemas, types, errors), ``expressions_compiler``
(parsing, whitelist, type rules), ``expressions_ops`` (the closures and the functions),
``expressions_roots`` (what Pitboss rules read: the player state, the trigger's event,
custom attributes, the event time).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from operators.expressions_compiler import Compiler
from operators.expressions_ops import Fn, strict_bool
from operators.expressions_types import (
    ANY,
    ExpressionError,
    Field,
    Kind,
    Schema,
    Type,
    describe,
    type_of,
)

__all__ = [
    "ANY",
    "Condition",
    "EvalContext",
    "Expression",
    "ExpressionError",
    "Field",
    "Schema",
    "compile_condition",
    "compile_expression",
]


@dataclass(slots=True)
class EvalContext:
    """What a condition reads: one attribute per root of the default schema.

    Reuse one instance and reassign its fields per event to avoid an allocation. A schema
    with extra roots needs a context object with those attributes too (any object does).
    """

    event: Any = None
    state: Any = None
    attributes: Any = None
    now: int = 0


class Condition:
    """A compiled true/false condition: ``condition(ctx) -> bool``.

    ``evaluate`` is the compiled closure itself (the same result without one Python call
    layer, for the hottest loops); ``references`` names the roots and fields it reads.
    """

    __slots__ = ("evaluate", "references", "source")

    def __init__(self, source: str, evaluate: Callable[[Any], bool], references: frozenset[str]):
        self.source = source
        self.evaluate = evaluate
        self.references = references

    def __call__(self, ctx: Any) -> bool:
        """Evaluate the condition against ``ctx``."""
        return self.evaluate(ctx)

    def __repr__(self) -> str:
        return f"Condition({self.source!r})"


class Expression:
    """A compiled expression: ``expression(ctx)`` returns its value, of static ``type``."""

    __slots__ = ("evaluate", "references", "source", "type")

    def __init__(self, source: str, evaluate: Fn, references: frozenset[str], kind: Type):
        self.source = source
        self.evaluate = evaluate
        self.references = references
        self.type = kind

    def __call__(self, ctx: Any) -> Any:
        """Evaluate the expression against ``ctx``."""
        return self.evaluate(ctx)

    def __repr__(self) -> str:
        return f"Expression({self.source!r}: {describe(self.type)})"


def compile_condition(source: str, schema: Schema) -> Condition:
    """Parse and type-check a condition once; raise :class:`ExpressionError` if invalid.

    >>> from types import SimpleNamespace
    >>> rule = compile_condition("state.loss_streak >= 5", Schema({"state": {"loss_streak": int}}))
    >>> rule(EvalContext(state=SimpleNamespace(loss_streak=6)))
    True
    """
    compiler = Compiler(source, schema)
    tree = compiler.parse()
    node = compiler.visit(tree)
    compiler.require(tree, node, Kind.BOOL, "a condition")
    references = frozenset(compiler.references)
    if node.const:
        value = node.value is True
        return Condition(source, lambda ctx: value, references)
    return Condition(source, strict_bool(node), references)


def compile_expression(source: str, schema: Schema, returns: Any = None) -> Expression:
    """Parse and type-check an expression once; its value must fit ``returns`` if given.

    ``returns`` is a Python annotation: ``Decimal`` (an int fits too), ``int | None``...
    """
    compiler = Compiler(source, schema)
    tree = compiler.parse()
    node = compiler.visit(tree)
    compiler.require_value(tree, node)
    if returns is not None and not node.type.dynamic:
        expected = type_of(returns).kinds
        if Kind.DECIMAL in expected:
            expected |= Kind.INT
        if node.type.kinds & ~expected:
            compiler.fail(
                f"expected {describe(expected)}, but this expression is {describe(node.type)}",
                tree,
                hint="coalesce(x, 0) replaces a null" if Kind.NONE in node.type.kinds else None,
            )
    return Expression(source, node.fn, frozenset(compiler.references), node.type)
