"""Blind deblurring as a user runs it (issue 28): ``pnpdiff.solve`` with a :class:`BlindBlur` (or
``GaussianBlur(sigma="estimate")``), its return conventions and errors, and the recipe path that
writes ``kernel.png`` / ``kernel.npy``."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import pnpdiff
from pnpdiff import kernel_fit
from pnpdiff.cli import main
from pnpdiff.errors import PnPError
from pnpdiff.io import load_source_image
from pnpdiff.metrics import psnr
from pnpdiff.operators import BlindBlur, Blur, GaussianBlur, disk_kernel

# the L0 scheme and the FFT-sized steps run 5-10x slower with two threads on a shared 2-core CPU
pytestmark = pytest.mark.usefixtures("one_thread")

SIGMA_Y = 0.01


def _photo(name: str, size: int) -> torch.Tensor:
    """A scikit-image photo as a ``(1, C, size, size)`` float32 tensor in [0, 1]."""
    return load_source_image(f"skimage:{name}", size)[0]


def _blurred(x: torch.Tensor, op: Blur, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return op(x) + SIGMA_Y * torch.randn(x.shape, generator=g, dtype=x.dtype)


def _check_kernel(k: torch.Tensor, size: int) -> None:
    """What every estimated kernel must be: ``(size, size)``, finite, non-negative, summing to one."""
    assert tuple(k.shape[-2:]) == (size, size)
    assert bool(torch.isfinite(k).all()) and float(k.min()) >= 0
    assert abs(float(k.sum()) - 1) < 1e-6


# -------------------------------------------------------------------------------------------------
# the free family
# -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def free_solve():
    """One blind solve (the slow part of this file, ~3 s on one thread): cameraman at 64 px,
    circularly blurred by a disk of radius 2 (5 x 5, inside the 9 x 9 support asked for)."""
    x = _photo("camera", 64)
    y = _blurred(x, Blur(disk_kernel(2.0)))
    out, op, info = pnpdiff.solve(
        y, BlindBlur(9), sigma_y=SIGMA_Y, seed=0, return_operator=True, return_info=True, progress=False
    )
    return x, y, out, op, info


def test_free_kernel_is_a_blur_on_the_requested_support(free_solve):
    _, _, _, op, info = free_solve
    assert type(op) is Blur
    _check_kernel(op.kernel, 9)
    assert op.boundary == "circular"  # BlindBlur's default, passed on to the Blur
    what = info["kernel"]
    assert what["family"] == "free" and what["size"] == [9, 9]
    # the nested list in the info is the operator's kernel (rounded to 8 decimals)
    listed = torch.tensor(what["kernel"], dtype=torch.float64)
    torch.testing.assert_close(listed, op.kernel.reshape(9, 9).double(), rtol=0, atol=1e-8)


def test_free_kernel_is_the_most_likely_candidate(free_solve):
    what = free_solve[4]["kernel"]
    scores = what["log_likelihood"]
    # the candidates _estimate_free_kernel documents: the EM-refined and the L0 kernel, and the three fits
    assert set(scores) == {"free", "free-l0", "gaussian", "defocus", "motion"}
    assert all(math.isfinite(v) for v in scores.values())
    assert what["chosen"] in scores
    assert scores[what["chosen"]] == max(scores.values())
    # the returned kernel is the chosen one: its likelihood is the chosen score (rounded to 3 decimals)
    _, y, _, op, _ = free_solve
    got = kernel_fit.kernel_log_likelihood(y, op.kernel.reshape(9, 9), SIGMA_Y)
    assert got == pytest.approx(scores[what["chosen"]], rel=0, abs=1e-3)
    if what["chosen"] in ("gaussian", "defocus", "motion"):  # a parametric winner reports its parameters
        assert set(what["params"]) == set(kernel_fit.FAMILIES[what["chosen"]])


def test_free_solve_beats_the_blurred_input(free_solve):
    """A blind restoration that does not beat the blurred photo it was given is broken. Margin 1 dB:
    y is at ~24 dB where its noise alone would leave 40 dB, so the error is the blur's, which
    denoising cannot remove; a gain of 1 dB needs a kernel close to the true one."""
    x, y, out, _, info = free_solve
    assert out.shape == y.shape and out.dtype == y.dtype and bool(torch.isfinite(out).all())
    assert float(psnr(out, x)) > float(psnr(y.clamp(0, 1), x)) + 1.0
    assert info["sigma_y"] == SIGMA_Y and info["sigma_y_estimated"] is False


def test_free_solve_restores_with_the_operator_it_returns(free_solve):
    """The image is restored with the returned Blur: a non-blind solve with it (same seed, same
    noise level) gives the same image, and the info adds the estimation's denoiser calls."""
    _, y, out, op, info = free_solve
    again, info2 = pnpdiff.solve(y, op, sigma_y=SIGMA_Y, seed=0, return_info=True, progress=False)
    assert info2["method"] == info["method"] and "kernel" not in info2
    torch.testing.assert_close(again, out, rtol=0, atol=0)
    assert info["kernel"]["denoiser_calls"] > 0  # the EM's plug-and-play E-steps
    # ... and the sharpness guard's solve with the delta kernel (kept: the restoration was sparser)
    guard = info["kernel"]["guard"]
    assert guard["kept"] is True and guard["denoiser_calls"] > 0
    assert info["denoiser_calls"] == (info2["denoiser_calls"] + info["kernel"]["denoiser_calls"]
                                      + guard["denoiser_calls"])


