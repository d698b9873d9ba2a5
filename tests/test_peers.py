"""Peer configs (DPS task configs, DiffPIR-style configs) read as pnpdiff recipes.

The unit conversions are checked against transcriptions of the official loops, not against the
formulas of :mod:`pnpdiff.config.peers`: a DPS config's ``scale`` must give pnpdiff's ``dps`` the
trajectory of the official DPS loop (``tests/test_official_loops.py``), and a DiffPIR config's
``lambda_`` / ``zeta`` / ``noise_level_img`` must give pnpdiff's ``diffpir`` the trajectory of the
official DiffPIR loop (transcribed below in its [-1, 1] VP variables). The operator claims of the
translation table (DPS's bicubic Resizer, its scipy Gaussian kernel, DiffPIR's timestep spacing)
are checked against independent references too.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from posterior_utils import gaussian_problem
from test_official_loops import _official_dps

from pnpdiff.config.peers import PeerLoader, Translation, load_yaml, translate
from pnpdiff.config.restore import parse_recipe
from pnpdiff.errors import RecipeError
from pnpdiff.operators import Downsample, Matrix, gaussian_kernel
from pnpdiff.runs.measure import build_operator
from pnpdiff.schedules import ddpm, ddpm_sigma_table, karras
from pnpdiff.solvers.diffpir import diffpir
from pnpdiff.solvers.dps import dps

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT / "recipes" / "peers"

# A DPS task config in the layout of the DPS repository's configs/ (written here in flow style).
DPS_SR = """
conditioning: {method: ps, params: {scale: 0.3}}
data: {name: ffhq, root: ./data/samples/}
measurement:
  operator: {name: super_resolution, in_shape: !!python/tuple [1, 3, 256, 256], scale_factor: 4}
  noise: {name: gaussian, sigma: 0.05}
