"""``method="smc"`` (MCGdiff, ``pnpdiff.solvers.smc``) and ``pnpdiff.sample_posterior``.

References are exact posteriors (``pnpdiff.priors.gaussian.exact_posterior``) and exact samples
from them; no tolerance is read off the sampler's own output.

* **Exactness (unbiasedness) on a single Gaussian.** SMC estimates are consistent as the number
  of particles grows; their error at a given N is partly variance (particle degeneracy), partly
  the DDPM kernel's discretisation. ``R`` independent runs (one batch of ``R`` measurements)
  give ``R`` weighted posterior means; their average must match the exact posterior mean within
  4 standard errors of that average (the run-to-run spread divided by ``sqrt(R)``), i.e. no bias
  is detectable at that resolution; and each run's error is compared with the noise floor of its
  sample size, ``sqrt(tr C / N) / ||m||`` (the mean error of N exact samples): the issue asks for
  an error at or below that floor.
* **Mixture, d = 8, two observations** (``posterior_utils.mixture_problem(8, 2, seed=0)``, the
  MCGdiff benchmark). The floor is the mean sliced Wasserstein distance of 4 further sets of N exact
  samples to the reference set (the same N). Asserted, on the mean over independent runs: the
  distance falls with N (100 -> 500) and at N = 500 is below a quarter of the prior-only
  distance (a sampler that ignores y); the mixture weights the pooled samples imply are within
  0.05 of the exact ones and the per-coordinate standard deviations within 10 % (the issue's
  bound). ``tests/benchmarks/posterior_table.py``
  measures the rest (``docs/posterior.md``): distance against the floor up to N = 5000, time,
  memory, and every approximate method beside.
"""

from __future__ import annotations

import math

import pytest
import torch
from posterior_utils import gaussian_problem, mixture_problem, sliced_wasserstein

import pnpdiff
from pnpdiff.errors import OperatorError, PnPError, PnPWarning, ValueRangeError
from pnpdiff.schedules import karras
from pnpdiff.solvers import smc
from pnpdiff.solvers.smc import effective_sample_size, systematic_resample

pytestmark = pytest.mark.usefixtures("one_thread")

F64 = torch.float64
SIG = karras(100, sigma_min=0.002, sigma_max=80.0)


# ------------------------------------------------------------------------------ building blocks
def test_systematic_resampling_counts_are_floor_or_ceil() -> None:
    g = torch.Generator().manual_seed(0)
    logw = torch.randn(3, 50, generator=g, dtype=F64) * 2
    u = torch.rand(3, generator=g, dtype=F64)
    idx = systematic_resample(logw, u)
    w = torch.softmax(logw, -1)
    for b in range(3):
        counts = torch.bincount(idx[b], minlength=50).double()
        assert counts.sum() == 50
        assert ((counts >= torch.floor(50 * w[b]) - 1e-9) & (counts <= torch.ceil(50 * w[b]) + 1e-9)).all()
    assert systematic_resample(logw, u, 7).shape == (3, 7)


def test_effective_sample_size() -> None:
    assert effective_sample_size(torch.zeros(2, 10, dtype=F64)).tolist() == pytest.approx([10.0, 10.0])
    one = torch.full((1, 10), -1e4, dtype=F64)
    one[0, 3] = 0.0
    assert float(effective_sample_size(one)) == pytest.approx(1.0)


# ------------------------------------------------------------------------------ single Gaussian
# Measured (seed 0, R = 16, N = 250): the run-to-run spread is about 4x that of the mean of N exact
# samples -- SMC's particle degeneracy, so the "error at the noise floor of its sample size"
# holds for the average of runs, not for one run (docs/posterior.md).
# Every kernel / resampling variant must be unbiased: the Tweedie kernel variance and the twisted
# first-stage weights change the proposal and the resampling, and the weights must correct for both.
# (Twisting with the DDPM kernel is consistent too but its p(y | x_t) is overconfident: the
# second-stage weights are heavy-tailed, measured 3-4.5 standard errors here; hence not its default.)
# The twisted proposal moves every particle by a gradient step and corrects its weight by the
# ratio of the untilted to the tilted Gaussian; without that correction the estimate lands 0.53 from
# the posterior mean, a quarter of the way to the prior's (checked by deleting the line).
@pytest.mark.parametrize(("kernel_variance", "twisting", "twisted_proposal"),
                         [("tweedie", None, None), ("tweedie", None, False), ("tweedie", False, None),
                          ("ddpm", None, None)])
