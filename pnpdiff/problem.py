"""What ``solve`` runs when no method is named: settings chosen from the problem, not a benchmark.

The rule reads only what is known without the ground truth -- the task the operator declares, its
spectrum, the noise level ``sigma_y`` (given, or estimated from ``y``) and the prior's range -- and
reduces the spectrum to one number, the **informative fraction**

    d = the share of the singular values s of A (zeros on the null space included, one per
        coefficient of x) with s / s_max > REL = 0.1,

the part of the image the measurement sees at better than -20 dB of its best gain (for a circular
blur ``s`` is the modulus of the transfer function, for a mask the observed pixels, for
``Downsample(f)`` at most ``1 / f^2`` of the coefficients; a blur with another boundary is read
through its kernel's transfer function on the image's grid, a downsampler without a spectral view
as ``1 / f^2``). Then, for a denoiser prior (noise levels up to at most 1, e.g. ``natural``):

==========  ==========================================  ==========================================
task        when                                        runs
==========  ==========================================  ==========================================
denoise     always                                      ``mmse``: one denoiser call at ``sigma_y``
deblur      ``d >= 0.2``                                HQS (``dpir``), lam 0.23, 8 steps (16 if d < 0.5)
deblur      ``d < 0.2``, low noise, ``w < 0.15``        ``diffpir``, lam 0.5, zeta 1, 20 steps
deblur      ``d < 0.2``, low noise, ``w >= 0.15``       HQS, lam 0.23, 24 steps (sidelobes: box, disk)
deblur      ``d < 0.2``, noisy, ``w < 0.15``            HQS, lam 0.1, 24 steps
deblur      ``d < 0.2``, noisy, ``w >= 0.15``           ``diffpir``, lam 0.5, zeta 1, 20 steps
sr          ``0.03 <= d < 0.1`` (x4)                    ``diffpir``, lam 0.5, zeta 1, 20 steps
sr          ``d >= 0.1`` (x2, x3), ``sigma_y >= 0.04``  HQS, lam 0.23, 24 steps
sr          otherwise (x2, x3 at low noise, x8)         HQS, lam 0.1, 24 steps
inpaint     always                                      HQS, lam 0.05, 40 steps
==========  ==========================================  ==========================================

with ``w`` the share of the spectrum in the weak band just below what counts as seen, ``0.03 <
s / s_max <= 0.1`` (:func:`weak_fraction`): a blur with sidelobes has many weak frequencies there,
which a small ``lam`` amplifies (8.7 dB lost on a defocus disk of the tuning half).

A Poisson(-Gaussian) noise model reads ``sigma_y`` as its matched Gaussian level. Denoising then runs
the ``mmse`` call on the generalised Anscombe transform; at a matched level of 0.15 or more (about
10 photons at white or fewer) deblurring runs HQS with lam 0.23 and 8 steps and super-resolution
HQS with lam 0.23 and 24 steps, before the table (what the table gives such noise -- the weak
coupling for a blur, DiffPIR at x4 -- was up to 3.2 and 6.6 dB behind on the tuning photos, see
``RULE["poisson_strong"]``); otherwise the table. Inpainting keeps the table (its lam 0.05 and 40
steps were ahead of lam 0.23 on 5 of 6 photo-and-peak pairs measured, two tuning photos at peaks
5, 10, 30).

In a paragraph: where the measurement determines most of the image (a mild blur), half-quadratic
splitting with DPIR's own settings is best -- a diffusion sampler's re-noising only throws the data
away; where most of the image must come from the prior (a heavy blur, x4 super-resolution at low
noise), DiffPIR's stochastic sampling pays. A spectrum that is all-or-nothing (a mask, a
decimation) has no weak band whose noise a data step could amplify, so it takes a weaker coupling
to the denoiser (a smaller ``lam``: the data step trusts ``y`` where it sees anything) and more
steps to carry what it sees into the holes -- unless the noise is strong, where that trust costs
more than it brings. More noise moves the heavy blurs without sidelobes back to HQS.
Every choice keeps the cost within 1.5 times the 20 (50 for inpainting) denoiser calls of the
previous default. Any other prior (a diffusion model over the whole noise range), an operator
without a spectral view and the other tasks keep the task's default method
(:func:`pnpdiff.api.default_method`) with its defaults.

The thresholds come from a sweep of 10 blurs, 6 super-resolutions and 4 masks x 3 noise levels on
3 tuning photos at 128 px and the tuning half of ``tests/benchmarks/generalisation.py``; the tables
are in ``docs/quality.md`` ("Defaults from the problem").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from pnpdiff.errors import PnPError

__all__ = ["REL", "RULE", "Choice", "informative_fraction", "weak_fraction", "relative_spectrum", "choose",
           "candidates"]

#: a coefficient counts as seen when its gain is above REL times the operator's best (-20 dB)
REL = 0.1
#: the thresholds and settings of the rule (the module's table), one place
RULE: dict[str, Any] = {
    "deblur_well_posed": 0.2,  # d at or above: HQS with DPIR's lam
    "deblur_many": 0.5,  # d at or above: 8 steps, below 16
    "noisy": 0.04,  # sigma_y at or above: noisy (ill-posed blurs go back to HQS, super-resolution to lam 0.23)
    "weak_band": (0.03, 0.1),  # the band of the spectrum just below what counts as seen ...
    "sidelobes": 0.15,  # ... holding this share or more: a box / disk / defocus blur (never a small lam)
    "sr_diffpir": (0.03, 0.1),  # d in [lo, hi) and not noisy: DiffPIR
    "hqs_paper": {"lam": 0.23},
    "hqs_weak": {"lam": 0.1, "steps": 24},
    "hqs_noisy_sr": {"lam": 0.23, "steps": 24},  # also a low-noise ill-posed blur with sidelobes
    "hqs_inpaint": {"lam": 0.05, "steps": 40},
    "diffpir": {"lam": 0.5, "zeta": 1.0, "steps": 20, "schedule": "ddpm"},
    # photon-count noise whose matched Gaussian level is at or above this (about 10 photons or fewer
    # at white): HQS with DPIR's lam, 8 steps for a blur, 24 for super-resolution. Measured on the
    # tuning photos at 128 px, peaks 5 and 10 (matched levels 0.17-0.32) against 30 and 100
    # (0.05-0.13): GaussianBlur(1.6) (the tuning half of tests/benchmarks/real_photos.py) 0.05-3.2 dB
    # ahead of the weak coupling at the former, 0.1-0.8 dB behind at the latter; Downsample(4)
    # 0.2-6.6 dB ahead of DiffPIR on 7 of 8 photos at the former (brick -0.2), -0.7 to +0.5 at the
    # latter; Downsample(2) already runs it
    "poisson_strong": 0.15,
}
#: DPIR's schedule: log-spaced from 49/255 down to sigma_y
HQS_SCHEDULE = {"schedule": "geometric", "schedule_max": 49 / 255, "schedule_min": "sigma_y"}


@dataclass(frozen=True)
class Choice:
    """What the rule chose, and why.

    Parameters
    ----------
    method : str
        The solver.
    options : dict
        Its settings (``steps`` included); ``solve``'s own arguments override them.
    regime : str
        ``"denoise"``, ``"well-posed"``, ``"ill-posed"``, ``"strong photon noise"`` or ``"task default"``
        (and the table's other rows: ``"mask"``, ``"weak coupling"``, ...).
    informative : float or None
        The informative fraction ``d`` (None without a spectral view).
    sigma_y : float
        The noise level the rule read.
    reason : str
        One line for people.
    """

    method: str
    options: dict[str, Any] = field(default_factory=dict)
    regime: str = "task default"
    informative: float | None = None
    sigma_y: float = 0.0
    reason: str = ""


def relative_spectrum(operator: Any, x_shape: Sequence[int]) -> torch.Tensor | None:
    """The singular values of ``A`` over one image's ``n`` coefficients, divided by the largest.

    Parameters
    ----------
    operator : LinearOperator
        The degradation.
    x_shape : sequence of int
        Shape of the image ``x`` (``(B, C, H, W)``; only one image is read).

    Returns
    -------
    Tensor or None
        Float64 values in [0, 1], one per coefficient of one image (zeros on the null space);
        None when the operator offers no spectral view (no SVD, not a convolution).
    """
    shape = tuple(int(v) for v in x_shape)
    if len(shape) != 4:
        return None
    one = (1, *shape[1:])
    s: torch.Tensor | None = None
    try:
        if getattr(operator, "has_svd", False):
            s = torch.as_tensor(operator.singular_values(one)).to(torch.float64).expand(one).reshape(-1)
        elif torch.is_tensor(getattr(operator, "kernel", None)) and getattr(operator, "boundary", None) is not None:
            # a blur with another boundary: its kernel's transfer function on the image's grid
            k = operator.kernel.detach().to(torch.float64)
            k = k if k.ndim == 3 else k.reshape(1, *k.shape[-2:])
            c, kh, kw = k.shape
            h, w = shape[-2:]
            if kh > h or kw > w:
                return None
            pad = torch.zeros(c, h, w, dtype=torch.float64, device=k.device)
            pad[:, :kh, :kw] = k
            s = torch.fft.fft2(pad).abs().expand(shape[1], h, w).reshape(-1)
    except (PnPError, RuntimeError, TypeError, ValueError, AttributeError, IndexError):
        return None
    if s is None or s.numel() == 0:
        return None
    s_max = float(s.max())
    if not math.isfinite(s_max) or s_max <= 0:
        return None
    return s / s_max


def informative_fraction(operator: Any, x_shape: Sequence[int], rel: float = REL) -> float | None:
    """The rule's one number ``d``: the share of coefficients with ``s / s_max > rel``.

    Parameters
    ----------
    operator : LinearOperator
        The degradation.
    x_shape : sequence of int
        Shape of ``x``.
    rel : float
        The relative gain a coefficient needs to count.

    Returns
    -------
    float or None
        ``d`` in [0, 1]; None without a spectral view (a downsampler without one: ``1 / f^2``).
    """
    return _informative(operator, relative_spectrum(operator, x_shape), rel)


def _share(spectrum: torch.Tensor, lo: float, hi: float = 1.0) -> float:
    """The share of the (relative) spectrum in ``(lo, hi]``."""
    return float(((spectrum > lo) & (spectrum <= hi)).to(torch.float64).mean())


def _informative(operator: Any, spectrum: torch.Tensor | None, rel: float) -> float | None:
    """:func:`informative_fraction` from a spectrum already read (``None``: a downsampler's ``1 / f^2``)."""
    if spectrum is not None:
        return _share(spectrum, rel)
    factor = getattr(operator, "factor", None)
    if getattr(operator, "task", None) == "sr" and isinstance(factor, (int, float)) and factor >= 1:
        return 1.0 / float(factor) ** 2
    return None


def weak_fraction(operator: Any, x_shape: Sequence[int]) -> float | None:
    """The share of coefficients in the weak band, ``0.03 < s / s_max <= 0.1``: large for a blur
    with sidelobes (a box, a disk), whose many weak frequencies a small ``lam`` amplifies, small
    for a Gaussian or motion blur and zero for a mask or a decimation.

    Parameters
    ----------
    operator : LinearOperator
        The degradation.
    x_shape : sequence of int
        Shape of ``x``.

    Returns
    -------
    float or None
        The share in [0, 1]; None without a spectral view.
    """
    spectrum = relative_spectrum(operator, x_shape)
    return None if spectrum is None else _share(spectrum, *RULE["weak_band"])


def _hqs(extra: dict[str, Any], steps: int | None = None) -> dict[str, Any]:
    opts = {**HQS_SCHEDULE, **extra}
    if steps is not None:
        opts["steps"] = steps
    return opts


def choose(operator: Any, x_shape: Sequence[int], sigma_y: float, task: str, fallback: str,
           prior_sigma_max: float = 75 / 255, noise: str | None = None) -> Choice:
    """The method and settings ``solve`` runs when no method is named (the module's table).

    Parameters
    ----------
    operator : LinearOperator or callable
        The degradation.
    x_shape : sequence of int
        Shape of ``x``.
    sigma_y : float
        Noise level (given or estimated), [0, 1] units.
    task : str
        The operator's task (:func:`pnpdiff.api.task_of`).
    fallback : str
        The task's default method, run when the rule does not apply.
    prior_sigma_max : float
        The prior's largest noise level: the rule is for denoiser priors (at most 1).
    noise : str, optional
        The noise model when it is not Gaussian (``"poisson"``, ``"poisson-gaussian"``;
        ``sigma_y`` is then its matched Gaussian level).

    Returns
    -------
    Choice
    """
    sigma_y = float(sigma_y)
    r = RULE
    if task == "denoise" and noise is not None:
        # measured: the Anscombe route is 0.3 to 3.6 dB ahead of HQS with the Poisson prox (docs/real_photos.md)
        return Choice("mmse", {}, "denoise", None, sigma_y,
                      f"denoising {noise} noise: the generalised Anscombe transform, one denoiser call, its exact "
                      "unbiased inverse")
    if task == "denoise":
        return Choice("mmse", {}, "denoise", None, sigma_y, "denoising: one denoiser call at sigma_y (Tweedie)")
    if not (prior_sigma_max <= 1.0):
        return Choice(fallback, {}, "task default", None, sigma_y,
                      f"a prior over noise levels up to {prior_sigma_max:.4g}: the task's default method {fallback}")
    if task in ("deblur", "sr") and noise is not None and sigma_y >= r["poisson_strong"]:
        opts = _hqs(r["hqs_paper"], 8) if task == "deblur" else _hqs(r["hqs_noisy_sr"])
        what = "deblurring" if task == "deblur" else "super-resolution of"
        return Choice("dpir", opts, "strong photon noise", None, sigma_y,
                      f"{what} {noise} noise of matched level {sigma_y:.4g} (few photons): HQS with DPIR's lam "
                      f"{opts['lam']}, {opts['steps']} steps")
    if task not in ("deblur", "sr", "inpaint") or not hasattr(operator, "adjoint"):
        return Choice(fallback, {}, "task default", None, sigma_y, f"task '{task}': its default method {fallback}")
    spectrum = relative_spectrum(operator, x_shape)  # read once: d and the weak band w both come from it
    d = _informative(operator, spectrum, REL)
    if task == "inpaint":  # a mask: always the same (its d is the observed share, reported only)
        opts = _hqs(r["hqs_inpaint"])
        share = "" if d is None else f" ({100 * d:.1f} % observed)"
        return Choice("dpir", opts, "mask", d, sigma_y,
                      f"inpainting{share}: HQS, lam {opts['lam']}, {opts['steps']} steps")
    if d is None:
        return Choice(fallback, {}, "task default", None, sigma_y,
                      f"no spectral view of {type(operator).__name__}: the task's default method {fallback}")
    noisy = sigma_y >= r["noisy"]
    seen = f"d = {100 * d:.1f} % of the spectrum above {100 * REL:g} % of its peak, sigma_y = {sigma_y:.4g}"
    if task == "deblur" and d >= r["deblur_well_posed"]:
        steps = 8 if d >= r["deblur_many"] else 16
        opts = _hqs(r["hqs_paper"], steps)
        return Choice("dpir", opts, "well-posed", d, sigma_y,
                      f"mild blur ({seen}): HQS with DPIR's lam {opts['lam']}, {steps} steps")
    lo, hi = r["sr_diffpir"]
    if task == "sr":
        if lo <= d < hi:  # x4: DiffPIR at any noise level
            opts = dict(r["diffpir"])
            return Choice("diffpir", opts, "ill-posed", d, sigma_y,
                          f"x4-like super-resolution ({seen}): diffpir, lam {opts['lam']}, zeta {opts['zeta']}, "
                          f"{opts['steps']} steps")
        if noisy and d >= hi:  # x2, x3 in strong noise: DPIR's lam
            opts = _hqs(r["hqs_noisy_sr"])
            return Choice("dpir", opts, "noisy super-resolution", d, sigma_y,
                          f"noisy super-resolution ({seen}): HQS, lam {opts['lam']}, {opts['steps']} steps")
        opts = _hqs(r["hqs_weak"])
        return Choice("dpir", opts, "weak coupling", d, sigma_y,
                      f"super-resolution ({seen}): HQS, lam {opts['lam']}, {opts['steps']} steps")
    w = 0.0 if spectrum is None else _share(spectrum, *RULE["weak_band"])
    if noisy and w < r["sidelobes"]:
        opts = _hqs(r["hqs_weak"])
        return Choice("dpir", opts, "weak coupling", d, sigma_y,
                      f"noisy ill-posed blur ({seen}, {100 * w:.1f} % in the weak band): HQS, lam {opts['lam']}, "
                      f"{opts['steps']} steps")
    if not noisy and w >= r["sidelobes"]:  # a heavy box / disk / motion blur at low noise: DPIR's lam, longer
        opts = _hqs(r["hqs_noisy_sr"])
        return Choice("dpir", opts, "sidelobes", d, sigma_y,
                      f"ill-posed blur with sidelobes ({seen}, {100 * w:.1f} % in the weak band): HQS, "
                      f"lam {opts['lam']}, {opts['steps']} steps")
    opts = dict(r["diffpir"])
    why = "ill posed" if not noisy else f"noisy ill-posed blur with sidelobes ({100 * w:.1f} % in the weak band)"
    return Choice("diffpir", opts, "ill-posed", d, sigma_y,
                  f"{why} ({seen}): diffpir, lam {opts['lam']}, zeta {opts['zeta']}, {opts['steps']} steps")

def candidates(choice: Choice, task: str) -> list[tuple[str, dict[str, Any]]]:
    """The settings ``solve(calibrate=True)`` chooses among: the rule's choice first, then every other
    row of the rule's table for the task (so that a calibration can overrule the rule where the
    rule's one number misreads a problem).

    Parameters
    ----------
    choice : Choice
        What the rule chose (or the task default when it did not apply).
    task : str
        The operator's task.

    Returns
    -------
    list of (method, options)
        Distinct candidates, the rule's choice first; only the rule's choice for the tasks and
        priors the rule does not cover (denoising included: one denoiser call has no setting).
    """
    first = (choice.method, dict(choice.options))
    if choice.regime in ("denoise", "task default") or task not in ("deblur", "sr", "inpaint"):
        return [first]
    r = RULE
    steps_inpaint = r["hqs_inpaint"]["steps"]
    rows = [
        ("dpir", _hqs(r["hqs_paper"], 8)),
        ("dpir", _hqs(r["hqs_paper"], 16)),
        ("dpir", _hqs(r["hqs_weak"])),
        *([("dpir", _hqs(r["hqs_noisy_sr"]))] if task == "sr" else []),  # (a blur gets it as the rule's choice)
        ("dpir", _hqs({**r["hqs_inpaint"], "steps": 24 if task != "inpaint" else steps_inpaint})),
        ("diffpir", {**r["diffpir"], "steps": 50 if task == "inpaint" else r["diffpir"]["steps"]}),
    ]
    out = [first]
    for row in rows:
        if all(row != seen for seen in out):
            out.append(row)
    return out
