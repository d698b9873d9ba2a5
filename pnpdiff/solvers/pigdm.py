"""ΠGDM: Pseudoinverse-Guided Diffusion Models for inverse problems."""

from __future__ import annotations

import torch
from torch import Tensor

from pnpdiff.checks import MAX_STEPS
from pnpdiff.errors import PnPError
from pnpdiff.operators import conjugate_gradient
from pnpdiff.priors.base import Prior
from pnpdiff.solvers.common import Callback, clip_schedule, initial_estimate, randn_like, steps_iter
from pnpdiff.solvers.descriptor import SolverInfo

__all__ = ["pigdm", "weighted_residual"]


def weighted_residual(operator, res: Tensor, r2: float, sigma_y: float, cg_iter: int = 20) -> Tensor:
    """``A^T (r2 A A^T + sigma_y^2 I)^{-1} res`` for a linear operator.

    Closed form on the spectral view when ``operator.has_svd``:
    ``V(s / (r2 s^2 + sigma_y^2) * Ut(res))`` (zero where ``s = 0``); otherwise ``cg_iter``
    conjugate-gradient iterations on the measurement space (``sigma_y`` floored at ``1e-3`` to
    keep the system definite when ``A A^T`` is singular).
    """
    if getattr(operator, "has_svd", False):
        c = operator.Ut(res)
        sv = operator.singular_values(c)
        den = r2 * sv * sv + sigma_y**2
        gain = torch.where(sv > 0, sv / den.clamp_min(torch.finfo(c.dtype).tiny), torch.zeros_like(sv))
        return operator.V(gain * c)
    sy2 = max(sigma_y, 1e-3) ** 2
    v = conjugate_gradient(lambda u: r2 * operator(operator.adjoint(u)) + sy2 * u, res,
                           tol=1e-6, max_iter=cg_iter)
    return operator.adjoint(v)


