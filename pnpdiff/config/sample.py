"""Sample recipes (``task: sample``): a grid of unconditional or guided draws from a prior.

Keys: ``prior``, ``n`` (samples, or samples per class with ``label: each``), ``label`` (an
integer, a list, or ``each``: one row per class), ``cfg``, ``classifier``, ``classifier_scale``,
``method``, ``steps``, ``eta``, ``seed``, ``output``, ``device``; ``task`` and ``description`` are
free text. A relative ``output`` written in the file is relative to the file's folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pnpdiff import checks
from pnpdiff.config.files import apply_overrides, read_yaml_file
from pnpdiff.errors import RecipeError

__all__ = ["SAMPLE_KEYS", "SampleRecipe", "parse_sample_recipe", "load_sample_recipe"]

SAMPLE_KEYS = ("task", "description", "prior", "n", "label", "cfg", "classifier", "classifier_scale", "method",
               "steps", "eta", "seed", "output", "device")
#: the keys passed on to :func:`pnpdiff.sample` as they are
SAMPLE_OPTIONS = ("cfg", "classifier", "classifier_scale", "method", "steps", "eta", "seed")


@dataclass
class SampleRecipe:
    """A validated ``task: sample`` recipe (see the module docstring for the keys)."""

    prior: Any = "digits"
    n: Any = 8
    label: Any = None
    options: dict[str, Any] = field(default_factory=dict)
    output: Path = Path("outputs/samples")
    device: str | None = None
    source: Path | None = None

    @property
    def where(self) -> str:
        """The ``FILE: `` prefix of this recipe's messages."""
        return f"{self.source}: " if self.source is not None else ""


def parse_sample_recipe(data: Any, source: Path | None = None) -> SampleRecipe:
    """Validate a sample recipe given as a mapping (the parsed YAML, overrides applied)."""
    where = f"{source}: " if source is not None else ""
    data = data or {}
    unknown = sorted(set(data) - set(SAMPLE_KEYS))
    if unknown:
        raise RecipeError(f"{where}unknown key(s) {', '.join(unknown)}; sample recipes take: {', '.join(SAMPLE_KEYS)}")
    # the integer keys' ranges, before anything is loaded or allocated
    for key, check in (("n", checks.count), ("steps", checks.steps), ("seed", checks.seed)):
        if data.get(key) is not None:
            check(data[key], checks.key_path(where, key), error=RecipeError)
    out = Path(data.get("output") or "outputs/samples")
    if not out.is_absolute() and data.get("output") and source is not None:
        out = (source.parent / out).resolve()
    return SampleRecipe(prior=data.get("prior", "digits"), n=data.get("n", 8), label=data.get("label"),
                        options={k: data[k] for k in SAMPLE_OPTIONS if data.get(k) is not None}, output=out,
                        device=data.get("device"), source=source)


def load_sample_recipe(path: str | Path, overrides: Sequence[str] | None = None, data: Any = None) -> SampleRecipe:
    """Read (unless ``data``, the file's parsed YAML, is given) and validate a sample recipe file."""
    p = Path(path)
    if data is None:
        data = read_yaml_file(p) or {}
    data = apply_overrides(data or {}, list(overrides or []), f"{p}: ")
    return parse_sample_recipe(data, p)
