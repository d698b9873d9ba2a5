"""Bounds before work and no NaN returned (issue 25, items 7-10): ``solve``, ``sample``,
``sample_posterior`` refuse huge counts and meaningless numbers with one PnPError naming the user's
key, and a NaN or inf from the prior, an iterate or the result stops the run with a
:class:`~pnpdiff.NonFiniteError` naming where it appeared -- never a NaN image returned."""

from __future__ import annotations

import hashlib
import inspect
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import pnpdiff
from pnpdiff import GaussianBlur, Identity, Inpaint
from pnpdiff.api import MAX_COUNT, MAX_SIGMA_Y, MAX_STEPS
from pnpdiff.errors import MemoryLimitError, NonFiniteError, PnPError, PnPWarning, ValueRangeError
from pnpdiff.priors import CallablePrior
from pnpdiff.solvers import SOLVERS

KW = {"steps": 2, "sigma_y": 0.02, "seed": 0, "progress": False, "device": "cpu"}


def _mask(size: int = 16) -> torch.Tensor:
    return (torch.rand(1, 1, size, size, generator=torch.Generator().manual_seed(1)) > 0.3).float()


def _image(size: int = 16, channels: int = 3) -> torch.Tensor:
    return torch.rand(1, channels, size, size, generator=torch.Generator().manual_seed(0)) * 0.8 + 0.1


