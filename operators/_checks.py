"""Validators shared by the operators' constructors and generators (private).

Each validator either returns the value in a canonical Python form (``float``, ``int``,
``(int, int)``, ...) or raises an :class:`~pnpdiff.errors.OperatorError` whose message starts with
the parameter's name and says what was expected and what was given, e.g.
``sigma must be a positive number, got 'three'`` (recipes turn the leading name into a key path,
``operator.sigma: ...``). Nothing is coerced silently: a string is never parsed, a bool is never a
number, a non-integral float is never rounded to an integer (an integral one, ``2.0``, is exact
and accepted), NaN and infinity are refused. NumPy scalars and 0-d tensors count as the
Python numbers they hold.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pnpdiff.errors import MemoryLimitError, OperatorError, ShapeError, ValueRangeError

__all__ = [
    "OperatorRangeError",
    "OperatorShapeError",
    "show",
    "is_number",
    "real",
    "integer",
    "real_pair",
    "int_pair",
    "choice",
    "boolean",
    "seed",
    "generator",
    "float_dtype",
    "device",
    "shape_tuple",
    "as_real_tensor",
    "not_meta",
    "MAX_KERNEL_SIDE",
    "OperatorMemoryError",
    "kernel_side",
    "check_build_memory",
    "as_image",
]

#: the largest kernel (or mask) side an operator builds from its arguments (``sigma``, ``size``,
#: ``kernel_size``, a mask's ``shape``): the largest image side pnpdiff restores
#: (``pnpdiff.api.MAX_SIDE``); a kernel wider than any image is a mistake, not a blur
MAX_KERNEL_SIDE = 16_384
#: constructions that need less memory than this are not checked against the memory limit
BUILD_CHECK_FLOOR = 16 * 2**20


class OperatorRangeError(OperatorError, ValueRangeError):
    """An operator parameter of the wrong type or out of its range (both an
    :class:`~pnpdiff.errors.OperatorError` and a :class:`~pnpdiff.errors.ValueRangeError`)."""


class OperatorShapeError(OperatorError, ShapeError):
    """An operator parameter (kernel, mask, matrix, shape) of the wrong shape (both an
    :class:`~pnpdiff.errors.OperatorError` and a :class:`~pnpdiff.errors.ShapeError`)."""


class OperatorMemoryError(OperatorError, MemoryLimitError):
    """An operator whose construction (a kernel from ``sigma`` or ``size``, a mask of ``shape``)
    needs more memory than the run may use (both an :class:`~pnpdiff.errors.OperatorError` and a
    :class:`~pnpdiff.errors.MemoryLimitError`)."""


def show(value: Any) -> str:
    """``repr`` of a parameter value for a message; arrays and tensors as their shape and dtype."""
    if torch.is_tensor(value):
        if value.numel() <= 8 and not value.is_meta:
            return f"tensor({value.tolist()!r}, dtype={value.dtype})"
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    if isinstance(value, np.ndarray):
        if value.size <= 8:
            return f"array({value.tolist()!r}, dtype={value.dtype})"
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    try:
        text = " ".join(repr(value).split())
    except Exception:  # noqa: BLE001 - a broken __repr__ must not hide the real error
        text = f"<{type(value).__name__} object>"
    return text if len(text) <= 80 else text[:77] + "..."


def _scalar(value: Any) -> Any:
    """A one-element tensor or array -> the Python number it holds (anything else unchanged)."""
    if torch.is_tensor(value) and value.ndim == 0:
        if value.dtype == torch.bool or value.is_complex():
            return value
        return value.item()
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value[()]
    return value


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


def _is_real_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not _is_bool(value)


def is_number(value: Any) -> bool:
    """Whether ``value`` is a real number (int, float, NumPy scalar, 0-d tensor), not a bool."""
    return _is_real_number(_scalar(value))


def real(
    value: Any,
    name: str,
    *,
    positive: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
    below: float | None = None,
    finite: bool = True,
    error: type[Exception] = OperatorRangeError,
) -> float:
    """A real number as ``float``: no string, bool, complex or (``finite``) NaN/infinity.

    ``positive``: ``> 0``; ``minimum``/``maximum``: inclusive bounds; ``below``: exclusive upper
    bound.
    """
    if positive:
        what = "a positive number"
    elif minimum is not None and maximum is not None:
        what = f"a number in [{minimum:g}, {maximum:g}]"
    elif minimum is not None and below is not None:
        what = f"a number in [{minimum:g}, {below:g})"
    elif minimum == 0:
        what = "a non-negative number"
    elif minimum is not None:
        what = f"a number >= {minimum:g}"
    else:
        what = "a finite number" if finite else "a number"
    v = _scalar(value)
    if not _is_real_number(v):
        raise error(f"{name} must be {what}, got {show(value)}")
    v = float(v)
    if math.isnan(v) or (finite and math.isinf(v)):
        raise error(f"{name} must be {what}, got {show(value)}")
    if (
        (positive and not v > 0)
        or (minimum is not None and v < minimum)
        or (maximum is not None and v > maximum)
        or (below is not None and not v < below)
    ):
        raise error(f"{name} must be {what}, got {show(value)}")
    return v


def _int_or_none(v: Any) -> int | None:
    """The exact integer value of ``v`` (int, NumPy integer, integral finite float), else ``None``."""
    v = _scalar(v)
    if _is_bool(v):
        return None
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real):
        f = float(v)
        if math.isfinite(f) and f.is_integer():
            return int(f)
    return None


def integer(
    value: Any,
    name: str,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    what: str | None = None,
    error: type[Exception] = OperatorRangeError,
) -> int:
    """An integer as ``int``: no string, bool or non-integral float (``2.5`` is refused, not
    rounded; ``2.0`` is accepted as ``2``)."""
    if what is None:
        if minimum == 1 and maximum is None:
            what = "a positive integer"
        elif minimum == 0 and maximum is None:
            what = "a non-negative integer"
        elif minimum is not None and maximum is None:
            what = f"an integer >= {minimum}"
        elif minimum is not None and maximum is not None:
            what = f"an integer in [{minimum}, {maximum}]"
        else:
            what = "an integer"
    v = _int_or_none(value)
    if v is None or (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
        raise error(f"{name} must be {what}, got {show(value)}")
    return v


def _items(value: Any) -> list | None:
    """The entries of a list/tuple/1-D array/1-D tensor, or ``None`` for anything else (strings
    and dicts are not sequences of numbers here)."""
    if isinstance(value, (str, bytes, dict)) or value is None:
        return None
    if torch.is_tensor(value):
        return None if value.ndim != 1 else list(value.unbind(0))
    if isinstance(value, np.ndarray):
        return None if value.ndim != 1 else list(value)
    if isinstance(value, (Sequence, torch.Size)):
        return list(value)
    return None


def real_pair(value: Any, name: str, *, positive: bool = False) -> tuple[float, float]:
    """A number ``v`` -> ``(v, v)``, or a pair of numbers; each finite (and ``> 0`` if ``positive``)."""
    what = "a positive number or a pair of positive numbers" if positive else "a number or a pair of numbers"
    v = _scalar(value)
    if _is_real_number(v):
        items = [v, v]
    else:
        items = _items(value)
        if items is None or len(items) != 2:
            raise OperatorRangeError(f"{name} must be {what}, got {show(value)}")
    out = []
    for a in items:
        a = _scalar(a)
        if not _is_real_number(a) or not math.isfinite(float(a)) or (positive and not float(a) > 0):
            raise OperatorRangeError(f"{name} must be {what}, got {show(value)}")
        out.append(float(a))
    return out[0], out[1]


def int_pair(value: Any, name: str, *, minimum: int = 1) -> tuple[int, int]:
    """An integer ``n`` -> ``(n, n)``, or a pair of integers, each ``>= minimum``."""
    kind = "positive integer" if minimum == 1 else f"integer >= {minimum}"
    what = f"a {kind} or a pair of {kind}s"
    single = _int_or_none(value)
    if single is not None:
        items: list = [single, single]
    else:
        items = _items(value)
        if items is None or len(items) != 2:
            raise OperatorRangeError(f"{name} must be {what}, got {show(value)}")
        items = [_int_or_none(a) for a in items]
    if any(a is None or a < minimum for a in items):
        raise OperatorRangeError(f"{name} must be {what}, got {show(value)}")
    return items[0], items[1]


def choice(value: Any, name: str, options: Sequence[str], *, extra: str = "") -> str:
    """One of the strings ``options`` (the message lists them)."""
    if isinstance(value, str) and value in options:
        return value
    listed = ", ".join(repr(o) for o in options)
    raise OperatorError(f"{name} must be one of {listed}{extra}, got {show(value)}")


def boolean(value: Any, name: str) -> bool:
    """``True`` or ``False`` (NumPy bools too); no ``'no'``, ``0`` or ``None``."""
    if _is_bool(value):
        return bool(value)
    raise OperatorRangeError(f"{name} must be True or False, got {show(value)}")


def seed(value: Any, name: str = "seed") -> int | None:
    """``None`` or an integer that ``torch.Generator.manual_seed`` accepts."""
    if value is None:
        return None
    return integer(value, name, minimum=-(2**63), maximum=2**64 - 1, what="None or an integer (a random seed)")


def generator(value: Any, name: str = "generator") -> torch.Generator | None:
    """``None`` or a CPU ``torch.Generator`` (draws are made on the CPU, identical on every device)."""
    if value is None:
        return None
    if not isinstance(value, torch.Generator):
        raise OperatorError(f"{name} must be None or a torch.Generator, got {show(value)}")
    if value.device.type != "cpu":
        raise OperatorError(
            f"{name} must be a CPU torch.Generator (draws are made on the CPU so that they are the same on "
            f"every device), got a generator on {value.device}; pass torch.Generator() or seed=..."
        )
    return value


def float_dtype(value: Any, name: str = "dtype") -> torch.dtype:
    """A floating-point ``torch.dtype``."""
    if isinstance(value, torch.dtype) and value.is_floating_point:
        return value
    raise OperatorError(f"{name} must be a floating-point torch.dtype (e.g. torch.float32), got {show(value)}")


def device(value: Any, name: str = "device") -> torch.device | None:
    """``None``, a ``torch.device`` or a device string (``'cpu'``, ``'cuda:0'``)."""
    if value is None or isinstance(value, torch.device):
        return value
    if isinstance(value, (str, int)) and not _is_bool(value):
        try:
            return torch.device(value)
        except (RuntimeError, TypeError, ValueError):
            pass
    raise OperatorError(
        f"{name} must be None, a torch.device or a device name such as 'cpu' or 'cuda', got {show(value)}"
    )


def shape_tuple(
    value: Any,
    name: str,
    *,
    lengths: Sequence[int] | None = None,
    what: str | None = None,
    minimum: int = 1,
    error: type[Exception] = OperatorShapeError,
) -> tuple[int, ...]:
    """A sequence (tuple, list, ``torch.Size``, 1-D array) of integers ``>= minimum``, of one of
    the ``lengths`` if given."""
    if what is None:
        what = "a sequence of positive integers" if minimum == 1 else f"a sequence of integers >= {minimum}"
    items = _items(value)
    if items is None or (lengths is not None and len(items) not in lengths):
        raise error(f"{name} must be {what}, got {show(value)}")
    out = tuple(_int_or_none(a) for a in items)
    if any(a is None or a < minimum for a in out):
        raise error(f"{name} must be {what}, got {show(value)}")
    return out  # type: ignore[return-value]


def as_real_tensor(value: Any, name: str, *, ndims: Sequence[int], shapes: str) -> Tensor:
    """A non-empty real tensor of one of the ``ndims`` (``shapes`` names them for the message).

    Arrays and nested lists are converted; bool and integer tensors are returned as they are (the
    caller converts them, exactly, to a floating dtype); complex tensors, strings, ragged lists,
    empty tensors, tensors on the ``'meta'`` device (no values) and other objects are refused.
    Finiteness is not checked here.
    """
    if torch.is_tensor(value):
        t = value
    else:
        if value is None or isinstance(value, (str, bytes, dict)) or _is_real_number(value) or _is_bool(value):
            raise OperatorError(f"{name} must be a tensor or array of shape {shapes}, got {show(value)}")
        try:
            t = torch.as_tensor(value)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise OperatorError(
                f"{name} must be a tensor or array of shape {shapes} (a rectangular array of numbers), "
                f"got {show(value)} ({type(value).__name__})"
            ) from exc
    not_meta(t, name)
    if t.is_complex():
        raise OperatorRangeError(f"{name} must be real, got a tensor of dtype {t.dtype}")
    if t.ndim not in tuple(ndims):
        raise OperatorShapeError(f"{name} must have shape {shapes}, got shape {tuple(t.shape)}")
    if t.numel() == 0:
        raise OperatorShapeError(f"{name} must not be empty, got shape {tuple(t.shape)}")
    return t


def not_meta(t: Tensor, name: str, error: type[Exception] = OperatorError) -> Tensor:
    """``t`` itself, or one line if it is a tensor on the ``'meta'`` device (a shape without values)."""
    if torch.is_tensor(t) and t.is_meta:
        raise error(
            f"{name} is a tensor on the 'meta' device (a shape without values, shape {tuple(t.shape)}); pass a "
            "tensor that holds values (on 'cpu' or 'cuda'), e.g. one made with device='cpu'"
        )
    return t


def kernel_side(side: int, name: str, given: Any, how: str, fix: str, what: str = "a kernel") -> int:
    """``side`` (a kernel or mask side derived from the argument ``name`` = ``given``), or an
    :class:`OperatorRangeError` if it exceeds :data:`MAX_KERNEL_SIDE`.

    ``how`` says how the side follows from the argument (``"2 * ceil(3 sigma) + 1"``), ``fix``
    what to change. The message starts with ``name`` (recipes turn it into ``operator.name:``).
    """
    if side <= MAX_KERNEL_SIDE:
        return side
    side_text = f"{side:,}" if side < 10**15 else f"{float(side):.3g}"
    raise OperatorRangeError(
        f"{name} {show(given)} gives {what} {side_text} px a side ({how}), more than {MAX_KERNEL_SIDE} px, the "
        f"largest image side pnpdiff restores; {fix}"
    )


def check_build_memory(need_bytes: float, name: str, given: Any, what: str, fix: str) -> None:
    """Refuse a construction that needs more memory than a run may use, before allocating it.

    The limit is the one :func:`pnpdiff.solve` is held to (:func:`pnpdiff.memory.memory_limit` on
    the CPU, where operators build their kernels and masks: ``PNPDIFF_MAX_MEMORY``, else 80 % of
    the available RAM); constructions under :data:`BUILD_CHECK_FLOOR` are not checked.

    Parameters
    ----------
    need_bytes : float
        Estimated peak of the construction.
    name, given : str, Any
        The argument the size comes from and its value (the message starts with ``name``).
    what : str
        What it builds, e.g. ``"a 3001x3001 kernel"``.
    fix : str
        What to change, e.g. ``"use a smaller sigma or kernel_size"``.

    Raises
    ------
    OperatorMemoryError
        With one line: the argument, what it builds, the estimate, the limit and how to proceed.
    """
    if need_bytes < BUILD_CHECK_FLOOR:
        return
    from pnpdiff.memory import ENV_VAR, format_bytes, memory_limit

    cap, source = memory_limit(None)
    if cap is None or need_bytes <= cap:
        return
    gib = max(1, math.ceil(need_bytes * 1.25 / 2**30))
    raise OperatorMemoryError(
        f"{name} {show(given)} gives {what} that needs about {format_bytes(need_bytes)} of memory to build, more "
        f"than the {format_bytes(cap)} {source}; {fix}, or raise the limit on purpose with {ENV_VAR}={gib}G "
        f"(or {ENV_VAR}=off)"
    )


def as_image(x: Any) -> Any:
    """A PIL image -> the ``(1, C, H, W)`` float tensor in [0, 1] that :func:`pnpdiff.solve` makes of it
    (:func:`pnpdiff.io.to_tensor`: 8-bit /255, 16-bit /65535, alpha as solve treats it); anything else
    unchanged (the operator's own checks then judge it)."""
    if type(x).__module__.startswith("PIL."):
        from PIL import Image

        if isinstance(x, Image.Image):
            from pnpdiff.io import to_tensor

            return to_tensor(x)[0]
    return x
