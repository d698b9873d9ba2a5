"""OutputFolder: pnpdiff replaces only what it recorded as its own, and never leaves half a run."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from tree_utils import tree_snapshot as _tree

from pnpdiff.errors import OutputFolderError, PnPError
from pnpdiff.outputs import MANIFEST, OutputFolder

NAMES = ["restored.png", "metrics.json"]


def _write(out: OutputFolder, content: str = "run") -> None:
    with out.transaction() as tmp:
        for n in out.names:
            (tmp / n).write_text(f"{content}:{n}")


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_new_folder_has_outputs_and_manifest_with_ordinary_permissions(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out"
    old = os.umask(0o022)
    try:
        _write(OutputFolder(target, NAMES))
    finally:
        os.umask(old)
    assert sorted(p.name for p in target.iterdir()) == sorted([*NAMES, MANIFEST])
    # a folder made by mkdtemp would be 0700; the umask 022 gives 0755
    assert stat.S_IMODE(target.stat().st_mode) == 0o755
    manifest = json.loads((target / MANIFEST).read_text())
    assert sorted(manifest["files"]) == sorted(NAMES)
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".pnpdiff-partial-")]


def test_rerun_replaces_own_files_and_keeps_a_users_file(tmp_path: Path) -> None:
    target = tmp_path / "out"
    _write(OutputFolder(target, NAMES), "first")
    (target / "notes.txt").write_text("mine")
    _write(OutputFolder(target, NAMES), "second")
    assert (target / "notes.txt").read_text() == "mine"
    assert (target / "restored.png").read_text() == "second:restored.png"


def test_stale_own_files_are_removed_foreign_kept(tmp_path: Path) -> None:
    target = tmp_path / "out"
    _write(OutputFolder(target, [*NAMES, "comparison.png"]))
    (target / "keep.txt").write_text("mine")
    _write(OutputFolder(target, NAMES))
    assert sorted(p.name for p in target.iterdir()) == sorted([*NAMES, MANIFEST, "keep.txt"])


def test_a_folder_that_is_not_pnpdiffs_is_refused_even_with_a_metrics_json(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "metrics.json").write_text("{}")
    (proj / "paper.tex").write_text("x")
    before = _snapshot(proj)
    with pytest.raises(OutputFolderError, match="choose another output folder"):
        OutputFolder(proj, NAMES).check()
    # --overwrite writes beside foreign files but never replaces one: metrics.json is the user's
    with pytest.raises(OutputFolderError, match="metrics.json"):
        OutputFolder(proj, NAMES, overwrite=True).check()
    assert _snapshot(proj) == before
    # without a name clash, --overwrite adds pnpdiff's files and leaves paper.tex alone
    _write(OutputFolder(proj, ["restored.png"], overwrite=True))
    assert (proj / "paper.tex").read_text() == "x" and (proj / "metrics.json").read_text() == "{}"
    assert (proj / "restored.png").exists()


def test_a_pnpdiff_file_edited_by_the_user_becomes_theirs(tmp_path: Path) -> None:
    target = tmp_path / "out"
    _write(OutputFolder(target, NAMES))
    (target / "metrics.json").write_text("edited by hand")
    with pytest.raises(OutputFolderError, match="metrics.json"):
        OutputFolder(target, NAMES).check()
    assert (target / "metrics.json").read_text() == "edited by hand"


@pytest.mark.parametrize("kind", ["file", "file_parent", "proc"])
def test_unwritable_targets(tmp_path: Path, kind: str) -> None:
    f = tmp_path / "afile.txt"
    f.write_text("x")
    target = {"file": f, "file_parent": f / "sub", "proc": Path("/proc/pnpdiff-test")}[kind]
    if kind == "proc" and not Path("/proc").is_dir():
        pytest.skip("no /proc")
    with pytest.raises(OutputFolderError) as info:
        OutputFolder(target, NAMES).check()
    assert isinstance(info.value, PnPError) and isinstance(info.value, OSError)
    assert f.read_text() == "x"


def test_an_error_inside_the_run_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "new" / "out"
    with pytest.raises(RuntimeError), OutputFolder(target, NAMES).transaction() as tmp:
        (tmp / "restored.png").write_text("half")
        raise RuntimeError("solver failed")
    assert not (tmp_path / "new").exists()  # the parents it created are removed too
    existing = tmp_path / "old"
    _write(OutputFolder(existing, NAMES), "first")
    (existing / "notes.txt").write_text("mine")
    before = _snapshot(existing)
    with pytest.raises(KeyboardInterrupt), OutputFolder(existing, NAMES).transaction() as tmp:
        (tmp / "restored.png").write_text("half")
        raise KeyboardInterrupt
    assert _snapshot(existing) == before
    assert sorted(p.name for p in existing.iterdir()) == sorted([*NAMES, MANIFEST, "notes.txt"])


def test_interrupted_while_moving_files_every_file_stays_recorded(tmp_path: Path, monkeypatch) -> None:
    """Ctrl-C between two of the moves: the manifest written before them recognises both the old
    and the new content, so a rerun replaces both files and the user's file is untouched."""
    target = tmp_path / "out"
    _write(OutputFolder(target, NAMES), "first")
    (target / "notes.txt").write_text("mine")
    real_replace = os.replace
    calls = {"n": 0}

    def flaky(src, dst, **kw):  # noqa: ANN001, ANN003 - the moves go by name inside the opened folder
        if Path(dst).name in NAMES:
            calls["n"] += 1
            if calls["n"] == 2:
                raise KeyboardInterrupt
        return real_replace(src, dst, **kw)

    monkeypatch.setattr(os, "replace", flaky)
    with pytest.raises(KeyboardInterrupt):
        _write(OutputFolder(target, NAMES), "second")
    monkeypatch.setattr(os, "replace", real_replace)
    contents = {n: (target / n).read_text() for n in NAMES}
    assert sorted(contents.values()) == sorted(["second:metrics.json", "first:restored.png"]) or sorted(
        contents.values()) == sorted(["first:metrics.json", "second:restored.png"])
    assert not [p for p in target.iterdir() if p.name.startswith(".pnpdiff-partial-")]
    _write(OutputFolder(target, NAMES), "third")  # both are still recognised as pnpdiff's
    assert {n: (target / n).read_text() for n in NAMES} == {n: f"third:{n}" for n in NAMES}
    assert (target / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("existing", [False, True])
def test_an_interrupt_just_after_the_temporary_folder_appears_leaves_nothing(tmp_path: Path, monkeypatch,
                                                                            existing: bool) -> None:
    # Python runs a signal handler in the main thread even while that thread's mask defers the
    # signal, when another thread (torch's) received it: the interrupt can land right after the
    # temporary folder was made and before its path was known (a CI run left one behind)
    from pnpdiff import outputs

    target = tmp_path / "run"
    if existing:
        _write(OutputFolder(target, NAMES))
    before = sorted(p.name for p in tmp_path.rglob("*"))
    real_mkdir = os.mkdir

    def mkdir_then_interrupt(path, mode=0o777, *args, **kwargs):
        real_mkdir(path, mode, *args, **kwargs)
        if Path(path).name.startswith(outputs._PARTIAL):
            raise KeyboardInterrupt

    monkeypatch.setattr(os, "mkdir", mkdir_then_interrupt)
    with pytest.raises(KeyboardInterrupt), OutputFolder(target, NAMES).transaction():
        pass
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_signals_are_held_back_even_when_another_thread_receives_them() -> None:
    # the kernel gives a process-directed SIGINT to a thread that does not block it (here a helper
    # started before the block; in a run, torch's workers) and Python runs the handler in the main
    # thread at once: a signal mask alone let the interrupt land half-way through a commit
    import signal
    import threading
    import time

    from pnpdiff.outputs import _signals_deferred

    stop = threading.Event()
    helper = threading.Thread(target=stop.wait)
    helper.start()
    done = []
    try:
        with pytest.raises(KeyboardInterrupt), _signals_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(200):
                time.sleep(0.001)  # plenty of points where a handler could run
            done.append(True)
    finally:
        stop.set()
        helper.join()
    assert done == [True]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# ------------------------------------------------------------------ hostile folders (issue 25)

def _kept(before: dict, after: dict) -> list[str]:
    return [k for k, v in before.items() if after.get(k) != v]


@pytest.mark.parametrize("entry", ["../victim.txt", "ABS", "sub/../../victim.txt", "..", ".", "", MANIFEST,
                                   ".pnpdiff-lock"])
def test_a_manifest_entry_outside_the_folder_is_refused_and_nothing_is_touched(tmp_path: Path, entry: str) -> None:
    """The manifest is data: an entry naming a file outside the folder (with that file's true
    sha256) made the rerun delete it. Now the run refuses, naming the entry, before touching anything."""
    import hashlib

    target = tmp_path / "out"
    _write(OutputFolder(target, [*NAMES, "comparison.png"]))
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's")
    name = str(victim) if entry == "ABS" else entry
    data = json.loads((target / MANIFEST).read_text())
    data["files"][name] = [hashlib.sha256(victim.read_bytes()).hexdigest()]
    (target / MANIFEST).write_text(json.dumps(data))
    before = _tree(tmp_path)
    with pytest.raises(OutputFolderError, match="lists .*not a plain file name") as info:
        _write(OutputFolder(target, NAMES), "second")  # comparison.png would be a stale file to remove
    assert repr(name) in str(info.value)
    assert _kept(before, _tree(tmp_path)) == [] and set(_tree(tmp_path)) == set(before)


def test_links_inside_the_folder_are_never_replaced_removed_or_followed(tmp_path: Path) -> None:
    import hashlib

    target = tmp_path / "out"
    _write(OutputFolder(target, [*NAMES, "old.png"]))
    victim = tmp_path / "victim.png"
    victim.write_text("the user's")
    sha = hashlib.sha256(victim.read_bytes()).hexdigest()
    # a recorded stale file replaced by a link to the user's file, with its true sha256
    (target / "old.png").unlink()
    (target / "old.png").symlink_to(victim)
    # a temporary manifest name pointing outside (the old code wrote the manifest through it)
    (target / (MANIFEST + ".tmp")).symlink_to(victim)
    data = json.loads((target / MANIFEST).read_text())
    data["files"]["old.png"] = [sha]
    (target / MANIFEST).write_text(json.dumps(data))
    _write(OutputFolder(target, NAMES), "second")
    assert victim.read_text() == "the user's"
    assert (target / "old.png").is_symlink() and (target / (MANIFEST + ".tmp")).is_symlink()
    assert (target / "restored.png").read_text() == "second:restored.png"
    # a link named like an output is a foreign file: refused, never written through
    (target / "restored.png").unlink()
    (target / "restored.png").symlink_to(victim)
    with pytest.raises(OutputFolderError, match="restored.png"):
        _write(OutputFolder(target, NAMES), "third")
    assert victim.read_text() == "the user's"


@pytest.mark.parametrize("dangling", [True, False])
def test_an_output_folder_that_is_a_link_is_refused(tmp_path: Path, dangling: bool) -> None:
    real = tmp_path / "real"
    if not dangling:
        real.mkdir()
    (tmp_path / "out").symlink_to(real)
    before = _tree(tmp_path)
    for call in (OutputFolder(tmp_path / "out", NAMES).check, lambda: _write(OutputFolder(tmp_path / "out", NAMES))):
        with pytest.raises(OutputFolderError, match="is a symbolic link"):
            call()
    assert _tree(tmp_path) == before


def test_a_lock_file_that_is_a_link_or_holds_other_data_is_refused(tmp_path: Path) -> None:
    from pnpdiff.outputs import LOCK

    target = tmp_path / "out"
    _write(OutputFolder(target, NAMES))
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's")
    (target / LOCK).symlink_to(victim)
    with pytest.raises(OutputFolderError, match="not pnpdiff's lock file"):
        _write(OutputFolder(target, NAMES), "second")
    (target / LOCK).unlink()
    (target / LOCK).write_text("my notes")
    with pytest.raises(OutputFolderError, match="not pnpdiff's lock file"):
        _write(OutputFolder(target, NAMES), "second")
    assert victim.read_text() == "the user's" and (target / LOCK).read_text() == "my notes"


def test_one_holder_at_a_time_and_a_stale_lock_is_taken_over(tmp_path: Path) -> None:
    """A second holder (here: another OutputFolder in this process; flock conflicts between open
    files) is refused with the holder's pid, and a dry run's check says so too; once released the
    lock file is gone; a stale one (a killed run's, its pid still in it) does not block."""
    from pnpdiff.outputs import LOCK

    target = tmp_path / "fresh" / "out"
    with OutputFolder(target, NAMES).hold():
        assert (target / LOCK).read_text().strip() == str(os.getpid())
        for call in (OutputFolder(target, NAMES).check, lambda: _write(OutputFolder(target, NAMES))):
            with pytest.raises(OutputFolderError, match=rf"out is in use by another pnpdiff run \(pid {os.getpid()}\)"):
                call()
    assert not (tmp_path / "fresh").exists()  # made for the run, nothing committed: removed again
    _write(OutputFolder(target, NAMES))
    assert not (target / LOCK).exists()
    (target / LOCK).write_text("99999999\n")  # what SIGKILL leaves: the file, not the lock
    _write(OutputFolder(target, NAMES), "second")
    assert (target / "restored.png").read_text() == "second:restored.png" and not (target / LOCK).exists()
