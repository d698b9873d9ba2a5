"""Batch runs over a folder: what a user running a thousand images relies on.

Each test names the bug it catches: an interrupted run that loses finished images or recomputes
them, a result that depends on the batch or process an image landed in, a resume that ignores a
changed recipe, a user's file replaced, a flag parsed and ignored.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pnpdiff.config.restore import load_recipe
from pnpdiff.outputs import MANIFEST
from pnpdiff.runs.batch import derive_seed, list_inputs
from pnpdiff.runs.single import run_recipe

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "cat", "immunohistochemistry")


def _make_folder(folder: Path, size: int = 32, n: int = 6) -> list[str]:
    """``n`` crops of scikit-image photos, named ``p0_astronaut.png`` ... (sorted = made order)."""
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i, photo in enumerate(PHOTOS[:n]):
        a = getattr(data, photo)()
        h, w = a.shape[:2]
        s = min(h, w)
        a = a[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
        Image.fromarray(a).resize((size, size), Image.BICUBIC).save(folder / f"p{i}_{photo}.png")
        names.append(f"p{i}_{photo}")
    return names


def _recipe(tmp: Path, extra: str = "", steps: int = 4, batch: int = 2) -> Path:
    r = tmp / "batch.yaml"
    r.write_text(
        "image: imgs\n"
        "operator: {name: GaussianBlur, sigma: 1.5}\n"
        "noise: {sigma_y: 0.02, seed: 3}\n"
        f"steps: {steps}\nbatch_size: {batch}\nseed: 5\noutput: out\n" + extra
    )
    return r


def _state(folder: Path) -> dict[str, tuple[int, int, str]]:
    """(inode, mtime_ns, sha256) of every file below ``folder``: a recomputed or rewritten file
    changes at least one of them."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            st = p.stat()
            out[str(p.relative_to(folder))] = (st.st_ino, st.st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def _rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as f:
        return {r["image"]: r for r in csv.DictReader(f)}


def _cli(args: list[str], cwd: Path, **kw) -> subprocess.CompletedProcess:  # noqa: ANN003
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "pnpdiff", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, **kw)


# ------------------------------------------------------------------ interruption and resume
def _interrupt_after(tmp: Path, sig: int, n_done: int) -> tuple[int, str, dict[str, tuple[int, int, str]]]:
    """Start the CLI on the folder, send ``sig`` once ``n_done`` images are committed; return the
    exit status, stderr and the state of the committed image folders at that moment."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen([sys.executable, "-m", "pnpdiff", "batch.yaml", "--no-progress"], cwd=tmp, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = tmp / "out"
    t0 = time.monotonic()

    def committed() -> list[Path]:
        return [d for d in out.iterdir() if d.is_dir() and (d / MANIFEST).is_file()] if out.is_dir() else []

    while len(committed()) < n_done and p.poll() is None and time.monotonic() - t0 < 300:
        time.sleep(0.02)
    assert p.poll() is None, "the run ended before it could be interrupted: " + p.stderr.read().decode()
    p.send_signal(sig)
    _, err = p.communicate(timeout=120)
    done = committed()
    return p.returncode, err.decode(), {d.name: _state(d) for d in done}


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_batch_keeps_finished_images_and_resumes(tmp_path: Path, sig: int, code: int) -> None:
    """Acceptance: SIGINT (or SIGTERM) after the first images, rerun -> all 6, the earlier ones not
    recomputed (inode, mtime and bytes untouched), exit 0."""
    names = _make_folder(tmp_path / "imgs")
    _recipe(tmp_path, steps=40, batch=1)
    rc, err, before = _interrupt_after(tmp_path, sig, 2)
    assert rc == code, err
    assert "Traceback" not in err and err.strip().count("\n") == 0, err
    assert "run the same command again to resume" in err
    assert 2 <= len(before) < 6, (sorted(before), err)
    out = tmp_path / "out"
    left = [str(e.relative_to(out)) for e in out.rglob(".pnpdiff-partial-*")]
    assert not left, f"an interrupted commit left its temporary folder: {left}, {err}"
    # the run-level files list what was finished (rewritten after each batch: at most one behind)
    listed = set(_rows(out / "metrics.csv"))
    assert listed <= set(before) and len(listed) >= len(before) - 1, (listed, sorted(before))

    p = _cli(["batch.yaml", "--no-progress"], tmp_path)
    assert p.returncode == 0, p.stderr
    assert f"6 images ({len(before)} finished earlier)" in p.stdout, p.stdout
    for name, files in before.items():
        assert _state(out / name) == files, f"{name} was recomputed or rewritten on resume"
    assert sorted(d.name for d in out.iterdir() if d.is_dir()) == names
    for n in names:
        assert {"observed.png", "restored.png", "ground_truth.png", "comparison.png"} <= {
            e.name for e in (out / n).iterdir()}
    assert set(_rows(out / "metrics.csv")) == set(names)


def test_killed_run_resumes_and_cleans_its_temporary_folders(tmp_path: Path) -> None:
    """SIGKILL (a killed machine) cannot clean up: the rerun must still keep the finished images,
    remove pnpdiff's own leftovers and complete the rest."""
    names = _make_folder(tmp_path / "imgs")
    _recipe(tmp_path, steps=40, batch=1)
    rc, _, before = _interrupt_after(tmp_path, signal.SIGKILL, 1)
    assert rc == -signal.SIGKILL
    out = tmp_path / "out"
    (out / ".pnpdiff-partial-left-by-a-crash").mkdir()  # what a kill during a commit leaves
    p = _cli(["batch.yaml", "--no-progress"], tmp_path)
    assert p.returncode == 0, p.stderr
    for name, files in before.items():
        assert _state(out / name) == files
    assert sorted(d.name for d in out.iterdir() if d.is_dir()) == names
    assert not list(out.rglob(".pnpdiff-partial-*"))


