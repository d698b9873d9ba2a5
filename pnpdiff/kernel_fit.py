r"""Parametric blur kernels fitted from the blurred photo alone (issue 28, "parametric").

Three families of point-spread function, each with a few physical parameters:

* ``"gaussian"``: :func:`~pnpdiff.operators.gaussian_kernel` of ``sigma`` (atmospheric / lens blur);
* ``"defocus"``: :func:`~pnpdiff.operators.disk_kernel` of ``radius`` (out of focus);
* ``"motion"``: :func:`~pnpdiff.operators.line_kernel` of ``length`` and ``angle`` (linear camera motion).

Method: maximum marginal likelihood in the Fourier domain
--------------------------------------------------------
The unknown sharp image is integrated out under a stationary Gaussian image model whose power
spectrum follows the power law of natural images, ``S(w) = c |w|^-alpha`` (Field, JOSA A 1987;
van der Schaaf and van Hateren, Vision Research 1996: ``alpha`` close to 2), and the noise is white
of standard deviation ``sigma_y``. The orthonormal discrete Fourier coefficients of ``y = k * x + n``
are then independent complex Gaussians (Whittle's approximation, exact for a circular image)::

    Y(w) ~ CN(0, P_theta(w)),   P_theta(w) = |K_theta(w)|^2 c |w|^-alpha + sigma_y^2,

and the negative log marginal likelihood is ``sum_w log(pi P_theta(w)) + |Y(w)|^2 / P_theta(w)``,
summed over one half of the frequency plane (``Y(-w)`` is the conjugate of ``Y(w)``), the mean and
the two axes excluded (what remains there of the image's own edge cross after a circular blur).
The scale ``c`` of each image is a nuisance parameter *profiled out*: for every ``theta`` it is
re-estimated by Fisher scoring. The exponent is held at ``alpha = 2`` (:data:`ALPHA`): left free,
it trades off against the blur (a steeper spectrum looks like more blur) and the fits on the
benchmark's tuning photos were 10-60 % off. Every digital photo is also band-limited near Nyquist
(optics, demosaicking, resampling), which a pure power law would read as blur: the image model
includes a reference Gaussian MTF, ``S(w) = c |w|^-2 exp(-s0^2 |w|^2)`` with ``s0 = 0.55`` px
(:data:`REFERENCE_SIGMA`, the median sharpness of the tuning photos at 256^2), so a fitted kernel is
the blur beyond that of a typical sharp photo.
This is the marginal (type-II) likelihood that Levin, Weiss, Durand and Freeman ("Understanding
and evaluating blind deconvolution algorithms", CVPR 2009; "Efficient marginal likelihood
optimization in blind deconvolution", CVPR 2011) show is the well-posed way to estimate a kernel --
unlike the joint MAP over image and kernel, which favours no blur -- in the Gaussian-prior form of
the classical parametric blur identification of Lagendijk, Biemond and Boekee ("Identification and
restoration of noisy blurred images using the expectation-maximization algorithm", IEEE TASSP
38(7), 1990) and Savakis and Trussell ("Blur identification by residual spectral matching", IEEE
TIP 2(2), 1993). A parametric family gives the likelihood one or two parameters to find, where
a grid and a 1-D / 2-D refinement find the global optimum (for motion, whose basins are about a
pixel of length wide, a coarse grid on the low frequencies first, then local grids at full
resolution); the zeros that a disk or a
line puts in ``|K(w)|`` (rings, parallel stripes), which the older "spectral zeros" methods look
for directly (Cannon, IEEE TASSP 24(1), 1976), are seen by the likelihood as frequencies where
``P_theta`` drops to the noise floor.

Why this and not a deconvolution loop: the likelihood uses only ``y``'s periodogram, so one fit
costs a few hundred FFT-sized vector operations (well under a second at 256^2 on a CPU for the 1-D
families), is deterministic, and comes with an uncertainty.

Boundaries: a photo is not periodic; its edges would look like blur-free high frequencies (a
cross in the spectrum). ``y`` is first replaced by the periodic component of Moisan's
periodic-plus-smooth decomposition (L. Moisan, "Periodic plus smooth image decomposition", JMIV
39(2), 2011), which removes exactly the edge discontinuities and keeps the interior's spectrum.

Uncertainty: the expected Fisher information of all parameters (``theta``, and ``c`` of every
image) at the optimum, ``J_ij = sum_w dP/dphi_i dP/dphi_j / P^2``, is inverted and the
``theta`` block's diagonal gives the standard errors (the Cramer-Rao bound; its ``theta`` block is
the curvature of the profiled likelihood). It measures the noise's effect under the model; on a
real photo the error is usually larger (the power law is an approximation), so read it as a lower
bound there.

Colour: the likelihood is evaluated on the luminance (Rec. 601 weights), whose noise level is
``sigma_y`` times the weights' norm for independent channel noise. A batch of images is fitted
with one shared kernel (each image keeps its own ``c``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from pnpdiff import checks
from pnpdiff.errors import ShapeError, UnknownNameError, ValueRangeError
from pnpdiff.operators.kernels import disk_kernel, gaussian_kernel, line_kernel
from pnpdiff.solvers.common import estimate_noise_level

__all__ = ["KernelFit", "FAMILIES", "fit_kernel", "fit_gaussian", "fit_defocus", "fit_motion", "fit_best",
           "kernel_log_likelihood", "periodic_component"]

#: the parametric families and their parameters
FAMILIES: dict[str, tuple[str, ...]] = {
    "gaussian": ("sigma",),
    "defocus": ("radius",),
    "motion": ("length", "angle"),
}
#: luminance weights (ITU-R BT.601) of an RGB image
_LUMA = (0.299, 0.587, 0.114)
#: smallest image side a kernel can be fitted on
MIN_SIDE = 16
#: the power law's exponent: ``S(w) ∝ |w|^-2``, scale invariance (Field 1987; van der Schaaf and
#: van Hateren 1996). Fixed, not fitted: a free exponent trades off against the blur (a steeper
#: spectrum looks like more blur) and made the fits 10-60 % worse on the tuning photos
ALPHA = 2.0
#: the reference sharpness of a digital photo: a Gaussian MTF of this sigma (px) multiplies the
#: power law (resampling and optics band-limit every photo near Nyquist). Calibrated on the
#: generalisation benchmark's *tuning* photos at 256^2 (median intrinsic sigma 0.55 px, fitted with
#: the reference set to 0); a fitted kernel is the blur *beyond* that of a typical sharp photo
REFERENCE_SIGMA = 0.55
#: the prior standard deviation that holds ``alpha`` at :data:`ALPHA` (effectively fixed)
_ALPHA_SD = 1e-3


@dataclass(frozen=True)
class KernelFit:
    """A parametric blur kernel fitted from a blurred image.

    Attributes
    ----------
    family : str
        ``"gaussian"``, ``"defocus"`` or ``"motion"``.
    params : dict of str to float
        ``{"sigma": s}``, ``{"radius": r}`` or ``{"length": L, "angle": a}`` (pixels; ``a`` in
        degrees in ``[0, 180)``, anticlockwise from the horizontal, see
        :func:`~pnpdiff.operators.line_kernel`).
    stderr : dict of str to float
        The standard error of each parameter (the inverse Fisher information at the optimum).
    kernel : Tensor
        ``(h, w)`` float64, non-negative, sums to one, centre at ``(h // 2, w // 2)``: ready for
        :class:`~pnpdiff.operators.Blur`.
    log_likelihood : float
        The maximised marginal log-likelihood (nats, over the half-plane of frequencies).
    sigma_y : float
        The noise level used (given, or estimated from ``y``), in ``y``'s units.
    n_frequencies : int
        The number of (complex) frequencies the likelihood sums over, for :attr:`bic`.
    n_nuisance : int
        The image model's fitted parameters (the power law's scale of each image), for :attr:`bic`.
    """

    family: str
    params: dict[str, float]
    stderr: dict[str, float]
    kernel: Tensor
    log_likelihood: float
    sigma_y: float
    n_frequencies: int = field(default=0, repr=False)
    n_nuisance: int = field(default=1, repr=False)

    @property
    def bic(self) -> float:
        """Schwarz's Bayesian information criterion ``k ln n - 2 log L`` (``k``: the kernel's
        parameters plus the power law's scale per image; ``n``: the real data values, two per
        complex frequency). Lower is better."""
        k = len(self.params) + self.n_nuisance
        return k * math.log(max(2 * self.n_frequencies, 1)) - 2.0 * self.log_likelihood


# -------------------------------------------------------------------------------------------------
# input
# -------------------------------------------------------------------------------------------------
def _as_batch(y: Any) -> Tensor:
    """``y`` as a ``(B, C, H, W)`` float64 tensor, checked."""
    if not torch.is_tensor(y):
        raise ShapeError(f"y must be a torch.Tensor of shape (B, C, H, W), (C, H, W) or (H, W), got "
                         f"{type(y).__name__}")
    if not y.is_floating_point():
        raise ValueRangeError(f"y must be a floating-point image tensor in [0, 1], got dtype {y.dtype}")
    if y.ndim == 2:
        y = y[None, None]
    elif y.ndim == 3:
        y = y[None]
    elif y.ndim != 4:
        raise ShapeError(f"y must have shape (B, C, H, W), (C, H, W) or (H, W), got shape {tuple(y.shape)}")
    if y.is_meta:
        raise ValueRangeError("y is a tensor without values (the meta device); pass a real image")
    if min(y.shape[-2:]) < MIN_SIDE or y.shape[0] == 0 or y.shape[1] == 0:
        raise ShapeError(f"y must be at least {MIN_SIDE}x{MIN_SIDE} pixels with at least one image and channel "
                         f"to fit a blur kernel, got shape {tuple(y.shape)}")
    y = y.detach().to(torch.float64)
    if not bool(torch.isfinite(y).all()):
        raise ValueRangeError("y must be finite, got NaN or infinite values")
    return y


def _luminance(y: Tensor) -> tuple[Tensor, float]:
    """``(B, H, W)`` luminance of ``y`` and the factor its white noise's std is scaled by."""
    c = y.shape[1]
    if c == 3:
        w = torch.tensor(_LUMA, dtype=y.dtype, device=y.device)
    else:
        w = torch.full((c,), 1.0 / c, dtype=y.dtype, device=y.device)
    return torch.einsum("bchw,c->bhw", y, w), float(w.norm())


