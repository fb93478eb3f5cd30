"""YAML as configuration authors expect it: YAML 1.2 booleans.

PyYAML follows YAML 1.1, where ``on``, ``off``, ``yes`` and ``no`` are booleans: a
trigger's ``on: event`` would become ``True: event``. Here only ``true``/``false`` are.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

__all__ = ["read_yaml"]


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false, so ``on:``, ``yes`` and ``no`` stay strings."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def read_yaml(text: str) -> Any:
    """Parse YAML with 1.2 booleans (``on: event`` is the key "on", not True)."""
    return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: safe
