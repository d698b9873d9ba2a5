"""DPS: Diffusion Posterior Sampling for general noisy inverse problems."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from pnpdiff.noise import NoiseModel
from pnpdiff.priors.base import Prior
from pnpdiff.solvers.common import Callback, clip_schedule, initial_estimate, randn_like, steps_iter
from pnpdiff.solvers.descriptor import SolverInfo

__all__ = ["dps", "starting_point", "residual_norm"]


def starting_point(y: Tensor, operator: object, sigma_y: float, sigma_start: float,
                   x_init: Tensor | None, prior: Prior | None = None) -> Tensor:
    """The estimate a solver starts from (before noise at ``sigma_start`` is added).

    ``x_init`` if given; for a linear operator (one with ``adjoint`` and ``prox``)
    :func:`~pnpdiff.solvers.common.initial_estimate`; for a nonlinear callable, the mean of the
    prior's data (:meth:`~pnpdiff.priors.base.Prior.data_moments`: mid-grey 0.5 for an image
    prior that states none) in the measurement's shape (the caller passes ``x_init`` when ``x``
    and ``y`` differ in shape).
    """
    if x_init is not None:
        return x_init
    if has_prox(operator):
        return initial_estimate(y, operator, sigma_y, sigma_start)
    if prior is None:
        return torch.full_like(y, 0.5)
    return prior.data_moments(y)[0].clone()


def has_prox(operator: object) -> bool:
    """Whether the solvers start from the measurement (a linear operator with adjoint and prox)."""
    return hasattr(operator, "adjoint") and hasattr(operator, "prox")


def residual_norm(y: Tensor, ax: Tensor) -> Tensor:
    """Per-sample Euclidean norm ``||y - A(x)||``, shape ``(B,)`` (differentiable)."""
    return (y - ax).flatten(1).norm(dim=1)


@torch.no_grad()
def dps(
    y: Tensor,
    operator: Callable[[Tensor], Tensor],
    prior: Prior,
    sigmas: Tensor,
    sigma_y: float,
    zeta: float = 1.0,
    x_init: Tensor | None = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    progress: bool = False,
    noise: NoiseModel | None = None,
) -> Tensor:
    r"""DPS (Chung, Kim, Mccann, Klasky and Ye, "Diffusion Posterior Sampling for General Noisy
    Inverse Problems", ICLR 2023), Algorithm 1, in variance-exploding form on [0, 1] images.

    For each sigma ``t`` of the schedule, with ``s`` the next one::

        x0   = D(x_t, t)                                          # denoise, keeping the graph
        x'_s = x0 + (s^2/t^2) (x_t - x0) + s sqrt(1 - s^2/t^2) n  # DDPM ancestral step
        x_s  = x'_s - zeta * sqrt((1 + 4 t^2)(1 + 4 s^2)) * grad_{x_t} ||y - A(x0)||

    The likelihood gradient goes through the denoiser by autograd (the only place with a graph)
    and through ``A``, so any differentiable callable is a valid (nonlinear) operator.

    **Units.** The paper's step is ``zeta_i = zeta' / ||y - A(x0)||`` on the squared norm, i.e.
    ``2 zeta'`` times the gradient of the *unsquared* norm, taken in the VP variable ``x_vp`` on
    [-1, 1] images (the official code's ``scale`` is ``2 zeta'``). With
    ``x = (x_vp / sqrt(abar) + 1) / 2`` and ``1 / abar = 1 + 4 sigma^2``, the [-1, 1] residual
    norm is twice the [0, 1] one and ``d/dx_vp = d/dx / (2 sqrt(abar_t))``, so
    ``grad_{x_vp} ||y' - A(x0')|| = grad_x ||y - A(x0)|| / sqrt(abar_t)``; the update of
    ``x_vp`` at level ``s`` moves ``x`` by ``1 / (2 sqrt(abar_s))`` times as much. Together:
    ``x_s -= 2 zeta' * sqrt((1 + 4 t^2)(1 + 4 s^2)) / 2 * grad_x ||y - A(x0)||`` — the same
    ``zeta'`` as the paper, no further conversion (``ALGORITHMS.md``). The paper's default
    ``zeta' = 1.0`` (most FFHQ tasks, 1000 steps) is kept.

    Parameters
    ----------
    y : Tensor
        Measurement ``A(x) + n``, ``n ~ N(0, sigma_y^2)``, ``(B, ...)``.
    operator : callable
        ``A``: a :class:`~pnpdiff.operators.LinearOperator` or any differentiable callable
        (a nonlinear forward model). Only ``A(x)`` and autograd through it are used.
    prior : Prior
        Denoiser ``D(x, sigma)``; it must be differentiable in ``x``.
    sigmas : Tensor
        Decreasing schedule ending in 0; clipped to ``prior.sigma_max``.
    sigma_y : float
        Measurement noise level in [0, 1] units (DPS quotes 0.05 on [-1, 1], i.e. 0.025 here).
        DPS's step does not depend on it; it only sets the initial estimate.
    zeta : float
        The paper's ``zeta'`` (step ``zeta' / ||y - A(x0)||``), see **Units**.
    x_init : Tensor, optional
        Starting estimate, noised at the first sigma. Default: the initial estimate from the
        measurement for a linear operator (:func:`~pnpdiff.solvers.common.initial_estimate`);
        for a nonlinear callable the prior's own start in ``y``'s shape,
        ``N(data mean, sigma_T^2 + data variance)`` (:meth:`~pnpdiff.priors.base.Prior.start`;
        ``0.5 + sigma_T n`` for an image prior that states no moments).
    generator : torch.Generator, optional
        Source of all randomness.
    callback : callable, optional
        ``callback(i, sigma, x, x0_hat)`` after each step.
    progress : bool
        Show a tqdm progress bar.
    noise : NoiseModel, optional
        A Poisson or Poisson-Gaussian noise model (:mod:`pnpdiff.noise`): the step then follows the
        gradient of the *weighted* residual norm ``||W (y - A(x0))||``, ``W = diag(1 / sqrt(var_i))``
        with the variance read off ``y`` -- the paper's Poisson likelihood, Sec. 3.2 (the normal
        approximation ``||y - A x||^2_Lambda``, ``Lambda_jj = 1 / (2 y_j)``) -- with ``W`` scaled
        to a root-mean-square of 1 so that ``zeta`` keeps its Gaussian meaning
        (:meth:`~pnpdiff.noise.NoiseModel.weights`). Default: Gaussian noise (``W = I``).

    Returns
    -------
    Tensor
        The restored sample ``x_0`` (the last denoised estimate with its guidance step).

    Notes
    -----
    Memory: one denoiser graph is held per step (activations for the backward pass), so peak
    memory is roughly that of a training step of the denoiser at batch ``B``, against a
    forward-only pass for DiffPIR.

    References
    ----------
    H. Chung, J. Kim, M. T. Mccann, M. L. Klasky and J. C. Ye, "Diffusion Posterior Sampling
    for General Noisy Inverse Problems", ICLR 2023. https://arxiv.org/abs/2209.14687
    """
    sigmas = clip_schedule(sigmas, prior).tolist()
    if x_init is None and not has_prox(operator):  # nothing measured to start from: the prior's start
        x = prior.start(y.shape, sigmas[0], generator, y.device, y.dtype)
    else:
        x0 = starting_point(y, operator, max(float(sigma_y), 1e-3), sigmas[0], x_init)
        x = x0 + sigmas[0] * randn_like(x0, generator)
    weight = None if noise is None else noise.weights(y)
    for i in steps_iter(len(sigmas) - 1, progress, "dps"):
        t, s = sigmas[i], sigmas[i + 1]
        with torch.enable_grad():
            xt = x.detach().requires_grad_(True)
            x0 = prior.denoise(xt, t)
            ax = operator(x0)
            norm = residual_norm(y, ax) if weight is None else residual_norm(weight * y, weight * ax)
            (grad,) = torch.autograd.grad(norm.sum(), xt)
        x0 = x0.detach()
        r2 = s**2 / t**2
        x = x0 + r2 * (x - x0) + s * (1 - r2) ** 0.5 * randn_like(x, generator)
        x = x - zeta * ((1 + 4 * t**2) * (1 + 4 * s**2)) ** 0.5 * grad
        if callback is not None:
            callback(i, t, x, x0)
    return x


#: DPS's step zeta / ||y - A x0|| shrinks per pixel as the number of measurements grows, and the
#: paper's zeta' = 1 (1000 steps from sigma 80) is far too weak for 50 steps below FFDNet's 75/255.
#: Measured at 256^2 with sigma_y = 0.025 (zeta: PSNR): Gaussian deblur on astronaut 1: 21.75,
#: 3: 22.15, 10: 22.54, 30: 22.32 and on coffee 5: 25.17, 10: 25.28, 20: 25.25; SR x4 on
#: astronaut 1: 21.97, 3: 23.02, 10: 22.57 and on coffee 2: 25.81, 5: 25.88; 70 % inpainting on
#: astronaut 1: 24.62, 5: 25.70, 10: 25.55.
INFO = SolverInfo(
    "dps",
    dps,
    defaults={
        ("natural", "*"): {"zeta": 5.0},
        ("natural", "deblur"): {"zeta": 10.0},
        ("natural", "sr"): {"zeta": 4.0},
    },
    memory_cost=(14, 14),
    backprop=True,
    noise_models=("gaussian", "poisson", "poisson-gaussian"),
    option_ranges={"zeta": (0.0, 1e3, False)},  # the step zeta' / ||y - A x0||; the tuned ones are 1 to 30
)
