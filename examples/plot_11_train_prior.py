"""
Training a tiny diffusion prior
===============================

:func:`pnpdiff.train` trains a diffusion prior by denoising score matching (Ho et al., NeurIPS
2020; with the preconditioning and log-normal noise levels of Karras et al., "Elucidating the
Design Space of Diffusion-Based Generative Models", NeurIPS 2022) and label dropout for
classifier-free guidance (Ho and Salimans 2021). The result is an ordinary pnpdiff prior: it
samples with :func:`pnpdiff.sample` and restores with :func:`pnpdiff.solve`.

This example trains a deliberately tiny model (about 150,000 parameters) for 120 steps on the
built-in digits at their native 8x8 resolution, in a few seconds on one CPU core. The shipped
``digits`` prior was made the same way with ``recipes/train_digits.yaml``: 6,000 steps of a
700,000-parameter UNet on 16x16 digits, 26 minutes on a CPU (``docs/digits.md``).
"""

# %%
# Train
# -----
# Every setting of ``recipes/train_digits.yaml`` is a keyword argument (or pass the recipe's
# path). The output folder receives ``prior.pt`` (the EMA weights and a model card),
# ``checkpoint.pt`` (to resume with ``resume=True``), ``model_card.yaml`` and
# ``train_log.csv``; here it is a temporary folder.

import csv
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch

import pnpdiff
from pnpdiff.datasets import digits
from pnpdiff.metrics import psnr
from pnpdiff.operators import Identity

torch.manual_seed(0)
workdir = tempfile.TemporaryDirectory()
out = Path(workdir.name) / "tiny_digits"

t0 = time.perf_counter()
prior = pnpdiff.train(
    data="digits",  # the first 1,500 of scikit-learn's digits, with their labels
    size=8,  # the native resolution (the shipped prior uses 16)
    model={"base": 16, "mult": [1, 2], "blocks": 1, "attention": False, "emb": 32},
    steps=120,  # the shipped prior: 6000
    batch_size=32,
    lr=3e-3,
    warmup=20,
    ema=0.98,  # a short average for a short run (the recipe: 0.999)
    sample_every=0,  # no sample grids during training
    checkpoint_every=120,
    log_every=10,
    seed=0,
    output=str(out),
)
seconds = time.perf_counter() - t0
n_params = sum(p.numel() for p in prior.parameters())
print(f"trained {n_params:,} parameters in {seconds:.1f} s; files: {sorted(f.name for f in out.iterdir())}")

# %%
# The loss
# --------
# ``train_log.csv`` holds the mean loss (EDM-weighted squared error of the denoiser) since the
# previous row.

with open(out / "train_log.csv") as f:
    log = list(csv.DictReader(f))
steps = [int(r["step"]) for r in log]
loss = [float(r["loss"]) for r in log]
print(f"loss {loss[0]:.3f} at step {steps[0]} -> {loss[-1]:.3f} at step {steps[-1]}")

# %%
# Sample from it
# --------------
# Four samples of each class with classifier-free guidance ``w = 1``, next to real training
# digits. After 120 steps many classes are recognisable, all are ragged; the loss is still falling.

labels = torch.arange(10).repeat(4).tolist()
x = pnpdiff.sample(prior, len(labels), label=labels, cfg=1.0, method="ddim", steps=25, seed=0)
real, real_labels = digits("train", size=8)
real = torch.stack([real[real_labels == k][i] for i in range(4) for k in range(10)])


def tiles(images, rows):
    n, _, h, w = images.shape
    cols = n // rows
    canvas = torch.full((rows * (h + 1) - 1, cols * (w + 1) - 1), 0.5)
    for i in range(n):
        r, c = divmod(i, cols)
        canvas[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = images[i, 0]
    return canvas.numpy()


fig, axes = plt.subplots(1, 3, figsize=(12, 2.8), layout="constrained", gridspec_kw={"width_ratios": [3, 4, 4]})
axes[0].plot(steps, loss)
axes[0].set_xlabel("training step")
axes[0].set_ylabel("loss")
axes[0].set_title(f"{n_params:,} parameters, {seconds:.0f} s", fontsize=10)
axes[1].imshow(tiles(x, 4), cmap="gray", vmin=0, vmax=1)
axes[1].set_title("samples after 120 steps (label = column, cfg 1)", fontsize=10)
axes[2].imshow(tiles(real, 4), cmap="gray", vmin=0, vmax=1)
axes[2].set_title("training digits (8x8)", fontsize=10)
for ax in axes[1:]:
    ax.axis("off")
plt.show()

# %%
# Use it as a prior for restoration
# ---------------------------------
# The trained file loads anywhere with ``prior="trained:/path/to/prior.pt"`` (or
# :func:`pnpdiff.load_prior`). As a denoiser it restores held-out digits (never seen in
# training) with one call at the noise level; even this short run is a useful denoiser, since
# denoising is what it was trained for.

loaded = pnpdiff.load_prior(f"trained:{out / 'prior.pt'}")
clean, _ = digits("heldout", size=8)
clean = clean[:40]
noisy = clean + 0.2 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
restored = pnpdiff.solve(noisy, Identity(), prior=loaded, sigma_y=0.2, progress=False)
p_noisy, p_restored = float(psnr(noisy, clean).mean()), float(psnr(restored, clean).mean())
print(f"held-out digits, sigma 0.2: noisy {p_noisy:.2f} dB -> {p_restored:.2f} dB (mean over 40)")

fig, axes = plt.subplots(3, 1, figsize=(8, 3.6), layout="constrained")
for ax, img, title in zip(axes, (noisy.clamp(0, 1), restored, clean),
                          (f"noisy, {p_noisy:.2f} dB", f"denoised by the tiny prior, {p_restored:.2f} dB",
                           "held-out digits")):
    ax.imshow(tiles(img, 2), cmap="gray", vmin=0, vmax=1)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
plt.show()

workdir.cleanup()

# %%
# For a real prior, train for thousands of steps (``steps=6000``; ``resume=True`` continues an
# interrupted run bit for bit), with ``python -m pnpdiff train recipes/train_digits.yaml
# data=my_images/ size=32 output=runs/mine`` for your own images (sub-folders become classes).
