"""Unconditional samplers (DDPM, DDIM, Euler, Heun) on an analytic Gaussian prior."""

from __future__ import annotations

import pytest
import torch
from posterior_utils import gaussian_problem

from pnpdiff.schedules import karras
from pnpdiff.solvers import ddim, ddpm, euler, heun

N = 2000


@pytest.fixture(scope="module")
def setup():
    prior = gaussian_problem().prior
    sig = karras(100, sigma_min=0.002, sigma_max=80)
    g = torch.Generator().manual_seed(0)
    x_T = prior.sample(N, generator=g) + 80 * torch.randn(N, 8, generator=g, dtype=torch.float64)  # exact p_T
    exact = prior.sample(N, generator=g)
    return prior, sig, x_T, exact


def _moment_errors(x, prior):
    mu, cov = prior.mean().flatten(), prior.covariance()
    m_err = float((x.mean(0) - mu).norm() / mu.norm())
    c_err = float((torch.cov(x.T) - cov).norm() / cov.norm())
    return m_err, c_err


@pytest.mark.parametrize("sampler", [ddpm, heun])
def test_gaussian_moments(setup, sampler):
    prior, sig, x_T, exact = setup
    m_exact, c_exact = _moment_errors(exact, prior)  # the Monte-Carlo floor of N exact samples
    m_err, c_err = _moment_errors(sampler(prior, sig, x_T, generator=torch.Generator().manual_seed(1)), prior)
    # Exact start (p_T) and exact denoiser: the only errors are the 100-step discretisation (DDPM
    # converges in mean and covariance; Heun is second order) and Monte Carlo; the bound is 2.5x the
    # Monte-Carlo error of N exact prior samples drawn the same way (floors 1 % / 2 % if it is lucky).
    assert m_err < 2.5 * max(m_exact, 0.01)
    assert c_err < 2.5 * max(c_exact, 0.02)


def test_euler_and_ddim_eta0_match_the_euler_product(setup):
    """Each against an independent closed form, not against each other: for N(mu, S) and one
    eigen-direction (variance lam) an Euler step of dx/dsigma = (x - D(x, sigma)) / sigma from t to s
    scales x - mu by (lam + s t) / (lam + t^2) (the exact ODE would scale it by
    sqrt((lam + s^2) / (lam + t^2))). tests/test_samplers_moments.py checks convergence to the exact ODE."""
    prior, sig, x_T, _ = setup
    sig = sig[::5].contiguous()
    mu = prior.mean().flatten()
    lam, U = torch.linalg.eigh(prior.covariance())
    scale = torch.ones_like(lam)
    s_list = sig.tolist()
    for t, s in zip(s_list[:-1], s_list[1:]):
        scale = scale * (lam + s * t) / (lam + t * t)
    expected = mu + ((x_T[:200] - mu) @ U) * scale @ U.T
    for out in (euler(prior, sig, x_T[:200]), ddim(prior, sig, x_T[:200], eta=0.0)):
        torch.testing.assert_close(out, expected, rtol=1e-9, atol=1e-9)


def test_ddim_eta1_is_ddpm(setup):
    prior, sig, x_T, _ = setup
    a = ddim(prior, sig[::5].contiguous(), x_T[:200], eta=1.0, generator=torch.Generator().manual_seed(2))
    b = ddpm(prior, sig[::5].contiguous(), x_T[:200], generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_start_from_shape():
    prior = gaussian_problem().prior
    calls = []
    a = ddim(prior, karras(5, 0.002, 80), (3, 8), eta=0.5, dtype=torch.float64,
             generator=torch.Generator().manual_seed(0), callback=lambda *args: calls.append(args[1]))
    b = ddim(prior, karras(5, 0.002, 80), (3, 8), eta=0.5, dtype=torch.float64,
             generator=torch.Generator().manual_seed(0))
    assert a.shape == (3, 8) and torch.equal(a, b) and len(calls) == 5
