"""Nonlinear forward models: Fourier phase retrieval and a saturating camera.

These are differentiable :class:`torch.nn.Module` s with a ``forward`` only -- *not*
:class:`~pnpdiff.operators.LinearOperator` s: they have no adjoint, pseudo-inverse or proximal
map. They are meant for the solvers that need nothing but ``A(x)`` and vector-Jacobian products
through it (``method="dps"`` and ``method="reddiff"``). Like the linear operators they are batched
(``(B, C, H, W)`` images, every image and channel handled alike), device- and dtype-agnostic
(half precisions are computed in float32 and returned in the input's dtype) and free of Python
loops over pixels or images.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from pnpdiff.errors import ShapeError

from . import _checks
from .base import ImageModule, LinearOperator, as_shape
from .blur import GaussianBlur

__all__ = ["PhaseRetrieval", "SaturatedBlur"]

#: largest ``oversample`` accepted: a padded side of ``(1 + 16 / 4) = 5`` times the image's
_MAX_OVERSAMPLE = 16.0


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    """Real dtype the FFTs run in (half precisions are promoted to float32)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _pad(oversample: float, n: int) -> int:
    """Zero rows (or columns) :class:`PhaseRetrieval` adds on each side of a side of ``n`` pixels."""
    return int((oversample / 8.0) * n)


def _unpadded_side(oversample: float, m: int) -> int:
    """The image side ``n`` whose padded side ``n + 2 int(oversample / 8 n)`` is ``m``; when no
    side gives ``m`` exactly, the largest one whose padded side is below ``m`` (at least 1).

    The padded side grows by at least 1 with each pixel of ``n`` and is within 2 of
    ``n (1 + oversample / 4)``, so the answer is one of a few sides around ``m / (1 + oversample / 4)``.
    """
    guess = round(m / (1.0 + oversample / 4.0))
    best = 1
    for n in range(max(1, guess - 4), guess + 5):
        padded = n + 2 * _pad(oversample, n)
        if padded == m:
            return n
        if padded < m:
            best = n
    return best


