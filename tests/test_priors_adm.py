"""ADM (guided-diffusion) checkpoints: architecture, loading by path, eps -> x0 conversion."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from pnpdiff.errors import PnPError, ShapeError
from pnpdiff.priors import ADMConfig, ADMPrior, ADMUNet, load_adm, load_prior
from pnpdiff.priors.adapters import ddpm_alphas_cumprod
from pnpdiff.priors.adm import adm_config

#: a small network of the same family: 16x16, 32 channels, attention at 8x8, learned sigma
TINY = dict(image_size=16, model_channels=32, channel_mult=(1, 2), num_res_blocks=1,
            attention_resolutions=(8,), num_head_channels=32)


def _randomise(net: torch.nn.Module, seed: int = 0) -> None:
    """Random weights everywhere (ADM zero-initialises its output convolutions)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(0.05 * torch.randn(p.shape, generator=g))


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = ADMConfig.from_dict({**adm_config("ffhq").to_dict(), **TINY})
    net = ADMUNet(cfg)
    _randomise(net)
    path = tmp_path_factory.mktemp("adm") / "tiny_ffhq.pt"
    torch.save(net.state_dict(), path)
    return path


@pytest.mark.parametrize(("name", "large"), [("ffhq", False), ("imagenet", True)])
def test_state_dict_keys_match_deepinv_diffunet(name: str, large: bool) -> None:
    """The published configurations have exactly deepinv DiffUNet's (= guided-diffusion's)
    parameter names and shapes, so the original checkpoints load with strict=True."""
    from deepinv.models import DiffUNet

    with torch.device("meta"):
        ref = DiffUNet(large_model=large, pretrained=None)
        mine = ADMUNet(adm_config(name))
    a = {k: tuple(v.shape) for k, v in ref.state_dict().items() if not k.startswith("sqrt_")}
    b = {k: tuple(v.shape) for k, v in mine.state_dict().items()}
    assert a == b
    n = sum(p.numel() for p in mine.parameters())
    assert n == (93_563_910 if name == "ffhq" else 552_814_086)


def test_load_by_path_denoise_shapes_and_hand_conversion(tiny_ckpt: Path) -> None:
    prior = load_prior(f"ffhq:{tiny_ckpt}", config=TINY)
    assert isinstance(prior, ADMPrior)
    assert prior.size == (16, 16) and prior.channels == 3
    assert load_prior(f"ffhq:{tiny_ckpt}", config=TINY) is prior  # cached
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(2, 3, 16, 16, generator=g)
    t = 250
    abar = ddpm_alphas_cumprod()[t].item()
    sigma = math.sqrt((1 - abar) / abar) / 2  # exactly on the table: t(sigma) = 250
    x = x0 + sigma * torch.randn(x0.shape, generator=g)
    with torch.no_grad():
        d = prior.denoise(x, sigma)
        out = prior.model(math.sqrt(abar) * (2 * x - 1), torch.full((2,), float(t)))
    assert d.shape == x.shape and torch.isfinite(d).all()
    assert out.shape == (2, 6, 16, 16)  # eps + learned variance
    hand = x - sigma * out[:, :3]
    torch.testing.assert_close(d, hand, rtol=1e-5, atol=1e-5)
    # small sigma: close to the identity
    with torch.no_grad():
        assert (prior.denoise(x0, 1e-4) - x0).abs().amax() < 1e-2


def test_float_timesteps_are_accepted(tiny_ckpt: Path) -> None:
    prior = load_prior(f"ffhq:{tiny_ckpt}", config=TINY)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        a = prior.model(x, torch.tensor([250.0]))
        b = prior.model(x, torch.tensor([250.5]))
        c = prior.model(x, torch.tensor([251.0]))
    assert not torch.equal(a, b) and not torch.equal(b, c)


def test_fixed_size_is_enforced(tiny_ckpt: Path) -> None:
    prior = load_prior(f"ffhq:{tiny_ckpt}", config=TINY)
    with pytest.raises(ShapeError, match="16x16"):
        prior.denoise(torch.rand(1, 3, 32, 32), 0.1)
    with pytest.raises(ShapeError, match="channels"):
        prior.denoise(torch.rand(1, 1, 16, 16), 0.1)


def test_wrapped_and_prefixed_checkpoints_load(tiny_ckpt: Path, tmp_path: Path) -> None:
    sd = torch.load(tiny_ckpt, weights_only=True)
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, wrapped)
    a = load_adm(tiny_ckpt, overrides=TINY)
    b = load_adm(wrapped, overrides=TINY)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(a.denoise(x, 0.3), b.denoise(x, 0.3))


def test_architecture_mismatch_is_a_clear_error(tiny_ckpt: Path) -> None:
    with pytest.raises(PnPError, match="does not fit"):
        load_prior(f"ffhq:{tiny_ckpt}", config={**TINY, "model_channels": 64})


def test_matches_deepinv_diffunet_conversion_on_the_same_network(tiny_ckpt: Path) -> None:
    """deepinv's ``DiffUNet.forward_denoise`` (noise-level mode on [0, 1] images) run on the same
    network agrees with pnpdiff's eps adapter at a sigma on the timestep grid (deepinv rounds to
    the nearest integer timestep and clamps its estimate to [-1, 1])."""
    from types import SimpleNamespace

    from deepinv.models import DiffUNet

    prior = load_prior(f"ffhq:{tiny_ckpt}", config=TINY)
    abar = ddpm_alphas_cumprod().float()
    fake_self = SimpleNamespace(
        _handle_sigma=DiffUNet._handle_sigma,
        find_nearest=lambda a, v: DiffUNet.find_nearest(None, a, v),
        sqrt_1m_alphas_cumprod=(1 - abar).sqrt(),
        sqrt_alphas_cumprod=abar.sqrt(),
        forward_diffusion=lambda x, t, y=None: prior.model(x, t.float()),
    )
    t = 300
    a = ddpm_alphas_cumprod()[t].item()
    sigma = math.sqrt((1 - a) / a) / 2
    g = torch.Generator().manual_seed(4)
    x = torch.rand(2, 3, 16, 16, generator=g) + sigma * torch.randn(2, 3, 16, 16, generator=g)
    with torch.no_grad():
        ours = prior.denoise(x, sigma)
        theirs = DiffUNet.forward_denoise(fake_self, x, torch.tensor([sigma, sigma]))
    torch.testing.assert_close(((2 * ours - 1).clamp(-1, 1) + 1) / 2, theirs, rtol=1e-4,
                               atol=1e-4)
