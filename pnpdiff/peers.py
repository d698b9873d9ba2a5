"""Configs of the peer code bases, DPS and DiffPIR, read as pnpdiff recipes.

Users arrive with the YAML files of two official code bases:

* **DPS** (Chung et al., "Diffusion Posterior Sampling for General Noisy Inverse Problems",
  ICLR 2023; ``DPS2022/diffusion-posterior-sampling``): the *task* configs of ``configs/`` with
  ``conditioning``, ``data`` and ``measurement``, written with PyYAML's ``!!python/tuple`` tag;
* **DiffPIR** (Zhu et al., "Denoising Diffusion Models for Plug-and-Play Image Restoration",
  CVPR-W 2023; ``yuanzhi-zhu/DiffPIR``): flat YAML files with the variable names of its
  ``main_ddpir*.py`` scripts (``noise_level_img`` on a 0-255 scale, ``iter_num``, ``lambda_``,
  ``zeta``, ``sf``, ``blur_mode``, ``mask_type``, ``skip_type``, ``model_name``, ...).

:func:`load_yaml` reads such a file (``yaml.safe_load`` plus exactly one extra tag,
``!!python/tuple``, under the rules of :mod:`pnpdiff.config.files`) and :func:`translate` turns it
into a pnpdiff recipe mapping, with every unit converted, and a table of what became of each peer
key (:meth:`Translation.table`, printed by ``--dry-run``). Anything that changes the result and
that pnpdiff cannot reproduce is a :class:`~pnpdiff.errors.RecipeError` naming the peer key; keys
that only do bookkeeping (result folders, save flags, logging) are listed as ignored.
``docs/peer_configs.md`` is the published table.

Units (see ``ALGORITHMS.md``)
-----------------------------
* DPS works on [-1, 1] images: its ``sigma`` 0.05 is ``sigma_y`` 0.025 here, and its step
  ``x'_{t-1} -= scale * grad_{x'_t} ||y' - A(x0')||`` is pnpdiff's
  ``x_s -= zeta sqrt((1 + 4 t^2)(1 + 4 s^2)) grad_{x_t} ||y - A(x0)||`` with ``zeta = scale / 2``
  (the residual doubles on [-1, 1], the chain rule through ``x = (x' / sqrt(abar) + 1) / 2``
  divides by ``2 sqrt(abar_t)``, and the step taken in ``x'`` at level ``s`` moves ``x`` by
  ``1 / (2 sqrt(abar_s))`` times as much; ``1 / abar = 1 + 4 sigma^2``).
* DiffPIR's ``noise_level_img`` is on a 0-255 scale: ``sigma_y = noise_level_img / 255``. Its
  ``rho_t = lambda_ sigma_n^2 / sigmabar_t^2`` takes ``sigmabar_t`` on [-1, 1], twice pnpdiff's
  sigma: ``lam = lambda_ / 4``. ``zeta`` has the same meaning in both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pnpdiff.config.files import RecipeLoader, load_yaml
from pnpdiff.errors import RecipeError

__all__ = ["PeerLoader", "Translation", "load_yaml", "translate", "DPS_KEYS", "DIFFPIR_KEYS"]


# ---------------------------------------------------------------------------------------------
# YAML: pnpdiff's one loader (safe_load with limits, 1e-2 floats, no duplicate keys, !!python/tuple)
# ---------------------------------------------------------------------------------------------
#: ``yaml.SafeLoader`` that also reads ``!!python/tuple [a, b]`` as a tuple (DPS's configs write
#: shapes and ranges with it); no other ``python/*`` tag is accepted. It is
#: :class:`pnpdiff.config.files.RecipeLoader`, the loader of every recipe.
PeerLoader = RecipeLoader


# ---------------------------------------------------------------------------------------------
# the translation and its table
# ---------------------------------------------------------------------------------------------
Row = tuple[str, str, str, str]

_KIND_TITLES = {"dps": "DPS task config", "diffpir": "DiffPIR config"}


@dataclass
class Translation:
    """A peer config translated into a pnpdiff recipe.

    Attributes
    ----------
    kind : str
        ``"dps"`` or ``"diffpir"``.
    recipe : dict
        A pnpdiff recipe mapping (only keys of :mod:`pnpdiff.config.restore`); relative paths are kept
        as the peer file wrote them, so :func:`pnpdiff.config.restore.parse_recipe` resolves them
        relative to the file.
    rows : list of (str, str, str, str)
        One row per peer key: ``(peer key path, peer value, pnpdiff key, pnpdiff value or "-")``;
        the value carries a short note where a unit is converted or where pnpdiff differs. Rows
        whose peer value is ``(absent)`` state the pnpdiff default that applies instead.
    source : Path, optional
        The file the config was read from.
    """

    kind: str
    recipe: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    source: Path | None = None

    def table(self) -> str:
        """The translation as an aligned text table, one line per peer key (for ``--dry-run``).

        Returns
        -------
        str
            A title line, a header, a rule and the rows; the last column is not padded.
        """
        title = f"# {self.source}: " if self.source is not None else "# "
        title += f"{_KIND_TITLES.get(self.kind, self.kind)} translated to a pnpdiff recipe"
        header: Row = ("peer key", "peer value", "pnpdiff key", "pnpdiff value")
        body = [header, *self.rows]
        widths = [min(max(len(r[i]) for r in body), cap) for i, cap in zip(range(3), (40, 28, 26))]
        lines = [title]
        for n, r in enumerate(body):
            cells = [r[i].ljust(widths[i]) for i in range(3)]
            lines.append("  ".join([*cells, r[3]]).rstrip())
            if n == 0:
                lines.append("  ".join(["-" * w for w in widths] + ["-" * len(header[3])]))
        return "\n".join(lines)


def _fmt(v: Any) -> str:
    """A peer or pnpdiff value as it reads in the table (YAML-like flow style)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, float):
        return f"{v:.10g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_fmt(x)}" for k, x in v.items()) + "}"
    if isinstance(v, str):
        return repr(v) if v == "" else v
    return str(v)


