"""DiffPIR configs (Zhu et al., CVPR-W 2023; ``yuanzhi-zhu/DiffPIR``) as pnpdiff recipes.

DiffPIR's ``configs/sisr.yaml``, ``deblur.yaml`` and ``inpaint.yaml`` (read by its ``main_ddpir.py
--opt``) are flat YAML files with the variable names of its ``main_ddpir*.py`` scripts
(``noise_level_img`` on a 0-255 scale, ``iter_num``, ``lambda_``, ``zeta``, ``sf``, ``blur_mode``,
``mask_type``, ``skip_type``, ``model_name``, ...). :func:`translate_diffpir` turns one into a
pnpdiff recipe with ``method: diffpir``.

Units (see ``ALGORITHMS.md``): ``sigma_y = noise_level_img / 255``. DiffPIR's
``rho_t = lambda_ sigma_n^2 / sigmabar_t^2`` takes ``sigmabar_t`` on [-1, 1], twice pnpdiff's sigma:
``lam = lambda_ / 4``. ``zeta`` has the same meaning in both.

The values written are not the ones DiffPIR's scripts run: ``main_ddpir.py`` and
``main_ddpir_<task>.py`` end in a loop over multiples of the configured ``lambda_`` and ``zeta``
(:data:`SCRIPT_SCALING`). pnpdiff runs the values as written and the table of ``--dry-run`` says
what DiffPIR's script would run instead.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pnpdiff.config.peers.common import Builder, Translation, box_side, fmt
from pnpdiff.schedules import ddpm_sigma_table

__all__ = ["DIFFPIR_KEYS", "DIFFPIR_SURE_KEYS", "SCRIPT_SCALING", "translate_diffpir"]

# fmt: off
#: DiffPIR keys that change the result (translated, or refused when pnpdiff cannot honour them)
_DIFFPIR_RESULT_KEYS = (
    "task", "task_current", "seed", "noise_level_img", "noise_level_model", "model_name", "model_zoo",
    "testset_name", "testsets", "cwd", "num_train_timesteps", "beta_start", "beta_end", "iter_num",
    "iter_num_U", "lambda_", "zeta", "sub_1_analytic", "ddim_sample", "model_output_type", "generate_mode",
    "skip_type", "eta", "guidance_scale", "n_channels", "noise_init_img", "skip_noise_model_t", "sf",
    "test_sf", "sr_mode", "inIter", "gamma", "classical_degradation", "use_DIY_kernel", "blur_mode",
    "kernel_size", "kernel_std", "mask_type", "mask_len_range", "mask_prob_range", "load_mask", "mask_name",
    "mask_path",
)
#: DiffPIR keys that only do bookkeeping (result files, logging, metrics, batching), with a note
_DIFFPIR_BOOKKEEPING = {
    "save_L": "", "save_E": "", "save_LEH": "", "save_progressive": "", "save_progressive_mask": "",
    "log_process": "", "show_img": "", "results": "result folder", "result_name": "result folder",
    "E_path": "result folder",
    "calc_LPIPS": "a metric; pnpdiff reports PSNR and SSIM",
    "border": "the PSNR border; pnpdiff's metrics use the whole image",
    "batch_size": "how many images the batched main_ddpir.py of 2023 pushed through the model at once (the "
                  "current script restores one at a time; DiffPIR's draws are not pnpdiff's either way); "
                  "pnpdiff's own is batch_size=N on the command line",
}
# fmt: on
#: every DiffPIR key pnpdiff knows
DIFFPIR_KEYS = _DIFFPIR_RESULT_KEYS + tuple(_DIFFPIR_BOOKKEEPING)
#: DiffPIR keys no other code base's config uses: one of them makes a file a DiffPIR config. The
#: others (``eta``, ``seed``, ``sf``, ``batch_size``, ``beta_start``, ``skip_type``, ...) are common
#: words that RED-diff's, DDNM's or a pnpdiff recipe's files use too; alone they place nothing.
DIFFPIR_SURE_KEYS = (
    "task_current", "noise_level_img", "noise_level_model", "model_zoo", "testset_name", "testsets",
    "iter_num", "iter_num_U", "lambda_", "sub_1_analytic", "model_output_type", "generate_mode",
    "noise_init_img", "skip_noise_model_t", "test_sf", "sr_mode", "inIter", "classical_degradation",
    "use_DIY_kernel", "blur_mode", "kernel_std", "load_mask", "mask_name", "save_L", "save_E", "save_LEH",
    "save_progressive", "save_progressive_mask", "log_process", "show_img", "calc_LPIPS", "result_name",
    "E_path",
)

#: What DiffPIR's scripts run instead of the configured ``lambda_`` and ``zeta``, per task: the
#: closing loops of ``main_ddpir.py`` (and of ``main_ddpir_sisr.py``, ``main_ddpir_deblur.py``,
#: ``main_ddpir_inpainting.py``, identical): ``(multipliers of lambda_, multiplier of zeta or None,
#: fixed zeta or None)``. Super-resolution sweeps ``lambda_ * 2 .. lambda_ * 12`` (eleven runs) with
#: ``zeta`` 0.25 whatever the config says; deblurring runs ``7 lambda_`` and ``3 zeta``; inpainting
#: the values as written.
SCRIPT_SCALING: dict[str, tuple[tuple[int, ...], int | None, float | None]] = {
    "sr": (tuple(range(2, 13)), None, 0.25),
    "deblur": ((7,), 3, None),
    "inpaint": ((1,), 1, None),
}

_DIFFPIR_MODELS = {"diffusion_ffhq_10m": "ffhq", "256x256_diffusion_uncond": "imagenet"}
_DIFFPIR_TASKS = {"sr": "sr", "deblur": "deblur", "inpaint": "inpaint", "ip": "inpaint"}
#: keys each task reads (the others are ignored by DiffPIR for that task)
_DIFFPIR_TASK_KEYS = {
    "sr": ("sf", "test_sf", "sr_mode", "inIter", "gamma", "classical_degradation"),
    "deblur": ("use_DIY_kernel", "blur_mode", "kernel_size", "kernel_std"),
    "inpaint": ("mask_type", "mask_len_range", "mask_prob_range", "load_mask", "mask_name", "mask_path"),
}


def _diffpir_task(b: Builder, d: dict[str, Any]) -> str:
    given = [k for k in ("task", "task_current") if k in d]
    for key in given:
        if d[key] not in _DIFFPIR_TASKS:
            raise b.fail(key, f"expected sr, deblur or inpaint (DiffPIR's tasks), got {d[key]!r}")
    if len(given) == 2 and _DIFFPIR_TASKS[d["task"]] != _DIFFPIR_TASKS[d["task_current"]]:
        raise b.fail("task_current", f"{d['task_current']!r} disagrees with task {d['task']!r}")
    for key in given:
        b.row(key, d[key], "operator", f"the {_DIFFPIR_TASKS[d[key]]} operator (below)")
    if given:
        return _DIFFPIR_TASKS[d[given[0]]]
    guesses = {
        t
        for t, keys in (
            ("sr", ("sr_mode", "test_sf")),
            ("deblur", _DIFFPIR_TASK_KEYS["deblur"]),
            ("inpaint", _DIFFPIR_TASK_KEYS["inpaint"]),
        )
        if any(k in d for k in keys)
    }
    sf = d.get("sf")
    if not isinstance(sf, bool) and isinstance(sf, (int, float)) and sf > 1:
        guesses.add("sr")
    if len(guesses) != 1:
        raise b.fail("task", "missing: say which DiffPIR task this is (task: sr, deblur or inpaint)")
    (task,) = guesses
    b.row("task", "(absent)", "operator", f"the {task} operator (inferred from the keys given)")
    return task


def translate_diffpir(data: dict[str, Any], source: Path | None = None) -> Translation:
    """Translate a DiffPIR config (see the module docstring) into a pnpdiff recipe.

    Parameters
    ----------
    data : dict
        The parsed config: keys of :data:`DIFFPIR_KEYS`.
    source : Path, optional
        The file it came from (named in errors and in the table's title).

    Returns
    -------
    Translation
        The recipe (``method: diffpir``) and one table row per peer key.

    Raises
    ------
    RecipeError
        A key DiffPIR does not define, a setting pnpdiff's diffpir does not reproduce (``sr_mode:
        cubic``, RePaint resampling, another ``generate_mode``, ...) or a bad value; the message
        names the key.
    """
    b = Builder("diffpir", source)
    d = data
    for k in d:
        if k not in DIFFPIR_KEYS:
            raise b.fail(k, f"not a DiffPIR config key that pnpdiff knows; DiffPIR's keys: {', '.join(DIFFPIR_KEYS)}")
    task = _diffpir_task(b, d)
    for k in d:
        if k in _DIFFPIR_BOOKKEEPING:
            b.bookkeeping(k, d[k], _DIFFPIR_BOOKKEEPING[k])
    _diffpir_image_and_prior(b, d)
    _diffpir_noise(b, d)
    _diffpir_sampler(b, d, task)
    {"sr": _diffpir_sr, "deblur": _diffpir_deblur, "inpaint": _diffpir_inpaint}[task](b, d)
    for t, keys in _DIFFPIR_TASK_KEYS.items():
        if t != task:
            for k in keys:
                if k in d and not (k == "sf" and task != "sr"):
                    b.ignored(k, d[k], f"DiffPIR reads it only for the {t} task")
    return b.finish(data, source)


def _diffpir_path(*parts: str) -> str:
    """DiffPIR's ``os.path.join`` of the parts given, empty ones skipped."""
    parts = tuple(p for p in parts if p)
    return str(Path(*parts)) if parts else ""


