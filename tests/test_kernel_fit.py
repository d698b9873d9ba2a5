"""Parametric blur kernels fitted from ``y`` alone (pnpdiff.kernel_fit) and the two kernel
builders it fits (operators.kernels.disk_kernel, line_kernel); issue 28, item 1 "parametric"."""

from __future__ import annotations

import math

import pytest
import torch

from pnpdiff import kernel_fit as kf
from pnpdiff.errors import OperatorError, PnPError, ShapeError, UnknownNameError, ValueRangeError
from pnpdiff.io import load_source_image
from pnpdiff.operators import Blur, GaussianBlur, disk_kernel, gaussian_kernel, line_kernel


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _photo(name: str, size: int) -> torch.Tensor:
    return load_source_image(f"skimage:{name}", size)[0].double()


def _blurred(x: torch.Tensor, op, sigma_y: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return op.double()(x) + sigma_y * torch.randn(x.shape, generator=g, dtype=torch.float64)


# -------------------------------------------------------------------------------------------------
# the kernel builders
# -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("radius", [1.0, 2.5, 3.7, 6.0])
def test_disk_kernel_sum_symmetry_area(radius):
    k = disk_kernel(radius, dtype=torch.float64)
    assert k.shape == (2 * math.ceil(radius) + 1,) * 2
    assert k.min() >= 0 and abs(float(k.sum()) - 1) < 1e-12
    torch.testing.assert_close(k, k.flip(0), atol=1e-15, rtol=0)
    torch.testing.assert_close(k, k.flip(1), atol=1e-15, rtol=0)
    torch.testing.assert_close(k, k.T, atol=1e-15, rtol=0)
    # area coverage: interior pixels are 1 before normalising, so sum / max is the covered area
    area = float(k.sum() / k.max())
    assert abs(area - math.pi * radius**2) < 0.01 * math.pi * radius**2
    assert k.dtype == torch.float64 and disk_kernel(radius).dtype == torch.float32


def test_disk_kernel_continuous_in_radius():
    # a fit over the radius needs no steps: a 0.1 % change of radius changes the kernel by ~0.1 %
    a, b = disk_kernel(3.0, size=9, dtype=torch.float64), disk_kernel(3.003, size=9, dtype=torch.float64)
    assert 0 < float((a - b).abs().sum()) < 5e-3


@pytest.mark.parametrize("length,angle", [(5.0, 0.0), (10.0, 30.0), (25.0, 45.0), (41.0, 100.0), (7.3, 163.0)])
def test_line_kernel_sum_symmetry_moment(length, angle):
    k = line_kernel(length, angle, dtype=torch.float64)
    h, w = k.shape
    assert h == w == 2 * math.ceil(length / 2) + 1
    assert k.min() >= 0 and abs(float(k.sum()) - 1) < 1e-12
    torch.testing.assert_close(k, k.flip(0, 1), atol=1e-15, rtol=0)  # centred: point-symmetric
    rows = torch.arange(h, dtype=torch.float64)[:, None] - h // 2
    cols = torch.arange(w, dtype=torch.float64)[None, :] - w // 2
    a = math.radians(angle)
    along = cols * math.cos(a) - rows * math.sin(a)
    across = cols * math.sin(a) + rows * math.cos(a)
    m_along = float((k * along**2).sum())
    # a uniform density on [-L/2, L/2], plus at most the bilinear splat's 1/6 (1/3 on a diagonal)
    assert length**2 / 12 <= m_along + 1e-9 <= length**2 / 12 + 1 / 3
    assert float((k * across**2).sum()) <= 1 / 3
    torch.testing.assert_close(k, line_kernel(length, angle + 180.0, dtype=torch.float64))


def test_line_kernel_zero_length_is_a_delta():
    k = line_kernel(0.0, 12.0)
    assert k.shape == (1, 1) and float(k) == 1.0


@pytest.mark.parametrize("call", [
    lambda: disk_kernel(0.0), lambda: disk_kernel(-1.0), lambda: disk_kernel("3"), lambda: disk_kernel(3, size=0),
    lambda: disk_kernel(1e6), lambda: line_kernel(-1.0, 0.0), lambda: line_kernel(5.0, float("nan")),
    lambda: line_kernel(5, 0, size=(3, 0)), lambda: line_kernel(True, 0.0),
])
def test_kernel_builders_refuse_bad_arguments(call):
    with pytest.raises(OperatorError) as info:
        call()
    assert "\n" not in str(info.value)


# -------------------------------------------------------------------------------------------------
# the fits: argument errors
# -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,error", [
    ({"family": "boxcar"}, UnknownNameError),
    ({"family": "gaussian", "size": 2}, ValueRangeError),
    ({"family": "gaussian", "size": 65}, ValueRangeError),
    ({"family": "gaussian", "size": 5.5}, ValueRangeError),
    ({"family": "gaussian", "sigma_y": -0.1}, ValueRangeError),
    ({"family": "gaussian", "sigma_y": "0.1"}, ValueRangeError),
])
def test_fit_kernel_bad_arguments(kwargs, error):
    y = torch.rand(1, 1, 64, 64)
    with pytest.raises(error) as info:
        kf.fit_kernel(y, **kwargs)
    assert isinstance(info.value, PnPError) and "\n" not in str(info.value)


