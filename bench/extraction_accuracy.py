"""Scores reply extraction on folders of NAME.input (or NAME.eml) / NAME.expected pairs."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.extraction.extract import extract_reply

_BLANK_RUNS = re.compile(r"\n{3,}")


def normalized(text: str) -> str:
    """Text as compared: Unix line ends, no trailing spaces, blank-line runs of one, stripped."""
    unix = text.replace("\r\n", "\n").replace("\r", "\n")
    trimmed = "\n".join(line.rstrip() for line in unix.split("\n"))
    return _BLANK_RUNS.sub("\n\n", trimmed).strip()


def read_text(path: Path) -> str:
    """A corpus file as text, undecodable bytes replaced."""
    return path.read_bytes().decode("utf-8", errors="replace")


def extracted(case: Path, *, quotes_only: bool) -> str:
    """The reply extracted from a bare body (.input) or a whole message (.eml)."""
    if case.suffix == ".eml":
        from service.inbound.parse import parse_message

        message = parse_message(case.read_bytes())
        return extract_reply(message.text, message.html, quotes_only=quotes_only).reply
    return extract_reply(read_text(case), quotes_only=quotes_only).reply


def score_set(
    folder: Path, *, quotes_only: bool, show: int, messages: bool = False
) -> tuple[int, int]:
    """(exact matches, cases) for one folder; prints up to ``show`` failing case names."""
    cases = sorted(folder.glob("*.eml" if messages else "*.input"))
    exact = 0
    failing: list[str] = []
    for case in cases:
        expected = normalized(read_text(case.with_suffix(".expected")))
        got = normalized(extracted(case, quotes_only=quotes_only))
        if got == expected:
            exact += 1
        else:
            failing.append(case.stem)
    pct = 100.0 * exact / max(1, len(cases))
    print(f"{folder.name:32} {len(cases):5} {pct:6.1f}%")
    for name in failing[:show]:
        print(f"  failing: {name}")
    return exact, len(cases)


def main() -> None:
    """Print the exact-match percentage of each folder and of all together."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dirs", nargs="+", type=Path, metavar="DIR")
    parser.add_argument("--quotes-only", action="store_true", help="keep signatures")
    parser.add_argument("--show", type=int, default=0, help="list up to N failing cases per set")
    parser.add_argument(
        "--messages", action="store_true", help="score whole messages (NAME.eml), not bodies"
    )
    args = parser.parse_args()
    print(f"{'set':32} {'cases':>5} {'exact':>7}")
    total_exact = total = 0
    for folder in args.dirs:
        exact, cases = score_set(
            folder, quotes_only=args.quotes_only, show=args.show, messages=args.messages
        )
        total_exact += exact
        total += cases
    print(f"{'all':32} {total:5} {100.0 * total_exact / max(1, total):6.1f}%")


if __name__ == "__main__":
    main()
