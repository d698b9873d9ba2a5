"""The documentation site's sources: every public name has an API page, every page is reachable.

The site itself is built (warnings as errors, gallery executed) by ``.ci/run`` with the README's
command; these checks need no Sphinx and fail fast when a new public name or page is added
without its entry.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pnpdiff
import pnpdiff.operators

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _autosummary_entries() -> set[str]:
    """Fully qualified names listed in the API index's autosummary tables."""
    text = (DOCS / "api" / "index.rst").read_text()
    names: set[str] = set()
    module = "pnpdiff"
    in_table = False
    for line in text.splitlines():
        m = re.match(r"\.\. currentmodule:: (\S+)", line)
        if m:
            module = m.group(1)
            continue
        if line.startswith(".. autosummary::"):
            in_table = True
            continue
        if in_table:
            if line.strip().startswith(":") or not line.strip():
                continue
            if line.startswith("   "):
                names.add(f"{module}.{line.strip()}")
                continue
            in_table = False
    return names


def _automodules() -> set[str]:
    return set(re.findall(r"^\.\. automodule:: (\S+)", (DOCS / "api" / "index.rst").read_text(), re.M))


def _resolve(full: str):
    """The object a dotted name names, as autodoc finds it (attributes first, then submodules)."""
    parts = full.split(".")
    obj = importlib.import_module(parts[0])
    for i, part in enumerate(parts[1:], start=1):
        if hasattr(obj, part):
            obj = getattr(obj, part)
            continue
        try:
            obj = importlib.import_module(".".join(parts[: i + 1]))
        except ImportError:
            return None
    return obj


def _documented_objects() -> set[int]:
    """ids of the objects the autosummary entries resolve to."""
    return {id(_resolve(full)) for full in _autosummary_entries()}


def test_every_autosummary_entry_resolves_to_an_object():
    entries = _autosummary_entries()
    assert len(entries) > 60  # the parser found the tables
    for full in entries:
        assert _resolve(full) is not None, f"docs/api/index.rst lists {full}, which does not exist"


def test_every_public_name_has_an_api_page():
    documented = _documented_objects()
    modules = _automodules()
    missing = []
    for mod in (pnpdiff, pnpdiff.operators):
        for name in mod.__all__:
            obj = getattr(mod, name)
            if isinstance(obj, type(pnpdiff)):  # a module: documented by automodule or by its members
                members = getattr(obj, "__all__", [])
                if obj.__name__ not in modules and not any(id(getattr(obj, m)) in documented for m in members):
                    missing.append(f"{mod.__name__}.{name}")
                continue
            if id(obj) not in documented:
                missing.append(f"{mod.__name__}.{name}")
    assert not missing, f"public names without an API page (add them to docs/api/index.rst): {missing}"


def test_every_solver_has_an_api_page():
    from pnpdiff.solvers import SOLVERS

    documented = _documented_objects()
    assert [n for n, f in SOLVERS.items() if id(f) not in documented] == []


def test_every_guide_page_is_in_a_toctree():
    index = (DOCS / "index.md").read_text()
    toctree_entries = set()
    for block in re.findall(r"```\{toctree\}(.*?)```", index, re.S):
        toctree_entries.update(line.strip() for line in block.splitlines()
                               if line.strip() and not line.strip().startswith(":"))
    pages = {p.stem for p in DOCS.glob("*.md")} - {"index"}
    assert pages <= toctree_entries, f"pages missing from docs/index.md's toctrees: {sorted(pages - toctree_entries)}"
    for entry in toctree_entries:
        found = (DOCS / f"{entry}.md").exists() or (DOCS / f"{entry}.rst").exists()
        assert found or entry.startswith("auto_examples"), entry


def test_the_readme_docs_command_is_the_one_ci_runs():
    root = DOCS.parent
    command = 'pip install -e ".[docs]" && python -m sphinx -W --keep-going -b html docs docs/_build/html'
    assert command in (root / "README.md").read_text()
    assert command in (root / ".ci" / "run").read_text()