def periodic_component(u: Tensor) -> Tensor:
    r"""The periodic component of Moisan's periodic-plus-smooth decomposition, ``u = p + s``.

    ``s`` is the smooth image whose discrete Laplacian equals the jumps across ``u``'s opposite
    edges, ``p = u - s`` is periodic-looking: its DFT has no edge cross, its interior spectrum is
    ``u``'s. Solved in closed form in the Fourier domain (``s`` has zero mean).

    Parameters
    ----------
    u : Tensor
        Images ``(..., H, W)`` (real).

    Returns
    -------
    Tensor
        ``p``, the same shape and dtype.

    References
    ----------
    L. Moisan, "Periodic plus smooth image decomposition", J. Math. Imaging Vis. 39(2), 2011.
    https://doi.org/10.1007/s10851-010-0227-1
    """
    h, w = u.shape[-2:]
    v = torch.zeros_like(u)
    dr = u[..., -1, :] - u[..., 0, :]  # jump across the top / bottom edge
    dc = u[..., :, -1] - u[..., :, 0]  # jump across the left / right edge
    v[..., 0, :] += dr
    v[..., -1, :] -= dr
    v[..., :, 0] += dc
    v[..., :, -1] -= dc
    q = torch.arange(h, dtype=u.dtype, device=u.device)
    r = torch.arange(w // 2 + 1, dtype=u.dtype, device=u.device)
    den = 2 * torch.cos(2 * math.pi * q / h)[:, None] + 2 * torch.cos(2 * math.pi * r / w)[None, :] - 4
    den[0, 0] = 1.0
    s_hat = torch.fft.rfft2(v) / den
    s_hat[..., 0, 0] = 0
    return u - torch.fft.irfft2(s_hat, s=(h, w))


# -------------------------------------------------------------------------------------------------
# the likelihood
# -------------------------------------------------------------------------------------------------
class _Spectrum:
    """The periodogram of the images and the profiled likelihood of a kernel power ``|K|^2``."""

    def __init__(self, lum: Tensor, noise_std: float, w_max: float = math.inf) -> None:
        b, h, w = lum.shape
        self.shape = (h, w)
        p = periodic_component(lum)
        y_hat = torch.fft.rfft2(p, norm="ortho")
        fy = torch.fft.fftfreq(h, dtype=lum.dtype, device=lum.device) * 2 * math.pi
        fx = torch.fft.rfftfreq(w, dtype=lum.dtype, device=lum.device) * 2 * math.pi
        rad = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
        wt = torch.ones_like(rad)
        wt[:, 0] = 0.5  # column 0 and (w even) column w/2 hold each frequency and its conjugate
        if w % 2 == 0:
            wt[:, -1] = 0.5
        wt[0, 0] = 0.0  # the mean: not part of the model
        # the two axes of the spectrum carry the rest of the edge cross a circular blur smooths
        # (the image's own wrap-around jumps, blurred): not the model's, left out
        wt[0, :] = 0.0
        wt[:, 0] = 0.0
        wt[rad >= w_max] = 0.0  # a coarse search looks at the low frequencies only
        keep = wt.reshape(-1) > 0
        self.keep = keep
        self.wt = wt.reshape(-1)[keep]
        self.logw = rad.reshape(-1)[keep].log()
        self.ref = torch.exp(-((REFERENCE_SIGMA * rad.reshape(-1)[keep]) ** 2))
        self.power = (y_hat.abs() ** 2).reshape(b, -1)[:, keep]
        self.s2 = max(noise_std, 1e-6) ** 2
        self.n_freq = float(self.wt.sum()) * b
        self.batch = b
        self.alpha_mean = ALPHA
        self.alpha_sd = _ALPHA_SD

    def kernel_power(self, kernel: Tensor) -> Tensor:
        """``|K(w)|^2`` of a kernel on the kept frequencies."""
        h, w = self.shape
        kh, kw = kernel.shape
        if kh > h or kw > w:  # a kernel larger than the image acts on it wrapped around
            kernel = kernel[(kh - min(kh, h)) // 2:][:h, (kw - min(kw, w)) // 2:][:, :w]
        k_hat = torch.fft.rfft2(kernel.to(self.power), s=(h, w))
        return (k_hat.real**2 + k_hat.imag**2).reshape(-1)[self.keep] * self.ref

    def _init_state(self, a: Tensor) -> Tensor:
        """Power law ``(log c, alpha)`` of each image: ``c`` by least squares in the log domain on its low
        frequencies, ``alpha`` the model's."""
        low = self.logw < 0.0  # |w| < 1 rad / px
        x = -self.logw[low]
        t = (self.power[:, low] / a[low].clamp_min(1e-3)).clamp_min(1e-30).log()
        alpha = torch.full((t.shape[0],), self.alpha_mean, dtype=t.dtype, device=t.device)
        logc = (t - alpha[:, None] * x).mean(1) + 0.5772  # the mean of log of an Exp(1) is -0.5772
        return torch.stack([logc, alpha], 1)

    def _nll(self, a: Tensor, state: Tensor) -> Tensor:
        """Negative log-likelihood of each image (``(B,)``) for ``|K|^2 = a`` and ``state`` ``(B, 2)``
        (constants ``log pi`` included)."""
        g = a * torch.exp(state[:, :1] - state[:, 1:] * self.logw)
        p = g + self.s2
        pen = 0.5 * ((state[:, 1] - self.alpha_mean) / self.alpha_sd) ** 2
        return (self.wt * (p.log() + self.power / p + math.log(math.pi))).sum(1) + pen

    def profile(self, a: Tensor, state: Tensor | None = None, max_iter: int = 60,
                tol: float = 1e-9) -> tuple[Tensor, Tensor]:
        """Minimise over ``(log c, alpha)`` of every image by Fisher scoring with step halving,
        until the total negative log-likelihood improves by less than ``tol`` (relative); the
        total and the state ``(B, 2)``."""
        if state is None:
            state = self._init_state(a)
        cur = self._nll(a, state)
        prec = 1.0 / self.alpha_sd**2
        last = float(cur.sum())
        for _ in range(max_iter):
            g = a * torch.exp(state[:, :1] - state[:, 1:] * self.logw)
            p = g + self.s2
            r = self.wt * (1.0 / p - self.power / p**2)  # dNLL / dP
            du, da = g, -g * self.logw
            grad = torch.stack([(r * du).sum(1), (r * da).sum(1) + prec * (state[:, 1] - self.alpha_mean)], 1)
            q = self.wt / p**2
            j11, j12, j22 = (q * du * du).sum(1), (q * du * da).sum(1), (q * da * da).sum(1) + prec
            det = (j11 * j22 - j12**2).clamp_min(1e-300)
            step = torch.stack([(j22 * grad[:, 0] - j12 * grad[:, 1]) / det,
                                (j11 * grad[:, 1] - j12 * grad[:, 0]) / det], 1)
            step = step / (step.abs().amax(1, keepdim=True) / 2.0).clamp_min(1.0)  # at most 2 per step
            t = 1.0
            for _ in range(8):  # step halving until the likelihood does not get worse
                cand = state - t * step
                vals = self._nll(a, cand)
                if bool((vals <= cur).all()):
                    break
                t /= 2
            else:
                break
            state, cur = cand, vals
            now = float(cur.sum())
            if not last - now > tol * abs(now):
                break
            last = now
        return cur.sum(), state

    def fisher(self, a: Tensor, da: Sequence[Tensor], state: Tensor) -> Tensor:
        """Expected Fisher information of ``(theta..., (log c, alpha) per image)``."""
        n_t = len(da)
        size = n_t + 2 * self.batch
        j = torch.zeros(size, size, dtype=a.dtype, device=a.device)
        for b in range(self.batch):
            s = torch.exp(state[b, 0] - state[b, 1] * self.logw)
            g = a * s
            p = g + self.s2
            ders = [d * s for d in da] + [g, -g * self.logw]
            idx = list(range(n_t)) + [n_t + 2 * b, n_t + 2 * b + 1]
            q = self.wt / p**2
            for i, di in zip(idx, ders):
                for k, dk in zip(idx, ders):
                    j[i, k] += (q * di * dk).sum()
            j[n_t + 2 * b + 1, n_t + 2 * b + 1] += 1.0 / self.alpha_sd**2  # the prior that fixes alpha
        return j


# -------------------------------------------------------------------------------------------------
# the families
# -------------------------------------------------------------------------------------------------
def _gaussian(theta: Sequence[float], size: int | None) -> Tensor:
    return gaussian_kernel(theta[0], size=size if size is not None else 2 * math.ceil(4 * theta[0]) + 1,
                           dtype=torch.float64)


def _disk(theta: Sequence[float], size: int | None) -> Tensor:
    return disk_kernel(theta[0], size=size, dtype=torch.float64)


def _line(theta: Sequence[float], size: int | None) -> Tensor:
    return line_kernel(theta[0], theta[1] % 180.0, size=size, dtype=torch.float64)


_BUILDERS: dict[str, Callable[[Sequence[float], int | None], Tensor]] = {
    "gaussian": _gaussian, "defocus": _disk, "motion": _line,
}


def _max_size(family: str, side: int, size: int | None) -> float:
    """The largest parameter (sigma, radius, length) searched."""
    cap = {"gaussian": min(12.0, side / 8), "defocus": min(24.0, side / 6), "motion": min(80.0, side / 3)}[family]
    if size is not None:
        half = (size - 1) // 2
        # a Gaussian at most 3 sigma a side: cut shorter it turns into a box, whose spectral zeros the
        # likelihood can prefer to the right sigma (sigma 3.2 found for 2.0 on a 15 px support)
        cap = min(cap, {"gaussian": max(half / 3, 0.5), "defocus": max(half, 0.5), "motion": 2.0 * half}[family])
    return cap


def _golden(f: Callable[[float], float], lo: float, hi: float, tol: float) -> tuple[float, float]:
    """Minimise a unimodal ``f`` on ``[lo, hi]`` by golden-section search."""
    g = (math.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    while b - a > tol:
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    return (c, fc) if fc < fd else (d, fd)


class _Objective:
    """The profiled negative log-likelihood of a family's parameters (memoised)."""

    def __init__(self, spec: _Spectrum, family: str, size: int | None, fit_size: int | None = None) -> None:
        self.spec, self.family, self.size = spec, family, size
        self.fit_size = size if fit_size is None else fit_size
        self.build = _BUILDERS[family]
        self.cache: dict[tuple[float, ...], tuple[float, Tensor]] = {}

    def kernel(self, theta: Sequence[float], final: bool = False) -> Tensor:
        """The family's kernel of ``theta``: at the fit's fixed size, or (``final``) the returned one."""
        return self.build(theta, self.size if final else self.fit_size)

    def _warm(self, theta: Sequence[float]) -> Tensor | None:
        """The profiled state of the nearest parameter already evaluated (a warm start)."""
        if not self.cache:
            return None
        scale = [max(abs(t), 1.0) for t in theta]
        if self.family == "motion":
            scale[1] = 90.0
        key = min(self.cache, key=lambda k: sum(((a - b) / s) ** 2 for a, b, s in zip(k, theta, scale)))
        return self.cache[key][1]

    def __call__(self, theta: Sequence[float]) -> float:
        key = tuple(round(float(t), 10) for t in theta)
        if key in self.cache:
            return self.cache[key][0]
        a = self.spec.kernel_power(self.kernel(theta))
        nll, state = self.spec.profile(a, state=self._warm(theta))
        value = float(nll)
        if not math.isfinite(value):
            value = math.inf
        self.cache[key] = (value, state)
        return value

    def state(self, theta: Sequence[float]) -> Tensor:
        self(theta)
        return self.cache[tuple(round(float(t), 10) for t in theta)][1]


def _fit_1d(obj: _Objective, lo: float, hi: float, ratio: float) -> list[float]:
    """Grid in ``log theta`` (steps of ``ratio``), then golden section around the best point."""
    n = max(3, math.ceil(math.log(hi / lo) / math.log(ratio)) + 1)
    grid = [lo * (hi / lo) ** (i / (n - 1)) for i in range(n)]
    vals = [obj([t]) for t in grid]
    i = min(range(n), key=vals.__getitem__)
    a, b = grid[max(i - 1, 0)], grid[min(i + 1, n - 1)]
    t, _ = _golden(lambda s: obj([s]), a, b, tol=1e-4 * grid[i])
    return [t]


def _length_grid(lo: float, hi: float, step: float) -> list[float]:
    """``lo .. hi`` in steps of ``step`` px (12 % steps below ``step / 0.12`` px)."""
    out = [lo]
    while out[-1] < hi:
        out.append(min(out[-1] + min(step, 0.12 * out[-1]), hi))
    return out


def _fit_motion(obj: _Objective, coarse: _Objective, lo: float, hi: float) -> list[float]:
    """Coarse grid on the low frequencies, local grids at full resolution, then a pattern search.

    The likelihood's basin around the true length is about ``pi / w_max`` px wide whatever the
    length (the k-th spectral zero of a line, ``2 pi k / L``, moves by ``2 pi k dL / L^2``): a grid
    in steps of 1.5 px (12 % below) over angles every 6 degrees (3 for long kernels) on the
    frequencies below ``pi / 2`` finds the basins; the five best cells are then searched at full
    resolution on a local grid of 0.5 px and a quarter of the angle step, and the best one refined
    by a pattern search (coordinate steps halved until 0.1 % of the length and 0.01 degree).
    """
    d_ang = min(6.0, math.degrees(3.0 / max(hi, 1.0)) * 2)
    n_ang = math.ceil(180.0 / d_ang)
    d_ang = 180.0 / n_ang
    scores = []
    for i in range(n_ang):
        for length in _length_grid(lo, hi, 1.5):
            scores.append((coarse([length, i * d_ang]), length, i * d_ang))
    scores.sort()
    seeds: list[tuple[float, float]] = []
    for _, length, ang in scores:
        if all(abs(length - sl) > 1.5 or min(abs(ang - sa), 180 - abs(ang - sa)) > d_ang for sl, sa in seeds):
            seeds.append((length, ang))
        if len(seeds) == 5:
            break
    best, best_v = [seeds[0][0], seeds[0][1]], math.inf
    for length0, ang0 in seeds:
        for dl in (-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5):
            for da in (-0.5, -0.25, 0.0, 0.25, 0.5):
                cand = [min(max(length0 + dl * min(1.0, length0 / 12), lo), hi), ang0 + da * d_ang]
                v = obj(cand)
                if v < best_v:
                    best, best_v = cand, v
    step = [0.25, d_ang / 8]
    while step[0] > 1e-3 * best[0] or step[1] > 0.01:
        moved = False
        for d in range(2):
            for sgn in (1.0, -1.0):
                cand = list(best)
                cand[d] += sgn * step[d]
                cand[0] = min(max(cand[0], lo), hi)
                v = obj(cand)
                if v < best_v - 1e-9:
                    best, best_v, moved = cand, v, True
                    break
        if not moved:
            step = [step[0] / 2, step[1] / 2]
    return [best[0], best[1] % 180.0]


def _derivatives(obj: _Objective, theta: list[float]) -> list[Tensor]:
    """``d|K|^2 / d theta_i`` by central differences."""
    out = []
    for i in range(len(theta)):
        if obj.family == "motion" and i == 1:
            h = 0.25
        elif obj.family == "gaussian":
            h = 1e-3 * theta[i]
        else:
            h = max(0.02 * theta[i], 0.02)
        up, dn = list(theta), list(theta)
        up[i] += h
        dn[i] = max(dn[i] - h, 1e-6)
        a_up = obj.spec.kernel_power(obj.kernel(up))
        a_dn = obj.spec.kernel_power(obj.kernel(dn))
        out.append((a_up - a_dn) / (up[i] - dn[i]))
    return out


# -------------------------------------------------------------------------------------------------
# the public functions
# -------------------------------------------------------------------------------------------------
def _check_args(y: Any, family: Any, size: Any, sigma_y: Any) -> tuple[Tensor, str, int | None, float | None]:
    family = checks.known(family, "family", FAMILIES, kind="blur family", error=UnknownNameError)
    yb = _as_batch(y)
    if size is not None:
        size = checks.int_(size, "size", minimum=3, maximum=min(yb.shape[-2:]), error=ValueRangeError)
    if sigma_y is not None:
        sigma_y = checks.real(sigma_y, "sigma_y", minimum=0.0, maximum=1.0, error=ValueRangeError)
    return yb, family, size, sigma_y


def fit_kernel(y: Tensor, family: str, size: int | None = None, sigma_y: float | None = None) -> KernelFit:
    r"""Fit a parametric blur kernel to a blurred image by maximum marginal likelihood.

    See the module's docstring for the model: ``y``'s Fourier coefficients are ``CN(0,
    |K_theta(w)|^2 c |w|^-2 exp(-0.55^2 |w|^2) + sigma_y^2)``; ``theta`` maximises the likelihood
    with ``c`` profiled out. One-parameter families are searched on a grid in ``log theta`` and
    refined by golden section; motion on a coarse grid of lengths x angles on the low frequencies,
    local grids at full resolution and a pattern search.

    Parameters
    ----------
    y : Tensor
        The blurred, noisy image(s) ``(B, C, H, W)``, ``(C, H, W)`` or ``(H, W)`` in [0, 1], at
        least 16 px a side (a batch shares one kernel). Its boundary is unknown (circular or not):
        the fit uses the periodic component of ``y`` (Moisan 2011).
    family : str
        ``"gaussian"`` (``sigma``), ``"defocus"`` (``radius``) or ``"motion"`` (``length``,
        ``angle``).
    size : int, optional
        Side of the returned kernel (and of the kernels the fit compares, so the parameters are
        limited to what fits in it: a Gaussian's ``sigma`` to ``(size - 1) / 6``, three of them a
        side, a disk's radius and a line's half-length to ``(size - 1) / 2``). Default: each
        family's own (``2 ceil(4 sigma) + 1``, ``2 ceil(r) + 1``, ``2 ceil(L / 2) + 1``).
    sigma_y : float, optional
        The noise's standard deviation in ``y``'s units. Default
        :func:`~pnpdiff.solvers.common.estimate_noise_level` of ``y``.

    Returns
    -------
    KernelFit
        Family, parameters, their standard errors, the kernel, the log-likelihood, ``sigma_y``.

    Raises
    ------
    UnknownNameError
        For a family other than the three.
    ShapeError
        For ``y`` not a tensor of a supported shape, or smaller than 16 x 16.
    ValueRangeError
        For a non-finite ``y``, a ``size`` not an integer in ``[3, min(H, W)]``, a ``sigma_y``
        outside ``[0, 1]``.

    References
    ----------
    A. Levin, Y. Weiss, F. Durand and W. T. Freeman, "Efficient marginal likelihood optimization in
    blind deconvolution", CVPR 2011. R. L. Lagendijk, J. Biemond and D. E. Boekee, "Identification
    and restoration of noisy blurred images using the expectation-maximization algorithm", IEEE
    TASSP 38(7), 1990. L. Moisan, "Periodic plus smooth image decomposition", JMIV 39(2), 2011.
    """
    yb, family, size, sigma_y = _check_args(y, family, size, sigma_y)
    return _fit(yb, family, size, sigma_y)


def _fit(yb: Tensor, family: str, size: int | None, sigma_y: float | None) -> KernelFit:
    if sigma_y is None:
        sigma_y = estimate_noise_level(yb)
    lum, scale = _luminance(yb)
    spec = _Spectrum(lum, sigma_y * scale)
    side = min(yb.shape[-2:])
    hi = _max_size(family, side, size)
    # a Gaussian is compared at one size, large enough for the largest sigma searched: cut at a size
    # that grows with sigma, the likelihood would jump where the size does
    fit_size = size if size is not None or family != "gaussian" else min(2 * math.ceil(4 * hi) + 1, side - 1 + side % 2)
    obj = _Objective(spec, family, size, fit_size)
    if family == "motion":
        coarse = _Objective(_Spectrum(lum, sigma_y * scale, w_max=math.pi / 2), family, size, fit_size)
        theta = _fit_motion(obj, coarse, 1.0, max(hi, 1.5))
    else:
        lo = 0.3 if family == "gaussian" else 0.5
        theta = _fit_1d(obj, lo, max(hi, lo * 1.5), 1.08 if family == "gaussian" else 1.03)
    a = spec.kernel_power(obj.kernel(theta))
    nll, state = spec.profile(a, state=obj.state(theta), tol=1e-13)
    j = spec.fisher(a, _derivatives(obj, theta), state)
    kernel = obj.kernel(theta, final=True)
    if obj.fit_size != size:  # compared at a fixed size, returned at its own: the likelihood is the returned one's
        nll, _ = spec.profile(spec.kernel_power(kernel), state=state, tol=1e-13)
    try:
        cov = torch.linalg.inv(j)
        se = [float(cov[i, i].clamp_min(0).sqrt()) for i in range(len(theta))]
    except RuntimeError:  # a singular information matrix: the parameter is not identified
        se = [math.inf] * len(theta)
    names = FAMILIES[family]
    kernel = kernel.to(yb.device)
    return KernelFit(
        family=family,
        params={n: float(t) for n, t in zip(names, theta)},
        stderr={n: s for n, s in zip(names, se)},
        kernel=kernel,
        log_likelihood=-float(nll),
        sigma_y=float(sigma_y),
        n_frequencies=round(spec.n_freq),
        n_nuisance=spec.batch,
    )


def fit_gaussian(y: Tensor, size: int | None = None, sigma_y: float | None = None) -> KernelFit:
    """:func:`fit_kernel` with ``family="gaussian"``: the ``sigma`` of a Gaussian blur."""
    return fit_kernel(y, "gaussian", size=size, sigma_y=sigma_y)


def fit_defocus(y: Tensor, size: int | None = None, sigma_y: float | None = None) -> KernelFit:
    """:func:`fit_kernel` with ``family="defocus"``: the ``radius`` of a disk (defocus) blur."""
    return fit_kernel(y, "defocus", size=size, sigma_y=sigma_y)


def fit_motion(y: Tensor, size: int | None = None, sigma_y: float | None = None) -> KernelFit:
    """:func:`fit_kernel` with ``family="motion"``: the ``length`` and ``angle`` of a linear motion blur."""
    return fit_kernel(y, "motion", size=size, sigma_y=sigma_y)


def kernel_log_likelihood(y: Tensor, kernel: Tensor, sigma_y: float | None = None) -> float:
    r"""The marginal log-likelihood of ``y`` blurred by ``kernel``: the criterion :func:`fit_kernel`
    maximises, for any kernel (a parametric fit's, or a free one estimated otherwise).

    ``y``'s Fourier coefficients are modelled as ``CN(0, |K(w)|^2 c |w|^-2 exp(-0.55^2 |w|^2) +
    sigma_y^2)`` (see the module's docstring), with the scale ``c`` of every image profiled out.
    The image is integrated out, so a kernel that is too sharp is not favoured (unlike the joint
    MAP over image and kernel; Levin et al., CVPR 2009): kernels of any family, or free ones,
    can be compared on the same ``y`` by this number (higher is better). It depends on the kernel's
    power spectrum only, so a shifted kernel scores the same.

    Parameters
    ----------
    y : Tensor
        As for :func:`fit_kernel`.
    kernel : Tensor
        ``(h, w)`` non-negative kernel summing to one (centre at ``(h // 2, w // 2)``).
    sigma_y : float, optional
        As for :func:`fit_kernel`.

    Returns
    -------
    float
        The profiled log-likelihood (nats, over the half-plane of frequencies).

    Raises
    ------
    ShapeError, ValueRangeError
        As :func:`fit_kernel`; also for a kernel that is not a finite, non-negative 2-D tensor with a
        positive sum, or larger than ``y``.
    """
    yb = _as_batch(y)
    if sigma_y is not None:
        sigma_y = checks.real(sigma_y, "sigma_y", minimum=0.0, maximum=1.0, error=ValueRangeError)
    if not torch.is_tensor(kernel) or kernel.ndim != 2 or not kernel.is_floating_point():
        got = tuple(kernel.shape) if torch.is_tensor(kernel) else type(kernel).__name__
        raise ShapeError(f"kernel must be a 2-D floating-point (h, w) tensor, got {got}")
    k = kernel.detach().to(yb.device, torch.float64)
    if k.numel() == 0:
        raise ShapeError(f"kernel must not be empty, got shape {tuple(k.shape)}")
    if not bool(torch.isfinite(k).all()) or float(k.min()) < 0 or float(k.sum()) <= 0:
        raise ValueRangeError("kernel must be finite, non-negative and have a positive sum")
    if k.shape[0] > yb.shape[-2] or k.shape[1] > yb.shape[-1]:
        raise ShapeError(f"kernel {tuple(k.shape)} is larger than y {tuple(yb.shape[-2:])}")
    if sigma_y is None:
        sigma_y = estimate_noise_level(yb)
    lum, scale = _luminance(yb)
    spec = _Spectrum(lum, sigma_y * scale)
    nll, _ = spec.profile(spec.kernel_power(k / k.sum()), tol=1e-13)
    return -float(nll)


def fit_best(
    y: Tensor,
    size: int | None = None,
    sigma_y: float | None = None,
    families: Sequence[str] = ("gaussian", "defocus", "motion"),
) -> KernelFit:
    """Fit each family and return the one with the lowest BIC (:attr:`KernelFit.bic`).

    Parameters
    ----------
    y, size, sigma_y
        As for :func:`fit_kernel`.
    families : sequence of str
        The families to compare (default all three).

    Returns
    -------
    KernelFit
        The best fit by the Bayesian information criterion (Schwarz, Ann. Stat. 6(2), 1978).

    Raises
    ------
    UnknownNameError, ShapeError, ValueRangeError
        As :func:`fit_kernel`; ``ValueRangeError`` also for an empty ``families``.
    """
    if isinstance(families, str) or not isinstance(families, Sequence) or len(families) == 0:
        raise ValueRangeError(f"families must be a non-empty list of {', '.join(FAMILIES)}, got {families!r}")
    checked = [_check_args(y, f, size, sigma_y) for f in families]
    yb, _, size, sigma_y = checked[0]
    if sigma_y is None:
        sigma_y = estimate_noise_level(yb)
    fits = [_fit(yb, fam, size, sigma_y) for _, fam, _, _ in checked]
    return min(fits, key=lambda f: f.bic)
