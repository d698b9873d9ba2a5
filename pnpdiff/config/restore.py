"""YAML recipes: one file describes an image, a degradation, a prior, a method and an output folder.

A recipe is read with ``yaml.safe_load`` (under the limits and rules of :mod:`pnpdiff.config.files`:
at most 1 MiB, 50 levels and 100,000 values, ``1e-2`` a float, each key once) and validated
strictly into a :class:`Recipe`: an unknown or misspelt key is an error, never silently ignored,
and every error names the key path and what it expected (``operator.sigma: must be a positive
number, got 'three'``). Example (``recipes/deblur.yaml``)::

    image: skimage:astronaut     # a bundled scikit-image photo, or a path to your own file
    size: 256                    # centre-crop to a square and resize (omit to keep the size)
    operator: {name: GaussianBlur, sigma: 3.0}
    noise: {sigma_y: 0.025, seed: 0}
    prior: natural
    method: diffpir
    seed: 0
    output: ../outputs/deblur

Keys
----
``image`` / ``observed`` (exactly one)
    ``image``: the ground truth, degraded by ``operator`` and ``noise`` (metrics are computed);
    ``observed``: your own degraded photo, taken as the measurement itself (nothing simulated).
    ``skimage:NAME`` is a scikit-image test photo.
``size``
    An integer: centre-crop to a square and resize to ``size x size``; ``[H, W]``: centre-crop
    to that aspect ratio and resize to ``H x W``; absent: the image as stored.
``resize``
    ``false`` keeps the image as stored even when ``size`` is given (handy as an override).
``operator``
    A name or ``{name: ..., parameter: value}``; ``Inpaint`` takes ``mask:`` — a path to a mask
    image (white = observed) or ``{kind: random|box|freeform, ...}``.
``noise``
    ``{sigma_y: s, seed: n}``: Gaussian noise of standard deviation ``s`` in [0, 1] units. With
    ``observed:``, ``sigma_y`` is the known noise level; absent, it is estimated (and recorded).
    ``model:`` names a sensor noise model (:mod:`pnpdiff.noise`, ``solve(noise=)``):
    ``{model: poisson, peak: 10}`` (photon counts, ``peak`` photons at white),
    ``{model: poisson-gaussian, gain: 0.01, sigma_y: 0.02}`` (shot and read noise; ``peak`` may
    stand for ``gain = 1 / peak``) or ``{model: gaussian, sigma_y: s}``. With ``observed:`` the
    numbers may be left out: they are then estimated from the photo (and recorded).
``prior``, ``method``, ``steps``, ``options``, ``seed``, ``device``
    As in :func:`pnpdiff.solve` (``prior`` may be a mapping ``{name: ..., path: ...}``).
``max_memory``
    Largest memory the run may use (``8G``, ``512M``, bytes, ``off``); default what is available.
``precision``, ``compile``
    How the denoiser runs, as in :func:`pnpdiff.solve`: ``fp32`` (default), ``bf16`` or ``fp16``
    (CUDA) autocast of the network only (data steps stay float32), and ``torch.compile`` of it.
``output``
    The output folder (see :mod:`pnpdiff.outputs` for what may be replaced in it).
``samples``
    ``N >= 2``: draw N posterior samples (:func:`pnpdiff.sample_posterior`, with ``method`` and
    ``options``; SMC's samples come from one run of ``options.particles`` particles, the other
    methods' from N independent runs) and write ``mean.png`` (the posterior mean), ``std.png`` (the
    per-pixel posterior standard deviation, averaged over channels, viridis with a colour bar in
    [0, 1] units) beside ``restored.png`` (the first sample); ``metrics.json`` gains ``samples``,
    ``std_mean``, ``std_max`` and, with a ground truth, ``psnr_mean`` / ``ssim_mean``. One image
    only (not a batch run).
``task``, ``description``
    Free text recorded in ``metrics.json``.

Paths
-----
One rule: a relative path written *in a recipe* (``image``, ``observed``, ``operator.mask``,
``prior.path``, ``output``) is relative to the folder of the recipe file; a relative path given
*on the command line* (``--output``) or to :func:`run_recipe` is relative to the current
directory, as is the default output folder ``outputs/<recipe name>``. ``~`` is expanded.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pnpdiff import api, checks, operators
from pnpdiff.api import default_method, default_steps, task_of
from pnpdiff.checks import MAX_COUNT
from pnpdiff.config.files import (
    absolute_spec,
    apply_overrides,
    is_batch_spec,
    is_path_spec,
    read_recipe_data,
    resolve_path,
)
from pnpdiff.config.keys import TOP_KEYS
from pnpdiff.config.peers import translate
from pnpdiff.errors import PnPError, RecipeError, UnknownNameError, UnknownRecipeNameError, ValueRangeError
from pnpdiff.noise import noise_model
from pnpdiff.priors.registry import _parse
from pnpdiff.priors.runtime import PRECISIONS
from pnpdiff.solvers import SOLVERS

#: the ``batch_size`` of a batch run that picks, per image shape, the largest batch that fits the memory budget
AUTO_BATCH = "auto"

#: per-image files a run can save (``save:``); metrics and the resolved recipe are always written
SAVE_NAMES = ("observed", "restored", "ground_truth", "comparison")

NOISE_KEYS = ("model", "sigma_y", "peak", "gain", "seed")

#: operators a recipe can build (the others take tensors or objects: use the Python API)
RECIPE_OPERATORS = ("GaussianBlur", "MotionBlur", "UniformBlur", "Blur", "Downsample", "Inpaint", "Colorize",
                    "Identity", "SaturatedBlur", "PhaseRetrieval", "BlindBlur")

MASK_KINDS = ("random", "box", "freeform")


@dataclass
class Recipe:
    """A validated recipe (see the module docstring for the keys).

    Paths are stored resolved (absolute) where the recipe wrote them relative; ``prior`` is a
    name or a mapping ``{"name": ..., "path": ..., **options}``.
    """

    operator: dict[str, Any]
    image: str | None = None
    observed: str | None = None
    size: int | tuple[int, int] | None = None
    sigma_y: float | None = None
    noise_seed: int = 0
    prior: str | dict[str, Any] = "natural"
    method: str | None = None
    steps: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    device: str | None = None
    max_memory: int | str | None = None
    output: str = "outputs/pnpdiff"
    task: str | None = None
    description: str | None = None
    source: Path | None = None
    #: images of one shape per solve in a batch run: an int >= 1, or ``"auto"`` (as many as fit the memory budget)
    batch_size: int | str = 1
    save: tuple[str, ...] | None = None
    intermediates: int = 0
    #: posterior samples to draw (``pnpdiff.sample_posterior``); 0: one restoration
    samples: int = 0
    #: how the denoiser runs (``solve(precision=, compile=)``)
    precision: str = "fp32"
    compile: bool = False
    #: choose the solver's settings from candidates by SURE / the discrepancy principle (``solve(calibrate=)``)
    calibrate: bool = False
    #: a Poisson(-Gaussian) noise model (``NoiseModel.as_dict()``; numbers None: estimated), or None (Gaussian)
    noise_model: dict[str, Any] | None = None
    #: the true blur that simulates the measurement when the operator's kernel is to be estimated
    simulate: dict[str, Any] | None = None
    #: the :class:`pnpdiff.config.peers.Translation` when the file was a DPS / DiffPIR / DAPS config
    translation: Any = field(default=None, repr=False, compare=False)

    @property
    def input_spec(self) -> str:
        """``image`` or ``observed``, whichever the recipe gives."""
        return str(self.image if self.image is not None else self.observed)

    @property
    def is_batch(self) -> bool:
        """Whether the input is a folder or a glob (a batch run, one sub-folder per image)."""
        return is_batch_spec(self.input_spec)

    @property
    def saved(self) -> tuple[str, ...]:
        """The per-image images to save: ``save``, or every one that exists for this input."""
        if self.save is not None:
            return self.save
        return SAVE_NAMES if self.image is not None else ("observed", "restored")

    @property
    def resolved_method(self) -> str:
        """``method``, or the one :func:`pnpdiff.solve` picks for the operator when it is absent."""
        return self.method or default_method(task_of(str(self.operator["name"])))

    @property
    def prior_name(self) -> str:
        """The prior's name as written (``"natural"``, ``"ffhq:/path"``)."""
        if isinstance(self.prior, dict):
            return str(self.prior["name"]) + (f":{self.prior['path']}" if self.prior.get("path") else "")
        return self.prior


