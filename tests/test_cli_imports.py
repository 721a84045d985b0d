"""The CLI answers at once: commands load only what they use, and every option says what it does."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.cli import build_parser
from service.runtime.components import Components
from service.runtime.settings import Settings
from tests.cli_commands import command_lines, leaf_commands, seed
from tests.conftest import Blog
from tests.test_cli import REPLYD, cli_env

# What only `serve` (the daemon, HTTP, SMTP) and `extract` (talon) need; alembic only migrates.
HEAVY = (
    "service.runtime.daemon",
    "service.web",
    "service.extraction.extract",
    "starlette",
    "uvicorn",
    "aiosmtpd",
    "talon",
    "alembic",
)
# Runs one command in this interpreter, then prints every module it imported, as JSON.
PROBE = (
    "import json, sys\n"
    "from service.cli import main\n"
    "status = main(json.loads(sys.argv[1]))\n"
    "print()\n"
    "print(json.dumps({'status': status, 'modules': sorted(sys.modules)}))\n"
)


def heavy_modules(modules: list[str], allowed: tuple[str, ...] = ()) -> list[str]:
    """The modules among `modules` that belong to a HEAVY package not in `allowed`."""
    return [
        module
        for module in modules
        for package in HEAVY
        if package not in allowed and (module == package or module.startswith(package + "."))
    ]


class TestCommandsStayLight:
    def test_the_table_covers_every_command(self, tmp_path: Path) -> None:
        """Each command the parser accepts has a command line below, so none goes unchecked."""
        assert set(command_lines(tmp_path)) == set(leaf_commands())

    def test_commands_import_no_server_http_alembic_or_talon(
        self, settings: Settings, parts: Components, blog: Blog, tmp_path: Path
    ) -> None:
        """Each command except serve and extract runs to success without importing the daemon,
        the HTTP stack, the SMTP server, talon or the extractor; alembic only for db upgrade."""
        seed(parts, blog)
        env = {**os.environ, **cli_env(settings)}
        found: dict[str, list[str]] = {}
        for path, argv in command_lines(tmp_path).items():
            if path in (("serve",), ("extract",), ("ingest",), ("feed", "poll")):
                continue
            result = subprocess.run(
                [sys.executable, "-c", PROBE, json.dumps(argv)],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert result.returncode == 0, f"replyd {' '.join(argv)}: {result.stderr}"
            report = json.loads(result.stdout.splitlines()[-1])
            assert report["status"] == 0, f"replyd {' '.join(argv)}: {result.stderr}"
            allowed = ("alembic",) if path == ("db", "upgrade") else ()
            heavy = heavy_modules(report["modules"], allowed)
            if heavy:
                found[" ".join(argv)] = heavy
        assert found == {}

    def test_the_check_sees_a_heavy_import(self) -> None:
        """The filter above recognises the packages and their submodules, and allows alembic."""
        modules = ["service.web.app", "starlette.routing", "alembic.command", "service.webhooks"]
        assert heavy_modules(modules) == ["service.web.app", "starlette.routing", "alembic.command"]
        assert heavy_modules(modules, ("alembic",)) == ["service.web.app", "starlette.routing"]


def _parsers(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    """The parser and every subcommand's parser below it, with their command names."""
    found = [(parser.prog, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found += _parsers(child)
    return found


class TestHelp:
    def test_every_option_and_command_has_help(self) -> None:
        """`replyd ... --help` explains every option, argument and subcommand."""
        missing = []
        for prog, parser in _parsers(build_parser()):
            for action in parser._actions:
                if isinstance(action, argparse._SubParsersAction):
                    listed = {choice.dest for choice in action._choices_actions}
                    missing += [f"{prog} {name}" for name in action.choices if name not in listed]
                    missing += [
                        f"{prog} {choice.dest}"
                        for choice in action._choices_actions
                        if not (choice.help or "").strip()
                    ]
                elif not (action.help or "").strip() or action.help == argparse.SUPPRESS:
                    missing.append(f"{prog} {'/'.join(action.option_strings) or action.dest}")
        assert missing == []

    def test_version(self) -> None:
        """`replyd --version` prints the installed version and exits 0."""
        from importlib.metadata import version

        result = subprocess.run(
            [*REPLYD, "--version"], capture_output=True, text=True, timeout=60, check=True
        )
        assert result.stdout.strip() == f"replyd {version('replyd')}"

    @pytest.mark.parametrize("argv", [["--help"], ["post", "add", "--help"]])
    def test_help_exits_zero(self, argv: list[str]) -> None:
        """Help is printed without touching settings or the database."""
        result = subprocess.run(
            [*REPLYD, *argv],
            env={**os.environ, "REPLYD_SMTP_PORT": "not a port"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0 and "usage: replyd" in result.stdout
