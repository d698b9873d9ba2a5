"""RED-diff: a variational perspective on solving inverse problems with diffusion models."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from pnpdiff.priors.base import Prior
from pnpdiff.solvers.common import Callback, clip_schedule, randn_like, steps_iter
from pnpdiff.solvers.descriptor import SolverInfo
from pnpdiff.solvers.dps import starting_point

__all__ = ["reddiff"]


@torch.no_grad()
def reddiff(
    y: Tensor,
    operator: Callable[[Tensor], Tensor],
    prior: Prior,
    sigmas: Tensor,
    sigma_y: float,
    lam: float = 0.25,
    lr: float = 0.05,
    x_init: Tensor | None = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    progress: bool = False,
) -> Tensor:
    r"""RED-diff (Mardani, Song, Kautz and Vahdat, "A Variational Perspective on Solving Inverse
    Problems with Diffusion Models", ICLR 2024), Algorithm 1, in variance-exploding form on
    [0, 1] images.

    The variational posterior ``q(x0 | y) = N(mu, ~0)`` is fitted by stochastic optimisation of
    its mean with Adam (betas 0.9, 0.99 as in the official code), one step per sigma ``t`` of the
    schedule (large to small)::

        eps   ~ N(0, I);  x_t = mu + t * eps
        e_hat = (x_t - D(x_t, t)) / t                       # no gradient: stop-gradient
        loss  = ||y - A(mu)||^2 / (2 M) + lam * t * <sg(e_hat - eps), mu> / N
        mu    = Adam step on loss

    with ``M`` and ``N`` the number of entries of one measurement and of one image. The weight
    ``lam * t`` is the paper's ``lambda / SNR_t = lambda sqrt(1 - abar) / sqrt(abar)`` (``t`` is
    the VE sigma). No Jacobian of the denoiser is formed: the regulariser's gradient is
    ``lam * t * (e_hat - eps) / N`` (score distillation), and only ``A`` is differentiated, so a
    nonlinear differentiable ``A`` works too.

    **Normalisation.** The paper writes the data term as ``||y - f(mu)||^2 / (2 sigma_v^2)``, but
    its ``lambda = 0.25`` was tuned with the official code's losses, which are *means*
    (``(e_obs**2).mean() / 2`` and ``((e_t - eps) * mu).mean()``) with no ``sigma_v``. This
    function follows the code, so the paper's ``lambda`` keeps its meaning whatever the image
    size, the measurement size and the noise level (with the ``1 / (2 sigma_v^2)`` form, the
    same ``lambda`` is ``sigma_v^2 N / M`` times weaker: 1/400 of the tuned value for a
    deblurring with ``sigma_v = 0.05`` on [-1, 1]).

    **Units.** With ``mu' = 2 mu - 1`` on [-1, 1], the residual doubles and ``d / d mu' =
    (1/2) d / d mu``, so the gradient of the code's data term in ``mu'`` is ``2 A^T r / M``;
    the regulariser's is ``lambda * 2t * (e_hat - eps) / N`` (``1 / SNR = 2 t``). Both carry the
    same factor 2, which Adam's normalisation removes: the paper's ``lambda = 0.25`` is
    ``lam = 0.25`` here. Adam's steps are in units of ``mu``, whose scale halves:
    ``lr = 0.1 / 2 = 0.05``.

    Parameters
    ----------
    y : Tensor
        Measurement ``A(x) + n``, ``n ~ N(0, sigma_y^2)``.
    operator : callable
        ``A``: a :class:`~pnpdiff.operators.LinearOperator` or any differentiable callable.
    prior : Prior
        Denoiser ``D(x, sigma)`` (only evaluated, never differentiated).
    sigmas : Tensor
        Decreasing schedule ending in 0; clipped to ``prior.sigma_max``. Each positive sigma is
        one Adam step.
    sigma_y : float
        Measurement noise level in [0, 1] units; it only shapes the initial estimate (the
        official code's data term has no ``sigma_v``, see **Normalisation**).
    lam : float
        Regularisation weight ``lambda``, the paper's 0.25 (unchanged in pnpdiff units).
    lr : float
        Adam learning rate in [0, 1] image units (half the paper's 0.1); scale it with the
        data's range for other problems.
    x_init : Tensor, optional
        Initial mean. Default: the initial estimate from the measurement for a linear operator
        (:func:`~pnpdiff.solvers.common.initial_estimate`); for a nonlinear callable the mean of the
        prior's data in ``y``'s shape (0.5 everywhere for an image prior that states none).
    generator : torch.Generator, optional
        Source of all randomness.
    callback : callable, optional
        ``callback(i, sigma, mu, x0_hat)`` after each step (``x0_hat = D(x_t, t)``).
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    Tensor
        The optimised mean ``mu``.

    References
    ----------
    M. Mardani, J. Song, J. Kautz and A. Vahdat, "A Variational Perspective on Solving Inverse
    Problems with Diffusion Models", ICLR 2024. https://arxiv.org/abs/2305.04391
    """
    sigmas = clip_schedule(sigmas, prior).tolist()
    # mu starts *at* the initial estimate (no noise drowns it): regularise it as a Wiener filter for
    # data whose spread is at most half their range, not for the schedule's first sigma (40 for a
    # diffusion prior: a near-inverse filter, +-20 on a deblurred 16^2 digit)
    rng = getattr(prior, "data_range", None)
    spread = sigmas[0] if rng is None else min(sigmas[0], (rng[1] - rng[0]) / 2)
    mu = starting_point(y, operator, max(float(sigma_y), 1e-3), spread, x_init, prior).detach().clone()
    n_x, n_y = mu[0].numel(), y[0].numel()  # N and M: entries of one image, of one measurement
    m1, m2 = torch.zeros_like(mu), torch.zeros_like(mu)  # Adam moments, betas (0.9, 0.99)
    b1, b2 = 0.9, 0.99
    for i in steps_iter(len(sigmas) - 1, progress, "reddiff"):
        t = sigmas[i]
        eps = randn_like(mu, generator)
        xt = mu + t * eps
        x0 = prior.denoise(xt, t)
        e_hat = (xt - x0) / t
        with torch.enable_grad():
            v = mu.detach().requires_grad_(True)
            data = ((y - operator(v)) ** 2).sum() / (2 * n_y)  # per-image mean over the M entries
            (grad,) = torch.autograd.grad(data, v)
        grad = grad + lam * t * (e_hat - eps) / n_x  # gradient of the stop-gradient regulariser
        m1 = b1 * m1 + (1 - b1) * grad
        m2 = b2 * m2 + (1 - b2) * grad * grad
        k = i + 1
        # Adam's eps 1e-8 acts on the code's [-1, 1] gradient, twice this one: 0.5e-8 here
        mu = mu - lr * (m1 / (1 - b1**k)) / ((m2 / (1 - b2**k)).sqrt() + 0.5e-8)
        if callback is not None:
            callback(i, t, mu, x0)
    return mu


#: RED-diff with the paper's lambda = 0.25 (official-code normalisation) is a little too smooth for
#: 50 steps below 75/255. Measured at 256^2 (lam: PSNR): Gaussian deblur on astronaut 0.04: 24.02,
#: 0.09: 23.97, 0.25: 23.41, 0.6: 22.81 and on coffee 0.05: 26.50, 0.1: 26.70, 0.25: 26.52; SR x4
#: on astronaut 0.05: 23.65, 0.1: 23.66, 0.25: 23.46. It differentiates the data term only (the
#: denoiser runs under no_grad); its memory holds the Adam moments and the data term's own graph.
INFO = SolverInfo(
    "reddiff",
    reddiff,
    defaults={("natural", "*"): {"lam": 0.1}},
    memory_cost=(18, 6),
    option_ranges={"lam": (0.0, 1e6, False), "lr": (0.0, 1.0, True)},
)
