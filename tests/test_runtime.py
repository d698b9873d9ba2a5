"""How the denoiser runs (issue 15): channels_last FFDNet, precision= (autocast) and compile=."""

from __future__ import annotations

import warnings

import pytest
import torch

import pnpdiff
from pnpdiff import GaussianBlur
from pnpdiff.errors import PnPError, PnPWarning
from pnpdiff.priors import CallablePrior, load_prior
from pnpdiff.priors.ffdnet import FFDNet, ffdnet_weights_path
from pnpdiff.priors.runtime import RuntimePrior, cpu_has_native_bf16, with_runtime

pytestmark = pytest.mark.usefixtures("one_thread")


def _plain_ffdnet() -> FFDNet:
    """The official network in plain NCHW float32, loaded independently of FFDNetPrior."""
    net = FFDNet(3, 3, 96, 12)
    net.load_state_dict(torch.load(ffdnet_weights_path(), map_location="cpu", weights_only=True))
    return net.eval().requires_grad_(False)


def test_channels_last_ffdnet_equals_the_plain_network_to_float32_rounding() -> None:
    prior = load_prior("natural")
    assert prior.net.model[0].weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.rand(2, 3, 40, 36, generator=torch.Generator().manual_seed(0))
    s = torch.tensor([0.05, 0.2])
    with torch.no_grad():
        ref = _plain_ffdnet()(x, s)
        out = prior.denoise(x, s)
    assert out.is_contiguous()
    torch.testing.assert_close(out, ref, rtol=0, atol=2e-5)


def test_fp32_uncompiled_is_the_prior_itself() -> None:
    prior = load_prior("natural")
    assert with_runtime(prior) is prior


def test_bf16_runs_the_network_in_bfloat16_and_returns_float32() -> None:
    seen = []

    def f(x, s):
        w = torch.ones(3, 3, 3, 3) / 27
        out = torch.nn.functional.conv2d(x, w, padding=1)  # autocast-eligible
        seen.append(out.dtype)
        return out

    prior = CallablePrior(f, sigma_max=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PnPWarning)
        fast = with_runtime(prior, "bf16")
    assert isinstance(fast, RuntimePrior)
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    out = fast.denoise(x, 0.1)
    assert seen[-1] == torch.bfloat16 and out.dtype == torch.float32
    # bfloat16 keeps 8 bits of mantissa: relative error <= 2^-8 per rounding
    torch.testing.assert_close(out, prior.denoise(x, 0.1), rtol=2**-7, atol=2**-8)


def test_bf16_warns_on_a_cpu_without_native_bfloat16() -> None:
    prior = CallablePrior(lambda x, s: x, sigma_max=1.0)
    if cpu_has_native_bf16():
        pytest.skip("this CPU has native bfloat16")
    with pytest.warns(PnPWarning, match="bfloat16"):
        with_runtime(prior, "bf16")


@pytest.mark.parametrize("precision, match", [("fp16", "CUDA"), ("half", "precision"), (16, "precision")])
def test_bad_precisions_are_refused(precision, match) -> None:
    with pytest.raises(PnPError, match=match):
        with_runtime(CallablePrior(lambda x, s: x), precision)


def test_solve_with_bf16_keeps_the_data_step_in_float32() -> None:
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    op = GaussianBlur(1.0)
    y = op(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PnPWarning)
        fast = pnpdiff.solve(y, op, sigma_y=0.01, steps=3, seed=0, progress=False, precision="bf16")
    ref = pnpdiff.solve(y, op, sigma_y=0.01, steps=3, seed=0, progress=False)
    assert fast.dtype == torch.float32
    assert 0 < float((fast - ref).abs().max()) < 0.05  # bf16 really ran, and changed little
    with pytest.raises(PnPError, match="precision"):
        pnpdiff.solve(y, op, sigma_y=0.01, steps=3, progress=False, precision="fp8")


@pytest.mark.slow
def test_compile_gives_the_same_denoiser() -> None:
    pytest.importorskip("torch._inductor")
    prior = CallablePrior(lambda x, s: torch.tanh(x) * (1 - torch.as_tensor(s).reshape(-1, 1, 1, 1)), sigma_max=1.0)
    fast = with_runtime(prior, compile=True)
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    try:
        out = fast.denoise(x, 0.3)
    except Exception as err:  # noqa: BLE001 - no working compiler toolchain on this machine
        pytest.skip(f"torch.compile unavailable here: {type(err).__name__}")
    torch.testing.assert_close(out, prior.denoise(x, 0.3), rtol=1e-6, atol=1e-6)