@torch.no_grad()
def pigdm(
    y: Tensor,
    operator,
    prior: Prior,
    sigmas: Tensor,
    sigma_y: float,
    eta: float = 1.0,
    guidance: float = 1.0,
    cg_iter: int = 20,
    data_std: float = 0.5,
    x_init: Tensor | None = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    progress: bool = False,
) -> Tensor:
    r"""ΠGDM (Song, Vahdat, Mardani and Kautz, "Pseudoinverse-Guided Diffusion Models for Inverse
    Problems", ICLR 2023), Algorithm 1 with its noisy-measurement guidance (Eq. 7), in
    variance-exploding form on [0, 1] images.

    ``p(x0 | x_t)`` is approximated by ``N(D(x_t, t), r_t^2 I)``, which makes
    ``p(y | x_t) ~ N(A x0, r_t^2 A A^T + sigma_y^2 I)`` and its score a vector-Jacobian product
    through the denoiser. For each sigma ``t`` of the schedule, with ``s`` the next one::

        x0    = D(x_t, t)
        r_t^2 = t^2 / (1 + 4 t^2)                                           # see Units
        g     = (d x0 / d x_t)^T A^T (r_t^2 A A^T + sigma_y^2 I)^{-1} (y - A x0)   # VJP
        x0    = x0 + guidance * t^2 * g         # Tweedie: E[x0 | x_t, y] = x_t + t^2 score
        c1    = eta * s * sqrt(1 - s^2 / t^2)
        x_s   = x0 + sqrt(s^2 - c1^2) (x_t - x0) / t + c1 n       # DDIM(eta) in VE form

    (the guided score ``score(x_t) + g`` turned into the guided denoised estimate; with
    ``eta = 1`` the step is the DDPM ancestral step and the guidance term is
    ``(t^2 - s^2) g``, the reverse-SDE step with the guided score). The last step returns the
    guided ``x0``.

    **Units.** The paper's ``r_t^2 = sigma_t^2 / (1 + sigma_t^2)`` (VE form, [-1, 1] images,
    ``1 - abar_t`` in VP form) is the posterior variance of ``x0`` under a unit-variance data
    prior. On [0, 1] images both sigma and the data's standard deviation halve, so
    ``r_t^2 = (4 t^2 / (1 + 4 t^2)) / 4 = t^2 / (1 + 4 t^2)`` with ``t`` in [0, 1] units; ``sigma_y``
    is in [0, 1] units too (the paper quotes [-1, 1] levels: halve them). In general
    ``r_t^2 = c^2 t^2 / (c^2 + t^2)`` with ``c = data_std`` (0.5 for [0, 1] images); data in other
    units (e.g. the analytic test problems) need their own ``data_std``.

    Parameters
    ----------
    y : Tensor
        Measurement ``A x + n``, ``n ~ N(0, sigma_y^2)``.
    operator : LinearOperator
        Linear degradation with ``forward`` and ``adjoint``; its spectral view (``has_svd``) gives
        the closed form of ``(r_t^2 A A^T + sigma_y^2 I)^{-1}``, else conjugate gradient is used.
    prior : Prior
        Denoiser ``D(x, sigma)``; it must be differentiable in ``x``.
    sigmas : Tensor
        Decreasing schedule ending in 0; clipped to ``prior.sigma_max``.
    sigma_y : float
        Measurement noise level in [0, 1] units.
    eta : float
        DDIM stochasticity (0: deterministic, 1: DDPM ancestral). The paper samples with
        ``eta = 1.0``.
    guidance : float
        Multiplier of the likelihood score (1 = the ΠGDM approximation of ``p(y | x_t)``).
    cg_iter : int
        Conjugate-gradient iterations when the operator has no spectral view.
    data_std : float
        Standard deviation ``c`` of the data assumed by ``r_t^2`` (0.5: the paper's unit variance
        on [-1, 1], in [0, 1] units).
    x_init : Tensor, optional
        Starting estimate; default :func:`~pnpdiff.solvers.common.initial_estimate`.
    generator : torch.Generator, optional
        Source of all randomness.
    callback : callable, optional
        ``callback(i, sigma, x, x0_hat)`` after each step.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    Tensor
        The restored sample (the last guided denoised estimate).

    Notes
    -----
    Memory: like DPS, one denoiser graph per step is kept for the vector-Jacobian product.

    References
    ----------
    J. Song, A. Vahdat, M. Mardani and J. Kautz, "Pseudoinverse-Guided Diffusion Models for
    Inverse Problems", ICLR 2023. https://openreview.net/forum?id=9_gsMA8MRKQ
    """
    if not (hasattr(operator, "adjoint") and callable(operator)):
        raise PnPError("pigdm needs a linear operator with an adjoint; use method='dps' for a "
                       "nonlinear forward model")
    sigmas = clip_schedule(sigmas, prior).tolist()
    sigma_y = float(sigma_y)
    if x_init is None:
        x_init = initial_estimate(y, operator, max(sigma_y, 1e-3), sigmas[0])
    x = x_init + sigmas[0] * randn_like(x_init, generator)
    x0 = x_init
    for i in steps_iter(len(sigmas) - 1, progress, "pigdm"):
        t, s = sigmas[i], sigmas[i + 1]
        r2 = data_std**2 * t**2 / (data_std**2 + t**2)
        with torch.enable_grad():
            xt = x.detach().requires_grad_(True)
            x0 = prior.denoise(xt, t)
            v = weighted_residual(operator, y - operator(x0.detach()), r2, sigma_y, cg_iter)
            (g,) = torch.autograd.grad(x0, xt, grad_outputs=v)
        x0 = x0.detach() + guidance * t**2 * g
        c1 = eta * s * max(1 - s**2 / t**2, 0.0) ** 0.5
        x = x0 + max(s**2 - c1**2, 0.0) ** 0.5 * (x - x0) / t + c1 * randn_like(x, generator)
        if callback is not None:
            callback(i, t, x, x0)
    return x0


INFO = SolverInfo(
    "pigdm",
    pigdm,
    memory_cost=(11, 8),
    backprop=True,
    option_ranges={
        "eta": (0.0, 1.0, False),
        "guidance": (0.0, 1e3, False),
        "cg_iter": (1, MAX_STEPS, False),
        "data_std": (0.0, 1e3, True),
    },
)