class RecipeChecker:
    """The validator kit :mod:`pnpdiff.checks` bound to one recipe file.

    Every check raises :class:`RecipeError` with one line ``FILE: key.path: expected ..., got ...``
    (an unknown method, prior or operator name :class:`UnknownRecipeNameError`, which is also the
    :class:`UnknownNameError` that :func:`pnpdiff.solve` raises for it). ``path`` is the dotted key
    path inside the recipe (``"operator.sigma"``, ``"save[0]"``; ``""``: the recipe itself).

    Parameters
    ----------
    where : str
        The messages' prefix: ``"FILE: "``, or ``""`` for a recipe given as a mapping.
    """

    def __init__(self, where: str) -> None:
        self.where = where

    def at(self, path: str) -> str:
        """The kit's ``where`` for the key ``path``: ``"FILE: operator.sigma"``."""
        return checks.key_path(self.where, path) if path else self.where

    def fail(self, path: str, msg: str, error: type[RecipeError] = RecipeError) -> RecipeError:
        """The error (to raise) ``FILE: path: msg`` for a rule no check of the kit states."""
        return error(f"{self.where}{path}: {msg}" if path else f"{self.where}{msg}")

    def int_(self, path: str, v: Any, minimum: int = 0, maximum: int | None = None) -> int:
        """:func:`pnpdiff.checks.int_`: an ``int`` in ``[minimum, maximum]`` (no bool, no ``2.0``)."""
        return checks.int_(v, self.at(path), minimum=minimum, maximum=maximum, error=RecipeError)

    def real(self, path: str, v: Any, minimum: float = 0.0) -> float:
        """:func:`pnpdiff.checks.real`: a finite number ``>= minimum``, as a ``float``."""
        if isinstance(v, bool) or not isinstance(v, numbers.Real):  # recipes have always said "finite" here
            raise checks.fail(self.at(path), f"a finite number >= {minimum:g}", v, RecipeError)
        return checks.real(v, self.at(path), minimum=minimum, error=RecipeError)

    def str_(self, path: str, v: Any) -> str:
        """:func:`pnpdiff.checks.text`: a string with more than whitespace in it."""
        return checks.text(v, self.at(path), error=RecipeError)

    def bool_(self, path: str, v: Any) -> bool:
        """:func:`pnpdiff.checks.bool_`: ``true`` or ``false`` (never ``0``, ``'no'`` or ``null``)."""
        return checks.bool_(v, self.at(path), error=RecipeError)

    def choice(self, path: str, v: Any, choices: Sequence[str]) -> str:
        """:func:`pnpdiff.checks.choice`: one of ``choices``."""
        return checks.choice(v, self.at(path), choices, error=RecipeError)

    def known(self, path: str, v: Any, names: Iterable[str], kind: str) -> str:
        """:func:`pnpdiff.checks.known`: a registered ``kind`` name, else :class:`UnknownRecipeNameError`."""
        return checks.known(v, self.at(path), names, kind=kind, error=UnknownRecipeNameError)

    def mapping(self, path: str, v: Any, example: str) -> dict[str, Any]:
        """:func:`pnpdiff.checks.mapping`: a copy of a mapping whose keys are names."""
        if isinstance(v, Mapping):  # recipes name the first key that is not a name
            bad = [k for k in v if not isinstance(k, str)]
            if bad:
                raise self.fail(path, f"keys must be names, got {bad[0]!r}")
        return checks.mapping(v, self.at(path), example=example, error=RecipeError)


