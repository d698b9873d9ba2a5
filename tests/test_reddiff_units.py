"""RED-diff in pnpdiff's units against a transcription of the official algorithm in its own.

The reference loop below is the official RED-diff step written in the VP variables on [-1, 1]
(``x' = 2 mu - 1``, ``x_t' = sqrt(abar) x' + sqrt(1 - abar) z``, ``y' = A x' + n'``), with the
official losses (``(e_obs**2).mean() / 2`` and ``(w_t * sg(e_t - z) * x').mean()``,
``w_t = lambda sqrt(1 - abar) / sqrt(abar)``) and ``torch.optim.Adam(lr=0.1, betas=(0.9, 0.99))``.
Its eps-model is the exact Gaussian prior's noise prediction seen through the VP <-> VE map of
``ALGORITHMS.md``. pnpdiff's :func:`~pnpdiff.solvers.reddiff.reddiff` with ``lam = 0.25`` and
``lr = 0.05`` on [0, 1] data must then follow the same trajectory: the paper's lambda carries
over unchanged and the learning rate halves.
"""

from __future__ import annotations

import torch
from pnpdiff.operators import Matrix
from posterior_utils import gaussian_problem

from pnpdiff.schedules import karras
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
