"""Non-parametric blind deblurring (issue 28, item 1): the kernel M-step and the EM estimate."""

from __future__ import annotations

import pytest
import torch

from pnpdiff.blind import (
    BlindResult,
    centred_kernel_error,
    estimate_kernel,
    kernel_mstep,
    normal_equations,
    normalised_sparsity,
    project_simplex,
)
from pnpdiff.errors import PnPError, ShapeError, ValueRangeError
from pnpdiff.operators import Blur


def _features(z: torch.Tensor, gradients: bool) -> torch.Tensor:
    z = z.reshape(-1, *z.shape[-2:])
    if not gradients:
        return z
    return torch.cat([torch.roll(z, -1, -1) - z, torch.roll(z, -1, -2) - z])


def _dense_matrix(x: torch.Tensor, size: tuple[int, int], gradients: bool) -> torch.Tensor:
    """The explicit convolution matrix: one column per kernel tap, built by shifting x (Blur's
    convention: the tap (a, b) multiplies x shifted by (a - h//2, b - w//2))."""
    h, w = size
    cols = []
    for a in range(h):
        for b in range(w):
            cols.append(_features(torch.roll(x, (a - h // 2, b - w // 2), (-2, -1)), gradients).reshape(-1))
    return torch.stack(cols, 1)


def _problem(seed: int = 0, shape=(2, 3, 20, 24), size=(5, 3), noise=0.01):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g, dtype=torch.float64)
    k = torch.rand(size, generator=g, dtype=torch.float64)
    k /= k.sum()
    y = Blur(k)(x) + noise * torch.randn(shape, generator=g, dtype=torch.float64)
    return x, k, y


@pytest.mark.parametrize("gradients", [True, False])
@pytest.mark.parametrize("l2", [0.0, 0.7])
def test_unconstrained_mstep_is_dense_least_squares(gradients, l2):
    """Bug caught: a wrong centre convention, a transposed autocorrelation index or a missing
    channel/direction in the normal equations (the FFT-built M and b against the explicit matrix)."""
    x, _, y = _problem()
    size = (5, 3)
    A = _dense_matrix(x, size, gradients)
    g = _features(y, gradients).reshape(-1)
    n = size[0] * size[1]
    A_aug = torch.cat([A, l2**0.5 * torch.eye(n, dtype=A.dtype)])
    g_aug = torch.cat([g, torch.zeros(n, dtype=A.dtype)])
    ref = torch.linalg.lstsq(A_aug, g_aug[:, None]).solution[:, 0].reshape(size)
    got = kernel_mstep(x, y, size, l2=l2, gradients=gradients, constrained=False)
    assert got.dtype == torch.float64 and got.shape == size
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-10)


def test_normal_equations_match_dense_gram():
    x, _, y = _problem(seed=3)
    A = _dense_matrix(x, (5, 3), True)
    M, b, c = normal_equations(x, y, (5, 3), True)
    torch.testing.assert_close(M, A.T @ A, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(b, A.T @ _features(y, True).reshape(-1), rtol=1e-10, atol=1e-10)


def _projected_gradient(Q: torch.Tensor, b: torch.Tensor, iters: int = 100_000) -> torch.Tensor:
    """Reference: plain projected gradient on k^T Q k - 2 b^T k over the simplex, step 1/L."""
    L = float(torch.linalg.eigvalsh(Q).max())
    k = torch.full((Q.shape[0],), 1.0 / Q.shape[0], dtype=Q.dtype)
    for _ in range(iters):
        k = project_simplex(k - (Q @ k - b) / L)
    return k


def test_constrained_mstep_matches_projected_gradient():
    """Bug caught: a wrong simplex projection or ADMM / KKT polish that stops off the optimum.
    A sparse planted kernel at high noise makes many constraints active."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 1, 24, 24, generator=g, dtype=torch.float64)
    k = torch.zeros(5, 5, dtype=torch.float64)
    k[2, 1:4] = 1.0
    k[1, 3] = 1.0
    k /= k.sum()
    y = Blur(k)(x) + 0.05 * torch.randn(x.shape, generator=g, dtype=torch.float64)
    l2 = 0.1
    M, b, _ = normal_equations(x, y, (5, 5), True)
    ref = _projected_gradient(M + l2 * torch.eye(25, dtype=M.dtype), b, iters=30_000)
    got = kernel_mstep(x, y, 5, l2=l2)
    assert float(got.min()) >= 0.0
    assert abs(float(got.sum()) - 1.0) < 1e-12
    assert int((got == 0).sum()) >= 5  # active constraints were exercised
    torch.testing.assert_close(got.reshape(-1), ref, rtol=0, atol=1e-8)


def test_project_simplex():
    v = torch.tensor([[0.5, 0.2, -1.0], [3.0, 3.0, 3.0], [0.2, 0.3, 0.5]], dtype=torch.float64)
    p = project_simplex(v)
    torch.testing.assert_close(p.sum(-1), torch.ones(3, dtype=torch.float64))
    assert float(p.min()) >= 0
    torch.testing.assert_close(p[0], torch.tensor([0.65, 0.35, 0.0], dtype=torch.float64))
    torch.testing.assert_close(p[2], v[2])


@pytest.mark.parametrize("constrained", [True, False])
def test_mstep_recovers_planted_kernel_exactly_without_noise(constrained):
    """x known, sigma_y = 0: the M-step returns the planted kernel (any data term the model fits
    exactly has it as a minimiser; the gradient-domain autocorrelation of a random image is well
    conditioned, so it is the only one)."""
    x, k, y = _problem(seed=5, shape=(1, 3, 32, 32), size=(7, 7), noise=0.0)
    got = kernel_mstep(x, y, 7, constrained=constrained)
    torch.testing.assert_close(got, k, rtol=0, atol=1e-9)


def test_mstep_variance_term_is_expected_data_term():
    """The EM covariance term: variance v adds v N sum_D ||D k||^2 (checked against a Monte-Carlo
    free identity: the objective difference of two kernels)."""
    x, _, y = _problem(seed=2, shape=(1, 1, 16, 16), size=(3, 3))
    v = 0.01
    k_plain = kernel_mstep(x, y, 3, constrained=False)
    k_var = kernel_mstep(x, y, 3, constrained=False, variance=v)
    # the variance term penalises differences of k: k_var is smoother (smaller sum_D ||D k||^2)
    def rough(k: torch.Tensor) -> float:
        kp = torch.nn.functional.pad(k, (1, 1, 1, 1))
        return float(((kp[1:] - kp[:-1]) ** 2).sum() + ((kp[:, 1:] - kp[:, :-1]) ** 2).sum())
    assert rough(k_var) < rough(k_plain)


def _smooth_random_image(seed: int, n: int = 64) -> torch.Tensor:
    """A Gaussian-process image with a 1/f^2 power spectrum (natural-image statistics, Field 1987),
    scaled into [0.1, 0.9]."""
    g = torch.Generator().manual_seed(seed)
    f = torch.fft.fftfreq(n, dtype=torch.float64)
    r = torch.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    amp = 1.0 / torch.clamp(r, min=1.0 / n)
    z = torch.randn(3, n, n, generator=g, dtype=torch.float64)
    img = torch.fft.ifft2(torch.fft.fft2(z) * amp).real
    img = (img - img.amin((-2, -1), keepdim=True)) / (img.amax((-2, -1), keepdim=True)
                                                       - img.amin((-2, -1), keepdim=True))
    return (0.1 + 0.8 * img)[None].float()


def test_centred_kernel_error_ignores_shifts():
    k = torch.zeros(9, 9, dtype=torch.float64)
    k[4, 2:7] = 0.2
    shifted = torch.roll(k, (1, -2), (0, 1))
    assert centred_kernel_error(shifted, k) < 1e-9
    assert centred_kernel_error(k.T, k) > 0.5


def test_centred_kernel_error_takes_a_blurs_kernel():
    """A ``Blur``'s ``(1, h, w)`` kernel is the same kernel as its ``(h, w)`` view (it raised a raw
    torch error); the error is scale-free (both normalised to sum one)."""
    k = torch.zeros(9, 9, dtype=torch.float64)
    k[4, 2:7] = 0.2
    op = Blur(k)
    wrong = torch.zeros(9, 9, dtype=torch.float64)
    wrong[2:7, 4] = 0.2
    assert centred_kernel_error(op.kernel, k) < 1e-9
    assert centred_kernel_error(wrong, op.kernel) == pytest.approx(centred_kernel_error(wrong, k), abs=1e-12)
    assert centred_kernel_error(3.0 * wrong, k) == pytest.approx(centred_kernel_error(wrong, k), abs=1e-12)


@pytest.mark.parametrize("bad, error", [
    (torch.zeros(5, 5), ValueRangeError),           # sums to zero
    (torch.full((3, 3), float("nan")), ValueRangeError),
    (torch.ones(2, 3, 3), ShapeError),              # two kernels
    (torch.ones(0, 3), ShapeError),
    ([[0.0, 1.0, 0.0]], ShapeError),                # not a tensor
])
def test_centred_kernel_error_refuses_bad_kernels(bad, error):
    k = torch.ones(3, 3, dtype=torch.float64)
    with pytest.raises(error):
        centred_kernel_error(bad, k)
    with pytest.raises(error):
        centred_kernel_error(k, bad)


def test_estimate_kernel_result_and_history():
    """Shapes, normalisation, the history and the denoiser count on a tiny run (a callable prior)."""
    from pnpdiff.priors import load_prior

    x = _smooth_random_image(0, 32)
    k = torch.ones(3, 3) / 9
    y = Blur(k)(x)
    calls = []
    prior = load_prior("natural")
    r = estimate_kernel(y, 5, prior, 0.01, scales=2, iters=1, callback=calls.append)
    assert isinstance(r, BlindResult)
    assert r.x.shape == y.shape
    assert r.kernel.shape == (5, 5) and r.kernel.dtype == torch.float64
    assert float(r.kernel.min()) >= 0 and abs(float(r.kernel.sum()) - 1) < 1e-9
    assert len(r.history) == 2 == len(calls)
    assert {"scale", "kernel_change", "residual"} <= set(r.history[0])
    assert r.denoiser_calls > 0


@pytest.mark.parametrize(
    "call",
    [
        lambda x, y: kernel_mstep(x, y, 0),
        lambda x, y: kernel_mstep(x, y, 40),
        lambda x, y: kernel_mstep(x, y, (3, 3, 3)),
        lambda x, y: kernel_mstep(x, y, True),
        lambda x, y: kernel_mstep(x, y[..., :-1], 3),
        lambda x, y: kernel_mstep(x[0], y[0], 3),
        lambda x, y: kernel_mstep(x, y, 3, l2=-1.0),
        lambda x, y: kernel_mstep(x, y, 3, l1=float("nan")),
        lambda x, y: kernel_mstep(x, y, 3, iters=0),
        lambda x, y: kernel_mstep(x, y, 3, constrained="yes"),
        lambda x, y: kernel_mstep(x, y, 3, k_init=torch.ones(2, 2)),
        lambda x, y: kernel_mstep(x, y * float("nan"), 3),
        lambda x, y: kernel_mstep(x.numpy(), y, 3),
        lambda x, y: estimate_kernel(y, 3, "natural", -0.1),
        lambda x, y: estimate_kernel(y, 64, "natural", 0.01),
        lambda x, y: estimate_kernel(y, 3, "natural", 0.01, scales=0),
        lambda x, y: estimate_kernel(y, 3, "natural", 0.01, iters=-1),
        lambda x, y: estimate_kernel(y, 3, "no-such-prior", 0.01),
        lambda x, y: estimate_kernel(y, 3, "natural", 0.01, k_init=torch.ones(2, 2, 2)),
    ],
)
def test_bad_arguments_raise_pnperror(call):
    x = torch.rand(1, 3, 16, 16, dtype=torch.float64)
    y = torch.rand(1, 3, 16, 16, dtype=torch.float64)
    with pytest.raises(PnPError) as info:
        call(x, y)
    assert "\n" not in str(info.value)


def test_em_recovers_planted_motion_kernel_on_gaussian_process_image():
    """The full EM (coarse-to-fine, PnP E-step, constrained M-step) on a 1/f^2 Gaussian-process
    image blurred by a planted 5-px horizontal motion kernel. Bound: the centred relative error
    must be below half that of the no-blur (delta) kernel, 2.0 here -- the answer of a joint-MAP
    scheme that collapses to the trivial solution (Levin et al. 2009/2011), the failure this EM
    (with the posterior-covariance term of its M-step) exists to avoid. Measured: 0.62."""
    from pnpdiff.priors import load_prior

    x = _smooth_random_image(0, 48)
    kt = torch.zeros(7, 7, dtype=torch.float64)
    kt[3, 1:6] = 1.0
    kt /= kt.sum()
    g = torch.Generator().manual_seed(0)
    y = Blur(kt.float())(x) + 0.01 * torch.randn(x.shape, generator=g)
    r = estimate_kernel(y, 7, load_prior("natural"), 0.01, scales=2, iters=3)
    delta_error = centred_kernel_error(torch.ones(1, 1, dtype=torch.float64), kt)
    assert abs(delta_error - 2.0) < 1e-9
    assert centred_kernel_error(r.kernel, kt) < 0.5 * delta_error


# -------------------------------------------------------------------------------------------------
# normalised sparsity (the blind solve's guard)
# -------------------------------------------------------------------------------------------------
def _edges(profile: list[float], h: int = 12) -> torch.Tensor:
    """A ``(1, 1, h, len(profile))`` image whose every row is ``profile`` (vertical edges only)."""
    return torch.tensor(profile, dtype=torch.float64).expand(1, 1, h, len(profile)).clone()


def test_normalised_sparsity_closed_forms():
    """Rows of length W, H of them: N = H (W - 1) + (H - 1) W differences, of which H per edge pixel
    are non-zero. One step of height a: l1 = H a / N, l2 = a sqrt(H / N), ratio sqrt(H / N). The
    same step as a ramp over m pixels (a / m each, a blurred edge): ratio sqrt(m H / N). Two half
    steps (an edge and its ghost): sqrt(2 H / N). So blur and ghosts raise it, by these factors."""
    H, W = 12, 16
    N = H * (W - 1) + (H - 1) * W
    step = _edges([0.0] * 8 + [0.8] * 8, H)
    assert normalised_sparsity(step) == pytest.approx((H / N) ** 0.5, rel=1e-12)
    ramp = _edges([0.0] * 6 + [0.2, 0.4, 0.6] + [0.8] * 7, H)  # 4 differences of 0.2
    assert normalised_sparsity(ramp) == pytest.approx((4 * H / N) ** 0.5, rel=1e-12)
    ghost = _edges([0.0] * 5 + [0.4] * 5 + [0.8] * 6, H)
    assert normalised_sparsity(ghost) == pytest.approx((2 * H / N) ** 0.5, rel=1e-12)


def test_normalised_sparsity_ignores_scale_offset_and_takes_the_channel_mean():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 10, 9, generator=g, dtype=torch.float64)
    base = normalised_sparsity(x)
    assert normalised_sparsity(3.0 * x - 0.5) == pytest.approx(base, rel=1e-12)
    assert normalised_sparsity(x.mean(1, keepdim=True)) == pytest.approx(base, rel=1e-12)
    assert normalised_sparsity(x.float()) == pytest.approx(base, rel=1e-5)
    assert normalised_sparsity(torch.full((1, 1, 4, 4), 0.3)) == float("inf")


@pytest.mark.parametrize(
    "bad, error",
    [([[0.0]], ShapeError), (torch.zeros(4, 4), ShapeError),
     (torch.zeros(1, 1, 1, 5), ShapeError), (torch.zeros(1, 1, 4, 4, dtype=torch.int64), ValueRangeError),
     (torch.full((1, 1, 4, 4), float("nan")), ValueRangeError)],
)
def test_normalised_sparsity_refuses_bad_images(bad, error):
    with pytest.raises(error) as info:
        normalised_sparsity(bad)
    assert "\n" not in str(info.value)
