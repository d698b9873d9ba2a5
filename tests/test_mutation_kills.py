"""Tests written to kill mutants that survived the mutation run (tests/mutation/SURVIVORS.md).

Each checks a property from the method's definition (not a re-computation of the code):

* DDNM's time travel re-noises with the VE forward transition ``q(x_s | x_t)``, whose noise has
  variance ``s^2 - t^2`` (the increment of the variance-exploding process from ``t`` to ``s``);
* DPIR with a schedule without any positive noise level does no iteration and returns the
  measurement-consistent initial estimate (finite, close to ``y`` for ``A = I``);
* DDRM's start (Eq. 7) draws the measured coefficients around ``y`` with variance
  ``T^2 - sigma_y^2``;
* every solver and sampler runs under ``torch.no_grad()``: neither its result nor the tensors
  handed to its callback carry an autograd graph, even when ``y`` (or ``x_T``) requires grad;
* a VP adapter drops the second half of the channels only for a ``2 C``-channel (learned
  variance) output; any other channel count is a :class:`~pnpdiff.errors.ShapeError`;
* a sampler's start drawn from a shape lives on the generator's device (CUDA only).
"""

from __future__ import annotations

import math

import pytest
import torch

from pnpdiff.errors import ShapeError
from pnpdiff.operators import Identity, Matrix
from pnpdiff.priors.adapters import EpsPrior, X0Prior
from pnpdiff.priors.base import Prior
from pnpdiff.solvers import SOLVERS, samplers
from pnpdiff.solvers.ddnm import ddnm
from pnpdiff.solvers.dpir import dpir

F64 = torch.float64


class _Recorder(Prior):
    """Gaussian N(mu, v) per coordinate (closed-form MMSE denoiser) that records its inputs."""

    data_range = None

    def __init__(self, mu: float = 0.0, v: float = 1.0) -> None:
        super().__init__()
        self.mu, self.v = mu, v
        self.calls: list[tuple[float, torch.Tensor]] = []

    def denoise(self, x, sigma):
        s = float(sigma)
        self.calls.append((s, x.clone()))
        return self.mu + self.v / (self.v + s**2) * (x - self.mu)


