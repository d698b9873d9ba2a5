"""Analytic Gaussian / Gaussian-mixture priors: exact denoisers and exact posteriors."""

from __future__ import annotations

import math

import pytest
import torch

from pnpdiff.errors import ShapeError
from pnpdiff.priors import (
    GaussianMixturePrior,
    GaussianPrior,
    exact_posterior,
    mcgdiff_mixture,
    random_svd_operator,
)
from pnpdiff.priors.gaussian import operator_matrix

F64 = torch.float64


def _random_gmm(d: int, k: int, seed: int, scale: float = 1.0) -> GaussianMixturePrior:
    g = torch.Generator().manual_seed(seed)
    w = torch.rand(k, generator=g, dtype=F64) + 0.2
    means = scale * torch.randn(k, d, generator=g, dtype=F64)
    L = torch.randn(k, d, d, generator=g, dtype=F64) / math.sqrt(d)
    covs = L @ L.transpose(-1, -2) + 0.05 * torch.eye(d, dtype=F64)
    return GaussianMixturePrior(w, means, covs)


@pytest.mark.parametrize("sigma", [0.5, 2.0, 6.0])
def test_gmm_denoiser_matches_importance_sampling(sigma: float) -> None:
    """E[x0 | x] by self-normalised importance sampling from the prior, within 4 standard errors."""
    g = torch.Generator().manual_seed(1)
    prior = mcgdiff_mixture(2, g)
    n = 200_000
    x0 = prior.sample(n, g)  # (n, 2)
    x = prior.sample(4, g) + sigma * torch.randn(4, 2, generator=g, dtype=F64)
    exact = prior.denoise(x, sigma)
    for i in range(4):
        logw = -0.5 * ((x0 - x[i]) ** 2).sum(-1) / sigma**2
        w = torch.softmax(logw, 0)
        mc = (w[:, None] * x0).sum(0)
        se = ((w[:, None] ** 2) * (x0 - mc) ** 2).sum(0).sqrt()  # delta-method std error
        err = (exact[i] - mc).abs()
        assert bool((err <= 4 * se + 1e-6).all()), (sigma, i, err, se)


def test_gmm_full_covariance_denoiser_matches_importance_sampling() -> None:
    prior = _random_gmm(3, 4, seed=2)
    g = torch.Generator().manual_seed(3)
    x0 = prior.sample(200_000, g)
    sigma = 0.7
    x = prior.sample(3, g) + sigma * torch.randn(3, 3, generator=g, dtype=F64)
    exact = prior.denoise(x, sigma)
    for i in range(3):
        w = torch.softmax(-0.5 * ((x0 - x[i]) ** 2).sum(-1) / sigma**2, 0)
        mc = (w[:, None] * x0).sum(0)
        se = ((w[:, None] ** 2) * (x0 - mc) ** 2).sum(0).sqrt()
        assert bool(((exact[i] - mc).abs() <= 4 * se + 1e-6).all())


def test_denoiser_is_tweedie_of_the_exact_noised_density() -> None:
    """(D(x, s) - x) / s^2 equals grad log p_s(x), computed by autograd of the exact density."""
    prior = _random_gmm(5, 3, seed=4)
    g = torch.Generator().manual_seed(5)
    for s in (0.05, 0.3, 3.0, 50.0):
        x = (prior.sample(6, g) + s * torch.randn(6, 5, generator=g, dtype=F64)).requires_grad_()
        grad = torch.autograd.grad(prior.log_prob(x, s).sum(), x)[0]
        score = prior.score(x.detach(), s)
        torch.testing.assert_close(score, grad, rtol=1e-8, atol=1e-10)