def _bad_prior(at: int, value: float = float("nan"), **kw: object) -> CallablePrior:
    """A smooth shrinkage denoiser that returns ``value`` everywhere from its ``at``-th call on."""
    calls = [0]

    def nan_prior(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        calls[0] += 1
        out = 0.9 * x + 0.05
        return out * value if calls[0] >= at else out

    return CallablePrior(nan_prior, sigma_max=1.0, name="nan_prior", **kw)


def _problem(method: str) -> tuple[torch.Tensor, object]:
    """A 16x16 measurement and an operator the method takes (every solver takes an Inpaint; mmse denoises)."""
    op = Identity() if method == "mmse" else Inpaint(_mask())
    return op(_image()), op


# ------------------------------------------------------------------------------ non-finite values
@pytest.mark.parametrize("method", sorted(SOLVERS))
def test_a_prior_returning_nan_stops_every_solver_naming_the_prior_and_sigma(method: str) -> None:
    y, op = _problem(method)
    at = 1 if method == "mmse" else 2  # mmse makes one denoiser call
    with pytest.raises(NonFiniteError, match=r"prior 'nan_prior' returned NaN or inf at sigma = [0-9.]+"):
        pnpdiff.solve(y, op, prior=_bad_prior(at), method=method, **KW)


@pytest.mark.parametrize("method", ["diffpir", "smc"])
def test_an_infinite_denoiser_output_is_refused_too(method: str) -> None:
    y, op = _problem(method)
    with pytest.raises(NonFiniteError, match="nan_prior") as err:
        pnpdiff.solve(y, op, prior=_bad_prior(2, float("inf")), method=method, **KW)
    assert isinstance(err.value, PnPError) and isinstance(err.value, FloatingPointError)


def test_an_iterate_made_non_finite_by_the_data_step_names_the_operator() -> None:
    class BrokenInpaint(Inpaint):
        def prox(self, z: torch.Tensor, y: torch.Tensor, rho: float) -> torch.Tensor:
            return z * float("nan")

    op = BrokenInpaint(_mask())
    with pytest.raises(NonFiniteError, match="iterate.*BrokenInpaint"):
        pnpdiff.solve(op(_image()), op, prior=_bad_prior(10**9), method="diffpir", **{**KW, "steps": 3})


def test_a_non_finite_result_is_never_returned() -> None:
    """DPS's last guidance step comes after its last denoiser call: a NaN it makes is the result's."""
    calls = [0]

    def camera(x: torch.Tensor) -> torch.Tensor:  # a nonlinear forward model that breaks at its 2nd call
        calls[0] += 1
        return x * float("nan") if calls[0] >= 2 else x.clamp(0, 1)

    y = _image()
    with pytest.raises(NonFiniteError, match="dps result.*camera"):
        pnpdiff.solve(y, camera, prior=_bad_prior(10**9), method="dps", **KW)


@pytest.mark.parametrize("method", sorted(m for m, f in SOLVERS.items() if "x_init" in inspect.signature(f).parameters))
def test_x_init_with_nan_is_refused_naming_x_init(method: str) -> None:
    y, op = _problem(method)
    x_init = _image().clone()
    x_init[0, 0, 3, 3] = float("nan")
    with pytest.raises(ValueRangeError, match="x_init.*NaN"):
        pnpdiff.solve(y, op, prior=_bad_prior(10**9), method=method, x_init=x_init, **KW)


@pytest.mark.parametrize("method", sorted(SOLVERS))
def test_the_largest_sigma_y_gives_a_finite_image_or_one_error(method: str) -> None:
    y, op = _problem(method)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = pnpdiff.solve(y, op, prior=_bad_prior(10**9), method=method, **{**KW, "sigma_y": MAX_SIGMA_Y})
    except PnPError:
        return
    assert bool(torch.isfinite(out).all())


def test_sample_and_sample_posterior_stop_on_a_nan_prior() -> None:
    digits = _bad_prior(2, channels=1, size=(8, 8))
    with pytest.raises(NonFiniteError, match="nan_prior.*sample"):
        pnpdiff.sample(digits, 2, steps=3, seed=0)
    y, op = _problem("diffpir")
    for method in ("diffpir", "smc"):
        with pytest.raises(NonFiniteError, match="nan_prior"):
            pnpdiff.sample_posterior(y, op, _bad_prior(2), n=2, method=method, **KW)


# ------------------------------------------------------------------------------ bounds before work
def test_huge_step_counts_are_refused_at_once() -> None:
    y, op = _problem("diffpir")
    with pytest.raises(ValueRangeError, match=f"steps must be <= {MAX_STEPS}"):
        pnpdiff.solve(y, op, **{**KW, "steps": 10**7})
    with pytest.raises(ValueRangeError, match="schedule"):
        pnpdiff.solve(y, op, schedule=torch.linspace(1, 0, MAX_STEPS + 2), **{**KW, "steps": None})
    with pytest.raises(ValueRangeError, match="steps"):
        pnpdiff.sample("digits", 2, steps=10**7)
    with pytest.raises(ValueRangeError, match="langevin_steps"):
        pnpdiff.solve(y, op, method="daps", langevin_steps=10**9, **KW)


def test_the_memory_estimate_counts_the_schedule() -> None:
    from pnpdiff import costs

    shape = (1, 3, 16, 16)
    short = costs.estimate_solve_bytes(shape, None, "natural", "diffpir", steps=10)
    long = costs.estimate_solve_bytes(shape, None, "natural", "diffpir", steps=10**7)
    assert long - short >= 10**7 * 16  # at least a float64 tensor and a list of floats


def test_sample_counts_are_bounded_and_checked_against_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueRangeError, match=f"n must be <= {MAX_COUNT}"):
        pnpdiff.sample("digits", 10**7)
    monkeypatch.setenv("PNPDIFF_MAX_MEMORY", "256M")
    with pytest.raises(MemoryLimitError, match="sampling a batch of 65536 16x16 grey images.*fewer samples"):
        pnpdiff.sample("digits", MAX_COUNT, steps=2)
    with pytest.raises(ValueRangeError, match="seed"):
        pnpdiff.sample("digits", 2, seed=2**70)


@pytest.mark.parametrize(("method", "key", "value"), [
    ("diffpir", "lam", 0), ("diffpir", "lam", -1.0), ("diffpir", "lam", 1e30), ("dpir", "lam", 0.0),
    ("diffpir", "zeta", 1e30), ("diffpir", "zeta", -0.5), ("dps", "zeta", 1e30), ("ddrm", "eta", 2.0),
    ("pigdm", "cg_iter", 10**9),
])
def test_meaningless_options_are_refused_naming_the_key(method: str, key: str, value: float) -> None:
    y, op = _problem(method)
    with pytest.raises(ValueRangeError, match=f"option '{key}' of method '{method}' must be"):
        pnpdiff.solve(y, op, method=method, **{key: value}, **KW)


