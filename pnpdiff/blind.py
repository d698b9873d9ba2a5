"""Non-parametric blind deblurring: the kernel estimated jointly with the image.

Two pieces:

* :func:`kernel_mstep` -- the kernel update: a (regularised, optionally constrained) least-squares
  fit of the kernel ``k`` in ``y = k (*) x`` for a given image ``x``, with the normal equations
  built from the autocorrelation of ``x``'s features by FFTs (exact for the circular model).
* :func:`estimate_kernel` -- an EM / alternating scheme, coarse-to-fine over scales, whose E-step
  is a few plug-and-play (half-quadratic splitting, DPIR-style) iterations for ``x`` with the
  current kernel and the prior's denoiser, and whose M-step is :func:`kernel_mstep` in the
  gradient domain. Why the scheme looks the way it does is explained in its docstring.

Layer L5: imports only torch, :mod:`pnpdiff.errors`, :mod:`pnpdiff.checks`,
:mod:`pnpdiff.operators` and :mod:`pnpdiff.priors` / :mod:`pnpdiff.solvers` (never
:mod:`pnpdiff.api`, which imports this module).

References
----------
.. [Laroche2024] C. Laroche, A. Almansa and E. Coupete, "Fast Diffusion EM: a diffusion model for
   blind inverse problems with application to deconvolution", WACV 2024.
.. [Murata2023] N. Murata, K. Saito, C.-H. Lai, Y. Takida, T. Uesaka, Y. Mitsufuji and S. Ermon,
   "GibbsDDRM: A Partially Collapsed Gibbs Sampler for Solving Blind Inverse Problems with
   Denoising Diffusion Restoration", ICML 2023.
.. [Fergus2006] R. Fergus, B. Singh, A. Hertzmann, S. T. Roweis and W. T. Freeman, "Removing
   camera shake from a single photograph", SIGGRAPH 2006.
.. [Cho2009] S. Cho and S. Lee, "Fast motion deblurring", SIGGRAPH Asia 2009.
.. [Levin2011] A. Levin, Y. Weiss, F. Durand and W. T. Freeman, "Efficient marginal likelihood
   optimization in blind deconvolution", CVPR 2011 (and "Understanding blind deconvolution
   algorithms", IEEE TPAMI 2011).
.. [Krishnan2011] D. Krishnan, T. Tay and R. Fergus, "Blind deconvolution using a normalized
   sparsity measure", CVPR 2011.
.. [Duchi2008] J. Duchi, S. Shalev-Shwartz, Y. Singer and T. Chandra, "Efficient projections onto
   the l1-ball for learning in high dimensions", ICML 2008 (projection onto the simplex).
.. [Boyd2011] S. Boyd, N. Parikh, E. Chu, B. Peleato and J. Eckstein, "Distributed optimization
   and statistical learning via the alternating direction method of multipliers", FnT ML 2011.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from pnpdiff import checks
from pnpdiff.errors import PnPError, ShapeError, ValueRangeError

__all__ = ["kernel_mstep", "estimate_kernel", "BlindResult", "project_simplex", "centred_kernel_error",
           "normalised_sparsity"]

#: the largest kernel side the dense normal equations take ((h w)^2 float64 entries: 101^2 taps -> 0.8 GB)
MAX_KERNEL_SIDE = 101


# ---------------------------------------------------------------------------------------- checks
def _check_images(x: Any, name: str) -> Tensor:
    if not torch.is_tensor(x):
        raise ShapeError(f"{name} must be a (B, C, H, W) torch tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ShapeError(f"{name} must be a (B, C, H, W) tensor, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueRangeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.numel() == 0:
        raise ShapeError(f"{name} must not be empty, got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueRangeError(f"{name} holds NaN or infinite values")
    return x


def _check_size(size: Any, where: str = "size") -> tuple[int, int]:
    if isinstance(size, bool):
        raise ValueRangeError(f"{where} must be a positive odd-or-even integer or a pair (h, w), got {size!r}")
    try:
        if isinstance(size, (Sequence, Tensor)) and not isinstance(size, str):
            h, w = checks.pair(size, where, integer=True, minimum=1, maximum=MAX_KERNEL_SIDE)
        else:
            h = w = checks.int_(size, where, minimum=1, maximum=MAX_KERNEL_SIDE)
    except PnPError:
        raise ValueRangeError(
            f"{where} must be an integer or a pair (h, w) of integers in 1 .. {MAX_KERNEL_SIDE} (the kernel's "
            f"support), got {checks._show(size)}"
        ) from None
    return int(h), int(w)


def _work_device(x: Tensor) -> torch.device:
    """Where the float64 linear algebra runs: ``x``'s device unless it has no float64 (MPS)."""
    return torch.device("cpu") if x.device.type == "mps" else x.device


