"""Recipes as a user runs them: the path rule, prior mappings, measured inputs, 16-bit files,
non-square sizes, output permissions (each through the CLI)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pnpdiff.cli import main
from pnpdiff.io import load_image
from pnpdiff.solvers.common import estimate_noise_level


def _run(recipe: Path, *args: str) -> int:
    return main([str(recipe), "--no-progress", *args])


def test_relative_paths_follow_the_recipe_file_not_the_working_directory(tmp_path: Path, monkeypatch) -> None:
    """image:, operator.mask: and output: written in a recipe are relative to its folder: the same
    recipe run from two working directories reads the same files and writes the same folder,
    even when the working directory holds files of the same names."""
    proj = tmp_path / "proj"
    (proj / "data").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(proj / "data" / "photo.png")
    mask = np.zeros((32, 32), np.uint8)
    mask[:, :16] = 255
    Image.fromarray(mask).save(proj / "data" / "mask.png")
    recipe = proj / "r.yaml"
    recipe.write_text("image: data/photo.png\noperator: {name: Inpaint, mask: data/mask.png}\n"
                      "noise: {sigma_y: 0.01}\nsteps: 2\noutput: results/run\n")
    decoy = tmp_path / "elsewhere"
    (decoy / "data").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(decoy / "data" / "photo.png")  # wrong size
    monkeypatch.chdir(decoy)
    assert _run(recipe) == 0
    out = proj / "results" / "run"
    assert (out / "restored.png").exists() and not (decoy / "results").exists()
    assert np.array_equal(np.asarray(Image.open(out / "ground_truth.png")),
                          np.asarray(Image.open(proj / "data" / "photo.png")))
    # a command-line --output is relative to the working directory
    assert _run(recipe, "--output", "cli_out") == 0
    assert (decoy / "cli_out" / "restored.png").exists()


def test_output_folder_has_ordinary_permissions(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("image: skimage:astronaut\nsize: 32\noperator: {name: GaussianBlur, sigma: 1.0}\nsteps: 2\n"
                      "output: out\n")
    old = os.umask(0o022)
    try:
        assert _run(recipe) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o755


def test_prior_mapping_and_non_square_size(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("image: skimage:astronaut\nsize: [24, 40]\noperator: {name: GaussianBlur, sigma: 1.0}\n"
                      "prior: {name: natural}\nnoise: {sigma_y: 0.02}\nsteps: 2\noutput: out\n")
    assert _run(recipe) == 0
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert m["prior"] == "natural" and m["image_size"] == [24, 40]
    assert Image.open(tmp_path / "out" / "restored.png").size == (40, 24)


def test_observed_run_records_the_estimated_noise_level(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    clean = np.tile(np.linspace(0, 1, 48, dtype=np.float32), (48, 1))[..., None].repeat(3, -1)
    noisy = np.clip(clean + 0.05 * rng.standard_normal(clean.shape), 0, 1)
    Image.fromarray((noisy * 255).round().astype(np.uint8)).save(tmp_path / "noisy.png")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("observed: noisy.png\noperator: Identity\noutput: out\n")
    assert _run(recipe) == 0
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    expected = estimate_noise_level(load_image(tmp_path / "noisy.png"))
    assert m["sigma_y_estimated"] is True and m["sigma_y"] == pytest.approx(expected, abs=1e-6)
    assert 0.03 < m["sigma_y"] < 0.07  # independent: the noise added above
    assert m["method"] == "mmse" and m["steps"] >= 1
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [".pnpdiff-manifest.json", "metrics.csv", "metrics.json", "observed.png", "recipe.yaml",
                     "restored.png"]


def test_sixteen_bit_input_gives_sixteen_bit_outputs(tmp_path: Path) -> None:
    import imageio.v3 as iio

    ramp = np.tile(np.linspace(0, 65535, 64).round().astype(np.uint16), (64, 1))
    iio.imwrite(tmp_path / "ramp16.png", ramp)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("image: ramp16.png\noperator: {name: GaussianBlur, sigma: 1.0}\nnoise: {sigma_y: 0.0}\n"
                      "steps: 2\noutput: out\n")
    assert _run(recipe) == 0
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert m["bits"] == 16
    gt = iio.imread(tmp_path / "out" / "ground_truth.png")
    assert gt.dtype == np.uint16 and np.abs(gt.astype(np.int64) - ramp).max() <= 1
    restored = iio.imread(tmp_path / "out" / "restored.png")
    assert restored.dtype == np.uint16 and len(np.unique(restored)) > 256  # more levels than 8 bits hold


def test_output_recipe_reproduces_the_run_bit_for_bit(tmp_path: Path, monkeypatch) -> None:
    """The same recipe and seed twice give bit-identical restored.png; the recipe.yaml written
    with the outputs, run from another working directory into another folder, gives the same
    image again; metrics.csv holds the run's row."""
    import csv

    recipe = tmp_path / "r.yaml"
    recipe.write_text("image: skimage:coffee\nsize: 40\n"
                      "operator: {name: Inpaint, mask: {kind: random, p_missing: 0.5}}\n"
                      "noise: {sigma_y: 0.02, seed: 3}\nsteps: 3\nseed: 5\noutput: a\n")
    assert _run(recipe) == 0
    assert _run(recipe, "--output", str(tmp_path / "b")) == 0
    first = (tmp_path / "a" / "restored.png").read_bytes()
    assert (tmp_path / "b" / "restored.png").read_bytes() == first
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)
    assert _run(tmp_path / "a" / "recipe.yaml", "--output", "c") == 0
    assert (other / "c" / "restored.png").read_bytes() == first
    rows = list(csv.DictReader(open(tmp_path / "a" / "metrics.csv")))
    m = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert len(rows) == 1 and rows[0]["image"] == "skimage:coffee"
    assert float(rows[0]["psnr_restored"]) == m["psnr_restored"]
