"""ADM (guided-diffusion) UNet checkpoints as pnpdiff priors: ``"ffhq"`` and ``"imagenet"``.

The network is the ablated diffusion model of Dhariwal and Nichol ("Diffusion Models Beat GANs on
Image Synthesis", NeurIPS 2021), as used by DPS (Chung et al., ICLR 2023) and DiffPIR (Zhu et
al., CVPR-W 2023) with the FFHQ checkpoint ``ffhq_10m.pt`` and with OpenAI's
``256x256_diffusion_uncond.pt``.

Implementation notes
--------------------
``deepinv.models.DiffUNet`` implements this architecture, and its parameter names are those of
the original guided-diffusion ``UNetModel`` (``time_embed.*``, ``input_blocks.*``,
``middle_block.*``, ``output_blocks.*``, ``out.*``; no ``model.`` prefix), so the original
checkpoints load into it. Its constructor, however, only offers the two 256x256 configurations
(``large_model=False/True``) and registers two extra alpha-bar buffers after loading, so it cannot
build the small test networks nor load a plain guided-diffusion state dict with ``strict=True``.
Conversely, a state dict saved from a ``DiffUNet`` holds those two buffers
(``sqrt_alphas_cumprod`` and ``sqrt_1m_alphas_cumprod``: ``sqrt(abar_t)`` and
``sqrt(1 - abar_t)`` of the linear-beta schedule, float32, one value per timestep);
:func:`load_adm` accepts exactly these two extra keys, checks them against the configuration's
own schedule (:func:`check_schedule_buffers`) and drops them.
:class:`ADMUNet` therefore assembles the same network from deepinv's own building blocks
(``ResBlock``, ``AttentionBlock``, ``TimestepEmbedSequential``) with a configurable
:class:`ADMConfig`; for both published configurations its state-dict keys and shapes are
identical to ``DiffUNet``'s (checked by the test suite), i.e. to the original checkpoints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from pnpdiff.errors import PnPError, ShapeError
from pnpdiff.priors.adapters import EpsPrior, ddpm_alphas_cumprod
from pnpdiff.priors.hub import safe_load

__all__ = [
    "ADMConfig",
    "ADMUNet",
    "ADMPrior",
    "load_adm",
    "adm_config",
    "clean_state_dict",
    "check_schedule_buffers",
    "SCHEDULE_BUFFERS",
]


@dataclass(frozen=True)
class ADMConfig:
    """Architecture of a guided-diffusion ``UNetModel`` (names as in its ``script_util``).

    ``attention_resolutions`` are *spatial resolutions* (e.g. ``(32, 16, 8)`` at 256x256),
    converted internally to downsampling factors ``image_size // r``. ``out_channels`` is
    ``2 * in_channels`` for learned-sigma models. The beta schedule describes the training
    process (linear betas, guided-diffusion's ``noise_schedule="linear"``).

    Parameters
    ----------
    image_size : int
        Side of the (square) images the model was trained on.
    in_channels, out_channels : int
        Image channels in; network channels out (``2 * in_channels`` with a learned sigma).
    model_channels : int
        Channels of the first level.
    num_res_blocks : int
        Residual blocks per level.
    attention_resolutions : tuple of int
        Spatial resolutions with self-attention.
    channel_mult : tuple of int
        Channel multiplier per level.
    num_heads, num_head_channels, num_heads_upsample : int
        Attention heads (``num_head_channels`` wins when not -1; ``-1`` upsample heads: as
        ``num_heads``).
    use_scale_shift_norm, resblock_updown, use_new_attention_order : bool
        guided-diffusion's switches of the same names.
    learn_sigma : bool
        Whether the network also outputs variance channels (dropped by :class:`ADMPrior`).
    dropout : float
        Dropout in the residual blocks.
    beta_start, beta_end : float
        Linear beta schedule of training.
    num_timesteps : int
        Number of training timesteps.
    """

    image_size: int = 256
    in_channels: int = 3
    model_channels: int = 128
    out_channels: int = 6
    num_res_blocks: int = 1
    attention_resolutions: tuple[int, ...] = (16,)
    channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4, 4)
    num_heads: int = 4
    num_head_channels: int = 64
    num_heads_upsample: int = -1
    use_scale_shift_norm: bool = True
    resblock_updown: bool = True
    use_new_attention_order: bool = False
    learn_sigma: bool = True
    dropout: float = 0.0
    beta_start: float = 1e-4
    beta_end: float = 0.02
    num_timesteps: int = 1000

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ADMConfig:
        """Build from a mapping, ignoring unknown keys; sequences become tuples.

        Parameters
        ----------
        d : mapping
            Field name -> value (unknown keys are ignored).

        Returns
        -------
        ADMConfig
            The configuration.
        """
        names = {f.name for f in fields(cls)}
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in names}
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (a model card's ``config``).

        Returns
        -------
        dict
            Field name -> value.
        """
        return asdict(self)


class ADMUNet(nn.Module):
    """The guided-diffusion UNet (Dhariwal and Nichol 2021) built from deepinv's blocks.

    ``forward(x, t)`` takes ``x`` in [-1, 1] (VP scaling) and float timesteps ``t`` ``(B,)``, and
    returns ``(B, out_channels, H, W)`` (eps, then the variance channels for learned-sigma
    models). Parameter names match the original checkpoints.

    Parameters
    ----------
    config : ADMConfig
        The architecture.

    References
    ----------
    P. Dhariwal and A. Nichol, "Diffusion Models Beat GANs on Image Synthesis", NeurIPS 2021.
    https://arxiv.org/abs/2105.05233
    """

    def __init__(self, config: ADMConfig) -> None:
        super().__init__()
        from deepinv.models.diffunet import (
            AttentionBlock,
            ResBlock,
            TimestepEmbedSequential,
            normalization,
            zero_module,
        )

        c = config
        self.config = c
        attention_ds = {c.image_size // int(r) for r in c.attention_resolutions}
        heads_up = c.num_heads if c.num_heads_upsample == -1 else c.num_heads_upsample
        mc = c.model_channels
        emb = mc * 4
        self.time_embed = nn.Sequential(nn.Linear(mc, emb), nn.SiLU(), nn.Linear(emb, emb))

        def res(ch_in: int, ch_out: int | None = None, **kw: Any) -> nn.Module:
            return ResBlock(ch_in, emb, c.dropout, out_channels=ch_out, dims=2,
                            use_checkpoint=False, use_scale_shift_norm=c.use_scale_shift_norm, **kw)

        def attn(ch: int, heads: int) -> nn.Module:
            return AttentionBlock(ch, use_checkpoint=False, num_heads=heads,
                                  num_head_channels=c.num_head_channels,
                                  use_new_attention_order=c.use_new_attention_order)

        ch = input_ch = int(c.channel_mult[0] * mc)
        self.input_blocks = nn.ModuleList(
            [TimestepEmbedSequential(nn.Conv2d(c.in_channels, ch, 3, padding=1))]
        )
        chans = [ch]
        ds = 1
        for level, mult in enumerate(c.channel_mult):
            for _ in range(c.num_res_blocks):
                layers: list[nn.Module] = [res(ch, int(mult * mc))]
                ch = int(mult * mc)
                if ds in attention_ds:
                    layers.append(attn(ch, c.num_heads))
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                chans.append(ch)
            if level != len(c.channel_mult) - 1:
                if not c.resblock_updown:
                    raise PnPError("ADMUNet supports resblock_updown=True only (both checkpoints)")
                self.input_blocks.append(TimestepEmbedSequential(res(ch, ch, down=True)))
                chans.append(ch)
                ds *= 2
        self.middle_block = TimestepEmbedSequential(res(ch), attn(ch, c.num_heads), res(ch))
        self.output_blocks = nn.ModuleList([])
        for level, mult in list(enumerate(c.channel_mult))[::-1]:
            for i in range(c.num_res_blocks + 1):
                ich = chans.pop()
                layers = [res(ch + ich, int(mc * mult))]
                ch = int(mc * mult)
                if ds in attention_ds:
                    layers.append(attn(ch, heads_up))
                if level and i == c.num_res_blocks:
                    layers.append(res(ch, ch, up=True))
                    ds //= 2
                self.output_blocks.append(TimestepEmbedSequential(*layers))
        self.out = nn.Sequential(
            normalization(ch), nn.SiLU(), zero_module(nn.Conv2d(input_ch, c.out_channels, 3,
                                                                padding=1))
        )

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        """Noise (and variance) prediction for ``x`` in [-1, 1] at float timesteps ``t``.

        Parameters
        ----------
        x : Tensor
            ``(B, in_channels, H, W)`` in the VP scaling on [-1, 1].
        t : Tensor
            Float timesteps, ``(B,)`` (or one value for the batch).

        Returns
        -------
        Tensor
            ``(B, out_channels, H, W)``: eps, then the variance channels for learned-sigma models.
        """
        from deepinv.models.diffunet import timestep_embedding

        t = torch.as_tensor(t, device=x.device).reshape(-1).expand(x.shape[0])
        dtype = self.time_embed[0].weight.dtype
        e = self.time_embed(timestep_embedding(t, self.config.model_channels).to(dtype))
        h = x.to(dtype)
        hs = []
        for m in self.input_blocks:
            h = m(h, e)
            hs.append(h)
        h = self.middle_block(h, e)
        for m in self.output_blocks:
            h = m(torch.cat([h, hs.pop()], dim=1), e)
        return self.out(h)


def clean_state_dict(obj: Any) -> dict[str, Tensor]:
    """Extract a plain state dict: unwrap ``{"state_dict"|"model"|"ema"|...: sd}`` containers and
    strip a common ``module.`` / ``model.`` prefix (DataParallel / wrapper modules)."""
    sd = obj
    for key in ("state_dict", "model_state_dict", "ema", "model", "net"):
        if isinstance(sd, Mapping) and key in sd and isinstance(sd[key], Mapping):
            sd = sd[key]
    if not isinstance(sd, Mapping) or not all(isinstance(v, Tensor) for v in sd.values()):
        raise PnPError("checkpoint does not contain a state dict of tensors")
    sd = dict(sd)
    for prefix in ("module.", "model."):
        if sd and all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix):]: v for k, v in sd.items()}
    return sd


