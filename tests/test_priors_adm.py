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


# -- state dicts saved from deepinv's own DiffUNet (two extra schedule buffers) ---------------


def _deepinv_buffers(**schedule: float) -> dict[str, torch.Tensor]:
    """The two buffers exactly as ``deepinv.models.DiffUNet`` computes and registers them."""
    from deepinv.models import DiffUNet

    sqrt_1m, sqrt_ab = DiffUNet.get_alpha_prod(None, **schedule)[-2:]
    return {"sqrt_1m_alphas_cumprod": sqrt_1m, "sqrt_alphas_cumprod": sqrt_ab}


def _save(sd: dict[str, torch.Tensor], path: Path) -> Path:
    torch.save(sd, path)
    return path


def _cosine_abar(n: int = 1000, s: float = 0.008) -> torch.Tensor:
    """Nichol and Dhariwal's cosine alpha-bar schedule (float64)."""
    t = torch.arange(1, n + 1, dtype=torch.float64) / n
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    return f / math.cos(s / (1 + s) * math.pi / 2) ** 2


def test_deepinv_schedule_buffers_are_what_the_check_assumes() -> None:
    """The reference of the check (float64 linear-beta schedule) is within 1.2e-6 of deepinv's
    float32 buffers (deepinv computes them in float32), far inside the 1e-5 tolerance."""
    from pnpdiff.priors.adm import SCHEDULE_ATOL

    buf = _deepinv_buffers()
    abar = ddpm_alphas_cumprod()
    assert buf["sqrt_alphas_cumprod"].dtype == torch.float32
    assert buf["sqrt_alphas_cumprod"].shape == (1000,)
    dev_a = (buf["sqrt_alphas_cumprod"].double() - abar.sqrt()).abs().max()
    dev_b = (buf["sqrt_1m_alphas_cumprod"].double() - (1 - abar).sqrt()).abs().max()
    assert dev_a < 1e-6 and dev_b < 2e-6
    assert max(dev_a, dev_b) < SCHEDULE_ATOL / 5


def test_tiny_checkpoint_with_deepinv_buffers_loads_and_denoises_alike(tiny_ckpt: Path,
                                                                       tmp_path: Path) -> None:
    """The two buffers are accepted, and dropped: the prior is the same as without them."""
    sd = torch.load(tiny_ckpt, weights_only=True)
    path = _save({**sd, **_deepinv_buffers()}, tmp_path / "with_buffers.pt")
    a = load_adm(tiny_ckpt, overrides=TINY)
    b = load_adm(path, overrides=TINY)
    assert not any(k.startswith("sqrt_") for k in b.model.state_dict())
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(a.denoise(x, 0.3), b.denoise(x, 0.3))
    # one of the two alone is accepted too, and so are buffers stored in half precision
    path1 = _save({**sd, "sqrt_alphas_cumprod": _deepinv_buffers()["sqrt_alphas_cumprod"]}, tmp_path / "one.pt")
    load_adm(path1, overrides=TINY)
    half = {k: v.half() for k, v in _deepinv_buffers().items()}
    load_adm(_save({**sd, **half}, tmp_path / "half.pt"), overrides=TINY)


def test_schedule_buffers_are_checked_against_the_configured_schedule(tiny_ckpt: Path,
                                                                      tmp_path: Path) -> None:
    """The check follows the configuration's beta_start / beta_end / num_timesteps, not a
    hard-coded table: other linear schedules load when the configuration says so."""
    sd = torch.load(tiny_ckpt, weights_only=True)
    other = dict(beta_start=2e-4, beta_end=0.03, num_train_timesteps=500)
    path = _save({**sd, **_deepinv_buffers(**other)}, tmp_path / "other_linear.pt")
    with pytest.raises(PnPError, match="another noise schedule"):
        load_adm(path, overrides=TINY)
    prior = load_adm(path, overrides={**TINY, "beta_start": 2e-4, "beta_end": 0.03, "num_timesteps": 500})
    assert prior.table.num_timesteps == 500


