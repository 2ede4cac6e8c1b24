"""The command lines that README.md and docs/*.md show exist: every ``slimkit COMMAND`` and each of its flags.

Lines of fenced code blocks (and inline code spans) that start with ``slimkit`` are split into commands (at ``;``,
``&&`` and ``|``); each command must be a subcommand of :func:`slimkit.cli.build_parser` and each ``--flag`` on it
(inside ``[...]`` too) one of that subcommand's options, so a renamed or removed flag fails here, not for a reader.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from slimkit.cli import build_parser

pytestmark = pytest.mark.cli

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _commands() -> dict[str, set[str]]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {name: {s for a in p._actions for s in a.option_strings} for name, p in sub.choices.items()}


def _code_lines(text: str) -> list[tuple[int, str]]:
    """(line number, text) of every line inside fenced blocks, and of every inline ``code`` span elsewhere."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif fenced:
            lines.append((number, line.strip()))
        else:
            lines.extend((number, span) for span in re.findall(r"`([^`]+)`", line))
    return lines


def command_lines(path: Path) -> list[tuple[str, str, list[str]]]:
    """``(where, command, flags)`` of every slimkit command line shown in ``path``."""
    found = []
    for number, line in _code_lines(path.read_text()):
        if line.startswith("|"):  # a table row (benchmark results), not a command
            continue
        for part in re.split(r";|&&|\|(?![^\[]*\])", line.split("#")[0]):
            words = part.split()
            for start, word in enumerate(words):  # a command starts the part, or follows `-m` (python, torchrun)
                if start and words[start - 1] not in ("-m", "$"):
                    continue
                if word == "slimkit" and len(words) > start + 1 and re.fullmatch(r"[a-z][a-z-]*", words[start + 1]):
                    flags = re.findall(r"(?<![\w-])(--[a-z][a-z0-9.-]*)", " ".join(words[start + 2:]))
                    found.append((f"{path.name}:{number}", words[start + 1], flags))
                    break
    return found


def test_readme_shows_commands() -> None:
    shown = {command for _, command, _ in command_lines(ROOT / "README.md")}
    assert {"compress", "train", "prune", "quantize", "decompose"} <= shown


def _readme_cli_block() -> list[str]:
    """The lines of the fenced block of README.md's "Command line and recipes" section."""
    section = (ROOT / "README.md").read_text().partition("## Command line and recipes")[2]
    return section.split("```")[1].splitlines()[1:]


def test_readme_cli_section_matches_every_commands_help() -> None:
    """Every command ``slimkit --help`` lists appears in the README's CLI block with its required positional
    arguments, and every flag shown there is printed by that command's own ``--help``."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    listed = re.findall(r"^    (\w[\w-]*)", parser.format_help(), flags=re.M)
    assert set(listed) == set(sub.choices), "slimkit --help and the parser disagree"
    shown: dict[str, list[list[str]]] = {}
    for line in _readme_cli_block():
        for part in re.split(r";|&&", line.split("#")[0]):
            words = part.split()
            if len(words) > 1 and words[0] == "slimkit":
                shown.setdefault(words[1], []).append(words[2:])
    missing = sorted(set(listed) - set(shown))
    assert not missing, f"README's CLI section lacks {missing} (listed by slimkit --help)"
    wrong = []
    for command, uses in shown.items():
        p = sub.choices[command]
        help_text = p.format_help()
        required = [a for a in p._actions if not a.option_strings and a.nargs not in ("?", "*")]
        for words in uses:
            positional = [w for w in words if not w.startswith(("-", "[")) and not w.endswith("]")]
            flags = re.findall(r"(?<![\w-])(--[a-z][a-z0-9.-]*)", " ".join(words))
            if len(positional) < len(required):
                wrong.append(f"slimkit {command} {' '.join(words)}: needs {[a.dest for a in required]}")
            wrong += [f"slimkit {command} {flag}: not in its --help" for flag in flags if flag not in help_text]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_documented_commands_and_flags_exist(path: Path) -> None:
    commands = _commands()
    wrong = []
    for where, command, flags in command_lines(path):
        if command not in commands:
            wrong.append(f"{where}: slimkit {command}: no such command")
            continue
        wrong += [f"{where}: slimkit {command} {flag}: no such flag" for flag in flags
                  if flag.split("=")[0] not in commands[command]]
    assert not wrong, "\n".join(wrong)


def test_the_checker_catches_a_wrong_flag(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```\nslimkit prune m.pt --ratio 0.5 --no-such-flag ; slimkit nosuch x\n```\n")
    lines = command_lines(page)
    assert [(c, f) for _, c, f in lines] == [("prune", ["--ratio", "--no-such-flag"]), ("nosuch", [])]