def _numpy_sparsity(x: torch.Tensor) -> float:
    """Krishnan et al.'s l1 / l2 of the channel mean's differences, written with NumPy (the reference)."""
    lum = x.detach().double().numpy().mean(axis=1)
    g = np.concatenate([np.diff(lum, axis=-1).ravel(), np.diff(lum, axis=-2).ravel()])
    return float(np.abs(g).mean() / np.sqrt((g**2).mean()))


def test_guard_compares_the_restoration_with_y_denoised(free_solve):
    """The guard's two numbers are the normalised sparsity of the returned image and of the solve
    with the delta kernel, recomputed here with NumPy from both images."""
    _, y, out, op, info = free_solve
    kh, kw = op.kernel.shape[-2:]
    delta = torch.zeros(kh, kw, dtype=torch.float64)
    delta[kh // 2, kw // 2] = 1
    denoised = pnpdiff.solve(y, Blur(delta), sigma_y=SIGMA_Y, seed=0, progress=False)
    guard = info["kernel"]["guard"]
    assert guard["sparsity"] == pytest.approx(_numpy_sparsity(out), abs=2e-6)
    assert guard["sparsity_denoised"] == pytest.approx(_numpy_sparsity(denoised), abs=2e-6)
    assert guard["sparsity"] < guard["sparsity_denoised"]  # a disk blur undone: sharper than y denoised


def test_guard_rejects_a_kernel_that_does_not_deblur(monkeypatch):
    """A wrong kernel (two taps 5 px apart: deconvolving a sharp photo by it makes ghosts) handed to
    solve as the estimate of a sharp y: the restoration is less sparse than y denoised, and solve
    returns the solve with the delta kernel instead, that operator, and what it rejected."""
    import pnpdiff.api as api

    x = _photo("camera", 48)
    y = x + SIGMA_Y * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    ghost = torch.zeros(9, 9, dtype=torch.float64)
    ghost[4, 2] = ghost[4, 7] = 0.5
    what = {"family": "free", "size": [9, 9], "chosen": "free", "denoiser_calls": 0,
            "kernel": ghost.tolist()}
    monkeypatch.setattr(api, "estimate_blur", lambda *a, **k: (Blur(ghost), dict(what)))
    with pytest.warns(UserWarning, match="did not deblur y") as caught:
        out, op, info = pnpdiff.solve(y, BlindBlur(9), sigma_y=SIGMA_Y, seed=0, return_operator=True,
                                      return_info=True, progress=False)
    assert any(w.filename == __file__ for w in caught)  # pointed at the caller of solve
    ghosted = pnpdiff.solve(y, Blur(ghost), sigma_y=SIGMA_Y, seed=0, progress=False)
    delta = torch.zeros(9, 9, dtype=torch.float64)
    delta[4, 4] = 1
    denoised = pnpdiff.solve(y, Blur(delta), sigma_y=SIGMA_Y, seed=0, progress=False)
    # the premise: ghosts spread the gradients, by more than the guard's margin
    assert _numpy_sparsity(ghosted) > (1 + api.GUARD_MARGIN) * _numpy_sparsity(denoised)
    torch.testing.assert_close(out, denoised, rtol=0, atol=0)
    torch.testing.assert_close(op.kernel.reshape(9, 9).double(), delta, rtol=0, atol=0)
    kinfo = info["kernel"]
    assert kinfo["chosen"] == "delta" and kinfo["rejected"] == {"chosen": "free"}
    assert kinfo["guard"]["kept"] is False
    assert kinfo["guard"]["sparsity"] == pytest.approx(_numpy_sparsity(ghosted), abs=2e-6)
    assert torch.tensor(kinfo["kernel"], dtype=torch.float64).equal(delta)
    assert float(psnr(out, x)) > float(psnr(ghosted, x))


# -------------------------------------------------------------------------------------------------
# the parametric families
# -------------------------------------------------------------------------------------------------
def test_gaussian_estimate_is_a_blind_gaussian_blur():
    b = GaussianBlur(sigma="estimate")
    assert isinstance(b, BlindBlur) and b.family == "gaussian" and b.size is None
    b = GaussianBlur(sigma="estimate", kernel_size=15, boundary="reflect")
    assert isinstance(b, BlindBlur) and (b.family, b.size, b.boundary) == ("gaussian", 15, "reflect")


@pytest.mark.parametrize("photo", ["camera", "coffee"])
@pytest.mark.parametrize(
    "blind",
    [GaussianBlur(sigma="estimate"), BlindBlur(15, family="gaussian")],
    ids=["GaussianBlur-estimate", "BlindBlur-15-gaussian"],
)
def test_gaussian_sigma_is_estimated(photo, blind):
    """sigma 2.0 at 64 px; the restoration beats y by 1 dB (as for the free family: the error of y
    is the blur's). Tolerance: the issue's 10 % (met at 256^2, tests/test_kernel_fit.py)
    plus 3 reported standard errors for the 16x fewer pixels (the Cramer-Rao error of the fit
    grows as 1 / sqrt(pixels); about 0.05 px here, so the bound is about 17 %)."""
    x = _photo(photo, 64)
    y = _blurred(x, GaussianBlur(2.0))
    out, op, info = pnpdiff.solve(y, blind, sigma_y=SIGMA_Y, return_operator=True, return_info=True, progress=False)
    what = info["kernel"]
    assert what["family"] == "gaussian" and set(what["params"]) == {"sigma"} == set(what["stderr"])
    sigma, se = what["params"]["sigma"], what["stderr"]["sigma"]
    assert 0 < se < 0.2 and math.isfinite(sigma)
    assert abs(sigma - 2.0) < 0.10 * 2.0 + 3 * se, (sigma, se)
    assert type(op) is Blur
    if blind.size is not None:
        _check_kernel(op.kernel, blind.size)
    else:
        _check_kernel(op.kernel, op.kernel.shape[-1])
        assert op.kernel.shape[-1] % 2 == 1 and list(op.kernel.shape[-2:]) == what["size"]
    assert what["denoiser_calls"] == 0  # a parametric fit reads y's spectrum only
    assert out.shape == y.shape and float(psnr(out, x)) > float(psnr(y.clamp(0, 1), x)) + 1.0


def test_gaussian_fit_with_a_support_does_not_latch_onto_a_truncated_kernel():
    """The true kernel (sigma 2, 13 x 13) fits inside the 15 x 15 support: the fit should agree
    with the unbounded one (sigma 1.71 here) and the restoration should beat the input. (A fit that
    searched sigma up to size / 2, where the cut kernel is nearly a box, found sigma 3.2 here, and a
    restoration worse than the input.)"""
    x = _photo("astronaut", 64)
    y = _blurred(x, GaussianBlur(2.0))
    out, info = pnpdiff.solve(y, BlindBlur(15, family="gaussian"), sigma_y=SIGMA_Y, return_info=True, progress=False)
    assert abs(info["kernel"]["params"]["sigma"] - 2.0) < 0.10 * 2.0 + 3 * info["kernel"]["stderr"]["sigma"]
    assert float(psnr(out, x)) > float(psnr(y.clamp(0, 1), x))


# -------------------------------------------------------------------------------------------------
# return conventions
# -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_blurred():
    x = _photo("camera", 48)
    return x, _blurred(x, GaussianBlur(1.5))


def test_operator_is_returned_only_when_asked(small_blurred):
    _, y = small_blurred
    blind = BlindBlur(9, family="gaussian")
    out = pnpdiff.solve(y, blind, sigma_y=SIGMA_Y, progress=False)
    assert torch.is_tensor(out) and out.shape == y.shape
    out, info = pnpdiff.solve(y, blind, sigma_y=SIGMA_Y, return_info=True, progress=False)
    assert torch.is_tensor(out) and isinstance(info, dict) and info["kernel"]["family"] == "gaussian"
    out, op = pnpdiff.solve(y, blind, sigma_y=SIGMA_Y, return_operator=True, progress=False)
    assert torch.is_tensor(out) and type(op) is Blur
    _check_kernel(op.kernel, 9)


def test_a_known_operator_is_returned_as_given(small_blurred):
    _, y = small_blurred
    known = GaussianBlur(1.5)
    out, op, info = pnpdiff.solve(y, known, sigma_y=SIGMA_Y, return_operator=True, return_info=True, progress=False)
    assert op is known and "kernel" not in info
    assert torch.is_tensor(out) and out.shape == y.shape


def test_numpy_input_gives_numpy_output_and_the_operator(small_blurred):
    _, y = small_blurred
    hwc = y[0].clamp(0, 1).permute(1, 2, 0).numpy()
    out, op = pnpdiff.solve(hwc, BlindBlur(9, family="gaussian"), sigma_y=SIGMA_Y, return_operator=True, progress=False)
    assert isinstance(out, np.ndarray) and out.shape == hwc.shape and type(op) is Blur


# -------------------------------------------------------------------------------------------------
# errors
# -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        lambda: BlindBlur(0),
        lambda: BlindBlur(1),
        lambda: BlindBlur(8),
        lambda: BlindBlur(-3),
        lambda: BlindBlur(True),
        lambda: BlindBlur("9"),
        lambda: BlindBlur(None),  # None: parametric only
        lambda: BlindBlur(9, family="box"),
        lambda: BlindBlur(9, family=None),
        lambda: BlindBlur(9, boundary="wrap"),
        lambda: GaussianBlur(sigma="guess"),
        lambda: GaussianBlur(sigma="Estimate"),
        lambda: GaussianBlur(sigma="estimate", kernel_size=8),
        lambda: GaussianBlur(sigma="estimate", kernel_size=(9, 7)),  # the fit is on a square support
        lambda: GaussianBlur(sigma="estimate", angle=30.0),  # ... of an isotropic Gaussian
        lambda: GaussianBlur(sigma="estimate", img_size=(32, 32)),  # a Blur option the request would drop
        lambda: BlindBlur(9)(torch.zeros(1, 1, 16, 16)),  # no kernel to apply before solve estimates it
    ],
    ids=[
        "size0",
        "size1",
        "even",
        "negative",
        "bool",
        "str",
        "free-None",
        "family",
        "family-None",
        "boundary",
        "guess",
        "Estimate",
        "even-kernel_size",
        "non-square-kernel_size",
        "angle",
        "blur-option",
        "applied",
    ],
)
def test_bad_blind_requests_raise_pnperror(make):
    with pytest.raises(PnPError) as info:
        make()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "blind,shape",
    [
        (BlindBlur(33), (1, 3, 32, 32)),  # support larger than the image: free family
        (BlindBlur(65, family="gaussian"), (1, 3, 32, 32)),  # ... and a parametric one
        (BlindBlur(3, family="gaussian"), (1, 3, 8, 8)),  # too small to fit a kernel on (16 px at least)
        (BlindBlur(3), (1, 3, 8, 8)),
    ],
    ids=["free-too-large", "gaussian-too-large", "gaussian-tiny-image", "free-tiny-image"],
)
def test_blind_solve_refuses_what_cannot_be_estimated(blind, shape):
    y = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    with pytest.raises(PnPError) as info:
        pnpdiff.solve(y, blind, sigma_y=SIGMA_Y, progress=False)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "nan_y,sigma_y", [(True, SIGMA_Y), (False, -0.1), (False, 2.0)], ids=["nan-y", "negative-sigma_y", "sigma_y-2"]
)
def test_blind_solve_checks_y_and_sigma_y(nan_y, sigma_y):
    y = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    if nan_y:
        y[0, 0, 3, 4] = float("nan")
    with pytest.raises(PnPError) as info:
        pnpdiff.solve(y, BlindBlur(9), sigma_y=sigma_y, progress=False)
    assert "\n" not in str(info.value)


