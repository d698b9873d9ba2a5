"""Operators refuse, with one line and before allocating, what they cannot build or apply (issue 25):
kernels from huge arguments, constructions past the memory guard, kernels larger than the image,
masks without an observed pixel or with non-binary values, tensors without values; they take PIL
images; prox's rho says where a solver's rho comes from."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tree_utils import tree_snapshot as _tree

import pnpdiff
from pnpdiff.errors import MemoryLimitError, OperatorError, PnPError, ShapeError, ValueRangeError
from pnpdiff.io import to_tensor
from pnpdiff.operators import (
    Blur,
    Downsample,
    GaussianBlur,
    Inpaint,
    MotionBlur,
    SaturatedBlur,
    UniformBlur,
    gaussian_kernel,
    motion_kernel,
    random_mask,
    uniform_kernel,
)

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]


def _one_line(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text, text
    return text


# ---------------------------------------------------------------------------------------------
# arguments that give a kernel wider than any image: refused before anything is allocated
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("build", "key", "words"), [
    (lambda: GaussianBlur(1e6), "sigma", "6,000,001 px a side"),
    (lambda: GaussianBlur(1e300), "sigma", "px a side"),
    (lambda: GaussianBlur((1.0, 1e5)), "sigma", "600,001 px a side"),
    (lambda: GaussianBlur(1.0, kernel_size=10**6), "kernel_size", "1,000,000 px a side"),
    (lambda: gaussian_kernel(2e4), "sigma", "120,001 px a side"),
    (lambda: MotionBlur(10**5), "size", "100,000 px a side"),
    (lambda: motion_kernel(2**40), "size", "px a side"),
    (lambda: UniformBlur((3, 10**7)), "size", "10,000,000 px a side"),
    (lambda: uniform_kernel(10**9), "size", "px a side"),
    (lambda: SaturatedBlur(1e6), "sigma", "px a side"),
    (lambda: Downsample(10**9), "factor", "at most 16384"),
    (lambda: Downsample(4, filter="gaussian", sigma=1e9), "sigma", "at most 16384"),
    (lambda: random_mask((10**6, 10**6), 0.5), "shape", "a mask 1,000,000 px a side"),
])
def test_huge_arguments_are_refused_naming_them(build, key, words):
    """GaussianBlur(1e6) tried to allocate 288 TB; now one line names the argument."""
    with pytest.raises(OperatorError) as info:
        build()
    msg = _one_line(info.value)
    assert isinstance(info.value, ValueRangeError)
    assert msg.startswith(key + " ") and words in msg, msg


def test_motion_kernel_of_999_builds_without_a_60_gb_convolution():
    """Softening the trace of a 999-px motion kernel used a direct convolution whose im2col needs
    ~60 GB; with 3 GiB more address space than after import it now builds (an FFT), normalised and non-negative."""
    code = (
        "import resource, torch; torch.set_num_threads(1)\n"
        "from pnpdiff.operators import motion_kernel\n"
        "motion_kernel(15)\n"
        "vm = int(open('/proc/self/status').read().split('VmSize:')[1].split()[0]) * 1024\n"
        "resource.setrlimit(resource.RLIMIT_AS, (vm + 3 * 2**30, resource.RLIM_INFINITY))\n"
        "k = motion_kernel(999, 0.5, seed=0, dtype=torch.float64)\n"
        "assert k.shape == (999, 999) and abs(float(k.sum()) - 1) < 1e-9 and float(k.min()) >= 0\n"
        "print('ok')\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]


def test_fft_softening_agrees_with_the_direct_convolution():
    """Sizes where the softening Gaussian has more than 441 taps take the FFT path: same kernel as a
    direct zero-padded convolution of the same trace, to rounding."""
    import torch.nn.functional as F

    import pnpdiff.operators.kernels as kernels

    size = 300
    k = motion_kernel(size, 0.5, seed=2, dtype=torch.float64)
    assert k.shape == (size, size) and abs(float(k.sum()) - 1) < 1e-12
    trace = torch.rand(size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    g1 = kernels.gaussian_kernel(0.01 * size * 2**0.5, dtype=torch.float64)
    assert g1.numel() > 441
    r = g1.shape[-1] // 2
    direct = F.conv2d(trace[None, None], g1[None, None], padding=r)[0, 0]
    n = size + 2 * r
    fft = torch.fft.irfft2(torch.fft.rfft2(trace, s=(n, n)) * torch.fft.rfft2(g1, s=(n, n)), s=(n, n))
    torch.testing.assert_close(fft[r : r + size, r : r + size], direct, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# the memory guard of solve, before a construction allocates
# ---------------------------------------------------------------------------------------------
def test_constructions_past_the_memory_limit_are_refused_before_allocating():
    """PNPDIFF_MAX_MEMORY holds operator constructions too (a fresh process: the variable is the
    user's, read as solve reads it)."""
    code = (
        "import torch\n"
        "from pnpdiff.errors import MemoryLimitError, OperatorError\n"
        "from pnpdiff.operators import GaussianBlur, MotionBlur, UniformBlur, freeform_mask, random_mask\n"
        "cases = [('sigma', lambda: GaussianBlur(300)),\n"
        "         ('kernel_size', lambda: GaussianBlur(2.0, kernel_size=2001)),\n"
        "         ('size', lambda: MotionBlur(2001)), ('size', lambda: UniformBlur(3001)),\n"
        "         ('shape', lambda: random_mask((4, 3, 2000, 2000), 0.5)),\n"
        "         ('shape', lambda: freeform_mask((900, 900)))]\n"
        "for key, build in cases:\n"
        "    try:\n"
        "        build()\n"
        "    except MemoryLimitError as err:\n"
        "        assert isinstance(err, OperatorError), type(err)\n"
        "        msg = str(err)\n"
        "        assert msg.startswith(key + ' ') and 'PNPDIFF_MAX_MEMORY=64M' in msg and '\\n' not in msg, msg\n"
        "    else:\n"
        "        raise SystemExit(f'{key}: built past the limit')\n"
        "GaussianBlur(3.0); MotionBlur(61); random_mask((256, 256), 0.5)  # small ones are not affected\n"
        "print('ok')\n"
    )
    env = {**os.environ, "PNPDIFF_MAX_MEMORY": "64M"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:] + run.stdout


# ---------------------------------------------------------------------------------------------
# a kernel larger than the image
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("boundary", ["circular", "zeros"])
@pytest.mark.parametrize("method", ["forward", "adjoint", "pinv", "gram", "prox", "check_shape"])
def test_kernel_larger_than_the_image_is_refused(boundary, method):
    op = MotionBlur(15, boundary=boundary)
    x = torch.rand(1, 3, 12, 20)
    with pytest.raises(ShapeError) as info:
        if method == "prox":
            op.prox(x, x, 0.1)
        elif method == "check_shape":
            op.check_shape(x.shape)
        else:
            getattr(op, method)(x)
    msg = _one_line(info.value)
    assert "(15, 15)" in msg and "(12, 20)" in msg and "smaller" in msg, msg


def test_kernel_larger_than_the_image_is_refused_by_the_spectral_view():
    with pytest.raises(ShapeError, match=r"\(7, 7\).*\(5, 5\)"):
        GaussianBlur(1.0).singular_values((5, 5))


def test_allow_wrap_is_the_periodic_model():
    """allow_wrap=True: a 7x7 kernel on a 4x5 image is the kernel folded onto the image's torus."""
    import scipy.ndimage

    g = torch.Generator().manual_seed(1)
    k = torch.rand(7, 7, generator=g, dtype=torch.float64)
    x = torch.rand(1, 1, 4, 5, generator=g, dtype=torch.float64)
    out = Blur(k, allow_wrap=True)(x)
    ref = scipy.ndimage.convolve(x[0, 0].numpy(), k.numpy(), mode="wrap")
    np.testing.assert_allclose(out[0, 0].numpy(), ref, atol=1e-12)
    with pytest.raises(OperatorError, match="allow_wrap=True needs boundary='circular'"):
        Blur(k, boundary="zeros", allow_wrap=True)


def test_solve_refuses_a_kernel_larger_than_the_image_with_one_line():
    with pytest.raises(ShapeError) as info:
        pnpdiff.solve(torch.rand(1, 3, 32, 32), MotionBlur(61), steps=1, progress=False)
    assert "(61, 61)" in _one_line(info.value) and "(32, 32)" in str(info.value)


# ---------------------------------------------------------------------------------------------
# masks
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("mask", "words"), [
    (torch.zeros(8, 8), "mask has no observed pixel"),
    (torch.zeros(8, 8, dtype=torch.bool), "mask has no observed pixel"),
    (torch.stack([torch.ones(1, 8, 8), torch.zeros(1, 8, 8)]), "no observed pixel in batch element 1"),
    (random_mask((3, 8, 8), 1.0), "mask has no observed pixel"),
    (torch.full((8, 8), 0.37), "mask values must be 0 or 1 (1 = observed, 0 = missing), found 0.37"),
    (torch.tensor([[1.0, 0.5], [0.0, 1.0]]), "found 0.5"),
    (torch.tensor([[1.0, float("nan")], [0.0, 1.0]]), "mask must be finite"),
    (torch.ones(8, 8, device="meta"), "mask is a tensor on the 'meta' device"),
])
def test_bad_masks_are_refused(mask, words):
    with pytest.raises(OperatorError) as info:
        Inpaint(mask)
    assert words in _one_line(info.value), str(info.value)
    assert isinstance(info.value, PnPError)


