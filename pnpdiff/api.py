"""``pnpdiff.solve``: resolve names, pick per-task defaults, move to the device, call the solver."""

from __future__ import annotations

import inspect
import math
import numbers
import warnings
from collections.abc import Sequence
from typing import Any

import torch

from pnpdiff import memory, schedules
from pnpdiff.errors import (
    MemoryLimitError,
    OperatorError,
    PnPError,
    PnPWarning,
    ShapeError,
    UnknownNameError,
    ValueRangeError,
)
from pnpdiff.io import check_range, to_tensor
from pnpdiff.priors import load_prior
from pnpdiff.solvers import SOLVERS
from pnpdiff.solvers.common import FiniteGuard, check_finite_result, estimate_noise_level

__all__ = ["solve", "task_of", "default_method", "default_options", "default_steps", "DEFAULTS", "OPTION_RANGES",
           "MAX_STEPS", "MAX_SIGMA_Y"]

#: per (prior family, task, method) hyper-parameters; ``"*"`` matches any prior / task.
#: Tuned on scikit-image photos at 256x256 with sigma_y = 0.025 (see docs/quality.md).
DEFAULTS: dict[tuple[str, str, str], dict[str, Any]] = {
    # paper defaults (lambda_paper = 7 -> lam = 1.75 in pnpdiff units, zeta = 0.3) for priors
    # that cover the whole sigma range; the FFDNet "natural" prior (sigma <= 75/255) needs a
    # stronger data term and full re-noising (measured on astronaut, coffee, chelsea at 256^2):
    ("*", "*", "diffpir"): {"steps": 50, "schedule": "ddpm", "lam": 1.75, "zeta": 0.3},
    ("natural", "*", "diffpir"): {"steps": 20, "lam": 0.5, "zeta": 1.0},
    # inpainting fills holes from the prior alone and gains from more steps: 70 % random mask,
    # 5 photos, 20 -> 50 steps +0.26 to +0.54 dB (100 steps: no better than 50); a 128^2 box
    # -0.24 to +0.09 dB (mean -0.04)
    ("natural", "inpaint", "diffpir"): {"steps": 50},
    # DPIR (Zhang et al. 2021): 8 iterations, sigma log-spaced from 49/255 down to the noise level
    ("*", "*", "dpir"): {"steps": 8, "schedule": "geometric", "schedule_max": 49 / 255,
                         "schedule_min": "sigma_y"},
    ("*", "sr", "dpir"): {"steps": 24},
    # DPS's step zeta / ||y - A x0|| shrinks per pixel as the number of measurements grows, and
    # the paper's zeta' = 1 (1000 steps from sigma 80) is far too weak for 50 steps below
    # FFDNet's 75/255. Measured at 256^2 with sigma_y = 0.025 (zeta: PSNR): Gaussian deblur on
    # astronaut 1: 21.75, 3: 22.15, 10: 22.54, 30: 22.32 and on coffee 5: 25.17, 10: 25.28,
    # 20: 25.25; SR x4 on astronaut 1: 21.97, 3: 23.02, 10: 22.57 and on coffee 2: 25.81,
    # 5: 25.88; 70 % inpainting on astronaut 1: 24.62, 5: 25.70, 10: 25.55.
    ("natural", "*", "dps"): {"zeta": 5.0},
    ("natural", "deblur", "dps"): {"zeta": 10.0},
    ("natural", "sr", "dps"): {"zeta": 4.0},
    # RED-diff with the paper's lambda = 0.25 (official-code normalisation) is a little too
    # smooth for 50 steps below 75/255. Measured at 256^2 (lam: PSNR): Gaussian deblur on
    # astronaut 0.04: 24.02, 0.09: 23.97, 0.25: 23.41, 0.6: 22.81 and on coffee 0.05: 26.50,
    # 0.1: 26.70, 0.25: 26.52; SR x4 on astronaut 0.05: 23.65, 0.1: 23.66, 0.25: 23.46.
    ("natural", "*", "reddiff"): {"lam": 0.1},
    # one denoiser call at sigma_y (docs/denoising.md)
    ("*", "*", "mmse"): {"steps": 1},
    # posterior samplers (docs/posterior.md). DAPS: the paper's annealing 100 -> 0.1 on [-1, 1]
    # (poly-7 = Karras), halved; PnP-DM: rho_0 = 10, rho_min = 0.3 on [-1, 1], halved, geometric
    ("*", "*", "smc"): {"steps": 50},
    ("*", "*", "daps"): {"steps": 50, "schedule": "karras", "schedule_max": 50.0, "schedule_min": 0.05},
    ("*", "*", "pnpdm"): {"steps": 40, "schedule": "geometric", "schedule_max": 5.0, "schedule_min": 0.15},
}


