"""Blur operators and kernel builders: exactness against independent computations.

Reference values come from dense matrices built by applying the operator to basis vectors (whose
transpose, pseudo-inverse, normal equations and SVD are computed by NumPy/SciPy), from
``scipy.ndimage.convolve`` and from deepinv -- never from pnpdiff's own output.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import scipy.ndimage
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pnpdiff.errors import OperatorError, PnPError, ShapeError
from pnpdiff.operators import (
    Blur,
    GaussianBlur,
    LinearOperator,
    MotionBlur,
    UniformBlur,
    gaussian_kernel,
    motion_kernel,
    uniform_kernel,
)

pytestmark = pytest.mark.usefixtures("one_thread")

SCIPY_MODE = {"circular": "wrap", "reflect": "mirror", "zeros": "constant"}
FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: iterative (P)CG solves in float64: fewer, still varied, examples
SLOW = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def dense(op: LinearOperator, shape: tuple[int, ...], fn: str = "forward") -> np.ndarray:
    """Matrix of ``op.<fn>`` on inputs of ``shape`` (float64), by applying it to basis vectors."""
    n = math.prod(shape)
    eye = torch.eye(n, dtype=torch.float64).view(n, *shape[1:]) if shape[0] == 1 else None
    assert eye is not None
    out = getattr(op, fn)(eye)  # the batch dimension enumerates the basis vectors
    return out.reshape(n, -1).T.numpy()


def rel_adjoint_error(op: LinearOperator, x: torch.Tensor, y: torch.Tensor) -> float:
    """``|<Ax, y> - <x, A^T y>|`` relative to the Cauchy-Schwarz bound ``||Ax|| ||y||``."""
    ax = op(x)
    aty = op.adjoint(y)
    lhs = (ax.double() * y.double()).sum()
    rhs = (x.double() * aty.double()).sum()
    scale = (ax.double().norm() * y.double().norm()).clamp_min(1e-300)
    return float((lhs - rhs).abs() / scale)


@st.composite
def blur_cases(draw):
    boundary = draw(st.sampled_from(["circular", "reflect", "zeros"]))
    kh = draw(st.integers(1, 7))
    kw = draw(st.integers(1, 7))
    # reflect needs an image larger than half the kernel, zeros one at least as large as the
    # kernel; circular wraps a larger kernel around the image (allow_wrap=True, checked vs scipy)
    lo_h, lo_w = {"reflect": (kh // 2 + 1, kw // 2 + 1), "zeros": (kh, kw)}.get(boundary, (1, 1))
    h = draw(st.integers(max(lo_h, 2), 16))
    w = draw(st.integers(max(lo_w, 2), 16))
    b = draw(st.integers(1, 3))
    c = draw(st.integers(1, 3))
    per_channel = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    return boundary, (kh, kw), (b, c, h, w), per_channel, seed


def make_blur(case, dtype=torch.float64, normalise=False):
    boundary, (kh, kw), (b, c, h, w), per_channel, seed = case
    g = torch.Generator().manual_seed(seed)
    kshape = (c, kh, kw) if per_channel else (kh, kw)
    kernel = torch.rand(kshape, generator=g, dtype=torch.float64)
    if normalise:
        kernel = kernel / kernel.sum((-2, -1), keepdim=True)
    op = Blur(kernel, boundary=boundary, allow_wrap=boundary == "circular")
    x = torch.randn(b, c, h, w, generator=g, dtype=torch.float64).to(dtype)
    y = torch.randn(b, c, h, w, generator=g, dtype=torch.float64).to(dtype)
    return op, kernel, x, y


# ---------------------------------------------------------------------------------------------
# adjoint identity, gram, agreement with scipy
# ---------------------------------------------------------------------------------------------
@FAST
@given(blur_cases())
def test_adjoint_identity_float64(case):
    op, _, x, y = make_blur(case, torch.float64)
    assert rel_adjoint_error(op, x, y) < 1e-10


@FAST
@given(blur_cases())
def test_adjoint_identity_float32(case):
    op, _, x, y = make_blur(case, torch.float32)
    assert rel_adjoint_error(op, x, y) < 1e-5


@FAST
@given(blur_cases())
def test_forward_matches_scipy_ndimage(case):
    """Convolution with centre (h//2, w//2): scipy.ndimage.convolve uses the same origin."""
    op, kernel, x, _ = make_blur(case)
    out = op(x).numpy()
    k = kernel.numpy()
    mode = SCIPY_MODE[case[0]]
    for bi in range(x.shape[0]):
        for ci in range(x.shape[1]):
            kc = k[ci] if k.ndim == 3 else k
            ref = scipy.ndimage.convolve(x[bi, ci].numpy(), kc, mode=mode, cval=0.0)
            np.testing.assert_allclose(out[bi, ci], ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("boundary", ["circular", "reflect", "zeros"])
@pytest.mark.parametrize("ksize", [(3, 3), (4, 5), (7, 6)])
def test_adjoint_is_dense_transpose(boundary, ksize):
    g = torch.Generator().manual_seed(1)
    op = Blur(torch.rand(ksize, generator=g, dtype=torch.float64), boundary=boundary)
    shape = (1, 1, 7, 8)
    m = dense(op, shape)
    mt = dense(op, shape, "adjoint")
    np.testing.assert_allclose(mt, m.T, atol=1e-13)
    np.testing.assert_allclose(dense(op, shape, "gram"), m.T @ m, atol=1e-12)


@pytest.mark.parametrize("boundary", ["reflect", "zeros"])
def test_large_kernel_fft_path(boundary, monkeypatch):
    """Spatial boundaries use an FFT of the padded image for large kernels: same matrix."""
    import pnpdiff.operators.blur as blur_module

    g = torch.Generator().manual_seed(2)
    k = torch.rand(2, 5, 4, generator=g, dtype=torch.float64)
    x = torch.randn(2, 2, 9, 11, generator=g, dtype=torch.float64)
    pad = torch.nn.functional.pad(x, (1, 2, 2, 2), mode="reflect" if boundary == "reflect" else "constant")
    ref = torch.nn.functional.conv2d(pad, k.flip(-2, -1)[:, None], groups=2)
    monkeypatch.setattr(blur_module, "_DIRECT_CONV_MAX_TAPS", 0)
    op = Blur(k, boundary=boundary)
    torch.testing.assert_close(op(x), ref, rtol=0, atol=1e-12)
    shape = (1, 2, 6, 7)
    np.testing.assert_allclose(dense(op, shape, "adjoint"), dense(op, shape).T, atol=1e-13)
    assert rel_adjoint_error(op, x.float(), torch.randn(2, 2, 9, 11, generator=g).float()) < 1e-5


@pytest.mark.parametrize("boundary", ["circular", "reflect", "zeros"])
def test_gram_equals_adjoint_forward(boundary):
    g = torch.Generator().manual_seed(3)
    op = GaussianBlur((2.0, 1.0), angle=20.0, boundary=boundary)
    x = torch.randn(2, 3, 32, 40, generator=g, dtype=torch.float64)
    torch.testing.assert_close(op.gram(x), op.adjoint(op(x)), rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# pinv, prox (closed form for circular, CG for spatial)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("thr", [0.0, 1e-3, 0.1])
def test_circular_pinv_matches_numpy_truncated_pinv(thr):
    g = torch.Generator().manual_seed(4)
    op = Blur(torch.rand(3, 4, generator=g, dtype=torch.float64), pinv_threshold=thr)
    shape = (1, 1, 6, 7)
    m = dense(op, shape)
    # numpy drops singular values <= rcond * max (the operator keeps > thr * max)
    np.testing.assert_allclose(dense(op, shape, "pinv"), np.linalg.pinv(m, rcond=max(thr, 1e-12)), atol=1e-9)


@FAST
@given(blur_cases())
def test_a_pinv_a_equals_a(case):
    op, kernel, x, _ = make_blur(case)
    if op.boundary != "circular":
        # CG fallback: a kernel with a dominant centre tap keeps the system well conditioned
        delta = torch.zeros_like(kernel)
        delta[..., kernel.shape[-2] // 2, kernel.shape[-1] // 2] = 1.0
        op = Blur(delta + 0.1 * kernel / kernel.sum((-2, -1), keepdim=True), boundary=op.boundary)
    op.cg_tol, op.cg_max_iter = 1e-12, 500
    ax = op(x)
    err = (op(op.pinv(ax)) - ax).norm()
    if op.boundary == "circular":
        # exact up to the truncated frequencies, where |K| <= thr * max|K| <= thr * sum|k|
        kmax = float(op.kernel.abs().sum((1, 2)).max())
        assert err <= op.pinv_threshold * kmax * x.norm() + 1e-9 * (1 + ax.norm())
    else:  # conjugate gradient on the normal equations
        assert err <= 1e-6 * (1 + ax.norm())


def test_a_pinv_a_exact_for_invertible_kernel():
    g = torch.Generator().manual_seed(5)
    k = torch.zeros(5, 5, dtype=torch.float64)
    k[2, 2] = 1.0
    k = k + 0.05 * torch.rand(5, 5, generator=g, dtype=torch.float64)  # spectrum away from 0
    x = torch.randn(1, 2, 12, 12, generator=g, dtype=torch.float64)
    for boundary in ("circular", "reflect", "zeros"):
        op = Blur(k, boundary=boundary, cg_tol=1e-12, cg_max_iter=500)
        torch.testing.assert_close(op(op.pinv(op(x))), op(x), rtol=0, atol=1e-8)
        torch.testing.assert_close(op.pinv(op(x)), x, rtol=0, atol=1e-6)


@SLOW
@given(blur_cases(), st.floats(0.05, 10.0), st.booleans())
def test_prox_optimality(case, rho, per_sample):
    op, _, x, y = make_blur(case, normalise=True)  # ||A|| <= 1: CG needs few iterations
    op.cg_tol, op.cg_max_iter = 1e-12, 500
    z = x
    r = torch.linspace(rho, 2 * rho, x.shape[0], dtype=torch.float64) if per_sample else rho
    p = op.prox(z, y, r)
    rb = r.view(-1, 1, 1, 1) if per_sample else r
    grad = 2 * op.adjoint(op(p) - y) + 2 * rb * (p - z)
    scale = (op.adjoint(y).norm() + (rb * z).norm()) if per_sample else (op.adjoint(y).norm() + rho * z.norm())
    assert float(grad.norm() / scale) < 1e-8
    torch.testing.assert_close(p, op.prox_cg(z, y, r), rtol=0, atol=1e-8)


def test_prox_matches_dense_solve():
    g = torch.Generator().manual_seed(6)
    op = Blur(torch.rand(2, 4, 3, generator=g, dtype=torch.float64))  # per-channel kernels
    shape = (1, 2, 6, 5)
    m = dense(op, shape)
    z = torch.randn(shape, generator=g, dtype=torch.float64)
    y = torch.randn(shape, generator=g, dtype=torch.float64)
    rho = 0.37
    ref = scipy.linalg.solve(m.T @ m + rho * np.eye(m.shape[0]), m.T @ y.flatten().numpy() + rho * z.flatten().numpy())
    np.testing.assert_allclose(op.prox(z, y, rho).flatten().numpy(), ref, atol=1e-10)


def test_closed_form_flags():
    k = torch.ones(3, 3)
    assert Blur(k).closed_form_prox and Blur(k).has_svd
    for b in ("reflect", "zeros"):
        assert not Blur(k, boundary=b).closed_form_prox
        assert not Blur(k, boundary=b).has_svd
        with pytest.raises(OperatorError, match="spectral"):
            Blur(k, boundary=b).Vt(torch.zeros(1, 1, 4, 4))


# ---------------------------------------------------------------------------------------------
# spectral view (circular)
# ---------------------------------------------------------------------------------------------
@st.composite
def circ_cases(draw):
    kh, kw = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 13)), draw(st.integers(1, 13)))
    return "circular", (kh, kw), shape, draw(st.booleans()), draw(st.integers(0, 2**16))


@FAST
@given(circ_cases())
def test_svd_reconstructs_operator(case):
    op, _, x, y = make_blur(case)
    s = op.singular_values(x)
    torch.testing.assert_close(op.U(s * op.Vt(x)), op(x), rtol=0, atol=1e-12)
    torch.testing.assert_close(op.V(s * op.Ut(y)), op.adjoint(y), rtol=0, atol=1e-12)
    # orthonormal bases: inverse and isometry
    torch.testing.assert_close(op.Vt(op.V(y)), y, rtol=0, atol=1e-12)
    torch.testing.assert_close(op.V(op.Vt(y)), y, rtol=0, atol=1e-12)
    torch.testing.assert_close(op.Ut(op.U(y)), y, rtol=0, atol=1e-12)
    dot = (op.Vt(x) * op.Vt(y)).flatten(1).sum(1)
    torch.testing.assert_close(dot, (x * y).flatten(1).sum(1), rtol=1e-12, atol=1e-12)
    assert (s >= 0).all()


@pytest.mark.parametrize("hw", [(6, 7), (8, 8), (5, 4), (1, 6)])
def test_spectral_bases_are_orthogonal_matrices(hw):
    g = torch.Generator().manual_seed(7)
    op = Blur(torch.rand(3, 4, generator=g, dtype=torch.float64), allow_wrap=True)  # (1, 6): wrapped
    shape = (1, 1, *hw)
    n = math.prod(hw)
    for fn in ("Vt", "U"):
        q = dense(op, shape, fn)
        np.testing.assert_allclose(q.T @ q, np.eye(n), atol=1e-12)
    # singular values = those of the dense matrix
    m = dense(op, shape)
    s = op.singular_values(shape, dtype=torch.float64).flatten().numpy()
    np.testing.assert_allclose(np.sort(s), np.sort(np.linalg.svd(m, compute_uv=False)), atol=1e-12)


def test_svd_is_scaled_rotation_on_pairs():
    """In the packed real Fourier basis, circular convolution is a 2x2 block-diagonal scaled rotation."""
    g = torch.Generator().manual_seed(8)
    op = Blur(torch.rand(3, 3, generator=g, dtype=torch.float64))
    shape = (1, 1, 6, 6)
    m = dense(op, shape)
    vt = dense(op, shape, "Vt")
    t = vt @ m @ vt.T  # the operator in the (V, V) basis
    blocks = np.zeros_like(t)
    # columns 1..4 pair up (2j-1, 2j) -> every 2x2 block on a row; columns 0 and 5 pair rows
    for i in range(6):
        for j in range(6):
            if j in (0, 5):
                rows = [i] if i in (0, 5) else ([i, i + 1] if i % 2 == 1 else [i - 1, i])
                cols = [j]
            else:
                rows, cols = [i], ([j, j + 1] if j % 2 == 1 else [j - 1, j])
            for r in rows:
                for c in cols:
                    blocks[r * 6 + c, i * 6 + j] = 1
    assert np.abs(t * (1 - blocks)).max() < 1e-12
    s = op.singular_values((6, 6), dtype=torch.float64).flatten().numpy()
    np.testing.assert_allclose(np.linalg.norm(t, axis=0), s, atol=1e-12)  # each column scaled by s


def test_svd_threshold_truncates():
    op = GaussianBlur(2.0, svd_threshold=1e-2)
    s = op.singular_values((32, 32), dtype=torch.float64)
    full = GaussianBlur(2.0).singular_values((32, 32), dtype=torch.float64)
    keep = full > 1e-2 * full.max()
    assert (s[keep] == full[keep]).all() and (s[~keep] == 0).all() and (~keep).any()


def test_singular_values_needs_a_size():
    op = GaussianBlur(1.0)
    with pytest.raises(OperatorError, match="img_size"):
        op.singular_values()
    assert GaussianBlur(1.0, img_size=(8, 9)).singular_values().shape == (1, 8, 9)
    op.Vt(torch.zeros(1, 3, 10, 12))
    assert op.singular_values().shape == (1, 10, 12)


# ---------------------------------------------------------------------------------------------
# deepinv agreement
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ksize", [(5, 5), (4, 6), (8, 7)])
def test_matches_deepinv(ksize):
    dinv = pytest.importorskip("deepinv")
    g = torch.Generator().manual_seed(9)
    k = torch.rand(ksize, generator=g, dtype=torch.float64)
    k = k / k.sum()
    x = torch.rand(2, 3, 20, 24, generator=g, dtype=torch.float64)
    d = dinv.physics.BlurFFT(img_size=(3, 20, 24), filter=k[None, None])
    torch.testing.assert_close(Blur(k)(x), d.A(x), rtol=0, atol=1e-12)
    torch.testing.assert_close(Blur(k).adjoint(x), d.A_adjoint(x), rtol=0, atol=1e-12)
    for padding, boundary in (("reflect", "reflect"), ("zeros", "zeros"), ("circular", "circular")):
        d = dinv.physics.Blur(filter=k[None, None], padding=padding)
        torch.testing.assert_close(Blur(k, boundary=boundary)(x), d.A(x), rtol=0, atol=1e-12)
        torch.testing.assert_close(Blur(k, boundary=boundary).adjoint(x), d.A_adjoint(x), rtol=0, atol=1e-12)


def test_gaussian_kernel_matches_deepinv():
    """deepinv's sigma pair is (row, column); ours is (x=column, y=row): same kernel, swapped pair."""
    dfn = pytest.importorskip("deepinv.physics.functional")
    for sigma, angle in (((2.0, 1.0), 30.0), ((1.0, 3.0), -70.0), ((1.5, 1.5), 0.0)):
        ref = dfn.gaussian_blur(sigma=sigma, angle=angle, dtype=torch.float64)[0, 0]
        mine = gaussian_kernel(sigma[::-1], size=ref.shape, angle=angle, dtype=torch.float64)
        torch.testing.assert_close(mine, ref, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# kernel builders
# ---------------------------------------------------------------------------------------------
def test_gaussian_kernel_properties():
    k = gaussian_kernel(3.0)
    assert k.shape == (19, 19)
    torch.testing.assert_close(k.sum(), torch.tensor(1.0))
    assert int(k.argmax()) == 9 * 19 + 9
    torch.testing.assert_close(k, k.flip(0))
    torch.testing.assert_close(k, k.T)
    # separable: outer product of 1-D Gaussians evaluated independently
    t = np.arange(19) - 9
    g1 = np.exp(-(t**2) / 18.0)
    np.testing.assert_allclose(k.double().numpy(), np.outer(g1, g1) / np.outer(g1, g1).sum(), atol=1e-7)
    assert gaussian_kernel((1.0, 2.0)).shape == (13, 13)
    kx = gaussian_kernel((3.0, 0.5), size=(15, 15), angle=90.0, dtype=torch.float64)
    torch.testing.assert_close(kx, gaussian_kernel((0.5, 3.0), size=(15, 15), dtype=torch.float64), atol=1e-12, rtol=0)


def test_uniform_kernel():
    torch.testing.assert_close(uniform_kernel((2, 3)), torch.full((2, 3), 1 / 6))
    x = torch.rand(1, 1, 9, 9, dtype=torch.float64)
    ref = scipy.ndimage.uniform_filter(x[0, 0].numpy(), size=3, mode="wrap")
    np.testing.assert_allclose(UniformBlur(3)(x)[0, 0].numpy(), ref, atol=1e-12)


def test_motion_kernel_seeded_and_normalised():
    a = motion_kernel(61, 0.5, seed=3)
    b = motion_kernel(61, 0.5, seed=3)
    c = motion_kernel(61, 0.5, seed=4)
    assert a.shape == (61, 61)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert (a >= 0).all()
    torch.testing.assert_close(a.sum(), torch.tensor(1.0))
    gen = torch.Generator().manual_seed(3)
    assert torch.equal(motion_kernel(61, 0.5, generator=gen), a)
    # centred: the centre of mass is near the kernel centre
    idx = torch.arange(61.0)
    com = ((a.sum(1) * idx).sum(), (a.sum(0) * idx).sum())
    assert abs(float(com[0]) - 30) < 8 and abs(float(com[1]) - 30) < 8
    op = MotionBlur(seed=3)
    torch.testing.assert_close(op.kernel[0].float(), a)


def test_motion_kernel_intensity_spreads_mass():
    def spread(intensity):
        out = []
        for s in range(8):
            k = motion_kernel(31, intensity, seed=s, dtype=torch.float64)
            out.append(float((k > 1e-3 * k.max()).sum()))
        return np.mean(out)

    assert spread(0.9) > spread(0.1)


# ---------------------------------------------------------------------------------------------
# dtypes, autograd, bad inputs
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("boundary", ["circular", "reflect", "zeros"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_dtypes_are_preserved(boundary, dtype):
    op = GaussianBlur(1.0, boundary=boundary)
    x = torch.rand(2, 3, 16, 16).to(dtype)
    for fn in (op.forward, op.adjoint, op.gram):
        out = fn(x)
        assert out.dtype == dtype and out.shape == x.shape
        torch.testing.assert_close(out.float(), fn(x.float()), atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize("boundary", ["circular", "reflect", "zeros"])
def test_differentiable(boundary):
    op = Blur(torch.rand(3, 4, dtype=torch.float64), boundary=boundary)
    x = torch.randn(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    # fast mode: finite differences against the analytical Jacobian along random directions
    assert torch.autograd.gradcheck(op, (x,), fast_mode=True)
    assert torch.autograd.gradcheck(op.adjoint, (x,), fast_mode=True)
    if boundary == "circular":
        z = torch.randn(1, 2, 5, 6, dtype=torch.float64)
        assert torch.autograd.gradcheck(lambda v: op.prox(z, v, 0.5), (x,), fast_mode=True)


def test_bad_inputs():
    for bad in (torch.ones(5), torch.ones(1, 1, 3, 3), torch.ones(0, 3)):
        with pytest.raises(OperatorError, match="kernel"):
            Blur(bad)
    with pytest.raises(OperatorError, match="NaN"):
        Blur(torch.tensor([[1.0, float("nan")]]))
    with pytest.raises(OperatorError, match="boundary"):
        Blur(torch.ones(3, 3), boundary="mirror")
    with pytest.raises(OperatorError, match="sigma"):
        GaussianBlur(-1.0)
    with pytest.raises(OperatorError, match="intensity"):
        MotionBlur(intensity=2.0)
    op = Blur(torch.ones(3, 5, 5))
    with pytest.raises(ShapeError, match=r"\(1, 2, 8, 8\)"):
        op(torch.zeros(1, 2, 8, 8))
    with pytest.raises(ShapeError, match="reflect"):
        Blur(torch.ones(9, 9), boundary="reflect")(torch.zeros(1, 1, 4, 4))
    with pytest.raises(ShapeError, match=r"\(B, C, H, W\)"):
        GaussianBlur(1.0)(torch.zeros(8, 8))
    assert issubclass(ShapeError, PnPError) and issubclass(OperatorError, PnPError)


@pytest.mark.parametrize("kind", ["gaussian", "random-per-channel"])
def test_mirror_prox_preconditioner_is_spd(kind):
    g = torch.Generator().manual_seed(11)
    if kind == "gaussian":
        op = GaussianBlur(1.0, boundary="reflect").double()
    else:
        op = Blur(torch.rand(2, 5, 3, generator=g, dtype=torch.float64), boundary="reflect")
    shape = (1, 2, 7, 9)
    n = 7 * 9
    eye = torch.eye(2 * n, dtype=torch.float64).view(2 * n, 2, 7, 9)
    like = torch.zeros(shape, dtype=torch.float64)
    m = op.mirror_prox_preconditioner(shape, 0.05, like)(eye).reshape(2 * n, 2 * n)
    torch.testing.assert_close(m, m.T, rtol=0, atol=1e-12)
    assert float(torch.linalg.eigvalsh(m).min()) > 0


def test_reflect_prox_matches_dense_solve():
    g = torch.Generator().manual_seed(12)
    op = Blur(torch.rand(2, 5, 3, generator=g, dtype=torch.float64), boundary="reflect", cg_tol=1e-13, cg_max_iter=500)
    shape = (1, 2, 8, 7)
    m = dense(op, shape)
    z = torch.randn(shape, generator=g, dtype=torch.float64)
    y = torch.randn(shape, generator=g, dtype=torch.float64)
    rho = 0.05
    ref = scipy.linalg.solve(m.T @ m + rho * np.eye(m.shape[0]), m.T @ y.flatten().numpy() + rho * z.flatten().numpy())
    np.testing.assert_allclose(op.prox(z, y, rho).flatten().numpy(), ref, atol=1e-9)


def test_reflect_prox_converges_in_few_iterations(monkeypatch):
    import pnpdiff.operators.blur as blur_mod

    calls = []
    real_cg = blur_mod.conjugate_gradient

    def counting_cg(apply, *args, **kwargs):
        def counted(v):
            calls.append(1)
            return apply(v)

        return real_cg(counted, *args, **kwargs)

    monkeypatch.setattr(blur_mod, "conjugate_gradient", counting_cg)
    g = torch.Generator().manual_seed(13)
    op = GaussianBlur(3.0, boundary="reflect", cg_tol=1e-4).double()
    x = torch.rand(1, 1, 64, 64, generator=g, dtype=torch.float64)
    op.prox(x, op(x), 0.05)
    assert len(calls) - 1 <= 4  # circular preconditioner: about 6, plain CG: about 9