"""

# A DiffPIR-style config with the variable names of main_ddpir_sisr.py.
DIFFPIR_SR = """
task: sr
seed: 42
noise_level_img: 12.75
noise_level_model: noise_level_img
model_name: diffusion_ffhq_10m
testset_name: demo_test
num_train_timesteps: 1000
iter_num: 100
iter_num_U: 1
save_L: true
save_progressive: true
lambda_: 7
zeta: 0.3
sub_1_analytic: true
ddim_sample: false
model_output_type: pred_xstart
generate_mode: DiffPIR
skip_type: quad
eta: 0
guidance_scale: 1.0
n_channels: 3
cwd: ''
calc_LPIPS: true
beta_start: 0.0001
beta_end: 0.02
noise_init_img: max
skip_noise_model_t: false
sf: 4
sr_mode: blur
inIter: 1
gamma: 0.01
"""


def dps_config(**changes: object) -> dict:
    """The DPS config above with dotted-path changes (``None`` deletes the key)."""
    d = load_yaml(DPS_SR)
    for path, value in changes.items():
        *head, last = path.split("__")
        node = d
        for k in head:
            node = node.setdefault(k, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return d


def diffpir_config(**changes: object) -> dict:
    d = load_yaml(DIFFPIR_SR)
    for k, v in changes.items():
        if v is None:
            d.pop(k, None)
        else:
            d[k] = v
    return d


def peer_keys(d: dict, prefix: str = "") -> list[str]:
    """Every leaf key path of a nested config (``measurement.operator.name``)."""
    out = []
    for k, v in d.items():
        path = f"{prefix}{k}"
        out += peer_keys(v, path + ".") if isinstance(v, dict) else [path]
    return out


# ---------------------------------------------------------------------------------------------
# the loader
# ---------------------------------------------------------------------------------------------
def test_loader_reads_python_tuple_like_safe_load_otherwise() -> None:
    d = load_yaml("a: !!python/tuple [1, 3, 256, 256]\nb: [1, 2]\nc: {d: !!python/tuple [0.3, 0.7]}\ne: 1e-3\n")
    assert d["a"] == (1, 3, 256, 256) and isinstance(d["a"], tuple)
    assert d["b"] == [1, 2] and isinstance(d["b"], list)
    assert d["c"]["d"] == (0.3, 0.7)
    text = "x: 1\ny: [a, {b: 2.5}]\nz: null\nw: yes\n"
    assert load_yaml(text) == yaml.safe_load(text)
    assert load_yaml("a: !!python/tuple [[1, 2], [3]]")["a"] == ([1, 2], [3])


@pytest.mark.parametrize(
    "text",
    [
        "a: !!python/object/apply:os.system ['echo owned']",
        "a: !!python/object:collections.OrderedDict {}",
        "a: !!python/name:os.system",
        "a: !!python/list [1, 2]",
        "a: !!python/str x",
        "a: !!python/tuple {k: v}",
    ],
)
def test_loader_refuses_every_other_python_tag(text: str) -> None:
    with pytest.raises(yaml.constructor.ConstructorError):
        load_yaml(text)


def test_loader_leaves_safe_loader_unchanged() -> None:
    tag = "tag:yaml.org,2002:python/tuple"
    assert tag in PeerLoader.yaml_constructors
    assert tag not in yaml.SafeLoader.yaml_constructors
    with pytest.raises(yaml.constructor.ConstructorError):
        yaml.safe_load("a: !!python/tuple [1, 2]")


# ---------------------------------------------------------------------------------------------
# detection
# ---------------------------------------------------------------------------------------------
def test_pnpdiff_recipes_and_non_mappings_are_not_peer_configs() -> None:
    for f in sorted((ROOT / "recipes").glob("*.yaml")):
        assert translate(yaml.safe_load(f.read_text())) is None, f
    assert translate(None) is None
    assert translate([1, 2]) is None
    assert translate({"image": "a.png", "operator": "Identity", "task": "sr", "seed": 3}) is None


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({**load_yaml(DPS_SR), "steps": 5}, "steps"),
        ({**load_yaml(DPS_SR), "image": "a.png"}, "image"),
        ({**load_yaml(DPS_SR), "seed": 1}, "seed"),
        ({**load_yaml(DIFFPIR_SR), "operator": "Identity"}, "operator"),
        ({**load_yaml(DIFFPIR_SR), "options": {"lam": 1}}, "options"),
        ({"image": "a.png", "operator": "Identity", "iter_num": 20}, "image"),
    ],
)
def test_mixing_pnpdiff_keys_with_peer_keys_is_an_error(data: dict, key: str) -> None:
    with pytest.raises(RecipeError, match=rf"^{key}: a pnpdiff recipe key in a (DPS|DiffPIR)"):
        translate(data)


def test_dps_model_and_diffusion_configs_are_refused_with_a_pointer() -> None:
    with pytest.raises(RecipeError, match="DPS model config.*prior=ffhq"):
        translate({"image_size": 256, "num_channels": 128, "learn_sigma": True, "model_path": "models/ffhq_10m.pt"})
    with pytest.raises(RecipeError, match="DPS diffusion config.*steps=N"):
        translate({"sampler": "ddpm", "steps": 1000, "timestep_respacing": 1000})


def test_errors_name_the_file_and_the_key_path() -> None:
    bad = dps_config(measurement__noise={"name": "laplace"})
    with pytest.raises(RecipeError) as err:
        translate(bad, Path("configs/deblur.yaml"))
    assert str(err.value) == (
        "configs/deblur.yaml: measurement.noise.name: expected gaussian, poisson or clean, got 'laplace'"
    )


# ---------------------------------------------------------------------------------------------
# DPS
# ---------------------------------------------------------------------------------------------
def test_dps_super_resolution_translation() -> None:
    tr = translate(load_yaml(DPS_SR), Path("cfg.yaml"))
    assert isinstance(tr, Translation) and tr.kind == "dps"
    assert tr.recipe == {
        "image": "./data/samples/",
        "size": [256, 256],
        "operator": {"name": "Downsample", "factor": 4, "filter": "bicubic"},
        "noise": {"sigma_y": 0.025},
        "method": "dps",
        "options": {"zeta": 0.15},
    }
    assert tr.recipe["noise"]["sigma_y"] == 0.025  # exactly: DPS's 0.05 on [-1, 1]
    assert yaml.safe_load(yaml.safe_dump(tr.recipe)) == tr.recipe  # plain YAML types (no tuples)


def test_dps_translation_parses_as_a_recipe_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "gt.png").write_bytes((PEERS / "samples" / "astronaut.png").read_bytes())
    tr = translate(dps_config(data__root="gt.png"))
    r = parse_recipe(tr.recipe, source=tmp_path / "config.yaml")
    assert r.image == str(tmp_path / "gt.png")
    assert r.size == (256, 256) and r.sigma_y == 0.025 and r.method == "dps" and r.options == {"zeta": 0.15}
    assert r.prior == "natural"


@pytest.mark.parametrize(
    ("operator", "mask_opt", "expected"),
    [
        (
            {"name": "gaussian_blur", "kernel_size": 61, "intensity": 3.0},
            None,
            {"name": "GaussianBlur", "sigma": 3.0, "kernel_size": 61, "boundary": "reflect"},
        ),
        (
            {"name": "motion_blur", "kernel_size": 61, "intensity": 0.5},
            None,
            {"name": "MotionBlur", "size": 61, "intensity": 0.5, "seed": 0, "boundary": "reflect"},
        ),
        ({"name": "noise"}, None, {"name": "Identity"}),
        (
            {"name": "inpainting"},
            {"mask_type": "random", "mask_prob_range": (0.7, 0.7), "image_size": 64},
            {"name": "Inpaint", "mask": {"kind": "random", "p_missing": 0.7, "seed": 0}},
        ),
        (
            {"name": "inpainting"},
            {"mask_type": "box", "mask_len_range": (32, 33), "image_size": 64, "margin": (8, 8)},
            {"name": "Inpaint", "mask": {"kind": "box", "box_size": 32, "position": "random", "margin": 8, "seed": 0}},
        ),
    ],
)
def test_dps_operators_build_as_pnpdiff_operators(operator: dict, mask_opt: dict | None, expected: dict) -> None:
    d = dps_config(measurement__operator=operator)
    if mask_opt is not None:
        d["measurement"]["mask_opt"] = mask_opt
    tr = translate(d)
    assert tr.recipe["operator"] == expected
    r = parse_recipe({**tr.recipe, "image": "skimage:astronaut"})
    op = build_operator(copy.deepcopy(r.operator), (1, 3, 64, 64))
    assert op(torch.rand(1, 3, 64, 64)).shape[-2:] == (64, 64)
    if mask_opt is not None:
        assert tr.recipe["size"] == 64
        missing = 1 - op.mask.float().mean().item()
        assert missing == pytest.approx(0.7 if mask_opt["mask_type"] == "random" else 32 * 32 / 64**2, abs=1e-3)


def test_dps_random_mask_range_is_approximated_by_its_mean_and_says_so() -> None:
    d = dps_config(measurement__operator={"name": "inpainting"})
    d["measurement"]["mask_opt"] = load_yaml("{mask_type: random, mask_prob_range: !!python/tuple [0.3, 0.7]}")
    tr = translate(d)
    assert tr.recipe["operator"]["mask"]["p_missing"] == pytest.approx(0.5)
    assert tr.recipe["size"] == 256  # DPS's default image_size
    (row,) = [r for r in tr.rows if r[0] == "measurement.mask_opt.mask_prob_range"]
    assert "the mean" in row[3] and "[0.3, 0.7]" in row[3]


def test_dps_phase_retrieval_is_mapped() -> None:
    d = dps_config(measurement__operator={"name": "phase_retrieval", "oversample": 2.0})
    tr = translate(d)
    assert tr.recipe["operator"] == {"name": "PhaseRetrieval", "oversample": 2.0}
    assert "size" not in tr.recipe
    from pnpdiff.config.restore import RECIPE_OPERATORS

    if "PhaseRetrieval" not in RECIPE_OPERATORS:
        pytest.skip("recipes do not build PhaseRetrieval yet")
    r = parse_recipe({**tr.recipe, "image": "skimage:astronaut"})
    assert r.operator == {"name": "PhaseRetrieval", "oversample": 2.0} and r.method == "dps"


def test_dps_clean_noise_and_default_scale() -> None:
    tr = translate(dps_config(measurement__noise={"name": "clean"}, conditioning__params=None))
    assert tr.recipe["noise"] == {"sigma_y": 0.0}
    assert tr.recipe["options"] == {"zeta": 0.5}  # DPS's default scale 1.0


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"measurement__noise": {"name": "poisson"}}, "measurement.noise.rate: missing"),
        ({"measurement__noise": {"name": "poisson", "rate": 0}}, r"measurement.noise.rate: expected a number in \(0"),
        ({"measurement__noise": {"name": "poisson", "rate": 1, "sigma": 0.1}}, "measurement.noise.sigma: DPS's"),
        ({"measurement__noise": {"name": "laplace"}}, "measurement.noise.name: expected gaussian, poisson or clean"),
        ({"measurement__noise": {"name": "gaussian"}}, "measurement.noise.sigma: missing"),
        ({"measurement__noise": {"name": "gaussian", "sigma": "0.05"}}, "measurement.noise.sigma: expected a number"),
        ({"measurement__noise": {"name": "gaussian", "sigma": 0.05, "rate": 1}}, "measurement.noise.rate: DPS's"),
        ({"measurement__noise": None}, "measurement.noise: missing"),
        (
            {"measurement__operator": {"name": "nonlinear_blur", "opt_yml_path": "x.yml"}},
            "measurement.operator.name: nonlinear_blur needs DPS's learned blur network",
        ),
        ({"measurement__operator": {"name": "colorization"}}, "measurement.operator.name: unknown DPS operator"),
        ({"measurement__operator": {"scale_factor": 4}}, "measurement.operator.name: missing"),
        (
            {"measurement__operator": {"name": "super_resolution", "scale_factor": 4}},
            "measurement.operator.in_shape: missing",
        ),
        (
            {"measurement__operator": {"name": "super_resolution", "in_shape": [1, 3, 250, 250], "scale_factor": 4}},
            "measurement.operator.in_shape: 250x250 is not a multiple of scale_factor 4",
        ),
        (
            {"measurement__operator": {"name": "super_resolution", "in_shape": [1, 3, 256, 256], "scale_factor": 2.5}},
            "measurement.operator.scale_factor: expected an integer",
        ),
        (
            {"measurement__operator": {"name": "gaussian_blur", "kernel_size": 61, "intensity": 3, "sigma": 1}},
            "measurement.operator.sigma: DPS's gaussian_blur operator has no parameter 'sigma'",
        ),
        (
            {"measurement__operator": {"name": "motion_blur", "kernel_size": 61, "intensity": 1.5}},
            r"measurement.operator.intensity: expected a number in \[0, 1\]",
        ),
        ({"measurement__operator": {"name": "inpainting"}}, "measurement.mask_opt: missing"),
        ({"measurement__extra": 1}, "measurement.extra: unknown DPS measurement key"),
        ({"measurement": None}, "measurement: missing"),
        ({"conditioning__method": "mcg"}, "conditioning.method: mcg .* is not a pnpdiff method"),
        ({"conditioning__method": "projection"}, "conditioning.method: projection .* is not a pnpdiff method"),
        ({"conditioning__method": "vanilla"}, "conditioning.method: vanilla is unconditional sampling"),
        ({"conditioning__method": "ps+"}, r"conditioning.method: ps\+ .* is not a pnpdiff method"),
        ({"conditioning__method": "dps"}, "conditioning.method: unknown DPS conditioning method 'dps'"),
        ({"conditioning__params": {"scale": 1.0, "num_sampling": 5}}, "conditioning.params.num_sampling: DPS's ps"),
        ({"conditioning__params": {"scale": -1.0}}, "conditioning.params.scale: expected a number >= 0"),
        ({"conditioning__params": {"scale": True}}, "conditioning.params.scale: expected a number"),
        ({"conditioning": None}, "conditioning: missing"),
        ({"data__root": None}, "data.root: missing"),
        ({"data__shuffle": True}, "data.shuffle: unknown DPS data key"),
        ({"extra": 1}, "extra: unknown DPS task config key"),
    ],
)
def test_dps_error_cases(changes: dict, match: str) -> None:
    with pytest.raises(RecipeError, match=f"^{match}"):
        translate(dps_config(**changes))


@pytest.mark.parametrize(
    ("mask_opt", "match"),
    [
        ({"mask_type": "extreme", "mask_len_range": (128, 129)}, "mask_type: extreme"),
        ({"mask_type": "both"}, "mask_type: both is refused by DPS's own mask generator"),
        ({"mask_type": "random"}, "mask_prob_range: missing"),
        ({"mask_type": "random", "mask_prob_range": (0.3, 1.3)}, r"mask_prob_range: fractions must be in \[0, 1\]"),
        ({"mask_type": "random", "mask_prob_range": (0.7, 0.3)}, "mask_prob_range: expected low <= high"),
        ({"mask_type": "box"}, "mask_len_range: missing"),
        ({"mask_type": "box", "mask_len_range": (128, 128)}, "mask_len_range: DPS draws the side from"),
        ({"mask_type": "box", "mask_len_range": (64, 65), "margin": (8, 16)}, "margin: pnpdiff's box mask has one"),
        ({"mask_type": "random", "mask_prob_range": (0.5, 0.5), "shape": 3}, "shape: unknown DPS mask_opt key"),
    ],
)
def test_dps_mask_error_cases(mask_opt: dict, match: str) -> None:
    d = dps_config(measurement__operator={"name": "inpainting"})
    d["measurement"]["mask_opt"] = mask_opt
    with pytest.raises(RecipeError, match=f"^measurement.mask_opt.{match}"):
        translate(d)


def test_dps_scale_gives_the_update_of_the_official_loop() -> None:
    """A translated DPS config drives pnpdiff's dps along the trajectory of the official DPS loop
    (``x'_{t-1} -= scale * grad ||y' - A(x0')||`` in [-1, 1] VP units, transcribed in
    tests/test_official_loops.py) run with the config's own ``scale``."""
    prob = gaussian_problem()
    A = prob.operator.matrix
    sigmas = karras(25, sigma_min=0.01, sigma_max=3.0)
    sig = sigmas.tolist()
    x_start = torch.linspace(-0.5, 0.5, 8, dtype=torch.float64).reshape(1, 8)
    scale = 0.7
    tr = translate(dps_config(conditioning__params={"scale": scale}))
    zeta = tr.recipe["options"]["zeta"]
    g = torch.Generator().manual_seed(0)
    draws = [torch.randn(x_start.shape, generator=g, dtype=torch.float64) for _ in range(len(sig))]
    ref = _official_dps(prob.y, A, prob.prior, sig, x_start + sig[0] * draws[0], draws[1:], scale=scale)

    def run(z: float) -> torch.Tensor:
        return dps(
            prob.y,
            Matrix(A),
            prob.prior,
            sigmas,
            tr.recipe["noise"]["sigma_y"],
            zeta=z,
            x_init=x_start,
            generator=torch.Generator().manual_seed(0),
        )

    torch.testing.assert_close(run(zeta), ref, rtol=0, atol=1e-9)
    assert (run(scale) - ref).abs().max() > 1e-2  # the unconverted scale is a different step


def test_dps_noise_conversion_gives_the_official_measurement() -> None:
    """DPS measures ``y' = A(2x - 1) + sigma n`` on [-1, 1]; pnpdiff ``y = A x + sigma_y n``: with the
    translated sigma_y, ``y' = 2 y - A 1`` for the same draw ``n``."""
    tr = translate(dps_config(measurement__noise={"name": "gaussian", "sigma": 0.05}))
    g = torch.Generator().manual_seed(1)
    A = torch.randn(3, 8, generator=g, dtype=torch.float64)
    x = torch.rand(1, 8, generator=g, dtype=torch.float64)
    n = torch.randn(1, 3, generator=g, dtype=torch.float64)
    y_dps = (2 * x - 1) @ A.T + 0.05 * n
    y_pnp = x @ A.T + tr.recipe["noise"]["sigma_y"] * n
    torch.testing.assert_close(y_dps, 2 * y_pnp - torch.ones(1, 8, dtype=torch.float64) @ A.T, rtol=0, atol=1e-15)


def _dps_resizer_matrix(n: int, s: int) -> np.ndarray:
    """Reference: the 1-D downscaling matrix of DPS's Resizer (MATLAB imresize semantics: Keys cubic
    a = -0.5 stretched by s, output k at input coordinate k s + (1 - s) / 2 (1-based), weights
    normalised, mirrored indices at the borders), written from its definition."""

    def cubic(t: np.ndarray) -> np.ndarray:
        a = np.abs(t)
        return (1.5 * a**3 - 2.5 * a**2 + 1) * (a <= 1) + (-0.5 * a**3 + 2.5 * a**2 - 4 * a + 2) * ((a > 1) & (a <= 2))

    m = np.zeros((n // s, n))
    for k in range(1, n // s + 1):
        u = k * s + 0.5 * (1 - s)
        first = int(np.floor(u - 2 * s)) - 1
        j = np.arange(first, first + 4 * s + 3)
        w = cubic((u - j) / s)
        w /= w.sum()
        idx = j - 1
        idx = np.where(idx < 0, -idx - 1, idx)
        idx = np.where(idx > n - 1, 2 * n - 1 - idx, idx)
        np.add.at(m[k - 1], idx, w)
    return m


def test_dps_super_resolution_matches_its_resizer_away_from_the_border() -> None:
    tr = translate(load_yaml(DPS_SR))
    op = Downsample(**{k: v for k, v in tr.recipe["operator"].items() if k != "name"})
    x = torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    m = _dps_resizer_matrix(64, 4)
    ref = m @ x[0, 0].numpy() @ m.T
    got = op(x)[0, 0].numpy()
    np.testing.assert_allclose(got[2:-2, 2:-2], ref[2:-2, 2:-2], rtol=0, atol=1e-12)
    assert np.abs(got - ref).max() > 1e-3  # the border differs (circular vs mirrored), as the table says


def test_dps_gaussian_kernel_matches_scipy_to_1e_4_of_its_peak() -> None:
    import scipy.ndimage as ndi

    delta = np.zeros((61, 61))
    delta[30, 30] = 1
    ref = ndi.gaussian_filter(delta, sigma=3.0)  # DPS's Blurkernel
    got = gaussian_kernel(3.0, 61, dtype=torch.float64).numpy()
    assert np.abs(got - ref).max() < 1e-4 * ref.max()


# ---------------------------------------------------------------------------------------------
# DiffPIR
# ---------------------------------------------------------------------------------------------
def test_diffpir_super_resolution_translation() -> None:
    tr = translate(load_yaml(DIFFPIR_SR))
    assert tr.kind == "diffpir"
    assert tr.recipe == {
        "image": "testsets/demo_test",
        "prior": "ffhq",
        "noise": {"sigma_y": 0.05, "seed": 42},
        "seed": 42,
        "steps": 100,
        "method": "diffpir",
        "options": {"schedule": "ddpm", "lam": 1.75, "zeta": 0.3},
        "operator": {"name": "Downsample", "factor": 4, "filter": "bicubic"},
    }
    assert tr.recipe["noise"]["sigma_y"] == 0.05  # exactly: 12.75 / 255
    assert tr.recipe["options"]["lam"] == 1.75  # the paper's lambda 7 (ALGORITHMS.md)


def test_diffpir_translation_parses_as_a_recipe() -> None:
    tr = translate(diffpir_config(testsets=str(PEERS / "samples"), testset_name="astronaut.png", model_name=None))
    r = parse_recipe(tr.recipe)
    assert r.image == str(PEERS / "samples" / "astronaut.png")
    assert r.prior == "natural" and r.steps == 100 and r.sigma_y == 0.05 and r.noise_seed == 42
    assert r.options == {"schedule": "ddpm", "lam": 1.75, "zeta": 0.3}


def test_diffpir_paths_follow_cwd_testsets_and_model_zoo() -> None:
    tr = translate(diffpir_config(cwd="/data/diffpir"))
    assert tr.recipe["image"] == "/data/diffpir/testsets/demo_test"
    assert tr.recipe["prior"] == {"name": "ffhq", "path": "/data/diffpir/model_zoo/diffusion_ffhq_10m.pt"}
    tr = translate(diffpir_config(testsets="imgs", model_zoo="weights", model_name="256x256_diffusion_uncond"))
    assert tr.recipe["image"] == "imgs/demo_test"
    assert tr.recipe["prior"] == {"name": "imagenet", "path": "weights/256x256_diffusion_uncond.pt"}
    tr = translate(diffpir_config(testset_name=None))
    assert "image" not in tr.recipe


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"task": "deblur", "sf": 1, "blur_mode": "Gaussian", "kernel_size": 61},
            {"name": "GaussianBlur", "sigma": 3.0, "kernel_size": 61, "boundary": "circular"},
        ),
        (
            {"task": "deblur", "sf": 1, "blur_mode": "motion", "kernel_size": 31, "kernel_std": 0.6},
            {"name": "MotionBlur", "size": 31, "intensity": 0.6, "seed": 0, "boundary": "circular"},
        ),
        (
            {"task": "inpaint", "sf": 1, "mask_type": "random", "mask_prob_range": [0.5, 0.5]},
            {"name": "Inpaint", "mask": {"kind": "random", "p_missing": 0.5, "seed": 0}},
        ),
        (
            {"task": "inpaint", "sf": 1, "mask_type": "box", "mask_len_range": [32, 33]},
            {"name": "Inpaint", "mask": {"kind": "box", "box_size": 32, "position": "random", "margin": 16, "seed": 0}},
        ),
        (
            {"task": None, "task_current": "sr", "sf": None, "test_sf": [2]},
            {"name": "Downsample", "factor": 2, "filter": "bicubic"},
        ),
        ({"task": None}, {"name": "Downsample", "factor": 4, "filter": "bicubic"}),
    ],
)
def test_diffpir_operators_build_as_pnpdiff_operators(changes: dict, expected: dict) -> None:
    tr = translate(
        diffpir_config(sr_mode=None, inIter=None, gamma=None, **changes)
        if changes.get("task") in ("deblur", "inpaint")
        else diffpir_config(**changes)
    )
    assert tr.recipe["operator"] == expected
    r = parse_recipe({**tr.recipe, "image": "skimage:astronaut", "prior": "natural"})
    op = build_operator(copy.deepcopy(r.operator), (1, 3, 96, 96))
    assert op(torch.rand(1, 3, 96, 96)).shape[-2:] == (96 // expected.get("factor", 1),) * 2


def test_diffpir_mask_image_is_a_path_relative_to_the_file() -> None:
    tr = translate(
        diffpir_config(
            task="inpaint", sf=1, sr_mode=None, inIter=None, gamma=None, load_mask=True, mask_name="masks/box.png"
        )
    )
    assert tr.recipe["operator"] == {"name": "Inpaint", "mask": "testsets/masks/box.png"}


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"noise_level_img": None}, "noise_level_img: missing"),
        ({"noise_level_img": -1}, "noise_level_img: expected a number >= 0"),
        ({"iter_num": None}, "iter_num: missing"),
        ({"iter_num": 1}, "iter_num: expected an integer >= 2"),
        ({"iter_num_U": 3}, "iter_num_U: repeating each step"),
        ({"lambda_": 0}, "lambda_: expected a positive number"),
        ({"zeta": 1.5}, r"zeta: expected a number in \[0, 1\]"),
        ({"skip_type": "uniform"}, "skip_type: uniform timestep spacing is not available"),
        ({"skip_type": "log"}, "skip_type: expected quad or uniform"),
        ({"generate_mode": "DPS_y0"}, "generate_mode: 'DPS_y0' is not translated"),
        ({"generate_mode": "repaint"}, "generate_mode: 'repaint' is not translated"),
        ({"model_output_type": "pred_x_prev"}, "model_output_type: 'pred_x_prev' is not DiffPIR's algorithm"),
        ({"sub_1_analytic": False}, "sub_1_analytic: DiffPIR's first-order"),
        ({"guidance_scale": 0.5}, "guidance_scale: pnpdiff's diffpir takes the data step in full"),
        ({"eta": 0.5}, "eta: DiffPIR's eta"),
        ({"n_channels": 1}, "n_channels: DiffPIR's models are colour"),
        ({"noise_init_img": 50}, "noise_init_img: starting below the top of the schedule"),
        ({"num_train_timesteps": 500}, "num_train_timesteps: pnpdiff's DDPM table"),
        ({"beta_end": 0.01}, "beta_end: pnpdiff's DDPM table"),
        ({"skip_noise_model_t": True, "iter_num": 1000}, "skip_noise_model_t: with iter_num 1000"),
        ({"model_name": "ffhq_512"}, "model_name: unknown DiffPIR model 'ffhq_512'"),
        ({"sr_mode": "cubic"}, "sr_mode: sr_mode cubic"),
        ({"classical_degradation": True}, "classical_degradation: the blur kernels of kernels_12.mat"),
        ({"sf": None}, "sf: missing"),
        ({"sf": 2.5}, "sf: expected an integer"),
        ({"test_sf": [2, 3, 4]}, "test_sf: one scale factor per pnpdiff run"),
        ({"test_sf": [2]}, "sf: sf 4 disagrees with test_sf"),
        ({"task": "colorize"}, "task: expected sr, deblur or inpaint"),
        ({"task_current": "deblur"}, "task_current: 'deblur' disagrees with task 'sr'"),
        ({"task": None, "sf": 1, "sr_mode": None, "inIter": None, "gamma": None}, "task: missing"),
        ({"seed": -1}, "seed: expected an integer >= 0"),
        ({"lr": 0.1}, "lr: not a DiffPIR config key that pnpdiff knows"),
    ],
)
def test_diffpir_error_cases(changes: dict, match: str) -> None:
    with pytest.raises(RecipeError, match=f"^{match}"):
        translate(diffpir_config(**changes))


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"task": "deblur", "sf": 2}, "sf: deblurring is at scale 1"),
        ({"task": "deblur", "sf": 1, "use_DIY_kernel": False}, "use_DIY_kernel: the kernels of Levin09.mat"),
        ({"task": "deblur", "sf": 1, "blur_mode": "box"}, "blur_mode: expected Gaussian or motion"),
        ({"task": "deblur", "sf": 1, "blur_mode": "motion", "kernel_std": 3.0}, "kernel_std: the motion-blur"),
        ({"task": "inpaint", "sf": 4}, "sf: inpainting is at scale 1"),
        ({"task": "inpaint", "sf": 1, "mask_type": "extreme"}, "mask_type: extreme"),
        ({"task": "inpaint", "sf": 1, "mask_type": "both"}, "mask_type: both is refused"),
        ({"task": "inpaint", "sf": 1, "load_mask": True}, "mask_name: missing"),
        ({"task": "inpaint", "sf": 1, "mask_prob_range": [0.2, 1.2]}, r"mask_prob_range: fractions must be in"),
        ({"task": "inpaint", "sf": 1, "mask_type": "box", "mask_len_range": [64, 64]}, "mask_len_range: the side"),
    ],
)
def test_diffpir_task_error_cases(changes: dict, match: str) -> None:
    with pytest.raises(RecipeError, match=f"^{match}"):
        translate(diffpir_config(**changes))


