"""DAPS and PnP-DM against the exact law of their algorithms on a Gaussian prior.

Set-up: ``posterior_utils.gaussian_problem`` (d = 8, a random 2 x 8 ``Matrix``, sigma_y = 0.1),
``B`` independent runs in one batch, started from ``x_init`` = the prior mean so that no product
heuristic enters the reference.

Reference. Under a Gaussian prior ``N(mu, S)`` the exact denoiser is affine, and so is every
update of both algorithms (written below from the papers' algorithm boxes, independently of the
product code):

* DAPS (Zhang et al., CVPR 2025, Alg. 1): Euler steps of the probability-flow ODE
  ``x <- x + (s - t) (x - D(x, t)) / t`` from the annealing level ``t`` to 0 (Karras sigmas),
  ``langevin_steps`` of ``x0 <- x0 + eta (-(x0 - x0_hat) / t^2 - A^T (A x0 - y) / beta^2) +
  sqrt(2 eta) n``, then ``x_s = x0 + s n``;
* PnP-DM (Wu et al., NeurIPS 2024, Alg. 1): the exact Gaussian ``z | x`` with covariance
  ``(A^T A / sigma_y^2 + I / rho^2)^{-1}``, then DDPM ancestral steps from ``rho`` started at
  ``z`` (``gaussian_moments.GaussianMoments.ddpm_step``).

A Gaussian start therefore gives a Gaussian output ``N(m, P)`` whose moments are propagated
exactly. Tolerances: the sample mean within 4 standard errors per coordinate (``sqrt(diag P / B)``,
8 coordinates); the sample covariance within 3 RMS of the Wishart floor (Frobenius) and the trace
ratio within 4 standard deviations (``gaussian_moments.cov_floor``; the same rule as
``test_posterior_covariance.py``).

The algorithms' own bias against the exact posterior (the recursion's ``P`` against ``C``) is
reported, not asserted: it is the method's (DAPS' ``r_t = t`` over-states ``Var[x0 | x_t]``
while ``t`` is comparable to the prior's scale; PnP-DM samples the posterior under the noise
``sigma_y^2 I + rho^2 A A^T`` at its last ``rho``, exact as ``rho -> 0`` but mixing ever more
slowly). For PnP-DM the stationary claim itself is checked on the reference: a long phase at a
fixed ``rho`` reaches the closed-form posterior under that inflated noise.
"""

from __future__ import annotations

import math

import pytest
import torch
from gaussian_moments import GaussianMoments, cov_floor, rel_fro, trace_ratio
from posterior_utils import gaussian_problem

from pnpdiff.errors import PnPError
from pnpdiff.priors.gaussian import exact_posterior
from pnpdiff.schedules import geometric, karras
from pnpdiff.solvers import daps, pnpdm

pytestmark = pytest.mark.usefixtures("one_thread")

F64 = torch.float64
B = 2000


def _karras_list(n: int, lo: float, hi: float) -> list[float]:
    """Karras et al. sigmas ``(hi^(1/7) + u (lo^(1/7) - hi^(1/7)))^7`` and a final 0."""
    if n == 1:
        return [hi, 0.0]
    return [(hi ** (1 / 7) + k / (n - 1) * (lo ** (1 / 7) - hi ** (1 / 7))) ** 7 for k in range(n)] + [0.0]


def daps_moments(g: GaussianMoments, A, y, beta, levels, ode_steps, ode_min, L, lr, m, P, lip=1.0):
    """Output law of DAPS (last Langevin x0) for a start N(m, P) at levels[0]; Langevin step
    ``lr min(t^2, beta^2 / lip)`` (``lip``: the squared norm of the forward map's Jacobian)."""
    eye = g.eye
    AtA, Aty = A.T @ A, A.T @ y.flatten()
    n_lev = len(levels) - 1
    for i in range(n_lev):
        t, s = levels[i], levels[i + 1]
        M, b = eye.clone(), torch.zeros(g.d, dtype=F64)  # x0_hat = M x_t + b (ODE, Euler)
        ode = _karras_list(ode_steps, min(ode_min, t), t)
        for a, c in zip(ode[:-1], ode[1:]):
            W, c0 = g.denoiser(a)
            h = (c - a) / a
            Fo = eye + h * (eye - W)
            M, b = Fo @ M, Fo @ b - h * c0
        eta = lr * min(t * t, beta * beta / lip)
        F = eye - eta / (t * t) * eye - eta * AtA / beta**2
        G, gv, Q = eye.clone(), torch.zeros(g.d, dtype=F64), torch.zeros_like(eye)
        for _ in range(L):
            G = F @ G + eta / (t * t) * eye
            gv = F @ gv + eta * Aty / beta**2
            Q = F @ Q @ F.T + 2 * eta * eye
        K = G @ M
        m0, P0 = K @ m + G @ b + gv, K @ P @ K.T + Q
        m, P = m0, P0 + s * s * eye
    return m0, 0.5 * (P0 + P0.T)


