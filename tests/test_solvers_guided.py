"""Guided solvers (DPS, ΠGDM, RED-diff) against exact posteriors, on a nonlinear operator, and seeds.

Posterior tests draw one batch of N = 1000 samples from one measurement (the batch is the
sample set) and compare with the exact posterior of ``tests/posterior_utils.py``: relative error
of the posterior mean and sliced Wasserstein distance (100 directions) against 1000 exact samples.
Karras sigmas up to 80 (these analytic priors have ``sigma_max = inf``).

Measured table (seed 1, N = 1000; exact-vs-exact: SW 0.06, mean error 1.9 % on the Gaussian;
SW 0.13 on the d = 8 mixture):

====================  =====  ======================  ======================
problem               steps  DPS / ΠGDM / RED-diff   (SW; mean error)
====================  =====  ======================  ======================
Gaussian d=8, dy=2     20    0.25 / 0.18 / 0.83      11.9 % / 2.8 % / 28.3 %
prior-only SW 0.81     100   0.10 / 0.085 / 0.26     5.7 % / 3.2 % / 5.4 %
mixture d=8, dy=2      20    4.50 / 2.70 / 7.97      49 % / 3.4 % / 82 %
prior-only SW 9.59     100   9.15 / 2.32 / -         119 % / 2.0 % / -
====================  =====  ======================  ======================

Hyper-parameters are set for these problems' units, not for [0, 1] images (see each test). The
RED-diff columns were measured with lam 0.16 on the Gaussian and 0.75 on the mixture (the
official code's per-entry-mean losses); the paper's lam 0.25 gives 5.0 % at 100 steps.
"""

from __future__ import annotations

import pytest
import torch
from posterior_utils import gaussian_problem, mixture_problem, relative_mean_error, sliced_wasserstein
from skimage import data

from pnpdiff.metrics import psnr
from pnpdiff.operators import GaussianBlur, Matrix
from pnpdiff.priors import load_prior
from pnpdiff.schedules import karras
from pnpdiff.solvers import SOLVERS
from pnpdiff.solvers.dps import dps
from pnpdiff.solvers.pigdm import pigdm, weighted_residual
from pnpdiff.solvers.reddiff import reddiff

N = 1000


def _run(solver, prob, steps: int, seed: int = 1, **kw) -> torch.Tensor:
    y = prob.y.expand(N, -1)
    sig = karras(steps, sigma_min=0.002, sigma_max=80.0)
    return solver(y, prob.operator, prob.prior, sig, prob.sigma_y,
                  generator=torch.Generator().manual_seed(seed), **kw)


def _scores(prob, out: torch.Tensor) -> tuple[float, float, float]:
    ref = prob.posterior.sample(N, generator=torch.Generator().manual_seed(2))
    prior_only = prob.prior.sample(N, generator=torch.Generator().manual_seed(3))
    return (sliced_wasserstein(out, ref), sliced_wasserstein(prior_only, ref),
            relative_mean_error(out, prob.posterior))


@pytest.fixture(scope="module")
def gauss():
    return gaussian_problem()


@pytest.fixture(scope="module")
def mix8():
    return mixture_problem(8, 2)


# DPS's step zeta / ||y - A x0|| is not invariant to the dimension: on d = 8 the best zeta makes
# zeta * steps ~ 10 (zeta 1.0 at 100 steps overshoots: 27 % mean error; 0.1: 5.7 %).
# ΠGDM's r_t^2 assumes the data's standard deviation (0.5 on [0, 1] images); this Gaussian prior's
# covariance has eigenvalues of order 1, so data_std = 1 (with the image value 0.5: 18 %).
# RED-diff's Adam lr is in data units (0.05 for [0, 1] images); here lr 0.3 (the image default
# 0.05 moves too little in 100 steps: 20 %) with the paper's lam 0.25 (measured 5.0 %; its
# losses are per-entry means as in the official code: lam 0.16, the value once tuned as 4 with
# a 1 / (2 sigma_y^2) data term, measured 5.4 %).
GAUSS_CASES = [
    # solver, options, asserted mean error, measured
    (dps, {"zeta": 0.1}, 0.10, 0.057),
    (pigdm, {"data_std": 1.0}, 0.06, 0.032),
    (reddiff, {"lr": 0.3}, 0.09, 0.050),
]


@pytest.mark.parametrize("solver, options, tol, measured", GAUSS_CASES, ids=["dps", "pigdm", "reddiff"])
def test_gaussian_posterior_100_steps(gauss, solver, options, tol, measured) -> None:
    """Posterior-mean error at 100 steps; tolerance = measured value plus ~2 standard errors of
    the sample mean (exact samples alone are 1.9 % off) — inside the issue's acceptance (15 %
    DPS / RED-diff, 10 % ΠGDM). SW must also be well below the prior-only baseline (0.81)."""
    out = _run(solver, gauss, 100, **options)
    sw, base, err = _scores(gauss, out)
    assert torch.isfinite(out).all()
    assert err <= tol, (err, measured)
    assert sw < 0.5 * base, (sw, base)  # measured 0.10 / 0.085 / 0.26