# ---------------------------------------------------------------------------------- projections
def project_simplex(v: Tensor) -> Tensor:
    """Euclidean projection of each row of ``v`` onto the probability simplex ``{k >= 0, sum k = 1}``.

    The sort-based algorithm of Duchi et al. (ICML 2008): with ``u`` the entries sorted in
    decreasing order, ``theta = (sum_{i <= r} u_i - 1) / r`` for the largest ``r`` with
    ``u_r > theta``; the projection is ``max(v - theta, 0)``.

    Parameters
    ----------
    v : Tensor
        ``(..., n)`` real tensor.

    Returns
    -------
    Tensor
        Same shape, every row non-negative and summing to one.
    """
    u, _ = torch.sort(v, dim=-1, descending=True)
    css = torch.cumsum(u, dim=-1) - 1.0
    r = torch.arange(1, v.shape[-1] + 1, device=v.device, dtype=v.dtype)
    cond = u - css / r > 0
    rho = cond.to(torch.long).cumsum(-1).argmax(-1, keepdim=True)  # last index where cond holds
    theta = css.gather(-1, rho) / (rho + 1).to(v.dtype)
    return (v - theta).clamp_min(0.0)


# ------------------------------------------------------------------------------------- features
def _features(x: Tensor, gradients: bool) -> Tensor:
    """``(N, H, W)`` stack of the images' channels (and, with ``gradients``, their circular
    horizontal and vertical forward differences instead of the images)."""
    x = x.reshape(-1, *x.shape[-2:])
    if not gradients:
        return x
    dh = torch.roll(x, -1, dims=-1) - x
    dv = torch.roll(x, -1, dims=-2) - x
    return torch.cat([dh, dv], 0)


