"""Identity, Colorize and Matrix: exact closed forms checked against numpy / dense solves / deepinv."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pnpdiff.errors import ShapeError, ValueRangeError
from pnpdiff.operators import Colorize, Identity, Matrix

pytestmark = pytest.mark.usefixtures("one_thread")

SETTINGS = settings(max_examples=30, deadline=None)


def rel(a, b) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


# ------------------------------------------------------------------------------------ Matrix
@SETTINGS
@given(m=st.integers(1, 10), n=st.integers(1, 10), b=st.integers(1, 4), rank_def=st.booleans(),
       seed=st.integers(0, 2**31 - 1))
def test_matrix_against_numpy(m, n, b, rank_def, seed):
    rng = np.random.default_rng(seed)
    mat = rng.standard_normal((m, n))
    if rank_def and min(m, n) > 1:
        mat[-1] = mat[0] * 2.0  # rank-deficient
    op = Matrix(mat)
    x, z = rng.standard_normal((b, n)), rng.standard_normal((b, n))
    y = rng.standard_normal((b, m))
    rho = rng.uniform(0.01, 5.0, size=b)
    t = torch.from_numpy
    assert np.allclose(op(t(x)).numpy(), x @ mat.T, atol=1e-12)
    assert np.allclose(op.adjoint(t(y)).numpy(), y @ mat, atol=1e-12)
    # adjoint identity
    lhs, rhs = np.sum((x @ mat.T) * y), float((t(x) * op.adjoint(t(y))).sum())
    assert abs(lhs - rhs) <= 1e-10 * np.linalg.norm(x @ mat.T) * np.linalg.norm(y) + 1e-300
    # pinv = numpy's pinv; A A+ A = A
    assert np.allclose(op.pinv(t(y)).numpy(), y @ np.linalg.pinv(mat).T, atol=1e-9)
    assert np.allclose(op(op.pinv(op(t(x)))).numpy(), x @ mat.T, atol=1e-9)
    # prox = dense solve of (M^T M + rho I) x = M^T y + rho z
    ref = np.stack([np.linalg.solve(mat.T @ mat + r * np.eye(n), mat.T @ yi + r * zi) for r, yi, zi in zip(rho, y, z)])
    assert np.allclose(op.prox(t(z), t(y), t(rho)).numpy(), ref, atol=1e-9)
    # SVD view reconstructs A and A^T, V and U orthogonal
    sv = op.singular_values()
    assert sv.shape == (n,)
    assert np.allclose(np.sort(sv.numpy())[::-1][: min(m, n)], np.linalg.svd(mat, compute_uv=False), atol=1e-12)
    assert np.allclose(op.U(sv * op.Vt(t(x))).numpy(), x @ mat.T, atol=1e-10)
    assert np.allclose(op.V(sv * op.Ut(t(y))).numpy(), y @ mat, atol=1e-10)
    assert np.allclose(op.V(op.Vt(t(x))).numpy(), x, atol=1e-12)


def test_matrix_float32_and_image_inputs():
    torch.manual_seed(0)
    mat = torch.randn(5, 2 * 3 * 3)
    op = Matrix(mat, input_shape=(2, 3, 3))
    x = torch.randn(4, 2, 3, 3)
    y = torch.randn(4, 5)
    assert op(x).shape == (4, 5)
    assert op.adjoint(y).shape == (4, 2, 3, 3)
    assert rel(op(x), x.reshape(4, -1) @ mat.T) < 1e-6
    lhs = (op(x) * y).sum(dtype=torch.float64)
    rhs = (x * op.adjoint(y)).sum(dtype=torch.float64)
    assert abs(float(lhs - rhs)) / float(op(x).norm() * y.norm()) < 1e-5
    p = op.prox(x, y, 0.3)
    assert p.shape == x.shape and p.dtype == torch.float32
    assert rel(p, op.prox_cg(x, y, 0.3)) < 1e-4


def test_matrix_gaussian_posterior_use_case():
    """d = 8, 2-D observation: the prox is the Gaussian posterior mean with prior N(z, I/rho)."""
    rng = np.random.default_rng(1)
    mat = rng.standard_normal((2, 8))
    op = Matrix(mat)
    z, y = rng.standard_normal((1, 8)), rng.standard_normal((1, 2))
    rho = 0.7
    # posterior of x ~ N(z, (2 rho)^-1 I), y | x ~ N(M x, 1/2 I): mean via the Kalman gain
    cov = np.eye(8) / (2 * rho)
    gain = cov @ mat.T @ np.linalg.inv(mat @ cov @ mat.T + 0.5 * np.eye(2))
    mean = z[0] + gain @ (y[0] - mat @ z[0])
    assert np.allclose(op.prox(torch.from_numpy(z), torch.from_numpy(y), rho).numpy()[0], mean, atol=1e-12)


def test_matrix_errors():
    with pytest.raises(ShapeError):
        Matrix(torch.zeros(3))
    with pytest.raises(ValueRangeError):
        Matrix([[1.0, float("nan")]])
    op = Matrix(torch.zeros(2, 4))
    with pytest.raises(ShapeError, match=r"\(B, 4\)"):
        op(torch.zeros(3, 5))
    with pytest.raises(ShapeError):
        op.adjoint(torch.zeros(3, 3))
    with pytest.raises(ShapeError):
        Matrix(torch.zeros(2, 4), input_shape=(3, 2))


# ---------------------------------------------------------------------------------- Colorize
def test_colorize_weights_and_deepinv():
    from deepinv.physics import Decolorize

    x = torch.rand(2, 3, 5, 4, dtype=torch.float64)
    op = Colorize()
    ref = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
    assert float((op(x) - ref).abs().max()) < 1e-15
    # deepinv's Decolorize approximates BT.601 to within 5e-5 per weight
    dec = Decolorize()
    assert float((op(x) - dec.A(x.float()).double()).abs().max()) < 1.5e-4
    srf = dec.srf.flatten().double()
    assert float((Colorize(weights=srf)(x) - dec.A(x.float()).double()).abs().max()) < 1e-6


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_colorize_closed_forms(dtype):
    torch.manual_seed(2)
    op = Colorize()
    x = torch.randn(3, 3, 6, 5, dtype=dtype)
    y = torch.randn(3, 1, 6, 5, dtype=dtype)
    z = torch.randn_like(x)
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    lhs = (op(x) * y).sum(dtype=torch.float64)
    rhs = (x * op.adjoint(y)).sum(dtype=torch.float64)
    assert abs(float(lhs - rhs)) / float(op(x).norm() * y.norm()) < tol
    # per-pixel dense 1x3 matrix: prox and pinv from torch.linalg
    w = torch.tensor([[0.299, 0.587, 0.114]], dtype=torch.float64)
    rho = torch.tensor([0.1, 1.0, 7.0], dtype=dtype)
    xp = x.double().permute(0, 2, 3, 1)[..., None]  # (B, H, W, 3, 1)
    zp = z.double().permute(0, 2, 3, 1)[..., None]
    yp = y.double().permute(0, 2, 3, 1)[..., None]
    r = rho.double().view(-1, 1, 1, 1, 1)
    ref = torch.linalg.solve(w.T @ w + r * torch.eye(3, dtype=torch.float64), w.T @ yp + r * zp)
    assert rel(op.prox(z, y, rho).double(), ref[..., 0].permute(0, 3, 1, 2)) < 10 * tol
    assert rel(op.pinv(y).double(), (torch.linalg.pinv(w) @ yp)[..., 0].permute(0, 3, 1, 2)) < 10 * tol
    assert rel(op(op.pinv(op(x))), op(x)) < 10 * tol
    assert xp.shape[-2] == 3
    # SVD view
    sv = op.singular_values(x)
    assert sv.shape == (1, 3, 1, 1) and abs(float(sv[0, 0]) - float(w.norm())) < tol
    assert rel(op.U(sv * op.Vt(x)), op(x)) < 10 * tol
    assert rel(op.V(sv * op.Ut(y)), op.adjoint(y)) < 10 * tol
    assert rel(op.V(op.Vt(x)), x) < 10 * tol


def test_colorize_errors():
    op = Colorize()
    with pytest.raises(ShapeError, match="3 channels"):
        op(torch.zeros(1, 1, 4, 4))
    with pytest.raises(ShapeError, match="grey"):
        op.adjoint(torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueRangeError):
        Colorize(weights=(0.0, 0.0, 0.0))


# ---------------------------------------------------------------------------------- Identity
def test_identity():
    op = Identity()
    x, y = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    assert torch.equal(op(x), x) and torch.equal(op.adjoint(y), y) and torch.equal(op.pinv(y), y)
    rho = torch.tensor([0.5, 2.0])
    p = op.prox(x, y, rho)
    assert torch.allclose(p, op.prox_cg(x, y, rho), atol=1e-5)
    assert torch.allclose(p + rho.view(-1, 1, 1, 1) * (p - x), y, atol=1e-6)  # optimality
    sv = op.singular_values(x)
    assert torch.equal(op.U(sv * op.Vt(x)), x)