def load_recipe(path: str | os.PathLike, overrides: list[str] | None = None, data: Any = None) -> Recipe:
    """Read and validate a recipe file (see the module docstring for keys and path rules).

    ``overrides`` are command-line ``KEY=VALUE`` strings applied before validation (see
    :func:`apply_overrides`). A config of the DPS, DiffPIR or DAPS code bases is translated
    first (:mod:`pnpdiff.config.peers`; the translation is kept as ``recipe.translation``), so overrides are
    pnpdiff keys in either case. ``data``: the file's parsed YAML when the caller has read it
    already (:func:`pnpdiff.config.load`).
    """
    p = Path(path).expanduser()
    if data is None:
        data = read_recipe_data(p)
    task = data.get("task") if isinstance(data, dict) else None
    if task in ("train", "train-classifier", "sample"):
        raise RecipeError(f"{p}: a task: {task} recipe, not a restoration; run it with python -m pnpdiff "
                          f"{'train ' if task == 'train' else 'train-classifier ' if task != 'sample' else ''}{p}")
    translation = translate(data, p, recipe_keys=TOP_KEYS)  # a DPS, DiffPIR or DAPS config: its pnpdiff recipe
    if translation is not None:
        data = translation.recipe
    if overrides:
        data = apply_overrides(data, overrides, where=f"{p}: ")
    recipe = parse_recipe(data, source=p)
    recipe.translation = translation
    return recipe


