"""Degradation operators, installed and imported as :mod:`pnpdiff.operators`.

Every operator is a :class:`LinearOperator` (a :class:`torch.nn.Module`) with ``forward``
(``A``), an exact ``adjoint`` (``A^T``), ``gram``, ``pinv``, ``prox`` and, where the structure
allows it, a spectral (SVD) view. See each class's docstring for which parts are closed forms.
The nonlinear forward models (:class:`PhaseRetrieval`, :class:`SaturatedBlur`, in
``nonlinear.py``) are plain differentiable modules with ``forward`` only, for DPS and RED-diff.
"""

from .base import Composition, DiagonalOperator, LinearOperator, batch_dot, conjugate_gradient

__all__ = ["LinearOperator", "DiagonalOperator", "Composition", "conjugate_gradient", "batch_dot", "compose"]


def compose(*ops: LinearOperator) -> LinearOperator:
    """``compose(A, B, C)`` = ``A @ B @ C`` (``C`` is applied first)."""
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
from .blur import Blur, GaussianBlur, MotionBlur, UniformBlur  # noqa: E402
from .inpaint import Inpaint  # noqa: E402
from .kernels import gaussian_kernel, motion_kernel, uniform_kernel  # noqa: E402
from .masks import box_mask, freeform_mask, random_mask  # noqa: E402

__all__ += [
    "Blur", "GaussianBlur", "UniformBlur", "MotionBlur", "Inpaint",
    "gaussian_kernel", "uniform_kernel", "motion_kernel",
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