@pytest.mark.parametrize("key", ["sqrt_alphas_cumprod", "sqrt_1m_alphas_cumprod"])
def test_tampered_schedule_buffer_is_refused(tiny_ckpt: Path, tmp_path: Path, key: str) -> None:
    sd = torch.load(tiny_ckpt, weights_only=True)
    cos = _cosine_abar()
    tampered = {"sqrt_alphas_cumprod": cos.sqrt(), "sqrt_1m_alphas_cumprod": (1 - cos).sqrt()}
    buffers = {**_deepinv_buffers(), key: tampered[key].float()}
    expected_dev = (tampered[key] - _deepinv_buffers()[key].double()).abs().max().item()
    path = _save({**sd, **buffers}, tmp_path / "cosine.pt")
    with pytest.raises(PnPError, match=f"'{key}'.*another noise schedule") as info:
        load_prior(f"ffhq:{path}", config=TINY)
    msg = str(info.value)
    assert f"{expected_dev:.3g}" in msg  # the max deviation, as measured independently here
    assert "beta_start" in msg and str(path.name) in msg


@pytest.mark.parametrize(
    "case",
    ["beta_end_0.0201", "beta_end_0.020003", "length_999", "nan", "int"],
)
def test_subtly_wrong_schedule_buffers_are_refused(tiny_ckpt: Path, tmp_path: Path, case: str) -> None:
    """Small schedule changes, a table of another length, a damaged or non-float table."""
    sd = torch.load(tiny_ckpt, weights_only=True)
    buf = _deepinv_buffers()
    key = "sqrt_alphas_cumprod"
    if case.startswith("beta_end"):
        buf = _deepinv_buffers(beta_end=float(case.split("_")[-1]))  # sqrt(abar) 1.8e-3 / 5.4e-5 off
    elif case == "length_999":
        buf[key] = buf[key][:999]
    elif case == "nan":
        buf[key] = buf[key].clone()
        buf[key][500] = float("nan")
    else:
        buf[key] = torch.ones(1000, dtype=torch.int64)
    path = _save({**sd, **buf}, tmp_path / f"{case}.pt")
    with pytest.raises(PnPError, match=f"'{key}'"):
        load_adm(path, overrides=TINY)


@pytest.mark.parametrize("extra", ["alphas_cumprod", "betas", "input_blocks.0.0.extra"])
def test_other_unexpected_keys_are_still_refused(tiny_ckpt: Path, tmp_path: Path, extra: str) -> None:
    sd = torch.load(tiny_ckpt, weights_only=True)
    path = _save({**sd, **_deepinv_buffers(), extra: torch.zeros(1000)}, tmp_path / "extra.pt")
    with pytest.raises(PnPError, match=f"unexpected: {extra}") as info:
        load_adm(path, overrides=TINY)
    assert "sqrt_" not in str(info.value)  # the two accepted buffers are not listed


