"""The list `make mutants` runs: well formed, and every break still applies to the code."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.mutants.breaks import BREAKS, PROMISES, Break
from tests.mutants.run import ROOT, BreakError, broken_source, check_list

SAMPLE = '''"""A module."""

LIMIT = 5


class Gate:
    """A gate."""

    def open(self, who: str) -> bool:
        """Whether `who` may pass."""
        if who.lower() == "ann":
            return True
        return False


def close(who: str) -> bool:
    """Whether to close on `who`."""
    return who.lower() == "bob"
'''


def sample_break(scope: str, find: str, replace: str = "pass") -> Break:
    """A break of SAMPLE."""
    return Break("sample", "floods", "sample.py", scope, find, replace, ("tests/x.py",))


class TestTheList:
    def test_names_promises_and_tests_are_in_order(self) -> None:
        """Unique names, known promises, each promise broken at least once, 60 breaks or more."""
        assert check_list(BREAKS) == []
        assert len(BREAKS) >= 60
        assert {item.promise for item in BREAKS} == set(PROMISES)

    @pytest.mark.parametrize("item", BREAKS, ids=lambda item: item.name)
    def test_each_break_still_applies(self, item: Break) -> None:
        """Its snippet is in its scope once, and the broken file compiles: otherwise the
        mutants run would say NO LONGER APPLIES."""
        source = (ROOT / item.file).read_text(encoding="utf-8")
        assert broken_source(source, item) != source

    @pytest.mark.parametrize("item", BREAKS, ids=lambda item: item.name)
    def test_each_break_names_tests_that_exist(self, item: Break) -> None:
        """The files its tests are in exist (the run would otherwise find nothing to run)."""
        for test in item.tests:
            assert (ROOT / test.split("::")[0]).is_file(), test


def guarantees_rows() -> list[list[str]]:
    """The cells of each row of the README's Guarantees table (promise, tests, mutants)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Guarantees", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    assert rows[0].replace(" ", "") == "|promise|tests|mutants|", rows[0]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]


def named_breaks(cell: str) -> list[str]:
    """The break names a table cell lists, comma-separated, with or without backquotes."""
    return [name.strip().strip("`") for name in cell.split(",") if name.strip()]


class TestTheTables:
    def test_every_readme_row_names_breaks_that_exist(self) -> None:
        """Each row of the README's Guarantees table names at least one break, each one in
        BREAKS, and test files that exist: the table cannot name what is gone."""
        known = {item.name for item in BREAKS}
        rows = guarantees_rows()
        assert len(rows) >= 13
        for promise, tests, mutants in rows:
            names = named_breaks(mutants)
            assert names, f"no break named for: {promise}"
            assert set(names) <= known, f"{promise}: no such break {set(names) - known}"
            for test in named_breaks(tests):
                assert (ROOT / "tests" / f"{test}.py").is_file(), test

    def test_every_break_is_in_a_readme_row_and_in_docs(self) -> None:
        """No break is left out of the README's table nor of docs/guarantees.md, so a break
        added for a promise says which row it proves."""
        in_readme = {name for row in guarantees_rows() for name in named_breaks(row[2])}
        docs = (ROOT / "docs" / "guarantees.md").read_text(encoding="utf-8")
        for item in BREAKS:
            assert item.name in in_readme, f"{item.name} is in no row of README's Guarantees"
            assert f"`{item.name}`" in docs, f"{item.name} is not in docs/guarantees.md"

    def test_breaks_needing_postgresql_are_marked_in_the_readme(self) -> None:
        """A row proven by a break that runs only on PostgreSQL says so."""
        for promise, _tests, mutants in guarantees_rows():
            needs = [i for i in BREAKS if i.name in named_breaks(mutants) and i.needs]
            if needs:
                assert "*PostgreSQL*" in promise, f"{needs[0].name}: say so in: {promise}"


class TestLocating:
    def test_a_snippet_is_found_only_inside_its_scope(self) -> None:
        """`.lower()` occurs twice in the file, once per function: the scope decides which."""
        broken = broken_source(SAMPLE, sample_break("close", "who.lower()", "who"))
        assert 'return who == "bob"' in broken
        assert 'if who.lower() == "ann"' in broken

    def test_methods_and_module_names_are_scopes(self) -> None:
        """`Class.method` and a module-level assignment locate a snippet too."""
        assert "if False:" in broken_source(
            SAMPLE, sample_break("Gate.open", 'if who.lower() == "ann":', "if False:")
        )
        assert "LIMIT = 3600" in broken_source(SAMPLE, sample_break("LIMIT", "5", "3600"))

    @pytest.mark.parametrize(
        ("scope", "find", "replace", "says"),
        [
            ("nowhere", "return", "pass", "no 'nowhere'"),
            ("close", "who.upper()", "pass", "not found"),
            ("Gate.open", "return", "pass", "found 2 times"),
            ("close", 'return who.lower() == "bob"', "return (", "does not compile"),
        ],
    )
    def test_a_break_that_no_longer_fits_says_why(
        self, scope: str, find: str, replace: str, says: str
    ) -> None:
        """A missing scope or snippet, a snippet found twice, a break that does not compile."""
        with pytest.raises(BreakError, match=says):
            broken_source(SAMPLE, sample_break(scope, find, replace))

    def test_the_copy_holds_what_the_tests_read(self) -> None:
        """What a copy is made of exists in the checkout."""
        from tests.mutants.run import COPIED

        assert all((ROOT / name).exists() for name in COPIED)
        assert Path(__file__).resolve().is_relative_to(ROOT)