# -------------------------------------------------------------------------------------------------
# the recipe path
# -------------------------------------------------------------------------------------------------
def test_recipe_with_kernel_estimate_writes_the_kernel(tmp_path: Path, capsys):
    """``operator: {name: Blur, kernel: estimate, size: 7}`` (recipes/blind_deblur.yaml's form),
    run in-process through the CLI: kernel.npy holds the 7 x 7 estimate, kernel.png shows it, and
    metrics.json records how it was found and how far it is from the simulated true blur."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "image: skimage:camera\nsize: 48\noperator: {name: Blur, kernel: estimate, size: 7}\n"
        "simulate: {name: GaussianBlur, sigma: 1.0}\nnoise: {sigma_y: 0.01, seed: 0}\nsteps: 3\n"
        "seed: 0\noutput: out\n"
    )
    assert main([str(recipe), "--no-progress"]) == 0, capsys.readouterr().err
    out = tmp_path / "out"
    assert (out / "kernel.png").is_file() and (out / "kernel.npy").is_file()
    k = np.load(out / "kernel.npy")
    _check_kernel(torch.from_numpy(k), 7)
    assert k.ndim == 2
    with Image.open(out / "kernel.png") as pic:
        assert pic.size[0] == pic.size[1] >= 7  # the kernel, enlarged by nearest-neighbour
    m = json.loads((out / "metrics.json").read_text())
    assert m["operator"] == {"name": "BlindBlur", "size": 7}
    assert m["kernel"]["family"] == "free" and m["kernel"]["size"] == [7, 7] and "kernel" not in m["kernel"]
    assert math.isfinite(m["kernel_error"]) and m["kernel_error"] >= 0
    assert m["psnr_restored"] > m["psnr_observed"]


def test_recipe_kernel_estimate_without_a_size_is_one_line(tmp_path: Path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "image: skimage:camera\nsize: 48\noperator: {name: Blur, kernel: estimate}\nsteps: 3\noutput: out\n"
    )
    assert main([str(recipe), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "size" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("excess, kept", [(0.0, True), (0.03, True), (0.05, False)])
def test_guard_rejects_only_beyond_its_margin(monkeypatch, small_blurred, excess, kept):
    """The rule's threshold, with the sparsity of the two images set: the restoration's is
    ``(1 + excess)`` times the denoised y's. Kept up to GUARD_MARGIN (0.04), rejected beyond."""
    import pnpdiff.api as api
    import pnpdiff.blind as blind

    _, y = small_blurred
    assert api.GUARD_MARGIN == pytest.approx(0.04)
    calls = []

    def fake(img: torch.Tensor) -> float:  # first the restoration, then the delta solve
        calls.append(img)
        return 1.0 + excess if len(calls) == 1 else 1.0

    monkeypatch.setattr(blind, "normalised_sparsity", fake)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out, op, info = pnpdiff.solve(y, BlindBlur(9, family="gaussian"), sigma_y=SIGMA_Y, seed=0,
                                      return_operator=True, return_info=True, progress=False)
    assert len(calls) == 2 and info["kernel"]["guard"]["kept"] is kept
    assert (info["kernel"].get("chosen") == "delta") is (not kept)
    assert any("did not deblur" in str(w.message) for w in caught) is (not kept)
    torch.testing.assert_close(out, calls[0] if kept else calls[1], rtol=0, atol=0)
    assert (float(op.kernel.reshape(-1).max()) == 1.0) is (not kept)


