"""The layers of pnpdiff, enforced from the source (issue 26, item 1).

Every module under ``pnpdiff/`` and ``operators/`` (installed as ``pnpdiff.operators``) belongs to
one layer of :data:`LAYERS`; a module may import only from its own layer or below, and no import
cycle may exist. The graph is read from the source with :mod:`ast`, so function-level imports
count as much as module-level ones; only imports under ``if TYPE_CHECKING:`` and imports of
third-party packages are left out (a function-level import is meant for a heavy optional
third-party dependency, never to hide a pnpdiff edge). docs/architecture.md lists the same layers;
:func:`test_doc_lists_the_same_layers` keeps the two from drifting.

Edges are what the source names, resolved to a module of the tree:

- ``import pnpdiff.a.b`` -> ``pnpdiff.a.b`` (or its longest prefix that is a module);
- ``from pnpdiff.a import x`` -> ``pnpdiff.a.x`` when that is a module (a file ``a/x.py`` or a
  package ``a/x/``), else ``pnpdiff.a`` itself (``x`` is a name defined in ``a``);
- relative imports are resolved against the importing module's package first;
- ``importlib.import_module("pnpdiff.a")`` with a constant string counts as ``import pnpdiff.a``.

Parent packages executed on the way (``import pnpdiff.a.b`` also runs ``pnpdiff/__init__.py``)
are not edges: only what a module names is. Importing the facade ``pnpdiff`` by name
(``import pnpdiff``, ``from pnpdiff import __version__``) is an edge to layer 8 like any other.

The checker is plain functions (:func:`build_graph`, :func:`upward_imports`, :func:`find_cycles`,
...) so that the tests at the end run it on small planted packages and prove it fails when it
should.
"""

from __future__ import annotations

import ast
import re
import textwrap
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
#: (package name, source folder): operators/ is installed as ``pnpdiff.operators`` (package-dir)
SOURCE_ROOTS: tuple[tuple[str, Path], ...] = (("pnpdiff", ROOT / "pnpdiff"), ("pnpdiff.operators", ROOT / "operators"))

#: The layers, bottom (0) to top (8): (name, module patterns). A pattern is a module name, which
#: matches that module only, or ``package.*``, which matches the package and every module in it.
#: docs/architecture.md shows this same table (checked by test_doc_lists_the_same_layers).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("base", ("pnpdiff._version", "pnpdiff.errors", "pnpdiff._docs", "pnpdiff.checks", "pnpdiff.env",
              "pnpdiff.interrupts", "pnpdiff._operators_path")),
    ("data", ("pnpdiff.io", "pnpdiff.metrics", "pnpdiff.memory", "pnpdiff.schedules", "pnpdiff.outputs",
              "pnpdiff.datasets", "pnpdiff.noise")),
    ("operators", ("pnpdiff.operators.*",)),
    ("models", ("pnpdiff.unet", "pnpdiff.priors.*")),
    ("solvers", ("pnpdiff.solvers.*", "pnpdiff.guidance")),
    ("library", ("pnpdiff.costs", "pnpdiff.api", "pnpdiff.posterior", "pnpdiff.sampling", "pnpdiff.training",
                 "pnpdiff.baselines", "pnpdiff.problem", "pnpdiff.calibrate", "pnpdiff.kernel_fit",
                 "pnpdiff.blind")),
    ("config", ("pnpdiff.config.*",)),
    ("runs", ("pnpdiff.runs.*",)),
    ("front", ("pnpdiff.cli", "pnpdiff", "pnpdiff.__main__")),
)

TRANSITIONAL: dict[str, int] = {}  # modules of an old layout on their way out (none now)

FACADE = "pnpdiff"


def layer_table(layers: Iterable[tuple[str, Iterable[str]]] = LAYERS,
                extra: Mapping[str, int] | None = None) -> dict[str, int]:
    """Flatten ``layers`` (and ``extra``) into ``{pattern: layer number}``; a pattern listed twice fails."""
    table: dict[str, int] = {}
    for number, (_name, patterns) in enumerate(layers):
        for pattern in patterns:
            assert pattern not in table, f"{pattern} is listed in two layers"
            table[pattern] = number
    for pattern, number in (extra or {}).items():
        assert pattern not in table, f"{pattern} is listed in two layers"
        table[pattern] = number
    return table


