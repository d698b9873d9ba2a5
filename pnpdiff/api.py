"""``pnpdiff.solve``: resolve names, pick per-task defaults, move to the device, call the solver.

``solve`` is three steps: :func:`_resolve_solve` reads every argument (each checked as it is
read) and turns names into objects (prior, operator, method, device); :func:`_check_solve` checks
what needs the pieces together (the measurement against the operator, the image against the
prior, ``x_init``, the memory); :func:`_run_solve` wraps the prior (precision, guidance), picks the
defaults and the schedule and calls the solver. What pnpdiff knows of each solver -- its defaults
(:data:`DEFAULTS`), option ranges (:data:`OPTION_RANGES`), memory model -- is its descriptor
(:class:`pnpdiff.solvers.SolverInfo`); the tables here are views of them.
"""

from __future__ import annotations

import inspect
import math
import numbers
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from pnpdiff import checks, costs, memory, operators, problem, schedules
from pnpdiff.checks import MAX_COUNT, MAX_PARTICLES, MAX_SEED, MAX_SIDE, MAX_SIGMA_Y, MAX_STEPS
from pnpdiff.errors import (
    MemoryLimitError,
    OperatorError,
    PnPError,
    PnPWarning,
    ShapeError,
    UnknownNameError,
    ValueRangeError,
)
from pnpdiff.guidance import guided
from pnpdiff.io import check_range, to_tensor
from pnpdiff.noise import NoiseModel, Stabilised, noise_model
from pnpdiff.operators import as_operator
from pnpdiff.priors import load_prior
from pnpdiff.priors.runtime import with_runtime
from pnpdiff.solvers import DESCRIPTORS, SOLVERS, descriptor
from pnpdiff.solvers.common import FiniteGuard, check_finite_result, estimate_noise_level
from pnpdiff.solvers.descriptor import DerivedTable

__all__ = ["solve", "task_of", "default_method", "default_options", "default_steps", "DEFAULTS", "OPTION_RANGES",
           "MAX_STEPS", "MAX_SIGMA_Y"]
__all__ += ["choose_method"]
__all__ += ["resolve_device", "resolve_operator", "check_solve_memory", "check_option", "check_schedule_options",
            "is_grey_rgb", "acts_per_channel", "measurement_range", "SET_BY_SOLVE", "SCHEDULE_KEYS"]

#: per (prior family, task, method) hyper-parameters; ``"*"`` matches any prior / task. A view of
#: the solvers' descriptors (``SolverInfo.defaults``, in each solver's file, with the measurements
#: they were tuned on: scikit-image photos at 256x256 with sigma_y = 0.025, docs/quality.md).
DEFAULTS: Mapping[tuple[str, str, str], dict[str, Any]] = DerivedTable(
    lambda: {(family, task, name): dict(opts) for name, info in DESCRIPTORS.items()
             for (family, task), opts in info.defaults.items()},
    "(prior family, task, method) -> options")


#: solver arguments that ``solve`` fills in itself (``seed`` gives the generator)
SET_BY_SOLVE = ("y", "operator", "prior", "sigmas", "sigma_y", "generator")
#: options that shape the sigma schedule rather than the solver
SCHEDULE_KEYS = ("schedule", "schedule_max", "schedule_min")


def _operator_class(operator: Any) -> Any:
    """The class an operator (or an operator class, or a class name of :mod:`pnpdiff.operators`) is."""
    if isinstance(operator, str):
        return getattr(operators, operator, None)
    return operator if isinstance(operator, type) else type(operator)


def task_of(operator: Any) -> str:
    """Name of the restoration task an operator stands for (used to look up defaults).

    The operator's class declares it (its ``task`` attribute, see
    :class:`pnpdiff.operators.LinearOperator`: ``"deblur"``, ``"sr"``, ``"inpaint"``,
    ``"denoise"``, ``"colorize"``, ``"nonlinear"``, ``"generic"``); a callable without an adjoint
    that declares nothing more specific (a custom forward model, solved by DPS) is
    ``"nonlinear"``; anything else ``"generic"``.

    Parameters
    ----------
    operator : operator, operator class or str
        An operator, its class, or the name of a class of :mod:`pnpdiff.operators`.

    Returns
    -------
    str
    """
    cls = _operator_class(operator)
    task = getattr(cls, "task", None) if cls is not None else None
    if isinstance(task, str) and task != "generic":
        return task
    if not isinstance(operator, str) and callable(operator) and not hasattr(operator, "adjoint"):
        return "nonlinear"  # a forward model without an adjoint: a custom (nonlinear) camera, solved by DPS
    return "generic"


def measurement_range(operator: Any, data_range: tuple[float, float] | None) -> tuple[float, float] | None:
    """The range ``solve`` checks a measurement against, ``None`` for none (only finiteness).

    The operator declares the range of its measurement for images in [0, 1] (``y_range``:
    ``(0.0, 1.0)`` for an image-valued operator, ``None`` for one whose measurement is no image,
    such as :class:`~pnpdiff.operators.PhaseRetrieval`'s Fourier magnitude); it is mapped onto
    the prior's ``data_range`` (``None``: data that are not images, no range). An operator that
    declares nothing is image-valued.

    Parameters
    ----------
    operator : operator or callable
        The operator, as given to ``solve``.
    data_range : tuple of float or None
        The prior's ``data_range``.

    Returns
    -------
    tuple of float or None
    """
    y_range = getattr(operator, "y_range", (0.0, 1.0))
    if y_range is None or data_range is None:
        return None
    a, b = (float(v) for v in y_range)
    if (a, b) == (0.0, 1.0):
        return data_range
    lo, hi = (float(v) for v in data_range)
    return (lo + (hi - lo) * a, lo + (hi - lo) * b)


def default_options(prior_name: str, task: str, method: str) -> dict[str, Any]:
    """The default hyper-parameters for a prior, a task and a method (most specific wins).

    Parameters
    ----------
    prior_name : str
        The prior's name (``"natural"``, ``"ffhq:/path"``: its family is the part before ``:``).
    task : str
        The task (:func:`task_of`).
    method : str
        The method.

    Returns
    -------
    dict
    """
    family = prior_name.split(":")[0]
    info = descriptor(method) if isinstance(method, str) else None
    table = info.defaults if info is not None else {}
    out: dict[str, Any] = {}
    for key in [("*", "*"), (family, "*"), ("*", task), (family, task)]:
        out.update(table.get(key, {}))
    return out


#: denoiser evaluations when neither the caller nor the defaults table gives a number
FALLBACK_STEPS = 50


def default_steps(prior_name: str, task: str, method: str) -> int:
    """The number of steps ``solve`` runs when ``steps`` is not given.

    Parameters
    ----------
    prior_name, task, method : str
        As for :func:`default_options`.

    Returns
    -------
    int
    """
    return int(default_options(prior_name, task, method).get("steps", FALLBACK_STEPS))


def default_method(task: str) -> str:
    """The method ``solve`` runs when none is given: the prior's MMSE estimate (one denoiser call
    at ``sigma_y``, Tweedie's formula) for denoising, DPS for a nonlinear forward model (it needs
    only ``A(x)`` and autograd), DiffPIR for every other task.

    Parameters
    ----------
    task : str
        The task (:func:`task_of`).

    Returns
    -------
    str
    """
    if task == "nonlinear":
        return "dps"
    return "mmse" if task == "denoise" and "mmse" in SOLVERS else "diffpir"