def test_soft_masks_are_an_explicit_choice():
    soft = torch.full((4, 4), 0.37)
    op = Inpaint(soft, soft=True)
    x = torch.rand(1, 1, 4, 4)
    torch.testing.assert_close(op(x), 0.37 * x)
    assert Inpaint((torch.rand(4, 4) > 0.5) | torch.eye(4, dtype=torch.bool)).binary
    with pytest.raises(OperatorError, match="no observed pixel"):
        Inpaint(torch.zeros(4, 4), soft=True)


@pytest.mark.parametrize("build", [
    lambda: Blur(torch.ones(3, 3, device="meta")),
    lambda: Downsample(2, filter=torch.ones(3, 3, device="meta")),
])
def test_meta_parameters_are_refused(build):
    with pytest.raises(OperatorError, match="'meta' device"):
        build()


def test_operators_still_propagate_meta_shapes():
    """A meta *input* is how shapes are propagated (solve checks shapes that way): not refused."""
    assert GaussianBlur(1.0)(torch.empty(1, 3, 16, 16, device="meta")).shape == (1, 3, 16, 16)
    assert Downsample(2)(torch.empty(1, 3, 16, 16, device="meta")).shape == (1, 3, 8, 8)


# ---------------------------------------------------------------------------------------------
# PIL images
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["RGB", "L", "I;16"])
@pytest.mark.parametrize("make", [lambda: GaussianBlur(1.0), lambda: Downsample(2), lambda: SaturatedBlur(1.0, 2.0),
                                  lambda: Inpaint(random_mask((16, 24), 0.5))])