def layer_of(module: str, table: Mapping[str, int]) -> int | None:
    """The layer of ``module``: its exact entry, else the nearest ``package.*`` above it, else None."""
    if module in table:
        return table[module]
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        key = ".".join(parts[:i]) + ".*"
        if key in table:
            return table[key]
    return None


# -- the graph --------------------------------------------------------------------------------

@dataclass
class Graph:
    """Modules of a source tree and the imports between them."""

    root: Path
    #: module name -> source file
    files: dict[str, Path] = field(default_factory=dict)
    #: module name -> (is a package)
    packages: set[str] = field(default_factory=set)
    #: importer -> imported -> line numbers
    edges: dict[str, dict[str, list[int]]] = field(default_factory=dict)

    def where(self, module: str, target: str) -> str:
        """``path:line, line`` of the imports of ``target`` in ``module``."""
        path = self.files[module]
        try:
            shown = path.relative_to(self.root)
        except ValueError:  # pragma: no cover - a root outside ``root``
            shown = path
        lines = ", ".join(str(n) for n in sorted(set(self.edges[module][target])))
        return f"{shown.as_posix()}:{lines}"


def discover_modules(roots: Iterable[tuple[str, Path]]) -> tuple[dict[str, Path], set[str]]:
    """Every ``.py`` file under each ``(package, folder)`` root, by module name."""
    files: dict[str, Path] = {}
    packages: set[str] = set()
    for package, folder in roots:
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(folder)
            if any(part == "__pycache__" or part.startswith(".") for part in rel.parts):
                continue
            parts = [package, *rel.with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
                packages.add(".".join(parts))
            name = ".".join(parts)
            assert name not in files, f"two files are module {name}: {files[name]} and {path}"
            files[name] = path
    return files, packages


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


class _Imports(ast.NodeVisitor):
    """Collect ``(absolute module, names or None, line)`` of every import, at any depth."""

    def __init__(self, module: str, is_package: bool) -> None:
        self.package = module if is_package else module.rpartition(".")[0]
        self.found: list[tuple[str, tuple[str, ...] | None, int]] = []

    def visit_If(self, node: ast.If) -> None:  # noqa: N802 - ast.NodeVisitor's naming
        if _is_type_checking(node.test):
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:  # noqa: N802
        for alias in node.names:
            self.found.append((alias.name, None, node.lineno))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:  # noqa: N802
        if node.level:
            base = self.package.split(".")
            if node.level - 1 >= len(base):
                raise AssertionError(f"line {node.lineno}: relative import above the top package")
            base = base[: len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        self.found.append((target, tuple(alias.name for alias in node.names), node.lineno))

    def visit_Call(self, node: ast.Call) -> None:  # noqa: N802
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name in {"import_module", "__import__"} and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str) and not first.value.startswith("."):
                self.found.append((first.value, None, node.lineno))
        self.generic_visit(node)


def _resolve(name: str, files: Mapping[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is a module of the tree."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        candidate = ".".join(parts[:i])
        if candidate in files:
            return candidate
    return None


def build_graph(roots: Iterable[tuple[str, Path]], root: Path) -> Graph:
    """Parse every module under ``roots`` and return the graph of imports between them."""
    roots = tuple(roots)
    files, packages = discover_modules(roots)
    tops = {package.split(".")[0] for package, _ in roots}
    graph = Graph(root=root, files=files, packages=packages)
    for module, path in files.items():
        visitor = _Imports(module, module in packages)
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        out: dict[str, list[int]] = {}
        for target, names, line in visitor.found:
            if target.split(".")[0] not in tops:
                continue  # third-party or standard library
            targets = []
            for name in names or ():
                sub = f"{target}.{name}"
                if name != "*" and sub in files:
                    targets.append(sub)  # ``from pkg import submodule``
                else:
                    targets.append(_resolve(target, files))
            if names is None:
                targets.append(_resolve(target, files))
            for resolved in targets:
                if resolved is not None and resolved != module:
                    out.setdefault(resolved, []).append(line)
        graph.edges[module] = out
    return graph


# -- the checks -------------------------------------------------------------------------------

def unassigned(graph: Graph, table: Mapping[str, int]) -> list[str]:
    """Modules of the graph that no entry of ``table`` covers."""
    return sorted(m for m in graph.files if layer_of(m, table) is None)


def upward_imports(graph: Graph, table: Mapping[str, int]) -> list[str]:
    """One line ``a -> b (layer i -> j) at file:lines`` for every import into a higher layer."""
    lines = []
    for module in sorted(graph.edges):
        low = layer_of(module, table)
        for target in sorted(graph.edges[module]):
            high = layer_of(target, table)
            if low is not None and high is not None and high > low:
                lines.append(f"{module} -> {target} (layer {low} -> {high}) at {graph.where(module, target)}")
    return lines


def facade_imports(graph: Graph, table: Mapping[str, int], facade: str) -> list[str]:
    """Imports of the facade package itself from any module below the facade's layer."""
    top = layer_of(facade, table)
    return [f"{module} -> {facade} (layer {layer_of(module, table)} -> {top}) at {graph.where(module, facade)}"
            for module in sorted(graph.edges)
            if facade in graph.edges[module] and (layer_of(module, table) or 0) < (top or 0)]


def _components(edges: Mapping[str, Mapping[str, object]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, {}))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, {})))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return sorted(found)


