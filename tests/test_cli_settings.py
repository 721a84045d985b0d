"""How the replyd command reports its settings: bad ones stop it with a sentence, odd ones warn."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from service.runtime.components import Components
from service.runtime.settings import Settings
from service.store.models import Comment, OutboundEmail, Post
from tests.cli_commands import FOLLOWER, command_lines, seed
from tests.conftest import Blog, wait_for
from tests.test_cli import REPLYD, cli_env, run

EXTRA = "pip install 'replyd[postgres]'"


def every_command_but_extract(workdir: Path) -> list[list[str]]:
    """The command lines of every command that opens the database (extract does not)."""
    return [argv for path, argv in command_lines(workdir).items() if path != ("extract",)]


# Runs each command line given as JSON through replyd's entry point in this one process (a
# process per command would cost half a second each), and prints each one's status and stderr.
EACH_COMMAND = (
    "import contextlib, io, json, sys\n"
    "from service.cli import main\n"
    "for argv in json.loads(sys.argv[1]):\n"
    "    err = io.StringIO()\n"
    "    with contextlib.redirect_stderr(err):\n"
    "        status = main(argv)\n"
    "    print(json.dumps([argv, status, err.getvalue()]))\n"
)


class TestMissingDatabaseDriver:
    URL = "postgresql+pg8000://replyd@127.0.0.1/replyd"

    def test_command_and_daemon_name_the_extra_to_install(self, tmp_path: Path) -> None:
        """A URL whose driver is not installed stops replyd with one sentence naming the
        missing module and the extra, and no traceback."""
        env = {"REPLYD_VAR_DIR": str(tmp_path), "REPLYD_DATABASE_URL": self.URL}
        for argv in (["post", "list", "--json"], ["serve"]):
            result = run(env, *argv, check=False)
            assert result.returncode == 2, result.stderr
            [line] = result.stderr.splitlines()
            assert line.startswith("replyd: REPLYD_DATABASE_URL")
            assert "'pg8000'" in line and EXTRA in line

    def test_every_command_says_it(self, tmp_path: Path) -> None:
        """Every command that opens the database answers with the same sentence."""
        env = {**os.environ, "REPLYD_VAR_DIR": str(tmp_path), "REPLYD_DATABASE_URL": self.URL}
        commands = every_command_but_extract(tmp_path)
        result = subprocess.run(
            [sys.executable, "-c", EACH_COMMAND, json.dumps(commands)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        answers = [json.loads(line) for line in result.stdout.splitlines()]
        assert [argv for argv, _, _ in answers] == commands
        for argv, status, err in answers:
            if argv[0] == "ingest":
                # An MTA's pipe: EX_TEMPFAIL, so the MTA keeps the mail until this is fixed.
                assert status == 75 and EXTRA in err, (argv, err)
                continue
            assert status == 2, (argv, err)
            assert err.startswith("replyd: REPLYD_DATABASE_URL") and EXTRA in err, (argv, err)
            assert "Traceback" not in err, (argv, err)

    def test_other_databases_too(self, tmp_path: Path) -> None:
        """A MySQL URL without its driver gets the same kind of sentence."""
        env = {"REPLYD_VAR_DIR": str(tmp_path), "REPLYD_DATABASE_URL": "mysql+mysqldb://h/d"}
        result = run(env, "inbound", "list", check=False)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert "'MySQLdb'" in result.stderr and EXTRA in result.stderr

    def test_unknown_driver_name(self, tmp_path: Path) -> None:
        """A driver SQLAlchemy does not know is named too, with the extra that works."""
        env = {"REPLYD_VAR_DIR": str(tmp_path), "REPLYD_DATABASE_URL": "postgresql+nosuch://h/d"}
        result = run(env, "post", "list", check=False)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert "'postgresql+nosuch'" in result.stderr and EXTRA in result.stderr


class TestConfigFile:
    def test_misspelt_key_stops_the_command(self, tmp_path: Path) -> None:
        """A config file key with a typo stops replyd with the key and the nearest setting."""
        config = tmp_path / "replyd.toml"
        config.write_text('site_name = "Blog"\nbase_ulr = "https://blog.example.org"\n')
        env = {"REPLYD_VAR_DIR": str(tmp_path), "REPLYD_CONFIG": str(config)}
        for argv in (["post", "list"], ["serve"]):
            result = run(env, *argv, check=False)
            assert result.returncode == 2 and "Traceback" not in result.stderr
            assert "'base_ulr'" in result.stderr
            assert "did you mean 'base_url'?" in result.stderr


class TestDeprecatedWorkersSetting:
    def test_command_warns_once_and_says_what_to_set(self, settings: Settings) -> None:
        """REPLYD_WORKERS still works, and the command says once what to set instead."""
        result = run({**cli_env(settings), "REPLYD_WORKERS": "0"}, "post", "list")
        warnings = [line for line in result.stderr.splitlines() if "REPLYD_WORKERS" in line]
        assert len(warnings) == 1
        assert "set REPLYD_WORKER_PROCESSES=0 instead" in warnings[0]

    def test_daemon_warns_once_in_its_log_format(self, settings: Settings, tmp_path: Path) -> None:
        """`replyd serve` logs the warning once, as a JSON line when the log is JSON."""
        env = {**cli_env(settings), "REPLYD_WORKERS": "0", "REPLYD_LOG_FORMAT": "json"}
        log = tmp_path / "serve.log"
        with log.open("w") as out:
            daemon = subprocess.Popen([*REPLYD, "serve"], env={**os.environ, **env}, stderr=out)
        try:
            wait_for(lambda: "replyd listening" in log.read_text(), what="the daemon to listen")
        finally:
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(30) == 0
        lines = [line for line in log.read_text().splitlines() if "REPLYD_WORKERS" in line]
        assert len(lines) == 1
        entry = json.loads(lines[0])
        assert entry["level"] == "warning" and "REPLYD_WORKER_PROCESSES=0" in entry["message"]
        assert "workers in this process" in log.read_text()


class TestDigestSend:
    def test_says_which_settings_the_digests_were_rendered_with(
        self, settings: Settings, parts: Components, blog: Blog
    ) -> None:
        """`digest send` prints the site name and base URL it rendered with, which are the
        ones in the queued digest."""
        seed(parts, blog)
        env = {
            **cli_env(settings),
            "REPLYD_SITE_NAME": "Shell Blog",
            "REPLYD_BASE_URL": "https://shell.example.org",
        }
        run(env, "subscribe", "--post", "hello", "--email", FOLLOWER, "--digest", "daily")
        # A digest holds what came after its taker subscribed.
        writer = blog.person("writer@example.org", "Wren")
        with parts.session_factory.begin() as session:
            post = session.scalars(select(Post).where(Post.slug == "hello")).one()
            session.add(Comment(post_id=post.id, author_id=writer, body="News for the digest."))
        out = run(env, "digest", "send", "--period", "daily").stdout
        assert "queued 1 daily digest(s)" in out
        assert "site name 'Shell Blog'" in out
        assert "base URL https://shell.example.org" in out
        with parts.session_factory() as session:
            digest = session.scalars(
                select(OutboundEmail).where(OutboundEmail.kind == "digest")
            ).one()
        assert b"Shell Blog" in digest.raw and b"https://shell.example.org" in digest.raw
