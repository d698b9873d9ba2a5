"""YAML recipes: one file describes an image, a degradation, a prior, a method and an output folder.

A recipe is read with ``yaml.safe_load`` (under the limits and rules of :mod:`pnpdiff.yamlfile`:
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

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from pnpdiff.errors import OperatorError, PnPError, RecipeError

__all__ = ["Recipe", "load_recipe", "parse_recipe", "apply_overrides", "recipe_to_dict", "run_recipe", "build_operator",
           "RECIPE_OPERATORS"]

_TOP_KEYS = (
    "task", "description", "image", "observed", "size", "resize", "operator", "noise", "prior",
    "method", "steps", "options", "seed", "device", "max_memory", "output", "batch_size", "save", "intermediates",
    "samples", "precision", "compile",
)
#: the ``batch_size`` of a batch run that picks, per image shape, the largest batch that fits the memory budget
AUTO_BATCH = "auto"
#: per-image files a run can save (``save:``); metrics and the resolved recipe are always written
SAVE_NAMES = ("observed", "restored", "ground_truth", "comparison")
_NOISE_KEYS = ("sigma_y", "seed")
#: operators a recipe can build (the others take tensors or objects: use the Python API)
RECIPE_OPERATORS = ("GaussianBlur", "MotionBlur", "UniformBlur", "Blur", "Downsample", "Inpaint", "Colorize",
                    "Identity", "SaturatedBlur")
_MASK_KINDS = ("random", "box", "freeform")


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
    #: the :class:`pnpdiff.peers.Translation` when the file was a DPS / DiffPIR config
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
        from pnpdiff.api import default_method, task_of

        return self.method or default_method(task_of(str(self.operator["name"])))

    @property
    def prior_name(self) -> str:
        """The prior's name as written (``"natural"``, ``"ffhq:/path"``)."""
        if isinstance(self.prior, dict):
            return str(self.prior["name"]) + (f":{self.prior['path']}" if self.prior.get("path") else "")
        return self.prior


