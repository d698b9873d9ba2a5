"""Running a ``task: sample`` recipe: a grid of unconditional or guided samples from a prior."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from pnpdiff.api import MAX_COUNT
from pnpdiff.config.sample import SampleRecipe, load_sample_recipe
from pnpdiff.errors import RecipeError
from pnpdiff.io import save_image
from pnpdiff.outputs import OutputFolder
from pnpdiff.priors import load_prior
from pnpdiff.sampling import sample, setup_sampling
from pnpdiff.training import grid

__all__ = ["run_sample", "run_sample_recipe", "SAMPLE_FILES"]

#: the files a sample run writes
SAMPLE_FILES = ("samples.png", "samples.json")


def run_sample(recipe: SampleRecipe, *, output: str | None = None, device: str | None = None,
               overwrite: bool = False, progress: bool = False, dry_run: bool = False) -> dict[str, Any]:
    """Draw a recipe's grid of samples into ``output/samples.png`` (and ``samples.json``).

    Returns the settings written to ``samples.json``; ``dry_run``: checks the recipe, the output
    folder, the device, the prior and the guidance (everything before the first network call) and
    returns those settings without sampling or writing anything. ``output`` (relative to the
    current directory) and ``device`` replace the recipe's.
    """
    where = recipe.where
    out = Path(output) if output else recipe.output
    prior = load_prior(recipe.prior)
    n, label, rows = recipe.n, recipe.label, 1
    if label == "each":
        classes = int(getattr(prior, "classes", 0) or 0)
        if not classes:
            raise RecipeError(f"{where}label: 'each' needs a class-conditional prior; '{prior.name}' has no classes")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise RecipeError(f"{where}n: expected an integer >= 1, got {n!r}")
        if n * classes > MAX_COUNT:
            raise RecipeError(f"{where}n: {n} samples for each of {classes} classes is {n * classes}, more than "
                              f"{MAX_COUNT}; choose n <= {MAX_COUNT // classes}")
        label = torch.arange(classes).repeat_interleave(n).tolist()
        rows, n = classes, n * classes
    folder = OutputFolder(out, list(SAMPLE_FILES), overwrite=overwrite)
    folder.check()
    kw = recipe.options
    dev = device or recipe.device
    settings = {"prior": str(recipe.prior), "n": n, "label": label, **kw}
    if dry_run:
        setup_sampling(prior, n, label, kw.get("cfg"), kw.get("classifier"), kw.get("classifier_scale"),
                       kw.get("method", "ddim"), kw.get("steps", 50), kw.get("eta", 0.0), dev)
        # label: each is shown as written (the expanded list has one entry per sample); n is the total
        return {"output": str(out), **settings, "label": recipe.label}
    with folder.hold():  # locked against another run from here to the commit
        x = sample(prior, n, label=label, device=dev, progress=progress, **kw)
        with folder.transaction() as tmp:
            save_image(grid(x, rows=rows), tmp / "samples.png")
            (tmp / "samples.json").write_text(json.dumps(settings, indent=2) + "\n")
    return {"output": str(out), **settings}


def run_sample_recipe(path: str, overrides: Sequence[str] | None = None, **kwargs: Any) -> dict[str, Any]:
    """:func:`run_sample` of the recipe file ``path`` (with command-line ``KEY=VALUE`` overrides)."""
    return run_sample(load_sample_recipe(path, overrides), **kwargs)
