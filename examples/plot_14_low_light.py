"""
A low-light photo: Poisson noise
================================

A camera counts photons: in a dark scene a pixel that would be white collects only a few, and
the count is Poisson-distributed -- its variance grows with the brightness, unlike the Gaussian
noise of level ``sigma_y`` that the solvers assume by default. ``pnpdiff.solve(...,
noise={"model": "poisson", "peak": 10})`` says so (``peak``: the photons at white). For
denoising, the default then runs the generalised Anscombe transform, which makes the noise
Gaussian of unit variance, one FFDNet call, and the transform's exact unbiased inverse
(Makitalo and Foi, IEEE TIP 2011 and 2013). The splitting solvers (``dpir``, ``diffpir``) can
also use the Poisson likelihood itself, through the prox of its negative log-likelihood; and
when the numbers are unknown, ``noise="poisson-gaussian"`` estimates the gain and the read noise
from the photo (Foi et al., IEEE TIP 2008).
"""

# %%
# Two light levels
# ----------------

import matplotlib.pyplot as plt
import torch
from skimage import data
from skimage.transform import resize

import pnpdiff
from pnpdiff.metrics import psnr
from pnpdiff.noise import NoiseModel
from pnpdiff.operators import Identity

photo = resize(data.astronaut()[0:384, 64:448], (128, 128), anti_aliasing=True)
x = torch.from_numpy(photo).permute(2, 0, 1)[None].float()

rows = []
for k, peak in enumerate((8, 30)):
    model = NoiseModel("poisson", 0.0, 1 / peak)
    y = model.sample(x, torch.Generator().manual_seed(k))  # photon counts / peak
    vst = pnpdiff.solve(y, Identity(), noise=model, progress=False)  # Anscombe, one call, exact inverse
    hqs = pnpdiff.solve(y, Identity(), method="dpir", noise=model, progress=False)  # the Poisson prox
    rows.append((peak, y, vst, hqs))
    print(f"peak {peak:3d}: noisy {float(psnr(y.clamp(0, 1), x)):.2f} dB, Anscombe + FFDNet "
          f"{float(psnr(vst, x)):.2f} dB, HQS with the Poisson likelihood {float(psnr(hqs, x)):.2f} dB")


def show(ax, img, title):
    ax.imshow(img[0].permute(1, 2, 0).clamp(0, 1).numpy(), vmin=0, vmax=1)
    ax.set_title(title, fontsize=9)
    ax.axis("off")


fig, axes = plt.subplots(2, 3, figsize=(8, 5.8), layout="constrained")
for i, (peak, y, vst, hqs) in enumerate(rows):
    show(axes[i, 0], y, f"{peak} photons at white\n{float(psnr(y.clamp(0, 1), x)):.2f} dB")
    show(axes[i, 1], vst, f"default (Anscombe)\n{float(psnr(vst, x)):.2f} dB")
    show(axes[i, 2], hqs, f"dpir, Poisson prox\n{float(psnr(hqs, x)):.2f} dB")
plt.show()

# %%
# Unknown numbers: estimated from the photo
# -----------------------------------------
# A raw frame has shot noise and read noise, ``y = gain * Poisson(x / gain) + N(0, sigma^2)``.
# Without numbers, ``noise="poisson-gaussian"`` fits the local variance of ``y`` against its
# local mean (a straight line: slope ``gain``, intercept ``sigma^2``) and restores with the fit;
# ``return_info=True`` says what it found.

model = NoiseModel("poisson-gaussian", 0.02, 1 / 30)
y = model.sample(x, torch.Generator().manual_seed(2))
x_hat, info = pnpdiff.solve(y, Identity(), noise="poisson-gaussian", progress=False, return_info=True)
print(f"true gain {model.gain:.4f}, read noise {model.sigma:.3f}; estimated {info['noise']}")
print(f"noisy {float(psnr(y.clamp(0, 1), x)):.2f} dB -> {float(psnr(x_hat, x)):.2f} dB")