def recipe_to_dict(recipe: Recipe) -> dict[str, Any]:
    """The resolved recipe as a mapping of recipe keys (what ``--dry-run`` prints), paths absolute."""
    d: dict[str, Any] = {}
    for key in ("task", "description"):
        if getattr(recipe, key) is not None:
            d[key] = getattr(recipe, key)
    d["image" if recipe.image is not None else "observed"] = absolute_spec(recipe.image or recipe.observed)
    if recipe.size is not None:
        d["size"] = list(recipe.size) if isinstance(recipe.size, tuple) else recipe.size
    d["operator"] = recipe.operator
    if recipe.simulate is not None:
        d["simulate"] = recipe.simulate
    if isinstance(recipe.operator.get("mask"), str):
        d["operator"] = {**recipe.operator, "mask": absolute_spec(recipe.operator["mask"])}
    noise: dict[str, Any] = {"seed": recipe.noise_seed}
    if recipe.sigma_y is not None:
        noise = {"sigma_y": recipe.sigma_y, **noise}
    if recipe.noise_model is not None:
        noise = {**{k: v for k, v in recipe.noise_model.items() if v is not None}, **noise}
    d["noise"] = noise
    d["prior"] = recipe.prior
    if isinstance(recipe.prior, dict) and isinstance(recipe.prior.get("path"), str):
        d["prior"] = {**recipe.prior, "path": absolute_spec(recipe.prior["path"])}

    if recipe.method is None and not recipe.samples:  # chosen at run time from the problem (pnpdiff.problem)
        d["method"] = "auto"
        if recipe.steps is not None:
            d["steps"] = recipe.steps
    else:
        method = recipe.resolved_method
        d["method"] = method
        d["steps"] = recipe.steps if recipe.steps is not None else default_steps(
            recipe.prior_name, task_of(str(recipe.operator["name"])), method)
    if recipe.options:
        d["options"] = recipe.options
    d["seed"] = recipe.seed
    if recipe.device is not None:
        d["device"] = recipe.device
    if recipe.max_memory is not None:
        d["max_memory"] = recipe.max_memory
    if recipe.is_batch or recipe.batch_size != 1:
        d["batch_size"] = recipe.batch_size
    if recipe.save is not None:
        d["save"] = list(recipe.save)
    if recipe.intermediates:
        d["intermediates"] = recipe.intermediates
    if recipe.samples:
        d["samples"] = recipe.samples
    if recipe.precision != "fp32":
        d["precision"] = recipe.precision
    if recipe.compile:
        d["compile"] = True
    if recipe.calibrate:
        d["calibrate"] = True
    d["output"] = str(Path(recipe.output).resolve())
    return d