def test_gaussian_posterior_mean_is_unbiased(kernel_variance: str, twisting: bool, twisted_proposal: bool) -> None:
    p = gaussian_problem()
    R, N = 12, 250
    m = p.posterior.mean().flatten()
    est = smc(p.y.expand(R, -1), p.operator, p.prior, SIG, p.sigma_y, particles=N, kernel_variance=kernel_variance,
              twisting=twisting, twisted_proposal=twisted_proposal, chunk_size=R * N,
              generator=torch.Generator().manual_seed(0))
    assert est.shape == (R, 8) and torch.isfinite(est).all()
    se = est.std(0) / math.sqrt(R)
    assert ((est.mean(0) - m).abs() <= 4 * se + 1e-12).all(), ((est.mean(0) - m) / se).tolist()
    # and it is the posterior's mean, not the prior's: far closer than the prior mean is
    assert float((est.mean(0) - m).norm()) < 0.1 * float((p.prior.mean().flatten() - m).norm())


# ------------------------------------------------------------------------------ the kernel's variance
def test_jacobian_mean_is_exact_for_a_diagonal_gaussian() -> None:
    # D is affine with a diagonal Jacobian s / (s + t^2): Rademacher probes give its trace exactly
    # (z_i^2 = 1, no off-diagonal terms) and the forward difference is exact for an affine map.
    from pnpdiff.priors.gaussian import GaussianPrior
    from pnpdiff.solvers.smc import _jacobian_mean

    g = torch.Generator().manual_seed(0)
    s = torch.rand(8, generator=g, dtype=F64) * 2 + 0.1
    prior = GaussianPrior(torch.randn(8, generator=g, dtype=F64), torch.diag(s))
    x = torch.randn(2, 5, 8, generator=g, dtype=F64) * 3
    for t in (0.05, 1.0, 30.0):
        x0 = prior.denoise(x.reshape(10, 8), t).reshape(2, 5, 8)
        w = torch.softmax(torch.randn(2, 5, generator=g, dtype=F64), -1)
        rho = _jacobian_mean(prior, x, x0, w, t, 64, torch.Generator().manual_seed(1))
        torch.testing.assert_close(rho, (s / (s + t * t)).mean().expand(2), rtol=1e-6, atol=1e-9)


def test_tweedie_kernel_is_exact_for_an_isotropic_gaussian_at_ten_steps() -> None:
    # For a prior N(mu, c I) the reverse transition is Gaussian with covariance
    # s^2 (1 - r) + (1 - r)^2 Var[x0 | x_t], Var[x0 | x_t] = t^2 c / (c + t^2) I: the Tweedie kernel
    # is that transition, so smc's posterior is exact at any step count. The DDPM kernel leaves the
    # (1 - r)^2 term out and is far too narrow at 10 steps (measured: 41 % low against 2 %).
    from pnpdiff.operators import Matrix
    from pnpdiff.priors.gaussian import GaussianPrior, exact_posterior

    g = torch.Generator().manual_seed(0)
    prior = GaussianPrior(torch.randn(8, generator=g, dtype=F64), 0.7 * torch.eye(8, dtype=F64))
    A = torch.randn(2, 8, generator=g, dtype=F64) / 8**0.5
    y = prior.sample(1, generator=g).reshape(1, 8) @ A.T + 0.1 * torch.randn(1, 2, generator=g, dtype=F64)
    sd = torch.diagonal(exact_posterior(prior, A, y, 0.1).covariance()).sqrt()
    sig = karras(10, sigma_min=0.002, sigma_max=80.0)
    err = {}
    for kv in ("tweedie", "ddpm"):
        x = smc(y, Matrix(A), prior, sig, 0.1, particles=4000, samples=4000, kernel_variance=kv,
                generator=torch.Generator().manual_seed(1))
        err[kv] = float((x.std(0) / sd - 1).abs().max())
    assert err["tweedie"] < 0.06, err  # 4000 samples: sd's own sampling error is about 1.1 %
    assert err["ddpm"] > 0.2, err


