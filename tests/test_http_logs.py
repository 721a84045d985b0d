"""Structured logs: REPLYD_LOG_FORMAT=json gives one JSON object per line, text stays text."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.runtime.logs import JsonFormatter, configure_logging
from tests.conftest import make_settings


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    """Put the root logger's handlers and level back after the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


class TestConfigureLogging:
    def test_json_lines(self, tmp_path: Path, restore_root_logger: None) -> None:
        """With log_format=json each record is one JSON line with level, logger and extras."""
        settings = make_settings(tmp_path, REPLYD_LOG_FORMAT="json")
        stream = io.StringIO()
        configure_logging(settings, stream=stream)
        log = logging.getLogger("replyd.test")
        log.info("stored %s rows", 2, extra={"inbound_id": 7})
        try:
            raise ValueError('boom "quoted"\nsecond line')
        except ValueError:
            log.exception("processing failed")
        lines = stream.getvalue().splitlines()
        assert len(lines) == 2
        first, second = (json.loads(line) for line in lines)
        assert first["message"] == "stored 2 rows"
        assert first["level"] == "info" and first["logger"] == "replyd.test"
        assert first["inbound_id"] == 7
        assert first["time"].endswith("+00:00")
        assert second["level"] == "error"
        assert "ValueError: boom" in second["exception"]

    def test_text_format_by_default(self, tmp_path: Path, restore_root_logger: None) -> None:
        """Without REPLYD_LOG_FORMAT the lines are human-readable text."""
        stream = io.StringIO()
        configure_logging(make_settings(tmp_path), stream=stream)
        logging.getLogger("replyd.test").warning("hello")
        assert stream.getvalue().rstrip().endswith("WARNING replyd.test: hello")

    def test_unserialisable_extra_is_logged_as_text(self) -> None:
        """An extra JSON cannot hold is written as its text instead of breaking the line."""
        record = logging.LogRecord("x", logging.INFO, "f.py", 1, "msg", None, None)
        record.path = Path("/tmp/x")
        assert json.loads(JsonFormatter().format(record))["path"] == "/tmp/x"
