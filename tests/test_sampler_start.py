"""Samplers and noise-started solvers start where the prior lives (issue 12).

``x_T ~ N(m, sigma_T^2 + v)`` with ``m``, ``v`` the mean and variance of the prior's data
(:meth:`pnpdiff.priors.base.Prior.start`); a Gaussian-mixture prior uses its exact mean and
covariance; an image prior that states nothing keeps the old ``0.5 + sigma_T n`` bit for bit.

The mixture test reruns the issue's table: the 25-component mixture of Cardoso et al. (d = 8,
means on a grid of spacing 8), N = 1000 samples of every sampler against N exact prior samples,
sliced Wasserstein (100 directions). Tolerances:

* floor: the mean sliced Wasserstein distance of 8 further sets of N exact samples to the same
  reference set -- the distance a perfect sampler has at this N (one pair alone scatters
  0.3-0.8 at N = 1000: the random mixture weights make the distance sensitive to mode counts);
* 100 steps: within 1.5x the floor (the issue's acceptance). Measured over 5 seeds, as a
  multiple of the floor: DDPM 0.72-1.24, DDIM(0.5) 0.78-1.30, DDIM(0) = Euler 0.67-0.98, Heun
  0.67-1.05; with the old ``0.5 + 80 n`` start the ODE samplers sit at 1.70-2.85x, so the bound
  separates the two (asserted below, so that the check can fail);
* 20 steps: 1.5x the floor plus the sampler's discretisation bias on the Gaussian with the
  mixture's mean and covariance, derived from its update recursion (tests/gaussian_moments.py,
  written from the papers): the output law is ``N(m_n, P_n)``, and along a unit direction ``u``
  the W1 distance between ``N(0, u'P_n u)`` and ``N(0, u'S u)`` is
  ``|sqrt(u'P_n u) - sqrt(u'S u)| sqrt(2 / pi)``, averaged over the same 100 directions
  (DDPM 1.27, DDIM(0.5) 0.78, Euler 0.64, Heun 0.10).
"""

from __future__ import annotations

import math

import pytest
import torch
from gaussian_moments import GaussianMoments, cov_floor, rel_fro
from posterior_utils import sliced_wasserstein

from pnpdiff.errors import PnPError
from pnpdiff.priors import CallablePrior
from pnpdiff.priors.gaussian import GaussianPrior, mcgdiff_mixture
from pnpdiff.schedules import karras
from pnpdiff.solvers import ddim, ddpm, dps, euler, heun, reddiff

pytestmark = pytest.mark.usefixtures("one_thread")

F64 = torch.float64


def _blur_prior(**kw) -> CallablePrior:
    """A cheap image 'denoiser' (a 3x3 box average, not an MMSE one: only the plumbing matters)."""
    return CallablePrior(lambda x, s: torch.nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False),
                         sigma_max=1.0, **kw)


SAMPLERS = {
    "ddpm": lambda p, sig, x, g: ddpm(p, sig, x, generator=g),
    "ddim0": lambda p, sig, x, g: ddim(p, sig, x, generator=g),
    "ddim0.5": lambda p, sig, x, g: ddim(p, sig, x, eta=0.5, generator=g),
    "ddim1": lambda p, sig, x, g: ddim(p, sig, x, eta=1.0, generator=g),
    "euler": lambda p, sig, x, g: euler(p, sig, x, generator=g),
    "heun": lambda p, sig, x, g: heun(p, sig, x, generator=g),
}


# --------------------------------------------------------------------------- image priors
@pytest.mark.parametrize("name", list(SAMPLERS))
def test_image_prior_without_moments_keeps_the_mid_grey_start_bit_for_bit(name) -> None:
    prior = _blur_prior()
    sig = karras(6, sigma_min=0.01, sigma_max=1.0)
    old_start = 0.5 + 1.0 * torch.randn((2, 3, 8, 8), generator=torch.Generator().manual_seed(3))
    from_shape = SAMPLERS[name](prior, sig, (2, 3, 8, 8), torch.Generator().manual_seed(3))
    # the explicit tensor consumed the first draw of its own generator; continue the same stream
    g = torch.Generator().manual_seed(3)
    torch.randn((2, 3, 8, 8), generator=g)
    from_tensor = SAMPLERS[name](prior, sig, old_start, g)
    assert torch.equal(from_shape, from_tensor)


