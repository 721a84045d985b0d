"""The replyd command as operators and scripts use it: names, JSON shapes, errors that help."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from service.runtime.settings import Settings
from tests.conftest import DOMAIN, SECRET, free_port, reply_message, send, wait_for

REPLYD = [sys.executable, "-m", "service.cli"]


def run(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run replyd as a separate process with the given REPLYD_* environment."""
    result = subprocess.run(
        [*REPLYD, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )
    if check and result.returncode != 0:
        raise AssertionError(f"replyd {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result


def add_post(env: dict[str, str], slug: str) -> None:
    """Add a post with the given id through the CLI."""
    run(
        env,
        "post",
        "add",
        "--id",
        slug,
        "--title",
        "T",
        "--url",
        f"https://b.example/{slug}",
        "--author-email",
        "a@example.org",
    )


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    """The environment that points replyd at the test's migrated database."""
    return cli_env(settings)


def cli_env(settings: Settings) -> dict[str, str]:
    """The REPLYD_* variables that point a replyd process at these settings' database."""
    return {
        "REPLYD_VAR_DIR": str(settings.var_dir),
        "REPLYD_DOMAIN": DOMAIN,
        "REPLYD_SECRET": SECRET,
        "REPLYD_SMTP_PORT": str(settings.smtp_port),
        "REPLYD_HTTP_PORT": "0",  # a free port: 8025 may be taken on a developer's machine
        "REPLYD_OUTBOUND": f"maildir://{settings.var_dir / 'outbox'}",
    }


class TestPostsAndAddresses:
    def test_post_add_list_close(self, env: dict[str, str]) -> None:
        """Posts added on the command line are listed as JSON and can be closed."""
        run(
            env,
            "post",
            "add",
            "--id",
            "p1",
            "--title",
            "First",
            "--url",
            "https://b.example/p1",
            "--author-email",
            "Ann@Example.org",
            "--author-name",
            "Ann",
        )
        run(env, "post", "close", "p1")
        [post] = json.loads(run(env, "post", "list", "--json").stdout)
        assert post == {
            "id": "p1",
            "title": "First",
            "url": "https://b.example/p1",
            "author_email": "ann@example.org",
            "author_name": "Ann",
            "closed": True,
        }

    def test_address_prints_a_reply_address(self, env: dict[str, str]) -> None:
        """`replyd address` prints one reply address at our domain."""
        add_post(env, "p1")
        address = run(
            env, "address", "--post", "p1", "--email", "reader@example.org"
        ).stdout.strip()
        assert address.startswith("reply+") and address.endswith(f"@{DOMAIN}")

    def test_subscribe_and_unsubscribe(self, env: dict[str, str], settings: Settings) -> None:
        """subscribe records a digest (and lifts a bounce suspension); unsubscribe opts out."""
        import sqlite3

        add_post(env, "p1")
        run(env, "subscribe", "--post", "p1", "--email", "fan@example.org", "--digest", "weekly")
        database = settings.database_url.removeprefix("sqlite:///")
        with sqlite3.connect(database) as db:
            db.execute("UPDATE people SET suspended_at = '2026-01-01 00:00:00', bounce_score = 3")
        run(env, "subscribe", "--post", "p1", "--email", "fan@example.org", "--digest", "weekly")
        with sqlite3.connect(database) as db:
            assert db.execute(
                "SELECT s.active, s.digest, p.suspended_at FROM subscriptions s "
                "JOIN people p ON p.id = s.person_id WHERE p.email = 'fan@example.org'"
            ).fetchall() == [(1, "weekly", None)]
        run(env, "unsubscribe", "--post", "p1", "--email", "fan@example.org")
        with sqlite3.connect(database) as db:
            assert db.execute("SELECT active FROM subscriptions").fetchall() == [(0,)]

    def test_unknown_post_is_a_helpful_error(self, env: dict[str, str]) -> None:
        """An unknown post id exits non-zero and says how to find the right one."""
        result = run(env, "address", "--post", "nope", "--email", "reader@example.org", check=False)
        assert result.returncode == 2
        assert "replyd post list" in result.stderr
        assert "Traceback" not in result.stderr

    def test_unmigrated_database_says_what_to_run(self, tmp_path: Path) -> None:
        """Commands on a fresh database tell the operator to run `replyd db upgrade`."""
        result = run({"REPLYD_VAR_DIR": str(tmp_path)}, "post", "list", check=False)
        assert result.returncode == 2
        assert "replyd db upgrade" in result.stderr

    def test_bad_setting_names_the_variable(self, env: dict[str, str]) -> None:
        """A malformed REPLYD_* variable is named in the error."""
        result = run({**env, "REPLYD_SMTP_PORT": "twenty"}, "post", "list", check=False)
        assert result.returncode == 2
        assert "REPLYD_SMTP_PORT" in result.stderr

    def test_commands_that_do_not_extract_do_not_import_talon(self, env: dict[str, str]) -> None:
        """`replyd post list` stays fast: talon (about a second to import) is not loaded."""
        code = (
            "import sys; from service.cli import main; main(['post', 'list']); "
            "print('talon' in sys.modules)"
        )
        result = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.stdout.strip().splitlines()[-1] == "False"


class TestDaemon:
    def test_serve_end_to_end_and_drain_on_sigterm(
        self, env: dict[str, str], tmp_path: Path
    ) -> None:
        """The real daemon takes a reply, makes the comment, writes the Maildir, exits 0 on TERM."""
        run(
            env,
            "post",
            "add",
            "--id",
            "demo",
            "--title",
            "Demo",
            "--url",
            "https://b.example/demo",
            "--author-email",
            "author@example.org",
        )
        address = run(
            env, "address", "--post", "demo", "--email", "reader@example.org"
        ).stdout.strip()
        log = tmp_path / "serve.log"
        with log.open("w") as out:
            daemon = subprocess.Popen([*REPLYD, "serve"], env={**os.environ, **env}, stderr=out)
        try:
            port = int(env["REPLYD_SMTP_PORT"])
            wait_for(lambda: _connects(port), what="the daemon to listen")
            send(
                port,
                "reader@example.org",
                [address],
                reply_message("reader@example.org", address, "Hello from the test"),
            )

            def published() -> list[dict[str, object]]:
                return json.loads(run(env, "comments", "--post", "demo", "--json").stdout)

            [comment] = wait_for(published, what="the comment")
            assert comment["body"] == "Hello from the test"
            assert comment["author_email"] == "reader@example.org"
            assert {"id", "parent_id", "author_name", "created_at"} <= set(comment)
            outbox = Path(env["REPLYD_OUTBOUND"].removeprefix("maildir://")) / "new"
            wait_for(
                lambda: outbox.exists() and list(outbox.iterdir()), what="the author's notification"
            )
        finally:
            daemon.send_signal(signal.SIGTERM)
            exit_code = daemon.wait(30)
        assert exit_code == 0
        stderr = log.read_text()
        assert SECRET not in stderr
        assert address.split("@")[0] not in stderr  # tokens are not logged

    def test_serve_refuses_unmigrated_database(self, tmp_path: Path) -> None:
        """`replyd serve` on an empty database exits with what to run instead of starting."""
        result = run(
            {"REPLYD_VAR_DIR": str(tmp_path), "REPLYD_SMTP_PORT": str(free_port())},
            "serve",
            check=False,
        )
        assert result.returncode == 2
        assert "replyd db upgrade" in result.stderr


class TestInboundCommands:
    def test_list_show_and_retry(self, env: dict[str, str], settings: Settings) -> None:
        """Operators list received mail with its reason, see its source, and replay it."""
        from service.runtime.components import Components
        from tests.inbound_helpers import store_mail

        add_post(env, "p1")
        address = run(
            env, "address", "--post", "p1", "--email", "reader@example.org"
        ).stdout.strip()
        parts = Components.build(settings)
        raw = reply_message(
            "reader@example.org", address, "stored reply", message_id="<cli-1@example.net>"
        )
        [row_id] = store_mail(parts, raw, "reader@example.org", [address])
        parts.engine.dispose()
        [listed] = json.loads(run(env, "inbound", "list", "--json").stdout)
        assert listed["id"] == row_id and listed["status"] == "received"
        assert (
            listed["message_id"] == "<cli-1@example.net>"
            and listed["sender"] == "reader@example.org"
        )
        assert "reason" in listed
        assert "status:      received" in run(env, "inbound", "show", str(row_id)).stdout
        shown = subprocess.run(
            [*REPLYD, "inbound", "show", str(row_id), "--raw"],
            env={**os.environ, **env},
            capture_output=True,
            timeout=60,
        )
        assert shown.stdout == raw
        refused = run(env, "inbound", "retry", str(row_id), check=False)
        assert refused.returncode == 2 and "only failed" in refused.stderr
        assert "requeued 0" in run(env, "inbound", "retry", "--failed").stdout
        assert run(env, "inbound", "list", "--status", "bogus", check=False).returncode == 2


class TestExtractCommand:
    def test_extract_json_body_and_message(self, tmp_path: Path) -> None:
        """`replyd extract --body --json` prints one object per file with reply and elided."""
        body = tmp_path / "reply.txt"
        body.write_text(
            "Sounds good.\n\n"
            "On Mon, Nov 2, 2026 at 9:00 AM, Ann <ann@example.org> wrote:\n> Shall we?\n"
        )
        eml = tmp_path / "reply.eml"
        eml.write_bytes(reply_message("b@example.org", "reply@x.example", body.read_text()))
        lines = run({}, "extract", "--body", "--json", str(body)).stdout.splitlines()
        assert json.loads(lines[0]) == {
            "file": str(body),
            "reply": "Sounds good.",
            "elided": json.loads(lines[0])["elided"],
        }
        assert "Shall we?" in json.loads(lines[0])["elided"]
        assert run({}, "extract", str(eml)).stdout.strip() == "Sounds good."

    def test_missing_file_is_reported(self, tmp_path: Path) -> None:
        """A file that cannot be read is named on stderr and the exit status is non-zero."""
        result = run({}, "extract", str(tmp_path / "missing.eml"), check=False)
        assert result.returncode == 1 and "missing.eml" in result.stderr


def _connects(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0
