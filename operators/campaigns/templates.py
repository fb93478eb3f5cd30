"""Message templates: ``config/templates/<channel>/<template_id>.<locale>.<ext>``.

* email (``.md``): a front matter with the ``subject``, then a Markdown body, sent as
  HTML and as text;
* sms (``.txt``): the text, any Unicode;
* push (``.yaml``): ``title``, ``body`` and optionally ``deep_link``;
* in_app (``.yaml``): ``title``, ``body`` and optionally ``deep_link``.

Every text is a Jinja2 template compiled once, at load, in a sandbox with
``StrictUndefined``: a template reads ``player``, ``reward``, ``campaign`` (and
``journey`` in journeys), and naming anything else is an error when the loader renders
each template against a sample context. A gamification message's template reads
``player``, ``reward`` and ``gamification`` (:mod:`operators.gamification.messages`).

An email body is converted from Markdown to HTML once, at load, with its Jinja tags
shielded: the result is an HTML template rendered with autoescaping. Sending an email is
then two template renders and no Markdown parse, and a value (a custom attribute, say)
is HTML-escaped where it lands: it can neither inject markup nor Markdown.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import jinja2
import yaml
from jinja2 import nodes
from jinja2.sandbox import SandboxedEnvironment
from markdown_it import MarkdownIt

from operators.campaigns.errors import Problem
from operators.campaigns.yaml12 import read_yaml
from operators.expressions_types import suggest

__all__ = ["CHANNEL_FILES", "Template", "TemplateStore", "load_templates"]

CHANNEL_FILES: Final[Mapping[str, str]] = {
    "email": "md",
    "sms": "txt",
    "push": "yaml",
    "in_app": "yaml",
}
_PARTS: Final[Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    # channel: (required parts, optional parts)
    "email": (("subject", "body"), ()),
    "sms": (("text",), ()),
    "push": (("title", "body"), ("deep_link",)),
    "in_app": (("title", "body"), ("deep_link",)),
}
_NAME = re.compile(r"^(?P<id>[a-z][a-z0-9_]{0,63})\.(?P<locale>[a-z]{2})\.(?P<ext>[a-z]+)$")
_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_SHIELD = "jinjatag{}x"  # letters and digits only: Markdown leaves it alone
_SHIELDED = re.compile(r"jinjatag(\d+)x")
_STATEMENT_PARAGRAPH = re.compile(r"<p>((?:jinjatag\d+x\s*)+)</p>\n?")
_FRONT = re.compile(r"\A---[ \t]*\n(?P<head>.*?)\n---[ \t]*\n(?P<body>.*)\Z", re.DOTALL)


def _environment(*, html: bool) -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=html,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    # A message is a pure function of its context (replays render the same bytes):
    # no random text, no stateful helpers.
    for name in ("lipsum", "cycler", "joiner"):
        env.globals.pop(name, None)
    return env


_PLAIN: Final = _environment(html=False)
_HTML: Final = _environment(html=True)
_MARKDOWN: Final = MarkdownIt("commonmark", {"html": False, "linkify": False})


def markdown_to_html_template(source: str) -> str:
    """Markdown with Jinja tags -> an HTML template with the same tags, at load time.

    Each tag is replaced by a plain token before the Markdown conversion and put back
    after it; a paragraph holding only statements (``{% set %}``) is unwrapped.
    """
    tags: list[str] = []

    def shield(match: re.Match[str]) -> str:
        tags.append(match.group())
        return _SHIELD.format(len(tags) - 1)

    html = _MARKDOWN.render(_JINJA.sub(shield, source))

    def unwrap(match: re.Match[str]) -> str:
        inner = match.group(1)
        indexes = [int(i) for i in _SHIELDED.findall(inner)]
        if all(not tags[i].startswith("{{") for i in indexes):
            return inner.strip()
        return match.group()

    html = _STATEMENT_PARAGRAPH.sub(unwrap, html)
    return _SHIELDED.sub(lambda match: tags[int(match.group(1))], html)


_SEPARATOR: Final = "\x1e"  # joins a template's parts into one render
_ROOTS: Final = frozenset({"player", "reward", "campaign", "journey", "gamification"})
_CACHE_SIZE: Final = 4096  # rendered messages kept per template
Path_ = tuple[str, ...]


def _chain(node: nodes.Node) -> Path_ | None:
    """``reward.wagering.multiplier`` -> ("reward", "wagering", "multiplier"), if rooted."""
    names: list[str] = []
    while True:
        if isinstance(node, nodes.Getattr):
            names.append(node.attr)
            node = node.node
        elif (
            isinstance(node, nodes.Getitem)
            and isinstance(node.arg, nodes.Const)
            and isinstance(node.arg.value, str)
        ):
            names.append(node.arg.value)
            node = node.node
        else:
            break
    if isinstance(node, nodes.Name) and node.name in _ROOTS and names:
        return (node.name, *reversed(names))
    return None


TRUTH: Final = "?"
"""A path ``("?", root)``: the template reads only whether ``root`` is truthy."""


def read_paths(sources: list[str]) -> tuple[Path_, ...] | None:
    """Every context path the templates read (``player.currency``...), or ``None`` when a
    context root is used whole or reassigned, and the output cannot be keyed by paths.

    A root used only as a test (``{% if reward and reward.type == 'x' %}``, ``not
    reward``, ``a if reward else b``) is read as ``(TRUTH, root)``: only its truth
    matters there, and the starter pack's gamification messages test ``reward`` so.
    """
    found: set[Path_] = set()

    def visit(node: nodes.Node, test: bool = False) -> bool:
        chain = _chain(node)
        if chain is not None:
            found.add(chain)
            return True
        if isinstance(node, nodes.Name) and node.name in _ROOTS:
            if test and node.ctx == "load":
                found.add((TRUTH, node.name))
                return True
            return False  # used whole (or assigned to): no key can stand for it
        if isinstance(node, nodes.If):
            branches = [*node.body, *node.elif_, *node.else_]
            return visit(node.test, True) and all(visit(child) for child in branches)
        if isinstance(node, nodes.CondExpr):
            rest = [node.expr1] if node.expr2 is None else [node.expr1, node.expr2]
            return visit(node.test, True) and all(visit(child) for child in rest)
        if isinstance(node, nodes.Not):
            return visit(node.node, True)
        if isinstance(node, nodes.And | nodes.Or):  # a test only where the whole is one
            return visit(node.left, test) and visit(node.right, test)
        return all(visit(child) for child in node.iter_child_nodes())

    for source in sources:
        if not visit(_PLAIN.parse(source)):
            return None
    return tuple(sorted(found))


@dataclass(frozen=True, slots=True)
class Template:
    """One compiled template: a channel, an id, a locale and its parts.

    ``parts`` are the texts as written (an email's ``body`` is its Markdown, sent as the
    text part), ``html`` the email's HTML. ``combined`` renders every part at once (they
    are joined with a separator), which costs one Jinja context instead of one per part.
    """

    channel: str
    template_id: str
    locale: str
    file: str
    parts: Mapping[str, jinja2.Template]
    html: jinja2.Template | None = None
    combined: jinja2.Template | None = None
    paths: tuple[Path_, ...] | None = None
    cache: dict[tuple[Any, ...], tuple[dict[str, str], str | None]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def _key(self, context: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The values the template reads: its output is a function of them alone."""
        paths = self.paths
        if paths is None:
            return None
        getattr_ = _PLAIN.getattr
        key: list[Any] = []
        for path in paths:
            if path[0] == TRUTH:
                key.append(bool(context.get(path[1])))
                continue
            value = context.get(path[0])
            for name in path[1:]:
                if value is None:
                    return None
                value = getattr_(value, name)
            if isinstance(value, jinja2.Undefined):
                return None  # let the render raise the proper error
            key.append(value)
        try:
            hash(tuple(key))
        except TypeError:
            return None
        return tuple(key)

    def render(self, context: Mapping[str, Any]) -> tuple[dict[str, str], str | None]:
        """The rendered content for the payload, and the push/in-app deep link if any.

        Messages that read the same values render the same bytes: those are cached.
        """
        key = self._key(context)
        if key is not None:
            hit = self.cache.get(key)
            if hit is not None:
                return dict(hit[0]), hit[1]
        rendered, link = self._render(context)
        if key is not None:
            if len(self.cache) >= _CACHE_SIZE:
                self.cache.clear()
            self.cache[key] = (dict(rendered), link)
        return rendered, link

    def _values(self, context: Mapping[str, Any]) -> dict[str, str]:
        names = list(self.parts)
        if self.combined is not None:
            values = self.combined.render(context).split(_SEPARATOR)
            if len(values) == len(names):
                return dict(zip(names, values, strict=True))
        # A value held the separator itself: render part by part.
        return {name: template.render(context) for name, template in self.parts.items()}

    def _render(self, context: Mapping[str, Any]) -> tuple[dict[str, str], str | None]:
        values = self._values(context)
        if self.channel == "email":
            html = self.html.render(context) if self.html is not None else ""
            text = values["body"].strip() + "\n"
            subject = " ".join(values["subject"].split())
            return {"subject": subject, "text": text, "html": html}, None
        if self.channel == "sms":
            return {"text": values["text"].strip()}, None
        link = values.get("deep_link")
        rendered = {"title": values["title"].strip(), "body": values["body"].strip()}
        return rendered, (link.strip() if link is not None else None)


