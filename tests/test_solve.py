"""pnpdiff.solve: input kinds round-trip, reproducibility, errors, and a real restoration."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from PIL import Image

import pnpdiff
from pnpdiff import GaussianBlur, Inpaint
from pnpdiff.io import load_source_image
from pnpdiff.metrics import psnr


def _photo(size: int = 32) -> torch.Tensor:
    """The astronaut photo, antialiased down to ``size`` x ``size``."""
    return load_source_image("skimage:astronaut", size)[0]


def _observe(x: torch.Tensor, op, sigma_y: float = 0.02, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    y = op(x)
    return y + sigma_y * torch.randn(y.shape, generator=g)


KW = {"steps": 3, "sigma_y": 0.02, "seed": 0, "progress": False}


def test_tensor_kinds_round_trip() -> None:
    x = _photo()
    op = GaussianBlur(1.0)
    y = _observe(x, op).clamp(0, 1)
    out4 = pnpdiff.solve(y, op, **KW)
    assert out4.shape == y.shape and out4.dtype == torch.float32
    out3 = pnpdiff.solve(y[0], op, **KW)
    assert out3.shape == y[0].shape
    assert torch.allclose(out3, out4[0], atol=1e-6)
    grey = y[:, :1]
    out2 = pnpdiff.solve(grey[0, 0], op, **KW)
    assert out2.shape == grey[0, 0].shape
    out64 = pnpdiff.solve(y.double(), op, **KW)
    assert out64.dtype == torch.float64


def test_numpy_pil_and_path_round_trip(tmp_path) -> None:
    x = _photo()
    op = GaussianBlur(1.0)
    y = _observe(x, op).clamp(0, 1)
    hwc = (y[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    out = pnpdiff.solve(hwc, op, **KW)
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.shape == hwc.shape
    out_f = pnpdiff.solve(hwc.astype(np.float32) / 255, op, **KW)
    assert out_f.dtype == np.float32 and out_f.shape == hwc.shape
    assert np.abs(out_f * 255 - out.astype(np.float32)).max() <= 1.0
    grey = hwc[..., 0]
    out_g = pnpdiff.solve(grey, op, **KW)
    assert out_g.shape == grey.shape and out_g.dtype == np.uint8
    pil = Image.fromarray(hwc)
    out_p = pnpdiff.solve(pil, op, **KW)
    assert isinstance(out_p, Image.Image) and out_p.mode == "RGB" and out_p.size == pil.size
    path = tmp_path / "y.png"
    pil.save(path)
    out_path = pnpdiff.solve(str(path), op, **KW)
    assert isinstance(out_path, Image.Image) and np.array_equal(np.asarray(out_path), np.asarray(out_p))


def test_same_seed_same_result_other_seed_differs() -> None:
    x = _photo()
    op = GaussianBlur(1.5)
    y = _observe(x, op)
    a = pnpdiff.solve(y, op, **KW)
    b = pnpdiff.solve(y, op, **KW)
    c = pnpdiff.solve(y, op, **{**KW, "seed": 1})
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_user_errors_are_pnperrors() -> None:
    x = _photo()
    op = GaussianBlur(1.0)
    y = _observe(x, op)
    with pytest.raises(pnpdiff.UnknownNameError, match="diffpir"):
        pnpdiff.solve(y, op, method="nope", **KW)
    with pytest.raises(pnpdiff.UnknownNameError, match="lam"):
        pnpdiff.solve(y, op, lamda=3, **KW)
    with pytest.raises(pnpdiff.ValueRangeError, match="NaN"):
        pnpdiff.solve(torch.full_like(y, float("nan")), op, **KW)
    with pytest.raises(pnpdiff.ValueRangeError, match="255"):
        pnpdiff.solve(y * 255, op, **KW)
    with pytest.raises(pnpdiff.UnknownNameError, match="natural"):
        pnpdiff.solve(y, op, prior="no-such-prior", **KW)
    with pytest.raises(pnpdiff.PnPError, match="device"):
        pnpdiff.solve(y, op, device="nonsense", **KW)
    if not torch.cuda.is_available():
        with pytest.raises(pnpdiff.PnPError, match="CUDA is not available"):
            pnpdiff.solve(y, op, device="cuda", **KW)


def test_ffhq_offline_fails_fast_with_one_clear_line() -> None:
    from pnpdiff import Downsample

    y = torch.rand(1, 3, 64, 64)
    t0 = time.perf_counter()
    with pytest.raises(pnpdiff.WeightsNotFoundError) as info:
        pnpdiff.solve(y, operator=Downsample(4), prior="ffhq")
    assert time.perf_counter() - t0 < 30  # no hanging download attempt
    msg = str(info.value)
    assert "ffhq_10m.pt" in msg and "\n" not in msg
    assert "PNPDIFF_HOME" in msg or ".cache" in msg


def test_diffpir_restores_inpainting_better_than_the_fill() -> None:
    x = _photo(64)
    g = torch.Generator().manual_seed(0)
    mask = (torch.rand(1, 1, 64, 64, generator=g) > 0.5).float()
    op = Inpaint(mask)
    y = _observe(x, op, 0.01)
    out = pnpdiff.solve(y, op, steps=20, sigma_y=0.01, seed=0, progress=False)
    from pnpdiff.solvers.common import initial_estimate

    fill = initial_estimate(y, op, 0.01, 0.3)
    assert psnr(out, x).item() > psnr(fill, x).item() + 0.5
    # the data term is honoured: observed pixels stay close to y
    resid = ((out - y) * mask).pow(2).sum() / mask.sum() / 3
    assert resid.sqrt().item() < 0.05


def test_callback_sees_every_step() -> None:
    from pnpdiff import schedules
    from pnpdiff.priors import load_prior
    from pnpdiff.solvers import diffpir

    x = _photo()
    op = GaussianBlur(1.0)
    y = _observe(x, op)
    seen = []
    sig = schedules.ddpm(6, sigma_max=0.29)
    diffpir(y, op, load_prior("natural"), sig, 0.02, callback=lambda i, s, xt, x0: seen.append((i, s)))
    assert [i for i, _ in seen] == list(range(6))
    assert seen[0][1] == pytest.approx(float(sig[0]))


@pytest.mark.parametrize("sigma", [0.01, 0.05])
def test_noise_level_estimate(sigma: float) -> None:
    from pnpdiff.solvers.common import estimate_noise_level

    x = _photo(128)
    y = _observe(x, GaussianBlur(2.0), sigma)
    # MAD of the finest diagonal Haar band: a blurred photo has little energy there
    assert estimate_noise_level(y) == pytest.approx(sigma, rel=0.15)


def test_smooth_fill_handles_holes_larger_than_the_image() -> None:
    from pnpdiff.solvers.common import _smooth_fill

    # one observed pixel in a 16x16 image: the fill needs blur kernels wider than the image
    y = torch.zeros(1, 3, 16, 16)
    y[..., 0, 0] = torch.tensor([0.2, 0.5, 0.8])
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 0, 0] = 1
    out = _smooth_fill(y, mask)
    # the only information is that pixel: every pixel gets its colour
    assert torch.allclose(out, y[..., :1, :1].expand_as(out), atol=1e-5)


def test_nonlinear_callable_through_solve() -> None:
    """The README promises nonlinear forward models for DPS / RED-diff through ``solve`` too."""
    x = _photo()
    blur = GaussianBlur(1.0)

    def saturate_then_blur(v: torch.Tensor) -> torch.Tensor:
        return blur(torch.tanh(3 * v) / torch.tanh(torch.tensor(3.0)))

    y = saturate_then_blur(x)
    out = pnpdiff.solve(y, saturate_then_blur, method="dps", steps=3, sigma_y=0.01, seed=0, progress=False)
    assert out.shape == x.shape and torch.isfinite(out).all()
    with pytest.raises(pnpdiff.OperatorError, match="dps"):
        pnpdiff.solve(y, saturate_then_blur, method="diffpir", steps=3, sigma_y=0.01, progress=False)
    with pytest.raises(pnpdiff.OperatorError):
        pnpdiff.solve(y, "not an operator", steps=3, progress=False)


def test_grey_photo_stored_as_rgb_is_restored_as_grey() -> None:
    """A 3-channel y with identical channels (a grey photo saved as RGB, noise copied too) gives
    exactly the grey restoration, copied into three channels; restoring it as colour instead
    leaves sqrt(3) times too much noise on the grey axis and is worse."""
    from pnpdiff.priors.ffdnet import FFDNetPrior

    class ColourOnly(FFDNetPrior):
        accepts_grey = False

    x = load_source_image("skimage:camera", 64)[0]
    op = GaussianBlur(1.5)
    y = _observe(x, op, sigma_y=0.025).clamp(0, 1)
    rgb8 = (y.expand(-1, 3, -1, -1) * 255).round() / 255  # as read from an 8-bit RGB file
    rgb8[:, 1] += 0.4 / 255  # JPEG-like rounding differences between the channels
    kw = {**KW, "steps": 20, "sigma_y": 0.025}
    out = pnpdiff.solve(rgb8, op, **kw)
    ref = pnpdiff.solve(rgb8.mean(1, keepdim=True), op, **kw)
    assert out.shape == rgb8.shape
    assert torch.equal(out, ref.expand_as(out))
    as_colour = pnpdiff.solve(rgb8, op, prior=ColourOnly(), **kw)
    assert not torch.equal(as_colour[:, 0], as_colour[:, 1])
    assert psnr(out[:, :1], x) > psnr(as_colour.mean(1, keepdim=True), x) + 0.5


def test_grey_detection_needs_identical_channels_and_a_per_channel_operator() -> None:
    from pnpdiff.api import acts_per_channel, is_grey_rgb
    from pnpdiff.operators import Colorize, Downsample

    x = _photo(16)
    assert not is_grey_rgb(x)  # a colour photo
    assert is_grey_rgb(x[:, :1].expand(-1, 3, -1, -1))
    assert not is_grey_rgb(x[:, :1])  # one channel already
    shape = torch.Size((1, 3, 16, 16))
    cpu = torch.device("cpu")
    assert acts_per_channel(GaussianBlur(1.0), shape, cpu)
    assert acts_per_channel(Downsample(2), shape, cpu)
    assert acts_per_channel(Inpaint(torch.rand(1, 1, 16, 16) > 0.5), shape, cpu)
    assert not acts_per_channel(Inpaint(torch.rand(1, 3, 16, 16) > 0.5), shape, cpu)  # a mask per channel
    assert not acts_per_channel(Colorize(), shape, cpu)


def test_schedule_as_a_list_y_with_a_graph_and_a_broadcast_x_init() -> None:
    """A list of sigmas is the same schedule as the tensor; a y that carries an autograd graph
    (the output of a network) is solved as its detached value, without torch's warnings; an x_init
    of batch 1 broadcasts over a batch of measurements as its explicit copies do."""
    import warnings

    g = torch.Generator().manual_seed(0)
    y = torch.rand(2, 3, 24, 24, generator=g)
    op = pnpdiff.GaussianBlur(1.0)
    kw = {"sigma_y": 0.05, "seed": 0, "progress": False, "device": "cpu"}
    sig = [0.3, 0.1, 0.03, 0.0]
    a = pnpdiff.solve(y, op, schedule=sig, **kw)
    b = pnpdiff.solve(y, op, schedule=torch.tensor(sig, dtype=torch.float64), **kw)
    assert torch.equal(a, b)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = pnpdiff.solve(y.clone().requires_grad_(True) * 1.0, op, schedule=sig, **kw)
    assert not c.requires_grad and torch.equal(c, a)
    x0 = torch.full((1, 3, 24, 24), 0.5)
    d = pnpdiff.solve(y, op, schedule=sig, x_init=x0, **kw)
    e = pnpdiff.solve(y, op, schedule=sig, x_init=x0.expand(2, -1, -1, -1).clone(), **kw)
    assert torch.equal(d, e) and not torch.equal(d, a)


def test_dps_solves_phase_retrieval_whose_measurement_is_no_image() -> None:
    # issue 26: solve checked the Fourier magnitude against the image range [0, 1] (its zero
    # frequency is about 5 here) and started DPS in the padded spectrum's shape; the operator
    # states y_range = None and the image's shape (x_shape), so the solve runs in x's shape
    from pnpdiff.operators import PhaseRetrieval

    x = _photo(16)
    op = PhaseRetrieval(2.0)
    y = _observe(x, op, sigma_y=0.01)
    assert y.shape == (1, 3, 24, 24) and float(y.max()) > 2.0
    out = pnpdiff.solve(y, op, method="dps", steps=3, sigma_y=0.01, seed=0, progress=False)
    assert out.shape == x.shape
    assert bool(torch.isfinite(out).all()) and float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert pnpdiff.api.default_method(pnpdiff.api.task_of(op)) == "dps"  # also the default method
    # the measurement is still checked for NaN / inf
    with pytest.raises(pnpdiff.ValueRangeError, match="NaN or infinite"):
        pnpdiff.solve(y * float("nan"), op, method="dps", steps=3, sigma_y=0.01, progress=False)
