"""Parsing and extraction of claimed mail in a process beside the worker that records it."""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from service.inbound.prepare import Prepared, Preparer
from service.inbound.queue import ClaimedMail
from service.runtime.settings import Settings

log = logging.getLogger(__name__)

_LENGTH = struct.Struct(">Q")  # each frame on the pipes: its length, then a pickle
STOP_SECONDS = 10.0  # how long a preparing process may take to leave once told to


def _send(stream: IO[bytes], value: object) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(data)) + data)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    """The next frame's value; EOFError when the other side has gone."""
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        raise EOFError("the other process closed the pipe")
    size = _LENGTH.unpack(head)[0]
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the other process closed the pipe mid-frame")
    # Only our own processes write to these pipes: the worker and the child it started.
    return pickle.loads(data)


class PreparingProcess:
    """A child process that parses, classifies and extracts claimed mail for one worker.

    The worker records one batch while the child prepares the next, on the other core; alone,
    one worker process spends about half of each message on what the child does. The child
    gets the settings, then batches of claimed mail, and answers each with its Prepared
    values. Should the child fail or die, the batch is prepared in the worker as before and a
    new child is started for the next one; the child leaves when its input closes, so it
    never outlives the worker, even a SIGKILLed one.

    `prepare` blocks (run it in a thread) and takes one batch at a time.
    """

    def __init__(self, settings: Settings, preparer: Preparer) -> None:
        self.settings = settings
        self.preparer = preparer  # the fallback, in this process
        self._child: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def prepare(self, mails: list[ClaimedMail]) -> list[Prepared]:
        """The batch prepared by the child; by this process if the child cannot."""
        with self._lock:
            try:
                child = self._child or self._start()
                assert child.stdin is not None and child.stdout is not None
                _send(child.stdin, mails)
                prepared: list[Prepared] = _receive(child.stdout)
                return prepared
            except (OSError, EOFError, pickle.PickleError) as exc:
                log.warning(
                    "the preparing process failed (%s); preparing %s message(s) here",
                    exc,
                    len(mails),
                )
                self._stop_child()
        return self.preparer.prepare_all(mails)

    def start(self) -> None:
        """Start the child now, so it has loaded its libraries before the first batch."""
        with self._lock:
            if self._child is None:
                self._start()

    def close(self) -> None:
        """Tell the child to leave and wait for it."""
        with self._lock:
            self._stop_child()

    def _start(self) -> subprocess.Popen[bytes]:
        # The child imports this package as the worker did, installed or from a checkout.
        package_root = str(Path(__file__).resolve().parent.parent)
        path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
        child = subprocess.Popen(
            [sys.executable, "-m", "service.runtime.preparing"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,  # its log lines go where the worker's go
            env={**os.environ, "PYTHONPATH": path},
        )
        assert child.stdin is not None
        self._child = child
        _send(child.stdin, self.settings)
        log.info("preparing process started (pid %s)", child.pid)
        return child

    def _stop_child(self) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        for stream in (child.stdin, child.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        try:
            child.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def main() -> None:
    """The child's side: read the settings, then prepare each batch until the input closes."""
    # The worker says when to leave (by closing our input); Ctrl-C in a terminal is its call.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The pipes carry frames only: anything printed goes to stderr, with the log.
    requests = sys.stdin.buffer
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    from service.runtime.components import Components
    from service.runtime.logs import configure_logging

    try:
        settings: Settings = _receive(requests)
    except EOFError:
        return
    configure_logging(settings)
    preparer = Components.build(settings, durable=False).preparer()
    while True:
        try:
            mails: list[ClaimedMail] = _receive(requests)
        except EOFError:
            return  # the worker is done with us, or gone
        _send(answers, preparer.prepare_all(mails))


if __name__ == "__main__":
    main()
