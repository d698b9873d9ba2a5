"""What the three dialects share: the translation and its table, the value checks, the recipe keys.

Every translator (:mod:`~pnpdiff.config.peers.dps`, :mod:`~pnpdiff.config.peers.diffpir`,
:mod:`~pnpdiff.config.peers.daps`) fills a :class:`Builder`: the pnpdiff recipe it builds, one
table row per peer key, and its errors (``FILE: key.path: message``, a
:class:`~pnpdiff.errors.RecipeError`). Values are checked with :mod:`pnpdiff.checks` (a bool is
never a number, ``2.0`` is not an integer, a seed is ``0 .. MAX_SEED``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pnpdiff import checks
from pnpdiff.config.keys import TOP_KEYS
from pnpdiff.errors import RecipeError

__all__ = ["Row", "Translation", "Builder", "fmt", "RECIPE_KEYS", "top_keys"]

#: One table row: ``(peer key path, peer value, pnpdiff key, pnpdiff value or "-")``.
Row = tuple[str, str, str, str]

#: The top-level keys of a pnpdiff restoration recipe, used when the caller passes none
#: (:func:`pnpdiff.config.peers.translate`'s ``recipe_keys``). A copy of
#: ``pnpdiff.config.restore.TOP_KEYS``, which this package may not import (``config.restore``
#: imports it: an import cycle); ``tests/test_peers_detect.py`` checks that the two agree.
#: the top-level keys of a pnpdiff recipe (:data:`pnpdiff.config.keys.TOP_KEYS`, the same tuple)
RECIPE_KEYS: tuple[str, ...] = TOP_KEYS


def top_keys(keys: Sequence[str] | None) -> tuple[str, ...]:
    """``keys`` as a tuple, or :data:`RECIPE_KEYS` when None."""
    return RECIPE_KEYS if keys is None else tuple(keys)


_KIND_TITLES = {"dps": "DPS task config", "diffpir": "DiffPIR config", "daps": "DAPS task config"}


@dataclass
class Translation:
    """A peer config translated into a pnpdiff recipe.

    Attributes
    ----------
    kind : str
        ``"dps"``, ``"diffpir"`` or ``"daps"``.
    recipe : dict
        A pnpdiff recipe mapping (only keys of :mod:`pnpdiff.config.restore`); relative paths are kept
        as the peer file wrote them, so :func:`pnpdiff.config.restore.parse_recipe` resolves them
        relative to the file.
    rows : list of (str, str, str, str)
        One row per peer key: ``(peer key path, peer value, pnpdiff key, pnpdiff value or "-")``;
        the value carries a short note where a unit is converted or where pnpdiff differs. Rows
        whose peer value is ``(absent)`` state the pnpdiff default that applies instead.
    source : Path, optional
        The file the config was read from.
    """

    kind: str
    recipe: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    source: Path | None = None

    def table(self) -> str:
        """The translation as an aligned text table, one line per peer key (for ``--dry-run``).

        Returns
        -------
        str
            A title line, a header, a rule and the rows; the last column is not padded.
        """
        title = f"# {self.source}: " if self.source is not None else "# "
        title += f"{_KIND_TITLES.get(self.kind, self.kind)} translated to a pnpdiff recipe"
        header: Row = ("peer key", "peer value", "pnpdiff key", "pnpdiff value")
        body = [header, *self.rows]
        widths = [min(max(len(r[i]) for r in body), cap) for i, cap in zip(range(3), (40, 28, 26))]
        lines = [title]
        for n, r in enumerate(body):
            cells = [r[i].ljust(widths[i]) for i in range(3)]
            lines.append("  ".join([*cells, r[3]]).rstrip())
            if n == 0:
                lines.append("  ".join(["-" * w for w in widths] + ["-" * len(header[3])]))
        return "\n".join(lines)


def fmt(v: Any) -> str:
    """A peer or pnpdiff value as it reads in the table (YAML-like flow style)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, float):
        return f"{v:.10g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(fmt(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {fmt(x)}" for k, x in v.items()) + "}"
    if isinstance(v, str):
        return repr(v) if v == "" else v
    return str(v)


