"""Shared reference problems for the solver posterior tests (exact posteriors, sliced Wasserstein).

The problems follow ``ALGORITHMS.md`` ("Measured here with reference loops"): a single Gaussian
prior in d = 8 with a random 2 x 8 ``Matrix`` operator, and the 25-component MCGdiff mixture
(Cardoso et al., ICLR 2024) with random SVD operators. Sigmas follow Karras et al. up to 80 in the
problem's own units (these priors have no [0, 1] range).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from pnpdiff.operators import Matrix
from pnpdiff.priors.gaussian import (
    GaussianMixturePrior,
    GaussianPrior,
    exact_posterior,
    mcgdiff_mixture,
    random_svd_operator,
)


@dataclass
class Problem:
    prior: GaussianMixturePrior
    operator: Matrix
    y: Tensor  # (1, d_y)
    sigma_y: float
    posterior: GaussianMixturePrior


def gaussian_problem(d: int = 8, d_y: int = 2, seed: int = 0, sigma_y: float = 0.1) -> Problem:
    """Gaussian prior N(mu, S) (random mean, well-conditioned random covariance), y = A x + n."""
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(d, generator=g, dtype=torch.float64)
    B = torch.randn(d, d, generator=g, dtype=torch.float64)
    S = B @ B.T / d + 0.5 * torch.eye(d, dtype=torch.float64)
    prior = GaussianPrior(mu, S)
    A = torch.randn(d_y, d, generator=g, dtype=torch.float64) / d**0.5
    x = prior.sample(1, generator=g)
    y = x.reshape(1, d) @ A.T + sigma_y * torch.randn(1, d_y, generator=g, dtype=torch.float64)
    return Problem(prior, Matrix(A), y, sigma_y, exact_posterior(prior, A, y, sigma_y))


def mixture_problem(d: int = 8, d_y: int = 2, seed: int = 0) -> Problem:
    """MCGdiff's 25-component mixture with a random SVD operator and its noise level."""
    g = torch.Generator().manual_seed(seed)
    prior = mcgdiff_mixture(d, generator=g)
    A, sigma_y = random_svd_operator(d_y, d, generator=g)
    x = prior.sample(1, generator=g)
    y = x.reshape(1, d) @ A.T + sigma_y * torch.randn(1, d_y, generator=g, dtype=torch.float64)
    return Problem(prior, Matrix(A), y, sigma_y, exact_posterior(prior, A, y, sigma_y))


def sliced_wasserstein(a: Tensor, b: Tensor, n_dirs: int = 100, seed: int = 0) -> float:
    """Sliced 1-Wasserstein distance between two equally sized sample sets ``(n, d)``.

    Average over ``n_dirs`` random unit directions of the 1-D W1 distance between the sorted
    projections.
    """
    g = torch.Generator().manual_seed(seed)
    a = a.reshape(a.shape[0], -1).to(torch.float64)
    b = b.reshape(b.shape[0], -1).to(torch.float64)
    dirs = torch.randn(a.shape[1], n_dirs, generator=g, dtype=torch.float64)
    dirs = dirs / dirs.norm(dim=0, keepdim=True)
    pa = torch.sort(a @ dirs, dim=0).values
    pb = torch.sort(b @ dirs, dim=0).values
    return float((pa - pb).abs().mean())


def relative_mean_error(samples: Tensor, posterior: GaussianMixturePrior) -> float:
    """``||mean(samples) - E[x|y]|| / ||E[x|y]||``."""
    m = posterior.mean().reshape(-1)
    return float((samples.reshape(samples.shape[0], -1).mean(0) - m).norm() / m.norm())
