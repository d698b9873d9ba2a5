"""python -m pnpdiff RECIPE: output folder contents, overrides, one-line errors, no half-writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pnpdiff.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _recipe(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "r.yaml"
    p.write_text(text)
    return p


SMALL = """
image: skimage:astronaut
size: 48
operator: {name: GaussianBlur, sigma: 1.5}
noise: {sigma_y: 0.02, seed: 0}
steps: 4
seed: 0
output: out
"""


def test_recipe_writes_all_outputs(tmp_path: Path, capsys) -> None:
    rc = main([str(_recipe(tmp_path, SMALL)), "--output", str(tmp_path / "out"), "--no-progress"])
    assert rc == 0
    out = tmp_path / "out"
    names = sorted(p.name for p in out.iterdir())
    assert names == [".pnpdiff-manifest.json", "comparison.png", "ground_truth.png", "metrics.csv", "metrics.json",
                     "observed.png", "recipe.yaml", "restored.png"]
    manifest = json.loads((out / ".pnpdiff-manifest.json").read_text())
    assert sorted(manifest["files"]) == names[1:]
    m = json.loads((out / "metrics.json").read_text())
    for key in ("psnr_observed", "psnr_restored", "ssim_observed", "ssim_restored", "method", "steps", "seconds"):
        assert key in m
    assert m["steps"] == 4 and m["method"] == "diffpir"
    assert m["psnr_restored"] > m["psnr_observed"]
    # the --steps override is honoured, and rerunning replaces the previous output
    assert main([str(_recipe(tmp_path, SMALL)), "--output", str(out), "--steps", "2", "--no-progress"]) == 0
    assert json.loads((out / "metrics.json").read_text())["steps"] == 2
    assert not [p for p in tmp_path.rglob(".pnpdiff-partial-*")]


def test_recipe_without_steps_reports_the_steps_it_ran(tmp_path: Path) -> None:
    """metrics.json records the default step count solve used (DPIR: K = 8 iterations in its
    paper; a method without a table entry: solve's fallback of 50)."""
    from pnpdiff.api import FALLBACK_STEPS, default_steps

    for method, expected in (("dpir", 8), ("reddiff", FALLBACK_STEPS)):
        text = SMALL.replace("steps: 4\n", f"method: {method}\n")
        out = tmp_path / method
        assert main([str(_recipe(tmp_path, text)), "--output", str(out), "--no-progress"]) == 0
        assert json.loads((out / "metrics.json").read_text())["steps"] == expected
    assert default_steps("natural", "sr", "dpir") == 24
    assert default_steps("natural", "deblur", "dps") == FALLBACK_STEPS == 50


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (SMALL + "colour: red\n", "unknown key"),
        (SMALL.replace("GaussianBlur", "Blurr"), "unknown operator"),
        (SMALL.replace("skimage:astronaut", "skimage:nothing"), "scikit-image has no test image"),
        (SMALL + "options: {zeta: 0.5, lamb: 2}\n", "no option 'lamb'"),
        (SMALL.replace("noise: {sigma_y: 0.02, seed: 0}", "noise: {sigma: 0.02}"), "unknown noise key"),
    ],
)
def test_user_errors_one_line_exit_2(tmp_path: Path, capsys, text: str, needle: str) -> None:
    rc = main([str(_recipe(tmp_path, text)), "--output", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2
    assert needle in err and err.count("\n") == 1 and err.startswith("pnpdiff: error:")
    assert not (tmp_path / "out").exists()


def test_refuses_to_overwrite_a_foreign_folder(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    rc = main([str(_recipe(tmp_path, SMALL)), "--output", str(out), "--no-progress"])
    assert rc == 2
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]


def test_module_entry_point_reports_missing_file(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "pnpdiff", str(tmp_path / "missing.yaml")],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2
    assert "recipe file not found" in r.stderr and r.stderr.count("\n") == 1


@pytest.mark.slow
def test_deblur_recipe_end_to_end(tmp_path: Path) -> None:
    """The README's main job: restored PSNR at least 4 dB above the observed one."""
    rc = main([str(ROOT / "recipes" / "deblur.yaml"), "--output", str(tmp_path / "deblur"), "--no-progress"])
    assert rc == 0
    m = json.loads((tmp_path / "deblur" / "metrics.json").read_text())
    assert m["psnr_restored"] >= m["psnr_observed"] + 4.0


def test_console_script_names_itself(tmp_path: Path) -> None:
    """The installed ``pnpdiff`` script is the same program and its usage line says ``pnpdiff``
    (``python -m pnpdiff`` says that instead)."""
    import shutil

    exe = shutil.which("pnpdiff") or str(Path(sys.executable).parent / "pnpdiff")
    if not Path(exe).exists():
        pytest.skip("the pnpdiff console script is not installed")
    r = subprocess.run([exe, "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("usage: pnpdiff "), r.stdout
    r = subprocess.run([sys.executable, "-m", "pnpdiff", "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("usage: python -m pnpdiff "), r.stdout


def test_overrides_are_honoured_from_the_readme_command(tmp_path: Path) -> None:
    """``python -m pnpdiff recipes/deblur.yaml steps=3 size=64 output=X``: X relative to the
    working directory, 3 steps, a 64x64 image."""
    r = subprocess.run([sys.executable, "-m", "pnpdiff", str(ROOT / "recipes" / "deblur.yaml"), "steps=3", "size=64",
                        "output=X", "operator.sigma=2", "--no-progress"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "X" / "metrics.json").read_text())
    assert m["steps"] == 3 and m["image_size"] == [64, 64] and m["operator"]["sigma"] == 2


@pytest.mark.parametrize(
    ("override", "needle"),
    [("steps=abc", "steps"), ("operator.sigma=three", "operator.sigma"), ("colour=red", "colour"),
     ("steps", "KEY=VALUE"), ("=5", "KEY=VALUE"), ("noise.sigma_y=-1", "noise.sigma_y"), ("size=[64]", "size"),
     ("steps.x=1", "steps")],
)
def test_bad_overrides_one_line_exit_2(tmp_path: Path, capsys, override: str, needle: str) -> None:
    rc = main([str(_recipe(tmp_path, SMALL)), override, "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and needle in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.yaml"]


def test_dry_run_prints_the_resolved_recipe_and_writes_nothing(tmp_path: Path, capsys) -> None:
    import yaml

    recipe = _recipe(tmp_path, SMALL)
    assert main([str(recipe), "steps=7", "operator.sigma=2.5", "--dry-run"]) == 0
    out = capsys.readouterr().out
    d = yaml.safe_load(out)
    assert d["steps"] == 7 and d["operator"] == {"name": "GaussianBlur", "sigma": 2.5}
    assert d["method"] == "auto" and d["output"] == str((tmp_path / "out").resolve())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.yaml"]


@pytest.mark.parametrize("override, words", [
    ("operator.sigma=-1", "operator.sigma: must be a positive number"),
    ("image=no_such_file.png", "image file not found"),
    ("device=cuda", "CUDA is not available"),
])
def test_dry_run_meets_what_the_run_would_refuse_first(tmp_path: Path, capsys, override: str, words: str) -> None:
    """--dry-run says it validates: a bad operator value, a missing image and a device that is not
    there must stop it with the run's own one line (exit 2), not pass and fail in the real run."""
    if override == "device=cuda":
        import torch

        if torch.cuda.is_available():
            pytest.skip("CUDA is available here")
    recipe = _recipe(tmp_path, SMALL)
    assert main([str(recipe), override, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.yaml"]


def test_batch_dry_run_builds_the_operator_for_its_first_image(tmp_path: Path, capsys) -> None:
    from PIL import Image

    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (24, 16)).save(tmp_path / "imgs" / "a.png")
    text = SMALL.replace("image: skimage:astronaut\nsize: 48\n", "image: imgs\n")
    assert main([str(_recipe(tmp_path, text)), "--dry-run"]) == 0
    assert "1 to compute" in capsys.readouterr().out
    assert main([str(_recipe(tmp_path, text)), "operator.sigma=0", "--dry-run"]) == 2
    assert "operator.sigma" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imgs", "r.yaml"]


def test_list_and_version(capsys) -> None:
    import pnpdiff
    from pnpdiff.config.restore import RECIPE_OPERATORS
    from pnpdiff.priors import known_priors
    from pnpdiff.solvers import SOLVERS

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"pnpdiff {pnpdiff.__version__}"
    assert main(["--list"]) == 0
    words = [ln.split()[0] for ln in capsys.readouterr().out.splitlines() if ln.startswith("  ")]
    for name in [*SOLVERS, *known_priors(), *RECIPE_OPERATORS, "deblur.yaml"]:
        assert name in words, name


def test_run_ends_with_a_one_line_summary(tmp_path: Path, capsys) -> None:
    assert main([str(_recipe(tmp_path, SMALL)), "--no-progress"]) == 0
    out = capsys.readouterr().out
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert out.count("\n") == 1 and f"PSNR {m['psnr_restored']:.2f} dB" in out and str(tmp_path / "out") in out, out


def test_overrides_may_follow_the_flags(tmp_path: Path, capsys) -> None:
    assert main([str(_recipe(tmp_path, SMALL)), "--dry-run", "steps=9", "--no-progress", "size=40"]) == 0
    out = capsys.readouterr().out
    assert "steps: 9" in out and "size: 40" in out


def test_unquoted_max_memory_off_means_no_limit(tmp_path: Path, capsys) -> None:
    # YAML 1.1 reads an unquoted `off` as false; docs/errors.md tells users to write `max_memory: off`
    import yaml

    recipe = _recipe(tmp_path, SMALL + "max_memory: off\n")
    assert main([str(recipe), "--dry-run"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["max_memory"] == "off"
    assert main([str(_recipe(tmp_path, SMALL)), "max_memory=off", "--dry-run"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["max_memory"] == "off"


def test_a_reader_that_closes_the_pipe_gets_no_traceback() -> None:
    # ``--dry-run | head -1``: head exits after one line and the resolved recipe's later writes meet a
    # closed pipe; before, that ended in a BrokenPipeError traceback on stderr
    r = subprocess.run(f'"{sys.executable}" -m pnpdiff recipes/batch.yaml --dry-run | head -1', shell=True,
                       capture_output=True, text=True, cwd=ROOT)
    assert r.stdout.startswith("# recipes/batch.yaml resolved"), r.stdout
    assert "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, r.stderr


def test_a_recipe_on_an_image_smaller_than_the_ssim_window_reports_psnr_only(tmp_path: Path, capsys) -> None:
    """size: 8 has no 11x11 SSIM window: the run must finish (PSNR in metrics.json and the summary,
    no ssim keys) instead of failing after the solve."""
    text = SMALL.replace("size: 48", "size: 8").replace("sigma: 1.5", "sigma: 1.0")  # a 7x7 kernel fits 8x8
    assert main([str(_recipe(tmp_path, text)), "--no-progress"]) == 0
    out = capsys.readouterr().out
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert "psnr_restored" in m and not any(k.startswith("ssim") for k in m), m
    assert "PSNR" in out and "SSIM" not in out, out