class TemplateStore:
    """Every template by (channel, id), then locale."""

    def __init__(
        self,
        templates: Mapping[tuple[str, str], Mapping[str, Template]],
        broken: Mapping[tuple[str, str], str] | None = None,
    ) -> None:
        self._templates = templates
        # (channel, id) of template files that did not compile -> the first problem found
        self.broken: Mapping[tuple[str, str], str] = broken or {}

    def ids(self, channel: str) -> list[str]:
        """The template ids of a channel."""
        return sorted(tid for ch, tid in self._templates if ch == channel)

    def locales(self, channel: str, template_id: str) -> Mapping[str, Template]:
        """The locales of one template (empty if it does not exist)."""
        return self._templates.get((channel, template_id), {})

    def all(self) -> list[Template]:
        """Every template, in a stable order."""
        return [
            template
            for key in sorted(self._templates)
            for _, template in sorted(self._templates[key].items())
        ]

    def pick(self, channel: str, template_id: str, locale: str | None, default: str) -> Template:
        """The template in the player's ``locale`` (``pt-BR`` -> ``pt``), else ``default``."""
        locales = self._templates[(channel, template_id)]
        if locale:
            found = locales.get(locale) or locales.get(locale[:2].lower())
            if found is not None:
                return found
        return locales[default]


