"""Small exact operators: :class:`Identity` (denoising), :class:`Colorize` (RGB -> grey) and
:class:`Matrix` (a dense matrix on flattened inputs).

All three have exact closed forms for every method of the :class:`LinearOperator` contract,
including the spectral (SVD) view used by DDRM/DDNM-type solvers.

References
----------
B. Kawar, M. Elad, S. Ermon and J. Song, "Denoising Diffusion Restoration Models",
NeurIPS 2022. https://arxiv.org/abs/2201.11793 -- the spectral view these operators expose.

Y. Wang, J. Yu and J. Zhang, "Zero-Shot Image Restoration Using Denoising Diffusion
Null-Space Model", ICLR 2023. https://arxiv.org/abs/2212.00490 -- colourisation as a per-pixel rank-1 operator.

ITU-R Recommendation BT.601, "Studio encoding parameters of digital television for standard 4:3
and wide-screen 16:9 aspect ratios", luma weights (0.299, 0.587, 0.114).
https://www.itu.int/rec/R-REC-BT.601
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from pnpdiff.errors import ShapeError

from . import _checks
from .base import DiagonalOperator, LinearOperator, _batch_fits, _check_prox_pair, _per_sample, as_shape

__all__ = ["Identity", "Colorize", "Matrix"]


class Identity(DiagonalOperator):
    """The identity ``A = I`` (denoising: ``y = x + n``).

    Every method is exact: ``adjoint``, ``gram`` and ``pinv`` are the identity,
    ``prox(z, y, rho) = (y + rho z) / (1 + rho)``, and the spectral view has ``U = V = I`` and unit
    singular values (a scalar ``1``, broadcastable to any input).

    Parameters
    ----------
    cg_tol, cg_max_iter : float, int
        Accepted for a uniform interface (see :class:`LinearOperator`); unused, as nothing is
        iterative.
    """

    task: ClassVar[str] = "denoise"
    closed_form_prox = True

    def forward(self, x: Tensor) -> Tensor:
        """Return ``x``."""
        return x

    def adjoint(self, y: Tensor) -> Tensor:
        """Return ``y``."""
        return y

    def gram(self, x: Tensor) -> Tensor:
        """Return ``x``."""
        return x

    def pinv(self, y: Tensor) -> Tensor:
        """Return ``y``."""
        return y

    def prox(self, z: Tensor, y: Tensor, rho: float | Tensor) -> Tensor:
        """``(y + rho z) / (1 + rho)``.

        Parameters
        ----------
        z : Tensor
            Point the solution is pulled towards, shape of the input of ``A``.
        y : Tensor
            Measurement, shape of the output of ``A``.
        rho : float or Tensor
            Positive weight; a scalar or a ``(B,)`` tensor (one per batch element).

        Returns
        -------
        Tensor
            The minimiser, shape of ``z``.
        """
        if torch.is_tensor(z) and torch.is_tensor(y):
            _check_prox_pair(self, z, y, z.shape)
        r = _per_sample(rho, z)
        return (y + r * z) / (1 + r)

    def singular_values(self, shape: Sequence[int] | Tensor | None = None) -> Tensor:
        """A scalar one (broadcastable to any input).

        Parameters
        ----------
        shape : sequence of int or Tensor, optional
            The input's shape (or an input tensor, whose device and dtype are then used too).
            Operators without a fixed input size (e.g. :class:`~pnpdiff.operators.Downsample`)
            need it; the others ignore it. Solvers should pass ``x`` (or ``x.shape``).

        Returns
        -------
        Tensor
            Non-negative singular values ``s``, broadcastable to the input's shape, so that
            ``A x = U(s * Vt(x))``.
        """
        if torch.is_tensor(shape):
            return torch.ones((), device=shape.device, dtype=shape.dtype)
        return torch.ones(())


def _colorize_weights(weights: Any) -> Tensor:
    """``weights`` of :class:`Colorize` as a 1-D float64 CPU tensor (one weight per channel)."""
    what = "a sequence of channel weights (one real number per channel, e.g. (0.299, 0.587, 0.114))"
    if torch.is_tensor(weights) or isinstance(weights, np.ndarray):
        t = torch.as_tensor(weights)
        if t.dtype == torch.bool or t.is_complex():
            raise _checks.OperatorRangeError(f"weights must be {what}, got {_checks.show(weights)}")
    elif isinstance(weights, (list, tuple)) and all(_checks.is_number(v) for v in weights):
        t = torch.as_tensor(weights, dtype=torch.float64)
    else:
        raise _checks.OperatorRangeError(f"weights must be {what}, got {_checks.show(weights)}")
    if t.ndim == 0 or t.numel() == 0 or sum(d > 1 for d in t.shape) > 1:
        raise _checks.OperatorShapeError(
            f"weights must be {what}, got {_checks.show(weights)} of shape {tuple(t.shape)}"
        )
    w = t.to(torch.float64).flatten().cpu()
    if not torch.isfinite(w).all() or float(w.norm()) == 0:
        raise _checks.OperatorRangeError(f"weights must be finite and not all zero, got {_checks.show(weights)}")
    return w


class Colorize(LinearOperator):
    r"""Colour to grey, ``y = sum_c w_c x_c``: ``(B, C, H, W) -> (B, 1, H, W)``.

    The default weights are ITU-R BT.601 luma, ``(0.299, 0.587, 0.114)`` (ITU-R BT.601), the
    colourisation operator of DDNM (Wang et al., ICLR 2023). deepinv's ``Decolorize()`` approximates the same
    weights as ``0.66851 * (0.4472, 0.8781, 0.1706)`` = ``(0.29896, 0.58702, 0.11405)`` (they
    differ by at most ``5e-5``); ``Colorize(weights=deepinv_srf)`` reproduces it exactly.

    Everything is exact: the operator is a ``1 x C`` matrix ``w^T`` applied at each pixel, so
    ``A A^T = ||w||^2 I``; ``pinv(y) = w y / ||w||^2``; ``prox`` follows from Sherman--Morrison,
    ``x = z + w (y - w^T z) / (||w||^2 + rho)``; the spectral view uses a fixed orthogonal
    ``C x C`` matrix ``V`` whose first row is ``w / ||w||`` (singular values ``(||w||, 0, ..., 0)``
    along the channel axis, ``U = 1``).

    Parameters
    ----------
    weights : sequence of float
        Channel weights ``w`` (length ``C``); default BT.601 for RGB.

    References
    ----------
    Y. Wang, J. Yu and J. Zhang, "Zero-Shot Image Restoration Using Denoising Diffusion
    Null-Space Model", ICLR 2023. https://arxiv.org/abs/2212.00490
    """

    task: ClassVar[str] = "colorize"
    closed_form_prox = True
    has_svd = True

    @classmethod
    def x_shape_for(cls, y_shape: Sequence[int], **params: Any) -> tuple[int, ...]:
        """``(..., 3, H, W)`` for a grey ``y_shape = (..., 1, H, W)`` (the default RGB weights;
        an instance's :meth:`x_shape` uses its own number of channels)."""
        shape = super().x_shape_for(y_shape)
        if as_shape(shape) is None:
            return shape
        return (*shape[:-3], 3, *shape[-2:])

    def x_shape(self, y_shape: Sequence[int]) -> tuple[int, ...]:
        """``(..., C, H, W)``, ``C`` the number of weights."""
        shape = as_shape(y_shape)
        if shape is None:
            return super().x_shape(y_shape)
        return (*shape[:-3], self.channels, *shape[-2:])

    def __init__(
        self,
        weights: Sequence[float] | Tensor = (0.299, 0.587, 0.114),
        cg_tol: float = 1e-6,
        cg_max_iter: int = 200,
    ) -> None:
        super().__init__(cg_tol=cg_tol, cg_max_iter=cg_max_iter)
        w = _colorize_weights(weights)
        self.channels = w.numel()
        self._w = w
        vh = torch.linalg.svd(w[None, :], full_matrices=True)[2]  # (C, C), first row = +-w/|w|
        if float(vh[0] @ w) < 0:
            vh = torch.cat([-vh[:1], vh[1:]])
        self._vh = vh
        self._norm2 = float(w @ w)
        self._cache: dict = {}

    def extra_repr(self) -> str:
        return f"weights={tuple(round(float(v), 6) for v in self._w)}"

    def _get(self, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        key = (device, dtype)
        out = self._cache.get(key)
        if out is None:
            out = (self._w.to(device, dtype).view(1, -1, 1, 1), self._vh.to(device, dtype))
            self._cache[key] = out
        return out

    def _check_rgb(self, x: Tensor, name: str = "x") -> None:
        self._check_image(x, name)
        if x.shape[1] != self.channels:
            raise ShapeError(
                f"Colorize expects {name} with {self.channels} channels, got shape {tuple(x.shape)}"
            )

    def _check_grey(self, y: Tensor) -> None:
        self._check_image(y, "y")
        if y.shape[1] != 1:
            raise ShapeError(f"Colorize expects a grey measurement (B, 1, H, W), got {tuple(y.shape)}")

    def forward(self, x: Tensor) -> Tensor:
        """``sum_c w_c x_c`` (keeps a channel axis of size one).

        Parameters
        ----------
        x : Tensor
            Input image(s), shape ``(B, C, H, W)``.

        Returns
        -------
        Tensor
            ``A x``, the measurement's shape (same dtype and device as ``x``).
        """
        self._check_rgb(x)
        w, _ = self._get(x.device, x.dtype)
        return (x * w).sum(1, keepdim=True)

    def adjoint(self, y: Tensor) -> Tensor:
        """``w y``: ``(B, 1, H, W) -> (B, C, H, W)``."""
        self._check_grey(y)
        w, _ = self._get(y.device, y.dtype)
        return y * w

    def pinv(self, y: Tensor) -> Tensor:
        """``w y / ||w||^2`` (exact)."""
        return self.adjoint(y) / self._norm2

    def prox(self, z: Tensor, y: Tensor, rho: float | Tensor) -> Tensor:
        """Sherman--Morrison: ``z + w (y - w^T z) / (||w||^2 + rho)`` (exact).

        Parameters
        ----------
        z : Tensor
            Point the solution is pulled towards, shape of the input of ``A``.
        y : Tensor
            Measurement, shape of the output of ``A``.
        rho : float or Tensor
            Positive weight; a scalar or a ``(B,)`` tensor (one per batch element).

        Returns
        -------
        Tensor
            The minimiser, shape of ``z``.
        """
        self._check_rgb(z, "z")
        self._check_grey(y)
        _check_prox_pair(self, z, y, (z.shape[0], 1, *z.shape[2:]))
        r = _per_sample(rho, z)
        return z + self.adjoint(y - self.forward(z)) / (self._norm2 + r)

    def singular_values(self, shape: Sequence[int] | Tensor | None = None) -> Tensor:
        """``(||w||, 0, ..., 0)`` along the channel axis, shape ``(1, C, 1, 1)``.

        Parameters
        ----------
        shape : sequence of int or Tensor, optional
            The input's shape (or an input tensor, whose device and dtype are then used too).
            Operators without a fixed input size (e.g. :class:`~pnpdiff.operators.Downsample`)
            need it; the others ignore it. Solvers should pass ``x`` (or ``x.shape``).

        Returns
        -------
        Tensor
            Non-negative singular values ``s``, broadcastable to the input's shape, so that
            ``A x = U(s * Vt(x))``.
        """
        sv = torch.zeros(1, self.channels, 1, 1, dtype=torch.float64)
        sv[0, 0] = math.sqrt(self._norm2)
        if torch.is_tensor(shape):
            return sv.to(shape.device, shape.dtype)
        return sv.to(torch.get_default_dtype())

    def Vt(self, x: Tensor) -> Tensor:  # noqa: N802
        """Channel coefficients ``V^T x`` (the first one is ``w^T x / ||w||``).

        Parameters
        ----------
        x : Tensor
            Input image(s), shape ``(B, C, H, W)``.

        Returns
        -------
        Tensor
            ``V^T x``, shape of ``x``.
        """
        self._check_rgb(x)
        _, vh = self._get(x.device, x.dtype)
        return torch.einsum("dc,bchw->bdhw", vh, x)

    def V(self, c: Tensor) -> Tensor:  # noqa: N802
        self._check_rgb(c, "c")
        _, vh = self._get(c.device, c.dtype)
        return torch.einsum("dc,bdhw->bchw", vh, c)

    def Ut(self, y: Tensor) -> Tensor:  # noqa: N802
        """``y`` zero-padded to ``C`` channels.

        Parameters
        ----------
        y : Tensor
            Measurement(s), shape of the output of :meth:`forward`.

        Returns
        -------
        Tensor
            ``U^T y`` in the input layout (zeros where ``s = 0``).
        """
        self._check_grey(y)
        return torch.nn.functional.pad(y, (0, 0, 0, 0, 0, self.channels - 1))

    def U(self, c: Tensor) -> Tensor:  # noqa: N802
        """The first channel of ``c``.

        Parameters
        ----------
        c : Tensor
            Coefficients in the left singular basis, the input's layout.

        Returns
        -------
        Tensor
            ``U c``, the measurement's shape.
        """
        self._check_rgb(c, "c")
        return c[:, :1]


class Matrix(LinearOperator):
    r"""A dense matrix ``M`` of shape ``(m, n)`` acting on flattened inputs: ``(B, n) -> (B, m)``.

    Inputs may also be ``(B, ...)`` tensors with ``n`` entries per sample (e.g. ``(B, C, H, W)``);
    they are flattened, and :meth:`adjoint`, :meth:`pinv`, :meth:`prox` and :meth:`V` return the
    ``(B, n)`` layout unless ``input_shape`` is given (then ``(B, *input_shape)``).

    Everything is exact, through one ``torch.linalg.svd`` of ``M`` computed in float64 on first
    use and cached per device/dtype: ``adjoint`` is ``y M``; ``pinv`` is
    ``V diag(1/s) U^T y`` with singular values below ``rcond * s_max`` treated as zero
    (default ``rcond = max(m, n) * eps`` of ``M``'s dtype, as NumPy's ``pinv``/``lstsq``);
    ``prox(z, y, rho) = z + V_k diag(s / (s^2 + rho)) U_k^T (y - M z)``. The spectral view lives
    in the ``(B, n)`` layout: ``Vt(x) = V^T x`` (full ``n x n`` ``V``), ``singular_values()`` has
    ``min(m, n)`` singular values followed by zeros, ``Ut`` pads (or, for ``m > n``, truncates)
    ``U^T y`` to length ``n``, ``U`` uses the first ``min(m, n)`` coefficients. This is what the
    exact Gaussian(-mixture) posterior tests of the solvers use (e.g. ``d = 8``, ``m = 2``).

    Parameters
    ----------
    matrix : Tensor or array-like
        The ``(m, n)`` matrix; its dtype is kept (pass float64 for float64 problems).
    input_shape : sequence of int, optional
        Per-sample input shape (product ``n``) that ``adjoint``/``pinv``/``prox``/``V`` return.
    svd_threshold : float
        Singular values below ``svd_threshold * s_max`` are zeroed in the spectral view.
    rcond : float, optional
        Relative cut-off of :meth:`pinv`.
    """

    #: the measurement is a vector ``M x``, whose entries have no image range
    y_range: ClassVar[tuple[float, float] | None] = None
    closed_form_prox = True
    has_svd = True

    def x_shape(self, y_shape: Sequence[int]) -> tuple[int, ...]:
        """``(B, n)``, or ``(B, *input_shape)`` when given, for ``y_shape = (B, m)``."""
        shape = as_shape(y_shape)
        if shape is None or not shape:
            return super().x_shape(y_shape)
        return (shape[0], *(self.input_shape or (self.n,)))

    def __init__(
        self,
        matrix: Tensor | np.ndarray | Sequence[Sequence[float]],
        input_shape: Sequence[int] | None = None,
        svd_threshold: float = 0.0,
        rcond: float | None = None,
        cg_tol: float = 1e-6,
        cg_max_iter: int = 200,
    ) -> None:
        super().__init__(cg_tol=cg_tol, cg_max_iter=cg_max_iter)
        mat = _checks.as_real_tensor(matrix, "matrix", ndims=(2,), shapes="(m, n)")
        if not mat.is_floating_point():
            mat = mat.to(torch.get_default_dtype())
        if not torch.isfinite(mat).all():
            raise _checks.OperatorRangeError(
                f"matrix must be finite, got a matrix of shape {tuple(mat.shape)} with NaN or infinite values"
            )
        _checks.real(svd_threshold, "svd_threshold", minimum=0.0, below=1.0)
        if rcond is not None:
            _checks.real(rcond, "rcond", minimum=0.0, below=1.0)
        self.register_buffer("matrix", mat.detach().clone())
        self.m, self.n = mat.shape
        if input_shape is not None:
            input_shape = _checks.shape_tuple(
                input_shape, "input_shape", what="None or a sequence of positive integers (the per-sample input shape)"
            )
            if math.prod(input_shape) != self.n:
                raise _checks.OperatorShapeError(
                    f"input_shape {input_shape} has {math.prod(input_shape)} entries but the matrix "
                    f"has n = {self.n} columns"
                )
        self.input_shape = input_shape
        self.svd_threshold = float(svd_threshold)
        self.rcond = rcond
        self._svd64: tuple[Tensor, Tensor, Tensor] | None = None
        self._cache: dict = {}

    def extra_repr(self) -> str:
        return f"m={self.m}, n={self.n}, dtype={self.matrix.dtype}"

    # -- helpers -------------------------------------------------------------------------------
    @staticmethod
    def _check_float(x: Tensor, name: str) -> None:
        if not x.is_floating_point():
            raise ShapeError(
                f"{name} must be a floating-point tensor, got dtype {x.dtype} (shape {tuple(x.shape)}); "
                f"convert it, e.g. {name}.double()"
            )

    def _flat(self, x: Tensor, name: str = "x") -> Tensor:
        if not torch.is_tensor(x):
            raise ShapeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        self._check_float(x, name)
        if x.ndim < 2 or math.prod(x.shape[1:]) != self.n:
            raise ShapeError(
                f"Matrix({self.m}x{self.n}) expects {name} of shape (B, {self.n}) or (B, ...) with "
                f"{self.n} entries per sample, got {tuple(x.shape)}"
            )
        return x.reshape(x.shape[0], self.n)

    def _meas(self, y: Tensor) -> Tensor:
        if not torch.is_tensor(y):
            raise ShapeError(f"y must be a torch.Tensor, got {type(y).__name__}")
        self._check_float(y, "y")
        if y.ndim < 2 or math.prod(y.shape[1:]) != self.m:
            raise ShapeError(
                f"Matrix({self.m}x{self.n}) expects a measurement of shape (B, {self.m}), got {tuple(y.shape)}"
            )
        return y.reshape(y.shape[0], self.m)

    def _out(self, x: Tensor) -> Tensor:
        return x if self.input_shape is None else x.reshape(x.shape[0], *self.input_shape)

    def _mat(self, device: torch.device, dtype: torch.dtype) -> Tensor:
        mat = self.matrix
        if mat.device == device and mat.dtype == dtype:
            return mat
        return mat.to(device, dtype)

    def _svd(self, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(U, s, Vh, s_full)`` with ``U (m, m)``, ``s (k,)``, ``Vh (n, n)``, ``s_full (n,)``."""
        key = (device, dtype)
        out = self._cache.get(key)
        if out is None:
            if self._svd64 is None:
                self._svd64 = torch.linalg.svd(self.matrix.detach().cpu().double(), full_matrices=True)
            u, s, vh = self._svd64
            full = torch.zeros(self.n, dtype=torch.float64)
            full[: s.numel()] = s
            if self.svd_threshold > 0 and s.numel():
                full = torch.where(full >= self.svd_threshold * s.max(), full, 0.0)
            out = (u.to(device, dtype), s.to(device, dtype), vh.to(device, dtype), full.to(device, dtype))
            self._cache[key] = out
        return out

    # -- A and A^T -----------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        """``x M^T``: ``(B, n) -> (B, m)``.

        Parameters
        ----------
        x : Tensor
            Input image(s), shape ``(B, n)``.

        Returns
        -------
        Tensor
            ``A x``, the measurement's shape (same dtype and device as ``x``).
        """
        v = self._flat(x)
        return v @ self._mat(v.device, v.dtype).T

    def adjoint(self, y: Tensor) -> Tensor:
        """``y M``: ``(B, m) -> (B, n)`` (or ``(B, *input_shape)``)."""
        v = self._meas(y)
        return self._out(v @ self._mat(v.device, v.dtype))

    def gram(self, x: Tensor) -> Tensor:
        """``A^T A x``.

        Parameters
        ----------
        x : Tensor
            Input image(s), shape ``(B, n)``.

        Returns
        -------
        Tensor
            ``A^T A x``, shape of ``x``.
        """
        return self.adjoint(self.forward(x))

    # -- closed forms --------------------------------------------------------------------------
    def pinv(self, y: Tensor) -> Tensor:
        """``A^+ y = V diag(1/s) U^T y`` (exact, truncated at ``rcond * s_max``)."""
        v = self._meas(y)
        u, s, vh, _ = self._svd(v.device, v.dtype)
        k = s.numel()
        rcond = self.rcond if self.rcond is not None else max(self.m, self.n) * torch.finfo(self.matrix.dtype).eps
        inv = torch.where(s > rcond * s.max(), 1 / s.clamp_min(torch.finfo(s.dtype).tiny), 0.0)
        return self._out(((v @ u[:, :k]) * inv) @ vh[:k])

    def prox(self, z: Tensor, y: Tensor, rho: float | Tensor) -> Tensor:
        """``argmin_x ||M x - y||^2 + rho ||x - z||^2`` through the SVD (exact).

        Parameters
        ----------
        z : Tensor
            Point the solution is pulled towards, shape of the input of ``A``.
        y : Tensor
            Measurement, shape of the output of ``A``.
        rho : float or Tensor
            Positive weight; a scalar or a ``(B,)`` tensor (one per batch element).

        Returns
        -------
        Tensor
            The minimiser, shape of ``z``.
        """
        zf = self._flat(z, "z")
        v = self._meas(y)
        if not _batch_fits(v.shape, (zf.shape[0], self.m)):
            raise ShapeError(
                f"Matrix.prox: the measurement y of shape {tuple(y.shape)} does not fit z of shape {tuple(z.shape)}: "
                f"y must have shape ({zf.shape[0]}, {self.m}) (batch sizes may differ only where one of them is 1)"
            )
        u, s, vh, _ = self._svd(zf.device, zf.dtype)
        k = s.numel()
        r = _per_sample(rho, v)
        res = v - zf @ self._mat(zf.device, zf.dtype).T
        c = (res @ u[:, :k]) * (s / (s * s + r))
        return self._out(zf + c @ vh[:k])

    # -- spectral view (B, n) layout ------------------------------------------------------------
    def singular_values(self, shape: Sequence[int] | Tensor | None = None) -> Tensor:
        """The ``min(m, n)`` singular values (descending) followed by zeros: shape ``(n,)``.

        Parameters
        ----------
        shape : sequence of int or Tensor, optional
            The input's shape (or an input tensor, whose device and dtype are then used too).
            Operators without a fixed input size (e.g. :class:`~pnpdiff.operators.Downsample`)
            need it; the others ignore it. Solvers should pass ``x`` (or ``x.shape``).

        Returns
        -------
        Tensor
            Non-negative singular values ``s``, broadcastable to the input's shape, so that
            ``A x = U(s * Vt(x))``.
        """
        if torch.is_tensor(shape):
            return self._svd(shape.device, shape.dtype)[3]
        return self._svd(self.matrix.device, self.matrix.dtype)[3]

    def Vt(self, x: Tensor) -> Tensor:  # noqa: N802
        """``V^T x`` in the ``(B, n)`` layout.

        Parameters
        ----------
        x : Tensor
            Input image(s), shape ``(B, n)``.

        Returns
        -------
        Tensor
            ``V^T x``, shape of ``x``.
        """
        v = self._flat(x)
        return v @ self._svd(v.device, v.dtype)[2].T

    def V(self, c: Tensor) -> Tensor:  # noqa: N802
        """``V c`` (inverse of :meth:`Vt`).

        Parameters
        ----------
        c : Tensor
            Coefficients in the right singular basis, the input's shape.

        Returns
        -------
        Tensor
            ``V c``, the input's shape.
        """
        v = self._flat(c, "c")
        return self._out(v @ self._svd(v.device, v.dtype)[2])

    def Ut(self, y: Tensor) -> Tensor:  # noqa: N802
        """``U^T y`` zero-padded (or truncated, if ``m > n``) to length ``n``.

        Parameters
        ----------
        y : Tensor
            Measurement(s), shape of the output of :meth:`forward`.

        Returns
        -------
        Tensor
            ``U^T y`` in the input layout (zeros where ``s = 0``).
        """
        v = self._meas(y)
        c = v @ self._svd(v.device, v.dtype)[0]
        if self.m >= self.n:
            return c[:, : self.n]
        return torch.nn.functional.pad(c, (0, self.n - self.m))

    def U(self, c: Tensor) -> Tensor:  # noqa: N802
        """``U c`` using the first ``min(m, n)`` coefficients: ``(B, n) -> (B, m)``.

        Parameters
        ----------
        c : Tensor
            Coefficients in the left singular basis, the input's layout.

        Returns
        -------
        Tensor
            ``U c``, the measurement's shape.
        """
        v = self._flat(c, "c")
        u = self._svd(v.device, v.dtype)[0]
        k = min(self.m, self.n)
        return v[:, :k] @ u[:, :k].T
