"""Nonlinear forward models (PhaseRetrieval, SaturatedBlur) against independent computations.

References are NumPy FFTs (phase retrieval, with the padding done by ``np.pad``), a Gaussian
kernel written out here and ``scipy.ndimage.convolve`` (saturated blur), and finite differences
(``torch.autograd.gradcheck`` in float64) -- never pnpdiff's own output.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage
import torch

import pnpdiff
import pnpdiff.operators as operators
from pnpdiff.errors import OperatorError, PnPError, ShapeError
from pnpdiff.io import load_source_image
from pnpdiff.operators import GaussianBlur, LinearOperator, PhaseRetrieval, SaturatedBlur

pytestmark = pytest.mark.usefixtures("one_thread")

SCIPY_MODE = {"circular": "wrap", "reflect": "mirror", "zeros": "constant"}


def _rand(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


# --------------------------------------------------------------------------- phase retrieval
def _np_phase_retrieval(x: np.ndarray, oversample: float) -> np.ndarray:
    """``|centred orthonormal DFT|`` of the image zero-padded by DPS's rule (per side, per axis)."""
    h, w = x.shape[-2:]
    ph, pw = int(oversample / 8 * h), int(oversample / 8 * w)
    padded = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(ph, ph), (pw, pw)])
    spec = np.fft.fft2(padded, norm="ortho")
    return np.abs(np.fft.fftshift(spec, axes=(-2, -1)))


@pytest.mark.parametrize("oversample", [2.0, 0.0, 1.3, 4])
@pytest.mark.parametrize("hw", [(12, 10), (7, 9)])
def test_phase_retrieval_matches_numpy(oversample: float, hw: tuple[int, int]) -> None:
    x = _rand(2, 3, *hw)
    op = PhaseRetrieval(oversample)
    got = op(x)
    want = _np_phase_retrieval(x.numpy(), oversample)
    assert got.shape == want.shape == op.output_shape(x.shape)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)