def test_ddnm_time_travel_renoise_has_ve_transition_variance():
    n = 1000
    torch.manual_seed(0)
    A = torch.eye(n // 2, n, dtype=F64)  # observe half the coordinates; the rest is null space
    y = torch.zeros(1, n // 2, dtype=F64)
    prior = _Recorder()
    sigmas = torch.tensor([0.9, 0.6, 0.3, 0.0], dtype=F64)
    after: list[tuple[float, torch.Tensor]] = []
    ddnm(
        y,
        Matrix(A),
        prior,
        sigmas,
        0.0,
        eta=0.5,
        travel_length=1,
        travel_repeat=2,
        x_init=torch.zeros(1, n, dtype=F64),
        generator=torch.Generator().manual_seed(1),
        callback=lambda i, t, x, x0: after.append((t, x.clone())),
    )
    # One callback per denoiser call, with x at the step's next sigma s; when the next denoiser
    # call is at a higher sigma than s, the path travelled from s back up to it in between.
    levels = sigmas.tolist()
    checked = 0
    for j in range(1, len(prior.calls)):
        t_prev, x_prev = after[j - 1]
        s_from = levels[levels.index(t_prev) + 1]
        s_to, x_in = prior.calls[j]
        if s_to > s_from:
            want = math.sqrt(s_to**2 - s_from**2)
            got = float((x_in - x_prev).std())
            assert abs(got / want - 1) < 0.08, (s_from, s_to, got, want)
            checked += 1
    assert checked == 2


def test_dpir_without_positive_sigma_returns_the_initial_estimate():
    n = 16
    torch.manual_seed(0)
    y = torch.rand(1, n, dtype=F64)
    prior = _Recorder(mu=0.5, v=0.04)
    x = dpir(y, Matrix(torch.eye(n, dtype=F64)), prior, torch.tensor([0.0], dtype=F64), 0.05)
    assert prior.calls == []  # no noise level: no denoising
    assert torch.isfinite(x).all()
    # A = I: the least-squares start is y pulled only slightly towards a constant
    assert torch.allclose(x, y, atol=0.02)


def test_ddrm_start_draws_measured_coefficients_around_ybar():
    # DDRM Eq. (7): with A = I, every coefficient is measured (s_i = 1) and x_T ~ N(y, T^2 - sigma_y^2)
    n, T, sigma_y = 400, 0.5, 0.1
    from pnpdiff.solvers.ddrm import ddrm

    y = torch.rand(1, n, dtype=F64)
    prior = _Recorder()
    ddrm(
        y,
        Matrix(torch.eye(n, dtype=F64)),
        prior,
        torch.tensor([T, 0.0], dtype=F64),
        sigma_y,
        x_init=torch.zeros(1, n, dtype=F64),
        generator=torch.Generator().manual_seed(0),
    )
    x_T = prior.calls[0][1]
    got = float((x_T - y).std())
    assert abs(got / math.sqrt(T**2 - sigma_y**2) - 1) < 0.2  # mutants are off by > 2x


def test_dpir_result_carries_no_autograd_graph():
    n = 8
    y = torch.rand(1, n, dtype=F64, requires_grad=True)
    x = dpir(y, Matrix(torch.eye(n, dtype=F64)), _Recorder(0.5, 0.04), torch.tensor([0.2, 0.1, 0.0], dtype=F64), 0.05)
    assert not x.requires_grad  # solvers run under torch.no_grad()


class _GradModeRecorder(_Recorder):
    """A :class:`_Recorder` that also records whether autograd was on at each denoiser call."""

    def __init__(self, mu: float = 0.5, v: float = 0.04) -> None:
        super().__init__(mu, v)
        self.grad_enabled: list[bool] = []

    def denoise(self, x, sigma):
        self.grad_enabled.append(torch.is_grad_enabled())
        return super().denoise(x, sigma)


# solvers whose guidance differentiates the denoiser itself (under torch.enable_grad()); smc's
# twisted proposal takes one vector-Jacobian product per chunk of particles
_DIFFERENTIATE_THE_DENOISER = {"dps", "pigdm", "smc"}


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_solver_result_carries_no_autograd_graph(name):
    # every solver runs under torch.no_grad(): even for a y that requires grad, the result is a
    # plain tensor (no graph holding every step's activations); DPS and PiGDM differentiate the
    # denoiser internally, RED-diff the operator, but nothing of that may reach the result
    n = 8
    y = torch.rand(1, n, dtype=F64, requires_grad=True)
    op = Identity() if name == "mmse" else Matrix(torch.eye(n, dtype=F64))
    prior = _GradModeRecorder()
    sigmas = torch.tensor([0.3, 0.1, 0.03, 0.0], dtype=F64)
    sigma_y = 0.0 if name == "ddnm" else 0.05  # ddnm warns about (and is not for) noisy y
    # requires_grad of every iterate and estimate handed to the callback (mmse hands y itself)
    seen: list[bool] = []
    x = SOLVERS[name](
        y,
        op,
        prior,
        sigmas,
        sigma_y,
        generator=torch.Generator().manual_seed(0),
        callback=lambda i, t, xi, x0: seen.extend([xi is not y and xi.requires_grad, x0.requires_grad]),
    )
    assert torch.isfinite(x).all()
    assert not x.requires_grad and x.grad_fn is None
    assert seen and not any(seen)
    assert prior.grad_enabled  # the denoiser was called
    if name not in _DIFFERENTIATE_THE_DENOISER:
        assert not any(prior.grad_enabled)  # the denoiser ran without autograd


@pytest.mark.parametrize("name", ["ddpm", "ddim", "euler", "heun"])
def test_sampler_result_carries_no_autograd_graph(name):
    x_T = (0.5 + 0.3 * torch.randn(1, 8, dtype=F64)).requires_grad_(True)
    prior = _GradModeRecorder()
    seen: list[bool] = []
    x = getattr(samplers, name)(
        prior,
        torch.tensor([0.3, 0.1, 0.03, 0.0], dtype=F64),
        x_T,
        callback=lambda i, t, xi, x0: seen.extend([xi.requires_grad, x0.requires_grad]),
    )
    assert torch.isfinite(x).all()
    assert not x.requires_grad and x.grad_fn is None
    assert seen and not any(seen)
    assert prior.grad_enabled and not any(prior.grad_enabled)


@pytest.mark.parametrize("cls", [EpsPrior, X0Prior])
@pytest.mark.parametrize("out_channels", [4, 5])  # for C = 3: neither C nor 2 C (learned variance)
def test_vp_adapter_refuses_outputs_with_neither_c_nor_2c_channels(cls, out_channels):
    # only a 2C-channel output is a learned-variance output whose second half may be dropped; a
    # model returning C + 1 or C + 2 channels is a wrong model and must not be cut silently to C
    x = torch.rand(2, 3, 4, 4, dtype=F64)
    prior = cls(lambda xv, t: torch.zeros(xv.shape[0], out_channels, *xv.shape[2:], dtype=xv.dtype))
    with pytest.raises(ShapeError):
        prior.denoise(x, 0.1)
    assert cls(lambda xv, t: torch.zeros(2, 6, 4, 4, dtype=xv.dtype)).denoise(x, 0.1).shape == x.shape


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a second device (CUDA)")
@pytest.mark.parametrize("name", ["ddpm", "ddim", "euler", "heun"])
def test_sampler_start_from_a_shape_is_drawn_on_the_generators_device(name):
    # documented default: a start drawn from a shape lives on the generator's device (on a
    # CPU-only machine every default is the CPU, so this is only observable with a GPU)
    g = torch.Generator(device="cuda").manual_seed(0)
    x = getattr(samplers, name)(
        _Recorder(0.5, 0.04), torch.tensor([0.3, 0.1, 0.0], dtype=F64), (2, 8), generator=g, dtype=F64
    )
    assert x.device.type == "cuda" and x.shape == (2, 8) and torch.isfinite(x).all()
