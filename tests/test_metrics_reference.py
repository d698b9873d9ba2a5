"""``pnpdiff.metrics.psnr`` / ``ssim`` against scikit-image, an independent implementation.

SSIM settings that reproduce Wang et al. (2004), which ``pnpdiff.metrics.ssim`` documents
(11 x 11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, valid part of the image, mean over
channels and pixels): ``structural_similarity(..., gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1)``. scikit-image's window radius is
``int(truncate * sigma + 0.5) = int(3.5 * 1.5 + 0.5) = 5`` (11 taps), it filters with reflection
and then crops ``(11 - 1) // 2 = 5`` pixels on each side before averaging, which leaves exactly
the "valid" pixels; ``use_sample_covariance=False`` divides by the window weight sum as Wang et
al. do (not by N - 1); with ``channel_axis`` it averages the per-channel means, equal to the mean
over channels and pixels for equally sized channels.

Tolerances: both implementations compute in float64 (pnpdiff casts its inputs; float32 inputs
are converted exactly on both sides, so float32 inputs get the same bounds), so PSNR differs by
summation order only: 1e-9 dB. SSIM likewise (pnpdiff passes ``eps=0`` to kornia, whose default
``eps = 1e-12`` in each pixel's denominator would move the mean by up to ``eps / (C1 C2) = 1.1e-5``
and score identical images ``1 - 1e-8``): bound 1e-9, and identical images score 1 to 1e-12.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from pnpdiff.metrics import psnr, ssim

TOL = 1e-9  # PSNR (dB)
TOL_SSIM = 1e-9  # float64 on both sides; summation order only


def _sk_ssim(x: np.ndarray, ref: np.ndarray) -> float:
    """x, ref: (C, H, W) float64."""
    return structural_similarity(ref, x, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, channel_axis=0)


def _pairs():
    rng = np.random.default_rng(0)
    cases = []
    for c, h, w in [(1, 11, 11), (1, 32, 48), (3, 17, 23), (3, 64, 64)]:
        ref = rng.random((c, h, w))
        x = np.clip(ref + 0.1 * rng.standard_normal((c, h, w)), 0, 1)
        cases.append((f"random{c}x{h}x{w}", x, ref))
    astro = data.astronaut()[::4, ::4].astype(np.float64) / 255  # 128 x 128 colour
    ref = np.ascontiguousarray(astro.transpose(2, 0, 1))
    cases.append(("astronaut-colour-blur", np.clip(ref * 0.9 + 0.05, 0, 1), ref))
    cases.append(("astronaut-colour-noise", np.clip(ref + 0.05 * rng.standard_normal(ref.shape), 0, 1), ref))
    cam = data.camera()[::4, ::4].astype(np.float64)[None] / 255  # 128 x 128 grey
    cases.append(("camera-grey-noise", np.clip(cam + 0.08 * rng.standard_normal(cam.shape), 0, 1), cam))
    coffee = data.coffee()[100:200:2, 200:330:2].astype(np.float64).transpose(2, 0, 1) / 255  # 50 x 65
    shifted = np.roll(coffee, 1, axis=-1)
    cases.append(("coffee-colour-shift", shifted, coffee))
    return cases


CASES = _pairs()


@pytest.mark.parametrize("name, x, ref", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_against_skimage(name, x, ref, dtype) -> None:
    xt = torch.from_numpy(x).to(dtype)
    rt = torch.from_numpy(ref).to(dtype)
    x64, r64 = xt.double().numpy(), rt.double().numpy()  # what both sides actually see
    got_p = float(psnr(xt[None], rt[None])[0])
    assert got_p == pytest.approx(peak_signal_noise_ratio(r64, x64, data_range=1.0), abs=TOL)
    got_s = float(ssim(xt[None], rt[None])[0])
    assert got_s == pytest.approx(_sk_ssim(x64, r64), abs=TOL_SSIM), (got_s, _sk_ssim(x64, r64))


def test_batch_is_per_image_and_3d_input() -> None:
    _, a, ra = CASES[2]  # 3 x 17 x 23
    b, rb = CASES[3][1][:, :17, :23], CASES[3][2][:, :17, :23]
    x = torch.from_numpy(np.stack([a, b]))
    r = torch.from_numpy(np.stack([ra, rb]))
    s, p = ssim(x, r), psnr(x, r)
    assert s.shape == (2,) and p.shape == (2,)
    assert float(s[1]) == pytest.approx(_sk_ssim(b, rb), abs=TOL_SSIM)
    assert float(p[1]) == pytest.approx(peak_signal_noise_ratio(rb, b, data_range=1.0), abs=TOL)
    assert float(ssim(x[0], r[0])[0]) == pytest.approx(float(s[0]), abs=0)  # (C, H, W) input


def test_identical_images() -> None:
    ref = torch.from_numpy(CASES[4][2])[None]
    assert float(ssim(ref, ref)[0]) == pytest.approx(1.0, abs=1e-12)
    assert _sk_ssim(ref[0].numpy(), ref[0].numpy()) == pytest.approx(1.0, abs=1e-12)
    assert float(psnr(ref, ref)[0]) == pytest.approx(200.0)  # MSE clamped at 1e-20



def test_ssim_refuses_images_smaller_than_its_window() -> None:
    """An 8x8 image (or 10 x 40) has no valid 11x11 window: a ShapeError naming the window, not
    kornia's padding RuntimeError (11x11, one window, is scored against scikit-image above)."""
    from pnpdiff.errors import ShapeError

    g = torch.Generator().manual_seed(0)
    for shape in [(1, 3, 8, 8), (1, 1, 10, 40)]:
        with pytest.raises(ShapeError, match="11x11"):
            ssim(torch.rand(shape, generator=g), torch.rand(shape, generator=g))