def _diffpir_image_and_prior(b: Builder, d: dict[str, Any]) -> None:
    cwd = b.text("cwd", d["cwd"]) if "cwd" in d else ""
    if "cwd" in d:
        b.row("cwd", d["cwd"], "image / prior paths", "prefix of testsets and model_zoo (as in DiffPIR)")
    testsets = b.text("testsets", d["testsets"]) if "testsets" in d else _diffpir_path(cwd, "testsets")
    if "testsets" in d:
        b.row("testsets", d["testsets"], "image", "the folder of the test sets (with testset_name)")
    if "testset_name" in d:
        name = b.text("testset_name", d["testset_name"])
        image = _diffpir_path(testsets, name)
        b.recipe["image"] = image
        b.row(
            "testset_name",
            name,
            "image",
            f"{image} (a folder: one run per image, relative to this file; DiffPIR joins it to its working directory)",
        )
    else:
        b.row("testset_name", "(absent)", "image", "- (no ground truth: pass image=PATH on the command line)")

    if "model_name" in d:
        name = b.text("model_name", d["model_name"])
        if name not in _DIFFPIR_MODELS:
            raise b.fail(
                "model_name",
                f"unknown DiffPIR model {name!r}; pnpdiff knows "
                + ", ".join(f"{k} (prior {v})" for k, v in _DIFFPIR_MODELS.items()),
            )
        prior = _DIFFPIR_MODELS[name]
        if "model_zoo" in d:
            zoo = b.text("model_zoo", d["model_zoo"])
        else:
            zoo = _diffpir_path(cwd, "model_zoo") if cwd else ""
        if zoo:
            path = _diffpir_path(zoo, name + ".pt")
            b.recipe["prior"] = {"name": prior, "path": path}
            b.row("model_name", name, "prior", f"{{name: {prior}, path: {path}}} (relative to this file)")
        else:
            b.recipe["prior"] = prior
            b.row(
                "model_name",
                name,
                "prior",
                f"{prior} (pnpdiff's cache; DiffPIR reads model_zoo/{name}.pt: prior={prior}:/path/to/{name}.pt)",
            )
        if "model_zoo" in d:
            b.row("model_zoo", d["model_zoo"], "prior.path", "the folder of the checkpoint (with model_name)")
    else:
        b.row(
            "model_name",
            "(absent)",
            "prior",
            "natural (pnpdiff's default, FFDNet, offline; valid up to 75/255, so the steps fall below it)",
        )
        if "model_zoo" in d:
            b.ignored("model_zoo", d["model_zoo"], "no model_name")