def test_twisted_gradient_matches_finite_differences() -> None:
    # the vector-Jacobian product through the (nonlinear) mixture denoiser, chunked, against central
    # differences of the first-stage log-weight it differentiates
    from pnpdiff.solvers.smc import _denoise_with_gradient, _log_first_stage

    p = mixture_problem(8, 2, seed=0)
    g = torch.Generator().manual_seed(0)
    x = 4 * torch.randn(5, 8, generator=g, dtype=F64)
    yb = torch.randn(5, 8, generator=g, dtype=F64) * 8
    t, rho = 3.0, 0.3
    guided = torch.zeros(8, dtype=torch.bool)
    guided[:2] = True
    tau_g = torch.where(guided, torch.tensor([0.5, 1.5] + [0.0] * 6, dtype=F64), t)
    stage = {"tau_g": tau_g, "guided": guided, "var_g": torch.where(guided, t * t - tau_g**2, 1.0), "defensive": 0.5}

    def f(v: torch.Tensor) -> torch.Tensor:
        return _log_first_stage(p.operator.Vt(v)[:, None], p.operator.Vt(p.prior.denoise(v, t))[:, None],
                                yb[:, None], rho, t, **stage)[:, 0]

    d, grad, la = _denoise_with_gradient(p.prior, p.operator, x, yb, rho, t, 2, **stage)
    torch.testing.assert_close(d, p.prior.denoise(x, t))
    torch.testing.assert_close(la, f(x))
    h = 1e-5
    fd = torch.stack([(f(x + h * e) - f(x - h * e)) / (2 * h) for e in torch.eye(8, dtype=F64)], -1)
    assert float(grad.abs().max()) > 1e-2  # not trivially zero
    torch.testing.assert_close(grad, fd, rtol=1e-5, atol=1e-7)


def test_a_prior_without_gradients_falls_back_to_the_untilted_proposal() -> None:
    from pnpdiff.priors.base import Prior

    p = mixture_problem(8, 2, seed=0)

    class Frozen(Prior):  # a denoiser that autograd cannot see through
        sigma_max = 1e4
        data_range = None

        def denoise(self, x: torch.Tensor, sigma) -> torch.Tensor:
            with torch.no_grad():
                return p.prior.denoise(x, sigma)

        def start(self, *args, **kwargs) -> torch.Tensor:
            return p.prior.start(*args, **kwargs)

    sig = karras(10, sigma_min=0.002, sigma_max=80.0)
    kw = dict(particles=64, samples=8)
    with pytest.warns(PnPWarning, match="not differentiable"):
        a = smc(p.y, p.operator, Frozen(), sig, p.sigma_y, generator=torch.Generator().manual_seed(0), **kw)
    b = smc(p.y, p.operator, p.prior, sig, p.sigma_y, twisted_proposal=False,
            generator=torch.Generator().manual_seed(0), **kw)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    with pytest.raises(ValueRangeError, match="differentiable"):
        smc(p.y, p.operator, Frozen(), sig, p.sigma_y, twisted_proposal=True, **kw)


# ------------------------------------------------------------------------------ mixture, d = 8
@pytest.fixture(scope="module")
def mixture8():
    """R independent smc runs (one batch of R copies of y, one call) at N = 100 and N = 500."""
    p = mixture_problem(8, 2, seed=0)
    out = {}
    for n, runs in ((100, 8), (500, 16)):
        ref = p.posterior.sample(n, generator=torch.Generator().manual_seed(1))
        floor = sum(sliced_wasserstein(p.posterior.sample(n, generator=torch.Generator().manual_seed(10 + k)), ref)
                    for k in range(4)) / 4
        x = smc(p.y.expand(runs, -1), p.operator, p.prior, SIG, p.sigma_y, particles=n, samples=n, chunk_size=1000,
                generator=torch.Generator().manual_seed(0)).reshape(n, runs, 8)
        out[n] = (x, ref, floor)
    return p, out


# Measured (seed 0): mean distance 1.94 (N = 100, floor 1.33) -> 0.80 (N = 500, floor 0.34); without
# the twisted proposal 2.46 -> 1.52. A single run scatters by 2-4x around the mean (particle
# degeneracy), which is why R runs are averaged.
def test_mixture_distance_falls_with_particles(mixture8) -> None:
    p, out = mixture8
    sw = {n: sum(sliced_wasserstein(x[:, r], ref) for r in range(x.shape[1])) / x.shape[1]
          for n, (x, ref, _) in out.items()}
    prior_sw = sliced_wasserstein(p.prior.sample(500, generator=torch.Generator().manual_seed(2)), out[500][1])
    assert sw[500] < 0.6 * sw[100]
    assert sw[500] < 0.25 * prior_sw
    assert out[100][2] > out[500][2]  # the floor itself falls with N (sanity of the reference)


