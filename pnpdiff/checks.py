"""One validator kit: every value a user gives (a :func:`pnpdiff.solve` argument, an operator
parameter, a recipe key, a command-line option) is checked here, by the same rules and in the
same words. Each check returns the value normalised (``int``, ``float``, ``dict``, ...) or raises
``error`` (a :class:`~pnpdiff.errors.PnPError` subclass the caller names) on one line.

Rules (where the validators before this kit disagreed, the stricter one won):

- a bool is never a number: ``True`` is not ``1`` (nor is a 0-d bool tensor or a NumPy bool);
- an integer is an ``int``, a NumPy integer or a 0-d integer tensor; ``2.0`` is a float, not an
  integer (a YAML ``steps: 2.0`` is refused, never rounded);
- a string is never a number (``'5'`` is refused; :func:`int_text` reads command-line text);
- a real is finite unless ``finite=False`` allows ``±inf``; NaN is always refused;
- a seed is ``0 .. MAX_SEED`` everywhere (a signed 64-bit generator seed, never negative);
- a value is shown as its ``repr`` on one line, at most 80 characters (77 and ``...``): recipes
  printed the whole ``repr``, the operators' checks cut it.

``where`` is what the message names: a key path for a recipe (``"r.yaml: operator.sigma"``; a
``where`` ending in ``": "`` is only a file prefix) or an argument's name (``"steps"``). The
message reads as a recipe key's when ``error`` is a :class:`~pnpdiff.errors.RecipeError`, as an
argument's otherwise; choices are listed as YAML text there and as Python literals here::

    r.yaml: steps: expected an integer >= 1 and <= 100000, got 2.0
    steps must be an integer >= 1 and <= 100000, got 2.0

Every check takes the same three parameters and returns the value normalised:

Parameters
----------
value : Any
    What the user gave (a 0-d tensor or NumPy scalar counts as the Python number it holds).
where : str
    The key path or argument name the message starts with.
error : type of PnPError
    What to raise: ``RecipeError`` for a recipe, ``OperatorError`` for an operator, ...
    (default ``ValueRangeError``; ``UnknownNameError`` for :func:`known`).

This module imports only the standard library and :mod:`pnpdiff.errors` (layer L0).
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pnpdiff.errors import PnPError, RecipeError, UnknownNameError, ValueRangeError

__all__ = ["MAX_STEPS", "MAX_SEED", "MAX_SIDE", "MAX_COUNT", "MAX_SIGMA_Y", "MAX_PARTICLES", "fail", "key_path",
           "int_", "int_text", "real", "bool_", "text", "choice", "known", "mapping", "pair", "seed", "steps",
           "count", "side"]

#: solver steps (a schedule of more sigmas is a mistake, not a run)
MAX_STEPS = 100_000
#: every seed is 0 .. MAX_SEED (a signed 64-bit generator seed)
MAX_SEED = 2**63 - 1
#: an image side (``size``)
MAX_SIDE = 16_384
#: images drawn or restored together (``n``, ``batch_size``, ``samples``); the memory guard still judges what fits
MAX_COUNT = 65_536
#: the largest measurement noise level ``sigma_y`` in the data's units; beyond it the data steps overflow to NaN
MAX_SIGMA_Y = 1e3
#: the most SMC particles (and probes, particles per denoiser call) one measurement takes
MAX_PARTICLES = 2**20

Error = type[PnPError]


def _show(value: Any) -> str:
    """``repr`` on one line (a multi-line one joined), at most 80 characters."""
    text = " ".join(line.strip() for line in repr(value).splitlines())
    return text if len(text) <= 80 else text[:77] + "..."


def _lead(where: str) -> str:
    return where if not where or where.endswith(": ") else f"{where}: "


def key_path(where: str, key: Any) -> str:
    """The path of ``key`` inside ``where``: ``"operator"`` -> ``"operator.sigma"``,
    ``"r.yaml: "`` -> ``"r.yaml: steps"``."""
    return f"{where}{key}" if not where or where.endswith(": ") else f"{where}.{key}"


def fail(where: str, what: str, value: Any, error: Error = ValueRangeError) -> PnPError:
    """The error (to raise) that ``value`` at ``where`` is not ``what`` (``"an integer >= 1"``)."""
    if issubclass(error, RecipeError):
        return error(f"{_lead(where)}expected {what}, got {_show(value)}")
    return error(f"{where or 'value'} must be {what}, got {_show(value)}")


def _scalar(value: Any) -> Any:
    """A 0-d tensor or NumPy array / scalar -> the Python number (or bool) it holds."""
    if type(value).__module__.split(".")[0] in ("torch", "numpy") and getattr(value, "ndim", None) == 0:
        try:
            return value.item()
        except (RuntimeError, TypeError, ValueError):  # a meta tensor holds no value
            return value
    return value


def _items(value: Any) -> list[Any]:
    """The entries of a list, tuple or 1-D tensor / array (``[]`` for anything else)."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if type(value).__module__.split(".")[0] in ("torch", "numpy") and getattr(value, "ndim", None) == 1:
        return list(value.tolist())
    return []


