"""Errors a user can cause.

Every error that a user can trigger (a wrong shape, an unknown name, a missing checkpoint, a bad
recipe key, ...) is raised as a subclass of :class:`PnPError` whose message says what to change.
The command-line interface prints such an error on one line and exits with status 2.
"""

from __future__ import annotations

__all__ = [
    "PnPError",
    "ShapeError",
    "ValueRangeError",
    "UnknownNameError",
    "WeightsNotFoundError",
    "ChecksumError",
    "RecipeError",
    "OperatorError",
]


class PnPError(Exception):
    """Base class of every error a user of pnpdiff can cause."""


class ShapeError(PnPError, ValueError):
    """An array has the wrong number of dimensions, channels or size."""


class ValueRangeError(PnPError, ValueError):
    """A value is out of its valid range (NaN input, negative noise level, ...)."""


class UnknownNameError(PnPError, KeyError):
    """A prior, operator, method or schedule name is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class WeightsNotFoundError(PnPError, FileNotFoundError):
    """A model checkpoint is not available locally and cannot be downloaded."""


class ChecksumError(PnPError):
    """A checkpoint file does not match its published sha256 or is not a safe weights file."""


class RecipeError(PnPError, ValueError):
    """A YAML recipe has an unknown key, a missing key or a bad value."""


class OperatorError(PnPError, ValueError):
    """An operator was built with invalid parameters (kernel, factor, mask, ...)."""
