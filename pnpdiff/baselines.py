"""Classical, training-free restoration baselines: Wiener deconvolution, bicubic upsampling and
biharmonic inpainting.

They are the reference every plug-and-play method should beat (``tests/benchmarks/quality.py``).
All take and return ``(B, C, H, W)`` float tensors in [0, 1] units, have no tunable
hyper-parameters, and run on whatever device the input lives on (biharmonic inpainting goes
through scikit-image on the CPU).

References
----------
.. [Wiener1949] N. Wiener, "Extrapolation, Interpolation, and Smoothing of Stationary Time
   Series", MIT Press, 1949.
.. [Field1987] D. J. Field, "Relations between the statistics of natural images and the response
   properties of cortical cells", JOSA A 4(12), 1987 (natural images have a ~1/f^2 power spectrum).
.. [Keys1981] R. Keys, "Cubic convolution interpolation for digital image processing", IEEE
   TASSP 29(6), 1981.
.. [Damelin2018] S. B. Damelin and N. S. Hoang, "On Surface Completion and Image Inpainting by
   Biharmonic Functions: Numerical Aspects", Int. J. Math. Math. Sci., 2018
   (``skimage.restoration.inpaint_biharmonic``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from pnpdiff.errors import OperatorError, ShapeError

__all__ = ["wiener", "bicubic_upsample", "biharmonic_inpaint", "transfer_function"]


def _check_4d(x: Tensor, name: str) -> None:
    if not torch.is_tensor(x) or x.ndim != 4:
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise ShapeError(f"{name} must be a (B, C, H, W) tensor, got {shape}")


def transfer_function(operator: Any, shape: tuple[int, int, int, int], device: torch.device | None = None) -> Tensor:
    """Frequency response ``K = rfft2(A delta)`` of a circular, shift-invariant operator.

    The response to a unit impulse at pixel ``(0, 0)`` is the kernel wrapped onto the torus with
    its centre at the origin, so its real 2-D FFT is the transfer function: ``A x =
    irfft2(K * rfft2(x))`` exactly for a circular convolution (what
    :class:`~pnpdiff.operators.Blur` does with ``boundary="circular"``). Only the public
    ``forward`` of the operator is used.

    Parameters
    ----------
    operator : callable
        The circular blur ``A``.
    shape : (B, C, H, W)
        Image shape (only ``C``, ``H``, ``W`` are used).
    device : torch.device, optional
        Where to evaluate ``A``.

    Returns
    -------
    Tensor
        Complex128 tensor of shape ``(1, C, H, W // 2 + 1)`` (or ``C = 1`` if the operator maps
        a one-channel impulse for every channel alike).
    """
    _, c, h, w = shape
    delta = torch.zeros(1, c, h, w, dtype=torch.float64, device=device)
    delta[..., 0, 0] = 1.0
    try:
        resp = operator(delta)
    except (RuntimeError, TypeError):  # operators that only run in float32
        resp = operator(delta.float()).double()
    if resp.shape != delta.shape:
        raise OperatorError(
            f"{type(operator).__name__} is not a same-size convolution (maps {tuple(delta.shape)} "
            f"to {tuple(resp.shape)}); Wiener deconvolution needs a circular blur"
        )
    return torch.fft.rfft2(resp.to(torch.float64))


def _rfft_weights(h: int, w: int, device: torch.device) -> Tensor:
    """Multiplicity of each ``rfft2`` frequency in the full spectrum (1 or 2), ``(H, W//2+1)``."""
    wr = w // 2 + 1
    mult = torch.full((h, wr), 2.0, dtype=torch.float64, device=device)
    mult[:, 0] = 1.0
    if w % 2 == 0:
        mult[:, -1] = 1.0
    return mult


def wiener(y: Tensor, operator: Any, sigma_y: float) -> Tensor:
    r"""Wiener deconvolution of a circular blur with a fitted 1/f^2 image power spectrum.

    The filter is the MMSE linear estimator for ``y = k * x + n``, ``n ~ N(0, sigma_y^2 I)``,
    when ``x`` is a stationary Gaussian field with power spectrum ``P(w) = A / |D(w)|^2``, where
    ``|D(w)|^2 = 4 sin^2(pi k1 / H) + 4 sin^2(pi k2 / W)`` is the response of the discrete gradient
    (``~ |w|^2``: the 1/f^2 law of natural images [Field1987]_)::

        X(w) = conj(K(w)) Y(w) / (|K(w)|^2 + NSR(w)),   NSR(w) = sigma_y^2 |D(w)|^2 / A'

    (``A'`` the amplitude in unnormalised-FFT units). It is a Tikhonov deconvolution with a
    gradient penalty whose weight is not tuned: the amplitude ``A`` is fitted to each image and
    channel by maximum likelihood under the same model (``Y(w)`` independent complex Gaussians of
    variance ``|K|^2 A' / |D|^2 + H W sigma_y^2``; one scalar, found by bisection on ``log A``).
    The mean (``w = 0``, unpenalised) is restored as ``Y(0) / K(0)``.

    Parameters
    ----------
    y : Tensor
        Blurred, noisy images ``(B, C, H, W)``.
    operator : Blur or callable
        A circular convolution (e.g. ``GaussianBlur(3.0)``, ``MotionBlur(61, 0.5)``); its
        transfer function is read off its response to an impulse (:func:`transfer_function`).
    sigma_y : float
        Noise standard deviation in the units of ``y`` (floored at ``1e-6``).

    Returns
    -------
    Tensor
        The estimate, same shape and dtype as ``y`` (not clamped).

    Raises
    ------
    OperatorError
        If the operator is not a circular, same-size convolution.
    """
    _check_4d(y, "y")
    boundary = getattr(operator, "boundary", "circular")
    if boundary != "circular":
        raise OperatorError(
            f"Wiener deconvolution needs a circular blur (the FFT diagonalises it); got "
            f"boundary={boundary!r}"
        )
    b, c, h, w = y.shape
    dev = y.device
    kf = transfer_function(operator, (1, c, h, w), device=dev)  # (1, c, h, wr)
    abs2 = kf.real**2 + kf.imag**2
    yf = torch.fft.rfft2(y.to(torch.float64))  # (b, c, h, wr)
    p = yf.real**2 + yf.imag**2
    k1 = torch.arange(h, dtype=torch.float64, device=dev)
    k2 = torch.arange(w // 2 + 1, dtype=torch.float64, device=dev)
    d2 = 4 * torch.sin(math.pi * k1 / h)[:, None] ** 2 + 4 * torch.sin(math.pi * k2 / w)[None, :] ** 2
    noise = h * w * max(float(sigma_y), 1e-6) ** 2  # E|N(w)|^2 for an unnormalised FFT
    mult = _rfft_weights(h, w, dev)
    dc = d2 == 0
    mult = torch.where(dc, 0.0, mult)
    a_w = torch.where(dc, 0.0, abs2 / torch.where(dc, 1.0, d2))  # (1, c, h, wr)

    # maximum likelihood amplitude: d/dA sum mult [log v + p / v] = 0, v = a_w A + noise;
    # the derivative sum mult a_w (v - p) / v^2 is increasing in A where it matters: bisect log A
    def grad(log_a: Tensor) -> Tensor:
        v = a_w * log_a.exp()[..., None, None] + noise
        return (mult * a_w * (v - p) / v**2).sum((-2, -1))

    lo = torch.full((b, c), math.log(noise) - 30, dtype=torch.float64, device=dev)
    hi = torch.full((b, c), math.log(noise) + 60, dtype=torch.float64, device=dev)
    for _ in range(80):
        mid = (lo + hi) / 2
        pos = grad(mid) > 0
        hi = torch.where(pos, mid, hi)
        lo = torch.where(pos, lo, mid)
    amp = ((lo + hi) / 2).exp()[..., None, None]  # (b, c, 1, 1)
    nsr = noise * d2 / amp
    xf = kf.conj() * yf / (abs2 + nsr).clamp_min(1e-30)
    return torch.fft.irfft2(xf, s=(h, w)).to(y.dtype)


def bicubic_upsample(y: Tensor, factor: int) -> Tensor:
    """Bicubic interpolation of a low-resolution image back to ``factor`` times its size.

    ``torch.nn.functional.interpolate(mode="bicubic", align_corners=False, antialias=True)``: the
    Keys cubic convolution ([Keys1981]_, ``a = -0.75`` in PyTorch) with half-pixel centres, the
    same sampling grid as :class:`~pnpdiff.operators.Downsample` (output pixel ``k`` of the
    low-resolution image sits at input coordinate ``(k + 1/2) s - 1/2``).

    Parameters
    ----------
    y : Tensor
        Low-resolution images ``(B, C, h, w)``.
    factor : int
        Upsampling factor ``s``; the output is ``(B, C, s h, s w)``.

    Returns
    -------
    Tensor
        The upsampled images, clamped to [0, 1].
    """
    _check_4d(y, "y")
    s = int(factor)
    if s < 1 or s != factor:
        raise OperatorError(f"factor must be a positive integer, got {factor!r}")
    h, w = y.shape[-2:]
    out = F.interpolate(y, size=(s * h, s * w), mode="bicubic", align_corners=False, antialias=True)
    return out.clamp(0, 1)


def biharmonic_inpaint(y: Tensor, mask: Tensor) -> Tensor:
    """Fill the missing pixels with the biharmonic interpolant of the observed ones.

    Wraps ``skimage.restoration.inpaint_biharmonic`` ([Damelin2018]_): inside each missing
    region the image solves ``Delta^2 x = 0`` with the observed pixels as boundary values. Each
    image is processed separately on the CPU (all channels in one call when they share the mask,
    channel by channel otherwise).

    Parameters
    ----------
    y : Tensor
        Masked images ``(B, C, H, W)`` (values at missing pixels are ignored).
    mask : Tensor
        ``1`` = observed, ``0`` = missing; ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)`` with
        ``B``/``C`` possibly 1 (broadcast), e.g. ``Inpaint(mask).mask`` or
        :func:`~pnpdiff.operators.random_mask`.

    Returns
    -------
    Tensor
        The inpainted images, same shape, dtype and device as ``y``; observed pixels unchanged.
    """
    from skimage.restoration import inpaint_biharmonic

    _check_4d(y, "y")
    m = torch.as_tensor(mask).detach().to("cpu")
    while m.ndim < 4:
        m = m[None]
    try:
        m = torch.broadcast_to(m, y.shape)
    except RuntimeError:
        raise ShapeError(f"mask of shape {tuple(mask.shape)} does not broadcast to y {tuple(y.shape)}") from None
    missing = (m < 0.5).numpy()
    yn = y.detach().to("cpu", torch.float64).numpy()
    out = yn.copy()
    for i in range(y.shape[0]):
        miss = missing[i]  # (C, H, W)
        if not miss.any():
            continue
        if (miss == miss[:1]).all():
            img = yn[i].transpose(1, 2, 0)  # HWC
            res = inpaint_biharmonic(img, miss[0], channel_axis=-1)
            out[i] = res.transpose(2, 0, 1)
        else:
            for ch in range(y.shape[1]):
                if miss[ch].any():
                    out[i, ch] = inpaint_biharmonic(yn[i, ch], miss[ch])
    return torch.from_numpy(out).to(device=y.device, dtype=y.dtype)