def _bounds(lo: Any, hi: Any, lo_open: bool, hi_open: bool, interval: bool) -> str:
    f = str if not interval else (lambda b: f"{float(b):g}")
    if lo is not None and hi is not None:
        if interval:
            return f" in {'(' if lo_open else '['}{f(lo)}, {f(hi)}{')' if hi_open else ']'}"
        return f" >= {lo} and <= {hi}"
    if lo is not None:
        return f" {'>' if lo_open else '>='} {f(lo)}"
    return "" if hi is None else f" {'<' if hi_open else '<='} {f(hi)}"


def _int_what(minimum: int | None, maximum: int | None, plural: bool = False) -> str:
    return ("integers" if plural else "an integer") + _bounds(minimum, maximum, False, False, False)


def _real_what(minimum: float | None, maximum: float | None, lo_open: bool, hi_open: bool, plural: bool = False) -> str:
    noun = "numbers" if plural else "a number"
    if minimum == 0 and lo_open and maximum is None:
        return "positive numbers" if plural else "a positive number"
    return noun + _bounds(minimum, maximum, lo_open, hi_open, True)


def _as_int(value: Any, minimum: int | None, maximum: int | None) -> int | None:
    v = _scalar(value)
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        return None
    v = int(v)
    return v if (minimum is None or v >= minimum) and (maximum is None or v <= maximum) else None


def _as_real(value: Any, minimum: float | None, maximum: float | None, lo_open: bool, hi_open: bool,
             finite: bool) -> float | None:
    v = _scalar(value)
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        return None
    try:
        x = float(v)
    except OverflowError:  # an int beyond the float range
        x = math.inf if v > 0 else -math.inf
    if math.isnan(x) or (finite and math.isinf(x)):
        return None
    if minimum is not None and (x <= minimum if lo_open else x < minimum):
        return None
    if maximum is not None and (x >= maximum if hi_open else x > maximum):
        return None
    return x


def int_(value: Any, where: str, *, minimum: int | None = None, maximum: int | None = None,
         error: Error = ValueRangeError) -> int:
    """``value`` as an ``int`` in ``[minimum, maximum]`` (no bool, float such as ``2.0``, or string)."""
    v = _as_int(value, minimum, maximum)
    if v is None:
        raise fail(where, _int_what(minimum, maximum), value, error)
    return v


def int_text(text: str, where: str, *, minimum: int | None = None, maximum: int | None = None,
             error: Error = ValueRangeError) -> int:
    """A decimal integer written as text (a command-line option: ``"5"``, not ``"2.0"`` or
    ``"1e3"``), checked as :func:`int_`."""
    if isinstance(text, str) and re.fullmatch(r"\s*[+-]?[0-9]{1,4000}\s*", text):
        return int_(int(text), where, minimum=minimum, maximum=maximum, error=error)
    raise fail(where, _int_what(minimum, maximum), text, error)


