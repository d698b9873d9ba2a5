"""Degradation operators, installed and imported as :mod:`pnpdiff.operators`.

Every linear operator is a :class:`LinearOperator` (a :class:`torch.nn.Module`) with ``forward``
(``A``), an exact ``adjoint`` (``A^T``), ``gram``, ``pinv``, ``prox`` and, where the structure
allows it, a spectral (SVD) view. See each class's docstring for which parts are closed forms.
The nonlinear forward models (:class:`PhaseRetrieval`, :class:`SaturatedBlur`, in
``nonlinear.py``) are plain differentiable modules with ``forward`` only, for DPS and RED-diff.

.. rubric:: Contents

Base classes and helpers:

* :class:`LinearOperator` -- the contract (``forward``, ``adjoint``, ``gram``, ``pinv``,
  ``prox``, ``prox_cg``, the spectral view ``Vt``, ``V``, ``Ut``, ``U``, ``singular_values``);
* :class:`DiagonalOperator` -- operators diagonal in the pixel basis;
* :class:`Composition` and :func:`compose` -- ``A @ B``;
* :func:`conjugate_gradient`, :func:`batch_dot` -- the batched solver behind the fallbacks.

Every operator class also states what the front door reads before building it: ``task`` (the
restoration task that picks the default method), ``y_range`` (the range of ``A(x)`` for ``x`` in
[0, 1]; ``None`` when the measurement is not an image, e.g. :class:`PhaseRetrieval`) and
``x_shape_for(y_shape, **params)`` (the image's shape for a measurement's); an instance gives
``x_shape(y_shape)`` from its own parameters (see :class:`~pnpdiff.operators.base.ImageModule`).

Blur and kernels:

* :class:`Blur` (any kernel, circular or with a boundary), :class:`GaussianBlur`,
  :class:`UniformBlur`, :class:`MotionBlur`; :class:`BlindBlur` (a blur whose kernel ``solve``
  estimates from the measurement);
* :func:`gaussian_kernel`, :func:`uniform_kernel`, :func:`motion_kernel`, :func:`disk_kernel`,
  :func:`line_kernel`.

Super-resolution: :class:`Downsample` (blur + decimation) and its filter taps
:func:`downsample_taps`.

Inpainting: :class:`Inpaint` and the masks :func:`random_mask`, :func:`box_mask`,
:func:`freeform_mask`.

Other linear operators: :class:`Identity` (denoising), :class:`Colorize` (colour to grey),
:class:`Matrix` (a dense matrix on vectors).

deepinv interoperability: :func:`to_deepinv`, :func:`from_deepinv`, :func:`as_operator`,
:class:`DeepinvOperator`.

Nonlinear forward models: :class:`PhaseRetrieval`, :class:`SaturatedBlur`.
"""

from .base import Composition, DiagonalOperator, LinearOperator, batch_dot, conjugate_gradient

__all__ = ["LinearOperator", "DiagonalOperator", "Composition", "conjugate_gradient", "batch_dot", "compose"]


def compose(*ops: LinearOperator) -> LinearOperator:
    """Compose linear operators: ``compose(A, B, C)`` = ``A @ B @ C`` (``C`` is applied first).

    Parameters
    ----------
    *ops : LinearOperator
        One or more pnpdiff operators, outermost first.

    Returns
    -------
    LinearOperator
        The composition (the operator itself when only one is given).

    Raises
    ------
    OperatorError
        If no operator is given or one of them is not a pnpdiff :class:`LinearOperator`
        (wrap a deepinv physics with :func:`as_operator` first).
    """
    from pnpdiff.errors import OperatorError

    from ._checks import show

    if not ops:
        raise OperatorError("compose needs at least one operator: compose(A, B, ...), got none")
    for i, op in enumerate(ops):
        if not isinstance(op, LinearOperator):
            raise OperatorError(
                f"ops[{i}] must be a pnpdiff LinearOperator, got {show(op)} ({type(op).__name__}); "
                "wrap a deepinv physics with pnpdiff.operators.as_operator first"
            )
    out = ops[-1]
    for op in reversed(ops[:-1]):
        out = Composition(op, out)
    return out


# --- blur family and inpainting (operators/blur.py, kernels.py, inpaint.py, masks.py) ---
from .blur import BlindBlur, Blur, GaussianBlur, MotionBlur, UniformBlur  # noqa: E402
from .inpaint import Inpaint  # noqa: E402
from .kernels import disk_kernel, gaussian_kernel, line_kernel, motion_kernel, uniform_kernel  # noqa: E402
from .masks import box_mask, freeform_mask, random_mask  # noqa: E402

__all__ += ["BlindBlur"]
__all__ += [
    "Blur", "GaussianBlur", "UniformBlur", "MotionBlur", "Inpaint",
    "gaussian_kernel", "uniform_kernel", "motion_kernel", "disk_kernel", "line_kernel",
    "random_mask", "box_mask", "freeform_mask",
]
# --- downsampling, simple operators, deepinv interop (downsample.py, simple.py, interop.py) ---
from .downsample import Downsample, downsample_taps  # noqa: E402
from .interop import DeepinvOperator, as_operator, from_deepinv, to_deepinv  # noqa: E402
from .simple import Colorize, Identity, Matrix  # noqa: E402

__all__ += [
    "Downsample", "downsample_taps", "Identity", "Colorize", "Matrix",
    "to_deepinv", "from_deepinv", "as_operator", "DeepinvOperator",
]
# --- nonlinear forward models, forward only (nonlinear.py) ---
from .nonlinear import PhaseRetrieval, SaturatedBlur  # noqa: E402

__all__ += ["PhaseRetrieval", "SaturatedBlur"]
