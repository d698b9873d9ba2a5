"""Training a prior (``pnpdiff train``) and a noise-conditional classifier (``pnpdiff train-classifier``).

The prior is trained by denoising score matching (Ho et al. 2020, Algorithm 1; Karras et al.
2022, Sec. 5): draw a clean image ``x0``, a noise level ``sigma`` and ``n ~ N(0, I)``, and regress
the denoiser ``D(x0 + sigma n, sigma)`` onto ``x0`` with a sigma-dependent weight ``lambda``:

* ``prediction: edm`` -- EDM's preconditioned ``F`` (see :mod:`pnpdiff.priors.trained`),
  ``lambda = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2`` (unit-variance target);
* ``prediction: x0`` -- ``lambda = 1 / sigma_data^2``;
* ``prediction: eps`` -- ``lambda = 1 / sigma^2``, i.e. DDPM's ``||eps - eps_theta||^2``.

Noise levels: ``sigma_sampling: edm`` draws ``ln(2 sigma) ~ N(-1.2, 1.2^2)`` (EDM's log-normal,
in [-1, 1] units, halved into pnpdiff's); ``sigma_sampling: ddpm`` draws ``t`` uniformly from
1..1000 on DDPM's linear beta table and uses its ``sigma_t = sqrt((1 - abar_t) / abar_t) / 2``.
Both are clipped to ``[sigma_min, sigma_max]``. Class labels (when the data have them) are
replaced by the null label with probability ``label_dropout`` (classifier-free guidance, Ho and
Salimans 2021). AdamW with a linear warm-up, gradient clipping, an exponential moving average of
the weights (what the prior uses), bfloat16 autocast on CUDA (``amp``), seeded and reproducible:
the data order, labels dropped, noise levels and noise all come from one CPU generator whose
state is saved in every checkpoint, so a resumed run ends with the same weights as an
uninterrupted one.

Output folder (every file recorded in pnpdiff's manifest; a user's file is never replaced)::

    OUTPUT/prior.pt          the EMA network and its model card: load_prior("trained:OUTPUT/prior.pt")
    OUTPUT/model_card.yaml   the card, for people
    OUTPUT/checkpoint.pt     everything needed to resume (weights, EMA, optimiser, generator, step)
    OUTPUT/train_log.csv     step, loss (mean since the last row), learning rate, seconds
    OUTPUT/samples-STEP.png  a grid of samples every ``sample_every`` steps (one row per class)
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

__all__ = ["SIGMA_SAMPLINGS", "MAX_TRAIN_STEPS", "draw_sigma", "loss_weight"]

SIGMA_SAMPLINGS = ("edm", "ddpm")

#: the most optimiser steps (and ``warmup``, ``*_every``) a training recipe accepts
MAX_TRAIN_STEPS = 10**9

TRAIN_FORMAT = "pnpdiff-train/1"


# ---------------------------------------------------------------------- pieces
def ddpm_sigmas() -> Tensor:
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    abar = torch.cumprod(1 - betas, 0)
    return ((1 - abar) / abar).sqrt() / 2  # pnpdiff units: half the [-1, 1] sigma


def draw_sigma(cfg: Any, n: int, gen: torch.Generator) -> Tensor:
    """Noise levels of one batch (see the module docstring).

    Parameters
    ----------
    cfg : TrainConfig
        The run's settings: ``sigma_sampling``, ``sigma_min``, ``sigma_max``.
    n : int
        The batch size.
    gen : torch.Generator
        The run's CPU generator.

    Returns
    -------
    Tensor
        ``(n,)`` float32 noise levels on the CPU, in ``[sigma_min, sigma_max]``.
    """
    if cfg.sigma_sampling == "edm":
        s = torch.exp(-1.2 + 1.2 * torch.randn(n, generator=gen, dtype=torch.float64)) / 2
    else:
        s = ddpm_sigmas()[torch.randint(0, 1000, (n,), generator=gen)]
    return s.clamp(cfg.sigma_min, cfg.sigma_max).float()


def loss_weight(prediction: str, sigma: Tensor, sigma_data: float) -> Tensor:
    """``lambda(sigma)`` of the denoising loss ``lambda ||D - x0||^2`` for each parameterisation.

    Parameters
    ----------
    prediction : str
        ``"edm"``, ``"x0"`` or ``"eps"``.
    sigma : Tensor
        The noise levels.
    sigma_data : float
        The standard deviation of the data.

    Returns
    -------
    Tensor
        The weights, shaped like ``sigma``.
    """
    if prediction == "edm":
        return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2
    if prediction == "x0":
        return torch.full_like(sigma, 1 / sigma_data**2)
    return 1 / sigma**2


def train_device(cfg: Any) -> torch.device:
    from pnpdiff.api import resolve_device as resolve

    return resolve(cfg.device, torch.zeros(()))


def autocast(cfg: Any, device: torch.device):  # noqa: ANN202
    if cfg.amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    import contextlib

    return contextlib.nullcontext()


def ema_update(ema: torch.nn.Module, net: torch.nn.Module, decay: float, step: int) -> None:
    d = min(decay, (1 + step) / (10 + step))  # warm-up of the average (as in common DDPM code)
    with torch.no_grad():
        for pe, p in zip(ema.parameters(), net.parameters()):
            pe.lerp_(p.detach(), 1 - d)
        for be, b in zip(ema.buffers(), net.buffers()):
            be.copy_(b)


def grid(x: Tensor, rows: int) -> Tensor:
    """``(N, C, H, W)`` -> one ``(C, rows (H + 1) - 1, cols (W + 1) - 1)`` image with 1-px white gaps."""
    n, c, h, w = x.shape
    cols = math.ceil(n / rows)
    out = torch.ones(c, rows * (h + 1) - 1, cols * (w + 1) - 1)
    for i in range(n):
        r, k = divmod(i, cols)
        out[:, r * (h + 1):r * (h + 1) + h, k * (w + 1):k * (w + 1) + w] = x[i].float().cpu()
    return out
