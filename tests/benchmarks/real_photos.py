"""Real-photo benchmark of issue 28: blind deblurring, Poisson noise and the Poisson-Gaussian fit.

The acceptance benchmark of issue 28 ("Real photos: blind deblurring and real sensor noise"). It
uses the generalisation benchmark's photos and its fixed tuning / test split
(``tests/benchmarks/generalisation.py``: :data:`TUNE_PHOTOS` / :data:`TEST_PHOTOS`, instance seeds
by parity, even for tuning and odd for test), its photo loading (:func:`pnpdiff.io.load_source_image`,
centre-cropped and resized), its results file and its denoiser-call counter. Tune only on
``--split tune``; report only ``--split test`` (the default). Nothing here is tuned.

**Rows.** Photo ``j`` of a half has seed ``2 j + parity`` in every kind; a row id is
``KIND/sSEED/PHOTO`` (stable). A row's parameters are drawn by ``random.Random("KIND:SEED")``,
stratified so that a kind's rows in a half cover each range (the strata shuffled by
``random.Random("KIND:PARITY")``, as in the generalisation benchmark). Every photo of the half
is used (at 128 px the smallest, ``page`` and ``text``, are large enough; none is upscaled at the
default sizes, the noise fit's 256 px rows drop the photos smaller than that).

Section ``blind`` (128 px, ``--size`` to change; circular boundary; Gaussian noise of ``sigma_y``
seeded by the row, 0.01 or 0.025 alternating over photos and families, so every family sees both):

==========  ======================================================================================
kind        the true kernel (parameters drawn per row)
==========  ======================================================================================
motion      deepinv ``MotionBlurGenerator``, PSF side 25..41 (odd)
gaussian    pnpdiff ``GaussianBlur(sigma)``, sigma 0.8..4 (side ``2 ceil(3 sigma) + 1``)
defocus     the disk kernel of the generalisation benchmark, radius 2..6 px
==========  ======================================================================================

The support handed to the blind solves is the smallest odd side >= the true kernel's side + 4,
capped at 45 (and, for small smoke-test images only, at the largest odd side <= half the image):
the true kernel is used only to give the support a user would give ("a little larger than the
blur"), never its values. Methods, every one with the ``natural`` prior and ``seed=0``:

- ``observed``: the PSNR of ``y`` itself;
- ``true``: ``solve(y, Blur(k_true), sigma_y=...)``, the default solver given the true kernel;
- ``blind``: ``solve(y, BlindBlur(support), sigma_y=...)`` (a free kernel, estimated jointly with
  the image by :func:`pnpdiff.blind.estimate_kernel`, then the default solver with it);
- ``parametric``: ``solve(y, BlindBlur(support, family=KIND))`` (:mod:`pnpdiff.kernel_fit`); its
  parameter error is the relative error of the Gaussian's sigma or the disk's radius (a deepinv
  motion kernel is not a line: its parameters have no true value, only its kernel error counts);
- ``classical``: :func:`pnpdiff.baselines.blind_deconvolution` (the L0 prior of Pan et al.);
- ``best-gaussian``: the best PSNR of the default solve with ``GaussianBlur(s)`` over
  :data:`BEST_GAUSSIAN_SIGMAS`, chosen with the ground truth (the winning ``s`` is recorded).

The kernel error of ``blind``, ``parametric`` and ``classical`` is
:func:`pnpdiff.blind.centred_kernel_error` (relative L2 after centring) against the true kernel.

Section ``poisson`` (128 px): tasks ``denoise`` (``Identity``) and ``deblur`` (``GaussianBlur(1.6)``),
peaks 5, 10, 30, 100 photons at white, ``y = Poisson(peak A x) / peak`` (seeded by the row). Methods:

- ``default``: ``solve(y, A, noise=NoiseModel("poisson", 0, 1 / peak), seed=0)``;
- ``gaussian-matched``: the *same* method, steps and options the default ran (its info), but the
  solver function called directly with a Gaussian likelihood at ``sigma_y = model.matched_sigma(y)``
  and the schedule built as :func:`pnpdiff.solve` builds it (``solve`` itself refuses a ``y`` outside
  [0, 1] with Gaussian noise). For denoising the default is the one-call MMSE on the
  variance-stabilised ``y``; its Gaussian twin is the one-call MMSE on ``y`` at the matched level;
- ``anscombe-ffdnet`` (denoise only): ``Stabilised(model)``: forward, one ``prior.denoise`` at the
  stabilised level, clamp to [0, 1], exact unbiased inverse -- by hand;
- ``dpir-poisson`` (denoise only): ``solve(method="dpir", noise=model)`` (the Poisson prox).

Section ``noisefit`` (256 px): ``y = gain Poisson(x / gain) + N(0, sigma^2)`` for the pairs of
:data:`NOISEFIT_PAIRS`; method ``estimate``: :func:`pnpdiff.noise.estimate_poisson_gaussian(y)` and
the relative errors of the gain and of the read noise.

**Report** (``--out``, Markdown): per section and group the mean of every method, the differences
the issue's acceptance names, and the acceptance lines with PASS / FAIL (``n/a`` while a needed
method has not run): blind: mean ``blind - true >= -1.0`` dB, no row with ``blind < observed``,
mean ``blind - classical > 0``, mean ``blind - best-gaussian > 0``, the mean kernel error per
family, the parametric Gaussian sigma within 10 % on every Gaussian row (``sigma_y <= 0.025``);
poisson: per task and peak mean ``default > gaussian-matched`` and (denoising)
``default > anscombe-ffdnet``; noisefit: every gain and read-noise estimate within 15 %.
``--per-row`` adds every row. PSNR is :func:`pnpdiff.metrics.psnr` on the result clamped to [0, 1].

**Output.** ``--json`` is rewritten after every (row, method) cell; ``--resume`` skips the cells in it
(errors are rerun); ``--methods`` with an existing ``--json`` reruns only those methods and merges
them in; ``--from-json`` re-renders a report without running anything. Exit status 1 if a cell
failed with an error (``n/a`` does not count), else 0.

Usage (from the repository root)::

    python tests/benchmarks/real_photos.py --json /tmp/real_test.json --out /tmp/real_test.md
    python tests/benchmarks/real_photos.py --section blind --json /tmp/real_blind.json --out /tmp/real_blind.md
    python tests/benchmarks/real_photos.py --section poisson --json /tmp/real_poisson.json --out /tmp/real_poisson.md
    python tests/benchmarks/real_photos.py --section noisefit --json /tmp/real_noise.json --out /tmp/real_noise.md
    python tests/benchmarks/real_photos.py --list                                   # the rows, no run
    python tests/benchmarks/real_photos.py --json /tmp/real_test.json --resume      # go on after a stop
    python tests/benchmarks/real_photos.py --from-json /tmp/real_test.json --out /tmp/real.md --per-row
    python tests/benchmarks/real_photos.py --rows gaussian/s07/page --size 64 --methods observed true  # smoke
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import inspect
import json
import math
import platform
import random
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for _p in (ROOT, HERE):  # run as a script from anywhere; generalisation.py sits beside this file
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import generalisation as gen  # noqa: E402

import pnpdiff  # noqa: E402
from pnpdiff.errors import PnPError  # noqa: E402

Row = gen.Row
SECTIONS: tuple[str, ...] = ("blind", "poisson", "noisefit")
#: default image side per section (``--size`` overrides every section)
SECTION_SIZE: dict[str, int] = {"blind": 128, "poisson": 128, "noisefit": 256}

# -------------------------------------------------------------------------------------------------
# rows
# -------------------------------------------------------------------------------------------------
BLIND_FAMILIES: tuple[str, ...] = ("motion", "gaussian", "defocus")
BLIND_SIGMAS_Y: tuple[float, ...] = (0.01, 0.025)
#: the largest support handed to a blind solve
MAX_SUPPORT = 45
BEST_GAUSSIAN_SIGMAS: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0)
POISSON_TASKS: tuple[str, ...] = ("denoise", "deblur")
PEAKS: tuple[float, ...] = (5, 10, 30, 100)
DEBLUR_SIGMA = 1.6
#: a noise-fit row counts as clean (diagnosis only) where the photo's own noise, fitted on x, is under
#: this share of the simulated noise variance
PHOTO_FLOOR = 0.1
#: (gain, read noise) of the Poisson-Gaussian fit, keyed by the row kind
NOISEFIT_PAIRS: dict[str, tuple[float, float]] = {
    "pg-peak30": (1 / 30, 0.02),
    "pg-peak100": (1 / 100, 0.01),
    "pg-peak10": (1 / 10, 0.05),
}


def _draw_blind(family: str, rng: random.Random, j: int, n: int) -> dict[str, Any]:
    if family == "motion":
        return {"psf": gen._strat_pick(rng, range(25, 42, 2), j, n), "kernel_seed": rng.randrange(10_000),
                "boundary": "circular"}
    if family == "gaussian":
        return {"sigma": gen._strat(rng, 0.8, 4.0, j, n), "boundary": "circular"}
    return {"radius": gen._strat(rng, 2.0, 6.0, j, n), "boundary": "circular"}


def _half_photos(parity: int) -> tuple[str, ...]:
    return gen.TUNE_PHOTOS if parity == 0 else gen.TEST_PHOTOS


def section_rows(section: str, split: str) -> list[Row]:
    """The rows of one section in one half (see the module docstring), in a fixed order."""
    parity = gen.SPLITS.index(split)
    photos = _half_photos(parity)
    rows: list[Row] = []
    if section == "blind":
        for f, family in enumerate(BLIND_FAMILIES):
            strata = random.Random(f"{family}:{parity}").sample(range(len(photos)), len(photos))
            for j, photo in enumerate(photos):
                seed = 2 * j + parity
                params = _draw_blind(family, random.Random(f"{family}:{seed}"), strata[j], len(photos))
                rows.append(Row(f"{family}/s{seed:02d}/{photo}", "blind", family, seed, photo,
                                SECTION_SIZE["blind"], BLIND_SIGMAS_Y[(j + f) % 2], params))
    elif section == "poisson":
        for task in POISSON_TASKS:
            for peak in PEAKS:
                kind = f"{task}-peak{peak:g}"
                for j, photo in enumerate(photos):
                    seed = 2 * j + parity
                    params: dict[str, Any] = {"task": task, "peak": float(peak)}
                    if task == "deblur":
                        params["sigma"] = DEBLUR_SIGMA
                    rows.append(Row(f"{kind}/s{seed:02d}/{photo}", "poisson", kind, seed, photo,
                                    SECTION_SIZE["poisson"], 0.0, params))
    elif section == "noisefit":
        size = SECTION_SIZE["noisefit"]
        for kind, (gain, read) in NOISEFIT_PAIRS.items():
            for j, photo in enumerate(photos):
                if gen.PHOTOS[photo][2] < size:  # no upscaled photo (an upscaled one has no fine detail)
                    continue
                seed = 2 * j + parity
                rows.append(Row(f"{kind}/s{seed:02d}/{photo}", "noisefit", kind, seed, photo, size, read,
                                {"gain": gain, "read_noise": read}))
    else:
        raise SystemExit(f"unknown section {section!r}; known: {', '.join(SECTIONS)}")
    return rows


def select_rows(split: str, sections: Sequence[str] | None = None, ids: Sequence[str] | None = None,
                limit: int | None = None) -> list[Row]:
    """The rows of one half: some sections (default all), optionally only some ids or the first ``limit``."""
    rows = [r for s in (sections or SECTIONS) for r in section_rows(s, split)]
    if ids:
        known = {r.id for r in rows}
        missing = [i for i in ids if i not in known]
        if missing:
            raise SystemExit(f"no row {missing} in the {split} half of {', '.join(sections or SECTIONS)} (see --list)")
        rows = [r for r in rows if r.id in ids]
    return rows[:limit] if limit is not None else rows


# -------------------------------------------------------------------------------------------------
# kernels and measurements
# -------------------------------------------------------------------------------------------------
def true_operator(row: Row) -> Any:
    """The blind row's true blur (circular), a :class:`~pnpdiff.operators.Blur`."""
    from pnpdiff.operators import Blur, GaussianBlur

    p = row.params
    if row.kind == "gaussian":
        return GaussianBlur(float(p["sigma"]), boundary="circular")
    if row.kind == "defocus":
        return Blur(gen.disk_kernel(float(p["radius"])), boundary="circular")
    return Blur(gen._dinv_kernel("dinv-motion", p), boundary="circular")


