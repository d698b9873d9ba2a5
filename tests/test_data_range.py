"""Priors declare the range of their data (``Prior.data_range``); ``solve`` follows it.

Image priors declare ``(0.0, 1.0)``: ``solve`` refuses a measurement far outside it and clips the
result to it. Priors whose data live anywhere (Gaussian mixtures, a user's scientific prior)
declare ``None``: nothing is checked, nothing clipped, and no grey-as-RGB special case applies, so
a posterior problem goes through ``pnpdiff.solve`` exactly as through the solver function.

The references are the solver functions of :data:`pnpdiff.solvers.SOLVERS` called directly with
the same measurement, schedule tensor, options and seed: ``solve`` must return the same samples
(float64, to 1e-12; the computation is the same, so any difference is a bug in ``solve``).
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import pytest
import torch

import pnpdiff
from pnpdiff.errors import PnPError, ValueRangeError
from pnpdiff.operators import Identity, Inpaint, Matrix
from pnpdiff.priors import (
    ADMPrior,
    CallablePrior,
    DeepinvPrior,
    EpsPrior,
    FFDNetPrior,
    GaussianMixturePrior,
    GaussianPrior,
    Prior,
    load_prior,
)
from pnpdiff.schedules import karras
from pnpdiff.solvers import SOLVERS

pytestmark = pytest.mark.usefixtures("one_thread")

F64 = torch.float64
STEPS = 10
SIGMA_Y = 0.1
#: the methods that must run with a dense Matrix (spectral view, pinv, prox and VJPs all exist)
MATRIX_METHODS = {"diffpir", "ddrm", "ddnm", "ddnm+", "dpir", "dps", "pigdm", "reddiff"}
#: solver arguments that are not hyper-parameters
_NOT_OPTIONS = {"y", "operator", "prior", "sigmas", "sigma_y", "generator", "progress", "x_init", "callback"}


def _options(method: str) -> dict[str, Any]:
    """Every hyper-parameter of ``method`` at its function default, to pass to both calls (so
    ``solve``'s per-task defaults table cannot make the comparison unfair)."""
    params = inspect.signature(SOLVERS[method]).parameters
    return {k: p.default for k, p in params.items()
            if k not in _NOT_OPTIONS and p.default is not inspect.Parameter.empty}


def _schedule() -> torch.Tensor:
    return karras(STEPS, sigma_min=0.002, sigma_max=80.0).to(F64)


def _both(method: str, y: torch.Tensor, make_op, prior: Prior, sigma_y: float = SIGMA_Y,
          schedule: torch.Tensor | None = None) -> tuple[Any, Any]:
    """``(solve(...), SOLVERS[method](...))`` on the same inputs; an exception is returned in
    place of a result."""
    sig = _schedule() if schedule is None else schedule
    opts = _options(method)
    out: list[Any] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. ddnm's warning that it ignores sigma_y
        for call in ("solve", "direct"):
            try:
                if call == "solve":
                    r = pnpdiff.solve(y.clone(), make_op(), prior=prior, method=method, steps=STEPS,
                                      sigma_y=sigma_y, seed=0, device="cpu", progress=False,
                                      schedule=sig.clone(), **opts)
                else:
                    r = SOLVERS[method](y.clone(), make_op(), prior, sig.clone(), sigma_y,
                                        generator=torch.Generator().manual_seed(0), progress=False, **opts)
            except PnPError as err:
                r = err
            out.append(r)
    return out[0], out[1]


def _assert_same(method: str, got: Any, ref: Any) -> None:
    if isinstance(ref, PnPError):
        assert method not in MATRIX_METHODS, f"{method} failed on a problem it must solve: {ref}"
        assert type(got) is type(ref), f"solve raised {got!r}, the solver itself {ref!r}"
        return
    assert not isinstance(got, Exception), f"solve refused what {method} solves directly: {got}"
    assert torch.is_tensor(got) and got.dtype == ref.dtype
    assert got.shape == ref.shape, f"solve returned shape {tuple(got.shape)}, the solver {tuple(ref.shape)}"
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------- the attribute
def test_declared_ranges() -> None:
    assert Prior.data_range == (0.0, 1.0)
    for cls in (FFDNetPrior, EpsPrior, ADMPrior, DeepinvPrior, CallablePrior):  # image priors
        assert cls.data_range == (0.0, 1.0), cls
    gmm = GaussianMixturePrior(torch.ones(2), torch.tensor([[-20.0, 0.0], [20.0, 1.0]]), 1.0)
    assert gmm.data_range is None
    assert GaussianPrior(torch.zeros(3), 1.0).data_range is None
    fn = lambda x, s: x  # noqa: E731
    assert CallablePrior(fn).data_range == (0.0, 1.0)
    assert CallablePrior(fn, data_range=None).data_range is None
    assert CallablePrior(fn, data_range=(-1, 2)).data_range == (-1.0, 2.0)
    assert load_prior(fn, data_range=None).data_range is None  # through the registry
    assert DeepinvPrior(torch.nn.Identity(), data_range=None).data_range is None
    assert Prior.data_range == (0.0, 1.0)  # instances do not change the class default


@pytest.mark.parametrize("bad", [1.0, (1.0,), (0.0, 1.0, 2.0), (1.0, 0.0), (0.0, 0.0), (0.0, float("nan")),
                                 (0.0, float("inf")), "0,1", ("a", "b"), (False, True)])
def test_bad_declared_range_is_refused(bad: Any) -> None:
    with pytest.raises(ValueRangeError, match="data_range must be None .* or a pair"):
        CallablePrior(lambda x, s: x, data_range=bad)


# ---------------------------------------------------------------- posterior problems via solve
def _mixture(shape: tuple[int, ...], k: int = 4, seed: int = 0) -> GaussianMixturePrior:
    """A mixture whose means sit at +-20 in every coordinate: data far outside [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    means = 20.0 * torch.sign(torch.randn(k, *shape, generator=g, dtype=F64))
    var = 0.5 + torch.rand(k, generator=g, dtype=F64)
    return GaussianMixturePrior(torch.rand(k, generator=g, dtype=F64) + 0.5, means, var)


@pytest.fixture(scope="module")
def vector_problem() -> tuple[GaussianMixturePrior, torch.Tensor, torch.Tensor]:
    """d = 8, a random 3 x 8 Matrix, three measurements ``(3, 3)`` with values ~ +-30."""
    g = torch.Generator().manual_seed(1)
    gmm = _mixture((8,))
    A = torch.randn(3, 8, generator=g, dtype=F64) / 8**0.5
    x = gmm.sample(3, generator=g).reshape(3, 8)
    y = x @ A.T + SIGMA_Y * torch.randn(3, 3, generator=g, dtype=F64)
    assert y.abs().max() > 5  # far outside [0, 1]
    return gmm, A, y


# every method, mmse included (it refuses a Matrix with its OperatorError)
@pytest.mark.parametrize("method", sorted(SOLVERS))
def test_solve_equals_solver_on_a_mixture_posterior_with_a_matrix(vector_problem, method: str) -> None:
    """Acceptance: with a prior that declares no range, ``solve(y, Matrix(A), prior=gmm, ...)``
    returns exactly what ``SOLVERS[method](y, op, gmm, sigmas, sigma_y, generator=...)`` does:
    no range check, no clipping, the same (B, m) -> (B, d) layout."""
    gmm, A, y = vector_problem
    got, ref = _both(method, y, lambda: Matrix(A), gmm)
    _assert_same(method, got, ref)
    if torch.is_tensor(ref):
        assert ref.abs().max() > 5  # the samples live far outside [0, 1]: nothing was clipped


@pytest.mark.parametrize("method", sorted(MATRIX_METHODS))
def test_solve_equals_solver_on_a_single_vector(vector_problem, method: str) -> None:
    """The same with one measurement ``(1, m)``: the result keeps the solver's ``(1, d)``."""
    gmm, A, y = vector_problem
    got, ref = _both(method, y[:1], lambda: Matrix(A), gmm)
    _assert_same(method, got, ref)


@pytest.fixture(scope="module")
def image_problem() -> tuple[GaussianMixturePrior, torch.Tensor, torch.Tensor]:
    """The same kind of mixture on (1, 4, 4) images, 60 % of the pixels observed."""
    g = torch.Generator().manual_seed(2)
    gmm = _mixture((1, 4, 4))
    mask = (torch.rand(1, 4, 4, generator=g) < 0.6).to(F64)
    x = gmm.sample(2, generator=g)
    y = mask * (x + SIGMA_Y * torch.randn(x.shape, generator=g, dtype=F64))
    return gmm, mask, y


@pytest.mark.parametrize("method", sorted(SOLVERS))
def test_solve_equals_solver_on_a_mixture_of_images(image_problem, method: str) -> None:
    """Image-shaped data ``(B, 1, H, W)`` far outside [0, 1] with an image operator (inpainting):
    ``solve`` equals the solver function."""
    gmm, mask, y = image_problem
    got, ref = _both(method, y, lambda: Inpaint(mask), gmm)
    _assert_same(method, got, ref)
    if torch.is_tensor(ref):
        assert ref.abs().max() > 5


# ------------------------------------------------------------------- callable priors, ranges
def _wiener(mean: float):
    """MMSE denoiser of i.i.d. N(mean, 1) pixels: ``(x + sigma^2 mean) / (1 + sigma^2)``."""
    def fn(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        s2 = s.view(-1, *([1] * (x.ndim - 1))) ** 2
        return (x + s2 * mean) / (1 + s2)
    return fn


def _wide_y(channels: int = 3, grey: bool = False) -> torch.Tensor:
    """A (1, C, 8, 8) float64 measurement with values spanning about [-5, 30]."""
    g = torch.Generator().manual_seed(3)
    y = torch.rand(1, 1 if grey else channels, 8, 8, generator=g, dtype=F64) * 35 - 5
    y[0, 0, 0, 0], y[0, 0, 0, 1] = -5.0, 30.0
    return y.expand(-1, channels, -1, -1).clone() if grey else y


def test_image_prior_refuses_data_far_outside_unit_range() -> None:
    prior = CallablePrior(_wiener(0.5))
    with pytest.raises(ValueRangeError, match=r"\[0, 1\]"):
        pnpdiff.solve(_wide_y(), Identity(), prior=prior, method="diffpir", steps=3, sigma_y=0.1, seed=0,
                      progress=False, device="cpu")


def test_prior_without_range_accepts_it_and_is_not_clipped() -> None:
    y = _wide_y()
    got, ref = _both("diffpir", y, Identity, CallablePrior(_wiener(10.0), data_range=None))
    _assert_same("diffpir", got, ref)
    assert ref.min() < -1 and ref.max() > 20  # far outside [0, 1]: a clip would show


def test_declared_range_other_than_unit_is_checked_and_clipped() -> None:
    """A prior on [-10, 20]: the measurement in [-5, 30] is accepted (half the range of slack on
    either side) and the result is clipped to [-10, 20]; an image prior clips to [0, 1]."""
    y = _wide_y()
    prior = CallablePrior(_wiener(10.0), data_range=(-10.0, 20.0))
    got, ref = _both("diffpir", y, Identity, prior)
    assert ref.max() > 20  # the unclipped estimate leaves the range
    _assert_same("diffpir", got, ref.clamp(-10.0, 20.0))
    # an image prior clips to [0, 1] (data in [-0.15, 1.15] this time, inside the slack)
    y01 = (y + 5) / 35 * 1.3 - 0.15
    got01, ref01 = _both("diffpir", y01, Identity, CallablePrior(_wiener(0.5)))
    assert ref01.max() > 1 and ref01.min() < 0
    _assert_same("diffpir", got01, ref01.clamp(0.0, 1.0))
    # a prior on [0, 0.1] refuses data in [-5, 30]
    with pytest.raises(ValueRangeError, match=r"\[0, 0.1\]"):
        pnpdiff.solve(y, Identity(), prior=CallablePrior(_wiener(0.0), data_range=(0.0, 0.1)), method="diffpir",
                      steps=3, sigma_y=0.1, seed=0, progress=False, device="cpu")


def test_prior_without_range_skips_the_grey_as_rgb_path() -> None:
    """Three identical channels with a prior that says it handles grey images but declares no
    range: ``solve`` restores the three channels as given (the one-channel path applies to
    images only), i.e. exactly the solver on the three-channel ``y``."""
    y = _wide_y(grey=True)
    prior = CallablePrior(_wiener(10.0), data_range=None)
    prior.accepts_grey = True
    got, ref = _both("diffpir", y, Identity, prior)
    _assert_same("diffpir", got, ref)
    # the comparison is sensitive: the one-channel path draws other noise, another result
    _, as_grey = _both("diffpir", y[:, :1], Identity, prior)
    assert (as_grey.expand_as(ref) - ref).abs().max() > 1e-3
