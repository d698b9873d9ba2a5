"""The solve step of a restoration run: a recipe's settings handed to :func:`pnpdiff.solve` (or, with
``samples:``, to :func:`pnpdiff.sample_posterior`), shared by single-image and batch runs."""

from __future__ import annotations

import time
from typing import Any

import torch

from pnpdiff.api import default_steps, solve, task_of
from pnpdiff.config.restore import Recipe
from pnpdiff.posterior import sample_posterior


class Frames:
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
            prior: Any, steps: int | None, device: str | None, progress: bool, noise: Any = None
            ) -> tuple[torch.Tensor, Frames | None, float, dict[str, Any]]:
    """Run the recipe's solver on ``y`` (one image or a batch); return the restored images on the
    CPU, the intermediate frames (when the recipe asks for them), the seconds taken and what ran
    (:func:`ran`). Without ``method:`` the rule of :mod:`pnpdiff.problem` chooses (``solve``'s
    default). ``noise``: a Poisson(-Gaussian) model (``sigma_y`` is then only its matched level)."""
    frames = Frames() if recipe.intermediates else None
    options = dict(recipe.options)
    if frames is not None:
        options["callback"] = frames
    t0 = time.perf_counter()
    if noise is not None:
        options["noise"], sigma_y = noise, None
    x_hat, info = solve(y, op, prior=prior, method=recipe.method, steps=steps, sigma_y=sigma_y, seed=seed,
                        device=device, progress=progress, max_memory=recipe.max_memory, precision=recipe.precision,
                        compile=recipe.compile, calibrate=recipe.calibrate, return_info=True, **options)
    return x_hat.cpu(), frames, time.perf_counter() - t0, ran(info)


def ran(info: dict[str, Any]) -> dict[str, Any]:
    """What ``metrics.json`` records of a solve's info: the method and steps that ran, why (the
    rule, when the recipe names no method) and the calibration's choice."""
    out: dict[str, Any] = {"method": info["method"], "steps": int(info["steps"])}
    if info.get("rule"):
        out["method_rule"] = info["rule"]
    cal = info.get("calibration")
    if cal:
        out["calibration"] = cal
    out["denoiser_calls"] = int(info.get("denoiser_calls", 0))
    if info.get("noise"):
        out["noise_model"] = info["noise"]
    if info.get("stabilised"):
        out["stabilised"] = info["stabilised"]
    if info.get("kernel"):  # a BlindBlur's estimate: its summary here, its values for kernel.npy / kernel.png
        k = dict(info["kernel"])
        out["kernel_values"] = k.pop("kernel")
        out["kernel"] = k
    return out


def draw_samples(recipe: Recipe, y: torch.Tensor, op: Any, sigma_y: float, seed: int, *, prior: Any,
                 steps: int | None, device: str | None, progress: bool) -> tuple[torch.Tensor, float]:
    """``recipe.samples`` posterior samples of one image (``pnpdiff.sample_posterior``), ``(n, 1, C,
    H, W)`` on the CPU, and the seconds taken."""
    t0 = time.perf_counter()
    out = sample_posterior(y, op, prior, n=recipe.samples, method=recipe.resolved_method, sigma_y=sigma_y, seed=seed,
                           steps=steps, device=device, progress=progress, max_memory=recipe.max_memory,
                           precision=recipe.precision, compile=recipe.compile, **recipe.options)
    return out.cpu(), time.perf_counter() - t0


def run_settings(recipe: Recipe, steps: int | None) -> dict[str, Any]:
    """What every image of a run shares, as recorded in ``metrics.json``."""
    task = task_of(str(recipe.operator["name"]))
    n = steps if steps is not None else recipe.steps
    if recipe.method is None and not recipe.samples:  # the rule chooses per image (pnpdiff.problem)
        return {"task": recipe.task if recipe.task is not None else task, "method": "auto", "prior": recipe.prior_name,
                "operator": recipe.operator, "steps": None if n is None else int(n)}
    method = recipe.resolved_method
    return {
        "task": recipe.task if recipe.task is not None else task,
        "method": method,
        "prior": recipe.prior_name,
        "operator": recipe.operator,
        "steps": int(n if n is not None else default_steps(recipe.prior_name, task, method)),
    }
