"""Posterior *covariances* (not only means) of every solver on an exact Gaussian posterior, and
posterior mixture weights on a two-component Gaussian mixture.

Set-up: ``tests/posterior_utils.gaussian_problem`` (d = 8, a random 2 x 8 ``Matrix``,
sigma_y = 0.1), Karras sigmas 0.002..80, one batched call of N = 4000 independent samples (the
batch is the sample set), started from ``x_init`` = the prior mean so that no product heuristic
enters the reference.

How each tolerance is derived
-----------------------------
* **Monte-Carlo floor.** For N Gaussian draws of covariance C the sample covariance has RMS
  relative Frobenius error ``sqrt((tr C^2 + ||C||_F^2) / (N - 1)) / ||C||_F`` and trace-ratio
  standard deviation ``sqrt(2 ||C||_F^2 / (N - 1)) / tr C`` (Wishart moments;
  ``gaussian_moments.cov_floor``): 0.040 and 0.0097 for the exact posterior at N = 4000.
  ``test_exact_vs_exact_floor`` checks the formula with N exact posterior samples (measured
  0.030-0.037 Frobenius, trace ratio 0.996-1.009 over three seeds). Asserted bounds are 3 RMS
  (Frobenius: the error is a norm of ~36 roughly independent entries, concentrated near its RMS)
  and 4 standard deviations (trace ratio, a scalar).
* **Known bias.** With a Gaussian prior the exact denoiser is affine and DDRM, DDNM, DDNM+,
  DiffPIR and ΠGDM are affine-Gaussian recursions: their output is *exactly* Gaussian with a
  covariance ``P`` obtained by propagating the papers' update equations
  (``tests/gaussian_moments.py``, written from the papers, not from the product code). The bias is
  ``||P - C|| / ||C||``, and the sample covariance must match ``P`` to the Monte-Carlo floor.
  Table (P against the exact posterior; 1000 steps shows the bias does not vanish):

  =====================  ==========================  ==========================  ===========
  method                 20 steps: fro / trace        100 steps: fro / trace       1000 steps
  =====================  ==========================  ==========================  ===========
  DDRM (eta .85)         0.384 / 0.614                0.264 / 0.731                0.240/0.755
  DDNM+ (eta .85)        0.386 / 0.609                0.269 / 0.725                0.242/0.754
  DDNM (eta .85, noise-  0.385 / 0.614                0.268 / 0.731                0.240/0.760
  free posterior)
  DiffPIR (lam 1, z 1)   0.594 / 0.404                0.522 / 0.477                0.503/0.497
  ΠGDM (eta 1, c = 1)    0.395 / 0.603                0.103 / 0.897                0.015/0.987
  =====================  ==========================  ==========================  ===========

  Why: DDRM/DDNM(+) inject ``eta * s`` fresh noise per step whatever the step size (not
  ``O(sqrt(t^2 - s^2))`` as an SDE step would), so the recursion never becomes the reverse SDE:
  under-dispersion persists as steps -> infinity (in 1-D, ``x_s = x0 + sqrt(1-eta^2) s eps + eta s n``
  relaxes towards a variance below the prior's). DiffPIR with zeta = 1 re-noises its estimate
  from scratch, ``x_s = x0 + s n``; in 1-D with prior variance v the variance obeys
  ``V_s = (v / (v + t^2))^2 V_t + s^2``, whose continuous limit is v / 2: the trace ratio -> 1/2.
  ΠGDM's ``p(x0 | x_t) ~ N(D, r_t^2 I)`` is exact in the limit t -> 0 and only approximate
  early; with eta = 1 it converges to the posterior (0.987 at 1000 steps).
  Measured sample covariances (N = 4000, seed 1), Frobenius / trace ratio against the exact
  posterior, and Frobenius against ``P``:
  100 steps DDRM 0.271 / 0.726 (0.038), DDNM+ 0.276 / 0.720 (0.038), DDNM 0.274 / 0.727 (0.035),
  DiffPIR 0.524 / 0.475 (0.032), ΠGDM 0.117 / 0.888 (0.035); 20 steps within 0.045 of ``P``.
  The DDRM mutation ``(1 - eta**2) ** 0.5 -> (1 - eta) ** 0.5`` gives trace 0.57: 16 standard
  deviations off ``P``, and fails here.
* DPS and RED-diff are not affine (DPS's step divides by ``||y - A x0||``; RED-diff runs Adam).
  Checked, documented: DPS's covariance must be closer to the posterior's than the prior's is
  (half the prior-vs-posterior distance, 0.690; measured 0.108, trace 0.924); RED-diff is a
  variational point estimate (``q = N(mu, ~0)``): its batch spread is optimisation noise, below the
  posterior's (measured trace ratio 0.535), and its batch mean is the estimate.
* DPIR and MMSE are point estimates, checked against closed forms: DPIR is half-quadratic
  splitting of ``||y - A x||^2 / (2 sigma_y^2) + lam R(x)`` (``rho_k = lam sigma_y^2 / sigma_k^2``
  pairs the data prox with the denoiser at ``sigma_k``, the prox of ``lam R`` at step ``lam / mu``), so
  with a long schedule down to small sigma it converges to the MAP of that objective, in closed
  form for a Gaussian prior ``(A^T A / sigma_y^2 + lam S^{-1})^{-1} (A^T y / sigma_y^2 + lam S^{-1} mu)``
  (measured 2.5-4 % at 200 levels, 7.7-11 % at 50: HQS converges as 1 / K); MMSE is Tweedie's
  ``E[x | y]`` for ``A = I``, compared with ``exact_posterior`` (Cholesky conditioning).
"""