# Problem 0 is bimodal (exact weights 0.599 / 0.356, modes 50 apart in unobserved directions): which
# mode a particle ends in is decided at sigma 2-20, long before its measurement is met, and the run's
# mode split rests on how many particles carry it there. Run-to-run spread of the main mode's share
# at N = 500: 0.022 for exact samples; measured 0.126 and 0.127 (16 and 24 runs) with the untilted
# (MCGdiff) proposal, 0.062 and 0.070 with the twisted one.
def test_the_mode_split_is_stable_across_runs(mixture8) -> None:
    p, out = mixture8
    x = out[500][0]
    top = int(p.posterior.weights.argmax())
    share = torch.stack([(p.posterior.responsibilities(x[:, r], 1e-3).argmax(1) == top).double().mean()
                         for r in range(x.shape[1])])
    assert float(share.std()) < 0.095, share.tolist()
    assert abs(float(share.mean()) - float(p.posterior.weights[top])) < 3 * float(share.std()) / 4 + 0.01


# Pooled over the 16 runs of N = 500 (8000 samples): weights within 0.05 -- the 0.02 at
# N = 5000, scaled as a Monte-Carlo error over the runs' spread (measured 0.004; 0.044 untilted);
# standard deviations within the 10 % (measured 0.6 %).
def test_mixture_weights_and_standard_deviations(mixture8) -> None:
    p, out = mixture8
    x = out[500][0].reshape(-1, 8)
    post = p.posterior
    w = torch.bincount(post.responsibilities(x, 1e-3).argmax(1), minlength=25).double() / x.shape[0]
    assert float((w - post.weights).abs().max()) < 0.05
    sd = torch.diagonal(post.covariance()).sqrt()
    assert float(((x.std(0) - sd) / sd).abs().max()) < 0.10


# ------------------------------------------------------------------------------ plumbing
def test_chunking_does_not_change_the_result() -> None:
    p = mixture_problem(8, 2, seed=0)
    sig = karras(10, sigma_min=0.002, sigma_max=80.0)
    kw = dict(particles=32, samples=16)
    a = smc(p.y, p.operator, p.prior, sig, p.sigma_y, chunk_size=7, generator=torch.Generator().manual_seed(4), **kw)
    b = smc(p.y, p.operator, p.prior, sig, p.sigma_y, chunk_size=1000, generator=torch.Generator().manual_seed(4), **kw)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def test_one_generator_per_measurement_makes_runs_independent_of_the_batch() -> None:
    p = mixture_problem(8, 2, seed=0)
    sig = karras(10, sigma_min=0.002, sigma_max=80.0)
    y2 = torch.cat([p.y, p.y + 0.5])
    both = smc(y2, p.operator, p.prior, sig, p.sigma_y, particles=32, samples=4,
               generator=[torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)])
    alone = smc(y2[1:], p.operator, p.prior, sig, p.sigma_y, particles=32, samples=4,
                generator=[torch.Generator().manual_seed(2)])
    torch.testing.assert_close(both.reshape(4, 2, 8)[:, 1], alone, rtol=0, atol=1e-12)


def test_callback_gets_weighted_means() -> None:
    p = mixture_problem(8, 2, seed=0)
    sig = karras(5, sigma_min=0.002, sigma_max=80.0)
    seen = []
    smc(p.y, p.operator, p.prior, sig, p.sigma_y, particles=16, callback=lambda i, t, x, x0: seen.append((i, x.shape)),
        generator=torch.Generator().manual_seed(0))
    assert seen == [(i, (1, 8)) for i in range(5)]


