"""Poisson and Poisson-Gaussian noise: the variance-stabilising transform and the Poisson prox.

What ``solve(..., noise=...)`` and the recipes' ``noise: {model: ...}`` key are made of:

* :class:`NoiseModel` -- Gaussian, Poisson (``peak`` photons at white) or Poisson-Gaussian (``gain``
  per photon and read noise ``sigma``) noise in [0, 1] image units, with its draw, its negative
  log-likelihood, its variance and the prox of the likelihood (:meth:`NoiseModel.prox`);
  :func:`noise_model` reads one from a mapping (the one validator of the API and the recipes);
* :func:`anscombe` -- the generalised Anscombe transform of a Poisson-Gaussian measurement
  ``z = gain * p + n``, ``p ~ Poisson(x / gain)``, ``n ~ N(mu, sigma^2)``, which makes the noise
  approximately Gaussian with unit variance (Starck, Murtagh and Bijaoui 1998; Makitalo and Foi 2013);
* :func:`inverse_anscombe` -- its exact unbiased inverse (Makitalo and Foi, IEEE TIP 2011 for
  Poisson, 2013 for Poisson-Gaussian), which maps ``E[f(z) | x]`` back to ``x`` (the algebraic
  inverse is biased at low counts), tabulated from the exact expectation of the transform;
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
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from pnpdiff import checks
from pnpdiff.errors import PnPError, UnknownNameError, ValueRangeError

__all__ = ["NoiseModel", "noise_model", "NOISE_MODELS", "anscombe", "inverse_anscombe", "poisson_prox",
           "estimate_poisson_gaussian"]

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


#: the exact inverse is tabulated by summing the Poisson pmf up to this mean (counts); above it the
#: expectation comes from its series in the moments of ``p + n`` (error below 1e-4 counts there)
_EXACT_TOP = 200.0
#: the ratio between neighbouring means of the table (linear interpolation error below 3e-7 lam)
_TABLE_RATIO = 1.002


def _expected_transform(lam: Tensor, s: float) -> Tensor:
    """``E[2 sqrt(max(p + n + 3/8 + s^2, 0))]`` for ``p ~ Poisson(lam)``, ``n ~ N(0, s^2)`` (counts),
    ``lam`` a float64 CPU vector: the exact expectation of the transform, in count units."""
    out = torch.empty_like(lam)
    low = lam <= _EXACT_TOP
    if bool(low.any()):
        ll = lam[low]
        p_max = int(math.ceil(float(ll.max()) + 12 * math.sqrt(float(ll.max())) + 40))
        p = torch.arange(p_max + 1, dtype=torch.float64)
        if s > 0:  # E over the read noise of 2 sqrt(max(p + 3/8 + s^2 + n, 0)), by a fine trapezoid
            t = torch.linspace(-10.0, 10.0, 4001, dtype=torch.float64)
            w = torch.exp(-0.5 * t**2)
            w = w / w.sum()
            g = (2 * (p[:, None] + 0.375 + s * s + s * t[None, :]).clamp_min(0).sqrt() * w).sum(1)
        else:
            g = 2 * (p + 0.375).sqrt()
        logl = ll.clamp_min(1e-300).log()
        pmf = torch.exp(p[None, :] * logl[:, None] - ll[:, None] - torch.lgamma(p + 1)[None, :])
        pmf[ll == 0] = torch.nn.functional.one_hot(torch.tensor(0), p_max + 1).to(pmf)
        out[low] = pmf @ g
    high = ~low
    if bool(high.any()):  # 2 sqrt(a) E[sqrt(1 + e / a)], e = p - lam + n: its moments up to the 4th
        lh = lam[high]
        a = lh + 0.375 + s * s
        v, m3, m4 = lh + s * s, lh, 3 * (lh + s * s) ** 2 + lh
        out[high] = 2 * a.sqrt() * (1 - v / (8 * a**2) + m3 / (16 * a**3) - 5 * m4 / (128 * a**4))
    return out


def _inverse_table(s: float, top: float) -> tuple[Tensor, Tensor]:
    """``(E, lam)``: the exact expectation on a geometric grid of means from 0 to at least ``top``."""
    n = int(math.ceil(math.log(max(top, 1.0) / 1e-4) / math.log(_TABLE_RATIO))) + 2
    lam = torch.cat([torch.zeros(1, dtype=torch.float64),
                     1e-4 * _TABLE_RATIO ** torch.arange(n, dtype=torch.float64)])
    return _expected_transform(lam, s), lam


def inverse_anscombe(d: Tensor, gain: float = 1.0, sigma: float = 0.0, mu: float = 0.0) -> Tensor:
    """The exact unbiased inverse of :func:`anscombe` (Makitalo and Foi 2011, 2013).

    The inverse maps ``D = E[f(z) | x]`` back to ``x``: the expectation of the transform,
    ``E(lam) = sum_p Poisson(p; lam) E_n[2 sqrt(max(p + n + 3/8 + s^2, 0))]`` with ``s = sigma / gain``
    (the read noise in counts, ``n ~ N(0, s^2)``), is computed exactly -- the Poisson pmf summed, the
    Gaussian by a fine quadrature -- on a dense grid of means ``lam`` (counts) and inverted by
    interpolation (``E`` increases with ``lam``); above 200 counts it comes from its series in the
    moments of ``p + n`` (error below 1e-4 counts). ``x = gain * lam + mu``; a ``D`` below ``E(0)``
    maps to ``x = mu`` (no light). The algebraic inverse ``D^2/4 - 3/8 - s^2`` is biased at low counts,
    and so, by 0.01-0.02 counts at 5-100 counts, is the closed-form approximation of Makitalo and Foi
    (2011), which this replaces.

    Parameters
    ----------
    d : Tensor
        A denoised estimate of ``E[f(z) | x]``.
    gain, sigma, mu : float
        As for :func:`anscombe`.

    Returns
    -------
    Tensor
        The estimate of ``x`` (the mean of ``z``), same shape, dtype and device as ``d``.

    References
    ----------
    M. Makitalo and A. Foi, "Optimal inversion of the Anscombe transformation in low-count Poisson
    image denoising", IEEE Trans. Image Processing 20(1), 2011, https://doi.org/10.1109/TIP.2010.2056693.
    M. Makitalo and A. Foi, "Optimal inversion of the generalized Anscombe transformation for
    Poisson-Gaussian noise", IEEE Trans. Image Processing 22(1), 2013, https://doi.org/10.1109/TIP.2012.2202675.
    """
    gain, sigma = _check(gain, sigma)
    s = sigma / gain
    dd = d.detach().to(torch.float64)
    d_max = float(dd.max()) if dd.numel() else 0.0
    top = (max(d_max, 0.0) / 2) ** 2 + 10 * max(d_max, 1.0) + 50  # past E^-1 of the largest D
    e_tab, lam_tab = (t.to(dd.device) for t in _inverse_table(s, top))
    flat = dd.reshape(-1).contiguous()
    i = torch.searchsorted(e_tab, flat).clamp(1, e_tab.numel() - 1)
    e0, e1, l0, l1 = e_tab[i - 1], e_tab[i], lam_tab[i - 1], lam_tab[i]
    lam = l0 + (flat - e0) / (e1 - e0) * (l1 - l0)
    lam = torch.where(flat <= e_tab[0], torch.zeros_like(lam), lam).clamp_min(0)
    return (gain * lam.reshape(dd.shape) + float(mu)).to(d.dtype)


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
    return _poisson_prox_t(v, y, rho, peak, mask)


#: the levels of the local mean the noise fit compares, as quantiles of the blocks' brightness: finer at
#: both ends, where the line's intercept (the read noise) and its slope are decided
_LEVELS = (0.0, 0.005, 0.01, 0.02, 0.04, 0.07, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.93, 0.96,
           0.98, 0.99, 0.995, 1.0)
#: the blocks of a level kept for the fit: those whose neighbourhood's Haar energy is at most this many
#: times the level's median (in pure noise about 70 % of them; chosen on the benchmark's tuning photos
#: among 1, 1.2, 1.5 and 2 times the median)
_FLAT_RATIO = 1.2


def _ring_mean(t: Tensor) -> Tensor:
    """The mean of the 8 blocks around each interior block of ``t`` ``(N, h, w)`` (``(N, h - 2, w - 2)``)."""
    s = torch.nn.functional.avg_pool2d(t[:, None], 3, 1, 0)[:, 0] * 9
    return (s - t[:, 1:-1, 1:-1]) / 8


def estimate_poisson_gaussian(z: Tensor, bins: int | None = None,
                              return_stderr: bool = False) -> tuple[float, ...]:
    """Estimate ``gain`` and the read noise ``sigma`` of ``z = gain * Poisson(x / gain) + N(0, sigma^2)``
    from ``z`` alone, by fitting the local variance against the local mean, ``var = gain * mean +
    sigma^2`` (after Foi, Trimeche, Katkovnik and Egiazarian, IEEE TIP 2008).

    The noise of each 2x2 block is read off its diagonal Haar coefficient (the signal's smooth part
    cancels in it; its variance is the noise variance of the block), its brightness off its average.
    Three choices keep the level-wise variances unbiased:

    * the blocks are grouped into levels of brightness by the mean of their **8 neighbouring
      blocks**, not by their own: selected by their own noisy mean, the darkest level's blocks are
      those whose noise came out low, so its variance is too high for its mean (a read noise 25-30 %
      too high and a gain too low at 10 photons, measured on the benchmark's tuning photos); the
      neighbours' noise is independent of the block's, and each level's mean is the average of its
      blocks' own means, an unbiased estimate of their brightness;
    * in each level only the blocks whose neighbourhood's Haar energy is at most 1.2 times the
      level's median are kept (:data:`_FLAT_RATIO`: texture and edges add to the diagonal
      coefficient too; the choice, made on the neighbours, does not bias the noise of the block
      itself), then coefficients beyond four robust
      standard deviations (median absolute deviation / 0.6745) are dropped and the variance of the
      rest is taken (corrected for the truncation; the median absolute deviation itself is biased at
      low photon counts, where the noise is not Gaussian);
    * the levels are finer at both ends of the brightness (:data:`_LEVELS`), where the intercept
      and the slope are decided.

    The line is fitted by least squares weighted by the inverse variance of each level's estimate,
    ``n / (2 var^2)``, iterated on the fit; a negative intercept is refitted with the read noise at
    0 (the constrained maximum). The read noise is the intercept: it is identified only where the
    photo has levels dark enough for ``sigma^2`` not to be small against ``gain * mean``;
    ``return_stderr`` gives the fit's standard errors, which say when it is not (read them as lower
    bounds: texture the selection leaves in adds error they do not count).

    Parameters
    ----------
    z : Tensor
        The measurement, ``(..., H, W)`` with ``H, W >= 6``.
    bins : int, optional
        Number of equal-population levels of brightness instead of the default levels.
    return_stderr : bool
        Also return the standard errors of ``gain`` and ``sigma`` (of ``sigma`` by the delta method,
        ``se(sigma^2) / (2 sigma)``; where ``sigma`` is within its error of 0, ``sqrt(se(sigma^2))``,
        the scale below which it is not resolved).

    Returns
    -------
    tuple of float
        ``(gain, sigma)``, both ``>= 0``; with ``return_stderr``, ``(gain, sigma, gain_se, sigma_se)``.

    Raises
    ------
    ValueRangeError
        For an image smaller than 6x6, ``bins`` not an integer >= 2, or an image without two levels of
        brightness.

    References
    ----------
    A. Foi, M. Trimeche, V. Katkovnik and K. Egiazarian, "Practical Poissonian-Gaussian noise
    modeling and fitting for single-image raw-data", IEEE Trans. Image Processing 17(10), 2008,
    https://doi.org/10.1109/TIP.2008.2001399.
    """
    if not torch.is_tensor(z) or z.dim() < 2 or z.shape[-1] < 6 or z.shape[-2] < 6:
        got = tuple(z.shape) if torch.is_tensor(z) else type(z).__name__
        raise ValueRangeError(f"the noise fit needs an image of at least 6x6 pixels, got {got}")
    if bins is not None:
        bins = checks.int_(bins, "bins", minimum=2, error=ValueRangeError)
    return_stderr = checks.bool_(return_stderr, "return_stderr", error=ValueRangeError)
    h, w = (z.shape[-2] // 2) * 2, (z.shape[-1] // 2) * 2
    v = z[..., :h, :w].detach().to(torch.float64).reshape(-1, h, w)
    a, b = v[..., 0::2, 0::2], v[..., 0::2, 1::2]
    c, d = v[..., 1::2, 0::2], v[..., 1::2, 1::2]
    detail = (a - b - c + d) / 2
    own = (a + b + c + d) / 4
    energy = detail**2 + ((a + b - c - d) / 2) ** 2 + ((a - b + c - d) / 2) ** 2  # the block's Haar energy
    level, flatness = _ring_mean(own).reshape(-1), _ring_mean(energy).reshape(-1)  # from the neighbours
    detail, own = detail[:, 1:-1, 1:-1].reshape(-1), own[:, 1:-1, 1:-1].reshape(-1)
    qs = (torch.tensor(_LEVELS, dtype=torch.float64) if bins is None
          else torch.linspace(0, 1, bins + 1, dtype=torch.float64))
    edges = torch.quantile(level, qs.to(level.device))
    ms, vs, ns = [], [], []
    for i in range(len(qs) - 1):
        sel = (level >= edges[i]) & ((level < edges[i + 1]) if i < len(qs) - 2 else (level <= edges[i + 1]))
        if int(sel.sum()) < 64:
            continue
        sel &= flatness <= _FLAT_RATIO * flatness[sel].median()
        dv = detail[sel]
        scale = (dv - dv.median()).abs().median() / 0.6745
        keep = (dv - dv.median()).abs() <= 4 * scale
        if int(keep.sum()) < 32:
            continue
        ms.append(float(own[sel][keep].mean()))
        vs.append(float(dv[keep].var()) / _TRIM_VAR)
        ns.append(float(keep.sum()))
    if len(ms) < 2 or max(ms) - min(ms) <= 0:
        raise ValueRangeError("the noise fit needs an image whose brightness varies (at least two levels of the mean)")
    m, var, n = (torch.tensor(t, dtype=torch.float64) for t in (ms, vs, ns))
    design = torch.stack([m, torch.ones_like(m)], 1)
    weight = n / var.clamp_min(1e-12) ** 2
    for _ in range(4):  # weighted least squares, iterated on the fitted line
        sol = torch.linalg.lstsq(design * weight.sqrt()[:, None], (var * weight.sqrt())[:, None]).solution[:, 0]
        if float(sol[1]) < 0:  # the read noise's constraint: sigma^2 >= 0
            sol = torch.stack([(weight * m * var).sum() / (weight * m * m).sum(), torch.zeros((), dtype=m.dtype)])
        weight = n / (sol[0] * m + sol[1]).clamp_min(1e-12) ** 2
    gain, s2 = max(float(sol[0]), 0.0), max(float(sol[1]), 0.0)
    sigma = math.sqrt(s2)
    if not return_stderr:
        return gain, sigma
    cov = torch.linalg.pinv(design.T @ (design * (weight / 2)[:, None]))  # var(var_i) = 2 var_i^2 / n_i
    se_gain, se_s2 = float(cov[0, 0].clamp_min(0).sqrt()), float(cov[1, 1].clamp_min(0).sqrt())
    se_sigma = se_s2 / (2 * sigma) if sigma > math.sqrt(se_s2) else math.sqrt(se_s2)
    return gain, sigma, se_gain, se_sigma


#: the noise models ``solve(noise=...)`` and the recipes' ``noise: {model: ...}`` know
NOISE_MODELS = ("gaussian", "poisson", "poisson-gaussian")
#: the keys of a noise mapping (``model`` and its numbers)
NOISE_MODEL_KEYS = ("model", "sigma_y", "peak", "gain")


@dataclass(frozen=True)
class NoiseModel:
    """Measurement noise in [0, 1] image units: ``y = gain * Poisson(A x / gain) + N(0, sigma^2)``.

    ``model="gaussian"``: ``gain = 0`` (``y = A x + N(0, sigma^2)``); ``"poisson"``: ``sigma = 0`` and
    ``gain = 1 / peak`` (``peak``: the photons a white pixel collects; ``y`` counts / peak);
    ``"poisson-gaussian"``: both (a camera's shot noise and read noise, Foi et al. 2008). A number
    left ``None`` is estimated from the measurement by :meth:`resolve`.

    Parameters
    ----------
    model : {"gaussian", "poisson", "poisson-gaussian"}
        The family.
    sigma : float, optional
        Standard deviation of the Gaussian part (the read noise), image units.
    gain : float, optional
        Image units per photon (``1 / peak``).
    """

    model: str
    sigma: float | None = 0.0
    gain: float | None = 0.0

    @property
    def peak(self) -> float:
        """Photons at white, ``1 / gain`` (``inf`` for Gaussian noise)."""
        return math.inf if not self.gain else 1.0 / float(self.gain)

    @property
    def is_gaussian(self) -> bool:
        """Whether the noise is plain Gaussian (every solver's own likelihood)."""
        return self.model == "gaussian"

    @property
    def resolved(self) -> bool:
        """Whether every number is known (nothing left to estimate from ``y``)."""
        return self.sigma is not None and self.gain is not None

    def resolve(self, y: Tensor) -> NoiseModel:
        """The model with its unknown numbers estimated from ``y`` alone: ``sigma`` of Gaussian
        noise by the wavelet median absolute deviation, ``gain`` and ``sigma`` of Poisson(-Gaussian)
        noise by :func:`estimate_poisson_gaussian` (a Poisson model keeps ``sigma = 0``)."""
        if self.resolved:
            return self
        if self.model == "gaussian":  # (solve estimates a Gaussian sigma_y itself, as without a model)
            return self
        gain, sigma = estimate_poisson_gaussian(y)
        if gain <= 0:
            raise ValueRangeError("the noise fit found no signal-dependent noise in y (its variance does not grow "
                                  "with its brightness): give the noise's numbers, or use model 'gaussian'")
        if self.model == "poisson":
            return NoiseModel("poisson", 0.0, float(self.gain or gain))
        return NoiseModel("poisson-gaussian", float(sigma if self.sigma is None else self.sigma),
                          float(gain if self.gain is None else self.gain))

    def _numbers(self) -> tuple[float, float]:
        if not self.resolved:
            raise ValueRangeError(f"the {self.model} noise model has unknown numbers; resolve it from y first")
        return float(self.gain), float(self.sigma)

    def variance(self, ax: Tensor) -> Tensor:
        """The noise variance of each entry of a measurement of mean ``ax``: ``gain ax + sigma^2``."""
        gain, sigma = self._numbers()
        return gain * ax.clamp_min(0) + sigma**2

    def matched_sigma(self, y: Tensor) -> float:
        """The Gaussian noise level of the same mean variance, ``sqrt(mean(gain y + sigma^2))``
        (what a Gaussian-only step, a schedule's end or an initial estimate uses)."""
        gain, sigma = self._numbers()
        return math.sqrt(float((gain * y.clamp_min(0)).mean()) + sigma**2)

    def sample(self, ax: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """A measurement ``gain * Poisson(ax / gain) + sigma n`` (``ax`` clipped at 0 for the counts)."""
        gain, sigma = self._numbers()
        out = ax.clone() if not gain else gain * torch.poisson(ax.clamp_min(0) / gain, generator=generator)
        if sigma:
            out = out + sigma * torch.randn(ax.shape, generator=generator, dtype=ax.dtype, device=ax.device)
        return out

    def weights(self, y: Tensor) -> Tensor:
        """``1 / sqrt(var_i)`` with the variance read off a 5x5 local mean of ``y`` (floored at one photon), scaled to a
        root-mean-square of 1 -- the weighted residual of DPS for Poisson noise (Chung et al. 2023,
        Sec. 3.2: ``||y - A x||_Lambda`` with ``Lambda = diag(1 / (2 y))``), normalised so that
        Gaussian noise gives weight 1 everywhere and the step size keeps its meaning."""
        gain, sigma = self._numbers()
        # the variance from a local mean of y: read off y itself, the pixels whose noise came out low
        # would weigh most and pull the image down (measured: -2.3 dB at 10 photons)
        flat = y.reshape(-1, 1, *y.shape[-2:]) if y.dim() >= 2 else y.reshape(1, 1, 1, -1)
        local = torch.nn.functional.avg_pool2d(flat, 5, 1, 2, count_include_pad=False).reshape(y.shape)
        var = gain * local.clamp_min(gain) + sigma**2
        w = var.rsqrt()
        return w / w.pow(2).mean().sqrt()

    def nll(self, y: Tensor, ax: Tensor) -> Tensor:
        """The negative log-likelihood per sample, up to a constant (Poisson-Gaussian: the shifted
        Poisson approximation, ``(y + s) / gain ~ Poisson((A x + s) / gain)`` with ``s = sigma^2 /
        gain``, which has the right mean and variance)."""
        gain, sigma = self._numbers()
        if not gain:
            return ((y - ax) ** 2).flatten(1).sum(1) / (2 * sigma**2)
        s = sigma**2 / gain
        lam = (ax + s).clamp_min(torch.finfo(ax.dtype).tiny)
        return ((lam - (y + s).clamp_min(0) * lam.log()) / gain).flatten(1).sum(1)

    def prox(self, v: Tensor, y: Tensor, rho: float | Tensor, mask: Tensor | None = None) -> Tensor:
        """``argmin_x NLL(y | x) + rho / 2 ||x - v||^2`` entrywise, in closed form (``mask``: the
        entries observed; elsewhere ``v``).

        Gaussian: ``(y / sigma^2 + rho v) / (1 / sigma^2 + rho)``; Poisson and Poisson-Gaussian (the
        shifted Poisson likelihood of :meth:`nll`): :func:`poisson_prox` at ``v + s`` on the counts
        ``(y + s) / gain``, shifted back.
        """
        gain, sigma = self._numbers()
        if not gain:
            inv = 1.0 / max(sigma, 1e-3) ** 2
            x = (inv * y + rho * v) / (inv + rho)
            return x if mask is None else torch.where(mask.to(torch.bool), x, v)
        s = sigma**2 / gain
        return _poisson_prox_t(v + s, (y + s) / gain, rho, 1.0 / gain, mask) - s

    def describe(self) -> str:
        """One line: ``poisson, peak 10``, ``poisson-gaussian, gain 0.01, read noise 0.02``."""
        if self.model == "gaussian":
            return f"gaussian, sigma_y {self.sigma:.4g}" if self.sigma is not None else "gaussian"
        parts = [self.model]
        if self.gain is not None:
            parts.append(f"peak {self.peak:.4g}" if self.model == "poisson" else f"gain {self.gain:.4g}")
        if self.model == "poisson-gaussian" and self.sigma is not None:
            parts.append(f"read noise {self.sigma:.4g}")
        return ", ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        """The recipe form (``{model: poisson, peak: 10}``)."""
        d: dict[str, Any] = {"model": self.model}
        if self.model == "gaussian":
            d["sigma_y"] = self.sigma
        elif self.model == "poisson":
            d["peak"] = None if self.gain is None else self.peak
        else:
            d["gain"], d["sigma_y"] = self.gain, self.sigma
        return d


def _poisson_prox_t(v: Tensor, counts: Tensor, rho: float | Tensor, peak: float, mask: Tensor | None) -> Tensor:
    """:func:`poisson_prox` with ``rho`` a number or a per-sample tensor (no checks: internal)."""
    b = peak - rho * v
    # the root without cancellation: (-b + root) / (2 rho) for b <= 0, 2 y / (b + root) for b > 0
    yc = counts.clamp_min(0)
    root = (b * b + 4.0 * rho * yc).sqrt()
    x = torch.where(b > 0, 2.0 * yc / (b + root).clamp_min(torch.finfo(root.dtype).tiny), (root - b) / (2.0 * rho))
    return x if mask is None else torch.where(mask.to(torch.bool), x, v)


def noise_model(spec: Any, where: str = "noise", error: type[PnPError] = ValueRangeError) -> NoiseModel:
    """Read a noise model: a :class:`NoiseModel`, a model name (its numbers estimated from ``y``)
    or a mapping ``{model: poisson, peak: 10}``, ``{model: poisson-gaussian, gain: 0.01, sigma_y:
    0.02}`` (``peak`` may stand for ``gain = 1 / peak``), ``{model: gaussian, sigma_y: 0.025}``.

    Parameters
    ----------
    spec : NoiseModel, str or mapping
        The model.
    where : str
        Where it was given, for the message (``"noise"``, ``"r.yaml: noise"``).
    error : type
        The :class:`~pnpdiff.errors.PnPError` subclass to raise (the recipes pass ``RecipeError``).

    Returns
    -------
    NoiseModel
        With ``None`` for the numbers not given.
    """
    if isinstance(spec, NoiseModel):
        return spec
    if isinstance(spec, str):
        spec = {"model": spec}
    d = checks.mapping(spec, where, allowed_keys=NOISE_MODEL_KEYS, required=("model",), kind="noise",
                       example="{model: poisson, peak: 10}", error=error)
    model = checks.known(d["model"], checks.key_path(where, "model"), NOISE_MODELS, kind="noise model",
                         error=UnknownNameError if error is ValueRangeError else error)

    def num(key: str, **bounds: Any) -> float | None:
        return None if d.get(key) is None else checks.real(d[key], checks.key_path(where, key), error=error, **bounds)

    sigma = num("sigma_y", minimum=0.0, maximum=checks.MAX_SIGMA_Y)
    peak = num("peak", minimum=0.0, exclusive_minimum=True, maximum=1e9)
    gain = num("gain", minimum=0.0, exclusive_minimum=True, maximum=1e3)
    if model == "gaussian":
        for k in ("peak", "gain"):
            if k in d:
                raise error(f"{checks.key_path(where, k)}: Gaussian noise has no {k}; use model poisson or "
                            "poisson-gaussian")
        return NoiseModel("gaussian", sigma, 0.0)
    if peak is not None and gain is not None:
        raise error(f"{where}: give peak or gain (= 1 / peak), not both")
    if gain is None and peak is not None:
        gain = 1.0 / peak
    if model == "poisson":
        if "sigma_y" in d:
            raise error(f"{checks.key_path(where, 'sigma_y')}: Poisson noise has no Gaussian part; use model "
                        "poisson-gaussian for read noise")
        return NoiseModel("poisson", 0.0, gain)
    return NoiseModel("poisson-gaussian", sigma, gain)


class Stabilised:
    """The variance-stabilising route for a method that assumes Gaussian noise: ``forward`` maps a
    Poisson(-Gaussian) measurement through :func:`anscombe` and rescales it so that [0, 1] images
    land on [0, 1] again, where its noise is Gaussian of level :attr:`sigma`; ``inverse`` maps a
    denoised estimate back by :func:`inverse_anscombe`, the exact unbiased inverse (Makitalo and
    Foi 2013). Valid for denoising (``A = I``): for another operator the transformed measurement
    is no longer linear in ``x``.

    Parameters
    ----------
    noise : NoiseModel
        A Poisson or Poisson-Gaussian model with its numbers known.
    """

    def __init__(self, noise: NoiseModel) -> None:
        gain, sigma = noise._numbers()
        if not gain:
            raise ValueRangeError("the variance-stabilising transform is for Poisson(-Gaussian) noise")
        self.gain, self.read = gain, sigma
        ends = anscombe(torch.tensor([0.0, 1.0], dtype=torch.float64), gain, sigma)
        self.low, self.scale = float(ends[0]), float(ends[1] - ends[0])
        #: the Gaussian noise level of the rescaled transform (unit variance before rescaling)
        self.sigma = 1.0 / self.scale

    def forward(self, y: Tensor) -> Tensor:
        """``(f(y) - f(0)) / (f(1) - f(0))``: Gaussian noise of level :attr:`sigma`."""
        return (anscombe(y, self.gain, self.read) - self.low) / self.scale

    def inverse(self, d: Tensor) -> Tensor:
        """The estimate of ``x`` from a denoised ``d``: the exact unbiased inverse of the transform."""
        return inverse_anscombe(d * self.scale + self.low, self.gain, self.read)