def _parts(channel: str, text: str) -> tuple[dict[str, str], int]:
    """Split a template file into its parts, and the file line the email body starts on.

    Raises ``ValueError`` saying what is wrong.
    """
    if channel == "sms":
        return {"text": text}, 0
    body_line = 0
    if channel == "email":
        match = _FRONT.match(text)
        if match is None:
            raise ValueError(
                "an email template starts with a front matter: '---', 'subject: ...', '---', "
                "then the Markdown body"
            )
        head = read_yaml(match.group("head"))
        if not isinstance(head, dict):
            raise ValueError("the front matter must be a mapping with 'subject'")
        parts = {str(k): v for k, v in head.items()}
        parts["body"] = match.group("body")
        body_line = text[: match.start("body")].count("\n")
    else:
        data = read_yaml(text)
        if not isinstance(data, dict):
            raise ValueError("a push or in-app template is a mapping with 'title' and 'body'")
        parts = {str(k): v for k, v in data.items()}
    required, optional = _PARTS[channel]
    missing = [name for name in required if name not in parts]
    unknown = [name for name in parts if name not in required + optional]
    if missing:
        raise ValueError(f"missing {', '.join(map(repr, missing))}")
    if unknown:
        raise ValueError(
            f"unknown part(s) {', '.join(map(repr, unknown))}; "
            f"the parts are {', '.join(required + optional)}"
        )
    for name, value in parts.items():
        if not isinstance(value, str):
            raise ValueError(f"{name!r} must be text, got {type(value).__name__}")
    return parts, body_line


