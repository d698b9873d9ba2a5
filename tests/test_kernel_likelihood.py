"""``pnpdiff.kernel_fit.kernel_log_likelihood``: the Whittle marginal likelihood of ``y`` under a
kernel (power-law image model, scale profiled out) that the free blind family ranks its candidate
kernels by (issue 28). Its invariances, its maximum on data drawn from the model itself, its
agreement with ``fit_kernel``, and its argument checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pnpdiff import kernel_fit as kf
from pnpdiff.errors import PnPError, ShapeError, ValueRangeError
from pnpdiff.io import load_source_image
from pnpdiff.operators import GaussianBlur, disk_kernel, gaussian_kernel

pytestmark = pytest.mark.usefixtures("one_thread")

SIGMA_Y = 0.01


def _fft_blur(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Circular convolution of ``(H, W)`` ``x`` by ``k`` centred at ``(h // 2, w // 2)``, by FFT."""
    n, m = x.shape
    pad = torch.zeros(n, m, dtype=torch.float64)
    pad[: k.shape[0], : k.shape[1]] = k
    pad = torch.roll(pad, (-(k.shape[0] // 2), -(k.shape[1] // 2)), (0, 1))
    return torch.fft.irfft2(torch.fft.rfft2(x) * torch.fft.rfft2(pad), s=(n, m))


def _disk(radius: float) -> torch.Tensor:
    return disk_kernel(radius, dtype=torch.float64)


def _gauss(sigma: float) -> torch.Tensor:
    return gaussian_kernel(sigma, size=21, dtype=torch.float64)


def _model_draw(seed: int, kernel: torch.Tensor | None = None, n: int = 128) -> torch.Tensor:
    """``y`` drawn from the likelihood's own model: a stationary Gaussian field of power spectrum
    ``|w|^-2 exp(-(0.55 |w|)^2)``, circularly blurred by ``kernel`` (default a disk of radius 3),
    plus white noise."""
    g = torch.Generator().manual_seed(seed)
    fy = torch.fft.fftfreq(n, dtype=torch.float64) * 2 * math.pi
    fx = torch.fft.rfftfreq(n, dtype=torch.float64) * 2 * math.pi
    r2 = fy[:, None] ** 2 + fx[None, :] ** 2
    r2[0, 0] = 1.0
    amp = r2**-0.5 * torch.exp(-(0.55**2) * r2 / 2)  # amplitude: the square root of the power
    amp[0, 0] = 0.0
    field = torch.fft.irfft2(torch.fft.rfft2(torch.randn(n, n, generator=g, dtype=torch.float64)) * amp, s=(n, n))
    x = 0.5 + 0.15 * field / field.std()
    y = _fft_blur(x, _disk(3.0) if kernel is None else kernel)
    return y + SIGMA_Y * torch.randn(n, n, generator=g, dtype=torch.float64)


@pytest.fixture(scope="module")
def photo_y() -> torch.Tensor:
    """Cameraman at 64 px, Gaussian blur of sigma 2, noise 0.01 (one channel, float64)."""
    x = load_source_image("skimage:camera", 64)[0].double()
    g = torch.Generator().manual_seed(0)
    return GaussianBlur(2.0).double()(x) + SIGMA_Y * torch.randn(x.shape, generator=g, dtype=torch.float64)


# -------------------------------------------------------------------------------------------------
# invariances
# -------------------------------------------------------------------------------------------------
def test_shifted_or_flipped_kernel_scores_the_same(photo_y):
    """The likelihood sees |K(w)|^2 only: a kernel moved by a pixel inside a larger (zero-padded)
    support, or point-reflected, has the same power spectrum. Only float64 rounding differs."""
    g = torch.Generator().manual_seed(1)
    k = torch.rand(5, 4, generator=g, dtype=torch.float64)  # asymmetric, even width
    k /= k.sum()
    base = torch.zeros(9, 9, dtype=torch.float64)
    base[2:7, 2:6] = k
    moved = torch.zeros(9, 9, dtype=torch.float64)
    moved[3:8, 1:5] = k  # one pixel down, one left
    ref = kf.kernel_log_likelihood(photo_y, base, SIGMA_Y)
    assert math.isfinite(ref)
    for other in (moved, k, base.flip(0, 1)):
        assert kf.kernel_log_likelihood(photo_y, other, SIGMA_Y) == pytest.approx(ref, rel=1e-9, abs=0)
    # and the test can fail: a different kernel of the same support does not score the same
    assert abs(kf.kernel_log_likelihood(photo_y, base.T.contiguous(), SIGMA_Y) - ref) > 1e-3


def test_kernel_is_normalised(photo_y):
    k = disk_kernel(2.5, dtype=torch.float64)
    ref = kf.kernel_log_likelihood(photo_y, k, SIGMA_Y)
    for scaled in (3.0 * k, 1e-3 * k, (3.0 * k).float()):
        assert kf.kernel_log_likelihood(photo_y, scaled, SIGMA_Y) == pytest.approx(ref, rel=1e-6, abs=0)


# -------------------------------------------------------------------------------------------------
# the maximum on data from the model
# -------------------------------------------------------------------------------------------------
_DELTA = torch.ones(1, 1, dtype=torch.float64)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "true,others",
    [
        (
            _disk(3.0),
            {
                "delta": _DELTA,
                "disk 1.5": _disk(1.5),
                "disk 2.5": _disk(2.5),
                "disk 3.5": _disk(3.5),
                "disk 5": _disk(5.0),
            },
        ),
        (
            _gauss(2.0),
            {
                "delta": _DELTA,
                "gauss 1": _gauss(1.0),
                "gauss 1.5": _gauss(1.5),
                "gauss 2.5": _gauss(2.5),
                "gauss 3": _gauss(3.0),
            },
        ),
    ],
    ids=["disk-3", "gaussian-2"],
)
def test_true_kernel_is_most_likely_on_a_draw_from_the_model(seed, true, others):
    """On y drawn from the model itself, the true parameter maximises the expected likelihood
    (Gibbs' inequality): the true kernel beats no blur and kernels of the same family that are
    smaller or larger (a disk's spectral zeros pin its radius; a Gaussian has none, so its case
    checks the exponent of |K|: with |K| in place of |K|^2 a Gaussian of sqrt(2) sigma would win).
    The margins are about 200 nats or more on 128^2, far beyond a draw's fluctuation."""
    y = _model_draw(seed, true)
    best = kf.kernel_log_likelihood(y, true, SIGMA_Y)
    for name, k in others.items():
        assert kf.kernel_log_likelihood(y, k, SIGMA_Y) < best, name


def test_true_kernel_is_most_likely_for_a_batch_and_grey_channels():
    """The same with y given as (H, W), (1, H, W) and (1, 1, H, W), which are the same image,
    and with a batch of two draws (one shared kernel): the batch's likelihood is the sum."""
    y0, y1 = _model_draw(3), _model_draw(4)
    k = _disk(3.0)
    a = kf.kernel_log_likelihood(y0, k, SIGMA_Y)
    assert kf.kernel_log_likelihood(y0[None], k, SIGMA_Y) == pytest.approx(a, rel=1e-12)
    assert kf.kernel_log_likelihood(y0[None, None], k, SIGMA_Y) == pytest.approx(a, rel=1e-12)
    b = kf.kernel_log_likelihood(y1, k, SIGMA_Y)
    both = kf.kernel_log_likelihood(torch.stack([y0, y1])[:, None], k, SIGMA_Y)
    assert both == pytest.approx(a + b, rel=1e-9)
    assert both > kf.kernel_log_likelihood(
        torch.stack([y0, y1])[:, None], disk_kernel(2.0, dtype=torch.float64), SIGMA_Y
    )


# -------------------------------------------------------------------------------------------------
# agreement with fit_kernel
# -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "family,size",
    [
        ("gaussian", 9),
        ("gaussian", 15),
        ("defocus", 9),
        ("defocus", None),
        ("motion", 15),
        ("gaussian", None),  # compared at one fixed size, returned at 2 ceil(4 sigma) + 1
    ],
)
def test_fit_log_likelihood_is_its_kernels(photo_y, family, size):
    """fit.log_likelihood is the likelihood of fit.kernel: both profile the same scale by Fisher
    scoring to 1e-13 relative, so they agree to far better than 1e-6 nats."""
    fit = kf.fit_kernel(photo_y, family, size=size, sigma_y=SIGMA_Y)
    if size is not None:
        assert fit.kernel.shape == (size, size)
    got = kf.kernel_log_likelihood(photo_y, fit.kernel, SIGMA_Y)
    assert got == pytest.approx(fit.log_likelihood, rel=0, abs=1e-6)


def test_fit_is_at_least_as_likely_as_the_true_kernel(photo_y):
    """fit_kernel maximises this likelihood over its family: the fitted Gaussian (same support)
    cannot score below the true sigma 2.0's, nor below its neighbours 1.8 and 2.2."""
    fit = kf.fit_kernel(photo_y, "gaussian", size=15, sigma_y=SIGMA_Y)
    for sigma in (1.8, 2.0, 2.2):
        k = kf.kernel_log_likelihood(photo_y, GaussianBlur(sigma, kernel_size=15).kernel[0].double(), SIGMA_Y)
        assert fit.log_likelihood >= k - 1e-6, sigma


# -------------------------------------------------------------------------------------------------
# argument checks
# -------------------------------------------------------------------------------------------------
_Y = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
_K = torch.full((3, 3), 1 / 9, dtype=torch.float64)


@pytest.mark.parametrize(
    "y,kernel,sigma_y,error",
    [
        (_Y, torch.ones(1, 3, 3), None, ShapeError),
        (_Y, torch.tensor([[0.5, -0.1], [0.3, 0.3]]), None, ValueRangeError),
        (_Y, torch.zeros(3, 3), None, ValueRangeError),
        (_Y, torch.tensor([[float("nan"), 1.0]]), None, ValueRangeError),
        (_Y, torch.tensor([[float("inf"), 1.0]]), None, ValueRangeError),
        (_Y, torch.ones(33, 33), None, ShapeError),
        (_Y, torch.ones(3, 33), None, ShapeError),
        (_Y, torch.ones(3, 3, dtype=torch.int64), None, ShapeError),
        (_Y, np.ones((3, 3)), None, ShapeError),
        (_Y, torch.tensor(1.0), None, ShapeError),
        (_Y, _K, -1, ValueRangeError),
        (_Y, _K, 2, ValueRangeError),
        (_Y, _K, float("nan"), ValueRangeError),
        (_Y, _K, "0.1", ValueRangeError),
        (torch.rand(64), _K, None, ShapeError),
        (torch.rand(1, 1, 1, 32, 32), _K, None, ShapeError),
        ([[0.5] * 32] * 32, _K, None, ShapeError),
        (torch.rand(8, 8), _K, None, ShapeError),
        (torch.rand(0, 1, 32, 32), _K, None, ShapeError),
        (torch.ones(32, 32, dtype=torch.int64), _K, None, ValueRangeError),
        (torch.full((32, 32), float("nan")), _K, None, ValueRangeError),
        (_Y, torch.ones(0, 3), None, ShapeError),
    ],
    ids=[
        "kernel-3d",
        "kernel-negative",
        "kernel-zeros",
        "kernel-nan",
        "kernel-inf",
        "kernel-larger",
        "kernel-wider",
        "kernel-int",
        "kernel-numpy",
        "kernel-0d",
        "sigma_y-negative",
        "sigma_y-2",
        "sigma_y-nan",
        "sigma_y-str",
        "y-1d",
        "y-5d",
        "y-list",
        "y-small",
        "y-empty-batch",
        "y-int",
        "y-nan",
        "kernel-empty",
    ],
)
def test_bad_arguments_raise_pnperror(y, kernel, sigma_y, error):
    with pytest.raises(error) as info:
        kf.kernel_log_likelihood(y, kernel, sigma_y)
    assert isinstance(info.value, PnPError) and "\n" not in str(info.value)
