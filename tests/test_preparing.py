"""The preparing process: a worker's claimed mail parsed and extracted in a child process."""

from __future__ import annotations

import hashlib
import os
import signal
from collections.abc import Iterator

import pytest

from service.inbound.queue import MAX_ATTEMPTS, ClaimedMail
from service.runtime.components import Components
from service.runtime.preparing import PreparingProcess
from service.runtime.settings import Settings
from tests.conftest import Blog, reply_message, wait_for

READER = "reader@example.org"


def claimed(number: int, raw: bytes, recipient: str, attempts: int = 1) -> ClaimedMail:
    """An inbound row as a worker holds it after its claim."""
    return ClaimedMail(number, raw, READER, recipient, hashlib.sha256(raw).hexdigest(), attempts)


@pytest.fixture
def mails(blog: Blog) -> list[ClaimedMail]:
    """A reply with a quote and a signature, an auto-reply, a message with no body at all,
    and one that crashed its worker too often."""
    address = blog.address(blog.post(), READER)
    reply = reply_message(
        READER, address, "Agreed, and thanks.\n\n-- \nRita\n\nOn Monday, Ann wrote:\n> Hello\n"
    )
    vacation = reply_message(
        READER, address, "I am away.", headers={"Auto-Submitted": "auto-replied"}
    )
    bare = b"From: reader@example.org\r\nSubject: nothing\r\n\r\n"
    return [
        claimed(1, reply, address),
        claimed(2, vacation, address),
        claimed(3, bare, address),
        claimed(4, reply, address, attempts=MAX_ATTEMPTS + 1),
    ]


@pytest.fixture
def preparing(settings: Settings, parts: Components) -> Iterator[PreparingProcess]:
    """A preparing process for the test's settings, closed afterwards."""
    process = PreparingProcess(settings, parts.preparer())
    process.start()
    yield process
    process.close()


def child_pid(process: PreparingProcess) -> int:
    """The pid of the process's current child."""
    assert process._child is not None
    return process._child.pid


class TestPreparingProcess:
    def test_the_child_prepares_as_the_worker_would(
        self, preparing: PreparingProcess, parts: Components, mails: list[ClaimedMail]
    ) -> None:
        """Every kind of message comes back from the child as this process prepares it."""
        here = parts.preparer().prepare_all(mails)
        there = preparing.prepare(mails)
        assert there == here
        assert there[0].mail is not mails[0]  # it made the round trip through the pipes
        assert here[0].extraction is not None and here[0].extraction.reply == "Agreed, and thanks."
        assert here[1].ignore and here[3].failed  # the others are more than replies

    def test_a_dead_child_costs_no_message(
        self, preparing: PreparingProcess, parts: Components, mails: list[ClaimedMail]
    ) -> None:
        """The child killed between batches: the next batch is prepared here all the same,
        and the one after by a new child."""
        first = child_pid(preparing)
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: preparing._child is not None and preparing._child.poll() is not None)
        expected = parts.preparer().prepare_all(mails)
        assert preparing.prepare(mails) == expected
        assert preparing.prepare(mails) == expected
        assert child_pid(preparing) != first

    def test_the_child_leaves_with_its_input(self, preparing: PreparingProcess) -> None:
        """Closing the child's input (the worker stopping, or dying) makes it exit."""
        child = preparing._child
        assert child is not None
        preparing.close()
        assert child.poll() == 0
