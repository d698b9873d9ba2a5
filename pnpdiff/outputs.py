"""Output folders that never lose a user's file.

pnpdiff writes its results (``restored.png``, ``metrics.json``, ...) into an output folder and
records what it wrote in a manifest, ``.pnpdiff-manifest.json``, beside them: each file's name
and sha256. The rules:

* A run replaces only files that an earlier run recorded as its own *and* that are unchanged
  since (same sha256). A recorded file the user has edited counts as the user's.
* Every other file in the folder is left byte for byte. A run whose outputs would replace such a
  file is refused, with or without ``overwrite``.
* A folder that exists, holds files and has no manifest (not a pnpdiff output) is refused unless
  ``overwrite=True`` (``--overwrite``), which writes pnpdiff's files beside the others.
* The folder is checked before any work starts (:meth:`OutputFolder.check`) and again when the
  results are committed. Results are written to a hidden temporary folder first and moved into
  place at the end, so an interrupted run (an error, Ctrl-C) leaves the folder as it was; the
  manifest is updated before and after the moves, so every file pnpdiff left is always recorded.
* New folders get ordinary permissions (the process umask), not a temporary folder's 0700.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from pnpdiff.errors import OutputFolderError

__all__ = ["MANIFEST", "OutputFolder", "file_sha256"]

#: name of the manifest pnpdiff writes into every output folder
MANIFEST = ".pnpdiff-manifest.json"
_PARTIAL = ".pnpdiff-partial-"


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes (hex), read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT / SIGTERM back while a few file operations run (a probe, a commit's moves):
    an interrupt then lands before or after them, never half-way, so no temporary folder or
    half-written manifest is left behind.

    In the main thread the handlers are swapped for one that only records the signal, which is
    re-raised on exit: a signal mask alone is not enough, because the kernel hands a
    process-directed signal to any thread that does not block it (torch's and OpenMP's workers)
    and Python then runs the handler in the main thread regardless of that thread's mask. Other
    threads (no handlers there) block the signals with ``pthread_sigmask``; a no-op on Windows."""
    import signal
    import threading

    sigs = (signal.SIGINT, signal.SIGTERM)
    olds = {s: signal.getsignal(s) for s in sigs}
    if threading.current_thread() is threading.main_thread() and all(h is not None for h in olds.values()):
        pending: list[int] = []
        for s in sigs:
            signal.signal(s, lambda signum, frame: pending.append(signum))
        try:
            yield
        finally:
            for s, h in olds.items():
                signal.signal(s, h)
            if pending:
                signal.raise_signal(pending[0])  # the restored handler runs now
        return
    block = getattr(signal, "pthread_sigmask", None)
    if block is None:  # pragma: no cover - Windows
        yield
        return
    old = block(signal.SIG_BLOCK, set(sigs))
    try:
        yield
    finally:
        block(signal.SIG_SETMASK, old)


def _new_partial(folder: Path, made: list[Path]) -> Path:
    """Create an empty ``.pnpdiff-partial-*`` folder in ``folder``. Its path is appended to
    ``made`` *before* it exists, so that an interrupt landing anywhere leaves a path the caller
    can remove: Python runs a signal's handler in the main thread even while that thread's mask
    holds the signal back, when another thread (torch's, OpenMP's) took it from the kernel."""
    while True:
        path = folder / f"{_PARTIAL}{secrets.token_hex(4)}"
        made.append(path)
        try:
            os.mkdir(path, 0o700)
            return path
        except FileExistsError:
            made.pop()


def _remove_partials(made: list[Path]) -> None:
    for path in made:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _short(names: Iterable[str], n: int = 4) -> str:
    names = sorted(names)
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


