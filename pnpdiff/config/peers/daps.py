"""DAPS task configs (Zhang et al., CVPR 2025; ``zhangbingliang2019/DAPS``) as pnpdiff recipes.

A DAPS *task* config (``configs/task/*.yaml``, chosen with ``task=NAME`` on DAPS's Hydra command
line) holds one group per kind of model, ``task_group`` choosing one: ``pixel`` (Langevin in pixel
space, DAPS's default), ``pixel_hmc`` (Hamiltonian Monte Carlo), ``ldm`` and ``sd`` (latent models).
Each group is ``{mcmc_sampler_config: {num_steps, lr, tau, lr_min_ratio, mc_algo, prior_solver, ...},
operator: {name, sigma, ...}}``, with DPS's operator names. The older layout of the repository
(``config/task/*.yaml``) is one group without the wrapper, its sampler written
``likelihood_estimator_config: {name: langevin, step, lr, ode_step, tau}``. :func:`translate_daps`
translates the ``pixel`` group (or the old layout) onto pnpdiff's ``method: daps``.

Units (see ``ALGORITHMS.md``; pnpdiff's ``x`` is DAPS's ``x' = 2 x - 1`` mapped back to [0, 1]):

* **Noise.** DAPS adds ``sigma`` to ``A(x')`` with ``x'`` on [-1, 1]: for the image-domain
  operators ``y' = 2 (A x + n / 2) - A 1``, so ``sigma_y = sigma / 2``. Its ``phase_retrieval``
  maps ``x'`` back to [0, 1] before the Fourier transform (``x' * 0.5 + 0.5``): its measurement is
  pnpdiff's :class:`~pnpdiff.operators.PhaseRetrieval` of ``x`` exactly, and ``sigma_y = sigma``.
* **Likelihood.** DAPS's Langevin target is ``-||A(x') - y'||^2 / tau^2`` (``mcmc.py``: the gradient
  of the summed squared error divided by ``tau^2``, no ``1/2``), a Gaussian of standard deviation
  ``tau / sqrt 2`` in the measurement's units: ``beta_y = tau / (2 sqrt 2)`` for the image-domain
  operators (the residual doubles on [-1, 1]) and ``tau / sqrt 2`` for phase retrieval.
* **Step.** A Langevin step ``lr`` in ``x'`` is the step ``lr / 4`` in ``x``. pnpdiff's ``lr`` is
  relative, ``eta = lr * min(t^2, beta_y^2 / ||J||^2)`` (``||J|| = 1`` for a linear operator), so
  ``lr_pnpdiff = lr / (4 beta_y^2)`` = ``2 lr / tau^2`` for the image operators and
  ``lr / (2 tau^2)`` for phase retrieval (whose ``||J||^2`` pnpdiff estimates, about 1). pnpdiff's
  ``daps`` takes ``lr`` in ``(0, 1]``: a larger value is capped at 1, and the table says so.
* ``num_steps`` is ``langevin_steps``, ``lr_min_ratio`` the same linear decay; the annealing (DAPS's
  ``configs/sampler/edm_daps.yaml``: 200 levels from 100 to 0.1 on [-1, 1], poly-7) is not in a task
  config: pnpdiff's default for ``daps`` is that schedule halved (50 to 0.05) at 50 levels.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pnpdiff.config.peers.common import Builder, Translation, box_side, fmt

__all__ = ["DAPS_GROUPS", "DAPS_OPERATORS", "DAPS_MCMC_KEYS", "DAPS_LANGEVIN_KEYS", "translate_daps"]

#: DAPS's task groups (``task_group``) and what each runs; pnpdiff translates ``pixel``
DAPS_GROUPS = {
    "pixel": "Langevin dynamics in pixel space",
    "pixel_hmc": "Hamiltonian Monte Carlo (mc_algo hmc), which pnpdiff's daps does not run",
    "ldm": "a latent diffusion model, which pnpdiff does not have",
    "sd": "Stable Diffusion (a latent model), which pnpdiff does not have",
}
#: DAPS's operators (``forward_operator/__init__.py``) and the parameters of each
DAPS_OPERATORS: dict[str, tuple[str, ...]] = {
    "down_sampling": ("resolution", "scale_factor", "sigma"),
    "gaussian_blur": ("kernel_size", "intensity", "sigma"),
    "motion_blur": ("kernel_size", "intensity", "sigma"),
    "inpainting": ("mask_type", "mask_len_range", "mask_prob_range", "resolution", "sigma"),
    "phase_retrieval": ("oversample", "resolution", "sigma"),
    "nonlinear_blur": ("opt_yml_path", "sigma"),
    "high_dynamic_range": ("scale", "sigma"),
}
#: the keys of a group's ``mcmc_sampler_config`` (``cores/mcmc.py``'s MCMCSampler)
DAPS_MCMC_KEYS = ("num_steps", "lr", "tau", "lr_min_ratio", "mc_algo", "prior_solver", "prior_sigma_min", "momentum")
#: the keys of the older layout's ``likelihood_estimator_config`` that pnpdiff translates
DAPS_LANGEVIN_KEYS = ("name", "step", "lr", "ode_step", "tau", "lr_min_ratio")
#: DAPS's box masks keep this many pixels from the border (its mask_generator's margin (32, 32))
_DAPS_MARGIN = 32
#: the image side DAPS's operators assume when ``resolution`` is not written
_DAPS_RESOLUTION = 256
#: the largest ``oversample`` of pnpdiff's PhaseRetrieval (operators/nonlinear.py)
_MAX_OVERSAMPLE = 16.0


def translate_daps(data: dict[str, Any], source: Path | None = None) -> Translation:
    """Translate a DAPS task config (see the module docstring) onto pnpdiff's ``method: daps``.

    Parameters
    ----------
    data : dict
        The parsed config: task groups (``pixel: {mcmc_sampler_config, operator}``, ...) or the
        older single-group layout (``likelihood_estimator_config`` and ``operator``).
    source : Path, optional
        The file it came from (named in errors and in the table's title).

    Returns
    -------
    Translation
        The recipe (``method: daps`` with ``langevin_steps``, ``lr``, ``lr_min_ratio``, ``beta_y``)
        and one table row per key of the translated group (one row for each other group).

    Raises
    ------
    RecipeError
        No pixel-space group, an operator pnpdiff does not have (``nonlinear_blur``,
        ``high_dynamic_range``), a sampler setting it does not run (HMC, another prior solver), or a
        bad value; the message names the key path.
    """
    b = Builder("daps", source)
    if "operator" in data or "likelihood_estimator_config" in data:  # the older layout: one group
        for k in data:
            if k not in ("operator", "likelihood_estimator_config"):
                raise b.unknown(k, ("likelihood_estimator_config", "operator"), "DAPS task config")
        op = b.mapping("operator", data.get("operator"))
        if not op:
            raise b.fail("operator", "missing: a DAPS task config needs operator: {name: ..., sigma: ...}")
        linear = _daps_operator(b, "operator", op)
        _daps_langevin(b, "likelihood_estimator_config", data.get("likelihood_estimator_config"), linear)
        _absent_rows(b, ode_steps=any(r[0] == "likelihood_estimator_config.ode_step" for r in b.rows))
        return b.finish(data, source, deep=True)

    group = _choose_group(b, data)
    for name in data:
        if name != group and not isinstance(data[name], dict):
            raise b.fail(name, f"not a DAPS task group (a mapping of mcmc_sampler_config and operator), got "
                               f"{fmt(data[name])}")
        if name != group:
            what = DAPS_GROUPS.get(name, "another task group")
            b.ignored(name, "{...}", f"DAPS reads this group only with task_group={name}: {what}")
    g = b.mapping(group, data[group])
    for k in g:
        if k not in ("mcmc_sampler_config", "operator"):
            raise b.unknown(f"{group}.{k}", ("mcmc_sampler_config", "operator"), "DAPS task group")
    op = b.mapping(f"{group}.operator", g.get("operator"))
    if not op:
        raise b.fail(f"{group}.operator", "missing: a DAPS task group needs operator: {name: ..., sigma: ...}")
    linear = _daps_operator(b, f"{group}.operator", op)
    _daps_mcmc(b, f"{group}.mcmc_sampler_config", g.get("mcmc_sampler_config"), linear)
    _absent_rows(b, ode_steps=False)
    return b.finish(data, source, deep=True)


def _choose_group(b: Builder, data: dict[str, Any]) -> str:
    """The group pnpdiff translates: ``pixel`` (DAPS's default task_group), or the only one."""
    if "pixel" in data:
        return "pixel"
    names = list(data)
    if len(names) == 1 and names[0] not in ("ldm", "sd"):
        return names[0]
    if len(names) == 1:
        raise b.fail(names[0], f"DAPS's group for {DAPS_GROUPS[names[0]]}; pnpdiff translates the pixel group "
                               "(task_group: pixel)")
    raise b.fail("pixel", f"missing: pnpdiff translates DAPS's pixel-space group (task_group: pixel, Langevin); "
                          f"this file has {', '.join(names)}")


def _absent_rows(b: Builder, *, ode_steps: bool) -> None:
    b.row(
        "(data: not in a DAPS task config)",
        "(absent)",
        "image",
        "- (pass image=PATH on the command line: a file, folder or glob; DAPS's data config names its folder, "
        "e.g. configs/data/demo-ffhq.yaml: root dataset/demo-ffhq)",
    )
    b.row(
        "(model: not in a DAPS task config)",
        "(absent)",
        "prior",
        "natural (pnpdiff's default, FFDNet, offline; DAPS's configs/model/ffhq256ddpm.yaml loads the ADM FFHQ "
        "model, DPS's ffhq_10m.pt: prior=ffhq)",
    )
    b.row(
        "(annealing: not in a DAPS task config)",
        "(absent)",
        "steps",
        "pnpdiff's default for daps: 50 levels from 50 to 0.05, Karras (DAPS's edm_daps sampler: 200 levels from "
        "100 to 0.1 on [-1, 1], poly-7: steps=200)",
    )
    if not ode_steps:
        b.row(
            "(ODE steps: not in a DAPS task config)",
            "(absent)",
            "options.ode_steps",
            "pnpdiff's default 5 (DAPS's edm_daps sampler: diffusion_scheduler_config.num_steps 5, to sigma 0.01 "
            "on [-1, 1], 0.005 here)",
        )


# ---------------------------------------------------------------------------------------------
# the operator
# ---------------------------------------------------------------------------------------------
def _daps_operator(b: Builder, path: str, op: dict[str, Any]) -> bool:
    """Build the operator and the noise from ``op``; returns whether it acts on the [-1, 1] image
    linearly (every operator but phase retrieval), which fixes the units of sigma, tau and lr."""
    if "name" not in op:
        raise b.fail(f"{path}.name", f"missing; one of {', '.join(DAPS_OPERATORS)}")
    name = op["name"]
    if name == "nonlinear_blur":
        raise b.fail(
            f"{path}.name",
            "nonlinear_blur needs the learned blur network of bkse (KernelWizard weights), which pnpdiff "
            "does not have; use gaussian_blur or motion_blur, or pass your own differentiable forward model "
            "to pnpdiff.solve(..., method='daps') in Python",
        )
    if name == "high_dynamic_range":
        raise b.fail(
            f"{path}.name",
            "high_dynamic_range (clip(scale x, -1, 1): a hard clip) has no pnpdiff operator (SaturatedBlur is a "
            "smooth tanh response after a blur); pass your own differentiable forward model to "
            "pnpdiff.solve(..., method='daps') in Python",
        )
    if name not in DAPS_OPERATORS:
        known = ", ".join(n for n in DAPS_OPERATORS if n not in ("nonlinear_blur", "high_dynamic_range"))
        raise b.fail(f"{path}.name", f"unknown DAPS operator {name!r}; pnpdiff translates {known}")
    allowed = DAPS_OPERATORS[name]
    for k in op:
        if k != "name" and k not in allowed:
            raise b.fail(f"{path}.{k}", f"DAPS's {name} operator has no parameter {k!r}; its parameters: "
                                        f"{', '.join(allowed)}")
    required = {"down_sampling": (), "gaussian_blur": ("kernel_size", "intensity"),
                "motion_blur": ("kernel_size", "intensity"), "inpainting": ("mask_type",), "phase_retrieval": ()}
    for k in (*required[name], "sigma"):
        if k not in op:
            why = ("the noise level on [-1, 1] images (DAPS's configs write sigma: 0.05; its default changed "
                   "between versions)" if k == "sigma" else f"DAPS's {name} needs {', '.join(required[name])}")
            raise b.fail(f"{path}.{k}", f"missing: {why}")
    linear = name != "phase_retrieval"
    if name == "down_sampling":
        res = b.integer(f"{path}.resolution", op.get("resolution", _DAPS_RESOLUTION))
        factor = b.integer(f"{path}.scale_factor", op.get("scale_factor", 4))
        if res % factor:
            raise b.fail(f"{path}.resolution", f"{res} is not a multiple of scale_factor {factor}; pnpdiff's "
                                               "Downsample needs image sizes that are multiples of the factor")
        b.recipe["size"] = [res, res]
        b.recipe["operator"] = {"name": "Downsample", "factor": factor, "filter": "bicubic"}
        b.row(f"{path}.name", name, "operator.name",
              "Downsample, filter bicubic: the antialiased cubic (a = -0.5) taps and MATLAB centring of DAPS's "
              "Resizer (DPS's), equal away from the border; pnpdiff's boundary is circular where the Resizer mirrors, "
              f"so the outer {2 * factor} pixels differ")
        b.row(f"{path}.resolution", op.get("resolution", f"(absent: {_DAPS_RESOLUTION})"), "size",
              f"{fmt([res, res])} (images are centre-cropped and resized to it; DAPS's Resizer is built for it)")
        b.row(f"{path}.scale_factor", op.get("scale_factor", "(absent: 4)"), "operator.factor", str(factor))
    elif name in ("gaussian_blur", "motion_blur"):
        size = b.integer(f"{path}.kernel_size", op["kernel_size"])
        intensity = b.number(f"{path}.intensity", op["intensity"], positive=name == "gaussian_blur", minimum=0)
        if name == "gaussian_blur":
            b.recipe["operator"] = {"name": "GaussianBlur", "sigma": intensity, "kernel_size": size,
                                    "boundary": "reflect"}
            b.row(f"{path}.name", name, "operator.name",
                  "GaussianBlur, boundary reflect (DAPS pads by reflection; scipy truncates its kernel at 4 sigma, "
                  "pnpdiff keeps the whole window: the kernels agree to 1e-4 of their peak)")
            b.row(f"{path}.kernel_size", op["kernel_size"], "operator.kernel_size", str(size))
            b.row(f"{path}.intensity", op["intensity"], "operator.sigma", f"{intensity:g} (pixels, as in DAPS)")
        else:
            if intensity > 1:
                raise b.fail(f"{path}.intensity", f"expected a number in [0, 1], got {op['intensity']!r}")
            b.recipe["operator"] = {"name": "MotionBlur", "size": size, "intensity": intensity, "seed": 0,
                                    "boundary": "reflect"}
            b.row(f"{path}.name", name, "operator.name",
                  "MotionBlur, boundary reflect, seed 0 (the same random-trajectory model; DAPS draws the kernel from "
                  "its global numpy seed, pnpdiff from its own generator: the kernels are not DAPS's)")
            b.row(f"{path}.kernel_size", op["kernel_size"], "operator.size", str(size))
            b.row(f"{path}.intensity", op["intensity"], "operator.intensity", f"{intensity:g}")
    elif name == "inpainting":
        _daps_mask(b, path, op)
    else:  # phase_retrieval
        oversample = b.number(f"{path}.oversample", op.get("oversample", 0.0), minimum=0, maximum=_MAX_OVERSAMPLE)
        b.recipe["operator"] = {"name": "PhaseRetrieval", "oversample": oversample}
        b.row(f"{path}.name", name, "operator.name",
              "PhaseRetrieval (nonlinear: |FFT| of the zero-padded image; DAPS maps its [-1, 1] image to [0, 1] "
              "before the transform, so the measurement is pnpdiff's exactly)")
        if "resolution" in op:
            res = b.integer(f"{path}.resolution", op["resolution"])
            b.recipe["size"] = res
            b.row(f"{path}.resolution", op["resolution"], "size",
                  f"{res} (DAPS pads for a resolution x resolution image; pnpdiff resizes the images to it)")
        b.row(f"{path}.oversample", op.get("oversample", "(absent: DAPS's default 0)"), "operator.oversample",
              f"{oversample:g} (oversample/8 of the image size per side; DAPS takes it of resolution, "
              f"{op.get('resolution', _DAPS_RESOLUTION)}: the same at that size)")
    sigma = b.number(f"{path}.sigma", op["sigma"], minimum=0)
    sigma_y = sigma / 2 if linear else sigma
    b.recipe["noise"] = {"sigma_y": sigma_y}
    b.row(
        f"{path}.sigma",
        op["sigma"],
        "noise.sigma_y",
        f"{sigma_y:g} (= {sigma:g} / 2: DAPS's sigma is on [-1, 1] images, pnpdiff's on [0, 1]; pnpdiff seeds "
        "the noise: noise.seed 0)"
        if linear
        else f"{sigma_y:g} (= sigma: DAPS's phase retrieval measures the [0, 1] image, as pnpdiff's; pnpdiff "
        "seeds the noise: noise.seed 0)",
    )
    return linear


def _daps_mask(b: Builder, path: str, op: dict[str, Any]) -> None:
    kind = op["mask_type"]
    if kind not in ("random", "box"):
        why = {
            "extreme": "extreme (only the box observed) has no pnpdiff mask generator",
            "both": "both is refused by DAPS's own mask generator (it returns no mask)",
        }.get(str(kind))
        raise b.fail(f"{path}.mask_type", why or f"expected random or box, got {kind!r}")
    res = b.integer(f"{path}.resolution", op.get("resolution", _DAPS_RESOLUTION))
    b.recipe["size"] = res
    b.row(f"{path}.resolution", op.get("resolution", f"(absent: {_DAPS_RESOLUTION})"), "size",
          f"{res} (DAPS draws its mask at resolution and needs images of that size; pnpdiff resizes them to it)")
    b.row(f"{path}.mask_type", kind, "operator.mask.kind", kind)
    if kind == "random":
        if "mask_prob_range" not in op:
            raise b.fail(f"{path}.mask_prob_range", "missing: the range of the fraction of missing pixels")
        lo, hi = b.pair(f"{path}.mask_prob_range", op["mask_prob_range"])
        if hi > 1:
            raise b.fail(f"{path}.mask_prob_range", f"fractions must be in [0, 1], got {fmt(op['mask_prob_range'])}")
        p = (lo + hi) / 2
        mask: dict[str, Any] = {"kind": "random", "p_missing": p, "seed": 0}
        note = (
            f"{p:g} (fraction of missing pixels)"
            if lo == hi
            else f"{p:g} ~ the mean: DAPS draws the fraction uniformly in [{lo:g}, {hi:g}], pnpdiff uses one fixed "
            "fraction"
        )
        b.row(f"{path}.mask_prob_range", op["mask_prob_range"], "operator.mask.p_missing", note)
        if "mask_len_range" in op:
            b.ignored(f"{path}.mask_len_range", op["mask_len_range"], "DAPS reads it only for box masks")
    else:
        if "mask_len_range" not in op:
            raise b.fail(f"{path}.mask_len_range", "missing: the range of the box side, e.g. [128, 129]")
        lo, hi = b.pair(f"{path}.mask_len_range", op["mask_len_range"], integers=True)
        if hi <= lo:
            raise b.fail(f"{path}.mask_len_range", "DAPS draws the side from [low, high): high must exceed low, got "
                                                   f"{fmt(op['mask_len_range'])}")
        side = box_side(lo, hi)
        mask = {"kind": "box", "box_size": side, "position": "random", "margin": _DAPS_MARGIN, "seed": 0}
        note = (
            f"{side} (box side; DAPS draws it from [{int(lo)}, {int(hi)}), i.e. always {side}; random position at "
            f"least {_DAPS_MARGIN} pixels from the border, DAPS's margin)"
            if hi == lo + 1
            else f"{side} ~ the mean: DAPS draws height and width in [{int(lo)}, {int(hi)}), pnpdiff uses one fixed "
            f"square (random position at least {_DAPS_MARGIN} pixels from the border, DAPS's margin)"
        )
        b.row(f"{path}.mask_len_range", op["mask_len_range"], "operator.mask.box_size", note)
        if "mask_prob_range" in op:
            b.ignored(f"{path}.mask_prob_range", op["mask_prob_range"], "DAPS reads it only for random masks")
    b.recipe["operator"] = {"name": "Inpaint", "mask": mask}
    b.row(f"{path}.name", "inpainting", "operator.name",
          "Inpaint (mask seed 0: DAPS draws its mask from its global numpy seed)")


# ---------------------------------------------------------------------------------------------
# the sampler
# ---------------------------------------------------------------------------------------------
def _beta_and_lr(b: Builder, path: str, tau: float, lr: float, linear: bool, tau_given: Any, lr_given: Any) -> None:
    """Rows and options for DAPS's ``tau`` and ``lr`` (the module docstring derives both)."""
    beta = tau / (2 * math.sqrt(2)) if linear else tau / math.sqrt(2)
    rel = lr / (4 * beta * beta)
    options = b.recipe["options"]
    options["beta_y"] = beta
    b.row(
        f"{path}.tau",
        tau_given,
        "options.beta_y",
        f"{beta:.6g} (= tau / (2 sqrt 2): DAPS's Langevin loss is ||A x' - y'||^2 / tau^2, a likelihood of std "
        "tau / sqrt 2, on [-1, 1] images where the residual doubles)"
        if linear
        else f"{beta:.6g} (= tau / sqrt 2: DAPS's Langevin loss is ||A x' - y||^2 / tau^2, a likelihood of std "
        "tau / sqrt 2, in the units of the measurement, which are pnpdiff's for phase retrieval)",
    )
    formula = "2 lr / tau^2" if linear else "lr / (2 tau^2)"
    why = ("DAPS's absolute step lr on [-1, 1] is lr / 4 on [0, 1], pnpdiff's is lr beta_y^2"
           + ("" if linear else " / ||J||^2, ||J||^2 about 1 for phase retrieval"))
    if rel > 1 + 1e-9:  # (2 * 5e-5 / 0.01^2 is 1 plus a rounding error: not capped)
        options["lr"] = 1.0
        note = (f"1, capped: {formula} = {rel:.6g} is DAPS's step ({why}), but pnpdiff's daps takes lr in (0, 1]; "
                f"its step is {1 / rel:.3g} of DAPS's at every level")
    else:
        options["lr"] = min(rel, 1.0)
        note = f"{rel:.6g} (= {formula}: {why})"
    b.row(f"{path}.lr", lr_given, "options.lr", note)


def _daps_mcmc(b: Builder, path: str, cfg: Any, linear: bool) -> None:
    """A group's ``mcmc_sampler_config`` (cores/mcmc.py): Langevin with the Gaussian prior term."""
    if cfg is None:
        raise b.fail(path, "missing: a DAPS task group needs mcmc_sampler_config: {num_steps, lr, tau, ...}")
    c = b.mapping(path, cfg)
    for k in c:
        if k not in DAPS_MCMC_KEYS:
            raise b.unknown(f"{path}.{k}", DAPS_MCMC_KEYS, "DAPS mcmc_sampler_config")
    algo = c.get("mc_algo", "langevin")
    if algo != "langevin":
        why = {
            "hmc": "hmc (DAPS's Hamiltonian Monte Carlo) is not in pnpdiff's daps, which runs Langevin; use the "
                   "pixel group (mc_algo: langevin)",
            "mh": "mh (Metropolis-Hastings) is not in pnpdiff's daps, which runs Langevin; use mc_algo: langevin",
        }.get(str(algo), f"expected langevin, got {algo!r}")
        raise b.fail(f"{path}.mc_algo", why)
    solver = c.get("prior_solver", "gaussian")
    if solver != "gaussian":
        raise b.fail(f"{path}.prior_solver", f"{solver!r} is not in pnpdiff's daps, whose prior term is the paper's "
                                             "Gaussian N(x0_hat, r_t^2); use prior_solver: gaussian")
    for k in ("num_steps", "lr"):
        if k not in c:
            raise b.fail(f"{path}.{k}", "missing: DAPS's MCMCSampler needs num_steps and lr")
    b.recipe["method"] = "daps"
    b.recipe["options"] = {}
    n = b.steps(f"{path}.num_steps", c["num_steps"], minimum=0)
    b.recipe["options"]["langevin_steps"] = n
    b.row(f"{path}.num_steps", c["num_steps"], "options.langevin_steps", f"{n} (Langevin steps per annealing level)")
    lr = b.number(f"{path}.lr", c["lr"], positive=True)
    tau = b.number(f"{path}.tau", c.get("tau", 0.01), positive=True)
    _beta_and_lr(b, path, tau, lr, linear, c.get("tau", "(absent: DAPS's default 0.01)"), c["lr"])
    if "lr_min_ratio" in c:
        ratio = b.number(f"{path}.lr_min_ratio", c["lr_min_ratio"], positive=True, maximum=1.0)
    else:
        ratio = 0.01
    b.recipe["options"]["lr_min_ratio"] = ratio
    b.row(f"{path}.lr_min_ratio", c.get("lr_min_ratio", "(absent: DAPS's default 0.01)"), "options.lr_min_ratio",
          f"{ratio:g} (the same linear decay of the step over the annealing)")
    b.row(f"{path}.mc_algo", c.get("mc_algo", "(absent: langevin)"), "method", "daps (Langevin)")
    if "prior_solver" in c:
        b.row(f"{path}.prior_solver", solver, "-", "- (the Gaussian N(x0_hat, r_t^2) of the paper, as pnpdiff's daps)")
    if "momentum" in c:
        b.ignored(f"{path}.momentum", c["momentum"], "DAPS reads it only with mc_algo hmc")
    if "prior_sigma_min" in c:
        b.ignored(f"{path}.prior_sigma_min", c["prior_sigma_min"], "DAPS reads it only with prior_solver exact or "
                                                                   "score-min")


def _daps_langevin(b: Builder, path: str, cfg: Any, linear: bool) -> None:
    """The older layout's ``likelihood_estimator_config`` (sampler.py's Langevin estimator)."""
    if cfg is None:
        raise b.fail(path, "missing: a DAPS task config needs likelihood_estimator_config: {name: langevin, ...}")
    c = b.mapping(path, cfg)
    for k in c:
        if k not in DAPS_LANGEVIN_KEYS:
            raise b.fail(f"{path}.{k}", f"not translated (pnpdiff's daps is DAPS's Langevin estimator with its "
                                        f"defaults); the keys pnpdiff reads: {', '.join(DAPS_LANGEVIN_KEYS)}")
    if c.get("name") != "langevin":
        raise b.fail(f"{path}.name", f"expected langevin (DAPS's one estimator), got {c.get('name')!r}")
    b.recipe["method"] = "daps"
    b.recipe["options"] = {}
    b.row(f"{path}.name", "langevin", "method", "daps (Langevin)")
    n = b.steps(f"{path}.step", c.get("step", 100), minimum=0)
    b.recipe["options"]["langevin_steps"] = n
    b.row(f"{path}.step", c.get("step", "(absent: DAPS's default 100)"), "options.langevin_steps",
          f"{n} (Langevin steps per annealing level)")
    lr = b.number(f"{path}.lr", c.get("lr", 0.1), positive=True)
    tau = b.number(f"{path}.tau", c.get("tau", 0.1), positive=True)
    _beta_and_lr(b, path, tau, lr, linear, c.get("tau", "(absent: DAPS's default 0.1)"),
                 c.get("lr", "(absent: DAPS's default 0.1)"))
    ratio = b.number(f"{path}.lr_min_ratio", c["lr_min_ratio"], positive=True, maximum=1.0) if "lr_min_ratio" in c \
        else 0.01
    b.recipe["options"]["lr_min_ratio"] = ratio
    b.row(f"{path}.lr_min_ratio", c.get("lr_min_ratio", "(absent: DAPS's default 0.01)"), "options.lr_min_ratio",
          f"{ratio:g} (the same linear decay of the step over the annealing)")
    if "ode_step" in c:
        ode = b.steps(f"{path}.ode_step", c["ode_step"])
        b.recipe["options"]["ode_steps"] = ode
        b.row(f"{path}.ode_step", c["ode_step"], "options.ode_steps",
              f"{ode} (Euler steps of the probability-flow ODE of each level, to sigma 0.01 on [-1, 1], 0.005 here)")