def test_phase_retrieval_padding_rule_and_dps_centred_fft() -> None:
    """DPS's ``int(oversample / 8 * 256)`` per side at 256x256; the magnitude of DPS's centred
    FFT (ifftshift, orthonormal FFT, fftshift) is this output exactly."""
    assert PhaseRetrieval().padding(256, 256) == (64, 64)
    assert PhaseRetrieval(1.0).padding(256, 128) == (32, 16)
    assert PhaseRetrieval(1.3).padding(12, 10) == (1, 1)  # 1.95 and 1.625: truncated
    assert PhaseRetrieval().output_shape((1, 3, 256, 256)) == (1, 3, 384, 384)
    x = _rand(1, 1, 9, 8)
    ph, pw = PhaseRetrieval().padding(9, 8)
    padded = np.pad(x.numpy()[0, 0], ((ph, ph), (pw, pw)))  # 13 x 12: an odd and an even side
    centred = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(padded), norm="ortho"))
    np.testing.assert_allclose(PhaseRetrieval()(x)[0, 0].numpy(), np.abs(centred), rtol=1e-10, atol=1e-12)
    # the zero frequency sits at the centre and is sum(x) / sqrt(padded size)
    out = PhaseRetrieval()(x)[0, 0]
    assert math.isclose(float(out[13 // 2, 12 // 2]), float(x.sum()) / math.sqrt(13 * 12), rel_tol=1e-12)


def test_phase_retrieval_invariances() -> None:
    """Magnitude unchanged by a circular shift of the padded image, a global sign flip and a
    180-degree rotation (the twin image); Parseval: ``||A x|| = ||x||``."""
    op = PhaseRetrieval(2.0)
    x = _rand(2, 3, 16, 12)
    ax = op(x)
    np.testing.assert_allclose(op(-x).numpy(), ax.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(op(x.flip(-2, -1)).numpy(), ax.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ax.flatten(1).norm(dim=1).numpy(), x.flatten(1).norm(dim=1).numpy(), rtol=1e-12)
    # circular shift of the padded image (numpy): same magnitudes
    ph, pw = op.padding(16, 12)
    padded = np.pad(x.numpy(), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    for shift in [(3, -5), (ph + 2, 1), (-7, 2 * pw + 1)]:
        rolled = np.roll(padded, shift, axis=(-2, -1))
        np.testing.assert_allclose(
            np.abs(np.fft.fftshift(np.fft.fft2(rolled, norm="ortho"), axes=(-2, -1))),
            ax.numpy(),
            rtol=1e-10,
            atol=1e-12,
        )
    # a translated object inside the same support (zero border): the operator sees no difference
    obj = torch.zeros(1, 1, 16, 12, dtype=torch.float64)
    obj[..., 4:12, 3:9] = _rand(1, 1, 8, 6, seed=1)
    moved = torch.roll(obj, shifts=(3, -2), dims=(-2, -1))
    assert not torch.equal(moved, obj)
    np.testing.assert_allclose(op(moved).numpy(), op(obj).numpy(), rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- saturated blur
def _np_gaussian(sigma: float, size: int | None = None) -> np.ndarray:
    size = 2 * math.ceil(3 * sigma) + 1 if size is None else size
    r = np.arange(size) - size // 2
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma**2))
    return g / g.sum()


def _np_saturated_blur(x: np.ndarray, sigma: float, gain: float, boundary: str, size: int | None = None) -> np.ndarray:
    k = _np_gaussian(sigma, size)
    out = np.empty_like(x)
    for idx in np.ndindex(*x.shape[:-2]):  # reference only: a loop is fine here
        out[idx] = scipy.ndimage.convolve(x[idx], k, mode=SCIPY_MODE[boundary], cval=0.0)
    return np.tanh(gain * out) / np.tanh(gain)


@pytest.mark.parametrize("boundary", ["circular", "reflect", "zeros"])
@pytest.mark.parametrize(("sigma", "gain", "size"), [(2.0, 3.0, None), (1.2, 0.5, None), (1.5, 8.0, 5)])
def test_saturated_blur_matches_scipy(boundary: str, sigma: float, gain: float, size: int | None) -> None:
    x = _rand(2, 3, 24, 20)
    op = SaturatedBlur(sigma, gain, kernel_size=size, boundary=boundary)
    want = _np_saturated_blur(x.numpy(), sigma, gain, boundary, size)
    np.testing.assert_allclose(op(x).numpy(), want, rtol=1e-10, atol=1e-12)


def test_saturated_blur_response() -> None:
    """``s`` maps [0, 1] onto [0, 1], is increasing, its slopes at 0 and 1 are as documented,
    and ``inverse_response`` undoes it; the blur stage is a GaussianBlur submodule."""
    op = SaturatedBlur(2.0, 3.0)
    assert isinstance(op.blur, GaussianBlur) and op.blur in list(op.children())
    v = torch.linspace(0, 1, 1001, dtype=torch.float64)
    s = op.response(v)
    assert float(s[0]) == 0.0 and math.isclose(float(s[-1]), 1.0, rel_tol=1e-15)
    assert bool((s.diff() > 0).all()) and bool((s >= v).all())  # concave on [0, 1]: above the diagonal
    np.testing.assert_allclose(op.inverse_response(s).numpy(), v.numpy(), atol=1e-9)
    ends = torch.tensor([0.0, 1.0], dtype=torch.float64, requires_grad=True)
    (slope,) = torch.autograd.grad(op.response(ends).sum(), ends)  # element-wise: the two slopes
    t3 = math.tanh(3.0)
    np.testing.assert_allclose(slope.numpy(), [3 / t3, 3 * (1 - t3**2) / t3], rtol=1e-12)
    # a noisy value past the end has no preimage: clipped, finite
    assert bool(torch.isfinite(op.inverse_response(torch.tensor([1.2, -0.3, 1 / t3]))).all())
    # gain -> 0 approaches the identity response
    np.testing.assert_allclose(SaturatedBlur(gain=1e-6).response(v).numpy(), v.numpy(), atol=1e-9)


# --------------------------------------------------------------------------- shared properties
OPS = {
    "PhaseRetrieval": lambda: PhaseRetrieval(2.0),
    "PhaseRetrieval0": lambda: PhaseRetrieval(0.0),
    "SaturatedBlur": lambda: SaturatedBlur(1.0, 3.0),
    "SaturatedBlurReflect": lambda: SaturatedBlur(1.0, 2.0, kernel_size=3, boundary="reflect"),
}


@pytest.mark.parametrize("name", list(OPS))
def test_gradcheck_float64(name: str) -> None:
    op = OPS[name]()
    x = _rand(1, 2, 8, 7, seed=3).requires_grad_(True)  # no smaller than SaturatedBlur's 7x7 kernel
    assert torch.autograd.gradcheck(op, (x,), eps=1e-6, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", list(OPS))
def test_batch_is_per_image_stacking(name: str) -> None:
    op = OPS[name]()
    xs = [_rand(1, 3, 10, 8, seed=s) for s in range(3)]
    np.testing.assert_allclose(
        op(torch.cat(xs)).numpy(), torch.cat([op(x) for x in xs]).numpy(), rtol=1e-12, atol=1e-12
    )
    # channels are handled alike: a grey image copied into three channels gives three copies
    grey = xs[0][:, :1]
    np.testing.assert_allclose(
        op(grey.expand(-1, 3, -1, -1)).numpy(), op(grey).expand(-1, 3, -1, -1).numpy(), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_dtypes(name: str, dtype: torch.dtype) -> None:
    op = OPS[name]()
    x = _rand(2, 3, 8, 8)
    out = op(x.to(dtype))
    assert out.dtype == dtype and out.shape == op(x).shape
    tol = {torch.float32: 1e-5, torch.float16: 2e-2, torch.bfloat16: 1e-1}[dtype]
    ref = op(x.to(dtype).double())
    assert float(((out.double() - ref).abs() / (ref.abs() + 1)).max()) < tol


@pytest.mark.parametrize("name", list(OPS))
def test_device_agnostic(name: str) -> None:
    """Built without a device; ``.to()`` moves every buffer; the output follows the input."""
    op = OPS[name]()
    assert all(b.device.type == "cpu" for b in op.buffers())
    op64 = op.to(torch.float64)
    assert op64(_rand(1, 3, 8, 8)).dtype == torch.float64
    if torch.cuda.is_available():  # pragma: no cover - exercised on a GPU machine
        x = _rand(1, 3, 8, 8)
        on_gpu = OPS[name]().to("cuda")
        np.testing.assert_allclose(on_gpu(x.cuda()).cpu().numpy(), op(x).numpy(), rtol=1e-9, atol=1e-9)


def test_not_linear_operators_and_exported() -> None:
    for name in ("PhaseRetrieval", "SaturatedBlur"):
        cls = getattr(operators, name)
        assert name in operators.__all__
        assert issubclass(cls, torch.nn.Module) and not issubclass(cls, LinearOperator)
        assert not hasattr(cls, "adjoint") and not hasattr(cls, "prox")
        assert cls.__doc__.strip().splitlines()[0].endswith(".")


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("factory", "name"),
    [
        (lambda: PhaseRetrieval(-0.5), "oversample"),
        (lambda: PhaseRetrieval("2"), "oversample"),
        (lambda: PhaseRetrieval(True), "oversample"),
        (lambda: PhaseRetrieval(float("nan")), "oversample"),
        (lambda: PhaseRetrieval(1e6), "oversample"),
        (lambda: SaturatedBlur(sigma=0), "sigma"),
        (lambda: SaturatedBlur(sigma="2"), "sigma"),
        (lambda: SaturatedBlur(sigma=float("inf")), "sigma"),
        (lambda: SaturatedBlur(gain=-1.0), "gain"),
        (lambda: SaturatedBlur(gain=None), "gain"),
        (lambda: SaturatedBlur(kernel_size=4.5), "kernel_size"),
        (lambda: SaturatedBlur(kernel_size=0), "kernel_size"),
        (lambda: SaturatedBlur(boundary="wrap"), "boundary"),
    ],
)
def test_parameter_errors_name_the_parameter(factory, name: str) -> None:
    with pytest.raises(OperatorError, match=rf"^{name} must be") as info:
        factory()
    assert isinstance(info.value, PnPError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("name", ["PhaseRetrieval", "SaturatedBlur"])
def test_bad_inputs(name: str) -> None:
    op = OPS[name]()
    with pytest.raises(ShapeError, match=r"\(B, C, H, W\)"):
        op(torch.rand(3, 8, 8))
    with pytest.raises(ShapeError, match="floating-point"):
        op(torch.ones(1, 1, 8, 8, dtype=torch.uint8))


def test_scalar_parameters_accept_numpy_and_integral_values() -> None:
    op = SaturatedBlur(np.float32(1.5), 3, kernel_size=7.0)
    assert op.sigma == 1.5 and op.gain == 3.0 and op.kernel_size == 7 and op.blur.kernel.shape[-1] == 7
    assert PhaseRetrieval(np.int64(1)).oversample == 1.0


def test_saturated_blur_through_solve() -> None:
    """A forward-only module is accepted by the solvers that need only VJPs."""
    x = load_source_image("skimage:astronaut", 32)[0]
    op = SaturatedBlur(1.0, 3.0)
    with torch.no_grad():
        y = op(x) + 0.02 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    for method in ("dps", "reddiff"):
        out = pnpdiff.solve(y, op, method=method, steps=2, sigma_y=0.02, seed=0, progress=False)
        assert out.shape == x.shape and bool(torch.isfinite(out).all())


def test_solve_defaults_to_dps_for_a_custom_forward_model() -> None:
    """A forward model the user writes (a module or a function with no adjoint) is solved by DPS
    without naming a method, exactly as ``method="dps"`` would."""

    class Gamma(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return GaussianBlur(1.0)(x).clamp_min(1e-4) ** 0.8

    x = load_source_image("skimage:astronaut", size=16)[0]
    y = Gamma()(x)
    kw = dict(steps=3, sigma_y=0.01, seed=0, progress=False)
    default = pnpdiff.solve(y, Gamma(), **kw)
    dps = pnpdiff.solve(y, Gamma(), method="dps", **kw)
    torch.testing.assert_close(default, dps, rtol=0, atol=0)
    assert pnpdiff.api.task_of(lambda v: v**2) == "nonlinear"
    assert pnpdiff.api.task_of(GaussianBlur(1.0)) == "deblur"


def test_submodules_are_reachable_after_a_bare_import() -> None:
    import subprocess
    import sys

    code = "import pnpdiff; print(pnpdiff.metrics.psnr.__name__, pnpdiff.datasets.digits.__name__)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.split() == ["psnr", "digits"], r.stderr
