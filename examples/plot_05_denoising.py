"""
Denoising: one call of the denoiser
===================================

For ``y = x + n`` (the :class:`~pnpdiff.operators.Identity` operator), :func:`pnpdiff.solve`
returns the prior's posterior mean, one call ``D(y, sigma_y)`` of the FFDNet denoiser
(Zhang, Zuo and Zhang, "FFDNet: Toward a Fast and Flexible Solution for CNN-Based Image
Denoising", TIP 2018): a prior in pnpdiff *is* an MMSE denoiser, and by Tweedie's formula its
output at the noise level of the measurement is ``E[x | y]``, the estimate of least expected
squared error. This example denoises a colour photo at three noise levels, compares the one
call with a 20-step DiffPIR run, and denoises a grey NumPy image whose noise level is estimated.
"""

# %%
# Three noise levels
# ------------------

import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from skimage import data
from skimage.transform import resize

import pnpdiff
from pnpdiff.metrics import psnr
from pnpdiff.operators import Identity

photo = resize(data.astronaut()[0:384, 64:448], (128, 128), anti_aliasing=True)
x = torch.from_numpy(photo).permute(2, 0, 1)[None].float()

levels = (15 / 255, 25 / 255, 50 / 255)
noisy, clean = [], []
for k, sigma_y in enumerate(levels):
    y = x + sigma_y * torch.randn(x.shape, generator=torch.Generator().manual_seed(k))
    noisy.append(y)
    clean.append(pnpdiff.solve(y, Identity(), sigma_y=sigma_y, progress=False))  # method "mmse"
    print(f"sigma_y = {sigma_y * 255:.0f}/255: noisy {float(psnr(y, x)):.2f} dB -> "
          f"{float(psnr(clean[-1], x)):.2f} dB")


def show(ax, img, title, cmap=None):
    img = img[0].permute(1, 2, 0).clamp(0, 1).numpy() if torch.is_tensor(img) else img
    ax.imshow(img, cmap=cmap, vmin=0, vmax=1)
    ax.set_title(title, fontsize=9)
    ax.axis("off")


fig, axes = plt.subplots(2, 3, figsize=(8, 5.8), layout="constrained")
for j, sigma_y in enumerate(levels):
    show(axes[0, j], noisy[j], f"noisy, sigma = {sigma_y * 255:.0f}/255\n{float(psnr(noisy[j], x)):.2f} dB")
    show(axes[1, j], clean[j], f"denoised (1 call)\n{float(psnr(clean[j], x)):.2f} dB")
plt.show()

# %%
# One call against a diffusion solver
# -----------------------------------
# A solver such as DiffPIR starts at the prior's largest noise level (75/255 for FFDNet), far
# above ``sigma_y``, and has to remove the noise it added again; its result is a draw near the
# posterior rather than its mean. ``docs/denoising.md`` measures it on 5 photos x 4 noise levels:
# the one call is 1.2 to 6 dB better and 16 times faster. The same holds here, at 25/255:

y = noisy[1]
t0 = time.perf_counter()
one = pnpdiff.solve(y, Identity(), sigma_y=levels[1], progress=False)
t_one = time.perf_counter() - t0
t0 = time.perf_counter()
many = pnpdiff.solve(y, Identity(), sigma_y=levels[1], method="diffpir", steps=20, seed=0, progress=False)
t_many = time.perf_counter() - t0
print(f"mmse: {float(psnr(one, x)):.2f} dB in {t_one:.2f} s; diffpir, 20 steps: {float(psnr(many, x)):.2f} dB "
      f"in {t_many:.2f} s")

# %%
# A grey NumPy image, noise level unknown
# ---------------------------------------
# ``solve`` also takes NumPy arrays (and PIL images, paths) and returns the same kind. Without
# ``sigma_y`` the noise level is estimated from the image (the median absolute deviation of its
# finest wavelet coefficients, Donoho's rule). A grey image is restored as one channel.

camera = resize(data.camera()[0:384, 64:448], (128, 128), anti_aliasing=True)  # (128, 128) float64
rng = np.random.default_rng(0)
noisy_camera = np.clip(camera + 20 / 255 * rng.standard_normal(camera.shape), 0, 1)  # an 8-bit-like image
restored_camera = pnpdiff.solve(noisy_camera, Identity(), progress=False)


def psnr_np(a, b):
    return 10 * np.log10(1.0 / np.mean((a - b) ** 2))


print(f"{type(restored_camera).__name__} {restored_camera.shape}: noisy {psnr_np(noisy_camera, camera):.2f} dB -> "
      f"{psnr_np(restored_camera, camera):.2f} dB")


fig, axes = plt.subplots(1, 3, figsize=(8, 3), layout="constrained")
show(axes[0], noisy_camera, f"noisy (sigma 20/255, clipped)\n{psnr_np(noisy_camera, camera):.2f} dB", cmap="gray")
show(axes[1], restored_camera, f"denoised, sigma estimated\n{psnr_np(restored_camera, camera):.2f} dB", cmap="gray")
show(axes[2], camera, "ground truth", cmap="gray")
plt.show()

# %%
# Clipping the noisy image to [0, 1] (as any saved image is) makes its noise non-Gaussian in
# the dark and bright areas; the estimate and the denoiser still work well away from them.