def pnpdm_moments(g: GaussianMoments, A, y, sigma_y, rhos, prior_steps, prior_min, m, P, exact_prior=False):
    """Output law of PnP-DM for a start N(m, P) (``exact_prior``: the exact denoising posterior
    ``N(D(z, rho), (S^-1 + I / rho^2)^-1)`` as the prior step instead of DDPM steps)."""
    eye = g.eye
    step = g.ddpm_step()
    for rho in rhos:
        Sig = torch.linalg.inv(A.T @ A / sigma_y**2 + eye / rho**2)
        F = Sig / rho**2
        m, P = g.push(m, P, F, Sig @ A.T @ y.flatten() / sigma_y**2, torch.linalg.cholesky(0.5 * (Sig + Sig.T)))
        if exact_prior:
            W, c0 = g.denoiser(rho)
            Cz = torch.linalg.inv(torch.linalg.inv(g.S) + eye / rho**2)
            m, P = g.push(m, P, W, c0, torch.linalg.cholesky(0.5 * (Cz + Cz.T)))
        else:  # DDPM steps on sigmas spaced linearly from rho to prior_min, then 0
            lo = min(prior_min, rho)
            inner = [rho + k / max(prior_steps - 1, 1) * (lo - rho) for k in range(prior_steps)] + [0.0]
            m, P = g.run(m, P, inner, step)
    return m, P


def _check_against(x: torch.Tensor, m: torch.Tensor, P: torch.Tensor) -> tuple[float, float]:
    n = x.shape[0]
    se = (torch.diagonal(P) / n).sqrt()
    assert ((x.mean(0) - m).abs() <= 4 * se).all(), ((x.mean(0) - m) / se).tolist()
    Cs = torch.cov(x.T)
    fro_rms, tr_sd = cov_floor(P, n)
    assert rel_fro(Cs, P) <= 3 * fro_rms
    assert abs(trace_ratio(Cs, P) - 1) <= 4 * tr_sd
    return rel_fro(Cs, P), trace_ratio(Cs, P)


@pytest.fixture(scope="module")
def gauss():
    p = gaussian_problem()
    S = p.prior.covariance()
    return p, GaussianMoments(p.prior.mean(), S), p.operator.matrix.to(F64)


# DAPS on 12 Karras levels 0.05..5 (ODE 3 steps, 40 Langevin steps, lr 0.5): the recursion's
# output against the exact posterior has Frobenius error 0.21 and trace ratio 1.24 (DAPS'
# r_t = t; measured sample covariance within 0.03 of the recursion's at B = 2000).
def test_daps_matches_its_gaussian_law(gauss) -> None:
    p, g, A = gauss
    levels = karras(12, sigma_min=0.05, sigma_max=5.0)
    x_init = p.prior.mean().expand(B, -1).clone()
    kw = dict(ode_steps=3, langevin_steps=40, lr=0.5, beta_y=p.sigma_y, lr_min_ratio=1.0)
    x = daps(p.y.expand(B, -1), p.operator, p.prior, levels, p.sigma_y, x_init=x_init,
             generator=torch.Generator().manual_seed(0), **kw)
    m, P = daps_moments(g, A, p.y, max(p.sigma_y, 1e-3), levels.tolist(), 3, 0.005, 40, 0.5,
                        p.prior.mean().flatten(), 25.0 * torch.eye(8, dtype=F64))
    _check_against(x, m, P)
    # the output is a posterior, not the prior: closer to the exact posterior covariance than the prior is
    C = p.posterior.covariance()
    assert rel_fro(P, C) < 0.5 * rel_fro(g.S, C)


