"""Recipe keys ``precision`` and ``compile``: parsed, recorded, and passed to the solver (never ignored)."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import yaml

import pnpdiff
from pnpdiff.config.restore import load_recipe, parse_recipe, recipe_to_dict
from pnpdiff.errors import RecipeError
from pnpdiff.io import load_image
from pnpdiff.runs.single import run_recipe

pytestmark = pytest.mark.usefixtures("one_thread")

BASE = {"image": "skimage:astronaut", "size": 16, "operator": {"name": "GaussianBlur", "sigma": 1.0},
        "noise": {"sigma_y": 0.02, "seed": 0}, "method": "diffpir", "steps": 2}


def _write(tmp_path: Path, name: str, **extra) -> Path:
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump({**BASE, "output": str(tmp_path / name), **extra}))
    return p


def test_defaults_are_fp32_uncompiled_and_not_written_into_the_resolved_recipe() -> None:
    r = parse_recipe(BASE)
    assert r.precision == "fp32" and r.compile is False
    d = recipe_to_dict(r)
    assert "precision" not in d and "compile" not in d  # existing resolved recipes stay byte-identical


def test_precision_and_compile_are_recorded() -> None:
    d = recipe_to_dict(parse_recipe({**BASE, "precision": "bf16", "compile": True}))
    assert d["precision"] == "bf16" and d["compile"] is True


@pytest.mark.parametrize("bad,match", [({"precision": "fp64"}, "precision: expected one of fp32, bf16, fp16"),
                                       ({"precision": 16}, "precision"),
                                       ({"compile": "yes"}, "compile: expected true or false")])
def test_bad_values_are_recipe_errors(bad, match) -> None:
    with pytest.raises(RecipeError, match=match):
        parse_recipe({**BASE, **bad})


def test_bf16_recipe_runs_the_denoiser_in_bf16(tmp_path: Path) -> None:
    """The key reaches solve: the bf16 run differs from the fp32 one and equals solve(precision="bf16")."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pnpdiff.PnPWarning)  # emulated bf16 on CPUs without it
        run_recipe(load_recipe(_write(tmp_path, "fp32")), progress=False)
        run_recipe(load_recipe(_write(tmp_path, "bf16", precision="bf16")), progress=False)
        y = load_image(tmp_path / "bf16" / "observed.png")
        direct = pnpdiff.solve(y, pnpdiff.GaussianBlur(1.0), method="diffpir", steps=2, sigma_y=0.02, seed=0,
                               precision="bf16", progress=False)
    a = load_image(tmp_path / "fp32" / "restored.png")
    b = load_image(tmp_path / "bf16" / "restored.png")
    assert (a - b).abs().max() > 1 / 255  # bf16 autocast changes the denoiser's output
    # the recipe's result is solve's, up to the 8-bit quantisation of observed.png and restored.png
    assert (b - direct.clamp(0, 1)).abs().mean() < 1.5 / 255
    saved = yaml.safe_load((tmp_path / "bf16" / "recipe.yaml").read_text().split("\n", 1)[1])
    assert saved["precision"] == "bf16"
    assert json.loads((tmp_path / "bf16" / "metrics.json").read_text())["psnr_restored"] > 15


def test_cli_refuses_a_bad_precision_on_one_line(tmp_path: Path) -> None:
    p = _write(tmp_path, "cli")
    r = subprocess.run([sys.executable, "-m", "pnpdiff", str(p), "precision=fp8"], capture_output=True, text=True)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "precision" in r.stderr and "fp8" in r.stderr


def test_sample_posterior_passes_precision_to_the_denoiser() -> None:
    y = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    kw = dict(n=2, method="diffpir", steps=2, seed=0, sigma_y=0.05, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pnpdiff.PnPWarning)
        a = pnpdiff.sample_posterior(y, pnpdiff.GaussianBlur(1.0), **kw)
        b = pnpdiff.sample_posterior(y, pnpdiff.GaussianBlur(1.0), precision="bf16", **kw)
        c = pnpdiff.sample_posterior(y, pnpdiff.GaussianBlur(1.0), precision="fp32", **kw)
    assert torch.equal(a, c)
    assert (a - b).abs().max() > 1e-3