def parse_recipe(data: Any, source: Path | None = None) -> Recipe:
    """Validate a recipe given as a mapping (the parsed YAML); relative paths in it are taken
    relative to ``source``'s folder (the current directory when ``source`` is None)."""
    where = f"{source}: " if source is not None else ""
    c = RecipeChecker(where)
    base = source.parent if source is not None else None
    if data is None:
        raise c.fail("", "the recipe is empty; a recipe is a mapping of keys to values (see recipes/deblur.yaml)")
    data = c.mapping("", data, "{image: ..., operator: ...}")
    unknown = [k for k in data if k not in TOP_KEYS]
    if unknown:  # not checks.mapping(allowed_keys=): recipes have always said "valid keys"
        raise c.fail(unknown[0], f"unknown key; valid keys: {', '.join(TOP_KEYS)}")
    if ("image" in data) == ("observed" in data):
        raise c.fail("", "give exactly one of 'image' (ground truth to degrade) or 'observed' (your measurement)")
    src_key = "image" if "image" in data else "observed"
    src = c.str_(src_key, data[src_key])
    if is_path_spec(src):
        src = resolve_path(src, base)

    size = data.get("size")
    if size is not None:
        if isinstance(size, list):
            if len(size) != 2:
                raise checks.fail(c.at("size"), "an integer or [height, width]", size, RecipeError)
            size = (checks.side(size[0], c.at("size[0]"), error=RecipeError),
                    checks.side(size[1], c.at("size[1]"), error=RecipeError))
        else:
            size = checks.side(size, c.at("size"), error=RecipeError)
    resize = c.bool_("resize", data.get("resize", True))
    if not resize:
        size = None

    if "operator" not in data:
        raise c.fail("operator", "missing key (e.g. operator: {name: GaussianBlur, sigma: 3})")
    op = data["operator"]
    if isinstance(op, str):
        op = {"name": op}
    op = c.mapping("operator", op, "{name: GaussianBlur, sigma: 3}")
    op = _blind_operator(c, op)
    if "name" not in op:
        raise c.fail("operator.name", f"missing; one of {', '.join(RECIPE_OPERATORS)}")
    c.known("operator.name", op["name"], RECIPE_OPERATORS, kind="operator")
    _check_operator_params(c, op)
    if op["name"] == "Inpaint":
        if "mask" not in op:
            raise c.fail("operator.mask", "Inpaint needs a mask (e.g. mask: {kind: random, p_missing: 0.7})")
        m = op["mask"]
        if isinstance(m, str):
            op["mask"] = resolve_path(m, base)
        else:
            m = c.mapping("operator.mask", m, "{kind: random, p_missing: 0.7} or a path to a mask image")
            c.choice("operator.mask.kind", m.get("kind"), MASK_KINDS)
            op["mask"] = m
    simulate = data.get("simulate")
    if op["name"] == "BlindBlur" and src_key == "image" and simulate is None:
        raise c.fail("simulate", "missing: a blur to estimate needs, with image:, the blur that makes the measurement "
                     "(e.g. simulate: {name: MotionBlur, size: 15, seed: 0})")
    if simulate is not None:
        if op["name"] != "BlindBlur" or src_key != "image":
            raise c.fail("simulate", "is the true blur of a simulated blind deblurring (image: with a blur to "
                         "estimate); elsewhere the operator itself makes the measurement")
        if isinstance(simulate, str):
            simulate = {"name": simulate}
        simulate = c.mapping("simulate", simulate, "{name: MotionBlur, size: 15, seed: 0}")
        blurs = ("GaussianBlur", "MotionBlur", "UniformBlur", "Blur")
        c.known("simulate.name", simulate.get("name"), blurs, kind="blur")
        _check_operator_params(c, simulate, "simulate")

    noise = data.get("noise") or {}
    noise = c.mapping("noise", noise, "{sigma_y: 0.025, seed: 0}")
    for k in noise:
        if k not in NOISE_KEYS:
            raise c.fail(f"noise.{k}", f"unknown noise key; valid: {', '.join(NOISE_KEYS)}")
    model = None
    if "model" in noise:  # a sensor noise model (pnpdiff.noise): its one validator
        model = noise_model({k: v for k, v in noise.items() if k != "seed"}, c.at("noise"), RecipeError)
        if src_key == "image" and not model.resolved:
            raise c.fail("noise", f"simulating {model.model} noise needs its numbers ("
                         f"{'peak' if model.model == 'poisson' else 'gain or peak, and sigma_y'}); only an "
                         "'observed:' photo may leave them to be estimated")
    else:
        for k in ("peak", "gain"):
            if k in noise:
                raise c.fail(f"noise.{k}", "belongs to a sensor noise model: add model: poisson or poisson-gaussian")
    if model is not None and model.is_gaussian:
        sigma_y, model = model.sigma, None
    elif model is not None:
        sigma_y = None
    else:
        sigma_y = c.real("noise.sigma_y", noise["sigma_y"]) if "sigma_y" in noise else None
    noise_seed = checks.seed(noise.get("seed", 0), c.at("noise.seed"), error=RecipeError)

    prior = data.get("prior", "natural")
    if isinstance(prior, dict):
        prior = c.mapping("prior", prior, "{name: natural}")
        if "name" not in prior:
            raise c.fail("prior.name", "missing (e.g. prior: {name: ffhq, path: weights/ffhq_10m.pt})")
        c.str_("prior.name", prior["name"])
        if prior.get("path") is not None:
            prior["path"] = resolve_path(c.str_("prior.path", prior["path"]), base)
    else:
        prior = c.str_("prior", prior)
        if ":" in prior:
            head, tail = prior.split(":", 1)
            if len(head) > 1 and tail:
                prior = f"{head}:{resolve_path(tail, base)}"
    _check_prior_name(c, prior)

    method = data.get("method")
    if method == "auto":  # what a resolved.yaml says when the rule chose (pnpdiff.problem)
        method = None
    if method is not None:
        method = c.known("method", c.str_("method", method), sorted(SOLVERS), kind="method")
    steps = data.get("steps")
    if steps is not None:
        steps = checks.steps(steps, c.at("steps"), error=RecipeError)
    options = c.mapping("options", data.get("options") or {}, "{lam: 0.5}")
    _check_options(c, options, method, op["name"])
    seed = checks.seed(data.get("seed", 0), c.at("seed"), error=RecipeError)
    device = data.get("device")
    if device is not None:
        device = c.str_("device", device)
    max_memory = data.get("max_memory")
    if max_memory is False:  # an unquoted `max_memory: off` (YAML 1.1 reads it as false)
        max_memory = "off"
    if max_memory is not None:
        _check_memory_value(c, max_memory)
    if "output" in data:
        output = resolve_path(c.str_("output", data["output"]), base)
    else:
        output = f"outputs/{source.stem if source is not None else 'pnpdiff'}"
    task = data.get("task")
    description = data.get("description")
    for key, v in (("task", task), ("description", description)):
        if v is not None and not isinstance(v, str):
            raise checks.fail(c.at(key), "text", v, RecipeError)
    batch_size = data.get("batch_size", 1)
    if not (isinstance(batch_size, str) and batch_size == AUTO_BATCH):
        try:
            batch_size = checks.count(batch_size, c.at("batch_size"), error=RecipeError)
        except RecipeError:
            raise checks.fail(c.at("batch_size"), f"an integer >= 1 or '{AUTO_BATCH}' (the largest batch that fits "
                                                  f"the memory budget), at most {MAX_COUNT}", batch_size,
                              RecipeError) from None
    save = data.get("save")
    if save is not None:
        if isinstance(save, str):
            save = [save]
        if not isinstance(save, list) or not save:
            raise checks.fail(c.at("save"), f"a list of {', '.join(SAVE_NAMES)}", save, RecipeError)
        for i, name in enumerate(save):
            c.choice(f"save[{i}]", name, SAVE_NAMES)
            if name in ("ground_truth", "comparison") and src_key == "observed":
                raise c.fail(f"save[{i}]", f"{name} needs a ground truth ('image:'); with 'observed:' there is none")
        save = tuple(n for n in SAVE_NAMES if n in save)
    intermediates = checks.steps(data.get("intermediates", 0), c.at("intermediates"), minimum=0, error=RecipeError)
    samples = checks.count(data.get("samples", 0), c.at("samples"), minimum=0, error=RecipeError)
    if samples == 1:
        raise c.fail("samples", "a posterior standard deviation needs at least 2 samples (0: no sampling)")
    if samples and is_batch_spec(src):
        raise c.fail("samples", "posterior sampling restores one image; give one image (not a folder or a glob)")

    precision = c.choice("precision", data.get("precision", "fp32"), tuple(PRECISIONS))
    compile_ = c.bool_("compile", data.get("compile", False))
    calibrate = c.bool_("calibrate", data.get("calibrate", False))
    if calibrate and samples:
        raise c.fail("calibrate", "calibration chooses one restoration's settings; it does not apply to 'samples:'")
    if model is not None and samples:
        raise c.fail("noise.model", f"posterior sampling assumes Gaussian noise; the {model.model} model restores "
                     "one image (drop 'samples:')")
    if model is not None and calibrate:
        raise c.fail("calibrate", f"calibration scores Gaussian risk estimates; it does not apply to the "
                     f"{model.model} noise model")
    return Recipe(
        operator=op,
        image=src if src_key == "image" else None,
        observed=src if src_key == "observed" else None,
        size=size,
        sigma_y=sigma_y,
        noise_seed=noise_seed,
        noise_model=None if model is None else model.as_dict(),
        simulate=simulate,
        prior=prior,
        method=method,
        steps=steps,
        options=options,
        seed=seed,
        device=device,
        max_memory=max_memory,
        output=output,
        task=task,
        description=description,
        source=source,
        batch_size=batch_size,
        save=save,
        intermediates=intermediates,
        samples=samples,
        precision=precision,
        compile=compile_,
        calibrate=calibrate,
    )