def test_diffpir_switches_without_effect_are_accepted() -> None:
    tr = translate(diffpir_config(eta=0.5, zeta=1.0, ddim_sample=True, skip_noise_model_t=True))
    assert tr.recipe["options"]["zeta"] == 1.0
    rows = {r[0]: r for r in tr.rows}
    assert "no effect" in rows["eta"][3] and "no effect" in rows["ddim_sample"][3]
    assert "no effect" in rows["skip_noise_model_t"][3]


def _official_diffpir(y, A, prior, sigmas, x_init, noises, noise_level_img, lambda_, zeta):
    """The official DiffPIR loop (main_ddpir_sisr.py, generate_mode DiffPIR, pred_xstart,
    sub_1_analytic, eta 0, guidance_scale 1) in its VP variables on [-1, 1] (reference; not product
    code). ``sigmas`` are the VE [0, 1] noise levels of its timesteps, decreasing; the data step is
    taken on ``x0 / 2 + 0.5`` as in the official code, with ``rho = lambda_ sigma^2 / sigmabar_t^2``
    and ``sigmabar_t = sqrt((1 - abar_t) / abar_t)``. Returns ``x`` in [0, 1] after every step."""
    sigma = max(0.001, noise_level_img / 255.0)
    abars = [1.0 / (1.0 + 4.0 * s**2) for s in sigmas]
    x = abars[0] ** 0.5 * (2 * x_init - 1) + (1 - abars[0]) ** 0.5 * noises[0]
    gram = A.T @ A
    out = []
    for i in range(len(sigmas) - 1):
        ab = abars[i]
        eps = prior.eps((x / ab**0.5 + 1) / 2, sigmas[i])
        x0 = (x - (1 - ab) ** 0.5 * eps) / ab**0.5
        rho = lambda_ * sigma**2 / ((1 - ab) / ab)
        z0 = x0 / 2 + 0.5
        z = torch.linalg.solve(gram + rho * torch.eye(A.shape[1], dtype=A.dtype), (y @ A + rho * z0).T).T
        x0 = z * 2 - 1
        eps_hat = (x - ab**0.5 * x0) / (1 - ab) ** 0.5
        ab_next = abars[i + 1]
        x = ab_next**0.5 * x0 + (1 - ab_next) ** 0.5 * ((1 - zeta) ** 0.5 * eps_hat + zeta**0.5 * noises[i + 1])
        out.append((x / ab_next**0.5 + 1) / 2)
    return out