from __future__ import annotations

import math

import pytest
import torch
from gaussian_moments import GaussianMoments, cov_floor, rel_fro, trace_ratio
from posterior_utils import gaussian_problem

from pnpdiff.operators import Identity, Matrix
from pnpdiff.priors.gaussian import GaussianMixturePrior, GaussianPrior, exact_posterior, mcgdiff_mixture
from pnpdiff.schedules import geometric, karras
from pnpdiff.solvers import SOLVERS

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: OpenMP hand-off dominates

F64 = torch.float64
N = 4000
FRO_K, TR_K = 3.0, 4.0  # 3 RMS (Frobenius), 4 standard deviations (trace ratio)


@pytest.fixture(scope="module")
def gauss():
    p = gaussian_problem()
    gm = GaussianMoments(p.prior.mean(), p.prior.covariance())
    return p, gm


def _sigmas(steps: int) -> list[float]:
    return karras(steps, sigma_min=0.002, sigma_max=80.0).tolist()


def test_exact_vs_exact_floor(gauss) -> None:
    """N exact posterior samples against the exact covariance: the floor the bounds are built on."""
    p, _ = gauss
    C = p.posterior.covariance()
    fro_rms, tr_sd = cov_floor(C, N)
    assert 0.035 < fro_rms < 0.045 and 0.008 < tr_sd < 0.011  # 0.040, 0.0097 (the formula)
    for seed in range(3):
        x = p.posterior.sample(N, generator=torch.Generator().manual_seed(100 + seed))
        Ch = torch.cov(x.T)
        assert rel_fro(Ch, C) < FRO_K * fro_rms
        assert abs(trace_ratio(Ch, C) - 1) < TR_K * tr_sd


def _linear_case(name: str, p, gm: GaussianMoments, sig: list[float], eta: float):
    """(solver kwargs, sigma_y passed, reference posterior, predicted (m, P))."""
    A, y, sy = p.operator.matrix, p.y.flatten(), p.sigma_y
    mu = p.prior.mean().flatten()
    T = sig[0]
    start = (mu.clone(), T * T * gm.eye)  # x_init + T n
    if name == "ddrm":
        pred = gm.run(*gm.ddrm_start(A, y, sy, T, mu), sig, gm.ddrm_step(A, y, sy, eta, 1.0))
        return {"eta": eta}, sy, p.posterior, pred
    if name == "ddnm+":
        return {"eta": eta}, sy, p.posterior, gm.run(*start, sig, gm.ddnm_plus_step(A, y, sy, eta))
    if name == "ddnm":  # DDNM assumes y = A x exactly: its target is the noise-free posterior
        post0 = exact_posterior(p.prior, A, p.y, 0.0)
        return {"eta": eta}, 0.0, post0, gm.run(*start, sig, gm.ddnm_step(A, y, eta))
    if name == "diffpir":
        return {"lam": 1.0, "zeta": 1.0}, sy, p.posterior, gm.run(*start, sig, gm.diffpir_step(A, y, sy, 1.0, 1.0))
    if name == "pigdm":  # this prior's eigenvalues are O(1): data_std 1 (see test_solvers_guided)
        return {"data_std": 1.0}, sy, p.posterior, gm.pigdm_output(A, y, sy, sig, *start, data_std=1.0)
    raise AssertionError(name)


