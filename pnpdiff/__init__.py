"""pnpdiff: image restoration with pretrained denoisers / diffusion models as plug-and-play priors.

>>> import pnpdiff
>>> from pnpdiff import Downsample
>>> x_hat = pnpdiff.solve(y, operator=Downsample(4), prior="natural")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from pnpdiff._operators_path import ensure_operators
from pnpdiff.errors import (
    ChecksumError,
    ImageReadError,
    InputFileError,
    MemoryLimitError,
    NonFiniteError,
    OperatorError,
    OutputFolderError,
    PnPError,
    PnPWarning,
    RecipeError,
    ShapeError,
    UnknownNameError,
    ValueRangeError,
    WeightsNotFoundError,
)
from pnpdiff.interrupts import install_if_cli

install_if_cli()  # first, before torch loads: a command-line run interrupted during its imports exits 130/143
ensure_operators()

from pnpdiff import operators, schedules  # noqa: E402
from pnpdiff._version import __version__ as __version__  # noqa: E402 - re-exported
from pnpdiff.api import solve  # noqa: E402
from pnpdiff.posterior import sample_posterior  # noqa: E402
from pnpdiff.priors import Prior, load_prior  # noqa: E402
from pnpdiff.runs.train import train, train_classifier  # noqa: E402
from pnpdiff.sampling import sample  # noqa: E402

__all__ = [
    "solve",
    "sample_posterior",
    "sample",
    "train",
    "train_classifier",
    "load_prior",
    "Prior",
    "operators",
    "schedules",
    "PnPError",
    "ShapeError",
    "ValueRangeError",
    "UnknownNameError",
    "WeightsNotFoundError",
    "ChecksumError",
    "RecipeError",
    "OperatorError",
    "InputFileError",
    "ImageReadError",
    "OutputFolderError",
    "MemoryLimitError",
    "NonFiniteError",
    "PnPWarning",
    "Blur",
    "GaussianBlur",
    "Downsample",
    "Inpaint",
    "UniformBlur",
    "MotionBlur",
    "Colorize",
    "Identity",
    "Matrix",
    "random_mask",
    "box_mask",
    "freeform_mask",
    "LinearOperator",
    "compose",
]

_OPERATOR_EXPORTS = {"Blur", "GaussianBlur", "Downsample", "Inpaint", "UniformBlur", "MotionBlur",
                     "Colorize", "Identity", "Matrix", "LinearOperator", "compose",
                     "random_mask", "box_mask", "freeform_mask"}


#: sub-modules reachable as ``pnpdiff.<name>`` after a bare ``import pnpdiff`` (imported on first use)
_LAZY_MODULES = {"metrics", "datasets", "baselines", "guidance", "training", "unet", "sampling", "posterior",
                 "solvers", "priors", "memory", "costs", "checks", "config", "runs", "io", "errors"}


def __getattr__(name: str) -> Any:
    if name in _OPERATOR_EXPORTS:
        return getattr(operators, name)
    if name in _LAZY_MODULES:
        import importlib

        return importlib.import_module(f"pnpdiff.{name}")
    raise AttributeError(f"module 'pnpdiff' has no attribute {name!r}")