class _Checker:
    """Raises :class:`RecipeError` messages of the form ``FILE: key.path: what was expected``."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, path: str, msg: str) -> RecipeError:
        return RecipeError(f"{self.where}{path}: {msg}" if path else f"{self.where}{msg}")

    def int_(self, path: str, v: Any, minimum: int = 0, maximum: int | None = None) -> int:
        rng = f">= {minimum}" if maximum is None else f">= {minimum} and <= {maximum}"
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.fail(path, f"expected an integer {rng}, got {v!r}")
        if v < minimum or (maximum is not None and v > maximum):
            raise self.fail(path, f"expected an integer {rng}, got {v}")
        return v

    def real(self, path: str, v: Any, minimum: float = 0.0) -> float:
        import math

        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
            raise self.fail(path, f"expected a finite number >= {minimum:g}, got {v!r}")
        if v < minimum:
            raise self.fail(path, f"expected a number >= {minimum:g}, got {v}")
        return float(v)

    def str_(self, path: str, v: Any) -> str:
        if not isinstance(v, str) or not v.strip():
            raise self.fail(path, f"expected a non-empty string, got {v!r}")
        return v

    def mapping(self, path: str, v: Any, example: str) -> dict[str, Any]:
        if not isinstance(v, dict):
            raise self.fail(path, f"expected a mapping like {example}, got {v!r}")
        bad = [k for k in v if not isinstance(k, str)]
        if bad:
            raise self.fail(path, f"keys must be names, got {bad[0]!r}")
        return dict(v)


def _resolve(p: str, base: Path | None) -> str:
    """A path as written in a recipe: ``~`` expanded, relative ones joined to ``base``."""
    path = Path(p).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    return str(path)


def _is_path_spec(s: str) -> bool:
    return not s.startswith("skimage:")


def _is_glob(s: str) -> bool:
    return any(ch in s for ch in "*?[")


def is_batch_spec(spec: str) -> bool:
    """Whether an ``image`` / ``observed`` value names several images: a folder or a glob."""
    return _is_path_spec(spec) and (_is_glob(spec) or Path(spec).is_dir())


def load_recipe(path: str | os.PathLike, overrides: list[str] | None = None) -> Recipe:
    """Read and validate a recipe file (see the module docstring for keys and path rules).

    ``overrides`` are command-line ``KEY=VALUE`` strings applied before validation (see
    :func:`apply_overrides`). A config of the DPS or DiffPIR code bases is translated first
    (:mod:`pnpdiff.peers`; the translation is kept as ``recipe.translation``), so overrides are
    pnpdiff keys in either case.
    """
    from pnpdiff.peers import translate

    p = Path(path).expanduser()
    data = read_recipe_data(p)
    task = data.get("task") if isinstance(data, dict) else None
    if task in ("train", "train-classifier", "sample"):
        raise RecipeError(f"{p}: a task: {task} recipe, not a restoration; run it with python -m pnpdiff "
                          f"{'train ' if task == 'train' else 'train-classifier ' if task != 'sample' else ''}{p}")
    translation = translate(data, p)  # a DPS or DiffPIR config: its pnpdiff recipe
    if translation is not None:
        data = translation.recipe
    if overrides:
        data = apply_overrides(data, overrides, where=f"{p}: ")
    recipe = parse_recipe(data, source=p)
    recipe.translation = translation
    return recipe


def read_recipe_data(p: Path) -> Any:
    """The parsed YAML of a recipe file (:func:`pnpdiff.yamlfile.read_yaml_file`: ``yaml.safe_load``
    with limits on size, depth and aliases, ``1e-2`` as a float, no duplicate key, plus the
    ``!!python/tuple`` tag of DPS's configs), with one-line errors."""
    from pnpdiff.yamlfile import read_yaml_file

    return read_yaml_file(p)


#: keys whose values are paths; given on the command line they are relative to the current directory
_PATH_KEYS = ("image", "observed", "output", "operator.mask", "prior.path")


def apply_overrides(data: Any, overrides: list[str], where: str = "") -> dict[str, Any]:
    """Apply command-line ``KEY=VALUE`` overrides to a parsed recipe.

    ``KEY`` is a dotted path into the recipe (``steps``, ``operator.sigma``, ``noise.sigma_y``,
    ``options.lam``); ``VALUE`` is read as YAML (``5`` is an int, ``2.0`` a float, ``[64, 96]`` a
    list, ``true`` a bool, anything else a string). A path value (``image``, ``observed``,
    ``output``, ``operator.mask``, ``prior.path``) is relative to the current directory. The
    result is validated by :func:`parse_recipe` like the file itself.
    """
    import copy

    from pnpdiff.yamlfile import load_yaml

    out = copy.deepcopy(data) if isinstance(data, dict) else data
    if not isinstance(out, dict):
        raise RecipeError(f"{where}a recipe is a mapping of keys to values (see recipes/deblur.yaml)")
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        parts = key.split(".")
        if not sep or not key or any(not k for k in parts):
            raise RecipeError(f"override {item!r}: expected KEY=VALUE with KEY a dotted recipe key (e.g. steps=5, "
                              "operator.sigma=2)")
        try:  # the recipe loader's rules (1e-2 is a float, limits, no duplicate key)
            value = load_yaml(text, f"{where}override {key}: ") if text.strip() else None
        except yaml.YAMLError:
            value = text
        if key in _PATH_KEYS and isinstance(value, str) and not value.startswith("skimage:"):
            value = str(Path(value).expanduser().resolve())
        if key == "prior" and isinstance(value, str) and ":" in value:
            head, tail = value.split(":", 1)
            if len(head) > 1 and tail:
                value = f"{head}:{Path(tail).expanduser().resolve()}"
        node: Any = out
        for i, k in enumerate(parts[:-1]):
            child = node.get(k)
            if k == "operator" and isinstance(child, str):  # operator: Identity -> {name: Identity}
                child = {"name": child}
            if child is None:
                child = {}
            if not isinstance(child, dict):
                raise RecipeError(f"override {key}: {'.'.join(parts[:i + 1])} is {child!r}, not a mapping")
            node[k] = child
            node = child
        node[parts[-1]] = value
        if key == "image":
            out.pop("observed", None)
        if key == "observed":
            out.pop("image", None)
    return out


def recipe_to_dict(recipe: Recipe) -> dict[str, Any]:
    """The resolved recipe as a mapping of recipe keys (what ``--dry-run`` prints), paths absolute."""
    d: dict[str, Any] = {}
    for key in ("task", "description"):
        if getattr(recipe, key) is not None:
            d[key] = getattr(recipe, key)
    d["image" if recipe.image is not None else "observed"] = _absolute(recipe.image or recipe.observed)
    if recipe.size is not None:
        d["size"] = list(recipe.size) if isinstance(recipe.size, tuple) else recipe.size
    d["operator"] = recipe.operator
    if isinstance(recipe.operator.get("mask"), str):
        d["operator"] = {**recipe.operator, "mask": _absolute(recipe.operator["mask"])}
    noise: dict[str, Any] = {"seed": recipe.noise_seed}
    if recipe.sigma_y is not None:
        noise = {"sigma_y": recipe.sigma_y, **noise}
    d["noise"] = noise
    d["prior"] = recipe.prior
    if isinstance(recipe.prior, dict) and isinstance(recipe.prior.get("path"), str):
        d["prior"] = {**recipe.prior, "path": _absolute(recipe.prior["path"])}
    from pnpdiff.api import default_steps, task_of

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
    d["output"] = str(Path(recipe.output).resolve())
    return d


def _absolute(spec: str) -> str:
    """A path spec as ``--dry-run`` and ``recipe.yaml`` show it: absolute (a glob too), so that it
    names the same files from any folder; ``skimage:NAME`` as it is."""
    return spec if not _is_path_spec(spec) else os.path.abspath(spec)


def parse_recipe(data: Any, source: Path | None = None) -> Recipe:
    """Validate a recipe given as a mapping (the parsed YAML); relative paths in it are taken
    relative to ``source``'s folder (the current directory when ``source`` is None)."""
    from pnpdiff.api import MAX_COUNT, MAX_SEED, MAX_SIDE, MAX_STEPS

    where = f"{source}: " if source is not None else ""
    c = _Checker(where)
    base = source.parent if source is not None else None
    if data is None:
        raise c.fail("", "the recipe is empty; a recipe is a mapping of keys to values (see recipes/deblur.yaml)")
    data = c.mapping("", data, "{image: ..., operator: ...}")
    unknown = [k for k in data if k not in _TOP_KEYS]
    if unknown:
        raise c.fail(unknown[0], f"unknown key; valid keys: {', '.join(_TOP_KEYS)}")
    if ("image" in data) == ("observed" in data):
        raise c.fail("", "give exactly one of 'image' (ground truth to degrade) or 'observed' (your measurement)")
    src_key = "image" if "image" in data else "observed"
    src = c.str_(src_key, data[src_key])
    if _is_path_spec(src):
        src = _resolve(src, base)

    size = data.get("size")
    if size is not None:
        if isinstance(size, list):
            if len(size) != 2:
                raise c.fail("size", f"expected an integer or [height, width], got {size!r}")
            size = (c.int_("size[0]", size[0], 1, MAX_SIDE), c.int_("size[1]", size[1], 1, MAX_SIDE))
        else:
            size = c.int_("size", size, 1, MAX_SIDE)
    resize = data.get("resize", True)
    if not isinstance(resize, bool):
        raise c.fail("resize", f"expected true or false, got {resize!r}")
    if not resize:
        size = None

    if "operator" not in data:
        raise c.fail("operator", "missing key (e.g. operator: {name: GaussianBlur, sigma: 3})")
    op = data["operator"]
    if isinstance(op, str):
        op = {"name": op}
    op = c.mapping("operator", op, "{name: GaussianBlur, sigma: 3}")
    if "name" not in op:
        raise c.fail("operator.name", f"missing; one of {', '.join(RECIPE_OPERATORS)}")
    if op["name"] not in RECIPE_OPERATORS:
        raise c.fail("operator.name", f"unknown operator {op['name']!r}; known: {', '.join(RECIPE_OPERATORS)}")
    _check_operator_params(c, op)
    if op["name"] == "Inpaint":
        if "mask" not in op:
            raise c.fail("operator.mask", "Inpaint needs a mask (e.g. mask: {kind: random, p_missing: 0.7})")
        m = op["mask"]
        if isinstance(m, str):
            op["mask"] = _resolve(m, base)
        else:
            m = c.mapping("operator.mask", m, "{kind: random, p_missing: 0.7} or a path to a mask image")
            if m.get("kind") not in _MASK_KINDS:
                raise c.fail("operator.mask.kind", f"expected one of {', '.join(_MASK_KINDS)}, got {m.get('kind')!r}")
            op["mask"] = m

    noise = data.get("noise") or {}
    noise = c.mapping("noise", noise, "{sigma_y: 0.025, seed: 0}")
    for k in noise:
        if k not in _NOISE_KEYS:
            raise c.fail(f"noise.{k}", f"unknown noise key; valid: {', '.join(_NOISE_KEYS)}")
    sigma_y = c.real("noise.sigma_y", noise["sigma_y"]) if "sigma_y" in noise else None
    noise_seed = c.int_("noise.seed", noise.get("seed", 0), 0, MAX_SEED)

    prior = data.get("prior", "natural")
    if isinstance(prior, dict):
        prior = c.mapping("prior", prior, "{name: natural}")
        if "name" not in prior:
            raise c.fail("prior.name", "missing (e.g. prior: {name: ffhq, path: weights/ffhq_10m.pt})")
        c.str_("prior.name", prior["name"])
        if prior.get("path") is not None:
            prior["path"] = _resolve(c.str_("prior.path", prior["path"]), base)
    else:
        prior = c.str_("prior", prior)
        if ":" in prior:
            head, tail = prior.split(":", 1)
            if len(head) > 1 and tail:
                prior = f"{head}:{_resolve(tail, base)}"
    _check_prior_name(c, prior)

    method = data.get("method")
    if method is not None:
        from pnpdiff.solvers import SOLVERS

        method = c.str_("method", method)
        if method not in SOLVERS:
            raise c.fail("method", f"unknown method {method!r}; known: {', '.join(sorted(SOLVERS))}")
    steps = data.get("steps")
    if steps is not None:
        steps = c.int_("steps", steps, 1, MAX_STEPS)
    options = c.mapping("options", data.get("options") or {}, "{lam: 0.5}")
    _check_options(c, options, method, op["name"])
    seed = c.int_("seed", data.get("seed", 0), 0, MAX_SEED)
    device = data.get("device")
    if device is not None:
        device = c.str_("device", device)
    max_memory = data.get("max_memory")
    if max_memory is False:  # an unquoted `max_memory: off` (YAML 1.1 reads it as false)
        max_memory = "off"
    if max_memory is not None:
        _check_memory_value(c, max_memory)
    if "output" in data:
        output = _resolve(c.str_("output", data["output"]), base)
    else:
        output = f"outputs/{source.stem if source is not None else 'pnpdiff'}"
    task = data.get("task")
    description = data.get("description")
    for key, v in (("task", task), ("description", description)):
        if v is not None and not isinstance(v, str):
            raise c.fail(key, f"expected text, got {v!r}")
    batch_size = data.get("batch_size", 1)
    if batch_size != AUTO_BATCH and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                     or not 1 <= batch_size <= MAX_COUNT):
        raise c.fail("batch_size", f"expected an integer >= 1 or '{AUTO_BATCH}' (the largest batch that fits the "
                                   f"memory budget), at most {MAX_COUNT}, got {batch_size!r}")
    save = data.get("save")
    if save is not None:
        if isinstance(save, str):
            save = [save]
        if not isinstance(save, list) or not save:
            raise c.fail("save", f"expected a list of {', '.join(SAVE_NAMES)}, got {save!r}")
        for i, name in enumerate(save):
            if name not in SAVE_NAMES:
                raise c.fail(f"save[{i}]", f"expected one of {', '.join(SAVE_NAMES)}, got {name!r}")
            if name in ("ground_truth", "comparison") and src_key == "observed":
                raise c.fail(f"save[{i}]", f"{name} needs a ground truth ('image:'); with 'observed:' there is none")
        save = tuple(n for n in SAVE_NAMES if n in save)
    intermediates = c.int_("intermediates", data.get("intermediates", 0), 0, MAX_STEPS)
    samples = c.int_("samples", data.get("samples", 0), 0, MAX_COUNT)
    if samples == 1:
        raise c.fail("samples", "a posterior standard deviation needs at least 2 samples (0: no sampling)")
    if samples and is_batch_spec(src):
        raise c.fail("samples", "posterior sampling restores one image; give one image (not a folder or a glob)")
    from pnpdiff.priors.runtime import PRECISIONS

    precision = data.get("precision", "fp32")
    if precision not in PRECISIONS:
        raise c.fail("precision", f"expected one of {', '.join(PRECISIONS)}, got {precision!r}")
    compile_ = data.get("compile", False)
    if not isinstance(compile_, bool):
        raise c.fail("compile", f"expected true or false, got {compile_!r}")
    return Recipe(
        operator=op,
        image=src if src_key == "image" else None,
        observed=src if src_key == "observed" else None,
        size=size,
        sigma_y=sigma_y,
        noise_seed=noise_seed,
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
    )