class _Builder:
    """Collects the recipe and the rows, and makes the errors (``FILE: key.path: message``)."""

    def __init__(self, kind: str, source: Path | None) -> None:
        self.kind = kind
        self.where = f"{source}: " if source is not None else ""
        self.recipe: dict[str, Any] = {}
        self.rows: list[Row] = []

    def fail(self, path: str, msg: str) -> RecipeError:
        return RecipeError(f"{self.where}{path}: {msg}" if path else f"{self.where}{msg}")

    def row(self, peer: str, value: Any, key: str, new: str) -> None:
        self.rows.append((peer, value if isinstance(value, str) and value.startswith("(") else _fmt(value), key, new))

    def ignored(self, peer: str, value: Any, why: str) -> None:
        """A key pnpdiff need not read here: it does not change the result (``why`` says so)."""
        self.row(peer, value, "ignored", f"- ({why})")

    def bookkeeping(self, peer: str, value: Any, note: str = "") -> None:
        """A key that only does bookkeeping (result files, logging, metrics)."""
        self.row(peer, value, "ignored (bookkeeping)", f"- ({note})" if note else "-")

    def finish(self, data: dict[str, Any], source: Path | None) -> Translation:
        """The translation, rows in the order of the peer file's keys (rows about absent keys last)."""
        order = {k: i for i, k in enumerate(data)}

        def rank(r: Row) -> int:
            return order.get(r[0].split(".")[0].split("[")[0], len(order))

        return Translation(self.kind, self.recipe, sorted(self.rows, key=rank), source)

    # value checks (a bool is never a number)
    def number(self, path: str, v: Any, *, minimum: float | None = None, positive: bool = False) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
            raise self.fail(path, f"expected a number, got {v!r}")
        if positive and v <= 0:
            raise self.fail(path, f"expected a positive number, got {v!r}")
        if minimum is not None and v < minimum:
            raise self.fail(path, f"expected a number >= {minimum:g}, got {v!r}")
        return float(v)

    def integer(self, path: str, v: Any, *, minimum: int = 1) -> int:
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.fail(path, f"expected an integer, got {v!r}")
        if v < minimum:
            raise self.fail(path, f"expected an integer >= {minimum}, got {v}")
        return v

    def text(self, path: str, v: Any) -> str:
        if not isinstance(v, str):
            raise self.fail(path, f"expected text, got {v!r}")
        return v

    def boolean(self, path: str, v: Any) -> bool:
        if not isinstance(v, bool):
            raise self.fail(path, f"expected true or false, got {v!r}")
        return v

    def mapping(self, path: str, v: Any) -> dict[str, Any]:
        if v is None:
            return {}
        if not isinstance(v, dict):
            raise self.fail(path, f"expected a mapping, got {v!r}")
        return v

    def pair(self, path: str, v: Any, *, integers: bool = False) -> tuple[float, float]:
        if not isinstance(v, (list, tuple)) or len(v) != 2:
            raise self.fail(path, f"expected a pair [low, high], got {v!r}")
        check = self.integer if integers else self.number
        lo, hi = (check(f"{path}[{i}]", x, minimum=0) for i, x in enumerate(v))
        if hi < lo:
            raise self.fail(path, f"expected low <= high, got {_fmt(v)}")
        return lo, hi

    def unknown(self, path: str, keys: Sequence[str], what: str) -> RecipeError:
        return self.fail(path, f"unknown {what} key; known: {', '.join(keys)}")


