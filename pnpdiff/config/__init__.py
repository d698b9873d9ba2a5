"""Recipes as data: one YAML read, validated into the recipe its ``task`` names.

:func:`load` is the one entry point of the command line: it reads a recipe file once (the safe
loader of :mod:`pnpdiff.config.files`), and by its ``task`` returns a restoration
:class:`~pnpdiff.config.restore.Recipe` (any task but the three below; a DPS / DiffPIR / DAPS config
is translated first), a :class:`~pnpdiff.config.sample.SampleRecipe` (``task: sample``) or a
:class:`~pnpdiff.config.train.TrainConfig` (``task: train`` / ``train-classifier``). Nothing here
runs anything: :mod:`pnpdiff.runs` does.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pnpdiff.config.files import read_recipe_data
from pnpdiff.config.restore import load_recipe
from pnpdiff.config.sample import load_sample_recipe
from pnpdiff.config.train import load_train_recipe

__all__ = ["load", "task_of_file", "TRAIN_TASKS", "SAMPLE_TASK"]

#: the ``task`` values of training recipes (each is also a command: ``pnpdiff train RECIPE``)
TRAIN_TASKS = ("train", "train-classifier")
#: the ``task`` value of sample recipes
SAMPLE_TASK = "sample"


def task_of_file(data: Any) -> str | None:
    """The ``task`` of a parsed recipe file when it names a sample or training recipe, else None."""
    task = data.get("task") if isinstance(data, dict) else None
    return task if task in (*TRAIN_TASKS, SAMPLE_TASK) else None


def load(path: str | os.PathLike, overrides: Sequence[str] = (), *, task: str | None = None) -> Any:
    """Read a recipe file once and validate it into the recipe its ``task`` names.

    ``task`` (a command such as ``train``) forces the kind: ``pnpdiff train FILE`` reads FILE as
    a training recipe whatever its ``task`` says, as it always has.
    """
    p = Path(path).expanduser()
    data = read_recipe_data(p) if task is None or p.is_file() else None
    kind = task or task_of_file(data)
    if kind in TRAIN_TASKS:
        cfg = load_train_recipe(path, list(overrides), data=data)
        cfg.task = kind
        return cfg
    if kind == SAMPLE_TASK:
        return load_sample_recipe(path, list(overrides), data=data)

    return load_recipe(path, list(overrides) or None, data=data)
