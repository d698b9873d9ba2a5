"""MMSE denoising: one call of the prior's denoiser at the measurement's noise level (Tweedie)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from pnpdiff.errors import OperatorError
from pnpdiff.priors.base import Prior
from pnpdiff.solvers.common import Callback
from pnpdiff.solvers.descriptor import SOLVERS, SolverInfo

__all__ = ["mmse"]


@torch.no_grad()
def mmse(
    y: Tensor,
    operator: Any,
    prior: Prior,
    sigmas: Tensor | None,
    sigma_y: float,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    progress: bool = False,
) -> Tensor:
    r"""Posterior-mean (MMSE) denoising: ``x_hat = D(y, sigma_y)``, one call of the prior.

    For Gaussian denoising, ``y = x + sigma_y n`` with ``n ~ N(0, I)``, the measurement *is* a
    sample of the prior's noised marginal ``p_{sigma_y}``, and the posterior mean is given by
    Tweedie's formula (Robbins 1956; Miyasawa 1961; Efron 2011)::

        E[x | y] = y + sigma_y^2 grad log p_{sigma_y}(y) = D(y, sigma_y)

    where ``D`` is the MMSE denoiser a prior is (see :class:`~pnpdiff.priors.base.Prior`). The
    posterior mean minimises the expected squared error, hence maximises the expected PSNR, over
    every estimator of ``x`` from ``y``: no schedule of further denoiser calls can beat it in
    expectation when ``D`` is the exact MMSE denoiser. A learned denoiser only approximates it;
    ``docs/denoising.md`` measures this single call against schedules that start at ``sigma_y``
    on photos: DiffPIR and DPIR never beat it; a 3-step probability-flow ODE from ``y`` did on a
    few rows, by at most 0.14 dB, and lost on the rest.

    ``sigma_y`` below the prior's ``sigma_min`` is raised to it; above ``sigma_max`` the
    denoiser is still called at ``sigma_y`` (``pnpdiff.solve`` warns): the posterior mean at any
    other level is the wrong estimate for an exact denoiser, and FFDNet, the ``"natural"`` prior
    trained up to 75/255 only, extrapolates well — clipping its noise level to 75/255 cost 1.9 to
    2.7 dB at ``sigma_y = 0.35`` and 8 to 10 dB at 0.5 (``docs/denoising.md``). ``sigma_y = 0``
    returns ``y`` unchanged (a noiseless measurement is its own posterior mean).

    Parameters
    ----------
    y : Tensor
        Noisy image ``x + n``, ``n ~ N(0, sigma_y^2 I)``, shape ``(B, C, H, W)`` (or whatever
        shape the prior accepts).
    operator : pnpdiff.operators.Identity
        Must be the identity: this is the denoising method. Any other operator raises
        :class:`~pnpdiff.errors.OperatorError`.
    prior : Prior
        Denoiser ``D(x, sigma)``.
    sigmas : Tensor or None
        Ignored: the one noise level used is ``sigma_y``. Accepted so that ``mmse`` has the same
        signature as every other solver (``pnpdiff.solve`` passes a schedule to all of them).
    sigma_y : float
        Measurement noise level in [0, 1] units, ``>= 0``.
    generator : torch.Generator, optional
        Unused (the estimate is deterministic); accepted for a uniform interface.
    callback : callable, optional
        ``callback(0, sigma, y, x_hat)`` once, with the noise level actually used.
    progress : bool
        Unused (a single step has no progress to show).

    Returns
    -------
    Tensor
        ``prior.denoise(y, max(sigma_y, prior.sigma_min))``, or ``y`` when
        ``sigma_y == 0``; not clamped to [0, 1] (``pnpdiff.solve`` clamps).

    Raises
    ------
    OperatorError
        If ``operator`` is not a :class:`pnpdiff.operators.Identity`.

    References
    ----------
    H. Robbins, "An empirical Bayes approach to statistics", Proc. Third Berkeley Symposium on
    Mathematical Statistics and Probability, 1956.

    K. Miyasawa, "An empirical Bayes estimator of the mean of a normal population", Bull. Inst.
    Internat. Statist. 38, 1961.

    B. Efron, "Tweedie's formula and selection bias", J. Amer. Statist. Assoc. 106, 2011.
    https://doi.org/10.1198/jasa.2011.tm11181
    """
    from pnpdiff.operators import Identity

    if not isinstance(operator, Identity):
        others = ", ".join(repr(m) for m in sorted(SOLVERS) if m not in ("mmse", "diffpir"))
        raise OperatorError(
            f"method 'mmse' is the denoising method and needs operator=Identity(), got "
            f"{type(operator).__name__}; for other operators use method='diffpir' (the default) or {others}"
        )
    s = float(sigma_y)
    if s < 0:
        from pnpdiff.errors import ValueRangeError

        raise ValueRangeError(f"sigma_y must be >= 0, got {s}")
    if s == 0.0:
        out = y
    else:
        s = max(s, float(getattr(prior, "sigma_min", 0.0) or 0.0))
        out = prior.denoise(y, s)
    if callback is not None:
        callback(0, s, y, out)
    return out


#: one denoiser call at sigma_y (docs/denoising.md): a point estimate
INFO = SolverInfo("mmse", mmse, defaults={("*", "*"): {"steps": 1}}, memory_cost=(2, 4), point_estimate=True)