def _check_operator_params(c: _Checker, op: dict[str, Any]) -> None:
    """Parameter names of the operator's constructor: an unknown one is an error here, not a
    ``TypeError`` from deep inside."""
    import inspect

    from pnpdiff import operators

    cls = getattr(operators, op["name"])
    params = inspect.signature(cls).parameters
    valid = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    takes_kwargs = any(p.kind == p.VAR_KEYWORD for p in params.values())
    if takes_kwargs:  # e.g. GaussianBlur(**kwargs) -> Blur's keyword parameters
        valid += [n for n in inspect.signature(operators.Blur).parameters if n not in ("kernel",) and n not in valid]
    for k in op:
        if k != "name" and k not in valid:
            raise c.fail(f"operator.{k}", f"{op['name']} has no parameter {k!r}; its parameters: {', '.join(valid)}")
    required = [n for n, p in params.items() if p.default is p.empty and p.kind == p.POSITIONAL_OR_KEYWORD]
    for n in required:
        if n not in op:
            raise c.fail(f"operator.{n}", f"missing; {op['name']} needs {', '.join(required)}")


def _check_prior_name(c: _Checker, prior: str | dict[str, Any]) -> None:
    from pnpdiff.errors import UnknownNameError
    from pnpdiff.priors.registry import _parse

    name = prior["name"] if isinstance(prior, dict) else prior
    try:
        _parse(str(name))
    except UnknownNameError as err:
        raise c.fail("prior", str(err)) from None