def _diffpir_noise(b: Builder, d: dict[str, Any]) -> None:
    if "noise_level_img" not in d:
        raise b.fail("noise_level_img", "missing: the noise level of the measurement on a 0-255 scale (e.g. 12.75)")
    level = b.number("noise_level_img", d["noise_level_img"], minimum=0)
    sigma_y = level / 255
    b.recipe["noise"] = {"sigma_y": sigma_y}
    b.row(
        "noise_level_img",
        d["noise_level_img"],
        "noise.sigma_y",
        f"{sigma_y:.6g} (= {level:g} / 255: DiffPIR's level is on a 0-255 scale)",
    )
    if "seed" in d:
        seed = b.seed("seed", d["seed"])
        b.recipe["seed"] = seed
        b.recipe["noise"]["seed"] = seed
        b.row("seed", seed, "seed, noise.seed", f"{seed} (pnpdiff's own random streams: the draws are not DiffPIR's)")
    if "noise_level_model" in d:
        b.ignored(
            "noise_level_model",
            d["noise_level_model"],
            "main_ddpir.py replaces it by noise_level_img; it matters only with skip_noise_model_t",
        )


def _ddpm_table() -> list[float]:
    """DiffPIR's sigma table on [-1, 1] (``sqrt((1 - abar) / abar)``), for its timestep look-ups."""
    return [2 * float(s) for s in ddpm_sigma_table()]