class OutputFolder:
    """An output folder pnpdiff may write ``names`` into (see the module docstring for the rules).

    Parameters
    ----------
    path : str or Path
        The folder (created at commit time if absent, with any missing parents).
    names : iterable of str
        Plain file names the run will write (no sub-folders).
    overwrite : bool
        Allow writing into an existing folder that holds files pnpdiff did not write; those files
        are still never replaced.

    Examples
    --------
    >>> out = OutputFolder("outputs/run", ["restored.png", "metrics.json"])  # doctest: +SKIP
    >>> out.check()                   # before the work: raises OutputFolderError  # doctest: +SKIP
    >>> with out.transaction() as tmp:                                            # doctest: +SKIP
    ...     save_image(x, tmp / "restored.png")
    """

    def __init__(self, path: str | os.PathLike, names: Iterable[str], overwrite: bool = False,
                 meta: dict | None = None) -> None:
        self.path = Path(path)
        self.names = sorted(set(names))
        self.overwrite = bool(overwrite)
        #: JSON-able facts recorded in the manifest with the files (a batch run keeps each
        #: image's recipe fingerprint and metrics there, see :meth:`finished`)
        self.meta = meta
        for n in self.names:
            if not n or "/" in n or os.sep in n or n in (".", "..", MANIFEST) or n.startswith(_PARTIAL):
                raise ValueError(f"invalid output file name {n!r}")  # programming error, not a user one

    # ----------------------------------------------------------------------------- inspection
    def _read_manifest(self) -> dict[str, list[str]] | None:
        data = self._manifest_data()
        return None if data is None else data["files"]

    def _manifest_data(self) -> dict | None:
        p = self.path / MANIFEST
        if not p.exists():
            return None
        try:
            data = json.loads(p.read_text())
            files = data["files"]
            if not isinstance(files, dict):
                raise TypeError
            data["files"] = {str(k): [str(h) for h in (v if isinstance(v, list) else [v])] for k, v in files.items()}
            return data
        except (OSError, ValueError, KeyError, TypeError):
            raise OutputFolderError(
                f"output folder {self.path} has an unreadable pnpdiff manifest ({MANIFEST}); "
                "choose another output folder"
            ) from None

    def _own(self, manifest: dict[str, list[str]] | None) -> dict[str, str]:
        """Recorded files that still hold what pnpdiff wrote: ``{name: sha256}``."""
        own: dict[str, str] = {}
        for name, hashes in (manifest or {}).items():
            p = self.path / name
            if p.is_file() and not p.is_symlink():
                h = file_sha256(p)
                if h in hashes:
                    own[name] = h
        return own

    def _foreign(self, own: dict[str, str]) -> list[str]:
        """Entries that are not pnpdiff's: neither a recorded unchanged file, nor the manifest, a
        temporary folder, or a sub-folder that is itself a pnpdiff output (a batch run's image)."""
        return [
            e.name for e in self.path.iterdir()
            if e.name != MANIFEST and not e.name.startswith(_PARTIAL) and e.name not in own
            and not (e.is_dir() and not e.is_symlink() and (e / MANIFEST).is_file())
        ]

    def finished(self) -> dict | None:
        """The ``meta`` recorded by the run that wrote this folder, if every one of ``names`` is
        there, recorded and unchanged since; else None (absent, partial or edited)."""
        if not self.path.is_dir():
            return None
        try:
            data = self._manifest_data()
        except OutputFolderError:
            return None
        if data is None or not isinstance(data.get("meta"), dict):
            return None
        own = self._own(data["files"])
        if any(n not in own for n in self.names):
            return None
        return data["meta"]

    def remove_partials(self) -> None:
        """Remove temporary folders an earlier run left when it was killed (SIGKILL, power loss);
        only pnpdiff's own ``.pnpdiff-partial-*`` entries. Call when no other run writes here."""
        if self.path.is_dir():
            for e in self.path.iterdir():
                if e.name.startswith(_PARTIAL) and e.is_dir() and not e.is_symlink():
                    shutil.rmtree(e, ignore_errors=True)

    def check(self) -> None:
        """Raise :class:`~pnpdiff.OutputFolderError` if the run may not write its files here.

        Called before any work starts; :meth:`transaction` calls it again when committing.
        """
        p = self.path
        if p.exists() and not p.is_dir():
            raise OutputFolderError(f"output {p} is a file, not a folder; choose another output folder")
        if not p.exists():
            anc = p.parent
            while not anc.exists() and anc != anc.parent:
                anc = anc.parent
            if not anc.is_dir():
                raise OutputFolderError(
                    f"cannot create output folder {p}: {anc} is a file, not a folder; choose another output folder"
                )
            self._probe(anc, p)
            return
        manifest = self._read_manifest()
        own = self._own(manifest)
        foreign = self._foreign(own)
        clash = [n for n in self.names if n in foreign]
        if clash:
            raise OutputFolderError(
                f"output folder {p} already holds {_short(clash)}, not written by pnpdiff (or changed "
                "since); pnpdiff never replaces such files: move them away or choose another output folder"
            )
        if manifest is None and foreign and not self.overwrite:
            raise OutputFolderError(
                f"output folder {p} exists and holds files pnpdiff did not write ({_short(foreign)}); "
                "choose another output folder, or pass --overwrite (overwrite=True) to write pnpdiff's "
                "files beside them (those are never touched)"
            )
        self._probe(p, p)

    @staticmethod
    def _probe(folder: Path, target: Path) -> None:
        """Check that ``folder`` accepts new entries (a real write: permission bits, read-only
        mounts and pseudo file systems such as /proc all answer differently)."""
        made: list[Path] = []
        try:
            with _signals_deferred():
                os.rmdir(_new_partial(folder, made))
        except OSError as err:
            raise OutputFolderError(
                f"cannot write output folder {target}: {err.strerror or err} in {folder}; choose another output folder"
            ) from None
        finally:
            _remove_partials(made)

    # ------------------------------------------------------------------------------- writing
    def _write_manifest(self, folder: Path, files: dict[str, list[str]], meta: dict | None = None) -> None:
        from pnpdiff import __version__

        data = {
            "pnpdiff": __version__,
            "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "note": "files pnpdiff wrote here; a later run replaces only these, and only while unchanged",
            "files": {k: files[k] for k in sorted(files)},
        }
        if meta is not None:
            data["meta"] = meta
        tmp = folder / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, folder / MANIFEST)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Path]:
        """Yield a temporary folder to write the outputs into; on a normal exit move them into
        place (after checking the folder again), on any exception or interrupt remove them and
        leave the output folder as it was."""
        self.check()
        created: list[Path] = []
        made: list[Path] = []  # the temporary folder, listed before it exists (see _new_partial)
        existed = self.path.is_dir()
        deferred = contextlib.ExitStack()
        try:
            try:
                deferred.enter_context(_signals_deferred())
                if existed:
                    tmp = _new_partial(self.path, made)
                else:
                    missing = []
                    anc = self.path.parent
                    while not anc.exists():
                        missing.append(anc)
                        anc = anc.parent
                    for d in reversed(missing):
                        d.mkdir()
                        created.append(d)
                    tmp = _new_partial(self.path.parent, made)
            except OSError as err:
                raise OutputFolderError(f"cannot create output folder {self.path}: {err.strerror or err}") from None
            deferred.close()  # interrupts are welcome while the caller writes: they undo the transaction
            yield tmp
            deferred.enter_context(_signals_deferred())  # ... but not while the results move into place
            written = sorted(e.name for e in tmp.iterdir())
            unexpected = set(written) - set(self.names)
            if unexpected:
                raise ValueError(f"wrote files not declared to OutputFolder: {sorted(unexpected)}")
            new = {n: file_sha256(tmp / n) for n in written}
            if not existed:
                if self.path.exists():
                    raise OutputFolderError(f"output folder {self.path} appeared while pnpdiff was running; run again")
                self._write_manifest(tmp, {n: [h] for n, h in new.items()}, self.meta)
                os.chmod(tmp, 0o777 & ~_umask())
                os.rename(tmp, self.path)
                created.clear()
            else:
                self._commit_into_existing(tmp, new)
        except BaseException:
            _remove_partials(made)  # first: the parents made here are removed only if empty
            self._remove_created(created)
            raise
        finally:
            _remove_partials(made)  # renamed into place (gone) or emptied by the commit
            deferred.close()

    def _commit_into_existing(self, tmp: Path, new: dict[str, str]) -> None:
        self.check()  # the folder may have changed while the run was working
        own = self._own(self._read_manifest())
        # 1. a manifest that recognises both the old and the new content of every file, so that an
        #    interruption during the moves below leaves every pnpdiff file recorded
        both = {n: [h] for n, h in own.items()}
        for n, h in new.items():
            both.setdefault(n, [])
            if h not in both[n]:
                both[n].append(h)
        self._write_manifest(self.path, both)  # no meta: the folder is not finished until step 4
        # 2. move the new files into place (each os.replace is atomic)
        for n in new:
            os.replace(tmp / n, self.path / n)
        # 3. remove pnpdiff's stale files of the earlier run that this run did not write
        for n in own:
            if n not in new:
                with contextlib.suppress(FileNotFoundError):
                    (self.path / n).unlink()
        # 4. the manifest of this run
        self._write_manifest(self.path, {n: [h] for n, h in new.items()}, self.meta)

    @staticmethod
    def _remove_created(created: list[Path]) -> None:
        for d in reversed(created):
            with contextlib.suppress(OSError):
                d.rmdir()  # only if still empty
