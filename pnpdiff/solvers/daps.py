"""DAPS: decoupled annealing posterior sampling, for linear and nonlinear forward models."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from pnpdiff.checks import MAX_SIGMA_Y, MAX_STEPS
from pnpdiff.errors import ValueRangeError
from pnpdiff.priors.base import Prior
from pnpdiff.schedules import karras
from pnpdiff.solvers.common import Callback, clip_schedule, randn_like, steps_iter
from pnpdiff.solvers.descriptor import SolverInfo
from pnpdiff.solvers.dps import has_prox, starting_point
from pnpdiff.solvers.samplers import euler

__all__ = ["daps"]


def jacobian_sq_norm(operator: Callable[[Tensor], Tensor], x: Tensor, iters: int = 10) -> Tensor:
    """Per-sample ``||J||^2`` (largest eigenvalue of ``J^T J``, ``J`` the Jacobian of ``operator``
    at ``x``) by power iteration, shaped ``(B, 1, ...)`` to broadcast against ``x``.

    Autograd only: ``J u`` is the derivative of the vector-Jacobian product ``J^T w`` in ``w``.
    The start vector comes from a private generator, so the caller's random stream is untouched.
    """
    g = torch.Generator(device=x.device).manual_seed(0)
    u = torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype)
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    lam = torch.ones(shape, device=x.device, dtype=x.dtype)
    with torch.enable_grad():
        xv = x.detach().requires_grad_(True)
        ax = operator(xv)
        w = torch.zeros_like(ax, requires_grad=True)
        (jtw,) = torch.autograd.grad(ax, xv, w, create_graph=True)
        for _ in range(iters):
            u = u / u.flatten(1).norm(dim=1).clamp_min(1e-30).reshape(shape)
            (ju,) = torch.autograd.grad(jtw, w, u, retain_graph=True)
            (jtju,) = torch.autograd.grad(ax, xv, ju.detach(), retain_graph=True)
            lam = jtju.flatten(1).norm(dim=1).reshape(shape)
            u = jtju.detach()
    return lam.detach().clamp_min(1e-12)


@torch.no_grad()
def daps(
    y: Tensor,
    operator: Callable[[Tensor], Tensor],
    prior: Prior,
    sigmas: Tensor,
    sigma_y: float,
    ode_steps: int = 5,
    ode_sigma_min: float = 0.005,
    langevin_steps: int = 100,
    lr: float = 0.5,
    lr_min_ratio: float = 0.01,
    beta_y: float | None = None,
    x_init: Tensor | None = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    progress: bool = False,
) -> Tensor:
    r"""DAPS (Zhang, Chu, Berner, Meng, Anandkumar and Song, "Improving Diffusion Inverse Problem
    Solving with Decoupled Noise Annealing", CVPR 2025), Algorithm 1, in variance-exploding form
    on [0, 1] images.

    Each annealing level ``t`` of the schedule decouples the next iterate from the current one:
    ``x0`` is re-drawn from (an approximation of) ``p(x0 | x_t, y)``, then noised afresh to the
    next level ``s``::

        x0_hat = ODE(x_t; t -> 0)                       # probability-flow ODE, ode_steps Euler steps
        x0     = x0_hat
        repeat langevin_steps times:                    # Langevin on p(x0 | x_t, y) with
            x0 += eta grad log p(x0 | x_t, y) + sqrt(2 eta) n
                  # log p = -||x0 - x0_hat||^2 / (2 r_t^2) - ||y - A(x0)||^2 / (2 beta_y^2)
        x_s    = x0 + s n

    and the last level returns its ``x0``. ``p(x0 | x_t)`` is the paper's Gaussian
    ``N(x0_hat(x_t), r_t^2 I)`` with ``r_t = t``; the ODE is Euler on
    ``dx / dsigma = (x - D(x, sigma)) / sigma`` over Karras sigmas from ``t`` to ``ode_sigma_min``
    and a last step to 0 (:func:`pnpdiff.solvers.euler`, the paper's ``poly-7`` steps). Only
    ``A(x)`` and its vector-Jacobian product are used (autograd through ``A``, never through the
    denoiser; ``A^T`` directly for a linear operator), so any differentiable callable is a valid
    forward model.

    **Units.** The paper's annealing runs from sigma 100 to 0.1 and the ODE to 0.01 on [-1, 1]
    images: 50, 0.05 and 0.005 here (half). Its Langevin step is an absolute learning rate
    (1e-4 on [-1, 1], decayed linearly to 1 % over the annealing); pnpdiff sets it relative to the
    stiffness of the target instead, ``eta = lr * min(r_t^2, beta_y^2 / ||J||^2)`` (``lr``
    unitless; ``||J|| = 1`` is used for a linear operator, ``||A|| <= 1`` for every pnpdiff image
    operator and MCGdiff's random ones, and ``||J||^2`` of a nonlinear model is estimated per
    sample at each level by 10 power iterations on ``J^T J``), so that one default serves images
    in [0, 1] and data of any scale. ``lr_min_ratio`` is the paper's linear decay (default 0.01).
    ``beta_y`` defaults to ``max(sigma_y / 5, 1e-3)``: the official pixel-space configurations'
    likelihood temperature (0.01 against a noise of 0.05), which keeps the chain near the ODE's
    estimate; ``beta_y = sigma_y`` with ``lr_min_ratio = 1`` samples the method's Gaussian
    approximation of the posterior instead (``docs/posterior.md``).

    Parameters
    ----------
    y : Tensor
        Measurement ``A(x) + n``, ``(B, ...)``.
    operator : callable
        ``A``: a :class:`~pnpdiff.operators.LinearOperator` or any differentiable callable.
    prior : Prior
        Denoiser ``D(x, sigma)``.
    sigmas : Tensor
        Annealing levels, decreasing, ending in 0; clipped to ``prior.sigma_max``.
    sigma_y : float
        Measurement noise level (in the data's units).
    ode_steps : int
        Euler steps of each inner probability-flow ODE (paper: 5).
    ode_sigma_min : float
        Smallest sigma of the inner ODE before its last step to 0.
    langevin_steps : int
        Langevin steps per annealing level (paper: 100).
    lr : float
        Relative Langevin step (see **Units**), in ``(0, 1]``.
    lr_min_ratio : float
        Step multiplier at the last level, decayed linearly from 1 (paper: 0.01 on its absolute step).
    beta_y : float, optional
        Standard deviation of the Langevin likelihood (default ``max(sigma_y / 5, 1e-3)``).
    x_init : Tensor, optional
        Start at ``x_init + sigma_T n``; default the prior's start ``N(data mean, sigma_T^2 +
        data var)`` for a nonlinear operator, the measurement's initial estimate plus noise for a
        linear one (as DPS).
    generator : torch.Generator, optional
        Source of all randomness.
    callback : callable, optional
        ``callback(i, sigma, x, x0_hat)`` after each level (``x`` the next iterate, ``x0_hat`` the
        Langevin sample).
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    Tensor
        One posterior sample per measurement (the Langevin ``x0`` of the last level).

    References
    ----------
    B. Zhang, W. Chu, J. Berner, C. Meng, A. Anandkumar and Y. Song, "Improving Diffusion
    Inverse Problem Solving with Decoupled Noise Annealing", CVPR 2025.
    https://arxiv.org/abs/2407.01521
    """
    if ode_steps < 1 or langevin_steps < 0:
        raise ValueRangeError(f"daps needs ode_steps >= 1 and langevin_steps >= 0, got {ode_steps}, {langevin_steps}")
    if not 0 < lr <= 1 or not 0 < lr_min_ratio <= 1:
        raise ValueRangeError(f"daps needs 0 < lr <= 1 and 0 < lr_min_ratio <= 1, got lr={lr}, "
                              f"lr_min_ratio={lr_min_ratio}")
    sig = clip_schedule(sigmas, prior).tolist()
    # the official code's likelihood temperature (tau = 0.01 against sigma_y = 0.05, every pixel task)
    beta = max(float(sigma_y) / 5, 1e-3) if beta_y is None else float(beta_y)
    if not beta > 0:
        raise ValueRangeError(f"beta_y must be positive, got {beta_y}")
    if x_init is None and not has_prox(operator):
        x = prior.start(y.shape, sig[0], generator, y.device, y.dtype)
    else:
        x0 = starting_point(y, operator, max(float(sigma_y), 1e-3), sig[0], x_init)
        x = x0 + sig[0] * randn_like(x0, generator)
    x0 = x
    linear = hasattr(operator, "adjoint")
    levels = len(sig) - 1
    for i in steps_iter(levels, progress, "daps"):
        t, s = sig[i], sig[i + 1]
        ode = karras(ode_steps, sigma_min=min(ode_sigma_min, t), sigma_max=t)
        x0_hat = euler(prior, ode, x, generator=generator)
        ratio = i / max(levels - 1, 1)
        lr_i = lr * (1 + ratio * (lr_min_ratio - 1))
        if linear:
            eta = lr_i * min(t * t, beta * beta)
        else:  # the likelihood's stiffness is ||J||^2 / beta^2: a saturating sensor has ||J|| > 1
            eta = lr_i * torch.clamp(beta * beta / jacobian_sq_norm(operator, x0_hat), max=t * t)
        x0 = x0_hat.clone()
        for _ in range(langevin_steps):
            if linear:  # grad of ||y - A x||^2 / (2 beta^2) in closed form
                g_lik = operator.adjoint(operator(x0) - y) / (beta * beta)
            else:
                with torch.enable_grad():
                    xv = x0.detach().requires_grad_(True)
                    misfit = (y - operator(xv)).pow(2).sum() / (2 * beta * beta)
                    (g_lik,) = torch.autograd.grad(misfit, xv)
            grad = -(x0 - x0_hat) / (t * t) - g_lik
            x0 = x0 + eta * grad + (2 * eta) ** 0.5 * randn_like(x0, generator)
        x = x0 + s * randn_like(x0, generator) if s > 0 else x0
        if callback is not None:
            callback(i, t, x, x0)
    return x0


#: the paper's annealing 100 -> 0.1 on [-1, 1] (poly-7 = Karras), halved (docs/posterior.md); each
#: step runs ``ode_steps`` denoiser calls
INFO = SolverInfo(
    "daps",
    daps,
    defaults={("*", "*"): {"steps": 50, "schedule": "karras", "schedule_max": 50.0, "schedule_min": 0.05}},
    option_ranges={
        "ode_steps": (1, MAX_STEPS, False),
        "langevin_steps": (0, MAX_STEPS, False),
        "ode_sigma_min": (0.0, None, False),
        "beta_y": (0.0, MAX_SIGMA_Y, True),
    },
    inner_calls="ode_steps",
)
