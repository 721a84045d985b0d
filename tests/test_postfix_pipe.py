"""`replyd ingest` under a real Postfix pipe(8) transport: a throwaway Postfix instance in a
temporary directory, listening on a loopback port only, delivering our domain to the pipe
with the master.cf lines docs/ingress.md gives."""

from __future__ import annotations

import os
import pwd
import shutil
import smtplib
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.runtime.settings import Settings
from tests.conftest import DOMAIN, SECRET, Blog, RunningServer, free_port, reply_message, wait_for
from tests.ingress_helpers import READER, comments, inbound_rows, store_down

MASTER = Path("/usr/lib/postfix/sbin/master")


def _why_no_postfix() -> str | None:
    if shutil.which("postfix") is None or not MASTER.exists():
        return "Postfix is not installed (apt-get install -y postfix)"
    if os.geteuid() != 0:
        return "a Postfix instance can only be started as root"
    try:
        pwd.getpwnam("postfix")
        pwd.getpwnam("nobody")
    except KeyError:
        return "the postfix and nobody users are missing"
    return None


def _others_may_run(path: Path) -> bool:
    """Whether a user without privileges can reach and run the file."""
    return all(p.stat().st_mode & stat.S_IXOTH for p in [path, *path.parents])


def interpreter() -> tuple[str, str] | None:
    """A Python the pipe's user (nobody) can run, with the PYTHONPATH it needs to find replyd
    and its packages: this test's own, else the system's of the same version (this one may
    live under a home directory only root can enter)."""
    if _others_may_run(Path(sys.executable).resolve()):
        return sys.executable, ""
    system = Path("/usr/bin/python3")
    if not system.exists() or not _others_may_run(system.resolve()):
        return None
    version = subprocess.run(
        [str(system), "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    if version != str(sys.version_info[:2]):
        return None
    return str(system), ":".join(p for p in sys.path if p and Path(p).is_dir())


def _why_skip() -> str | None:
    why = _why_no_postfix()
    if why is None and interpreter() is None:
        why = "no Python interpreter the pipe's user (nobody) can run"
    return why


pytestmark = pytest.mark.skipif(_why_skip() is not None, reason=str(_why_skip()))

# The transport, as docs/ingress.md gives it (the command and user are the test's own).
PIPE_SERVICE = (
    "replyd    unix  -       n       n       -       -       pipe\n"
    "  flags=DR user=nobody null_sender= argv={command} ingest "
    "--sender ${{sender}} --recipient ${{recipient}}\n"
)
# Every other service runs unchrooted: the instance has no copy of /etc in its queue.
SERVICES = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""
MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {home}/queue
data_directory = {home}/data
maillog_file = {home}/maillog
maillog_file_prefixes = {home}
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.postfix-test.example
mydestination =
mynetworks = 127.0.0.0/8
local_recipient_maps =
alias_maps =
alias_database =
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
# What docs/ingress.md says to add to main.cf:
relay_domains = {domain}
transport_maps = inline:{{ {domain}=replyd: }}
replyd_destination_recipient_limit = 1
# Bounces to the test's senders go nowhere.
default_transport = error:this test sends no mail out
"""


class Postfix:
    """A Postfix instance of the test's own; only its loopback port is open."""

    def __init__(self, home: Path, database_url: str) -> None:
        self.home = home
        self.port = free_port()
        self.config = home / "etc"
        command = home / "replyd"
        found = interpreter()
        assert found is not None
        python, python_path = found
        command.write_text(
            "#!/bin/sh\n"
            f"export REPLYD_DATABASE_URL='{database_url}' REPLYD_DOMAIN='{DOMAIN}'\n"
            f"export REPLYD_SECRET='{SECRET}' REPLYD_VAR_DIR='{home / 'var'}'\n"
            + (f"export PYTHONPATH='{python_path}'\n" if python_path else "")
            + f"exec '{python}' -m service.cli \"$@\"\n"
        )
        command.chmod(0o755)
        self.config.mkdir()
        (self.config / "main.cf").write_text(MAIN_CF.format(home=home, domain=DOMAIN))
        (self.config / "master.cf").write_text(
            SERVICES.format(port=self.port) + PIPE_SERVICE.format(command=command)
        )
        (home / "queue").mkdir()
        (home / "data").mkdir()
        shutil.chown(home / "data", "postfix")

    def postfix(self, *args: str) -> None:
        """Run `postfix -c <this instance> ARGS`."""
        subprocess.run(["postfix", "-c", str(self.config), *args], check=True, timeout=60)

    def log(self) -> str:
        """The instance's mail log so far."""
        path = self.home / "maillog"
        return path.read_text() if path.exists() else ""

    def send(self, recipient: str, raw: bytes) -> None:
        """Hand a message to the instance's smtpd."""
        with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as client:
            client.sendmail(READER, [recipient], raw)


@pytest.fixture
def home(migrated_template: Path) -> Iterator[Path]:
    """A directory the pipe's user (nobody) can use: the database is there, writable."""
    path = Path(tempfile.mkdtemp(prefix="replyd-postfix-"))
    path.chmod(0o755)
    database = path / "db"
    database.mkdir()
    database.chmod(0o777)
    shutil.copy(migrated_template, database / "replyd.db")
    # SQLite gives its -wal and -shm files the database file's mode.
    (database / "replyd.db").chmod(0o666)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def settings_overrides(home: Path) -> dict[str, str]:
    """The running replyd uses the database the pipe writes to."""
    return {"REPLYD_DATABASE_URL": f"sqlite:///{home / 'db' / 'replyd.db'}"}


@pytest.fixture
def postfix(home: Path, settings: Settings) -> Iterator[Postfix]:
    """The running throwaway Postfix, stopped afterwards."""
    instance = Postfix(home, settings.database_url)
    instance.postfix("check")
    instance.postfix("start")
    try:
        wait_for(lambda: "daemon started" in instance.log(), what="Postfix to start")
        yield instance
    finally:
        instance.postfix("stop")


def test_reply_through_postfix_pipe_becomes_a_comment(
    postfix: Postfix, server: RunningServer, blog: Blog
) -> None:
    """Postfix hands the reply to `replyd ingest` (status=sent); it is stored via=pipe and
    published."""
    address = blog.address(blog.post(), READER)
    postfix.send(address, reply_message(READER, address, "Hello by way of Postfix."))
    wait_for(lambda: "relay=replyd" in postfix.log(), timeout=30, what="the pipe delivery")
    assert "status=sent" in postfix.log(), postfix.log()
    [row] = inbound_rows(blog.parts)
    assert (row.via, row.sender, row.recipient) == ("pipe", READER, address)
    wait_for(lambda: comments(blog.parts), what="the comment")
    assert comments(blog.parts)[0].body == "Hello by way of Postfix."


def test_bad_reply_address_bounces_with_our_sentence(
    postfix: Postfix, server: RunningServer, blog: Blog
) -> None:
    """Exit 67 makes Postfix bounce the message (dsn 5.1.1), quoting our sentence."""
    address = blog.address(blog.post(), READER)
    local, domain = address.split("@")
    tampered = f"{local[:-1]}{'a' if local[-1] != 'a' else 'b'}@{domain}"
    postfix.send(tampered, reply_message(READER, tampered, "hi"))
    wait_for(lambda: "relay=replyd" in postfix.log(), timeout=30, what="the pipe delivery")
    line = next(x for x in postfix.log().splitlines() if "relay=replyd" in x)
    assert "status=bounced" in line and "dsn=5.1.1" in line, line
    assert "this reply address is not valid" in line
    assert inbound_rows(blog.parts) == []


def test_store_down_defers_and_the_queue_delivers_later(
    postfix: Postfix, server: RunningServer, blog: Blog, settings: Settings
) -> None:
    """Exit 75 makes Postfix defer the message (it keeps it); flushed once the store is
    back, it is stored and published: nothing lost."""
    address = blog.address(blog.post(), READER)
    with store_down(settings):
        postfix.send(address, reply_message(READER, address, "Kept by Postfix meanwhile."))
        wait_for(lambda: "status=deferred" in postfix.log(), timeout=30, what="the deferral")
    postfix.postfix("flush")
    wait_for(lambda: "status=sent" in postfix.log(), timeout=30, what="the retried delivery")
    wait_for(lambda: comments(blog.parts), what="the comment")
    assert [row.via for row in inbound_rows(blog.parts)] == ["pipe"]