#: solver arguments that ``solve`` fills in itself (``seed`` gives the generator)
_SET_BY_SOLVE = ("y", "operator", "prior", "sigmas", "sigma_y", "generator")
#: options that shape the sigma schedule rather than the solver
_SCHEDULE_KEYS = ("schedule", "schedule_max", "schedule_min")


def task_of(operator: Any) -> str:
    """Name of the restoration task an operator (or an operator class name) stands for (used to
    look up defaults)."""
    name = operator if isinstance(operator, str) else type(operator).__name__
    if name in ("Blur", "GaussianBlur", "UniformBlur", "MotionBlur"):
        return "deblur"
    if name == "Downsample":
        return "sr"
    if name == "Inpaint":
        return "inpaint"
    if name == "Identity":
        return "denoise"
    if name == "Colorize":
        return "colorize"
    if name in ("SaturatedBlur", "PhaseRetrieval"):
        return "nonlinear"
    if not isinstance(operator, str) and callable(operator) and not hasattr(operator, "adjoint"):
        return "nonlinear"  # a forward model without an adjoint: a custom (nonlinear) camera, solved by DPS
    return "generic"


def default_options(prior_name: str, task: str, method: str) -> dict[str, Any]:
    """The default hyper-parameters for a prior, a task and a method (most specific wins)."""
    family = prior_name.split(":")[0]
    out: dict[str, Any] = {}
    for key in [("*", "*", method), (family, "*", method), ("*", task, method), (family, task, method)]:
        out.update(DEFAULTS.get(key, {}))
    return out


#: denoiser evaluations when neither the caller nor the defaults table gives a number
FALLBACK_STEPS = 50


def default_steps(prior_name: str, task: str, method: str) -> int:
    """The number of steps ``solve`` runs when ``steps`` is not given."""
    return int(default_options(prior_name, task, method).get("steps", FALLBACK_STEPS))


def default_method(task: str) -> str:
    """The method ``solve`` runs when none is given: the prior's MMSE estimate (one denoiser call
    at ``sigma_y``, Tweedie's formula) for denoising, DPS for a nonlinear forward model (it needs
    only ``A(x)`` and autograd), DiffPIR for every other task."""
    if task == "nonlinear":
        return "dps"
    return "mmse" if task == "denoise" and "mmse" in SOLVERS else "diffpir"


#: ranges of the integer arguments and recipe keys, one place for ``solve``, ``sample`` and recipes
#: (docs/recipes.md lists them): ``steps`` 1 .. MAX_STEPS (a schedule of more sigmas is a mistake,
#: not a run); every seed 0 .. MAX_SEED (a signed 64-bit generator seed); an image side (``size``)
#: 1 .. MAX_SIDE; a count of images drawn or restored together (``n``, ``batch_size``, ``samples``)
#: 1 .. MAX_COUNT. The memory guard still judges what fits.
MAX_STEPS = 100_000
MAX_SEED = 2**63 - 1
MAX_SIDE = 16_384
MAX_COUNT = 65_536
#: the largest measurement noise level ``sigma_y`` (in the data's units: [0, 1] for images, where a
#: noise level above 1 already drowns the image); beyond it the data steps overflow to NaN
MAX_SIGMA_Y = 1e3
#: the most SMC particles (and probes, particles per denoiser call) one measurement takes
MAX_PARTICLES = 2**20

