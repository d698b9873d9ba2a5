"""Running recipes: :func:`run` takes what :func:`pnpdiff.config.load` returned and carries it out.

* a restoration :class:`~pnpdiff.config.restore.Recipe` of one image: :mod:`pnpdiff.runs.single`
  (built on :mod:`~pnpdiff.runs.measure`: operator, mask, measurement; and
  :mod:`~pnpdiff.runs.report`: the pictures and run files); of a folder or a glob:
  :mod:`pnpdiff.runs.batch` (resumable, shared among ``torchrun`` ranks by
  :mod:`pnpdiff.runs.distributed`, the only reader of ``RANK`` / ``WORLD_SIZE``);
* a :class:`~pnpdiff.config.sample.SampleRecipe`: :mod:`pnpdiff.runs.sample`;
* a :class:`~pnpdiff.config.train.TrainConfig`: :mod:`pnpdiff.runs.train`.

Every run holds its output folder (:class:`pnpdiff.outputs.OutputFolder`) from before the work to
its last commit.
"""

from __future__ import annotations

from typing import Any

from pnpdiff.config.restore import Recipe
from pnpdiff.config.sample import SampleRecipe
from pnpdiff.config.train import TrainConfig
from pnpdiff.runs.sample import run_sample
from pnpdiff.runs.single import run_recipe
from pnpdiff.runs.train import train, train_classifier

__all__ = ["run"]


def run(recipe: Any, **kwargs: Any) -> dict[str, Any]:
    """Carry out a recipe from :func:`pnpdiff.config.load`; return its metrics / settings.

    ``kwargs`` are those of the runner of the recipe's kind (:func:`~pnpdiff.runs.single.run_recipe`,
    :func:`~pnpdiff.runs.sample.run_sample`, :func:`~pnpdiff.runs.train.train` /
    :func:`~pnpdiff.runs.train.train_classifier`).
    """
    if isinstance(recipe, SampleRecipe):
        return run_sample(recipe, **kwargs)
    if isinstance(recipe, TrainConfig):
        return (train if recipe.task == "train" else train_classifier)(recipe, **kwargs)
    if isinstance(recipe, Recipe):
        return run_recipe(recipe, **kwargs)
    raise TypeError(f"not a recipe: {type(recipe).__name__}")  # a programming error, not a user's