def test_diffpir_lambda_zeta_and_noise_level_give_the_official_loop() -> None:
    """A translated DiffPIR config drives pnpdiff's diffpir along the official loop's trajectory
    (run with the config's own lambda_, zeta and noise_level_img on their scales)."""
    prob = gaussian_problem(sigma_y=0.1)
    A = prob.operator.matrix
    cfg = diffpir_config(noise_level_img=25.5, lambda_=7.0, zeta=0.3, iter_num=12)
    tr = translate(cfg)
    sigmas = karras(12, sigma_min=0.01, sigma_max=2.0)
    sig = sigmas.tolist()[:-1]  # the official loop's noise levels (pnpdiff's schedule ends in 0)
    x_init = torch.linspace(-0.5, 0.5, 8, dtype=torch.float64).reshape(1, 8)
    g = torch.Generator().manual_seed(0)
    draws = [torch.randn(x_init.shape, generator=g, dtype=torch.float64) for _ in sig]
    ref = _official_diffpir(
        prob.y, A, prob.prior, sig, x_init, draws, cfg["noise_level_img"], cfg["lambda_"], cfg["zeta"]
    )

    def run(lam: float) -> list[torch.Tensor]:
        steps: list[torch.Tensor] = []
        diffpir(
            prob.y,
            Matrix(A),
            prob.prior,
            sigmas,
            tr.recipe["noise"]["sigma_y"],
            lam=lam,
            zeta=tr.recipe["options"]["zeta"],
            x_init=x_init,
            generator=torch.Generator().manual_seed(0),
            callback=lambda i, t, x, x0: steps.append(x.clone()),
        )
        return steps[:-1]  # the last step returns the denoised x0 (DiffPIR keeps x): compare up to it

    got = run(tr.recipe["options"]["lam"])
    assert len(got) == len(ref) == 11
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-9)
    assert (got[-1] - x_init).abs().max() > 0.05  # it moved
    other = run(cfg["lambda_"])  # the unconverted lambda_ is a 4x weaker data step
    assert max(float((a - b).abs().max()) for a, b in zip(other, ref)) > 1e-3


