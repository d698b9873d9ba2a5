r"""Calibration without ground truth: choose a solver's settings from ``y``, ``A`` and ``sigma_y`` alone.

The measurement is ``y = A x + n`` with white Gaussian noise ``n ~ N(0, sigma_y^2 I)``; a solver with
fixed settings (and a fixed seed) is a deterministic map ``f: y -> x_hat``. Three ways to score
``f`` without knowing ``x``:

* **the discrepancy principle** (Morozov 1966): the residual ``||y - A x_hat||^2`` of a good
  estimate is about what the noise alone leaves, ``m sigma_y^2`` (``m`` measurements).
  :func:`discrepancy` returns the ratio; a candidate is chosen whose ratio is closest to
  ``tau`` (1 by default: the expected residual of the truth itself. Morozov's own ``tau`` is
  slightly above 1 as a safety margin against over-fitting; a denoiser prior rarely over-fits, and
  ``tau = 1`` keeps the rule free of a tuned constant);
* **SURE** (Stein 1981): an unbiased estimate of the mean squared error of ``f`` from ``f(y)`` and
  the divergence of ``f``, which :func:`mc_divergence` computes by random probes (Ramani, Blu and
  Unser 2008) for any black-box ``f``: :func:`sure_denoise` (``A = I``), :func:`sure_predicted`
  (the error seen through ``A``) and :func:`sure_projected` (Eldar's generalized SURE for the
  error on the part of the image that ``A`` measures);
* :func:`select` runs every candidate setting, scores it, and returns the best with the reason.

Every score is computed in float64 and is per image of the batch; everything stays on the
tensors' device.

References
----------
C. M. Stein, "Estimation of the mean of a multivariate normal distribution", *The Annals of
Statistics* 9(6), 1981, https://doi.org/10.1214/aos/1176345632. -- SURE.

S. Ramani, T. Blu and M. Unser, "Monte-Carlo SURE: a black-box optimization of regularization
parameters for general denoising algorithms", *IEEE Trans. Image Processing* 17(9), 2008,
https://doi.org/10.1109/TIP.2008.2001404. -- the divergence by random probes.

Y. C. Eldar, "Generalized SURE for exponential families: applications to regularization",
*IEEE Trans. Signal Processing* 57(2), 2009, https://arxiv.org/abs/0804.3010. -- SURE for ``y = A x + n``.

R. Giryes, M. Elad and Y. C. Eldar, "The projected GSURE for automatic parameter tuning in
iterative shrinkage methods", *Applied and Computational Harmonic Analysis* 30(3), 2011,
https://arxiv.org/abs/1003.3985. -- the projected error for ill-posed and rectangular ``A``.

V. A. Morozov, "On the solution of functional equations by the method of regularization",
*Soviet Mathematics Doklady* 7, 1966. -- the discrepancy principle.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import Tensor

from pnpdiff import checks
from pnpdiff.errors import NonFiniteError, OperatorError, ShapeError, ValueRangeError
from pnpdiff.operators import Composition, Identity, Inpaint

__all__ = [
    "DEFAULT_PROBES",
    "DEFAULT_RCOND",
    "EPS_FACTOR",
    "CRITERIA",
    "Divergence",
    "SureEstimate",
    "Calibration",
    "discrepancy",
    "mc_divergence",
    "sure_denoise",
    "sure_predicted",
    "sure_projected",
    "select",
]

#: random probes per candidate: 2 is the fewest that give a standard error of the divergence
DEFAULT_PROBES = 2
#: singular values below ``DEFAULT_RCOND * s_max`` count as unmeasured in :func:`sure_projected`
#: (the same -20 dB line as the informative fraction of :mod:`pnpdiff.problem`)
DEFAULT_RCOND = 0.1
#: the default probe size ``eps = EPS_FACTOR * sigma_y`` (see :func:`mc_divergence`)
EPS_FACTOR = 0.1
#: the criteria of :func:`select`
CRITERIA = ("sure", "denoise", "predicted", "projected", "discrepancy")
_NOISES = ("rademacher", "gaussian")

Map = Callable[[Tensor], Tensor]


class Divergence(NamedTuple):
    """The Monte-Carlo divergence of a map, per image (what :func:`mc_divergence` returns).

    Parameters
    ----------
    value : Tensor
        The mean over the probes, float64, shape ``(B,)``.
    stderr : Tensor
        Its standard error (the probes' standard deviation over ``sqrt(probes)``); NaN with one
        probe, which gives no spread to measure.
    calls : int
        How many times the map was called (``probes``, plus one when ``fy`` was not given).
    """

    value: Tensor
    stderr: Tensor
    calls: int


@dataclass(frozen=True)
class SureEstimate:
    """A SURE estimate of the squared error of ``f(y)``, per image.

    Parameters
    ----------
    estimate : Tensor
        float64, shape ``(B,)``, in per-entry MSE units (the squared error summed, divided by the
        number of entries it is summed over: ``n`` pixels for ``denoise`` and ``projected``, ``m``
        observed measurements for ``predicted``).
    stderr : Tensor
        Standard error of ``estimate`` from the random probes (NaN with one probe). The noise in
        ``y`` itself adds a spread that no single measurement can show.
    divergence : Tensor
        The divergence term's Monte-Carlo mean (float64, ``(B,)``).
    calls : int
        Calls of ``f`` made.
    kind : str
        ``"denoise"``, ``"predicted"`` or ``"projected"``.
    """

    estimate: Tensor
    stderr: Tensor
    divergence: Tensor
    calls: int
    kind: str


@dataclass
class Calibration:
    """What :func:`select` chose, per image of the batch, and why.

    Parameters
    ----------
    index : list of int
        For each image, the position of the chosen candidate in ``candidates``.
    options : list of dict
        For each image, the chosen candidate's options.
    x_hat : Tensor
        The chosen estimates, assembled image by image (each image from its own candidate).
    scores : Tensor
        float64, shape ``(K, B)``: the criterion's value of each candidate for each image (a SURE
        estimate in MSE units; for ``"discrepancy"``, the ratio of :func:`discrepancy`).
    stderr : Tensor
        float64, ``(K, B)``: the probes' standard error of ``scores`` (zeros for the discrepancy).
    discrepancy : Tensor
        float64, ``(K, B)``: the discrepancy ratio of every candidate (always computed; it is free).
    criterion : str
        The criterion used (``"sure"`` resolved to ``"denoise"``, ``"projected"`` or ``"predicted"``).
    reason : str
        One line that says what was chosen and why.
    calls : int
        Calls of ``run`` made: ``K`` for the discrepancy, ``K * (1 + probes)`` for SURE.
    candidates : list of dict
        The candidates, in order.
    """

    index: list[int]
    options: list[dict[str, Any]]
    x_hat: Tensor
    scores: Tensor
    stderr: Tensor
    discrepancy: Tensor
    criterion: str
    reason: str
    calls: int
    candidates: list[dict[str, Any]] = field(default_factory=list)


# -- helpers -----------------------------------------------------------------------------------
def _tensor(y: Any, name: str = "y") -> Tensor:
    if not torch.is_tensor(y):
        raise ShapeError(f"{name} must be a torch.Tensor of shape (B, ...), got {type(y).__name__}")
    if y.ndim < 2 or y.numel() == 0:
        raise ShapeError(f"{name} must have shape (B, ...) with at least one entry per image, got {tuple(y.shape)}")
    if not y.is_floating_point():
        raise ShapeError(
            f"{name} must be a floating-point tensor, got dtype {y.dtype}; convert it, e.g. {name}.float()"
        )
    if not bool(torch.isfinite(y).all()):
        raise ValueRangeError(f"{name} must be finite, got NaN or infinite values (shape {tuple(y.shape)})")
    return y


def _sigma(sigma_y: Any) -> float:
    return checks.real(sigma_y, "sigma_y", minimum=0.0, exclusive_minimum=True, maximum=checks.MAX_SIGMA_Y)


def _eps(eps: Any, sigma: float) -> float:
    if eps is None:
        return EPS_FACTOR * sigma
    return checks.real(eps, "eps", minimum=0.0, exclusive_minimum=True)


def _probes(probes: Any) -> int:
    return checks.int_(probes, "probes", minimum=1, maximum=checks.MAX_PARTICLES)


def _sq(v: Tensor) -> Tensor:
    """Per-image sum of squares in float64, shape ``(B,)``."""
    v = v.flatten(1).to(torch.float64)
    return (v * v).sum(1)


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """Per-image inner product in float64, shape ``(B,)``."""
    return (a.flatten(1).to(torch.float64) * b.flatten(1).to(torch.float64)).sum(1)


def _observed(operator: Any, y: Tensor) -> Tensor | None:
    """The 0/1 weight of the measurement entries that carry data (``None``: all of them).

    A mask operator (:class:`~pnpdiff.operators.Inpaint`, also as the outer factor of a
    composition) keeps the image layout with zeros at the missing pixels, while the noise of a
    recipe's measurement covers every entry: only the observed entries are measurements.
    """
    op = operator
    while isinstance(op, Composition):
        op = op.outer
    if isinstance(op, Inpaint):
        w = (op.mask != 0).to(device=y.device, dtype=y.dtype)
        try:
            return torch.broadcast_to(w, y.shape)
        except RuntimeError:
            raise ShapeError(
                f"the measurement y of shape {tuple(y.shape)} does not fit the mask of shape {tuple(op.mask.shape)}"
            ) from None
    return None


def _count(weight: Tensor | None, y: Tensor) -> Tensor:
    """Measurements per image, float64 ``(B,)``."""
    if weight is None:
        return torch.full((y.shape[0],), float(y[0].numel()), dtype=torch.float64, device=y.device)
    return weight.flatten(1).to(torch.float64).sum(1)


def _draw(shape: torch.Size, noise: str, generator: torch.Generator, like: Tensor) -> Tensor:
    """A probe of ``shape`` on the generator's device, then moved to ``like``'s device and dtype."""
    dev = generator.device
    if noise == "rademacher":
        b = torch.randint(0, 2, shape, generator=generator, device=dev).to(like.dtype) * 2 - 1
    else:
        b = torch.randn(shape, generator=generator, device=dev, dtype=like.dtype)
    return b.to(like.device)


def _generator(generator: torch.Generator | None) -> torch.Generator:
    if generator is None:
        return torch.Generator().manual_seed(0)
    if not isinstance(generator, torch.Generator):
        raise ValueRangeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    return generator


def _check_out(out: Any, want: torch.Size | None, what: str) -> Tensor:
    if not torch.is_tensor(out):
        raise ShapeError(f"{what} must return a torch.Tensor, got {type(out).__name__}")
    if want is not None and out.shape != want:
        raise ShapeError(f"{what} returned shape {tuple(out.shape)}, expected {tuple(want)} (as for the unperturbed y)")
    if not bool(torch.isfinite(out).all()):
        raise NonFiniteError(f"{what} returned NaN or infinite values (shape {tuple(out.shape)})")
    return out


def _probe_samples(
    f: Map,
    y: Tensor,
    fy: Tensor,
    eps: float,
    probes: int,
    generator: torch.Generator,
    noise: str,
    weight: Tensor | None = None,
    left: Callable[[Tensor], Tensor] | None = None,
    what: str = "f",
) -> Tensor:
    """Per-probe divergence samples ``left(b) . (f(y + eps b) - f(y)) / eps``, float64 ``(probes, B)``.

    ``b`` is drawn in the shape of ``y`` (times ``weight`` when given); ``left`` maps it to the
    space of ``f``'s output (default: ``b`` itself, which needs ``f(y)`` of ``y``'s shape).
    """
    out = []
    for _ in range(probes):
        b = _draw(y.shape, noise, generator, y)
        if weight is not None:
            b = b * weight
        fb = _check_out(f(y + eps * b), fy.shape, what)
        lb = b if left is None else left(b)
        if lb.numel() != fb.numel():
            raise ShapeError(
                f"{what} must return a tensor with the entries of the probe's image, got shape {tuple(fb.shape)} "
                f"for a probe of shape {tuple(lb.shape)}"
            )
        # the difference in the map's own dtype (close numbers: exact), the reduction in float64
        out.append(_dot(lb, fb - fy) / eps)
    return torch.stack(out)


def _mean_se(samples: Tensor) -> tuple[Tensor, Tensor]:
    k = samples.shape[0]
    mean = samples.mean(0)
    if k < 2:
        return mean, torch.full_like(mean, math.nan)
    return mean, samples.std(0, correction=1) / math.sqrt(k)


# -- the discrepancy principle -----------------------------------------------------------------
def discrepancy(y: Tensor, operator: Callable[[Tensor], Tensor], x_hat: Tensor, sigma_y: float) -> Tensor:
    r"""Morozov's discrepancy ratio ``||y - A x_hat||^2 / (m sigma_y^2)``, per image.

    For the truth ``x`` itself the expected ratio is 1 (the residual is the noise); an estimate that
    fits the data too closely (it reproduces the noise) has a ratio below 1, one that is too smooth
    a ratio above 1. The discrepancy principle chooses the setting whose ratio is closest to
    ``tau`` (:func:`select` with ``criterion="discrepancy"``, ``tau = 1`` by default).

    ``m`` is the number of measurements of one image: for a mask
    (:class:`~pnpdiff.operators.Inpaint`, which keeps the image layout with zeros at the missing
    pixels) only the observed entries (the mask broadcast over the channels) count, and the
    residual is summed over them only, so the noise a measurement may hold at missing pixels is
    never counted.

    Parameters
    ----------
    y : Tensor
        The measurement, ``(B, ...)``.
    operator : callable
        ``A`` (a pnpdiff operator or any callable ``x -> A x``).
    x_hat : Tensor
        The estimate, whose ``A(x_hat)`` has the shape of ``y``.
    sigma_y : float
        The noise level, ``> 0``.

    Returns
    -------
    Tensor
        float64, shape ``(B,)``.

    Raises
    ------
    ShapeError
        If ``A(x_hat)`` does not have the shape of ``y``.
    ValueRangeError
        If ``sigma_y`` is not a positive number, or ``y`` is not finite.

    References
    ----------
    V. A. Morozov, "On the solution of functional equations by the method of regularization",
    *Soviet Mathematics Doklady* 7, 1966.
    """
    y = _tensor(y)
    sigma = _sigma(sigma_y)
    ax = operator(_tensor(x_hat, "x_hat"))
    if not torch.is_tensor(ax) or ax.shape != y.shape:
        shape = tuple(ax.shape) if torch.is_tensor(ax) else type(ax).__name__
        raise ShapeError(f"A(x_hat) has shape {shape}, but the measurement y has shape {tuple(y.shape)}")
    w = _observed(operator, y)
    r = y - ax if w is None else (y - ax) * w
    return _sq(r) / (_count(w, y) * sigma**2)


# -- the divergence by random probes -----------------------------------------------------------
def mc_divergence(
    f: Map,
    y: Tensor,
    eps: float,
    probes: int = DEFAULT_PROBES,
    generator: torch.Generator | None = None,
    *,
    fy: Tensor | None = None,
    noise: str = "rademacher",
) -> Divergence:
    r"""Divergence ``div f(y) = sum_i d f_i / d y_i`` of a black-box map, by random probes.

    Ramani, Blu and Unser (2008): for a probe ``b`` with ``E[b b^T] = I`` (Rademacher entries
    ``+-1``, or standard normal),

    .. math::  \operatorname{div} f(y) \approx \frac{1}{K} \sum_{k=1}^K
               b_k^T \, \frac{f(y + \varepsilon b_k) - f(y)}{\varepsilon},

    one call of ``f`` per probe (plus ``f(y)``, reused when given as ``fy``). Rademacher probes
    have the smaller variance (for a linear ``f = W``, ``b^T W b = tr W + sum_{i != j} W_ij b_i b_j``:
    the diagonal contributes no spread, and a diagonal ``W`` is estimated exactly).

    Choosing ``eps``: the finite difference must be a *local* derivative, so ``eps`` has to be
    small against the noise level (Ramani et al., Sec. IV: the estimate is insensitive to ``eps``
    over a wide range once it is small against ``sigma``), but large against the arithmetic's
    rounding (a float32 map changes by ``~1e-7`` per unit, which ``b^T`` divides by ``eps`` and
    averages out over the pixels). The SURE functions use ``eps = 0.1 sigma_y``
    (:data:`EPS_FACTOR`). A map ending in clamping to ``[0, 1]`` (every pnpdiff solve) is
    piecewise smooth: its derivative is 0 on the clamped pixels, and the difference quotient is
    exact there unless ``y`` lies within ``eps`` of the kink; with ``eps = 0.1 sigma_y`` those
    pixels are few and their error averages out (its first-order bias vanishes).

    Parameters
    ----------
    f : callable
        A *deterministic* map ``y -> f(y)`` with output of ``y``'s shape (for a solver: fix its
        seed inside ``f``, so that every call draws the same noise).
    y : Tensor
        The point, ``(B, ...)``; each image gets its own divergence.
    eps : float
        The probe size, ``> 0``, in the units of ``y``.
    probes : int
        Number of probes ``K >= 1``.
    generator : torch.Generator, optional
        Draws the probes (default: a CPU generator seeded 0, so results repeat).
    fy : Tensor, optional
        ``f(y)`` when already computed (saves one call).
    noise : str
        ``"rademacher"`` (default) or ``"gaussian"``.

    Returns
    -------
    Divergence
        ``(value, stderr, calls)``: float64 ``(B,)`` divergence and standard error (NaN for one
        probe), and the calls of ``f`` made.

    Raises
    ------
    ValueRangeError
        If ``eps`` or ``probes`` is out of range, ``noise`` unknown, or ``y`` not finite.
    ShapeError
        If ``f`` returns a shape other than ``y``'s.

    References
    ----------
    S. Ramani, T. Blu and M. Unser, "Monte-Carlo SURE: a black-box optimization of regularization
    parameters for general denoising algorithms", *IEEE Trans. Image Processing* 17(9), 2008,
    https://doi.org/10.1109/TIP.2008.2001404.
    """
    y = _tensor(y)
    eps = checks.real(eps, "eps", minimum=0.0, exclusive_minimum=True)
    probes = _probes(probes)
    noise = checks.choice(noise, "noise", _NOISES)
    g = _generator(generator)
    calls = probes
    if fy is None:
        fy = _check_out(f(y), None, "f")
        calls += 1
    if fy.numel() != y.numel():
        raise ShapeError(
            f"f must return a tensor of y's shape {tuple(y.shape)} for a divergence, got {tuple(fy.shape)}"
        )
    mean, se = _mean_se(_probe_samples(f, y, fy, eps, probes, g, noise))
    return Divergence(mean, se, calls)


# -- SURE --------------------------------------------------------------------------------------
def _common(y: Any, sigma_y: Any, eps: Any, probes: Any, noise: Any, generator: Any
            ) -> tuple[Tensor, float, float, int, str, torch.Generator]:
    y = _tensor(y)
    sigma = _sigma(sigma_y)
    return y, sigma, _eps(eps, sigma), _probes(probes), checks.choice(noise, "noise", _NOISES), _generator(generator)


def sure_denoise(
    y: Tensor,
    f: Map,
    sigma_y: float,
    *,
    fy: Tensor | None = None,
    probes: int = DEFAULT_PROBES,
    eps: float | None = None,
    generator: torch.Generator | None = None,
    noise: str = "rademacher",
) -> SureEstimate:
    r"""Stein's unbiased risk estimate of a denoiser's MSE (``A = I``), per image.

    For ``y = x + n``, ``n ~ N(0, sigma^2 I_n)`` and a weakly differentiable ``f``, Stein's lemma
    ``E[n^T f(y)] = sigma^2 E[div f(y)]`` gives

    .. math::  \mathrm{SURE} = \frac{\|y - f(y)\|^2}{n} - \sigma^2 + \frac{2\sigma^2}{n}\,\operatorname{div} f(y),
               \qquad E[\mathrm{SURE}] = E\,\frac{\|f(y) - x\|^2}{n},

    with the divergence by random probes (:func:`mc_divergence`, ``eps = 0.1 sigma_y`` by default).
    Cost: ``probes`` calls of ``f``, plus one unless ``fy`` is given.

    Parameters
    ----------
    y : Tensor
        The noisy images, ``(B, ...)``.
    f : callable
        The deterministic denoiser ``y -> x_hat`` (same shape).
    sigma_y : float
        The noise level, ``> 0``.
    fy : Tensor, optional
        ``f(y)``, when already computed.
    probes : int
        Random probes of the divergence (``>= 1``; 2 by default, the fewest with a standard error).
    eps : float, optional
        Probe size (default ``0.1 * sigma_y``).
    generator : torch.Generator, optional
        Draws the probes (default: seeded 0).
    noise : str
        ``"rademacher"`` or ``"gaussian"`` probes.

    Returns
    -------
    SureEstimate
        The estimate of the MSE per pixel, its probe standard error, the divergence, the calls.

    Raises
    ------
    ValueRangeError
        If ``sigma_y``, ``eps`` or ``probes`` is out of range.
    ShapeError
        If ``f`` does not return ``y``'s shape.

    References
    ----------
    C. M. Stein, "Estimation of the mean of a multivariate normal distribution", *The Annals of
    Statistics* 9(6), 1981, https://doi.org/10.1214/aos/1176345632.
    """
    y, sigma, eps, probes, noise, g = _common(y, sigma_y, eps, probes, noise, generator)
    calls = probes
    if fy is None:
        fy = _check_out(f(y), None, "f")
        calls += 1
    if fy.shape != y.shape:
        raise ShapeError(f"a denoiser must return y's shape {tuple(y.shape)}, got {tuple(fy.shape)}")
    n = float(y[0].numel())
    samples = _probe_samples(f, y, fy, eps, probes, g, noise)
    est = (_sq(y - fy) + 2 * sigma**2 * samples) / n - sigma**2
    mean, se = _mean_se(est)
    return SureEstimate(mean, se, samples.mean(0), calls, "denoise")


def sure_predicted(
    y: Tensor,
    operator: Callable[[Tensor], Tensor],
    f: Map,
    sigma_y: float,
    *,
    fy: Tensor | None = None,
    probes: int = DEFAULT_PROBES,
    eps: float | None = None,
    generator: torch.Generator | None = None,
    noise: str = "rademacher",
) -> SureEstimate:
    r"""SURE of the *predicted* risk ``||A f(y) - A x||^2 / m``, per image.

    Stein's estimate applied to the map ``g(y) = A f(y)`` in the measurement space, where the
    noise is white (``y = A x + n``, ``E[y] = A x``):

    .. math::  \mathrm{SURE}_A = \frac{\|y - A f(y)\|^2}{m} - \sigma^2
               + \frac{2\sigma^2}{m}\,\operatorname{div}_y\,(A f)(y).

    For a mask (:class:`~pnpdiff.operators.Inpaint`) only the ``m`` observed entries count: the
    residual is summed over them and the probes perturb only them (Stein's lemma for the
    observed noise; the noise at missing pixels, if any, is independent of it). Works for any
    callable ``A``, linear or not. Cost: ``probes`` calls of ``f``, plus one unless ``fy`` is given.

    Parameters
    ----------
    y : Tensor
        The measurement, ``(B, ...)``.
    operator : callable
        ``A``.
    f : callable
        The deterministic solver ``y -> x_hat``.
    sigma_y : float
        The noise level, ``> 0``.
    fy : Tensor, optional
        ``f(y)``, when already computed.
    probes : int
        Random probes of the divergence (``>= 1``).
    eps : float, optional
        Probe size (default ``0.1 * sigma_y``).
    generator : torch.Generator, optional
        Draws the probes (default: seeded 0).
    noise : str
        ``"rademacher"`` or ``"gaussian"`` probes.

    Returns
    -------
    SureEstimate
        The estimate per measurement, its probe standard error, the divergence, the calls.

    Raises
    ------
    ValueRangeError
        If ``sigma_y``, ``eps`` or ``probes`` is out of range.
    ShapeError
        If ``A(f(y))`` does not have ``y``'s shape.

    References
    ----------
    C. M. Stein, "Estimation of the mean of a multivariate normal distribution", *The Annals of
    Statistics* 9(6), 1981, https://doi.org/10.1214/aos/1176345632.

    Y. C. Eldar, "Generalized SURE for exponential families: applications to regularization",
    *IEEE Trans. Signal Processing* 57(2), 2009, https://arxiv.org/abs/0804.3010.
    """
    y, sigma, eps, probes, noise, g = _common(y, sigma_y, eps, probes, noise, generator)
    calls = probes
    if fy is None:
        fy = _check_out(f(y), None, "f")
        calls += 1
    afy = operator(fy)
    if not torch.is_tensor(afy) or afy.shape != y.shape:
        shape = tuple(afy.shape) if torch.is_tensor(afy) else type(afy).__name__
        raise ShapeError(f"A(f(y)) has shape {shape}, but the measurement y has shape {tuple(y.shape)}")
    w = _observed(operator, y)
    m = _count(w, y)
    xs = fy.shape

    def g_map(v: Tensor) -> Tensor:
        return operator(_check_out(f(v), xs, "f"))

    samples = _probe_samples(g_map, y, afy, eps, probes, g, noise, weight=w)
    r = y - afy if w is None else (y - afy) * w
    est = (_sq(r) + 2 * sigma**2 * samples) / m - sigma**2
    mean, se = _mean_se(est)
    return SureEstimate(mean, se, samples.mean(0), calls, "predicted")


def sure_projected(
    y: Tensor,
    operator: Any,
    f: Map,
    sigma_y: float,
    *,
    fy: Tensor | None = None,
    probes: int = DEFAULT_PROBES,
    eps: float | None = None,
    rcond: float = DEFAULT_RCOND,
    generator: torch.Generator | None = None,
    noise: str = "rademacher",
) -> SureEstimate:
    r"""Projected generalized SURE (Eldar 2009; Giryes, Elad and Eldar 2011), per image.

    Estimates ``||P (f(y) - x)||^2 / n`` (``n`` pixels), the error on the part of the image the
    measurement determines, through the operator's spectral view ``A = U diag(s) V^T``.

    Derivation. Keep the singular values ``s_i > rcond * s_max`` (the others count as the null
    space: ``rcond = 0.1`` by default, the -20 dB line of :mod:`pnpdiff.problem`; a smaller
    ``rcond`` widens ``P`` but amplifies the noise by up to ``1 / rcond``), let ``P = V_k V_k^T``
    be the projection on their right singular vectors and ``A_k^+ = V_k diag(1/s_k) U_k^T`` the
    truncated pseudo-inverse. Then ``z = A_k^+ y`` is unbiased for ``P x``
    (``U_k^T A x = diag(s_k) V_k^T x``), with ``z - P x = A_k^+ n``. Expanding,

    .. math::  \|P(f - x)\|^2 = \|P f\|^2 - 2 f^T P x + \|P x\|^2 .

    Stein's lemma, ``E[f_i n_j] = \sigma^2 E[\partial f_i / \partial y_j]``, gives for the cross term
    ``E[f^T A_k^+ n] = \sigma^2 E[\operatorname{div}_y ((A_k^+)^T f)(y)]``, hence
    ``E[f^T P x] = E[f^T z] - \sigma^2 E[\operatorname{div}]``; and
    ``E\|z\|^2 = \|P x\|^2 + \sigma^2 \operatorname{tr}(A_k^+ A_k^{+T}) = \|Px\|^2 + \sigma^2 \sum_k s_k^{-2}``.
    With ``P z = z``, so ``(P f)^T z = f^T z``:

    .. math::  \mathrm{GSURE}_P = \frac{1}{n}\Big(\|P f(y) - A_k^+ y\|^2
               + 2\sigma^2 \operatorname{div}_y\big((A_k^+)^T f\big)(y)
               - \sigma^2 \sum_{s_k > \mathrm{rcond}\, s_{max}} s_k^{-2}\Big),

    unbiased for ``E ||P (f(y) - x)||^2 / n``. The divergence is estimated with probes ``b`` in the
    measurement space as ``(A_k^+ b)^T (f(y + eps b) - f(y)) / eps``. For ``A = I`` it is
    :func:`sure_denoise`; for an invertible ``A`` with ``rcond = 0``, SURE of the full MSE. Cost:
    ``probes`` calls of ``f``, plus one unless ``fy`` is given.

    Parameters
    ----------
    y : Tensor
        The measurement, ``(B, ...)``.
    operator : LinearOperator
        ``A``, with a spectral view (``has_svd``: circular blurs, masks, matrices, separable
        downsamplers, ...).
    f : callable
        The deterministic solver ``y -> x_hat``.
    sigma_y : float
        The noise level, ``> 0``.
    fy : Tensor, optional
        ``f(y)``, when already computed.
    probes : int
        Random probes of the divergence (``>= 1``).
    eps : float, optional
        Probe size (default ``0.1 * sigma_y``).
    rcond : float
        Relative threshold in ``[0, 1)`` on the singular values that ``P`` keeps.
    generator : torch.Generator, optional
        Draws the probes (default: seeded 0).
    noise : str
        ``"rademacher"`` or ``"gaussian"`` probes.

    Returns
    -------
    SureEstimate
        The estimate per pixel, its probe standard error, the divergence, the calls.

    Raises
    ------
    OperatorError
        If the operator has no spectral view (use :func:`sure_predicted`).
    ValueRangeError
        If ``sigma_y``, ``eps``, ``probes`` or ``rcond`` is out of range.

    References
    ----------
    Y. C. Eldar, "Generalized SURE for exponential families: applications to regularization",
    *IEEE Trans. Signal Processing* 57(2), 2009, https://arxiv.org/abs/0804.3010.

    R. Giryes, M. Elad and Y. C. Eldar, "The projected GSURE for automatic parameter tuning in
    iterative shrinkage methods", *Applied and Computational Harmonic Analysis* 30(3), 2011,
    https://arxiv.org/abs/1003.3985.
    """
    y, sigma, eps, probes, noise, g = _common(y, sigma_y, eps, probes, noise, generator)
    rcond = checks.real(rcond, "rcond", minimum=0.0, maximum=1.0, exclusive_maximum=True)
    if not getattr(operator, "has_svd", False):
        raise OperatorError(
            f"{type(operator).__name__} has no spectral (SVD) view, which projected SURE needs; use "
            "sure_predicted (criterion='predicted'), which needs only A"
        )
    calls = probes
    if fy is None:
        fy = _check_out(f(y), None, "f")
        calls += 1
    coef = operator.Vt(fy)  # the spectral layout (the input's, or (B, n) for a matrix)
    s = operator.singular_values(fy)
    try:
        s = torch.broadcast_to(s.to(device=fy.device, dtype=fy.dtype), coef.shape)
    except RuntimeError:
        raise ShapeError(
            f"the singular values of {type(operator).__name__} (shape {tuple(s.shape)}) do not fit its spectral "
            f"coefficients of shape {tuple(coef.shape)}"
        ) from None
    s64 = s.to(torch.float64)
    smax = float(s64.max())
    if not smax > 0:
        raise OperatorError(f"{type(operator).__name__} has no non-zero singular value: it measures nothing")
    keep = s64 > rcond * smax
    inv = torch.where(keep, 1.0 / torch.where(keep, s64, 1.0), 0.0).to(fy.dtype)
    keep_f = keep.to(fy.dtype)

    def pinv_k(v: Tensor) -> Tensor:  # A_k^+ v
        return operator.V(inv * operator.Ut(v))

    z = pinv_k(y)
    pf = operator.V(keep_f * coef)
    noise_term = (inv.to(torch.float64) ** 2).flatten(1).sum(1)
    samples = _probe_samples(f, y, fy, eps, probes, g, noise, left=pinv_k)
    n = float(fy[0].numel())
    est = (_sq(pf - z) + 2 * sigma**2 * samples - sigma**2 * noise_term) / n
    mean, se = _mean_se(est)
    return SureEstimate(mean, se, samples.mean(0), calls, "projected")


# -- choosing among candidates -----------------------------------------------------------------
def _show_options(options: Mapping[str, Any]) -> str:
    if not options:
        return "the defaults"
    parts = []
    for k, v in options.items():
        text = f"{v:.4g}" if isinstance(v, float) else str(v)
        parts.append(f"{k}={' '.join(text.split())}")
    return " ".join(parts)


def _resolve(criterion: str, operator: Any) -> str:
    if criterion == "sure":
        if isinstance(operator, Identity):
            return "denoise"
        return "projected" if getattr(operator, "has_svd", False) else "predicted"
    if criterion == "denoise" and not isinstance(operator, Identity):
        raise OperatorError(
            f"criterion 'denoise' is SURE for A = I, but the operator is {type(operator).__name__}; use "
            "criterion='sure' (projected or predicted SURE, whichever the operator allows)"
        )
    if criterion == "projected" and not getattr(operator, "has_svd", False):
        raise OperatorError(
            f"criterion 'projected' needs a spectral (SVD) view, which {type(operator).__name__} lacks; use "
            "criterion='predicted' or 'sure'"
        )
    return criterion


_LABEL = {"denoise": "SURE", "predicted": "predicted SURE", "projected": "projected SURE"}


def select(
    y: Tensor,
    operator: Any,
    sigma_y: float,
    candidates: Sequence[Mapping[str, Any]],
    run: Callable[[Tensor, dict[str, Any]], Tensor],
    criterion: str = "sure",
    probes: int = DEFAULT_PROBES,
    generator: torch.Generator | None = None,
    *,
    eps: float | None = None,
    tau: float = 1.0,
    rcond: float = DEFAULT_RCOND,
    noise: str = "rademacher",
) -> Calibration:
    r"""Choose among candidate solver settings with no ground truth, per image.

    Runs every candidate (``run(y, options)``) and scores it:

    * ``"sure"`` (default): an unbiased estimate of the squared error -- :func:`sure_denoise` for
      :class:`~pnpdiff.operators.Identity`, :func:`sure_projected` when the operator has a
      spectral view, :func:`sure_predicted` otherwise; the lowest estimate wins. (``"denoise"``,
      ``"projected"`` and ``"predicted"`` name one of them.)
    * ``"discrepancy"``: Morozov's principle, the ratio of :func:`discrepancy` closest to ``tau``.

    The discrepancy of every candidate is reported with any criterion (it costs nothing). Each
    image of the batch gets its own choice (what users expect of a batch of different photos):
    ``x_hat`` is assembled image by image from the chosen candidates' outputs, and ties go to the
    earlier candidate.

    Cost: ``K`` calls of ``run`` for the discrepancy, ``K * (1 + probes)`` for SURE (``K``
    candidates; each candidate's ``f(y)`` is reused for its probes), i.e. ``3 K`` solves with the
    default 2 probes; :attr:`Calibration.calls` reports it.

    Parameters
    ----------
    y : Tensor
        The measurement, ``(B, ...)``.
    operator : callable
        ``A`` (a pnpdiff operator; any callable for ``"predicted"`` and ``"discrepancy"``).
    sigma_y : float
        The noise level, ``> 0``.
    candidates : sequence of dict
        The solver options to try (at least one).
    run : callable
        ``run(y, options) -> x_hat``, *deterministic* (fix the solver's seed inside it: a probe's
        run must draw the same noise as the unperturbed one) and batched like ``y``.
    criterion : str
        One of :data:`CRITERIA`.
    probes : int
        Random probes per candidate (``>= 1``; default 2, the fewest that give a standard error).
    generator : torch.Generator, optional
        Draws the probes (default: seeded 0). The same probes serve every candidate, so their
        differences are not blurred by different probe noise.
    eps : float, optional
        Probe size (default ``0.1 * sigma_y``, see :func:`mc_divergence`).
    tau : float
        The target ratio of the discrepancy principle (``> 0``, default 1).
    rcond : float
        The singular-value threshold of projected SURE (see :func:`sure_projected`).
    noise : str
        ``"rademacher"`` or ``"gaussian"`` probes.

    Returns
    -------
    Calibration
        The choice per image, the assembled ``x_hat``, every candidate's scores, the reason, the
        calls made.

    Raises
    ------
    ValueRangeError
        If ``candidates`` is empty or not a list of mappings, or ``criterion``, ``probes``,
        ``sigma_y``, ``eps``, ``tau`` or ``rcond`` is out of range.
    OperatorError
        If the criterion needs what the operator lacks (``"projected"``: a spectral view).
    ShapeError
        If ``run`` returns different shapes for different candidates.
    NonFiniteError
        If ``run`` returns NaN or infinite values.

    References
    ----------
    S. Ramani, T. Blu and M. Unser, "Monte-Carlo SURE: a black-box optimization of regularization
    parameters for general denoising algorithms", *IEEE Trans. Image Processing* 17(9), 2008,
    https://doi.org/10.1109/TIP.2008.2001404.

    R. Giryes, M. Elad and Y. C. Eldar, "The projected GSURE for automatic parameter tuning in
    iterative shrinkage methods", *Applied and Computational Harmonic Analysis* 30(3), 2011,
    https://arxiv.org/abs/1003.3985.

    V. A. Morozov, "On the solution of functional equations by the method of regularization",
    *Soviet Mathematics Doklady* 7, 1966.
    """
    y = _tensor(y)
    sigma = _sigma(sigma_y)
    if isinstance(candidates, (str, bytes, Mapping)) or not isinstance(candidates, Sequence):
        raise ValueRangeError(
            f"candidates must be a list of dicts of solver options, got {type(candidates).__name__}"
        )
    if len(candidates) == 0:
        raise ValueRangeError("candidates must hold at least one dict of solver options, got an empty list")
    for i, c in enumerate(candidates):
        if not isinstance(c, Mapping):
            raise ValueRangeError(f"candidates[{i}] must be a dict of solver options, got {type(c).__name__}")
    if not callable(run):
        raise ValueRangeError(f"run must be a callable run(y, options) -> x_hat, got {type(run).__name__}")
    crit = _resolve(checks.choice(criterion, "criterion", CRITERIA), operator)
    probes = _probes(probes)
    eps = _eps(eps, sigma)
    tau = checks.real(tau, "tau", minimum=0.0, exclusive_minimum=True)
    rcond = checks.real(rcond, "rcond", minimum=0.0, maximum=1.0, exclusive_maximum=True)
    noise = checks.choice(noise, "noise", _NOISES)
    g = _generator(generator)
    state = g.get_state()

    cands = [dict(c) for c in candidates]
    k_count, b_count = len(cands), y.shape[0]
    scores = torch.empty(k_count, b_count, dtype=torch.float64, device=y.device)
    errs = torch.zeros_like(scores)
    ratios = torch.empty_like(scores)
    best_x: Tensor | None = None
    best = torch.full((b_count,), math.inf, dtype=torch.float64, device=y.device)
    best_i = torch.zeros(b_count, dtype=torch.long, device=y.device)
    calls = 0
    for i, opts in enumerate(cands):
        what = f"run(y, {_show_options(opts)})"

        def f(v: Tensor, opts: dict[str, Any] = opts, what: str = what) -> Tensor:
            return run(v, dict(opts))

        x_hat = _check_out(f(y), None if best_x is None else best_x.shape, what)
        calls += 1
        ratios[i] = discrepancy(y, operator, x_hat, sigma)
        if crit == "discrepancy":
            scores[i] = ratios[i]
            key = (ratios[i] - tau).abs()
        else:
            g.set_state(state)  # the same probes for every candidate
            kw = dict(fy=x_hat, probes=probes, eps=eps, generator=g, noise=noise)
            if crit == "denoise":
                est = sure_denoise(y, f, sigma, **kw)
            elif crit == "predicted":
                est = sure_predicted(y, operator, f, sigma, **kw)
            else:
                est = sure_projected(y, operator, f, sigma, rcond=rcond, **kw)
            calls += est.calls
            scores[i], errs[i] = est.estimate, est.stderr
            key = est.estimate
        better = key < best
        if best_x is None:
            best_x = x_hat.clone()
        else:
            pick = better.view(-1, *([1] * (x_hat.ndim - 1))).to(x_hat.device)
            best_x = torch.where(pick, x_hat, best_x)
        best_i = torch.where(better, i, best_i)
        best = torch.where(better, key, best)
    assert best_x is not None
    index = [int(v) for v in best_i.tolist()]
    reason = _reason(index, cands, scores, errs, ratios, crit, tau)
    return Calibration(
        index=index,
        options=[dict(cands[i]) for i in index],
        x_hat=best_x,
        scores=scores,
        stderr=errs,
        discrepancy=ratios,
        criterion=crit,
        reason=reason,
        calls=calls,
        candidates=cands,
    )


def _reason(index: list[int], cands: list[dict[str, Any]], scores: Tensor, errs: Tensor, ratios: Tensor,
            crit: str, tau: float) -> str:
    k = len(cands)
    parts = []
    for b, i in enumerate(index):
        head = f"chose {_show_options(cands[i])}: "
        if crit == "discrepancy":
            body = f"discrepancy {float(ratios[i, b]):.3g}, the closest to tau={tau:g} of {k} candidates"
        else:
            se = float(errs[i, b])
            pm = f" +- {se:.1e}" if math.isfinite(se) else ""
            body = (f"{_LABEL[crit]} {float(scores[i, b]):.2e}{pm}, the lowest of {k} candidates; "
                    f"discrepancy {float(ratios[i, b]):.3g}")
        parts.append(head + body if len(index) == 1 else f"image {b}: {head}{body}")
    return "; ".join(parts)