def _shortest_cycle(edges: Mapping[str, Mapping[str, object]], start: str, within: set[str]) -> list[str]:
    """The shortest path ``start -> ... -> start`` inside ``within`` (breadth first)."""
    parent: dict[str, str] = {}
    queue = deque([start])
    seen = {start}
    while queue:
        node = queue.popleft()
        for child in sorted(edges.get(node, {})):
            if child not in within:
                continue
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [*reversed(path), start]
            if child not in seen:
                seen.add(child)
                parent[child] = node
                queue.append(child)
    raise AssertionError(f"{start} is on no cycle")  # pragma: no cover - only called inside a component


def find_cycles(graph: Graph) -> list[list[str]]:
    """Distinct shortest cycles, one through each module of every cyclic component."""
    cycles: list[list[str]] = []
    seen: set[frozenset[tuple[str, str]]] = set()
    for component in _components(graph.edges):
        members = set(component)
        for start in component:
            cycle = _shortest_cycle(graph.edges, start, members)
            key = frozenset(zip(cycle, cycle[1:]))
            if key not in seen:
                seen.add(key)
                cycles.append(cycle)
    return cycles


def describe_cycle(graph: Graph, cycle: list[str]) -> str:
    """``a -> b -> a`` and where each of its imports is written."""
    hops = "; ".join(f"{a} -> {b} at {graph.where(a, b)}" for a, b in zip(cycle, cycle[1:]))
    return f"{' -> '.join(cycle)}\n      ({hops})"


# -- the rules, on pnpdiff --------------------------------------------------------------------

@lru_cache(maxsize=1)
def _pnpdiff_graph() -> Graph:
    return build_graph(SOURCE_ROOTS, ROOT)


def _table() -> dict[str, int]:
    return layer_table(LAYERS, TRANSITIONAL)


def test_graph_sees_the_whole_tree():
    # Catches a builder that misses the operators/ root or drops relative imports: the rules
    # below would then pass on a graph that is not pnpdiff's.
    graph = _pnpdiff_graph()
    assert "pnpdiff" in graph.files and "pnpdiff.__main__" in graph.files
    assert "pnpdiff.operators" in graph.packages and "pnpdiff.operators.base" in graph.files
    assert "pnpdiff.errors" in graph.edges["pnpdiff.operators.base"]   # from pnpdiff.errors import ...
    assert "pnpdiff.operators._checks" in graph.edges["pnpdiff.operators.base"]   # from . import _checks


def test_every_module_has_a_layer():
    missing = unassigned(_pnpdiff_graph(), _table())
    assert not missing, (
        f"{len(missing)} module(s) without a layer: {', '.join(missing)}.\n"
        "Add each to LAYERS in tests/test_architecture.py (and to the layer table of docs/architecture.md) "
        "at the lowest layer whose modules it needs.")