# (method, eta, steps, bias band of the trace ratio of P from the derivation above)
LINEAR = [
    ("ddrm", 0.85, 100, (0.65, 0.80)),
    ("ddrm", 0.85, 20, (0.55, 0.70)),
    ("ddrm", 0.5, 100, None),
    ("ddnm+", 0.85, 100, (0.65, 0.80)),
    ("ddnm", 0.85, 100, (0.65, 0.80)),
    ("diffpir", None, 100, (0.40, 0.55)),  # -> 1/2 in the continuum limit
    ("pigdm", 1.0, 100, (0.85, 1.0)),  # -> 1
]


@pytest.mark.parametrize("name, eta, steps, band", LINEAR,
                         ids=[f"{n}-eta{e}-{s}" for n, e, s, _ in LINEAR])
def test_linear_solver_covariance(gauss, name, eta, steps, band) -> None:
    p, gm = gauss
    sig = _sigmas(steps)
    kw, sy, post, (m_pred, P) = _linear_case(name, p, gm, sig, eta)
    C, m_exact = post.covariance(), post.mean().flatten()
    x_init = p.prior.mean().flatten().expand(N, -1).contiguous()
    x = SOLVERS[name](p.y.expand(N, -1), p.operator, p.prior, torch.tensor(sig), sy, x_init=x_init,
                      generator=torch.Generator().manual_seed(1), **kw)
    assert x.shape == (N, 8) and torch.isfinite(x).all()
    Ch, mh = torch.cov(x.T), x.mean(0)
    fro_rms, tr_sd = cov_floor(P, N)
    # 1. the implementation: sample moments = the moments of the paper's recursion, to Monte Carlo
    assert rel_fro(Ch, P) < FRO_K * fro_rms, (rel_fro(Ch, P), fro_rms)
    assert abs(trace_ratio(Ch, P) - 1) < TR_K * tr_sd, (trace_ratio(Ch, P), tr_sd)
    mean_rms = math.sqrt(float(torch.trace(P)) / N)  # RMS error of the sample mean
    assert float((mh - m_pred).norm()) < 3 * mean_rms
    assert float((mh - m_exact).norm()) < float((m_pred - m_exact).norm()) + 3 * mean_rms
    # 2. against the exact posterior: bias (from the recursion) + floor (triangle inequality)
    bias_fro = rel_fro(P, C)
    floor_c = FRO_K * fro_rms * float(P.norm() / C.norm())
    assert rel_fro(Ch, C) <= bias_fro + floor_c, (rel_fro(Ch, C), bias_fro, floor_c)
    tr_pred = trace_ratio(P, C)
    assert abs(trace_ratio(Ch, C) - tr_pred) < TR_K * tr_sd * tr_pred
    # 3. the known bias itself (see the module docstring for why each method sits where it does)
    if band is not None:
        assert band[0] < tr_pred < band[1], tr_pred


def test_ddrm_bias_persists_and_diffpir_halves(gauss) -> None:
    """The derivations behind the bias bands, on the recursion alone (no solver run): with fixed
    eta the DDRM/DDNM under-dispersion does not vanish with more steps; DiffPIR (zeta = 1) tends
    to half the posterior's trace; ΠGDM (eta = 1) to the exact posterior."""
    p, gm = gauss
    C = p.posterior.covariance()
    tr = {}
    for steps in (100, 1000):
        sig = _sigmas(steps)
        for name in ("ddrm", "diffpir", "pigdm"):
            tr[name, steps] = trace_ratio(_linear_case(name, p, gm, sig, 0.85)[3][1], C)
    assert tr["ddrm", 1000] < 0.8 and abs(tr["ddrm", 1000] - tr["ddrm", 100]) < 0.05
    assert abs(tr["diffpir", 1000] - 0.5) < 0.02
    assert abs(tr["pigdm", 1000] - 1) < 0.02 and abs(tr["pigdm", 1000] - 1) < abs(tr["pigdm", 100] - 1)


