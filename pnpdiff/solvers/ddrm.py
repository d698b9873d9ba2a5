"""DDRM: Denoising Diffusion Restoration Models, on the operator's spectral (SVD) view."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from pnpdiff.errors import OperatorError
from pnpdiff.priors.base import Prior
from pnpdiff.solvers.common import Callback, clip_schedule, initial_estimate, randn_like, steps_iter
from pnpdiff.solvers.descriptor import SolverInfo

if TYPE_CHECKING:
    from pnpdiff.operators import LinearOperator


def singular_values_like(operator: LinearOperator, x: Tensor) -> Tensor:
    """The operator's singular values in ``x``'s layout, device and dtype (broadcastable to ``x``).

    Raises :class:`~pnpdiff.errors.OperatorError` if the operator has no spectral view.
    """
    if not getattr(operator, "has_svd", False) or not hasattr(operator, "Vt"):
        raise OperatorError(
            f"{type(operator).__name__} has no spectral (SVD) view, which this solver needs; use "
            "a circular blur, Downsample with a separable filter, Inpaint, Colorize, Matrix, or a "
            "solver that needs only forward/adjoint/prox (e.g. method='diffpir')"
        )
    try:
        s = operator.singular_values(x)
    except TypeError:  # an operator whose singular_values takes no argument
        s = operator.singular_values()
    return s.to(device=x.device, dtype=x.dtype)


@torch.no_grad()
def ddrm(
    y: Tensor,
    operator: LinearOperator,
    prior: Prior,
    sigmas: Tensor,
    sigma_y: float,
    eta: float = 0.85,
    eta_b: float = 1.0,
    svd_threshold: float = 3e-2,
    x_init: Tensor | None = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    progress: bool = False,
) -> Tensor:
    r"""DDRM (Kawar, Elad, Ermon and Song, "Denoising Diffusion Restoration Models", NeurIPS 2022),
    Eq. (7)-(8), in variance-exploding form on [0, 1] images.

    DDRM is written in the paper in VE form (``x_t = x_0 + sigma_t n``), so it carries over as is.
    With ``A = U diag(s) V^T``, coefficients ``xbar = V^T x`` and the spectral measurement
    ``ybar_i = (U^T y)_i / s_i`` (noise ``sigma_y / s_i``), each coefficient ``i`` is sampled from
    the paper's variational distribution. Start (Eq. 7) at ``T = sigmas[0]``::

        xbar_T,i ~ N(ybar_i, T^2 - sigma_y^2 / s_i^2)     if s_i > 0 and T >= sigma_y / s_i
                 ~ N(xbar_init,i, T^2)                      otherwise

    (the paper's ``N(0, T^2)`` for ``s_i = 0`` is centred here on the initial estimate, which only
    matters when the prior caps ``T``, e.g. FFDNet at 75/255). Then for each ``t`` of the schedule,
    with ``s`` the next sigma and ``x0 = D(x_t, t)``, ``xbar0 = V^T x0`` (Eq. 8)::

        s_i = 0:                xbar_s,i = xbar0_i + sqrt(1 - eta^2) s (xbar_t,i - xbar0_i) / t + eta s n
        s < sigma_y / s_i:      xbar_s,i = xbar0_i + sqrt(1 - eta^2) s (ybar_i - xbar0_i) s_i / sigma_y
                                           + eta s n
        s >= sigma_y / s_i:     xbar_s,i = (1 - eta_b) xbar0_i + eta_b ybar_i
                                           + sqrt(s^2 - eta_b^2 sigma_y^2 / s_i^2) n

    The last step (``s = 0``) returns ``x0`` itself when ``sigma_y > 0`` (and, for ``sigma_y = 0``,
    ``x0`` with its measured coefficients replaced by ``(1 - eta_b) xbar0 + eta_b ybar``).

    Units: the official code works on [-1, 1] images and therefore doubles ``sigma_0`` (the
    measurement noise) internally; here ``sigma_y``, the schedule and ``y`` are all in the same
    [0, 1] units, so no factor appears. ``eta`` and ``eta_b`` are unitless (paper defaults).

    Parameters
    ----------
    y : Tensor
        Measurement ``A(x) + n``, ``n ~ N(0, sigma_y^2)`` (batch size that of the result).
    operator : LinearOperator
        Degradation with a spectral view (``has_svd``: ``Vt``, ``V``, ``Ut``, ``singular_values``)
        and, unless ``x_init`` is given, a ``prox`` for the initial estimate.
    prior : Prior
        Denoiser ``D(x, sigma)``.
    sigmas : Tensor
        Decreasing schedule ending in 0; clipped to ``prior.sigma_max``.
    sigma_y : float
        Measurement noise level in [0, 1] units (DDRM quotes it on [0, 1] too: 0.05 is 0.05 here).
    eta : float
        Stochasticity of the unmeasured and under-determined coefficients (paper: 0.85).
    eta_b : float
        Weight of the measurement on the well-determined coefficients (paper: 1.0).
    svd_threshold : float
        Singular values below ``svd_threshold * max(s)`` are treated as zero (their coefficients
        are left to the prior), as the SVD operators of the official DDRM/DDNM code do for
        deblurring; without it the measurement noise that is re-injected at every step on
        near-zero singular values of a blur accumulates (FFDNet, Gaussian blur 1.5, sigma_y =
        0.01, 50 steps: 23.1 dB with 3e-2).
    x_init : Tensor, optional
        Estimate used to centre the coefficients without a usable measurement; default
        :func:`~pnpdiff.solvers.common.initial_estimate`.
    generator : torch.Generator, optional
        Source of all randomness.
    callback : callable, optional
        ``callback(i, sigma, x, x0_hat)`` after each step.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    Tensor
        The restored image (the iterate at sigma = 0).

    References
    ----------
    B. Kawar, M. Elad, S. Ermon and J. Song, "Denoising Diffusion Restoration Models",
    NeurIPS 2022. https://arxiv.org/abs/2201.11793
    """
    sigmas = clip_schedule(sigmas, prior).tolist()
    sigma_y = float(sigma_y)
    if x_init is None:
        x_init = initial_estimate(y, operator, max(sigma_y, 1e-3), sigmas[0])
    s_val = singular_values_like(operator, x_init)
    s_val = torch.where(s_val >= svd_threshold * s_val.max(), s_val, 0.0)
    measured = s_val > 0
    s_safe = torch.where(measured, s_val, torch.ones_like(s_val))
    ybar = torch.where(measured, operator.Ut(y) / s_safe, 0.0)  # Sigma^+ U^T y
    noise_y = torch.where(measured, sigma_y / s_safe, torch.full_like(s_val, float("inf")))  # std of ybar_i

    T = sigmas[0]
    use_y = measured & (noise_y <= T)  # Eq. (7): the measurement is less noisy than x_T
    n = randn_like(x_init, generator)
    xbar = torch.where(use_y, ybar + (T**2 - noise_y.clamp(max=T) ** 2).sqrt() * n, operator.Vt(x_init) + T * n)
    x = operator.V(xbar)
    x0 = x_init
    for i in steps_iter(len(sigmas) - 1, progress, "ddrm"):
        t, s = sigmas[i], sigmas[i + 1]
        x0 = prior.denoise(x, t)
        xbar0 = operator.Vt(x0)
        n = randn_like(xbar0, generator)
        unmeasured = xbar0 + (1 - eta**2) ** 0.5 * s * (xbar - xbar0) / t + eta * s * n
        noisy = xbar0 + (1 - eta**2) ** 0.5 * s * (ybar - xbar0) / noise_y.clamp_min(1e-30) + eta * s * n
        clean_std = (s**2 - eta_b**2 * noise_y.clamp(max=s) ** 2).clamp_min(0).sqrt()
        clean = (1 - eta_b) * xbar0 + eta_b * ybar + clean_std * n
        xbar = torch.where(~measured, unmeasured, torch.where(noise_y > s, noisy, clean))
        x = operator.V(xbar)
        if callback is not None:
            callback(i, t, x, x0)
    return x


#: the spectral view at the peak: ybar, noise_y, xbar, xbar0, three candidates, masks
INFO = SolverInfo(
    "ddrm",
    ddrm,
    memory_cost=(24, 6),
    option_ranges={"eta": (0.0, 1.0, False), "eta_b": (0.0, 1.0, False), "svd_threshold": (0.0, 1.0, False)},
)
