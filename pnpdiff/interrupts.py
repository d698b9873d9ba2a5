"""SIGINT and SIGTERM in a command-line run: exit 130 / 143 with one line, whenever they come.

A command-line process (``python -m pnpdiff``, the ``pnpdiff`` console script, ``torchrun -m
pnpdiff``) gets its handlers while the ``pnpdiff`` package is still being imported, before torch
loads (:func:`install_if_cli`, the first thing ``pnpdiff/__init__.py`` does): a signal that comes
during those seconds of imports ends the process at once with one line (nothing was written
yet). :func:`handled` then replaces them for the run itself: SIGINT raises
:class:`KeyboardInterrupt` and SIGTERM :class:`Terminated` in the main thread, so that the run
removes what it had started to write (or, a batch, keeps the images it finished) before the
command line prints its line and exits. A library user's process is never touched: importing
pnpdiff installs nothing unless the process is pnpdiff's own command line.

This module imports nothing heavy: it runs before torch is loaded.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["Terminated", "EXIT_STATUS", "install_if_cli", "handled", "is_cli_process"]

#: the exit status of a run ended by each signal (128 + its number, as a shell reports it)
EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: what the process-level handler says: before :func:`handled` (imports) and after it (shutdown)
_phase = ["before the run started; nothing was written"]


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that a run cleans up as on Ctrl-C.

    A :class:`BaseException`, like :class:`KeyboardInterrupt`: no ``except Exception`` in the
    code it passes through stops it."""


def is_cli_process() -> bool:
    """Whether this process is pnpdiff's command line (``python -m pnpdiff``, the ``pnpdiff``
    console script, ``torchrun -m pnpdiff``), judged from the interpreter's arguments only."""
    argv0 = sys.argv[0] if sys.argv else ""
    if argv0 == "-m":  # python -m NAME: runpy is importing NAME's package, argv[0] is "-m" meanwhile
        orig = list(getattr(sys, "orig_argv", []))[1:]  # -m pnpdiff, -um pnpdiff, -mpnpdiff
        return "-mpnpdiff" in orig or any(a == "pnpdiff" and b.startswith("-") and b.endswith("m")
                                          for b, a in zip(orig, orig[1:]))
    name = os.path.basename(argv0).lower()
    return name in ("pnpdiff", "pnpdiff.exe", "pnpdiff-script.py")


def _before_run(signum: int, frame: Any) -> None:
    """The process-level handler: no run is in progress (the imports, or after the run), so
    there is nothing to clean up: one line and exit at once."""
    try:
        os.write(2, f"pnpdiff: interrupted ({signal.Signals(signum).name}) {_phase[0]}\n".encode())
    finally:
        os._exit(EXIT_STATUS.get(signum, 128 + signum))


def install_if_cli() -> None:
    """In pnpdiff's command-line process (:func:`is_cli_process`), catch SIGINT and SIGTERM from
    now on (what ``pnpdiff/__init__.py`` calls before it imports torch); elsewhere do nothing."""
    if not is_cli_process() or threading.current_thread() is not threading.main_thread():
        return
    for s in _SIGNALS:
        if signal.getsignal(s) in (signal.SIG_IGN, None):  # ignored on purpose (nohup): left so
            continue
        signal.signal(s, _before_run)


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """While the block runs, SIGINT raises :class:`KeyboardInterrupt` and SIGTERM
    :class:`Terminated` in the main thread; the previous handlers come back after it (in a
    thread other than the main one, nothing is changed: Python delivers signals to the main
    thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in _SIGNALS}
    mine = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: _raise_terminated}
    for s in _SIGNALS:
        if previous[s] is not signal.SIG_IGN:
            signal.signal(s, mine[s])
    try:
        yield
    finally:
        if previous.get(signal.SIGTERM) is _before_run:
            _phase[0] = "after the run ended"
        for s, h in previous.items():
            if h is not None:
                signal.signal(s, h)