def test_solve_returns_the_posterior_mean() -> None:
    p = mixture_problem(8, 2, seed=0)
    sig = karras(20, sigma_min=0.002, sigma_max=80.0)
    got = pnpdiff.solve(p.y, p.operator, p.prior, method="smc", schedule=sig, sigma_y=p.sigma_y, particles=64,
                        seed=3, progress=False, device="cpu")
    ref = smc(p.y, p.operator, p.prior, sig, p.sigma_y, particles=64, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(got, ref)
    assert got.shape == (1, 8)


@pytest.mark.parametrize("bad", [{"particles": 0}, {"chunk_size": 0}, {"samples": -1}, {"ess_threshold": 1.5},
                                 {"kernel_variance": "exact"}, {"probes": 0}, {"defensive": 1.5},
                                 {"twisting": False, "twisted_proposal": True}])
def test_bad_options_are_value_range_errors(bad) -> None:
    p = mixture_problem(8, 2, seed=0)
    with pytest.raises(ValueRangeError):
        smc(p.y, p.operator, p.prior, SIG[-5:], p.sigma_y, **bad)


def test_an_operator_without_a_spectral_view_is_refused() -> None:
    p = mixture_problem(8, 2, seed=0)
    A = p.operator.matrix
    op = pnpdiff.operators.Matrix(A) @ pnpdiff.operators.Matrix(torch.eye(8, dtype=F64))  # a Composition
    with pytest.raises(OperatorError, match="spectral"):
        smc(p.y, op, p.prior, SIG[-5:], p.sigma_y)


# ------------------------------------------------------------------------------ sample_posterior
def test_sample_posterior_shapes_and_seeds() -> None:
    p = mixture_problem(8, 2, seed=0)
    sig = karras(10, sigma_min=0.002, sigma_max=80.0)
    kw = dict(sigma_y=p.sigma_y, schedule=sig, progress=False, device="cpu")
    a = pnpdiff.sample_posterior(p.y, p.operator, p.prior, n=6, seed=1, **kw)  # smc: the operator has an SVD
    b = pnpdiff.sample_posterior(p.y, p.operator, p.prior, n=6, seed=1, **kw)
    assert a.shape == (6, 1, 8) and torch.equal(a, b)
    assert len({tuple(v.tolist()) for v in a[:, 0]}) > 1
    c = pnpdiff.sample_posterior(p.y, p.operator, p.prior, n=6, seed=2, **kw)
    assert not torch.equal(a, c)


def test_independent_runs_are_batched_and_prefix_stable() -> None:
    p = mixture_problem(8, 2, seed=0)
    sig = karras(10, sigma_min=0.002, sigma_max=80.0)
    kw = dict(method="ddrm", sigma_y=p.sigma_y, schedule=sig, progress=False, device="cpu", seed=5)
    s6 = pnpdiff.sample_posterior(p.y, p.operator, p.prior, n=6, **kw)
    s3 = pnpdiff.sample_posterior(p.y, p.operator, p.prior, n=3, **kw)
    s6b = pnpdiff.sample_posterior(p.y, p.operator, p.prior, n=6, batch_size=4, **kw)
    torch.testing.assert_close(s6[:3], s3, rtol=0, atol=1e-10)
    torch.testing.assert_close(s6, s6b, rtol=0, atol=1e-10)
    # each sample is what solve returns for its own seed
    seed0 = pnpdiff.posterior.run_seeds(5, 6, 1)[0][0]
    one = pnpdiff.solve(p.y, p.operator, p.prior, method="ddrm", sigma_y=p.sigma_y, schedule=sig, seed=[seed0],
                        progress=False, device="cpu")
    torch.testing.assert_close(s6[0], one, rtol=0, atol=1e-10)


def test_image_shapes() -> None:
    """Image tensors keep their rank: ``(n, *x.shape)`` for a ``(C, H, W)`` image and a batch."""
    from pnpdiff.priors import CallablePrior

    def wiener(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:  # i.i.d. N(0.5, 0.02) pixels
        s2 = s.view(-1, *([1] * (x.ndim - 1))) ** 2
        return (0.02 * x + 0.5 * s2) / (0.02 + s2)

    prior = CallablePrior(wiener, sigma_max=2.0, data_mean=0.5, data_var=0.02)
    op = pnpdiff.Inpaint((torch.arange(36).reshape(1, 6, 6) % 2).float())
    y = op(0.5 + 0.1 * torch.randn(1, 1, 6, 6, generator=torch.Generator().manual_seed(0)))
    kw = dict(sigma_y=0.01, steps=5, progress=False, device="cpu", seed=0)
    assert pnpdiff.sample_posterior(y, op, prior, n=3, method="diffpir", **kw).shape == (3, 1, 1, 6, 6)
    assert pnpdiff.sample_posterior(y[0], op, prior, n=3, method="diffpir", **kw).shape == (3, 1, 6, 6)
    assert pnpdiff.sample_posterior(y[0, 0], op, prior, n=2, method="diffpir", **kw).shape == (2, 6, 6)
    assert pnpdiff.sample_posterior(y[0], op, prior, n=3, particles=8, **kw).shape == (3, 1, 6, 6)


def test_point_estimates_warn_and_bad_arguments_raise() -> None:
    p = gaussian_problem()
    with pytest.warns(PnPWarning, match="point estimate"):
        pnpdiff.sample_posterior(p.y, p.operator, p.prior, n=2, method="dpir", sigma_y=p.sigma_y, steps=2,
                                 progress=False, device="cpu")
    for bad in ({"n": 0}, {"batch_size": 0}, {"method": "nope"}, {"samples": 3}):
        with pytest.raises(PnPError):
            pnpdiff.sample_posterior(p.y, p.operator, p.prior, **{"n": 2, **bad})
    # more samples than particles: they can only repeat particles
    with pytest.warns(PnPWarning, match="3 samples from 2 particles"):
        pnpdiff.sample_posterior(p.y, p.operator, p.prior, n=3, method="smc", particles=2, sigma_y=p.sigma_y,
                                 steps=2, progress=False, device="cpu")


def test_a_mistake_the_solve_raises_comes_without_the_point_estimate_warning() -> None:
    """mmse with a non-identity operator: the OperatorError alone (the 'identical samples' warning
    is for a run that happens), and its advice names every other method, the samplers included."""
    import warnings

    p = gaussian_problem()
    with warnings.catch_warnings():
        warnings.simplefilter("error", PnPWarning)
        with pytest.raises(PnPError, match="Identity") as info:
            pnpdiff.sample_posterior(p.y, p.operator, p.prior, n=2, method="mmse", sigma_y=p.sigma_y,
                                     progress=False, device="cpu")
    for m in ("'smc'", "'daps'", "'pnpdm'", "'ddrm'"):
        assert m in str(info.value)


def test_memory_check_counts_the_particles() -> None:
    from pnpdiff.operators import Inpaint

    y = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    op = Inpaint((torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(1)) > 0.5).float())
    with pytest.raises(pnpdiff.MemoryLimitError):
        pnpdiff.solve(y, op, "natural", method="smc", particles=10**6, steps=2, progress=False, max_memory="1G",
                      sigma_y=0.02, device="cpu")


def test_memory_budget_chunks_the_work_instead_of_refusing(monkeypatch) -> None:
    """Under a budget too small for all runs at once, sample_posterior and smc split the work into
    several denoiser calls (same samples) instead of raising MemoryLimitError."""
    from pnpdiff import costs

    p = mixture_problem(8, 2, seed=0)
    sig = karras(6, sigma_min=0.002, sigma_max=80.0)
    calls: list[int] = []
    real = type(p.prior).denoise

    def counting(self, x, sigma, **kw):
        calls.append(x.shape[0])
        return real(self, x, sigma, **kw)

    monkeypatch.setattr(type(p.prior), "denoise", counting)
    kw = dict(sigma_y=p.sigma_y, schedule=sig, progress=False, device="cpu", seed=3)
    one = costs.estimate_solve_bytes((1, 8), (1, 2), p.prior, "ddrm", p.y.dtype)
    three = costs.estimate_solve_bytes((3, 8), (3, 2), p.prior, "ddrm", p.y.dtype)
    assert three > one  # the estimate grows with the batch, so a budget between them admits 1 or 2 runs
    free = pnpdiff.sample_posterior(p.y, p.operator, p.prior, n=6, method="ddrm", max_memory="off", **kw)
    assert max(calls) == 6
    calls.clear()
    tight = pnpdiff.sample_posterior(p.y, p.operator, p.prior, n=6, method="ddrm", max_memory=(one + three) // 2,
                                     **kw)
    assert 1 <= max(calls) < 6
    torch.testing.assert_close(free, tight, rtol=0, atol=1e-10)
    # smc: the particles per denoiser call follow the budget; the samples do not change
    calls.clear()
    a = pnpdiff.sample_posterior(p.y, p.operator, p.prior, n=4, method="smc", particles=40, max_memory="off", **kw)
    assert max(calls) == 40
    extra = 8 * 40 * 8 * p.y.element_size()  # the 40 stored particles (api's estimate)
    small = costs.estimate_solve_bytes((5, 8), tuple(p.y.shape), p.prior, "smc", p.y.dtype) + extra
    calls.clear()
    b = pnpdiff.sample_posterior(p.y, p.operator, p.prior, n=4, method="smc", particles=40, max_memory=small, **kw)
    assert max(calls) == 5
    torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def test_largest_batch_is_the_largest_that_fits() -> None:
    from pnpdiff.memory import largest_batch

    need = lambda k: 100 + 10 * k  # noqa: E731
    assert largest_batch(need, 50, None) == 50
    assert largest_batch(need, 50, 10_000) == 50
    assert largest_batch(need, 50, 100 + 10 * 17) == 17
    assert largest_batch(need, 50, 100 + 10 * 17 + 9) == 17
    assert largest_batch(need, 50, 50) == 1  # not even one fits: the caller's check reports it