# --------------------------------------------------------------- independence of the batch
def test_result_does_not_depend_on_the_batch(tmp_path: Path) -> None:
    """An image solved in a batch of 3 equals the same image solved alone (its seeds come from its
    name, its noise from its own generator): to 0.01 dB, and visually identical (max 1/255)."""
    names = _make_folder(tmp_path / "imgs")
    r = _recipe(tmp_path, steps=4, batch=3)
    one = run_recipe(load_recipe(r, ["batch_size=1", f"output={tmp_path / 'one'}"]), progress=False)
    three = run_recipe(load_recipe(r, [f"output={tmp_path / 'three'}"]), progress=False)
    a = {row["image"]: row for row in one["per_image"]}
    b = {row["image"]: row for row in three["per_image"]}
    assert sorted(a) == names
    for n in names:
        assert abs(a[n]["psnr_restored"] - b[n]["psnr_restored"]) <= 0.01, n
        ia = np.asarray(Image.open(tmp_path / "one" / n / "restored.png"), dtype=int)
        ib = np.asarray(Image.open(tmp_path / "three" / n / "restored.png"), dtype=int)
        assert np.abs(ia - ib).max() <= 1, n
    # and the image's result is the same in another folder, next to other images
    solo = tmp_path / "solo"
    solo.mkdir()
    shutil.copy(tmp_path / "imgs" / f"{names[3]}.png", solo)
    s = run_recipe(load_recipe(r, [f"image={solo}", "batch_size=1", f"output={tmp_path / 'solo_out'}"]), progress=False)
    assert s["per_image"][0]["psnr_restored"] == a[names[3]]["psnr_restored"]
    assert (tmp_path / "solo_out" / names[3] / "restored.png").read_bytes() == (
        tmp_path / "one" / names[3] / "restored.png").read_bytes()


def test_derived_seeds_are_independent_streams() -> None:
    """The measurement noise and the solver noise of an image must not be the same draws, even
    with equal run seeds (a correlation that biases every result); different images differ."""
    assert derive_seed(0, "a", "noise") != derive_seed(0, "a", "solver")
    assert derive_seed(0, "a", "noise") != derive_seed(0, "b", "noise")
    assert derive_seed(0, "a", "noise") != derive_seed(1, "a", "noise")
    assert derive_seed(7, "a", "solver") == derive_seed(7, "a", "solver")
    assert 0 <= derive_seed(2**40, "x" * 500, "noise") < 2**63


def test_torchrun_two_ranks_equal_one_process(tmp_path: Path) -> None:
    """Acceptance: torchrun --nproc_per_node=2 (gloo, CPU) merges metrics.csv equal to a
    one-process run's to 0.01 dB on every image; with the same batch size, bit-identical images."""
    pytest.importorskip("torch.distributed.run")
    names = _make_folder(tmp_path / "imgs")
    _recipe(tmp_path, steps=4, batch=2)
    # the same threads per process in both runs (torchrun's default is 1): CPU kernels may sum in
    # a different order with another thread count, which changes the last bits
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    single = subprocess.run([sys.executable, "-m", "pnpdiff", "batch.yaml", "output=single", "--no-progress"],
                            cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert single.returncode == 0, single.stderr
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        "-m", "pnpdiff", "batch.yaml", "output=multi", "--no-progress"],
                       cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.count("pnpdiff: 6 images") == 1, p.stdout  # rank 0 alone prints the summary
    a, b = _rows(tmp_path / "single" / "metrics.csv"), _rows(tmp_path / "multi" / "metrics.csv")
    assert sorted(a) == sorted(b) == names
    for n in names:
        assert abs(float(a[n]["psnr_restored"]) - float(b[n]["psnr_restored"])) <= 0.01
        assert (tmp_path / "single" / n / "restored.png").read_bytes() == (
            tmp_path / "multi" / n / "restored.png").read_bytes(), n