def test_diffpir_quad_schedule_is_within_one_timestep() -> None:
    """``steps`` + ``schedule: ddpm`` give DiffPIR's quad timesteps (main_ddpir_sisr.py's ``seq``)
    to within one timestep."""
    table = ddpm_sigma_table().numpy()
    log_tab = np.log(table)
    for n in (20, 100):
        tr = translate(diffpir_config(iter_num=n))
        assert tr.recipe["steps"] == n and tr.recipe["options"]["schedule"] == "ddpm"
        seq = [int(s) for s in np.sqrt(np.linspace(0, 1000**2, n))]
        seq[-1] -= 1
        t_official = np.array([999 - s for s in seq], dtype=float)
        sig = ddpm(n).numpy()[:-1]
        t_pnp = np.interp(np.log(sig), log_tab, np.arange(1000.0))
        assert np.abs(t_pnp - t_official).max() <= 1 + 1e-9


# ---------------------------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------------------------
def _variants() -> list[dict]:
    box = dps_config(measurement__operator={"name": "inpainting"})
    box["measurement"]["mask_opt"] = {
        "mask_type": "box",
        "mask_len_range": (64, 80),
        "mask_prob_range": (0.3, 0.7),
        "image_size": 128,
        "margin": (8, 8),
    }
    blur = dps_config(measurement__operator={"name": "gaussian_blur", "kernel_size": 61, "intensity": 3.0})
    blur["measurement"]["mask_opt"] = {"mask_type": "random"}
    no_sr = {"sr_mode": None, "inIter": None, "gamma": None}
    return [
        box,
        blur,
        dps_config(
            measurement__operator={"name": "phase_retrieval", "oversample": 2.0},
            measurement__noise={"name": "clean"},
            data=None,
            conditioning__params=None,
        ),
        diffpir_config(task="deblur", sf=1, blur_mode="motion", kernel_size=61, use_DIY_kernel=True, mask_type="box"),
        diffpir_config(
            task="inpaint",
            sf=1,
            mask_type="box",
            mask_len_range=[100, 140],
            mask_prob_range=[0.1, 0.2],
            load_mask=False,
            mask_name="m.png",
            model_zoo="w",
            border=0,
            results="r",
            **no_sr,
        ),
        diffpir_config(
            task="inpaint",
            task_current="ip",
            sf=1,
            load_mask=True,
            mask_name="m.png",
            mask_path="a.png",
            mask_type="random",
            model_name=None,
            model_zoo="w",
            **no_sr,
        ),
        diffpir_config(task=None, test_sf=[4], eta=0.3, zeta=1.0, skip_noise_model_t=True, testset_name=None),
    ]


