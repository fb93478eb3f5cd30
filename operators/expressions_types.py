"""Types, schemas and errors of the condition language (compiled by ``operators.expressions``).

A :class:`Schema` tells the compiler which *roots* a condition may name (``event``,
``state``, ``attributes``, ``now``...) and, for each, the fields it has and their types.
A root or field is declared with

* a Python type: ``int``, ``Decimal``, ``str``, ``bool``, ``X | None``, ``Literal["a", "b"]``,
  a ``StrEnum`` (a string whose possible values are known, so ``== "sltos"`` is caught at
  load), ``datetime`` (read as integer epoch seconds) or ``date`` (read as an ISO string);
* a mapping of field names to declarations: a record with known fields;
* a pydantic model class, or a tuple of them (the event types a trigger fires on): a record
  with the models' fields; with several models only the fields common to all of them;
* :data:`ANY`: a dynamic value (custom attributes), any field name is allowed, typed at
  run time, a missing field reads as ``None``;
* :class:`Field`: a type plus how to read it: a getter from the owner and the context
  (windows that depend on ``now``), a scale (money kept as integer ten-thousandths), or
  another attribute's name (``self_excluded`` reads ``is_self_excluded``).

``float`` is refused on purpose: amounts are ``Decimal`` and mixing the two fails at run time.
"""

from __future__ import annotations

import datetime as dt
import difflib
import enum
import functools
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin

import pydantic
from pydantic import BaseModel

__all__ = [
    "ANY",
    "DYNAMIC",
    "ExpressionError",
    "Field",
    "Kind",
    "Record",
    "Schema",
    "Slot",
    "Type",
    "describe",
    "suggest",
    "type_of",
]

# Words with a fixed meaning in every expression: they cannot name a root.
LITERAL_NAMES: Final = frozenset({"true", "false", "null", "True", "False", "None"})


class ExpressionError(ValueError):
    """A condition or expression that does not compile, with where and why.

    ``position`` is the 1-based column of ``token`` in ``source`` (a multi-line source
    counts as one line). The config loader prefixes the file and the YAML path.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str,
        position: int,
        token: str,
        suggestion: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.source = source
        self.position = position
        self.token = token
        self.suggestion = suggestion
        self.hint = hint
        text = f"{message} at column {position}"
        if suggestion is not None:
            text += f"; did you mean {suggestion!r}?"
        elif hint:
            text += f"; {hint}"
        super().__init__(text)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments: tell pickle how to rebuild it (errors cross processes).
        details = {
            "source": self.source,
            "position": self.position,
            "token": self.token,
            "suggestion": self.suggestion,
            "hint": self.hint,
        }
        return (_rebuild_error, (self.message, details))

    def pointer(self) -> str:
        """The source with a caret under the offending column (for terminal output)."""
        return f"{self.source}\n{' ' * (self.position - 1)}^"


def _rebuild_error(message: str, details: dict[str, Any]) -> ExpressionError:
    return ExpressionError(message, **details)


def suggest(word: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate to a misspelt ``word`` (case-insensitive), if one is close."""
    by_lower = {c.lower(): c for c in sorted(candidates)}
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[close[0]] if close else None


class Kind(enum.Flag):
    """The run-time kinds a value of a type may have."""

    NONE = enum.auto()
    BOOL = enum.auto()
    INT = enum.auto()
    DECIMAL = enum.auto()
    STR = enum.auto()
    RECORD = enum.auto()


NUMBER: Final = Kind.INT | Kind.DECIMAL
_ALL: Final = Kind.NONE | Kind.BOOL | NUMBER | Kind.STR | Kind.RECORD


@dataclass(frozen=True, slots=True, eq=False)
class Type:
    """A static type: the kinds a value may have, and what else is known about it."""

    kinds: Kind
    dynamic: bool = False  # only known at run time (ANY)
    values: frozenset[str] | None = None  # the only possible strings (enum, Literal)
    record: Record | None = None

    @property
    def nullable(self) -> bool:
        """Whether the value may be ``None`` at run time."""
        return self.dynamic or Kind.NONE in self.kinds

    @property
    def family(self) -> Kind:
        """The non-null kinds, with ``int`` and ``Decimal`` counted as one family."""
        kinds = self.kinds & ~Kind.NONE
        return kinds | NUMBER if kinds & NUMBER else kinds

    def or_none(self) -> Type:
        """This type, nullable."""
        return Type(self.kinds | Kind.NONE, self.dynamic, self.values, self.record)


DYNAMIC: Final = Type(_ALL, dynamic=True)
BOOL: Final = Type(Kind.BOOL)
INT: Final = Type(Kind.INT)
DECIMAL: Final = Type(Kind.DECIMAL)
STR: Final = Type(Kind.STR)
NONE: Final = Type(Kind.NONE)

