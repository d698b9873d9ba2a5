"""Interoperability with deepinv's physics (Tachella et al., "DeepInverse: a Python package for
solving imaging inverse problems with deep learning", JOSS 2025).

* :func:`to_deepinv` turns a pnpdiff :class:`LinearOperator` into a
  ``deepinv.physics.LinearPhysics`` whose ``A``/``A_adjoint`` are the operator's maps and whose
  ``prox_l2`` / ``A_dagger`` / ``A_adjoint_A`` are pnpdiff's closed forms;
* :func:`from_deepinv` wraps any deepinv ``LinearPhysics`` (MRI, CT, inpainting, ...) as a
  pnpdiff :class:`LinearOperator`;
* :func:`as_operator` accepts either and returns a pnpdiff operator.

**prox conventions.** deepinv's ``prox_l2(z, y, gamma)`` is
``argmin_x gamma/2 ||A x - y||^2 + 1/2 ||x - z||^2``; pnpdiff's ``prox(z, y, rho)`` is
``argmin_x ||A x - y||^2 + rho ||x - z||^2``. Dividing deepinv's objective by ``gamma/2`` shows
they coincide for ``rho = 1 / gamma``.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import Tensor

from pnpdiff.errors import OperatorError

from . import _checks
from .base import LinearOperator

__all__ = ["to_deepinv", "from_deepinv", "as_operator", "DeepinvOperator"]


def _physics_classes():
    try:
        from deepinv.physics import LinearPhysics, Physics
    except ImportError as exc:  # pragma: no cover - deepinv is a runtime dependency
        raise OperatorError("deepinv interop needs the 'deepinv' package: pip install deepinv") from exc
    return LinearPhysics, Physics


def _gamma_to_rho(gamma: Any, like: Tensor) -> float | Tensor:
    """deepinv's ``gamma`` (scalar or per-sample tensor) -> pnpdiff's ``rho = 1 / gamma``."""
    if torch.is_tensor(gamma):
        g = gamma.to(device=like.device, dtype=like.dtype)
        if g.numel() == 1:
            return 1.0 / g.reshape(())
        if g.numel() == like.shape[0]:
            return 1.0 / g.reshape(-1)
        raise OperatorError(
            f"prox_l2: gamma must be a scalar or have one value per batch element, got shape {tuple(g.shape)}"
        )
    return 1.0 / float(gamma)


@functools.cache
def _pnp_physics_class() -> type:
    """The ``LinearPhysics`` subclass behind :func:`to_deepinv` (built on first use: deepinv is
    imported lazily)."""
    linear_physics, _ = _physics_classes()

    class PnPDiffPhysics(linear_physics):
        """deepinv view of a pnpdiff operator (see :func:`pnpdiff.operators.to_deepinv`)."""

        def __init__(self, operator: LinearOperator, img_size=None) -> None:
            super().__init__(img_size=img_size, implicit_backward_solver=False)
            self.operator = operator

        def A(self, x: Tensor, **kwargs) -> Tensor:  # noqa: N802 - deepinv's name
            return self.operator(x)

        def A_adjoint(self, y: Tensor, **kwargs) -> Tensor:  # noqa: N802
            return self.operator.adjoint(y)

        def A_adjoint_A(self, x: Tensor, **kwargs) -> Tensor:  # noqa: N802
            return self.operator.gram(x)

        def A_dagger(self, y: Tensor, **kwargs) -> Tensor:  # noqa: N802
            return self.operator.pinv(y)

        def prox_l2(self, z, y: Tensor, gamma, **kwargs) -> Tensor:
            if z is None or isinstance(z, (int, float)):
                z = torch.full_like(self.operator.adjoint(y), 0.0 if z is None else float(z))
            return self.operator.prox(z, y, _gamma_to_rho(gamma, z))

    return PnPDiffPhysics


def to_deepinv(op: LinearOperator, img_size: tuple[int, ...] | None = None):
    """Wrap a pnpdiff operator as a ``deepinv.physics.LinearPhysics``.

    ``A``, ``A_adjoint`` and ``A_adjoint_A`` call :meth:`~LinearOperator.forward`,
    :meth:`~LinearOperator.adjoint` and :meth:`~LinearOperator.gram`; ``prox_l2(z, y, gamma)``
    calls ``op.prox(z, y, 1 / gamma)`` (exact wherever ``op``'s prox is a closed form) and
    ``A_dagger`` calls ``op.pinv``. A pnpdiff operator obtained from :func:`from_deepinv` is
    unwrapped instead of double-wrapped.

    Parameters
    ----------
    op : LinearOperator
        The operator.
    img_size : tuple of int, optional
        Per-sample input shape ``(C, H, W)``, used by deepinv utilities such as
        ``adjointness_test`` and ``compute_norm`` when no input is given.

    Returns
    -------
    deepinv.physics.LinearPhysics
        The wrapped operator (or the original physics, for an operator made by
        :func:`from_deepinv`).

    Raises
    ------
    OperatorError
        If ``op`` is not a pnpdiff :class:`LinearOperator` or ``img_size`` is not a shape.
    """
    if isinstance(op, DeepinvOperator):
        return op.physics
    if not isinstance(op, LinearOperator):
        raise OperatorError(f"op must be a pnpdiff LinearOperator, got {_checks.show(op)} ({type(op).__name__})")
    if img_size is not None:
        img_size = _checks.shape_tuple(
            img_size, "img_size", what="None or the per-sample input shape, e.g. (C, H, W), of positive integers"
        )
    return _pnp_physics_class()(op, img_size=img_size)


def _overrides(physics: Any, name: str, base: type) -> bool:
    return getattr(type(physics), name, None) is not getattr(base, name, None)


class DeepinvOperator(LinearOperator):
    """A deepinv ``LinearPhysics`` (MRI, tomography, ...) seen as a pnpdiff operator.

    ``forward``/``adjoint`` are deepinv's ``A``/``A_adjoint`` (as exact as deepinv's adjoint).
    ``prox(z, y, rho)`` is deepinv's ``prox_l2(z, y, 1 / rho)`` when the physics overrides it
    with a closed form (``DecomposablePhysics`` such as MRI, inpainting, ``BlurFFT``,
    ``Downsampling``; chosen by ``prox="auto"``), otherwise pnpdiff's batched conjugate gradient
    :meth:`~LinearOperator.prox_cg`. ``pinv`` is deepinv's ``A_dagger`` when overridden (e.g. the
    SVD pseudo-inverse of decomposable physics), otherwise CG. When the physics exposes an SVD
    (``DecomposablePhysics``: ``V_adjoint``, ``V``, ``U_adjoint``, ``U``, ``mask``), so does this
    wrapper, with the singular values ``mask`` in deepinv's (input) layout.

    Parameters
    ----------
    physics : deepinv.physics.LinearPhysics
        The physics to wrap.
    prox : {"auto", "deepinv", "cg"}
        Where :meth:`prox` comes from.
    cg_tol, cg_max_iter : float, int
        Settings of the conjugate-gradient fallbacks (see :class:`LinearOperator`).
    """

    def __init__(self, physics: Any, prox: str = "auto", cg_tol: float = 1e-6, cg_max_iter: int = 200) -> None:
        super().__init__(cg_tol=cg_tol, cg_max_iter=cg_max_iter)
        linear_physics, physics_cls = _physics_classes()
        if not isinstance(physics, linear_physics):
            hint = (
                " (it is a nonlinear deepinv physics; pass a differentiable callable to a solver that accepts "
                "nonlinear operators, e.g. method='dps')"
                if isinstance(physics, physics_cls)
                else ""
            )
            raise OperatorError(
                f"physics must be a deepinv.physics.LinearPhysics, got {_checks.show(physics)} "
                f"({type(physics).__name__}){hint}"
            )
        prox = _checks.choice(prox, "prox", ("auto", "deepinv", "cg"))
        self.physics = physics
        own_prox = _overrides(physics, "prox_l2", linear_physics)
        self._deepinv_prox = prox == "deepinv" or (prox == "auto" and own_prox)
        self.closed_form_prox = self._deepinv_prox and own_prox
        self._deepinv_pinv = _overrides(physics, "A_dagger", linear_physics)
        self.has_svd = all(hasattr(physics, k) for k in ("V_adjoint", "V", "U_adjoint", "U", "mask"))
        if type(physics).__name__ == "Inpainting" and torch.is_tensor(getattr(physics, "mask", None)):
            # a pixel mask (1 = observed): solvers start from the same smooth fill of the holes as
            # for pnpdiff's Inpaint (only for inpainting: MRI's mask lives in k-space)
            self.mask = physics.mask

    def extra_repr(self) -> str:
        return f"physics={type(self.physics).__name__}, deepinv_prox={self._deepinv_prox}"

    def forward(self, x: Tensor) -> Tensor:
        """deepinv's ``A`` (noise-free).

        Parameters
        ----------
        x : Tensor
            Input image(s), shape ``(B, C, H, W)``.

        Returns
        -------
        Tensor
            ``A x``, the measurement's shape (same dtype and device as ``x``).
        """
        return self.physics.A(x)

    def adjoint(self, y: Tensor) -> Tensor:
        """deepinv's ``A_adjoint``."""
        return self.physics.A_adjoint(y)

    def gram(self, x: Tensor) -> Tensor:
        """deepinv's ``A_adjoint_A``.

        Parameters
        ----------
        x : Tensor
            Input image(s), shape ``(B, C, H, W)``.

        Returns
        -------
        Tensor
            ``A^T A x``, shape of ``x``.
        """
        return self.physics.A_adjoint_A(x)

    def pinv(self, y: Tensor) -> Tensor:
        """deepinv's ``A_dagger`` where overridden by a closed form, else CG."""
        if self._deepinv_pinv:
            return self.physics.A_dagger(y)
        return super().pinv(y)

    def prox(self, z: Tensor, y: Tensor, rho: float | Tensor) -> Tensor:
        """``argmin_x ||A x - y||^2 + rho ||x - z||^2`` (deepinv's ``prox_l2(z, y, 1/rho)`` or CG).

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
        if not self._deepinv_prox:
            return self.prox_cg(z, y, rho)
        if torch.is_tensor(rho) and rho.numel() > 1:
            gamma = (1.0 / rho.to(z.dtype)).view(-1, *([1] * (z.ndim - 1)))
        else:
            gamma = 1.0 / float(rho)
        return self.physics.prox_l2(z, y, gamma)

    # spectral view of deepinv's DecomposablePhysics: A = U diag(mask) V^T
    def singular_values(self, shape=None) -> Tensor:
        if not self.has_svd:
            raise self._no_svd()
        mask = self.physics.mask
        return mask if torch.is_tensor(mask) else torch.as_tensor(mask)

    def Vt(self, x: Tensor) -> Tensor:  # noqa: N802
        if not self.has_svd:
            raise self._no_svd()
        return self.physics.V_adjoint(x)

    def V(self, c: Tensor) -> Tensor:  # noqa: N802
        if not self.has_svd:
            raise self._no_svd()
        return self.physics.V(c)

    def Ut(self, y: Tensor) -> Tensor:  # noqa: N802
        if not self.has_svd:
            raise self._no_svd()
        return self.physics.U_adjoint(y)

    def U(self, c: Tensor) -> Tensor:  # noqa: N802
        if not self.has_svd:
            raise self._no_svd()
        return self.physics.U(c)


def from_deepinv(physics: Any, prox: str = "auto", cg_tol: float = 1e-6, cg_max_iter: int = 200) -> LinearOperator:
    """Wrap a deepinv ``LinearPhysics`` as a pnpdiff operator (see :class:`DeepinvOperator`).

    A physics made by :func:`to_deepinv` is unwrapped back to its pnpdiff operator.

    Parameters
    ----------
    physics : deepinv.physics.LinearPhysics
        The physics to wrap.
    prox : {"auto", "deepinv", "cg"}
        Where :meth:`~LinearOperator.prox` comes from (see :class:`DeepinvOperator`).
    cg_tol, cg_max_iter : float, int
        Tolerance and iteration cap of the conjugate gradients behind ``prox`` and ``pinv`` when
        the physics has no closed form (e.g. ``Tomography``: ``1e-4`` and 30 iterations are
        several times faster than the defaults and change a restoration by far less than its
        error).

    Returns
    -------
    LinearOperator
        A :class:`DeepinvOperator`, or the original pnpdiff operator for a physics made by
        :func:`to_deepinv`.
    """
    if isinstance(physics, _pnp_physics_class()):
        return physics.operator
    return DeepinvOperator(physics, prox=prox, cg_tol=cg_tol, cg_max_iter=cg_max_iter)


def as_operator(obj: Any) -> LinearOperator:
    """Return ``obj`` if it is a pnpdiff operator, wrap it if it is a deepinv ``LinearPhysics``.

    Parameters
    ----------
    obj : LinearOperator or deepinv.physics.LinearPhysics
        The operator to use.

    Returns
    -------
    LinearOperator
        ``obj`` itself, or ``obj`` wrapped by :func:`from_deepinv`.

    Raises
    ------
    OperatorError
        For anything else (including nonlinear deepinv physics), with what to pass instead.
    """
    if isinstance(obj, LinearOperator):
        return obj
    try:
        linear_physics, physics_cls = _physics_classes()
    except OperatorError:  # pragma: no cover
        linear_physics = physics_cls = ()
    if linear_physics and isinstance(obj, linear_physics):
        return from_deepinv(obj)
    if physics_cls and isinstance(obj, physics_cls):
        raise OperatorError(
            f"{type(obj).__name__} is a nonlinear deepinv physics; only LinearPhysics can be used as a "
            "linear operator (pass a differentiable callable to a solver that accepts nonlinear "
            "operators, e.g. method='dps')"
        )
    raise OperatorError(
        f"operator must be a pnpdiff LinearOperator or a deepinv LinearPhysics, got {_checks.show(obj)} "
        f"({type(obj).__name__})"
    )
