"""Training recipes (``task: train`` / ``task: train-classifier``): :class:`TrainConfig`, read and
validated from YAML with command-line overrides (:func:`load_train_recipe`)."""

from __future__ import annotations

import math
import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pnpdiff import checks
from pnpdiff.checks import MAX_COUNT, MAX_SEED, MAX_SIDE
from pnpdiff.config.files import apply_overrides, read_yaml_file
from pnpdiff.errors import PnPError, RecipeError
from pnpdiff.priors.trained import (
    PREDICTIONS,
)
from pnpdiff.training import MAX_TRAIN_STEPS, SIGMA_SAMPLINGS
from pnpdiff.unet import UNetConfig


@dataclass
class TrainConfig:
    """Settings of a training run (the keys of ``recipes/train_digits.yaml``; see :func:`train`).

    Parameters
    ----------
    data : str
        ``"digits"`` (built in) or a folder of images (sub-folders = classes).
    size : int
        Side the images are resized to (``>= 4``).
    channels : int, optional
        Image channels; default those of the data.
    conditional : bool
        Use the class labels (when the data have them).
    label_dropout : float
        Probability of replacing a label by the null label (classifier-free guidance), in [0, 1].
    model : dict
        :class:`~pnpdiff.unet.UNetConfig` fields (``base``, ``mult``, ``blocks``, ``attention``,
        ``emb``, ``dropout``).
    prediction : {"edm", "x0", "eps"}
        What the network predicts (see the module docstring for the loss weights).
    sigma_sampling : {"edm", "ddpm"}
        How training noise levels are drawn: EDM's log-normal or DDPM's uniform ``t``.
    sigma_min, sigma_max : float
        Range of the noise levels, ``0 < sigma_min < sigma_max``, in [0, 1] units.
    steps : int
        Optimiser steps.
    batch_size : int
        Images per step.
    lr, weight_decay : float
        AdamW learning rate (``> 0``) and weight decay (``>= 0``).
    warmup : int
        Steps of linear learning-rate warm-up.
    ema : float
        Decay of the exponential moving average of the weights, in [0, 1].
    grad_clip : float
        Gradient-norm clip (0: none).
    amp : bool
        bfloat16 autocast on CUDA.
    seed : int
        Seed of the one CPU generator behind data order, labels, noise levels and noise.
    checkpoint_every, sample_every, log_every : int
        Steps between checkpoints, sample grids (0: none) and log rows.
    output : str
        Output folder.
    name : str
        Name recorded in the model card.
    device : str, optional
        Default: CUDA when available.
    resume : bool
        Continue from ``output/checkpoint.pt``.
    overwrite : bool
        Replace a previous run's files in ``output`` (never a user's).
    task : str
        ``"train"`` or ``"train-classifier"`` (the CLI command of the recipe).
    description : str
        Free text, recorded in the model card.
    command : str
        The command line that reproduces the run (filled in by :func:`load_train_recipe`).
    """

    data: str = "digits"
    size: int = 16
    channels: int | None = None
    conditional: bool = True
    label_dropout: float = 0.1
    model: dict[str, Any] = field(default_factory=dict)
    prediction: str = "edm"
    sigma_sampling: str = "edm"
    sigma_min: float = 0.001
    sigma_max: float = 40.0
    steps: int = 8000
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup: int = 200
    ema: float = 0.999
    grad_clip: float = 1.0
    amp: bool = True
    seed: int = 0
    checkpoint_every: int = 1000
    sample_every: int = 2000
    log_every: int = 50
    output: str = "outputs/train"
    name: str = "trained"
    device: str | None = None
    resume: bool = False
    overwrite: bool = False
    task: str = "train"
    description: str = ""
    command: str = ""

    def validate(self, where: str = "") -> TrainConfig:
        """Check every field and normalise the numbers; raise on the first bad one.

        Parameters
        ----------
        where : str
            Prefix of the error messages (e.g. the recipe's path).

        Returns
        -------
        TrainConfig
            ``self``, with numbers converted to ``float`` where a float is expected.

        Raises
        ------
        RecipeError
            For a value out of range or of the wrong type (the message names the key).
        """
        def at(key: str) -> str:
            return checks.key_path(where, key)

        def integer(key: str, minimum: int, maximum: int) -> None:
            setattr(self, key, checks.int_(getattr(self, key), at(key), minimum=minimum, maximum=maximum,
                                           error=RecipeError))

        def real(key: str, lo: float, hi: float | None = None, open_lo: bool = False) -> None:
            v = getattr(self, key)
            try:
                setattr(self, key, checks.real(v, at(key), minimum=lo, maximum=hi, exclusive_minimum=open_lo,
                                               error=RecipeError))
            except RecipeError:  # training recipes' wording: "(0, inf]", and no "finite" for a NaN or an inf
                rng = (f"in ({lo:g}, {math.inf if hi is None else hi:g}]" if open_lo
                       else f"in [{lo:g}, {hi:g}]" if hi is not None else f">= {lo:g}")
                raise checks.fail(at(key), f"a number {rng}", v, RecipeError) from None

        # optimiser steps are not schedule steps: a long training run is legitimate (MAX_TRAIN_STEPS)
        for key, minimum, maximum in (("size", 4, MAX_SIDE), ("steps", 1, MAX_TRAIN_STEPS),
                                      ("batch_size", 1, MAX_COUNT), ("warmup", 0, MAX_TRAIN_STEPS),
                                      ("seed", 0, MAX_SEED), ("checkpoint_every", 1, MAX_TRAIN_STEPS),
                                      ("sample_every", 0, MAX_TRAIN_STEPS), ("log_every", 1, MAX_TRAIN_STEPS)):
            integer(key, minimum, maximum)
        if self.channels is not None:
            integer("channels", 1, 4096)
        real("label_dropout", 0.0, 1.0)
        real("lr", 0.0, open_lo=True)
        real("weight_decay", 0.0)
        real("ema", 0.0, 1.0)
        real("grad_clip", 0.0)
        real("sigma_min", 0.0, open_lo=True)
        real("sigma_max", 0.0, open_lo=True)
        if self.sigma_min >= self.sigma_max:
            raise RecipeError(f"{at('sigma_min')}: must be below sigma_max ({self.sigma_max:g}), "
                              f"got {self.sigma_min:g}")
        for key in ("conditional", "amp", "resume", "overwrite"):
            checks.bool_(getattr(self, key), at(key), error=RecipeError)
        checks.choice(self.prediction, at("prediction"), PREDICTIONS, error=RecipeError)
        checks.choice(self.sigma_sampling, at("sigma_sampling"), SIGMA_SAMPLINGS, error=RecipeError)
        for key in ("data", "output", "name"):
            checks.text(getattr(self, key), at(key), error=RecipeError)
        model = checks.mapping(self.model, at("model"), example="{base: 32, mult: [1, 2, 2]}", error=RecipeError)
        try:
            UNetConfig.from_dict({"channels": 1, **{k: v for k, v in model.items() if k != "classes"}})
        except PnPError as err:
            raise RecipeError(f"{where}{err}") from None
        return self


