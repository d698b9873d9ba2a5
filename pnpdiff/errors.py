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
    "UnknownRecipeNameError",
    "OperatorError",
    "InputFileError",
    "ImageReadError",
    "OutputFolderError",
    "MemoryLimitError",
    "NonFiniteError",
    "PnPWarning",
]


class PnPError(Exception):
    """Base class of every error a user of pnpdiff can cause.

    Raised (as one of its subclasses) for a wrong shape, an unknown name, a missing checkpoint, a
    bad recipe key, an unreadable image, a foreign output folder or a run too large for the memory.
    Read the message: it says what to change. Catch ``PnPError`` to handle all of them; the
    command-line interface prints it on one line and exits with status 2. It subclasses the
    built-in :class:`Exception` only; each subclass adds the built-in that fits (``ValueError``,
    ``FileNotFoundError``, ...).

    Parameters
    ----------
    message : str
        What went wrong and what to change.
    """


class ShapeError(PnPError, ValueError):
    """An array has the wrong number of dimensions, channels or size.

    Raised e.g. for an image that is not ``(B, C, H, W)`` / ``(C, H, W)`` / ``(H, W)``, a channel
    count the prior does not take, or a measurement that does not fit the operator's output. Fix
    the shape the message names (crop, pad, convert the colour space). Also a :class:`ValueError`.

    Parameters
    ----------
    message : str
        What went wrong and what to change.
    """


class ValueRangeError(PnPError, ValueError):
    """A value is out of its valid range or of the wrong type.

    Raised for a NaN or infinite input, a negative noise level, a string where a number belongs,
    an image outside [0, 1] where that matters, .... Pass a value in the range the message states.
    Also a :class:`ValueError`.

    Parameters
    ----------
    message : str
        What went wrong and what to change.
    """


class UnknownNameError(PnPError, KeyError):
    """A prior, operator, method or schedule name is not registered.

    The message lists the known names; pick one of them or register your own (e.g.
    :func:`pnpdiff.priors.register_prior`). Also a :class:`KeyError` (its message is printed
    without the quotes ``KeyError`` adds).

    Parameters
    ----------
    message : str
        What went wrong and what to change.
    """

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class WeightsNotFoundError(PnPError, FileNotFoundError):
    """A model checkpoint is not available locally and cannot be downloaded.

    The message names the file, where it is expected (the cache under ``$PNPDIFF_HOME``) and how to
    obtain it; copy the file there or pass its path (``prior="ffhq:/path/to/ffhq_10m.pt"``). Also a
    :class:`FileNotFoundError`.

    Parameters
    ----------
    message : str
        What went wrong and what to change.
    """


class ChecksumError(PnPError):
    """A checkpoint file does not match its published sha256 or is not a safe weights file.

    Delete the file and download it again, or pass the intended file explicitly; pnpdiff never
    loads weights it cannot verify or that would need ``weights_only=False``. Subclasses only
    :class:`PnPError` (and through it the built-in :class:`Exception`).

    Parameters
    ----------
    message : str
        What went wrong and what to change.
    """


class RecipeError(PnPError, ValueError):
    """A YAML recipe or a command-line override has an unknown key, a missing key or a bad value.

    The message names the key and its place in the recipe; fix the recipe or the ``key=value``
    override. Also a :class:`ValueError`.

    Parameters
    ----------
    message : str
        What went wrong and what to change.
    """


class UnknownRecipeNameError(RecipeError, UnknownNameError):
    """A recipe names a method, prior or operator that is not registered.

    Both a :class:`RecipeError` (the message names the file and the key, like every recipe error)
    and an :class:`UnknownNameError` (what :func:`pnpdiff.solve` raises for the same unknown name),
    so ``except UnknownNameError`` catches an unknown method whether it came from ``solve`` or from a
    recipe. The message lists the known names. Also a :class:`ValueError` and a :class:`KeyError`.

    Parameters
    ----------
    message : str
        What went wrong and what to change.
    """


class OperatorError(PnPError, ValueError):
    """An operator was built or used with invalid parameters (kernel, factor, mask, ...).

    Also raised when a solver needs a part an operator lacks (e.g. a spectral view for DDRM). Change
    the parameter the message names, or choose a method the operator supports. Also a
    :class:`ValueError`.

    Parameters
    ----------
    message : str
        What went wrong and what to change.
    """


class InputFileError(PnPError, FileNotFoundError):
    """An input path (image, measurement, mask, recipe) does not exist or is not a file.

    Check the path the message prints. Also a :class:`FileNotFoundError`.

    Parameters
    ----------
    message : str
        What went wrong and what to change.
    """


class ImageReadError(PnPError, OSError):
    """A file exists but cannot be read as an image (empty, truncated, not an image, no access).

    Re-export the image in a common format (PNG, JPEG, TIFF, ``.npy``) or fix its permissions.
    Also an :class:`OSError`.

    Parameters
    ----------
    message : str
        What went wrong and what to change.
    """


class OutputFolderError(PnPError, OSError):
    """The output folder cannot be written, or holds files pnpdiff did not write.

    Choose an empty folder, or one pnpdiff wrote before (it keeps a manifest of its files); nothing
    half-written is ever left behind. Also an :class:`OSError`.

    Parameters
    ----------
    message : str
        What went wrong and what to change.
    """


class MemoryLimitError(PnPError, MemoryError):
    """A run would need more memory than is available.

    Lower the batch size, image size or number of particles, or raise the memory limit on purpose
    to try anyway (the message says how). Also a :class:`MemoryError`.

    Parameters
    ----------
    message : str
        What went wrong and what to change.
    """


class NonFiniteError(PnPError, FloatingPointError):
    """A solve or a sampler met a NaN or an infinity, and stopped instead of returning it.

    Raised when a denoiser output is not finite (the message names the prior and the sigma), when
    an iterate becomes non-finite between two denoiser calls (the data step with the operator, or
    the method's options: ``lam``, ``zeta``, ``sigma_y``), or when the result is. Check the prior
    (its weights, the sigma range it was trained for) or the setting the message names. Also a
    :class:`FloatingPointError`.

    Parameters
    ----------
    message : str
        What went wrong and what to change.
    """


class PnPWarning(UserWarning):
    """A setting that runs but is probably not what the user meant.

    Issued (with :func:`warnings.warn`, not raised) e.g. for a noise level above the range the
    prior was trained for. Check the setting the message names; silence it with
    :func:`warnings.filterwarnings` if it is intended. Also a :class:`UserWarning`.

    Parameters
    ----------
    message : str
        What looks wrong and what to change.
    """