def test_no_import_cycle():
    graph = _pnpdiff_graph()
    cycles = find_cycles(graph)
    assert not cycles, (f"{len(cycles)} import cycle(s) (function-level imports count too):\n  "
                        + "\n  ".join(describe_cycle(graph, c) for c in cycles))


def test_no_upward_import():
    lines = upward_imports(_pnpdiff_graph(), _table())
    assert not lines, (
        f"{len(lines)} upward import(s): a module may import only from its own layer or below "
        "(see docs/architecture.md); move the name it needs down, or the importer up:\n  " + "\n  ".join(lines))


def test_no_module_below_the_front_imports_the_facade():
    assert layer_of(FACADE, _table()) == len(LAYERS) - 1, "the facade belongs to the top layer"
    lines = facade_imports(_pnpdiff_graph(), _table(), FACADE)
    assert not lines, (
        f"{len(lines)} import(s) of the facade `pnpdiff` from below the front layer; import the submodule that "
        "defines the name instead (`from pnpdiff._version import __version__`, "
        "`from pnpdiff.api import solve`):\n  " + "\n  ".join(lines))


def _doc_layers(text: str) -> dict[int, tuple[str, set[str]]]:
    """Rows ``| L<n> | name | `module`, ... |`` of the layer table in docs/architecture.md."""
    rows: dict[int, tuple[str, set[str]]] = {}
    for match in re.finditer(r"^\|\s*L(\d+)\s*\|\s*([\w-]+)\s*\|(.*)\|\s*$", text, flags=re.MULTILINE):
        names = {n for n in re.findall(r"`([^`]+)`", match.group(3)) if re.fullmatch(r"pnpdiff(\.[\w]+)*(\.\*)?", n)}
        rows[int(match.group(1))] = (match.group(2), names)
    return rows


def test_doc_lists_the_same_layers():
    # Catches a layer moved or a module added in one place and not the other.
    rows = _doc_layers(DOC.read_text(encoding="utf-8"))
    expected = {n: (name, set(patterns)) for n, (name, patterns) in enumerate(LAYERS)}
    problems = []
    for n in sorted(set(rows) | set(expected)):
        if n not in rows:
            problems.append(f"L{n} ({expected[n][0]}) is missing from the doc's layer table")
        elif n not in expected:
            problems.append(f"the doc has a layer L{n} that LAYERS does not")
        else:
            (doc_name, doc_mods), (name, mods) = rows[n], expected[n]
            if doc_name != name:
                problems.append(f"L{n} is {name!r} in LAYERS but {doc_name!r} in the doc")
            if mods - doc_mods:
                problems.append(f"L{n}: the doc does not list {', '.join(sorted(mods - doc_mods))}")
            if doc_mods - mods:
                problems.append(f"L{n}: the doc lists {', '.join(sorted(doc_mods - mods))}, which LAYERS does not")
    assert not problems, "docs/architecture.md and LAYERS disagree:\n  " + "\n  ".join(problems)


# -- the checker, on planted packages ---------------------------------------------------------

FAKE_LAYERS = (
    ("base", ("fake._version", "fake.errors")),
    ("engine", ("fake.engine.*", "fake.ops.*")),
    ("front", ("fake", "fake.cli")),
)


def _plant(tmp_path: Path, files: Mapping[str, str]) -> Graph:
    """Write ``{relative path: source}`` under tmp_path and graph ``fake/`` (+ ``ops/`` as ``fake.ops``)."""
    for rel, source in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    return build_graph((("fake", tmp_path / "fake"), ("fake.ops", tmp_path / "ops")), tmp_path)


CLEAN = {
    "fake/__init__.py": "from fake._version import __version__\nfrom fake.engine import run\nfrom fake import errors\n",
    "fake/_version.py": "__version__ = '1'\n",
    "fake/errors.py": "class Oops(Exception):\n    pass\n",
    "fake/cli.py": "import argparse\nimport fake\nfrom fake.engine.core import run\n",
    "fake/engine/__init__.py": "from .core import run\n",
    "fake/engine/core.py": (
        "from typing import TYPE_CHECKING\nimport numpy\nfrom ..errors import Oops\nfrom fake.ops import blur\n"
        "if TYPE_CHECKING:\n    from fake.cli import main\n"
        "def run():\n    import torch\n    from . import helpers\n    return helpers\n"),
    "fake/engine/helpers.py": "from fake._version import __version__\n",
    "ops/__init__.py": "from .blur import Blur\n",
    "ops/blur.py": "from fake.errors import Oops\nclass Blur:\n    pass\n",
}


