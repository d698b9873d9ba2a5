"""Pieces shared by every solver: schedule clipping, initialisation, noise, progress."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import Tensor

from pnpdiff.errors import OperatorError, ValueRangeError
from pnpdiff.operators import GaussianBlur
from pnpdiff.priors.base import Prior, standard_normal

__all__ = [
    "Callback",
    "clip_schedule",
    "initial_estimate",
    "randn_like",
    "steps_iter",
    "estimate_noise_level",
]

#: ``callback(i, sigma, x, x0_hat)`` called once per step with the current iterate and estimate
Callback = Callable[[int, float, Tensor, Tensor], None]


def clip_schedule(sigmas: Tensor, prior: Prior) -> Tensor:
    """Restrict a decreasing schedule (ending in 0) to the prior's valid range.

    The solver starts at ``min(sigmas[0], prior.sigma_max)``: values above ``sigma_max`` are
    dropped and replaced by one step at ``sigma_max``. The trailing 0 is kept (appended if absent).

    Parameters
    ----------
    sigmas : Tensor or sequence of float
        Non-negative, non-increasing noise levels in [0, 1] units (see :mod:`pnpdiff.schedules`).
    prior : Prior
        The prior whose ``sigma_max`` bounds the schedule.

    Returns
    -------
    Tensor
        The clipped float64 schedule, ending in 0.

    Raises
    ------
    ValueRangeError
        If ``sigmas`` is empty, increasing somewhere or negative.
    """
    sig = torch.as_tensor(sigmas, dtype=torch.float64).flatten()
    if sig.numel() == 0:
        raise ValueRangeError("the sigma schedule is empty")
    if bool((sig[1:] > sig[:-1]).any()) or bool((sig < 0).any()):
        raise ValueRangeError("sigma schedules must be non-negative and decreasing")
    if float(sig[-1]) != 0.0:
        sig = torch.cat([sig, sig.new_zeros(1)])
    smax = float(prior.sigma_max)
    if float(sig[0]) > smax:
        sig = torch.cat([sig.new_tensor([smax]), sig[sig < smax]])
    return sig


def randn_like(x: Tensor, generator: torch.Generator | Sequence[torch.Generator] | None) -> Tensor:
    """Standard normal noise shaped like ``x`` from ``generator`` (on ``x``'s device).

    ``generator`` may be a sequence of generators, one per image of the batch: image ``b`` then
    draws its noise from ``generator[b]`` alone, so its result does not depend on which other
    images share its batch (what batch runs over folders rely on).
    """
    return standard_normal(x.shape, generator, x.device, x.dtype)


def _smooth_fill(y: Tensor, mask: Tensor, scales: Iterable[float] = (1, 2, 4, 8, 16, 32)) -> Tensor:
    """Fill pixels where ``mask == 0`` by normalised Gaussian convolution at growing scales."""
    m = mask.expand_as(y).to(y.dtype)
    out = y * m
    filled = m.clone()
    for s in scales:
        blur = GaussianBlur(float(s), kernel_size=int(2 * round(3 * s) + 1))  # circular, any size
        num, den = blur(y * m), blur(m)
        est = num / den.clamp_min(1e-8)
        new = (den > 1e-3) & (filled < 0.5)
        out = torch.where(new, est, out)
        filled = torch.where(new, torch.ones_like(filled), filled)
        if bool((filled > 0.5).all()):
            break
    fallback = (y * m).flatten(2).sum(-1) / m.flatten(2).sum(-1).clamp_min(1)
    return torch.where(filled > 0.5, out, fallback[..., None, None].expand_as(out))


def initial_estimate(y: Tensor, operator: object, sigma_y: float, sigma_start: float) -> Tensor:
    """A first estimate of ``x`` from the measurement, used to start every solver.

    * masks (an operator with a ``mask`` attribute, e.g. :class:`~pnpdiff.operators.Inpaint`):
      the observed pixels, holes filled smoothly by normalised convolution;
    * any other linear operator: the regularised least-squares solution
      ``argmin_x ||A x - y||^2 + rho ||x - c||^2`` with ``c`` the mean of ``A^T y / A^T 1`` and
      ``rho = (sigma_y^2 + 1e-4) / sigma_start^2`` — Wiener-like for blur, the pseudo-inverse
      plus a constant on the null space for decimation (``A^+ y`` itself amplifies noise);
    * a nonlinear callable: :class:`~pnpdiff.OperatorError` (the solvers that accept one start
      from the prior instead).

    Parameters
    ----------
    y : Tensor
        Measurement, shape of the operator's output.
    operator : LinearOperator
        The measurement operator (anything with ``prox`` and ``adjoint``, or a ``mask``).
    sigma_y : float
        Measurement noise level in [0, 1] units.
    sigma_start : float
        Noise level the solver starts at; sets the regularisation ``rho``.

    Returns
    -------
    Tensor
        The estimate, shape of the operator's input.

    Raises
    ------
    OperatorError
        If ``operator`` is not linear (no ``prox`` / ``adjoint``).
    """
    mask = getattr(operator, "mask", None)
    if torch.is_tensor(mask):
        return _smooth_fill(y, mask.to(device=y.device, dtype=y.dtype))
    if hasattr(operator, "prox") and hasattr(operator, "adjoint"):
        aty = operator.adjoint(y)
        ones = operator.adjoint(operator(torch.ones_like(aty)))
        dims = tuple(range(2, aty.ndim)) if aty.ndim > 2 else (1,)  # per channel, or per vector
        c = aty.sum(dims, keepdim=True) / ones.sum(dims, keepdim=True).clamp_min(1e-8)
        c = c.expand_as(aty).contiguous()
        rho = (sigma_y**2 + 1e-4) / sigma_start**2
        return operator.prox(c, y, rho)
    raise OperatorError(
        f"{type(operator).__name__} is not a linear operator (forward, adjoint, prox); this method "
        "needs one: pass a pnpdiff operator, or use method='dps' or 'reddiff' for a nonlinear forward model"
    )


def estimate_noise_level(y: Tensor) -> float:
    """Estimate the standard deviation of white Gaussian noise in ``y`` (Donoho's MAD rule).

    The median absolute value of the finest diagonal Haar wavelet coefficients divided by
    0.6745, averaged over channels; biased upwards on very textured images.

    Parameters
    ----------
    y : Tensor
        Noisy image(s), shape ``(..., H, W)``.

    Returns
    -------
    float
        The estimated noise standard deviation, in the units of ``y`` (0 for images smaller than
        2x2).

    References
    ----------
    D. L. Donoho and I. M. Johnstone, "Ideal spatial adaptation by wavelet shrinkage",
    Biometrika 81(3), 1994. https://doi.org/10.1093/biomet/81.3.425
    """
    if y.shape[-1] < 2 or y.shape[-2] < 2:
        return 0.0
    h, w = y.shape[-2] // 2 * 2, y.shape[-1] // 2 * 2
    v = y[..., :h, :w]
    d = (v[..., 0::2, 0::2] - v[..., 0::2, 1::2] - v[..., 1::2, 0::2] + v[..., 1::2, 1::2]) / 2
    d = d[d != 0] if bool((d == 0).float().mean() > 0.3) else d  # masked measurements
    if d.numel() == 0:
        return 0.0
    return float(d.abs().flatten().median() / 0.6745)


def steps_iter(n: int, progress: bool, desc: str) -> Iterable[int]:
    """``range(n)``, wrapped in a tqdm progress bar when ``progress`` is true."""
    if not progress:
        return range(n)
    from tqdm.auto import tqdm

    return tqdm(range(n), desc=desc, leave=False)