def test_gaussian_prior_is_the_wiener_filter_on_images() -> None:
    g = torch.Generator().manual_seed(6)
    shape = (2, 3, 3)
    d = 18
    L = torch.randn(d, d, generator=g, dtype=F64)
    cov = L @ L.T / d + 0.01 * torch.eye(d, dtype=F64)
    mean = torch.rand(shape, generator=g, dtype=F64)
    prior = GaussianPrior(mean, cov)
    assert prior.channels == 2 and prior.size == (3, 3)
    x = torch.rand(4, *shape, generator=g)  # float32 images
    sig = torch.tensor([0.0, 0.1, 0.5, 2.0])
    out = prior.denoise(x, sig)
    assert out.shape == x.shape and out.dtype == torch.float32
    xf = x.reshape(4, d).to(F64)
    for b in range(4):
        s2 = float(sig[b]) ** 2
        ref = mean.flatten() + cov @ torch.linalg.solve(cov + s2 * torch.eye(d, dtype=F64),
                                                        xf[b] - mean.flatten())
        torch.testing.assert_close(out[b].reshape(d).to(F64), ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out[0], x[0])  # sigma = 0: identity


def test_covariance_forms_agree() -> None:
    d = 4
    diag = torch.tensor([0.5, 1.0, 2.0, 0.0], dtype=F64)  # singular is allowed
    mean = torch.zeros(d, dtype=F64)
    x = torch.randn(3, d, dtype=F64, generator=torch.Generator().manual_seed(0))
    prior = GaussianPrior(mean, torch.diag(diag))
    full = prior.denoise(x, 0.4)
    dia = GaussianPrior(mean, diag).denoise(x, 0.4)
    torch.testing.assert_close(full, dia)
    iso = GaussianPrior(mean, 2.0).denoise(x, 0.4)
    torch.testing.assert_close(iso, x * 2.0 / 2.16)
    mix = GaussianMixturePrior([1.0, 1.0], torch.zeros(2, d), torch.tensor([2.0, 2.0]))
    torch.testing.assert_close(mix.denoise(x, 0.4), iso)
    with pytest.raises(ShapeError):
        prior.denoise(torch.zeros(2, d + 1), 0.1)


def test_extreme_sigmas_are_finite_and_limits_hold() -> None:
    prior = mcgdiff_mixture(8, torch.Generator().manual_seed(0))
    x = torch.randn(5, 8, dtype=F64) * 100
    big = prior.denoise(x, 1e6)  # far away: the prior mean
    torch.testing.assert_close(big, prior.mean().expand(5, 8), atol=1e-3, rtol=0)
    small = prior.denoise(x, 1e-6)
    torch.testing.assert_close(small, x, atol=1e-6, rtol=0)
    assert torch.isfinite(prior.denoise(x.float(), 80.0)).all()