#: the alpha-bar buffers that ``deepinv.models.DiffUNet`` registers beside the network's weights
SCHEDULE_BUFFERS = ("sqrt_alphas_cumprod", "sqrt_1m_alphas_cumprod")

#: absolute tolerance of :func:`check_schedule_buffers` on top of the buffer's own rounding.
#: deepinv computes the buffers in float32 (cumprod of 1000 factors, then ``sqrt(1 - abar)``
#: with cancellation near t = 0): they deviate from the float64 schedule by up to 1.1e-6. Moving
#: ``beta_end`` from 0.02 to 0.020001 already moves ``sqrt(abar)`` by 1.8e-5; a cosine schedule
#: moves it by 0.43.
SCHEDULE_ATOL = 1e-5


def check_schedule_buffers(sd: Mapping[str, Tensor], config: ADMConfig, *, source: str = "checkpoint",
                           name: str = "adm") -> None:
    """Check deepinv's schedule buffers in a state dict against ``config``'s DDPM schedule.

    ``deepinv.models.DiffUNet`` stores ``sqrt_alphas_cumprod`` = ``sqrt(abar_t)`` and
    ``sqrt_1m_alphas_cumprod`` = ``sqrt(1 - abar_t)``, ``t = 0 .. T-1``, of the linear-beta
    schedule (Ho et al. 2020) it assumes. Each one present must have ``config.num_timesteps``
    values within ``SCHEDULE_ATOL`` plus its dtype's machine epsilon of the schedule given by
    ``config.beta_start``, ``config.beta_end`` and ``config.num_timesteps``
    (:func:`~pnpdiff.priors.adapters.ddpm_alphas_cumprod`, float64). Absent buffers are fine.

    Parameters
    ----------
    sd : mapping of str to Tensor
        The state dict (not modified).
    config : ADMConfig
        The architecture and training schedule the weights are loaded for.
    source : str
        What the state dict came from, for messages (e.g. the file).
    name : str
        Name of the prior, for messages.

    Raises
    ------
    PnPError
        A buffer has the wrong length or is not finite, or deviates from the schedule: the
        checkpoint was trained with another noise schedule, whose timesteps mean other noise
        levels than the ones pnpdiff would feed the network.
    """
    abar = ddpm_alphas_cumprod(config.beta_start, config.beta_end, config.num_timesteps)
    expected = {"sqrt_alphas_cumprod": abar.sqrt(), "sqrt_1m_alphas_cumprod": (1.0 - abar).sqrt()}
    schedule = (f"linear betas {config.beta_start:g} .. {config.beta_end:g} over "
                f"{config.num_timesteps} timesteps")
    for key in SCHEDULE_BUFFERS:
        if key not in sd:
            continue
        buf = sd[key]
        ref = expected[key]
        if buf.ndim != 1 or buf.numel() != ref.numel():
            raise PnPError(
                f"{source}: buffer '{key}' has shape {tuple(buf.shape)}, but the '{name}' "
                f"configuration's noise schedule ({schedule}) has {ref.numel()} timesteps; the "
                "checkpoint was trained with another noise schedule: pass its num_timesteps, "
                "beta_start and beta_end in the configuration"
            )
        val = buf.detach().to("cpu", torch.float64)
        if not bool(torch.isfinite(val).all()):
            raise PnPError(f"{source}: buffer '{key}' contains NaN or infinite values; the file is damaged")
        dev = float((val - ref).abs().max())
        eps = torch.finfo(buf.dtype).eps if buf.is_floating_point() else 0.0
        tol = SCHEDULE_ATOL + eps
        if not dev <= tol:
            raise PnPError(
                f"{source}: buffer '{key}' deviates from the '{name}' configuration's DDPM noise "
                f"schedule ({schedule}) by up to {dev:.3g} (tolerance {tol:.3g}): the checkpoint "
                "was trained with another noise schedule. pnpdiff's ADM prior supports linear-beta "
                "schedules; if the checkpoint's is one, pass its beta_start, beta_end and "
                "num_timesteps in the configuration"
            )