@pytest.mark.parametrize("index", range(7))
def test_every_peer_key_has_exactly_one_row(index: int) -> None:
    data = _variants()[index]
    tr = translate(data)
    listed = [r[0] for r in tr.rows if not r[0].startswith("(") and not r[1].startswith("(absent")]
    assert sorted(listed) == sorted(peer_keys(data))
    assert all(len(r) == 4 and all(isinstance(c, str) and c for c in r) for r in tr.rows)


@pytest.mark.parametrize("kind", ["dps", "diffpir"])
def test_table_has_one_line_per_peer_key_in_file_order(kind: str) -> None:
    data = load_yaml(DPS_SR) if kind == "dps" else load_yaml(DIFFPIR_SR)
    tr = translate(data, Path("cfg.yaml"))
    listed = [r[0] for r in tr.rows if not r[0].startswith("(") and not r[1].startswith("(absent")]
    assert sorted(listed) == sorted(peer_keys(data)), "every peer key exactly once"
    tops = [p.split(".")[0] for p in listed]
    assert tops == sorted(tops, key=list(data).index)
    lines = tr.table().splitlines()
    assert (
        lines[0] == f"# cfg.yaml: {'DPS task config' if kind == 'dps' else 'DiffPIR config'} translated to a "
        "pnpdiff recipe"
    )
    assert lines[1].split() == ["peer", "key", "peer", "value", "pnpdiff", "key", "pnpdiff", "value"]
    assert set(lines[2].replace(" ", "")) == {"-"}
    assert len(lines) == 3 + len(tr.rows)
    # aligned: the third column starts at the same place on every line whose first two cells fit
    starts = {line.index(r[2], len(r[0]) + len(r[1])) for line, r in zip(lines[3:], tr.rows) if len(r[0]) <= 40}
    assert len(starts) == 1


