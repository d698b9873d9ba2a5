"""pnpdiff.noise: the Poisson prox against a scalar Newton solve, the Anscombe inverse unbiased on a
constant image (within its standard error), the transform's variance stabilisation."""

from __future__ import annotations

import math

import pytest
import torch

from pnpdiff.errors import ValueRangeError
from pnpdiff.noise import anscombe, inverse_anscombe, poisson_prox


def _newton(v: float, y: float, rho: float, peak: float) -> float:
    """The minimiser of peak x - y log(peak x) + rho/2 (x - v)^2 by Newton's method on x > 0."""
    x = max(v, 1e-3) if y > 0 else max(v - peak / rho, 0.0)
    if y == 0:
        return x  # the objective is then a parabola plus a linear term: its clipped vertex
    for _ in range(200):
        g = peak - y / x + rho * (x - v)
        h = y / x**2 + rho
        step = g / h
        while x - step <= 0:
            step /= 2
        x -= step
        if abs(step) < 1e-15 * max(1.0, x):
            break
    return x


@pytest.mark.parametrize("peak", [5.0, 30.0, 100.0])
def test_poisson_prox_against_newton(peak: float) -> None:
    g = torch.Generator().manual_seed(0)
    v = torch.rand(64, generator=g, dtype=torch.float64) * 1.2 - 0.1
    y = torch.poisson(torch.rand(64, generator=g, dtype=torch.float64) * peak, generator=g)
    for rho in (0.1, 3.0, 400.0):
        got = poisson_prox(v, y, rho, peak)
        want = torch.tensor([_newton(float(a), float(b), rho, peak) for a, b in zip(v, y)], dtype=torch.float64)
        assert torch.allclose(got, want, rtol=1e-10, atol=1e-12), (rho, (got - want).abs().max())


def test_poisson_prox_keeps_missing_pixels() -> None:
    v = torch.tensor([0.3, 0.7])
    y = torch.tensor([10.0, 1.0])
    mask = torch.tensor([1.0, 0.0])
    out = poisson_prox(v, y, 2.0, 20.0, mask)
    assert out[1] == v[1] and out[0] != v[0]


@pytest.mark.parametrize("lam", [5.0, 10.0, 30.0, 100.0])
def test_the_inverse_is_unbiased_on_a_constant_image(lam: float) -> None:
    """I(E[f(z)]) = lam for z ~ Poisson(lam): the mean of f over many draws, mapped back, lands on
    lam within its standard error (propagated through I's slope); the algebraic inverse does not."""
    g = torch.Generator().manual_seed(1)
    z = torch.poisson(torch.full((400_000,), lam, dtype=torch.float64), generator=g)
    f = anscombe(z)
    m, se = f.mean(), f.std() / math.sqrt(f.numel())
    est = inverse_anscombe(m.reshape(1))[0]
    slope = 0.5 * float(m)  # dI/dD ~ D / 2
    assert abs(float(est) - lam) < 4 * slope * float(se), (float(est), lam)
    algebraic = (m / 2) ** 2 - 0.375
    assert abs(float(algebraic) - lam) > 4 * slope * float(se)  # the bias the exact inverse removes


def test_generalised_transform_stabilises_poisson_gaussian_noise() -> None:
    g = torch.Generator().manual_seed(2)
    gain, sigma = 0.02, 0.03
    for x in (0.2, 0.5, 0.9):
        p = torch.poisson(torch.full((200_000,), x / gain, dtype=torch.float64), generator=g)
        z = gain * p + sigma * torch.randn(p.shape, generator=g, dtype=torch.float64)
        f = anscombe(z, gain, sigma)
        assert f.std().item() == pytest.approx(1.0, abs=0.02)
        back = inverse_anscombe(f.mean().reshape(1), gain, sigma)[0]
        assert back.item() == pytest.approx(x, rel=2e-3)


def test_bad_parameters_are_pnperrors() -> None:
    with pytest.raises(ValueRangeError, match="gain"):
        anscombe(torch.ones(2), gain=0.0)
    with pytest.raises(ValueRangeError, match="read noise"):
        inverse_anscombe(torch.ones(2), sigma=-1.0)
    with pytest.raises(ValueRangeError, match="peak"):
        poisson_prox(torch.ones(2), torch.ones(2), 1.0, float("nan"))