def load_templates(root: Path, label: Callable[[Path], str]) -> tuple[TemplateStore, list[Problem]]:
    """Compile every template under ``root``; problems name the file and the line."""
    found: dict[tuple[str, str], dict[str, Template]] = {}
    broken: dict[tuple[str, str], str] = {}
    problems: list[Problem] = []
    if not root.is_dir():
        return TemplateStore(found), problems
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        file = label(path)
        relative = path.relative_to(root)
        channel = relative.parts[0] if len(relative.parts) == 2 else ""
        if channel not in CHANNEL_FILES:
            problems.append(
                Problem(
                    file,
                    "",
                    "templates live in templates/<channel>/<id>.<locale>.<ext>, with channel "
                    f"one of {', '.join(CHANNEL_FILES)}",
                )
            )
            continue
        match = _NAME.match(path.name)
        ext = CHANNEL_FILES[channel]
        if match is None or match.group("ext") != ext:
            problems.append(
                Problem(
                    file,
                    "",
                    f"a {channel} template is named <id>.<locale>.{ext} "
                    f"(e.g. welcome.en.{ext}; id in lower case, locale two letters)",
                )
            )
            continue
        try:
            parts, body_line = _parts(channel, path.read_text(encoding="utf-8"))
        except (ValueError, yaml.YAMLError, UnicodeDecodeError) as exc:
            problems.append(Problem(file, "", str(exc).replace("\n", " ")))
            broken.setdefault((channel, match.group("id")), str(problems[-1]))
            continue
        compiled: dict[str, jinja2.Template] = {}
        html = None
        first = len(problems)
        for name, source in parts.items():
            try:
                compiled[name] = _PLAIN.from_string(source)
                if channel == "email" and name == "body":
                    html = _HTML.from_string(markdown_to_html_template(source))
            except jinja2.TemplateSyntaxError as exc:
                if channel == "sms" or (channel == "email" and name == "body"):
                    where = f"line {exc.lineno + body_line}"
                else:
                    where = f"{name}, line {exc.lineno}"
                problems.append(Problem(file, where, f"template syntax error: {exc.message}"))
        if not all(name in compiled for name in parts):
            broken.setdefault((channel, match.group("id")), str(problems[first]))
        else:
            combined = _PLAIN.from_string(_SEPARATOR.join(parts.values()))
            paths = read_paths(list(parts.values()))
            template = Template(
                channel, match.group("id"), match.group("locale"), file, compiled, html,
                combined, paths,
            )  # fmt: skip
            found.setdefault((channel, template.template_id), {})[template.locale] = template
    return TemplateStore(found, broken), problems


def _names(value: Any, depth: int = 2) -> set[str]:
    """The field names a template can read below ``value`` (for "did you mean")."""
    if depth == 0 or value is None:
        return set()
    if isinstance(value, Mapping):
        children = dict(value)
    else:
        children = {n: getattr(value, n, None) for n in dir(value) if not n.startswith("_")}
    found = set(children)
    for child in children.values():
        if isinstance(child, Mapping) or type(child).__module__.startswith("operators"):
            found |= _names(child, depth - 1)
    return found


_UNKNOWN = re.compile(r"has no attribute '(?P<name>[^']+)'|'(?P<root>[^']+)' is undefined")


def render_problem(template: Template, context: Mapping[str, Any]) -> str | None:
    """Render ``template`` against a sample ``context``; what went wrong, if anything."""
    try:
        template.render(context)
    except jinja2.UndefinedError as exc:
        message = str(exc.message)
        found = _UNKNOWN.search(message)
        if found is not None and message.startswith("'None' has no attribute"):
            return (
                f"{found.group('name')!r} is read from a value that is null here "
                "(a reward without wagering, say); test it first: {% if ... %}"
            )
        if found is not None:
            name = found.group("name") or found.group("root")
            candidates = _names(context, 3) if found.group("name") else set(context)
            hint = suggest(name, candidates)
            known = "" if found.group("name") else f"; the variables are {', '.join(context)}"
            return f"unknown variable {name!r}" + (f"; did you mean {hint!r}?" if hint else known)
        return f"unknown variable: {message}"
    except jinja2.TemplateError as exc:
        return f"template does not render: {exc}"
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
        return f"template does not render: {type(exc).__name__}: {exc}"
    return None
