"""The prior contract: an MMSE denoiser family in variance-exploding form (on [0, 1] images).

Everything a solver needs from a prior is ``prior.denoise(x, sigma) -> x0_hat`` where
``x = x0 + sigma * noise``; the score and the noise prediction follow by Tweedie's formula. A
prior also states the sigma range it is valid on, its number of channels, if it has one the fixed
image size it was trained for, and the range its data live in (``data_range``: [0, 1] for image
priors, ``None`` for priors whose data live anywhere, such as Gaussian mixtures).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from pnpdiff._docs import inherit_sections
from pnpdiff.errors import ShapeError, ValueRangeError

__all__ = ["Prior", "as_sigma", "check_data_range", "check_data_moment", "standard_normal"]

#: a generator, one generator per batch element, or None (torch's global generator)
GeneratorLike = torch.Generator | Sequence[torch.Generator] | None


def standard_normal(shape: Sequence[int], generator: GeneratorLike = None,
                    device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Tensor:
    """Standard normal noise of ``shape`` from ``generator``.

    ``generator`` may be one generator, ``None``, or one generator per batch element (image
    ``b`` then draws from ``generator[b]`` alone). ``device`` defaults to the (first)
    generator's device, ``dtype`` to the default dtype.
    """
    shape = tuple(int(v) for v in shape)
    gens = None if generator is None or isinstance(generator, torch.Generator) else list(generator)
    if device is None and generator is not None:
        device = (gens[0] if gens else generator).device
    dtype = dtype or torch.get_default_dtype()
    if gens is None:
        return torch.randn(shape, generator=generator, device=device, dtype=dtype)
    if len(gens) != shape[0]:
        raise ValueRangeError(f"{len(gens)} generators for a batch of {shape[0]} images; give one per image")
    one = (1, *shape[1:])
    return torch.cat([torch.randn(one, generator=g, device=device, dtype=dtype) for g in gens])


def as_sigma(sigma: float | Tensor, x: Tensor) -> Tensor:
    """Return ``sigma`` as a ``(B,)`` tensor on ``x``'s device and dtype.

    Accepts a Python number, a 0-d tensor, a ``(B,)`` tensor or a ``(B, 1, ..., 1)`` tensor.

    Parameters
    ----------
    sigma : float or Tensor
        The noise level(s).
    x : Tensor
        The batch the levels belong to (its size, device and dtype are used).

    Returns
    -------
    Tensor
        Shape ``(B,)``.

    Raises
    ------
    ShapeError
        If ``sigma`` holds neither one value nor one per batch element.
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