def test_a_huge_sigma_y_is_refused_naming_it() -> None:
    y, op = _problem("diffpir")
    with pytest.raises(ValueRangeError, match="sigma_y must be <= 1000"):
        pnpdiff.solve(y, op, **{**KW, "sigma_y": 1e30})


def test_meta_tensors_and_wrong_labels_are_pnperrors() -> None:
    op = GaussianBlur(1.0)
    meta = torch.empty(1, 3, 8, 8, device="meta")
    with pytest.raises(ValueRangeError, match="y is a meta tensor"):
        pnpdiff.solve(meta, op, **KW)
    with pytest.raises(ValueRangeError, match="y is a meta tensor"):
        pnpdiff.sample_posterior(meta, op, n=2, **KW)
    y = op(_image(8))
    with pytest.raises(ValueRangeError, match="x_init' of method 'diffpir' is a meta tensor"):
        pnpdiff.solve(y, op, method="diffpir", x_init=meta, **KW)
    with pytest.raises(ValueRangeError, match=r"label must be integers in 0\.\.9.*'three'"):
        pnpdiff.sample("digits", 2, label="three", steps=2)


def test_a_recipe_with_lam_0_is_refused_on_one_line_touching_nothing(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text("task: deblur\nimage: skimage:astronaut\nsize: 32\n"
                                     "operator: {name: GaussianBlur, sigma: 1.0}\nnoise: {sigma_y: 0.02, seed: 0}\n"
                                     "method: diffpir\nsteps: 2\noptions: {lam: 0}\noutput: out\n")

    def tree() -> dict[str, str]:
        return {str(p.relative_to(tmp_path)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(tmp_path.rglob("*")) if p.is_file()}

    before = tree()
    r = subprocess.run([sys.executable, "-m", "pnpdiff", "r.yaml"], capture_output=True, text=True, cwd=tmp_path)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert len(lines) == 1 and "lam" in lines[0], r.stderr
    assert tree() == before


# ------------------------------------------------------------------------------ sample_posterior's default
def _widest_batch(prior_fn):
    seen = [0]

    def fn(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        seen[0] = max(seen[0], x.shape[0])
        return prior_fn(x, s)

    return fn, seen


def test_sample_posterior_defaults_to_smc_only_on_small_problems() -> None:
    """A 16x16 image with an SVD operator gets independent runs (n per denoiser call, not smc's 64
    particles); a d = 8 vector problem keeps smc."""
    from posterior_utils import mixture_problem

    fn, seen = _widest_batch(lambda x, s: 0.9 * x + 0.05)
    y, op = _problem("diffpir")
    out = pnpdiff.sample_posterior(y, op, CallablePrior(fn, sigma_max=1.0), n=2, **KW)
    assert out.shape == (2, 1, 3, 16, 16) and seen[0] == 2

    p = mixture_problem(8, 2, seed=0)
    fn, seen = _widest_batch(p.prior.denoise)
    prior = CallablePrior(fn, sigma_max=80.0, data_range=None)
    pnpdiff.sample_posterior(p.y, p.operator, prior, n=2, sigma_y=p.sigma_y, steps=2, progress=False, device="cpu",
                             twisted_proposal=False)
    assert seen[0] >= 64  # smc's particles


def test_a_long_run_says_its_cost_before_it_starts() -> None:
    """smc on a 128x128 photo: the warning (calls, memory, the cheaper method) comes before the first
    denoiser call (which fails here, so nothing long runs)."""
    op = Inpaint(_mask(128))
    y = op(_image(128))
    with pytest.warns(PnPWarning, match=r"smc: about [0-9,]+ denoiser calls.*memory.*method='diffpir' makes"):
        with pytest.raises(NonFiniteError):
            pnpdiff.sample_posterior(y, op, _bad_prior(1), n=8, method="smc", sigma_y=0.02, progress=False,
                                     device="cpu")