def test_daps_wrong_step_breaks_the_match(gauss) -> None:
    """A unit slip (the Langevin noise sqrt(eta) instead of sqrt(2 eta)) is caught by the same check."""
    p, g, A = gauss
    levels = karras(12, sigma_min=0.05, sigma_max=5.0)
    x = daps(p.y.expand(B, -1), p.operator, p.prior, levels, p.sigma_y, x_init=p.prior.mean().expand(B, -1).clone(),
             ode_steps=3, langevin_steps=40, lr=0.5, beta_y=p.sigma_y, lr_min_ratio=1.0,
             generator=torch.Generator().manual_seed(0))
    m, P = daps_moments(g, A, p.y, p.sigma_y, levels.tolist(), 3, 0.005, 40, 0.25,  # half the step
                        p.prior.mean().flatten(), 25.0 * torch.eye(8, dtype=F64))
    with pytest.raises(AssertionError):
        _check_against(x, m, P)


def test_daps_nonlinear_forward_model() -> None:
    """A nonlinear forward model (no adjoint, no prox) runs through autograd on A only and moves
    the estimate towards the measurement: ||y - A(x)|| falls below the prior mean's."""
    p = gaussian_problem()
    A = p.operator.matrix

    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x @ A.T)

    y = forward(p.posterior.mean()[None]) + 0.0
    x0 = p.prior.mean().expand(64, -1).clone()  # x and y differ in shape: the caller gives the start (as for DPS)
    x = daps(y.expand(64, -1), forward, p.prior, karras(8, sigma_min=0.05, sigma_max=5.0), 0.05, x_init=x0,
             ode_steps=2, langevin_steps=20, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(x).all() and x.shape == (64, 8)
    r_out = (forward(x) - y).norm(dim=1).mean()
    r_prior = (forward(p.prior.mean()[None]) - y).norm()
    assert r_out < 0.5 * r_prior


def test_daps_step_follows_the_jacobian_of_a_nonlinear_model(gauss) -> None:
    """A forward model given as a plain callable (no adjoint, autograd path) whose Jacobian has
    norm above 1 (here the linear map 4 A, ||4 A||^2 = 7.8): the likelihood's stiffness is
    ||J||^2 / beta^2, so a step ``lr min(t^2, beta^2)`` that ignores ||J|| diverges (eta times the
    curvature is 3.9 > 2). Reference: Algorithm 1's exact law for 4 A with the step
    ``lr min(t^2, beta^2 / ||4 A||^2)``, ||.|| the exact spectral norm (``torch.linalg``)."""
    p, g, A = gauss
    A4 = 4.0 * A
    y4 = 4.0 * p.y
    levels = karras(12, sigma_min=0.05, sigma_max=5.0)
    x_init = p.prior.mean().expand(B, -1).clone()
    x = daps(y4.expand(B, -1), lambda v: v @ A4.T.to(v.dtype), p.prior, levels, p.sigma_y, x_init=x_init,
             ode_steps=3, langevin_steps=40, lr=0.5, beta_y=p.sigma_y, lr_min_ratio=1.0,
             generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(x).all()
    lip = float(torch.linalg.matrix_norm(A4, 2)) ** 2
    m, P = daps_moments(g, A4, y4, p.sigma_y, levels.tolist(), 3, 0.005, 40, 0.5,
                        p.prior.mean().flatten(), 25.0 * torch.eye(8, dtype=F64), lip=lip)
    _check_against(x, m, P)


def test_pnpdm_nonlinear_step_follows_the_jacobian() -> None:
    """PnP-DM's Langevin likelihood step on a callable with ||J||^2 = 7.8 (the map 4 A): a step
    ``lr min(rho^2, sigma_y^2)`` has eta times the curvature 3.9 > 2 and blows up (to 1e55 here);
    scaled by 1 / ||J||^2 it stays finite and fits the measurement."""
    p = gaussian_problem()
    A4 = 4.0 * p.operator.matrix

    def forward(x: torch.Tensor) -> torch.Tensor:
        return x @ A4.T.to(x.dtype)

    y = forward(p.posterior.mean()[None])
    x = pnpdm(y.expand(32, -1), forward, p.prior, geometric(6, sigma_min=0.1, sigma_max=1.0), 0.05,
              x_init=p.prior.mean().expand(32, -1).clone(), prior_steps=4, langevin_steps=20,
              generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(x).all()
    assert (forward(x) - y).norm(dim=1).mean() < 0.5 * (forward(p.prior.mean()[None]) - y).norm()


# PnP-DM, geometric rho 2 -> 0.2 over 15 sweeps, 8 DDPM steps per prior step: the recursion's output
# against the exact posterior: Frobenius 0.17, trace 0.86 (mixing at small rho).
def test_pnpdm_matches_its_gaussian_law(gauss) -> None:
    p, g, A = gauss
    rhos = geometric(15, sigma_min=0.2, sigma_max=2.0)
    x_init = p.prior.mean().expand(B, -1).clone()
    x = pnpdm(p.y.expand(B, -1), p.operator, p.prior, rhos, p.sigma_y, prior_steps=8, x_init=x_init,
              generator=torch.Generator().manual_seed(0))
    m, P = pnpdm_moments(g, A, p.y, p.sigma_y, [r for r in rhos.tolist() if r > 0], 8, 0.001,
                         p.prior.mean().flatten(), torch.zeros(8, 8, dtype=F64))
    _check_against(x, m, P)


def test_pnpdm_fixed_rho_is_the_inflated_noise_posterior(gauss) -> None:
    """The split-Gibbs claim on the reference: at a fixed rho, with an exact prior step, many sweeps
    reach the posterior under the noise sigma_y^2 I + rho^2 A A^T (closed form: whiten the
    measurement by U diag(d)^-1); DDPM prior steps add their discretisation, compounded by the
    chain (150 sweeps: 10 steps 16.5 %, 20 steps 9.0 % Frobenius; asserted: falling with the steps,
    20 steps below 12 %)."""
    p, g, A = gauss
    rho = 0.3
    start = (p.prior.mean().flatten(), torch.zeros(8, 8, dtype=F64))
    m, P = pnpdm_moments(g, A, p.y, p.sigma_y, [rho] * 150, 1, 0.001, *start, exact_prior=True)
    U, s, _ = torch.linalg.svd(A, full_matrices=False)
    dinv = 1 / (p.sigma_y**2 + rho**2 * s**2).sqrt()
    post = exact_posterior(p.prior, dinv[:, None] * (U.T @ A), dinv * (U.T @ p.y.flatten()), 1.0)
    # geometric convergence of the Gibbs chain from the prior mean: 150 sweeps leave 4e-4 (mean) and 2e-6 (cov)
    assert float((m - post.mean().flatten()).norm() / post.mean().norm()) < 1e-3
    assert rel_fro(P, post.covariance()) < 1e-4
    _, P10 = pnpdm_moments(g, A, p.y, p.sigma_y, [rho] * 150, 10, 0.001, *start)
    _, P20 = pnpdm_moments(g, A, p.y, p.sigma_y, [rho] * 150, 20, 0.001, *start)
    assert rel_fro(P20, post.covariance()) < min(0.12, rel_fro(P10, post.covariance()))


def test_pnpdm_nonlinear_runs() -> None:
    p = gaussian_problem()
    A = p.operator.matrix

    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x @ A.T)

    y = forward(p.posterior.mean()[None])
    x = pnpdm(y.expand(32, -1), forward, p.prior, geometric(6, sigma_min=0.1, sigma_max=1.0), 0.05,
              x_init=p.prior.mean().expand(32, -1).clone(), prior_steps=4, langevin_steps=20,
              generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(x).all()
    assert (forward(x) - y).norm(dim=1).mean() < 0.5 * (forward(p.prior.mean()[None]) - y).norm()


@pytest.mark.parametrize("fn,bad", [(daps, {"langevin_steps": -1}), (daps, {"lr": 0.0}), (daps, {"lr": 2.0}),
                                    (pnpdm, {"prior_steps": 0}), (pnpdm, {"lr": 1.5})])
def test_bad_options_are_pnp_errors(fn, bad) -> None:
    p = gaussian_problem()
    with pytest.raises(PnPError):
        fn(p.y, p.operator, p.prior, karras(3, sigma_min=0.1, sigma_max=1.0), p.sigma_y, **bad)


def test_reproducible_with_a_seed() -> None:
    p = gaussian_problem()
    sig = karras(4, sigma_min=0.1, sigma_max=2.0)
    for fn in (daps, pnpdm):
        a = fn(p.y.expand(4, -1), p.operator, p.prior, sig, p.sigma_y, generator=torch.Generator().manual_seed(3))
        b = fn(p.y.expand(4, -1), p.operator, p.prior, sig, p.sigma_y, generator=torch.Generator().manual_seed(3))
        assert torch.equal(a, b)
        assert not torch.equal(a[0], a[1])  # independent runs within the batch
    assert math.isfinite(float(a.sum()))
