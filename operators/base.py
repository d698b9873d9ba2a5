"""Base class of every linear degradation operator, with generic fallbacks.

A :class:`LinearOperator` is a :class:`torch.nn.Module` whose ``forward`` applies ``A`` and whose
``adjoint`` applies ``A^T`` exactly. Everything else has a generic, exact-up-to-tolerance fallback
here, which concrete operators override with closed forms where the structure allows it:

* ``gram(x)`` = ``A^T A x`` (fused where cheaper),
* ``pinv(y)`` = ``A^+ y`` (minimum-norm least squares, conjugate gradient on the normal equations),
* ``prox(z, y, rho)`` = ``argmin_x ||A x - y||^2 + rho ||x - z||^2`` (conjugate gradient on
  ``(A^T A + rho I) x = A^T y + rho z``),
* a spectral (SVD) view ``A = U diag(s) V^T`` for SVD-based solvers (DDRM, DDNM): ``Vt``, ``V``,
  ``Ut``, ``U`` and ``singular_values``. Coefficients live in a tensor with the *input* layout
  (shape of ``x``); ``singular_values()`` has that layout too (broadcastable), with zeros on the
  null space, so that ``A x = U(s * Vt(x))`` and ``A^T y = V(s * Ut(y))``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from operator import index
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from pnpdiff._docs import contract_sections, inherit_sections
from pnpdiff.errors import OperatorError, ShapeError

from . import _checks

__all__ = ["ImageModule", "LinearOperator", "DiagonalOperator", "Composition", "conjugate_gradient", "batch_dot"]


def batch_dot(a: Tensor, b: Tensor) -> Tensor:
    """Per-sample inner product ``<a_i, b_i>`` over all but the first dimension.

    Parameters
    ----------
    a, b : Tensor
        Tensors of the same shape ``(B, ...)``.

    Returns
    -------
    Tensor
        Shape ``(B,)``.
    """
    return (a * b).flatten(1).sum(1)


class _RhoError(_checks.OperatorRangeError):
    """``rho`` of ``prox`` out of range: the message says where a solver's ``rho`` comes from."""

    def __init__(self, message: str) -> None:
        super().__init__(
            f"{message}: rho is the weight of ||x - z||^2 in prox(z, y, rho), a finite number >= 0; inside "
            "solve() the method derives it from its options (diffpir, dpir: lam * sigma_y^2 / sigma^2; pnpdm: "
            "(sigma_y / sigma)^2), so check lam (a positive number) and sigma_y"
        )


def _per_sample(v: Tensor | float, like: Tensor) -> Tensor:
    """Broadcast a scalar or a ``(B,)`` tensor against ``like`` (shape ``(B, ...)``)."""
    if not torch.is_tensor(v):
        v = _checks.real(v, "rho", minimum=0.0, error=_RhoError)
    elif v.ndim == 1 and v.shape[0] not in (1, like.shape[0]):
        raise ShapeError(
            f"rho must be a number or a tensor with one value per batch element ({like.shape[0]}), "
            f"got a tensor of shape {tuple(v.shape)}"
        )
    v = torch.as_tensor(v, dtype=like.dtype, device=like.device)
    if v.ndim == 1 and v.shape[0] == like.shape[0] and like.ndim > 1:
        v = v.view(-1, *([1] * (like.ndim - 1)))
    return v