@pytest.mark.parametrize("y,error", [
    (torch.rand(64), ShapeError), (torch.rand(1, 1, 1, 64, 64), ShapeError), (torch.rand(8, 8), ShapeError),
    ([[0.5] * 32] * 32, ShapeError), (torch.full((32, 32), float("nan")), ValueRangeError),
    (torch.ones(32, 32, dtype=torch.int64), ValueRangeError),
])
def test_fit_kernel_bad_images(y, error):
    with pytest.raises(error) as info:
        kf.fit_gaussian(y)
    assert "\n" not in str(info.value)


def test_fit_best_bad_families():
    y = torch.rand(32, 32)
    with pytest.raises(ValueRangeError):
        kf.fit_best(y, families=())
    with pytest.raises(UnknownNameError):
        kf.fit_best(y, families=("gaussian", "disk"))


# -------------------------------------------------------------------------------------------------
# the fits: planted kernels
# -------------------------------------------------------------------------------------------------
def _check_result(fit: kf.KernelFit, family: str) -> None:
    assert fit.family == family and set(fit.params) == set(kf.FAMILIES[family]) == set(fit.stderr)
    k = fit.kernel
    assert k.dtype == torch.float64 and k.ndim == 2 and k.min() >= 0 and abs(float(k.sum()) - 1) < 1e-9
    assert all(s > 0 and math.isfinite(s) for s in fit.stderr.values())
    assert math.isfinite(fit.log_likelihood) and fit.sigma_y > 0


@pytest.mark.parametrize("sigma,sigma_y,boundary", [(1.5, 0.01, "circular"), (4.0, 0.025, "reflect")])
def test_gaussian_sigma_on_a_photo(sigma, sigma_y, boundary):
    """The issue's number: sigma within 10 % at 256^2 (the full grid is the slow test below)."""
    y = _blurred(_photo("camera", 256), GaussianBlur(sigma, boundary=boundary), sigma_y)
    fit = kf.fit_gaussian(y)
    _check_result(fit, "gaussian")
    assert abs(fit.params["sigma"] / sigma - 1) < 0.10
    assert abs(fit.sigma_y / sigma_y - 1) < 0.15  # estimate_noise_level's estimate


@pytest.mark.slow
@pytest.mark.parametrize("boundary", ["circular", "reflect"])
@pytest.mark.parametrize("sigma_y", [0.01, 0.025])
@pytest.mark.parametrize("sigma", [0.8, 1.5, 2.5, 4.0])
def test_gaussian_sigma_grid_on_a_photo(sigma, sigma_y, boundary):
    y = _blurred(_photo("camera", 256), GaussianBlur(sigma, boundary=boundary), sigma_y)
    assert abs(kf.fit_gaussian(y).params["sigma"] / sigma - 1) < 0.10


@pytest.mark.parametrize("photo,radius,boundary", [("astronaut", 3.0, "circular"), ("camera", 5.5, "reflect")])
def test_defocus_radius(photo, radius, boundary):
    y = _blurred(_photo(photo, 128), Blur(disk_kernel(radius, dtype=torch.float64), boundary=boundary), 0.01)
    fit = kf.fit_defocus(y)
    _check_result(fit, "defocus")
    assert abs(fit.params["radius"] / radius - 1) < 0.10


@pytest.mark.parametrize("photo,length,angle,boundary", [("astronaut", 15.0, 30.0, "circular"),
                                                          ("camera", 25.0, 120.0, "reflect")])
