"""The environment variables pnpdiff reads, each parsed and checked here and nowhere else.

=========================  ==============================================================
``WORLD_SIZE``             processes of a torchrun run (an integer >= 1; unset: 1)
``RANK``                   this process's place among them (0 to ``WORLD_SIZE - 1``)
``LOCAL_RANK``             its place on this machine, the GPU it uses (an integer >= 0)
``PNPDIFF_DIST_TIMEOUT``   seconds a torchrun process waits for the others to join
                           (a number > 0; default :data:`DIST_TIMEOUT`)
``PNPDIFF_HOME``           the checkpoint cache folder (default ``$XDG_CACHE_HOME/pnpdiff``,
                           else ``~/.cache/pnpdiff``)
``PNPDIFF_DOWNLOAD``       ``1``/``true``/``yes``/``on``: download a missing checkpoint;
                           ``0``/``false``/``no``/``off`` or unset: never touch the network
``PNPDIFF_MAX_MEMORY``     the memory a run may use (``8G``, ``512M``, bytes, ``off``;
                           :func:`pnpdiff.memory.parse_bytes`)
=========================  ==============================================================

A value that does not parse is a :class:`~pnpdiff.ValueRangeError` whose one line names the
variable, its value and what to change. An empty value is the same as an unset variable. The
command line calls :func:`check` before any work, so a mistake there stops the run before it
loads or writes anything; the library functions read the variable they need when they need it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pnpdiff.errors import ValueRangeError

__all__ = ["DIST_TIMEOUT", "world_size", "rank", "local_rank", "dist_timeout", "home", "download",
           "max_memory", "check"]

#: default of ``PNPDIFF_DIST_TIMEOUT``: seconds a torchrun process waits for the others to join
DIST_TIMEOUT = 300.0

_TORCHRUN = "unset it unless this run is started by torchrun"
_ON = ("1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off")


def _text(name: str) -> str | None:
    """The variable's value, stripped; ``None`` when unset or empty."""
    value = os.environ.get(name)
    return value.strip() if value is not None and value.strip() else None


def _int(name: str, default: int, minimum: int, meaning: str) -> int:
    text = _text(name)
    if text is None:
        return default
    if re.fullmatch(r"[+]?\d+", text) is None or int(text) < minimum:
        raise ValueRangeError(f"environment variable {name}={text!r}: expected an integer >= {minimum} "
                              f"({meaning}); {_TORCHRUN}")
    return int(text)


def world_size() -> int:
    """``WORLD_SIZE``: the number of processes of this run (1 when unset)."""
    return _int("WORLD_SIZE", 1, 1, "the number of processes torchrun starts")


def rank() -> int:
    """``RANK``: this process's rank, ``0 <= RANK < WORLD_SIZE``; 0 in a one-process run
    (``WORLD_SIZE`` unset or 1), whatever ``RANK`` holds, once it is an integer."""
    r = _int("RANK", 0, 0, "this process's rank among the torchrun processes")
    world = world_size()
    if world == 1:
        return 0
    if r >= world:
        raise ValueRangeError(f"environment variable RANK={r} but WORLD_SIZE={world}: a rank is 0 to {world - 1}; "
                              "unset both unless this run is started by torchrun")
    return r


def local_rank() -> int:
    """``LOCAL_RANK``: this process's rank on its machine (the GPU it uses), 0 when unset."""
    return _int("LOCAL_RANK", 0, 0, "this process's rank on its machine, the GPU it uses")


def dist_timeout() -> float:
    """``PNPDIFF_DIST_TIMEOUT``: seconds a torchrun process waits for the others to join the run
    (default :data:`DIST_TIMEOUT`)."""
    text = _text("PNPDIFF_DIST_TIMEOUT")
    if text is None:
        return DIST_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < 10**7:  # NaN too
        raise ValueRangeError(f"environment variable PNPDIFF_DIST_TIMEOUT={text!r}: expected a number of seconds > 0 "
                              f"(how long a torchrun process waits for the others; default {DIST_TIMEOUT:g})")
    return value


def home() -> Path | None:
    """``PNPDIFF_HOME`` (``~`` expanded): the checkpoint cache folder; ``None`` when unset."""
    text = _text("PNPDIFF_HOME")
    if text is None:
        return None
    if "\0" in text:
        raise ValueRangeError("environment variable PNPDIFF_HOME holds a NUL character; set it to a folder path")
    return Path(text).expanduser()


def download() -> bool:
    """``PNPDIFF_DOWNLOAD``: whether a missing checkpoint is downloaded (off when unset)."""
    text = _text("PNPDIFF_DOWNLOAD")
    if text is None or text.lower() in _OFF:
        return False
    if text.lower() in _ON:
        return True
    raise ValueRangeError(f"environment variable PNPDIFF_DOWNLOAD={text!r}: expected 1 (download a missing "
                          "checkpoint) or 0 (never touch the network: the default)")


def max_memory() -> tuple[int | None, str] | None:
    """``PNPDIFF_MAX_MEMORY`` as ``(bytes or None for off, the text)``; ``None`` when unset."""
    text = _text("PNPDIFF_MAX_MEMORY")
    if text is None:
        return None
    from pnpdiff.checks import parse_bytes  # the one parser of memory sizes

    try:
        return parse_bytes(text), text
    except ValueRangeError as err:
        raise ValueRangeError(f"environment variable PNPDIFF_MAX_MEMORY: {err}") from None


def check() -> None:
    """Parse every variable of this module: the first that does not parse raises its
    :class:`~pnpdiff.ValueRangeError` (what the command line calls before any work)."""
    world_size()
    rank()
    local_rank()
    dist_timeout()
    home()
    download()
    max_memory()
