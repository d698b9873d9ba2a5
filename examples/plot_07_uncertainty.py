"""
Uncertainty maps from posterior samples
=======================================

A restoration is one guess; :func:`pnpdiff.sample_posterior` draws many. Their per-pixel mean is
an estimate of the posterior mean ``E[x | y]`` and their per-pixel standard deviation shows
*where* the measurement leaves the image undetermined. This example draws 8 samples for a photo
with 80 % of its pixels missing (``natural`` FFDNet prior) and 12 samples for held-out
handwritten digits whose lower half is missing (the shipped ``digits`` diffusion prior), with
DiffPIR (Zhu et al., CVPR-W 2023) run once per seed.

The samples of DiffPIR (and of DDRM, DPS, ...) are *approximate*: their spread is the method's,
not necessarily the posterior's (the Gaussian-mixture example measures how far off it is). The
exact-in-the-limit sampler ``method="smc"`` (MCGdiff, Cardoso et al., ICLR 2024), the default of
``sample_posterior`` only for small problems (at most 100 values per measurement) with a spectral
view, costs ``particles`` denoiser calls per step and needs far more particles than a CPU example
can afford on images.
"""

# %%
# A photo with 80 % of its pixels missing
# ---------------------------------------

import matplotlib.pyplot as plt
import torch
from skimage import data
from skimage.transform import resize

import pnpdiff
from pnpdiff.datasets import digits
from pnpdiff.metrics import psnr
from pnpdiff.operators import Inpaint, box_mask, random_mask

photo = resize(data.astronaut()[0:256, 96:352], (80, 80), anti_aliasing=True)
x = torch.from_numpy(photo).permute(2, 0, 1)[None].float()
sigma_y = 0.01
op = Inpaint(random_mask((3, 80, 80), p_missing=0.8, seed=0))
y = op(x + sigma_y * torch.randn(x.shape, generator=torch.Generator().manual_seed(0)))

# %%
# Eight independent DiffPIR runs, batched into one call (each with its own seed derived from
# ``seed=0``). 20 steps for speed; the inpainting default is 50.

samples = pnpdiff.sample_posterior(y, op, n=8, method="diffpir", steps=20, sigma_y=sigma_y, seed=0,
                                   progress=False)
print("samples", tuple(samples.shape))  # (n, 1, 3, 80, 80): n samples of the (1, 3, 80, 80) image
mean, std = samples.mean(0), samples.std(0)
p_one = [float(psnr(s, x)) for s in samples]
print(f"one sample: {min(p_one):.2f} to {max(p_one):.2f} dB; mean of 8: {float(psnr(mean, x)):.2f} dB")

fig, axes = plt.subplots(1, 5, figsize=(12, 2.8), layout="constrained")
panels = [(y, f"observed (20 %)\n{float(psnr(y, x)):.2f} dB"), (samples[0], f"one sample\n{p_one[0]:.2f} dB"),
          (mean, f"mean of 8 samples\n{float(psnr(mean, x)):.2f} dB"), (x, "ground truth")]
for ax, (img, title) in zip(axes, panels):
    ax.imshow(img[0].permute(1, 2, 0).clamp(0, 1).numpy())
    ax.set_title(title, fontsize=9)
    ax.axis("off")
im = axes[4].imshow(std[0].mean(0).numpy(), cmap="viridis")
axes[4].set_title("per-pixel std\n(mean over channels)", fontsize=9)
axes[4].axis("off")
fig.colorbar(im, ax=axes[4], shrink=0.8)
plt.show()

# %%
# The mean of the samples scores higher than any one of them (it averages out their
# independent errors, as the posterior mean should), and the standard deviation is largest on
# edges and texture -- the hair, the eyes and mouth, the collar -- where the missing pixels could take
# several values, and small on flat regions that the observed 20 % pin down.
#
# Digits with their lower half missing
# ------------------------------------
# With a generative prior the uncertainty becomes visible in the samples themselves: the top
# half of a digit can be completed in several ways (a 6 or a 5, an 8 or a 9). Held-out
# digits (never seen in training) come from ``pnpdiff.datasets.digits("heldout")``.

xd, labels = digits("heldout")
xd = xd[[3, 11, 20]]
mask = box_mask((1, 16, 16), box_size=(8, 16), position=(8, 0))  # rows 8..15 missing
op_d = Inpaint(mask)
y_d = op_d(xd + 0.02 * torch.randn(xd.shape, generator=torch.Generator().manual_seed(1)))
samples_d = pnpdiff.sample_posterior(y_d, op_d, prior="digits", n=12, method="diffpir", steps=30,
                                     sigma_y=0.02, seed=0, progress=False)
print("digit samples", tuple(samples_d.shape), "true labels", labels[[3, 11, 20]].tolist())

fig, axes = plt.subplots(3, 9, figsize=(11, 4.2), layout="constrained")
for r in range(3):
    axes[r, 0].imshow(y_d[r, 0], cmap="gray", vmin=0, vmax=1)
    axes[r, 0].set_title("observed" if r == 0 else "", fontsize=9)
    for k in range(6):
        axes[r, 1 + k].imshow(samples_d[k, r, 0], cmap="gray", vmin=0, vmax=1)
        if r == 0:
            axes[r, 1 + k].set_title(f"sample {k + 1}", fontsize=9)
    im = axes[r, 7].imshow(samples_d[:, r, 0].std(0), cmap="viridis", vmin=0, vmax=0.5)
    axes[r, 8].imshow(xd[r, 0], cmap="gray", vmin=0, vmax=1)
    if r == 0:
        axes[r, 7].set_title("std of 12", fontsize=9)
        axes[r, 8].set_title("ground truth", fontsize=9)
for ax in axes.ravel():
    ax.axis("off")
fig.colorbar(im, ax=axes[:, 7], shrink=0.6)
plt.show()

# %%
# The standard deviation is zero where the digit was observed and concentrates where the
# completions disagree. For calibrated uncertainty on small problems use ``method="smc"`` with
# many particles (``particles=1000`` or more); ``docs/posterior.md`` measures how close each
# method's samples come to an exact posterior.