def _script_runs(task: str, lam: float | None, zeta: float | None) -> tuple[str, str]:
    """The notes on what DiffPIR's script runs instead of the ``lambda_`` and ``zeta`` written
    (:data:`SCRIPT_SCALING`), for the rows of ``lambda_`` and ``zeta``."""
    mults, zeta_mult, zeta_fixed = SCRIPT_SCALING[task]
    script = ("DiffPIR's scripts (main_ddpir.py, main_ddpir_"
              + {"sr": "sisr", "deblur": "deblur", "inpaint": "inpainting"}[task] + ".py)")
    if lam is None:
        lam_note = ""
    elif mults == (1,):
        lam_note = f"; {script} run lambda_ as written"
    elif len(mults) == 1:
        lam_note = (f"; {script} run {mults[0]} x lambda_ = {mults[0] * lam:g}, not the value written (that is "
                    f"options.lam={mults[0] * lam / 4:g}); pnpdiff runs the value written")
    else:
        lo, hi = mults[0], mults[-1]
        lam_note = (f"; {script} do not run the value written: they sweep lambda_ x {lo} .. {hi} = {lo * lam:g} .. "
                    f"{hi * lam:g} (options.lam={lo * lam / 4:g} .. {hi * lam / 4:g}), one run each; pnpdiff runs the "
                    "value written")
    if zeta is None:
        zeta_note = ""
    elif zeta_fixed is not None:
        zeta_note = (f"; {script} run zeta {zeta_fixed:g} for this task whatever the config says (that is "
                     f"options.zeta={zeta_fixed:g}); pnpdiff runs the value written")
    elif zeta_mult == 1:
        zeta_note = f"; {script} run zeta as written"
    else:
        zeta_note = (f"; {script} run {zeta_mult} x zeta = {zeta_mult * zeta:g}, not the value written (that is "
                     f"options.zeta={zeta_mult * zeta:g}); pnpdiff runs the value written")
    return lam_note, zeta_note


