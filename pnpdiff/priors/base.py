"""The prior contract: an MMSE denoiser family in variance-exploding form (on [0, 1] images).

Everything a solver needs from a prior is ``prior.denoise(x, sigma) -> x0_hat`` where
``x = x0 + sigma * noise``; the score and the noise prediction follow by Tweedie's formula. A
prior also states the sigma range it is valid on, its number of channels, if it has one the fixed
image size it was trained for, and the range its data live in (``data_range``: [0, 1] for image
priors, ``None`` for priors whose data live anywhere, such as Gaussian mixtures).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from pnpdiff.errors import ShapeError, ValueRangeError

__all__ = ["Prior", "as_sigma", "check_data_range"]


def as_sigma(sigma: float | Tensor, x: Tensor) -> Tensor:
    """Return ``sigma`` as a ``(B,)`` tensor on ``x``'s device and dtype.

    Accepts a Python number, a 0-d tensor, a ``(B,)`` tensor or a ``(B, 1, ..., 1)`` tensor.
    """
    s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if s.ndim == 0:
        return s.expand(x.shape[0])
    s = s.reshape(s.shape[0], -1)
    if s.shape[1] != 1 or s.shape[0] not in (1, x.shape[0]):
        raise ShapeError(f"sigma must be a scalar or hold one value per batch element, got {tuple(s.shape)}")
    return s[:, 0].expand(x.shape[0])


def check_data_range(data_range: Any) -> tuple[float, float] | None:
    """Validate a ``data_range`` declaration: ``None``, or a pair ``(lo, hi)`` of finite numbers
    with ``lo < hi``; returned as ``None`` or a tuple of floats.

    Raises
    ------
    ValueRangeError
        Anything else (a single number, ``lo >= hi``, NaN, a string, ...).
    """
    if data_range is None:
        return None
    msg = (f"data_range must be None (no range) or a pair (lo, hi) of finite numbers with lo < hi, "
           f"e.g. (0.0, 1.0) for images; got {data_range!r}")
    if isinstance(data_range, (str, bytes)):
        raise ValueRangeError(msg)
    try:
        values = list(data_range)
        if len(values) != 2 or any(isinstance(v, (bool, str, bytes)) for v in values):
            raise ValueRangeError(msg)
        lo, hi = float(values[0]), float(values[1])
    except (TypeError, ValueError, RuntimeError):
        raise ValueRangeError(msg) from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueRangeError(msg)
    return (lo, hi)


class Prior(nn.Module):
    """Base class of priors: an MMSE denoiser ``D(x, sigma) ~ E[x0 | x0 + sigma * n = x]``.

    Attributes
    ----------
    sigma_min, sigma_max : float
        Noise levels (in [0, 1] image units) the denoiser is valid for.
    channels : int or None
        Number of image channels the model expects (``None``: any).
    size : tuple of int or None
        Fixed ``(H, W)`` the model requires, or ``None``.
    name : str
        Short name used in messages and metrics.
    accepts_grey : bool
        Whether a colour prior also denoises one-channel (grey) images correctly; ``solve``
        then restores a grey photo stored as RGB as one channel.
    data_range : tuple of float or None
        ``(lo, hi)``: the range the prior's clean data ``x0`` lie in, ``(0.0, 1.0)`` for image
        priors (the default). :func:`pnpdiff.solve` refuses a measurement far outside it and clips
        its result to it. ``None``: no range is declared (data anywhere, e.g. a Gaussian mixture
        or a scientific prior): nothing is checked or clipped, and a grey image stored as RGB is
        not special-cased.
    """

    sigma_min: float = 0.0
    sigma_max: float = float("inf")
    channels: int | None = None
    size: tuple[int, int] | None = None
    name: str = "prior"
    accepts_grey: bool = False
    data_range: tuple[float, float] | None = (0.0, 1.0)

    def denoise(self, x: Tensor, sigma: float | Tensor) -> Tensor:  # pragma: no cover - abstract
        """Posterior-mean estimate of the clean image from ``x = x0 + sigma * n``."""
        raise NotImplementedError

    def forward(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        return self.denoise(x, sigma)

    def score(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        """``grad log p_sigma(x) = (D(x, sigma) - x) / sigma^2`` (Tweedie)."""
        s = as_sigma(sigma, x).view(-1, *([1] * (x.ndim - 1)))
        return (self.denoise(x, sigma) - x) / s**2

    def eps(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        """Noise prediction ``(x - D(x, sigma)) / sigma``."""
        s = as_sigma(sigma, x).view(-1, *([1] * (x.ndim - 1)))
        return (x - self.denoise(x, sigma)) / s

    def check_image(self, x: Tensor) -> None:
        """Raise :class:`~pnpdiff.PnPError` if ``x`` does not fit this prior's channels or size."""
        if self.channels is not None and x.ndim == 4 and x.shape[1] != self.channels:
            raise ShapeError(
                f"prior '{self.name}' expects {self.channels} channels, got {x.shape[1]}"
            )
        if self.size is not None and x.ndim == 4 and tuple(x.shape[-2:]) != tuple(self.size):
            raise ShapeError(
                f"prior '{self.name}' was trained on {self.size[0]}x{self.size[1]} images, got "
                f"{x.shape[-2]}x{x.shape[-1]}; resize or crop the image to that size"
            )
