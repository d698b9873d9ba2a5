"""Blur-kernel builders: Gaussian (isotropic / anisotropic), uniform (box), random motion, defocus
(disk) and linear motion (line segment).

Every builder returns a normalised (sum one), non-negative ``(h, w)`` tensor whose *centre* is at
index ``(h // 2, w // 2)`` -- the convention of :class:`~pnpdiff.operators.Blur`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from . import _checks

__all__ = ["gaussian_kernel", "uniform_kernel", "motion_kernel", "disk_kernel", "line_kernel"]


def _pair(v: float | Sequence[float], name: str) -> tuple[float, float]:
    """A positive finite number or pair of them (``sigma``)."""
    return _checks.real_pair(v, name, positive=True)


def _size_pair(size: int | Sequence[int], name: str = "size") -> tuple[int, int]:
    """A positive integer or a pair of positive integers (a kernel size)."""
    return _checks.int_pair(size, name)


def gaussian_kernel(
    sigma: float | Sequence[float],
    size: int | Sequence[int] | None = None,
    angle: float = 0.0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    r"""Normalised (an)isotropic Gaussian kernel.

    ``k[i, j] ∝ exp(-u² / (2 sx²) - v² / (2 sy²))`` with ``(u, v) = (x cos a - y sin a,
    x sin a + y cos a)``, ``(x, y) = (j - w//2, i - h//2)`` the pixel offset (column, row) and
    ``a = angle`` in degrees -- the rotation convention of
    :func:`deepinv.physics.functional.gaussian_blur`, whose ``sigma`` pair is in (row, column)
    order instead: deepinv's ``sigma=(s1, s2)`` is ``sigma=(s2, s1)`` here.

    Parameters
    ----------
    sigma : float or (float, float)
        Standard deviation in pixels; a pair ``(sx, sy)`` gives an anisotropic kernel (``sx`` along
        the rotated horizontal axis).
    size : int or (int, int), optional
        Kernel size ``(h, w)``. Default ``2 * ceil(3 * max(sigma)) + 1`` (odd, +-3 sigma).
    angle : float
        Rotation in degrees (only matters for anisotropic kernels).
    dtype, device
        Of the returned tensor.

    Returns
    -------
    Tensor
        Shape ``(h, w)``, non-negative, sums to one, centre at ``(h // 2, w // 2)``.

    Raises
    ------
    OperatorError
        If ``sigma`` (or ``size``) gives a kernel more than 16384 px a side, the largest image side.
    MemoryLimitError
        If building the kernel needs more memory than a run may use (``PNPDIFF_MAX_MEMORY``, else
        80 % of the available RAM): checked before anything is allocated.
    """
    return _gaussian_kernel(sigma, size, angle, dtype, device)


#: peak bytes per tap of building a kernel (float64 work arrays, the checks and the copy
#: :class:`~pnpdiff.operators.Blur` keeps), measured on the CPU (63 B/tap for a Gaussian, 47 for a
#: motion kernel, 19 for a box) and rounded up
GAUSSIAN_BYTES_PER_TAP = 80
UNIFORM_BYTES_PER_TAP = 24
MOTION_BYTES_PER_TAP = 64


def _gaussian_kernel(
    sigma: float | Sequence[float],
    size: int | Sequence[int] | None,
    angle: float,
    dtype: torch.dtype,
    device: torch.device | str | None,
    size_name: str = "size",
) -> Tensor:
    """:func:`gaussian_kernel`, its size argument called ``size_name`` in messages
    (``kernel_size`` for :class:`~pnpdiff.operators.GaussianBlur`)."""
    sx, sy = _pair(sigma, "sigma")
    if size is not None:
        size = _size_pair(size, size_name)
    angle = _checks.real(angle, "angle")
    dtype = _checks.float_dtype(dtype)
    device = _checks.device(device)
    if size is None:
        side = 2 * math.ceil(3 * max(sx, sy)) + 1
        _checks.kernel_side(side, "sigma", sigma, "2 * ceil(3 sigma) + 1",
                            f"use a smaller sigma (at most {(_checks.MAX_KERNEL_SIDE - 1) // 6} px), or give "
                            f"{size_name} (the Gaussian is then cut at that size)")
        size = side
        name, given, fix = "sigma", sigma, f"use a smaller sigma or {size_name}"
    else:
        for side in size:
            _checks.kernel_side(side, size_name, size, f"{size_name} itself", f"use a smaller {size_name}")
        name, given, fix = size_name, size, f"use a smaller {size_name}"
    h, w = _size_pair(size)
    _checks.check_build_memory(GAUSSIAN_BYTES_PER_TAP * h * w, name, given, f"a {h}x{w} kernel", fix)
    y = torch.arange(h, dtype=torch.float64) - h // 2
    x = torch.arange(w, dtype=torch.float64) - w // 2
    yy, xx = torch.meshgrid(y, x, indexing="ij")
    a = math.radians(float(angle))
    u = math.cos(a) * xx - math.sin(a) * yy
    v = math.sin(a) * xx + math.cos(a) * yy
    k = torch.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))
    k = k / k.sum()
    return k.to(dtype=dtype, device=device)


def uniform_kernel(
    size: int | Sequence[int],
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Box (uniform) kernel of shape ``(h, w)`` with entries ``1 / (h w)``.

    Parameters
    ----------
    size : int or (int, int)
        Kernel size.
    dtype, device
        Of the returned tensor.

    Returns
    -------
    Tensor
        Shape ``(h, w)``, every entry ``1 / (h w)``.

    Raises
    ------
    OperatorError
        If ``size`` is not a positive integer or a pair of them.
    """
    h, w = _size_pair(size)
    dtype = _checks.float_dtype(dtype)
    device = _checks.device(device)
    for side in (h, w):
        _checks.kernel_side(side, "size", size, "size itself", "use a smaller size")
    _checks.check_build_memory(UNIFORM_BYTES_PER_TAP * h * w, "size", size, f"a {h}x{w} kernel", "use a smaller size")
    return torch.full((h, w), 1.0 / (h * w), dtype=dtype, device=device)


def _beta_order_stat(a: int, b: int, n: int, g: torch.Generator) -> Tensor:
    """``n`` draws of Beta(a, b) for integers a, b (the a-th smallest of a+b-1 uniforms)."""
    u = torch.rand(n, a + b - 1, generator=g, dtype=torch.float64)
    return u.sort(dim=1).values[:, a - 1]


def _triangular(left: float, mode: float, right: float, n: int, g: torch.Generator) -> Tensor:
    """``n`` draws of the triangular distribution by inverting its CDF."""
    u = torch.rand(n, generator=g, dtype=torch.float64)
    width = right - left
    if width <= 0:
        return torch.full((n,), left, dtype=torch.float64)
    c = (mode - left) / width
    lo = left + torch.sqrt(u * width * (mode - left))
    hi = right - torch.sqrt((1 - u) * width * (right - mode))
    return torch.where(u < c, lo, hi)


def _splat(points: Tensor, weights: Tensor, size: int) -> Tensor:
    """Rasterise weighted points ``(N, 2)`` (x, y) onto a ``size x size`` grid by bilinear splatting."""
    p = points.clamp(0, size - 1 - 1e-9)
    x0 = p[:, 0].floor()
    y0 = p[:, 1].floor()
    fx = p[:, 0] - x0
    fy = p[:, 1] - y0
    x0 = x0.long()
    y0 = y0.long()
    x1 = (x0 + 1).clamp_max(size - 1)
    y1 = (y0 + 1).clamp_max(size - 1)
    k = torch.zeros(size * size, dtype=torch.float64)
    for xi, yi, wi in (
        (x0, y0, (1 - fx) * (1 - fy)),
        (x1, y0, fx * (1 - fy)),
        (x0, y1, (1 - fx) * fy),
        (x1, y1, fx * fy),
    ):
        k.index_add_(0, yi * size + xi, wi * weights)
    return k.view(size, size)


def motion_kernel(
    size: int = 61,
    intensity: float = 0.5,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    r"""Random camera-shake kernel from a random trajectory.

    The trajectory model follows the generator used by the DPS (Chung et al., ICLR 2023) and
    DiffPIR (Zhu et al., CVPR-W 2023) code bases (the ``MotionBlur-Kernel`` package), itself in the
    spirit of Boracchi & Foi, "Modeling the performance of image restoration from motion blur",
    IEEE TIP 2012 and Levin et al., CVPR 2009: a random path with total length
    ``0.75 * diag * (u1 + u2 * intensity^2) / 2`` (``diag = sqrt(2) * size``, ``u1, u2 ~ U(0, 1)``),
    made of short steps of length ``Beta(1, 30) * (1 - intensity) * diag``; the heading of each step
    is a triangular draw whose spread grows with ``intensity`` and which keeps the previous
    turning direction except with a small random ``Beta(2, 20)`` probability (jitter). The path is
    centred on its centre of mass, rotated by a uniform random angle, placed at the kernel centre,
    sampled densely, rasterised by bilinear splatting (anti-aliased), softened by a Gaussian of
    standard deviation 1% of the diagonal (as the reference draws a soft line), and normalised.
    ``intensity`` in ``[0, 1]``: 0 gives nearly straight short blurs, 1 long irregular shakes.
    This is an independent implementation, not a copy of that package.

    Parameters
    ----------
    size : int
        Kernel side (the kernel is ``size x size``; 61 in DPS/DiffPIR for 256x256 images).
    intensity : float
        Irregularity / length of the trajectory, in ``[0, 1]``.
    seed : int, optional
        Seed of a fresh CPU generator (ignored when ``generator`` is given).
    generator : torch.Generator, optional
        A CPU generator; the same state gives the same kernel on every platform.
    dtype, device
        Of the returned tensor.

    Returns
    -------
    Tensor
        Shape ``(size, size)``, non-negative, sums to one.

    References
    ----------
    G. Boracchi and A. Foi, "Modeling the Performance of Image Restoration From Motion Blur",
    IEEE TIP 21(8), 2012. https://doi.org/10.1109/TIP.2012.2192126

    A. Levin, Y. Weiss, F. Durand and W. T. Freeman, "Understanding and evaluating blind
    deconvolution algorithms", CVPR 2009.
    """
    size = _checks.integer(size, "size", minimum=3)
    intensity = _checks.real(intensity, "intensity", minimum=0.0, maximum=1.0)
    seed = _checks.seed(seed)
    generator = _checks.generator(generator)
    dtype = _checks.float_dtype(dtype)
    device = _checks.device(device)
    _checks.kernel_side(size, "size", size, "size itself", "use a smaller size (61 in DPS/DiffPIR for 256x256 images)")
    _checks.check_build_memory(MOTION_BYTES_PER_TAP * size * size, "size", size, f"a {size}x{size} kernel",
                               "use a smaller size")
    if generator is None:
        generator = torch.Generator()
        generator.manual_seed(0 if seed is None else seed)
    g = generator
    eps = 1e-3
    diag = math.sqrt(2.0) * size

    # total path length, then step lengths until it is reached
    u = torch.rand(2, generator=g, dtype=torch.float64)
    max_len = 0.75 * diag * (u[0].item() + u[1].item() * intensity**2) / 2
    max_len = max(max_len, 1.0)
    step_scale = (1.0 - intensity + eps) * diag
    steps = torch.empty(0, dtype=torch.float64)
    total = 0.0
    while total < max_len:
        draw = _beta_order_stat(1, 30, 64, g) * step_scale
        draw = draw[draw < max_len]
        csum = total + torch.cumsum(draw, 0)
        n_take = int((csum < max_len).sum().item()) + 1
        n_take = min(n_take, draw.numel())
        steps = torch.cat([steps, draw[:n_take]])
        total = float(steps.sum())
    n = steps.numel()

    # headings: triangular turns that persist in sign except with probability `jitter`
    max_angle = torch.rand(1, generator=g, dtype=torch.float64).item() * intensity * math.pi
    jitter = _beta_order_stat(2, 20, 1, g).item()
    first = (2 * torch.rand(1, generator=g, dtype=torch.float64) - 1) * max_angle
    turns = _triangular(0.0, intensity * max_angle, max_angle + eps, max(n - 1, 0), g)
    flips = torch.rand(max(n - 1, 0), generator=g, dtype=torch.float64) < jitter
    # sign of each turn relative to the previous heading sign: a flip reverses it
    sign0 = 1.0 if first.item() >= 0 else -1.0
    signs = sign0 * torch.cumprod(torch.where(flips, -1.0, 1.0).to(torch.float64), 0)
    angles = torch.cat([first, turns * signs])

    inc = torch.polar(steps, angles)
    path = torch.cat([torch.zeros(1, dtype=inc.dtype), torch.cumsum(inc, 0)])
    path = path - path.mean()
    rot = torch.rand(1, generator=g, dtype=torch.float64).item() * math.pi
    path = path * complex(math.cos(rot), math.sin(rot))
    # keep the path inside the kernel support (shrink if needed), centred at size // 2
    half = (size - 1) / 2.0 - 1.0
    extent = max(path.real.abs().max().item(), path.imag.abs().max().item(), 1e-12)
    if extent > half:
        path = path * (half / extent)
    path = path + complex(size // 2, size // 2)

    # dense sampling along the polyline: points weighted by arc length
    seg = path[1:] - path[:-1]
    seg_len = seg.abs()
    n_sub = 8
    t = (torch.arange(n_sub, dtype=torch.float64) + 0.5) / n_sub
    pts = path[:-1, None] + seg[:, None] * t[None, :]
    wts = (seg_len[:, None] / n_sub).expand(-1, n_sub)
    pts = pts.reshape(-1)
    wts = wts.reshape(-1)
    if float(wts.sum()) <= 0:
        pts = path[:1]
        wts = torch.ones(1, dtype=torch.float64)
    k = _splat(torch.stack([pts.real, pts.imag], dim=1), wts, size)
    # soften the 1-pixel trace like the reference generator does (Gaussian of 1% of the diagonal)
    g1 = gaussian_kernel(max(0.01 * diag, 0.5), dtype=torch.float64)
    r = g1.shape[-1] // 2
    if g1.numel() <= 441:  # direct convolution (its im2col needs size^2 * taps values)
        k = torch.nn.functional.conv2d(k[None, None], g1[None, None], padding=r)[0, 0]
    else:  # the same zero-padded convolution by FFT: a large kernel's im2col would need ~60 GB at size 999
        n = size + 2 * r
        full = torch.fft.irfft2(torch.fft.rfft2(k, s=(n, n)) * torch.fft.rfft2(g1, s=(n, n)), s=(n, n))
        k = full[r : r + size, r : r + size].clamp_min(0)
    k = k / k.sum()
    return k.to(dtype=dtype, device=device)


#: peak bytes per tap of building a disk kernel (its float64 sub-pixel grid) or a line kernel
DISK_BYTES_PER_TAP = 32 * 25
LINE_BYTES_PER_TAP = 32
#: sub-pixel samples per pixel side of the disk's area coverage
_DISK_SUB = 5
#: samples per pixel of length along a line kernel
_LINE_SAMPLES_PER_PX = 16


def _square_size(size: int | Sequence[int] | None, default: int, name: str, given: Any) -> tuple[int, int]:
    """``size`` as ``(h, w)`` (``default`` a side when ``None``), each side checked."""
    if size is None:
        _checks.kernel_side(default, name, given, f"derived from {name}", f"use a smaller {name} or give size")
        return default, default
    h, w = _size_pair(size)
    for side in (h, w):
        _checks.kernel_side(side, "size", size, "size itself", "use a smaller size")
    return h, w


def disk_kernel(
    radius: float,
    size: int | Sequence[int] | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    r"""Defocus (out-of-focus) kernel: the normalised indicator of a disk, anti-aliased.

    Each pixel's value is the fraction of its area inside the disk of ``radius`` px centred at
    ``(h // 2, w // 2)``, computed on a 5 x 5 sub-pixel grid where each sub-pixel's coverage is
    itself a linear ramp of the signed distance to the circle (so the kernel is a continuous,
    piecewise-linear function of ``radius``: a fit over ``radius`` sees no steps). The weights sum
    to about ``pi r^2`` before normalisation. This is the geometric-optics model of defocus (a
    pill-box point-spread function; e.g. Hansen, Nagy and O'Leary, *Deblurring Images: Matrices,
    Spectra, and Filtering*, SIAM 2006, Sec. 3.2).

    Parameters
    ----------
    radius : float
        Disk radius in pixels (> 0; a radius below 0.5 px gives almost a delta).
    size : int or (int, int), optional
        Kernel size ``(h, w)``. Default ``2 * ceil(radius) + 1``.
    dtype, device
        Of the returned tensor.

    Returns
    -------
    Tensor
        Shape ``(h, w)``, non-negative, sums to one, centre at ``(h // 2, w // 2)``, symmetric under
        flips and transposition (for odd square sizes).

    Raises
    ------
    OperatorError
        For a radius that is not a positive number, a bad ``size``, or a kernel more than 16384 px
        a side.
    """
    radius = _checks.real(radius, "radius", positive=True)
    h, w = _square_size(size, 2 * math.ceil(radius) + 1, "radius", radius)
    dtype = _checks.float_dtype(dtype)
    device = _checks.device(device)
    _checks.check_build_memory(DISK_BYTES_PER_TAP * h * w, "radius" if size is None else "size",
                               radius if size is None else size, f"a {h}x{w} kernel", "use a smaller size")
    n = _DISK_SUB
    sub = (torch.arange(n, dtype=torch.float64, device=device) + 0.5) / n - 0.5  # sub-pixel offsets
    y = torch.arange(h, dtype=torch.float64, device=device) - h // 2
    x = torch.arange(w, dtype=torch.float64, device=device) - w // 2
    yy = (y[:, None] + sub[None, :]).reshape(-1)
    xx = (x[:, None] + sub[None, :]).reshape(-1)
    d = torch.sqrt(yy[:, None] ** 2 + xx[None, :] ** 2)
    cover = ((radius - d) * n + 0.5).clamp(0.0, 1.0)  # each sub-pixel: a ramp one sub-pixel wide
    k = cover.view(h, n, w, n).sum((1, 3))
    if float(k.sum()) <= 0:  # a radius far below a sub-pixel: the centre pixel
        k[h // 2, w // 2] = 1.0
    k = k / k.sum()
    return k.to(dtype=dtype)


def line_kernel(
    length: float,
    angle: float,
    size: int | Sequence[int] | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    r"""Linear (uniform-velocity) motion kernel: a normalised anti-aliased line segment.

    The segment has ``length`` px, is centred at ``(h // 2, w // 2)`` and points along
    ``(dx, dy) = (cos a, -sin a)`` in (column, row) offsets, ``a = angle`` in degrees counted
    anticlockwise from the horizontal as the image is displayed (rows downwards): ``angle=0`` is a
    horizontal blur, ``angle=90`` a vertical one; ``angle`` and ``angle + 180`` give the same
    kernel. It is sampled at 16 points per pixel of length (midpoint rule, equal weights) and each
    point is splatted bilinearly onto its four neighbouring pixels, so the kernel is continuous in
    ``length`` and ``angle``. Its second moment along the direction is ``L^2 / 12`` (a uniform
    density on ``[-L/2, L/2]``) plus the bilinear splat's ``<= 1/6``. The model of a camera moving
    at constant velocity during the exposure (e.g. Hansen, Nagy and O'Leary, *Deblurring Images:
    Matrices, Spectra, and Filtering*, SIAM 2006, Sec. 3.2).

    Parameters
    ----------
    length : float
        Segment length in pixels (>= 0; 0 gives a delta).
    angle : float
        Direction in degrees (any finite number; taken modulo 180).
    size : int or (int, int), optional
        Kernel size ``(h, w)``. Default ``2 * ceil(length / 2) + 1``; a smaller size cuts the
        segment (its ends are dropped before normalising).
    dtype, device
        Of the returned tensor.

    Returns
    -------
    Tensor
        Shape ``(h, w)``, non-negative, sums to one, centre at ``(h // 2, w // 2)``, symmetric
        under a rotation by 180 degrees about the centre (for odd sizes).

    Raises
    ------
    OperatorError
        For a negative or non-numeric ``length``, a non-finite ``angle``, a bad ``size``, or a
        kernel more than 16384 px a side.
    """
    length = _checks.real(length, "length", minimum=0.0)
    angle = _checks.real(angle, "angle")
    h, w = _square_size(size, 2 * math.ceil(length / 2) + 1, "length", length)
    dtype = _checks.float_dtype(dtype)
    device = _checks.device(device)
    _checks.check_build_memory(LINE_BYTES_PER_TAP * h * w, "length" if size is None else "size",
                               length if size is None else size, f"a {h}x{w} kernel", "use a smaller size")
    a = math.radians(angle % 180.0)
    n = max(1, math.ceil(length * _LINE_SAMPLES_PER_PX))
    t = ((torch.arange(n, dtype=torch.float64, device=device) + 0.5) / n - 0.5) * length
    px = t * math.cos(a) + w // 2
    py = -t * math.sin(a) + h // 2
    x0, y0 = px.floor(), py.floor()
    fx, fy = px - x0, py - y0
    x0, y0 = x0.long(), y0.long()
    k = torch.zeros(h * w, dtype=torch.float64, device=device)
    for xi, yi, wi in ((x0, y0, (1 - fx) * (1 - fy)), (x0 + 1, y0, fx * (1 - fy)),
                       (x0, y0 + 1, (1 - fx) * fy), (x0 + 1, y0 + 1, fx * fy)):
        inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        k.index_add_(0, (yi * w + xi).clamp(0, h * w - 1), torch.where(inside, wi, torch.zeros_like(wi)))
    k = k.view(h, w)
    if float(k.sum()) <= 0:  # every point outside a tiny support: the centre pixel
        k[h // 2, w // 2] = 1.0
    k = k / k.sum()
    return k.to(dtype=dtype)
