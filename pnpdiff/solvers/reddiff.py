"""RED-diff: a variational perspective on solving inverse problems with diffusion models."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from pnpdiff.priors.base import Prior
from pnpdiff.solvers.common import Callback, clip_schedule, randn_like, steps_iter
from pnpdiff.solvers.dps import starting_point

__all__ = ["reddiff"]


@torch.no_grad()
def reddiff(
    y: Tensor,
    operator: Callable[[Tensor], Tensor],
    prior: Prior,
    sigmas: Tensor,
    sigma_y: float,
    lam: float = 1.0,
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
        loss  = ||y - A(mu)||^2 / (2 sigma_y^2) + lam * t * <sg(e_hat - eps), mu>
        mu    = Adam step on loss

    The weight ``lam * t`` is the paper's ``lambda / SNR_t = lambda sqrt(1 - abar) / sqrt(abar)``
    (``t`` is the VE sigma). No Jacobian of the denoiser is formed: the regulariser's gradient
    is ``lam * t * (e_hat - eps)`` (score distillation), and only ``A`` is differentiated, so a
    nonlinear differentiable ``A`` works too.

    **Units.** The paper's ``lambda = 0.25`` and Adam learning rate 0.1 are for [-1, 1] images
    with sigma, ``sigma_y`` in [-1, 1] units. Written in the [0, 1] mean ``mu`` (``mu' = 2 mu - 1``)
    the data term is unchanged (``||y' - A mu'||^2 / sigma_y'^2 = 4 ||y - A mu||^2 / (4
    sigma_y^2)``) while the regulariser's gradient in ``mu`` is ``2 x 2 = 4`` times larger (``d mu' /
    d mu = 2`` and ``1 / SNR = 2 t``): relative to the data term, ``lam = 4 x 0.25 = 1.0`` here.
    (Equivalently: in the official code's un-normalised loss the data term shrinks 4x.) Adam's
    steps are in units of ``mu``, whose scale halves: ``lr = 0.1 / 2 = 0.05``.

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
        Measurement noise level in [0, 1] units (floored at ``1e-3``).
    lam : float
        Regularisation weight ``lambda`` in pnpdiff units (``4 x`` the paper's, see **Units**).
    lr : float
        Adam learning rate in [0, 1] image units (half the paper's 0.1); scale it with the
        data's range for other problems.
    x_init : Tensor, optional
        Initial mean. Default: the initial estimate from the measurement for a linear operator
        (:func:`~pnpdiff.solvers.common.initial_estimate`), 0.5 everywhere (``y``'s shape) for a
        nonlinear callable.
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
    """
    sigmas = clip_schedule(sigmas, prior).tolist()
    sy2 = max(float(sigma_y), 1e-3) ** 2
    mu = starting_point(y, operator, sy2**0.5, sigmas[0], x_init).detach().clone()
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
            data = ((y - operator(v)) ** 2).sum() / (2 * sy2)
            (grad,) = torch.autograd.grad(data, v)
        grad = grad + lam * t * (e_hat - eps)  # gradient of the stop-gradient regulariser
        m1 = b1 * m1 + (1 - b1) * grad
        m2 = b2 * m2 + (1 - b2) * grad * grad
        k = i + 1
        mu = mu - lr * (m1 / (1 - b1**k)) / ((m2 / (1 - b2**k)).sqrt() + 1e-8)
        if callback is not None:
            callback(i, t, mu, x0)
    return mu