def _pnpdiff_keys() -> tuple[str, ...]:
    from pnpdiff.config.restore import TOP_KEYS

    return tuple(TOP_KEYS)


# ---------------------------------------------------------------------------------------------
# detection
# ---------------------------------------------------------------------------------------------
#: top-level keys of a DPS task config (sample_condition.py reads these three)
DPS_KEYS = ("conditioning", "data", "measurement")
#: keys of DPS's other two configs, which are not tasks (--model_config, --diffusion_config)
_DPS_MODEL_KEYS = ("model_path", "num_channels", "num_res_blocks", "learn_sigma", "attention_resolutions")
_DPS_DIFFUSION_KEYS = ("sampler", "timestep_respacing", "noise_schedule", "model_var_type", "model_mean_type")

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
#: DiffPIR keys that only do bookkeeping (result files, logging, metrics), with a note
_DIFFPIR_BOOKKEEPING = {
    "save_L": "", "save_E": "", "save_LEH": "", "save_progressive": "", "save_progressive_mask": "",
    "log_process": "", "show_img": "", "results": "result folder", "result_name": "result folder",
    "E_path": "result folder",
    "calc_LPIPS": "a metric; pnpdiff reports PSNR and SSIM",
    "border": "the PSNR border; pnpdiff's metrics use the whole image",
}
# fmt: on
#: every DiffPIR key pnpdiff knows
DIFFPIR_KEYS = _DIFFPIR_RESULT_KEYS + tuple(_DIFFPIR_BOOKKEEPING)
#: keys shared by a DiffPIR config and a pnpdiff recipe (they do not make a config "mixed")
_SHARED_WITH_PNPDIFF = ("task", "seed")


def translate(data: Any, source: Path | None = None) -> Translation | None:
    """Translate a DPS task config or a DiffPIR config into a pnpdiff recipe.

    Parameters
    ----------
    data : Any
        The parsed YAML (:func:`load_yaml`).
    source : Path, optional
        The file it came from (named in errors and in the table's title).

    Returns
    -------
    Translation or None
        None when ``data`` is not a peer config (a pnpdiff recipe, or anything else that
        :func:`pnpdiff.config.restore.parse_recipe` should judge); otherwise the recipe and its table.

    Raises
    ------
    RecipeError
        A peer config that mixes in pnpdiff recipe keys, uses a setting pnpdiff cannot
        reproduce (Poisson noise, a learned blur, another conditioning method, ...), or has a
        bad value; the message names the peer key path.

    Notes
    -----
    A DPS config is recognised by ``measurement`` or ``conditioning``; a DiffPIR config by
    DiffPIR's variable names (``noise_level_img``, ``iter_num``, ``lambda_``, ``sf``, ...).
    """
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        return None
    ours = _pnpdiff_keys()
    where = f"{source}: " if source is not None else ""
    if "measurement" in data or "conditioning" in data:
        mixed = [k for k in data if k in ours]
        if mixed:
            raise RecipeError(
                f"{where}{mixed[0]}: a pnpdiff recipe key in a DPS task config (it has "
                f"{', '.join(k for k in DPS_KEYS if k in data)}); write either a DPS config or a pnpdiff "
                f"recipe, and change pnpdiff keys on the command line instead (e.g. {mixed[0]}=...)"
            )
        return _translate_dps(data, source)
    peer = [k for k in data if k in DIFFPIR_KEYS and k not in _SHARED_WITH_PNPDIFF]
    if peer:
        mixed = [k for k in data if k in ours and k not in _SHARED_WITH_PNPDIFF]
        if mixed:
            raise RecipeError(
                f"{where}{mixed[0]}: a pnpdiff recipe key in a DiffPIR config (it has {', '.join(peer[:3])}); "
                f"write either a DiffPIR config or a pnpdiff recipe, and change pnpdiff keys on the command "
                f"line instead (e.g. {mixed[0]}=...)"
            )
        return _translate_diffpir(data, source)
    if any(k in data for k in _DPS_MODEL_KEYS) and not any(k in data for k in ours):
        raise RecipeError(
            f"{where}this is a DPS model config (--model_config), not a task: run the task config "
            "(configs/*_config.yaml with measurement: and conditioning:) and choose the model with "
            "prior=ffhq (or prior=ffhq:/path/to/ffhq_10m.pt)"
        )
    if any(k in data for k in _DPS_DIFFUSION_KEYS) and not any(k in data for k in ours if k != "steps"):
        raise RecipeError(
            f"{where}this is a DPS diffusion config (--diffusion_config), not a task: run the task config "
            "(configs/*_config.yaml); pnpdiff's number of steps is steps=N"
        )
    return None


