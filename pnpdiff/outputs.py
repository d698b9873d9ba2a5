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
* **The manifest is data, never authority**: a manifest arrives in a copied or downloaded results
  folder, or is edited by hand. Every name in it must be a plain file name in the folder (no
  ``/``, no ``..``, not absolute, not one of pnpdiff's own names); any other entry makes the run
  refuse, naming it, before anything is touched. A recorded name that is a symbolic link (or
  anything but a regular file) is not pnpdiff's file: it is never replaced or removed.
* **Symbolic links are never followed**: an output folder that is a symlink (dangling or not) is
  refused; inside the folder every file is replaced or removed through the folder opened once
  (``O_NOFOLLOW``, then ``dir_fd`` operations), so no step can reach outside its real path.
* **One run per folder at a time**: a run holds an exclusive ``flock`` on ``.pnpdiff-lock``
  inside the folder from before its work until it ends (:meth:`OutputFolder.hold`); a second run
  is refused with "output folder X is in use by another pnpdiff run (pid N)". The kernel drops the
  lock when its process dies, so a killed run (SIGKILL, power loss) never blocks the next. A folder
  that does not exist yet is created when the lock is taken (and removed again if the run ends
  without committing anything), so two runs into one fresh folder serialise the same way.
* The folder is checked before any work starts (:meth:`OutputFolder.check`) and again when the
  results are committed. Results are written to a hidden temporary folder first and moved into
  place at the end, so an interrupted run (an error, Ctrl-C) leaves the folder as it was; the
  manifest is updated before and after the moves, so every file pnpdiff left is always recorded.
* New folders get ordinary permissions (the process umask), not a temporary folder's 0700.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import stat
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from pnpdiff.errors import OutputFolderError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock, runs are not serialised
    fcntl = None  # type: ignore[assignment]

__all__ = ["MANIFEST", "LOCK", "OutputFolder", "file_sha256"]

#: name of the manifest pnpdiff writes into every output folder
MANIFEST = ".pnpdiff-manifest.json"
#: the lock file a run holds (``flock``) inside its output folder while it runs
LOCK = ".pnpdiff-lock"
_PARTIAL = ".pnpdiff-partial-"
_MAX_MANIFEST = 16 << 20  # bytes: a manifest lists a few files; a larger one is not pnpdiff's
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes (hex), read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fd_sha256(fd: int) -> str:
    h = hashlib.sha256()
    while chunk := os.read(fd, 1 << 20):
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


def _new_partial(fd: int, made: list[str], suffix: str = "") -> str:
    """Create an empty ``.pnpdiff-partial-*`` folder (``suffix=""``) or file (``".json"``) in the
    folder open as ``fd``; return its name. The name is appended to ``made`` *before* it exists,
    so that an interrupt landing anywhere leaves a name the caller can remove: Python runs a
    signal's handler in the main thread even while that thread's mask holds the signal back,
    when another thread (torch's, OpenMP's) took it from the kernel."""
    while True:
        name = f"{_PARTIAL}{secrets.token_hex(4)}{suffix}"
        made.append(name)
        try:
            if suffix:
                os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o666, dir_fd=fd))
            else:
                os.mkdir(name, 0o700, dir_fd=fd)
            return name
        except FileExistsError:
            made.pop()


def _remove_at(fd: int, name: str) -> None:
    """Remove ``name`` in the folder open as ``fd``: a file or link is unlinked, a real folder is
    emptied the same way first; a link is never followed. Missing entries are fine."""
    try:
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=fd)
        return
    try:
        sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
    except OSError:
        return
    try:
        for entry in os.listdir(sub):
            _remove_at(sub, entry)
    finally:
        os.close(sub)
    with contextlib.suppress(OSError):
        os.rmdir(name, dir_fd=fd)


def _remove_partials(fd: int, made: list[str]) -> None:
    for name in made:
        with contextlib.suppress(OSError):
            _remove_at(fd, name)
    made.clear()


