"""Applies each break of tests/mutants/breaks.py to a fresh copy of the tree and runs its tests.

    python -m tests.mutants.run            every break (what `make mutants` runs)
    python -m tests.mutants.run NAME ...   only these breaks (or --only NAME, repeatable)
    python -m tests.mutants.run --list     the breaks by promise, without running anything
    python -m tests.mutants.run --jobs 2   two breaks at once (on a machine with cores to spare)

First the untouched copy must be the code that runs (a copy's `service` shadows the checkout's
only when its folder comes first on PYTHONPATH, which is checked), and the breaks' tests must
pass on it. Then, for each break, one line: `NAME: caught by <test>`, `NAME: SURVIVED`, or why
it could not be tried (NO LONGER APPLIES, NOT RUN, ...); last `caught N of M`. The exit status
is 0 only when every break was caught.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tests.mutants.breaks import BREAKS, PROMISES, Break

ROOT = Path(__file__).resolve().parents[2]
# What a copy holds: enough to import replyd and run its tests.
COPIED = ("service", "tests", "templates", "fixtures", "pyproject.toml")
PYTEST = ("-m", "pytest", "-x", "-q", "-p", "no:randomly", "-p", "no:cacheprovider")
_NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_OUTCOME = re.compile(r"^(FAILED|ERROR) (\S+)")


class BreakError(Exception):
    """A break cannot be applied to the code as it is now."""


def scope_lines(tree: ast.Module, scope: str) -> tuple[int, int]:
    """The first and last line (1-based) of the definition or assignment `scope` names."""
    body: list[ast.stmt] = tree.body
    node: ast.stmt | None = None
    for part in scope.split("."):
        node = next((n for n in body if _defines(n, part)), None)
        if node is None:
            raise BreakError(f"no {part!r} where {scope!r} should be")
        body = getattr(node, "body", [])
    assert node is not None and node.end_lineno is not None
    decorators = getattr(node, "decorator_list", [])
    first = min([node.lineno] + [d.lineno for d in decorators])
    return first, node.end_lineno


def _defines(node: ast.stmt, name: str) -> bool:
    """Whether a statement defines `name`: a def, a class, or an assignment to it."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return node.name == name
    if isinstance(node, ast.Assign):
        return any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
    if isinstance(node, ast.AnnAssign):
        return isinstance(node.target, ast.Name) and node.target.id == name
    return False


def broken_source(source: str, item: Break) -> str:
    """The file's source with the break made; BreakError when it no longer applies."""
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        raise BreakError(f"{item.file} does not parse: {error}") from error
    first, last = scope_lines(tree, item.scope)
    lines = source.splitlines(keepends=True)
    before, inside, after = lines[: first - 1], "".join(lines[first - 1 : last]), lines[last:]
    found = inside.count(item.find)
    if found != 1:
        where = "not found" if found == 0 else f"found {found} times"
        raise BreakError(f"snippet {where} in {item.file}:{item.scope}: {item.find!r}")
    changed = "".join(before) + inside.replace(item.find, item.replace) + "".join(after)
    try:
        compile(changed, item.file, "exec")
    except SyntaxError as error:
        raise BreakError(f"{item.file} does not compile with the break: {error}") from error
    return changed


def check_list(breaks: Iterable[Break]) -> list[str]:
    """What is wrong with the list itself: names, promises, promises without a break."""
    problems: list[str] = []
    seen: set[str] = set()
    covered: set[str] = set()
    for item in breaks:
        if not _NAME.match(item.name):
            problems.append(f"{item.name!r}: a name is lower-case words joined by '-'")
        if item.name in seen:
            problems.append(f"{item.name!r}: two breaks of that name")
        seen.add(item.name)
        if item.promise not in PROMISES:
            problems.append(f"{item.name}: unknown promise {item.promise!r} (see PROMISES)")
        covered.add(item.promise)
        if not item.tests:
            problems.append(f"{item.name}: names no test to catch it")
    problems += [f"promise {key!r} has no break" for key in PROMISES if key not in covered]
    return problems


def copy_tree(destination: Path) -> Path:
    """A copy of what the tests need, without caches; returns its folder."""
    destination.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".hypothesis")
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=ignore)
        else:
            shutil.copy2(source, destination / name)
    return destination


