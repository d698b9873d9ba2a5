"""Downsample: exact adjoint, closed-form prox/pinv, SVD view, and agreement with deepinv / MATLAB.

Reference values come from independent computations: dense matrices (built column by column from
the forward map, then solved with torch.linalg / numpy), deepinv's ``Downsampling`` and
``imresize_matlab``, and plain block means.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pnpdiff.errors import OperatorError, PnPError, ShapeError, ValueRangeError
from pnpdiff.operators import Downsample

pytestmark = pytest.mark.usefixtures("one_thread")

FILTERS = ["bicubic", "bilinear", "box", "gaussian"]
SETTINGS = settings(max_examples=25, deadline=None)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def dense(op, shape, dtype=torch.float64) -> torch.Tensor:
    """Dense matrix of ``op`` on per-sample inputs of ``shape`` (one column per basis vector)."""
    n = int(np.prod(shape))
    eye = torch.eye(n, dtype=dtype).reshape(n, *shape)
    return op(eye).reshape(n, -1).T


def _kernel(seed: int, kh: int, kw: int, separable: bool) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if separable:
        a = torch.rand(kh, generator=g, dtype=torch.float64)
        k = torch.outer(a, torch.rand(kw, generator=g, dtype=torch.float64))
    else:
        k = torch.rand(kh, kw, generator=g, dtype=torch.float64)
    return k / k.sum()


ops = st.one_of(
    st.tuples(st.sampled_from([1, 2, 3, 4, 5]), st.sampled_from(FILTERS)).map(lambda t: Downsample(t[0], t[1])),
    st.tuples(
        st.sampled_from([2, 3, 4]),
        st.integers(0, 10**6),
        st.integers(1, 9),
        st.integers(1, 9),
        st.booleans(),
    ).map(lambda t: Downsample(t[0], filter=_kernel(t[1], t[2], t[3], t[4]))),
)


@SETTINGS
@given(op=ops, b=st.integers(1, 3), c=st.integers(1, 3), mh=st.integers(1, 9), mw=st.integers(1, 9),
       double=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_adjoint_identity(op, b, c, mh, mw, double, seed):
    dtype = torch.float64 if double else torch.float32
    g = torch.Generator().manual_seed(seed)
    s = op.factor
    x = torch.randn(b, c, mh * s, mw * s, generator=g, dtype=dtype)
    y = torch.randn(b, c, mh, mw, generator=g, dtype=dtype)
    ax = op(x)
    assert ax.shape == y.shape
    lhs = (ax * y).sum(dtype=torch.float64)
    rhs = (x * op.adjoint(y)).sum(dtype=torch.float64)
    scale = float(ax.double().norm() * y.double().norm())
    assert abs(float(lhs - rhs)) / scale < (1e-10 if double else 1e-5)


@SETTINGS
@given(op=ops, mh=st.integers(1, 4), mw=st.integers(1, 4), seed=st.integers(0, 2**31 - 1))
def test_prox_pinv_against_dense(op, mh, mw, seed):
    s = op.factor
    shape = (1, mh * s, mw * s)
    mat = dense(op, shape)  # (m, n)
    n = mat.shape[1]
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, *shape, generator=g, dtype=torch.float64)
    z = torch.randn(2, *shape, generator=g, dtype=torch.float64)
    y = torch.randn(2, 1, mh, mw, generator=g, dtype=torch.float64)
    rho = torch.tensor([0.05, 3.0], dtype=torch.float64)
    # adjoint is the transpose of the dense forward matrix
    assert torch.allclose(op.adjoint(y).reshape(2, -1), y.reshape(2, -1) @ mat, atol=1e-12)
    # prox: (A^T A + rho I) x = A^T y + rho z, solved densely
    lhs = mat.T @ mat + rho[:, None, None] * torch.eye(n, dtype=torch.float64)
    rhs = y.reshape(2, -1) @ mat + rho[:, None] * z.reshape(2, -1)
    ref = torch.linalg.solve(lhs, rhs[..., None])[..., 0]
    assert rel(op.prox(z, y, rho).reshape(2, -1), ref) < 1e-9
    # pinv against numpy's SVD pseudo-inverse; A A+ A = A
    pinv = torch.from_numpy(np.linalg.pinv(mat.numpy(), rcond=1e-10))
    assert rel(op.pinv(y).reshape(2, -1), y.reshape(2, -1) @ pinv.T) < 1e-8
    assert rel(op(op.pinv(op(x))), op(x)) < 1e-9


@pytest.mark.parametrize("filt", FILTERS)
@pytest.mark.parametrize("s", [2, 3, 4])
def test_prox_optimality_and_cg_float32(filt, s):
    torch.manual_seed(0)
    op = Downsample(s, filt, cg_tol=1e-7, cg_max_iter=500)
    x = torch.rand(3, 2, 8 * s, 6 * s)
    y = op(x) + 0.05 * torch.randn(3, 2, 8, 6)
    z = torch.rand_like(x)
    rho = torch.tensor([0.01, 0.3, 10.0])
    p = op.prox(z, y, rho)
    grad = op.adjoint(op(p) - y) + rho.view(-1, 1, 1, 1) * (p - z)
    assert float(grad.norm() / (op.adjoint(y).norm() + z.norm())) < 1e-5
    assert rel(p, op.prox_cg(z, y, rho)) < 1e-4
    assert rel(op.prox(z, y, 0.5), op.prox_cg(z, y, 0.5)) < 1e-4


@pytest.mark.parametrize("filt", FILTERS)
@pytest.mark.parametrize("s", [2, 3, 4])
def test_svd_view(filt, s):
    torch.manual_seed(1)
    op = Downsample(s, filt)
    x = torch.randn(2, 3, 6 * s, 5 * s, dtype=torch.float64)
    y = torch.randn(2, 3, 6, 5, dtype=torch.float64)
    sv = op.singular_values(x)
    assert sv.shape == (1, 1, 6 * s, 5 * s)
    assert torch.all(sv[..., 6:, :] == 0) and torch.all(sv[..., :, 5:] == 0)
    assert rel(op.U(sv * op.Vt(x)), op(x)) < 1e-12
    assert rel(op.V(sv * op.Ut(y)), op.adjoint(y)) < 1e-12
    assert rel(op.V(op.Vt(x)), x) < 1e-12  # V orthogonal
    assert rel(op.U(op.Ut(y)), y) < 1e-12  # U orthogonal
    # the singular values are those of the dense matrix
    ref = torch.linalg.svdvals(dense(op, (1, 6 * s, 5 * s)))
    got = sv.flatten().sort(descending=True).values[: ref.numel()]
    assert torch.allclose(got, ref, atol=1e-12)


def test_svd_threshold_truncates():
    op = Downsample(4, "gaussian", sigma=3.0, svd_threshold=0.1)
    sv = op.singular_values((1, 1, 32, 32))
    kept = sv[..., :8, :8]
    assert (kept == 0).any() and float(kept[kept > 0].min()) >= 0.1 * float(kept.max())


@pytest.mark.parametrize("s", [2, 4, 6])
def test_bicubic_matches_deepinv_after_roll(s):
    """Same taps as deepinv's bicubic_filter; deepinv keeps samples centred at k s + 1/2 where MATLAB
    (and pnpdiff) centre them at (k + 1/2) s - 1/2: for even s the outputs agree after rolling the
    input by -(s - 2) / 2 pixels on both axes (exactly equal for s = 2)."""
    from deepinv.physics import Downsampling

    torch.manual_seed(2)
    x = torch.randn(2, 3, 8 * s, 4 * s, dtype=torch.float64)
    phys = Downsampling(filter="bicubic", factor=s, padding="circular", img_size=(3, 8 * s, 4 * s))
    phys = phys.to(torch.float64)
    r = (s - 2) // 2
    ref = phys.A(torch.roll(x, (-r, -r), (-2, -1)))
    assert rel(Downsample(s, "bicubic")(x), ref) < 1e-6  # deepinv's filter is built in float32


@pytest.mark.parametrize("s", [2, 3, 4])
def test_bicubic_matches_matlab_imresize_interior(s):
    """Away from the border (where MATLAB uses symmetric padding) Downsample(s) == imresize(x, 1/s)."""
    from deepinv.physics.functional import imresize_matlab

    torch.manual_seed(3)
    x = torch.rand(1, 3, 12 * s, 10 * s, dtype=torch.float64)
    ref = imresize_matlab(x, scale=1 / s, antialiasing=True, kernel="cubic", padding_type="reflect")
    out = Downsample(s, "bicubic")(x)
    assert out.shape == ref.shape
    assert float((out - ref)[..., 2:-2, 2:-2].abs().max()) < 1e-12


@pytest.mark.parametrize("s", [1, 2, 3, 4])
def test_box_is_block_mean(s):
    x = torch.randn(2, 3, 5 * s, 7 * s, dtype=torch.float64)
    ref = x.reshape(2, 3, 5, s, 7, s).mean((3, 5))
    assert float((Downsample(s, "box")(x) - ref).abs().max()) < 1e-14


@pytest.mark.parametrize("shape", [(5, 5), (4, 4), (3, 6), (6, 3), (7, 7)])
@pytest.mark.parametrize("separable", [True, False])
@pytest.mark.parametrize("s", [2, 3])
def test_user_kernel_equals_deepinv(shape, separable, s):
    """A user kernel follows deepinv's convention exactly (convolution, origin at k//2, x[::s])."""
    from deepinv.physics import Downsampling

    k = _kernel(7, *shape, separable)
    torch.manual_seed(4)
    x = torch.randn(2, 3, 6 * s, 4 * s, dtype=torch.float64)
    y = torch.randn(2, 3, 6, 4, dtype=torch.float64)
    z = torch.randn_like(x)
    phys = Downsampling(filter=k[None, None], factor=s, padding="circular", img_size=(3, 6 * s, 4 * s))
    op = Downsample(s, filter=k)
    assert op.has_svd == separable
    assert rel(op(x), phys.A(x)) < 1e-12
    assert rel(op.adjoint(y), phys.A_adjoint(y)) < 1e-12
    # deepinv's Zhao et al. prox_l2(z, y, gamma) = our prox(z, y, 1/gamma)
    assert rel(op.prox(z, y, 4.0), phys.prox_l2(z, y, 0.25)) < 1e-10