def _blind_operator(c: RecipeChecker, op: dict[str, Any]) -> dict[str, Any]:
    """A blur whose kernel is to be estimated, as written in a recipe, as the ``BlindBlur`` it
    stands for: ``{name: Blur, kernel: estimate, size: 31}`` (a free kernel on a 31 x 31 support)
    and ``{name: GaussianBlur, sigma: estimate}`` (its sigma fitted); other mappings unchanged."""
    name = op.get("name")
    if name == "Blur" and op.get("kernel") == "estimate":
        allowed = ("name", "kernel", "size", "family", "boundary")
        for k in op:
            if k not in allowed:
                raise c.fail(f"operator.{k}", f"a blur with kernel: estimate takes {', '.join(allowed[2:])}")
        if "size" not in op:
            raise c.fail("operator.size", "missing: the side of the kernel's support to estimate (odd, e.g. 31)")
        return {"name": "BlindBlur", **{k: op[k] for k in ("size", "family", "boundary") if k in op}}
    if name == "GaussianBlur" and op.get("sigma") == "estimate":
        allowed = ("name", "sigma", "kernel_size", "boundary")
        for k in op:
            if k not in allowed:
                raise c.fail(f"operator.{k}", f"GaussianBlur with sigma: estimate takes {', '.join(allowed[2:])}")
        out = {"name": "BlindBlur", "family": "gaussian", "size": op.get("kernel_size")}
        return {**out, **({"boundary": op["boundary"]} if "boundary" in op else {})}
    return op


