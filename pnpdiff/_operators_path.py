"""Make ``pnpdiff.operators`` importable from a plain source tree (no install).

An installed pnpdiff (wheel or editable) maps the top-level ``operators/`` folder to the
``pnpdiff.operators`` package through setuptools' ``package-dir``. When the repository root is
merely on ``sys.path`` (running ``python -m pnpdiff`` or ``pytest`` from a clone that was never
installed), that mapping does not exist; this module then loads ``operators/`` under the name
``pnpdiff.operators`` without ever creating a top-level ``operators`` module.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def ensure_operators() -> None:
    """Import ``pnpdiff.operators``, falling back to the sibling ``operators/`` source folder."""
    if "pnpdiff.operators" in sys.modules:
        return
    if importlib.util.find_spec("pnpdiff.operators") is not None:
        return
    src = Path(__file__).resolve().parent.parent / "operators" / "__init__.py"
    if not src.is_file():  # pragma: no cover - broken install
        raise ImportError("pnpdiff.operators is missing from this installation")
    spec = importlib.util.spec_from_file_location(
        "pnpdiff.operators", src, submodule_search_locations=[str(src.parent)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["pnpdiff.operators"] = module
    spec.loader.exec_module(module)