def test_start_uses_stated_mean_and_variance() -> None:
    mean = torch.tensor([0.2, 0.5, 0.7]).view(3, 1, 1)
    var = torch.tensor([0.01, 0.04, 0.0]).view(3, 1, 1)
    prior = _blur_prior(data_mean=mean, data_var=var)
    T, n = 0.3, 20000
    x = prior.start((n, 3, 2, 2), T, torch.Generator().manual_seed(0), dtype=F64)
    assert x.shape == (n, 3, 2, 2) and x.dtype == F64
    v = x.transpose(0, 1).reshape(3, -1)
    want_var = T**2 + var.flatten().double()
    m = v.shape[1]
    # sample mean: sd sqrt(var / m); sample variance: sd var sqrt(2 / (m - 1)) (Gaussian)
    assert ((v.mean(1) - mean.flatten().double()).abs() < 4 * (want_var / m).sqrt()).all()
    assert ((v.var(1) - want_var).abs() < 4 * want_var * math.sqrt(2 / (m - 1))).all()


def test_data_range_midpoint_is_the_default_mean() -> None:
    prior = _blur_prior(data_range=(-1.0, 1.0))
    x = prior.start((4000, 1, 4, 4), 0.1, torch.Generator().manual_seed(0), dtype=F64)
    assert abs(float(x.mean())) < 4 * 0.1 / math.sqrt(x.numel())


@pytest.mark.parametrize("bad", [-0.1, float("nan"), "big", [0.1, -1.0]])
def test_bad_data_variance_is_refused(bad) -> None:
    with pytest.raises(PnPError, match="data_var"):
        _blur_prior(data_var=bad)


def test_bad_data_mean_is_refused() -> None:
    with pytest.raises(PnPError, match="data_mean"):
        _blur_prior(data_mean=float("inf"))


# --------------------------------------------------------------------------- solvers from noise
def _square(x: torch.Tensor) -> torch.Tensor:
    return x**2  # a nonlinear forward model (no adjoint, no prox)


def test_dps_nonlinear_start_for_an_image_prior_is_unchanged() -> None:
    prior = _blur_prior()
    y = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    sig = karras(4, sigma_min=0.01, sigma_max=1.0)
    new = dps(y, _square, prior, sig, 0.01, generator=torch.Generator().manual_seed(5))
    old = dps(y, _square, prior, sig, 0.01, x_init=torch.full_like(y, 0.5), generator=torch.Generator().manual_seed(5))
    assert torch.equal(new, old)


def test_dps_nonlinear_draws_its_start_from_the_prior() -> None:
    prior = mcgdiff_mixture(8, torch.Generator().manual_seed(0))
    calls = []
    orig = prior.start

    def spy(shape, sigma, generator=None, device=None, dtype=None):
        calls.append((tuple(shape), sigma))
        return orig(shape, sigma, generator, device, dtype)

    prior.start = spy
    y = torch.zeros(2, 8, dtype=F64)
    dps(y, _square, prior, karras(3, sigma_min=0.01, sigma_max=80), 0.1, generator=torch.Generator().manual_seed(0))
    assert calls == [((2, 8), 80.0)]


def test_reddiff_nonlinear_starts_at_the_prior_mean() -> None:
    prior = mcgdiff_mixture(8, torch.Generator().manual_seed(0))
    y = torch.zeros(2, 8, dtype=F64)
    mu = reddiff(y, _square, prior, torch.zeros(1, dtype=F64), 0.1)  # no step: the initial mean itself
    torch.testing.assert_close(mu, prior.mean().expand(2, 8), rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- Gaussian / mixture
def test_gaussian_start_is_the_exact_noisy_marginal() -> None:
    """N(mu, S) at sigma T is N(mu, S + T^2 I): the start's sample moments within the Wishart floor."""
    g = torch.Generator().manual_seed(0)
    Q = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=F64))[0]
    S = Q @ torch.diag(torch.tensor([9.0, 4.0, 1.0, 0.5, 0.1, 0.01], dtype=F64)) @ Q.T
    mu = torch.arange(6, dtype=F64)
    prior = GaussianPrior(mu, S)
    T, n = 2.0, 8000
    x = prior.start((n, 6), T, torch.Generator().manual_seed(1), dtype=F64)
    P = S + T * T * torch.eye(6, dtype=F64)
    fro_rms, _ = cov_floor(P, n)
    assert rel_fro(torch.cov(x.T), P) < 3 * fro_rms
    assert float((x.mean(0) - mu).norm()) < 3 * math.sqrt(float(torch.trace(P)) / n)


