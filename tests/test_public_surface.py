"""Public surface without a test of its own (issue 11, item 5): ``compose`` / ``Composition`` /
``A @ B`` against dense matrices, ``clip_schedule`` entry by entry, ``register_prior`` through
``solve`` and ``load_prior``, the schedule options of ``solve`` as the solver receives them, a
deepinv ``LinearPhysics`` through ``solve``, and the CLI with ``observed:`` and mask recipes.

Every reference is independent of the code under test (dense NumPy algebra, closed forms,
deepinv, NumPy's ``geomspace``); each test says in a comment which bug it catches.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import pnpdiff
from pnpdiff import schedules
from pnpdiff.cli import main
from pnpdiff.errors import OperatorError, PnPError, ValueRangeError
from pnpdiff.io import load_image
from pnpdiff.operators import (
    Blur,
    Composition,
    Downsample,
    GaussianBlur,
    Identity,
    Inpaint,
    LinearOperator,
    box_mask,
    compose,
    freeform_mask,
    random_mask,
)
from pnpdiff.priors import Prior, known_priors, load_prior, register_prior
from pnpdiff.priors.registry import unregister_prior
from pnpdiff.solvers import SOLVERS
from pnpdiff.solvers.common import clip_schedule, estimate_noise_level

F64 = torch.float64


# ------------------------------------------------------------------------------ helpers
def _dense(op: LinearOperator, in_shape: tuple[int, ...]) -> np.ndarray:
    """The matrix of ``op`` (float64), one column per basis vector of the input."""
    n = int(np.prod(in_shape))
    eye = torch.eye(n, dtype=F64).reshape(n, *in_shape[1:]) if in_shape[0] == 1 else None
    assert eye is not None
    with torch.no_grad():
        cols = op(eye)  # a batch of n basis images
    return cols.reshape(n, -1).T.numpy()


def _asym_kernel() -> torch.Tensor:
    """A 3x3 kernel with no symmetry: a flipped (correlation vs convolution) or transposed
    kernel gives another operator."""
    k = torch.tensor([[0.05, 0.10, 0.30], [0.02, 0.20, 0.08], [0.15, 0.04, 0.06]], dtype=F64)
    return k / k.sum()


def _composites() -> dict[str, tuple[LinearOperator, list[LinearOperator], tuple[int, ...]]]:
    """name -> (composite, its factors outer to inner, input shape)."""
    blur = Blur(_asym_kernel())
    mask = (torch.arange(64).reshape(8, 8) % 3 != 0).to(F64)
    inp = Inpaint(mask)
    down = Downsample(2)
    return {
        "matmul": (down @ blur, [down, blur], (1, 1, 8, 8)),
        "Composition": (Composition(blur, inp), [blur, inp], (1, 1, 8, 8)),
        "compose3": (compose(down, blur, inp), [down, blur, inp], (1, 1, 8, 8)),
    }


# ------------------------------------------------------------------------------ compose / Composition / @
@pytest.mark.parametrize("name", ["matmul", "Composition", "compose3"])
def test_composition_forward_and_adjoint_against_dense_products(name: str) -> None:
    # catches: factors applied in the wrong order (A B instead of B A), an adjoint that is not
    # B^T A^T (e.g. A^T B^T, or a factor's forward used in place of its adjoint)
    op, factors, shape = _composites()[name]
    mats, s = [], shape
    for f in reversed(factors):  # innermost first
        mats.append(_dense(f, s))
        with torch.no_grad():
            s = tuple(f(torch.zeros(s, dtype=F64)).shape)
    ref = functools.reduce(lambda acc, m: m @ acc, mats)  # outer @ ... @ inner
    g = torch.Generator().manual_seed(0)
    x = torch.rand(shape, generator=g, dtype=F64)
    y = torch.rand(s, generator=g, dtype=F64)
    ax, aty = op(x), op.adjoint(y)
    assert tuple(ax.shape) == s and tuple(aty.shape) == shape
    np.testing.assert_allclose(ax.flatten().numpy(), ref @ x.flatten().numpy(), rtol=0, atol=1e-13)
    np.testing.assert_allclose(aty.flatten().numpy(), ref.T @ y.flatten().numpy(), rtol=0, atol=1e-13)
    lhs, rhs = float((ax * y).sum()), float((x * aty).sum())
    assert lhs == pytest.approx(rhs, rel=1e-13)  # <Ax, y> = <x, A^T y> to float64 precision


@pytest.mark.parametrize("name", ["matmul", "Composition", "compose3"])
def test_composition_prox_and_pinv_against_dense_solves(name: str) -> None:
    # catches: a prox of the wrong objective (rho on the other term, missing A^T y, a factor's
    # own closed form used for the composite) and a pinv that is not the minimum-norm solution
    op, _, shape = _composites()[name]
    A = _dense(op, shape)
    g = torch.Generator().manual_seed(1)
    z = torch.rand(shape, generator=g, dtype=F64)
    with torch.no_grad():
        y = op(torch.rand(shape, generator=g, dtype=F64))
        y = y + 0.01 * torch.randn(y.shape, generator=g, dtype=F64)
    rho = 0.3
    want = np.linalg.solve(A.T @ A + rho * np.eye(A.shape[1]), A.T @ y.flatten().numpy() + rho * z.flatten().numpy())
    got = op.prox(z, y, rho)
    assert got.shape == z.shape
    np.testing.assert_allclose(got.flatten().numpy(), want, rtol=0, atol=1e-5)  # CG at tol 1e-6
    # pinv: min-norm least squares (np.linalg.pinv); checked on y in the range of A, where the
    # normal equations are consistent and CG from 0 converges to A^+ y
    y_in = torch.from_numpy(A @ z.flatten().numpy()).reshape(y.shape)
    want_p = np.linalg.pinv(A, rcond=1e-10) @ y_in.flatten().numpy()
    got_p = op.pinv(y_in)
    assert got_p.shape == z.shape
    np.testing.assert_allclose(got_p.flatten().numpy(), want_p, rtol=0, atol=1e-4)


def test_compose_associates_and_one_operator_is_itself() -> None:
    # catches: compose building (A @ B) @ C with a different meaning than A @ (B @ C)
    _, (down, blur, inp), shape = _composites()["compose3"]
    x = torch.rand(shape, generator=torch.Generator().manual_seed(2), dtype=F64)
    ref = down(blur(inp(x)))
    for op in (compose(down, blur, inp), (down @ blur) @ inp, down @ (blur @ inp)):
        torch.testing.assert_close(op(x), ref, rtol=0, atol=1e-15)
    assert compose(blur) is blur


@pytest.mark.parametrize(
    "build, needle",
    [
        (lambda: compose(), "at least one operator"),
        (lambda: compose(Identity(), "blur"), "ops[1]"),
        (lambda: compose(np.eye(3), Identity()), "ops[0]"),
        (lambda: Composition(Identity(), lambda x: x), "inner"),
        (lambda: Composition(3.0, Identity()), "outer"),
    ],
)
def test_composition_of_a_non_operator_is_an_operator_error(build, needle: str) -> None:
    # catches: a non-operator accepted and failing later inside a solver
    with pytest.raises(OperatorError) as err:
        build()
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_matmul_with_a_non_operator_is_a_type_error() -> None:
    # catches: __matmul__ wrapping anything (it must return NotImplemented -> TypeError)
    with pytest.raises(TypeError):
        Identity() @ 3  # noqa: B018
    with pytest.raises(TypeError):
        Identity() @ torch.eye(3)  # noqa: B018


# ------------------------------------------------------------------------------ clip_schedule
class _Range(Prior):
    """A prior that only states its valid range (clip_schedule reads nothing else)."""

    def __init__(self, sigma_max: float, sigma_min: float = 0.0) -> None:
        super().__init__()
        self.sigma_max, self.sigma_min = sigma_max, sigma_min

    def denoise(self, x, sigma):
        return x


@pytest.mark.parametrize(
    "sigmas, smax, want",
    [
        ([1.0, 0.8, 0.4, 0.1, 0.0], 0.5, [0.5, 0.4, 0.1, 0.0]),  # two above -> one at sigma_max
        ([1.0, 0.5, 0.4, 0.0], 0.5, [0.5, 0.4, 0.0]),  # one equal to sigma_max is not doubled
        ([0.4, 0.2, 0.1], 0.5, [0.4, 0.2, 0.1, 0.0]),  # trailing 0 appended, nothing clipped
        ([0.4, 0.2, 0.0], 0.5, [0.4, 0.2, 0.0]),  # trailing 0 kept, not doubled
        ([3.0, 2.0], 0.5, [0.5, 0.0]),  # everything above: one step at sigma_max
        ([0.3, 0.3, 0.1, 0.0], 0.5, [0.3, 0.3, 0.1, 0.0]),  # repeated values are decreasing enough
    ],
)
def test_clip_schedule_entry_by_entry(sigmas, smax, want) -> None:
    # catches: the start not moved to sigma_max, values above it kept, 0 missing or doubled
    out = clip_schedule(torch.tensor(sigmas, dtype=torch.float32), _Range(smax))
    assert out.dtype == F64
    assert out.tolist() == pytest.approx(want, abs=1e-7)


@pytest.mark.parametrize("sigmas", [[0.1, 0.2, 0.0], [0.5, -0.1, 0.0], [0.5, 0.2, -0.0001], []])
def test_clip_schedule_refuses_increasing_negative_and_empty(sigmas) -> None:
    # catches: a bad schedule silently clipped into a plausible one
    with pytest.raises(ValueRangeError):
        clip_schedule(torch.tensor(sigmas, dtype=F64), _Range(1.0))


# ------------------------------------------------------------------------------ register_prior
class _GaussPrior(Prior):
    """x0 ~ N(mu, v) per pixel: the MMSE denoiser is the closed form mu + v/(v+s^2) (x - mu)."""

    name = "mygauss"

    def __init__(self, mu: float = 0.5, v: float = 0.04, path: str | None = None, sigma_max: float = 0.5) -> None:
        super().__init__()
        self.mu, self.v, self.path = mu, v, path
        self.sigma_max = sigma_max

    def denoise(self, x, sigma):
        s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        return self.mu + self.v / (self.v + s**2) * (x - self.mu)


@pytest.fixture
def myprior():
    calls: list[tuple] = []

    def factory(path, **options):
        calls.append((path, options))
        return _GaussPrior(path=path, **options)

    register_prior("myname", factory, description="a test prior")
    try:
        yield calls
    finally:
        unregister_prior("myname")


def test_registered_prior_is_resolved_by_name(myprior, tmp_path: Path) -> None:
    # catches: a registered name not reaching solve (UnknownNameError, or the default prior used)
    assert "myname" in known_priors() and known_priors() == sorted(known_priors())
    p = load_prior("myname")
    assert isinstance(p, _GaussPrior) and p.path is None and myprior == [(None, {})]
    assert load_prior("myname") is p  # cached per spec
    f = tmp_path / "weights.bin"
    f.write_bytes(b"")
    q = load_prior(f"myname:{f}", v=0.09)
    assert q.path == str(f.resolve()) and q.v == 0.09  # the part after ':' and options reach the factory
    y = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    out = pnpdiff.solve(y, Identity(), prior="myname", method="mmse", sigma_y=0.1, progress=False)
    want = 0.5 + 0.04 / (0.04 + 0.1**2) * (y - 0.5)  # the closed-form posterior mean
    torch.testing.assert_close(out, want, rtol=0, atol=1e-6)
    unregister_prior("myname")
    assert "myname" not in known_priors()
    with pytest.raises(PnPError, match="unknown prior 'myname'"):
        load_prior("myname")


@pytest.mark.parametrize("name, factory", [("", None), ("a:b", None), ("natural", None), ("okname", 42)])
def test_bad_registrations_are_pnperrors(name: str, factory) -> None:
    # catches: an empty name, a name with ':' (it could never be parsed back), a silent
    # re-registration over a built-in, and a factory that cannot be called
    fac = factory if factory is not None else (lambda path, **o: _GaussPrior())
    try:
        with pytest.raises(PnPError):
            register_prior(name, fac)
    finally:
        if name == "okname":
            unregister_prior("okname")
    assert "natural" in known_priors() and load_prior("natural").name != "mygauss"


def test_bad_registrations_are_refused() -> None:
    # refused (a ValueRangeError is also a ValueError), nothing replaced
    for name in ("", "a:b", "natural"):
        with pytest.raises(ValueError):
            register_prior(name, lambda path, **o: _GaussPrior())
    assert type(load_prior("natural")).__name__ == "FFDNetPrior"


# ------------------------------------------------------------------------------ solve's schedule options
@pytest.fixture
def spy(monkeypatch):
    """Replace a solver by a spy that records (sigmas, sigma_y) and returns y (nothing is run)."""
    seen: dict[str, object] = {}

    def install(method: str):
        orig = SOLVERS[method]

        @functools.wraps(orig)
        def fake(y, operator, prior, sigmas, sigma_y, **kw):
            seen["sigmas"], seen["sigma_y"], seen["y"] = sigmas.detach().clone(), sigma_y, y
            return y.clone()

        monkeypatch.setitem(SOLVERS, method, fake)
        return seen

    return install


def _y(n: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, n, n, generator=torch.Generator().manual_seed(seed)) * 0.8 + 0.1


def _geom(hi: float, lo: float, n: int) -> list[float]:
    return [*np.geomspace(hi, lo, n).tolist(), 0.0]


@pytest.mark.parametrize(
    "opts, want",
    [
        # schedule name + range: log-uniform from schedule_max to schedule_min, then 0
        ({"schedule": "geometric", "schedule_max": 0.3, "schedule_min": 0.02}, _geom(0.3, 0.02, 4)),
        # schedule_max above the prior's sigma_max (0.5) is clipped to it
        ({"schedule": "geometric", "schedule_max": 0.9, "schedule_min": 0.02}, _geom(0.5, 0.02, 4)),
        # schedule_min="sigma_y": ends at the measurement's noise level (0.05 here)
        ({"schedule": "geometric", "schedule_max": 0.3, "schedule_min": "sigma_y"}, _geom(0.3, 0.05, 4)),
        # an explicit tensor reaches the solver unchanged (steps and the range do not apply)
        ({"schedule": torch.tensor([0.4, 0.2, 0.1, 0.0])}, [0.4, 0.2, 0.1, 0.0]),
    ],
)
def test_schedule_options_reach_the_solver(spy, opts, want) -> None:
    # catches: an option ignored (default schedule used), the prior's range not applied to
    # schedule_max, "sigma_y" not substituted, an explicit schedule rebuilt or re-clipped
    seen = spy("diffpir")
    pnpdiff.solve(_y(), GaussianBlur(1.0), prior=_GaussPrior(), method="diffpir", steps=4, sigma_y=0.05, progress=False,
                  **{**opts})
    assert seen["sigmas"].dtype == F64
    assert seen["sigmas"].tolist() == pytest.approx(want, rel=1e-6, abs=1e-12)


def test_schedule_min_sigma_y_has_a_floor_of_one_level(spy) -> None:
    # catches: a schedule ending at a tiny sigma_y (the denoiser is useless below 1/255)
    seen = spy("diffpir")
    pnpdiff.solve(_y(), GaussianBlur(1.0), prior=_GaussPrior(), method="diffpir", steps=3, sigma_y=1e-4, progress=False,
                  schedule="geometric", schedule_max=0.2, schedule_min="sigma_y")
    assert seen["sigmas"].tolist() == pytest.approx(_geom(0.2, 1 / 255, 3), rel=1e-6)


def test_schedule_name_and_max_change_the_ddpm_schedule(spy) -> None:
    # catches: schedule / schedule_max ignored for the default (ddpm) schedule
    seen = spy("diffpir")
    runs = {}
    for key, opts in {"default": {}, "max": {"schedule_max": 0.2}, "karras": {"schedule": "karras"}}.items():
        pnpdiff.solve(_y(), GaussianBlur(1.0), prior=_GaussPrior(), method="diffpir", steps=5, sigma_y=0.05,
                      progress=False, **opts)
        runs[key] = seen["sigmas"]
    assert float(runs["default"][0]) == pytest.approx(0.5)  # the prior's sigma_max
    assert float(runs["max"][0]) == pytest.approx(0.2, rel=1e-9)
    torch.testing.assert_close(runs["max"], schedules.ddpm(5, sigma_max=0.2))
    torch.testing.assert_close(runs["karras"], schedules.karras(5, sigma_min=0.001, sigma_max=0.5))
    assert all(len(r) == 6 and float(r[-1]) == 0.0 for r in runs.values())


def test_dpir_defaults_are_a_geometric_schedule_down_to_sigma_y(spy) -> None:
    # catches: DPIR's defaults (8 steps, 49/255 -> sigma_y, geometric) not reaching the solver
    seen = spy("dpir")
    pnpdiff.solve(_y(), GaussianBlur(1.0), prior=_GaussPrior(), method="dpir", sigma_y=0.03, progress=False)
    assert seen["sigmas"].tolist() == pytest.approx(_geom(49 / 255, 0.03, 8), rel=1e-6)


def test_sigma_y_none_uses_the_mad_estimate(spy) -> None:
    # catches: sigma_y=None passed on as 0 (or a default), or estimated on another image
    seen = spy("dpir")
    g = torch.Generator().manual_seed(3)
    clean = torch.linspace(0.2, 0.8, 64).expand(1, 3, 64, 64)  # smooth: no fine-scale energy
    y = clean + 0.04 * torch.randn(1, 3, 64, 64, generator=g)
    pnpdiff.solve(y, GaussianBlur(1.0), prior=_GaussPrior(), method="dpir", progress=False)
    est = estimate_noise_level(y)
    assert seen["sigma_y"] == pytest.approx(est, rel=1e-12)
    assert seen["sigma_y"] == pytest.approx(0.04, rel=0.10)  # the true noise level
    # and schedule_min="sigma_y" (DPIR's default) follows the estimate
    assert float(seen["sigmas"][-2]) == pytest.approx(est, rel=1e-6)


def test_recording_prior_sees_the_schedule_end_to_end() -> None:
    # the same, through a real solver run: the denoiser is called at the schedule's sigmas
    class Rec(_GaussPrior):
        def denoise(self, x, sigma):
            self.seen.append(float(torch.as_tensor(sigma).flatten()[0]))
            return super().denoise(x, sigma)

    p = Rec()
    p.seen = []
    sched = torch.tensor([0.3, 0.1, 0.03, 0.0], dtype=F64)
    pnpdiff.solve(_y(), GaussianBlur(1.0), prior=p, method="dpir", sigma_y=0.02, schedule=sched, progress=False)
    assert p.seen == pytest.approx([0.3, 0.1, 0.03], rel=1e-6)


# ------------------------------------------------------------------------------ deepinv physics through solve
dinv = pytest.importorskip("deepinv")


def _blur_problem():
    k = _asym_kernel()
    g = torch.Generator().manual_seed(4)
    x = torch.rand(1, 1, 16, 16, generator=g)
    y = (Blur(k)(x) + 0.02 * torch.randn(1, 1, 16, 16, generator=g)).clamp(0, 1).float()
    return k, y


@pytest.mark.parametrize("kind", ["Blur", "BlurFFT"])
def test_deepinv_blur_through_solve_matches_pnpdiff_blur(kind: str) -> None:
    # catches: a wrapped physics solved with another operator (flipped kernel, wrong adjoint,
    # prox with gamma instead of 1/rho): the flipped kernel below moves the result by > 1e-2.
    # Tolerance: deepinv.physics.Blur has no closed-form prox, so the wrapper's prox is CG at
    # relative tolerance 1e-6 (vs pnpdiff's FFT closed form); over 3 float32 DiffPIR steps that
    # stays below 1e-3. BlurFFT's own closed form differs from ours only by float32 rounding.
    k, y = _blur_problem()
    kf = k[None, None].float()
    phys = (dinv.physics.Blur(filter=kf, padding="circular") if kind == "Blur"
            else dinv.physics.BlurFFT(img_size=(1, 16, 16), filter=kf))
    # the closed-form Gaussian prior: the operator, not the denoiser, is under test
    kw = dict(prior=_GaussPrior(), method="diffpir", steps=3, sigma_y=0.02, seed=0, progress=False)
    ours = pnpdiff.solve(y, Blur(k), **kw)
    theirs = pnpdiff.solve(y, phys, **kw)
    tol = 1e-3 if kind == "Blur" else 1e-4
    torch.testing.assert_close(theirs, ours, rtol=0, atol=tol)
    flipped = pnpdiff.solve(y, Blur(k.flip(0, 1)), **kw)
    assert (flipped - ours).abs().max() > 10 * tol


def test_deepinv_inpainting_through_solve_with_the_same_start() -> None:
    # with the same initial estimate, deepinv's Inpainting (closed-form prox, SVD view) gives
    # pnpdiff's Inpaint result: catches a wrong mask layout or prox weight in the wrapper
    g = torch.Generator().manual_seed(5)
    x = torch.rand(1, 3, 32, 32, generator=g)
    m = random_mask((32, 32), 0.5, seed=1)
    y = Inpaint(m)(x)
    x0 = pnpdiff.solvers.common.initial_estimate(y, Inpaint(m), 0.0, 0.3)
    phys = dinv.physics.Inpainting(img_size=(3, 32, 32), mask=m)
    for method, tol in (("diffpir", 1e-5), ("ddnm", 1e-6)):
        kw = dict(prior=_GaussPrior(), method=method, steps=3, sigma_y=0.0, seed=0, progress=False, x_init=x0)
        torch.testing.assert_close(pnpdiff.solve(y, phys, **kw), pnpdiff.solve(y, Inpaint(m), **kw),
                                   rtol=0, atol=tol)


def test_deepinv_inpainting_through_solve_matches_pnpdiff_inpaint() -> None:
    # catches: an equivalent deepinv physics started differently from the pnpdiff operator
    g = torch.Generator().manual_seed(5)
    x = torch.rand(1, 3, 32, 32, generator=g)
    m = random_mask((32, 32), 0.5, seed=1)
    y = Inpaint(m)(x)
    phys = dinv.physics.Inpainting(img_size=(3, 32, 32), mask=m)
    kw = dict(prior=_GaussPrior(), method="diffpir", steps=3, sigma_y=0.0, seed=0, progress=False)
    torch.testing.assert_close(pnpdiff.solve(y, phys, **kw), pnpdiff.solve(y, Inpaint(m), **kw), rtol=0, atol=1e-4)


# ------------------------------------------------------------------------------ CLI: observed: and masks
def _run(recipe: Path, *args: str) -> int:
    return main([str(recipe), "--no-progress", *args])


def _save(path: Path, arr: np.ndarray) -> None:
    Image.fromarray((np.clip(arr, 0, 1) * 255).round().astype(np.uint8)).save(path)


def _noisy_photo(n: int = 48, sigma: float = 0.04) -> np.ndarray:
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:n, 0:n] / n
    clean = np.stack([0.3 + 0.4 * xx, 0.2 + 0.5 * yy, 0.5 + 0.2 * np.sin(3 * xx)], -1)
    return np.clip(clean + sigma * rng.standard_normal(clean.shape), 0, 1)


@pytest.mark.parametrize("given", [0.03, None])
def test_cli_observed_recipe(tmp_path: Path, myprior, given) -> None:
    # catches: a ground truth invented for an observed photo (extra files / PSNR keys), the
    # given sigma_y replaced by the estimate (or the other way round), the photo re-degraded
    # (observed.png must be the file itself), a restored.png not what solve gives
    _save(tmp_path / "mine.png", _noisy_photo())
    noise = f"noise: {{sigma_y: {given}}}\n" if given is not None else ""
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"observed: mine.png\noperator: {{name: GaussianBlur, sigma: 1.0}}\n{noise}"
                      "prior: myname\nmethod: diffpir\nsteps: 2\nseed: 1\noutput: out\n")
    assert _run(recipe) == 0
    out = tmp_path / "out"
    names = sorted(p.name for p in out.iterdir())
    assert names == [".pnpdiff-manifest.json", "metrics.csv", "metrics.json", "observed.png", "recipe.yaml",
                     "restored.png"]
    m = json.loads((out / "metrics.json").read_text())
    y = load_image(tmp_path / "mine.png")
    sigma = given if given is not None else estimate_noise_level(y)
    assert m["sigma_y_estimated"] is (given is None)
    assert m["sigma_y"] == pytest.approx(sigma, abs=1e-6)
    assert not any(k.startswith(("psnr", "ssim")) and m[k] is not None for k in m if k != "psnr_observed")
    assert np.array_equal(np.asarray(Image.open(out / "observed.png")), np.asarray(Image.open(tmp_path / "mine.png")))
    x_hat = pnpdiff.solve(y, GaussianBlur(1.0), prior="myname", method="diffpir", steps=2, sigma_y=sigma, seed=1,
                          progress=False)
    want = (x_hat[0].permute(1, 2, 0).numpy() * 255).round()
    got = np.asarray(Image.open(out / "restored.png")).astype(np.float64)
    assert np.abs(got - want).max() <= 1


@pytest.fixture
def captured(monkeypatch):
    """The operator each CLI run builds (runs.single.restore is wrapped, still run)."""
    import pnpdiff.runs.single as rec

    ops: list = []
    orig = rec.restore

    def wrapper(recipe, y, op, *a, **kw):
        ops.append(op)
        return orig(recipe, y, op, *a, **kw)

    monkeypatch.setattr(rec, "restore", wrapper)
    return ops


@pytest.mark.parametrize(
    "spec, ref",
    [
        ("{kind: random, p_missing: 0.5, per_channel: true, seed: 2}",
         lambda s: random_mask(s, p_missing=0.5, per_channel=True, seed=2)),
        ("{kind: box, box_size: 12}", lambda s: box_mask(s, box_size=12)),
        ("{kind: box, box_size: [8, 16], position: random, seed: 4}",
         lambda s: box_mask(s, box_size=[8, 16], position="random", seed=4)),
        ("{kind: freeform, seed: 5}", lambda s: freeform_mask(s, seed=5)),
    ],
)
def test_cli_mask_specs_build_the_generators_masks(tmp_path: Path, captured, myprior, spec: str, ref) -> None:
    # catches: a mask built for another shape / seed, keyword arguments dropped or renamed
    _save(tmp_path / "photo.png", _noisy_photo(32, 0.0))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"image: photo.png\noperator: {{name: Inpaint, mask: {spec}}}\nnoise: {{sigma_y: 0.01}}\n"
                      "prior: myname\nsteps: 2\noutput: out\n")  # the registered prior, by name
    assert _run(recipe) == 0
    (op,) = captured
    want = ref((3, 32, 32))
    assert isinstance(op, Inpaint)
    assert torch.equal(op.mask, Inpaint(want).mask)  # the operator is Inpaint(generator's mask)


def test_cli_mask_image_is_read_white_observed(tmp_path: Path, captured, myprior) -> None:
    # catches: an inverted mask (white must be observed), a mask not thresholded, a mask file ignored
    _save(tmp_path / "photo.png", _noisy_photo(32, 0.0))
    rng = np.random.default_rng(8)
    mask = rng.random((32, 32)) > 0.4
    Image.fromarray((mask * 255).astype(np.uint8)).save(tmp_path / "mask.png")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("image: photo.png\noperator: {name: Inpaint, mask: mask.png}\nnoise: {sigma_y: 0.0}\n"
                      "prior: myname\nsteps: 2\noutput: out\n")
    assert _run(recipe) == 0
    (op,) = captured
    got = op.mask.expand(1, 3, 32, 32)
    assert torch.equal(got[0, 0] > 0.5, torch.from_numpy(mask))
    assert torch.equal(got[0, 1], got[0, 0]) and torch.equal(got[0, 2], got[0, 0])
    # the observed pixels of observed.png are the photo's, the others are black
    obs = np.asarray(Image.open(tmp_path / "out" / "observed.png")).astype(int)
    photo = np.asarray(Image.open(tmp_path / "photo.png")).astype(int)
    assert np.abs(obs[mask] - photo[mask]).max() <= 1  # no noise: the photo, up to 8-bit rounding
    assert obs[~mask].max() == 0


def test_cli_wrong_size_mask_image_is_one_line_naming_operator_mask(tmp_path: Path, capsys) -> None:
    # catches: a traceback or a broadcast error from deep inside Inpaint for a mismatched mask
    _save(tmp_path / "photo.png", _noisy_photo(32, 0.0))
    Image.fromarray(np.full((20, 24), 255, np.uint8)).save(tmp_path / "mask.png")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("image: photo.png\noperator: {name: Inpaint, mask: mask.png}\nsteps: 2\noutput: out\n")
    assert _run(recipe) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "operator.mask" in err and "20x24" in err and "32x32" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()
