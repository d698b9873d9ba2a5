"""Poisson and Poisson-Gaussian noise: the variance-stabilising transform and the Poisson prox.

The first pieces of issue 28 (real sensor noise), not yet wired into ``solve`` or the recipes:

* :func:`anscombe` -- the generalised Anscombe transform of a Poisson-Gaussian measurement
  ``z = gain * p + n``, ``p ~ Poisson(x / gain)``, ``n ~ N(mu, sigma^2)``, which makes the noise
  approximately Gaussian with unit variance (Starck, Murtagh and Bijaoui 1998; Makitalo and Foi 2013);
* :func:`inverse_anscombe` -- its closed-form approximation of the exact unbiased inverse
  (Makitalo and Foi, IEEE TIP 2011 for Poisson, 2013 for Poisson-Gaussian), which maps
  ``E[f(z) | x]`` back to ``x`` (the algebraic inverse is biased at low counts);
* :func:`poisson_prox` -- the proximal map of the Poisson negative log-likelihood for an identity
  or a mask operator, in closed form.

References
----------
M. Makitalo and A. Foi, "Optimal inversion of the Anscombe transformation in low-count Poisson
image denoising", IEEE Trans. Image Processing 20(1), 2011, https://doi.org/10.1109/TIP.2010.2056693.

M. Makitalo and A. Foi, "Optimal inversion of the generalized Anscombe transformation for
Poisson-Gaussian noise", IEEE Trans. Image Processing 22(1), 2013, https://doi.org/10.1109/TIP.2012.2202675.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from pnpdiff.errors import ValueRangeError

__all__ = ["anscombe", "inverse_anscombe", "poisson_prox"]

_R = math.sqrt(1.5)


def _check(gain: float, sigma: float) -> tuple[float, float]:
    gain, sigma = float(gain), float(sigma)
    if not (math.isfinite(gain) and gain > 0):
        raise ValueRangeError(f"gain must be a finite number > 0, got {gain!r}")
    if not (math.isfinite(sigma) and sigma >= 0):
        raise ValueRangeError(f"sigma (the read noise) must be a finite number >= 0, got {sigma!r}")
    return gain, sigma


def anscombe(z: Tensor, gain: float = 1.0, sigma: float = 0.0, mu: float = 0.0) -> Tensor:
    """The generalised Anscombe transform ``f(z) = 2 / gain * sqrt(max(gain z + 3/8 gain^2 + sigma^2 -
    gain mu, 0))``.

    Parameters
    ----------
    z : Tensor
        The measurement (``gain`` times Poisson counts plus Gaussian read noise of mean ``mu`` and
        standard deviation ``sigma``).
    gain : float
        The sensor gain ``alpha`` (1: pure counts).
    sigma, mu : float
        Standard deviation and mean of the Gaussian read noise (0: pure Poisson, Anscombe 1948).

    Returns
    -------
    Tensor
        ``f(z)``, whose noise is approximately ``N(0, 1)``.

    References
    ----------
    M. Makitalo and A. Foi, "Optimal inversion of the generalized Anscombe transformation for
    Poisson-Gaussian noise", IEEE Trans. Image Processing 22(1), 2013, https://doi.org/10.1109/TIP.2012.2202675.
    """
    gain, sigma = _check(gain, sigma)
    return 2.0 / gain * (gain * z + 0.375 * gain**2 + sigma**2 - gain * float(mu)).clamp_min(0).sqrt()


def inverse_anscombe(d: Tensor, gain: float = 1.0, sigma: float = 0.0, mu: float = 0.0) -> Tensor:
    """The closed-form approximation of the exact unbiased inverse of :func:`anscombe`.

    With ``s = sigma / gain`` (the read noise in count units)::

        I(D) = D^2/4 + sqrt(3/2)/4 D^-1 - 11/8 D^-2 + 5 sqrt(3/2)/8 D^-3 - 1/8 - s^2,

    then ``x = gain * I(D) + mu``; ``I`` is clamped at 0, where the exact inverse is 0 too (for
    ``D`` below about 1.6 the approximation loses accuracy; Makitalo and Foi 2011, Sec. IV).

    Parameters
    ----------
    d : Tensor
        A denoised estimate of ``E[f(z) | x]``.
    gain, sigma, mu : float
        As for :func:`anscombe`.

    Returns
    -------
    Tensor
        The estimate of ``x`` (the mean of ``z``).

    References
    ----------
    M. Makitalo and A. Foi, "Optimal inversion of the Anscombe transformation in low-count Poisson
    image denoising", IEEE Trans. Image Processing 20(1), 2011, https://doi.org/10.1109/TIP.2010.2056693.
    """
    gain, sigma = _check(gain, sigma)
    dd = d.clamp_min(1e-6)
    inv = (0.25 * dd**2 + 0.25 * _R / dd - 1.375 / dd**2 + 0.625 * _R / dd**3 - 0.125
           - (sigma / gain) ** 2)
    return gain * inv.clamp_min(0) + float(mu)


def poisson_prox(v: Tensor, y: Tensor, rho: float, peak: float, mask: Tensor | None = None) -> Tensor:
    """``argmin_x  sum_i m_i (peak x_i - y_i log(peak x_i)) + rho/2 ||x - v||^2`` in closed form.

    The Poisson negative log-likelihood of counts ``y ~ Poisson(peak * x)`` (``peak``: photons at
    white) separates over pixels; on an observed pixel the minimiser is the positive root of
    ``rho x^2 + (peak - rho v) x - y = 0``, on a missing one (``m_i = 0``) it is ``v``.

    Parameters
    ----------
    v : Tensor
        The point the prox is taken at, image units.
    y : Tensor
        The counts (``>= 0``), broadcastable to ``v``.
    rho : float
        The weight of the quadratic term, ``> 0``.
    peak : float
        Photons at white, ``> 0``.
    mask : Tensor, optional
        1 where a pixel is observed, 0 where it is not (an :class:`~pnpdiff.operators.Inpaint`
        mask); default every pixel.

    Returns
    -------
    Tensor
        The minimiser, ``> 0`` wherever ``y > 0`` and observed.
    """
    rho, peak = float(rho), float(peak)
    if not (math.isfinite(rho) and rho > 0):
        raise ValueRangeError(f"rho must be a finite number > 0, got {rho!r}")
    if not (math.isfinite(peak) and peak > 0):
        raise ValueRangeError(f"peak must be a finite number > 0, got {peak!r}")
    b = peak - rho * v
    yc = y.clamp_min(0)
    root = (b * b + 4.0 * rho * yc).sqrt()
    # the root without cancellation: (-b + root) / (2 rho) for b <= 0, 2 y / (b + root) for b > 0
    x = torch.where(b > 0, 2.0 * yc / (b + root).clamp_min(torch.finfo(root.dtype).tiny), (root - b) / (2.0 * rho))
    if mask is not None:
        x = torch.where(mask.to(torch.bool), x, v)
    return x
