"""Times reply extraction: quoted threads of growing depth beside talon, time per KB from 1 KB
to 1 MB for each shape of reply (linearity), and a 100-deep thread against its 5 ms budget."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.extraction.attribution import ends_with_wrote
from service.extraction.extract import extract_reply
from service.extraction.talon_compat import talon_quotations

DEPTHS = (1, 10, 100, 1000)
SIZES_KB = (1, 4, 16, 64, 256, 1024)
DEEP_THREAD = 100
DEEP_THREAD_BUDGET_MS = 5.0
# Past this spread between the smallest and largest time per KB, growth is not linear.
FLAT_RATIO = 2.0


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


_PARAGRAPH = (
    "The digest arrives on Mondays at 3 AM, which is early; could it follow the reader's "
    "time zone, with a link <https://blog.example.org/posts/{n}>?"
)
_ATTRIBUTION = "On Tue, Mar 12, 2024 at 9:41 AM Ann Author <ann@example.org> wrote:"


def _paragraphs(size_kb: int) -> list[str]:
    """Distinct quoted paragraphs adding up to about ``size_kb`` kilobytes."""
    out: list[str] = []
    total = 0
    while total < size_kb * 1024:
        out.append(_PARAGRAPH.format(n=len(out)))
        total += len(out[-1]) + 4
    return out


def top_posted_text(size_kb: int) -> str:
    """A short reply above a quoted message of about ``size_kb`` KB."""
    quote = "\n>\n".join(f"> {p}" for p in _paragraphs(size_kb))
    return f"Sounds good to me.\n\nBea\n\n{_ATTRIBUTION}\n\n{quote}\n"


def inline_text(size_kb: int) -> str:
    """Answers between the quoted paragraphs of a message of about ``size_kb`` KB."""
    pieces = [f"> {p}\n\nAnswer {n}.\n" for n, p in enumerate(_paragraphs(size_kb))]
    return f"{_ATTRIBUTION}\n" + "\n".join(pieces)


def bottom_posted_text(size_kb: int) -> str:
    """A reply below a quoted message of about ``size_kb`` KB."""
    quote = "\n>\n".join(f"> {p}" for p in _paragraphs(size_kb))
    return f"{_ATTRIBUTION}\n{quote}\n\nSounds good to me.\n\nBea\n"


def top_posted_html(size_kb: int) -> str:
    """Gmail HTML: a short reply above a gmail_quote of about ``size_kb`` KB."""
    quote = "".join(f"<div>{p}</div><div><br></div>" for p in _paragraphs(size_kb))
    return (
        '<div dir="ltr">Sounds good to me.<div><br></div><div>Bea</div></div>'
        f'<div class="gmail_quote"><div class="gmail_attr">{_ATTRIBUTION}</div>'
        f'<blockquote class="gmail_quote">{quote}</blockquote></div>'
    )


def inline_html(size_kb: int) -> str:
    """Gmail HTML: answers between the blockquotes of a split gmail_quote."""
    pieces = "".join(
        f'<blockquote class="gmail_quote"><div>{p}</div></blockquote><div>Answer {n}.</div>'
        for n, p in enumerate(_paragraphs(size_kb))
    )
    return f'<div class="gmail_quote"><div class="gmail_attr">{_ATTRIBUTION}</div>{pieces}</div>'


SHAPES: dict[str, tuple[Callable[[int], str], bool]] = {
    "text top-posted": (top_posted_text, False),
    "text inline answers": (inline_text, False),
    "text bottom-posted": (bottom_posted_text, False),
    "html top-posted": (top_posted_html, True),
    "html inline answers": (inline_html, True),
}


def median_us(func: Callable[[], object], budget: float) -> float:
    """Median CPU time of ``func`` in microseconds, over as many runs as ``budget`` allows.

    CPU time of this thread, not wall time: other work on a shared machine must not show up
    as extraction time.
    """
    times: list[float] = []
    deadline = time.perf_counter() + budget
    while len(times) < 3 or (time.perf_counter() < deadline and len(times) < 200):
        started = time.thread_time()
        func()
        times.append(time.thread_time() - started)
    return statistics.median(times) * 1e6


def _extract(body: str, html: bool) -> object:
    # Each run sees its lines for the first time, as a worker does with each new message.
    ends_with_wrote.cache_clear()
    return extract_reply(None, body) if html else extract_reply(body)


def depth_table(budget: float) -> None:
    """Median µs per message for each thread depth: ours and talon's, text and HTML."""
    quotations = talon_quotations()
    print(f"{'depth':>6} {'chars':>9} {'replyd text µs':>15} {'talon text µs':>14}", end="")
    print(f" {'replyd html µs':>15} {'talon html µs':>14}")
    for depth in DEPTHS:
        text = plain_thread(depth)
        html = html_thread(depth)
        ours = median_us(partial(_extract, text, False), budget)
        theirs = median_us(partial(quotations.extract_from_plain, text), budget)
        ours_html = median_us(partial(_extract, html, True), budget)
        theirs_html = median_us(partial(quotations.extract_from_html, html), budget)
        print(
            f"{depth:>6} {len(text):>9} {ours:>15.0f} {theirs:>14.0f}"
            f" {ours_html:>15.0f} {theirs_html:>14.0f}"
        )


