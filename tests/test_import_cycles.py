"""No import cycle through a module-level import in drgrader (``make test`` runs this file).

import-linter's layers contract sees imports between layers only, not a cycle inside one (as
``data.dicom`` -> ``data.images`` at module level, ``data.images`` -> ``data.dicom`` inside its
functions, was), and its ``acyclic_siblings`` contract also counts cycles made only of imports
inside functions, which is how drgrader defers heavy imports. So: grimp (import-linter's own
graph) gives every import with its line, the AST says which lines sit inside a function, and no
import that runs when its module is imported may close a cycle. ``if TYPE_CHECKING:`` imports
never run and do not count.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import grimp


def deferred_import_lines(file: Path) -> set[int]:
    """Lines of the import statements inside a function (run when it is called, not on import)."""
    lines = set()
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            lines |= {inner.lineno for inner in ast.walk(node) if isinstance(inner, (ast.Import, ast.ImportFrom))}
    return lines


def module_level_cycles(package: str) -> list[list[str]]:
    """Each import cycle with at least one module-level import in it, as ``[a, b, ..., a]``
    (``a`` imports ``b`` at module level), each cycle once."""
    graph = grimp.build_graph(package, exclude_type_checking_imports=True, cache_dir=None)
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.origin is not None
    root = Path(spec.origin).parent
    cycles, seen = [], set()
    for importer in sorted(graph.modules):
        path = root.joinpath(*importer.split(".")[1:])
        deferred = deferred_import_lines(path / "__init__.py" if path.is_dir() else path.with_suffix(".py"))
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            details = graph.get_import_details(importer=importer, imported=imported)
            if all(d["line_number"] in deferred for d in details):
                continue
            chain = graph.find_shortest_chain(importer=imported, imported=importer)
            if chain and frozenset(chain) not in seen:
                seen.add(frozenset(chain))
                cycles.append([importer, *chain])
    return cycles


def test_drgrader_has_no_module_level_import_cycle():
    cycles = module_level_cycles("drgrader")
    assert not cycles, "module-level import cycles (move the shared piece to a module both import, or import it " \
        "inside the function that needs it): " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_check_finds_cycles_through_module_level_imports_only(tmp_path, monkeypatch):
    package = tmp_path / "cyclic_pkg_for_test"
    package.mkdir()
    files = {
        "__init__.py": "",
        # a <-> b at module level (b's import under an `if`, still run on import): a cycle
        "a.py": "from cyclic_pkg_for_test import b\n",
        "b.py": "import os\n\nif os.sep:\n    from cyclic_pkg_for_test.a import __name__ as a_name\n",
        # c -> d at module level, d -> c inside a function (data.dicom / data.images): a cycle
        "c.py": "from cyclic_pkg_for_test import d\n",
        "d.py": "def later():\n    from cyclic_pkg_for_test import c\n\n    return c\n",
        # e <-> f inside functions only, g -> h and h -> g for type checkers only: no cycle
        "e.py": "def later():\n    from cyclic_pkg_for_test import f\n\n    return f\n",
        "f.py": "def later():\n    from cyclic_pkg_for_test import e\n\n    return e\n",
        "g.py": "from cyclic_pkg_for_test import h\n",
        "h.py": "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from cyclic_pkg_for_test import g\n",
    }
    for name, text in files.items():
        (package / name).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    cycles = module_level_cycles("cyclic_pkg_for_test")
    name = "cyclic_pkg_for_test."
    assert cycles == [[name + "a", name + "b", name + "a"], [name + "c", name + "d", name + "c"]]