# ----------------------------------------------------------------------- resume semantics
def test_resume_recomputes_when_the_recipe_or_the_input_changed(tmp_path: Path) -> None:
    names = _make_folder(tmp_path / "imgs", n=3)
    r = _recipe(tmp_path, steps=3, batch=3)
    first = run_recipe(load_recipe(r), progress=False)
    assert first["computed"] == 3 and first["resumed"] == 0
    again = run_recipe(load_recipe(r), progress=False)
    assert again["computed"] == 0 and again["resumed"] == 3
    # batch_size changes how the run is carried out, not what it computes
    assert run_recipe(load_recipe(r, ["batch_size=1"]), progress=False)["computed"] == 0
    # a setting that changes the result: every image again
    changed = run_recipe(load_recipe(r, ["operator.sigma=2.0"]), progress=False)
    assert changed["computed"] == 3
    # a replaced input file (same name): that image only
    Image.fromarray(np.zeros((32, 32, 3), np.uint8) + 90).save(tmp_path / "imgs" / f"{names[1]}.png")
    redo = run_recipe(load_recipe(r, ["operator.sigma=2.0"]), progress=False)
    assert redo["computed"] == 1 and redo["resumed"] == 2


def test_a_file_the_user_edited_is_never_replaced(tmp_path: Path) -> None:
    names = _make_folder(tmp_path / "imgs", n=2)
    r = _recipe(tmp_path, steps=3, batch=1)
    assert _cli(["batch.yaml", "--no-progress"], tmp_path).returncode == 0
    edited = tmp_path / "out" / names[0] / "restored.png"
    edited.write_bytes(b"my retouched version")
    p = _cli(["batch.yaml", "operator.sigma=2", "--no-progress"], tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr and "restored.png" in p.stderr, p.stderr
    assert edited.read_bytes() == b"my retouched version"
    # a folder of the user's own with an image's name is refused too
    user = tmp_path / "out2" / names[1]
    user.mkdir(parents=True)
    (user / "notes.txt").write_text("mine")
    p = _cli(["batch.yaml", "output=out2", "--no-progress"], tmp_path)
    assert p.returncode == 2 and names[1] in p.stderr and "--overwrite" in p.stderr, p.stderr
    assert sorted(e.name for e in user.iterdir()) == ["notes.txt"]
    # --overwrite writes pnpdiff's files beside the user's, never replacing one
    p = _cli(["batch.yaml", "output=out2", "--overwrite", "--no-progress"], tmp_path)
    assert p.returncode == 0, p.stderr
    assert (user / "notes.txt").read_text() == "mine" and (user / "restored.png").is_file()
    assert r.is_file()


# ------------------------------------------------------------------------ what is written
def test_save_list_and_intermediates_strip(tmp_path: Path) -> None:
    names = _make_folder(tmp_path / "imgs", n=2)
    r = _recipe(tmp_path, steps=6, batch=2, extra="save: [restored]\nintermediates: 3\n")
    m = run_recipe(load_recipe(r), progress=False)
    for n in names:
        files = sorted(e.name for e in (tmp_path / "out" / n).iterdir())
        assert files == [MANIFEST, "intermediates.png", "restored.png"], files
        strip = Image.open(tmp_path / "out" / n / "intermediates.png")
        tile = Image.open(tmp_path / "out" / n / "restored.png").width * 5  # 32 px -> enlarged to 160
        assert 3 * tile < strip.width < 4 * tile, strip.size  # three frames side by side
    assert {"psnr_restored", "ssim_restored"} <= set(m["per_image"][0])  # metrics even without comparison
    assert m["psnr_restored_mean"] == pytest.approx(np.mean([row["psnr_restored"] for row in m["per_image"]]),
                                                    abs=1e-3)
    # a rerun that asks for more files recomputes; resume needs every requested file
    m2 = run_recipe(load_recipe(r, ["save=[restored, comparison]"]), progress=False)
    assert m2["computed"] == 2


def test_observed_folder_with_estimated_noise(tmp_path: Path) -> None:
    """Observed photos (no ground truth, sigma_y estimated per image): each image gets its own
    noise level, so they are solved one by one even with batch_size 4."""
    _make_folder(tmp_path / "imgs", n=3)
    r = tmp_path / "obs.yaml"
    r.write_text("observed: imgs\noperator: {name: GaussianBlur, sigma: 1.0}\nsteps: 2\nbatch_size: 4\noutput: o\n")
    m = run_recipe(load_recipe(r), progress=False)
    assert m["images"] == 3 and "psnr_restored_mean" not in m
    sig = {row["image"]: row["sigma_y"] for row in m["per_image"]}
    assert all(row["sigma_y_estimated"] for row in m["per_image"]) and len(set(sig.values())) == 3
    assert sorted(e.name for e in (tmp_path / "o" / "p0_astronaut").iterdir()) == [
        MANIFEST, "observed.png", "restored.png"]


def test_glob_input_and_dry_run_writes_nothing(tmp_path: Path) -> None:
    names = _make_folder(tmp_path / "imgs")
    (tmp_path / "imgs" / "readme.txt").write_text("not an image")
    assert [p.stem for p in list_inputs(str(tmp_path / "imgs"))] == names  # the folder skips non-images
    assert [p.stem for p in list_inputs(str(tmp_path / "imgs" / "p[0-2]*.png"))] == names[:3]
    _recipe(tmp_path)
    p = _cli(["batch.yaml", "image=imgs/p[0-2]*.png", "--dry-run"], tmp_path)
    assert p.returncode == 0, p.stderr
    assert "# batch: 3 images" in p.stdout and "0 finished already, 3 to compute, 2 per denoiser call" in p.stdout
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("change, needle", [
    ("image: empty", "holds no images"),
    ("image: 'imgs/*.tiff'", "no file matches"),
    ("batch_size: 0", "batch_size: expected an integer >= 1"),
    ("batch_size: two", "batch_size: expected an integer >= 1"),
    ("save: [restored, sharpened]", "save[1]: expected one of observed, restored, ground_truth, comparison"),
    ("intermediates: -2", "intermediates: expected an integer >= 0"),
    ("dup", "would share the output folder 'p0_astronaut'"),
])
def test_batch_mistakes_give_one_line(tmp_path: Path, change: str, needle: str) -> None:
    _make_folder(tmp_path / "imgs", n=2)
    (tmp_path / "empty").mkdir()
    if change == "dup":
        Image.open(tmp_path / "imgs" / "p0_astronaut.png").save(tmp_path / "imgs" / "p0_astronaut.jpg")
        change = ""
    r = _recipe(tmp_path, extra="")
    text = r.read_text()
    key = change.split(":")[0]
    if key:
        text = "\n".join(ln for ln in text.splitlines() if not ln.startswith(key + ":")) + "\n" + change + "\n"
    r.write_text(text)
    p = _cli(["batch.yaml", "--no-progress"], tmp_path)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and needle in p.stderr, p.stderr
    assert not (tmp_path / "out").exists()


def test_save_of_a_ground_truth_file_needs_a_ground_truth(tmp_path: Path) -> None:
    r = tmp_path / "r.yaml"
    r.write_text("observed: skimage:camera\noperator: Identity\nsave: [restored, comparison]\n")
    p = _cli(["r.yaml"], tmp_path)
    assert p.returncode == 2 and "save[1]: comparison needs a ground truth" in p.stderr, p.stderr


def test_recursive_glob_never_reads_the_runs_own_outputs(tmp_path: Path) -> None:
    """An output folder inside the input tree: a rerun must not take restored.png & co. for inputs."""
    names = _make_folder(tmp_path / "data" / "a", n=2)
    r = tmp_path / "g.yaml"
    r.write_text("image: 'data/**/*.png'\noperator: {name: GaussianBlur, sigma: 1.0}\nsteps: 2\noutput: data/out\n")
    first = run_recipe(load_recipe(r), progress=False)
    second = run_recipe(load_recipe(r), progress=False)
    assert [row["image"] for row in second["per_image"]] == names
    assert first["computed"] == 2 and second["computed"] == 0 and second["resumed"] == 2


def test_torchrun_on_a_single_image_recipe_is_refused(tmp_path: Path, monkeypatch, capsys) -> None:
    """Every rank would restore the same image into the same folder: one clear line instead."""
    from pnpdiff.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    rc = main([str(ROOT / "recipes" / "deblur.yaml"), f"output={tmp_path / 'x'}", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "without torchrun" in err and err.count("\n") == 1, err
    assert not (tmp_path / "x").exists()
