"""Denoising: the ``mmse`` solver (one denoiser call at sigma_y, Tweedie) and ``solve``'s default for it."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.linalg
import torch

import pnpdiff
from pnpdiff.errors import OperatorError, PnPWarning, ValueRangeError
from pnpdiff.metrics import psnr
from pnpdiff.operators import Downsample, GaussianBlur, Identity, Inpaint, Matrix
from pnpdiff.priors import GaussianPrior, load_prior
from pnpdiff.schedules import karras
from pnpdiff.solvers import SOLVERS, mmse

pytestmark = pytest.mark.usefixtures("one_thread")

F64 = torch.float64


@pytest.fixture(scope="module")
def natural():
    return load_prior("natural")


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    """scikit-image's astronaut resized (antialiased bicubic) to (1, 3, 64, 64) in [0, 1]."""
    import skimage.data
    from PIL import Image

    pil = Image.fromarray(skimage.data.astronaut()).resize((64, 64), Image.BICUBIC, reducing_gap=None)
    a = np.asarray(pil, dtype=np.float32) / 255.0
    return torch.from_numpy(a.copy()).permute(2, 0, 1)[None].contiguous()


def _noisy(x: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return x + sigma * torch.randn(x.shape, generator=g, dtype=x.dtype)


# ----------------------------------------------------------------------------- the natural prior
@pytest.mark.parametrize("sigma_y", [0.01, 0.025, 0.1])
def test_mmse_is_one_call_of_the_natural_prior(natural, photo, sigma_y) -> None:
    y = _noisy(photo, sigma_y)
    out = mmse(y, Identity(), natural, karras(20, 0.002, 1.0), sigma_y)
    with torch.no_grad():
        ref = natural.denoise(y, sigma_y)
    assert torch.equal(out, ref)


def test_mmse_grey_image_is_one_call(natural, photo) -> None:
    y = _noisy(photo.mean(1, keepdim=True), 0.05, seed=1)
    out = mmse(y, Identity(), natural, None, 0.05)
    with torch.no_grad():
        assert torch.equal(out, natural.denoise(y, 0.05))
    assert out.shape == y.shape


def test_mmse_ignores_the_schedule(natural, photo) -> None:
    y = _noisy(photo, 0.05)
    a = mmse(y, Identity(), natural, None, 0.05)
    b = mmse(y, Identity(), natural, karras(50, 0.002, 80.0), 0.05, generator=torch.Generator().manual_seed(1))
    c = mmse(y, Identity(), natural, torch.tensor([0.3, 0.01, 0.0]), 0.05)
    assert torch.equal(a, b) and torch.equal(a, c)


def test_sigma_above_the_natural_range_is_not_clipped(natural, photo) -> None:
    """Above 75/255 FFDNet is called at the true noise level (it extrapolates: clipping to 75/255
    cost 1.9-2.7 dB at 0.35 in docs/denoising.md); this checks the call, and that the two differ."""
    y = _noisy(photo, 0.35)
    out = mmse(y, Identity(), natural, None, 0.35)
    with torch.no_grad():
        at_max = natural.denoise(y, 75 / 255)
        unclipped = natural.denoise(y, 0.35)
    assert torch.equal(out, unclipped)
    assert float((out - at_max).abs().amax()) > 1e-3


def test_sigma_zero_returns_y(natural, photo) -> None:
    out = mmse(photo, Identity(), natural, None, 0.0)
    assert torch.equal(out, photo)


def test_negative_sigma_is_refused(natural, photo) -> None:
    with pytest.raises(ValueRangeError):
        mmse(photo, Identity(), natural, None, -0.01)


def test_callback_sees_the_level_used(natural, photo) -> None:
    seen = []
    out = mmse(photo, Identity(), natural, None, 0.05, callback=lambda i, s, x, x0: seen.append((i, s, x0)))
    assert len(seen) == 1 and seen[0][0] == 0
    assert seen[0][1] == pytest.approx(0.05) and seen[0][2] is out
    natural_min = type(natural).sigma_min
    try:  # below sigma_min the level used is sigma_min, and the callback says so
        type(natural).sigma_min = 0.01
        mmse(photo, Identity(), natural, None, 0.001, callback=lambda i, s, x, x0: seen.append((i, s, x0)))
    finally:
        type(natural).sigma_min = natural_min
    assert seen[1][1] == pytest.approx(0.01)


# ----------------------------------------------------------------------------- exact Gaussian posterior
def _gaussian(shape=(3, 4, 4), seed=0):
    """A GaussianPrior with a random full covariance, and its mean and covariance in NumPy."""
    rng = np.random.default_rng(seed)
    d = int(np.prod(shape))
    mu = 0.5 + 0.1 * rng.standard_normal(d)
    L = rng.standard_normal((d, d)) / np.sqrt(d)
    C = 0.02 * (L @ L.T) + 1e-3 * np.eye(d)
    prior = GaussianPrior(torch.from_numpy(mu).reshape(shape), torch.from_numpy(C))
    return prior, mu, C


def _posterior_mean(mu: np.ndarray, C: np.ndarray, y: np.ndarray, s: float) -> np.ndarray:
    """``mu + C (C + s^2 I)^-1 (y - mu)`` for each row of ``y`` (float64, SciPy's solve)."""
    G = C + s**2 * np.eye(len(mu))
    return mu + (C @ scipy.linalg.solve(G, (y - mu).T, assume_a="pos")).T


@pytest.mark.parametrize("sigma_y", [0.01, 0.05, 0.3])
def test_mmse_is_the_exact_gaussian_posterior_mean(sigma_y) -> None:
    prior, mu, C = _gaussian()
    g = torch.Generator().manual_seed(2)
    x = prior.sample(3, g)  # (3, 3, 4, 4) float64
    y = x + sigma_y * torch.randn(x.shape, generator=g, dtype=F64)
    out = mmse(y, Identity(), prior, None, sigma_y)
    ref = _posterior_mean(mu, C, y.reshape(3, -1).numpy(), sigma_y)
    np.testing.assert_allclose(out.reshape(3, -1).numpy(), ref, rtol=1e-9, atol=1e-11)
    # the posterior mean is not the measurement (the test would pass for an identity solver otherwise)
    assert float(np.abs(ref - y.reshape(3, -1).numpy()).max()) > 0.1 * sigma_y


def test_gaussian_sigma_below_the_range_is_raised_above_it_exact() -> None:
    """An exact denoiser: above sigma_max the posterior mean at sigma_y itself (clipping would
    give the posterior mean of another problem); below sigma_min the level is raised to it."""
    prior, mu, C = _gaussian(seed=3)
    prior.sigma_min, prior.sigma_max = 0.02, 0.1  # instance attributes, as a prior may declare them
    g = torch.Generator().manual_seed(4)
    x = prior.sample(2, g)
    y = x + 0.3 * torch.randn(x.shape, generator=g, dtype=F64)
    yf = y.reshape(2, -1).numpy()
    high = mmse(y, Identity(), prior, None, 0.3).reshape(2, -1).numpy()
    np.testing.assert_allclose(high, _posterior_mean(mu, C, yf, 0.3), rtol=1e-9, atol=1e-11)
    assert np.abs(high - _posterior_mean(mu, C, yf, 0.1)).max() > 1e-3
    low = mmse(y, Identity(), prior, None, 0.005).reshape(2, -1).numpy()
    np.testing.assert_allclose(low, _posterior_mean(mu, C, yf, 0.02), rtol=1e-9, atol=1e-11)
    assert np.abs(low - _posterior_mean(mu, C, yf, 0.005)).max() > 1e-4


# ----------------------------------------------------------------------------- other operators
@pytest.mark.parametrize(
    "op",
    [GaussianBlur(1.0), Downsample(2), Inpaint(torch.ones(1, 1, 8, 8)), Matrix(torch.eye(4)), lambda x: x],
    ids=["blur", "downsample", "inpaint", "matrix", "callable"],
)
def test_non_identity_operator_is_refused(natural, op) -> None:
    y = torch.full((1, 3, 8, 8), 0.5)
    with pytest.raises(OperatorError, match=r"mmse.*denoising.*Identity.*diffpir"):
        mmse(y, op, natural, None, 0.05)


def test_registered() -> None:
    assert SOLVERS["mmse"] is mmse


def test_solve_with_mmse_refuses_a_blur(photo) -> None:
    with pytest.raises(OperatorError, match="denoising"):
        pnpdiff.solve(photo, GaussianBlur(1.0), method="mmse", sigma_y=0.025, progress=False)


# ----------------------------------------------------------------------------- solve's default
def test_solve_default_for_denoising_is_one_call(natural, photo) -> None:
    y = _noisy(photo, 0.025)
    out = pnpdiff.solve(y, Identity(), sigma_y=0.025, progress=False)
    with torch.no_grad():
        ref = natural.denoise(y, 0.025).clamp(0, 1)  # solve returns images clamped to [0, 1]
    assert torch.equal(out, ref)


def test_solve_default_is_not_below_one_call(natural, photo) -> None:
    y = _noisy(photo, 0.025, seed=5)
    out = pnpdiff.solve(y, Identity(), sigma_y=0.025, progress=False)
    with torch.no_grad():
        one = natural.denoise(y, 0.025).clamp(0, 1)
    got, base = float(psnr(out, photo)[0]), float(psnr(one, photo)[0])
    assert got >= base - 1e-9, (got, base)
    assert base > float(psnr(y, photo)[0]) + 2.0  # the call does denoise (a do-nothing default would fail)


def test_solve_mmse_above_the_prior_range_warns(natural, photo) -> None:
    y = _noisy(photo, 0.35)  # not clamped: values reach about [-1, 2]
    with pytest.warns(PnPWarning, match="75/255"):
        out = pnpdiff.solve(y, Identity(), sigma_y=0.35, method="mmse", progress=False)
    with torch.no_grad():
        ref = natural.denoise(y, 0.35).clamp(0, 1)
    assert torch.equal(out, ref)


def test_solve_mmse_in_range_does_not_warn(photo) -> None:
    y = _noisy(photo, 0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PnPWarning)
        pnpdiff.solve(y, Identity(), sigma_y=0.05, method="mmse", progress=False)
