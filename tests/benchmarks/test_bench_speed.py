"""Where the time goes, per prior and per way of batching (issue 15); ratios within one run.

Groups (each compares pnpdiff with the plain network or with deepinv on the same input):

* ``adm call``: one denoiser call of an ADM-shaped network (the ``ffhq`` configuration, random
  weights) as :class:`~pnpdiff.priors.ADMPrior` runs it (channels_last weights; fp32, and bf16 /
  fp16 autocast where the device runs them natively) against the same network in NCHW float32
  through the plain adapter;
* ``adm diffpir vs bare calls``: a DiffPIR solve of ``STEPS`` steps with that prior against
  ``STEPS`` bare UNet calls (issue 15's GPU criterion: <= 1.1x in fp32) -- everything the solver
  adds (schedule, FFT prox, noise) is the difference -- and the same solve with
  ``precision="bf16"`` / ``"fp16"`` (the half-precision speed-up);
* ``digits call``: the shipped digits UNet, a batch of 16, as shipped (NCHW) against
  channels_last;
* ``deepinv diffpir`` / ``deepinv dpir``: pnpdiff's DiffPIR (20 steps) and DPIR (8 steps) against
  ``deepinv.sampling.DiffPIR(max_iter=20)`` and ``deepinv.optim.DPIR`` (8 iterations) with the
  *same* FFDNet denoiser and operator at 256^2 (equal numbers of denoiser calls);
* ``folder``: a batch recipe over 16 photos of 64^2 with ``batch_size`` 1, 4 and 16 (images per
  second is ``16 / mean``).

Sizes default to CPU-friendly values; on a GPU set ``PNPDIFF_BENCH_ADM_SIZE=256`` and
``PNPDIFF_BENCH_ADM_STEPS=100`` (and ``PNPDIFF_BENCH_DEVICE=cuda``). Run with::

    python -m pytest -n 0 tests/benchmarks/test_bench_speed.py --benchmark-enable --benchmark-group-by=group
"""

from __future__ import annotations

import copy
import os
import sys
import tempfile
from pathlib import Path

import pytest
import torch

import pnpdiff
from pnpdiff import GaussianBlur
from pnpdiff.priors import ADMConfig, ADMPrior, ADMUNet, EpsPrior, ddpm_alphas_cumprod, load_prior
from pnpdiff.priors.adm import adm_config
from pnpdiff.priors.runtime import cpu_has_native_bf16, with_runtime

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import deepinv_denoiser, deepinv_physics, run_deepinv_diffpir, run_deepinv_dpir  # noqa: E402

DEVICE = torch.device(os.environ.get("PNPDIFF_BENCH_DEVICE", "cpu"))
ADM_SIZE = int(os.environ.get("PNPDIFF_BENCH_ADM_SIZE", "128"))
ADM_STEPS = int(os.environ.get("PNPDIFF_BENCH_ADM_STEPS", "10"))


def _sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


@pytest.fixture(scope="module")
def adm() -> tuple[ADMPrior, torch.nn.Module]:
    """(the prior, the same network as a plain NCHW module), random weights."""
    cfg = ADMConfig.from_dict({**adm_config("ffhq").to_dict(), "image_size": ADM_SIZE})
    net = ADMUNet(cfg).eval().requires_grad_(False)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(0.02 * torch.randn(p.shape, generator=g))
    plain = copy.deepcopy(net).to(DEVICE)
    return ADMPrior(net).to(DEVICE), plain


def _half_precision_runs(precision: str) -> None:
    """Skip a half-precision case where it cannot be measured: fp16 off CUDA, bf16 on a CPU that
    emulates it (10x slower than fp32 on an AVX2 CPU: docs/speed.md)."""
    if precision == "fp16" and DEVICE.type != "cuda":
        pytest.skip("fp16 runs on CUDA only")
    if precision == "bf16" and DEVICE.type == "cpu" and not cpu_has_native_bf16():
        pytest.skip("this CPU emulates bfloat16")


@pytest.mark.benchmark(group="adm call")
@pytest.mark.parametrize("impl", ["plain-nchw-fp32", "pnpdiff-fp32", "pnpdiff-bf16", "pnpdiff-fp16"])
def test_adm_call(benchmark, adm, impl) -> None:
    prior, plain = adm
    precision = impl.rsplit("-", 1)[1]
    if precision != "fp32":
        _half_precision_runs(precision)
        prior = with_runtime(prior, precision, device=DEVICE)
    if impl == "plain-nchw-fp32":
        cfg = prior.config
        prior = EpsPrior(plain, ddpm_alphas_cumprod(cfg.beta_start, cfg.beta_end, cfg.num_timesteps),
                         learned_variance=cfg.learn_sigma).to(DEVICE)
    x = torch.rand(1, 3, ADM_SIZE, ADM_SIZE, generator=torch.Generator().manual_seed(0)).to(DEVICE)

    def call() -> None:
        with torch.no_grad():
            prior.denoise(x, 0.3)
        _sync()

    benchmark.pedantic(call, rounds=3, warmup_rounds=1)