def _ramp(lo: float, hi: float, n: int = 256) -> torch.Tensor:
    """A smooth ramp from ``lo`` to ``hi`` with a bright disk (edges): ``n x n``, float64."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, n, dtype=torch.float64),
                            torch.linspace(0, 1, n, dtype=torch.float64), indexing="ij")
    return lo + (hi - lo) * (0.5 * xx + 0.3 * yy + 0.2 * ((xx - 0.5) ** 2 + (yy - 0.4) ** 2 < 0.05))


def _pg(x: torch.Tensor, gain: float, sigma: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return gain * torch.poisson(x / gain, generator=g) + sigma * torch.randn(x.shape, generator=g, dtype=x.dtype)


@pytest.mark.parametrize("gain, sigma", [(0.02, 0.05), (0.005, 0.04), (0.03, 0.06)])
def test_poisson_gaussian_parameters_within_15_percent_at_256(gain: float, sigma: float) -> None:
    """The fit recovers planted parameters on a 256^2 image with dark to bright smooth regions and
    edges (the issue's bar: within 15 %), where the read noise is identified: its Monte-Carlo spread on
    this image is under 6 % of sigma (measured over 12 seeds), so a 15 % error is a bias, not bad luck."""
    from pnpdiff.noise import estimate_poisson_gaussian

    a, s = estimate_poisson_gaussian(_pg(_ramp(0.02, 0.95), gain, sigma, 3))
    assert a == pytest.approx(gain, rel=0.15) and s == pytest.approx(sigma, rel=0.15), (a, s)


def test_poisson_gaussian_standard_errors_match_the_monte_carlo_spread() -> None:
    """The returned standard errors are those of the estimate: over 12 noise draws on a textureless
    image (where the fit's model is exact) the empirical standard deviation of ``gain`` and ``sigma`` is
    within a factor 1.6 of the mean reported standard error (12 draws estimate a standard deviation
    to about +-20 %), and the fit is unbiased to within three standard errors of the mean."""
    from pnpdiff.noise import estimate_poisson_gaussian

    gain, sigma, x = 0.01, 0.03, _ramp(0.02, 0.95, 192)
    fits = torch.tensor([estimate_poisson_gaussian(_pg(x, gain, sigma, seed), return_stderr=True)
                         for seed in range(12)], dtype=torch.float64)
    for k, true in ((0, gain), (1, sigma)):
        spread, se = float(fits[:, k].std()), float(fits[:, 2 + k].mean())
        assert 1 / 1.6 < spread / se < 1.6, (k, spread, se)
        assert abs(float(fits[:, k].mean()) - true) < 3 * spread / math.sqrt(12), (k, fits[:, k])


def test_poisson_gaussian_read_noise_reported_unidentified_without_dark_levels() -> None:
    """On a photo with no dark level (brightness 0.5-0.9) the read noise of 0.02 is drowned by shot
    noise of variance 0.005-0.009 (sigma^2 = 0.0004): the fit must say so through its standard
    error (over a third of the value) rather than report a confident number; the gain stays found."""
    from pnpdiff.noise import estimate_poisson_gaussian

    gain, sigma = 0.01, 0.02
    a, s, se_a, se_s = estimate_poisson_gaussian(_pg(_ramp(0.5, 0.9), gain, sigma, 5), return_stderr=True)
    assert se_s > sigma / 3, (s, se_s)
    assert a == pytest.approx(gain, rel=0.5) and se_a < 0.25 * gain, (a, se_a)


def test_poisson_gaussian_fit_rejects_bad_arguments() -> None:
    from pnpdiff.noise import estimate_poisson_gaussian

    for bad in (lambda: estimate_poisson_gaussian(torch.rand(5, 5)),
                lambda: estimate_poisson_gaussian(torch.rand(32, 32), bins=1),
                lambda: estimate_poisson_gaussian(torch.rand(32, 32), bins=2.5),
                lambda: estimate_poisson_gaussian(torch.rand(32, 32), return_stderr="yes"),
                lambda: estimate_poisson_gaussian("not a tensor"),
                lambda: estimate_poisson_gaussian(torch.full((32, 32), 0.5))):
        with pytest.raises(ValueRangeError):
            bad()
