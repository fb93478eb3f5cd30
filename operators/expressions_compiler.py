"""The compiler of the condition language: parsing, the whitelist and the type rules.

``operators.expressions`` is the public face; this module turns a source string into a
:class:`~operators.expressions_ops.Node` (a static type and a closure), raising
:class:`~operators.expressions_types.ExpressionError` for anything outside the language.
The closures themselves are built by ``operators.expressions_ops``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from decimal import Decimal
from operator import attrgetter
from typing import Any, Final, NoReturn

from operators.expressions_ops import (
    ARITHMETIC,
    COMPARE,
    FUNCTIONS,
    Fn,
    Node,
    arithmetic,
    chain,
    comparison,
    connective,
    constant,
    is_null,
    membership,
    negation,
    scaled,
)
from operators.expressions_types import (
    NUMBER,
    ExpressionError,
    Kind,
    Schema,
    Slot,
    describe,
    suggest,
)

_PARSE_MODE: Final = "eval"  # ast.parse's single-expression mode: nothing is executed
_NAMED_CONSTANTS: Final = {"true": True, "false": False, "null": None}
_FORBIDDEN: Final[dict[type[ast.AST], str]] = {
    ast.Lambda: "lambda expressions are not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "comprehensions are not allowed",
    ast.Subscript: "subscripts (x[...]) are not allowed; read a field as x.name",
    ast.NamedExpr: "assignment expressions (:=) are not allowed",
    ast.JoinedStr: "f-strings are not allowed",
    ast.IfExp: "conditional expressions (x if c else y) are not allowed; use coalesce()",
    ast.Starred: "star arguments are not allowed",
    ast.Dict: "dict literals are not allowed",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
    ast.Slice: "slices are not allowed",
    ast.Tuple: "a list of values is only allowed after 'in'",
    ast.List: "a list of values is only allowed after 'in'",
    ast.Set: "a list of values is only allowed after 'in'",
}
_OPERATOR_SYMBOLS: Final = {
    ast.Mod: "%",
    ast.FloorDiv: "//",
    ast.Pow: "**",
    ast.MatMult: "@",
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.LShift: "<<",
    ast.RShift: ">>",
}
_SYNTAX_HINTS: Final = (
    ("&&", "use 'and' instead of '&&'"),
    ("||", "use 'or' instead of '||'"),
    ("===", "use '==' instead of '==='"),
)
_FUNCTION_LIST: Final = ", ".join(sorted(FUNCTIONS))
_EXPONENT_LIMIT: Final = 100  # a decimal literal beyond 1e100 is a typo, and could overflow


def _getattr_of(owner: Fn, name: str) -> Fn:
    get = attrgetter(name)
    return lambda ctx: get(owner(ctx))


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        parent = _dotted(node.value)
        return None if parent is None else f"{parent}.{node.attr}"
    return None


class Compiler:
    """One compilation: the source, the schema, and what the expression reads."""

    def __init__(self, source: str, schema: Schema) -> None:
        self.source = source
        self.schema = schema
        # A YAML block may span lines: read it as one line, column for column.
        flat = source.replace("\r", " ").replace("\n", " ")
        self.lead = len(flat) - len(flat.lstrip())
        self.text = flat.strip()
        self.encoded = None if self.text.isascii() else self.text.encode()
        self.references: set[str] = set()

    # -- errors ----------------------------------------------------------------------

    def fail(
        self,
        message: str,
        node: ast.AST | None,
        *,
        byte_offset: int | None = None,
        token: str | None = None,
        suggestion: str | None = None,
        hint: str | None = None,
    ) -> NoReturn:
        """Raise an :class:`ExpressionError` pointing at ``node`` (or ``byte_offset``)."""
        if byte_offset is None:
            byte_offset = getattr(node, "col_offset", 0)
        raise ExpressionError(
            message,
            source=self.source,
            position=self.column(byte_offset),
            token=self.segment(node) if token is None else token,
            suggestion=suggestion,
            hint=hint,
        )

    def column(self, byte_offset: int) -> int:
        """The 1-based column in ``source`` of a byte offset into the parsed text."""
        chars = byte_offset
        if self.encoded is not None:
            chars = len(self.encoded[:byte_offset].decode(errors="ignore"))
        return self.lead + chars + 1

    def segment(self, node: ast.AST | None) -> str:
        """The source text of a node."""
        return (ast.get_source_segment(self.text, node) if node is not None else None) or ""

    # -- entry -----------------------------------------------------------------------

    def parse(self) -> ast.expr:
        """The expression's syntax tree, or an error pointing at the syntax error."""
        if not self.text:
            raise ExpressionError("empty expression", source=self.source, position=1, token="")
        try:
            return ast.parse(self.text, mode=_PARSE_MODE).body
        except SyntaxError as exc:
            offset = exc.offset if exc.offset and exc.offset > 0 else len(self.text) + 1
            offset = min(offset, len(self.text) + 1)
            found = re.match(r"\S*", self.text[offset - 1 :])
            hint = next((h for bad, h in _SYNTAX_HINTS if bad in self.text), None)
            if hint is None and re.search(r"!(?!=)", self.text):
                hint = "use 'not' instead of '!'"
            raise ExpressionError(
                f"syntax error: {exc.msg}",
                source=self.source,
                position=self.lead + offset,
                token=found.group() if found else "",
                hint=hint,
            ) from exc
        except (ValueError, RecursionError, MemoryError) as exc:
            raise ExpressionError(
                f"cannot parse: {exc}", source=self.source, position=1, token=""
            ) from exc

    def visit(self, node: ast.expr) -> Node:
        """Compile one sub-expression."""
        visitor = _VISITORS.get(type(node))
        if visitor is None:
            message = _FORBIDDEN.get(type(node), f"{type(node).__name__} is not allowed")
            self.fail(message, node)
        try:
            return visitor(self, node)
        except RecursionError:
            self.fail("expression is nested too deeply", node)
        except ArithmeticError as exc:  # folding a constant overflowed
            self.fail(f"cannot compute this constant ({type(exc).__name__})", node)

    # -- type rules ------------------------------------------------------------------

    def require_value(self, tree: ast.expr, node: Node) -> None:
        """A record (``state``) is not a value: point at its fields."""
        record = node.type.record
        if record is not None and not node.type.dynamic:
            text = self.segment(tree)
            example = next(iter(sorted(record.fields)), "field")
            self.fail(
                f"{text!r} is a record, not a value",
                tree,
                hint=f"use one of its fields, e.g. {text}.{example}",
            )

    def require(self, tree: ast.expr, node: Node, allowed: Kind, what: str) -> None:
        """The node's non-null kinds must be among ``allowed`` (dynamic passes)."""
        self.require_value(tree, node)
        kind = node.type
        kinds = kind.kinds & ~Kind.NONE
        if not kind.dynamic and (not kinds or kinds & ~allowed):
            wanted = "true or false" if allowed == Kind.BOOL else describe(allowed)
            if allowed == NUMBER:
                wanted = "numbers"
            self.fail(
                f"{what} needs {wanted}, but {self.segment(tree)!r} is {describe(kind)}", tree
            )

    # -- names and fields ------------------------------------------------------------

    def visit_constant(self, node: ast.Constant) -> Node:
        value = node.value
        if value is None or isinstance(value, bool | int | str):
            return constant(value)
        if isinstance(value, float):  # exactly as written, never through a float
            number = Decimal(self.segment(node).replace("_", ""))
            if not -_EXPONENT_LIMIT <= number.adjusted() <= _EXPONENT_LIMIT:
                self.fail("number out of range", node)
            return constant(number)
        self.fail(f"{type(value).__name__} literals are not supported", node)

    def visit_name(self, node: ast.Name) -> Node:
        name = node.id
        if name in _NAMED_CONSTANTS:
            return constant(_NAMED_CONSTANTS[name])
        slot = self.schema.roots.get(name)
        if slot is None:
            if name in FUNCTIONS:
                self.fail(f"{name!r} is a function; call it as {name}(...)", node)
            roots = sorted(self.schema.roots)
            self.fail(
                f"unknown name {name!r}",
                node,
                suggestion=suggest(name, [*roots, *_NAMED_CONSTANTS]),
                hint=f"the names are {', '.join(roots)}",
            )
        self.references.add(name)
        return self.read(None, name, slot)

    def visit_attribute(self, node: ast.Attribute) -> Node:
        name = node.attr
        at = (node.end_col_offset or 0) - len(name.encode())
        if name.startswith("_"):
            self.fail(
                f"attribute {name!r} is not allowed: names starting with '_' are private",
                node,
                byte_offset=at,
                token=name,
            )
        parent = self.visit(node.value)
        owner = self.segment(node.value)
        dotted = _dotted(node)
        if dotted is not None:
            self.references.discard(owner)
            self.references.add(dotted)
        kind = parent.type
        if kind.dynamic:
            return self.read_dynamic(parent, name)
        record = kind.record
        if record is None:
            self.fail(
                f"{owner!r} is {describe(kind)}; it has no field {name!r}",
                node,
                byte_offset=at,
                token=name,
            )
        slot = record.fields.get(name)
        if slot is None:
            lacking = record.missing.get(name)
            if lacking:
                self.fail(
                    f"field {name!r} is not on every event type of {owner}: "
                    f"{', '.join(lacking)} {'has' if len(lacking) == 1 else 'have'} none",
                    node,
                    byte_offset=at,
                    token=name,
                )
            where = f"{owner} ({record.label})" if record.label else owner
            self.fail(
                f"unknown field {name!r} on {where}",
                node,
                byte_offset=at,
                token=name,
                suggestion=suggest(name, record.fields),
                hint=f"the fields are {', '.join(sorted(record.fields))}",
            )
        return self.read(parent, name, slot)

    def read(self, parent: Node | None, name: str, slot: Slot) -> Node:
        """Read a root (``parent`` None: from the context) or a field of a record."""
        node = self.read_raw(parent, name, slot)
        return scaled(node, slot.scale) if slot.scale else node

    def read_raw(self, parent: Node | None, name: str, slot: Slot) -> Node:
        """Read a field's value as stored (before ``Field.scale``)."""
        get, convert, name = slot.get, slot.convert, slot.attr or name
        nullable_owner = parent is not None and parent.type.nullable
        kind = slot.type.or_none() if nullable_owner else slot.type
        plain = get is None and convert is None and not nullable_owner
        if plain and (parent is None or parent.path is not None):
            # One C-level attrgetter reads the whole chain: ctx.state.loss_streak.
            path = name if parent is None else f"{parent.path}.{name}"
            return Node(kind, attrgetter(path), path=path)
        owner: Fn = parent.fn if parent is not None else (lambda ctx: ctx)
        read: Fn
        if get is not None and nullable_owner:
            compute = get

            def read(ctx: Any) -> Any:
                value = owner(ctx)
                return None if value is None else compute(value, ctx)

        elif get is not None:
            compute = get
            read = lambda ctx: compute(owner(ctx), ctx)  # noqa: E731
        elif nullable_owner:

            def read(ctx: Any) -> Any:
                value = owner(ctx)
                return None if value is None else getattr(value, name)

        else:
            read = attrgetter(name) if parent is None else _getattr_of(owner, name)
        if convert is None:
            return Node(kind, read)
        to_value = convert
        return Node(kind, lambda ctx: to_value(read(ctx)))

    def read_dynamic(self, parent: Node, name: str) -> Node:
        """A field of a dynamic value: a dict key or an attribute, ``None`` if missing."""
        owner = parent.fn

        def read(ctx: Any) -> Any:
            value = owner(ctx)
            if value is None:
                return None
            if type(value) is dict:
                return value.get(name)
            return getattr(value, name, None)

        return Node(parent.type, read)

    # -- operators -------------------------------------------------------------------

    def visit_call(self, node: ast.Call) -> Node:
        func = node.func
        if isinstance(func, ast.Attribute):
            self.fail(
                f"method calls are not allowed ({self.segment(func)}(...))",
                node,
                hint=f"the functions are {_FUNCTION_LIST}",
            )
        if not isinstance(func, ast.Name):
            self.visit(func)  # a forbidden construct says what it is
            self.fail("only the named functions can be called", node)
        spec = FUNCTIONS.get(func.id)
        if spec is None:
            self.fail(
                f"unknown function {func.id!r}",
                func,
                suggestion=suggest(func.id, FUNCTIONS),
                hint=f"the functions are {_FUNCTION_LIST}",
            )
        fewest, most, build = spec
        if node.keywords:
            self.fail(f"{func.id}() takes no keyword arguments", node.keywords[0])
        args = [self.visit(arg) for arg in node.args]
        if len(args) < fewest or (most is not None and len(args) > most):
            wanted = f"{fewest}" if fewest == most else f"at least {fewest}"
            self.fail(f"{func.id}() takes {wanted} argument(s), got {len(args)}", node)
        return build(self, node, args)

    def visit_binop(self, node: ast.BinOp) -> Node:
        op = type(node.op)
        if op not in ARITHMETIC:
            symbol = _OPERATOR_SYMBOLS.get(op, op.__name__)
            offset = len(self.text.encode()[: node.left.end_col_offset or 0])
            at = self.text.encode().find(symbol.encode(), offset)
            self.fail(
                f"operator {symbol!r} is not supported; use + - * /",
                node,
                byte_offset=at if at >= 0 else None,
                token=symbol,
            )
        symbol = ARITHMETIC[op][0]
        left, right = self.visit(node.left), self.visit(node.right)
        self.require(node.left, left, NUMBER, f"{symbol!r}")
        self.require(node.right, right, NUMBER, f"{symbol!r}")
        if op is ast.Div and right.const and right.value == 0:
            self.fail("division by zero", node.right)
        return arithmetic(op, left, right)

    def visit_unaryop(self, node: ast.UnaryOp) -> Node:
        operand = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            self.require(node.operand, operand, Kind.BOOL, "'not'")
            return negation(operand)
        if isinstance(node.op, ast.Invert):
            self.fail("operator '~' is not supported", node)
        self.require(node.operand, operand, NUMBER, "unary minus")
        if isinstance(node.op, ast.UAdd):
            return operand
        return arithmetic(ast.Sub, constant(0), operand)

    def visit_boolop(self, node: ast.BoolOp) -> Node:
        is_and = isinstance(node.op, ast.And)
        parts = [self.visit(tree) for tree in node.values]
        for tree, part in zip(node.values, parts, strict=True):
            self.require(tree, part, Kind.BOOL, "'and'" if is_and else "'or'")
        return connective(parts, is_and)

    # -- comparisons -----------------------------------------------------------------

    def visit_compare(self, node: ast.Compare) -> Node:
        ops = node.ops
        if len(ops) == 1 and isinstance(ops[0], ast.In | ast.NotIn):
            return self.visit_membership(node, isinstance(ops[0], ast.NotIn))
        if len(ops) == 1 and isinstance(ops[0], ast.Is | ast.IsNot):
            return self.visit_identity(node, isinstance(ops[0], ast.IsNot))
        if any(not isinstance(op, tuple(COMPARE)) for op in ops):
            self.fail("'in' and 'is' cannot be chained; join comparisons with 'and'", node)
        trees = [node.left, *node.comparators]
        nodes = [self.visit(tree) for tree in trees]
        guards = [
            self.check_comparison(type(op), trees[i], nodes[i], trees[i + 1], nodes[i + 1])
            for i, op in enumerate(ops)
        ]
        if len(ops) == 1:
            return comparison(type(ops[0]), nodes[0], nodes[1], guards[0])
        return chain([type(op) for op in ops], nodes, guards)

    def check_comparison(
        self, op: type[ast.cmpop], lt: ast.expr, left: Node, rt: ast.expr, right: Node
    ) -> bool:
        """Type-check ``left op right``; whether a wrong kind must be caught at run time."""
        symbol = COMPARE[op][0]
        self.require_value(lt, left)
        self.require_value(rt, right)
        dynamic = left.type.dynamic or right.type.dynamic
        fl, fr = left.type.family, right.type.family
        at = lt
        if op in (ast.Eq, ast.NotEq):
            self.check_values(lt, left, rt, right)
            self.check_values(rt, right, lt, left)
            if not dynamic and fl and fr and not fl & fr:
                self.fail(
                    f"cannot compare {describe(left.type)} with {describe(right.type)} "
                    f"using {symbol!r}",
                    at,
                    token=self.segment(lt),
                )
            return False
        for tree, side in ((lt, left), (rt, right)):
            if side.const and side.value is None:
                self.fail(f"null cannot be ordered with {symbol!r}; use '== null'", tree)
        if dynamic:
            return True
        if not fl & fr & (NUMBER | Kind.STR):
            self.fail(
                f"cannot compare {describe(left.type)} with {describe(right.type)} "
                f"using {symbol!r}",
                at,
                token=self.segment(lt),
            )
        return fl != fr or fl not in (NUMBER, Kind.STR)

    def check_values(self, tree: ast.expr, node: Node, ct: ast.expr, other: Node) -> None:
        """A string constant compared with an enumerated field must be a possible value."""
        values = node.type.values
        if values is None or not other.const or not isinstance(other.value, str):
            return
        if other.value not in values:
            self.fail(
                f"{other.value!r} is not a possible value of {self.segment(tree)}",
                ct,
                suggestion=suggest(other.value, values),
                hint=f"the values are {', '.join(sorted(values))}",
            )

    def visit_membership(self, node: ast.Compare, negate: bool) -> Node:
        """``x in (a, b, ...)``: a frozenset lookup when the items are constants."""
        lt, collection = node.left, node.comparators[0]
        left = self.visit(lt)
        if not isinstance(collection, ast.Tuple | ast.List | ast.Set):
            self.fail(
                '\'in\' needs a literal list of values on its right, e.g. x in ("a", "b")',
                collection,
            )
        items = [self.visit(tree) for tree in collection.elts]
        for tree, item in zip(collection.elts, items, strict=True):
            self.check_comparison(ast.Eq, lt, left, tree, item)
        return membership(left, items, negate)

    def visit_identity(self, node: ast.Compare, negate: bool) -> Node:
        """``x is null`` / ``x is not null``: the only use of ``is``."""
        left, right = self.visit(node.left), self.visit(node.comparators[0])
        tree = node.left
        if left.const and left.value is None:
            left, right, tree = right, left, node.comparators[0]
        if not (right.const and right.value is None):
            self.fail("'is' only compares with null; use '==' to compare values", node)
        self.require_value(tree, left)
        return is_null(left, negate)


_VISITORS: Final[dict[type[ast.AST], Callable[[Compiler, Any], Node]]] = {
    ast.Constant: Compiler.visit_constant,
    ast.Name: Compiler.visit_name,
    ast.Attribute: Compiler.visit_attribute,
    ast.Call: Compiler.visit_call,
    ast.BinOp: Compiler.visit_binop,
    ast.UnaryOp: Compiler.visit_unaryop,
    ast.BoolOp: Compiler.visit_boolop,
    ast.Compare: Compiler.visit_compare,
}
