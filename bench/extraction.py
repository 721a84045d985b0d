"""Times reply extraction on quoted threads of growing depth, beside talon alone."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.extraction.extract import extract_reply
from service.extraction.talon_compat import talon_quotations

DEPTHS = (1, 10, 100, 1000)


def plain_thread(depth: int) -> str:
    """A top-posted plain-text reply quoting a thread ``depth`` messages deep."""
    parts: list[str] = []
    for level in range(depth + 1):
        prefix = "> " * level
        parts.append(
            f"{prefix}Message number {depth - level}, with a link <http://example.org/{level}>.\n"
            f"{prefix}\n"
            f"{prefix}On Tue, Mar 3, 2026 at 10:{level % 60:02d} AM, Person {level} "
            f"<p{level}@example.org> wrote:\n{prefix}\n"
        )
    return "".join(parts)


def html_thread(depth: int) -> str:
    """The same thread as Gmail-style HTML: nested gmail_quote blockquotes."""
    html = "<div>The first message.</div>"
    for level in range(depth):
        html = (
            f"<div dir=ltr>Message number {level + 1}.</div><div class=gmail_quote>"
            f"<div class=gmail_attr>On Tue, Mar 3, 2026, Person {level} wrote:</div>"
            f"<blockquote class=gmail_quote>{html}</blockquote></div>"
        )
    return f"<html><body>{html}</body></html>"


def median_us(func: Callable[[], object], budget: float) -> float:
    """Median wall time of ``func`` in microseconds, over as many runs as ``budget`` allows."""
    times: list[float] = []
    deadline = time.perf_counter() + budget
    while len(times) < 3 or (time.perf_counter() < deadline and len(times) < 200):
        started = time.perf_counter()
        func()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


def main() -> None:
    """Print median µs per message for each depth: ours and talon's, plain text and HTML."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--budget", type=float, default=1.0, help="seconds per measurement")
    args = parser.parse_args()
    quotations = talon_quotations()
    try:
        import service.extraction.html_text  # noqa: F401
    except ImportError:
        has_html = False
    else:
        has_html = True
    print(f"{'depth':>6} {'chars':>9} {'replyd text µs':>15} {'talon text µs':>14}", end="")
    print(f" {'replyd html µs':>15} {'talon html µs':>14}" if has_html else "")
    for depth in DEPTHS:
        text = plain_thread(depth)
        ours = median_us(lambda text=text: extract_reply(text), args.budget)
        theirs = median_us(lambda text=text: quotations.extract_from_plain(text), args.budget)
        row = f"{depth:>6} {len(text):>9} {ours:>15.0f} {theirs:>14.0f}"
        if has_html:
            html = html_thread(depth)
            ours_html = median_us(lambda html=html: extract_reply(None, html), args.budget)
            theirs_html = median_us(
                lambda html=html: quotations.extract_from_html(html), args.budget
            )
            row += f" {ours_html:>15.0f} {theirs_html:>14.0f}"
        print(row)
    if not has_html:
        print("(HTML skipped: service.extraction.html_text is not available yet)")


if __name__ == "__main__":
    main()
