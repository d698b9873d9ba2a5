"""The operators/ folder is installed as pnpdiff.operators, never as a top-level module."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_import_from_installed_or_editable(tmp_path: Path) -> None:
    # from a folder that is not the repository: the installed (editable) package is used
    code = (
        "import importlib.util, pnpdiff, pnpdiff.operators as o;"
        "print(o.__file__); print(importlib.util.find_spec('operators'))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    lines = _run(code, tmp_path, env).splitlines()
    assert Path(lines[0]).resolve() == (ROOT / "operators" / "__init__.py").resolve()
    assert lines[1] == "None", "a top-level 'operators' module must not be importable"


def test_import_from_plain_source_tree(tmp_path: Path) -> None:
    # only the repository root on sys.path (no install visible): the fallback maps operators/
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r});"
        "import pnpdiff, pnpdiff.operators as o, importlib.util;"
        "print(o.__file__); print('operators' in sys.modules)"
    )
    lines = _run(code, tmp_path).splitlines()
    assert Path(lines[0]).resolve() == (ROOT / "operators" / "__init__.py").resolve()
    assert lines[1] == "False"


@pytest.mark.slow
def test_built_wheel_maps_operators(tmp_path: Path) -> None:
    wheel_dir = tmp_path / "wheel"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
         "-w", str(wheel_dir), "-q"],
        capture_output=True, text=True,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = wheel_dir.glob("pnpdiff-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "pnpdiff/operators/__init__.py" in names
    assert "pnpdiff/operators/base.py" in names
    assert not any(n.startswith("operators/") for n in names), "no top-level operators package"
    target = tmp_path / "site"
    inst = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        capture_output=True, text=True,
    )
    assert inst.returncode == 0, inst.stderr
    env = dict(os.environ, PYTHONPATH=str(target))
    code = (
        "import pnpdiff.operators as o, importlib.util;"
        "print(o.__file__); print(importlib.util.find_spec('operators'))"
    )
    lines = _run(code, tmp_path, env).splitlines()
    assert Path(lines[0]).resolve().is_relative_to(target.resolve())
    assert lines[1] == "None"
