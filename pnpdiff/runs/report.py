"""What a restoration run writes: the per-image pictures (observed, restored, ground truth, comparison
panel, intermediates, posterior mean and std map) and the run files (metrics.json, metrics.csv,
the resolved recipe.yaml)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from pnpdiff._version import __version__
from pnpdiff.config.restore import Recipe, recipe_to_dict
from pnpdiff.io import save_image, to_pil
from pnpdiff.metrics import SSIM_WINDOW, psnr, ssim
from pnpdiff.runs.measure import Measurement


def save_comparison(panels: list[tuple[str, torch.Tensor]], path: Path) -> None:
    """Side-by-side PNG of equally sized images with a title above each."""
    from PIL import Image, ImageDraw, ImageFont


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
    if recipe.operator.get("name") == "BlindBlur":  # the estimated kernel
        names += ["kernel.png", "kernel.npy"]
    return names


def output_names(recipe: Recipe) -> list[str]:
    """The files a run of ``recipe`` writes at the top of its output folder."""
    return list(RUN_FILES) if recipe.is_batch else image_file_names(recipe) + list(RUN_FILES)


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
    saved = recipe.saved
    kernel = metrics.pop("kernel_values", None)
    if kernel is not None:  # the kernel a BlindBlur estimated: the numbers, and a picture scaled to its peak
        k = torch.tensor(kernel, dtype=torch.float64)
        with open(folder / "kernel.npy", "wb") as fh:
            np.save(fh, k.numpy())
        pic = (k / k.max().clamp_min(1e-12)).to(torch.float32)[None, None]
        save_image(torch.nn.functional.interpolate(pic, scale_factor=max(1, 256 // max(k.shape)), mode="nearest"),
                   folder / "kernel.png")
        if m.true_operator is not None:  # simulated: how far the estimate is from the true kernel
            from pnpdiff.blind import centred_kernel_error

            metrics["kernel_error"] = round(float(centred_kernel_error(k, m.true_operator.kernel[0].to(k))), 4)
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
            save_comparison(
                [(f"observed {metrics['psnr_observed']:.2f} dB", obs_full),
                 (f"restored {metrics['psnr_restored']:.2f} dB", x_hat),
                 ("ground truth", truth)],
                folder / "comparison.png",
            )
    if strip:
        save_comparison(strip, folder / "intermediates.png")


def write_run_files(folder: Path, recipe: Recipe, target: Path, metrics: dict[str, Any],
                    rows: list[dict[str, Any]], steps: int, device: str | None) -> None:
    """Write ``metrics.json``, ``metrics.csv`` (one row per image) and the resolved
    ``recipe.yaml`` that reruns this run."""
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_csv(folder / "metrics.csv", rows)
    resolved = recipe_to_dict(recipe)
    resolved["output"] = str(target.resolve())
    resolved["steps"] = steps
    if device is not None:
        resolved["device"] = device
    (folder / "recipe.yaml").write_text(
        f"# the recipe of this run, resolved (pnpdiff {_version()}); rerun with: python -m pnpdiff "
        f"{target.resolve() / 'recipe.yaml'}\n" + yaml.safe_dump(resolved, sort_keys=False)
    )


def write_sample_files(folder: Path, m: Measurement, draws: torch.Tensor, metrics: dict[str, Any]) -> None:
    """``mean.png`` (the posterior-mean estimate), ``std.png`` (per-pixel posterior standard
    deviation, colour bar in [0, 1] units) and their metrics: ``samples``, ``std_mean`` (over pixels
    and channels), ``std_max`` (the top of the colour bar: the largest channel-averaged pixel std),
    and PSNR / SSIM of the mean when there is a ground truth."""
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
    return __version__


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
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