def test_operators_take_pil_images_as_solve_does(mode, make):
    rng = np.random.default_rng(0)
    if mode == "I;16":
        im = Image.fromarray(rng.integers(0, 65536, (16, 24), dtype=np.uint16))
    else:
        im = Image.fromarray(rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)).convert(mode)
    op = make()
    out = op(im)
    ref = op(to_tensor(im)[0])
    assert torch.is_tensor(out) and out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=0, atol=0)


def test_methods_other_than_call_say_how_to_convert_a_pil_image():
    im = Image.new("RGB", (16, 16))
    with pytest.raises(ShapeError) as info:
        GaussianBlur(1.0).adjoint(im)
    msg = _one_line(info.value)
    assert "op(y) converts a PIL image" in msg and "pnpdiff.io.to_tensor(y)" in msg, msg
    with pytest.raises(ShapeError, match=r"pnpdiff\.io\.to_tensor\(x\)"):
        GaussianBlur(1.0).forward(np.zeros((16, 16, 3), np.uint8))


# ---------------------------------------------------------------------------------------------
# messages that named internal quantities
# ---------------------------------------------------------------------------------------------
def test_rho_message_says_where_a_solvers_rho_comes_from():
    x = torch.rand(1, 1, 8, 8)
    with pytest.raises(ValueRangeError) as info:
        GaussianBlur(1.0).prox(x, x, -1.0)
    msg = _one_line(info.value)
    assert msg.startswith("rho must be a non-negative number, got -1.0") and "lam" in msg and "prox(z, y, rho)" in msg


