"""The units of a translated DAPS task config, checked against transcriptions of DAPS's code.

Not against the formulas of :mod:`pnpdiff.config.peers.daps`: the Langevin chain that DAPS's
``cores/mcmc.py`` runs (``MCMCSampler.sample`` with ``mc_algo: langevin`` and ``prior_solver:
gaussian``), transcribed below in its own [-1, 1] variables and fed the config's own ``lr`` and
``tau``, must be the chain pnpdiff's ``daps`` runs with the translated ``lr`` and ``beta_y``; and
DAPS's measurements (``forward_operator/__init__.py``: ``y = A(x') + sigma n``; its phase retrieval
maps ``x'`` to [0, 1] before a centred orthonormal FFT, fastMRI's ``fft2c``) must be pnpdiff's with
the translated ``sigma_y``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from posterior_utils import gaussian_problem

from pnpdiff.config.peers import translate
from pnpdiff.operators import PhaseRetrieval
from pnpdiff.schedules import karras
from pnpdiff.solvers.daps import daps
from pnpdiff.solvers.samplers import euler


def _config(lr: float, tau: float, n: int, operator: dict) -> dict:
    return {"pixel": {"mcmc_sampler_config": {"num_steps": n, "lr": lr, "tau": tau, "lr_min_ratio": 0.01,
                                              "mc_algo": "langevin", "prior_solver": "gaussian"},
                      "operator": operator}}


def _official_daps_langevin(x0hat: torch.Tensor, y: torch.Tensor, A: torch.Tensor, sigma: float, lr: float,
                            tau: float, eps: list[torch.Tensor]) -> torch.Tensor:
    """DAPS's MCMCSampler.sample (langevin, gaussian prior solver), in its [-1, 1] variables (reference;
    not product code): ``score = -grad ||A x - y||^2 / tau^2 + (xt - x) / sigma^2 + (x0hat - xt) / sigma^2``,
    ``x += lr * score + sqrt(2 lr) eps``, starting at the ODE's ``x0hat``."""
    x = x0hat.clone()
    for e in eps:
        data_grad = 2 * (x @ A.T - y) @ A  # operator.gradient: autograd of ((A x - y) ** 2).sum()
        score = -data_grad / tau**2 + (x0hat - x) / sigma**2
        x = x + lr * score + math.sqrt(2 * lr) * e
    return x


def test_translated_lr_and_tau_give_the_official_langevin_chain() -> None:
    """One annealing level at sigma t: pnpdiff's daps with the translated options runs DAPS's chain
    (fed the config's own lr and tau on [-1, 1]) to 1e-9; with beta_y = tau / 2 (no sqrt 2: DAPS's
    loss has no 1/2) and the same absolute step it does not."""
    prob = gaussian_problem()
    A = prob.operator.matrix
    lr_daps, tau, n, t = 2e-5, 0.01, 6, 1.0
    tr = translate(_config(lr_daps, tau, n, {"name": "gaussian_blur", "kernel_size": 5, "intensity": 1.0,
                                             "sigma": 0.05}))
    opts = tr.recipe["options"]
    assert opts["lr"] < 1  # not capped: the chains must match exactly
    x_init = torch.linspace(-0.5, 0.5, 8, dtype=torch.float64).reshape(1, 8)
    sigmas = torch.tensor([t, 0.0], dtype=torch.float64)

    def run(beta_y: float, lr: float) -> torch.Tensor:
        return daps(prob.y, prob.operator, prob.prior, sigmas, tr.recipe["noise"]["sigma_y"], ode_steps=5,
                    langevin_steps=n, lr=lr, lr_min_ratio=opts["lr_min_ratio"], beta_y=beta_y, x_init=x_init,
                    generator=torch.Generator().manual_seed(0))

    got = run(opts["beta_y"], opts["lr"])
    # the same draws: the start at sigma t, then one per Langevin step (x-noise sqrt(2 lr / 4) e is the
    # x'-noise sqrt(2 lr) e mapped to [0, 1])
    g = torch.Generator().manual_seed(0)
    x_t = x_init + t * torch.randn(x_init.shape, generator=g, dtype=torch.float64)
    eps = [torch.randn(x_init.shape, generator=g, dtype=torch.float64) for _ in range(n)]
    x0hat = euler(prob.prior, karras(5, sigma_min=min(0.005, t), sigma_max=t), x_t)
    y_pm = 2 * prob.y - torch.ones(1, 8, dtype=torch.float64) @ A.T  # DAPS's y' = A(2x - 1) + n'
    ref_pm = _official_daps_langevin(2 * x0hat - 1, y_pm, A, 2 * t, lr_daps, tau, eps)
    ref = (ref_pm + 1) / 2
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-9)
    assert (got - x0hat).abs().max() > 1e-3  # the chain moved
    beta_naive = tau / 2
    naive = run(beta_naive, lr_daps / 4 / beta_naive**2)  # the same absolute step, the likelihood of std tau / 2
    assert (naive - ref).abs().max() > 1e-3


def test_translated_sigma_gives_the_official_measurements() -> None:
    """Image-domain operators: DAPS's ``y' = A(2x - 1) + sigma n`` is ``2 y - A 1`` for pnpdiff's
    ``y = A x + sigma_y n`` (sigma_y = sigma / 2). Phase retrieval: DAPS's ``|fft2c(pad(x' / 2 + 1/2))|
    + sigma n`` is pnpdiff's ``PhaseRetrieval(x) + sigma_y n`` with sigma_y = sigma."""
    g = torch.Generator().manual_seed(3)
    A = torch.randn(5, 16, generator=g, dtype=torch.float64)
    x = torch.rand(1, 16, generator=g, dtype=torch.float64)
    n = torch.randn(1, 5, generator=g, dtype=torch.float64)
    tr = translate(_config(1e-4, 0.01, 1, {"name": "motion_blur", "kernel_size": 9, "intensity": 0.5, "sigma": 0.05}))
    y_daps = (2 * x - 1) @ A.T + 0.05 * n
    y_pnp = x @ A.T + tr.recipe["noise"]["sigma_y"] * n
    torch.testing.assert_close(y_daps, 2 * y_pnp - torch.ones(1, 16, dtype=torch.float64) @ A.T, rtol=0, atol=1e-14)

    tr = translate(_config(5e-5, 0.01, 1, {"name": "phase_retrieval", "oversample": 2.0, "sigma": 0.05}))
    img = torch.rand(1, 3, 32, 32, generator=g, dtype=torch.float64)
    noise = torch.randn(1, 3, 48, 48, generator=g, dtype=torch.float64)
    pad = int((2.0 / 8.0) * 32)  # DAPS's PhaseRetrieval(oversample, resolution=32)
    padded = F.pad((2 * img - 1) * 0.5 + 0.5, (pad, pad, pad, pad)).to(torch.complex128)
    spectrum = torch.fft.fftshift(torch.fft.fft2(torch.fft.ifftshift(padded, dim=(-2, -1)), norm="ortho"),
                                  dim=(-2, -1))  # fastMRI's fft2c
    y_daps = spectrum.abs() + 0.05 * noise
    op = PhaseRetrieval(**{k: v for k, v in tr.recipe["operator"].items() if k != "name"})
    y_pnp = op(img) + tr.recipe["noise"]["sigma_y"] * noise
    torch.testing.assert_close(y_pnp, y_daps, rtol=0, atol=1e-12)
