"""The command line's shape: every option declared once (cli/options.py), the options that mean
the same named the same on every command, and command files that stay short."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import click

from vsr_pipe.cli import main

CLI = Path(__file__).resolve().parents[2] / "vsr_pipe" / "cli"
MAX_COMMAND_LINES = 150


def declared_option_names(path: Path) -> list[str]:
    """The option strings (``-o``, ``--output``, ``-y/-n`` as two) of every ``click.option`` call."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "option":
            for arg in node.args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value.startswith("-"):
                    names += [n.strip() for n in arg.value.split("/")]
    return names


def commands(group: click.Group = main, prefix: str = ""):
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from commands(cmd, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", cmd


def option_names(cmd: click.Command) -> set[str]:
    return {n for p in cmd.params if isinstance(p, click.Option) for n in (*p.opts, *p.secondary_opts)}


def test_no_option_is_declared_twice():
    counts = Counter(n for path in sorted(CLI.glob("*.py")) for n in declared_option_names(path))
    assert counts, "no click.option found: the test reads the wrong files"
    assert [n for n, c in counts.items() if c > 1] == []


def test_no_command_file_is_long():
    long = {p.name: n for p in CLI.glob("*.py") if p.name != "options.py" and (n := len(p.read_text().splitlines())) > MAX_COMMAND_LINES}
    assert long == {}


def test_every_command_that_encodes_takes_the_same_encoder_options():
    encoding = {"--codec", "--crf", "--bitrate", "--preset", "--codec-option", "-an", "-sn"}
    encoders = {name: option_names(cmd) for name, cmd in commands() if "--crf" in option_names(cmd)}
    assert set(encoders) == {"upscale", "batch", "deliver", "restore"}
    assert {name: encoding - names for name, names in encoders.items()} == {name: set() for name in encoders}


def test_restore_takes_upscales_output_and_engine_options():
    shared = {"--pix-fmt", "-f", "--precision", "--codec-option", "--bitrate", "-y", "-n", "--engine", "--device"}
    restore = option_names(dict(commands())["restore"])
    assert shared - restore == set()
    assert shared - option_names(dict(commands())["upscale"]) == set()
