"""Tests of the classical blind deconvolution baseline (pnpdiff.baselines.blind_deconvolution,
the L0 intensity and gradient prior of Pan et al., TPAMI 2017)."""

from __future__ import annotations

import pytest
import torch

from pnpdiff.baselines import blind_deconvolution
from pnpdiff.blind import centred_kernel_error
from pnpdiff.errors import PnPError, ShapeError, ValueRangeError
from pnpdiff.metrics import psnr
from pnpdiff.operators import Blur
from pnpdiff.operators.kernels import gaussian_kernel, motion_kernel

SIGMA_Y = 0.005
#: kernel error bound: below the error of every wrong-shape answer for the planted motion kernel
#: (checked in the test: the kernel flipped upside down 0.60, the isotropic Gaussian of the same
#: spread 0.75, the identity 4.1), and above what the L0 method reaches on this problem (0.12-0.34
#: over four random images at 48-64 px)
MOTION_BOUND = 0.4


def _piecewise_constant(n: int = 64, seed: int = 0) -> torch.Tensor:
    """Random rectangles on grey: the cartoon images the L0 gradient prior describes exactly."""
    g = torch.Generator().manual_seed(seed)
    x = torch.full((n, n), 0.5, dtype=torch.float64)
    for _ in range(12):
        a, b = torch.randint(0, n - 8, (2,), generator=g).tolist()
        ha, wb = torch.randint(4, n // 2, (2,), generator=g).tolist()
        x[a:a + ha, b:b + wb] = torch.rand((), generator=g, dtype=torch.float64)
    return x[None, None]


def _observe(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return Blur(k)(x) + SIGMA_Y * torch.randn(x.shape, generator=g, dtype=x.dtype)


def test_recovers_planted_motion_kernel():
    # a 15x15 camera-shake kernel whose trajectory spreads 2.8 px (std) along its long axis
    k_true = motion_kernel(15, 0.5, seed=0, dtype=torch.float64)
    delta = torch.zeros_like(k_true)
    delta[7, 7] = 1.0
    spread = float(((k_true.sum(1) * (torch.arange(15.0, dtype=torch.float64) - 7) ** 2).sum()
                    + (k_true.sum(0) * (torch.arange(15.0, dtype=torch.float64) - 7) ** 2).sum()) / 2) ** 0.5
    wrong = [delta, k_true.flip(0), gaussian_kernel(spread, 15, dtype=torch.float64)]
    assert min(centred_kernel_error(w, k_true) for w in wrong) > MOTION_BOUND  # the bound tells them apart

    x = _piecewise_constant()
    y = _observe(x, k_true)
    x_hat, k = blind_deconvolution(y, 15, SIGMA_Y)
    assert centred_kernel_error(k, k_true) < MOTION_BOUND
    assert float(psnr(x_hat.clamp(0, 1), x)) > float(psnr(y.clamp(0, 1), x)) + 1.0


def test_recovers_planted_gaussian_kernel():
    # bound 0.3: a Gaussian of sigma 1.0 or 2.0 (a third off) scores 0.69 / 0.33, the identity 5.0;
    # the method reaches 0.15-0.24 on this problem
    k_true = gaussian_kernel(1.5, 9, dtype=torch.float64)
    for s in (1.0, 2.0):
        assert centred_kernel_error(gaussian_kernel(s, 9, dtype=torch.float64), k_true) > 0.3
    x = _piecewise_constant()
    y = _observe(x, k_true)
    x_hat, k = blind_deconvolution(y, 9, SIGMA_Y)
    assert centred_kernel_error(k, k_true) < 0.3
    assert float(psnr(x_hat.clamp(0, 1), x)) > float(psnr(y.clamp(0, 1), x))


def test_output_contract():
    # colour float32 batch, rectangular support, noise level estimated from y
    x = _piecewise_constant(32).expand(2, 3, 32, 32).float()
    y = Blur(gaussian_kernel(1.0, 7)).forward(x)
    x_hat, k = blind_deconvolution(y, (5, 7), scales=1, iters=1)
    assert x_hat.shape == y.shape and x_hat.dtype == torch.float32
    assert k.shape == (5, 7) and k.dtype == torch.float64
    assert bool((k >= 0).all()) and abs(float(k.sum()) - 1.0) < 1e-9
    assert bool(torch.isfinite(x_hat).all())


_Y = torch.rand(1, 1, 32, 32, dtype=torch.float64)


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        (dict(y=torch.rand(32, 32)), ShapeError, "(B, C, H, W)"),
        (dict(y=torch.zeros(1, 1, 32, 32, dtype=torch.long)), ValueRangeError, "floating-point"),
        (dict(y=torch.full((1, 1, 32, 32), float("nan"))), ValueRangeError, "finite"),
        (dict(size=2), ValueRangeError, "size"),
        (dict(size=9.0), ValueRangeError, "size"),
        (dict(size=True), ValueRangeError, "size"),
        (dict(size=(9, 1)), ValueRangeError, "size"),
        (dict(size=33), ShapeError, "larger than the image"),
        (dict(sigma_y=-0.1), ValueRangeError, "sigma_y"),
        (dict(sigma_y="0.1"), ValueRangeError, "sigma_y"),
        (dict(method="normalized"), ValueRangeError, "method"),
        (dict(iters=0), ValueRangeError, "iters"),
        (dict(scales=0), ValueRangeError, "scales"),
        (dict(lam=0.0), ValueRangeError, "lam"),
        (dict(lam_intensity=-1.0), ValueRangeError, "lam_intensity"),
        (dict(kernel_l2=float("inf")), ValueRangeError, "kernel_l2"),
    ],
)
def test_bad_arguments(kwargs, error, words):
    args = dict(y=_Y, size=9) | kwargs
    with pytest.raises(error) as info:
        blind_deconvolution(args.pop("y"), args.pop("size"), **args)
    assert isinstance(info.value, PnPError)
    message = str(info.value)
    assert words in message and "\n" not in message
