"""Image-quality metrics on [0, 1] images: :func:`psnr` and :func:`ssim` (Wang et al. 2004)."""

from __future__ import annotations

import torch
from torch import Tensor

from pnpdiff.errors import ShapeError

__all__ = ["psnr", "ssim"]


def _pair(x: Tensor, ref: Tensor) -> tuple[Tensor, Tensor]:
    if x.shape != ref.shape:
        raise ShapeError(f"metric inputs differ in shape: {tuple(x.shape)} vs {tuple(ref.shape)}")
    if x.ndim == 3:
        x, ref = x[None], ref[None]
    return x.to(torch.float64), ref.to(torch.float64)


def psnr(x: Tensor, ref: Tensor, data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio per image, ``10 log10(data_range^2 / MSE)``, shape ``(B,)``.

    Both images are used as given (no clamping): clamp a result yourself to score what a saved
    8-bit image would hold (``solve`` already returns clamped images).

    Parameters
    ----------
    x : Tensor
        Images to score, ``(B, C, H, W)`` or ``(C, H, W)``.
    ref : Tensor
        Reference images, the shape of ``x``.
    data_range : float
        Peak value of the images (1 for [0, 1] images).

    Returns
    -------
    Tensor
        float64 PSNR in dB, shape ``(B,)`` (``(1,)`` for a single image).

    Raises
    ------
    ShapeError
        If ``x`` and ``ref`` differ in shape.
    """
    x, ref = _pair(x, ref)
    mse = ((x - ref) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(data_range**2 / mse.clamp_min(1e-20))


#: side of SSIM's Gaussian window: images smaller than this cannot be scored (valid part only)
SSIM_WINDOW = 11


def ssim(x: Tensor, ref: Tensor, data_range: float = 1.0) -> Tensor:
    """Structural similarity per image (11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03).

    Computed by kornia on the valid part of the image (no padding), averaged over channels and
    pixels, as in Wang et al. (2004), with kornia's denominator ``eps`` set to 0 (the constants
    C1, C2 already keep it positive), so identical images score exactly 1 as in scikit-image.
    Shape ``(B,)``.

    Parameters
    ----------
    x : Tensor
        Images to score, ``(B, C, H, W)`` or ``(C, H, W)``.
    ref : Tensor
        Reference images, the shape of ``x``.
    data_range : float
        Peak value of the images (1 for [0, 1] images).

    Returns
    -------
    Tensor
        float64 SSIM, shape ``(B,)`` (``(1,)`` for a single image); at most 1.

    Raises
    ------
    ShapeError
        If ``x`` and ``ref`` differ in shape, or are smaller than the 11 x 11 window.

    References
    ----------
    Z. Wang, A. C. Bovik, H. R. Sheikh and E. P. Simoncelli, "Image Quality Assessment: From
    Error Visibility to Structural Similarity", IEEE TIP 13(4), 2004.
    https://doi.org/10.1109/TIP.2003.819861
    """
    import kornia

    x, ref = _pair(x, ref)
    if min(x.shape[-2:]) < SSIM_WINDOW:
        raise ShapeError(f"ssim needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels (its Gaussian window), got "
                         f"{x.shape[-2]}x{x.shape[-1]}")
    m = kornia.metrics.ssim(x, ref, window_size=SSIM_WINDOW, max_val=data_range, eps=0.0, padding="valid")
    return m.flatten(1).mean(1)