# ---------------------------------------------------------------------------------------------
# DPS
# ---------------------------------------------------------------------------------------------
_DPS_OPERATORS = ("super_resolution", "gaussian_blur", "motion_blur", "inpainting", "noise", "phase_retrieval")
_DPS_OPERATOR_PARAMS = {
    "super_resolution": ("in_shape", "scale_factor"),
    "gaussian_blur": ("kernel_size", "intensity"),
    "motion_blur": ("kernel_size", "intensity"),
    "inpainting": (),
    "noise": (),
    "phase_retrieval": ("oversample",),
}
_DPS_MASK_KEYS = ("mask_type", "mask_len_range", "mask_prob_range", "image_size", "margin")


def _translate_dps(data: dict[str, Any], source: Path | None) -> Translation:
    b = _Builder("dps", source)
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
        raise b.fail("measurement.operator.name", f"missing; one of {', '.join(_DPS_OPERATORS)}")
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


def _dps_image(b: _Builder, data: dict[str, Any]) -> None:
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


def _dps_operator(b: _Builder, op: dict[str, Any], mask_opt: Any) -> None:
    name = op["name"]
    if name == "nonlinear_blur":
        raise b.fail(
            "measurement.operator.name",
            "nonlinear_blur needs DPS's learned blur network (bkse's KernelWizard weights), which pnpdiff "
            "does not have; use gaussian_blur or motion_blur, or pass your own differentiable forward model "
            "to pnpdiff.solve(..., method='dps') in Python",
        )
    if name not in _DPS_OPERATORS:
        raise b.fail(
            "measurement.operator.name",
            f"unknown DPS operator {name!r}; pnpdiff translates {', '.join(_DPS_OPERATORS)}",
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
            f"{_fmt([h, w])} (images are centre-cropped and resized to it; DPS expects them stored at that size)",
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
        oversample = b.number(f"{path}.oversample", op["oversample"], minimum=0)
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


def _dps_mask(b: _Builder, mask_opt: Any) -> None:
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
            raise b.fail(f"{path}.mask_prob_range", f"fractions must be in [0, 1], got {_fmt(m['mask_prob_range'])}")
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
                f"DPS draws the side from [low, high): high must exceed low, got {_fmt(m['mask_len_range'])}",
            )
        side = int(lo) if hi == lo + 1 else int(round((lo + hi - 1) / 2))
        margin = m.get("margin", (16, 16))
        if isinstance(margin, (list, tuple)):
            mh, mw = b.pair(f"{path}.margin", margin, integers=True)
            if mh != mw:
                raise b.fail(f"{path}.margin", f"pnpdiff's box mask has one margin for both axes, got {_fmt(margin)}")
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


def _dps_noise(b: _Builder, noise: Any, op_name: str) -> None:
    path = "measurement.noise"
    if noise is None:
        raise b.fail(path, "missing: DPS needs noise: {name: gaussian, sigma: 0.05} (or name: clean)")
    n = b.mapping(path, noise)
    kind = n.get("name")
    if kind == "poisson":
        raise b.fail(
            f"{path}.name",
            "poisson noise is not supported; pnpdiff models Gaussian noise "
            "(use name: gaussian with its sigma on [-1, 1])",
        )
    if kind not in ("gaussian", "clean"):
        raise b.fail(f"{path}.name", f"expected gaussian or clean, got {kind!r}")
    allowed = ("name", "sigma") if kind == "gaussian" else ("name",)
    for k in n:
        if k not in allowed:
            raise b.fail(
                f"{path}.{k}", f"DPS's {kind} noise has no parameter {k!r}; its parameters: {', '.join(allowed)}"
            )
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