# Mixture at 20 steps (the 100-step runs take minutes on 2 cores; table in the module docstring).
MIX_CASES = [
    # DPS: zeta * steps ~ 10 (see above); measured SW ratio 0.47.
    (dps, {"zeta": 0.5}, 0.7),
    # ΠGDM: the mixture spreads over a grid of spacing 8 (per-coordinate std ~11, unit
    # within-component variance); data_std = 4 measured 0.28 (1.0: 1.02, 0.5: 1.25).
    (pigdm, {"data_std": 4.0}, 0.5),
    # RED-diff is mode-seeking from one deterministic start, and fragile here: Adam's lr must
    # match the mixture's scale (~20x an image's) and the 20 steps: lr 3 measured 0.83
    # (lr 0.05: 2.0, 0.3: 1.77, 6: 1.68; 4x lam with lr 3: 0.86). lam 0.75 = sigma_y^2 N / M
    # (sigma_y = 0.43, N = 8, M = 2) is the weight tuned as 1.0 with a 1 / (2 sigma_y^2) data term.
    (reddiff, {"lr": 3.0, "lam": 0.75}, 0.95),
]


@pytest.mark.parametrize("solver, options, ratio", MIX_CASES, ids=["dps", "pigdm", "reddiff"])
def test_mixture_beats_prior_only(mix8, solver, options, ratio) -> None:
    """Sliced Wasserstein to the exact posterior below ``ratio`` x the prior-only baseline
    (issue acceptance: below 1x, and below 0.8x for ΠGDM)."""
    out = _run(solver, mix8, 20, **options)
    sw, base, _ = _scores(mix8, out)
    assert sw < ratio * base, (sw, base)


def test_pigdm_cg_matches_svd_closed_form() -> None:
    """``A^T (r^2 A A^T + sigma_y^2 I)^{-1} r``: spectral closed form = conjugate gradient."""
    g = torch.Generator().manual_seed(0)
    a = Matrix(torch.randn(3, 8, generator=g, dtype=torch.float64))
    res = torch.randn(5, 3, generator=g, dtype=torch.float64)

    class NoSVD:
        has_svd = False

        def __call__(self, x):
            return a(x)

        def adjoint(self, y):
            return a.adjoint(y)

    exact = weighted_residual(a, res, 0.7, 0.1)
    cg = weighted_residual(NoSVD(), res, 0.7, 0.1, cg_iter=10)
    dense = a.matrix
    ref = (torch.linalg.solve(0.7 * dense @ dense.T + 0.01 * torch.eye(3, dtype=torch.float64), res.T).T) @ dense
    assert torch.allclose(exact, ref, atol=1e-10) and torch.allclose(cg, ref, atol=1e-8)


def _photo(size: int = 32) -> torch.Tensor:
    arr = data.astronaut()[0 : 4 * size : 4, 140 : 140 + 4 * size : 4] / 255.0
    return torch.tensor(arr, dtype=torch.float32).permute(2, 0, 1)[None].contiguous()


def test_dps_nonlinear_operator_restores_photo() -> None:
    """Saturation ``tanh(3x)/tanh(3)`` then Gaussian blur, no adjoint anywhere: DPS with the FFDNet
    prior beats the prior-only baseline (its start, 0.5 everywhere; a zero-guidance run measured
    12.7 dB, the same). Measured at 10 steps: 16.2 dB (zeta 3; zeta 10: 13.3 dB) against 12.6 dB
    for the baseline; asserted: at least 2 dB better."""
    x = _photo(32)
    blur = GaussianBlur(1.5)
    t3 = torch.tanh(torch.tensor(3.0))

    def op(v: torch.Tensor) -> torch.Tensor:
        return blur(torch.tanh(3 * v) / t3)

    y = op(x) + 0.01 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    prior = load_prior("natural")
    sig = karras(10, sigma_min=0.002, sigma_max=prior.sigma_max)
    out = dps(y, op, prior, sig, 0.01, zeta=3.0, generator=torch.Generator().manual_seed(1))
    baseline = float(psnr(torch.full_like(x, 0.5), x))
    got = float(psnr(out.clamp(0, 1), x))
    assert got > baseline + 2.0, (got, baseline)


@pytest.mark.parametrize("name", ["dps", "pigdm", "reddiff"])
def test_same_seed_same_output_and_registered(gauss, name) -> None:
    solver = SOLVERS[name]
    y = gauss.y.expand(4, -1)
    sig = karras(5, sigma_min=0.002, sigma_max=80.0)

    def go(seed: int, record: list | None = None) -> torch.Tensor:
        cb = None if record is None else (lambda i, s, x, x0: record.append((i, s, x.shape, x0.shape)))
        return solver(y, gauss.operator, gauss.prior, sig, gauss.sigma_y,
                      generator=torch.Generator().manual_seed(seed), callback=cb)

    calls: list = []
    a, b, c = go(0, calls), go(0), go(1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (4, 8) and a.dtype == y.dtype
    assert [i for i, *_ in calls] == list(range(5)) and calls[0][1] == 80.0
