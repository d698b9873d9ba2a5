"""DDNM and DDNM+: Zero-Shot Image Restoration Using Denoising Diffusion Null-Space Model."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from pnpdiff.checks import MAX_STEPS
from pnpdiff.errors import ValueRangeError
from pnpdiff.priors.base import Prior
from pnpdiff.solvers.common import Callback, clip_schedule, initial_estimate, randn_like, steps_iter
from pnpdiff.solvers.ddrm import singular_values_like
from pnpdiff.solvers.descriptor import SolverInfo

if TYPE_CHECKING:
    from pnpdiff.operators import LinearOperator


def time_travel_path(n_steps: int, travel_length: int = 0, travel_repeat: int = 1) -> list[int]:
    """Indices into a schedule of ``n_steps + 1`` sigmas, with DDNM's time travel (RePaint's jumps).

    Without travel (``travel_length <= 0`` or ``travel_repeat <= 1``) this is ``0, 1, ..., n_steps``.
    Otherwise, as in the official DDNM code (RePaint's ``get_schedule_jump``: jumps at timesteps
    ``j = 0, L, 2L, ... < T - L``, i.e. at indices ``n_steps - 1 - j``), on reaching index
    ``n_steps - 1 - k * travel_length`` the path jumps back ``travel_length`` indices,
    ``travel_repeat - 1`` times. A decrease of the index between two consecutive entries means
    "re-noise"; the official code's ``travel_length`` single up-steps are one entry here (they
    add up to one jump in distribution).
    """
    if travel_length <= 0 or travel_repeat <= 1:
        return list(range(n_steps + 1))
    jumps = {n_steps - 1 - k: travel_repeat - 1 for k in range(0, n_steps - travel_length, travel_length)}
    i, path = 0, [0]
    while i < n_steps:
        i += 1
        path.append(i)
        if jumps.get(i, 0) > 0:
            jumps[i] -= 1
            i -= travel_length
            path.append(i)
    return path


def _check_travel(travel_length: int, travel_repeat: int) -> None:
    if int(travel_length) < 0 or int(travel_repeat) < 1:
        raise ValueRangeError(
            f"need travel_length >= 0 and travel_repeat >= 1, got {travel_length} and {travel_repeat}"
        )


@torch.no_grad()
def ddnm(
    y: Tensor,
    operator: LinearOperator,
    prior: Prior,
    sigmas: Tensor,
    sigma_y: float = 0.0,
    eta: float = 0.85,
    travel_length: int = 0,
    travel_repeat: int = 1,
    x_init: Tensor | None = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    progress: bool = False,
) -> Tensor:
    r"""DDNM (Wang, Yu and Zhang, "Zero-Shot Image Restoration Using Denoising Diffusion Null-Space
    Model", ICLR 2023), Algorithm 1 (noise-free measurements), in variance-exploding form on [0, 1].

    For each sigma ``t`` of the schedule, with ``s`` the next one::

        x0    = D(x_t, t)                                 # denoise with the prior
        eps   = (x_t - x0) / t                            # the model's noise estimate
        x0    = x0 - A^+ (A x0 - y)                       # range-null-space correction, Eq. (11)
        x_s   = x0 + s (sqrt(1 - eta^2) eps + eta n),     n ~ N(0, I)

    The last line is the transition of the authors' code, DDIM with ``eta = 0.85`` ("different
    from the paper, we use DDIM here instead of DDPM"), whose ``sqrt(1 - abar_{t-1}) * eta`` noise
    is ``s * eta`` in VE form; the paper's Algorithm 1 writes the DDPM posterior instead. The
    result (``s = 0``) is the corrected ``x0``, which satisfies ``A x = y`` exactly. The
    measurement noise is ignored: for noisy ``y`` use :func:`ddnm_plus`.

    Parameters
    ----------
    y : Tensor
        Measurement ``A(x)``.
    operator : LinearOperator
        Degradation with ``pinv`` (``A^+``) and, unless ``x_init`` is given, a ``prox``.
    prior : Prior
        Denoiser ``D(x, sigma)``.
    sigmas : Tensor
        Decreasing schedule ending in 0; clipped to ``prior.sigma_max``.
    sigma_y : float
        Measurement noise level in [0, 1] units; only used for the initial estimate.
    eta : float
        Fraction of fresh noise in each transition (official code: 0.85; unitless).
    travel_length, travel_repeat : int
        Time travel (the paper's Algorithm 3, Sec. 3.3): after every ``travel_length`` steps go
        back ``travel_length`` steps by re-noising, ``travel_repeat - 1`` times.
        The re-noising draws ``x_s ~ q(x_s | x_t)`` from the current iterate, as the paper's
        Algorithm 3 writes it (the official code re-noises its estimate ``x0_hat`` instead).
        Default off.
    x_init : Tensor, optional
        Starting estimate; default :func:`~pnpdiff.solvers.common.initial_estimate`.
    generator : torch.Generator, optional
        Source of all randomness.
    callback : callable, optional
        ``callback(i, sigma, x, x0_hat)`` after each denoising step.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    Tensor
        The restored image (the iterate at sigma = 0).

    References
    ----------
    Y. Wang, J. Yu and J. Zhang, "Zero-Shot Image Restoration Using Denoising Diffusion
    Null-Space Model", ICLR 2023. https://arxiv.org/abs/2212.00490
    """
    if sigma_y > 0:
        warnings.warn(
            f"ddnm assumes noise-free measurements, but sigma_y = {sigma_y:g}: its pseudo-inverse "
            "correction amplifies the noise (badly for blurs); use method='ddnm+' for noisy data",
            stacklevel=2,
        )
    _check_travel(travel_length, travel_repeat)
    sigmas = clip_schedule(sigmas, prior).tolist()
    if x_init is None:
        x_init = initial_estimate(y, operator, max(float(sigma_y), 1e-3), sigmas[0])
    x = x_init + sigmas[0] * randn_like(x_init, generator)
    path = time_travel_path(len(sigmas) - 1, travel_length, travel_repeat)
    for k in steps_iter(len(path) - 1, progress, "ddnm"):
        t, s = sigmas[path[k]], sigmas[path[k + 1]]
        if s > t:  # time travel: re-noise from t back up to s
            x = x + (s**2 - t**2) ** 0.5 * randn_like(x, generator)
            continue
        x0 = prior.denoise(x, t)
        eps = (x - x0) / t
        x0 = x0 - operator.pinv(operator(x0) - y)
        x = x0 + s * ((1 - eta**2) ** 0.5 * eps + eta * randn_like(x, generator))
        if callback is not None:
            callback(k, t, x, x0)
    return x


@torch.no_grad()
def ddnm_plus(
    y: Tensor,
    operator: LinearOperator,
    prior: Prior,
    sigmas: Tensor,
    sigma_y: float,
    eta: float = 0.85,
    svd_threshold: float = 3e-2,
    travel_length: int = 0,
    travel_repeat: int = 1,
    x_init: Tensor | None = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    progress: bool = False,
) -> Tensor:
    r"""DDNM+ (Wang, Yu and Zhang, "Zero-Shot Image Restoration Using Denoising Diffusion
    Null-Space Model", ICLR 2023), Algorithm 2 (noisy measurements, Eq. 17-19) with the optional
    time travel of Algorithm 3, in variance-exploding form on [0, 1] images.

    The correction is scaled (``Sigma_t``, Eq. 17) so that the measurement noise it carries into
    ``x_s`` never exceeds the noise level ``s`` of ``x_s``, and the transition's noise is reduced
    to the rest (``Phi_t``, Eq. 18-19). In the operator's spectral view (``has_svd``), with
    singular values ``s_i`` and ``ybar_i = (U^T y)_i / s_i`` (noise ``sigma_y / s_i``)::

        x0       = D(x_t, t);   eps = (x_t - x0) / t
        lambda_i = 1                                if s >= sigma_y / s_i
                 = s s_i / sigma_y                  otherwise                     (Eq. 19)
        gamma_i  = s^2 - (lambda_i sigma_y / s_i)^2           (s^2 on the null space)
        x0       = x0 - V diag(lambda) (V^T x0 - ybar)        # = x0 - Sigma_t A^+ (A x0 - y)
        x_s      = x0 + V (sqrt(gamma) * (sqrt(1 - eta^2) V^T eps + eta n))

    The transition is the authors' DDIM one (their code: "different from the paper, we use DDIM
    here instead of DDPM", ``eta = 0.85``), whose coefficient of ``x0`` is 1 in VE form, so the
    paper's ``a_t`` drops out of Eq. 19. Without a spectral view, ``A^+`` replaces the spectral
    correction and a single ``lambda`` with ``s_i = 1`` is used (the paper's simplification).
    All noise levels are in the same [0, 1] units (the official code doubles ``sigma_y`` for its
    [-1, 1] images). At the last step (``s = 0``) the correction vanishes for ``sigma_y > 0`` and the
    result is the denoised estimate; with ``sigma_y = 0`` DDNM+ is :func:`ddnm`.

    Parameters
    ----------
    y : Tensor
        Measurement ``A(x) + n``, ``n ~ N(0, sigma_y^2)``.
    operator : LinearOperator
        Degradation, preferably with a spectral view; else ``pinv``. ``prox`` for the initial
        estimate unless ``x_init`` is given.
    prior : Prior
        Denoiser ``D(x, sigma)``.
    sigmas : Tensor
        Decreasing schedule ending in 0; clipped to ``prior.sigma_max``.
    sigma_y : float
        Measurement noise level in [0, 1] units.
    eta : float
        Fraction of fresh noise in each transition (official code: 0.85; unitless).
    svd_threshold : float
        Singular values below ``svd_threshold * max(s)`` are treated as zero (null space), as the
        SVD operators of the official code do for deblurring: the scaled correction re-injects
        the same measurement noise at every step, which accumulates on near-zero singular values
        (FFDNet, Gaussian blur 1.5, sigma_y = 0.01, 50 steps: 22.9 dB with 3e-2, 9.3 dB with 0).
    travel_length, travel_repeat : int
        Time travel (Algorithm 3, Sec. 3.3): after every ``travel_length`` steps go back
        ``travel_length`` steps by re-noising, ``travel_repeat - 1`` times.
        The re-noising draws ``x_s ~ q(x_s | x_t)`` from the current iterate, as the paper's
        Algorithm 3 writes it (the official code re-noises its estimate ``x0_hat`` instead).
        Default off.
    x_init : Tensor, optional
        Starting estimate; default :func:`~pnpdiff.solvers.common.initial_estimate`.
    generator : torch.Generator, optional
        Source of all randomness.
    callback : callable, optional
        ``callback(i, sigma, x, x0_hat)`` after each denoising step.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    Tensor
        The restored image (the iterate at sigma = 0).

    References
    ----------
    Y. Wang, J. Yu and J. Zhang, "Zero-Shot Image Restoration Using Denoising Diffusion
    Null-Space Model", ICLR 2023. https://arxiv.org/abs/2212.00490
    """
    _check_travel(travel_length, travel_repeat)
    sigmas = clip_schedule(sigmas, prior).tolist()
    sigma_y = float(sigma_y)
    if x_init is None:
        x_init = initial_estimate(y, operator, max(sigma_y, 1e-3), sigmas[0])
    spectral = bool(getattr(operator, "has_svd", False))
    if spectral:
        s_val = singular_values_like(operator, x_init)
        s_val = torch.where(s_val >= svd_threshold * s_val.max(), s_val, 0.0)
        measured = s_val > 0
        s_safe = torch.where(measured, s_val, torch.ones_like(s_val))
        ybar = torch.where(measured, operator.Ut(y) / s_safe, 0.0)
        noise_y = torch.where(measured, sigma_y / s_safe, 0.0)  # std of the measured coefficients
        Vt, V = operator.Vt, operator.V  # noqa: N806 - the paper's symbols
    else:
        measured = torch.ones((), dtype=torch.bool, device=x_init.device)
        noise_y = torch.full((), sigma_y, dtype=x_init.dtype, device=x_init.device)
        Vt = V = _identity  # noqa: N806
    x = x_init + sigmas[0] * randn_like(x_init, generator)
    path = time_travel_path(len(sigmas) - 1, travel_length, travel_repeat)
    for k in steps_iter(len(path) - 1, progress, "ddnm+"):
        t, s = sigmas[path[k]], sigmas[path[k + 1]]
        if s > t:  # time travel: re-noise from t back up to s
            x = x + (s**2 - t**2) ** 0.5 * randn_like(x, generator)
            continue
        lam = torch.where(noise_y <= s, 1.0, s / noise_y.clamp_min(1e-30))  # Eq. (19)
        gamma = torch.where(measured, (s**2 - (lam * noise_y) ** 2).clamp_min(0), s**2)
        x0 = prior.denoise(x, t)
        eps = Vt((x - x0) / t)
        if spectral:
            xbar0 = Vt(x0)
            x0 = V(torch.where(measured, xbar0 - lam * (xbar0 - ybar), xbar0))  # Eq. (17)
        else:
            x0 = x0 - lam * operator.pinv(operator(x0) - y)
        n = randn_like(eps, generator)
        x = x0 + V(gamma.sqrt() * ((1 - eta**2) ** 0.5 * eps + eta * n))
        if callback is not None:
            callback(k, t, x, x0)
    return x


def _identity(x: Tensor) -> Tensor:
    return x


INFO = SolverInfo(
    "ddnm",
    ddnm,
    memory_cost=(7, 6),
    option_ranges={
        "eta": (0.0, 1.0, False),
        "travel_length": (0, MAX_STEPS, False),
        "travel_repeat": (1, 1000, False),
    },
)
#: DDNM+: the spectral views of x and x0, noise in both domains
INFO_PLUS = SolverInfo(
    "ddnm+",
    ddnm_plus,
    memory_cost=(21, 6),
    option_ranges={
        "eta": (0.0, 1.0, False),
        "svd_threshold": (0.0, 1.0, False),
        "travel_length": (0, MAX_STEPS, False),
        "travel_repeat": (1, 1000, False),
    },
)
