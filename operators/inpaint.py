"""Inpainting: pixel masking ``y = m * x``."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from pnpdiff.errors import ShapeError

from . import _checks
from .base import DiagonalOperator, _check_prox_pair, _per_sample

__all__ = ["Inpaint"]


class Inpaint(DiagonalOperator):
    r"""Masking operator ``y = m * x`` (``m = 1``: observed pixel, ``m = 0``: missing).

    Convention: the measurement keeps the input's shape, with zeros at the missing pixels (the
    convention of deepinv's ``Inpainting`` and of DPS/DiffPIR), rather than a vector of the observed
    values only.

    Parameters
    ----------
    mask : Tensor
        ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)`` (``C`` and ``B`` may be 1 and then broadcast),
        bool or float, with values 0 or 1 and at least one observed pixel (1) in every image of the
        batch. Generators: :mod:`pnpdiff.operators.masks`.
    soft : bool
        Accept soft weights in ``[0, 1]`` instead of a binary mask (the formulas below hold for any
        weights). Without it a mask with other values (an anti-aliased or JPEG mask, a grey image)
        is refused, naming a value found: threshold it first (``mask > 0.5``).
    cg_tol, cg_max_iter
        As for :class:`~pnpdiff.operators.LinearOperator`.

    Raises
    ------
    OperatorError
        If the mask is not a finite real tensor (a ``'meta'`` tensor has no values), has values
        outside ``[0, 1]`` (or other than 0 and 1 without ``soft``), or has no observed pixel.

    Notes
    -----
    Everything is an exact, element-wise closed form: ``forward`` ``m x``, ``adjoint`` ``m y``,
    ``gram`` ``m^2 x``, ``pinv`` ``y / m`` where ``m != 0`` and 0 elsewhere (``= m y`` for a
    binary mask), ``prox`` ``(m y + rho z) / (m^2 + rho)``, and the spectral view in the pixel
    basis: ``V = Vt = U = Ut = identity`` and ``s = m`` (zeros on the missing pixels).
    """

    task: ClassVar[str] = "inpaint"
    closed_form_prox = True

    def __init__(self, mask: Tensor, cg_tol: float = 1e-6, cg_max_iter: int = 200, soft: bool = False) -> None:
        super().__init__(cg_tol=cg_tol, cg_max_iter=cg_max_iter)
        soft = _checks.boolean(soft, "soft")
        mask = _checks.as_real_tensor(mask, "mask", ndims=(2, 3, 4), shapes="(H, W), (C, H, W) or (B, C, H, W)")
        if not mask.is_floating_point():
            mask = mask.to(torch.get_default_dtype())
        if not bool(torch.isfinite(mask).all()):
            raise _checks.OperatorRangeError(
                f"mask must be finite, got a mask of shape {tuple(mask.shape)} with NaN or infinite values"
            )
        if bool(((mask < 0) | (mask > 1)).any()):
            raise _checks.OperatorRangeError(
                f"mask values must lie in [0, 1] (1 = observed, 0 = missing), got values from "
                f"{float(mask.min()):g} to {float(mask.max()):g} (mask of shape {tuple(mask.shape)})"
            )
        other = (mask != 0) & (mask != 1)
        if not soft and bool(other.any()):
            found = float(mask[other].flatten()[0])
            raise _checks.OperatorRangeError(
                f"mask values must be 0 or 1 (1 = observed, 0 = missing), found {found:.6g} (mask of shape "
                f"{tuple(mask.shape)}, {int(other.sum())} such values); threshold it, e.g. mask > 0.5, or pass "
                "soft=True for weights in [0, 1]"
            )
        while mask.ndim < 4:
            mask = mask.unsqueeze(0)
        observed = (mask != 0).flatten(1).any(1)
        if not bool(observed.all()):
            which = "" if mask.shape[0] == 1 else f" in batch element {int((~observed).nonzero()[0])}"
            raise _checks.OperatorRangeError(
                f"mask has no observed pixel{which} (all {mask[0].numel()} values are 0; 1 = observed, 0 = missing): "
                "there is nothing to restore from; check the mask (white = observed in a mask image) or "
                "its p_missing / box_size"
            )
        self.register_buffer("mask", mask.detach().clone())
        self.binary = bool(((mask == 0) | (mask == 1)).all())
        self.soft = soft

    def extra_repr(self) -> str:
        frac = float(self.mask.float().mean())
        return f"mask={tuple(self.mask.shape)}, observed={frac:.3f}"

    def _shape_check(self, x: Tensor, name: str) -> None:
        self._check(x, name)

    def _check(self, x: Tensor, name: str) -> None:
        self._check_image(x, name)
        mb, mc, mh, mw = self.mask.shape
        b, c, h, w = x.shape
        if (mh, mw) != (h, w) or mc not in (1, c) or mb not in (1, b):
            raise ShapeError(
                f"mask of shape {tuple(self.mask.shape)} does not fit {name} of shape "
                f"{tuple(x.shape)}: the mask needs the same (H, W), and 1 or the same number "
                "of channels and of batch elements"
            )

    def _m(self, x: Tensor) -> Tensor:
        m = self.mask
        if m.dtype != x.dtype or m.device != x.device:  # skip Tensor.to's overhead when it matches
            m = m.to(device=x.device, dtype=x.dtype)
        return m

    def forward(self, x: Tensor) -> Tensor:
        """``m * x`` (missing pixels set to zero; same shape as ``x``).

        Parameters
        ----------
        x : Tensor
            Input image(s), shape ``(B, C, H, W)``.

        Returns
        -------
        Tensor
            ``A x``, the measurement's shape (same dtype and device as ``x``).
        """
        self._check(x, "x")
        return self._m(x) * x

    def adjoint(self, y: Tensor) -> Tensor:
        """``m * y`` (the mask is diagonal, hence self-adjoint)."""
        self._check(y, "y")
        return self._m(y) * y

    def gram(self, x: Tensor) -> Tensor:
        """``m^2 x`` (``= m x`` for a binary mask).

        Parameters
        ----------
        x : Tensor
            Input image(s), shape ``(B, C, H, W)``.

        Returns
        -------
        Tensor
            ``A^T A x``, shape of ``x``.
        """
        self._check(x, "x")
        m = self._m(x)
        return m * x if self.binary else m * m * x

    def pinv(self, y: Tensor) -> Tensor:
        """``y / m`` where ``m != 0``, else 0 (``= m y`` for a binary mask)."""
        self._check(y, "y")
        m = self._m(y)
        if self.binary:
            return m * y
        return torch.where(m != 0, y / torch.where(m != 0, m, 1.0), 0.0)

    def prox(self, z: Tensor, y: Tensor, rho: float | Tensor) -> Tensor:
        """Exact ``argmin_x ||m x - y||^2 + rho ||x - z||^2 = (m y + rho z) / (m^2 + rho)``.

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
        self._check(z, "z")
        self._check(y, "y")
        _check_prox_pair(self, z, y, z.shape)
        m = self._m(z)
        r = _per_sample(rho, z)
        if self.binary:  # z where m = 0, (y + rho z) / (1 + rho) where m = 1
            return torch.addcmul(z, y - z, m / (1 + r))
        return (m * y + r * z) / (m * m + r)

    # -- spectral view: the pixel basis ----------------------------------------------------------
    def singular_values(self, *args, **kwargs) -> Tensor:
        """The mask itself, shape ``(1 or B, 1 or C, H, W)`` (zeros on missing pixels).

        Parameters
        ----------
        *args, **kwargs
            Accepted for the :meth:`LinearOperator.singular_values` interface (``shape``); unused.

        Returns
        -------
        Tensor
            The mask, broadcastable to the input's shape.
        """
        return self.mask