def test_checker_passes_a_clean_package(tmp_path):
    # Catches a checker that fails everything (then the rules above prove nothing) and resolution
    # mistakes: relative imports, `from pkg import submodule`, a second root, TYPE_CHECKING.
    graph = _plant(tmp_path, CLEAN)
    table = layer_table(FAKE_LAYERS)
    assert unassigned(graph, table) == []
    assert find_cycles(graph) == []
    assert upward_imports(graph, table) == []
    assert facade_imports(graph, table, "fake") == []
    assert graph.edges["fake.engine.core"] == {"fake.errors": [3], "fake.ops.blur": [4], "fake.engine.helpers": [9]}
    assert set(graph.edges["fake"]) == {"fake._version", "fake.engine", "fake.errors"}
    assert set(graph.edges["fake.cli"]) == {"fake", "fake.engine.core"}   # argparse: third-party
    assert graph.edges["fake.ops"] == {"fake.ops.blur": [1]}


def test_checker_reports_a_planted_cycle(tmp_path):
    # A cycle hidden behind a function-level import, as recipes.py <-> batch.py was.
    graph = _plant(tmp_path, {**CLEAN,
                              "fake/engine/helpers.py": "def later():\n    from fake.engine.core import run\n"})
    cycles = find_cycles(graph)
    assert cycles == [["fake.engine.core", "fake.engine.helpers", "fake.engine.core"]]
    assert describe_cycle(graph, cycles[0]) == (
        "fake.engine.core -> fake.engine.helpers -> fake.engine.core\n"
        "      (fake.engine.core -> fake.engine.helpers at fake/engine/core.py:9; "
        "fake.engine.helpers -> fake.engine.core at fake/engine/helpers.py:2)")


def test_checker_reports_every_planted_upward_import(tmp_path):
    graph = _plant(tmp_path, {**CLEAN,
                              "fake/errors.py": "def f():\n    from fake.engine.core import run\n",
                              "ops/blur.py": "import fake.cli as c\nfrom fake.cli import main\n"})
    table = layer_table(FAKE_LAYERS)
    assert upward_imports(graph, table) == [
        "fake.errors -> fake.engine.core (layer 0 -> 1) at fake/errors.py:2",
        "fake.ops.blur -> fake.cli (layer 1 -> 2) at ops/blur.py:1, 2",
    ]


def test_checker_reports_a_planted_facade_import(tmp_path):
    # `from pnpdiff import __version__` in outputs.py: a name of the facade, not a submodule.
    graph = _plant(tmp_path, {**CLEAN, "fake/engine/helpers.py": "from fake import __version__\n",
                              "ops/blur.py": "import fake\n"})
    table = layer_table(FAKE_LAYERS)
    assert facade_imports(graph, table, "fake") == [
        "fake.engine.helpers -> fake (layer 1 -> 2) at fake/engine/helpers.py:1",
        "fake.ops.blur -> fake (layer 1 -> 2) at ops/blur.py:1",
    ]
    assert "fake.engine.helpers -> fake (layer 1 -> 2) at fake/engine/helpers.py:1" in upward_imports(graph, table)


def test_checker_reports_a_planted_unassigned_module(tmp_path):
    graph = _plant(tmp_path, {**CLEAN, "fake/newthing.py": "", "fake/engine/sub/__init__.py": ""})
    assert unassigned(graph, layer_table(FAKE_LAYERS)) == ["fake.newthing"]   # fake.engine.* covers sub


def test_checker_counts_import_module_with_a_constant(tmp_path):
    graph = _plant(tmp_path, {**CLEAN, "fake/errors.py": "import importlib\nm = importlib.import_module('fake.cli')\n"})
    assert upward_imports(graph, layer_table(FAKE_LAYERS)) == [
        "fake.errors -> fake.cli (layer 0 -> 2) at fake/errors.py:2"]
