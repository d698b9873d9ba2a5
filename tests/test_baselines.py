"""Tests of the classical baselines (pnpdiff.baselines)."""

from __future__ import annotations

import pytest
import torch

from pnpdiff.baselines import bicubic_upsample, biharmonic_inpaint, transfer_function, wiener
from pnpdiff.errors import OperatorError, ShapeError
from pnpdiff.metrics import psnr
from pnpdiff.operators import Downsample, GaussianBlur, Inpaint, MotionBlur, box_mask, random_mask


def _smooth_image(b: int = 1, c: int = 3, n: int = 64, seed: int = 0) -> torch.Tensor:
    """A band-limited random image in [0, 1] (sum of a few low-frequency cosines)."""
    g = torch.Generator().manual_seed(seed)
    i = torch.arange(n, dtype=torch.float64)
    yy, xx = torch.meshgrid(i, i, indexing="ij")
    out = torch.full((b, c, n, n), 0.5, dtype=torch.float64)
    for _ in range(6):
        f1, f2 = torch.randint(0, 5, (2,), generator=g).tolist()
        amp = 0.05 * torch.rand(b, c, 1, 1, generator=g, dtype=torch.float64)
        ph = 6.28 * torch.rand(1, generator=g, dtype=torch.float64)
        out = out + amp * torch.cos(2 * torch.pi * (f1 * yy + f2 * xx) / n + ph)
    return out.float()


def test_transfer_function_matches_forward():
    x = _smooth_image()
    op = MotionBlur(15, 0.5, seed=1)
    kf = transfer_function(op, tuple(x.shape))
    ax = torch.fft.irfft2(kf * torch.fft.rfft2(x.double()), s=x.shape[-2:])
    torch.testing.assert_close(ax.float(), op(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("op", [GaussianBlur(1.5), MotionBlur(15, 0.5, seed=0)])
def test_wiener_recovers_noiseless_blur(op):
    x = _smooth_image(b=2)
    y = op(x)
    xh = wiener(y, op, sigma_y=1e-5)
    assert xh.shape == x.shape and xh.dtype == x.dtype
    assert psnr(xh, x).min() > 45
    # and it deblurs a noisy image better than doing nothing
    g = torch.Generator().manual_seed(0)
    yn = y + 0.01 * torch.randn(y.shape, generator=g)
    assert (psnr(wiener(yn, op, 0.01), x) > psnr(yn, x)).all()


def test_wiener_rejects_non_circular():
    x = _smooth_image()
    op = GaussianBlur(1.0, boundary="reflect")
    with pytest.raises(OperatorError):
        wiener(op(x), op, 0.01)
    with pytest.raises(OperatorError):
        wiener(x, Downsample(2), 0.01)
    with pytest.raises(ShapeError):
        wiener(x[0], GaussianBlur(1.0), 0.01)


def test_bicubic_upsample_shape_and_smooth_signal():
    x = _smooth_image(n=64)
    op = Downsample(4)
    y = op(x)
    up = bicubic_upsample(y, 4)
    assert up.shape == x.shape
    assert psnr(up, x).item() > 30  # a smooth image is nearly recovered
    with pytest.raises(OperatorError):
        bicubic_upsample(y, 0)


def test_bicubic_upsample_constant():
    y = torch.full((1, 3, 8, 8), 0.3)
    torch.testing.assert_close(bicubic_upsample(y, 2), torch.full((1, 3, 16, 16), 0.3))


def test_biharmonic_fills_ramp_exactly():
    n = 32
    i = torch.arange(n, dtype=torch.float64)
    ramp = (0.2 + 0.5 * i[None, :] / n + 0.2 * i[:, None] / n).expand(1, 3, n, n).clone()
    mask = box_mask((n, n), 12)
    y = Inpaint(mask)(ramp)
    out = biharmonic_inpaint(y, mask)
    assert out.dtype == ramp.dtype and out.shape == ramp.shape
    torch.testing.assert_close(out, ramp, atol=1e-6, rtol=0)


def test_biharmonic_random_and_per_channel_masks():
    x = _smooth_image(b=2, n=32)
    mask = random_mask((2, 3, 32, 32), 0.5, per_channel=True, seed=0)
    out = biharmonic_inpaint(Inpaint(mask)(x), mask)
    observed = mask > 0.5
    torch.testing.assert_close(out[observed], x[observed])
    assert psnr(out, x).min() > 35
    with pytest.raises(ShapeError):
        biharmonic_inpaint(x, torch.ones(5, 5))