def _check_options(c: _Checker, options: dict[str, Any], method: str | None, op_name: str) -> None:
    import inspect

    from pnpdiff import api
    from pnpdiff.errors import ValueRangeError
    from pnpdiff.solvers import SOLVERS

    m = method if method is not None else api.default_method(api.task_of(op_name))
    params = inspect.signature(SOLVERS[m]).parameters
    allowed = [p for p in params if p not in api._SET_BY_SOLVE and p not in ("progress", "x_init", "callback")]
    for k, v in options.items():
        if k in api._SCHEDULE_KEYS:
            try:
                api._check_schedule_options({k: v})
            except ValueRangeError as err:
                raise c.fail(f"options.{k}", str(err)) from None
            continue
        if k not in allowed:
            raise c.fail(f"options.{k}", f"method {m!r} has no option {k!r}; its options: "
                                         f"{', '.join(allowed + list(api._SCHEDULE_KEYS))}")
        try:
            options[k] = api._check_option(m, k, v, params[k].default, params[k].annotation)
        except ValueRangeError as err:
            raise c.fail(f"options.{k}", str(err)) from None


def _check_memory_value(c: _Checker, v: Any) -> None:
    try:
        from pnpdiff.memory import parse_bytes
    except ImportError:  # pragma: no cover
        return
    try:
        parse_bytes(v)
    except PnPError as err:
        raise c.fail("max_memory", str(err)) from None


def build_operator(spec: dict[str, Any], shape: tuple[int, ...]) -> Any:
    """Build an operator from a recipe mapping ``{name: ..., **kwargs}`` for images of ``shape``.

    ``Inpaint`` takes ``mask: {kind: random|box|freeform, ...generator kwargs}`` (or a path to a
    mask image, white = observed). Parameter errors name their key path (``operator.sigma``).
    """
    from pnpdiff import operators

    kwargs = dict(spec)
    name = kwargs.pop("name")
    if name not in RECIPE_OPERATORS:
        raise RecipeError(f"operator.name: unknown operator {name!r}; known: {', '.join(RECIPE_OPERATORS)}")
    cls = getattr(operators, name)
    if name == "Inpaint":
        kwargs["mask"] = _build_mask(kwargs.get("mask"), shape)
    try:
        return cls(**kwargs)
    except OperatorError as err:
        raise RecipeError(_keyed("operator", kwargs, err)) from None
    except (TypeError, ValueError) as err:  # a constructor without its own check
        raise RecipeError(f"operator: {name}: {' '.join(str(err).split())}") from None