@pytest.mark.parametrize("method", ["diffpir", "dpir"])
def test_a_negative_lam_is_named_in_solve(method):
    with pytest.raises(PnPError) as info:
        pnpdiff.solve(torch.rand(1, 3, 16, 16), GaussianBlur(1.0), prior=lambda x, s: x, method=method,
                      lam=-1.0, steps=2, progress=False)
    assert "lam" in _one_line(info.value), str(info.value)


def test_a_prior_returning_integers_is_named():
    with pytest.raises(PnPError) as info:
        pnpdiff.solve(torch.rand(1, 3, 16, 16), GaussianBlur(1.0), prior=lambda x, s: (x * 255).long(),
                      steps=2, progress=False)
    assert "prior" in _one_line(info.value), str(info.value)


# ---------------------------------------------------------------------------------------------
# through the CLI: one line, exit 2, nothing written
# ---------------------------------------------------------------------------------------------
RECIPE = """\
image: skimage:astronaut
size: 32
operator: {name: GaussianBlur, sigma: 1.5}
noise: {sigma_y: 0.02, seed: 0}
steps: 2
seed: 0
output: out
"""


@pytest.mark.parametrize(("override", "env", "words"), [
    ("operator={name: GaussianBlur, sigma: 1e6}", {}, "operator.sigma: 1000000.0 gives a kernel 6,000,001 px"),
    ("operator={name: MotionBlur, size: 100000}", {}, "operator.size: 100000 gives a kernel"),
    ("operator={name: GaussianBlur, sigma: 300}", {"PNPDIFF_MAX_MEMORY": "64M"},
     "operator.sigma: 300 gives a 1801x1801"),
    ("operator={name: MotionBlur, size: 61}", {}, "kernel is (61, 61) (h, w) but the image is (32, 32)"),
    ("operator={name: Inpaint, mask: black.png}", {}, "black.png has no observed pixel"),  # names the file
    ("operator={name: Inpaint, mask: missing.png}", {}, "operator.mask: image file not found"),
    ("operator={name: Inpaint, mask: {kind: random, p_missing: 1.0}}", {}, "operator.mask: has no observed pixel"),
])
def test_cli_dry_run_refuses_with_one_line(tmp_path: Path, override: str, env: dict, words: str):
    (tmp_path / "r.yaml").write_text(RECIPE)
    Image.new("L", (32, 32)).save(tmp_path / "black.png")
    before = _tree(tmp_path)
    run = subprocess.run([sys.executable, "-m", "pnpdiff", "r.yaml", override, "--dry-run"], cwd=tmp_path,
                         capture_output=True, text=True, env={**os.environ, **env}, timeout=300)
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pnpdiff: error: ") and words in lines[0], run.stderr
    assert "Traceback" not in run.stderr
    assert _tree(tmp_path) == before


def test_the_memory_error_class_is_both():
    """An operator's memory refusal is caught as a MemoryLimitError (like solve's) and as an
    OperatorError (recipes name the operator key)."""
    from pnpdiff.operators._checks import OperatorMemoryError

    assert issubclass(OperatorMemoryError, MemoryLimitError) and issubclass(OperatorMemoryError, OperatorError)