def test_dps_covariance_beats_prior(gauss) -> None:
    """DPS (not affine): documented check, its covariance is less than half as far from the
    posterior's as the prior's (0.690 away); measured 0.108, trace ratio 0.924."""
    p, _ = gauss
    C = p.posterior.covariance()
    x = SOLVERS["dps"](p.y.expand(N, -1), p.operator, p.prior, karras(100, 0.002, 80.0), p.sigma_y, zeta=0.1,
                       x_init=p.prior.mean().flatten().expand(N, -1).contiguous(),
                       generator=torch.Generator().manual_seed(1))
    assert rel_fro(torch.cov(x.T), C) < 0.5 * rel_fro(p.prior.covariance(), C)


def test_reddiff_is_a_point_estimate(gauss) -> None:
    """RED-diff fits ``q = N(mu, ~0)``: its batch spread is Adam's noise, below the posterior's
    (measured trace ratio 0.535); the estimate is the batch mean (posterior mean here, within the
    Monte-Carlo error of the posterior's own spread plus 10 %: measured 5 % in test_solvers_guided)."""
    p, _ = gauss
    C, m = p.posterior.covariance(), p.posterior.mean().flatten()
    x = SOLVERS["reddiff"](p.y.expand(N, -1), p.operator, p.prior, karras(100, 0.002, 80.0), p.sigma_y, lr=0.3,
                           generator=torch.Generator().manual_seed(1))
    assert trace_ratio(torch.cov(x.T), C) < 1.0
    assert float((x.mean(0) - m).norm() / m.norm()) < 0.10


@pytest.mark.parametrize("lam", [1.0, 0.23])
def test_dpir_converges_to_the_map(gauss, lam) -> None:
    """DPIR = HQS of ``||y - A x||^2 / (2 sigma_y^2) + lam R``: with 200 levels from 10 to 1e-2 it
    is within 4 % of that objective's closed-form minimiser (lam = 1: the posterior mean); the
    error halves or better from 50 to 200 levels (HQS: error ~ 1 / K)."""
    p, _ = gauss
    A, y, sy = p.operator.matrix, p.y.flatten(), p.sigma_y
    mu, S = p.prior.mean().flatten(), p.prior.covariance()
    H = A.T @ A / sy**2 + lam * torch.linalg.inv(S)
    x_map = torch.linalg.solve(H, A.T @ y / sy**2 + lam * torch.linalg.solve(S, mu))
    if lam == 1.0:
        torch.testing.assert_close(x_map, p.posterior.mean().flatten())
    err = {}
    for K in (50, 200):
        x = SOLVERS["dpir"](p.y, p.operator, p.prior, geometric(K, 1e-2, 10.0), sy, lam=lam, x_init=mu[None].clone())
        err[K] = float((x.flatten() - x_map).norm() / x_map.norm())
    assert err[200] < 0.04 and err[200] < 0.5 * err[50], err


@pytest.mark.parametrize("prior_kind", ["gaussian", "mixture"])
def test_mmse_is_the_exact_posterior_mean(prior_kind) -> None:
    g = torch.Generator().manual_seed(4)
    if prior_kind == "gaussian":
        B = torch.randn(8, 8, generator=g, dtype=F64)
        prior = GaussianPrior(torch.randn(8, generator=g, dtype=F64), B @ B.T / 8 + 0.1 * torch.eye(8, dtype=F64))
    else:
        prior = mcgdiff_mixture(8, g)
    sy = 0.7
    for _ in range(3):
        y = prior.sample(1, generator=g) + sy * torch.randn(1, 8, generator=g, dtype=F64)
        ref = exact_posterior(prior, torch.eye(8, dtype=F64), y, sy).mean().flatten()
        out = SOLVERS["mmse"](y, Identity(), prior, None, sy)
        torch.testing.assert_close(out.flatten(), ref, rtol=1e-9, atol=1e-9)