def real(value: Any, where: str, *, minimum: float | None = None, maximum: float | None = None,
         exclusive_minimum: bool = False, exclusive_maximum: bool = False, finite: bool = True,
         error: Error = ValueRangeError) -> float:
    """``value`` as a ``float`` within the bounds (inclusive unless ``exclusive_*``);
    ``finite=False`` lets ``±inf`` pass."""
    v = _as_real(value, minimum, maximum, exclusive_minimum, exclusive_maximum, finite)
    if v is None:
        what = _real_what(minimum, maximum, exclusive_minimum, exclusive_maximum)
        s = _scalar(value)
        if finite and isinstance(s, float) and not math.isfinite(s):
            what = what.replace("number", "finite number", 1)
        raise fail(where, what, value, error)
    return v


def bool_(value: Any, where: str, *, error: Error = ValueRangeError) -> bool:
    """``True`` or ``False`` (NumPy and 0-d tensor bools too); never ``0``, ``'no'`` or ``None``."""
    v = _scalar(value)
    if not isinstance(v, bool):
        raise fail(where, "true or false", value, error)
    return v


def text(value: Any, where: str, *, empty: bool = False, error: Error = ValueRangeError) -> str:
    """A string; unless ``empty``, one with more than whitespace in it."""
    if not isinstance(value, str) or (not empty and not value.strip()):
        raise fail(where, "a string" if empty else "a non-empty string", value, error)
    return value


def choice(value: Any, where: str, choices: Sequence[str], *, error: Error = ValueRangeError) -> str:
    """One of the strings ``choices`` (a fixed setting: ``precision``, ``boundary``); the message lists them."""
    if isinstance(value, str) and value in choices:
        return value
    listed = ", ".join(choices) if issubclass(error, RecipeError) else ", ".join(repr(c) for c in choices)
    raise fail(where, f"one of {listed}", value, error)


def known(value: Any, where: str, names: Iterable[str], *, kind: str, error: Error = UnknownNameError) -> str:
    """A registered name (a method, an operator, a prior): ``unknown method 'x'; known: a, b``
    (``where=""`` where ``kind`` already names the argument)."""
    names = list(names)
    if isinstance(value, str) and value in names:
        return value
    raise error(f"{_lead(where)}unknown {kind} {_show(value)}; known: {', '.join(names)}")


def mapping(value: Any, where: str, *, allowed_keys: Sequence[str] | None = None, required: Sequence[str] = (),
            kind: str = "", example: str = "", error: Error = ValueRangeError) -> dict[str, Any]:
    """A copy of a mapping whose keys are names, each one of ``allowed_keys`` (if given), with every
    ``required`` key; ``kind`` (``"noise"``) names the keys in the message, ``example`` the form."""
    if not isinstance(value, Mapping):
        raise fail(where, f"a mapping like {example}" if example else "a mapping", value, error)
    if any(not isinstance(k, str) for k in value):
        raise fail(where, "a mapping whose keys are names", value, error)
    for k in value:
        if allowed_keys is not None and k not in allowed_keys:
            raise error(f"{_lead(key_path(where, k))}unknown {kind + ' ' if kind else ''}key; "
                        f"known: {', '.join(allowed_keys)}")
    for k in required:
        if k not in value:
            raise error(f"{_lead(key_path(where, k))}missing")
    return dict(value)


