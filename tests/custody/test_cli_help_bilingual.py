"""Every subcommand's --help is bilingual (issue 13): its summary paragraph and every option's
help carry Chinese beside the English, and no option goes without help."""
from __future__ import annotations

import inspect
import re

import click
from click.testing import CliRunner

from custody.cli import COMMANDS, cli

CJK = re.compile(r"[\u4e00-\u9fff]")
LATIN = re.compile(r"[A-Za-z]{3,}")


def _walk(cmd: click.Command, path: str):  # noqa: ANN202
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            yield from _walk(sub, f"{path} {name}")


def test_every_subcommand_help_is_bilingual() -> None:
    ctx = click.Context(cli)
    problems = []
    for name in COMMANDS:
        for path, cmd in _walk(cli.get_command(ctx, name), name):
            para = inspect.cleandoc(cmd.help or "").split("\n\n")[0]
            if not (CJK.search(para) and LATIN.search(para)):
                problems.append(f"{path}: {para!r}")
            for p in cmd.params:
                if isinstance(p, click.Option) and "--help" not in p.opts:
                    if not (p.help and CJK.search(p.help) and LATIN.search(p.help)):
                        problems.append(f"{path} {p.opts[-1]}: {p.help!r}")
    assert not problems, "\n".join(problems)


def test_help_output_shows_both_languages() -> None:
    out = CliRunner().invoke(cli, ["report", "ratio", "--help"]).output
    assert "Unit code: this unit and the units under it" in out and "该单位及其全部下级单位" in out
    out = CliRunner().invoke(cli, ["daemon", "--help"]).output
    assert "Watch the dock root" in out and "监视接入目录" in out and "调试日志" in out
