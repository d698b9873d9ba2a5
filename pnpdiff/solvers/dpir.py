"""DPIR: Plug-and-Play Image Restoration with Deep Denoiser Prior (half-quadratic splitting)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from pnpdiff.noise import NoiseModel
from pnpdiff.priors.base import Prior
from pnpdiff.solvers.common import Callback, clip_schedule, initial_estimate, likelihood_prox, steps_iter
from pnpdiff.solvers.descriptor import SolverInfo

if TYPE_CHECKING:
    from pnpdiff.operators import LinearOperator


@torch.no_grad()
def dpir(
    y: Tensor,
    operator: LinearOperator,
    prior: Prior,
    sigmas: Tensor,
    sigma_y: float,
    lam: float = 0.23,
    x_init: Tensor | None = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    progress: bool = False,
    noise: NoiseModel | None = None,
) -> Tensor:
    r"""DPIR (Zhang, Li, Zuo, Zhang, Van Gool and Timofte, "Plug-and-Play Image Restoration with
    Deep Denoiser Prior", IEEE TPAMI 2021), Eq. (6)-(7) with the annealing of Sec. 5.

    Half-quadratic splitting of ``1/(2 sigma^2) ||y - A x||^2 + lambda Phi(x)`` with penalty
    ``mu_k / 2 ||x - z||^2``: for each noise level ``sigma_k`` of the schedule::

        z = argmin_z ||A z - y||^2 + rho_k ||z - x||^2,   rho_k = lam * sigma_y^2 / sigma_k^2
        x = D(z, sigma_k)

    Units: the paper's data step is ``argmin ||y - A x||^2 + mu sigma^2 ||x - z||^2`` with the
    denoiser at ``sigma_k = sqrt(lambda / mu_k)``, i.e. ``alpha_k = mu_k sigma^2 =
    lambda sigma^2 / sigma_k^2`` -- exactly :meth:`~pnpdiff.operators.LinearOperator.prox`'s
    ``rho`` with ``lam = lambda``. DPIR works on [0, 1] images like pnpdiff, so the paper's
    ``lambda = 0.23`` is ``lam = 0.23`` here, with ``sigma_y`` floored at ``0.255 / 255 = 1e-3``
    as in the official code.

    Schedule: DPIR expects ``K = 8`` noise levels log-spaced from ``49 / 255`` down to the noise
    level, ``pnpdiff.schedules.geometric(8, sigma_min=max(sigma_y, 1/255), sigma_max=49/255)``
    (the official code ends at ``sigma_y`` for deblurring and at ``max(scale / 255, sigma_y)``
    for super-resolution). Any decreasing schedule is accepted; zeros (the trailing 0 of
    pnpdiff's schedules) are ignored and levels above ``prior.sigma_max`` are clipped.
    No diffusion, no randomness: ``generator`` is accepted for a uniform interface only.

    Parameters
    ----------
    y : Tensor
        Measurement ``A(x) + n``, ``n ~ N(0, sigma_y^2)``.
    operator : LinearOperator
        Degradation with a ``prox(z, y, rho)`` (closed form or conjugate gradient).
    prior : Prior
        Denoiser ``D(x, sigma)``.
    sigmas : Tensor
        Decreasing denoiser noise levels ``sigma_k`` (see above).
    sigma_y : float
        Measurement noise level in [0, 1] units.
    lam : float
        The paper's ``lambda`` (0.23), unchanged in pnpdiff units.
    x_init : Tensor, optional
        Starting estimate ``x_0``; default :func:`~pnpdiff.solvers.common.initial_estimate`.
    generator : torch.Generator, optional
        Unused (DPIR is deterministic).
    callback : callable, optional
        ``callback(i, sigma, x, x0_hat)`` after each iteration, with ``x0_hat`` the data-step
        output ``z``.
    progress : bool
        Show a tqdm progress bar.
    noise : NoiseModel, optional
        A Poisson or Poisson-Gaussian noise model (:mod:`pnpdiff.noise`): the data step is then the
        prox of its negative log-likelihood, ``z = argmin NLL(y | A z) + lam / (2 sigma_k^2) ||z -
        x||^2`` (:func:`~pnpdiff.solvers.common.likelihood_prox`; for Gaussian noise this is the
        step above), and ``sigma_y`` is the matched Gaussian level (initial estimate, schedule end).
        Default: Gaussian noise of level ``sigma_y``.

    Returns
    -------
    Tensor
        The last denoised estimate.

    References
    ----------
    K. Zhang, Y. Li, W. Zuo, L. Zhang, L. Van Gool and R. Timofte, "Plug-and-Play Image
    Restoration with Deep Denoiser Prior", IEEE TPAMI 44(10), 2022 (online 2021).
    https://doi.org/10.1109/TPAMI.2021.3088914 (https://arxiv.org/abs/2008.13751)
    """
    sig = clip_schedule(sigmas, prior)
    sig = sig[sig > 0].tolist()
    sigma_y_eff = max(float(sigma_y), 0.255 / 255)
    if x_init is None:
        x_init = initial_estimate(y, operator, sigma_y_eff, sig[0] if sig else 1.0)
    x = x_init
    for i in steps_iter(len(sig), progress, "dpir"):
        sigma_k = sig[i]
        if noise is None:
            z = operator.prox(x, y, lam * sigma_y_eff**2 / sigma_k**2)
        else:
            z = likelihood_prox(operator, noise, x, y, lam / sigma_k**2)
        x = prior.denoise(z, sigma_k)
        if callback is not None:
            callback(i, sigma_k, x, z)
    return x


#: DPIR (Zhang et al. 2021): 8 iterations, sigma log-spaced from 49/255 down to the noise level; a
#: point estimate (no noise is drawn)
#: ``solve()`` without a method runs this HQS loop, with lam 0.23 / 0.1 / 0.05 and 8 to 40 steps read
#: from the operator's spectrum and sigma_y, for every well-posed blur, super-resolution other than
#: x4 at low noise, and inpainting (pnpdiff.problem; the tables are in docs/quality.md, section 5).
INFO = SolverInfo(
    "dpir",
    dpir,
    defaults={
        ("*", "*"): {"steps": 8, "schedule": "geometric", "schedule_max": 49 / 255, "schedule_min": "sigma_y"},
        ("*", "sr"): {"steps": 24},
    },
    memory_cost=(7, 6),
    point_estimate=True,
    option_ranges={"lam": (0.0, 1e6, True)},
    noise_models=("gaussian", "poisson", "poisson-gaussian"),
)
