"""A small noise-conditional UNet for training priors on small images (``pnpdiff train``).

The architecture follows the ADM / DDPM++ family at a few hundred thousand parameters:
residual blocks with group normalisation and SiLU, the noise level (and an optional class label)
injected into every block as a per-channel scale and shift, average-pool downsampling,
nearest-neighbour upsampling, skip connections concatenated on the way up, and one
self-attention block at the lowest resolution. The noise level enters as sinusoidal features of
``c_noise`` (EDM's ``log(sigma) / 4``); a class label as a learned embedding, with index
``classes`` reserved for "no label" (the null class of classifier-free guidance).

Everything about *what* the network predicts (x0, eps, EDM's preconditioned ``F``) lives in
:class:`pnpdiff.priors.trained.TrainedPrior`; this module is only the function approximator.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from pnpdiff.errors import ValueRangeError

__all__ = ["UNetConfig", "SmallUNet", "NoiseClassifier"]


@dataclass
class UNetConfig:
    """Architecture of :class:`SmallUNet` (stored in a trained prior's model card).

    Parameters
    ----------
    channels : int
        Image channels in and out.
    base : int
        Channels of the first level.
    mult : tuple of int
        Channel multiplier per resolution level (one 2x downsampling between levels).
    blocks : int
        Residual blocks per level.
    attention : bool
        One self-attention block at the lowest resolution.
    classes : int
        Number of class labels (0: unconditional); label ``classes`` is the null label.
    emb : int
        Width of the noise / class embedding.
    dropout : float
        Dropout in the residual blocks.

    Raises
    ------
    ValueRangeError
        For a field out of range (the message names it as ``model.<field>``).
    """

    channels: int = 1
    base: int = 32
    mult: tuple[int, ...] = field(default_factory=lambda: (1, 2, 2))
    blocks: int = 1
    attention: bool = True
    classes: int = 0
    emb: int = 128
    dropout: float = 0.0

    def __post_init__(self) -> None:
        self.mult = tuple(int(m) for m in self.mult)
        for name in ("channels", "base", "blocks", "emb"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueRangeError(f"model.{name}: expected an integer >= 1, got {v!r}")
        if isinstance(self.classes, bool) or not isinstance(self.classes, int) or self.classes < 0:
            raise ValueRangeError(f"model.classes: expected an integer >= 0, got {self.classes!r}")
        if not self.mult or any(m < 1 for m in self.mult):
            raise ValueRangeError(f"model.mult: expected a list of integers >= 1, got {list(self.mult)}")
        if self.base % 8:
            raise ValueRangeError(f"model.base: expected a multiple of 8 (group normalisation), got {self.base}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueRangeError(f"model.dropout: expected a number in [0, 1), got {self.dropout!r}")

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (``mult`` as a list), for a model card.

        Returns
        -------
        dict
            Field name -> value.
        """
        d = asdict(self)
        d["mult"] = list(self.mult)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UNetConfig:
        """Build a config from a mapping of field names (a model card's or a recipe's ``model``).

        Parameters
        ----------
        d : dict
            Field name -> value; missing fields take their defaults.

        Returns
        -------
        UNetConfig
            The validated config.

        Raises
        ------
        ValueRangeError
            For an unknown key or a value out of range.
        """
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ValueRangeError(f"model: unknown key(s) {', '.join(unknown)}; known: "
                                  f"{', '.join(cls.__dataclass_fields__)}")
        return cls(**known)


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, ch), ch)


