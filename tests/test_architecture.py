"""The shape of service/: no import cycles between its modules, and a docstring on each one."""

from __future__ import annotations

import ast
from pathlib import Path

SERVICE = Path(__file__).resolve().parent.parent / "service"


def module_names(root: Path = SERVICE) -> dict[str, Path]:
    """Every module under `root` by dotted name (a package by its own name, not __init__)."""
    names: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of `known` that the module imports anywhere in its file: at the top, in
    functions, under `if TYPE_CHECKING:` alike. `from a import b` counts as importing a.b
    when a.b is a module, else as importing a."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from .x import y, from .. import z
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in known else base)
    return {module for module in found if module in known and module != name}


def import_graph(root: Path = SERVICE) -> dict[str, set[str]]:
    """Which modules of service/ each module of service/ imports."""
    names = module_names(root)
    known = set(names)
    return {name: imported_modules(name, path, known) for name, path in names.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path that returns to its start, or None when the graph has none."""
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        # Depth-first with an explicit stack; `path` is the chain being walked.
        path: list[str] = [start]
        on_path = {start}
        branches = [iter(sorted(graph[start]))]
        while branches:
            following = next(branches[-1], None)
            if following is None:  # every import of path[-1] walked: it is on no cycle
                finished = path.pop()
                on_path.discard(finished)
                done.add(finished)
                branches.pop()
                continue
            if following in on_path:
                return [*path[path.index(following) :], following]
            if following not in done:
                path.append(following)
                on_path.add(following)
                branches.append(iter(sorted(graph[following])))
    return None


class TestImportGraph:
    def test_no_module_of_service_imports_itself_round_a_cycle(self) -> None:
        """Following imports from any module of service/ never leads back to it."""
        cycle = find_cycle(import_graph())
        assert cycle is None, "import cycle: " + " -> ".join(cycle or [])

    def test_the_graph_sees_every_kind_of_import(self, tmp_path: Path) -> None:
        """Imports in functions, under TYPE_CHECKING, relative ones and `from package import
        module` all become edges, and a cycle made of them is found and printed."""
        package = tmp_path / "service"
        (package / "sub").mkdir(parents=True)
        (package / "__init__.py").write_text('"""Top."""\n')
        (package / "sub" / "__init__.py").write_text('"""Sub."""\n')
        (package / "a.py").write_text(
            '"""A."""\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n'
            "    from service.sub import b\n"
        )
        (package / "sub" / "b.py").write_text('"""B."""\ndef f():\n    from . import c\n')
        (package / "sub" / "c.py").write_text('"""C."""\nimport service.a\n')
        graph = import_graph(package)
        assert graph["service.a"] == {"service.sub.b"}
        assert graph["service.sub.b"] == {"service.sub.c"}
        assert graph["service.sub.c"] == {"service.a"}
        assert find_cycle(graph) == ["service.a", "service.sub.b", "service.sub.c", "service.a"]
        (package / "sub" / "c.py").write_text('"""C."""\nfrom service.sub import b as _\n')
        assert find_cycle(import_graph(package)) == [
            "service.sub.b",
            "service.sub.c",
            "service.sub.b",
        ]
        (package / "sub" / "c.py").write_text('"""C."""\n')
        assert find_cycle(import_graph(package)) is None

    def test_the_graph_covers_the_whole_package(self) -> None:
        """Every module is in the graph, and the CLI's known imports are edges in it."""
        graph = import_graph()
        assert {"service.cli", "service.runtime.components", "service.store.models"} <= set(graph)
        assert "service.cli.daemon" in graph["service.cli"]
        assert "service.runtime.daemon" in graph["service.cli.daemon"]  # inside a function


class TestDocstrings:
    def test_every_module_says_what_it_is_for(self) -> None:
        """Each module of service/ opens with a docstring."""
        missing = [
            str(path.relative_to(SERVICE.parent))
            for path in module_names().values()
            if not (ast.get_docstring(ast.parse(path.read_text())) or "").strip()
        ]
        assert missing == []
