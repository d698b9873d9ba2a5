"""Acceptance: a DPS-repo task config, a DiffPIR-style config, DiffPIR's and DAPS's published configs run
unchanged through the CLI, and ``--dry-run`` shows their noise levels converted (0.05 on [-1, 1] -> 0.025;
12.75/255 -> 0.05) and what DiffPIR's scripts would run instead of the values written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent

#: the layout of DPS's configs/super_resolution_config.yaml (as users have it: tuple tag included)
DPS_SR = """\
conditioning:
  method: ps
  params:
    scale: 0.3

data:
  name: ffhq
  root: ./data/samples/

measurement:
  operator:
    name: super_resolution
    in_shape: !!python/tuple [1, 3, 256, 256]
    scale_factor: 4

  noise:
    name: gaussian
    sigma: 0.05
"""

DIFFPIR = """\
noise_level_img: 12.75
iter_num: 100
lambda_: 1.0
zeta: 0.1
sf: 4
testsets: testsets
testset_name: demo
skip_type: quad
"""


def _photos(folder: Path, n: int = 2) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        a = (rng.random((8, 8, 3)) * 255).astype(np.uint8)
        Image.fromarray(a).resize((64, 64), Image.BICUBIC).save(folder / f"img{i}.png")


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "pnpdiff", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=600)


def test_dps_repo_config_runs_unchanged(tmp_path: Path) -> None:
    cfg = tmp_path / "configs" / "super_resolution_config.yaml"
    cfg.parent.mkdir()
    cfg.write_text(DPS_SR)
    _photos(tmp_path / "configs" / "data" / "samples")
    dry = _cli([str(cfg), "--dry-run"], tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "sigma_y: 0.025" in dry.stdout and "measurement.noise.sigma" in dry.stdout
    assert "zeta: 0.15" in dry.stdout  # scale 0.3 on [-1, 1] -> zeta 0.15 (tests/test_peers.py derives it)
    assert not (tmp_path / "outputs").exists()
    # small and short for the test; the file itself is unchanged
    run = _cli([str(cfg), "size=32", "steps=3", "--no-progress"], tmp_path)
    assert run.returncode == 0, run.stderr
    assert "2 images" in run.stdout, run.stdout
    out = tmp_path / "outputs" / "super_resolution_config"
    assert sorted(d.name for d in out.iterdir() if d.is_dir()) == ["img0", "img1"]
    assert "method: dps" in (out / "recipe.yaml").read_text()


def test_diffpir_style_config_runs_unchanged(tmp_path: Path) -> None:
    cfg = tmp_path / "sisr.yaml"
    cfg.write_text(DIFFPIR)
    _photos(tmp_path / "testsets" / "demo")
    dry = _cli([str(cfg), "--dry-run"], tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "sigma_y: 0.05" in dry.stdout and "noise_level_img" in dry.stdout and "lam: 0.25" in dry.stdout
    run = _cli([str(cfg), "steps=3", "--no-progress"], tmp_path)
    assert run.returncode == 0, run.stderr
    assert "2 images" in run.stdout and "diffpir, 3 steps" in run.stdout, run.stdout


def test_a_peer_config_mistake_is_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(DPS_SR.replace("name: gaussian", "name: laplace"))
    p = _cli([str(cfg)], tmp_path)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "measurement.noise" in p.stderr, p.stderr


# ---------------------------------------------------------------------------------------------
# the peers' own published configs (tests/test_peers_published.py holds their texts), in-process
# ---------------------------------------------------------------------------------------------
def _main(args: list[str], cwd: Path, monkeypatch, capsys) -> tuple[int, str, str]:
    from pnpdiff.cli import main

    monkeypatch.chdir(cwd)
    try:
        rc = main(args)
    except SystemExit as e:  # the CLI's one-line errors
        rc = int(e.code or 0)
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize("name", ["sr-2023", "deblur-current", "inpaint-current"])
def test_diffpir_published_configs_run_unchanged(name: str, tmp_path: Path, monkeypatch, capsys) -> None:
    """DiffPIR's configs/{sisr,deblur,inpaint}.yaml run as published (the 2023 sisr with its
    ``batch_size: 16``), with prior=natural for their ffhq checkpoint and a small size and step count."""
    from test_peers_published import DIFFPIR_PUBLISHED

    cfg = tmp_path / "configs" / f"{name.split('-')[0]}.yaml"
    cfg.parent.mkdir()
    cfg.write_text(DIFFPIR_PUBLISHED[name])
    _photos(tmp_path / "configs" / "testsets" / "demo_test")  # cwd '' + testset_name, relative to the file
    size = "64" if name.startswith("deblur") else "32"  # its 61-pixel kernel needs a 64-pixel image
    rc, out, err = _main([str(cfg), "prior=natural", f"size={size}", "--steps", "2", "--no-progress", "--output",
                          str(tmp_path / "out")], tmp_path, monkeypatch, capsys)
    assert rc == 0, err
    assert "2 images, diffpir, 2 steps" in out, out


def test_diffpir_dry_run_says_what_the_script_would_run(tmp_path: Path, monkeypatch, capsys) -> None:
    from test_peers_published import DIFFPIR_PUBLISHED

    cfg = tmp_path / "deblur.yaml"
    cfg.write_text(DIFFPIR_PUBLISHED["deblur-current"])
    rc, out, err = _main([str(cfg), "prior=natural", "image=skimage:astronaut", "--dry-run"], tmp_path, monkeypatch,
                         capsys)
    assert rc == 0, err
    assert "run 7 x lambda_ = 7, not the value written (that is options.lam=1.75)" in out
    assert "run 3 x zeta = 0.3" in out and "lam: 0.25" in out and "zeta: 0.1" in out  # pnpdiff runs the written


def test_daps_task_config_runs_unchanged(tmp_path: Path, monkeypatch, capsys) -> None:
    """DAPS's configs/task/down_sampling.yaml (four task groups) runs its pixel group on pnpdiff's daps;
    a task config names no images, so image= is given, as the table says."""
    from test_peers_published import DAPS_PUBLISHED

    cfg = tmp_path / "down_sampling.yaml"
    cfg.write_text(DAPS_PUBLISHED["down_sampling"])
    _photos(tmp_path / "demo")
    rc, out, err = _main([str(cfg), "image=demo", "--dry-run"], tmp_path, monkeypatch, capsys)
    assert rc == 0, err
    assert "is a DAPS config, translated key by key" in out and "pixel.mcmc_sampler_config.tau" in out
    assert "method: daps" in out and "sigma_y: 0.025" in out and "langevin_steps: 100" in out
    rc, out, err = _main([str(cfg), "image=demo", "size=32", "--steps", "2", "options.langevin_steps=2",
                          "--no-progress", "--output", str(tmp_path / "out")], tmp_path, monkeypatch, capsys)
    assert rc == 0, err
    assert "2 images, daps, 2 steps" in out, out


def test_dps_phase_retrieval_config_runs_unchanged(tmp_path: Path, monkeypatch, capsys) -> None:
    from test_peers_published import DPS_PUBLISHED

    from pnpdiff.config.restore import RECIPE_OPERATORS

    if "PhaseRetrieval" not in RECIPE_OPERATORS:
        pytest.skip("recipes do not build PhaseRetrieval yet")
    cfg = tmp_path / "configs" / "phase_retrieval_config.yaml"
    cfg.parent.mkdir()
    cfg.write_text(DPS_PUBLISHED["phase_retrieval"])
    _photos(tmp_path / "configs" / "data" / "samples")
    rc, out, err = _main([str(cfg), "size=32", "--steps", "2", "--no-progress", "--output", str(tmp_path / "out")],
                         tmp_path, monkeypatch, capsys)
    assert rc == 0, err
    assert "2 images, dps, 2 steps" in out, out