def _oversample_or_none(value: Any) -> float | None:
    """``value`` as an ``oversample`` :class:`PhaseRetrieval` accepts, or ``None``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if 0.0 <= value <= _MAX_OVERSAMPLE else None


class PhaseRetrieval(ImageModule):
    r"""Fourier phase retrieval: the magnitude of the 2-D DFT of the zero-padded image, per channel.

    ``A(x) = |F(pad(x))|``, with ``F`` the orthonormal 2-D DFT (``norm="ortho"``, so that
    ``||A(x)|| = ||x||`` by Parseval and measurement noise is on the image's scale) and the zero
    frequency shifted to the centre, as in the DPS phase-retrieval experiment (Chung et al.,
    "Diffusion Posterior Sampling for General Noisy Inverse Problems", ICLR 2023; its
    ``PhaseRetrievalOperator`` takes the magnitude of a centred orthonormal FFT, which is this
    output exactly). DPS applies it to the image on its [-1, 1] scale; here it acts on the image
    as given, in [0, 1] (a different measurement of the same photo: its zero frequency dominates).

    Parameters
    ----------
    oversample : float
        Zero padding, in ``[0, 16]``. Each side of an ``H x W`` image gets
        ``p_h = int(oversample / 8 * H)`` zero rows (top and bottom) and
        ``p_w = int(oversample / 8 * W)`` zero columns (left and right). This is DPS's rule with
        the image size in place of the constant 256 the DPS code hard-codes, so at 256x256 the
        padding is DPS's (64 pixels per side for the default 2.0, a 384x384 spectrum). ``0`` is no
        padding (the measurement then has as many entries as the image).
    input_shape : sequence of int, optional
        The image size the operator is for, ``(H, W)`` or ``(C, H, W)`` (per sample): then
        :meth:`forward` refuses images of another size and :meth:`x_shape` returns it. Without it
        (default) any size is accepted, and the image size of a measurement is the one whose padded
        size it is (:meth:`x_shape_for`).

    Notes
    -----
    Shapes: ``(B, C, H, W)`` -> ``(B, C, H + 2 p_h, W + 2 p_w)`` (see :meth:`output_shape`), non-negative,
    zero frequency at index ``((H + 2 p_h) // 2, (W + 2 p_w) // 2)``. The values are *not* in
    [0, 1]: the zero frequency of an image with mean ``m`` is
    ``m H W / sqrt((H + 2 p_h)(W + 2 p_w))`` (about 77 for a 256x256 photo of mean 0.45).

    The magnitude is unchanged by a circular shift of the padded image, a change of sign and a
    180-degree rotation (the "twin image"), so the inverse problem has several exact solutions:
    a solver may return a shifted or rotated image. The padding (a known support) is what makes
    the problem well posed up to these ambiguities. The gradient of ``|z|`` at a frequency where
    ``z = 0`` is taken as zero (PyTorch's convention).

    References
    ----------
    H. Chung, J. Kim, M. T. Mccann, M. L. Klasky and J. C. Ye, "Diffusion Posterior Sampling
    for General Noisy Inverse Problems", ICLR 2023. https://arxiv.org/abs/2209.14687
    """

    task: ClassVar[str] = "nonlinear"
    #: the measurement is a Fourier magnitude (its zero frequency far above 1), not an image
    y_range: ClassVar[tuple[float, float] | None] = None

    def __init__(self, oversample: float = 2.0, input_shape: Sequence[int] | None = None) -> None:
        super().__init__()
        self.oversample = _checks.real(oversample, "oversample", minimum=0.0, maximum=_MAX_OVERSAMPLE)
        if input_shape is not None:
            input_shape = _checks.shape_tuple(
                input_shape, "input_shape", lengths=(2, 3),
                what="None or the image size (H, W) or (C, H, W) of positive integers",
            )
        self.input_shape = input_shape

    def extra_repr(self) -> str:
        size = "" if self.input_shape is None else f", input_shape={self.input_shape}"
        return f"oversample={self.oversample:g}{size}"

    @classmethod
    def x_shape_for(cls, y_shape: Sequence[int], **params: Any) -> tuple[int, ...]:
        """``(..., H, W)`` whose padded spectrum is ``y_shape = (..., H + 2 p_h, W + 2 p_w)``
        (``input_shape``, when given, wins); an unreadable ``oversample`` leaves the shape as it is."""
        shape = super().x_shape_for(y_shape)
        given = as_shape(params.get("input_shape"))
        if as_shape(shape) is None:
            return shape
        if given is not None and len(given) in (2, 3) and all(v > 0 for v in given):
            return (*shape[: max(len(shape) - len(given), 0)], *given)
        oversample = _oversample_or_none(params.get("oversample", 2.0))
        if oversample is None or len(shape) < 2 or min(shape[-2:]) < 1:
            return shape
        return (*shape[:-2], _unpadded_side(oversample, shape[-2]), _unpadded_side(oversample, shape[-1]))

    def _shape_params(self) -> dict[str, Any]:
        return {"oversample": self.oversample}

    def padding(self, height: int, width: int) -> tuple[int, int]:
        """Zero rows and columns added on *each* side of an ``height x width`` image: ``(p_h, p_w)``.

        Parameters
        ----------
        height, width : int
            The image size.

        Returns
        -------
        tuple of int
            ``(p_h, p_w)`` = ``(int(oversample / 8 * height), int(oversample / 8 * width))``.
        """
        return _pad(self.oversample, height), _pad(self.oversample, width)

    def output_shape(self, shape: tuple[int, ...] | torch.Size) -> tuple[int, ...]:
        """Shape of ``A(x)`` for an input of shape ``shape`` (``(..., H, W)``).

        Parameters
        ----------
        shape : tuple of int or torch.Size
            The input's shape.

        Returns
        -------
        tuple of int
            ``(..., H + 2 p_h, W + 2 p_w)``.
        """
        *lead, h, w = tuple(shape)
        ph, pw = self.padding(h, w)
        return (*lead, h + 2 * ph, w + 2 * pw)

    def forward(self, x: Tensor) -> Tensor:
        """Apply ``A(x) = |F(pad(x))|`` (centred, orthonormal DFT magnitude).

        Parameters
        ----------
        x : Tensor
            Images, shape ``(B, C, H, W)``, any floating dtype.

        Returns
        -------
        Tensor
            Non-negative magnitudes, shape :meth:`output_shape` of ``x.shape``, dtype of ``x``.

        Raises
        ------
        ShapeError
            If ``x`` is not a non-empty floating-point ``(B, C, H, W)`` tensor, or not of the
            ``input_shape`` the operator was built for.
        """
        LinearOperator._check_image(x, "x")
        if self.input_shape is not None and tuple(x.shape[-len(self.input_shape):]) != self.input_shape:
            raise ShapeError(
                f"PhaseRetrieval was built for images of shape {self.input_shape} (input_shape), got x of shape "
                f"{tuple(x.shape)}; build it without input_shape to accept any size"
            )
        ph, pw = self.padding(*x.shape[-2:])
        padded = F.pad(x.to(_work_dtype(x.dtype)), (pw, pw, ph, ph))
        spectrum = torch.fft.fft2(padded, norm="ortho")
        return torch.fft.fftshift(spectrum.abs(), dim=(-2, -1)).to(x.dtype)


class SaturatedBlur(ImageModule):
    r"""Saturating camera: Gaussian blur, then the sensor response tanh(gain v) / tanh(gain).

    ``A(x) = s(k * x)`` with ``k * x`` the :class:`~pnpdiff.operators.GaussianBlur` of the image
    (optics first) and ``s(v) = tanh(gain * v) / tanh(gain)`` applied to every pixel (the sensor's
    tone curve). ``s`` maps [0, 1] onto [0, 1], is odd, increasing and invertible
    (:meth:`inverse_response`); its slope is ``gain / tanh(gain)`` at 0 and
    ``gain (1 - tanh(gain)^2) / tanh(gain)`` at 1 (``gain = 3``: 3.01 and 0.03), so highlights are
    compressed and their detail sinks into the measurement noise. This is the "tanh saturation +
    blur" nonlinear model used to test DPS, with the two stages in the order of a camera.

    Parameters
    ----------
    sigma : float
        Standard deviation of the Gaussian blur in pixels (positive).
    gain : float
        Steepness of the saturation (positive): small values approach the identity response
        (``gain -> 0``: ``s(v) -> v``), large ones a hard clip.
    kernel_size : int, optional
        Side of the blur kernel; default ``2 * ceil(3 * sigma) + 1``.
    boundary : {"circular", "reflect", "zeros"}
        Boundary condition of the blur (see :class:`~pnpdiff.operators.Blur`).

    Attributes
    ----------
    blur : GaussianBlur
        The linear stage (a submodule: ``.to(device)`` moves it too).

    Notes
    -----
    Shapes: ``(B, C, H, W)`` -> ``(B, C, H, W)``; values in [0, 1] for images in [0, 1].
    """

    task: ClassVar[str] = "nonlinear"
    #: a normalised Gaussian blur keeps [0, 1], and the response maps [0, 1] onto [0, 1]
    y_range: ClassVar[tuple[float, float] | None] = (0.0, 1.0)

    def __init__(
        self,
        sigma: float = 2.0,
        gain: float = 3.0,
        kernel_size: int | None = None,
        boundary: str = "circular",
    ) -> None:
        super().__init__()
        self.sigma = _checks.real(sigma, "sigma", positive=True)
        self.gain = _checks.real(gain, "gain", positive=True)
        if kernel_size is not None:
            kernel_size = _checks.integer(kernel_size, "kernel_size", minimum=1)
        self.kernel_size = kernel_size
        self.blur = GaussianBlur(self.sigma, kernel_size=kernel_size, boundary=boundary)
        self.boundary = self.blur.boundary
        self._tanh_gain = math.tanh(self.gain)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma:g}, gain={self.gain:g}"

    def response(self, v: Tensor) -> Tensor:
        """The sensor response ``s(v) = tanh(gain * v) / tanh(gain)``, element-wise.

        Parameters
        ----------
        v : Tensor
            Blurred intensities.

        Returns
        -------
        Tensor
            ``s(v)``, shape of ``v``.
        """
        return torch.tanh(self.gain * v) / self._tanh_gain

    def inverse_response(self, u: Tensor, eps: float = 1e-6) -> Tensor:
        """``s^{-1}(u) = atanh(tanh(gain) * u) / gain``, element-wise.

        ``s`` maps the real line onto ``(-1 / tanh(gain), 1 / tanh(gain))``; values of a noisy
        measurement outside that range have no preimage and are clipped to within ``eps`` (relative)
        of its ends before inverting.

        Parameters
        ----------
        u : Tensor
            Measured intensities.
        eps : float
            Relative margin of the clipping.

        Returns
        -------
        Tensor
            ``s^{-1}(u)``, shape of ``u``.
        """
        t = (u * self._tanh_gain).clamp(-(1 - eps), 1 - eps)
        return torch.atanh(t) / self.gain

    def forward(self, x: Tensor) -> Tensor:
        """Apply ``A(x) = s(k * x)``: Gaussian blur, then the sensor response.

        Parameters
        ----------
        x : Tensor
            Images, shape ``(B, C, H, W)``.

        Returns
        -------
        Tensor
            The saturated blurred images, shape of ``x``.
        """
        return self.response(self.blur(x))
