"""Classical, training-free restoration baselines: Wiener deconvolution, bicubic upsampling and
biharmonic inpainting.

They are the reference every plug-and-play method should beat (``tests/benchmarks/quality.py``).
The four restorations take and return ``(B, C, H, W)`` float tensors in [0, 1] units
(:func:`blind_deconvolution` also returns the kernel it estimated) and run on whatever device the
input lives on (biharmonic inpainting goes through scikit-image on the CPU). Wiener deconvolution,
bicubic upsampling and biharmonic inpainting have no tunable hyper-parameters;
:func:`blind_deconvolution` has the settings of Pan et al.'s scheme (``lam``, ``lam_intensity``,
``kernel_l2``, ``iters``, ``scales``), of which ``lam``, ``kernel_l2`` and ``iters`` default to the
paper's values.

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

__all__ = ["wiener", "bicubic_upsample", "biharmonic_inpaint", "transfer_function", "blind_deconvolution"]


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


# ---------------------------------------------------------------------------------------------
# Blind deconvolution: the L0-regularised intensity and gradient prior of Pan et al.
# ---------------------------------------------------------------------------------------------

#: the half-quadratic penalty weights grow by this factor up to this ceiling (Pan et al., Alg. 1)
_HQS_KAPPA = 2.0
_HQS_MAX = 1e5
#: kernel taps below this fraction of the largest one are set to zero after each kernel step
_KERNEL_THRESHOLD = 1.0 / 20.0
#: the pyramid's coarsest kernel side and its ratio between levels
_COARSEST_SIDE = 3
_SCALE_RATIO = math.sqrt(0.5)


def _grad_h(x: Tensor) -> Tensor:
    """Circular forward difference along the columns, ``x[i, j+1] - x[i, j]``."""
    return torch.roll(x, -1, -1) - x


def _grad_v(x: Tensor) -> Tensor:
    """Circular forward difference along the rows, ``x[i+1, j] - x[i, j]``."""
    return torch.roll(x, -1, -2) - x


def _grad_t(gh: Tensor, gv: Tensor) -> Tensor:
    """Adjoint of ``(_grad_h, _grad_v)``: ``Dh^T gh + Dv^T gv``."""
    return (torch.roll(gh, 1, -1) - gh) + (torch.roll(gv, 1, -2) - gv)


def _grad_response(h: int, w: int, device: torch.device) -> Tensor:
    """``|Dh(w)|^2 + |Dv(w)|^2`` on the ``rfft2`` grid, ``(H, W//2+1)`` float64."""
    k1 = torch.arange(h, dtype=torch.float64, device=device)
    k2 = torch.arange(w // 2 + 1, dtype=torch.float64, device=device)
    return 4 * torch.sin(math.pi * k1 / h)[:, None] ** 2 + 4 * torch.sin(math.pi * k2 / w)[None, :] ** 2


def _kernel_otf(kernel: Tensor, h: int, w: int) -> Tensor:
    """Transfer function ``(1, 1, H, W//2+1)`` of the circular blur by ``kernel`` (centre ``(h//2, w//2)``)."""
    from pnpdiff.operators import Blur

    return transfer_function(Blur(kernel, boundary="circular"), (1, 1, h, w), device=kernel.device)


def _l0_latent(y: Tensor, kf: Tensor, lam: float, lam_intensity: float) -> Tensor:
    r"""Latent image step of Pan et al. (TPAMI 2017, Sec. 3.1, Algorithm 1) by half-quadratic splitting.

    ``min_x ||k * x - y||^2 + lam (lam_intensity / lam ||x||_0 + ||grad x||_0)`` with the
    auxiliary ``u ~ x`` (weight ``beta``) and ``g ~ grad x`` (weight ``mu``): ``u`` and ``g`` are
    hard thresholds (``u = x`` where ``x^2 >= lam_intensity / beta``; ``g = grad x`` where
    ``|grad x|^2 >= lam / mu``, both gradient components together), ``x`` the closed form
    ``F^-1[(conj(K) Y + beta U + mu (conj(Dh) Gh + conj(Dv) Gv)) / (|K|^2 + beta + mu |D|^2)]``.
    ``beta`` runs from ``2 lam_intensity`` and ``mu`` from ``2 lam``, both doubled together until
    ``mu`` reaches ``1e5``: one continuation loop instead of Algorithm 1's two nested ones (the same
    limit; about 24 FFT divisions instead of 24^2).
    """
    h, w = y.shape[-2:]
    yf = torch.fft.rfft2(y)
    kty = kf.conj() * yf
    k2 = kf.real**2 + kf.imag**2
    d2 = _grad_response(h, w, y.device)
    x = y
    beta, mu = 2.0 * lam_intensity, 2.0 * lam
    while mu < _HQS_MAX:
        num, den = kty, k2
        if lam_intensity > 0:
            u = torch.where(x * x >= lam_intensity / beta, x, torch.zeros_like(x))
            num, den = num + beta * torch.fft.rfft2(u), den + beta
        gh, gv = _grad_h(x), _grad_v(x)
        keep = gh * gh + gv * gv >= lam / mu
        num = num + mu * torch.fft.rfft2(_grad_t(gh * keep, gv * keep))
        x = torch.fft.irfft2(num / (den + mu * d2), s=(h, w))
        beta, mu = beta * _HQS_KAPPA, mu * _HQS_KAPPA
    return x


def _clean_kernel(k: Tensor) -> Tensor:
    """Zero the taps below :data:`_KERNEL_THRESHOLD` of the largest, move the centre of mass to the
    support's centre (an integer shift; the blind problem cannot tell ``(k, x)`` from a shifted
    pair), and normalise."""
    k = torch.where(k >= _KERNEL_THRESHOLD * k.max(), k, torch.zeros_like(k)).clamp_min(0)
    total = k.sum()
    if not bool(total > 0):
        k = torch.zeros_like(k)
        k[k.shape[0] // 2, k.shape[1] // 2] = 1.0
        return k
    k = k / total
    ii = torch.arange(k.shape[0], dtype=k.dtype, device=k.device)
    jj = torch.arange(k.shape[1], dtype=k.dtype, device=k.device)
    ci = int(torch.round((k.sum(1) * ii).sum())) - k.shape[0] // 2
    cj = int(torch.round((k.sum(0) * jj).sum())) - k.shape[1] // 2
    if ci or cj:
        k = torch.roll(k, (-ci, -cj), (0, 1))
    return k


def _subpixel_centre(k: Tensor) -> Tensor:
    """The kernel shifted (bilinear interpolation) so that its centre of mass falls exactly on
    ``(h // 2, w // 2)``; for the returned kernel (the image then sits where ``Blur``'s convention
    puts it, as :func:`~pnpdiff.operators.kernels.motion_kernel` centres its trajectories)."""
    kh, kw = k.shape
    ii = torch.arange(kh, dtype=k.dtype, device=k.device)
    jj = torch.arange(kw, dtype=k.dtype, device=k.device)
    di = float((k.sum(1) * ii).sum()) - kh // 2
    dj = float((k.sum(0) * jj).sum()) - kw // 2
    rows = (ii + di)[:, None].expand(kh, kw)  # sample k at (i + di, j + dj)
    cols = (jj + dj)[None, :].expand(kh, kw)
    grid = torch.stack([cols / max(kw - 1, 1) * 2 - 1, rows / max(kh - 1, 1) * 2 - 1], -1)[None]
    out = F.grid_sample(k[None, None], grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0, 0]
    out = out.clamp_min(0)
    return out / out.sum().clamp_min(1e-30)


def _resize_kernel(k: Tensor, size: tuple[int, int]) -> Tensor:
    """The kernel resampled (bilinear, corners aligned) to ``size``, non-negative, summing to one."""
    k = F.interpolate(k[None, None], size=size, mode="bilinear", align_corners=True)[0, 0].clamp_min(0)
    return k / k.sum().clamp_min(1e-30)


def _odd(v: float) -> int:
    return max(_COARSEST_SIDE, 2 * int(round((v - 1) / 2)) + 1)


def blind_deconvolution(
    y: Tensor,
    size: int | tuple[int, int],
    sigma_y: float | None = None,
    *,
    method: str = "l0",
    scales: int | None = None,
    iters: int = 5,
    lam: float = 4e-3,
    lam_intensity: float = 4e-3,
    kernel_l2: float = 2.0,
) -> tuple[Tensor, Tensor]:
    r"""Classical blind deconvolution: the L0-regularised intensity and gradient prior of Pan et al.

    Estimates a blur kernel ``k`` and the sharp image ``x`` from ``y = k (*) x + n`` alone
    (circular convolution, the convention of :class:`~pnpdiff.operators.Blur`), by alternating,
    coarse to fine, the two steps of [Pan2017]_ (first published for text, [Pan2014]_):

    - **latent image** ``min_x ||k * x - y||^2 + lam (s ||x||_0 + ||grad x||_0)`` by
      half-quadratic splitting, every sub-problem in closed form (hard thresholds and one FFT
      division; Algorithm 1 of the paper), ``s = lam_intensity / lam``;
    - **kernel** ``min_k ||grad x * k - grad y||^2 + kernel_l2 ||k||^2`` on the ``size`` support
      with ``k >= 0``, ``sum k = 1`` (:func:`pnpdiff.blind.kernel_mstep`); taps below 1/20 of the
      largest are then zeroed and the centre of mass moved to the centre;
    - over a pyramid whose coarsest level has a 3-pixel kernel and a ratio ``sqrt(1/2)`` between
      levels; the kernel of one level, resampled, starts the next; ``iters`` alternations a level.

    The final image is the Wiener deconvolution of ``y`` with the estimated kernel
    (:func:`wiener`, its 1/f^2 spectrum fitted to ``y``): the L0 latent image is a
    deliberately cartoon-like intermediate for kernel estimation, not a restoration.

    Why this method and not normalized sparsity [Krishnan2011]_: every step of Pan et al. is a
    closed form (thresholds and FFTs) or a small quadratic programme, with one prior weight that
    keeps its meaning across images and scales, whereas the ``l1/l2`` ratio is non-convex in
    ``x`` and needs an inner iterative shrinkage loop with its own step sizes; and the L0
    gradient prior is the stronger of the two in the paper's comparisons (Levin et al.'s and
    Köhler et al.'s benchmarks, TPAMI 2017 Sec. 6).

    Parameters
    ----------
    y : Tensor
        Blurred, noisy images ``(B, C, H, W)`` in [0, 1]. Colour images share the kernel: it is
        estimated on the channel mean; all images of the batch share one kernel too.
    size : int or (int, int)
        Support of the kernel ``(h, w)``, each side ``>= 3`` and at most the image's side; it
        should be a little larger than the blur.
    sigma_y : float, optional
        Noise standard deviation (for the final Wiener step); estimated from ``y`` (median
        absolute deviation of its finest wavelet coefficients) when not given.
    method : {"l0"}
        The prior; only Pan et al.'s L0 intensity and gradient prior is implemented.
    scales : int, optional
        Pyramid levels; default such that the coarsest kernel is about 3 pixels.
    iters : int
        Alternations of the two steps per level (5 in the paper).
    lam : float
        Weight of ``||grad x||_0`` (``4e-3`` in the paper).
    lam_intensity : float
        Weight of ``||x||_0`` (``lam * sigma`` in the paper's notation; ``0`` turns it off).
    kernel_l2 : float
        Weight ``gamma`` of ``||k||^2`` in the kernel step (2 in the paper).

    Returns
    -------
    x_hat : Tensor
        The deblurred images, same shape, dtype and device as ``y`` (not clamped).
    kernel : Tensor
        The estimated kernel, ``(h, w)`` float64 on ``y``'s device, non-negative, summing to one,
        centre of mass at ``(h // 2, w // 2)``.

    Raises
    ------
    ShapeError
        If ``y`` is not ``(B, C, H, W)`` or the kernel is larger than the image.
    ValueRangeError
        For a bad ``size``, ``sigma_y``, ``scales``, ``iters``, weight or ``method``.

    References
    ----------
    .. [Pan2014] J. Pan, Z. Hu, Z. Su and M.-H. Yang, "Deblurring Text Images via L0-Regularized
       Intensity and Gradient Prior", CVPR 2014.
    .. [Pan2017] J. Pan, Z. Hu, Z. Su and M.-H. Yang, "L0-Regularized Intensity and Gradient
       Prior for Deblurring Text Images and Beyond", IEEE TPAMI 39(2), 2017.
       https://doi.org/10.1109/TPAMI.2016.2551244
    .. [Krishnan2011] D. Krishnan, T. Tay and R. Fergus, "Blind deconvolution using a
       normalized sparsity measure", CVPR 2011.
    """
    from pnpdiff import checks
    from pnpdiff.blind import kernel_mstep
    from pnpdiff.errors import ValueRangeError
    from pnpdiff.operators import Blur

    _check_4d(y, "y")
    if not y.is_floating_point():
        raise ValueRangeError(f"y must be a floating-point tensor, got dtype {y.dtype}")
    if not bool(torch.isfinite(y).all()):
        raise ValueRangeError("y must be finite, got NaN or infinite values")
    checks.choice(method, "method", ("l0",))
    if isinstance(size, (tuple, list)):
        kh, kw = checks.pair(size, "size", integer=True, minimum=3)
    else:
        kh = kw = checks.int_(size, "size", minimum=3)
    h, w = y.shape[-2:]
    if kh > h or kw > w:
        raise ShapeError(f"size {(kh, kw)} is larger than the image {(h, w)}; give a kernel support "
                         "smaller than the image")
    if sigma_y is None:
        from pnpdiff.solvers.common import estimate_noise_level

        sigma = estimate_noise_level(y)
    else:
        sigma = checks.real(sigma_y, "sigma_y", minimum=0.0, maximum=checks.MAX_SIGMA_Y)
    iters = checks.int_(iters, "iters", minimum=1, maximum=checks.MAX_STEPS)
    lam = checks.real(lam, "lam", minimum=0.0, exclusive_minimum=True)
    lam_intensity = checks.real(lam_intensity, "lam_intensity", minimum=0.0)
    kernel_l2 = checks.real(kernel_l2, "kernel_l2", minimum=0.0)
    n_auto = 1 + max(0, int(math.floor(math.log(max(kh, kw) / _COARSEST_SIDE) / -math.log(_SCALE_RATIO))))
    n_scales = n_auto if scales is None else checks.int_(scales, "scales", minimum=1, maximum=32)

    y64 = y.detach().to(torch.float64)
    gray = y64.mean(1, keepdim=True)
    k = None
    for level in range(n_scales - 1, -1, -1):
        r = _SCALE_RATIO**level
        ks = (kh, kw) if level == 0 else (min(_odd(kh * r), kh), min(_odd(kw * r), kw))
        hs, ws = max(ks[0], int(round(h * r))), max(ks[1], int(round(w * r)))
        ys = gray if (hs, ws) == (h, w) else F.interpolate(gray, size=(hs, ws), mode="bilinear",
                                                           align_corners=False, antialias=True)
        if k is None:
            k = torch.zeros(ks, dtype=torch.float64, device=y.device)
            k[ks[0] // 2, ks[1] // 2 - 1 : ks[1] // 2 + 1] = 0.5  # Pan et al. start from a 2-tap line
        else:
            k = _resize_kernel(k, ks)
        for _ in range(iters):
            x = _l0_latent(ys, _kernel_otf(k, hs, ws), lam, lam_intensity)
            k = _clean_kernel(kernel_mstep(x, ys, ks, l2=kernel_l2, gradients=True, constrained=True))
    assert k is not None
    k = _subpixel_centre(k)
    x_hat = wiener(y64, Blur(k, boundary="circular"), sigma)
    return x_hat.to(y.dtype), k