def choose_method(operator: Any, y: torch.Tensor, sigma_y: float | None, prior: Any,
                  options: Mapping[str, Any] | None = None, noise: NoiseModel | None = None) -> problem.Choice:
    """What ``solve`` runs when no method is named: :func:`pnpdiff.problem.choose` on the problem.

    Parameters
    ----------
    operator : operator
        The resolved operator.
    y : Tensor
        The measurement (its shape gives ``x``'s; its noise level is estimated when ``sigma_y``
        is None).
    sigma_y : float or None
        The noise level, if known.
    prior : Prior
        The prior (its name and noise range).
    options : mapping, optional
        The caller's solver options: options the rule's method does not take (e.g. DiffPIR's
        ``zeta`` where the rule picks HQS) keep the task's default method, which takes them.
    noise : NoiseModel, optional
        A Poisson(-Gaussian) model (``sigma_y`` is then its matched Gaussian level): the rule's
        choice for it (:func:`pnpdiff.problem.choose`).

    Returns
    -------
    pnpdiff.problem.Choice
    """
    task = task_of(operator)
    fallback = default_method(task)
    x_shape = tuple(y.shape)
    if callable(getattr(operator, "x_shape", None)):
        try:
            x_shape = tuple(operator.x_shape(tuple(y.shape)))
        except (PnPError, RuntimeError, TypeError, ValueError):
            pass
    sig = float(sigma_y) if sigma_y is not None else (estimate_noise_level(y) if y.dim() >= 2 else 0.0)
    choice = problem.choose(operator, x_shape, sig, task, fallback,
                            float(getattr(prior, "sigma_max", math.inf) or math.inf),
                            noise=None if noise is None else noise.model)
    if options and choice.method != fallback:
        params = inspect.signature(SOLVERS[choice.method]).parameters
        foreign = sorted(k for k in options if k not in SCHEDULE_KEYS and k not in params)
        if foreign:
            return problem.Choice(fallback, {}, "task default", choice.informative, sig,
                                  f"the options {', '.join(foreign)} are {fallback}'s: the task's default method")
    return choice


def estimate_blur(blind: Any, y: torch.Tensor, sigma_y: float | None, prior: Any, *, seed: Any = None,
                  progress: bool = False) -> tuple[Any, dict[str, Any]]:
    """The :class:`~pnpdiff.operators.Blur` of a :class:`~pnpdiff.operators.BlindBlur`, estimated from ``y``.

    Parameters
    ----------
    blind : BlindBlur
        The request (family, support, boundary).
    y : Tensor
        The measurement ``(B, C, H, W)`` (one kernel for the batch).
    sigma_y : float or None
        Its noise level (None: estimated from ``y``).
    prior : Prior
        The prior of the free family's image steps.
    seed : int or sequence of int, optional
        Of the estimation's random draws.
    progress : bool
        Show progress.

    Returns
    -------
    (Blur, dict)
        The operator, and what was estimated: ``family``, ``size``, ``params`` and ``stderr``
        (parametric), ``kernel`` (a nested list), ``denoiser_calls``.
    """
    sig = float(sigma_y) if sigma_y is not None else estimate_noise_level(y)
    # the kernel fits' range, checked before the free family's long first steps
    sig = checks.real(sig, "sigma_y of a blind blur", minimum=0.0, maximum=1.0, error=ValueRangeError)
    if blind.family == "free":
        kernel, what = _estimate_free_kernel(blind, y, sig, prior)
    else:
        from pnpdiff.kernel_fit import fit_kernel  # (L5)

        fit = fit_kernel(y, blind.family, blind.size, sig)
        kernel = fit.kernel
        what = {"family": fit.family, "size": list(kernel.shape), "params": dict(fit.params),
                "stderr": dict(fit.stderr), "denoiser_calls": 0}
    op = operators.Blur(kernel.to(torch.float64), boundary=blind.boundary)
    what["kernel"] = [[round(float(v), 8) for v in row] for row in kernel.to(torch.float64).cpu()]
    return op, what


#: the settings of :func:`pnpdiff.baselines.blind_deconvolution` the free family starts from (its
#: defaults, more alternations a level, a weaker image prior, a weaker kernel ridge): the L0 scheme
#: is a non-convex descent whose result depends on them from photo to photo; measured on the tuning
#: photos (motion and defocus), keeping the most likely of the four gained 1.1 dB over the defaults
FREE_KERNEL_STARTS: tuple[dict[str, float], ...] = (
    {}, {"iters": 10}, {"iters": 10, "lam": 2e-3, "lam_intensity": 2e-3}, {"kernel_l2": 0.5})
#: how many EM iterations refine the most likely L0 kernel (measured on the tuning photos: 2 gained
#: 0.23 dB on average over the L0 kernel alone, 3 about as much, 6 lost 0.2 dB on motion blur -- the
#: E-step image then drifts towards a sharper kernel)
FREE_KERNEL_EM_ITERS = 2


def _estimate_free_kernel(blind: Any, y: torch.Tensor, sigma_y: float,
                          prior: Any) -> tuple[torch.Tensor, dict[str, Any]]:
    """A free kernel on ``blind``'s support, and what was estimated.

    Candidates, then a choice by the one criterion that compares kernels without the image, the
    marginal likelihood of ``y`` (:func:`pnpdiff.kernel_fit.kernel_log_likelihood`):

    1. the L0 intensity-and-gradient MAP-k kernel (Pan et al. 2017, coarse to fine;
       :func:`pnpdiff.baselines.blind_deconvolution`) from each of :data:`FREE_KERNEL_STARTS`; the
       most likely is kept, and also that kernel refined by :data:`FREE_KERNEL_EM_ITERS`
       iterations of the EM of :func:`pnpdiff.blind.estimate_kernel` at full scale (a
       plug-and-play E-step with ``prior``, the expected-data M-step);
    2. the maximum-marginal-likelihood Gaussian, disk and line kernels of
       :mod:`pnpdiff.kernel_fit`, cut to the same support;
    3. the most likely of these is returned.

    Why: started from a delta, the EM alone was 5.2 dB behind the true kernel on the tuning photos
    (it collapses towards a too sharp kernel on large Gaussians and disks); the L0 kernel is always
    found but is noisy on smooth blurs, where a parametric kernel of the right family is nearly
    exact, and depends on the L0 scheme's settings. The marginal likelihood integrates the image
    out, so unlike the joint MAP it does not favour a sharper kernel (Levin et al., CVPR 2011).
    A free candidate is compared by its raw likelihood, with no penalty for its many taps: it was
    not fitted to that likelihood. Measured on the tuning split of
    ``tests/benchmarks/real_photos.py``, see docs/real_photos.md.
    """
    from pnpdiff.baselines import blind_deconvolution  # (L5; only blind solves need them)
    from pnpdiff.blind import estimate_kernel
    from pnpdiff.kernel_fit import FAMILIES, fit_kernel, kernel_log_likelihood

    def score(k: torch.Tensor) -> float:
        return kernel_log_likelihood(y, k, sigma_y)

    starts = [blind_deconvolution(y, blind.size, sigma_y, **opts)[1].to(torch.float64) for opts in FREE_KERNEL_STARTS]
    start_scores = [score(k) for k in starts]
    k_l0 = starts[max(range(len(starts)), key=lambda i: start_scores[i])]
    em = estimate_kernel(y, blind.size, prior, sigma_y, scales=1, iters=FREE_KERNEL_EM_ITERS, k_init=k_l0)
    cands: dict[str, torch.Tensor] = {"free": em.kernel.to(torch.float64), "free-l0": k_l0}
    params: dict[str, dict[str, float]] = {}
    for fam in FAMILIES:
        fit = fit_kernel(y, fam, blind.size, sigma_y)
        cands[fam], params[fam] = fit.kernel.to(torch.float64), dict(fit.params)
    scores = {name: score(k) for name, k in cands.items()}
    best = max(scores, key=lambda n: scores[n])
    kernel = cands[best]
    what: dict[str, Any] = {
        "family": "free", "size": list(kernel.shape), "chosen": best,
        "estimator": (f"the most likely (marginal likelihood of y) of the L0 MAP-k kernel (Pan et al. 2017) from "
                      f"{len(starts)} settings, it refined by {FREE_KERNEL_EM_ITERS} plug-and-play EM iterations, and "
                      "the Gaussian, disk and line fits"),
        "log_likelihood": {n: round(v, 3) for n, v in scores.items()},
        "denoiser_calls": em.denoiser_calls}
    if best in params:
        what["params"] = params[best]
    return kernel, what


def noise_methods(model: str) -> list[str]:
    """The methods whose own likelihood is the noise model ``model`` (their descriptors say so)."""
    return [name for name, info in DESCRIPTORS.items() if model in info.noise_models]


