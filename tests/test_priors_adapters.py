"""Adapters: eps / x0 / EDM / deepinv / callable models into the VE denoiser contract.

The decisive test wraps the *exact* eps of an analytic prior as a fake VP "model" on [-1, 1]
with the DDPM linear-beta table and checks that the adapter returns the exact VE denoiser on
[0, 1] at 20 sigmas: this pins down the sigma <-> timestep and [0, 1] <-> [-1, 1] conversions.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pnpdiff.errors import ShapeError
from pnpdiff.priors import (
    CallablePrior,
    DeepinvPrior,
    EDMPrior,
    EpsPrior,
    GaussianMixturePrior,
    VPTable,
    X0Prior,
    ddpm_alphas_cumprod,
    load_prior,
)

F64 = torch.float64
ABAR = ddpm_alphas_cumprod(1e-4, 0.02, 1000)


def _image_gmm() -> GaussianMixturePrior:
    """A 3-component mixture on (1, 4, 4) images with values around [0, 1], full covariances."""
    g = torch.Generator().manual_seed(0)
    k, d = 3, 16
    means = torch.rand(k, 1, 4, 4, generator=g, dtype=F64)
    L = torch.randn(k, d, d, generator=g, dtype=F64) / 8
    covs = L @ L.transpose(-1, -2) + 1e-3 * torch.eye(d, dtype=F64)
    return GaussianMixturePrior(torch.tensor([0.2, 0.5, 0.3], dtype=F64), means, covs)


def _abar_of_t(t: torch.Tensor) -> torch.Tensor:
    """The fake model's own continuous-time alpha-bar: log-SNR linearly interpolated in t
    (numpy.interp, independent of the adapter's code)."""
    lsnr = np.log(ABAR.numpy() / (1 - ABAR.numpy()))
    v = np.interp(t.detach().cpu().numpy(), np.arange(1000.0), lsnr)
    return torch.sigmoid(torch.as_tensor(v, dtype=F64))


def _fake_vp_eps_model(prior: GaussianMixturePrior, half: bool = False, learned_var: bool = True):
    def model(x_vp: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        abar = _abar_of_t(t).view(-1, 1, 1, 1)
        if half:  # a deliberately wrong unit convention: forgets the [-1,1] -> [0,1] factor 2
            sigma = ((1 - abar) / abar).sqrt()
        else:
            sigma = ((1 - abar) / abar).sqrt() / 2
        x = (x_vp / abar.sqrt() + 1) / 2  # back to VE form on [0, 1]
        eps = (x - prior.denoise(x, sigma.flatten())) / sigma
        if learned_var:
            return torch.cat([eps, torch.full_like(eps, 123.0)], dim=1)  # variance channels
        return eps

    return model


def test_eps_adapter_recovers_the_exact_denoiser_at_20_sigmas() -> None:
    prior = _image_gmm()
    adapter = EpsPrior(_fake_vp_eps_model(prior), ABAR)
    assert adapter.sigma_min == pytest.approx(0.005, rel=1e-3)
    assert adapter.sigma_max == pytest.approx(78.7, rel=1e-3)
    g = torch.Generator().manual_seed(1)
    sigmas = torch.logspace(math.log10(adapter.sigma_min), math.log10(adapter.sigma_max), 20,
                            dtype=F64)
    x0 = prior.sample(20, g)
    x = x0 + sigmas.view(-1, 1, 1, 1) * torch.randn(x0.shape, generator=g, dtype=F64)
    got = adapter.denoise(x, sigmas)
    ref = prior.denoise(x, sigmas)
    err = (got - ref).abs().amax()
    assert err < 1e-5, float(err)
    # also one sigma at a time, scalar sigma
    for i in (0, 7, 19):
        e = (adapter.denoise(x[i:i + 1], float(sigmas[i])) - ref[i:i + 1]).abs().amax()
        assert e < 1e-5


def test_the_exact_eps_test_detects_a_unit_slip() -> None:
    prior = _image_gmm()
    wrong = EpsPrior(_fake_vp_eps_model(prior, half=True), ABAR)
    g = torch.Generator().manual_seed(2)
    x0 = prior.sample(4, g)
    sig = torch.tensor([0.05, 0.2, 1.0, 5.0], dtype=F64)
    x = x0 + sig.view(-1, 1, 1, 1) * torch.randn(x0.shape, generator=g, dtype=F64)
    assert (wrong.denoise(x, sig) - prior.denoise(x, sig)).abs().amax() > 1e-2


def test_vp_table_maps_are_inverse_and_exact_at_integers() -> None:
    table = VPTable(ABAR)
    t = torch.tensor([0.0, 0.5, 1.0, 10.25, 500.0, 998.9, 999.0], dtype=F64)
    torch.testing.assert_close(table.t_of_sigma(table.sigma_of_t(t)), t, rtol=0, atol=1e-9)
    k = torch.arange(0, 1000, 37)
    exact = ((1 - ABAR[k]) / ABAR[k]).sqrt() / 2
    torch.testing.assert_close(table.sigma_of_t(k.to(F64)), exact, rtol=1e-12, atol=0)
    # ALGORITHMS.md: FFDNet's 75/255 is t ~ 168 on this table
    assert 160 < float(table.t_of_sigma(torch.tensor(75 / 255))) < 175
    # clamped outside the table
    assert float(table.t_of_sigma(torch.tensor(1e-4))) == 0.0
    assert float(table.t_of_sigma(torch.tensor(1e4))) == 999.0


def test_eps_to_x0_by_hand_with_a_simple_model() -> None:
    def model(x_vp: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return 0.3 * x_vp + 1e-3 * t.view(-1, 1, 1, 1)

    adapter = EpsPrior(model, ABAR)
    t = 500
    abar = float(ABAR[t])
    sigma = math.sqrt((1 - abar) / abar) / 2
    x = torch.rand(2, 3, 5, 5, dtype=F64, generator=torch.Generator().manual_seed(3))
    x_vp = math.sqrt(abar) * (2 * x - 1)
    hand = x - sigma * (0.3 * x_vp + 1e-3 * t)
    torch.testing.assert_close(adapter.denoise(x, sigma), hand, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(adapter.eps(x, sigma), 0.3 * x_vp + 1e-3 * t)
    # float32 input: computed in float32, same result to float32 precision
    out32 = adapter.denoise(x.float(), sigma)
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32, hand.float(), rtol=1e-4, atol=1e-4)


def test_learned_variance_channels_are_dropped_or_kept() -> None:
    prior = _image_gmm()
    x = prior.sample(2, torch.Generator().manual_seed(4))
    a = EpsPrior(_fake_vp_eps_model(prior, learned_var=True), ABAR)
    b = EpsPrior(_fake_vp_eps_model(prior, learned_var=False), ABAR)
    torch.testing.assert_close(a.denoise(x, 0.1), b.denoise(x, 0.1))
    with pytest.raises(ShapeError):
        EpsPrior(_fake_vp_eps_model(prior), ABAR, learned_variance=False).denoise(x, 0.1)


def test_x0_adapter_with_exact_x0_model() -> None:
    prior = _image_gmm()

    def model(x_vp: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        abar = _abar_of_t(t).view(-1, 1, 1, 1)
        sigma = ((1 - abar) / abar).sqrt() / 2
        x = (x_vp / abar.sqrt() + 1) / 2
        return 2 * prior.denoise(x, sigma.flatten()) - 1  # x0 on [-1, 1]

    adapter = X0Prior(model, ABAR)
    g = torch.Generator().manual_seed(5)
    sig = torch.tensor([0.01, 0.1, 1.0, 10.0], dtype=F64)
    x = prior.sample(4, g) + sig.view(-1, 1, 1, 1) * torch.randn(4, 1, 4, 4, generator=g,
                                                                 dtype=F64)
    assert (adapter.denoise(x, sig) - prior.denoise(x, sig)).abs().amax() < 1e-8


def test_edm_adapter_with_exact_preconditioned_network() -> None:
    prior = _image_gmm()
    sd = 0.5

    def d_edm(xe: torch.Tensor, s: torch.Tensor) -> torch.Tensor:  # exact EDM denoiser, [-1, 1]
        return 2 * prior.denoise((xe + 1) / 2, s / 2) - 1

    def raw_f(x_in: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        s = torch.exp(4 * c_noise).view(-1, 1, 1, 1)
        xe = x_in * (s**2 + sd**2).sqrt()
        c_skip = sd**2 / (s**2 + sd**2)
        c_out = s * sd / (s**2 + sd**2).sqrt()
        return (d_edm(xe, s.flatten()) - c_skip * xe) / c_out

    g = torch.Generator().manual_seed(6)
    sig = torch.tensor([0.002, 0.05, 0.5, 5.0, 40.0], dtype=F64)
    x = prior.sample(5, g) + sig.view(-1, 1, 1, 1) * torch.randn(5, 1, 4, 4, generator=g,
                                                                 dtype=F64)
    ref = prior.denoise(x, sig)
    for adapter in (EDMPrior(raw_f, sd), EDMPrior(d_edm, sd, precondition=False)):
        assert (adapter.denoise(x, sig) - ref).abs().amax() < 1e-8
    assert EDMPrior(raw_f).sigma_max == 40.0


def test_callable_and_prior_specs() -> None:
    prior = _image_gmm()
    p = load_prior(lambda x, s: prior.denoise(x, s))
    assert isinstance(p, CallablePrior)
    x = prior.sample(2, torch.Generator().manual_seed(7))
    torch.testing.assert_close(p.denoise(x, 0.3), prior.denoise(x, 0.3))
    torch.testing.assert_close(p.score(x, 0.3), prior.score(x, 0.3))
    assert load_prior(prior) is prior
    bad = CallablePrior(lambda x, s: x[:, :0])
    with pytest.raises(ShapeError):
        bad.denoise(x, 0.1)


def test_deepinv_denoiser_is_wrapped_with_sigma_in_image_units() -> None:
    from deepinv.models import Denoiser

    seen = {}

    class Shrink(Denoiser):
        def forward(self, x, sigma, **kwargs):
            s = self._handle_sigma(sigma, batch_size=x.shape[0], ndim=x.ndim, device=x.device,
                                   dtype=x.dtype)
            seen["sigma"] = s.flatten()
            return x / (1 + s**2)

    p = load_prior(Shrink())
    assert isinstance(p, DeepinvPrior)
    x = torch.rand(3, 3, 8, 8)
    sig = torch.tensor([0.1, 0.2, 0.3])
    out = p.denoise(x, sig)
    torch.testing.assert_close(seen["sigma"], sig)  # passed through unchanged: same units
    torch.testing.assert_close(out, x / (1 + sig.view(-1, 1, 1, 1) ** 2))
    out64 = p.denoise(x.double(), 0.2)
    assert out64.dtype == torch.float64