def normal_equations(x: Tensor, y: Tensor, size: tuple[int, int], gradients: bool = True,
                     extra_power: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """The normal equations ``M k = b`` of ``min_k sum ||F(k (*) x) - F y||^2`` (circular model).

    The column of the convolution matrix for the kernel tap at offset ``s = (a - h//2, b - w//2)``
    is the feature image shifted by ``s`` (:class:`~pnpdiff.operators.Blur`'s convention), so
    ``M[s, s'] = R((s - s') mod (H, W))`` with ``R = irfft2(|F x|^2)`` the circular
    autocorrelation of the features, and ``b[s] = irfft2(conj(F x) F y)(s)`` their
    cross-correlation, summed over batch, channels and (with ``gradients``) both directions.

    ``extra_power`` (``(H, W // 2 + 1)``, optional) is added to the summed power spectrum ``sum |F x|^2``:
    the expected power of ``x``'s features under a posterior with that covariance spectrum (an EM
    M-step, Levin et al. 2011).

    Returns
    -------
    M : Tensor
        ``(h w, h w)`` float64, symmetric positive semi-definite.
    b : Tensor
        ``(h w,)`` float64.
    c : Tensor
        ``sum ||F y||^2`` (0-d float64), so the objective is ``k^T M k - 2 b^T k + c``.
    """
    h, w = size
    dev = _work_device(x)
    fx = _features(x.detach().to(dev, torch.float64), gradients)
    fy = _features(y.detach().to(dev, torch.float64), gradients)
    H, W = fx.shape[-2:]
    X = torch.fft.rfft2(fx)
    Y = torch.fft.rfft2(fy)
    power = (X.real**2 + X.imag**2).sum(0)
    if extra_power is not None:  # E|F x|^2 = |F x_hat|^2 + (the posterior covariance's spectrum)
        power = power + extra_power.to(power)
    R = torch.fft.irfft2(power, s=(H, W))
    C = torch.fft.irfft2((X.conj() * Y).sum(0), s=(H, W))
    oa = torch.arange(h, device=dev) - h // 2
    ob = torch.arange(w, device=dev) - w // 2
    ra = (oa[:, None] - oa[None, :]) % H  # (h, h): row offset differences
    rb = (ob[:, None] - ob[None, :]) % W
    M = R[ra[:, None, :, None], rb[None, :, None, :]].reshape(h * w, h * w)
    M = 0.5 * (M + M.T)
    b = C[(oa % H)[:, None], (ob % W)[None, :]].reshape(-1)
    c = (fy**2).sum()
    return M, b, c


def _kernel_gram(size: tuple[int, int], gradients: bool, device: torch.device) -> Tensor:
    """``G`` with ``k^T G k = sum_D ||D k||^2`` (full convolution: the kernel's differences across
    its support's border count too); the identity without ``gradients``."""
    h, w = size
    if not gradients:
        return torch.eye(h * w, dtype=torch.float64, device=device)
    delta = torch.zeros(1, 1, 2 * h + 2, 2 * w + 2, dtype=torch.float64, device=device)
    delta[..., h + 1, w + 1] = 1.0
    return normal_equations(delta, delta, size, True)[0]


def _kkt_polish(Q: Tensor, b: Tensor, z: Tensor) -> Tensor | None:
    """Exact minimiser of ``k^T Q k - 2 b^T k`` over ``{sum k = 1, k_j = 0 off the support of z}``
    (one KKT solve); ``None`` where it is not non-negative."""
    supp = z > 1e-10 * float(z.max())
    idx = supp.nonzero().flatten()
    n = idx.numel()
    if n == 0:
        return None
    Qs = Q[idx[:, None], idx[None, :]]
    kkt = Q.new_zeros(n + 1, n + 1)
    kkt[:n, :n] = Qs
    kkt[:n, n] = 1.0
    kkt[n, :n] = 1.0
    rhs = torch.cat([b[idx], b.new_ones(1)])
    try:
        sol = torch.linalg.solve(kkt, rhs)
    except RuntimeError:
        return None
    ks = sol[:n]
    if not bool(torch.isfinite(ks).all()) or float(ks.min()) < 0:
        return None
    out = torch.zeros_like(z)
    out[idx] = ks
    return out


def kernel_mstep(
    x: Tensor,
    y: Tensor,
    size: int | Sequence[int],
    *,
    l2: float = 0.0,
    l1: float = 0.0,
    gradients: bool = True,
    constrained: bool = True,
    iters: int = 200,
    k_init: Tensor | None = None,
    variance: float = 0.0,
) -> Tensor:
    r"""Kernel update of blind deconvolution: regularised least squares for ``k`` in ``y = k (*) x``.

    Minimises over kernels ``k`` supported on the ``(h, w)`` box (centre at ``(h // 2, w // 2)``,
    the convention of :class:`~pnpdiff.operators.Blur`, circular boundary, one kernel shared by
    every image and channel)::

        sum_{b, c, D} ||D (k (*) x_bc) - D y_bc||^2 + l2 ||k||^2 + l1 ||k||_1

    with ``D`` the circular horizontal and vertical forward differences (``gradients=True``, the
    gradient-domain data term of Fergus et al. 2006, Cho & Lee 2009 and Levin et al. 2011, which
    whitens the image spectrum and ignores the unknown mean) or the identity.

    * ``constrained=False, l1=0``: the exact closed-form minimiser, the solution of the normal
      equations ``(M + l2 I) k = b`` (``M`` the ``(h w) x (h w)`` autocorrelation matrix of ``x``'s
      features, built from one FFT per feature image: :func:`normal_equations`); a least-squares
      solve when ``M + l2 I`` is singular.
    * ``constrained=False, l1>0``: ADMM [Boyd2011]_ with a soft threshold.
    * ``constrained=True``: subject to ``k >= 0`` and ``sum k = 1``, by ADMM on the normal
      equations (one Cholesky factorisation of ``M + (l2 + rho) I``, then ``iters`` iterations of a
      triangular solve and a projection onto the simplex [Duchi2008]_), finished by an exact
      KKT solve on the support the iterations found (kept only where it is feasible and not worse).
      On the simplex ``||k||_1 = 1``, so ``l1`` adds a constant and has no effect there.

    Parameters
    ----------
    x : Tensor
        ``(B, C, H, W)`` image estimate.
    y : Tensor
        ``(B, C, H, W)`` measurement.
    size : int or (int, int)
        Kernel support ``(h, w)``, each side at most the image's.
    l2, l1 : float
        Non-negative weights of ``||k||^2`` and ``||k||_1`` (in the units of the data term).
    gradients : bool
        Fit gradients (default) or intensities.
    constrained : bool
        Enforce ``k >= 0, sum k = 1``.
    iters : int
        ADMM iterations (iterative cases only).
    k_init : Tensor, optional
        ``(h, w)`` warm start of the iterations.
    variance : float
        Posterior variance ``v`` per pixel of ``x`` (white), for an EM M-step: the expected data
        term ``E ||D(k (*) x) - D y||^2`` over ``x ~ N(x_hat, v I)`` adds ``v N k^T G k`` with ``N``
        the pixels of every image and channel and ``G`` the Gram matrix of ``k -> D k`` (full
        convolution; ``I`` without ``gradients``) -- the covariance term of Levin et al.'s EM
        (CVPR 2011), which penalises a too sharp kernel.

    Returns
    -------
    Tensor
        ``(h, w)`` float64 kernel on ``x``'s device (on the CPU for a device without float64).

    Raises
    ------
    ShapeError, ValueRangeError
        For wrong shapes, a kernel larger than the image, or bad weights.
    """
    x = _check_images(x, "x")
    y = _check_images(y, "y")
    if x.shape != y.shape:
        raise ShapeError(f"x and y must have the same (B, C, H, W) shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    h, w = _check_size(size)
    H, W = x.shape[-2:]
    if h > H or w > W:
        raise ShapeError(f"the kernel support {(h, w)} is larger than the images {(H, W)}; use a smaller size")
    l2 = checks.real(l2, "l2", minimum=0.0)
    l1 = checks.real(l1, "l1", minimum=0.0)
    variance = checks.real(variance, "variance", minimum=0.0)
    gradients = checks.bool_(gradients, "gradients")
    constrained = checks.bool_(constrained, "constrained")
    iters = checks.int_(iters, "iters", minimum=1, maximum=checks.MAX_STEPS)
    dev = _work_device(x)
    if k_init is not None:
        if not torch.is_tensor(k_init) or tuple(k_init.shape) != (h, w):
            got = tuple(k_init.shape) if torch.is_tensor(k_init) else type(k_init).__name__
            raise ShapeError(f"k_init must be a ({h}, {w}) tensor (the kernel support), got {got}")
        if not bool(torch.isfinite(k_init).all()):
            raise ValueRangeError("k_init holds NaN or infinite values")
        k_init = k_init.detach().to(dev, torch.float64).reshape(-1)
    M, b, _ = normal_equations(x, y, (h, w), gradients)
    if variance > 0:
        M = M + variance * (x.shape[0] * x.shape[1] * H * W) * _kernel_gram((h, w), gradients, dev)
    return _solve_kernel(M, b, (h, w), l2, l1, constrained, iters, k_init)


def _solve_kernel(M: Tensor, b: Tensor, size: tuple[int, int], l2: float, l1: float, constrained: bool,
                  iters: int, k_init: Tensor | None) -> Tensor:
    """The kernel minimising ``k^T (M + l2 I) k - 2 b^T k + l1 |k|_1`` (see :func:`kernel_mstep`)."""
    h, w = size
    dev = M.device
    n = h * w
    eye = torch.eye(n, dtype=torch.float64, device=dev)
    Q = M + l2 * eye
    if not constrained and l1 == 0.0:
        try:
            L = torch.linalg.cholesky(Q)
            k = torch.cholesky_solve(b[:, None], L)[:, 0]
        except RuntimeError:  # singular: minimum-norm least squares
            k = torch.linalg.lstsq(Q.cpu(), b.cpu()[:, None], driver="gelsd").solution[:, 0].to(dev)
        return k.reshape(h, w)

    # ADMM on 1/2 k^T Q k - b^T k + g(z), k = z   (the objective halved)
    scale = float(torch.diagonal(Q).mean()) or 1.0
    rho = scale
    L = torch.linalg.cholesky(Q + rho * eye)
    if k_init is not None:
        z = project_simplex(k_init) if constrained else k_init.clone()
    else:
        z = torch.full((n,), 1.0 / n, dtype=torch.float64, device=dev)
    u = torch.zeros_like(z)
    thr = 0.5 * l1 / rho
    for _ in range(iters):
        k = torch.cholesky_solve((b + rho * (z - u))[:, None], L)[:, 0]
        v = k + u
        z = project_simplex(v) if constrained else torch.sign(v) * (v.abs() - thr).clamp_min(0.0)
        u = u + k - z

    def objective(kk: Tensor) -> float:
        return float(kk @ (Q @ kk) - 2 * b @ kk + l1 * kk.abs().sum())

    if constrained:
        polished = _kkt_polish(Q, b, z)
        if polished is not None and objective(polished) <= objective(z):
            z = polished
    return z.reshape(h, w)


def _check_kernel_2d(k: Any, name: str) -> Tensor:
    """``k`` as an ``(h, w)`` float64 CPU kernel normalised to sum one (leading singleton dims dropped)."""
    if not torch.is_tensor(k):
        raise ShapeError(f"{name} must be an (h, w) torch tensor, got {type(k).__name__}")
    while k.ndim > 2 and k.shape[0] == 1:
        k = k[0]
    if k.ndim != 2 or k.numel() == 0:
        raise ShapeError(f"{name} must be an (h, w) kernel, got shape {tuple(k.shape)}")
    k = k.detach().to("cpu", torch.float64)
    total = float(k.sum())
    if not bool(torch.isfinite(k).all()) or not total > 0:
        raise ValueRangeError(f"{name} must be finite and sum to a positive value, got sum {total:g}")
    return k / total


def centred_kernel_error(k: Tensor, k_true: Tensor) -> float:
    """Relative L2 error ``||k - k_true|| / ||k_true||`` after aligning the centres of mass.

    Blind deconvolution determines the kernel only up to a shift (the image shifts the other way),
    so ``k`` is first shifted (by bilinear interpolation, on a canvas large enough for both) so
    that its centre of mass falls on ``k_true``'s. Both are normalised to sum one.

    Parameters
    ----------
    k, k_true : Tensor
        ``(h, w)`` kernels (sizes may differ); leading singleton dimensions (a
        :class:`~pnpdiff.operators.Blur`'s ``(1, h, w)`` kernel) are dropped.

    Returns
    -------
    float

    Raises
    ------
    ShapeError
        If a kernel is not an ``(h, w)`` tensor (after dropping leading singleton dimensions) or is empty.
    ValueRangeError
        If a kernel is not finite or does not sum to a positive value.
    """
    k, t = (_check_kernel_2d(a, n) for a, n in ((k, "k"), (k_true, "k_true")))
    hh = max(k.shape[0], t.shape[0]) + 8
    ww = max(k.shape[1], t.shape[1]) + 8

    def canvas(a: Tensor) -> Tensor:
        c = torch.zeros(hh, ww, dtype=torch.float64)
        r0 = hh // 2 - a.shape[0] // 2
        c0 = ww // 2 - a.shape[1] // 2
        c[r0:r0 + a.shape[0], c0:c0 + a.shape[1]] = a
        return c

    kc, tc = canvas(k), canvas(t)
    rr = torch.arange(hh, dtype=torch.float64)
    cc = torch.arange(ww, dtype=torch.float64)

    def com(a: Tensor) -> tuple[float, float]:
        return float((a.sum(1) * rr).sum()), float((a.sum(0) * cc).sum())

    (kr, kcm), (tr, tcm) = com(kc), com(tc)
    dr, dc = tr - kr, tcm - kcm
    # shift kc by (dr, dc) with bilinear interpolation: sample kc at (i - dr, j - dc)
    grid_r = (rr - dr)[:, None].expand(hh, ww)
    grid_c = (cc - dc)[None, :].expand(hh, ww)
    g = torch.stack([grid_c / (ww - 1) * 2 - 1, grid_r / (hh - 1) * 2 - 1], -1)[None]
    shifted = F.grid_sample(kc[None, None], g, mode="bilinear", padding_mode="zeros", align_corners=True)[0, 0]
    return float((shifted - tc).norm() / tc.norm())


# ------------------------------------------------------------------------------ estimate_kernel
def normalised_sparsity(x: Tensor) -> float:
    r"""Krishnan et al.'s normalised sparsity ``||grad x||_1 / ||grad x||_2`` of an image (lower: sparser).

    Over the horizontal and vertical differences of the channel mean of every image of the batch
    (``||.||`` taken as means, so the number does not depend on the size). Unlike ``||grad x||_1``
    alone it *falls* as an image is sharpened -- blur lowers the l2 norm of the gradients more than
    their l1 norm -- and it rises with ringing and ghost edges, which spread the gradients out
    ([Krishnan2011]_). It does not depend on the image's scale or offset. :func:`pnpdiff.solve` uses
    it to check a blind kernel's restoration against the merely denoised ``y``.

    Parameters
    ----------
    x : Tensor
        ``(B, C, H, W)`` images, ``H, W >= 2``.

    Returns
    -------
    float
        The ratio (``inf`` for a constant image).

    Raises
    ------
    ShapeError, ValueRangeError
        Not a 4-D floating-point tensor of at least 2 x 2 pixels; non-finite values.
    """
    x = _check_images(x, "x")
    if x.shape[-1] < 2 or x.shape[-2] < 2:
        raise ShapeError(f"x must be at least 2 x 2 pixels, got {tuple(x.shape[-2:])}")
    lum = x.to(torch.float64).mean(1)
    g = torch.cat([(lum[..., :, 1:] - lum[..., :, :-1]).flatten(), (lum[..., 1:, :] - lum[..., :-1, :]).flatten()])
    l2 = float(g.pow(2).mean().sqrt())
    return float(g.abs().mean()) / l2 if l2 > 0 else math.inf


@dataclass
class BlindResult:
    """What :func:`estimate_kernel` returns.

    Attributes
    ----------
    x : Tensor
        The image estimate of the last E-step, ``y``'s shape.
    kernel : Tensor
        ``(h, w)`` float64 kernel, non-negative, summing to one, centre at ``(h // 2, w // 2)``.
    history : list of dict
        One entry per EM iteration: ``scale`` (index), ``factor`` (image scale), ``size`` (kernel
        support there), ``kernel_change`` (relative L2 change of the kernel), ``residual`` (relative
        RMS of ``y - k (*) x`` in the interior).
    denoiser_calls : int
        Calls of ``prior.denoise``.
    """

    x: Tensor
    kernel: Tensor
    history: list[dict[str, Any]] = field(default_factory=list)
    denoiser_calls: int = 0


def _odd(v: float) -> int:
    n = max(3, int(round(v)))
    return n if n % 2 == 1 else n + 1


def _resize_kernel(k: Tensor, size: tuple[int, int]) -> Tensor:
    """``k`` resampled onto a ``size`` support (centres kept), non-negative, summing to one."""
    h0, w0 = k.shape
    h, w = size
    if (h0, w0) == (h, w):
        return k
    out = F.interpolate(k[None, None], size=(h, w), mode="bilinear", align_corners=True)[0, 0]
    out = out.clamp_min(0)
    return out / out.sum()


def _taper_pad(y: Tensor, pad: tuple[int, int]) -> Tensor:
    """``y`` extended by ``pad = (ph, pw)`` on each side into an image that is smooth across the
    periodic wrap: reflect padding, blended (a raised-cosine weight falling from 1 at ``y``'s border
    to 0 at the wrap) into a strongly blurred circular copy of itself (the edge taper of
    deconvolution practice; Liu & Jia, "Reducing boundary artifacts in image deconvolution",
    ICIP 2008, fill the band by smooth interpolation to the same end)."""
    ph, pw = pad
    H, W = y.shape[-2:]
    mode = "reflect" if ph < H and pw < W else "replicate"
    yp = F.pad(y, (pw, pw, ph, ph), mode=mode)
    Hp, Wp = yp.shape[-2:]
    # smooth periodic copy: a circular Gaussian blur of width ~ the pad
    s = max(ph, pw, 1) / 2.0
    fy = torch.fft.fftfreq(Hp, device=y.device, dtype=y.dtype)
    fx = torch.fft.rfftfreq(Wp, device=y.device, dtype=y.dtype)
    g = torch.exp(-2 * (math.pi * s) ** 2 * (fy[:, None] ** 2 + fx[None, :] ** 2))
    smooth = torch.fft.irfft2(torch.fft.rfft2(yp) * g, s=(Hp, Wp))

    def ramp(n: int, p: int, m: int) -> Tensor:
        t = torch.ones(m, device=y.device, dtype=y.dtype)
        if p > 0:
            d = torch.arange(p, device=y.device, dtype=y.dtype)
            r = 0.5 - 0.5 * torch.cos(math.pi * (d + 0.5) / p)  # 0 at the wrap -> 1 at y's border
            t[:p] = r
            t[m - p:] = r.flip(0)
        return t

    wgt = ramp(H, ph, Hp)[:, None] * ramp(W, pw, Wp)[None, :]
    return wgt * yp + (1 - wgt) * smooth


def _window(shape: tuple[int, int], inner: tuple[int, int, int, int], ramp: int, like: Tensor) -> Tensor:
    """A weight that is 1 on the box ``inner = (r0, r1, c0, c1)`` and falls to 0 over ``ramp``
    pixels outside it (raised cosine)."""
    H, W = shape

    def one(n: int, a: int, b: int) -> Tensor:
        t = torch.arange(n, device=like.device, dtype=like.dtype)
        dist = torch.clamp(torch.maximum(a - t, t - (b - 1)), min=0)
        if ramp <= 0:
            return (dist == 0).to(like.dtype)
        return torch.where(dist >= ramp, torch.zeros_like(t), 0.5 + 0.5 * torch.cos(math.pi * dist / ramp))

    r0, r1, c0, c1 = inner
    return one(H, r0, r1)[:, None] * one(W, c0, c1)[None, :]


def _shock(x: Tensor, steps: int, dt: float = 0.5) -> Tensor:
    """Osher-Rudin shock filter ``x <- x - dt sign(lap x) |grad x|`` (the edge prediction of Cho &
    Lee 2009): steepens blurred edges towards steps."""
    for _ in range(steps):
        xp = F.pad(x, (1, 1, 1, 1), mode="replicate")
        gx = 0.5 * (xp[..., 1:-1, 2:] - xp[..., 1:-1, :-2])
        gy = 0.5 * (xp[..., 2:, 1:-1] - xp[..., :-2, 1:-1])
        lap = xp[..., 1:-1, 2:] + xp[..., 1:-1, :-2] + xp[..., 2:, 1:-1] + xp[..., :-2, 1:-1] - 4 * x
        x = x - dt * torch.sign(lap) * torch.sqrt(gx**2 + gy**2)
    return x


#: tuning knobs of :func:`estimate_kernel` (module constants so that the benchmark can report them)
_OPTS: dict[str, Any] = {
    "coarsest": 5,  # kernel side at the coarsest scale
    "ratio": math.sqrt(2.0),  # scale ratio between levels (Fergus 2006, Levin 2011, Krishnan 2011)
    "iters": 6,  # EM iterations per scale
    "inner": 6,  # HQS iterations per E-step
    "lam": 0.23,  # DPIR's lambda in the E-step
    "sigma_hi": 0.2,  # denoiser level at the first EM iteration of each scale
    "sigma_lo": 0.01,  # ... and at its last one (floored at the scale's noise level)
    "shock": 0,  # shock-filter steps on the E-step image before the M-step
    "l2": 1e-3,  # kernel ridge, relative to the mean diagonal of the normal matrix
    "mstep_iters": 100,
    "var": 0.5,  # weight of the EM covariance term
}


def _recentre(k: Tensor) -> tuple[Tensor, tuple[int, int]]:
    """``k`` moved by a whole number of pixels so that its centre of mass is nearest the support's
    centre ``(h // 2, w // 2)`` (taps pushed out of the support are dropped, the rest renormalised),
    and the move ``(dr, dc)``."""
    h, w = k.shape
    tot = float(k.sum())
    r = float((k.sum(1) * torch.arange(h, dtype=k.dtype)).sum()) / tot
    c = float((k.sum(0) * torch.arange(w, dtype=k.dtype)).sum()) / tot
    dr, dc = h // 2 - round(r), w // 2 - round(c)
    if dr == 0 and dc == 0:
        return k, (0, 0)
    out = torch.zeros_like(k)
    src = k[max(0, -dr):h - max(0, dr), max(0, -dc):w - max(0, dc)]
    out[max(0, dr):max(0, dr) + src.shape[0], max(0, dc):max(0, dc) + src.shape[1]] = src
    return out / out.sum(), (dr, dc)


def _transfer(k: Tensor, shape: tuple[int, int], device: torch.device) -> Tensor:
    """``rfft2`` of ``k`` placed on the ``shape`` torus with its centre at the origin (Blur's convention)."""
    h, w = k.shape
    H, W = shape
    kp = torch.zeros(H, W, dtype=torch.float64, device=device)
    ri = (torch.arange(h, device=device) - h // 2) % H
    ci = (torch.arange(w, device=device) - w // 2) % W
    kp.index_put_((ri[:, None].expand(h, w), ci[None, :].expand(h, w)), k.to(device, torch.float64), accumulate=True)
    return torch.fft.rfft2(kp)


def _posterior_power(x: Tensor, k: Tensor, sigma_y: float, n_eff: float) -> Tensor:
    r"""Expected power spectrum ``sum E|F(D e)|^2`` of the E-step's error ``e = x - x_hat`` in the
    gradient domain, summed over images, channels and both directions, under the Gaussian
    approximation of the posterior (Levin et al., CVPR 2011): each gradient image ``g = D x`` is
    white with variance ``s^2`` (natural images have a ``1/f^2`` spectrum, Field 1987, so their
    gradients are nearly white), observed through ``D y = K g + D n``, so its posterior covariance
    spectrum is ``1 / (|K|^2 / (sigma_y^2 |D|^2) + 1 / s^2)`` (per pixel; times ``n_eff``, the
    pixels counted, for the unnormalised FFT)."""
    dev = _work_device(x)
    H, W = x.shape[-2:]
    fy = torch.fft.fftfreq(H, device=dev, dtype=torch.float64)[:, None]
    fx = torch.fft.rfftfreq(W, device=dev, dtype=torch.float64)[None, :]
    K = _transfer(k, (H, W), dev)
    k2 = K.real**2 + K.imag**2
    feats = _features(x.detach().to(dev, torch.float64), True)
    s2 = float((feats**2).sum()) / max(n_eff * x.shape[0] * x.shape[1] * 2, 1.0)
    sy2 = max(sigma_y, 1e-4) ** 2
    out = torch.zeros(H, W // 2 + 1, dtype=torch.float64, device=dev)
    for d2 in (4 * torch.sin(math.pi * fx) ** 2, 4 * torch.sin(math.pi * fy) ** 2):
        out = out + 1.0 / (k2 / (sy2 * d2 + 1e-30) + 1.0 / s2)
    return out * n_eff * x.shape[0] * x.shape[1]


def _mean_diag(x: Tensor, gradients: bool = True) -> float:
    f = _features(x.detach().to(_work_device(x), torch.float64), gradients)
    return float((f**2).sum())


@torch.no_grad()
def estimate_kernel(
    y: Tensor,
    size: int | Sequence[int],
    prior: Any,
    sigma_y: float,
    *,
    scales: int | None = None,
    iters: int | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
    k_init: Tensor | None = None,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> BlindResult:
    r"""Estimate a blur kernel (non-negative, summing to one, on a ``size`` support) with the image.

    An EM / alternating scheme, coarse-to-fine over scales:

    * **Scales** (Fergus et al. 2006, Levin et al. 2011, Krishnan et al. 2011): the measurement is
      downsampled by powers of ``sqrt(2)`` until the kernel is about 5 px; the kernel starts as a
      delta at the coarsest scale and is upsampled (bilinear, renormalised) between scales, the
      image estimate with it. Large blurs are thereby found as small ones first, where the
      problem has few unknowns.
    * **E-step**: a short DPIR schedule (half-quadratic splitting with the prior's denoiser,
      ``sigma`` from 0.2 down to ``max(0.01, sigma_y)``, ``lambda = 0.23``; Zhang et al. 2021),
      warm-started from the previous estimate, with the current kernel. The denoiser strength is
      annealed *within* each E-step (not across EM iterations): a warm start at a low level barely
      deblurs, and an image that is still blurry drives the M-step to a too sharp kernel.
    * **M-step**: :func:`kernel_mstep`'s constrained gradient-domain least squares (tiny ridge),
      with the *expected* data term ``E ||D(k (*) x) - D y||^2`` over the posterior of ``x``
      rather than the plug-in ``x_hat`` (the EM of Levin et al., CVPR 2011, and of Fast Diffusion EM,
      Laroche et al., WACV 2024, which GibbsDDRM, Murata et al., ICML 2023, approximates by a
      posterior *sample*). With the ``natural`` FFDNet prior there is no sampler, so the posterior
      covariance is the Gaussian approximation in the gradient domain
      (:func:`_posterior_power`, scaled by 0.5 after tuning). Why: the plug-in M-step is
      biased towards the delta kernel -- the posterior mean lacks exactly the high frequencies the
      blur removed, and the kernel that maps it back onto ``y`` is too sharp (Levin et al.'s
      analysis of MAP-x,k); the covariance term restores that missing power and keeps the true
      kernel a fixed point (measured: started at the true kernel, plug-in EM drifts to relative
      errors 0.6-1.8, the expected one stays at 0.13-0.4). Shock filtering the estimate (Cho & Lee
      2009) over-sharpened and was dropped.
    * After each M-step the kernel is moved by whole pixels so that its centre of mass is at the
      support's centre, and the image the opposite way (``k (*) x`` is unchanged).
    * **Boundaries**: ``y`` is extended by one kernel size on each side into an image smooth across
      the periodic wrap (reflect padding blended into a circular blur of itself, an edge taper), so
      the circular closed-form prox is usable for circular and non-periodic measurements alike; the
      M-step only sees ``y``'s own region shrunk by half a kernel (a raised-cosine window).

    Parameters
    ----------
    y : Tensor
        ``(B, C, H, W)`` blurred, noisy measurement (one kernel shared by the batch and channels).
    size : int or (int, int)
        Kernel support ``(h, w)`` (at least the blur's extent).
    prior : Prior or str
        The denoiser prior (e.g. ``"natural"``) or anything :func:`~pnpdiff.priors.load_prior` takes.
    sigma_y : float
        Noise level of ``y`` in [0, 1] units.
    scales : int, optional
        Number of scales (default: kernel side 5 at the coarsest, ratio ``sqrt(2)``).
    iters : int, optional
        EM iterations per scale (default 6).
    generator : torch.Generator, optional
        Unused (the scheme is deterministic); accepted for a uniform interface.
    progress : bool
        Unused for now.
    k_init : Tensor, optional
        Starting kernel (resampled to the coarsest scale's support).
    callback : callable, optional
        ``callback(entry)`` with each history entry.

    Returns
    -------
    BlindResult

    Raises
    ------
    ShapeError, ValueRangeError, UnknownNameError
        Wrong shapes, a kernel larger than ``y``, bad values, an unknown prior.
    """
    from pnpdiff.operators import Blur
    from pnpdiff.priors import load_prior

    y = _check_images(y, "y")
    h, w = _check_size(size)
    H, W = y.shape[-2:]
    if h > H or w > W:
        raise ShapeError(f"the kernel support {(h, w)} is larger than y {(H, W)}; use a smaller size")
    sigma_y = checks.real(sigma_y, "sigma_y", minimum=0.0, maximum=checks.MAX_SIGMA_Y)
    o = _OPTS
    if scales is not None:
        scales = checks.int_(scales, "scales", minimum=1, maximum=32)
    if iters is not None:
        iters = checks.int_(iters, "iters", minimum=1, maximum=checks.MAX_STEPS)
    progress = checks.bool_(progress, "progress")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueRangeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    if callback is not None and not callable(callback):
        raise ValueRangeError(f"callback must be callable or None, got {type(callback).__name__}")
    if k_init is not None:
        if not torch.is_tensor(k_init) or k_init.ndim != 2 or not k_init.is_floating_point():
            got = tuple(k_init.shape) if torch.is_tensor(k_init) else type(k_init).__name__
            raise ShapeError(f"k_init must be a 2-D floating-point (h, w) kernel, got {got}")
        if not bool(torch.isfinite(k_init).all()) or float(k_init.min()) < 0 or float(k_init.sum()) <= 0:
            raise ValueRangeError("k_init must be finite, non-negative and have a positive sum")
    if not hasattr(prior, "denoise"):
        prior = load_prior(prior)
    n_scales = scales if scales is not None else max(
        1, math.ceil(math.log(max(h, w) / o["coarsest"]) / math.log(o["ratio"])) + 1)
    n_iter = iters if iters is not None else o["iters"]
    factors = [o["ratio"] ** -(n_scales - 1 - i) for i in range(n_scales)]
    ph, pw = h, w
    yp = _taper_pad(y, (ph, pw))
    Hp, Wp = yp.shape[-2:]
    calls = 0
    history: list[dict[str, Any]] = []
    x = None
    k = None
    dtype = y.dtype
    for si, f in enumerate(factors):
        last = si == n_scales - 1
        hs, ws = (h, w) if last else (min(h, _odd(f * h)), min(w, _odd(f * w)))
        if last:
            ys = yp
        else:
            ys = F.interpolate(yp, size=(max(hs, round(Hp * f)), max(ws, round(Wp * f))), mode="bilinear",
                               antialias=True, align_corners=False)
        Hs, Ws = ys.shape[-2:]
        if k is None:
            if k_init is not None:
                k = _resize_kernel(k_init.detach().to("cpu", torch.float64), (hs, ws))
            else:
                k = torch.zeros(hs, ws, dtype=torch.float64)
                k[hs // 2, ws // 2] = 1.0
        else:
            k = _resize_kernel(k.cpu(), (hs, ws))
        x = ys.clone() if x is None else F.interpolate(x, size=(Hs, Ws), mode="bilinear", align_corners=False)
        sy = max(sigma_y * (f if not last else 1.0), 1e-3)
        # M-step window: y's own region at this scale, shrunk by half a kernel, tapered over a kernel
        r0, c0 = round(ph * Hs / Hp) + hs // 2, round(pw * Ws / Wp) + ws // 2
        inner = (r0, Hs - r0, c0, Ws - c0)
        win = _window((Hs, Ws), inner, max(hs, ws), ys)
        for _ in range(n_iter):
            op = Blur(k.to(dtype), boundary="circular")
            lo = max(o["sigma_lo"], sy)
            n_in = o["inner"]
            for j in range(n_in):
                sig = o["sigma_hi"] * (lo / o["sigma_hi"]) ** (j / max(1, n_in - 1))
                z = op.prox(x, ys, o["lam"] * sy**2 / sig**2)
                x = prior.denoise(z, sig)
                calls += 1
            xm, ym = win * x, win * ys
            extra = None
            if o["var"] > 0:
                extra = o["var"] * _posterior_power(xm, k, sy, float((win**2).sum()))
            M, b, _ = normal_equations(xm, ym, (hs, ws), True, extra)
            l2 = o["l2"] * float(torch.diagonal(M).mean())
            k_new = _solve_kernel(M, b, (hs, ws), l2, 0.0, True, o["mstep_iters"], k.to(M.device).reshape(-1))
            k_new, shift = _recentre(k_new.cpu())
            if shift != (0, 0):  # k (*) x is unchanged when k moves by d and x by -d
                x = torch.roll(x, (-shift[0], -shift[1]), dims=(-2, -1))
            change = float((k_new - k).norm() / k.norm())
            k = k_new
            res = float(((Blur(k.to(dtype))(x) - ys) * win).norm() / (ys * win).norm())
            entry = {"scale": si, "factor": f, "size": (hs, ws), "kernel_change": change, "residual": res}
            history.append(entry)
            if callback is not None:
                callback(entry)
    assert x is not None and k is not None
    x = x[..., ph:ph + H, pw:pw + W]
    return BlindResult(x=x, kernel=k.to(torch.float64), history=history, denoiser_calls=calls)