def sinusoidal(c_noise: Tensor, dim: int) -> Tensor:
    """Sinusoidal features of a ``(B,)`` noise conditioning, shape ``(B, dim)`` (Vaswani et al.)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=c_noise.device, dtype=torch.float32) / half)
    arg = c_noise.float()[:, None] * freqs[None] * 100.0  # c_noise = log(sigma) / 4 spans a few units
    return torch.cat([arg.cos(), arg.sin()], dim=1)


class _ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.conv1 = _norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.affine = nn.Linear(emb, 2 * cout)
        self.norm2, self.conv2 = _norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.drop = nn.Dropout(dropout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(nn.functional.silu(self.norm1(x)))
        scale, shift = self.affine(emb)[:, :, None, None].chunk(2, dim=1)
        h = nn.functional.silu(self.norm2(h) * (1 + scale) + shift)
        return self.skip(x) + self.conv2(self.drop(h))


class _Attention(nn.Module):
    def __init__(self, ch: int, heads: int = 4) -> None:
        super().__init__()
        self.norm, self.qkv, self.proj = _norm(ch), nn.Conv2d(ch, 3 * ch, 1), nn.Conv2d(ch, ch, 1)
        self.heads = heads
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        out = nn.functional.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class SmallUNet(nn.Module):
    """Noise- (and optionally class-) conditional UNet ``F(x, c_noise, label)``.

    Parameters
    ----------
    config : UNetConfig
        The architecture.

    Notes
    -----
    ``forward(x, c_noise, label=None)``: ``x`` is ``(B, C, H, W)`` with ``H`` and ``W`` divisible by
    ``2 ** (len(mult) - 1)``; ``c_noise`` is ``(B,)``; ``label`` is ``(B,)`` integers in
    ``[0, classes]`` (``classes`` = no label; ``None`` = no label for every image).
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = cfg = config
        e = cfg.emb
        self.noise_mlp = nn.Sequential(nn.Linear(e, e), nn.SiLU(), nn.Linear(e, e))
        self.label_emb = nn.Embedding(cfg.classes + 1, e) if cfg.classes else None
        chs = [cfg.base * m for m in cfg.mult]
        self.inp = nn.Conv2d(cfg.channels, chs[0], 3, padding=1)
        self.down = nn.ModuleList()
        skips = [chs[0]]
        cur = chs[0]
        for lvl, ch in enumerate(chs):
            for _ in range(cfg.blocks):
                self.down.append(_ResBlock(cur, ch, e, cfg.dropout))
                cur = ch
                skips.append(cur)
            if lvl < len(chs) - 1:
                self.down.append(nn.AvgPool2d(2))
                skips.append(cur)
        self.mid1 = _ResBlock(cur, cur, e, cfg.dropout)
        self.mid_attn = _Attention(cur) if cfg.attention else nn.Identity()
        self.mid2 = _ResBlock(cur, cur, e, cfg.dropout)
        self.up = nn.ModuleList()
        for lvl in reversed(range(len(chs))):
            for _ in range(cfg.blocks + 1):
                self.up.append(_ResBlock(cur + skips.pop(), chs[lvl], e, cfg.dropout))
                cur = chs[lvl]
            if lvl > 0:
                self.up.append(nn.Upsample(scale_factor=2, mode="nearest"))
        self.out = nn.Sequential(_norm(cur), nn.SiLU(), nn.Conv2d(cur, cfg.channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)
        self.factor = 2 ** (len(chs) - 1)

    def forward(self, x: Tensor, c_noise: Tensor, label: Tensor | None = None) -> Tensor:
        """Apply the network.

        Parameters
        ----------
        x : Tensor
            Preconditioned noisy images, ``(B, C, H, W)``, ``H`` and ``W`` divisible by
            ``2 ** (len(mult) - 1)``.
        c_noise : Tensor
            Noise conditioning, ``(B,)`` (or one value for the batch).
        label : Tensor, optional
            ``(B,)`` integers in ``[0, classes]`` (``classes`` = no label); ``None``: no label.

        Returns
        -------
        Tensor
            The network output ``F``, shape of ``x``.
        """
        emb = self.noise_mlp(sinusoidal(c_noise.reshape(-1).expand(x.shape[0]), self.config.emb).to(x.dtype))
        if self.label_emb is not None:
            if label is None:
                label = torch.full((x.shape[0],), self.config.classes, dtype=torch.long, device=x.device)
            emb = emb + self.label_emb(label.reshape(-1).expand(x.shape[0]).long())
        emb = nn.functional.silu(emb)
        h = self.inp(x)
        hs = [h]
        for m in self.down:
            h = m(h, emb) if isinstance(m, _ResBlock) else m(h)
            hs.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for m in self.up:
            h = m(torch.cat([h, hs.pop()], 1), emb) if isinstance(m, _ResBlock) else m(h)
        return self.out(h)


class NoiseClassifier(nn.Module):
    """A noise-conditional image classifier ``log p(label | x_sigma)`` (Dhariwal and Nichol 2021).

    The encoder half of :class:`SmallUNet` (same blocks and noise embedding) followed by global
    average pooling and a linear layer to ``classes`` logits. Trained on noisy images at random
    noise levels (``pnpdiff train-classifier``), its gradient steers a sampler towards a class.

    Parameters
    ----------
    config : UNetConfig
        ``classes`` is the number of outputs (>= 2).

    References
    ----------
    P. Dhariwal and A. Nichol, "Diffusion Models Beat GANs on Image Synthesis", NeurIPS 2021.
    https://arxiv.org/abs/2105.05233
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        if config.classes < 2:
            raise ValueRangeError(f"a classifier needs classes >= 2, got {config.classes}")
        self.config = cfg = config
        e = cfg.emb
        self.noise_mlp = nn.Sequential(nn.Linear(e, e), nn.SiLU(), nn.Linear(e, e))
        chs = [cfg.base * m for m in cfg.mult]
        self.inp = nn.Conv2d(cfg.channels, chs[0], 3, padding=1)
        self.blocks = nn.ModuleList()
        cur = chs[0]
        for lvl, ch in enumerate(chs):
            for _ in range(cfg.blocks):
                self.blocks.append(_ResBlock(cur, ch, e, cfg.dropout))
                cur = ch
            if lvl < len(chs) - 1:
                self.blocks.append(nn.AvgPool2d(2))
        self.head = nn.Sequential(_norm(cur), nn.SiLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(cur, cfg.classes))

    def forward(self, x: Tensor, c_noise: Tensor) -> Tensor:
        """Class logits of noisy images.

        Parameters
        ----------
        x : Tensor
            Preconditioned noisy images, ``(B, C, H, W)``.
        c_noise : Tensor
            Noise conditioning, ``(B,)`` (or one value for the batch).

        Returns
        -------
        Tensor
            Logits, ``(B, classes)``.
        """
        emb = nn.functional.silu(self.noise_mlp(sinusoidal(c_noise.reshape(-1).expand(x.shape[0]),
                                                           self.config.emb).to(x.dtype)))
        h = self.inp(x)
        for m in self.blocks:
            h = m(h, emb) if isinstance(m, _ResBlock) else m(h)
        return self.head(h)