TRAIN_FIELDS = set(TrainConfig.__dataclass_fields__)

TRAIN_PATH_KEYS = ("data", "output")


def load_train_recipe(path: str | os.PathLike, overrides: Sequence[str] = (), data: Any = None) -> TrainConfig:
    """Read a training recipe (YAML) with command-line ``KEY=VALUE`` overrides.

    Relative ``data`` (a folder) and ``output`` paths in the file are relative to the file;
    on the command line, to the current directory.

    Parameters
    ----------
    path : str or os.PathLike
        The YAML recipe.
    overrides : sequence of str
        ``"KEY=VALUE"`` strings, applied on top of the file.
    data : mapping, optional
        The file's parsed YAML when the caller has read it already (:func:`pnpdiff.config.load`).

    Returns
    -------
    TrainConfig
        The validated settings.

    Raises
    ------
    RecipeError
        If the file is missing, not valid YAML, or has an unknown key or a bad value.
    """
    p = Path(path)
    where = f"{p}: "
    if data is None:
        if not p.is_file():
            raise RecipeError(f"recipe {p} does not exist")
        data = read_yaml_file(p)  # the one recipe loader: limits, 1e-2 floats, no duplicate key
    data = data or {}
    if not isinstance(data, dict):
        raise RecipeError(f"{where}a recipe is a mapping of keys to values")
    for key in TRAIN_PATH_KEYS:
        v = data.get(key)
        if isinstance(v, str) and v not in ("digits",) and not Path(v).expanduser().is_absolute():
            data[key] = str((p.parent / v).resolve())
    data = apply_overrides(data, list(overrides), where)
    for key in TRAIN_PATH_KEYS:  # overrides of paths: relative to the current directory
        for item in overrides:
            k, _, v = item.partition("=")
            if k.strip() == key and v.strip() and v.strip() != "digits":
                data[key] = str(Path(v.strip()).expanduser().resolve())
    unknown = sorted(set(data) - TRAIN_FIELDS)
    if unknown:
        raise RecipeError(f"{where}unknown key(s) {', '.join(unknown)}; training recipes take: "
                          f"{', '.join(sorted(TRAIN_FIELDS - {'command'}))}")
    cfg = TrainConfig(**data)
    cfg.command = " ".join(shlex.quote(a) for a in ["python", "-m", "pnpdiff", cfg.task, str(path), *overrides])
    return cfg.validate(where)
