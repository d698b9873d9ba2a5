"""RED-diff and DPS in pnpdiff's units against transcriptions of the official loops in theirs.

Each reference loop is the official algorithm written in the VP variables on [-1, 1]
(``x' = 2 x - 1``, ``x_t' = sqrt(abar) x' + sqrt(1 - abar) z``, ``y' = A x' + n'``, so the
residual doubles) with the official code's losses and steps; its eps-model is the exact Gaussian
prior's noise prediction seen through the VP <-> VE map of ``ALGORITHMS.md``
(``abar = 1 / (1 + 4 sigma^2)``). pnpdiff's solvers, run in VE form on [0, 1] units with the
converted hyper-parameters and the same noise draws, must follow the same trajectory to float64
precision:

* RED-diff (official losses ``(e_obs**2).mean() / 2`` and ``(w_t * sg(e_t - z) * x').mean()``,
  ``w_t = lambda sqrt(1 - abar) / sqrt(abar)``, ``torch.optim.Adam(lr=0.1, betas=(0.9, 0.99))``):
  ``lam = 0.25`` carries over unchanged, ``lr`` halves to 0.05;
* DPS (ancestral DDPM step with the fixed posterior variance, then
  ``x' -= scale * grad_{x_t'} ||y' - A x0'||``, ``scale = 2 zeta'``): ``zeta = zeta'``.
"""

from __future__ import annotations

import torch
from posterior_utils import gaussian_problem

from pnpdiff.operators import Matrix
from pnpdiff.schedules import karras
from pnpdiff.solvers.dps import dps
from pnpdiff.solvers.reddiff import reddiff


def _official_reddiff(y01, A, prior, sigmas, mu0, noises, lam=0.25, lr=0.1):
    """The official RED-diff loop in [-1, 1] VP units (reference; not product code)."""
    ones = torch.ones(1, A.shape[1], dtype=A.dtype)
    y = 2 * y01 - ones @ A.T  # y' = A x' + n' with x' = 2x - 1
    x = (2 * mu0 - 1).clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr, betas=(0.9, 0.99))
    for t, z in zip(sigmas, noises):
        abar = 1.0 / (1.0 + 4.0 * t**2)
        xt = abar**0.5 * x.detach() + (1 - abar) ** 0.5 * z
        with torch.no_grad():  # the model's eps at x_t', through the VP -> VE map
            et = prior.eps((xt / abar**0.5 + 1) / 2, t)
        w_t = lam * ((1 - abar) / abar) ** 0.5
        loss_obs = ((y - x @ A.T) ** 2).mean() / 2
        loss_noise = (w_t * (et - z).detach() * x).mean()
        opt.zero_grad()
        (loss_noise + loss_obs).backward()
        opt.step()
    return (x.detach() + 1) / 2


def test_reddiff_follows_the_official_loop_in_its_units() -> None:
    prob = gaussian_problem()
    A = prob.operator.matrix
    sigmas = karras(30, sigma_min=0.01, sigma_max=2.0)
    mu0 = torch.linspace(-0.5, 0.5, 8, dtype=torch.float64).reshape(1, 8)
    g = torch.Generator().manual_seed(0)
    noises = [torch.randn(mu0.shape, generator=g, dtype=torch.float64) for _ in sigmas[:-1]]
    ref = _official_reddiff(prob.y, A, prob.prior, sigmas[:-1].tolist(), mu0, noises)
    got = reddiff(prob.y, Matrix(A), prob.prior, sigmas, prob.sigma_y, lam=0.25, lr=0.05, x_init=mu0,
                  generator=torch.Generator().manual_seed(0))
    assert (got - mu0).abs().max() > 0.05  # it moved
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-9)
    # the old normalisation (data term / (2 sigma_y^2), summed) is a different method here
    other = reddiff(prob.y, Matrix(A), prob.prior, sigmas, prob.sigma_y, lam=0.25 * 4, lr=0.05, x_init=mu0,
                    generator=torch.Generator().manual_seed(0))
    assert (other - ref).abs().max() > 1e-3