# ----------------------------------------------------------------------------- mixture weights
NM = 4000


def _two_mode_problem(y_val):
    """Two unit-covariance modes at +-3 e_1 in R^8, equal prior weights, a random 2 x 8 operator,
    sigma_y = 0.3: the measurement moves the posterior weight of mode 0 to 0.287 or 0.159."""
    g = torch.Generator().manual_seed(0)
    means = torch.zeros(2, 8, dtype=F64)
    means[0, 0], means[1, 0] = 3.0, -3.0
    prior = GaussianMixturePrior([0.5, 0.5], means, 1.0)
    A = torch.randn(2, 8, generator=g, dtype=F64) / 8**0.5
    y = torch.tensor([y_val], dtype=F64)
    return prior, A, y, 0.3, exact_posterior(prior, A, y, 0.3)


def _mode_fraction(x: torch.Tensor, post: GaussianMixturePrior) -> float:
    """Fraction of samples nearest mode 0's posterior mean."""
    return float((torch.cdist(x.reshape(len(x), -1), post.means).argmin(1) == 0).double().mean())


@pytest.mark.parametrize("y_val", [[0.3, 0.0], [0.5, 0.2]])
def test_mixture_weights_exact_samples_within_binomial(y_val) -> None:
    """The classifier and the bound: exact posterior samples give the exact weight within 4
    binomial standard deviations (the modes are 6 apart in units of their std: misclassification
    ~Phi(-3) ~ 1e-3, inside the bound)."""
    _, _, _, _, post = _two_mode_problem(y_val)
    w = float(post.weights[0])
    sd = math.sqrt(w * (1 - w) / NM)
    f = _mode_fraction(post.sample(NM, generator=torch.Generator().manual_seed(5)), post)
    assert abs(f - w) < 4 * sd + 2e-3


# Documented bias: none of these methods is a consistent posterior sampler on a mixture. Measured
# (N = 4000, seed 1) fraction of mode 0 at 100 steps, exact 0.287 / 0.159, prior 0.5, for
# y = (0.3, 0) / (0.5, 0.2): DDRM .394 / .307, DDNM+ .359 / .264, DiffPIR .374 / .268,
# ΠGDM .413 / .352, DPS .339 / .213 (20 steps: all closer to the prior, .30-.46). On the
# 25-component MCGdiff mixture (posterior_utils.mixture_problem, seed 0) the weights are off by a
# total variation of 0.51-0.64 at 100 steps (exact samples: 0.018).
# Every method moves the weight from the prior towards the posterior but stops short of it:
# the measurement's evidence between modes is decided at high noise, where each method's
# approximation of p(y | x_t) is coarsest (DPS/ΠGDM plug in D(x_t); DDRM/DDNM/DiffPIR correct only
# x0's measured part). Asserted: strictly between, beyond 4 binomial standard deviations of each end.
MIX_METHODS = [
    ("ddrm", {}),
    ("ddnm+", {}),
    ("diffpir", {"lam": 1.0, "zeta": 1.0}),
    ("pigdm", {"data_std": 3.0}),
    ("dps", {"zeta": 0.1}),
]


@pytest.mark.parametrize("name, kw", MIX_METHODS, ids=[m for m, _ in MIX_METHODS])
def test_mixture_weights_between_prior_and_posterior(name, kw) -> None:
    prior, A, y, sy, post = _two_mode_problem([0.5, 0.2])
    w = float(post.weights[0])
    sd_post, sd_prior = math.sqrt(w * (1 - w) / NM), math.sqrt(0.25 / NM)  # binomial stds at each end
    x = SOLVERS[name](y.expand(NM, -1), Matrix(A), prior, karras(100, 0.002, 80.0), sy,
                      generator=torch.Generator().manual_seed(1), **kw)
    f = _mode_fraction(x, post)
    assert w + 4 * sd_post < f < 0.5 - 4 * sd_prior, (f, w)
