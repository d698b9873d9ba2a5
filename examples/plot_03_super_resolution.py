"""
4x super-resolution: DiffPIR and DDRM
=====================================

Recover a 128x128 image from a 32x32 measurement: bicubic antialiasing then 4x decimation
(:class:`~pnpdiff.operators.Downsample`), plus noise ``sigma_y = 0.025``. Two ways of using the
same ``natural`` FFDNet prior are compared: DiffPIR (Zhu et al., CVPR-W 2023), whose data step is
the operator's exact closed-form proximal map (the polyphase formula of Zhao et al. 2016), and
DDRM (Kawar et al., "Denoising Diffusion Restoration Models", NeurIPS 2022), which works in the
operator's spectral (SVD) domain. Bicubic interpolation is the classical reference.
"""

# %%
# The measurement
# ---------------

import time

import matplotlib.pyplot as plt
import torch
from skimage import data
from skimage.transform import resize

import pnpdiff
from pnpdiff.baselines import bicubic_upsample
from pnpdiff.metrics import psnr
from pnpdiff.operators import Downsample

photo = resize(data.coffee()[0:400, 100:500], (128, 128), anti_aliasing=True)
x = torch.from_numpy(photo).permute(2, 0, 1)[None].float()

sigma_y = 0.025
down = Downsample(4)  # bicubic filter, circular boundary, exact SVD for separable filters
y = down(x) + sigma_y * torch.randn(down(x).shape, generator=torch.Generator().manual_seed(0))
print("measurement", tuple(y.shape), "-> image", tuple(down.adjoint(y).shape))

# %%
# Restore
# -------
# ``solve`` infers the size of the image from the operator (``A^T y``). DiffPIR runs its tuned
# defaults for the ``natural`` prior (20 steps); DDRM is given the same 20 steps (its generic
# default is 50).

results, seconds = {"bicubic": bicubic_upsample(y.clamp(0, 1), 4)}, {"bicubic": 0.0}
for method in ("ddrm", "diffpir"):
    t0 = time.perf_counter()
    results[method] = pnpdiff.solve(y, down, method=method, steps=20, sigma_y=sigma_y, seed=0, progress=False)
    seconds[method] = time.perf_counter() - t0
scores = {name: float(psnr(img, x)) for name, img in results.items()}
for name in results:
    print(f"{name}: {scores[name]:.2f} dB in {seconds[name]:.1f} s")


def show(ax, img, title):
    ax.imshow(img[0].permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.axis("off")


fig, axes = plt.subplots(1, 5, figsize=(12, 2.9), layout="constrained")
show(axes[0], y, "observed (32x32)")
names = {"bicubic": "bicubic", "ddrm": "DDRM, 20 steps", "diffpir": "DiffPIR, 20 steps"}
for ax, (name, img) in zip(axes[1:4], results.items()):
    extra = f", {seconds[name]:.1f} s" if seconds[name] else ""
    show(ax, img, f"{names[name]}\n{scores[name]:.2f} dB{extra}")
show(axes[4], x, "ground truth (128x128)")
plt.show()

# %%
# Notes
# -----
# The same call works for any factor whose image sizes are multiples of it
# (``Downsample(2)``, ``Downsample(8)``) and for other antialiasing filters
# (``filter="box"`` is DDRM's and DDNM's ``sr4`` setting). Only a few steps are used here for
# speed; at 256x256 the defaults give DiffPIR +0.2 dB over DPIR and +1.6 dB over bicubic on
# average over five photos (``docs/quality.md``). With a full-range diffusion prior
# (``prior="ffhq"``) DDRM's paper setting is 20 steps and DiffPIR's 100.
