"""``batch_size: auto`` in batch runs: the largest batch per image shape that fits the memory budget.

Each test names the bug it catches: a size that ignores the budget, the cap or the number of
images; a batch that changes an image's result; a resume that recomputes what an auto run
finished; a bad value that slips through or gives a traceback; torchrun ranks that pick
different sizes and so skip or duplicate images.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import pnpdiff.runs.batch
from pnpdiff.config.restore import load_recipe
from pnpdiff.costs import estimate_solve_bytes
from pnpdiff.errors import MemoryLimitError
from pnpdiff.outputs import MANIFEST
from pnpdiff.runs.single import run_recipe

ROOT = Path(__file__).resolve().parent.parent


def _make_folder(folder: Path, sizes: dict[int, int]) -> list[str]:
    """Smooth random colour images, ``{side: how many}``, named ``s<side>_<i>`` (sorted = by side)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    names = []
    for side, n in sizes.items():
        for i in range(n):
            coarse = rng.random((side // 4, side // 4, 3))
            a = np.kron(coarse, np.ones((4, 4, 1)))  # 4x4 blocks: an image with structure to restore
            Image.fromarray((a * 255).astype(np.uint8)).save(folder / f"s{side}_{i}.png")
            names.append(f"s{side}_{i}")
    return sorted(names)


def _recipe(tmp: Path, extra: str = "", batch: str = "auto") -> Path:
    r = tmp / "batch.yaml"
    r.write_text(
        "image: imgs\n"
        "operator: {name: GaussianBlur, sigma: 1.0}\n"
        "noise: {sigma_y: 0.02, seed: 3}\n"
        f"method: diffpir\nsteps: 2\nbatch_size: {batch}\nseed: 5\noutput: out\n" + extra
    )
    return r


def _need(k: int, side: int) -> int:
    """The estimate a batch of ``k`` colour ``side``^2 images needs, from the memory model itself
    (not from the batching code): what the run's memory check compares with the budget."""
    from pnpdiff.priors import load_prior

    shape = (k, 3, side, side)
    return estimate_solve_bytes(shape, shape, load_prior("natural"), "diffpir", torch.float32)


def _expected(limit: int, side: int, n: int, cap: int = 16) -> int:
    """The largest k <= min(n, cap) with _need(k) <= limit, by a plain scan (1 if none fits)."""
    fits = [k for k in range(1, min(n, cap) + 1) if _need(k, side) <= limit]
    return max(fits) if fits else 1


@pytest.fixture
def solve_sizes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """(image side, batch) of every solve call a batch run makes."""
    seen: list[tuple[int, int]] = []
    real = pnpdiff.runs.batch.restore

    def spy(recipe, y, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        seen.append((int(y.shape[-1]), int(y.shape[0])))
        return real(recipe, y, *args, **kwargs)

    monkeypatch.setattr(pnpdiff.runs.batch, "restore", spy)
    return seen


def test_the_cap_is_the_documented_one() -> None:
    assert pnpdiff.runs.batch.AUTO_BATCH_CAP == {"cpu": 16, "cuda": 64}


def test_auto_fits_the_budget_per_shape(tmp_path: Path, solve_sizes: list[tuple[int, int]]) -> None:
    """A tight max_memory: the largest batch under it, per shape (16^2 and 24^2 images need
    different sizes); a loose one: all images of a shape in one solve. Catches a size that
    ignores the budget, uses one shape's size for another, or exceeds the number of images."""
    _make_folder(tmp_path / "imgs", {16: 5, 24: 3})
    limit = _need(2, 16) + (_need(3, 16) - _need(2, 16)) // 2  # 2 of 16^2 fit, 3 do not
    k16, k24 = _expected(limit, 16, 5), _expected(limit, 24, 3)
    assert k16 == 2 and 1 <= k24 < 3, (k16, k24)  # the test's premise: a batch smaller than the images
    r = _recipe(tmp_path, extra=f"max_memory: {limit}\n")
    m = run_recipe(load_recipe(r), progress=False)
    assert m["computed"] == 8
    assert [b for s, b in solve_sizes if s == 16] == [2, 2, 1]
    assert [b for s, b in solve_sizes if s == 24] == [k24] * (3 // k24) + ([3 % k24] if 3 % k24 else [])
    assert m["batch_sizes"] == [{"shape": [3, 16, 16], "batch_size": 2}, {"shape": [3, 24, 24], "batch_size": k24}]

    solve_sizes.clear()
    loose = run_recipe(load_recipe(r, ["max_memory=unlimited", f"output={tmp_path / 'loose'}"]), progress=False)
    assert sorted(solve_sizes) == [(16, 5), (24, 3)]
    assert loose["batch_sizes"][0]["batch_size"] == 5
    # the resolved recipe records what the user asked for, not the sizes picked
    saved = yaml.safe_load((tmp_path / "loose" / "recipe.yaml").read_text())
    assert saved["batch_size"] == "auto"
    assert json.loads((tmp_path / "loose" / "metrics.json").read_text())["batch_sizes"] == loose["batch_sizes"]


def test_auto_is_capped(tmp_path: Path, solve_sizes: list[tuple[int, int]], monkeypatch: pytest.MonkeyPatch) -> None:
    """No budget at all still stops at the cap (an interrupted run must not lose everything)."""
    _make_folder(tmp_path / "imgs", {16: 6})
    monkeypatch.setitem(pnpdiff.runs.batch.AUTO_BATCH_CAP, "cpu", 4)
    run_recipe(load_recipe(_recipe(tmp_path, extra="max_memory: 'off'\n")), progress=False)
    assert solve_sizes == [(16, 4), (16, 2)]


def test_not_even_one_image_fits(tmp_path: Path) -> None:
    """auto must not hide the memory check: a budget below one image is refused, with the usual
    message and a hint, before any image is written."""
    _make_folder(tmp_path / "imgs", {16: 3})
    r = _recipe(tmp_path, extra=f"max_memory: {_need(1, 16) - 1}\n")
    with pytest.raises(MemoryLimitError, match="a 16x16 RGB image with diffpir.*max_memory="):
        run_recipe(load_recipe(r), progress=False)
    assert not (tmp_path / "out").exists()
    # an explicit batch that does not fit points to auto
    with pytest.raises(MemoryLimitError, match="batch of 3 .*or batch_size: auto"):
        run_recipe(load_recipe(r, [f"max_memory={_need(2, 16)}", "batch_size=3"]), progress=False)


def test_auto_gives_the_images_of_batch_size_1(tmp_path: Path) -> None:
    """An image's result does not depend on the batch auto put it in (seeds from its name): PSNR
    to 0.01 dB and PNGs within 1/255 of a batch_size 1 run."""
    names = _make_folder(tmp_path / "imgs", {16: 4, 24: 2})
    r = _recipe(tmp_path)
    one = run_recipe(load_recipe(r, ["batch_size=1", f"output={tmp_path / 'one'}"]), progress=False)
    auto = run_recipe(load_recipe(r, [f"output={tmp_path / 'auto'}"]), progress=False)
    assert [b["batch_size"] for b in auto["batch_sizes"]] == [4, 2]  # really batched
    a = {row["image"]: row for row in one["per_image"]}
    b = {row["image"]: row for row in auto["per_image"]}
    assert sorted(a) == sorted(b) == names
    for n in names:
        assert abs(a[n]["psnr_restored"] - b[n]["psnr_restored"]) <= 0.01, n
        ia = np.asarray(Image.open(tmp_path / "one" / n / "restored.png"), dtype=int)
        ib = np.asarray(Image.open(tmp_path / "auto" / n / "restored.png"), dtype=int)
        assert np.abs(ia - ib).max() <= 1, n


def _files(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.iterdir()) if p.is_file()}


def test_interrupted_auto_run_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C during the second auto batch keeps the first batch's images; the same command then
    computes only the rest (their files untouched), and an explicit batch_size finds all done
    (batch_size is not in the fingerprint, auto or not)."""
    names = _make_folder(tmp_path / "imgs", {16: 6})
    r = _recipe(tmp_path, extra=f"max_memory: {_need(2, 16)}\n")  # auto: 2 per batch
    real = pnpdiff.runs.batch._solve_batch
    calls = []

    def interrupted(recipe, batch, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        calls.append([name for name, _, _ in batch])
        if len(calls) == 2:
            raise KeyboardInterrupt
        yield from real(recipe, batch, *args, **kwargs)

    monkeypatch.setattr(pnpdiff.runs.batch, "_solve_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_recipe(load_recipe(r), progress=False)
    monkeypatch.setattr(pnpdiff.runs.batch, "_solve_batch", real)
    assert calls[0] == names[:2]
    out = tmp_path / "out"
    before = {n: _files(out / n) for n in names[:2]}
    assert all((out / n / MANIFEST).is_file() for n in names[:2])
    again = run_recipe(load_recipe(r), progress=False)
    assert again["resumed"] == 2 and again["computed"] == 4
    assert {n: _files(out / n) for n in names[:2]} == before, "a finished image was recomputed on resume"
    assert run_recipe(load_recipe(r, ["batch_size=3"]), progress=False)["computed"] == 0


# --------------------------------------------------------------------------------- validation
@pytest.mark.parametrize("value", ["0", "-1", "big", "1.5", "true", "[2]"])
def test_bad_batch_size_is_one_line(tmp_path: Path, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Through the CLI: exit 2, one line naming the key and what it accepts, nothing written."""
    from pnpdiff.cli import main

    _make_folder(tmp_path / "imgs", {16: 2})
    r = _recipe(tmp_path, batch=value)
    rc = main([str(r), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert "batch_size: expected an integer >= 1 or 'auto'" in err, err
    assert not (tmp_path / "out").exists()


def test_auto_override_on_the_command_line(tmp_path: Path) -> None:
    """batch_size=auto as a KEY=VALUE override: the dry-run plan shows the sizes it would pick; a
    bad override value is one line with exit 2 (a real subprocess: no traceback)."""
    _make_folder(tmp_path / "imgs", {16: 3, 24: 2})
    _recipe(tmp_path, batch="1")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    run = [sys.executable, "-m", "pnpdiff", "batch.yaml", "--dry-run"]
    p = subprocess.run([*run, "batch_size=auto", "max_memory=unlimited"], cwd=tmp_path, capture_output=True,
                       text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "5 to compute, auto: 3 (3x16x16), 2 (3x24x24) per denoiser call" in p.stdout, p.stdout
    assert "batch_size: auto" in p.stdout
    p = subprocess.run([*run, "batch_size=many"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "Traceback" not in p.stderr, p.stderr
    assert "batch_size: expected an integer >= 1 or 'auto'" in p.stderr and "got 'many'" in p.stderr


def test_dry_run_shows_the_sizes_the_run_picks_under_a_fixed_budget(tmp_path: Path) -> None:
    """With a fixed budget (PNPDIFF_MAX_MEMORY) just above 4 images of 16^2, the plan of --dry-run
    must show the size the real run then picks (metrics.json) -- 4, from a plain scan over the
    memory model. Before, the plan counted the weights of the prior it does not load against the
    budget (the run sizes its batches with the prior loaded) and showed a smaller size."""
    _make_folder(tmp_path / "imgs", {16: 6})
    _recipe(tmp_path)
    budget = _need(4, 16) + (_need(5, 16) - _need(4, 16)) // 2
    expected = _expected(budget, 16, 6)
    assert expected == 4
    from pnpdiff.costs import prior_weights_bytes

    assert _need(expected, 16) + prior_weights_bytes("natural") > budget  # the old plan's count would not fit
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PNPDIFF_MAX_MEMORY": str(budget)}
    run = [sys.executable, "-m", "pnpdiff", "batch.yaml", "--no-progress"]
    p = subprocess.run([*run, "--dry-run"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    assert f"6 to compute, auto: {expected} per denoiser call" in p.stdout, p.stdout
    p = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert m["batch_sizes"] == [{"shape": [3, 16, 16], "batch_size": expected}]


def test_default_batch_size_is_still_1(tmp_path: Path) -> None:
    """Resolved recipes of runs without batch_size stay as they were (batch_size: 1)."""
    r = tmp_path / "r.yaml"
    (tmp_path / "imgs").mkdir()
    r.write_text("image: imgs\noperator: Identity\n")
    recipe = load_recipe(r)
    assert recipe.batch_size == 1
    from pnpdiff.config.restore import recipe_to_dict

    assert recipe_to_dict(recipe)["batch_size"] == 1


# ------------------------------------------------------------------------------------ torchrun
_RANK_SCRIPT = """
import json, os, sys
import pnpdiff.runs.batch
from pnpdiff.cli import main

real = pnpdiff.runs.batch._solve_batch
log = []
fail = os.environ.get("FAIL_ON_RANK") == os.environ["RANK"]  # a bug (not a PnPError) in this rank's first solve

def logged(recipe, batch, *args, **kwargs):
    log.append([name for name, _, _ in batch])
    if fail:
        raise RuntimeError("injected failure")
    yield from real(recipe, batch, *args, **kwargs)

pnpdiff.runs.batch._solve_batch = logged
rc = main(["batch.yaml", "--no-progress"])
with open(f"batches_{os.environ['RANK']}.json", "w") as f:
    json.dump(log, f)
sys.exit(rc)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_two_ranks(tmp_path: Path, budgets: tuple[str | None, str | None], timeout: int,
                   fail_on_rank: int | None = None) -> list[tuple[int, str]]:
    """Run ``_RANK_SCRIPT`` as ranks 0 and 1 of one gloo group in ``tmp_path`` (``budgets``: each
    rank's ``PNPDIFF_MAX_MEMORY``, ``None`` to leave it as it is; ``fail_on_rank``: the rank whose
    first solve raises a ``RuntimeError``); ``(exit code, stderr)`` per rank."""
    port = str(_free_port())
    procs = []
    for rank, budget in enumerate(budgets):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "RANK": str(rank),
               "LOCAL_RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
               "MASTER_PORT": port, "CUDA_VISIBLE_DEVICES": ""}
        if budget is not None:
            env["PNPDIFF_MAX_MEMORY"] = budget
        if fail_on_rank is not None:
            env["FAIL_ON_RANK"] = str(fail_on_rank)
        procs.append(subprocess.Popen([sys.executable, "-c", _RANK_SCRIPT], cwd=tmp_path, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    errs = [p.communicate(timeout=timeout)[1] for p in procs]
    return [(p.returncode, err) for p, err in zip(procs, errs)]


def test_two_ranks_with_different_budgets_agree(tmp_path: Path) -> None:
    """Two ranks (gloo, CPU) whose memory budgets differ (PNPDIFF_MAX_MEMORY: off on rank 0, 2
    images of 16^2 on rank 1) must form the same batches: without agreement rank 0 would deal
    batches of 3 and rank 1 batches of 2, and images would be solved twice or never. Every image
    is solved exactly once, in the batches of the smaller size, and written once."""
    dist = pytest.importorskip("torch.distributed")
    if not dist.is_available():
        pytest.skip("torch without distributed support")
    names = _make_folder(tmp_path / "imgs", {16: 6})
    _recipe(tmp_path)
    tight = _need(2, 16) + (_need(3, 16) - _need(2, 16)) // 2
    for rc, err in _run_two_ranks(tmp_path, ("off", str(tight)), timeout=300):
        assert rc == 0, err[-3000:]
    logs = [json.loads((tmp_path / f"batches_{r}.json").read_text()) for r in (0, 1)]
    solved = sorted(n for log in logs for batch in log for n in batch)
    assert solved == names, logs  # each image exactly once
    # the batches of a one-process run with batch_size 2, dealt round-robin
    assert logs == [[names[0:2], names[4:6]], [names[2:4]]], logs
    out = tmp_path / "out"
    assert sorted(d.name for d in out.iterdir() if d.is_dir()) == names
    assert all((out / n / MANIFEST).is_file() for n in names)
    m = json.loads((out / "metrics.json").read_text())
    assert [row["image"] for row in m["per_image"]] == names
    assert m["batch_sizes"] == [{"shape": [3, 16, 16], "batch_size": 2}]


def test_a_rank_without_memory_stops_every_rank(tmp_path: Path) -> None:
    """Rank 1's budget is below one image; rank 0 has no limit. Both must stop with one line and
    exit 2 before any image is solved. Before, rank 1 stopped alone and rank 0 died at the next
    barrier with a gloo traceback ("Connection reset by peer", exit 1); with a launcher that keeps
    the peer's socket open it would wait there for the group's timeout."""
    dist = pytest.importorskip("torch.distributed")
    if not dist.is_available():
        pytest.skip("torch without distributed support")
    _make_folder(tmp_path / "imgs", {16: 4})
    _recipe(tmp_path)
    results = _run_two_ranks(tmp_path, ("off", str(_need(1, 16) // 2)), timeout=120)
    for rc, err in results:
        assert rc == 2, err[-3000:]
        assert "Traceback" not in err
    assert "another process" in results[0][1]
    assert "memory" in results[1][1] and "another process" not in results[1][1]
    for r in (0, 1):
        assert json.loads((tmp_path / f"batches_{r}.json").read_text()) == []  # nothing solved


def test_an_image_that_fails_on_one_rank_stops_every_rank_cleanly(tmp_path: Path) -> None:
    """A truncated PNG (its header reads, its pixels do not) is met by the rank that owns it only.
    That rank must report it in one line, the other rank must finish its own images, say which
    process stopped and why, and both exit 2 with no traceback. Before, the owner stopped alone and
    the other rank died at the next barrier with a gloo traceback (exit 1)."""
    dist = pytest.importorskip("torch.distributed")
    if not dist.is_available():
        pytest.skip("torch without distributed support")
    names = _make_folder(tmp_path / "imgs", {16: 4})
    bad = tmp_path / "imgs" / f"{names[1]}.png"  # batch 1 of 4: rank 1's first batch
    bad.write_bytes(bad.read_bytes()[:60])
    _recipe(tmp_path, batch="1")
    results = _run_two_ranks(tmp_path, (None, None), timeout=300)
    for rc, err in results:
        assert rc == 2, err[-3000:]
        assert "Traceback" not in err, err[-3000:]
    assert names[1] in results[1][1]  # the owner names the file
    assert "process 1" in results[0][1] and names[1] in results[0][1]
    out = tmp_path / "out"
    # rank 0 finished both of its images; they are kept, with their manifests
    assert all((out / n / MANIFEST).is_file() for n in (names[0], names[2]))


def test_a_bug_on_one_rank_lets_the_other_finish(tmp_path: Path) -> None:
    """An error that is not a PnPError (a bug, a CUDA error, ...) in rank 1's first solve: rank 1
    must end with that error's traceback, rank 0 must finish its own images, keep them, and stop
    with one line naming process 1 and the error. Before, rank 1 left the group alone and rank 0
    died at the next collective with a gloo traceback ("Connection closed by peer"), or waited there
    for the group's timeout under a launcher that keeps the socket open."""
    dist = pytest.importorskip("torch.distributed")
    if not dist.is_available():
        pytest.skip("torch without distributed support")
    names = _make_folder(tmp_path / "imgs", {16: 4})
    _recipe(tmp_path, batch="1")
    (rc0, err0), (rc1, err1) = _run_two_ranks(tmp_path, (None, None), timeout=300, fail_on_rank=1)
    assert rc1 != 0 and "RuntimeError: injected failure" in err1, err1[-3000:]
    assert rc0 == 2, err0[-3000:]
    assert "Traceback" not in err0 and "process 1" in err0 and "injected failure" in err0, err0[-3000:]
    # rank 0 solved both of its images (rank 1's script ends with the error, before its log is written)
    assert json.loads((tmp_path / "batches_0.json").read_text()) == [[names[0]], [names[2]]]
    out = tmp_path / "out"
    assert all((out / n / MANIFEST).is_file() for n in (names[0], names[2]))
    assert not (out / names[1]).exists() and not (out / names[3]).exists()
    m = json.loads((out / "metrics.json").read_text())
    assert [row["image"] for row in m["per_image"]] == [names[0], names[2]]