def _dps_conditioning(b: _Builder, cond: Any) -> None:
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


# ---------------------------------------------------------------------------------------------
# DiffPIR
# ---------------------------------------------------------------------------------------------
_DIFFPIR_MODELS = {"diffusion_ffhq_10m": "ffhq", "256x256_diffusion_uncond": "imagenet"}
_DIFFPIR_TASKS = {"sr": "sr", "deblur": "deblur", "inpaint": "inpaint", "ip": "inpaint"}
#: keys each task reads (the others are ignored by DiffPIR for that task)
_DIFFPIR_TASK_KEYS = {
    "sr": ("sf", "test_sf", "sr_mode", "inIter", "gamma", "classical_degradation"),
    "deblur": ("use_DIY_kernel", "blur_mode", "kernel_size", "kernel_std"),
    "inpaint": ("mask_type", "mask_len_range", "mask_prob_range", "load_mask", "mask_name", "mask_path"),
}


def _diffpir_task(b: _Builder, d: dict[str, Any]) -> str:
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


def _translate_diffpir(data: dict[str, Any], source: Path | None) -> Translation:
    b = _Builder("diffpir", source)
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
    _diffpir_sampler(b, d)
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


def _diffpir_image_and_prior(b: _Builder, d: dict[str, Any]) -> None:
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


def _diffpir_noise(b: _Builder, d: dict[str, Any]) -> None:
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
        seed = b.integer("seed", d["seed"], minimum=0)
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
    from pnpdiff.schedules import ddpm_sigma_table

    return [2 * float(s) for s in ddpm_sigma_table()]


def _diffpir_sampler(b: _Builder, d: dict[str, Any]) -> None:
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
    steps = b.integer("iter_num", d["iter_num"], minimum=2)
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
    if "lambda_" in d:
        lam = b.number("lambda_", d["lambda_"], positive=True)
        options["lam"] = lam / 4
        b.row(
            "lambda_",
            d["lambda_"],
            "options.lam",
            f"{lam / 4:g} (= lambda_ / 4: DiffPIR's rho = lambda_ sigma_n^2 / sigmabar_t^2 takes sigmabar_t on "
            "[-1, 1], twice pnpdiff's sigma)",
        )
    else:
        b.row("lambda_", "(absent)", "options.lam", "pnpdiff's default for the prior")
    if "zeta" in d:
        zeta = b.number("zeta", d["zeta"], minimum=0)
        if zeta > 1:
            raise b.fail("zeta", f"expected a number in [0, 1] (the fraction of fresh noise), got {d['zeta']!r}")
        options["zeta"] = zeta
        b.row("zeta", d["zeta"], "options.zeta", f"{zeta:g} (same definition)")
    else:
        zeta = None
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


def _diffpir_sf(b: _Builder, d: dict[str, Any]) -> int:
    if "test_sf" in d:
        v = d["test_sf"]
        values = v if isinstance(v, (list, tuple)) else [v]
        if len(values) != 1:
            raise b.fail("test_sf", f"one scale factor per pnpdiff run, got {_fmt(v)}; write one recipe per factor")
        sf = b.integer("test_sf", values[0])
        if "sf" in d and b.integer("sf", d["sf"]) != sf:
            raise b.fail("sf", f"sf {d['sf']!r} disagrees with test_sf {_fmt(v)}")
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
        f"{sf} (DiffPIR crops each image to a multiple of sf; pnpdiff needs sizes that are multiples)",
    )
    return sf


def _diffpir_sr(b: _Builder, d: dict[str, Any]) -> None:
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


def _diffpir_deblur(b: _Builder, d: dict[str, Any]) -> None:
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
            "in [1, 3]: 2.10 for the first image)",
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
        b.row("kernel_std", d.get("kernel_std", f"(absent: {std_default:g})"), "operator.intensity", f"{std:g}")
    b.row(
        "kernel_size",
        d.get("kernel_size", "(absent: 61)"),
        "operator.kernel_size" if mode == "Gaussian" else "operator.size",
        str(size),
    )


def _diffpir_inpaint(b: _Builder, d: dict[str, Any]) -> None:
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
            raise b.fail("mask_prob_range", f"fractions must be in [0, 1], got {_fmt(d['mask_prob_range'])}")
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
                f"the side is drawn from [low, high): high must exceed low, got {_fmt(d['mask_len_range'])}",
            )
        side = int(lo) if hi == lo + 1 else int(round((lo + hi - 1) / 2))
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