def test_sampling_moments_and_reproducibility() -> None:
    prior = _random_gmm(3, 3, seed=7, scale=2.0)
    a = prior.sample(100_000, torch.Generator().manual_seed(0))
    b = prior.sample(100_000, torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    torch.testing.assert_close(a.mean(0), prior.mean(), atol=0.05, rtol=0)
    torch.testing.assert_close(torch.cov(a.T), prior.covariance(), atol=0.1, rtol=0.02)


def _brute_force_posterior(prior: GaussianMixturePrior, A: torch.Tensor, y: torch.Tensor,
                           sigma_y: float, lim: float, n: int = 401):
    t = torch.linspace(-lim, lim, n, dtype=F64)
    X, Y = torch.meshgrid(t, t, indexing="ij")
    pts = torch.stack([X.flatten(), Y.flatten()], 1)
    logp = prior.log_prob(pts) - 0.5 * ((pts @ A.T - y) ** 2).sum(-1) / sigma_y**2
    w = torch.softmax(logp, 0)
    mean = (w[:, None] * pts).sum(0)
    c = pts - mean
    cov = (w[:, None] * c).T @ c
    return pts, w, mean, cov, (t[1] - t[0]) ** 2


@pytest.mark.parametrize("d_y", [1, 2])
def test_exact_posterior_matches_brute_force_bayes_on_a_grid(d_y: int) -> None:
    g = torch.Generator().manual_seed(8)
    prior = _random_gmm(2, 4, seed=9)
    A = torch.randn(d_y, 2, generator=g, dtype=F64)
    sigma_y = 0.5
    x_true = prior.sample(1, g)[0]
    y = A @ x_true + sigma_y * torch.randn(d_y, generator=g, dtype=F64)
    post = exact_posterior(prior, A, y, sigma_y)
    pts, w, mean, cov, cell = _brute_force_posterior(prior, A, y, sigma_y, lim=6.0)
    torch.testing.assert_close(post.mean(), mean, atol=1e-5, rtol=0)
    torch.testing.assert_close(post.covariance(), cov, atol=1e-5, rtol=0)
    # the density itself, on the grid
    dens = post.log_prob(pts).exp() * cell
    assert float((dens - w).abs().sum()) < 1e-5
    s = post.sample(50_000, g)
    torch.testing.assert_close(s.mean(0), mean, atol=0.03, rtol=0)


def test_exact_posterior_accepts_operators_and_callables() -> None:
    g = torch.Generator().manual_seed(10)
    prior = GaussianPrior(torch.zeros(1, 2, 2, dtype=F64), torch.eye(4, dtype=F64))
    M = torch.randn(3, 4, generator=g, dtype=F64)
    y = torch.randn(3, generator=g, dtype=F64)
    ref = exact_posterior(prior, M, y, 0.1)

    class HasM:
        def __init__(self, m: torch.Tensor) -> None:
            self.M = m

    via_attr = exact_posterior(prior, HasM(M), y, 0.1)

    def as_callable(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1) @ M.T

    via_call = exact_posterior(prior, as_callable, y[None], 0.1)
    for p in (via_attr, via_call):
        torch.testing.assert_close(p.mean(), ref.mean())
        torch.testing.assert_close(p.covariances(), ref.covariances())
    # single Gaussian closed form: mean = S A^T (A S A^T + s^2 I)^-1 y
    G = M @ M.T + 0.01 * torch.eye(3, dtype=F64)
    torch.testing.assert_close(ref.mean().flatten(), M.T @ torch.linalg.solve(G, y))
    assert ref.mean().shape == (1, 2, 2)
    try:
        from pnpdiff.operators import Matrix
    except ImportError:
        return
    via_op = exact_posterior(prior, Matrix(M), y, 0.1)
    torch.testing.assert_close(via_op.mean(), ref.mean())
    torch.testing.assert_close(operator_matrix(Matrix(M), prior.shape, 4), M)


def test_mcgdiff_setup() -> None:
    g = torch.Generator().manual_seed(0)
    prior = mcgdiff_mixture(8, g)
    assert prior.n_components == 25
    assert set(prior.means[:, 0].tolist()) == {-16.0, -8.0, 0.0, 8.0, 16.0}
    torch.testing.assert_close(prior.means[:, :2], prior.means[:, 2:4])
    torch.testing.assert_close(prior.covariances(), torch.eye(8, dtype=F64).expand(25, 8, 8))
    assert abs(float(prior.weights.sum()) - 1) < 1e-12
    A, sigma_y = random_svd_operator(2, 8, g)
    s = torch.linalg.svdvals(A)
    assert A.shape == (2, 8) and bool((s <= 1).all()) and 0 <= sigma_y <= float(s.max())
    # reproducible: the same seed gives the same values (not only the same shapes)
    g2 = torch.Generator().manual_seed(0)
    prior2 = mcgdiff_mixture(8, g2)
    A2, sy2 = random_svd_operator(2, 8, g2)
    assert torch.equal(prior2.weights, prior.weights) and torch.equal(A2, A) and sy2 == sigma_y
    A3, _ = random_svd_operator(2, 8, g2)
    assert not torch.equal(A3, A)  # and the generator really is consumed
