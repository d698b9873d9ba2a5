"""Pieces shared by every solver: schedule clipping, initialisation, noise, progress."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import Tensor

from pnpdiff.errors import NonFiniteError, OperatorError, ValueRangeError
from pnpdiff.noise import NoiseModel
from pnpdiff.operators import GaussianBlur, Identity, Inpaint
from pnpdiff.priors.base import Prior, standard_normal

__all__ = [
    "Callback",
    "FiniteGuard",
    "check_finite_result",
    "clip_schedule",
    "initial_estimate",
    "randn_like",
    "steps_iter",
    "estimate_noise_level",
    "likelihood_prox",
]

#: ``callback(i, sigma, x, x0_hat)`` called once per step with the current iterate and estimate
Callback = Callable[[int, float, Tensor, Tensor], None]


def _sigma_text(sigma: float | Tensor) -> str:
    """A noise level for a message: ``0.1234`` or, one per image, ``0.01..0.3``."""
    if torch.is_tensor(sigma) and sigma.numel() > 1:
        lo, hi = float(sigma.min()), float(sigma.max())
        return f"{lo:.4g}" if lo == hi else f"{lo:.4g}..{hi:.4g}"
    return f"{float(sigma):.4g}"


class FiniteGuard(Prior):
    """``prior`` whose every denoiser call is checked for NaN and infinity, in one place for every
    solver and sampler (:func:`pnpdiff.solve`, :func:`pnpdiff.sample_posterior` and
    :func:`pnpdiff.sample` apply it once; the solvers' loops stay as their papers write them).

    After each call ``D(x, sigma)`` one check (one device synchronisation) looks at the input and
    the output: a non-finite output for a finite input is the prior's (the message names the prior
    and the sigma); a non-finite input is the iterate's -- the start (the initial estimate from the
    measurement) at the first call, else what the method's data step (the operator, ``lam``,
    ``zeta``, ``sigma_y``) made of the last estimate. Either raises
    :class:`~pnpdiff.errors.NonFiniteError` instead of carrying NaN on to the result.

    Parameters
    ----------
    prior : Prior
        The prior to check (its attributes, ``start`` and ``data_moments`` are the prior's own).
    method : str
        The solver or sampler, for the messages.
    operator : str, optional
        The operator's name, for the messages (``None``: an unconditional sampler).
    """

    def __init__(self, prior: Prior, method: str, operator: str | None = None) -> None:
        super().__init__()
        from pnpdiff.priors.runtime import forward_attributes

        self.prior = prior
        forward_attributes(self, prior)
        self.method = method
        self.operator = operator
        self.calls = 0

    def denoise(self, x: Tensor, sigma: float | Tensor, **kwargs: object) -> Tensor:
        out = self.prior.denoise(x, sigma, **kwargs)
        self.calls += 1
        if not (torch.is_tensor(out) and torch.is_tensor(x)):
            return out
        ok_in, ok_out = torch.stack((torch.isfinite(x).all(), torch.isfinite(out).all())).tolist()
        if ok_in and ok_out:
            return out
        at = f"sigma = {_sigma_text(sigma)}"
        name = getattr(self.prior, "name", type(self.prior).__name__)
        if not ok_in:
            if self.calls == 1:
                where = (f"the starting point of {self.method} is not finite (NaN or inf) at {at}: "
                         + (f"the initial estimate from the measurement through {self.operator} overflowed; "
                            "check sigma_y and the measurement" if self.operator else "check the schedule"))
            else:
                where = (f"the {self.method} iterate became non-finite (NaN or inf) before the denoiser call at "
                         f"{at} (call {self.calls}): "
                         + (f"the data step with {self.operator} produced it; check sigma_y and the "
                            "method's options (lam, zeta, ...)" if self.operator else "check the schedule"))
            raise NonFiniteError(where)
        raise NonFiniteError(
            f"the prior '{name}' returned NaN or inf at {at} (denoiser call {self.calls} of {self.method}) "
            "for a finite input: check the prior (its weights, the noise levels it was trained for)"
        )

    def start(self, *args: object, **kwargs: object) -> Tensor:
        return self.prior.start(*args, **kwargs)

    def data_moments(self, like: Tensor) -> tuple[Tensor, Tensor]:
        return self.prior.data_moments(like)


def check_finite_result(out: Tensor, method: str, operator: str | None = None) -> Tensor:
    """``out`` itself, or :class:`~pnpdiff.errors.NonFiniteError` if it holds NaN or inf (what the
    method's last step made of finite denoiser outputs: the operator or the options)."""
    if bool(torch.isfinite(out).all()):
        return out
    via = f" (its last data step with {operator}; check sigma_y and the method's options)" if operator else ""
    raise NonFiniteError(f"the {method} result holds NaN or inf although every denoiser output was finite{via}; "
                         "nothing is returned")


def clip_schedule(sigmas: Tensor, prior: Prior) -> Tensor:
    """Restrict a decreasing schedule (ending in 0) to the prior's valid range.

    The solver starts at ``min(sigmas[0], prior.sigma_max)``: values above ``sigma_max`` are
    dropped and replaced by one step at ``sigma_max``. The trailing 0 is kept (appended if absent).

    Parameters
    ----------
    sigmas : Tensor or sequence of float
        Non-negative, non-increasing noise levels in [0, 1] units (see :mod:`pnpdiff.schedules`).
    prior : Prior
        The prior whose ``sigma_max`` bounds the schedule.

    Returns
    -------
    Tensor
        The clipped float64 schedule, ending in 0.

    Raises
    ------
    ValueRangeError
        If ``sigmas`` is empty, increasing somewhere or negative.
    """
    sig = torch.as_tensor(sigmas, dtype=torch.float64).flatten()
    if sig.numel() == 0:
        raise ValueRangeError("the sigma schedule is empty")
    if bool((sig[1:] > sig[:-1]).any()) or bool((sig < 0).any()):
        raise ValueRangeError("sigma schedules must be non-negative and decreasing")
    if float(sig[-1]) != 0.0:
        sig = torch.cat([sig, sig.new_zeros(1)])
    smax = float(prior.sigma_max)
    if float(sig[0]) > smax:
        sig = torch.cat([sig.new_tensor([smax]), sig[sig < smax]])
    return sig


def randn_like(x: Tensor, generator: torch.Generator | Sequence[torch.Generator] | None) -> Tensor:
    """Standard normal noise shaped like ``x`` from ``generator`` (on ``x``'s device).

    ``generator`` may be a sequence of generators, one per image of the batch: image ``b`` then
    draws its noise from ``generator[b]`` alone, so its result does not depend on which other
    images share its batch (what batch runs over folders rely on).
    """
    return standard_normal(x.shape, generator, x.device, x.dtype)


def _smooth_fill(y: Tensor, mask: Tensor, scales: Iterable[float] = (1, 2, 4, 8, 16, 32)) -> Tensor:
    """Fill pixels where ``mask == 0`` by normalised Gaussian convolution at growing scales."""
    m = mask.expand_as(y).to(y.dtype)
    out = y * m
    filled = m.clone()
    for s in scales:
        blur = GaussianBlur(float(s), kernel_size=int(2 * round(3 * s) + 1), allow_wrap=True)  # circular, any size
        num, den = blur(y * m), blur(m)
        est = num / den.clamp_min(1e-8)
        new = (den > 1e-3) & (filled < 0.5)
        out = torch.where(new, est, out)
        filled = torch.where(new, torch.ones_like(filled), filled)
        if bool((filled > 0.5).all()):
            break
    fallback = (y * m).flatten(2).sum(-1) / m.flatten(2).sum(-1).clamp_min(1)
    return torch.where(filled > 0.5, out, fallback[..., None, None].expand_as(out))


def initial_estimate(y: Tensor, operator: object, sigma_y: float, sigma_start: float) -> Tensor:
    """A first estimate of ``x`` from the measurement, used to start every solver.

    * masks (an operator with a ``mask`` attribute, e.g. :class:`~pnpdiff.operators.Inpaint`):
      the observed pixels, holes filled smoothly by normalised convolution;
    * any other linear operator: the regularised least-squares solution
      ``argmin_x ||A x - y||^2 + rho ||x - c||^2`` with ``c`` the mean of ``A^T y / A^T 1`` and
      ``rho = (sigma_y^2 + 1e-4) / sigma_start^2`` — Wiener-like for blur, the pseudo-inverse
      plus a constant on the null space for decimation (``A^+ y`` itself amplifies noise);
    * a nonlinear callable: :class:`~pnpdiff.OperatorError` (the solvers that accept one start
      from the prior instead).

    Parameters
    ----------
    y : Tensor
        Measurement, shape of the operator's output.
    operator : LinearOperator
        The measurement operator (anything with ``prox`` and ``adjoint``, or a ``mask``).
    sigma_y : float
        Measurement noise level in [0, 1] units.
    sigma_start : float
        Noise level the solver starts at; sets the regularisation ``rho``.

    Returns
    -------
    Tensor
        The estimate, shape of the operator's input.

    Raises
    ------
    OperatorError
        If ``operator`` is not linear (no ``prox`` / ``adjoint``).
    """
    mask = getattr(operator, "mask", None)
    if torch.is_tensor(mask):
        return _smooth_fill(y, mask.to(device=y.device, dtype=y.dtype))
    if hasattr(operator, "prox") and hasattr(operator, "adjoint"):
        aty = operator.adjoint(y)
        ones = operator.adjoint(operator(torch.ones_like(aty)))
        dims = tuple(range(2, aty.ndim)) if aty.ndim > 2 else (1,)  # per channel, or per vector
        c = aty.sum(dims, keepdim=True) / ones.sum(dims, keepdim=True).clamp_min(1e-8)
        c = c.expand_as(aty).contiguous()
        rho = (sigma_y**2 + 1e-4) / sigma_start**2
        return operator.prox(c, y, rho)
    raise OperatorError(
        f"{type(operator).__name__} is not a linear operator (forward, adjoint, prox); this method "
        "needs one: pass a pnpdiff operator, or use method='dps' or 'reddiff' for a nonlinear forward model"
    )


def estimate_noise_level(y: Tensor) -> float:
    """Estimate the standard deviation of white Gaussian noise in ``y`` (Donoho's MAD rule).

    The median absolute value of the finest diagonal Haar wavelet coefficients divided by
    0.6745, averaged over channels; biased upwards on very textured images.

    Parameters
    ----------
    y : Tensor
        Noisy image(s), shape ``(..., H, W)``.

    Returns
    -------
    float
        The estimated noise standard deviation, in the units of ``y`` (0 for images smaller than
        2x2).

    References
    ----------
    D. L. Donoho and I. M. Johnstone, "Ideal spatial adaptation by wavelet shrinkage",
    Biometrika 81(3), 1994. https://doi.org/10.1093/biomet/81.3.425
    """
    if y.shape[-1] < 2 or y.shape[-2] < 2:
        return 0.0
    h, w = y.shape[-2] // 2 * 2, y.shape[-1] // 2 * 2
    v = y[..., :h, :w]
    d = (v[..., 0::2, 0::2] - v[..., 0::2, 1::2] - v[..., 1::2, 0::2] + v[..., 1::2, 1::2]) / 2
    d = d[d != 0] if bool((d == 0).float().mean() > 0.3) else d  # masked measurements
    if d.numel() == 0:
        return 0.0
    return float(d.abs().flatten().median() / 0.6745)


def steps_iter(n: int, progress: bool, desc: str) -> Iterable[int]:
    """``range(n)``, wrapped in a tqdm progress bar when ``progress`` is true; not inside another
    bar (a batch run's) when stderr is not a terminal, where a second bar can only be drawn with
    cursor escapes that a log file or a pipe keeps as garbage."""
    if not progress:
        return range(n)
    import sys

    from tqdm.auto import tqdm

    if len(getattr(tqdm, "_instances", ())) and not _is_terminal(sys.stderr):
        return range(n)
    return tqdm(range(n), desc=desc, leave=False)


def _is_terminal(stream: object) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no stream, a closed one
        return False


def likelihood_prox(operator: object, noise: NoiseModel, x: Tensor, y: Tensor, r: float, iters: int = 30,
                    tol: float = 1e-4) -> Tensor:
    """``argmin_z NLL(y | A z) + r / 2 ||z - x||^2``: the data step of the splitting solvers for a
    noise model other than Gaussian (:class:`~pnpdiff.noise.NoiseModel`; for Gaussian noise at
    ``sigma_y`` it is ``operator.prox(x, y, r sigma_y^2)``).

    Closed form for the identity and an :class:`~pnpdiff.operators.Inpaint` mask (the likelihood
    separates over pixels: :meth:`~pnpdiff.noise.NoiseModel.prox`). Otherwise ADMM on the split
    ``u = A z`` (Figueiredo and Bioucas-Dias, "Restoration of Poissonian images using alternating
    direction optimization", IEEE TIP 2010)::

        z = argmin ||A z - (u - w)||^2 + (r / beta) ||z - x||^2      (operator.prox)
        u = argmin NLL(y | u) + beta / 2 ||u - (A z + w)||^2          (closed form, per pixel)
        w = w + A z - u

    with ``beta = 1 / mean variance`` (the likelihood's curvature, so both terms weigh alike),
    warm-started at ``u = A x``, until ``||A z - u|| <= tol ||u||`` or ``iters`` rounds.
    """
    if isinstance(operator, Identity):
        return noise.prox(x, y, r)
    if isinstance(operator, Inpaint) and not operator.soft:
        return noise.prox(x, y, r, operator.mask.expand_as(x))
    beta = 1.0 / max(float(noise.variance(y).mean()), 1e-8)
    z = x
    u = operator(x)
    w = torch.zeros_like(u)
    for _ in range(int(iters)):
        z = operator.prox(x, u - w, r / beta)
        az = operator(z)
        u = noise.prox(az + w, y, beta)
        w = w + az - u
        if float((az - u).norm()) <= tol * max(float(u.norm()), 1e-12):
            break
    return z