def test_reddiff_is_invariant_to_repeating_the_measurement() -> None:
    """Per-entry means: stacking y twice (operator [A; A]) changes nothing; neither does sigma_y
    once the start is fixed."""
    prob = gaussian_problem()
    A = prob.operator.matrix
    sigmas = karras(20, sigma_min=0.01, sigma_max=2.0)
    mu0 = torch.full((1, 8), 0.3, dtype=torch.float64)

    def run(op, y, sigma_y):
        return reddiff(y, op, prob.prior, sigmas, sigma_y, x_init=mu0, generator=torch.Generator().manual_seed(3))

    a = run(Matrix(A), prob.y, prob.sigma_y)
    b = run(Matrix(torch.cat([A, A])), torch.cat([prob.y, prob.y], dim=1), prob.sigma_y)
    c = run(Matrix(A), prob.y, 10 * prob.sigma_y)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    torch.testing.assert_close(a, c, rtol=0, atol=0)


def _official_dps(y01, A, prior, sigmas, x_start, noises, scale):
    """The official DPS loop (Chung et al.'s code, fixed posterior variance, no clipping) in
    [-1, 1] VP units (reference; not product code). ``sigmas`` ends in 0 (abar = 1)."""
    ones = torch.ones(1, A.shape[1], dtype=A.dtype)
    y = 2 * y01 - ones @ A.T
    abars = [1.0 / (1.0 + 4.0 * s**2) for s in sigmas]
    x = abars[0] ** 0.5 * (2 * x_start - 1)
    for i in range(len(sigmas) - 1):
        ab_t, ab_s = abars[i], abars[i + 1]
        x = x.detach().requires_grad_(True)
        eps = prior.eps((x / ab_t**0.5 + 1) / 2, sigmas[i])
        x0 = (x - (1 - ab_t) ** 0.5 * eps) / ab_t**0.5
        beta = 1 - ab_t / ab_s
        mean = ab_s**0.5 * beta / (1 - ab_t) * x0 + (ab_t / ab_s) ** 0.5 * (1 - ab_s) / (1 - ab_t) * x
        var = beta * (1 - ab_s) / (1 - ab_t)
        sample = mean + var**0.5 * noises[i]
        norm = torch.linalg.norm(y - x0 @ A.T)
        (grad,) = torch.autograd.grad(norm, x)
        x = sample.detach() - scale * grad
    return (x + 1) / 2  # abar = 1 at sigma 0


def test_dps_follows_the_official_loop_in_its_units() -> None:
    """DPS's VE step ``zeta' sqrt((1 + 4t^2)(1 + 4s^2)) grad ||y - A x0||`` is the official
    ``x_vp -= scale * grad_{x_vp} ||y' - A x0'||`` with ``scale = 2 zeta'`` (ALGORITHMS.md)."""
    prob = gaussian_problem()
    A = prob.operator.matrix
    sigmas = karras(25, sigma_min=0.01, sigma_max=3.0)
    x_start = torch.linspace(-0.5, 0.5, 8, dtype=torch.float64).reshape(1, 8)
    g = torch.Generator().manual_seed(0)
    draws = [torch.randn(x_start.shape, generator=g, dtype=torch.float64) for _ in range(len(sigmas))]
    sig = sigmas.tolist()
    zeta = 0.3
    ref = _official_dps(prob.y, A, prob.prior, sig, x_start + sig[0] * draws[0], draws[1:], scale=2 * zeta)
    got = dps(prob.y, Matrix(A), prob.prior, sigmas, prob.sigma_y, zeta=zeta, x_init=x_start,
              generator=torch.Generator().manual_seed(0))
    unguided = dps(prob.y, Matrix(A), prob.prior, sigmas, prob.sigma_y, zeta=0.0, x_init=x_start,
                   generator=torch.Generator().manual_seed(0))
    assert (got - unguided).abs().max() > 0.05  # the guidance matters here
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-9)
