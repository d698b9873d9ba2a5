"""Unconditional samplers: the solvers' loops without a data term.

Each sampler draws from the prior by following a decreasing sigma schedule from ``x_T`` (noise
at the first sigma) down to 0, in variance-exploding form on [0, 1] images
(``x = x0 + sigma * noise``); the only model call is ``prior.denoise(x, sigma)``. They share one
signature, ``sampler(prior, sigmas, x_T, *, generator, callback, progress, ...)``, where ``x_T``
is either a starting tensor or a shape: then ``x_T`` is drawn from ``N(m, sigma_T^2 + v)`` with
``m`` and ``v`` the mean and variance of the prior's data (:meth:`~pnpdiff.priors.base.Prior.start`;
an image prior that states none gives ``0.5 + sigma_T * n``, the VE image of a VP sampler's
``N(0, I)`` start centred on mid-grey). A start that misses the data's spread is not corrected
by the deterministic samplers: the probability-flow ODE carries it to the end.

* :func:`ddpm` -- ancestral sampling (Ho et al. 2020), the Brownian bridge of ``ALGORITHMS.md``;
* :func:`ddim` -- DDIM (Song et al. 2021) with its ``eta``; ``eta = 0`` is the Euler step;
* :func:`euler`, :func:`heun` -- Karras et al. (2022) Algorithms 1 and 2 on the
  probability-flow ODE ``dx / dsigma = (x - D(x, sigma)) / sigma``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from pnpdiff.priors.base import Prior
from pnpdiff.solvers.common import Callback, clip_schedule, randn_like, steps_iter
from pnpdiff.solvers.descriptor import SolverInfo

__all__ = ["ddpm", "ddim", "euler", "heun"]


def _start(
    prior: Prior,
    x_T: Tensor | Sequence[int],
    sigma_T: float,
    generator: torch.Generator | None,
    device: torch.device | str | None,
    dtype: torch.dtype | None,
) -> Tensor:
    """``x_T`` itself, or a draw from ``N(data mean, sigma_T^2 + data variance)`` of the given shape."""
    if torch.is_tensor(x_T):
        return x_T.to(device=device or x_T.device, dtype=dtype or x_T.dtype)
    return prior.start(x_T, sigma_T, generator, device, dtype)


@torch.no_grad()
def ddpm(
    prior: Prior,
    sigmas: Tensor,
    x_T: Tensor | Sequence[int],
    *,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    progress: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    r"""DDPM ancestral sampling (Ho, Jain and Abbeel, "Denoising Diffusion Probabilistic Models",
    NeurIPS 2020), Algorithm 2, in variance-exploding form.

    The DDPM posterior ``q(x_{t-1} | x_t, x0)`` of the rescaled process is the Brownian bridge
    between ``x0`` and ``x_t``; with ``x0 = D(x_t, t)`` and ``s`` the next sigma::

        x_s = x0 + (s^2 / t^2) (x_t - x0) + s sqrt(1 - s^2 / t^2) n,   n ~ N(0, I)

    (any schedule works, not only the DDPM timesteps; the last step returns ``D(x, t)``).

    Parameters
    ----------
    prior : Prior
        Denoiser ``D(x, sigma)``.
    sigmas : Tensor
        Decreasing schedule ending in 0; clipped to ``prior.sigma_max``.
    x_T : Tensor or sequence of int
        Start at the first sigma of the clipped schedule (e.g. ``x0_guess + sigma_T * n``), or the
        shape of the batch to draw (then from ``N(m, sigma_T^2 + v)``, the prior's data mean
        and variance: :meth:`~pnpdiff.priors.base.Prior.start`).
    generator : torch.Generator, optional
        Source of all randomness.
    callback : callable, optional
        ``callback(i, sigma, x, x0_hat)`` after each step.
    progress : bool
        Show a tqdm progress bar.
    device, dtype : optional
        Of a start drawn from a shape (default: the generator's device, the default dtype).

    Returns
    -------
    Tensor
        Samples (the iterate at sigma = 0).

    References
    ----------
    J. Ho, A. Jain and P. Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020.
    https://arxiv.org/abs/2006.11239
    """
    sigmas = clip_schedule(sigmas, prior).tolist()
    x = _start(prior, x_T, sigmas[0], generator, device, dtype)
    for i in steps_iter(len(sigmas) - 1, progress, "ddpm"):
        t, s = sigmas[i], sigmas[i + 1]
        x0 = prior.denoise(x, t)
        x = x0 + (s / t) ** 2 * (x - x0) + s * (1 - (s / t) ** 2) ** 0.5 * randn_like(x, generator)
        if callback is not None:
            callback(i, t, x, x0)
    return x


@torch.no_grad()
def ddim(
    prior: Prior,
    sigmas: Tensor,
    x_T: Tensor | Sequence[int],
    *,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    progress: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    r"""DDIM (Song, Meng and Ermon, "Denoising Diffusion Implicit Models", ICLR 2021), Eq. (12),
    in variance-exploding form.

    With ``x0 = D(x_t, t)``, ``eps = (x_t - x0) / t`` and ``s`` the next sigma, DDIM's
    ``sigma_t(eta)`` becomes ``c = eta * s * sqrt(1 - s^2 / t^2)`` in VE form and::

        x_s = x0 + sqrt(s^2 - c^2) eps + c n,   n ~ N(0, I)

    ``eta = 0`` is deterministic, ``x_s = x0 + s eps`` -- the Euler step of the probability-flow
    ODE (identical to :func:`euler`); ``eta = 1`` is DDPM ancestral sampling (:func:`ddpm`).

    Parameters
    ----------
    prior : Prior
        Denoiser ``D(x, sigma)``.
    sigmas : Tensor
        Decreasing schedule ending in 0; clipped to ``prior.sigma_max``.
    x_T : Tensor or sequence of int
        Start at the first sigma of the clipped schedule, or the shape of the batch to draw.
    eta : float
        Stochasticity, 0 (deterministic) to 1 (ancestral).
    generator : torch.Generator, optional
        Source of all randomness.
    callback : callable, optional
        ``callback(i, sigma, x, x0_hat)`` after each step.
    progress : bool
        Show a tqdm progress bar.
    device, dtype : optional
        Of a start drawn from a shape.

    Returns
    -------
    Tensor
        Samples (the iterate at sigma = 0).

    References
    ----------
    J. Song, C. Meng and S. Ermon, "Denoising Diffusion Implicit Models", ICLR 2021.
    https://arxiv.org/abs/2010.02502
    """
    sigmas = clip_schedule(sigmas, prior).tolist()
    x = _start(prior, x_T, sigmas[0], generator, device, dtype)
    for i in steps_iter(len(sigmas) - 1, progress, "ddim"):
        t, s = sigmas[i], sigmas[i + 1]
        x0 = prior.denoise(x, t)
        eps = (x - x0) / t
        c = eta * s * (1 - (s / t) ** 2) ** 0.5
        if c > 0:
            x = x0 + (s**2 - c**2) ** 0.5 * eps + c * randn_like(x, generator)
        else:
            x = x0 + s * eps
        if callback is not None:
            callback(i, t, x, x0)
    return x


@torch.no_grad()
def euler(
    prior: Prior,
    sigmas: Tensor,
    x_T: Tensor | Sequence[int],
    *,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    progress: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    r"""Euler's method on the probability-flow ODE (Karras, Aittala, Aila and Laine, "Elucidating
    the Design Space of Diffusion-Based Generative Models", NeurIPS 2022, Algorithm 1 without its
    second-order correction).

    ``dx / dsigma = d(x, sigma) = (x - D(x, sigma)) / sigma``; with ``s`` the next sigma::

        x_s = x_t + (s - t) d(x_t, t)   (written x0 + s d: the same step, = DDIM with eta = 0)

    Parameters
    ----------
    prior : Prior
        Denoiser ``D(x, sigma)``.
    sigmas : Tensor
        Decreasing schedule ending in 0; clipped to ``prior.sigma_max``.
    x_T : Tensor or sequence of int
        Start at the first sigma of the clipped schedule, or the shape of the batch to draw.
    generator : torch.Generator, optional
        Source of the start drawn from a shape (the ODE itself is deterministic).
    callback : callable, optional
        ``callback(i, sigma, x, x0_hat)`` after each step.
    progress : bool
        Show a tqdm progress bar.
    device, dtype : optional
        Of a start drawn from a shape.

    Returns
    -------
    Tensor
        Samples (the iterate at sigma = 0).

    References
    ----------
    T. Karras, M. Aittala, T. Aila and S. Laine, "Elucidating the Design Space of
    Diffusion-Based Generative Models", NeurIPS 2022. https://arxiv.org/abs/2206.00364
    """
    sigmas = clip_schedule(sigmas, prior).tolist()
    x = _start(prior, x_T, sigmas[0], generator, device, dtype)
    for i in steps_iter(len(sigmas) - 1, progress, "euler"):
        t, s = sigmas[i], sigmas[i + 1]
        x0 = prior.denoise(x, t)
        d = (x - x0) / t
        x = x0 + s * d  # = x + (s - t) d, since x - t d = x0
        if callback is not None:
            callback(i, t, x, x0)
    return x


@torch.no_grad()
def heun(
    prior: Prior,
    sigmas: Tensor,
    x_T: Tensor | Sequence[int],
    *,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    progress: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    r"""Heun's second-order method on the probability-flow ODE (Karras, Aittala, Aila and Laine,
    "Elucidating the Design Space of Diffusion-Based Generative Models", NeurIPS 2022,
    Algorithm 1).

    With ``d(x, sigma) = (x - D(x, sigma)) / sigma`` and ``s`` the next sigma::

        x'  = x_t + (s - t) d(x_t, t)                          # Euler predictor
        x_s = x_t + (s - t) (d(x_t, t) + d(x', s)) / 2         # trapezoidal corrector, if s > 0

    The correction is skipped on the last step (to ``s = 0``), where ``d`` is undefined: two
    denoiser calls per step, one on the last.

    Parameters
    ----------
    prior : Prior
        Denoiser ``D(x, sigma)``.
    sigmas : Tensor
        Decreasing schedule ending in 0; clipped to ``prior.sigma_max``.
    x_T : Tensor or sequence of int
        Start at the first sigma of the clipped schedule, or the shape of the batch to draw.
    generator : torch.Generator, optional
        Source of the start drawn from a shape (the ODE itself is deterministic).
    callback : callable, optional
        ``callback(i, sigma, x, x0_hat)`` after each step.
    progress : bool
        Show a tqdm progress bar.
    device, dtype : optional
        Of a start drawn from a shape.

    Returns
    -------
    Tensor
        Samples (the iterate at sigma = 0).

    References
    ----------
    T. Karras, M. Aittala, T. Aila and S. Laine, "Elucidating the Design Space of
    Diffusion-Based Generative Models", NeurIPS 2022. https://arxiv.org/abs/2206.00364
    """
    sigmas = clip_schedule(sigmas, prior).tolist()
    x = _start(prior, x_T, sigmas[0], generator, device, dtype)
    for i in steps_iter(len(sigmas) - 1, progress, "heun"):
        t, s = sigmas[i], sigmas[i + 1]
        x0 = prior.denoise(x, t)
        d = (x - x0) / t
        x_next = x + (s - t) * d
        if s > 0:
            d_next = (x_next - prior.denoise(x_next, s)) / s
            x_next = x + (s - t) * (d + d_next) / 2
        x = x_next
        if callback is not None:
            callback(i, t, x, x0)
    return x


#: the unconditional samplers of pnpdiff.sample, by name (their memory: x, x0, the noise; heun: two
#: slopes more); registered as samplers, not as methods of ``solve``
INFOS = (
    SolverInfo("ddpm", ddpm, memory_cost=(4, 6)),
    SolverInfo("ddim", ddim, memory_cost=(4, 6)),
    SolverInfo("euler", euler, memory_cost=(4, 6)),
    SolverInfo("heun", heun, memory_cost=(6, 6)),
)