def test_mixture_start_has_the_mixture_moments() -> None:
    prior = mcgdiff_mixture(8, torch.Generator().manual_seed(0))
    T, n = 5.0, 8000  # a small T so that the covariance of the means is visible
    x = prior.start((n, 8), T, torch.Generator().manual_seed(1), dtype=F64)
    P = prior.covariance() + T * T * torch.eye(8, dtype=F64)
    fro_rms, _ = cov_floor(P, n)
    assert rel_fro(torch.cov(x.T), P) < 3 * fro_rms
    mean, var = prior.data_moments(torch.zeros(3, 8, dtype=F64))
    torch.testing.assert_close(mean[0], prior.mean())
    torch.testing.assert_close(var[1], torch.diagonal(prior.covariance()))


def test_mixture_start_refuses_a_wrong_shape() -> None:
    prior = mcgdiff_mixture(8, torch.Generator().manual_seed(0))
    with pytest.raises(PnPError, match="shape"):
        prior.start((4, 7), 1.0)


N = 1000
GAUSS_STEP = {"ddpm": lambda gm: gm.ddpm_step(), "ddim0": lambda gm: gm.ddim_step(0.0),
              "ddim0.5": lambda gm: gm.ddim_step(0.5), "ddim1": lambda gm: gm.ddim_step(1.0),
              "euler": lambda gm: gm.ddim_step(0.0), "heun": lambda gm: gm.heun_step()}


@pytest.fixture(scope="module")
def mixture():
    prior = mcgdiff_mixture(8, torch.Generator().manual_seed(0))
    ref = prior.sample(N, generator=torch.Generator().manual_seed(100))
    floor = sum(sliced_wasserstein(prior.sample(N, generator=torch.Generator().manual_seed(200 + k)), ref)
                for k in range(8)) / 8
    return prior, ref, floor


def _gaussian_bias(prior, name: str, steps: int) -> float:
    """Expected sliced W1 bias of the sampler's recursion on N(mean, cov) of the mixture (see the module doc)."""
    gm = GaussianMoments(prior.mean(), prior.covariance())
    sig = karras(steps, sigma_min=0.002, sigma_max=80).tolist()
    _, P = gm.run(gm.mu.clone(), gm.S + sig[0] ** 2 * gm.eye, sig, GAUSS_STEP[name](gm))
    dirs = torch.randn(8, 100, generator=torch.Generator().manual_seed(0), dtype=F64)  # as sliced_wasserstein
    dirs = dirs / dirs.norm(dim=0, keepdim=True)
    sd_p = torch.einsum("dk,de,ek->k", dirs, P, dirs).sqrt()
    sd_s = torch.einsum("dk,de,ek->k", dirs, gm.S, dirs).sqrt()
    return float((sd_p - sd_s).abs().mean()) * math.sqrt(2 / math.pi)


@pytest.mark.parametrize("steps", [20, 100])
@pytest.mark.parametrize("name", list(SAMPLERS))
def test_samplers_from_the_prior_start_reach_the_mixture(mixture, name, steps) -> None:
    prior, ref, floor = mixture
    x = SAMPLERS[name](prior, karras(steps, sigma_min=0.002, sigma_max=80), (N, 8), torch.Generator().manual_seed(1))
    assert x.shape == (N, 8)
    dist = sliced_wasserstein(x, ref)
    bound = 1.5 * floor + (_gaussian_bias(prior, name, steps) if steps == 20 else 0.0)
    assert dist < bound, (dist, floor, bound)


@pytest.mark.parametrize("name", ["euler", "heun"])
def test_the_bound_fails_for_the_old_mid_grey_start(mixture, name) -> None:
    """The check can fail: the ODE carries the error of the 0.5 + 80 n start to the end."""
    prior, ref, floor = mixture
    g = torch.Generator().manual_seed(1)
    x = SAMPLERS[name](prior, karras(100, sigma_min=0.002, sigma_max=80), 0.5 + 80 * torch.randn(N, 8, generator=g), g)
    assert sliced_wasserstein(x, ref) > 1.5 * floor