def _diffpir_sampler(b: Builder, d: dict[str, Any], task: str) -> None:
    """The keys of DiffPIR's loop: steps, lambda_, zeta and the switches pnpdiff's diffpir must match."""
    defaults = {"num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02}
    for k, v in defaults.items():
        if k in d:
            got = b.number(k, d[k], positive=True)
            if not math.isclose(got, v, rel_tol=1e-9):
                raise b.fail(
                    k,
                    f"pnpdiff's DDPM table is the linear one of DiffPIR's models ({k} {v:g}); "
                    f"got {d[k]!r}, which changes every noise level",
                )
            b.row(k, d[k], "-", f"- (pnpdiff's DDPM table: {v:g})")
    options: dict[str, Any] = {}
    if "iter_num" not in d:
        raise b.fail("iter_num", "missing: the number of sampling iterations (e.g. 100)")
    steps = b.steps("iter_num", d["iter_num"], minimum=2)
    b.recipe["steps"] = steps
    b.row("iter_num", steps, "steps", f"{steps} (denoiser evaluations, spaced over the prior's sigma range)")
    if "iter_num_U" in d and b.integer("iter_num_U", d["iter_num_U"]) != 1:
        raise b.fail(
            "iter_num_U",
            "repeating each step (RePaint-style resampling) is not in pnpdiff's diffpir; use iter_num_U: 1",
        )
    if "iter_num_U" in d:
        b.row("iter_num_U", d["iter_num_U"], "-", "- (one pass per step, as pnpdiff)")

    skip_type = d.get("skip_type", "quad")
    if skip_type != "quad":
        why = (
            "uniform timestep spacing is not available from a recipe (pnpdiff's ddpm schedule has "
            "DiffPIR's quad spacing); use skip_type: quad"
            if skip_type == "uniform"
            else f"expected quad or uniform, got {skip_type!r}"
        )
        raise b.fail("skip_type", why)
    options["schedule"] = "ddpm"
    b.row(
        "skip_type",
        d.get("skip_type", "(absent: quad)"),
        "options.schedule",
        "ddpm (linear-beta DDPM sigmas at DiffPIR's quadratic timestep spacing, continuous instead of rounded "
        "to integers: within one timestep)",
    )
    lam = b.number("lambda_", d["lambda_"], positive=True) if "lambda_" in d else None
    if "zeta" in d:
        zeta = b.number("zeta", d["zeta"], minimum=0)
        if zeta > 1:
            raise b.fail("zeta", f"expected a number in [0, 1] (the fraction of fresh noise), got {d['zeta']!r}")
    else:
        zeta = None
    lam_note, zeta_note = _script_runs(task, lam, zeta)
    if lam is not None:
        options["lam"] = lam / 4
        b.row(
            "lambda_",
            d["lambda_"],
            "options.lam",
            f"{lam / 4:g} (= lambda_ / 4: DiffPIR's rho = lambda_ sigma_n^2 / sigmabar_t^2 takes sigmabar_t on "
            f"[-1, 1], twice pnpdiff's sigma{lam_note})",
        )
    else:
        b.row("lambda_", "(absent)", "options.lam", "pnpdiff's default for the prior")
    if zeta is not None:
        options["zeta"] = zeta
        b.row("zeta", d["zeta"], "options.zeta", f"{zeta:g} (same definition{zeta_note})")
    else:
        b.row("zeta", "(absent)", "options.zeta", "pnpdiff's default for the prior")
    b.recipe["method"] = "diffpir"
    b.recipe["options"] = options

    if "generate_mode" in d and d["generate_mode"] != "DiffPIR":
        raise b.fail(
            "generate_mode",
            f"{d['generate_mode']!r} is not translated; pnpdiff's diffpir is DiffPIR's "
            "generate_mode DiffPIR (for DPS use a DPS config or method: dps)",
        )
    b.row("generate_mode", d.get("generate_mode", "(absent: DiffPIR)"), "method", "diffpir")
    if "model_output_type" in d and d["model_output_type"] != "pred_xstart":
        raise b.fail(
            "model_output_type",
            f"{d['model_output_type']!r} is not DiffPIR's algorithm; pnpdiff's diffpir "
            "is model_output_type pred_xstart",
        )
    if "model_output_type" in d:
        b.row("model_output_type", d["model_output_type"], "-", "- (pnpdiff's denoiser predicts x0)")
    if "sub_1_analytic" in d and not b.boolean("sub_1_analytic", d["sub_1_analytic"]):
        raise b.fail(
            "sub_1_analytic",
            "DiffPIR's first-order (gradient) data step is not in pnpdiff, which solves "
            "the data step exactly; use sub_1_analytic: true",
        )
    if "sub_1_analytic" in d:
        b.row("sub_1_analytic", True, "-", "- (pnpdiff's prox is the closed form for these operators)")
    if "guidance_scale" in d:
        g = b.number("guidance_scale", d["guidance_scale"])
        if g != 1:
            raise b.fail(
                "guidance_scale",
                f"pnpdiff's diffpir takes the data step in full (guidance_scale 1); got {d['guidance_scale']!r}",
            )
        b.row("guidance_scale", d["guidance_scale"], "-", "- (the full data step, as pnpdiff)")
    if "eta" in d:
        eta = b.number("eta", d["eta"], minimum=0)
        if eta != 0 and zeta != 1:
            raise b.fail(
                "eta",
                "DiffPIR's eta (DDIM noise mixed into the kept part of the noise) is not in pnpdiff's "
                "diffpir; use eta: 0 (with zeta: 1 it has no effect)",
            )
        b.row("eta", d["eta"], "-", "- (pnpdiff's diffpir is eta 0" + (")" if eta == 0 else "; no effect with zeta 1)"))
    if "ddim_sample" in d:
        b.boolean("ddim_sample", d["ddim_sample"])
        b.row("ddim_sample", d["ddim_sample"], "-", "- (no effect: the x0 prediction is the same for both samplers)")
    if "n_channels" in d:
        if b.integer("n_channels", d["n_channels"]) != 3:
            raise b.fail("n_channels", "DiffPIR's models are colour (n_channels 3); pnpdiff reads images as stored")
        b.row("n_channels", 3, "-", "- (colour images)")
    if "noise_init_img" in d:
        if d["noise_init_img"] != "max":
            raise b.fail(
                "noise_init_img",
                "starting below the top of the schedule with DiffPIR's rule (keep the "
                "full-range spacing, skip the steps above) is not in pnpdiff; use max, "
                "or a pnpdiff recipe with options.schedule_max",
            )
        b.row("noise_init_img", "max", "-", "- (start at the prior's largest sigma)")
    if "skip_noise_model_t" in d and b.boolean("skip_noise_model_t", d["skip_noise_model_t"]):
        table = _ddpm_table()
        target = 2 * float(d["noise_level_img"]) / 255
        t_model = min(range(len(table)), key=lambda i: abs(table[i] - target))
        if steps > len(table) - t_model:
            raise b.fail(
                "skip_noise_model_t",
                f"with iter_num {steps} DiffPIR would switch its last "
                f"{steps - (len(table) - t_model)} steps to a plain DDPM step, which "
                "pnpdiff's diffpir does not; use skip_noise_model_t: false",
            )
        b.row("skip_noise_model_t", True, "-", f"- (no effect here: iter_num <= {len(table) - t_model})")
    elif "skip_noise_model_t" in d:
        b.row("skip_noise_model_t", False, "-", "- (as pnpdiff)")


def _diffpir_sf(b: Builder, d: dict[str, Any]) -> int:
    if "test_sf" in d:
        v = d["test_sf"]
        values = v if isinstance(v, (list, tuple)) else [v]
        if len(values) != 1:
            raise b.fail("test_sf", f"one scale factor per pnpdiff run, got {fmt(v)}; write one recipe per factor")
        sf = b.integer("test_sf", values[0])
        if "sf" in d and b.integer("sf", d["sf"]) != sf:
            raise b.fail("sf", f"sf {d['sf']!r} disagrees with test_sf {fmt(v)}")
        b.row("test_sf", v, "operator.factor", str(sf))
        if "sf" in d:
            b.row("sf", d["sf"], "operator.factor", str(sf))
        return sf
    if "sf" not in d:
        raise b.fail("sf", "missing: the super-resolution factor (e.g. 4)")
    sf = b.integer("sf", d["sf"])
    b.row(
        "sf",
        d["sf"],
        "operator.factor",
        f"{sf} (DiffPIR crops each image to a multiple of sf; pnpdiff needs sizes that are multiples"
        + ("; DiffPIR's main_ddpir.py runs factor 4 whatever sf says, main_ddpir_sisr.py its test_sf: pnpdiff "
           "runs the sf written)" if sf != 4 else ")"),
    )
    return sf


def _diffpir_sr(b: Builder, d: dict[str, Any]) -> None:
    sf = _diffpir_sf(b, d)
    mode = d.get("sr_mode", "blur")
    if mode != "blur":
        raise b.fail(
            "sr_mode",
            "sr_mode cubic (iterative back-projection with inIter and gamma) is not in pnpdiff; "
            "use sr_mode: blur (the exact data step of the bicubic degradation)"
            if mode == "cubic"
            else f"expected blur or cubic, got {mode!r}",
        )
    if d.get("classical_degradation", False) is not False:
        raise b.fail(
            "classical_degradation",
            "the blur kernels of kernels_12.mat are not available in pnpdiff; use "
            "classical_degradation: false (bicubic)",
        )
    b.recipe["operator"] = {"name": "Downsample", "factor": sf, "filter": "bicubic"}
    b.row(
        "sr_mode",
        d.get("sr_mode", "(absent: blur)"),
        "operator",
        f"Downsample factor {sf}, filter bicubic (MATLAB imresize's antialiased cubic, as DiffPIR's measurement; "
        "circular boundary where imresize mirrors: the outer pixels differ; DiffPIR's data step uses the "
        "kernels_bicubicx234.mat approximation, pnpdiff the exact operator)",
    )
    if "classical_degradation" in d:
        b.row("classical_degradation", False, "-", "- (bicubic degradation)")
    for k in ("inIter", "gamma"):
        if k in d:
            b.ignored(k, d[k], "DiffPIR reads it only with sr_mode cubic")


def _diffpir_deblur(b: Builder, d: dict[str, Any]) -> None:
    if "sf" in d and b.integer("sf", d["sf"]) != 1:
        raise b.fail("sf", f"deblurring is at scale 1 (DiffPIR's deblur with sf {d['sf']!r} is not a task it runs)")
    if "sf" in d:
        b.row("sf", d["sf"], "-", "- (scale 1)")
    if "use_DIY_kernel" in d and not b.boolean("use_DIY_kernel", d["use_DIY_kernel"]):
        raise b.fail(
            "use_DIY_kernel",
            "the kernels of Levin09.mat are not available in pnpdiff; use use_DIY_kernel: true (Gaussian or motion)",
        )
    if "use_DIY_kernel" in d:
        b.row("use_DIY_kernel", True, "-", "- (a generated kernel)")
    mode = d.get("blur_mode", "Gaussian")
    if mode not in ("Gaussian", "motion"):
        raise b.fail("blur_mode", f"expected Gaussian or motion, got {mode!r}")
    size = b.integer("kernel_size", d.get("kernel_size", 61))
    std_default = 3.0 if mode == "Gaussian" else 0.5
    std = b.number("kernel_std", d.get("kernel_std", std_default), positive=mode == "Gaussian", minimum=0)
    # main_ddpir.py sets kernel_std = 3.0 if blur_mode == 'Gaussian' else 0.5 after reading the config
    std_note = (f"; DiffPIR's main_ddpir.py replaces it by {std_default:g} whatever the config says: pnpdiff runs "
                "the value written" if "kernel_std" in d and std != std_default else "")
    if mode == "Gaussian":
        b.recipe["operator"] = {"name": "GaussianBlur", "sigma": std, "kernel_size": size, "boundary": "circular"}
        b.row(
            "blur_mode",
            mode,
            "operator.name",
            "GaussianBlur, boundary circular (DiffPIR blurs with wrap-around, and its data step assumes it)",
        )
        b.row(
            "kernel_std",
            d.get("kernel_std", f"(absent: {std_default:g})"),
            "operator.sigma",
            f"{std:g} for every image (DiffPIR's scripts multiply it per image by a seeded random factor "
            f"in [1, 3]: 2.10 for the first image{std_note})",
        )
    else:
        if std > 1:
            raise b.fail("kernel_std", f"the motion-blur intensity must be in [0, 1], got {d['kernel_std']!r}")
        b.recipe["operator"] = {"name": "MotionBlur", "size": size, "intensity": std, "seed": 0, "boundary": "circular"}
        b.row(
            "blur_mode",
            mode,
            "operator.name",
            "MotionBlur, boundary circular, seed 0 (the same random-trajectory model; DiffPIR seeds numpy "
            "per image, pnpdiff has its own generator: the kernels are not DiffPIR's)",
        )
        b.row("kernel_std", d.get("kernel_std", f"(absent: {std_default:g})"), "operator.intensity",
              f"{std:g}" + (f" ({std_note[2:]})" if std_note else ""))
    b.row(
        "kernel_size",
        d.get("kernel_size", "(absent: 61)"),
        "operator.kernel_size" if mode == "Gaussian" else "operator.size",
        str(size),
    )


def _diffpir_inpaint(b: Builder, d: dict[str, Any]) -> None:
    if "sf" in d and b.integer("sf", d["sf"]) != 1:
        raise b.fail("sf", f"inpainting is at scale 1, got sf {d['sf']!r}")
    if "sf" in d:
        b.row("sf", d["sf"], "-", "- (scale 1)")
    load = b.boolean("load_mask", d["load_mask"]) if "load_mask" in d else False
    if load:
        if "mask_path" in d:
            path = b.text("mask_path", d["mask_path"])
            b.row("mask_path", path, "operator.mask", f"{path} (white = observed, as DiffPIR)")
            if "mask_name" in d:
                b.ignored("mask_name", d["mask_name"], "mask_path gives the mask image")
        else:
            if "mask_name" not in d:
                raise b.fail("mask_name", "missing: load_mask needs the mask image's name under testsets")
            testsets = d.get("testsets") or _diffpir_path(d.get("cwd") or "", "testsets")
            path = _diffpir_path(str(testsets), b.text("mask_name", d["mask_name"]))
            b.row("mask_name", d["mask_name"], "operator.mask", f"{path} (white = observed, as DiffPIR)")
        b.row("load_mask", True, "operator.mask", "a mask image")
        b.recipe["operator"] = {"name": "Inpaint", "mask": path}
        for k in ("mask_type", "mask_len_range", "mask_prob_range"):
            if k in d:
                b.ignored(k, d[k], "a mask image is loaded")
        return
    if "load_mask" in d:
        b.row("load_mask", False, "operator.mask", "a generated mask (below)")
    for k in ("mask_name", "mask_path"):
        if k in d:
            b.ignored(k, d[k], "load_mask is false")
    kind = d.get("mask_type", "random")
    if kind not in ("random", "box"):
        why = {
            "extreme": "extreme (only the box observed) has no pnpdiff mask generator",
            "both": "both is refused by DiffPIR's mask generator (it returns no mask)",
        }.get(str(kind))
        raise b.fail("mask_type", why or f"expected random or box, got {kind!r}")
    b.row(
        "mask_type",
        d.get("mask_type", "(absent: random)"),
        "operator.mask.kind",
        f"{kind} (mask seed 0; DiffPIR's generator assumes 256x256 images, pnpdiff draws it at the image's size)",
    )
    if kind == "random":
        lo, hi = b.pair("mask_prob_range", d.get("mask_prob_range", [0.5, 0.5]))
        if hi > 1:
            raise b.fail("mask_prob_range", f"fractions must be in [0, 1], got {fmt(d['mask_prob_range'])}")
        p = (lo + hi) / 2
        mask: dict[str, Any] = {"kind": "random", "p_missing": p, "seed": 0}
        b.row(
            "mask_prob_range",
            d.get("mask_prob_range", "(absent: [0.5, 0.5])"),
            "operator.mask.p_missing",
            f"{p:g} (fraction of missing pixels)"
            if lo == hi
            else f"{p:g} ~ the mean: DiffPIR draws the fraction uniformly in [{lo:g}, {hi:g}] per image, pnpdiff uses "
            "one fixed fraction",
        )
        if "mask_len_range" in d:
            b.ignored("mask_len_range", d["mask_len_range"], "read only for box masks")
    else:
        lo, hi = b.pair("mask_len_range", d.get("mask_len_range", [128, 129]), integers=True)
        if hi <= lo:
            raise b.fail(
                "mask_len_range",
                f"the side is drawn from [low, high): high must exceed low, got {fmt(d['mask_len_range'])}",
            )
        side = box_side(lo, hi)
        mask = {"kind": "box", "box_size": side, "position": "random", "margin": 16, "seed": 0}
        b.row(
            "mask_len_range",
            d.get("mask_len_range", "(absent: [128, 129])"),
            "operator.mask.box_size",
            f"{side} (random position at least 16 pixels from the border, as DiffPIR)"
            if hi == lo + 1
            else f"{side} ~ the mean: DiffPIR draws height and width in [{int(lo)}, {int(hi)}) per image, pnpdiff uses "
            "one fixed square",
        )
        if "mask_prob_range" in d:
            b.ignored("mask_prob_range", d["mask_prob_range"], "read only for random masks")
    b.recipe["operator"] = {"name": "Inpaint", "mask": mask}