class Builder:
    """Collects the recipe and the rows, and makes the errors (``FILE: key.path: message``)."""

    def __init__(self, kind: str, source: Path | None) -> None:
        self.kind = kind
        self.where = f"{source}: " if source is not None else ""
        self.recipe: dict[str, Any] = {}
        self.rows: list[Row] = []

    def fail(self, path: str, msg: str) -> RecipeError:
        return RecipeError(f"{self.where}{path}: {msg}" if path else f"{self.where}{msg}")

    def row(self, peer: str, value: Any, key: str, new: str) -> None:
        self.rows.append((peer, value if isinstance(value, str) and value.startswith("(") else fmt(value), key, new))

    def ignored(self, peer: str, value: Any, why: str) -> None:
        """A key pnpdiff need not read here: it does not change the result (``why`` says so)."""
        self.row(peer, value, "ignored", f"- ({why})")

    def bookkeeping(self, peer: str, value: Any, note: str = "") -> None:
        """A key that only does bookkeeping (result files, logging, metrics)."""
        self.row(peer, value, "ignored (bookkeeping)", f"- ({note})" if note else "-")

    def finish(self, data: dict[str, Any], source: Path | None, *, deep: bool = False) -> Translation:
        """The translation, rows in the order of the peer file's top-level keys (``deep``: of its key
        paths at every level), rows about absent keys last."""
        order = {k: i for i, k in enumerate(_paths(data) if deep else data)}

        def rank(r: Row) -> int:
            path = r[0].split("[")[0]
            if deep:
                while path and path not in order:
                    path = path.rpartition(".")[0]
                return order.get(path, len(order))
            return order.get(path.split(".")[0], len(order))

        return Translation(self.kind, self.recipe, sorted(self.rows, key=rank), source)

    # value checks (pnpdiff.checks: a bool is never a number, 2.0 is not an integer)
    def number(self, path: str, v: Any, *, minimum: float | None = None, positive: bool = False,
               maximum: float | None = None) -> float:
        if positive:
            return checks.real(v, self.where + path, minimum=0.0, exclusive_minimum=True, maximum=maximum,
                               error=RecipeError)
        return checks.real(v, self.where + path, minimum=minimum, maximum=maximum, error=RecipeError)

    def integer(self, path: str, v: Any, *, minimum: int = 1, maximum: int | None = None) -> int:
        return checks.int_(v, self.where + path, minimum=minimum, maximum=maximum, error=RecipeError)

    def seed(self, path: str, v: Any) -> int:
        return checks.seed(v, self.where + path, error=RecipeError)

    def steps(self, path: str, v: Any, *, minimum: int = 1) -> int:
        return checks.steps(v, self.where + path, minimum=minimum, error=RecipeError)

    def text(self, path: str, v: Any) -> str:
        if not isinstance(v, str):
            raise self.fail(path, f"expected text, got {v!r}")
        return v

    def boolean(self, path: str, v: Any) -> bool:
        return checks.bool_(v, self.where + path, error=RecipeError)

    def mapping(self, path: str, v: Any) -> dict[str, Any]:
        if v is None:
            return {}
        if not isinstance(v, dict):
            raise self.fail(path, f"expected a mapping, got {v!r}")
        return v

    def pair(self, path: str, v: Any, *, integers: bool = False) -> tuple[float, float]:
        if not isinstance(v, (list, tuple)) or len(v) != 2:
            raise self.fail(path, f"expected a pair [low, high], got {v!r}")
        check = self.integer if integers else self.number
        lo, hi = (check(f"{path}[{i}]", x, minimum=0) for i, x in enumerate(v))
        if hi < lo:
            raise self.fail(path, f"expected low <= high, got {fmt(v)}")
        return lo, hi

    def unknown(self, path: str, keys: Sequence[str], what: str) -> RecipeError:
        return self.fail(path, f"unknown {what} key; known: {', '.join(keys)}")


def _paths(d: dict[str, Any], prefix: str = "") -> list[str]:
    """Every key path of a nested mapping, parents before their children, in the file's order."""
    out: list[str] = []
    for k, v in d.items():
        out.append(prefix + str(k))
        if isinstance(v, dict):
            out += _paths(v, f"{prefix}{k}.")
    return out


def box_side(lo: float, hi: float) -> int:
    """The box side pnpdiff uses for a peer's side drawn from ``[lo, hi)``: exact for ``[n, n + 1)``,
    else the mean of the integers drawn."""
    return int(lo) if hi == lo + 1 else int(round((lo + hi - 1) / 2))