def pair(value: Any, where: str, *, integer: bool = False, minimum: float | None = None,
         maximum: float | None = None, exclusive_minimum: bool = False, ordered: bool = False,
         error: Error = ValueRangeError) -> tuple[Any, Any]:
    """Two integers (``integer``) or reals, each within the bounds, as a tuple; ``ordered``: low <= high.
    A list, tuple or 1-D tensor / array of two; a bad entry is reported with the whole pair."""
    items = _items(value)
    if integer:
        what = "a pair of " + _int_what(minimum, maximum, plural=True)  # type: ignore[arg-type]
        out = [_as_int(v, minimum, maximum) for v in items]  # type: ignore[arg-type]
    else:
        what = "a pair of " + _real_what(minimum, maximum, exclusive_minimum, False, plural=True)
        out = [_as_real(v, minimum, maximum, exclusive_minimum, False, True) for v in items]
    if len(out) != 2 or None in out:
        raise fail(where, what, value, error)
    if ordered and out[0] > out[1]:
        raise fail(where, "low <= high", value, error)
    return out[0], out[1]


def seed(value: Any, where: str = "seed", *, error: Error = ValueRangeError) -> int:
    """A random seed: an integer in ``0 .. MAX_SEED``."""
    return int_(value, where, minimum=0, maximum=MAX_SEED, error=error)


def steps(value: Any, where: str = "steps", *, minimum: int = 1, error: Error = ValueRangeError) -> int:
    """A number of solver steps: an integer in ``minimum .. MAX_STEPS``."""
    return int_(value, where, minimum=minimum, maximum=MAX_STEPS, error=error)


def count(value: Any, where: str, *, minimum: int = 1, error: Error = ValueRangeError) -> int:
    """A number of images drawn or restored together: an integer in ``minimum .. MAX_COUNT``."""
    return int_(value, where, minimum=minimum, maximum=MAX_COUNT, error=error)


def side(value: Any, where: str = "size", *, minimum: int = 1, error: Error = ValueRangeError) -> int:
    """An image side: an integer in ``minimum .. MAX_SIDE``."""
    return int_(value, where, minimum=minimum, maximum=MAX_SIDE, error=error)


# ---------------------------------------------------------------------- memory sizes
_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40, "p": 2**50}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)(?:e([+-]?\d+))?\s*([kmgtp]?)(i?b?)\s*$", re.IGNORECASE)
_OFF = ("off", "none", "no", "false", "unlimited", "disable", "disabled")
_FORMS = ("a number of bytes (123456), a number with a unit K, M, G, T (powers of 1024: '512M', '8G', "
          "'1.5GiB'; KB/KiB, MB/MiB, GB/GiB also accepted) or 'off' to disable the memory check")


def parse_bytes(value: int | float | str | None) -> int | None:
    """A memory size given by a user, in bytes; ``None`` for ``None`` or ``"off"`` (no limit).

    Units are powers of 1024 whichever way they are written (``"8G"``, ``"8GB"`` and ``"8GiB"``
    are all 8 GiB), case-insensitive; a plain number is bytes.

    Parameters
    ----------
    value : int, float, str or None
        ``123456``, ``"512M"``, ``"1.5GiB"``, ``"40 G"``, ``"off"`` (or ``False``, which is what
        YAML makes of an unquoted ``off``), ...

    Raises
    ------
    ValueRangeError
        For anything else (a negative, NaN or empty size, an unknown unit, another type).
    """
    if value is None or value is False:  # YAML reads an unquoted ``off`` as false
        return None
    if isinstance(value, bool):
        raise ValueRangeError(f"invalid memory size {value!r}; give {_FORMS}")
    if isinstance(value, numbers.Real):  # numpy scalars too
        value = float(value) if not isinstance(value, numbers.Integral) else int(value)
        if not math.isfinite(value) or value < 0:
            raise ValueRangeError(f"invalid memory size {value!r}: it must be a non-negative number of bytes; "
                                  f"give {_FORMS}")
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in _OFF:
            return None
        m = _SIZE_RE.match(text)
        if m is not None:
            number, exp, unit, suffix = m.groups()
            if not (suffix.lower() == "ib" and unit == ""):  # "12iB" is no unit
                n = float(f"{number}e{exp or 0}") * _UNITS[unit.lower()]
                if math.isfinite(n):
                    return int(n)
    raise ValueRangeError(f"invalid memory size {value!r}; give {_FORMS}")
