"""YAML recipes: one file describes an image, a degradation, a prior, a method and an output folder.

A recipe is read with ``yaml.safe_load`` and validated strictly: an unknown or misspelt key is
an error, never silently ignored. Example (``recipes/deblur.yaml``)::

    image: skimage:astronaut     # a bundled scikit-image photo, or a path to your own file
    size: 256                    # centre-crop to a square and resize (omit to keep the size)
    operator: {name: GaussianBlur, sigma: 3.0}
    noise: {sigma_y: 0.025, seed: 0}
    prior: natural
    method: diffpir
    seed: 0
    output: outputs/deblur

With ``observed:`` instead of ``image:`` the file is taken as the measurement itself (your own
degraded photo): nothing is simulated and no ground-truth metrics are written.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from pnpdiff.errors import PnPError, RecipeError

__all__ = ["Recipe", "load_recipe", "run_recipe", "build_operator", "load_source_image"]

_TOP_KEYS = {
    "task", "description", "image", "observed", "size", "operator", "noise", "prior", "method",
    "steps", "options", "seed", "device", "output",
}
_NOISE_KEYS = {"sigma_y", "seed"}


@dataclass
class Recipe:
    """A validated recipe (see the module docstring for the keys)."""

    operator: dict[str, Any]
    image: str | None = None
    observed: str | None = None
    size: int | None = None
    sigma_y: float = 0.0
    noise_seed: int = 0
    prior: str = "natural"
    method: str = "diffpir"
    steps: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    device: str | None = None
    output: str = "outputs/pnpdiff"
    task: str | None = None
    source: Path | None = None


def _require(cond: bool, msg: str) -> None:
    if not cond:
        raise RecipeError(msg)


def load_recipe(path: str | os.PathLike) -> Recipe:
    """Read and validate a recipe file; relative paths inside it are relative to the file."""
    p = Path(path)
    if not p.is_file():
        raise RecipeError(f"recipe file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        raise RecipeError(f"{p} is not valid YAML: {str(err).splitlines()[0]}") from None
    _require(isinstance(data, dict), f"{p}: a recipe is a mapping of keys to values")
    unknown = set(data) - _TOP_KEYS
    _require(not unknown, f"{p}: unknown key(s) {sorted(unknown)}; valid keys: {sorted(_TOP_KEYS)}")
    _require(("image" in data) != ("observed" in data), f"{p}: give exactly one of 'image' or 'observed'")
    _require("operator" in data, f"{p}: missing key 'operator' (e.g. operator: {{name: GaussianBlur, sigma: 3}})")
    op = data["operator"]
    if isinstance(op, str):
        op = {"name": op}
    _require(isinstance(op, dict) and "name" in op, f"{p}: 'operator' needs a 'name'")
    noise = data.get("noise", {}) or {}
    _require(isinstance(noise, dict), f"{p}: 'noise' must be a mapping like {{sigma_y: 0.025}}")
    bad = set(noise) - _NOISE_KEYS
    _require(not bad, f"{p}: unknown noise key(s) {sorted(bad)}; valid: {sorted(_NOISE_KEYS)}")
    options = data.get("options", {}) or {}
    _require(isinstance(options, dict), f"{p}: 'options' must be a mapping of solver options")
    size = data.get("size")
    _require(size is None or (isinstance(size, int) and size > 0), f"{p}: 'size' must be a positive integer")
    sigma_y = noise.get("sigma_y", 0.0)
    _require(isinstance(sigma_y, (int, float)) and sigma_y >= 0, f"{p}: noise.sigma_y must be >= 0")
    steps = data.get("steps")
    _require(steps is None or (isinstance(steps, int) and steps > 0), f"{p}: 'steps' must be a positive integer")
    output = Path(str(data.get("output", f"outputs/{p.stem}")))
    return Recipe(
        operator=dict(op),
        image=data.get("image"),
        observed=data.get("observed"),
        size=size,
        sigma_y=float(sigma_y),
        noise_seed=int(noise.get("seed", 0)),
        prior=str(data.get("prior", "natural")),
        method=str(data.get("method", "diffpir")),
        steps=steps,
        options=dict(options),
        seed=int(data.get("seed", 0)),
        device=data.get("device"),
        output=str(output),
        task=data.get("task"),
        source=p,
    )


def load_source_image(spec: str, size: int | None, base: Path | None = None) -> torch.Tensor:
    """``skimage:NAME`` (a scikit-image test photo) or a file path -> ``(1, C, H, W)`` in [0, 1].

    With ``size``, the image is centre-cropped to a square and resized with an antialiased
    bicubic filter to ``size x size``.
    """
    from PIL import Image

    from pnpdiff.io import load_pil, normalise_mode

    if spec.startswith("skimage:"):
        import skimage.data

        name = spec.split(":", 1)[1]
        fn = getattr(skimage.data, name, None)
        if fn is None or not callable(fn):
            raise RecipeError(f"scikit-image has no test image {name!r} (try astronaut, chelsea, coffee, rocket)")
        arr = fn()
        pil = Image.fromarray(arr)
    else:
        path = Path(spec)
        if not path.is_absolute() and base is not None and not path.exists():
            path = base / path
        if not path.is_file():
            raise RecipeError(f"image file not found: {spec}")
        pil = Image.open(path)
        pil.load()
    pil = normalise_mode(pil)  # before resampling: palette / 1-bit images do not resize well
    if size is not None:
        w, h = pil.size
        s = min(w, h)
        pil = pil.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
        pil = pil.resize((size, size), Image.BICUBIC, reducing_gap=None)
    return load_pil(pil)


def build_operator(spec: dict[str, Any], shape: tuple[int, ...]) -> Any:
    """Build an operator from a recipe mapping ``{name: ..., **kwargs}`` for images of ``shape``.

    ``Inpaint`` takes ``mask: {kind: random|box|freeform, ...generator kwargs}`` (or a path to a
    mask image, white = observed).
    """
    from pnpdiff import operators

    kwargs = dict(spec)
    name = kwargs.pop("name")
    cls = getattr(operators, str(name), None)
    if cls is None or not isinstance(cls, type):
        known = sorted(n for n in getattr(operators, "__all__", []) if n[0].isupper() and n != "LinearOperator")
        raise RecipeError(f"unknown operator {name!r}; known: {', '.join(known)}")
    if name == "Inpaint":
        mask_spec = kwargs.pop("mask", None)
        if mask_spec is None:
            raise RecipeError("Inpaint needs a 'mask' (e.g. mask: {kind: random, p_missing: 0.7})")
        kwargs["mask"] = _build_mask(mask_spec, shape)
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise RecipeError(f"operator {name}: {err}") from None


def _build_mask(spec: Any, shape: tuple[int, ...]) -> torch.Tensor:
    from pnpdiff.operators import masks

    if isinstance(spec, str):
        from pnpdiff.io import load_image

        return (load_image(spec)[0, :1] > 0.5).to(torch.float32)
    if not isinstance(spec, dict) or "kind" not in spec:
        raise RecipeError("mask must be a path or a mapping with a 'kind' (random, box, freeform)")
    kw = dict(spec)
    kind = kw.pop("kind")
    fn = {"random": masks.random_mask, "box": masks.box_mask, "freeform": masks.freeform_mask}.get(kind)
    if fn is None:
        raise RecipeError(f"unknown mask kind {kind!r}; use random, box or freeform")
    try:
        return fn(tuple(shape[-3:]), **kw)
    except TypeError as err:
        raise RecipeError(f"mask {kind}: {err}") from None


def _comparison(panels: list[tuple[str, torch.Tensor]], path: Path) -> None:
    """Side-by-side PNG of equally sized images with a title above each."""
    from PIL import Image, ImageDraw, ImageFont

    from pnpdiff.io import to_pil

    h = max(int(t.shape[-2]) for _, t in panels)
    w = max(int(t.shape[-1]) for _, t in panels)
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


def _replaceable(target: Path) -> bool:
    """Whether ``target`` may be replaced: absent, an empty folder, or an earlier pnpdiff output."""
    return not target.exists() or (
        target.is_dir() and (not any(target.iterdir()) or (target / "metrics.json").exists())
    )


def _refuse_foreign(target: Path) -> None:
    if not _replaceable(target):
        raise PnPError(f"output folder {target} exists and is not a pnpdiff output; choose another 'output'")


def _commit_output(tmp: Path, target: Path) -> None:
    """Move a finished temporary folder into place; never leave a half-written output."""
    _refuse_foreign(target)  # checked again: the folder may have changed while solving
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)


def run_recipe(
    recipe: Recipe,
    output: str | None = None,
    steps: int | None = None,
    device: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run a recipe end to end and write its output folder; return the metrics dictionary.

    Writes ``observed.png``, ``restored.png``, ``metrics.json`` and, when a ground truth exists,
    ``ground_truth.png`` and ``comparison.png`` (side by side, titled with PSNR).
    """
    from pnpdiff.api import default_steps, solve, task_of
    from pnpdiff.io import save_image
    from pnpdiff.metrics import psnr, ssim

    base = recipe.source.parent if recipe.source is not None else None
    n_steps = steps if steps is not None else recipe.steps
    dev = device if device is not None else recipe.device
    truth = None
    if recipe.image is not None:
        truth = load_source_image(recipe.image, recipe.size, base)
        op = build_operator(recipe.operator, tuple(truth.shape))
        g = torch.Generator().manual_seed(recipe.noise_seed)
        with torch.no_grad():
            clean = op(truth)
        y = clean + recipe.sigma_y * torch.randn(clean.shape, generator=g, dtype=clean.dtype)
        sigma_y: float | None = recipe.sigma_y
    else:
        y = load_source_image(str(recipe.observed), recipe.size, base)
        op = build_operator(recipe.operator, _x_shape_guess(recipe.operator, tuple(y.shape)))
        sigma_y = recipe.sigma_y if recipe.sigma_y > 0 else None

    t0 = time.perf_counter()
    x_hat = solve(y, op, prior=recipe.prior, method=recipe.method, steps=n_steps, sigma_y=sigma_y,
                  seed=recipe.seed, device=dev, progress=progress, **recipe.options)
    seconds = time.perf_counter() - t0
    x_hat = x_hat.cpu()

    metrics: dict[str, Any] = {
        "task": recipe.task if recipe.task is not None else task_of(op),
        "method": recipe.method,
        "prior": recipe.prior,
        "operator": recipe.operator,
        "steps": int(n_steps if n_steps is not None else default_steps(recipe.prior, task_of(op), recipe.method)),
        "sigma_y": sigma_y,
        "seconds": round(seconds, 3),
    }
    target = Path(output if output is not None else recipe.output)
    _refuse_foreign(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        y_vis = y.clamp(0, 1)
        save_image(y_vis, tmp / "observed.png")
        save_image(x_hat, tmp / "restored.png")
        if truth is not None:
            save_image(truth, tmp / "ground_truth.png")
            obs_full = y_vis
            if obs_full.shape != truth.shape:  # e.g. super-resolution: compare bicubic upsampling
                import torch.nn.functional as F

                obs_full = F.interpolate(y_vis, size=truth.shape[-2:], mode="bicubic", align_corners=False)
                metrics["observed_upsampling"] = "bicubic"
            for key, img in (("observed", obs_full), ("restored", x_hat)):
                metrics[f"psnr_{key}"] = round(float(psnr(img, truth)[0]), 3)
                metrics[f"ssim_{key}"] = round(float(ssim(img, truth)[0]), 4)
            _comparison(
                [(f"observed {metrics['psnr_observed']:.2f} dB", obs_full),
                 (f"restored {metrics['psnr_restored']:.2f} dB", x_hat),
                 ("ground truth", truth)],
                tmp / "comparison.png",
            )
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        _commit_output(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return metrics


def _x_shape_guess(op_spec: dict[str, Any], y_shape: tuple[int, ...]) -> tuple[int, ...]:
    if op_spec.get("name") == "Downsample":
        f = int(op_spec.get("factor", 1))
        return (*y_shape[:-2], y_shape[-2] * f, y_shape[-1] * f)
    return y_shape
