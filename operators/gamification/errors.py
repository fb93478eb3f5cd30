"""Errors of the gamification configuration: where (file, path in it), what, and a hint.

Every problem is one line, ``<file>: <path>: <what is wrong>``, for example::

    config/gamification/points.yaml: points.rules[0].wen: unknown field; did you mean 'when'?

:class:`GamificationConfigError` carries them all, so one run of ``check`` lists every
problem of every file rather than the first one.
"""

from __future__ import annotations

import re
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from operators.expressions_types import suggest


class GamificationConfigError(ValueError):
    """The gamification configuration is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in the gamification configuration"
        super().__init__(head + ":\n  " + "\n  ".join(self.problems))


def location(loc: Sequence[int | str]) -> str:
    """A pydantic location as a path: ``points.rules[0].when``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "(top level)"


def _unwrap(annotation: Any) -> Any:
    """The model or element type behind Annotated, Optional and list."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin is Union or origin is types.UnionType:
            members = [arg for arg in get_args(annotation) if arg is not type(None)]
            annotation = members[0] if len(members) == 1 else annotation
            if len(members) != 1:
                return annotation
        elif origin is list:
            annotation = get_args(annotation)[0]
        else:
            return annotation


def model_at(root: type[BaseModel], loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The model class found at ``loc`` below ``root`` (None if it is not a model)."""
    current: Any = root
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        info = current.model_fields.get(part)
        if info is None:
            return None
        current = _unwrap(info.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


_QUOTED = re.compile(r"'([^']*)'")


def describe_validation_error(
    file: Path | str, root: type[BaseModel], exc: ValidationError
) -> list[str]:
    """One line per pydantic error, with a "did you mean" where one helps."""
    problems = []
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        kind = error["type"]
        message = str(error["msg"]).removeprefix("Value error, ")
        if kind == "extra_forbidden" and loc:
            model = model_at(root, loc[:-1])
            fields = sorted(model.model_fields) if model is not None else []
            hint = suggest(str(loc[-1]), fields)
            message = "unknown field" + (
                f"; did you mean {hint!r}?" if hint else f"; the fields are {', '.join(fields)}"
            )
        elif kind in ("literal_error", "enum") and isinstance(error.get("input"), str):
            expected = _QUOTED.findall(str((error.get("ctx") or {}).get("expected", "")))
            hint = suggest(error["input"], expected)
            message = f"{error['input']!r} is not one of {', '.join(expected)}" + (
                f"; did you mean {hint!r}?" if hint else ""
            )
        problems.append(f"{file}: {location(loc)}: {message}")
    return problems
