"""The README and docs/ say only what is true of the command line and the tree.

- every `ganpipe ...` (or `.venv/bin/ganpipe ...`) line in a fenced code block of README.md or
  docs/*.md names a real subcommand and only options it accepts (read by the Click command
  tree Typer builds of `ganpipe`), spelt out in full, with values it takes;
- every relative link in README.md and docs/*.md points to a file that exists;
- README.md stays a page a newcomer reads: at most 200 lines.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer

from pipelines.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
MAX_README_LINES = 200

FENCE = re.compile(r"^(```|~~~)")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
SHELL_OPERATORS = {"|", "||", "&&", ";", "&", ">", ">>", "<", "2>", "2>&1", "&>"}


def code_lines(text: str) -> list[str]:
    """The lines inside fenced code blocks, with backslash continuations joined."""
    lines, inside, pending = [], False, ""
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            inside, pending = not inside, ""
            continue
        if not inside:
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    return lines


def ganpipe_commands(text: str) -> list[list[str]]:
    """The arguments after each `ganpipe` (or `path/to/ganpipe`) in the code blocks."""
    commands = []
    for line in code_lines(text):
        if line.lstrip().startswith("$ "):  # a shown session: `$ ganpipe ...`
            line = line.lstrip()[2:]
        try:
            words = shlex.split(line, comments=True)
        except ValueError:  # not shell (a Python or YAML line with a lone quote)
            continue
        for i, word in enumerate(words):
            if word == "ganpipe" or word.endswith("/ganpipe"):
                args = []
                for arg in words[i + 1 :]:
                    if arg in SHELL_OPERATORS:
                        break
                    args.append(arg)
                commands.append(args)
                break
    return commands


def command_tree() -> Any:
    """`ganpipe` as Click commands: a group whose `commands` are groups or commands."""
    return typer.main.get_command(app)


def _subcommands(command: Any) -> dict[str, Any]:
    return dict(getattr(command, "commands", {}))


def _flags(command: Any) -> set[str]:
    """The options `command` takes, -h/--help included (Click keeps those out of `params`)."""
    flags = {"-h", "--help"}
    for param in command.params:
        if param.param_type_name == "option":
            flags.update([*param.opts, *param.secondary_opts])
    return flags


def problems_with(args: list[str], tree: Any = None) -> list[str]:
    """What is wrong with `ganpipe ARGS` (empty: nothing)."""
    command = tree or command_tree()
    path = ["ganpipe"]
    # Walk down the subcommands (`ganpipe bench quality ...`).
    rest = list(args)
    while (choices := _subcommands(command)) and rest and not rest[0].startswith("-"):
        name = rest.pop(0)
        if name not in choices:
            return [f"{' '.join(path)}: no subcommand {name!r}; there are {', '.join(choices)}"]
        command, path = choices[name], [*path, name]
    if _subcommands(command) and not rest:
        return [f"{' '.join(path)}: a subcommand is missing"]
    where = " ".join(path)
    known = _flags(command)
    found = []
    for word in rest:
        if word == "--":
            break
        if word.startswith("-") and not re.fullmatch(r"-\d[\d.e+-]*", word):  # not a negative number
            flag = word.split("=", 1)[0]
            if flag not in known:
                found.append(f"{where}: no option {flag!r}; it has {', '.join(sorted(known))}")
    if found or "-h" in rest or "--help" in rest:
        return found
    try:  # values, choices and positionals too: Click raises on a bad one, as `ganpipe` would say it
        with contextlib.redirect_stdout(io.StringIO()):  # `ganpipe --version` prints
            command.make_context(where, rest)
    except typer.Exit:  # an eager option that ends the command (--version)
        return []
    except typer.TyperException as error:  # Click's usage errors
        return [f"{where}: refused {rest!r}: {error.format_message()}"]
    return []


def relative_links(page: Path) -> list[str]:
    text = page.read_text()
    # Links inside code spans and blocks are text, not links.
    text = "\n".join(line for line in _outside_code(text))
    text = re.sub(r"`[^`\n]*`", "", text)
    targets = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
            continue  # http(s)://, mailto:, an anchor on the same page
        targets.append(target.split("#", 1)[0])
    return targets


def _outside_code(text: str) -> list[str]:
    lines, inside = [], False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            inside = not inside
            continue
        if not inside:
            lines.append(line)
    return lines


# ---- the checker catches what it is meant to catch -------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["trian", "--preset", "ring"],  # a misspelt subcommand
        ["train", "--wokers", "2"],  # a misspelt option
        ["train", "--work", "2"],  # an abbreviation (argparse took it; a reader should not need to guess)
        ["tune", "--scheduler", "hyperband"],  # a value outside the choices
        ["sample", "--out", "x.png"],  # a positional left out
        ["bench", "qualty"],  # a misspelt nested subcommand
        ["bench", "quality", "--seed", "3"],  # `--seeds` is its option
        ["train", "--workers", "0"],  # a value out of range
        ["list", "everything"],  # a positional outside the choices
        ["list", "presets", "extra"],  # one positional too many
    ],
)
def test_the_check_refuses_a_bad_command(args: list[str]) -> None:
    assert problems_with(args)


def test_the_check_accepts_good_commands() -> None:
    for args in (
        ["train", "--preset", "ring", "--workers", "2", "--set", "train.steps=300"],
        ["train", "--help"],
        ["promote", "ring-generator", "--dry-run"],
        ["bench", "quality", "--seeds", "5"],
        ["list", "presets"],
        ["--version"],
        ["--help"],
    ):
        assert problems_with(args) == [], args


def test_commands_are_found_in_code_blocks_only() -> None:
    text = "\n".join(
        [
            "Run `ganpipe trian` (prose is not checked).",
            "```bash",
            "RAY_ADDRESS=ray://head:10001 .venv/bin/ganpipe train --preset ring \\",
            "    --workers 4   # a comment",
            "ganpipe sample models:/m@champion --out x.png | head",
            "```",
        ]
    )
    assert ganpipe_commands(text) == [
        ["train", "--preset", "ring", "--workers", "4"],
        ["sample", "models:/m@champion", "--out", "x.png"],
    ]


# ---- the pages ------------------------------------------------------------------------------


def test_readme_is_short() -> None:
    lines = len(README.read_text().splitlines())
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines; move reference material to docs/"


def test_readme_shows_the_two_commands() -> None:
    assert {"make demo", "make test"} <= {line.split("#")[0].strip() for line in code_lines(README.read_text())}


def test_readme_runs_ganpipe_commands() -> None:
    assert len(ganpipe_commands(README.read_text())) >= 10  # the command tree below checks them


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_ganpipe_command_parses(page: Path) -> None:
    tree = command_tree()
    found = [problem for args in ganpipe_commands(page.read_text()) for problem in problems_with(args, tree)]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_exists(page: Path) -> None:
    missing = [target for target in relative_links(page) if not (page.parent / target).exists()]
    assert not missing, f"{page.relative_to(ROOT)} links to missing files: {missing}"
