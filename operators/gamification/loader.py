"""Load ``config/gamification/*.yaml`` into a :class:`~operators.gamification.program.Program`.

Three passes, each collecting every problem before giving up: YAML syntax, the pydantic
models (:mod:`operators.gamification.config`), then cross-checks and the compilation of
conditions and units (:mod:`operators.gamification.compile`). Files are read in name
order; the program's version is a digest of their names and bytes, stamped on every
intent so the action log says which configuration decided it.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import yaml
from pydantic import ValidationError

from operators.campaigns.templates import load_templates
from operators.gamification.compile import Compiler
from operators.gamification.config import GamificationFile
from operators.gamification.errors import GamificationConfigError, describe_validation_error
from operators.gamification.messages import check_messages
from operators.gamification.program import Program
from operators.gamification.rules import GamificationRules


def config_files(path: Path) -> list[Path]:
    """The YAML files of a configuration directory (or the one file given)."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise GamificationConfigError([f"{path}: no such file or directory"])
    return sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def parse_files(files: list[Path]) -> tuple[list[tuple[Path, GamificationFile]], str]:
    """Each file's validated model, and the configuration version; raises on any problem."""
    problems: list[str] = []
    parsed: list[tuple[Path, GamificationFile]] = []
    digest = hashlib.blake2b(digest_size=6)
    for file in files:
        raw = file.read_bytes()
        digest.update(file.name.encode() + b"\0" + raw + b"\0")
        try:
            data = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
            problems.append(f"{file}: {where}: not valid YAML: {getattr(exc, 'problem', exc)}")
            continue
        if data is None:
            data = {}
        if not isinstance(data, dict):
            problems.append(
                f"{file}: (top level): expected a mapping of sections "
                f"({', '.join(GamificationFile.model_fields)}), got {type(data).__name__}"
            )
            continue
        try:
            parsed.append((file, GamificationFile.model_validate(data)))
        except ValidationError as exc:
            problems.extend(describe_validation_error(file, GamificationFile, exc))
    if problems:
        raise GamificationConfigError(problems)
    return parsed, digest.hexdigest()


def compile_program(path: Path) -> Program:
    """The compiled program of a configuration directory; raises GamificationConfigError."""
    files = config_files(path)
    parsed, version = parse_files(files)
    compiler = Compiler(version)
    program = compiler.compile(parsed)
    if compiler.problems:
        raise GamificationConfigError(compiler.problems)
    return program


def load_gamification(config_dir: Path, templates_dir: Path | None = None) -> GamificationRules:
    """The gamification rule set configured in ``config_dir`` (``config/gamification``),
    its messages rendered with the templates in ``templates_dir`` (``config/templates``)
    if given, else sent unrendered (template id and the event's fields).

    Raises :class:`GamificationConfigError` listing every problem, each with its file,
    its path in the file and what is wrong (a message whose template is missing or does
    not render included).
    """
    program = compile_program(config_dir)
    if templates_dir is not None:
        program = with_templates(program, templates_dir, str(config_dir))
    return GamificationRules(program)


def with_templates(program: Program, templates_dir: Path, where: str = "") -> Program:
    """``program`` rendering its messages with ``templates_dir``'s templates; raises
    GamificationConfigError if one of its messages has no template or does not render
    (each problem prefixed with ``where``, the configuration's directory)."""
    # Problems of the template files themselves are the campaign loader's to report.
    templates, _ = load_templates(templates_dir, str)
    problems = check_messages(program, templates, program.settings.default_locale)
    if problems:
        raise GamificationConfigError([f"{where}: {p}" if where else p for p in problems])
    return replace(program, templates=templates)


def check_gamification(path: Path) -> list[str]:
    """Every problem of the configuration at ``path`` (a directory or a file); [] if none."""
    try:
        compile_program(path)
    except GamificationConfigError as exc:
        return exc.problems
    return []
