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

__all__ = ["anscombe", "inverse_anscombe", "poisson_prox", "estimate_poisson_gaussian"]

_R = math.sqrt(1.5)
#: the variance of a standard normal truncated at +-4 (what the clipped variance estimates of it)
_TRIM_VAR = 1 - 8 * math.exp(-8) / math.sqrt(2 * math.pi) / math.erf(4 / math.sqrt(2))


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


def estimate_poisson_gaussian(z: Tensor, bins: int = 16) -> tuple[float, float]:
    """Estimate ``gain`` and the read noise ``sigma`` of ``z = gain * Poisson(x / gain) + N(0, sigma^2)``
    from ``z`` alone, by fitting the local variance against the local mean, ``var = gain * mean +
    sigma^2`` (after Foi, Trimeche, Katkovnik and Egiazarian, IEEE TIP 2008).

    The noise of each 2x2 block is read off its diagonal Haar coefficient (the signal's smooth part
    cancels in it, and its variance is the block's noise variance), the block's mean off its average;
    the blocks are grouped into ``bins`` levels of the mean; in each level the coefficients beyond four
    robust standard deviations (median absolute deviation / 0.6745: edges and texture) are dropped and
    the variance of the rest is taken (the median absolute deviation itself is biased for low photon
    counts, where the noise is not Gaussian), and a straight line is fitted by least squares weighted
    by the blocks in each level. The read noise is the line's intercept: it is found well only where
    ``sigma^2`` is not small against ``gain * mean``.

    Parameters
    ----------
    z : Tensor
        The measurement, ``(..., H, W)`` with ``H, W >= 4``.
    bins : int
        Levels of the local mean.

    Returns
    -------
    (float, float)
        ``gain`` (``>= 0``) and ``sigma`` (``>= 0``).

    References
    ----------
    A. Foi, M. Trimeche, V. Katkovnik and K. Egiazarian, "Practical Poissonian-Gaussian noise
    modeling and fitting for single-image raw-data", IEEE Trans. Image Processing 17(10), 2008,
    https://doi.org/10.1109/TIP.2008.2001399.
    """
    if z.dim() < 2 or z.shape[-1] < 4 or z.shape[-2] < 4:
        raise ValueRangeError(f"the noise fit needs an image of at least 4x4 pixels, got shape {tuple(z.shape)}")
    if int(bins) < 2:
        raise ValueRangeError(f"bins must be an integer >= 2, got {bins!r}")
    h, w = (z.shape[-2] // 2) * 2, (z.shape[-1] // 2) * 2
    v = z[..., :h, :w].to(torch.float64)
    a, b = v[..., 0::2, 0::2], v[..., 0::2, 1::2]
    c, d = v[..., 1::2, 0::2], v[..., 1::2, 1::2]
    detail = ((a - b - c + d) / 2).reshape(-1)
    mean = ((a + b + c + d) / 4).reshape(-1)
    edges = torch.quantile(mean, torch.linspace(0, 1, int(bins) + 1, dtype=torch.float64))
    ms, vs, ns = [], [], []
    for i in range(int(bins)):
        sel = (mean >= edges[i]) & ((mean < edges[i + 1]) if i < int(bins) - 1 else (mean <= edges[i + 1]))
        if int(sel.sum()) < 32:
            continue
        dv = detail[sel]
        scale = (dv - dv.median()).abs().median() / 0.6745  # robust, but biased for low counts
        keep = (dv - dv.median()).abs() <= 4 * scale  # edges and texture out; then the plain variance
        ms.append(float(mean[sel][keep].mean()))
        vs.append(float(dv[keep].var()) / _TRIM_VAR)
        ns.append(float(keep.sum()))
    if len(ms) < 2:
        raise ValueRangeError("the noise fit needs an image whose brightness varies (at least two levels of the mean)")
    m, var, n = (torch.tensor(t, dtype=torch.float64) for t in (ms, vs, ns))
    design = torch.stack([m, torch.ones_like(m)], 1) * n.sqrt()[:, None]
    sol = torch.linalg.lstsq(design, (var * n.sqrt())[:, None]).solution[:, 0]
    gain, s2 = float(sol[0]), float(sol[1])
    return max(gain, 0.0), math.sqrt(max(s2, 0.0))
