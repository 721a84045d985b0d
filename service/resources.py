"""Where replyd's templates are: the checkout's `templates/`, or the copy an install ships."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
# Languages with a mail template set under templates/<language>/ (English is templates/ itself).
LANGUAGES = ("en", "de")


def templates_dir() -> Path:
    """The folder of jinja2 templates (mail at its top, pages in `web/`)."""
    checkout = _PACKAGE.parent / "templates"
    if checkout.is_dir():
        return checkout
    # A non-editable install maps the top-level templates/ to service/templates (pyproject).
    return _PACKAGE / "templates"
