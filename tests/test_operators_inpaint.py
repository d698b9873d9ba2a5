"""Inpainting operator and mask generators, against independent computations and deepinv."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pnpdiff.errors import OperatorError, PnPError, ShapeError
from pnpdiff.operators import Inpaint, box_mask, freeform_mask, random_mask

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def inpaint_cases(draw):
    b, c = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    mask_dims = draw(st.sampled_from([2, 3, 4]))
    mc = draw(st.sampled_from([1, c]))
    mb = draw(st.sampled_from([1, b]))
    mshape = {2: (h, w), 3: (mc, h, w), 4: (mb, mc, h, w)}[mask_dims]
    soft = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    return (b, c, h, w), mshape, soft, seed


def make(case, dtype=torch.float64):
    shape, mshape, soft, seed = case
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(mshape, generator=g, dtype=torch.float64)
    mask = mask * (mask > 0.4) if soft else (mask > 0.4)
    mask[..., 0, 0] = 1  # an Inpaint mask observes at least one pixel of each image
    x = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
    y = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
    return Inpaint(mask, soft=soft), mask, x, y


def broadcast_mask(mask: torch.Tensor, shape) -> np.ndarray:
    m = mask.double().numpy()
    while m.ndim < 4:
        m = m[None]
    return np.broadcast_to(m, shape)


@FAST
@given(inpaint_cases(), st.sampled_from([torch.float32, torch.float64]))
def test_adjoint_identity(case, dtype):
    op, _, x, y = make(case, dtype)
    ax, aty = op(x).double(), op.adjoint(y).double()
    diff = ((ax * y.double()).sum() - (x.double() * aty).sum()).abs()
    err = float(diff / (ax.norm() * y.double().norm()).clamp_min(1e-300))
    assert err < (1e-5 if dtype == torch.float32 else 1e-10)


@FAST
@given(inpaint_cases())
def test_closed_forms_against_dense_diagonal(case):
    op, mask, x, y = make(case)
    shape = x.shape
    m = broadcast_mask(mask, shape)
    xn, yn = x.numpy(), y.numpy()
    np.testing.assert_array_equal(op(x).numpy(), m * xn)  # zeros at missing pixels, same shape
    np.testing.assert_array_equal(op.adjoint(y).numpy(), m * yn)
    np.testing.assert_allclose(op.gram(x).numpy(), m * m * xn, atol=1e-15)
    # pseudo-inverse of a diagonal matrix: invert the nonzero diagonal entries
    with np.errstate(divide="ignore"):
        pinv_ref = np.where(m != 0, yn / m, 0.0)
    np.testing.assert_allclose(op.pinv(y).numpy(), pinv_ref, atol=1e-12)
    ax = op(x)
    torch.testing.assert_close(op(op.pinv(ax)), ax, rtol=0, atol=1e-12)


@FAST
@given(inpaint_cases(), st.floats(1e-3, 10.0), st.booleans())
def test_prox(case, rho, per_sample):
    op, mask, x, y = make(case)
    z = x
    r = torch.linspace(rho, 3 * rho, x.shape[0], dtype=torch.float64) if per_sample else rho
    p = op.prox(z, y, r)
    rb = r.view(-1, 1, 1, 1) if per_sample else r
    grad = 2 * op.adjoint(op(p) - y) + 2 * rb * (p - z)
    assert float(grad.abs().max()) < 1e-12
    op.cg_tol = 1e-12
    torch.testing.assert_close(p, op.prox_cg(z, y, r), rtol=0, atol=1e-9)


def test_prox_matches_dense_solve():
    g = torch.Generator().manual_seed(0)
    mask = (torch.rand(2, 5, 4, generator=g) > 0.5).double()
    op = Inpaint(mask)
    n = mask.numel()
    mat = np.diag(mask.flatten().numpy())
    z = torch.randn(1, 2, 5, 4, generator=g, dtype=torch.float64)
    y = torch.randn(1, 2, 5, 4, generator=g, dtype=torch.float64)
    ref = scipy.linalg.solve(mat.T @ mat + 0.3 * np.eye(n), mat.T @ y.flatten().numpy() + 0.3 * z.flatten().numpy())
    np.testing.assert_allclose(op.prox(z, y, 0.3).flatten().numpy(), ref, atol=1e-12)


@FAST
@given(inpaint_cases())
def test_svd_view(case):
    op, _, x, y = make(case)
    s = op.singular_values()
    torch.testing.assert_close(op.U(s * op.Vt(x)), op(x), rtol=0, atol=0)
    torch.testing.assert_close(op.V(s * op.Ut(y)), op.adjoint(y), rtol=0, atol=0)
    torch.testing.assert_close(op.Vt(op.V(x)), x)
    assert op.has_svd and op.closed_form_prox


def test_matches_deepinv():
    dinv = pytest.importorskip("deepinv")
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 16, 20, generator=g)
    for mask in (random_mask((3, 16, 20), 0.7, per_channel=True, seed=2), random_mask((16, 20), 0.5, seed=3)):
        d = dinv.physics.Inpainting(img_size=(3, 16, 20), mask=mask)
        torch.testing.assert_close(Inpaint(mask)(x), d.A(x), rtol=0, atol=0)
        torch.testing.assert_close(Inpaint(mask).adjoint(x), d.A_adjoint(x), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_dtypes_and_bool_masks(dtype):
    mask = torch.rand(8, 8) > 0.5
    x = torch.rand(2, 3, 8, 8).to(dtype)
    op = Inpaint(mask)
    for out in (op(x), op.adjoint(x), op.pinv(x), op.prox(x, x, 0.5), op.gram(x)):
        assert out.dtype == dtype and out.shape == x.shape
    assert torch.equal(op(x), x * mask.to(dtype))


def test_differentiable():
    op = Inpaint(torch.rand(5, 6) > 0.3)
    x = torch.randn(2, 1, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(op, (x,))
    assert torch.autograd.gradcheck(lambda v: op.prox(v, v * 2, 0.7), (x,))


def test_bad_inputs():
    op = Inpaint(torch.ones(3, 8, 8))
    with pytest.raises(ShapeError, match=r"\(1, 3, 8, 8\).*\(2, 3, 8, 9\)"):
        op(torch.zeros(2, 3, 8, 9))
    with pytest.raises(ShapeError, match="channels"):
        op(torch.zeros(2, 2, 8, 8))
    with pytest.raises(ShapeError, match="batch"):
        Inpaint(torch.ones(2, 1, 8, 8))(torch.zeros(3, 1, 8, 8))
    with pytest.raises(ShapeError, match="mask must have shape"):
        Inpaint(torch.ones(8))
    with pytest.raises(OperatorError, match=r"\[0, 1\]"):
        Inpaint(torch.full((4, 4), 2.0))
    with pytest.raises(OperatorError, match="NaN"):
        Inpaint(torch.full((4, 4), float("nan")))
    with pytest.raises(ShapeError):
        random_mask((8,), 0.5)
    with pytest.raises(OperatorError, match="p_missing"):
        random_mask((8, 8), 1.5)
    with pytest.raises(OperatorError, match="box"):
        box_mask((8, 8), box_size=9)
    assert issubclass(ShapeError, PnPError)


# ---------------------------------------------------------------------------------------------
# mask generators
# ---------------------------------------------------------------------------------------------
def test_random_mask():
    m = random_mask((4, 3, 16, 16), 0.7, seed=0)
    assert m.shape == (4, 3, 16, 16)
    assert set(m.unique().tolist()) <= {0.0, 1.0}
    assert (m.sum((2, 3)) == 256 - round(0.7 * 256)).all()  # exact fraction per image
    assert torch.equal(m[:, 0], m[:, 2])  # same pixels in every channel
    assert not torch.equal(m[0], m[1])
    pc = random_mask((1, 3, 16, 16), 0.5, per_channel=True, seed=0)
    assert not torch.equal(pc[0, 0], pc[0, 1])
    assert torch.equal(random_mask((16, 16), 0.3, seed=5), random_mask((16, 16), 0.3, seed=5))
    g = torch.Generator().manual_seed(5)
    assert torch.equal(random_mask((16, 16), 0.3, generator=g), random_mask((16, 16), 0.3, seed=5))


def test_box_mask():
    m = box_mask((3, 256, 256))
    assert m.shape == (3, 256, 256)
    assert (m == 0).sum() == 3 * 128 * 128
    assert (m[:, 64:192, 64:192] == 0).all()  # DPS/DiffPIR centred 128x128 box
    r = box_mask((5, 1, 64, 64), box_size=(16, 24), position="random", margin=4, seed=1)
    for i in range(5):
        rows = (r[i, 0] == 0).any(1).nonzero().flatten()
        cols = (r[i, 0] == 0).any(0).nonzero().flatten()
        assert len(rows) == 16 and len(cols) == 24
        assert rows.min() >= 4 and rows.max() <= 59 and cols.min() >= 4 and cols.max() <= 59
    assert torch.equal(r, box_mask((5, 1, 64, 64), box_size=(16, 24), position="random", margin=4, seed=1))
    e = box_mask((10, 12), box_size=3, position=(2, 5))
    assert (e == 0).nonzero().tolist() == [[i, j] for i in range(2, 5) for j in range(5, 8)]


def test_freeform_mask():
    m = freeform_mask((3, 2, 64, 64), seed=0)
    assert m.shape == (3, 2, 64, 64)
    assert set(m.unique().tolist()) <= {0.0, 1.0}
    frac = 1 - m.mean((1, 2, 3))
    assert (frac > 0).all() and (frac < 0.8).all()
    assert torch.equal(m[:, 0], m[:, 1])
    assert torch.equal(m, freeform_mask((3, 2, 64, 64), seed=0))
    assert not torch.equal(m, freeform_mask((3, 2, 64, 64), seed=1))
    op = Inpaint(m)
    x = torch.rand(3, 2, 64, 64)
    assert torch.equal(op(x) == 0, (m == 0) | (x == 0))
