"""The ``recipe.yaml`` a run writes reruns that run, from any directory (issue 26).

Every restoration recipe of the catalogue (``recipes/*.yaml`` and the peer configs of
``recipes/peers/``) is run small through the CLI from one working directory; its resolved
``recipe.yaml`` is then run again from another working directory into a second folder. The rerun
must find every input (image, folder, mask, prior) and write the same bytes: a resolved recipe
that records a path relative to the first run's working directory, or to the recipe's own folder,
fails here with "image file not found" or writes a different image.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest

from pnpdiff.cli import main

REPO = Path(__file__).resolve().parents[1]
#: recipe -> overrides that make it small (an image of 24-32 px, one or two solver steps)
SMALL = {"motion_deblur.yaml": ["operator.size=9"], "inpaint_box.yaml": ["operator.mask.box_size=8"]}
OFFLINE = ("sr_ffhq.yaml",)  # needs a checkpoint that is not here


def _restoration_recipes() -> list[Path]:
    found = []
    for p in sorted((REPO / "recipes").glob("*.yaml")) + sorted((REPO / "recipes" / "peers").glob("*.yaml")):
        m = re.search(r"^task:\s*(\S+)", p.read_text(), re.M)
        if (m and m.group(1) in ("sample", "train", "train-classifier")) or p.name in OFFLINE:
            continue
        found.append(p)
    return found


def _files(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*.png"))}


@pytest.mark.parametrize("recipe", _restoration_recipes(), ids=lambda p: p.relative_to(REPO / "recipes").as_posix())
def test_resolved_recipe_reruns_from_another_directory(recipe, tmp_path, monkeypatch, capsys):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    monkeypatch.chdir(first)
    args = [str(recipe), "--output", "out", "--steps", "1", "--no-progress", "size=24", *SMALL.get(recipe.name, [])]
    assert main(args) == 0, capsys.readouterr().err
    resolved = first / "out" / "recipe.yaml"
    assert resolved.is_file()
    monkeypatch.chdir(second)  # neither the recipes' folder nor the first run's directory
    assert main([os.path.relpath(resolved, second), "--dry-run"]) == 0, capsys.readouterr().err
    assert main([str(resolved), "--output", "again", "--no-progress"]) == 0, capsys.readouterr().err
    before, after = _files(first / "out"), _files(second / "again")
    assert before and after == before