def check_noise_model(method: str, noise: NoiseModel, task: str) -> None:
    """Refuse a method that cannot take the noise model: one that assumes Gaussian noise, on a task
    other than denoising (where the variance-stabilising transform makes the noise Gaussian).

    Raises
    ------
    ValueRangeError
        Naming the methods that take the model.
    """
    info = descriptor(method)
    if info is not None and noise.model in info.noise_models:
        return
    if task == "denoise":
        return
    raise ValueRangeError(f"method {method!r} assumes Gaussian noise and cannot take the {noise.model} noise model "
                          f"on a {task} task; use {', '.join(noise_methods(noise.model))} (denoising also takes "
                          "every method, through the Anscombe transform)")


def _defaults(plan: Any) -> dict[str, Any]:
    """The settings a solve starts from: the method's defaults, then the rule's (no method named)."""
    name = getattr(plan.prior, "name", "custom")
    base = default_options(name, task_of(plan.operator), plan.method)
    if plan.rule is not None and plan.rule.method == plan.method:
        base = {**base, **plan.rule.options}
    return base

#: ranges of the integer arguments and recipe keys, one place for ``solve``, ``sample`` and recipes
#: (docs/recipes.md lists them; defined in :mod:`pnpdiff.checks`): ``steps`` 1 .. MAX_STEPS (a
#: schedule of more sigmas is a mistake, not a run); every seed 0 .. MAX_SEED (a signed 64-bit
#: generator seed); an image side (``size``) 1 .. MAX_SIDE; a count of images drawn or restored
#: together (``n``, ``batch_size``, ``samples``) 1 .. MAX_COUNT; the largest measurement noise level
#: ``sigma_y`` MAX_SIGMA_Y (in the data's units: [0, 1] for images, where a noise level above 1
#: already drowns the image; beyond it the data steps overflow to NaN); the most SMC particles
#: (and probes, particles per denoiser call) MAX_PARTICLES. The memory guard still judges what fits.
__all__ += ["MAX_SEED", "MAX_SIDE", "MAX_COUNT", "MAX_PARTICLES"]