@pytest.mark.benchmark(group="adm diffpir vs bare calls")
@pytest.mark.parametrize("impl", ["bare-unet-calls", "diffpir-solve", "diffpir-solve-bf16", "diffpir-solve-fp16"])
def test_adm_diffpir_against_bare_calls(benchmark, adm, impl) -> None:
    prior, plain = adm
    precision = impl.rsplit("-", 1)[1] if impl.count("-") == 2 else "fp32"
    if precision != "fp32":
        _half_precision_runs(precision)
    x = torch.rand(1, 3, ADM_SIZE, ADM_SIZE, generator=torch.Generator().manual_seed(0)).to(DEVICE)
    op = GaussianBlur(2.0).to(DEVICE)
    y = op(x) + 0.025 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1)).to(DEVICE)
    t = torch.full((1,), 500, device=DEVICE)

    def bare() -> None:
        with torch.no_grad():
            for _ in range(ADM_STEPS):
                plain(x, t)
        _sync()

    def solve() -> None:
        pnpdiff.solve(y, op, prior=prior, method="diffpir", steps=ADM_STEPS, sigma_y=0.025, seed=0,
                      progress=False, device=DEVICE, max_memory="off", precision=precision)
        _sync()

    benchmark.pedantic(bare if impl == "bare-unet-calls" else solve, rounds=2, warmup_rounds=1)


@pytest.mark.benchmark(group="digits call")
@pytest.mark.parametrize("impl", ["as-shipped-nchw", "channels-last"])
def test_digits_call(benchmark, impl) -> None:
    """The digits UNet is tiny (16^2): channels_last measured at 0.89-1.01x, inside the noise, so
    the prior keeps NCHW; this group keeps checking that choice."""
    prior = copy.deepcopy(load_prior("digits")).to(DEVICE)
    x = torch.rand(16, 1, 16, 16, generator=torch.Generator().manual_seed(0)).to(DEVICE)
    s = torch.full((16,), 0.3, device=DEVICE)
    with torch.no_grad():
        ref = prior.denoise(x, s)
        if impl == "channels-last":
            prior.net.to(memory_format=torch.channels_last)
            torch.testing.assert_close(prior.denoise(x, s), ref, rtol=1e-5, atol=1e-5)

    def call() -> None:
        with torch.no_grad():
            prior.denoise(x, s)
        _sync()

    benchmark.pedantic(call, rounds=20, warmup_rounds=2)


@pytest.fixture(scope="module")
def photo256() -> tuple[torch.Tensor, GaussianBlur, torch.Tensor]:
    from skimage import data

    img = torch.from_numpy(data.astronaut()).permute(2, 0, 1).float().div(255)[None]
    x = torch.nn.functional.interpolate(img, size=(256, 256), mode="bilinear", antialias=True).to(DEVICE)
    op = GaussianBlur(3.0).to(DEVICE)
    y = op(x) + 0.025 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0)).to(DEVICE)
    return x, op, y


@pytest.mark.benchmark(group="deepinv diffpir (20 denoiser calls, 256^2)")
@pytest.mark.parametrize("impl", ["deepinv", "pnpdiff"])
def test_diffpir_against_deepinv(benchmark, photo256, impl) -> None:
    x, op, y = photo256
    prior = load_prior("natural").to(DEVICE)
    if impl == "deepinv":
        physics, den = deepinv_physics(op, 0.025, tuple(x.shape)), deepinv_denoiser(prior)
        fn = lambda: run_deepinv_diffpir(y, physics, den, 0.025, DEVICE, 20, 0)  # noqa: E731
    else:
        fn = lambda: pnpdiff.solve(y, op, prior=prior, method="diffpir", steps=20, sigma_y=0.025,  # noqa: E731
                                   seed=0, progress=False, device=DEVICE)
    benchmark.pedantic(fn, rounds=2, warmup_rounds=1)


@pytest.mark.benchmark(group="deepinv dpir (8 denoiser calls, 256^2)")
@pytest.mark.parametrize("impl", ["deepinv", "pnpdiff"])
def test_dpir_against_deepinv(benchmark, photo256, impl) -> None:
    x, op, y = photo256
    prior = load_prior("natural").to(DEVICE)
    if impl == "deepinv":
        physics, den = deepinv_physics(op, 0.025, tuple(x.shape)), deepinv_denoiser(prior)
        fn = lambda: run_deepinv_dpir(y, physics, den, 0.025, DEVICE)  # noqa: E731
    else:
        fn = lambda: pnpdiff.solve(y, op, prior=prior, method="dpir", steps=8, sigma_y=0.025,  # noqa: E731
                                   seed=0, progress=False, device=DEVICE)
    benchmark.pedantic(fn, rounds=2, warmup_rounds=1)


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from PIL import Image
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    img = data.astronaut()
    for k in range(16):
        r, c = divmod(k, 4)
        Image.fromarray(img[r * 128:r * 128 + 64, c * 128:c * 128 + 64]).save(folder / f"p{k:02d}.png")
    return folder


@pytest.mark.benchmark(group="folder of 16 photos 64^2 (images/s = 16 / mean)")
@pytest.mark.parametrize("batch_size", [1, 4, 16])
def test_folder_throughput(benchmark, photo_folder, batch_size) -> None:
    from pnpdiff.config.restore import parse_recipe
    from pnpdiff.runs.batch import run_batch

    def run() -> None:
        with tempfile.TemporaryDirectory() as out:
            recipe = parse_recipe({"image": str(photo_folder), "operator": {"name": "GaussianBlur", "sigma": 1.5},
                                   "noise": {"sigma_y": 0.02}, "steps": 10, "batch_size": batch_size,
                                   "output": out, "device": str(DEVICE), "save": ["restored"]})
            summary = run_batch(recipe, progress=False)
            assert summary["computed"] == 16

    benchmark.pedantic(run, rounds=2, warmup_rounds=1)