def test_table_contents_dps() -> None:
    text = translate(load_yaml(DPS_SR)).table()
    assert "measurement.noise.sigma" in text and "0.025 (= 0.05 / 2" in text
    assert "options.zeta" in text and "0.15 (= scale / 2" in text
    assert "natural (pnpdiff's default" in text  # the prior, absent from a DPS task config
    assert "Downsample, filter bicubic" in text and "outer 8 pixels differ" in text


def test_table_contents_diffpir() -> None:
    tr = translate(load_yaml(DIFFPIR_SR))
    rows = {r[0]: r for r in tr.rows}
    assert rows["noise_level_img"][2:] == ("noise.sigma_y", "0.05 (= 12.75 / 255: DiffPIR's level is on a 0-255 scale)")
    assert rows["lambda_"][2] == "options.lam" and rows["lambda_"][3].startswith("1.75 (= lambda_ / 4")
    for key in ("save_L", "save_progressive", "calc_LPIPS"):
        assert rows[key][2] == "ignored (bookkeeping)"
    assert rows["inIter"][2] == "ignored" and "sr_mode cubic" in rows["inIter"][3]
    assert rows["model_name"][2:] == ("prior", rows["model_name"][3]) and rows["model_name"][3].startswith("ffhq")
    tr = translate(diffpir_config(model_name=None))
    (row,) = [r for r in tr.rows if r[0] == "model_name"]
    assert row[1] == "(absent)" and row[3].startswith("natural (pnpdiff's default")


# ---------------------------------------------------------------------------------------------
# the bundled examples
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["dps_super_resolution_config.yaml", "diffpir_sisr.yaml"])
def test_bundled_peer_examples_translate_and_parse(name: str) -> None:
    path = PEERS / name
    text = path.read_text()
    assert text.startswith("# ") and f"python -m pnpdiff recipes/peers/{name}" in text
    tr = translate(load_yaml(text), path)
    assert tr.kind == ("dps" if name.startswith("dps") else "diffpir")
    r = parse_recipe(tr.recipe, source=path)
    assert Path(r.image).resolve() == (PEERS / "samples").resolve()
    assert r.prior == "natural"
    assert r.sigma_y == (0.025 if tr.kind == "dps" else 0.05)
    images = sorted((PEERS / "samples").glob("*.png"))
    assert len(images) == 2
    from PIL import Image

    assert all(Image.open(p).size == (128, 128) for p in images)
    assert math.isclose(r.options["zeta"], 2.0 if tr.kind == "dps" else 1.0)