#: documented ranges of the solvers' options, ``(method, key) -> (low, high, low excluded)``
#: (``None``: no bound), checked by ``solve`` before anything runs; a value outside is refused
#: naming the option (``docs/errors.md``). The solvers check the rest themselves (daps' ``lr``, ...).
#: A view of the descriptors' ``option_ranges``.
OPTION_RANGES: Mapping[tuple[str, str], tuple[float | None, float | None, bool]] = DerivedTable(
    lambda: {(name, key): bounds for name, info in DESCRIPTORS.items() for key, bounds in info.option_ranges.items()},
    "(method, option) -> (low, high, low excluded)")


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def check_int(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an int, or a :class:`ValueRangeError` naming ``name``: no float (``2.7``),
    string (``'5'``) or bool is coerced."""
    if torch.is_tensor(value) and value.numel() == 1 and not value.is_floating_point():
        value = int(value.item())
    if not _is_int(value):
        raise ValueRangeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    v = int(value)
    if minimum is not None and v < minimum:
        raise ValueRangeError(f"{name} must be >= {minimum}, got {v}")
    if maximum is not None and v > maximum:
        raise ValueRangeError(f"{name} must be <= {maximum}, got {v}")
    return v


def check_real(name: str, value: Any, *, minimum: float | None = None, maximum: float | None = None,
               above: float | None = None) -> float:
    """``value`` as a finite float, or a :class:`ValueRangeError` naming ``name``: no string
    (``'0.025'``), bool, NaN or infinity is accepted; ``minimum`` / ``maximum`` bound it (inclusive),
    ``above`` from below (exclusive)."""
    if torch.is_tensor(value) and value.numel() == 1:
        value = value.item()
    if not _is_real(value):
        raise ValueRangeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    v = float(value)
    if not math.isfinite(v):
        raise ValueRangeError(f"{name} must be a finite number, got {v}")
    if minimum is not None and v < minimum:
        raise ValueRangeError(f"{name} must be >= {minimum}, got {v}")
    if above is not None and not v > above:
        raise ValueRangeError(f"{name} must be > {above}, got {v}")
    if maximum is not None and v > maximum:
        raise ValueRangeError(f"{name} must be <= {maximum:g}, got {v:g}")
    return v


def check_tensor(name: str, value: Any) -> None:
    """Refuse a tensor without values (on the ``meta`` device) with a :class:`ValueRangeError`
    naming ``name``; anything else passes (the callers check the rest)."""
    if torch.is_tensor(value) and value.device.type == "meta":
        raise ValueRangeError(f"{name} is a meta tensor (a shape without values, shape {tuple(value.shape)}); "
                              "pass a tensor with data, e.g. on 'cpu'")


def _check_range(method: str, key: str, value: Any) -> None:
    """Refuse an option outside its :data:`OPTION_RANGES` entry, naming the option and the range."""
    info = descriptor(method)
    bounds = info.option_ranges.get(key) if info is not None else None
    if bounds is None or value is None or not _is_real(value):
        return
    lo, hi, open_lo = bounds
    v = float(value)
    if (lo is None or (v > lo if open_lo else v >= lo)) and (hi is None or v <= hi):
        return
    low = "" if lo is None else f"{'>' if open_lo else '>='} {lo:g}"
    high = "" if hi is None else f"<= {hi:g}"
    why = " (0: the data step ignores the prior's estimate)" if key == "lam" and open_lo and v == 0 else ""
    raise ValueRangeError(f"option {key!r} of method {method!r} must be {' and '.join(b for b in (low, high) if b)}, "
                          f"got {value!r}{why}")


#: the kind of an option whose default is ``None``, read from its annotation (``int | None``, ...)
_KIND_OF_OPTIONAL = {"bool": False, "int": 0, "float": 0.0}


def check_option(method: str, key: str, value: Any, default: Any, annotation: Any = None) -> Any:
    """Refuse an option value whose kind does not match the solver's default (a string for
    ``lam``, a float for an integer count, NaN): the solver would fail deep inside or, worse,
    return an all-NaN image. An option whose default is ``None`` takes its kind from its
    annotation (``bool | None``: true, false or nothing). A number is also held to its
    documented range (:data:`OPTION_RANGES`).

    Parameters
    ----------
    method : str
        The method, for the message and its option ranges.
    key : str
        The option's name.
    value : Any
        What the caller gave.
    default : Any
        The solver's default of the option (its kind).
    annotation : Any
        The parameter's annotation (a string under ``from __future__ import annotations``).

    Returns
    -------
    The value, an int or float where the default is one.

    Raises
    ------
    ValueRangeError
        For a value of the wrong kind or outside its range.
    """
    name = f"option {key!r} of method {method!r}"
    if default is None and isinstance(annotation, str):
        if value is None:
            return value
        kinds = {part.strip() for part in annotation.split("|")} - {"None"}
        if len(kinds) == 1:
            default = _KIND_OF_OPTIONAL.get(kinds.pop())
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueRangeError(f"{name} must be true or false, got {value!r}")
        return value
    if isinstance(default, int):
        value = check_int(name, value)
        _check_range(method, key, value)
        return value
    if isinstance(default, float):
        value = check_real(name, value)
        _check_range(method, key, value)
        return value
    if key == "x_init" and value is not None:
        if not torch.is_tensor(value):
            raise ValueRangeError(f"{name} must be a tensor of the image's shape, got {type(value).__name__}")
        check_tensor(name, value)
        if not value.is_floating_point():
            raise ValueRangeError(f"{name} must be a floating-point tensor (an image in [0, 1]), got {value.dtype}")
        if not bool(torch.isfinite(value).all()):
            raise ValueRangeError(f"{name} contains NaN or inf; pass a finite starting estimate")
    if key == "callback" and value is not None and not callable(value):
        raise ValueRangeError(f"{name} must be a function callback(i, sigma, x, x0_hat)")
    return value


def check_schedule_options(opts: dict[str, Any]) -> None:
    """Check the schedule options in place; a list or tuple of numbers becomes a float64 tensor.

    Parameters
    ----------
    opts : dict
        The options (``schedule``, ``schedule_max``, ``schedule_min`` are read, the rest ignored).

    Raises
    ------
    ValueRangeError
        For an unknown kind of schedule, non-finite, negative or increasing sigmas, too many of
        them, or a negative range.
    """
    schedule = opts.get("schedule", "ddpm")
    if (isinstance(schedule, (list, tuple)) and schedule
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in schedule)):
        schedule = opts["schedule"] = torch.tensor([float(v) for v in schedule], dtype=torch.float64)
    if not (isinstance(schedule, str) or torch.is_tensor(schedule)):
        raise ValueRangeError(
            f"option 'schedule' must be a schedule name ({', '.join(schedules.SCHEDULES)}) or a "
            f"decreasing tensor (or list) of sigmas, got {schedule!r}"
        )
    if torch.is_tensor(schedule):
        s = schedule.detach().to("cpu", torch.float64).flatten()
        if s.numel() == 0 or not bool(torch.isfinite(s).all()) or bool((s < 0).any()):
            raise ValueRangeError("option 'schedule' must hold finite sigmas >= 0")
        if s.numel() > 1 and bool((s[1:] > s[:-1]).any()):
            raise ValueRangeError("option 'schedule' must be a decreasing sequence of sigmas")
        if s.numel() > MAX_STEPS + 1:
            raise ValueRangeError(f"option 'schedule' holds {s.numel()} sigmas; at most {MAX_STEPS + 1} "
                                  f"({MAX_STEPS} steps)")
    for key in ("schedule_max", "schedule_min"):
        v = opts.get(key)
        if v is None or (key == "schedule_min" and v == "sigma_y"):
            continue
        check_real(f"option {key!r}", v, minimum=0.0)


def resolve_device(device: Any, x: torch.Tensor) -> torch.device:
    """The device a run computes on: ``device`` if given (checked), else ``x``'s when it is not
    the CPU, else CUDA when available.

    Parameters
    ----------
    device : str, torch.device or None
        What the caller asked for (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...).
    x : Tensor
        The input (its device is the default).

    Returns
    -------
    torch.device

    Raises
    ------
    PnPError
        For an unknown device, or CUDA asked for where it is not available.
    """
    if device is not None:
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError, ValueError):
            raise PnPError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'cuda:N'") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise PnPError(f"device {device!r} was asked for, but CUDA is not available here; use device='cpu'")
        return dev
    if x.device.type != "cpu":
        return x.device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_operator(operator: Any) -> Any:
    """A pnpdiff operator, a deepinv ``LinearPhysics`` (wrapped), or a nonlinear callable as is.

    Parameters
    ----------
    operator : LinearOperator, deepinv physics or callable
        What ``solve`` was given.

    Returns
    -------
    The operator the solvers use.

    Raises
    ------
    OperatorError
        For anything that is neither (a nonlinear deepinv physics included: calling it adds noise).
    """
    try:
        return as_operator(operator)
    except OperatorError:
        if not callable(operator):
            raise
        from deepinv.physics import Physics  # already imported by as_operator

        if isinstance(operator, Physics):  # nonlinear deepinv physics: calling it adds noise
            raise
        return operator  # a differentiable forward model, for the solvers that need only VJPs


def is_grey_rgb(y: torch.Tensor) -> bool:
    """Whether a 3-channel measurement holds a grey image: its channels agree to 1/255 (the
    rounding of an 8-bit RGB file of a grey photo, JPEG's colour conversion included).

    Parameters
    ----------
    y : Tensor
        The measurement, ``(B, C, H, W)``.

    Returns
    -------
    bool
    """
    if y.ndim != 4 or y.shape[1] != 3:
        return False
    return bool(((y - y[:, :1]).abs().amax() <= 1.0 / 255 + 1e-6).item())


def acts_per_channel(op: Any, x_shape: torch.Size, device: torch.device,
                     dtype: torch.dtype = torch.float32) -> bool:
    """Whether ``op`` applies one and the same map to every channel, so that a grey image copied
    into three channels can be restored as one channel: checked on a random probe
    (``A(z, z, z) == (A z, A z, A z)``); an operator that refuses one channel is not.

    Parameters
    ----------
    op : callable
        The operator.
    x_shape : torch.Size
        The image's shape ``(B, 3, H, W)``.
    device : torch.device
        Where to probe.
    dtype : torch.dtype
        The probe's dtype.

    Returns
    -------
    bool
    """
    g = torch.Generator().manual_seed(0)
    z = torch.rand((x_shape[0], 1, *x_shape[2:]), generator=g, dtype=torch.float64).to(device, dtype)
    try:
        one = op(z)
        three = op(z.expand(-1, 3, *z.shape[2:]))
    except (PnPError, RuntimeError, ValueError):
        return False
    if one.ndim != 4 or three.ndim != 4 or one.shape[1] != 1 or three.shape[1] != 3:
        return False
    return torch.allclose(three, one.expand_as(three), rtol=1e-5, atol=1e-6)


def solve(
    y: Any,
    operator: Any,
    prior: Any = "natural",
    method: str | None = None,
    steps: int | None = None,
    sigma_y: float | None = None,
    seed: int | Sequence[int] | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    max_memory: int | str | None = None,
    *,
    label: Any = None,
    cfg: float | None = None,
    classifier: Any = None,
    classifier_scale: float | None = None,
    precision: str = "fp32",
    compile: bool = False,
    calibrate: bool = False,
    return_info: bool = False,
    noise: Any = None,
    return_operator: bool = False,
    **options: Any,
) -> Any:
    """Restore ``x`` from a measurement ``y = A(x) + n`` with a pretrained denoiser as prior.

    Parameters
    ----------
    y : Tensor, ndarray, PIL.Image, str or Path
        The degraded image: a ``(B, C, H, W)``, ``(C, H, W)`` or ``(H, W)`` tensor in [0, 1], an
        ``(H, W)`` / ``(H, W, C)`` NumPy array (uint8, or float in [0, 1]), a PIL image or a path.
    operator : LinearOperator or callable
        The degradation ``A`` (e.g. ``Downsample(4)``, ``GaussianBlur(3.0)``, ``Inpaint(mask)``),
        a deepinv ``LinearPhysics``, or a differentiable callable for solvers that accept one.
        A blur with an unknown kernel, :class:`~pnpdiff.operators.BlindBlur` (or
        ``GaussianBlur(sigma="estimate")``), is estimated from ``y`` first -- a parametric kernel
        by :mod:`pnpdiff.kernel_fit`, a free one as the most likely of an L0 MAP-k kernel refined
        by the plug-and-play EM (:func:`pnpdiff.blind.estimate_kernel`) and the parametric fits
        (:func:`pnpdiff.kernel_fit.kernel_log_likelihood`) -- and the image is then restored with it
        (``return_operator=True`` returns the :class:`~pnpdiff.operators.Blur` found; the info's
        ``kernel`` says how). A restoration less sparse than ``y`` solved with the delta kernel (a
        kernel that did not deblur; :func:`pnpdiff.blind.normalised_sparsity`) gives way to that solve
        and the delta.
    prior : str or Prior or callable
        ``"natural"`` (FFDNet, works offline), ``"ffhq"`` / ``"imagenet"`` (ADM checkpoints, need
        the file), ``"name:/path/to/checkpoint"``, a :class:`~pnpdiff.Prior`, a deepinv denoiser
        or a callable ``(x, sigma) -> x0``.
    method : str, optional
        Solver name, a key of :data:`pnpdiff.solvers.SOLVERS`, or ``"auto"``. Default (or
        ``"auto"``): chosen from the problem by :func:`pnpdiff.problem.choose` -- ``"mmse"`` (the
        prior's posterior mean at ``sigma_y``, one denoiser call) for denoising (``Identity``);
        for a denoiser prior such as ``"natural"``, half-quadratic splitting (``"dpir"``) or
        ``"diffpir"`` with settings read from the operator's spectrum and ``sigma_y``; the task's
        default method (``"diffpir"``, ``"dps"`` for a nonlinear model) otherwise. What was chosen
        and why: ``return_info=True``.
    steps : int, optional
        Number of denoiser evaluations; default per task and method.
    sigma_y : float, optional
        Standard deviation of the measurement noise in [0, 1] units. Default: estimated from ``y``
        by the median absolute deviation of its finest wavelet coefficients.
    seed : int or sequence of int, optional
        Seed of the ``torch.Generator`` that drives every random draw (same seed, same device:
        same result). A sequence gives one seed per image of the batch: each image then draws
        its noise from its own generator, and its result does not depend on the other images
        in the batch.
    device : str or torch.device, optional
        Where to compute; default the input tensor's device, else CUDA when available.
    progress : bool
        Show a progress bar.
    max_memory : int or str, optional
        Largest memory the solve may use (bytes, or ``"8G"``, ``"512M"``; ``"off"`` disables the
        check). Default: what the device has available, or ``$PNPDIFF_MAX_MEMORY``. A run whose
        estimate exceeds it is refused with :class:`~pnpdiff.MemoryLimitError` before anything
        large is allocated.
    label : int or sequence of int, optional
        Restore *as* this class (one label, or one per image) with a class-conditional prior such
        as ``"digits"`` (:mod:`pnpdiff.guidance`): e.g. inpaint a digit as a 3.
    cfg : float, optional
        Classifier-free guidance weight ``w`` (Ho and Salimans 2021) on top of ``label``.
    classifier, classifier_scale : optional
        Classifier guidance (Dhariwal and Nichol 2021): ``"digits"``, a ``classifier.pt`` path or
        a loaded classifier, and its scale ``s`` (default 1). Guidance changes the denoiser, so it
        composes with every method (DPS and PiGDM differentiate through it).
    precision : {"fp32", "bf16", "fp16"}
        Precision of the denoiser's network (``torch.autocast``; ``"fp16"`` on CUDA only); the
        data-consistency steps, FFTs, CG and the schedule stay in float32 / float64
        (:mod:`pnpdiff.priors.runtime`).
    compile : bool
        Run the denoiser through ``torch.compile`` (cached per shape; pays off on long solves).
    calibrate : bool
        Choose the settings from a few candidates using only ``y``, the operator and ``sigma_y``
        (:mod:`pnpdiff.calibrate`: Stein's unbiased risk estimate, projected where the operator
        has a spectral view, with the divergence by random probes; or the discrepancy principle).
        Costs one solve per candidate and per probe; what was chosen and why is in the info
        (``return_info=True``). Not for ``method="smc"`` or guided solves.
    noise : str, mapping or NoiseModel, optional
        The measurement's noise model (:mod:`pnpdiff.noise`): ``{"model": "poisson", "peak": 10}``
        (photon counts; ``peak`` photons at white), ``{"model": "poisson-gaussian", "gain": 0.01,
        "sigma_y": 0.02}`` (shot noise and read noise), ``{"model": "gaussian", "sigma_y": s}``
        (the same as ``sigma_y=s``), or a model name alone: its numbers are then estimated from
        ``y`` (:func:`pnpdiff.noise.estimate_poisson_gaussian`). ``dpir`` and ``diffpir`` take the
        prox of its negative log-likelihood as their data step and ``dps`` its weighted residual;
        the other methods assume Gaussian noise: for denoising they run on the generalised Anscombe
        transform of ``y`` (Gaussian noise of unit variance) and map back with its exact unbiased
        inverse (Makitalo and Foi 2013), otherwise they refuse the model. Default: Gaussian noise
        of level ``sigma_y``.
    return_operator : bool
        Also return the operator the image was restored with (the estimated
        :class:`~pnpdiff.operators.Blur` of a :class:`~pnpdiff.operators.BlindBlur`):
        ``(x_hat, operator)``, or ``(x_hat, operator, info)`` with ``return_info``.
    return_info : bool
        Return ``(x_hat, info)``: ``info`` is a dict of what ran -- ``method``, its ``options``,
        ``steps``, ``sigma_y``, ``rule`` (why the method was chosen, when ``method`` was not
        given: :mod:`pnpdiff.problem`), ``calibration`` (the candidates' scores and the
        choice) and ``denoiser_calls``.
    **options
        Solver hyper-parameters (e.g. ``lam``, ``zeta`` for DiffPIR), ``schedule`` (a name from
        :mod:`pnpdiff.schedules` or an explicit decreasing tensor of sigmas) and its range
        ``schedule_max`` / ``schedule_min`` (clipped to the prior's range; ``schedule_min`` may be
        ``"sigma_y"``, the measurement noise level).

    Returns
    -------
    The restored image, of the same kind as ``y`` (a path gives a PIL image); with
    ``return_info=True`` the pair ``(image, info)``; with ``return_operator=True`` the operator
    follows the image: ``(image, operator)`` or ``(image, operator, info)``.

    Raises
    ------
    PnPError
        Every mistake a caller can make: a :class:`~pnpdiff.ShapeError`,
        :class:`~pnpdiff.ValueRangeError` (wrong type, NaN, out of range),
        :class:`~pnpdiff.UnknownNameError`, :class:`~pnpdiff.InputFileError` /
        :class:`~pnpdiff.ImageReadError` (paths), :class:`~pnpdiff.WeightsNotFoundError`,
        :class:`~pnpdiff.MemoryLimitError`, ...

    Notes
    -----
    A three-channel ``y`` whose channels agree to within 1/255 (a grey photo stored as RGB) is
    restored as one channel and copied back into three, when the operator acts alike on every
    channel and the prior handles grey images (``prior.accepts_grey``, true for ``"natural"``):
    its noise is copied across the channels too, which a colour denoiser would under-estimate
    by ``sqrt(3)`` on the grey axis.
    """
    if not isinstance(return_info, bool):
        raise ValueRangeError(f"return_info must be true or false, got {return_info!r}")
    if not isinstance(return_operator, bool):
        raise ValueRangeError(f"return_operator must be true or false, got {return_operator!r}")
    def plan_for(op: Any) -> _SolvePlan:
        plan = _resolve_solve(y, op, prior, method, steps, sigma_y, seed, device, progress, max_memory,
                              guidance={"label": label, "cfg": cfg, "classifier": classifier,
                                        "classifier_scale": classifier_scale},
                              precision=precision, compile=compile, options=dict(options), calibrate=calibrate,
                              noise=noise)
        _check_solve(plan)
        return plan

    plan = plan_for(operator)
    out, info = _run_solve(plan, stacklevel=3)
    used = plan.operator
    if plan.blind is not None:
        out, info, used = _sharpness_guard(plan, out, info, plan_for)
    result = (plan.back(out), *((used,) if return_operator else ()), *((info,) if return_info else ()))
    return result if len(result) > 1 else result[0]


#: how much less sparse than ``y`` denoised a blind restoration may be before the guard rejects its
#: kernel (relative): midway between the largest excess of a good kernel (0.3 %: chelsea, Gaussian
#: sigma 0.6, an extra tuning row; rejecting it cost 4.5 dB) and the smallest of a wrong one (7.4 %:
#: brick, motion) on the tuning photos
GUARD_MARGIN = 0.04


def _sharpness_guard(plan: _SolvePlan, out: torch.Tensor, info: dict[str, Any],
                     plan_for: Callable[[Any], _SolvePlan]) -> tuple[torch.Tensor, dict[str, Any], Any]:
    """A blind solve's check against a wrong kernel: the restoration must be sparser than ``y`` denoised.

    ``y`` is also solved with the delta kernel (no deblurring: the same rule, prior and steps), and
    the two results compared by Krishnan et al.'s normalised sparsity
    (:func:`pnpdiff.blind.normalised_sparsity`), which falls as an image is sharpened and rises with
    ringing and ghost edges. A restoration less sparse than the denoised ``y`` (by more than
    :data:`GUARD_MARGIN`) means the kernel did not deblur it, and the denoised ``y`` is returned
    instead, its operator the delta kernel
    (``info["kernel"]["chosen"] == "delta"``; what was rejected under ``"rejected"``). Both numbers
    are in ``info["kernel"]["guard"]``.
    Why: the marginal likelihood that picks the kernel can prefer a wrong one, by far, on periodic
    textures (docs/real_photos.md); sparsity is an independent check. Measured on the 24 tuning
    rows of ``tests/benchmarks/real_photos.py`` (all candidates solved): it fires on the two brick
    rows only (motion: 16.6 dB kept -> 21.9, ``y`` 21.8, excess 7.4 %; Gaussian: 21.3 -> 21.3,
    18.6 %); the 22 others were 5.2 % to 46 % sparser than the denoised ``y``. On 24 more tuning
    rows with weak blurs (Gaussian 0.6 / 0.7, disk 1.5) none fires; without the margin one did
    (+0.3 %: 38.9 dB -> 34.4).
    """
    from pnpdiff.blind import normalised_sparsity  # (L5; only blind solves need it)

    blind = dict(plan.blind or {})
    op = plan.operator
    kh, kw = op.kernel.shape[-2:]
    delta = torch.zeros(kh, kw, dtype=torch.float64)
    delta[kh // 2, kw // 2] = 1.0
    delta_op = operators.Blur(delta, boundary=op.boundary)
    plan0 = plan_for(delta_op)
    out0, info0 = _run_solve(plan0, stacklevel=4)
    s_k, s_0 = normalised_sparsity(out), normalised_sparsity(out0)
    kept = not s_k > s_0 * (1 + GUARD_MARGIN)
    blind["guard"] = {"sparsity": round(s_k, 6), "sparsity_denoised": round(s_0, 6), "kept": kept,
                      "test": f"normalised sparsity of the restoration <= (1 + {GUARD_MARGIN:g}) x that of y "
                              "solved with the delta kernel",
                      "denoiser_calls": int(info0["denoiser_calls"])}
    calls = int(blind.get("denoiser_calls", 0)) + int(info["denoiser_calls"]) + int(info0["denoiser_calls"])
    if not kept:
        blind["rejected"] = {k: blind.pop(k) for k in ("chosen", "params", "stderr") if k in blind}
        blind.update({"chosen": "delta", "kernel": [[float(v) for v in row] for row in delta]})
        out, info, op = out0, info0, plan0.operator
        warnings.warn(f"the estimated blur did not deblur y (its restoration is less sparse than y denoised, by "
                      f"more than {GUARD_MARGIN:.0%}: {s_k:.3f} against {s_0:.3f}); returning y denoised and a delta "
                      "kernel. A periodic texture can mislead the kernel estimate: try a parametric family or a "
                      "smaller support",
                      PnPWarning, stacklevel=3)
    info["kernel"] = blind
    info["denoiser_calls"] = calls
    return out, info, op


@dataclass
class _SolvePlan:
    """What :func:`_resolve_solve` made of ``solve``'s arguments, completed by :func:`_check_solve`."""

    y: torch.Tensor  # the measurement, detached, on the device
    back: Callable[[torch.Tensor], Any]  # the result in the kind ``y`` was given as
    operator: Any
    prior: Any
    method: str
    solver: Callable[..., torch.Tensor]
    params: Mapping[str, inspect.Parameter]
    options: dict[str, Any]
    device: torch.device
    data_range: tuple[float, float] | None
    steps: int | None
    sigma_y: float | None
    seed: int | None
    seeds: list[int] | None
    progress: bool
    max_memory: int | str | None
    guidance: dict[str, Any]
    precision: str
    compile: bool
    x_shape: torch.Size | None = None  # set by _check_solve
    start_shape: torch.Size | None = None  # a nonlinear operator's x shape that differs from y's
    schedule_steps: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    rule: problem.Choice | None = None  # what the rule chose when no method was named
    calibrate: bool = False
    noise: NoiseModel | None = None  # a Poisson(-Gaussian) model, its numbers known (None: Gaussian, sigma_y)
    blind: dict[str, Any] | None = None  # how the kernel of a BlindBlur was estimated


def _resolve_solve(y: Any, operator: Any, prior: Any, method: str | None, steps: int | None, sigma_y: float | None,
                   seed: int | Sequence[int] | None, device: Any, progress: bool, max_memory: int | str | None, *,
                   guidance: dict[str, Any], precision: str, compile: bool, options: dict[str, Any],
                   calibrate: bool = False, noise: Any = None) -> _SolvePlan:
    """Step 1 of ``solve``: read every argument (each checked as it is read) and resolve the names:
    the prior, the measurement as a tensor, the device, the operator, the method and its options."""
    if method == "auto":  # chosen from the problem (pnpdiff.problem), as when no method is named
        method = None
    if method is not None and (not isinstance(method, str) or method not in SOLVERS):
        raise UnknownNameError(f"unknown method {method!r}; known: {', '.join(sorted(SOLVERS))}")
    n_steps_arg = None if steps is None else check_int("steps", steps, minimum=1, maximum=MAX_STEPS)
    if sigma_y is not None:
        sigma_y = check_real("sigma_y", sigma_y, minimum=0.0, maximum=MAX_SIGMA_Y)
    check_tensor("y", y)
    seeds: list[int] | None = None
    if isinstance(seed, (list, tuple)):
        seeds = [check_int(f"seed[{i}]", s, minimum=0, maximum=MAX_SEED) for i, s in enumerate(seed)]
    elif seed is not None:
        seed = check_int("seed", seed, minimum=0, maximum=MAX_SEED)
    if not isinstance(progress, bool):
        raise ValueRangeError(f"progress must be true or false, got {progress!r}")
    if not isinstance(calibrate, bool):
        raise ValueRangeError(f"calibrate must be true or false, got {calibrate!r}")
    check_schedule_options(options)
    prior_obj = load_prior(prior)
    data_range = getattr(prior_obj, "data_range", (0.0, 1.0))
    if data_range is None and torch.is_tensor(y) and y.is_floating_point():
        # a prior of data that are not images (a Gaussian mixture, a scientific prior): the
        # measurement keeps its own layout, e.g. (B, m) vectors for a Matrix operator
        x_y, back = y, (lambda out: out)
    else:
        x_y, back = to_tensor(y)
    if x_y.numel() == 0:
        raise ShapeError(f"y is empty (shape {tuple(x_y.shape)}); pass an image with at least one pixel")
    x_y = x_y.detach()  # solving is not differentiable in y: a y from a network keeps no graph here
    dev = resolve_device(device, x_y)
    model = None if noise is None else noise_model(noise)
    if model is not None and model.is_gaussian:  # the same as sigma_y
        if model.sigma is not None:
            if sigma_y is not None and sigma_y != model.sigma:
                raise ValueRangeError(f"sigma_y = {sigma_y:g} and noise sigma_y = {model.sigma:g} disagree; give one")
            sigma_y = model.sigma
        model = None
    elif model is not None and sigma_y is not None:
        raise ValueRangeError(f"sigma_y is the level of Gaussian noise; with the {model.model} noise model give the "
                              "read noise as noise={'model': 'poisson-gaussian', 'sigma_y': ...}")
    if model is not None:
        if calibrate:
            raise ValueRangeError(f"calibrate=True scores candidates by Gaussian risk estimates; it does not apply to "
                                  f"the {model.model} noise model")
        check_range(x_y, "y", None)  # NaN / inf before the fit
        model = model.resolve(x_y)
    # counts stray further from [0, 1] than Gaussian noise: 1.5 x their standard deviation at white
    spread = sigma_y if model is None else 1.5 * math.sqrt(model.variance(torch.ones(())).item())
    check_range(x_y, "y", measurement_range(operator, data_range), min(spread, 10.0) if model else spread)
    blind = None
    if isinstance(operator, operators.BlindBlur):  # the kernel from y first, then a non-blind solve with it
        sig = sigma_y if model is None else model.matched_sigma(x_y)
        op, blind = estimate_blur(operator, x_y.to(resolve_device(device, x_y)), sig, prior_obj, seed=seed,
                                  progress=progress)
    else:
        op = resolve_operator(operator)
    rule = None
    if method is None:
        rule = choose_method(op, x_y, sigma_y if model is None else model.matched_sigma(x_y), prior_obj, options,
                             noise=model)
        method = rule.method
    if model is not None:
        check_noise_model(method, model, task_of(op))
    solver = SOLVERS[method]
    params = inspect.signature(solver).parameters
    for key in options:
        if key not in SCHEDULE_KEYS and (key not in params or key in SET_BY_SOLVE):
            allowed = [p for p in params if p not in SET_BY_SOLVE and p != "progress"]
            raise UnknownNameError(
                f"method {method!r} has no option {key!r}; its options are: "
                f"{', '.join(allowed + list(SCHEDULE_KEYS))}"
            )
        if key in params:
            options[key] = check_option(method, key, options[key], params[key].default, params[key].annotation)
    x_y = x_y.to(dev)
    if isinstance(op, torch.nn.Module):
        op = op.to(dev)
    return _SolvePlan(y=x_y, back=back, operator=op, prior=prior_obj, method=method, solver=solver, params=params,
                      options=options, device=dev, data_range=data_range, steps=n_steps_arg, sigma_y=sigma_y,
                      seed=seed, seeds=seeds, progress=progress, max_memory=max_memory, guidance=guidance,
                      precision=precision, compile=compile, rule=rule, calibrate=calibrate, noise=model,
                      blind=blind)


def _check_solve(plan: _SolvePlan) -> None:
    """Step 2 of ``solve``: what needs the resolved pieces together -- the measurement against the
    operator (the shape of ``x``), the image against the prior, ``x_init``, and the memory (the
    method's own plan of it: SMC's particles) -- before anything large is allocated."""
    op, x_y, prior_obj, options, dev = plan.operator, plan.y, plan.prior, plan.options, plan.device
    # the shape of x: A^T y for linear operators, what a forward model states for the others
    x_shape = x_y.shape
    if hasattr(op, "adjoint"):
        try:
            x_shape = op.adjoint(x_y).shape
        except PnPError:
            raise
        except (RuntimeError, ValueError, TypeError, IndexError) as err:
            raise ShapeError(
                f"the measurement of shape {tuple(x_y.shape)} does not fit the operator "
                f"{type(op).__name__}: {' '.join(str(err).split())}"
            ) from None
        if hasattr(prior_obj, "check_image"):
            prior_obj.check_image(torch.empty(x_shape, device="meta"))
    elif callable(getattr(op, "x_shape", None)):  # a forward model (pnpdiff.operators) states it
        x_shape = torch.Size(op.x_shape(tuple(x_y.shape)))
        if x_shape != x_y.shape:  # (PhaseRetrieval: y is the padded spectrum) the solver starts in x's shape
            plan.start_shape = x_shape
            if hasattr(prior_obj, "check_image"):
                prior_obj.check_image(torch.empty(x_shape, device="meta"))
    x_init = options.get("x_init")
    if torch.is_tensor(x_init) and hasattr(op, "adjoint"):  # (a forward model alone does not tell x's shape)
        try:
            fits = torch.broadcast_shapes(x_init.shape, x_shape) == x_shape
        except RuntimeError:
            fits = False
        if not fits:
            raise ShapeError(f"option 'x_init' must have the shape of the image to restore, {tuple(x_shape)} "
                             f"(A^T y), or broadcast to it; got {tuple(x_init.shape)}")
        options["x_init"] = x_init.detach().to(dev, x_y.dtype).expand(x_shape).clone()
    schedule_arg = options.get("schedule")
    n_sched = (int(schedule_arg.numel()) if torch.is_tensor(schedule_arg) else plan.steps
               or int(_defaults(plan).get("steps", FALLBACK_STEPS)))
    mem_shape, extra = tuple(x_shape), 0
    info = descriptor(plan.method)
    if info is not None and info.plan_memory is not None:
        def fit(n: int, *, extra: int, scale_y: bool) -> int:
            return costs.largest_fitting_batch(tuple(x_shape), tuple(x_y.shape), prior_obj, plan.method, n, dev,
                                               plan.max_memory, x_y.dtype, extra=extra, scale_y=scale_y,
                                               steps=n_sched)

        mem_plan = info.plan_memory(tuple(x_shape), x_y.element_size(), options, plan.params, fit)
        options.update(mem_plan.options)
        mem_shape, extra = tuple(mem_plan.x_shape), int(mem_plan.extra)
    check_solve_memory(mem_shape, tuple(x_y.shape), prior_obj, plan.method, dev, x_y.dtype, plan.max_memory, extra,
                       n_sched)
    plan.x_shape, plan.schedule_steps = x_shape, n_sched


def _run_solve(plan: _SolvePlan, stacklevel: int = 2) -> Any:
    """Step 3 of ``solve``: the prior on the device (precision, compilation, guidance), a grey photo
    stored as RGB as one channel, the defaults and the schedule, the generators, the solver's run;
    the result as a tensor (``solve`` gives it back in the kind ``y`` was given as; ``stacklevel``:
    of the warnings, for ``solve``'s caller)."""
    op, x_y, method, dev, options = plan.operator, plan.y, plan.method, plan.device, plan.options
    x_shape = plan.x_shape if plan.x_shape is not None else x_y.shape
    prior_obj = plan.prior.to(dev)
    prior_obj = with_runtime(prior_obj, plan.precision, plan.compile, dev)
    if any(v is not None for v in plan.guidance.values()):
        prior_obj = guided(prior_obj, **plan.guidance)
    # A grey photo stored as RGB (identical channels, identical noise) is restored as one channel:
    # a colour prior would see the copied noise as three independent draws and leave sqrt(3) times
    # too much of it on the grey axis (camera 128^2, blur 2 px: 24.1 dB as RGB, 26.0 dB as grey).
    grey_rgb = (
        plan.data_range is not None
        and (getattr(prior_obj, "channels", None) == 1 or getattr(prior_obj, "accepts_grey", False))
        and hasattr(op, "adjoint")
        and len(x_shape) == 4
        and x_shape[1] == 3
        and is_grey_rgb(x_y)
        and "x_init" not in options  # a starting estimate given in colour stays colour
        and acts_per_channel(op, x_shape, dev, x_y.dtype)
    )
    if grey_rgb:
        x_y = x_y.mean(1, keepdim=True)

    sigma_y = plan.sigma_y
    if plan.noise is not None:  # the Gaussian level of the same mean variance (schedule end, initial estimate)
        sigma_y = plan.noise.matched_sigma(x_y)
    elif sigma_y is None:
        sigma_y = estimate_noise_level(x_y)
    stab = None
    if plan.noise is not None and not plan.calibrate and plan.noise.model not in descriptor(method).noise_models:
        # a Gaussian-noise method on a denoising task: the variance-stabilising route, Gaussian noise of stab.sigma
        stab = Stabilised(plan.noise)
        sigma_y = stab.sigma
    p_max_noise = float(getattr(prior_obj, "sigma_max", math.inf))
    if sigma_y > p_max_noise:
        warnings.warn(
            f"sigma_y = {sigma_y:.4g} is above the largest noise level the prior "
            f"'{getattr(prior_obj, 'name', 'custom')}' was trained for ({p_max_noise:.4g}"
            f"{' = 75/255' if abs(p_max_noise - 75 / 255) < 1e-9 else ''}); the result relies on the "
            "denoiser extrapolating: check the noise level (image units [0, 1]) or use a prior "
            "trained for stronger noise",
            PnPWarning,
            stacklevel=stacklevel,
        )
    # every denoiser call is checked for NaN / inf (the prior's, or the iterate's), and so is the result
    op_name = type(op).__name__ if isinstance(op, torch.nn.Module) else getattr(op, "__name__", type(op).__name__)
    prior_obj = FiniteGuard(prior_obj, method, op_name)
    seed = plan.seed
    if plan.calibrate and seed is None and plan.seeds is None:
        # every candidate and probe must see the same noise (SURE differentiates y -> x_hat)
        seed = int(torch.randint(0, 2**62, (1,)).item())

    def run(y_in: torch.Tensor, name: str, settings: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        """One solve of ``y_in`` with method ``name`` and ``settings`` (defaults included)."""
        solver = SOLVERS[name]
        params = inspect.signature(solver).parameters
        n_steps = plan.steps if plan.steps is not None else int(settings.get("steps", FALLBACK_STEPS))
        schedule = settings.get("schedule", "ddpm")
        sched_max, sched_min = settings.get("schedule_max"), settings.get("schedule_min")
        opts = {k: v for k, v in settings.items() if k in params and k not in SET_BY_SOLVE}
        if torch.is_tensor(schedule):
            sigmas = schedule.to(torch.float64)
        else:
            p_min = float(getattr(prior_obj, "sigma_min", 0.0) or 0.0)
            p_max = float(getattr(prior_obj, "sigma_max", 40.0))
            s_max = min(float(sched_max), p_max) if sched_max is not None else p_max
            if sched_min == "sigma_y":  # end at the measurement's noise level (DPIR), at least 1/255
                sched_min = max(float(sigma_y), 1 / 255)
            s_min = max(float(sched_min), p_min) if sched_min is not None else (p_min or None)
            if s_min is not None:
                s_min = min(s_min, s_max)
            sigmas = schedules.get_schedule(str(schedule), n_steps, sigma_min=s_min, sigma_max=s_max)
        noise_arg: dict[str, Any] = {}
        if plan.noise is not None and plan.noise.model in descriptor(name).noise_models:
            noise_arg = {"noise": plan.noise}
        generator: torch.Generator | list[torch.Generator] | None = None
        if plan.seeds is not None:
            if len(plan.seeds) != y_in.shape[0]:
                raise ShapeError(f"{len(plan.seeds)} seeds for a batch of {y_in.shape[0]} images; give one seed per "
                                 "image")
            generator = [torch.Generator(device=dev).manual_seed(s) for s in plan.seeds]
        elif seed is not None:
            generator = torch.Generator(device=dev).manual_seed(int(seed))
        if plan.start_shape is not None and "x_init" in params and opts.get("x_init") is None:
            # a forward model whose x differs in shape from y: start from the prior's mean in x's shape
            # (what the solver starts from for a y-shaped x)
            opts["x_init"] = prior_obj.data_moments(
                torch.empty(plan.start_shape, device=dev, dtype=y_in.dtype))[0].clone()
        try:
            out = solver(y_in, op, prior_obj, sigmas, float(sigma_y), generator=generator, progress=plan.progress,
                         **opts, **noise_arg)
        except torch.OutOfMemoryError:
            raise MemoryLimitError(
                f"the {name} solve of {memory.describe_shape(x_shape)} ran out of memory on {dev}; "
                f"use a smaller image, a method without backpropagation "
                f"({', '.join(costs.NO_BACKPROP_ALTERNATIVES)}) or a device with more memory"
            ) from None
        check_finite_result(out, name, op_name)
        if plan.data_range is not None:
            out = out.clamp(*plan.data_range)
        shown = {k: v for k, v in settings.items() if k in params or k in SCHEDULE_KEYS}
        shown = {k: (v if isinstance(v, (int, float, str, bool)) or v is None else type(v).__name__)
                 for k, v in shown.items() if k not in ("callback", "x_init")}
        return out, {"method": name, "steps": int(sigmas.numel() - 1 if torch.is_tensor(schedule) else n_steps),
                     "options": shown}

    settings = {**_defaults(plan), **options}
    calibration = None
    if plan.calibrate:
        out, ran, calibration = _calibrate_solve(plan, x_y, float(sigma_y), settings, run)
    elif stab is not None:
        out, ran = run(stab.forward(x_y), method, settings)
        out = stab.inverse(out)
        ran["stabilised"] = "generalised Anscombe transform, exact unbiased inverse"
    else:
        out, ran = run(x_y, method, settings)
    if grey_rgb:
        out = out.expand(-1, 3, -1, -1)
    info = {**ran, "sigma_y": float(sigma_y), "sigma_y_estimated": plan.sigma_y is None,
            "rule": None if plan.rule is None else plan.rule.reason,
            "regime": None if plan.rule is None else plan.rule.regime,
            "informative_fraction": None if plan.rule is None else plan.rule.informative,
            "calibration": calibration, "denoiser_calls": int(prior_obj.calls),
            "noise": None if plan.noise is None else plan.noise.as_dict()}
    return out, info


def _calibrate_solve(plan: _SolvePlan, y: torch.Tensor, sigma_y: float, settings: dict[str, Any],
                     run: Callable[[torch.Tensor, str, dict[str, Any]], tuple[torch.Tensor, dict[str, Any]]]
                     ) -> tuple[torch.Tensor, dict[str, Any], dict[str, Any]]:
    """``solve(calibrate=True)``: run each candidate of :func:`pnpdiff.problem.candidates` (the
    caller's own options fixed in all of them; with a named method, only that method's rows) and
    keep the one :func:`pnpdiff.calibrate.select` scores best from ``y``, ``A`` and ``sigma_y``."""
    if plan.method == "smc" or any(v is not None for v in plan.guidance.values()):
        raise ValueRangeError("calibrate=True chooses among point-estimate settings; it does not apply to "
                              "method 'smc' or to guided solves")
    task = task_of(plan.operator)
    choice = plan.rule or problem.Choice(plan.method, {}, "named", None, sigma_y, f"method {plan.method!r} named")
    name = getattr(plan.prior, "name", "custom")
    cands: list[dict[str, Any]] = []
    for m, opts in problem.candidates(choice, task):
        if plan.rule is None and m != plan.method:
            continue
        full = {"method": m, **default_options(name, task, m), **opts, **plan.options}
        if plan.steps is not None:
            full["steps"] = plan.steps
        if all(full != c for c in cands):
            cands.append(full)
    if not cands:
        cands = [{"method": plan.method, **settings}]
    def f(y_in: torch.Tensor, cand: dict[str, Any]) -> torch.Tensor:
        return run(y_in, cand["method"], {k: v for k, v in cand.items() if k != "method"})[0]

    from pnpdiff.calibrate import select as select_calibration  # (L5; only calibrated solves need it)

    cal = select_calibration(y, plan.operator, sigma_y, cands, f)
    first = cands[cal.index[0]]
    ran = {"method": first["method"],
           "steps": int(plan.steps if plan.steps is not None else first.get("steps", FALLBACK_STEPS)),
           "options": {k: v for k, v in first.items()
                       if k not in ("method", "steps") and isinstance(v, (int, float, str, bool))}}

    def short(c: dict[str, Any]) -> str:
        keys = ", ".join(f"{k} {c[k]:g}" for k in ("lam", "zeta") if isinstance(c.get(k), (int, float)))
        return f"{c['method']} {keys}, {int(plan.steps or c.get('steps', FALLBACK_STEPS))} steps"

    chosen = sorted({short(cands[i]) for i in cal.index})
    shown = {
        "criterion": cal.criterion,
        "summary": f"{' / '.join(chosen)} of {len(cands)} candidates by {cal.criterion}"
                   + (" SURE" if cal.criterion in ("denoise", "projected", "predicted") else ""),
        "reason": cal.reason,
        "chosen": [int(i) for i in cal.index],
        "candidates": [short(c) for c in cands],
        "scores": [[float(v) for v in row] for row in cal.scores.tolist()],
        "discrepancy": [[float(v) for v in row] for row in cal.discrepancy.tolist()],
        "solves": int(cal.calls),
    }
    return cal.x_hat, ran, shown


def check_solve_memory(x_shape: Any, y_shape: Any, prior: Any, method: str, dev: torch.device,
                       dtype: torch.dtype, max_memory: int | str | None, extra: int = 0, steps: int = 0) -> None:
    """Refuse, before anything large is allocated, a solve that cannot fit in memory.

    Parameters
    ----------
    x_shape, y_shape : sequence of int
        Shapes of the image and of the measurement.
    prior : Prior or str
        The prior (or its name).
    method : str
        The method: its memory model, and its advice in the message (a method without
        backpropagation, :func:`pnpdiff.costs.memory_advice`).
    dev : torch.device
        Where the solve runs.
    dtype : torch.dtype
        Dtype of the solver's tensors.
    max_memory : int, str or None
        A limit set on purpose (``solve``'s ``max_memory``).
    extra : int
        Bytes a method holds beyond the estimate (e.g. smc's particles).
    steps : int
        The schedule's length.

    Raises
    ------
    MemoryLimitError
        When the estimate exceeds the limit.
    """
    need = costs.estimate_solve_bytes(tuple(x_shape), tuple(y_shape), prior, method, dtype, steps=steps) + int(extra)
    what = f"{memory.describe_shape(x_shape)} with {method} and the '{getattr(prior, 'name', 'custom')}' prior"
    memory.check_memory(need, dev, what=what, limit=max_memory, advice=costs.memory_advice(method))
