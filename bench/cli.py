"""Times `replyd post list --json` beside `python -c "import sqlalchemy.orm"` (target ratio 1.4)."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_RATIO = 1.4
POSTS = 5


def wall_time(command: list[str], env: dict[str, str]) -> float:
    """Seconds one run of `command` takes from start to exit; it must succeed."""
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def seed(replyd: str, env: dict[str, str]) -> None:
    """A migrated SQLite database with a few posts, made through the CLI itself."""
    subprocess.run([replyd, "db", "upgrade"], env=env, check=True, stdout=subprocess.DEVNULL)
    for number in range(POSTS):
        subprocess.run(
            [
                *(replyd, "post", "add", "--id", f"post-{number}", "--title", f"Post {number}"),
                *("--url", f"https://blog.example.org/post-{number}"),
                *("--author-email", "author@example.org", "--author-name", "Ann Author"),
            ],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )


def main() -> int:
    """Print the median wall time of each command over the runs, and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15, help="runs of each command (default 15)")
    parser.add_argument(
        "--replyd",
        default=str(Path(sys.executable).parent / "replyd"),
        help="the installed console script (default: the one beside this Python)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help=f"exit with status 1 when the ratio is above {TARGET_RATIO}",
    )
    args = parser.parse_args()
    python = str(Path(args.replyd).parent / "python")
    with tempfile.TemporaryDirectory(prefix="replyd-bench-cli-") as workdir:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("REPLYD_")},
            "REPLYD_VAR_DIR": workdir,
        }
        # As an installed replyd runs: with its compiled bytecode cached (pip writes it for a
        # normal install, the first run for an editable one), not compiled again every time.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        seed(args.replyd, env)
        cli = [args.replyd, "post", "list", "--json"]
        baseline = [python, "-c", "import sqlalchemy.orm"]
        # One untimed run each: compiled bytecode and the page cache are warm for all below.
        wall_time(cli, env)
        wall_time(baseline, env)
        cli_times: list[float] = []
        baseline_times: list[float] = []
        for _ in range(args.runs):
            # In turns, so a slower stretch of the machine weighs on both alike.
            cli_times.append(wall_time(cli, env))
            baseline_times.append(wall_time(baseline, env))
    cli_median = statistics.median(cli_times)
    baseline_median = statistics.median(baseline_times)
    ratio = cli_median / baseline_median
    print(f"runs of each, in turns: {args.runs}")
    print(f"replyd post list --json ({POSTS} posts, SQLite): {cli_median * 1000:.0f} ms median")
    print(f'python -c "import sqlalchemy.orm":            {baseline_median * 1000:.0f} ms median')
    verdict = "met" if ratio <= TARGET_RATIO else "missed"
    print(f"ratio: {ratio:.2f} (target {TARGET_RATIO}: {verdict})")
    return 1 if args.check and ratio > TARGET_RATIO else 0


if __name__ == "__main__":
    sys.exit(main())