#: documented ranges of the solvers' options, ``(method, key) -> (low, high, low excluded)``
#: (``None``: no bound), checked by ``solve`` before anything runs; a value outside is refused
#: naming the option (``docs/errors.md``). The solvers check the rest themselves (daps' ``lr``, ...).
OPTION_RANGES: dict[tuple[str, str], tuple[float | None, float | None, bool]] = {
    # rho_t = lam sigma_y^2 / t^2: lam = 0 drops the prior from the data step (the least-squares fit)
    ("diffpir", "lam"): (0.0, 1e6, True),
    ("diffpir", "zeta"): (0.0, 1.0, False),  # a fraction of fresh noise: sqrt(1 - zeta), sqrt(zeta)
    ("dpir", "lam"): (0.0, 1e6, True),
    ("dps", "zeta"): (0.0, 1e3, False),  # the step zeta' / ||y - A x0||; the tuned ones are 1 to 30
    ("reddiff", "lam"): (0.0, 1e6, False),
    ("reddiff", "lr"): (0.0, 1.0, True),
    ("ddrm", "eta"): (0.0, 1.0, False),
    ("ddrm", "eta_b"): (0.0, 1.0, False),
    ("ddrm", "svd_threshold"): (0.0, 1.0, False),
    ("ddnm", "eta"): (0.0, 1.0, False),
    ("ddnm+", "eta"): (0.0, 1.0, False),
    ("ddnm+", "svd_threshold"): (0.0, 1.0, False),
    ("ddnm", "travel_length"): (0, MAX_STEPS, False),
    ("ddnm+", "travel_length"): (0, MAX_STEPS, False),
    ("ddnm", "travel_repeat"): (1, 1000, False),
    ("ddnm+", "travel_repeat"): (1, 1000, False),
    ("pigdm", "eta"): (0.0, 1.0, False),
    ("pigdm", "guidance"): (0.0, 1e3, False),
    ("pigdm", "cg_iter"): (1, MAX_STEPS, False),
    ("pigdm", "data_std"): (0.0, 1e3, True),
    ("smc", "particles"): (1, MAX_PARTICLES, False),
    ("smc", "chunk_size"): (1, MAX_PARTICLES, False),
    ("smc", "probes"): (1, MAX_PARTICLES, False),
    ("smc", "samples"): (0, MAX_COUNT, False),
    ("smc", "svd_threshold"): (0.0, 1.0, False),
    ("daps", "ode_steps"): (1, MAX_STEPS, False),
    ("daps", "langevin_steps"): (0, MAX_STEPS, False),
    ("daps", "ode_sigma_min"): (0.0, None, False),
    ("daps", "beta_y"): (0.0, MAX_SIGMA_Y, True),
    ("pnpdm", "prior_steps"): (1, MAX_STEPS, False),
    ("pnpdm", "langevin_steps"): (1, MAX_STEPS, False),
    ("pnpdm", "prior_sigma_min"): (0.0, None, False),
}


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
    bounds = OPTION_RANGES.get((method, key))
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


def _check_option(method: str, key: str, value: Any, default: Any, annotation: Any = None) -> Any:
    """Refuse an option value whose kind does not match the solver's default (a string for
    ``lam``, a float for an integer count, NaN): the solver would fail deep inside or, worse,
    return an all-NaN image. An option whose default is ``None`` takes its kind from its
    annotation (``bool | None``: true, false or nothing)."""
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


def _check_schedule_options(opts: dict[str, Any]) -> None:
    """Check the schedule options in place; a list or tuple of numbers becomes a float64 tensor."""
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


def _device(device: Any, x: torch.Tensor) -> torch.device:
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


def _as_operator(operator: Any) -> Any:
    """A pnpdiff operator, a deepinv ``LinearPhysics`` (wrapped), or a nonlinear callable as is."""
    from pnpdiff.operators import as_operator

    try:
        return as_operator(operator)
    except OperatorError:
        if not callable(operator):
            raise
        from deepinv.physics import Physics  # already imported by as_operator

        if isinstance(operator, Physics):  # nonlinear deepinv physics: calling it adds noise
            raise
        return operator  # a differentiable forward model, for the solvers that need only VJPs


def _is_grey_rgb(y: torch.Tensor) -> bool:
    """Whether a 3-channel measurement holds a grey image: its channels agree to 1/255 (the
    rounding of an 8-bit RGB file of a grey photo, JPEG's colour conversion included)."""
    if y.ndim != 4 or y.shape[1] != 3:
        return False
    return bool(((y - y[:, :1]).abs().amax() <= 1.0 / 255 + 1e-6).item())