_KIND_NAMES: Final = (
    (Kind.BOOL, "boolean"),
    (Kind.INT, "int"),
    (Kind.DECIMAL, "decimal"),
    (Kind.STR, "string"),
    (Kind.RECORD, "record"),
    (Kind.NONE, "null"),
)


def describe(value: Type | Kind) -> str:
    """A type in words, for error messages: ``"int or null"``, ``"number"``."""
    if isinstance(value, Type):
        if value.dynamic:
            return "any value"
        value = value.kinds
    names = [name for kind, name in _KIND_NAMES if kind in value]
    if NUMBER in value:
        names = ["number" if n == "int" else n for n in names if n != "decimal"]
    return " or ".join(names) or "nothing"


@dataclass(frozen=True, slots=True, eq=False)
class Slot:
    """A resolved root or field: its type and how to read it."""

    type: Type
    get: Callable[[Any, Any], Any] | None = None  # computed: (owner, ctx) -> value
    convert: Callable[[Any], Any] | None = None  # applied to the value read
    scale: int = 0  # the value read is an int count of 10**-scale units (Field.scale)
    attr: str | None = None  # the attribute read, when not the field's own name


@dataclass(frozen=True, slots=True, eq=False)
class Record:
    """A value with known fields (the player state, an event, a nested model)."""

    label: str  # the event type(s) of a model record, "" for a declared mapping
    fields: Mapping[str, Slot]
    # Fields of an event union that only some of its types have: name -> types lacking it.
    missing: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Field:
    """A declared field: its type and, for a computed field, a getter.

    ``get(owner, ctx)`` receives the object the field belongs to (the player state) and the
    evaluation context (for ``ctx.now``); without it the field is ``getattr(owner, name)``.

    ``scale`` declares a ``Decimal`` field stored as an integer count of ``10**-scale``
    units (money in ten-thousandths: ``scale=4``): the value read is ``raw / 10**scale``,
    and a comparison with a constant compares the raw integer with the constant rescaled
    once at load, exactly, without building a ``Decimal`` per evaluation.
    """

    type: Any
    get: Callable[[Any, Any], Any] | None = None
    scale: int = 0
    attr: str | None = None  # read this attribute instead (``self_excluded`` <- ``is_...``)


class _Any:
    __slots__ = ()

    def __repr__(self) -> str:
        return "ANY"


ANY: Final = _Any()
"""A dynamic root or field: any field name, typed at run time, a missing one is ``None``."""


class Schema:
    """The roots an expression may name, with their fields and types.

    >>> schema = Schema({"state": {"loss_streak": int}, "attributes": ANY, "now": int})
    >>> sorted(schema.roots)
    ['attributes', 'now', 'state']
    """

    __slots__ = ("roots",)

    def __init__(self, roots: Mapping[str, Any]) -> None:
        resolved: dict[str, Slot] = {}
        for name, spec in roots.items():
            if not name.isidentifier() or name.startswith("_") or name in LITERAL_NAMES:
                raise ValueError(f"Schema: {name!r} cannot name a root")
            resolved[name] = _slot(name, spec)
        self.roots: Mapping[str, Slot] = types.MappingProxyType(resolved)


def type_of(annotation: Any) -> Type:
    """The static type of a Python annotation (``Decimal``, ``int | None``...)."""
    return _resolve("type", annotation)[0]


def _timestamp(value: Any) -> int | None:
    return None if value is None else int(value.timestamp())


def _isodate(value: Any) -> str | None:
    return None if value is None else str(value.isoformat())


def _slot(where: str, spec: Any) -> Slot:
    if isinstance(spec, Field):
        kind, convert = _resolve(where, spec.type)
        if spec.scale and (kind.kinds & ~Kind.NONE != Kind.DECIMAL or convert is not None):
            raise TypeError(f"{where}: only a Decimal field can have a scale")
        if spec.attr is not None and (spec.get is not None or not spec.attr.isidentifier()):
            raise TypeError(f"{where}: attr names an attribute to read, without a getter")
        return Slot(kind, spec.get, convert, spec.scale, spec.attr)
    kind, convert = _resolve(where, spec)
    return Slot(kind, None, convert)


def _resolve(where: str, spec: Any) -> tuple[Type, Callable[[Any], Any] | None]:
    """The static type of a declaration, and the conversion applied when it is read."""
    origin = get_origin(spec)
    if spec is ANY or spec is Any or spec is object:
        return DYNAMIC, None
    if isinstance(spec, Mapping):
        for name in spec:
            if not name.isidentifier() or name.startswith("_"):
                raise ValueError(f"{where}: {name!r} cannot name a field")
        fields = {name: _slot(f"{where}.{name}", sub) for name, sub in spec.items()}
        return Type(Kind.RECORD, record=Record("", fields)), None
    if isinstance(spec, tuple | list):
        return Type(Kind.RECORD, record=_model_union(where, tuple(spec))), None
    if origin is Annotated:
        return _resolve(where, get_args(spec)[0])
    if origin is Union or origin is types.UnionType:
        return _union(where, [_resolve(where, member) for member in get_args(spec)])
    if origin is Literal:
        return _literal(where, get_args(spec)), None
    if origin in (dict, list, tuple, set, frozenset) or origin is Mapping:
        return DYNAMIC, None
    simple = _SIMPLE.get(spec)
    if simple is not None:
        return simple
    if isinstance(spec, type):
        if issubclass(spec, enum.Enum) and issubclass(spec, str):
            return Type(Kind.STR, values=frozenset(m.value for m in spec)), None
        if issubclass(spec, BaseModel):
            return Type(Kind.RECORD, record=_model_record(spec)), None
    if spec is float:
        raise TypeError(f"{where}: float is not supported; declare it Decimal (exact) or int")
    raise TypeError(f"{where}: cannot use {spec!r} in an expression schema")


