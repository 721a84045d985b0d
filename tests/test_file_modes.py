"""What replyd writes under REPLYD_VAR_DIR is its user's only: files 0600, folders 0700."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

from tests.conftest import DOMAIN, free_port, reply_message, send, wait_for

REPLYD = [sys.executable, "-m", "service.cli"]
# What a shell commonly has: without replyd's own umask its files would be world-readable.
LAX_UMASK = 0o022


def replyd(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the real command under a lax umask, as an operator's shell would."""
    result = subprocess.run(
        [*REPLYD, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        umask=LAX_UMASK,
    )
    assert result.returncode == 0, result.stderr
    return result


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def modes_under(root: Path) -> dict[str, int]:
    """Every file and folder under `root` (itself included) with its permission bits."""
    found = {".": mode(root)}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = mode(path)
    return found


def private(found: dict[str, int], root: Path) -> dict[str, int]:
    """The entries of `found` that others could read: folders not 0700, files not 0600."""
    return {
        name: bits
        for name, bits in found.items()
        if bits != (0o700 if (root / name).is_dir() else 0o600)
    }


def connects(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


class TestVarDirModes:
    def test_db_upgrade_and_serve_on_a_fresh_var_dir_write_private_files(
        self, tmp_path: Path
    ) -> None:
        """`replyd db upgrade` makes var/, replyd.db and var/secret private; `replyd serve`
        keeps the database's -wal/-shm files and the outbox Maildir private too."""
        var = tmp_path / "var"
        env = {
            "REPLYD_VAR_DIR": str(var),
            "REPLYD_DOMAIN": DOMAIN,
            "REPLYD_SMTP_PORT": str(free_port()),
            "REPLYD_HTTP_PORT": "0",
            "REPLYD_WORKER_PROCESSES": "0",
        }
        env.pop("REPLYD_SECRET", None)
        assert "REPLYD_SECRET" not in os.environ  # so var/secret is made
        replyd(env, "db", "upgrade")
        found = modes_under(var)
        assert {"replyd.db", "secret"} <= set(found)
        assert private(found, var) == {}

        replyd(
            env,
            "post",
            "add",
            "--id",
            "p",
            "--title",
            "P",
            "--url",
            "https://b.example/p",
            "--author-email",
            "author@example.org",
        )
        address = replyd(env, "address", "--post", "p", "--email", "r@example.org").stdout.strip()
        log = tmp_path / "serve.log"
        with log.open("w") as out:
            daemon = subprocess.Popen(
                [*REPLYD, "serve"], env={**os.environ, **env}, stderr=out, umask=LAX_UMASK
            )
        try:
            port = int(env["REPLYD_SMTP_PORT"])
            wait_for(lambda: connects(port), what="the daemon to listen")
            send(port, "r@example.org", [address], reply_message("r@example.org", address, "Hi"))
            outbox = var / "outbox" / "new"
            wait_for(lambda: outbox.exists() and list(outbox.iterdir()), what="the Maildir")
            running = modes_under(var)
            assert {"replyd.db-wal", "replyd.db-shm"} <= set(running)
            assert any(name.startswith("outbox/new/") for name in running)
            assert private(running, var) == {}
        finally:
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(30) == 0
        listed = json.loads(replyd(env, "comments", "--post", "p", "--json").stdout)
        assert [c["body"] for c in listed] == ["Hi"]
        assert private(modes_under(var), var) == {}

    def test_a_new_sqlite_database_is_private_whatever_the_umask(self, tmp_path: Path) -> None:
        """The engine makes a new database file 0600 itself (SQLite gives -wal and -shm the
        same mode), and a missing folder for it 0700, even under a lax umask."""
        from sqlalchemy import text

        from service.store.engine import make_engine

        folder = tmp_path / "new" / "var"
        previous = os.umask(LAX_UMASK)
        try:
            engine = make_engine(f"sqlite:///{folder / 'replyd.db'}")
            with engine.begin() as connection:
                connection.execute(text("CREATE TABLE t (x INTEGER)"))
                found = modes_under(folder)
            engine.dispose()
        finally:
            os.umask(previous)
        assert {"replyd.db", "replyd.db-wal", "replyd.db-shm"} <= set(found)
        assert private(found, folder) == {}
