"""The CLI shell: one table of commands, modules loaded only when used, help in both languages."""
from __future__ import annotations

import importlib
import re
import subprocess
import sys

from click.testing import CliRunner

from custody.cli import COMMANDS, cli

HAN = re.compile(r"[\u4e00-\u9fff]")


def test_the_table_and_the_modules_declare_the_same_commands() -> None:
    declared: dict[str, str] = {}
    for module in sorted({e.module for e in COMMANDS.values()}):
        for cmd in importlib.import_module(f"custody.commands.{module}").COMMANDS:
            assert cmd.name not in declared, f"{cmd.name} declared twice"
            declared[cmd.name] = module
    assert declared == {name: e.module for name, e in COMMANDS.items()}


def test_every_summary_is_bilingual() -> None:
    for name, e in COMMANDS.items():
        assert HAN.search(e.summary) and re.search(r"[A-Za-z]{3}", e.summary), name


def test_help_lists_every_command_without_loading_the_heavy_packages() -> None:
    code = ("import sys\nfrom custody.cli import main\nsys.argv=['custody','--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "heavy=[m for m in ('alembic','cv2','numpy','boto3','fastapi','indexer','web','ingest') if m in sys.modules]\n"
            "print('HEAVY', heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for name in COMMANDS:
        assert f"  {name} " in out
    assert out.strip().splitlines()[-1] == "HEAVY []"


def test_an_unknown_command_is_a_usage_error() -> None:
    res = CliRunner().invoke(cli, ["no-such-command"])
    assert res.exit_code == 2 and "No such command" in res.output
