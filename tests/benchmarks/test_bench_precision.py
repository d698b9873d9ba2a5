"""Speed of the denoiser as it runs in pnpdiff against the plain float32 NCHW module (issue 15).

Ratios in the same run: one FFDNet call at 256^2 (the prior's channels_last default, bf16
autocast) against the official network in NCHW float32, and one whole default DiffPIR solve
(20 denoiser calls) against 20 plain calls. Run with::

    python -m pytest -n 0 tests/benchmarks/test_bench_precision.py --benchmark-enable --benchmark-group-by=group
"""

from __future__ import annotations

import warnings

import pytest
import torch

import pnpdiff
from pnpdiff import GaussianBlur
from pnpdiff.errors import PnPWarning
from pnpdiff.priors import load_prior
from pnpdiff.priors.ffdnet import FFDNet, ffdnet_weights_path
from pnpdiff.priors.runtime import with_runtime

SIZE = 256


@pytest.fixture(scope="module")
def plain() -> FFDNet:
    net = FFDNet(3, 3, 96, 12)
    net.load_state_dict(torch.load(ffdnet_weights_path(), map_location="cpu", weights_only=True))
    return net.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))


@pytest.mark.benchmark(group="ffdnet call 256")
@pytest.mark.parametrize("impl", ["plain-nchw-fp32", "pnpdiff-fp32", "pnpdiff-bf16"])
def test_ffdnet_call(benchmark, plain, image, impl) -> None:
    s = torch.tensor([0.1])
    if impl == "plain-nchw-fp32":
        fn = lambda: plain(image, s)  # noqa: E731
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PnPWarning)
            prior = with_runtime(load_prior("natural"), impl.split("-")[1])
        fn = lambda: prior.denoise(image, s)  # noqa: E731
    with torch.no_grad():
        benchmark.pedantic(fn, rounds=5, warmup_rounds=1)


@pytest.mark.benchmark(group="diffpir solve 256 vs 20 plain calls")
@pytest.mark.parametrize("impl", ["20-plain-calls", "solve-fp32"])
def test_diffpir_solve(benchmark, plain, image, impl) -> None:
    op = GaussianBlur(3.0)
    y = op(image) + 0.025 * torch.randn(image.shape, generator=torch.Generator().manual_seed(1))
    s = torch.tensor([0.1])

    def calls() -> None:
        with torch.no_grad():
            for _ in range(20):
                plain(image, s)

    def solve() -> None:
        pnpdiff.solve(y, op, sigma_y=0.025, seed=0, progress=False)

    benchmark.pedantic(calls if impl == "20-plain-calls" else solve, rounds=3, warmup_rounds=1)
