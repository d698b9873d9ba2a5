"""DPS task configs (Chung et al., ICLR 2023; ``DPS2022/diffusion-posterior-sampling``) as pnpdiff recipes.

A DPS task config (``configs/*_config.yaml`` of the DPS repository, read by its
``sample_condition.py``) has three keys: ``conditioning`` (the method and its ``scale``), ``data``
(the folder of ground truths) and ``measurement`` (the operator, its mask and the noise), and
writes shapes and ranges with PyYAML's ``!!python/tuple`` tag. :func:`translate_dps` turns it
into a pnpdiff recipe with ``method: dps``.

Units (see ``ALGORITHMS.md``): DPS works on [-1, 1] images, so its noise ``sigma`` 0.05 is
``sigma_y`` 0.025 here, and its step ``x'_{t-1} -= scale * grad_{x'_t} ||y' - A(x0')||`` is pnpdiff's
``x_s -= zeta sqrt((1 + 4 t^2)(1 + 4 s^2)) grad_{x_t} ||y - A(x0)||`` with ``zeta = scale / 2``
(the residual doubles on [-1, 1], the chain rule through ``x = (x' / sqrt(abar) + 1) / 2``
divides by ``2 sqrt(abar_t)``, and the step taken in ``x'`` at level ``s`` moves ``x`` by
``1 / (2 sqrt(abar_s))`` times as much; ``1 / abar = 1 + 4 sigma^2``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pnpdiff.config.peers.common import Builder, Translation, box_side, fmt

__all__ = ["DPS_KEYS", "DPS_OPERATORS", "translate_dps"]

#: top-level keys of a DPS task config (sample_condition.py reads these three)
DPS_KEYS = ("conditioning", "data", "measurement")
#: the largest ``oversample`` of pnpdiff's PhaseRetrieval (operators/nonlinear.py)
_MAX_OVERSAMPLE = 16.0

DPS_OPERATORS = ("super_resolution", "gaussian_blur", "motion_blur", "inpainting", "noise", "phase_retrieval")
_DPS_OPERATOR_PARAMS = {
    "super_resolution": ("in_shape", "scale_factor"),
    "gaussian_blur": ("kernel_size", "intensity"),
    "motion_blur": ("kernel_size", "intensity"),
    "inpainting": (),
    "noise": (),
    "phase_retrieval": ("oversample",),
}
_DPS_MASK_KEYS = ("mask_type", "mask_len_range", "mask_prob_range", "image_size", "margin")


def translate_dps(data: dict[str, Any], source: Path | None = None) -> Translation:
    """Translate a DPS task config (see the module docstring) into a pnpdiff recipe.

    Parameters
    ----------
    data : dict
        The parsed config: its keys are some of :data:`DPS_KEYS`.
    source : Path, optional
        The file it came from (named in errors and in the table's title).

    Returns
    -------
    Translation
        The recipe (``method: dps``) and one table row per peer key.

    Raises
    ------
    RecipeError
        A key DPS does not define, a setting pnpdiff cannot reproduce (Poisson noise, the learned
        blur, another conditioning method, ...) or a bad value; the message names the key path.
    """
    b = Builder("dps", source)
    for k in data:
        if k not in DPS_KEYS:
            raise b.unknown(k, DPS_KEYS, "DPS task config")
    meas = b.mapping("measurement", data.get("measurement"))
    if not meas:
        raise b.fail("measurement", "missing: a DPS task config needs measurement: {operator: ..., noise: ...}")
    for k in meas:
        if k not in ("operator", "noise", "mask_opt"):
            raise b.unknown(f"measurement.{k}", ("operator", "noise", "mask_opt"), "DPS measurement")
    op = b.mapping("measurement.operator", meas.get("operator"))
    if "name" not in op:
        raise b.fail("measurement.operator.name", f"missing; one of {', '.join(DPS_OPERATORS)}")
    name = op["name"]

    _dps_image(b, data)
    _dps_operator(b, op, meas.get("mask_opt"))
    _dps_noise(b, meas.get("noise"), name)
    _dps_conditioning(b, data.get("conditioning"))
    b.row(
        "(model: not in a DPS task config)",
        "(absent)",
        "prior",
        "natural (pnpdiff's default, FFDNet, offline; DPS's model_config.yaml loads ffhq_10m.pt: prior=ffhq)",
    )
    b.row(
        "(steps: not in a DPS task config)",
        "(absent)",
        "steps",
        "pnpdiff's default for dps (DPS's diffusion_config.yaml runs 1000 DDPM steps: steps=1000)",
    )
    return b.finish(data, source)


def _dps_image(b: Builder, data: dict[str, Any]) -> None:
    if "data" not in data:
        b.row("data", "(absent)", "image", "- (no ground truth: pass image=PATH on the command line)")
        return
    d = b.mapping("data", data["data"])
    for k in d:
        if k not in ("name", "root"):
            raise b.unknown(f"data.{k}", ("name", "root"), "DPS data")
    if "name" in d:
        b.ignored("data.name", d["name"], "DPS's dataset class; pnpdiff reads the images under root")
    if "root" not in d:
        raise b.fail("data.root", "missing: the folder of ground-truth images (e.g. ./data/samples/)")
    root = b.text("data.root", d["root"])
    if not root.strip():
        raise b.fail("data.root", "expected a folder of ground-truth images, got ''")
    b.recipe["image"] = root
    b.row(
        "data.root",
        root,
        "image",
        f"{root} (a folder: one run per image, relative to this file; DPS globs {root.rstrip('/')}/**/*.png "
        "from its working directory)",
    )


def _dps_operator(b: Builder, op: dict[str, Any], mask_opt: Any) -> None:
    name = op["name"]
    if name == "nonlinear_blur":
        raise b.fail(
            "measurement.operator.name",
            "nonlinear_blur needs DPS's learned blur network (bkse's KernelWizard weights), which pnpdiff "
            "does not have; use gaussian_blur or motion_blur, or pass your own differentiable forward model "
            "to pnpdiff.solve(..., method='dps') in Python",
        )
    if name not in DPS_OPERATORS:
        raise b.fail(
            "measurement.operator.name",
            f"unknown DPS operator {name!r}; pnpdiff translates {', '.join(DPS_OPERATORS)}",
        )
    allowed = _DPS_OPERATOR_PARAMS[name]
    for k in op:
        if k != "name" and k not in allowed:
            raise b.fail(
                f"measurement.operator.{k}",
                f"DPS's {name} operator has no parameter {k!r}; its parameters: {', '.join(allowed) or 'none'}",
            )
    for k in allowed:
        if k not in op:
            raise b.fail(f"measurement.operator.{k}", f"missing; DPS's {name} needs {', '.join(allowed)}")
    path = "measurement.operator"
    if name == "super_resolution":
        factor = b.integer(f"{path}.scale_factor", op["scale_factor"])
        shape = op["in_shape"]
        if not isinstance(shape, (list, tuple)) or len(shape) < 2:
            raise b.fail(f"{path}.in_shape", f"expected [1, 3, H, W], got {shape!r}")
        h, w = (b.integer(f"{path}.in_shape[{len(shape) - 2 + i}]", v) for i, v in enumerate(shape[-2:]))
        if h % factor or w % factor:
            raise b.fail(
                f"{path}.in_shape",
                f"{h}x{w} is not a multiple of scale_factor {factor}; pnpdiff's "
                "Downsample needs image sizes that are multiples of the factor",
            )
        b.recipe["size"] = [h, w]
        b.recipe["operator"] = {"name": "Downsample", "factor": factor, "filter": "bicubic"}
        b.row(
            f"{path}.name",
            name,
            "operator.name",
            "Downsample, filter bicubic: the antialiased cubic (a = -0.5) taps and MATLAB centring of DPS's "
            "Resizer, equal away from the border; pnpdiff's boundary is circular where the Resizer mirrors, so "
            f"the outer {2 * factor} pixels differ",
        )
        b.row(
            f"{path}.in_shape",
            shape,
            "size",
            f"{fmt([h, w])} (images are centre-cropped and resized to it; DPS expects them stored at that size)",
        )
        b.row(f"{path}.scale_factor", op["scale_factor"], "operator.factor", str(factor))
    elif name in ("gaussian_blur", "motion_blur"):
        size = b.integer(f"{path}.kernel_size", op["kernel_size"])
        intensity = b.number(f"{path}.intensity", op["intensity"], positive=name == "gaussian_blur", minimum=0)
        if name == "gaussian_blur":
            b.recipe["operator"] = {
                "name": "GaussianBlur",
                "sigma": intensity,
                "kernel_size": size,
                "boundary": "reflect",
            }
            b.row(
                f"{path}.name",
                name,
                "operator.name",
                "GaussianBlur, boundary reflect (DPS pads by reflection; scipy truncates its kernel at 4 sigma, "
                "pnpdiff keeps the whole window: the kernels agree to 1e-4 of their peak)",
            )
            b.row(f"{path}.kernel_size", op["kernel_size"], "operator.kernel_size", str(size))
            b.row(f"{path}.intensity", op["intensity"], "operator.sigma", f"{intensity:g} (pixels, as in DPS)")
        else:
            if intensity > 1:
                raise b.fail(f"{path}.intensity", f"expected a number in [0, 1], got {op['intensity']!r}")
            b.recipe["operator"] = {
                "name": "MotionBlur",
                "size": size,
                "intensity": intensity,
                "seed": 0,
                "boundary": "reflect",
            }
            b.row(
                f"{path}.name",
                name,
                "operator.name",
                "MotionBlur, boundary reflect, seed 0 (the same random-trajectory model; DPS draws an unseeded "
                "kernel each run, pnpdiff a seeded one: the kernels are not DPS's)",
            )
            b.row(f"{path}.kernel_size", op["kernel_size"], "operator.size", str(size))
            b.row(f"{path}.intensity", op["intensity"], "operator.intensity", f"{intensity:g}")
    elif name == "noise":
        b.recipe["operator"] = {"name": "Identity"}
        b.row(f"{path}.name", name, "operator.name", "Identity (denoising)")
    elif name == "phase_retrieval":
        oversample = b.number(f"{path}.oversample", op["oversample"], minimum=0, maximum=_MAX_OVERSAMPLE)
        b.recipe["operator"] = {"name": "PhaseRetrieval", "oversample": oversample}
        b.row(
            f"{path}.name",
            name,
            "operator.name",
            "PhaseRetrieval (nonlinear, |FFT| of the zero-padded image; DPS takes it of the [-1, 1] image, "
            "pnpdiff of the [0, 1] one, so sigma_y and zeta below are halved as for linear operators but the "
            "measurements are not exactly proportional)",
        )
        b.row(
            f"{path}.oversample",
            op["oversample"],
            "operator.oversample",
            f"{oversample:g} (pnpdiff pads oversample/8 of the image size per side; DPS hard-codes 256: same "
            "at 256x256)",
        )
    if name == "inpainting":
        _dps_mask(b, mask_opt)
    elif mask_opt is not None:
        for k, v in b.mapping("measurement.mask_opt", mask_opt).items():
            b.ignored(f"measurement.mask_opt.{k}", v, f"DPS reads mask_opt only for inpainting, not {name}")


def _dps_mask(b: Builder, mask_opt: Any) -> None:
    path = "measurement.mask_opt"
    if mask_opt is None:
        raise b.fail(path, "missing: DPS's inpainting needs mask_opt: {mask_type: random|box, ...}")
    m = b.mapping(path, mask_opt)
    for k in m:
        if k not in _DPS_MASK_KEYS:
            raise b.unknown(f"{path}.{k}", _DPS_MASK_KEYS, "DPS mask_opt")
    kind = m.get("mask_type")
    if kind not in ("random", "box"):
        why = {
            "extreme": "extreme (only the box observed) has no pnpdiff mask generator",
            "both": "both is refused by DPS's own mask generator (it returns no mask)",
        }.get(str(kind))
        raise b.fail(f"{path}.mask_type", why or f"expected random or box, got {kind!r}")
    size = b.integer(f"{path}.image_size", m.get("image_size", 256))
    b.recipe["size"] = size
    b.row(
        f"{path}.image_size",
        m.get("image_size", "(absent)"),
        "size",
        f"{size} (DPS draws its mask at image_size and needs images of that size; pnpdiff resizes them to it)",
    )
    b.row(f"{path}.mask_type", kind, "operator.mask.kind", kind)
    if kind == "random":
        if "mask_prob_range" not in m:
            raise b.fail(f"{path}.mask_prob_range", "missing: the range of the fraction of missing pixels")
        lo, hi = b.pair(f"{path}.mask_prob_range", m["mask_prob_range"])
        if hi > 1:
            raise b.fail(f"{path}.mask_prob_range", f"fractions must be in [0, 1], got {fmt(m['mask_prob_range'])}")
        p = (lo + hi) / 2
        mask = {"kind": "random", "p_missing": p, "seed": 0}
        note = (
            f"{p:g} (fraction of missing pixels)"
            if lo == hi
            else f"{p:g} ~ the mean: DPS draws the fraction uniformly in [{lo:g}, {hi:g}] for each image, pnpdiff "
            "uses one fixed fraction"
        )
        b.row(f"{path}.mask_prob_range", m["mask_prob_range"], "operator.mask.p_missing", note)
        if "mask_len_range" in m:
            b.ignored(f"{path}.mask_len_range", m["mask_len_range"], "DPS reads it only for box masks")
    else:
        if "mask_len_range" not in m:
            raise b.fail(f"{path}.mask_len_range", "missing: the range of the box side, e.g. [128, 129]")
        lo, hi = b.pair(f"{path}.mask_len_range", m["mask_len_range"], integers=True)
        if hi <= lo:
            raise b.fail(
                f"{path}.mask_len_range",
                f"DPS draws the side from [low, high): high must exceed low, got {fmt(m['mask_len_range'])}",
            )
        side = box_side(lo, hi)
        margin = m.get("margin", (16, 16))
        if isinstance(margin, (list, tuple)):
            mh, mw = b.pair(f"{path}.margin", margin, integers=True)
            if mh != mw:
                raise b.fail(f"{path}.margin", f"pnpdiff's box mask has one margin for both axes, got {fmt(margin)}")
            margin_px = int(mh)
        else:
            margin_px = b.integer(f"{path}.margin", margin, minimum=0)
        mask = {"kind": "box", "box_size": side, "position": "random", "margin": margin_px, "seed": 0}
        note = (
            f"{side} (box side; DPS draws it from [{int(lo)}, {int(hi)}), i.e. always {side})"
            if hi == lo + 1
            else f"{side} ~ the mean: DPS draws height and width in [{int(lo)}, {int(hi)}) for each image, pnpdiff "
            "uses one fixed square"
        )
        b.row(f"{path}.mask_len_range", m["mask_len_range"], "operator.mask.box_size", note)
        b.row(
            f"{path}.margin",
            m.get("margin", "(absent)"),
            "operator.mask.margin",
            f"{margin_px} (position random, at least margin pixels from the border, as in DPS)",
        )
        if "mask_prob_range" in m:
            b.ignored(f"{path}.mask_prob_range", m["mask_prob_range"], "DPS reads it only for random masks")
    b.recipe["operator"] = {"name": "Inpaint", "mask": mask}
    b.row(
        "measurement.operator.name",
        "inpainting",
        "operator.name",
        "Inpaint (mask seed 0: DPS draws an unseeded mask each run)",
    )


def _dps_noise(b: Builder, noise: Any, op_name: str) -> None:
    path = "measurement.noise"
    if noise is None:
        raise b.fail(path, "missing: DPS needs noise: {name: gaussian, sigma: 0.05} (or name: clean)")
    n = b.mapping(path, noise)
    kind = n.get("name")
    if kind not in ("gaussian", "clean", "poisson"):
        raise b.fail(f"{path}.name", f"expected gaussian, poisson or clean, got {kind!r}")
    allowed = {"gaussian": ("name", "sigma"), "poisson": ("name", "rate")}.get(kind, ("name",))
    for k in n:
        if k not in allowed:
            raise b.fail(
                f"{path}.{k}", f"DPS's {kind} noise has no parameter {k!r}; its parameters: {', '.join(allowed)}"
            )
    if kind == "poisson":
        # DPS's PoissonNoise: y = Poisson(255 rate x) / (255 rate) on [0, 1] images (then clipped to [0, 1])
        if "rate" not in n:
            raise b.fail(f"{path}.rate", "missing: the photon rate per grey level (DPS's first configs use 1.0)")
        rate = b.number(f"{path}.rate", n["rate"], positive=True, maximum=1e6)
        b.recipe["noise"] = {"model": "poisson", "peak": 255.0 * rate}
        b.row(f"{path}.name", kind, "noise.model", "poisson (DPS's weighted residual, Sec. 3.2 of the paper; "
              "pnpdiff seeds the counts: noise.seed 0, and does not clip y to [0, 1] as DPS's code does)")
        b.row(f"{path}.rate", n["rate"], "noise.peak", f"{255.0 * rate:g} (= 255 x rate photons at white)")
        return
    if kind == "clean":
        b.recipe["noise"] = {"sigma_y": 0.0}
        b.row(f"{path}.name", kind, "noise.sigma_y", "0 (no noise)")
        return
    if "sigma" not in n:
        raise b.fail(f"{path}.sigma", "missing: the noise standard deviation on [-1, 1] images (e.g. 0.05)")
    sigma = b.number(f"{path}.sigma", n["sigma"], minimum=0)
    sigma_y = sigma / 2
    b.recipe["noise"] = {"sigma_y": sigma_y}
    b.row(f"{path}.name", kind, "noise", "Gaussian (pnpdiff seeds it: noise.seed 0; DPS's draw is unseeded)")
    b.row(
        f"{path}.sigma",
        n["sigma"],
        "noise.sigma_y",
        f"{sigma_y:g} (= {sigma:g} / 2: DPS's sigma is on [-1, 1], pnpdiff's on [0, 1])",
    )


def _dps_conditioning(b: Builder, cond: Any) -> None:
    path = "conditioning"
    if cond is None:
        raise b.fail(path, "missing: DPS needs conditioning: {method: ps, params: {scale: ...}}")
    c = b.mapping(path, cond)
    for k in c:
        if k not in ("method", "params"):
            raise b.unknown(f"{path}.{k}", ("method", "params"), "DPS conditioning")
    method = c.get("method")
    refusals = {
        "mcg": "mcg (DPS step plus a projection onto the noised measurement, Chung et al. 2022) is not a pnpdiff "
        "method; method ps is DPS",
        "projection": "projection (replace A x_t by the noised measurement, as in score-SDE inpainting) is not a "
        "pnpdiff method; use method ps (pnpdiff's dps) or a pnpdiff recipe with method: ddnm",
        "vanilla": "vanilla is unconditional sampling: it ignores the measurement, which is not a restoration; "
        "use method ps, or pnpdiff.solvers.ddpm in Python for unconditional samples",
        "ps+": "ps+ (an average of the guidance over noised copies of x0) is not a pnpdiff method; method ps is DPS",
    }
    if method in refusals:
        raise b.fail(f"{path}.method", refusals[method])
    if method != "ps":
        raise b.fail(f"{path}.method", f"unknown DPS conditioning method {method!r}; pnpdiff translates ps")
    params = b.mapping(f"{path}.params", c.get("params"))
    for k in params:
        if k != "scale":
            raise b.fail(f"{path}.params.{k}", "DPS's ps reads only 'scale'")
    scale = b.number(f"{path}.params.scale", params.get("scale", 1.0), minimum=0)
    b.recipe["method"] = "dps"
    b.recipe["options"] = {"zeta": scale / 2}
    b.row(f"{path}.method", method, "method", "dps")
    b.row(
        f"{path}.params.scale",
        params.get("scale", "(absent: DPS's default 1.0)"),
        "options.zeta",
        f"{scale / 2:g} (= scale / 2: the same step in [0, 1] units; DPS tuned scale for 1000 steps of its FFHQ "
        "model, pnpdiff's natural-prior default at 50 steps is 4 to 10)",
    )
