"""Loads talon's quotation code without its ML signature model, and calls it within bounds."""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from typing import Any

# talon's plain-text path turns superlinear on long inputs; it is only handed a bounded prefix.
TALON_MAX_CHARS = 64_000
TALON_MAX_LINES = 1000


def _stub_signature_package() -> None:
    """Register ``talon.signature`` as a bare package so importing talon skips its ML model.

    ``talon/__init__.py`` imports ``talon.signature``, whose ``__init__`` loads a scikit-learn
    classifier that fails on current scikit-learn and costs seconds. A bare module with the
    real ``__path__`` lets ``talon.signature.bruteforce`` still be imported on its own.
    """
    if "talon.signature" in sys.modules:
        return
    spec = importlib.util.find_spec("talon")  # locates the package without executing it
    if spec is None or not spec.submodule_search_locations:
        return
    package_dir = next(iter(spec.submodule_search_locations))
    stub = types.ModuleType("talon.signature")
    stub.__path__ = [os.path.join(package_dir, "signature")]
    stub.__package__ = "talon.signature"
    sys.modules["talon.signature"] = stub


def talon_quotations() -> Any:
    """Return the ``talon.quotations`` module, imported lazily and without the ML model."""
    _stub_signature_package()
    from talon import quotations  # deferred: importing talon costs about a second

    return quotations


def talon_bruteforce() -> Any:
    """Return ``talon.signature.bruteforce`` (pattern-based signatures), without the ML model."""
    _stub_signature_package()
    from talon.signature import bruteforce

    return bruteforce


def talon_reply(text: str) -> str | None:
    """talon's reply for a plain-text body, or None when the body is too big to hand it."""
    if len(text) > TALON_MAX_CHARS or text.count("\n") >= TALON_MAX_LINES:
        return None
    try:
        reply: str = talon_quotations().extract_from_plain(text)
    except Exception:  # talon is a second opinion; a crash in it must not lose the reply
        return None
    return reply