def test_recipe_whose_kernel_is_rejected_says_so_and_writes_the_delta(tmp_path: Path, capsys, monkeypatch):
    """The guard as a recipe user meets it: a sharp photo of their own (``observed:``) given as
    blurry, the estimate replaced by a ghost kernel (two taps 5 px apart): the run succeeds, prints
    one warning line, writes the delta kernel it restored with, and metrics.json records the guard."""
    import pnpdiff.api as api

    x = _photo("camera", 48)
    y = (x + SIGMA_Y * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    photo = tmp_path / "sharp.png"
    Image.fromarray((y[0, 0].numpy() * 255).round().astype(np.uint8)).save(photo)
    ghost = torch.zeros(9, 9, dtype=torch.float64)
    ghost[4, 2] = ghost[4, 7] = 0.5
    what = {"family": "free", "size": [9, 9], "chosen": "free", "denoiser_calls": 0, "kernel": ghost.tolist()}
    monkeypatch.setattr(api, "estimate_blur", lambda *a, **k: (Blur(ghost), dict(what)))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"observed: {photo}\noperator: {{name: Blur, kernel: estimate, size: 9}}\n"
                      "noise: {sigma_y: 0.01}\nseed: 0\noutput: out\n")
    assert main([str(recipe), "--no-progress"]) == 0
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "did not deblur" in ln]
    assert len(lines) == 1 and lines[0].startswith("pnpdiff: warning: ")
    k = np.load(tmp_path / "out" / "kernel.npy")
    delta = np.zeros((9, 9))
    delta[4, 4] = 1
    np.testing.assert_array_equal(k, delta)
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert m["kernel"]["chosen"] == "delta" and m["kernel"]["rejected"] == {"chosen": "free"}
    assert m["kernel"]["guard"]["kept"] is False
