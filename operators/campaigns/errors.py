"""Configuration errors that say where and what: ``file: path: problem``.

Pydantic reports a location as a tuple (``('campaigns', 3, 'trigger', 'event', 'when')``,
where ``'event'`` is the union member it tried); :func:`pydantic_problems` turns each
error into one line with the path as written in YAML (``campaigns[3].trigger.when``) and
adds a "did you mean" for misspelt field names and enum values.
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from operators.expressions_types import suggest

__all__ = ["ConfigError", "Problem", "format_path", "pydantic_problems"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the configuration."""

    file: str
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.path}" if self.path else self.file
        return f"{where}: {self.message}"


class ConfigError(ValueError):
    """The campaign configuration is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        lines = "\n".join(f"  {problem}" for problem in self.problems)
        super().__init__(
            f"{count} problem{'s' if count != 1 else ''} in the configuration:\n{lines}"
        )

    def lines(self) -> list[str]:
        """Each problem as ``file: path: what is wrong``."""
        return [str(problem) for problem in self.problems]


def format_path(parts: Iterable[str | int]) -> str:
    """``('campaigns', 3, 'trigger')`` -> ``campaigns[3].trigger``."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def _clean(data: Any, loc: tuple[str | int, ...]) -> list[str | int]:
    """The location as written in the YAML: drop the union tags pydantic inserts."""
    path: list[str | int] = []
    node = data
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, list) and isinstance(part, int):
            path.append(part)
            node = node[part] if 0 <= part < len(node) else None
        elif isinstance(node, dict) and part in node:
            path.append(part)
            node = node[part]
        elif last or not isinstance(node, dict):
            path.append(part)
            node = None
        # else: a union member's tag (or a validator's name), not a key of the YAML
    return path


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold (through lists, dicts, unions)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _models_in(get_args(annotation)[0])
    if origin in (list, tuple, set, frozenset):
        return [m for arg in get_args(annotation) for m in _models_in(arg)]
    if origin is dict:
        args = get_args(annotation)
        return _models_in(args[1]) if len(args) == 2 else []
    if origin is Union or origin is types.UnionType:
        return [m for arg in get_args(annotation) for m in _models_in(arg)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def _pick(models: list[type[BaseModel]], node: Any) -> type[BaseModel] | None:
    """Of a union's models, the one a YAML mapping means (by its discriminator)."""
    if len(models) == 1:
        return models[0]
    if not isinstance(node, dict):
        return None
    for model in models:
        for name, info in model.model_fields.items():
            tags = get_args(info.annotation) if get_origin(info.annotation) is not None else ()
            if tags and node.get(name) in tags and all(isinstance(t, str) for t in tags):
                return model
    keys = set(node)
    return max(models, key=lambda m: len(keys & set(m.model_fields)))


def _model_at(
    root: type[BaseModel], data: Any, path: Sequence[str | int]
) -> type[BaseModel] | None:
    """The model of the mapping at ``path`` in ``data`` (validated as ``root``)."""
    model: type[BaseModel] | None = root
    node = data
    candidates: list[type[BaseModel]] = [root]
    for part in path:
        if isinstance(part, int) or (isinstance(node, dict) and model is None):
            container: Any = node
            node = container[part] if isinstance(node, list | dict) and _has(node, part) else None
            model = _pick(candidates, node)
            continue
        if model is None or part not in model.model_fields:
            if isinstance(node, dict) and part in node:  # a dict[str, Model] key
                node = node[part]
                model = _pick(candidates, node)
                continue
            return None
        candidates = _models_in(model.model_fields[part].annotation)
        node = node.get(part) if isinstance(node, dict) else None
        model = _pick(candidates, node) if not isinstance(node, list) else None
        if isinstance(node, dict) and model is not None:
            continue
        if not isinstance(node, list | dict):
            model = _pick(candidates, node)
    return model


def _has(node: Any, part: str | int) -> bool:
    if isinstance(node, list):
        return isinstance(part, int) and 0 <= part < len(node)
    return part in node


def _message(error: Any, root: type[BaseModel], data: Any, path: list[str | int]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        name = str(path[-1])
        model = _model_at(root, data, path[:-1])
        fields = list(model.model_fields) if model is not None else []
        hint = suggest(name, fields)
        text = f"unknown field {name!r}"
        if hint is not None:
            return f"{text}; did you mean {hint!r}?"
        return f"{text}; the fields are {', '.join(fields)}" if fields else text
    if kind == "missing":
        return f"missing required field {str(path[-1])!r}"
    if kind == "union_tag_invalid":
        tag, expected = str(ctx.get("tag")), str(ctx.get("expected_tags", ""))
        options = [t.strip().strip("'") for t in expected.split(",")]
        hint = suggest(tag, options)
        text = f"{tag!r} is not one of {', '.join(options)}"
        return f"{text}; did you mean {hint!r}?" if hint else text
    if kind == "union_tag_not_found":
        return "missing required field; it says what kind this is"
    if kind in ("literal_error", "enum"):
        expected = str(ctx.get("expected", ""))
        options = [t.strip().strip("'") for t in expected.replace(" or ", ",").split(",")]
        given = error.get("input")
        hint = suggest(str(given), options) if isinstance(given, str) else None
        text = f"{given!r} is not one of {', '.join(o for o in options if o)}"
        return f"{text}; did you mean {hint!r}?" if hint else text
    message = str(error["msg"])
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    given = error.get("input")
    if kind != "value_error" and not isinstance(given, dict | list):
        message += f" (got {given!r})"
    return message


def pydantic_problems(
    exc: ValidationError,
    *,
    file: str,
    root: type[BaseModel],
    data: Any,
    prefix: Sequence[str | int] = (),
) -> list[Problem]:
    """One problem per pydantic error, with the YAML path and a "did you mean"."""
    problems: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for error in exc.errors(include_url=False):
        path = _clean(data, tuple(error["loc"]))
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            path.append(str((error.get("ctx") or {}).get("discriminator", "")).strip("'"))
        message = _message(error, root, data, path)
        where = format_path([*prefix, *path])
        if (where, message) not in seen:  # a union may report one problem per member
            seen.add((where, message))
            problems.append(Problem(file, where, message))
    return problems
