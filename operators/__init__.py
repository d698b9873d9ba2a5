"""Degradation operators, installed and imported as :mod:`pnpdiff.operators`.

Every operator is a :class:`LinearOperator` (a :class:`torch.nn.Module`) with ``forward``
(``A``), an exact ``adjoint`` (``A^T``), ``gram``, ``pinv``, ``prox`` and, where the structure
allows it, a spectral (SVD) view. See each class's docstring for which parts are closed forms.
"""

from .base import Composition, LinearOperator, batch_dot, conjugate_gradient

__all__ = ["LinearOperator", "Composition", "conjugate_gradient", "batch_dot", "compose"]


def compose(*ops: LinearOperator) -> LinearOperator:
    """``compose(A, B, C)`` = ``A @ B @ C`` (``C`` is applied first)."""
    out = ops[-1]
    for op in reversed(ops[:-1]):
        out = Composition(op, out)
    return out


# --- blur family and inpainting (operators/blur.py, kernels.py, inpaint.py, masks.py) ---
# --- downsampling, simple operators, deepinv interop (downsample.py, simple.py, interop.py) ---