def test_motion_length_and_angle(photo, length, angle, boundary):
    k = line_kernel(length, angle, dtype=torch.float64)
    y = _blurred(_photo(photo, 128), Blur(k, boundary=boundary), 0.01)
    fit = kf.fit_motion(y)
    _check_result(fit, "motion")
    assert abs(fit.params["length"] / length - 1) < 0.10
    d = abs(fit.params["angle"] - angle) % 180
    assert min(d, 180 - d) < 5.0
    assert 0 <= fit.params["angle"] < 180


def test_fit_best_picks_the_planted_family():
    x = _photo("camera", 128)
    cases = {
        "gaussian": GaussianBlur(2.0),
        "defocus": Blur(disk_kernel(4.0, dtype=torch.float64)),
        "motion": Blur(line_kernel(15.0, 60.0, dtype=torch.float64)),
    }
    for family, op in cases.items():
        fit = kf.fit_best(_blurred(x, op, 0.01))
        assert fit.family == family, (family, fit.family, fit.params)


def test_size_limits_the_kernel_and_colour_batch_shapes():
    x = _photo("astronaut", 64)
    y = _blurred(x, GaussianBlur(1.2), 0.01)
    fit = kf.fit_gaussian(y, size=9)
    assert fit.kernel.shape == (9, 9)
    # (C, H, W) and a luminance-only (H, W) view give close answers
    grey = 0.299 * y[0, 0] + 0.587 * y[0, 1] + 0.114 * y[0, 2]
    a = kf.fit_gaussian(y[0], sigma_y=0.01).params["sigma"]
    b = kf.fit_gaussian(grey, sigma_y=0.01 * math.sqrt(0.299**2 + 0.587**2 + 0.114**2)).params["sigma"]
    assert abs(a - b) < 1e-6


# -------------------------------------------------------------------------------------------------
# the uncertainty: an independent check of the Fisher information
# -------------------------------------------------------------------------------------------------
def _model_image(n: int, g: torch.Generator) -> torch.Tensor:
    """A circular Gaussian-process image drawn from the fit's own image model (power law and the
    reference MTF), rescaled into [0, 1]."""
    fy = torch.fft.fftfreq(n, dtype=torch.float64) * 2 * math.pi
    fx = torch.fft.rfftfreq(n, dtype=torch.float64) * 2 * math.pi
    r2 = fy[:, None] ** 2 + fx[None, :] ** 2
    r2[0, 0] = 1.0
    amp = r2 ** (-kf.ALPHA / 4) * torch.exp(-(kf.REFERENCE_SIGMA**2) * r2 / 2)
    amp[0, 0] = 0.0
    w = torch.randn(n, n, generator=g, dtype=torch.float64)
    x = torch.fft.irfft2(torch.fft.rfft2(w) * amp, s=(n, n))
    return (0.5 + 0.15 * x / x.std())[None, None]


@pytest.mark.parametrize("family,kernel,name", [
    ("gaussian", gaussian_kernel(1.5, size=33, dtype=torch.float64), "sigma"),
    ("defocus", disk_kernel(3.0, dtype=torch.float64), "radius"),
])
def test_stderr_matches_the_spread_over_draws(family, kernel, name):
    est, se = [], []
    for i in range(20):
        g = torch.Generator().manual_seed(i)
        y = _blurred(_model_image(64, g), Blur(kernel), 0.01, seed=100 + i)
        fit = kf.fit_kernel(y, family, sigma_y=0.01)
        est.append(fit.params[name])
        se.append(fit.stderr[name])
    spread = float(torch.tensor(est).std())
    mean_se = sum(se) / len(se)
    assert 1 / 1.5 < spread / mean_se < 1.5, (spread, mean_se)


def test_periodic_component_removes_the_edge_jumps():
    """Moisan's p: p + s = u, s smooth (zero mean), and p's opposite edges nearly continue each other."""
    u = torch.linspace(0, 1, 48, dtype=torch.float64)[:, None] * torch.ones(1, 40, dtype=torch.float64)
    p = kf.periodic_component(u)
    s = u - p
    assert abs(float(s.mean())) < 1e-12
    jump_u = float((u[-1] - u[0]).abs().mean())
    jump_p = float((p[-1] - p[0]).abs().mean())
    assert jump_p < 0.1 * jump_u