def conjugate_gradient(
    apply: Callable[[Tensor], Tensor],
    b: Tensor,
    x0: Tensor | None = None,
    tol: float = 1e-6,
    max_iter: int = 200,
    precond: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """Batched (preconditioned) conjugate gradient for ``apply(x) = b``, ``apply`` symmetric PSD.

    Each batch element has its own step sizes and stops contributing once its relative residual
    ``||b - apply(x)|| / ||b||`` (the *unpreconditioned* residual, whether or not ``precond`` is
    given) is below ``tol``. Started from zero on a consistent semidefinite system without a
    preconditioner, the iterates stay in the range of ``apply`` and converge to the minimum-norm
    solution.

    With ``precond`` (an approximation ``M`` of ``apply^{-1}``, symmetric positive definite) this
    is the standard preconditioned CG (Hestenes-Stiefel with ``M``-inner products; e.g. Saad,
    *Iterative Methods for Sparse Linear Systems*, Alg. 9.1): one extra ``precond`` call per
    iteration, and the number of iterations depends on the spectrum of ``M apply`` instead of
    ``apply``. When ``M apply - I`` has low rank (an operator that equals an easily inverted one
    except near the image border) it converges in a handful of iterations.

    Parameters
    ----------
    apply : callable
        The symmetric linear map, batched over the first dimension.
    b : Tensor
        Right-hand side, shape ``(B, ...)``.
    x0 : Tensor, optional
        Starting point (default zero).
    tol : float
        Relative residual at which a batch element stops.
    max_iter : int
        Maximum number of iterations (applications of ``apply``, not counting the initial
        residual of a non-zero ``x0``).
    precond : callable, optional
        Symmetric positive definite preconditioner ``r -> M r`` (batched like ``apply``). ``None``
        (default): plain conjugate gradient, exactly as before.

    Returns
    -------
    Tensor
        The approximate solution, shape of ``b``.
    """
    tiny = torch.finfo(b.dtype).tiny
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b - apply(x) if x0 is not None else b.clone()
    z = r if precond is None else precond(r)
    p = z.clone()
    rr = batch_dot(r, r)
    rz = rr if precond is None else batch_dot(r, z)
    b_norm2 = batch_dot(b, b).clamp_min(tiny)
    shape = (-1,) + (1,) * (b.ndim - 1)
    for _ in range(max_iter):
        active = rr > (tol**2) * b_norm2
        if not bool(active.any()):
            break
        Ap = apply(p)
        pAp = batch_dot(p, Ap)
        alpha = torch.where(active & (pAp > 0), rz / pAp.clamp_min(tiny), 0.0)
        x = x + alpha.view(shape) * p
        r = r - alpha.view(shape) * Ap
        rr = batch_dot(r, r)
        if precond is None:
            z, rz_new = r, rr
        else:
            z = precond(r)
            rz_new = batch_dot(r, z)
        beta = torch.where(active, rz_new / rz.clamp_min(tiny), 0.0)
        p = z + beta.view(shape) * p
        rz = rz_new
    return x


#: the restoration tasks an operator class may declare (:attr:`ImageModule.task`)
TASKS = ("deblur", "sr", "inpaint", "denoise", "colorize", "nonlinear", "generic")


def as_shape(shape: Any) -> tuple[int, ...] | None:
    """``shape`` as a tuple of Python ints (``torch.Size``, lists and NumPy integers accepted), or
    ``None`` when it is not a sequence of integers."""
    try:
        items = tuple(shape)
    except TypeError:
        return None
    out = []
    for v in items:
        if isinstance(v, bool):
            return None
        try:
            out.append(index(v))
        except TypeError:
            return None
    return tuple(out)


def _unchanged(shape: Any) -> tuple[Any, ...]:
    """``shape`` as a tuple, whatever it holds (``()`` for something that is not a sequence)."""
    try:
        return tuple(shape)
    except TypeError:
        return ()


def positive_int(value: Any) -> int | None:
    """``value`` when it is a positive Python int (not a bool), else ``None``."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


class ImageModule(nn.Module):
    """A module whose call ``op(x)`` also takes a PIL image (the base of every operator).

    It also states, as class attributes, what the front door needs to know about an operator
    *before* building it (a recipe names the class and its parameters; :func:`pnpdiff.solve`
    looks up defaults): :attr:`task`, :attr:`y_range` and :meth:`x_shape_for`, and, on an instance,
    :attr:`input_shape` and :meth:`x_shape`.

    Attributes
    ----------
    task : str
        The restoration task the class stands for, which selects the default method and
        hyper-parameters: one of ``"deblur"``, ``"sr"``, ``"inpaint"``, ``"denoise"``,
        ``"colorize"``, ``"nonlinear"``, ``"generic"``. ``"nonlinear"`` here, the forward-only
        models (no adjoint); :class:`LinearOperator` says ``"generic"``.
    y_range : (float, float) or None
        The range of the measurement ``A(x)`` for an image ``x`` in [0, 1]: ``(0.0, 1.0)`` when the
        measurement is itself an image on the scale of ``x`` (the default; a filter with negative
        lobes, such as bicubic, overshoots it slightly), ``None`` when it is not an image (a
        Fourier magnitude, a vector of a matrix product) and no image range applies to it.
    input_shape : tuple of int or None
        The per-sample shape of ``x`` when the operator was built for one (``None``: any size,
        shapes follow from the measurement's by :meth:`x_shape`).
    """

    task: ClassVar[str] = "nonlinear"
    y_range: ClassVar[tuple[float, float] | None] = (0.0, 1.0)
    input_shape: tuple[int, ...] | None = None

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        for name in ("x_shape_for", "x_shape"):  # an override that says only how gets the contract
            attr = vars(cls).get(name)
            fn = getattr(attr, "__func__", attr)
            if fn is not None and fn.__doc__ and contract_sections(fn.__doc__) is None:
                base = vars(ImageModule)[name]
                contract = contract_sections(getattr(base, "__func__", base).__doc__)
                fn.__doc__ = inspect.cleandoc(fn.__doc__).rstrip() + "\n\n" + str(contract)

    @classmethod
    def x_shape_for(cls, y_shape: Sequence[int], **params: Any) -> tuple[int, ...]:
        """The shape of the image ``x`` for a measurement of shape ``y_shape``, from the class's
        constructor parameters alone (what a recipe knows before it builds the operator).

        A guess made before any validation: it never raises. Parameters it does not use, or
        cannot read (a factor that is not a positive integer, ...), leave the shape as the other
        parameters give it; a ``y_shape`` that is not a sequence of integers comes back as a tuple
        unchanged. The default: the shape of ``y`` (an operator that keeps the image's shape).

        Parameters
        ----------
        y_shape : sequence of int
            The measurement's shape, ``(B, C, H, W)`` (or ``(C, H, W)``, ``(H, W)``).
        **params
            The constructor's keyword arguments (a recipe's ``operator:`` mapping without
            ``name``).

        Returns
        -------
        tuple of int
            The shape of ``x``, with the leading dimensions of ``y_shape``.
        """
        shape = as_shape(y_shape)
        return _unchanged(y_shape) if shape is None else shape

    def x_shape(self, y_shape: Sequence[int]) -> tuple[int, ...]:
        """The shape of the image ``x`` whose measurement by this operator has shape ``y_shape``.

        The instance's own parameters decide (its :attr:`input_shape` when it has one, its
        factor, its channel weights, ...); :meth:`x_shape_for` is the same from a class and its
        constructor parameters. Never raises (a shape that fits no input comes back as the best
        guess; applying the operator says what is wrong).

        Parameters
        ----------
        y_shape : sequence of int
            The measurement's shape, ``(B, C, H, W)`` (or ``(C, H, W)``, ``(H, W)``).

        Returns
        -------
        tuple of int
            The shape of ``x``.
        """
        shape = as_shape(y_shape)
        if shape is None:
            return _unchanged(y_shape)
        if self.input_shape is not None:
            n = len(self.input_shape)
            return (*shape[: max(len(shape) - n, 0)], *self.input_shape)
        return type(self).x_shape_for(shape, **self._shape_params())

    def _shape_params(self) -> dict[str, Any]:
        """The constructor parameters :meth:`x_shape_for` reads, from this instance."""
        return {}

    def __call__(self, x: Tensor, *args: object, **kwargs: object) -> Tensor:
        """``op(x)``: :meth:`forward`, also for a PIL image.

        Parameters
        ----------
        x : Tensor or PIL.Image.Image
            Input image(s), shape ``(B, C, H, W)``; a PIL image is converted as :func:`pnpdiff.solve`
            converts it (:func:`pnpdiff.io.to_tensor`: a ``(1, C, H, W)`` float32 tensor in [0, 1],
            8-bit / 255, 16-bit / 65535).
        *args, **kwargs
            Passed on to :meth:`forward`.

        Returns
        -------
        Tensor
            ``A x`` (a tensor, also for a PIL image).
        """
        return super().__call__(_checks.as_image(x), *args, **kwargs)


class LinearOperator(ImageModule):
    """A linear measurement operator ``y = A x`` with an exact adjoint.

    Subclasses implement :meth:`forward` and :meth:`adjoint`; the other methods have generic
    fallbacks (conjugate gradient) that subclasses replace by closed forms where they exist.
    Inputs are batched ``(B, C, H, W)`` tensors (or ``(B, n)`` for :class:`~pnpdiff.operators.Matrix`)
    of any floating dtype, on any device. ``A @ B`` composes two operators
    (:class:`Composition`, ``B`` applied first).

    The methods documented here are the contract of every operator; a subclass's override
    computes the same thing (its docstring says how: FFT, closed form, ...).

    Parameters
    ----------
    cg_tol : float
        Relative-residual tolerance of the conjugate-gradient fallbacks (``>= 0``).
    cg_max_iter : int
        Iteration cap of the conjugate-gradient fallbacks (``>= 0``).

    Raises
    ------
    ValueRangeError
        If ``cg_tol`` or ``cg_max_iter`` is negative or not a number.
    """

    #: the restoration task (see :class:`ImageModule`); subclasses name theirs
    task: ClassVar[str] = "generic"

    #: whether :meth:`prox` is a closed form (``False``: conjugate gradient)
    closed_form_prox: bool = False
    #: whether the spectral view (``Vt``, ``U``, ...) is available
    has_svd: bool = False

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        inherit_sections(cls, LinearOperator)  # an override that documents only how it computes gets the contract

    def __init__(self, cg_tol: float = 1e-6, cg_max_iter: int = 200) -> None:
        super().__init__()
        _checks.real(cg_tol, "cg_tol", minimum=0.0)
        _checks.integer(cg_max_iter, "cg_max_iter", minimum=0)
        self.cg_tol = cg_tol
        self.cg_max_iter = cg_max_iter

    # -- the two maps every operator defines ---------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        """Apply ``A``.

        Parameters
        ----------
        x : Tensor
            Input image(s), shape ``(B, C, H, W)`` (``(B, n)`` for a matrix).

        Returns
        -------
        Tensor
            ``A x``, the measurement's shape (same dtype and device as ``x``).
        """
        raise NotImplementedError

    def adjoint(self, y: Tensor) -> Tensor:  # pragma: no cover - abstract
        """Apply ``A^T`` (exact adjoint of :meth:`forward`: ``<A x, y> = <x, A^T y>``).

        Parameters
        ----------
        y : Tensor
            Measurement(s), shape of the output of :meth:`forward`.

        Returns
        -------
        Tensor
            ``A^T y``, the input's shape.
        """
        raise NotImplementedError

    # -- derived maps with generic fallbacks ---------------------------------------------------
    def gram(self, x: Tensor) -> Tensor:
        """Normal operator ``A^T A x``.

        Parameters
        ----------
        x : Tensor
            Input image(s), shape ``(B, C, H, W)`` (``(B, n)`` for a matrix).

        Returns
        -------
        Tensor
            ``A^T A x``, shape of ``x``.
        """
        return self.adjoint(self.forward(x))

    def pinv(self, y: Tensor) -> Tensor:
        """Moore-Penrose pseudo-inverse ``A^+ y`` (fallback: CG on ``A^T A x = A^T y`` from 0).

        Parameters
        ----------
        y : Tensor
            Measurement(s), shape of the output of :meth:`forward`.

        Returns
        -------
        Tensor
            The minimum-norm least-squares solution ``A^+ y``, the input's shape.
        """
        return conjugate_gradient(self.gram, self.adjoint(y), tol=self.cg_tol, max_iter=self.cg_max_iter)

    def prox(self, z: Tensor, y: Tensor, rho: float | Tensor) -> Tensor:
        """``argmin_x ||A x - y||^2 + rho ||x - z||^2`` (fallback: conjugate gradient).

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

        Raises
        ------
        ShapeError
            If ``y`` does not have the shape of ``A(z)`` or ``rho`` has the wrong length.
        """
        return self.prox_cg(z, y, rho)

    def prox_cg(self, z: Tensor, y: Tensor, rho: float | Tensor) -> Tensor:
        """The conjugate-gradient solution of :meth:`prox` (what operators without a closed form use).

        Solves ``(A^T A + rho I) x = A^T y + rho z`` from ``x = z``, to ``cg_tol`` or ``cg_max_iter``
        iterations. Operators with a closed-form :meth:`prox` keep this one as a reference.

        Parameters
        ----------
        z : Tensor
            Point the solution is pulled towards, shape of the input of ``A``.
        y : Tensor
            Measurement, shape of the output of ``A``.
        rho : float or Tensor
            Positive weight; a scalar or a ``(B,)`` tensor.

        Returns
        -------
        Tensor
            The approximate minimiser, shape of ``z``.

        Raises
        ------
        ShapeError
            If ``A^T y`` does not have the shape of ``z``.
        """
        r = _per_sample(rho, z)
        try:
            aty = self.adjoint(y)
        except ShapeError as err:  # said of the user's y, not of an intermediate of a composition
            if not (torch.is_tensor(y) and torch.is_tensor(z)):
                raise
            raise ShapeError(
                f"{type(self).__name__}.prox: the measurement y of shape {tuple(y.shape)} does not fit z of shape "
                f"{tuple(z.shape)}: A^T y fails ({err})"
            ) from None
        if torch.is_tensor(z) and not _batch_fits(aty.shape, z.shape):
            raise ShapeError(
                f"{type(self).__name__}.prox: the measurement y of shape {tuple(y.shape)} does not fit z of "
                f"shape {tuple(z.shape)}: A^T y has shape {tuple(aty.shape)}, it must have the shape of z"
            )
        return conjugate_gradient(
            lambda v: self.gram(v) + r * v,
            aty + r * z,
            x0=z,
            tol=self.cg_tol,
            max_iter=self.cg_max_iter,
        )

    # -- spectral view -------------------------------------------------------------------------
    def _no_svd(self) -> OperatorError:
        return OperatorError(
            f"{type(self).__name__} has no spectral (SVD) view; use a solver that needs only "
            "forward/adjoint/prox (e.g. method='diffpir' or 'dps')"
        )

    def singular_values(self, shape: Sequence[int] | Tensor | None = None) -> Tensor:
        """Singular values in the input layout (zeros on the null space), broadcastable to ``Vt(x)``.

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

        Raises
        ------
        OperatorError
            If the operator has no spectral view (``has_svd`` is false).
        """
        raise self._no_svd()

    def Vt(self, x: Tensor) -> Tensor:  # noqa: N802 - the paper's symbol
        """Coefficients of ``x`` in the right singular basis (input layout).

        Parameters
        ----------
        x : Tensor
            Input image(s), shape ``(B, C, H, W)`` (``(B, n)`` for a matrix).

        Returns
        -------
        Tensor
            ``V^T x``, shape of ``x``.

        Raises
        ------
        OperatorError
            If the operator has no spectral view (``has_svd`` is false).
        """
        raise self._no_svd()

    def V(self, c: Tensor) -> Tensor:  # noqa: N802
        """Image of spectral coefficients (input layout) -> input space; inverse of :meth:`Vt`.

        Parameters
        ----------
        c : Tensor
            Coefficients in the right singular basis, the input's shape.

        Returns
        -------
        Tensor
            ``V c``, the input's shape.

        Raises
        ------
        OperatorError
            If the operator has no spectral view (``has_svd`` is false).
        """
        raise self._no_svd()

    def Ut(self, y: Tensor) -> Tensor:  # noqa: N802
        """Coefficients of ``y`` in the left singular basis, zero-padded to the input layout.

        Parameters
        ----------
        y : Tensor
            Measurement(s), shape of the output of :meth:`forward`.

        Returns
        -------
        Tensor
            ``U^T y`` in the input layout (zeros where ``s = 0``).

        Raises
        ------
        OperatorError
            If the operator has no spectral view (``has_svd`` is false).
        """
        raise self._no_svd()

    def U(self, c: Tensor) -> Tensor:  # noqa: N802
        """Spectral coefficients (input layout) -> measurement space (entries with ``s = 0`` dropped).

        Parameters
        ----------
        c : Tensor
            Coefficients in the left singular basis, the input's layout.

        Returns
        -------
        Tensor
            ``U c``, the measurement's shape.

        Raises
        ------
        OperatorError
            If the operator has no spectral view (``has_svd`` is false).
        """
        raise self._no_svd()

    # -- composition ---------------------------------------------------------------------------
    def __matmul__(self, other: LinearOperator) -> LinearOperator:
        if not isinstance(other, LinearOperator):
            return NotImplemented
        return Composition(self, other)

    def check_shape(self, shape: Sequence[int], name: str = "the image") -> None:
        """Refuse an input shape the operator cannot be applied to, before any work (allocates nothing).

        What :meth:`forward` would refuse about the shape alone: a blur kernel larger than the image,
        a mask of another size, an image size that is not a multiple of a downsampling factor, ...
        (:func:`pnpdiff.solve` and ``--dry-run`` meet the same line as a run would).

        Parameters
        ----------
        shape : sequence of int
            ``(B, C, H, W)`` (or ``(C, H, W)``, ``(H, W)``) of the input image.
        name : str
            What the input is called in the message.

        Raises
        ------
        ShapeError
            If the operator cannot be applied to an input of that shape.
        """
        self._shape_check(torch.empty(_shape4(shape), device="meta"), name)

    def _shape_check(self, x: Tensor, name: str) -> None:
        """The shape checks of :meth:`forward` on a ``'meta'`` tensor (subclasses with checks override)."""
        self._check_image(x, name)

    @staticmethod
    def _check_image(x: Tensor, name: str = "x") -> None:
        if not torch.is_tensor(x):
            raise ShapeError(f"{name} must be a torch.Tensor, got {type(x).__name__}{_not_tensor_hint(x, name)}")
        if x.ndim != 4:
            raise ShapeError(f"{name} must have shape (B, C, H, W), got {tuple(x.shape)}")
        if x.numel() == 0:
            raise ShapeError(f"{name} must not be empty (shape (B, C, H, W), each at least 1), got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ShapeError(
                f"{name} must be a floating-point tensor (images are floats in [0, 1]), got dtype {x.dtype} "
                f"(shape {tuple(x.shape)}); convert it, e.g. {name}.float() / 255 for 8-bit images (inside "
                "solve() the operator is applied to the prior's estimates: a prior's denoiser must return "
                "floating-point tensors)"
            )


def _not_tensor_hint(x: object, name: str) -> str:
    """How to turn an image of another kind into the tensor an operator method takes."""
    if type(x).__module__.startswith("PIL."):
        return (f"; op({name}) converts a PIL image itself, or convert it with pnpdiff.io.to_tensor({name})[0] "
                "(a (1, C, H, W) float tensor in [0, 1])")
    if type(x).__module__ == "numpy":
        return (f"; convert it with pnpdiff.io.to_tensor({name})[0] for an (H, W) or (H, W, C) image array, or "
                f"torch.from_numpy({name}) for a (B, C, H, W) array")
    if isinstance(x, (str, bytes)) or hasattr(x, "__fspath__"):
        return f"; read the file with pnpdiff.io.load_image({name})"
    return ""


def _shape4(shape: Sequence[int]) -> tuple[int, ...]:
    """An image shape ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)`` as four positive integers."""
    shp = _checks.shape_tuple(shape, "shape", lengths=(2, 3, 4), error=ShapeError,
                              what="an image shape (H, W), (C, H, W) or (B, C, H, W) of positive integers")
    return (1,) * (4 - len(shp)) + shp


def _batch_fits(a: Sequence[int], b: Sequence[int]) -> bool:
    """Same shape except that one of the batch sizes may be 1 (it then broadcasts)."""
    a, b = tuple(a), tuple(b)
    return len(a) == len(b) and a[1:] == b[1:] and (a[0] == b[0] or 1 in (a[0], b[0]))


def _check_prox_pair(op: LinearOperator, z: Tensor, y: Tensor, want: Sequence[int]) -> None:
    """``prox(z, y, rho)``: refuse a ``y`` whose shape is not ``want``, the shape of ``A(z)``
    (batch sizes may differ only where one of them is 1)."""
    if not _batch_fits(y.shape, want):
        raise ShapeError(
            f"{type(op).__name__}.prox: the measurement y of shape {tuple(y.shape)} does not fit z of shape "
            f"{tuple(z.shape)}: y must have shape {tuple(want)}, the shape of A(z) (batch sizes may differ "
            "only where one of them is 1)"
        )


class DiagonalOperator(LinearOperator):
    """An operator that is diagonal in the pixel basis (:class:`Identity`, :class:`Inpaint`).

    Its spectral view is exact and trivial: ``U = V = I`` (``Vt``, ``V``, ``Ut``, ``U`` return
    their argument); subclasses give ``singular_values``.

    Parameters
    ----------
    cg_tol, cg_max_iter : float, int
        As for :class:`LinearOperator`.
    """

    has_svd = True

    def Vt(self, x: Tensor) -> Tensor:  # noqa: N802
        """Identity (pixel basis).

        Parameters
        ----------
        x : Tensor
            Image or coefficients.

        Returns
        -------
        Tensor
            ``x`` itself.
        """
        return x

    def V(self, c: Tensor) -> Tensor:  # noqa: N802
        """Identity (pixel basis).

        Parameters
        ----------
        c : Tensor
            Image or coefficients.

        Returns
        -------
        Tensor
            ``c`` itself.
        """
        return c

    def Ut(self, y: Tensor) -> Tensor:  # noqa: N802
        """Identity (pixel basis).

        Parameters
        ----------
        y : Tensor
            Image or coefficients.

        Returns
        -------
        Tensor
            ``y`` itself.
        """
        return y

    def U(self, c: Tensor) -> Tensor:  # noqa: N802
        """Identity (pixel basis).

        Parameters
        ----------
        c : Tensor
            Image or coefficients.

        Returns
        -------
        Tensor
            ``c`` itself.
        """
        return c


class Composition(LinearOperator):
    """``A @ B``: apply ``B`` then ``A``. Adjoint ``B^T A^T``; prox and pinv by CG.

    Build it with ``A @ B`` or :func:`~pnpdiff.operators.compose`. The conjugate-gradient
    settings are the stricter of the two operators'.

    Parameters
    ----------
    outer : LinearOperator
        ``A``, applied second.
    inner : LinearOperator
        ``B``, applied first.

    Raises
    ------
    OperatorError
        If either is not a pnpdiff :class:`LinearOperator`.
    """

    def __init__(self, outer: LinearOperator, inner: LinearOperator) -> None:
        for name, op in (("outer", outer), ("inner", inner)):
            if not isinstance(op, LinearOperator):
                raise OperatorError(
                    f"{name} must be a pnpdiff LinearOperator, got {_checks.show(op)} ({type(op).__name__}); "
                    "wrap a deepinv physics with pnpdiff.operators.as_operator first"
                )
        super().__init__(cg_tol=min(outer.cg_tol, inner.cg_tol), cg_max_iter=max(outer.cg_max_iter, inner.cg_max_iter))
        self.outer = outer
        self.inner = inner
        # an image in [0, 1] stays one through ``inner`` only if its range is the image range
        inner_range = inner.y_range
        image_in = inner_range is not None and 0.0 <= inner_range[0] and inner_range[1] <= 1.0
        self.y_range = outer.y_range if image_in else None  # type: ignore[misc] - this instance's range

    def x_shape(self, y_shape: Sequence[int]) -> tuple[int, ...]:
        """``inner``'s input shape for ``outer``'s input shape for ``y_shape``."""
        return self.inner.x_shape(self.outer.x_shape(y_shape))

    def forward(self, x: Tensor) -> Tensor:
        return self.outer(self.inner(x))

    def adjoint(self, y: Tensor) -> Tensor:
        return self.inner.adjoint(self.outer.adjoint(y))
