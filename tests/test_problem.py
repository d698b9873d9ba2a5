"""The default rule (pnpdiff.problem): its number ``d`` against independent computations, its choices
as a function of the operator and sigma_y, and that ``solve`` runs what it chose."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pnpdiff
from pnpdiff import problem
from pnpdiff.operators import Blur, Downsample, GaussianBlur, Identity, Inpaint, MotionBlur, random_mask

SHAPE = (1, 3, 64, 64)


def _numpy_fraction(kernel: torch.Tensor, h: int, w: int, rel: float) -> float:
    """d from numpy: the kernel's |FFT| on the image grid, relative to its peak (independent of torch)."""
    k = kernel.detach().cpu().double().numpy().reshape(kernel.shape[-2:])
    pad = np.zeros((h, w))
    pad[: k.shape[0], : k.shape[1]] = k
    mag = np.abs(np.fft.fft2(pad))
    return float((mag / mag.max() > rel).mean())


@pytest.mark.parametrize("op", [GaussianBlur(1.0), GaussianBlur(2.5), MotionBlur(15, 0.5, seed=3)])
def test_fraction_of_a_blur_is_its_transfer_function_above_ten_percent(op: Blur) -> None:
    expected = _numpy_fraction(op.kernel, 64, 64, problem.REL)
    assert problem.informative_fraction(op, SHAPE) == pytest.approx(expected, abs=1e-12)
    # another boundary: the same kernel, read through its transfer function on the grid
    reflect = Blur(op.kernel, boundary="reflect")
    assert problem.informative_fraction(reflect, SHAPE) == pytest.approx(expected, abs=1e-12)


def test_fraction_of_masks_decimation_and_identity() -> None:
    mask = random_mask((1, 1, 64, 64), 0.7, seed=0)
    assert problem.informative_fraction(Inpaint(mask), SHAPE) == pytest.approx(float(mask.float().mean()))
    assert problem.informative_fraction(Downsample(2), SHAPE) == pytest.approx(0.25)  # m / n: 1 / f^2
    assert problem.informative_fraction(Downsample(4), SHAPE) == pytest.approx(1 / 16)
    assert problem.informative_fraction(Identity(), SHAPE) == pytest.approx(1.0)
    delta = torch.zeros(5, 5)
    delta[2, 2] = 1.0
    assert problem.informative_fraction(Blur(delta), SHAPE) == pytest.approx(1.0)


def _choose(op, sigma_y: float, sigma_max: float = 75 / 255) -> problem.Choice:
    return problem.choose(op, SHAPE, sigma_y, op.task, "diffpir", sigma_max)


def test_a_stronger_blur_gives_the_documented_settings() -> None:
    """d falls as the blur grows, and the settings follow the table of the module's docstring."""
    ds, picks = [], []
    for sigma in (0.5, 1.0, 2.0, 3.0, 4.0):
        c = _choose(GaussianBlur(sigma), 0.025)
        ds.append(c.informative)
        picks.append((c.method, c.options.get("lam"), c.options.get("steps")))
    assert ds == sorted(ds, reverse=True) and ds[0] > ds[-1]
    assert picks[0] == ("dpir", 0.23, 8)  # d >= 0.5: DPIR's own settings
    assert picks[1] == ("dpir", 0.23, 16)  # 0.2 <= d < 0.5
    assert picks[2:] == [("diffpir", 0.5, 20)] * 3  # d < 0.2 at low noise


def test_a_higher_noise_sends_an_ill_posed_blur_back_to_hqs() -> None:
    op = GaussianBlur(3.0)
    low, high = _choose(op, 0.02), _choose(op, 0.05)
    assert (low.method, low.regime) == ("diffpir", "ill-posed")
    assert (high.method, high.options["lam"], high.options["steps"]) == ("dpir", 0.1, 24)
    # a mild blur stays with DPIR's settings at any noise level
    assert {_choose(GaussianBlur(0.5), s).options["lam"] for s in (0.005, 0.025, 0.1)} == {0.23}


