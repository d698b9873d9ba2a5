"""Recipe key ``samples: N``: posterior samples written as ``mean.png`` and ``std.png``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from pnpdiff.config.restore import load_recipe, parse_recipe
from pnpdiff.errors import RecipeError
from pnpdiff.io import load_image
from pnpdiff.runs.report import _colour
from pnpdiff.runs.single import run_recipe

pytestmark = pytest.mark.usefixtures("one_thread")

BASE = {"image": "skimage:astronaut", "size": 16, "operator": {"name": "Inpaint", "mask": {"kind": "random",
        "p_missing": 0.5}}, "noise": {"sigma_y": 0.02, "seed": 0}, "method": "diffpir", "steps": 3}


def _write(tmp_path: Path, **extra) -> Path:
    p = tmp_path / "r.yaml"
    p.write_text(yaml.safe_dump({**BASE, "output": str(tmp_path / "out"), **extra}))
    return p


def test_samples_writes_mean_and_std(tmp_path: Path) -> None:
    m = run_recipe(load_recipe(_write(tmp_path, samples=4)), progress=False)
    out = tmp_path / "out"
    for name in ("restored.png", "mean.png", "std.png", "observed.png", "comparison.png"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["samples"] == 4 and saved["std_mean"] > 0 and saved["std_max"] >= saved["std_mean"]
    assert "psnr_mean" in saved and "ssim_mean" in saved and m["psnr_mean"] == saved["psnr_mean"]
    # averaging samples cannot be worse than a typical sample by much; on this task it is better
    assert saved["psnr_mean"] > saved["psnr_restored"] - 0.5
    assert load_image(out / "mean.png").shape[-2:] == (16, 16)
    assert yaml.safe_load((out / "recipe.yaml").read_text().split("\n", 1)[1])["samples"] == 4


def test_std_map_colours_run_from_dark_to_bright() -> None:
    c = _colour(torch.tensor([[0.0, 0.5, 1.0]]))
    assert c.shape == (3, 1, 3)
    lum = (0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2])[0]
    assert lum[0] < lum[1] < lum[2]
    torch.testing.assert_close(c[:, 0, 0], torch.tensor([68, 1, 84]) / 255)


@pytest.mark.parametrize("bad,match", [({"samples": 1}, "at least 2"), ({"samples": -2}, "samples"),
                                       ({"samples": 3, "image": "some/folder/*.png"}, "one image")])
def test_bad_samples_are_recipe_errors(bad, match) -> None:
    with pytest.raises(RecipeError, match=match):
        parse_recipe({**BASE, **bad})