def test_classical_sr_blur_then_decimate():
    """Gaussian blur then decimation: equal to full convolution (via FFT) then x[::s]."""
    ax = torch.arange(-7, 8, dtype=torch.float64)
    k = torch.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * 1.6**2))
    k /= k.sum()
    s, h, w = 4, 32, 24
    x = torch.randn(1, 3, h, w, dtype=torch.float64)
    kp = torch.zeros(h, w, dtype=torch.float64)
    kp[:15, :15] = k
    kp = torch.roll(kp, (-7, -7), (0, 1))
    full = torch.fft.ifft2(torch.fft.fft2(x) * torch.fft.fft2(kp)).real
    assert rel(Downsample(s, filter=k)(x), full[..., ::s, ::s]) < 1e-12


def test_gradients_flow():
    op = Downsample(2, "bicubic")
    x = torch.randn(1, 1, 4, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(op, (x,))
    y = torch.randn(1, 1, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(op.adjoint, (y,))
    z = torch.randn(1, 1, 4, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z, y: op.prox(z, y, 0.3), (z, y))


def test_per_sample_rho_equals_separate_calls():
    op = Downsample(2)
    z = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    y = torch.randn(3, 1, 4, 4, dtype=torch.float64)
    rho = torch.tensor([0.1, 1.0, 5.0], dtype=torch.float64)
    out = op.prox(z, y, rho)
    for i in range(3):
        assert torch.allclose(out[i : i + 1], op.prox(z[i : i + 1], y[i : i + 1], float(rho[i])), atol=1e-13)


def test_bad_inputs_raise_pnp_errors():
    op = Downsample(4)
    with pytest.raises(ShapeError, match="not a multiple of the factor 4.*crop or pad"):
        op(torch.zeros(1, 3, 30, 32))
    with pytest.raises(ShapeError):
        op(torch.zeros(3, 32, 32))
    with pytest.raises(ShapeError, match="2-D"):
        Downsample(2, filter=torch.ones(2, 3, 3))
    with pytest.raises(OperatorError, match="unknown Downsample filter"):
        Downsample(2, filter="lanczos")
    with pytest.raises(OperatorError, match="circular"):
        Downsample(2, boundary="reflect")
    with pytest.raises(ValueRangeError):
        Downsample(0)
    with pytest.raises(ValueRangeError):
        Downsample(2.5)
    with pytest.raises(ValueRangeError, match="NaN"):
        op.pinv(torch.full((1, 1, 4, 4), float("nan")))
    with pytest.raises(ValueRangeError):
        Downsample(2, filter=torch.tensor([[1.0, float("nan")], [0.0, 1.0]]))
    with pytest.raises(OperatorError, match="spectral"):
        Downsample(2, filter=_kernel(0, 3, 3, separable=False)).Vt(torch.zeros(1, 1, 4, 4))
    with pytest.raises(ShapeError, match="singular_values"):
        op.singular_values()
    assert issubclass(ShapeError, PnPError)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_and_large_kernel_wrap(dtype):
    """Kernels wider than the image wrap around circularly (tiny images, large factors)."""
    op = Downsample(4, "bicubic")  # 16 taps on an 8-pixel axis
    x = torch.randn(1, 2, 8, 4, dtype=dtype)
    assert op(x).dtype == dtype
    mat = dense(op, (1, 8, 4), dtype=torch.float64)
    ref = x.double().reshape(2, -1) @ mat.T
    assert rel(op(x).double().reshape(2, -1), ref) < (1e-12 if dtype == torch.float64 else 1e-6)