_SIMPLE: Final[dict[Any, tuple[Type, Callable[[Any], Any] | None]]] = {
    None: (NONE, None),
    type(None): (NONE, None),
    bool: (BOOL, None),
    int: (INT, None),
    Decimal: (DECIMAL, None),
    str: (STR, None),
    dict: (DYNAMIC, None),
    list: (DYNAMIC, None),
    dt.datetime: (INT, _timestamp),
    pydantic.AwareDatetime: (INT, _timestamp),
    pydantic.NaiveDatetime: (INT, _timestamp),
    pydantic.PastDatetime: (INT, _timestamp),
    pydantic.FutureDatetime: (INT, _timestamp),
    dt.date: (STR, _isodate),
    pydantic.PastDate: (STR, _isodate),
    pydantic.FutureDate: (STR, _isodate),
}


def _literal(where: str, values: tuple[Any, ...]) -> Type:
    kinds = Kind(0)
    for value in values:
        if value is None:
            kinds |= Kind.NONE
        elif isinstance(value, bool):
            kinds |= Kind.BOOL
        elif isinstance(value, int):
            kinds |= Kind.INT
        elif isinstance(value, str):
            kinds |= Kind.STR
        else:
            raise TypeError(f"{where}: unsupported literal {value!r}")
    strings = frozenset(v for v in values if isinstance(v, str))
    return Type(kinds, values=strings if kinds & Kind.STR else None)


def _union(
    where: str, members: list[tuple[Type, Callable[[Any], Any] | None]]
) -> tuple[Type, Callable[[Any], Any] | None]:
    kinds = Kind(0)
    values: set[str] | None = set()
    records = {id(t.record): t.record for t, _ in members if t.record is not None}
    converts = {convert for _, convert in members if convert is not None}
    for member, _ in members:
        kinds |= member.kinds
        if values is not None and Kind.STR in member.kinds:
            values = None if member.values is None else values | member.values
    if len(records) > 1:
        raise TypeError(f"{where}: a union of several records is not supported")
    others = kinds & ~Kind.NONE
    if converts and (len(converts) > 1 or len({t.kinds for t, _ in members} - {Kind.NONE}) > 1):
        raise TypeError(f"{where}: a date or datetime can only be combined with None")
    return Type(
        others | (kinds & Kind.NONE),
        dynamic=any(t.dynamic for t, _ in members),
        values=frozenset(values) if values is not None and kinds & Kind.STR else None,
        record=next(iter(records.values()), None),
    ), next(iter(converts), None)


def _model_label(model: type[BaseModel]) -> str:
    type_field = model.model_fields.get("type")
    if type_field is not None and get_origin(type_field.annotation) is Literal:
        return str(get_args(type_field.annotation)[0])
    return model.__name__


@functools.cache
def _model_record(model: type[BaseModel]) -> Record:
    name = _model_label(model)
    fields = {
        field_name: _slot(f"{name}.{field_name}", info.annotation)
        for field_name, info in model.model_fields.items()
    }
    return Record(name, fields)


def _model_union(where: str, models: tuple[Any, ...]) -> Record:
    """The fields an event of any of ``models`` is sure to have."""
    if not models or not all(isinstance(m, type) and issubclass(m, BaseModel) for m in models):
        raise TypeError(f"{where}: a tuple declares a union of pydantic models, got {models!r}")
    if len(models) == 1:
        return _model_record(models[0])
    labels = [_model_label(m) for m in models]
    per_model = [_model_record(m).fields for m in models]
    common: dict[str, Slot] = {}
    missing: dict[str, tuple[str, ...]] = {}
    for fields in per_model:
        for name in fields:
            if name in common or name in missing:
                continue
            lacking = tuple(
                lbl for lbl, fs in zip(labels, per_model, strict=True) if name not in fs
            )
            if lacking:
                missing[name] = lacking
                continue
            slots = [fs[name] for fs in per_model]
            kind, convert = _union(f"{where}.{name}", [(slot.type, slot.convert) for slot in slots])
            common[name] = Slot(kind, None, convert)
    return Record(", ".join(labels), common, missing)
