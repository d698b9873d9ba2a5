"""DiffPIR: Denoising Diffusion Models for Plug-and-Play Image Restoration."""

from __future__ import annotations

import torch
from torch import Tensor

from pnpdiff.noise import NoiseModel
from pnpdiff.priors.base import Prior
from pnpdiff.solvers.common import Callback, clip_schedule, initial_estimate, likelihood_prox, randn_like, steps_iter
from pnpdiff.solvers.descriptor import SolverInfo


@torch.no_grad()
def diffpir(
    y: Tensor,
    operator,
    prior: Prior,
    sigmas: Tensor,
    sigma_y: float,
    lam: float = 1.75,
    zeta: float = 0.3,
    x_init: Tensor | None = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    progress: bool = False,
    noise: NoiseModel | None = None,
) -> Tensor:
    """DiffPIR (Zhu et al., "Denoising Diffusion Models for Plug-and-Play Image Restoration",
    CVPR Workshops 2023), Algorithm 1, in variance-exploding form on [0, 1] images.

    For each sigma ``t`` of the schedule, with ``s`` the next one::

        x0    = D(x_t, t)                                     # denoise with the prior
        x0    = argmin_z ||y - A z||^2 + rho_t ||z - x0||^2,  rho_t = lam * sigma_y^2 / t^2
        eps   = (x_t - x0) / t                                # effective noise of x_t
        x_s   = x0 + s * (sqrt(1 - zeta) * eps + sqrt(zeta) * n),  n ~ N(0, I)

    and the last step (``s = 0``) returns the denoised ``x0`` without a data step.

    Parameters
    ----------
    y : Tensor
        Measurement ``A(x) + n``, ``n ~ N(0, sigma_y^2)``.
    operator : LinearOperator
        Degradation with a ``prox(z, y, rho)`` (closed form or conjugate gradient).
    prior : Prior
        Denoiser ``D(x, sigma)``.
    sigmas : Tensor
        Decreasing schedule ending in 0; clipped to ``prior.sigma_max``.
    sigma_y : float
        Measurement noise level in [0, 1] units (DiffPIR quotes it on [0, 1] too).
    lam : float
        The paper's lambda in pnpdiff units: ``lam = lambda_paper / 4`` (the official code mixes
        a [0, 1] ``sigma_n`` with a [-1, 1] ``sigmabar_t``; see ``ALGORITHMS.md``).
    zeta : float
        Fraction of fresh noise in the re-noising step (0 = deterministic, 1 = DDPM-like).
    x_init : Tensor, optional
        Starting estimate; default :func:`~pnpdiff.solvers.common.initial_estimate`.
    generator : torch.Generator, optional
        Source of all randomness.
    callback : callable, optional
        ``callback(i, sigma, x, x0_hat)`` after each step.
    progress : bool
        Show a tqdm progress bar.
    noise : NoiseModel, optional
        A Poisson or Poisson-Gaussian noise model (:mod:`pnpdiff.noise`): the data step is then
        ``argmin_z NLL(y | A z) + lam / (2 t^2) ||z - x0||^2``
        (:func:`~pnpdiff.solvers.common.likelihood_prox`; for Gaussian noise this is the step above)
        and ``sigma_y`` is the matched Gaussian level. Default: Gaussian noise of level ``sigma_y``.

    Returns
    -------
    Tensor
        The restored image (the last denoised estimate).

    References
    ----------
    Y. Zhu, K. Zhang, J. Liang, J. Cao, B. Wen, R. Timofte and L. Van Gool, "Denoising Diffusion
    Models for Plug-and-Play Image Restoration", CVPR Workshops (NTIRE) 2023.
    https://arxiv.org/abs/2305.08995
    """
    sigmas = clip_schedule(sigmas, prior).tolist()
    sigma_y_eff = max(float(sigma_y), 1e-3)  # a noiseless y still needs a finite rho
    if x_init is None:
        x_init = initial_estimate(y, operator, sigma_y_eff, sigmas[0])
    x = x_init + sigmas[0] * randn_like(x_init, generator)
    x0 = x_init
    for i in steps_iter(len(sigmas) - 1, progress, "diffpir"):
        t, s = sigmas[i], sigmas[i + 1]
        x0 = prior.denoise(x, t)
        if s > 0:
            if noise is None:
                rho_t = lam * sigma_y_eff**2 / t**2
                x0 = operator.prox(x0, y, rho_t)
            else:  # the prox of the noise model's negative log-likelihood, same weight lam / t^2
                x0 = likelihood_prox(operator, noise, x0, y, lam / t**2)
            eps = (x - x0) / t
            x = x0 + s * ((1 - zeta) ** 0.5 * eps + zeta**0.5 * randn_like(x, generator))
        if callback is not None:
            callback(i, t, x, x0)
    return x0


#: paper defaults (lambda_paper = 7 -> lam = 1.75 in pnpdiff units, zeta = 0.3) for priors that
#: cover the whole sigma range; the FFDNet "natural" prior (sigma <= 75/255) needs a stronger data
#: term and full re-noising (measured on astronaut, coffee, chelsea at 256^2). Inpainting fills
#: holes from the prior alone and gains from more steps: 70 % random mask, 5 photos, 20 -> 50
#: steps +0.26 to +0.54 dB (100 steps: no better than 50); a 128^2 box -0.24 to +0.09 dB (mean
#: -0.04). Tuned on scikit-image photos at 256x256 with sigma_y = 0.025 (see docs/quality.md).
#: These are diffpir's defaults when it is named; ``solve()`` without a method runs diffpir only
#: for ill-posed problems (pnpdiff.problem: a blur with d < 0.2, x4 super-resolution, at sigma_y
#: < 0.04), where they are the best of the grid or within 0.13 dB of it (docs/quality.md, section 5).
INFO = SolverInfo(
    "diffpir",
    diffpir,
    defaults={
        ("*", "*"): {"steps": 50, "schedule": "ddpm", "lam": 1.75, "zeta": 0.3},
        ("natural", "*"): {"steps": 20, "lam": 0.5, "zeta": 1.0},
        ("natural", "inpaint"): {"steps": 50},
    },
    memory_cost=(4, 6),
    noise_models=("gaussian", "poisson", "poisson-gaussian"),
    option_ranges={
        # rho_t = lam sigma_y^2 / t^2: lam = 0 drops the prior from the data step (the least-squares fit)
        "lam": (0.0, 1e6, True),
        "zeta": (0.0, 1.0, False),  # a fraction of fresh noise: sqrt(1 - zeta), sqrt(zeta)
    },
)