def support_for(kernel_side: int, image_side: int) -> int:
    """The support a user would give: the smallest odd side ``>= kernel_side + 4``, at most
    :data:`MAX_SUPPORT` and (small smoke images) the largest odd side ``<= image_side // 2``."""
    s = kernel_side + 4
    s += 1 - s % 2
    cap = min(MAX_SUPPORT, image_side // 2 - (1 - (image_side // 2) % 2))
    return max(3, min(s, cap))


def poisson_model(peak: float) -> Any:
    """``NoiseModel("poisson", 0, 1 / peak)``."""
    from pnpdiff.noise import NoiseModel

    return NoiseModel("poisson", 0.0, 1.0 / float(peak))


# -------------------------------------------------------------------------------------------------
# cells
# -------------------------------------------------------------------------------------------------
@dataclass
class Cell:
    """One (row, method) result, or why there is none (``metrics``: kernel and parameter errors)."""

    psnr: float | None = None
    seconds: float | None = None
    calls: int | None = None
    note: str = ""  # "n/a: ..." / "error: ..." / what ran
    info: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.note.startswith("error")

    @property
    def ok(self) -> bool:
        return not self.failed and not self.note.startswith("n/a")


def _score(out: Any, x: torch.Tensor) -> float:
    return gen._score(out, x)


def run_cell(fn: Callable[[], tuple[Any, dict[str, Any], dict[str, Any]]], x: torch.Tensor | None,
             counter: gen.CallCounter) -> Cell:
    """Run ``fn`` -> ``(image or None, info, metrics)``, time it, count its denoiser calls and score
    the image against ``x``; a :class:`~pnpdiff.errors.PnPError` becomes ``n/a``, any other failure
    ``error``."""
    counter.reset()
    t0 = time.perf_counter()
    try:
        out, info, metrics = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        value = None if out is None or x is None else _score(out, x)
    except PnPError as err:
        print(f"    n/a: {type(err).__name__}: {err}", file=sys.stderr)
        return Cell(note=f"n/a: {err}", calls=counter.calls)
    except Exception as err:  # noqa: BLE001 - a benchmark reports every failure and goes on
        traceback.print_exc()
        return Cell(note=f"error: {type(err).__name__}: {err}", calls=counter.calls)
    return Cell(psnr=value, seconds=seconds, calls=counter.calls, note=str(info.pop("note", "")),
                info=gen._jsonable(info), metrics=gen._jsonable(metrics))


def _short_info(info: dict[str, Any]) -> dict[str, Any]:
    """A solve's info without the kernel's taps (kept: family, params, stderr, size)."""
    out = {k: info.get(k) for k in ("method", "steps", "options", "sigma_y", "noise", "denoiser_calls") if k in info}
    if isinstance(info.get("kernel"), dict):
        out["kernel"] = {k: v for k, v in info["kernel"].items() if k != "kernel"}
    return out


def _solve(y: torch.Tensor, op: Any, prior: Any, **kw: Any) -> tuple[torch.Tensor, Any, dict[str, Any]]:
    out, op_used, info = pnpdiff.solve(y, op, prior, seed=0, progress=False, return_info=True,
                                       return_operator=True, **kw)
    return out, op_used, info


# -------------------------------------------------------------------------------------------------
# methods
# -------------------------------------------------------------------------------------------------
BLIND_METHODS: tuple[str, ...] = ("observed", "true", "blind", "parametric", "classical", "best-gaussian")
POISSON_METHODS: tuple[str, ...] = ("default", "gaussian-matched", "anscombe-ffdnet", "dpir-poisson")
NOISEFIT_METHODS: tuple[str, ...] = ("estimate",)
METHODS: dict[str, tuple[str, ...]] = {"blind": BLIND_METHODS, "poisson": POISSON_METHODS,
                                       "noisefit": NOISEFIT_METHODS}
ALL_METHODS: tuple[str, ...] = (*BLIND_METHODS, *POISSON_METHODS, *NOISEFIT_METHODS)
#: poisson methods that apply to denoising only
DENOISE_ONLY = ("anscombe-ffdnet", "dpir-poisson")


@dataclass
class Problem:
    """A row's measurement, ready to be solved."""

    row: Row
    x: torch.Tensor
    y: torch.Tensor
    op: Any  # blind: the true blur; poisson: the operator
    device: torch.device
    model: Any = None  # poisson / noisefit: the noise model
    support: int | None = None  # blind: the support handed to the blind solves


def build_problem(row: Row, size: int, device: torch.device) -> Problem:
    """Load the photo at ``size`` px and draw the row's measurement (noise seeded by the row)."""
    from pnpdiff.io import load_source_image
    from pnpdiff.noise import NoiseModel
    from pnpdiff.operators import GaussianBlur, Identity

    x = load_source_image(f"skimage:{row.photo}", size)[0]
    g = torch.Generator().manual_seed(row.noise_seed)
    if row.family == "blind":
        op = true_operator(row)
        y = gen.measurement(row, x, op)
        side = int(max(op.kernel.shape[-2:]))
        return Problem(row, x, y.to(device), op.to(device), device, support=support_for(side, size))
    if row.family == "poisson":
        op = Identity() if row.params["task"] == "denoise" else GaussianBlur(float(row.params["sigma"]))
        model = poisson_model(row.params["peak"])
        with torch.no_grad():
            y = model.sample(op(x), g)
        return Problem(row, x, y.to(device), op.to(device), device, model=model)
    model = NoiseModel("poisson-gaussian", float(row.params["read_noise"]), float(row.params["gain"]))
    return Problem(row, x, model.sample(x, g), None, device, model=model)


def schedule_like(options: dict[str, Any], steps: int, prior: Any, sigma_y: float) -> torch.Tensor:
    """The sigmas :func:`pnpdiff.solve` runs for these shown ``options`` (``schedule``,
    ``schedule_max``, ``schedule_min``; ``"sigma_y"``: the noise level, at least 1/255) and ``steps``,
    clipped to the prior's range -- the same rule as ``pnpdiff.api``'s run."""
    from pnpdiff import schedules

    schedule = options.get("schedule", "ddpm")
    if not isinstance(schedule, str) or schedule not in schedules.SCHEDULES:
        raise RuntimeError(f"cannot rebuild the default's schedule {schedule!r}")
    p_min = float(getattr(prior, "sigma_min", 0.0) or 0.0)
    p_max = float(getattr(prior, "sigma_max", 40.0))
    sched_max, sched_min = options.get("schedule_max"), options.get("schedule_min")
    s_max = min(float(sched_max), p_max) if sched_max is not None else p_max
    if sched_min == "sigma_y":
        sched_min = max(float(sigma_y), 1 / 255)
    s_min = max(float(sched_min), p_min) if sched_min is not None else (p_min or None)
    if s_min is not None:
        s_min = min(s_min, s_max)
    return schedules.get_schedule(schedule, int(steps), sigma_min=s_min, sigma_max=s_max)


def gaussian_likelihood_twin(y: torch.Tensor, op: Any, prior: Any, info: dict[str, Any], sigma_y: float,
                             device: torch.device) -> torch.Tensor:
    """The method, steps and options a solve ran (its ``info``), rerun on ``y`` with a Gaussian
    likelihood of level ``sigma_y`` (the solver function itself, no noise model, ``seed=0``)."""
    from pnpdiff.solvers import SOLVERS

    method = str(info["method"])
    options = dict(info.get("options") or {})
    solver = SOLVERS[method]
    params = inspect.signature(solver).parameters
    sigmas = schedule_like(options, int(info.get("steps") or 1), prior, sigma_y)
    kw = {k: v for k, v in options.items() if k in params and k not in ("x_init", "callback", "noise")}
    generator = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad() if method in ("mmse", "dpir") else torch.enable_grad():
        return solver(y, op, prior, sigmas.to(device), float(sigma_y), generator=generator, progress=False, **kw)


def _rel(est: float, true: float) -> float:
    return abs(float(est) - float(true)) / abs(float(true))


def run_method(method: str, pb: Problem, prior: Any, counter: gen.CallCounter, done: dict[str, Cell]) -> Cell:
    """Run one method of the row's section on its problem (``done``: the row's cells so far)."""
    row, x, y, dev = pb.row, pb.x, pb.y, pb.device
    if method not in METHODS[row.family]:
        return Cell(note=f"n/a: {method} is not a method of section {row.family}")
    if row.family == "blind":
        return _run_blind(method, pb, prior, counter)
    if row.family == "poisson":
        if method in DENOISE_ONLY and row.params["task"] != "denoise":
            return Cell(note=f"n/a: {method} is for denoising only")
        return _run_poisson(method, pb, prior, counter, done)
    from pnpdiff.noise import estimate_poisson_gaussian

    def fit() -> tuple[None, dict[str, Any], dict[str, Any]]:
        gain, read, gain_se, read_se = estimate_poisson_gaussian(y, return_stderr=True)
        g0, s0 = float(row.params["gain"]), float(row.params["read_noise"])
        # the clean photo's own pixel-scale noise and texture, which the fit cannot tell from the
        # simulated noise: the same fit on x, as a share of the simulated noise variance at x's mean
        gx, sx = estimate_poisson_gaussian(x)
        mean = float(x.mean())
        floor = (gx * mean + sx**2) / (g0 * mean + s0**2)
        return None, {"note": f"gain {gain:.4g} ± {gain_se:.2g}, read noise {read:.4g} ± {read_se:.2g}"}, {
            "gain": gain, "read_noise": read, "gain_error": _rel(gain, g0), "read_noise_error": _rel(read, s0),
            "gain_se": gain_se / g0, "read_noise_se": read_se / s0, "photo_floor": floor}

    del dev
    return run_cell(fit, None, counter)


def methods_for(row: Row) -> list[str]:
    """The methods that apply to a row (its section's; the denoising-only ones on denoising rows)."""
    return [m for m in METHODS[row.family]
            if not (m in DENOISE_ONLY and row.params.get("task") != "denoise")]


def _run_blind(method: str, pb: Problem, prior: Any, counter: gen.CallCounter) -> Cell:
    from pnpdiff.baselines import blind_deconvolution
    from pnpdiff.blind import centred_kernel_error
    from pnpdiff.operators import BlindBlur, GaussianBlur

    row, x, y, dev, s = pb.row, pb.x, pb.y, pb.device, row_sigma(pb.row)
    k_true = pb.op.kernel[0].detach().cpu()
    common = {"sigma_y": s, "device": dev}

    def observed() -> tuple[torch.Tensor, dict[str, Any], dict[str, Any]]:
        return y, {}, {}

    def true() -> tuple[torch.Tensor, dict[str, Any], dict[str, Any]]:
        out, _, info = _solve(y, pb.op, prior, **common)
        return out, _short_info(info), {}

    def blind(family: str) -> Callable[[], tuple[torch.Tensor, dict[str, Any], dict[str, Any]]]:
        def run() -> tuple[torch.Tensor, dict[str, Any], dict[str, Any]]:
            out, op, info = _solve(y, BlindBlur(pb.support, family=family, boundary="circular"), prior, **common)
            metrics: dict[str, Any] = {"support": pb.support,
                                       "kernel_error": centred_kernel_error(op.kernel[0].detach().cpu(), k_true)}
            params = (info.get("kernel") or {}).get("params") or {}
            if family == "gaussian" and "sigma" in params:
                metrics["sigma"] = params["sigma"]
                metrics["param_error"] = _rel(params["sigma"], row.params["sigma"])
            elif family == "defocus" and "radius" in params:
                metrics["radius"] = params["radius"]
                metrics["param_error"] = _rel(params["radius"], row.params["radius"])
            return out, _short_info(info), metrics
        return run

    def classical() -> tuple[torch.Tensor, dict[str, Any], dict[str, Any]]:
        out, k = blind_deconvolution(y, pb.support, s)
        return out, {"note": f"L0 (Pan et al.), support {pb.support}"}, {
            "support": pb.support, "kernel_error": centred_kernel_error(k.detach().cpu(), k_true)}

    if method == "observed":
        return run_cell(observed, x, counter)
    if method == "true":
        return run_cell(true, x, counter)
    if method == "blind":
        return run_cell(blind("free"), x, counter)
    if method == "parametric":
        return run_cell(blind(row.kind), x, counter)
    if method == "classical":
        return run_cell(classical, x, counter)
    # best-gaussian: the best single Gaussian kernel, chosen with the ground truth
    best: tuple[float, float] | None = None
    calls, seconds, tried, failures = 0, 0.0, {}, []
    for sig in BEST_GAUSSIAN_SIGMAS:
        c = run_cell(lambda sig=sig: (_solve(y, GaussianBlur(sig, boundary="circular"), prior, **common)[0], {}, {}),
                     x, counter)
        calls += c.calls or 0
        seconds += c.seconds or 0.0
        if c.ok and c.psnr is not None:
            tried[f"{sig:g}"] = round(c.psnr, 3)
            if best is None or c.psnr > best[0]:
                best = (c.psnr, sig)
        else:
            failures.append(f"sigma {sig:g}: {c.note}")
    if best is None:
        return Cell(note="error: every Gaussian kernel failed: " + "; ".join(failures), calls=calls)
    return Cell(psnr=best[0], seconds=seconds, calls=calls, note=f"sigma {best[1]:g}",
                info={"psnr_by_sigma": tried, **({"failed": failures} if failures else {})},
                metrics={"sigma": best[1]})


def row_sigma(row: Row) -> float:
    """The Gaussian noise level of a blind row."""
    return float(row.sigma_y)


def _run_poisson(method: str, pb: Problem, prior: Any, counter: gen.CallCounter, done: dict[str, Cell]) -> Cell:
    from pnpdiff.noise import Stabilised

    x, y, op, dev, model = pb.x, pb.y, pb.op, pb.device, pb.model

    def default() -> tuple[torch.Tensor, dict[str, Any], dict[str, Any]]:
        out, _, info = _solve(y, op, prior, noise=model, device=dev)
        return out, {**_short_info(info), "stabilised": info.get("stabilised")}, {}

    def matched() -> tuple[torch.Tensor, dict[str, Any], dict[str, Any]]:
        base = done.get("default")
        if base is None or not base.ok or "method" not in base.info:
            raise RuntimeError("gaussian-matched reruns default's method: run default first")
        sig = model.matched_sigma(y)
        out = gaussian_likelihood_twin(y, op, prior, base.info, sig, dev)
        return out, {"method": base.info["method"], "steps": base.info.get("steps"),
                     "options": base.info.get("options"), "sigma_y": sig,
                     "note": f"{base.info['method']} at sigma_y {sig:.4g}"}, {}

    def anscombe() -> tuple[torch.Tensor, dict[str, Any], dict[str, Any]]:
        st = Stabilised(model)
        with torch.no_grad():
            d = prior.denoise(st.forward(y), st.sigma).clamp(0, 1)
            out = st.inverse(d)
        return out, {"sigma": st.sigma}, {}

    def dpir() -> tuple[torch.Tensor, dict[str, Any], dict[str, Any]]:
        out, _, info = _solve(y, op, prior, noise=model, method="dpir", device=dev)
        return out, _short_info(info), {}

    fn = {"default": default, "gaussian-matched": matched, "anscombe-ffdnet": anscombe, "dpir-poisson": dpir}[method]
    return run_cell(fn, x, counter)


# -------------------------------------------------------------------------------------------------
# results file and report
# -------------------------------------------------------------------------------------------------
def _cells(results: dict[str, Any], section: str) -> list[tuple[dict[str, Any], dict[str, Cell]]]:
    return [(e["row"], {m: Cell(**c) for m, c in e["cells"].items()}) for e in results["rows"].values()
            if e["row"]["family"] == section]


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _psnrs(group: list[dict[str, Cell]], m: str) -> list[float]:
    return [c[m].psnr for c in group if m in c and c[m].ok and c[m].psnr is not None]  # type: ignore[misc]


def _diffs(group: list[dict[str, Cell]], a: str, b: str) -> list[float]:
    return [c[a].psnr - c[b].psnr for c in group  # type: ignore[operator]
            if a in c and b in c and c[a].ok and c[b].ok and c[a].psnr is not None and c[b].psnr is not None]


def _metric(group: list[dict[str, Cell]], m: str, key: str) -> list[float]:
    return [float(c[m].metrics[key]) for c in group if m in c and c[m].ok and c[m].metrics.get(key) is not None]


def _f(v: float | None, fmt: str = "{:.2f}") -> str:
    return "" if v is None else fmt.format(v)


def _verdict(ok: bool | None) -> str:
    return "n/a (not run)" if ok is None else "PASS" if ok else "FAIL"


def aggregate_blind(group: list[dict[str, Cell]]) -> dict[str, Any]:
    """Aggregates of blind rows: mean PSNR per method (and ``n``), the mean differences of ``blind``
    to ``true``, ``classical`` and ``best-gaussian``, the minimum of ``blind - observed`` and the mean
    kernel error of ``blind``, ``parametric`` and ``classical``."""
    out: dict[str, Any] = {"rows": len(group), "psnr": {}, "n": {}, "kernel_error": {}}
    for m in BLIND_METHODS:
        v = _psnrs(group, m)
        out["psnr"][m], out["n"][m] = _mean(v), len(v)
    for a, b in (("true", "true"), ("classical", "classical"), ("best-gaussian", "best_gaussian")):
        out[f"blind_minus_{b}"] = _mean(_diffs(group, "blind", a))
    d = _diffs(group, "blind", "observed")
    out["blind_minus_observed_min"] = min(d) if d else None
    for m in ("blind", "parametric", "classical"):
        out["kernel_error"][m] = _mean(_metric(group, m, "kernel_error"))
    return out


def _blind_section(rows: list[tuple[dict[str, Any], dict[str, Cell]]], per_row: bool) -> list[str]:
    head = ["group", "rows", *BLIND_METHODS, "blind − true", "blind − observed (min)", "blind − classical",
            "blind − best-gaussian", "kernel err blind", "kernel err parametric", "kernel err classical"]
    lines = ["### Blind deblurring", "", "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]

    def line(name: str, agg: dict[str, Any]) -> str:
        cells = [name, str(agg["rows"])]
        for m in BLIND_METHODS:
            v, n = agg["psnr"][m], agg["n"][m]
            cells.append("" if v is None else f"{v:.2f}" + ("" if n == agg["rows"] else f" ({n})"))
        cells += [_f(agg["blind_minus_true"], "{:+.2f}"), _f(agg["blind_minus_observed_min"], "{:+.2f}"),
                  _f(agg["blind_minus_classical"], "{:+.2f}"), _f(agg["blind_minus_best_gaussian"], "{:+.2f}")]
        cells += [_f(agg["kernel_error"][m], "{:.3f}") for m in ("blind", "parametric", "classical")]
        return "| " + " | ".join(cells) + " |"

    groups: dict[str, list[dict[str, Cell]]] = {}
    for r, c in rows:
        groups.setdefault(r["kind"], []).append(c)
        groups.setdefault(f"sigma_y {r['sigma_y']:g}", []).append(c)
    order = [*BLIND_FAMILIES, *(f"sigma_y {s:g}" for s in BLIND_SIGMAS_Y)]
    for g in [*(o for o in order if o in groups), *sorted(set(groups) - set(order))]:
        lines.append(line(g, aggregate_blind(groups[g])))
    every = [c for _, c in rows]
    agg = aggregate_blind(every)
    lines += [line("**all**", agg), ""]
    # acceptance
    d_true = agg["blind_minus_true"]
    worse = [r["id"] for r, c in rows if "blind" in c and "observed" in c and c["blind"].ok and c["observed"].ok
             and c["blind"].psnr < c["observed"].psnr]  # type: ignore[operator]
    n_obs = len(_diffs(every, "blind", "observed"))
    gauss = [(r, c) for r, c in rows if r["kind"] == "gaussian" and r["sigma_y"] <= 0.025]
    sig_err = _metric([c for _, c in gauss], "parametric", "param_error")
    lines += ["Acceptance (issue 28, blind):", ""]
    lines.append(f"- {_verdict(None if d_true is None else d_true >= -1.0)}: mean blind − true = "
                 f"{_f(d_true, '{:+.2f}')} dB (>= −1.0)")
    lines.append(f"- {_verdict(None if not n_obs else not worse)}: rows where blind < observed: "
                 f"{len(worse)} of {n_obs}" + (f" ({', '.join(worse)})" if worse else " (none)"))
    for key, name in (("blind_minus_classical", "classical"), ("blind_minus_best_gaussian", "best-gaussian")):
        v = agg[key]
        lines.append(f"- {_verdict(None if v is None else v > 0)}: mean blind − {name} = {_f(v, '{:+.2f}')} dB (> 0)")
    per_family = "; ".join(
        f"{fam}: " + ", ".join(f"{m} {_f(aggregate_blind(groups[fam])['kernel_error'][m], '{:.3f}') or '–'}"
                               for m in ("blind", "parametric", "classical"))
        for fam in BLIND_FAMILIES if fam in groups)
    lines.append(f"- kernel error (relative L2 after centring), mean per family: {per_family or 'n/a (not run)'}")
    sig_text = (f"max {max(sig_err) * 100:.1f} %, mean {sum(sig_err) / len(sig_err) * 100:.1f} % over "
                f"{len(sig_err)} rows" if sig_err else "no Gaussian row with a parametric estimate")
    lines.append(f"- {_verdict(None if not sig_err else max(sig_err) <= 0.10)}: parametric Gaussian sigma relative "
                 f"error at sigma_y <= 0.025: {sig_text} (<= 10 %)")
    lines.append("")
    if per_row:
        head = ["row", "sigma_y", "kernel", "support", *BLIND_METHODS, "kernel err blind", "kernel err parametric",
                "kernel err classical", "parametric estimate", "best sigma"]
        lines += ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
        for r, cs in rows:
            vals = [("" if m not in cs else _f(cs[m].psnr) if cs[m].ok else gen._cell_text(cs[m].note, 30))
                    for m in BLIND_METHODS]
            kerr = [_f(cs[m].metrics.get("kernel_error"), "{:.3f}") if m in cs and cs[m].ok else ""
                    for m in ("blind", "parametric", "classical")]
            sup = next((cs[m].metrics.get("support") for m in ("blind", "parametric", "classical")
                        if m in cs and cs[m].metrics.get("support")), "")
            par = cs.get("parametric")
            est = "" if par is None or not par.ok else ", ".join(
                f"{k} {par.metrics[k]:.3g}" for k in ("sigma", "radius") if par.metrics.get(k) is not None)
            bg = cs.get("best-gaussian")
            lines.append("| " + " | ".join([r["id"], f"{r['sigma_y']:g}", gen._cell_text(Row(**r).describe()),
                                            str(sup), *vals, *kerr, est,
                                            "" if bg is None or not bg.ok else bg.note]) + " |")
        lines.append("")
    return lines


def _poisson_section(rows: list[tuple[dict[str, Any], dict[str, Cell]]], per_row: bool) -> list[str]:
    head = ["task", "peak", "rows", *POISSON_METHODS, "default − gaussian-matched", "default − anscombe-ffdnet",
            "default ran"]
    lines = ["### Poisson noise", "", "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    groups: dict[tuple[str, float], list[dict[str, Cell]]] = {}
    for r, c in rows:
        groups.setdefault((r["params"]["task"], float(r["params"]["peak"])), []).append(c)
    checks: list[str] = []
    for task in POISSON_TASKS:
        for peak in sorted(p for t, p in groups if t == task):
            g = groups[(task, peak)]
            means = [_mean(_psnrs(g, m)) for m in POISSON_METHODS]
            d_m, d_a = _mean(_diffs(g, "default", "gaussian-matched")), _mean(_diffs(g, "default", "anscombe-ffdnet"))
            ran = sorted({gen.choice_text(c["default"].info) for c in g if "default" in c and c["default"].ok})
            lines.append("| " + " | ".join([task, f"{peak:g}", str(len(g)), *(_f(v) for v in means),
                                            _f(d_m, "{:+.2f}"), _f(d_a, "{:+.2f}"), "; ".join(ran)]) + " |")
            checks.append(f"- {_verdict(None if d_m is None else d_m > 0)}: {task} peak {peak:g}: mean default − "
                          f"gaussian-matched = {_f(d_m, '{:+.2f}')} dB (> 0)")
            if task == "denoise":
                checks.append(f"- {_verdict(None if d_a is None else d_a > 0)}: {task} peak {peak:g}: mean default − "
                              f"anscombe-ffdnet = {_f(d_a, '{:+.3f}')} dB (> 0)")
    lines += ["", "Acceptance (issue 28, Poisson):", "", *checks, ""]
    if per_row:
        head = ["row", *POISSON_METHODS, "default ran", "gaussian-matched sigma_y"]
        lines += ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
        for r, cs in rows:
            vals = [("" if m not in cs else _f(cs[m].psnr) if cs[m].ok else gen._cell_text(cs[m].note, 30))
                    for m in POISSON_METHODS]
            ran = gen.choice_text(cs["default"].info) if "default" in cs else ""
            gm = cs.get("gaussian-matched")
            sig = _f(gm.info.get("sigma_y"), "{:.4g}") if gm is not None and gm.ok else ""
            lines.append("| " + " | ".join([r["id"], *vals, ran, sig]) + " |")
        lines.append("")
    return lines


def _fit_errors(group: list[dict[str, Cell]]) -> tuple[list[float], list[float], float | None]:
    """The noise fit's gain errors, read-noise errors and the worst of both over a group of rows."""
    ge, se = _metric(group, "estimate", "gain_error"), _metric(group, "estimate", "read_noise_error")
    return ge, se, (max([*ge, *se]) if ge or se else None)


def _fit_rows_where(group: list[dict[str, Cell]], key: str, bound: float) -> list[dict[str, Cell]]:
    """The rows whose noise fit ran and whose metric ``key`` is under ``bound``."""
    return [c for c in group if c.get("estimate") is not None and c["estimate"].ok
            and c["estimate"].metrics.get(key, math.inf) < bound]


def _noisefit_section(rows: list[tuple[dict[str, Any], dict[str, Cell]]], per_row: bool) -> list[str]:
    head = ["gain", "read noise", "rows", "gain err mean", "gain err max", "read noise err mean", "read noise err max"]
    lines = ["### Poisson-Gaussian parameters from y", "", "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    groups: dict[str, list[tuple[dict[str, Any], dict[str, Cell]]]] = {}
    for r, c in rows:
        groups.setdefault(r["kind"], []).append((r, c))
    for kind in [*(k for k in NOISEFIT_PAIRS if k in groups), *sorted(set(groups) - set(NOISEFIT_PAIRS))]:
        g = [c for _, c in groups[kind]]
        p = groups[kind][0][0]["params"]
        ge, se = _metric(g, "estimate", "gain_error"), _metric(g, "estimate", "read_noise_error")
        pct = "{:.1f} %"
        lines.append("| " + " | ".join([f"{p['gain']:.4g}", f"{p['read_noise']:g}", str(len(g)),
                                        _f(_mean(ge) and _mean(ge) * 100, pct), _f(max(ge) * 100 if ge else None, pct),
                                        _f(_mean(se) and _mean(se) * 100, pct),
                                        _f(max(se) * 100 if se else None, pct)]) + " |")
    every = [c for _, c in rows]
    ge, se, worst = _fit_errors(every)
    lines += ["", "Acceptance (issue 28, noise fit):", "",
              f"- {_verdict(None if worst is None else worst <= 0.15)}: every estimated gain and read noise within "
              f"15 % (worst {_f(None if worst is None else worst * 100, '{:.1f}')} % over {len(ge)} rows)"]
    # where the fit's own standard error is small the read noise is identified; elsewhere (no dark level)
    # no estimator can meet 15 %: the same bar on the rows whose read-noise standard error is under 5 %
    ident = _fit_rows_where(every, "read_noise_se", 0.05)
    _, _, iworst = _fit_errors(ident)
    lines += [f"- {_verdict(None if iworst is None else iworst <= 0.15)} (not the issue's bar; a diagnosis): the same "
              f"on the {len(ident)} rows where the fit's read-noise standard error is under 5 % (worst "
              f"{_f(None if iworst is None else iworst * 100, '{:.1f}')} %)"]
    # a "clean" photo may carry its own noise or pixel-scale texture (film grain, JPEG, grass): the fit
    # measures it with the simulated noise; the bar on the rows where the photo's own share is small
    clean = _fit_rows_where(every, "photo_floor", PHOTO_FLOOR)
    ce, cre, cworst = _fit_errors(clean)
    lines += [f"- {_verdict(None if cworst is None else cworst <= 0.15)} (not the issue's bar; a diagnosis): the same "
              f"on the {len(clean)} rows whose clean photo's own noise (the fit on x) is under "
              f"{100 * PHOTO_FLOOR:g} % of the simulated noise variance (worst "
              f"{_f(None if cworst is None else cworst * 100, '{:.1f}')} %; gain error mean "
              f"{_f(_mean(ce) and _mean(ce) * 100, '{:.1f}')} %, read noise error mean "
              f"{_f(_mean(cre) and _mean(cre) * 100, '{:.1f}')} %)", ""]
    if per_row:
        lines += ["| row | size | gain | read noise | estimated | gain err | read noise err | photo's own |",
                  "|---" * 8 + "|"]
        for r, cs in rows:
            c = cs.get("estimate")
            if c is None or not c.ok:
                lines.append(f"| {r['id']} | {r['size']} | {r['params']['gain']:.4g} | {r['params']['read_noise']:g} | "
                             f"{'' if c is None else gen._cell_text(c.note, 40)} | | | |")
                continue
            lines.append(f"| {r['id']} | {r['size']} | {r['params']['gain']:.4g} | {r['params']['read_noise']:g} | "
                         f"{c.note} | {c.metrics['gain_error'] * 100:.1f} % | "
                         f"{c.metrics['read_noise_error'] * 100:.1f} % | "
                         f"{_f(c.metrics.get('photo_floor') and c.metrics['photo_floor'] * 100, '{:.0f} %')} |")
        lines.append("")
    return lines


def render_report(results: dict[str, Any], per_row: bool = False) -> str:
    """The Markdown report of a results document (see the module docstring)."""
    meta = results.get("meta", {})
    lines = [f"## Real-photo benchmark (issue 28), {meta.get('split', '?')} half", ""]
    if meta:
        lines += [f"Generated by `python tests/benchmarks/real_photos.py {meta.get('command', '')}`".rstrip()
                  + f" on {meta.get('date', '?')} ({meta.get('machine', '?')}, device {meta.get('device', '?')}, "
                  f"{meta.get('threads', '?')} torch threads; torch {meta.get('torch', '?')}, "
                  f"deepinv {meta.get('deepinv', '?')}, pnpdiff {meta.get('pnpdiff', '?')}).", ""]
        if meta.get("size_override"):
            lines += [f"Every row run at {meta['size_override']} px (--size), not its section's size.", ""]
    lines += ["Prior `natural` (FFDNet) for every learned method, seed 0. PSNR (dB) on results clamped to [0, 1]; "
              "a mean is over the rows where the method ran (their number in brackets when fewer); each "
              "difference over the rows where both ran.", ""]
    render = {"blind": _blind_section, "poisson": _poisson_section, "noisefit": _noisefit_section}
    for section in SECTIONS:
        rows = _cells(results, section)
        if rows:
            lines += render[section](rows, per_row)
    failures = [(e["row"]["id"], m, c["note"]) for e in results["rows"].values() for m, c in e["cells"].items()
                if str(c.get("note", "")).startswith(("n/a", "error"))]
    if failures:
        lines += ["### Not run (n/a) and failures", ""]
        lines += [f"- `{i}` {m}: {gen._cell_text(n, 200)}" for i, m, n in failures]
        lines.append("")
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------------
# the run
# -------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--section", choices=[*SECTIONS, "all"], default="all", help="which section (default all)")
    ap.add_argument("--split", choices=gen.SPLITS, default="test", help="which half (default test)")
    ap.add_argument("--rows", nargs="+", help="row ids (see --list)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N selected rows")
    ap.add_argument("--size", type=int, default=None,
                    help="run every row at this size instead of its section's (noted in the report)")
    ap.add_argument("--methods", nargs="+",
                    help=f"default: every method of the row's section ({', '.join(ALL_METHODS)})")
    ap.add_argument("--json", default=None, help="results file, rewritten after every cell")
    ap.add_argument("--resume", action="store_true", help="skip the (row, method) cells already in --json")
    ap.add_argument("--out", default=None, help="Markdown report (default: printed only)")
    ap.add_argument("--per-row", action="store_true", help="add a table of every row to the report")
    ap.add_argument("--from-json", default=None, help="render the report of this results file (no run)")
    ap.add_argument("--list", action="store_true", help="print the selected rows and exit")
    ap.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = ap.parse_args(argv)

    if args.from_json:
        text = render_report(json.loads(Path(args.from_json).read_text()), per_row=args.per_row)
        if args.out:
            Path(args.out).write_text(text)
        print(text)
        return 0
    sections = list(SECTIONS) if args.section == "all" else [args.section]
    rows = select_rows(args.split, sections, args.rows, args.limit)
    if args.list:
        for r in rows:
            size = args.size or r.size
            print(f"{r.id:36s} {size:4d} px  {r.family:8s} sigma_y {r.sigma_y:<6g} {r.describe()}")
        print(f"{len(rows)} rows ({args.split} half)")
        return 0
    unknown = [m for m in args.methods or [] if m not in ALL_METHODS]
    if unknown:
        raise SystemExit(f"unknown method(s) {unknown}; known: {', '.join(ALL_METHODS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))

    meta = {"split": args.split, "command": gen._shown_args(argv), "date": _dt.date.today().isoformat(),
            "machine": f"{platform.machine()} {platform.processor() or platform.system()}".strip(),
            "device": str(device), "threads": torch.get_num_threads(), "size_override": args.size, **gen._versions()}
    json_path = Path(args.json) if args.json else None
    results = gen.new_results(meta)
    if json_path is not None and json_path.exists() and (args.resume or args.methods):
        results = json.loads(json_path.read_text())
        if results.get("meta", {}).get("split") not in (None, args.split):
            raise SystemExit(f"{json_path} holds the {results['meta']['split']} half, not {args.split}")
        results["meta"] = {**results.get("meta", {}), **{k: v for k, v in meta.items() if k != "command"}}
        results["meta"]["command"] = (results["meta"].get("command", "") + " ; " + meta["command"]).strip(" ;")
    out_path = Path(args.out) if args.out else None
    for p in (json_path, out_path):
        if p is not None:
            p.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        if json_path is not None:
            gen.write_json(results, json_path)

    prior = pnpdiff.load_prior("natural").to(device)
    counter = gen.CallCounter(prior)
    errors = 0
    for n, row in enumerate(rows, 1):
        have = {m: Cell(**c) for m, c in results["rows"].get(row.id, {}).get("cells", {}).items()}
        wanted = [m for m in methods_for(row) if not args.methods or m in args.methods]
        todo = [m for m in wanted if not (args.resume and m in have and not have[m].failed)]
        if not todo:
            continue
        size = args.size or row.size
        t_row = time.perf_counter()
        print(f"[{n}/{len(rows)}] {row.id}  {size} px  {row.describe()}", flush=True)
        try:
            pb = build_problem(row, size, device)
        except Exception as err:  # noqa: BLE001
            traceback.print_exc()
            for m in todo:
                gen.put_cell(results, row, m, Cell(note=f"error: building the row: {type(err).__name__}: {err}"))
            errors += 1
            save()
            continue
        ran_row = dataclasses.replace(row, size=size)  # the file records the size the row ran at
        for m in todo:
            cell = run_method(m, pb, prior, counter, have)
            have[m] = cell
            gen.put_cell(results, ran_row, m, cell)
            save()
            shown = cell.note if not cell.ok else " ".join(filter(None, [
                "" if cell.psnr is None else f"PSNR {cell.psnr:.2f} dB,",
                f"{cell.calls} calls, {cell.seconds:.1f} s", cell.note,
                *(f"{k} {v:.3g}" for k, v in cell.metrics.items() if k.endswith("error"))]))
            print(f"    {m:16s} {gen._cell_text(shown, 110)}", flush=True)
            errors += cell.failed
        print(f"    row: {time.perf_counter() - t_row:.1f} s", flush=True)
    wanted_ids = {r.id for r in rows}
    shown_results = {"meta": results["meta"], "rows": {k: v for k, v in results["rows"].items() if k in wanted_ids}}
    text = render_report(shown_results, per_row=args.per_row)
    if out_path is not None:
        tmp = out_path.with_name(out_path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(out_path)
    print()
    print(text)
    if errors:
        print(f"{errors} cell(s) failed (see the report and the tracebacks above)", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