def _short(names: Iterable[str], n: int = 4) -> str:
    names = sorted(names)
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def _plain_name(name: object) -> bool:
    """A plain file name inside a folder: a non-empty string, not ``.``/``..``, no separator, no NUL."""
    return isinstance(name, str) and name not in ("", ".", "..") and not any(
        s and s in name for s in ("/", os.sep, os.altsep, "\0"))


class OutputFolder:
    """An output folder pnpdiff may write ``names`` into (see the module docstring for the rules).

    Parameters
    ----------
    path : str or Path
        The folder (created, with any missing parents, when the run takes it: :meth:`hold`).
    names : iterable of str
        Plain file names the run will write (no sub-folders).
    overwrite : bool
        Allow writing into an existing folder that holds files pnpdiff did not write; those files
        are still never replaced.
    meta : dict, optional
        JSON-able facts recorded in the manifest with the files.
    lock : bool
        Hold the folder's lock (``.pnpdiff-lock``) while the run holds the folder; ``False`` for a
        folder covered by another one's lock (a batch run's image folders, under its top folder).

    Examples
    --------
    >>> out = OutputFolder("outputs/run", ["restored.png", "metrics.json"])  # doctest: +SKIP
    >>> with out.hold():              # lock + check before the work: OutputFolderError  # doctest: +SKIP
    ...     with out.transaction() as tmp:
    ...         save_image(x, tmp / "restored.png")
    """

    def __init__(self, path: str | os.PathLike, names: Iterable[str], overwrite: bool = False,
                 meta: dict | None = None, *, lock: bool = True) -> None:
        self.path = Path(path)
        self.names = sorted(set(names))
        self.overwrite = bool(overwrite)
        #: JSON-able facts recorded in the manifest with the files (a batch run keeps each
        #: image's recipe fingerprint and metrics there, see :meth:`finished`)
        self.meta = meta
        self.lock = bool(lock)
        for n in self.names:
            if not _plain_name(n) or n in (MANIFEST, LOCK) or n.startswith(_PARTIAL):
                raise ValueError(f"invalid output file name {n!r}")  # programming error, not a user one
        self._fd: int | None = None  # the folder, opened once while held
        self._lock_fd: int | None = None
        self._holds = 0
        self._created: list[Path] = []  # folders made by hold(), removed again if nothing was committed
        self._committed = False

    # ----------------------------------------------------------------------------- opening
    def _error(self, what: str) -> OutputFolderError:
        return OutputFolderError(f"output folder {self.path} {what}; choose another output folder")

    def _open(self) -> int | None:
        """The folder opened without following a link (None: it does not exist)."""
        p = self.path
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            return None
        except OSError as err:
            raise self._error(f"cannot be read ({err.strerror or err})") from None
        if stat.S_ISLNK(st.st_mode):
            target = os.readlink(p)
            state = "" if os.path.exists(p) else ", which does not exist"
            raise OutputFolderError(
                f"output folder {p} is a symbolic link (to {target}{state}); pnpdiff never writes through a "
                "link: give the real folder's path, or choose another output folder")
        if not stat.S_ISDIR(st.st_mode):
            raise OutputFolderError(f"output {p} is a file, not a folder; choose another output folder")
        try:
            return os.open(p, _DIR_FLAGS)
        except FileNotFoundError:
            return None
        except OSError as err:
            if err.errno in (errno.ELOOP, errno.ENOTDIR):  # replaced by a link or file just now
                raise self._error("was replaced while pnpdiff opened it") from None
            raise self._error(f"cannot be read ({err.strerror or err})") from None

    @contextlib.contextmanager
    def _opened(self) -> Iterator[int | None]:
        """The held folder's descriptor, or the folder opened for the duration (None: absent)."""
        if self._fd is not None:
            yield self._fd
            return
        fd = self._open()
        try:
            yield fd
        finally:
            if fd is not None:
                os.close(fd)

    # ----------------------------------------------------------------------------- inspection
    def _manifest_data(self, fd: int) -> dict | None:
        """The manifest, every entry checked to be a plain name (OutputFolderError otherwise)."""
        try:
            st = os.stat(MANIFEST, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        except OSError:
            st = None
        bad = self._error(f"has an unreadable pnpdiff manifest ({MANIFEST})")
        if st is None or not stat.S_ISREG(st.st_mode) or st.st_size > _MAX_MANIFEST:
            raise bad
        try:
            mfd = os.open(MANIFEST, _READ_FLAGS, dir_fd=fd)
            try:
                raw = os.read(mfd, _MAX_MANIFEST + 1)
            finally:
                os.close(mfd)
            data = json.loads(raw)
            files = data["files"]
            if not isinstance(files, dict):
                raise TypeError
        except (OSError, ValueError, KeyError, TypeError):
            raise bad from None
        for k in files:
            if not _plain_name(k) or k in (MANIFEST, LOCK) or k.startswith(_PARTIAL):
                raise OutputFolderError(
                    f"output folder {self.path}: its manifest ({MANIFEST}) lists {k!r}, which is not a plain file "
                    "name in the folder; pnpdiff never acts on such an entry (the manifest was edited or copied "
                    "from elsewhere): remove the entry or choose another output folder")
        data["files"] = {k: [str(h) for h in (v if isinstance(v, list) else [v])] for k, v in files.items()}
        return data

    @staticmethod
    def _regular_sha256(fd: int, name: str) -> str | None:
        """The sha256 of ``name`` if it is a regular file in the folder ``fd`` (a link, a folder,
        a FIFO... gives None: it is not a file pnpdiff wrote)."""
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode):
                return None
            ffd = os.open(name, _READ_FLAGS, dir_fd=fd)
        except OSError:
            return None
        try:
            now = os.fstat(ffd)
            if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
                return None
            return _fd_sha256(ffd)
        finally:
            os.close(ffd)

    def _own(self, fd: int, manifest: dict[str, list[str]] | None) -> dict[str, str]:
        """Recorded files that still hold what pnpdiff wrote: ``{name: sha256}``."""
        own: dict[str, str] = {}
        for name, hashes in (manifest or {}).items():
            h = self._regular_sha256(fd, name)
            if h is not None and h in hashes:
                own[name] = h
        return own

    def _foreign(self, fd: int, own: dict[str, str]) -> list[str]:
        """Entries that are not pnpdiff's: neither a recorded unchanged file, nor the manifest, the
        lock, a temporary entry, or a real sub-folder that is itself a pnpdiff output (a batch
        run's image)."""
        out = []
        for name in os.listdir(fd):
            if name in (MANIFEST, LOCK) or name.startswith(_PARTIAL) or name in own:
                continue
            with contextlib.suppress(OSError):
                if stat.S_ISDIR(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode) and stat.S_ISREG(
                        os.stat(f"{name}/{MANIFEST}", dir_fd=fd, follow_symlinks=False).st_mode):
                    continue
            out.append(name)
        return out

    def recorded_meta(self) -> dict | None:
        """The ``meta`` of the manifest the folder holds now (None: no folder, no manifest, no meta).
        Raises :class:`~pnpdiff.OutputFolderError` for a manifest that is not pnpdiff's."""
        with self._opened() as fd:
            data = None if fd is None else self._manifest_data(fd)
        meta = None if data is None else data.get("meta")
        return meta if isinstance(meta, dict) else None

    def finished(self) -> dict | None:
        """The ``meta`` recorded by the run that wrote this folder, if every one of ``names`` is
        there, recorded and unchanged since; else None (absent, partial or edited)."""
        try:
            with self._opened() as fd:
                if fd is None:
                    return None
                data = self._manifest_data(fd)
                if data is None or not isinstance(data.get("meta"), dict):
                    return None
                own = self._own(fd, data["files"])
        except OutputFolderError:
            return None
        if any(n not in own for n in self.names):
            return None
        return data["meta"]

    def remove_partials(self) -> None:
        """Remove temporary entries an earlier run left when it was killed (SIGKILL, power loss);
        only pnpdiff's own ``.pnpdiff-partial-*`` folders and files, never a link nor through one.
        Call while holding the folder (or its parent's lock)."""
        with self._opened() as fd:
            if fd is None:
                return
            for e in os.listdir(fd):
                with contextlib.suppress(OSError):
                    mode = os.stat(e, dir_fd=fd, follow_symlinks=False).st_mode
                    if e.startswith(_PARTIAL) and not stat.S_ISLNK(mode):
                        _remove_at(fd, e)

    def check(self) -> None:
        """Raise :class:`~pnpdiff.OutputFolderError` if the run may not write its files here.

        Reads only (a dry run calls it). :meth:`hold` calls it once the folder is locked, and
        :meth:`transaction` again when committing.
        """
        p = self.path
        with self._opened() as fd:
            if fd is None:
                anc = p.parent
                while not os.path.lexists(anc) and anc != anc.parent:
                    anc = anc.parent
                if os.path.islink(anc) and not anc.exists():
                    raise OutputFolderError(f"cannot create output folder {p}: {anc} is a symbolic link to a missing "
                                            "folder; choose another output folder")
                if not anc.is_dir():
                    raise OutputFolderError(
                        f"cannot create output folder {p}: {anc} is a file, not a folder; choose another output folder"
                    )
                try:
                    afd = os.open(anc, _DIR_FLAGS & ~getattr(os, "O_NOFOLLOW", 0))
                except OSError as err:
                    raise OutputFolderError(f"cannot create output folder {p}: {err.strerror or err} in {anc}; "
                                            "choose another output folder") from None
                try:
                    self._probe(afd, anc)
                finally:
                    os.close(afd)
                return
            if self.lock and self._lock_fd is None:
                self._refuse_if_locked(fd)
            manifest = self._manifest_data(fd)
            files = None if manifest is None else manifest["files"]
            own = self._own(fd, files)
            foreign = self._foreign(fd, own)
            clash = [n for n in self.names if n in foreign]
            if clash:
                raise OutputFolderError(
                    f"output folder {p} already holds {_short(clash)}, not written by pnpdiff (or changed since, "
                    "or a link); pnpdiff never replaces such files: move them away or choose another output folder"
                )
            if manifest is None and foreign and not self.overwrite:
                raise OutputFolderError(
                    f"output folder {p} exists and holds files pnpdiff did not write ({_short(foreign)}); "
                    "choose another output folder, or pass --overwrite (overwrite=True) to write pnpdiff's "
                    "files beside them (those are never touched)"
                )
            if self._fd is None:
                self._probe(fd, p)

    def _probe(self, fd: int, folder: Path) -> None:
        """Check that the folder ``fd`` accepts new entries (a real write: permission bits,
        read-only mounts and pseudo file systems such as /proc all answer differently)."""
        made: list[str] = []
        try:
            with _signals_deferred():
                os.rmdir(_new_partial(fd, made), dir_fd=fd)
                made.clear()
        except OSError as err:
            raise OutputFolderError(
                f"cannot write output folder {self.path}: {err.strerror or err} in {folder}; "
                "choose another output folder") from None
        finally:
            _remove_partials(fd, made)

    # ----------------------------------------------------------------------------- locking
    def _in_use(self, lfd: int) -> OutputFolderError:
        pid = b""
        for _ in range(20):  # the holder writes its pid just after locking
            pid = os.pread(lfd, 32, 0).strip()
            if pid:
                break
            time.sleep(0.005)
        who = f"pid {pid.decode()}" if re.fullmatch(rb"\d+", pid) else "pid unknown"
        return OutputFolderError(f"output folder {self.path} is in use by another pnpdiff run ({who}); wait for it "
                                 "to finish or choose another output folder")

    def _refuse_if_locked(self, fd: int) -> None:
        """Raise if another process holds the folder's lock (reads only: a shared probe)."""
        if fcntl is None:  # pragma: no cover
            return
        try:
            lfd = os.open(LOCK, _READ_FLAGS, dir_fd=fd)
        except OSError:
            return  # no lock file: nobody holds it (a link or the like is refused when locking)
        try:
            try:
                fcntl.flock(lfd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                raise self._in_use(lfd) from None
            except OSError:
                return
        finally:
            os.close(lfd)

    def _take_lock(self, fd: int) -> int | None:
        """Lock ``.pnpdiff-lock`` in the folder ``fd`` (exclusive, non-blocking) and write this
        process's pid into it; the descriptor, or None when the folder vanished meanwhile (the
        caller starts again). A held lock raises "in use"."""
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(
            os, "O_CLOEXEC", 0)
        try:
            lfd = os.open(LOCK, flags, 0o666, dir_fd=fd)
        except FileNotFoundError:
            return None  # the folder was removed (an earlier run that created it gave it up)
        except OSError as err:
            if err.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO, errno.EOPNOTSUPP):
                raise self._error(f"holds {LOCK}, which is not pnpdiff's lock file (a link or not a file)") from None
            raise OutputFolderError(f"cannot write output folder {self.path}: {err.strerror or err}; "
                                    "choose another output folder") from None
        try:
            st = os.fstat(lfd)
            if not stat.S_ISREG(st.st_mode):
                raise self._error(f"holds {LOCK}, which is not pnpdiff's lock file (not a file)")
            if fcntl is not None:
                for attempt in range(5):  # a dry run's shared probe holds it for microseconds
                    try:
                        fcntl.flock(lfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if attempt == 4:
                            raise self._in_use(lfd) from None
                        time.sleep(0.01)
            try:
                now = os.stat(LOCK, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                now = None
            if now is None or (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
                os.close(lfd)  # the holder removed it as we opened it: lock the new one
                return None
            old = os.pread(lfd, 64, 0)
            if not re.fullmatch(rb"\d*\n?", old):
                raise self._error(f"holds {LOCK}, which is not pnpdiff's lock file (it holds other data)")
            os.ftruncate(lfd, 0)
            os.pwrite(lfd, f"{os.getpid()}\n".encode(), 0)
            return lfd
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(lfd)
            raise

    def _acquire(self) -> None:
        """Open the folder once (creating it and its missing parents) and take its lock."""
        for _ in range(10):
            fd = self._open()
            if fd is None:
                self.check()  # the parent's checks, with their messages
                missing = []
                anc = self.path
                while not os.path.lexists(anc):
                    missing.append(anc)
                    anc = anc.parent
                for d in reversed(missing):
                    try:
                        os.mkdir(d)
                        self._created.append(d)
                    except FileExistsError:
                        pass  # another run made it just now
                    except OSError as err:
                        raise OutputFolderError(f"cannot create output folder {self.path}: "
                                                f"{err.strerror or err}; choose another output folder") from None
                continue  # open what is there now (without following a link)
            self._fd = fd
            if not self.lock:
                return
            lfd = self._take_lock(fd)
            if lfd is not None:
                self._lock_fd = lfd
                return
            os.close(fd)
            self._fd = None
        raise self._error("keeps changing while pnpdiff tries to lock it")

    def _release(self) -> None:
        fd, self._fd = self._fd, None
        lfd, self._lock_fd = self._lock_fd, None
        if lfd is not None:
            with contextlib.suppress(OSError):  # remove our lock file while still holding it
                st, now = os.fstat(lfd), os.stat(LOCK, dir_fd=fd, follow_symlinks=False)
                if (st.st_dev, st.st_ino) == (now.st_dev, now.st_ino):
                    os.unlink(LOCK, dir_fd=fd)
            os.close(lfd)
        if fd is not None:
            os.close(fd)
        if not self._committed:
            for d in reversed(self._created):  # only if still empty: another run may be inside
                with contextlib.suppress(OSError):
                    os.rmdir(d)
        self._created.clear()
        self._committed = False

    @contextlib.contextmanager
    def hold(self, check: bool = True) -> Iterator[OutputFolder]:
        """Hold the folder for a run: open it once (created if absent), lock it against other
        pnpdiff runs (unless ``lock=False``) and :meth:`check` it; released on exit, when a
        folder made here is removed again if nothing was committed into it. Re-entrant.

        Raises :class:`~pnpdiff.OutputFolderError` ("in use by another pnpdiff run (pid N)" while
        another process holds it) before any work starts.
        """
        if self._holds:
            self._holds += 1
            try:
                yield self
            finally:
                self._holds -= 1
            return
        try:
            with _signals_deferred():
                self._holds = 1
                self._acquire()
            if check:
                self.check()
            yield self
        finally:
            self._holds = 0
            self._release()

    # ------------------------------------------------------------------------------- writing
    def _write_manifest(self, fd: int, files: dict[str, list[str]], meta: dict | None = None) -> None:
        from pnpdiff._version import __version__

        data = {
            "pnpdiff": __version__,
            "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "note": "files pnpdiff wrote here; a later run replaces only these, and only while unchanged",
            "files": {k: files[k] for k in sorted(files)},
        }
        if meta is not None:
            data["meta"] = meta
        made: list[str] = []
        try:
            tmp = _new_partial(fd, made, ".json")
            wfd = os.open(tmp, os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0), dir_fd=fd)
            with open(wfd, "w") as f:
                f.write(json.dumps(data, indent=2) + "\n")
            os.replace(tmp, MANIFEST, src_dir_fd=fd, dst_dir_fd=fd)
            made.clear()
        finally:
            _remove_partials(fd, made)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Path]:
        """Yield a temporary folder to write the outputs into; on a normal exit move them into
        place (after checking the folder again), on any exception or interrupt remove them and
        leave the output folder as it was (a folder created for the run is removed again)."""
        with self.hold():
            fd = self._fd
            assert fd is not None
            made: list[str] = []  # the temporary folder, listed before it exists (see _new_partial)
            deferred = contextlib.ExitStack()
            try:
                try:
                    deferred.enter_context(_signals_deferred())
                    name = _new_partial(fd, made)
                except OSError as err:
                    raise OutputFolderError(f"cannot write output folder {self.path}: {err.strerror or err}; "
                                            "choose another output folder") from None
                deferred.close()  # interrupts are welcome while the caller writes: they undo the transaction
                yield self.path / name
                deferred.enter_context(_signals_deferred())  # ... but not while the results move into place
                tfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
                try:
                    if os.fstat(tfd).st_ino != os.stat(self.path / name, follow_symlinks=False).st_ino:
                        raise self._error("was moved or replaced while pnpdiff was running")
                    written = sorted(os.listdir(tfd))
                    unexpected = set(written) - set(self.names)
                    if unexpected:
                        raise ValueError(f"wrote files not declared to OutputFolder: {sorted(unexpected)}")
                    new = {}
                    for n in written:
                        h = self._regular_sha256(tfd, n)
                        if h is None:
                            raise ValueError(f"wrote {n} as something other than a regular file")
                        new[n] = h
                    self._commit_into_existing(fd, tfd, new)
                finally:
                    os.close(tfd)
            finally:
                _remove_partials(fd, made)  # emptied by the commit, or what an error left
                deferred.close()

    def _commit_into_existing(self, fd: int, tfd: int, new: dict[str, str]) -> None:
        self.check()  # the folder may have changed while the run was working
        data = self._manifest_data(fd)
        own = self._own(fd, None if data is None else data["files"])
        # 1. a manifest that recognises both the old and the new content of every file, so that an
        #    interruption during the moves below leaves every pnpdiff file recorded
        both = {n: [h] for n, h in own.items()}
        for n, h in new.items():
            both.setdefault(n, [])
            if h not in both[n]:
                both[n].append(h)
        self._committed = True  # from here on the folder holds pnpdiff's files: keep it
        self._write_manifest(fd, both)  # no meta: the folder is not finished until step 4
        # 2. move the new files into place (each os.replace is atomic and replaces the name only)
        for n in new:
            os.replace(n, n, src_dir_fd=tfd, dst_dir_fd=fd)
        # 3. remove pnpdiff's stale files of the earlier run that this run did not write (the
        #    names were checked plain and regular files by _own; unlink never follows a link)
        for n in own:
            if n not in new:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(n, dir_fd=fd)
        # 4. the manifest of this run
        self._write_manifest(fd, {n: [h] for n, h in new.items()}, self.meta)