def _randomise_diffunet(net: torch.nn.Module, seed: int = 0) -> None:
    """Variance-preserving random weights (ADM zero-initialises its output convolutions, and
    0.05 * randn weights saturate a 93M-parameter network): weights ~ N(0, 1 / fan_in),
    vectors (biases, norm scales) perturbed by 0.05 * N(0, 1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            if p.ndim > 1:
                p.copy_(torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5)
            else:
                p.add_(0.05 * torch.randn(p.shape, generator=g))


@pytest.mark.slow
def test_deepinv_diffunet_state_dict_loads_as_ffhq(tmp_path: Path) -> None:
    """Acceptance: ``DiffUNet(large_model=False).state_dict()`` (with its schedule buffers) loads
    as ``"ffhq:<file>"``, holds the same weights, denoises a 256x256 image, and agrees with
    deepinv's own ``DiffUNet.forward(x, sigma)`` (noise-level mode) on the same input."""
    from deepinv.models import DiffUNet

    from pnpdiff.priors import EpsPrior, clear_prior_cache

    ref = DiffUNet(large_model=False, pretrained=None).eval()
    _randomise_diffunet(ref)
    ref_sd = ref.state_dict()
    assert {"sqrt_alphas_cumprod", "sqrt_1m_alphas_cumprod"} <= set(ref_sd)
    path = _save(ref_sd, tmp_path / "diffunet_ffhq.pt")
    clear_prior_cache()
    try:
        prior = load_prior(f"ffhq:{path}")
        assert isinstance(prior, ADMPrior) and prior.size == (256, 256)
        # really the same network: every weight equal
        mine = prior.model.state_dict()
        assert set(mine) == set(ref_sd) - {"sqrt_alphas_cumprod", "sqrt_1m_alphas_cumprod"}
        assert all(torch.equal(mine[k], ref_sd[k]) for k in mine)

        # the acceptance case: one 256x256 forward pass
        g = torch.Generator().manual_seed(0)
        x = torch.rand(1, 3, 256, 256, generator=g)
        with torch.no_grad():
            d = prior.denoise(x, 0.1)
        assert d.shape == (1, 3, 256, 256) and torch.isfinite(d).all()
        assert (d - x).abs().mean() > 1e-3  # the network did something (no zero output layer)

        # independent reference, at 64x64 to keep it cheap (both networks are convolutional; the
        # ADMPrior enforces 256x256, so the same eps adapter is used without the size): deepinv's
        # DiffUNet.forward(x, sigma) on [0, 1] images at a sigma on the timestep grid (deepinv
        # rounds to the nearest integer timestep, then clamps its estimate to [-1, 1])
        unsized = EpsPrior(prior.model, ddpm_alphas_cumprod(), learned_variance=True)
        t = 100
        a = ddpm_alphas_cumprod()[t].item()
        sigma = math.sqrt((1 - a) / a) / 2  # 0.167
        xs = torch.rand(2, 3, 64, 64, generator=g) + sigma * torch.randn(2, 3, 64, 64, generator=g)
        with torch.no_grad():
            ours = unsized.denoise(xs, sigma)
            theirs = ref(xs, torch.tensor([sigma, sigma]), type_t="noise_level")
            # the comparison is sensitive: one timestep later gives a visibly different estimate
            a1 = ddpm_alphas_cumprod()[t + 1].item()
            next_t = unsized.denoise(xs, math.sqrt((1 - a1) / a1) / 2)
        clamped = ((2 * ours - 1).clamp(-1, 1) + 1) / 2
        assert ((2 * ours - 1).abs() < 1).float().mean() > 0.5  # mostly not clamped
        # float32 on both sides; deepinv divides by its float32 sqrt(abar_t) table entry instead
        # of sqrt(1 / (1 + 4 sigma^2)) (relative difference ~1e-7). Measured: 1.2e-7 apart,
        # while the estimate one timestep later is 6e-2 away
        torch.testing.assert_close(clamped, theirs, rtol=0, atol=1e-5)
        assert (((2 * next_t - 1).clamp(-1, 1) + 1) / 2 - theirs).abs().amax() > 1e-2
    finally:
        clear_prior_cache()


def test_adm_prior_runs_channels_last_with_the_nchw_result() -> None:
    """ADMPrior keeps its network's weights channels_last (faster on CPU) without changing D(x, sigma)."""
    import copy

    from pnpdiff.priors import EpsPrior, ddpm_alphas_cumprod

    cfg = ADMConfig.from_dict({**adm_config("ffhq").to_dict(), **TINY})
    net = ADMUNet(cfg).eval().requires_grad_(False)
    _randomise(net, seed=3)
    plain = copy.deepcopy(net)
    prior = ADMPrior(net)
    convs = [m.weight for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert all(m.weight.is_contiguous() for m in plain.modules() if isinstance(m, torch.nn.Conv2d))
    ref = EpsPrior(plain, ddpm_alphas_cumprod(cfg.beta_start, cfg.beta_end, cfg.num_timesteps), learned_variance=True)
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for sigma in (0.05, 0.5, 5.0):
            torch.testing.assert_close(prior.denoise(x, sigma), ref.denoise(x, sigma), rtol=1e-5, atol=1e-5)