def environment(copy: Path) -> dict[str, str]:
    """The environment the copy's tests run in: its own folder first on the import path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(copy), env.get("PYTHONPATH")]))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def imports_the_copy(copy: Path) -> str | None:
    """None when `service` and `tests` import from the copy; otherwise where they come from."""
    probe = "import service, tests; print(service.__file__); print(tests.__file__)"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=copy,
        env=environment(copy),
        capture_output=True,
        text=True,
        check=False,
    )
    places = done.stdout.split()
    if done.returncode != 0 or len(places) != 2:
        return done.stderr.strip() or "the import failed"
    outside = [p for p in places if not Path(p).resolve().is_relative_to(copy.resolve())]
    return ", ".join(outside) or None


@dataclass(frozen=True)
class Run:
    """What running some tests in a copy gave."""

    code: int | None  # pytest's exit status; None when it ran out of time
    caught_by: str  # the first failing test, or ""
    summary: str  # pytest's last line
    output: str


def run_tests(copy: Path, tests: Iterable[str], timeout: float) -> Run:
    """Run pytest on `tests` inside the copy, stopping at the first failure."""
    process = subprocess.Popen(
        [sys.executable, *PYTEST, *tests],
        cwd=copy,
        env=environment(copy),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # the tests' own servers and workers go with it
    )
    try:
        output, _ = process.communicate(timeout=timeout)
        code: int | None = process.returncode
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        code = None
    lines = output.strip().splitlines()
    caught = next((m.group(2) for line in lines if (m := _OUTCOME.match(line))), "")
    return Run(code, caught, lines[-1] if lines else "", output)


def verdict(item: Break, run: Run) -> tuple[bool, str]:
    """Whether the break was caught, and the line that says so."""
    if run.code is None:
        return False, f"{item.name}: TIMED OUT after {item.timeout:g}s (not caught)"
    if run.code == 1 and run.caught_by:
        return True, f"{item.name}: caught by {run.caught_by}"
    if run.code == 0:
        if " passed" not in run.summary:  # everything skipped: nothing was tried
            return False, f"{item.name}: NOT RUN ({run.summary})"
        return False, f"{item.name}: SURVIVED ({run.summary})"
    return False, f"{item.name}: TESTS COULD NOT RUN (pytest exit {run.code}: {run.summary})"


def missing_needs(item: Break) -> str | None:
    """Why the break's tests cannot run here, or None."""
    if "postgres" in item.needs and not os.environ.get("REPLYD_TEST_POSTGRES_URL"):
        return "needs PostgreSQL: set REPLYD_TEST_POSTGRES_URL"
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the breaks; 0 when every one was caught."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="only these breaks")
    parser.add_argument(
        "--only", action="append", default=[], metavar="NAME", help="only this break"
    )
    parser.add_argument("--list", action="store_true", help="list the breaks and stop")
    parser.add_argument("--keep", action="store_true", help="keep the copies (their paths print)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the untouched run")
    parser.add_argument("--show", action="store_true", help="print the output of survivors")
    parser.add_argument("--why", action="store_true", help="print how each break was caught")
    parser.add_argument(
        "--jobs", type=int, default=1, metavar="N", help="try N breaks at once (default 1)"
    )
    options = parser.parse_args(argv)
    options.names = [*options.names, *options.only]

    problems = check_list(BREAKS)
    for problem in problems:
        print(f"breaks.py: {problem}")
    if problems:
        return 2
    chosen = [b for b in BREAKS if not options.names or b.name in options.names]
    unknown = set(options.names) - {b.name for b in BREAKS}
    if unknown:
        print(f"no such break: {', '.join(sorted(unknown))}")
        return 2
    if options.list:
        for key, promise in PROMISES.items():
            print(f"{key}: {promise}")
            for item in chosen:
                if item.promise == key:
                    print(f"    {item.name}: {item.file}:{item.scope} -> {', '.join(item.tests)}")
        return 0

    work = Path(tempfile.mkdtemp(prefix="replyd-mutants-"))
    try:
        return _run_all(chosen, work, options)
    finally:
        if options.keep:
            print(f"copies kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _run_all(chosen: list[Break], work: Path, options: argparse.Namespace) -> int:
    """The body of `main`: preflight, baseline, then each break in a copy of its own."""
    started = time.monotonic()
    pristine = copy_tree(work / "untouched")
    wrong = imports_the_copy(pristine)
    if wrong is not None:
        print(f"the copy's code would not be the code that runs: {wrong}")
        return 2
    runnable = [item for item in chosen if missing_needs(item) is None]
    if not options.no_baseline and runnable:
        tests = list(dict.fromkeys(test for item in runnable for test in item.tests))
        baseline = run_tests(pristine, tests, timeout=1800)
        if baseline.code != 0:
            print(baseline.output[-4000:])
            print(f"the breaks' tests fail without any break ({baseline.summary}): fix them first")
            return 2
        print(f"without a break: {baseline.summary}")

    def attempt(numbered: tuple[int, Break]) -> tuple[bool, str]:
        number, item = numbered
        lacking = missing_needs(item)
        if lacking:
            return False, f"{item.name}: NOT RUN ({lacking})"
        try:
            source = broken_source((pristine / item.file).read_text(encoding="utf-8"), item)
        except (BreakError, OSError) as error:
            return False, f"{item.name}: NO LONGER APPLIES ({error})"
        copy = work / f"{number:03d}-{item.name}"
        shutil.copytree(pristine, copy)
        (copy / item.file).write_text(source, encoding="utf-8")
        run = run_tests(copy, item.tests, item.timeout)
        ok, line = verdict(item, run)
        if not ok and options.show:
            line += "\n" + run.output[-4000:]
        if ok and options.why:
            reasons = [text for text in run.output.splitlines() if text.startswith("E ")]
            line += "".join(f"\n    {text}" for text in reasons[:4])
        if ok and not options.keep:
            shutil.rmtree(copy, ignore_errors=True)
        return ok, line

    caught = 0
    # Each break has a copy of its own and its tests take free ports: several may run at once
    # (--jobs), their lines still printed in the list's order.
    with ThreadPoolExecutor(max_workers=max(options.jobs, 1)) as pool:
        for ok, line in pool.map(attempt, enumerate(chosen)):
            caught += ok
            print(line, flush=True)
    print(f"{len(chosen)} breaks tried in {time.monotonic() - started:.0f}s")
    print(f"caught {caught} of {len(chosen)}")
    return 0 if caught == len(chosen) else 1


if __name__ == "__main__":
    sys.exit(main())
