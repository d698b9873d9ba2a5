"""Hostile output folders through the CLI (issue 25): a manifest that names files outside its
folder, links where a folder or file should be, two runs into one folder at once, a killed run's
lock, a folder run into its own input folder, a resume through a replaced input folder.

Every case runs ``python -m pnpdiff`` in a temporary tree and asserts the exit status, one stderr
line naming the file or entry, no traceback, and every entry that existed before the run (inside
*and* outside the output folder) byte-identical afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from tree_utils import tree_snapshot as _tree

from pnpdiff.outputs import LOCK, MANIFEST

ROOT = Path(__file__).resolve().parents[1]

RECIPE = """
image: skimage:astronaut
size: 16
operator: {name: GaussianBlur, sigma: 1.5}
noise: {sigma_y: 0.02, seed: 0}
steps: 1
seed: 0
output: out
"""


def _cli(args: list[str], cwd: Path, **kw) -> subprocess.CompletedProcess:  # noqa: ANN003
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "pnpdiff", *args, "--no-progress"], cwd=cwd, capture_output=True,
                          text=True, env=env, timeout=300, **kw)


def _refused(p: subprocess.CompletedProcess, tmp: Path, before: dict, *words: str) -> None:
    """Exit 2, one stderr line holding ``words``, no traceback, nothing that existed changed."""
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr and p.stderr.strip().count("\n") == 0, p.stderr
    assert p.stderr.startswith("pnpdiff: error: "), p.stderr
    for w in words:
        assert w in p.stderr, (w, p.stderr)
    after = _tree(tmp)
    assert [k for k, v in before.items() if after.get(k) != v] == []


def _single(tmp: Path) -> Path:
    r = tmp / "r.yaml"
    r.write_text(RECIPE)
    return r


def _first_run(tmp: Path) -> Path:
    """A finished single-image output folder ``tmp/out``, written in this process (fast)."""
    from pnpdiff.config.restore import load_recipe
    from pnpdiff.runs.single import run_recipe

    run_recipe(load_recipe(_single(tmp)), output=tmp / "out", progress=False)
    return tmp / "out"


# ------------------------------------------------------------------------ the manifest is data
@pytest.mark.parametrize("kind", ["relative", "absolute"])
def test_a_manifest_naming_files_outside_its_folder_deletes_nothing(tmp_path: Path, kind: str) -> None:
    """The reported bug: a manifest listing ../victim.txt (or an absolute path) with the file's
    true sha256, rerun: pnpdiff deleted it, exit 0."""
    out = _first_run(tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's notes")
    name = "../victim.txt" if kind == "relative" else str(victim)
    data = json.loads((out / MANIFEST).read_text())
    data["files"][name] = [hashlib.sha256(victim.read_bytes()).hexdigest()]
    (out / MANIFEST).write_text(json.dumps(data))
    before = _tree(tmp_path)
    p = _cli(["r.yaml"], tmp_path)
    _refused(p, tmp_path, before, MANIFEST, repr(name), "not a plain file name")
    assert set(_tree(tmp_path)) == set(before)  # and nothing new either


# ----------------------------------------------------------------------------- links
@pytest.mark.parametrize("dangling", [True, False])
def test_an_output_folder_that_is_a_link_is_refused(tmp_path: Path, dangling: bool) -> None:
    """A dangling link gave a NotADirectoryError traceback; a link to a folder was written through."""
    _single(tmp_path)
    real = tmp_path / "elsewhere"
    if not dangling:
        real.mkdir()
        (real / "keep.txt").write_text("x")
    (tmp_path / "out").symlink_to(real)
    before = _tree(tmp_path)
    _refused(_cli(["r.yaml"], tmp_path), tmp_path, before, "output folder out is a symbolic link")
    assert set(_tree(tmp_path)) == set(before)


# ------------------------------------------------------------------ one run per output folder
_WORKER = r'''
import contextlib, io, json, os, sys, time, traceback
from pathlib import Path

gate, me, other, recipe, mode = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[5], sys.argv[6]
rounds = int(sys.argv[4])
from pnpdiff import outputs
from pnpdiff.cli import main

def wait_for(p, limit=120.0):
    t = time.monotonic()
    while not p.exists() and time.monotonic() - t < limit:
        time.sleep(0.005)

# make the two runs overlap for sure: a run that got the lock commits only once the other has
# tried to take it (the run itself is unchanged; without the lock both would commit)
state = {"round": 0}
take = outputs.OutputFolder._take_lock
def tried(self, fd):
    try:
        return take(self, fd)
    finally:
        (gate / f"tried-{state['round']}-{me}").touch()
outputs.OutputFolder._take_lock = tried
transaction = outputs.OutputFolder.transaction
@contextlib.contextmanager
def waiting(self):
    wait_for(gate / f"tried-{state['round']}-{other}")
    with transaction(self) as tmp:
        yield tmp
outputs.OutputFolder.transaction = waiting

(gate / f"ready-{me}").touch()
for k in range(rounds):
    state["round"] = k
    wait_for(gate / f"go-{k}")
    err = io.StringIO()
    out = f"fresh{k}/out" if mode == "fresh" else "existing"
    with contextlib.redirect_stderr(err):
        try:
            rc = main([recipe, "--output", out, "--no-progress"])
        except BaseException:
            traceback.print_exc()
            rc = -1
    (gate / f"result-{k}-{me}.json").write_text(json.dumps({"rc": rc, "stderr": err.getvalue(), "pid": os.getpid()}))
'''


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["fresh", "existing"])
def test_two_runs_into_one_folder_exactly_one_proceeds(tmp_path: Path, mode: str) -> None:
    """Two processes start the same recipe into one folder, 10 times: exactly one exits 0 and the
    other exits 2 with "in use by another pnpdiff run (pid <the winner>)", never a traceback
    (before: 'OSError: [Errno 39] Directory not empty', or both ran); nothing is lost or left."""
    rounds = 10
    _single(tmp_path)
    if mode == "existing":
        from pnpdiff.config.restore import load_recipe
        from pnpdiff.runs.single import run_recipe

        run_recipe(load_recipe(tmp_path / "r.yaml"), output=tmp_path / "existing", progress=False)
        (tmp_path / "existing" / "notes.txt").write_text("mine")
    gate = tmp_path / "gate"
    gate.mkdir()
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, str(script), str(gate), me, other, str(rounds), "r.yaml", mode],
                              cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for me, other in (("a", "b"), ("b", "a"))]
    try:
        for me in "ab":
            while not (gate / f"ready-{me}").exists():
                assert all(p.poll() is None for p in procs), [p.stderr.read().decode() for p in procs]
                time.sleep(0.01)
        for k in range(rounds):
            (gate / f"go-{k}").touch()
            results = []
            for me in "ab":
                f = gate / f"result-{k}-{me}.json"
                while not f.exists():
                    assert all(p.poll() is None for p in procs), [p.stderr.read().decode() for p in procs]
                    time.sleep(0.01)
                time.sleep(0.01)
                results.append(json.loads(f.read_text()))
            results.sort(key=lambda r: r["rc"])
            won, lost = results
            assert (won["rc"], lost["rc"]) == (0, 2), (k, results)
            folder = tmp_path / (f"fresh{k}/out" if mode == "fresh" else "existing")
            line = lost["stderr"]
            assert "Traceback" not in line and line.strip().count("\n") == 0, (k, line)
            assert re.fullmatch(
                rf"pnpdiff: error: output folder {re.escape(str(folder.relative_to(tmp_path)))} is in use by another "
                rf"pnpdiff run \(pid {won['pid']}\); .*\n", line), (k, line)
            manifest = json.loads((folder / MANIFEST).read_text())["files"]
            names = {p.name for p in folder.iterdir()} - {MANIFEST, "notes.txt"}
            assert names == set(manifest) and "restored.png" in names, (k, sorted(names))
            for n, hashes in manifest.items():
                assert hashlib.sha256((folder / n).read_bytes()).hexdigest() in hashes
            if mode == "existing":
                assert (folder / "notes.txt").read_text() == "mine"
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_a_killed_runs_lock_does_not_block_the_next(tmp_path: Path) -> None:
    """flock dies with its process: after SIGKILL the lock file is left, but not the lock."""
    r = _single(tmp_path)
    r.write_text(RECIPE.replace("steps: 1", "steps: 100000"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen([sys.executable, "-m", "pnpdiff", "r.yaml", "--no-progress"], cwd=tmp_path, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    lock = tmp_path / "out" / LOCK
    t0 = time.monotonic()
    while p.poll() is None and time.monotonic() - t0 < 240:
        if lock.is_file() and lock.read_text().strip() == str(p.pid):
            break
        time.sleep(0.02)
    assert p.poll() is None, p.stderr.read().decode()
    busy = _cli(["r.yaml", "--dry-run"], tmp_path)  # a dry run says so too
    assert busy.returncode == 2 and f"in use by another pnpdiff run (pid {p.pid})" in busy.stderr, busy.stderr
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert lock.is_file()  # a killed run cannot clean up
    done = _cli(["r.yaml", "steps=1"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "restored.png").is_file() and not lock.exists()


# ---------------------------------------------------------------------------- folder runs
def _photos(folder: Path, n: int = 2) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (16, 16), (40 * i, 90, 200 - 40 * i)).save(folder / f"p{i}.png")


def _batch(tmp: Path, image: str, output: str) -> None:
    (tmp / "b.yaml").write_text(RECIPE.replace("image: skimage:astronaut", f"image: '{image}'")
                                .replace("output: out", f"output: {output}").replace("size: 16\n", ""))


def test_a_glob_into_its_own_folder_says_why_no_file_is_left(tmp_path: Path) -> None:
    """photos/*.png into photos/ said 'no file matches the input pattern' though two files match."""
    _photos(tmp_path / "photos")
    _batch(tmp_path, "photos/*.png", "photos")
    before = _tree(tmp_path)
    _refused(_cli(["b.yaml"], tmp_path), tmp_path, before, "2 file(s) matching", "inside the output folder")


def test_a_resume_through_a_replaced_input_folder_is_refused(tmp_path: Path) -> None:
    """The image folder replaced by a link to another folder between a run and its resume: the
    resume read (and, for an output folder inside it, wrote) through the link."""
    from pnpdiff.config.restore import load_recipe
    from pnpdiff.runs.single import run_recipe

    _photos(tmp_path / "photos")
    _photos(tmp_path / "other", 3)
    _batch(tmp_path, "photos", "runs/out")
    run_recipe(load_recipe(tmp_path / "b.yaml"), progress=False)
    (tmp_path / "photos").rename(tmp_path / "photos.old")
    (tmp_path / "photos").symlink_to(tmp_path / "other")
    before = _tree(tmp_path)
    _refused(_cli(["b.yaml"], tmp_path), tmp_path, before, "input folder", "photos", "not resume")
    # an output folder inside an input folder that is a link is refused from the first run on
    _batch(tmp_path, "photos/*.png", "photos/results")
    before = _tree(tmp_path)
    _refused(_cli(["b.yaml"], tmp_path), tmp_path, before, "inside the input folder", "symbolic link")
    assert set(_tree(tmp_path)) == set(before)


def test_torchrun_ranks_share_their_runs_lock_and_all_stop_when_another_run_holds_it(tmp_path: Path) -> None:
    """Rank 0 holds the folder for its run (the other ranks rely on it, so a two-rank run into a
    fresh folder works); into a folder another run holds, every rank stops with the one line,
    none waits for another at a barrier."""
    pytest.importorskip("torch.distributed.run")
    from pnpdiff.outputs import OutputFolder

    _photos(tmp_path / "photos", 2)
    _batch(tmp_path, "photos", "out")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "pnpdiff",
           "b.yaml", "--no-progress"]
    with OutputFolder(tmp_path / "out", ["metrics.json"]).hold():
        before = _tree(tmp_path)
        p = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
        # (torchrun's launcher prints its own traceback for any rank that exits non-zero)
        assert p.returncode != 0 and str(ROOT / "pnpdiff") not in p.stderr, p.stderr[-3000:]
        # each rank says it (their lines may interleave on the shared pipe)
        assert p.stderr.count(f"in use by another pnpdiff run (pid {os.getpid()})") == 2, p.stderr[-3000:]
        assert p.stderr.count("pnpdiff: error: ") == 2, p.stderr[-3000:]
        assert _tree(tmp_path) == before
    p = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert {"p0", "p1", "metrics.csv"} <= {e.name for e in (tmp_path / "out").iterdir()}
    assert not (tmp_path / "out" / LOCK).exists()