def _keyed(prefix: str, kwargs: dict[str, Any], err: Exception) -> str:
    """``sigma must be ...`` -> ``operator.sigma: must be ...`` when the message starts with a
    parameter name."""
    msg = " ".join(str(err).split())
    first = msg.split(" ", 1)[0]
    if first in kwargs and " " in msg:
        return f"{prefix}.{first}: {msg.split(' ', 1)[1]}"
    return f"{prefix}: {msg}"


def _build_mask(spec: Any, shape: tuple[int, ...]) -> torch.Tensor:
    from pnpdiff.operators import masks

    if spec is None:
        raise RecipeError("operator.mask: Inpaint needs a mask (e.g. mask: {kind: random, p_missing: 0.7})")
    if isinstance(spec, str):
        from pnpdiff.io import load_image

        try:
            m = load_image(spec)
        except PnPError as err:  # a missing or unreadable file: say it is the mask
            raise type(err)(f"operator.mask: {err}") from None
        if tuple(m.shape[-2:]) != tuple(shape[-2:]):
            raise RecipeError(
                f"operator.mask: the mask {spec} is {m.shape[-2]}x{m.shape[-1]} but the image is "
                f"{shape[-2]}x{shape[-1]}; give a mask of the image's size (after 'size')"
            )
        observed = (m[0, :1] > 0.5).to(torch.float32)
        if not bool(observed.any()):
            raise RecipeError(f"operator.mask: the mask {spec} has no observed pixel (white = observed, "
                              "black = missing); nothing is left to restore from")
        return observed
    if not isinstance(spec, dict) or spec.get("kind") not in _MASK_KINDS:
        raise RecipeError("operator.mask: a path or a mapping with a 'kind' (random, box, freeform)")
    kw = dict(spec)
    kind = kw.pop("kind")
    fn = {"random": masks.random_mask, "box": masks.box_mask, "freeform": masks.freeform_mask}[kind]
    try:
        return fn(tuple(shape[-3:]), **kw)
    except OperatorError as err:
        raise RecipeError(_keyed("operator.mask", kw, err)) from None
    except TypeError as err:
        raise RecipeError(f"operator.mask: {kind} mask: {' '.join(str(err).split())}") from None