def _acts_per_channel(op: Any, x_shape: torch.Size, device: torch.device,
                      dtype: torch.dtype = torch.float32) -> bool:
    """Whether ``op`` applies one and the same map to every channel, so that a grey image copied
    into three channels can be restored as one channel: checked on a random probe
    (``A(z, z, z) == (A z, A z, A z)``); an operator that refuses one channel is not."""
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
    prior : str or Prior or callable
        ``"natural"`` (FFDNet, works offline), ``"ffhq"`` / ``"imagenet"`` (ADM checkpoints, need
        the file), ``"name:/path/to/checkpoint"``, a :class:`~pnpdiff.Prior`, a deepinv denoiser
        or a callable ``(x, sigma) -> x0``.
    method : str, optional
        Solver name, a key of :data:`pnpdiff.solvers.SOLVERS`. Default: ``"mmse"`` (the prior's
        posterior mean at ``sigma_y``, one denoiser call) for denoising (``Identity``), else
        ``"diffpir"``.
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
    **options
        Solver hyper-parameters (e.g. ``lam``, ``zeta`` for DiffPIR), ``schedule`` (a name from
        :mod:`pnpdiff.schedules` or an explicit decreasing tensor of sigmas) and its range
        ``schedule_max`` / ``schedule_min`` (clipped to the prior's range; ``schedule_min`` may be
        ``"sigma_y"``, the measurement noise level).

    Returns
    -------
    The restored image, of the same kind as ``y`` (a path gives a PIL image).

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
    _check_schedule_options(options)
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
    dev = _device(device, x_y)
    check_range(x_y, "y", data_range, sigma_y)
    op = _as_operator(operator)
    if method is None:
        method = default_method(task_of(op))
    solver = SOLVERS[method]
    params = inspect.signature(solver).parameters
    for key in options:
        if key not in _SCHEDULE_KEYS and (key not in params or key in _SET_BY_SOLVE):
            allowed = [p for p in params if p not in _SET_BY_SOLVE and p != "progress"]
            raise UnknownNameError(
                f"method {method!r} has no option {key!r}; its options are: "
                f"{', '.join(allowed + list(_SCHEDULE_KEYS))}"
            )
        if key in params:
            options[key] = _check_option(method, key, options[key], params[key].default, params[key].annotation)
    x_y = x_y.to(dev)
    if isinstance(op, torch.nn.Module):
        op = op.to(dev)
    # the shape of x: A^T y for linear operators
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
    n_sched = (int(schedule_arg.numel()) if torch.is_tensor(schedule_arg) else n_steps_arg
               or default_steps(getattr(prior_obj, "name", "custom"), task_of(op), method))
    mem_shape, extra = tuple(x_shape), 0
    if method == "smc":  # the denoiser sees chunk_size particles at a time; all N are stored (about 8 copies)
        n_part = int(options.get("particles", params["particles"].default))
        extra = 8 * n_part * math.prod(x_shape) * x_y.element_size()
        if "chunk_size" not in options:  # as many particles per denoiser call as the memory budget allows
            options["chunk_size"] = memory.largest_fitting_batch(
                tuple(x_shape), tuple(x_y.shape), prior_obj, method, max(1, n_part), dev, max_memory, x_y.dtype,
                extra=extra, scale_y=False, steps=n_sched)
        chunk = int(options["chunk_size"])
        mem_shape = (x_shape[0] * max(1, min(n_part, chunk)), *x_shape[1:])
    _check_memory(mem_shape, tuple(x_y.shape), prior_obj, method, dev, x_y.dtype, max_memory, extra, n_sched)
    prior_obj = prior_obj.to(dev)
    from pnpdiff.priors.runtime import with_runtime

    prior_obj = with_runtime(prior_obj, precision, compile, dev)
    if label is not None or cfg is not None or classifier is not None or classifier_scale is not None:
        from pnpdiff.guidance import guided

        prior_obj = guided(prior_obj, label=label, cfg=cfg, classifier=classifier, classifier_scale=classifier_scale)
    # A grey photo stored as RGB (identical channels, identical noise) is restored as one channel:
    # a colour prior would see the copied noise as three independent draws and leave sqrt(3) times
    # too much of it on the grey axis (camera 128^2, blur 2 px: 24.1 dB as RGB, 26.0 dB as grey).
    grey_rgb = (
        data_range is not None
        and (getattr(prior_obj, "channels", None) == 1 or getattr(prior_obj, "accepts_grey", False))
        and hasattr(op, "adjoint")
        and len(x_shape) == 4
        and x_shape[1] == 3
        and _is_grey_rgb(x_y)
        and "x_init" not in options  # a starting estimate given in colour stays colour
        and _acts_per_channel(op, x_shape, dev, x_y.dtype)
    )
    if grey_rgb:
        x_y = x_y.mean(1, keepdim=True)

    opts = {**default_options(getattr(prior_obj, "name", "custom"), task_of(op), method), **options}
    n_steps = n_steps_arg if n_steps_arg is not None else int(opts.get("steps", FALLBACK_STEPS))
    schedule = opts.get("schedule", "ddpm")
    sched_max, sched_min = opts.get("schedule_max"), opts.get("schedule_min")
    opts = {k: v for k, v in opts.items() if k in params and k not in _SET_BY_SOLVE}

    if sigma_y is None:
        sigma_y = estimate_noise_level(x_y)
    p_max_noise = float(getattr(prior_obj, "sigma_max", math.inf))
    if sigma_y > p_max_noise:
        warnings.warn(
            f"sigma_y = {sigma_y:.4g} is above the largest noise level the prior "
            f"'{getattr(prior_obj, 'name', 'custom')}' was trained for ({p_max_noise:.4g}"
            f"{' = 75/255' if abs(p_max_noise - 75 / 255) < 1e-9 else ''}); the result relies on the "
            "denoiser extrapolating: check the noise level (image units [0, 1]) or use a prior "
            "trained for stronger noise",
            PnPWarning,
            stacklevel=2,
        )

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
    generator: torch.Generator | list[torch.Generator] | None = None
    if seeds is not None:
        if len(seeds) != x_y.shape[0]:
            raise ShapeError(f"{len(seeds)} seeds for a batch of {x_y.shape[0]} images; give one seed per image")
        generator = [torch.Generator(device=dev).manual_seed(s) for s in seeds]
    elif seed is not None:
        generator = torch.Generator(device=dev).manual_seed(int(seed))
    # every denoiser call is checked for NaN / inf (the prior's, or the iterate's), and so is the result
    op_name = type(op).__name__ if isinstance(op, torch.nn.Module) else getattr(op, "__name__", type(op).__name__)
    prior_obj = FiniteGuard(prior_obj, method, op_name)
    try:
        out = solver(x_y, op, prior_obj, sigmas, float(sigma_y), generator=generator, progress=progress, **opts)
    except torch.OutOfMemoryError:
        raise MemoryLimitError(
            f"the {method} solve of {memory.describe_shape(x_shape)} ran out of memory on {dev}; "
            "use a smaller image, a method without backpropagation (diffpir, dpir, ddnm) or a "
            "device with more memory"
        ) from None
    check_finite_result(out, method, op_name)
    if grey_rgb:
        out = out.expand(-1, 3, -1, -1)
    if data_range is not None:
        out = out.clamp(*data_range)
    return back(out)


def _check_memory(x_shape: Any, y_shape: Any, prior: Any, method: str, dev: torch.device,
                  dtype: torch.dtype, max_memory: int | str | None, extra: int = 0, steps: int = 0) -> None:
    """Refuse, before anything large is allocated, a solve that cannot fit in memory (``extra``:
    bytes a method holds beyond the estimate, e.g. smc's particles; ``steps``: the schedule's length)."""
    need = memory.estimate_solve_bytes(tuple(x_shape), tuple(y_shape), prior, method, dtype, steps=steps) + int(extra)
    what = f"{memory.describe_shape(x_shape)} with {method} and the '{getattr(prior, 'name', 'custom')}' prior"
    memory.check_memory(need, dev, what=what, limit=max_memory)
