"""deepinv interop: conversions both ways, deepinv's adjointness test, MRI / CT used through prox."""

from __future__ import annotations

import pytest
import torch

from pnpdiff.errors import OperatorError
from pnpdiff.operators import (
    Colorize,
    DeepinvOperator,
    Downsample,
    Identity,
    Matrix,
    as_operator,
    from_deepinv,
    to_deepinv,
)

pytestmark = pytest.mark.usefixtures("one_thread")

dinv = pytest.importorskip("deepinv")


def rel(a, b) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize(
    "op, shape",
    [
        (Downsample(4), (3, 32, 32)),
        (Downsample(3, "box"), (2, 12, 18)),
        (Colorize(), (3, 8, 8)),
        (Matrix(torch.randn(3, 8)), (8,)),
        (Identity(), (1, 8, 8)),
    ],
)
def test_to_deepinv_adjointness_and_prox(op, shape):
    torch.manual_seed(0)
    phys = to_deepinv(op, img_size=shape)
    assert isinstance(phys, dinv.physics.LinearPhysics)
    x = torch.randn(2, *shape)
    assert float(phys.adjointness_test(x)) < 1e-5
    y = phys.A(x)
    z = torch.randn_like(x)
    # deepinv's prox_l2(z, y, gamma) = argmin gamma/2 ||Ax - y||^2 + 1/2 ||x - z||^2
    p = phys.prox_l2(z, y, 0.25)
    grad = 0.25 * phys.A_adjoint(phys.A(p) - y) + (p - z)
    assert float(grad.norm() / z.norm()) < 1e-5
    assert rel(phys.A(phys.A_dagger(y)), y) < 1e-4
    assert from_deepinv(phys) is op  # round trip unwraps


def test_to_deepinv_prox_matches_deepinv_downsampling():
    """Same physics, two implementations: deepinv's own Zhao et al. prox and ours through to_deepinv."""
    from deepinv.physics.functional import bicubic_filter

    k = bicubic_filter(2)
    ref = dinv.physics.Downsampling(filter=k, factor=2, padding="circular", img_size=(3, 16, 16))
    ours = to_deepinv(Downsample(2, filter=k[0, 0]))
    x, z = torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16)
    y = ref.A(x)
    assert rel(ours.A(x), y) < 1e-6
    assert rel(ours.prox_l2(z, y, 0.3), ref.prox_l2(z, y, 0.3)) < 1e-5


def test_mri_wrapped_and_used_in_prox():
    torch.manual_seed(1)
    mask = (torch.rand(1, 16, 16) > 0.5).float()
    mri = dinv.physics.MRI(mask=mask, img_size=(2, 16, 16))
    op = as_operator(mri)
    assert isinstance(op, DeepinvOperator) and op.closed_form_prox
    x = torch.randn(2, 2, 16, 16)
    y = op(x)
    lhs = (op(x) * y).sum()
    rhs = (x * op.adjoint(y)).sum()
    assert abs(float(lhs - rhs)) / float(y.norm() ** 2) < 1e-5
    z = torch.randn_like(x)
    rho = torch.tensor([0.2, 4.0])
    p = op.prox(z, y, rho)
    grad = op.adjoint(op(p) - y) + rho.view(-1, 1, 1, 1) * (p - z)
    assert float(grad.norm() / z.norm()) < 1e-5
    assert rel(p, op.prox_cg(z, y, rho)) < 1e-4
    assert rel(op(op.pinv(y)), y) < 1e-5
    # spectral view of the decomposable physics
    sv = op.singular_values()
    assert rel(op.U(sv * op.Vt(x)), y) < 1e-5


def test_tomography_wrapped_uses_cg_prox():
    torch.manual_seed(2)
    ct = dinv.physics.Tomography(angles=12, img_width=16, circle=False, normalize=True)
    op = from_deepinv(ct)
    assert not op.closed_form_prox
    x = torch.randn(2, 1, 16, 16)
    y = op(x)
    p = op.prox(torch.zeros_like(x), y, 0.5)
    grad = op.adjoint(op(p) - y) + 0.5 * p
    assert float(grad.norm() / op.adjoint(y).norm()) < 1e-4


def test_as_operator_rejects_other_objects():
    d = Downsample(2)
    assert as_operator(d) is d
    with pytest.raises(OperatorError, match="LinearOperator"):
        as_operator(lambda x: x)
    with pytest.raises(OperatorError):
        to_deepinv("blur")


def test_from_deepinv_passes_the_cg_settings():
    ct = dinv.physics.Tomography(angles=12, img_width=16, circle=False, normalize=True)
    loose = from_deepinv(ct, cg_tol=1e-2, cg_max_iter=3)
    tight = from_deepinv(ct)
    assert (loose.cg_tol, loose.cg_max_iter) == (1e-2, 3)
    assert (tight.cg_tol, tight.cg_max_iter) == (1e-6, 200)
    torch.manual_seed(3)
    x = torch.randn(1, 1, 16, 16)
    y = tight(x)

    def residual(op):
        p = op.prox(torch.zeros_like(x), y, 0.5)
        return float((op.adjoint(op(p) - y) + 0.5 * p).norm() / op.adjoint(y).norm())

    assert residual(tight) < 1e-4 < residual(loose)  # 3 iterations cannot reach the default's accuracy