def _comparison(panels: list[tuple[str, torch.Tensor]], path: Path) -> None:
    """Side-by-side PNG of equally sized images with a title above each."""
    from PIL import Image, ImageDraw, ImageFont

    from pnpdiff.io import to_pil

    h = max(int(t.shape[-2]) for _, t in panels)
    w = max(int(t.shape[-1]) for _, t in panels)
    zoom = -(-160 // w) if w < 160 else 1  # small images are enlarged (nearest) so titles fit
    h, w = h * zoom, w * zoom
    pad, title_h = 8, 28
    canvas = Image.new("RGB", (len(panels) * (w + pad) + pad, h + title_h + pad), "white")
    draw = ImageDraw.Draw(canvas)
    try:
        font = ImageFont.load_default(size=max(12, w // 18))
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    for i, (title, img) in enumerate(panels):
        tile = to_pil(img).convert("RGB")
        if tile.size != (w, h):
            tile = tile.resize((w, h), Image.NEAREST)
        x0 = pad + i * (w + pad)
        canvas.paste(tile, (x0, title_h))
        draw.text((x0, 4), title, fill="black", font=font)
    canvas.save(path)


#: files every run writes at the top of its output folder
RUN_FILES = ("metrics.json", "metrics.csv", "recipe.yaml")


def image_file_names(recipe: Recipe) -> list[str]:
    """The files a run writes for each image (into the folder itself, or the image's sub-folder
    in a batch run)."""
    names = [f"{n}.png" for n in recipe.saved]
    if recipe.intermediates:
        names.append("intermediates.png")
    if recipe.samples:
        names += ["mean.png", "std.png"]
    return names


def output_names(recipe: Recipe) -> list[str]:
    """The files a run of ``recipe`` writes at the top of its output folder."""
    return list(RUN_FILES) if recipe.is_batch else image_file_names(recipe) + list(RUN_FILES)


@dataclass
class Measurement:
    """One image's measurement as a recipe makes it: ``y``, the operator, the noise level and,
    when the recipe gives a ground truth, ``truth``."""

    y: torch.Tensor
    operator: Any
    sigma_y: float
    sigma_estimated: bool
    bits: int
    truth: torch.Tensor | None = None


def measure(recipe: Recipe, spec: str, noise_seed: int) -> Measurement:
    """Load ``spec`` and make its measurement: with ``image:``, ``y = A(x) + sigma_y n`` with
    ``n`` drawn from ``noise_seed``; with ``observed:``, the file itself (``sigma_y`` estimated
    when the recipe does not give it)."""
    from pnpdiff.io import load_source_image
    from pnpdiff.solvers.common import estimate_noise_level

    if recipe.image is not None:
        truth, bits = load_source_image(spec, recipe.size, None)
        op = build_operator(recipe.operator, tuple(truth.shape))
        g = torch.Generator().manual_seed(noise_seed)
        with torch.no_grad():
            clean = op(truth)
        sigma_y = recipe.sigma_y if recipe.sigma_y is not None else 0.0
        y = clean + sigma_y * torch.randn(clean.shape, generator=g, dtype=clean.dtype)
        return Measurement(y, op, float(sigma_y), False, bits, truth)
    y, bits = load_source_image(spec, recipe.size, None)
    op = build_operator(recipe.operator, _x_shape_guess(recipe.operator, tuple(y.shape)))
    if recipe.sigma_y is not None:
        return Measurement(y, op, float(recipe.sigma_y), False, bits)
    return Measurement(y, op, float(estimate_noise_level(y)), True, bits)


def measurement_shapes(recipe: Recipe, spec: str, batch: int = 1) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The shapes of ``x`` and ``y`` for ``spec`` read from its header alone (nothing decoded),
    for ``batch`` images: what the memory check needs before any work starts."""
    from pnpdiff.io import source_image_shape

    c, h, w = source_image_shape(spec, recipe.size, None)
    if recipe.image is not None:
        return (batch, c, h, w), (batch, c, h, w)
    y_shape = (batch, c, h, w)
    return _x_shape_guess(recipe.operator, y_shape), y_shape


class _Frames:
    """A solver callback that keeps the denoised estimate ``x0_hat`` of every step (on the CPU,
    at most 256 px on a side) for the strip of intermediates."""

    def __init__(self) -> None:
        self.frames: list[tuple[float, torch.Tensor]] = []

    def __call__(self, i: int, sigma: float, x: torch.Tensor, x0: torch.Tensor) -> None:
        import torch.nn.functional as F

        v = x0.detach().float().clamp(0, 1)
        side = max(v.shape[-2:])
        if side > 256:
            v = F.interpolate(v, scale_factor=256 / side, mode="area")
        self.frames.append((float(sigma), v.cpu()))

    def strip(self, b: int, n: int) -> list[tuple[str, torch.Tensor]]:
        """``n`` frames of image ``b``, evenly spaced from the first step to the last."""
        if not self.frames:
            return []
        k = len(self.frames)
        idx = sorted({round(j * (k - 1) / max(n - 1, 1)) for j in range(min(n, k))})
        return [(f"step {i + 1}: {self.frames[i][0] * 255:.1f}/255", self.frames[i][1][b:b + 1]) for i in idx]


def restore(recipe: Recipe, y: torch.Tensor, op: Any, sigma_y: float, seed: int | list[int], *,
            prior: Any, steps: int | None, device: str | None, progress: bool
            ) -> tuple[torch.Tensor, _Frames | None, float]:
    """Run the recipe's solver on ``y`` (one image or a batch); return the restored images on the
    CPU, the intermediate frames (when the recipe asks for them) and the seconds taken."""
    from pnpdiff.api import solve

    frames = _Frames() if recipe.intermediates else None
    options = dict(recipe.options)
    if frames is not None:
        options["callback"] = frames
    t0 = time.perf_counter()
    x_hat = solve(y, op, prior=prior, method=recipe.resolved_method, steps=steps, sigma_y=sigma_y, seed=seed,
                  device=device, progress=progress, max_memory=recipe.max_memory, precision=recipe.precision,
                  compile=recipe.compile, **options)
    return x_hat.cpu(), frames, time.perf_counter() - t0


def draw_samples(recipe: Recipe, y: torch.Tensor, op: Any, sigma_y: float, seed: int, *, prior: Any,
                 steps: int | None, device: str | None, progress: bool) -> tuple[torch.Tensor, float]:
    """``recipe.samples`` posterior samples of one image (``pnpdiff.sample_posterior``), ``(n, 1, C,
    H, W)`` on the CPU, and the seconds taken."""
    from pnpdiff.posterior import sample_posterior

    t0 = time.perf_counter()
    out = sample_posterior(y, op, prior, n=recipe.samples, method=recipe.resolved_method, sigma_y=sigma_y, seed=seed,
                           steps=steps, device=device, progress=progress, max_memory=recipe.max_memory,
                           precision=recipe.precision, compile=recipe.compile, **recipe.options)
    return out.cpu(), time.perf_counter() - t0


#: anchors of the viridis colour map (van der Walt and Smith, matplotlib's default), low to high
_VIRIDIS = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))


def _colour(v: torch.Tensor) -> torch.Tensor:
    """Values in [0, 1] ``(H, W)`` -> viridis RGB ``(3, H, W)`` in [0, 1] (piecewise-linear anchors)."""
    lut = torch.tensor(_VIRIDIS, dtype=torch.float32) / 255
    k = lut.shape[0] - 1
    pos = v.clamp(0, 1) * k
    i = pos.floor().clamp(max=k - 1).long()
    f = (pos - i)[..., None]
    return (lut[i] * (1 - f) + lut[i + 1] * f).permute(2, 0, 1)


def save_std_map(std: torch.Tensor, path: Path) -> float:
    """Save the per-pixel posterior standard deviation ``(1, C, H, W)`` (mean over channels) as a
    viridis image with a colour bar labelled in [0, 1] image units (0 at the bottom, the map's
    largest value at the top); return that largest value."""
    from PIL import Image, ImageDraw, ImageFont

    from pnpdiff.io import to_pil

    s = std[0].float().mean(0)
    top = float(s.max()) if float(s.max()) > 0 else 1.0
    img = to_pil(_colour(s / top)[None]).convert("RGB")
    h, w = s.shape
    zoom = -(-160 // max(h, w)) if max(h, w) < 160 else 1
    img = img.resize((w * zoom, h * zoom), Image.NEAREST)
    h, w = h * zoom, w * zoom
    pad, bar, label = 8, max(12, w // 16), 64
    canvas = Image.new("RGB", (w + 3 * pad + bar + label, h + 2 * pad), "white")
    canvas.paste(img, (pad, pad))
    ramp = torch.linspace(1, 0, h)[:, None].expand(h, bar)
    canvas.paste(to_pil(_colour(ramp)[None]).convert("RGB"), (w + 2 * pad, pad))
    draw = ImageDraw.Draw(canvas)
    try:
        font = ImageFont.load_default(size=12)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    x_txt = w + 2 * pad + bar + 4
    for frac in (1.0, 0.5, 0.0):
        y_txt = pad + int((1 - frac) * (h - 12))
        draw.text((x_txt, y_txt), f"{frac * top:.3f}", fill="black", font=font)
    canvas.save(path)
    return top


def write_image_files(folder: Path, recipe: Recipe, m: Measurement, x_hat: torch.Tensor,
                      strip: list[tuple[str, torch.Tensor]], metrics: dict[str, Any]) -> None:
    """Write one image's files (those in ``recipe.saved``, and the strip of intermediates) into
    ``folder``; add PSNR / SSIM against the ground truth to ``metrics`` when there is one."""
    from pnpdiff.io import save_image
    from pnpdiff.metrics import SSIM_WINDOW, psnr, ssim

    saved = recipe.saved
    y_vis = m.y.clamp(0, 1)
    if "observed" in saved:
        save_image(y_vis, folder / "observed.png", bits=m.bits)
    if "restored" in saved:
        save_image(x_hat, folder / "restored.png", bits=m.bits)
    if m.truth is not None:
        truth = m.truth
        if "ground_truth" in saved:
            save_image(truth, folder / "ground_truth.png", bits=m.bits)
        obs_full = y_vis
        if obs_full.shape[1] != truth.shape[1]:  # colourisation: the grey observation in every channel
            obs_full = obs_full.expand(-1, truth.shape[1], -1, -1)
        if obs_full.shape != truth.shape:  # e.g. super-resolution: compare bicubic upsampling
            import torch.nn.functional as F

            obs_full = F.interpolate(obs_full, size=truth.shape[-2:], mode="bicubic", align_corners=False)
            metrics["observed_upsampling"] = "bicubic"
        for key, img in (("observed", obs_full), ("restored", x_hat)):
            metrics[f"psnr_{key}"] = round(float(psnr(img, truth)[0]), 3)
            if min(truth.shape[-2:]) >= SSIM_WINDOW:  # smaller images have no valid SSIM window: no ssim keys
                metrics[f"ssim_{key}"] = round(float(ssim(img, truth)[0]), 4)
        if "comparison" in saved:
            _comparison(
                [(f"observed {metrics['psnr_observed']:.2f} dB", obs_full),
                 (f"restored {metrics['psnr_restored']:.2f} dB", x_hat),
                 ("ground truth", truth)],
                folder / "comparison.png",
            )
    if strip:
        _comparison(strip, folder / "intermediates.png")


def write_run_files(folder: Path, recipe: Recipe, target: Path, metrics: dict[str, Any],
                    rows: list[dict[str, Any]], steps: int, device: str | None) -> None:
    """Write ``metrics.json``, ``metrics.csv`` (one row per image) and the resolved
    ``recipe.yaml`` that reruns this run."""
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    _write_csv(folder / "metrics.csv", rows)
    resolved = recipe_to_dict(recipe)
    resolved["output"] = str(target.resolve())
    resolved["steps"] = steps
    if device is not None:
        resolved["device"] = device
    (folder / "recipe.yaml").write_text(
        f"# the recipe of this run, resolved (pnpdiff {_version()}); rerun with: python -m pnpdiff "
        f"{target.resolve() / 'recipe.yaml'}\n" + yaml.safe_dump(resolved, sort_keys=False)
    )


def run_settings(recipe: Recipe, steps: int | None) -> dict[str, Any]:
    """What every image of a run shares, as recorded in ``metrics.json``."""
    from pnpdiff.api import default_steps, task_of

    task = task_of(str(recipe.operator["name"]))
    method = recipe.resolved_method
    n = steps if steps is not None else recipe.steps
    return {
        "task": recipe.task if recipe.task is not None else task,
        "method": method,
        "prior": recipe.prior_name,
        "operator": recipe.operator,
        "steps": int(n if n is not None else default_steps(recipe.prior_name, task, method)),
    }


def run_recipe(
    recipe: Recipe,
    output: str | os.PathLike | None = None,
    steps: int | None = None,
    device: str | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Run a recipe end to end and write its output folder; return the metrics dictionary.

    A single image writes ``observed.png``, ``restored.png`` and, when a ground truth exists,
    ``ground_truth.png`` and ``comparison.png`` (side by side, titled with PSNR) — or the subset
    named by ``save`` — plus ``intermediates.png`` when ``intermediates`` is set, and
    ``metrics.json``, ``metrics.csv``, ``recipe.yaml`` and the manifest of :mod:`pnpdiff.outputs`.
    Images are 16-bit PNGs when the input is 16-bit. A folder or glob input is a batch run, see
    :func:`pnpdiff.batch.run_batch`.

    The output folder is checked first (before any image or prior is loaded), then the memory
    the solve needs (before the image is decoded); an interrupted run leaves the folder as it was.
    ``output`` (relative to the current directory) replaces the recipe's folder; ``overwrite``
    allows writing into an existing folder that holds other files (never replacing them).
    """
    if recipe.is_batch:
        from pnpdiff.batch import run_batch

        return run_batch(recipe, output=output, steps=steps, device=device, progress=progress, overwrite=overwrite)
    from pnpdiff import env
    from pnpdiff.outputs import OutputFolder

    if env.world_size() > 1:
        raise PnPError(f"this recipe restores one image ({recipe.input_spec}); torchrun shares the images of a "
                       "batch run (image: a folder or a glob) among its processes: run this one without torchrun")
    dev_spec = device if device is not None else recipe.device
    target = Path(output).expanduser() if output is not None else Path(recipe.output)
    out = OutputFolder(target, output_names(recipe), overwrite=overwrite)
    with out.hold():  # locked against another run and checked, before any image or prior is loaded
        return _run_one(recipe, out, target, steps, dev_spec, progress)


def _run_one(recipe: Recipe, out: Any, target: Path, steps: int | None, dev_spec: str | None,
             progress: bool) -> dict[str, Any]:
    """:func:`run_recipe` of one image, into the folder ``out`` it holds."""
    from pnpdiff.api import _check_memory, _device
    from pnpdiff.priors import load_prior

    spec = recipe.input_spec
    x_shape, y_shape = measurement_shapes(recipe, spec)
    prior = load_prior(recipe.prior)
    dev = _device(dev_spec, torch.empty(0))
    _check_memory(x_shape, y_shape, prior, recipe.resolved_method, dev, torch.float32, recipe.max_memory)

    m = measure(recipe, spec, recipe.noise_seed)
    n_steps = steps if steps is not None else recipe.steps
    draws = None
    if recipe.samples:  # restored.png is the first posterior sample; mean.png and std.png summarise all
        draws, seconds = draw_samples(recipe, m.y, m.operator, m.sigma_y, recipe.seed, prior=prior, steps=n_steps,
                                      device=dev_spec, progress=progress)
        x_hat, frames = draws[0], None
    else:
        x_hat, frames, seconds = restore(recipe, m.y, m.operator, m.sigma_y, recipe.seed, prior=prior,
                                         steps=n_steps, device=dev_spec, progress=progress)
    metrics: dict[str, Any] = {
        **run_settings(recipe, steps),
        "sigma_y": round(float(m.sigma_y), 6),
        "sigma_y_estimated": m.sigma_estimated,
        "image_size": [int(x_hat.shape[-2]), int(x_hat.shape[-1])],
        "bits": m.bits,
        "seconds": round(seconds, 3),
    }
    with out.transaction() as tmp:
        strip = frames.strip(0, recipe.intermediates) if frames is not None else []
        write_image_files(tmp, recipe, m, x_hat, strip, metrics)
        if draws is not None:
            write_sample_files(tmp, m, draws, metrics)
        write_run_files(tmp, recipe, target, metrics, [{"image": spec, **metrics}], metrics["steps"], dev_spec)
    return metrics


def write_sample_files(folder: Path, m: Measurement, draws: torch.Tensor, metrics: dict[str, Any]) -> None:
    """``mean.png`` (the posterior-mean estimate), ``std.png`` (per-pixel posterior standard
    deviation, colour bar in [0, 1] units) and their metrics: ``samples``, ``std_mean`` (over pixels
    and channels), ``std_max`` (the top of the colour bar: the largest channel-averaged pixel std),
    and PSNR / SSIM of the mean when there is a ground truth."""
    from pnpdiff.io import save_image
    from pnpdiff.metrics import SSIM_WINDOW, psnr, ssim

    mean = draws.mean(0).clamp(0, 1)
    std = draws.std(0)
    save_image(mean, folder / "mean.png", bits=m.bits)
    metrics["samples"] = int(draws.shape[0])
    metrics["std_mean"] = round(float(std.mean()), 6)
    metrics["std_max"] = round(save_std_map(std, folder / "std.png"), 6)
    if m.truth is not None:
        metrics["psnr_mean"] = round(float(psnr(mean, m.truth)[0]), 3)
        if min(m.truth.shape[-2:]) >= SSIM_WINDOW:
            metrics["ssim_mean"] = round(float(ssim(mean, m.truth)[0]), 4)


def _version() -> str:
    from pnpdiff import __version__

    return __version__


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """One row per image; nested values (the operator) as JSON."""
    import csv

    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in r.items()})


def _x_shape_guess(op_spec: dict[str, Any], y_shape: tuple[int, ...]) -> tuple[int, ...]:
    if op_spec.get("name") == "Downsample":
        f = op_spec.get("factor", 1)
        f = f if isinstance(f, int) and not isinstance(f, bool) and f > 0 else 1
        return (*y_shape[:-2], y_shape[-2] * f, y_shape[-1] * f)
    if op_spec.get("name") == "Colorize":
        return (*y_shape[:-3], 3, *y_shape[-2:])
    return y_shape
