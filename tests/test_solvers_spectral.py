"""DDRM, DDNM, DDNM+, DiffPIR and DPIR against exact posteriors, on images, and on a photo.

Posterior tables measured here (B = 1000 samples, one batched run, Karras sigmas 0.002..80,
seed 0; SW = sliced Wasserstein to 1000 exact posterior samples, 100 directions; "mean" =
relative posterior-mean error; the Monte-Carlo floor of both with 1000 exact samples is
SW 0.05 / mean 1.5 % on the Gaussian problem):

=====================  ==============  ==============  ==============  ==============
problem (baseline SW)  DDRM 20 / 100   DDNM+ 20 / 100  DiffPIR 20/100  DDNM 20 / 100
=====================  ==============  ==============  ==============  ==============
Gaussian d=8, dy=2     SW .35 / .19    SW .30 / .15    SW .38 / .26    SW .30 / .14
(0.83)                 mean 19 / 9.7%  mean 16 / 6.1%  mean 16 / 6.5%  mean 16 / 5.8%
mixture d=8 dy=2 (14.7) 0.25x / 0.16x   0.19x / 0.06x   0.22x / 0.10x   0.19x / 0.07x
mixture d=80 dy=1 (5.1) 0.94x / 0.67x   0.94x / 0.63x   0.51x / 0.55x   0.94x / 0.63x
=====================  ==============  ==============  ==============  ==============

(DiffPIR with lam = 1, i.e. rho_t = sigma_y^2 / t^2, and zeta = 1.)
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from posterior_utils import gaussian_problem, mixture_problem, relative_mean_error, sliced_wasserstein

from pnpdiff.errors import OperatorError
from pnpdiff.metrics import psnr
from pnpdiff.operators import Downsample, GaussianBlur, Inpaint
from pnpdiff.priors import GaussianPrior, load_prior
from pnpdiff.schedules import ddpm as ddpm_schedule
from pnpdiff.schedules import geometric, karras
from pnpdiff.solvers import SOLVERS, ddnm, ddnm_plus, ddrm, diffpir, dpir, initial_estimate
from pnpdiff.solvers.ddnm import time_travel_path

B = 1000
METHODS = {
    "ddrm": (ddrm, {}),
    "ddnm+": (ddnm_plus, {}),
    "ddnm": (ddnm, {}),
    "diffpir": (diffpir, {"lam": 1.0, "zeta": 1.0}),  # rho_t = sigma_y^2 / t^2 (the reference's lambda = 1)
}


def _run(method: str, p, steps: int, seed: int = 0) -> torch.Tensor:
    fn, kw = METHODS[method]
    g = torch.Generator().manual_seed(seed)
    sig = karras(steps, sigma_min=0.002, sigma_max=80)
    return fn(p.y.expand(B, -1), p.operator, p.prior, sig, p.sigma_y, generator=g, **kw)


def _reference(p) -> tuple[torch.Tensor, float]:
    g = torch.Generator().manual_seed(123)
    ref = p.posterior.sample(B, generator=g)
    baseline = sliced_wasserstein(p.prior.sample(B, generator=g), ref)
    return ref, baseline


@pytest.fixture(scope="module")
def gauss():
    p = gaussian_problem()
    return p, *_reference(p)


# Acceptance (issue 5) at 100 steps: mean error <= 10 % for DDRM and DDNM+ (measured 9.7 % and
# 6.1 %; runs are deterministic for a seed, and the error keeps falling with more steps: DDRM
# 1.4 % at 1000 steps, so the 9.7 % is discretisation, not bias). DDNM ignores sigma_y, 5.8 %:
# same bound. DiffPIR on Karras sigmas: 6.3-6.5 % (1.2 % at 1000 steps); on its paper's own
# schedule it meets the 5 %, see test_diffpir_gaussian_acceptance.
# SW at 100 steps is 0.17-0.32x the prior-only baseline: < 0.4x.
@pytest.mark.parametrize("method,max_err", [("ddrm", 0.10), ("ddnm+", 0.10), ("ddnm", 0.10), ("diffpir", 0.08)])
def test_gaussian_posterior(gauss, method, max_err):
    p, ref, baseline = gauss
    x20, x100 = _run(method, p, 20), _run(method, p, 100)
    assert torch.isfinite(x100).all()
    assert x100.shape == (B, 8)
    assert relative_mean_error(x100, p.posterior) <= max_err
    assert relative_mean_error(x100, p.posterior) < relative_mean_error(x20, p.posterior)
    assert sliced_wasserstein(x20, ref) < 0.5 * baseline  # measured 0.37-0.46x
    assert sliced_wasserstein(x100, ref) < 0.4 * baseline


# DiffPIR on its own paper's schedule (DDPM linear betas, quadratic timestep spacing, sigma up to
# 78.7 in [0, 1] units): measured 2.8 % (100 steps) and 9.8 % (20 steps) with 10 000 samples; with
# Karras sigmas it is 6.3 % at 100 steps (1.2 % at 1000): DiffPIR's data step is a relaxation that
# converges only while t is near sigma_y, and Karras' rho = 7 spends most steps far below it.
# Bound: the 5 % (1000 exact samples alone are 1.5 % off).
def test_diffpir_gaussian_acceptance(gauss):
    p, ref, baseline = gauss
    g = torch.Generator().manual_seed(0)
    x = diffpir(p.y.expand(B, -1), p.operator, p.prior, ddpm_schedule(100, spacing="quadratic"),
                p.sigma_y, lam=1.0, zeta=1.0, generator=g)
    assert relative_mean_error(x, p.posterior) <= 0.05
    assert sliced_wasserstein(x, ref) < 0.35 * baseline  # measured 0.29x (mean error 2.9 %)


# MCGdiff mixture, d = 8, d_y = 2: at 20 steps every method is at 0.19-0.25x the prior-only
# baseline; the acceptance is < 0.8x for DDRM, DDNM+ and DiffPIR, < 1x for the others.
@pytest.mark.parametrize("method", ["ddrm", "ddnm+", "diffpir", "ddnm"])
def test_mixture_posterior_d8(method):
    p = mixture_problem(8, 2, seed=1)
    ref, baseline = _reference(p)
    x = _run(method, p, 20)
    assert sliced_wasserstein(x, ref) < 0.8 * baseline


# d = 80, d_y = 1: 100 steps are needed (at 20 steps DDRM/DDNM+ sit at 0.94x); measured 0.67x
# (DDRM), 0.63x (DDNM+), 0.55x (DiffPIR). Slow (100 mixture denoiser calls in d = 80).
@pytest.mark.slow
@pytest.mark.parametrize("method", ["ddrm", "ddnm+", "diffpir"])
def test_mixture_posterior_d80(method):
    p = mixture_problem(80, 1, seed=3)
    ref, baseline = _reference(p)
    assert sliced_wasserstein(_run(method, p, 100), ref) < 0.8 * baseline


def test_time_travel_path():
    assert time_travel_path(5) == [0, 1, 2, 3, 4, 5]
    path = time_travel_path(6, travel_length=2, travel_repeat=2)
    assert path[0] == 0 and path[-1] == 6
    back = [(a, b) for a, b in zip(path, path[1:]) if b < a]
    assert back and all(a - b == 2 for a, b in back)
    assert sum(1 for a, b in zip(path, path[1:]) if b == a + 1) == 6 + 2 * len(back)


def test_ddnm_time_travel_runs(gauss):
    p = gauss[0]
    sig = karras(10, sigma_min=0.002, sigma_max=80)
    y = p.y.expand(64, -1)
    calls = []
    kw = dict(travel_length=2, travel_repeat=3)
    a = ddnm_plus(y, p.operator, p.prior, sig, p.sigma_y, generator=torch.Generator().manual_seed(1),
                  callback=lambda *args: calls.append(args[1]), **kw)
    b = ddnm_plus(y, p.operator, p.prior, sig, p.sigma_y, generator=torch.Generator().manual_seed(1), **kw)
    assert torch.equal(a, b) and torch.isfinite(a).all()
    assert len(calls) > 10  # the travelled steps are denoised again


def _image_problem():
    g = torch.Generator().manual_seed(0)
    prior = GaussianPrior(torch.full((1, 8, 8), 0.5, dtype=torch.float64), 0.05)
    x = prior.sample(2, generator=g)
    return prior, x, g


@pytest.mark.parametrize("method", ["ddrm", "ddnm", "ddnm+", "dpir", "diffpir"])
@pytest.mark.parametrize("op_name", ["downsample", "inpaint"])
def test_images(method, op_name):
    prior, x, g = _image_problem()
    if op_name == "downsample":
        op = Downsample(2)
    else:
        op = Inpaint((torch.rand(1, 1, 8, 8, generator=g) > 0.5).double())
    y = op(x) + 0.01 * torch.randn(op(x).shape, generator=g, dtype=torch.float64)
    sig = karras(10, sigma_min=0.002, sigma_max=40) if method != "dpir" else geometric(8, 0.01, 0.2)
    fn = SOLVERS[method]
    a = fn(y, op, prior, sig, 0.01, generator=torch.Generator().manual_seed(3))
    b = fn(y, op, prior, sig, 0.01, generator=torch.Generator().manual_seed(3))
    assert a.shape == x.shape and a.dtype == x.dtype and torch.isfinite(a).all()
    assert torch.equal(a, b)
    assert float(((op(a) - y) ** 2).mean()) < float(((op(prior.mean()[None].expand_as(x)) - y) ** 2).mean())


def test_ddrm_needs_a_spectral_view():
    prior, x, _ = _image_problem()
    op = GaussianBlur(1.0, boundary="reflect")
    with pytest.raises(OperatorError, match="spectral"):
        ddrm(op(x), op, prior, karras(5, 0.002, 40), 0.01)
    out = ddnm_plus(op(x), op, prior, karras(5, 0.002, 40), 0.01)  # falls back on A^+
    assert torch.isfinite(out).all()


def test_registry():
    for name, fn in [("ddrm", ddrm), ("ddnm", ddnm), ("ddnm+", ddnm_plus), ("dpir", dpir)]:
        assert SOLVERS[name] is fn
    for name in ("ddpm", "ddim", "euler", "heun"):
        assert name not in SOLVERS


def test_dpir_photo():
    """DPIR with FFDNet on a 64 px astronaut crop, Gaussian blur 1.5, sigma_y = 0.01.

    Measured: initial estimate (regularised least squares) 21.8 dB, DPIR (8 iterations,
    lam = 0.23) 23.2 dB: +1.4 dB; asserted >= +0.7 dB.
    """
    from skimage import data

    img = data.astronaut()[::4, ::4][8:72, 32:96]
    x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float() / 255
    op = GaussianBlur(1.5)
    sigma_y = 0.01
    y = op(x) + sigma_y * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    prior = load_prior("natural")
    sig = geometric(8, sigma_min=max(sigma_y, 1 / 255), sigma_max=49 / 255)
    x_init = initial_estimate(y, op, sigma_y, float(sig[0]))
    out = dpir(y, op, prior, sig, sigma_y)
    assert float(psnr(out, x)) >= float(psnr(x_init, x)) + 0.7


def test_ddnm_warns_on_noisy_measurements(gauss):
    p, _, _ = gauss
    sig = karras(3, sigma_min=0.002, sigma_max=80)
    with pytest.warns(UserWarning, match="ddnm\\+"):
        ddnm(p.y, p.operator, p.prior, sig, 0.05)