def _disk(radius: float) -> torch.Tensor:
    n = int(2 * radius + 1) | 1
    yy, xx = torch.meshgrid(torch.arange(n) - n // 2, torch.arange(n) - n // 2, indexing="ij")
    k = ((xx**2 + yy**2) <= radius**2).double()
    return k / k.sum()


def test_weak_band_tells_sidelobes_from_a_gaussian() -> None:
    """The weak band (3 % to 10 % of the peak) against numpy; a disk's sidelobes fill it, a
    Gaussian's fast decay does not, a mask has none; and a noisy ill-posed disk blur is never sent
    to the small lam that amplifies those sidelobes (8 dB lost on a tuning photo)."""
    for k in (_disk(4.9), GaussianBlur(3.0).kernel[0]):
        a = np.abs(np.fft.fft2(np.pad(k.numpy(), ((0, 64 - k.shape[-2]), (0, 64 - k.shape[-1])))))
        a /= a.max()
        want = float(((a > 0.03) & (a <= 0.1)).mean())
        assert problem.weak_fraction(Blur(k), SHAPE) == pytest.approx(want, abs=1e-12)
    disk, gauss = Blur(_disk(4.9)), GaussianBlur(3.0)
    assert problem.weak_fraction(disk, SHAPE) >= 0.15 > problem.weak_fraction(gauss, SHAPE)
    assert problem.weak_fraction(Inpaint(random_mask((1, 1, 64, 64), 0.5, seed=0)), SHAPE) == 0.0
    assert problem.informative_fraction(disk, SHAPE) < 0.2  # ill posed
    assert _choose(disk, 0.05).method == "diffpir"
    low = _choose(disk, 0.01)  # at low noise the sidelobes take DPIR's lam, for longer
    assert (low.method, low.options["lam"], low.options["steps"]) == ("dpir", 0.23, 24)
    assert _choose(gauss, 0.01).method == "diffpir"
    assert (_choose(gauss, 0.05).method, _choose(gauss, 0.05).options["lam"]) == ("dpir", 0.1)


def test_super_resolution_inpainting_and_denoising() -> None:
    assert (_choose(Downsample(2), 0.01).method, _choose(Downsample(2), 0.01).options["lam"]) == ("dpir", 0.1)
    assert _choose(Downsample(4), 0.01).method == "diffpir"  # 0.03 <= d < 0.1, low noise
    assert _choose(Downsample(4), 0.05).method == "diffpir"  # x4 at any noise level
    noisy = _choose(Downsample(2), 0.1)
    assert (noisy.method, noisy.options["lam"], noisy.options["steps"]) == ("dpir", 0.23, 24)
    assert _choose(Downsample(8), 0.1).options["lam"] == 0.1
    assert _choose(Downsample(8), 0.01).method == "dpir"  # d = 1/64 < 0.03
    inp = _choose(Inpaint(random_mask((1, 1, 64, 64), 0.5, seed=0)), 0.01)
    assert (inp.method, inp.options["lam"], inp.options["steps"]) == ("dpir", 0.05, 40)
    assert _choose(Identity(), 0.05).method == "mmse"


def test_a_diffusion_prior_keeps_the_task_default() -> None:
    c = _choose(GaussianBlur(0.5), 0.025, sigma_max=80.0)
    assert (c.method, c.options, c.regime) == ("diffpir", {}, "task default")


def test_few_photons_take_dpirs_lam_when_deblurring_or_upsampling() -> None:
    """Photon noise of matched level >= 0.15 (about 10 photons at white) takes HQS with lam 0.23 and
    8 steps, whatever the blur (24 steps for super-resolution); below it, and for the same level of
    Gaussian noise, the table."""
    heavy = GaussianBlur(2.5)  # d < 0.2: the table gives the weak coupling (lam 0.1, 24 steps) when noisy
    for sigma in (0.15, 0.3):
        c = problem.choose(heavy, SHAPE, sigma, "deblur", "diffpir", noise="poisson")
        assert (c.method, c.options["lam"], c.options["steps"], c.regime) == ("dpir", 0.23, 8, "strong photon noise")
        gaussian = _choose(heavy, sigma)
        assert (gaussian.options.get("lam"), gaussian.options.get("steps")) == (0.1, 24)
    below = problem.choose(heavy, SHAPE, 0.14, "deblur", "diffpir", noise="poisson-gaussian")
    assert (below.options.get("lam"), below.options.get("steps")) == (0.1, 24)
    # x4 super-resolution: HQS, lam 0.23, 24 steps instead of DiffPIR; Gaussian noise and fewer
    # than 0.15 keep DiffPIR; inpainting keeps its table entry
    sr = problem.choose(Downsample(4), SHAPE, 0.2, "sr", "diffpir", noise="poisson")
    assert (sr.method, sr.options["lam"], sr.options["steps"], sr.regime) == ("dpir", 0.23, 24, "strong photon noise")
    assert _choose(Downsample(4), 0.2).method == "diffpir"
    assert problem.choose(Downsample(4), SHAPE, 0.14, "sr", "diffpir", noise="poisson").method == "diffpir"
    mask = Inpaint(random_mask(SHAPE, 0.5, seed=0))
    assert problem.choose(mask, SHAPE, 0.3, "inpaint", "dpir", noise="poisson").options["lam"] == 0.05
    # denoising photon noise stays the Anscombe route; a diffusion prior keeps the task default
    assert problem.choose(Identity(), SHAPE, 0.3, "denoise", "mmse", noise="poisson").method == "mmse"
    assert problem.choose(heavy, SHAPE, 0.3, "deblur", "diffpir", prior_sigma_max=80.0,
                          noise="poisson").regime == "task default"


def test_solve_runs_what_the_rule_chose(tmp_path) -> None:
    """The default is the rule's choice, bit for bit, and the info says so."""
    torch.manual_seed(0)
    x = torch.rand(1, 3, 32, 32)
    op = GaussianBlur(0.7)
    y = op(x) + 0.02 * torch.randn_like(x)
    prior = pnpdiff.load_prior("natural")
    out, info = pnpdiff.solve(y, op, prior, sigma_y=0.02, seed=0, progress=False, return_info=True)
    c = problem.choose(op, (1, 3, 32, 32), 0.02, "deblur", "diffpir")
    assert info["method"] == c.method == "dpir" and info["steps"] == c.options["steps"]
    assert info["rule"] == c.reason and info["denoiser_calls"] == c.options["steps"]
    ref = pnpdiff.solve(y, op, prior, method="dpir", lam=0.23, steps=c.options["steps"], sigma_y=0.02, seed=0,
                        progress=False, schedule="geometric", schedule_max=49 / 255, schedule_min="sigma_y")
    assert torch.equal(out, ref)
    # an option only the task's default method takes keeps that method
    _, info2 = pnpdiff.solve(y, op, prior, sigma_y=0.02, seed=0, progress=False, return_info=True, zeta=0.5,
                             steps=2)
    assert info2["method"] == "diffpir" and "zeta" in info2["rule"]
    # method="auto" is the same as no method
    out3 = pnpdiff.solve(y, op, prior, method="auto", sigma_y=0.02, seed=0, progress=False)
    assert torch.equal(out3, out)


def test_return_info_and_calibrate_must_be_bools() -> None:
    y = torch.rand(1, 1, 16, 16)
    with pytest.raises(pnpdiff.ValueRangeError, match="calibrate must be true or false"):
        pnpdiff.solve(y, GaussianBlur(1.0), sigma_y=0.02, calibrate="yes", progress=False)
    with pytest.raises(pnpdiff.ValueRangeError, match="return_info must be true or false"):
        pnpdiff.solve(y, GaussianBlur(1.0), sigma_y=0.02, steps=1, return_info=1, progress=False)


# ------------------------------------------------------------------------------ recipes and the CLI
RECIPE = """
image: skimage:astronaut
size: 32
operator: {name: GaussianBlur, sigma: 0.7}
noise: {sigma_y: 0.02, seed: 0}
seed: 0
output: out
"""


def _write(tmp_path, text: str):
    p = tmp_path / "r.yaml"
    p.write_text(text)
    return p


def test_a_recipe_without_method_runs_the_rule_and_records_it(tmp_path, capsys) -> None:
    import json

    import yaml

    from pnpdiff.cli import main

    recipe = _write(tmp_path, RECIPE)
    assert main([str(recipe), "--dry-run"]) == 0
    d = yaml.safe_load(capsys.readouterr().out)
    assert d["method"] == "auto" and "steps" not in d
    assert main([str(recipe), "--no-progress"]) == 0
    line = capsys.readouterr().out
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    c = problem.choose(GaussianBlur(0.7), (1, 3, 32, 32), 0.02, "deblur", "diffpir")
    assert (m["method"], m["steps"], m["method_rule"]) == (c.method, c.options["steps"], c.reason)
    assert m["denoiser_calls"] == c.options["steps"]
    assert f"{c.method} (auto), {c.options['steps']} steps" in line
    # the resolved recipe.yaml reruns the same thing (method: auto is accepted)
    resolved = yaml.safe_load((tmp_path / "out" / "recipe.yaml").read_text())
    assert resolved["method"] == "auto"
    assert main([str(tmp_path / "out" / "recipe.yaml"), "--output", str(tmp_path / "again"), "--no-progress"]) == 0
    again = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert again["psnr_restored"] == m["psnr_restored"]


@pytest.mark.parametrize("value", ["yes please", "3", "[true]"])
def test_a_bad_calibrate_value_is_one_line_and_exit_2(tmp_path, capsys, value: str) -> None:
    from pnpdiff.cli import main

    rc = main([str(_write(tmp_path, RECIPE + f"calibrate: {value}\n")), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "calibrate" in err, err


def test_calibrate_with_samples_is_refused(tmp_path, capsys) -> None:
    from pnpdiff.cli import main

    rc = main([str(_write(tmp_path, RECIPE + "calibrate: true\nsamples: 2\n")), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "samples" in err, err


def test_calibrate_returns_the_candidate_it_names_and_its_scores(tmp_path, capsys) -> None:
    """solve(calibrate=True): the result is the chosen candidate's own solve, bit for bit; the choice
    is the lowest score; every candidate ran with its probes; recipes record it."""
    import json

    from pnpdiff.calibrate import DEFAULT_PROBES
    from pnpdiff.cli import main

    torch.manual_seed(1)
    x = torch.rand(1, 3, 32, 32)
    op = GaussianBlur(1.2)
    y = op(x) + 0.03 * torch.randn_like(x)
    prior = pnpdiff.load_prior("natural")
    out, info = pnpdiff.solve(y, op, prior, sigma_y=0.03, seed=0, progress=False, return_info=True,
                              calibrate=True)
    cal = info["calibration"]
    scores = [row[0] for row in cal["scores"]]
    assert cal["chosen"] == [min(range(len(scores)), key=scores.__getitem__)]
    assert cal["solves"] == len(cal["candidates"]) * (1 + DEFAULT_PROBES) and len(cal["candidates"]) >= 4
    ref = pnpdiff.solve(y, op, prior, method=info["method"], steps=info["steps"], sigma_y=0.03, seed=0,
                        progress=False, **info["options"])
    assert torch.equal(out, ref)
    rc = main([str(_write(tmp_path, RECIPE + "calibrate: true\n")), "--no-progress"])
    assert rc == 0
    line = capsys.readouterr().out
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert m["calibration"]["summary"] in line and "SURE" in m["calibration"]["summary"]
