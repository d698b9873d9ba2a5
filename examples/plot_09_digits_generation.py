"""
Generating digits: unconditional and guided sampling
====================================================

pnpdiff ships a small class-conditional diffusion model, ``prior="digits"``: a UNet trained by
denoising score matching (EDM preconditioning, Karras et al., NeurIPS 2022) on 1,500 of
scikit-learn's handwritten digits upsampled to 16x16, with label dropout so that the same
network is also the unconditional model. :func:`pnpdiff.sample` draws images from it with the
DDIM, DDPM, Euler or Heun samplers, optionally of a class: with the class label alone, with
classifier-free guidance (Ho and Salimans, "Classifier-Free Diffusion Guidance", 2021), or with
classifier guidance from a noise-conditional classifier (Dhariwal and Nichol, "Diffusion Models
Beat GANs on Image Synthesis", NeurIPS 2021), also shipped (``classifier="digits"``).
"""

# %%
# Unconditional samples
# ---------------------
# 25 DDIM steps on Karras et al.'s noise schedule; ``seed`` fixes the starting noise.

import time

import matplotlib.pyplot as plt
import torch

import pnpdiff


def grid(ax, images, rows, title):
    """Tile ``(n, 1, h, w)`` images into ``rows`` rows with 1-pixel grey gaps."""
    n, _, h, w = images.shape
    cols = n // rows
    tiles = torch.full((rows * (h + 1) - 1, cols * (w + 1) - 1), 0.5)
    for i in range(rows * cols):
        r, c = divmod(i, cols)
        tiles[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = images[i, 0]
    ax.imshow(tiles.numpy(), cmap="gray", vmin=0, vmax=1)
    ax.set_title(title, fontsize=10)
    ax.axis("off")


t0 = time.perf_counter()
free = pnpdiff.sample("digits", 32, method="ddim", steps=25, seed=0)
print(f"unconditional: {tuple(free.shape)} in {time.perf_counter() - t0:.1f} s")

# %%
# One column per class, with classifier-free guidance
# ---------------------------------------------------
# ``label`` gives the class of every sample (one value, or one per sample) and ``cfg`` the
# guidance weight ``w``: the sampler uses ``(1 + w) D(x, c) - w D(x)``, two network calls per
# step. ``w = 2`` trades some diversity for samples that are clearly of their class.

labels = torch.arange(10).repeat(4).tolist()  # 0, 1, ..., 9, 0, 1, ...: 4 samples of each class
t0 = time.perf_counter()
guided = pnpdiff.sample("digits", len(labels), label=labels, cfg=2.0, method="ddim", steps=25, seed=0)
print(f"classifier-free guidance, w = 2: {tuple(guided.shape)} in {time.perf_counter() - t0:.1f} s")

fig, axes = plt.subplots(1, 2, figsize=(11, 2.8), layout="constrained", gridspec_kw={"width_ratios": [8, 10]})
grid(axes[0], free, rows=4, title="unconditional (DDIM, 25 steps)")
grid(axes[1], guided, rows=4, title="label = column, cfg w = 2 (DDIM, 25 steps)")
plt.show()

# %%
# The guidance weight
# -------------------
# The same starting noise (same ``seed``) for one class, ``label=4``, at increasing ``w``, and
# with classifier guidance on the unconditional model instead (``classifier="digits"``, scale
# ``s = 4``: the sampler adds ``s sigma^2 grad log p(c | x, sigma)`` to the denoiser). As ``w``
# grows the strokes get a little thicker (the mean pixel value rises) and the shapes more
# prototypical; with six samples the spread between them hardly changes.

rows = {}
for w in (0.0, 1.0, 4.0):
    rows[f"cfg w = {w:g}"] = pnpdiff.sample("digits", 6, label=4, cfg=w, method="ddim", steps=25, seed=1)
t0 = time.perf_counter()
rows["classifier, s = 4"] = pnpdiff.sample("digits", 6, label=4, classifier="digits", classifier_scale=4.0,
                                           method="ddim", steps=25, seed=1)
print(f"classifier guidance: {time.perf_counter() - t0:.1f} s (a backward pass through the classifier per step)")
for name, x in rows.items():
    print(f"{name:18s} mean pixel {float(x.mean()):.3f}, spread between samples {float(x.std(0).mean()):.3f}")

fig, axes = plt.subplots(len(rows), 1, figsize=(6, 4.6), layout="constrained")
for ax, (name, x) in zip(axes, rows.items()):
    grid(ax, x, rows=1, title=name)
plt.show()

# %%
# The shipped model and how it scores (a judge independent of pnpdiff agrees with the requested
# class for 97 % of the samples at ``w = 0`` and 100 % at ``w >= 1``) are described in
# ``docs/digits.md``. More steps (50 is the recipe default) or the second-order ``method="heun"``
# give slightly cleaner samples; 25 keeps this example fast.
