"""Acceptance: a DPS-repo task config and a DiffPIR-style config run unchanged through the CLI,
and ``--dry-run`` shows their noise levels converted (0.05 on [-1, 1] -> 0.025; 12.75/255 -> 0.05)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
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
    cfg.write_text(DPS_SR.replace("name: gaussian", "name: poisson"))
    p = _cli([str(cfg)], tmp_path)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "measurement.noise" in p.stderr, p.stderr
