"""Errors a user can cause.

Every error that a user can trigger (a wrong shape, an unknown name, a missing checkpoint, a bad
recipe key, an unreadable image, an output folder that is not pnpdiff's, a run too large for the
memory, ...) is raised as a subclass of :class:`PnPError` whose message says what to change. Each
subclass also derives from the built-in exception that code may already expect (a bad value is a
:class:`ValueError`, a missing file a :class:`FileNotFoundError`, ...). The command-line interface
prints such an error on one line and exits with status 2.
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
    "InputFileError",
    "ImageReadError",
    "OutputFolderError",
    "MemoryLimitError",
    "PnPWarning",
]


class PnPError(Exception):
    """Base class of every error a user of pnpdiff can cause."""


class ShapeError(PnPError, ValueError):
    """An array has the wrong number of dimensions, channels or size."""


class ValueRangeError(PnPError, ValueError):
    """A value is out of its valid range or of the wrong type (NaN input, negative noise level,
    a string where a number belongs, ...)."""


class UnknownNameError(PnPError, KeyError):
    """A prior, operator, method or schedule name is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class WeightsNotFoundError(PnPError, FileNotFoundError):
    """A model checkpoint is not available locally and cannot be downloaded."""


class ChecksumError(PnPError):
    """A checkpoint file does not match its published sha256 or is not a safe weights file."""


class RecipeError(PnPError, ValueError):
    """A YAML recipe or a command-line override has an unknown key, a missing key or a bad value."""


class OperatorError(PnPError, ValueError):
    """An operator was built with invalid parameters (kernel, factor, mask, ...)."""


class InputFileError(PnPError, FileNotFoundError):
    """An input path (image, measurement, mask, recipe) does not exist or is not a file."""


class ImageReadError(PnPError, OSError):
    """A file exists but cannot be read as an image (empty, truncated, not an image, no access)."""


class OutputFolderError(PnPError, OSError):
    """The output folder cannot be written, or holds files pnpdiff did not write."""


class MemoryLimitError(PnPError, MemoryError):
    """A run would need more memory than is available (raise the limit on purpose to try anyway)."""


class PnPWarning(UserWarning):
    """A setting that runs but is probably not what the user meant (e.g. a noise level above the
    range the prior was trained for)."""
