"""
Low-light deblurring: the Poisson likelihood
============================================

At ``peak`` photons at white a pixel's count is Poisson-distributed, ``y = Poisson(peak A x) /
peak``: the noise variance ``A x / peak`` grows with the brightness. ``pnpdiff.solve(...,
noise={"model": "poisson", "peak": 10})`` says so. The previous example
(:ref:`sphx_glr_auto_examples_plot_14_low_light.py`) denoises such a photo through the Anscombe
transform; here the photo is also blurred, where that route does not apply (the transformed
measurement is no longer linear in ``x``). The splitting solvers ``dpir`` and ``diffpir`` then take
the Poisson likelihood itself as their data step, the prox of its negative log-likelihood (ADMM on
the split ``u = A x`` for a blur; Figueiredo and Bioucas-Dias, IEEE TIP 2010); ``dps`` takes its
weighted residual, and the other methods refuse the model. The comparison throughout is the same
solver, same settings, told the noise is Gaussian with the same mean variance
(:meth:`~pnpdiff.noise.NoiseModel.matched_sigma`).
"""

# %%
# Ten photons at white
# --------------------
# A 128x128 crop of scikit-image's ``chelsea``, denoised, then blurred (Gaussian, 1.5 px) and
# deblurred, both at 10 photons at white.

import matplotlib.pyplot as plt
import torch
from skimage import data
from skimage.transform import resize

import pnpdiff
from pnpdiff.metrics import psnr
from pnpdiff.noise import NoiseModel, estimate_poisson_gaussian, noise_model
from pnpdiff.operators import GaussianBlur, Identity

photo = resize(data.chelsea()[0:300, 80:380], (128, 128), anti_aliasing=True)
x = torch.from_numpy(photo).permute(2, 0, 1)[None].float()
model = noise_model({"model": "poisson", "peak": 10})  # = NoiseModel("poisson", 0.0, 1 / 10)
print(f"noise model: {model.describe()} (gain {model.gain:g} per photon)")


def db(img):
    return float(psnr(img.clamp(0, 1), x))


rows = []
for k, op in enumerate((Identity(), GaussianBlur(1.5))):
    y = model.sample(op(x), torch.Generator().manual_seed(k))  # counts / peak: values above 1 occur
    sigma = model.matched_sigma(y)
    x_poisson, info = pnpdiff.solve(y, op, noise=model, seed=0, progress=False, return_info=True)
    # the same method, steps and options with a Gaussian likelihood of the same mean variance (for
    # denoising, the default's Gaussian twin is one MMSE call on y itself, without the transform)
    x_gauss = pnpdiff.solve(y, op, method=info["method"], steps=info["steps"], sigma_y=sigma, seed=0,
                            progress=False, **info["options"])
    rows.append((op, y, x_gauss, x_poisson))
    how = info.get("stabilised") or info.get("rule") or info["method"]
    print(f"{type(op).__name__}: {info['method']}, {info['steps']} steps ({how})")
    print(f"  observed {db(y):.2f} dB; Gaussian likelihood at sigma_y {sigma:.3f}: {db(x_gauss):.2f} dB; "
          f"Poisson: {db(x_poisson):.2f} dB")

def show(ax, img, title):
    ax.imshow(img[0].permute(1, 2, 0).clamp(0, 1).numpy())
    ax.set_title(title, fontsize=9)
    ax.axis("off")


fig, axes = plt.subplots(2, 4, figsize=(10, 5.4), layout="constrained")
axes[1, 3].axis("off")
for i, (_, y, x_gauss, x_poisson) in enumerate(rows):
    task = "noisy" if i == 0 else "blurred, noisy"
    show(axes[i, 0], y, f"{task}, 10 photons\n{db(y):.2f} dB")
    show(axes[i, 1], x_gauss, f"Gaussian likelihood\n{db(x_gauss):.2f} dB")
    show(axes[i, 2], x_poisson, f"Poisson {'(Anscombe)' if i == 0 else 'likelihood'}\n{db(x_poisson):.2f} dB")
show(axes[0, 3], x, "ground truth")
plt.show()

# %%
# Unknown numbers: the noise fit
# ------------------------------
# A camera adds read noise to the shot noise, ``y = gain * Poisson(A x / gain) + N(0, sigma^2)``.
# :func:`~pnpdiff.noise.estimate_poisson_gaussian` fits the local variance of ``y`` against its
# local mean (a straight line: slope ``gain``, intercept ``sigma^2``; Foi et al., IEEE TIP 2008);
# ``noise="poisson-gaussian"`` runs the same fit inside ``solve``. The read noise is the line's
# intercept, found well only where it is not small against the shot noise: it varies from draw to
# draw far more than the gain.

truth = NoiseModel("poisson-gaussian", 0.03, 1 / 30)
blur = GaussianBlur(1.5)
print(f"true gain {truth.gain:.4f}, read noise {truth.sigma:.4f}; fitted on five draws of the noise:")
for seed in range(2, 7):
    gain, read = estimate_poisson_gaussian(truth.sample(blur(x), torch.Generator().manual_seed(seed)))
    print(f"  seed {seed}: gain {gain:.4f}, read noise {read:.4f}")
z = truth.sample(blur(x), torch.Generator().manual_seed(2))
x_fit, info = pnpdiff.solve(z, blur, noise="poisson-gaussian", seed=0, progress=False, return_info=True)
x_known = pnpdiff.solve(z, blur, noise=truth, seed=0, progress=False)
print(f"solve's own fit: {info['noise']}")
print(f"observed {db(z):.2f} dB; with the fitted numbers {db(x_fit):.2f} dB, with the true ones {db(x_known):.2f} dB")

fig, axes = plt.subplots(1, 3, figsize=(7.6, 2.9), layout="constrained")
show(axes[0], z, f"gain 1/30, read noise 0.03\n{db(z):.2f} dB")
show(axes[1], x_fit, f"numbers fitted from y\n{db(x_fit):.2f} dB")
show(axes[2], x_known, f"numbers known\n{db(x_known):.2f} dB")
plt.show()

# %%
# Reading the result
# ------------------
# For denoising, the default (the Anscombe transform, one FFDNet call, the exact unbiased
# inverse) is ahead of the same one call told the noise is Gaussian: the transform makes the
# noise alike everywhere, where a single Gaussian level is too high in the shadows and too low in
# the highlights. For deblurring, the default chose its settings from the problem (the ``rule``
# printed above: at this light level, HQS with DPIR's own lam and 8 steps, which were ahead of
# the weaker coupling it gives Gaussian noise of the same level on the tuning photos), and the
# Poisson likelihood is compared at those same settings; at so few photons the two likelihoods
# are close, the gap grows with the light. ``docs/real_photos.md`` measures both tasks at peaks 5 to 100 on the
# benchmark's held-out photos. With Gaussian noise ``solve`` refuses a ``y`` beyond ``1 + max(0.5,
# 6 sigma_y)`` (data that are not in [0, 1]): a bright pixel's count can get there at a few
# photons, which a noise model accepts.