def _check_operator_params(c: RecipeChecker, op: dict[str, Any], key: str = "operator") -> None:
    """Parameter names of the operator's constructor: an unknown one is an error here, not a
    ``TypeError`` from deep inside (``key``: where the mapping is, ``operator`` or ``simulate``)."""
    import inspect


    cls = getattr(operators, op["name"])
    params = inspect.signature(cls).parameters
    valid = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    takes_kwargs = any(p.kind == p.VAR_KEYWORD for p in params.values())
    if takes_kwargs:  # e.g. GaussianBlur(**kwargs) -> Blur's keyword parameters
        valid += [n for n in inspect.signature(operators.Blur).parameters if n not in ("kernel",) and n not in valid]
    for k in op:
        if k != "name" and k not in valid:
            raise c.fail(f"{key}.{k}", f"{op['name']} has no parameter {k!r}; its parameters: {', '.join(valid)}")
    required = [n for n, p in params.items() if p.default is p.empty and p.kind == p.POSITIONAL_OR_KEYWORD]
    for n in required:
        if n not in op:
            raise c.fail(f"{key}.{n}", f"missing; {op['name']} needs {', '.join(required)}")


def _check_prior_name(c: RecipeChecker, prior: str | dict[str, Any]) -> None:
    name = prior["name"] if isinstance(prior, dict) else prior
    try:
        _parse(str(name))
    except UnknownNameError as err:
        raise c.fail("prior", str(err), UnknownRecipeNameError) from None


def _check_options(c: RecipeChecker, options: dict[str, Any], method: str | None, op_name: str) -> None:
    import inspect

    m = method if method is not None else api.default_method(api.task_of(op_name))
    params = inspect.signature(SOLVERS[m]).parameters
    allowed = [p for p in params if p not in api.SET_BY_SOLVE and p not in ("progress", "x_init", "callback")]
    for k, v in options.items():
        if k in api.SCHEDULE_KEYS:
            try:
                api.check_schedule_options({k: v})
            except ValueRangeError as err:
                raise c.fail(f"options.{k}", str(err)) from None
            continue
        if k not in allowed:
            raise c.fail(f"options.{k}", f"method {m!r} has no option {k!r}; its options: "
                                         f"{', '.join(allowed + list(api.SCHEDULE_KEYS))}")
        try:
            options[k] = api.check_option(m, k, v, params[k].default, params[k].annotation)
        except ValueRangeError as err:
            raise c.fail(f"options.{k}", str(err)) from None


def _check_memory_value(c: RecipeChecker, v: Any) -> None:
    try:
        checks.parse_bytes(v)
    except PnPError as err:
        raise c.fail("max_memory", str(err)) from None
