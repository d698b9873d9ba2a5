"""
Comparing the solvers on one task
=================================

Every solver of pnpdiff combines the same two ingredients, the ``natural`` FFDNet denoiser and
the operator, in its own way. This example runs seven of them on one Gaussian deblurring
problem with :func:`pnpdiff.solve`'s ``method=`` argument and shows each result with its PSNR
and its time:

* ``diffpir`` -- DiffPIR (Zhu et al., CVPR-W 2023): denoise, closed-form data proximal step,
  re-noise;
* ``dpir`` -- DPIR (Zhang et al., TPAMI 2021): half-quadratic splitting, 8 iterations;
* ``ddrm`` -- DDRM (Kawar et al., NeurIPS 2022): a sampler in the operator's SVD domain;
* ``ddnm+`` -- DDNM+ (Wang et al., "Zero-Shot Image Restoration Using Denoising Diffusion Null-Space
  Model", ICLR 2023): range-null-space decomposition, with its noisy-measurement correction;
* ``pigdm`` -- PiGDM (Song et al., "Pseudoinverse-Guided Diffusion Models for Inverse Problems",
  ICLR 2023);
* ``dps`` -- DPS (Chung et al., "Diffusion Posterior Sampling for General Noisy Inverse Problems",
  ICLR 2023): a likelihood gradient through the denoiser (autograd);
* ``reddiff`` -- RED-diff (Mardani et al., "A Variational Perspective on Solving Inverse Problems
  with Diffusion Models", ICLR 2024): optimisation of the image with a denoiser regulariser.
"""

# %%
# The problem
# -----------
# An 80x80 crop of scikit-image's ``chelsea``, Gaussian blur of 1.5 pixels, noise
# ``sigma_y = 0.025``. Small, so that seven solvers run in seconds on a CPU.

import time

import matplotlib.pyplot as plt
import torch
from skimage import data
from skimage.transform import resize

import pnpdiff
from pnpdiff.metrics import psnr
from pnpdiff.operators import GaussianBlur

photo = resize(data.chelsea()[20:260, 100:340], (80, 80), anti_aliasing=True)
x = torch.from_numpy(photo).permute(2, 0, 1)[None].float()
sigma_y = 0.025
blur = GaussianBlur(1.5)
y = blur(x) + sigma_y * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))

# %%
# Run every solver
# ----------------
# Each method keeps its defaults for the ``natural`` prior (``pnpdiff.api.DEFAULTS``: e.g. DPS's
# step ``zeta = 10`` for deblurring, RED-diff's ``lam = 0.1``), except the number of steps: 20
# for all (8 for DPIR, its paper's count). The defaults of DPS, PiGDM, DDRM, DDNM+ and RED-diff
# are 50 steps; 20 keeps the example fast and is unfair to the gradient-based DPS and RED-diff,
# which take small steps and need many of them.

methods = {"dpir": 8, "diffpir": 20, "ddrm": 20, "ddnm+": 20, "pigdm": 20, "dps": 20, "reddiff": 20}
results = {}
print(f"observed {float(psnr(y.clamp(0, 1), x)):.2f} dB")
for method, steps in methods.items():
    t0 = time.perf_counter()
    out = pnpdiff.solve(y, blur, method=method, steps=steps, sigma_y=sigma_y, seed=0, progress=False)
    results[method] = (out, float(psnr(out, x)), time.perf_counter() - t0, steps)
    print(f"{method:8s} {steps:3d} steps  {results[method][1]:6.2f} dB  {results[method][2]:5.1f} s")


def show(ax, img, title):
    ax.imshow(img[0].permute(1, 2, 0).clamp(0, 1).numpy())
    ax.set_title(title, fontsize=9)
    ax.axis("off")


fig, axes = plt.subplots(3, 3, figsize=(8, 8.6), layout="constrained")
axes = axes.ravel()
show(axes[0], y, f"observed\n{float(psnr(y.clamp(0, 1), x)):.2f} dB")
for ax, (method, (out, score, seconds, steps)) in zip(axes[1:], results.items()):
    show(ax, out, f"{method}, {steps} steps\n{score:.2f} dB, {seconds:.1f} s")
show(axes[-1], x, "ground truth")
plt.show()

# %%
# Reading the grid
# ----------------
# The methods with an exact data step (DPIR, DiffPIR, DDRM, DDNM+) do well in few steps: each
# step solves the data term in closed form. DPS and RED-diff only follow a gradient of the data
# term and are far from converged after 20 steps (the measured 256x256 figures, with their 50
# default steps, are in ``docs/quality.md``); PiGDM's guidance is tuned for diffusion priors that
# cover the whole noise range, and with FFDNet's 75/255 it is the weakest here. None of this
# ranks the methods in general: it ranks them with *this* prior at *this* budget. With a full
# diffusion prior (``prior="ffhq"``) the papers' settings apply (e.g. DPS with 1000 steps).
# DDNM without the ``+`` assumes noise-free measurements and amplifies the noise of a blur: use
# ``ddnm+`` for noisy data (pnpdiff warns).
