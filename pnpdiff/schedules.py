"""Noise schedules: decreasing float64 sigma tensors in [0, 1] image units, ending in 0.

Every function returns ``steps + 1`` values ``sigma_0 > sigma_1 > ... > sigma_{steps-1} > 0``
(the trailing 0 marks the end of sampling), already restricted to ``[sigma_min, sigma_max]``
when those are given: the *spacing* is computed on the restricted range, so ``steps`` network
evaluations are always spent where the prior is valid (a prior like FFDNet, valid only up to
75/255, gets all its steps below 75/255 instead of a handful).

DDPM-derived schedules use the variance-exploding equivalent of the VP process on [0, 1] images,
``sigma_t = sqrt((1 - abar_t) / abar_t) / 2`` (see ``ALGORITHMS.md``).

.. rubric:: Contents

* Schedules (each returns ``steps + 1`` sigmas): :func:`ddpm` (DDPM linear-beta timesteps,
  uniform or DiffPIR's quadratic spacing), :func:`cosine` (Nichol and Dhariwal), :func:`karras`
  (EDM's ``rho`` schedule), :func:`geometric` (log-uniform, DPIR's annealing);
  :func:`get_schedule` builds one by name from the registry ``SCHEDULES``.
* Conversions: :func:`ddpm_alphas_cumprod` (the DDPM ``abar_t`` table),
  :func:`ddpm_sigma_table` (its VE sigmas), :func:`abar_to_sigma` and :func:`sigma_to_abar`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from pnpdiff.errors import UnknownNameError, ValueRangeError

__all__ = [
    "ddpm_alphas_cumprod",
    "ddpm_sigma_table",
    "sigma_to_abar",
    "abar_to_sigma",
    "ddpm",
    "cosine",
    "karras",
    "geometric",
    "get_schedule",
    "SCHEDULES",
]


def ddpm_alphas_cumprod(
    T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02
) -> Tensor:
    """``abar_t = prod_{s<=t} (1 - beta_s)`` for the linear beta schedule of Ho et al. (2020).

    Parameters
    ----------
    T : int
        Number of DDPM training timesteps.
    beta_start, beta_end : float
        First and last ``beta_t`` of the linear schedule.

    Returns
    -------
    Tensor
        ``abar_t``, float64, shape ``(T,)``, decreasing from ``1 - beta_start``.

    References
    ----------
    J. Ho, A. Jain and P. Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020.
    https://arxiv.org/abs/2006.11239
    """
    betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0)


def abar_to_sigma(abar: Tensor) -> Tensor:
    """VP ``abar`` on [-1, 1] -> VE sigma on [0, 1]: ``sqrt((1 - abar) / abar) / 2``.

    Parameters
    ----------
    abar : Tensor
        ``abar_t`` values in ``(0, 1]``.

    Returns
    -------
    Tensor
        The equivalent VE noise levels in [0, 1] image units, shape of ``abar``.
    """
    return torch.sqrt((1.0 - abar) / abar) / 2.0


def sigma_to_abar(sigma: Tensor | float) -> Tensor:
    """Inverse of :func:`abar_to_sigma`: ``abar = 1 / (1 + (2 sigma)^2)``.

    Parameters
    ----------
    sigma : Tensor or float
        VE noise levels in [0, 1] image units.

    Returns
    -------
    Tensor
        float64 ``abar`` values in ``(0, 1]``, shape of ``sigma``.
    """
    sigma = torch.as_tensor(sigma, dtype=torch.float64)
    return 1.0 / (1.0 + (2.0 * sigma) ** 2)


def ddpm_sigma_table(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """VE sigmas (in [0, 1] units) of the ``T`` DDPM timesteps, increasing with ``t``.

    Parameters
    ----------
    T : int
        Number of DDPM training timesteps.
    beta_start, beta_end : float
        First and last ``beta_t`` of the linear schedule.

    Returns
    -------
    Tensor
        float64 sigmas, shape ``(T,)``, increasing with ``t``.
    """
    return abar_to_sigma(ddpm_alphas_cumprod(T, beta_start, beta_end))


def _finish(sig: Tensor) -> Tensor:
    sig = sig.to(torch.float64)
    return torch.cat([sig, sig.new_zeros(1)])


def _check(steps: int) -> None:
    if int(steps) < 1:
        raise ValueRangeError(f"steps must be a positive integer, got {steps}")


def _interp_sigma(table: Tensor, t: Tensor) -> Tensor:
    """Sigma at continuous timesteps ``t`` by linear interpolation of ``log sigma`` in ``t``."""
    log_tab = table.log()
    lo = t.floor().clamp(0, len(table) - 1).long()
    hi = (lo + 1).clamp(max=len(table) - 1)
    w = t - lo.to(t.dtype)
    return torch.exp(log_tab[lo] * (1 - w) + log_tab[hi] * w)


def _t_of_sigma(table: Tensor, sigma: float) -> float:
    """Continuous timestep whose interpolated sigma equals ``sigma`` (clamped to the table)."""
    log_tab = table.log()
    s = math.log(max(sigma, float(table[0])))
    if s >= float(log_tab[-1]):
        return float(len(table) - 1)
    i = int(torch.searchsorted(log_tab, torch.tensor(s, dtype=torch.float64)).item())
    i = max(i, 1)
    w = (s - float(log_tab[i - 1])) / float(log_tab[i] - log_tab[i - 1])
    return (i - 1) + w


def ddpm(
    steps: int,
    spacing: str = "quadratic",
    sigma_min: float | None = None,
    sigma_max: float | None = None,
    T: int = 1000,
    beta_start: float = 1e-4,
    beta_end: float = 0.02,
) -> Tensor:
    """DDPM linear-beta sigmas at ``steps`` timesteps from ``t_max`` down to ``t_min``.

    ``uniform`` spacing takes equally spaced timesteps; ``quadratic`` takes the spacing of
    DiffPIR's official code, ``t_i = t_max - (t_max - t_min) * sqrt(i / (steps - 1))``: large jumps
    at high noise, small ones near the end. ``t_max`` (``t_min``) is the continuous timestep whose
    sigma is ``sigma_max`` (``sigma_min``), default the table's ends.

    Parameters
    ----------
    steps : int
        Number of sigmas before the final 0.
    spacing : {"quadratic", "uniform"}
        Timestep spacing.
    sigma_min, sigma_max : float, optional
        Range to restrict to (e.g. a prior's valid range).
    T, beta_start, beta_end : int, float, float
        The DDPM training schedule (Ho et al. 2020 defaults).

    Returns
    -------
    Tensor
        ``steps + 1`` decreasing float64 sigmas ending in 0.

    References
    ----------
    J. Ho, A. Jain and P. Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020.
    https://arxiv.org/abs/2006.11239

    Y. Zhu, K. Zhang, J. Liang, J. Cao, B. Wen, R. Timofte and L. Van Gool, "Denoising Diffusion
    Models for Plug-and-Play Image Restoration", CVPR Workshops (NTIRE) 2023.
    https://arxiv.org/abs/2305.08995 (the quadratic spacing)
    """
    _check(steps)
    table = ddpm_sigma_table(T, beta_start, beta_end)
    t_max = float(T - 1) if sigma_max is None else _t_of_sigma(table, sigma_max)
    t_min = 0.0 if sigma_min is None or sigma_min <= 0 else _t_of_sigma(table, sigma_min)
    t_min = min(t_min, t_max)
    u = torch.linspace(0.0, 1.0, steps, dtype=torch.float64) if steps > 1 else torch.zeros(1, dtype=torch.float64)
    if spacing == "uniform":
        frac = u
    elif spacing == "quadratic":
        frac = u.sqrt()
    else:
        raise UnknownNameError(f"unknown DDPM spacing {spacing!r}; use 'uniform' or 'quadratic'")
    t = t_max - (t_max - t_min) * frac
    return _finish(_interp_sigma(table, t))


def cosine(
    steps: int,
    sigma_min: float | None = None,
    sigma_max: float | None = None,
    s: float = 0.008,
    T: int = 1000,
) -> Tensor:
    """Cosine schedule of Nichol and Dhariwal (2021), ``abar(u) = cos^2((u + s) / (1 + s) * pi/2)``.

    Sigmas are uniform in ``u`` between the ``u`` of ``sigma_max`` and that of ``sigma_min``
    (defaults: the schedule's values at ``t = T - 1`` and ``t = 0`` of a ``T``-step model, with
    ``abar`` clipped as in the paper, ``beta <= 0.999``).

    Parameters
    ----------
    steps : int
        Number of sigmas before the final 0.
    sigma_min, sigma_max : float, optional
        Range to restrict to (e.g. a prior's valid range).
    s : float
        The paper's offset (0.008).
    T : int
        Number of timesteps of the model the default range is taken from.

    Returns
    -------
    Tensor
        ``steps + 1`` decreasing float64 sigmas ending in 0.

    Raises
    ------
    ValueRangeError
        If ``steps < 1``.

    References
    ----------
    A. Nichol and P. Dhariwal, "Improved Denoising Diffusion Probabilistic Models", ICML 2021.
    https://arxiv.org/abs/2102.09672
    """
    _check(steps)

    def sig(u: Tensor) -> Tensor:
        f = torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2 / math.cos(s / (1 + s) * math.pi / 2) ** 2
        return abar_to_sigma(f.clamp(min=1e-12, max=1.0))

    def u_of(sigma: float) -> float:
        abar = float(sigma_to_abar(sigma))
        f0 = math.cos(s / (1 + s) * math.pi / 2) ** 2
        return math.acos(math.sqrt(abar * f0)) * 2 / math.pi * (1 + s) - s

    u_hi = (T - 1) / T if sigma_max is None else min(u_of(sigma_max), (T - 1) / T)
    u_lo = 1.0 / T if sigma_min is None or sigma_min <= 0 else max(u_of(sigma_min), 0.0)
    u = torch.linspace(u_hi, min(u_lo, u_hi), steps, dtype=torch.float64)
    return _finish(sig(u))


def karras(
    steps: int, sigma_min: float = 0.002 / 2, sigma_max: float = 80.0 / 2, rho: float = 7.0
) -> Tensor:
    """Karras et al. (2022) schedule ``(smax^(1/rho) + i/(n-1) (smin^(1/rho) - smax^(1/rho)))^rho``.

    Defaults are EDM's 0.002 and 80 on [-1, 1], halved to [0, 1] units.

    Parameters
    ----------
    steps : int
        Number of sigmas before the final 0.
    sigma_min, sigma_max : float
        End points, ``0 < sigma_min <= sigma_max``, in [0, 1] units.
    rho : float
        Curvature: larger values put more steps at low noise (EDM uses 7).

    Returns
    -------
    Tensor
        ``steps + 1`` decreasing float64 sigmas ending in 0.

    Raises
    ------
    ValueRangeError
        If ``steps < 1`` or the range is empty.

    References
    ----------
    T. Karras, M. Aittala, T. Aila and S. Laine, "Elucidating the Design Space of
    Diffusion-Based Generative Models", NeurIPS 2022. https://arxiv.org/abs/2206.00364
    """
    _check(steps)
    if not 0 < sigma_min <= sigma_max:
        raise ValueRangeError(f"need 0 < sigma_min <= sigma_max, got {sigma_min}, {sigma_max}")
    u = torch.linspace(0.0, 1.0, steps, dtype=torch.float64) if steps > 1 else torch.zeros(1, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return _finish((hi + u * (lo - hi)) ** rho)


def geometric(steps: int, sigma_min: float = 0.01, sigma_max: float = 75 / 255) -> Tensor:
    """Geometric (log-uniform) sigmas from ``sigma_max`` to ``sigma_min`` — DPIR's annealing.

    Parameters
    ----------
    steps : int
        Number of sigmas before the final 0.
    sigma_min, sigma_max : float
        End points, ``0 < sigma_min <= sigma_max``, in [0, 1] units.

    Returns
    -------
    Tensor
        ``steps + 1`` decreasing float64 sigmas ending in 0.

    Raises
    ------
    ValueRangeError
        If ``steps < 1`` or the range is empty.

    References
    ----------
    K. Zhang, Y. Li, W. Zuo, L. Zhang, L. Van Gool and R. Timofte, "Plug-and-Play Image
    Restoration with Deep Denoiser Prior", IEEE TPAMI 44(10), 2022 (online 2021).
    https://doi.org/10.1109/TPAMI.2021.3088914 (https://arxiv.org/abs/2008.13751)
    """
    _check(steps)
    if not 0 < sigma_min <= sigma_max:
        raise ValueRangeError(f"need 0 < sigma_min <= sigma_max, got {sigma_min}, {sigma_max}")
    u = torch.linspace(0.0, 1.0, steps, dtype=torch.float64) if steps > 1 else torch.zeros(1, dtype=torch.float64)
    return _finish(torch.exp(math.log(sigma_max) + u * (math.log(sigma_min) - math.log(sigma_max))))


SCHEDULES = {"ddpm": ddpm, "cosine": cosine, "karras": karras, "geometric": geometric}


def get_schedule(
    name: str,
    steps: int,
    sigma_min: float | None = None,
    sigma_max: float | None = None,
    **kwargs: float | str,
) -> Tensor:
    """Build schedule ``name`` with ``steps`` sigmas restricted to ``[sigma_min, sigma_max]``.

    Parameters
    ----------
    name : {"ddpm", "cosine", "karras", "geometric"}
        A key of ``SCHEDULES``.
    steps : int
        Number of sigmas before the final 0.
    sigma_min, sigma_max : float, optional
        Range to restrict to; ``karras`` and ``geometric`` default to ``(0.001, 40)`` and
        ``(0.01, 75/255)``.
    **kwargs
        Passed on to the schedule (e.g. ``spacing`` for ``ddpm``, ``rho`` for ``karras``).

    Returns
    -------
    Tensor
        ``steps + 1`` decreasing float64 sigmas ending in 0.

    Raises
    ------
    UnknownNameError
        If ``name`` is not a known schedule.
    ValueRangeError
        If ``steps < 1`` or the range is empty.
    """
    if name not in SCHEDULES:
        raise UnknownNameError(f"unknown schedule {name!r}; known: {', '.join(SCHEDULES)}")
    if name in ("karras", "geometric"):
        defaults = {"karras": (0.001, 40.0), "geometric": (0.01, 75 / 255)}[name]
        lo = defaults[0] if sigma_min is None or sigma_min <= 0 else sigma_min
        hi = defaults[1] if sigma_max is None else sigma_max
        return SCHEDULES[name](steps, sigma_min=min(lo, hi), sigma_max=hi, **kwargs)
    return SCHEDULES[name](steps, sigma_min=sigma_min, sigma_max=sigma_max, **kwargs)