def linearity_table(budget: float) -> bool:
    """µs per KB of message for each shape and size; True when every row stays flat."""
    flat = True
    header = "".join(f"{f'{kb} KB':>9}" for kb in SIZES_KB)
    print(f"\n{'µs per KB':<22}{header}  growth")
    for name, (make, html) in SHAPES.items():
        per_kb: list[float] = []
        for kb in SIZES_KB:
            body = make(kb)
            runs = budget if kb < 256 else budget * 2
            micros = median_us(partial(_extract, body, html), runs)
            per_kb.append(micros / (len(body.encode("utf-8")) / 1024))
        # Fixed costs per message (parsing, talon on small bodies) weigh most at 1 KB; what
        # must not happen is a larger message costing more per KB than a smaller one.
        spread = max(
            later / earlier for i, earlier in enumerate(per_kb) for later in per_kb[i + 1 :]
        )
        spread = max(spread, 1.0)
        flat = flat and spread <= FLAT_RATIO
        cells = "".join(f"{value:>9.1f}" for value in per_kb)
        print(f"{name:<22}{cells}  {spread:>6.2f}{'' if spread <= FLAT_RATIO else '  NOT FLAT'}")
    return flat


def deep_thread_check(budget: float) -> bool:
    """Milliseconds for a 100-deep thread, text and HTML; True when both are in budget."""
    ok = True
    print(f"\n{DEEP_THREAD}-deep thread (budget {DEEP_THREAD_BUDGET_MS:.0f} ms):")
    for label, body, html in (
        ("text", plain_thread(DEEP_THREAD), False),
        ("html", html_thread(DEEP_THREAD), True),
    ):
        millis = median_us(partial(_extract, body, html), budget) / 1000
        within = millis < DEEP_THREAD_BUDGET_MS
        ok = ok and within
        print(f"  {label}: {millis:.2f} ms ({len(body) // 1024} KB) {'ok' if within else 'OVER'}")
    return ok


def main() -> None:
    """Print the depth table, the linearity table and the deep-thread check."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--budget", type=float, default=1.0, help="seconds per measurement")
    parser.add_argument("--skip-depths", action="store_true", help="skip the talon comparison")
    args = parser.parse_args()
    if not args.skip_depths:
        depth_table(args.budget)
    flat = linearity_table(args.budget)
    deep = deep_thread_check(args.budget)
    verdict = {True: "yes", False: "NO"}
    print(f"\nlinear: {verdict[flat]}; {DEEP_THREAD}-deep thread in budget: {verdict[deep]}")


if __name__ == "__main__":
    main()
