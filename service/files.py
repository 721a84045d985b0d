"""Files replyd writes under its var dir are its own user's only: umask 077, 0600 and 0700."""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_UMASK = 0o077
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def keep_files_private() -> None:
    """Make every file and folder this process (and its children) creates private.

    The database holds raw mail and people's addresses, the Maildir the mail sent to them,
    var/secret the key that signs every token: none of it is for other local users.
    """
    os.umask(PRIVATE_UMASK)


def private_dir(path: Path) -> None:
    """Create a folder (and its missing parents) readable by this user only."""
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)


def create_private_file(path: Path) -> bool:
    """Create an empty file with mode 0600 unless it exists; True when it was created.

    Whatever the umask: a SQLite database made here gives its -wal and -shm files the
    same mode (SQLite copies it), so they are private too.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        return False
    except OSError:
        return False  # a folder we cannot write to: whoever opens the file says so
    try:
        os.fchmod(fd, PRIVATE_FILE)  # the umask can only take bits away; this says exactly
    finally:
        os.close(fd)
    return True