class ADMPrior(EpsPrior):
    """An ADM eps-prediction UNet on [-1, 1] as a VE prior on [0, 1] images (see
    :class:`~pnpdiff.priors.adapters.EpsPrior`), with a fixed image size.

    Parameters
    ----------
    net : ADMUNet
        The network (weights loaded).
    name : str
        Registry name.

    References
    ----------
    P. Dhariwal and A. Nichol, "Diffusion Models Beat GANs on Image Synthesis", NeurIPS 2021.
    https://arxiv.org/abs/2105.05233

    H. Chung, J. Kim, M. T. Mccann, M. L. Klasky and J. C. Ye, "Diffusion Posterior Sampling
    for General Noisy Inverse Problems", ICLR 2023. https://arxiv.org/abs/2209.14687

    Y. Zhu, K. Zhang, J. Liang, J. Cao, B. Wen, R. Timofte and L. Van Gool, "Denoising Diffusion
    Models for Plug-and-Play Image Restoration", CVPR Workshops (NTIRE) 2023.
    https://arxiv.org/abs/2305.08995
    """

    def __init__(self, net: ADMUNet, name: str = "adm") -> None:
        c = net.config
        super().__init__(
            net,
            ddpm_alphas_cumprod(c.beta_start, c.beta_end, c.num_timesteps),
            learned_variance=c.learn_sigma,
            channels=c.in_channels,
            size=(c.image_size, c.image_size),
            name=name,
        )
        self.config = c
        # channels_last weights: the same convolutions (bit-identical output on this CPU), 0.6-0.8x
        # the time of NCHW for the ffhq configuration at 128^2; see tests/benchmarks/test_bench_precision.py
        net.to(memory_format=torch.channels_last)

    def denoise(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        """``D(x, sigma) = x - sigma * eps(sqrt(abar)(2x - 1), t(sigma))``; ``x`` must be
        ``(B, C, S, S)`` with the model's channels and size.
        """
        if x.ndim != 4:
            raise ShapeError(f"prior '{self.name}' takes (B, C, H, W) images, got {tuple(x.shape)}")
        return super().denoise(x, sigma)


def load_adm(path: str | Path, config: ADMConfig | Mapping[str, Any] | None = None, *,
             name: str = "adm", sha256: str | None = None,
             device: torch.device | str | None = None,
             overrides: Mapping[str, Any] | None = None) -> ADMPrior:
    """Load a guided-diffusion checkpoint into an :class:`ADMPrior`.

    Parameters
    ----------
    path : str or Path
        Checkpoint (a state dict; loaded with ``weights_only=True``).
    config : ADMConfig or mapping, optional
        Architecture; default the FFHQ configuration.
    name : str
        Name of the prior.
    sha256 : str, optional
        Expected checksum; verified before loading when given.
    device : torch.device or str, optional
        Where to put the model (default CPU).
    overrides : mapping, optional
        Fields of ``config`` to replace (e.g. ``{"image_size": 64, "model_channels": 32}``).

    Returns
    -------
    ADMPrior
        The prior, in eval mode, on ``device``.

    Raises
    ------
    ChecksumError
        Wrong sha256, or a file that is not a plain weights file.
    PnPError
        The checkpoint does not match the architecture, or it holds deepinv ``DiffUNet``'s
        schedule buffers for another noise schedule than the configuration's.

    Notes
    -----
    A state dict saved from ``deepinv.models.DiffUNet`` loads as it is: its two extra buffers
    ``sqrt_alphas_cumprod`` and ``sqrt_1m_alphas_cumprod`` are checked against the
    configuration's schedule (:func:`check_schedule_buffers`) and dropped. Any other key that is
    not a parameter of the architecture is refused.

    References
    ----------
    P. Dhariwal and A. Nichol, "Diffusion Models Beat GANs on Image Synthesis", NeurIPS 2021.
    https://arxiv.org/abs/2105.05233
    """
    from pnpdiff.priors.hub import MODEL_CARDS

    if config is None:
        cfg = ADMConfig.from_dict(MODEL_CARDS["ffhq"].config)
    elif isinstance(config, ADMConfig):
        cfg = config
    else:
        cfg = ADMConfig.from_dict(config)
    if overrides:
        cfg = replace(cfg, **{k: tuple(v) if isinstance(v, list) else v
                              for k, v in overrides.items()})
    sd = clean_state_dict(safe_load(path, sha256))
    net = ADMUNet(cfg)
    expected = net.state_dict()
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected and k not in SCHEDULE_BUFFERS]
    wrong = [k for k in expected if k in sd and tuple(sd[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        detail = "; ".join(
            f"{label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected),
                                ("wrong shape", wrong)) if keys
        )
        raise PnPError(
            f"checkpoint {path} does not fit the '{name}' architecture ({detail}); "
            "pass the matching ADM configuration"
        )
    # deepinv's DiffUNet saves its alpha-bar table beside the weights: check it, then drop it
    check_schedule_buffers(sd, cfg, source=f"checkpoint {path}", name=name)
    sd = {k: v for k, v in sd.items() if k not in SCHEDULE_BUFFERS}
    net.load_state_dict(sd, strict=True)
    net.eval().requires_grad_(False)
    prior = ADMPrior(net, name=name)
    if device is not None:
        prior = prior.to(device)
    return prior


def adm_config(name: str) -> ADMConfig:
    """Configuration of a registered ADM checkpoint (``"ffhq"`` or ``"imagenet"``)."""
    from pnpdiff.priors.hub import MODEL_CARDS

    return ADMConfig.from_dict(MODEL_CARDS[name].config)