def check_data_moment(value: Any, name: str, *, non_negative: bool = False) -> float | Tensor | None:
    """Validate a ``data_mean`` / ``data_var`` declaration: ``None``, a finite number, or a tensor
    of finite values (``>= 0`` for a variance) that broadcasts to one sample.

    Raises
    ------
    ValueRangeError
        Anything else.
    """
    if value is None:
        return None
    what = "a finite number >= 0" if non_negative else "a finite number"
    msg = f"{name} must be None, {what}, or a tensor of such values broadcasting to one sample; got {value!r}"
    if isinstance(value, (bool, str, bytes)):
        raise ValueRangeError(msg)
    try:
        t = torch.as_tensor(value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise ValueRangeError(msg) from None
    if not bool(torch.isfinite(t).all()) or (non_negative and bool((t < 0).any())):
        raise ValueRangeError(msg)
    return float(t) if t.ndim == 0 else t


class Prior(nn.Module):
    """Base class of priors: an MMSE denoiser ``D(x, sigma) ~ E[x0 | x0 + sigma * n = x]``.

    A subclass implements :meth:`denoise` and states the attributes below (as class attributes
    or in its constructor); :meth:`score`, :meth:`eps`, :meth:`start` and the checks follow.

    Parameters
    ----------
    None
        ``Prior()`` itself takes no arguments (each subclass documents its own).

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
    data_mean, data_var : float, Tensor or None
        Mean and per-coordinate variance of the clean data ``x0`` (a number, or a tensor that
        broadcasts to one sample, e.g. ``(C, 1, 1)`` per channel). Samplers and the solvers that
        start from noise draw ``x_T ~ N(data_mean, sigma_T^2 + data_var)`` (:meth:`start`).
        Unstated (``None``): the mean is the middle of ``data_range`` (0.5 for [0, 1] images, and
        0.5 when no range is declared either) and the variance 0 -- the VE image of a VP sampler's
        ``N(0, I)`` start, ``0.5 + sigma_T n``. A trained prior states both (measured on its
        training data, stored in its model card); a Gaussian or mixture prior knows them exactly.
    """

    sigma_min: float = 0.0
    sigma_max: float = float("inf")
    channels: int | None = None
    size: tuple[int, int] | None = None
    name: str = "prior"
    accepts_grey: bool = False
    data_range: tuple[float, float] | None = (0.0, 1.0)
    data_mean: float | Tensor | None = None
    data_var: float | Tensor | None = None

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        inherit_sections(cls, Prior)  # an override that documents only how it computes gets the contract

    def denoise(self, x: Tensor, sigma: float | Tensor) -> Tensor:  # pragma: no cover - abstract
        """Posterior-mean estimate of the clean image from ``x = x0 + sigma * n``.

        Parameters
        ----------
        x : Tensor
            Noisy input ``x = x0 + sigma * n``, ``(B, C, H, W)`` (or the prior's sample shape).
        sigma : float or Tensor
            Noise level in [0, 1] units: a number, or one per batch element (``(B,)`` or
            ``(B, 1, 1, 1)``).

        Returns
        -------
        Tensor
            ``D(x, sigma) ~ E[x0 | x]``, shape of ``x``.
        """
        raise NotImplementedError

    def forward(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        """Same as :meth:`denoise` (so that ``prior(x, sigma)`` denoises).

        Parameters
        ----------
        x : Tensor
            Noisy input ``x = x0 + sigma * n``, ``(B, C, H, W)`` (or the prior's sample shape).
        sigma : float or Tensor
            Noise level in [0, 1] units: a number, or one per batch element (``(B,)`` or
            ``(B, 1, 1, 1)``).

        Returns
        -------
        Tensor
            ``D(x, sigma)``, shape of ``x``.
        """
        return self.denoise(x, sigma)

    def score(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        """``grad log p_sigma(x) = (D(x, sigma) - x) / sigma^2`` (Tweedie).

        Parameters
        ----------
        x : Tensor
            Noisy input ``x = x0 + sigma * n``, ``(B, C, H, W)`` (or the prior's sample shape).
        sigma : float or Tensor
            Noise level in [0, 1] units: a number, or one per batch element (``(B,)`` or
            ``(B, 1, 1, 1)``).

        Returns
        -------
        Tensor
            The score of the noisy marginal, shape of ``x``.
        """
        s = as_sigma(sigma, x).view(-1, *([1] * (x.ndim - 1)))
        return (self.denoise(x, sigma) - x) / s**2

    def eps(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        """Noise prediction ``(x - D(x, sigma)) / sigma``.

        Parameters
        ----------
        x : Tensor
            Noisy input ``x = x0 + sigma * n``, ``(B, C, H, W)`` (or the prior's sample shape).
        sigma : float or Tensor
            Noise level in [0, 1] units: a number, or one per batch element (``(B,)`` or
            ``(B, 1, 1, 1)``).

        Returns
        -------
        Tensor
            The predicted ``n``, shape of ``x``.
        """
        s = as_sigma(sigma, x).view(-1, *([1] * (x.ndim - 1)))
        return (x - self.denoise(x, sigma)) / s

    def check_image(self, x: Tensor) -> None:
        """Raise :class:`~pnpdiff.PnPError` if ``x`` does not fit this prior's channels or size.

        Parameters
        ----------
        x : Tensor
            An image batch ``(B, C, H, W)``.

        Raises
        ------
        ShapeError
            If the channels or the size differ from the prior's ``channels`` / ``size``.
        """
        if self.channels is not None and x.ndim == 4 and x.shape[1] != self.channels:
            raise ShapeError(
                f"prior '{self.name}' expects {self.channels} channels, got {x.shape[1]}"
            )
        if self.size is not None and x.ndim == 4 and tuple(x.shape[-2:]) != tuple(self.size):
            raise ShapeError(
                f"prior '{self.name}' was trained on {self.size[0]}x{self.size[1]} images, got "
                f"{x.shape[-2]}x{x.shape[-1]}; resize or crop the image to that size"
            )

    def data_moments(self, like: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and per-coordinate variance of the clean data, broadcast to ``like``'s shape.

        See :attr:`data_mean` / :attr:`data_var` for what is used when they are not stated.
        Returned on ``like``'s device and dtype.

        Parameters
        ----------
        like : Tensor
            A tensor of the shape, device and dtype wanted.

        Returns
        -------
        tuple of Tensor
            ``(mean, var)``, each broadcast to ``like``'s shape.
        """
        if self.data_mean is not None:
            mean = self.data_mean
        elif self.data_range is not None:
            mean = (self.data_range[0] + self.data_range[1]) / 2
        else:
            mean = 0.5
        var = 0.0 if self.data_var is None else self.data_var
        kw = {"device": like.device, "dtype": like.dtype}
        return (torch.as_tensor(mean, **kw).expand_as(like), torch.as_tensor(var, **kw).expand_as(like))

    def start(self, shape: Sequence[int], sigma: float, generator: GeneratorLike = None,
              device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Tensor:
        """Draw a starting point ``x_T ~ N(data_mean, (sigma^2 + data_var) I)`` of ``shape``.

        The Gaussian with the first two moments of the noisy marginal ``p_sigma`` (exact for a
        Gaussian prior): started there, the probability-flow ODE carries the right distribution
        to ``sigma = 0``; the old ``0.5 + sigma n`` start is what an image prior gives when
        nothing else is stated (then the result is bit-identical to it).

        Parameters
        ----------
        shape : sequence of int
            ``(B, *sample_shape)``.
        sigma : float
            Noise level of the start (the schedule's first sigma).
        generator : torch.Generator or sequence of torch.Generator, optional
            Source of the noise; a sequence gives image ``b`` its noise from ``generator[b]``.
        device, dtype : optional
            Of the result (default: the generator's device, the default dtype).

        Returns
        -------
        Tensor
            The starting point, ``shape``.

        Raises
        ------
        ValueRangeError
            If a sequence of generators does not have one per batch element.
        """
        n = standard_normal(shape, generator, device, dtype)
        mean, var = self.data_moments(n)
        if not bool((var > 0).any()):
            return mean + sigma * n
        return mean + (sigma**2 + var).sqrt() * n
