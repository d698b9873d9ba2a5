"""Running a restoration recipe of one image (:func:`run_recipe`; a folder or glob goes to
:func:`pnpdiff.runs.batch.run_batch`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from pnpdiff.api import check_solve_memory, resolve_device
from pnpdiff.config.restore import Recipe
from pnpdiff.errors import PnPError
from pnpdiff.outputs import OutputFolder
from pnpdiff.priors import load_prior
from pnpdiff.runs.batch import run_batch
from pnpdiff.runs.distributed import world_size
from pnpdiff.runs.measure import measure, measurement_shapes
from pnpdiff.runs.report import output_names, write_image_files, write_run_files, write_sample_files
from pnpdiff.runs.solve import draw_samples, restore, run_settings


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
    :func:`pnpdiff.runs.batch.run_batch`.

    The output folder is checked first (before any image or prior is loaded), then the memory
    the solve needs (before the image is decoded); an interrupted run leaves the folder as it was.
    ``output`` (relative to the current directory) replaces the recipe's folder; ``overwrite``
    allows writing into an existing folder that holds other files (never replacing them).
    """
    if recipe.is_batch:
        return run_batch(recipe, output=output, steps=steps, device=device, progress=progress, overwrite=overwrite)
    if world_size() > 1:
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
    spec = recipe.input_spec
    x_shape, y_shape = measurement_shapes(recipe, spec)
    prior = load_prior(recipe.prior)
    dev = resolve_device(dev_spec, torch.empty(0))
    check_solve_memory(x_shape, y_shape, prior, recipe.resolved_method, dev, torch.float32, recipe.max_memory)

    m = measure(recipe, spec, recipe.noise_seed)
    n_steps = steps if steps is not None else recipe.steps
    draws = None
    if recipe.samples:  # restored.png is the first posterior sample; mean.png and std.png summarise all
        draws, seconds = draw_samples(recipe, m.y, m.operator, m.sigma_y, recipe.seed, prior=prior, steps=n_steps,
                                      device=dev_spec, progress=progress)
        x_hat, frames = draws[0], None
    else:
        x_hat, frames, seconds, what = restore(recipe, m.y, m.operator, m.sigma_y, recipe.seed, prior=prior,
                                               steps=n_steps, device=dev_spec, progress=progress, noise=m.noise)
    metrics: dict[str, Any] = {
        **run_settings(recipe, steps),
        **({} if recipe.samples else what),
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
